"""Property tests: any DataFrame either validates completely or gets a DataError naming column and rows.

Nothing is dropped, clipped or coerced, the user's frame is never mutated, and nothing
reaches JAX before validation has passed.
"""

import copy
import re

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import bayescale as bs
from bayescale.data import DataError

GOOD = st.floats(min_value=1e-300, max_value=1e300, allow_nan=False, allow_infinity=False)
HOSTILE = st.one_of(
    GOOD,
    st.sampled_from([np.nan, np.inf, -np.inf, 0.0, -1.0, -1e-300, 1e-320, 1.7e308]),
    st.just(None),
    st.sampled_from(["3.1", "", "nan", "1e9 ", "abc"]),
    st.booleans(),
    st.integers(min_value=-(2**40), max_value=2**63 - 1),
)
COLUMNS = ("N", "D", "loss")
PROFILE = settings(max_examples=150, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def frames(draw, cells=HOSTILE, min_rows=0, max_rows=12, group=False):
    """A DataFrame of the Chinchilla columns; each column clean, hostile, or of object dtype."""
    n = draw(st.integers(min_rows, max_rows))
    data = {}
    for column in COLUMNS:
        values = draw(st.lists(draw(st.sampled_from([GOOD, cells])), min_size=n, max_size=n))
        data[column] = pd.Series(values, dtype=object if draw(st.booleans()) else None)
    if group:
        data["family"] = draw(st.lists(st.sampled_from(["a", "b", None, 3]), min_size=n, max_size=n))
    frame = pd.DataFrame(data)
    if n and draw(st.booleans()):  # duplicated rows
        frame = pd.concat([frame, frame.iloc[: draw(st.integers(1, n))]])
    if draw(st.booleans()):  # an index that is not 0..n-1
        frame.index = [f"run{i}" for i in range(len(frame))]
    return frame


def _expected_error(frame: pd.DataFrame, columns) -> str | None:
    """The first column that is not all finite positive numbers, in validation order."""
    for column in columns:
        series = frame[column]
        if pd.api.types.is_bool_dtype(series.dtype) or not pd.api.types.is_numeric_dtype(series.dtype):
            return column
        values = series.to_numpy(dtype=float, na_value=np.nan)
        if not np.all(np.isfinite(values) & (values > 0)):
            return column
    return None


def _check(model: bs.ScalingModel, frame: pd.DataFrame, columns) -> None:
    before = copy.deepcopy(frame)
    try:
        data = model.validate(frame)
    except DataError as err:
        message = str(err)
        if len(frame) == 0:
            assert message == "the data has no rows"
        else:
            bad = _expected_error(frame, columns)
            if bad is not None:
                assert f"column {bad!r}" in message, message
                assert re.search(r"rows? |dtype", message), message
            else:  # every cell fine: too few rows, or an input with one value
                assert "rows but the model has" in message or "single value" in message, message
    else:
        assert _expected_error(frame, columns) is None
        assert data.n_rows == len(frame)  # nothing dropped
        for values in (*data.inputs.values(), data.target):
            assert values.dtype == np.float64 and np.all(np.isfinite(values) & (values > 0))
        np.testing.assert_array_equal(data.target, frame["loss"].to_numpy(dtype=float))
    pd.testing.assert_frame_equal(frame, before)  # never mutated


@pytest.mark.filterwarnings("ignore::bayescale.DataWarning")  # hostile values are far off any usual scale
@PROFILE
@given(frames())
def test_any_frame_validates_or_names_the_column_and_rows(frame):
    _check(bs.ScalingModel("chinchilla"), frame, COLUMNS)


@pytest.mark.filterwarnings("ignore::bayescale.DataWarning")
@PROFILE
@given(frames(group=True, min_rows=1))
def test_group_column_with_missing_or_mixed_labels(frame):
    model = bs.ScalingModel("chinchilla", group="family")
    try:
        model.validate(frame)
    except DataError as err:
        message = str(err)
        bad = _expected_error(frame, COLUMNS)
        if bad is not None:
            assert f"column {bad!r}" in message
        elif frame["family"].isna().any():
            assert "column 'family' (group) has missing labels at row" in message
        else:
            assert "rows but the model has" in message or "single value" in message, message


@settings(max_examples=100, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
@given(frames(min_rows=1, max_rows=5))
def test_prediction_inputs_are_checked_like_fitting_inputs(small_fit, frame):
    before = copy.deepcopy(frame)
    try:
        prediction = small_fit.predict(frame[["N", "D"]])
    except DataError as err:
        bad = _expected_error(frame, ("N", "D"))
        assert bad is not None and f"column {bad!r}" in str(err), str(err)
    else:
        assert _expected_error(frame, ("N", "D")) is None
        draws = prediction.draws()
        assert draws.shape[1] == len(frame) and np.all(np.isfinite(draws) | (draws == np.inf))
    pd.testing.assert_frame_equal(frame, before)


def test_validation_errors_come_before_jax_sees_anything(quickstart_runs, monkeypatch):
    import bayescale.fitting as fitting

    monkeypatch.setattr(fitting, "sample", lambda *a, **k: pytest.fail("sampler called on invalid data"))
    bad = quickstart_runs.astype({"D": object})
    bad.loc[7, "D"] = "many"
    with pytest.raises(DataError, match=r"column 'D' .*non-numeric values at row 7"):
        bs.ScalingModel("chinchilla").fit(bad)


def test_a_group_with_one_row_fits(quickstart_runs):
    runs = quickstart_runs.assign(family="big")
    runs.loc[runs.index[-1], "family"] = "lonely"
    # with two groups a pooled exponent has no spread to learn (see the README on families): independent
    fit = bs.ScalingModel("chinchilla", group="family", shared=["E", "A", "B", "beta"], independent=["alpha"]).fit(
        runs, seed=0
    )
    assert fit.groups == ("big", "lonely")
    draws = fit.draws("alpha")
    assert draws.shape[1] == 2 and np.all(np.isfinite(draws))
    # an unknown group at prediction time: drawn from the population where there is one, else a clear error
    unseen = pd.DataFrame({"N": [1e9], "D": [2e10], "family": ["unseen"]})
    with pytest.raises(ValueError, match=r"groups \['unseen'\] were not in the fitted data.*independent"):
        fit.predict(unseen)
    assert np.all(np.isfinite(fit.predict(unseen.assign(family="lonely")).draws()))
