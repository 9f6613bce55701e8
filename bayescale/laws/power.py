"""Power laws in one input: ``L = A x^-alpha`` and ``L = E + A x^-alpha``."""

from __future__ import annotations

from dataclasses import dataclass

import jax.numpy as jnp

from bayescale.laws.base import Law, Parameter
from bayescale.priors import LogNormal


@dataclass(frozen=True, repr=False)
class OneInputLaw(Law):
    """Base of laws in a single input whose name the user chooses (``x``)."""

    x: str = "C"

    def __post_init__(self) -> None:
        if not isinstance(self.x, str) or not self.x.isidentifier():
            raise ValueError(f"the input name must be a Python identifier such as 'C' or 'N', got {self.x!r}")

    @property
    def inputs(self) -> tuple[str, ...]:
        return (self.x,)

    def config(self) -> dict:
        return {"name": self.name, "args": {"x": self.x}}


def saturating_parameters(x: str) -> tuple[Parameter, ...]:
    """``E``, ``A`` and ``alpha`` of ``E + A x^-alpha``, with their default priors (shared by several laws)."""
    return (
        Parameter("E", LogNormal(0.5, 1.5), in_target_units=True, description="irreducible term"),
        Parameter(
            "A",
            LogNormal(0.5, 1.5),
            in_target_units=True,
            prefactor_of=(x, "alpha"),
            description=f"prefactor: A {x}^-alpha",
        ),
        Parameter("alpha", LogNormal(0.3, 1.0), description=f"exponent of {x}"),
    )


@dataclass(frozen=True, repr=False)
class PowerLaw(OneInputLaw):
    """Pure power law ``L = A x^-alpha`` in one input ``x`` (N, D, C, samples, steps, ...).

    Parameters
    ----------
    x : str
        Name of the input, e.g. ``"C"``.

    Examples
    --------
    >>> import bayescale as bs
    >>> law = bs.laws.PowerLaw("C")
    >>> law.parameter_names
    ('A', 'alpha')
    """

    name = "power"

    @property
    def formula(self) -> str:
        return f"A {self.x}^-alpha"

    @property
    def parameters(self) -> tuple[Parameter, ...]:
        return (
            Parameter(
                "A",
                LogNormal(1.0, 1.0),
                in_target_units=True,
                prefactor_of=(self.x, "alpha"),
                description=f"prefactor: A {self.x}^-alpha",
            ),
            Parameter("alpha", LogNormal(0.3, 1.0), description=f"exponent of {self.x}"),
        )

    def log_mean(self, p, log_x):
        return p["log_A"] - p["alpha"] * log_x[self.x]


@dataclass(frozen=True, repr=False)
class SaturatingPowerLaw(OneInputLaw):
    """Saturating power law ``L = E + A x^-alpha``: a power law that levels off at ``E``.

    Evaluated as ``logaddexp(log E, log A - alpha log x)`` so no input overflows.

    Parameters
    ----------
    x : str
        Name of the input, e.g. ``"C"``, ``"N"``, ``"steps"``.

    Examples
    --------
    >>> import bayescale as bs
    >>> law = bs.laws.SaturatingPowerLaw("N")
    >>> float(law.mean({"E": 1.7, "A": 400.0, "alpha": 0.34}, N=1e25)) > 1.7
    True
    """

    name = "saturating_power"
    level_terms = ("E", "A", "alpha")

    @property
    def formula(self) -> str:
        return f"E + A {self.x}^-alpha"

    @property
    def parameters(self) -> tuple[Parameter, ...]:
        return saturating_parameters(self.x)

    def log_mean(self, p, log_x):
        return jnp.logaddexp(p["log_E"], p["log_A"] - p["alpha"] * log_x[self.x])
