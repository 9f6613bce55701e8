"""Figures of fitted scaling laws (matplotlib only; every function takes ``ax`` and returns it)."""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np
import pandas as pd

from bayescale.laws.base import with_logs

ROW_GROUP = "group_of_obs"  # a fit's constant_data variable with each row's group label


UNITS = {"chinchilla": {"N": "parameters", "D": "tokens"}}  # the inputs' units where a law defines them


def fit(
    fit,
    target: Mapping[str, float] | float | None = None,
    *,
    x: str | None = None,
    ax=None,
    levels: tuple[float, ...] = (0.5, 0.9),
    n_points: int = 120,
    units: Mapping[str, str] | None = None,
):
    """Data, the posterior median curve and its credible bands, extended to a target budget.

    The bands are those of the expected value (``kind="curve"`` of :meth:`ScalingFit.predict`):
    beyond the data they widen with the risk that the law is wrong there; a dashed line marks
    where the data end. For a law of several inputs the curve follows the ray through the
    target that keeps the ratios between inputs fixed (for Chinchilla: constant tokens per
    parameter D/N), plotted against input ``x``; the data are drawn at their own ``x``.

    Parameters
    ----------
    fit : ScalingFit
    target : mapping or float, optional
        Target inputs, e.g. ``{"N": 7e10, "D": 1.4e12}``; a number for a one-input law.
        It is marked with the median and 90% interval of a new run there.
    x : str, optional
        Input on the horizontal axis (default: the law's first input).
    ax : matplotlib Axes, optional
    levels : tuple of float
        Credible levels of the shaded bands.
    n_points : int
        Points along the curve.
    units : mapping, optional
        Units of the inputs and the target for the axis labels, e.g. ``{"C": "FLOPs", "loss": "nats"}``
        (the Chinchilla law's N and D are parameters and tokens by default).

    Returns
    -------
    matplotlib.axes.Axes

    Examples
    --------
    >>> ax = bs.plot.fit(fit, target={"N": 7e10, "D": 1.4e12}, units={"loss": "nats"})    # doctest: +SKIP
    >>> ax.figure.savefig("fit.png")                                                       # doctest: +SKIP
    """
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FormatStrFormatter

    model = fit.model
    law = model.law
    x = law.inputs[0] if x is None else x
    if x not in law.inputs:
        raise ValueError(f"x must be one of the law's inputs {list(law.inputs)}, got {x!r}")
    target = target_dict(target, law.inputs)
    units = {**UNITS.get(law.name, {}), **(units or {})}
    data = {name: fit.idata.constant_data[model.inputs[name]].values for name in law.inputs}
    y = fit.observed()

    path = _path(data, target, x, n_points, fit.log_references)
    curve_draws = fit.predict(path).draws("mean" if model.counts else "curve")
    if ax is None:
        _, ax = plt.subplots(figsize=(7.0, 4.6), layout="constrained")
    colour = "C0"
    for level in sorted(levels, reverse=True):
        lower, upper = np.quantile(curve_draws, [(1 - level) / 2, (1 + level) / 2], axis=0)
        ax.fill_between(
            path[x], lower, upper, color=colour, alpha=0.22 + 0.22 * (level < 0.75), linewidth=0,
            label=f"{level:.0%} credible band",
        )  # fmt: skip
    ax.plot(path[x], np.median(curve_draws, axis=0), color=colour, label="posterior median")
    ax.axvline(data[x].max(), color="0.4", linestyle="--", linewidth=0.8, label="end of the data")
    others = [k for k in law.inputs if k != x]
    if others:  # colour runs by their ratio to x (tokens per parameter for Chinchilla), as the curve is at one ratio
        ratio = data[others[0]] / data[x]
        points = ax.scatter(data[x], y, s=14, c=np.log10(ratio), cmap="viridis", zorder=3, label=f"runs ({len(y)})")
        bar = ax.figure.colorbar(points, ax=ax, pad=0.02)
        bar.set_label(f"log10 {others[0]}/{x} of each run")
    else:
        ax.scatter(data[x], y, s=12, color="0.25", alpha=0.7, zorder=3, label=f"runs ({len(y)})")
    if target is not None:
        kind = "mean" if model.counts else "observation"  # a new count needs a benchmark size; show the rate
        t = fit.predict(pd.DataFrame({k: [v] for k, v in target.items()})).interval(0.9, kind=kind)
        med, lo, hi = (float(t[c].iloc[0]) for c in ("median", "lower", "upper"))
        ax.errorbar(
            [target[x]], [med], yerr=[[med - lo], [hi - med]], fmt="D", color="C3", capsize=4, zorder=4,
            label=f"target: {med:.4g} [{lo:.4g}, {hi:.4g}] (90%, {'rate' if model.counts else 'a new run'})",
        )  # fmt: skip
    ax.set_xscale("log")
    if model.counts:  # a rate in [0, 1], zeros included: a linear axis
        ax.set_ylabel(f"{model.target} / {model.trials}")
    else:
        ax.set_yscale("log")
        ax.yaxis.set_major_formatter(FormatStrFormatter("%g"))
        ax.yaxis.set_minor_formatter(FormatStrFormatter("%g"))
        ax.set_ylabel(_label(model.target, units.get(model.target)))
    column = model.inputs[x]
    ax.set_xlabel(_label(column if column == x else f"{column} ({x})", units.get(column, units.get(x))))
    title = f"{model.target} = {law.formula}"
    if len(law.inputs) > 1:
        anchor = target if target is not None else {k: float(np.exp(fit.log_references[k])) for k in law.inputs}
        ratios = ", ".join(f"{k}/{x} = {anchor[k] / anchor[x]:.3g}" for k in law.inputs if k != x)
        title += f"\ncurve at fixed {ratios}"
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.14), ncols=3, frameon=False)
    return ax


def _label(name: str, unit: str | None) -> str:
    return name if not unit else f"{name} [{unit}]"


def target_dict(target, inputs):
    if target is None:
        return None
    if not isinstance(target, Mapping):
        if len(inputs) != 1:
            raise TypeError(f"target must be a mapping of the law's inputs {list(inputs)}, got {target!r}")
        target = {inputs[0]: target}
    missing = [k for k in inputs if k not in target]
    extra = [k for k in target if k not in inputs]
    if missing or extra:
        raise ValueError(
            f"target must give exactly the law's inputs {list(inputs)}; missing {missing}, unknown {extra}"
        )
    out = {k: float(target[k]) for k in inputs}
    bad = [k for k, v in out.items() if not (np.isfinite(v) and v > 0)]
    if bad:
        raise ValueError(f"target inputs must be finite and > 0; bad: {bad}")
    return out


def _path(data, target, x, n_points, log_refs) -> pd.DataFrame:
    """Inputs along the ray of fixed ratios through the target (or the data's centre)."""
    anchor = target if target is not None else {k: float(np.exp(log_refs[k])) for k in data}
    lo = min(data[x].min(), anchor[x])
    hi = max(data[x].max(), anchor[x])
    scale = np.geomspace(lo, hi, n_points) / anchor[x]
    return pd.DataFrame({k: anchor[k] * scale for k in data})


def forest(fit, names: list[str] | None = None, *, level: float = 0.9, fig=None):
    """Per-group parameters of a hierarchical fit, one panel per parameter.

    Each group's posterior median and ``level`` interval, with the population median
    (line) and the interval for a new, unseen group (shaded: population spread included).

    Parameters
    ----------
    fit : ScalingFit
        A fit with a group column.
    names : list of str, optional
        Parameters to show (default: every parameter that varies by group).
    level : float
        Credible level of the intervals.
    fig : matplotlib Figure, optional

    Returns
    -------
    matplotlib.figure.Figure

    Examples
    --------
    >>> bs.plot.forest(fit, ["alpha", "beta"]).savefig("forest.png")      # doctest: +SKIP
    """
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FormatStrFormatter

    model = fit.model
    if model.group is None:
        raise ValueError("forest() needs a fit with a group column (ScalingModel(..., group=...))")
    varying = [k for k, v in model.treatments.items() if v != "shared"]
    names = varying if names is None else list(names)
    bad = [k for k in names if k not in varying]
    if bad:
        raise ValueError(f"{bad} do not vary by group; parameters that do: {varying}")
    groups = fit.groups
    fig = fig or plt.figure(figsize=(3.2 * len(names), 0.35 * len(groups) + 1.6))
    axes = fig.subplots(1, len(names), sharey=True, squeeze=False)[0]
    q = [(1 - level) / 2, 0.5, (1 + level) / 2]
    new_group = _new_group_draws(fit, names)
    y = np.arange(len(groups))
    for ax, name in zip(axes, names, strict=True):
        lo, med, hi = np.quantile(fit.draws(name), q, axis=0)
        ax.hlines(y, lo, hi, color="C0")
        ax.plot(med, y, "o", color="C0", ms=4)
        if name in new_group:
            nlo, nmed, nhi = np.quantile(new_group[name], q)
            ax.axvspan(nlo, nhi, color="C1", alpha=0.15, label=f"new {model.group} ({level:.0%})")
            ax.axvline(nmed, color="C1", lw=1, label="population median")
        ax.set_title(name)
        if name in model.noise_names or model.law.parameter(name).transform == "log":
            ax.set_xscale("log")
            ax.xaxis.set_major_formatter(FormatStrFormatter("%g"))
            low, high = ax.get_xlim()
            if high / low < 10:  # within a decade the minor ticks are the only labels
                ax.xaxis.set_minor_formatter(FormatStrFormatter("%g"))
            ax.tick_params(axis="x", which="both", labelsize=7, labelrotation=45)
    axes[0].set_yticks(y, groups)
    axes[0].invert_yaxis()
    axes[-1].legend(fontsize=7, loc="best")
    fig.tight_layout()
    return fig


def _new_group_draws(fit, names):
    """Parameter draws of an unseen group (population predictive), for pooled parameters."""
    pooled = [k for k in names if fit.model.treatments[k] == "pooled" and f"{k}_pop" in fit.parameter_names]
    if not pooled:
        return {}
    rng = np.random.default_rng(fit.seed)
    out = {}
    for k in pooled:
        # prefactors are pooled at the reference scale, so in the user's units a new group's value also moves
        # with its exponent; the band is drawn for the other parameters only
        par = fit.model.law.parameter(k) if k in fit.model.law.parameter_names else None  # else the noise scale
        if par is not None and par.prefactor_of is not None:
            continue
        pop, spread = fit.draws(f"{k}_pop"), fit.draws(f"{k}_spread")
        if f"{k}_outer_spread" in fit.parameter_names:  # nested: a new group of a new outer group
            spread = np.hypot(spread, fit.draws(f"{k}_outer_spread"))
        if k in fit.model.scaled_names:  # and its own scale
            spread = np.hypot(spread, fit.draws("scale_spread"))
        z = rng.standard_normal(pop.shape)
        out[k] = pop * np.exp(spread * z) if par is None or par.transform == "log" else pop + spread * z
    return out


def groups(fit, *, x: str | None = None, ax=None, level: float = 0.9, n_points: int = 100):
    """All groups of a hierarchical fit on one axes: each group's data and median curve with its band.

    Every group's curve spans the whole range of ``x`` in the data, so groups with few
    runs show their extrapolation. For a law of several inputs each group's curve keeps
    the input ratios at that group's geometric mean (for Chinchilla: the group's typical
    tokens per parameter).

    Examples
    --------
    >>> bs.plot.groups(fit).figure.savefig("families.png")      # doctest: +SKIP
    """
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FormatStrFormatter

    model = fit.model
    if model.group is None:
        raise ValueError("groups() needs a fit with a group column (ScalingModel(..., group=...))")
    law = model.law
    x = law.inputs[0] if x is None else x
    if x not in law.inputs:
        raise ValueError(f"x must be one of the law's inputs {list(law.inputs)}, got {x!r}")

    const = fit.idata.constant_data
    labels = const[ROW_GROUP].values.astype(str)
    data = {k: const[model.inputs[k]].values for k in law.inputs}
    y = fit.observed()
    if ax is None:
        _, ax = plt.subplots(figsize=(7, 4.8))
    for i, g in enumerate(fit.groups):
        rows = labels == g
        colour = f"C{i % 10}"
        log_centre = {k: float(np.mean(np.log(data[k][rows]))) for k in law.inputs}
        path = _path(data, None, x, n_points, log_centre)
        path[model.group] = g
        draws = fit.predict(path).draws("mean")
        lo, med, hi = np.quantile(draws, [(1 - level) / 2, 0.5, (1 + level) / 2], axis=0)
        ax.fill_between(path[x], lo, hi, color=colour, alpha=0.15, linewidth=0)
        ax.plot(path[x], med, color=colour, lw=1.2)
        ax.scatter(data[x][rows], y[rows], s=10, color=colour, label=f"{g} ({rows.sum()})", zorder=3)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.yaxis.set_major_formatter(FormatStrFormatter("%g"))
    ax.yaxis.set_minor_formatter(FormatStrFormatter("%g"))
    ax.set_xlabel(model.inputs[x])
    ax.set_ylabel(model.target)
    ax.set_title(f"{law!r} by {model.group}: median and {level:.0%} band of each", fontsize=10)
    ax.legend(fontsize=7, ncol=2, loc="best")
    return ax


def frontier(fit, C=None, *, k: float = 6.0, group: str | None = None, level: float = 0.9, fig=None):
    """The compute-optimal frontier: ``N*``, ``D*`` and ``L*`` against compute, with credible bands.

    Parameters
    ----------
    fit : ScalingFit
        A fit of a law of model size and data.
    C : sequence of float, optional
        Budgets in FLOPs; default from the smallest training compute ``k N D`` in the
        data to 1,000 times the largest.
    k, group
        As in :meth:`ScalingFit.optimal`.
    level : float
        Mass of the bands.

    Returns
    -------
    matplotlib.figure.Figure
        Two axes: the allocation (left) and the optimal loss (right).

    Examples
    --------
    >>> bs.plot.frontier(fit, group="OPT").savefig("frontier.png")     # doctest: +SKIP
    """
    import matplotlib.pyplot as plt

    budgets = _default_budgets(fit, k) if C is None else np.asarray(C, dtype=float)
    opt = fit.optimal(C=budgets, k=k, group=group)
    if fig is None:
        fig = plt.figure(figsize=(10, 4), layout="constrained")
    left, right = fig.subplots(1, 2)
    quantiles = [(1 - level) / 2, 0.5, (1 + level) / 2]
    for ax, names in ((left, ("N", "D")), (right, ("loss",))):
        for name in names:
            lower, median, upper = np.quantile(opt.draws(name), quantiles, axis=0)
            (line,) = ax.plot(budgets, median, label=f"{name}*" if name != "loss" else "L* (mean loss)")
            ax.fill_between(budgets, lower, upper, color=line.get_color(), alpha=0.25, linewidth=0)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel(f"compute C = {k:g} N D (FLOPs)")
        ax.legend()
    left.set_ylabel("compute-optimal parameters and tokens")
    right.set_ylabel(fit.model.target)
    title = f"{level:.0%} credible bands" + (f", {fit.model.group} {group}" if group is not None else "")
    fig.suptitle(title)
    return fig


def isoflop(fit, C, *, k: float = 6.0, group: str | None = None, level: float = 0.9, n_points: int = 80, ax=None):
    """IsoFLOP curves: the law's mean loss against ``N`` at fixed budgets, with the posterior of the optimum.

    Each budget gets its median curve and band over ``N`` (tokens ``D = C / (k N)``),
    and a marker at the median loss-optimal ``N*`` with a horizontal bar spanning its
    credible interval.

    Examples
    --------
    >>> bs.plot.isoflop(fit, C=[1e19, 1e20, 1e21]).figure.savefig("isoflop.png")   # doctest: +SKIP
    """
    import matplotlib.pyplot as plt

    law = fit.model.law
    size, data = law.inputs
    budgets = np.atleast_1d(np.asarray(C, dtype=float))
    p = with_logs(law, {name: v[:, None] for name, v in fit.law_parameters(group).items()})
    opt = fit.optimal(C=budgets, k=k, group=group)
    n_opt = np.quantile(opt.draws("N"), [(1 - level) / 2, 0.5, (1 + level) / 2], axis=0)
    if ax is None:
        _, ax = plt.subplots(figsize=(7, 4.5))
    for i, c in enumerate(budgets):
        n = np.geomspace(n_opt[1, i] / 30, n_opt[1, i] * 30, n_points)
        loss = np.exp(np.asarray(law.log_mean(p, {size: np.log(n)[None, :], data: np.log(c / (k * n))[None, :]})))
        lower, median, upper = np.quantile(loss, [(1 - level) / 2, 0.5, (1 + level) / 2], axis=0)
        (line,) = ax.plot(n, median, label=f"C = {c:.0e}")
        ax.fill_between(n, lower, upper, color=line.get_color(), alpha=0.2, linewidth=0)
        best = np.interp(np.log(n_opt[1, i]), np.log(n), median)
        ax.errorbar(
            n_opt[1, i],
            best,
            xerr=[[n_opt[1, i] - n_opt[0, i]], [n_opt[2, i] - n_opt[1, i]]],
            fmt="o",
            color=line.get_color(),
            capsize=3,
        )
    ax.set_xscale("log")
    ax.set_xlabel(f"{size} (tokens {data} = C / ({k:g} {size}))")
    ax.set_ylabel(f"{fit.model.target} (mean)")
    ax.set_title(f"IsoFLOP curves; markers: optimal {size} with {level:.0%} interval")
    ax.legend()
    return ax


def _default_budgets(fit, k: float, n_points: int = 50) -> np.ndarray:
    """From the smallest training compute in the data to 1,000 times the largest."""
    size, data = fit.model.law.inputs
    columns = fit.idata.constant_data
    compute = k * columns[fit.model.inputs[size]].values * columns[fit.model.inputs[data]].values
    return np.geomspace(compute.min(), 1000 * compute.max(), n_points)


def comparison(cmp, low: float, high: float, *, level: float = 0.9, n_points: int = 100, fig=None):
    """Two recipes on one axis with bands, and underneath their difference with its band and P(better).

    Parameters
    ----------
    cmp : RecipeComparison
        From :meth:`ScalingFit.compare` or :func:`bayescale.compare`.
    low, high : float
        Range of the scale: the law's input, or compute ``C`` for a law of model size and
        data (each recipe at its compute-optimal split).

    Examples
    --------
    >>> bs.plot.comparison(fit.compare("tuned", "kaplan"), 1e18, 1e24).savefig("cmp.png")   # doctest: +SKIP
    """
    import matplotlib.pyplot as plt

    name = cmp.scale_name()
    grid = np.geomspace(low, high, n_points)
    result = cmp.at(**{name: grid})
    quantiles = [(1 - level) / 2, 0.5, (1 + level) / 2]
    if fig is None:
        fig = plt.figure(figsize=(7, 6), layout="constrained")
    top, bottom = fig.subplots(2, 1, sharex=True, height_ratios=[3, 2])
    for label, quantity in ((cmp.baseline, "baseline"), (cmp.candidate, "candidate")):
        lower, median, upper = np.quantile(result.draws(quantity), quantiles, axis=0)
        (line,) = top.plot(grid, median, label=f"{label} ({quantity})")
        top.fill_between(grid, lower, upper, color=line.get_color(), alpha=0.25, linewidth=0)
    top.set_xscale("log")
    top.set_ylabel(f"{cmp.fit.model.target} (mean)")
    top.set_title(f"{level:.0%} credible bands")
    top.legend()
    diff = result.draws("difference")
    lower, median, upper = np.quantile(diff, quantiles, axis=0)
    (line,) = bottom.plot(grid, median, color="black", label="candidate - baseline")
    bottom.fill_between(grid, lower, upper, color="grey", alpha=0.3, linewidth=0)
    bottom.axhline(0.0, color="grey", linewidth=0.8)
    bottom.set_ylabel("difference")
    bottom.set_xlabel(name)
    better = np.mean(diff < 0 if cmp.lower_is_better else diff > 0, axis=0)
    twin = bottom.twinx()
    twin.plot(grid, better, color="tab:green", linestyle="--", label="P(candidate better)")
    twin.set_ylim(0, 1)
    twin.set_ylabel("P(candidate better)", color="tab:green")
    bottom.legend(loc="upper left")
    return fig


def rank_histograms(counts: pd.DataFrame, n_sims: int, pvalues: pd.Series | None = None, *, fig=None):
    """Rank histograms of a simulation-based calibration study, one panel per parameter.

    The grey band is the central 99% range of a bin's count when ranks are uniform
    (Binomial(n_sims, 1 / bins)); a calibrated model leaves about 1 bar in 100 outside it.
    A U shape means posteriors too narrow, a hump too wide, a slope a biased posterior.

    Parameters
    ----------
    counts : pandas.DataFrame
        Rows: bins; columns: parameters (:meth:`bayescale.studies.calibration.SBCStudy.histogram`).
    n_sims : int
        Number of simulations.
    pvalues : pandas.Series, optional
        Uniformity p-values to print in the panel titles.

    Examples
    --------
    >>> study.plot().savefig("sbc.png")                     # doctest: +SKIP
    """
    import matplotlib.pyplot as plt
    from scipy import stats

    names = list(counts.columns)
    bins = len(counts)
    cols = min(4, len(names))
    rows = math.ceil(len(names) / cols)
    if fig is None:
        fig = plt.figure(figsize=(3.2 * cols, 2.4 * rows), layout="constrained")
    axes = np.atleast_1d(fig.subplots(rows, cols, squeeze=False)).ravel()
    low, high = stats.binom.ppf([0.005, 0.995], n_sims, 1.0 / bins)
    for ax, name in zip(axes, names, strict=False):
        ax.axhspan(low, high, color="grey", alpha=0.25, linewidth=0)
        ax.axhline(n_sims / bins, color="grey", linewidth=0.8)
        ax.bar(np.arange(bins), counts[name].to_numpy(), width=1.0, color="tab:blue", edgecolor="white")
        title = name if pvalues is None else f"{name} (p = {pvalues[name]:.2g})"
        ax.set_title(title, fontsize=9)
        ax.set_xticks([])
    for ax in axes[len(names) :]:
        ax.set_visible(False)
    fig.supxlabel("rank of the truth among posterior draws")
    fig.supylabel("simulations")
    return fig


def coverage(table: pd.DataFrame, levels, *, ax=None):
    """Coverage of held-out runs against the distance beyond the fitted data, one line per predictor and level.

    Parameters
    ----------
    table : pandas.DataFrame
        :meth:`bayescale.validation.Backtest.table` with ``by="distance"``: indexed by distance
        bin and predictor, with a ``coverage <level>`` column per level.
    levels : sequence of float
        The levels to draw; each has a dotted line at its nominal coverage.

    Examples
    --------
    >>> study.plot()                                        # doctest: +SKIP
    """
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(6.4, 4.0), layout="constrained")
    bins = list(dict.fromkeys(table.index.get_level_values(0)))
    labels = [f"{max(b.left, 0):g}-{b.right:g}" if np.isfinite(b.right) else f"> {b.left:g}" for b in bins]
    predictors = list(dict.fromkeys(table.index.get_level_values(1)))
    styles = ["-", "--", ":", "-."]
    colours = plt.get_cmap("viridis")(np.linspace(0.1, 0.85, len(levels)))
    for i, name in enumerate(predictors):
        part = table.xs(name, level=1).reindex(bins)
        for q, colour in zip(levels, colours, strict=True):
            ax.plot(
                range(len(bins)), part[f"coverage {q:g}"].to_numpy(), styles[i % 4], marker="o", color=colour,
                label=f"{name}, {q:.0%}",
            )  # fmt: skip
    for q, colour in zip(levels, colours, strict=True):
        ax.axhline(q, color=colour, linewidth=0.8, alpha=0.5)
    ax.set_xticks(range(len(bins)), labels)
    ax.set_xlabel("decades beyond the fitted runs")
    ax.set_ylabel("share of held-out runs inside the interval")
    ax.set_ylim(0, 1.02)
    ax.legend(fontsize=7, ncols=len(predictors), loc="lower left", frameon=False)
    return ax


def next_runs(fit, table: pd.DataFrame, *, target=None, ax=None):
    """Where the next run pays: each candidate of :meth:`ScalingFit.next_runs` coloured by narrowing per cost.

    For a law of two inputs (N and D) the candidates sit on the plane of the inputs beside the
    fitted runs (grey crosses) and the ``target`` (a star); for a law of one input, narrowing
    per cost is plotted against it. Runs of a greedy batch are ringed and numbered; candidates
    whose narrowing is within twice its Monte Carlo error are drawn hollow.

    Examples
    --------
    >>> table = fit.next_runs(cand, target={"N": 7e10, "D": 1.4e12}, budget=1e21)    # doctest: +SKIP
    >>> bs.plot.next_runs(fit, table, target={"N": 7e10, "D": 1.4e12})                # doctest: +SKIP
    """
    import matplotlib.pyplot as plt
    from matplotlib.colors import LogNorm

    law = fit.model.law
    per = "reduction_per_flop" if "reduction_per_flop" in table else "reduction_per_cost"
    if per not in table:
        raise ValueError("table must be what fit.next_runs returned (it has no reduction_per_flop column)")
    if len(law.inputs) > 2:
        raise ValueError(f"next_runs draws laws of one or two inputs, not {list(law.inputs)}")
    if ax is None:
        _, ax = plt.subplots(figsize=(7, 5))
    positive = table[per][table[per] > 0]
    value = table[per].clip(lower=positive.min() if len(positive) else 1.0)  # a log scale shows no zero
    resolved = (table["reduction"] > 2 * table["mc_se"]).to_numpy()
    fitted = {x: fit.idata.constant_data[fit.model.inputs[x]].values for x in law.inputs}
    x = law.inputs[0]
    y_of = (lambda frame: frame[law.inputs[1]]) if len(law.inputs) == 2 else (lambda frame: value.loc[frame.index])
    norm = LogNorm(vmin=value.min(), vmax=value.max())
    points = ax.scatter(table[x][resolved], y_of(table)[resolved], c=value[resolved], cmap="viridis", norm=norm, s=28)
    ax.scatter(
        table[x][~resolved], y_of(table)[~resolved], facecolors="none", edgecolors="0.6", s=28, label="within noise"
    )
    if len(law.inputs) == 2:
        ax.scatter(fitted[x], fitted[law.inputs[1]], marker="x", color="0.3", s=18, label="fitted runs")
        if target is not None:
            ax.scatter(target[x], target[law.inputs[1]], marker="*", color="crimson", s=160, label="target")
        ax.set_yscale("log")
        ax.set_ylabel(law.inputs[1])
        ax.figure.colorbar(points, ax=ax).set_label(per.replace("_", " "))
    else:
        ax.plot(fitted[x], np.full(len(fitted[x]), value.min()), "|", color="0.3", markersize=12, label="fitted runs")
        ax.set_yscale("log")
        ax.set_ylabel(per.replace("_", " "))
    if "batch" in table:
        batch = table[table["batch"] > 0]
        ax.scatter(batch[x], y_of(batch), facecolors="none", edgecolors="crimson", s=120, linewidths=1.2)
        for _, row in batch.iterrows():
            ax.annotate(str(int(row["batch"])), (row[x], y_of(batch).loc[row.name]), fontsize=7, color="crimson",
                        xytext=(5, 5), textcoords="offset points")  # fmt: skip
    ax.set_xscale("log")
    ax.set_xlabel(x)
    unit = "FLOP" if per == "reduction_per_flop" else "unit of cost"
    ax.set_title(f"which run next: expected narrowing of the target's interval per {unit}", fontsize=10)
    ax.legend(fontsize=8, loc="best")
    return ax
