"""Choosing a law: PSIS-LOO, leave-future-out scores, stacking weights, model averaging."""

import math
import re
import warnings

import numpy as np
import pandas as pd
import pytest
from scipy.special import logsumexp

import bayescale as bs
from bayescale.studies.laws import LOOWarning, stacking_weights
from tests.conftest import simulate

TRUTH = bs.laws.SaturatingPowerLaw("C")
PARAMS = {"E": 1.8, "A": 3.0 * 1e19**0.15, "alpha": 0.15}  # E + 3 (C / 1e19)^-0.15
SHORT = {"warmup": 1000, "draws": 1000}


def candidates():
    return {
        "power": bs.ScalingModel(bs.laws.PowerLaw("C"), target="y"),
        "saturating": bs.ScalingModel(TRUTH, target="y"),
    }


@pytest.fixture(scope="module")
def simulated():
    runs = simulate(TRUTH, PARAMS, {"C": np.repeat(np.geomspace(1e17, 1e22, 12), 2)}, sigma=0.01, seed=1)
    return bs.compare_laws(candidates(), runs, seed=0, **SHORT)


def test_leave_future_out_picks_the_true_law(simulated):
    table = simulated.table()
    assert table.index[0] == "saturating"
    # the pure power law has no floor and bends the wrong way beyond the data: the loss in held-out
    # log density is many standard errors of the paired difference, not noise
    power = table.loc["power"]
    assert power["elpd_future_diff"] > 4 * power["se_future_diff"]
    assert table.loc["saturating", "weight_future"] > 0.99
    # with the extrapolation risk, beyond the data both laws' intervals widen: the wrong one pays in held-out
    # density (above) and error (below), the true one still covers its held-out runs
    assert table.loc["saturating", "coverage_0.9"] >= 5 / 6
    assert table.loc["saturating", "are_future"] < table.loc["power", "are_future"]
    assert table.attrs == {"scale": "C", "cutoff": simulated.cutoff, "n_held_out": 6}
    assert math.isclose(table["weight_future"].sum(), 1.0) and math.isclose(table["weight_loo"].sum(), 1.0)


def test_held_out_runs_are_exactly_those_above_the_cutoff(simulated):
    held = simulated.held_out
    assert (held["C"] > simulated.cutoff).all()
    assert len(held) == 6  # the top quarter of 24 runs: the 3 largest of 12 budgets, 2 runs each
    for fit in simulated.future_fits.values():
        assert fit.idata.observed_data.sizes["obs"] == 18
        assert fit.idata.constant_data["C"].values.max() <= simulated.cutoff


def test_future_scores_are_the_log_mean_density_of_held_out_runs(simulated):
    fit = simulated.future_fits["power"]
    ll = fit.log_likelihood(simulated.held_out)
    expected = (logsumexp(ll, axis=0) - np.log(ll.shape[0])).sum()
    assert math.isclose(simulated.table().loc["power", "elpd_future"], expected, rel_tol=1e-12)
    point = simulated.pointwise()
    assert set(point["model"]) == {"power", "saturating"} and len(point) == 12
    assert (point["lower"] <= point["median"]).all() and (point["median"] <= point["upper"]).all()


def test_log_likelihood_of_the_fitted_rows_matches_the_fit(small_fit, quickstart_runs):
    ll = small_fit.log_likelihood(quickstart_runs)
    stored = small_fit.idata.log_likelihood["loss"].values.reshape(ll.shape)
    np.testing.assert_allclose(ll, stored, rtol=1e-10, atol=1e-12)


def test_log_likelihood_needs_the_target(small_fit, quickstart_runs):
    with pytest.raises(bs.DataError, match="column 'loss' \\(target\\)"):
        small_fit.log_likelihood(quickstart_runs.drop(columns="loss"))


def test_model_average_mixes_draws_in_proportion(simulated):
    only = simulated.predict(C=[1e23], weights={"power": 0.0, "saturating": 1.0}, seed=3)
    alone = simulated.fits["saturating"].predict(C=[1e23], seed=3)
    # every kept draw is one of the saturating fit's draws, and all of them are kept (a permutation)
    np.testing.assert_allclose(np.sort(only.draws("mean")[:, 0]), np.sort(alone.draws("mean")[:, 0]))
    mixed = simulated.predict(C=[1e23], weights={"power": 1.0, "saturating": 3.0}, seed=3)
    power = set(np.round(simulated.fits["power"].predict(C=[1e23], seed=3).draws("mean")[:, 0], 12))
    from_power = np.isin(np.round(mixed.draws("mean")[:, 0], 12), list(power))
    assert from_power.sum() == 1000  # a quarter of 4 x 1000 draws
    default = simulated.predict(pd.DataFrame({"C": [1e23, 1e24]}))
    assert default.interval(0.9).shape == (2, 4)


def test_stacking_weights_match_a_grid_search():
    rng = np.random.default_rng(0)
    lpd = rng.normal(size=(2, 30)) + np.array([[0.3], [0.0]])
    grid = np.linspace(0, 1, 10001)
    score = [logsumexp(lpd + np.log(np.array([[w], [1 - w]]) + 1e-300), axis=0).sum() for w in grid]
    w = stacking_weights(lpd)
    assert abs(w[0] - grid[int(np.argmax(score))]) < 2e-3
    assert math.isclose(w.sum(), 1.0)
    # two models, each best on half the points: a mixture beats either alone
    split = np.log(np.array([[0.9] * 5 + [0.1] * 5, [0.1] * 5 + [0.9] * 5]))
    np.testing.assert_allclose(stacking_weights(split), [0.5, 0.5], atol=1e-6)


def test_loo_names_the_run_that_leaving_out_moves_too_far():
    """One run 15% off a 1%-noise curve: under a Normal likelihood leaving it out is beyond PSIS (k ~1.4-1.7)."""
    runs = simulate(TRUTH, PARAMS, {"C": np.repeat(np.geomspace(1e17, 1e22, 12), 2)}, sigma=0.01, seed=1)
    runs.loc[6, "y"] *= 1.15
    models = {
        "student_t": bs.ScalingModel(TRUTH, target="y"),
        "normal": bs.ScalingModel(TRUTH, target="y", likelihood=bs.likelihoods.Normal()),
    }
    with pytest.warns(LOOWarning, match=r"model 'normal' is unreliable: Pareto k > 0.70 at row 6 \(max 1\."):
        table = bs.compare_laws(models, runs, seed=0, **SHORT).table()
    # seeds 0-3: the Normal's k at row 6 1.39-1.69, the Student-t's largest 0.38-0.47
    assert table.loc["student_t", "max_pareto_k"] < 0.7 < 1.0 < table.loc["normal", "max_pareto_k"]


# The Student-t fit to the 180 smaller runs has a rare divergence (about one seed in six at
# target_accept_prob 0.9; seed 0 at 0.95 after a change of rounding): not what this tests
@pytest.mark.filterwarnings("ignore:.*divergent transitions:bayescale.SamplerWarning")
def test_real_data_student_t_beats_normal(chinchilla):
    # Chinchilla's runs have a few outliers that Besiroglu et al. keep: both LOO and the held-out largest
    # quarter of budgets prefer the robust Student-t, and the outliers pull a Normal fit further (higher
    # Pareto k). Whether row 5's k crosses 0.7 is Monte Carlo noise: 0.56-0.87 over seeds 0-2 on two CPUs'
    # rounding (AVX-512, and XLA limited to AVX), so the LOO warning may or may not come; when it does it
    # names row 5.
    models = {
        "student_t": bs.ScalingModel("chinchilla"),
        "normal": bs.ScalingModel("chinchilla", likelihood=bs.likelihoods.Normal()),
    }
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", LOOWarning)
        result = bs.compare_laws(models, chinchilla, scale="C", seed=0, target_accept_prob=0.95)
    for warning in (w for w in caught if issubclass(w.category, LOOWarning)):
        assert re.search(r"model 'normal' is unreliable: Pareto k > 0.70 at rows? 5\b", str(warning.message)), warning
    table = result.table()
    assert len(result.held_out) == 60 and result.held_out["C"].min() > result.cutoff
    assert table.index[0] == "student_t"
    normal = table.loc["normal"]
    assert normal["elpd_future_diff"] > 2 * normal["se_future_diff"]
    assert normal["elpd_loo_diff"] > 2 * normal["se_loo_diff"]
    # the same 6 fits: the Normal's largest k 0.65-0.87, the Student-t's 0.25-0.39
    assert table.loc["student_t", "max_pareto_k"] < 0.5 < normal["max_pareto_k"]


@pytest.mark.parametrize(
    ("change", "error", "match"),
    [
        (lambda m, d: ({"only": m["power"]}, d, {}), ValueError, "at least two models"),
        (
            lambda m, d: ({**m, "other": bs.ScalingModel(bs.laws.PowerLaw("C"), target="C")}, d, {}),
            ValueError,
            "same target",
        ),
        (
            lambda m, d: (
                {**m, "counts": bs.ScalingModel(TRUTH, target="y", likelihood=bs.likelihoods.Binomial(trials="n"))},
                d,
                {},
            ),
            ValueError,
            "cannot be compared",
        ),
        (lambda m, d: (m, d, {"cutoff": 1e30}), ValueError, "no run is above the cutoff"),
        (lambda m, d: (m, d, {"cutoff": 2e17}), bs.DataError, "runs with C <= 2e\\+17"),
        (lambda m, d: (m, d, {"holdout": 1.5}), ValueError, "holdout must be a fraction"),
        (lambda m, d: (m, d.drop(columns="C"), {}), bs.DataError, "column 'C'"),
        (lambda m, d: ([m["power"], m["power"]], d, {}), ValueError, "share law names"),
        (lambda m, d: (m, d, {"scale": "missing"}), bs.DataError, "column 'missing'"),
    ],
)
def test_bad_requests_fail_before_fitting(change, error, match):
    runs = simulate(TRUTH, PARAMS, {"C": np.geomspace(1e17, 1e22, 12)}, sigma=0.01, seed=1)
    models, data, options = change(candidates(), runs)
    with pytest.raises(error, match=match):
        bs.compare_laws(models, data, **options)


def test_scale_must_be_named_when_the_inputs_differ(quickstart_runs):
    models = {
        "chinchilla": bs.ScalingModel("chinchilla"),
        "compute_only": bs.ScalingModel(bs.laws.SaturatingPowerLaw("C")),
    }
    with pytest.raises(ValueError, match="scale='C'"):
        bs.compare_laws(models, quickstart_runs)


def test_weights_are_checked(simulated):
    with pytest.raises(ValueError, match="kind must be one of"):
        simulated.weights("bma")
    with pytest.raises(ValueError, match="name exactly the models"):
        simulated.predict(C=1e23, weights={"power": 1.0})
    with pytest.raises(ValueError, match="not all zero"):
        simulated.predict(C=1e23, weights={"power": 0.0, "saturating": 0.0})
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert set(simulated.weights("loo")) == {"power", "saturating"}
