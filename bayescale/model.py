"""Builds the NumPyro model of a scaling-law fit. The only module that calls ``numpyro.sample``.

Every law parameter is sampled on its transformed scale (the log for positive
parameters), at the reference scale of its inputs, standardised by its prior:

- ``shared``:      ``t = loc + scale * z``, one value for all rows;
- ``independent``: ``t_g = loc + scale * z_g``, one value per group, each with the prior;
- ``pooled``:      per-group values from a population ``Normal(mu, tau)`` whose location
  ``mu = loc + scale * z_mu`` and spread ``tau = scale * s`` are learned, with a
  zero-avoiding ``s ~ Gamma(2, 10)`` (mean 0.2 prior scales: groups similar, not equal).

Pooled exponents are non-centred (``t_g = mu + tau * z_g``): families' exponents differ
by less than one family's data can tell apart, the regime where a centred model has a
funnel at small ``tau``. Pooled level terms (the irreducible term and prefactors, which
carry each family's units and data) are centred (``t_g ~ Normal(mu, tau)``) in the
groups whose own data measure them, where a non-centred model forces NUTS through long
curved trajectories, and non-centred in the groups whose data cannot (too few runs, or
an input that barely varies, like the tokens of a family trained on one data budget),
where a centred one has the funnel (:func:`centring` decides, from the data, per group).
On 6 simulated Chinchilla families centring the level terms cut leapfrog steps per draw
from ~850 (all non-centred) to ~70 with no divergences (all centred: ~35 steps but
divergences at small exponent spreads). On the 12 real ColPret families, centring by
data instead of by kind raised the minimum bulk ESS from 245-260 to 850-1,000 of 4,000
draws and cut divergences from 4-6 to 1-2 (``B_spread`` near zero; see
:mod:`bayescale.diagnostics`).

A law that declares :attr:`~bayescale.laws.Law.level_terms` (``E + A x^-alpha``) has its
three shared parameters sampled in level coordinates instead: the curve's level and slope at
the reference scale and the split between ``E`` and ``A`` (:func:`shared_level_terms`), the same
prior reparameterised with unit Jacobian. On the 11 OLMo ladder evaluation sets (exponents
0.05-0.1, E weakly identified) this cut leapfrog steps per draw from 38-54 to 7-8.5 (median
over the sets) and made every fit healthy, against 0-6 of 11 before. A law of several terms
(``E + A N^-alpha + B D^-beta``) declares them all and is sampled the same way
(:func:`_sample_power_terms`: a split per term, one level, a slope per term): on single
families of 40 simulated Chinchilla runs 12-33 -> 6.4-14 steps per draw, and a minimum bulk
ESS of 32-1,050 -> 720-3,950. Pooled across groups these coordinates with a fixed choice of
centring diverged at small exponent spreads (1-16 divergences per fit on 8 families x 40
runs, against 0-1).

With ``ScalingModel(..., pilot=True)`` the pooled groups are sampled in the pilot's frame
instead (:mod:`bayescale.pooled`, :func:`_sample_pooled`): standard coordinates mapped
through the Gaussian approximation of each group's conditional posterior at the current
population, in level coordinates where all level terms are pooled; the sites stay the
parameters' own, the density is exact. Everything above about centring then concerns
models without a pilot and :meth:`~bayescale.ScalingModel.fit_many`.

The standardised coordinates are multiplied by :data:`Z_SCALE` before NUTS sees them, so
that NumPyro's mass-matrix shrinkage towards ``1e-3 * I`` is negligible against the
posterior variance of well-measured parameters.

``loc`` and ``scale`` come in through :class:`ModelArgs`, not through the closure, so one
compiled sampler serves every data set of the same shape.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
from jax.flatten_util import ravel_pytree
from numpyro.distributions import constraints

from bayescale import pooled
from bayescale.laws import Law
from bayescale.pooled import PooledBasis

TREATMENTS = ("shared", "pooled", "independent")
SPREAD_PRIOR = (2.0, 10.0)  # Gamma(shape, rate) of the between-group sd, in units of the parameter's prior scale
GROUP_PLATE = "group"
Z_SCALE = 100.0  # sampling coordinates are Z_SCALE * (standardised value); see the module docstring


class ModelArgs(NamedTuple):
    """Everything numeric a model needs (and where its chains start); a JAX pytree, so it can be a jit argument."""

    log_x: dict  # law input -> log(x / x_ref), shape (rows,)
    observed: jnp.ndarray | None  # what the likelihood observes (log target, or counts), or None to simulate
    noise_log_sd: jnp.ndarray | None  # known per-row sd of log(y), or None
    prior_loc: dict  # parameter -> location on the sampling scale
    prior_scale: dict  # parameter -> scale on the sampling scale
    log_ref: dict  # law input -> log(x_ref)
    group: jnp.ndarray | None = None  # group code of every row
    group_ids: jnp.ndarray | None = None  # arange(number of groups); its length sets the plate size
    centred: dict | None = None  # pooled parameter -> 1.0 where a group's value is sampled centred, else 0.0
    trials: jnp.ndarray | None = None  # items per row, for a Binomial likelihood
    mask: jnp.ndarray | None = None  # False on the rows added by :func:`pad_rows`, which the likelihood skips
    start: tuple | None = None  # (point, sd): site -> where chains start and their initial scale (the pilot's)
    basis: PooledBasis | None = None  # the pilot's measure of every group's pooled parameters (:mod:`bayescale.pooled`)


ROW_FIELDS = ("observed", "noise_log_sd", "group", "trials")  # per-row leaves besides ``log_x``
MIN_ROWS = 16  # smallest padded row count (see :func:`row_bucket`)


def n_rows(args: ModelArgs) -> int:
    """Number of rows (runs) in ``args``, padding included."""
    return int(next(iter(args.log_x.values())).shape[-1])


def row_bucket(rows: int) -> int:
    """The padded row count for ``rows`` rows: at most 25% more, from a short list of sizes.

    Data of every length between two sizes share one compiled sampler (16, 20, 24, 28, 32,
    40, 48, 56, 64, 80, ...: four sizes per doubling), so a backtest that adds one run at a
    time, or a collection of data sets of different lengths, compiles a few times, not once
    per length.

    Examples
    --------
    >>> [row_bucket(n) for n in (1, 16, 17, 60, 240, 100_000)]
    [16, 16, 20, 64, 256, 114688]
    """
    if rows <= MIN_ROWS:
        return MIN_ROWS
    step = 2 ** ((rows - 1).bit_length() - 3)
    return -(-rows // step) * step


def padding_index(n: int, rows: int) -> np.ndarray:
    """Row index that pads ``n`` rows to ``rows``: the rows themselves, then copies of the first.

    Examples
    --------
    >>> padding_index(3, 5).tolist()
    [0, 1, 2, 0, 0]
    """
    if rows < n:
        raise ValueError(f"cannot pad {n} rows to {rows}")
    return np.concatenate([np.arange(n), np.zeros(rows - n, dtype=int)])


def pad_rows(args: ModelArgs, rows: int) -> ModelArgs:
    """``args`` with ``rows`` rows: copies of the first row appended and masked out of the likelihood.

    The copies hold valid values (no NaN reaches a gradient through the mask) and count
    for nothing: the log density, its gradient and the pointwise log likelihood of the
    real rows are unchanged.

    Examples
    --------
    >>> import jax.numpy as jnp
    >>> args = ModelArgs({"N": jnp.zeros(3)}, jnp.ones(3), None, {}, {}, {})
    >>> padded = pad_rows(args, 16)
    >>> padded.observed.shape, int(padded.mask.sum())
    ((16,), 3)
    """
    n = n_rows(args)
    index = padding_index(n, rows)
    take = lambda a: None if a is None else jnp.asarray(a)[..., index]  # noqa: E731
    mask = np.arange(rows) < n
    if args.mask is not None:
        mask &= np.asarray(args.mask)[index]
    return args._replace(
        log_x={k: take(v) for k, v in args.log_x.items()},
        mask=jnp.asarray(mask),
        **{name: take(getattr(args, name)) for name in ROW_FIELDS},
    )


def z_site(name: str) -> str:
    """Name of the standardised sampling site behind law parameter ``name``."""
    return f"{name}_z"


def standardising_scale(z: Mapping) -> jnp.ndarray:
    """Per coordinate of ``ravel_pytree(z)``: sampling value / prior-standardised value.

    ``Z_SCALE`` for the standardised (``*_z``) sites, 1 for the rest (the noise scale
    and other sites sampled on their own scale). Damped Newton steps
    (:mod:`bayescale.laplace`) have isotropic damping, so they run on ``flat / scale``.

    Examples
    --------
    >>> import jax.numpy as jnp
    >>> standardising_scale({"A_z": jnp.zeros(2), "sigma": jnp.array(0.1)}).tolist()
    [100.0, 100.0, 1.0]
    """
    return ravel_pytree({k: jnp.full_like(v, Z_SCALE if k.endswith("_z") else 1.0) for k, v in z.items()})[0]


def from_transformed(law: Law, t: Mapping) -> dict:
    """Values on the sampling scale -> values (and logs, for positive parameters) for the law."""
    out = {}
    for par in law.parameters:
        if par.name not in t:
            continue
        if par.transform == "log":
            out[f"log_{par.name}"] = t[par.name]
            out[par.name] = jnp.exp(t[par.name])
        else:
            out[par.name] = t[par.name]
    return out


def to_transformed(law: Law, p: Mapping) -> dict:
    """Inverse of :func:`from_transformed`: the sampling-scale value of every parameter in ``p``."""
    return {
        par.name: p[f"log_{par.name}"] if par.transform == "log" else p[par.name]
        for par in law.parameters
        if par.name in p
    }


def build(
    law: Law, likelihood, treatments: Mapping[str, str] | None = None, level_coordinates: bool = True
) -> Callable[[ModelArgs], None]:
    """Return the NumPyro model function ``model(args)``.

    Parameters
    ----------
    law, likelihood
        The law and the observation model.
    treatments : mapping, optional
        Law parameter -> ``"shared"``, ``"pooled"`` or ``"independent"`` across groups
        (default all shared, the only choice without a group column).
    level_coordinates : bool
        Sample a law's shared :attr:`~bayescale.laws.Law.level_terms` in level coordinates
        (:func:`shared_level_terms`; the default); False keeps one standardised site per
        parameter (what :mod:`bayescale.pilot` reads).

    Examples
    --------
    >>> import bayescale as bs
    >>> from bayescale.model import build
    >>> model = build(bs.laws.PowerLaw("C"), bs.likelihoods.Normal(), {"A": "pooled"})
    >>> callable(model)
    True
    """
    treatments = dict(treatments or {})
    terms = shared_level_terms(law, treatments) if level_coordinates else ()
    pooled_terms, pooled_params = pooled_level_terms(law, treatments), pooled_names(law, treatments)

    def model(args: ModelArgs) -> None:
        n_groups = 0 if args.group_ids is None else args.group_ids.shape[0]
        groups = _sample_power_terms(terms, args) if terms else {}
        population = dict(groups)
        hyper = {}  # pooled parameter -> (population location, spread), standardised, where args.basis is given
        for par in law.parameters:
            if par.name in terms:
                continue
            how = treatments.get(par.name, "shared")
            loc, scale = args.prior_loc[par.name], args.prior_scale[par.name]
            if how == "shared":
                groups[par.name] = population[par.name] = loc + scale * _standard(z_site(par.name))
                continue
            if how == "independent":
                with numpyro.plate(GROUP_PLATE, n_groups):
                    groups[par.name] = loc + scale * _standard(z_site(par.name))
                continue
            mu = _standard(f"{par.name}_pop_z")
            s = numpyro.sample(f"{par.name}_tau", dist.Gamma(*SPREAD_PRIOR))
            numpyro.deterministic(f"{par.name}_spread", scale * s)
            population[par.name] = loc + scale * mu
            if args.basis is not None:
                hyper[par.name] = (mu, s)
                continue
            c = args.centred[par.name]
            with numpyro.plate(GROUP_PLATE, n_groups):
                # centred where c = 1 (u ~ N(mu, s)), non-centred where c = 0 (u ~ N(0, 1), w = mu + s u)
                u = numpyro.sample(z_site(par.name), dist.Normal(c * mu * Z_SCALE, (c * s + 1.0 - c) * Z_SCALE))
                w = c * u / Z_SCALE + (1.0 - c) * (mu + s * u / Z_SCALE)
            groups[par.name] = loc + scale * w
        if hyper:
            groups.update(_sample_pooled(pooled_params, pooled_terms, hyper, args, n_groups))
        user = law.to_user(from_transformed(law, groups), args.log_ref)
        for name in law.parameter_names:
            numpyro.deterministic(name, user[name])
        if n_groups:
            _population_sites(law, treatments, population, args.log_ref)

        noise = {name: numpyro.sample(name, prior) for name, prior in likelihood.priors().items()}
        # one gather of all per-group values (and one scatter-add in the gradient), not one per parameter:
        # the 8-family Chinchilla hierarchy's log density and gradient ~15 -> ~11-13 us
        per_group = [k for k, v in groups.items() if jnp.ndim(v) == 1]
        rows = dict(groups)
        if per_group:
            taken = jnp.stack([groups[k] for k in per_group], axis=-1)[args.group]
            rows.update({k: taken[:, i] for i, k in enumerate(per_group)})
        log_mean = law.log_mean(from_transformed(law, rows), args.log_x)
        if getattr(likelihood, "trials", None) is not None:
            ceiling = law.log_ceiling(from_transformed(law, rows))
            if ceiling is not None:  # a rate must stay below 1 beyond the data too
                numpyro.factor("rate_ceiling", jnp.sum(jnp.where(ceiling < 0.0, 0.0, -jnp.inf)))
        observation = likelihood.distribution(log_mean, noise, args.noise_log_sd, args.trials)
        if args.mask is not None:
            observation = observation.mask(args.mask)
        numpyro.sample("obs", observation, obs=args.observed)

    return model


def shared_level_terms(law: Law, treatments: Mapping[str, str]) -> tuple[str, ...]:
    """The law's :attr:`~bayescale.laws.Law.level_terms` where all are shared (sampled in level coordinates), or ``()``.

    ``(E, A, alpha)`` for ``E + A x^-alpha``, ``(E, A, alpha, B, beta, ...)`` for
    ``E + A x^-alpha + B y^-beta + ...``; checked on the way (each prefactor followed by its
    exponent, all positive). :func:`build` samples them as :func:`_sample_power_terms` says;
    pooled or independent ones keep their own standardised sites.

    Examples
    --------
    >>> import bayescale as bs
    >>> shared_level_terms(bs.laws.SaturatingPowerLaw("N"), {})
    ('E', 'A', 'alpha')
    >>> shared_level_terms(bs.laws.SaturatingPowerLaw("N"), {"alpha": "pooled"})
    ()
    >>> shared_level_terms(bs.laws.Chinchilla(), {})
    ('E', 'A', 'alpha', 'B', 'beta')
    >>> shared_level_terms(bs.laws.Chinchilla(), {"beta": "pooled"})
    ()
    """
    terms = declared_level_terms(law)
    if any(treatments.get(name, "shared") != "shared" for name in terms):
        return ()
    return terms


def pooled_level_terms(law: Law, treatments: Mapping[str, str]) -> tuple[str, ...]:
    """The law's :attr:`~bayescale.laws.Law.level_terms` where all are pooled, or ``()``.

    Where the pilot has measured the groups (:class:`~bayescale.pooled.PooledBasis`), their
    coordinates are then the level, splits and slopes (:func:`bayescale.pooled.to_coordinates`).

    Examples
    --------
    >>> import bayescale as bs
    >>> law = bs.laws.Chinchilla()
    >>> pooled_level_terms(law, dict.fromkeys(law.parameter_names, "pooled"))
    ('E', 'A', 'alpha', 'B', 'beta')
    >>> pooled_level_terms(law, {"A": "pooled", "alpha": "pooled"})
    ()
    """
    terms = declared_level_terms(law)
    if any(treatments.get(name, "shared") != "pooled" for name in terms):
        return ()
    return terms


def pooled_names(law: Law, treatments: Mapping[str, str]) -> tuple[str, ...]:
    """The pooled parameters, in the law's order (the last axis of :class:`~bayescale.pooled.PooledBasis`)."""
    return tuple(par.name for par in law.parameters if treatments.get(par.name) == "pooled")


def declared_level_terms(law: Law) -> tuple[str, ...]:
    """The law's :attr:`~bayescale.laws.Law.level_terms`, checked: the irreducible term, then prefactor, exponent, ...

    Examples
    --------
    >>> import bayescale as bs
    >>> declared_level_terms(bs.laws.PowerLaw("N"))
    ()
    """
    terms = tuple(getattr(law, "level_terms", None) or ())
    if not terms:
        return ()
    pairs = list(zip(terms[1::2], terms[2::2], strict=False))
    wrong = [(a, x) for a, x in pairs if law.parameter(a).prefactor_of is None or law.parameter(a).prefactor_of[1] != x]
    if len(terms) % 2 == 0 or any(law.parameter(name).transform != "log" for name in terms) or wrong:
        pair = ""
        if wrong:  # name the first wrong pair
            a, x = wrong[0]
            pair = f": {a!r} the prefactor of the term with exponent {x!r} (prefactor_of=(input, {x!r}))"
        raise ValueError(
            f"law {law.name!r} declares level_terms={terms!r}: they must be positive (LogNormal priors), the "
            f"irreducible term first, then each prefactor followed by its exponent{pair}"
        )
    return terms


def _sample_pooled(names: tuple[str, ...], terms: tuple[str, ...], hyper: Mapping, args: ModelArgs, n_groups: int):
    """Every group's pooled values from standard coordinates in the pilot's frame (:mod:`bayescale.pooled`).

    The sites are the parameters' own (``<name>_z``, one per group), flat: the density is
    the population's ``Normal`` at the values the coordinates map to, times the map's
    Jacobian, added as a factor. So this model cannot simulate from its prior; the
    calibration studies simulate without the pilot. A group outside the frame (its design
    does not measure every pooled parameter, :func:`bayescale.pilot.pooled_basis`) maps its
    coordinates as without the pilot: ``x = a + b u``, centred (``a = loc``, ``b = scale``)
    or not (``a = mu``, ``b = tau``) as ``args.centred`` says.
    """
    loc, scale = args.prior_loc, args.prior_scale
    location = jnp.stack([loc[k] + scale[k] * hyper[k][0] for k in names])
    spread = jnp.stack([scale[k] * hyper[k][1] for k in names])
    mean, lower = pooled.frame(location, spread, args.basis)
    with numpyro.plate(GROUP_PLATE, n_groups):
        flat = dist.ImproperUniform(constraints.real, (), ())
        u = jnp.stack([numpyro.sample(z_site(k), flat) for k in names], axis=-1)
    framed = args.basis.framed[:, None] > 0
    c = jnp.stack([args.centred[k] for k in names], axis=-1)
    offset = c * jnp.stack([loc[k] for k in names]) + (1.0 - c) * location
    unit = c * jnp.stack([scale[k] for k in names]) + (1.0 - c) * spread
    in_frame = pooled.from_coordinates(mean + pooled.solve_upper(lower, u / Z_SCALE), names, terms)
    x = jnp.where(framed, in_frame, offset + unit * u / Z_SCALE)
    # |det dx/du| = Z_SCALE^-K / prod(diag L) in the frame (the coordinates' map has unit Jacobian),
    # Z_SCALE^-K prod(b) outside; the common constant is dropped
    log_jacobian = jnp.where(framed, -jnp.log(jnp.diagonal(lower, axis1=-2, axis2=-1)), jnp.log(unit))
    numpyro.factor("pooled_groups", jnp.sum(dist.Normal(location, spread).log_prob(x) + log_jacobian))
    return {k: x[:, i] for i, k in enumerate(names)}


def _sample_power_terms(terms: tuple[str, ...], args: ModelArgs) -> dict:
    """``log E``, ``log A_k`` and ``log alpha_k`` of ``E + sum_k A_k x_k^-alpha_k`` from level coordinates.

    NUTS sees the split ``q_k = log E - log A_k`` of each term against the irreducible one,
    the level ``log(E + sum_k A_k)`` of the curve (or surface) at the reference scales and
    each term's slope ``log(A_k alpha_k)`` there. The data pin down the level and the slopes
    tightly and nearly independently of the splits, which only the curvature measures; in
    the parameters' own coordinates the same posterior is a curved ridge where the data do
    not show the curve levelling off (``log E`` runs to ``-inf`` as the terms take over the
    level). The prior is the law's (independent Normals on every
    log), factorised exactly into Normal conditionals: each split given the earlier ones
    (``log E`` given them is Normal: Gaussian conditioning on ``log A_j = log E - q_j``), the
    level given all splits (``log E`` given them, shifted by ``log(1 + sum_k exp(-q_k))``),
    each slope given its prefactor; the maps have unit Jacobian. The sites are the
    parameters' own: the irreducible term's holds the level, a prefactor's its split, an
    exponent's its slope, each standardised by constants. On single families of 40
    simulated Chinchilla runs (4 families, seeds 0-2) this cut leapfrog steps per draw from
    12-33 to 6.4-14 and raised the minimum bulk ESS from 32-1,050 to 720-3,950 of 4,000 draws
    (divergences 0-4 -> 0); on the 240 Chinchilla runs, 6.7-7.4 -> 6.4-6.5 steps and
    3,000-3,800 -> 5,200-5,800.
    """
    e, pairs = terms[0], list(zip(terms[1::2], terms[2::2], strict=True))
    loc, scale = args.prior_loc, args.prior_scale

    def coordinate(site, mean, sd, offset, unit):
        u = numpyro.sample(site, dist.Normal(Z_SCALE * (mean - offset) / unit, Z_SCALE * sd / unit))
        return offset + unit * u / Z_SCALE

    mean_e, precision = loc[e], 1.0 / scale[e] ** 2
    splits = []
    for a, _ in pairs:
        sd = jnp.sqrt(1.0 / precision + scale[a] ** 2)
        q = coordinate(z_site(a), mean_e - loc[a], sd, loc[e] - loc[a], jnp.hypot(scale[e], scale[a]))
        mean_e = (mean_e * precision + (q + loc[a]) / scale[a] ** 2) / (precision + 1.0 / scale[a] ** 2)
        precision = precision + 1.0 / scale[a] ** 2
        splits.append(q)
    shift = jax.nn.softplus(jax.scipy.special.logsumexp(-jnp.stack(splits), axis=0))  # log(1 + sum_k exp(-q_k))
    levels = jnp.stack([loc[name] for name in terms[::2]])
    unit = 1.0 / jnp.sqrt(precision)  # a constant: the sd of log E given the splits
    level = coordinate(z_site(e), mean_e + shift, unit, jax.scipy.special.logsumexp(levels), unit)
    out = {e: level - shift}
    for (a, alpha), q in zip(pairs, splits, strict=True):
        out[a] = out[e] - q
        slope = coordinate(z_site(alpha), out[a] + loc[alpha], scale[alpha], loc[a] + loc[alpha], scale[alpha])
        out[alpha] = slope - out[a]
    return out


INFORMATIVE_VALUES = 3  # distinct values of an input a group needs for its term to be measured ...
INFORMATIVE_RANGE = 3.0  # ... spanning at least this factor


def centring(
    law: Law, treatments: Mapping[str, str], inputs: Mapping[str, np.ndarray], groups: np.ndarray, n_groups: int
) -> dict[str, np.ndarray]:
    """Where each pooled parameter is sampled centred: 1.0 per group if centred, 0.0 if not.

    Exponents are never centred. A level term (irreducible loss, prefactor) is centred in
    the groups whose own data measure it and non-centred where only the population can
    (module docstring). A group measures an input's term when it has more distinct input
    points than the law has parameters and at least :data:`INFORMATIVE_VALUES` distinct
    values of that input spanning a factor :data:`INFORMATIVE_RANGE`; it measures the
    irreducible term when it measures some input's term.

    Examples
    --------
    >>> import numpy as np
    >>> import bayescale as bs
    >>> law = bs.laws.SaturatingPowerLaw("N")
    >>> n = np.array([1e8, 3e8, 1e9, 3e9, 1e8, 3e8])
    >>> centring(law, {"E": "pooled", "A": "pooled", "alpha": "pooled"}, {"N": n},
    ...          np.array([0, 0, 0, 0, 1, 1]), 2)
    {'E': array([1., 0.]), 'A': array([1., 0.]), 'alpha': array([0., 0.])}
    """
    measured = measured_by_design(law, treatments, inputs, groups, n_groups)
    return {
        par.name: (measured[par.name] & par.in_target_units).astype(float)
        for par in law.parameters
        if par.name in measured
    }


def measured_by_design(
    law: Law, treatments: Mapping[str, str], inputs: Mapping[str, np.ndarray], groups: np.ndarray, n_groups: int
) -> dict[str, np.ndarray]:
    """Pooled parameter -> per group, whether the group's design can measure it (see :func:`centring`).

    An input's parameters are measured where the input is; a parameter of no single
    input (the irreducible term) where any input is.
    """
    points = np.column_stack([inputs[x] for x in law.inputs])
    enough = np.array([len(np.unique(points[groups == g], axis=0)) > len(law.parameters) for g in range(n_groups)])
    informed = {}
    for x in law.inputs:
        values = inputs[x]
        ok = np.zeros(n_groups, dtype=bool)
        for g in range(n_groups):
            v = values[groups == g]
            ok[g] = v.size > 0 and np.unique(v).size >= INFORMATIVE_VALUES and v.max() >= INFORMATIVE_RANGE * v.min()
        informed[x] = ok & enough
    anything = np.logical_or.reduce(list(informed.values()))
    return {
        par.name: informed[law.input_of(par.name)] if law.input_of(par.name) is not None else anything
        for par in law.parameters
        if treatments.get(par.name) == "pooled"
    }


def _standard(name: str):
    """A ``Normal(0, 1)`` variable, sampled as ``Z_SCALE`` times itself."""
    return numpyro.sample(name, dist.Normal(0.0, Z_SCALE)) / Z_SCALE


def population_medians(law: Law, treatments: Mapping[str, str]) -> tuple[str, ...]:
    """Pooled parameters whose population median can be stated in the user's units.

    A prefactor's conversion from the reference scale needs its exponent's population
    value, which an independent exponent does not have.
    """
    has_population = {k for k, v in treatments.items() if v != "independent"}
    return tuple(
        par.name
        for par in law.parameters
        if treatments.get(par.name) == "pooled" and (par.prefactor_of is None or par.prefactor_of[1] in has_population)
    )


def _population_sites(law: Law, treatments: Mapping[str, str], population: dict, log_ref) -> None:
    """``<name>_pop``: the population median of every pooled parameter, in the user's units."""
    medians = population_medians(law, treatments)
    # a prefactor converts with its exponent; shared and pooled exponents are in ``population``
    needed = set(medians) | {law.parameter(k).prefactor_of[1] for k in medians if law.parameter(k).prefactor_of}
    pop_user = law.to_user(from_transformed(law, {k: population[k] for k in needed}), log_ref)
    for name in medians:
        numpyro.deterministic(f"{name}_pop", pop_user[name])
