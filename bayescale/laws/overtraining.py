"""Gadre et al.'s law for over-trained models: Chinchilla's with one exponent for N and D."""

from __future__ import annotations

from dataclasses import dataclass, replace

import jax.numpy as jnp
from jax.scipy.special import logsumexp

from bayescale.laws.base import Parameter
from bayescale.laws.chinchilla import Chinchilla
from bayescale.priors import LogNormal


@dataclass(frozen=True, repr=False)
class Overtraining(Chinchilla):
    """``L(N, D) = E + A N^-alpha + B D^-alpha``: one exponent for parameters and tokens (Gadre et al. 2024).

    Gadre et al. ("Language models scale reliably with over-training and on downstream
    tasks", arXiv 2403.08540) write it in compute ``C = 6 N D`` and tokens per parameter
    ``M = D / N``::

        L(C, M) = E + (a M^eta + b M^-eta) C^-eta,   eta = alpha / 2,  a = A 6^eta,  b = B 6^eta

    With the exponents tied, a ladder of models at one ``M`` and a few over-trained runs at
    larger ``M`` pin down the whole surface: the law extrapolates in both size and
    over-training. It is Chinchilla's law with ``tie={"beta": "alpha"}`` under its own name;
    the compute-optimal split has ``N* = (A / B)^(1 / (2 alpha)) (N D)^(1/2)``.

    Literature priors (``priors="literature"``): ``alpha`` LogNormal(0.339, 0.25), the geometric
    mean of the six exponents of Chinchilla-form fits by Hoffmann et al. 2022, Besiroglu et al.
    2024 and Muennighoff et al. 2023 (see :class:`Chinchilla`).

    Examples
    --------
    >>> import bayescale as bs
    >>> law = bs.laws.get("overtraining")
    >>> law.parameter_names
    ('E', 'A', 'alpha', 'B')
    >>> p = {"E": 1.8, "A": 480.0, "alpha": 0.34, "B": 2000.0}
    >>> eta = 0.34 / 2   # the same loss in Gadre et al.'s (C, M) form
    >>> a, b, c, m = 480.0 * 6**eta, 2000.0 * 6**eta, 6 * 1e9 * 2e11, 200.0
    >>> round(float(law.mean(p, N=1e9, D=2e11)), 6) == round(1.8 + (a * m**eta + b * m**-eta) * c**-eta, 6)
    True
    """

    name = "overtraining"
    level_terms = None
    literature = {"alpha": LogNormal(0.339, 0.25)}

    formula = "E + A N^-alpha + B D^-alpha"

    @property
    def parameters(self) -> tuple[Parameter, ...]:
        one_exponent = {
            "alpha": {"description": "exponent of both N and D"},
            "B": {"prefactor_of": ("D", "alpha"), "description": "data prefactor: B D^-alpha"},
        }
        chinchilla = super().parameters
        return tuple(replace(p, **one_exponent.get(p.name, {})) for p in chinchilla if p.name != "beta")

    def log_optimal_size(self, p, log_nd):
        return super().log_optimal_size(dict(p) | {"beta": p["alpha"]}, log_nd)

    def log_mean(self, p, log_x):
        terms = jnp.broadcast_arrays(
            p["log_E"], p["log_A"] - p["alpha"] * log_x["N"], p["log_B"] - p["alpha"] * log_x["D"]
        )
        return logsumexp(jnp.stack(terms, axis=0), axis=0)
