"""Backtest the hierarchy on real families: predict each family's largest model(s) from the rest.

For every family with at least 3 model sizes, the rows of its largest model size are held
out; the model is fitted on everything else (the family's smaller models plus all other
families) and predicts the held-out losses. Repeated with only the 1, 2 and 3 smallest model
sizes of the target family kept. Models compared, all with the Chinchilla law
L = E + A N^-alpha + B D^-beta:

1. hierarchical: per-family parameters pooled across families (the package default), one
   noise scale for all families;
2. hierarchical, noise per family: the same with the noise scale pooled too (``pooled=[..., "sigma"]``);
3. independent: one set of parameters per family, each with the default priors (group model
   with every law parameter ``independent``; the families share only the noise scale);
4. one law: a single set of parameters for all families.

Reported per family and on average: absolute relative error (ARE) of the posterior median of
a new run, and whether its 90% interval covers the held-out value.

Data (see the datasets' READMEs):

- ``colpret``: ColPret's final checkpoints, families as groups. The metric is cross-entropy in
  nats where ColPret has it (``loss_nats``), else the logged value (T5-Pile's val_perplexity);
  GPT2-datablations is split by training data (C4, OSCAR) into two families and, like the
  IsoLoss contour runs, restricted to single-epoch runs (repeated data are outside the law).
- ``olmo``: the OLMo ladder's final checkpoints (190M-3B x 0.5-10xC), six evaluation sets as
  the groups (each set a "family" of curves over the same runs); two of them (C4, the Pile) are targets.
- ``porian``: Porian et al.'s IsoFLOP sweeps (5M-901M parameters, 1.25e16-2.56e19 FLOPs), the eight
  recipes counted the standard way and scored on validation loss as the groups (two training sets,
  RefinedWeb and OpenWebText2, x four recipes).

Held-out runs have at least one token per parameter (:data:`MIN_TOKENS_PER_PARAM`): Porian's
sweeps give a 901M model as few as 2M tokens, where the law is not meant to hold (all held-out
runs of the other datasets qualify).

A second split, ``kept="cut"``, where a dataset defines one (:data:`CUTS`): every group fitted
on its runs up to a model size at once, each predicting its runs beyond (the OLMo ladder below
1B parameters predicting the 1B and 3B runs; Porian's recipes up to 110M predicting 350M-900M).

    BAYESCALE_DATA_DIR=../shared/datasets python benchmarks/backtest_families.py --out benchmarks/results
"""

from __future__ import annotations

import argparse
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

import bayescale as bs

MODELS = ("hierarchical", "hierarchical, noise per family", "independent", "one law")
OLMO_SETS = ("c4_en", "pile", "wikitext_103", "dolma_books", "dolma_common-crawl", "m2d2_s2orc")
OLMO_TARGETS = ("c4_en", "pile")


def colpret_data() -> pd.DataFrame:
    df = bs.datasets.load("colpret_final")
    df = df.assign(target=df["loss_nats"].fillna(df["value"]))
    blations = df["family"].str.startswith("GPT2-datablations")
    df = df[~blations | (df["epochs"].fillna(1) <= 1)].copy()
    split = df["family"] == "GPT2-datablations"
    df.loc[split, "family"] = "GPT2-datablations-" + df.loc[split, "data"].astype(str)
    return df.reset_index(drop=True)[["family", "model", "N", "D", "target"]]


def olmo_data() -> pd.DataFrame:
    """The ladder's final checkpoints, one row per run and evaluation set."""
    olmo = bs.datasets.load("olmo_ladder")
    ladder = olmo[olmo["kind"] == "ladder"]
    ladder = ladder.loc[ladder.groupby("run")["step"].idxmax()]
    long = ladder.melt(id_vars=["run", "N", "D"], value_vars=[f"loss_{s}" for s in OLMO_SETS], value_name="target")
    long["family"] = long["variable"].str.removeprefix("loss_")
    return long.rename(columns={"run": "model"})[["family", "model", "N", "D", "target"]].reset_index(drop=True)


def porian_data() -> pd.DataFrame:
    """Porian et al.'s IsoFLOP points, one group per recipe (standard parameter count, validation loss)."""
    df = bs.datasets.load("porian_isoflop")
    df = df[(df["param_count"] == "standard") & (df["loss_split"] == "val")]
    family = df["dataset"] + "|" + df["hparams"] + "|" + df["warmup"] + "|" + df["decay"]
    out = df.assign(family=family, model=df["N"].map("{:.3g}".format), target=df["loss"])
    return out.reset_index(drop=True)[["family", "model", "N", "D", "target"]]


DATASETS = {"colpret": (colpret_data, None), "olmo": (olmo_data, OLMO_TARGETS), "porian": (porian_data, None)}
CUTS = {"olmo": 1e9, "porian": 1.1e8}  # dataset -> largest model size fitted in the "cut" split
MIN_TOKENS_PER_PARAM = 1.0  # held-out runs below this are outside the law's range (Porian's smallest budgets)
KEPT = ("1", "2", "3", "all", "cut")


def model_for(kind: str) -> bs.ScalingModel:
    common = dict(target="target", inputs={"N": "N", "D": "D"})
    if kind == "one law":
        return bs.ScalingModel(bs.laws.Chinchilla(), **common)
    if kind == "independent":
        return bs.ScalingModel(
            bs.laws.Chinchilla(), group="family", independent=["E", "A", "alpha", "B", "beta"], **common
        )
    if kind == "hierarchical, noise per family":
        return bs.ScalingModel(bs.laws.Chinchilla(), group="family", pooled=["sigma"], **common)
    if kind == "group scale":  # each family's level terms shifted by its own scale
        return bs.ScalingModel(bs.laws.Chinchilla(), group="family", shared=["sigma"], group_scale=True, **common)
    if kind == "hierarchical":
        return bs.ScalingModel(bs.laws.Chinchilla(), group="family", shared=["sigma"], **common)
    raise ValueError(f"unknown model {kind!r}: expected one of {[*MODELS, 'group scale']}")


def holdouts(df: pd.DataFrame, family: str):
    """``(kept, train, held)``: ``family``'s largest model size held out, the family keeping all its smaller
    sizes (``"all"``) or only its 1, 2 or 3 smallest (where it has more), every other family in ``train``."""
    own = df[df["family"] == family]
    ordered = np.sort(own["N"].unique())
    held = own[own["N"] == ordered[-1]]
    for kept in ("all", 1, 2, 3):
        if kept != "all" and kept >= len(ordered):
            continue
        keep_sizes = ordered[:-1] if kept == "all" else ordered[:kept]
        yield str(kept), pd.concat([df[df["family"] != family], own[own["N"].isin(keep_sizes)]]), held


def splits(df: pd.DataFrame, dataset: str, targets=None):
    """``(families, kept, train, held)`` of every split of ``dataset``: each target family's :func:`holdouts`
    (families with at least 3 model sizes by default), then the ``cut`` of every target at once where the
    dataset has one (:data:`CUTS`)."""
    sizes = df.groupby("family")["N"].nunique()
    targets = sorted(sizes[sizes >= 3].index) if targets is None else list(targets)
    for family in targets:
        for kept, train, held in holdouts(df, family):
            yield [family], kept, train, held
    cut = CUTS.get(dataset)
    if cut is not None:
        yield targets, "cut", df[df["N"] <= cut], df[(df["N"] > cut) & df["family"].isin(targets)]


def run(df: pd.DataFrame, draws: int, seed: int, targets=None, dataset: str = "", done=(), models=MODELS):
    rows = []
    for families, kept, train, held in splits(df, dataset, targets):
        for kind in models:
            if any((dataset, family, kept, kind) in done for family in families):
                continue
            key = {"dataset": dataset, "kept": kept, "model": kind}
            rows.extend(fit_and_score(model_for(kind), train, held, draws, seed, key))
    return pd.DataFrame(rows)


def fit_and_score(model, train: pd.DataFrame, held: pd.DataFrame, draws: int, seed: int, key: dict) -> list[dict]:
    """Fit ``model`` on ``train`` and score its predictions of ``held`` (runs with enough tokens): a row per family."""
    held = held[held["D"] >= MIN_TOKENS_PER_PARAM * held["N"]]
    start = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", bs.SamplerWarning)
        try:
            fit = model.fit(train, seed=seed, warmup=draws, draws=draws)
        except bs.DataError as err:  # e.g. independent fits with more parameters than rows
            rows = [key | {"family": family, "error": str(err)[:80]} for family in held["family"].unique()]
            print(*rows, sep="\n", flush=True)
            return rows
    table = fit.predict(held).interval(0.9)  # the columns the model reads: inputs and, where it has them, groups
    scored = held.assign(
        error=np.abs(table["median"].to_numpy() - held["target"].to_numpy()) / held["target"].to_numpy(),
        **band_scores(table, held["target"]),
        **band_scores(own_reach(fit, held), held["target"], "_own_reach"),
    )
    seconds = time.perf_counter() - start
    rows = []
    for family, own in scored.groupby("family"):
        rows.append(
            key
            | {
                "family": family,
                "n_train_rows_family": int((train["family"] == family).sum()),
                "n_held": len(own),
                "are": float(own["error"].mean()),
                "coverage90": float(own["covered"].mean()),
                "log_width90": float(own["width"].median()),
                "interval_score90": float(own["interval_score"].mean()),
                "coverage90_own_reach": float(own["covered_own_reach"].mean()),
                "log_width90_own_reach": float(own["width_own_reach"].median()),
                "interval_score90_own_reach": float(own["interval_score_own_reach"].mean()),
                "seconds": seconds,
                "warnings": len(caught),
                "healthy": fit.healthy,
            }
        )
        print(rows[-1], flush=True)
    return rows


def band_scores(table: pd.DataFrame, actual: pd.Series, suffix: str = "", scale=np.log) -> dict:
    """Per held-out run: whether the 90% interval covers it, the interval's width and its interval score
    (width plus 20 times the miss, Gneiting and Raftery 2007), both on ``scale`` (the log of the loss)."""
    lower, upper = scale(table["lower"].to_numpy()), scale(table["upper"].to_numpy())
    y = scale(actual.to_numpy())
    miss = np.clip(lower - y, 0, None) + np.clip(y - upper, 0, None)
    return {
        f"covered{suffix}": (lower <= y) & (y <= upper),
        f"width{suffix}": upper - lower,
        f"interval_score{suffix}": upper - lower + 2 / 0.1 * miss,
    }


def own_reach(fit: bs.ScalingFit, held: pd.DataFrame) -> pd.DataFrame:
    """The 90% intervals with each group's extrapolation risk measured from its own runs alone, as before
    groups that share the law's shape were measured from every group's runs (``ScalingFit.reach``)."""
    model = fit.model
    if model.group is None or not model.shares_shape:
        return fit.predict(held).interval(0.9)
    columns = [model.inputs[x] for x in model.law.inputs]
    points = np.log10(held[columns].to_numpy(float))
    labels = held[model.group].astype(str).to_numpy()
    distance = np.array(
        [bs.discrepancy.hull_distance(fit.fitted_inputs(g), p[None])[0] for g, p in zip(labels, points, strict=True)]
    )
    values = {x: held[c].to_numpy(float)[None, :] for x, c in zip(model.law.inputs, columns, strict=True)}
    return fit.predict_from_draws(values, groups=labels, distance=distance).interval(0.9)


def summarise(results: pd.DataFrame) -> pd.DataFrame:
    """Mean ARE per family and 90% coverage per held-out point, by runs kept and model.

    Averages are over the families where every model in ``results`` ran (the independent fit
    cannot run when a family has fewer rows than parameters), so the models are compared
    on the same held-out points. Where the rows have them, also the mean interval score and the
    coverage with each family's risk measured from its own runs (:func:`own_reach`).
    """
    ok = results.dropna(subset=["are"])
    complete = ok.groupby(["family", "kept"])["model"].transform("nunique") == ok["model"].nunique()
    scored = "coverage90_own_reach" in ok
    ok = ok[complete].assign(
        covered=lambda t: t["coverage90"] * t["n_held"],
        **({"covered_own": lambda t: t["coverage90_own_reach"] * t["n_held"]} if scored else {}),
    )
    grouped = ok.groupby(["dataset", "kept", "model"])
    table = {
        "families": grouped["family"].nunique(),
        "mean ARE": grouped["are"].mean(),
        "coverage90": grouped["covered"].sum() / grouped["n_held"].sum(),
        "held-out points": grouped["n_held"].sum().astype(int),
    }
    if scored:
        table["coverage90, own reach"] = grouped["covered_own"].sum() / grouped["n_held"].sum()
        table["interval score"] = grouped["interval_score90"].mean()
        table["interval score, own reach"] = grouped["interval_score90_own_reach"].mean()
    table = pd.DataFrame(table)
    return table.unstack("model").reindex(list(KEPT), level="kept")


def fit_arguments(parser: argparse.ArgumentParser) -> None:
    """The backtests' shared options: ``--draws``, ``--seed``, ``--out``."""
    parser.add_argument("--draws", type=int, default=500, help="warmup and draws per chain (default 500)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    fit_arguments(parser)
    parser.add_argument("--datasets", default=",".join(DATASETS), help=f"comma-separated, of {list(DATASETS)}")
    parser.add_argument(
        "--models", nargs="+", choices=MODELS, default=list(MODELS), metavar="MODEL", help=f"of {list(MODELS)}"
    )
    parser.add_argument("--csv", default="backtest_families.csv", help="file name of the rows in --out")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / args.csv
    results = pd.read_csv(path, dtype={"kept": str}) if path.exists() else pd.DataFrame()
    if "dataset" not in results:  # a table from before the datasets and model variants: start again
        results = pd.DataFrame()
    for name in args.datasets.split(","):
        load, targets = DATASETS[name]
        keys = ["dataset", "family", "kept", "model"]
        done = set() if results.empty else set(results[keys].itertuples(index=False, name=None))
        new = run(load(), args.draws, args.seed, targets, name, done, args.models)
        results = pd.concat([results, new], ignore_index=True)
        results.to_csv(path, index=False)
    print(summarise(results).round(3).to_string())


if __name__ == "__main__":
    main()
