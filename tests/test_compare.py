"""Comparing two recipes fitted in one model: differences, P(better), crossover, compute multiplier."""

import numpy as np
import pandas as pd
import pytest

import bayescale as bs
from tests.conftest import simulate

LAW = bs.laws.SaturatingPowerLaw("C")
C = np.geomspace(1e18, 1e21, 16)
# the candidate starts worse (higher loss) and falls faster: the curves cross at C ~ 1.8e19
BASELINE = {"E": 1.8, "A": 3.0 * 1e18**0.25, "alpha": 0.25}
CANDIDATE = {"E": 1.8, "A": 4.0 * 1e18**0.35, "alpha": 0.35}


def crossing_point():
    # E cancels: 3 C^-0.25 * 1e18^0.25 = 4 C^-0.35 * 1e18^0.35  =>  (C / 1e18)^0.1 = 4 / 3
    return 1e18 * (4 / 3) ** 10


def two_recipes(candidate, seed):
    frames = [
        simulate(LAW, BASELINE, {"C": C}, sigma=0.005, seed=seed).assign(recipe="baseline"),
        simulate(LAW, candidate, {"C": C}, sigma=0.005, seed=seed + 1).assign(recipe="candidate"),
    ]
    return pd.concat(frames, ignore_index=True).rename(columns={"y": "loss"})


def fit_recipes(df):
    model = bs.ScalingModel(LAW, group="recipe", shared=["E"], independent=["A", "alpha"])
    return model.fit(df, seed=0)


@pytest.fixture(scope="module")
def crossing_fit():
    return fit_recipes(two_recipes(CANDIDATE, seed=1))


@pytest.fixture(scope="module")
def crossing(crossing_fit):
    """The laws alone (risk=False): the simulated recipes follow the law exactly, at every scale."""
    return crossing_fit.compare(candidate="candidate", baseline="baseline", risk=False)


def test_a_crossover_beyond_the_data_is_less_certain_than_one_inside(crossing_fit, crossing):
    """The same two recipes fitted on C <= 1e21: inside the data the risk changes nothing, beyond it
    the difference and the crossover widen (each recipe's curve may drift on its own there)."""
    risky = crossing_fit.compare(candidate="candidate", baseline="baseline")
    inside = [c.at(C=[3e20]).interval(0.9).set_index("quantity").loc["difference"] for c in (risky, crossing)]
    assert inside[0]["lower"] == inside[1]["lower"] and inside[0]["upper"] == inside[1]["upper"]
    beyond = [c.at(C=[1e23]).interval(0.9).set_index("quantity").loc["difference"] for c in (risky, crossing)]
    assert beyond[0]["upper"] - beyond[0]["lower"] > 2 * (beyond[1]["upper"] - beyond[1]["lower"])
    # a crossover inside the data keeps its interval; one two decades beyond it comes out less certain
    near, law_near = risky.crossover(1e19, 1e21), crossing.crossover(1e19, 1e21)
    assert near["lower"] == law_near["lower"] and near["upper"] == law_near["upper"]
    late = {**CANDIDATE, "A": 6.0 * 1e18**0.35}  # crosses at (C / 1e18)^0.1 = 2: C = 1.0e21, beyond C <= 1e20
    far_pair = fit_recipes(two_recipes(late, seed=1).query("C <= 1e20"))
    far, law_far = (far_pair.compare("candidate", "baseline", risk=r).crossover(1e18, 1e24) for r in (True, False))
    assert 3e20 < law_far["median"] < 3e21
    assert np.log(far["upper"] / far["lower"]) > np.log(law_far["upper"] / law_far["lower"])


def test_recovers_the_winner_and_the_crossover(crossing):
    p = crossing.probability_better(C=[1e18, 1e23])["probability_better"].to_numpy()
    assert p[0] < 0.01 and p[1] > 0.99  # worse at small scale, better at large
    cross = crossing.crossover(1e18, 1e23)
    assert cross["probability"] > 0.99
    assert cross["lower"] < crossing_point() < cross["upper"]
    exponent = crossing.parameter_difference("alpha")
    assert exponent["lower"] < 0.10 < exponent["upper"] and exponent["probability_positive"] > 0.99
    with pytest.raises(ValueError, match="'E' is shared by all recipes"):
        crossing.parameter_difference("E")


def test_difference_and_compute_multiplier_match_the_truth(crossing):
    at = crossing.at(C=[1e22]).interval(0.9).set_index("quantity")
    true_base = float(LAW.mean(BASELINE, C=1e22))
    true_cand = float(LAW.mean(CANDIDATE, C=1e22))
    assert at.loc["difference", "lower"] < true_cand - true_base < at.loc["difference", "upper"] < 0
    # the candidate at k C matches the baseline at C: solve the truth the same way, with numpy
    k = crossing.compute_multiplier(C=[1e22]).interval(0.9).iloc[0]
    grid = np.geomspace(1e-3, 1e3, 200_001)
    truth = grid[np.argmin(np.abs(np.asarray(LAW.mean(CANDIDATE, C=1e22 * grid)) - true_base))]
    assert k["lower"] < truth < k["upper"] < 1


def test_no_difference_gives_even_odds():
    """Under no difference P(better) is uniform across data sets (if calibrated): mean 0.5, and the 90%
    interval of the difference covers 0 in about 90% of them. Ten data sets: the mean is within 3 SE
    (0.29 / sqrt(10)) of 0.5, and at least 7 of 10 intervals cover 0 (binomial(10, 0.9): P(< 7) = 1.3%)."""
    probabilities, covers = [], []
    for seed in range(10):
        same = fit_recipes(two_recipes(BASELINE, seed=100 + 2 * seed)).compare("candidate", "baseline")
        probabilities.append(same.probability_better(C=[1e22])["probability_better"][0])
        diff = same.at(C=[1e22]).interval(0.9).set_index("quantity").loc["difference"]
        covers.append(diff["lower"] < 0 < diff["upper"])
    assert abs(np.mean(probabilities) - 0.5) < 3 * 0.29 / np.sqrt(10)
    assert sum(covers) >= 7


def test_comparison_errors(crossing, small_fit):
    with pytest.raises(ValueError, match="compare needs a fit with a group column"):
        small_fit.compare("a", "b")
    with pytest.raises(
        ValueError, match=r"candidate 'tuned' is not a fitted recipe; fitted: \['baseline', 'candidate'\]"
    ):
        crossing.fit.compare("tuned", "baseline")
    with pytest.raises(TypeError, match=r"give the scales as keywords \['C'\]"):
        crossing.at(N=1e9)
    with pytest.raises(ValueError, match="C must be positive finite numbers"):
        crossing.at(C=[-1.0])


def test_comparison_plot(crossing):
    import matplotlib.pyplot as plt

    fig = bs.plot.comparison(crossing, 1e18, 1e23)
    top, bottom, twin = fig.axes
    assert [t.get_text() for t in top.get_legend().get_texts()] == ["baseline (baseline)", "candidate (candidate)"]
    better = twin.get_lines()[0].get_ydata()
    assert better[0] < 0.01 and better[-1] > 0.99  # P(better) goes from 0 to 1 across the crossover
    plt.close(fig)


def test_issue_usage_works_as_written():
    # two recipes measured as an error rate that falls with compute; mammut starts worse and falls faster
    law = bs.laws.PowerLaw("C")
    c = np.geomspace(1e9, 1e12, 12)
    clip = simulate(law, {"A": 0.6 * 1e9**0.1, "alpha": 0.1}, {"C": c}, sigma=0.01, seed=3).assign(recipe="clip")
    mammut = simulate(law, {"A": 0.7 * 1e9**0.14, "alpha": 0.14}, {"C": c}, sigma=0.01, seed=4).assign(recipe="mammut")
    df = pd.concat([clip, mammut], ignore_index=True).rename(columns={"y": "error"})

    model = bs.ScalingModel(bs.laws.PowerLaw("C"), target="error", inputs={"C": "C"}, group="recipe")
    # by default both parameters are pooled, and a population of two recipes is barely identified: the first
    # run diverges at small spreads, and the fit samples again with smaller steps, without a warning (the
    # suite makes warnings errors). Each recipe's own parameters, all the comparison uses, are well measured
    fit = model.fit(df, seed=0)
    assert "sampled twice" in str(fit.health)
    res = fit.compare(baseline="clip", candidate="mammut", C=np.geomspace(1e9, 1e13, 30))
    table = res.table()
    crossing = res.crossover()

    assert list(table.columns[:4]) == ["C", "diff_median", "diff_lower", "diff_upper"]
    assert len(table) == 30 and (table["diff_lower"] <= table["diff_upper"]).all()
    assert table["prob_better"].iloc[0] < 0.05 and table["prob_better"].iloc[-1] > 0.95
    true_cross = 1e9 * (0.7 / 0.6) ** (1 / 0.04)  # 0.6 (C/1e9)^-0.1 = 0.7 (C/1e9)^-0.14
    assert crossing["probability"] > 0.95 and crossing["lower"] < true_cross < crossing["upper"]
