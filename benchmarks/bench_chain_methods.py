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
from pathlib import Path

import numpy as np
import pandas as pd

import bayescale as bs
from bayescale import inference
from bayescale.datasets import DatasetNotAvailable

REPO = Path(__file__).resolve().parents[1]
METHODS = ["threads", "vectorized"]


def cases(hierarchical: bool) -> dict[str, tuple[bs.ScalingModel, pd.DataFrame]]:
    rng = np.random.default_rng(0)
    c = np.geomspace(1e18, 1e22, 30)
    one_input = pd.DataFrame(
        {"C": c, "loss": (1.7 + 8.0 * (c / 1e20) ** -0.15) * np.exp(0.01 * rng.standard_normal(30))}
    )
    out = {
        "chinchilla, bundled data (60 rows)": (
            bs.ScalingModel("chinchilla"),
            pd.read_csv(REPO / "data" / "simulated_runs.csv"),
        ),
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
    if not hierarchical:
        return out
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
    print(f"{inference.cpu_count()} CPU cores; default chain method here: {inference.default_chain_method()}")
    rows = []
    for name, (model, data) in cases(args.hierarchical).items():
        runs = {m: {"cold": [], "warm": [], "steps": [], "ess": []} for m in METHODS}
        for repeat in range(args.repeats):
            for method in METHODS if repeat % 2 == 0 else METHODS[::-1]:
                inference._RUNNERS.clear()  # a new sampler: traced and compiled again
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
