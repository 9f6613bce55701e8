"""New observations drawn on the host (``draw_log_target``) follow each likelihood's own distribution."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

import bayescale as bs
from bayescale.likelihoods import host_rng

N = 20_000
LOG_MEAN = np.log(np.array([0.02, 0.3, 0.9]))  # rates near 0, in the middle and near 1 (losses for the others)


@pytest.mark.parametrize(
    ("likelihood", "params", "noise_log_sd"),
    [
        (bs.likelihoods.StudentT(), {"sigma": 0.05}, None),
        (bs.likelihoods.StudentT(nu=None), {"sigma": 0.05, "nu": 2.5}, None),
        (bs.likelihoods.Normal(), {"sigma": 0.05}, np.array([0.0, 0.1, 0.02])),
        (bs.likelihoods.LogitNormal(), {"sigma": 0.4}, None),
        (bs.likelihoods.Binomial("n"), {}, None),
    ],
    ids=["student_t", "student_t_nu", "normal_known_noise", "logit_normal", "binomial"],
)
def test_host_draws_follow_the_likelihood_s_distribution(likelihood, params, noise_log_sd):
    trials = np.array([50.0, 200.0, 1000.0]) if likelihood.name == "binomial" else None
    log_mean = np.broadcast_to(LOG_MEAN, (N, 3))
    full = {k: np.full((N, 1), v) for k, v in params.items()}
    ours = likelihood.draw_log_target(np.random.default_rng(0), log_mean, full, noise_log_sd, trials)
    distribution = likelihood.distribution(
        jnp.asarray(log_mean), {k: jnp.asarray(v) for k, v in full.items()}, noise_log_sd, trials=trials
    )
    theirs = np.asarray(likelihood.log_target(distribution.sample(jax.random.key(1)), trials))
    assert ours.shape == (N, 3)
    for row in range(3):
        a, b = ours[:, row], theirs[:, row]
        if likelihood.name == "binomial":  # discrete counts: mean within 4 Monte Carlo standard errors, same sd
            a, b = np.exp(a) * trials[row], np.exp(b) * trials[row]
            assert abs(a.mean() - b.mean()) < 4 * np.sqrt(2 / N) * b.std(), row
            np.testing.assert_allclose(a.std(), b.std(), rtol=0.05)
        else:  # two samples of one continuous distribution
            assert stats.ks_2samp(a, b).pvalue > 1e-3, row


def test_a_rate_of_one_draws_one_and_above_one_nothing():
    """A law's limit of 1, reached by rounding far beyond the data, draws its noise's limit; above 1 is nan."""
    log_rate = np.array([[np.log(0.5), 0.0, 0.1]])
    rng = np.random.default_rng(0)
    drawn = bs.likelihoods.Binomial("n").draw_log_target(rng, log_rate, {}, None, [10, 10, 10])
    assert np.isfinite(drawn[0, 0]) and drawn[0, 1] == 0.0 and np.isnan(drawn[0, 2])
    drawn = bs.likelihoods.LogitNormal().draw_log_target(rng, np.repeat(log_rate, 100, 0), {"sigma": 0.5})
    assert (drawn[:, 0] < 0).all() and (np.exp(drawn[:, 1]) == 1.0).all() and np.isnan(drawn[:, 2]).all()


def test_the_host_generator_follows_the_jax_key():
    a, b = (host_rng(jax.random.key(3)).standard_normal(4) for _ in range(2))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, host_rng(jax.random.key(4)).standard_normal(4))
    np.testing.assert_array_equal(host_rng(jax.random.PRNGKey(3)).standard_normal(4), a)  # a raw key: the same
