"""The risk that the law itself is wrong beyond the data: a deviation of the curve that grows with distance.

A fitted law is exact nowhere; inside the data its misfit is absorbed by the parameters and
the noise, beyond them real curves bend, saturate and drift away from any fixed form. So a
prediction at inputs ``x`` adds to the law's ``log`` mean a deviation ::

    delta(x) = sigma * d(x) ** power * (tau * z + kappa * e(x))

- ``d(x)``: the distance in decades (base-10 orders of magnitude) from ``x`` to the convex hull of
  the fitted runs' inputs (zero inside it): how far the prediction reaches beyond the data;
- ``sigma``: the fit's noise scale (per posterior draw): a law that scatters more around its own
  runs (that fits them worse) drifts further beyond them;
- ``tau * z``: a trend shared by the whole curve (``z ~ Normal(0, 1)`` per draw and group), the
  curve bending away from the law as a whole;
- ``kappa * e(x)``: a smooth deviation that differs between directions (``e`` a Gaussian process
  on the log inputs with correlation length :data:`LENGTH` decades), the law missing the shape
  of the surface, e.g. at unusual tokens per parameter;
- ``tau`` and ``kappa`` are log-normal across studies: their medians and spreads are estimated
  from the leave-future-out errors of public scaling curves (``benchmarks/backtest_real.py
  --calibrate``, validated leave-one-source-out; ``docs/extrapolation.md``).

Inside the data's range the bands are the law's own. The deviation is not learned from the
fitted runs (it is zero where they are), so it is drawn when predicting, not sampled by NUTS.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass

import jax
import numpy as np
from scipy.spatial import ConvexHull, QhullError

# Medians and log-sd of the trend and the smooth deviation, per decade beyond the data, in units of
# the fit's noise scale: maximum marginal likelihood on the public curves (benchmarks/backtest_real.py).
TREND, TREND_SD = 1.5, 0.6
WIGGLE, WIGGLE_SD = 0.5, 0.7
POWER = 1.0
LENGTH = 1.0  # correlation length of the smooth deviation, in decades of the inputs


@dataclass(frozen=True)
class Drift:
    """Extrapolation risk: a deviation of ``log(target)`` from the law that grows with the distance from the data.

    Parameters
    ----------
    trend, trend_sd : float
        Median and log-sd (across studies) of the deviation shared by the whole curve, one decade
        beyond the data, in units of the fit's noise scale ``sigma``.
    wiggle, wiggle_sd : float
        The same for the smooth deviation that differs between directions of the inputs.
    power : float
        The deviation grows as ``distance ** power``.
    length : float
        Correlation length of the smooth deviation, in decades of the inputs.

    Examples
    --------
    >>> import numpy as np, jax
    >>> drift = Drift(trend=1.0, trend_sd=0.0, wiggle=0.0)
    >>> d = np.array([0.0, 1.0, 2.0])
    >>> draws = drift.log_deviation(jax.random.key(0), np.log10([[1e9], [1e10], [1e11]]), d, np.zeros(3, int),
    ...                             sigma=np.full(20_000, 0.01))
    >>> np.round(draws.std(axis=0), 3).tolist()
    [0.0, 0.01, 0.02]
    """

    trend: float = TREND
    trend_sd: float = TREND_SD
    wiggle: float = WIGGLE
    wiggle_sd: float = WIGGLE_SD
    power: float = POWER
    length: float = LENGTH

    def __post_init__(self) -> None:
        for name in ("trend", "trend_sd", "wiggle", "wiggle_sd", "power", "length"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not np.isfinite(value) or value < 0:
                raise ValueError(f"Drift: {name} must be a finite number >= 0, got {value!r}")
        if self.power == 0.0 or self.length == 0.0:
            raise ValueError("Drift: power and length must be > 0")

    def coefficients(self, key, n_draws: int, n_groups: int = 1) -> tuple[np.ndarray, np.ndarray]:
        """Per draw: the trend ``tau * z`` of every group (draws, groups), the wiggle's ``kappa`` (draws, 1)."""
        k_tau, k_z, k_kappa = jax.random.split(key, 3)
        tau = self.trend * np.exp(self.trend_sd * np.asarray(jax.random.normal(k_tau, (n_draws, 1))))
        z = np.asarray(jax.random.normal(k_z, (n_draws, max(int(n_groups), 1))))
        kappa = self.wiggle * np.exp(self.wiggle_sd * np.asarray(jax.random.normal(k_kappa, (n_draws, 1))))
        return tau * z, kappa

    def wiggle_draws(self, key, log10_x: np.ndarray, groups: np.ndarray, n_draws: int) -> np.ndarray:
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
            e = np.asarray(jax.random.normal(jax.random.fold_in(key, i), (n_draws, len(rows))))
            out[:, rows] = e @ factor.T
        return out

    def log_deviation(self, key, log10_x, distance, groups, sigma) -> np.ndarray:
        """Draws of the deviation of ``log(target)`` at rows ``distance`` decades from their group's data.

        ``log10_x`` (rows, inputs) places the rows for the smooth part; ``groups`` codes every row's
        group (a group's rows share its trend); ``sigma`` is the noise scale per posterior draw.
        ``distance`` has shape (rows,) or (draws, rows). Returns (draws, rows).
        """
        groups = np.asarray(groups, dtype=int)
        sigma = np.asarray(sigma, dtype=float).reshape(-1, 1)
        n_draws = len(sigma)
        coefficient_key, wiggle_key = jax.random.split(key)
        trend, kappa = self.coefficients(coefficient_key, n_draws, int(groups.max()) + 1 if groups.size else 1)
        e = self.wiggle_draws(wiggle_key, log10_x, groups, n_draws)
        scale = np.asarray(distance, dtype=float) ** self.power
        return sigma * scale * (trend[:, groups] + kappa * e)

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
    try:
        hull = ConvexHull(unique, qhull_options="QJ")
    except (QhullError, ValueError):  # too few distinct points for a hull: distance to the box
        low, high = unique.min(axis=0), unique.max(axis=0)
        excess = np.maximum(0.0, np.maximum(points - high, low - points))
        return np.sqrt((excess**2).sum(axis=1))
    signed = points @ hull.equations[:, :-1].T + hull.equations[:, -1]  # <= 0 inside every face
    return np.maximum(0.0, signed.max(axis=1))
