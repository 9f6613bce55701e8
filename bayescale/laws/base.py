"""The :class:`Law` interface: named inputs, named parameters with priors, a log-space mean.

A law knows nothing about NumPyro. It is a pure ``jax.numpy`` function of parameters
and centred log inputs ``log(x / x_ref)``, where ``x_ref`` is a reference scale (by
default the geometric mean of the data). Prefactors are sampled as the value of their
term *at the reference scale*, which keeps them nearly uncorrelated with the exponents;
:meth:`Law.to_user` turns them back into the user's units.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import ClassVar

import jax.numpy as jnp

from bayescale.priors import Prior


@dataclass(frozen=True)
class Parameter:
    """One named parameter of a law.

    Parameters
    ----------
    name : str
        Name used in the posterior (``fit.idata.posterior[name]``) and in ``priors=``.
    prior : LogNormal or Normal
        Default prior. A :class:`~bayescale.priors.LogNormal` makes the parameter
        positive and samples it on the log scale.
    in_target_units : bool
        If True the default prior's median is a multiple of the target's scale (the
        geometric mean of the target column), so defaults work for losses in nats,
        perplexities and error rates alike. Priors passed by the user are absolute.
    prefactor_of : tuple of (input, exponent), optional
        Declares that the law contains the term ``name * input ** (-exponent)``. The
        parameter is then sampled (and its prior stated) as the value of that term at
        the input's reference scale, ``name * input_ref ** (-exponent)``, and reported
        in the user's units in the posterior.
    location_of : str, optional
        Declares a point on an input's axis (a break, a midpoint). It is sampled as
        ``log(value / input_ref)``; a default prior's median is relative to the reference
        scale (1.0: the geometric mean of the data), a prior passed by the user is in the
        input's units. Needs a :class:`~bayescale.priors.LogNormal` prior.
    description : str
        One line for summaries and docs.
    """

    name: str
    prior: Prior
    in_target_units: bool = False
    prefactor_of: tuple[str, str] | None = None
    location_of: str | None = None
    description: str = ""

    def __post_init__(self) -> None:
        if self.location_of is not None and self.prior.transform != "log":
            raise ValueError(f"parameter {self.name!r} is a location on {self.location_of}: it needs a LogNormal prior")

    @property
    def transform(self) -> str:
        return self.prior.transform


class Law:
    """Base class of scaling laws.

    Subclasses set ``name``, ``inputs`` and ``parameters`` and implement
    :meth:`log_mean`. A law is immutable: the same instance may be fitted to many
    data sets.

    Examples
    --------
    A new law in a few lines, ``L = E + A x^-alpha`` written on the log scale:

    >>> import jax.numpy as jnp
    >>> import bayescale as bs
    >>> from bayescale.laws import Law, Parameter
    >>> from bayescale.priors import LogNormal
    >>> class Saturating(Law):
    ...     name = "my_saturating"
    ...     inputs = ("steps",)
    ...     parameters = (
    ...         Parameter("E", LogNormal(0.5, 1.5), in_target_units=True),
    ...         Parameter("A", LogNormal(0.5, 1.5), in_target_units=True,
    ...                   prefactor_of=("steps", "alpha")),
    ...         Parameter("alpha", LogNormal(0.3, 1.0)),
    ...     )
    ...     def log_mean(self, p, log_x):
    ...         return jnp.logaddexp(p["log_E"], p["log_A"] - p["alpha"] * log_x["steps"])
    >>> law = Saturating()
    >>> float(law.mean({"E": 1.0, "A": 10.0, "alpha": 0.5}, steps=100.0))
    2.0
    """

    name: ClassVar[str] = ""
    inputs: tuple[str, ...] = ()
    parameters: tuple[Parameter, ...] = ()
    #: ``(E, A, alpha)`` where the law is ``E + A x^-alpha``, or ``(E, A, alpha, B, beta, ...)``
    #: for ``E + A x^-alpha + B y^-beta + ...`` (positive parameters, each prefactor followed
    #: by its exponent): when all are shared (or all independent: each group's curve), NUTS
    #: samples them as the curve's level, slopes and splits at the reference scale (same prior
    #: and posterior, straighter geometry; :func:`bayescale.model.build.shared_level_terms`).
    #: ``None``: each parameter has its own standardised coordinate.
    level_terms: ClassVar[tuple[str, ...] | None] = None
    #: ``(steepness, location, sign)`` where the law rises as ``sigmoid(sign * B * log(x / x_mid))``
    #: (``sign`` -1 where it rises as ``x`` falls): when both are shared and nothing is pooled, NUTS
    #: samples ``x_mid`` through the climb's progress at the two ends of the data (same prior and
    #: posterior; :func:`bayescale.model.build.sample_midpoint`). ``None``: no such pair.
    midpoint: ClassVar[tuple[str, str, float] | None] = None
    #: The likelihood a model of this law gets unless given one (a name of ``bs.likelihoods.LIKELIHOODS``):
    #: residuals on ``log(target)`` for losses; a law of a rate in (0, 1) names one for rates.
    default_likelihood: ClassVar[str] = "student_t"
    #: Priors centred on published fits, chosen with ``ScalingModel(..., priors="literature")``:
    #: parameter -> prior, with the sources in the law's docstring. Parameters not named keep
    #: their default priors (levels in nats of one corpus and tokenizer do not carry over).
    literature: ClassVar[Mapping[str, Prior]] = {}
    #: Inputs measured on another input's reference scale, ``{"U": "D"}`` (unique tokens on the
    #: scale of tokens seen), for laws that compare the two: ``log_x["D"] - log_x["U"]`` is then
    #: ``log(D / U)``.
    shared_reference: ClassVar[Mapping[str, str]] = {}
    #: Inputs the law centres itself on fixed scales of its own, ``{"N": 1e9}``: the model passes them
    #: uncentred (reference scale 1) and refuses ``reference=`` for them. For laws whose family depends
    #: on where they are centred (a data term whose exponent drifts with model size), so that the
    #: fitted parameters mean the same whatever the data's scales.
    pivots: ClassVar[Mapping[str, float]] = {}
    #: The extrapolation risk's constants (:class:`bayescale.discrepancy.Drift`'s ``rate``, ``rate_sd``,
    #: ``length``) where this law's own backtest estimated them: a more flexible law fits its runs more
    #: closely, so its drift beyond them is more noise scales per decade. Empty: the package's constants.
    drift: ClassVar[Mapping[str, float]] = {}
    #: The factor by which an input must vary within a group for the group's own data to measure the
    #: input's parameters (:func:`bayescale.model.build.measured_by_design`: where a pooled group is
    #: sampled in the pilot's frame or centred): half a decade for model size, tokens, compute or steps. Its
    #: square root is what measures a term's slope alone (:func:`bayescale.model.build.sloped_by_design`).
    informative_range: ClassVar[float] = 3.0
    #: Whether the law's posterior has poor local modes that strand chains started at random (a bend of
    #: a broken power law where the data need none): its chains then start at the best of several
    #: modes, each found by Newton steps from a random start (``init="mode"``, ``mode_starts``).
    local_modes: ClassVar[bool] = False

    def log_mean(self, p: Mapping[str, jnp.ndarray], log_x: Mapping[str, jnp.ndarray]) -> jnp.ndarray:
        """Log of the law's mean at ``log_x``.

        Parameters
        ----------
        p : mapping
            Parameter values keyed by name; positive parameters are also given as
            ``"log_<name>"``, which is what a log-sum-exp formulation should use.
        log_x : mapping
            ``log(x / x_ref)`` for every input, as arrays of one shape.
        """
        raise NotImplementedError(f"{type(self).__name__} must implement log_mean(p, log_x)")

    def log_ceiling(self, p: Mapping[str, jnp.ndarray]) -> jnp.ndarray | None:
        """Log of the law's least upper bound over all inputs, or ``None`` if it has none.

        A law for a rate under a Binomial likelihood must stay below 1 everywhere, not
        only at the data; where it has a ceiling, parameters that put it at or above 1
        get zero prior mass, so extrapolated rates stay rates.
        """
        return None

    # -- names -------------------------------------------------------------------------
    @property
    def parameter_names(self) -> tuple[str, ...]:
        return tuple(par.name for par in self.parameters)

    @property
    def formula(self) -> str:
        """The law in plain text with its input names, e.g. ``"E + A N^-alpha + B D^-beta"`` (titles, listings)."""
        return f"{self.name}({', '.join(self.inputs)})"

    def parameter(self, name: str) -> Parameter:
        for par in self.parameters:
            if par.name == name:
                return par
        raise KeyError(f"law {self.name!r} has no parameter {name!r}; its parameters are {list(self.parameter_names)}")

    def input_of(self, name: str) -> str | None:
        """The input whose term contains parameter ``name`` (its prefactor or exponent), if any.

        Read from the ``prefactor_of`` declarations: ``A`` with ``prefactor_of=("N", "alpha")``
        belongs to ``N``, and so does ``alpha``. The irreducible term belongs to no input.
        """
        self.parameter(name)
        if self.parameter(name).location_of is not None:
            return self.parameter(name).location_of
        for par in self.parameters:
            if par.prefactor_of is not None and name in (par.name, par.prefactor_of[1]):
                return par.prefactor_of[0]
        return None

    # -- user units <-> reference units ------------------------------------------------
    def to_user(self, p_ref: Mapping, log_ref: Mapping[str, float]) -> dict:
        """Parameters at reference scale -> parameters in the user's units (jnp-traceable)."""
        return self._shift_prefactors(p_ref, log_ref, sign=+1.0)

    def to_reference(self, p_user: Mapping, log_ref: Mapping[str, float]) -> dict:
        """Parameters in the user's units -> parameters at reference scale (inverse of :meth:`to_user`)."""
        return self._shift_prefactors(p_user, log_ref, sign=-1.0)

    def _shift_prefactors(self, p: Mapping, log_ref: Mapping[str, float], sign: float) -> dict:
        """Move prefactors and locations between the user's units and the reference scale."""
        out = with_logs(self, p)
        for par in self.parameters:
            if par.location_of is not None and par.name in out:
                out[f"log_{par.name}"] = out[f"log_{par.name}"] + sign * log_ref[par.location_of]
                out[par.name] = jnp.exp(out[f"log_{par.name}"])
            if par.prefactor_of is None or par.name not in out:
                continue
            x, exponent = par.prefactor_of
            log_value = out[f"log_{par.name}"] + sign * out[exponent] * log_ref[x]
            out[f"log_{par.name}"] = log_value
            out[par.name] = jnp.exp(log_value)
        return out

    def mean(self, params: Mapping[str, float], **inputs) -> jnp.ndarray:
        """The law's mean in the user's units at raw (not centred) inputs.

        Examples
        --------
        >>> import bayescale as bs
        >>> law = bs.laws.PowerLaw("C")
        >>> round(float(law.mean({"A": 10.0, "alpha": 0.5}, C=1e4)), 12)
        0.1
        """
        missing = [x for x in self.inputs if x not in inputs]
        if missing:
            raise TypeError(f"law {self.name!r} needs inputs {list(self.inputs)}; missing {missing}")
        log_x = {x: jnp.log(jnp.asarray(inputs[x], dtype=float)) for x in self.inputs}
        return jnp.exp(self.log_mean(with_logs(self, params), log_x))

    # -- persistence -------------------------------------------------------------------
    def config(self) -> dict:
        """What :func:`bayescale.laws.get` needs to rebuild this law (name and arguments)."""
        return {"name": self.name, "args": {}}

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.config()["args"].items())
        return f"{type(self).__name__}({args})"


def with_logs(law: Law, p: Mapping) -> dict:
    """Complete ``p`` so that positive parameters are present both as value and as log."""
    out = dict(p)
    for par in law.parameters:
        if par.transform != "log" or (par.name not in out and f"log_{par.name}" not in out):
            continue
        log_key = f"log_{par.name}"
        if log_key not in out:
            out[log_key] = jnp.log(jnp.asarray(out[par.name], dtype=float))
        if par.name not in out:
            out[par.name] = jnp.exp(out[log_key])
    return out
