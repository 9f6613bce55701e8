"""Sampler health: R-hat, ESS, divergences and tree depth, with advice that applies when unhealthy.

The statistics are ArviZ's (for many fits at once, its definitions computed on every series together:
:mod:`bayescale.sampler.rhat_ess`). The rule of what counts as trouble is written once
(:func:`healthy`) and serves one fit (:func:`assess`) and many at once (:func:`health_table`).
A remedy names an option only where that option can help: a dense mass matrix only where
the fit did not already have one, a higher target acceptance only below the one used and where
the trajectories are short (:data:`~bayescale.sampler.options.RERUN_MAX_STEPS`).
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field

import arviz as az
import numpy as np
import pandas as pd
import xarray as xr

from bayescale.sampler import rhat_ess
from bayescale.sampler.options import RERUN_MAX_STEPS, smaller_steps_help

RHAT_MAX = 1.01
ESS_PER_CHAIN_MIN = 100
SATURATION_MAX = 0.01  # share of draws at the maximum tree depth tolerated
FUNNEL_QUANTILE = 0.05  # divergent draws all below this posterior quantile of a spread: a funnel
# R-hat up to which a run short of the health rule runs on (NUTSOptions.extend): chains that disagree more sit
# in regions they do not cross (other modes), and more draws of the same chains do not join them
EXTEND_RHAT_MAX = 1.05


class SamplerWarning(UserWarning):
    """NUTS reported trouble; the message names the parameters and suggests a remedy."""


def ess_wanted(chains: int, draws: int) -> float:
    """The smallest bulk and tail ESS a healthy fit needs: 100 per chain, or a quarter of short chains."""
    return min(ESS_PER_CHAIN_MIN * chains, chains * draws / 4)


def healthy(divergences, max_rhat, min_ess, saturation, chains: int, draws: int):
    """The health rule (scalars or arrays): no divergences, R-hat <= 1.01 (with several chains),
    bulk and tail ESS at least :func:`ess_wanted`, trees at the maximum depth in at most 1% of draws."""
    rhat_ok = np.asarray(max_rhat) <= RHAT_MAX if chains > 1 else True
    return (
        (np.asarray(divergences) == 0)
        & rhat_ok
        & (np.asarray(min_ess) >= ess_wanted(chains, draws))
        & (np.asarray(saturation) <= SATURATION_MAX)
    )


@dataclass(frozen=True)
class Health:
    """Outcome of :func:`assess`: ``healthy`` and, if not, the reasons (one sentence each)."""

    healthy: bool
    problems: tuple[str, ...] = ()
    table: pd.DataFrame = field(default_factory=pd.DataFrame, repr=False)
    divergences: int = 0
    tree_depth_saturation: float = 0.0
    note: str = ""  # how the draws were made, where it matters (a second run after divergences)

    def __str__(self) -> str:
        note = f" ({self.note})" if self.note else ""
        if self.healthy:
            return f"healthy: no divergences, R-hat <= 1.01 and enough effective draws for every parameter{note}"
        return f"unhealthy{note}:\n" + "\n".join(f"- {p}" for p in self.problems)

    def __repr__(self) -> str:
        lines = [
            str(self),
            f"divergences: {self.divergences}; draws at max tree depth: {self.tree_depth_saturation:.1%}",
        ]
        if not self.table.empty:
            lines.append(self.table.round({"r_hat": 3, "ess_bulk": 0, "ess_tail": 0}).to_string())
        return "\n".join(lines)


def _such_as(prior: str) -> str:
    return f", such as {prior}" if prior else ""


def assess(
    idata,
    var_names: list[str],
    max_tree_depth: int,
    *,
    dense_mass: bool = True,
    target_accept_prob: float = 0.9,
    stronger_prior: str = "",
) -> Health:
    """Check a fit's posterior and sample statistics.

    Parameters
    ----------
    idata : arviz.InferenceData
        With ``posterior`` and ``sample_stats`` (``diverging``, ``tree_depth``).
    var_names : list of str
        Parameters to check.
    max_tree_depth : int
        The NUTS setting used, to detect saturated trees.
    dense_mass, target_accept_prob
        The settings used, so that the advice names only options that would change something.
    stronger_prior : str
        A stronger prior the model could use, named where weak identification is the advice
        (e.g. ``'priors="literature"'``); empty: none to name.

    Examples
    --------
    >>> health = assess(fit.idata, ["alpha", "beta"], 10)      # doctest: +SKIP
    """
    post = idata.posterior[var_names]
    n_chains, n_draws = post.sizes["chain"], post.sizes["draw"]
    table = convergence(post)
    stats = idata.sample_stats
    divergences = int(stats["diverging"].sum())
    saturation = float(np.mean(stats["tree_depth"].values >= max_tree_depth))
    steps = float(stats["n_steps"].mean()) if "n_steps" in stats else 0.0
    problems = []
    if divergences:
        funnels = _funnels(idata.posterior, stats["diverging"])
        problems.append(_divergence_advice(divergences, funnels, target_accept_prob, steps, stronger_prior))
    if n_chains > 1:
        bad = table.index[~(table["r_hat"] <= RHAT_MAX)].tolist()
        if bad:
            worst = table.loc[bad, "r_hat"].max()
            ordered = table.loc[bad, "r_hat"].sort_values(ascending=False).index
            apart = next(filter(None, (_chains_apart(idata.posterior, label) for label in ordered)), None)
            advice = (
                "Run more warmup and draws; if it persists the posterior is multimodal or weakly identified "
                f"(consider stronger priors on these parameters{_such_as(stronger_prior)})."
                if apart is None
                else f"{apart}. If more warmup does not bring {'it' if apart.startswith('Chain ') else 'them'} "
                "to the others, the posterior has another mode there, or a region the chains do not cross, and "
                f"more draws will not join them: stronger priors on these parameters{_such_as(stronger_prior)}, "
                "or data that tell the modes apart, will."
            )
            problems.append(f"R-hat above {RHAT_MAX} for {', '.join(bad)} (max {worst:.3f}): chains disagree. {advice}")
    wanted = ess_wanted(n_chains, n_draws)
    low = table.index[~(table[["ess_bulk", "ess_tail"]].min(axis=1) >= wanted)].tolist()
    if low:
        worst = table.loc[low, ["ess_bulk", "ess_tail"]].min().min()
        remedy = "increase draws" + (
            ", or dense_mass=True if the parameters are strongly correlated" if not dense_mass else ""
        )
        problems.append(
            f"low effective sample size for {', '.join(low)} (min {worst:.0f}, want {wanted:.0f}): {remedy}; "
            f"a stronger prior helps where a parameter is weakly identified{_such_as(stronger_prior)}."
        )
    if saturation > SATURATION_MAX:
        remedy = "Use dense_mass=True, " if not dense_mass else ""
        problems.append(
            f"{saturation:.0%} of draws hit max_tree_depth={max_tree_depth}: the sampler is taking very long "
            f"trajectories. {remedy}Raise max_tree_depth, or rescale inputs (reference=...)."
        )
    max_rhat = table["r_hat"].fillna(np.inf).max()
    min_ess = table[["ess_bulk", "ess_tail"]].fillna(0.0).min().min()
    ok = bool(healthy(divergences, max_rhat, min_ess, saturation, n_chains, n_draws))
    return Health(ok, tuple(problems), table, divergences, saturation)


def convergence(post: xr.Dataset) -> pd.DataFrame:
    """R-hat, bulk and tail ESS of every parameter (element) of ``post``, a posterior with (chain, draw) axes."""
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        # chains that never moved give 0/0 inside ArviZ; they show up as NaN and are reported by assess
        warnings.simplefilter("ignore", RuntimeWarning)
        return pd.DataFrame(
            {
                "r_hat": _per_param(az.rhat(post)),
                "ess_bulk": _per_param(az.ess(post, method="bulk")),
                "ess_tail": _per_param(az.ess(post, method="tail")),
            }
        )


def short_of_draws(posterior: dict, stats: dict, var_names, max_tree_depth: int) -> bool:
    """Whether a run (``posterior``: name -> array with (chain, draw) axes; ``stats`` with ``diverging``
    and ``n_steps``) misses the health rule only for want of draws, so that running its chains on
    may mend it (:attr:`~bayescale.sampler.options.NUTSOptions.extend`): no divergences, trees within
    ``max_tree_depth``, R-hat at most :data:`EXTEND_RHAT_MAX`, and R-hat above 1.01 or too few
    effective draws for some parameter. Divergences are not a matter of draws, and neither are chains
    that sit in regions they do not cross.
    """
    chains, draws = np.shape(stats["diverging"])
    depth = np.ceil(np.log2(np.asarray(stats["n_steps"]) + 1))
    saturation = float(np.mean(depth >= max_tree_depth))
    if np.any(stats["diverging"]) or saturation > SATURATION_MAX:
        return False
    table = convergence(az.convert_to_dataset({k: posterior[k] for k in var_names}))
    max_rhat = table["r_hat"].max() if chains > 1 else 1.0
    if not max_rhat <= EXTEND_RHAT_MAX:  # NaN too: chains that never moved
        return False
    return not healthy(0, max_rhat, table[["ess_bulk", "ess_tail"]].min().min(), saturation, chains, draws)


def _chains_apart(posterior, label: str) -> str | None:
    """Which chains sit apart from the rest in the parameter ``label`` (as in :func:`assess`'s table), as
    a sentence naming their medians; ``None`` where none does.

    A chain sits apart where its median lies outside the central 90% of the other chains' draws
    pooled, and their median outside its central 90%: the chains' bulks do not overlap, which
    longer chains do not mend (a chain merely slow to mix overlaps the others).
    """
    name, _, index = label.partition("[")
    values = posterior[name]
    if index:
        dim = values.dims[-1]
        values = values.isel({dim: [str(v) for v in values[dim].values].index(index.removesuffix("]"))})
    draws = np.asarray(values.values).reshape(values.sizes["chain"], -1)
    if not np.isfinite(draws).all():
        return None
    apart = []
    for c in range(len(draws)):
        own, rest = draws[c], np.delete(draws, c, axis=0).ravel()
        lo, hi = np.quantile(rest, [0.05, 0.95])
        own_lo, own_hi = np.quantile(own, [0.05, 0.95])
        if not lo <= np.median(own) <= hi and not own_lo <= np.median(rest) <= own_hi:
            apart.append((c, np.median(own), np.median(rest)))
    if not apart or len(apart) > len(draws) // 2:
        return None
    which = ", ".join(f"{c}" for c, _, _ in apart)
    medians = "; ".join(f"{m:.4g} against {r:.4g}" for _, m, r in apart)
    chains, sit = ("Chain", "sits") if len(apart) == 1 else ("Chains", "sit")
    return f"{chains} {which} of {len(draws)} {sit} apart from the others ({label}: median {medians})"


def _divergence_advice(
    divergences: int, funnels: list[str], target_accept_prob: float, steps: float, stronger_prior: str = ""
) -> str:
    """What to try against divergences, given where they sit, the target acceptance used, the mean
    leapfrog steps per draw (``steps``) and the stronger prior the model could use, if any."""
    higher = 0.99 if target_accept_prob >= 0.95 else 0.95
    smaller = smaller_steps_help(target_accept_prob, steps)
    long = (
        f" The trajectories are long ({steps:.0f} leapfrog steps per draw): the posterior's scales vary more "
        "than one mass matrix follows, and smaller steps would cost several times as much without mending that."
        if steps > RERUN_MAX_STEPS
        else ""
    )
    if funnels:
        # a parameter's spread: make it shared; the spread of the groups' scales (group_scale=True): leave it out
        names = ", ".join(repr(f.removesuffix("_spread")) for f in funnels if f != "scale_spread")
        remedy = (f"make {names} shared if the groups need not differ" if names else "") + (
            f"{' or ' if names else ''}leave group_scale out if the groups share one scale"
            if "scale_spread" in funnels
            else ""
        )
        where = (
            f" They sit at the smallest values of {', '.join(funnels)}: a funnel where the groups' values are "
            f"nearly equal.{long} "
            + ("Try target_accept_prob=0.99, or " if smaller else "")
            + (remedy if smaller else remedy[0].upper() + remedy[1:])
            + "."
        )
    else:
        where = (
            long
            + (f" Try target_accept_prob={higher}, " if smaller else " Try ")
            + f"longer warmup, or tighter priors on the parameters that diverge{_such_as(stronger_prior)} "
            "(arviz.plot_pair(fit.idata, divergences=True) shows where)."
        )
    return f"{divergences} divergent transitions after warmup: the posterior has regions NUTS cannot follow.{where}"


def warn(health: Health, stacklevel: int = 3) -> None:
    """Emit one :class:`SamplerWarning` per problem found by :func:`assess`."""
    for problem in health.problems:
        warnings.warn(problem, SamplerWarning, stacklevel=stacklevel)


def health_table(
    posterior: Mapping[str, np.ndarray],
    sample_stats: Mapping[str, np.ndarray],
    max_tree_depth: int,
    valid: Mapping[str, np.ndarray] | None = None,
) -> tuple[pd.DataFrame, dict[str, pd.DataFrame]]:
    """Per data set of many fits: divergences, worst R-hat and ESS, tree-depth saturation and ``healthy``.

    ``posterior`` maps scalar labels to arrays (data set, chain, draw); ``valid`` optionally
    maps a label to a boolean per data set, False where that data set does not have the
    parameter (a padded group). Also returns R-hat, bulk and tail ESS per data set and label.
    The statistics are ArviZ's definitions, computed for all data sets at once
    (:mod:`bayescale.sampler.rhat_ess`); the rule is :func:`healthy`.
    """
    chains, draws = next(iter(posterior.values())).shape[1:3]
    stats = {k: rhat_ess.all_three(v) for k, v in posterior.items()}
    names = ("r_hat", "ess_bulk", "ess_tail")
    per_label = {name: pd.DataFrame({k: s[i] for k, s in stats.items()}) for i, name in enumerate(names)}
    ok = pd.DataFrame({k: np.ones(len(per_label["r_hat"]), bool) for k in posterior})
    for k, v in (valid or {}).items():
        ok[k] = np.asarray(v, dtype=bool)
    rhat = per_label["r_hat"].fillna(np.inf).where(ok, -np.inf)
    bulk = per_label["ess_bulk"].fillna(0.0).where(ok, np.inf)
    tail = per_label["ess_tail"].fillna(0.0).where(ok, np.inf)
    depth = np.ceil(np.log2(sample_stats["n_steps"] + 1))
    table = pd.DataFrame(
        {
            "divergences": sample_stats["diverging"].sum(axis=(1, 2)).astype(int),
            "max_rhat": rhat.max(axis=1).to_numpy() if chains > 1 else np.nan,
            "min_ess_bulk": bulk.min(axis=1).to_numpy(),
            "min_ess_tail": tail.min(axis=1).to_numpy(),
            "tree_depth_saturation": (depth >= max_tree_depth).mean(axis=(1, 2)),
        }
    )
    table["healthy"] = healthy(
        table["divergences"],
        table["max_rhat"],
        table[["min_ess_bulk", "min_ess_tail"]].min(axis=1),
        table["tree_depth_saturation"],
        chains,
        draws,
    )
    return table, per_label


def unhealthy_reasons(health: pd.DataFrame, wanted: float) -> str:
    """What went wrong across a :func:`health_table`, as a short clause; ``wanted``: the bulk and tail
    ESS a healthy fit needs (:func:`ess_wanted` of its chains and draws)."""
    reasons = []
    if (health["divergences"] > 0).any():
        reasons.append(f"divergences in {(health['divergences'] > 0).sum()}")
    if (health["max_rhat"] > RHAT_MAX).any():
        reasons.append(f"R-hat > {RHAT_MAX} in {(health['max_rhat'] > RHAT_MAX).sum()}")
    if (health["tree_depth_saturation"] > SATURATION_MAX).any():
        reasons.append(f"max tree depth in {(health['tree_depth_saturation'] > SATURATION_MAX).sum()}")
    ess = health[["min_ess_bulk", "min_ess_tail"]].rename(columns={"min_ess_bulk": "bulk", "min_ess_tail": "tail"})
    low = ess.min(axis=1) < wanted
    if low.any():
        kind = ess.min().idxmin()
        reasons.append(f"ESS below {wanted:.0f} in {low.sum()} (lowest: {kind} {ess[kind].min():.0f})")
    return ", ".join(reasons)


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
