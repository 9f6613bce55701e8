"""Accuracy on a multiple-choice task: a sigmoid from about the task's chance level up to a ceiling of at most 1."""

from __future__ import annotations

import math
from dataclasses import dataclass

import jax
import jax.numpy as jnp

from bayescale.laws.base import Parameter
from bayescale.laws.power import OneInputLaw
from bayescale.priors import LogNormal, Normal


@dataclass(frozen=True, repr=False)
class AccuracyLaw(OneInputLaw):
    """``acc = floor + (ceiling - floor) sigmoid(+-B log(x / x_mid))``: accuracy from near chance up to a ceiling <= 1.

    Parameters
    ----------
    x : str
        Name of the input: compute (``"C"``), parameters, or a loss that predicts the task
        (the task's bits per byte, a validation loss).
    chance : float
        The task's chance level, in ``[0, 1)``: 0.25 for four options, 0.5 for two, 0 for
        free answers. The floor the curve starts from is learned near it (``floor_shift``,
        the difference of their log-odds, has a ``Normal(0, 0.5)`` prior): length-normalised
        scoring puts small models a little below or above chance. With ``chance=0`` the
        floor is 0.
    rising : bool
        ``True`` (default) when accuracy rises as ``x`` grows (compute, parameters, tokens);
        ``False`` when it rises as ``x`` falls (a loss: the second step of a loss-to-accuracy chain).
    ceiling : float, optional
        The accuracy approached at the far end, when known: ``1.0`` against the task's own
        loss of the correct answer (at zero loss the right answer is always chosen), or the
        share of correctly labelled items. By default it is learned, between the floor and 1:
        ``floor + (1 - floor) sigmoid(lift)``.

    Notes
    -----
    ``B`` is the steepness in ``log x`` and ``x_mid`` the input at which the curve is halfway
    up. ``B``'s prior is log-normal (sd 1.5) with its median at 0.5 against a scale (a climb from
    12% to 88% of the way over three to four decades) and at 2 against a loss. ``x_mid``'s is
    log-normal about the data's geometric mean, sd 3 in ``log x`` with the ceiling learned (where
    the runs sit on the curve's lower part it keeps the ceiling and the midpoint from running off
    together) and 4.6 (two decades) with it known, where runs on the climb place the midpoint and
    the prior speaks only for a task still at chance: it may take off anywhere beyond the data.

    Against task loss this is the second step of Bhagia et al. (Establishing Task Scaling Laws via
    Compute-Efficient Model Ladders, 2024), who anchor the curve with an "ideal point" of accuracy 1
    at zero loss (here ``ceiling=1``); against compute it is the accuracy curve of Ruan et al.'s
    observational scaling laws, whose families differ by a shift of ``C_mid`` (``pooled=["C_mid"]``).
    The default likelihood is :class:`bayescale.likelihoods.LogitNormal`, residuals on the log-odds
    of an averaged accuracy; a Binomial on counts also works.

    Examples
    --------
    >>> import bayescale as bs
    >>> law = bs.laws.AccuracyLaw("C", chance=0.25)
    >>> law.parameter_names
    ('floor_shift', 'lift', 'B', 'C_mid')
    >>> p = {"floor_shift": 0.0, "lift": 0.0, "B": 1.0, "C_mid": 1e21}
    >>> round(float(law.mean(p, C=1e21)), 6)   # halfway from chance to the ceiling 0.625
    0.4375
    >>> task = bs.laws.AccuracyLaw("bpb", chance=0.25, rising=False, ceiling=1.0)
    >>> task.parameter_names
    ('floor_shift', 'B', 'bpb_mid')
    >>> round(float(task.mean({"floor_shift": 0.0, "B": 8.0, "bpb_mid": 1.0}, bpb=1.0)), 6)
    0.625
    """

    chance: float = 0.25
    rising: bool = True
    ceiling: float | None = None
    name = "accuracy"
    default_likelihood = "logit_normal"

    def __post_init__(self) -> None:
        super().__post_init__()
        if isinstance(self.chance, bool) or not isinstance(self.chance, (int, float)) or not 0 <= self.chance < 1:
            raise ValueError(f"AccuracyLaw: chance must be in [0, 1) (0.25 for four options), got {self.chance!r}")
        if not isinstance(self.rising, bool):
            raise TypeError(f"AccuracyLaw: rising must be True or False, got {self.rising!r}")
        if self.ceiling is not None:
            if isinstance(self.ceiling, bool) or not isinstance(self.ceiling, (int, float)):
                raise TypeError(f"AccuracyLaw: ceiling must be a number or None, got {self.ceiling!r}")
            if not self.chance < self.ceiling <= 1:
                raise ValueError(
                    f"AccuracyLaw: ceiling must be above chance ({self.chance:g}) and at most 1, got {self.ceiling!r}"
                )
            object.__setattr__(self, "ceiling", float(self.ceiling))
        object.__setattr__(self, "chance", float(self.chance))

    @property
    def informative_range(self) -> float:
        """3 against a scale; 1.02 against a loss, which moves a few percent over a run (log-odds ``B`` times more)."""
        return 3.0 if self.rising else 1.02

    @property
    def midpoint(self) -> tuple[str, str, float]:
        return ("B", f"{self.x}_mid", 1.0 if self.rising else -1.0)

    @property
    def formula(self) -> str:
        sign = "" if self.rising else "-"
        top = "top" if self.ceiling is None else f"{self.ceiling:g}"
        return f"floor + ({top} - floor) sigmoid({sign}B log({self.x}/{self.x}_mid)), floor ~ {self.chance:g}"

    @property
    def parameters(self) -> tuple[Parameter, ...]:
        x = self.x
        mid_sd = 3.0 if self.ceiling is None else 4.6
        floor = Parameter("floor_shift", Normal(0.0, 0.5), description="log-odds of the floor minus those of chance")
        lift = Parameter("lift", Normal(1.0, 2.0), description="log-odds of the share of 1 - floor gained at the top")
        return (
            *((floor,) if self.chance > 0 else ()),  # no chance level (free answers): the floor is 0
            *((lift,) if self.ceiling is None else ()),
            # per e-fold of x: ~0.5 against a scale (a climb over decades), more against a loss (tenths of a nat)
            Parameter("B", LogNormal(0.5 if self.rising else 2.0, 1.5), description=f"steepness in log {x}"),
            # the midpoint's sd in log x: the class docstring says why it is wider with the ceiling known
            Parameter(f"{x}_mid", LogNormal(1.0, mid_sd), location_of=x, description=f"{x} halfway up"),
        )

    def _floor_and_headroom(self, p):
        """``log floor`` and ``log(ceiling - floor)``."""
        if self.chance == 0:
            log_floor, log_rest = -jnp.inf, 0.0
        else:
            floor_logit = math.log(self.chance) - math.log1p(-self.chance) + p["floor_shift"]
            log_floor, log_rest = jax.nn.log_sigmoid(floor_logit), jax.nn.log_sigmoid(-floor_logit)
        if self.ceiling is None:
            return log_floor, log_rest + jax.nn.log_sigmoid(p["lift"])
        # ceiling - floor, kept positive: the floor stays below a fixed ceiling
        floor = jnp.minimum(jnp.exp(log_floor), self.ceiling * (1.0 - 1e-9))
        return jnp.log(floor), jnp.log(self.ceiling - floor)

    def log_mean(self, p, log_x):
        climb = (1.0 if self.rising else -1.0) * p["B"] * (log_x[self.x] - p[f"log_{self.x}_mid"])
        log_floor, log_headroom = self._floor_and_headroom(p)
        log_top = self._log_top(log_floor, log_headroom)
        # the lower half up from the floor, the upper half down from the top: near a ceiling of 1 the
        # accuracy's log stays below 0 (floor + headroom rounds above 1); each half's climb clipped to
        # its side, so the branch not taken has finite gradients
        below = jnp.logaddexp(log_floor, log_headroom + jax.nn.log_sigmoid(jnp.minimum(climb, 0.0)))
        fall = log_headroom - log_top + jax.nn.log_sigmoid(-jnp.maximum(climb, 0.0))
        return jnp.where(climb < 0.0, below, log_top + jnp.log1p(-jnp.exp(fall)))

    def _log_top(self, log_floor, log_headroom):
        """``log(floor + headroom)``, at most 0."""
        if self.ceiling is not None:
            return math.log(self.ceiling)
        return jnp.minimum(jnp.logaddexp(log_floor, log_headroom), 0.0)

    def log_ceiling(self, p):
        if self.ceiling is not None:  # fixed (1 at most): every finite input's accuracy is below it
            return None
        return self._log_top(*self._floor_and_headroom(p))

    def config(self) -> dict:
        args = {"x": self.x, "chance": self.chance, "rising": self.rising, "ceiling": self.ceiling}
        return {"name": self.name, "args": args}
