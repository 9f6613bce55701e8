"""The full calibration study behind the README's "How we know the intervals are right".

1. Simulation-based calibration (200 simulations each, 2 chains x (500 + 500)) of every
   built-in law at a realistic design, and of a hierarchical model: uniformity p-values
   of the ranks, rank histograms in ``benchmarks/results/sbc_<case>.png``.
2. Extrapolation coverage: simulated at the 3/4 smallest scales, predicted at the rest,
   empirical coverage of the 50/80/90/95% predictive intervals (with standard errors).
3. The same for the Chinchilla law at the design of the real Chinchilla runs (fit at
   C <= 3.4e20 FLOPs, predict the larger runs) when the dataset is available: where the
   real data's coverage falls short of the simulated one, the law is misspecified.

Writes ``benchmarks/results/calibration_pvalues.csv`` and ``calibration_coverage.csv``.

    python benchmarks/calibration_study.py [--sims 200] [--only chinchilla,power]
        [--warmup 500 --draws 500] [--sbc-only] [--scheduler tcp://host:8786 or local]
"""

from __future__ import annotations

import argparse
import time
import warnings
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from backtest_real import dask_client  # noqa: E402

import bayescale as bs  # noqa: E402

RESULTS = Path(__file__).parent / "results"
QUICKSTART = Path(__file__).parents[1] / "data" / "simulated_runs.csv"
COMPUTE = pd.DataFrame({"C": np.geomspace(1e17, 1e21, 12)})
BENCHMARK = COMPUTE.assign(n_items=200)


def one_input(law, **kwargs):
    return bs.ScalingModel(law, target="y", inputs={law.inputs[0]: "C"}, **kwargs)


def schedules() -> pd.DataFrame:
    """Checkpoints every 200 steps of three runs (2k, 4k, 8k steps): warmup, constant rate, linear cool-down."""
    frames = []
    for total in (2000, 4000, 8000):
        steps = np.arange(1, total + 1)
        cool = np.clip((steps - 0.8 * total) / (0.2 * total), 0, 1)
        lr = 1e-3 * np.minimum(steps / 200, 1) * (1 - 0.9 * cool)
        frames.append(bs.laws.lr_areas(steps, lr).iloc[199::200])
    return pd.concat(frames, ignore_index=True)[["S1", "S12"]]


def cases() -> dict:
    binomial = {"likelihood": bs.likelihoods.Binomial("n_items")}
    families = pd.DataFrame({"C": np.tile(np.geomspace(1e17, 1e21, 6), 3), "family": np.repeat(["a", "b", "c"], 6)})
    n, s, d, epochs = np.geomspace(1e7, 1e10, 6), np.geomspace(1e3, 1e5, 6), np.geomspace(1e10, 3e11, 3), [1, 4, 16, 64]
    steps = pd.MultiIndex.from_product([n, s], names=["N", "S"]).to_frame(index=False)
    repeated = pd.MultiIndex.from_product([n[2:], d, epochs], names=["N", "D", "epochs"]).to_frame(index=False)
    return {
        "chinchilla": (bs.ScalingModel("chinchilla"), pd.read_csv(QUICKSTART)[["N", "D"]]),
        "overtraining": (bs.ScalingModel("overtraining"), pd.read_csv(QUICKSTART)[["N", "D"]]),
        "kaplan": (bs.ScalingModel("kaplan"), pd.read_csv(QUICKSTART)[["N", "D"]]),
        "farseer": (bs.ScalingModel("farseer"), pd.read_csv(QUICKSTART)[["N", "D"]]),
        "kaplan_steps": (bs.ScalingModel("kaplan_steps"), steps),
        "data_constrained": (
            bs.ScalingModel("data_constrained"),
            repeated.assign(U=repeated["D"] / repeated["epochs"])[["N", "D", "U"]],
        ),
        "lr_schedule": (bs.ScalingModel("lr_schedule"), schedules()),
        "power": (one_input(bs.laws.PowerLaw("C")), COMPUTE),
        "saturating": (one_input(bs.laws.SaturatingPowerLaw("C")), COMPUTE),
        "broken": (one_input(bs.laws.BrokenPowerLaw("C")), pd.DataFrame({"C": np.geomspace(1e17, 1e21, 20)})),
        "broken2": (
            one_input(bs.laws.BrokenPowerLaw("C", breaks=2)),
            pd.DataFrame({"C": np.geomspace(1e15, 1e23, 40)}),
        ),
        "sigmoid": (one_input(bs.laws.SigmoidLaw("C")), COMPUTE),
        "accuracy": (one_input(bs.laws.AccuracyLaw("C", chance=0.25)), COMPUTE),
        # the chain's second step: accuracy against task loss (bits per byte), ceiling 1 at zero loss
        "accuracy_known_ceiling": (
            one_input(bs.laws.AccuracyLaw("bpb", chance=0.25, rising=False, ceiling=1.0)),
            pd.DataFrame({"C": np.geomspace(0.5, 1.5, 12)}),
        ),
        "rate_sigmoid": (one_input(bs.laws.RateSigmoidLaw("C"), **binomial), BENCHMARK),
        "exponentiated": (one_input(bs.laws.ExponentiatedPowerLaw("C"), **binomial), BENCHMARK),
        "hierarchical": (
            bs.ScalingModel(
                bs.laws.SaturatingPowerLaw("C"), target="y", group="family", pooled=["alpha"], shared=["E"]
            ),
            families,
        ),
    }


def split(design: pd.DataFrame, model) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Smallest three quarters of the runs (by the product of the inputs) to fit, the rest to predict; against a
    loss (a falling accuracy law) the largest three quarters, so that the predicted runs are the better models."""
    scale = np.prod([design[c].to_numpy(dtype=float) for c in model.inputs.values()], axis=0)
    scale = scale if getattr(model.law, "rising", True) else 1.0 / scale
    small = scale <= np.quantile(scale, 0.75)
    return design[small], design[~small]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sims", type=int, default=200)
    parser.add_argument("--only", default="")
    parser.add_argument("--warmup", type=int, default=500, help="per chain; other values tag the case names")
    parser.add_argument("--draws", type=int, default=500, help="per chain; other values tag the case names")
    parser.add_argument("--sbc-only", action="store_true", help="skip the extrapolation coverage")
    parser.add_argument(
        "--scheduler", default=None, help="fit on a Dask cluster: its address (tcp://host:8786), or 'local'"
    )
    args = parser.parse_args()
    length = {"warmup": args.warmup, "draws": args.draws, "client": dask_client(args.scheduler)}
    tag = "" if (args.warmup, args.draws) == (500, 500) else f"_w{args.warmup}_d{args.draws}"
    RESULTS.mkdir(exist_ok=True)
    warnings.simplefilter("always", bs.SamplerWarning)
    chosen = cases()
    only = set(args.only.split(",")) if args.only else set()
    unknown = only - set(chosen) - {"chinchilla_real"}
    if unknown:
        parser.error(f"unknown cases {sorted(unknown)}; choose from {sorted(chosen) + ['chinchilla_real']}")
    if only:
        chosen = {k: v for k, v in chosen.items() if k in only}
    pvalues, coverage = [], []
    for case, (model, design) in chosen.items():
        name = case + tag
        start = time.perf_counter()
        study = bs.calibration.sbc(model, design, n_sims=args.sims, seed=0, **length)
        elapsed = time.perf_counter() - start
        study.plot().savefig(RESULTS / f"sbc_{name}.png", dpi=80)
        table = study.table().assign(case=name, unhealthy=int((~study.health["healthy"]).sum()), seconds=elapsed)
        pvalues.append(table)
        print(
            f"\n== {name}: {args.sims} simulations in {elapsed:.0f} s, "
            f"{(~study.health['healthy']).sum()} unhealthy fits"
        )
        print(table[["p_value", "rank_mean", "rank_sd", "coverage_90"]].round(3).to_string())
        if args.sbc_only:
            continue
        small, large = split(design, model)
        start = time.perf_counter()
        cov = bs.calibration.extrapolation_coverage(model, small, large, n_sims=args.sims, seed=1, **length)
        print(
            f"extrapolation coverage ({len(small)} runs fitted, {len(large)} predicted, "
            f"{time.perf_counter() - start:.0f} s):"
        )
        print(cov.table().round(3).to_string())
        coverage.append(cov.table().assign(case=name))
    if (not only or "chinchilla_real" in only) and not args.sbc_only:
        try:
            df = bs.datasets.load("chinchilla")
        except bs.datasets.DatasetNotAvailable as err:
            print(f"\n(chinchilla design skipped: {err})")
        else:
            df = df[~df["besiroglu_excluded"]]
            compute = 6 * df["N"] * df["D"]
            small, large = df[compute <= 3.4e20][["N", "D"]], df[compute > 3.4e20][["N", "D"]]
            model = bs.ScalingModel("chinchilla")
            cov = bs.calibration.extrapolation_coverage(
                model, small.assign(loss=df["loss"]), large, n_sims=args.sims, seed=2, **length
            )
            print(f"\n== chinchilla_real design ({len(small)} runs fitted, {len(large)} predicted):")
            print(cov.table().round(3).to_string())
            coverage.append(cov.table().assign(case="chinchilla_real_design" + tag))
    _save(pvalues, RESULTS / "calibration_pvalues.csv")
    _save(coverage, RESULTS / "calibration_coverage.csv")


def _save(tables: list[pd.DataFrame], path: Path) -> None:
    """Write this run's cases, keeping the other cases of an earlier run (``--only`` reruns a few)."""
    if not tables:
        return
    new = pd.concat(tables)
    if path.exists():
        old = pd.read_csv(path, index_col=0)
        new = pd.concat([old[~old["case"].isin(new["case"])], new])
    new.to_csv(path)


if __name__ == "__main__":
    main()
