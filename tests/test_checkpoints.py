"""Checkpoint selection helpers, and the multi-family loaders on the shared data."""

import numpy as np
import pandas as pd
import pytest

import bayescale as bs
from bayescale import checkpoints
from tests.conftest import load_or_skip


@pytest.fixture
def runs():
    steps = np.array([1, 2, 4, 8, 16, 32, 64, 100])
    return pd.concat(
        [pd.DataFrame({"run": r, "step": steps, "loss": 5.0 / np.log(steps + np.e) + i}) for i, r in enumerate("ab")],
        ignore_index=True,
    )


def test_final_takes_the_last_checkpoint_of_each_run(runs):
    shuffled = runs.sample(frac=1.0, random_state=0)
    last = checkpoints.final(shuffled, run="run", step="step")
    assert sorted(last["run"]) == ["a", "b"] and set(last["step"]) == {100}


def test_after_drops_early_checkpoints(runs):
    assert checkpoints.after(runs, "step", 10)["step"].min() == 16


def test_thin_keeps_the_last_and_spreads_in_log_step(runs):
    kept = checkpoints.thin(runs, run="run", step="step", keep=3)
    assert kept.groupby("run")["step"].apply(list).to_dict() == {"a": [1, 8, 100], "b": [1, 8, 100]}
    assert len(checkpoints.thin(runs, run="run", step="step", keep=50)) == len(runs)
    with pytest.raises(ValueError, match="keep must be an integer >= 1"):
        checkpoints.thin(runs, run="run", step="step", keep=0)


def test_missing_columns_are_named(runs):
    with pytest.raises(bs.DataError, match=r"columns \['tokens'\] are not in the data"):
        checkpoints.final(runs, run="run", step="tokens")


def test_colpret_loaders():
    everything = load_or_skip("colpret")
    final = load_or_skip("colpret_final")
    assert len(everything) == 73_920 and len(final) == 313
    assert {"family", "model", "N", "D", "C", "metric", "value", "loss_nats"} <= set(final.columns)
    assert final["family"].nunique() == 11
    # T5-Pile keeps its perplexity as logged: no nats
    assert final.loc[final["family"] == "T5-Pile", "loss_nats"].isna().all()
    # the final table is the last checkpoint of every model of the full one
    last = checkpoints.final(everything, run="model", step="D")
    assert len(last) == len(final)


def test_olmo_ladder_loader():
    df = load_or_skip("olmo_ladder")
    assert len(df) == 3862
    assert set(df["kind"]) == {"ladder", "target_7B_4T", "target_13B_5T"}
    assert {"N", "D", "C", "xC", "loss_c4_en"} <= set(df.columns)
    np.testing.assert_allclose(df["C"], 6 * df["N"] * df["D"], rtol=1e-6)


def test_derived_tables_explain_their_origin(tmp_path, monkeypatch):
    monkeypatch.setenv("BAYESCALE_DATA_DIR", str(tmp_path))
    with pytest.raises(bs.datasets.DatasetNotAvailable, match="derived table with no downloadable original.*ColPret"):
        bs.datasets.load("colpret")
