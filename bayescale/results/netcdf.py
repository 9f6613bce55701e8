"""The layout of saved fits: ArviZ's netCDF format with bayescale's attributes.

A single fit is its ``InferenceData`` with the spec, reference scales, NUTS options and seed
in the posterior's attributes (:func:`fit_attributes`). Many fits (:meth:`ScalingModel.fit_many`)
are one file, not a thousand files with a thousand copies of the spec (:func:`fits_idata`):

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

import arviz as az
import numpy as np
import pandas as pd
import xarray as xr

from bayescale.config import VERSION as __version__
from bayescale.data import ScalingData

FIT_FORMAT = 1  # bump when saved fits change incompatibly
FITS_FORMAT = 1  # bump when saved fit collections change incompatibly


def fit_attributes(
    spec, log_refs: dict, options, seed: int, chain_method: str, first_run: dict | None = None, extended: int = 0
) -> dict:
    """The posterior attributes that make a fit's ``InferenceData`` a bayescale fit (``first_run``: the
    run before, where the sampler ran twice, :meth:`~bayescale.sampler.options.NUTSOptions.rerun`;
    ``extended``: times its chains ran on, :attr:`~bayescale.sampler.options.NUTSOptions.extend`)."""
    rerun = {} if first_run is None else {"bayescale_first_run": json.dumps(first_run, sort_keys=True)}
    if extended:
        rerun["bayescale_extended"] = extended
    return rerun | {
        "bayescale_version": __version__,
        "bayescale_format": FIT_FORMAT,
        "bayescale_model": json.dumps(spec.config(), sort_keys=True),
        "bayescale_log_references": json.dumps(log_refs, sort_keys=True),
        "bayescale_nuts_options": json.dumps(options.__dict__, sort_keys=True),
        "seed": seed,
        "chain_method": chain_method,
        "inference_library": "numpyro",
    }


def obs_coordinate(index: pd.Index) -> np.ndarray:
    """Row labels usable as a netCDF coordinate: the index itself if integer or string, else positions."""
    if pd.api.types.is_integer_dtype(index.dtype):
        return np.asarray(index, dtype=np.int64)
    if pd.api.types.is_string_dtype(index.dtype) and index.map(type).isin([str]).all():
        return np.asarray(index, dtype=str)
    return np.arange(len(index))


def fits_idata(spec, keys, names, parts, posterior, stats, options, seed: int) -> az.InferenceData:
    """The ``InferenceData`` of many fits (:class:`~bayescale.ScalingFits`), ready for ``to_netcdf``."""
    keys = [encode_key(key) for key in keys]
    posterior = xr.Dataset(
        {name: (_dims(values.ndim), values) for name, values in posterior.items()},
        attrs={
            "bayescale_version": __version__,
            "bayescale_fits_format": FITS_FORMAT,
            "bayescale_model": json.dumps(spec.config(), sort_keys=True),
            "bayescale_nuts_options": json.dumps(options.__dict__, sort_keys=True),
            "bayescale_keys": json.dumps(keys),
            "bayescale_key_names": json.dumps(list(names)),
            "bayescale_log_references": json.dumps([p.log_refs for p in parts], sort_keys=True),
            "bayescale_group_labels": json.dumps([list(p.data.group_labels) for p in parts]),
            "bayescale_row_labels": json.dumps([_index_kind(p.data.index) for p in parts]),  # str or int
            "seed": seed,
            "inference_library": "numpyro",
        },
    )
    stats = xr.Dataset({name: (_dims(values.ndim), values) for name, values in stats.items()})
    return az.InferenceData(posterior=posterior, sample_stats=stats, constant_data=_rows(parts))


def fits_parts(idata, law) -> tuple[list, tuple[str, ...], list]:
    """Keys, key names and per data set ``(ScalingData, log reference scales)`` of :func:`fits_idata`'s output."""
    attrs = idata.posterior.attrs
    keys = [decode_key(k) for k in json.loads(attrs["bayescale_keys"])]
    log_refs = json.loads(attrs["bayescale_log_references"])
    labels = json.loads(attrs["bayescale_group_labels"])
    kinds = json.loads(attrs["bayescale_row_labels"])
    columns = {name: values.values for name, values in idata.constant_data.data_vars.items()}
    ends = np.cumsum(np.bincount(columns["dataset"], minlength=len(keys)))[:-1]  # rows are stacked in order
    pieces = {name: np.split(values, ends) for name, values in columns.items()}
    parts = []
    for i in range(len(keys)):
        data = ScalingData(
            inputs={name: pieces[f"input_{name}"][i] for name in law.inputs},
            target=pieces["target"][i],
            noise=pieces["noise"][i] if "noise" in pieces else None,
            index=_index(pieces["row"][i], kinds[i]),
            groups=pieces["group"][i] if "group" in pieces else None,
            group_labels=tuple(labels[i]),
            trials=pieces["trials"][i] if "trials" in pieces else None,
        )
        parts.append((data, log_refs[i]))
    return keys, tuple(json.loads(attrs["bayescale_key_names"])), parts


def _dims(ndim: int) -> tuple[str, ...]:
    return ("dataset", "chain", "draw", "slot")[:ndim]


def _rows(parts) -> xr.Dataset:
    """The validated rows of every data set, stacked in order along ``row_number``."""
    data = [p.data for p in parts]
    columns = {
        "dataset": np.concatenate([np.full(d.n_rows, i) for i, d in enumerate(data)]),
        "row": np.concatenate([obs_coordinate(d.index).astype(str) for d in data]),
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
    return "str" if obs_coordinate(index).dtype.kind == "U" else "int"


def _index(values: np.ndarray, kind: str) -> pd.Index:
    if kind == "str":
        return pd.Index(values.astype(str), dtype=object)
    return pd.Index(values.astype(np.int64))


def encode_key(key) -> list:
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


def decode_key(encoded: list):
    kind, value = encoded
    if kind == "tuple":
        return tuple(_decode_scalar(v) for v in value)
    return _decode_scalar(value)


def _decode_scalar(encoded: list):
    kind, value = encoded
    return {"bool": bool, "int": int, "float": float, "str": str}[kind](value)
