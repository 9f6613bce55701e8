"""The warmup's mass-matrix estimate: partial pooling over chains, sound from the first window."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from bayescale import warmup


def _window(draws: np.ndarray) -> warmup.WarmupState:
    """The warmup states of chains that collected ``draws`` (chain, draw, dim)."""

    def one(chain):
        state = warmup.init(jnp.zeros(chain.shape[-1]), 0.1)
        for z in chain:
            state, _ = warmup.update(state, z, 0.9, 0.9, True)
        return state

    states = [one(jnp.asarray(c)) for c in draws]
    return jax.tree_util.tree_map(lambda *a: jnp.stack(a), *states)


def test_many_draws_give_each_chain_the_covariance():
    rng = np.random.default_rng(0)
    cov = np.array([[4.0, 1.9, 0.0], [1.9, 1.0, 0.0], [0.0, 0.0, 0.01]])  # correlation 0.95
    draws = rng.multivariate_normal(np.zeros(3), cov, size=(2, 2000))
    estimate = np.asarray(warmup.inverse_mass(_window(draws), dense=True, regularize=False))
    # sd of a sample covariance of 2,000 draws: sqrt((s_ij^2 + s_ii s_jj) / n) <= 0.13 for these entries
    se = np.sqrt((cov**2 + np.outer(np.diag(cov), np.diag(cov))) / 2000)
    assert np.all(np.abs(estimate - cov) < 5 * se)
    diagonal = np.asarray(warmup.inverse_mass(_window(draws), dense=False, regularize=False))
    np.testing.assert_allclose(diagonal, np.diagonal(estimate, axis1=1, axis2=2))


def test_fewer_draws_than_dimensions_still_give_a_usable_matrix():
    # a chain's 10 draws in 30 dimensions have a singular covariance; the pooled one (4 chains) is
    # shrunk to its diagonal, so every chain's matrix is positive definite with the right scales
    rng = np.random.default_rng(1)
    scales = np.geomspace(0.01, 10.0, 30)
    draws = scales * rng.standard_normal((4, 10, 30))
    estimate = np.asarray(warmup.inverse_mass(_window(draws), dense=True, regularize=False))
    for chain in estimate:
        assert np.linalg.eigvalsh(chain).min() > 0
        ratio = np.sqrt(np.diag(chain)) / scales
        assert ratio.min() > 0.4 and ratio.max() < 2.5  # chi-square of ~40 draws: within a factor 2.5
        sqrt, sqrt_inv = warmup.mass_factors(jnp.asarray(chain))
        # NumPyro's convention: inverse mass = sqrt_inv^T sqrt_inv, and sqrt is sqrt_inv's inverse
        np.testing.assert_allclose(np.asarray(sqrt_inv.T @ sqrt_inv), chain, rtol=1e-9, atol=1e-15)
        np.testing.assert_allclose(np.asarray(sqrt @ sqrt_inv), np.identity(30), atol=1e-9)


def test_schedule_covers_the_warmup():
    for n in (0, 5, 19, 20, 100, 150, 151, 500, 1000, 3000):
        segments = warmup.schedule(n)
        assert sum(length for length, _ in segments) == n
        windows = [length for length, collect in segments if collect]
        assert (n < 20) == (not windows)
