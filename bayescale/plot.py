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
