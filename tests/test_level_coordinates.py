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
from bayescale.model import LEVEL_SITES, level_terms
from tests.conftest import assert_same_posterior

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
    assert level_terms(law, {}) == ("E", "A", "alpha")
    assert level_terms(law, {"E": "pooled"}) == ()
    assert level_terms(bs.laws.Chinchilla(), {}) == ()
    assert set(LEVEL_SITES) <= set(model(law).latent_sites())
    grouped = bs.ScalingModel(law, target="loss", inputs={"N": "N"}, group="family", shared=["E", "A"])
    assert not set(LEVEL_SITES) & set(grouped.latent_sites(3)), "a pooled exponent keeps its own coordinate"


def test_a_law_that_declares_them_wrongly_is_told_so():
    @dataclass(frozen=True, repr=False)
    class Swapped(bs.laws.SaturatingPowerLaw):
        level_terms = ("A", "E", "alpha")

    with pytest.raises(ValueError, match="prefactor of the term with exponent 'alpha'"):
        model(Swapped("N"))


def test_the_prior_is_the_laws_prior():
    """Draws through the level coordinates: log E, log A (at the reference) and log alpha independent Normals."""
    fitted = model(bs.laws.SaturatingPowerLaw("N"), priors={"alpha": bs.priors.LogNormal(0.3, 0.5)})
    data = fitted.validate(weakly_saturating())
    log_refs = fitted.log_references(data)
    args = fitted.model_args(data, log_refs)._replace(observed=None)
    draws = Predictive(fitted._model, num_samples=PRIOR_DRAWS)(jax.random.key(0), args)
    alpha = np.asarray(draws["alpha"])
    values = {
        "E": np.log(np.asarray(draws["E"])),
        "A": np.log(np.asarray(draws["A"])) - alpha * log_refs["N"],  # the prefactor at the reference scale
        "alpha": np.log(alpha),
    }
    for name, v in values.items():
        loc, scale = float(args.prior_loc[name]), float(args.prior_scale[name])
        assert stats.kstest(v, stats.norm(loc, scale).cdf).pvalue > KS_P_MIN, name
    r = np.corrcoef(np.stack(list(values.values())))
    assert np.abs(r[np.triu_indices(3, 1)]).max() < 4.5 / np.sqrt(PRIOR_DRAWS), "the three are independent a priori"


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
