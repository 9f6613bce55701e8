"""Benchmark: many small fits in one process against the same fits on a Dask ``LocalCluster``.

The workload of ``bench_fit_many.py`` (one-input saturating power laws of 20-60 runs, each
from its own random truth, 2 x (500 + 500) per fit). Side by side in one script:

- ``one process``: ``model.fit_many(df, by="task")``, chains in one thread per core;
- ``cluster``: the same call with ``client=`` a ``LocalCluster`` of ``--workers`` worker
  processes with one thread each, timed from the cluster's start (worker start, imports and
  each worker's compile included) to the results in hand.

Both are cold (compile included). Prints wall times, fits per second, the ratio, and whether
every draw of every fit is the same.

    python benchmarks/bench_cluster.py [--fits 10000] [--workers 2]
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np
from bench_fit_many import SETTINGS, simulate
from distributed import Client, LocalCluster

import bayescale as bs


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--fits", type=int, default=10_000)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    warnings.simplefilter("ignore", bs.SamplerWarning)
    df = simulate(args.fits)
    model = bs.ScalingModel(bs.laws.SaturatingPowerLaw("N"), target="loss", inputs={"N": "N"})
    print(f"{args.fits} data sets, {len(df)} rows, 2 x (500 + 500) each; {args.workers} workers x 1 thread")

    start = time.perf_counter()
    local = model.fit_many(df, by="task", seed=0, progress_bar=False, **SETTINGS)
    local_time = time.perf_counter() - start
    print(f"one process: {local_time:.1f} s, {args.fits / local_time:.1f} fits/s, {local.healthy.mean():.1%} healthy")

    start = time.perf_counter()
    with Client(LocalCluster(n_workers=args.workers, threads_per_worker=1, dashboard_address=":0")) as client:
        remote = model.fit_many(df, by="task", seed=0, progress_bar=False, client=client, **SETTINGS)
    cluster_time = time.perf_counter() - start
    same = list(local) == list(remote) and all(
        np.array_equal(local.draws(name), remote.draws(name)) for name in model.parameter_names
    )
    print(
        f"cluster: {cluster_time:.1f} s, {args.fits / cluster_time:.1f} fits/s, "
        f"{cluster_time / local_time:.2f}x the one process; every draw the same: {same}"
    )


if __name__ == "__main__":
    main()
