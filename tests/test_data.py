"""One test per validation rule: each error names the column, the rows and what was expected."""

import warnings

import numpy as np
import pandas as pd
import pytest

import bayescale as bs
from bayescale import DataError


@pytest.fixture
def runs():
    return pd.DataFrame(
        {
            "N": [1e8, 2e8, 4e8, 8e8, 1.6e9, 3.2e9, 6.4e9, 1e10],
            "D": [2e9, 4e9, 8e9, 1.6e10, 3.2e10, 6.4e10, 1.3e11, 2e11],
            "loss": [3.9, 3.6, 3.3, 3.1, 2.9, 2.75, 2.6, 2.5],
        },
        index=[f"run{i}" for i in range(8)],
    )


MODEL = bs.ScalingModel(bs.laws.Chinchilla(), target="loss", inputs={"N": "N", "D": "D"})


def test_valid_data_passes_and_is_not_mutated(runs):
    before = runs.copy(deep=True)
    data = MODEL.validate(runs)
    assert data.n_rows == 8 and data.inputs["N"].dtype == np.float64
    pd.testing.assert_frame_equal(runs, before)


def test_missing_column(runs):
    with pytest.raises(
        DataError, match=r"column 'D' \(law input D\) is not in the data; available columns: \['N', 'loss'\]"
    ):
        MODEL.validate(runs.drop(columns="D"))


def test_non_numeric_column_names_rows(runs):
    runs["N"] = runs["N"].astype(object)
    runs.loc["run3", "N"] = "8e8 params"
    with pytest.raises(
        DataError,
        match=r"column 'N' \(law input N\) must have a numeric dtype, got object; "
        r"non-numeric values at row 'run3'",
    ):
        MODEL.validate(runs)


def test_boolean_column_is_not_numeric(runs):
    runs["loss"] = runs["loss"] > 3
    with pytest.raises(DataError, match=r"column 'loss' \(target\) must have a numeric dtype, got bool"):
        MODEL.validate(runs)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_values(runs, bad):
    runs.loc[["run2", "run5"], "loss"] = bad
    with pytest.raises(
        DataError,
        match=r"column 'loss' \(target\) has missing or infinite values at rows 'run2', "
        r"'run5'; expected finite numbers",
    ):
        MODEL.validate(runs)


def test_nullable_missing_value(runs):
    runs["D"] = runs["D"].astype("Float64")
    runs.loc["run7", "D"] = pd.NA
    with pytest.raises(DataError, match=r"column 'D' .* missing or infinite values at row 'run7'"):
        MODEL.validate(runs)


@pytest.mark.parametrize("column,value", [("N", 0.0), ("D", -1e9), ("loss", 0.0)])
def test_non_positive_values(runs, column, value):
    runs.loc["run1", column] = value
    with pytest.raises(DataError, match=rf"column '{column}' .* values <= 0 at row 'run1'; expected strictly positive"):
        MODEL.validate(runs)


def test_fewer_rows_than_parameters(runs):
    with pytest.raises(DataError, match="the data has 5 rows but the model has 6 parameters"):
        MODEL.validate(runs.iloc[:5])


def test_single_distinct_input_value(runs):
    runs["D"] = 1e10
    with pytest.raises(DataError, match=r"column 'D' \(law input D\) has the single value 1e\+10 in every row"):
        MODEL.validate(runs)


def test_empty_frame():
    with pytest.raises(DataError, match="the data has no rows"):
        MODEL.validate(pd.DataFrame({"N": [], "D": [], "loss": []}))


def test_not_a_dataframe(runs):
    with pytest.raises(TypeError, match="data must be a pandas DataFrame, got dict"):
        MODEL.fit(runs.to_dict())


def test_many_bad_rows_are_summarised(runs):
    runs["loss"] = -1.0
    with pytest.raises(DataError, match=r"rows 'run0', 'run1', 'run2', 'run3', 'run4' \(and 3 more\)"):
        MODEL.validate(runs)


def test_mapped_column_names_appear_in_errors(runs):
    model = bs.ScalingModel("chinchilla", target="val", inputs={"N": "params", "D": "tokens"})
    frame = runs.rename(columns={"N": "params", "D": "tokens", "loss": "val"})
    frame.loc["run4", "tokens"] = np.nan
    with pytest.raises(DataError, match=r"column 'tokens' \(law input D\) has missing"):
        model.validate(frame)


def test_errors_come_before_compilation(runs, monkeypatch):
    import bayescale.fitting as fitting

    def boom(*args, **kwargs):
        raise AssertionError("sampler reached with invalid data")

    monkeypatch.setattr(fitting, "sample", boom)
    runs.loc["run0", "N"] = np.nan
    with pytest.raises(DataError):
        MODEL.fit(runs)


def test_noise_column_is_validated(runs):
    runs["sd"] = 0.01
    runs.loc["run6", "sd"] = -0.01
    model = bs.ScalingModel("chinchilla", noise="sd")
    with pytest.raises(
        DataError, match=r"column 'sd' \(known noise standard deviation\) has values <= 0 at row 'run6'"
    ):
        model.validate(runs)


def test_inputs_in_the_wrong_units_get_a_warning_that_says_what_to_check(quickstart_runs):
    billions = quickstart_runs.assign(N=quickstart_runs["N"] / 1e9)  # N given in billions
    with pytest.warns(bs.DataWarning, match=r"column 'N' \(law input N, parameters\) spans .* check its units"):
        bs.ScalingModel("chinchilla").validate(billions)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        bs.ScalingModel("chinchilla").validate(quickstart_runs)  # the usual scales: silent
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", bs.DataWarning)  # the opt-out the message names
        bs.ScalingModel("chinchilla").validate(billions)


def test_duplicated_rows_get_a_warning(quickstart_runs):
    doubled = pd.concat([quickstart_runs, quickstart_runs.iloc[[3, 7]]])
    with pytest.warns(
        bs.DataWarning, match=r"rows 3, 7, 3, 7 are identical .* shrink the intervals by about sqrt\(k\)"
    ):
        bs.ScalingModel("chinchilla").validate(doubled)
