"""The fitting pipeline: validate -> model arguments -> sample -> results.

:meth:`ScalingModel.fit` and :meth:`ScalingModel.fit_many` hand their data here. One data set:
:func:`fit`, which samples a second time, with smaller steps, where its run diverged
(:meth:`~bayescale.sampler.options.NUTSOptions.rerun`), and runs its chains on where they fall
short of the health rule only for want of draws (:attr:`~bayescale.sampler.options.NUTSOptions.extend`).
Many data sets of one specification
(every task and metric of a benchmark suite, every split of a backtest): :func:`fit_many`,
which pads rows to a common length (masked out of the likelihood) and groups to a common count
(an extra group without rows is a draw from the population), so that all of them go through
one compiled sampler; with a Dask client, one per worker.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd

from bayescale.data import DataError
from bayescale.model.args import ModelArgs, n_rows, pad_rows, row_bucket
from bayescale.model.arguments import log_references, model_args
from bayescale.model.build import latent_sites, model_of
from bayescale.results.fit import ScalingFit
from bayescale.results.fits import Part, ScalingFits, key_text
from bayescale.sampler.cluster import check_client
from bayescale.sampler.diagnostics import short_of_draws
from bayescale.sampler.options import NUTSOptions, check_counts, check_seed, dimension
from bayescale.sampler.runner import sample, sample_batches


def fit(
    spec,
    data: pd.DataFrame,
    *,
    seed: int = 0,
    chains: int = 4,
    warmup: int = 1000,
    draws: int = 1000,
    chain_method: str | None = None,
    progress_bar: bool | None = None,
    **nuts_options,
) -> ScalingFit:
    """Fit the specification ``spec`` to ``data``; see :meth:`bayescale.ScalingModel.fit`."""
    seed = check_seed(seed)
    given = NUTSOptions.from_kwargs(**nuts_options)
    check_counts(chains, warmup, draws)
    scaling_data = spec.validate(data)
    log_refs = log_references(spec, scaling_data)
    args = model_args(spec, scaling_data, log_refs)
    rows = n_rows(args)
    padded = pad_rows(args, row_bucket(rows))
    sites = latent_sites(
        spec.law,
        spec.likelihood,
        spec.treatments,
        len(scaling_data.group_labels),
        len(scaling_data.outer_labels),
        scaled=bool(spec.scaled_names),
    )
    options = given.resolved(
        dimension(sites),
        n_rows(padded),
        has_start=args.start is not None,
        framed=args.basis is not None,
        local_modes=spec.law.local_modes,
    )
    run = partial(
        sample,
        model_of(spec),
        padded._replace(start=None),
        sites,
        seed=seed,
        chains=chains,
        warmup=warmup,
        draws=draws,
        report=spec.posterior_names,
        start=args.start,
        chain_method=chain_method,
        progress_bar=progress_bar,
        cache_key=spec.structure_key,
        longer=lambda s: short_of_draws(s.posterior, s.stats, spec.posterior_names, s.options.max_tree_depth),
    )
    samples = run(options=options)
    divergences = int(samples.stats["diverging"].sum())
    again = options.rerun(given, divergences, float(np.mean(samples.stats["n_steps"])))
    if again is not None:  # smaller steps where the first run's diverged (NUTSOptions.rerun)
        samples = run(options=again)
        samples.first_run = {"target_accept_prob": options.target_accept_prob, "divergences": divergences}
    samples.log_likelihood = samples.log_likelihood[..., :rows]
    return ScalingFit.from_samples(spec, scaling_data, log_refs, samples, seed=seed)


def fit_many(
    spec,
    data,
    by: str | Sequence[str] | None = None,
    *,
    seed: int = 0,
    chains: int = 4,
    warmup: int = 1000,
    draws: int = 1000,
    batch_size: int | None = None,
    progress_bar: bool | None = None,
    client=None,
    **nuts_options,
) -> ScalingFits:
    """Fit ``spec`` to many data sets through one compiled sampler; see :meth:`bayescale.ScalingModel.fit_many`."""
    seed = check_seed(seed)
    if spec.within is not None:
        raise ValueError(
            f"fit_many does not take groups nested in outer groups (within={spec.within!r}) yet: its groups are "
            "padded to one count across data sets, which outer groups would have to be too. Fit each data set "
            "with fit(), or drop within= to pool the groups in one population"
        )
    if batch_size is not None and (isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1):
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    options = NUTSOptions.from_kwargs(**nuts_options)
    check_counts(chains, warmup, draws)
    if client is not None:
        check_client(client)
    keys, frames, names = split(data, by)
    parts = []
    for key, frame in zip(keys, frames, strict=True):
        try:
            scaling_data = spec.validate(frame)
            log_refs = log_references(spec, scaling_data)
        except DataError as err:
            raise DataError(f"data set {key_text(names, key)}: {err}") from None
        parts.append(Part(scaling_data, log_refs))
    rows = row_bucket(max(p.data.n_rows for p in parts))
    n_groups = max(len(p.data.group_labels) for p in parts)
    stacked = _stack([_padded(spec, p, rows, n_groups) for p in parts])
    sites = latent_sites(spec.law, spec.likelihood, spec.treatments, n_groups, scaled=bool(spec.scaled_names))
    options = options.resolved(dimension(sites), rows, local_modes=spec.law.local_modes, many=True)
    samples = sample_batches(
        model_of(spec),
        stacked,
        len(parts),
        sites,
        seeds=np.full(len(parts), seed),
        chains=chains,
        warmup=warmup,
        draws=draws,
        options=options,
        report=spec.posterior_names,
        batch_size=batch_size,
        cache_key=spec.structure_key,
        progress_bar=progress_bar,
        client=client,
    )
    return ScalingFits(spec, keys, names, parts, samples.posterior, samples.stats, seed=seed, options=options)


def split(data, by: str | Sequence[str] | None) -> tuple[list[Hashable], list[pd.DataFrame], tuple[str, ...]]:
    """Keys, data sets and key names of a DataFrame grouped ``by`` columns, a mapping or a list of DataFrames."""
    if isinstance(data, pd.DataFrame):
        if by is None:
            raise TypeError(
                "fit_many needs by=<column> (or a list of columns) to split a DataFrame into data sets; "
                "for one data set use model.fit(data)"
            )
        columns = [by] if isinstance(by, str) else list(by)
        if not columns or not all(isinstance(c, str) for c in columns):
            raise TypeError(f"by must be a column name or a list of column names, got {by!r}")
        missing = [c for c in columns if c not in data.columns]
        if missing:
            raise KeyError(f"by: no column {missing[0]!r} in the data; columns are {list(data.columns)}")
        for c in columns:
            absent = data[c].isna().to_numpy()
            if absent.any():
                rows = data.index[absent].tolist()
                raise DataError(
                    f"column {c!r} has no key in rows {rows[:10]}{' ...' if len(rows) > 10 else ''}: "
                    "every row must belong to a data set (drop or label those rows)"
                )
        grouped = data.groupby(columns[0] if isinstance(by, str) else columns, sort=True, observed=True)
        keys = [k for k, _ in grouped]
        parts = [part for _, part in grouped]
        names = tuple(columns)
    else:
        if by is not None:
            raise TypeError("by= splits a DataFrame; data given as a mapping or a list is already split")
        if isinstance(data, Mapping):
            keys, parts = list(data.keys()), list(data.values())
        elif isinstance(data, Sequence) and not isinstance(data, str):
            keys, parts = list(range(len(data))), list(data)
        else:
            raise TypeError(
                f"data must be a DataFrame with by=..., a mapping of keys to DataFrames or a list of DataFrames, "
                f"got {type(data).__name__}"
            )
        names = ("key",)
        for key, part in zip(keys, parts, strict=True):
            if not isinstance(part, pd.DataFrame):
                raise TypeError(f"data set {key!r} must be a pandas DataFrame, got {type(part).__name__}")
    if not parts:
        raise ValueError("fit_many got no data sets")
    return keys, parts, names


def _padded(spec, part: Part, rows: int, n_groups: int) -> ModelArgs:
    """A data set's model arguments with ``rows`` rows and ``n_groups`` groups.

    Random starts and no pilot frame: binary centring (``frame=False``), since the groups
    are padded across data sets.
    """
    args = pad_rows(model_args(spec, part.data, part.log_refs, frame=False), rows)._replace(start=None)
    if spec.group is None:
        return args
    extra = n_groups - len(part.data.group_labels)
    centred = {k: jnp.concatenate([v, jnp.zeros(extra)]) for k, v in args.centred.items()}
    return args._replace(group_ids=jnp.arange(n_groups), centred=centred)


def _stack(members: list[ModelArgs]) -> ModelArgs:
    return jax.tree_util.tree_map(lambda *leaves: jnp.stack(leaves), *members)
