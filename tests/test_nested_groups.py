"""Two grouping levels: groups (recipes, runs) nested in outer groups (families), ``ScalingModel(..., within=...)``."""

import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
import pytest
from scipy import stats

import bayescale as bs
from bayescale.model.build import nested_density
from tests.conftest import assert_same_posterior

LAW = bs.laws.SaturatingPowerLaw("N")
POP = {"E": 1.8, "A": 400.0, "alpha": 0.3}
BETWEEN = {"E": 0.15, "A": 0.3, "alpha": 0.2}  # sd of the log of each parameter between families
WITHIN = {"E": 0.02, "A": 0.05, "alpha": 0.02}  # and between the recipes of one family


def simulate_recipes(n_families=4, recipes=3, sizes=6, seed=0):
    """Families that differ by BETWEEN, each with recipes that differ by WITHIN (log scale)."""
    rng = np.random.default_rng(seed)
    rows, truth = [], {}
    for f in range(n_families):
        family = {k: v * np.exp(BETWEEN[k] * rng.standard_normal()) for k, v in POP.items()}
        truth[f"f{f}"] = family
        for r in range(recipes):
            params = {k: v * np.exp(WITHIN[k] * rng.standard_normal()) for k, v in family.items()}
            n = np.geomspace(2e7, 2e9, sizes)
            y = np.asarray(LAW.mean(params, N=n)) * np.exp(0.01 * rng.standard_normal(sizes))
            rows.append(pd.DataFrame({"family": f"f{f}", "recipe": f"f{f}-r{r}", "N": n, "loss": y}))
    return pd.concat(rows, ignore_index=True), truth


MODEL = bs.ScalingModel(LAW, group="recipe", within="family")
SHORT = {"chains": 2, "warmup": 300, "draws": 400, "extend": 0}  # the reference without the pilot: ~570 steps per draw


@pytest.fixture(scope="module")
def recipes():
    return simulate_recipes()


@pytest.fixture(scope="module")
def nested_fit(recipes):
    with warnings.catch_warnings():
        warnings.simplefilter("error", bs.SamplerWarning)  # healthy by default
        return MODEL.fit(recipes[0], seed=0)


def test_specification_and_its_errors():
    assert MODEL.within == "family"
    assert "alpha_outer_spread" in MODEL.population_names and "alpha_outer_shift" in MODEL.population_names
    assert "within='family'" in repr(MODEL)
    assert bs.ScalingModel.from_config(MODEL.config()).within == "family"
    with pytest.raises(ValueError, match="needs a group column"):
        bs.ScalingModel(LAW, within="family")
    with pytest.raises(ValueError, match="another column than group"):
        bs.ScalingModel(LAW, group="family", within="family")
    with pytest.raises(ValueError, match="no law parameter is pooled"):
        bs.ScalingModel(LAW, group="recipe", within="family", shared=["E", "A", "alpha"])
    with pytest.raises(TypeError, match="within must be a column name"):
        bs.ScalingModel(LAW, group="recipe", within=["family"])


def test_each_group_must_sit_in_one_outer_group(recipes):
    df = recipes[0].copy()
    df.loc[3, "family"] = "f1"  # one row of recipe f0-r0 says family f1
    with pytest.raises(bs.DataError, match=r"recipe 'f0-r0' sits in family 'f0' and 'f1' \(e.g. at row 3\)"):
        MODEL.validate(df)
    with pytest.raises(bs.DataError, match=r"column 'family' \(outer group\) is not in the data"):
        MODEL.validate(df.drop(columns="family"))
    data = MODEL.validate(recipes[0])
    assert data.outer_labels == ("f0", "f1", "f2", "f3")
    assert data.outer.tolist() == [0, 0, 0, 1, 1, 1, 2, 2, 2, 3, 3, 3]
    with pytest.raises(ValueError, match="fit_many does not take groups nested"):
        MODEL.fit_many(recipes[0], by="family")
    with pytest.raises(ValueError, match="calibration studies do not take groups nested"):
        bs.calibration.sbc(MODEL, recipes[0][["recipe", "family", "N"]], n_sims=2)


def test_the_outer_locations_map_is_exact():
    # the outer location sampled as l = m + L'^-1 e from any m and L (here made up): integrating the density over e
    # must give the groups' marginal, Normal(M, S^2 I + O^2 11') for the groups of one outer group
    x = jnp.array([[0.3], [0.5], [0.1]])
    location, within, between = jnp.array([0.2]), jnp.array([0.15]), jnp.array([0.4])
    centre, factor = jnp.array([[0.35]]), jnp.array([[[2.5]]])

    def density(e):
        outer = centre + e / factor[:, :, 0]
        return nested_density(outer, factor, location, within, between, x, jnp.zeros(3, dtype=int))

    e = np.linspace(-30, 30, 6001)
    values = np.asarray(jax.vmap(density)(jnp.asarray(e)))
    log_marginal = np.log(np.trapezoid(np.exp(values), e))
    covariance = 0.15**2 * np.eye(3) + 0.4**2 * np.ones((3, 3))
    expected = stats.multivariate_normal(np.full(3, 0.2), covariance).logpdf(np.asarray(x)[:, 0])
    assert log_marginal == pytest.approx(expected, abs=1e-6)


def test_recovers_the_spread_between_families_and_within_them(nested_fit, recipes):
    table = nested_fit.population(0.9)
    for k in ("E", "alpha"):  # families differ ~10x more than their recipes: the posteriors must say so
        assert table.loc[f"{k}_outer_spread", "median"] > 3 * table.loc[f"{k}_spread", "median"]
    for k in ("E", "alpha"):  # each family's location (log scale) against its truth, within 3.3 posterior sds
        location = np.log(nested_fit.draws(f"{k}_pop"))[:, None] + nested_fit.draws(f"{k}_outer_shift")
        truth = np.log([recipes[1][f"f{f}"][k] for f in range(4)])
        z = (truth - location.mean(axis=0)) / location.std(axis=0)
        assert np.all(np.abs(z) < 3.3), (k, z)  # 99.9% each: 8 checks fail by chance ~1% of the time
    assert (nested_fit.unusual()["recipe"].isin(nested_fit.groups)).all()


def test_a_new_recipe_borrows_from_its_family(nested_fit, recipes, tmp_path):
    new = pd.DataFrame({"N": 2e10, "recipe": ["f2-r0", "f2-new", "another"], "family": ["f2", "f2", "a-new-family"]})
    table = nested_fit.predict(new).interval(0.9)
    width = (table["upper"] - table["lower"]).to_numpy()
    assert width[0] < width[1] < width[2]  # a fitted recipe, a new one of a fitted family, one of a new family
    family = recipes[0][recipes[0]["family"] == "f2"]
    assert table["median"].iloc[1] == pytest.approx(
        nested_fit.predict(N=2e10, recipe="f2-r1").interval(0.9)["median"].iloc[0], rel=0.02
    )
    assert family["loss"].min() > table["median"].iloc[1]  # beyond the family's runs, below them
    nested_fit.save(tmp_path / "nested.nc")
    again = bs.load_fit(tmp_path / "nested.nc")
    assert again.model.within == "family" and again.outer_groups == nested_fit.outer_groups
    pd.testing.assert_frame_equal(again.predict(new).interval(0.9), table)
    with pytest.raises(ValueError, match="give each row's 'family' too"):
        nested_fit.predict(N=2e10, recipe="f2-new")
    with pytest.raises(ValueError, match="sits in family 'f2' in the fit, not in 'f1'"):
        nested_fit.predict(N=2e10, recipe="f2-r0", family="f1")
    with pytest.raises(ValueError, match="its rows name family 'f1' and 'f2'; a recipe sits in one family"):
        nested_fit.predict(N=[2e10, 3e10], recipe="new", family=["f1", "f2"])


@pytest.mark.filterwarnings("ignore::bayescale.SamplerWarning")
def test_with_or_without_the_pilot_the_same_posterior(nested_fit, recipes):
    # with the pilot the outer locations are sampled given the groups (nested_density); without it, and in
    # simulation, in the model's generative form: the same posterior
    assert nested_fit.options.init == "pilot"
    fit = bs.ScalingModel(LAW, group="recipe", within="family", pilot=False).fit(recipes[0], seed=1, **SHORT)
    names = ["alpha_pop", "alpha_outer_spread", "alpha_outer_shift[f1]", "E[f0-r1]", "sigma"]
    assert_same_posterior(fit, nested_fit, names)
    prior = nested_fit.sample_prior(200).prior
    assert prior["alpha_outer_shift"].shape == (1, 200, 4)


def test_the_command_line_places_a_new_recipe_in_its_family(nested_fit, tmp_path, capsys):
    from bayescale import cli

    nested_fit.save(tmp_path / "nested.nc")
    at = ["predict", str(tmp_path / "nested.nc"), "--at", "N=2e10", "--group", "f2-new"]
    assert cli.main([*at, "--within", "f2"]) == 0
    assert "loss of a new run" in capsys.readouterr().out
    assert cli.main(at) == 2
    assert "give each row's 'family' too" in capsys.readouterr().err
