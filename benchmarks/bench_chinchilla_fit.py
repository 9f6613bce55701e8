"""Benchmark: one Chinchilla fit (240 rows, 4 chains x 1000 warmup x 1000 draws).

Prints, for bayescale and for a hand-written NumPyro baseline run in the same process
(``numpyro.infer.MCMC`` + NUTS on the straightforward model: raw log inputs,
parameters log E, log A, alpha, log B, beta), the wall time with compilation (cold),
without (warm: median of the repeats, new seeds, same data shape), mean leapfrog steps
per draw, minimum bulk ESS over the law parameters, and min-bulk-ESS per warm second.

With ``--others`` (needs ``pip install pymc nutpie``), the same posterior the ways users
compute it today, in the same process:

- PyMC's default sampler and nutpie (diagonal, and its low-rank mass matrix) on the
  straightforward PyMC model (the NumPyro baseline's model, priors and Student-t likelihood);
- Besiroglu et al.'s recipe: Huber loss (delta 1e-3) on log loss, L-BFGS from Hoffmann et
  al.'s grid of 4,500 starts, then 4,000 bootstrap refits (resampled rows, each started from
  the full-data optimum: cheaper than a grid per refit, so favourable to the baseline); the
  time to its intervals, and the 95% bootstrap interval of alpha.

    BAYESCALE_DATA_DIR=../shared/datasets python benchmarks/bench_chinchilla_fit.py [--repeats 3] [--others]
"""

from __future__ import annotations

import argparse
import statistics
import time
import warnings

import arviz as az
import jax
import jax.numpy as jnp
import numpy as np

import bayescale as bs

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


def bench_pymc(df, repeats, how):
    """PyMC's default sampler (``how="pymc"``) or nutpie (``"nutpie"``, ``"nutpie-lowrank"``)."""
    import logging

    import pymc as pm

    logging.getLogger("pymc").setLevel(logging.ERROR)
    log_n, log_d, log_y = (np.log(df[c].to_numpy()) for c in ("N", "D", "loss"))
    with pm.Model() as model:
        e = pm.Normal("log_E", 0.5, 1.0)
        a = pm.Normal("log_A", 6.0, 3.0)
        alpha = pm.HalfNormal("alpha", 1.0)
        b = pm.Normal("log_B", 7.0, 3.0)
        beta = pm.HalfNormal("beta", 1.0)
        sigma = pm.HalfNormal("sigma", 0.2)
        terms = pm.math.stack([e + 0.0 * log_n, a - alpha * log_n, b - beta * log_d])
        pm.StudentT("obs", nu=4.0, mu=pm.math.logsumexp(terms, axis=0), sigma=sigma, observed=log_y)
    rows, compiled = [], None
    for seed in range(repeats + 1):
        start = time.perf_counter()
        if how == "pymc":
            with model:
                idata = pm.sample(
                    1000, tune=1000, chains=4, cores=2, random_seed=seed, progressbar=False,
                    compute_convergence_checks=False,
                )  # fmt: skip
        else:
            import nutpie

            compiled = compiled or nutpie.compile_pymc_model(model)
            idata = nutpie.sample(
                compiled, draws=1000, tune=1000, chains=4, seed=seed, progress_bar=False,
                low_rank_modified_mass_matrix=how == "nutpie-lowrank",
            )  # fmt: skip
        wall = time.perf_counter() - start
        stats = idata.sample_stats
        ess = float(az.ess(idata, var_names=["log_E", "log_A", "alpha", "log_B", "beta"]).to_array().min())
        rows.append((wall, float(stats["n_steps"].mean()), ess, int(stats["diverging"].sum())))
    return rows


HOFFMANN_GRID = (
    np.array(
        np.meshgrid(
            np.arange(-1.0, 1.01, 0.5),  # e = log E
            np.arange(0.0, 26.0, 5.0),  # a = log A
            np.arange(0.0, 2.01, 0.5),  # alpha
            np.arange(0.0, 26.0, 5.0),  # b = log B
            np.arange(0.0, 2.01, 0.5),  # beta
            indexing="ij",
        )
    )
    .reshape(5, -1)
    .T
)


# L-BFGS-B's default tolerances stop a bootstrap refit at its start (the Huber objective and its
# gradient are ~1e-3): alpha's 95% interval comes out [0.346, 0.348] instead of [0.319, 0.368].
TIGHT = {"ftol": 1e-15, "gtol": 1e-12, "maxiter": 10_000}


def huber_objective(theta, log_n, log_d, log_y, delta=1e-3):
    """Besiroglu et al.'s objective (sum of Huber losses of log loss) and its gradient."""
    e, a, alpha, b, beta = theta
    terms = np.stack([np.full_like(log_n, e), a - alpha * log_n, b - beta * log_d])
    top = terms.max(axis=0)
    weights = np.exp(terms - top)
    total = weights.sum(axis=0)
    r = top + np.log(total) - log_y
    small = np.abs(r) <= delta
    value = np.where(small, 0.5 * r**2, delta * (np.abs(r) - 0.5 * delta)).sum()
    dr = np.clip(r, -delta, delta) * weights / total  # d loss / d term, per term and row
    grad = np.array([dr[0].sum(), dr[1].sum(), -(dr[1] * log_n).sum(), dr[2].sum(), -(dr[2] * log_d).sum()])
    return value, grad


def bench_besiroglu(df, n_boot=4000, seed=0):
    """Wall time of the grid fit and of the bootstrap, and the bootstrap's 95% interval of alpha."""
    from scipy.optimize import minimize

    data = tuple(np.log(df[c].to_numpy()) for c in ("N", "D", "loss"))

    def fit(start, rows):
        args = tuple(x[rows] for x in data)
        return minimize(huber_objective, start, args=args, jac=True, method="L-BFGS-B", options=TIGHT)

    everything = np.arange(len(df))
    start = time.perf_counter()
    best = min((fit(theta, everything) for theta in HOFFMANN_GRID), key=lambda r: r.fun)
    grid_s = time.perf_counter() - start
    rng = np.random.default_rng(seed)
    start = time.perf_counter()
    boot = np.array([fit(best.x, rng.integers(0, len(df), len(df))).x for _ in range(n_boot)])
    boot_s = time.perf_counter() - start
    return grid_s, boot_s, best.x, np.quantile(boot[:, 2], [0.025, 0.975])


def report(name, rows, width=38):
    """Print cold, median warm, steps, ESS, ESS/s, divergences (and warnings, a 5th field); return warm, ESS/s."""
    cold = rows[0][0]
    warm = statistics.median(r[0] for r in rows[1:])
    steps = statistics.median(r[1] for r in rows)
    ess = statistics.median(r[2] for r in rows[1:])
    div = sum(r[3] for r in rows)
    extra = f" {rows[-1][4]:5d}" if len(rows[-1]) > 4 else ""
    print(f"{name:<{width}} {cold:8.2f} {warm:8.2f} {steps:8.1f} {ess:9.0f} {ess / warm:9.0f} {div:5d}{extra}")
    return warm, ess / warm


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3, help="warm fits after the cold one (default 3)")
    parser.add_argument("--others", action="store_true", help="also PyMC, nutpie and Besiroglu et al.'s recipe")
    parser.add_argument("--only-others", action="store_true", help="bayescale and the --others baselines only")
    args = parser.parse_args()
    df = bs.datasets.load("chinchilla")
    df = df[~df["besiroglu_excluded"]]
    print(
        f"jax {jax.__version__}, {jax.local_device_count()} {jax.default_backend()} device(s); "
        f"{len(df)} rows; 4 chains x 1000 warmup x 1000 draws; warm = median of {args.repeats}"
    )
    print(f"{'':<38} {'cold s':>8} {'warm s':>8} {'steps':>8} {'min ESS':>9} {'ESS/s':>9} {'div':>5}")
    ours = report("bayescale (default)", bench_bayescale(df, args.repeats))
    others = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for label, dense in (("dense", True), ("diagonal", False)) if not args.only_others else ():
            rows = bench_numpyro_baseline(df, args.repeats, dense)
            others[f"numpyro {label}"] = report(f"numpyro MCMC, hand-written, {label}", rows)
    if args.others or args.only_others:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for how in ("pymc", "nutpie", "nutpie-lowrank"):
                others[how] = report(f"{how}, hand-written", bench_pymc(df, args.repeats, how))
    for label, base in others.items():
        print(
            f"ratio bayescale / {label}: warm time x{base[0] / ours[0]:.1f} faster, "
            f"ESS per second x{ours[1] / base[1]:.1f}"
        )
    if args.others or args.only_others:
        grid_s, boot_s, best, alpha_95 = bench_besiroglu(df)
        print(
            f"Besiroglu et al.'s recipe: grid of {len(HOFFMANN_GRID)} L-BFGS starts {grid_s:.1f} s, 4,000 bootstrap "
            f"refits {boot_s:.1f} s, total {grid_s + boot_s:.1f} s = x{(grid_s + boot_s) / ours[0]:.1f} a warm "
            f"bayescale fit; alpha {best[2]:.4f}, 95% bootstrap [{alpha_95[0]:.3f}, {alpha_95[1]:.3f}]"
        )


if __name__ == "__main__":
    main()
