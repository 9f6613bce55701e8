"""Compute budgets: the compute-optimal split of C = k N D, its inverse, and the cost of over-training.

Everything is computed per posterior draw, so every answer is a posterior:

- :func:`optimum`: for a law of model size ``N`` and data ``D`` and a budget ``C = k N D``
  (``k = 6``: Chinchilla-style FLOP counting), the ``N*`` and ``D*`` that minimise the
  law, and the loss ``L*`` there. In closed form when the law provides one
  (:meth:`Chinchilla.log_optimal_size <bayescale.laws.Chinchilla.log_optimal_size>`), else by
  bisection on the sign of the law's derivative in ``log N`` (exact far beyond the data,
  where the law is flat to float64 precision), compiled once and run on all draws and
  budgets together.
- :func:`allocation_exponents`: ``d log N* / d log C`` and ``d log D* / d log C``, by the
  implicit-function theorem at the optimum (exact, for any law).
- :func:`compute_for_loss`: the budget whose optimal loss is a target, by bisection in
  ``log C`` (``L*`` falls monotonically in ``C``); infinite where the target is at or below
  the irreducible loss of a draw.
- :func:`at_ratio`: the loss of runs at a fixed tokens-per-parameter ratio ``r = D / N``,
  and :func:`compute_at_ratio_for_loss`, the budget such a run needs for a given loss.

All in logs: budgets of ``1e30`` FLOPs and beyond neither overflow nor lose precision.
User-facing entry points are :meth:`ScalingFit.optimal <bayescale.ScalingFit.optimal>`,
:meth:`ScalingFit.compute_for <bayescale.ScalingFit.compute_for>` and
:meth:`ScalingFit.overtraining <bayescale.ScalingFit.overtraining>`, which return
:class:`BudgetPosterior` objects.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd

from bayescale.laws import Law
from bayescale.laws.base import with_logs


class Layout(NamedTuple):
    """Which quantities a budget table has, in order (jit returns dicts with sorted keys), and how to show them."""

    names: tuple[str, ...]
    linear: tuple[str, ...] = ()  # stored as themselves, not as logs
    hidden: tuple[str, ...] = ()  # left out of ``interval()`` unless asked for


OPTIMUM = Layout(("N", "D", "tokens_per_param", "loss", "a", "b"), linear=("a", "b"), hidden=("a", "b"))
INVERSE = Layout(("C", "N", "D"))
OVERTRAINING = Layout(
    ("N", "D", "loss", "optimal_loss", "penalty", "relative_penalty", "compute_multiplier"),
    linear=("penalty", "relative_penalty"),
)
FLOPS_PER_PARAMETER_TOKEN = 6.0  # C = 6 N D (Kaplan et al.; Hoffmann et al.)
SEARCH_HALF_WIDTH = 150.0  # numerical optimum searched for D / N within e^-300 .. e^300
# ... and first within e^-24 .. e^24 (1e-10 .. 1e10 tokens per parameter), where a law whose terms drift with
# size (farseer) has its optimum while, a hundred decades away, the drift makes the loss fall for ever
NEAR_HALF_WIDTH = 12.0
LOG_C_RANGE = (-50.0, 250.0)  # bisection bracket of log(C / k) for inverse problems
BISECTION_STEPS = 200


def check_law(law: Law) -> tuple[str, str]:
    """The law's (size, data) inputs; a clear error for laws that are not of two inputs."""
    if len(law.inputs) != 2:
        raise ValueError(
            f"compute-optimal allocation needs a law of model size and data (two inputs, C = k N D); "
            f"law {law.name!r} has inputs {list(law.inputs)}"
        )
    return law.inputs


def _log_loss(law: Law, p: Mapping, log_n, log_d):
    size, data = law.inputs
    return law.log_mean(p, {size: log_n, data: log_d})


def _numeric_log_n(law: Law, p: Mapping, s):
    """argmin over u = log N of log L(N = e^u, D = e^(s - u)), elementwise in ``s = log(C / k)``.

    Bisection on the sign of the derivative, not on function values: far beyond the data
    the law is flat to within float64 precision around its optimum (the irreducible term
    dominates), but the derivative's sign is still exact. The bracket is tokens per
    parameter within ``e^(2 * NEAR_HALF_WIDTH)`` where the derivative changes sign there (a
    law with one optimum: the same answer), else within ``e^(2 * SEARCH_HALF_WIDTH)``; NaN
    where it changes sign in neither.
    """
    grad = jax.grad(lambda v, s_: jnp.sum(_log_loss(law, p, v, s_ - v)))
    shape = jnp.broadcast_shapes(jnp.shape(s), *(jnp.shape(v) for v in p.values()))
    s = jnp.broadcast_to(s, shape)

    def bracket(half_width):
        lo, hi = s / 2.0 - half_width, s / 2.0 + half_width
        return lo, hi, (grad(lo, s) < 0) & (grad(hi, s) > 0)

    near_lo, near_hi, near = bracket(NEAR_HALF_WIDTH)
    wide_lo, wide_hi, wide = bracket(SEARCH_HALF_WIDTH)
    lo, hi = jnp.where(near, near_lo, wide_lo), jnp.where(near, near_hi, wide_hi)
    inside = near | wide

    def step(_, bracket):
        lo, hi = bracket
        mid = (lo + hi) / 2.0
        rising = grad(mid, s) > 0
        return jnp.where(rising, lo, mid), jnp.where(rising, mid, hi)

    lo, hi = jax.lax.fori_loop(0, BISECTION_STEPS, step, (lo, hi))
    return jnp.where(inside, (lo + hi) / 2.0, jnp.nan)


def log_optimum(law: Law, p: Mapping, log_c, k: float = FLOPS_PER_PARAMETER_TOKEN, method: str = "auto"):
    """``(log N*, log D*, log L*)`` at ``log C``, broadcast over parameter draws and budgets.

    Parameters
    ----------
    law : Law
        A law of two inputs (size, data).
    p : mapping
        Parameters in the user's units (arrays broadcasting against ``log_c``).
    log_c : array
        Log of the compute budget in FLOPs.
    k : float
        FLOPs per parameter and token: ``C = k N D``.
    method : {"auto", "closed", "numeric"}
        ``"auto"`` uses the law's closed form when it has one.

    Examples
    --------
    >>> import numpy as np
    >>> import bayescale as bs
    >>> p = {"E": 1.8169, "A": 482.01, "alpha": 0.3478, "B": 2085.43, "beta": 0.3658}  # Besiroglu et al.
    >>> log_n, log_d, log_l = log_optimum(bs.laws.Chinchilla(), p, np.log(5.88e23))
    >>> round(float(np.exp(log_d - log_n)), 1)   # tokens per parameter at Gopher's budget
    18.4
    """
    check_law(law)
    if method not in ("auto", "closed", "numeric"):
        raise ValueError(f"method must be 'auto', 'closed' or 'numeric', got {method!r}")
    p = with_logs(law, {key: jnp.asarray(v, dtype=float) for key, v in p.items()})
    s = jnp.asarray(log_c, dtype=float) - jnp.log(k)
    closed = getattr(law, "log_optimal_size", None)
    if method == "closed" and closed is None:
        raise ValueError(f"law {law.name!r} has no closed-form optimum; use method='numeric' or 'auto'")
    if closed is not None and method != "numeric":
        log_n = closed(p, s)
    else:
        log_n = _numeric_log_n(law, p, s)
    log_d = s - log_n
    return log_n, log_d, _log_loss(law, p, log_n, log_d)


def allocation_exponents(law: Law, p: Mapping, log_c, k: float = FLOPS_PER_PARAMETER_TOKEN):
    """Local exponents ``(a, b)`` of ``N* ~ C^a`` and ``D* ~ C^b`` at ``log C`` (``a + b = 1``).

    By the implicit-function theorem at the optimum ``f_u(u*, s) = 0`` of
    ``f(u, s) = log L(e^u, e^(s - u))``: ``du*/ds = -f_us / f_uu``. Constant in ``C`` for
    the Chinchilla law, where ``a = beta / (alpha + beta)``.
    """
    p = with_logs(law, {key: jnp.asarray(v, dtype=float) for key, v in p.items()})
    log_n, _, _ = log_optimum(law, p, log_c, k)
    s = jnp.asarray(log_c, dtype=float) - jnp.log(k)

    def f_u(u, s_):
        return jax.grad(lambda v: jnp.sum(_log_loss(law, p, v, s_ - v)))(u)

    f_uu = jax.grad(lambda u: jnp.sum(f_u(u, s)))(log_n)
    f_us = jax.grad(lambda s_: jnp.sum(f_u(log_n, s_)))(jnp.broadcast_to(s, jnp.shape(log_n)))
    a = -f_us / f_uu
    return a, 1.0 - a


def _bisect(g, shape):
    """Root in ``s`` of a decreasing ``g``, elementwise, within :data:`LOG_C_RANGE`; inf where none below."""
    lo = jnp.full(shape, LOG_C_RANGE[0])
    hi = jnp.full(shape, LOG_C_RANGE[1])

    def step(_, bracket):
        lo, hi = bracket
        mid = (lo + hi) / 2.0
        above = g(mid) > 0  # loss still above the target: need more compute
        return jnp.where(above, mid, lo), jnp.where(above, hi, mid)

    reachable = g(hi) < 0  # strictly below the target at the top of the range: the irreducible loss is not
    lo, hi = jax.lax.fori_loop(0, BISECTION_STEPS, step, (lo, hi))
    return jnp.where(reachable, (lo + hi) / 2.0, jnp.inf)


def compute_for_loss(law: Law, p: Mapping, log_loss, k: float = FLOPS_PER_PARAMETER_TOKEN):
    """``log C`` whose compute-optimal loss equals ``exp(log_loss)``; ``inf`` where unreachable.

    Unreachable means the target is at or below the loss the law approaches with
    unlimited compute (its irreducible term), within the bisection range of
    :data:`LOG_C_RANGE` (``C / k`` up to ``e^250``).
    """
    p = with_logs(law, {key: jnp.asarray(v, dtype=float) for key, v in p.items()})
    shape = jnp.broadcast_shapes(jnp.shape(log_loss), *(jnp.shape(v) for v in p.values()))

    def g(s):
        return log_optimum(law, p, s + jnp.log(k), k)[2] - log_loss

    return _bisect(g, shape) + jnp.log(k)


def at_ratio(law: Law, p: Mapping, log_c, ratio, k: float = FLOPS_PER_PARAMETER_TOKEN):
    """``(log N, log D, log L)`` of a run at ``D / N = ratio`` with ``C = k N D``."""
    p = with_logs(law, {key: jnp.asarray(v, dtype=float) for key, v in p.items()})
    s = jnp.asarray(log_c, dtype=float) - jnp.log(k)
    log_n = (s - jnp.log(ratio)) / 2.0
    log_d = log_n + jnp.log(ratio)
    return log_n, log_d, _log_loss(law, p, log_n, log_d)


def compute_at_ratio_for_loss(law: Law, p: Mapping, log_loss, ratio, k: float = FLOPS_PER_PARAMETER_TOKEN):
    """``log C`` at which runs with ``D / N = ratio`` reach ``exp(log_loss)``; ``inf`` where they cannot."""
    p = with_logs(law, {key: jnp.asarray(v, dtype=float) for key, v in p.items()})
    shape = jnp.broadcast_shapes(jnp.shape(log_loss), *(jnp.shape(v) for v in p.values()))

    def g(s):
        return at_ratio(law, p, s + jnp.log(k), ratio, k)[2] - log_loss

    return _bisect(g, shape) + jnp.log(k)


@partial(jax.jit, static_argnames=("law", "k", "method"))
def optimum_table(law: Law, p: Mapping, log_c, k: float, method: str = "auto") -> dict:
    """All per-draw quantities of :meth:`ScalingFit.optimal`, shape (draws, budgets), compiled."""
    p = {key: v[:, None] for key, v in p.items()}
    log_n, log_d, log_l = log_optimum(law, p, log_c[None, :], k, method)
    a, b = allocation_exponents(law, p, log_c[None, :], k)
    return {"N": log_n, "D": log_d, "tokens_per_param": log_d - log_n, "loss": log_l, "a": a, "b": b}


@partial(jax.jit, static_argnames=("law", "k"))
def inverse_table(law: Law, p: Mapping, log_loss, k: float) -> dict:
    """All per-draw quantities of :meth:`ScalingFit.compute_for`, shape (draws, targets), compiled."""
    p = {key: v[:, None] for key, v in p.items()}
    log_c = compute_for_loss(law, p, log_loss[None, :], k)
    finite = jnp.isfinite(log_c)
    log_n, log_d, _ = log_optimum(law, p, jnp.where(finite, log_c, 0.0), k)
    return {"C": log_c, "N": jnp.where(finite, log_n, jnp.inf), "D": jnp.where(finite, log_d, jnp.inf)}


@partial(jax.jit, static_argnames=("law", "k"))
def overtraining_table(law: Law, p: Mapping, log_c, ratio, k: float) -> dict:
    """Per-draw quantities of :meth:`ScalingFit.overtraining`, shape (draws, budgets), compiled."""
    p = {key: v[:, None] for key, v in p.items()}
    log_c = log_c[None, :]
    log_n, log_d, log_l = at_ratio(law, p, log_c, ratio, k)
    _, _, log_opt = log_optimum(law, p, log_c, k)
    log_c_needed = compute_at_ratio_for_loss(law, p, log_opt, ratio, k)
    return {
        "N": log_n,
        "D": log_d,
        "loss": log_l,
        "optimal_loss": log_opt,
        "penalty": jnp.exp(log_l) - jnp.exp(log_opt),
        "relative_penalty": jnp.expm1(log_l - log_opt),
        "compute_multiplier": log_c_needed - log_c,
    }


def quantiles(draws: np.ndarray, q) -> np.ndarray:
    """``np.quantile(draws, q, axis=0)`` (linear interpolation) that keeps infinite draws infinite.

    NumPy interpolates ``inf + (inf - inf) * t`` to NaN when both neighbours are infinite;
    here equal neighbours give themselves, so a quantile inside a run of ``inf`` is ``inf``.
    """
    ordered = np.sort(draws, axis=0)
    position = np.asarray(q, dtype=float) * (ordered.shape[0] - 1)
    below = np.floor(position).astype(int)
    above = np.minimum(below + 1, ordered.shape[0] - 1)
    lo, hi = ordered[below], ordered[above]
    fraction = (position - below).reshape((-1,) + (1,) * (ordered.ndim - 1))
    with np.errstate(invalid="ignore"):
        return np.where(lo == hi, lo, lo + (hi - lo) * fraction)


class BudgetPosterior:
    """Posterior draws of budget quantities (``N``, ``D``, ``loss``, ...) at several budgets or targets.

    Draws are kept as logs; :meth:`draws` returns them in natural units. Rows are the
    budgets (or target losses) asked for, with the group when the fit has groups.

    Examples
    --------
    >>> opt = fit.optimal(C=[1e22, 5.88e23])        # doctest: +SKIP
    >>> opt.interval(0.8)                           # doctest: +SKIP
    >>> opt.draws("tokens_per_param").shape         # doctest: +SKIP
    (4000, 2)
    """

    def __init__(
        self,
        rows: pd.DataFrame,
        log_draws: Mapping[str, np.ndarray],
        *,
        linear: tuple[str, ...] = (),
        hidden: tuple[str, ...] = (),
    ):
        self.rows = rows
        self._log = {k: np.asarray(v) for k, v in log_draws.items()}
        self._linear = set(linear)  # quantities stored as themselves, not as logs
        self._hidden = set(hidden)  # left out of interval() unless asked for

    @property
    def quantities(self) -> tuple[str, ...]:
        return tuple(self._log)

    def draws(self, quantity: str) -> np.ndarray:
        """Draws of ``quantity`` in natural units, shape (posterior draws, rows)."""
        if quantity not in self._log:
            raise KeyError(f"no quantity {quantity!r}; quantities: {list(self._log)}")
        values = self._log[quantity]
        return values if quantity in self._linear else np.exp(values)

    def interval(self, level: float = 0.9, quantities: list[str] | None = None) -> pd.DataFrame:
        """Tidy table: the row columns, ``quantity``, ``median``, ``lower``, ``upper`` (equal-tailed).

        Infinite draws (a target loss some draws can never reach) are kept: an upper bound
        of ``inf`` means more than ``(1 - level) / 2`` of the posterior cannot reach it.
        """
        if not 0 < level < 1:
            raise ValueError(f"level must be in (0, 1), got {level!r}")
        names = list(quantities) if quantities is not None else [q for q in self._log if q not in self._hidden]
        frames = []
        for name in names:
            lower, median, upper = quantiles(self.draws(name), [(1 - level) / 2, 0.5, (1 + level) / 2])
            table = self.rows.assign(quantity=name, median=median, lower=lower, upper=upper)
            frames.append(table)
        return pd.concat(frames, ignore_index=True)

    def probability(self, quantity: str, below: float) -> pd.DataFrame:
        """Posterior probability that ``quantity`` is at most ``below``, per row."""
        return self.rows.assign(probability=np.mean(self.draws(quantity) <= below, axis=0))

    def _repr_html_(self) -> str:
        """A notebook's view: the 90% intervals of every quantity."""
        return f"<p>{self!r}</p>" + self.interval(0.9).to_html(float_format=lambda v: f"{v:.4g}")

    def __repr__(self) -> str:
        n_draws, n_rows = next(iter(self._log.values())).shape
        return f"BudgetPosterior({n_rows} rows x {n_draws} draws: {', '.join(self._log)})"
