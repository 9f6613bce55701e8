"""Real data: the Chinchilla rows of Hoffmann et al. as extracted by Epoch AI."""

import hashlib

import numpy as np
import pandas as pd
import pytest

import bayescale as bs
from tests.conftest import BESIROGLU_95, SHARED_DATA, load_or_skip


def test_loader_gives_all_rows_and_the_besiroglu_flag():
    df = load_or_skip("chinchilla")
    assert len(df) == 245 and int(df["besiroglu_excluded"].sum()) == 5
    assert {"N", "D", "C", "loss", "tokens_per_param", "besiroglu_excluded"} <= set(df.columns)
    np.testing.assert_allclose(df["D"], df["C"] / (6 * df["N"]), rtol=1e-15)
    # the 5 excluded rows are the 5 highest losses
    assert df.loc[df["besiroglu_excluded"], "loss"].min() > df.loc[~df["besiroglu_excluded"], "loss"].max()


def test_loader_matches_the_shared_tidy_table():
    tidy_path = SHARED_DATA / "chinchilla_epoch" / "chinchilla_fig4_tidy.csv"
    if not tidy_path.exists():
        pytest.skip("shared tidy table not present")
    tidy = pd.read_csv(tidy_path)
    df = load_or_skip("chinchilla")
    np.testing.assert_allclose(df["N"], tidy["N_params"], rtol=1e-15)
    np.testing.assert_allclose(df["D"], tidy["D_tokens"], rtol=1e-12)
    np.testing.assert_array_equal(df["besiroglu_excluded"], tidy["besiroglu_excluded"])


def test_medians_fall_inside_besiroglu_bootstrap_intervals(chinchilla_fit):
    fit = chinchilla_fit
    assert fit.healthy, str(fit.health)
    assert fit.idata.observed_data.sizes["obs"] == 240
    for name, (lo, hi) in BESIROGLU_95.items():
        median = float(np.median(fit.draws(name)))
        assert lo < median < hi, f"{name}: median {median:.4f} outside Besiroglu et al.'s [{lo}, {hi}]"


def test_chinchilla_prediction_at_70b_and_1_4t_tokens(chinchilla_fit):
    """Chinchilla itself (70B, 1.4T): our 90% interval brackets Besiroglu et al.'s point fit (1.976)."""
    table = chinchilla_fit.predict(N=70e9, D=1.4e12).interval(0.9, kind="mean")
    p = {"E": 1.8169, "A": 482.01, "alpha": 0.3478, "B": 2085.43, "beta": 0.3658}
    besiroglu = float(bs.laws.Chinchilla().mean(p, N=70e9, D=1.4e12))
    assert table["lower"][0] < besiroglu < table["upper"][0]


def test_cache_directory_layout_is_the_shared_folder_layout(tmp_path, monkeypatch):
    """A data dir with <folder>/<original name> is used as is; a checksum mismatch is refused."""
    source = SHARED_DATA / "chinchilla_epoch" / "svg_extracted_data.csv"
    if not source.exists():
        pytest.skip("shared original file not present")
    content = source.read_bytes()
    assert hashlib.sha256(content).hexdigest() == bs.datasets.DATASETS["chinchilla"].files[0].sha256
    (tmp_path / "chinchilla_epoch").mkdir()
    (tmp_path / "chinchilla_epoch" / "svg_extracted_data.csv").write_bytes(content)
    monkeypatch.setenv("BAYESCALE_DATA_DIR", str(tmp_path))
    assert len(bs.datasets.load("chinchilla", download=False)) == 245


def test_missing_dataset_without_download_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("BAYESCALE_DATA_DIR", str(tmp_path))
    with pytest.raises(
        bs.datasets.DatasetNotAvailable,
        match=r"svg_extracted_data.csv .*does not exist.*"
        r"raw.githubusercontent.com/epoch-research",
    ):
        bs.datasets.load("chinchilla", download=False)


def test_failed_download_names_the_source_and_the_remedy(tmp_path, monkeypatch):
    import urllib.request

    def offline(*args, **kwargs):
        raise OSError("network is unreachable")

    monkeypatch.setenv("BAYESCALE_DATA_DIR", str(tmp_path))
    monkeypatch.setattr(urllib.request, "urlopen", offline)
    with pytest.raises(
        bs.datasets.DatasetNotAvailable,
        match=r"downloading it from https://.* failed "
        r"\(network is unreachable\)\. Download that file by hand",
    ):
        bs.datasets.load("chinchilla")


def test_download_checks_the_checksum(tmp_path, monkeypatch):
    import io
    import urllib.request

    monkeypatch.setenv("BAYESCALE_DATA_DIR", str(tmp_path))
    monkeypatch.setattr(urllib.request, "urlopen", lambda *a, **k: io.BytesIO(b"x,y\n1,2\n"))
    with pytest.raises(bs.datasets.DatasetNotAvailable, match="has SHA-256 .* expected 193478df"):
        bs.datasets.load("chinchilla")
    assert not (tmp_path / "chinchilla_epoch" / "svg_extracted_data.csv").exists()


def test_unknown_dataset_lists_the_known_ones():
    with pytest.raises(KeyError, match=r"unknown dataset 'chinchila'; available datasets: \['chinchilla', 'colpret'"):
        bs.datasets.load("chinchila")


def test_default_data_dir_is_a_user_cache(monkeypatch, tmp_path):
    monkeypatch.delenv("BAYESCALE_DATA_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert bs.datasets.data_dir() == tmp_path / "bayescale"
