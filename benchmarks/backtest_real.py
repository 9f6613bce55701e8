"""Real-data backtests of extrapolation: every public curve we have, cut by scale, fitted below, scored above.

For every case of the corpus (a data set, a law and the column that orders its runs by scale)
``bs.validation.backtest`` fits the runs at or below ``max / 10**k`` for k = 0.5, 1, 2, 3 decades
and scores the predictions of the runs above: coverage of the 50/80/90/95% intervals, ARE of
the median, interval score and CRPS of log(target). Predictors, side by side on the same
held-out runs: the model (with its extrapolation risk, ``bs.discrepancy.Drift``), the same
posterior without the risk ("law only", the model before the risk existed), and Besiroglu et
al.'s Huber fit with bootstrap intervals ("bootstrap").

    BAYESCALE_DATA_DIR=../shared/datasets python benchmarks/backtest_real.py --out benchmarks/results

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


def corpus(only: str | None = None) -> list[Case]:
    chinchilla_law = bs.laws.Chinchilla()
    saturating = bs.laws.SaturatingPowerLaw
    cases = []
    chin = bs.datasets.load("chinchilla")
    chin = chin[~chin["besiroglu_excluded"]].reset_index(drop=True)
    cases.append(Case("chinchilla", "chinchilla", bs.ScalingModel(chinchilla_law), chin, "C"))
    cases.append(
        Case("chinchilla front", "chinchilla", bs.ScalingModel(saturating("C")), front(chin, "C", "loss"), "C")
    )
    olmo = bs.datasets.load("olmo_ladder")
    ladder = olmo[olmo["kind"] == "ladder"]
    ladder = ladder.loc[ladder.groupby("run")["step"].idxmax()]
    targets = olmo_targets(olmo)
    for column in OLMO_SETS:
        model = bs.ScalingModel(chinchilla_law, target=column)
        cases.append(Case(f"olmo {column[5:]}", "olmo", model, ladder.reset_index(drop=True), "C", targets))
    porian = bs.datasets.load("porian_isoflop")
    for recipe, runs in porian.groupby("recipe"):
        runs = runs.reset_index(drop=True)
        cases.append(Case(f"porian {recipe}", "porian", bs.ScalingModel(chinchilla_law), runs, "C"))
        cases.append(
            Case(f"porian front {recipe}", "porian", bs.ScalingModel(saturating("C")), front(runs, "C", "loss"), "C")
        )
    colpret = bs.datasets.load("colpret_final")
    for family in ("GPT-3", "OPT"):  # Revisiting-LM's 5 sizes leave too few runs below any cut
        runs = colpret[colpret["family"] == family].dropna(subset=["loss_nats"]).reset_index(drop=True)
        model = bs.ScalingModel(saturating("N"), target="loss_nats")
        cases.append(Case(f"colpret {family}", f"colpret {family}", model, runs, "N"))
    contour = colpret[(colpret["family"] == "GPT2-datablations-contour") & (colpret["epochs"].fillna(1) <= 1)]
    model = bs.ScalingModel(chinchilla_law, target="loss_nats")
    cases.append(Case("colpret datablations", "colpret datablations", model, contour.reset_index(drop=True), "C"))
    return [c for c in cases if only is None or only in c.name]


def run(cases: list[Case], draws: int, seed: int, bootstrap: int, out: Path) -> tuple[pd.DataFrame, dict]:
    """Pointwise scores of every case, and the law-only log draws of every held-out point (for --calibrate).

    Both are written to ``out`` after every case, so that an interrupted run keeps what it did.
    """
    frames, law_draws = [], {}
    for case in cases:
        start = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", bs.SamplerWarning)
            try:
                study = bs.validation.backtest(
                    case.model, case.data, scale=case.scale, seed=seed, warmup=draws, draws=draws,
                    bootstrap_refits=bootstrap, progress_bar=False, keep_draws=True,
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
        pd.concat(frames, ignore_index=True).to_csv(out / "backtest_real.csv", index=False)
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
    x = case.data[case.scale].to_numpy()
    distance = np.log10(case.targets[case.scale].to_numpy() / x.max())
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

NODES = 16  # Gauss-Hermite nodes over each of log(trend) and log(wiggle)
LENGTHS = (0.5, 1.0, 2.0)  # correlation lengths of the wiggle tried (decades)


def split_terms(kept: dict, length: float, power: float = 1.0) -> list:
    """Per held-out split: residuals from the law-only mean, their covariance, the drift's direction and wiggle."""
    out = []
    for (case, source, split), d in kept.items():
        if d["sigma"] is None:
            continue
        r = np.log(d["observed"]) - d["log_draws"].mean(axis=0)
        cov = np.atleast_2d(np.cov(d["log_draws"], rowvar=False))
        cov = cov + 1e-6 * np.mean(np.diag(cov)) * np.eye(len(r))  # draws of runs at one point are collinear
        g = np.median(d["sigma"]) * d["distance"] ** power
        x = d["log10_x"]
        corr = np.exp(-((x[:, None, :] - x[None, :, :]) ** 2).sum(-1) / (2 * length**2))
        out.append((case, source, split, r, cov, g, corr * np.outer(g, g)))
    return out


def case_loglik(splits, theta):
    """log of one curve's marginal likelihood: its splits share a trend and a wiggle scale, each log-normal."""
    mu_t, sd_t, mu_k, sd_k = theta
    nodes, weights = np.polynomial.hermite_e.hermegauss(NODES)
    log_w = np.log(weights) - 0.5 * np.log(2 * np.pi)
    t2 = np.exp(2 * (mu_t + sd_t * nodes))  # tau^2 at the nodes
    total = np.zeros((NODES, NODES))  # (kappa node, tau node)
    for r, cov, g, gkg in splits:
        for i, k in enumerate(np.exp(mu_k + sd_k * nodes)):
            total_cov = cov + k**2 * gkg
            factor = np.linalg.cholesky(total_cov + 1e-9 * np.mean(np.diag(total_cov)) * np.eye(len(r)))
            a_r = np.linalg.solve(factor, r)
            a_g = np.linalg.solve(factor, g)
            logdet = 2 * np.log(np.diag(factor)).sum()
            gg, gr, rr = a_g @ a_g, a_g @ a_r, a_r @ a_r
            total[i] += -0.5 * (
                len(r) * np.log(2 * np.pi) + logdet + np.log1p(t2 * gg) + rr - t2 * gr**2 / (1 + t2 * gg)
            )
    return special.logsumexp(total + log_w[:, None] + log_w[None, :])


def fit_drift(terms) -> tuple[np.ndarray, float]:
    """Maximum marginal likelihood (trend, trend_sd, wiggle, wiggle_sd) over the curves in ``terms``."""
    cases: dict = {}
    for case, _, _, r, cov, g, gkg in terms:
        cases.setdefault(case, []).append((r, cov, g, gkg))

    def negative(theta):
        if np.any(np.abs(theta) > 6):  # medians and spreads within e^-6 .. e^6: beyond, nothing is learned
            return np.inf
        t = (theta[0], np.exp(theta[1]), theta[2], np.exp(theta[3]))
        return -sum(case_loglik(c, t) for c in cases.values())

    start = np.log([1.0, 0.5, 0.5, 0.5])
    found = optimize.minimize(negative, start, method="Nelder-Mead", options={"xatol": 1e-3, "fatol": 1e-3})
    return np.exp(found.x), -found.fun


def score_drift(kept: dict, drift, seed: int) -> pd.DataFrame:
    """Pointwise coverage, interval score and ARE of the law-only draws plus ``drift``'s draws."""
    import jax

    from bayescale.studies.validation import _scores

    frames = []
    for i, ((case, source, split), d) in enumerate(kept.items()):
        if d["sigma"] is None:
            continue
        n = len(d["distance"])
        key = jax.random.key(seed + i)
        shift = drift.log_deviation(key, d["log10_x"], d["distance"], np.zeros(n, int), d["sigma"])
        prediction = bs.Prediction(pd.DataFrame(index=range(n)), d["log_draws"], d["log_draws"] + shift)
        frames.append(
            _scores(prediction, d["observed"], bs.validation.LEVELS).assign(case=case, source=source, decades=split)
        )
    return pd.concat(frames, ignore_index=True)


def calibrate(kept: dict, seed: int) -> tuple[dict, pd.DataFrame]:
    """The drift's constants on every source, and each source scored with constants from the others."""
    best = None
    for length in LENGTHS:
        (trend, trend_sd, wiggle, wiggle_sd), loglik = fit_drift(split_terms(kept, length))
        print(f"length {length}: trend {trend:.3f} (sd {trend_sd:.3f}), wiggle {wiggle:.3f} (sd {wiggle_sd:.3f}); "
              f"log marginal likelihood {loglik:.1f}", flush=True)  # fmt: skip
        if best is None or loglik > best[1]:
            best = (dict(trend=trend, trend_sd=trend_sd, wiggle=wiggle, wiggle_sd=wiggle_sd, length=length), loglik)
    constants = best[0]
    terms = split_terms(kept, constants["length"])
    frames = []
    for source in sorted({key[1] for key in kept}):
        (trend, trend_sd, wiggle, wiggle_sd), _ = fit_drift([t for t in terms if t[1] != source])
        drift = bs.discrepancy.Drift(trend, trend_sd, wiggle, wiggle_sd, length=constants["length"])
        held = {key: d for key, d in kept.items() if key[1] == source}
        frames.append(score_drift(held, drift, seed).assign(trend=trend, wiggle=wiggle))
        print(f"without {source}: trend {trend:.3f} (sd {trend_sd:.3f}), wiggle {wiggle:.3f} (sd {wiggle_sd:.3f})",
              flush=True)  # fmt: skip
    return constants, pd.concat(frames, ignore_index=True)


def report(points: pd.DataFrame) -> None:
    levels = bs.validation.LEVELS
    splits = points[points["decades"].astype(str).isin(["1.0", "2.0"])]
    print("\nPooled over the cuts at 1 and 2 decades, per source:")
    print(summarise(splits, ["source", "predictor"], levels).round(3).to_string())
    print("\nPooled over all cuts, by distance beyond the fitted runs:")
    key = pd.cut(points["distance"], list(bs.validation.DISTANCE_BINS), include_lowest=True)
    print(
        summarise(points[points["decades"] != "targets"], [key.rename("distance"), "predictor"], levels)
        .round(3)
        .to_string()
    )
    print("\nBy cut, every case pooled:")
    print(summarise(points, ["decades", "predictor"], levels).round(3).to_string())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--draws", type=int, default=500, help="warmup and draws per chain (default 500)")
    parser.add_argument("--bootstrap", type=int, default=100, help="bootstrap refits per cut (default 100)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--only", default=None, help="only the cases whose name contains this")
    parser.add_argument("--calibrate", action="store_true", help="estimate the drift's constants (leave-one-out)")
    parser.add_argument("--reuse", action="store_true", help="read the fits' results from --out instead of fitting")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    if args.reuse:
        points = pd.read_csv(args.out / "backtest_real.csv")
        with open(args.out / "backtest_real_draws.pkl", "rb") as f:
            law_draws = pickle.load(f)
    else:
        points, law_draws = run(corpus(args.only), args.draws, args.seed, args.bootstrap, args.out)
    report(points)
    if args.calibrate:
        constants, held = calibrate(law_draws, args.seed)
        print(f"\nthe drift's constants on every source: {constants}")
        held.to_csv(args.out / "backtest_real_calibration.csv", index=False)
        levels = bs.validation.LEVELS
        splits = held[held["decades"].astype(str).isin(["1.0", "2.0"])]
        print("\nLeave-one-source-out, at 1 and 2 decades: law-only draws plus the drift from the other sources")
        print(summarise(splits, ["source"], levels).round(3).to_string())


if __name__ == "__main__":
    main()
