"""The broken power law, the sigmoid and the exponentiated power law: maths, extremes, locations, recovery."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import bayescale as bs
from bayescale.laws.base import with_logs
from tests.conftest import args_of, model_function, simulate
from tests.test_recovery import assert_recovers

BROKEN = {"E": 1.0, "A": 3.0 * 1e15**0.1, "alpha": 0.1, "delta": 0.4, "C_break": 1e18, "f": 0.3}
BROKEN2 = BROKEN | {"delta2": -0.3, "decades2": 2.0, "f2": 0.5}  # a second bend at 1e20, back to exponent 0.2
SIGMOID = {"R0": 0.05, "gain": 0.6, "B": 1.2, "C_mid": 1e21}
COVERAGE = {"A": 2.5, "alpha": 0.45}
RATE_SIGMOID = {
    "R0": 0.05,
    "lift": 0.5390,
    "B": 1.2,
    "C_mid": 1e21,
}  # the sigmoid above: 0.6 = (1 - 0.05) sigmoid(lift)


def test_closed_forms():
    c = np.array([1e16, 1e18, 1e20])
    broken = bs.laws.BrokenPowerLaw("C").mean(BROKEN, C=c)
    expected = 1.0 + BROKEN["A"] * c**-0.1 * (1 + (c / 1e18) ** (1 / 0.3)) ** (-0.4 * 0.3)
    np.testing.assert_allclose(broken, expected, rtol=1e-12)
    twice = bs.laws.BrokenPowerLaw("C", breaks=2).mean(BROKEN2, C=c)
    np.testing.assert_allclose(twice, 1.0 + (expected - 1.0) * (1 + (c / 1e20) ** (1 / 0.5)) ** (0.3 * 0.5), rtol=1e-12)
    sigmoid = bs.laws.SigmoidLaw("C").mean(SIGMOID, C=c)
    np.testing.assert_allclose(sigmoid, 0.05 + 0.6 / (1 + (1e21 / c) ** 1.2), rtol=1e-12)
    rate = bs.laws.RateSigmoidLaw("C").mean(RATE_SIGMOID, C=c)
    np.testing.assert_allclose(rate, 0.05 + 0.95 / (1 + np.exp(-0.5390)) / (1 + (1e21 / c) ** 1.2), rtol=1e-12)
    k = np.array([1.0, 10.0, 1e4])
    np.testing.assert_allclose(bs.laws.ExponentiatedPowerLaw("k").mean(COVERAGE, k=k), np.exp(-2.5 * k**-0.45))


@pytest.mark.parametrize(
    ("law", "params"),
    [
        (bs.laws.BrokenPowerLaw("C"), BROKEN),
        (bs.laws.BrokenPowerLaw("C", breaks=2), BROKEN2),
        (bs.laws.SigmoidLaw("C"), SIGMOID),
        (bs.laws.ExponentiatedPowerLaw("C"), COVERAGE),
        (bs.laws.RateSigmoidLaw("C"), RATE_SIGMOID),
    ],
    ids=["broken", "broken2", "sigmoid", "exp_power", "rate_sigmoid"],
)
@pytest.mark.parametrize("exponent", [1e-3, 2.0])
def test_no_overflow_at_extreme_inputs_and_exponents(law, params, exponent):
    p = dict(params)
    p["alpha" if "alpha" in p else "B"] = exponent
    for sharpness in ("f", "f2"):
        if sharpness in p:
            p[sharpness] = exponent  # from nearly a kink to very smooth
    log_x = jnp.log(jnp.array([1.0, 1e15, 1e25, 1e30]))

    def total(q):
        return jnp.sum(law.log_mean(with_logs(law, q), {"C": log_x}))

    values = law.log_mean(with_logs(law, p), {"C": log_x})
    grads = jax.grad(total)({k: jnp.asarray(v, dtype=float) for k, v in p.items()})
    assert np.all(np.isfinite(values))
    assert all(np.isfinite(float(g)) for g in grads.values())


def test_location_parameters_move_with_the_reference_scale():
    law = bs.laws.BrokenPowerLaw("C")
    log_ref = {"C": np.log(3e17)}
    ref = law.to_reference(BROKEN, log_ref)
    np.testing.assert_allclose(float(ref["C_break"]), 1e18 / 3e17, rtol=1e-12)
    back = law.to_user(ref, log_ref)
    for name, value in BROKEN.items():
        np.testing.assert_allclose(float(back[name]), value, rtol=1e-12)
    assert law.input_of("C_break") == "C" and law.input_of("delta") is None
    twice = bs.laws.BrokenPowerLaw("C", breaks=2)
    assert float(twice.to_reference(BROKEN2, log_ref)["decades2"]) == 2.0  # a ratio of scales has no units
    assert twice.input_of("decades2") is None


def test_later_breaks_are_ordered_and_named():
    law = bs.laws.BrokenPowerLaw("D", breaks=3)
    assert law.parameter_names[6:] == ("delta2", "decades2", "f2", "delta3", "decades3", "f3")
    assert "(D/(D_break 10^(decades2 + decades3)))" in law.formula
    assert law.local_modes and not bs.laws.SaturatingPowerLaw("D").local_modes
    assert bs.laws.get("broken_power", x="D", breaks=3) == law and repr(law) == "BrokenPowerLaw(x='D', breaks=3)"
    for bad in (0, 1.5, True, "2"):
        with pytest.raises(ValueError, match=f"breaks must be a whole number >= 1, got {bad!r}"):
            bs.laws.BrokenPowerLaw("C", breaks=bad)


def test_a_users_prior_on_a_location_is_in_the_inputs_units():
    law = bs.laws.SigmoidLaw("C")
    df = simulate(law, SIGMOID, {"C": np.geomspace(1e19, 1e23, 20)}, sigma=0.01, seed=0)
    model = bs.ScalingModel(law, target="y", priors={"C_mid": bs.priors.LogNormal(2e21, 0.01)})
    data = model.validate(df)
    args = args_of(model, data)
    from numpyro.infer import Predictive

    draws = Predictive(model_function(model), num_samples=2000)(jax.random.key(0), args._replace(observed=None))
    assert np.median(draws["C_mid"]) == pytest.approx(2e21, rel=0.01)
    with pytest.raises(ValueError, match="'x_mid' is a location on C: it needs a LogNormal prior"):
        bs.Parameter("x_mid", bs.priors.Normal(0.0, 1.0), location_of="C")


def test_recovers_broken_power_law():
    law = bs.laws.BrokenPowerLaw("C")
    df = simulate(law, BROKEN, {"C": np.geomspace(1e15, 1e21, 40)}, sigma=0.005, seed=2).rename(columns={"y": "loss"})
    fit = bs.ScalingModel(law, likelihood=bs.likelihoods.Normal()).fit(df, seed=0)
    assert fit.healthy, str(fit.health)
    assert_recovers(fit, BROKEN, sigma=0.005)


@pytest.mark.filterwarnings("ignore:.*divergent transitions:bayescale.SamplerWarning")
def test_recovers_two_breaks_from_chains_that_agree():
    # bends three decades apart: chains start at the best of several modes (the law's local_modes), so they
    # agree; a divergence or two remain where the last segment's exponent trades off against E (docs/laws.md),
    # also after the second run at smaller steps that the defaults make (here asked for at once: one run)
    truth = BROKEN | {"C_break": 1e15, "f": 0.5, "delta2": -0.3, "decades2": 3.0, "f2": 0.5}
    law = bs.laws.BrokenPowerLaw("C", breaks=2)
    df = simulate(law, truth, {"C": np.geomspace(1e12, 1e22, 80)}, sigma=0.005, seed=2).rename(columns={"y": "loss"})
    fit = bs.ScalingModel(law, likelihood=bs.likelihoods.Normal()).fit(df, seed=0, target_accept_prob=0.99)
    table = fit.diagnostics().table
    assert table["r_hat"].max() < 1.01 and table["ess_bulk"].min() > 400, table
    assert_recovers(fit, truth, sigma=0.005)


def test_recovers_sigmoid():
    law = bs.laws.SigmoidLaw("C")
    df = simulate(law, SIGMOID, {"C": np.geomspace(1e18, 1e24, 30)}, sigma=0.01, seed=4).rename(columns={"y": "acc"})
    fit = bs.ScalingModel(law, target="acc", likelihood=bs.likelihoods.Normal()).fit(df, seed=0)
    assert fit.healthy, str(fit.health)
    assert_recovers(fit, SIGMOID, sigma=0.01)


def test_recovers_exponentiated_power_law():
    law = bs.laws.ExponentiatedPowerLaw("k")
    df = simulate(law, COVERAGE, {"k": np.geomspace(1, 1e4, 25)}, sigma=0.01, seed=6).rename(columns={"y": "coverage"})
    fit = bs.ScalingModel(law, target="coverage", likelihood=bs.likelihoods.Normal()).fit(df, seed=0)
    assert fit.healthy, str(fit.health)
    assert_recovers(fit, COVERAGE, sigma=0.01)
