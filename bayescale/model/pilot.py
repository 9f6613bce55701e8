"""A Laplace pilot of every group on its own: the frame of the pooled groups, where chains start.

Before a hierarchical fit (by default; ``ScalingModel(..., pilot=False)`` skips it) every
group is fitted alone first, then again given the population those fits place
(:func:`population_of`), and :func:`pooled_basis` turns the second fits into the frame in
which :func:`bayescale.model.build.build` samples the pooled groups
(:mod:`bayescale.model.pooled`: each group's mode and the derivatives of its likelihood
there, in level coordinates where all level terms are pooled): on 8
Chinchilla families x 40 runs ~15 leapfrog steps per draw and a minimum bulk ESS of
2,200-3,000, against 27-39 steps and 965-1,180 with the binary choice below, which
:meth:`~bayescale.ScalingModel.fit_many` still uses (its groups are padded across data
sets; the frame has a row per group of one).

The binary choice, per pooled exponent and group:

A pooled parameter is best sampled centred (``t_g ~ Normal(mu, tau)``) in a group whose
data pin it down more tightly than the spread between groups, and non-centred
(``t_g = mu + tau * u_g``) where the spread is the tighter of the two (the classic rule;
Papaspiliopoulos, Roberts and Skold 2007). For the irreducible term and the prefactors a
group's design decides (:func:`bayescale.model.build.centring`). For exponents it depends on
how different the groups really are: when families share an exponent, a centred one
puts NUTS in the funnel of a small spread (divergences); when they differ and each
family measures its own, a non-centred one forces long curved trajectories (8
Chinchilla families x 40 runs: ~300 leapfrog steps per draw against ~30 centred).

So before sampling, every group whose design measures the exponent's input is fitted
alone with the law's priors (damped Newton steps to the posterior mode,
:func:`bayescale.sampler.laplace.newton`, vectorised over the groups and compiled once), and the
inverse Hessian there gives the precision of its exponent.
The spread is estimated from the groups' modes and posterior variances as in a
random-effects meta-analysis (DerSimonian and Laird 1986), and a group is centred where
its posterior sd is below twice that spread (:data:`CENTRE_BELOW`: the marginal sd of
one group's exponent is inflated by its correlation with the prefactor, which the
sampler's dense mass matrix takes care of; on 8 Chinchilla families x 40 runs, once the
spread gave 2-39 divergences and 30 steps per draw, twice 1-4 and 29).

The same fits say where the chains start (:func:`starting_point`): near the groups' own modes,
the population at their precision-weighted mean and spread, with an initial (diagonal) mass
matrix from the groups' posterior variances instead of NumPyro's identity. From random starts
with the identity, the first 100 warmup iterations of 8 Chinchilla families x 40 runs took
~50,000-90,000 of a chain's ~95,000-135,000 warmup leapfrog steps (trajectories at the
tree-depth limit while the chain travels in and the first windows' estimates come from
those draws); from the pilot's start ~22,000 of ~60,000. The default where the pilot ran,
``init="pilot"`` (each warmup window's estimate then shrunk towards the matrix in force,
:mod:`bayescale.sampler.adaptation`). With the binary centring (in :meth:`~bayescale.ScalingModel.fit_many`
with ``pilot=True``) on a design with centred exponents and a small spread some fits had a
chain with dozens of divergences, which random starts did not; in the frame neither start has
any there.

The binary choice has a bias: the spread it detects is biased upwards on families that share
their exponents (the Laplace variance at the joint mode, noise scale included, understates
each group's uncertainty), so it centres some groups anyway (8 such families x 40 runs: 50
steps per draw and 1-4 divergences, against 60 and none without the pilot). The frame has no
such choice to make, and is what a single fit uses.

Everything here is in the sampling coordinates of :mod:`bayescale.model.build` (prior-
standardised values times ``Z_SCALE``); the numbers decide a parameterisation only, so
the posterior is the same whatever they say.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree
from numpyro.infer import init_to_median
from numpyro.infer.util import initialize_model, potential_energy
from scipy.special import polygamma

from bayescale.model import pooled
from bayescale.model.args import (
    ROW_FIELDS,
    Z_SCALE,
    ModelArgs,
    n_rows,
    pad_rows,
    row_bucket,
    standardising_scale,
    take_rows,
    z_site,
)
from bayescale.model.build import (
    SCALE_SITE,
    SPREAD_PRIOR,
    build,
    independent_level_terms,
    noise_information,
    noise_site,
    pooled_level_terms,
    pooled_names,
    scaled_terms,
    shared_level_terms,
)
from bayescale.model.pooled import PooledBasis
from bayescale.sampler.compile import KEEP_COMPILED, CompiledCache, compiled
from bayescale.sampler.laplace import newton

MIN_GROUPS = 3  # groups that measure an exponent needed to estimate its spread at all
CENTRE_BELOW = 2.0  # centre where a group's posterior sd < this x the spread (1.0: 39 divergences, 2.0: 1-4)
NEWTON_STEPS = 60  # damped Newton steps to each group's posterior mode
SPREAD_FLOOR = 0.05  # smallest spread a start uses, in prior units (Gamma(2, 10) puts 2.5% below 0.024)
START_CLIP = 3.0  # non-centred starts within this many spreads of the population

_SOLVERS = CompiledCache(KEEP_COMPILED)  # bounded: every compiled solver holds machine code
_DERIVATIVES = CompiledCache(KEEP_COMPILED)


class GroupFits(NamedTuple):
    """Every group fitted alone: site -> per-group posterior mode and marginal variance (sampling coordinates)."""

    modes: dict
    variances: dict


def fit_groups(law, likelihood, args: ModelArgs, groups: np.ndarray, population: Mapping | None = None) -> GroupFits:
    """Fit every group on its own with the law's priors (Laplace, vectorised over the groups).

    The arguments are :func:`exponent_centring`'s first four. ``population``: pooled
    parameter -> ``(mean, sd)`` of its standardised value (:func:`population_of`), the
    prior there instead of the law's: each group's fit given that population.

    Examples
    --------
    >>> import numpy as np, pandas as pd, bayescale as bs
    >>> from bayescale.model.arguments import log_references, model_args
    >>> from bayescale.model.build import latent_sites
    >>> model = bs.ScalingModel(bs.laws.PowerLaw("N"), target="loss", group="g")
    >>> n = np.tile(np.geomspace(1e8, 1e10, 8), 2)
    >>> df = pd.DataFrame({"N": n, "loss": 3 * (n / 1e9) ** -0.3, "g": np.repeat(["a", "b"], 8)})
    >>> data = model.validate(df)
    >>> args = model_args(model, data, log_references(model, data))
    >>> fits = fit_groups(model.law, model.likelihood, args, data.groups)
    >>> fits.modes["alpha_z"].shape
    (2,)
    """
    n_groups = len(args.group_ids)
    modes, variances = _laplace(law, likelihood, _per_group(args, groups, np.arange(n_groups)), population)
    return GroupFits({k: np.asarray(v) for k, v in modes.items()}, {k: np.asarray(v) for k, v in variances.items()})


def exponent_centring(
    law,
    likelihood,
    args: ModelArgs,
    groups: np.ndarray,
    candidates: Mapping[str, np.ndarray],
    fits: GroupFits | None = None,
) -> dict[str, np.ndarray]:
    """1.0 where a group samples a pooled exponent centred, else 0.0.

    Parameters
    ----------
    law, likelihood
        The model's law and likelihood.
    args : ModelArgs
        The hierarchical model's arguments (all rows); only rows, priors and references
        are used.
    groups : numpy.ndarray
        Group code of every row.
    candidates : mapping
        Exponent -> bool per group: the groups whose design measures it (only these can
        be centred).
    fits : GroupFits, optional
        :func:`fit_groups`'s result, where already computed.

    Returns
    -------
    dict
        Exponent -> float array per group.

    Examples
    --------
    Four families whose exponents differ by more than each family's eight runs leave in
    doubt sample them centred:

    >>> import numpy as np, pandas as pd, bayescale as bs
    >>> from bayescale.model.arguments import log_references, model_args
    >>> from bayescale.model.build import latent_sites
    >>> model = bs.ScalingModel(bs.laws.PowerLaw("N"), target="loss", group="g", pilot=True)
    >>> n = np.tile(np.geomspace(1e8, 1e10, 8), 4)
    >>> noise = np.exp(0.01 * np.random.default_rng(0).standard_normal(32))
    >>> def centred(alpha):
    ...     df = pd.DataFrame({"N": n, "loss": 3 * (n / 1e9) ** -alpha * noise, "g": np.repeat(list("abcd"), 8)})
    ...     data = model.validate(df)
    ...     return model_args(model, data, log_references(model, data)).centred["alpha"].tolist()
    >>> centred(np.repeat([0.2, 0.3, 0.45, 0.6], 8))
    [1.0, 1.0, 1.0, 1.0]
    """
    out = {name: np.zeros(len(c)) for name, c in candidates.items()}
    measured = np.flatnonzero(np.logical_or.reduce([np.asarray(c, bool) for c in candidates.values()]))
    if not candidates or len(measured) < MIN_GROUPS:
        return out
    fits = fit_groups(law, likelihood, args, groups) if fits is None else fits
    for name, c in candidates.items():
        site = z_site(name)
        w = fits.modes[site][measured] / Z_SCALE
        v = fits.variances[site][measured] / Z_SCALE**2
        ok = np.asarray(c, bool)[measured] & _fitted(w, v)
        if ok.sum() < MIN_GROUPS:
            continue
        spread = CENTRE_BELOW * between_group_sd(w[ok], v[ok])
        out[name][measured[ok & (v < spread**2)]] = 1.0
    return out


def starting_point(
    law,
    likelihood,
    treatments: Mapping[str, str],
    centred: Mapping,
    fits: GroupFits,
    args: ModelArgs | None = None,
    scaled: tuple[str, ...] = (),
) -> tuple | None:
    """Where the chains of the hierarchical model start, and the initial sd of every coordinate.

    From the groups' own fits (:func:`fit_groups`), in the model's sampling coordinates: a
    pooled parameter's population location at the precision-weighted mean of the groups'
    modes, its spread at the :func:`between_group_sd` (at least :data:`SPREAD_FLOOR`), each
    group at its own mode (centred) or at that mode in population units (non-centred, within
    :data:`START_CLIP`); sds from the groups' posterior variances (a group whose fit failed
    counts as its prior). Where ``args`` carries the pilot's :class:`~bayescale.model.pooled.PooledBasis`,
    the pooled groups' coordinates instead map to their own modes at that population (sd
    ``Z_SCALE``: the frame standardises them). The noise scale starts at the groups' median.
    With a log-scale per group (``scaled``: the level terms it shifts), its spread starts at
    the sd of the groups' mean offsets of those terms from the population (at least
    :data:`SPREAD_FLOOR` prior units), each group's scale at its conditional mean.
    Returns ``None`` where the law's shared or independent level coordinates are sampled
    (nothing to map the fits onto).

    Returns
    -------
    tuple of dict or None
        ``(point, sd)``: site -> array shaped like the site.

    Examples
    --------
    >>> import numpy as np, pandas as pd, bayescale as bs
    >>> from bayescale.model.arguments import log_references, model_args
    >>> from bayescale.model.build import latent_sites
    >>> model = bs.ScalingModel(bs.laws.PowerLaw("N"), target="loss", group="g", pilot=True)
    >>> n = np.tile(np.geomspace(1e8, 1e10, 8), 3)
    >>> noise = np.exp(0.01 * np.random.default_rng(0).standard_normal(24))
    >>> alpha = np.repeat([0.2, 0.3, 0.4], 8)
    >>> df = pd.DataFrame({"N": n, "loss": 3 * (n / 1e9) ** -alpha * noise, "g": np.repeat(list("abc"), 8)})
    >>> data = model.validate(df)
    >>> point, sd = model_args(model, data, log_references(model, data)).start
    >>> sorted(point) == sorted(latent_sites(model.law, model.likelihood, model.treatments, 3))
    True
    """
    if shared_level_terms(law, treatments) or independent_level_terms(law, treatments):  # sites hold level coordinates
        return None
    n_groups = len(next(iter(fits.modes.values())))
    point, sd = {}, {}
    for par in law.parameters:
        site = z_site(par.name)
        w, v, mean = _estimates(fits, par.name)
        how = treatments.get(par.name, "shared")
        if how == "independent":
            point[site], sd[site] = Z_SCALE * w, Z_SCALE * np.sqrt(v)
        elif how == "shared":
            point[site], sd[site] = np.asarray(Z_SCALE * mean), np.asarray(Z_SCALE / np.sqrt(np.sum(1.0 / v)))
        else:
            spread = between_group_sd(w, v)
            s = max(spread, SPREAD_FLOOR)
            c = np.asarray(centred[par.name], bool)
            point[f"{par.name}_pop_z"] = np.asarray(Z_SCALE * mean)
            sd[f"{par.name}_pop_z"] = np.asarray(Z_SCALE * np.sqrt((spread**2 + v.mean()) / n_groups))
            point[f"{par.name}_tau"] = np.asarray(np.log(s))
            # log of a spread estimated from n groups: sd ~ 1 / sqrt(2 (n - 1)); none detected: its prior's
            sd[f"{par.name}_tau"] = np.asarray(
                np.sqrt(1.0 / (2 * max(n_groups - 1, 1)) if spread > 0 else float(polygamma(1, SPREAD_PRIOR[0])))
            )
            point[site] = Z_SCALE * np.where(c, w, np.clip((w - mean) / s, -START_CLIP, START_CLIP))
            if args is not None and args.outer is not None:  # outer groups start at the population, as far apart
                point[f"{par.name}_outer_z"] = np.zeros(len(args.outer_ids))
                sd[f"{par.name}_outer_z"] = np.full(len(args.outer_ids), Z_SCALE)
                point[f"{par.name}_outer_tau"] = point[f"{par.name}_tau"]
                sd[f"{par.name}_outer_tau"] = sd[f"{par.name}_tau"]
            sd[site] = Z_SCALE * np.where(c, np.sqrt(v), np.minimum(1.0, np.sqrt(v) / s))
    if scaled and args is not None:
        # each group's mean offset of the scaled terms from their population means, on the sampling scale
        offsets = np.mean([_offset(fits, k) * args.prior_scale[k] for k in scaled], axis=0)
        point[f"{SCALE_SITE}_tau"] = np.asarray(np.log(max(float(np.std(offsets)), SPREAD_FLOOR)))
        sd[f"{SCALE_SITE}_tau"] = np.asarray(np.sqrt(1.0 / (2 * max(n_groups - 1, 1))))
        point[z_site(SCALE_SITE)], sd[z_site(SCALE_SITE)] = np.zeros(n_groups), np.full(n_groups, Z_SCALE)
    if args is not None and args.basis is not None:
        names = pooled_names(law, treatments)
        loc = np.array([float(args.prior_loc[k]) for k in names])
        scale = np.array([float(args.prior_scale[k]) for k in names])
        location = loc + scale * np.array([float(point[f"{k}_pop_z"]) / Z_SCALE for k in names])
        spread = scale * np.exp([float(point[f"{k}_tau"]) for k in names])
        coordinates = (names, pooled_level_terms(law, treatments))
        level_names = scaled_terms(law, treatments)
        levels = np.array([float(k in level_names) for k in names])  # == scaled, where given
        c = np.stack([np.asarray(centred[k], float) for k in names], axis=-1)
        if scaled:  # each group about its scale's conditional mean (v = 0), as sample_pooled maps it
            u = np.stack([point[z_site(k)] for k in names], axis=-1) / Z_SCALE
            values = c * (loc + scale * u) + (1.0 - c) * (location + spread * u)
            tau = np.exp(float(point[f"{SCALE_SITE}_tau"]))
            population = (jnp.asarray(location), jnp.asarray(spread), tau, jnp.asarray(levels), args.basis)
            shift, _ = pooled.scale_frame(*population, jnp.asarray(values), jnp.asarray(c))
            location = location + np.asarray(shift)[:, None] * levels
        if args.outer is not None:  # nested: each group about its outer group's location, which starts at its centre
            between = scale * np.exp([float(point[f"{k}_outer_tau"]) for k in names])
            population = (jnp.asarray(location), jnp.asarray(spread), jnp.asarray(between))
            centre, _ = pooled.outer_frame(*population, args.basis, args.outer, len(args.outer_ids))
            location = np.asarray(centre)[np.asarray(args.outer)]
        if args.basis.levelled is not None and not scaled:  # a levelled group's level at its conditional mean
            z = jnp.stack([jnp.asarray(point[z_site(k)]) for k in names], axis=-1) / Z_SCALE
            sites = pooled.level_start(z, jnp.asarray(c), jnp.asarray(levels), jnp.asarray(spread), args.basis)
            for i, k in enumerate(names):
                point[z_site(k)] = Z_SCALE * np.clip(np.asarray(sites[:, i]), -START_CLIP, START_CLIP)
        mean, lower = pooled.frame(jnp.asarray(location), jnp.asarray(spread), args.basis, coordinates=coordinates)
        u = Z_SCALE * np.einsum("gji,gj->gi", np.asarray(lower), np.asarray(args.basis.mode - mean))  # L'(y - m)
        framed = np.asarray(args.basis.framed) > 0  # the others start as without the frame (above)
        for i, k in enumerate(names):
            own = np.clip(u[:, i], -START_CLIP * Z_SCALE, START_CLIP * Z_SCALE)
            point[z_site(k)] = np.where(framed, own, point[z_site(k)])
            sd[z_site(k)] = np.where(framed, Z_SCALE, sd[z_site(k)])
    for name in fits.modes:
        if name.endswith("_z"):
            continue
        m, v = fits.modes[name], fits.variances[name]
        ok = _fitted(m, v)
        if not ok.any():
            return None
        how = treatments.get(name, "shared")
        if how == "independent":
            point[name], sd[name] = np.where(ok, m, np.median(m[ok])), np.sqrt(np.where(ok, v, np.median(v[ok])))
            continue
        # every group measures the noise scale: pooled, the variance of its log is ~1 / (2 rows)
        point[name], sd[name] = np.asarray(np.median(m[ok])), np.asarray(np.sqrt(np.median(v[ok]) / ok.sum()))
        if how == "pooled":  # the population at the groups' median and spread, each group at its own
            tau = max(float(np.std(m[ok])), 0.1)
            point[f"{name}_pop"], sd[f"{name}_pop"] = point.pop(name), sd.pop(name)
            point[f"{name}_tau"], sd[f"{name}_tau"] = np.asarray(np.log(tau)), np.asarray(0.5)
            rows = np.zeros(n_groups) if args is None else np.bincount(np.asarray(args.group), minlength=n_groups)
            scale = 1.0 / np.sqrt(1.0 / tau**2 + noise_information(likelihood) * rows)  # sample_noise's S_g
            own = np.where(ok, m, point[f"{name}_pop"])
            point[noise_site(name)] = np.clip((own - point[f"{name}_pop"]) / scale, -START_CLIP, START_CLIP)
            sd[noise_site(name)] = np.ones(n_groups)
    return point, sd


def population_of(fits: GroupFits, names) -> dict:
    """The pooled parameters' population as the groups' own fits place it: name -> (mean, sd), standardised.

    The precision-weighted mean of the groups' modes and their :func:`between_group_sd`
    (at least :data:`SPREAD_FLOOR`); a group whose fit failed counts as its prior.
    """
    out = {}
    for name in names:
        w, v, mean = _estimates(fits, name)
        out[name] = (mean, max(between_group_sd(w, v), SPREAD_FLOOR))
    return out


def _estimates(fits: GroupFits, name: str) -> tuple[np.ndarray, np.ndarray, float]:
    """Standardised modes and variances of a parameter per group (a failed fit: the prior), and their weighted mean."""
    w, v = fits.modes[z_site(name)] / Z_SCALE, fits.variances[z_site(name)] / Z_SCALE**2
    failed = ~_fitted(w, v)
    w, v = np.where(failed, 0.0, w), np.where(failed, 1.0, v)  # the prior, standardised
    return w, v, float(np.sum(w / v) / np.sum(1.0 / v))


def pooled_basis(
    law,
    likelihood,
    treatments: Mapping[str, str],
    args: ModelArgs,
    groups: np.ndarray,
    fits: GroupFits,
    measured: Mapping[str, np.ndarray],
    sloped: np.ndarray | None = None,
) -> PooledBasis | None:
    """Every group's pooled parameters as its fit given the population measured them (:mod:`bayescale.model.pooled`).

    Per group: the mode of its fit (:func:`fit_groups`, given the population) in the pooled
    coordinates, the Jacobian of the map back, and the gradient and Hessian of its negative
    log likelihood there (the prior taken out, every other site at the mode), the Hessian's
    negative eigenvalues (a direction the data do not measure) set to 0. Only groups whose
    design measures every pooled parameter (``measured``: parameter -> bool per group,
    :func:`bayescale.model.build.measured_by_design`) or at least the slope of every term
    (``sloped``, :func:`bayescale.model.build.sloped_by_design`: two model sizes, say, under tokens
    that vary), and whose fit succeeded, are sampled in the frame; the others as without it, except
    that a group whose design measures none of its level terms has its level sampled given the rest
    (``levelled``, :func:`bayescale.model.pooled.level_frame`). ``None`` where nothing is pooled.

    Why not all groups: in level coordinates, a group that measures little has its values'
    map linearised where its prior and a run or two place it, and its coordinates curve
    where the population takes it; framing such groups, in level coordinates or in their
    values' own, gave more divergences on real or simulated families (docs/hierarchy.md).

    Examples
    --------
    >>> import numpy as np, pandas as pd, bayescale as bs
    >>> from bayescale.model.arguments import log_references, model_args
    >>> from bayescale.model.build import latent_sites
    >>> model = bs.ScalingModel(bs.laws.PowerLaw("N"), target="loss", group="g", pilot=True)
    >>> n = np.tile(np.geomspace(1e8, 1e10, 8), 3)
    >>> df = pd.DataFrame({"N": n, "loss": 3 * (n / 1e9) ** -0.3, "g": np.repeat(list("abc"), 8)})
    >>> data = model.validate(df)
    >>> basis = model_args(model, data, log_references(model, data)).basis
    >>> basis.information.shape  # 3 groups, A and alpha pooled
    (3, 2, 2)
    """
    names = pooled_names(law, treatments)
    if not names:
        return None
    terms = pooled_level_terms(law, treatments)
    loc = np.array([float(args.prior_loc[k]) for k in names])
    scale = np.array([float(args.prior_scale[k]) for k in names])
    w = np.stack([fits.modes[z_site(k)] / Z_SCALE for k in names], axis=-1)
    fitted = np.all(_fitted(w, np.stack([fits.variances[z_site(k)] for k in names], axis=-1)), axis=-1)
    for mode in fits.modes.values():
        fitted &= np.isfinite(mode).reshape(len(fitted), -1).all(axis=-1)
    framed = np.logical_and.reduce([np.asarray(measured[k], bool) for k in names])
    framed = fitted & (framed if sloped is None else framed | np.asarray(sloped, bool))
    # every site at the group's mode. Where the group's fit failed (a run or two fitted exactly: the noise scale
    # runs to zero), its pooled values at their mode where finite and every other site at the fitted groups'
    # median (the prior's, where none was fitted): its data still measure its scale there
    own = {z_site(k) for k in names}
    sites = {
        k: np.where(_along(fitted | (k in own) & np.isfinite(v), v), v, _typical(v, fitted))
        for k, v in fits.modes.items()
    }
    values = loc + scale * np.stack([sites[z_site(k)] / Z_SCALE for k in names], axis=-1)
    mode = np.asarray(pooled.to_coordinates(jnp.asarray(values), names, terms))
    batch = _per_group(args, groups, np.arange(len(framed)))
    sites = {k: jnp.asarray(v) for k, v in sites.items()}
    key = (law, likelihood, names, terms, jax.tree.structure(batch), tuple(np.shape(x) for x in jax.tree.leaves(batch)))
    derivatives = _DERIVATIVES.get(key, lambda: _frame_derivatives(law, likelihood, names, terms))
    raw, jacobian, gradient = derivatives(jnp.asarray(mode), sites, batch, jnp.asarray(loc), jnp.asarray(scale))
    gradient, raw = np.asarray(gradient), np.asarray(raw)
    usable = np.isfinite(gradient).all(axis=-1) & np.isfinite(raw).all(axis=(-2, -1))
    gradient = np.where(usable[:, None], gradient, 0.0)
    information = np.where(usable[:, None, None], raw, 0.0)
    eigenvalues, vectors = np.linalg.eigh(information)
    information = np.einsum("gij,gj,gkj->gik", vectors, np.maximum(eigenvalues, 0.0), vectors)
    log_noise = np.asarray(sites["sigma"]) if "sigma" in sites else np.zeros(len(framed))
    level = _in_values(information, np.asarray(jacobian), gradient, values)  # every group's, for its scale
    gradient, information = gradient * framed[:, None], information * framed[:, None, None]
    fields = (mode, values, jacobian, information, framed.astype(float), log_noise, gradient)
    fields += _in_values(information, np.asarray(jacobian), gradient, values) + level
    basis = PooledBasis(*(jnp.asarray(a) for a in fields))
    # outside the frame, a group whose design measures none of its level terms has its level sampled given the
    # rest, where those terms are all the law's in the target's units (not a rate) and the likelihood states its
    # information about the log mean
    terms = scaled_terms(law, treatments)
    whole = set(terms) == {p.name for p in law.parameters if p.in_target_units} and bool(terms)
    whole &= not likelihood.rate and hasattr(likelihood, "information")
    levelled = ~framed & ~np.logical_or.reduce([np.asarray(measured[k], bool) for k in terms]) if whole else None
    if levelled is not None and levelled.any():
        rows = np.flatnonzero(levelled[np.asarray(groups)])
        basis = basis._replace(levelled=jnp.asarray(levelled, dtype=float), level_rows=jnp.asarray(rows))
    return basis


def _in_values(information, jacobian, gradient, values) -> tuple[np.ndarray, np.ndarray]:
    """The likelihood's expansion in the values ``x`` instead of the coordinates ``y`` (``x - x_hat = J (y - y_hat)``):
    its Hessian ``A = J'^-1 H J^-1`` and ``A x_hat - J'^-1 g``, what it says of the values (the groups outside the
    frame have ``H = 0`` and ``g = 0``: nothing)."""
    inverse = np.linalg.inv(jacobian)  # the coordinates' map is a bijection with unit Jacobian determinant
    value_information = np.einsum("gki,gkl,glj->gij", inverse, information, inverse)
    value_information = 0.5 * (value_information + np.swapaxes(value_information, -1, -2))
    value_data = np.einsum("gij,gj->gi", value_information, values) - np.einsum("gki,gk->gi", inverse, gradient)
    return value_information, value_data


def _offset(fits: GroupFits, name: str) -> np.ndarray:
    """Each group's standardised mode of ``name`` less the groups' precision-weighted mean (:func:`_estimates`)."""
    w, _, mean = _estimates(fits, name)
    return w - mean


def _typical(values: np.ndarray, fitted: np.ndarray) -> np.ndarray:
    """The median over the ``fitted`` groups of per-group ``values`` (group axis first); 0 where none was fitted."""
    return np.median(values[fitted], axis=0) if fitted.any() else np.zeros(np.shape(values)[1:])


def _along(flags: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Per-group ``flags`` shaped to broadcast against per-group ``values`` (group axis first)."""
    return flags.reshape((-1,) + (1,) * (np.ndim(values) - 1))


def _frame_derivatives(law, likelihood, names, terms):
    """The compiled per-group derivatives of :func:`pooled_basis`, as one program.

    ``(coordinates, sites, batch, loc, scale) -> (hessian, jacobian, gradient)``: the Hessian
    of the likelihood's energy and the Jacobian of the map from coordinates to values
    (:func:`bayescale.model.pooled.jacobian`), each ``(groups, K, K)``, and the energy's
    gradient ``(groups, K)``. The priors' ``loc`` and ``scale`` are arguments, not constants: they depend on
    the data's reference scales.
    """
    model = build(law, likelihood, level_coordinates=False)

    def energy(y, sites, args, loc, scale):
        w = (pooled.from_coordinates(y, names, terms) - loc) / scale
        sites = dict(sites) | {z_site(k): Z_SCALE * w[i] for i, k in enumerate(names)}
        return potential_energy(model, (args,), {}, sites) - 0.5 * jnp.sum(w**2)  # the law's Normal(0, 1) out

    def both(y, sites, args, loc, scale):
        gradient = jax.grad(energy)(y, sites, args, loc, scale)
        return jax.hessian(energy)(y, sites, args, loc, scale), pooled.jacobian(y, names, terms), gradient

    return compiled(jax.vmap(both, in_axes=(0, 0, 0, None, None)), runs="once")


def _fitted(mode: np.ndarray, variance: np.ndarray) -> np.ndarray:
    """Where a group's Laplace fit gave a usable mode and variance (finite, positive variance)."""
    return np.isfinite(mode) & np.isfinite(variance) & (variance > 0)


def between_group_sd(estimates: np.ndarray, variances: np.ndarray) -> float:
    """DerSimonian-Laird estimate of the sd between groups of estimates with known variances.

    Precision-weighted, so that one poorly measured group does not hide a real spread
    among the well-measured ones (a plain variance minus mean variance does).

    Examples
    --------
    >>> round(between_group_sd(np.array([0.0, 0.2, 0.4, 0.6]), np.full(4, 0.01)), 3)
    0.238
    >>> between_group_sd(np.zeros(4), np.full(4, 0.01))
    0.0
    """
    weights = 1.0 / variances
    mean = np.sum(weights * estimates) / weights.sum()
    q = np.sum(weights * (estimates - mean) ** 2)
    denominator = weights.sum() - np.sum(weights**2) / weights.sum()
    return float(np.sqrt(max(q - (len(estimates) - 1), 0.0) / denominator))


def _per_group(args: ModelArgs, groups: np.ndarray, which: np.ndarray) -> ModelArgs:
    """One single-group ``ModelArgs`` per group in ``which``, padded to one row count, stacked."""
    parts = [_rows(args, np.flatnonzero(groups == g)) for g in which]
    rows = row_bucket(max(n_rows(p) for p in parts))
    parts = [pad_rows(p, rows) for p in parts]
    return jax.tree.map(lambda *leaves: jnp.asarray(np.stack(leaves)), *parts)  # stacked on the host


def _rows(args: ModelArgs, rows: np.ndarray) -> ModelArgs:
    """The rows ``rows`` of ``args`` as a model without groups."""
    take = lambda a: take_rows(a, rows)  # noqa: E731
    return args._replace(
        log_x={k: take(v) for k, v in args.log_x.items()},
        mask=None,
        group=None,
        group_ids=None,
        centred=None,
        outer=None,
        outer_ids=None,
        **{name: take(getattr(args, name)) for name in ROW_FIELDS if name != "group"},
    )


def _laplace(law, likelihood, batch: ModelArgs, population: Mapping | None = None) -> tuple[dict, dict]:
    """Posterior modes and marginal variances of every site, per group (vectorised)."""
    key = (law, likelihood, jax.tree.structure(batch), tuple(np.shape(x) for x in jax.tree.leaves(batch)))
    solver = _SOLVERS.get(key, lambda: _solver(law, likelihood, jax.tree.map(lambda x: x[0], batch)))
    population = population or {}
    prior = {z_site(p.name): population.get(p.name, (0.0, 1.0)) for p in law.parameters}
    mean = {k: jnp.asarray(v[0], dtype=float) for k, v in prior.items()}
    sd = {k: jnp.asarray(v[1], dtype=float) for k, v in prior.items()}
    return solver(batch, mean, sd)


def _solver(law, likelihood, example: ModelArgs):
    model = build(law, likelihood, level_coordinates=False)
    # compiled as one program: run op by op, NumPyro's initialisation compiles dozens of small ones
    initial = lambda a: initialize_model(jax.random.key(0), model, model_args=(a,), init_strategy=init_to_median)  # noqa: E731
    start = compiled(lambda a: initial(a)[0].z, runs="once")(example)
    start = {k: jnp.zeros_like(v) if k.endswith("_z") else v for k, v in start.items()}  # law at its prior median
    y0, unravel = ravel_pytree(start)
    # the search runs on prior-standardised coordinates (the z sites divided by Z_SCALE)
    scale = standardising_scale(start)

    def energy(y, args, mean, sd):
        sites = unravel(y * scale)
        # the law's Normal(0, 1) on a standardised value replaced by Normal(mean, sd) (by default the same)
        prior = sum(jnp.sum(((sites[k] / Z_SCALE - mean[k]) / sd[k]) ** 2 - (sites[k] / Z_SCALE) ** 2) for k in mean)
        return potential_energy(model, (args,), {}, sites) + 0.5 * prior

    def one(args, mean, sd):
        y = newton(lambda y: energy(y, args, mean, sd), y0, NEWTON_STEPS)
        covariance = jnp.linalg.inv(jax.hessian(energy)(y, args, mean, sd))
        return unravel(y * scale), unravel(jnp.diag(covariance) * scale**2)

    return compiled(jax.vmap(one, in_axes=(0, None, None)), runs="once")
