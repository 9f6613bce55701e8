"""The fits of one specification to many data sets (:meth:`ScalingModel.fit_many`), addressable by key."""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

import jax
import numpy as np
import pandas as pd

from bayescale.data import ScalingData
from bayescale.results import netcdf
from bayescale.results.fit import ScalingFit
from bayescale.results.prediction import log_density
from bayescale.sampler.diagnostics import SamplerWarning, ess_wanted, health_table, unhealthy_reasons
from bayescale.sampler.runner import Samples


@dataclass(frozen=True)
class Part:
    """One data set: its validated rows and reference scales."""

    data: ScalingData
    log_refs: dict[str, float]


def key_text(names: tuple[str, ...], key) -> str:
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
            chains, draws = stats["diverging"].shape[1:3]
            reasons = unhealthy_reasons(health, ess_wanted(chains, draws))
            shown = ", ".join(repr(k) for k in health.index[bad][:5])
            warnings.warn(
                f"{bad.sum()} of {len(health)} fits were unhealthy ({reasons}): {shown}"
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
        data set (see :mod:`bayescale.results.netcdf`), so each fit can be rebuilt in full.
        Keys must be strings, numbers or booleans, or tuples of them.

        Examples
        --------
        >>> fits.save("fits.nc")          # doctest: +SKIP
        'fits.nc'
        """
        idata = netcdf.fits_idata(
            self.model, self._keys, self.names, self._parts, self._posterior, self._stats, self.options, self.seed
        )
        return idata.to_netcdf(str(path))

    def _repr_html_(self) -> str:
        """A notebook's view: one row of health per data set."""
        return f"<p>{self!r}</p>" + self.health.to_html(float_format=lambda v: f"{v:.4g}", max_rows=30)

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
        samples = Samples(posterior, loglik.reshape(chains, draws, -1), stats, "fit_many", self.options)
        return ScalingFit.from_samples(model, data, part.log_refs, samples, seed=self.seed, warn=False)
