"""Predict OLMo-2 7B and 13B task accuracies from the OLMo ladder alone: task loss, then accuracy.

The two steps of Bhagia et al. (2024), fitted by bayescale and chained with both posteriors
carried (:class:`bayescale.Chain`):

1. the task's bits per byte (bpb) of the correct answer against model size and tokens,
   ``bpb = E + A N^-alpha + B D^-beta`` on each ladder run's final checkpoint;
2. accuracy against bpb, ``acc = floor + (1 - floor) sigmoid(-B log(bpb / bpb_mid))``
   (:class:`bayescale.laws.AccuracyLaw` with ``ceiling=1``: at zero loss the right answer is
   always chosen, the paper's "ideal point"; the floor learned near the task's chance level; a
   LogitNormal likelihood) on every checkpoint past the first 10% of each run.

Both steps use the paper's settings: the ladder runs of its fit (190M, 370M, 760M, 1.3B at 1, 2,
5, 10 x Chinchilla tokens; ``--runs all`` adds the 3B, 0.5xC and rerun runs), a moving average
over 5 evaluations, and the targets' accuracy as the mean of their last 5 evaluations (the
7B's one annealed evaluation). Scored: the 90% interval of a new run's accuracy, and the error
of its median, beside the paper's own chained and step-2 errors at 13B (``paper_results/``).

``--step2 runs`` gives each ladder run its own midpoint (``group="run", pooled=["bpb_mid"]``), and a
new run draws one from the ladder's (``downstream_olmo_<runs>_runs.csv``); ``--thin K`` fits step 2 to
at most K checkpoints per run (``_thinK.csv``). ``--inner`` fits both steps below 3B and scores the
ladder's own 3B runs (``downstream_olmo_inner.csv``): how honest the bands are inside the ladder.

    BAYESCALE_DATA_DIR=../shared/datasets python benchmarks/downstream_olmo.py --out benchmarks/results
"""

from __future__ import annotations

import argparse
import os
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

import bayescale as bs
from bayescale import checkpoints

PAPER_TASKS = ("mmlu", "hellaswag", "arc_challenge", "arc_easy", "piqa", "csqa", "socialiqa", "openbookqa")
PAPER_RUNS = [f"{size}-{x}xC" for size in ("190M", "370M", "760M", "1B") for x in (1, 2, 5, 10)]
TARGETS = {"7B-4T": "peteish7_eval_anneal", "13B-5T": "peteish13_eval_final"}
SMOOTH = 5  # the paper's --moving_avg
SKIP = 0.1  # the paper's --skip_perc for step 2


def ladder(tasks: pd.DataFrame, runs: str, smooth: int = SMOOTH) -> pd.DataFrame:
    """The fitted ladder's checkpoints, bpb and accuracy smoothed over ``smooth`` evaluations per run."""
    df = tasks[tasks["kind"] == "ladder"]
    if runs == "paper":
        df = df[df["run"].isin(PAPER_RUNS)]
    df = df.sort_values(["task", "run", "step"]).copy()
    means = df.groupby(["task", "run"])[["bpb", "acc"]].transform(lambda s: s.rolling(smooth, min_periods=1).mean())
    return df.assign(bpb=means["bpb"], acc=means["acc"])


def past_warmup(df: pd.DataFrame) -> pd.Series:
    """Each run's checkpoints past the first ``SKIP`` of its steps: the rows step 2 is fitted to."""
    return df.groupby("run")["step"].transform(lambda s: s > s.min() + SKIP * (s.max() - s.min()))


def final_runs(tasks: pd.DataFrame, runs: str) -> pd.DataFrame:
    """Each fitted ladder run's last row per task (its accuracy the mean of its last ``SMOOTH`` evaluations),
    with its compute ``C = 6 N D`` and its group of token multiplier (``xC``: ``"1xC"``, reruns included)."""
    final = ladder(tasks, runs).sort_values("step").groupby(["task", "run"]).tail(1)
    return final.assign(C=6 * final["N"] * final["D"], xC=final["xC"].map(lambda x: f"{x:g}xC"))


def logit_baseline(train: pd.DataFrame, test: pd.DataFrame, group: str | None = None) -> np.ndarray:
    """The downstream issue's baseline: least squares of ``logit(acc)`` on ``log C``, one slope and an
    intercept (per ``group``, where given)."""
    labels = [] if group is None else sorted(train[group].unique())

    def design(df):
        dummies = [(df[group] == g).to_numpy(float) for g in labels] or [np.ones(len(df))]
        return np.column_stack([np.log(df["C"]), *dummies])

    coef, *_ = np.linalg.lstsq(design(train), np.log(train["acc"] / (1 - train["acc"])), rcond=None)
    return 1 / (1 + np.exp(-design(test) @ coef))


def targets(tasks: pd.DataFrame) -> pd.DataFrame:
    """Each target's final (N, D) and its task values averaged over its last ``SMOOTH`` evaluations."""
    rows = []
    for name, run in TARGETS.items():
        df = tasks[tasks["run"] == run].sort_values("step")
        for task, g in df.groupby("task"):
            last = g.tail(SMOOTH)
            rows.append(
                {
                    "target": name,
                    "task": task,
                    "N": g["N"].iloc[-1],
                    "D": g["D"].iloc[-1],
                    "bpb": last["bpb"].mean(),
                    "acc": last["acc"].mean(),
                }  # fmt: skip
            )
    return pd.DataFrame(rows)


def paper_errors(data_dir: Path) -> pd.DataFrame:
    """The paper's 13B errors per task: chained (both steps) and step 2 alone (from the true bpb)."""
    out = {}
    for step, name in (("chained", "chained_main.csv"), ("step2", "step2_main.csv")):
        table = pd.read_csv(data_dir / "olmo_ladder" / "paper_results" / name)
        table["task"] = table["Task"].str.replace(r"_(avg_)?(test|val)_5shot$", "", regex=True)
        out[f"paper_{step}_pred"] = table.set_index("task")["Pred"]
    return pd.DataFrame(out)


def run_task(
    df: pd.DataFrame, goal: pd.DataFrame, task: str, seed: int, step2: str = "single", thin: int | None = None
) -> list[dict]:
    chance = float(df["chance"].iloc[0])
    final = df.groupby("run").tail(1)
    first = bs.ScalingModel(bs.laws.Chinchilla(), target="bpb", inputs={"N": "N", "D": "D"}).fit(final, seed=seed)
    keep = past_warmup(df)
    law = bs.laws.AccuracyLaw("bpb", chance=chance, rising=False, ceiling=1.0)  # at zero loss, always right
    if step2 == "runs":  # each run its own midpoint about the ladder's; a new run draws one
        shape = [p.name for p in law.parameters if p.name != "bpb_mid"]
        second = bs.ScalingModel(law, target="acc", group="run", pooled=["bpb_mid"], shared=shape)
        new = {"run": "a new run"}
    else:  # one curve through every run's checkpoints
        second, new = bs.ScalingModel(law, target="acc", inputs={"bpb": "bpb"}), {}
    fitted = df[keep] if thin is None else checkpoints.thin(df[keep], run="run", step="step", keep=thin)
    second = second.fit(fitted, seed=seed)
    chain = bs.Chain(first, second)
    both = chain.predict(goal[["N", "D"]].assign(**new)).interval(0.9)
    alone = second.predict(goal[["bpb"]].assign(**new)).interval(0.9)  # step 2 from the true bpb
    bpb = first.predict(goal[["N", "D"]]).interval(0.9)
    rows = []
    for i, (_, g) in enumerate(goal.iterrows()):
        rows.append(
            {
                "task": task,
                "target": g["target"],
                "chance": chance,
                "actual": g["acc"],
                "median": both["median"].iloc[i],
                "lower": both["lower"].iloc[i],
                "upper": both["upper"].iloc[i],
                "step2_median": alone["median"].iloc[i],
                "step2_lower": alone["lower"].iloc[i],
                "step2_upper": alone["upper"].iloc[i],
                "bpb_actual": g["bpb"],
                "bpb_median": bpb["median"].iloc[i],
                "bpb_lower": bpb["lower"].iloc[i],
                "bpb_upper": bpb["upper"].iloc[i],
                "stage1_rhat": float(first.summary()["r_hat"].max()),
                "stage2_rhat": float(second.summary()["r_hat"].max()),
                "stage2_rows": len(fitted),
            }
        )
    return rows


def inner(tasks: pd.DataFrame, seed: int) -> pd.DataFrame:
    """Both steps fitted to the ladder below 3B, predicting the 3B runs' final accuracy: the bands' honesty
    inside the ladder, from the 3B runs' measured bpb (with the chain's risk at their distance) and chained."""
    rows = []
    df = ladder(tasks, "all")
    for task in PAPER_TASKS:
        t = df[df["task"] == task]
        keep = past_warmup(t)
        below = t["N"] < 3e9
        final = t[below].groupby("run").tail(1)
        held = t[~below].groupby("run").tail(1).set_index("run")  # the mean of its last SMOOTH evaluations
        first = bs.ScalingModel(bs.laws.Chinchilla(), target="bpb").fit(final, seed=seed)
        law = bs.laws.AccuracyLaw("bpb", chance=float(t["chance"].iloc[0]), rising=False, ceiling=1.0)
        second = bs.ScalingModel(law, target="acc").fit(t[keep & below], seed=seed)
        distance = first.extrapolation(held[["N", "D"]])
        measured = np.broadcast_to(held["bpb"].to_numpy(), (second.draws("B").size, len(held)))
        alone = second.predict_from_draws({"bpb": measured}, held[["bpb"]], distance=distance).interval(0.9)
        chained = bs.Chain(first, second).predict(held[["N", "D"]]).interval(0.9)
        for i, run in enumerate(held.index):
            acc = held["acc"].iloc[i]
            rows.append(
                {
                    "task": task,
                    "run": run,
                    "decades": float(distance[i]),
                    "actual": acc,
                    "step2_median": alone["median"].iloc[i],
                    "step2_covered": alone["lower"].iloc[i] <= acc <= alone["upper"].iloc[i],
                    "chained_median": chained["median"].iloc[i],
                    "chained_covered": chained["lower"].iloc[i] <= acc <= chained["upper"].iloc[i],
                }
            )
        print(f"{task} done", flush=True)
    table = pd.DataFrame(rows)
    for how in ("step2", "chained"):
        error = (table[f"{how}_median"] - table["actual"]).abs().mean() * 100
        covered = table[f"{how}_covered"].sum()
        print(f"3B runs, {how}: mean abs error {error:.2f} points, 90% covers {covered}/{len(table)}")
    return table


def report(table: pd.DataFrame) -> None:
    t = table.copy()
    t["abs_err"] = (t["median"] - t["actual"]).abs() * 100
    t["rel_err"] = (t["median"] / t["actual"] - 1).abs() * 100
    t["covered"] = (t["lower"] <= t["actual"]) & (t["actual"] <= t["upper"])
    t["step2_covered"] = (t["step2_lower"] <= t["actual"]) & (t["actual"] <= t["step2_upper"])
    t["bpb_covered"] = (t["bpb_lower"] <= t["bpb_actual"]) & (t["bpb_actual"] <= t["bpb_upper"])
    t["width"] = (t["upper"] - t["lower"]) * 100
    cols = ["task", "target", "actual", "median", "lower", "upper", "abs_err", "rel_err", "covered", "bpb_covered"]
    with pd.option_context("display.width", 200, "display.float_format", "{:.3f}".format):
        print(t[cols].to_string(index=False))
        for target, g in t.groupby("target"):
            n = len(g)
            print(
                f"{target}: mean abs error {g['abs_err'].mean():.2f} points, rel {g['rel_err'].mean():.2f}%; "
                f"90% covers {int(g['covered'].sum())}/{n} (step 2 alone {int(g['step2_covered'].sum())}/{n}; "
                f"bpb {int(g['bpb_covered'].sum())}/{n}), mean width {g['width'].mean():.1f} points"
            )
        paper = t[t["target"] == "13B-5T"].dropna(subset=["paper_chained_pred"])
        if len(paper):
            pe = (paper["paper_chained_pred"] - paper["actual"]).abs() * 100
            pr = (paper["paper_chained_pred"] / paper["actual"] - 1).abs() * 100
            s2 = (paper["paper_step2_pred"] - paper["actual"]).abs() * 100
            ours2 = (paper["step2_median"] - paper["actual"]).abs() * 100
            print(
                f"13B-5T, the paper's {len(paper)} tasks: chained abs error ours {paper['abs_err'].mean():.2f} "
                f"vs paper {pe.mean():.2f} points (rel {paper['rel_err'].mean():.2f}% vs {pr.mean():.2f}%); "
                f"step 2 alone ours {ours2.mean():.2f} vs paper {s2.mean():.2f} points"
            )
        print(f"all: 90% covers {int(t['covered'].sum())}/{len(t)} (task, target) pairs")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", choices=("paper", "all"), default="paper")
    parser.add_argument("--tasks", nargs="*", default=list(PAPER_TASKS))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--smooth", type=int, default=SMOOTH, help="evaluations averaged (moving average)")
    parser.add_argument(
        "--step2",
        choices=("single", "runs"),
        default="single",
        help="single: one curve through every checkpoint (the paper's); runs: a midpoint per run, pooled",
    )
    parser.add_argument("--thin", type=int, help="step 2 on at most this many checkpoints per run (checkpoints.thin)")
    parser.add_argument("--inner", action="store_true", help="fit below 3B and score the ladder's 3B runs instead")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    tasks = bs.datasets.load("olmo_ladder_tasks")
    if args.inner:
        table = inner(tasks, args.seed)
        if args.out is not None:
            args.out.mkdir(parents=True, exist_ok=True)
            table.to_csv(args.out / "downstream_olmo_inner.csv", index=False)
        return
    fit_rows = ladder(tasks, args.runs, args.smooth)
    goals = targets(tasks)
    rows = []
    start = time.perf_counter()
    for task in args.tasks:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", bs.SamplerWarning)
            rows += run_task(
                fit_rows[fit_rows["task"] == task], goals[goals["task"] == task], task, args.seed, args.step2, args.thin
            )
        for w in caught:
            print(f"  {task}: {str(w.message)[:160]}")
        print(f"{task} done at {time.perf_counter() - start:.0f} s", flush=True)
    table = pd.DataFrame(rows)
    data_dir = Path(os.environ.get(bs.datasets.ENV_VAR, bs.datasets.data_dir()))
    table = table.join(paper_errors(data_dir), on="task")
    table.loc[table["target"] != "13B-5T", ["paper_chained_pred", "paper_step2_pred"]] = np.nan
    report(table)
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        suffix = ("" if args.step2 == "single" else f"_{args.step2}") + (
            "" if args.thin is None else f"_thin{args.thin}"
        )
        table.to_csv(args.out / f"downstream_olmo_{args.runs}{suffix}.csv", index=False)


if __name__ == "__main__":
    main()
