"""``ScalingModel.fit_many``: many data sets through one compiled sampler, results by key."""

from __future__ import annotations

import warnings

import jax
import numpy as np
import pandas as pd
import pytest
from numpyro.infer.util import potential_energy

import bayescale as bs
from bayescale.model.args import pad_rows, row_bucket
from bayescale.sampler import runner as runners
from tests.conftest import args_of, load_or_skip, model_function

SHORT = {"chains": 4, "warmup": 500, "draws": 500}
Z_MATCH = 4.5  # |mean difference| / its Monte Carlo SE: two-sided p ~ 7e-6 per comparison, ~40 comparisons a file


def tasks(n_tasks: int = 4, seed: int = 0) -> pd.DataFrame:
    """Data sets of 20-40 runs of a power law with its own truth each (the contract's model)."""
    rng = np.random.default_rng(seed)
    frames = []
    for k in range(n_tasks):
        n = int(rng.integers(20, 41))
        x = np.geomspace(1e7, 1e10, n)
        y = rng.uniform(2, 6) * (x / 1e8) ** -rng.uniform(0.05, 0.3) * np.exp(0.02 * rng.standard_normal(n))
        frames.append(pd.DataFrame({"task": f"t{k}", "N": x, "loss": y}))
    return pd.concat(frames, ignore_index=True)


def families_by_task() -> pd.DataFrame:
    """Two tasks of saturating power laws: task x has families a, b, c; task y has a, b."""
    rng = np.random.default_rng(3)
    frames = []
    for task, families in (("x", "abc"), ("y", "ab")):
        for fam in families:
            c = np.geomspace(1e17, 1e21, 8)
            y = (1.5 + 3.0 * (c / 1e19) ** -rng.uniform(0.2, 0.3)) * np.exp(0.02 * rng.standard_normal(8))
            frames.append(pd.DataFrame({"task": task, "family": fam, "C": c, "loss": y}))
    return pd.concat(frames, ignore_index=True)


@pytest.fixture(scope="module")
def power_model():
    return bs.ScalingModel(bs.laws.PowerLaw("N"), target="loss", inputs={"N": "N"})


@pytest.fixture(scope="module")
def task_frame():
    return tasks()


@pytest.fixture(scope="module")
def task_fits(power_model, task_frame):
    return power_model.fit_many(task_frame, by="task", seed=0, **SHORT)


# 2 x 500 draws: over 4 data sets x 3 parameters an R-hat just above 1.01 is within the noise of such short chains
@pytest.mark.filterwarnings("ignore::bayescale.SamplerWarning")
def test_contract_usage(task_frame):
    df = task_frame
    model = bs.ScalingModel(bs.laws.PowerLaw("N"), target="loss", inputs={"N": "N"})
    fits = model.fit_many(df, by="task", seed=0, chains=2, warmup=500, draws=500)  # one compiled, vectorised call
    fits["t3"].idata  # noqa: B018  (each result is a full fit, addressable by key)
    fits.summary()  # one row per key and parameter, with diagnostics

    assert list(fits) == ["t0", "t1", "t2", "t3"] and len(fits) == 4
    idata = fits["t3"].idata
    assert idata.posterior.sizes == {"chain": 2, "draw": 500}
    assert idata.log_likelihood["loss"].shape == (2, 500, (df["task"] == "t3").sum())
    table = fits.summary()
    assert table.index.names == ["task", "parameter"]
    assert len(table) == 4 * len(model.parameter_names)
    assert {"mean", "sd", "median", "lower", "upper", "r_hat", "ess_bulk", "ess_tail", "healthy"} <= set(table)
    np.testing.assert_allclose(table.loc[("t3", "alpha"), "median"], np.median(fits["t3"].draws("alpha")))
    assert (table["ess_bulk"] > 100).all() and (table["r_hat"] < 1.05).all()
    assert "4 data sets by task, 2 chains x 500 draws" in repr(fits)


def test_healthy_with_four_chains(task_fits):
    assert task_fits.healthy.all(), task_fits.health


def test_posteriors_match_single_fits(power_model, task_frame, task_fits):
    for key in ["t0", "t3"]:
        single = power_model.fit(task_frame[task_frame["task"] == key], seed=1, **SHORT).summary()
        many = task_fits[key].summary()
        for name in power_model.parameter_names:
            se = np.hypot(
                many.loc[name, "sd"] / np.sqrt(many.loc[name, "ess_bulk"]),
                single.loc[name, "sd"] / np.sqrt(single.loc[name, "ess_bulk"]),
            )
            assert abs(many.loc[name, "mean"] - single.loc[name, "mean"]) < Z_MATCH * se, (key, name)
            assert many.loc[name, "sd"] == pytest.approx(single.loc[name, "sd"], rel=0.2), (key, name)


@pytest.mark.filterwarnings("ignore::bayescale.SamplerWarning")  # 500 draws of 4 chains; compared, not judged
def test_vectorised_batches_give_the_same_posteriors(power_model, task_frame, task_fits):
    """``batch_size=`` vmaps data sets into one program (the GPU/TPU default); on CPU chains run in threads."""
    batched = power_model.fit_many(task_frame, by="task", seed=0, batch_size=3, **SHORT)  # 2 batches, the last padded
    assert list(batched) == list(task_fits)
    for key in task_fits:
        a, b = task_fits[key].summary(), batched[key].summary()
        for name in power_model.parameter_names:
            se = np.hypot(
                a.loc[name, "sd"] / np.sqrt(a.loc[name, "ess_bulk"]),
                b.loc[name, "sd"] / np.sqrt(b.loc[name, "ess_bulk"]),
            )
            assert abs(a.loc[name, "mean"] - b.loc[name, "mean"]) < Z_MATCH * se, (key, name)


def test_log_likelihood_of_a_member_is_the_models(power_model, task_frame, task_fits):
    """The lazily computed pointwise log likelihood equals the sampler's own at the same draws."""
    fit = task_fits["t1"]
    rows = task_frame[task_frame["task"] == "t1"]
    np.testing.assert_allclose(
        fit.idata.log_likelihood["loss"].values.reshape(-1, len(rows)), fit.log_likelihood(rows), rtol=1e-12
    )
    reference = power_model.fit(rows, seed=0, **SHORT)  # the model's log likelihood, through the sampler
    np.testing.assert_allclose(
        reference.idata.log_likelihood["loss"].values.reshape(-1, len(rows)),
        reference.log_likelihood(rows),
        rtol=1e-10,
        atol=1e-12,  # two compiled programs: without FMA (XLA limited to AVX) one value near 0 differs by 3e-14
    )


def test_padding_leaves_density_and_gradient_unchanged(power_model, task_frame):
    data = power_model.validate(task_frame[task_frame["task"] == "t0"])
    args = args_of(power_model, data)
    padded = pad_rows(args, row_bucket(data.n_rows) + 7)
    z = {"A_z": 30.0, "alpha_z": -50.0, "sigma": 0.5}
    energy = lambda a: lambda q: potential_energy(model_function(power_model), (a,), {}, q)  # noqa: E731
    assert float(energy(padded)(z)) == pytest.approx(float(energy(args)(z)), rel=1e-13)
    grads = jax.grad(energy(args))(z), jax.grad(energy(padded))(z)
    for k in z:
        assert float(grads[1][k]) == pytest.approx(float(grads[0][k]), rel=1e-12)


@pytest.mark.filterwarnings("ignore::bayescale.SamplerWarning")  # about compilation, not about these short chains
def test_lengths_in_one_bucket_share_the_compiled_sampler(power_model):
    x = np.geomspace(1e7, 1e10, 40)
    df = pd.DataFrame(
        {"N": x, "loss": 3.0 * (x / 1e8) ** -0.2 * np.exp(0.02 * np.random.default_rng(1).normal(size=40))}
    )
    power_model.fit(df.iloc[:33], seed=0, **SHORT)  # 33 and 40 rows both pad to 40
    before = set(runners.RUNNERS)
    fit = power_model.fit(df, seed=0, **SHORT)
    assert set(runners.RUNNERS) == before  # a new sampler would add its key (and drop the oldest)
    assert fit.idata.log_likelihood["loss"].shape[-1] == 40


@pytest.mark.filterwarnings("ignore::bayescale.SamplerWarning")  # 1 x (20 + 20) draws: about compilation
def test_only_a_long_run_of_many_fits_compiles_its_loop_for_running_long(power_model, task_frame, monkeypatch):
    # a short run's sampling loop is compiled as a single fit's: compiling it for speed costs more than it saves
    seen, real = [], runners._runner
    monkeypatch.setattr(runners, "_runner", lambda *args, many=False: seen.append(many) or real(*args, many=many))
    short = {"chains": 1, "warmup": 20, "draws": 20}  # 4 data sets: 160 chain iterations
    power_model.fit_many(task_frame, by="task", seed=0, **short)
    monkeypatch.setattr(runners, "MANY_ITERATIONS", 160)
    power_model.fit_many(task_frame, by="task", seed=0, **short)
    assert seen == [False, True]


def test_other_forms_of_data(power_model, task_frame, task_fits):
    parts = [part for _, part in task_frame.groupby("task")]
    as_list = power_model.fit_many(parts, seed=0, **SHORT)
    assert list(as_list) == [0, 1, 2, 3]
    np.testing.assert_array_equal(as_list[3].draws("alpha"), task_fits["t3"].draws("alpha"))
    as_dict = power_model.fit_many(dict(zip("abcd", parts, strict=True)), seed=0, **SHORT)
    assert list(as_dict) == ["a", "b", "c", "d"]
    assert as_dict.summary().index.names == ["key", "parameter"]
    tuple_keys = power_model.fit_many({("x", 1): parts[0], ("y", 2): parts[1]}, seed=0, **SHORT)
    assert tuple_keys[("y", 2)].idata.posterior.sizes["chain"] == 4
    assert tuple_keys.summary().loc[(("y", 2), "alpha"), "median"] > 0


def test_several_key_columns(power_model):
    df = tasks(n_tasks=4).assign(metric=lambda d: np.where(d["task"].isin(["t0", "t1"]), "acc", "ppl"))
    fits = power_model.fit_many(df, by=["metric", "task"], seed=0, **SHORT)
    assert list(fits) == [("acc", "t0"), ("acc", "t1"), ("ppl", "t2"), ("ppl", "t3")]
    assert fits[("ppl", "t2")].idata.posterior.sizes == {"chain": 4, "draw": 500}
    assert fits.summary().index.names == ["metric", "task", "parameter"]
    assert fits.health.index.names == ["metric", "task"]


def test_hierarchical_data_sets_with_different_groups():
    """A data set with fewer groups is padded with empty ones, which never show up in its results."""
    df = families_by_task()
    model = bs.ScalingModel(bs.laws.SaturatingPowerLaw("C"), group="family", shared=["E"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", bs.SamplerWarning)  # 2 x 500 draws of a hierarchy: short chains
        fits = model.fit_many(df, by="task", seed=0, **SHORT)
    assert fits["x"].groups == ("a", "b", "c") and fits["y"].groups == ("a", "b")
    assert fits["y"].draws("alpha").shape == (2000, 2)
    params = fits.summary().xs("y", level="task").index
    assert "alpha[b]" in params and "alpha[c]" not in params and "alpha_spread" in params
    assert fits.draws("alpha").shape == (2, 2000, 3)


def test_one_warning_names_the_unhealthy_fits(power_model, task_frame):
    with pytest.warns(bs.SamplerWarning, match=r"4 of 4 fits were unhealthy \(.*max tree depth in 4") as record:
        fits = power_model.fit_many(task_frame, by="task", seed=0, max_tree_depth=1, **SHORT)
    assert len(record) == 1
    assert not fits.healthy.any()
    assert not fits["t0"].healthy and "max_tree_depth=1" in str(fits["t0"].diagnostics())


def test_same_seed_same_draws(power_model, task_frame, task_fits):
    again = power_model.fit_many(task_frame, by="task", seed=0, **SHORT)
    np.testing.assert_array_equal(again.draws("alpha"), task_fits.draws("alpha"))


def test_bad_calls_are_clear_errors(power_model, task_frame):
    with pytest.raises(TypeError, match="needs by="):
        power_model.fit_many(task_frame)
    with pytest.raises(KeyError, match="no column 'tsk'"):
        power_model.fit_many(task_frame, by="tsk")
    holes = task_frame.astype({"task": object})
    holes.loc[[3, 7], "task"] = None
    with pytest.raises(bs.DataError, match=r"column 'task' has no key in rows \[3, 7\]"):
        power_model.fit_many(holes, by="task")
    broken = task_frame.copy()
    broken.loc[broken.index[broken["task"] == "t2"][0], "loss"] = -1.0
    with pytest.raises(bs.DataError, match=r"data set task='t2': .*'loss'"):
        power_model.fit_many(broken, by="task")
    with pytest.raises(TypeError, match="data set 1 must be a pandas DataFrame"):
        power_model.fit_many([task_frame, "t2.csv"])
    with pytest.raises(TypeError, match="already split"):
        power_model.fit_many([task_frame], by="task")
    with pytest.raises(ValueError, match="no data sets"):
        power_model.fit_many([])
    with pytest.raises(ValueError, match="batch_size"):
        power_model.fit_many(task_frame, by="task", batch_size=0)
    with pytest.raises(TypeError, match="unknown NUTS options"):
        power_model.fit_many(task_frame, by="task", dense=True)
    fits = power_model.fit_many(task_frame[task_frame["task"] == "t0"], by="task", seed=0, **SHORT)
    with pytest.raises(KeyError, match="no data set 't9'"):
        fits["t9"]


def test_olmo_ladder_eval_sets(olmo_final_losses):
    """Real workload: the compute scaling law of every evaluation set of the OLMo ladder, in one call.

    The exponents are small (0.05-0.1), where the irreducible term and the prefactor
    trade off along a curved ridge. Sampled in level coordinates (level, slope and split
    of the curve at the reference scale) every fit is healthy: over seeds 0-2 and both
    chain methods, 11 of 11 each time, minimum ESS 437-857 of 4,000 draws, median 6.9-8.5
    leapfrog steps per draw. In each parameter's own coordinates the same calls gave 0-6
    healthy fits of 11, 35-54 steps per draw and R-hat up to 1.19.
    """
    df = olmo_final_losses
    model = bs.ScalingModel(bs.laws.SaturatingPowerLaw("C"), target="loss", inputs={"C": "C"})
    fits = model.fit_many(df, by="eval_set", seed=0)  # a SamplerWarning (an unhealthy fit) fails the test
    assert len(fits) == df["eval_set"].nunique() == 11
    assert fits.healthy.all(), fits.health
    assert np.median(fits._stats["n_steps"].mean(axis=(1, 2))) < 15
    alpha = fits.summary().xs("alpha", level="parameter")
    assert ((alpha["median"] > 0.02) & (alpha["median"] < 1.0)).all(), alpha
    key = "loss_c4_en"
    single = model.fit(df[df["eval_set"] == key], seed=1).summary()
    many = fits[key].summary()
    for name in model.parameter_names:
        se = np.hypot(
            many.loc[name, "sd"] / np.sqrt(many.loc[name, "ess_bulk"]),
            single.loc[name, "sd"] / np.sqrt(single.loc[name, "ess_bulk"]),
        )
        assert abs(many.loc[name, "mean"] - single.loc[name, "mean"]) < Z_MATCH * se, name


@pytest.fixture(scope="module")
def olmo_final_losses():
    """Final checkpoint of every OLMo ladder run, one row per run and evaluation set."""
    df = load_or_skip("olmo_ladder")
    runs = df[df["kind"] == "ladder"]
    final = runs.loc[runs.groupby("run")["step"].idxmax()]
    losses = [c for c in df.columns if c.startswith("loss_")]
    return final.melt(id_vars=["run", "C"], value_vars=losses, var_name="eval_set", value_name="loss").dropna(
        subset=["loss"]
    )
