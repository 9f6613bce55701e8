"""From validated data to the numeric arguments of the model: reference scales, priors, the pilot."""

from __future__ import annotations

import math
from collections.abc import Mapping

import jax
import jax.numpy as jnp
import numpy as np

from bayescale.data import DataError, ScalingData
from bayescale.model.args import ModelArgs
from bayescale.model.build import centring, measured_by_design, pooled_names, sloped_by_design
from bayescale.model.pilot import exponent_centring, fit_groups, pooled_basis, population_of, starting_point


def log_references(spec, scaling_data: ScalingData) -> dict[str, float]:
    """Log reference scale of every input and of the target (user's value or geometric mean)."""
    refs = scaling_data.log_geometric_means()
    if not spec.counts:
        refs[spec.target] = float(np.mean(np.log(scaling_data.target)))
    elif spec.target not in spec.reference:
        right = scaling_data.target.sum()
        if right == 0:
            raise DataError(
                f"column {spec.target!r} is 0 in every row, so the data give no scale for the rate; "
                f"set one with reference={{{spec.target!r}: <a typical rate>}}"
            )
        refs[spec.target] = math.log(right / scaling_data.trials.sum())  # the pooled rate
    refs.update({k: math.log(v) for k, v in spec.reference.items()})
    for x, on in spec.law.shared_reference.items():  # inputs the law compares are centred alike
        refs[x] = refs[on]
    for x in spec.law.pivots:  # inputs the law centres itself
        refs[x] = 0.0
    return refs


def model_args(
    spec,
    scaling_data: ScalingData | None,
    log_refs: Mapping[str, float],
    inputs: Mapping[str, np.ndarray] | None = None,
    pilot: bool | None = None,
    frame: bool = True,
) -> ModelArgs:
    """Numeric arguments of the NumPyro model for these data and reference scales.

    ``pilot`` (default: the spec's, and where the spec leaves it ``None``, ``frame``) fits
    every group alone first where law parameters are pooled (:mod:`bayescale.model.pilot`):
    it decides where pooled exponents are centred, where the chains may start
    (``args.start``) and, with ``frame``, the pooled groups' frame (``args.basis``;
    ``False`` for many fits, whose groups are padded); ``pilot=False`` for a design without
    observations yet.
    """
    raw = inputs if inputs is not None else scaling_data.inputs
    log_x = {x: jnp.asarray(np.log(raw[x]) - log_refs[x]) for x in spec.law.inputs}
    target_unit = math.exp(log_refs[spec.target])
    loc, scale = {}, {}
    for par in spec.law.parameters:
        prior = spec.prior(par.name)
        unit = target_unit if par.in_target_units and par.name not in spec.priors else 1.0
        if par.location_of is not None and par.name in spec.priors:  # the user's prior is in the input's units
            unit = math.exp(-log_refs[par.location_of])
        loc[par.name], scale[par.name] = (jnp.asarray(v) for v in prior.loc_scale(unit))
    observed = noise = trials = None
    if scaling_data is not None and inputs is None:
        observed = jnp.asarray(scaling_data.target if spec.counts else np.log(scaling_data.target))
        if scaling_data.noise is not None:
            noise = jnp.asarray(scaling_data.noise / scaling_data.target)
        if scaling_data.trials is not None:
            trials = jnp.asarray(scaling_data.trials)
    log_ref = {x: jnp.asarray(log_refs[x]) for x in spec.law.inputs}
    group = group_ids = centred = None
    if spec.group is not None and scaling_data is not None:
        n_groups = len(scaling_data.group_labels)
        group = jnp.asarray(scaling_data.groups)
        group_ids = jnp.arange(n_groups)
        centred = centring(spec.law, spec.treatments, raw, scaling_data.groups, n_groups)
    args = ModelArgs(log_x, observed, noise, loc, scale, log_ref, group, group_ids, centred, trials)
    if centred is not None and scaling_data.outer is not None:
        args = args._replace(
            outer=jnp.asarray(scaling_data.outer), outer_ids=jnp.arange(len(scaling_data.outer_labels))
        )
    if centred is not None:
        start = None
        if pilot is None:  # the spec's choice; by default the pilot runs where its frame is used
            pilot = frame if spec.pilot is None else spec.pilot
        if pilot and observed is not None and pooled_names(spec.law, spec.treatments):
            measured = measured_by_design(spec.law, spec.treatments, raw, scaling_data.groups, n_groups)
            exponents = {k: measured[k] for k in measured if not spec.law.parameter(k).in_target_units}
            fits = fit_groups(spec.law, spec.likelihood, args, scaling_data.groups)
            centred.update(exponent_centring(spec.law, spec.likelihood, args, scaling_data.groups, exponents, fits))
            if frame:  # linearised where each group sits given the population its own fits place
                population = population_of(fits, pooled_names(spec.law, spec.treatments))
                at = fit_groups(spec.law, spec.likelihood, args, scaling_data.groups, population)
                sloped = sloped_by_design(spec.law, raw, scaling_data.groups, n_groups)
                basis = pooled_basis(
                    spec.law, spec.likelihood, spec.treatments, args, scaling_data.groups, at, measured, sloped
                )
                args = args._replace(basis=basis)
            start = starting_point(spec.law, spec.likelihood, spec.treatments, centred, fits, args, spec.scaled_names)
        args = args._replace(centred={k: jnp.asarray(v) for k, v in centred.items()})
        if start is not None:
            args = args._replace(start=jax.tree.map(jnp.asarray, start))
    return args
