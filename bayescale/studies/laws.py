"""Choosing a law by how well it predicts: PSIS-LOO and leave-future-out validation, stacking, averaging.

:func:`compare_laws` fits every candidate model twice:

- on all the data, scored by PSIS-LOO (ArviZ's ``loo``): how well each law predicts a
  run it has not seen *inside* the range of the data;
- on the runs at or below a scale cutoff, scored on the runs above it (leave-future-out):
  the log predictive density, the error of the median and the coverage of the
  predictive intervals of the points the law had to *extrapolate* to.

The two can disagree, and for scaling laws the second is the question. A flexible law
(a broken power law, a free irreducible term) can describe the runs it was fitted on
better than a rigid one, so LOO prefers it, while its extrapolation rests on parameters
that the small runs barely constrain (a break beyond the data, an irreducible loss far
below the last point). Leave-future-out scores exactly that extrapolation, at the price
of noise: it rests on the few largest runs and on one cutoff, so read its standard error
and try a second cutoff before trusting a small difference.

Stacking (Yao et al. 2018) weights the models so that their mixture predicts best: from
the LOO densities (ArviZ's ``compare``) or from the held-out ones. The model-averaged
prediction mixes the full-data fits' posterior draws in those proportions.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence

import arviz as az
import numpy as np
import pandas as pd
from scipy.optimize import minimize
from scipy.special import log_softmax, logsumexp

from bayescale.data import DataError, numeric_column, rows_phrase
from bayescale.results.prediction import Prediction
from bayescale.spec import ScalingModel

LEVELS = (0.5, 0.8, 0.9, 0.95)
WEIGHTS = ("future", "loo")


class LOOWarning(UserWarning):
    """PSIS-LOO is unreliable for some rows (Pareto k above ArviZ's threshold)."""


def compare_laws(
    models: Mapping[str, ScalingModel] | Sequence[ScalingModel],
    data: pd.DataFrame,
    *,
    scale: str | None = None,
    cutoff: float | None = None,
    holdout: float = 0.25,
    seed: int = 0,
    levels: Sequence[float] = LEVELS,
    **fit_options,
) -> LawComparison:
    """Compare scaling models on the same data by PSIS-LOO and by leave-future-out validation.

    Parameters
    ----------
    models : mapping of str to ScalingModel, or sequence of ScalingModel
        The candidates, named (a sequence is named by the laws' names). They must model
        the same target; their laws may differ in form and inputs.
    data : pandas.DataFrame
        The runs, with every model's columns.
    scale : str, optional
        Column that orders the runs by scale (e.g. compute ``"C"``); the future is the
        runs above ``cutoff`` on it. Defaults to the input column when every model has
        the same single input column.
    cutoff : float, optional
        Runs with ``scale <= cutoff`` are fitted, the others held out. Default: the value
        that holds out the largest ``holdout`` fraction of the runs.
    holdout : float
        Fraction of the runs to hold out when ``cutoff`` is not given, in (0, 1).
    seed : int
        Seed of every fit.
    levels : sequence of float
        Levels of the predictive intervals whose held-out coverage is reported.
    **fit_options
        Passed to :meth:`ScalingModel.fit` (``chains``, ``warmup``, ``draws``, NUTS options).

    Returns
    -------
    LawComparison

    Examples
    --------
    >>> import bayescale as bs
    >>> models = {
    ...     "power": bs.ScalingModel(bs.laws.PowerLaw("C"), target="loss"),
    ...     "saturating": bs.ScalingModel(bs.laws.SaturatingPowerLaw("C"), target="loss"),
    ... }
    >>> result = bs.compare_laws(models, df, scale="C", seed=0)     # doctest: +SKIP
    >>> result.table()                                             # doctest: +SKIP
    >>> result.predict(C=1e24).interval(0.9)                       # doctest: +SKIP
    """
    models = _named(models)
    if not isinstance(data, pd.DataFrame):
        raise TypeError(f"data must be a pandas DataFrame, got {type(data).__name__}")
    levels = tuple(float(q) for q in levels)
    if not levels or not all(0 < q < 1 for q in levels):
        raise ValueError(f"levels must be numbers in (0, 1), got {list(levels)}")
    for model in models.values():
        model.validate(data)  # every model's columns and values, before anything is compiled
    scale = _scale_column(models, scale)
    x = numeric_column(data, scale, "scale of the leave-future-out split")
    cutoff = _cutoff(x, cutoff, holdout)
    future = x > cutoff
    past = data[~future]
    for name, model in models.items():
        try:
            model.validate(past)
        except DataError as err:
            raise DataError(
                f"model {name!r} cannot be fitted to the {len(past)} runs with {scale} <= {cutoff:g}: {err}. "
                "Raise the cutoff (or lower holdout)"
            ) from None
    fits = {name: _fit(name, "all runs", model, data, seed, fit_options) for name, model in models.items()}
    future_fits = {
        name: _fit(name, f"runs with {scale} <= {cutoff:g}", model, past, seed, fit_options)
        for name, model in models.items()
    }
    return LawComparison(fits, future_fits, data[future], scale=scale, cutoff=cutoff, levels=levels)


class LawComparison:
    """The result of :func:`compare_laws`.

    Attributes
    ----------
    fits : dict of str to ScalingFit
        Every model fitted to all the data (scored by PSIS-LOO, used for predictions).
    future_fits : dict of str to ScalingFit
        Every model fitted to the runs at or below the cutoff.
    held_out : pandas.DataFrame
        The runs above the cutoff.
    scale, cutoff : str, float
        The split: runs with ``scale > cutoff`` are held out.
    """

    def __init__(self, fits, future_fits, held_out: pd.DataFrame, *, scale: str, cutoff: float, levels) -> None:
        self.fits = dict(fits)
        self.future_fits = dict(future_fits)
        self.held_out = held_out
        self.scale = scale
        self.cutoff = float(cutoff)
        self.levels = tuple(levels)
        self._loo = {name: _loo(name, fit) for name, fit in self.fits.items()}
        with warnings.catch_warnings():
            # the pointwise values were checked (and warned about) above; ArviZ 0.23 also trips pandas 3.1's
            # deprecation of sort_values(inplace=...), which is ArviZ's to fix, not the user's
            warnings.simplefilter("ignore", UserWarning)
            warnings.filterwarnings("ignore", message="The inplace keyword", category=Warning)
            self._loo_table = az.compare(self._loo, ic="loo", method="stacking")
        self._future = {name: self._score(fit) for name, fit in self.future_fits.items()}
        lpd = np.stack([self._future[name]["lpd"] for name in self.fits])
        self._weights = {
            "loo": {name: float(self._loo_table.loc[name, "weight"]) for name in self.fits},
            "future": dict(zip(self.fits, stacking_weights(lpd), strict=True)),
        }

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self.fits)

    def _score(self, fit) -> dict:
        """Held-out log predictive density per row, and the predictive intervals there."""
        ll = fit.log_likelihood(self.held_out)
        lpd = logsumexp(ll, axis=0) - math.log(ll.shape[0])
        draws = fit.predict(self.held_out).draws("observation")
        return {"lpd": lpd, "draws": draws}

    def table(self) -> pd.DataFrame:
        """One row per model, best held-out log predictive density first.

        Columns: ``elpd_future`` and ``se_future`` (sum over the held-out runs of the log
        predictive density of ``log(target)``, and its standard error),
        ``elpd_future_diff`` and ``se_future_diff`` (how far below the best model, and the
        standard error of that paired difference: the column to read), ``are_future``
        (mean absolute relative error of the median prediction), ``coverage_<level>``
        (fraction of held-out runs inside the predictive interval), ``weight_future``
        (stacking weight on the held-out densities); ``elpd_loo``, ``se_loo``, ``p_loo``
        (effective number of parameters), ``elpd_loo_diff``, ``se_loo_diff``, ``max_pareto_k``
        and ``weight_loo`` from PSIS-LOO (ArviZ's ``compare``).
        """
        y = self._observed()
        best = max(self.names, key=lambda name: self._future[name]["lpd"].sum())
        rows = {}
        for name in self.names:
            lpd, draws = self._future[name]["lpd"], self._future[name]["draws"]
            row = {
                "elpd_future": lpd.sum(),
                "se_future": math.sqrt(lpd.size * lpd.var()),
                "elpd_future_diff": self._future[best]["lpd"].sum() - lpd.sum(),
                "se_future_diff": math.sqrt(lpd.size * np.var(self._future[best]["lpd"] - lpd)),
                "are_future": float(np.mean(np.abs(np.median(draws, axis=0) / y - 1.0))),
            }
            for level in self.levels:
                lower, upper = np.quantile(draws, [(1 - level) / 2, (1 + level) / 2], axis=0)
                row[f"coverage_{level:g}"] = float(np.mean((lower <= y) & (y <= upper)))
            row["weight_future"] = self._weights["future"][name]
            loo = self._loo[name]
            row.update(
                elpd_loo=float(loo.elpd_loo),
                se_loo=float(loo.se),
                elpd_loo_diff=float(self._loo_table.loc[name, "elpd_diff"]),
                se_loo_diff=float(self._loo_table.loc[name, "dse"]),
                p_loo=float(loo.p_loo),
                max_pareto_k=float(np.max(loo.pareto_k.values)),
                weight_loo=self._weights["loo"][name],
            )
            rows[name] = row
        table = pd.DataFrame(rows).T.sort_values("elpd_future", ascending=False)
        table.index.name = "model"
        table.attrs.update(scale=self.scale, cutoff=self.cutoff, n_held_out=len(self.held_out))
        return table

    def pointwise(self) -> pd.DataFrame:
        """Per held-out run and model: observed target, median and 90% predictive interval, log density."""
        y = self._observed()
        frames = []
        for name in self.names:
            lpd, draws = self._future[name]["lpd"], self._future[name]["draws"]
            lower, median, upper = np.quantile(draws, [0.05, 0.5, 0.95], axis=0)
            frames.append(
                pd.DataFrame(
                    {
                        "model": name,
                        self.scale: self.held_out[self.scale].to_numpy(),
                        "observed": y,
                        "median": median,
                        "lower": lower,
                        "upper": upper,
                        "lpd": lpd,
                    },
                    index=self.held_out.index,
                )
            )
        return pd.concat(frames)

    def weights(self, kind: str = "future") -> dict[str, float]:
        """Stacking weights per model: ``"future"`` (held-out densities) or ``"loo"`` (PSIS-LOO)."""
        if kind not in WEIGHTS:
            raise ValueError(f"kind must be one of {WEIGHTS}, got {kind!r}")
        return dict(self._weights[kind])

    def predict(
        self, data: pd.DataFrame | None = None, /, *, weights: str | Mapping[str, float] = "future", seed=None, **inputs
    ) -> Prediction:
        """Model-averaged prediction: the full-data fits' draws mixed in proportion to ``weights``.

        Parameters
        ----------
        data : pandas.DataFrame, optional
            Rows at which to predict, with the columns of every model's inputs; or give
            them as keywords (``C=1e24``).
        weights : {"future", "loo"} or mapping of str to float
            Stacking weights to use, or your own (non-negative; normalised here).
        seed : int, optional
            Seed of the observation noise and of which draws are kept; default the fits' seed.

        Examples
        --------
        >>> result.predict(C=[1e23, 1e24]).interval(0.9)           # doctest: +SKIP
        """
        w = self._check_weights(weights)
        if data is None:
            if not inputs:
                raise TypeError("predict needs the inputs, as a DataFrame or as keywords such as C=1e24")
            try:
                columns = dict(zip(inputs, np.broadcast_arrays(*map(np.atleast_1d, inputs.values())), strict=True))
            except ValueError:
                raise ValueError(f"the inputs {list(inputs)} have shapes that do not broadcast together") from None
            data = pd.DataFrame(columns)
        elif inputs:
            raise TypeError("give the new inputs either as a DataFrame or as keywords, not both")
        rng = np.random.default_rng(seed if seed is not None else next(iter(self.fits.values())).seed)
        predictions = {name: self.fits[name].predict(data, seed=seed) for name in self.names}
        n_draws = min(p.draws("mean").shape[0] for p in predictions.values())
        counts = _allocate(np.array([w[name] for name in self.names]), n_draws)
        log_mean, log_obs = [], []
        for name, count in zip(self.names, counts, strict=True):
            pick = rng.permutation(predictions[name].draws("mean").shape[0])[:count]
            log_mean.append(np.log(predictions[name].draws("mean")[pick]))
            log_obs.append(np.log(predictions[name].draws("observation")[pick]))
        inputs_table = next(iter(predictions.values())).inputs
        return Prediction(inputs_table, np.concatenate(log_mean), np.concatenate(log_obs))

    def _check_weights(self, weights) -> dict[str, float]:
        if isinstance(weights, str):
            return self.weights(weights)
        weights = dict(weights)
        if set(weights) != set(self.names):
            raise ValueError(f"weights must name exactly the models {list(self.names)}, got {list(weights)}")
        values = np.array([weights[name] for name in self.names], dtype=float)
        if not (np.all(np.isfinite(values)) and np.all(values >= 0) and values.sum() > 0):
            raise ValueError(f"weights must be finite, non-negative and not all zero, got {weights}")
        return dict(zip(self.names, values / values.sum(), strict=True))

    def _observed(self) -> np.ndarray:
        """The held-out target in the units of the predictions: the target, or ``k / n`` for counts."""
        model = next(iter(self.future_fits.values())).model
        y = self.held_out[model.target].to_numpy(dtype=float)
        return y / self.held_out[model.trials].to_numpy(dtype=float) if model.counts else y

    def __repr__(self) -> str:
        return (
            f"LawComparison({list(self.names)}, {self.scale} <= {self.cutoff:g} fitted, "
            f"{len(self.held_out)} runs held out)"
        )


def stacking_weights(lpd: np.ndarray) -> np.ndarray:
    """Stacking weights from pointwise log predictive densities, shape (models, points).

    The weights on the simplex that maximise ``sum_i log sum_k w_k exp(lpd[k, i])``
    (Yao et al. 2018), optimised over their softmax logits.

    Examples
    --------
    >>> import numpy as np
    >>> w = stacking_weights(np.log([[0.9, 0.9, 0.9], [0.1, 0.1, 0.1]]))
    >>> bool(w[0] > 0.99)
    True
    """
    lpd = np.asarray(lpd, dtype=float)
    n_models = lpd.shape[0]
    if n_models == 1:
        return np.ones(1)

    def loss(z):
        logw = log_softmax(np.append(z, 0.0))
        mix = logsumexp(lpd + logw[:, None], axis=0)
        weights = np.exp(logw)
        share = np.exp(lpd + logw[:, None] - mix)  # posterior share of each model at each point
        grad = (share.sum(axis=1) - lpd.shape[1] * weights)[:-1]
        return -mix.sum(), -grad

    result = minimize(loss, np.zeros(n_models - 1), jac=True, method="BFGS")
    return np.exp(log_softmax(np.append(result.x, 0.0)))


def _allocate(weights: np.ndarray, total: int) -> np.ndarray:
    """Integer counts summing to ``total`` in proportion to ``weights`` (largest remainders)."""
    exact = weights / weights.sum() * total
    counts = np.floor(exact).astype(int)
    counts[np.argsort(counts - exact)[: total - counts.sum()]] += 1
    return counts


def _fit(name: str, which: str, model: ScalingModel, data: pd.DataFrame, seed: int, options: dict):
    """Fit one candidate; its sampler warnings are re-issued saying which model and which data."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fit = model.fit(data, seed=seed, **options)
    for w in caught:
        warnings.warn(f"model {name!r} fitted to {which}: {w.message}", w.category, stacklevel=4)
    return fit


def _named(models) -> dict[str, ScalingModel]:
    if isinstance(models, Mapping):
        named = dict(models)
    elif isinstance(models, Sequence) and not isinstance(models, str):
        names = [getattr(getattr(m, "law", None), "name", None) for m in models]
        if len(set(names)) != len(names):
            raise ValueError(f"models share law names {names}; pass a dict {{name: model}} to name them")
        named = dict(zip(names, models, strict=True))
    else:
        raise TypeError(f"models must be a dict of name -> ScalingModel or a list of them, got {type(models).__name__}")
    if len(named) < 2:
        raise ValueError(f"compare_laws needs at least two models, got {len(named)}")
    for name, model in named.items():
        if not isinstance(model, ScalingModel):
            raise TypeError(f"model {name!r} must be a bs.ScalingModel, got {type(model).__name__}")
    targets = {name: model.target for name, model in named.items()}
    if len(set(targets.values())) > 1:
        raise ValueError(f"the models must predict the same target column to be compared; got {targets}")
    counts = {name: model.counts for name, model in named.items()}
    if len(set(counts.values())) > 1:
        raise ValueError(
            "densities of counts (Binomial) and of log(target) cannot be compared; "
            f"give every model the same kind of likelihood, got Binomial: {counts}"
        )
    return named


def _scale_column(models: Mapping[str, ScalingModel], scale: str | None) -> str:
    if scale is not None:
        if not isinstance(scale, str):
            raise TypeError(f"scale must be a column name (str), got {scale!r}")
        return scale
    columns = {tuple(model.inputs.values()) for model in models.values()}
    if len(columns) == 1 and len(next(iter(columns))) == 1:
        return next(iter(columns))[0]
    raise ValueError(
        "say which column orders the runs by scale, e.g. compare_laws(..., scale='C'); "
        f"the models' inputs {sorted(columns)} do not name a single one"
    )


def _cutoff(x: np.ndarray, cutoff: float | None, holdout: float) -> float:
    if cutoff is None:
        if not (isinstance(holdout, (int, float)) and 0 < holdout < 1):
            raise ValueError(f"holdout must be a fraction in (0, 1), got {holdout!r}")
        cutoff = float(np.quantile(x, 1.0 - holdout, method="lower"))
    elif not (isinstance(cutoff, (int, float)) and math.isfinite(cutoff)):
        raise ValueError(f"cutoff must be a finite number, got {cutoff!r}")
    n_future = int(np.sum(x > cutoff))
    if n_future == 0:
        raise ValueError(f"no run is above the cutoff {cutoff:g} (largest: {x.max():g}); lower it")
    return float(cutoff)


def _loo(name: str, fit):
    """PSIS-LOO of a fit, with ArviZ's Pareto-k warning turned into one that names the rows."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        loo = az.loo(fit.idata, pointwise=True)
    k = loo.pareto_k.values
    bad = k > loo.good_k
    if bad.any():
        index = pd.Index(fit.idata.observed_data["obs"].values)
        warnings.warn(
            f"PSIS-LOO of model {name!r} is unreliable: Pareto k > {loo.good_k:.2f} at {rows_phrase(index, bad)} "
            f"(max {k.max():.2f}); those runs pull the fit enough that leaving one out is not well approximated. "
            "Trust the leave-future-out columns, or check those runs",
            LOOWarning,
            stacklevel=3,
        )
    return loo
