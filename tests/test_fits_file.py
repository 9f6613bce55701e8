"""``ScalingFits.save`` / ``bs.load_fits``: many fits in one file, loaded back unchanged."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

import bayescale as bs
from bayescale.results import netcdf
from tests.test_many import SHORT, families_by_task, tasks


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    df = tasks(n_tasks=3).assign(metric=lambda d: np.where(d["task"] == "t0", "acc", "ppl"))
    df.index = [f"run{i}" for i in range(len(df))]  # string row labels travel too
    model = bs.ScalingModel(bs.laws.PowerLaw("N"), target="loss", inputs={"N": "N"})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", bs.SamplerWarning)  # 4 x 500 draws; health is compared, not required
        fits = model.fit_many(df, by=["metric", "task"], seed=3, **SHORT)
    path = tmp_path_factory.mktemp("fits") / "fits.nc"
    assert fits.save(path) == str(path)
    return fits, bs.load_fits(path), path


def test_round_trip_keeps_keys_draws_and_diagnostics(saved):
    fits, again, _ = saved
    assert list(again) == list(fits) == [("acc", "t0"), ("ppl", "t1"), ("ppl", "t2")]
    assert again.names == ("metric", "task") and again.seed == 3 and again.options == fits.options
    assert again.model.config() == fits.model.config()
    pd.testing.assert_frame_equal(again.summary(), fits.summary())
    pd.testing.assert_frame_equal(again.health, fits.health)
    np.testing.assert_array_equal(again.draws("alpha"), fits.draws("alpha"))


def test_each_loaded_fit_is_the_saved_fit(saved):
    fits, again, _ = saved
    key = ("ppl", "t2")
    one, other = fits[key], again[key]
    assert list(other.idata.observed_data["obs"].values) == list(one.idata.observed_data["obs"].values)
    np.testing.assert_array_equal(other.idata.log_likelihood["loss"].values, one.idata.log_likelihood["loss"].values)
    pd.testing.assert_frame_equal(other.predict(N=[1e11]).interval(0.9), one.predict(N=[1e11]).interval(0.9))


def test_hierarchical_fits_with_different_groups(tmp_path):
    model = bs.ScalingModel(bs.laws.SaturatingPowerLaw("C"), group="family", shared=["E"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", bs.SamplerWarning)  # short chains of a hierarchy
        fits = model.fit_many(families_by_task(), by="task", seed=0, chains=2, warmup=300, draws=300)
    again = bs.load_fits(fits.save(tmp_path / "h.nc"))
    assert again["y"].groups == ("a", "b") and again["x"].groups == ("a", "b", "c")
    pd.testing.assert_frame_equal(again.summary(), fits.summary())
    np.testing.assert_array_equal(again["y"].draws("alpha"), fits["y"].draws("alpha"))


def test_keys_of_every_scalar_type_survive():
    keys = ["a", 3, np.int64(4), 2.5, True, ("x", 1)]
    decoded = [netcdf.decode_key(netcdf.encode_key(k)) for k in keys]
    assert decoded == ["a", 3, 4, 2.5, True, ("x", 1)]
    assert [type(k) for k in decoded[:5]] == [str, int, int, float, bool]


def test_unsaveable_keys_and_wrong_files_are_clear_errors(saved, tmp_path):
    with pytest.raises(TypeError, match=r"cannot save the key .*Timestamp"):
        netcdf.encode_key(pd.Timestamp("2024-01-01"))
    with pytest.raises(FileNotFoundError, match="no saved fits"):
        bs.load_fits(tmp_path / "missing.nc")
    fits, _, _ = saved
    single = fits[("acc", "t0")].save(tmp_path / "one.nc")
    with pytest.raises(bs.DataError, match="loads with bs.load_fit"):
        bs.load_fits(single)
