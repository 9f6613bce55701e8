"""Benchmark: chains as threads (bayescale's CPU default) against vectorised chains.

``chain_method="threads"`` runs every chain as its own call of a single-chain program,
in one thread per CPU core; ``"vectorized"`` vmaps the chains into one program (the
default on GPU and TPU, and on CPU before this benchmark). For each model the script
fits with both, alternating in one process, and prints per method the median cold wall
time (a new sampler: traced and compiled again), the median warm wall time (same data
shape, new seeds), mean leapfrog steps per draw, the median minimum bulk ESS of the law
parameters and that ESS per warm second, then the ratios threads / vectorized. Models:
the Chinchilla law on the bundled quickstart data (60 rows) and on the 240 Chinchilla
rows when the dataset is available, a one-input saturating power law (30 rows) and, with
``--hierarchical``, a hierarchical Chinchilla law (4 families x 15 runs; over 20 minutes on
2 cores); 4 chains x (1000 + 1000). JAX's
persistent compilation cache must be off (it is unless ``JAX_COMPILATION_CACHE_DIR`` is
set).

    BAYESCALE_DATA_DIR=../shared/datasets python benchmarks/bench_chain_methods.py [--repeats 3] [--hierarchical]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
import warnings

import pandas as pd
from bench_compile import cases  # the same models (run as a script: this folder is on sys.path)

import bayescale as bs
from bayescale.sampler import runner, threads

METHODS = ["threads", "vectorized"]


def fitted(model, data, seed, method):
    start = time.perf_counter()
    fit = model.fit(data, seed=seed, chain_method=method)
    wall = time.perf_counter() - start
    law_params = [p for p in fit.summary().index if p.split("[")[0] in model.law.parameter_names]
    ess = float(fit.summary().loc[law_params, "ess_bulk"].min())
    return wall, float(fit.idata.sample_stats["n_steps"].mean()), ess


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3, help="cold fits per model and method (default 3)")
    parser.add_argument("--warm", type=int, default=3, help="warm fits after each cold one (default 3)")
    parser.add_argument("--hierarchical", action="store_true", help="add the slowest model")
    args = parser.parse_args()
    warnings.simplefilter("ignore", bs.SamplerWarning)  # short synthetic fits; the health is not measured here
    if os.environ.get("JAX_COMPILATION_CACHE_DIR"):
        raise SystemExit("unset JAX_COMPILATION_CACHE_DIR: cached programs would not be compiled")
    print(f"{threads.cpu_count()} CPU cores; default chain method here: {runner.default_chain_method()}")
    rows = []
    for name, (model, data) in cases(args.hierarchical).items():
        runs = {m: {"cold": [], "warm": [], "steps": [], "ess": []} for m in METHODS}
        for repeat in range(args.repeats):
            for method in METHODS if repeat % 2 == 0 else METHODS[::-1]:
                runner.RUNNERS.clear()  # a new sampler: traced and compiled again
                runs[method]["cold"].append(fitted(model, data, 0, method)[0])
                for seed in range(1, args.warm + 1):
                    wall, steps, ess = fitted(model, data, 100 * repeat + seed, method)
                    runs[method]["warm"].append(wall)
                    runs[method]["steps"].append(steps)
                    runs[method]["ess"].append(ess)
        for method in METHODS:
            r = {k: statistics.median(v) for k, v in runs[method].items()}
            ess_per_s = statistics.median(e / w for e, w in zip(runs[method]["ess"], runs[method]["warm"], strict=True))
            rows.append(
                {
                    "model": name,
                    "method": method,
                    "cold s": r["cold"],
                    "warm s": r["warm"],
                    "steps / draw": r["steps"],
                    "min bulk ESS": r["ess"],
                    "min ESS / s": ess_per_s,
                }
            )
        print(pd.DataFrame(rows[-len(METHODS) :]).round(2).to_string(index=False), flush=True)
    table = pd.DataFrame(rows)
    wide = table.set_index(["model", "method"]).unstack("method")
    ratios = pd.DataFrame(
        {
            f"{col}, threads / vectorized": wide[(col, "threads")] / wide[(col, "vectorized")]
            for col in ("cold s", "warm s", "steps / draw", "min ESS / s")
        }
    )
    print(f"\nmedians of {args.repeats} cold and {args.repeats * args.warm} warm fits per model and method")
    print(table.round(2).to_string(index=False))
    print(ratios.round(2).to_string())


if __name__ == "__main__":
    main()
