"""Figures of fitted scaling laws (matplotlib only; every function takes ``ax`` and returns it)."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd


def fit(
    fit,
    target: Mapping[str, float] | float | None = None,
    *,
    x: str | None = None,
    ax=None,
    levels: tuple[float, ...] = (0.5, 0.9),
    n_points: int = 120,
):
    """Data, posterior median curve and credible bands, extended to a target budget.

    For a law of several inputs the curve follows the ray through the target that
    keeps the ratios between inputs fixed (for Chinchilla: constant tokens per
    parameter D/N), plotted against input ``x``; the data are drawn at their own ``x``.

    Parameters
    ----------
    fit : ScalingFit
    target : mapping or float, optional
        Target inputs, e.g. ``{"N": 7e10, "D": 1.4e12}``; a number for a one-input law.
        It is marked with the median and 90% interval of a new observation there.
    x : str, optional
        Input on the horizontal axis (default: the law's first input).
    ax : matplotlib Axes, optional
    levels : tuple of float
        Credible levels of the shaded bands of the mean curve.
    n_points : int
        Points along the curve.

    Returns
    -------
    matplotlib.axes.Axes

    Examples
    --------
    >>> ax = bs.plot.fit(fit, target={"N": 7e10, "D": 1.4e12})    # doctest: +SKIP
    >>> ax.figure.savefig("fit.png")                               # doctest: +SKIP
    """
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FormatStrFormatter

    model = fit.model
    law = model.law
    x = law.inputs[0] if x is None else x
    if x not in law.inputs:
        raise ValueError(f"x must be one of the law's inputs {list(law.inputs)}, got {x!r}")
    target = _target_dict(target, law.inputs)
    data = {name: fit.idata.constant_data[model.inputs[name]].values for name in law.inputs}
    y = fit.idata.observed_data[model.target].values

    path = _path(data, target, x, n_points, fit.log_references)
    pred = fit.predict(path)
    mean_draws = pred.draws("mean")
    if ax is None:
        _, ax = plt.subplots(figsize=(6.4, 4.4))
    colour = "C0"
    for level in sorted(levels, reverse=True):
        lower, upper = np.quantile(mean_draws, [(1 - level) / 2, (1 + level) / 2], axis=0)
        ax.fill_between(
            path[x],
            lower,
            upper,
            color=colour,
            alpha=0.15 + 0.15 * (level < 0.75),
            linewidth=0,
            label=f"{level:.0%} credible band (mean)",
        )
    ax.plot(path[x], np.median(mean_draws, axis=0), color=colour, label="posterior median")
    others = [k for k in law.inputs if k != x]
    if others:  # colour runs by their ratio to x (tokens per parameter for Chinchilla), as the curve is at one ratio
        ratio = data[others[0]] / data[x]
        points = ax.scatter(
            data[x], y, s=14, c=np.log10(ratio), cmap="viridis", zorder=3, label=f"data ({len(y)} rows)"
        )
        bar = ax.figure.colorbar(points, ax=ax, pad=0.02)
        bar.set_label(f"log10 {others[0]}/{x} of each run")
    else:
        ax.scatter(data[x], y, s=12, color="0.25", alpha=0.7, zorder=3, label=f"data ({len(y)} rows)")
    if target is not None:
        t = fit.predict(pd.DataFrame({k: [v] for k, v in target.items()})).interval(0.9)
        med, lo, hi = (float(t[c].iloc[0]) for c in ("median", "lower", "upper"))
        ax.errorbar(
            [target[x]],
            [med],
            yerr=[[med - lo], [hi - med]],
            fmt="D",
            color="C3",
            capsize=4,
            zorder=4,
            label=f"target: {med:.4g} [{lo:.4g}, {hi:.4g}] (90%, new obs.)",
        )
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.yaxis.set_major_formatter(FormatStrFormatter("%g"))
    ax.yaxis.set_minor_formatter(FormatStrFormatter("%g"))
    ax.set_xlabel(model.inputs[x] if model.inputs[x] == x else f"{model.inputs[x]} ({x})")
    ax.set_ylabel(model.target)
    title = f"{law!r}"
    if len(law.inputs) > 1:
        anchor = target if target is not None else {k: float(np.exp(fit.log_references[k])) for k in law.inputs}
        ratios = ", ".join(f"{k}/{x} = {anchor[k] / anchor[x]:.3g}" for k in law.inputs if k != x)
        title += f"\ncurve at fixed {ratios}"
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8, loc="best")
    return ax


def _target_dict(target, inputs):
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
        if model.law.parameter(name).transform == "log":
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
        par = fit.model.law.parameter(k)
        if par.prefactor_of is not None:
            continue
        pop, spread = fit.draws(f"{k}_pop"), fit.draws(f"{k}_spread")
        z = rng.standard_normal(pop.shape)
        out[k] = pop * np.exp(spread * z) if par.transform == "log" else pop + spread * z
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
    from bayescale.fit import ROW_GROUP

    const = fit.idata.constant_data
    labels = const[ROW_GROUP].values.astype(str)
    data = {k: const[model.inputs[k]].values for k in law.inputs}
    y = fit.idata.observed_data[model.target].values
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
