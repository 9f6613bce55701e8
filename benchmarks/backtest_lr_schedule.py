"""Real-data backtest of the learning-rate schedule law: fit the checkpoints of short runs, predict longer ones.

The OLMo ladder trains every size at 0.5, 1, 2, 5 and 10 x Chinchilla's tokens, each run with its
own schedule (warmup, then a decay to the run's own end), and logs the learning rate and the C4
loss at every checkpoint. For each size, the ``lr_schedule`` law (Tissue et al. 2024) is fitted to
the checkpoints of the 0.5x, 1x and 2x runs (after warmup, every ``THIN``-th checkpoint), with its
inputs from ``bs.laws.lr_areas``, and predicts the final loss of the 5x and 10x runs (2.5 and 5
times the longest run fitted). Reported per size and target: ARE of the posterior median and
whether the 90% interval covers.

Baseline, side by side: the final losses of the three short runs, a straight line in
log(loss) against log(D), extrapolated (what a lab without the schedule law does with the same
three runs; it cannot use the checkpoints, whose learning rate has not decayed).

``--runs-as-groups`` gives each fitted run its own ``L0`` about the size's (pooled, the shape
shared), and predicts a held-out run as a new one.

    BAYESCALE_DATA_DIR=../shared/datasets python benchmarks/backtest_lr_schedule.py [--runs-as-groups]
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np
import pandas as pd

import bayescale as bs

FITTED = (0.5, 1.0, 2.0)  # token multiples whose checkpoints are fitted
PREDICTED = (5.0, 10.0)  # token multiples whose final loss is predicted
THIN = 4  # every THIN-th checkpoint after warmup: neighbouring checkpoints share most of their noise
TARGET = "loss_c4_en"


def runs_with_areas() -> pd.DataFrame:
    ladder = bs.datasets.load("olmo_ladder")
    ladder = ladder[(ladder["kind"] == "ladder") & ~ladder["rerun"]]
    parts = []
    for _, run in ladder.groupby("run"):
        run = run.sort_values("step")
        areas = bs.laws.lr_areas(run["step"].to_numpy(int), run["lr"].to_numpy())
        parts.append(run.join(areas, on="step"))
    return pd.concat(parts, ignore_index=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--runs-as-groups",
        action="store_true",
        help="each fitted run its own L0 (pooled), the shape shared; a held-out run draws a new L0",
    )
    options = parser.parse_args()
    groups = dict(group="run", pooled=["L0"], shared=["A", "alpha", "C"]) if options.runs_as_groups else {}
    data = runs_with_areas()
    rows = []
    for size, runs in data.groupby("size", sort=False):
        train = runs[runs["xC"].isin(FITTED)]
        train = train[train["step"] >= train.groupby("run")["lr"].transform("idxmax").map(train["step"])]
        train = train[train.groupby("run").cumcount(ascending=False) % THIN == 0]  # each run's final kept
        finals = runs.sort_values("step").groupby("run").tail(1)
        held = finals[finals["xC"].isin(PREDICTED)]
        start = time.perf_counter()
        model = bs.ScalingModel("lr_schedule", target=TARGET, inputs={"S1": "S1", "S12": "S12"}, **groups)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", bs.SamplerWarning)  # health is reported in the table
            fit = model.fit(train, seed=0, progress_bar=False)
        new = {"run": "a new run"} if groups else {}
        table = fit.predict(held[["S1", "S12"]].assign(**new)).interval(0.9)
        short = finals[finals["xC"].isin(FITTED)]
        slope, intercept = np.polyfit(np.log(short["D"]), np.log(short[TARGET]), 1)
        line = np.exp(intercept + slope * np.log(held["D"].to_numpy()))
        for i, (_, row) in enumerate(held.iterrows()):
            actual = float(row[TARGET])
            rows.append(
                {
                    "size": size,
                    "xC": row["xC"],
                    "checkpoints fitted": len(train),
                    "loss": actual,
                    "ARE schedule law": abs(table["median"].iloc[i] - actual) / actual,
                    "covered": bool(table["lower"].iloc[i] <= actual <= table["upper"].iloc[i]),
                    "90% width": (table["upper"].iloc[i] - table["lower"].iloc[i]) / actual,
                    "ARE power line": abs(line[i] - actual) / actual,
                    "healthy": fit.healthy,
                    "seconds": time.perf_counter() - start,
                }
            )
            print(rows[-1], flush=True)
    out = pd.DataFrame(rows)
    print(out.to_string(index=False, float_format=lambda v: f"{v:.4g}"))
    law, line = out["ARE schedule law"].mean(), out["ARE power line"].mean()
    covered, healthy = out["covered"].sum(), out["healthy"].sum()
    print(f"\nmean ARE: schedule law {law:.2%}, power line {line:.2%}; 90% coverage {covered}/{len(out)}; "
          f"healthy {healthy}/{len(out)}")  # fmt: skip


if __name__ == "__main__":
    main()
