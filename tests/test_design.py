"""``fit.next_runs``: which run narrows a target's interval the most per unit of compute."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import pandas as pd
import pytest

import bayescale as bs
from bayescale.results import design
from bayescale.results.design import DesignWarning

TARGET = {"N": 7e10, "D": 1.4e12}


def test_contract_usage(small_fit):
    fit = small_fit
    cand = pd.DataFrame({"N": [4e8, 1e9, 2e9], "D": [8e9, 2e10, 4e10]})
    table = fit.next_runs(cand, target={"N": 7e10, "D": 1.4e12})
    table.head()  # one row per candidate: expected width after, reduction per FLOP, rank

    assert len(table) == 3 and list(table.index) == list(cand.index)
    expected = [
        "N",
        "D",
        "flops",
        "width_now",
        "width_after",
        "reduction",
        "mc_se",
        "reduction_per_flop",
        "ess",
        "rank",
    ]
    assert list(table.columns) == expected
    np.testing.assert_allclose(table["flops"], 6 * cand["N"] * cand["D"])
    assert sorted(table["rank"]) == [1, 2, 3]
    # the interval of the target's prediction without noise: the law and, 1.4 decades beyond the runs, its risk
    interval = fit.predict(pd.DataFrame([TARGET])).interval(0.9, kind="curve").iloc[0]
    np.testing.assert_allclose(table["width_now"], interval["upper"] - interval["lower"], rtol=0.05)  # thinned draws
    assert (table["width_after"] < table["width_now"]).all()  # a run never widens the expected interval
    assert (table["reduction"] > 2 * table["mc_se"]).all()
    assert (table["ess"] > 0.5 * 1000).all()  # one run moves 60 runs' posterior by little: reweighting holds


def test_a_run_near_the_target_narrows_it_more_than_one_among_the_data(small_fit):
    cand = pd.DataFrame({"N": [1e8, 3e10, 7e10], "D": [2e9, 6e11, 1.4e12]})
    table = small_fit.next_runs(cand, target=TARGET)
    assert table["reduction"].is_monotonic_increasing  # the closer to the target, the more it narrows
    assert table["width_after"].iloc[2] < 0.9 * table["width_now"].iloc[2]  # one noisy run at the target itself
    # per FLOP the cheap run among the data can still win: that is the question the ranking answers
    assert table.loc[table["rank"] == 1, "reduction_per_flop"].iloc[0] == table["reduction_per_flop"].max()


def test_a_batch_within_the_budget(small_fit):
    rng = np.random.default_rng(0)
    n = np.exp(rng.uniform(np.log(1e8), np.log(2e10), 60))
    cand = pd.DataFrame({"N": n, "D": n * np.exp(rng.uniform(np.log(5), np.log(80), 60))})
    budget = 2e21
    table = small_fit.next_runs(cand, target=TARGET, budget=budget)
    chosen = table[table["batch"] > 0].sort_values("batch")
    assert len(chosen) >= 2 and list(chosen["batch"]) == list(range(1, len(chosen) + 1))
    assert chosen["flops"].sum() <= budget
    assert table.loc[table["rank"] == 1, "batch"].iloc[0] == 1  # the first pick is the best single run
    none = small_fit.next_runs(cand, target=TARGET, budget=0.5 * table["flops"].min())
    assert (none["batch"] == 0).all()
    again = small_fit.next_runs(cand, target=TARGET, budget=budget)
    pd.testing.assert_frame_equal(again, table)  # the fit's seed: the same outcomes, the same table


def test_costs_and_bad_calls_are_clear(small_fit):
    cand = pd.DataFrame({"N": [1e9, 2e9], "D": [2e10, 4e10], "gpu_hours": [100.0, 250.0]})
    table = small_fit.next_runs(cand, target=TARGET, cost="gpu_hours")
    assert "reduction_per_cost" in table and "flops" not in table
    np.testing.assert_allclose(table["reduction_per_cost"], table["reduction"] / cand["gpu_hours"])
    with pytest.raises(KeyError, match="cost: no column 'hours'"):
        small_fit.next_runs(cand, target=TARGET, cost="hours")
    with pytest.raises(ValueError, match=r"cost must be positive and finite; rows \[1\]"):
        small_fit.next_runs(cand, target=TARGET, cost=[1.0, -2.0])
    with pytest.raises(bs.DataError, match=r"column 'D' \(law input D\) is not in the data"):
        small_fit.next_runs(cand[["N"]], target=TARGET)
    with pytest.raises(TypeError, match="candidates must be a non-empty pandas DataFrame"):
        small_fit.next_runs(cand.iloc[:0], target=TARGET)
    with pytest.raises(ValueError, match="target must be one point"):
        small_fit.next_runs(cand, target={"N": [7e10, 8e10], "D": [1e12, 2e12]})
    with pytest.raises(ValueError, match="budget must be a positive number"):
        small_fit.next_runs(cand, target=TARGET, budget=-1)
    n = np.geomspace(1e7, 1e9, 20)
    runs = pd.DataFrame(
        {"N": n, "loss": 3 * (n / 1e8) ** -0.1 * np.exp(0.02 * np.random.default_rng(0).normal(size=20))}
    )
    fit = bs.ScalingModel(bs.laws.PowerLaw("N"), target="loss", inputs={"N": "N"}).fit(runs, seed=0)
    with pytest.raises(ValueError, match=r"the cost of a run of a law in \['N'\] is not known: give cost="):
        fit.next_runs(pd.DataFrame({"N": [1e9]}), target={"N": 1e11})


def test_a_run_that_would_move_the_posterior_far_is_flagged():
    # four runs leave the law loose: a run two decades out would decide it, beyond what reweighting can judge
    n = np.geomspace(1e7, 1e9, 20)[:4]
    runs = pd.DataFrame({"N": n, "loss": 3 * (n / 1e8) ** -0.1 * np.exp(0.02 * np.array([0.1, -0.5, 0.3, 0.2]))})
    fit = bs.ScalingModel(bs.laws.PowerLaw("N"), target="loss", inputs={"N": "N"}).fit(runs, seed=0)
    with pytest.warns(DesignWarning, match="reweighting cannot judge further. Refit with simulated outcomes"):
        table = fit.next_runs(pd.DataFrame({"N": [1e8, 1e10, 1e12]}), target={"N": 1e12}, cost=[1.0, 1e2, 1e4])
    assert table["ess"].min() < 0.05 * 1000


def test_the_plot_shows_candidates_fitted_runs_target_and_batch(small_fit):
    import matplotlib.pyplot as plt

    rng = np.random.default_rng(1)
    n = np.exp(rng.uniform(np.log(1e8), np.log(2e10), 40))
    cand = pd.DataFrame({"N": n, "D": n * np.exp(rng.uniform(np.log(5), np.log(80), 40))})
    table = small_fit.next_runs(cand, target=TARGET, budget=2e21)
    ax = bs.plot.next_runs(small_fit, table, target=TARGET)
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert {"fitted runs", "target"} <= set(labels)
    assert ax.get_xscale() == "log" and ax.get_yscale() == "log" and ax.get_ylabel() == "D"
    assert len(ax.texts) == (table["batch"] > 0).sum() > 0  # each run of the batch numbered
    plt.close(ax.figure)
    with pytest.raises(ValueError, match="table must be what fit.next_runs returned"):
        bs.plot.next_runs(small_fit, cand)


def test_any_quantity_given_draw_by_draw_is_a_target(small_fit):
    cand = pd.DataFrame({"N": [1e9, 1e10], "D": [2e10, 2e11]})
    by_inputs = small_fit.next_runs(cand, target=TARGET, risk=False)
    law_value = small_fit.predict(pd.DataFrame([TARGET]), risk=False).draws(kind="mean")[:, 0]
    pd.testing.assert_frame_equal(small_fit.next_runs(cand, target=law_value), by_inputs)
    # the compute-optimal tokens per parameter at Gopher's budget: a quantity of the posterior, not of one run
    ratio = small_fit.optimal(C=5.88e23).draws("tokens_per_param")[:, 0]
    table = small_fit.next_runs(cand, target=ratio)
    kept = ratio[np.unique(np.linspace(0, len(ratio) - 1, design.DRAWS_USED).round().astype(int))]  # evenly thinned
    assert table["width_now"].iloc[0] == pytest.approx(np.diff(np.quantile(kept, [0.05, 0.95]))[0], rel=1e-12)
    assert (table["width_after"] < table["width_now"]).all()
    with pytest.raises(TypeError, match=r"or one value per posterior draw of this fit \(4000\)"):
        small_fit.next_runs(cand, target=ratio[:100])


def test_beyond_the_data_a_run_towards_the_target_also_shortens_the_reach(small_fit):
    # 1.4 decades beyond the runs, the target's interval is mostly the risk that the law is wrong there
    cand = pd.DataFrame({"N": [1e9, 3e10], "D": [2e10, 6e11]})  # among the runs; beyond them, towards the target
    with_risk = small_fit.next_runs(cand, target=TARGET)
    law_only = small_fit.next_runs(cand, target=TARGET, risk=False)
    share = lambda table: table["reduction"] / table["width_now"]  # noqa: E731
    assert with_risk["width_now"].iloc[0] > 3 * law_only["width_now"].iloc[0]
    assert share(with_risk).iloc[0] < share(law_only).iloc[0]  # it narrows the law, and leaves the reach as it is
    assert share(with_risk).iloc[1] > 2 * share(law_only).iloc[1]  # it narrows the law and halves the reach
    inside = small_fit.next_runs(cand, target={"N": 1e9, "D": 2e10})  # a target among the runs has no risk
    pd.testing.assert_frame_equal(inside, small_fit.next_runs(cand, target={"N": 1e9, "D": 2e10}, risk=False))


def test_a_batch_takes_the_one_run_that_matters_over_many_cheap_ones():
    # Ranked per cost alone, ten cheap runs that each move the target's posterior a little fill the budget
    # before the one costly run that moves it a lot; the batch is the better of that and "the costly run
    # first, then the cheap ones", which here narrows it more (0.76 of the sd now against 0.95).
    draws, outcomes = 1000, 16
    t = np.random.default_rng(0).normal(size=draws)
    sign = np.where(np.arange(outcomes) % 2 == 0, 1.0, -1.0)[:, None, None]
    log_weights = sign * t[None, :, None] * np.array([0.03] * 10 + [0.5])  # exponential tilts: the mean moves
    costs = np.array([1.0] * 10 + [400.0])
    no_runs = jnp.zeros(log_weights.shape[:2])
    single = design._after(no_runs, log_weights, jnp.asarray(t), np.zeros(1), 0.0)  # each run alone
    place, cut = design._greedy(log_weights, jnp.asarray(t), costs, 405.0, draws, None, single)
    assert not cut and place[10] == 1 and (place[:10] > 0).sum() == 5


@pytest.fixture(scope="module")
def three_families():
    rng = np.random.default_rng(0)
    frames = []
    for f in range(3):
        n = np.geomspace(5e7, 2e9, 8)
        d = 20 * n * np.exp(rng.uniform(-1, 1, 8))
        loss = (1.8 + 400 * n**-0.34 + 2000 * d**-0.36) * np.exp(0.01 * rng.normal(size=8)) * (1 + 0.03 * f)
        frames.append(pd.DataFrame({"N": n, "D": d, "loss": loss, "family": f"f{f}"}))
    return pd.concat(frames, ignore_index=True)


CANDIDATES = pd.DataFrame({"N": [1e10, 1e10], "D": [2e11, 2e11], "family": ["f0", "f1"]})  # one run, two families
TARGET = {"N": 7e10, "D": 1.4e12, "family": "f0"}


@pytest.mark.filterwarnings("ignore::bayescale.SamplerWarning")  # short chains: widths are the point
def test_with_exponents_of_its_own_only_a_run_of_the_target_s_group_brings_its_data_nearer(three_families):
    model = bs.ScalingModel("chinchilla", group="family", independent=["alpha", "beta"])
    fit = model.fit(three_families, seed=0, chains=2, warmup=300, draws=300, extend=0)
    ranked = fit.next_runs(CANDIDATES, target=TARGET)
    assert ranked["width_after"].iloc[0] < 0.6 * ranked["width_after"].iloc[1]
    assert ranked["width_after"].iloc[1] > 0.95 * ranked["width_now"].iloc[1]  # f1's run leaves f0's reach as it is


@pytest.mark.filterwarnings("ignore::bayescale.SamplerWarning")  # short chains: widths are the point
def test_where_groups_share_the_shape_a_run_of_any_group_brings_the_data_nearer(three_families):
    fit = bs.ScalingModel("chinchilla", group="family").fit(
        three_families, seed=0, chains=2, warmup=300, draws=300, extend=0
    )
    ranked = fit.next_runs(CANDIDATES, target=TARGET)
    assert ranked["width_after"].iloc[1] < 0.8 * ranked["width_now"].iloc[1]  # f1's run tests the shape f0 shares
    assert ranked["width_after"].iloc[0] < ranked["width_after"].iloc[1]  # f0's own also measures f0's level
    new = fit.next_runs(CANDIDATES, target=TARGET | {"family": "new"})  # measured from every family's runs
    assert new["width_now"].iloc[0] > ranked["width_now"].iloc[0]
    np.testing.assert_allclose(new["width_after"].iloc[0], new["width_after"].iloc[1], rtol=0.1)
