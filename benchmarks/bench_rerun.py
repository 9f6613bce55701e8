"""Benchmark: what a fit's second run costs (a first run that diverges is sampled again at
``target_accept_prob=0.99``, ``NUTSOptions.rerun``), cold and warm.

The fit: Chinchilla's law on 7 simulated families of 18 runs (`alpha` and `E` pooled), whose
first run at the default target has divergent transitions at every seed tried. Each repeat runs,
each in a fresh process (cold: tracing and compiling included; then warm: the same fit again in
that process):

- ``default``: the fit as a user runs it: the first run, then the second at 0.99;
- ``first run only``: the same fit with its first run's target given (0.95, the default for
  pooled groups in the pilot's frame), so there is no second run.

The second run's cost is ``default - first run only``, cold and warm. Where the second run
compiles nothing (the target acceptance an argument of the compiled sampler), the cold and the
warm difference are the same sampling; where it compiled a sampler of its own, the cold one is
larger by that compilation. Medians over ``--repeats``. JAX's persistent compilation cache must
be off (it is unless ``JAX_COMPILATION_CACHE_DIR`` is set).

    python benchmarks/bench_rerun.py [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
import warnings

import numpy as np
import pandas as pd

CASES = {"default": {}, "first run only": {"target_accept_prob": 0.95}}


def families() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    n = np.repeat(np.geomspace(1e7, 1e9, 6), 3)
    d = np.tile([1e9, 4e9, 1.6e10], 6)
    rng.normal(0, 0.01, n.size)  # the draws of the design this was first measured on
    frames = []
    for g in range(7):
        loss = (1.6 + 0.05 * g + 400 / n ** (0.32 + 0.01 * g) + 410 / d**0.28) * np.exp(rng.normal(0, 0.01, n.size))
        frames.append(pd.DataFrame({"N": n, "D": d, "family": f"f{g}", "loss": loss}))
    return pd.concat(frames, ignore_index=True)


def one(case: str) -> dict:
    """Cold and warm wall time of ``case`` in this process, and whether the fit was sampled twice."""
    import bayescale as bs

    model = bs.ScalingModel(bs.laws.Chinchilla(), group="family", pooled=["alpha", "E"])
    data = families()
    out = {}
    for kind, seed in (("cold", 0), ("warm", 1)):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", bs.SamplerWarning)
            start = time.perf_counter()
            fit = model.fit(data, seed=seed, **CASES[case])
            out[kind] = time.perf_counter() - start
        out[f"{kind} twice"] = "sampled twice" in str(fit.health)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--case", help=argparse.SUPPRESS)  # one measurement, in a child process
    args = parser.parse_args()
    if args.case:
        print(json.dumps(one(args.case)))
        return
    if os.environ.get("JAX_COMPILATION_CACHE_DIR"):
        sys.exit("unset JAX_COMPILATION_CACHE_DIR: cold fits must compile")
    rows = {case: [] for case in CASES}
    for _ in range(args.repeats):
        for case in CASES:  # alternating, each in a fresh process
            child = subprocess.run(
                [sys.executable, __file__, "--case", case], capture_output=True, text=True, check=True
            )
            rows[case].append(json.loads(child.stdout.strip().splitlines()[-1]))
    median = {case: {k: statistics.median(r[k] for r in runs) for k in ("cold", "warm")} for case, runs in rows.items()}
    print(f"{'':16}{'cold s':>8}{'warm s':>8}  sampled twice (cold, warm)")
    for case, runs in rows.items():
        twice = ", ".join(f"{sum(r[k] for r in runs)}/{len(runs)}" for k in ("cold twice", "warm twice"))
        print(f"{case:16}{median[case]['cold']:8.1f}{median[case]['warm']:8.1f}  {twice}")
    cold = median["default"]["cold"] - median["first run only"]["cold"]
    warm = median["default"]["warm"] - median["first run only"]["warm"]
    print(f"{'second run':16}{cold:8.1f}{warm:8.1f}  (default - first run only)")


if __name__ == "__main__":
    main()
