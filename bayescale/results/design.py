"""Which run next: the expected narrowing of a target's interval per unit of compute, for candidate runs.

With a posterior in hand, "which run should I train next?" is a decision problem
(preposterior analysis): for a candidate run, simulate the loss it could show (a posterior
draw of its law plus noise), update the posterior on that outcome, and see how much the
target narrows; average over the outcomes; divide by what the run costs.

The update is importance reweighting of the fit's posterior draws: the draws stay, each
weighted by the likelihood of the simulated outcome under it. The expected variance after the
run is the variance now less the variance of the target's updated mean across outcomes (the
law of total variance), an estimate that cannot exceed the variance now; the interval is taken
to narrow with the standard deviation. One extra run moves a posterior fitted on several runs
by little, which is where reweighting is accurate; the effective number of draws left
(``ess``) says when a run would move it so far that only a refit can tell. Outcomes are
simulated once per posterior draw of one world and shared by all candidates, so that a batch
of runs (``budget``) is scored on outcomes consistent with each other. ``docs/design.md`` has
the check against refits.

Beyond the fitted runs a prediction also carries the risk that the law is wrong there, which
grows with the distance from the runs (:mod:`bayescale.model.discrepancy`): its variance adds to
the law's, and a run beyond the runs, towards the target, shortens that distance.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
from scipy import stats

from bayescale.model.discrepancy import hull_distance
from bayescale.results.budgets import FLOPS_PER_PARAMETER_TOKEN

OUTCOMES = 32  # simulated outcomes per candidate (worlds): the expected width is their mean
DRAWS_USED = 1000  # posterior draws reweighted (evenly thinned): weights are (outcomes, draws, candidates)
CANDIDATE_BLOCK = 128  # candidates weighed at once, to bound memory
LOW_ESS = 0.05  # share of draws below which reweighting is not trusted: a warning asks for a refit
RESOLVED = 2.0  # a reduction counts when it exceeds this many Monte Carlo standard errors


class DesignWarning(UserWarning):
    """A run in the ranking would move the posterior too far for reweighting to judge it."""


def next_runs(
    fit,
    candidates: pd.DataFrame,
    *,
    target,
    budget: float | None = None,
    cost=None,
    level: float = 0.9,
    outcomes: int = OUTCOMES,
    seed: int | None = None,
    risk: bool = True,
) -> pd.DataFrame:
    """Rank candidate runs by how much they are expected to narrow ``target``'s interval per unit cost.

    See :meth:`bayescale.ScalingFit.next_runs`.
    """
    model = fit.model
    if model.counts or model.noise is not None:
        raise ValueError(
            "next_runs simulates a new run's noise from the fitted noise scale: a Binomial model (counts) or a "
            "model with a known noise column per row has no such scale for a run not yet made"
        )
    if not isinstance(candidates, pd.DataFrame) or len(candidates) == 0:
        raise TypeError("candidates must be a non-empty pandas DataFrame, one row per run you could train")
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level!r}")
    if isinstance(outcomes, bool) or not isinstance(outcomes, int) or outcomes < 2:
        raise ValueError(f"outcomes must be an integer >= 2, got {outcomes!r}")
    if budget is not None and not (np.isfinite(budget) and budget > 0):
        raise ValueError(f"budget must be a positive number (in the units of the cost), got {budget!r}")
    predicted = fit.predict(candidates, risk=False)  # checks the candidates' columns and values
    costs, cost_name = _costs(model, candidates, predicted.inputs, cost)
    log_mean = np.log(predicted.draws(kind="mean"))  # (draws, candidates)
    t = _target_draws(fit, target, log_mean.shape[0])
    n_draws = len(t)
    keep = np.unique(np.linspace(0, n_draws - 1, min(n_draws, DRAWS_USED)).round().astype(int))
    t, log_mean = t[keep], log_mean[keep]
    reach = _Reach.of(fit, target, predicted.inputs, np.log(t), keep, seed, level) if risk else None
    if reach is not None:  # on the log scale, where the law's and the risk's variances add
        t = np.log(t)
    params = {name: _per_candidate(fit, name, predicted.inputs)[keep] for name in model.likelihood.parameter_names}

    rng = np.random.default_rng(fit.seed if seed is None else seed)
    worlds = rng.choice(len(keep), size=outcomes, replace=len(keep) < outcomes)
    key = jax.random.key(int(rng.integers(2**31 - 1)))
    simulate = model.likelihood.distribution(log_mean[worlds], {k: v[worlds] for k, v in params.items()})
    observed = np.asarray(simulate.sample(key))  # (outcomes, candidates): log target of a new run in each world

    log_weights = _log_weights(model.likelihood, log_mean, params, observed)
    now = np.exp(reach.log_now(model.likelihood, t)) if reach is not None else t
    width_now = float(np.diff(np.quantile(now, [(1 - level) / 2, (1 + level) / 2]))[0])
    t = jnp.asarray(t)
    no_runs = jnp.zeros((outcomes, len(t)))

    table = predicted.inputs.reset_index(drop=True).copy()
    table[cost_name] = costs
    ratio, ratio_se, ess = _after(no_runs, log_weights, t, *_risk_variances(reach, []))
    table["width_now"] = width_now
    table["width_after"] = width_now * ratio
    table["reduction"] = width_now * (1 - ratio)
    table["mc_se"] = width_now * ratio_se
    per = "reduction_per_flop" if cost is None else "reduction_per_cost"
    table[per] = table["reduction"] / costs
    table["ess"] = ess
    # resolved narrowings first (beyond RESOLVED Monte Carlo errors), each part by narrowing per cost
    resolved = (table["reduction"] > RESOLVED * table["mc_se"]).to_numpy()
    order = np.lexsort((-table[per].to_numpy(), ~resolved))
    rank = np.empty(len(table), dtype=int)
    rank[order] = np.arange(1, len(table) + 1)
    table["rank"] = rank
    cut = False
    if budget is not None:
        single = (ratio, ratio_se, ess)  # each candidate alone: the batches' first step
        table["batch"], cut = _greedy(log_weights, t, costs, float(budget), len(t), reach, single)
    table.index = candidates.index
    top = table.sort_values("rank").head(5)
    thin = top[top["ess"] < LOW_ESS * len(t)]
    if len(thin) or cut:
        what = f"{len(thin)} of the 5 best-ranked runs" if len(thin) else "the batch, beyond the runs it holds,"
        warnings.warn(
            f"{what} would move the posterior so far that reweighting its draws keeps fewer than {LOW_ESS:.0%} of "
            "them: reweighting cannot judge further. Refit with simulated outcomes of such runs (model.fit_many "
            "over outcomes) to check them",
            DesignWarning,
            stacklevel=3,
        )
    return table


@dataclass(frozen=True)
class _Reach:
    """How far the target lies beyond the fitted runs, and how near a new run would bring the data to it.

    The extrapolation risk of a prediction (:mod:`bayescale.model.discrepancy`) grows as
    ``distance ** power`` from the convex hull of the fitted runs, so a run beyond the hull, towards
    the target, narrows the target's interval twice: through the law's posterior (reweighting) and
    by shortening the reach. Its share of the variance is that of a normal with the risk's own
    ``level`` interval (the risk is heavy-tailed: its variance would overstate the interval).
    """

    unit: float  # the risk's variance one decade out (normal with the same interval)
    power: float
    fitted: np.ndarray  # log10 inputs of the runs whose hull the target is measured from
    point: np.ndarray  # log10 inputs of the target, (1, inputs)
    runs: np.ndarray  # log10 inputs of each candidate, (candidates, inputs)
    extends: np.ndarray  # per candidate: does its run join the target's hull (its reach: fit.reach)
    now: float  # decades from the target to the fitted runs
    z: np.ndarray  # the risk per kept posterior draw, one decade out

    @classmethod
    def of(cls, fit, target, inputs: pd.DataFrame, log_t: np.ndarray, keep: np.ndarray, seed, level: float):
        """The reach of a target given as inputs (``log_t``: the log of its law value per kept draw); ``None``
        for a target given as draws, a fit without the risk, or a target inside the data."""
        drift = fit.model.discrepancy
        if drift is None or "sigma" not in fit.parameter_names or not isinstance(target, (Mapping, pd.DataFrame)):
            return None
        frame = (
            target
            if isinstance(target, pd.DataFrame)
            else pd.DataFrame({k: np.atleast_1d(v) for k, v in target.items()})
        )
        now = float(fit.extrapolation(frame)[0])
        if now == 0.0:
            return None
        group = fit.model.group
        label = None if group is None else str(frame[group].iloc[0])
        law_inputs = list(fit.model.law.inputs)
        point = np.log10(fit.predict(frame, risk=False).inputs[law_inputs].to_numpy(float))
        z = fit.risk(point, [label], fit.seed if seed is None else seed, distance=np.ones(1))[keep, 0]
        moved = np.asarray(fit.model.likelihood.shift(log_t, z)) - log_t  # one decade out, on the log scale
        tail = (1 + level) / 2
        spread = np.diff(np.quantile(moved, [1 - tail, tail]))[0] / (2 * stats.norm.ppf(tail))
        joins = group is None or label not in fit.groups or fit.model.shares_shape
        extends = np.ones(len(inputs), bool) if joins else (inputs[group].astype(str) == label).to_numpy()
        return cls(
            unit=float(spread**2),
            power=drift.power,
            fitted=fit.reach(label),
            point=point,
            runs=np.log10(inputs[law_inputs].to_numpy(float)),
            extends=extends,
            now=now,
            z=z,
        )

    def log_now(self, likelihood, log_t: np.ndarray) -> np.ndarray:
        """The log of the target now, risk included (what ``fit.predict(target).draws("curve")`` holds)."""
        return np.asarray(likelihood.shift(log_t, self.z * self.now**self.power))


def _risk_variances(reach: _Reach | None, chosen) -> tuple[np.ndarray, float]:
    """The risk's variance at the target after each candidate joins the runs ``chosen`` (candidates,), and now."""
    if reach is None:
        return np.zeros(1), 0.0
    chosen = np.asarray(chosen, dtype=int)
    fitted = np.vstack([reach.fitted, reach.runs[chosen[reach.extends[chosen]]]])
    after = np.full(len(reach.runs), hull_distance(fitted, reach.point)[0])
    outside = np.flatnonzero(reach.extends & (hull_distance(fitted, reach.runs) > 0))
    for c in outside:  # only a run beyond the hull moves it
        after[c] = hull_distance(np.vstack([fitted, reach.runs[c]]), reach.point)[0]
    return reach.unit * after ** (2 * reach.power), reach.unit * reach.now ** (2 * reach.power)


def _target_draws(fit, target, n_draws: int) -> np.ndarray:
    """The target, one value per posterior draw: the law's value at one run's inputs, or draws given."""
    if isinstance(target, Mapping):
        values = {k: np.atleast_1d(v) for k, v in target.items()}
        if any(len(v) != 1 for v in values.values()):
            raise ValueError(f"target must be one point, e.g. {{'N': 7e10, 'D': 1.4e12}}, got {dict(target)!r}")
        target = pd.DataFrame(values)
    if isinstance(target, pd.DataFrame) and len(target) == 1:
        return fit.predict(target, risk=False).draws(kind="mean")[:, 0]
    if isinstance(target, np.ndarray) and target.ndim in (1, 2) and target.size == n_draws:
        draws = target.astype(float).reshape(-1)
        if not np.isfinite(draws).all():
            raise ValueError("target draws must be finite (a quantity some draws cannot reach has no variance)")
        return draws
    raise TypeError(
        "target must be the inputs of one run, as a mapping (e.g. {'N': 7e10, 'D': 1.4e12}) or a one-row DataFrame, "
        f"or one value per posterior draw of this fit ({n_draws}), e.g. fit.optimal(C=1e24).draws('N')[:, 0]; "
        f"got {type(target).__name__}{getattr(target, 'shape', '')}"
    )


def _costs(model, candidates: pd.DataFrame, inputs: pd.DataFrame, cost) -> tuple[np.ndarray, str]:
    """Each candidate's cost and its column name: ``cost`` (a column name or values), else FLOPs from the
    law's ``inputs`` (``6 N D``, or ``C``)."""
    if cost is None:
        if {"N", "D"} <= set(model.law.inputs):
            values = FLOPS_PER_PARAMETER_TOKEN * inputs["N"].to_numpy(float) * inputs["D"].to_numpy(float)
        elif "C" in model.law.inputs:
            values = inputs["C"].to_numpy(float)
        else:
            raise ValueError(
                f"the cost of a run of a law in {list(model.law.inputs)} is not known: give cost= a column of "
                "candidates (or an array, one value per row), e.g. GPU hours"
            )
        name = "flops"
    elif isinstance(cost, str):
        if cost not in candidates:
            raise KeyError(f"cost: no column {cost!r} in candidates; columns are {list(candidates.columns)}")
        values, name = candidates[cost].to_numpy(float), cost
    else:
        values, name = np.asarray(cost, dtype=float), "cost"
        if values.shape != (len(candidates),):
            raise ValueError(f"cost must have one value per candidate ({len(candidates)}), got shape {values.shape}")
    bad = ~(np.isfinite(values) & (values > 0))
    if bad.any():
        rows = candidates.index[bad].tolist()
        raise ValueError(f"cost must be positive and finite; rows {rows[:10]} are not")
    return values, name


def _per_candidate(fit, name: str, inputs: pd.DataFrame) -> np.ndarray:
    """Draws of a noise parameter, (draws, candidates): per group where the fit has one per group."""
    draws = fit.draws(name)
    if draws.ndim == 1:
        return np.broadcast_to(draws[:, None], (len(draws), len(inputs)))
    labels = list(fit.groups)
    rows = inputs[fit.model.group].astype(str)
    unseen = sorted(set(rows) - set(labels))
    if unseen:
        raise ValueError(
            f"{name} is fitted per group, and candidates name groups without runs {unseen}: "
            "a first run of a new group has no noise scale to simulate it with"
        )
    return draws[:, [labels.index(g) for g in rows]]


def _log_weights(likelihood, log_mean, params, observed) -> np.ndarray:
    """log p(observed[k, c] | draw i), shape (outcomes, draws, candidates)."""
    blocks = []
    for first in range(0, log_mean.shape[1], CANDIDATE_BLOCK):
        cut = slice(first, first + CANDIDATE_BLOCK)
        d = likelihood.distribution(log_mean[None, :, cut], {k: v[None, :, cut] for k, v in params.items()})
        blocks.append(np.asarray(d.log_prob(observed[:, None, cut])))
    return np.concatenate(blocks, axis=2)


@jax.jit
def _explained(log_w, t, mean_now):
    """Per outcome: the squared move of ``t``'s mean under the weights ``exp(log_w)``; and the weights' ESS.

    Their mean over outcomes is ``Var(E[t | outcome])``, the variance an outcome explains: by the law
    of total variance the expected variance after the run is the variance now less it, never more.
    """
    w = jnp.exp(log_w - jax.scipy.special.logsumexp(log_w, axis=-1, keepdims=True))
    return (w @ t - mean_now) ** 2, 1.0 / jnp.sum(w**2, axis=-1)


@jax.jit
def _after_block(base, block, t, risk_after, risk_now):
    mean_now, var_law = t.mean(), t.var()
    var_now = var_law + risk_now
    moved, ess = jax.vmap(lambda lw: _explained(base + lw, t, mean_now), in_axes=2)(block)  # (candidates, outcomes)
    k = moved.shape[1]
    explained = jnp.minimum(moved.mean(axis=1), var_law)
    ratio = jnp.sqrt((var_law - explained + risk_after) / var_now)
    # the standard error of the explained share, carried to the sd ratio (delta method)
    se = moved.std(axis=1, ddof=1) / jnp.sqrt(k) / var_now / (2.0 * jnp.maximum(ratio, 1e-3))
    return ratio, se, ess.mean(axis=1)


def _after(base, log_weights, t, risk_after, risk_now) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per candidate, on top of ``base`` (the runs already chosen): the expected sd after it over the sd now
    (``sqrt`` of the expected variance after), that ratio's Monte Carlo standard error, and the mean ESS of
    the reweighted draws. ``risk_after`` (candidates,) and ``risk_now`` add the extrapolation risk's variance
    (:class:`_Reach`) to the law's, after each candidate and now."""
    n = log_weights.shape[2]
    pad = -n % CANDIDATE_BLOCK  # whole blocks: one compiled program
    padded = np.concatenate([log_weights, np.zeros(log_weights.shape[:2] + (pad,))], axis=2)
    risk_after = np.concatenate([np.broadcast_to(risk_after, (n,)), np.zeros(pad)])
    parts = [
        _after_block(
            base,
            jnp.asarray(padded[:, :, first : first + CANDIDATE_BLOCK]),
            t,
            jnp.asarray(risk_after[first : first + CANDIDATE_BLOCK]),
            risk_now,
        )
        for first in range(0, n + pad, CANDIDATE_BLOCK)
    ]
    return tuple(np.concatenate([np.asarray(part[i]) for part in parts])[:n] for i in range(3))


def _greedy(log_weights, t, costs, budget, n_draws, reach, single) -> tuple[np.ndarray, bool]:
    """A batch within ``budget``: the better of two greedy batches (the smaller interval after).

    One adds runs one at a time, each the best resolved narrowing per cost given those before;
    the other first takes the run that narrows the most on its own, then goes on the same way.
    Per cost alone, cheap runs of small effect can crowd out the one run that matters (a run near
    the target); taking the better of the two is the budgeted greedy rule of Krause and Guestrin
    (2005), within a constant factor of the best batch where narrowings add up with diminishing returns.

    ``single`` is what :func:`_after` gives for each candidate alone (ratio, its standard error, ESS).
    Returns each candidate's place in the batch (1, 2, ...; 0 where not chosen), and whether the
    batch stopped because reweighting could not judge another run (too few effective draws left).
    """
    ratio, ratio_se, ess = single
    gain = 1.0 - ratio
    alone = (costs <= budget) & (gain > RESOLVED * ratio_se) & (ess >= LOW_ESS * n_draws)
    batches = [_fill(log_weights, t, costs, budget, n_draws, reach, single, first=None)]
    if alone.any():
        first = int(np.argmax(np.where(alone, gain, -np.inf)))
        batches.append(_fill(log_weights, t, costs, budget, n_draws, reach, single, first=first))
    place, cut, _ = min(batches, key=lambda batch: batch[2])
    return place, cut


def _fill(log_weights, t, costs, budget, n_draws, reach, single, first) -> tuple[np.ndarray, bool, float]:
    """Runs added one at a time (after ``first``, if given), each the best resolved narrowing per cost given
    those before, within ``budget``: each run's place, whether reweighting stopped it, the sd ratio after."""
    place = np.zeros(len(costs), dtype=int)
    base = jnp.zeros(log_weights.shape[:2])
    ratio_now, left = 1.0, budget
    for step in range(1, len(costs) + 1):
        if step == 1:
            ratio, ratio_se, ess = single
        else:
            ratio, ratio_se, ess = _after(base, log_weights, t, *_risk_variances(reach, np.flatnonzero(place)))
        if step == 1 and first is not None:
            best = first
        else:
            gain = ratio_now - ratio
            value = gain / costs
            value[(place > 0) | (costs > left) | (gain <= RESOLVED * ratio_se)] = -np.inf
            best = int(np.argmax(value))
            if not np.isfinite(value[best]):
                return place, False, ratio_now
            if ess[best] < LOW_ESS * n_draws:
                return place, True, ratio_now
        place[best] = step
        base = base + log_weights[:, :, best]
        ratio_now, left = float(ratio[best]), left - costs[best]
    return place, False, ratio_now
