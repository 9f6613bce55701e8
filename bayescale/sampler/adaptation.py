"""Warmup of a dense mass matrix: earlier windows, each estimate shrunk towards its diagonal.

NumPyro's warmup (Stan's) adapts the step size for 75 iterations from an identity mass
matrix, then estimates the matrix at the ends of windows of 25, 50, 100, ... draws and
shrinks each estimate towards ``1e-3 * I``. With more dimensions than draws the estimate
is singular: in the directions the draws did not span it keeps only that small ridge,
and the next window's trajectories run to the tree-depth limit to cross them. On the
hierarchical Chinchilla benchmark (8 families x 40 runs, 51 dimensions) the first 250
of 1,000 warmup iterations took ~230,000 of a chain's ~260,000 leapfrog steps (the
identity matrix, then estimates from 25 and 50 draws); from the 100-draw window on, an
iteration took ~35 steps.

Here the first window starts after :data:`START_BUFFER` iterations (the chains of a fit
reach the typical set within ~25 on that benchmark) and each window's sample covariance
``S`` of ``n`` draws in ``d`` dimensions is shrunk towards its own diagonal,
``(1 - w) S + w diag(S)`` with ``w = (d / (n + d))**2`` (:func:`shrinkage`): full rank
from the first window on (every coordinate moved), mostly diagonal while ``n`` is small
against ``d``, and within 1% of ``S`` by the 500-draw window, where a larger pull
towards the diagonal would cost sampling efficiency along strongly correlated
directions. The step size's dual averaging restarts at every window end, as in NumPyro.
Same benchmark: a chain's warmup from ~231,000 to ~93,000 leapfrog steps; the draws are
the same posterior (``tests/test_hierarchy.py::test_the_same_posterior_as_numpyro_s_warmup``).

From an informed initial matrix (``init="pilot"``, :mod:`bayescale.model.pilot`) each estimate
is shrunk towards the matrix in force instead (same weight): 25 noisy draws do not replace a
good guess, and each window refines the last. (With the pilot's start and shrinkage towards
the diagonal, 3 of 11 fits of 7 saturating-law families had a chain with 35-61 divergences;
towards the matrix in force, none of 13 on the same CPU, though 2 of 6 with XLA limited to AVX.)

It runs on NumPyro's kernel with ``adapt_mass_matrix=False``, and :func:`adapting` sets
the matrix (and its square roots, as NumPyro stores them) between iterations, keeping the
window's running covariance (Welford's, NumPyro's own) in the adaptation state's unused
``mm_state``.

The step size is adapted here too, for every fit (:func:`step_size_adapting`): NumPyro's
dual averaging, restarted where NumPyro's does, with the target acceptance an argument of
the compiled sampler. NumPyro's warmup closes over its target, so a rerun at a higher
target (:meth:`~bayescale.sampler.options.NUTSOptions.rerun`) would compile a second sampler.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.linalg import solve_triangular
from numpyro.infer.hmc_util import build_adaptation_schedule, dual_averaging, welford_covariance

START_BUFFER = 25  # iterations before the first window (step size only)
FIRST_WINDOW = 25  # draws in the first window; each next window doubles
END_BUFFER = 50  # iterations after the last window (step size only, as in Stan)
RIDGE = 1e-3  # NumPyro's (Stan's) ridge, weighted 5 / (n + 5), kept for a coordinate that never moved


def windows(warmup: int) -> list[tuple[int, int]]:
    """The adaptation windows of a warmup of ``warmup`` iterations: ``(first, last)`` iteration of each.

    Windows double in length from :data:`FIRST_WINDOW`; the last one absorbs a remainder
    shorter than twice its length, and it ends :data:`END_BUFFER` iterations before the
    warmup does. Warmups too short for that keep Stan's proportions instead (15% start
    buffer, 10% end buffer, one window between); under 20 iterations there is no window.

    Examples
    --------
    >>> windows(1000)
    [(25, 49), (50, 99), (100, 199), (200, 399), (400, 949)]
    >>> windows(60)
    [(9, 53)]
    """
    start, first, end = START_BUFFER, FIRST_WINDOW, END_BUFFER
    if warmup < 20:
        return []
    if start + first + end > warmup:
        start, end = int(0.15 * warmup), int(0.1 * warmup)
        first = warmup - start - end
    out, size, stop = [], first, warmup - end
    while start < stop:
        last = start + size if start + 3 * size <= stop else stop
        out.append((start, last - 1))
        start, size = last, 2 * size
    return out


def shrinkage(n, d: int):
    """Weight of the diagonal in a window's estimate from ``n`` draws in ``d`` dimensions: ``(d / (n + d))**2``."""
    return (d / (n + d)) ** 2


def shrunk_covariance(welford_state, target=None) -> tuple[jnp.ndarray, jnp.ndarray, jnp.ndarray]:
    """The window's estimate from Welford's ``(mean, m2, n)``: ``(inverse mass matrix, its inverse square
    root, its square root)``, the three matrices NumPyro keeps (``HMCAdaptState``). Shrunk towards
    ``target`` where given, else towards the sample's own diagonal."""
    _, m2, n = welford_state
    d = m2.shape[-1]
    sample = m2 / (n - 1)
    w = shrinkage(n, d)
    target = jnp.diag(jnp.diag(sample)) if target is None else target
    cov = (1.0 - w) * sample + w * target + RIDGE * 5.0 / (n + 5.0) * jnp.eye(d)
    # as numpyro.infer.hmc_util.welford_covariance: tril_inv lower triangular, tril_inv' tril_inv = cov
    tril_inv = jnp.swapaxes(jnp.linalg.cholesky(cov[::-1, ::-1])[::-1, ::-1], -2, -1)
    return cov, solve_triangular(tril_inv, jnp.eye(d), lower=True), tril_inv


def step_size_adapting(warmup: int) -> Callable:
    """NumPyro's step-size adaptation (``numpyro.infer.hmc_util.warmup_adapter``) with the target acceptance
    an argument: ``update(adapt, t, accept_prob, target)`` after warmup iteration ``t``.

    Dual averaging of ``log(step size)`` towards ``target``; the last warmup iteration takes the
    average. At the end of each middle window of NumPyro's schedule (where NumPyro's kernel, run with
    ``adapt_step_size=False``, still updates its own mass matrix) the averaging restarts from ten times
    the current step, as NumPyro's does without its heuristic step-size search (``hmc``'s default).
    """
    schedule = np.asarray(build_adaptation_schedule(warmup)).reshape(-1, 2)
    # the iterations after which the averaging restarts; -1 (no iteration) where there is no middle window
    restarts = jnp.asarray(schedule[1:-1, 1]) if len(schedule) > 2 else jnp.full(1, -1)
    ss_init, ss_update = dual_averaging()

    def update(adapt, t, accept_prob, target):
        ss_state = ss_update(target - accept_prob, adapt.ss_state)
        log_step_size, log_step_size_avg, *_ = ss_state
        step_size = jnp.where(t == warmup - 1, jnp.exp(log_step_size_avg), jnp.exp(log_step_size))
        finfo = jnp.finfo(jnp.result_type(step_size))
        step_size = jnp.clip(step_size, finfo.tiny, finfo.max)
        ss_state = jax.lax.cond(
            jnp.any(t == restarts), lambda: ss_init(jnp.log(10.0) + jnp.log(step_size)), lambda: ss_state
        )
        return adapt._replace(step_size=step_size, ss_state=ss_state)

    return update


def adapting(
    sample_kernel: Callable,
    warmup: int,
    dimension: int,
    *,
    step_size: bool = True,
    shrunk: bool = False,
    toward_previous: bool = False,
    pooled: bool = False,
) -> Callable:
    """Wrap NumPyro's ``sample_kernel`` (run with ``adapt_step_size=False``, and with
    ``adapt_mass_matrix=False`` where ``shrunk``) so that it adapts what NumPyro's does not.

    The returned ``step(state, model_args, target)`` runs one NUTS iteration, then during
    warmup adapts the step size towards the acceptance ``target`` (:func:`step_size_adapting`)
    where ``step_size``. With ``shrunk`` it also adapts a dense matrix: it adds the draw to the
    window's running covariance while inside a window of :func:`windows`, and at a window's last
    iteration replaces the matrix by :func:`shrunk_covariance` and restarts the step size's dual
    averaging (from ten times the current step, as NumPyro does). With ``toward_previous`` each
    estimate is shrunk towards the matrix in force instead of its own diagonal: for chains that
    start with an informed matrix (the pilot's, ``init="pilot"``), not NumPyro's identity.
    """
    adapt_step = step_size_adapting(warmup) if step_size and warmup else None
    spans = windows(warmup) if shrunk else []
    welford_init, welford_update, _ = welford_covariance(diagonal=False)
    step_size_init, _ = dual_averaging()
    first, last = (spans[0][0], spans[-1][1]) if spans else (0, -1)
    ends = jnp.array([end for _, end in spans])

    def window_end(adapt):
        inverse_mass, sqrt, sqrt_inv = shrunk_covariance(
            adapt.mm_state, adapt.inverse_mass_matrix if toward_previous else None
        )
        return adapt._replace(
            inverse_mass_matrix=inverse_mass,
            mass_matrix_sqrt=sqrt,
            mass_matrix_sqrt_inv=sqrt_inv,
            mm_state=welford_init(dimension),
            ss_state=step_size_init(jnp.log(10.0 * adapt.step_size)),
        )

    def step(state, model_args, target):
        state = sample_kernel(state, model_args=model_args)
        t = state.i - 1  # the iteration just run
        adapt = state.adapt_state
        if adapt_step is not None:
            adapt = jax.lax.cond(t < warmup, lambda a: adapt_step(a, t, state.accept_prob, target), lambda a: a, adapt)
        if spans:
            inside = (t >= first) & (t <= last)
            adapt = adapt._replace(
                mm_state=jax.lax.cond(inside, lambda: welford_update(state.z, adapt.mm_state), lambda: adapt.mm_state)
            )
            if not pooled:
                adapt = jax.lax.cond(jnp.any(t == ends), window_end, lambda a: a, adapt)
        return state._replace(adapt_state=adapt)

    return step


def window_ends(warmup: int) -> list[int]:
    """The warmup iterations (0-based) after which a pooled warmup ends a window: :func:`windows`' last ones."""
    return [end for _, end in windows(warmup)]


def pooled_window_end(adapt, toward_previous: bool = False):
    """End a window of every chain at once: ``adapt`` holds the chains' adaptation states stacked
    on a leading axis; each gets the matrix estimated from all chains' draws of the window.

    Welford's counts of the chains are merged (Chan et al.'s pairwise update): the covariance of
    all the window's draws, the spread between the chains' means included. Chains that sit in
    different parts of a ridge then share a matrix that spans it, and ``chains`` times the draws
    estimate it (a 60-dimensional matrix from 25 draws of one chain is mostly its diagonal). The
    step size's dual averaging restarts for each chain from ten times its own step, as in
    :func:`adapting`; the estimate is shrunk towards the chains' mean matrix in force with
    ``toward_previous``, else towards its own diagonal. Only the warmup pools: the draws that
    follow are each chain's own, with the matrix fixed.
    """
    mean, m2, n = adapt.mm_state
    total = jnp.sum(n)
    pooled_mean = jnp.sum(n[:, None] * mean, axis=0) / total
    offset = mean - pooled_mean
    pooled_m2 = jnp.sum(m2, axis=0) + jnp.einsum("c,ci,cj->ij", n.astype(offset.dtype), offset, offset)
    target = jnp.mean(adapt.inverse_mass_matrix, axis=0) if toward_previous else None
    inverse_mass, sqrt, sqrt_inv = shrunk_covariance((pooled_mean, pooled_m2, total), target)
    chains = n.shape[0]
    welford_init, _, _ = welford_covariance(diagonal=False)
    step_size_init, _ = dual_averaging()
    fresh = welford_init(pooled_mean.shape[0])
    return adapt._replace(
        inverse_mass_matrix=jnp.broadcast_to(inverse_mass, (chains, *inverse_mass.shape)),
        mass_matrix_sqrt=jnp.broadcast_to(sqrt, (chains, *sqrt.shape)),
        mass_matrix_sqrt_inv=jnp.broadcast_to(sqrt_inv, (chains, *sqrt_inv.shape)),
        mm_state=jax.tree_util.tree_map(lambda a: jnp.broadcast_to(a, (chains, *jnp.shape(a))), fresh),
        ss_state=jax.vmap(step_size_init)(jnp.log(10.0 * adapt.step_size)),
    )
