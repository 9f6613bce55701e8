"""How bayescale compiles: CPU compiler options by how long a program runs, and predictions that reuse programs."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from bayescale.sampler import compile as inference


def test_unknown_compiler_options_are_left_out():
    options = (("xla_backend_optimization_level", 1), ("xla_no_such_option_in_any_release", True))
    assert inference.cpu_compiler_options(options) == {"xla_backend_optimization_level": 1}


def test_programs_compile_for_each_way_they_run():
    for runs in inference.RUNS:
        assert inference.compiled(lambda x: 2 * x, runs=runs)(2.0) == 4.0
    with pytest.raises(ValueError, match="runs must be one of"):
        inference.compiled(lambda x: x, runs="sometimes")


def test_a_prediction_does_not_depend_on_the_rows_after_it(small_fit):
    """Rows are padded to a bucket: the draws of the first rows are the same whatever follows in the bucket,
    and a grid of another length in that bucket reuses the compiled programs."""
    grid = pd.DataFrame({"N": np.geomspace(1e8, 1e11, 7), "D": np.geomspace(2e9, 2e12, 7)})
    short, long = small_fit.predict(grid.head(3)), small_fit.predict(grid)
    for kind in ("mean", "observation"):
        np.testing.assert_array_equal(short.draws(kind), long.draws(kind)[:, :3])
    sizes = small_fit.idata.posterior.sizes
    assert short.draws().shape == (sizes["chain"] * sizes["draw"], 3)
