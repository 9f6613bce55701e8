"""Ties and constraints: a law with some parameters equal to others or fixed to a value.

``ScalingModel(law, tie={"beta": "alpha"})`` fits ``law`` with ``beta`` equal to ``alpha``
(one exponent shared by both inputs); ``tie={"E": 1.7}`` fixes ``E``. The spec wraps the
law in :class:`Tied`, a law whose parameters are the free ones: everything downstream
(sampling, summaries, predictions, saved fits) sees an ordinary law.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import replace

import jax.numpy as jnp

from bayescale.laws.base import Law, Parameter, with_logs


class Tied(Law):
    """``base`` with the parameters named in ``tie`` set equal to another parameter or to a number.

    Parameters
    ----------
    base : Law
        The law whose parameters are tied.
    tie : mapping
        Parameter -> the name of another parameter of ``base`` (shared value) or a number (fixed
        value). A parameter may not be tied to one that is itself tied, and a positive
        parameter may only be fixed to a positive number.

    Examples
    --------
    >>> import bayescale as bs
    >>> law = bs.laws.Tied(bs.laws.Chinchilla(), {"beta": "alpha"})
    >>> law.parameter_names
    ('E', 'A', 'alpha', 'B')
    >>> law.parameter("B").prefactor_of
    ('D', 'alpha')
    >>> p = {"E": 1.8, "A": 400.0, "alpha": 0.3, "B": 2000.0}
    >>> float(law.mean(p, N=1e9, D=2e10)) == float(bs.laws.Chinchilla().mean(p | {"beta": 0.3}, N=1e9, D=2e10))
    True
    """

    level_terms = None

    def __init__(self, base: Law, tie: Mapping[str, str | float]) -> None:
        if not isinstance(base, Law) or isinstance(base, Tied):
            raise TypeError(f"Tied wraps a law that is not already tied, got {base!r}")
        if not isinstance(tie, Mapping) or not tie:
            raise TypeError(f"tie must be a non-empty mapping of parameter -> parameter name or number, got {tie!r}")
        names = base.parameter_names
        checked: dict[str, str | float] = {}
        for name, to in tie.items():
            if name not in names:
                raise KeyError(f"tie: law {base.name!r} has no parameter {name!r}; its parameters are {list(names)}")
            if isinstance(to, str):
                if to not in names:
                    raise KeyError(f"tie[{name!r}] = {to!r}: law {base.name!r} has no parameter {to!r}")
                if to == name or to in tie:
                    raise ValueError(
                        f"tie[{name!r}] = {to!r}: tie a parameter to a free one, not to itself or a tied one"
                    )
                if base.parameter(to).transform != base.parameter(name).transform:
                    raise ValueError(f"tie[{name!r}] = {to!r}: one is positive and the other is not")
                if base.parameter(name).location_of != base.parameter(to).location_of:
                    raise ValueError(f"tie[{name!r}] = {to!r}: a location can only be tied to a location on its axis")
                checked[name] = to
            elif isinstance(to, int | float) and not isinstance(to, bool) and math.isfinite(to):
                if base.parameter(name).transform == "log" and to <= 0:
                    raise ValueError(f"tie[{name!r}] = {to!r}: {name!r} is positive; fix it to a number > 0")
                if base.parameter(name).location_of is not None:
                    raise ValueError(f"tie[{name!r}]: {name!r} is a location; fix it with a narrow prior instead")
                checked[name] = float(to)
            else:
                raise TypeError(f"tie[{name!r}] must be a parameter name or a finite number, got {to!r}")
        self.base = base
        self.tie = checked
        self.name = base.name
        self.default_likelihood = base.default_likelihood

    @property
    def inputs(self) -> tuple[str, ...]:
        return self.base.inputs

    @property
    def literature(self) -> dict:
        return {k: v for k, v in self.base.literature.items() if k not in self.tie}

    @property
    def shared_reference(self) -> Mapping[str, str]:
        return self.base.shared_reference

    @property
    def pivots(self) -> Mapping[str, float]:
        return self.base.pivots

    @property
    def drift(self) -> Mapping[str, float]:
        return self.base.drift

    @property
    def informative_range(self) -> float:
        return self.base.informative_range

    @property
    def local_modes(self) -> bool:
        return self.base.local_modes

    @property
    def parameters(self) -> tuple[Parameter, ...]:
        out = []
        for par in self.base.parameters:
            if par.name in self.tie:
                continue
            if par.prefactor_of is not None and isinstance(self.tie.get(par.prefactor_of[1]), str):
                par = replace(par, prefactor_of=(par.prefactor_of[0], self.tie[par.prefactor_of[1]]))
            out.append(par)
        return tuple(out)

    @property
    def formula(self) -> str:
        ties = ", ".join(f"{k} = {v if isinstance(v, str) else f'{v:g}'}" for k, v in self.tie.items())
        return f"{self.base.formula} with {ties}"

    def full(self, p: Mapping) -> dict:
        """``p`` completed with the tied parameters (values and logs), as ``base`` needs them."""
        out = dict(p)
        for name, to in self.tie.items():
            if isinstance(to, str):
                if to in out:
                    out[name] = out[to]
                if f"log_{to}" in out:
                    out[f"log_{name}"] = out[f"log_{to}"]
            else:
                out[name] = jnp.asarray(to)
                if self.base.parameter(name).transform == "log":
                    out[f"log_{name}"] = jnp.asarray(math.log(to))
        return out

    def log_mean(self, p, log_x):
        return self.base.log_mean(self.full(p), log_x)

    def log_ceiling(self, p):
        return self.base.log_ceiling(self.full(p))

    def to_user(self, p_ref: Mapping, log_ref: Mapping[str, float]) -> dict:
        return self._free(self.base.to_user(self.full(with_logs(self, p_ref)), log_ref))

    def to_reference(self, p_user: Mapping, log_ref: Mapping[str, float]) -> dict:
        return self._free(self.base.to_reference(self.full(with_logs(self, p_user)), log_ref))

    def _free(self, p: Mapping) -> dict:
        return {k: v for k, v in p.items() if k.removeprefix("log_") not in self.tie}

    def __getattr__(self, name: str):
        # law-specific closed forms (``log_optimal_size``) of the base law, with the tied values filled in
        if name.startswith("log_") and name not in ("log_mean", "log_ceiling") and "base" in self.__dict__:
            method = getattr(self.base, name)
            return lambda p, *args: method(self.full(p), *args)
        raise AttributeError(name)

    def config(self) -> dict:
        return self.base.config() | {"tie": dict(self.tie)}

    def __repr__(self) -> str:
        return f"Tied({self.base!r}, {self.tie!r})"
