"""Benchmark: the figures to take on a GPU or TPU, in one run of one script.

On whatever device JAX finds (run it where the accelerator is; on CPU it is the reference):

- one Chinchilla-law fit on the bundled quickstart data (``data/simulated_runs.csv``), 4 x (1000 + 1000):
  cold, warm, minimum bulk ESS per warm second;
- one Chinchilla-law fit on 100,000 simulated rows (``bench_cost_scaling.simulate_rows``),
  4 x (500 + 500): cold, warm, ESS per second;
- ``fit_many`` on 1,000 and on 10,000 small fits (``bench_fit_many.simulate``, 2 x (500 + 500)):
  cold, warm, fits per second.

Prints one markdown table for ``benchmarks/README.md``. ``--quick`` runs small sizes (1,000 rows,
100 and 200 fits) to check the script itself on a CPU. ``--uncapped`` adds the smaller ``fit_many``
with warmup trees to the full depth (``warmup_max_tree_depth=10``), beside the default's lockstep cap.

    python benchmarks/bench_device.py [--quick] [--uncapped]
"""

from __future__ import annotations

import argparse
import time
import warnings
from pathlib import Path

import jax
import pandas as pd
from bench_cost_scaling import simulate_rows
from bench_fit_many import SETTINGS as MANY_SETTINGS
from bench_fit_many import simulate as simulate_tasks

import bayescale as bs

BUNDLED = Path(__file__).resolve().parents[1] / "data" / "simulated_runs.csv"


def one_fit(df: pd.DataFrame, **settings) -> str:
    model = bs.ScalingModel(bs.laws.Chinchilla(), target="loss", inputs={"N": "N", "D": "D"})
    times = []
    for seed in (0, 1):
        start = time.perf_counter()
        fit = model.fit(df, seed=seed, progress_bar=False, **settings)
        times.append(time.perf_counter() - start)
    ess = float(fit.summary()["ess_bulk"].min())
    return f"{times[0]:.1f} s | {times[1]:.2f} s | {ess / times[1]:,.0f} min-ESS/s"


def many_fits(n: int, **options) -> str:
    df = simulate_tasks(n)
    model = bs.ScalingModel(bs.laws.SaturatingPowerLaw("N"), target="loss", inputs={"N": "N"})
    times = []
    for _ in range(2):
        start = time.perf_counter()
        fits = model.fit_many(df, by="task", seed=0, progress_bar=False, **MANY_SETTINGS, **options)
        times.append(time.perf_counter() - start)
    return f"{times[0]:.1f} s | {times[1]:.1f} s | {n / times[1]:,.1f} fits/s, {fits.healthy.mean():.1%} healthy"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, to check the script on a CPU")
    parser.add_argument(
        "--uncapped",
        action="store_true",
        help="also the smaller fit_many with warmup trees to the full depth (the default before the lockstep cap)",
    )
    args = parser.parse_args()
    warnings.simplefilter("ignore", bs.SamplerWarning)
    rows, many = (1_000, (100, 200)) if args.quick else (100_000, (1_000, 10_000))
    device = jax.devices()[0]
    print(f"jax {jax.__version__}, {jax.local_device_count()} x {device.platform} ({device.device_kind})\n")
    print("| workload | cold | warm | speed |\n|---|---|---|---|")
    bundled = pd.read_csv(BUNDLED)
    print(f"| Chinchilla law, bundled data ({len(bundled)} rows), 4 x (1000 + 1000) | {one_fit(bundled)} |", flush=True)
    for n in many:  # before the large fit: on a device with little time left, the many fits matter most
        print(f"| `fit_many`, {n:,} small fits, 2 x (500 + 500) | {many_fits(n)} |", flush=True)
        if args.uncapped and n == many[0]:
            full = many_fits(n, warmup_max_tree_depth=10)
            print(f"| `fit_many`, {n:,} small fits, warmup trees to depth 10 | {full} |", flush=True)
    large = one_fit(simulate_rows(rows), warmup=500, draws=500)
    print(f"| Chinchilla law, {rows:,} rows, 4 x (500 + 500) | {large} |", flush=True)


if __name__ == "__main__":
    main()
