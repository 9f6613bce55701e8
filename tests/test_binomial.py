"""Binomial likelihood: accuracy as k right of n items, with the law as the rate."""

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
import pytest
from scipy.stats import binom

import bayescale as bs
from bayescale.likelihoods import RateBinomial

LAW = bs.laws.SigmoidLaw("C")
TRUTH = {"R0": 0.05, "gain": 0.6, "B": 0.8, "C_mid": 1e21}
C = np.geomspace(1e18, 1e24, 14)


def benchmark_runs(seed: int, n_items: int = 30) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rate = np.asarray(LAW.mean(TRUTH, C=C))
    return pd.DataFrame({"C": C, "correct": rng.binomial(n_items, rate), "n_items": n_items})


def binomial_model(**options):
    return bs.ScalingModel(LAW, target="correct", likelihood=bs.likelihoods.Binomial(trials="n_items"), **options)


@pytest.fixture(scope="module")
def fitted():
    runs = benchmark_runs(seed=1)
    return runs, binomial_model().fit(runs, seed=0, target_accept_prob=0.95)


def test_log_prob_is_the_binomial_pmf_including_0_and_n():
    rate = np.array([0.02, 0.3, 0.97])
    n = np.array([20.0, 20.0, 20.0])
    for k in ([0.0, 0.0, 0.0], [20.0, 20.0, 20.0], [1.0, 7.0, 19.0]):
        ours = RateBinomial(jnp.log(rate), n).log_prob(jnp.asarray(k))
        np.testing.assert_allclose(ours, binom.logpmf(k, n, rate), rtol=1e-10)
    # a rate above 1 makes every count impossible, one of exactly 1 (a law's limit, rounded) all n right;
    # a tiny one keeps its precision in logs
    at_and_above = RateBinomial(jnp.array([0.0, 0.0, 0.1]), 5.0).log_prob(jnp.array([5.0, 4.0, 5.0]))
    assert at_and_above.tolist() == [0.0, -np.inf, -np.inf]
    np.testing.assert_allclose(RateBinomial(jnp.array(-800.0), 3.0).log_prob(1.0), np.log(3.0) - 800.0)
    # a rate of exactly 0 (log -inf: a prefactor that overflowed in the user's units) is valid: 0 right for sure
    zero = RateBinomial(jnp.array([-jnp.inf, -jnp.inf]), jnp.array([5.0, 5.0]), validate_args=True)
    np.testing.assert_array_equal(zero.log_prob(jnp.array([0.0, 2.0])), [0.0, -np.inf])
    np.testing.assert_array_equal(zero.sample(jax.random.key(0)), [0.0, 0.0])


def test_recovers_the_sigmoid_from_counts(fitted):
    runs, fit = fitted
    assert fit.healthy
    table = fit.summary(0.95)
    for name, value in TRUTH.items():
        assert table.loc[name, "lower"] < value < table.loc[name, "upper"], name
    ceiling = fit.draws("R0") + fit.draws("gain")
    assert ceiling.max() < 1.0  # the rate stays a rate beyond the data too
    # a new benchmark run of 100 items far beyond the data: counts / 100, inside [0, 1]
    observed = fit.predict(C=[1e26], n_items=100).draws("observation")
    assert np.all((observed >= 0) & (observed <= 1)) and np.allclose(observed * 100, np.round(observed * 100))


@pytest.mark.parametrize("seed", [0, 1])
def test_zero_and_all_correct_on_a_small_benchmark(seed):
    # 12 items, a curve from 5% to 95%: the smallest runs get 0 of 12 and the largest 12 of 12. The rate
    # sigmoid keeps its ceiling below 1 by construction, so NUTS meets no wall (SigmoidLaw would diverge)
    truth = {"R0": 0.05, "gain": 0.9, "B": 0.8, "C_mid": 1e21}
    rng = np.random.default_rng(seed)
    runs = pd.DataFrame({"C": C, "correct": rng.binomial(12, np.asarray(LAW.mean(truth, C=C))), "n_items": 12})
    assert runs["correct"].min() == 0 and runs["correct"].max() == 12
    model = bs.ScalingModel(
        bs.laws.RateSigmoidLaw("C"), target="correct", likelihood=bs.likelihoods.Binomial(trials="n_items")
    )
    fit = model.fit(runs, seed=0)
    assert fit.healthy
    assert np.all(np.isfinite(fit.idata.log_likelihood["correct"].values))
    table = fit.summary(0.95)
    lift = np.log(0.9 / 0.05)  # (1 - R0) sigmoid(lift) = gain
    for name, value in {"R0": 0.05, "lift": lift, "B": 0.8, "C_mid": 1e21}.items():
        assert table.loc[name, "lower"] < value < table.loc[name, "upper"], name


def test_log_likelihood_at_new_rows_matches_the_fit(fitted):
    runs, fit = fitted
    ll = fit.log_likelihood(runs)
    np.testing.assert_allclose(ll, fit.idata.log_likelihood["correct"].values.reshape(ll.shape), rtol=1e-10)


def test_a_new_observation_needs_the_number_of_items(fitted):
    _, fit = fitted
    prediction = fit.predict(C=[1e24])
    with pytest.raises(ValueError, match="n_items=..."):
        prediction.interval(0.9)
    rate = prediction.interval(0.9, kind="mean")
    assert 0 < rate.loc[0, "lower"] < rate.loc[0, "upper"] < 1


def test_saved_binomial_fit_round_trips(fitted, tmp_path):
    _, fit = fitted
    path = tmp_path / "binomial.nc"
    fit.save(path)
    again = bs.load_fit(path)
    assert again.model.likelihood == bs.likelihoods.Binomial(trials="n_items")
    np.testing.assert_array_equal(again.predict(C=[1e23]).draws("mean"), fit.predict(C=[1e23]).draws("mean"))


@pytest.mark.parametrize(
    ("column", "value", "match"),
    [
        ("correct", 3.5, "column 'correct' has non-integer values at row 2"),
        ("correct", 31, "above 'n_items' \\(number of items\\) at row 2"),
        ("correct", -1, "below 0 .* at row 2"),
        ("n_items", 29.5, "column 'n_items' \\(number of items\\) has non-integer values at row 2"),
        ("n_items", 0, "column 'n_items' .* values <= 0 at row 2"),
    ],
)
def test_bad_counts_are_named(column, value, match):
    runs = benchmark_runs(seed=1).astype({column: float})
    runs.loc[2, column] = value
    with pytest.raises(bs.DataError, match=match):
        binomial_model().fit(runs, seed=0)


def test_binomial_has_no_residual_scale_to_add_noise_to():
    with pytest.raises(ValueError, match="does not have"):
        binomial_model(noise="sd")
    with pytest.raises(TypeError, match="column name"):
        bs.likelihoods.Binomial(trials=30)


def test_all_zero_counts_need_a_reference_rate():
    runs = benchmark_runs(seed=1).assign(correct=0)
    with pytest.raises(bs.DataError, match="reference=\\{'correct'"):
        binomial_model().fit(runs, seed=0)
