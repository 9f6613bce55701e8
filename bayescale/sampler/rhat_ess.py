"""Rank-normalised split R-hat and bulk and tail ESS of many series at once, ArviZ's definitions.

ArviZ computes each series in a Python loop, one call per parameter, fit and statistic: for many
fits that loop, not the sampling, can be most of the time (``benchmarks/bench_health_table.py``).
These functions take arrays ``(..., chain, draw)`` and compute every series in the same numpy
operations. They follow
``arviz.rhat(method="rank")`` and ``arviz.ess(method="bulk" | "tail")`` (Vehtari et al. 2021)
step for step, Geyer's truncation included, and agree with them to rounding
(``tests/test_rhat_ess.py``); NaN where ArviZ gives NaN.
"""

from __future__ import annotations

import numpy as np
from scipy import fft, special, stats

MIN_DRAWS = 4  # ArviZ's shortest chains for either statistic
TAIL_PROBS = (0.05, 0.95)


def all_three(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`rhat`, :func:`ess_bulk` and :func:`ess_tail` of each series of ``x``, the ranks of the
    split chains computed once for the first two."""
    x = np.asarray(x, dtype=float)
    if x.shape[-1] < MIN_DRAWS:
        return rhat(x), ess_bulk(x), ess_tail(x)
    split = _split(x)
    z = _z_scale(split)
    return _rank_rhat(x, split, z), _nan_where_nan(x, _ess(z)), ess_tail(x)


def rhat(x: np.ndarray) -> np.ndarray:
    """Rank-normalised split R-hat of each series of ``x`` (``(..., chain, draw)``): the larger of the
    bulk's and the folded tail's. NaN for fewer than 2 chains or 4 draws, a NaN draw, or constant chains."""
    x = np.asarray(x, dtype=float)
    split = _split(x)
    return _rank_rhat(x, split, _z_scale(split))


def ess_bulk(x: np.ndarray) -> np.ndarray:
    """Bulk effective sample size of each series of ``x`` (``(..., chain, draw)``): of its rank-normalised
    split chains. NaN for fewer than 4 draws or a NaN draw."""
    x = np.asarray(x, dtype=float)
    if x.shape[-1] < MIN_DRAWS:
        return np.full(x.shape[:-2], np.nan)
    return _nan_where_nan(x, _ess(_z_scale(_split(x))))


def ess_tail(x: np.ndarray) -> np.ndarray:
    """Tail effective sample size of each series of ``x`` (``(..., chain, draw)``): the smaller of the
    ESS of the indicators below its 5% and 95% quantiles. NaN for fewer than 4 draws or a NaN draw."""
    x = np.asarray(x, dtype=float)
    if x.shape[-1] < MIN_DRAWS:
        return np.full(x.shape[:-2], np.nan)
    quantiles = np.quantile(x, TAIL_PROBS, axis=(-2, -1))  # type 7, as ArviZ's mquantiles(alphap=1, betap=1)
    below = [_ess(_split((x <= q[..., None, None]).astype(float))) for q in quantiles]
    return _nan_where_nan(x, np.minimum(*below))


def _nan_where_nan(x: np.ndarray, value: np.ndarray) -> np.ndarray:
    """``value`` with NaN for every series of ``x`` that has a NaN draw (the middle draw of an odd
    count too, which the split chains drop)."""
    return np.where(np.isnan(x).any(axis=(-2, -1)), np.nan, value)


def _rank_rhat(x: np.ndarray, split: np.ndarray, z: np.ndarray) -> np.ndarray:
    """:func:`rhat` from ``x``, its split chains and their normal scores ``z``."""
    chains, draws = x.shape[-2:]
    if chains < 2 or draws < MIN_DRAWS:
        return np.full(x.shape[:-2], np.nan)
    folded = np.abs(split - np.median(split, axis=(-2, -1), keepdims=True))
    return _nan_where_nan(x, np.maximum(_rhat(z), _rhat(_z_scale(folded))))


def _split(x: np.ndarray) -> np.ndarray:
    """Each chain's first and last halves as chains of their own (the middle draw of an odd count dropped)."""
    half = x.shape[-1] // 2
    return np.concatenate([x[..., :half], x[..., -half:]], axis=-2)


def _z_scale(x: np.ndarray) -> np.ndarray:
    """Normal scores of the ranks over each series' chains and draws (ties averaged; Blom's offset)."""
    flat = x.reshape(x.shape[:-2] + (-1,))
    ranks = stats.rankdata(flat, method="average", axis=-1)
    c = 3 / 8
    z = special.ndtri((ranks - c) / (flat.shape[-1] - 2 * c + 1))
    return np.where(np.isnan(flat).any(axis=-1, keepdims=True), np.nan, z).reshape(x.shape)


def _rhat(x: np.ndarray) -> np.ndarray:
    """Gelman-Rubin R-hat over the chains of each series."""
    draws = x.shape[-1]
    with np.errstate(divide="ignore", invalid="ignore"):
        between = draws * np.var(x.mean(axis=-1), axis=-1, ddof=1)
        within = np.var(x, axis=-1, ddof=1).mean(axis=-1)
        return np.sqrt((between / within + draws - 1) / draws)


def _ess(x: np.ndarray) -> np.ndarray:
    """Effective sample size of each series, by Geyer's initial positive and monotone sequences."""
    chains, draws = x.shape[-2:]
    size = chains * draws
    lead = x.shape[:-2]
    x = x.reshape((-1, chains, draws))
    centred = x - x.mean(axis=-1, keepdims=True)
    m = fft.next_fast_len(2 * draws)
    spectrum = np.fft.rfft(centred, n=m, axis=-1)
    acov = np.fft.irfft(spectrum * np.conjugate(spectrum), n=m, axis=-1)[..., :draws] / draws
    mean_acov = acov.mean(axis=1)  # (series, lag)
    mean_var = mean_acov[:, 0] * draws / (draws - 1.0)
    var_plus = mean_var * (draws - 1.0) / draws
    if chains > 1:
        var_plus = var_plus + np.var(x.mean(axis=-1), axis=-1, ddof=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        rho = 1.0 - (mean_var[:, None] - mean_acov) / var_plus[:, None]
    rho[:, 0] = 1.0
    # pairs (rho[2k], rho[2k+1]); ArviZ's loop reads pair k + 1 while pair k sums above zero, and stops at
    # the first pair that does not or where the pairs run out
    n_pairs = max(draws - 3, 0) // 2 + 1  # pairs 0 .. (draws - 3) // 2 are read at most
    pairs = rho[:, : 2 * n_pairs].reshape(-1, n_pairs, 2)
    sums = pairs.sum(axis=-1)
    not_positive = np.concatenate([~(sums[:, : n_pairs - 1] > 0), np.ones((len(x), 1), bool)], axis=1)
    read = not_positive.argmax(axis=1)  # J: pairs 1 .. J read (a NaN sum stops the loop too)
    rows = np.arange(len(x))
    last_even = pairs[rows, read, 0]
    kept = (sums[rows, read] >= 0) | (last_even > 0) | (read == 0)
    last_even = np.where(kept, last_even, 0.0)
    # the monotone sequence: each pair's sum at most the one before it, over pairs 0 .. J - 1
    before = np.arange(n_pairs)[None, :] < read[:, None]
    monotone = np.minimum.accumulate(np.where(before, sums, np.inf), axis=1)
    tau = -1.0 + 2.0 * np.where(before, monotone, 0.0).sum(axis=1) + last_even
    tau = np.maximum(tau, 1 / np.log10(size))
    ess = size / tau
    nan_read = np.isnan(np.where(before[..., None], pairs, 0.0)).any(axis=(1, 2)) | np.isnan(rho[:, 1])
    ess = np.where(nan_read | np.isnan(x).any(axis=(1, 2)), np.nan, ess)
    constant = (x.max(axis=(1, 2)) - x.min(axis=(1, 2))) < np.finfo(float).resolution
    return np.where(constant, float(size), ess).reshape(lead)
