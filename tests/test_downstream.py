"""Accuracy on tasks: the chance-floored accuracy law, the LogitNormal likelihood, and the loss -> accuracy chain."""

import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
import pytest
from scipy import integrate, stats

import bayescale as bs
from bayescale.model.arguments import log_references, model_args
from tests.conftest import load_or_skip

LAW = bs.laws.AccuracyLaw("C", chance=0.25)
TRUTH = {"floor_shift": -0.1, "lift": 1.5, "B": 0.8, "C_mid": 1e21}
SIGMA = 0.1  # residual sd of logit(accuracy)
COMPUTE = np.geomspace(1e19, 1e22, 30)


def simulate_accuracy(law=LAW, truth=TRUTH, x=COMPUTE, sigma=SIGMA, seed=0, name="C"):
    rng = np.random.default_rng(seed)
    mu = np.asarray(law.mean(truth, **{law.x: x}))
    y = 1.0 / (1.0 + np.exp(-(np.log(mu / (1.0 - mu)) + sigma * rng.standard_normal(x.size))))
    return pd.DataFrame({name: x, "acc": y})


@pytest.fixture(scope="module")
def accuracy_fit():
    return bs.ScalingModel(LAW, target="acc", inputs={"C": "C"}).fit(simulate_accuracy(), seed=0)


@pytest.mark.parametrize("ceiling", [None, 1.0, 0.9])
def test_the_law_stays_between_its_floor_and_a_ceiling_of_at_most_one(ceiling):
    rng = np.random.default_rng(0)
    x = np.geomspace(1e10, 1e30, 50)
    for chance in (0.0, 0.2, 0.5):
        for rising in (True, False):
            law = bs.laws.AccuracyLaw("C", chance=chance, rising=rising, ceiling=ceiling)
            for _ in range(20):
                p = {"floor_shift": rng.normal(0, 0.5), "lift": rng.normal(0, 5)}
                p |= {"B": np.exp(rng.normal(0, 2)), "C_mid": 10 ** rng.uniform(12, 28)}
                p = {k: v for k, v in p.items() if k in law.parameter_names}
                acc = np.asarray(law.mean(p, C=x))
                floor = 0.0 if chance == 0 else 1 / (1 + (1 - chance) / chance * np.exp(-p["floor_shift"]))
                top = ceiling if ceiling is not None else floor + (1 - floor) / (1 + np.exp(-p["lift"]))
                assert np.all(acc >= floor - 1e-12) and np.all(acc <= top + 1e-12) and np.all(acc <= 1.0)
                assert np.all(np.diff(acc) >= -1e-12) if rising else np.all(np.diff(acc) <= 1e-12)
    assert "floor_shift" not in bs.laws.AccuracyLaw("C", chance=0.0).parameter_names
    falling = bs.laws.AccuracyLaw("bpb", chance=0.25, rising=False, ceiling=1.0)
    assert falling.formula == "floor + (1 - floor) sigmoid(-B log(bpb/bpb_mid)), floor ~ 0.25"
    assert bs.laws.AccuracyLaw("C").formula == "floor + (top - floor) sigmoid(B log(C/C_mid)), floor ~ 0.25"


@pytest.mark.parametrize("chance", [1.0, -0.1, "0.25", True])
def test_a_chance_level_that_is_not_a_rate_is_an_error(chance):
    with pytest.raises((ValueError, TypeError), match="chance"):
        bs.laws.AccuracyLaw("C", chance=chance)


@pytest.mark.parametrize("ceiling", [0.2, 1.5, "1", True])
def test_a_ceiling_that_is_not_between_chance_and_one_is_an_error(ceiling):
    with pytest.raises((ValueError, TypeError), match="ceiling"):
        bs.laws.AccuracyLaw("C", chance=0.25, ceiling=ceiling)


def test_the_logit_normal_is_a_density_of_the_log_rate():
    d = bs.likelihoods.LogitNormal().distribution(jnp.log(0.7), {"sigma": 0.3})
    total, _ = integrate.quad(lambda v: float(jnp.exp(d.log_prob(v))), -30.0, -1e-12, limit=200)
    assert total == pytest.approx(1.0, abs=1e-6)
    # the same as the density of logit(y), times the Jacobian of log(y) -> logit(y)
    y = 0.55
    expected = stats.norm(np.log(0.7 / 0.3), 0.3).logpdf(np.log(y / (1 - y))) - np.log(1 - y)
    assert float(d.log_prob(np.log(y))) == pytest.approx(expected, rel=1e-10)
    draws = np.exp(np.asarray(d.sample(jax.random.key(0), (200_000,))))
    logits = np.log(draws / (1 - draws))
    assert np.mean(logits) == pytest.approx(np.log(0.7 / 0.3), abs=4 * 0.3 / np.sqrt(200_000))
    assert np.std(logits) == pytest.approx(0.3, rel=0.01)


def test_an_accuracy_law_fits_rates_on_the_log_odds_by_default(accuracy_fit):
    assert isinstance(accuracy_fit.model.likelihood, bs.likelihoods.LogitNormal)
    summary = accuracy_fit.summary()
    assert summary["r_hat"].max() < 1.01
    draws = {k: accuracy_fit.draws(k) for k in (*TRUTH, "sigma")}
    for name, true in {**TRUTH, "sigma": SIGMA}.items():
        lo, hi = np.quantile(draws[name], [0.005, 0.995])
        assert lo < true < hi, (name, lo, hi)


def test_predictions_beyond_the_data_stay_rates_and_widen(accuracy_fit):
    pred = accuracy_fit.predict(C=[1e21, 1e24, 1e27])
    for kind in ("observation", "curve", "mean"):
        d = pred.draws(kind)
        assert np.all((d > 0) & (d <= 1)), kind  # far out a log-odds of 40 rounds to 1 in float64
        assert np.mean(d == 1.0) < 0.001, kind
    width = pred.interval(0.9, kind="curve").eval("upper - lower").to_numpy()
    assert width[0] < width[1] < width[2]
    # the risk is a deviation on the log-odds: the curve's band keeps the law's median there
    assert np.median(pred.draws("curve")[:, 1]) == pytest.approx(np.median(pred.draws("mean")[:, 1]), abs=0.01)
    # and inside the data the curve is the law (to the rounding of the log-odds and back)
    np.testing.assert_allclose(pred.draws("curve")[:, 0], pred.draws("mean")[:, 0], rtol=1e-13)


def test_accuracy_at_or_above_one_is_an_error_that_says_what_to_check():
    df = simulate_accuracy()
    df.loc[3, "acc"] = 1.0
    with pytest.raises(bs.DataError, match=r"'acc' \(target\) must be a rate strictly between 0 and 1.*row 3"):
        bs.ScalingModel(LAW, target="acc", inputs={"C": "C"}).validate(df)
    percent = simulate_accuracy().assign(acc=lambda d: 100 * d["acc"])
    with pytest.raises(bs.DataError, match="percent"):
        bs.ScalingModel(LAW, target="acc", inputs={"C": "C"}).validate(percent)
    with pytest.raises(ValueError, match="LogitNormal"):
        bs.ScalingModel(LAW, target="acc", inputs={"C": "C"}, noise="sd")


def test_predict_from_draws_of_one_value_is_predict_there(accuracy_fit):
    at = np.array([3e20, 2e21, 1e23])
    plain = accuracy_fit.predict(C=at, seed=5)
    n = accuracy_fit.draws("lift").shape[0]
    drawn = accuracy_fit.predict_from_draws({"C": np.tile(at, (n, 1))}, seed=5)
    for kind in ("observation", "curve", "mean"):
        np.testing.assert_allclose(drawn.draws(kind), plain.draws(kind), rtol=1e-12)
    with pytest.raises(TypeError, match="every law input"):
        accuracy_fit.predict_from_draws({"N": np.ones((n, 1))})
    with pytest.raises(ValueError, match="finite and > 0"):
        accuracy_fit.predict_from_draws({"C": -np.ones((n, 1))})


@pytest.fixture(scope="module")
def two_steps():
    """Step 1: a task loss in N (saturating power law); step 2: accuracy against that loss."""
    rng = np.random.default_rng(1)
    n = np.geomspace(1e8, 2e9, 8)
    loss_law = bs.laws.SaturatingPowerLaw("N")
    loss = np.asarray(loss_law.mean({"E": 0.45, "A": 30.0, "alpha": 0.3}, N=n)) * np.exp(0.01 * rng.standard_normal(8))
    first = bs.ScalingModel(loss_law, target="bpb", inputs={"N": "N"}).fit(pd.DataFrame({"N": n, "bpb": loss}), seed=0)
    acc_law = bs.laws.AccuracyLaw("bpb", chance=0.25, rising=False, ceiling=1.0)
    truth = {"floor_shift": 0.0, "B": 6.0, "bpb_mid": 0.6}
    steps = simulate_accuracy(acc_law, truth, x=np.linspace(0.5, 1.0, 40), sigma=0.05, seed=2, name="bpb")
    second = bs.ScalingModel(acc_law, target="acc", inputs={"bpb": "bpb"}).fit(steps, seed=0)
    return first, second


def test_the_chain_carries_both_fits_uncertainty(two_steps):
    first, second = two_steps
    chain = bs.Chain(first, second)
    assert repr(chain) == "Chain(bpb -> bpb -> acc)"
    at = pd.DataFrame({"N": [1e9, 3e10]})
    pred = chain.predict(at)
    table = pred.interval(0.9)
    assert list(table.columns) == ["N", "bpb", "median", "lower", "upper"]
    # the same as pushing the first fit's draws through the second by hand, with the risk of the
    # second step measured in decades of N beyond the first fit's runs
    middle = first.predict(at).draws()
    by_hand = second.predict_from_draws({"bpb": middle}, distance=first.extrapolation(at))
    np.testing.assert_allclose(pred.draws(), by_hand.draws(), rtol=1e-12)
    # wider than the second step alone at the first step's median loss: the loss is uncertain too
    plug_in = second.predict(bpb=table["bpb"].to_numpy()).interval(0.9)
    chained_width = (table["upper"] - table["lower"]).to_numpy()
    assert np.all(chained_width > (plug_in["upper"] - plug_in["lower"]).to_numpy())
    # and wider the further the first step extrapolates
    assert chained_width[1] > chained_width[0]
    assert np.all((pred.draws() > 0) & (pred.draws() < 1))
    assert (table["lower"] < table["median"]).all() and (table["median"] < table["upper"]).all()
    without = (chain.predict(at, risk=False).interval(0.9).eval("upper - lower")).to_numpy()
    assert without[0] == pytest.approx(chained_width[0], rel=1e-9) and without[1] < chained_width[1]  # inside, beyond


def test_the_chain_says_what_it_needs(two_steps):
    first, second = two_steps
    with pytest.raises(ValueError, match="not an input of the second fit's law"):
        bs.Chain(first, second, via="loss")
    with pytest.raises(ValueError, match="kind must be one of"):
        bs.Chain(first, second, kind="median")


def test_the_olmo_ladder_tasks_reproduce_the_paper_s_targets():
    tasks = load_or_skip("olmo_ladder_tasks")
    assert set(tasks["task"]) >= {"mmlu", "hellaswag", "arc_challenge", "arc_easy", "piqa", "csqa"}
    assert ((tasks["acc"] > 0) & (tasks["acc"] < 1)).all() and (tasks["bpb"] > 0).all()
    final = tasks[tasks["run"] == "peteish13_eval_final"].sort_values("step").groupby("task").tail(5)
    means = final.groupby("task")["acc"].mean()
    # the 13B-5T accuracies of the paper's tables (paper_results/chained_main.csv: mean of the last 5 evaluations)
    assert means["mmlu"] == pytest.approx(0.51614, abs=1e-4)
    assert means["hellaswag"] == pytest.approx(0.831906, abs=1e-6)
    assert means["arc_challenge"] == pytest.approx(0.638055, abs=1e-6)


# Five families with C_mid pooled: without the pilot's frame NUTS diverged in this funnel at every seed (2-23 of
# 4,000 draws at seeds 0-5); in the frame (the default) none at seeds 0-5, 12-15 steps per draw. No warning allowed.
def test_families_share_the_curve_and_differ_in_efficiency():
    """Ruan et al.'s observational scaling: one accuracy curve in compute, shifted per family (pooled C_mid).

    A family seen through its two smallest models is predicted at its largest ones from its
    own runs and the others' shape; a family never seen gets the population's (wider) curve.
    (Beyond a family's own runs its bands also carry the extrapolation risk.)"""
    rng = np.random.default_rng(3)
    law = bs.laws.AccuracyLaw("C", chance=0.25)
    truth = {"floor_shift": 0.0, "lift": 2.0, "B": 0.9}
    c = np.geomspace(1e20, 1e24, 6)
    mids = 1e22 * np.exp(0.8 * rng.standard_normal(5))
    frames = [
        simulate_accuracy(law, {**truth, "C_mid": mid}, x=c, sigma=0.08, seed=10 + f).assign(family=f"f{f}")
        for f, mid in enumerate(mids)
    ]
    held = frames[4].iloc[2:]
    df = pd.concat(frames[:4] + [frames[4].iloc[:2]], ignore_index=True)
    model = bs.ScalingModel(
        law, target="acc", inputs={"C": "C"}, group="family", pooled=["C_mid"], shared=["floor_shift", "lift", "B"]
    )
    fit = model.fit(df, seed=0)
    assert fit.summary()["r_hat"].max() < 1.01
    seen = fit.predict(held[["C", "family"]])
    true = np.asarray(law.mean({**truth, "C_mid": mids[4]}, C=held["C"].to_numpy()))
    band = seen.interval(0.9)
    assert np.all((band["lower"] < true) & (true < band["upper"]))
    # the family's own two runs place its curve: the law's band is narrower than a new family's
    law_band = seen.interval(0.9, kind="mean").eval("upper - lower").to_numpy()
    new_band = fit.predict(held[["C"]].assign(family="another")).interval(0.9, kind="mean").eval("upper - lower")
    assert np.all(law_band < new_band.to_numpy())


def test_the_readme_s_accuracy_example_runs_as_written():
    from tests.conftest import REPO

    load_or_skip("olmo_ladder_tasks")
    text = (REPO / "README.md").read_text()
    block = text.split("## Accuracy on tasks", 1)[1].split("```python\n", 1)[1].split("\n```", 1)[0]
    namespace = {"bs": bs}
    *body, last = block.strip().splitlines()
    exec(compile("\n".join(body), "README.md", "exec"), namespace)
    table = eval(last.split("  #")[0], namespace)
    assert list(table.columns) == ["N", "D", "bpb", "median", "lower", "upper"]
    row = table.iloc[0]
    # OLMo-2 13B-5T's MMLU accuracy (mean of its last 5 evaluations) is 0.516
    assert 0.25 < row["lower"] < 0.516 < row["upper"] < 1.0


# Three families of five runs with C_mid pooled: without the pilot's frame R-hat of C_mid's population reached
# 1.011-1.065 at 4 of seeds 0-5; in the frame (the default) every fit at seeds 0-5 is healthy. No warning allowed.
def test_the_issue_s_sigmoid_usage_works_as_written():
    """The downstream issue's contract: SigmoidLaw with near-point floor and gain, families shifted in C_mid."""
    rng = np.random.default_rng(4)
    sigmoid = bs.laws.SigmoidLaw("C")
    c = np.geomspace(1e20, 1e24, 5)
    df = pd.concat(
        [
            pd.DataFrame({"C": c, "family": f"f{f}"}).assign(
                acc=np.asarray(sigmoid.mean({"R0": 0.25, "gain": 0.75, "B": 0.8, "C_mid": mid}, C=c))
                * np.exp(0.03 * rng.standard_normal(c.size))
            )
            for f, mid in enumerate([3e21, 1e22, 3e22])
        ],
        ignore_index=True,
    )
    new = pd.DataFrame({"C": [1e25, 1e25], "family": ["f1", "another"]})
    P = bs.priors.LogNormal
    model = bs.ScalingModel(bs.laws.SigmoidLaw("C"), target="acc", inputs={"C": "C"}, group="family",
                            priors={"R0": P(0.25, 0.01), "gain": P(0.75, 0.01)},
                            pooled=["C_mid"], shared=["R0", "gain", "B"])  # fmt: skip
    table = model.fit(df, seed=0).predict(new[["C", "family"]]).interval(0.9)
    assert list(table.columns) == ["family", "C", "median", "lower", "upper"]
    assert (table["lower"] < table["median"]).all() and (table["median"] < table["upper"]).all()


def at_chance(seed=5):
    """12 runs over two decades of compute, every one at chance (0.25 on the log-odds, with noise)."""
    rng = np.random.default_rng(seed)
    c = np.geomspace(1e19, 1e21, 12)
    return pd.DataFrame({"C": c, "acc": 1 / (1 + 3 * np.exp(-0.05 * rng.standard_normal(c.size)))})


# With every run at chance and the ceiling learned, the data also allow readings in which the curve has no
# room to climb (a ceiling at chance, a floor below it), where the steepness and the midpoint are free: R-hat
# 1.01-1.04 at seeds 0-7 and 0-21 divergences per fit (benchmarks/README.md, "Accuracy at chance"). The band
# is the point here.
@pytest.mark.filterwarnings("ignore::bayescale.SamplerWarning")
def test_a_task_still_at_chance_gives_no_false_certainty():
    """Emergence: every model so far at chance says little about when the task will take off."""
    model = bs.ScalingModel(LAW, target="acc", inputs={"C": "C"})
    fit = model.fit(at_chance(), seed=0, warmup=500, draws=500, extend=0)  # its trajectories are long
    near, far = fit.predict(C=[1e21, 1e24]).interval(0.9, kind="mean").eval("upper - lower")
    assert near < 0.05  # where the runs are, the law is pinned at chance
    assert far > 0.3  # three decades on, it may have taken off or not


# Sampled in (log B, log x_mid) this diverged in 41-102 of 4,000 draws at seeds 0-7, at the steep end where the
# data's wall log(x_mid / x_max) > c / B is sharpest; through the climb's progress at the data's ends
# (build.sample_midpoint) none; with the midpoint's wider prior of a known ceiling, 1 at seeds 0, 3 and 4 of
# benchmarks/bench_accuracy_health.py, none at this test's. No warning allowed.
def test_a_task_at_chance_with_a_known_ceiling_samples_without_divergences():
    fit = bs.ScalingModel(bs.laws.AccuracyLaw("C", chance=0.25, ceiling=1.0), target="acc").fit(at_chance(), seed=0)
    assert int(fit.idata.sample_stats["diverging"].sum()) == 0
    assert float(fit.draws("C_mid").min()) > 1e21  # the climb has not begun inside the data
    # three decades on it may have taken off or not (with the midpoint's prior of a learned ceiling, sd 1.3
    # decades, the band's lower end was 0.82 here and 0.62-0.90 at seeds 0-7 of bench_accuracy_health.py)
    mean = fit.predict(C=[1e24]).interval(0.9, kind="mean").iloc[0]
    assert mean["lower"] < 0.5 and mean["upper"] > 0.95
    # far on, many draws' accuracy rounds to the ceiling of 1: new runs drawn there are 1, not nan
    band = fit.predict(C=[1e24, 1e40]).interval(0.9)
    assert np.isfinite(band[["lower", "median", "upper"]]).all(axis=None) and band["upper"].iloc[-1] == 1.0


def test_near_a_ceiling_of_one_the_law_s_log_stays_below_zero_with_finite_gradients():
    """The upper half of the climb is computed down from the top: ``floor + headroom`` rounds above 1."""
    law = bs.laws.AccuracyLaw("C", chance=0.25, ceiling=1.0)
    p = {"floor_shift": jnp.asarray(0.3), "B": jnp.asarray(2.0), "log_C_mid": jnp.asarray(0.0)}
    log_x = jnp.linspace(-400.0, 400.0, 801)
    log_mean = jax.vmap(lambda lx: law.log_mean(p, {"C": lx}))(log_x)
    assert float(jnp.max(log_mean)) <= 0.0
    near = np.asarray(log_mean[(log_x > 5) & (log_x < 15)])  # accuracy 1 - (1 - floor) sigmoid(-2 log x)
    floor = 1 / (1 + 3 * np.exp(-0.3))
    expected = np.log1p(-(1 - floor) / (1 + np.exp(2.0 * np.asarray(log_x[(log_x > 5) & (log_x < 15)]))))
    np.testing.assert_allclose(near, expected, rtol=1e-12)
    for chance in (0.0, 0.25):  # both halves' gradients finite everywhere, also with no floor
        curve = bs.laws.AccuracyLaw("C", chance=chance, ceiling=1.0)
        q = {k: v for k, v in p.items() if k in curve.parameter_names or k == "log_C_mid"}
        grads = jax.vmap(jax.grad(lambda q, lx, c=curve: c.log_mean(q, {"C": lx})), in_axes=(None, 0))(q, log_x)
        assert all(bool(jnp.isfinite(g).all()) for g in grads.values())


@pytest.mark.parametrize("sign", [1.0, -1.0])
def test_the_midpoint_s_coordinate_carries_the_law_s_prior_exactly(sign):
    """``build.Progress``: the midpoint's Normal prior in the coordinate NUTS samples, and back."""
    from bayescale.model.build import Progress

    progress = Progress(jnp.asarray(0.3), jnp.asarray(2.0), jnp.asarray(3.0), 0.1, 2.3, sign)
    values = progress.sample(jax.random.key(0), (20_000,))
    m = progress.location(values)
    # the map and its inverse agree on every branch: midpoints inside the data and beyond either end
    drawn = 0.3 + 2.0 * jax.random.normal(jax.random.key(0), (20_000,))
    np.testing.assert_allclose(m, drawn, rtol=0, atol=1e-9)
    assert float(jnp.mean(jnp.abs(m - 0.1) < 2.3)) > 0.5 and float(jnp.min(m)) < -2.2 and float(jnp.max(m)) > 2.4
    # the density is the Normal at the mapped-back midpoint times the map's Jacobian
    jacobian = jax.vmap(jax.grad(progress.location))(values[:500])
    expected = stats.norm(0.3, 2.0).logpdf(np.asarray(m[:500])) + np.log(np.abs(np.asarray(jacobian)))
    np.testing.assert_allclose(progress.log_prob(values[:500]), expected, rtol=1e-9, atol=1e-9)
    mass, _ = integrate.quad(lambda v: float(jnp.exp(progress.log_prob(v))), -4000, 4000, limit=400)
    assert mass == pytest.approx(1.0, abs=1e-6)


def test_a_chain_into_a_fit_with_groups(two_steps):
    first, _ = two_steps
    law = bs.laws.AccuracyLaw("bpb", chance=0.25, rising=False, ceiling=1.0)
    steps = pd.concat(
        [
            simulate_accuracy(law, {"floor_shift": 0.0, "B": 6.0, "bpb_mid": mid}, x=np.linspace(0.5, 1.0, 15),
                              sigma=0.05, seed=s, name="bpb").assign(task=name)
            for s, (name, mid) in enumerate([("a", 0.55), ("b", 0.65)])
        ],
        ignore_index=True,
    )  # fmt: skip
    model = bs.ScalingModel(law, target="acc", group="task", pooled=["bpb_mid"], shared=["floor_shift", "B"])
    with warnings.catch_warnings():  # short chains: the keywords and tables are the point
        warnings.simplefilter("ignore", bs.SamplerWarning)
        second = model.fit(steps, seed=0, chains=2, warmup=200, draws=200, extend=0)
    chain = bs.Chain(first, second)
    by_keyword = chain.predict(N=[1e9, 1e9], task=["a", "b"]).interval(0.9)
    by_frame = chain.predict(pd.DataFrame({"N": [1e9, 1e9], "task": ["a", "b"]})).interval(0.9)
    assert list(by_keyword.columns) == ["task", "N", "bpb", "median", "lower", "upper"]
    pd.testing.assert_frame_equal(by_keyword, by_frame)
    assert by_keyword["median"].iloc[1] > by_keyword["median"].iloc[0]  # b is halfway up at a higher loss: easier
    with pytest.raises(TypeError, match="the second fit has groups: give each row's 'task'"):
        chain.predict(N=1e9)


# Each run's checkpoints span ~12% of task loss: below the factor of 3 that measures a power law's input,
# they left every run outside the pilot's frame, non-centred (on HellaSwag's ladder: 1,759 divergences and
# R-hat 3 in one fit; in the frame, none). No warning allowed.
def test_runs_of_a_ladder_each_with_its_own_midpoint_against_a_loss():
    rng = np.random.default_rng(4)
    law = bs.laws.AccuracyLaw("bpb", chance=0.25, rising=False, ceiling=1.0)
    finals = np.geomspace(0.75, 0.95, 6)
    mids = 0.8 * np.exp(0.02 * rng.standard_normal(finals.size))
    frames = [
        simulate_accuracy(law, {"floor_shift": 0.0, "B": 6.0, "bpb_mid": mid}, x=final * np.geomspace(1.12, 1.0, 20),
                          sigma=0.03, seed=20 + r, name="bpb").assign(run=f"r{r}")
        for r, (final, mid) in enumerate(zip(finals, mids, strict=True))
    ]  # fmt: skip
    df = pd.concat(frames, ignore_index=True)
    model = bs.ScalingModel(law, target="acc", group="run", pooled=["bpb_mid"], shared=["floor_shift", "B"])
    data = model.validate(df)
    assert np.all(model_args(model, data, log_references(model, data)).basis.framed == 1.0)
    fit = model.fit(df, seed=0)
    own = fit.summary(0.99).loc[[f"bpb_mid[r{r}]" for r in range(finals.size)]]  # six intervals: 0.99 each
    assert np.all((own["lower"] < mids) & (mids < own["upper"]))
    spread = fit.population(0.9).loc["bpb_mid_spread"]
    assert spread["lower"] < np.std(np.log(mids), ddof=1) < spread["upper"]
