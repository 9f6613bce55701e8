"""The public namespace is small and deliberate; changing it should be a conscious decision."""

import os
import subprocess
import sys

import bayescale as bs


def test_top_level_names():
    assert sorted(bs.__all__) == sorted(
        [
            "DataError",
            "DataWarning",
            "DesignWarning",
            "Law",
            "LawComparison",
            "Parameter",
            "Prediction",
            "Chain",
            "SamplerWarning",
            "ScalingFit",
            "ScalingFits",
            "ScalingModel",
            "__version__",
            "calibration",
            "compare",
            "compare_laws",
            "datasets",
            "discrepancy",
            "laws",
            "likelihoods",
            "load_fit",
            "load_fits",
            "plot",
            "priors",
            "validation",
        ]
    )
    for name in bs.__all__:
        assert hasattr(bs, name)


def test_float64_is_enabled():
    import jax.numpy as jnp

    assert jnp.asarray(1.0).dtype == jnp.float64


def test_import_is_silent_on_arvizs_first_import_of_the_day(tmp_path):
    """ArviZ warns once a day at its first import; importing bayescale must not show it (nor fail the suite)."""
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path)}  # no daily stamp yet: ArviZ would warn
    result = subprocess.run(
        [sys.executable, "-W", "error", "-c", "import bayescale"], env=env, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    assert (tmp_path / "arviz" / "daily_warning").exists()  # the banner was due, and was filtered
