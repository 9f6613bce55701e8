"""Benchmark: a hierarchical Chinchilla fit, 8 families x 40 runs, 4 chains x (1000 + 1000).

The data are simulated with known truth: every family has its own E, A, alpha, B, beta,
scattered around Besiroglu et al.'s Chinchilla fit (log-normal spreads of 0.1-0.3), 40 runs on a grid of 8
model sizes x 5 tokens-per-parameter ratios, 1% log-normal noise. Compared in the same
process:

- ``bayescale``: ``ScalingModel(Chinchilla(), group="family")`` with its defaults (every
  parameter pooled; every family fitted alone first, the pooled groups sampled in the frame
  those fits give, :mod:`bayescale.model.pooled`, and chains started where the fits say, with
  their variances as the initial mass matrix); the same with random starts
  (``init="random"``); and with ``pilot=False`` (the default before the pilot: non-centred
  exponents, level terms centred where a family's data measure them, random starts);
- ``numpyro, straightforward``: the model as a user would write it in NumPyro (raw log
  inputs, centred per-family parameters around population means with HalfNormal spreads,
  Student-t likelihood, diagonal mass), ``numpyro.infer.MCMC`` + NUTS;
- with ``--numpyro-warmup``: the default and ``pilot=False`` again with NumPyro's own
  mass-matrix warmup (``diagonal_shrinkage=False``) instead of :mod:`bayescale.sampler.adaptation`'s.

Prints cold and warm wall time (warm: median of the repeats, new seeds), mean leapfrog
steps per draw, divergences, minimum bulk ESS over all parameters (per-family and
population) and min-bulk-ESS per warm second, and the ratios.

    python benchmarks/bench_hierarchical_fit.py [--repeats 2] [--families 8] [--runs 40] [--numpyro-warmup]
"""

from __future__ import annotations

import argparse
import time
import warnings

import arviz as az
import bench_chinchilla_fit
import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd

import bayescale as bs

POP = {"E": 1.82, "A": 482.0, "alpha": 0.348, "B": 2085.0, "beta": 0.366}  # Besiroglu et al.'s Chinchilla fit
SPREAD = {"E": 0.1, "A": 0.3, "alpha": 0.15, "B": 0.3, "beta": 0.15}  # sd of the log across families


def simulate(n_families: int, runs: int, seed: int = 0) -> pd.DataFrame:
    """``n_families`` families of ``runs`` runs each (a grid of sizes x tokens per parameter)."""
    rng = np.random.default_rng(seed)
    law = bs.laws.Chinchilla()
    ratios = np.array([5.0, 10.0, 20.0, 40.0, 80.0])
    sizes = np.geomspace(5e7, 5e9, max(runs // len(ratios), 1))
    n, r = (g.ravel()[:runs] for g in np.meshgrid(sizes, ratios, indexing="ij"))
    frames = []
    for f in range(n_families):
        truth = {k: v * np.exp(SPREAD[k] * rng.standard_normal()) for k, v in POP.items()}
        y = np.asarray(law.mean(truth, N=n, D=n * r)) * np.exp(0.01 * rng.standard_normal(n.size))
        frames.append(pd.DataFrame({"family": f"f{f}", "N": n, "D": n * r, "loss": y}))
    return pd.concat(frames, ignore_index=True)


def bench_bayescale(df: pd.DataFrame, repeats: int, pilot: bool | None = None, **options) -> list[tuple]:
    model = bs.ScalingModel(bs.laws.Chinchilla(), target="loss", group="family", pilot=pilot)
    rows = []
    for seed in range(repeats + 1):
        start = time.perf_counter()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", bs.SamplerWarning)
            fit = model.fit(df, seed=seed, **options)
        wall = time.perf_counter() - start
        stats = fit.idata.sample_stats
        ess = float(fit.summary()["ess_bulk"].min())
        rows.append((wall, float(stats["n_steps"].mean()), ess, int(stats["diverging"].sum()), len(caught)))
    return rows


def straightforward_model(log_n, log_d, family, n_families, log_y=None):
    """The hierarchical Chinchilla model as written by hand: centred, raw log inputs."""
    import numpyro
    import numpyro.distributions as dist

    def pooled(name, loc, scale):
        mu = numpyro.sample(f"{name}_mu", dist.Normal(loc, scale))
        tau = numpyro.sample(f"{name}_tau", dist.HalfNormal(0.5 * scale))
        with numpyro.plate("family", n_families):
            return numpyro.sample(name, dist.Normal(mu, tau))

    log_e = pooled("log_E", 0.5, 1.0)
    log_a = pooled("log_A", 6.0, 3.0)
    alpha = pooled("alpha", 0.3, 0.3)
    log_b = pooled("log_B", 7.0, 3.0)
    beta = pooled("beta", 0.3, 0.3)
    sigma = numpyro.sample("sigma", dist.HalfNormal(0.2))
    terms = jnp.stack([log_e[family], log_a[family] - alpha[family] * log_n, log_b[family] - beta[family] * log_d])
    mu = jax.scipy.special.logsumexp(terms, axis=0)
    numpyro.sample("obs", dist.StudentT(4.0, mu, sigma), obs=log_y)


def bench_numpyro(df: pd.DataFrame, repeats: int) -> list[tuple]:
    from numpyro.infer import MCMC, NUTS

    family = jnp.asarray(pd.factorize(df["family"])[0])
    n_families = int(family.max()) + 1
    data = (jnp.log(df["N"].to_numpy()), jnp.log(df["D"].to_numpy()), family, n_families)
    log_y = jnp.log(df["loss"].to_numpy())
    chain_method = "parallel" if jax.local_device_count() >= 2 else "vectorized"
    mcmc = MCMC(
        NUTS(straightforward_model), num_warmup=1000, num_samples=1000, num_chains=4,
        chain_method=chain_method, progress_bar=False,
    )  # fmt: skip
    rows = []
    for seed in range(repeats + 1):
        start = time.perf_counter()
        mcmc.run(jax.random.key(seed), *data, log_y=log_y, extra_fields=("num_steps", "diverging"))
        samples = mcmc.get_samples(group_by_chain=True)
        wall = time.perf_counter() - start
        extra = mcmc.get_extra_fields(group_by_chain=True)
        ess = min(_min_ess(v) for v in samples.values())
        rows.append((wall, float(np.mean(extra["num_steps"])), ess, int(np.sum(extra["diverging"])), 0))
    return rows


def _min_ess(values) -> float:
    """Minimum bulk ESS over the trailing (per-family) axis of a (chain, draw, ...) array."""
    v = np.asarray(values).reshape(values.shape[0], values.shape[1], -1)
    return min(float(az.ess(v[..., k])) for k in range(v.shape[-1]))


def report(name: str, rows: list[tuple]) -> tuple[float, float]:
    return bench_chinchilla_fit.report(name, rows, width=28)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=2, help="warm fits after the cold one (default 2)")
    parser.add_argument("--families", type=int, default=8)
    parser.add_argument("--runs", type=int, default=40)
    parser.add_argument("--skip-baseline", action="store_true", help="bayescale only")
    parser.add_argument(
        "--numpyro-warmup",
        action="store_true",
        help="also fit with NumPyro's mass-matrix warmup (diagonal_shrinkage=False), side by side",
    )
    args = parser.parse_args()
    df = simulate(args.families, args.runs)
    print(
        f"jax {jax.__version__}, {jax.local_device_count()} {jax.default_backend()} device(s); {args.families} "
        f"families x {args.runs} runs; 4 chains x 1000 warmup x 1000 draws; warm = median of {args.repeats}"
    )
    print(f"{'':<28} {'cold s':>8} {'warm s':>8} {'steps':>8} {'min ESS':>9} {'ESS/s':>9} {'div':>5} {'warn':>5}")
    ours = report("bayescale (default)", bench_bayescale(df, args.repeats))
    random = report('  init="random"', bench_bayescale(df, args.repeats, init="random"))
    plain = report("  pilot=False", bench_bayescale(df, args.repeats, pilot=False))
    for label, other in (('init="random"', random), ("pilot=False", plain)):
        print(
            f"ratio default / {label}: warm time x{other[0] / ours[0]:.2f} faster, "
            f"ESS per second x{ours[1] / other[1]:.2f}"
        )
    if args.numpyro_warmup:
        for label, pilot_on, mine in (("default", None, ours), ("pilot=False", False, plain)):
            theirs = report(
                f"  {label}, NumPyro's warmup",
                bench_bayescale(df, args.repeats, pilot=pilot_on, diagonal_shrinkage=False),
            )
            print(
                f"ratio bayescale ({label}) / same with NumPyro's warmup: warm time x{theirs[0] / mine[0]:.2f} faster, "
                f"ESS per second x{mine[1] / theirs[1]:.2f}"
            )
    if args.skip_baseline:
        return
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        base = report("numpyro, straightforward", bench_numpyro(df, args.repeats))
    for label, mine in (("default", ours), ('init="random"', random), ("pilot=False", plain)):
        print(
            f"ratio bayescale ({label}) / numpyro: warm time x{base[0] / mine[0]:.1f} faster, "
            f"ESS per second x{mine[1] / base[1]:.1f}"
        )


if __name__ == "__main__":
    main()
