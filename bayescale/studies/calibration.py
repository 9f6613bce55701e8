"""Calibration evidence: simulation-based calibration and extrapolation coverage.

:func:`sbc` is simulation-based calibration (Talts et al. 2018): draw parameters from
the prior, simulate data at the user's own design, fit every simulated data set and
record the rank of the true value among posterior draws. If the sampler and the model
code are right, every rank is uniform; a too narrow posterior (a noise scale fixed too
small, a missing Jacobian) piles ranks at the ends, a biased one at one end.

:func:`extrapolation_coverage` asks the question users stake budgets on: fitted at the
small scales, how often does a 90% predictive interval at the large scales contain the
new run? Averaged over the prior, a calibrated model covers at the nominal rate.

All simulated data sets of a study are fitted in one compiled, vectorised NUTS program
(:func:`bayescale.sampler.runner.sample_batches`), so a few hundred fits take minutes on a laptop.

The prior of a study cannot depend on the simulated data, so the references are fixed
for the whole study: the inputs' at the design's geometric means (as a fit of data at
that design would have them), the target's at the model's ``reference`` if set, else at
the geometric mean of the design's target column if it has one, else at 1 (0.5 for a
rate under a LogitNormal likelihood; a rate of about 0.5 for a Binomial model). Each
simulated fit is then exactly ``model.fit`` with those references.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
from numpyro.infer import Predictive
from numpyro.infer.util import log_density
from scipy import stats

from bayescale.data import DataError, ScalingData, count_trials, group_labels
from bayescale.model.args import ModelArgs
from bayescale.model.arguments import log_references, model_args
from bayescale.model.build import latent_sites
from bayescale.model.build import model_of as model_function
from bayescale.model.discrepancy import hull_distance
from bayescale.plot import rank_histograms
from bayescale.results.prediction import posterior_draws
from bayescale.sampler.cluster import check_client
from bayescale.sampler.compile import compiled
from bayescale.sampler.diagnostics import SamplerWarning, ess_wanted, health_table, unhealthy_reasons
from bayescale.sampler.options import NUTSOptions, check_counts, dimension
from bayescale.sampler.runner import sample_batches
from bayescale.spec import ScalingModel

RANK_DRAWS = 99  # posterior draws each rank is computed against: ranks 0..99, 100 values
LEVELS = (0.5, 0.8, 0.9, 0.95)
MIN_PER_BIN = 5  # expected count per histogram bin for the chi-square test
MAX_PRIOR_ROUNDS = 20  # rounds of prior draws when the model truncates its prior (rate ceilings)


@dataclass
class _Setup:
    """A model's numeric arguments at a design, with the references fixed for a study."""

    data: ScalingData
    log_refs: dict[str, float]
    args: ModelArgs  # observed=None
    n_groups: int


def _setup(model: ScalingModel, design: pd.DataFrame, log_refs: dict[str, float] | None = None) -> _Setup:
    """Validate ``design`` (with a placeholder target where it has none) and build the model arguments."""
    if not isinstance(design, pd.DataFrame):
        raise TypeError(f"design must be a pandas DataFrame of the model's input columns, got {type(design).__name__}")
    if model.within is not None:
        raise ValueError(
            f"the calibration studies do not take groups nested in outer groups (within={model.within!r}) yet: they "
            "fit the simulations as fit_many does, with groups padded across data sets"
        )
    frame = design.copy()
    if model.target not in frame.columns:
        if model.counts:
            if model.trials not in frame.columns:
                raise DataError(
                    f"the design needs the column {model.trials!r} (number of items per row) of the Binomial model"
                )
            frame[model.target] = np.ceil(count_trials(frame, model.trials) / 2)
        else:
            frame[model.target] = 0.5 if model.likelihood.rate else 1.0  # a rate's placeholder is one
    data = model.validate(frame)
    if log_refs is None:
        log_refs = log_references(model, data)
    args = model_args(model, data, log_refs, pilot=False)._replace(observed=None)
    return _Setup(data, log_refs, args, len(data.group_labels))


def _prior_draws(model: ScalingModel, setup: _Setup, n: int, key) -> tuple[dict, np.ndarray, int]:
    """``n`` draws from the prior, their simulated observations at the design, and the number rejected.

    The parameters are drawn by NumPyro (the observed site conditioned on a placeholder, so not
    drawn), the observations around the law by the likelihood on the host, as predictions are
    (``draw_log_target``: JAX's Student-t and Binomial samplers take a second to compile).
    Draws where the model's log density is -inf (a rate law over 1, which the model's
    prior excludes through a factor that forward simulation ignores) or not a number (a
    simulated value that overflows) are rejected; the studies report how many.
    """
    sites = latent_sites(model.law, model.likelihood, model.treatments, setup.n_groups, scaled=bool(model.scaled_names))
    numpyro_model = model_function(model)
    placeholder = jnp.full(setup.data.n_rows, -1.0 if model.likelihood.rate and not model.counts else 0.0)
    simulate = compiled(
        lambda key: Predictive(numpyro_model, num_samples=n)(key, setup.args._replace(observed=placeholder)),
        runs="once",
    )
    joint = compiled(
        jax.vmap(lambda z, y: log_density(numpyro_model, (setup.args._replace(observed=y),), {}, z)[0]), runs="once"
    )
    data, law = setup.data, model.law
    labels = np.asarray(data.group_labels, dtype=str)
    noise_log_sd = setup.args.noise_log_sd
    kept: list[dict[str, np.ndarray]] = []
    total = 0
    for attempt in range(MAX_PRIOR_ROUNDS):
        round_key = jax.random.fold_in(key, attempt)
        draws = {k: np.asarray(v) for k, v in simulate(round_key).items() if k != "obs"}
        _, log_obs = posterior_draws(
            law,
            model.likelihood,
            model.treatments,
            draws,
            {x: setup.log_refs[x] for x in law.inputs},
            {x: np.asarray(setup.args.log_x[x]) for x in law.inputs},
            jax.random.fold_in(round_key, 1),
            fitted_groups=tuple(labels),
            row_groups=None if data.groups is None else labels[data.groups],
            trials=data.trials,
            noise_log_sd=None if noise_log_sd is None else np.asarray(noise_log_sd),
        )
        draws["obs"] = np.round(np.exp(log_obs) * data.trials) if model.counts else log_obs
        finite = np.isfinite(np.asarray(joint({k: draws[k] for k in sites}, draws["obs"])))
        kept.append({k: v[finite] for k, v in draws.items()})
        total += int(finite.sum())
        if total >= n:
            out = {k: np.concatenate([d[k] for d in kept])[:n] for k in kept[0]}
            return out, out.pop("obs"), (attempt + 1) * n - total
    raise ValueError(
        f"only {total} of {n * MAX_PRIOR_ROUNDS} prior draws give data with a finite density at this design; "
        "the priors put almost all their mass where the law is invalid (e.g. a rate above 1): tighten them"
    )


def _batched(args: ModelArgs, observed: np.ndarray) -> ModelArgs:
    """``args`` repeated along a new leading axis, one member per row of ``observed``."""
    n = observed.shape[0]
    tiled = jax.tree_util.tree_map(lambda a: jnp.broadcast_to(a, (n, *jnp.shape(a))), args)
    return tiled._replace(observed=jnp.asarray(observed))


def _simulate_and_fit(
    model,
    truth_model,
    setup,
    truth_setup,
    n_sims,
    seed,
    chains,
    warmup,
    draws,
    options,
    batch_size,
    n_fit=None,
    progress_bar=None,
    client=None,
):
    """Prior draws of ``truth_model`` simulated at ``truth_setup``; ``model`` fitted to their first ``n_fit`` rows.

    Returns the true parameters, the simulated observations, the number of prior draws
    rejected, the fits' seeds, and their posterior arrays and sample statistics.
    """
    truth, observed, rejected = _prior_draws(
        truth_model, truth_setup, n_sims, jax.random.fold_in(jax.random.key(seed), 0)
    )
    seeds = np.random.default_rng(seed).integers(0, 2**31 - 1, size=n_sims)
    fitted = observed[:, :n_fit]
    # simulated posteriors differ a lot (quickstart design: 7 to 770 leapfrog steps per draw), and on CPU a
    # vectorised batch pays for its longest trajectory (40 Chinchilla simulations: 100 s in one batch, 56 s one
    # at a time, 26 s one at a time in 2 threads), so on CPU every data set is its own batch (the default)
    sites = latent_sites(model.law, model.likelihood, model.treatments, setup.n_groups, scaled=bool(model.scaled_names))
    args = _batched(setup.args, fitted)
    samples = sample_batches(
        model_function(model),
        args,
        n_sims,
        sites,
        seeds=seeds,
        chains=chains,
        warmup=warmup,
        draws=draws,
        options=options.resolved(dimension(sites), setup.data.n_rows, local_modes=model.law.local_modes, many=True),
        report=model.posterior_names,
        batch_size=batch_size,
        cache_key=model.structure_key,
        progress_bar=progress_bar,
        client=client,
    )
    return truth, observed, rejected, seeds, samples.posterior, samples.stats


def _truth_model(model: ScalingModel, simulate_from: ScalingModel | None) -> ScalingModel:
    """The model data are simulated from; it must read the same columns as the fitted one."""
    if simulate_from is None:
        return model
    if not isinstance(simulate_from, ScalingModel):
        raise TypeError(f"simulate_from must be a ScalingModel, got {type(simulate_from).__name__}")
    mine = (model.target, model.inputs, model.group, model.trials, model.noise)
    theirs = (
        simulate_from.target,
        simulate_from.inputs,
        simulate_from.group,
        simulate_from.trials,
        simulate_from.noise,
    )
    if mine != theirs:
        raise ValueError(
            "simulate_from must use the same columns as the model (target, inputs, group, trials, noise): "
            f"{theirs} against {mine}"
        )
    return simulate_from


def _check_study(n_sims, seed, chains, warmup, draws, batch_size, client) -> None:
    for name, value, low in (("n_sims", n_sims, 1), ("seed", seed, 0)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
            raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
    check_counts(chains, warmup, draws)
    if batch_size is not None and (isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1):
        raise ValueError(f"batch_size must be a positive integer or None, got {batch_size!r}")
    if client is not None:
        check_client(client)


def _labelled(name: str, values: np.ndarray, groups: Sequence[str], group_level: bool) -> dict[str, np.ndarray]:
    """One array per scalar: ``name``, or ``name[group]`` for group-level values (on the last axis)."""
    if not group_level:
        return {name: values}
    return {f"{name}[{g}]": values[..., i] for i, g in enumerate(groups)}


def _health(posterior: dict[str, np.ndarray], sample_stats: dict, max_tree_depth: int) -> pd.DataFrame:
    """Per simulated fit: divergences, worst R-hat and ESS, tree-depth saturation, healthy."""
    return health_table(posterior, sample_stats, max_tree_depth)[0].rename_axis("sim")


def _warn_unhealthy(health: pd.DataFrame, what: str, wanted: float) -> None:
    """One SamplerWarning for the unhealthy fits of a study; ``wanted``: the ESS a healthy fit needs."""
    bad = ~health["healthy"]
    if bad.any():
        warnings.warn(
            f"{bad.sum()} of {len(health)} simulated fits of the {what} were unhealthy "
            f"({unhealthy_reasons(health, wanted)}); "
            "they are all counted (calibration is a property of the whole procedure). Try more warmup and "
            "draws, target_accept_prob=0.95, or priors that exclude the simulations that fail (study.health "
            "lists them, study.truth has their parameters)",
            SamplerWarning,
            stacklevel=3,
        )


# -- simulation-based calibration -----------------------------------------------------------


def sbc(
    model: ScalingModel,
    design: pd.DataFrame,
    n_sims: int = 200,
    *,
    seed: int = 0,
    chains: int = 2,
    warmup: int = 500,
    draws: int = 500,
    rank_draws: int = RANK_DRAWS,
    simulate_from: ScalingModel | None = None,
    batch_size: int | None = None,
    progress_bar: bool | None = None,
    client=None,
    **nuts_options,
) -> SBCStudy:
    """Simulation-based calibration of ``model`` at the inputs of ``design``.

    Parameters
    ----------
    model : ScalingModel
        The specification to check (law, likelihood, priors, groups).
    design : pandas.DataFrame
        The input columns of the runs (and the group, trials and noise columns when the
        model has them): the scales at which data are simulated. A target column, if
        present, only sets the target's reference (module docstring).
    n_sims : int
        Number of simulated data sets (200 resolves a rank histogram of 20 bins).
    seed : int
        Seed of the whole study: prior draws, simulated noise and every fit.
    chains, warmup, draws : int
        NUTS settings of every simulated fit.
    rank_draws : int
        Posterior draws (evenly thinned from ``chains * draws``) each rank is computed
        against; ranks take the values ``0 .. rank_draws``. Thinning keeps the draws
        nearly independent, which the uniformity test assumes.
    simulate_from : ScalingModel, optional
        Simulate from this model instead (same parameter names): a deliberate mismatch,
        to see how the fitted model's intervals fare when it is wrong.
    batch_size : int, optional
        Simulated data sets per vectorised NUTS call. Default: all at once on a GPU or
        TPU; on CPU one per call, with the calls spread over the cores.
    progress_bar : bool, optional
        Show progress over the simulated fits; default when the session is interactive.
    client : dask.distributed.Client, optional
        Fit the simulations on the workers of a Dask cluster, as
        :meth:`ScalingModel.fit_many` does; the study is the same as without it.
    **nuts_options
        Passed to NUTS as in :meth:`ScalingModel.fit`.

    Returns
    -------
    SBCStudy

    Examples
    --------
    >>> import bayescale as bs
    >>> model = bs.ScalingModel("chinchilla")
    >>> study = bs.calibration.sbc(model, design=df[["N", "D"]], n_sims=200, seed=0)  # doctest: +SKIP
    >>> study.pvalues()                                                               # doctest: +SKIP
    >>> study.plot()                                                                  # doctest: +SKIP
    """
    _check_study(n_sims, seed, chains, warmup, draws, batch_size, client)
    if isinstance(rank_draws, bool) or not isinstance(rank_draws, int) or not 1 <= rank_draws <= chains * draws:
        raise ValueError(
            f"rank_draws must be an integer from 1 to chains * draws = {chains * draws}, got {rank_draws!r}"
        )
    options = NUTSOptions.from_kwargs(**nuts_options)
    truth_model = _truth_model(model, simulate_from)
    names = [n for n in model.posterior_names if n in truth_model.posterior_names]
    if not names:
        raise ValueError("simulate_from shares no parameter names with the model, so there is nothing to rank")
    setup = _setup(model, design)
    truth_setup = setup if simulate_from is None else _setup(truth_model, design, setup.log_refs)

    truth, _, rejected, _, posterior, sample_stats = _simulate_and_fit(
        model,
        truth_model,
        setup,
        truth_setup,
        n_sims,
        seed,
        chains,
        warmup,
        draws,
        options,
        batch_size,
        progress_bar=progress_bar,
        client=client,
    )
    groups = setup.data.group_labels
    thin = np.linspace(0, chains * draws - 1, rank_draws).round().astype(int)
    ranks, true_values, flat_posterior = {}, {}, {}
    for name in names:
        group_level = np.ndim(truth[name]) == 2  # (simulation, group)
        flat_posterior.update(_labelled(name, posterior[name], groups, group_level))
        true_values.update(_labelled(name, np.asarray(truth[name]), groups, group_level))
    for label, post in flat_posterior.items():
        kept = post.reshape(n_sims, chains * draws)[:, thin]
        ranks[label] = (kept < true_values[label][:, None]).sum(axis=1)
    health = _health(flat_posterior, sample_stats, options.max_tree_depth)
    _warn_unhealthy(health, "SBC study", ess_wanted(chains, draws))
    return SBCStudy(
        ranks=pd.DataFrame(ranks).rename_axis("sim"),
        truth=pd.DataFrame(true_values).rename_axis("sim"),
        health=health,
        rank_draws=rank_draws,
        seed=seed,
        model=model,
        rejected=rejected,
    )


@dataclass
class SBCStudy:
    """Result of :func:`sbc`: the rank of the truth among thinned posterior draws, per simulation.

    Attributes
    ----------
    ranks : pandas.DataFrame
        One row per simulation, one column per scalar parameter (``alpha``, or
        ``alpha[family]`` for group-level ones); values ``0 .. rank_draws``.
    truth : pandas.DataFrame
        The parameters each data set was simulated with, in the user's units.
    health : pandas.DataFrame
        Per simulated fit: divergences, worst R-hat and ESS, ``healthy``.
    rank_draws : int
        Posterior draws per rank.
    rejected : int
        Prior draws rejected because the model gives them zero density (a rate law above
        1) or their simulated data overflow; the study's prior is the model's, truncated there.
    """

    ranks: pd.DataFrame
    truth: pd.DataFrame
    health: pd.DataFrame
    rank_draws: int
    seed: int
    model: ScalingModel = field(repr=False)
    rejected: int = 0

    @property
    def n_sims(self) -> int:
        return len(self.ranks)

    def default_bins(self) -> int:
        """The most histogram bins (dividing the ``rank_draws + 1`` rank values) with >= 5 ranks expected per bin."""
        values = self.rank_draws + 1
        fits = [b for b in range(1, values + 1) if values % b == 0 and self.n_sims / b >= MIN_PER_BIN]
        return max(fits) if fits else 1

    def histogram(self, bins: int | None = None) -> pd.DataFrame:
        """Counts of ranks per bin (rows) and parameter (columns)."""
        bins = self._bins(bins)
        width = (self.rank_draws + 1) // bins
        return pd.DataFrame(
            {name: np.bincount(r.to_numpy() // width, minlength=bins) for name, r in self.ranks.items()}
        ).rename_axis("bin")

    def pvalues(self, bins: int | None = None) -> pd.Series:
        """Per parameter: p-value of a chi-square test that its ranks are uniform.

        Small p-values (below ``0.01 / number of parameters``, say) are evidence of
        miscalibration; under a calibrated model they are themselves uniform.
        """
        counts = self.histogram(bins)
        if len(counts) < 2:
            raise ValueError(f"{self.n_sims} simulations are too few for a rank histogram of 2 bins (5 per bin)")
        return pd.Series(
            {name: float(stats.chisquare(c.to_numpy()).pvalue) for name, c in counts.items()}, name="p_value"
        )

    def coverage(self, levels: Sequence[float] = LEVELS) -> pd.DataFrame:
        """Share of simulations whose truth lies inside the central posterior interval at each level.

        From the ranks: the truth is inside the central ``level`` interval of the thinned
        draws when its rank is in the middle ``level`` share of ``0 .. rank_draws``.
        """
        u = (self.ranks.to_numpy() + 0.5) / (self.rank_draws + 1)
        rows = {}
        for level in _check_levels(levels):
            inside = (u > (1 - level) / 2) & (u < (1 + level) / 2)
            rows[f"{level:g}"] = inside.mean(axis=0)
        return pd.DataFrame(rows, index=self.ranks.columns).rename_axis("parameter")

    def table(self, bins: int | None = None) -> pd.DataFrame:
        """Per parameter: p-value, mean and sd of the normalised rank (0.5 and 0.289 when uniform), 90% coverage."""
        u = self.ranks / self.rank_draws
        return pd.DataFrame(
            {
                "p_value": self.pvalues(bins),
                "rank_mean": u.mean(),
                "rank_sd": u.std(ddof=1),
                "coverage_90": self.coverage([0.9])["0.9"],
            }
        )

    def plot(self, bins: int | None = None, *, names: Sequence[str] | None = None, fig=None):
        """Rank histograms with the 99% band of counts expected under uniformity; returns the figure."""
        counts = self.histogram(bins)
        if names is not None:
            unknown = [n for n in names if n not in counts.columns]
            if unknown:
                raise KeyError(f"no parameters {unknown} in the study; parameters: {list(counts.columns)}")
            counts = counts[list(names)]
        return rank_histograms(counts, self.n_sims, self.pvalues(bins), fig=fig)

    def _bins(self, bins: int | None) -> int:
        if bins is None:
            return self.default_bins()
        values = self.rank_draws + 1
        if isinstance(bins, bool) or not isinstance(bins, int) or bins < 1 or values % bins:
            raise ValueError(f"bins must divide the {values} possible ranks (0..{self.rank_draws}), got {bins!r}")
        return bins

    def __repr__(self) -> str:
        p = self.pvalues()
        return (
            f"SBCStudy({self.n_sims} simulations, {len(p)} parameters, smallest p-value {p.min():.3g} "
            f"({p.idxmin()}), {int((~self.health['healthy']).sum())} unhealthy fits, "
            f"{self.rejected} prior draws rejected)"
        )


def _check_levels(levels: Sequence[float]) -> list[float]:
    levels = [float(x) for x in np.atleast_1d(levels)]
    bad = [x for x in levels if not 0 < x < 1]
    if bad:
        raise ValueError(f"levels must be in (0, 1), got {bad}")
    return levels


# -- extrapolation coverage -----------------------------------------------------------------


def extrapolation_coverage(
    model: ScalingModel,
    design: pd.DataFrame,
    future: pd.DataFrame,
    n_sims: int = 200,
    *,
    seed: int = 0,
    levels: Sequence[float] = LEVELS,
    chains: int = 2,
    warmup: int = 500,
    draws: int = 500,
    simulate_from: ScalingModel | None = None,
    batch_size: int | None = None,
    progress_bar: bool | None = None,
    client=None,
    **nuts_options,
) -> CoverageStudy:
    """How often predictive intervals at ``future`` rows contain a new run, fitted at ``design``.

    Each simulation draws parameters from the prior, simulates runs at ``design`` and at
    ``future`` with the same parameters, fits the ``design`` runs and asks whether each
    simulated future run lies inside the central predictive interval (``kind="observation"``
    of :meth:`ScalingFit.predict`) at every level.

    Parameters
    ----------
    model : ScalingModel
    design, future : pandas.DataFrame
        Input columns (and group / trials / noise columns) of the fitted runs and of the
        runs to predict, e.g. the small and the large models of a ladder.
    n_sims, seed, chains, warmup, draws, simulate_from, batch_size, progress_bar, client, **nuts_options
        As in :func:`sbc`.
    levels : sequence of float
        Nominal levels of the central intervals.

    Returns
    -------
    CoverageStudy

    Examples
    --------
    >>> small, large = df[df.C <= 1e20], df[df.C > 1e20]                        # doctest: +SKIP
    >>> study = bs.calibration.extrapolation_coverage(model, small, large)     # doctest: +SKIP
    >>> study.table()                                                          # doctest: +SKIP
    """
    _check_study(n_sims, seed, chains, warmup, draws, batch_size, client)
    levels = _check_levels(levels)
    options = NUTSOptions.from_kwargs(**nuts_options)
    if not isinstance(future, pd.DataFrame) or len(future) == 0:
        raise DataError("future must be a non-empty DataFrame of the rows to predict")
    truth_model = _truth_model(model, simulate_from)
    setup = _setup(model, design)
    # the target, if given, only sets the reference (done above); the simulation needs the inputs alone
    both = pd.concat([frame.drop(columns=[model.target], errors="ignore") for frame in (design, future)])
    both = both.reset_index(drop=True)
    truth_setup = _setup(truth_model, both, setup.log_refs)
    n_fit = len(design)
    truth, observed, rejected, seeds, posterior, sample_stats = _simulate_and_fit(
        model,
        truth_model,
        setup,
        truth_setup,
        n_sims,
        seed,
        chains,
        warmup,
        draws,
        options,
        batch_size,
        n_fit,
        progress_bar,
        client,
    )
    future_frame = both.iloc[n_fit:]
    groups = setup.data.group_labels
    new_rows = truth_setup.data
    log_x = {x: np.log(new_rows.inputs[x][n_fit:]) - setup.log_refs[x] for x in model.law.inputs}
    log_ref = {x: setup.log_refs[x] for x in model.law.inputs}
    trials = None if new_rows.trials is None else new_rows.trials[n_fit:]
    row_groups = None if model.group is None else group_labels(future_frame, model.group)
    actual = observed[:, n_fit:]
    distance, where, codes = _beyond(model, new_rows, n_fit)
    risk_key = jax.random.fold_in(jax.random.key(seed), 2)
    if truth_model.discrepancy is not None and not model.counts:  # the simulated future drifts from the law
        true_sigma = _noise_per_row(truth["sigma"], groups, row_groups)
        true_drift = truth_model.discrepancy.log_deviation(risk_key, where, distance, codes, true_sigma)
        actual = actual + true_drift
    actual = actual / trials if model.counts else np.exp(actual)
    inside = np.zeros((n_sims, len(future_frame), len(levels)), dtype=bool)
    for i in range(n_sims):
        draws_i = {k: v[i].reshape((chains * draws,) + v.shape[3:]) for k, v in posterior.items()}
        _, log_obs = posterior_draws(
            model.law,
            model.likelihood,
            model.treatments,
            {name: draws_i[name] for name in model.posterior_names},
            log_ref,
            log_x,
            jax.random.key(int(seeds[i])),
            fitted_groups=groups,
            row_groups=row_groups,
            trials=trials,
        )
        log_obs = np.asarray(log_obs)
        if model.discrepancy is not None and not model.counts:  # the prediction's risk, as ScalingFit.predict
            key = jax.random.fold_in(jax.random.key(int(seeds[i])), 7)
            sigma = _noise_per_row(draws_i["sigma"], groups, row_groups)
            log_obs = log_obs + model.discrepancy.log_deviation(key, where, distance, codes, sigma)
        with np.errstate(divide="ignore"):
            y = np.exp(log_obs)
        for j, level in enumerate(levels):
            lower, upper = np.quantile(y, [(1 - level) / 2, (1 + level) / 2], axis=0)
            inside[i, :, j] = (actual[i] >= lower) & (actual[i] <= upper)
    flat = {}
    for name in model.posterior_names:
        flat.update(_labelled(name, posterior[name], groups, posterior[name].ndim == 4))  # (sim, chain, draw, group)
    health = _health(flat, sample_stats, options.max_tree_depth)
    _warn_unhealthy(health, "coverage study", ess_wanted(chains, draws))
    return CoverageStudy(inside, levels, future_frame.reset_index(drop=True), health, seed, rejected)


def _noise_per_row(sigma, groups: Sequence[str], row_groups) -> np.ndarray:
    """The noise scale per draw (or simulation), and per future row where it varies by group."""
    sigma = np.asarray(sigma)
    return sigma if sigma.ndim == 1 else sigma[:, [list(groups).index(g) for g in row_groups]]


def _beyond(model, rows: ScalingData, n_fit: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Decades from each future row (after the first ``n_fit``) to its group's fitted rows, their ``log10``
    inputs and group codes."""
    log10_x = np.column_stack([np.log10(rows.inputs[x]) for x in model.law.inputs])
    groups = np.zeros(len(log10_x), dtype=int) if rows.groups is None else np.asarray(rows.groups)
    fitted, future = log10_x[:n_fit], log10_x[n_fit:]
    distance = np.zeros(len(future))
    for g in np.unique(groups[n_fit:]):
        mine = groups[:n_fit] == g
        rows_g = groups[n_fit:] == g
        distance[rows_g] = hull_distance(fitted[mine] if mine.any() else fitted, future[rows_g])
    return distance, future, groups[n_fit:]


@dataclass
class CoverageStudy:
    """Result of :func:`extrapolation_coverage`.

    Attributes
    ----------
    inside : numpy.ndarray
        Shape (simulations, future rows, levels): whether each simulated future run fell
        inside its central predictive interval.
    levels : list of float
    future : pandas.DataFrame
        The predicted rows.
    health : pandas.DataFrame
        Per simulated fit, as in :class:`SBCStudy`.
    rejected : int
        Prior draws rejected, as in :class:`SBCStudy`.
    """

    inside: np.ndarray
    levels: list[float]
    future: pd.DataFrame
    health: pd.DataFrame
    seed: int
    rejected: int = 0

    def table(self) -> pd.DataFrame:
        """Per level: nominal, empirical coverage, its standard error and a 95% interval.

        Rows predicted from one fit share its errors, so the standard error treats each
        simulation (its share of rows covered) as one independent unit.
        """
        per_sim = self.inside.mean(axis=1)  # (sims, levels)
        n = per_sim.shape[0]
        coverage = per_sim.mean(axis=0)
        se = per_sim.std(axis=0, ddof=1) / math.sqrt(n) if n > 1 else np.full(len(self.levels), np.nan)
        return pd.DataFrame(
            {
                "nominal": self.levels,
                "coverage": coverage,
                "se": se,
                "lower": coverage - 1.96 * se,
                "upper": coverage + 1.96 * se,
            },
            index=pd.Index([f"{x:g}" for x in self.levels], name="level"),
        )

    def by_row(self) -> pd.DataFrame:
        """Coverage at every future row (columns: one per level), next to the row's inputs."""
        share = self.inside.mean(axis=0)
        return pd.concat([self.future, pd.DataFrame(share, columns=[f"coverage_{x:g}" for x in self.levels])], axis=1)

    def __repr__(self) -> str:
        t = self.table()
        cells = ", ".join(f"{r.nominal:.0%}: {r.coverage:.2f}" for r in t.itertuples())
        return f"CoverageStudy({self.inside.shape[0]} simulations x {self.inside.shape[1]} future rows; {cells})"
