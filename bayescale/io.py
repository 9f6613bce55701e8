"""Loading saved fits: :func:`load_fit` and :func:`load_fits` rebuild the specification and the results.

Saving is a method of the results (:meth:`ScalingFit.save`, :meth:`ScalingFits.save`); the file
layout is :mod:`bayescale.results.netcdf`.
"""

from __future__ import annotations

import json
import os

import arviz as az
import numpy as np

from bayescale.config import VERSION as __version__
from bayescale.data import DataError
from bayescale.results import netcdf
from bayescale.results.fit import ScalingFit
from bayescale.results.fits import Part, ScalingFits
from bayescale.sampler.options import NUTSOptions
from bayescale.spec import ScalingModel


def load_fit(path: str | os.PathLike, law=None) -> ScalingFit:
    """Load a fit written by :meth:`ScalingFit.save`.

    Parameters
    ----------
    path : str or path-like
        The netCDF file.
    law : Law, optional
        Needed only for a custom law that is not registered with :func:`bayescale.laws.register`.

    Examples
    --------
    >>> fit.save("fit.nc"); again = bs.load_fit("fit.nc")      # doctest: +SKIP
    """
    idata, attrs, model = open_saved(path, "bayescale_format", netcdf.FIT_FORMAT, "fit", law)
    return ScalingFit(model, idata, json.loads(attrs["bayescale_log_references"]), warn=False)


def load_fits(path: str | os.PathLike, law=None) -> ScalingFits:
    """Load fits written by :meth:`ScalingFits.save` (``path`` and ``law`` as in :func:`load_fit`).

    Returns
    -------
    ScalingFits
        Equal to the saved one: same keys, draws, diagnostics; every fit can be rebuilt.

    Examples
    --------
    >>> fits.save("fits.nc"); again = bs.load_fits("fits.nc")      # doctest: +SKIP
    >>> again["t3"].predict(N=1e10).interval(0.9)                  # doctest: +SKIP
    """
    hint = ": saved by ScalingFits.save? (a single fit's file loads with bs.load_fit)"
    idata, attrs, model = open_saved(path, "bayescale_fits_format", netcdf.FITS_FORMAT, "fits", law, hint)
    keys, names, parts = netcdf.fits_parts(idata, model.law)
    posterior = {name: np.asarray(idata.posterior[name].values) for name in idata.posterior.data_vars}
    stats = {name: np.asarray(idata.sample_stats[name].values) for name in idata.sample_stats.data_vars}
    options = NUTSOptions(**json.loads(attrs["bayescale_nuts_options"]))
    return ScalingFits(
        model,
        keys,
        names,
        [Part(data, refs) for data, refs in parts],
        posterior,
        stats,
        seed=int(attrs["seed"]),
        options=options,
        warn=False,
    )


def open_saved(path, format_attr: str, file_format: int, what: str, law=None, hint: str = "") -> tuple:
    """``(idata, attrs, model)`` of a file bayescale saved, after checking that it is one, in ``file_format``."""
    if not os.path.exists(path):
        raise FileNotFoundError(f"no saved {what} at {os.fspath(path)!r}")
    idata = az.from_netcdf(str(path))
    attrs = idata.posterior.attrs if "posterior" in idata.groups() else {}
    if format_attr not in attrs:
        raise DataError(f"{os.fspath(path)!r} is an ArviZ file but not a bayescale {what} (no {format_attr}){hint}")
    fmt = int(attrs[format_attr])
    if fmt != file_format:
        raise DataError(
            f"{os.fspath(path)!r} was saved by bayescale {attrs.get('bayescale_version')} in file format {fmt}; "
            f"this bayescale ({__version__}) reads format {file_format}. Use a matching bayescale version to load it"
        )
    return idata, attrs, ScalingModel.from_config(json.loads(attrs["bayescale_model"]), law=law)
