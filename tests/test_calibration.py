"""Simulation-based calibration: every built-in law's ranks are uniform, and a broken model fails.

Each reduced study fits a few dozen simulated data sets with short chains: enough to
catch a gross miscalibration (the broken model below gives p ~ 1e-20), not a subtle one
(the full study is ``benchmarks/calibration_study.py``). The uniformity tests run at
:data:`ALPHA`, Bonferroni for about 50 p-values across this file at a family-wise false
alarm rate of 0.5%, so a correct model fails this file by chance with probability
about 1/200 (and the seeds are fixed, so it either always or never does).

Short chains on prior draws are often unhealthy (weakly identified laws: a tiny exponent
makes the prefactor and the irreducible term trade off), and the studies say so with a
SamplerWarning, which these tests expect.
"""

import numpy as np
import pandas as pd
import pytest

import bayescale as bs

ALPHA = 1e-4
SHORT = {"chains": 2, "warmup": 150, "draws": 150}
COMPUTE = pd.DataFrame({"C": np.geomspace(1e17, 1e21, 12)})
BENCHMARK = COMPUTE.assign(n_items=200)

pytestmark = [pytest.mark.slow, pytest.mark.filterwarnings("ignore::bayescale.SamplerWarning")]


def _one_input(law, **kwargs):
    return bs.ScalingModel(law, target="y", inputs={law.inputs[0]: "C"}, **kwargs)


CASES = {
    "power": (lambda: _one_input(bs.laws.PowerLaw("C")), COMPUTE),
    "saturating": (lambda: _one_input(bs.laws.SaturatingPowerLaw("C")), COMPUTE),
    "broken": (lambda: _one_input(bs.laws.BrokenPowerLaw("C")), pd.DataFrame({"C": np.geomspace(1e17, 1e21, 20)})),
    "sigmoid": (lambda: _one_input(bs.laws.SigmoidLaw("C")), COMPUTE),
    "rate_sigmoid": (
        lambda: _one_input(bs.laws.RateSigmoidLaw("C"), likelihood=bs.likelihoods.Binomial("n_items")),
        BENCHMARK,
    ),
    "accuracy": (lambda: _one_input(bs.laws.AccuracyLaw("C", chance=0.25)), COMPUTE),  # LogitNormal by default
    # the chain's second step, against task loss with ceiling 1: at 200 simulations it fails in the prior's corner
    # where every run is within ~1e-10 of accuracy 1 (stuck chains that warn; benchmarks/README.md), not here
    "accuracy_known_ceiling": (
        lambda: _one_input(bs.laws.AccuracyLaw("bpb", chance=0.25, rising=False, ceiling=1.0)),
        pd.DataFrame({"C": np.geomspace(0.5, 1.5, 12)}),
    ),
    "exponentiated": (
        lambda: _one_input(bs.laws.ExponentiatedPowerLaw("C"), likelihood=bs.likelihoods.Binomial("n_items")),
        BENCHMARK,
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_builtin_one_input_laws_are_calibrated(case):
    make, design = CASES[case]
    study = bs.calibration.sbc(make(), design, n_sims=20, seed=0, **SHORT)
    # only the Binomial laws' priors reach rates >= 1 (zero density in the model), and rarely
    assert study.rejected == 0 if not make().counts else study.rejected < 20
    p = study.pvalues()
    assert set(p.index) == set(make().posterior_names)
    assert (p > ALPHA).all(), p


def test_chinchilla_law_is_calibrated_on_the_quickstart_design(quickstart_runs):
    study = bs.calibration.sbc(bs.ScalingModel("chinchilla"), quickstart_runs[["N", "D"]], n_sims=20, seed=0, **SHORT)
    assert (study.pvalues() > ALPHA).all(), study.pvalues()


def test_hierarchical_model_is_calibrated():
    groups = pd.DataFrame({"C": np.tile(np.geomspace(1e17, 1e21, 6), 3), "family": np.repeat(["a", "b", "c"], 6)})
    model = bs.ScalingModel(bs.laws.SaturatingPowerLaw("C"), target="y", group="family", pooled=["alpha"], shared=["E"])
    study = bs.calibration.sbc(model, groups, n_sims=20, seed=0, **SHORT)
    p = study.pvalues()
    assert {"alpha[a]", "alpha[c]", "alpha_pop", "alpha_spread", "A[b]", "E", "sigma"} <= set(p.index)
    assert (p > ALPHA).all(), p


def test_a_noise_scale_per_group_is_calibrated():
    # the noise pooled across groups: its population and every group's scale pass SBC, and a coverage study
    # beyond the data draws each future row's risk in units of its own group's scale
    groups = pd.DataFrame({"C": np.tile(np.geomspace(1e17, 1e21, 6), 3), "family": np.repeat(["a", "b", "c"], 6)})
    model = bs.ScalingModel(
        bs.laws.SaturatingPowerLaw("C"), target="y", group="family", shared=["E", "A", "alpha"], pooled=["sigma"]
    )
    p = bs.calibration.sbc(model, groups, n_sims=20, seed=0, **SHORT).pvalues()
    assert {"sigma[a]", "sigma[c]", "sigma_pop", "sigma_spread", "alpha"} <= set(p.index)
    assert (p > ALPHA).all(), p
    future = pd.DataFrame({"C": [1e22, 1e23, 1e22], "family": ["a", "a", "c"]})
    study = bs.calibration.extrapolation_coverage(model, groups, future, n_sims=10, seed=0, **SHORT)
    assert study.inside.shape == (10, 3, len(study.levels))


@pytest.fixture(scope="module")
def broken_noise():
    """Data with the default residual scale (HalfNormal(0.2) on log y), fitted with one 20 times too small."""
    truth = _one_input(bs.laws.SaturatingPowerLaw("C"), likelihood=bs.likelihoods.Normal())
    broken = _one_input(bs.laws.SaturatingPowerLaw("C"), likelihood=bs.likelihoods.Normal(sigma_scale=0.01))
    return truth, broken


def test_a_noise_scale_fixed_too_small_fails_the_same_test(broken_noise):
    truth, broken = broken_noise
    study = bs.calibration.sbc(broken, COMPUTE, n_sims=20, seed=0, simulate_from=truth, **SHORT)
    p = study.pvalues()
    assert p["sigma"] < ALPHA and p.min() < ALPHA
    # too-narrow posteriors: the truth falls outside the central 50% interval far more often than half the time
    # (a calibrated model covers at most 5 of 20 with probability 0.021; here only the prior's draws of sigma
    # small enough for the broken prior are covered: 4 of the 20 draws of seed 0 are below 0.02)
    assert study.coverage([0.5]).loc["sigma", "0.5"] <= 0.25


def test_ranks_coverage_table_and_plot():
    study = bs.calibration.sbc(_one_input(bs.laws.PowerLaw("C")), COMPUTE, n_sims=20, seed=1, **SHORT)
    assert study.ranks.shape == (20, 3) and study.ranks.to_numpy().min() >= 0
    assert study.ranks.to_numpy().max() <= study.rank_draws == 99
    assert study.default_bins() == 4 and study.histogram().sum().eq(20).all()
    assert study.histogram(bins=2).shape == (2, 3)
    table = study.table()
    assert list(table.columns) == ["p_value", "rank_mean", "rank_sd", "coverage_90"]
    assert list(study.health.columns) == [
        "divergences",
        "max_rhat",
        "min_ess_bulk",
        "min_ess_tail",
        "tree_depth_saturation",
        "healthy",
    ]
    np.testing.assert_allclose(study.truth["alpha"].median(), 0.3, rtol=0.6)  # prior median 0.3
    fig = study.plot()
    assert len([ax for ax in fig.axes if ax.get_visible()]) == 3
    assert "SBCStudy(20 simulations, 3 parameters" in repr(study) and study.rejected == 0
    with pytest.raises(ValueError, match="bins must divide the 100 possible ranks"):
        study.pvalues(bins=3)
    with pytest.raises(KeyError, match="no parameters"):
        study.plot(names=["gamma"])


def test_same_seed_same_study():
    model = _one_input(bs.laws.PowerLaw("C"))
    a = bs.calibration.sbc(model, COMPUTE, n_sims=4, seed=3, **SHORT)
    b = bs.calibration.sbc(model, COMPUTE, n_sims=4, seed=3, **SHORT)
    c = bs.calibration.sbc(model, COMPUTE, n_sims=4, seed=4, **SHORT)
    pd.testing.assert_frame_equal(a.ranks, b.ranks)
    pd.testing.assert_frame_equal(a.truth, b.truth)
    assert not a.truth.equals(c.truth)


def test_extrapolation_coverage_is_nominal_and_fails_for_the_broken_model(broken_noise):
    truth, broken = broken_noise
    small, large = COMPUTE.iloc[:8], COMPUTE.iloc[8:]
    study = bs.calibration.extrapolation_coverage(truth, small, large, n_sims=30, seed=0, **SHORT)
    table = study.table()
    assert list(table.index) == ["0.5", "0.8", "0.9", "0.95"]
    # 4 levels at 3 standard errors each: a calibrated model fails by chance with probability about 1%
    assert (abs(table["coverage"] - table["nominal"]) <= 3 * table["se"]).all(), table
    assert study.by_row().shape == (4, 5)
    bad = bs.calibration.extrapolation_coverage(broken, small, large, n_sims=30, seed=0, simulate_from=truth, **SHORT)
    worse = bad.table()
    assert (worse["coverage"] < worse["nominal"] - 3 * worse["se"]).all(), worse


@pytest.mark.parametrize(
    ("call", "error", "message"),
    [
        (lambda m: bs.calibration.sbc(m, COMPUTE.to_numpy()), TypeError, "design must be a pandas DataFrame"),
        (lambda m: bs.calibration.sbc(m, COMPUTE.rename(columns={"C": "c"})), bs.DataError, "column 'C'"),
        (lambda m: bs.calibration.sbc(m, COMPUTE, n_sims=0), ValueError, "n_sims must be an integer >= 1"),
        (lambda m: bs.calibration.sbc(m, COMPUTE, seed=-1), ValueError, "seed must be an integer >= 0"),
        (lambda m: bs.calibration.sbc(m, COMPUTE, rank_draws=5000), ValueError, "rank_draws must be an integer"),
        (lambda m: bs.calibration.sbc(m, COMPUTE, batch_size=0), ValueError, "batch_size must be a positive"),
        (lambda m: bs.calibration.sbc(m, COMPUTE, step_size=1), TypeError, "unknown NUTS options"),
        (
            lambda m: bs.calibration.sbc(m, COMPUTE, simulate_from=bs.ScalingModel(bs.laws.PowerLaw("C"))),
            ValueError,
            "must use the same columns",
        ),
        (
            lambda m: bs.calibration.extrapolation_coverage(m, COMPUTE, COMPUTE.iloc[:0]),
            bs.DataError,
            "future must be a non-empty DataFrame",
        ),
        (
            lambda m: bs.calibration.extrapolation_coverage(m, COMPUTE, COMPUTE, levels=[0.9, 1.0]),
            ValueError,
            r"levels must be in \(0, 1\)",
        ),
    ],
)
def test_study_errors_come_before_any_fit(call, error, message):
    with pytest.raises(error, match=message):
        call(_one_input(bs.laws.PowerLaw("C")))


def test_binomial_design_needs_the_trials_column_and_shared_parameters():
    model = _one_input(bs.laws.RateSigmoidLaw("C"), likelihood=bs.likelihoods.Binomial("n_items"))
    with pytest.raises(bs.DataError, match="n_items"):
        bs.calibration.sbc(model, COMPUTE)
    other = _one_input(bs.laws.ExponentiatedPowerLaw("C"), likelihood=bs.likelihoods.Binomial("n_items"))
    with pytest.raises(ValueError, match="shares no parameter names"):
        bs.calibration.sbc(model, BENCHMARK, simulate_from=other)


def test_a_target_column_in_the_design_only_sets_the_reference():
    model = _one_input(bs.laws.PowerLaw("C"))
    design = COMPUTE.assign(y=np.linspace(3.0, 2.0, 12))  # the future rows have no target: nothing to concatenate
    study = bs.calibration.extrapolation_coverage(model, design.iloc[:8], COMPUTE.iloc[8:], n_sims=4, seed=0, **SHORT)
    assert study.inside.shape == (4, 4, 4) and len(study.health) == 4
