"""Real-data backtests of extrapolation: every public curve we have, cut by scale, fitted below, scored above.

For every case of the corpus (a data set, a law and the column that orders its runs by scale)
``bs.validation.backtest`` fits the runs at or below ``max / 10**k`` for k = 0.5, 1, 2, 3 decades
and scores the predictions of the runs above: coverage of the 50/80/90/95% intervals, ARE of
the median, interval score and CRPS of log(target). Predictors, side by side on the same
held-out runs: the model (with its extrapolation risk, ``bs.discrepancy.Drift``), the same
posterior without the risk ("law only", the model before the risk existed), and Besiroglu et
al.'s Huber fit with bootstrap intervals ("bootstrap").

    BAYESCALE_DATA_DIR=../shared/datasets python benchmarks/backtest_real.py --out benchmarks/results

``--scheduler tcp://host:8786`` (or ``local``) runs the cuts on the workers of a Dask cluster.

``--calibrate`` estimates the drift's constants (rate, its spread across studies, power) from the
law-only predictions by maximum marginal likelihood, hierarchically across the corpus' sources,
and validates them leave-one-source-out: each source is scored with constants estimated on the
others. Its output is what ``bayescale/model/discrepancy.py`` ships.

The corpus (see each dataset's README in the shared data folder):

- chinchilla: Hoffmann et al.'s 240 runs (Besiroglu et al.'s selection), Chinchilla law, cut on C;
- chinchilla front: the lowest loss at each of its compute budgets, saturating law in C;
- olmo <set>: the OLMo ladder's final checkpoints (190M-3B, 0.5-10xC), Chinchilla law on four
  validation losses, cut on C; and the same fits predicting the 7B-4T and 13B-5T targets;
- porian <recipe>: each of Porian et al.'s 15 recipes' IsoFLOP runs, Chinchilla law, cut on C;
- porian front <recipe>: each recipe's lowest loss per budget, saturating law in C;
- colpret <family>: ColPret families with enough sizes (GPT-3, OPT, Revisiting-LM: saturating
  law in N; the single-epoch GPT2 data-blations contour runs: Chinchilla law, cut on C).
"""

from __future__ import annotations

import argparse
import pickle
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import optimize, special

import bayescale as bs
from bayescale.studies.validation import law_only_draws, summarise

OLMO_SETS = ("loss_c4_en", "loss_pile", "loss_wikitext_103", "loss_dolma_books")


@dataclass
class Case:
    name: str
    source: str  # held out together in the leave-one-source-out validation
    model: bs.ScalingModel
    data: pd.DataFrame
    scale: str
    targets: pd.DataFrame | None = None  # extra held-out runs predicted from all the data (OLMo's 7B and 13B)


def front(df: pd.DataFrame, budget: str, target: str) -> pd.DataFrame:
    """The lowest ``target`` at every value of ``budget``."""
    best = df.loc[df.groupby(budget)[target].idxmin()]
    return best[[budget, target]].reset_index(drop=True)


def olmo_targets(olmo: pd.DataFrame) -> pd.DataFrame:
    """OLMo-2 7B-4T and 13B-5T as the paper scores them: the mean of the last 5 evaluations of the main runs."""
    rows = []
    for run in ("peteish7_eval_full", "peteish13_eval_final"):
        last = olmo[olmo["run"] == run].sort_values("step").tail(5)
        row = last.iloc[-1].copy()
        for column in OLMO_SETS:
            row[column] = last[column].mean()
        rows.append(row)
    return pd.DataFrame(rows).reset_index(drop=True)


def pivoted(law: bs.laws.Law, data: pd.DataFrame) -> bs.laws.Law:
    """``law`` with its pivots (if it has any) at the powers of ten nearest the geometric means of ``data``."""
    if not law.pivots:
        return law
    nearest = {f"{x}0": float(10 ** np.round(np.mean(np.log10(data[x])))) for x in law.pivots}
    return type(law)(**nearest)


def corpus(only: str | None = None, law: str = "chinchilla") -> list[Case]:
    """The cases; ``law`` replaces Chinchilla's in the cases of N and D, and keeps only those."""
    two_inputs = bs.laws.get(law)
    if two_inputs.inputs != ("N", "D"):
        raise ValueError(f"--law must be a law of N and D, got {law!r} with inputs {list(two_inputs.inputs)}")
    cases = _corpus(two_inputs)
    cases = [c for c in cases if law == "chinchilla" or c.model.law.inputs == ("N", "D")]
    return [c for c in cases if only is None or only in c.name]


def _corpus(chinchilla_law: bs.laws.Law) -> list[Case]:
    saturating = bs.laws.SaturatingPowerLaw
    cases = []
    chin = bs.datasets.load("chinchilla")
    chin = chin[~chin["besiroglu_excluded"]].reset_index(drop=True)
    cases.append(Case("chinchilla", "chinchilla", bs.ScalingModel(pivoted(chinchilla_law, chin)), chin, "C"))
    cases.append(
        Case("chinchilla front", "chinchilla", bs.ScalingModel(saturating("C")), front(chin, "C", "loss"), "C")
    )
    olmo = bs.datasets.load("olmo_ladder")
    ladder = olmo[olmo["kind"] == "ladder"]
    ladder = ladder.loc[ladder.groupby("run")["step"].idxmax()]
    targets = olmo_targets(olmo)
    for column in OLMO_SETS:
        model = bs.ScalingModel(pivoted(chinchilla_law, ladder), target=column)
        cases.append(Case(f"olmo {column[5:]}", "olmo", model, ladder.reset_index(drop=True), "C", targets))
    porian = bs.datasets.load("porian_isoflop")
    for recipe, runs in porian.groupby("recipe"):
        runs = runs.reset_index(drop=True)
        cases.append(Case(f"porian {recipe}", "porian", bs.ScalingModel(pivoted(chinchilla_law, runs)), runs, "C"))
        cases.append(
            Case(f"porian front {recipe}", "porian", bs.ScalingModel(saturating("C")), front(runs, "C", "loss"), "C")
        )
    colpret = bs.datasets.load("colpret_final")
    for family in ("GPT-3", "OPT"):  # Revisiting-LM's 5 sizes leave too few runs below any cut
        runs = colpret[colpret["family"] == family].dropna(subset=["loss_nats"]).reset_index(drop=True)
        model = bs.ScalingModel(saturating("N"), target="loss_nats")
        cases.append(Case(f"colpret {family}", f"colpret {family}", model, runs, "N"))
    contour = colpret[(colpret["family"] == "GPT2-datablations-contour") & (colpret["epochs"].fillna(1) <= 1)]
    model = bs.ScalingModel(pivoted(chinchilla_law, contour), target="loss_nats")
    cases.append(Case("colpret datablations", "colpret datablations", model, contour.reset_index(drop=True), "C"))
    return cases


def run(cases: list[Case], draws: int, seed: int, bootstrap: int, out: Path, client=None) -> tuple[pd.DataFrame, dict]:
    """Pointwise scores of every case, and the law-only log draws of every held-out point (for --calibrate).

    Both are written to ``out`` after every case, so that an interrupted run keeps what it did.
    With a Dask ``client`` the cuts of each case run on its workers.
    """
    frames, law_draws = [], {}
    for case in cases:
        start = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", bs.SamplerWarning)
            try:
                study = bs.validation.backtest(
                    case.model, case.data, scale=case.scale, seed=seed, warmup=draws, draws=draws,
                    bootstrap_refits=bootstrap, progress_bar=False, keep_draws=True, client=client,
                )  # fmt: skip
            except bs.DataError as err:
                print(f"{case.name}: not backtested ({err})", flush=True)
                continue
        points = study.pointwise().assign(case=case.name, source=case.source)
        frames.append(points)
        law_draws.update({(case.name, case.source, k): v for k, v in study.draws.items()})
        if case.targets is not None:
            frames.append(targets(case, draws, seed, law_draws))
        print(f"{case.name}: {time.perf_counter() - start:.0f} s, skipped {sorted(study.skipped)}", flush=True)
        pd.concat(frames, ignore_index=True).to_csv(out / "backtest_real_points.csv", index=False)
        with open(out / "backtest_real_draws.pkl", "wb") as f:
            pickle.dump(law_draws, f)
    return pd.concat(frames, ignore_index=True), law_draws


def targets(case: Case, draws: int, seed: int, law_draws: dict) -> pd.DataFrame:
    """The fit to all of the case's runs predicting its separate targets (OLMo's 7B-4T and 13B-5T)."""
    from bayescale.studies.validation import _scores

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", bs.SamplerWarning)
        fit = case.model.fit(case.data, seed=seed, warmup=draws, draws=draws)
    observed = case.targets[case.model.target].to_numpy()
    distance = fit.extrapolation(case.targets)
    frames = []
    for name, kwargs in (("model", {}), ("law only", {"risk": False})):
        prediction = fit.predict(case.targets, **kwargs)
        table = _scores(prediction, observed, bs.validation.LEVELS)
        if name == "law only":
            law_draws[(case.name, case.source, "targets")] = law_only_draws(fit, case.targets, prediction)
        table.insert(0, "predictor", name)
        table.insert(1, "decades", "targets")
        table.insert(2, "row", case.targets.index)
        table.insert(3, "distance", distance)
        frames.append(table.assign(case=case.name, source=case.source, healthy=fit.healthy))
    return pd.concat(frames, ignore_index=True)


# -- calibration of the drift -------------------------------------------------------------------

LOG_RATES = np.linspace(np.log(0.05), np.log(80.0), 80)  # the grid the drift rate is integrated over
LENGTHS = (0.5, 1.0, 2.0)  # correlation lengths tried (decades)


def split_loglik(d: dict, length: float) -> np.ndarray | None:
    """log p(held-out runs of one cut | drift rate) on :data:`LOG_RATES`: the law-only predictive (its
    mean and the covariance of its draws) plus the drift's Gaussian process, in closed form."""
    if d["sigma"] is None:
        return None
    r = np.log(d["observed"]) - d["log_draws"].mean(axis=0)
    cov = np.atleast_2d(np.cov(d["log_draws"], rowvar=False))
    cov = cov + 1e-6 * np.mean(np.diag(cov)) * np.eye(len(r))  # draws of runs at one point are collinear
    g = np.median(d["sigma"]) * d["distance"]
    x = d["log10_x"]
    gkg = np.outer(g, g) * np.exp(-((x[:, None, :] - x[None, :, :]) ** 2).sum(-1) / (2 * length**2))
    out = []
    for rate in np.exp(LOG_RATES):
        m = cov + rate**2 * gkg
        factor = np.linalg.cholesky(m + 1e-9 * np.mean(np.diag(m)) * np.eye(len(r)))
        a = np.linalg.solve(factor, r)
        out.append(-0.5 * (len(r) * np.log(2 * np.pi) + 2 * np.log(np.diag(factor)).sum() + a @ a))
    return np.array(out)


def case_logliks(kept: dict, length: float) -> dict:
    """Per curve (case), the log likelihood of all its cuts on :data:`LOG_RATES`: one rate per curve."""
    out: dict = {}
    for (case, source, _), d in kept.items():
        ll = split_loglik(d, length)
        if ll is not None:
            out[(source, case)] = out.get((source, case), 0.0) + ll
    return out


def marginal(cases: dict, median: float, sd: float) -> float:
    """log of the corpus' marginal likelihood when every curve's rate is LogNormal(log median, sd)."""
    step = LOG_RATES[1] - LOG_RATES[0]
    log_prior = -0.5 * ((LOG_RATES - np.log(median)) / sd) ** 2 - np.log(sd * np.sqrt(2 * np.pi)) + np.log(step)
    return sum(special.logsumexp(ll + log_prior) for ll in cases.values())


def fit_drift(cases: dict) -> tuple[float, float, float]:
    """Maximum marginal likelihood (rate median, rate log-sd) over ``cases``, and the log likelihood there."""
    found = optimize.minimize(
        lambda t: -marginal(cases, np.exp(t[0]), np.exp(t[1])), np.log([1.0, 1.0]), method="Nelder-Mead"
    )
    return float(np.exp(found.x[0])), float(np.exp(found.x[1])), -float(found.fun)


def score_drift(kept: dict, drift, seed: int) -> pd.DataFrame:
    """Pointwise scores of the law-only draws plus ``drift``'s draws, as ``ScalingFit.predict`` adds them
    (``drift=None``: the law-only draws), with each run's distance from the fitted runs."""
    import jax

    from bayescale.studies.validation import _scores

    frames = []
    for i, ((case, source, split), d) in enumerate(kept.items()):
        if d["sigma"] is None:
            continue
        n = len(d["distance"])
        draws = d["log_draws"]
        if drift is not None:
            draws = draws + drift.log_deviation(
                jax.random.key(seed + i), d["log10_x"], d["distance"], np.zeros(n, int), d["sigma"]
            )
        prediction = bs.Prediction(pd.DataFrame(index=range(n)), draws, draws)
        scores = _scores(prediction, d["observed"], bs.validation.LEVELS)
        frames.append(scores.assign(case=case, source=source, decades=str(split), distance=d["distance"]))
    return pd.concat(frames, ignore_index=True)


def calibrate(kept: dict, seed: int) -> tuple[dict, pd.DataFrame]:
    """The drift's constants on the whole corpus, and each source scored with constants from the others."""
    best = None
    for length in LENGTHS:
        cases = case_logliks(kept, length)
        rate, rate_sd, loglik = fit_drift(cases)
        print(f"length {length}: rate {rate:.3f}, rate_sd {rate_sd:.3f}; log marginal likelihood {loglik:.1f}")
        if best is None or loglik > best[2]:
            best = (length, cases, loglik, rate, rate_sd)
    length, cases, _, rate, rate_sd = best
    frames = []
    for source in sorted({key[1] for key in kept}):
        held_rate, held_sd, _ = fit_drift({k: v for k, v in cases.items() if k[0] != source})
        drift = bs.discrepancy.Drift(rate=held_rate, rate_sd=held_sd, length=length)
        held = {key: d for key, d in kept.items() if key[1] == source}
        frames.append(score_drift(held, drift, seed).assign(predictor="model (drift from the other sources)"))
        frames.append(score_drift(held, None, seed).assign(predictor="law only"))
        print(f"without {source}: rate {held_rate:.3f}, rate_sd {held_sd:.3f}", flush=True)
    return {"rate": rate, "rate_sd": rate_sd, "length": length}, pd.concat(frames, ignore_index=True)


def kind(case: pd.Series) -> pd.Series:
    """The dataset a case belongs to, for the tables: Porian's IsoFLOP runs and fronts apart."""
    return np.where(
        case.str.startswith("porian front"),
        "porian fronts",
        np.where(case.str.startswith("porian"), "porian IsoFLOP", case.str.split(" ").str[0]),
    )


def compare_leave_one_out(points: pd.DataFrame, held: pd.DataFrame, out: Path) -> None:
    """The drift scored leave-one-source-out beside the law alone and the bootstrap, per dataset, at 1-2 decades."""
    levels = bs.validation.LEVELS
    bootstrap = points[points["predictor"] == "bootstrap"]
    both = pd.concat([held, bootstrap], ignore_index=True)
    both = both[both["decades"].astype(str).isin(["1.0", "2.0"])].assign(dataset=lambda t: kind(t["case"]))
    table = summarise(both, ["dataset", "predictor"], levels)
    print("\nLeave-one-source-out, pooled over the cuts at 1 and 2 decades:")
    print(table.round(3).to_string())
    print(summarise(both, ["predictor"], levels).round(3).to_string())
    table.round(4).to_csv(out / "backtest_real_table.csv")
    per_case = summarise(both.assign(decades=both["decades"].astype(str)), ["case", "decades", "predictor"], levels)
    per_case.round(4).to_csv(out / "backtest_real_cases.csv")
    key = pd.cut(held["distance"], [0.0, 0.25, 0.5, 1.0, 2.0, np.inf], include_lowest=True).rename("distance")
    by_distance = summarise(held, [key, "predictor"], levels)
    ax = bs.plot.coverage(by_distance, levels)
    ax.set_title("held-out public runs: coverage against distance beyond the fitted runs", fontsize=9)
    ax.figure.savefig(out / "backtest_real_coverage.png", dpi=110, bbox_inches="tight")


def report(points: pd.DataFrame) -> None:
    levels = bs.validation.LEVELS
    splits = points[points["decades"].astype(str).isin(["1.0", "2.0"])]
    print("\nPooled over the cuts at 1 and 2 decades, per source:")
    print(summarise(splits, ["source", "predictor"], levels).round(3).to_string())
    print("\nPooled over all cuts, by distance beyond the fitted runs:")
    cuts = points["decades"].astype(str) != "targets"
    key = pd.cut(points.loc[cuts, "distance"], list(bs.validation.DISTANCE_BINS), include_lowest=True)
    print(summarise(points[cuts], [key.rename("distance"), "predictor"], levels).round(3).to_string())
    print("\nBy cut, every case pooled:")
    print(summarise(points, ["decades", "predictor"], levels).round(3).to_string())


def dask_client(scheduler: str | None):
    """A Dask client of the scheduler at ``scheduler`` (``"local"``: one worker process per core), or None."""
    if scheduler is None:
        return None
    from distributed import Client, LocalCluster  # only for --scheduler

    return Client(LocalCluster(threads_per_worker=1) if scheduler == "local" else scheduler)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--draws", type=int, default=500, help="warmup and draws per chain (default 500)")
    parser.add_argument("--bootstrap", type=int, default=100, help="bootstrap refits per cut (default 100)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--only", default=None, help="only the cases whose name contains this")
    parser.add_argument(
        "--law", default="chinchilla", help="the law of the cases of N and D (e.g. farseer; then only those cases)"
    )
    parser.add_argument("--calibrate", action="store_true", help="estimate the drift's constants (leave-one-out)")
    parser.add_argument("--reuse", action="store_true", help="read the fits' results from --out instead of fitting")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    parser.add_argument(
        "--scheduler", default=None, help="run the cuts on a Dask cluster: its address (tcp://host:8786), or 'local'"
    )
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    if args.reuse:
        points = pd.read_csv(args.out / "backtest_real_points.csv")
        with open(args.out / "backtest_real_draws.pkl", "rb") as f:
            law_draws = pickle.load(f)
    else:
        client = dask_client(args.scheduler)
        points, law_draws = run(corpus(args.only, args.law), args.draws, args.seed, args.bootstrap, args.out, client)
    report(points)
    if args.calibrate:
        constants, held = calibrate(law_draws, args.seed)
        print(f"\nthe drift's constants on every source: {constants}")
        held.to_csv(args.out / "backtest_real_calibration_points.csv", index=False)
        compare_leave_one_out(points, held, args.out)


if __name__ == "__main__":
    main()
