"""Benchmark: what compiling a sampler costs, at XLA's default and at bayescale's CPU setting.

bayescale compiles for CPU with LLVM optimisation level 1
(``bayescale.inference.CPU_OPTIMIZATION_LEVEL``) the programs that run once per fit (start,
step-size search, post-processing); the sampling loop keeps XLA's default. This script fits the same models
each way in one process, alternating, and prints per model and setting the median
cold wall time (tracing and compiling included), the median warm wall time (same data
shape, new seed), and whether a setting gave the default's draws. A third setting, the
sampling loop at level 1 too, shows why bayescale does not do that. Models: the
Chinchilla law on the bundled quickstart data (60 rows), the same law on the 240
Chinchilla rows when the dataset is available, a one-input saturating power law
(30 rows) and a hierarchical Chinchilla law (4 families x 15 runs); default chains,
warmup and draws. JAX's persistent compilation cache must be off (it is unless
``JAX_COMPILATION_CACHE_DIR`` is set).

    python benchmarks/bench_compile.py [--repeats 3] [--skip-hierarchical]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

import bayescale as bs
from bayescale import inference
from bayescale.datasets import DatasetNotAvailable

REPO = Path(__file__).resolve().parents[1]
SETTINGS = ["XLA default", "level 1 (bayescale)", "level 1 everywhere"]
compiled_by_bayescale = inference.compiled


def compiled_everywhere(fn, *, runs_once=False):
    """The sampling loop at level 1 too (the road not taken: little faster to compile, once 30-40% slower to sample)."""
    return compiled_by_bayescale(fn, runs_once=True)


def use(setting: str) -> None:
    inference.CPU_OPTIMIZATION_LEVEL = None if setting == "XLA default" else 1
    inference.compiled = compiled_everywhere if setting == "level 1 everywhere" else compiled_by_bayescale


def cases(hierarchical: bool) -> dict[str, tuple[bs.ScalingModel, pd.DataFrame]]:
    quickstart = pd.read_csv(REPO / "data" / "simulated_runs.csv")
    rng = np.random.default_rng(0)
    c = np.geomspace(1e18, 1e22, 30)
    one_input = pd.DataFrame(
        {"C": c, "loss": (1.7 + 8.0 * (c / 1e20) ** -0.15) * np.exp(0.01 * rng.standard_normal(30))}
    )
    out = {
        "chinchilla, bundled data (60 rows)": (bs.ScalingModel("chinchilla"), quickstart),
        "saturating power law (30 rows)": (
            bs.ScalingModel(bs.laws.SaturatingPowerLaw("C"), target="loss", inputs={"C": "C"}),
            one_input,
        ),
    }
    try:
        chinchilla = bs.datasets.load("chinchilla")
        out["chinchilla, 240 rows"] = (bs.ScalingModel("chinchilla"), chinchilla[~chinchilla["besiroglu_excluded"]])
    except DatasetNotAvailable as err:
        print(f"(skipping the 240 Chinchilla rows: {err})")
    if hierarchical:
        law = bs.laws.Chinchilla()
        truth = {"E": 1.8, "A": 400.0, "alpha": 0.34, "B": 1500.0, "beta": 0.3}
        families = []
        for f in range(4):
            n, d = np.geomspace(1e8, 1e10, 15), np.geomspace(2e9, 2e11, 15)[rng.permutation(15)]
            mean = np.asarray(law.mean({**truth, "alpha": truth["alpha"] + 0.02 * f}, N=n, D=d))
            noise = np.exp(0.01 * rng.standard_normal(15))
            families.append(pd.DataFrame({"N": n, "D": d, "loss": mean * noise, "f": f"f{f}"}))
        out["hierarchical chinchilla (4 x 15)"] = (
            bs.ScalingModel(law, target="loss", inputs={"N": "N", "D": "D"}, group="f"),
            pd.concat(families, ignore_index=True),
        )
    return out


def timed(model, data, seed):
    start = time.perf_counter()
    fit = model.fit(data, seed=seed)
    return time.perf_counter() - start, fit.idata.posterior


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3, help="cold fits per model and setting (default 3)")
    parser.add_argument("--skip-hierarchical", action="store_true", help="leave out the slowest model")
    args = parser.parse_args()
    warnings.simplefilter("ignore", bs.SamplerWarning)  # short synthetic fits; the health is not measured here
    if os.environ.get("JAX_COMPILATION_CACHE_DIR"):
        raise SystemExit("unset JAX_COMPILATION_CACHE_DIR: cached programs would not be compiled")
    rows = []
    for name, (model, data) in cases(not args.skip_hierarchical).items():
        cold, warm, draws = {s: [] for s in SETTINGS}, {s: [] for s in SETTINGS}, {}
        for _ in range(args.repeats):
            for setting in SETTINGS:
                use(setting)
                inference._RUNNERS.clear()  # a new runner: traced and compiled again
                t_cold, posterior = timed(model, data, seed=0)
                t_warm, _ = timed(model, data, seed=1)
                cold[setting].append(t_cold)
                warm[setting].append(t_warm)
                draws[setting] = posterior
        default = draws["XLA default"]
        for setting in SETTINGS:
            same = all(np.allclose(draws[setting][v], default[v], rtol=1e-9, atol=0) for v in default.data_vars)
            rows.append(
                {
                    "model": name,
                    "setting": setting,
                    "cold s": statistics.median(cold[setting]),
                    "warm s": statistics.median(warm[setting]),
                    "same draws as default": same,
                }
            )
        print(pd.DataFrame(rows[-len(SETTINGS) :]).round(2).to_string(index=False), flush=True)
    table = pd.DataFrame(rows)
    wide = table.pivot(index="model", columns="setting", values=["cold s", "warm s"])
    ratios = pd.DataFrame(
        {
            f"{kind} ratio, {setting} / default": wide[(f"{kind} s", setting)] / wide[(f"{kind} s", "XLA default")]
            for setting in SETTINGS[1:]
            for kind in ("cold", "warm")
        }
    )
    print(f"\nmedians of {args.repeats} alternating runs per setting\n{table.round(2).to_string(index=False)}")
    print(ratios.round(2).to_string())


if __name__ == "__main__":
    main()
