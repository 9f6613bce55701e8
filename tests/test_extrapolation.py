"""Extrapolation risk (bs.discrepancy.Drift) and the real-data backtest harness (bs.validation)."""

from __future__ import annotations

import jax
import numpy as np
import pandas as pd
import pytest

import bayescale as bs
from bayescale.studies.validation import crps, interval_score
from tests.conftest import simulate

INSIDE = {"N": [1e8, 1e9], "D": [2e9, 2e10]}  # within the bundled runs' range of N and D
BEYOND = {"N": [7e10], "D": [1.4e12]}  # 1.4 decades beyond it


def test_the_drift_grows_with_distance_in_units_of_the_noise_and_is_zero_inside():
    drift = bs.discrepancy.Drift(rate=1.5, rate_sd=0.0)
    x = np.log10([[1e9], [3e9], [1e11]])
    sigma = np.full(40_000, 0.02)
    draws = drift.log_deviation(jax.random.key(0), x, np.array([0.0, 0.5, 2.0]), np.zeros(3, int), sigma)
    assert np.all(draws[:, 0] == 0.0)
    expected = 0.02 * 1.5 * np.array([0.5, 2.0])
    np.testing.assert_allclose(draws[:, 1:].std(axis=0), expected, rtol=5 / np.sqrt(2 * 40_000))
    # two groups at the same place deviate independently
    two = drift.log_deviation(jax.random.key(1), x[[1, 1]], np.array([1.0, 1.0]), np.array([0, 1]), sigma[:20_000])
    assert abs(np.corrcoef(two[:, 0], two[:, 1])[0, 1]) < 5 / np.sqrt(20_000)


def test_the_deviation_is_smooth_along_the_inputs_and_differs_between_directions():
    drift = bs.discrepancy.Drift(rate=1.0, rate_sd=0.0, length=1.0)
    x = np.log10([[1e10, 1e11], [1.1e10, 1.1e11], [1e12, 1e11]])
    draws = drift.log_deviation(jax.random.key(0), x, np.ones(3), np.zeros(3, int), np.ones(20_000))
    corr = np.corrcoef(draws.T)
    assert corr[0, 1] > 0.99  # 0.06 decades apart: nearly the same deviation
    assert abs(corr[0, 2] - np.exp(-(2.0**2) / 2)) < 0.05  # 2 decades apart: exp(-d^2 / 2 length^2)


def test_a_spread_rate_gives_heavier_tails():
    x, d, g = np.log10([[1e10]]), np.array([1.0]), np.zeros(1, int)
    narrow = bs.discrepancy.Drift(rate_sd=0.0).log_deviation(jax.random.key(0), x, d, g, np.ones(100_000))
    wide = bs.discrepancy.Drift(rate_sd=1.0).log_deviation(jax.random.key(0), x, d, g, np.ones(100_000))
    kurtosis = [float(np.mean(v**4) / np.mean(v**2) ** 2) for v in (narrow, wide)]
    assert abs(kurtosis[0] - 3.0) < 0.1 and kurtosis[1] > 6.0


def test_distance_to_the_hull_of_the_fitted_runs():
    fitted = np.log10([[1e8, 1e9], [1e9, 1e10], [1e8, 1e10], [1e9, 1e9]])
    far = bs.discrepancy.hull_distance(fitted, np.log10([[3e8, 3e9], [1e10, 1e10], [1e9, 1e11]]))
    np.testing.assert_allclose(far, [0.0, 1.0, 1.0])
    # runs along a line (a ladder at one tokens-per-parameter ratio): off the line is outside
    line = np.log10([[1e8, 2e9], [1e9, 2e10], [1e10, 2e11]])
    assert bs.discrepancy.hull_distance(line, np.log10([[1e9, 2e11]]))[0] > 0.6


def test_bad_drifts_are_refused():
    with pytest.raises(ValueError, match="rate must be a finite number >= 0"):
        bs.discrepancy.Drift(rate=-0.1)
    with pytest.raises(ValueError, match="power and length must be > 0"):
        bs.discrepancy.Drift(power=0.0)
    with pytest.raises(TypeError, match="discrepancy must be 'auto', None or a bs.discrepancy.Drift"):
        bs.ScalingModel("chinchilla", discrepancy=0.05)
    binomial = bs.likelihoods.Binomial(trials="n")
    assert bs.ScalingModel(bs.laws.RateSigmoidLaw("C"), target="k", likelihood=binomial).discrepancy is None
    with pytest.raises(ValueError, match="Binomial model's target is a count"):
        bs.ScalingModel(
            bs.laws.RateSigmoidLaw("C"), target="k", likelihood=binomial, discrepancy=bs.discrepancy.Drift()
        )


def test_inside_the_data_the_bands_are_the_law_s_own(small_fit):
    assert np.all(small_fit.extrapolation(**INSIDE) == 0.0)
    with_risk, without = small_fit.predict(**INSIDE), small_fit.predict(**INSIDE, risk=False)
    for kind in ("observation", "mean"):
        np.testing.assert_array_equal(with_risk.draws(kind), without.draws(kind))
    np.testing.assert_array_equal(with_risk.draws("curve"), with_risk.draws("mean"))


def test_beyond_the_data_the_bands_widen_and_the_law_stays(small_fit):
    (distance,) = small_fit.extrapolation(**BEYOND)
    assert 1.3 < distance < 1.6  # N: 7e10 against the largest fitted 3e9: 1.37 decades beyond the hull
    with_risk, without = small_fit.predict(**BEYOND), small_fit.predict(**BEYOND, risk=False)
    np.testing.assert_array_equal(with_risk.draws("mean"), without.draws("mean"))
    width = {name: np.diff(p.interval(0.9)[["lower", "upper"]].to_numpy())[0, 0] for name, p in
             (("risk", with_risk), ("law", without))}  # fmt: skip
    assert width["risk"] > 1.5 * width["law"]
    assert small_fit.predict(**BEYOND).interval(0.9).equals(with_risk.interval(0.9)), "same seed, same draws"


def test_no_discrepancy_is_the_law_alone(quickstart_runs, small_fit):
    fit = bs.ScalingModel("chinchilla", discrepancy=None).fit(quickstart_runs, seed=1)
    plain = fit.predict(**BEYOND)
    np.testing.assert_array_equal(plain.draws("curve"), plain.draws("mean"))
    np.testing.assert_array_equal(plain.draws("observation"), small_fit.predict(**BEYOND, risk=False).draws())


def test_the_drift_is_saved_with_the_fit(quickstart_runs, tmp_path):
    drift = bs.discrepancy.Drift(rate=2.0, rate_sd=0.2, power=1.5, length=0.7)
    fit = bs.ScalingModel("chinchilla", discrepancy=drift).fit(quickstart_runs, seed=1, warmup=200, draws=200)
    again = bs.load_fit(fit.save(tmp_path / "fit.nc") or tmp_path / "fit.nc")
    assert again.model.discrepancy == drift
    np.testing.assert_array_equal(again.predict(**BEYOND).draws(), fit.predict(**BEYOND).draws())


@pytest.mark.filterwarnings("ignore::bayescale.SamplerWarning")  # short chains: about distances, not mixing
@pytest.mark.parametrize(
    ("independent", "small_at_1e9"),
    [(["A"], 0.0), (["A", "alpha"], 1.0)],
    ids=["shape shared: every group's runs", "shape its own: the group's runs"],
)
def test_a_group_is_measured_from_the_runs_that_test_its_shape(independent, small_at_1e9):
    law = bs.laws.SaturatingPowerLaw("N")
    small = simulate(law, {"E": 2.0, "A": 3.0, "alpha": 0.3}, {"N": np.geomspace(1e7, 1e8, 8)}, 0.01, 0)
    large = simulate(law, {"E": 2.0, "A": 3.0, "alpha": 0.3}, {"N": np.geomspace(1e7, 1e9, 8)}, 0.01, 1)
    df = pd.concat([small.assign(g="small"), large.assign(g="large")], ignore_index=True)
    shared = [name for name in law.parameter_names if name not in independent]
    model = bs.ScalingModel(law, target="y", group="g", shared=shared, independent=independent)
    assert model.shares_shape == (small_at_1e9 == 0.0)
    fit = model.fit(df, seed=0, warmup=300, draws=300, extend=0)
    rows = pd.DataFrame({"N": [1e9, 1e9, 1e10], "g": ["small", "large", "new"]})
    np.testing.assert_allclose(fit.extrapolation(rows), [small_at_1e9, 0.0, 1.0])
    small_band = fit.predict(rows.iloc[:1]).draws("curve") - fit.predict(rows.iloc[:1], risk=False).draws("curve")
    assert (np.abs(small_band).max() == 0.0) == (small_at_1e9 == 0.0)  # the risk is drawn at that distance


def test_scores_of_the_harness():
    rng = np.random.default_rng(0)
    draws = rng.standard_normal((4000, 1))
    assert abs(float(crps(draws, np.array([0.0]))[0]) - 0.2337) < 0.01  # N(0, 1) at its mean: (sqrt 2 - 1)/sqrt pi
    far = interval_score(draws, np.array([5.0]), 0.9)[0]
    near = interval_score(draws, np.array([0.0]), 0.9)[0]
    assert near == pytest.approx(2 * 1.645, abs=0.1) and far > near + 20 * (5.0 - 1.645) * 0.99


@pytest.fixture(scope="module")
def bent():
    """Runs of a curve that bends away from a saturating law at scale: the law fits the small ones well."""
    c = np.geomspace(1e17, 1e21, 28)
    law = 1.8 + 30 * (c / 1e17) ** -0.25
    loss = (
        law * (1 + 0.03 * np.log10(c / 1e17) ** 2 / 16) * np.exp(0.004 * np.random.default_rng(3).standard_normal(28))
    )
    return pd.DataFrame({"C": c, "loss": loss})


def test_backtest_scores_every_predictor_on_the_same_held_out_runs(bent):
    model = bs.ScalingModel(bs.laws.SaturatingPowerLaw("C"))
    study = bs.validation.backtest(
        model, bent, decades=(1.0, 3.7), seed=0, chains=2, warmup=300, draws=300, bootstrap_refits=30,
        progress_bar=False,
    )  # fmt: skip
    assert list(study.skipped) == [3.7]  # 2 runs below that cut: too few to fit
    points = study.pointwise()
    assert set(points["predictor"]) == {"model", "law only", "bootstrap"}
    assert (points.groupby("predictor")["row"].apply(tuple).nunique()) == 1, "the same held-out runs"
    assert np.all(points["distance"] > 0) and 1.0 <= points["distance"].max() < 1.2  # from the last fitted run
    table = study.table()
    assert list(table.index.names) == ["decades", "predictor"]
    # the risk widens the model's intervals beyond the data: it covers at least what the law alone covers
    cover = table["coverage 0.9"].unstack()
    assert (cover["model"] >= cover["law only"]).all()
    assert {"ARE", "interval score 0.9", "CRPS", "points"} <= set(table.columns)
    assert len(study.table(by="distance")) > 0
    ax = study.plot()
    assert ax.get_xlabel() == "decades beyond the fitted runs"


def test_backtest_needs_a_scale_for_laws_of_several_inputs(quickstart_runs):
    with pytest.raises(TypeError, match="say which column orders the runs by scale"):
        bs.validation.backtest(bs.ScalingModel("chinchilla"), quickstart_runs)
    with pytest.raises(bs.DataError, match="no cut"):
        bs.validation.backtest(bs.ScalingModel("chinchilla"), quickstart_runs, scale="C", decades=(5.0,))
