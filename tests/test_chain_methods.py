"""How chains run: threads of a single-chain program (CPU default) or one vectorised program."""

from __future__ import annotations

import jax
import numpy as np
import pandas as pd
import pytest

import bayescale as bs
from bayescale.sampler import runner as runners
from bayescale.sampler import threads as thread_pool
from bayescale.sampler.options import NUTSOptions, dimension
from bayescale.sampler.progress import Progress
from tests.conftest import args_of, assert_same_posterior, model_function, sites_of


@pytest.fixture(scope="module")
def runs() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    c = np.geomspace(1e18, 1e22, 30)
    return pd.DataFrame({"C": c, "loss": (1.7 + 8.0 * (c / 1e20) ** -0.15) * np.exp(0.01 * rng.standard_normal(30))})


@pytest.fixture(scope="module")
def model() -> bs.ScalingModel:
    return bs.ScalingModel(bs.laws.SaturatingPowerLaw("C"), target="loss", inputs={"C": "C"})


@pytest.mark.skipif(jax.default_backend() != "cpu", reason="the CPU default")
# short chains, about the method, not mixing: R-hat was above 1.01 for 6-8 of 20 seeds (either init)
@pytest.mark.filterwarnings("ignore::bayescale.SamplerWarning")
def test_chains_run_as_threads_by_default_on_cpu(model, runs):
    assert runners.default_chain_method() == "threads"
    fit = model.fit(runs, seed=0, chains=2, warmup=300, draws=300)
    assert fit.idata.posterior.attrs["chain_method"] == "threads"


def test_threads_and_vectorised_chains_sample_the_same_posterior(model, runs):
    fits = model.fit(runs, seed=0, chain_method="threads"), model.fit(runs, seed=1, chain_method="vectorized")
    assert all(fit.healthy for fit in fits)
    assert_same_posterior(*fits, model.parameter_names)


@pytest.mark.filterwarnings("ignore::bayescale.SamplerWarning")  # short chains: about determinism, not mixing
def test_draws_do_not_depend_on_the_number_of_threads(model, runs, monkeypatch):
    """Every chain is the same program on its own key, whichever thread runs it."""
    fits = []
    for threads in (1, 3):
        monkeypatch.setattr(thread_pool, "cpu_count", lambda threads=threads: threads)
        fits.append(model.fit(runs, seed=5, chains=3, warmup=200, draws=200, chain_method="threads"))
    for name in model.parameter_names:
        np.testing.assert_array_equal(fits[0].idata.posterior[name], fits[1].idata.posterior[name])


def test_an_error_in_one_chain_reaches_the_caller(model, runs):
    """A chain that fails raises in the caller, and the other chains stop instead of running on."""
    data = model.validate(runs)
    args = args_of(model, data)
    sites = sites_of(model, 0)
    options = NUTSOptions().resolved(dimension(sites), len(runs))
    runner = runners.Runner(model_function(model), sites, 100, options, "chain", report=model.posterior_names)
    short = args._replace(observed=args.observed[:-1])  # one row fewer: not the compiled shape
    keys = jax.random.split(jax.random.key(0), 3)
    with Progress(False, 0, "") as bar, pytest.raises(TypeError, match="compiled"):
        runner.run_threads([(keys[0], args, None), (keys[1], short, None), (keys[2], args, None)], 100, bar, target=0.9)
