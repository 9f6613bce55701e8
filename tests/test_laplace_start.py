"""Chains start at the posterior mode: a draw from its Laplace approximation, the inverse Hessian as mass matrix.

Where there is no mode to trust, at the random start with an identity matrix (``init="random"``
always; ``laplace_mass=True`` takes the matrix and keeps the random start).
"""

from __future__ import annotations

import arviz as az
import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
import pandas as pd
import pytest
from jax.flatten_util import ravel_pytree
from numpyro.infer.util import potential_energy
from scipy import optimize

import bayescale as bs
from bayescale.model.args import n_rows, pad_rows, row_bucket
from bayescale.sampler import options as options_module
from bayescale.sampler import runner as runners
from bayescale.sampler.laplace import laplace
from bayescale.sampler.options import NUTSOptions, dimension
from bayescale.sampler.runner import Runner
from tests.conftest import args_of, assert_same_posterior, model_function, sites_of


def runner(model: bs.ScalingModel, df: pd.DataFrame, warmup: int = 500, **options) -> tuple[Runner, object]:
    """The compiled single-chain sampler of ``model`` on ``df``, and its (padded) arguments."""
    data = model.validate(df)
    args = args_of(model, data)
    args = pad_rows(args, row_bucket(n_rows(args)))
    sites = sites_of(model, len(data.group_labels))
    options = NUTSOptions(**options).resolved(dimension(sites), n_rows(args), has_start=args.start is not None)
    return Runner(model_function(model), sites, warmup, options, "chain", report=model.posterior_names), args


def saturating(seed: int = 5, rows: int = 40) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    n = np.geomspace(1e7, 1e10, rows)
    loss = (1.9 + 3.2 * (n / 1e8) ** -0.3) * np.exp(0.02 * rng.standard_normal(rows))
    return pd.DataFrame({"N": n, "loss": loss})


def test_laplace_finds_the_mode_and_curvature_of_a_skewed_density():
    # a product of a Gamma(3, 2) and a Normal in (log x, y): mode and Hessian known in closed form
    def f(v):
        log_x, y = v
        return -(3.0 * log_x - 2.0 * jnp.exp(log_x)) + 0.5 * ((y - log_x) / 0.5) ** 2

    fit = laplace(f, jnp.array([2.0, -3.0]))
    mode = np.log(1.5)  # d/dlogx: 3 - 2x = 0
    hessian = np.array([[2 * 1.5 + 4.0, -4.0], [-4.0, 4.0]])
    assert bool(fit.ok)
    # Newton stops where g' H^-1 g / 2 < 1e-10: within sqrt(2e-10 / smallest eigenvalue) ~ 1e-5 of the mode
    np.testing.assert_allclose(fit.mode, [mode, mode], atol=2e-5)
    np.testing.assert_allclose(fit.covariance, np.linalg.inv(hessian), rtol=1e-4)


def test_laplace_refuses_a_density_without_a_mode():
    # exp(-f) grows without bound as y -> -inf (like a funnel as the groups' spread -> 0)
    fit = laplace(lambda v: v[0] ** 2 + jnp.exp(v[1]) - v[1], jnp.array([1.0, 3.0]))
    assert bool(fit.ok)  # this one has a mode at (0, 0)
    fit = laplace(lambda v: v[0] ** 2 + 0.5 * v[1], jnp.array([1.0, 3.0]))
    assert not bool(fit.ok)


def independent_mode(model: bs.ScalingModel, args, z) -> tuple[np.ndarray, np.ndarray]:
    """The mode nearest ``z`` and the inverse Hessian there, by scipy's trust-region Newton on the same potential."""
    flat, unravel = ravel_pytree(z)

    def energy(y):
        return potential_energy(model_function(model), (args,), {}, unravel(y))

    value_and_grad, hessian = jax.jit(jax.value_and_grad(energy)), jax.jit(jax.hessian(energy))
    found = optimize.minimize(
        lambda y: [np.asarray(a) for a in value_and_grad(y)], np.asarray(flat), jac=True,
        hess=lambda y: np.asarray(hessian(y)), method="trust-exact", options={"gtol": 1e-8},
    )  # fmt: skip
    # near the mode trust-exact can stall where the gradient is float64 noise: ~1e-7 in Chinchilla's level
    # coordinates (a potential of ~150 in coordinates of ~100), against a Hessian diagonal of ~1-100
    assert found.success or np.abs(found.jac).max() < 1e-6, found.message
    return found.x, np.linalg.inv(np.asarray(hessian(jnp.asarray(found.x))))


@pytest.mark.parametrize("options", [{"init": "mode"}, {"laplace_mass": True}], ids=["mode", "laplace_mass"])
def test_the_initial_mass_is_the_inverse_hessian_at_the_mode(quickstart_runs, options):
    model = bs.ScalingModel("chinchilla")
    sampler, args = runner(model, quickstart_runs, **options)
    state = sampler._init(jax.random.key(3), args, args.start)
    _, expected = independent_mode(model, args, sampler._unravel(state.z))
    inverse_mass = np.asarray(state.adapt_state.inverse_mass_matrix)
    assert inverse_mass.shape == expected.shape, "a dense matrix for a small model"
    np.testing.assert_allclose(inverse_mass, expected, rtol=1e-4, atol=1e-6 * np.abs(expected).max())


def test_chains_start_at_draws_from_the_laplace_approximation(quickstart_runs):
    """400 chains' starts, whitened by the independently found mode and covariance, are N(0, I) draws.

    Tolerances are 4 standard errors of the mean (1 / sqrt(400)) and of a variance (sqrt(2 / 400)).
    """
    model = bs.ScalingModel("chinchilla")
    sampler, args = runner(model, quickstart_runs, init="mode")
    start = jax.jit(jax.vmap(lambda k: sampler._unravel(sampler._init_one(k, args, None).z)))
    starts = start(jax.random.split(jax.random.key(0), 400))
    flat = np.asarray(jax.vmap(lambda z: ravel_pytree(z)[0])(starts))
    # from the starts' mean (from a start two sds out, scipy stalls at a gradient of 2e-7 in float64 noise)
    mode, covariance = independent_mode(model, args, jax.tree_util.tree_map(lambda a: a.mean(axis=0), starts))
    white = np.linalg.solve(np.linalg.cholesky(covariance), (flat - mode).T).T
    n = len(white)
    np.testing.assert_array_less(np.abs(white.mean(axis=0)), 4 / np.sqrt(n))
    np.testing.assert_array_less(np.abs(white.var(axis=0, ddof=1) - 1), 4 * np.sqrt(2 / n))
    correlations = np.corrcoef(white.T)[np.triu_indices(white.shape[1], 1)]
    np.testing.assert_array_less(np.abs(correlations), 4 / np.sqrt(n))


@pytest.mark.parametrize("options", [{"init": "mode"}, {"laplace_mass": True}], ids=["mode", "laplace_mass"])
def test_where_newton_finds_no_mode_the_chain_starts_at_random_with_the_identity(quickstart_runs, monkeypatch, options):
    # one Newton step from a random start is not a mode (a hierarchical funnel, whose density grows
    # without bound as the groups' spread shrinks, has none: see test_laplace_refuses_a_density_without_a_mode)
    monkeypatch.setattr(runners, "laplace", lambda f, y0, steps: laplace(f, y0, steps=1))
    sampler, args = runner(bs.ScalingModel("chinchilla"), quickstart_runs, warmup=100, **options)
    state = sampler._init(jax.random.key(3), args, args.start)
    inverse_mass = np.asarray(state.adapt_state.inverse_mass_matrix)
    np.testing.assert_array_equal(inverse_mass, np.eye(len(inverse_mass)))
    start = jax.jit(sampler._start)(jax.random.split(jax.random.key(3))[0], args)  # other settings, other rounding
    np.testing.assert_allclose(ravel_pytree(state.z)[0], ravel_pytree(start)[0], rtol=1e-12)


def test_chains_start_at_the_mode_by_default_from_1000_rows_and_up_to_64_dimensions():
    sites = sites_of(bs.ScalingModel("chinchilla"), 0)
    assert NUTSOptions().resolved(dimension(sites), 896).init == "random"  # 897-1,000 rows are padded to 1,024
    assert NUTSOptions().resolved(dimension(sites), 1024).init == "mode"
    assert NUTSOptions(init="random").resolved(dimension(sites), 1024).init == "random"
    assert NUTSOptions(init="mode").resolved(dimension(sites), 16).init == "mode"
    many = bs.ScalingModel("chinchilla", group="family", independent=["E", "A", "alpha", "B", "beta"])
    assert NUTSOptions().resolved(dimension(sites_of(many, 13)), 1024).init == "random"  # 66 dimensions


def test_a_large_model_starts_at_random_with_the_identity(quickstart_runs, monkeypatch):
    for module in (runners, options_module):  # the Chinchilla law has 6 unconstrained dimensions
        monkeypatch.setattr(module, "LAPLACE_MAX_DIM", 5)
    sampler, args = runner(bs.ScalingModel("chinchilla"), quickstart_runs, warmup=100, laplace_mass=True)
    state = sampler._init(jax.random.key(3), args, args.start)
    np.testing.assert_array_equal(np.asarray(state.adapt_state.inverse_mass_matrix), np.eye(6))
    with pytest.raises(ValueError, match='init="mode" needs exact Hessians, and this model has 6 unconstrained'):
        runner(bs.ScalingModel("chinchilla"), quickstart_runs, init="mode")


def test_init_must_be_mode_random_or_pilot(quickstart_runs):
    with pytest.raises(ValueError, match=r"init must be one of \('mode', 'random', 'pilot'\), got 'median'"):
        bs.ScalingModel("chinchilla").fit(quickstart_runs, init="median")


def warmup_steps(**options) -> int:
    """Leapfrog steps of one chain's 500 warmup iterations on a 40-run saturating curve."""
    sampler, args = runner(bs.ScalingModel(bs.laws.SaturatingPowerLaw("N"), target="loss"), saturating(), **options)
    state = sampler._init(jax.random.key(0), args, args.start)
    _, (_, info) = sampler.advance(500)(state, args, sampler.options.target_accept_prob)
    return int(info["n_steps"].sum())


def test_the_laplace_mass_cuts_warmup_steps():
    """Measured 1.9x fewer leapfrog steps (3,653 against 6,998; random start either way)."""
    assert 1.5 * warmup_steps(init="random", laplace_mass=True) < warmup_steps(init="random")


def test_the_mode_start_cuts_warmup_steps():
    """Measured 2.4x fewer leapfrog steps (2,974 against 6,998) than a random start with the identity."""
    assert 1.5 * warmup_steps(init="mode") < warmup_steps()


def bimodal(args):
    """x with two modes, at -3 and 3 (sd 0.3), and nothing between them: exp(-50) at 0."""
    x = numpyro.sample("x", dist.Normal(0.0, 10.0))
    numpyro.factor("modes", jnp.logaddexp(dist.Normal(-3.0, 0.3).log_prob(x), dist.Normal(3.0, 0.3).log_prob(x)))


def test_chains_that_find_different_modes_stay_apart_and_r_hat_says_so():
    """Every chain runs Newton from its own random start: the mode start does not gather the chains in one mode."""
    options = NUTSOptions(init="mode").resolved(dimension({"x": ((), 5.0)}), 0)
    sampler = Runner(bimodal, {"x": ((), 5.0)}, 200, options, "chain", report=("x",))
    draws = []
    for key in jax.random.split(jax.random.key(0), 8):
        state = sampler._init(key, None, None)
        _, (z, _) = sampler.advance(400)(state, None, sampler.options.target_accept_prob)
        draws.append(np.asarray(z["x"][200:]))
    draws = np.array(draws)
    sides = np.sign(draws.mean(axis=1))
    assert set(sides) == {-1.0, 1.0}, "chains in both modes"
    assert np.all(np.sign(draws) == sides[:, None]), "no chain crosses the barrier"
    assert float(az.rhat(draws)) > 1.5


def test_the_same_posterior_from_either_start(chinchilla, chinchilla_fit):
    model = bs.ScalingModel(bs.laws.Chinchilla(), target="loss", inputs={"N": "N", "D": "D"})
    assert chinchilla_fit.options.init == "random", "the default on 240 rows"
    started = model.fit(chinchilla, seed=1, chains=4, warmup=1000, draws=1000, init="mode")
    assert_same_posterior(chinchilla_fit, started, ["E", "A", "alpha", "B", "beta", "sigma"])


def test_a_law_with_poor_local_modes_starts_at_the_mode_at_any_size():
    sites = {"x": ((), 5.0)}
    assert NUTSOptions().resolved(dimension(sites), 64, local_modes=True).init == "mode"
    assert NUTSOptions(init="random").resolved(dimension(sites), 64, local_modes=True).init == "random"
    assert NUTSOptions().resolved(dimension(sites), 64).init == "random"
    assert NUTSOptions().resolved(dimension(sites), 64, local_modes=True).mode_starts == 8
    assert NUTSOptions(mode_starts=3).resolved(dimension(sites), 64, local_modes=True).mode_starts == 3
    with pytest.raises(ValueError, match="mode_starts=3 applies to init=\"mode\", and this fit has init='random'"):
        NUTSOptions(mode_starts=3).resolved(dimension(sites), 64)
    with pytest.raises(ValueError, match="mode_starts must be a whole number >= 1, got 0"):
        NUTSOptions(mode_starts=0)
