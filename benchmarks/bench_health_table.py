"""Benchmark: R-hat and ESS of many fits, ArviZ one series at a time against ``rhat_ess`` all at once.

The health table of ``fit_many`` and the calibration studies needs rank-normalised split R-hat, bulk
and tail ESS for every parameter of every fit. Times both on simulated draws (``--fits`` fits of four
parameters, 2 chains x 500 draws, slowly mixing), ArviZ on a tenth of the fits (its cost is linear in
them), and checks that the two agree.

    python benchmarks/bench_health_table.py [--fits 10000]
"""

from __future__ import annotations

import argparse
import time
import warnings

import arviz as az
import numpy as np
import xarray as xr

from bayescale.sampler import rhat_ess


def simulate(fits: int, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    shape = (fits, 2, 500)
    return {k: 0.05 * rng.standard_normal(shape).cumsum(-1) + rng.standard_normal(shape) for k in "abcd"}


def with_arviz(posterior: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    ds = xr.Dataset({k: (("fit", "chain", "draw"), v) for k, v in posterior.items()})
    ds = ds.transpose("chain", "draw", "fit")
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        stats = (az.rhat(ds), az.ess(ds, method="bulk"), az.ess(ds, method="tail"))
    return {k: np.stack([s[k].values for s in stats]) for k in posterior}


def all_at_once(posterior: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    return {k: np.stack(rhat_ess.all_three(v)) for k, v in posterior.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fits", type=int, default=10_000)
    args = parser.parse_args()
    posterior = simulate(args.fits)
    tenth = {k: v[: args.fits // 10] for k, v in posterior.items()}
    start = time.perf_counter()
    mine = all_at_once(posterior)
    ours = time.perf_counter() - start
    start = time.perf_counter()
    theirs = with_arviz(tenth)
    arviz_s = (time.perf_counter() - start) * 10
    worst = max(np.max(np.abs(mine[k][:, : args.fits // 10] / theirs[k] - 1)) for k in posterior)
    print(f"{args.fits:,} fits x 4 parameters, 2 chains x 500 draws: R-hat, bulk and tail ESS")
    print(f"  ArviZ, one series at a time: {arviz_s:.1f} s (10x its time on {args.fits // 10:,} fits)")
    print(f"  rhat_ess, all at once:       {ours:.1f} s  ({arviz_s / ours:.0f}x faster)")
    print(f"  largest relative difference: {worst:.1e}")


if __name__ == "__main__":
    main()
