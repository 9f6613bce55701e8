"""Saving and loading the results of :meth:`ScalingModel.fit_many` as one netCDF file.

A thousand fits saved one :meth:`ScalingFit.save` at a time are a thousand files and a
thousand copies of the spec; here they are one ArviZ-format file:

- ``posterior``: every reported variable with dims ``(dataset, chain, draw[, slot])``
  (``slot``: the groups of hierarchical fits, padded to the data set with the most);
- ``sample_stats``: divergences, leapfrog steps, step size, ... ``(dataset, chain, draw)``;
- ``constant_data``: the validated rows of all data sets stacked, with the position of
  the data set each row belongs to, so that every fit can be rebuilt in full (its
  pointwise log likelihood, predictions, plots);
- attributes: the model spec, the keys, NUTS options, seed, reference scales and group
  labels per data set, bayescale's version and file format.

Keys must be strings, integers, floats or booleans, or tuples of them (what grouping a
DataFrame by columns gives); anything else is refused when saving, before writing.
"""

from __future__ import annotations

import json
import os

import numpy as np
import pandas as pd
import xarray as xr

from bayescale import __version__
from bayescale._arviz import az
from bayescale.data import ScalingData
from bayescale.fit import _obs_coordinate, open_saved
from bayescale.inference import NUTSOptions

FILE_FORMAT = 1  # bump when saved fit collections change incompatibly


def save(fits, path: str | os.PathLike) -> str:
    """Write ``fits`` (a :class:`~bayescale.ScalingFits`) to ``path``; returns the path."""
    keys = [_encode_key(key) for key in fits]
    parts = fits._parts
    posterior = xr.Dataset(
        {name: (_dims(values.ndim), values) for name, values in fits._posterior.items()},
        attrs={
            "bayescale_version": __version__,
            "bayescale_fits_format": FILE_FORMAT,
            "bayescale_model": json.dumps(fits.model.config(), sort_keys=True),
            "bayescale_nuts_options": json.dumps(fits.options.__dict__, sort_keys=True),
            "bayescale_keys": json.dumps(keys),
            "bayescale_key_names": json.dumps(list(fits.names)),
            "bayescale_log_references": json.dumps([p.log_refs for p in parts], sort_keys=True),
            "bayescale_group_labels": json.dumps([list(p.data.group_labels) for p in parts]),
            "bayescale_row_labels": json.dumps([_index_kind(p.data.index) for p in parts]),  # str or int
            "seed": fits.seed,
            "inference_library": "numpyro",
        },
    )
    stats = xr.Dataset({name: (_dims(values.ndim), values) for name, values in fits._stats.items()})
    idata = az.InferenceData(posterior=posterior, sample_stats=stats, constant_data=_rows(parts))
    return idata.to_netcdf(str(path))


def load_fits(path: str | os.PathLike, law=None):
    """Load fits written by :meth:`ScalingFits.save` (``path`` and ``law`` as in :func:`bayescale.load_fit`).

    Returns
    -------
    ScalingFits
        Equal to the saved one: same keys, draws, diagnostics; every fit can be rebuilt.

    Examples
    --------
    >>> fits.save("fits.nc"); again = bs.load_fits("fits.nc")      # doctest: +SKIP
    >>> again["t3"].predict(N=1e10).interval(0.9)                  # doctest: +SKIP
    """
    from bayescale.many import ScalingFits, _Part

    hint = ": saved by ScalingFits.save? (a single fit's file loads with bs.load_fit)"
    idata, attrs, model = open_saved(path, "bayescale_fits_format", FILE_FORMAT, "fits", law, hint)
    keys = [_decode_key(k) for k in json.loads(attrs["bayescale_keys"])]
    log_refs = json.loads(attrs["bayescale_log_references"])
    labels = json.loads(attrs["bayescale_group_labels"])
    kinds = json.loads(attrs["bayescale_row_labels"])
    columns = {name: values.values for name, values in idata.constant_data.data_vars.items()}
    ends = np.cumsum(np.bincount(columns["dataset"], minlength=len(keys)))[:-1]  # rows are stacked in order
    pieces = {name: np.split(values, ends) for name, values in columns.items()}
    parts = []
    for i in range(len(keys)):
        data = ScalingData(
            inputs={name: pieces[f"input_{name}"][i] for name in model.law.inputs},
            target=pieces["target"][i],
            noise=pieces["noise"][i] if "noise" in pieces else None,
            index=_index(pieces["row"][i], kinds[i]),
            groups=pieces["group"][i] if "group" in pieces else None,
            group_labels=tuple(labels[i]),
            trials=pieces["trials"][i] if "trials" in pieces else None,
        )
        parts.append(_Part(data, log_refs[i]))
    posterior = {name: np.asarray(idata.posterior[name].values) for name in idata.posterior.data_vars}
    stats = {name: np.asarray(idata.sample_stats[name].values) for name in idata.sample_stats.data_vars}
    options = NUTSOptions(**json.loads(attrs["bayescale_nuts_options"]))
    names = tuple(json.loads(attrs["bayescale_key_names"]))
    return ScalingFits(
        model, keys, names, parts, posterior, stats, seed=int(attrs["seed"]), options=options, warn=False
    )


def _dims(ndim: int) -> tuple[str, ...]:
    return ("dataset", "chain", "draw", "slot")[:ndim]


def _rows(parts) -> xr.Dataset:
    """The validated rows of every data set, stacked in order along ``row_number``."""
    data = [p.data for p in parts]
    columns = {
        "dataset": np.concatenate([np.full(d.n_rows, i) for i, d in enumerate(data)]),
        "row": np.concatenate([_obs_coordinate(d.index).astype(str) for d in data]),
        "target": np.concatenate([d.target for d in data]),
    }
    for name in data[0].inputs:
        columns[f"input_{name}"] = np.concatenate([d.inputs[name] for d in data])
    for field in ("noise", "groups", "trials"):
        if getattr(data[0], field) is not None:
            columns["group" if field == "groups" else field] = np.concatenate([getattr(d, field) for d in data])
    return xr.Dataset({name: ("row_number", values) for name, values in columns.items()})


def _index_kind(index: pd.Index) -> str:
    """``"str"`` for string row labels; ``"int"`` for integer labels, or positions (what ScalingFit.save keeps)."""
    return "str" if _obs_coordinate(index).dtype.kind == "U" else "int"


def _index(values: np.ndarray, kind: str) -> pd.Index:
    if kind == "str":
        return pd.Index(values.astype(str), dtype=object)
    return pd.Index(values.astype(np.int64))


def _encode_key(key) -> list:
    """A key as JSON: ``["tuple", [...]]`` or ``["value", v]``, values tagged by type."""
    if isinstance(key, tuple):
        return ["tuple", [_encode_scalar(key, k) for k in key]]
    return ["value", _encode_scalar(key, key)]


def _encode_scalar(key, value) -> list:
    if isinstance(value, (bool, np.bool_)):  # before int: True is an int too
        return ["bool", bool(value)]
    if isinstance(value, (int, np.integer)):
        return ["int", int(value)]
    if isinstance(value, (float, np.floating)):
        return ["float", float(value)]
    if isinstance(value, str):
        return ["str", value]
    raise TypeError(
        f"cannot save the key {key!r}: keys must be strings, numbers or booleans (or tuples of them), "
        f"got {type(value).__name__}. Relabel the data sets (e.g. df[by].astype(str)) before fit_many"
    )


def _decode_key(encoded: list):
    kind, value = encoded
    if kind == "tuple":
        return tuple(_decode_scalar(v) for v in value)
    return _decode_scalar(value)


def _decode_scalar(encoded: list):
    kind, value = encoded
    return {"bool": bool, "int": int, "float": float, "str": str}[kind](value)
