"""Level coordinates of ``E + A x^-alpha``: the same prior and posterior, straighter geometry."""

from __future__ import annotations

from dataclasses import dataclass

import jax
import numpy as np
import pandas as pd
import pytest
from numpyro.infer import Predictive
from scipy import stats

import bayescale as bs
from bayescale.model.build import independent_level_terms, shared_level_terms
from tests.conftest import assert_same_posterior, log_references, model_args, model_function, sites_of

PRIOR_DRAWS = 20_000
KS_P_MIN = 1e-4  # exact draws from the stated prior pass a KS test at this level with probability 0.9999


@dataclass(frozen=True, repr=False)
class OwnCoordinates(bs.laws.SaturatingPowerLaw):
    """The same law with one standardised coordinate per parameter, as before level coordinates."""

    level_terms = None


def weakly_saturating(seed: int = 31) -> pd.DataFrame:
    """49 runs over three decades of a curve that barely levels off (alpha 0.11): E is weakly identified."""
    rng = np.random.default_rng(seed)
    n = np.geomspace(1e7, 1e10, 49) * np.exp(0.1 * rng.standard_normal(49))
    loss = (2.14 + 4.31 * (n / 1e8) ** -0.11) * np.exp(0.02 * rng.standard_normal(49))
    return pd.DataFrame({"N": n, "loss": loss})


def model(law: bs.laws.Law, **kwargs) -> bs.ScalingModel:
    return bs.ScalingModel(law, target="loss", inputs={"N": "N"}, **kwargs)


def test_only_shared_trios_use_level_coordinates():
    law = bs.laws.SaturatingPowerLaw("N")
    assert shared_level_terms(law, {}) == ("E", "A", "alpha")
    assert shared_level_terms(law, {"E": "pooled"}) == ()
    assert set(sites_of(model(law))) == {"E_z", "A_z", "alpha_z"} | set(model(law).likelihood.parameter_names)
    grouped = bs.ScalingModel(law, target="loss", inputs={"N": "N"}, group="family", shared=["E", "A"])
    assert not shared_level_terms(law, grouped.treatments), "a pooled exponent keeps its own coordinate"


def test_a_law_that_declares_them_wrongly_is_told_so():
    @dataclass(frozen=True, repr=False)
    class Swapped(bs.laws.SaturatingPowerLaw):
        level_terms = ("A", "E", "alpha")

    with pytest.raises(ValueError, match="prefactor of the term with exponent 'alpha'"):
        model(Swapped("N"))

    @dataclass(frozen=True, repr=False)
    class WrongPair(bs.laws.Chinchilla):
        level_terms = ("E", "A", "alpha", "B", "alpha")

    with pytest.raises(ValueError, match="'B' the prefactor of the term with exponent 'alpha'"):
        bs.ScalingModel(WrongPair())


def prior_logs(fitted: bs.ScalingModel, runs: pd.DataFrame) -> tuple[dict, object]:
    """Prior draws of every law parameter's log (prefactors at the reference scale), and the model's arguments."""
    data = fitted.validate(runs)
    log_refs = log_references(fitted, data)
    args = model_args(fitted, data, log_refs)._replace(observed=None)
    draws = Predictive(model_function(fitted), num_samples=PRIOR_DRAWS)(jax.random.key(0), args)
    values = {}
    for par in fitted.law.parameters:
        values[par.name] = np.log(np.asarray(draws[par.name]))
        if par.prefactor_of is not None:
            x, exponent = par.prefactor_of
            values[par.name] -= np.asarray(draws[exponent]) * log_refs[x]
    return values, args


def assert_independent_normals(values: dict, args) -> None:
    """Each log a Normal with its prior's location and scale (KS), and none correlated with another (a group's
    values named ``"E[0]"``)."""
    for name, v in values.items():
        par = name.split("[")[0]
        loc, scale = float(args.prior_loc[par]), float(args.prior_scale[par])
        assert stats.kstest(v, stats.norm(loc, scale).cdf).pvalue > KS_P_MIN, name
    r = np.corrcoef(np.stack(list(values.values())))
    assert np.abs(r[np.triu_indices(len(values), 1)]).max() < 4.5 / np.sqrt(PRIOR_DRAWS), "independent a priori"


def test_the_prior_is_the_laws_prior():
    """Draws through the level coordinates: log E, log A (at the reference) and log alpha independent Normals."""
    fitted = model(bs.laws.SaturatingPowerLaw("N"), priors={"alpha": bs.priors.LogNormal(0.3, 0.5)})
    assert_independent_normals(*prior_logs(fitted, weakly_saturating()))


def test_same_posterior_as_in_each_parameters_own_coordinates():
    rng = np.random.default_rng(0)
    n = np.geomspace(1e7, 1e10, 40)
    runs = pd.DataFrame({"N": n, "loss": (1.7 + 8.0 * (n / 1e8) ** -0.3) * np.exp(0.02 * rng.standard_normal(40))})
    fits = model(bs.laws.SaturatingPowerLaw("N")).fit(runs, seed=0), model(OwnCoordinates("N")).fit(runs, seed=1)
    assert all(fit.healthy for fit in fits)
    assert_same_posterior(*fits, ("E", "A", "alpha", "sigma"))


@pytest.mark.filterwarnings("ignore::bayescale.SamplerWarning")  # the own-coordinates fit is the unhealthy one
def test_a_curve_that_barely_levels_off_samples_in_few_steps():
    """Where E is weakly identified the own coordinates are a curved ridge (~100 leapfrog steps per draw)."""
    runs = weakly_saturating()
    level = model(bs.laws.SaturatingPowerLaw("N")).fit(runs, seed=0)
    own = model(OwnCoordinates("N")).fit(runs, seed=0)
    steps = [float(fit.idata.sample_stats["n_steps"].mean()) for fit in (level, own)]
    assert level.healthy, level.health
    assert steps[0] < 20 and steps[1] > 3 * steps[0], steps


@dataclass(frozen=True, repr=False)
class OwnChinchilla(bs.laws.Chinchilla):
    """Chinchilla with one standardised coordinate per parameter, as before its level coordinates."""

    level_terms = None


def one_family(seed: int = 0) -> pd.DataFrame:
    """40 runs of one family (8 sizes x 5 tokens per parameter) on Besiroglu et al.'s fit, 1% noise."""
    rng = np.random.default_rng(seed)
    n, ratio = (g.ravel() for g in np.meshgrid(np.geomspace(5e7, 5e9, 8), [5.0, 10.0, 20.0, 40.0, 80.0]))
    truth = {"E": 1.82, "A": 482.0, "alpha": 0.348, "B": 2085.0, "beta": 0.366}
    loss = np.asarray(bs.laws.Chinchilla().mean(truth, N=n, D=n * ratio)) * np.exp(0.01 * rng.standard_normal(40))
    return pd.DataFrame({"N": n, "D": n * ratio, "loss": loss})


def chinchilla(law: bs.laws.Law) -> bs.ScalingModel:
    return bs.ScalingModel(law, target="loss")


def test_two_power_terms_share_one_level():
    law = bs.laws.Chinchilla()
    assert shared_level_terms(law, {}) == ("E", "A", "alpha", "B", "beta")
    assert shared_level_terms(law, {"B": "pooled"}) == ()
    fitted = chinchilla(law)
    own_sites = {"E_z", "A_z", "alpha_z", "B_z", "beta_z"}  # holding the level, splits and slopes
    assert set(sites_of(fitted)) == own_sites | set(fitted.likelihood.parameter_names)


def test_the_prior_of_two_power_terms_is_the_laws_prior():
    """Draws through the level coordinates: five independent Normals on the logs (prefactors at the reference)."""
    assert_independent_normals(*prior_logs(chinchilla(bs.laws.Chinchilla()), one_family()))


def test_two_power_terms_same_posterior_as_in_their_own_coordinates():
    runs = one_family()
    fits = chinchilla(bs.laws.Chinchilla()).fit(runs, seed=0), chinchilla(OwnChinchilla()).fit(runs, seed=1)
    assert all(fit.healthy for fit in fits)
    assert_same_posterior(*fits, ("E", "A", "alpha", "B", "beta", "sigma"))


def test_two_power_terms_sample_in_fewer_steps():
    """One family of 40 runs: the own coordinates are a curved ridge between E, the prefactors and exponents."""
    runs = one_family()
    level, own = (chinchilla(law).fit(runs, seed=0) for law in (bs.laws.Chinchilla(), OwnChinchilla()))
    steps = [float(fit.idata.sample_stats["n_steps"].mean()) for fit in (level, own)]
    ess = [float(fit.summary()["ess_bulk"].min()) for fit in (level, own)]
    assert level.healthy, level.health
    # seeds 0-3: 6.5-6.6 against 10.8-11.6 steps per draw, min bulk ESS 4,100-5,300 against 830-1,300
    assert steps[1] > 1.3 * steps[0] and ess[0] > 2 * ess[1], (steps, ess)


def two_groups(make_runs, seeds=(0, 1)) -> pd.DataFrame:
    """Two groups' runs, each drawn by ``make_runs(seed)``."""
    return pd.concat([make_runs(seed).assign(g=f"g{seed}") for seed in seeds], ignore_index=True)


def independent(law: bs.laws.Law) -> bs.ScalingModel:
    return bs.ScalingModel(law, target="loss", inputs={"N": "N"}, group="g", independent=["E", "A", "alpha"])


def well_saturating(seed: int) -> pd.DataFrame:
    """40 runs over three decades of a curve that levels off (alpha 0.3): every parameter identified."""
    rng = np.random.default_rng(seed)
    n = np.geomspace(1e7, 1e10, 40)
    return pd.DataFrame({"N": n, "loss": (1.7 + 8.0 * (n / 1e8) ** -0.3) * np.exp(0.02 * rng.standard_normal(40))})


def test_independent_groups_use_level_coordinates_of_their_own():
    law = bs.laws.SaturatingPowerLaw("N")
    assert independent_level_terms(law, dict.fromkeys(("E", "A", "alpha"), "independent")) == ("E", "A", "alpha")
    assert independent_level_terms(law, {"E": "shared", "A": "independent", "alpha": "independent"}) == ()
    values, args = prior_logs(independent(law), two_groups(weakly_saturating, (31, 32)))
    assert all(v.shape == (PRIOR_DRAWS, 2) for v in values.values())
    assert_independent_normals({f"{k}[{g}]": v[:, g] for k, v in values.items() for g in range(2)}, args)


def test_independent_groups_same_posterior_as_in_their_own_coordinates():
    runs = two_groups(well_saturating)
    fits = (
        independent(bs.laws.SaturatingPowerLaw("N")).fit(runs, seed=0),
        independent(OwnCoordinates("N")).fit(runs, seed=1),
    )
    assert all(fit.healthy for fit in fits)
    assert_same_posterior(*fits, [f"{k}[g{g}]" for k in ("E", "A", "alpha") for g in (0, 1)] + ["sigma"])


@pytest.mark.filterwarnings("ignore::bayescale.SamplerWarning")  # the own-coordinates fit may warn (long trees)
def test_independent_groups_that_barely_level_off_sample_in_few_steps():
    runs = two_groups(weakly_saturating, (31, 32))
    level, own = (independent(law).fit(runs, seed=0) for law in (bs.laws.SaturatingPowerLaw("N"), OwnCoordinates("N")))
    steps = [float(fit.idata.sample_stats["n_steps"].mean()) for fit in (level, own)]
    assert level.healthy, level.health
    # seeds 0-2: 13-15 against 158-226 leapfrog steps per draw
    assert steps[1] > 3 * steps[0], steps
