"""Benchmark: ``fit.next_runs`` on the quickstart fit: its speed, and its expected widths against refits.

1. Speed: 500 candidate runs (N log-uniform in 1e8-2e10, 5-80 tokens per parameter) ranked for the
   law's value at N = 7e10, D = 1.4e12: cold (compile included) and the median of 3 warm calls;
   then the same with a budget of 5e21 FLOPs (the greedy batch).
2. ``--refit K``: the exact check. For three candidates, K outcomes are simulated from the posterior
   (law and noise). The data plus each outcome are refitted (``fit_many``), and the mean 90% width
   of the target's law value after the refits is printed beside the width ``next_runs`` expects.

    python benchmarks/bench_next_runs.py [--refit 12]
"""

from __future__ import annotations

import argparse
import statistics
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

import bayescale as bs

RUNS = Path(__file__).resolve().parents[1] / "data" / "simulated_runs.csv"
TARGET = {"N": 7e10, "D": 1.4e12}


def timed(fn) -> tuple[float, object]:
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--refit", type=int, default=0, help="outcomes refitted per candidate (0: skip the check)")
    args = parser.parse_args()
    warnings.simplefilter("ignore", bs.SamplerWarning)
    runs = pd.read_csv(RUNS)
    model = bs.ScalingModel(bs.laws.Chinchilla(), target="loss", inputs={"N": "N", "D": "D"})
    fit = model.fit(runs, seed=0, progress_bar=False)
    rng = np.random.default_rng(0)
    n = np.exp(rng.uniform(np.log(1e8), np.log(2e10), 500))
    candidates = pd.DataFrame({"N": n, "D": n * np.exp(rng.uniform(np.log(5.0), np.log(80.0), 500))})

    for label, options in (("ranking", {}), ("ranking + batch within 5e21 FLOPs", {"budget": 5e21})):
        call = lambda options=options: fit.next_runs(candidates, target=TARGET, **options)  # noqa: E731
        cold, table = timed(call)
        warm = statistics.median(timed(call)[0] for _ in range(3))
        chosen = f", {int((table['batch'] > 0).sum())} runs chosen" if "batch" in table else ""
        print(f"500 candidates, {label}: cold {cold:.1f} s, warm {warm:.2f} s{chosen}")

    if args.refit:
        picks = pd.DataFrame({"N": [2e9, 1e10, 3e10], "D": [4e10, 2e11, 6e11]})
        expected = fit.next_runs(picks, target=TARGET, risk=False)  # the law alone: what the refits measure
        outcomes = fit.predict(picks, risk=False).draws()  # a new run: the law and the noise, no extrapolation risk
        print(f"\n| candidate | width now | expected after (next_runs) | after refits ({args.refit} outcomes) |")
        print("|---|---|---|---|")
        for c in range(len(picks)):
            chosen = rng.choice(len(outcomes), args.refit, replace=False)
            sets = {
                k: pd.concat([runs, picks.iloc[[c]].assign(loss=outcomes[i, c])], ignore_index=True)
                for k, i in enumerate(chosen)
            }
            fits = model.fit_many(sets, seed=0, progress_bar=False)
            widths = []
            for key in fits:
                row = fits[key].predict(pd.DataFrame([TARGET]), risk=False).interval(0.9, kind="mean").iloc[0]
                widths.append(row["upper"] - row["lower"])
            se = np.std(widths, ddof=1) / np.sqrt(len(widths))
            print(
                f"| N={picks.N[c]:.0e}, D={picks.D[c]:.0e} | {expected['width_now'].iloc[c]:.4f} | "
                f"{expected['width_after'].iloc[c]:.4f} +- {expected['mc_se'].iloc[c]:.4f} | "
                f"{np.mean(widths):.4f} +- {se:.4f} |"
            )


if __name__ == "__main__":
    main()
