"""Scaling laws: the :class:`Law` interface, the built-ins and a registry by name.

Examples
--------
>>> import bayescale as bs
>>> sorted(bs.laws.LAWS)  # doctest: +NORMALIZE_WHITESPACE
['accuracy', 'broken_power', 'chinchilla', 'data_constrained', 'exp_power', 'farseer', 'kaplan',
 'kaplan_steps', 'lr_schedule', 'overtraining', 'power', 'rate_sigmoid', 'saturating_power', 'sigmoid']
>>> bs.laws.get("saturating_power", x="N")
SaturatingPowerLaw(x='N')
"""

from __future__ import annotations

from bayescale.laws.accuracy import AccuracyLaw
from bayescale.laws.base import Law, Parameter
from bayescale.laws.chinchilla import Chinchilla
from bayescale.laws.data_constrained import DataConstrained
from bayescale.laws.farseer import Farseer
from bayescale.laws.kaplan import Kaplan, KaplanSteps
from bayescale.laws.lr_schedule import LRSchedule, lr_areas
from bayescale.laws.overtraining import Overtraining
from bayescale.laws.power import PowerLaw, SaturatingPowerLaw
from bayescale.laws.shapes import BrokenPowerLaw, ExponentiatedPowerLaw, RateSigmoidLaw, SigmoidLaw
from bayescale.laws.tied import Tied
from bayescale.priors import Prior

LAWS: dict[str, type[Law]] = {
    Chinchilla.name: Chinchilla,
    PowerLaw.name: PowerLaw,
    SaturatingPowerLaw.name: SaturatingPowerLaw,
    BrokenPowerLaw.name: BrokenPowerLaw,
    SigmoidLaw.name: SigmoidLaw,
    RateSigmoidLaw.name: RateSigmoidLaw,
    ExponentiatedPowerLaw.name: ExponentiatedPowerLaw,
    AccuracyLaw.name: AccuracyLaw,
    Kaplan.name: Kaplan,
    KaplanSteps.name: KaplanSteps,
    Overtraining.name: Overtraining,
    Farseer.name: Farseer,
    DataConstrained.name: DataConstrained,
    LRSchedule.name: LRSchedule,
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


def literature_priors(law: Law | str) -> dict[str, Prior]:
    """Priors centred on published fits of ``law`` (what ``priors="literature"`` selects).

    Parameter -> prior; the sources are in the law's docstring. Combine with your own, e.g.
    ``priors=bs.laws.literature_priors("chinchilla") | {"E": bs.priors.LogNormal(1.8, 0.2)}``.

    Examples
    --------
    >>> import bayescale as bs
    >>> bs.laws.literature_priors("overtraining")
    {'alpha': LogNormal(median=0.339, sigma=0.25)}
    """
    law = get(law) if isinstance(law, str) else law
    if not isinstance(law, Law):
        raise TypeError(f"literature_priors takes a law or a registered law name, got {law!r}")
    if not law.literature:
        have = sorted(name for name, cls in LAWS.items() if cls.literature)
        raise ValueError(f"law {law.name!r} has no literature priors; laws that have them: {have}")
    return dict(law.literature)


__all__ = [
    "LAWS",
    "AccuracyLaw",
    "BrokenPowerLaw",
    "Chinchilla",
    "DataConstrained",
    "ExponentiatedPowerLaw",
    "Farseer",
    "Kaplan",
    "KaplanSteps",
    "LRSchedule",
    "Law",
    "Overtraining",
    "Parameter",
    "PowerLaw",
    "RateSigmoidLaw",
    "SaturatingPowerLaw",
    "SigmoidLaw",
    "Tied",
    "get",
    "literature_priors",
    "lr_areas",
    "register",
]
