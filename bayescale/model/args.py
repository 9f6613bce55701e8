"""The numeric arguments of a model (a JAX pytree), their padding, and the sampling scale of parameters.

Every law parameter is sampled on its transformed scale (the log for positive parameters),
at the reference scale of its inputs, standardised by its prior and multiplied by
:data:`Z_SCALE`, so that NumPyro's shrinkage of the adapted mass matrix towards ``1e-3 * I``
is negligible against the posterior variance of well-measured parameters.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import NamedTuple

import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree

from bayescale.laws import Law
from bayescale.model.pooled import PooledBasis

Z_SCALE = 100.0  # sampling coordinates are Z_SCALE * (standardised value)


class ModelArgs(NamedTuple):
    """Everything numeric a model needs (and where its chains start); a JAX pytree, so it can be a jit argument."""

    log_x: dict  # law input -> log(x / x_ref), shape (rows,)
    observed: jnp.ndarray | None  # what the likelihood observes (log target, or counts), or None to simulate
    noise_log_sd: jnp.ndarray | None  # known per-row sd of log(y), or None
    prior_loc: dict  # parameter -> location on the sampling scale
    prior_scale: dict  # parameter -> scale on the sampling scale
    log_ref: dict  # law input -> log(x_ref)
    group: jnp.ndarray | None = None  # group code of every row
    group_ids: jnp.ndarray | None = None  # arange(number of groups); its length sets the plate size
    centred: dict | None = None  # pooled parameter -> 1.0 where a group's value is sampled centred, else 0.0
    trials: jnp.ndarray | None = None  # items per row, for a Binomial likelihood
    mask: jnp.ndarray | None = None  # False on the rows added by :func:`pad_rows`, which the likelihood skips
    start: tuple | None = None  # (point, sd): site -> where chains start and their initial scale (the pilot's)
    basis: PooledBasis | None = (
        None  # the pilot's measure of every group's pooled parameters (:mod:`bayescale.model.pooled`)
    )
    outer: jnp.ndarray | None = None  # outer group of every group, with ``ScalingModel(..., within=...)``
    outer_ids: jnp.ndarray | None = None  # arange(number of outer groups); its length sets the outer plate's size


ROW_FIELDS = ("observed", "noise_log_sd", "group", "trials")  # per-row leaves besides ``log_x``
MIN_ROWS = 16  # smallest padded row count (see :func:`row_bucket`)


def n_rows(args: ModelArgs) -> int:
    """Number of rows (runs) in ``args``, padding included."""
    return int(next(iter(args.log_x.values())).shape[-1])


def row_bucket(rows: int) -> int:
    """The padded row count for ``rows`` rows: at most 25% more, from a short list of sizes.

    Data of every length between two sizes share one compiled sampler (16, 20, 24, 28, 32,
    40, 48, 56, 64, 80, ...: four sizes per doubling), so a backtest that adds one run at a
    time, or a collection of data sets of different lengths, compiles a few times, not once
    per length.

    Examples
    --------
    >>> [row_bucket(n) for n in (1, 16, 17, 60, 240, 100_000)]
    [16, 16, 20, 64, 256, 114688]
    """
    if rows <= MIN_ROWS:
        return MIN_ROWS
    step = 2 ** ((rows - 1).bit_length() - 3)
    return -(-rows // step) * step


def padding_index(n: int, rows: int) -> np.ndarray:
    """Row index that pads ``n`` rows to ``rows``: the rows themselves, then copies of the first.

    Examples
    --------
    >>> padding_index(3, 5).tolist()
    [0, 1, 2, 0, 0]
    """
    if rows < n:
        raise ValueError(f"cannot pad {n} rows to {rows}")
    return np.concatenate([np.arange(n), np.zeros(rows - n, dtype=int)])


def pad_rows(args: ModelArgs, rows: int) -> ModelArgs:
    """``args`` with ``rows`` rows: copies of the first row appended and masked out of the likelihood.

    The copies hold valid values (no NaN reaches a gradient through the mask) and count
    for nothing: the log density, its gradient and the pointwise log likelihood of the
    real rows are unchanged.

    Examples
    --------
    >>> import jax.numpy as jnp
    >>> args = ModelArgs({"N": jnp.zeros(3)}, jnp.ones(3), None, {}, {}, {})
    >>> padded = pad_rows(args, 16)
    >>> padded.observed.shape, int(padded.mask.sum())
    ((16,), 3)
    """
    n = n_rows(args)
    index = padding_index(n, rows)
    take = lambda a: take_rows(a, index)  # noqa: E731
    mask = np.arange(rows) < n
    if args.mask is not None:
        mask &= np.asarray(args.mask)[index]
    return args._replace(
        log_x={k: take(v) for k, v in args.log_x.items()},
        mask=jnp.asarray(mask),
        **{name: take(getattr(args, name)) for name in ROW_FIELDS},
    )


def take_rows(values, index: np.ndarray):
    """``values`` (rows on the last axis, or ``None``) at the rows ``index``, taken on the host with NumPy
    (exact copies, and no gather program compiled for every new shape)."""
    return None if values is None else jnp.asarray(np.asarray(values)[..., index])


def z_site(name: str) -> str:
    """Name of the standardised sampling site behind law parameter ``name``."""
    return f"{name}_z"


def standardising_scale(z: Mapping) -> jnp.ndarray:
    """Per coordinate of ``ravel_pytree(z)``: sampling value / prior-standardised value.

    ``Z_SCALE`` for the standardised (``*_z``) sites, 1 for the rest (the noise scale
    and other sites sampled on their own scale). Damped Newton steps
    (:mod:`bayescale.sampler.laplace`) have isotropic damping, so they run on ``flat / scale``.

    Examples
    --------
    >>> import jax.numpy as jnp
    >>> standardising_scale({"A_z": jnp.zeros(2), "sigma": jnp.array(0.1)}).tolist()
    [100.0, 100.0, 1.0]
    """
    return ravel_pytree({k: jnp.full_like(v, Z_SCALE if k.endswith("_z") else 1.0) for k, v in z.items()})[0]


def from_transformed(law: Law, t: Mapping) -> dict:
    """Values on the sampling scale -> values (and logs, for positive parameters) for the law."""
    out = {}
    for par in law.parameters:
        if par.name not in t:
            continue
        if par.transform == "log":
            out[f"log_{par.name}"] = t[par.name]
            out[par.name] = jnp.exp(t[par.name])
        else:
            out[par.name] = t[par.name]
    return out


def to_transformed(law: Law, p: Mapping) -> dict:
    """Inverse of :func:`from_transformed`: the sampling-scale value of every parameter in ``p``."""
    return {
        par.name: p[f"log_{par.name}"] if par.transform == "log" else p[par.name]
        for par in law.parameters
        if par.name in p
    }
