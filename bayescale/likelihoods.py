"""Observation models: how a measured target scatters around the law.

Scaling-law residuals of losses are multiplicative, so :class:`StudentT` and
:class:`Normal` are on ``log(y)`` around the law's log mean. :class:`StudentT` is the
default: the Bayesian counterpart of the Huber loss of Hoffmann et al. and Besiroglu et
al., robust to the odd bad run. Known per-row noise (``ScalingModel(noise="column")``)
is added in quadrature to the learned residual scale ``sigma``.

:class:`Binomial` is for accuracy (or pass rate) on a benchmark of ``n`` items: the
target is the number of items right and the law is the probability of getting one
right, so 0 of ``n`` and ``n`` of ``n`` are ordinary observations and a 20-item benchmark
is as noisy as it really is.

Every likelihood offers ``distribution(log_mean, params, noise_log_sd=None, trials=None)``,
the NumPyro distribution of the observed value (``log(y)``, or the count), and
``log_target(observation, trials)``, a drawn observation as the log of the target's rate,
``draw_log_target(rng, log_mean, params, noise_log_sd=None, trials=None)``, new observations drawn
with a NumPy generator (on the host: JAX's Student-t and Binomial samplers are rejection loops that
take about a second to compile for every shape of draws, for a draw that takes milliseconds), and
``shift(log_value, deviation)``, a log mean moved by a deviation on the residuals' scale (the
extrapolation risk of :mod:`bayescale.model.discrepancy`). ``rate`` says whether the target is a
rate in (0, 1), whose law must stay below 1.
"""

from __future__ import annotations

from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np
import numpyro.distributions as dist
from jax.scipy.special import gammaln
from numpyro.distributions import constraints

from bayescale.priors import check_finite


@dataclass(frozen=True)
class StudentT:
    """Student-t residuals on the log target.

    Parameters
    ----------
    nu : float or None
        Degrees of freedom; default 4: tails heavy enough to discount a bad run
        (like the Huber loss), light enough that ``sigma`` stays a noise scale.
        ``None`` learns them with a ``Gamma(2, 0.1)`` prior (Juarez and Steel 2010),
        at a price: the nu-sigma geometry gives occasional divergences on small data
        (1-3 in 4,000 draws on the 60-run quickstart data, none with nu fixed).
    sigma_scale : float
        Scale of the ``HalfNormal`` prior on ``sigma``, the residual scale of
        ``log(y)`` (0.2 = about 20% multiplicative noise, generous for losses).

    Examples
    --------
    >>> import bayescale as bs
    >>> bs.likelihoods.StudentT().parameter_names
    ('sigma',)
    >>> bs.likelihoods.StudentT(nu=None).parameter_names
    ('sigma', 'nu')
    """

    nu: float | None = 4.0
    sigma_scale: float = 0.2
    name = "student_t"
    rate = False  # a positive target (True: a rate in (0, 1), whose law must stay below 1)

    def __post_init__(self) -> None:
        if self.nu is not None:
            object.__setattr__(self, "nu", check_finite("StudentT nu", self.nu, True))
        object.__setattr__(self, "sigma_scale", check_finite("StudentT sigma_scale", self.sigma_scale, True))

    @property
    def parameter_names(self) -> tuple[str, ...]:
        return ("sigma",) if self.nu is not None else ("sigma", "nu")

    def priors(self) -> dict[str, dist.Distribution]:
        out = {"sigma": dist.HalfNormal(self.sigma_scale)}
        if self.nu is None:
            out["nu"] = dist.Gamma(2.0, 0.1)
        return out

    def distribution(self, log_mean, params, noise_log_sd=None, trials=None) -> dist.Distribution:
        nu = self.nu if self.nu is not None else params["nu"]
        return dist.StudentT(nu, log_mean, _scale(params["sigma"], noise_log_sd))

    def information(self, params, noise_log_sd=None):
        """Fisher information about the log mean in one row: ``(nu + 1) / ((nu + 3) scale^2)``."""
        nu = self.nu if self.nu is not None else params["nu"]
        return (nu + 1.0) / ((nu + 3.0) * _scale(params["sigma"], noise_log_sd) ** 2)

    def draw_log_target(self, rng, log_mean, params, noise_log_sd=None, trials=None) -> np.ndarray:
        log_mean = np.asarray(log_mean)
        nu = self.nu if self.nu is not None else np.asarray(params["nu"])
        t = rng.standard_t(np.broadcast_to(nu, log_mean.shape))
        return log_mean + _scale(np.asarray(params["sigma"]), noise_log_sd, np) * t

    def log_target(self, observation, trials=None):
        return observation

    def shift(self, log_value, deviation):
        """``log_value`` moved by ``deviation`` on the scale of the residuals (here ``log(y)`` itself)."""
        return log_value + deviation

    def config(self) -> dict:
        return {"name": self.name, "nu": self.nu, "sigma_scale": self.sigma_scale}


@dataclass(frozen=True)
class Normal:
    """Normal residuals on the log target (log-normal noise on the target).

    Parameters
    ----------
    sigma_scale : float
        Scale of the ``HalfNormal`` prior on ``sigma``, the residual scale of ``log(y)``.

    Examples
    --------
    >>> import bayescale as bs
    >>> bs.likelihoods.Normal().parameter_names
    ('sigma',)
    """

    sigma_scale: float = 0.2
    name = "normal"
    rate = False  # a positive target (True: a rate in (0, 1), whose law must stay below 1)

    def __post_init__(self) -> None:
        object.__setattr__(self, "sigma_scale", check_finite("Normal sigma_scale", self.sigma_scale, True))

    @property
    def parameter_names(self) -> tuple[str, ...]:
        return ("sigma",)

    def priors(self) -> dict[str, dist.Distribution]:
        return {"sigma": dist.HalfNormal(self.sigma_scale)}

    def distribution(self, log_mean, params, noise_log_sd=None, trials=None) -> dist.Distribution:
        return dist.Normal(log_mean, _scale(params["sigma"], noise_log_sd))

    def information(self, params, noise_log_sd=None):
        """Fisher information about the log mean in one row: ``1 / scale^2``."""
        return 1.0 / _scale(params["sigma"], noise_log_sd) ** 2

    def draw_log_target(self, rng, log_mean, params, noise_log_sd=None, trials=None) -> np.ndarray:
        log_mean = np.asarray(log_mean)
        return log_mean + _scale(np.asarray(params["sigma"]), noise_log_sd, np) * rng.standard_normal(log_mean.shape)

    def log_target(self, observation, trials=None):
        return observation

    def shift(self, log_value, deviation):
        """``log_value`` moved by ``deviation`` on the scale of the residuals (here ``log(y)`` itself)."""
        return log_value + deviation

    def config(self) -> dict:
        return {"name": self.name, "sigma_scale": self.sigma_scale}


@dataclass(frozen=True)
class Binomial:
    """Binomial counts: ``k`` of ``n`` items right, each with the law's probability.

    Parameters
    ----------
    trials : str
        Column with the number of items ``n`` of each row's benchmark (a positive
        integer). The model's ``target`` column then holds the number right ``k``
        (an integer from 0 to ``n``), and the law is the probability of one item right:
        it must stay inside (0, 1), as :class:`~bayescale.laws.SigmoidLaw` and
        :class:`~bayescale.laws.ExponentiatedPowerLaw` do for sensible parameters;
        parameters that push it outside have zero likelihood.

    Notes
    -----
    There is no residual scale: all the scatter is the benchmark's sampling noise. When
    runs scatter more than that (seeds, prompt formats), the intervals will be too
    narrow; compare with a :class:`StudentT` fit on the rate, or pool the rows of a run.
    Predictions are on the rate's scale: ``kind="mean"`` is the law, and
    ``kind="observation"`` is ``k / n`` of a new run, for which ``predict`` needs ``n``
    (the ``trials`` column, or a keyword of that name).

    Examples
    --------
    >>> import bayescale as bs
    >>> model = bs.ScalingModel(bs.laws.SigmoidLaw("C"), target="correct",
    ...                         likelihood=bs.likelihoods.Binomial(trials="n_items"))
    >>> model.parameter_names
    ('R0', 'gain', 'B', 'C_mid')
    """

    trials: str
    name = "binomial"
    rate = True  # the target is a rate in (0, 1), and the law must stay below 1

    def __post_init__(self) -> None:
        if not isinstance(self.trials, str):
            raise TypeError(f"Binomial trials must be a column name (str), got {self.trials!r}")

    @property
    def parameter_names(self) -> tuple[str, ...]:
        return ()

    def priors(self) -> dict[str, dist.Distribution]:
        return {}

    def distribution(self, log_mean, params, noise_log_sd=None, trials=None) -> dist.Distribution:
        return RateBinomial(log_mean, trials)

    def draw_log_target(self, rng, log_mean, params, noise_log_sd=None, trials=None) -> np.ndarray:
        log_rate = np.asarray(log_mean)
        # a rate of 1 (a law's limit, rounded) gets every trial right; above 1 no count: nan, as in RateBinomial
        inside = log_rate <= 0.0
        n = np.broadcast_to(np.asarray(trials, dtype=np.int64), log_rate.shape)
        k = rng.binomial(n, np.where(inside, np.exp(np.minimum(log_rate, 0.0)), 0.0))
        with np.errstate(divide="ignore"):  # 0 of n right is log rate -inf
            return np.where(inside, np.log(k) - np.log(n), np.nan)

    def log_target(self, observation, trials=None):
        return jnp.log(observation) - jnp.log(trials)

    def shift(self, log_value, deviation):
        """``log_value`` moved by ``deviation`` on the scale of the residuals (here ``log(y)`` itself)."""
        return log_value + deviation

    def config(self) -> dict:
        return {"name": self.name, "trials": self.trials}


class RateBinomial(dist.Distribution):
    """``Binomial(n, p)`` with ``log p`` given; every trial right at ``p = 1``, zero probability above.

    ``log p`` comes straight from the law in log space, so rates near 0 keep their
    precision; ``log(1 - p)`` is ``log(-expm1(log p))``.
    """

    # log p = -inf (p = 0, e.g. a law whose prefactor overflowed to inf in the user's units) is a valid rate
    arg_constraints = {"log_rate": constraints.less_than(jnp.inf), "total_count": constraints.nonnegative_integer}
    support = constraints.nonnegative_integer
    pytree_data_fields = ("log_rate", "total_count")

    def __init__(self, log_rate, total_count, *, validate_args=None):
        self.log_rate, self.total_count = jnp.broadcast_arrays(jnp.asarray(log_rate), jnp.asarray(total_count))
        super().__init__(batch_shape=jnp.shape(self.log_rate), validate_args=validate_args)

    def log_prob(self, value):
        n, k = self.total_count, value
        inside = self.log_rate < 0.0
        log_p = jnp.where(inside, self.log_rate, -1.0)  # a safe value where p >= 1, so gradients stay finite
        log_q = jnp.log(-jnp.expm1(log_p))
        log_choose = gammaln(n + 1.0) - gammaln(k + 1.0) - gammaln(n - k + 1.0)
        hits = jnp.where(k > 0, k * log_p, 0.0)  # 0 right at p = 0 (log p = -inf) has probability 1
        at_one = jnp.where((self.log_rate == 0.0) & (k == n), 0.0, -jnp.inf)  # a law's limit of 1, rounded
        return jnp.where(inside, log_choose + hits + (n - k) * log_q, at_one)

    def sample(self, key, sample_shape=()):
        p = jnp.where(self.log_rate <= 0.0, jnp.exp(self.log_rate), jnp.nan)
        shape = sample_shape + self.batch_shape
        return jax.random.binomial(key, self.total_count, p, shape=shape).astype(jnp.float64)


@dataclass(frozen=True)
class LogitNormal:
    """Normal residuals on the log-odds of a rate in (0, 1): averaged accuracy, pass rate, win rate.

    Parameters
    ----------
    sigma_scale : float
        Scale of the ``HalfNormal`` prior on ``sigma``, the residual scale of ``logit(y)``
        (0.5: a benchmark average that scatters by a few points around 50%, generous).

    Notes
    -----
    The target is a rate strictly between 0 and 1 (an accuracy averaged over a benchmark's
    items, not a count: for counts use :class:`Binomial`), and the law must stay below 1
    (:class:`~bayescale.laws.AccuracyLaw` does by construction). On the log-odds a point of
    accuracy near chance or near 1 weighs what it should: the scatter of an averaged
    accuracy shrinks as it nears 0 or 1, where a residual on ``log(y)`` would not.
    Like the other likelihoods it is the density of ``log(y)`` (the fit's ``log_likelihood``
    group), so log likelihoods compare across likelihoods fitted to the same rates.

    Examples
    --------
    >>> import bayescale as bs
    >>> bs.likelihoods.LogitNormal().parameter_names
    ('sigma',)
    """

    sigma_scale: float = 0.5
    name = "logit_normal"
    rate = True  # the target is a rate in (0, 1), and the law must stay below 1

    def __post_init__(self) -> None:
        object.__setattr__(self, "sigma_scale", check_finite("LogitNormal sigma_scale", self.sigma_scale, True))

    @property
    def parameter_names(self) -> tuple[str, ...]:
        return ("sigma",)

    def priors(self) -> dict[str, dist.Distribution]:
        return {"sigma": dist.HalfNormal(self.sigma_scale)}

    def distribution(self, log_mean, params, noise_log_sd=None, trials=None) -> dist.Distribution:
        return LogLogitNormal(log_mean, _scale(params["sigma"], noise_log_sd))

    def draw_log_target(self, rng, log_mean, params, noise_log_sd=None, trials=None) -> np.ndarray:
        log_rate = np.asarray(log_mean)
        scale = _scale(np.asarray(params["sigma"]), noise_log_sd, np)
        # a rate of 1 (a law's limit, rounded) draws 1, its noise's limit; above 1: nan
        with np.errstate(divide="ignore", over="ignore", invalid="ignore"):  # a rate at 0 has log-odds -inf
            logit_p = np.where(log_rate <= 0.0, _logit_of_log(np.minimum(log_rate, -1e-300), np), np.nan)
            return -np.logaddexp(0.0, -(logit_p + scale * rng.standard_normal(log_rate.shape)))  # log sigmoid

    def log_target(self, observation, trials=None):
        return observation

    def shift(self, log_value, deviation):
        """``log_value`` moved by ``deviation`` on the log-odds, where this likelihood's residuals live."""
        return jax.nn.log_sigmoid(_logit_of_log(log_value) + deviation)

    def config(self) -> dict:
        return {"name": self.name, "sigma_scale": self.sigma_scale}


class LogLogitNormal(dist.Distribution):
    """``log(y)`` where ``logit(y) ~ Normal(logit(p), scale)``, with ``log p`` given; zero where ``p >= 1``
    (at ``p = 1``, a law's limit rounded, its draws are 1)."""

    arg_constraints = {"log_rate": constraints.less_than(jnp.inf), "scale": constraints.positive}
    support = constraints.less_than(0.0)
    pytree_data_fields = ("log_rate", "scale")

    def __init__(self, log_rate, scale, *, validate_args=None):
        self.log_rate, self.scale = jnp.broadcast_arrays(jnp.asarray(log_rate), jnp.asarray(scale))
        super().__init__(batch_shape=jnp.shape(self.log_rate), validate_args=validate_args)

    def log_prob(self, value):
        inside = self.log_rate < 0.0
        logit_p = _logit_of_log(jnp.where(inside, self.log_rate, -1.0))
        z = (_logit_of_log(value) - logit_p) / self.scale
        # the density of logit(y), times |d logit(y) / d log(y)| = 1 / (1 - y)
        log_prob = -0.5 * z**2 - jnp.log(self.scale) - 0.5 * jnp.log(2 * jnp.pi) - _log1m_exp(value)
        return jnp.where(inside, log_prob, -jnp.inf)

    def sample(self, key, sample_shape=()):
        shape = sample_shape + self.batch_shape
        logit_p = jnp.where(self.log_rate <= 0.0, _logit_of_log(jnp.minimum(self.log_rate, -1e-300)), jnp.nan)
        return jax.nn.log_sigmoid(logit_p + self.scale * jax.random.normal(key, shape))


def _log1m_exp(log_y, xp=jnp):
    """``log(1 - y)`` from ``log(y) < 0``, accurate for ``y`` near 0 and near 1 (``xp``: jax.numpy or numpy)."""
    return xp.where(log_y > -0.693, xp.log(-xp.expm1(log_y)), xp.log1p(-xp.exp(log_y)))


def _logit_of_log(log_y, xp=jnp):
    """``logit(y)`` from ``log(y)``."""
    return log_y - _log1m_exp(log_y, xp)


def _scale(sigma, noise_log_sd, xp=jnp):
    """The residual scale, with known per-row noise added in quadrature."""
    return sigma if noise_log_sd is None else xp.sqrt(sigma**2 + xp.asarray(noise_log_sd) ** 2)


def host_rng(key) -> np.random.Generator:
    """A NumPy generator seeded from the JAX random ``key`` (a typed key or a raw ``uint32`` one), for
    draws on the host (:meth:`StudentT.draw_log_target` and the like)."""
    data = jax.random.key_data(key) if jnp.issubdtype(key.dtype, jax.dtypes.prng_key) else key
    return np.random.default_rng(np.asarray(data, dtype=np.uint32))


LIKELIHOODS = {StudentT.name: StudentT, Normal.name: Normal, LogitNormal.name: LogitNormal, Binomial.name: Binomial}


def get(name: str, **options) -> StudentT | Normal | LogitNormal | Binomial:
    """Build a likelihood by name (``"student_t"``, ``"normal"``, ``"logit_normal"`` or ``"binomial"``)."""
    if name not in LIKELIHOODS:
        raise KeyError(f"unknown likelihood {name!r}; valid likelihoods: {sorted(LIKELIHOODS)}")
    return LIKELIHOODS[name](**options)


def from_config(config: dict) -> StudentT | Normal | LogitNormal | Binomial:
    options = {k: v for k, v in config.items() if k != "name"}
    return get(config["name"], **options)
