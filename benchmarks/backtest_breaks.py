"""Real-data check of the broken power law's bends: one run's learning curve, loss against tokens.

A run of the OLMo ladder logs its C4 loss at every checkpoint. Against tokens seen, the curve
bends twice: it falls fast early, flattens, then falls faster again as the learning rate decays
to zero at the run's end. For the 10x-Chinchilla run of each size (every ``THIN``-th
checkpoint), ``bs.compare_laws`` fits ``saturating_power`` (no bend), ``broken_power`` (one) and
``broken_power`` with ``breaks=2`` on the tokens ``D``, and scores them by PSIS-LOO on all the
checkpoints and by leave-future-out (fit the first three quarters of the tokens, predict the
rest: the end of the decay, which the fitted checkpoints have not seen). Reported per run and
law: the fits' health, ``elpd_loo`` and ``p_loo``, the held-out ARE and 90% coverage.

Checkpoints of one run share their noise, so the coverage is of the law's band along one curve,
not of a new run's loss. ``--random-starts``: chains start as for other laws (one random start
each), the baseline of the broken power law's start at the best of several modes.

    BAYESCALE_DATA_DIR=../shared/datasets python benchmarks/backtest_breaks.py [--runs 1B-10xC,3B-10xC]
        [--random-starts]
"""

from __future__ import annotations

import argparse
import time
import warnings
from pathlib import Path

import pandas as pd

import bayescale as bs

THIN = 2  # every THIN-th checkpoint
TARGET = "loss_c4_en"
RUNS = ("190M-10xC", "370M-10xC", "760M-10xC", "1B-10xC", "3B-10xC")
RESULTS = Path(__file__).parent / "results"


def models() -> dict[str, bs.ScalingModel]:
    return {
        "no bend": bs.ScalingModel(bs.laws.SaturatingPowerLaw("D")),
        "one bend": bs.ScalingModel(bs.laws.BrokenPowerLaw("D")),
        "two bends": bs.ScalingModel(bs.laws.BrokenPowerLaw("D", breaks=2)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", default=",".join(RUNS), help="comma-separated OLMo ladder runs")
    parser.add_argument("--random-starts", action="store_true", help="baseline: one random start per chain")
    options = parser.parse_args()
    starts = {"init": "random", "mode_starts": 1} if options.random_starts else {}
    ladder = bs.datasets.load("olmo_ladder")
    rows = []
    for run in options.runs.split(","):
        curve = ladder[ladder["run"] == run].sort_values("D")[["D", TARGET]].dropna().iloc[THIN - 1 :: THIN]
        curve = curve.rename(columns={TARGET: "loss"})
        start = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", bs.SamplerWarning)  # health is reported in the table
            comparison = bs.compare_laws(models(), curve, seed=0, **starts)
        table = comparison.table()
        for name in models():
            rows.append(
                {
                    "run": run,
                    "checkpoints": len(curve),
                    "law": name,
                    "healthy_all": comparison.fits[name].healthy,
                    "healthy_future": comparison.future_fits[name].healthy,
                    "elpd_loo": table.loc[name, "elpd_loo"],
                    "p_loo": table.loc[name, "p_loo"],
                    "are_future": table.loc[name, "are_future"],
                    "coverage_90": table.loc[name, "coverage_0.9"],
                    "weight_loo": table.loc[name, "weight_loo"],
                }
            )
        print(f"{run}: {len(curve)} checkpoints, {time.perf_counter() - start:.0f} s", flush=True)
    out = pd.DataFrame(rows)
    RESULTS.mkdir(exist_ok=True)
    out.to_csv(RESULTS / f"breaks_olmo{'_random_starts' if options.random_starts else ''}.csv", index=False)
    with pd.option_context("display.width", 200):
        print(out.round(4).to_string(index=False))


if __name__ == "__main__":
    main()
