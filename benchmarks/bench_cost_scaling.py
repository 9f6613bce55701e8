"""Benchmark: how the cost of one fit grows with the number of rows and of groups.

Rows: the Chinchilla law (one shared set of parameters) on 1e2 to 1e5 simulated runs.
Groups: the hierarchical Chinchilla model (every parameter pooled) on 2 to 128 simulated
families of 20 runs each (the simulator of ``bench_hierarchical_fit.py``). Every fit is
4 chains x (500 + 500); for each size the script prints the cold wall time (with
compilation), the warm wall time (a second fit, new seed, same shape), mean leapfrog
steps per draw, the warm time per leapfrog step of one chain, divergences and the
minimum bulk ESS per warm second. ``--init random`` fits with the chains at random
starts and an identity mass matrix (the default before chains started at the mode).

    python benchmarks/bench_cost_scaling.py [--rows 100,1000,10000,100000] [--groups 2,8,32,128] [--init random]
"""

from __future__ import annotations

import argparse
import time
import warnings

import jax
import numpy as np
import pandas as pd
from bench_hierarchical_fit import simulate as simulate_families

import bayescale as bs

SETTINGS = {"chains": 4, "warmup": 500, "draws": 500}


def simulate_rows(rows: int, seed: int = 0) -> pd.DataFrame:
    """``rows`` runs of one Chinchilla law, N log-uniform in [5e7, 5e9], 5-80 tokens per parameter."""
    rng = np.random.default_rng(seed)
    n = np.exp(rng.uniform(np.log(5e7), np.log(5e9), rows))
    d = n * np.exp(rng.uniform(np.log(5.0), np.log(80.0), rows))
    truth = {"E": 1.8, "A": 400.0, "alpha": 0.34, "B": 1500.0, "beta": 0.28}
    y = np.asarray(bs.laws.Chinchilla().mean(truth, N=n, D=d)) * np.exp(0.01 * rng.standard_normal(rows))
    return pd.DataFrame({"N": n, "D": d, "loss": y})


def time_fits(model: bs.ScalingModel, df: pd.DataFrame, **options) -> dict:
    out = {}
    for label, seed in (("cold", 0), ("warm", 1)):
        start = time.perf_counter()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", bs.SamplerWarning)
            fit = model.fit(df, seed=seed, **SETTINGS, **options)
        out[label] = time.perf_counter() - start
    stats = fit.idata.sample_stats
    steps = float(stats["n_steps"].mean())
    iterations = SETTINGS["warmup"] + SETTINGS["draws"]
    ess = float(fit.summary()["ess_bulk"].min())
    return {
        **out,
        "steps": steps,
        # chains run side by side, so the warm time is spent on one chain's leapfrog steps
        # (warmup steps assumed like sampling ones)
        "us_per_step": 1e6 * out["warm"] / (steps * iterations),
        "div": int(stats["diverging"].sum()),
        "ess_per_s": ess / out["warm"],
        "warnings": len(caught),
    }


def show(label: str, size: int, r: dict) -> None:
    print(
        f"{label:<8} {size:>7} {r['cold']:8.2f} {r['warm']:8.2f} {r['steps']:8.1f} {r['us_per_step']:9.0f} "
        f"{r['div']:5d} {r['ess_per_s']:8.0f} {r['warnings']:5d}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", default="100,1000,10000,100000")
    parser.add_argument("--groups", default="2,8,32,128")
    parser.add_argument("--init", default=None, choices=["mode", "random"], help="chains' start (default: the fit's)")
    args = parser.parse_args()
    options = {} if args.init is None else {"init": args.init}
    print(
        f"jax {jax.__version__}, {jax.local_device_count()} {jax.default_backend()} device(s); 4 x (500 + 500); "
        f"init {args.init or 'default'}"
    )
    heads = ("cold s", 8), ("warm s", 8), ("steps", 8), ("us/step", 9), ("div", 5), ("ESS/s", 8), ("warn", 5)
    print(f"{'':<8} {'size':>7} " + " ".join(f"{h:>{w}}" for h, w in heads))
    single = bs.ScalingModel(bs.laws.Chinchilla(), target="loss")
    for rows in (int(v) for v in args.rows.split(",") if v):
        show("rows", rows, time_fits(single, simulate_rows(rows), **options))
    grouped = bs.ScalingModel(bs.laws.Chinchilla(), target="loss", group="family")
    for groups in (int(v) for v in args.groups.split(",") if v):
        show("groups", groups, time_fits(grouped, simulate_families(groups, 20), **options))


if __name__ == "__main__":
    main()
