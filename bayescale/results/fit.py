"""``ScalingFit``: the posterior of a fitted scaling model, its diagnostics, predictions, budgets and comparisons."""

from __future__ import annotations

import dataclasses
import json
import math
import os
import warnings
from collections.abc import Mapping

import arviz as az
import jax
import numpy as np
import pandas as pd
from numpyro.infer import Predictive
from scipy.special import ndtr

from bayescale import plot
from bayescale.data import (
    DataError,
    DataWarning,
    ScalingData,
    count_columns,
    count_trials,
    group_labels,
    numeric_column,
    prediction_inputs,
)
from bayescale.model.arguments import model_args
from bayescale.model.build import model_of
from bayescale.model.discrepancy import hull_distance
from bayescale.results import budgets, design
from bayescale.results.budgets import FLOPS_PER_PARAMETER_TOKEN, BudgetPosterior
from bayescale.results.comparison import RecipeComparison
from bayescale.results.netcdf import fit_attributes, obs_coordinate
from bayescale.results.prediction import (
    Outer,
    Prediction,
    as_frame,
    group_parameters,
    log_density,
    noise_draws,
    posterior_draws,
)
from bayescale.sampler import diagnostics
from bayescale.sampler.options import NUTSOptions
from bayescale.sampler.runner import Samples

ROW_GROUP = plot.ROW_GROUP  # constant_data variable with each row's group label
ROW_OUTER = "outer_of_obs"  # constant_data variable with each row's outer group label (``within``)
RISK_STREAM = 7  # the random stream of the extrapolation risk, apart from the law's and the noise's
REPLICATE_STREAM = 11  # ... and of the posterior predictive draws at the fitted rows
REPLICATE_MAX = 4_000_000  # draws x rows of the posterior predictive made with every fit (larger: on request)


class ScalingFit:
    """A fitted :class:`~bayescale.ScalingModel`.

    Attributes
    ----------
    idata : arviz.InferenceData
        ArviZ's groups, dims ``chain``, ``draw``, ``obs`` (and the group column):

        - ``posterior``: law parameters in the user's units, population and noise parameters;
        - ``posterior_predictive``: a new run at every fitted row, in the target's units (counts
          for a Binomial model), so ``az.plot_ppc`` and ``az.plot_loo_pit`` work (for very large
          fits after :meth:`add_posterior_predictive`);
        - ``log_likelihood``: the pointwise density of ``log(target)`` (of the counts for a
          Binomial model), what ``az.loo`` and ``az.compare`` use (the log's Jacobian is the same
          for every model of one target, so comparisons are unaffected);
        - ``observed_data``: the target as given; ``constant_data``: the inputs (and noise,
          trials and each row's group);
        - ``sample_stats``: NUTS' statistics (divergences, tree depth, step size, energy);
        - ``prior`` and ``prior_predictive`` after :meth:`sample_prior`.
    model : ScalingModel
        The specification that was fitted.
    health : Health
        Sampler diagnostics; ``fit.healthy`` is ``health.healthy``.

    Examples
    --------
    >>> import bayescale as bs
    >>> df = bs.datasets.load("chinchilla")                                     # doctest: +SKIP
    >>> fit = bs.ScalingModel(bs.laws.Chinchilla()).fit(df, seed=0)             # doctest: +SKIP
    >>> fit.summary()                                                           # doctest: +SKIP
    >>> fit.predict(N=70e9, D=1.4e12).interval(0.9)                             # doctest: +SKIP
    """

    def __init__(self, model, idata, log_references: dict[str, float], *, warn: bool = True) -> None:
        self.model = model
        self.idata = idata
        self.log_references = dict(log_references)
        attrs = idata.posterior.attrs
        self.seed = int(attrs["seed"])
        self.options = NUTSOptions(**json.loads(attrs["bayescale_nuts_options"]))
        self.health = diagnostics.assess(
            idata,
            list(model.posterior_names),
            self.options.max_tree_depth,
            dense_mass=bool(self.options.dense_mass),
            target_accept_prob=self.options.target_accept_prob or 0.9,
            stronger_prior=_literature_advice(model),
        )
        notes = []
        if "bayescale_first_run" in attrs:  # the sampler ran twice (NUTSOptions.rerun): say so beside the health
            first = json.loads(attrs["bayescale_first_run"])
            notes.append(
                f"sampled twice: the first run (target_accept_prob={first['target_accept_prob']}) had "
                f"{first['divergences']} divergent transitions; these draws are from a second run with smaller "
                f"steps (target_accept_prob={self.options.target_accept_prob})"
            )
        if "bayescale_extended" in attrs:  # the chains ran on (NUTSOptions.extend)
            extended = int(attrs["bayescale_extended"])
            asked = idata.posterior.sizes["draw"] // (extended + 1)
            notes.append(
                f"the chains ran on to {idata.posterior.sizes['draw']:,} draws each ({asked:,} asked): R-hat or the "
                "effective draws fell short of the health rule at fewer"
            )
        if notes:
            self.health = dataclasses.replace(self.health, note="; ".join(notes))
        if warn:
            diagnostics.warn(self.health, stacklevel=6)  # the user's call of ScalingModel.fit

    # -- construction ------------------------------------------------------------------
    @classmethod
    def from_samples(
        cls,
        model,
        data: ScalingData,
        log_refs: dict[str, float],
        samples: Samples,
        *,
        seed: int,
        warn: bool = True,
    ) -> ScalingFit:
        posterior = {name: samples.posterior[name] for name in model.posterior_names}
        stats = dict(samples.stats)
        stats["tree_depth"] = np.ceil(np.log2(stats["n_steps"] + 1)).astype(np.int64)
        constant = {column: data.inputs[x] for x, column in model.inputs.items()}
        if data.noise is not None:
            constant[model.noise] = data.noise
        if data.trials is not None:
            constant[model.trials] = data.trials
        coords = {"obs": obs_coordinate(data.index)}
        if model.group is not None:
            labels = np.asarray(data.group_labels, dtype=str)
            coords[model.group] = labels
            constant[ROW_GROUP] = labels[data.groups]
        if model.within is not None:
            outer = np.asarray(data.outer_labels, dtype=str)
            coords[model.within] = outer
            constant[ROW_OUTER] = outer[data.outer][data.groups]
        dims = {name: ["obs"] for name in [model.target, *constant]}
        dims.update(group_dims(model, posterior))
        attrs = fit_attributes(
            model, log_refs, samples.options, seed, samples.chain_method, samples.first_run, samples.extended
        )
        chains, draws = stats["diverging"].shape
        replicated = {}
        if chains * draws * data.n_rows <= REPLICATE_MAX:  # larger fits add it on request (add_posterior_predictive)
            replicated[model.target] = _replicate(model, data, log_refs, posterior, seed).reshape(chains, draws, -1)
        idata = az.from_dict(
            posterior=posterior,
            posterior_predictive=replicated or None,
            sample_stats=stats,
            log_likelihood={model.target: samples.log_likelihood},
            observed_data={model.target: data.target},
            constant_data=constant,
            coords=coords,
            dims=dims,
        )
        idata.posterior.attrs.update(attrs)
        return cls(model, idata, log_refs, warn=warn)

    # -- results -----------------------------------------------------------------------
    @property
    def healthy(self) -> bool:
        """True when there were no divergences, R-hat <= 1.01 and enough effective draws."""
        return self.health.healthy

    def diagnostics(self) -> diagnostics.Health:
        """Why the fit is (un)healthy: each problem with a remedy, divergences, tree depth, R-hat and ESS per parameter.

        Examples
        --------
        >>> fit.healthy                # doctest: +SKIP
        False
        >>> fit.diagnostics()          # doctest: +SKIP
        unhealthy:
        - R-hat above 1.01 for E, A (max 1.023): chains disagree. Run more warmup and draws; ...
        """
        return self.health

    @property
    def parameter_names(self) -> tuple[str, ...]:
        """Every variable in the posterior (law, population and likelihood parameters)."""
        return self.model.posterior_names

    @property
    def groups(self) -> tuple[str, ...]:
        """The groups of a hierarchical fit, in the order of the posterior's group dimension."""
        if self.model.group is None:
            return ()
        if self.model.group in self.idata.posterior.coords:
            return tuple(str(g) for g in self.idata.posterior[self.model.group].values)
        # nothing varies by group (every parameter shared): the labels of the rows, sorted as when fitted
        return tuple(sorted({str(g) for g in self.idata.constant_data[ROW_GROUP].values}))

    @property
    def outer_groups(self) -> tuple[str, ...]:
        """The outer groups of a fit whose groups nest in them (``within``), sorted; ``()`` otherwise."""
        if self.model.within is None:
            return ()
        return tuple(sorted({str(g) for g in self.idata.constant_data[ROW_OUTER].values}))

    def outer_of(self) -> dict[str, str]:
        """Each fitted group's outer group (``within``): ``{group: outer group}``; ``{}`` without ``within``."""
        if self.model.within is None:
            return {}
        const = self.idata.constant_data
        groups, outer = (const[name].values.astype(str).tolist() for name in (ROW_GROUP, ROW_OUTER))
        return dict(zip(groups, outer, strict=True))

    def observed(self) -> np.ndarray:
        """The fitted rows' target in its own units: the loss (or error, ...), or ``k / n`` for a Binomial model."""
        y = self.idata.observed_data[self.model.target].values
        if self.model.counts:
            return y / self.idata.constant_data[self.model.trials].values
        return y

    @property
    def references(self) -> dict[str, float]:
        """Reference scales of the inputs and the target (the data's geometric means by default)."""
        return {k: math.exp(v) for k, v in self.log_references.items()}

    def summary(self, level: float = 0.9) -> pd.DataFrame:
        """One row per parameter: mean, sd, median, equal-tailed interval, R-hat, bulk and tail ESS.

        Examples
        --------
        >>> fit.summary(0.95).loc["alpha", ["median", "lower", "upper"]]      # doctest: +SKIP
        """
        if not 0 < level < 1:
            raise ValueError(f"level must be in (0, 1), got {level!r}")
        rows = {}
        for name in self.parameter_names:
            for label, draws in self._flat(name):
                lower, median, upper = np.quantile(draws, [(1 - level) / 2, 0.5, (1 + level) / 2])
                with np.errstate(over="ignore", invalid="ignore"):  # a heavy tail beyond float64: mean, sd inf
                    mean, sd = draws.mean(), draws.std(ddof=1)
                rows[label] = {
                    "mean": mean,
                    "sd": sd,
                    "median": median,
                    "lower": lower,
                    "upper": upper,
                }
        table = pd.DataFrame(rows).T.join(self.health.table)
        table.attrs["level"] = level
        return table

    def _flat(self, name: str) -> list[tuple[str, np.ndarray]]:
        """(label, draws) for a variable: one pair, or one per group for group-level variables."""
        draws = self.draws(name)
        if draws.ndim == 1:
            return [(name, draws)]
        labels = self.outer_groups if name.endswith("_outer_shift") else self.groups
        return [(f"{name}[{g}]", draws[:, i]) for i, g in enumerate(labels)]

    def population(self, level: float = 0.9) -> pd.DataFrame:
        """Population summaries of a hierarchical fit.

        For every pooled parameter: ``<name>_pop``, the population median in the user's
        units, and ``<name>_spread``, the between-group standard deviation of its log; where
        groups nest in outer groups (``within``) also ``<name>_outer_spread``, the standard
        deviation between outer groups, and ``<name>_outer_shift[<outer group>]``, each outer
        group's shift from the population median (both on the log scale); with a scale per group
        (``group_scale=True``) ``scale_spread``, the standard deviation of the groups' log-scales.

        Examples
        --------
        >>> fit.population(0.9).loc["alpha_pop", ["median", "lower", "upper"]]   # doctest: +SKIP
        """
        if not self.model.population_names:
            raise ValueError("population() needs a hierarchical fit with pooled parameters (group=..., pooled=[...])")
        table = self.summary(level)
        return table.loc[[row for row in table.index if row.split("[")[0] in self.model.population_names]]

    def unusual(self) -> pd.DataFrame:
        """How unusual each group is: where its pooled parameters fall in the population.

        For every group and pooled parameter with a population median in the user's units
        (exponents, the irreducible term, ``sigma`` when pooled; prefactors are pooled at the
        reference scale, where their units differ by group): ``percentile``, the posterior mean
        of the population's probability of a value below the group's (0.5: typical; near 0
        or 1: unusual), ``z``, the posterior median of the group's distance from the population
        median in population spreads, and the two medians. A tidy table, most unusual first.
        With a scale per group (``group_scale=True``) also ``scale``: the factor by which the
        group's curve sits above or below the population's (population 1), ``z`` its log in
        units of ``scale_spread``; the level terms' ``z`` then counts both spreads.

        Examples
        --------
        >>> fit.unusual().head()      # doctest: +SKIP
           family parameter  median  population  z  percentile
        """
        model = self.model
        names = [
            k
            for k in model.treatments
            if model.treatments[k] == "pooled"
            and f"{k}_pop" in self.parameter_names
            and (k in model.noise_names or model.law.parameter(k).prefactor_of is None)
        ]
        if not names:
            raise ValueError("unusual() needs a hierarchical fit with pooled exponents or levels (group=..., pooled=)")
        rows = []
        for k in names + ["scale"] * model.group_scale:
            if k == "scale":  # each group's factor about the population's level, z in units of the scales' spread
                spread = self.draws("scale_spread")
                values, pop, z = np.exp(self.draws(k)), np.ones_like(spread), self.draws(k) / spread[:, None]
            else:
                logged = k in model.noise_names or model.law.parameter(k).transform == "log"
                to_scale = np.log if logged else (lambda v: v)
                values, pop, spread = self.draws(k), self.draws(f"{k}_pop"), self.draws(f"{k}_spread")
                if f"{k}_outer_spread" in self.parameter_names:  # nested: a group's value about the population
                    spread = np.hypot(spread, self.draws(f"{k}_outer_spread"))
                if k in model.scaled_names:  # and its scale's spread: a group's value about the median, all told
                    spread = np.hypot(spread, self.draws("scale_spread"))
                z = (to_scale(values) - to_scale(pop)[:, None]) / spread[:, None]
            for g, label in enumerate(self.groups):
                rows.append(
                    {
                        model.group: label,
                        "parameter": k,
                        "median": float(np.median(values[:, g])),
                        "population": float(np.median(pop)),
                        "z": float(np.median(z[:, g])),
                        "percentile": float(np.mean(ndtr(z[:, g]))),
                    }
                )
        table = pd.DataFrame(rows)
        order = np.argsort(-np.abs(table["percentile"].to_numpy() - 0.5), kind="stable")
        return table.iloc[order].reset_index(drop=True)

    def draws(self, name: str) -> np.ndarray:
        """Posterior draws of ``name``, chains pooled: shape (draws,), or (draws, groups) per group."""
        if name not in self.parameter_names:
            raise KeyError(f"no parameter {name!r}; parameters: {list(self.parameter_names)}")
        values = self.idata.posterior[name].values
        return values.reshape((-1,) + values.shape[2:])

    def add_posterior_predictive(self):
        """Add the ``posterior_predictive`` group (a new run at every fitted row, per draw) where the fit has none.

        Every fit of up to :data:`REPLICATE_MAX` draws x rows has it from the start; a larger one (10,000
        rows x 4,000 draws are 320 MB) gets it here. Returns :attr:`idata`.
        """
        if "posterior_predictive" not in self.idata.groups():
            post = self.idata.posterior
            posterior = {name: post[name].values for name in self.parameter_names}
            values = _replicate(self.model, self.data(), self.log_references, posterior, self.seed)
            replicated = values.reshape(post.sizes["chain"], post.sizes["draw"], -1)
            extra = az.from_dict(
                posterior_predictive={self.model.target: replicated},
                coords={"obs": self.idata.observed_data["obs"].values},
                dims={self.model.target: ["obs"]},
            )
            self.idata.extend(extra)
        return self.idata

    def sample_prior(self, draws: int = 1000, seed: int | None = None):
        """Add ``prior`` and ``prior_predictive`` groups to :attr:`idata` (draws at the fitted rows); returns it.

        The same priors and reference scales as the fit; ``prior_predictive`` is in the target's
        units, like ``observed_data`` (``az.plot_ppc(fit.idata, group="prior")``).

        Examples
        --------
        >>> idata = fit.sample_prior(500)                         # doctest: +SKIP
        >>> az.plot_ppc(idata, group="prior")                     # doctest: +SKIP
        """
        if isinstance(draws, bool) or not isinstance(draws, int) or draws < 1:
            raise ValueError(f"draws must be a positive integer, got {draws!r}")
        model = self.model
        data = self.data()
        args = model_args(model, data, self.log_references, pilot=False)  # observed: NumPyro draws no obs
        seed = self.seed if seed is None else seed
        simulated = Predictive(model_of(model), num_samples=draws)(jax.random.key(seed), args)
        prior = {name: np.asarray(simulated[name])[None] for name in model.posterior_names}
        # new observations on the host, as for posterior_predictive (JAX's Student-t sampler is slow to compile)
        values = _replicate(model, data, self.log_references, prior, seed)
        dims = group_dims(model, prior)
        coords = {"obs": self.idata.observed_data["obs"].values}
        if model.group is not None:
            coords[model.group] = np.asarray(self.groups)
        if model.within is not None:
            coords[model.within] = np.asarray(self.outer_groups)
        extra = az.from_dict(
            prior=prior,
            prior_predictive={model.target: values[None]},
            coords=coords,
            dims={**dims, model.target: ["obs"]},
        )
        self.idata.extend(extra)
        return self.idata

    def data(self) -> ScalingData:
        """The fitted rows as validated data (inputs, target, noise, trials, groups), rebuilt from :attr:`idata`."""
        model = self.model
        const = self.idata.constant_data
        groups = labels = outer = None
        if model.group is not None:
            labels = tuple(self.groups)
            lookup = {label: i for i, label in enumerate(labels)}
            groups = np.array([lookup[g] for g in const[ROW_GROUP].values.astype(str)])
        if model.within is not None:
            outer_of = self.outer_of()
            outer = np.array([self.outer_groups.index(outer_of[g]) for g in labels])
        return ScalingData(
            inputs={x: np.asarray(const[column].values, dtype=float) for x, column in model.inputs.items()},
            target=np.asarray(self.idata.observed_data[model.target].values, dtype=float),
            noise=None if model.noise is None else np.asarray(const[model.noise].values, dtype=float),
            index=pd.Index(self.idata.observed_data["obs"].values),
            groups=groups,
            group_labels=labels or (),
            trials=None if model.trials is None else np.asarray(const[model.trials].values, dtype=float),
            outer=outer,
            outer_labels=self.outer_groups,
        )

    # -- prediction --------------------------------------------------------------------
    def predict(
        self, data: pd.DataFrame | None = None, /, *, seed: int | None = None, risk: bool = True, **inputs
    ) -> Prediction:
        """Posterior of a new run, of the expected value and of the law's curve at new inputs.

        Beyond the fitted data the bands include the risk that the law itself is wrong there
        (the model's ``discrepancy``, :mod:`bayescale.model.discrepancy`); ``kind="mean"`` is the
        fitted law alone. See :class:`~bayescale.Prediction` for the kinds.

        Parameters
        ----------
        data : pandas.DataFrame, optional
            Rows at which to predict, with a column per law input (named like the law's
            inputs or like the columns the model was fitted on).
        seed : int, optional
            Seed of the observation-noise and risk draws; defaults to the fit's seed.
        risk : bool
            Include the extrapolation risk (default). ``False``: the law and the noise only,
            as if the law were exactly right everywhere.
        **inputs
            Alternatively the law inputs as keywords, scalars or 1-D sequences,
            e.g. ``N=[7e10], D=[1.4e12]`` or ``C=1e24``.

        Examples
        --------
        >>> fit.predict(N=[7e10], D=[1.4e12]).interval(0.9)            # doctest: +SKIP
        >>> fit.predict(N=7e10, D=1.4e12).draws(kind="mean").shape      # doctest: +SKIP
        (4000, 1)
        """
        model = self.model
        law = model.law
        optional = ((model.trials,) if model.counts else ()) + ((model.within,) if model.within else ())
        frame = as_frame(data, inputs, law.inputs, model.group, optional=optional)
        values = prediction_inputs(frame, law.inputs, model.inputs)
        trials = missing = None
        if model.counts:
            if model.trials in frame.columns:
                trials = count_trials(frame, model.trials)
            else:
                missing = (
                    f"a new observation of a Binomial model is k right of n items: give n as a column or keyword "
                    f"{model.trials}=... in predict, or use kind='mean' for the rate itself"
                )
        row_groups = None
        if model.group is not None:
            row_groups = group_labels(frame, model.group)
        outer = self._placement(frame, row_groups)
        table = pd.DataFrame(values, index=frame.index)
        if row_groups is not None:
            table.insert(0, model.group, row_groups)
        if outer is not None:
            table.insert(0, model.within, outer.rows)
        if trials is not None:
            table[model.trials] = trials
        return self._predict(values, table, row_groups, trials, missing, seed, risk, outer=outer)

    def _placement(self, frame: pd.DataFrame | None, row_groups) -> Outer | None:
        """Each row's outer group where groups nest in them (``within``): a fitted group's own, or for a group
        not in the fit the ``within`` column's value, which ``frame`` must then hold."""
        model = self.model
        if model.within is None or row_groups is None:
            return None
        known = self.outer_of()
        given = None
        if frame is not None and model.within in frame.columns:
            given = group_labels(frame, model.within, "outer group")
        rows = []
        for i, group in enumerate(row_groups):
            if group in known:
                if given is not None and given[i] != known[group]:
                    raise ValueError(
                        f"row {i}: {model.group} {group!r} sits in {model.within} {known[group]!r} in the fit, "
                        f"not in {given[i]!r}"
                    )
                rows.append(known[group])
            elif given is None:
                raise ValueError(
                    f"{model.group} {group!r} is not in the fit: give each row's {model.within!r} too, so that it is "
                    f"drawn around its {model.within} (a {model.within} not in the fit: from the population of them)"
                )
            else:
                rows.append(given[i])
        placed = {}
        for group, outer in zip(row_groups, rows, strict=True):
            if placed.setdefault(group, outer) != outer:
                raise ValueError(
                    f"{model.group} {group!r} is not in the fit and its rows name {model.within} {placed[group]!r} "
                    f"and {outer!r}; a {model.group} sits in one {model.within}"
                )
        return Outer(self.outer_groups, np.asarray(rows, dtype=str))

    def predict_from_draws(
        self,
        inputs: dict[str, np.ndarray],
        table: pd.DataFrame | None = None,
        *,
        groups=None,
        seed: int | None = None,
        risk: bool = True,
        distance=None,
    ) -> Prediction:
        """Predict where the inputs themselves are uncertain: one value of each input per posterior draw.

        The second step of a chain (:class:`bayescale.Chain`): the task loss a first fit predicts
        for a model not yet trained, draw by draw, is the input of the fit of accuracy against
        task loss, so the accuracy's band carries both fits' uncertainty.

        Parameters
        ----------
        inputs : dict
            Every law input (by the law's names), as arrays of shape (draws, rows): draw ``s``
            of a row is used with posterior draw ``s`` of this fit (a 1-D array: the draws of
            one row). An array with fewer or more draws than this fit has is cycled or cut to
            its number of draws.
        table : pandas.DataFrame, optional
            What the rows are (shown beside the intervals); by default the inputs' medians.
        groups : sequence, optional
            Each row's group, for a fit with groups (an unseen label draws from the population).
        seed : int, optional
            Seed of the observation-noise and risk draws; defaults to the fit's seed.
        risk : bool
            Include the extrapolation risk at each draw's inputs (default).
        distance : array of shape (rows,), optional
            How far each row reaches beyond the fitted data, in decades of scale, for the
            extrapolation risk; by default the distance of each draw's inputs from the fitted
            runs'. Where the input is not a scale (a loss), a chain passes the distance of
            the scales behind it (the model size and tokens the loss was predicted for).

        Examples
        --------
        >>> bpb = task_loss_fit.predict(N=1.3e10, D=5e12).draws()           # doctest: +SKIP
        >>> accuracy_fit.predict_from_draws({"bpb": bpb}).interval(0.9)      # doctest: +SKIP
        """
        model = self.model
        law = model.law
        if model.counts:
            raise ValueError("predict_from_draws predicts rates and averages, not counts of a Binomial model")
        if set(inputs) != set(law.inputs):
            raise TypeError(f"inputs must give every law input {list(law.inputs)} and no other, got {sorted(inputs)}")
        n_draws = self.draws(self.parameter_names[0]).shape[0]
        values = {}
        for x in law.inputs:
            v = np.asarray(inputs[x], dtype=float)
            if v.ndim == 1:
                v = v[:, None]
            if v.ndim != 2:
                raise ValueError(f"input {x} must have shape (draws, rows), got {v.shape}")
            if not np.all(np.isfinite(v) & (v > 0)):
                raise ValueError(f"input {x} must be finite and > 0 in every draw (it enters the law through its log)")
            values[x] = v[np.arange(n_draws) % v.shape[0]]
        try:
            shape = np.broadcast_shapes(*(v.shape for v in values.values()))
        except ValueError:
            raise ValueError(f"the inputs' shapes {[v.shape for v in values.values()]} do not match") from None
        values = {x: np.broadcast_to(v, shape) for x, v in values.items()}
        row_groups = None
        if model.group is not None:
            if groups is None:
                raise TypeError(f"this fit has groups: give each row's {model.group!r} as groups=")
            row_groups = np.asarray(groups, dtype=object).astype(str)
            if row_groups.shape != (shape[1],):
                raise ValueError(f"groups must give one label per row ({shape[1]}), got shape {row_groups.shape}")
        if table is None:
            table = pd.DataFrame({x: np.median(v, axis=0) for x, v in values.items()})
            if row_groups is not None:
                table.insert(0, model.group, row_groups)
        if len(table) != shape[1]:
            raise ValueError(f"table has {len(table)} rows but the inputs have {shape[1]}")
        if distance is not None:
            distance = np.asarray(distance, dtype=float)
            if distance.shape != (shape[1],) or not np.all(np.isfinite(distance) & (distance >= 0)):
                raise ValueError(f"distance must be {shape[1]} finite numbers >= 0 (decades), got {distance!r}")
        outer = self._placement(None, row_groups)
        return self._predict(values, table, row_groups, None, "", seed, risk, distance, outer)

    def _predict(self, values, table, row_groups, trials, missing, seed, risk, distance=None, outer=None) -> Prediction:
        """Draws at law-input ``values`` ((rows,), or (draws, rows) where each draw has its own inputs)."""
        model = self.model
        law = model.law
        log_x = {x: np.log(values[x]) - self.log_references[x] for x in law.inputs}
        log_ref = {x: self.log_references[x] for x in law.inputs}
        posterior = {name: self.draws(name) for name in self.parameter_names}
        seed = self.seed if seed is None else seed
        log_mean, log_obs = posterior_draws(
            law,
            model.likelihood,
            model.treatments,
            posterior,
            log_ref,
            log_x,
            jax.random.key(seed),
            fitted_groups=self.groups,
            row_groups=row_groups,
            trials=trials,
            outer=outer,
        )
        log_risk = self.log_risk(values, row_groups, seed, distance) if risk else None
        return Prediction(table, log_mean, log_obs, missing, log_risk, shift=model.likelihood.shift)

    def extrapolation(self, data: pd.DataFrame | None = None, /, **inputs) -> np.ndarray:
        """Decades from each row to the fitted runs that test the law there (:meth:`reach`).

        Zero inside their range; beyond it the distance to their convex hull in ``log10`` inputs (the
        Euclidean norm of each input's excess, in base-10 orders of magnitude). This is the distance the
        extrapolation risk grows with.

        Examples
        --------
        >>> fit.extrapolation(N=[1e9, 7e10], D=[2e10, 1.4e12])       # doctest: +SKIP
        array([0.  , 1.12])
        """
        model = self.model
        frame = as_frame(data, inputs, model.law.inputs, model.group)
        values = prediction_inputs(frame, model.law.inputs, model.inputs)
        row_groups = None if model.group is None else group_labels(frame, model.group)
        return self._distance(values, row_groups)

    def log_risk(self, values: dict, row_groups: np.ndarray | None, seed: int, distance=None) -> np.ndarray | None:
        """Draws of the deviation of ``log(target)`` from the law at rows of law-input ``values``; see :meth:`risk`.

        ``values`` holds (rows,) arrays, or (draws, rows) where each draw has its own inputs."""
        log10_x = np.stack([np.log10(np.asarray(values[x], dtype=float)) for x in self.model.law.inputs], axis=-1)
        n = log10_x.shape[-2]
        return self.risk(log10_x, [None] * n if row_groups is None else list(row_groups), seed, distance)

    def risk(self, log10_x: np.ndarray, labels: list, seed: int, distance=None) -> np.ndarray | None:
        """Draws of the extrapolation risk (:mod:`bayescale.model.discrepancy`) at rows of ``log10`` law inputs.

        ``log10_x`` is (rows, inputs), or (draws, rows, inputs) where the rows move with the draw
        (a compute-optimal allocation); ``labels`` gives every row's group (``None`` without groups).
        Rows of one group share its trend; groups deviate independently. The same rows, labels and
        seed give the same draws. Shape (posterior draws, rows); ``None`` without a discrepancy.
        ``distance`` (rows,) replaces the decades from the fitted data where the law's inputs are
        not a scale (a loss as input, :class:`bayescale.Chain`).
        """
        drift = self.model.discrepancy
        if drift is None or "sigma" not in self.parameter_names:
            return None
        log10_x = np.asarray(log10_x, dtype=float)
        missing = ~np.isfinite(log10_x).all(axis=-1)  # a draw without the point (no optimum): its deviation is NaN
        if missing.any():
            log10_x = np.where(missing[..., None], np.nanmedian(log10_x.reshape(-1, log10_x.shape[-1]), 0), log10_x)
        order = list(dict.fromkeys(labels))
        codes = np.array([order.index(label) for label in labels], dtype=int)
        if distance is None:
            distance = self._hull_distances(log10_x, labels)
        else:
            distance = np.broadcast_to(np.asarray(distance, dtype=float), log10_x.shape[:-1])
        positions = np.median(log10_x, axis=0) if log10_x.ndim == 3 else log10_x
        key = jax.random.fold_in(jax.random.key(seed), RISK_STREAM)
        deviation = drift.log_deviation(key, positions, distance, codes, self.noise_scale(labels, seed))
        return np.where(missing, np.nan, deviation)

    def noise_scale(self, labels=None, seed: int | None = None) -> np.ndarray:
        """The residual scale ``sigma`` per posterior draw, (draws,); where it varies by group, per draw
        and row of groups ``labels``, (draws, rows) (an unseen group's drawn from the population as
        :meth:`predict` draws it with the same ``seed``, default the fit's)."""
        sigma = self.draws("sigma")
        if sigma.ndim == 1:
            return sigma
        if labels is None:
            raise ValueError(f"the noise scale varies by {self.model.group!r}: give each row's group as labels=")
        seed = self.seed if seed is None else seed
        posterior = {k: self.draws(k) for k in ("sigma", "sigma_pop", "sigma_spread") if k in self.parameter_names}
        group_key = jax.random.split(jax.random.key(seed))[0]
        likelihood = self.model.likelihood
        rows = noise_draws(likelihood, self.model.treatments, posterior, group_key, self.groups, np.asarray(labels))
        return np.asarray(rows["sigma"])

    def fitted_inputs(self, group: str | None = None) -> np.ndarray:
        """``log10`` of the fitted runs' inputs (runs, inputs): a group's own, or all (new group or ``None``)."""
        const = self.idata.constant_data
        fitted = np.column_stack([np.log10(const[self.model.inputs[x]].values) for x in self.model.law.inputs])
        if group is not None and group in self.groups:
            fitted = fitted[const[ROW_GROUP].values.astype(str) == group]
        return fitted

    def reach(self, group: str | None = None) -> np.ndarray:
        """``log10`` inputs of the runs from which ``group``'s extrapolation is measured (runs, inputs).

        Where the groups share the law's shape (``ScalingModel.shares_shape``: no exponent or location
        ``independent``), every group's runs: they test that shape wherever they reach, and a group's
        own departure from it is the population's spread where pooled, already in its posterior (none
        where shared, as the model states). Otherwise :meth:`fitted_inputs` of the group (all runs for
        a group not in the fit).
        """
        return self.fitted_inputs(None if self.model.shares_shape else group)

    def _distance(self, values: dict, row_groups: np.ndarray | None) -> np.ndarray:
        log10_x = np.column_stack([np.log10(np.asarray(values[x], dtype=float)) for x in self.model.law.inputs])
        labels = [None] * len(log10_x) if row_groups is None else list(np.asarray(row_groups, dtype=str))
        return self._hull_distances(log10_x, labels)

    def _hull_distances(self, log10_x: np.ndarray, labels: list) -> np.ndarray:
        """Decades from each row of ``log10_x`` (..., rows, inputs) to its group's :meth:`reach`, shape (..., rows)."""
        distance = np.zeros(log10_x.shape[:-1])
        labels = [None] * len(labels) if self.model.shares_shape else labels  # one reach for all: one hull
        for label in dict.fromkeys(labels):
            rows = np.array([row_label == label for row_label in labels])
            points = log10_x[..., rows, :]
            far = hull_distance(self.reach(label), points.reshape(-1, points.shape[-1]))
            distance[..., rows] = far.reshape(points.shape[:-1])
        return distance

    def log_likelihood(self, data: pd.DataFrame, *, seed: int | None = None, risk: bool = True) -> np.ndarray:
        """Log density of every row of ``data`` under every posterior draw, shape (draws, rows).

        The density of ``log(target)`` (of the counts, for a Binomial likelihood), as in
        ``idata.log_likelihood``, at rows the fit may
        not have seen: the scoring rule of leave-future-out validation
        (:func:`bayescale.compare_laws`). ``data`` needs the fitted target and input columns
        (and the noise and group columns if the model has them); rows of a group not in
        the fit use population draws (random stream of ``seed``, default the fit's seed).
        Beyond the fitted data each draw's law is shifted by a draw of the extrapolation risk
        (``risk=False``: not), so that ``logsumexp`` over draws is the predictive density of
        :meth:`predict`.

        Examples
        --------
        >>> ll = fit.log_likelihood(held_out)                         # doctest: +SKIP
        >>> from scipy.special import logsumexp
        >>> elpd = (logsumexp(ll, axis=0) - np.log(len(ll))).sum()    # doctest: +SKIP
        """
        model = self.model
        law = model.law
        if not isinstance(data, pd.DataFrame):
            raise TypeError(f"data must be a pandas DataFrame, got {type(data).__name__}")
        if len(data) == 0:
            raise DataError("the data has no rows")
        values = prediction_inputs(data, law.inputs, model.inputs)
        trials = None
        if model.counts:
            observed, trials = count_columns(data, model.target, model.trials)
        else:
            y = numeric_column(data, model.target, "target")
            observed = np.log(y)
        noise = None if model.noise is None else numeric_column(data, model.noise, "known noise standard deviation") / y
        row_groups = None if model.group is None else group_labels(data, model.group)
        log_x = {x: np.log(values[x]) - self.log_references[x] for x in law.inputs}
        posterior = {name: self.draws(name) for name in self.parameter_names}
        seed = self.seed if seed is None else seed
        return log_density(
            law,
            model.likelihood,
            model.treatments,
            posterior,
            {x: self.log_references[x] for x in law.inputs},
            log_x,
            observed,
            jax.random.key(seed),
            fitted_groups=self.groups,
            row_groups=row_groups,
            noise_log_sd=noise,
            trials=trials,
            log_shift=self.log_risk(values, row_groups, seed) if risk else None,
            outer=self._placement(data, row_groups),
        )

    # -- budgets -----------------------------------------------------------------------
    def next_runs(
        self,
        candidates: pd.DataFrame,
        *,
        target,
        budget: float | None = None,
        cost=None,
        level: float = 0.9,
        outcomes: int = design.OUTCOMES,
        seed: int | None = None,
        risk: bool = True,
    ) -> pd.DataFrame:
        """Which run to train next: each candidate's expected narrowing of ``target``'s interval, per unit cost.

        For each candidate run, losses it could show are simulated from the posterior (law and
        noise), the posterior is updated on each by reweighting its draws, and the ``level``
        interval of the law's value at ``target`` is measured after the update; the mean over
        the outcomes is the expected width after the run (:mod:`bayescale.results.design`).
        Beyond the data, the interval includes the extrapolation risk, as :meth:`predict`'s
        does, and a run that brings the data nearer the target shortens it.

        Parameters
        ----------
        candidates : pandas.DataFrame
            One row per run you could train, with the law's input columns (and the group
            column of a fit with groups).
        target : mapping, one-row DataFrame or array
            The inputs of the run whose prediction you care about, e.g. ``{"N": 7e10, "D": 1.4e12}``;
            its law value (``kind="mean"``: what more runs can pin down) is the target. Or any
            quantity of this fit as one value per posterior draw, in the order of the fit's draws:
            ``fit.optimal(C=5.88e23).draws("tokens_per_param")[:, 0]``, a comparison's difference.
        budget : float, optional
            Total cost you can spend: the table's ``batch`` column then numbers the runs of a
            greedy batch within it (each the best narrowing per cost given those chosen before;
            0: not chosen).
        cost : str or array, optional
            Each candidate's cost: a column of ``candidates`` or one value per row. Default:
            FLOPs, ``6 N D`` for a law in N and D, ``C`` for a law in compute.
        level : float
            The interval whose width is scored (default 0.9).
        outcomes : int
            Simulated outcomes per candidate; more smooth the ranking, at proportional cost.
        seed : int, optional
            Seed of the simulated outcomes; defaults to the fit's seed.
        risk : bool
            For a target given as inputs beyond the fitted runs: include the extrapolation risk
            (default), so that runs nearer the target count for how much nearer they bring the
            data. ``False``: the law's value alone (what more runs can pin down). A target given
            as draws has no risk added.

        Returns
        -------
        pandas.DataFrame
            One row per candidate (same index): its inputs, its cost (``flops`` by default),
            ``width_now`` and ``width_after`` (expected, in the target's units), ``reduction``,
            ``reduction_per_flop`` (``reduction_per_cost`` with ``cost=``), ``ess`` (draws the
            reweighting keeps on average: small means only a refit can judge the run), ``rank``
            (1: the most narrowing per cost) and, with ``budget``, ``batch``.

        Examples
        --------
        >>> cand = pd.DataFrame({"N": [4e8, 1e9, 2e9], "D": [8e9, 2e10, 4e10]})     # doctest: +SKIP
        >>> fit.next_runs(cand, target={"N": 7e10, "D": 1.4e12}).sort_values("rank")  # doctest: +SKIP
        """
        return design.next_runs(
            self,
            candidates,
            target=target,
            budget=budget,
            cost=cost,
            level=level,
            outcomes=outcomes,
            seed=seed,
            risk=risk,
        )

    def optimal(
        self,
        C,
        *,
        k: float = FLOPS_PER_PARAMETER_TOKEN,
        group: str | list[str] | None = None,
        method: str = "auto",
        risk: bool = True,
    ) -> BudgetPosterior:
        """Posterior of the compute-optimal allocation at budgets ``C = k N D`` (FLOPs).

        Parameters
        ----------
        C : float or sequence of float
            Compute budgets in FLOPs.
        k : float
            FLOPs per parameter per token (6: forward and backward pass, Kaplan et al.).
        group : str or list of str, optional
            For a hierarchical fit: the group(s) to allocate for. A label not in the fit
            is a new group, with parameters drawn from the population.
        method : {"auto", "closed", "numeric"}
            The law's closed form where it has one (Chinchilla), else a vectorised
            numerical optimiser; see :mod:`bayescale.results.budgets`.
        risk : bool
            Include the extrapolation risk in ``loss`` beyond the fitted data (default), as
            :meth:`predict` does; the allocation is the law's.

        Returns
        -------
        BudgetPosterior
            Quantities ``N``, ``D``, ``tokens_per_param`` (``D / N``), ``loss`` (the expected
            loss at the optimum), and the local allocation exponents ``a`` and ``b``
            (``N* ~ C^a``, ``D* ~ C^b``; not in ``interval()`` unless asked for).

        Examples
        --------
        >>> opt = fit.optimal(C=[1e22, 5.88e23, 1e24])     # doctest: +SKIP
        >>> opt.interval(0.8)                              # doctest: +SKIP
        >>> opt.interval(0.9, quantities=["a", "b"])       # doctest: +SKIP
        """
        log_c = _log_positive("C", C)
        k = _positive_scalar("k", k)

        def table(p):
            return budgets.optimum_table(self.model.law, p, log_c, k, method)

        return self._budget_posterior("C", C, table, group, budgets.OPTIMUM, k, risk)

    def compute_for(
        self, loss, *, k: float = FLOPS_PER_PARAMETER_TOKEN, group: str | list[str] | None = None, risk: bool = True
    ) -> BudgetPosterior:
        """Posterior of the compute (and its optimal split) whose optimal loss equals ``loss``.

        Draws whose irreducible loss is at or above ``loss`` cannot reach it with any
        budget: their ``C``, ``N`` and ``D`` are ``inf``. ``probability("C", below=budget)``
        is the probability that ``budget`` FLOPs, well spent, reach the target. With ``risk``
        (default) beyond the fitted data each draw's ``C`` moves by the extrapolation risk's
        deviation there, divided by how fast the optimal loss falls with compute (to first order).

        Examples
        --------
        >>> need = fit.compute_for(loss=2.0)               # doctest: +SKIP
        >>> need.interval(0.8)                             # doctest: +SKIP
        >>> need.probability("C", below=1e24)              # doctest: +SKIP
        """
        log_loss = _log_positive("loss", loss)
        k = _positive_scalar("k", k)

        def table(p):
            return budgets.inverse_table(self.model.law, p, log_loss, k)

        result = self._budget_posterior("loss", loss, table, group, budgets.INVERSE, k, risk)
        never = np.mean(np.isinf(result.draws("C")), axis=0)
        if never.max() > 0.05:
            rows = result.rows.assign(share=never)[never > 0.05]
            listed = ", ".join(f"{r['loss']:g} ({r['share']:.0%})" for _, r in rows.iterrows())
            warnings.warn(
                f"target losses {listed} are at or below the loss the law approaches with unlimited compute in "
                "that share of the posterior draws: those draws can never reach them (C = inf). Check the target's "
                "units, or ask for a loss above the fitted irreducible loss",
                DataWarning,
                stacklevel=2,
            )
        return result

    def overtraining(
        self,
        C,
        ratio: float,
        *,
        k: float = FLOPS_PER_PARAMETER_TOKEN,
        group: str | list[str] | None = None,
        risk: bool = True,
    ) -> BudgetPosterior:
        """What training at a fixed tokens-per-parameter ``ratio`` costs, at budgets ``C``.

        Quantities: ``N`` and ``D`` of the run (``D = ratio N``, ``C = k N D``), its
        ``loss``, the compute-optimal ``optimal_loss``, the ``penalty`` (difference) and
        ``relative_penalty``, and the ``compute_multiplier``: how many times ``C`` runs at
        this ratio need to reach the compute-optimal loss of ``C`` (the law's). With ``risk``
        (default) both losses include the extrapolation risk at their own (N, D).

        Examples
        --------
        >>> fit.overtraining(C=[1e22, 1e24], ratio=200).interval(0.8)   # doctest: +SKIP
        """
        log_c = _log_positive("C", C)
        k = _positive_scalar("k", k)
        ratio = _positive_scalar("ratio", ratio)

        def table(p):
            return budgets.overtraining_table(self.model.law, p, log_c, ratio, k)

        return self._budget_posterior("C", C, table, group, budgets.OVERTRAINING, k, risk)

    def compare(self, candidate: str, baseline: str, *, lower_is_better: bool = True, risk: bool = True, **scales):
        """Posterior comparison of two groups (recipes) of this fit; see :mod:`bayescale.results.comparison`.

        ``scales`` (e.g. ``C=np.geomspace(1e19, 1e24, 30)``) set the default grid of
        ``table()`` and ``crossover()``. With ``risk`` (default) each recipe's curve beyond its
        own data includes the extrapolation risk, drawn independently per recipe.

        Examples
        --------
        >>> cmp = fit.compare(candidate="tuned", baseline="kaplan")        # doctest: +SKIP
        >>> cmp.probability_better(C=[1e21, 1e23])                         # doctest: +SKIP
        """
        return RecipeComparison(self, candidate, baseline, lower_is_better=lower_is_better, risk=risk, **scales)

    def law_parameters(self, group: str | None = None, stream: int = 0) -> dict[str, np.ndarray]:
        """The law's parameters in the user's units per posterior draw, shape (draws,), for one group.

        ``group``: ``None`` for a fit without groups, a fitted group's label, or any other
        label for a new group, whose parameters are drawn from the population (random
        stream ``stream`` of the fit's seed).

        Examples
        --------
        >>> fit.law_parameters()["alpha"].shape                            # doctest: +SKIP
        (4000,)
        """
        law = self.model.law
        posterior = {name: self.draws(name) for name in self.parameter_names}
        log_ref = {x: self.log_references[x] for x in law.inputs}
        key = jax.random.fold_in(jax.random.key(self.seed), stream)
        p = group_parameters(law, self.model.treatments, posterior, log_ref, key, self.groups, group)
        return {name: np.asarray(p[name]) for name in law.parameter_names}

    def _budget_posterior(self, column, values, table, group, layout, k: float, risk: bool = True) -> BudgetPosterior:
        """Run ``table`` (parameter draws -> log quantities) for each group; rows are ``values`` as given.

        With ``risk`` and a discrepancy, every loss quantity is shifted by the extrapolation risk at
        its own (N, D) per draw (each group its own draws), and ``C`` of an inverse problem moves by
        that shift divided by the loss's elasticity in compute there (to first order).
        """
        budgets.check_law(self.model.law)
        labels = [group] if group is None or isinstance(group, str) else list(group)
        frames, draws = [], []
        for i, label in enumerate(labels):
            p = self.law_parameters(label, i)
            quantities = {name: np.asarray(v) for name, v in table(p).items()}
            if risk and self.model.discrepancy is not None:
                self._shift_losses(quantities, p, label, layout, k)
            draws.append(quantities)
            rows = pd.DataFrame({column: np.asarray(values, dtype=float).ravel()})
            frames.append(
                rows if label is None else rows.assign(**{self.model.group: label})[[self.model.group, column]]
            )
        log_draws = {name: np.concatenate([d[name] for d in draws], axis=1) for name in layout.names}
        return BudgetPosterior(
            pd.concat(frames, ignore_index=True), log_draws, linear=layout.linear, hidden=layout.hidden
        )

    def _shift_losses(self, quantities: dict, p: dict, label, layout, k: float) -> None:
        """Add the extrapolation risk to the loss quantities of one group's budget table, in place."""
        law = self.model.law
        pk = {name: np.asarray(v)[:, None] for name, v in p.items()}

        shape = np.broadcast_shapes(*(np.shape(v) for v in quantities.values()))  # (draws, rows)

        def at(log_n, log_d):  # (draws, rows, 2) of log10 (N, D)
            pair = [np.broadcast_to(np.asarray(v), shape) for v in (log_n, log_d)]
            return np.stack(pair, axis=-1) / np.log(10.0)

        if layout is budgets.INVERSE:
            finite = np.isfinite(quantities["C"])
            log_c = np.where(finite, quantities["C"], 0.0)
            log_n, log_d = (np.where(finite, quantities[q], 0.0) for q in ("N", "D"))
            shift = self.risk(at(log_n, log_d), [label] * log_c.shape[1], self.seed)
            step = 1e-3
            up, down = (np.asarray(budgets.log_optimum(law, pk, log_c + h, k)[2]) for h in (step, -step))
            elasticity = np.minimum((up - down) / (2 * step), -1e-12)  # d log L* / d log C < 0
            quantities["C"] = np.where(finite, log_c - shift / elasticity, quantities["C"])
            return
        if "optimal_loss" not in quantities:
            quantities["loss"] = quantities["loss"] + self.risk(
                at(quantities["N"], quantities["D"]), [label] * quantities["loss"].shape[1], self.seed
            )
            return
        log_c = quantities["N"] + quantities["D"] + np.log(k)  # C = k N D of the run at the ratio
        log_n, log_d, _ = (np.asarray(v) for v in budgets.log_optimum(law, pk, log_c, k))
        rows = quantities["loss"].shape[1]  # the run and the optimum at each budget share the curve's draws
        both = np.concatenate([at(quantities["N"], quantities["D"]), at(log_n, log_d)], axis=1)
        shift = self.risk(both, [label] * (2 * rows), self.seed)
        quantities["loss"] = quantities["loss"] + shift[:, :rows]
        quantities["optimal_loss"] = quantities["optimal_loss"] + shift[:, rows:]
        quantities["penalty"] = np.exp(quantities["loss"]) - np.exp(quantities["optimal_loss"])
        quantities["relative_penalty"] = np.expm1(quantities["loss"] - quantities["optimal_loss"])

    def plot(self, target: dict | None = None, **kwargs):
        """Data, posterior median and 50%/90% bands extended to ``target``; see :func:`bayescale.plot.fit`."""
        return plot.fit(self, target=target, **kwargs)

    # -- persistence -------------------------------------------------------------------
    def save(self, path: str | os.PathLike) -> str:
        """Write the fit to a netCDF file (ArviZ's format, with the model spec and seed in its attributes)."""
        return self.idata.to_netcdf(str(path))

    def _repr_html_(self) -> str:
        """A notebook's view: what was fitted, its health and the posterior summary."""
        table = self.summary()[["median", "lower", "upper", "r_hat", "ess_bulk"]]
        health = str(self.health).replace("\n", "<br>")
        return f"<p><b>{self.model.target} = {self.model.law.formula}</b>: {self!r}</p><p>{health}</p>" + table.to_html(
            float_format=lambda v: f"{v:.4g}"
        )

    def __repr__(self) -> str:
        post = self.idata.posterior
        return (
            f"ScalingFit({self.model.law!r}, {post.sizes['chain']} chains x {post.sizes['draw']} draws, "
            f"{self.idata.observed_data.sizes['obs']} rows, {'healthy' if self.healthy else 'UNHEALTHY'})"
        )


def group_dims(model, values: Mapping) -> dict[str, list[str]]:
    """The dimension of every per-group variable among ``values`` (chain, draw, group): the group column's,
    or the outer group column's for the outer groups' shifts."""
    return {
        name: [model.within if name.endswith("_outer_shift") else model.group]
        for name, v in values.items()
        if np.ndim(v) == 3
    }


def _replicate(model, data: ScalingData, log_refs: dict, posterior: dict, seed: int) -> np.ndarray:
    """A new observation of every fitted row per posterior draw, in the target's units (counts for a Binomial)."""
    law = model.law
    flat = {k: v.reshape((-1,) + v.shape[2:]) for k, v in posterior.items()}
    labels = np.asarray(data.group_labels, dtype=str)
    _, log_obs = posterior_draws(
        law,
        model.likelihood,
        model.treatments,
        flat,
        {x: log_refs[x] for x in law.inputs},
        {x: np.log(data.inputs[x]) - log_refs[x] for x in law.inputs},
        jax.random.fold_in(jax.random.key(seed), REPLICATE_STREAM),
        fitted_groups=tuple(labels),
        row_groups=None if data.groups is None else labels[data.groups],
        trials=data.trials,
        noise_log_sd=None if data.noise is None else data.noise / data.target,
    )
    values = np.exp(log_obs)
    return np.round(values * data.trials) if model.counts else values


def _log_positive(name: str, values) -> np.ndarray:
    """Log of a scalar or 1-D sequence of positive finite numbers, with a clear error otherwise."""
    try:
        array = np.atleast_1d(np.asarray(values, dtype=float))
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be a number or a 1-D sequence of numbers, got {values!r}") from None
    if array.ndim != 1 or array.size == 0:
        raise ValueError(f"{name} must be a number or a non-empty 1-D sequence, got shape {np.shape(values)}")
    bad = ~(np.isfinite(array) & (array > 0))
    if bad.any():
        raise ValueError(
            f"{name} must be positive and finite; got {array[bad].tolist()} at positions {np.flatnonzero(bad).tolist()}"
        )
    return np.log(array)


def _positive_scalar(name: str, value) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name} must be a positive number, got {value!r}")
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"{name} must be positive and finite, got {value!r}")
    return float(value)


def _literature_advice(model) -> str:
    """``priors="literature"``, named in the advice on weak identification, where the law has published
    fits and the model uses none of them (``docs/hierarchy.md`` has what they did on ColPret's families)."""
    published = set(model.law.literature)
    if not published or published & set(model.priors):
        return ""
    return f'priors="literature" (published fits of {", ".join(sorted(published))})'
