"""``ScalingModel``: the specification (law, likelihood, priors, columns, groups); it holds settings only.

Data arrives at :meth:`ScalingModel.fit`, which hands it to the pipeline (:mod:`bayescale.fitting`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import pandas as pd

from bayescale import data as data_mod
from bayescale import fitting, laws, likelihoods, priors
from bayescale.laws import Law
from bayescale.model import discrepancy as discrepancies
from bayescale.model.build import (
    NOISE_DEFAULT,
    declared_level_terms,
    pooled_names,
    population_medians,
    scaled_terms,
)


class ScalingModel:
    """A scaling-law model specification, fitted to data with :meth:`fit`.

    Parameters
    ----------
    law : Law or str
        The law, e.g. ``bs.laws.Chinchilla()`` or a registered name such as ``"chinchilla"``.
    target : str
        Column of the data holding the target (loss, error, perplexity, ...). Must be > 0.
    inputs : mapping, optional
        Law input -> data column, e.g. ``{"N": "params", "D": "tokens"}``. Defaults to
        columns named like the law's inputs.
    likelihood : StudentT, Normal or Binomial, optional
        Observation model: on ``log(target)`` (default ``bs.likelihoods.StudentT()``), or
        ``bs.likelihoods.Binomial(trials="n_items")`` for a target that counts items right
        out of a benchmark's ``n_items`` (the law is then the rate).
    priors : mapping or "literature", optional
        Parameter name -> :class:`~bayescale.priors.LogNormal` (positive parameters) or
        :class:`~bayescale.priors.Normal`, replacing the law's defaults. A prefactor's
        prior is on its term's value at the reference scale (see ``reference``).
        ``"literature"``: priors centred on published fits of the law
        (:func:`bayescale.laws.literature_priors`; the sources are in the law's docstring).
    tie : mapping, optional
        Parameters set equal to another parameter or fixed to a number, e.g.
        ``{"beta": "alpha"}`` (one exponent for N and D) or ``{"E": 1.7}``; they are not
        sampled (:class:`bayescale.laws.Tied`).
    noise : str, optional
        Column with the known standard deviation of the target per row (e.g. from seeds);
        it is added in quadrature to the learned residual scale.
    reference : mapping, optional
        Reference scales for inputs and the target, e.g. ``{"N": 1e9, "loss": 3.0}``.
        Defaults: geometric means of the data. Inputs are centred as ``log(x / x_ref)``;
        default priors of terms in target units are relative to the target's reference.
    group : str, optional
        Column naming the group of every row (model family, recipe, ...). Law parameters
        are then shared, pooled or independent across groups.
    within : str, optional
        Column naming the outer group every group sits in (a family of recipes, a family of
        runs): two grouping levels. Each pooled parameter's groups then come from their outer
        group's location, and the outer groups' locations from the population:
        ``<name>_outer_spread`` is the spread between outer groups, ``<name>_spread`` the
        spread within one, and ``<name>_outer_shift`` each outer group's shift from the
        population median (on the parameter's sampling scale: the log for positive ones).
        A new group of a fitted outer group draws its parameters around that outer group's
        location; a new outer group from the population with both spreads. Group labels must
        be unique across outer groups (one outer group per group). See ``docs/hierarchy.md``.
    pooled, shared, independent : list of str, optional
        Law parameters treated each way (needs ``group``). ``pooled``: per-group values
        from a population whose location and spread are learned (non-centred);
        ``shared``: one value for all groups; ``independent``: per group, each with the
        prior, nothing learned across groups. Parameters not named are pooled: exponents
        and the irreducible term are similar across families but not equal, and
        prefactors, pooled on the log scale at the reference scale, absorb differences
        of units and data while still borrowing strength for groups with few runs.
        The residual scale ``sigma`` may be named too; unnamed, it is shared (one scale for
        all groups). Pooled, every group scatters by its own amount (one shared scale is set
        by the noisiest groups), a group with few runs borrowing from the others
        (``sigma_pop``, ``sigma_spread``).
    group_scale : bool
        Each group's curve on a scale of its own (hierarchical models). The pooled level terms
        (the irreducible term and the prefactors: everything in the target's units) of a group
        sit about the population's, all shifted by one learned log-scale
        ``s_g ~ Normal(0, scale_spread)``. For families measured in different units or on
        different evaluation sets (nats and bits, training and validation loss): they then
        share the shape of their curves without one family's units widening the population of
        ``E``. ``scale_spread`` is learned (small where the groups share a scale), and a new
        group draws its scale from it. Needs two or more level terms pooled. Default ``False``.
    pilot : bool, optional
        Advanced, hierarchical models only. By default (``None``) a fit first fits every group
        alone and samples the pooled groups in the frame those fits give
        (:mod:`bayescale.model.pilot`, :mod:`bayescale.model.pooled`); ``fit_many`` does not
        (its groups are padded across data sets). ``False`` skips the pilot, ``True`` runs it
        in ``fit_many`` too (for its centring of exponents). The posterior is the same either
        way; only the sampler's cost and health differ (``docs/hierarchy.md``).
    discrepancy : bs.discrepancy.Drift, None or "auto"
        The risk that the law itself is wrong beyond the fitted data, added to predictions
        (:mod:`bayescale.model.discrepancy`): zero inside the data's range, growing with the
        distance in decades beyond it. ``"auto"``: ``Drift()`` with its defaults estimated from
        public scaling curves, or the law's own where its backtest estimated them
        (``Law.drift``; none for a Binomial model); ``None``: the law is taken as exact.

    Examples
    --------
    >>> import bayescale as bs
    >>> model = bs.ScalingModel(bs.laws.Chinchilla(), target="loss", inputs={"N": "N", "D": "D"})
    >>> model.parameter_names
    ('E', 'A', 'alpha', 'B', 'beta', 'sigma')
    >>> fam = bs.ScalingModel("chinchilla", group="family", shared=["beta"])
    >>> fam.treatments["alpha"], fam.treatments["beta"]
    ('pooled', 'shared')
    """

    def __init__(
        self,
        law: Law | str,
        target: str = "loss",
        inputs: Mapping[str, str] | None = None,
        *,
        likelihood: likelihoods.StudentT | likelihoods.Normal | None = None,
        priors: Mapping[str, priors.Prior] | str | None = None,
        tie: Mapping[str, str | float] | None = None,
        noise: str | None = None,
        reference: Mapping[str, float] | None = None,
        group: str | None = None,
        within: str | None = None,
        pooled: list[str] | None = None,
        shared: list[str] | None = None,
        independent: list[str] | None = None,
        group_scale: bool = False,
        pilot: bool | None = None,
        discrepancy: discrepancies.Drift | None | str = "auto",
    ) -> None:
        self.law = laws.get(law) if isinstance(law, str) else law
        if not isinstance(self.law, Law):
            raise TypeError(f"law must be a bayescale Law or a registered law name, got {law!r}")
        if tie:
            self.law = laws.Tied(self.law, tie)
        declared_level_terms(self.law)  # a law's level_terms declaration is checked here, not at the first fit
        if not isinstance(target, str):
            raise TypeError(f"target must be a column name (str), got {target!r}")
        self.target = target
        self.inputs = self._check_inputs(inputs)
        self.likelihood = likelihood if likelihood is not None else likelihoods.get(self.law.default_likelihood)
        if not isinstance(self.likelihood, tuple(likelihoods.LIKELIHOODS.values())):
            raise TypeError(
                f"likelihood must be one of bs.likelihoods.{sorted(likelihoods.LIKELIHOODS)}, got {likelihood!r}"
            )
        self.priors = self._check_priors(priors or {})
        if noise is not None and self.counts:
            raise ValueError(
                "noise= adds known noise to a residual scale, which a Binomial likelihood does not have; "
                "its scatter is the benchmark's own sampling noise"
            )
        if noise is not None and isinstance(self.likelihood, likelihoods.LogitNormal):
            raise ValueError(
                "noise= is known noise of log(target), and a LogitNormal likelihood's residuals are on the log-odds; "
                "fit without noise= (the residual scale sigma is learned), or with a Binomial likelihood on counts"
            )
        self.noise = noise
        self.reference = self._check_reference(reference or {})
        if group is not None and not isinstance(group, str):
            raise TypeError(f"group must be a column name (str), got {group!r}")
        self.group = group
        self.treatments = self._check_treatments({"pooled": pooled, "shared": shared, "independent": independent})
        self.within = self._check_within(within)
        self.group_scale = self._check_group_scale(group_scale)
        if pilot is not None and not isinstance(pilot, bool):
            raise TypeError(f"pilot must be True, False or None, got {pilot!r}")
        self.pilot = pilot
        self.discrepancy = self._check_discrepancy(discrepancy)

    # -- checks ----------------------------------------------------------------------
    def _check_inputs(self, inputs):
        if inputs is None:
            return {x: x for x in self.law.inputs}
        inputs = dict(inputs)
        if set(inputs) != set(self.law.inputs):
            raise ValueError(
                f"inputs must map exactly the law's inputs {list(self.law.inputs)} to data columns, "
                f"got keys {list(inputs)}"
            )
        for law_input, column in inputs.items():
            if not isinstance(column, str):
                raise TypeError(f"inputs[{law_input!r}] must be a column name (str), got {column!r}")
        return {x: inputs[x] for x in self.law.inputs}

    def _check_priors(self, given):
        if isinstance(given, str):
            if given != "literature":
                raise ValueError(f"priors must be a mapping of parameter -> prior or 'literature', got {given!r}")
            return laws.literature_priors(self.law)
        out = {}
        for name, prior in given.items():
            par = self.law.parameter(name) if name in self.law.parameter_names else None
            if par is None:
                raise KeyError(
                    f"priors: law {self.law.name!r} has no parameter {name!r}; "
                    f"its parameters are {list(self.law.parameter_names)}"
                )
            if not isinstance(prior, tuple(priors.PRIORS.values())):
                raise TypeError(f"priors[{name!r}] must be bs.priors.LogNormal or bs.priors.Normal, got {prior!r}")
            if prior.transform != par.transform:
                kind = "LogNormal (the parameter is positive)" if par.transform == "log" else "Normal"
                raise TypeError(f"priors[{name!r}] must be a {kind}, got {prior!r}")
            out[name] = prior
        return out

    def _check_treatments(self, lists):
        for how, names in lists.items():
            if isinstance(names, str):
                raise TypeError(f"{how} must be a list of parameter names, got the string {names!r}")
        given = {how: list(names) for how, names in lists.items() if names is not None}
        if given and self.group is None:
            raise ValueError(f"{' and '.join(given)} need a group column: ScalingModel(..., group='family')")
        allowed = self.law.parameter_names + self.noise_names
        treatments = {}
        for how, names in given.items():
            for name in names:
                if name not in allowed:
                    noise = " and the noise scale 'sigma'" if self.noise_names else ""
                    raise KeyError(
                        f"{how}: law {self.law.name!r} has no parameter {name!r}; "
                        f"its parameters are {list(self.law.parameter_names)}{noise}"
                    )
                if name in treatments:
                    raise ValueError(f"parameter {name!r} is listed as both {treatments[name]} and {how}")
                treatments[name] = how
        default = "pooled" if self.group is not None else "shared"
        out = {name: treatments.get(name, default) for name in self.law.parameter_names}
        if self.group is not None:
            out.update({name: treatments.get(name, NOISE_DEFAULT) for name in self.noise_names})
        return out

    def _check_group_scale(self, group_scale):
        if not isinstance(group_scale, bool):
            raise TypeError(f"group_scale must be True or False, got {group_scale!r}")
        if not group_scale:
            return False
        if self.group is None:
            raise ValueError(
                "group_scale=True gives each group a scale of its own and needs a group column: "
                "ScalingModel(..., group='family', group_scale=True)"
            )
        if self.within is not None:
            raise ValueError(
                f"group_scale=True does not take groups nested in outer groups (within={self.within!r}) "
                "yet; drop one of them"
            )
        if self.likelihood.rate:
            raise ValueError(
                "group_scale=True shifts each group's curve by a factor, and the target is a rate "
                "bounded by 1 (its units are fixed); leave group_scale out"
            )
        levels = scaled_terms(self.law, self.treatments)
        if len(levels) < 2:
            raise ValueError(
                f"group_scale=True shifts the pooled level terms of every group together, and law {self.law.name!r} "
                f"has {list(levels) or 'none'} pooled in the target's units; pool two or more of them "
                "(with one, its spread is the group's scale already)"
            )
        return True

    def _check_within(self, within):
        if within is None:
            return None
        if not isinstance(within, str):
            raise TypeError(f"within must be a column name (str), got {within!r}")
        if self.group is None:
            raise ValueError(
                f"within={within!r} nests groups in outer groups and needs a group column: "
                f"ScalingModel(..., group='recipe', within={within!r})"
            )
        if within == self.group:
            raise ValueError(f"within must name another column than group, got {within!r} for both")
        if not pooled_names(self.law, self.treatments):
            raise ValueError(
                f"within={within!r} nests the pooled parameters' groups in outer groups, but no law parameter is "
                "pooled; pool some (pooled=[...]) or leave within out"
            )
        return within

    @property
    def noise_names(self) -> tuple[str, ...]:
        """Likelihood parameters that may vary by group: the residual scale ``sigma`` (none for counts)."""
        return tuple(name for name in self.likelihood.parameter_names if name == "sigma")

    def _check_discrepancy(self, discrepancy):
        if isinstance(discrepancy, str):
            if discrepancy != "auto":
                raise ValueError(f"discrepancy must be 'auto', None or a bs.discrepancy.Drift, got {discrepancy!r}")
            return None if self.counts else discrepancies.Drift(**self.law.drift)
        if discrepancy is None:
            return None
        if not isinstance(discrepancy, discrepancies.Drift):
            raise TypeError(f"discrepancy must be 'auto', None or a bs.discrepancy.Drift, got {discrepancy!r}")
        if self.counts:
            raise ValueError(
                "a Drift deviates log(target), and a Binomial model's target is a count whose rate is bounded by 1: "
                "leave discrepancy at its default (none for counts)"
            )
        return discrepancy

    def _check_reference(self, reference):
        allowed = set(self.law.inputs) | {self.target}
        out = {}
        for name, value in reference.items():
            if name not in allowed:
                raise KeyError(
                    f"reference: {name!r} is neither a law input {list(self.law.inputs)} nor the target {self.target!r}"
                )
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
                raise ValueError(f"reference[{name!r}] must be a finite number > 0, got {value!r}")
            if name in self.law.pivots:
                raise ValueError(
                    f"reference[{name!r}]: law {self.law.name!r} centres {name!r} on its own pivot "
                    f"({name}0={self.law.pivots[name]:g}); give the law another pivot instead"
                )
            if name in self.law.shared_reference:
                raise ValueError(
                    f"reference[{name!r}]: law {self.law.name!r} centres {name!r} on the reference scale of "
                    f"{self.law.shared_reference[name]!r}; set that one instead"
                )
            out[name] = float(value)
        return out

    # -- structure -------------------------------------------------------------------
    @property
    def counts(self) -> bool:
        """True when the target counts items right out of a number of trials (Binomial likelihood)."""
        return isinstance(self.likelihood, likelihoods.Binomial)

    @property
    def trials(self) -> str | None:
        """The column with the number of items per row, for a Binomial likelihood."""
        return self.likelihood.trials if self.counts else None

    @property
    def structure_key(self) -> tuple:
        """What decides the compiled sampler besides data shapes: models with equal keys share one."""
        return (
            self.law,
            self.likelihood,
            self.noise is not None,
            tuple(self.treatments.items()),
            self.within,
            self.scaled_names,
        )

    @property
    def shares_shape(self) -> bool:
        """Whether the groups share the law's shape: none of its parameters outside the target's units (the
        exponents, the locations on an input's axis) is ``independent``.

        A group's extrapolation risk is then measured from every group's runs, which test that shape
        (``ScalingFit.reach``); otherwise from its own runs. ``False`` without groups.
        """
        if self.group is None:
            return False
        return all(self.treatments[p.name] != "independent" for p in self.law.parameters if not p.in_target_units)

    @property
    def scaled_names(self) -> tuple[str, ...]:
        """The pooled level terms that each group's own log-scale shifts (``group_scale=True``), else ``()``."""
        return scaled_terms(self.law, self.treatments) if self.group_scale else ()

    @property
    def parameter_names(self) -> tuple[str, ...]:
        """Law parameters followed by likelihood parameters, as named in the posterior."""
        return self.law.parameter_names + self.likelihood.parameter_names

    @property
    def population_names(self) -> tuple[str, ...]:
        """Population-level quantities in the posterior of a hierarchical model.

        ``<name>_pop`` is the population median of a pooled parameter in the user's units
        (for a prefactor: at the population exponent), ``<name>_spread`` the between-group
        standard deviation of its sampling-scale value (of ``log(name)`` for positive ones).
        """
        if self.group is None:
            return ()
        medians = population_medians(self.law, self.treatments)
        out = []
        for name in self.law.parameter_names:
            if self.treatments[name] == "pooled":
                out += [f"{name}_pop"] * (name in medians) + [f"{name}_spread"]
                out += [f"{name}_outer_spread", f"{name}_outer_shift"] if self.within is not None else []
        for name in self.noise_names:
            if self.treatments[name] == "pooled":
                out += [f"{name}_pop", f"{name}_spread"]
        if self.group_scale:
            out.append("scale_spread")
        return tuple(out)

    @property
    def posterior_names(self) -> tuple[str, ...]:
        """Every variable of the fitted posterior: law, population and likelihood parameters."""
        scales = ("scale",) if self.group_scale else ()  # each group's log-scale, per group
        return self.law.parameter_names + scales + self.population_names + self.likelihood.parameter_names

    @property
    def varying_inputs(self) -> tuple[str, ...]:
        """Inputs that must take at least two values (every input of the built-in laws)."""
        return self.law.inputs

    def n_parameters(self, n_groups: int) -> int:
        """Parameters the data must outnumber for ``n_groups`` groups.

        Pooled per-group values are tied together by their population, so they count as
        the population's location and spread; independent ones count once per group.
        """
        per = {"shared": 1, "independent": n_groups, "pooled": 2 + (self.within is not None)}
        noise = [name for name in self.likelihood.parameter_names if name not in self.treatments]
        return sum(per[how] for how in self.treatments.values()) + len(noise) + self.group_scale

    @property
    def informed(self) -> bool:
        """Whether the user gave priors (their own, or ``"literature"``): they stand in for runs, so fewer
        rows than parameters warns instead of refusing; under the law's defaults alone it is an error."""
        return bool(self.priors)

    def prior(self, name: str) -> priors.Prior:
        """The prior in force for law parameter ``name`` (the user's, else the law's default)."""
        return self.priors.get(name, self.law.parameter(name).prior)

    # -- data ------------------------------------------------------------------------
    def validate(self, frame: pd.DataFrame) -> data_mod.ScalingData:
        """Check ``frame`` against this model (columns, dtypes, values, row count)."""
        return data_mod.validate(
            frame,
            inputs=self.inputs,
            target=self.target,
            noise=self.noise,
            group=self.group,
            within=self.within,
            n_parameters=self.n_parameters,
            few_rows="warn" if self.informed else "error",
            varying=self.varying_inputs,
            trials=self.trials,
            rate=self.likelihood.rate and not self.counts,
        )

    # -- fitting ---------------------------------------------------------------------
    def fit(
        self,
        data: pd.DataFrame,
        *,
        seed: int = 0,
        chains: int = 4,
        warmup: int = 1000,
        draws: int = 1000,
        chain_method: str | None = None,
        progress_bar: bool | None = None,
        **nuts_options,
    ):
        """Fit the model to ``data`` with NUTS and return a :class:`~bayescale.ScalingFit`.

        Parameters
        ----------
        data : pandas.DataFrame
            One row per training run (or checkpoint), with the mapped columns.
        seed : int
            Seed of all randomness; the same seed gives the same draws.
        chains, warmup, draws : int
            Number of chains, warmup iterations and kept draws per chain.
        chain_method : {"threads", "vectorized", "parallel"}, optional
            How chains run (advanced). Default ``"threads"`` on CPU (one thread per core),
            ``"vectorized"`` on GPU and TPU. The draws of a chain do not depend on it beyond
            floating-point rounding.
        progress_bar : bool, optional
            A progress bar; default when the session is interactive.
        **nuts_options
            Advanced: NUTS settings (``target_accept_prob``, ``max_tree_depth``, ``dense_mass``,
            ``init``, ...), each chosen from the model and the data when not given. See
            :class:`bayescale.sampler.options.NUTSOptions` and ``docs/sampler.md``. Where the run
            diverges and ``target_accept_prob`` was not given, the fit samples once more with
            smaller steps (``target_accept_prob=0.99``) and keeps that run; ``fit.health`` says so
            (a ``target_accept_prob`` given is kept, with no second run).

        Examples
        --------
        >>> import bayescale as bs
        >>> df = bs.datasets.load("chinchilla")                      # doctest: +SKIP
        >>> fit = bs.ScalingModel("chinchilla").fit(df, seed=0)      # doctest: +SKIP
        """
        return fitting.fit(
            self,
            data,
            seed=seed,
            chains=chains,
            warmup=warmup,
            draws=draws,
            chain_method=chain_method,
            progress_bar=progress_bar,
            **nuts_options,
        )

    def fit_many(
        self,
        data,
        by: str | list[str] | None = None,
        *,
        seed: int = 0,
        chains: int = 4,
        warmup: int = 1000,
        draws: int = 1000,
        batch_size: int | None = None,
        progress_bar: bool | None = None,
        client=None,
        **nuts_options,
    ):
        """Fit the model to many data sets through one compiled program; a :class:`~bayescale.ScalingFits`.

        Every data set gets the fit :meth:`fit` would give it (its own reference scales,
        step size and mass matrix, the same seed), but all of them run through one
        compiled NUTS program: rows are padded to a common length and masked, so data
        sets of different lengths share it. On GPU/TPU the program is vmapped over the
        data sets; on CPU every chain of every data set is a call of it, in one thread
        per core (see :mod:`bayescale.fitting`).

        Parameters
        ----------
        data : pandas.DataFrame, mapping or list
            One DataFrame split into data sets by the ``by`` columns, or a mapping of keys
            to DataFrames, or a list of DataFrames (keys 0, 1, ...).
        by : str or list of str, optional
            Column(s) whose values name the data sets (with a DataFrame). Every row needs
            a value there.
        seed, chains, warmup, draws, **nuts_options
            As in :meth:`fit`, for every data set (``init="mode"`` is faster on many small
            data sets; see ``docs/sampler.md``).
        progress_bar : bool, optional
            Progress over the fits; default when the session is interactive.
        batch_size : int, optional
            Data sets per vectorised batch. Default: all of them on GPU/TPU; on CPU no
            vectorised batches (one chain per call: a vectorised batch pays for its longest
            trajectory, which costs more than it saves there). Given on CPU, the batches
            run in one thread per core.
        client : dask.distributed.Client, optional
            Run the fits on the workers of a Dask cluster (a ``LocalCluster`` for one
            machine, any deployment for many): the data sets go to the workers in chunks,
            each worker compiles the sampler once and keeps it, and results stream back
            (with the progress bar). A chunk whose worker is lost runs again on another.
            Every data set gets the draws it would get without a client. On GPU workers
            each gets one vectorised batch, or batches of ``batch_size``. See
            ``docs/cluster.md``.

        Returns
        -------
        ScalingFits
            A mapping from key to :class:`~bayescale.ScalingFit`, with ``summary()`` (one
            row per key and parameter) and ``health`` (one row per key).

        Examples
        --------
        >>> model = bs.ScalingModel(bs.laws.PowerLaw("N"), target="loss", inputs={"N": "N"})  # doctest: +SKIP
        >>> fits = model.fit_many(df, by="task", seed=0, chains=2, warmup=500, draws=500)  # doctest: +SKIP
        >>> fits["t3"].idata                                                                 # doctest: +SKIP
        >>> fits.summary()                                                                   # doctest: +SKIP
        """
        return fitting.fit_many(
            self,
            data,
            by,
            seed=seed,
            chains=chains,
            warmup=warmup,
            draws=draws,
            batch_size=batch_size,
            progress_bar=progress_bar,
            client=client,
            **nuts_options,
        )

    # -- persistence -----------------------------------------------------------------
    def config(self) -> dict:
        """JSON-serialisable description of this model (stored in saved fits)."""
        return {
            "law": self.law.config(),
            "target": self.target,
            "inputs": self.inputs,
            "likelihood": self.likelihood.config(),
            "priors": {k: v.to_config() for k, v in self.priors.items()},
            "noise": self.noise,
            "reference": self.reference,
            "group": self.group,
            "within": self.within,
            "treatments": self.treatments if self.group is not None else {},
            "group_scale": self.group_scale,
            "pilot": self.pilot,
            "discrepancy": None if self.discrepancy is None else self.discrepancy.config(),
        }

    @classmethod
    def from_config(cls, config: dict, law: Law | None = None) -> ScalingModel:
        """Rebuild a model from :meth:`config`; pass ``law`` for an unregistered custom law."""
        if law is None:
            name = config["law"]["name"]
            if name not in laws.LAWS:
                raise KeyError(
                    f"the saved fit uses law {name!r}, which is not registered here; "
                    "pass it as load_fit(path, law=YourLaw()) or register it with bs.laws.register"
                )
            law = laws.get(name, **config["law"]["args"])
        return cls(
            law,
            target=config["target"],
            inputs=config["inputs"],
            likelihood=likelihoods.from_config(config["likelihood"]),
            priors={k: priors.from_config(v) for k, v in config["priors"].items()},
            tie=None if isinstance(law, laws.Tied) else config["law"].get("tie"),
            noise=config["noise"],
            reference=config["reference"],
            group=config.get("group"),
            within=config.get("within"),  # files from before it: one level
            **_lists(config.get("treatments", {})),
            group_scale=config.get("group_scale", False),  # files from before it: one scale
            pilot=config.get("pilot"),
            discrepancy=discrepancies.from_config(config.get("discrepancy")),  # files from before it: none
        )

    def __repr__(self) -> str:
        grouping = ""
        if self.group is not None:
            by = {
                how: [k for k, v in self.treatments.items() if v == how] for how in ("pooled", "shared", "independent")
            }
            grouping = f", group={self.group!r}" + (f", within={self.within!r}" if self.within else "") + ", "
            grouping += ", ".join(f"{how}={names}" for how, names in by.items() if names)
            grouping += ", group_scale=True" if self.group_scale else ""
            grouping += f", pilot={self.pilot}" if self.pilot is not None else ""
        return (
            f"ScalingModel({self.law!r}, target={self.target!r}, inputs={self.inputs}, "
            f"likelihood={self.likelihood}{grouping})"
        )


def _lists(treatments: Mapping[str, str]) -> dict[str, list[str]]:
    """``{"alpha": "pooled", ...}`` -> ``{"pooled": ["alpha", ...], ...}`` for the constructor."""
    out: dict[str, list[str]] = {}
    for name, how in treatments.items():
        out.setdefault(how, []).append(name)
    return out
