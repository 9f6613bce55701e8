"""Benchmark: many independent small fits, ``fit_many`` against a Python loop of single fits.

The workload of issue 7: one-input saturating power laws (``E + A * (N / N_ref) ** -alpha``,
the law of a benchmark suite's task x metric curves), each data set with 20 to 60 runs
from its own random truth, 2 chains x (500 + 500) per fit. Compared in the same
process:

- ``loop``: ``model.fit`` on one data set at a time (the compiled sampler is reused
  across same-shaped data; the timed fits are after one untimed warm-up fit); its
  per-fit mean is multiplied by the number of data sets when ``--loop`` is smaller;
- ``numpyro loop`` (``--numpyro-loop K``): what users write today, ``numpyro.infer.MCMC``
  + NUTS on a hand-written model of the same law, ``run`` once per data set (it compiles
  again on every call); the mean of ``K`` fits, times the number of data sets;
- ``fit_many``: the default (on CPU: every chain of every data set its own call, one
  thread per core; on GPU/TPU: one vectorised batch), and with the batch sizes given by
  ``--batches`` (``--batches 1``: one vectorised data set per call, the CPU default
  before chains ran in threads).

With ``--own-coordinates`` the default ``fit_many`` also runs on the same law sampled in
each parameter's own standardised coordinate (no level coordinates, as before they
existed; ``bayescale.model.build.shared_level_terms``), side by side; with ``--laplace-mass`` it also
runs with NUTS' adaptation started from the inverse Hessian at the mode
(``laplace_mass=True``) but the chains at their random starts; with ``--mode-init`` with
the chains started at the mode (``init="mode"``, the default only from 1,000 rows); with ``--diagonal-shrinkage`` with
:mod:`bayescale.sampler.adaptation`'s warmup of the mass matrix (``diagonal_shrinkage=True``; the default
only from 25 dimensions).

Each ``fit_many`` variant runs twice: the first time includes compilation, the second
is warm. Prints wall times, fits per second, the ratio to the loop, the share of
healthy fits and the median leapfrog steps per draw.

    python benchmarks/bench_fit_many.py [--fits 1000] [--loop 40] [--batches 1,1000] [--own-coordinates]
        [--laplace-mass] [--mode-init] [--diagonal-shrinkage]
"""

from __future__ import annotations

import argparse
import statistics
import time
import warnings
from dataclasses import dataclass

import jax
import numpy as np
import pandas as pd

import bayescale as bs

SETTINGS = {"chains": 2, "warmup": 500, "draws": 500}


@dataclass(frozen=True, repr=False)
class OwnCoordinates(bs.laws.SaturatingPowerLaw):
    """The saturating law with one standardised coordinate per parameter (no level coordinates)."""

    level_terms = None


def simulate(n_fits: int, seed: int = 0) -> pd.DataFrame:
    """``n_fits`` data sets of 20-60 runs, N from 1e7 to 1e10, 2% noise, truths drawn per data set."""
    rng = np.random.default_rng(seed)
    frames = []
    for k in range(n_fits):
        n = int(rng.integers(20, 61))
        x = np.geomspace(1e7, 1e10, n) * np.exp(0.1 * rng.standard_normal(n))
        e, a, alpha = rng.uniform(1.0, 3.0), rng.uniform(1.0, 5.0), rng.uniform(0.1, 0.6)
        y = (e + a * (x / 1e8) ** -alpha) * np.exp(0.02 * rng.standard_normal(n))
        frames.append(pd.DataFrame({"task": f"t{k:04d}", "N": x, "loss": y}))
    return pd.concat(frames, ignore_index=True)


def numpyro_loop(df: pd.DataFrame, tasks, n: int) -> list[float]:
    """Wall time of ``MCMC.run`` on each of the first ``n`` data sets, a hand-written model."""
    import jax.numpy as jnp
    import numpyro
    import numpyro.distributions as dist
    from numpyro.infer import MCMC, NUTS

    def model(log_n, log_y):
        log_e = numpyro.sample("log_E", dist.Normal(0.5, 1.0))
        log_a = numpyro.sample("log_A", dist.Normal(1.0, 1.5))
        alpha = numpyro.sample("alpha", dist.LogNormal(np.log(0.3), 1.0))
        sigma = numpyro.sample("sigma", dist.HalfNormal(0.2))
        mu = jnp.logaddexp(log_e, log_a - alpha * (log_n - np.log(1e8)))
        numpyro.sample("obs", dist.StudentT(4.0, mu, sigma), obs=log_y)

    chain_method = "parallel" if jax.local_device_count() >= 2 else "vectorized"
    times = []
    for k, task in enumerate(tasks[:n]):
        part = df[df["task"] == task]
        mcmc = MCMC(NUTS(model), num_warmup=500, num_samples=500, num_chains=2, chain_method=chain_method,
                    progress_bar=False)  # fmt: skip
        start = time.perf_counter()
        mcmc.run(jax.random.key(k), np.log(part["N"].to_numpy()), np.log(part["loss"].to_numpy()))
        mcmc.get_samples()
        times.append(time.perf_counter() - start)
    return times


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--fits", type=int, default=1000)
    parser.add_argument("--loop", type=int, default=40, help="single fits timed in the loop")
    parser.add_argument("--numpyro-loop", type=int, default=0, help="hand-written NumPyro fits timed (0: skip)")
    parser.add_argument("--batches", default="", help="extra fit_many batch sizes, e.g. 1,1000")
    parser.add_argument("--own-coordinates", action="store_true", help="also fit_many without level coordinates")
    parser.add_argument("--laplace-mass", action="store_true", help="also fit_many with laplace_mass=True")
    parser.add_argument("--mode-init", action="store_true", help='also fit_many with init="mode"')
    parser.add_argument(
        "--diagonal-shrinkage",
        action="store_true",
        help="also fit_many with diagonal_shrinkage=True (bayescale's own warmup, windows from iteration 25)",
    )
    args = parser.parse_args()
    warnings.simplefilter("ignore", bs.SamplerWarning)
    df = simulate(args.fits)
    model = bs.ScalingModel(bs.laws.SaturatingPowerLaw("N"), target="loss", inputs={"N": "N"})
    tasks = df["task"].unique()
    print(f"{args.fits} data sets, {len(df)} rows, 2 x (500 + 500) each; backend {jax.default_backend()}")

    model.fit(df[df["task"] == tasks[0]], seed=0, **SETTINGS)  # compile the bucket of the first data set
    per_fit = []
    steps_loop = []
    for task in tasks[: args.loop]:
        start = time.perf_counter()
        fit = model.fit(df[df["task"] == task], seed=0, **SETTINGS)
        per_fit.append(time.perf_counter() - start)
        steps_loop.append(float(fit.idata.sample_stats["n_steps"].mean()))
    loop_total = statistics.mean(per_fit) * args.fits  # the mean: a few hard fits take most of the time
    print(
        f"loop of single fits: mean {statistics.mean(per_fit):.3f} s per fit over {args.loop} "
        f"(median {statistics.median(per_fit):.3f}; incl. compiles of new row buckets) -> {loop_total:.0f} s "
        f"for {args.fits}; median {statistics.median(steps_loop):.1f} steps/draw"
    )

    if args.numpyro_loop:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            per_fit_numpyro = numpyro_loop(df, tasks, args.numpyro_loop)
        numpyro_total = statistics.mean(per_fit_numpyro) * args.fits
        print(
            f"numpyro MCMC.run loop: mean {statistics.mean(per_fit_numpyro):.3f} s per fit over "
            f"{args.numpyro_loop} -> {numpyro_total:.0f} s for {args.fits}"
        )

    own = bs.ScalingModel(OwnCoordinates("N"), target="loss", inputs={"N": "N"})
    variants = [(model, None, {})] + [(model, int(b), {}) for b in args.batches.split(",") if b]
    variants += [(own, None, {})] if args.own_coordinates else []
    variants += [(model, None, {"laplace_mass": True})] if args.laplace_mass else []
    variants += [(model, None, {"init": "mode"})] if args.mode_init else []
    variants += [(model, None, {"diagonal_shrinkage": True})] if args.diagonal_shrinkage else []
    for fitted, batch, options in variants:
        times = []
        for _ in range(2):
            start = time.perf_counter()
            fits = fitted.fit_many(df, by="task", seed=0, batch_size=batch, **SETTINGS, **options)
            times.append(time.perf_counter() - start)
        per_fit = fits._stats["n_steps"].mean(axis=(1, 2))
        steps = f"median {statistics.median(per_fit):.1f}, 99th percentile {np.quantile(per_fit, 0.99):.0f}"
        label = "default" if batch is None else f"batch {batch}"
        label += ", own coordinates" if fitted is own else ""
        label += "".join(f", {k}={v}" for k, v in options.items())
        print(
            f"fit_many ({label}): cold {times[0]:.1f} s, warm {times[1]:.1f} s, "
            f"{args.fits / times[1]:.1f} fits/s, {loop_total / times[1]:.1f}x the loop"
            + (f", {numpyro_total / times[1]:.1f}x the numpyro loop; " if args.numpyro_loop else "; ")
            + f"{fits.healthy.mean():.1%} healthy; steps/draw {steps}"
        )
    start = time.perf_counter()
    table = fits.summary()
    print(f"fits.summary(): {len(table)} rows in {time.perf_counter() - start:.2f} s")


if __name__ == "__main__":
    main()
