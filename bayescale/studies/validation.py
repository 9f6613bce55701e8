"""Backtests on real data: fit the small runs, predict the large ones, score the predictions.

A scaling law is for extrapolation, and only held-out real runs tell how far its intervals
can be trusted. :func:`backtest` cuts a data set by a scale column (compute, parameters, ...)
at ``decades`` below its largest value, fits the runs at or below each cut, predicts the runs
above it and scores every prediction:

- coverage of the central 50/80/90/95% intervals (does the held-out run fall inside?);
- absolute relative error of the median (ARE);
- the interval score of the 90% interval (Gneiting and Raftery 2007), on ``log(target)``:
  width plus a penalty of ``2 / 0.1`` times the miss, so that a wide interval is not free;
- the continuous ranked probability score (CRPS) of ``log(target)``, from the draws.

Several predictors are scored on the same held-out runs: the model's own predictive (with
its extrapolation risk), the same posterior without the risk (``"law only"``: what the
model would say if its law were exactly right), and, for single curves, the field's usual
estimator, a Huber point fit with bootstrap intervals (:mod:`bayescale.studies.pointfit`).

Examples
--------
>>> import bayescale as bs
>>> runs = bs.datasets.load("chinchilla")                                          # doctest: +SKIP
>>> model = bs.ScalingModel("chinchilla")
>>> study = bs.validation.backtest(model, runs, scale="C", decades=(1, 2), seed=0)  # doctest: +SKIP
>>> study.table()                                                                  # doctest: +SKIP
>>> study.plot()                                                                   # doctest: +SKIP
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from functools import partial

import numpy as np
import pandas as pd

from bayescale.data import DataError, numeric_column
from bayescale.sampler.cluster import check_client, map_on_cluster
from bayescale.sampler.diagnostics import SamplerWarning
from bayescale.sampler.progress import Progress
from bayescale.studies.pointfit import bootstrap

LEVELS = (0.5, 0.8, 0.9, 0.95)
DECADES = (0.5, 1.0, 2.0, 3.0)
DISTANCE_BINS = (0.0, 0.25, 0.5, 1.0, 2.0, np.inf)
SCORED_LEVEL = 0.9  # the interval whose score is reported
CRPS_DRAWS = 1000  # draws the CRPS is estimated from (evenly thinned)


def backtest(
    model,
    data: pd.DataFrame,
    *,
    scale: str | None = None,
    decades: Sequence[float] = DECADES,
    levels: Sequence[float] = LEVELS,
    baseline: bool = True,
    bootstrap_refits: int = 200,
    seed: int = 0,
    progress_bar: bool | None = None,
    keep_draws: bool = False,
    client=None,
    **fit_options,
) -> Backtest:
    """Leave-future-out backtest of ``model`` on ``data``: fit below each cut of ``scale``, predict above.

    Parameters
    ----------
    model : ScalingModel
        The specification to test.
    data : pandas.DataFrame
        The runs, with the model's columns and the ``scale`` column.
    scale : str, optional
        Column ordering the runs by scale; default the input column of a one-input law.
    decades : sequence of float
        Cuts at ``max(scale) / 10**k`` for each ``k``: the runs above a cut are predicted
        from the runs at or below it. A cut whose training runs cannot be fitted (too few,
        an input that does not vary) is skipped and reported in :attr:`Backtest.skipped`.
    levels : sequence of float
        Central interval levels whose coverage is scored.
    baseline : bool
        Also score the bootstrap Huber fit (single curves of ``log(target)`` only).
    bootstrap_refits : int
        Refits of the bootstrap baseline.
    seed : int
        Seed of every fit and of the bootstrap.
    progress_bar : bool, optional
        Progress over the cuts; default when the session is interactive.
    keep_draws : bool
        Keep, per cut, what scoring another extrapolation risk on the same fits needs
        (:attr:`Backtest.draws`, :func:`law_only_draws`).
    client : dask.distributed.Client, optional
        Run the cuts on the workers of a Dask cluster, one task per cut (fit, predictions
        and scores); the study is the same as without it.
    **fit_options
        Passed to :meth:`ScalingModel.fit` (``chains``, ``warmup``, ``draws``, NUTS options).

    Returns
    -------
    Backtest
    """
    if not isinstance(data, pd.DataFrame):
        raise TypeError(f"data must be a pandas DataFrame, got {type(data).__name__}")
    levels = tuple(float(q) for q in levels)
    if not levels or not all(0 < q < 1 for q in levels):
        raise ValueError(f"levels must be numbers in (0, 1), got {list(levels)}")
    decades = tuple(float(k) for k in decades)
    if not decades or not all(k > 0 for k in decades):
        raise ValueError(f"decades must be positive numbers, got {list(decades)}")
    model.validate(data)  # columns and values, before anything is compiled
    scale = _scale_column(model, scale)
    x = numeric_column(data, scale, "scale of the backtest")
    baseline = baseline and model.group is None and not model.counts
    settings = dict(
        model=model,
        data=data,
        x=x,
        levels=levels,
        baseline=baseline,
        bootstrap_refits=bootstrap_refits,
        seed=seed,
        keep_draws=keep_draws,
        fit_options=fit_options,
    )
    if client is not None:
        check_client(client)
    with Progress(progress_bar, len(decades), f"backtest over {len(decades)} cuts", unit="cut") as bar:
        if client is None:
            cuts = []
            for k in decades:
                cuts.append(_cut(k, **settings))
                bar(1)
        else:
            cuts = map_on_cluster(client, partial(_cut, **settings), decades, sizes=[1] * len(decades), bar=bar)
    rows = [table for tables, _, _ in cuts for table in tables]
    skipped = {k: reason for k, (_, reason, _) in zip(decades, cuts, strict=True) if reason is not None}
    kept = {k: draws for k, (_, _, draws) in zip(decades, cuts, strict=True) if draws is not None}
    if not rows:
        raise DataError(f"no cut of {scale!r} at {list(decades)} decades leaves runs the model can be fitted to")
    return Backtest(pd.concat(rows, ignore_index=True), levels, scale, skipped, kept)


def _cut(k, *, model, data, x, levels, baseline, bootstrap_refits, seed, keep_draws, fit_options):
    """One cut of :func:`backtest`, ``k`` decades below the largest scale: (score tables, why skipped, kept draws)."""
    past, future = data[x <= x.max() / 10**k], data[x > x.max() / 10**k]
    try:
        model.validate(past)
    except DataError as err:
        return [], str(err), None
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", SamplerWarning)
        fit = model.fit(past, seed=seed, **fit_options)
    predictors = {"model": fit.predict(future), "law only": fit.predict(future, risk=False)}
    if baseline:
        predictors["bootstrap"] = bootstrap(model, past, n=bootstrap_refits, seed=seed).predict(future)
    observed = numeric_column(future, model.target, "target")
    distance = fit.extrapolation(future)
    tables = []
    for name, prediction in predictors.items():
        table = _scores(prediction, observed, levels)
        table.insert(0, "predictor", name)
        table.insert(1, "decades", k)
        table.insert(2, "row", future.index)
        table.insert(3, "distance", distance)
        table["healthy"] = fit.healthy
        table["sampler_warnings"] = len(caught)
        tables.append(table)
    return tables, None, law_only_draws(fit, future, predictors["law only"]) if keep_draws else None


class Backtest:
    """The scored predictions of :func:`backtest`.

    Attributes
    ----------
    scale : str
        The column the cuts were made on.
    levels : tuple of float
        The interval levels scored.
    skipped : dict
        Cuts (in decades) that could not be fitted, with the reason.
    draws : dict
        With ``keep_draws=True``: per cut, :func:`law_only_draws` of its held-out runs.
    """

    def __init__(
        self, points: pd.DataFrame, levels: Sequence[float], scale: str, skipped: Mapping, draws: Mapping | None = None
    ) -> None:
        self._points = points
        self.levels = tuple(levels)
        self.scale = scale
        self.skipped = dict(skipped)
        self.draws = dict(draws or {})

    def pointwise(self) -> pd.DataFrame:
        """One row per cut, held-out run and predictor: distance (decades beyond the fitted runs' inputs, as
        :meth:`ScalingFit.extrapolation` measures it), observed, median, every level's interval and whether it
        covers, ARE, interval score, CRPS."""
        return self._points.copy()

    def table(self, by: str = "decades") -> pd.DataFrame:
        """Scores per predictor and cut (``by="decades"``) or per distance bin (``by="distance"``).

        Coverage of every level, mean ARE, mean interval score of the 90% interval and mean
        CRPS (both on ``log(target)``; lower is better), and the number of held-out points.
        """
        points = self._points
        if by == "distance":
            key = pd.cut(points["distance"], list(DISTANCE_BINS), include_lowest=True)
        elif by == "decades":
            key = points["decades"]
        else:
            raise ValueError(f"by must be 'decades' or 'distance', got {by!r}")
        return summarise(points, [key.rename(by), points["predictor"]], self.levels)

    def plot(self, ax=None):
        """Coverage of every level against the distance beyond the fitted runs, per predictor."""
        from bayescale.plot import coverage

        return coverage(self.table(by="distance"), self.levels, ax=ax)

    def _repr_html_(self) -> str:
        """A notebook's view: the scores per cut and predictor."""
        return f"<p>{self!r}</p>" + self.table().to_html(float_format=lambda v: f"{v:.3g}")

    def __repr__(self) -> str:
        cuts = sorted(self._points["decades"].unique())
        held = self._points.groupby("decades")["row"].nunique().sum()
        return f"Backtest(scale={self.scale!r}, cuts at {cuts} decades, {held} held-out predictions)"


def law_only_draws(fit, rows: pd.DataFrame, prediction=None) -> dict:
    """What scoring an extrapolation risk at ``rows`` of ``fit`` needs, without refitting.

    ``log_draws``: the law-only predictive draws of ``log(target)`` (draws, rows); ``distance``:
    decades beyond the fitted runs (:meth:`ScalingFit.extrapolation`); ``log10_x``: the rows'
    ``log10`` law inputs; ``sigma``: the noise scale per draw; ``observed``: the rows' target.
    """
    model = fit.model
    prediction = fit.predict(rows, risk=False) if prediction is None else prediction
    law_x = {x: rows[model.inputs[x]] if model.inputs[x] in rows else rows[x] for x in model.law.inputs}
    has_sigma = "sigma" in fit.parameter_names
    return {
        "log_draws": np.log(prediction.draws("observation")),
        "distance": fit.extrapolation(rows),
        "log10_x": np.column_stack([np.log10(np.asarray(v, dtype=float)) for v in law_x.values()]),
        "sigma": fit.noise_scale(None if model.group is None else rows[model.group]) if has_sigma else None,
        "observed": numeric_column(rows, model.target, "target"),
    }


def summarise(points: pd.DataFrame, by, levels: Sequence[float]) -> pd.DataFrame:
    """Coverage per level, mean ARE, interval score and CRPS, and counts, of pointwise scores grouped ``by``."""
    grouped = points.groupby(by, observed=True)
    table = pd.DataFrame({f"coverage {q:g}": grouped[f"covers {q:g}"].mean() for q in levels})
    table["ARE"] = grouped["are"].mean()
    table[f"interval score {SCORED_LEVEL:g}"] = grouped["interval_score"].mean()
    table["CRPS"] = grouped["crps"].mean()
    table["points"] = grouped.size()
    return table


def _scores(prediction, observed: np.ndarray, levels: Sequence[float]) -> pd.DataFrame:
    """Pointwise scores of a :class:`~bayescale.Prediction` (kind ``"observation"``) against ``observed``."""
    draws = prediction.draws("observation")
    median = np.median(draws, axis=0)
    out = {"observed": observed, "median": median, "are": np.abs(median - observed) / observed}
    for q in levels:
        lower, upper = np.quantile(draws, [(1 - q) / 2, (1 + q) / 2], axis=0)
        out[f"lower {q:g}"], out[f"upper {q:g}"] = lower, upper
        out[f"covers {q:g}"] = (lower <= observed) & (observed <= upper)
    log_draws, log_y = np.log(draws), np.log(observed)
    out["interval_score"] = interval_score(log_draws, log_y, SCORED_LEVEL)
    out["crps"] = crps(log_draws, log_y)
    return pd.DataFrame(out)


def interval_score(draws: np.ndarray, observed: np.ndarray, level: float) -> np.ndarray:
    """Interval score of the central ``level`` interval of ``draws`` (draws, rows) at ``observed`` (rows).

    ``(upper - lower) + (2 / alpha) * (lower - y)+ + (2 / alpha) * (y - upper)+`` with
    ``alpha = 1 - level`` (Gneiting and Raftery 2007): a proper score for the interval.

    Examples
    --------
    >>> draws = np.linspace(-1, 1, 1001)[:, None]
    >>> interval_score(draws, np.array([0.0, 1.9]), 0.9).round(2).tolist()  # inside; 1.0 beyond the upper end
    [1.8, 21.8]
    """
    alpha = 1.0 - level
    lower, upper = np.quantile(draws, [alpha / 2, 1 - alpha / 2], axis=0)
    miss = np.maximum(lower - observed, 0.0) + np.maximum(observed - upper, 0.0)
    return (upper - lower) + 2.0 / alpha * miss


def crps(draws: np.ndarray, observed: np.ndarray, max_draws: int = CRPS_DRAWS) -> np.ndarray:
    """Continuous ranked probability score of the sample ``draws`` (draws, rows) at ``observed``.

    ``E|X - y| - E|X - X'| / 2``, from at most ``max_draws`` evenly thinned draws (the pairwise
    term from the sorted sample, exactly).

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> float(crps(rng.standard_normal((4000, 1)), np.array([0.0]))[0])  # 0.2337 for N(0, 1) at its mean
    0.23...
    """
    draws = np.asarray(draws, dtype=float)
    if len(draws) > max_draws:
        draws = draws[np.linspace(0, len(draws) - 1, max_draws).round().astype(int)]
    n = len(draws)
    first = np.abs(draws - observed[None, :]).mean(axis=0)
    ordered = np.sort(draws, axis=0)
    weights = (2 * np.arange(1, n + 1) - n - 1)[:, None]
    pairwise = 2.0 * (weights * ordered).sum(axis=0) / n**2  # E|X - X'|
    return first - pairwise / 2.0


def _scale_column(model, scale: str | None) -> str:
    if scale is not None:
        if not isinstance(scale, str):
            raise TypeError(f"scale must be a column name, got {scale!r}")
        return scale
    if len(model.law.inputs) == 1:
        return model.inputs[model.law.inputs[0]]
    raise TypeError(
        f"the law has inputs {list(model.law.inputs)}: say which column orders the runs by scale, "
        "e.g. scale='C' for compute"
    )
