"""Prior distributions for law parameters, stated in the parameter's own units.

Every law parameter is sampled on an unconstrained scale (the log for positive
parameters) as ``loc + scale * z`` with ``z ~ Normal(0, 1)``. The priors here name
``loc`` and ``scale`` in a way a user can read: a :class:`LogNormal` by its median.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


def check_finite(name: str, value: float, positive: bool) -> float:
    value = float(value)
    if not math.isfinite(value) or (positive and value <= 0):
        need = "a finite number > 0" if positive else "a finite number"
        raise ValueError(f"{name} must be {need}, got {value!r}")
    return value


@dataclass(frozen=True)
class LogNormal:
    """Prior for a positive parameter: ``log(value) ~ Normal(log(median), sigma)``.

    Parameters
    ----------
    median : float
        Prior median, in the parameter's units (for a prefactor: the value of its
        term at the reference scale, see :class:`bayescale.laws.Parameter`).
    sigma : float
        Standard deviation of the log; 1.0 spans a factor of about 7 either side at 95%.

    Examples
    --------
    >>> import bayescale as bs
    >>> bs.priors.LogNormal(median=0.3, sigma=0.5).interval(0.9)
    (0.131..., 0.682...)
    """

    median: float
    sigma: float

    transform = "log"

    def __post_init__(self) -> None:
        object.__setattr__(self, "median", check_finite("LogNormal median", self.median, True))
        object.__setattr__(self, "sigma", check_finite("LogNormal sigma", self.sigma, True))

    def loc_scale(self, unit: float = 1.0) -> tuple[float, float]:
        """Location and scale on the sampling (log) scale, the median multiplied by ``unit``."""
        return math.log(self.median * unit), self.sigma

    def interval(self, level: float = 0.9) -> tuple[float, float]:
        """Central prior interval at ``level``."""
        z = _normal_quantile(0.5 + level / 2)
        return self.median * math.exp(-z * self.sigma), self.median * math.exp(z * self.sigma)

    def to_config(self) -> dict:
        return {"type": "LogNormal", "median": self.median, "sigma": self.sigma}


@dataclass(frozen=True)
class Normal:
    """Prior for a real-valued parameter: ``value ~ Normal(loc, scale)``.

    Examples
    --------
    >>> import bayescale as bs
    >>> bs.priors.Normal(loc=0.0, scale=2.0).interval(0.95)
    (-3.919..., 3.919...)
    """

    loc: float
    scale: float

    transform = "identity"

    def __post_init__(self) -> None:
        object.__setattr__(self, "loc", check_finite("Normal loc", self.loc, False))
        object.__setattr__(self, "scale", check_finite("Normal scale", self.scale, True))

    def loc_scale(self, unit: float = 1.0) -> tuple[float, float]:
        """Location and scale on the sampling scale (``unit`` scales the location)."""
        return self.loc * unit, self.scale

    def interval(self, level: float = 0.9) -> tuple[float, float]:
        """Central prior interval at ``level``."""
        z = _normal_quantile(0.5 + level / 2)
        return self.loc - z * self.scale, self.loc + z * self.scale

    def to_config(self) -> dict:
        return {"type": "Normal", "loc": self.loc, "scale": self.scale}


Prior = LogNormal | Normal
PRIORS = {"LogNormal": LogNormal, "Normal": Normal}


def from_config(config: dict) -> Prior:
    """Rebuild a prior from :meth:`to_config` output (used when loading a saved fit)."""
    kind = config.get("type")
    if kind not in PRIORS:
        raise ValueError(f"unknown prior type {kind!r}; valid types: {sorted(PRIORS)}")
    return PRIORS[kind](**{k: v for k, v in config.items() if k != "type"})


def _normal_quantile(p: float) -> float:
    from statistics import NormalDist

    return NormalDist().inv_cdf(p)
