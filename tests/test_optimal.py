"""Compute budgets: optimal allocation (closed form and numerical), its inverse, over-training."""

import numpy as np
import pytest

import bayescale as bs
from bayescale.results import budgets as optimal
from tests.conftest import load_or_skip, simulate

LAW = bs.laws.Chinchilla()
BESIROGLU = {"E": 1.8169, "A": 482.01, "alpha": 0.3478, "B": 2085.43, "beta": 0.3658}
BUDGETS = np.log(np.array([1e15, 1e18, 1e21, 5.88e23, 1e25, 1e30]))


def random_draws(n=500, seed=0):
    """Parameters scattered widely around Besiroglu et al.'s, exponents from 0.05 to 1.5."""
    rng = np.random.default_rng(seed)
    p = {k: v * np.exp(0.5 * rng.standard_normal(n)) for k, v in BESIROGLU.items()}
    p["alpha"] = rng.uniform(0.05, 1.5, n)
    p["beta"] = rng.uniform(0.05, 1.5, n)
    return {k: v[:, None] for k, v in p.items()}


def test_closed_form_and_numerical_optimiser_agree():
    p = random_draws()
    closed = optimal.log_optimum(LAW, p, BUDGETS[None, :], method="closed")
    numeric = optimal.log_optimum(LAW, p, BUDGETS[None, :], method="numeric")
    for c, n in zip(closed, numeric, strict=True):
        assert np.all(np.isfinite(c)) and np.all(np.isfinite(n))
        np.testing.assert_allclose(np.exp(n), np.exp(c), rtol=1e-6)


def test_numerical_optimum_is_a_minimum():
    p = random_draws(seed=1)
    log_n, log_d, log_l = (np.asarray(v) for v in optimal.log_optimum(LAW, p, BUDGETS[None, :], method="numeric"))
    for shift in (-1e-3, 1e-3, -0.5, 0.5):  # the same budget, other splits
        moved = np.asarray(LAW.log_mean(bs.laws.base.with_logs(LAW, p), {"N": log_n + shift, "D": log_d - shift}))
        assert np.all(moved >= log_l - 1e-13)


def test_allocation_exponents_match_the_closed_form():
    p = random_draws(seed=2)
    a, b = optimal.allocation_exponents(LAW, p, BUDGETS[None, :])
    expected = p["beta"] / (p["alpha"] + p["beta"])
    np.testing.assert_allclose(np.asarray(a), np.broadcast_to(expected, a.shape), rtol=1e-9)
    np.testing.assert_allclose(np.asarray(a) + np.asarray(b), 1.0, rtol=1e-12)


def test_optimal_loss_falls_with_compute_and_budget_is_respected():
    p = random_draws(seed=3)
    grid = np.log(np.geomspace(1e15, 1e30, 60))
    log_n, log_d, log_l = (np.asarray(v) for v in optimal.log_optimum(LAW, p, grid[None, :], k=6.0))
    # falls strictly while the reducible terms are above float64 resolution of E, never rises
    assert np.all(np.diff(log_l, axis=1) <= 0) and np.all(np.diff(log_l[:, :10], axis=1) < 0)
    np.testing.assert_allclose(np.log(6.0) + log_n + log_d, np.broadcast_to(grid, log_n.shape), rtol=1e-13)


def test_flop_counting_constant_only_rescales_the_budget():
    p = random_draws(n=50, seed=4)
    six = optimal.log_optimum(LAW, p, np.log(6e22), k=6.0)
    two = optimal.log_optimum(LAW, p, np.log(2e22), k=2.0)
    for x, y in zip(six, two, strict=True):
        np.testing.assert_allclose(np.asarray(x), np.asarray(y), rtol=1e-12)


def test_inverse_inverts_the_forward_problem():
    p = random_draws(n=200, seed=5)
    _, _, log_l = optimal.log_optimum(LAW, p, BUDGETS[None, :])
    log_c = np.asarray(optimal.compute_for_loss(LAW, p, log_l))
    # where the loss still moves with the budget (beyond that L* = E to float64 and the budget is not
    # identified: those targets count as unreachable), the inverse gives the budget back ...
    moving = (np.exp(log_l) - p["E"]) / np.exp(log_l) > 1e-6
    budgets = np.broadcast_to(BUDGETS, log_c.shape)
    assert moving.mean() > 0.5 and np.all(np.isfinite(log_c[moving]))
    np.testing.assert_allclose(log_c[moving], budgets[moving], rtol=1e-9)
    # ... and wherever it answers, the forward problem at its answer gives the target back
    found = np.isfinite(log_c)
    forward = np.asarray(optimal.log_optimum(LAW, p, np.where(found, log_c, 0.0))[2])
    np.testing.assert_allclose(forward[found], np.asarray(log_l)[found], rtol=0, atol=1e-13)
    # at or below the irreducible loss no budget is enough
    for target in ((1 - 1e-9) * p["E"], 0.999 * p["E"]):
        assert np.all(np.isinf(np.asarray(optimal.compute_for_loss(LAW, p, np.log(target)))))


def test_overtraining_penalty_and_compute_multiplier():
    p = {k: np.array([v]) for k, v in BESIROGLU.items()}
    log_c = np.log(np.array([1e22, 1e24]))
    table = optimal.overtraining_table(LAW, p, log_c, 200.0, 6.0)
    assert np.all(np.asarray(table["penalty"]) > 0) and np.all(np.asarray(table["compute_multiplier"]) > 0)
    # runs at r = 200 given multiplier x the compute reach the compute-optimal loss
    more = np.asarray(log_c + table["compute_multiplier"][0])
    _, _, reached = optimal.at_ratio(LAW, {k: v[0] for k, v in p.items()}, more, 200.0)
    np.testing.assert_allclose(np.asarray(reached), np.asarray(table["optimal_loss"][0]), rtol=1e-10)
    # at the compute-optimal ratio there is nothing to pay
    log_n, log_d, _ = optimal.log_optimum(LAW, {k: v[0] for k, v in p.items()}, np.log(1e22))
    ratio = float(np.exp(log_d - log_n))
    at_optimum = optimal.overtraining_table(LAW, p, np.log(np.array([1e22])), ratio, 6.0)
    assert abs(float(at_optimum["relative_penalty"][0, 0])) < 1e-12
    assert abs(float(at_optimum["compute_multiplier"][0, 0])) < 1e-9


def test_budget_usage_contract(small_fit):
    """The usage block of the budgets issue, as written."""
    fit = small_fit
    opt = fit.optimal(C=[1e22, 5.88e23, 1e24])  # C = 6 N D unless told otherwise
    table = opt.interval(0.8)
    assert list(table.columns) == ["C", "quantity", "median", "lower", "upper"]
    assert list(table["quantity"].unique()) == ["N", "D", "tokens_per_param", "loss"]
    assert np.all(table["lower"] < table["median"]) and np.all(table["median"] < table["upper"])
    need = fit.compute_for(loss=2.0).interval(0.8)
    assert list(need.columns) == ["loss", "quantity", "median", "lower", "upper"]
    assert list(need["quantity"]) == ["C", "N", "D"]
    # the median budget for loss 2.0, spent optimally, gives loss 2.0 at its median draw
    c = need.set_index("quantity").loc["C", "median"]
    assert fit.compute_for(loss=2.0).probability("C", below=c)["probability"][0] == pytest.approx(0.5, abs=0.01)


def test_budget_posteriors_are_per_draw(small_fit):
    opt = small_fit.optimal(C=[5.88e23])
    post = small_fit.idata.posterior
    a = (post["beta"] / (post["alpha"] + post["beta"])).values.ravel()
    np.testing.assert_allclose(opt.draws("a")[:, 0], a, rtol=1e-9)
    assert opt.draws("N").shape == (a.size, 1)
    exponents = opt.interval(0.9, quantities=["a", "b"])
    assert list(exponents["quantity"]) == ["a", "b"]
    with pytest.raises(KeyError, match="no quantity 'gamma'"):
        opt.draws("gamma")


def test_chinchilla_tokens_per_parameter_beside_besiroglu(chinchilla_fit):
    """At Gopher's budget: Besiroglu et al. ~20 (80% bootstrap [10, 29]); a = 0.513 (SE 0.020)."""
    opt = chinchilla_fit.optimal(C=5.88e23)
    ratio = opt.interval(0.8).set_index("quantity").loc["tokens_per_param"]
    assert 10 < ratio["lower"] < ratio["median"] < ratio["upper"] < 29
    a = opt.interval(0.9, quantities=["a"]).iloc[0]
    assert a["lower"] < 0.513 < a["upper"]


def test_bad_budgets_and_laws_are_refused(small_fit):
    with pytest.raises(ValueError, match=r"C must be positive and finite; got \[-1.0\] at positions \[1\]"):
        small_fit.optimal(C=[1e22, -1.0])
    with pytest.raises(TypeError, match="C must be a number or a 1-D sequence"):
        small_fit.optimal(C="a lot")
    with pytest.raises(ValueError, match="k must be positive"):
        small_fit.optimal(C=1e22, k=0.0)
    with pytest.raises(ValueError, match="loss must be positive and finite"):
        small_fit.compute_for(loss=float("nan"))
    with pytest.raises(ValueError, match="this fit has no group column"):
        small_fit.optimal(C=1e22, group="OPT")
    law = bs.laws.SaturatingPowerLaw("C")
    df = simulate(law, {"E": 1.8, "A": 1e6, "alpha": 0.3}, {"C": np.geomspace(1e18, 1e24, 30)}, 0.01, seed=0)
    one_input = bs.ScalingModel(law, target="y").fit(df, seed=0)
    with pytest.raises(ValueError, match=r"needs a law of model size and data .* has inputs \['C'\]"):
        one_input.optimal(C=1e22)


def test_porian_loaders():
    points = load_or_skip("porian_isoflop")
    fits = load_or_skip("porian_reference_fits")
    assert len(points) == 1745 and points["recipe"].nunique() == 15 and len(fits) == 15
    assert {"recipe", "label", "C", "N", "D", "loss"} <= set(points.columns)
    np.testing.assert_allclose(points["C"], 6 * points["N"] * points["D"], rtol=1e-9)
    assert set(fits["recipe"]) == set(points["recipe"])
    tuned = fits.set_index("recipe").loc["rw|tuned|short|const|standard|val", "a_exponent_Nopt"]
    assert tuned == pytest.approx(0.497, abs=5e-4)


def test_quantiles_keep_infinite_draws_infinite():
    draws = np.array([[1.0, 1.0], [2.0, np.inf], [3.0, np.inf], [4.0, np.inf]])
    np.testing.assert_allclose(optimal.quantiles(draws, [0.5])[0, 0], np.quantile(draws[:, 0], 0.5))
    assert optimal.quantiles(draws, [0.5, 0.9])[:, 1].tolist() == [np.inf, np.inf]
    rng = np.random.default_rng(0)
    finite = rng.standard_normal((101, 3))
    np.testing.assert_allclose(
        optimal.quantiles(finite, [0.05, 0.5, 0.95]), np.quantile(finite, [0.05, 0.5, 0.95], axis=0)
    )


def test_an_unreachable_loss_needs_infinite_compute_and_says_why(small_fit):
    with pytest.warns(bs.DataWarning, match=r"target losses 0.5 \(100%\) are at or below the loss the law approaches"):
        need = small_fit.compute_for(loss=0.5)  # far below the irreducible loss (~1.8)
    table = need.interval(0.9)
    assert np.all(np.isinf(table["median"])) and np.all(np.isinf(table["upper"]))
    assert need.probability("C", below=1e30)["probability"][0] == 0.0


def test_a_law_whose_data_term_drifts_has_its_optimum_near_the_usual_ratios():
    # without drift Farseer's numerical optimum is Chinchilla's closed form; with a data exponent that
    # shrinks with size, the loss falls for ever a hundred decades away, and the optimum is the near one
    far = bs.laws.Farseer(N0=1e9, D0=2e10)
    p = {"E": 1.8169, "A": 482.01 * 1e9**-0.3478, "alpha": 0.3478, "B": 2085.43 * 2e10**-0.3658, "beta": 0.3658}
    still = optimal.log_optimum(far, p | {"kappa": 0.0, "gamma": 0.0}, BUDGETS)
    closed = optimal.log_optimum(LAW, BESIROGLU, BUDGETS, method="closed")
    for f, c in zip(still, closed, strict=True):
        np.testing.assert_allclose(np.exp(f), np.exp(c), rtol=1e-6)
    drifting = p | {"kappa": 0.05, "gamma": -0.05}
    log_n, log_d, log_l = (np.asarray(v) for v in optimal.log_optimum(far, drifting, BUDGETS[2:5]))
    ratio = np.exp(log_d - log_n)
    assert np.all((ratio > 1) & (ratio < 1e4)), ratio
    for shift in (-0.5, 0.5):  # a minimum along the budget
        moved = far.log_mean(bs.laws.base.with_logs(far, drifting), {"N": log_n + shift, "D": log_d - shift})
        assert np.all(np.asarray(moved) > log_l)
