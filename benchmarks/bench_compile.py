"""Benchmark: what compiling a sampler costs, at XLA's default and at bayescale's CPU setting.

bayescale compiles for CPU with LLVM optimisation level 1
(``bayescale.inference.CPU_OPTIMIZATION_LEVEL``) the programs that run once per fit (start,
step-size search, post-processing); the sampling loop keeps XLA's default. This script fits the same models
both ways in one process, alternating, and prints per model and setting the median
cold wall time (tracing and compiling included), the median warm wall time (same data
shape, new seed), and whether the two settings gave the same draws. Models: the
Chinchilla law on the bundled quickstart data (60 rows), the same law on the 240
Chinchilla rows when the dataset is available, a one-input saturating power law
(30 rows) and a hierarchical Chinchilla law (4 families x 15 runs); default chains,
warmup and draws. JAX's persistent compilation cache must be off (it is unless
``JAX_COMPILATION_CACHE_DIR`` is set).

    python benchmarks/bench_compile.py [--repeats 3]
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
SETTINGS = {"XLA default": None, "level 1 (bayescale)": 1}


def cases() -> dict[str, tuple[bs.ScalingModel, pd.DataFrame]]:
    quickstart = pd.read_csv(REPO / "data" / "simulated_runs.csv")
    rng = np.random.default_rng(0)
    c = np.geomspace(1e18, 1e22, 30)
    one_input = pd.DataFrame(
        {"C": c, "loss": (1.7 + 8.0 * (c / 1e20) ** -0.15) * np.exp(0.01 * rng.standard_normal(30))}
    )
    law = bs.laws.Chinchilla()
    truth = {"E": 1.8, "A": 400.0, "alpha": 0.34, "B": 1500.0, "beta": 0.3}
    families = []
    for f in range(4):
        n, d = np.geomspace(1e8, 1e10, 15), np.geomspace(2e9, 2e11, 15)[rng.permutation(15)]
        mean = np.asarray(law.mean({**truth, "alpha": truth["alpha"] + 0.02 * f}, N=n, D=d))
        families.append(
            pd.DataFrame({"N": n, "D": d, "loss": mean * np.exp(0.01 * rng.standard_normal(15)), "f": f"f{f}"})
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
    args = parser.parse_args()
    warnings.simplefilter("ignore", bs.SamplerWarning)  # short synthetic fits; the health is not measured here
    if os.environ.get("JAX_COMPILATION_CACHE_DIR"):
        raise SystemExit("unset JAX_COMPILATION_CACHE_DIR: cached programs would not be compiled")
    rows = []
    for name, (model, data) in cases().items():
        cold, warm, draws = {s: [] for s in SETTINGS}, {s: [] for s in SETTINGS}, {}
        for _ in range(args.repeats):
            for setting, level in SETTINGS.items():
                inference.CPU_OPTIMIZATION_LEVEL = level
                inference._RUNNERS.clear()  # a new runner: traced and compiled again
                t_cold, posterior = timed(model, data, seed=0)
                t_warm, _ = timed(model, data, seed=1)
                cold[setting].append(t_cold)
                warm[setting].append(t_warm)
                draws[setting] = posterior
        a, b = draws.values()
        same = all(np.allclose(a[v], b[v], rtol=1e-9, atol=0) for v in a.data_vars)
        for setting in SETTINGS:
            rows.append(
                {
                    "model": name,
                    "setting": setting,
                    "cold s": statistics.median(cold[setting]),
                    "warm s": statistics.median(warm[setting]),
                    "same draws": same,
                }
            )
        print(pd.DataFrame(rows[-2:]).round(2).to_string(index=False), flush=True)
    table = pd.DataFrame(rows)
    ratio = table.pivot(index="model", columns="setting", values=["cold s", "warm s"])
    ratio["compile-inclusive speed-up"] = ratio[("cold s", "XLA default")] / ratio[("cold s", "level 1 (bayescale)")]
    ratio["warm ratio"] = ratio[("warm s", "level 1 (bayescale)")] / ratio[("warm s", "XLA default")]
    print(f"\nmedians of {args.repeats} alternating runs per setting\n{table.round(2).to_string(index=False)}")
    print(ratio.round(2).to_string())


if __name__ == "__main__":
    main()
