"""The risk that the law itself is wrong beyond the data: a deviation of the curve that grows with distance.

A fitted law is exact nowhere; inside the data its misfit is absorbed by the parameters and
the noise, beyond them real curves bend, saturate and drift away from any fixed form. So a
prediction at inputs ``x`` adds to the law's ``log`` mean a deviation ::

    delta(x) = sigma * d(x) ** power * kappa * e(x)

- ``d(x)``: the distance in decades (base-10 orders of magnitude) from ``x`` to the convex hull of
  the fitted runs' inputs (zero inside it): how far the prediction reaches beyond the data (with
  groups, beyond the runs that test the group's shape: ``ScalingFit.reach``);
- ``sigma``: the fit's noise scale (per posterior draw): a law that scatters more around its own
  runs, that fits them worse, drifts further beyond them;
- ``e(x)``: a Gaussian process on the log inputs with correlation length ``length`` decades, one per
  group: the deviation is smooth along a curve (one direction, nearly one number) and differs
  between directions far apart (the law missing the shape of a surface, at unusual tokens per
  parameter, say); groups deviate independently;
- ``kappa``: the drift per decade in units of ``sigma``, log-normal across studies with median
  ``rate`` and log-sd ``rate_sd``, estimated from the leave-future-out errors of public scaling
  curves by marginal likelihood (``benchmarks/backtest_real.py --calibrate``; validated leave one
  source out, ``docs/extrapolation.md``).

Inside the data's range the bands are the law's own. The deviation is not learned from the
fitted runs (it is zero where they are), so it is drawn when predicting, not sampled by NUTS.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass

import jax
import numpy as np
from scipy.spatial import ConvexHull, QhullError

from bayescale.likelihoods import host_rng

# Median and log-sd of the drift per decade beyond the data, in units of the fit's noise scale, and the
# correlation length of its Gaussian process: the maximum marginal likelihood on the public curves
# (benchmarks/backtest_real.py --calibrate).
RATE, RATE_SD = 2.77, 0.99
POWER = 1.0
LENGTH = 1.0
TOLERANCE = 1e-9  # decades: a fitted run on the hull's face is inside it, whatever the rounding


@dataclass(frozen=True)
class Drift:
    """Extrapolation risk: a deviation of ``log(target)`` from the law that grows with the distance from the data.

    Parameters
    ----------
    rate, rate_sd : float
        Median and log-sd (across studies) of the deviation's standard deviation one decade beyond
        the data, in units of the fit's noise scale ``sigma``.
    power : float
        The deviation grows as ``distance ** power``.
    length : float
        Correlation length of the deviation along the inputs, in decades.

    Examples
    --------
    >>> import numpy as np, jax
    >>> drift = Drift(rate=1.0, rate_sd=0.0)
    >>> draws = drift.log_deviation(jax.random.key(0), np.log10([[1e9], [1e10], [1e11]]), np.array([0.0, 1.0, 2.0]),
    ...                             np.zeros(3, int), sigma=np.full(20_000, 0.01))
    >>> np.round(draws.std(axis=0), 3).tolist()
    [0.0, 0.01, 0.02]
    """

    rate: float = RATE
    rate_sd: float = RATE_SD
    power: float = POWER
    length: float = LENGTH

    def __post_init__(self) -> None:
        for name in ("rate", "rate_sd", "power", "length"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not np.isfinite(value) or value < 0:
                raise ValueError(f"Drift: {name} must be a finite number >= 0, got {value!r}")
        if self.power == 0.0 or self.length == 0.0:
            raise ValueError("Drift: power and length must be > 0")

    def rates(self, key, n_draws: int) -> np.ndarray:
        """``kappa`` per posterior draw, (draws, 1)."""
        return self.rate * np.exp(self.rate_sd * host_rng(key).standard_normal((n_draws, 1)))

    def process(self, key, log10_x: np.ndarray, groups: np.ndarray, n_draws: int) -> np.ndarray:
        """Unit Gaussian-process draws ``e(x)`` at rows ``log10_x`` (rows, inputs), independent per group:
        (draws, rows)."""
        log10_x = np.asarray(log10_x, dtype=float)
        out = np.zeros((n_draws, len(log10_x)))
        for i, g in enumerate(np.unique(groups)):
            rows = np.flatnonzero(groups == g)
            x = log10_x[rows]
            squared = ((x[:, None, :] - x[None, :, :]) ** 2).sum(-1)
            cov = np.exp(-squared / (2 * self.length**2)) + 1e-9 * np.eye(len(rows))
            factor = np.linalg.cholesky(cov)
            e = host_rng(jax.random.fold_in(key, i)).standard_normal((n_draws, len(rows)))  # no sampler to compile
            out[:, rows] = e @ factor.T
        return out

    def log_deviation(self, key, log10_x, distance, groups, sigma) -> np.ndarray:
        """Draws of the deviation of ``log(target)`` at rows ``distance`` decades from their group's data.

        ``log10_x`` (rows, inputs) places the rows; ``groups`` codes every row's group (groups deviate
        independently); ``sigma`` is the noise scale per posterior draw (draws,), or per draw and row
        (draws, rows) where it varies by group. ``distance`` has shape
        (rows,) or (draws, rows). Returns (draws, rows).
        """
        groups = np.asarray(groups, dtype=int)
        sigma = np.asarray(sigma, dtype=float)
        sigma = sigma[:, None] if sigma.ndim == 1 else sigma
        rate_key, process_key = jax.random.split(key)
        e = self.process(process_key, log10_x, groups, len(sigma))
        return sigma * self.rates(rate_key, len(sigma)) * np.asarray(distance, dtype=float) ** self.power * e

    def config(self) -> dict:
        """JSON-serialisable description (stored in saved fits)."""
        return {"kind": "drift", **asdict(self)}


DISCREPANCIES = {"drift": Drift}


def from_config(config: Mapping | None):
    """Rebuild a discrepancy from :meth:`Drift.config` (``None``: none)."""
    if config is None:
        return None
    config = dict(config)
    kind = config.pop("kind")
    if kind not in DISCREPANCIES:
        raise KeyError(f"unknown discrepancy {kind!r}; known: {sorted(DISCREPANCIES)}")
    return DISCREPANCIES[kind](**config)


def hull_distance(fitted: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Decades from each row of ``points`` to the convex hull of the rows of ``fitted`` (``log10`` inputs).

    Zero inside; outside, the largest distance beyond a face of the hull (the Euclidean distance
    where the nearest point of the hull lies on a face, a little less near its corners). One input:
    the distance beyond the fitted range. Fitted points that span fewer dimensions than the
    inputs (all on a line, say) are made full-dimensional by a tiny joggle.

    Examples
    --------
    >>> fitted = np.log10([[1e8, 1e9], [1e9, 1e10], [1e8, 1e10], [1e9, 1e9]])
    >>> hull_distance(fitted, np.log10([[3e8, 3e9], [1e10, 1e10], [1e9, 1e11]])).round(3).tolist()
    [0.0, 1.0, 1.0]
    >>> hull_distance(np.log10([[1e8], [1e9]]), np.log10([[1e7], [5e8], [1e11]])).tolist()
    [1.0, 0.0, 2.0]
    """
    fitted = np.asarray(fitted, dtype=float)
    points = np.asarray(points, dtype=float)
    if fitted.shape[1] == 1:
        low, high = fitted.min(), fitted.max()
        return np.maximum(0.0, np.maximum(points[:, 0] - high, low - points[:, 0]))
    unique = np.unique(fitted, axis=0)
    hull = None
    for options in ("", "QJ"):  # a joggle only where the points span fewer dimensions than the inputs
        try:
            hull = ConvexHull(unique, qhull_options=options or None)
            break
        except (QhullError, ValueError):
            continue
    if hull is None:  # too few distinct points for a hull: distance to the box
        low, high = unique.min(axis=0), unique.max(axis=0)
        excess = np.maximum(0.0, np.maximum(points - high, low - points))
        return np.sqrt((excess**2).sum(axis=1))
    signed = points @ hull.equations[:, :-1].T + hull.equations[:, -1]  # <= 0 inside every face
    distance = signed.max(axis=1)
    return np.where(distance > TOLERANCE, distance, 0.0)
