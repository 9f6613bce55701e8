"""The field's usual estimator, as a baseline: a Huber point fit on the log target, with bootstrap intervals.

Hoffmann et al. (2022) and Besiroglu et al. (2024) fit ``log L`` with a Huber loss (delta
``1e-3``) by L-BFGS from a grid of starts; Besiroglu et al. give intervals by refitting to
rows resampled with replacement. :func:`bootstrap` does that for any law of a
:class:`~bayescale.ScalingModel` without groups, and predicts a new run as each refit's curve
plus a residual of the full fit drawn at random (the bootstrap's observation noise). Its
predictions are :class:`~bayescale.Prediction` objects, scored like a posterior's.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
from scipy.optimize import minimize

from bayescale.data import prediction_inputs
from bayescale.model.args import from_transformed
from bayescale.model.arguments import log_references, model_args
from bayescale.results.prediction import Prediction, as_frame

HUBER_DELTA = 1e-3  # Besiroglu et al.'s
STARTS = 24  # random starts of the full-data fit (prior draws), besides the prior median
TIGHT = {"ftol": 1e-15, "gtol": 1e-10, "maxiter": 5000}  # the default tolerances stop at the start


@dataclass
class BootstrapFit:
    """Refits of a law to resampled rows (:func:`bootstrap`); ``predict`` gives a :class:`~bayescale.Prediction`.

    Attributes
    ----------
    params : dict of numpy.ndarray
        Each refit's parameters at the reference scale, sampling coordinates (what the
        law evaluates), shape (refits,).
    residuals : numpy.ndarray
        The full-data fit's residuals of ``log(target)``, resampled as new runs' noise.
    """

    spec: object
    log_refs: dict
    params: dict
    residuals: np.ndarray
    seed: int

    def predict(self, data: pd.DataFrame | None = None, /, **inputs) -> Prediction:
        """The refits' curves (``kind="mean"``) and new runs (``kind="observation"``) at new inputs."""
        law = self.spec.law
        frame = as_frame(data, inputs, law.inputs)
        values = prediction_inputs(frame, law.inputs, self.spec.inputs)
        log_x = {x: jnp.asarray(np.log(values[x]) - self.log_refs[x]) for x in law.inputs}
        p = {k: jnp.asarray(v)[:, None] for k, v in self.params.items()}
        log_mean = np.asarray(law.log_mean(from_transformed(law, p), log_x))
        log_mean = np.broadcast_to(log_mean, (len(self.residuals_draws), len(frame)))
        noise = self.residuals_draws[:, None]
        return Prediction(pd.DataFrame(values, index=frame.index), log_mean, log_mean + noise)

    @functools.cached_property
    def residuals_draws(self) -> np.ndarray:
        n = len(next(iter(self.params.values())))
        return np.random.default_rng(self.seed).choice(self.residuals, size=n, replace=True)


def bootstrap(spec, data: pd.DataFrame, *, n: int = 200, seed: int = 0) -> BootstrapFit:
    """Besiroglu et al.'s estimator for ``spec``'s law: a Huber fit and ``n`` refits to resampled rows.

    The full-data fit starts from the prior medians and :data:`STARTS` prior draws and keeps
    the best; each refit starts from it. Only models without groups and with a likelihood on
    ``log(target)``.

    Examples
    --------
    >>> boot = bootstrap(bs.ScalingModel("chinchilla"), df, n=200, seed=0)      # doctest: +SKIP
    >>> boot.predict(N=7e10, D=1.4e12).interval(0.9)                           # doctest: +SKIP
    """
    if spec.group is not None or spec.counts:
        raise ValueError("the bootstrap baseline fits one curve of log(target): no groups, no Binomial likelihood")
    scaling_data = spec.validate(data)
    log_refs = log_references(spec, scaling_data)
    args = model_args(spec, scaling_data, log_refs, pilot=False)
    names = spec.law.parameter_names
    loc = np.array([float(args.prior_loc[k]) for k in names])
    scale = np.array([float(args.prior_scale[k]) for k in names])
    value_and_grad = _objective(spec.law, names)
    log_x = {k: jnp.asarray(v) for k, v in args.log_x.items()}
    observed = jnp.asarray(args.observed)
    rows = len(scaling_data.target)

    def fit(start, weights):
        w = jnp.asarray(weights, dtype=float)

        def f(z):
            value, grad = value_and_grad(jnp.asarray(z), jnp.asarray(loc), jnp.asarray(scale), log_x, observed, w)
            return float(value), np.asarray(grad, dtype=float)

        return minimize(f, start, jac=True, method="L-BFGS-B", options=TIGHT)

    rng = np.random.default_rng(seed)
    ones = np.ones(rows)
    starts = [np.zeros(len(names))] + list(rng.standard_normal((STARTS, len(names))))
    best = min((fit(z, ones) for z in starts), key=lambda r: r.fun)
    refits = []
    for _ in range(n):
        weights = np.bincount(rng.integers(0, rows, rows), minlength=rows)
        refits.append(fit(best.x, weights).x)
    z = np.array(refits)
    params = {k: loc[i] + scale[i] * z[:, i] for i, k in enumerate(names)}
    full = {k: loc[i] + scale[i] * best.x[i] for i, k in enumerate(names)}
    fitted = np.asarray(spec.law.log_mean(from_transformed(spec.law, full), log_x))
    return BootstrapFit(spec, log_refs, params, np.asarray(observed) - fitted, seed)


@functools.cache
def _objective(law, names: tuple[str, ...]):
    """The compiled Huber objective of ``law`` and its gradient, in prior-standardised coordinates."""

    def objective(z, loc, scale, log_x, observed, weights):
        t = {k: loc[i] + scale[i] * z[i] for i, k in enumerate(names)}
        r = observed - law.log_mean(from_transformed(law, t), log_x)
        huber = jnp.where(jnp.abs(r) <= HUBER_DELTA, 0.5 * r**2, HUBER_DELTA * (jnp.abs(r) - 0.5 * HUBER_DELTA))
        return jnp.sum(weights * huber) / (HUBER_DELTA * jnp.sum(weights))

    return jax.jit(jax.value_and_grad(objective))
