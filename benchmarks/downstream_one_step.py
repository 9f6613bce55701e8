"""Accuracy against compute in one step on the OLMo ladder, beside the ten-line logit baseline.

The path of Ruan et al.'s observational scaling laws, for one family: each ladder run's final
accuracy (the mean of its last 5 evaluations) against its training compute ``C = 6 N D``, one
curve, predicting OLMo-2 7B-4T and 13B-5T on the paper's eight tasks. Curves:

- ``learned``: ``AccuracyLaw("C", chance)``, the floor learned near chance, the ceiling learned;
- ``ceiling-1``: the same with ``ceiling=1.0``;
- ``logit``: ``AccuracyLaw("C", chance=0, ceiling=1.0)``, a sigmoid from 0 to 1 in log compute: the
  baseline's form with bayescale's likelihood, priors and extrapolation risk.

The baseline: least squares of ``logit(acc)`` on ``log C``. Scored: the error of the median in
accuracy points and whether the 90% interval of a new run covers the target's accuracy.
``downstream_olmo.py`` is the two-step chain on the same runs and targets.

    BAYESCALE_DATA_DIR=../shared/datasets python benchmarks/downstream_one_step.py
"""

from __future__ import annotations

import argparse
import warnings

import pandas as pd
from downstream_olmo import PAPER_TASKS, final_runs, logit_baseline, targets

import bayescale as bs


def law_for(curve: str, chance: float) -> bs.laws.AccuracyLaw:
    if curve == "learned":
        return bs.laws.AccuracyLaw("C", chance=chance)
    if curve == "ceiling-1":
        return bs.laws.AccuracyLaw("C", chance=chance, ceiling=1.0)
    if curve == "logit":
        return bs.laws.AccuracyLaw("C", chance=0.0, ceiling=1.0)
    raise ValueError(f"unknown curve {curve!r}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", choices=("paper", "all"), default="paper")
    parser.add_argument("--curves", default="learned,ceiling-1,logit")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    tasks = bs.datasets.load("olmo_ladder_tasks")
    runs, goals = final_runs(tasks, args.runs), targets(tasks)
    goals["C"] = 6 * goals["N"] * goals["D"]
    rows = []
    for task in PAPER_TASKS:
        final, goal = runs[runs["task"] == task], goals[goals["task"] == task]
        chance = float(final["chance"].iloc[0])
        baseline = logit_baseline(final, goal)
        for curve in args.curves.split(","):
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always", bs.SamplerWarning)
                fit = bs.ScalingModel(law_for(curve, chance), target="acc").fit(final[["C", "acc"]], seed=args.seed)
            band = fit.predict(goal[["C"]]).interval(0.9)
            for i, target in enumerate(goal["target"]):
                actual = goal["acc"].iloc[i]
                rows.append(
                    {
                        "task": task,
                        "target": target,
                        "curve": curve,
                        "error": 100 * abs(band["median"].iloc[i] - actual),
                        "covered": band["lower"].iloc[i] <= actual <= band["upper"].iloc[i],
                        "width": 100 * (band["upper"].iloc[i] - band["lower"].iloc[i]),
                        "baseline_error": 100 * abs(baseline[i] - actual),
                        "warnings": len(caught),
                    }
                )
        print(f"{task} done", flush=True)
    table = pd.DataFrame(rows)
    summary = table.groupby(["curve", "target"], sort=False).agg(
        error=("error", "mean"),
        baseline=("baseline_error", "mean"),
        covered=("covered", "sum"),
        width=("width", "median"),
        warnings=("warnings", "sum"),
    )
    print(summary.round(2).to_string())


if __name__ == "__main__":
    main()
