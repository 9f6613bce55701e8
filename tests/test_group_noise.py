"""A noise scale per group (ScalingModel(..., group=..., pooled=[..., "sigma"])): spec, recovery, predictions."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

import bayescale as bs
from tests.conftest import simulate

LAW = bs.laws.SaturatingPowerLaw("N")
TRUTH = {"E": 1.8, "A": 300.0, "alpha": 0.3}
NOISE = {"f0": 0.005, "f1": 0.01, "f2": 0.04, "f3": 0.04}  # sd of log(loss) per family


@pytest.fixture(scope="module")
def runs() -> pd.DataFrame:
    n = np.geomspace(1e8, 1e10, 15)
    frames = [
        simulate(LAW, TRUTH, {"N": n}, sigma=s, seed=i).rename(columns={"y": "loss"}).assign(family=f)
        for i, (f, s) in enumerate(NOISE.items())
    ]
    return pd.concat(frames, ignore_index=True)


@pytest.fixture(scope="module")
def fits(runs):
    """The same families with a noise scale per family and with one for all (4 x (500 + 500) draws each)."""
    out = {}
    for how in ("pooled", "shared"):
        noise = ["sigma"] if how == "shared" else []
        model = bs.ScalingModel(
            LAW,
            likelihood=bs.likelihoods.Normal(),  # the simulation's: its sigma is the noise's sd
            group="family",
            shared=["E", "A", "alpha", *noise],
            pooled=["sigma"][: 1 - len(noise)],
        )
        with warnings.catch_warnings():
            # the feature healthy with the defaults; the one-scale comparison is short of tail ESS (~300 of 400)
            warnings.simplefilter("error" if how == "pooled" else "ignore", bs.SamplerWarning)
            out[how] = model.fit(runs, seed=0, warmup=500, draws=500)
    return out


def test_the_noise_scale_takes_a_treatment_like_a_law_parameter():
    model = bs.ScalingModel(LAW, group="family", pooled=["sigma"])
    assert model.treatments["sigma"] == "pooled"
    assert model.population_names[-2:] == ("sigma_pop", "sigma_spread")
    assert bs.ScalingModel.from_config(model.config()).treatments == model.treatments
    assert "pooled=['E', 'A', 'alpha', 'sigma']" in repr(model)
    assert bs.ScalingModel(LAW, group="family").treatments["sigma"] == "shared"  # the default
    assert "sigma" not in bs.ScalingModel(LAW).treatments
    with pytest.raises(ValueError, match="pooled need a group column"):
        bs.ScalingModel(LAW, pooled=["sigma"])
    counts = bs.likelihoods.Binomial(trials="n")
    with pytest.raises(KeyError, match="has no parameter 'sigma'; its parameters are"):
        bs.ScalingModel(bs.laws.SigmoidLaw("C"), target="k", likelihood=counts, group="g", pooled=["sigma"])


def test_each_family_s_noise_is_recovered(fits):
    fit = fits["pooled"]
    sigma = fit.draws("sigma")
    assert sigma.shape == (2000, 4)
    lower, upper = np.quantile(sigma, [0.01, 0.99], axis=0)
    truth = np.array([NOISE[g] for g in fit.groups])
    assert np.all((lower < truth) & (truth < upper)), (lower, upper)
    assert upper[0] < lower[2] and upper[0] < lower[3]  # the quiet family is told apart from the noisy ones
    shared = fits["shared"].draws("sigma")
    assert shared.ndim == 1 and np.quantile(shared, 0.01) > NOISE["f0"] * 2  # one scale is set by the noisy ones


def test_intervals_follow_each_family_s_noise(fits):
    inside = pd.DataFrame({"N": [1e9] * 3, "family": ["f0", "f2", "new"]})
    pooled = fits["pooled"].predict(inside).interval(0.9)
    shared = fits["shared"].predict(inside).interval(0.9)
    width = lambda t: np.log(t["upper"] / t["lower"]).to_numpy()  # noqa: E731
    truth = 2 * 1.645 * np.array([NOISE["f0"], NOISE["f2"]])  # the 90% width of log(loss) of a new run
    assert 0.7 < width(pooled)[0] / truth[0] < 1.5 and width(shared)[0] > 3 * truth[0]  # the quiet family
    assert 0.7 < width(pooled)[1] / truth[1] < 1.5 and width(pooled)[1] > width(shared)[1]  # the noisy one
    assert width(pooled)[2] > width(pooled)[0]  # a new family's noise is drawn from the population


def test_densities_and_risk_use_the_row_s_own_noise(fits, runs):
    fit = fits["pooled"]
    rows = pd.DataFrame({"N": [1e9, 1e9], "loss": [1.8 + 300 * 1e9**-0.3] * 2, "family": ["f0", "f2"]})
    density = fit.log_likelihood(rows).mean(axis=0)
    assert density[0] > density[1] + 1.0  # the same point is more likely under the quiet family's noise
    far = pd.DataFrame({"N": [1e12, 1e12, 1e12], "family": ["f0", "f2", "new"]})
    curve = fit.predict(far).interval(0.9, kind="curve")
    mean = fit.predict(far).interval(0.9, kind="mean")
    extra = np.log(curve["upper"] / curve["lower"]) - np.log(mean["upper"] / mean["lower"])
    assert extra[0] < extra[1]  # the risk beyond the data grows in units of each family's own noise
    sigma = fit.noise_scale(["f0", "f2", "new"])
    assert sigma.shape == (2000, 3) and np.all(sigma > 0)
    np.testing.assert_array_equal(fit.noise_scale(["f0", "new"], seed=3), fit.noise_scale(["f0", "new"], seed=3))


def test_independent_noise_has_no_population_for_a_new_family(runs):
    model = bs.ScalingModel(LAW, group="family", shared=["E", "A", "alpha"], independent=["sigma"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", bs.SamplerWarning)  # short chains; only the shapes are checked
        fit = model.fit(runs, seed=0, chains=2, warmup=200, draws=200, extend=0)  # exactly the draws asked
    assert fit.draws("sigma").shape == (400, 4)
    with pytest.raises(ValueError, match="noise scale 'sigma' is independent per group"):
        fit.predict(pd.DataFrame({"N": [1e9], "family": ["new"]}))


def test_unusual_places_each_family_in_the_population(fits):
    table = fits["pooled"].unusual()
    assert list(table.columns) == ["family", "parameter", "median", "population", "z", "percentile"]
    assert set(table["parameter"]) == {"sigma"} and len(table) == 4  # the law's parameters are shared here
    by = table.set_index("family")
    assert by.loc["f0", "percentile"] < 0.5 < by.loc["f2", "percentile"]  # quieter and noisier than typical
    assert by.loc["f0", "z"] < 0 < by.loc["f3", "z"]
    distance = (table["percentile"] - 0.5).abs().to_numpy()
    assert np.all(np.diff(distance) <= 0)  # most unusual first
    with pytest.raises(ValueError, match="needs a hierarchical fit with pooled"):
        fits["shared"].unusual()


def test_fit_many_pads_groups_with_their_own_noise(runs):
    # data sets with 4 and 2 families through one compiled sampler: the padded families have no rows
    model = bs.ScalingModel(LAW, group="family", shared=["E", "A", "alpha"], pooled=["sigma"])
    two = runs[runs["family"].isin(["f0", "f2"])]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", bs.SamplerWarning)  # short chains; shapes and the noise's order only
        fits = model.fit_many([runs, two], seed=0, chains=2, warmup=200, draws=200)
    assert fits[0].draws("sigma").shape == (400, 4) and fits[1].draws("sigma").shape == (400, 2)
    quiet, noisy = np.median(fits[1].draws("sigma"), axis=0)
    assert quiet < noisy
