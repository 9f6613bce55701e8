"""Builds the NumPyro model of a scaling-law fit. The only module that calls ``numpyro.sample``.

Every law parameter is sampled non-centred, ``value = loc + scale * z`` with
``z ~ Normal(0, 1)`` (on the log scale for positive parameters), at the reference
scale of its inputs. ``loc`` and ``scale`` come in through :class:`ModelArgs`, not
through the closure, so one compiled sampler serves every data set of the same shape.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import jax.numpy as jnp
import numpyro
import numpyro.distributions as dist

from bayescale.laws import Law


class ModelArgs(NamedTuple):
    """Everything numeric a model needs; a JAX pytree, so it can be a jit argument."""

    log_x: dict  # law input -> log(x / x_ref), shape (rows,)
    log_y: jnp.ndarray | None  # log target, or None to simulate
    noise_log_sd: jnp.ndarray | None  # known per-row sd of log(y), or None
    prior_loc: dict  # parameter -> location on the sampling scale
    prior_scale: dict  # parameter -> scale on the sampling scale
    log_ref: dict  # law input -> log(x_ref)


def z_site(name: str) -> str:
    """Name of the standardised sampling site behind law parameter ``name``."""
    return f"{name}_z"


def build(law: Law, likelihood) -> Callable[[ModelArgs], None]:
    """Return the NumPyro model function ``model(args)`` for ``law`` and ``likelihood``.

    Examples
    --------
    >>> import bayescale as bs
    >>> from bayescale.model import build
    >>> model = build(bs.laws.PowerLaw("C"), bs.likelihoods.Normal())
    >>> callable(model)
    True
    """

    def model(args: ModelArgs) -> None:
        p = {}
        for par in law.parameters:
            z = numpyro.sample(z_site(par.name), dist.Normal(0.0, 1.0))
            value = args.prior_loc[par.name] + args.prior_scale[par.name] * z
            if par.transform == "log":
                p[f"log_{par.name}"] = value
                p[par.name] = jnp.exp(value)
            else:
                p[par.name] = value
        user = law.to_user(p, args.log_ref)
        for name in law.parameter_names:
            numpyro.deterministic(name, user[name])

        noise = {name: numpyro.sample(name, prior) for name, prior in likelihood.priors().items()}
        scale = noise["sigma"]
        if args.noise_log_sd is not None:
            scale = jnp.sqrt(scale**2 + args.noise_log_sd**2)
        log_mean = law.log_mean(p, args.log_x)
        numpyro.sample("obs", likelihood.distribution(log_mean, scale, noise), obs=args.log_y)

    return model
