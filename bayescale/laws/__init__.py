"""Scaling laws: the :class:`Law` interface, the built-ins and a registry by name.

Examples
--------
>>> import bayescale as bs
>>> sorted(bs.laws.LAWS)
['accuracy', 'broken_power', 'chinchilla', 'exp_power', 'power', 'rate_sigmoid', 'saturating_power', 'sigmoid']
>>> bs.laws.get("saturating_power", x="N")
SaturatingPowerLaw(x='N')
"""

from __future__ import annotations

from bayescale.laws.accuracy import AccuracyLaw
from bayescale.laws.base import Law, Parameter
from bayescale.laws.chinchilla import Chinchilla
from bayescale.laws.power import PowerLaw, SaturatingPowerLaw
from bayescale.laws.shapes import BrokenPowerLaw, ExponentiatedPowerLaw, RateSigmoidLaw, SigmoidLaw

LAWS: dict[str, type[Law]] = {
    Chinchilla.name: Chinchilla,
    PowerLaw.name: PowerLaw,
    SaturatingPowerLaw.name: SaturatingPowerLaw,
    BrokenPowerLaw.name: BrokenPowerLaw,
    SigmoidLaw.name: SigmoidLaw,
    RateSigmoidLaw.name: RateSigmoidLaw,
    ExponentiatedPowerLaw.name: ExponentiatedPowerLaw,
    AccuracyLaw.name: AccuracyLaw,
}


def register(law_class: type[Law]) -> type[Law]:
    """Add a law class to :data:`LAWS` under its ``name`` (usable as a class decorator).

    Registered laws can be chosen by name from the command line and are rebuilt
    automatically by :func:`bayescale.load_fit`.
    """
    if not (isinstance(law_class, type) and issubclass(law_class, Law)):
        raise TypeError(f"register() takes a Law subclass, got {law_class!r}")
    if not law_class.name:
        raise ValueError(f"{law_class.__name__} needs a non-empty class attribute 'name' to be registered")
    LAWS[law_class.name] = law_class
    return law_class


def get(name: str, **args) -> Law:
    """Build a registered law by name, e.g. ``get("chinchilla")`` or ``get("power", x="C")``."""
    if name not in LAWS:
        raise KeyError(f"unknown law {name!r}; valid laws: {sorted(LAWS)}")
    try:
        return LAWS[name](**args)
    except TypeError as err:
        raise TypeError(f"law {name!r} does not take arguments {args}: {err}") from None


__all__ = [
    "LAWS",
    "AccuracyLaw",
    "BrokenPowerLaw",
    "Chinchilla",
    "ExponentiatedPowerLaw",
    "Law",
    "Parameter",
    "PowerLaw",
    "RateSigmoidLaw",
    "SaturatingPowerLaw",
    "SigmoidLaw",
    "get",
    "register",
]
