"""The literature's laws (Kaplan, over-training, data-constrained, learning-rate schedule, Farseer), ties, priors.

Each law's mean is checked against the paper's formula written out directly; recovery of
simulated truth uses the criterion of ``tests/test_recovery.py``. Their simulation-based
calibration (200 simulations each) is in ``benchmarks/calibration_study.py``.
"""

import warnings

import numpy as np
import pandas as pd
import pytest

import bayescale as bs
from tests.conftest import simulate
from tests.test_recovery import assert_recovers

N, R = (a.ravel() for a in np.meshgrid(np.geomspace(3e7, 3e10, 9), [5.0, 10, 20, 40, 80], indexing="ij"))


def test_the_issue_usage_as_written():
    laws = bs.laws.get("kaplan"), bs.laws.get("data_constrained"), bs.laws.get("lr_schedule")
    assert [law.name for law in laws] == ["kaplan", "data_constrained", "lr_schedule"]
    model = bs.ScalingModel(
        bs.laws.get("overtraining"), target="loss", inputs={"N": "N", "D": "D"}, priors="literature"
    )
    assert model.parameter_names == ("E", "A", "alpha", "B", "sigma")
    assert model.prior("alpha") == bs.priors.LogNormal(0.339, 0.25)
    assert model.prior("E") == model.law.parameter("E").prior  # levels keep the data-relative defaults


def test_means_match_the_papers_formulas():
    n, d, s = np.geomspace(1e8, 1e11, 4), np.geomspace(1e9, 1e13, 4), np.geomspace(1e2, 1e6, 4)
    kaplan = {"A": 6.4e13**0.076, "alpha_N": 0.076, "B": 1.8e13**0.103, "alpha_D": 0.103}
    direct = ((6.4e13 / n) ** (0.076 / 0.103) + 1.8e13 / d) ** 0.103
    np.testing.assert_allclose(bs.laws.get("kaplan").mean(kaplan, N=n, D=d), direct, rtol=1e-12)
    steps = {"A": 6.5e13**0.077, "alpha_N": 0.077, "B": 2.1e3**0.76, "alpha_S": 0.76}
    direct = (6.5e13 / n) ** 0.077 + (2.1e3 / s) ** 0.76
    np.testing.assert_allclose(bs.laws.get("kaplan_steps").mean(steps, N=n, S=s), direct, rtol=1e-12)
    over = {"E": 1.8, "A": 480.0, "alpha": 0.34, "B": 2000.0}
    eta, c, m = 0.17, 6 * n * d, d / n
    gadre = 1.8 + (480.0 * 6**eta * m**eta + 2000.0 * 6**eta * m**-eta) * c**-eta
    np.testing.assert_allclose(bs.laws.get("overtraining").mean(over, N=n, D=d), gadre, rtol=1e-12)
    dc = {"E": 1.87, "A": 521.0, "alpha": 0.353, "B": 1488.0, "beta": 0.353, "R_D": 15.4}
    u = d / np.array([0.5, 1.0, 4.0, 100.0])  # half an epoch (U > D counts as D), one, 4 and 100 epochs
    repeats = np.maximum(d / u - 1, 0)
    effective = np.minimum(u, d) * (1 + 15.4 * (1 - np.exp(-repeats / 15.4)))
    direct = 1.87 + 521.0 * n**-0.353 + 1488.0 * effective**-0.353
    np.testing.assert_allclose(bs.laws.get("data_constrained").mean(dc, N=n, D=d, U=u), direct, rtol=1e-12)
    s1, s2 = np.array([0.1, 1.0, 3.0, 10.0]), np.array([0.0, 0.01, 0.2, 1.0])
    lr = {"L0": 2.0, "A": 0.5, "alpha": 0.5, "C": 0.1}
    direct = 2.0 + 0.5 * s1**-0.5 - 0.1 * s2
    np.testing.assert_allclose(bs.laws.get("lr_schedule").mean(lr, S1=s1, S12=s1 + s2), direct, rtol=1e-12)
    far = {"E": 1.8, "A": 0.4, "alpha": 0.34, "B": 0.5, "beta": 0.3, "kappa": 0.1, "gamma": 0.05}
    nn, dd = n / 3e8, d / 1e10  # pivots N0 = 3e8, D0 = 1e10
    direct = 1.8 + 0.4 * nn**-0.34 + 0.5 * nn**-0.1 * dd ** -(0.3 * nn**0.05)
    np.testing.assert_allclose(bs.laws.Farseer(N0=3e8, D0=1e10).mean(far, N=n, D=d), direct, rtol=1e-12)


def test_lr_areas_follow_the_momentum_of_the_decreases():
    steps = np.arange(1, 301)
    lr = np.r_[np.linspace(0.1, 1.0, 100), np.full(100, 1.0), np.linspace(1.0, 0.0, 100)]
    areas = bs.laws.lr_areas(steps, lr, decay=0.9)
    np.testing.assert_allclose(areas["S1"], np.cumsum(lr))
    fall = np.r_[np.zeros(200), np.full(100, 1.0 / 99)]
    fall[200] = 0.0  # the first cool-down step repeats the peak (linspace starts at 1.0)
    m = np.zeros(300)
    for i in range(1, 300):
        m[i] = 0.9 * m[i - 1] + fall[i]
    np.testing.assert_allclose(areas["S2"], np.cumsum(m), atol=1e-12)
    assert (areas["S2"].iloc[:200] == 0).all()  # warmup and the constant phase add nothing
    sparse = bs.laws.lr_areas(steps[::50], lr[::50], decay=0.9)  # logged every 50 steps: interpolated
    assert list(sparse.index) == list(steps[::50]) and list(sparse.columns) == ["S1", "S2", "S12"]
    with pytest.raises(ValueError, match="steps must be increasing"):
        bs.laws.lr_areas([3, 2, 1], [1.0, 1.0, 1.0])
    with pytest.raises(ValueError, match=r"lr must be finite and >= 0; it is not at positions \[1\]"):
        bs.laws.lr_areas([1, 2], [1.0, np.nan])


def test_a_tied_law_is_the_law_with_the_parameter_shared():
    """``tie={"beta": "alpha"}`` on Chinchilla's law samples exactly what the over-training law samples."""
    truth = {"E": 1.9, "A": 600.0, "alpha": 0.34, "B": 1500.0}
    df = simulate(bs.laws.get("overtraining"), truth, {"N": N, "D": N * R}, sigma=0.01, seed=1, nu=4)
    df = df.rename(columns={"y": "loss"})
    tied = bs.ScalingModel("chinchilla", tie={"beta": "alpha"})
    assert tied.parameter_names == ("E", "A", "alpha", "B", "sigma")
    assert tied.law.formula == "E + A N^-alpha + B D^-beta with beta = alpha"
    fit = tied.fit(df, seed=0)
    same = bs.ScalingModel("overtraining").fit(df, seed=0)
    for name in ("E", "A", "alpha", "B", "sigma"):
        np.testing.assert_array_equal(fit.draws(name), same.draws(name))
    assert fit.healthy, str(fit.health)
    assert_recovers(fit, truth, sigma=0.01)
    n_opt = fit.optimal(C=1e22).draws("N")[:, 0]  # the closed form of the base law, with beta = alpha
    np.testing.assert_allclose(n_opt, same.optimal(C=1e22).draws("N")[:, 0])
    rebuilt = bs.ScalingModel.from_config(tied.config())
    assert rebuilt.law.tie == {"beta": "alpha"} and rebuilt.parameter_names == tied.parameter_names


def test_a_fixed_parameter_is_not_sampled():
    law = bs.laws.Chinchilla()
    fixed = bs.ScalingModel(law, tie={"E": 1.69, "beta": 0.28})
    assert fixed.parameter_names == ("A", "alpha", "B", "sigma")
    p = {"A": 406.4, "alpha": 0.34, "B": 410.7}
    hoffmann = p | {"E": 1.69, "beta": 0.28}
    assert float(fixed.law.mean(p, N=7e10, D=1.4e12)) == pytest.approx(float(law.mean(hoffmann, N=7e10, D=1.4e12)))
    user = fixed.law.to_user(fixed.law.to_reference(p, {"N": 20.0, "D": 23.0}), {"N": 20.0, "D": 23.0})
    assert set(user) >= {"A", "alpha", "B"} and "beta" not in user and "E" not in user
    np.testing.assert_allclose([user["A"], user["B"]], [406.4, 410.7])


@pytest.mark.parametrize(
    ("tie", "error", "message"),
    [
        ({"gamma": "alpha"}, KeyError, "tie: law 'chinchilla' has no parameter 'gamma'"),
        ({"beta": "delta"}, KeyError, "no parameter 'delta'"),
        ({"beta": "alpha", "alpha": "beta"}, ValueError, "tie a parameter to a free one"),
        ({"beta": -0.3}, ValueError, "'beta' is positive; fix it to a number > 0"),
        ({"beta": True}, TypeError, "must be a parameter name or a finite number"),
        ({"beta": float("nan")}, TypeError, "must be a parameter name or a finite number"),
    ],
)
def test_bad_ties_are_named(tie, error, message):
    with pytest.raises(error, match=message):
        bs.ScalingModel("chinchilla", tie=tie)


def test_literature_priors_errors_and_mixing():
    with pytest.raises(ValueError, match=r"law 'lr_schedule' has no literature priors; laws that have them: \["):
        bs.ScalingModel("lr_schedule", priors="literature")
    with pytest.raises(ValueError, match="priors must be a mapping of parameter -> prior or 'literature'"):
        bs.ScalingModel("chinchilla", priors="published")
    with pytest.raises(KeyError, match="priors: law 'chinchilla' has no parameter 'beta'"):
        bs.ScalingModel("chinchilla", tie={"beta": "alpha"}, priors=bs.laws.literature_priors("chinchilla"))
    tied = bs.ScalingModel("chinchilla", tie={"beta": "alpha"}, priors="literature")
    assert set(tied.priors) == {"alpha"}  # the tied parameter's prior is dropped
    mixed = bs.laws.literature_priors("data_constrained") | {"E": bs.priors.LogNormal(1.8, 0.1)}
    assert set(bs.ScalingModel("data_constrained", priors=mixed).priors) == {"alpha", "beta", "R_D", "E"}


def test_three_runs_lean_on_the_literature_priors_and_default_priors_refuse_them(quickstart_runs, tmp_path):
    runs = quickstart_runs.sort_values("N").iloc[[0, 30, 59]]  # three runs for six parameters
    with pytest.raises(bs.DataError, match=r"3 rows but the model has 6 parameters.*priors=\"literature\""):
        bs.ScalingModel("chinchilla").fit(runs, seed=0)
    model = bs.ScalingModel("chinchilla", priors="literature")
    with pytest.warns(bs.DataWarning, match="3 rows for 6 parameters: the fit leans on the priors you gave") as w:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", bs.SamplerWarning)  # three runs: the posterior is the prior's shape
            fit = model.fit(runs, seed=0, chains=2, warmup=300, draws=300, extend=0)
    assert w[0].filename == __file__  # the warning points at the user's call
    alpha = fit.draws("alpha")
    assert 0.2 < np.median(alpha) < 0.6 and np.isfinite(alpha).all()  # the literature's 0.35, not the default's
    fit.save(tmp_path / "three.nc")
    assert bs.load_fit(tmp_path / "three.nc").model.informed  # a refit of the loaded model still may
    assert bs.ScalingModel("chinchilla", priors={"E": bs.priors.LogNormal(1.8, 0.2)}).informed  # your own, too


def test_an_input_on_another_inputs_scale_cannot_have_its_own_reference():
    with pytest.raises(ValueError, match="centres 'U' on the reference scale of 'D'; set that one instead"):
        bs.ScalingModel("data_constrained", reference={"U": 1e10})


def test_a_law_with_pivots_centres_its_inputs_itself():
    law = bs.laws.Farseer(N0=3e8, D0=1e10)
    with pytest.raises(ValueError, match=r"centres 'N' on its own pivot \(N0=3e\+08\); give the law another pivot"):
        bs.ScalingModel(law, reference={"N": 1e9})
    for bad in (0.0, -1.0, float("inf"), True, "1e9"):
        with pytest.raises(ValueError, match=f"N0 must be a finite number > 0, got {bad!r}"):
            bs.laws.Farseer(N0=bad)
    model = bs.ScalingModel(law)
    assert bs.ScalingModel.from_config(model.config()).law == law
    df = pd.DataFrame({"N": N, "D": N * R, "loss": 3.0 - 0.1 * np.log10(N)})
    assert model.validate(df) is not None and bs.laws.Chinchilla().pivots == {}


def test_recovers_a_data_exponent_that_drifts_with_model_size():
    # 9 sizes x 5 token counts, the data exponent 0.25 at 3e7 parameters and 0.35 at 3e10
    truth = {"E": 1.8, "A": 0.6, "alpha": 0.34, "B": 0.5, "beta": 0.3, "kappa": 0.1, "gamma": 0.05}
    law = bs.laws.Farseer()
    df = simulate(law, truth, {"N": N, "D": N * R}, sigma=0.005, seed=1, nu=4)
    fit = bs.ScalingModel(law).fit(df.rename(columns={"y": "loss"}), seed=0)
    assert fit.healthy, str(fit.health)
    assert_recovers(fit, truth, sigma=0.005)
    assert fit.summary().loc["gamma", "lower"] > 0  # the drift is told apart from Chinchilla's law


def test_recovers_the_data_constrained_law_across_epochs():
    truth = {"E": 1.87, "A": 521.0, "alpha": 0.353, "B": 1488.0, "beta": 0.353, "R_D": 15.4}
    n, d, epochs = (
        a.ravel()
        for a in np.meshgrid(np.geomspace(1e8, 1e10, 5), np.geomspace(1e10, 3e11, 4), [1.0, 2, 4, 10, 30, 100])
    )
    df = simulate(bs.laws.get("data_constrained"), truth, {"N": n, "D": d, "U": d / epochs}, sigma=0.01, seed=1, nu=4)
    fit = bs.ScalingModel("data_constrained").fit(df.rename(columns={"y": "loss"}), seed=0)
    assert fit.healthy, str(fit.health)
    assert_recovers(fit, truth, sigma=0.01)
    assert fit.model.config()["reference"] == {}  # U follows D's reference; nothing stored for it


def test_recovers_kaplans_law():
    truth = {"A": 6.4e13**0.076, "alpha_N": 0.076, "B": 1.8e13**0.103, "alpha_D": 0.103}
    df = simulate(bs.laws.get("kaplan"), truth, {"N": N, "D": N * R}, sigma=0.01, seed=1, nu=4)
    fit = bs.ScalingModel("kaplan").fit(df.rename(columns={"y": "loss"}), seed=0)
    assert fit.healthy, str(fit.health)
    assert_recovers(fit, truth, sigma=0.01)


def test_recovers_the_learning_rate_schedule_law_from_checkpoints():
    frames = []
    for total in (2000, 4000, 8000):  # warmup, constant rate, linear cool-down over the last 20%
        steps = np.arange(1, total + 1)
        cool = np.clip((steps - 0.8 * total) / (0.2 * total), 0, 1)
        frames.append(bs.laws.lr_areas(steps, 1e-3 * np.minimum(steps / 200, 1) * (1 - 0.9 * cool)).iloc[199::100])
    areas = pd.concat(frames)
    truth = {"L0": 2.5, "A": 0.3, "alpha": 0.5, "C": 0.4}
    df = simulate(
        bs.laws.get("lr_schedule"),
        truth,
        {"S1": areas["S1"].to_numpy(), "S12": areas["S12"].to_numpy()},
        sigma=0.005,
        seed=2,
        nu=4,
    )
    fit = bs.ScalingModel("lr_schedule").fit(df.rename(columns={"y": "loss"}), seed=0)
    assert fit.healthy, str(fit.health)
    assert_recovers(fit, truth, sigma=0.005)


def test_a_law_with_its_own_extrapolation_risk_gets_it_by_default():
    assert bs.ScalingModel("farseer").discrepancy == bs.discrepancy.Drift(rate=4.17, rate_sd=0.70, length=0.5)
    assert bs.ScalingModel("chinchilla").discrepancy == bs.discrepancy.Drift()
    tied = bs.ScalingModel("farseer", tie={"gamma": 0.0})
    assert tied.discrepancy == bs.ScalingModel("farseer").discrepancy
    assert bs.ScalingModel("farseer", discrepancy=bs.discrepancy.Drift()).discrepancy == bs.discrepancy.Drift()
