"""Muennighoff et al.'s data-constrained law: repeated tokens are worth less than new ones."""

from __future__ import annotations

from dataclasses import dataclass

import jax.numpy as jnp
from jax.scipy.special import logsumexp

from bayescale.laws.base import Law, Parameter
from bayescale.laws.chinchilla import Chinchilla
from bayescale.priors import LogNormal


@dataclass(frozen=True, repr=False)
class DataConstrained(Law):
    """``L(N, D, U) = E + A N^-alpha + B D'^-beta`` with effective data ``D' = U (1 + R_D (1 - exp(-R / R_D)))``.

    ``N`` parameters, ``D`` tokens seen, ``U`` unique tokens available (``R = D / U - 1``
    repetitions after the first epoch; ``U`` above ``D`` counts as ``D``). Repeated tokens
    decay in value: a few epochs are worth nearly as much as new data, and the effective data
    saturate at ``U (1 + R_D)`` (Muennighoff et al. 2023, "Scaling data-constrained language
    models", arXiv 2305.16264, eqs. 5-6). ``U`` is centred on ``D``'s reference scale, so the
    law sees the ratio ``D / U`` exactly.

    The paper also discounts parameters beyond the compute-optimal size for the unique data
    (``N'`` with ``R_N* = 5.3``); that term needs a Chinchilla optimum inside the law and is
    not included here: ``N`` counts in full. With one epoch (``D <= U``) the law is Chinchilla's.

    Their fit (C4, models to 9B, up to 1,500 epochs): E 1.87, A 521, alpha 0.353, B 1488,
    beta 0.353, R_D* 15.4 (R_N* 5.3). Literature priors (``priors="literature"``): alpha and
    beta as for :class:`Chinchilla`, ``R_D`` LogNormal(15.4, 0.5) (one study).

    Examples
    --------
    >>> import bayescale as bs
    >>> law = bs.laws.get("data_constrained")
    >>> p = {"E": 1.87, "A": 521.0, "alpha": 0.353, "B": 1488.0, "beta": 0.353, "R_D": 15.4}
    >>> one_epoch = float(law.mean(p, N=1e9, D=1e11, U=1e11))
    >>> chinchilla = float(bs.laws.Chinchilla().mean(p, N=1e9, D=1e11))
    >>> abs(one_epoch - chinchilla) < 1e-12
    True
    >>> bool(law.mean(p, N=1e9, D=1e11, U=1e10) > one_epoch)   # the same tokens as 10 epochs of a tenth
    True
    """

    name = "data_constrained"
    level_terms = None
    shared_reference = {"U": "D"}
    literature = Chinchilla.literature | {"R_D": LogNormal(15.4, 0.5)}

    formula = "E + A N^-alpha + B D'^-beta, D' = U (1 + R_D (1 - exp(-(D/U - 1) / R_D)))"

    @property
    def inputs(self) -> tuple[str, ...]:
        return ("N", "D", "U")

    @property
    def parameters(self) -> tuple[Parameter, ...]:
        return (
            *Chinchilla().parameters,
            Parameter(
                "R_D", LogNormal(10.0, 1.5), description="repetitions at which repeated data lose 1 - 1/e of value"
            ),
        )

    def log_mean(self, p, log_x):
        log_u = jnp.minimum(log_x["U"], log_x["D"])
        repeats = jnp.expm1(log_x["D"] - log_u)
        log_effective = log_u + jnp.log1p(p["R_D"] * -jnp.expm1(-repeats / p["R_D"]))
        terms = jnp.broadcast_arrays(
            p["log_E"], p["log_A"] - p["alpha"] * log_x["N"], p["log_B"] - p["beta"] * log_effective
        )
        return logsumexp(jnp.stack(terms, axis=0), axis=0)
