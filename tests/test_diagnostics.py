"""Sampler trouble is reported as a SamplerWarning that names parameters and a remedy."""

import arviz as az
import numpy as np
import pandas as pd
import pytest

import bayescale as bs
from bayescale import fitting
from bayescale.sampler import diagnostics, runner


@pytest.fixture(scope="module")
def model():
    return bs.ScalingModel("chinchilla")


def test_divergences_are_reported(model, quickstart_runs):
    # no step-size or mass-matrix adaptation: step 1 in prior units is far too large for this posterior
    with pytest.warns(bs.SamplerWarning) as record:
        fit = model.fit(quickstart_runs, seed=0, adapt_step_size=False, adapt_mass_matrix=False)
    messages = " ".join(str(w.message) for w in record)
    assert "divergent transitions after warmup" in messages and "target_accept_prob=0.95" in messages
    assert {w.filename for w in record} == {__file__}, "the warning points at the user's call, not at bayescale"
    assert not fit.healthy and fit.health.divergences > 0
    assert "unhealthy" in str(fit.health)


def _first_run_diverging(monkeypatch, count: int) -> list[float]:
    """Make ``fitting.sample``'s first call report ``count`` divergences (the draws themselves are real), and
    record every call's target acceptance."""
    calls = []
    real = fitting.sample

    def sample(*args, options, **kwargs):
        samples = real(*args, options=options, **kwargs)
        calls.append(options.target_accept_prob)
        if len(calls) == 1:
            samples.stats["diverging"][0, :count] = True
        return samples

    monkeypatch.setattr(fitting, "sample", sample)
    return calls


def test_a_run_that_diverges_is_sampled_again_with_smaller_steps(model, quickstart_runs, monkeypatch, tmp_path):
    calls = _first_run_diverging(monkeypatch, 3)
    fit = model.fit(quickstart_runs, seed=0)  # no warning: the draws kept are the second run's
    assert calls == [0.9, 0.99]
    assert fit.healthy and fit.options.target_accept_prob == 0.99
    note = "sampled twice: the first run (target_accept_prob=0.9) had 3 divergent transitions"
    assert note in str(fit.health)
    fit.save(tmp_path / "fit.nc")
    assert note in str(bs.load_fit(tmp_path / "fit.nc").health)


def test_the_second_run_reuses_the_first_run_s_compiled_sampler(model, quickstart_runs, monkeypatch):
    # the target acceptance is an argument of the compiled programs: the rerun (and a refit at another target)
    # compiles nothing, and each target still takes effect (smaller steps for a higher one)
    calls = _first_run_diverging(monkeypatch, 3)
    runners, steps = [], []
    real_runner, real_sample = runner._runner, fitting.sample
    monkeypatch.setattr(runner, "_runner", lambda *a, **k: runners.append(real_runner(*a, **k)) or runners[-1])

    def sample(*args, **kwargs):
        samples = real_sample(*args, **kwargs)
        steps.append(float(np.median(samples.stats["step_size"])))
        return samples

    monkeypatch.setattr(fitting, "sample", sample)
    model.fit(quickstart_runs, seed=0)
    model.fit(quickstart_runs, seed=0, target_accept_prob=0.95)  # a refit as a warning may advise: the same
    assert calls == [0.9, 0.99, 0.95]
    assert len(runners) == 3 and runners[0] is runners[1] is runners[2]
    assert steps[1] < 0.8 * steps[0] and steps[1] < steps[2] < steps[0], steps


def test_a_target_acceptance_the_user_chose_is_kept(model, quickstart_runs, monkeypatch):
    calls = _first_run_diverging(monkeypatch, 3)
    with pytest.warns(bs.SamplerWarning, match="3 divergent transitions"):
        fit = model.fit(quickstart_runs, seed=0, target_accept_prob=0.9)
    assert calls == [0.9] and "sampled twice" not in str(fit.health)


def test_tree_depth_saturation_is_reported(model, quickstart_runs):
    with pytest.warns(bs.SamplerWarning) as record:
        fit = model.fit(quickstart_runs, seed=0, max_tree_depth=2)
    messages = " ".join(str(w.message) for w in record)
    assert "hit max_tree_depth=2" in messages and "Raise max_tree_depth" in messages
    assert "dense_mass" not in messages, "the fit had a dense mass matrix already: the advice would change nothing"
    assert fit.health.tree_depth_saturation > 0.5


def test_advice_names_an_option_only_where_it_would_change_something(model, quickstart_runs):
    with pytest.warns(bs.SamplerWarning) as record:
        fit = model.fit(quickstart_runs, seed=0, max_tree_depth=2, dense_mass=False)
    messages = " ".join(str(w.message) for w in record)
    assert "Use dense_mass=True" in messages  # diagonal here: a dense matrix is the remedy
    assert not fit.healthy
    # a target acceptance already at 0.95 is not suggested again
    health = diagnostics.assess(
        _idata_with_divergences([3, 1500]), ["alpha_spread", "sigma"], 10, target_accept_prob=0.95
    )
    (message,) = [p for p in health.problems if "divergent" in p]
    assert "target_accept_prob=0.99" in message and "target_accept_prob=0.95" not in message


def test_short_chains_report_rhat_and_ess_with_parameter_names(model, quickstart_runs):
    with pytest.warns(bs.SamplerWarning) as record:
        fit = model.fit(quickstart_runs, seed=0, warmup=20, draws=40)
    messages = [str(w.message) for w in record]
    # chains this short may sit apart (not converged yet) or merely mix slowly: either way, more warmup is named
    assert any(m.startswith("R-hat above 1.01 for ") and "more warmup" in m for m in messages)
    assert any(m.startswith("low effective sample size for ") and "increase draws" in m for m in messages)
    # the law has published fits and the model uses none of them: the stronger prior to try is named
    assert all('such as priors="literature" (published fits of alpha, beta)' in m for m in messages if "R-hat" in m)
    assert not fit.healthy
    assert set(fit.health.table.index) == set(fit.parameter_names)


def test_healthy_fit_has_no_problems(small_fit):
    assert small_fit.healthy and small_fit.health.problems == ()
    assert str(small_fit.health).startswith("healthy")
    report = repr(small_fit.diagnostics())
    assert report.startswith("healthy") and "divergences: 0" in report and "r_hat" in report


def test_diagnostics_say_why_a_fit_is_unhealthy(model, quickstart_runs):
    with pytest.warns(bs.SamplerWarning):
        fit = model.fit(quickstart_runs, seed=0, max_tree_depth=2)
    assert fit.healthy is False
    report = fit.diagnostics()
    assert report is fit.health
    assert "hit max_tree_depth=2" in repr(report) and "Raise max_tree_depth" in repr(report)
    assert list(report.table.columns) == ["r_hat", "ess_bulk", "ess_tail"]


def _idata_with_divergences(spread_rank_of_divergences, steps: int = 7):
    """Two chains of a fake hierarchical posterior; divergent draws at the given ranks of ``alpha_spread``;
    ``steps`` leapfrog steps per draw."""
    rng = np.random.default_rng(0)
    spread = np.sort(rng.gamma(2.0, 0.1, size=2000))  # rank r is the r-th smallest value
    diverging = np.zeros(2000, dtype=bool)
    diverging[list(spread_rank_of_divergences)] = True
    order = rng.permutation(2000)
    return az.from_dict(
        posterior={"alpha_spread": spread[order].reshape(2, 1000), "sigma": rng.gamma(2, 0.01, (2, 1000))},
        sample_stats={
            "diverging": diverging[order].reshape(2, 1000),
            "tree_depth": np.full((2, 1000), int(np.ceil(np.log2(steps + 1)))),
            "n_steps": np.full((2, 1000), steps),
        },
    )


def test_divergences_in_a_funnel_name_the_spread():
    # two divergent draws among the 2% smallest spreads: P = 0.0025 by chance, named
    health = diagnostics.assess(_idata_with_divergences([3, 40]), ["alpha_spread", "sigma"], 10)
    (message,) = [p for p in health.problems if "divergent" in p]
    assert "smallest values of alpha_spread" in message and "make 'alpha' shared" in message
    # one divergence, or two not both in the lowest 5%, are not evidence of a funnel: generic advice
    for ranks in ([3], [3, 1500]):
        health = diagnostics.assess(_idata_with_divergences(ranks), ["alpha_spread", "sigma"], 10)
        (message,) = [p for p in health.problems if "divergent" in p]
        assert "smallest values" not in message and "target_accept_prob=0.95" in message


def test_divergences_at_no_spread_of_the_groups_scales_advise_one_scale():
    idata = _idata_with_divergences([3, 40])
    idata.posterior = idata.posterior.rename({"alpha_spread": "scale_spread"})
    health = diagnostics.assess(idata, ["scale_spread", "sigma"], 10)
    (message,) = [p for p in health.problems if "divergent" in p]
    assert "smallest values of scale_spread" in message and "shared" not in message
    assert "or leave group_scale out if the groups share one scale." in message


def test_smaller_steps_are_not_advised_where_trajectories_are_long():
    # 250 leapfrog steps per draw: the mass matrix misses the posterior's scales; a higher target acceptance
    # costs several times the run there and mends nothing (the README's ColPret example, docs/hierarchy.md)
    for ranks, remedy in (([3, 1500], "tighter priors"), ([3, 40], "Make 'alpha' shared")):
        health = diagnostics.assess(_idata_with_divergences(ranks, steps=250), ["alpha_spread", "sigma"], 10)
        (message,) = [p for p in health.problems if "divergent" in p]
        assert "250 leapfrog steps per draw" in message and remedy in message
        assert "target_accept_prob" not in message


def test_weak_identification_names_a_stronger_prior_only_where_there_is_one():
    rng = np.random.default_rng(0)
    apart = np.stack([rng.normal(0.0, 1.0, 500), rng.normal(3.0, 1.0, 500)])  # two chains that disagree
    idata = az.from_dict(
        posterior={"alpha": apart},
        sample_stats={"diverging": np.zeros((2, 500), bool), "tree_depth": np.full((2, 500), 3)},
    )
    (plain,) = [p for p in diagnostics.assess(idata, ["alpha"], 10).problems if "R-hat" in p]
    assert plain.endswith("(consider stronger priors on these parameters).")
    named = diagnostics.assess(idata, ["alpha"], 10, stronger_prior='priors="literature"').problems
    assert any('stronger priors on these parameters, such as priors="literature")' in p for p in named)
    assert any('weakly identified, such as priors="literature".' in p for p in named)
    # divergences away from any spread: the same prior is named among the remedies
    idata = _idata_with_divergences([700, 1500])
    (message,) = diagnostics.assess(idata, ["alpha_spread"], 10, stronger_prior='priors="literature"').problems
    assert 'tighter priors on the parameters that diverge, such as priors="literature" (arviz' in message
    assert bs.ScalingModel("chinchilla", priors="literature").priors.keys() >= {"alpha", "beta"}


def _idata_of_chains(shifts, seed=0):
    """Four chains of 500 draws of ``alpha`` (unit normal, each chain shifted) and of ``E`` per family."""
    rng = np.random.default_rng(seed)
    alpha = rng.standard_normal((4, 500)) + np.asarray(shifts)[:, None]
    e = rng.standard_normal((4, 500, 2)) + np.asarray(shifts)[:, None, None] * np.array([0.0, 1.0])
    return az.from_dict(
        posterior={"alpha": alpha, "E": e},
        sample_stats={"diverging": np.zeros((4, 500), bool), "tree_depth": np.full((4, 500), 3)},
        coords={"family": ["a", "b"]},
        dims={"E": ["family"]},
    )


def test_a_chain_in_another_mode_is_named_with_its_median():
    # one chain of four far from the others (a second mode): more draws will not join it, and the advice says so
    health = diagnostics.assess(_idata_of_chains([0.0, 0.0, 6.0, 0.0]), ["alpha", "E"], 10)
    (message,) = [p for p in health.problems if "R-hat" in p]
    assert "Chain 2 of 4 sits apart from the others (" in message, message
    assert "If more warmup does not bring it to the others" in message and "more draws will not join" in message
    # named by the worst parameter, which may be a group's: E[b] is shifted like alpha, E[a] is not
    worst = health.table["r_hat"].idxmax()
    assert worst in ("alpha", "E[b]") and f"({worst}: median 6.0" in message, message


def test_chains_slow_to_mix_keep_the_advice_to_run_longer():
    # chains that overlap but disagree (R-hat above 1.01): no chain sits apart
    health = diagnostics.assess(_idata_of_chains([0.0, 0.3, 0.6, -0.3]), ["alpha"], 10)
    (message,) = [p for p in health.problems if "R-hat" in p]
    assert "Run more warmup and draws" in message and "sits apart" not in message


def _chains(rho: float, shifts, draws: int = 1000, seed: int = 0) -> dict[str, np.ndarray]:
    """``len(shifts)`` AR(1) chains of one parameter (autocorrelation ``rho``, unit marginal sd), each
    shifted by its ``shifts`` entry, and a second parameter of independent draws."""
    rng = np.random.default_rng(seed)
    x = np.zeros((len(shifts), draws))
    x[:, 0] = rng.normal(size=len(shifts))
    for t in range(1, draws):
        x[:, t] = rho * x[:, t - 1] + np.sqrt(1 - rho**2) * rng.normal(size=len(shifts))
    return {"alpha": x + np.asarray(shifts)[:, None], "sigma": rng.gamma(4.0, 0.01, (len(shifts), draws))}


def _stats(chains: int, draws: int = 1000, steps: int = 7, divergent: int = 0) -> dict[str, np.ndarray]:
    diverging = np.zeros((chains, draws), dtype=bool)
    diverging[0, :divergent] = True
    return {"diverging": diverging, "n_steps": np.full((chains, draws), steps)}


def test_a_run_is_short_of_draws_only_where_more_draws_can_mend_it():
    short = lambda post, **stats: diagnostics.short_of_draws(post, _stats(4, **stats), ["alpha", "sigma"], 10)  # noqa: E731
    assert not short(_chains(0.0, [0, 0, 0, 0])), "independent draws: healthy, nothing to mend"
    # slow mixing (about 4 x 1000 x 0.05 / 1.95 = 100 effective draws of 400 wanted): more draws mend it
    assert short(_chains(0.95, [0, 0, 0, 0]))
    # chains a little apart (R-hat about 1.02): running on brings them together
    mild = _chains(0.5, [0, 0.3, 0, -0.3])
    assert 1.01 < diagnostics.convergence(az.convert_to_dataset(mild))["r_hat"].max() <= diagnostics.EXTEND_RHAT_MAX
    assert short(mild)
    # a chain in another mode: the same chains run on do not join it
    assert not short(_chains(0.95, [0, 0, 0, 3]))
    # divergences and saturated trees are not a matter of draws
    assert not short(_chains(0.95, [0, 0, 0, 0]), divergent=1)
    assert not short(_chains(0.95, [0, 0, 0, 0]), steps=1023)


def test_a_fit_short_of_draws_runs_its_chains_on(model, quickstart_runs, monkeypatch, tmp_path):
    asked = []

    def once(posterior, stats, var_names, max_tree_depth):  # short after the draws asked for, then not
        asked.append(np.shape(stats["diverging"]))
        return len(asked) == 1

    monkeypatch.setattr(fitting, "short_of_draws", once)
    fit = model.fit(quickstart_runs, seed=0, draws=300)
    assert asked == [(4, 300), (4, 600)]
    assert fit.idata.posterior.sizes["draw"] == 600 and fit.idata.log_likelihood.sizes["draw"] == 600
    # the first 300 draws are those of the run as asked: the chains ran on, they did not start again
    kept = model.fit(quickstart_runs, seed=0, draws=300, extend=0)
    assert len(asked) == 2, "extend=0: never asked"
    monkeypatch.setattr(runner, "EXTEND_MAX_VALUES", 4 * 300 * 100)  # a fit too large to run on: not asked either
    assert model.fit(quickstart_runs, seed=0, draws=300).idata.posterior.sizes["draw"] == 300 and len(asked) == 2
    for name in ("alpha", "E"):
        np.testing.assert_array_equal(fit.idata.posterior[name][:, :300], kept.idata.posterior[name])
    # ... and the next 300 are new draws (a chain may stay put at its first step), as well spread as the first
    later = fit.idata.posterior["alpha"][:, 300:].values
    assert np.isin(later, kept.idata.posterior["alpha"].values).mean() < 0.01
    assert 0.7 < later.std() / kept.idata.posterior["alpha"].values.std() < 1.4
    note = "the chains ran on to 600 draws each (300 asked)"
    assert fit.healthy and note in str(fit.health) and "ran on" not in str(kept.health)
    fit.save(tmp_path / "fit.nc")
    assert note in str(bs.load_fit(tmp_path / "fit.nc").health)


def test_extend_is_checked():
    with pytest.raises(ValueError, match="extend must be a whole number >= 0, got -1"):
        bs.ScalingModel("chinchilla").fit(pd.DataFrame({"N": [1e8], "D": [1e9], "loss": [3.0]}), extend=-1)


def test_the_reasons_for_many_unhealthy_fits_name_a_low_tail_ess():
    # a fit whose bulk ESS is fine and whose tail ESS is not: the clause says so (it used to report only the
    # worst bulk ESS, 900 here, which reads as healthy, and named no ESS problem)
    health = pd.DataFrame(
        {
            "divergences": [0, 0, 2],
            "max_rhat": [1.001, 1.002, 1.003],
            "min_ess_bulk": [900.0, 1200.0, 1500.0],
            "min_ess_tail": [310.0, 800.0, 1400.0],
            "tree_depth_saturation": [0.0, 0.0, 0.0],
        }
    )
    reasons = diagnostics.unhealthy_reasons(health, 400)
    assert reasons == "divergences in 1, ESS below 400 in 1 (lowest: tail 310)"
    assert diagnostics.unhealthy_reasons(health, 300) == "divergences in 1"
