"""Posterior predictions at new inputs: the mean curve and new observations, with intervals."""

from __future__ import annotations

from collections.abc import Mapping

import jax
import numpy as np
import pandas as pd

from bayescale._arviz import az
from bayescale.laws import Law

KINDS = ("observation", "mean")
METHODS = ("eti", "hdi")


class Prediction:
    """Posterior draws of a law at new input rows.

    ``kind="observation"`` is a new measured value, with the fitted noise (posterior
    predictive); ``kind="mean"`` is the law's curve itself (no observation noise).
    Draws are pooled over chains, one row per posterior draw.

    Examples
    --------
    >>> pred = fit.predict(N=[7e10], D=[1.4e12])    # doctest: +SKIP
    >>> pred.interval(0.9)                          # doctest: +SKIP
                  N             D    median     lower     upper
    0  7.000000e+10  1.400000e+12  1.93...   1.89...   1.97...
    """

    def __init__(self, inputs: pd.DataFrame, log_mean: np.ndarray, log_observation: np.ndarray) -> None:
        self.inputs = inputs
        self._log = {"mean": log_mean, "observation": log_observation}

    def draws(self, kind: str = "observation") -> np.ndarray:
        """Draws in the target's units, shape (posterior draws, rows)."""
        return np.exp(self._log[_check_kind(kind)])

    def quantiles(self, q, kind: str = "observation") -> pd.DataFrame:
        """Posterior quantiles ``q`` (floats in [0, 1]) per row, one column per quantile."""
        q = np.atleast_1d(np.asarray(q, dtype=float))
        if np.any((q < 0) | (q > 1)):
            raise ValueError(f"quantiles must be in [0, 1], got {q.tolist()}")
        values = np.quantile(self.draws(kind), q, axis=0).T
        return pd.concat(
            [self.inputs, pd.DataFrame(values, columns=[f"q{x:g}" for x in q], index=self.inputs.index)], axis=1
        )

    def interval(self, level: float = 0.9, kind: str = "observation", method: str = "eti") -> pd.DataFrame:
        """Median and credible interval per row.

        Parameters
        ----------
        level : float
            Probability mass inside the interval, in (0, 1).
        kind : {"observation", "mean"}
            A new observation (with noise) or the mean curve.
        method : {"eti", "hdi"}
            Equal-tailed interval, or highest-density interval (via ``arviz.hdi``).

        Returns
        -------
        pandas.DataFrame
            The input columns, then ``median``, ``lower``, ``upper``.
        """
        if not 0 < level < 1:
            raise ValueError(f"level must be in (0, 1), got {level!r}")
        if method not in METHODS:
            raise ValueError(f"method must be one of {METHODS}, got {method!r}")
        draws = self.draws(kind)
        median = np.median(draws, axis=0)
        if method == "eti":
            lower, upper = np.quantile(draws, [(1 - level) / 2, (1 + level) / 2], axis=0)
        else:
            bounds = az.hdi(draws[np.newaxis], hdi_prob=level)
            lower, upper = bounds[..., 0], bounds[..., 1]
        table = pd.DataFrame({"median": median, "lower": lower, "upper": upper}, index=self.inputs.index)
        return pd.concat([self.inputs, table], axis=1)

    def __repr__(self) -> str:
        n_draws, n_rows = self._log["mean"].shape
        return f"Prediction({n_rows} rows x {n_draws} posterior draws)"


def _check_kind(kind: str) -> str:
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    return kind


_PREDICTORS: dict = {}


def predictor(law: Law, likelihood):
    """Compiled ``(params, log_ref, log_x, key) -> (log_mean, log_observation)`` for a law (cached)."""
    cache_key = (law, likelihood)
    if cache_key not in _PREDICTORS:

        def one_draw(p_user, log_ref, log_x):
            return law.log_mean(law.to_reference(p_user, log_ref), log_x)

        def run(params, log_ref, log_x, rng_key):
            log_mean = jax.vmap(one_draw, in_axes=(0, None, None))(params, log_ref, log_x)
            noise = {k: params[k][:, None] for k in likelihood.parameter_names}
            d = likelihood.distribution(log_mean, noise["sigma"], noise)
            return log_mean, d.sample(rng_key)

        _PREDICTORS[cache_key] = jax.jit(run)
    return _PREDICTORS[cache_key]


def as_frame(data, inputs: Mapping, law_inputs: tuple[str, ...]) -> pd.DataFrame:
    """Turn ``predict``'s arguments (a DataFrame or keywords) into a DataFrame of law inputs."""
    if data is not None and inputs:
        raise TypeError("give the new inputs either as a DataFrame or as keywords, not both")
    if data is None:
        if not inputs:
            raise TypeError(f"predict needs the law inputs {list(law_inputs)}, as keywords or a DataFrame")
        unknown = set(inputs) - set(law_inputs)
        if unknown:
            raise TypeError(f"unknown inputs {sorted(unknown)}; the law's inputs are {list(law_inputs)}")
        missing = [x for x in law_inputs if x not in inputs]
        if missing:
            raise TypeError(f"predict needs every law input {list(law_inputs)}; missing {missing}")
        try:
            arrays = np.broadcast_arrays(*(np.atleast_1d(np.asarray(inputs[x], dtype=float)) for x in law_inputs))
        except ValueError:
            shapes = {x: np.shape(inputs[x]) for x in law_inputs}
            raise ValueError(f"the inputs have shapes {shapes} that do not broadcast together") from None
        if arrays[0].ndim != 1:
            raise ValueError(f"inputs must be scalars or 1-D sequences, got shape {arrays[0].shape}")
        return pd.DataFrame(dict(zip(law_inputs, arrays, strict=False)))
    if not isinstance(data, pd.DataFrame):
        raise TypeError(f"predict takes a pandas DataFrame or keywords, got {type(data).__name__}")
    return data
