"""Posterior predictions at new inputs: the mean curve and new observations, with intervals."""

from __future__ import annotations

from collections.abc import Mapping
from functools import partial
from typing import NamedTuple

import arviz as az
import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd

from bayescale.laws import Law
from bayescale.likelihoods import host_rng
from bayescale.model.args import from_transformed, padding_index, row_bucket, to_transformed
from bayescale.model.build import SCALE_SITE, scaled_terms
from bayescale.sampler.compile import KEEP_COMPILED, CompiledCache, compiled

KINDS = ("observation", "curve", "mean")
METHODS = ("eti", "hdi")
NOISE_STREAM = 3  # the random stream of an unseen group's noise scale, apart from its law parameters
OUTER_STREAM = 100  # the random streams (one per law parameter) of outer groups not in the fit
SCALE_STREAM = 4  # the random stream of an unseen group's log-scale (group_scale=True)
# law -> its log mean, likelihood -> its log density, each compiled as one program: evaluated operation by
# operation, a Chinchilla curve and a Student-t density compile dozens of small programs at every new shape
_CURVES = CompiledCache(KEEP_COMPILED)
_DENSITIES = CompiledCache(KEEP_COMPILED)


class Prediction:
    """Posterior draws at new input rows, of three kinds.

    - ``"observation"``: a new run there (posterior predictive): the law, the risk that the
      law is wrong there (beyond the fitted data, :mod:`bayescale.model.discrepancy`), and the
      observation noise;
    - ``"curve"``: the expected value there, the law and its risk, without noise;
    - ``"mean"``: the fitted law's curve alone (parameter uncertainty only).

    Inside the fitted data's range the risk is zero, and ``"curve"`` is ``"mean"``. Draws are
    pooled over chains, one row per posterior draw.

    Examples
    --------
    >>> pred = fit.predict(N=[7e10], D=[1.4e12])    # doctest: +SKIP
    >>> pred.interval(0.9)                          # doctest: +SKIP
                  N             D    median     lower     upper
    0  7.000000e+10  1.400000e+12  1.93...   1.89...   1.97...
    """

    def __init__(
        self,
        inputs: pd.DataFrame,
        log_mean: np.ndarray,
        log_observation: np.ndarray | None,
        missing_observation: str = "",
        log_risk: np.ndarray | None = None,
        shift=None,
    ) -> None:
        self.inputs = inputs
        if log_risk is not None:  # the risk moves the law on the residuals' scale (log, or log-odds for a rate)
            shift = shift or np.add
            log_mean_moved = np.asarray(shift(log_mean, log_risk))
            if log_observation is not None:
                log_observation = np.asarray(shift(log_observation, log_risk))
        curve = log_mean if log_risk is None else log_mean_moved
        observation = log_observation
        self._log = {"mean": log_mean, "curve": curve, "observation": observation}
        self._missing = missing_observation

    def draws(self, kind: str = "observation") -> np.ndarray:
        """Draws in the target's units, shape (posterior draws, rows)."""
        log = self._log[_check_kind(kind)]
        if log is None:
            raise ValueError(self._missing or "this prediction has no observation draws; use kind='mean'")
        with np.errstate(divide="ignore", over="ignore"):  # a draw beyond float64's range is inf, not an error
            return np.exp(log)

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
        kind : {"observation", "curve", "mean"}
            A new run (law, its risk and noise), the expected value (law and risk) or the
            law's curve alone.
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

    def _repr_html_(self) -> str:
        """A notebook's view: the 90% intervals of a new run and of the law."""
        parts = [f"<p>{self!r}</p>"]
        if self._log["observation"] is not None:
            parts += ["<p>a new run (90%)</p>", self.interval(0.9).to_html(float_format=lambda v: f"{v:.4g}")]
        parts += [
            "<p>the law's curve (90%)</p>",
            self.interval(0.9, kind="mean").to_html(float_format=lambda v: f"{v:.4g}"),
        ]
        return "".join(parts)

    def __repr__(self) -> str:
        n_draws, n_rows = self._log["mean"].shape
        return f"Prediction({n_rows} rows x {n_draws} posterior draws)"


def _check_kind(kind: str) -> str:
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    return kind


def posterior_draws(
    law: Law,
    likelihood,
    treatments: Mapping[str, str],
    posterior: Mapping[str, np.ndarray],
    log_ref: Mapping[str, float],
    log_x: Mapping[str, np.ndarray],
    rng_key,
    fitted_groups: tuple[str, ...] = (),
    row_groups: np.ndarray | None = None,
    trials: np.ndarray | None = None,
    noise_log_sd: np.ndarray | None = None,
    outer: Outer | None = None,
) -> tuple[np.ndarray, np.ndarray | None]:
    """Log of the law and of a new observation at ``log_x``, per posterior draw and row.

    ``log_x`` holds (rows,) arrays, or (draws, rows) where each posterior draw has its own inputs.

    For a Binomial likelihood the observation is the rate ``k / n`` of a new run with
    ``trials`` items per row, and ``None`` when ``trials`` is not given.

    ``posterior`` holds draws in the user's units, shape (draws,) or (draws, groups).
    Rows of a group seen in the fit use that group's parameters; rows of an unseen group
    draw its parameters from the population (one draw per group and posterior draw, so
    all rows of one new group share them), which needs every non-shared parameter pooled.
    Where groups nest in outer groups, ``outer`` places the unseen ones (:class:`Outer`).
    """
    # rows padded to a bucket (copies of the first row, cut off at the end), so that
    # predictions at grids of similar lengths reuse the compiled operations
    rows = np.shape(next(iter(log_x.values())))[-1]
    index = padding_index(rows, row_bucket(rows))
    log_x = {x: np.asarray(v)[..., index] for x, v in log_x.items()}
    row_groups = None if row_groups is None else np.asarray(row_groups)[index]
    outer = None if outer is None else outer._replace(rows=np.asarray(outer.rows)[index])
    trials = None if trials is None else np.asarray(trials)[index]
    noise_log_sd = None if noise_log_sd is None else np.asarray(noise_log_sd)[index]
    group_key, noise_key = jax.random.split(rng_key)
    log_mean = _log_mean(law, treatments, posterior, log_ref, log_x, group_key, fitted_groups, row_groups, outer)
    noise = noise_draws(likelihood, treatments, posterior, group_key, fitted_groups, row_groups)
    if getattr(likelihood, "trials", None) is not None and trials is None:
        return np.asarray(log_mean)[:, :rows], None  # a new count needs its number of items
    log_mean = np.asarray(log_mean)
    log_obs = likelihood.draw_log_target(host_rng(noise_key), log_mean, noise, noise_log_sd, trials)
    return log_mean[:, :rows], log_obs[:, :rows]


def log_density(
    law: Law,
    likelihood,
    treatments: Mapping[str, str],
    posterior: Mapping[str, np.ndarray],
    log_ref: Mapping[str, float],
    log_x: Mapping[str, np.ndarray],
    observed: np.ndarray,
    rng_key,
    fitted_groups: tuple[str, ...] = (),
    row_groups: np.ndarray | None = None,
    noise_log_sd: np.ndarray | None = None,
    trials: np.ndarray | None = None,
    log_shift: np.ndarray | None = None,
    outer: Outer | None = None,
) -> np.ndarray:
    """Log density of the ``observed`` values per posterior draw and row, shape (draws, rows).

    The same density as the fit's ``log_likelihood`` group (of ``log(target)``, or of the
    counts of a Binomial likelihood), at rows the fit may not have seen; rows of an
    unseen group use population draws, as in :func:`posterior_draws` with the same
    ``rng_key``. ``noise_log_sd`` is the known per-row noise of a model fitted with
    ``noise=``, relative to the target; ``trials`` the items per row of a Binomial one;
    ``log_shift`` (draws, rows) a deviation of the law's log mean per draw (the extrapolation
    risk of :mod:`bayescale.model.discrepancy`), on the residuals' scale (``likelihood.shift``);
    ``outer`` places unseen groups in their outer groups (:class:`Outer`).
    """
    group_key, _ = jax.random.split(rng_key)
    log_mean = _log_mean(law, treatments, posterior, log_ref, log_x, group_key, fitted_groups, row_groups, outer)
    if log_shift is not None:
        log_mean = likelihood.shift(log_mean, jnp.asarray(log_shift))
    noise = noise_draws(likelihood, treatments, posterior, group_key, fitted_groups, row_groups)
    noise_log_sd = None if noise_log_sd is None else jnp.asarray(noise_log_sd)
    trials = None if trials is None else jnp.asarray(trials)
    density = _DENSITIES.get(likelihood, lambda: compiled(partial(_log_density, likelihood), runs="once"))
    return np.asarray(density(log_mean, noise, noise_log_sd, trials, jnp.asarray(observed)))


def _log_density(likelihood, log_mean, noise, noise_log_sd, trials, observed):
    return likelihood.distribution(log_mean, noise, noise_log_sd, trials).log_prob(observed)


def noise_draws(likelihood, treatments, posterior, group_key, fitted_groups=(), row_groups=None) -> dict:
    """Every likelihood parameter per posterior draw and row: (draws, rows), or (draws, 1) where shared.

    A noise scale that varies by group is the row's group's; an unseen group's is drawn from
    its population (the same draw for every row of the group, and for the same ``group_key``
    the same as in :func:`posterior_draws` and :func:`log_density`).
    """
    out = {}
    for name in likelihood.parameter_names:
        values = jnp.asarray(posterior[name])
        if values.ndim == 1:
            out[name] = values[:, None]
            continue
        codes, new_codes, new_labels = _row_codes(np.asarray(row_groups), fitted_groups)
        rows = values[:, np.maximum(codes, 0)]
        if new_labels:
            if treatments.get(name) != "pooled":
                raise ValueError(
                    f"groups {list(new_labels)} were not in the fitted data, and the noise scale {name!r} is "
                    "independent per group, so there is no population to draw it from; refit with it pooled or shared"
                )
            z = jax.random.normal(jax.random.fold_in(group_key, NOISE_STREAM), (values.shape[0], len(new_labels)))
            pop, spread = jnp.asarray(posterior[f"{name}_pop"]), jnp.asarray(posterior[f"{name}_spread"])
            new = pop[:, None] * jnp.exp(spread[:, None] * z)
            rows = jnp.where(codes >= 0, rows, new[:, np.maximum(new_codes, 0)])
        out[name] = rows
    return out


def _log_mean(law, treatments, posterior, log_ref, log_x, group_key, fitted_groups, row_groups, outer=None):
    """Log of the law per posterior draw and row, with each row's group's parameters."""
    names = law.parameter_names
    values = {k: jnp.asarray(posterior[k]) for k in names}
    if any(v.ndim == 2 for v in values.values()):  # per-group and shared values broadcast as (draws, groups | 1)
        values = {k: v[:, None] if v.ndim == 1 else v for k, v in values.items()}
    t_fit = to_transformed(law, law.to_reference(values, log_ref))
    t_fit = {k: v[:, 0] if v.ndim == 2 and v.shape[1] == 1 else v for k, v in t_fit.items()}
    if row_groups is None:
        rows = {k: v[:, None] if v.ndim == 1 else v for k, v in t_fit.items()}
    else:
        rows = {}
        codes, new_codes, new_labels = _row_codes(row_groups, fitted_groups)
        placed = None if outer is None else outer.place(new_labels, row_groups)
        t_new = _new_groups(law, treatments, posterior, log_ref, group_key, new_labels, placed) if new_labels else {}
        for k, v in t_fit.items():
            if v.ndim == 1:
                rows[k] = v[:, None]
                continue
            known = v[:, np.where(codes >= 0, codes, 0)]
            rows[k] = known if not new_labels else jnp.where(codes >= 0, known, t_new[k][:, np.maximum(new_codes, 0)])
    curve = _CURVES.get(law, lambda: compiled(partial(_law_log_mean, law), runs="once"))
    return curve(rows, {x: jnp.asarray(v) for x, v in log_x.items()})


def _law_log_mean(law, rows, log_x):
    log_mean = law.log_mean(from_transformed(law, rows), log_x)
    return jnp.broadcast_to(log_mean, (log_mean.shape[0], next(iter(log_x.values())).shape[-1]))


class Outer(NamedTuple):
    """Where groups nest in outer groups (``ScalingModel(..., within=...)``): the fit's outer groups
    (``fitted``, in the order of the posterior's ``<name>_outer_shift``) and each row's outer group (``rows``)."""

    fitted: tuple[str, ...]
    rows: np.ndarray

    def place(self, labels, row_groups) -> np.ndarray:
        """Per unseen group in ``labels``: its outer group's index among the fitted ones, or ``-1 - j`` for the
        ``j``-th outer group not in the fit (all unseen groups of one new outer group share its draw)."""
        outer_of = {g: str(o) for g, o in zip(np.asarray(row_groups), self.rows, strict=True)}
        fitted = {label: i for i, label in enumerate(self.fitted)}
        new = sorted({outer_of[g] for g in labels} - set(fitted))
        return np.array([fitted[o] if o in fitted else -1 - new.index(o) for o in (outer_of[g] for g in labels)])


def _new_groups(law: Law, treatments, posterior, log_ref, key, labels, placed=None) -> dict:
    """Sampling-scale parameters of unseen groups, drawn from the population: shape (draws, len(labels)).

    Where groups nest in outer groups, ``placed`` (:meth:`Outer.place`) puts each around its outer
    group's location (``<name>_outer_shift``) or, in an outer group not in the fit, around a
    draw from the outer groups' population (``<name>_outer_spread``); without ``placed`` each
    unseen group is in an outer group of its own. Where every group has its own scale (``scale_spread``), an
    unseen group's level terms all shift by one draw of it."""
    names = law.parameter_names
    not_pooled = [k for k in names if treatments[k] == "independent"]
    if not_pooled:
        raise ValueError(
            f"groups {list(labels)} were not in the fitted data, and parameters {not_pooled} are independent "
            "per group, so there is no population to draw them from; refit with them pooled or shared"
        )
    # a shared parameter from any fitted group (in the user's units a shared prefactor differs by group where its
    # exponent does; at the reference scale it is one value), a pooled one from the population
    fitted = {k: jnp.asarray(posterior[k]) for k in names}
    fitted = {k: v[:, 0] if v.ndim == 2 else v for k, v in fitted.items()}
    t_fitted = to_transformed(law, law.to_reference(fitted, log_ref))
    pop_user = fitted | {k: jnp.asarray(posterior[f"{k}_pop"]) for k in names if treatments[k] == "pooled"}
    t_pop = to_transformed(law, law.to_reference(pop_user, log_ref))
    t_pop = {k: t_pop[k] if treatments[k] == "pooled" else t_fitted[k] for k in names}
    z = jax.random.normal(key, (len(names), t_pop[names[0]].shape[0], len(labels)))
    if placed is None:  # each unseen group in an outer group of its own
        placed = -1 - np.arange(len(labels))
    scaled, scale_shift = (), 0.0
    if f"{SCALE_SITE}_spread" in posterior:  # one log-scale per unseen group, shared by its level terms
        z_scale = jax.random.normal(jax.random.fold_in(key, SCALE_STREAM), (t_pop[names[0]].shape[0], len(labels)))
        scaled = scaled_terms(law, treatments)
        scale_shift = jnp.asarray(posterior[f"{SCALE_SITE}_spread"])[:, None] * z_scale
    out = {}
    for i, k in enumerate(names):
        spread = posterior.get(f"{k}_spread")
        out[k] = t_pop[k][:, None] + (0.0 if spread is None else jnp.asarray(spread)[:, None] * z[i])
        if k in scaled:
            out[k] = out[k] + scale_shift
        if f"{k}_outer_shift" in posterior:
            shift = jnp.asarray(posterior[f"{k}_outer_shift"])[:, np.maximum(placed, 0)]
            n_new = int(np.max(-1 - placed, initial=-1)) + 1  # outer groups not in the fit
            z_outer = jax.random.normal(jax.random.fold_in(key, OUTER_STREAM + i), (t_pop[k].shape[0], max(n_new, 1)))
            drawn = jnp.asarray(posterior[f"{k}_outer_spread"])[:, None] * z_outer[:, np.maximum(-1 - placed, 0)]
            out[k] = out[k] + jnp.where(placed >= 0, shift, drawn)
    return out


def group_parameters(
    law: Law,
    treatments: Mapping[str, str],
    posterior: Mapping[str, np.ndarray],
    log_ref: Mapping[str, float],
    rng_key,
    fitted_groups: tuple[str, ...] = (),
    group: str | None = None,
) -> dict[str, jnp.ndarray]:
    """The law's parameters in the user's units per posterior draw, shape (draws,), for one group.

    ``group=None`` for a fit without groups; a fitted group's label for its parameters;
    any other label for a new group, whose parameters are drawn from the population
    (as :func:`posterior_draws` does for the rows of an unseen group).
    """
    names = law.parameter_names
    if not fitted_groups:
        if group is not None:
            raise ValueError(f"this fit has no group column, so group={group!r} means nothing here; leave it out")
        return {k: jnp.asarray(posterior[k]) for k in names}
    if group is None:
        raise ValueError(
            f"this fit has groups {list(fitted_groups)}: say which with group=<label> "
            "(a label not among them gives a new group, drawn from the population)"
        )
    if group in fitted_groups:
        g = fitted_groups.index(group)
        return {k: jnp.asarray(posterior[k] if posterior[k].ndim == 1 else posterior[k][:, g]) for k in names}
    t_new = _new_groups(law, treatments, posterior, log_ref, rng_key, [group])
    return law.to_user(from_transformed(law, {k: v[:, 0] for k, v in t_new.items()}), log_ref)


def _row_codes(row_groups: np.ndarray, fitted_groups: tuple[str, ...]):
    """Code of each row's group in the fit (-1 if unseen) and code among the unseen groups (-1 if seen)."""
    lookup = {label: i for i, label in enumerate(fitted_groups)}
    codes = np.array([lookup.get(label, -1) for label in row_groups], dtype=int)
    new_labels = sorted({label for label in row_groups if label not in lookup})
    new_lookup = {label: i for i, label in enumerate(new_labels)}
    new_codes = np.array([new_lookup.get(label, -1) for label in row_groups], dtype=int)
    return codes, new_codes, new_labels


def as_frame(
    data, inputs: Mapping, law_inputs: tuple[str, ...], group: str | None = None, optional: tuple[str, ...] = ()
) -> pd.DataFrame:
    """Turn ``predict``'s arguments (a DataFrame or keywords) into a DataFrame of law inputs (and group).

    ``optional`` names further keywords that may be given (a Binomial model's trials column).
    """
    if data is not None and inputs:
        raise TypeError("give the new inputs either as a DataFrame or as keywords, not both")
    if data is None:
        if not inputs:
            raise TypeError(f"predict needs the law inputs {list(law_inputs)}, as keywords or a DataFrame")
        names = tuple(law_inputs) + ((group,) if group is not None else ())
        unknown = set(inputs) - set(names) - set(optional)
        if unknown:
            raise TypeError(f"unknown inputs {sorted(unknown)}; the law's inputs are {list(law_inputs)}")
        missing = [x for x in names if x not in inputs]
        if missing:
            raise TypeError(f"predict needs every law input {list(names)}; missing {missing}")
        names += tuple(x for x in optional if x in inputs)
        try:
            arrays = np.broadcast_arrays(*(np.atleast_1d(np.asarray(inputs[x])) for x in names))
        except ValueError:
            shapes = {x: np.shape(inputs[x]) for x in names}
            raise ValueError(f"the inputs have shapes {shapes} that do not broadcast together") from None
        if arrays[0].ndim != 1:
            raise ValueError(f"inputs must be scalars or 1-D sequences, got shape {arrays[0].shape}")
        frame = pd.DataFrame(dict(zip(names, arrays, strict=True)))
        for x in law_inputs:
            if not pd.api.types.is_numeric_dtype(frame[x].dtype):
                raise TypeError(f"input {x} must be numbers, got {inputs[x]!r}")
        return frame
    if not isinstance(data, pd.DataFrame):
        raise TypeError(f"predict takes a pandas DataFrame or keywords, got {type(data).__name__}")
    return data
