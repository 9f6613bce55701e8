"""Backtest: does dividing each family's scale out before pooling help? (Measured; not the package's model.)

Families measured on different evaluation sets or in different ways sit at different loss levels,
so their absolute ``E``, ``A`` and ``B`` scatter by units as well as by shape. Two fixed per-family
scales, taken from the family's own training runs, are divided out of its losses before the default
hierarchy is fitted, and put back into its predictions (the likelihood is on the log of the loss, so
a constant factor changes only the family's ``E``, ``A`` and ``B``):

- ``scaled: mean``: the geometric mean of the family's losses;
- ``scaled: one curve``: the family's mean offset, on the log, from one Chinchilla law fitted to all
  families by least squares (which removes, to first order, where the family's runs sit on the curve).

And the package's model of it, ``group scale`` (``ScalingModel(..., group_scale=True)``):
each family's scale a parameter, ``s_g ~ Normal(0, scale_spread)``, learned with the rest.

Each beside the default ``hierarchical`` model, on the holdouts of ``backtest_families.py`` (each
family's largest size held out, 1, 2, 3 or all smaller sizes kept; the ``cut`` split), 4 x (500 +
500) draws. Reported: mean ARE per family, 90% coverage per held-out point, median relative width,
share of fits without a warning, median seconds per fit. Discussion in ``docs/hierarchy.md``.

    BAYESCALE_DATA_DIR=../shared/datasets python benchmarks/backtest_family_scales.py [--datasets olmo,porian]
        [--kinds "hierarchical,group scale"]   (rows of other datasets and kinds kept)
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np
import pandas as pd
from backtest_families import DATASETS, MIN_TOKENS_PER_PARAM, fit_arguments, model_for, splits
from scipy.optimize import least_squares

import bayescale as bs

KINDS = ("hierarchical", "scaled: mean", "scaled: one curve", "group scale")


def one_curve(train: pd.DataFrame) -> np.ndarray:
    """The log of one Chinchilla law fitted to every family's rows (least squares on the log, three starts)."""
    n, d, y = (np.log(train[c].to_numpy()) for c in ("N", "D", "target"))
    n0, d0 = n.mean(), d.mean()

    def law(p):
        return np.logaddexp(np.logaddexp(p[0], p[1] - np.exp(p[2]) * (n - n0)), p[3] - np.exp(p[4]) * (d - d0))

    best = None
    for share in (-2.0, -0.5, 0.5):  # E's share of the mean loss, on the log-odds
        level = y.mean()
        start = [level + share - np.logaddexp(0.0, share), level - 1.2, np.log(0.3), level - 1.2, np.log(0.3)]
        result = least_squares(lambda p: law(p) - y, start)
        if best is None or result.cost < best.cost:
            best = result
    return law(best.x)


def factors(kind: str, train: pd.DataFrame) -> pd.Series:
    """Family -> the factor its losses are multiplied by before the fit (1 for the plain hierarchy)."""
    if kind == "hierarchical":
        return pd.Series(1.0, index=sorted(train["family"].unique()))
    log_target = np.log(train["target"])
    own = log_target if kind == "scaled: mean" else log_target - one_curve(train)
    means = own.groupby(train["family"]).mean()
    return np.exp(means.mean() - means)


def score(kind: str, train: pd.DataFrame, held: pd.DataFrame, draws: int, seed: int, key: dict) -> list[dict]:
    held = held[held["D"] >= MIN_TOKENS_PER_PARAM * held["N"]]
    transform = kind.startswith("scaled")
    factor = factors(kind, train) if transform else pd.Series(1.0, index=train["family"].unique())
    start = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", bs.SamplerWarning)
        scaled = train.assign(target=train["target"] * train["family"].map(factor))
        fit = model_for("hierarchical" if transform else kind).fit(scaled, seed=seed, warmup=draws, draws=draws)
    table = fit.predict(held).interval(0.9)
    back = held["family"].map(factor).to_numpy()
    median, lower, upper = (table[c].to_numpy() / back for c in ("median", "lower", "upper"))
    y = held["target"].to_numpy()
    seconds = time.perf_counter() - start
    rows = []
    for family in held["family"].unique():
        m = (held["family"] == family).to_numpy()
        rows.append(
            key
            | {
                "family": family,
                "model": kind,
                "n_held": int(m.sum()),
                "are": float(np.mean(np.abs(median[m] - y[m]) / y[m])),
                "coverage90": float(np.mean((lower[m] <= y[m]) & (y[m] <= upper[m]))),
                "width": float(np.median((upper[m] - lower[m]) / median[m])),
                "seconds": seconds,
                "warnings": len(caught),
                "healthy": fit.healthy,
            }
        )
        print(rows[-1], flush=True)
    return rows


def run(name: str, draws: int, seed: int, kinds=KINDS) -> pd.DataFrame:
    load, targets = DATASETS[name]
    rows = []
    for _, kept, train, held in splits(load(), name, targets):
        for kind in kinds:
            rows += score(kind, train, held, draws, seed, {"dataset": name, "kept": kept})
    return pd.DataFrame(rows)


def summarise(results: pd.DataFrame) -> pd.DataFrame:
    grouped = results.assign(covered=results["coverage90"] * results["n_held"]).groupby(["dataset", "kept", "model"])
    return pd.DataFrame(
        {
            "mean ARE": grouped["are"].mean(),
            "coverage90": grouped["covered"].sum() / grouped["n_held"].sum(),
            "median width": grouped["width"].median(),
            "healthy": grouped["healthy"].mean(),
            "seconds": grouped["seconds"].median(),
        }
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    fit_arguments(parser)
    parser.add_argument("--datasets", default=",".join(DATASETS), help=f"comma-separated, of {list(DATASETS)}")
    parser.add_argument("--kinds", default=",".join(KINDS), help=f"comma-separated, of {list(KINDS)}")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / "backtest_family_scales.csv"
    kinds = args.kinds.split(",")
    new = pd.concat([run(name, args.draws, args.seed, kinds) for name in args.datasets.split(",")], ignore_index=True)
    old = pd.read_csv(path, dtype={"kept": str}) if path.exists() else pd.DataFrame()
    if not old.empty:  # the rows of other datasets and kinds are kept
        old = old[~(old["dataset"].isin(new["dataset"].unique()) & old["model"].isin(kinds))]
    results = pd.concat([old, new], ignore_index=True)
    results.to_csv(path, index=False)
    print(summarise(results).round(4).to_string())


if __name__ == "__main__":
    main()
