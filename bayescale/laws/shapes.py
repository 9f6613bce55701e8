"""Laws in one input beyond the power law: a broken power law, a sigmoid in log x, an exponentiated power law.

- :class:`BrokenPowerLaw`: Caballero et al.'s broken neural scaling law with one break or more,
  ``L = E + A x^-alpha (1 + (x / x_break)^(1/f))^(-delta f) ...``: the exponent is ``alpha``
  well below the break and ``alpha + delta`` well above it; ``f`` sets how sharp the bend is.
- :class:`SigmoidLaw`: the saturating curve of "The Art of Scaling RL Compute",
  ``R = R0 + (A - R0) / (1 + (x_mid / x)^B)``, for bounded metrics that rise with scale
  (accuracy, pass rate, reward), parameterised by the floor ``R0`` and ``gain = A - R0 > 0``.
- :class:`RateSigmoidLaw`: the same curve for a rate, with its ceiling below 1 by
  construction (accuracy under a Binomial likelihood).
- :class:`ExponentiatedPowerLaw`: coverage against the number of samples (Brown et al.,
  Large Language Monkeys), ``c = exp(-A x^-alpha)``: rises to 1 as a power law in ``-log c``.

Each is evaluated in logs (``logaddexp``, ``log_sigmoid``, ``softplus``), so inputs of
``1e25`` and beyond neither overflow nor lose precision.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import jax
import jax.numpy as jnp

from bayescale.laws.base import Parameter
from bayescale.laws.power import OneInputLaw, saturating_parameters
from bayescale.priors import LogNormal, Normal

_LN10 = math.log(10.0)


@dataclass(frozen=True, repr=False)
class BrokenPowerLaw(OneInputLaw):
    """``L = E + A x^-alpha prod_i (1 + (x / x_i)^(1/f_i))^(-delta_i f_i)``: a power law whose exponent bends.

    Parameters
    ----------
    x : str
        Name of the input, e.g. ``"C"``.
    breaks : int
        Number of bends (default 1). Each adds a change of exponent, a location and a
        sharpness.

    Notes
    -----
    Caballero et al. (Broken Neural Scaling Laws, 2023): their ``(b, c0, c_i, d_i, f_i)``
    are ``(A, alpha, delta_i, x_i, f_i)``. The exponent is ``alpha`` well below the first
    break and ``alpha + delta + delta2 + ...`` well above the last. The first break is
    ``<x>_break``, a location on the input's axis (its default prior is centred on the
    data's geometric mean and spans about three decades either way); break ``i >= 2`` sits
    ``decades<i>`` decades after break ``i - 1``, so the breaks stay in order and
    their labels cannot swap between chains. Its parameters are ``delta<i>``, ``decades<i>``
    and ``f<i>``. A break outside the data is not identified; use :class:`SaturatingPowerLaw`
    when no bend is visible, and compare numbers of breaks with :func:`bayescale.compare_laws`.

    Examples
    --------
    >>> import bayescale as bs
    >>> law = bs.laws.BrokenPowerLaw("C")
    >>> law.parameter_names
    ('E', 'A', 'alpha', 'delta', 'C_break', 'f')
    >>> p = {"E": 1.0, "A": 1e3, "alpha": 0.1, "delta": 0.4, "C_break": 1e18, "f": 0.3}
    >>> round(float(law.mean(p, C=1e25)) - 1.0, 6)   # 3.16 x (1e7)^-0.4 past the break
    0.005012
    >>> bs.laws.BrokenPowerLaw("C", breaks=2).parameter_names[6:]
    ('delta2', 'decades2', 'f2')
    """

    name = "broken_power"
    local_modes = True  # a bend placed where the data do not need it is a mode NUTS never leaves
    breaks: int = 1

    def __post_init__(self) -> None:
        super().__post_init__()
        if isinstance(self.breaks, bool) or not isinstance(self.breaks, int) or self.breaks < 1:
            raise ValueError(f"breaks must be a whole number >= 1, got {self.breaks!r}")

    def config(self) -> dict:
        args = {"x": self.x} | ({"breaks": self.breaks} if self.breaks != 1 else {})
        return {"name": self.name, "args": args}

    @property
    def formula(self) -> str:
        x = self.x
        bends = [f"(1 + ({x}/{x}_break)^(1/f))^(-delta f)"]
        for i in range(2, self.breaks + 1):
            gap = f"decades{i}" if i == 2 else "(" + " + ".join(f"decades{j}" for j in range(2, i + 1)) + ")"
            bends.append(f"(1 + ({x}/({x}_break 10^{gap}))^(1/f{i}))^(-delta{i} f{i})")
        return f"E + A {x}^-alpha " + " ".join(bends)

    @property
    def parameters(self) -> tuple[Parameter, ...]:
        x = self.x
        later = []
        for i in range(2, self.breaks + 1):
            later += [
                Parameter(f"delta{i}", Normal(0.0, 0.5), description=f"change of the exponent across break {i}"),
                Parameter(f"decades{i}", LogNormal(1.0, 1.0), description=f"decades of {x} from break {i - 1} to {i}"),
                Parameter(f"f{i}", LogNormal(0.3, 1.0), description=f"sharpness of break {i} (small: sharp)"),
            ]
        return (
            *saturating_parameters(x),  # alpha and A describe the curve before the first break
            Parameter("delta", Normal(0.0, 0.5), description="change of the exponent across the break"),
            Parameter(f"{x}_break", LogNormal(1.0, 3.0), location_of=x, description=f"{x} at the (first) break"),
            Parameter("f", LogNormal(0.3, 1.0), description="sharpness of the break (small: sharp)"),
            *later,
        )

    def log_mean(self, p, log_x):
        distance = log_x[self.x] - p[f"log_{self.x}_break"]  # log(x / x_break)
        bend = p["delta"] * p["f"] * jnp.logaddexp(0.0, distance / p["f"])
        for i in range(2, self.breaks + 1):
            distance = distance - _LN10 * p[f"decades{i}"]  # log(x / x_i)
            bend = bend + p[f"delta{i}"] * p[f"f{i}"] * jnp.logaddexp(0.0, distance / p[f"f{i}"])
        return jnp.logaddexp(p["log_E"], p["log_A"] - p["alpha"] * log_x[self.x] - bend)


@dataclass(frozen=True, repr=False)
class SigmoidLaw(OneInputLaw):
    """``R = R0 + gain / (1 + (x_mid / x)^B)``: a bounded metric rising from ``R0`` to ``A = R0 + gain``.

    Parameters
    ----------
    x : str
        Name of the input, e.g. ``"C"``.

    Notes
    -----
    The form of Khatri et al. (The Art of Scaling Reinforcement Learning Compute, 2025),
    ``R(C) = R0 + (A - R0) / (1 + (C_mid / C)^B)``, with ``gain = A - R0`` so that the
    ceiling is above the floor by construction. For a metric that falls with scale (an
    error rate) fit one minus it. For accuracy on a benchmark of few items, a binomial
    likelihood on counts is the better observation model (``bs.likelihoods.Binomial``);
    under it the ceiling ``R0 + gain`` is kept below 1.

    Examples
    --------
    >>> import bayescale as bs
    >>> law = bs.laws.SigmoidLaw("C")
    >>> law.parameter_names
    ('R0', 'gain', 'B', 'C_mid')
    >>> round(float(law.mean({"R0": 0.1, "gain": 0.6, "B": 1.0, "C_mid": 1e21}, C=1e21)), 6)   # halfway
    0.4
    """

    name = "sigmoid"

    @property
    def formula(self) -> str:
        return f"R0 + gain / (1 + ({self.x}_mid/{self.x})^B)"

    @property
    def midpoint(self) -> tuple[str, str, float]:
        return ("B", f"{self.x}_mid", 1.0)

    @property
    def parameters(self) -> tuple[Parameter, ...]:
        x = self.x
        return (
            Parameter("R0", LogNormal(0.3, 1.5), in_target_units=True, description="floor at small scale"),
            Parameter("gain", LogNormal(1.0, 1.5), in_target_units=True, description="ceiling minus floor"),
            Parameter("B", LogNormal(1.0, 1.0), description=f"steepness in log {x}"),
            Parameter(f"{x}_mid", LogNormal(1.0, 3.0), location_of=x, description=f"{x} halfway up"),
        )

    def log_mean(self, p, log_x):
        return jnp.logaddexp(p["log_R0"], p["log_gain"] + _log_rise(self.x, p, log_x))

    def log_ceiling(self, p):
        return jnp.logaddexp(p["log_R0"], p["log_gain"])  # A = R0 + gain, approached as x grows


@dataclass(frozen=True, repr=False)
class RateSigmoidLaw(OneInputLaw):
    """``R = R0 + (1 - R0) sigmoid(lift) / (1 + (x_mid / x)^B)``: a sigmoid for a rate, below 1 by construction.

    Parameters
    ----------
    x : str
        Name of the input, e.g. ``"C"``.

    Notes
    -----
    :class:`SigmoidLaw` reparameterised for accuracy and pass rates: the ceiling
    ``A = R0 + (1 - R0) sigmoid(lift)`` lies between the floor and 1 for every value of
    ``lift`` (the log-odds of the share of the headroom above the floor that the curve
    climbs), so a Binomial fit whose runs reach ``n`` of ``n`` meets no wall where the rate
    would cross 1 (with :class:`SigmoidLaw` NUTS diverges there). ``R0`` is a rate on its
    own scale (default prior median 0.1; set it to chance level, e.g. 0.25 for four
    options, with ``priors={"R0": bs.priors.LogNormal(0.25, 0.3)}``).

    Examples
    --------
    >>> import bayescale as bs
    >>> law = bs.laws.RateSigmoidLaw("C")
    >>> law.parameter_names
    ('R0', 'lift', 'B', 'C_mid')
    >>> p = {"R0": 0.25, "lift": 0.0, "B": 1.0, "C_mid": 1e21}
    >>> round(float(law.mean(p, C=1e30)), 6)   # ceiling: halfway from 0.25 to 1
    0.625
    """

    name = "rate_sigmoid"

    @property
    def formula(self) -> str:
        return f"R0 + (1 - R0) sigmoid(lift) / (1 + ({self.x}_mid/{self.x})^B)"

    @property
    def midpoint(self) -> tuple[str, str, float]:
        return ("B", f"{self.x}_mid", 1.0)

    @property
    def parameters(self) -> tuple[Parameter, ...]:
        x = self.x
        return (
            Parameter("R0", LogNormal(0.1, 1.5), description="floor at small scale (a rate)"),
            Parameter("lift", Normal(1.0, 2.0), description="log-odds of the share of 1 - R0 gained at large scale"),
            Parameter("B", LogNormal(1.0, 1.0), description=f"steepness in log {x}"),
            Parameter(f"{x}_mid", LogNormal(1.0, 3.0), location_of=x, description=f"{x} halfway up"),
        )

    def log_mean(self, p, log_x):
        log_ceiling_gain = _log1m_exp(p["log_R0"]) + jax.nn.log_sigmoid(p["lift"])
        return jnp.logaddexp(p["log_R0"], log_ceiling_gain + _log_rise(self.x, p, log_x))

    def log_ceiling(self, p):
        return jnp.logaddexp(p["log_R0"], _log1m_exp(p["log_R0"]) + jax.nn.log_sigmoid(p["lift"]))


def _log_rise(x: str, p, log_x):
    """``log(1 / (1 + (x_mid / x)^B))``: the share of the climb reached at ``x``, in logs."""
    return jax.nn.log_sigmoid(p["B"] * (log_x[x] - p[f"log_{x}_mid"]))


def _log1m_exp(log_r):
    """``log(1 - r)`` from ``log r``; NaN-free -inf where ``r >= 1`` (a floor that is not a rate)."""
    inside = log_r < 0.0
    return jnp.where(inside, jnp.log(-jnp.expm1(jnp.where(inside, log_r, -1.0))), -jnp.inf)


@dataclass(frozen=True, repr=False)
class ExponentiatedPowerLaw(OneInputLaw):
    """``c = exp(-A x^-alpha)``: coverage (pass@k) against the number of samples ``x``.

    Parameters
    ----------
    x : str
        Name of the input, e.g. ``"k"`` (samples per problem).

    Notes
    -----
    Brown et al. (Large Language Monkeys, 2024) find that coverage ``c`` follows
    ``log c = -A k^-alpha``; ``-log c`` is a power law that falls to 0 as ``k`` grows, so
    ``c`` rises to 1. The target must be in ``(0, 1]``; ``A`` is ``-log c`` at ``k = 1``.

    Examples
    --------
    >>> import bayescale as bs
    >>> law = bs.laws.ExponentiatedPowerLaw("k")
    >>> round(float(law.mean({"A": 2.0, "alpha": 0.5}, k=100.0)), 6)
    0.818731
    """

    name = "exp_power"

    @property
    def formula(self) -> str:
        return f"exp(-A {self.x}^-alpha)"

    @property
    def parameters(self) -> tuple[Parameter, ...]:
        x = self.x
        return (
            Parameter(
                "A",
                LogNormal(0.5, 1.5),
                prefactor_of=(x, "alpha"),
                description=f"-log(coverage) at {x} = 1: A {x}^-alpha",
            ),
            Parameter("alpha", LogNormal(0.3, 1.0), description=f"exponent of {x} in -log(coverage)"),
        )

    def log_mean(self, p, log_x):
        return -jnp.exp(p["log_A"] - p["alpha"] * log_x[self.x])
