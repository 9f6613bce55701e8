"""Tissue et al.'s learning curve with the learning-rate schedule: every checkpoint of a run is on the law."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import jax.numpy as jnp
import numpy as np
import pandas as pd
from scipy.signal import lfilter

from bayescale.laws.base import Law, Parameter
from bayescale.priors import LogNormal


@dataclass(frozen=True, repr=False)
class LRSchedule(Law):
    """``L = L0 + A S1^-alpha - C S2``: loss along a run from the areas of its learning-rate schedule.

    Tissue et al. 2024 ("Scaling law with learning rate annealing", arXiv 2408.11029): ``S1`` is
    the forward area (the sum of the learning rate over the steps so far) and ``S2`` the
    annealing area (the sum of a momentum of the rate's decreases, decay 0.999), both from
    :func:`lr_areas`. A run's checkpoints, through warmup, constant phase and cool-down, all lie
    on one curve, so one or two runs predict other schedules and lengths.

    The law's inputs are ``S1`` and ``S12 = S1 + S2`` (scales must be positive, and ``S2`` is 0
    until the rate first falls). ``S12`` is centred on ``S1``'s reference scale, so the law
    sees ``S2 = S12 - S1`` exactly. ``C`` is reported in the user's units (loss per unit of
    ``S2``); it is sampled as ``C`` times ``S1``'s reference scale, in the target's units.
    The law is defined while the annealing gain ``C S2`` is below the rest of the loss.

    No literature priors: Tissue et al.'s fitted values depend on the model, the data and the
    peak learning rate (the units of ``S1``); the paper's setting that carries over, the
    momentum decay 0.999, is :func:`lr_areas`'s default.

    Examples
    --------
    >>> import numpy as np
    >>> import bayescale as bs
    >>> lr = np.r_[np.linspace(1e-4, 1e-3, 100), np.full(800, 1e-3), np.linspace(1e-3, 1e-4, 100)]
    >>> areas = bs.laws.lr_areas(np.arange(1, 1001), lr)
    >>> areas.loc[[100, 900, 1000]].round(4)
             S1      S2     S12
    step
    100   0.055  0.0000  0.0550
    900   0.855  0.0000  0.8550
    1000  0.910  0.0436  0.9536
    >>> p = {"L0": 2.0, "A": 0.5, "alpha": 0.5, "C": 2.0}
    >>> law = bs.laws.get("lr_schedule")
    >>> round(float(law.mean(p, S1=0.91, S12=0.9536)), 4) == round(2.0 + 0.5 * 0.91**-0.5 - 2.0 * 0.0436, 4)
    True
    """

    name = "lr_schedule"
    formula = "L0 + A S1^-alpha - C S2, S2 = S12 - S1"
    shared_reference = {"S12": "S1"}

    @property
    def inputs(self) -> tuple[str, ...]:
        return ("S1", "S12")

    @property
    def parameters(self) -> tuple[Parameter, ...]:
        return (
            Parameter("L0", LogNormal(0.5, 1.5), in_target_units=True, description="loss after unlimited training"),
            Parameter(
                "A",
                LogNormal(0.25, 1.5),
                in_target_units=True,
                prefactor_of=("S1", "alpha"),
                description="forward-area term: A S1^-alpha",
            ),
            Parameter("alpha", LogNormal(0.5, 1.0), description="forward-area exponent"),
            Parameter(
                "C",
                LogNormal(1.0, 1.5),
                in_target_units=True,
                description="loss removed per unit of annealing area S2 (sampled per unit of S1's reference)",
            ),
        )

    def _shift_prefactors(self, p: Mapping, log_ref: Mapping[str, float], sign: float) -> dict:
        out = super()._shift_prefactors(p, log_ref, sign)
        if "log_C" in out:  # C S2 = (C S1_ref) (S2 / S1_ref)
            out["log_C"] = out["log_C"] - sign * log_ref["S1"]
            out["C"] = jnp.exp(out["log_C"])
        return out

    def log_mean(self, p, log_x):
        forward = jnp.logaddexp(p["log_L0"], p["log_A"] - p["alpha"] * log_x["S1"])
        annealing = jnp.exp(log_x["S12"]) - jnp.exp(log_x["S1"])
        return forward + jnp.log1p(-jnp.exp(p["log_C"] - forward) * annealing)


def lr_areas(steps, lr, decay: float = 0.999) -> pd.DataFrame:
    """The forward area ``S1`` and annealing area ``S2`` of a learning-rate schedule at ``steps``.

    Parameters
    ----------
    steps : array of int
        Training steps (from 1) at which the rate is known and the areas are wanted, e.g. a
        run's logged steps; the rate is interpolated linearly between them, held at its first
        value before the first.
    lr : array
        The learning rate at ``steps``.
    decay : float
        Momentum decay ``lambda`` of the annealing area (Tissue et al.: 0.999).

    Returns
    -------
    DataFrame indexed by ``step`` with ``S1`` (sum of the rate), ``S2`` (sum of
    ``m_i = decay m_(i-1) + (lr_(i-1) - lr_i)``, counted from the peak of the rate, so warmup adds
    nothing) and ``S12 = S1 + S2``, the inputs of :class:`LRSchedule`.
    """
    steps = np.asarray(steps)
    lr = np.asarray(lr, dtype=float)
    if steps.ndim != 1 or steps.shape != lr.shape or len(steps) == 0:
        raise ValueError(f"steps and lr must be 1-D arrays of one length, got shapes {steps.shape} and {lr.shape}")
    if not np.issubdtype(steps.dtype, np.integer) and not np.all(np.mod(steps, 1) == 0):
        raise ValueError("steps must be whole numbers (training steps from 1)")
    if steps.min() < 1 or np.any(np.diff(steps) <= 0):
        raise ValueError("steps must be increasing and start at 1 or later")
    if not np.all(np.isfinite(lr)) or np.any(lr < 0):
        bad = np.flatnonzero(~np.isfinite(lr) | (lr < 0))
        raise ValueError(f"lr must be finite and >= 0; it is not at positions {bad[:5].tolist()}")
    if not 0.0 <= decay < 1.0:
        raise ValueError(f"decay must be in [0, 1), got {decay!r}")
    grid = np.arange(1, int(steps.max()) + 1)
    rate = np.interp(grid, steps, lr)
    fall = np.r_[0.0, rate[:-1] - rate[1:]]
    fall[: int(np.argmax(rate)) + 1] = 0.0  # warmup: counted from the peak
    momentum = lfilter([1.0], [1.0, -decay], fall)
    s1, s2 = np.cumsum(rate), np.cumsum(momentum)
    at = steps.astype(int) - 1
    frame = pd.DataFrame({"S1": s1[at], "S2": s2[at]}, index=pd.Index(steps.astype(int), name="step"))
    return frame.assign(S12=frame["S1"] + frame["S2"])
