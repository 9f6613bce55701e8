"""Families that differ in efficiency, on real runs: the OLMo ladder's token multipliers as groups.

Ruan et al.'s observational scaling laws as the downstream issue asks for it: one accuracy curve
against compute ``C = 6 N D``, shared in shape, each group shifted in log compute (``pooled=["C_mid"]``),
a group's largest model predicted from the rest. The ladder trains five sizes (190M-3B) at each of
0.5, 1, 2, 5 and 10 x Chinchilla's tokens; the multiplier is the group (the 1 x runs with their
reruns). Each run's accuracy is the mean of its last 5 evaluations, on the OLMo paper's eight tasks.

Settings: ``one`` holds out one group's 3B run(s) at a time, every other run in the fit (the issue's
"each family's largest model predicted from the rest"); ``all`` holds out every group's 3B at once (0.4
decades of size beyond every group). Curves:

- ``pooled``: ``AccuracyLaw("C", chance)``, ``group="xC", pooled=["C_mid"]``, the shape shared;
- ``pooled steepness``: the same with the steepness ``B`` pooled too (each group its own, about the
  population's);
- ``one curve``: the same law with no groups.

The baseline is the issue's ten-line one: least squares of ``logit(acc)`` on ``log C``, one slope and an
intercept per group, on the same runs. Scored: the error of the median in accuracy points and whether
the 90% interval of a new run covers the held-out accuracy.

    BAYESCALE_DATA_DIR=../shared/datasets python benchmarks/downstream_families.py
"""

from __future__ import annotations

import argparse
import time
import warnings

import pandas as pd
from backtest_families import band_scores, own_reach
from downstream_olmo import PAPER_TASKS, final_runs, logit_baseline

import bayescale as bs


def fit_curve(curve: str, train: pd.DataFrame, chance: float, seed: int) -> bs.ScalingFit:
    law = bs.laws.AccuracyLaw("C", chance=chance)
    if curve in ("pooled", "pooled steepness"):
        pooled = ["C_mid"] if curve == "pooled" else ["C_mid", "B"]
        shape = [name for name in law.parameter_names if name not in pooled]
        model = bs.ScalingModel(law, target="acc", group="xC", pooled=pooled, shared=shape)
        return model.fit(train[["C", "acc", "xC"]], seed=seed)
    return bs.ScalingModel(law, target="acc").fit(train[["C", "acc"]], seed=seed)


def points(accuracy):
    """Accuracy in points: the scale the bands are scored on."""
    return 100 * accuracy


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--settings", default="one,all")
    parser.add_argument("--curves", default="pooled,one curve")
    parser.add_argument("--tasks", default=",".join(PAPER_TASKS))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=None, help="a folder for downstream_families.csv")
    args = parser.parse_args()
    final = final_runs(bs.datasets.load("olmo_ladder_tasks"), "all")
    largest = final["N"] == final["N"].max()
    holdouts = {"one": [("one", final["xC"] == g) for g in sorted(final["xC"].unique())], "all": [("all", None)]}
    rows = []
    for task in args.tasks.split(","):
        runs = final[final["task"] == task]
        chance = float(runs["chance"].iloc[0])
        for setting in args.settings.split(","):
            for name, chosen in holdouts[setting]:
                held = largest[runs.index] & (True if chosen is None else chosen[runs.index])
                train, test = runs[~held], runs[held]
                guess = logit_baseline(train, test, group="xC")
                for curve in args.curves.split(","):
                    start = time.perf_counter()
                    with warnings.catch_warnings(record=True) as caught:
                        warnings.simplefilter("always", bs.SamplerWarning)
                        fit = fit_curve(curve, train, chance, args.seed)
                        band = fit.predict(test[["C", "xC"]] if curve != "one curve" else test[["C"]]).interval(0.9)
                    seconds = time.perf_counter() - start
                    scores = band_scores(band, test["acc"], scale=points)
                    own = band_scores(own_reach(fit, test), test["acc"], "_own_reach", scale=points)
                    for i in range(len(test)):
                        actual = test["acc"].iloc[i]
                        rows.append(
                            {
                                "task": task,
                                "setting": name,
                                "run": test["run"].iloc[i],
                                "curve": curve,
                                "actual": actual,
                                "median": band["median"].iloc[i],
                                "error": 100 * abs(band["median"].iloc[i] - actual),
                                "covered": scores["covered"][i],
                                "width": scores["width"][i],
                                "interval_score": scores["interval_score"][i],
                                "covered_own_reach": own["covered_own_reach"][i],
                                "width_own_reach": own["width_own_reach"][i],
                                "interval_score_own_reach": own["interval_score_own_reach"][i],
                                "baseline_error": 100 * abs(guess[i] - actual),
                                "warnings": len(caught),
                                "seconds": seconds,
                            }
                        )
        print(f"{task} done", flush=True)
    table = pd.DataFrame(rows)
    if args.out:
        table.to_csv(f"{args.out}/downstream_families.csv", index=False)
    summary = table.groupby(["setting", "curve"], sort=False).agg(
        error=("error", "mean"),
        baseline=("baseline_error", "mean"),
        covered=("covered", "sum"),
        pairs=("covered", "size"),
        width=("width", "median"),
        interval_score=("interval_score", "mean"),
        covered_own_reach=("covered_own_reach", "sum"),
        width_own_reach=("width_own_reach", "median"),
        interval_score_own_reach=("interval_score_own_reach", "mean"),
        warned=("warnings", lambda w: int((w > 0).sum())),
        seconds=("seconds", "median"),
    )
    print(summary.round(2).to_string())
    per_task = table.groupby(["setting", "curve", "task"], sort=False)[["error", "baseline_error"]].mean()
    print(per_task.round(2).to_string())


if __name__ == "__main__":
    main()
