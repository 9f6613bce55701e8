"""A Farseer-style law: Chinchilla's, with a data term whose prefactor and exponent change with model size."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, replace

import jax.numpy as jnp
from jax.scipy.special import logsumexp

from bayescale.laws.base import Law, Parameter
from bayescale.laws.chinchilla import Chinchilla
from bayescale.priors import Normal, check_finite


@dataclass(frozen=True, repr=False)
class Farseer(Law):
    """``L = E + A n^-alpha + B n^-kappa d^-(beta n^gamma)``, ``n = N/N0``, ``d = D/D0``: a data term drifting with N.

    Parameters
    ----------
    N0, D0 : float
        The pivots: the model size and token count at which ``A``, ``B`` and ``beta`` are read
        (default 1e9 parameters and 2e10 tokens). Choose them near the middle of your runs.

    Notes
    -----
    Li et al. (Farseer: A Refined Scaling Law in Large Language Models, arXiv 2506.10972) fit
    ``L = exp(a3 N^g + b3) + exp(a2 N^b + b2) D^-exp(a1 N^a + b1)``: the data term's prefactor
    and exponent both depend on model size, which Chinchilla's law holds fixed, and on their
    ~1,000 runs this cut Chinchilla's extrapolation error several-fold. This law keeps
    Chinchilla's ``E + A N^-alpha`` and takes the data term's prefactor and exponent to first
    order in ``log N``: power laws in ``n``, with ``kappa`` and ``gamma`` the slopes of
    ``-log B(N)`` and ``log beta(N)`` against ``log N``. At ``kappa = gamma = 0`` it is
    Chinchilla's law.

    ``A`` and ``B`` are the two terms' values at the pivots (``E + A + B`` is the loss at
    ``N0, D0``) and ``beta`` the data exponent of a model of size ``N0``. Where the exponent
    drifts, the pivot ``D0`` is part of the law (``B(N)`` is a power law at ``D = D0``), so the
    law centres ``N`` and ``D`` on its pivots rather than on the data's scales
    (:attr:`~bayescale.laws.Law.pivots`). The priors on ``kappa`` (Normal(0, 0.3)) and
    ``gamma`` (Normal(0, 0.1): ``beta`` changing by a factor of about 2 over three decades of
    ``N`` at one sd) centre on Chinchilla's law. It needs runs of several sizes, each at
    several token counts, to tell the drifts from the other terms.

    It fits its runs more closely than Chinchilla's law, and the extrapolation risk is counted in
    the fit's noise scale; so it has its own risk constants (:attr:`~bayescale.laws.Law.drift`),
    estimated as the package's were, on its own backtest errors (``docs/laws.md``).

    Farseer's published constants are for its own corpus and parameterisation and do not
    translate into these; ``priors="literature"`` centres ``alpha`` and ``beta`` on the
    Chinchilla-form fits of :class:`Chinchilla`.

    Examples
    --------
    >>> import bayescale as bs
    >>> law = bs.laws.get("farseer")
    >>> law.parameter_names
    ('E', 'A', 'alpha', 'B', 'beta', 'kappa', 'gamma')
    >>> p = {"E": 1.8, "A": 0.4, "alpha": 0.34, "B": 0.5, "beta": 0.3, "kappa": 0.1, "gamma": 0.05}
    >>> round(float(law.mean(p, N=1e9, D=2e10)), 6)   # E + A + B at the pivots
    2.7
    >>> chinchilla = {"E": 1.8, "A": 0.4 * 1e9**0.34, "alpha": 0.34, "B": 0.5 * 2e10**0.3, "beta": 0.3}
    >>> no_drift = p | {"kappa": 0.0, "gamma": 0.0}
    >>> bool(abs(law.mean(no_drift, N=7e9, D=1e12) - bs.laws.Chinchilla().mean(chinchilla, N=7e9, D=1e12)) < 1e-12)
    True
    """

    name = "farseer"
    level_terms = ("E", "A", "alpha", "B", "beta")
    literature = Chinchilla.literature
    # the extrapolation risk estimated on this law's own leave-future-out errors on the public curves of
    # N and D (benchmarks/backtest_real.py --law farseer --calibrate): it fits its runs ~8x more closely
    drift = {"rate": 4.17, "rate_sd": 0.70, "length": 0.5}
    N0: float = 1e9
    D0: float = 2e10

    def __post_init__(self) -> None:
        for name in ("N0", "D0"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)):  # check_finite would take "1e9"
                raise ValueError(f"{name} must be a finite number > 0, got {value!r}")
            check_finite(name, value, positive=True)

    @property
    def inputs(self) -> tuple[str, ...]:
        return ("N", "D")

    @property
    def pivots(self) -> Mapping[str, float]:
        return {"N": float(self.N0), "D": float(self.D0)}

    @property
    def formula(self) -> str:
        return "E + A n^-alpha + B n^-kappa d^-(beta n^gamma), n = N/N0, d = D/D0"

    @property
    def parameters(self) -> tuple[Parameter, ...]:
        chinchilla = {par.name: par for par in Chinchilla().parameters}
        return (
            chinchilla["E"],
            replace(chinchilla["A"], description="model-size term at N0"),
            chinchilla["alpha"],
            replace(chinchilla["B"], description="data term at N0 and D0"),
            replace(chinchilla["beta"], description="data exponent of a model of size N0"),
            Parameter("kappa", Normal(0.0, 0.3), description="drift of the data term's prefactor: B n^-kappa"),
            Parameter("gamma", Normal(0.0, 0.1), description="drift of the data exponent: beta n^gamma"),
        )

    def log_mean(self, p, log_x):
        n = log_x["N"] - math.log(self.N0)  # the model passes N and D uncentred (pivots)
        d = log_x["D"] - math.log(self.D0)
        data = p["log_B"] - p["kappa"] * n - p["beta"] * jnp.exp(p["gamma"] * n) * d
        terms = jnp.broadcast_arrays(p["log_E"], p["log_A"] - p["alpha"] * n, data)
        return logsumexp(jnp.stack(terms, axis=0), axis=0)

    def config(self) -> dict:
        return {"name": self.name, "args": {"N0": self.N0, "D0": self.D0}}
