"""Shared fixtures. Real datasets come from ``../shared/datasets`` through bayescale's loader."""

from __future__ import annotations

import os
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
from scipy import stats  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "datasets"
if not os.environ.get("BAYESCALE_DATA_DIR") and SHARED_DATA.is_dir():
    os.environ["BAYESCALE_DATA_DIR"] = str(SHARED_DATA)
# One JAX compilation cache for the whole run: the pytest-xdist workers, the notebook
# kernels and the CLI subprocesses compile many of the same samplers, and a cached one
# loads in a fraction of a second instead of several (set before JAX is imported; the
# variables reach the subprocesses too). A size bound makes JAX lock the folder, so that
# no process reads an entry another is still writing. Cleared with ``pytest --cache-clear``.
os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", str(REPO / ".pytest_cache" / "jax-compiled"))
os.environ.setdefault("JAX_COMPILATION_CACHE_MAX_SIZE", str(4 * 2**30))

import bayescale as bs  # noqa: E402
from bayescale.datasets import DatasetNotAvailable  # noqa: E402
from bayescale.model.arguments import log_references, model_args  # noqa: E402
from bayescale.model.build import latent_sites  # noqa: E402
from bayescale.model.build import model_of as model_function  # noqa: E402, F401  (the NumPyro model of a spec, for the tests)

# Besiroglu et al. (2024), 95% bootstrap intervals on the 240 Chinchilla rows they keep.
BESIROGLU_95 = {"alpha": (0.317, 0.373), "beta": (0.331, 0.415), "E": (1.769, 1.871)}


def load_or_skip(name: str) -> pd.DataFrame:
    """Load a public dataset, skipping the test when neither the cache nor the network has it."""
    try:
        return bs.datasets.load(name)
    except DatasetNotAvailable as err:
        pytest.skip(f"dataset {name!r} not available: {err}")


@pytest.fixture(scope="session")
def chinchilla() -> pd.DataFrame:
    """The 240 Chinchilla rows Besiroglu et al. keep."""
    df = load_or_skip("chinchilla")
    return df[~df["besiroglu_excluded"]]


@pytest.fixture(scope="session")
def chinchilla_fit(chinchilla):
    """One full-length fit shared by the tests that only read it."""
    model = bs.ScalingModel(bs.laws.Chinchilla(), target="loss", inputs={"N": "N", "D": "D"})
    return model.fit(chinchilla, seed=0, chains=4, warmup=1000, draws=1000)


@pytest.fixture(scope="session")
def quickstart_runs() -> pd.DataFrame:
    """The simulated runs bundled in data/ (the README's quickstart)."""
    return pd.read_csv(REPO / "data" / "simulated_runs.csv")


@pytest.fixture(scope="session")
def small_fit(quickstart_runs):
    """A default-length fit of the bundled data (about 0.5 s once compiled), for results plumbing."""
    return bs.ScalingModel("chinchilla").fit(quickstart_runs, seed=1)


def args_of(model: bs.ScalingModel, data, **options):
    """The model arguments of validated ``data`` at their own reference scales (what ``fit`` builds)."""
    return model_args(model, data, log_references(model, data), **options)


def sites_of(model: bs.ScalingModel, n_groups: int = 0) -> dict:
    """The latent sites of ``model`` for ``n_groups`` groups."""
    return latent_sites(model.law, model.likelihood, model.treatments, n_groups)


def simulate(law: bs.Law, params: dict, inputs: dict, sigma: float, seed: int, nu: float | None = None) -> pd.DataFrame:
    """Observations ``law.mean * exp(noise)`` with Normal (or Student-t) noise on the log scale."""
    rng = np.random.default_rng(seed)
    mean = np.asarray(law.mean(params, **inputs))
    noise = rng.standard_t(nu, mean.shape) if nu else rng.standard_normal(mean.shape)
    return pd.DataFrame({**inputs, "y": mean * np.exp(sigma * noise)})


Z_MATCH = 4.5  # |mean difference| / its Monte Carlo SE: two-sided p ~ 7e-6 per comparison
SD_MATCH = 5.0  # |sd ratio - 1| / its approximate SE, sqrt((kurt_a - 1) / (4 ESS_a) + (kurt_b - 1) / (4 ESS_b))


def summary_draws(fit, name: str) -> np.ndarray:
    """The pooled draws behind the summary row ``name`` (``"alpha"`` or ``"alpha[fam2]"``)."""
    variable, _, label = name.partition("[")
    values = fit.idata.posterior[variable]
    if label:
        (dim,) = (d for d in values.dims if d not in ("chain", "draw"))
        values = values.sel({dim: label.rstrip("]")})
    return np.ravel(values.values)


def assert_same_posterior(a, b, names) -> None:
    """Two fits agree on the mean and sd of every name, within their Monte Carlo errors.

    The sd's error comes from each side's kurtosis (Gaussian 3): the variance of a sample
    variance is ``sigma^4 (kurtosis - 1) / n``, so a heavy-tailed posterior's sd is less
    certain than a normal one's at the same ESS (E_pop in the hierarchy tests: kurtosis ~4).
    """
    tables = a.summary(), b.summary()
    for name in names:
        x, y = (t.loc[name] for t in tables)
        se = np.hypot(x["sd"] / np.sqrt(x["ess_bulk"]), y["sd"] / np.sqrt(y["ess_bulk"]))
        assert abs(x["mean"] - y["mean"]) < Z_MATCH * se, name
        kurtosis = [stats.kurtosis(summary_draws(fit, name), fisher=False) for fit in (a, b)]
        sd_se = np.sqrt(sum((k - 1) / (4 * t["ess_bulk"]) for k, t in zip(kurtosis, (x, y), strict=True)))
        assert abs(x["sd"] / y["sd"] - 1) < SD_MATCH * sd_se, (name, x["sd"], y["sd"], sd_se)


def pytest_collection_modifyitems(config, items):
    """The notebooks first: each takes minutes, and the pytest-xdist workers balance the
    rest around them instead of waiting on one at the end of the run."""
    items.sort(key=lambda item: item.get_closest_marker("notebook") is None)  # stable: otherwise file order
