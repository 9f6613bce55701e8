"""Warmup of a dense mass matrix (bayescale.sampler.adaptation): windows, shrinkage, and what it buys."""

from __future__ import annotations

from dataclasses import replace
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from numpyro.infer.hmc import hmc
from numpyro.infer.hmc_util import dual_averaging, welford_covariance

import bayescale as bs
from bayescale.sampler import adaptation
from bayescale.sampler.adaptation import END_BUFFER, FIRST_WINDOW, START_BUFFER, shrunk_covariance, windows
from bayescale.sampler.options import DENSE_MAX_DIM, LOCKSTEP_WARMUP_TREE_DEPTH, NUTSOptions, dimension
from bayescale.sampler.progress import Progress
from bayescale.sampler.runner import Runner, chunks, sample_batches
from tests.conftest import sites_of
from tests.test_hierarchy import LAW, simulate_families
from tests.test_laplace_start import runner, saturating


@pytest.mark.parametrize("warmup", [20, 60, 99, 100, 150, 500, 1000, 1001, 5000])
def test_windows_double_between_the_buffers(warmup):
    spans = windows(warmup)
    starts, ends = np.array([a for a, _ in spans]), np.array([b for _, b in spans])
    np.testing.assert_array_equal(starts[1:], ends[:-1] + 1)  # contiguous
    assert np.all(ends >= starts)
    if warmup >= START_BUFFER + FIRST_WINDOW + END_BUFFER:
        assert starts[0] == START_BUFFER and ends[-1] == warmup - END_BUFFER - 1
        lengths = ends - starts + 1
        np.testing.assert_array_equal(lengths[:-1], FIRST_WINDOW * 2 ** np.arange(len(lengths) - 1))
        assert len(lengths) == 1 or lengths[-1] >= 2 * lengths[-2]  # the last one absorbs the remainder
    else:  # Stan's proportions for short warmups
        assert spans == [(int(0.15 * warmup), warmup - int(0.1 * warmup) - 1)]
    assert windows(19) == []


def welford(draws: np.ndarray):
    init, update, _ = welford_covariance(diagonal=False)
    state = init(draws.shape[1])
    for x in draws:
        state = update(x, state)
    return state


def test_a_window_with_fewer_draws_than_dimensions_gives_a_full_rank_matrix():
    rng = np.random.default_rng(0)
    d, n = 40, 25
    scale = np.geomspace(0.01, 100.0, d)
    draws = rng.standard_normal((n, d)) @ np.triu(np.ones((d, d))) * scale  # correlated, badly scaled
    cov, sqrt, sqrt_inv = (np.asarray(m) for m in shrunk_covariance(welford(draws)))
    sample = np.cov(draws, rowvar=False)
    assert np.linalg.matrix_rank(sample) == n - 1  # NumPyro would keep only its 1e-3 ridge in d - n + 1 directions
    w = (d / (n + d)) ** 2
    ridge = 1e-3 * 5 / (n + 5)
    np.testing.assert_allclose(cov, (1 - w) * sample + w * np.diag(np.diag(sample)) + ridge * np.eye(d), rtol=1e-10)
    np.testing.assert_allclose(np.diag(cov), np.diag(sample) + ridge, rtol=1e-10)  # the variances are kept
    assert np.linalg.eigvalsh(cov).min() > 0.01 * w * np.diag(sample).min()
    # NumPyro's conventions (checked on its own estimate): sqrt_inv' sqrt_inv is the inverse mass matrix and
    # sqrt sqrt' the mass matrix, sqrt lower triangular
    theirs = [np.asarray(m) for m in welford_covariance(diagonal=False)[2](welford(draws), regularize=True)]
    for c, s, s_inv in ([cov, sqrt, sqrt_inv], theirs):
        np.testing.assert_allclose(s_inv.T @ s_inv, c, rtol=1e-8, atol=1e-12 * np.abs(c).max())
        assert np.allclose(s, np.tril(s))
    precision = np.linalg.inv(cov)
    np.testing.assert_allclose(sqrt @ sqrt.T, precision, rtol=1e-6, atol=1e-9 * np.abs(precision).max())


def test_with_many_draws_the_window_estimate_is_the_sample_covariance():
    rng = np.random.default_rng(1)
    d, n = 30, 3000
    draws = rng.standard_normal((n, d)) @ rng.standard_normal((d, d))
    cov = np.asarray(shrunk_covariance(welford(draws))[0])
    sample = np.cov(draws, rowvar=False)
    # shrinkage weight (30 / 3030)^2 ~ 1e-4 of the off-diagonal; the ridge 1.7e-6
    np.testing.assert_allclose(cov, sample, atol=2e-4 * np.abs(sample).max())


def test_the_default_applies_where_numpyro_s_first_estimate_is_singular():
    small = {"a": ((FIRST_WINDOW - 1,), 1.0)}
    large = {"a": ((FIRST_WINDOW,), 1.0)}
    assert not NUTSOptions().resolved(dimension(small), 64).diagonal_shrinkage
    assert NUTSOptions().resolved(dimension(large), 64).diagonal_shrinkage
    assert not NUTSOptions(dense_mass=False).resolved(dimension(large), 64).diagonal_shrinkage
    assert not NUTSOptions(adapt_mass_matrix=False).resolved(dimension(large), 64).diagonal_shrinkage
    assert NUTSOptions(diagonal_shrinkage=True).resolved(dimension(small), 64).diagonal_shrinkage
    with pytest.raises(ValueError, match="needs dense_mass=True"):
        NUTSOptions(dense_mass=False, diagonal_shrinkage=True).resolved(dimension(large), 64)


def warmup_steps(model, df, seed: int, iterations: int = 1000, **options) -> int:
    """Leapfrog steps of the first ``iterations`` of one chain's 1,000 warmup iterations."""
    run, args = runner(model, df, warmup=1000, **options)
    state = run._init(jax.random.key(seed), args, args.start)
    _, (_, info) = run.advance(iterations)(state, args, run.options.target_accept_prob)
    return int(info["n_steps"].sum())


def test_a_hierarchy_warms_up_in_fewer_leapfrog_steps():
    # 7 families x 3 pooled parameters: 28 dimensions, more than NumPyro's first window's 25 draws
    df, _ = simulate_families()
    model = bs.ScalingModel(LAW, group="family", pilot=False)  # as measured: random starts, no frame
    assert NUTSOptions().resolved(dimension(sites_of(model, 7)), 64).diagonal_shrinkage
    ours = [warmup_steps(model, df, seed) for seed in range(2)]
    numpyro = [warmup_steps(model, df, seed, diagonal_shrinkage=False) for seed in range(2)]
    # measured 1.79x (246,357 against 441,392 steps, two chains each), 1.49x with XLA limited to AVX
    # (XLA_FLAGS=--xla_cpu_max_isa=AVX: other rounding, other chains); 1.3x leaves room for that variation
    assert sum(numpyro) > 1.3 * sum(ours), (ours, numpyro)


def test_the_matrix_changes_at_window_ends_only():
    # the matrix changes at the first window's end, and only at window ends
    df, _ = simulate_families()
    model = bs.ScalingModel(LAW, group="family", pilot=False)  # as measured: random starts, no frame
    run, args = runner(model, df, warmup=200)
    state = run._init(jax.random.key(0), args, args.start)
    first_end = adaptation.windows(200)[0][1]
    before = np.asarray(state.adapt_state.inverse_mass_matrix)
    state, _ = run.advance(first_end)(state, args, run.options.target_accept_prob)  # iterations 0 .. first_end - 1
    np.testing.assert_array_equal(np.asarray(state.adapt_state.inverse_mass_matrix), before)
    state, _ = run.advance(1)(state, args, run.options.target_accept_prob)  # the window's last iteration
    after = np.asarray(state.adapt_state.inverse_mass_matrix)
    assert not np.allclose(after, before)
    assert np.all(np.linalg.eigvalsh(after) > 0)


def test_the_pilot_s_start_cuts_warmup_steps():
    # random starts with the identity matrix spend their first ~100 iterations at the tree-depth limit
    df, _ = simulate_families()
    model = bs.ScalingModel(LAW, group="family", pilot=True)
    assert NUTSOptions().resolved(dimension(sites_of(model, 7)), 64, has_start=True).init == "pilot"  # the default
    # the start alone, without the pilot's cap on warmup trees (test_the_pilot_s_warmup_caps_the_tree_depth)
    pilot = warmup_steps(model, df, 0, iterations=100, init="pilot", warmup_max_tree_depth=10)
    random = warmup_steps(model, df, 0, iterations=100, init="random")
    # first 100 iterations, measured 3.7x over two seeds (39,244 against 144,347 steps; 2.7-4.9x per seed over four)
    assert random > 2 * pilot, (pilot, random)


def test_the_pilot_s_warmup_caps_the_tree_depth():
    # from the pilot's start the first windows' step sizes are still 5-8x the final ones: trees of up to 2^6 - 1
    # steps there, the full depth after warmup
    df, _ = simulate_families()
    model = bs.ScalingModel(LAW, group="family", pilot=True)
    sites = sites_of(model, 7)
    options = NUTSOptions(init="pilot").resolved(dimension(sites), 64, has_start=True)
    assert (options.warmup_max_tree_depth, options.max_tree_depth) == (6, 10)
    assert (
        NUTSOptions(init="pilot", max_tree_depth=4).resolved(dimension(sites), 64, has_start=True).warmup_max_tree_depth
        == 4
    )
    assert NUTSOptions().resolved(dimension(sites), 64).warmup_depth(lockstep=False) == 10
    assert NUTSOptions(warmup_max_tree_depth=7).resolved(dimension(sites), 64).warmup_depth(lockstep=True) == 7
    assert options.warmup_depth(lockstep=True) == 6  # the pilot's cap, in a batch too
    capped, full = (
        runner(model, df, warmup=1000, init="pilot", warmup_max_tree_depth=depth) for depth in (None, 10)
    )  # fmt: skip
    steps = []
    for run, args in (capped, full):
        state = run._init(jax.random.key(0), args, args.start)
        steps.append(np.asarray(run.advance(100)(state, args, run.options.target_accept_prob)[1][1]["n_steps"]))
    assert steps[0].max() <= 2**6 - 1 < steps[1].max(), (steps[0].max(), steps[1].max())
    with pytest.raises(ValueError, match="warmup_max_tree_depth must be an integer in"):
        NUTSOptions(warmup_max_tree_depth=0)


def test_a_vectorised_batch_of_many_fits_caps_its_warmup_trees():
    # in a batch every iteration lasts as long as its longest tree; random starts spend their first iterations
    # at the full depth (on 200 simulated fits: 86,235 leapfrog steps in lockstep over the warmup against
    # 24,883 capped, with the same ESS and share of healthy fits)
    model = bs.ScalingModel(bs.laws.SaturatingPowerLaw("N"), target="loss", inputs={"N": "N"})
    (run, args), chains, sets = runner(model, saturating(), init="random"), 2, 3
    assert run.options.warmup_max_tree_depth is None  # left to the run
    batch = Runner(run.model, run.sites, 500, run.options, "batch", report=run.report)
    stacked = jax.tree_util.tree_map(lambda a: jnp.stack([a] * sets), args)
    keys = jax.vmap(lambda s: jax.random.split(jax.random.key(s), chains))(jnp.arange(sets))
    given = Runner(run.model, run.sites, 500, replace(run.options, warmup_max_tree_depth=10), "batch")
    steps = []
    for r, k, a in ((batch, keys, stacked), (run, keys[0, 0], args), (given, keys, stacked)):
        state = r._init(k, a, None)
        steps.append(np.asarray(r.advance(50)(state, a, run.options.target_accept_prob)[1][1]["n_steps"]).max())
    assert steps[0] <= 2**LOCKSTEP_WARMUP_TREE_DEPTH - 1 < min(steps[1:]), steps  # one chain, or a depth given


def test_an_estimate_can_be_shrunk_towards_the_matrix_in_force():
    # from the pilot's start (init="pilot") the first windows' estimates lean on the informed matrix
    rng = np.random.default_rng(2)
    d, n = 30, 25
    draws = rng.standard_normal((n, d)) * np.linspace(1.0, 50.0, d)
    target = np.diag(np.linspace(1.0, 50.0, d) ** 2)
    cov = np.asarray(shrunk_covariance(welford(draws), jax.numpy.asarray(target))[0])
    w = adaptation.shrinkage(n, d)
    expected = (1 - w) * np.cov(draws, rowvar=False) + w * target + adaptation.RIDGE * 5 / (n + 5) * np.eye(d)
    np.testing.assert_allclose(cov, expected, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize(("target", "dense"), [(0.8, False), (0.99, True)])
def test_the_step_size_adapts_as_numpyro_s_warmup_does(target, dense):
    # adaptation.adapting adapts the step size with the target as an argument (one compiled sampler for every
    # target); on NumPyro's kernel it reproduces NumPyro's own warmup, mass matrix windows included
    scales = jnp.array([1.0, 10.0, 0.1])
    potential = lambda z: 0.5 * jnp.sum((z / scales) ** 2)  # noqa: E731
    warmup, iterations = 150, 200

    def run(ours: bool):
        init_kernel, sample_kernel = hmc(potential_fn=potential, algo="NUTS")
        state = init_kernel(
            jnp.ones(3), warmup, adapt_step_size=not ours, dense_mass=dense, target_accept_prob=target,
            rng_key=jax.random.key(0),
        )  # fmt: skip
        if ours:
            adapt = adaptation.adapting(sample_kernel, warmup, 3)
            step = jax.jit(lambda s: adapt(s, (), jnp.asarray(target)))
        else:
            step = jax.jit(lambda s: sample_kernel(s, model_args=()))
        steps = []
        for _ in range(iterations):
            state = step(state)
            steps.append(float(state.adapt_state.step_size))
        return np.array(steps), np.asarray(state.adapt_state.inverse_mass_matrix)

    (ours, matrix), (numpyro, numpyro_matrix) = run(True), run(False)
    np.testing.assert_allclose(ours, numpyro, rtol=1e-9)
    np.testing.assert_allclose(matrix, numpyro_matrix, rtol=1e-9)
    assert len(set(ours[warmup:])) == 1  # fixed after warmup


def test_a_pooled_window_end_estimates_one_matrix_from_every_chain_s_draws():
    # Welford's counts of the chains merged: the covariance of all the window's draws, the spread between
    # the chains' means included, shrunk with the pooled count; each chain's step size restarts from its own
    rng = np.random.default_rng(3)
    chains, n, d = 4, 25, 30
    draws = [rng.standard_normal((n, d)) * np.linspace(0.1, 3.0, d) + 2.0 * c for c in range(chains)]
    steps = jnp.array([0.1, 0.2, 0.3, 0.4])
    init, _, _ = welford_covariance(diagonal=False)
    in_force = jnp.stack([jnp.eye(d) * (c + 1.0) for c in range(chains)])
    stacked = jax.tree_util.tree_map(lambda *a: jnp.stack(a), *[welford(x) for x in draws])

    class Adapt(NamedTuple):
        step_size: jnp.ndarray
        inverse_mass_matrix: jnp.ndarray
        mass_matrix_sqrt: jnp.ndarray
        mass_matrix_sqrt_inv: jnp.ndarray
        ss_state: tuple
        mm_state: tuple

    adapt = Adapt(steps, in_force, in_force, in_force, jax.vmap(lambda s: s)(steps), stacked)
    for toward_previous, target in ((False, None), (True, jnp.eye(d) * 2.5)):
        out = adaptation.pooled_window_end(adapt, toward_previous=toward_previous)
        expected = shrunk_covariance(welford(np.concatenate(draws)), target)
        for c in range(chains):
            for got, want in zip(
                (out.inverse_mass_matrix, out.mass_matrix_sqrt, out.mass_matrix_sqrt_inv), expected, strict=True
            ):
                np.testing.assert_allclose(np.asarray(got[c]), np.asarray(want), rtol=1e-9, atol=1e-12)
        for c in range(chains):
            restarted = dual_averaging()[0](jnp.log(10 * steps[c]))  # as adaptation.adapting's window end
            for got, want in zip(jax.tree_util.tree_leaves(out.ss_state), restarted, strict=True):
                np.testing.assert_allclose(np.asarray(got[c]), np.asarray(want), rtol=1e-12)
            for got, fresh in zip(
                jax.tree_util.tree_leaves(out.mm_state), jax.tree_util.tree_leaves(init(d)), strict=True
            ):
                np.testing.assert_array_equal(np.asarray(got[c]), np.asarray(fresh))


@pytest.mark.parametrize(("warmup", "draws"), [(1000, 1000), (200, 50), (300, 7), (90, 90)])
def test_a_pooled_warmup_s_chunks_end_where_windows_do(warmup, draws):
    breaks = {end + 1 for end in adaptation.window_ends(warmup)}
    for bar in (False, True):
        warm, sampled = chunks(warmup, draws, bar, breaks)
        assert sum(warm) == warmup and sum(sampled) == draws
        assert breaks <= set(np.cumsum(warm).tolist())


def test_one_fit_s_chains_share_the_matrix_their_pooled_warmup_estimated():
    # the chains run in threads; between the warmup's segments their windows are pooled, so they leave the
    # warmup with one matrix (each with its own step size); with pooled_warmup=False each has its own
    df, _ = simulate_families()
    model = bs.ScalingModel(LAW, group="family")
    matrices = {}
    for pooled in (True, False):
        run, args = runner(model, df, warmup=200, pooled_warmup=pooled)
        assert run.pooled is pooled and run.options.diagonal_shrinkage
        tasks = [(k, args, args.start) for k in jax.random.split(jax.random.key(0), 3)]
        out = run.run_threads(tasks, 50, Progress(False, 0, ""), target=run.options.target_accept_prob)
        matrices[pooled] = [np.asarray(state.adapt_state.inverse_mass_matrix) for _, _, state in out]
        assert all(stats["diverging"].shape == (50,) for _, stats, _ in out)
    for m in matrices[True][1:]:
        np.testing.assert_array_equal(m, matrices[True][0])
    assert not np.allclose(matrices[False][1], matrices[False][0])
    # vectorised chains (GPU and TPU's default) pool between the calls of one program for all chains
    run, args = runner(model, df, warmup=200, pooled_warmup=True)
    chains = Runner(run.model, run.sites, 200, run.options, "chains", report=run.report)
    keys = jax.random.split(jax.random.key(0), 3)
    _, stats, state = chains.run_chains(keys, args, args.start, 50, Progress(False, 0, ""), target=0.95)
    vectorised = np.asarray(state.adapt_state.inverse_mass_matrix)
    assert stats["diverging"].shape == (3, 50)
    for m in vectorised[1:]:
        np.testing.assert_array_equal(m, vectorised[0])


def test_many_fits_keep_each_chain_s_own_warmup():
    with pytest.raises(ValueError, match="pooled_warmup pools one fit's chains"):
        sample_batches(None, {}, 1, {}, seeds=np.zeros(1, int), chains=2, warmup=10, draws=10,
                       options=NUTSOptions(pooled_warmup=True), report=())  # fmt: skip


def test_the_warmup_is_pooled_where_asked_for_one_fit():
    # off by default (measured mixed, docs/sampler.md); a choice for one fit's chains, not for many fits'
    assert not NUTSOptions(dense_mass=True).resolved(DENSE_MAX_DIM + 1, 64).pooled_warmup
    assert NUTSOptions(pooled_warmup=True).resolved(DENSE_MAX_DIM, 64).pooled_warmup
    assert not NUTSOptions().resolved(DENSE_MAX_DIM, 64, many=True).pooled_warmup
    with pytest.raises(ValueError, match="fit_many keeps each chain's own warmup"):
        NUTSOptions(pooled_warmup=True).resolved(DENSE_MAX_DIM, 64, many=True)
    with pytest.raises(ValueError, match="needs bayescale's warmup of a dense matrix"):
        NUTSOptions(pooled_warmup=True, dense_mass=False).resolved(DENSE_MAX_DIM, 64)
