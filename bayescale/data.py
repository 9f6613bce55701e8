"""Input validation: a user's DataFrame -> :class:`ScalingData` (float64 arrays).

Everything is checked here, before JAX compiles anything, and every error names the
column, the first offending row labels and what was expected. Nothing is dropped,
clipped or coerced: a bad row is the user's decision to fix.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd


class DataError(ValueError):
    """The data cannot be fitted or predicted as given; the message says where and why."""


class DataWarning(UserWarning):
    """A likely mistake in the data or in a request (units off, duplicated rows, an unreachable target).

    The message says what to check. Silence it where the values are right with
    ``warnings.simplefilter("ignore", bs.DataWarning)``.
    """


# Plausible ranges of the inputs the field names N (parameters), D (tokens) and C (FLOPs): a law input of
# that name entirely outside them is most likely in other units (N in billions, C in PF-days, ...).
USUAL_RANGE = {"N": (1e4, 1e14), "D": (1e5, 1e16), "C": (1e10, 1e32)}
UNIT_NAMES = {"N": "parameters", "D": "tokens", "C": "FLOPs"}


@dataclass(frozen=True)
class ScalingData:
    """Validated observations: law inputs and target as float64 arrays, with row labels.

    Attributes
    ----------
    inputs : dict of str to ndarray
        Raw (not centred) values keyed by the law's input names.
    target : ndarray
        The observed target (loss, error, ...), strictly positive; for a Binomial
        likelihood the number of items right, from 0 to ``trials``.
    noise : ndarray or None
        Known per-row standard deviation of the target, if the model uses one.
    index : pandas.Index
        Row labels of the source DataFrame, used in messages and results.
    groups : ndarray or None
        Group code of every row (index into ``group_labels``), for hierarchical models.
    group_labels : tuple of str
        The groups, sorted.
    trials : ndarray or None
        Items per row for a Binomial likelihood; ``target`` then holds the counts right.
    outer : ndarray or None
        For groups nested in outer groups (``ScalingModel(..., within=...)``): the outer
        group of every group (index into ``outer_labels``), one entry per group.
    outer_labels : tuple of str
        The outer groups, sorted.
    """

    inputs: dict[str, np.ndarray]
    target: np.ndarray
    noise: np.ndarray | None
    index: pd.Index
    groups: np.ndarray | None = None
    group_labels: tuple[str, ...] = ()
    trials: np.ndarray | None = None
    outer: np.ndarray | None = None
    outer_labels: tuple[str, ...] = ()

    @property
    def n_rows(self) -> int:
        return len(self.target)

    def log_geometric_means(self) -> dict[str, float]:
        """Log of the geometric mean of every input: the default reference scales."""
        return {name: float(np.mean(np.log(x))) for name, x in self.inputs.items()}


def rows_phrase(index: pd.Index, mask: np.ndarray, limit: int = 5) -> str:
    """``"rows 3, 17 (and 4 more)"`` for the labels of ``index`` where ``mask`` is true."""
    labels = list(index[np.asarray(mask)])
    shown = ", ".join(repr(label) if isinstance(label, str) else str(label) for label in labels[:limit])
    more = f" (and {len(labels) - limit} more)" if len(labels) > limit else ""
    return f"row{'s' if len(labels) > 1 else ''} {shown}{more}"


def numeric_column(frame: pd.DataFrame, column: str, role: str, *, positive: bool = True) -> np.ndarray:
    """Column ``column`` as float64, or a :class:`DataError` naming what is wrong.

    Checks presence, a numeric dtype, finiteness and (unless ``positive=False``) strict positivity.
    """
    if column not in frame.columns:
        raise DataError(
            f"column {column!r} ({role}) is not in the data; available columns: {list(map(str, frame.columns))}"
        )
    series = frame[column]
    if isinstance(series, pd.DataFrame):
        raise DataError(f"column name {column!r} ({role}) appears more than once in the data; rename the duplicates")
    if pd.api.types.is_bool_dtype(series.dtype) or not pd.api.types.is_numeric_dtype(series.dtype):
        coerced = pd.to_numeric(series, errors="coerce")
        bad = coerced.isna() & series.notna()
        where = f"; non-numeric values at {rows_phrase(frame.index, bad.to_numpy())}" if bad.any() else ""
        raise DataError(
            f"column {column!r} ({role}) must have a numeric dtype, got {series.dtype}{where}. "
            f"Convert it explicitly, e.g. df[{column!r}] = df[{column!r}].astype(float)"
        )
    missing = series.isna().to_numpy()
    values = series.to_numpy(dtype=float, na_value=np.nan)
    bad = missing | ~np.isfinite(values)
    if bad.any():
        raise DataError(
            f"column {column!r} ({role}) has missing or infinite values at {rows_phrase(frame.index, bad)}; "
            "expected finite numbers. Drop or repair those rows explicitly before fitting"
        )
    nonpositive = values <= 0
    if positive and nonpositive.any():
        raise DataError(
            f"column {column!r} ({role}) has values <= 0 at {rows_phrase(frame.index, nonpositive)}; "
            "expected strictly positive numbers (scaling laws are fitted on the log scale)"
        )
    return values


def count_trials(frame: pd.DataFrame, trials: str) -> np.ndarray:
    """The number of items per row of a Binomial likelihood: positive whole numbers, or a :class:`DataError`."""
    n = numeric_column(frame, trials, "number of items (Binomial trials)")
    fractional = n != np.round(n)
    if fractional.any():
        raise DataError(
            f"column {trials!r} (number of items) has non-integer values at {rows_phrase(frame.index, fractional)}; "
            "expected positive whole numbers"
        )
    return n


def count_columns(frame: pd.DataFrame, target: str, trials: str) -> tuple[np.ndarray, np.ndarray]:
    """Counts right and items per row for a Binomial likelihood, or a :class:`DataError`.

    ``trials`` must hold positive whole numbers and ``target`` whole numbers from 0 to
    the row's ``trials``: 0 of ``n`` and ``n`` of ``n`` are valid observations.
    """
    n = count_trials(frame, trials)
    k = numeric_column(frame, target, "target: number of items right", positive=False)
    for values, column, what in ((k, target, "whole numbers"),):
        fractional = values != np.round(values)
        if fractional.any():
            raise DataError(
                f"column {column!r} has non-integer values at {rows_phrase(frame.index, fractional)}; expected {what}"
                + (
                    ". A Binomial likelihood counts items right: multiply a rate by the number of items"
                    if column == target
                    else ""
                )
            )
    outside = (k < 0) | (k > n)
    if outside.any():
        raise DataError(
            f"column {target!r} (number right) is below 0 or above {trials!r} (number of items) at "
            f"{rows_phrase(frame.index, outside)}; expected counts from 0 to the number of items"
        )
    return k, n


def group_labels(frame: pd.DataFrame, column: str, role: str = "group") -> np.ndarray:
    """The group column as strings, or a :class:`DataError` for a missing column or missing labels."""
    if column not in frame.columns:
        raise DataError(
            f"column {column!r} ({role}) is not in the data; available columns: {list(map(str, frame.columns))}"
        )
    series = frame[column]
    missing = series.isna().to_numpy()
    if missing.any():
        raise DataError(
            f"column {column!r} ({role}) has missing labels at {rows_phrase(frame.index, missing)}; "
            f"every row needs a {role}"
        )
    return series.astype(str).to_numpy()


def nesting(frame: pd.DataFrame, group: str, within: str, codes: np.ndarray, n_groups: int):
    """The outer group of every group (codes into the sorted outer labels) and the labels; a :class:`DataError`
    naming the rows where one group's rows name two outer groups (each group must sit in one)."""
    outer_rows = group_labels(frame, within, "outer group")
    outer_codes, uniques = pd.factorize(outer_rows, sort=True)
    outer = np.full(n_groups, -1)
    for g in range(n_groups):
        seen = np.unique(outer_codes[codes == g])
        if len(seen) > 1:
            label = frame[group].astype(str).to_numpy()[codes == g][0]
            rows = (codes == g) & (outer_codes == seen[1])
            raise DataError(
                f"{group} {label!r} sits in {within} {uniques[seen[0]]!r} and {uniques[seen[1]]!r} (e.g. at "
                f"{rows_phrase(frame.index, rows)}); each {group} must sit in one {within}. If the labels repeat "
                f"across {within}s for different groups, make them unique, e.g. {within} + '/' + {group}"
            )
        outer[g] = seen[0]
    return outer, tuple(uniques)


def validate(
    frame: pd.DataFrame,
    *,
    inputs: Mapping[str, str],
    target: str,
    noise: str | None = None,
    group: str | None = None,
    within: str | None = None,
    n_parameters: int | Callable[[int], int],
    few_rows: str = "error",
    varying: Iterable[str] = (),
    trials: str | None = None,
    rate: bool = False,
) -> ScalingData:
    """Check a DataFrame of training runs and return its :class:`ScalingData`.

    Parameters
    ----------
    frame : pandas.DataFrame
        One row per observation.
    inputs : mapping
        Law input name -> column name, e.g. ``{"N": "params", "D": "tokens"}``.
    target : str
        Column holding the target (loss, error, ...).
    noise : str, optional
        Column holding the known standard deviation of the target per row.
    group : str, optional
        Column holding the group of every row (for hierarchical models).
    within : str, optional
        Column holding the outer group of every row, for groups nested in outer groups:
        every group's rows must name one outer group.
    n_parameters : int or callable
        Number of free parameters of the model (a function of the number of groups
        for a hierarchical model); fewer rows is an error.
    few_rows : {"error", "warn"}
        ``"warn"``: fewer rows than parameters is a :class:`DataWarning` instead, for a model
        whose priors the user chose (``priors=``, e.g. ``"literature"``), which stand in for runs.
    varying : iterable of str
        Law inputs that must take at least two distinct values.
    trials : str, optional
        Column with the number of items per row, for a Binomial likelihood: ``target``
        then holds counts from 0 to it (see :func:`count_columns`).
    rate : bool
        The target is a rate strictly between 0 and 1 (an averaged accuracy under a
        ``LogitNormal`` likelihood).

    Examples
    --------
    >>> import pandas as pd
    >>> from bayescale.data import validate
    >>> df = pd.DataFrame({"C": [1e18, 1e19, 1e20, 1e21], "loss": [3.1, 2.8, 2.6, 2.5]})
    >>> validate(df, inputs={"C": "C"}, target="loss", n_parameters=3).n_rows
    4
    """
    if not isinstance(frame, pd.DataFrame):
        raise TypeError(f"data must be a pandas DataFrame, got {type(frame).__name__}")
    if len(frame) == 0:
        raise DataError("the data has no rows")
    values = {
        law_input: numeric_column(frame, column, f"law input {law_input}") for law_input, column in inputs.items()
    }
    n = None
    if trials is None:
        y = numeric_column(frame, target, "target")
        if rate and np.any(y >= 1.0):
            raise DataError(
                f"column {target!r} (target) must be a rate strictly between 0 and 1 for this likelihood, but is "
                f">= 1 at {rows_phrase(frame.index, y >= 1.0)}. Accuracy in percent? Divide it by 100. A perfect "
                "score of 1 is a count of n of n: fit counts with bs.likelihoods.Binomial(trials=...)"
            )
    else:
        y, n = count_columns(frame, target, trials)
    sd = None
    if noise is not None:
        sd = numeric_column(frame, noise, "known noise standard deviation")
    codes, labels, outer, outer_labels = None, (), None, ()
    if group is not None:
        codes, uniques = pd.factorize(group_labels(frame, group), sort=True)
        labels = tuple(uniques)
        if within is not None:
            outer, outer_labels = nesting(frame, group, within, codes, len(labels))
    if callable(n_parameters):
        n_parameters = n_parameters(len(labels))
    if len(frame) < n_parameters and few_rows == "warn":
        warnings.warn(
            f"the data has {len(frame)} rows for {n_parameters} parameters: the fit leans on the priors you gave, "
            "so its intervals are about as wide as they are",
            DataWarning,
            stacklevel=5,  # the user's call of ScalingModel.fit
        )
    elif len(frame) < n_parameters:
        raise DataError(
            f"the data has {len(frame)} rows but the model has {n_parameters} parameters; "
            f"at least {n_parameters} rows are needed (more than that for useful intervals), "
            'or give priors to lean on (priors="literature" for a law with published fits)'
        )
    for law_input in varying:
        x = values[law_input]
        if np.all(x == x[0]):
            raise DataError(
                f"column {inputs[law_input]!r} (law input {law_input}) has the single value {x[0]:g} in every row; "
                f"the law needs it to vary to estimate how the target scales with {law_input}"
            )
    _warn_likely_mistakes(frame, inputs, values, target, group)
    return ScalingData(
        inputs=values,
        target=y,
        noise=sd,
        index=frame.index.copy(),
        groups=codes,
        group_labels=labels,
        trials=n,
        outer=outer,
        outer_labels=outer_labels,
    )


def _warn_likely_mistakes(frame: pd.DataFrame, inputs: Mapping[str, str], values, target: str, group) -> None:
    """A :class:`DataWarning` for inputs far off their usual scale and for rows repeated exactly."""
    for law_input, column in inputs.items():
        if law_input not in USUAL_RANGE:
            continue
        low, high = USUAL_RANGE[law_input]
        x = values[law_input]
        if x.max() < low or x.min() > high:
            warnings.warn(
                f"column {column!r} (law input {law_input}, {UNIT_NAMES[law_input]}) spans {x.min():.3g} to "
                f"{x.max():.3g}, outside the usual {low:.0e} to {high:.0e}: check its units (a count of "
                f"{UNIT_NAMES[law_input]}, not millions or billions of them). Budgets, tokens per parameter and "
                "the default reference scales read it as given",
                DataWarning,
                stacklevel=6,  # the user's call of ScalingModel.fit
            )
    columns = list(dict.fromkeys([*inputs.values(), target, *([group] if group else [])]))
    repeated = frame.duplicated(subset=columns, keep=False).to_numpy()
    if repeated.any():
        warnings.warn(
            f"{rows_phrase(frame.index, repeated)} are identical in every column the model reads "
            f"({', '.join(map(repr, columns))}): k copies of one run count as k runs and shrink the intervals by "
            "about sqrt(k). Drop the copies if they are duplicates (df.drop_duplicates()); keep them if they "
            "are separate runs that happened to agree",
            DataWarning,
            stacklevel=6,  # the user's call of ScalingModel.fit
        )


def prediction_inputs(
    frame: pd.DataFrame, names: Iterable[str], columns: Mapping[str, str] | None = None
) -> dict[str, np.ndarray]:
    """Validate the inputs at which to predict; ``columns`` maps law inputs to frame columns."""
    columns = dict(columns or {})
    out = {}
    for name in names:
        column = name if name in frame.columns else columns.get(name, name)
        out[name] = numeric_column(frame, column, f"law input {name}")
    return out
