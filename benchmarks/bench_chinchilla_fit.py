"""Benchmark: one Chinchilla fit (240 rows, 4 chains x 1000 warmup x 1000 draws).

Prints, for bayescale and for a hand-written NumPyro baseline run in the same process
(``numpyro.infer.MCMC`` + NUTS on the straightforward model: raw log inputs,
parameters log E, log A, alpha, log B, beta), the wall time with compilation (cold),
without (warm: median of the repeats, new seeds, same data shape), mean leapfrog steps
per draw, minimum bulk ESS over the law parameters, and min-bulk-ESS per warm second.

    BAYESCALE_DATA_DIR=../shared/datasets python benchmarks/bench_chinchilla_fit.py [--repeats 3]
"""

from __future__ import annotations

import argparse
import statistics
import time
import warnings

import jax
import jax.numpy as jnp
import numpy as np

import bayescale as bs
from bayescale._arviz import az

LAW_PARAMS = ["E", "A", "alpha", "B", "beta"]


def bench_bayescale(df, repeats):
    model = bs.ScalingModel(bs.laws.Chinchilla(), target="loss", inputs={"N": "N", "D": "D"})
    rows = []
    for seed in range(repeats + 1):
        start = time.perf_counter()
        fit = model.fit(df, seed=seed)
        wall = time.perf_counter() - start
        stats = fit.idata.sample_stats
        ess = float(fit.summary().loc[LAW_PARAMS, "ess_bulk"].min())
        rows.append((wall, float(stats["n_steps"].mean()), ess, int(stats["diverging"].sum())))
    return rows


def bench_numpyro_baseline(df, repeats, dense_mass):
    import numpyro
    import numpyro.distributions as dist
    from numpyro.infer import MCMC, NUTS

    log_n, log_d = jnp.log(df["N"].to_numpy()), jnp.log(df["D"].to_numpy())
    log_y = jnp.log(df["loss"].to_numpy())

    def model(log_n, log_d, log_y):
        e = numpyro.sample("log_E", dist.Normal(0.5, 1.0))
        a = numpyro.sample("log_A", dist.Normal(6.0, 3.0))
        alpha = numpyro.sample("alpha", dist.HalfNormal(1.0))
        b = numpyro.sample("log_B", dist.Normal(7.0, 3.0))
        beta = numpyro.sample("beta", dist.HalfNormal(1.0))
        sigma = numpyro.sample("sigma", dist.HalfNormal(0.2))
        mu = jax.scipy.special.logsumexp(
            jnp.stack(jnp.broadcast_arrays(e, a - alpha * log_n, b - beta * log_d)), axis=0
        )
        numpyro.sample("obs", dist.StudentT(4.0, mu, sigma), obs=log_y)

    rows = []
    chain_method = "parallel" if jax.local_device_count() >= 2 else "vectorized"
    mcmc = MCMC(
        NUTS(model, dense_mass=dense_mass),
        num_warmup=1000,
        num_samples=1000,
        num_chains=4,
        chain_method=chain_method,
        progress_bar=False,
    )
    for seed in range(repeats + 1):
        start = time.perf_counter()
        mcmc.run(jax.random.key(seed), log_n, log_d, log_y, extra_fields=("num_steps", "diverging"))
        samples = mcmc.get_samples(group_by_chain=True)
        wall = time.perf_counter() - start
        extra = mcmc.get_extra_fields(group_by_chain=True)
        ess = min(float(az.ess(np.asarray(samples[k]))) for k in ["log_E", "log_A", "alpha", "log_B", "beta"])
        rows.append((wall, float(np.mean(extra["num_steps"])), ess, int(np.sum(extra["diverging"]))))
    return rows


def report(name, rows):
    cold = rows[0][0]
    warm = statistics.median(r[0] for r in rows[1:])
    steps = statistics.median(r[1] for r in rows)
    ess = statistics.median(r[2] for r in rows[1:])
    div = sum(r[3] for r in rows)
    print(f"{name:<38} {cold:8.2f} {warm:8.2f} {steps:8.1f} {ess:9.0f} {ess / warm:9.0f} {div:5d}")
    return warm, ess / warm


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3, help="warm fits after the cold one (default 3)")
    args = parser.parse_args()
    df = bs.datasets.load("chinchilla")
    df = df[~df["besiroglu_excluded"]]
    print(
        f"jax {jax.__version__}, {jax.local_device_count()} {jax.default_backend()} device(s); "
        f"{len(df)} rows; 4 chains x 1000 warmup x 1000 draws; warm = median of {args.repeats}"
    )
    print(f"{'':<38} {'cold s':>8} {'warm s':>8} {'steps':>8} {'min ESS':>9} {'ESS/s':>9} {'div':>5}")
    ours = report("bayescale (default)", bench_bayescale(df, args.repeats))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        base_dense = report("numpyro MCMC, hand-written, dense", bench_numpyro_baseline(df, args.repeats, True))
        base_diag = report("numpyro MCMC, hand-written, diagonal", bench_numpyro_baseline(df, args.repeats, False))
    for label, base in (("dense", base_dense), ("diagonal", base_diag)):
        print(
            f"ratio bayescale / numpyro {label}: warm time x{base[0] / ours[0]:.1f} faster, "
            f"ESS per second x{ours[1] / base[1]:.1f}"
        )


if __name__ == "__main__":
    main()
