"""NUTS warmup: dual-averaged step size and a mass matrix pooled over chains.

NumPyro's warmup (Stan's) estimates each chain's mass matrix from that chain's draws
alone, in windows of 25, 50, 100, ... draws, with a shrinkage towards ``1e-3 * I``. For
a hierarchical model of 51 dimensions the first dense windows have fewer draws than
dimensions: the estimate is singular, the shrinkage fills its null space with variances
of ~1e-4, and the chain crawls there at the maximum tree depth. On 8 families x 40
Chinchilla runs, the first 300 of 1,000 warmup iterations took 15 of the fit's 20
seconds (~900 leapfrog steps per iteration, against 28 once adapted).

Here the windows are the same, but each chain's covariance is shrunk towards the
pooled within-chain covariance of all chains of the fit by ``d / (n + d)`` (``d``
dimensions, ``n`` draws in the chain's window), and the pooled one towards its diagonal
by ``(d / (N + d))**2`` (``N`` pooled draws): in the first windows a chain borrows the
other chains' draws (mostly their variances), in the last it uses nearly its own. Stan's
shrinkage towards ``1e-3 * I`` is kept when ``regularize`` is set.

Measured (``benchmarks/bench_hierarchical_fit.py``, ``pilot=True``): 17.6 s -> 9.2 s
warm, 6 -> 0 divergences in 3 fits. Pooling fully (one matrix for all chains) was
faster still (8.9 s) but gave 18-38 divergences where per-chain estimates gave 0-2 (a
funnel's local scales differ between chains); only the first windows need the help.
The chains still move independently; only their warmup tuning is shared. The step
size is tuned per chain by NumPyro's dual averaging, restarted after every window from
10 times the current step size (as NumPyro does).
"""

from __future__ import annotations

from typing import NamedTuple

import jax.numpy as jnp
from jax.flatten_util import ravel_pytree
from jax.scipy.linalg import solve_triangular
from numpyro.infer.hmc_util import dual_averaging

START_BUFFER = 75  # iterations before the first window: step size only (Stan's)
END_BUFFER = 50  # iterations after the last window: step size only (Stan's)
FIRST_WINDOW = 25  # the first mass-matrix window; each next one doubles (Stan's)

_da_init, _da_update = dual_averaging()


class WarmupState(NamedTuple):
    """One chain's adaptation state: dual averaging and a Welford sum of its draws."""

    dual_averaging: tuple
    mean: jnp.ndarray  # (d,) running mean of the window's draws
    m2: jnp.ndarray  # (d, d) running sum of outer products of deviations
    count: jnp.ndarray  # draws in the window


def schedule(warmup: int) -> list[tuple[int, bool]]:
    """Warmup as segments ``(length, collect)``: a window (``collect``) or a buffer.

    Stan's layout: a start buffer, windows doubling from :data:`FIRST_WINDOW` (the last
    one stretched to the end buffer), an end buffer. Warmups shorter than the three
    together are split 15% / 75% / 10%, and below 20 iterations there is no window.

    Examples
    --------
    >>> schedule(1000)
    [(75, False), (25, True), (50, True), (100, True), (200, True), (500, True), (50, False)]
    """
    if warmup < 20:
        return [(warmup, False)] if warmup else []
    start, end, first = START_BUFFER, END_BUFFER, FIRST_WINDOW
    if start + end + first > warmup:
        start, end = int(0.15 * warmup), int(0.1 * warmup)
        first = warmup - start - end
    segments, position, size = [(start, False)], start, first
    last = warmup - end
    while position < last:
        if 3 * size > last - position:  # the next window would not fit whole: stretch this one
            size = last - position
        segments.append((size, True))
        position += size
        size *= 2
    segments.append((end, False))
    return [(length, collect) for length, collect in segments if length]


def init(z, step_size) -> WarmupState:
    """A fresh state for a chain at ``z`` whose dual averaging starts from ``step_size``."""
    flat, _ = ravel_pytree(z)
    d = flat.shape[0]
    zero = jnp.zeros((), dtype=flat.dtype)
    return WarmupState(_da_init(jnp.log(10.0) + jnp.log(step_size)), jnp.zeros(d), jnp.zeros((d, d)), zero)


def update(state: WarmupState, z, accept_prob, target_accept_prob, collect) -> tuple[WarmupState, jnp.ndarray]:
    """One iteration: the next step size, and ``z`` added to the window when ``collect``."""
    da = _da_update(target_accept_prob - accept_prob, state.dual_averaging)
    finfo = jnp.finfo(jnp.result_type(float))
    step_size = jnp.clip(jnp.exp(da[0]), finfo.tiny, finfo.max)
    flat, _ = ravel_pytree(z)
    count = state.count + 1
    delta = flat - state.mean
    mean = state.mean + delta / count
    m2 = state.m2 + jnp.outer(delta, flat - mean)
    keep = lambda new, old: jnp.where(collect, new, old)  # noqa: E731
    return WarmupState(da, keep(mean, state.mean), keep(m2, state.m2), keep(count, state.count)), step_size


def final_step_size(state: WarmupState) -> jnp.ndarray:
    """The averaged step size dual averaging converged to (used for sampling)."""
    return jnp.exp(state.dual_averaging[1])


def inverse_mass(states: WarmupState, dense: bool, regularize: bool) -> jnp.ndarray:
    """Every chain's inverse mass matrix from the window's draws (chains on the leading axis of ``states``).

    Each chain's covariance is shrunk towards the pooled within-chain covariance of all
    chains by ``d / (n + d)`` (``n`` draws per chain), the pooled one towards its own
    diagonal by ``(d / (N + d))**2`` (``N`` pooled draws). Returns ``(chains, d, d)``
    matrices when ``dense``, else ``(chains, d)`` diagonals.
    """
    n = states.count.astype(float)  # (chains,)
    d = states.mean.shape[-1]
    own = states.m2 / jnp.maximum(n - 1.0, 1.0)[:, None, None]
    total = jnp.sum(n)
    pooled = jnp.sum(states.m2, axis=0) / jnp.maximum(total - n.shape[0], 1.0)
    variance = jnp.diagonal(pooled)
    pooled = pooled + (d / (total + d)) ** 2 * (jnp.diag(variance) - pooled)
    weight = (d / (n + d))[:, None, None]
    cov = (1.0 - weight) * own + weight * pooled
    if not dense:
        cov = jnp.diagonal(cov, axis1=-2, axis2=-1)
    if regularize:
        scale = (n / (n + 5.0))[:, None, None] if dense else (n / (n + 5.0))[:, None]
        shrink = 1e-3 * (5.0 / (n + 5.0))
        cov = scale * cov + (shrink[:, None, None] * jnp.identity(d) if dense else shrink[:, None])
    return cov


def mass_factors(inverse_mass: jnp.ndarray) -> tuple[jnp.ndarray, jnp.ndarray]:
    """``(mass_matrix_sqrt, mass_matrix_sqrt_inv)`` as NumPyro's NUTS expects them."""
    if inverse_mass.ndim == 1:
        root = jnp.sqrt(inverse_mass)
        return 1.0 / root, root
    # NumPyro's convention: the transpose of the Cholesky factor of the reversed matrix
    sqrt_inv = jnp.swapaxes(jnp.linalg.cholesky(inverse_mass[::-1, ::-1])[::-1, ::-1], -2, -1)
    sqrt = solve_triangular(sqrt_inv, jnp.identity(inverse_mass.shape[-1]), lower=True)
    return sqrt, sqrt_inv
