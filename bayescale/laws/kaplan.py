"""Kaplan et al.'s laws: loss in parameters and data, and in parameters and training steps."""

from __future__ import annotations

from dataclasses import dataclass

import jax.numpy as jnp

from bayescale.laws.base import Law, Parameter
from bayescale.priors import LogNormal


@dataclass(frozen=True, repr=False)
class Kaplan(Law):
    """``L(N, D) = [(N_c / N)^(alpha_N / alpha_D) + D_c / D]^alpha_D`` (Kaplan et al. 2020, eq. 1.5).

    No irreducible term: the loss falls as a power of ``N`` when data are plentiful and of ``D``
    when the model is. The law is sampled in the package's prefactor form,
    ``L = [(A N^-alpha_N)^(1/alpha_D) + (B D^-alpha_D)^(1/alpha_D)]^alpha_D``, with
    ``A = N_c^alpha_N`` and ``B = D_c^alpha_D`` (each the loss of its input alone), so the
    prefactors are in the target's units; ``N_c = A^(1/alpha_N)``, ``D_c = B^(1/alpha_D)``.

    Kaplan et al.'s fit (WebText2, non-embedding parameters, tokens): alpha_N 0.076, alpha_D
    0.103, N_c 6.4e13, D_c 1.8e13 (their Table 2); fitted alone, L(N) and L(D) give alpha_N
    0.076 and alpha_D 0.095 (eqs. 1.1-1.2). Literature priors (``priors="literature"``):
    alpha_N LogNormal(0.076, 0.25), alpha_D LogNormal(0.099, 0.25).

    Examples
    --------
    >>> import bayescale as bs
    >>> law = bs.laws.get("kaplan")
    >>> n_c, d_c, a_n, a_d = 6.4e13, 1.8e13, 0.076, 0.103
    >>> p = {"A": n_c**a_n, "alpha_N": a_n, "B": d_c**a_d, "alpha_D": a_d}
    >>> direct = ((n_c / 1e9) ** (a_n / a_d) + d_c / 2e10) ** a_d
    >>> round(float(law.mean(p, N=1e9, D=2e10)), 9) == round(direct, 9)
    True
    """

    name = "kaplan"
    formula = "[(N_c/N)^(alpha_N/alpha_D) + D_c/D]^alpha_D"
    literature = {"alpha_N": LogNormal(0.076, 0.25), "alpha_D": LogNormal(0.099, 0.25)}

    @property
    def inputs(self) -> tuple[str, ...]:
        return ("N", "D")

    @property
    def parameters(self) -> tuple[Parameter, ...]:
        return (
            Parameter(
                "A",
                LogNormal(0.7, 1.0),
                in_target_units=True,
                prefactor_of=("N", "alpha_N"),
                description="loss of a model of N parameters on unlimited data: A N^-alpha_N (A = N_c^alpha_N)",
            ),
            Parameter("alpha_N", LogNormal(0.1, 1.0), description="model-size exponent"),
            Parameter(
                "B",
                LogNormal(0.7, 1.0),
                in_target_units=True,
                prefactor_of=("D", "alpha_D"),
                description="loss of an unlimited model on D tokens: B D^-alpha_D (B = D_c^alpha_D)",
            ),
            Parameter("alpha_D", LogNormal(0.1, 1.0), description="data exponent"),
        )

    def log_mean(self, p, log_x):
        a_d = p["alpha_D"]
        size = (p["log_A"] - p["alpha_N"] * log_x["N"]) / a_d
        data = (p["log_B"] - a_d * log_x["D"]) / a_d
        return a_d * jnp.logaddexp(size, data)


@dataclass(frozen=True, repr=False)
class KaplanSteps(Law):
    """``L(N, S) = (N_c / N)^alpha_N + (S_c / S)^alpha_S`` (Kaplan et al. 2020, eq. 1.6): a learning curve.

    ``S`` is the number of training steps (Kaplan et al.'s ``S_min``: steps at the critical
    batch size). Sampled as ``A N^-alpha_N + B S^-alpha_S`` with ``A = N_c^alpha_N`` and
    ``B = S_c^alpha_S``. Kaplan et al.'s fit: alpha_N 0.077, alpha_S 0.76, N_c 6.5e13,
    S_c 2.1e3 (their Table 3). Literature priors: alpha_N LogNormal(0.077, 0.25), alpha_S
    LogNormal(0.76, 0.25).

    Examples
    --------
    >>> import bayescale as bs
    >>> p = {"A": 6.5e13**0.077, "alpha_N": 0.077, "B": 2.1e3**0.76, "alpha_S": 0.76}
    >>> round(float(bs.laws.get("kaplan_steps").mean(p, N=1e9, S=1e5)), 3)
    2.401
    """

    name = "kaplan_steps"
    formula = "(N_c/N)^alpha_N + (S_c/S)^alpha_S"
    literature = {"alpha_N": LogNormal(0.077, 0.25), "alpha_S": LogNormal(0.76, 0.25)}

    @property
    def inputs(self) -> tuple[str, ...]:
        return ("N", "S")

    @property
    def parameters(self) -> tuple[Parameter, ...]:
        return (
            Parameter(
                "A",
                LogNormal(0.5, 1.5),
                in_target_units=True,
                prefactor_of=("N", "alpha_N"),
                description="model-size term: A N^-alpha_N (A = N_c^alpha_N)",
            ),
            Parameter("alpha_N", LogNormal(0.1, 1.0), description="model-size exponent"),
            Parameter(
                "B",
                LogNormal(0.25, 1.5),
                in_target_units=True,
                prefactor_of=("S", "alpha_S"),
                description="steps term: B S^-alpha_S (B = S_c^alpha_S)",
            ),
            Parameter("alpha_S", LogNormal(0.5, 1.0), description="steps exponent"),
        )

    def log_mean(self, p, log_x):
        return jnp.logaddexp(p["log_A"] - p["alpha_N"] * log_x["N"], p["log_B"] - p["alpha_S"] * log_x["S"])
