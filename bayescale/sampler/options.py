"""NUTS settings: what a user may pass to ``fit`` (all advanced; the defaults need no tuning)."""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np

from bayescale.sampler import adaptation

DENSE_MAX_DIM = 64  # largest model given a dense mass matrix by default
LAPLACE_MAX_DIM = 64  # largest model whose chains start at a Laplace approximation (exact Hessians)
MODE_START_ROWS = 1000  # padded rows from which chains start at the mode by default
PILOT_WARMUP_TREE_DEPTH = 6  # default warmup_max_tree_depth when chains start at the pilot's point
# ... where many data sets' chains run in lockstep in one vectorised batch (fit_many on GPU/TPU, batch_size=):
# each iteration lasts as long as the batch's longest tree, and early warmup trees reach the full depth
LOCKSTEP_WARMUP_TREE_DEPTH = 6
TARGET_ACCEPT = 0.9  # default target_accept_prob
FRAMED_TARGET_ACCEPT = 0.95  # ... where pooled groups are sampled in the pilot's frame
RERUN_TARGET_ACCEPT = 0.99  # target_accept_prob of the second run of a fit whose first run diverged
# mean leapfrog steps per draw of a first run above which it is not rerun: trajectories that long say the
# mass matrix misses the posterior's scales, which smaller steps do not mend (docs/hierarchy.md)
RERUN_MAX_STEPS = 100
INITS = ("mode", "random", "pilot")
LOCAL_MODE_STARTS = 8  # modes each chain finds (from its own random starts) for a law with poor local modes
EXTEND = 3  # default NUTSOptions.extend: a fit whose draws fall short runs on to at most 4 times the draws asked


@dataclass(frozen=True)
class NUTSOptions:
    """Options of NumPyro's NUTS kernel and of where chains start. Every one is advanced.

    ``None`` means "chosen from the model and the data" (:meth:`resolved`); the choices are
    explained in ``docs/sampler.md``.

    Parameters
    ----------
    dense_mass : bool, optional
        Dense mass matrix; default dense up to :data:`DENSE_MAX_DIM` dimensions.
    target_accept_prob : float, optional
        Default :data:`TARGET_ACCEPT`; :data:`FRAMED_TARGET_ACCEPT` for pooled groups in the
        pilot's frame.
    max_tree_depth : int
        After warmup (NumPyro's default, 10).
    warmup_max_tree_depth : int, optional
        During warmup; default ``max_tree_depth``, or :data:`PILOT_WARMUP_TREE_DEPTH` from the
        pilot's start, or :data:`LOCKSTEP_WARMUP_TREE_DEPTH` where many data sets run in one
        vectorised batch (:meth:`warmup_depth`).
    adapt_step_size, adapt_mass_matrix, regularize_mass_matrix : bool
        As in ``numpyro.infer.NUTS``; ``regularize_mass_matrix`` defaults to off for dense
        matrices below 25 dimensions.
    laplace_mass : bool
        Start adapting from the Laplace approximation's covariance even from a random start.
    diagonal_shrinkage : bool, optional
        bayescale's warmup of a dense matrix (:mod:`bayescale.sampler.adaptation`); default on
        for dense matrices of 25 or more dimensions.
    init : {"mode", "random", "pilot"}, optional
        Where chains start: at a draw from the Laplace approximation at the nearest mode, at
        a random point, or at the hierarchy pilot's point. Default: ``"pilot"`` where the
        hierarchy's pilot ran (:class:`~bayescale.ScalingModel`'s ``pilot``), else ``"mode"``
        from :data:`MODE_START_ROWS` rows or for a law with poor local modes (a broken power law),
        else ``"random"``.
    mode_starts : int, optional
        With ``init="mode"``: each chain climbs by Newton steps from this many random starts
        and starts at the mode of the largest Laplace mass among them (the density at the mode
        times the volume of its normal approximation). Default :data:`LOCAL_MODE_STARTS` for a
        law with poor local modes, else 1 (the mode nearest one random start).
    pooled_warmup : bool, optional
        With bayescale's warmup of a dense matrix (``diagonal_shrinkage``): each window's matrix
        estimated from all chains' draws of the window at once
        (:func:`~bayescale.sampler.adaptation.pooled_window_end`), not from each chain's own.
        Default off: measured, it helps some hierarchies and costs others (``docs/sampler.md``).
        Many fits (``fit_many``, the calibration studies) keep each chain's own windows.
    extend : int
        Times one fit's chains run on for as many draws again where they fall short of the
        health rule only for want of draws: no divergences, but R-hat above 1.01 (and at most
        :data:`~bayescale.sampler.diagnostics.EXTEND_RHAT_MAX`) or too few effective draws
        (:func:`~bayescale.sampler.diagnostics.short_of_draws`). The chains go on from where they
        stopped, with the step size and mass matrix of their warmup, so all their draws are one
        run. Default :data:`EXTEND`; 0 keeps exactly the draws asked for. ``fit_many`` does not
        extend (its fits share a batch), nor does a fit whose pointwise log likelihood would grow
        past :data:`~bayescale.sampler.runner.EXTEND_MAX_VALUES` values (chains x draws x rows).

    Examples
    --------
    >>> NUTSOptions(target_accept_prob=0.95).resolved(dimension=6, rows=60).dense_mass
    True
    """

    dense_mass: bool | None = None
    target_accept_prob: float | None = None
    max_tree_depth: int = 10
    warmup_max_tree_depth: int | None = None
    adapt_step_size: bool = True
    adapt_mass_matrix: bool = True
    regularize_mass_matrix: bool | None = None
    laplace_mass: bool = False
    diagonal_shrinkage: bool | None = None
    init: str | None = None
    mode_starts: int | None = None
    pooled_warmup: bool | None = None
    extend: int = EXTEND

    @classmethod
    def from_kwargs(cls, **options) -> NUTSOptions:
        """Options from a user's keywords, with unknown names named in a ``TypeError``."""
        unknown = set(options) - set(cls.__dataclass_fields__)
        if unknown:
            raise TypeError(f"unknown NUTS options {sorted(unknown)}; valid: {sorted(cls.__dataclass_fields__)}")
        return cls(**options)

    def __post_init__(self) -> None:
        if self.target_accept_prob is not None and not 0 < self.target_accept_prob < 1:
            raise ValueError(f"target_accept_prob must be in (0, 1), got {self.target_accept_prob}")
        depths = {"max_tree_depth": self.max_tree_depth}
        if self.warmup_max_tree_depth is not None:
            depths["warmup_max_tree_depth"] = self.warmup_max_tree_depth
        for name, depth in depths.items():
            if not (isinstance(depth, int) and 1 <= depth <= 15):
                raise ValueError(f"{name} must be an integer in [1, 15], got {depth!r}")
        if self.init is not None and self.init not in INITS:
            raise ValueError(f"init must be one of {INITS}, got {self.init!r}")
        if self.mode_starts is not None and not (
            isinstance(self.mode_starts, int) and not isinstance(self.mode_starts, bool) and self.mode_starts >= 1
        ):
            raise ValueError(f"mode_starts must be a whole number >= 1, got {self.mode_starts!r}")
        if not (isinstance(self.extend, int) and not isinstance(self.extend, bool) and self.extend >= 0):
            raise ValueError(f"extend must be a whole number >= 0, got {self.extend!r}")

    def resolved(
        self,
        dimension: int,
        rows: int,
        *,
        has_start: bool = False,
        framed: bool = False,
        local_modes: bool = False,
        many: bool = False,
    ) -> NUTSOptions:
        """Every ``None`` filled in for a model of ``dimension`` unconstrained dimensions and ``rows``
        (padded) rows; ``has_start``: the model supplies a pilot's start; ``framed``: pooled groups
        are sampled in the pilot's frame; ``local_modes``: the law has poor local modes that strand
        chains started at random (:attr:`bayescale.laws.Law.local_modes`), so chains start at the
        best of several modes at any number of rows; ``many``: for many fits in one run, whose chains
        keep their own warmup."""
        options = self
        if options.target_accept_prob is None:
            options = replace(options, target_accept_prob=FRAMED_TARGET_ACCEPT if framed else TARGET_ACCEPT)
        if options.dense_mass is None:
            options = replace(options, dense_mass=dimension <= DENSE_MAX_DIM)
        if options.regularize_mass_matrix is None:
            options = replace(options, regularize_mass_matrix=not (options.dense_mass and dimension < 25))
        if options.diagonal_shrinkage is None:
            own = options.dense_mass and options.adapt_mass_matrix and dimension >= adaptation.FIRST_WINDOW
            options = replace(options, diagonal_shrinkage=own)
        elif options.diagonal_shrinkage and not (options.dense_mass and options.adapt_mass_matrix):
            raise ValueError("diagonal_shrinkage=True needs dense_mass=True and adapt_mass_matrix=True")
        if options.pooled_warmup is None:
            options = replace(options, pooled_warmup=False)
        elif options.pooled_warmup and many:
            raise ValueError("pooled_warmup=True pools one fit's chains; fit_many keeps each chain's own warmup")
        elif options.pooled_warmup and not options.diagonal_shrinkage:
            raise ValueError("pooled_warmup=True needs bayescale's warmup of a dense matrix (diagonal_shrinkage=True)")
        if options.init is None:
            if has_start:
                init = "pilot"
            else:
                large = rows >= MODE_START_ROWS or local_modes
                init = "mode" if dimension <= LAPLACE_MAX_DIM and large else "random"
            options = replace(options, init=init)
        elif options.init == "pilot" and not has_start:
            raise ValueError(
                'init="pilot" needs the pilot\'s fits of every group: a hierarchical model without pilot=False '
                "(ScalingModel(..., group=...)); fit_many and calibration studies start at random"
            )
        elif options.init == "mode" and dimension > LAPLACE_MAX_DIM:
            raise ValueError(
                f'init="mode" needs exact Hessians, and this model has {dimension} unconstrained dimensions '
                f'(at most {LAPLACE_MAX_DIM}); use init="random"'
            )
        if options.mode_starts is None:
            options = replace(options, mode_starts=LOCAL_MODE_STARTS if local_modes else 1)
        elif options.mode_starts > 1 and options.init != "mode":
            raise ValueError(
                f'mode_starts={options.mode_starts} applies to init="mode", and this fit has init={options.init!r}'
            )
        if options.warmup_max_tree_depth is None and options.init == "pilot":
            options = replace(options, warmup_max_tree_depth=min(PILOT_WARMUP_TREE_DEPTH, options.max_tree_depth))
        return options

    def warmup_depth(self, lockstep: bool) -> int:
        """The maximum tree depth during warmup: ``warmup_max_tree_depth`` where given (or set by
        :meth:`resolved`), else :data:`LOCKSTEP_WARMUP_TREE_DEPTH` (at most ``max_tree_depth``) where
        the chains of many data sets run in ``lockstep``, in one vectorised batch, else
        ``max_tree_depth``.

        The run decides, not :meth:`resolved`: a batch runs in lockstep or not by where it runs (a
        GPU worker of a Dask cluster, or a CPU).

        Examples
        --------
        >>> NUTSOptions().warmup_depth(lockstep=True), NUTSOptions().warmup_depth(lockstep=False)
        (6, 10)
        >>> NUTSOptions(warmup_max_tree_depth=8).warmup_depth(lockstep=True)
        8
        """
        if self.warmup_max_tree_depth is not None:
            return self.warmup_max_tree_depth
        return min(LOCKSTEP_WARMUP_TREE_DEPTH, self.max_tree_depth) if lockstep else self.max_tree_depth

    def rerun(self, given: NUTSOptions, divergences: int, steps_per_draw: float) -> NUTSOptions | None:
        """The options of a second run where this run (these resolved options) had ``divergences`` and
        took ``steps_per_draw`` leapfrog steps per draw on average, or ``None`` where none is due.

        Stan's remedy for divergences, taken by the package instead of asked of the user: a higher
        target acceptance, hence smaller leapfrog steps, which follow a posterior whose curvature
        changes along the chain (a funnel, the tail of a weakly identified irreducible term).
        :meth:`bayescale.ScalingModel.fit` runs it (one fit; ``fit_many``'s fits share a batch).
        Only where ``given`` (the user's options) left ``target_accept_prob`` to the package (a
        target the user gives is kept: the way to keep a first run as it is), the
        step size is adapted (else the target changes nothing), it is below
        :data:`RERUN_TARGET_ACCEPT`, and the run's trajectories were short (at most
        :data:`RERUN_MAX_STEPS` steps per draw): longer ones mean a mass matrix that misses the
        posterior's scales, where smaller steps cost several times the run and mend nothing.

        Examples
        --------
        >>> NUTSOptions().resolved(dimension=6, rows=60).rerun(NUTSOptions(), 3, 20.0).target_accept_prob
        0.99
        >>> NUTSOptions(target_accept_prob=0.9).rerun(NUTSOptions(target_accept_prob=0.9), 3, 20.0) is None
        True
        >>> NUTSOptions().resolved(dimension=6, rows=60).rerun(NUTSOptions(), 3, 250.0) is None  # long trajectories
        True
        """
        due = divergences > 0 and given.target_accept_prob is None and self.adapt_step_size
        if not (due and smaller_steps_help(self.target_accept_prob, steps_per_draw)):
            return None
        return replace(self, target_accept_prob=RERUN_TARGET_ACCEPT)


def smaller_steps_help(target_accept_prob: float, steps_per_draw: float) -> bool:
    """Whether a run at ``target_accept_prob`` that took ``steps_per_draw`` leapfrog steps per draw can be
    mended by :data:`RERUN_TARGET_ACCEPT`: a higher target, and trajectories short enough (at most
    :data:`RERUN_MAX_STEPS`) that its divergences are a step too large, not a mass matrix that misses the
    posterior's scales. The rule of :meth:`NUTSOptions.rerun` and of the divergence advice
    (:mod:`bayescale.sampler.diagnostics`)."""
    return target_accept_prob < RERUN_TARGET_ACCEPT and steps_per_draw <= RERUN_MAX_STEPS


def dimension(sites) -> int:
    """Unconstrained dimensions of the latent ``sites`` (name -> (shape, init half-width))."""
    return sum(math.prod(shape) for shape, _ in sites.values())


def check_counts(chains: int, warmup: int, draws: int) -> None:
    """Reject bad chain and draw counts with a plain sentence."""
    for name, value, low in (("chains", chains, 1), ("warmup", warmup, 0), ("draws", draws, 1)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
            raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")


def check_seed(seed) -> int:
    """The seed as an ``int``, or a plain ``ValueError`` for anything but a non-negative integer."""
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    return int(seed)
