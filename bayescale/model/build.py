"""Builds the NumPyro model of a scaling-law fit. The only module that calls ``numpyro.sample``.

Every law parameter is sampled on its transformed scale (the log for positive parameters), at
the reference scale of its inputs, standardised by its prior (:mod:`bayescale.model.args`):

- ``shared``:      ``t = loc + scale * z``, one value for all rows;
- ``independent``: ``t_g = loc + scale * z_g``, one value per group, each with the prior;
- ``pooled``:      per-group values from a population ``Normal(mu, tau)`` whose location
  ``mu = loc + scale * z_mu`` and spread ``tau = scale * s`` are learned, with a
  zero-avoiding ``s ~ Gamma(2, 10)`` (mean 0.2 prior scales: groups similar, not equal).
  With groups nested in outer groups (``within``), a group's location is its outer
  group's, ``l_f ~ Normal(mu, scale * o)`` with ``o ~ Gamma(2, 10)`` too
  (:func:`nested_density`).

How the pooled values are parameterised changes the geometry, not the posterior. With the
pilot (:mod:`bayescale.model.pilot`) each group's values come from standard coordinates
through the Gaussian approximation of its conditional posterior at the current population
(:mod:`bayescale.model.pooled`: centred, non-centred or in between for every spread the
chain visits). Without it, exponents are non-centred and level terms (irreducible term,
prefactors) centred in the groups whose own data measure them (:func:`centring`).

A law that declares :attr:`~bayescale.laws.Law.level_terms` (``E + A x^-alpha + ...``) has
its shared terms sampled in level coordinates (:func:`shared_level_terms`; independent ones
group by group, :func:`independent_level_terms`): the curve's level and slopes at the
reference scale and the split between the irreducible term and each prefactor, the same
prior reparameterised with unit Jacobian. ``docs/sampler.md`` says
why each choice was made and what it measured.

``loc`` and ``scale`` come in through :class:`~bayescale.model.args.ModelArgs`, not through
the closure, so one compiled sampler serves every data set of the same shape.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
from numpyro.distributions import constraints

from bayescale.laws import Law
from bayescale.model import pooled
from bayescale.model.args import Z_SCALE, ModelArgs, from_transformed, z_site

TREATMENTS = ("shared", "pooled", "independent")
SPREAD_PRIOR = (2.0, 10.0)  # Gamma(shape, rate) of the between-group sd, in units of the parameter's prior scale
NOISE_DEFAULT = "shared"  # how the residual scale varies by group unless told
NOISE_SPREAD_PRIOR = (2.0, 4.0)  # Gamma of the between-group sd of log(sigma): mean 0.5, groups' noise within ~3x
SCALE_PRIOR = (2.0, 4.0)  # Gamma of the between-group sd of a group's log-scale (group_scale): mean 0.5, ~e^1 apart
SCALE_SITE = "scale"  # the per-group log-scale of ScalingModel(..., group_scale=True): sites scale_z, scale_tau
GROUP_PLATE = "group"
OUTER_PLATE = "outer"


def build(
    law: Law,
    likelihood,
    treatments: Mapping[str, str] | None = None,
    level_coordinates: bool = True,
    scaled: tuple[str, ...] = (),
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
        (:func:`shared_level_terms`; the default), and independent ones in each group's own
        (:func:`independent_level_terms`); False keeps one standardised site per
        parameter (what :mod:`bayescale.model.pilot` reads).
    scaled : tuple of str
        Pooled level terms that every group shifts together by its own log-scale
        ``s_g ~ Normal(0, scale_spread)`` (``ScalingModel(..., group_scale=True)``; :func:`sample_scale`).

    Examples
    --------
    >>> import bayescale as bs
    >>> from bayescale.model.build import build
    >>> model = build(bs.laws.PowerLaw("C"), bs.likelihoods.Normal(), {"A": "pooled"})
    >>> callable(model)
    True
    """
    treatments = dict(treatments or {})
    terms = shared_level_terms(law, treatments) if level_coordinates else ()
    own_terms = independent_level_terms(law, treatments) if level_coordinates else ()
    pooled_terms, pooled_params = pooled_level_terms(law, treatments), pooled_names(law, treatments)
    curve = shared_midpoint(law, treatments) if level_coordinates and not pooled_params else None
    own_coordinates = terms + own_terms + (curve[:2] if curve else ())  # sampled jointly, not one site per parameter
    level_names = scaled_terms(law, treatments)  # the pooled terms in the target's units

    def model(args: ModelArgs) -> None:
        n_groups = 0 if args.group_ids is None else args.group_ids.shape[0]
        groups = sample_power_terms(terms, args) if terms else {}
        if curve:
            groups.update(sample_midpoint(curve, law.parameter(curve[1]).location_of, args))
        population = dict(groups)
        if own_terms:  # each group's curve in its own level coordinates (a new group has no population to draw from)
            with numpyro.plate(GROUP_PLATE, n_groups):
                groups.update(sample_power_terms(own_terms, args))
        common = sample_scale(args, n_groups) if scaled and n_groups else None  # (tau, shift or None)
        hyper = {}  # pooled parameter -> (population location, spread), standardised, where args.basis is given
        for par in law.parameters:
            if par.name in own_coordinates:
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
            if args.outer is not None:  # groups nested in outer groups: the spread between those too
                hyper[par.name] = (mu, s, numpyro.sample(f"{par.name}_outer_tau", dist.Gamma(*SPREAD_PRIOR)))
                continue
            if args.basis is not None:
                hyper[par.name] = (mu, s)
                continue
            c = args.centred[par.name]
            if par.name in scaled:  # each group's location shifted by its scale (generative form, no pilot)
                mu = mu + common[1] / scale
            with numpyro.plate(GROUP_PLATE, n_groups):
                # centred where c = 1 (u ~ N(mu, s)), non-centred where c = 0 (u ~ N(0, 1), w = mu + s u)
                u = numpyro.sample(z_site(par.name), dist.Normal(c * mu * Z_SCALE, (c * s + 1.0 - c) * Z_SCALE))
                w = c * u / Z_SCALE + (1.0 - c) * (mu + s * u / Z_SCALE)
            groups[par.name] = loc + scale * w
        noise = sample_noise(likelihood, treatments, args, n_groups)
        if hyper:
            # a noise scale per group: each group's data weighed at its current scale (with one scale for all,
            # weighing them at it instead of at each group's own fit gave 4 divergences on the frame's test design)
            log_noise = jnp.log(noise["sigma"]) if jnp.ndim(noise.get("sigma", 0.0)) == 1 else None
            levels = jnp.asarray([float(k in level_names) for k in pooled_params])  # == scaled, where given
            scaled_by = None if common is None else (common[0], levels)
            level = None  # outside the frame, a group's level given the rest (PooledBasis.levelled)
            if args.basis is not None and args.basis.levelled is not None and not scaled:
                level = (levels, functools.partial(level_evidence, law, likelihood, args, groups, noise, pooled_params))
            sampled = sample_pooled(pooled_params, pooled_terms, hyper, args, n_groups, log_noise, scaled_by, level)
            groups.update(sampled)
        user = law.to_user(from_transformed(law, groups), args.log_ref)
        for name in law.parameter_names:
            numpyro.deterministic(name, user[name])
        if n_groups:
            _population_sites(law, treatments, population, args.log_ref)

        # one gather of all per-group values (and one scatter-add in the gradient), not one per parameter:
        # the 8-family Chinchilla hierarchy's log density and gradient ~15 -> ~11-13 us
        per_group = [k for k, v in groups.items() if jnp.ndim(v) == 1]
        rows = dict(groups)
        if per_group:
            taken = jnp.stack([groups[k] for k in per_group], axis=-1)[args.group]
            rows.update({k: taken[:, i] for i, k in enumerate(per_group)})
        log_mean = law.log_mean(from_transformed(law, rows), args.log_x)
        if likelihood.rate:
            ceiling = law.log_ceiling(from_transformed(law, rows))
            if ceiling is not None:  # a rate must stay below 1 beyond the data too
                numpyro.factor("rate_ceiling", jnp.sum(jnp.where(ceiling < 0.0, 0.0, -jnp.inf)))
        noise = {k: v[args.group] if jnp.ndim(v) == 1 else v for k, v in noise.items()}
        observation = likelihood.distribution(log_mean, noise, args.noise_log_sd, args.trials)
        if args.mask is not None:
            observation = observation.mask(args.mask)
        numpyro.sample("obs", observation, obs=args.observed)

    return model


def level_evidence(
    law: Law, likelihood, args: ModelArgs, groups: dict, noise: dict, names: tuple, x0: jnp.ndarray, move: jnp.ndarray
):
    """What each group's rows say of a move ``t`` of its pooled values from ``x0`` along ``move`` (both
    ``(groups, K)``, ``names``' order; the other parameters' values in ``groups``), the law linearised at
    ``x0``: ``(sum_i c_i j_i r_i, sum_i c_i j_i^2)`` per group, ``r_i`` the residual of the log target at
    ``x0``, ``j_i`` the log mean's derivative along ``move`` and ``c_i`` the likelihood's Fisher information
    about the log mean, over the levelled groups' rows (``args.basis.level_rows``; the other groups' sums are 0 and
    unused). :func:`bayescale.model.pooled.level_frame`."""

    at = args.basis.level_rows  # only the levelled groups' rows: the others' say is not used
    group, observed = args.group[at], args.observed[at]
    noise_log_sd = None if args.noise_log_sd is None else args.noise_log_sd[at]

    def log_mean(x):
        values = dict(groups) | {k: x[:, i] for i, k in enumerate(names)}
        rows = {k: v[group] if jnp.ndim(v) == 1 else v for k, v in values.items()}
        return law.log_mean(from_transformed(law, rows), {k: v[..., at] for k, v in args.log_x.items()})

    mean, slope = jax.jvp(log_mean, (x0,), (move,))
    noise = {k: v[group] if jnp.ndim(v) == 1 else v for k, v in noise.items()}
    information = likelihood.information(noise, noise_log_sd) * jnp.ones_like(observed)
    if args.mask is not None:
        information = information * args.mask[at]
    n_groups = x0.shape[0]
    told = jax.ops.segment_sum(information * slope * (observed - mean), group, n_groups)
    return told, jax.ops.segment_sum(information * slope**2, group, n_groups)


def simulate_nested(names: tuple[str, ...], location, within, between, args: ModelArgs, n_groups: int) -> dict:
    """Groups nested in outer groups in the model's generative form: outer locations about the population's,
    groups about them, both non-centred. What simulation (``Predictive``) and a fit without the pilot sample; a
    fit with it samples the form of :func:`nested_density`, with the same sites and records."""
    with numpyro.plate(OUTER_PLATE, args.outer_ids.shape[0]):
        outer = location + between * jnp.stack([_standard(f"{k}_outer_z") for k in names], axis=-1)
    with numpyro.plate(GROUP_PLATE, n_groups):
        x = outer[args.outer] + within * jnp.stack([_standard(z_site(k)) for k in names], axis=-1)
    for i, k in enumerate(names):
        numpyro.deterministic(f"{k}_outer_shift", outer[:, i] - location[i])
        numpyro.deterministic(f"{k}_outer_spread", between[i])
    return {k: x[:, i] for i, k in enumerate(names)}


def nested_density(outer, factor, location, within, between, x, groups_outer) -> jnp.ndarray:
    """Log density of outer groups' locations ``outer`` ``(outer groups, K)`` and of the groups ``x`` ``(groups, K)``
    nested in them (``groups_outer``: each group's), sampled as ``l_f = m_f + L_f'^-1 e_f``.

    The model's ``Normal(l_f; M, O) prod_g Normal(x_g; l_f(g), S)`` (``location``, ``between``,
    ``within``, each ``(K,)``) times the map's Jacobian ``prod_f |det L_f|^-1`` (``factor``, from
    :func:`bayescale.model.pooled.outer_frame`, which does not depend on ``x``: the groups are
    sampled given the outer locations).
    """
    return (
        jnp.sum(dist.Normal(location, between).log_prob(outer))
        + jnp.sum(dist.Normal(outer[groups_outer], within).log_prob(x))
        - jnp.sum(jnp.log(jnp.diagonal(factor, axis1=-2, axis2=-1)))
    )


def sample_noise(likelihood, treatments: Mapping[str, str], args: ModelArgs, n_groups: int) -> dict:
    """The likelihood's parameters: one value, or one per group for a residual scale that varies by group.

    ``independent``: each group's under the prior. ``pooled``: ``log sigma_g ~ Normal(log sigma_pop,
    tau)`` with ``sigma_pop`` under the likelihood's prior and ``tau ~ Gamma(2, 4)``
    (:data:`NOISE_SPREAD_PRIOR`), sampled as ``log sigma_g = log sigma_pop + S_g u_g``, where ``S_g``
    is the sd of ``log sigma_g`` given the population and the group's ``n_g`` rows (precision
    ``1 / tau^2 + k n_g``, ``k n_g`` the Fisher information of ``log sigma`` in ``n_g`` residuals)
    and ``u_g ~ Normal(0, tau / S_g)``: non-centred where the spread is the tighter (few rows, or
    groups that scatter alike), nearly centred where the rows measure the group's own scale, at
    every spread the chain visits (a fixed choice per group left funnels: 21-23 divergences on 6
    simulated families of 20 runs with equal noise).
    """
    out = {}
    for name, prior in likelihood.priors().items():
        how = treatments.get(name, "shared")
        if how == "shared":
            out[name] = numpyro.sample(name, prior)
        elif how == "independent":
            with numpyro.plate(GROUP_PLATE, n_groups):
                out[name] = numpyro.sample(name, prior)
        else:
            log_pop = jnp.log(numpyro.sample(f"{name}_pop", prior))
            tau = numpyro.sample(f"{name}_tau", dist.Gamma(*NOISE_SPREAD_PRIOR))
            numpyro.deterministic(f"{name}_spread", tau)
            rows = jnp.ones(args.group.shape) if args.mask is None else args.mask.astype(float)
            information = noise_information(likelihood) * jax.ops.segment_sum(rows, args.group, n_groups)
            sd = jax.lax.rsqrt(1.0 / tau**2 + information)
            with numpyro.plate(GROUP_PLATE, n_groups):
                u = numpyro.sample(noise_site(name), dist.Normal(0.0, tau / sd))
                out[name] = numpyro.deterministic(name, jnp.exp(log_pop + sd * u))
    return out


def noise_information(likelihood) -> float:
    """Fisher information about ``log sigma`` in one residual: ``2 nu / (nu + 3)`` for Student-t, 2 for Normal
    (and, as an approximation that only shapes the sampler's coordinates, for a Student-t whose ``nu`` is learned)."""
    nu = getattr(likelihood, "nu", None)
    return 2.0 * nu / (nu + 3.0) if nu is not None else 2.0


def noise_site(name: str) -> str:
    """The sampling site of a pooled noise parameter's group values (``u_g`` of :func:`sample_noise`)."""
    return f"{name}_raw"


def shared_level_terms(law: Law, treatments: Mapping[str, str]) -> tuple[str, ...]:
    """The law's :attr:`~bayescale.laws.Law.level_terms` where all are shared (sampled in level coordinates), or ``()``.

    ``(E, A, alpha)`` for ``E + A x^-alpha``, ``(E, A, alpha, B, beta, ...)`` for
    ``E + A x^-alpha + B y^-beta + ...``; checked on the way (each prefactor followed by its
    exponent, all positive). :func:`build` samples them as :func:`sample_power_terms` says, and
    independent ones group by group (:func:`independent_level_terms`); pooled ones keep their own
    standardised sites.

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
    return level_terms_if_all(law, treatments, "shared")


def independent_level_terms(law: Law, treatments: Mapping[str, str]) -> tuple[str, ...]:
    """The law's :attr:`~bayescale.laws.Law.level_terms` where all are independent, or ``()``.

    Each group's curve is then sampled in level coordinates of its own (:func:`sample_power_terms`
    in the group plate): the same independent priors, the ridge that a curve which barely levels
    off makes of ``E``, ``A`` and ``alpha`` straightened group by group.

    Examples
    --------
    >>> import bayescale as bs
    >>> law = bs.laws.SaturatingPowerLaw("N")
    >>> independent_level_terms(law, dict.fromkeys(law.parameter_names, "independent"))
    ('E', 'A', 'alpha')
    >>> independent_level_terms(law, {"E": "shared", "A": "independent", "alpha": "independent"})
    ()
    """
    return level_terms_if_all(law, treatments, "independent")


def pooled_level_terms(law: Law, treatments: Mapping[str, str]) -> tuple[str, ...]:
    """The law's :attr:`~bayescale.laws.Law.level_terms` where all are pooled, or ``()``.

    Where the pilot has measured the groups (:class:`~bayescale.model.pooled.PooledBasis`), their
    coordinates are then the level, splits and slopes (:func:`bayescale.model.pooled.to_coordinates`).

    Examples
    --------
    >>> import bayescale as bs
    >>> law = bs.laws.Chinchilla()
    >>> pooled_level_terms(law, dict.fromkeys(law.parameter_names, "pooled"))
    ('E', 'A', 'alpha', 'B', 'beta')
    >>> pooled_level_terms(law, {"A": "pooled", "alpha": "pooled"})
    ()
    """
    return level_terms_if_all(law, treatments, "pooled")


def scaled_terms(law: Law, treatments: Mapping[str, str]) -> tuple[str, ...]:
    """The pooled parameters in the target's units (irreducible term, prefactors): what a group's log-scale shifts
    (``ScalingModel(..., group_scale=True)``, :func:`sample_scale`)."""
    return tuple(p.name for p in law.parameters if p.in_target_units and treatments.get(p.name) == "pooled")


def pooled_names(law: Law, treatments: Mapping[str, str]) -> tuple[str, ...]:
    """The pooled parameters, in the law's order (the last axis of :class:`~bayescale.model.pooled.PooledBasis`)."""
    return tuple(par.name for par in law.parameters if treatments.get(par.name) == "pooled")


def level_terms_if_all(law: Law, treatments: Mapping[str, str], how: str) -> tuple[str, ...]:
    """The law's declared level terms where every one of them is treated ``how`` across groups, else ``()``."""
    terms = declared_level_terms(law)
    return () if any(treatments.get(name, "shared") != how for name in terms) else terms


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


def sample_scale(args: ModelArgs, n_groups: int) -> tuple:
    """The spread of the groups' log-scales and, without the pilot's frame, every group's scale.

    ``ScalingModel(..., group_scale=True)``: each group's pooled level terms (the irreducible
    term, the prefactors: everything in the target's units) sit about the population's
    location shifted by one log-scale ``s_g ~ Normal(0, tau)``, ``tau ~ Gamma(2, 4)``
    (:data:`SCALE_PRIOR`; the posterior's ``scale_spread``), so that families measured in
    different units or on different evaluation sets share the shape of their curves, not
    their level. The posterior holds ``scale`` (each group's ``s_g``) and ``scale_spread``.
    Returns ``(tau, s)``: ``s`` non-centred (``s_g = tau v_g``) where there is no frame; with
    the pilot's frame ``s`` is ``None`` and :func:`sample_pooled` samples it.
    """
    tau = numpyro.sample(f"{SCALE_SITE}_tau", dist.Gamma(*SCALE_PRIOR))
    numpyro.deterministic(f"{SCALE_SITE}_spread", tau)
    if args.basis is not None:
        return tau, None
    with numpyro.plate(GROUP_PLATE, n_groups):
        v = numpyro.sample(z_site(SCALE_SITE), dist.Normal(0.0, Z_SCALE))
    return tau, numpyro.deterministic(SCALE_SITE, tau * v / Z_SCALE)


def sample_pooled(
    names: tuple[str, ...],
    terms: tuple[str, ...],
    hyper: Mapping,
    args: ModelArgs,
    n_groups: int,
    log_noise=None,
    common=None,
    level=None,
):
    """Every group's pooled values from standard coordinates in the pilot's frame (:mod:`bayescale.model.pooled`).

    The sites are the parameters' own (``<name>_z``, one per group), flat: the density is
    the population's ``Normal`` at the values the coordinates map to, times the map's
    Jacobian, added as a factor. So this model cannot simulate from its prior; the
    calibration studies simulate without the pilot. A group outside the frame (its design
    does not measure every pooled parameter, :func:`bayescale.model.pilot.pooled_basis`) maps its
    coordinates as without the pilot: ``x = a + b u``, centred (``a = loc``, ``b = scale``)
    or not (``a = mu``, ``b = tau``) as ``args.centred`` says. ``log_noise``: the current
    ``log sigma`` (per group or shared), at which the frame weighs each group's data.

    ``common``: ``(tau, e)`` where every group has its own log-scale (:func:`sample_scale`):
    group ``g``'s values scatter about ``mu + s_g e``, and ``s_g`` comes from ``scale_z``
    through its conditional given the population and the group's data: before its values in
    the frame, after its coordinates outside it (:func:`bayescale.model.pooled.scale_frame`).
    Without it, a group outside the frame whose design measures none of its level terms
    (``args.basis.levelled``) has its level sampled given its other coordinates and its rows
    (:func:`bayescale.model.pooled.level_frame`): its few runs pin its loss level and little else.
    ``level``: ``(e, evidence)``, 1.0 on the pooled terms in the target's units and
    :func:`level_evidence` at the current parameters.

    Groups nested in outer groups (``args.outer``): the outer groups' locations are sampled
    first, from standard coordinates ``<name>_outer_z`` through the Gaussian approximation of
    each one's posterior given the population and its groups' data
    (:func:`bayescale.model.pooled.outer_frame`); then each group in the frame at its outer
    group's location and the spread within (:func:`nested_density` is the density). Without
    the pilot's frame (simulation, ``pilot=False``), :func:`simulate_nested`.
    """
    loc, scale = args.prior_loc, args.prior_scale
    location = jnp.stack([loc[k] + scale[k] * hyper[k][0] for k in names])
    spread = jnp.stack([scale[k] * hyper[k][1] for k in names])
    group_location = location
    if args.outer is not None:  # nested: each group about its outer group's location, sampled first
        between = jnp.stack([scale[k] * hyper[k][2] for k in names])
        if args.basis is None:  # no pilot (simulation, pilot=False): the generative form
            return simulate_nested(names, location, spread, between, args, n_groups)
        n_outer = args.outer_ids.shape[0]
        with numpyro.plate(OUTER_PLATE, n_outer):
            flat = dist.ImproperUniform(constraints.real, (), ())
            e = jnp.stack([numpyro.sample(f"{k}_outer_z", flat) for k in names], axis=-1) / Z_SCALE
        centre, factor = pooled.outer_frame(location, spread, between, args.basis, args.outer, n_outer, log_noise)
        outer = centre + pooled.solve_upper(factor, e)
        group_location = outer[args.outer]
        for i, k in enumerate(names):
            numpyro.deterministic(f"{k}_outer_shift", outer[:, i] - location[i])
            numpyro.deterministic(f"{k}_outer_spread", between[i])
    with numpyro.plate(GROUP_PLATE, n_groups):
        flat = dist.ImproperUniform(constraints.real, (), ())
        u = jnp.stack([numpyro.sample(z_site(k), flat) for k in names], axis=-1)
        v = numpyro.sample(z_site(SCALE_SITE), flat) if common is not None else None
    c = jnp.stack([args.centred[k] for k in names], axis=-1)
    prior_loc, prior_scale = jnp.stack([loc[k] for k in names]), jnp.stack([scale[k] for k in names])
    scale_density = 0.0
    if common is not None:  # each group's log-scale first, given the population and what pins it
        tau, levels = common
        unshifted = c * (prior_loc + prior_scale * u / Z_SCALE) + (1.0 - c) * (location + spread * u / Z_SCALE)
        mean_s, sd_s = pooled.scale_frame(location, spread, tau, levels, args.basis, unshifted, c, log_noise)
        shift = numpyro.deterministic(SCALE_SITE, mean_s + sd_s * v / Z_SCALE)
        group_location = location + shift[:, None] * levels
        scale_density = jnp.sum(dist.Normal(0.0, tau).log_prob(shift) + jnp.log(sd_s))
    # nested: the spread within an outer group is measured by its few groups, and reaches down to zero
    few = True if args.outer is not None else None
    mean, lower = pooled.frame(group_location, spread, args.basis, log_noise, (names, terms), few)
    framed = args.basis.framed[:, None] > 0
    offset = c * prior_loc + (1.0 - c) * group_location
    unit = c * prior_scale + (1.0 - c) * spread
    in_frame = pooled.from_coordinates(mean + pooled.solve_upper(lower, u / Z_SCALE), names, terms)
    outside, level_log_sd = offset + unit * u / Z_SCALE, 0.0
    if common is None and level is not None:  # outside the frame, a levelled group's level given the rest
        position = (group_location, spread, prior_loc, prior_scale, args.basis, level[1])
        z, level_log_sd = pooled.level_frame(u / Z_SCALE, c, level[0], *position)
        outside, level_log_sd = offset + unit * z, jnp.sum(level_log_sd)
    x = jnp.where(framed, in_frame, outside)
    # |det dx/du| = Z_SCALE^-K / prod(diag L) in the frame (the coordinates' map has unit Jacobian),
    # Z_SCALE^-K prod(b) sd_level outside; the common constant is dropped
    log_jacobian = jnp.where(framed, -jnp.log(jnp.diagonal(lower, axis1=-2, axis2=-1)), jnp.log(unit))
    if args.outer is None:
        density = jnp.sum(dist.Normal(group_location, spread).log_prob(x)) + scale_density
    else:
        density = nested_density(outer, factor, location, spread, between, x, args.outer)
    numpyro.factor("pooled_groups", density + jnp.sum(log_jacobian) + level_log_sd)
    return {k: x[:, i] for i, k in enumerate(names)}


def sample_power_terms(terms: tuple[str, ...], args: ModelArgs) -> dict:
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


def shared_midpoint(law: Law, treatments: Mapping[str, str]) -> tuple[str, str, float] | None:
    """The law's :attr:`~bayescale.laws.Law.midpoint` where both of its parameters are shared, else ``None``.

    Examples
    --------
    >>> import bayescale as bs
    >>> shared_midpoint(bs.laws.AccuracyLaw("bpb", chance=0.25, rising=False), {})
    ('B', 'bpb_mid', -1.0)
    >>> shared_midpoint(bs.laws.AccuracyLaw("C", chance=0.25), {"C_mid": "pooled"}) is None
    True
    """
    pair = law.midpoint
    if pair is None or any(treatments.get(name, "shared") != "shared" for name in pair[:2]):
        return None
    return pair


def sample_midpoint(curve: tuple[str, str, float], x: str, args: ModelArgs) -> dict:
    """``log B`` and ``log(x_mid / x_ref)`` of a sigmoid in ``sign * B * log(x / x_mid)``, via its climb over the data.

    ``B`` is sampled from its own standardised site; ``x_mid``'s site holds
    ``phi(q_low) + phi(q_high)`` (:class:`Progress`), where ``q_low`` and ``q_high`` are
    the log-odds of the share of the climb reached at the two ends of the data and
    ``phi(q) = sign(q) log(1 + |q|)``; the prior is the law's, with the map's Jacobian.
    Where every run is still at the floor (a task at chance) the data say ``q_high < -c``,
    where every run is at the ceiling ``q_low > c``: walls of fixed width in this coordinate,
    where in ``(log B, log x_mid)`` they are ``|log(x_mid / x_end)| > c / B``, sharper the
    steeper the curve (NUTS diverged there). The map's ``B`` is floored at a climb of 2
    log-odds across the data (``benchmarks/bench_accuracy_health.py`` measures both).
    """
    steep, mid, sign = curve
    log_b = args.prior_loc[steep] + args.prior_scale[steep] * _standard(z_site(steep))
    low, high = jnp.min(args.log_x[x]), jnp.max(args.log_x[x])
    half = jnp.maximum((high - low) / 2, 0.1)
    # the map's steepness: B, but no less than a climb of 2 log-odds across the data, below which the data
    # see no climb and a coordinate scaled by B would pinch the prior of x_mid into a funnel
    steepness = jnp.exp(log_b) + 1.0 / half
    progress = Progress(args.prior_loc[mid], args.prior_scale[mid], steepness, (low + high) / 2, half, sign)
    return {steep: log_b, mid: progress.location(numpyro.sample(z_site(mid), progress))}


class Progress(dist.Distribution):
    """The prior of a sigmoid's midpoint ``m ~ Normal(loc, scale)`` (in log input) in the coordinate
    :func:`sample_midpoint` samples: ``Z_SCALE (phi(p - g) + phi(p + g))``, with ``p = sign b (centre - m)``
    the log-odds of the climb at the data's centre and ``g = b * half_range``.

    Exact both ways: :meth:`sample` draws ``m`` and maps it (simulation); :meth:`log_prob` is the
    Normal at the mapped-back ``m`` times ``|dm / dvalue|``. The inverse is closed-form on each of
    ``p < -g``, ``|p| <= g`` and ``p > g``.
    """

    arg_constraints = {"loc": constraints.real, "scale": constraints.positive}
    support = constraints.real

    def __init__(self, loc, scale, steepness, centre, half_range, sign: float) -> None:
        self.loc, self.scale, self.steepness, self.sign = loc, scale, steepness, sign
        self.centre, self.gap = centre, steepness * half_range
        super().__init__(batch_shape=jnp.shape(loc))

    @staticmethod
    def _phi(q):
        return jnp.sign(q) * jnp.log1p(jnp.abs(q))

    def _centre_logit(self, value):
        """``p`` at a value of the coordinate (every branch finite, so ``where`` keeps gradients clean)."""
        w, g = value / Z_SCALE, self.gap
        edge = jnp.log1p(2.0 * g)
        above = jnp.sqrt(jnp.exp(jnp.clip(w, -700.0, 700.0)) + g**2) - 1.0
        below = 1.0 - jnp.sqrt(jnp.exp(jnp.clip(-w, -700.0, 700.0)) + g**2)
        return jnp.where(w > edge, above, jnp.where(w < -edge, below, (1.0 + g) * jnp.tanh(w / 2.0)))

    def location(self, value):
        """``m`` at a value of the coordinate."""
        return self.centre - self.sign * self._centre_logit(value) / self.steepness

    def sample(self, key, sample_shape=()):
        m = self.loc + self.scale * jax.random.normal(key, sample_shape + self.batch_shape)
        p = self.sign * self.steepness * (self.centre - m)
        return Z_SCALE * (self._phi(p - self.gap) + self._phi(p + self.gap))

    def log_prob(self, value):
        p, g = self._centre_logit(value), self.gap
        slope = 1.0 / (1.0 + jnp.abs(p - g)) + 1.0 / (1.0 + jnp.abs(p + g))  # d value / dp, over Z_SCALE
        normal = dist.Normal(self.loc, self.scale).log_prob(self.centre - self.sign * p / self.steepness)
        return normal - jnp.log(slope) - jnp.log(self.steepness) - jnp.log(Z_SCALE)


INFORMATIVE_VALUES = 3  # distinct values of an input a group needs for its term to be measured


def centring(
    law: Law, treatments: Mapping[str, str], inputs: Mapping[str, np.ndarray], groups: np.ndarray, n_groups: int
) -> dict[str, np.ndarray]:
    """Where each pooled parameter is sampled centred: 1.0 per group if centred, 0.0 if not.

    Exponents are never centred. A level term (irreducible loss, prefactor) is centred in
    the groups whose own data measure it and non-centred where only the population can
    (module docstring). A group measures an input's term when it has more distinct input
    points than the law has parameters and at least :data:`INFORMATIVE_VALUES` distinct
    values of that input spanning the law's :attr:`~bayescale.laws.Law.informative_range`; it measures the
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
    informed = varies_by_design(law, inputs, groups, n_groups, law.informative_range, INFORMATIVE_VALUES)
    anything = np.logical_or.reduce(list(informed.values()))
    return {
        par.name: informed[law.input_of(par.name)] if law.input_of(par.name) is not None else anything
        for par in law.parameters
        if treatments.get(par.name) == "pooled"
    }


def sloped_by_design(law: Law, inputs: Mapping[str, np.ndarray], groups: np.ndarray, n_groups: int) -> np.ndarray:
    """Per group, whether its own data measure the slope of every term: more distinct input points than the law has
    parameters, and every input at two or more values spanning at least the square root of the law's
    :attr:`~bayescale.laws.Law.informative_range` (a slope needs half the log-range that a slope and its bend do).

    Such a group leaves only where its curve levels off (the split between ``E`` and the terms) to the population,
    and is sampled in the pilot's frame (:func:`bayescale.model.pilot.pooled_basis`); one whose input stays put
    (every size trained on one data budget) leaves a whole term to it, confounded with ``E``.

    Examples
    --------
    >>> import numpy as np
    >>> import bayescale as bs
    >>> law = bs.laws.Chinchilla()  # two sizes 1.95x apart, tokens over 20x: slopes measured; tokens fixed: not
    >>> n = np.repeat([1.9e8, 3.7e8], 6)
    >>> d = np.concatenate([n[:6] * np.geomspace(10, 200, 6), n[6:] * np.geomspace(10, 200, 6)])
    >>> sloped_by_design(law, {"N": np.tile(n, 2), "D": np.concatenate([d, np.full(12, 3e11)])},
    ...                  np.repeat([0, 1], 12), 2)
    array([ True, False])
    """
    varies = varies_by_design(law, inputs, groups, n_groups, np.sqrt(law.informative_range), 2)
    return np.logical_and.reduce(list(varies.values()))


def varies_by_design(
    law: Law, inputs: Mapping[str, np.ndarray], groups: np.ndarray, n_groups: int, span: float, values: int
) -> dict[str, np.ndarray]:
    """Input -> per group, whether the input takes ``values`` or more distinct values spanning a factor ``span`` or
    more, among more distinct input points than the law has parameters (:func:`measured_by_design`,
    :func:`sloped_by_design`)."""
    points = np.column_stack([inputs[x] for x in law.inputs])
    members = [groups == g for g in range(n_groups)]
    enough = np.array([len(np.unique(points[m], axis=0)) > len(law.parameters) for m in members], dtype=bool)
    out = {}
    for x in law.inputs:
        spans = [
            v.size > 0 and v.max() >= span * v.min() and np.unique(v).size >= values
            for v in (inputs[x][m] for m in members)
        ]
        out[x] = enough & np.array(spans, dtype=bool)
    return out


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


def latent_sites(
    law: Law, likelihood, treatments: Mapping[str, str], n_groups: int = 0, n_outer: int = 0, scaled: bool = False
) -> dict:
    """The model's latent sites for ``n_groups`` groups (in ``n_outer`` outer groups, where they nest; with a
    log-scale per group where ``scaled``): shape, and the half-width of the uniform initialisation.

    Chains start uniformly within two prior standard deviations of the prior median (in the
    sampling coordinates, ``Z_SCALE`` times standardised values for the ``*_z`` sites), so
    that R-hat can see chains that settle in different modes. Level coordinates
    (:func:`shared_level_terms`) are held by the same sites.

    Examples
    --------
    >>> import bayescale as bs
    >>> sorted(latent_sites(bs.laws.PowerLaw("C"), bs.likelihoods.Normal(), {"A": "shared", "alpha": "shared"}))
    ['A_z', 'alpha_z', 'sigma']
    """
    sites = {}
    for par in law.parameters:
        how = treatments.get(par.name, "shared")
        sites[z_site(par.name)] = (() if how == "shared" else (n_groups,), 2.0 * Z_SCALE)
        if how == "pooled":
            sites[f"{par.name}_pop_z"] = ((), 2.0 * Z_SCALE)
            sites[f"{par.name}_tau"] = ((), 2.0)
            if n_outer:
                sites[f"{par.name}_outer_z"] = ((n_outer,), 2.0 * Z_SCALE)
                sites[f"{par.name}_outer_tau"] = ((), 2.0)
    for name in likelihood.parameter_names:
        how = treatments.get(name, "shared")
        sites[name if how != "pooled" else noise_site(name)] = (() if how == "shared" else (n_groups,), 2.0)
        if how == "pooled":
            sites.update({f"{name}_pop": ((), 2.0), f"{name}_tau": ((), 2.0)})
    if scaled:
        sites.update({z_site(SCALE_SITE): ((n_groups,), 2.0 * Z_SCALE), f"{SCALE_SITE}_tau": ((), 2.0)})
    return sites


def model_of(spec) -> Callable[[ModelArgs], None]:
    """The NumPyro model of a :class:`~bayescale.ScalingModel` (one per law, likelihood and treatments)."""
    return numpyro_model(spec.law, spec.likelihood, tuple(sorted(spec.treatments.items())), spec.scaled_names)


@functools.lru_cache(maxsize=64)
def numpyro_model(
    law: Law, likelihood, treatments: tuple[tuple[str, str], ...], scaled: tuple[str, ...] = ()
) -> Callable[[ModelArgs], None]:
    """The model function of a structure (law, likelihood, treatments as sorted pairs, the terms each group's
    scale shifts), built once per structure."""
    return build(law, likelihood, dict(treatments), scaled=scaled)
