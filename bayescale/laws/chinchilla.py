"""Hoffmann et al.'s parametric law in model size and data: ``L = E + A N^-alpha + B D^-beta``."""

from __future__ import annotations

from dataclasses import dataclass

import jax.numpy as jnp
from jax.scipy.special import logsumexp

from bayescale.laws.base import Law, Parameter
from bayescale.priors import LogNormal


@dataclass(frozen=True, repr=False)
class Chinchilla(Law):
    """``L(N, D) = E + A N^-alpha + B D^-beta`` (Hoffmann et al. 2022, Approach 3).

    ``N`` is the number of parameters and ``D`` the number of training tokens.
    Evaluated as a log-sum-exp of the three terms on centred log inputs.

    Examples
    --------
    >>> import bayescale as bs
    >>> law = bs.laws.Chinchilla()
    >>> truth = {"E": 1.82, "A": 482.0, "alpha": 0.348, "B": 2085.0, "beta": 0.366}
    >>> round(float(law.mean(truth, N=70e9, D=1.4e12)), 3)
    1.976

    Published fits of this form (``priors="literature"`` centres the exponents on them):

    ============================  ======  ======  ======  =======  ======
    source                        E       A       alpha   B        beta
    ============================  ======  ======  ======  =======  ======
    Hoffmann et al. 2022          1.69    406.4   0.34    410.7    0.28
    Besiroglu et al. 2024         1.82    482.0   0.348   2085     0.366
    Muennighoff et al. 2023       1.87    521     0.353   1488     0.353
    ============================  ======  ======  ======  =======  ======

    The literature priors are LogNormal at the geometric mean of the three (alpha 0.347,
    beta 0.331) with a log-sd of 0.25: wider than the papers' disagreement (0.02 for alpha,
    0.14 for beta), which all come from English web text; the allocation exponents of other
    studies (N* ~ C^0.46-0.52 in Hoffmann et al.'s three approaches, 0.52 in DeepSeek 2024,
    0.47 in Llama 3) imply alpha / beta between about 0.85 and 1.2. ``E``, ``A`` and ``B`` are
    in nats of one corpus and tokenizer and keep the defaults, relative to the data's scale.
    """

    name = "chinchilla"
    level_terms = ("E", "A", "alpha", "B", "beta")
    literature = {"alpha": LogNormal(0.347, 0.25), "beta": LogNormal(0.331, 0.25)}

    formula = "E + A N^-alpha + B D^-beta"

    @property
    def inputs(self) -> tuple[str, ...]:
        return ("N", "D")

    @property
    def parameters(self) -> tuple[Parameter, ...]:
        return (
            Parameter("E", LogNormal(0.5, 1.5), in_target_units=True, description="irreducible loss"),
            Parameter(
                "A",
                LogNormal(0.25, 1.5),
                in_target_units=True,
                prefactor_of=("N", "alpha"),
                description="model-size prefactor: A N^-alpha",
            ),
            Parameter("alpha", LogNormal(0.3, 1.0), description="model-size exponent"),
            Parameter(
                "B",
                LogNormal(0.25, 1.5),
                in_target_units=True,
                prefactor_of=("D", "beta"),
                description="data prefactor: B D^-beta",
            ),
            Parameter("beta", LogNormal(0.3, 1.0), description="data exponent"),
        )

    def log_optimal_size(self, p, log_nd):
        """``log N*`` minimising the law at fixed ``N D = exp(log_nd)``, in closed form.

        Setting the derivative of ``A N^-alpha + B (N / ND)^beta`` to zero gives
        ``N* = G (ND)^a`` with ``G = (alpha A / (beta B))^(1 / (alpha + beta))`` and
        ``a = beta / (alpha + beta)`` (Hoffmann et al., Appendix D). ``p`` in the user's
        units, with logs; see :mod:`bayescale.results.budgets`.
        """
        alpha, beta = p["alpha"], p["beta"]
        log_g = (jnp.log(alpha) + p["log_A"] - jnp.log(beta) - p["log_B"]) / (alpha + beta)
        return log_g + beta / (alpha + beta) * log_nd

    def log_mean(self, p, log_x):
        terms = jnp.stack(
            jnp.broadcast_arrays(
                p["log_E"],
                p["log_A"] - p["alpha"] * log_x["N"],
                p["log_B"] - p["beta"] * log_x["D"],
            ),
            axis=0,
        )
        return logsumexp(terms, axis=0)
