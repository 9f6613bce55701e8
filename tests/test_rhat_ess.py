"""R-hat and ESS of many series at once (bayescale.sampler.rhat_ess) against ArviZ's one at a time."""

from __future__ import annotations

import logging

import arviz as az
import numpy as np
import pytest
import xarray as xr

from bayescale.sampler import rhat_ess


def arviz_stats(x: np.ndarray) -> dict[str, np.ndarray]:
    """ArviZ's rank R-hat, bulk and tail ESS of every series of ``x`` (series, chain, draw)."""
    ds = xr.Dataset({"v": (("series", "chain", "draw"), x)}).transpose("chain", "draw", "series")
    logging.getLogger("arviz").setLevel(logging.ERROR)  # "Array contains NaN-value", on purpose below
    with np.errstate(all="ignore"):
        return {
            "rhat": az.rhat(ds)["v"].values,
            "ess_bulk": az.ess(ds, method="bulk")["v"].values,
            "ess_tail": az.ess(ds, method="tail")["v"].values,
        }


def series(chains: int, draws: int, seed: int = 0) -> np.ndarray:
    """Series that exercise every branch: iid, slowly mixing (Geyer's truncation late), anti-correlated,
    chains apart, a stuck chain, ties, constants, a NaN, heavy tails."""
    rng = np.random.default_rng(seed)
    out = []
    for phi in (0.0, 0.5, 0.9, 0.99, -0.6):  # AR(1)
        e = rng.standard_normal((3, chains, draws))
        x = np.empty_like(e)
        x[..., 0] = e[..., 0]
        for t in range(1, draws):
            x[..., t] = phi * x[..., t - 1] + np.sqrt(1 - phi**2) * e[..., t]
        out.append(x)
    apart = rng.standard_normal((2, chains, draws)) + np.arange(chains)[:, None]
    stuck = rng.standard_normal((1, chains, draws))
    stuck[0, 0] = 1.5
    ties = rng.integers(0, 3, (2, chains, draws)).astype(float)
    constant = np.full((1, chains, draws), 2.0)
    nan = rng.standard_normal((1, chains, draws))
    nan[0, 0, draws // 2] = np.nan
    heavy = rng.standard_cauchy((2, chains, draws))
    return np.concatenate(out + [apart, stuck, ties, constant, nan, heavy])


@pytest.mark.parametrize(("chains", "draws"), [(4, 1000), (2, 500), (3, 101), (1, 200), (2, 9), (4, 4), (2, 3)])
def test_many_series_at_once_match_arviz_one_at_a_time(chains, draws):
    x = series(chains, draws, seed=chains * draws)
    theirs = arviz_stats(x)
    mine = {
        "rhat": rhat_ess.rhat(x),
        "ess_bulk": rhat_ess.ess_bulk(x),
        "ess_tail": rhat_ess.ess_tail(x),
    }
    mine["all_three"] = np.stack(rhat_ess.all_three(x))
    theirs["all_three"] = np.stack([theirs["rhat"], theirs["ess_bulk"], theirs["ess_tail"]])
    for name, value in mine.items():
        assert value.shape[-1] == len(x)
        np.testing.assert_allclose(value, theirs[name], rtol=1e-9, atol=0, equal_nan=True, err_msg=name)
    if chains > 1 and draws >= 4:
        assert np.isfinite(mine["rhat"][:-4]).all()  # NaN only where ArviZ gives it: constants and the NaN draw


def test_leading_axes_are_kept():
    x = series(2, 100).reshape(4, -1, 2, 100)[:, :4]
    assert rhat_ess.ess_bulk(x).shape == rhat_ess.rhat(x).shape == (4, 4)
    np.testing.assert_allclose(rhat_ess.ess_tail(x)[1], rhat_ess.ess_tail(x[1]), rtol=1e-12)
