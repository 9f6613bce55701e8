"""Sampler health: R-hat, ESS, divergences and tree depth, with advice when unhealthy.

All statistics come from ArviZ; this module only decides what counts as trouble and
says what to try.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from bayescale._arviz import az

RHAT_MAX = 1.01
ESS_PER_CHAIN_MIN = 100


class SamplerWarning(UserWarning):
    """NUTS reported trouble; the message names the parameters and suggests a remedy."""


@dataclass(frozen=True)
class Health:
    """Outcome of :func:`assess`: ``healthy`` and, if not, the reasons (one sentence each)."""

    healthy: bool
    problems: tuple[str, ...] = ()
    table: pd.DataFrame = field(default_factory=pd.DataFrame, repr=False)
    divergences: int = 0
    tree_depth_saturation: float = 0.0

    def __str__(self) -> str:
        if self.healthy:
            return "healthy: no divergences, R-hat <= 1.01 and enough effective draws for every parameter"
        return "unhealthy:\n" + "\n".join(f"- {p}" for p in self.problems)

    def __repr__(self) -> str:
        lines = [
            str(self),
            f"divergences: {self.divergences}; draws at max tree depth: {self.tree_depth_saturation:.1%}",
        ]
        if not self.table.empty:
            lines.append(self.table.round({"r_hat": 3, "ess_bulk": 0, "ess_tail": 0}).to_string())
        return "\n".join(lines)


def assess(idata, var_names: list[str], max_tree_depth: int) -> Health:
    """Check a fit's posterior and sample statistics.

    Parameters
    ----------
    idata : arviz.InferenceData
        With ``posterior`` and ``sample_stats`` (``diverging``, ``tree_depth``).
    var_names : list of str
        Parameters to check.
    max_tree_depth : int
        The NUTS setting used, to detect saturated trees.
    """
    post = idata.posterior[var_names]
    n_chains, n_draws = post.sizes["chain"], post.sizes["draw"]
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        # chains that never moved give 0/0 inside ArviZ; they show up as NaN and are reported below
        warnings.simplefilter("ignore", RuntimeWarning)
        table = pd.DataFrame(
            {
                "r_hat": _per_param(az.rhat(post)),
                "ess_bulk": _per_param(az.ess(post, method="bulk")),
                "ess_tail": _per_param(az.ess(post, method="tail")),
            }
        )
    problems = []
    stats = idata.sample_stats
    divergences = int(stats["diverging"].sum())
    if divergences:
        funnels = _funnels(idata.posterior, stats["diverging"])
        where = (
            f" They sit at the smallest values of {', '.join(funnels)}: a funnel where the groups' values are "
            "nearly equal. Try target_accept_prob=0.99, or make "
            f"{', '.join(repr(f.removesuffix('_spread')) for f in funnels)} shared if the groups need not differ."
            if funnels
            else " Try target_accept_prob=0.95, longer warmup, or tighter priors on the parameters that diverge "
            "(arviz.plot_pair(fit.idata, divergences=True) shows where)."
        )
        problems.append(
            f"{divergences} divergent transitions after warmup: the posterior has regions NUTS cannot follow.{where}"
        )
    if n_chains > 1:
        bad = table.index[~(table["r_hat"] <= RHAT_MAX)].tolist()
        if bad:
            worst = table.loc[bad, "r_hat"].max()
            problems.append(
                f"R-hat above {RHAT_MAX} for {', '.join(bad)} (max {worst:.3f}): chains disagree. "
                "Run more warmup and draws; if it persists the posterior is multimodal or weakly identified "
                "(consider stronger priors on these parameters)."
            )
    ess_min = ESS_PER_CHAIN_MIN * n_chains
    low = table.index[~(table[["ess_bulk", "ess_tail"]].min(axis=1) >= min(ess_min, n_chains * n_draws / 4))].tolist()
    if low:
        worst = table.loc[low, ["ess_bulk", "ess_tail"]].min().min()
        problems.append(
            f"low effective sample size for {', '.join(low)} (min {worst:.0f}, want {ess_min}): "
            "increase draws, or dense_mass=True / a stronger prior if the parameters are strongly correlated."
        )
    saturation = float(np.mean(stats["tree_depth"].values >= max_tree_depth))
    if saturation > 0.01:
        problems.append(
            f"{saturation:.0%} of draws hit max_tree_depth={max_tree_depth}: the sampler is taking very long "
            "trajectories. Use dense_mass=True, rescale inputs (reference=...), or raise max_tree_depth."
        )
    return Health(not problems, tuple(problems), table, divergences, saturation)


def warn(health: Health, stacklevel: int = 3) -> None:
    """Emit one :class:`SamplerWarning` per problem found by :func:`assess`."""
    for problem in health.problems:
        warnings.warn(problem, SamplerWarning, stacklevel=stacklevel)


FUNNEL_QUANTILE = 0.05  # divergent draws all below this posterior quantile of a spread: a funnel


def _funnels(posterior, diverging) -> list[str]:
    """Between-group spreads whose divergent draws all lie in their lowest :data:`FUNNEL_QUANTILE`.

    Needs at least two divergent draws: one can sit in the lowest 5% of some spread by
    chance (probability 0.05 per spread), two together only with probability 0.0025.
    """
    mask = np.asarray(diverging.values, dtype=bool).ravel()
    if mask.sum() < 2:
        return []
    out = []
    for name, values in posterior.data_vars.items():
        if not name.endswith("_spread") or values.ndim != 2:
            continue
        x = np.asarray(values.values).ravel()
        if np.all(x[mask] <= np.quantile(x, FUNNEL_QUANTILE)):
            out.append(name)
    return out


def _per_param(ds) -> pd.Series:
    """One value per scalar parameter, labelled ``name`` or ``name[group]`` for group-level ones."""
    out = {}
    for name, values in ds.data_vars.items():
        if values.ndim == 0:
            out[name] = float(values)
            continue
        labels = values[values.dims[0]].values
        out.update({f"{name}[{label}]": float(v) for label, v in zip(labels, values.values.ravel(), strict=True)})
    return pd.Series(out)
