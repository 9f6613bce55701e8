"""One model, many data sets: ``ScalingModel.fit_many`` and the :class:`ScalingFits` it returns.

Users' real workloads are many small fits: every task, metric and family of a benchmark
suite, every bootstrap or backtest split, every simulation of a calibration study. All
data sets go through one compiled NUTS program: rows are padded to a common length
(:func:`bayescale.model.pad_rows`, masked out of the likelihood) and groups to a common
count (an extra group without rows is a draw from the population, which leaves the
others' posterior unchanged), so data sets of different sizes share the program.

On GPU and TPU the program is vmapped over the data sets and their chains
(:func:`bayescale.inference.sample_many`): the arithmetic of the other members is free.
On CPU it is not: vectorised NUTS pays at every iteration for the longest trajectory in
its batch (and, inside NumPyro's iterative tree building, for the deepest tree at every
level), and 64 small saturating-law fits (2 x (500 + 500), 2 cores) took 0.30 s per fit
one data set per call, 0.39 s in batches of 4 and 0.58 s in batches of 16. So on CPU the
program is a single chain's, every chain of every data set is its own call, and the
calls run in one thread per core (:func:`bayescale.inference.sample_each`; JAX releases
the GIL): no chain waits for another. ``batch_size=`` asks for vectorised batches anyway.
"""

from __future__ import annotations

import logging
import os
import warnings
from collections.abc import Callable, Hashable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd

from bayescale import inference
from bayescale.data import DataError, ScalingData
from bayescale.diagnostics import ESS_PER_CHAIN_MIN, RHAT_MAX, SamplerWarning
from bayescale.model import ModelArgs, pad_rows, row_bucket

# -- the engine: many data sets through one compiled sampler ------------------------------


def sample_batches(
    model,
    args_of: Callable[[np.ndarray], ModelArgs],
    n: int,
    *,
    seeds: np.ndarray,
    n_groups: int,
    chains: int,
    warmup: int,
    draws: int,
    options: inference.NUTSOptions,
    batch_size: int | None,
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Fit ``n`` data sets of ``model``: posterior arrays and sample stats, (data set, chain, draw, ...).

    ``args_of(idx)`` returns the stacked model arguments of the data sets ``idx``. By
    default on CPU every chain of every data set is its own call, in one thread per core
    (:func:`bayescale.inference.sample_each`); on GPU and TPU all data sets go in one
    vectorised batch. ``batch_size`` asks for vectorised batches of that size (on CPU,
    run in one thread per core); the last batch is padded with repeats, then trimmed.
    """
    sites = model.latent_sites(n_groups)
    on_cpu = jax.default_backend() == "cpu"
    if batch_size is None and on_cpu:
        stacked = args_of(np.arange(n))
        samples = inference.sample_each(
            model._model,
            [jax.tree_util.tree_map(lambda a, i=i: a[i], stacked) for i in range(n)],
            sites,
            seeds=seeds,
            chains=chains,
            warmup=warmup,
            draws=draws,
            options=options,
            cache_key=model.structure_key,
        )
        return samples.posterior, samples.stats
    batch_size = min(batch_size or n, n)
    workers = inference.cpu_count() if on_cpu else 1

    def run(start: int):
        idx = np.arange(start, start + batch_size) % n
        samples = inference.sample_many(
            model._model,
            args_of(idx),
            sites,
            seeds=seeds[idx],
            chains=chains,
            warmup=warmup,
            draws=draws,
            options=options,
            cache_key=model.structure_key,
        )
        keep = min(batch_size, n - start)
        return (
            {k: v[:keep] for k, v in samples.posterior.items()},
            {k: v[:keep] for k, v in samples.stats.items()},
        )

    starts = list(range(0, n, batch_size))
    parts = [run(starts[0])]  # compiles once, before any thread could compile it again
    if len(starts) > 1:
        with ThreadPoolExecutor(max_workers=workers) as pool:
            parts += list(pool.map(run, starts[1:]))
    posterior = {k: np.concatenate([p[0][k] for p in parts]) for k in parts[0][0]}
    sample_stats = {k: np.concatenate([p[1][k] for p in parts]) for k in parts[0][1]}
    return posterior, sample_stats


def health_table(
    posterior: Mapping[str, np.ndarray],
    sample_stats: Mapping[str, np.ndarray],
    max_tree_depth: int,
    valid: Mapping[str, np.ndarray] | None = None,
) -> tuple[pd.DataFrame, dict[str, pd.DataFrame]]:
    """Per data set: divergences, worst R-hat and ESS, tree-depth saturation and ``healthy``.

    ``posterior`` maps scalar labels to arrays (data set, chain, draw); ``valid``
    optionally maps a label to a boolean per data set, False where that data set does
    not have the parameter (a padded group). Also returns R-hat, bulk and tail ESS per
    data set and label. The statistics are ArviZ's, computed for all data sets at once;
    the thresholds are those of a single fit (:func:`bayescale.diagnostics.assess`).
    """
    import xarray as xr

    from bayescale._arviz import az

    chains, draws = next(iter(posterior.values())).shape[1:3]
    ds = xr.Dataset({k: (("member", "chain", "draw"), v) for k, v in posterior.items()})
    ds = ds.transpose("chain", "draw", "member")
    arviz_log = logging.getLogger("arviz")
    level = arviz_log.level
    arviz_log.setLevel(logging.ERROR)  # chains stuck at one value give NaN R-hat: reported below, not logged
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)
        try:
            stats = {
                "r_hat": az.rhat(ds),
                "ess_bulk": az.ess(ds, method="bulk"),
                "ess_tail": az.ess(ds, method="tail"),
            }
        finally:
            arviz_log.setLevel(level)
    per_label = {name: pd.DataFrame({k: s[k].values for k in posterior}) for name, s in stats.items()}
    ok = pd.DataFrame({k: np.ones(len(per_label["r_hat"]), bool) for k in posterior})
    for k, v in (valid or {}).items():
        ok[k] = np.asarray(v, dtype=bool)
    rhat = per_label["r_hat"].fillna(np.inf).where(ok, -np.inf)
    bulk = per_label["ess_bulk"].fillna(0.0).where(ok, np.inf)
    tail = per_label["ess_tail"].fillna(0.0).where(ok, np.inf)
    depth = np.ceil(np.log2(sample_stats["n_steps"] + 1))
    table = pd.DataFrame(
        {
            "divergences": sample_stats["diverging"].sum(axis=(1, 2)).astype(int),
            "max_rhat": rhat.max(axis=1).to_numpy() if chains > 1 else np.nan,
            "min_ess_bulk": bulk.min(axis=1).to_numpy(),
            "min_ess_tail": tail.min(axis=1).to_numpy(),
            "tree_depth_saturation": (depth >= max_tree_depth).mean(axis=(1, 2)),
        }
    )
    ess_min = min(ESS_PER_CHAIN_MIN * chains, chains * draws / 4)
    rhat_ok = table["max_rhat"] <= RHAT_MAX if chains > 1 else True
    table["healthy"] = (
        (table["divergences"] == 0)
        & rhat_ok
        & (table[["min_ess_bulk", "min_ess_tail"]].min(axis=1) >= ess_min)
        & (table["tree_depth_saturation"] <= 0.01)
    )
    return table, per_label


def unhealthy_reasons(health: pd.DataFrame) -> str:
    """What went wrong across a health table, as a short clause."""
    reasons = []
    if (health["divergences"] > 0).any():
        reasons.append(f"divergences in {(health['divergences'] > 0).sum()}")
    if (health["max_rhat"] > RHAT_MAX).any():
        reasons.append(f"R-hat > {RHAT_MAX} in {(health['max_rhat'] > RHAT_MAX).sum()}")
    if (health["tree_depth_saturation"] > 0.01).any():
        reasons.append(f"max tree depth in {(health['tree_depth_saturation'] > 0.01).sum()}")
    reasons.append(f"worst min bulk ESS {health['min_ess_bulk'].min():.0f}")
    return ", ".join(reasons)


# -- fit_many -------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Part:
    """One data set: its validated rows and reference scales."""

    data: ScalingData
    log_refs: dict[str, float]


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


def fit_many(
    model,
    data,
    by: str | Sequence[str] | None = None,
    *,
    seed: int = 0,
    chains: int = 4,
    warmup: int = 1000,
    draws: int = 1000,
    batch_size: int | None = None,
    **nuts_options,
) -> ScalingFits:
    """Fit ``model`` to many data sets in one compiled, vectorised call (see :meth:`ScalingModel.fit_many`)."""
    seed = inference.check_seed(seed)
    if batch_size is not None and (isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1):
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    options = inference.NUTSOptions.from_kwargs(**nuts_options)
    inference.check_counts(chains, warmup, draws)
    keys, frames, names = split(data, by)
    parts = []
    for key, frame in zip(keys, frames, strict=True):
        try:
            scaling_data = model.validate(frame)
            log_refs = model.log_references(scaling_data)
        except DataError as err:
            raise DataError(f"data set {_key_text(names, key)}: {err}") from None
        parts.append(_Part(scaling_data, log_refs))
    rows = row_bucket(max(p.data.n_rows for p in parts))
    n_groups = max(len(p.data.group_labels) for p in parts)
    stacked = _stack([_padded(model, p, rows, n_groups) for p in parts])
    options = inference._resolved(options, model.latent_sites(n_groups), rows)
    posterior, stats = sample_batches(
        model,
        lambda idx: jax.tree_util.tree_map(lambda a: a[idx], stacked),
        len(parts),
        seeds=np.full(len(parts), int(seed)),
        n_groups=n_groups,
        chains=chains,
        warmup=warmup,
        draws=draws,
        options=options,
        batch_size=batch_size,
    )
    return ScalingFits(model, keys, names, parts, posterior, stats, seed=int(seed), options=options)


def _padded(model, part: _Part, rows: int, n_groups: int) -> ModelArgs:
    """A data set's model arguments with ``rows`` rows and ``n_groups`` groups."""
    args = pad_rows(model.model_args(part.data, part.log_refs, frame=False), rows)
    if model.group is None:
        return args
    extra = n_groups - len(part.data.group_labels)
    centred = {k: jnp.concatenate([v, jnp.zeros(extra)]) for k, v in args.centred.items()}
    # random starts, and no pilot frame (model_args(frame=False): binary centring, the groups are padded)
    return args._replace(group_ids=jnp.arange(n_groups), centred=centred, start=None)


def _stack(members: list[ModelArgs]) -> ModelArgs:
    return jax.tree_util.tree_map(lambda *leaves: jnp.stack(leaves), *members)


def _key_text(names: tuple[str, ...], key) -> str:
    values = key if isinstance(key, tuple) else (key,)
    return ", ".join(f"{n}={v!r}" for n, v in zip(names, values, strict=True))


class ScalingFits(Mapping):
    """The fits of one model to many data sets, addressable by key (see :meth:`ScalingModel.fit_many`).

    A mapping from each data set's key (the value of the ``by`` column, a tuple for
    several columns, or the key or position the data sets were given with) to its
    :class:`~bayescale.ScalingFit`, built when first asked for.

    Attributes
    ----------
    model : ScalingModel
        The specification every data set was fitted with.
    health : pandas.DataFrame
        Per key: divergences, worst R-hat and ESS, tree-depth saturation, ``healthy``.
    seed : int
        The seed of every fit.
    options : NUTSOptions
        The NUTS settings of every fit.

    Examples
    --------
    >>> fits = model.fit_many(df, by="task", seed=0)      # doctest: +SKIP
    >>> fits.save("fits.nc"); fits = bs.load_fits("fits.nc")   # doctest: +SKIP
    >>> fits["t3"].predict(N=1e10).interval(0.9)          # doctest: +SKIP
    >>> fits.summary().xs("alpha", level="parameter")     # doctest: +SKIP
    """

    def __init__(self, model, keys, names, parts, posterior, stats, *, seed: int, options, warn: bool = True) -> None:
        self.model = model
        self.seed = seed
        self.options = options
        self.names = tuple(names)
        self._keys = list(keys)
        self._position = {key: i for i, key in enumerate(self._keys)}
        self._parts = parts
        self._posterior = {k: v for k, v in posterior.items() if k in model.posterior_names}
        self._stats = stats
        self._fits: dict[int, object] = {}
        flat, valid = self._labelled()
        self._flat = flat
        health, self._per_label = health_table(flat, stats, options.max_tree_depth, valid)
        health.index = self.index
        self._per_label = {k: v.set_axis(self.index) for k, v in self._per_label.items()}
        self._valid = pd.DataFrame(valid, index=self.index) if valid else None
        self.health = health
        bad = ~health["healthy"]
        if warn and bad.any():
            shown = ", ".join(repr(k) for k in health.index[bad][:5])
            warnings.warn(
                f"{bad.sum()} of {len(health)} fits were unhealthy ({unhealthy_reasons(health)}): {shown}"
                f"{' ...' if bad.sum() > 5 else ''}. fits.health lists them and fits[key].diagnostics() says why "
                "and what to try (more warmup and draws, target_accept_prob=0.95, stronger priors)",
                SamplerWarning,
                stacklevel=4,  # the user's call of ScalingModel.fit_many
            )

    # -- mapping ----------------------------------------------------------------------------
    def __getitem__(self, key):
        if key not in self._position:
            raise KeyError(f"no data set {key!r}; keys are {self._keys[:10]}{' ...' if len(self) > 10 else ''}")
        i = self._position[key]
        if i not in self._fits:
            self._fits[i] = self._build(i)
        return self._fits[i]

    def __iter__(self) -> Iterator:
        return iter(self._keys)

    def __len__(self) -> int:
        return len(self._keys)

    @property
    def index(self) -> pd.Index:
        """The keys as a pandas index named like the ``by`` columns."""
        if len(self.names) > 1:
            return pd.MultiIndex.from_tuples(self._keys, names=self.names)
        return pd.Index(self._keys, name=self.names[0], tupleize_cols=False)  # tuple keys of a dict stay keys

    @property
    def healthy(self) -> pd.Series:
        """Per key: True when that fit had no divergences, R-hat <= 1.01 and enough effective draws."""
        return self.health["healthy"]

    # -- results ----------------------------------------------------------------------------
    def summary(self, level: float = 0.9) -> pd.DataFrame:
        """One row per key and parameter: mean, sd, median, equal-tailed interval, R-hat, ESS, ``healthy``.

        Computed for all data sets at once, without building the individual fits. Rows
        are indexed by the key columns and ``parameter`` (``name[group]`` for
        group-level parameters, only the groups each data set has).

        Examples
        --------
        >>> fits.summary(0.9).xs("alpha", level="parameter")[["median", "lower", "upper"]]   # doctest: +SKIP
        """
        if not 0 < level < 1:
            raise ValueError(f"level must be in (0, 1), got {level!r}")
        keys = np.arange(len(self))
        blocks = []
        for order, (label, values) in enumerate(self._flat.items()):
            draws = values.reshape(len(self), -1)
            lower, median, upper = np.quantile(draws, [(1 - level) / 2, 0.5, (1 + level) / 2], axis=1)
            block = pd.DataFrame(
                {
                    "_key": keys,
                    "_order": order,
                    "parameter": self._names_of(label),
                    "mean": draws.mean(axis=1),
                    "sd": draws.std(axis=1, ddof=1),
                    "median": median,
                    "lower": lower,
                    "upper": upper,
                    "r_hat": self._per_label["r_hat"][label].to_numpy(),
                    "ess_bulk": self._per_label["ess_bulk"][label].to_numpy(),
                    "ess_tail": self._per_label["ess_tail"][label].to_numpy(),
                    "healthy": self.health["healthy"].to_numpy(),
                }
            )
            if self._valid is not None and label in self._valid:
                block = block[self._valid[label].to_numpy()]
            blocks.append(block)
        table = pd.concat(blocks).sort_values(["_key", "_order"], kind="stable")
        index = self.index[table["_key"].to_numpy()]
        table.index = pd.MultiIndex.from_arrays(
            [index.get_level_values(i) for i in range(index.nlevels)] + [table["parameter"].to_numpy()],
            names=[*self.names, "parameter"],
        )
        table = table.drop(columns=["_key", "_order", "parameter"])
        table.attrs["level"] = level
        return table

    def draws(self, name: str) -> np.ndarray:
        """Posterior draws of ``name`` for every data set, chains pooled: shape (keys, draws) or (keys, draws, groups).

        Group-level arrays have as many groups as the data set with the most; a data
        set's extra groups (it has no rows there) hold population draws.
        """
        if name not in self._posterior:
            raise KeyError(f"no parameter {name!r}; parameters: {list(self.model.posterior_names)}")
        values = self._posterior[name]
        return values.reshape((len(self), -1) + values.shape[3:])

    # -- persistence ------------------------------------------------------------------------
    def save(self, path: str | os.PathLike) -> str:
        """Write every fit to one netCDF file (ArviZ's format); read it back with :func:`bayescale.load_fits`.

        The file holds the draws, sampler statistics, validated rows and spec of every
        data set (see :mod:`bayescale.fits_file`), so each fit can be rebuilt in full.
        Keys must be strings, numbers or booleans, or tuples of them.

        Examples
        --------
        >>> fits.save("fits.nc")          # doctest: +SKIP
        'fits.nc'
        """
        from bayescale import fits_file

        return fits_file.save(self, path)

    def __repr__(self) -> str:
        chains, draws = next(iter(self._posterior.values())).shape[1:3]
        unhealthy = int((~self.health["healthy"]).sum())
        by = ", ".join(self.names)
        return (
            f"ScalingFits({len(self)} data sets by {by}, {chains} chains x {draws} draws, "
            f"{unhealthy} unhealthy; model={self.model!r})"
        )

    # -- internals ------------------------------------------------------------------------------
    def _labelled(self) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
        """Scalar arrays (key, chain, draw) per label; group-level ones as ``name[#i]`` with validity per key."""
        flat, valid = {}, {}
        counts = np.array([len(p.data.group_labels) for p in self._parts])
        for name in self.model.posterior_names:
            values = self._posterior[name]
            if values.ndim == 3:
                flat[name] = values
                continue
            for i in range(values.shape[3]):
                flat[f"{name}[#{i}]"] = values[..., i]
                valid[f"{name}[#{i}]"] = counts > i
        return flat, valid

    def _names_of(self, label: str) -> list[str]:
        """Per key, the user's name of a label: ``name``, or ``name[group]`` for ``name[#i]``."""
        if "[#" not in label:
            return [label] * len(self)
        name, i = label[:-1].split("[#")
        labels = [p.data.group_labels for p in self._parts]
        return [f"{name}[{g[int(i)]}]" if int(i) < len(g) else "" for g in labels]

    def _build(self, i: int):
        """The :class:`~bayescale.ScalingFit` of data set ``i``, with its pointwise log likelihood."""
        from bayescale.fit import ScalingFit
        from bayescale.predict import log_density

        model, part = self.model, self._parts[i]
        data, n_groups = part.data, len(part.data.group_labels)
        posterior = {k: v[i][..., :n_groups] if v.ndim == 4 else v[i] for k, v in self._posterior.items()}
        stats = {k: v[i] for k, v in self._stats.items()}
        chains, draws = stats["diverging"].shape
        flat = {k: v.reshape((chains * draws,) + v.shape[2:]) for k, v in posterior.items()}
        law = model.law
        observed = data.target if model.counts else np.log(data.target)
        labels = np.asarray(data.group_labels, dtype=str)
        loglik = log_density(
            law,
            model.likelihood,
            model.treatments,
            flat,
            {x: part.log_refs[x] for x in law.inputs},
            {x: np.log(data.inputs[x]) - part.log_refs[x] for x in law.inputs},
            observed,
            jax.random.key(self.seed),
            fitted_groups=tuple(labels),
            row_groups=None if data.groups is None else labels[data.groups],
            noise_log_sd=None if data.noise is None else data.noise / data.target,
            trials=data.trials,
        )
        samples = inference.Samples(posterior, loglik.reshape(chains, draws, -1), stats, "fit_many", self.options)
        return ScalingFit.from_samples(model, data, part.log_refs, samples, seed=self.seed, warn=False)
