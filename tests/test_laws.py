"""Exact law maths: values, log-space numerics, unit conversion, the registry, custom laws."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import bayescale as bs
from bayescale.laws import Law, Parameter
from bayescale.priors import LogNormal

CHINCHILLA = {"E": 1.8169, "A": 482.01, "alpha": 0.3478, "B": 2085.43, "beta": 0.3658}


def test_chinchilla_matches_direct_formula():
    n = np.array([1e8, 7e10, 1e12])
    d = np.array([2e9, 1.4e12, 3e13])
    p = CHINCHILLA
    expected = p["E"] + p["A"] * n ** -p["alpha"] + p["B"] * d ** -p["beta"]
    np.testing.assert_allclose(bs.laws.Chinchilla().mean(p, N=n, D=d), expected, rtol=1e-13)


@pytest.mark.parametrize("law_class", [bs.laws.PowerLaw, bs.laws.SaturatingPowerLaw])
def test_one_input_laws_match_direct_formula(law_class):
    law = law_class("steps")
    x = np.geomspace(10, 1e6, 7)
    p = {"E": 0.7, "A": 12.0, "alpha": 0.45}
    expected = p["A"] * x ** -p["alpha"] + (p["E"] if "E" in law.parameter_names else 0.0)
    np.testing.assert_allclose(law.mean({k: p[k] for k in law.parameter_names}, steps=x), expected, rtol=1e-13)


@pytest.mark.parametrize("alpha", [1e-3, 0.35, 2.0])
def test_no_overflow_at_extreme_scales(alpha):
    law = bs.laws.Chinchilla()
    p = dict(CHINCHILLA, alpha=alpha, beta=alpha)
    n = jnp.array([1e15, 1.0])
    d = jnp.array([1e16, 1.0])
    value = law.mean(p, N=n, D=d)
    assert np.all(np.isfinite(np.asarray(value)))
    grad = jax.grad(lambda a: law.mean(dict(p, alpha=a), N=n, D=d).sum())(alpha)
    assert np.isfinite(float(grad))


def test_power_law_in_compute_at_1e30_flops():
    law = bs.laws.SaturatingPowerLaw("C")
    value = float(law.mean({"E": 1.7, "A": 1e4, "alpha": 0.05}, C=1e30))
    assert value == pytest.approx(1.7 + 1e4 * 1e30**-0.05, rel=1e-12)


def test_reference_conversion_round_trips_and_preserves_the_curve():
    law = bs.laws.Chinchilla()
    log_ref = {"N": np.log(8e8), "D": np.log(1.7e10)}
    ref = law.to_reference(CHINCHILLA, log_ref)
    back = law.to_user(ref, log_ref)
    for name in law.parameter_names:
        assert float(back[name]) == pytest.approx(CHINCHILLA[name], rel=1e-12)
    # the law at centred inputs with reference parameters equals the law in user units
    n, d = np.array([3e9]), np.array([6e10])
    centred = law.log_mean(ref, {"N": np.log(n) - log_ref["N"], "D": np.log(d) - log_ref["D"]})
    np.testing.assert_allclose(np.exp(centred), law.mean(CHINCHILLA, N=n, D=d), rtol=1e-12)
    # A_ref is the N-term's value at the reference scale
    assert float(ref["A"]) == pytest.approx(CHINCHILLA["A"] * 8e8 ** -CHINCHILLA["alpha"], rel=1e-12)


def test_registry_lists_valid_names_on_unknown_law():
    with pytest.raises(KeyError, match=r"unknown law 'chinchila'; valid laws: \['accuracy', 'broken_power', 'chinchil"):
        bs.laws.get("chinchila")
    assert bs.laws.get("power", x="D") == bs.laws.PowerLaw("D")


def test_input_name_must_be_an_identifier():
    with pytest.raises(ValueError, match="Python identifier"):
        bs.laws.SaturatingPowerLaw("not a name")


class Hyperbolic(Law):
    """A law a user might add: loss = E + A / (1 + x)^alpha (shifted power law)."""

    name = "test_hyperbolic"
    inputs = ("steps",)
    parameters = (
        Parameter("E", LogNormal(0.5, 1.5), in_target_units=True),
        Parameter("A", LogNormal(0.5, 1.5), in_target_units=True),
        Parameter("alpha", LogNormal(0.3, 1.0)),
    )

    def log_mean(self, p, log_x):
        return jnp.logaddexp(p["log_E"], p["log_A"] - p["alpha"] * jnp.log1p(jnp.exp(log_x["steps"])))


def test_custom_law_fits_and_round_trips_through_a_file(tmp_path):
    law = Hyperbolic()
    truth = {"E": 1.0, "A": 8.0, "alpha": 0.6}
    steps = np.geomspace(1, 1e4, 30)
    y = np.asarray(law.mean(truth, steps=steps)) * np.exp(0.01 * np.random.default_rng(0).standard_normal(30))
    import pandas as pd

    df = pd.DataFrame({"steps": steps, "loss": y})
    # reference=1 so that log_x is log(steps) and the law's shift is in the user's units
    fit = bs.ScalingModel(law, reference={"steps": 1.0}).fit(df, seed=0)
    for name, value in truth.items():
        lo, hi = np.quantile(fit.draws(name), [0.005, 0.995])
        assert lo < value < hi, name
    path = tmp_path / "custom.nc"
    fit.save(path)
    with pytest.raises(KeyError, match="not registered"):
        bs.load_fit(path)
    again = bs.load_fit(path, law=law)
    np.testing.assert_array_equal(again.predict(steps=1e5).draws("mean"), fit.predict(steps=1e5).draws("mean"))
