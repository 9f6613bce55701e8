"""Posterior modes and their curvature: damped Newton steps and the Laplace approximation.

Scaling-law models have a few to a few dozen unconstrained parameters, so exact
Hessians are cheap and Newton's method converges in a handful of steps where it
converges at all. Two users: :mod:`bayescale.model.pilot` (every group fitted alone, to
choose a parameterisation) and :mod:`bayescale.sampler.runner` (every chain starts at the
mode nearest its random start, with the inverse Hessian there as NUTS' initial inverse
mass matrix).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp

NEWTON_STEPS = 100  # most damped Newton steps from the start (most fits converge in 10-30)
STOP_DECREMENT = 1e-10  # Newton stops where half the squared Newton decrement, g' H^-1 g / 2, is below this
CONVERGED_DECREMENT = 1e-6  # ... and :func:`laplace` trusts a mode below this (units of log density)


class Laplace(NamedTuple):
    """The result of :func:`laplace`: a mode, the inverse Hessian there, and whether both can be trusted."""

    mode: jnp.ndarray
    covariance: jnp.ndarray
    ok: jnp.ndarray  # a scalar bool


def newton(f: Callable[[jnp.ndarray], jnp.ndarray], y0: jnp.ndarray, steps: int = NEWTON_STEPS) -> jnp.ndarray:
    """Minimise ``f`` by Levenberg-Marquardt-damped Newton steps from ``y0`` (exact Hessians).

    Robust where a line search gives up (curved, weakly identified laws): a step that does
    not lower ``f`` is refused and the damping raised; an accepted one lowers the damping.
    Stops after ``steps`` steps, or earlier at a mode (:func:`decrement` below
    :data:`STOP_DECREMENT`).

    Examples
    --------
    >>> import jax.numpy as jnp
    >>> y = newton(lambda y: jnp.sum((y - 3.0) ** 4 + (y - 3.0) ** 2), jnp.zeros(2))
    >>> [round(float(v), 6) for v in y]
    [3.0, 3.0]
    """
    return _descend(f, y0, steps)[0]


def _descend(f, y0, steps):
    """:func:`newton`'s search; returns the point reached and ``f``, its gradient and Hessian there.

    Every iteration evaluates ``f``, its gradient and its Hessian once, at the candidate
    point, in one forward-over-reverse pass, so the compiled loop holds one copy of the
    model's derivatives (compiling them is most of the cost of a small model's start).
    """
    eye = jnp.eye(y0.size)

    def evaluate(y):
        def gradient(y):
            value, g = jax.value_and_grad(f)(y)
            return g, (value, g)

        h, (value, g) = jax.jacfwd(gradient, has_aux=True)(y)
        return value, g, h

    def going(state):
        i, *_, converged = state
        return (i < steps) & ~converged

    def step(state):
        i, candidate, y, fy, g, h, damping, _ = state
        fc, gc, hc = evaluate(candidate)
        better = jnp.isfinite(fc) & (fc < fy)
        y, fy, g, h = (jnp.where(better, new, old) for new, old in ((candidate, y), (fc, fy), (gc, g), (hc, h)))
        damping = jnp.where(better, damping / 3.0, damping * 4.0)
        converged = jnp.isfinite(fy) & (decrement(g, h) < STOP_DECREMENT)
        return i + 1, y - jnp.linalg.solve(h + damping * eye, g), y, fy, g, h, damping, converged

    # the first iteration evaluates y0 itself (accepted unless f is not finite there)
    start = (0, y0, y0, jnp.asarray(jnp.inf, y0.dtype), jnp.zeros_like(y0), eye, 3.0, False)
    _, _, y, fy, g, h, _, _ = jax.lax.while_loop(going, step, start)
    return y, fy, g, h


def decrement(gradient: jnp.ndarray, hessian: jnp.ndarray) -> jnp.ndarray:
    """Half the squared Newton decrement, ``g' H^-1 g / 2``: how far above its mode a quadratic ``f`` is.

    NaN where ``hessian`` is not positive definite (so that no comparison calls it small).

    Examples
    --------
    >>> import jax.numpy as jnp
    >>> float(decrement(jnp.array([2.0]), jnp.array([[4.0]])))
    0.5
    """
    cholesky = jnp.linalg.cholesky(hessian)
    return 0.5 * gradient @ jax.scipy.linalg.cho_solve((cholesky, True), gradient)


def laplace(f: Callable[[jnp.ndarray], jnp.ndarray], y0: jnp.ndarray, steps: int = NEWTON_STEPS) -> Laplace:
    """The Laplace approximation of ``exp(-f)`` at the mode :func:`newton` reaches from ``y0``.

    ``ok`` is False where that point is not a mode one can trust: ``f`` not finite there,
    a Hessian that is not positive definite, or a Newton :func:`decrement` above
    :data:`CONVERGED_DECREMENT` (not converged within ``steps``, as where the density
    has no mode: a hierarchical model's funnel, whose density grows without bound as
    the groups' spread shrinks). Traceable: ``ok`` is an array, not a Python bool.

    Examples
    --------
    >>> import jax.numpy as jnp
    >>> precision = jnp.array([[2.0, 0.5], [0.5, 1.0]])
    >>> fit = laplace(lambda y: 0.5 * (y - 1.0) @ precision @ (y - 1.0), jnp.zeros(2))
    >>> bool(fit.ok), [round(float(v), 4) for v in fit.mode]
    (True, [1.0, 1.0])
    >>> bool(jnp.allclose(fit.covariance, jnp.linalg.inv(precision)))
    True
    >>> bool(laplace(lambda y: -jnp.sum(y**2), jnp.ones(2)).ok)   # a maximum, not a mode
    False
    """
    y, value, gradient, hessian = _descend(f, y0, steps)
    covariance = jnp.linalg.inv(hessian)
    ok = jnp.isfinite(value) & (decrement(gradient, hessian) < CONVERGED_DECREMENT) & jnp.all(jnp.isfinite(covariance))
    return Laplace(y, covariance, ok)
