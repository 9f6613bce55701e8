"""Real-data backtest of ``fit.next_runs``: runs chosen by the design against random runs and the habitual order.

Each case is a real scaling study cut in three: a *start* (the cheapest runs, which every strategy
has), a *pool* (the runs a strategy may add, at their real cost 6ND and with their real loss) and the
*held out* runs (the largest, never fitted: on IsoFLOP data the three lowest losses of each of the
largest budgets, the compute-optimal runs a lab plans). The design's target is the predicted loss
at the geometric centre of the held-out runs' (N, D) (their configurations are planned, their
losses unknown), extrapolation risk included. At each compute checkpoint a
strategy adds runs from the pool within the checkpoint's total compute:

- ``design``: ``fit.next_runs(pool, target=..., budget=left)``'s greedy batch (or its best-ranked
  run when no narrowing is resolved); refit; repeat while runs fit the budget (at most ``INNER``
  rounds per checkpoint);
- ``random``: runs in a random order while they fit the budget (``--repeats`` seeds, averaged);
- ``habitual``: the lab's habit. IsoFLOP profiles from the smallest budget up (Chinchilla, Porian),
  or the ladder's new sizes (760M, 1B) at growing token multiples, 0.5xC first (OLMo ladder).

On Porian et al.'s profiles only the runs within ``VALLEY`` (4x) of each budget's best size are kept:
far from the optimum the Chinchilla law misfits their runs (on whole profiles up to 8e17 FLOPs the
fitted noise is 6%), which their own fits, made at the optimum, avoid.

The checkpoints are the habit's own: the compute of the start plus each further profile or size.
Each fit is the package's default (``--priors literature``: with the literature's exponents); scores
are those of ``fit.predict`` (extrapolation risk
included) on the held-out runs: mean ARE of the median and coverage of the 90% interval. The
summary asks: with what share of the habit's final compute does the design first reach the habit's
final error (the issue's target: <= 50%)?

    BAYESCALE_DATA_DIR=../shared/datasets python benchmarks/backtest_design.py --out benchmarks/results
"""

from __future__ import annotations

import argparse
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

import bayescale as bs

HELD_PER_BUDGET = 3  # held-out runs per held-out IsoFLOP budget: its lowest losses
INNER = 8  # design rounds (rank, add its batch, refit) at most per checkpoint
CHINCHILLA_BUDGETS = np.array([6e18, 1e19, 3e19, 6e19, 1e20, 3e20, 6e20, 1e21, 3e21])  # Hoffmann et al.'s IsoFLOPs
VALLEY = 4.0  # Porian: runs within this factor of their budget's best size (None: whole profiles)
PORIAN_RECIPES = ("rw|tuned|short|const|standard|val", "owt2|tuned|short|const|standard|val")


@dataclass
class Case:
    name: str
    start: pd.DataFrame
    pool: pd.DataFrame  # with a "step" column: the habit's order, profile by profile (or size by size)
    held_out: pd.DataFrame
    habit_steps: int  # steps of the habit taken by the last checkpoint (the pool may hold more)


def isoflop_case(name: str, runs: pd.DataFrame, profile: np.ndarray, start: int, last: int, held_from: int) -> Case:
    """Profiles numbered from 0 (the smallest budget): the start's, the pool's up to ``last`` + 1 (one more than
    the habit reaches, so the design has runs the habit did not take), and the held out: the ``HELD_PER_BUDGET``
    lowest losses of each profile from ``held_from`` (the compute-optimal runs a lab plans to train)."""
    runs = runs.assign(step=profile - start).sort_values(["step", "N"])
    held = runs[runs["step"] >= held_from - start]
    return Case(
        name,
        start=runs[runs["step"] <= 0],
        pool=runs[(runs["step"] > 0) & (runs["step"] <= last + 1 - start)],
        held_out=held.sort_values("loss").groupby("step").head(HELD_PER_BUDGET).sort_values(["step", "N"]),
        habit_steps=last - start,
    )


def cases() -> list[Case]:
    out = []
    chinchilla = bs.datasets.load("chinchilla")
    chinchilla = chinchilla[~chinchilla["besiroglu_excluded"]][["N", "D", "loss"]].reset_index(drop=True)
    c = 6 * chinchilla["N"] * chinchilla["D"]
    profile = np.abs(np.log(c.to_numpy()[:, None] / CHINCHILLA_BUDGETS)).argmin(axis=1)
    # start 6e18; the habit goes up to 1e20 (profile 4); the pool holds 3e20 too; held out from 1e21 up
    out.append(isoflop_case("chinchilla", chinchilla, profile, start=0, last=4, held_from=7))

    porian = bs.datasets.load("porian_isoflop")
    for recipe in PORIAN_RECIPES:
        runs = porian[porian["recipe"] == recipe][["N", "D", "C", "loss"]].reset_index(drop=True)
        if VALLEY is not None:  # the bottom of each IsoFLOP profile, where Porian et al. fit their laws
            best = runs.loc[runs.groupby("C")["loss"].idxmin()].set_index("C")["N"]
            runs = runs[np.abs(np.log(runs["N"] / runs["C"].map(best).to_numpy())) <= np.log(VALLEY)]
            runs = runs.reset_index(drop=True)
        budgets = np.sort(runs["C"].unique())  # 1.25e16 doubling to 2.56e19
        profile = np.searchsorted(budgets, runs["C"].to_numpy())
        # start: the two smallest budgets; the habit up to 8e17 (profile 6); held out: the two largest
        out.append(isoflop_case(f"porian {recipe}", runs.drop(columns="C"), profile, 1, 6, len(budgets) - 2))

    ladder = bs.datasets.load("olmo_ladder")
    final = ladder[(ladder["kind"] == "ladder") & ~ladder["rerun"]].sort_values("step").groupby("run").tail(1)
    final = final.rename(columns={"loss_c4_en": "loss"})[["N", "D", "xC", "loss"]].reset_index(drop=True)
    sizes = np.sort(final["N"].unique())  # 190M, 370M, 760M, 1B, 3B
    multiples = np.sort(final["xC"].unique())  # 0.5, 1, 2, 5, 10 x 20 tokens per parameter
    size = np.searchsorted(sizes, final["N"].to_numpy())
    # start: 190M and 370M at every multiple; the habit trains 760M and 1B at growing multiples (0.5xC first),
    # up to 5xC; the pool holds their 10xC runs too; held out: 3B
    runs = final.assign(step=np.searchsorted(multiples, final["xC"].to_numpy()) + 1, size=size)
    runs = runs.sort_values(["step", "N"])
    out.append(
        Case(
            "olmo ladder (C4)",
            start=runs[runs["size"] <= 1].drop(columns=["xC", "size"]),
            pool=runs[runs["size"].isin([2, 3])].drop(columns=["xC", "size"]),
            held_out=runs[runs["size"] == 4].drop(columns=["xC", "size"]),
            habit_steps=len(multiples) - 1,
        )
    )
    return out


def flops(runs: pd.DataFrame) -> np.ndarray:
    return 6.0 * runs["N"].to_numpy(float) * runs["D"].to_numpy(float)


def fit(model: bs.ScalingModel, runs: pd.DataFrame, seed: int):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", bs.SamplerWarning)  # health is counted below, not shown
        return model.fit(runs[["N", "D", "loss"]], seed=seed, progress_bar=False)


def score(result, case: Case) -> dict:
    prediction = result.predict(case.held_out[["N", "D"]])
    draws = prediction.draws()
    observed = case.held_out["loss"].to_numpy(float)
    lower, median, upper = np.quantile(draws, [0.05, 0.5, 0.95], axis=0)
    return {
        "are": float(np.mean(np.abs(median - observed) / observed)),
        "coverage": float(np.mean((lower <= observed) & (observed <= upper))),
        "width": float(np.mean((upper - lower) / observed)),
        "healthy": bool(result.healthy),
    }


def target(case: Case) -> dict:
    """The design's target: the geometric centre of the held-out runs' (N, D)."""
    return {x: float(np.exp(np.log(case.held_out[x]).mean())) for x in ("N", "D")}


def choose_habitual(case: Case, chosen: pd.Index, left: float) -> list:
    pool = case.pool.drop(index=chosen)
    picks, cost = [], flops(pool)
    for i, label in enumerate(pool.index):
        if cost[i] > left:
            break  # the habit trains its profiles in order: it does not skip ahead to a cheaper run
        picks.append(label)
        left -= cost[i]
    return picks


def choose_random(case: Case, chosen: pd.Index, left: float, rng) -> list:
    pool = case.pool.drop(index=chosen)
    order = rng.permutation(len(pool))
    picks, cost = [], flops(pool)
    for i in order:
        if cost[i] <= left:
            picks.append(pool.index[i])
            left -= cost[i]
    return picks


def run_case(case: Case, model: bs.ScalingModel, repeats: int, seed: int) -> pd.DataFrame:
    start_cost = flops(case.start).sum()
    steps = flops(case.pool).reshape(-1)
    step_of = case.pool["step"].to_numpy()
    checkpoints = [start_cost + steps[step_of <= k].sum() for k in range(1, case.habit_steps + 1)]
    rows = []
    arms = [("habitual", None), ("design", None)] + [("random", r) for r in range(repeats)]
    for arm, repeat in arms:
        rng = np.random.default_rng(seed + (repeat or 0))
        chosen = pd.Index([])
        current = fit(model, case.start, seed)
        rows.append({"case": case.name, "arm": arm, "repeat": repeat, "checkpoint": 0, "flops": start_cost,
                     "runs": len(case.start), **score(current, case)})  # fmt: skip
        for k, budget in enumerate(checkpoints, start=1):
            spent = start_cost + flops(case.pool.loc[chosen]).sum()
            if arm == "habitual":
                chosen = chosen.append(pd.Index(choose_habitual(case, chosen, budget - spent)))
            elif arm == "random":
                chosen = chosen.append(pd.Index(choose_random(case, chosen, budget - spent, rng)))
            else:
                refit = False
                for _ in range(INNER):
                    left = budget - start_cost - flops(case.pool.loc[chosen]).sum()
                    pool = case.pool.drop(index=chosen)
                    affordable = pool[flops(pool) <= left]
                    if affordable.empty:
                        break
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore", bs.DesignWarning)  # the batch stops; the refit goes on
                        table = current.next_runs(affordable[["N", "D"]], target=target(case),
                                                  budget=left)  # fmt: skip
                    batch = table.index[table["batch"] > 0]
                    if batch.empty:  # no narrowing resolved beyond the simulation's noise: the best-ranked run
                        batch = table.index[table["rank"] == 1]
                    chosen = chosen.append(batch)
                    current = fit(model, pd.concat([case.start, case.pool.loc[chosen]]), seed)
                    refit = True
            if arm != "design" or not refit:
                current = fit(model, pd.concat([case.start, case.pool.loc[chosen]]), seed)
            spent = start_cost + flops(case.pool.loc[chosen]).sum()
            rows.append({"case": case.name, "arm": arm, "repeat": repeat, "checkpoint": k, "flops": spent,
                         "runs": len(case.start) + len(chosen), **score(current, case)})  # fmt: skip
            print(f"{case.name:45s} {arm:9s} {k} {rows[-1]['flops']:.2e} FLOPs {rows[-1]['runs']:4d} runs "
                  f"ARE {rows[-1]['are']:.2%} cov {rows[-1]['coverage']:.2f}", flush=True)  # fmt: skip
    return pd.DataFrame(rows)


def summary(curves: pd.DataFrame) -> pd.DataFrame:
    """Per case: each arm's error at the last checkpoint and averaged over the checkpoints after the start,
    coverage, and the share of the habit's final compute at which the design (and random runs, averaged
    over orders) first match its final error."""
    mean = curves.groupby(["case", "arm", "checkpoint"], as_index=False)[["flops", "are", "coverage"]].mean()
    out = []
    for case, part in mean.groupby("case", sort=False):
        arms = {arm: part[(part["arm"] == arm) & (part["checkpoint"] > 0)].set_index("checkpoint")
                for arm in ("habitual", "design", "random")}  # fmt: skip
        habit = arms["habitual"]
        final = habit.index.max()
        row = {"case": case}
        for arm, frame in arms.items():
            row[f"{arm} final ARE"] = frame.loc[final, "are"]
        for arm, frame in arms.items():
            row[f"{arm} mean ARE"] = frame["are"].mean()
        for arm in ("design", "random"):  # the share of the habit's compute at which the arm first matches it
            reached = arms[arm][arms[arm]["are"] <= habit.loc[final, "are"]]
            row[f"{arm} compute to match the habit"] = (
                reached["flops"].min() / habit.loc[final, "flops"] if len(reached) else np.nan
            )
        row["coverage habitual/design/random"] = "/".join(f"{f['coverage'].mean():.2f}" for f in arms.values())
        out.append(row)
    return pd.DataFrame(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3, help="random orders per case")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--only", default=None, help="run the cases whose name contains this")
    parser.add_argument("--out", type=Path, default=None, help="folder for the curves (CSV)")
    parser.add_argument("--priors", choices=("default", "literature"), default="default", help="the law's priors")
    args = parser.parse_args()
    start = time.perf_counter()
    model = bs.ScalingModel(
        bs.laws.Chinchilla(),
        target="loss",
        inputs={"N": "N", "D": "D"},
        priors=None if args.priors == "default" else args.priors,
    )
    curves = pd.concat(
        [
            run_case(case, model, args.repeats, args.seed)
            for case in cases()
            if args.only is None or args.only in case.name
        ]
    )
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        suffix = "" if args.priors == "default" else f"_{args.priors}"
        curves.to_csv(args.out / f"backtest_design_curves{suffix}.csv", index=False)
    print(curves.groupby(["case", "arm", "checkpoint"])[["flops", "runs", "are", "coverage", "width"]].mean()
          .to_string(float_format=lambda v: f"{v:.3g}"))  # fmt: skip
    print()
    print(summary(curves).to_string(index=False, float_format=lambda v: f"{v:.3g}"))
    print(f"\n{time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
