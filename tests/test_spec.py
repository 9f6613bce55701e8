"""ScalingModel arguments, priors and the model structure, without running NUTS."""

import jax
import numpy as np
import pytest
from numpyro.handlers import seed, trace
from numpyro.infer.util import log_density

import bayescale as bs
from bayescale.priors import LogNormal, Normal
from tests.conftest import args_of, model_function


def test_inputs_must_match_the_law():
    with pytest.raises(ValueError, match=r"inputs must map exactly the law's inputs \['N', 'D'\]"):
        bs.ScalingModel(bs.laws.Chinchilla(), inputs={"N": "N"})


def test_unknown_prior_name_lists_parameters():
    with pytest.raises(KeyError, match=r"has no parameter 'gamma'; its parameters are \['E', 'A', 'alpha'"):
        bs.ScalingModel("chinchilla", priors={"gamma": LogNormal(0.3, 1.0)})


def test_prior_kind_must_match_parameter():
    with pytest.raises(TypeError, match=r"priors\['alpha'\] must be a LogNormal \(the parameter is positive\)"):
        bs.ScalingModel("chinchilla", priors={"alpha": Normal(0.3, 0.1)})


@pytest.mark.parametrize(
    "kwargs,message",
    [
        ({"median": -1.0, "sigma": 1.0}, "LogNormal median must be a finite number > 0"),
        ({"median": 1.0, "sigma": float("nan")}, "LogNormal sigma must be a finite number > 0"),
    ],
)
def test_prior_arguments_are_checked(kwargs, message):
    with pytest.raises(ValueError, match=message):
        LogNormal(**kwargs)


def test_unknown_nuts_option_is_rejected(quickstart_runs):
    with pytest.raises(TypeError, match=r"unknown NUTS options \['dense'\]"):
        bs.ScalingModel("chinchilla").fit(quickstart_runs, dense="yes")


@pytest.mark.parametrize(
    "kwargs,message",
    [
        ({"chains": 0}, "chains must be an integer >= 1"),
        ({"draws": 2.5}, "draws must be an integer >= 1"),
        ({"seed": -1}, "seed must be a non-negative integer"),
        ({"target_accept_prob": 1.2}, r"target_accept_prob must be in \(0, 1\)"),
    ],
)
def test_bad_sampler_arguments(quickstart_runs, kwargs, message):
    with pytest.raises(ValueError, match=message):
        bs.ScalingModel("chinchilla").fit(quickstart_runs, **kwargs)


def _args(model, frame):
    data = model.validate(frame)
    return args_of(model, data)


def test_prior_draws_and_log_density_are_finite(quickstart_runs):
    model = bs.ScalingModel("chinchilla")
    args = _args(model, quickstart_runs)
    for i in range(20):
        tr = trace(seed(model_function(model), jax.random.key(i))).get_trace(args)
        assert np.all(np.isfinite(np.asarray(tr["obs"]["fn"].log_prob(tr["obs"]["value"]))))
        params = {k: v["value"] for k, v in tr.items() if v["type"] == "sample" and not v["is_observed"]}
        assert np.isfinite(float(log_density(model_function(model), (args,), {}, params)[0]))


def test_default_priors_scale_with_the_target(quickstart_runs):
    """The same runs in different units get the same prior relative to the data."""
    model = bs.ScalingModel("chinchilla")
    scaled = quickstart_runs.assign(loss=quickstart_runs["loss"] * 100)
    a, b = _args(model, quickstart_runs), _args(model, scaled)
    assert float(b.prior_loc["E"] - a.prior_loc["E"]) == pytest.approx(np.log(100))
    assert float(b.prior_loc["alpha"]) == float(a.prior_loc["alpha"])


def test_user_prior_is_absolute(quickstart_runs):
    model = bs.ScalingModel("chinchilla", priors={"E": LogNormal(1.7, 0.1)})
    args = _args(model, quickstart_runs)
    assert float(args.prior_loc["E"]) == pytest.approx(np.log(1.7))
    assert float(args.prior_scale["E"]) == 0.1


def test_prior_predictive_covers_the_data(quickstart_runs):
    """Default priors put the observed losses well inside the prior predictive range."""
    model = bs.ScalingModel("chinchilla")
    args = _args(model, quickstart_runs)._replace(observed=None)
    sims = np.array(
        [
            np.asarray(trace(seed(model_function(model), jax.random.key(i))).get_trace(args)["obs"]["value"])
            for i in range(400)
        ]
    )
    lo, hi = np.quantile(sims, [0.01, 0.99], axis=0)
    y = np.log(quickstart_runs["loss"].to_numpy())
    assert np.all((lo < y) & (y < hi))


def test_reference_option_is_checked():
    with pytest.raises(KeyError, match="reference: 'X' is neither a law input"):
        bs.ScalingModel("chinchilla", reference={"X": 1.0})
    with pytest.raises(ValueError, match=r"reference\['N'\] must be a finite number > 0"):
        bs.ScalingModel("chinchilla", reference={"N": 0})


def test_config_round_trip():
    model = bs.ScalingModel(
        bs.laws.SaturatingPowerLaw("C"),
        target="err",
        inputs={"C": "flops"},
        likelihood=bs.likelihoods.Normal(0.3),
        priors={"alpha": LogNormal(0.1, 0.5)},
        reference={"C": 1e20},
    )
    again = bs.ScalingModel.from_config(model.config())
    assert again.config() == model.config()


def test_config_round_trip_keeps_a_laws_arguments():
    model = bs.ScalingModel(bs.laws.BrokenPowerLaw("D", breaks=2), target="loss")
    assert bs.ScalingModel.from_config(model.config()).law == bs.laws.BrokenPowerLaw("D", breaks=2)
