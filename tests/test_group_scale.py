"""A scale per group (ScalingModel(..., group="family", group_scale=True)): spec, exact density, recovery."""

from __future__ import annotations

import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
import pytest
from numpyro.handlers import substitute, trace

import bayescale as bs
from bayescale.model.args import Z_SCALE
from bayescale.model.build import pooled_level_terms, pooled_names, sample_pooled
from tests.conftest import args_of, assert_same_posterior, simulate

LAW = bs.laws.SaturatingPowerLaw("N")
TRUTH = {"E": 1.8, "A": 300.0, "alpha": 0.3}
SCALES = {"f0": -0.6, "f1": -0.2, "f2": 0.0, "f3": 0.3, "f4": 0.7}  # each family's log-scale: units apart
HALF = {"warmup": 500, "draws": 500}


@pytest.fixture(scope="module")
def runs() -> pd.DataFrame:
    """Five families of 8 runs on one curve times their own scale, and a sixth of 2 runs (outside the frame)."""
    n = np.geomspace(1e8, 1e10, 8)
    frames = []
    for i, (family, s) in enumerate([*SCALES.items(), ("f5", 0.2)]):
        rng = np.random.default_rng(100 + i)
        truth = {"E": TRUTH["E"] * np.exp(s), "A": TRUTH["A"] * np.exp(s + 0.05 * rng.standard_normal())}
        truth["alpha"] = TRUTH["alpha"] * np.exp(0.05 * rng.standard_normal())
        sizes = n if family != "f5" else n[:2]
        runs = simulate(LAW, truth, {"N": sizes}, sigma=0.01, seed=i)
        frames.append(runs.rename(columns={"y": "loss"}).assign(family=family))
    return pd.concat(frames, ignore_index=True)


@pytest.fixture(scope="module")
def fits(runs):
    """The same families in the pilot's frame (the default) and in the generative form (pilot=False)."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", bs.SamplerWarning)
        framed = bs.ScalingModel(LAW, group="family", group_scale=True).fit(runs, seed=2, **HALF)
    with warnings.catch_warnings():  # the generative form mixes slowly at small spreads: the point of the frame
        warnings.simplefilter("ignore", bs.SamplerWarning)
        plain = bs.ScalingModel(LAW, group="family", group_scale=True, pilot=False)
        plain = plain.fit(runs, seed=1, chains=2, warmup=400, draws=400, extend=0)
    return framed, plain


def test_the_option_is_checked_and_kept():
    model = bs.ScalingModel(LAW, group="family", group_scale=True)
    assert model.scaled_names == ("E", "A")
    assert model.population_names[-1] == "scale_spread" and "scale" in model.posterior_names
    assert bs.ScalingModel.from_config(model.config()).group_scale
    assert "group_scale=True" in repr(model)
    assert model.structure_key != bs.ScalingModel(LAW, group="family").structure_key
    with pytest.raises(ValueError, match="needs a group column"):
        bs.ScalingModel(LAW, group_scale=True)
    with pytest.raises(ValueError, match=r"has \['E'\] pooled in the target's units; pool two or more"):
        bs.ScalingModel(LAW, group="family", shared=["A"], group_scale=True)
    with pytest.raises(ValueError, match="nested in outer groups"):
        bs.ScalingModel(LAW, group="recipe", within="family", group_scale=True)
    with pytest.raises(TypeError, match="group_scale must be True or False"):
        bs.ScalingModel(LAW, group="family", group_scale="yes")
    with pytest.raises(ValueError, match="rate bounded by 1"):
        bs.ScalingModel(LAW, target="err", likelihood=bs.likelihoods.LogitNormal(), group="family", group_scale=True)


def test_the_factor_is_the_population_density_times_the_jacobian(runs):
    # values x and scales s from (u, v): the factor must be log N(x; M + s e, S) + log N(s; 0, tau)
    # + log |det d(x, s) / d(u, v)|, up to the dropped constant, in the frame and outside it
    model = bs.ScalingModel(LAW, group="family", group_scale=True)
    args = args_of(model, model.validate(runs))
    assert np.asarray(args.basis.framed).tolist() == [1.0] * 5 + [0.0]  # f5's two runs: outside the frame
    args = args._replace(basis=args.basis._replace(framed=jnp.asarray([1.0, 0.0, 1.0, 1.0, 1.0, 0.0])))
    names, terms = pooled_names(model.law, model.treatments), pooled_level_terms(model.law, model.treatments)
    levels = jnp.asarray([float(k in model.scaled_names) for k in names])
    one = jnp.asarray([0.0, 1.0, 0.0, 0.0, 0.0, 0.0])
    args = args._replace(centred={k: one if k in ("E", "A") else jnp.zeros(6) for k in names})  # f1 centred
    rng = np.random.default_rng(3)

    def run(flat, hyper, tau):  # the values and scales (flat), and the factor
        data = {f"{k}_z": flat[:, i] for i, k in enumerate(names)} | {"scale_z": flat[:, -1]}
        with trace() as tr, substitute(data=data):
            x = sample_pooled(names, terms, hyper, args, 6, None, (tau, levels))
        site = tr["pooled_groups"]
        out = jnp.concatenate([jnp.stack([x[k] for k in names], axis=-1), tr["scale"]["value"][:, None]], axis=-1)
        return out.ravel(), (out, site["fn"].log_prob(site["value"]))

    # one program for the map, its Jacobian and the factor (op by op, the Jacobian compiles hundreds)
    jacobian = jax.jit(jax.jacobian(lambda v, hyper, tau: run(v.reshape(6, 4), hyper, tau), has_aux=True))
    for _ in range(3):
        hyper = {k: (rng.normal(0.0, 0.5), rng.gamma(2.0, 0.1)) for k in names}
        tau = rng.gamma(2.0, 0.25)
        flat = jnp.asarray(rng.normal(0.0, 1.5 * Z_SCALE, (6, 4)))
        derivative, (out, factor) = jacobian(flat.ravel(), hyper, tau)
        x, s = np.asarray(out[:, :-1]), np.asarray(out[:, -1])
        location = np.array([float(args.prior_loc[k] + args.prior_scale[k] * hyper[k][0]) for k in names])
        spread = np.array([float(args.prior_scale[k] * hyper[k][1]) for k in names])
        r = (x - location - s[:, None] * np.asarray(levels)) / spread
        density = np.sum(-0.5 * r**2 - np.log(spread * np.sqrt(2 * np.pi)))
        density += np.sum(-0.5 * (s / tau) ** 2 - np.log(tau * np.sqrt(2 * np.pi)))
        log_det = np.linalg.slogdet(np.asarray(derivative))[1]
        np.testing.assert_allclose(float(factor) - (density + log_det), 24 * np.log(Z_SCALE), rtol=0, atol=1e-7)


def test_the_frame_samples_the_generative_model_s_posterior(fits):
    framed, plain = fits
    assert_same_posterior(framed, plain, ["scale_spread", "E_pop", "alpha_pop", "scale[f0]", "scale[f5]", "E[f5]"])


def test_each_family_s_scale_is_recovered(fits):
    framed, _ = fits
    draws = framed.idata.posterior["scale"].sel(family=list(SCALES)).values.reshape(-1, len(SCALES))
    truth = np.array(list(SCALES.values()))
    # the scales are measured about the population's level: their differences are the families' ratios, each
    # within its 98% interval (the ratio of E and A is measured loosely at 1e8-1e10 parameters)
    lower, upper = np.quantile(draws - draws.mean(axis=1, keepdims=True), [0.01, 0.99], axis=0)
    assert np.all((lower < truth - truth.mean()) & (truth - truth.mean() < upper)), (lower, upper)
    assert np.corrcoef(np.median(draws, axis=0), truth)[0, 1] > 0.9
    lower, upper = np.quantile(framed.draws("scale_spread"), [0.05, 0.95])
    assert lower < np.std(truth, ddof=1) < upper
    assert float(np.median(framed.draws("E_spread"))) < 0.25  # E's spread is not the families' units


def test_a_new_family_draws_its_scale(fits, tmp_path):
    framed, _ = fits
    at = pd.DataFrame({"N": [3e10, 3e10], "family": ["f2", "a-new-family"]})
    band = framed.predict(at).interval(0.9)
    width = np.log(band["upper"] / band["lower"]).to_numpy()
    assert width[1] > 3 * width[0]  # the new family's scale is one draw of scale_spread (~0.5 in the log)
    unusual = framed.unusual().set_index(["family", "parameter"])
    assert {"E", "alpha", "scale"} <= set(unusual.index.get_level_values("parameter"))
    # each family's scale as a factor of the population's curve: f0's a factor e^-0.6 below the others
    factors = unusual.xs("scale", level="parameter")["median"]
    assert factors.idxmin() == "f0" and factors.idxmax() == "f4"
    again = bs.load_fit(framed.save(tmp_path / "scaled.nc"))
    assert again.model.group_scale and again.predict(at).interval(0.9).equals(band)
