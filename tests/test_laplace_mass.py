"""NUTS' initial mass matrix: the inverse Hessian at the posterior mode, the identity where there is none."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
from jax.flatten_util import ravel_pytree
from numpyro.infer.util import potential_energy
from scipy import optimize

import bayescale as bs
from bayescale import inference
from bayescale.inference import NUTSOptions, _resolved, _Runner
from bayescale.laplace import laplace
from bayescale.model import n_rows, pad_rows, row_bucket
from tests.conftest import assert_same_posterior


def runner(model: bs.ScalingModel, df: pd.DataFrame, warmup: int = 500, **options) -> tuple[_Runner, object]:
    """The compiled single-chain sampler of ``model`` on ``df``, and its (padded) arguments."""
    data = model.validate(df)
    args = model.model_args(data, model.log_references(data))
    args = pad_rows(args, row_bucket(n_rows(args)))
    sites = model.latent_sites(len(data.group_labels))
    return _Runner(model._model, sites, warmup, _resolved(NUTSOptions(**options), sites), "chain"), args


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


def test_the_initial_mass_is_the_inverse_hessian_at_the_mode(quickstart_runs):
    model = bs.ScalingModel("chinchilla")
    sampler, args = runner(model, quickstart_runs, laplace_mass=True)
    state = sampler._init(jax.random.key(3), args)
    flat, unravel = ravel_pytree(state.z)

    # the mode found independently: scipy's trust-region Newton from the chain's start, on the same potential
    def energy(y):
        return potential_energy(model._model, (args,), {}, unravel(y))

    value_and_grad, hessian = jax.jit(jax.value_and_grad(energy)), jax.jit(jax.hessian(energy))
    found = optimize.minimize(
        lambda y: [np.asarray(a) for a in value_and_grad(y)], np.asarray(flat), jac=True,
        hess=lambda y: np.asarray(hessian(y)), method="trust-exact", options={"gtol": 1e-8},
    )  # fmt: skip
    assert found.success, found.message
    expected = np.linalg.inv(np.asarray(hessian(jnp.asarray(found.x))))
    inverse_mass = np.asarray(state.adapt_state.inverse_mass_matrix)
    assert inverse_mass.shape == expected.shape, "a dense matrix for a small model"
    np.testing.assert_allclose(inverse_mass, expected, rtol=1e-4, atol=1e-6 * np.abs(expected).max())


def test_where_newton_finds_no_mode_the_mass_starts_at_the_identity(quickstart_runs, monkeypatch):
    # one Newton step from a random start is not a mode (a hierarchical funnel, whose density grows
    # without bound as the groups' spread shrinks, has none: see test_laplace_refuses_a_density_without_a_mode)
    monkeypatch.setattr(inference, "laplace", lambda f, y0: laplace(f, y0, steps=1))
    sampler, args = runner(bs.ScalingModel("chinchilla"), quickstart_runs, warmup=100, laplace_mass=True)
    state = sampler._init(jax.random.key(3), args)
    inverse_mass = np.asarray(state.adapt_state.inverse_mass_matrix)
    np.testing.assert_array_equal(inverse_mass, np.eye(len(inverse_mass)))
    start = sampler._start(jax.random.split(jax.random.key(3))[0], args)
    np.testing.assert_array_equal(ravel_pytree(state.z)[0], ravel_pytree(start)[0])


def test_a_large_model_starts_at_the_identity(quickstart_runs, monkeypatch):
    monkeypatch.setattr(inference, "LAPLACE_MAX_DIM", 5)  # the Chinchilla law has 6 unconstrained dimensions
    sampler, args = runner(bs.ScalingModel("chinchilla"), quickstart_runs, warmup=100, laplace_mass=True)
    inverse_mass = np.asarray(sampler._init(jax.random.key(3), args).adapt_state.inverse_mass_matrix)
    np.testing.assert_array_equal(inverse_mass, np.eye(6))


def test_the_mass_cuts_warmup_steps():
    """A 40-run saturating curve, one chain of 500 warmup iterations: measured 2.4x fewer leapfrog steps."""

    def warmup_steps(laplace_mass: bool) -> int:
        sampler, args = runner(bs.ScalingModel(bs.laws.SaturatingPowerLaw("N"), target="loss"), saturating(),
                               laplace_mass=laplace_mass)  # fmt: skip
        state = sampler._init(jax.random.key(0), args)
        _, (_, info) = sampler.advance(500)(state, args)
        return int(info["n_steps"].sum())

    assert 1.5 * warmup_steps(True) < warmup_steps(False)


def test_the_same_posterior_with_either_initial_mass(chinchilla, chinchilla_fit):
    model = bs.ScalingModel(bs.laws.Chinchilla(), target="loss", inputs={"N": "N", "D": "D"})
    started = model.fit(chinchilla, seed=1, chains=4, warmup=1000, draws=1000, laplace_mass=True)
    assert_same_posterior(chinchilla_fit.summary(), started.summary(), ["E", "A", "alpha", "B", "beta", "sigma"])
