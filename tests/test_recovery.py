"""Recovery of known parameters from simulated runs (data simulated here in NumPy, not by the model).

Recovery: every law parameter's 90% equal-tailed interval contains the truth even after
moving both endpoints inward by 3 Monte Carlo standard errors of those quantiles (ArviZ
``mcse(method="quantile")``), so a pass is not an accident of Monte Carlo noise. The
noise scale ``sigma`` is checked at 99%: with five or six parameters each at 90%, a
calibrated posterior misses one of them on about half of all data sets, and the rate
of misses is what simulation-based calibration checks (``tests/test_calibration.py``).
"""

import arviz as az
import numpy as np

import bayescale as bs
from tests.conftest import simulate


def assert_recovers(fit, truth, sigma, level=0.9):
    post = fit.idata.posterior
    for name, value in (truth | {"sigma": sigma}).items():
        at = 0.99 if name == "sigma" else level
        lo_p, hi_p = (1 - at) / 2, (1 + at) / 2
        lower, upper = np.quantile(post[name].values, [lo_p, hi_p])
        mc_lower = float(az.mcse(post[name].values, method="quantile", prob=lo_p))
        mc_upper = float(az.mcse(post[name].values, method="quantile", prob=hi_p))
        assert lower + 3 * mc_lower < value < upper - 3 * mc_upper, (
            f"{name}: truth {value:g} outside [{lower:g}, {upper:g}] (MCSE {mc_lower:.2g}, {mc_upper:.2g})"
        )


def test_recovers_chinchilla_law():
    """Models up to 3e10 parameters, as Chinchilla's. Up to 4e9 E is weakly identified (its posterior has a long
    tail towards small E, large A and small alpha) and the default fit was healthy for 3 of 6 seeds (tail ESS, R-hat
    1.01-1.06), for either chain method; up to 3e10, for 5 of 6 (one had R-hat 1.013 and a divergence)."""
    law = bs.laws.Chinchilla()
    truth = {"E": 1.9, "A": 600.0, "alpha": 0.36, "B": 1500.0, "beta": 0.33}
    n, r = (a.ravel() for a in np.meshgrid(np.geomspace(3e7, 3e10, 9), [5.0, 10, 20, 40, 80], indexing="ij"))
    df = simulate(law, truth, {"N": n, "D": n * r}, sigma=0.01, seed=11, nu=4).rename(columns={"y": "loss"})
    fit = bs.ScalingModel(law).fit(df, seed=0)
    assert fit.healthy, str(fit.health)
    assert_recovers(fit, truth, sigma=0.01)


def test_recovers_saturating_power_law_in_compute():
    law = bs.laws.SaturatingPowerLaw("C")
    truth = {"E": 2.1, "A": 2.5 * 1e18**0.28, "alpha": 0.28}
    c = np.geomspace(1e18, 1e22, 30)
    df = simulate(law, truth, {"C": c}, sigma=0.008, seed=5).rename(columns={"y": "loss"})
    fit = bs.ScalingModel(law, likelihood=bs.likelihoods.Normal()).fit(df, seed=0)
    assert fit.healthy, str(fit.health)
    assert_recovers(fit, truth, sigma=0.008)


def test_recovers_pure_power_law_in_parameters():
    law = bs.laws.PowerLaw("N")
    truth = {"A": 11.0, "alpha": 0.076}  # Kaplan et al.'s exponent for N
    df = simulate(law, truth, {"N": np.geomspace(1e6, 1e9, 25)}, sigma=0.02, seed=3, nu=4).rename(columns={"y": "loss"})
    fit = bs.ScalingModel(law).fit(df, seed=0)
    assert fit.healthy, str(fit.health)
    assert_recovers(fit, truth, sigma=0.02)


def test_extrapolation_interval_contains_the_true_curve():
    """Fit on small runs, predict a 20x larger one: the 90% mean-curve interval holds the truth."""
    law = bs.laws.Chinchilla()
    truth = {"E": 1.8, "A": 450.0, "alpha": 0.34, "B": 2000.0, "beta": 0.36}
    n, r = (a.ravel() for a in np.meshgrid(np.geomspace(2e7, 1e9, 8), [5.0, 10, 20, 40], indexing="ij"))
    df = simulate(law, truth, {"N": n, "D": n * r}, sigma=0.01, seed=2, nu=4).rename(columns={"y": "loss"})
    # 8 sizes up to 1B leave E, A and alpha loosely tied (min ESS ~350 of 4,000 draws): take 8,000. With
    # 1,000 warmup iterations 1 fit in 8 (seeds 0-7) had a chain still in E's tail (R-hat 1.013-1.046, which
    # seed depends on the CPU's rounding); with 2,000, R-hat <= 1.007 and min ESS >= 998 in all 8
    fit = bs.ScalingModel(law).fit(df, seed=0, warmup=2000, draws=2000)
    target = {"N": 2e10, "D": 4e11}
    table = fit.predict(**target).interval(0.9, kind="mean")
    true_loss = float(law.mean(truth, **target))
    assert table["lower"][0] < true_loss < table["upper"][0]


def test_recovers_chinchilla_law_from_ten_thousand_runs():
    """A 10,000-run sweep: the posterior is ~100x narrower than the prior's box in every direction. From random
    starts the chains were still creeping along the law's curved ridge when warmup ended (R-hat 1.6, min ESS ~0,
    4 minutes); started at the mode (the default, ``init="mode"``) the fit is healthy and takes ~20 s here."""
    law = bs.laws.Chinchilla()
    truth = {"E": 1.8, "A": 400.0, "alpha": 0.34, "B": 1500.0, "beta": 0.28}
    rng = np.random.default_rng(0)
    n = np.exp(rng.uniform(np.log(5e7), np.log(5e9), 10_000))
    d = n * np.exp(rng.uniform(np.log(5.0), np.log(80.0), n.size))
    df = simulate(law, truth, {"N": n, "D": d}, sigma=0.01, seed=1, nu=4)
    fit = bs.ScalingModel(law).fit(df.rename(columns={"y": "loss"}), seed=0, warmup=500, draws=500)
    assert fit.healthy, str(fit.health)
    assert_recovers(fit, truth, sigma=0.01)
