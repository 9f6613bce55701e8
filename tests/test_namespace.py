"""The public namespace is small and deliberate; changing it should be a conscious decision."""

import bayescale as bs


def test_top_level_names():
    assert sorted(bs.__all__) == sorted(
        [
            "DataError",
            "Law",
            "LawComparison",
            "Parameter",
            "Prediction",
            "SamplerWarning",
            "ScalingFit",
            "ScalingFits",
            "ScalingModel",
            "__version__",
            "calibration",
            "compare",
            "compare_laws",
            "datasets",
            "laws",
            "likelihoods",
            "load_fit",
            "load_fits",
            "plot",
            "priors",
        ]
    )
    for name in bs.__all__:
        assert hasattr(bs, name)


def test_float64_is_enabled():
    import jax.numpy as jnp

    assert jnp.asarray(1.0).dtype == jnp.float64
