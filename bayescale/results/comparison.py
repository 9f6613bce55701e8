"""Compare two training recipes (or datasets) fitted in one model: the posterior of the difference itself.

Fit one :class:`~bayescale.ScalingModel` with the recipe column as its group, choosing which
law parameters differ by recipe (``independent`` or ``pooled``) and which are ``shared``
(say, the irreducible loss). Then :func:`compare` (or :meth:`ScalingFit.compare
<bayescale.ScalingFit.compare>`) answers, per posterior draw, so every answer has a
credible interval:

- :meth:`RecipeComparison.at`: both recipes' mean target, the difference (candidate minus
  baseline) and the relative difference at any scales, and the probability that the
  candidate is better there;
- :meth:`RecipeComparison.crossover`: the probability that the curves cross inside a range,
  and the posterior of where;
- :meth:`RecipeComparison.compute_multiplier`: the factor ``k`` such that the candidate at
  ``k C`` matches the baseline at ``C`` (``k < 1``: the candidate saves compute);
- :meth:`RecipeComparison.parameter_difference`: e.g. the exponent difference.

"At a scale" means the expected value at the given inputs: the law, and beyond a recipe's own
data the risk that its law is wrong there (:mod:`bayescale.model.discrepancy`, independent
per recipe; ``risk=False`` compares the laws alone). For a law of model size and data given a
compute budget ``C`` only, each recipe is taken at its own compute-optimal allocation
(:mod:`bayescale.results.budgets`): the comparison a practitioner with that budget faces.
Whether lower or higher is better is part of the question (``lower_is_better``): loss
vs accuracy.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import pandas as pd

from bayescale.laws.base import with_logs
from bayescale.results import budgets
from bayescale.results.budgets import BudgetPosterior

LOG_MULTIPLIER_RANGE = (-30.0, 30.0)  # bisection bracket of log k in compute_multiplier
BISECTION_STEPS = 80  # 60 / 2^80: exact to float64


class RecipeComparison:
    """Posterior comparison of two groups (recipes) of one fit; build it with :func:`compare`.

    Examples
    --------
    >>> cmp = fit.compare(candidate="tuned", baseline="kaplan")        # doctest: +SKIP
    >>> cmp.at(C=[1e21, 1e23]).interval(0.9)                           # doctest: +SKIP
    >>> cmp.probability_better(C=[1e21, 1e23])                         # doctest: +SKIP
    """

    def __init__(
        self, fit, candidate: str, baseline: str, *, lower_is_better: bool = True, risk: bool = True, **scales
    ) -> None:
        if fit.model.group is None:
            raise ValueError(
                "compare needs a fit with a group column (the recipe), e.g. ScalingModel(..., group='recipe')"
            )
        for role, label in (("candidate", candidate), ("baseline", baseline)):
            if label not in fit.groups:
                raise ValueError(f"{role} {label!r} is not a fitted {fit.model.group}; fitted: {list(fit.groups)}")
        if candidate == baseline:
            raise ValueError(f"candidate and baseline are both {candidate!r}; compare two different groups")
        self.fit, self.candidate, self.baseline = fit, candidate, baseline
        self.lower_is_better = bool(lower_is_better)
        self.scales = dict(scales)  # the default grid of at(), probability_better(), table() and crossover()
        law = fit.model.law
        self._params = {
            label: with_logs(law, {k: jnp.asarray(v)[:, None] for k, v in fit.law_parameters(label).items()})
            for label in (candidate, baseline)
        }
        self.risk = bool(risk) and fit.model.discrepancy is not None

    # -- the law of one recipe at given scales -----------------------------------------
    def _log_target(self, label: str, log_x: dict) -> tuple[jnp.ndarray, np.ndarray]:
        """Log mean target of recipe ``label`` per draw, and where: ``log10`` inputs (draws, rows, inputs).

        ``log_x`` values broadcast against (draws, 1); given ``C`` alone for a law of N and D, the
        recipe is at its compute-optimal allocation.
        """
        law = self.fit.model.law
        p = self._params[label]
        if set(log_x) == set(law.inputs):
            log_target, at = law.log_mean(p, log_x), [log_x[x] for x in law.inputs]
        else:  # compute-optimal allocation
            log_n, log_d, log_target = budgets.log_optimum(law, p, log_x["C"])
            at = [log_n, log_d]
        log_target = np.asarray(log_target)
        where = np.stack([np.broadcast_to(np.asarray(a), log_target.shape) for a in at], axis=-1) / np.log(10.0)
        return log_target, where

    def _both(self, log_x: dict) -> tuple[np.ndarray, np.ndarray]:
        """Candidate and baseline per draw and scale, each with its own extrapolation risk (if any)."""
        cand, cand_at = self._log_target(self.candidate, log_x)
        base, base_at = self._log_target(self.baseline, log_x)
        cand, base = np.broadcast_arrays(cand, base)
        if self.risk:
            rows = cand.shape[1]
            shape = (cand.shape[0], rows, cand_at.shape[-1])
            where = np.concatenate([np.broadcast_to(cand_at, shape), np.broadcast_to(base_at, shape)], axis=1)
            shift = self.fit.risk(where, [self.candidate] * rows + [self.baseline] * rows, self.fit.seed)
            move = self.fit.model.likelihood.shift  # on the residuals' scale: log, or log-odds for a rate
            cand, base = np.asarray(move(cand, shift[:, :rows])), np.asarray(move(base, shift[:, rows:]))
        return cand, base

    def _scales(self, inputs: dict) -> tuple[pd.DataFrame, dict]:
        if not inputs:
            if not self.scales:
                raise TypeError(
                    "give the scales as keywords, e.g. at(C=[1e21, 1e23]), or a default grid when comparing: "
                    "fit.compare(candidate, baseline, C=np.geomspace(1e19, 1e24, 30))"
                )
            inputs = self.scales
        law = self.fit.model.law
        names = tuple(law.inputs)
        two_inputs_by_compute = len(names) == 2 and set(inputs) == {"C"} and "C" not in names
        expected = ("C",) if two_inputs_by_compute else names
        if set(inputs) != set(expected):
            options = f"{list(names)}" + (" or C (each recipe at its compute-optimal split)" if len(names) == 2 else "")
            raise TypeError(f"give the scales as keywords {options}; got {sorted(inputs)}")
        arrays = np.broadcast_arrays(*(np.atleast_1d(np.asarray(inputs[x], dtype=float)) for x in expected))
        for x, a in zip(expected, arrays, strict=True):
            bad = ~(np.isfinite(a) & (a > 0))
            if a.ndim != 1 or bad.any():
                raise ValueError(f"{x} must be positive finite numbers (a scalar or 1-D sequence); got {a.tolist()}")
        rows = pd.DataFrame(dict(zip(expected, arrays, strict=True)))
        return rows, {x: jnp.log(jnp.asarray(a))[None, :] for x, a in zip(expected, arrays, strict=True)}

    # -- answers -----------------------------------------------------------------------
    def at(self, **scales) -> BudgetPosterior:
        """Both recipes, the difference (candidate - baseline) and the relative difference at ``scales``.

        Quantities: ``baseline`` and ``candidate`` (the law's mean target), ``difference``
        and ``relative_difference`` (``candidate / baseline - 1``).
        """
        rows, log_x = self._scales(scales)
        cand, base = self._both(log_x)
        draws = {
            "baseline": base,
            "candidate": cand,
            "difference": np.exp(cand) - np.exp(base),
            "relative_difference": np.expm1(cand - base),
        }
        return BudgetPosterior(rows, draws, linear=("difference", "relative_difference"))

    def probability_better(self, **scales) -> pd.DataFrame:
        """Posterior probability that the candidate beats the baseline at each scale."""
        result = self.at(**scales)
        diff = result.draws("difference")
        better = diff < 0 if self.lower_is_better else diff > 0
        return result.rows.assign(probability_better=better.mean(axis=0))

    def table(self, level: float = 0.9, **scales) -> pd.DataFrame:
        """One row per scale (the comparison's grid unless ``scales`` are given).

        Columns: the scale(s), ``diff_median``, ``diff_lower``, ``diff_upper`` (candidate
        minus baseline, equal-tailed ``level`` interval), the same for ``relative_diff``,
        and ``prob_better``.

        Examples
        --------
        >>> fit.compare(baseline="clip", candidate="mammut", C=np.geomspace(1e9, 1e13, 30)).table()  # doctest: +SKIP
        """
        if not 0 < level < 1:
            raise ValueError(f"level must be in (0, 1), got {level!r}")
        result = self.at(**scales)
        q = [(1 - level) / 2, 0.5, (1 + level) / 2]
        out = result.rows.copy()
        for name, column in (("difference", "diff"), ("relative_difference", "relative_diff")):
            lower, median, upper = np.quantile(result.draws(name), q, axis=0)
            out[f"{column}_median"], out[f"{column}_lower"], out[f"{column}_upper"] = median, lower, upper
        diff = result.draws("difference")
        out["prob_better"] = (diff < 0 if self.lower_is_better else diff > 0).mean(axis=0)
        out.attrs["level"] = level
        return out

    def crossover(self, low: float | None = None, high: float | None = None, *, n_points: int = 200) -> dict:
        """Whether, and where, the two curves cross between ``low`` and ``high`` of the scale.

        ``low`` and ``high`` default to the ends of the comparison's grid.

        The scale is the law's single input, or ``C`` for a law of model size and data
        (compute-optimal allocation per recipe). Per draw, the sign of the difference on a
        log grid of ``n_points``; a draw crosses if the sign changes, at the first change
        (interpolated in log scale).

        Returns
        -------
        dict
            ``probability``: the share of draws that cross; ``draws``: where, for the
            draws that do; ``median``, ``lower``, ``upper``: its median and 90% interval
            (NaN when no draw crosses).
        """
        name = self.scale_name()
        if low is None or high is None:
            if name not in self.scales:
                raise TypeError(f"give the range, crossover(low, high), or a grid: fit.compare(..., {name}=[...])")
            grid = np.asarray(self.scales[name], dtype=float)
            low = float(grid.min()) if low is None else low
            high = float(grid.max()) if high is None else high
        if not (0 < low < high and np.isfinite(high)):
            raise ValueError(f"need 0 < low < high < inf, got low={low!r}, high={high!r}")
        grid = np.geomspace(low, high, n_points)
        diff = self.at(**{name: grid}).draws("difference")
        sign = np.sign(diff)
        change = sign[:, 1:] * sign[:, :-1] < 0
        crosses = change.any(axis=1)
        first = np.argmax(change, axis=1)
        rows = np.flatnonzero(crosses)
        i = first[rows]
        d0, d1 = diff[rows, i], diff[rows, i + 1]
        log_grid = np.log(grid)
        where = np.exp(log_grid[i] + (log_grid[i + 1] - log_grid[i]) * d0 / (d0 - d1))
        summary = np.quantile(where, [0.05, 0.5, 0.95]) if where.size else np.full(3, np.nan)
        return {
            "probability": float(crosses.mean()),
            "draws": where,
            "median": float(summary[1]),
            "lower": float(summary[0]),
            "upper": float(summary[2]),
        }

    def compute_multiplier(self, C) -> BudgetPosterior:
        """``k`` per draw such that the candidate at ``k C`` matches the baseline at ``C``.

        ``k < 1`` means the candidate reaches the baseline's result with less compute. The two
        laws' multiplier, without the extrapolation risk (the risk's draws are tied to fixed
        scales, and ``k`` moves the candidate's).
        Infinite (or zero) where no ``k`` within ``e^+-30`` does: the candidate never
        (or always) gets there. Needs a law in ``C`` alone, or of model size and data
        (compute-optimal allocation per recipe).
        """
        name = self.scale_name()
        if name != "C":
            raise ValueError(f"the compute multiplier needs compute C as the scale; this law's input is {name!r}")
        rows, log_x = self._scales({"C": C})
        target = self._log_target(self.baseline, log_x)[0]
        sign = 1.0 if self.lower_is_better else -1.0
        lo = np.full(target.shape, LOG_MULTIPLIER_RANGE[0])
        hi = np.full(target.shape, LOG_MULTIPLIER_RANGE[1])
        never = np.asarray(self._gap(hi, log_x, target, sign)) > 0  # still worse with e^30 times the compute
        always = np.asarray(self._gap(lo, log_x, target, sign)) <= 0  # already as good with e^-30 times
        for _ in range(BISECTION_STEPS):  # the candidate improves with compute: bisection on log k
            mid = (lo + hi) / 2.0
            worse = np.asarray(self._gap(mid, log_x, target, sign)) > 0
            lo, hi = np.where(worse, mid, lo), np.where(worse, hi, mid)
        log_k = np.where(never, np.inf, np.where(always, -np.inf, (lo + hi) / 2.0))
        return BudgetPosterior(rows, {"multiplier": log_k})

    def _gap(self, log_k, log_x, target, sign):
        """Candidate at ``k C`` minus baseline at ``C`` (log scale), signed so that > 0 is worse."""
        return sign * (self._log_target(self.candidate, {"C": log_x["C"] + log_k})[0] - target)

    def parameter_difference(self, name: str, level: float = 0.9) -> pd.Series:
        """Candidate minus baseline of law parameter ``name`` (e.g. an exponent), with its interval."""
        draws = self.fit.draws(name)
        if draws.ndim == 1:
            raise ValueError(f"{name!r} is shared by all {self.fit.model.group}s: its difference is 0 by construction")
        groups = list(self.fit.groups)
        diff = draws[:, groups.index(self.candidate)] - draws[:, groups.index(self.baseline)]
        lower, median, upper = np.quantile(diff, [(1 - level) / 2, 0.5, (1 + level) / 2])
        return pd.Series(
            {"median": median, "lower": lower, "upper": upper, "probability_positive": float(np.mean(diff > 0))},
            name=f"{name}[{self.candidate}] - {name}[{self.baseline}]",
        )

    def scale_name(self) -> str:
        """The single scale the recipes are compared along: the law's input, or ``C`` for a law of N and D."""
        inputs = self.fit.model.law.inputs
        if len(inputs) == 1:
            return inputs[0]
        if len(inputs) == 2 and "C" not in inputs:
            return "C"
        raise ValueError(f"a crossover or multiplier needs a single scale; this law has inputs {list(inputs)}")


def compare(
    fit, candidate: str, baseline: str, *, lower_is_better: bool = True, risk: bool = True, **scales
) -> RecipeComparison:
    """Compare ``candidate`` with ``baseline``, two groups (recipes) of one hierarchical fit.

    ``scales`` (e.g. ``C=np.geomspace(1e19, 1e24, 30)``) set a default grid for
    :meth:`RecipeComparison.table`, ``at``, ``probability_better`` and ``crossover``.

    Examples
    --------
    >>> cmp = bs.compare(fit, candidate="tuned", baseline="kaplan")    # doctest: +SKIP
    >>> cmp.crossover(1e18, 1e25)["probability"]                       # doctest: +SKIP
    """
    return RecipeComparison(fit, candidate, baseline, lower_is_better=lower_is_better, risk=risk, **scales)
