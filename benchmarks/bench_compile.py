"""Benchmark: what compiling a sampler costs, at XLA's defaults and at bayescale's CPU settings.

bayescale compiles the CPU programs of one fit with XLA's older LLVM emitters for fused loops
instead of its MLIR fusion emitters (``bayescale.sampler.compile.CPU_COMPILER_OPTIONS``), and
the programs that run once per fit (start, step-size search, post-processing) also at a lower
LLVM optimisation level (``CPU_OPTIMIZATION_LEVEL``: 0; this script sets 1 and 0 side by side);
the sampling loop keeps XLA's default level (at level 1 too it compiled little faster and once
sampled 30-40% slower). See ``bayescale.sampler.compile.compiled``. This script fits the same
models each way in one process, alternating, and prints per model and setting the median cold
wall time (tracing and compiling included), the median warm wall time (same data shape, new
seed), and whether a setting gave the default's draws. Then, since one warm fit per repeat is
noisy, ``--warm`` more warm fits per model with the last two settings' samplers both kept
(alternating, in one process) and the ratio of their medians. Models: the Chinchilla law on the
bundled quickstart data (60 rows), on the 240 Chinchilla rows when the dataset is available and
on 3,000 simulated rows, a one-input saturating power law (30 rows) and a hierarchical
Chinchilla law (4 families x 15 runs); default chains, warmup and draws. JAX's persistent
compilation cache must be off (it is unless ``JAX_COMPILATION_CACHE_DIR`` is set).

    python benchmarks/bench_compile.py [--repeats 3] [--warm 7] [--skip-hierarchical]
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
from bayescale.datasets import DatasetNotAvailable
from bayescale.sampler import compile as inference
from bayescale.sampler import runner

REPO = Path(__file__).resolve().parents[1]
SETTINGS = {  # name -> (CPU_OPTIMIZATION_LEVEL, CPU_COMPILER_OPTIONS)
    "XLA default": (None, {}),
    "level 1 once, LLVM emitters": (1, {"xla_cpu_use_fusion_emitters": False}),
    "level 0 once, LLVM emitters": (0, {"xla_cpu_use_fusion_emitters": False}),
}


def use(setting: str) -> None:
    inference.CPU_OPTIMIZATION_LEVEL, inference.CPU_COMPILER_OPTIONS = SETTINGS[setting]


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
    law = bs.laws.Chinchilla()
    n = np.exp(rng.uniform(np.log(5e7), np.log(5e9), 3000))
    d = n * np.exp(rng.uniform(np.log(5.0), np.log(80.0), 3000))
    mean = np.asarray(law.mean({"E": 1.8, "A": 400.0, "alpha": 0.34, "B": 1500.0, "beta": 0.3}, N=n, D=d))
    out["chinchilla, 3,000 simulated rows"] = (
        bs.ScalingModel("chinchilla"),
        pd.DataFrame({"N": n, "D": d, "loss": mean * np.exp(0.01 * rng.standard_normal(3000))}),
    )
    if hierarchical:
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
    parser.add_argument("--warm", type=int, default=7, help="warm fits per model and setting, side by side (default 7)")
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
                runner.RUNNERS.clear()  # a new runner: traced and compiled again
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
            for setting in list(SETTINGS)[1:]
            for kind in ("cold", "warm")
        }
    )
    print(f"\nmedians of {args.repeats} alternating runs per setting\n{table.round(2).to_string(index=False)}")
    print(ratios.round(2).to_string())
    warm_side_by_side(cases(not args.skip_hierarchical), list(SETTINGS)[-2:], args.warm)


def warm_side_by_side(models: dict, settings: list[str], repeats: int) -> None:
    """Median warm wall time per setting, every setting's sampler kept, fits alternating."""
    caches = {s: inference.CompiledCache(inference.KEEP_COMPILED) for s in settings}
    print(f"\nwarm, medians of {repeats} alternating fits per setting")
    for name, (model, data) in models.items():
        times = {s: [] for s in settings}
        for s in settings:  # compile
            use(s)
            runner.RUNNERS = caches[s]
            model.fit(data, seed=0)
        for r in range(repeats):
            for s in settings if r % 2 == 0 else settings[::-1]:
                use(s)
                runner.RUNNERS = caches[s]
                times[s].append(timed(model, data, seed=r + 1)[0])
        medians = [statistics.median(times[s]) for s in settings]
        cells = ", ".join(f"{s}: {m:.3f} s" for s, m in zip(settings, medians, strict=True))
        print(f"{name}: {cells}; ratio {medians[1] / medians[0]:.3f}", flush=True)


if __name__ == "__main__":
    main()
