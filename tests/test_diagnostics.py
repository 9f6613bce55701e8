"""Sampler trouble is reported as a SamplerWarning that names parameters and a remedy."""

import pytest

import bayescale as bs


@pytest.fixture(scope="module")
def model():
    return bs.ScalingModel("chinchilla")


def test_divergences_are_reported(model, quickstart_runs):
    # no step-size or mass-matrix adaptation: step 1 in prior units is far too large for this posterior
    with pytest.warns(bs.SamplerWarning) as record:
        fit = model.fit(quickstart_runs, seed=0, adapt_step_size=False, adapt_mass_matrix=False)
    messages = " ".join(str(w.message) for w in record)
    assert "divergent transitions after warmup" in messages and "target_accept_prob=0.95" in messages
    assert not fit.healthy and fit.health.divergences > 0
    assert "unhealthy" in str(fit.health)


def test_tree_depth_saturation_is_reported(model, quickstart_runs):
    with pytest.warns(bs.SamplerWarning) as record:
        fit = model.fit(quickstart_runs, seed=0, max_tree_depth=2)
    messages = " ".join(str(w.message) for w in record)
    assert "hit max_tree_depth=2" in messages and "dense_mass=True" in messages
    assert fit.health.tree_depth_saturation > 0.5


def test_short_chains_report_rhat_and_ess_with_parameter_names(model, quickstart_runs):
    with pytest.warns(bs.SamplerWarning) as record:
        fit = model.fit(quickstart_runs, seed=0, warmup=20, draws=40)
    messages = [str(w.message) for w in record]
    assert any(m.startswith("R-hat above 1.01 for ") and "Run more warmup" in m for m in messages)
    assert any(m.startswith("low effective sample size for ") and "increase draws" in m for m in messages)
    assert not fit.healthy
    assert set(fit.health.table.index) == set(fit.parameter_names)


def test_healthy_fit_has_no_problems(small_fit):
    assert small_fit.healthy and small_fit.health.problems == ()
    assert str(small_fit.health).startswith("healthy")
