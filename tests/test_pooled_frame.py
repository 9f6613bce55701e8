"""Pooled groups in the pilot's frame (bayescale.model.pooled): exact density, same posterior, fewer steps."""

from __future__ import annotations

import warnings
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
import pytest
from numpyro.handlers import substitute, trace

import bayescale as bs
from bayescale.model import pooled
from bayescale.model.args import Z_SCALE
from bayescale.model.build import measured_by_design, pooled_level_terms, pooled_names, sample_pooled
from bayescale.model.pilot import GroupFits, fit_groups, pooled_basis, population_of
from tests.conftest import args_of, assert_same_posterior, simulate

LAW = bs.laws.Chinchilla()
POP = {"E": 1.82, "A": 482.0, "alpha": 0.348, "B": 2085.0, "beta": 0.366}
SPREAD = {"E": 0.1, "A": 0.3, "alpha": 0.15, "B": 0.3, "beta": 0.15}  # sd of the log across families
HALF = {"warmup": 500, "draws": 500}


def simulate_families(n_families: int = 6, seed: int = 0) -> pd.DataFrame:
    """Families of 20 runs (4 sizes x 5 tokens per parameter) scattered around POP by SPREAD, 1% noise."""
    rng = np.random.default_rng(seed)
    n, r = (g.ravel() for g in np.meshgrid(np.geomspace(5e7, 5e9, 4), [5.0, 10.0, 20.0, 40.0, 80.0], indexing="ij"))
    frames = []
    for f in range(n_families):
        truth = {k: v * np.exp(SPREAD[k] * rng.standard_normal()) for k, v in POP.items()}
        runs = simulate(LAW, truth, {"N": n, "D": n * r}, sigma=0.01, seed=1000 * seed + f)
        frames.append(runs.rename(columns={"y": "loss"}).assign(family=f"f{f}"))
    return pd.concat(frames, ignore_index=True)


def framed_args(df: pd.DataFrame):
    model = bs.ScalingModel(LAW, target="loss", group="family", pilot=True)
    data = model.validate(df)
    return model, args_of(model, data)


def test_small_cholesky_and_triangular_solves_match_lapack():
    rng = np.random.default_rng(0)
    for k in (1, 2, 5):
        a = rng.standard_normal((7, k, k))
        spd = a @ np.swapaxes(a, -1, -2) + 0.1 * np.eye(k)
        lower = np.asarray(pooled.cholesky(jnp.asarray(spd)))
        np.testing.assert_allclose(lower, np.linalg.cholesky(spd), rtol=1e-10, atol=1e-12)
        b = rng.standard_normal((7, k))
        for ours, matrix in ((pooled.solve_lower, lower), (pooled.solve_upper, np.swapaxes(lower, -1, -2))):
            np.testing.assert_allclose(ours(lower, b), np.linalg.solve(matrix, b[..., None])[..., 0], rtol=1e-9)


@pytest.mark.parametrize(
    ("names", "terms"),
    [
        (("E", "A", "alpha", "B", "beta"), ("E", "A", "alpha", "B", "beta")),
        (("E", "A", "alpha"), ("E", "A", "alpha")),
        (("A", "alpha", "E", "c"), ("E", "A", "alpha")),  # any order, a parameter outside the terms
        (("A", "alpha"), ()),
    ],
)
def test_coordinates_invert_with_unit_jacobian(names, terms):
    x = jnp.asarray(np.random.default_rng(1).normal(0.0, 2.0, (5, len(names))))
    y = pooled.to_coordinates(x, names, terms)
    np.testing.assert_allclose(pooled.from_coordinates(y, names, terms), x, atol=1e-12)
    jacobian = jax.vmap(jax.jacobian(lambda v: pooled.from_coordinates(v, names, terms)))(y)
    np.testing.assert_allclose(np.linalg.slogdet(np.asarray(jacobian))[1], 0.0, atol=1e-12)
    if terms:  # the level is the curve's at the reference scales: log(E + A + B)
        i = {n: k for k, n in enumerate(names)}
        level = np.log(sum(np.exp(np.asarray(x)[:, i[t]]) for t in (terms[0], *terms[1::2])))
        np.testing.assert_allclose(np.asarray(y)[:, i[terms[0]]], level, atol=1e-12)


def test_the_factor_is_the_population_density_times_the_jacobian():
    # the groups' values x(u) and the factor the model adds for them: their difference from log N(x; M, S) +
    # log |det dx/du| must be the dropped constant, G * K * log(Z_SCALE), wherever u and the population are;
    # all four groups in the frame, then two outside it: f1 with E and A centred, f3 with its level given the rest
    model, args = framed_args(simulate_families(4))
    names, terms = pooled_names(LAW, model.treatments), pooled_level_terms(LAW, model.treatments)
    assert terms == names and args.basis.information.shape == (4, 5, 5)
    levels = jnp.asarray([float(k in ("E", "A", "B")) for k in names])
    rng = np.random.default_rng(2)

    def evidence(x0, move):  # any smooth function of the other coordinates: the map stays exact
        return jnp.sum(jnp.sin(x0) * move, axis=-1), 50.0 * jnp.sum(move**2, axis=-1)

    @jax.jit  # one program for the draws below (op by op, the Jacobian compiles hundreds)
    def run(u, hyper, log_noise, framed, centred):
        data = {f"{k}_z": u[:, i] for i, k in enumerate(names)}
        moved = args._replace(basis=args.basis._replace(framed=framed, levelled=1.0 - framed), centred=centred)
        with trace() as tr, substitute(data=data):
            x = sample_pooled(names, terms, hyper, moved, 4, log_noise, None, (levels, evidence))
        site = tr["pooled_groups"]
        return jnp.stack([x[k] for k in names], axis=-1), site["fn"].log_prob(site["value"])

    jacobian = jax.jit(jax.jacobian(lambda v, *rest: run(v.reshape(4, 5), *rest)[0].ravel()))
    inside = (jnp.ones(4), {k: jnp.zeros(4) for k in names})
    one = jnp.asarray([0.0, 1.0, 0.0, 0.0])
    outside = (jnp.asarray([1.0, 0.0, 1.0, 0.0]), {k: one if k in ("E", "A") else jnp.zeros(4) for k in names})
    for framed, centred in (inside, inside, outside, outside):
        hyper = {k: (rng.normal(0.0, 0.5), rng.gamma(2.0, 0.1)) for k in names}
        log_noise = jnp.asarray(rng.normal(np.log(0.01), 0.5, 4))  # the frame weighs each group's data at its noise
        u = jnp.asarray(rng.normal(0.0, 1.5 * Z_SCALE, (4, 5)))
        x, factor = run(u, hyper, log_noise, framed, centred)
        location = np.array([float(args.prior_loc[k] + args.prior_scale[k] * hyper[k][0]) for k in names])
        spread = np.array([float(args.prior_scale[k] * hyper[k][1]) for k in names])
        density = float(np.sum(-0.5 * ((np.asarray(x) - location) / spread) ** 2 - np.log(spread * np.sqrt(2 * np.pi))))
        log_det = np.linalg.slogdet(np.asarray(jacobian(u.ravel(), hyper, log_noise, framed, centred)))[1]
        np.testing.assert_allclose(float(factor) - (density + log_det), 20 * np.log(Z_SCALE), rtol=0, atol=1e-7)


def test_outside_the_frame_the_level_slot_is_the_level_s_conditional():
    rng = np.random.default_rng(4)
    # what the level map reads of the pilot: which groups are framed, and the information about their values
    information = rng.normal(0.0, 1.0, (4, 5, 5))
    information = jnp.asarray(information @ np.swapaxes(information, -1, -2))
    basis = pooled.PooledBasis(*[None] * len(pooled.PooledBasis._fields))
    framed = jnp.asarray([0.0, 0.0, 1.0, 0.0])
    basis = basis._replace(framed=framed, levelled=1.0 - framed, level_information=information)
    levels = jnp.asarray([1.0, 1.0, 0.0, 1.0, 0.0])  # E, A, alpha, B, beta
    centred = jnp.zeros((4, 5)).at[3, 0].set(1.0)  # group 2 in the frame, group 3 with E centred: as they were
    location, spread = jnp.asarray(rng.normal(0.0, 1.0, 5)), jnp.asarray(rng.gamma(2.0, 0.1, 5))
    prior = (jnp.zeros(5), jnp.ones(5))
    sites = jnp.asarray(rng.normal(0.0, 1.0, (4, 5)))

    def evidence(x0, move, told=0.3):  # the rows see a move t along `move` as Normal(told / 4, 1 / 4): P = 5
        return jnp.full(4, told), jnp.full(4, 4.0)

    z, log_sd = pooled.level_frame(sites, centred, levels, location, spread, *prior, basis, evidence)
    np.testing.assert_allclose(log_sd, [-0.5 * np.log(5.0)] * 2 + [0.0] * 2, atol=1e-12)
    np.testing.assert_array_equal(z[2:], sites[2:])
    # the other slots are the coordinates turned: the pivot (E's slot) alone moves along w, only the level terms
    back = pooled.level_start(z, centred, levels, spread, basis)
    np.testing.assert_allclose(back[:2], sites[:2].at[:, 0].set(0.0), atol=1e-12)
    step = pooled.level_frame(sites.at[:2, 0].add(1.0), centred, levels, location, spread, *prior, basis, evidence)[0]
    w = (np.asarray(step) - np.asarray(z))[:2] * np.sqrt(5.0)  # one unit of the slot moves z by w / sqrt(P)
    np.testing.assert_allclose(np.linalg.norm(w, axis=-1), 1.0, atol=1e-12)
    shares = np.maximum(np.einsum("gij,j->gi", information, levels), 0.0)[:2] * np.asarray(spread * levels)
    np.testing.assert_allclose(w, -shares / np.linalg.norm(shares, axis=-1, keepdims=True), atol=1e-12)
    # at the slot's 0, the level sits at its conditional mean given the rest, told / P = 0.06 along the move
    at_zero = pooled.level_frame(back, centred, levels, location, spread, *prior, basis, evidence)[0]
    nothing = pooled.level_frame(back, centred, levels, location, spread, *prior, basis, partial(evidence, told=0.0))
    np.testing.assert_allclose(at_zero[:2] - nothing[0][:2], 0.06 * w, atol=1e-12)
    np.testing.assert_allclose(z[:2] - at_zero[:2], np.asarray(sites[:2, :1]) * w / np.sqrt(5.0), atol=1e-12)


@pytest.fixture(scope="module")
def fits():
    """The same six families fitted with the pilot's frame (default length) and without (4 x (500 + 500))."""
    df = simulate_families(6)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", bs.SamplerWarning)
        framed = bs.ScalingModel(LAW, target="loss", group="family", pilot=True).fit(df, seed=0, init="pilot")
    assert not caught, [str(w.message) for w in caught]
    with warnings.catch_warnings():  # without the frame: slow to mix (a low-ESS warning)
        warnings.simplefilter("ignore", bs.SamplerWarning)
        plain = bs.ScalingModel(LAW, target="loss", group="family", pilot=False).fit(df, seed=1, **HALF, extend=0)
    return framed, plain


def test_the_frame_samples_the_same_posterior(fits):
    framed, plain = fits
    assert framed.options.target_accept_prob == 0.95 and plain.options.target_accept_prob == 0.9
    names = ["E_pop", "alpha_pop", "beta_pop", "A_spread", "alpha_spread", "beta_spread", "E[f2]", "alpha[f4]", "sigma"]
    assert_same_posterior(framed, plain, names)


def test_the_frame_cuts_leapfrog_steps_without_divergences(fits):
    # measured on these data, chain seeds 0-2: 31-36 steps per draw (15-23 on data seeds 1-5), min bulk ESS
    # ~2,000 of 4,000 draws and no divergences (0.95 target acceptance); without the frame, 4 x (500 + 500),
    # seeds 0-5: 91-104 steps, min ESS 64-331 of 2,000 draws
    framed, plain = fits
    steps = [float(f.idata.sample_stats["n_steps"].mean()) for f in fits]
    ess_per_draw = [float(f.summary()["ess_bulk"].min()) / f.idata.posterior.sizes["draw"] for f in fits]
    assert steps[0] < steps[1] / 2.5, steps
    assert ess_per_draw[0] > 2 * ess_per_draw[1], ess_per_draw
    assert int(framed.idata.sample_stats["diverging"].sum()) <= 1


def test_fit_many_keeps_the_binary_centring():
    # fit_many pads the groups of its data sets to one count, and the frame has a row per group of one
    df = simulate_families(3)
    df2 = simulate_families(3, seed=1)
    model = bs.ScalingModel(LAW, target="loss", group="family", pilot=True)
    _, args = framed_args(df)
    assert args.basis is not None and args.start is not None
    with warnings.catch_warnings():  # 100 draws a chain: diagnostics are not the point
        warnings.simplefilter("ignore", bs.SamplerWarning)
        fits = model.fit_many([df, df2], seed=0, chains=2, warmup=100, draws=100)
    for key in (0, 1):
        assert np.isfinite(fits[key].idata.posterior["alpha_pop"].values).all()
        assert fits[key].options.target_accept_prob == 0.9


def test_groups_that_measure_every_slope_are_framed():
    # Two model sizes under tokens that vary 20x (an over-training study's smallest runs) measure every term's slope,
    # not where the curve levels off: framed. Sizes over 1,000x on one data budget leave the data term to the
    # population: not framed (as before). Neither design measures every pooled parameter, the frame's first condition.
    rng = np.random.default_rng(3)
    frames = []
    for f in range(3):
        n = np.repeat([1.9e8, 3.7e8], 6)
        truth = {k: v * np.exp(SPREAD[k] * rng.standard_normal()) for k, v in POP.items()}
        runs = simulate(LAW, truth, {"N": n, "D": n * np.tile(np.geomspace(10.0, 200.0, 6), 2)}, sigma=0.01, seed=f)
        frames.append(runs.rename(columns={"y": "loss"}).assign(family=f"two sizes {f}"))
    n = np.geomspace(1e8, 1e11, 8)
    runs = simulate(LAW, POP, {"N": n, "D": np.full(8, 3e11)}, sigma=0.01, seed=9)
    frames.append(runs.rename(columns={"y": "loss"}).assign(family="one budget"))
    model, args = framed_args(pd.concat(frames, ignore_index=True))
    assert np.asarray(args.basis.framed).tolist() == [0.0, 1.0, 1.0, 1.0]  # groups in sorted order
    data = model.validate(pd.concat(frames, ignore_index=True))
    measured = measured_by_design(LAW, model.treatments, data.inputs, data.groups, 4)
    assert not np.asarray(measured["alpha"])[1:].any()  # their sizes do not measure alpha: framed for the slopes


def test_a_group_whose_fit_failed_is_sampled_as_without_the_frame():
    df = simulate_families(4)
    model, args = framed_args(df)
    data = model.validate(df)
    alone = fit_groups(LAW, model.likelihood, args, data.groups)
    population = population_of(alone, pooled_names(LAW, model.treatments))
    fits = fit_groups(LAW, model.likelihood, args, data.groups, population)  # as model_args fits them
    broken = GroupFits({k: v.copy() for k, v in fits.modes.items()}, fits.variances)
    broken.modes["alpha_z"][1] = np.nan
    measured = measured_by_design(LAW, model.treatments, data.inputs, data.groups, 4)
    basis = pooled_basis(LAW, model.likelihood, model.treatments, args, data.groups, broken, measured)
    assert np.asarray(basis.framed).tolist() == [1.0, 0.0, 1.0, 1.0] and np.asarray(args.basis.framed).all()
    assert np.all(np.asarray(basis.information)[1] == 0.0) and np.all(np.isfinite(np.asarray(basis.mode)))
    # its data still measure its level, for its scale with group_scale=True (at the other groups' typical alpha)
    level = np.asarray(basis.level_information)[1]
    assert np.all(np.isfinite(level)) and np.linalg.eigvalsh(level).max() > 0.0
    np.testing.assert_allclose(np.asarray(basis.information)[0], np.asarray(args.basis.information)[0])
    eigenvalues = np.linalg.eigvalsh(np.asarray(basis.information))
    assert eigenvalues.min() >= -1e-9 * eigenvalues.max()


def test_the_frame_is_expanded_where_each_group_sits_given_the_population():
    # At the population the groups' own fits place, a framed group's conditional mean is its mode
    # given that population: the likelihood's gradient there is what keeps it from its fit alone.
    df = simulate_families(4, seed=3)
    model, args = framed_args(df)
    data = model.validate(df)
    names = pooled_names(LAW, model.treatments)
    alone = fit_groups(LAW, model.likelihood, args, data.groups)
    population = population_of(alone, names)
    location = jnp.array([float(args.prior_loc[k] + args.prior_scale[k] * population[k][0]) for k in names])
    spread = jnp.array([float(args.prior_scale[k] * population[k][1]) for k in names])
    terms = pooled_level_terms(LAW, model.treatments)
    mean, _ = pooled.frame(location, spread, args.basis, coordinates=(names, terms))
    framed = np.asarray(args.basis.framed) > 0
    assert framed.all()
    np.testing.assert_allclose(np.asarray(mean), np.asarray(args.basis.mode), atol=1e-5)
    gradient = np.asarray(args.basis.gradient)
    assert np.abs(gradient).max() > 1e-2  # not the fit alone, where the gradient vanishes
    flat = args.basis._replace(gradient=jnp.zeros_like(args.basis.gradient))
    without = pooled.frame(location, spread, flat, coordinates=(names, terms))[0]
    assert np.abs(np.asarray(without) - np.asarray(args.basis.mode)).max() > 1e-3


def test_a_second_gauss_newton_step_finds_the_conditional_mode():
    # With a small spread the groups' values sit close to the population's location, away from the pilot's
    # modes, where one linearisation of the map from coordinates to values is off; the frame's second step
    # linearises it again at the first step's mean. Against the mode (steps repeated until they converge),
    # in units of the spread, the second step must be far closer than the first.
    df = simulate_families(4, seed=3)
    model, args = framed_args(df)
    names, terms = pooled_names(LAW, model.treatments), pooled_level_terms(LAW, model.treatments)
    basis = args.basis
    location = jnp.asarray(np.asarray(basis.values).mean(axis=0) + np.array([0.1, -0.1, 0.05, 0.1, -0.05]))
    spread = jnp.full(len(names), 1e-3)
    once = pooled.frame(location, spread, basis)[0]
    twice = pooled.frame(location, spread, basis, coordinates=(names, terms))[0]
    mode = once
    for _ in range(30):  # the likelihood's expansion kept, the population linearised at the last mean
        moved = jnp.einsum("gij,gj->gi", basis.information, mode - basis.mode)
        at = basis._replace(
            jacobian=pooled.jacobian(mode, names, terms),
            mode=mode,
            values=pooled.from_coordinates(mode, names, terms),
            gradient=basis.gradient + moved,
        )
        mode = pooled.frame(location, spread, at)[0]
    off = {
        how: np.abs(
            np.asarray(pooled.from_coordinates(m, names, terms) - pooled.from_coordinates(mode, names, terms))
        ).max()
        / 1e-3
        for how, m in (("once", once), ("twice", twice))
    }
    assert off["once"] > 10 and off["twice"] < off["once"] / 10, off
    # with more groups than pooled.FEW_GROUPS the spreads are measured and the frame takes one step
    many = jax.tree.map(lambda a: jnp.concatenate([a, a]), basis)
    assert many.mode.shape[0] > pooled.FEW_GROUPS >= basis.mode.shape[0]
    np.testing.assert_array_equal(pooled.frame(location, spread, many, coordinates=(names, terms))[0][:4], once)
    # and where a group is outside the frame, one step too (a second one did harm there, pooled's docstring)
    mixed = basis._replace(framed=basis.framed.at[1].set(0.0))
    np.testing.assert_array_equal(pooled.frame(location, spread, mixed, coordinates=(names, terms))[0], once)


def test_the_frame_does_not_depend_on_the_target_s_units():
    # the same families in other units: the reference scale moves the priors' locations of E, A and B,
    # not the likelihood's curvature in the level coordinates (one compiled Hessian serves both)
    df = simulate_families(4)
    _, args = framed_args(df)
    _, scaled = framed_args(df.assign(loss=10.0 * df["loss"]))
    np.testing.assert_allclose(np.asarray(scaled.basis.information), np.asarray(args.basis.information), rtol=1e-6)
