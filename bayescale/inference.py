"""NUTS driver: compiled once per model structure and data shape, then reused.

``numpyro.infer.MCMC.run`` traces and compiles again on every call. Here the sampler
is built from NumPyro's functional NUTS kernel (``numpyro.infer.hmc.hmc``) with the
data as a jit *argument*, so a second fit of same-shaped data costs only sampling.
On CPU every chain is its own call of a single-chain program and the calls run in one
thread per core; on GPU and TPU the chains are vmapped into one program (see
:func:`default_chain_method`), and ``chain_method="parallel"`` splits them over devices
with ``jax.shard_map``.
"""

from __future__ import annotations

import functools
import math
import os
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree
from jax.sharding import Mesh, PartitionSpec
from numpyro.infer.hmc import hmc
from numpyro.infer.util import constrain_fn, log_likelihood, potential_energy

from bayescale import adaptation
from bayescale.laplace import laplace
from bayescale.model import ModelArgs, n_rows, pad_rows, row_bucket, standardising_scale

CHAIN_METHODS = ("parallel", "threads", "vectorized")
DENSE_MAX_DIM = 64  # largest model given a dense mass matrix by default (see NUTSOptions)
LAPLACE_MAX_DIM = 64  # largest model whose chains start at a Laplace approximation (exact Hessians)
MODE_START_ROWS = 1000  # padded rows from which chains start at the mode by default (see NUTSOptions)
PILOT_WARMUP_TREE_DEPTH = 6  # default warmup_max_tree_depth with init="pilot" (see NUTSOptions)
TARGET_ACCEPT = 0.9  # default target_accept_prob (see NUTSOptions)
FRAMED_TARGET_ACCEPT = 0.95  # ... where pooled groups are sampled in the pilot's frame
START_NEWTON_STEPS = 400  # most Newton steps from a chain's random start to the mode (10,000 rows: up to 200)
INITS = ("mode", "random", "pilot")
KEEP_COMPILED = 16  # compiled samplers kept per process (see CompiledCache)
CPU_OPTIMIZATION_LEVEL = 1  # LLVM optimisation level of run-once programs compiled for CPU (see compiled)
CPU_COMPILER_OPTIONS = {"xla_cpu_use_fusion_emitters": False}  # CPU programs that run briefly (see compiled)
RUNS = ("once", "fit", "many")  # how long a compiled program runs (see compiled)


def compiled(fn: Callable, *, runs: str = "fit") -> Callable:
    """``jax.jit(fn)``, compiled for CPU as suits how long the program ``runs``.

    Compiling is most of a small fit's cold wall time (and of the test suite's), so on CPU
    bayescale trades some of a program's speed for compile time where the program runs
    briefly, and keeps XLA's defaults where it runs long (``benchmarks/bench_compile.py``,
    this 2-core machine):

    - ``"once"``: once per fit (random starts, NumPyro's initial step-size search,
      post-processing, the pilot). LLVM optimisation at :data:`CPU_OPTIMIZATION_LEVEL` 1 and
      XLA's older LLVM emitters for fused loops instead of its MLIR fusion emitters
      (:data:`CPU_COMPILER_OPTIONS`): a start program compiles in 1.4 instead of 2.2 s.
    - ``"fit"``: the sampling loop of one fit, seconds of sampling. The older emitters
      only: it compiles in 2.3-2.5 instead of 3.1-3.7 s and samples 5-8% slower (a cold
      fit of the bundled data in 6.6 instead of 8.1 s, a warm one in 1.18 instead of 1.12 s).
      At level 1 too it compiled little faster and once sampled 30-40% slower.
    - ``"many"``: the sampling loop of many fits (``fit_many``, calibration studies):
      XLA's defaults, as sampling is most of their time.

    Other backends keep XLA's defaults.
    """
    if runs not in RUNS:
        raise ValueError(f"runs must be one of {RUNS}, got {runs!r}")
    if runs == "many" or jax.default_backend() != "cpu":
        return jax.jit(fn)
    options = dict(CPU_COMPILER_OPTIONS)
    if runs == "once" and CPU_OPTIMIZATION_LEVEL is not None:
        options["xla_backend_optimization_level"] = CPU_OPTIMIZATION_LEVEL
    options = cpu_compiler_options(tuple(sorted(options.items())))
    return jax.jit(fn, compiler_options=options) if options else jax.jit(fn)


@functools.cache
def cpu_compiler_options(options: tuple[tuple[str, object], ...]) -> dict:
    """The ``options`` (sorted ``(name, value)`` pairs) that this jaxlib's CPU compiler accepts.

    XLA's debug options come and go between releases, and an unknown one fails only when a
    program is compiled; each is tried once per process on a trivial program, and one that
    fails is left out (the programs then compile as XLA would by default).
    """
    accepted = {}
    for name, value in options:
        try:
            jax.jit(lambda x: x + 1, compiler_options={name: value}).lower(0.0).compile()
        except Exception:  # noqa: BLE001 - jaxlib raises its own runtime error types
            continue
        accepted[name] = value
    return accepted


class CompiledCache:
    """The most recently used compiled programs of a process, at most ``maxsize`` of them.

    Every compiled program holds machine code that the operating system counts as
    memory mappings (1,000-1,600 for one NUTS sampler on CPU), and Linux stops a
    process at ``vm.max_map_count`` of them (65,530 by default) with a segmentation
    fault inside the compiler. A notebook that fits a few dozen model variants would
    get there if every sampler stayed alive, so the least recently used one is dropped
    (and freed) when a new one needs the room; fitting it again compiles it again.

    Examples
    --------
    >>> cache = CompiledCache(maxsize=2)
    >>> [cache.get(k, lambda k=k: k.upper()) for k in "aba"]
    ['A', 'B', 'A']
    >>> cache.get("c", lambda: "C"), list(cache)
    ('C', ['a', 'c'])
    """

    def __init__(self, maxsize: int) -> None:
        if maxsize < 1:
            raise ValueError(f"maxsize must be at least 1, got {maxsize!r}")
        self.maxsize = maxsize
        self._items: OrderedDict = OrderedDict()
        self._lock = threading.Lock()  # fit_many looks samplers up from several threads

    def get(self, key: Hashable, make: Callable[[], object]):
        """The entry of ``key``, made by ``make()`` when absent; it becomes the most recent."""
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key]
            value = self._items[key] = make()
            while len(self._items) > self.maxsize:
                self._items.popitem(last=False)
            return value

    def clear(self) -> None:
        """Drop every entry (their compiled programs are freed when nothing else holds them)."""
        with self._lock:
            self._items.clear()

    def __len__(self) -> int:
        return len(self._items)

    def __iter__(self):
        return iter(list(self._items))


@dataclass(frozen=True)
class NUTSOptions:
    """Options passed to NumPyro's NUTS kernel (see ``numpyro.infer.NUTS``).

    The defaults suit scaling-law posteriors: after centring the inputs the remaining
    correlations (irreducible term against prefactors, prefactor against exponent) are
    close to linear, so a dense mass matrix removes them (Chinchilla data: 7 leapfrog
    steps per draw, against 113 with a diagonal one). ``dense_mass=None`` (default) picks
    a dense matrix up to :data:`DENSE_MAX_DIM` unconstrained dimensions and a diagonal one
    above, where a few hundred warmup draws cannot estimate the covariance.
    ``regularize_mass_matrix=None`` (default) turns NumPyro's shrinkage of the adapted
    matrix towards ``1e-3 * I`` off for dense matrices of fewer than 25 dimensions (the
    first adaptation window has 25 draws, so their covariance is invertible) and on above,
    where it keeps the matrix invertible. The model's coordinates are scaled
    (``bayescale.model.Z_SCALE``) so that the shrinkage is small; unscaled, it spoiled the
    preconditioner (26 instead of 7 steps per draw on the Chinchilla data), and on weakly
    identified single fits it still cost effective draws (OLMo ladder, 16 runs: min ESS
    160 with it, 780 without), hence off where it is not needed.
    ``init="mode"`` starts every chain at the posterior mode nearest its random start:
    damped Newton steps find the mode, the chain starts at a draw from the Laplace
    approximation there, and NUTS adapts its mass matrix starting from the inverse Hessian
    (see ``_Runner._laplace_start``). ``init="random"`` starts at the random point with an
    identity matrix, as NumPyro does. ``init=None`` (default) is ``"mode"`` where the data
    have at least :data:`MODE_START_ROWS` rows (padded, :func:`~bayescale.model.row_bucket`:
    more than 896) and the model at most :data:`LAPLACE_MAX_DIM` unconstrained dimensions,
    ``"random"`` otherwise. Measured (Chinchilla law, 4 x (500 + 500), this 2-core
    machine): on 10,000 rows random starts never reached the posterior within warmup (248 s,
    R-hat 1.6, min ESS ~0) and the mode start fits in 11 s (R-hat 1.005); on 3,000 rows
    2.1-2.3 s warm against 8.7-28 s (one of three unhealthy, 140 steps per draw); on 1,000
    rows 1.0-1.1 s against 2.9-3.0 s, and faster cold. Below that it is not the default:
    its exact Hessians make the start program compile 1.6 s longer (about 2 s more per
    cold fit), and on a weakly identified 45-run Chinchilla design, over 36 fits of one data
    set, 28 were healthy against 32 from random starts (E's long tail: a chain that enters
    it late stays there; tail ESS down to 42). Warm, it is faster there too (0.83 against
    0.97 s; 200 small fits in ``fit_many`` 23.7 against 29.0 s; the hierarchical benchmark
    21 against 29 s): pass ``init="mode"`` where warm time is what counts.
    ``init="pilot"`` (hierarchical models with ``ScalingModel(..., pilot=True)``, whose pilot
    supplies it; opt-in) starts every chain at a draw from the pilot's normal approximation,
    with its variances as the initial diagonal of the mass matrix
    (:func:`bayescale.pilot.starting_point`), and shrinks each window's estimate towards the
    matrix in force rather than towards its own diagonal (:func:`bayescale.adaptation.adapting`).
    On 8 Chinchilla families x 40 runs: ~40% fewer warmup leapfrog steps, warm fit 5.7-6.1
    against 8.5-9.1 s (three seeds), divergences alike. Not the default: on 7 saturating-law
    families with centred exponents (4 x (1000 + 2000)) some fits have a chain that diverges
    35-61 times in the funnel of a small spread: 0 of 13 seeds on one CPU, 2 of 6 with XLA
    limited to AVX (``XLA_FLAGS=--xla_cpu_max_isa=AVX``), against none of 6 and 5 from random
    starts (0-4 divergences each). Shrinking towards the estimate's own diagonal instead:
    3 of 11.
    ``warmup_max_tree_depth`` caps the trees during warmup (NumPyro's ``max_tree_depth=(warmup,
    sampling)``); ``None`` (default) is ``max_tree_depth``, and with ``init="pilot"``
    :data:`PILOT_WARMUP_TREE_DEPTH` (6: at most 63 leapfrog steps an iteration). From the pilot's start
    the first warmup windows run at a step size 5-8x below the final one, the first 200 iterations
    taking ~24,000 of a chain's ~50,000 warmup steps on the 8 x 40 benchmark; capped, warmup takes
    37,000-39,000 (four seeds), sampling the same or fewer, the warm fit 3.7-4.0 instead of 4.2-4.6 s.
    Late in warmup the trees are ~30 steps, below the cap.
    ``laplace_mass=True`` keeps a random start but starts adapting from the Laplace
    matrix (it only matters with ``init="random"``).
    ``diagonal_shrinkage=None`` (default) adapts a dense matrix of at least
    :data:`~bayescale.adaptation.FIRST_WINDOW` dimensions with :mod:`bayescale.adaptation`'s
    warmup (windows from iteration 25, each estimate shrunk towards its diagonal) instead
    of NumPyro's, whose first estimates are singular there (a hierarchy's warmup took
    2.5x fewer leapfrog steps); ``regularize_mass_matrix`` then has no effect.
    ``target_accept_prob=None`` (default) is :data:`TARGET_ACCEPT` (0.9), and
    :data:`FRAMED_TARGET_ACCEPT` (0.95) where pooled groups are sampled in the pilot's frame
    (:mod:`bayescale.pooled`): its rare divergences sit at the smallest spreads, and the
    smaller step size costs no leapfrog steps there (trees of 15 steps either way). On 8
    Chinchilla families x 40 runs, seeds 0-5: 0-1 divergences per fit at 0.9, none at 0.95;
    on 6 families x 20 runs: 0-3 (7 in 6 fits) and 0-1 (1 in 6); 0.99 doubles the steps.
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


@dataclass
class Samples:
    """Raw output of :func:`sample`: arrays with leading axes (chain, draw)."""

    posterior: dict[str, np.ndarray]
    log_likelihood: np.ndarray | None
    stats: dict[str, np.ndarray]
    chain_method: str
    options: NUTSOptions


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


def cpu_count() -> int:
    """CPU cores this process may use."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def default_chain_method() -> str:
    """``"threads"`` on CPU, ``"vectorized"`` on GPU and TPU.

    ``"threads"``: every chain is its own call of a single-chain program, and the calls
    run in one thread per CPU core (JAX releases the GIL while a program runs).
    ``"vectorized"``: all chains in one program, vmapped; what a GPU or TPU wants. On CPU
    vmapping NUTS costs more than it gives: tracing the vmapped sampler takes ~10x longer
    (JAX batches each of NumPyro's nested while loops several times over to find which
    of their carries are batched), the program is larger to compile, and every iteration
    runs the longest trajectory among the chains. On 2 cores, threads halved both the
    cold and the warm time of a fit (``benchmarks/bench_chain_methods.py``).
    ``"parallel"`` (chains split over devices with ``jax.shard_map``) is opt-in: a
    61-dimensional model with a dense mass matrix hung on CPU devices made with
    ``--xla_force_host_platform_device_count``.
    """
    return "threads" if jax.default_backend() == "cpu" else "vectorized"


def sample(
    model: Callable,
    args: ModelArgs,
    sites: dict[str, tuple[int, ...]],
    *,
    seed: int,
    chains: int,
    warmup: int,
    draws: int,
    options: NUTSOptions,
    chain_method: str | None = None,
    progress_bar: bool = False,
    cache_key: object = None,
) -> Samples:
    """Run NUTS on ``model(args)``; ``sites`` maps latent sites to (unconstrained shape, init half-width).

    ``cache_key`` identifies the model structure (law, likelihood, options); runs with
    the same key and data shapes reuse the compiled sampler. The rows are padded to
    :func:`~bayescale.model.row_bucket` (masked out of the likelihood), so data of
    similar lengths share a compiled sampler too.
    """
    check_counts(chains, warmup, draws)
    rows = n_rows(args)
    args = pad_rows(args, row_bucket(rows))
    options = _resolved(options, sites, n_rows(args), piloted=args.start is not None, framed=args.basis is not None)
    chain_method = chain_method or default_chain_method()
    if chain_method not in CHAIN_METHODS:
        raise ValueError(f"chain_method must be one of {CHAIN_METHODS}, got {chain_method!r}")
    n_devices = math.gcd(chains, jax.local_device_count()) if chain_method == "parallel" else 1
    mode = "chain" if chain_method == "threads" else "chains"
    runner = _runner(model, args, sites, warmup, options, mode, n_devices, cache_key)
    keys = list(jax.random.split(jax.random.key(seed), chains))
    with _progress(progress_bar, warmup + draws, chains, threads=mode == "chain") as bar:
        if mode == "chain":
            per_chain = runner.run_threads([(key, args) for key in keys], draws, bar)
            z, stats = (_stacked([c[i] for c in per_chain]) for i in (0, 1))
        else:
            z, stats = runner.run_chains(jnp.stack(keys), args, draws, bar)
    values, loglik = jax.device_get(runner.post(loglik=True)(_flat(z, 0), args))
    posterior = {k: np.asarray(v).reshape((chains, draws) + np.shape(v)[1:]) for k, v in values.items()}
    loglik = np.asarray(loglik).reshape((chains, draws) + np.shape(loglik)[1:])
    return Samples(posterior, loglik[..., :rows], stats, chain_method, options)


def sample_each(
    model: Callable,
    args: list[ModelArgs],
    sites: dict[str, tuple[int, ...]],
    *,
    seeds: np.ndarray,
    chains: int,
    warmup: int,
    draws: int,
    options: NUTSOptions,
    cache_key: object = None,
) -> Samples:
    """Run NUTS on many data sets, every chain of every data set its own call, in one thread per core.

    The CPU counterpart of :func:`sample_many`: ``args`` holds one data set per entry, all
    of the same shapes (padded by :func:`~bayescale.model.pad_rows`), and data set ``b``
    draws with the random keys a single fit with seed ``seeds[b]`` would use. One
    single-chain program serves all of them; no chain waits for another's trajectory.
    The returned arrays have leading axes (data set, chain, draw); the pointwise log
    likelihood is not computed (``None``, as in :func:`sample_many`).
    """
    check_counts(chains, warmup, draws)
    options = _resolved(options, sites, n_rows(args[0]))
    runner = _runner(model, args[0], sites, warmup, options, "chain", 1, cache_key, many=True)
    tasks = [
        (key, a) for a, seed in zip(args, seeds, strict=True) for key in jax.random.split(jax.random.key(seed), chains)
    ]
    with _progress(False, 0, chains) as bar:
        per_chain = runner.run_threads(tasks, draws, bar, values=True)
    per_set = [_stacked([c[0] for c in per_chain[b : b + chains]]) for b in range(0, len(tasks), chains)]
    per_set_stats = [_stacked([c[1] for c in per_chain[b : b + chains]]) for b in range(0, len(tasks), chains)]
    return Samples(_stacked(per_set), None, _stacked(per_set_stats), "threads", options)


def sample_many(
    model: Callable,
    args: ModelArgs,
    sites: dict[str, tuple[int, ...]],
    *,
    seeds: np.ndarray,
    chains: int,
    warmup: int,
    draws: int,
    options: NUTSOptions,
    cache_key: object = None,
) -> Samples:
    """Run NUTS on a batch of data sets in one compiled, vectorised program.

    ``args`` holds the data sets stacked along a leading axis of every leaf (same shapes
    otherwise); ``seeds`` has one seed per data set, so member ``b`` draws with the random
    keys a single fit with seed ``seeds[b]`` would use. The returned arrays have leading
    axes (data set, chain, draw); the pointwise log likelihood is not computed (it is
    ``None``: at (data set, chain, draw, row) it would dwarf the posterior; see
    :func:`bayescale.predict.log_density`). Data sets of different lengths come padded by
    :func:`~bayescale.model.pad_rows`. NUTS is vmapped over the batch: every iteration
    costs the longest trajectory among the members, so batches of similar posteriors run
    best.
    """
    check_counts(chains, warmup, draws)
    one = jax.tree_util.tree_map(lambda a: a[0], args)
    options = _resolved(options, sites, n_rows(one))
    runner = _runner(model, one, sites, warmup, options, "batch", 1, cache_key, many=True)
    keys = jax.vmap(lambda s: jax.random.split(jax.random.key(s), chains))(jnp.asarray(seeds))
    with _progress(False, 0, chains) as bar:
        z, stats = runner.run_chains(keys, args, draws, bar)
    values = jax.device_get(runner.post(loglik=False)(_flat(z, 1), args))
    posterior = {k: np.asarray(v).reshape((len(seeds), chains, draws) + np.shape(v)[2:]) for k, v in values.items()}
    return Samples(posterior, None, stats, "vectorized", options)


def _runner(model, args, sites, warmup, options, mode, n_devices, cache_key, many: bool = False) -> _Runner:
    """The cached :class:`_Runner` of this model structure, data shape and layout; ``many`` for the
    sampler of many fits (its sampling loop compiled with ``runs="many"``)."""
    shapes = jax.tree_util.tree_map(lambda a: (jnp.shape(a), jnp.result_type(a)), args)
    key = (mode, cache_key, model if cache_key is None else None, warmup, options, n_devices, many)
    key += (tuple(sorted(sites.items())), str(shapes))
    return _RUNNERS.get(key, lambda: _Runner(model, sites, warmup, options, mode, n_devices, many))


def _stacked(parts: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    return {k: np.stack([p[k] for p in parts]) for k in parts[0]}


def _flat(z: dict[str, np.ndarray], lead: int) -> dict[str, np.ndarray]:
    """Merge the (chain, draw) axes that follow ``lead`` leading axes into one."""
    return {k: v.reshape(v.shape[:lead] + (-1,) + v.shape[lead + 2 :]) for k, v in z.items()}


def _dimension(sites) -> int:
    """Unconstrained dimensions of the latent ``sites`` (name -> (shape, init half-width))."""
    return sum(math.prod(shape) for shape, _ in sites.values())


def _resolved(options: NUTSOptions, sites, rows: int, piloted: bool = False, framed: bool = False) -> NUTSOptions:
    """Fill the defaults of ``dense_mass``, ``regularize_mass_matrix``, ``diagonal_shrinkage``, ``init`` and
    ``target_accept_prob`` from the model's dimension and the data's (padded) number of ``rows``; ``piloted``:
    the arguments carry a pilot's start (``init="pilot"`` needs one); ``framed``: its frame for the pooled
    groups (:class:`~bayescale.pooled.PooledBasis`)."""
    dims = _dimension(sites)
    if options.target_accept_prob is None:
        options = replace(options, target_accept_prob=FRAMED_TARGET_ACCEPT if framed else TARGET_ACCEPT)
    if options.dense_mass is None:
        options = replace(options, dense_mass=dims <= DENSE_MAX_DIM)
    if options.regularize_mass_matrix is None:
        options = replace(options, regularize_mass_matrix=not (options.dense_mass and dims < 25))
    if options.diagonal_shrinkage is None:
        own = options.dense_mass and options.adapt_mass_matrix and dims >= adaptation.FIRST_WINDOW
        options = replace(options, diagonal_shrinkage=own)
    elif options.diagonal_shrinkage and not (options.dense_mass and options.adapt_mass_matrix):
        raise ValueError("diagonal_shrinkage=True needs dense_mass=True and adapt_mass_matrix=True")
    if options.init is None:
        options = replace(options, init="mode" if dims <= LAPLACE_MAX_DIM and rows >= MODE_START_ROWS else "random")
    elif options.init == "pilot" and not piloted:
        raise ValueError(
            'init="pilot" needs a hierarchical model with pilot=True (ScalingModel(..., group=..., pilot=True)); '
            "fit_many and calibration studies start at random"
        )
    elif options.init == "mode" and dims > LAPLACE_MAX_DIM:
        raise ValueError(
            f'init="mode" needs exact Hessians, and this model has {dims} unconstrained dimensions '
            f'(at most {LAPLACE_MAX_DIM}); use init="random"'
        )
    if options.warmup_max_tree_depth is None:
        pilot = options.init == "pilot"
        depth = min(PILOT_WARMUP_TREE_DEPTH, options.max_tree_depth) if pilot else options.max_tree_depth
        options = replace(options, warmup_max_tree_depth=depth)
    return options


_RUNNERS = CompiledCache(KEEP_COMPILED)
INIT_TRIES = 20  # random starts tried per chain; the most probable is kept


def _chunks(warmup: int, draws: int, progress_bar: bool) -> tuple[list[int], list[int]]:
    """Split warmup and draws into equal scan lengths so that one compiled loop serves both."""
    step = math.gcd(warmup, draws) if warmup else draws
    if progress_bar:
        target = max((warmup + draws) // 20, 1)
        step = max(d for d in range(1, step + 1) if step % d == 0 and d <= target)
    if step < 20 and not progress_bar:  # awkward counts: two loops rather than hundreds of calls
        return ([warmup] if warmup else []), [draws]
    return [step] * (warmup // step), [step] * (draws // step)


class _Runner:
    """Compiled init, advance and post-processing programs for one model structure and data shape.

    ``mode`` says what one call of the init and advance programs covers: ``"chain"`` one
    chain (:meth:`run_threads` runs the calls in threads), ``"chains"`` all chains of a
    fit (vmapped, split over ``n_devices`` with ``jax.shard_map``), ``"batch"`` all chains
    of a batch of data sets (vmapped twice). The post-processing program always covers
    all draws of a fit (or, in ``"batch"`` mode, of a batch). ``many`` marks the runner of
    many fits (:func:`sample_each`, :func:`sample_many`), whose sampling loop is compiled
    with ``runs="many"`` (see :func:`compiled`).
    """

    def __init__(self, model, sites, warmup, options: NUTSOptions, mode: str, n_devices: int = 1, many=False):
        self.model = model
        self.many = many
        self.sites = sites
        self.warmup = warmup
        self.options = options
        self.mode = mode
        self.n_devices = n_devices
        # NUTS runs on one flat vector, not on the dict of sites: every leapfrog step then updates one array
        # instead of one per site (a step of the 8-family Chinchilla hierarchy, 16 sites: ~35 -> ~25 us)
        self._unravel = ravel_pytree({k: jnp.zeros(shape, dtype=float) for k, (shape, _) in sites.items()})[1]
        pe_gen = lambda args: lambda flat: potential_energy(model, (args,), {}, self._unravel(flat))  # noqa: E731
        self._init_kernel, self._sample_kernel = hmc(potential_fn_gen=pe_gen, algo="NUTS")
        if options.diagonal_shrinkage:
            # from the pilot's start the matrix in force is informed: shrink each window's estimate towards it
            self._step = adaptation.adapting(
                self._sample_kernel, warmup, _dimension(sites), toward_previous=options.init == "pilot"
            )
        else:
            self._step = lambda state, model_args: self._sample_kernel(state, model_args=model_args)
        self._init = self._vectorised(self._init_one, runs="once")
        self._advance: dict[int, Callable] = {}
        self._post: dict[bool, Callable] = {}
        self._executables: dict[Hashable, Callable] = {}
        self._lock = threading.Lock()

    # -- per-chain pieces ------------------------------------------------------------
    def _init_one(self, rng_key, args):
        init_key, kernel_key = jax.random.split(rng_key)
        o = self.options
        inverse_mass = None
        if o.init == "pilot":  # no random candidates to trace and compile
            z0, inverse_mass = self._pilot_start(args, init_key)
        else:
            z0 = self._start(init_key, args)
        if o.init == "mode" or (o.laplace_mass and o.init != "pilot"):
            z, inverse_mass = self._laplace_start(z0, args, jax.random.fold_in(init_key, 1))
            z0 = z if o.init == "mode" else z0
        return self._init_kernel(
            ravel_pytree(z0)[0],
            self.warmup,
            inverse_mass_matrix=inverse_mass,
            dense_mass=o.dense_mass,
            target_accept_prob=o.target_accept_prob,
            max_tree_depth=(o.warmup_max_tree_depth, o.max_tree_depth),
            adapt_step_size=o.adapt_step_size,
            adapt_mass_matrix=o.adapt_mass_matrix and not o.diagonal_shrinkage,  # then self._step adapts it
            regularize_mass_matrix=o.regularize_mass_matrix,
            model_args=(args,),
            rng_key=kernel_key,
        )

    def _start(self, key, args):
        """A uniform random start: the most probable of :data:`INIT_TRIES` candidates.

        Starts stay spread over the box (each chain draws its own candidates), but not
        where the log density is -inf (a rate law at or above 1 under a Binomial
        likelihood) or astronomically low (an exponent at the edge of the box that puts
        a rate at ``exp(-1e80)``), where a chain's step size collapses and it never moves.
        """

        def candidate(k):
            keys = jax.random.split(k, len(self.sites))
            return {
                name: jax.random.uniform(kk, shape, minval=-radius, maxval=radius)
                for kk, (name, (shape, radius)) in zip(keys, sorted(self.sites.items()), strict=True)
            }

        candidates = jax.vmap(candidate)(jax.random.split(key, INIT_TRIES))
        energy = jax.vmap(lambda z: potential_energy(self.model, (args,), {}, z))(candidates)
        best = jnp.argmin(jnp.where(jnp.isnan(energy), jnp.inf, energy))
        return jax.tree_util.tree_map(lambda a: a[best], candidates)

    def _pilot_start(self, args, key):
        """A draw from the pilot's normal approximation (``args.start``), and its variances as NUTS'
        initial inverse mass matrix (diagonal; :func:`bayescale.pilot.starting_point`).

        Each chain draws its own start, so chains start apart on the scale of the posterior; where
        the draw's density is not finite the chain starts at the pilot's point itself.
        """
        point, sd = args.start
        flat, unravel = ravel_pytree(point)
        scale = ravel_pytree(sd)[0]
        draw = flat + scale * jax.random.normal(key, flat.shape)
        energy = potential_energy(self.model, (args,), {}, unravel(draw))
        start = unravel(jnp.where(jnp.isfinite(energy), draw, flat))
        return start, (jnp.diag(scale**2) if self.options.dense_mass else scale**2)

    def _laplace_start(self, z0, args, key):
        """A draw from the Laplace approximation at the mode nearest ``z0``, and its covariance.

        Returns the start (a pytree like ``z0``) and NUTS' initial inverse mass matrix
        (its diagonal for a diagonal mass matrix). Damped Newton steps from the chain's
        random start (:func:`bayescale.laplace.laplace`, at most :data:`START_NEWTON_STEPS`)
        find the mode and its curvature. With ``init="mode"`` the chain starts at the
        draw; with ``laplace_mass=True`` only the matrix is used.

        Why: NumPyro starts adapting from an identity mass matrix, and in this package's
        coordinates (``Z_SCALE`` times prior-standardised values) the posterior is up to
        hundreds of times narrower than that in some directions and as wide in others.
        The first warmup iterations of a small fit took hundreds of leapfrog steps each,
        over half of all its steps; on 10,000 rows the chains were still creeping along
        the law's curved ridge when warmup ended. Chains still start apart (every chain
        runs Newton from its own random start, and a chain that finds another mode
        stays there), so R-hat can tell when they do not meet.

        Where there is no mode to trust (a hierarchical funnel, a ridge Newton does not
        cross in time, a draw where the density is not finite) the start is ``z0`` and
        the matrix the identity, as without this. Warmup adapts the matrix from the draws
        either way (with ``adapt_mass_matrix=False`` this one is kept).
        """
        flat, unravel = ravel_pytree(z0)
        if flat.size > LAPLACE_MAX_DIM:
            return z0, None
        # Newton's damping is isotropic, so it runs on prior-standardised coordinates
        scale = standardising_scale(z0)
        energy = lambda y: potential_energy(self.model, (args,), {}, unravel(y))  # noqa: E731
        fit = laplace(lambda y: energy(y * scale), flat / scale, START_NEWTON_STEPS)
        mode, covariance = fit.mode * scale, fit.covariance * jnp.outer(scale, scale)
        draw = mode + jnp.linalg.cholesky(covariance) @ jax.random.normal(key, flat.shape)
        draw = jnp.where(jnp.isfinite(energy(draw)), draw, mode)  # the mode's energy is finite where fit.ok
        start = unravel(jnp.where(fit.ok, draw, flat))
        if self.options.dense_mass:
            return start, jnp.where(fit.ok, covariance, jnp.eye(flat.size))
        return start, jnp.where(fit.ok, jnp.diag(covariance), jnp.ones(flat.size))

    def _advance_one(self, state, args, length):
        def step(state, _):
            state = self._step(state, (args,))
            info = {
                "diverging": state.diverging,
                "n_steps": state.num_steps,
                "acceptance_rate": state.accept_prob,
                "energy": state.energy,
                "lp": -state.potential_energy,
                "step_size": state.adapt_state.step_size,
            }
            return state, (self._unravel(state.z), info)

        return jax.lax.scan(step, state, None, length=length)

    def _post_one(self, z, args):
        values = constrain_fn(self.model, (args,), {}, z, return_deterministic=True)
        loglik = log_likelihood(self.model, values, args, batch_ndims=0)["obs"]
        return self._reported(values), loglik

    def _values_one(self, z, args):
        return self._reported(constrain_fn(self.model, (args,), {}, z, return_deterministic=True))

    def _reported(self, values):
        return {k: v for k, v in values.items() if not (k in self.sites and k.endswith("_z"))}

    # -- programs --------------------------------------------------------------------
    def _vectorised(self, fn, runs: str):
        """``fn(key or state, args)`` of one chain, compiled for one call of this runner's mode."""
        if self.mode == "chain":
            return compiled(fn, runs=runs)
        batched = jax.vmap(fn, in_axes=(0, None))
        if self.mode == "batch":  # (data set, chain) keys and states; one data set's args per member
            return compiled(jax.vmap(batched), runs=runs)
        if self.n_devices == 1:
            return compiled(batched, runs=runs)
        mesh = Mesh(np.array(jax.local_devices()[: self.n_devices]), ("chain",))
        spec = PartitionSpec("chain")
        return compiled(
            jax.shard_map(batched, mesh=mesh, in_specs=(spec, PartitionSpec()), out_specs=spec, check_vma=False),
            runs=runs,
        )

    def advance(self, length: int) -> Callable:
        """The program that runs ``length`` NUTS iterations: ``(state, args) -> (state, (z, stats))``."""
        if length not in self._advance:
            runs = "many" if self.many else "fit"
            self._advance[length] = self._vectorised(partial(self._advance_one, length=length), runs)
        return self._advance[length]

    def post(self, loglik: bool) -> Callable:
        """The program from flattened draws (``(draw, ...)``, or ``(data set, draw, ...)`` in ``"batch"``
        mode) to the reported values, with the pointwise log likelihood when ``loglik``."""
        if loglik not in self._post:
            post = jax.vmap(self._post_one if loglik else self._values_one, in_axes=(0, None))
            self._post[loglik] = compiled(jax.vmap(post) if self.mode == "batch" else post, runs="once")
        return self._post[loglik]

    def _executable(self, name: Hashable, program: Callable, *specimen) -> Callable:
        """``program`` compiled ahead of time for arguments shaped like ``specimen``, once.

        Threads calling a jitted function for the first time at once would each compile it.
        """
        with self._lock:
            if name not in self._executables:
                self._executables[name] = program.lower(*specimen).compile()
            return self._executables[name]

    # -- drivers -----------------------------------------------------------------------
    def run_chains(self, keys, args, draws: int, bar: _progress):
        """All chains (of all data sets) in each call: draws and stats with leading axes (..., chain, draw)."""
        state = self._init(keys, args)
        warm_chunks, draw_chunks = _chunks(self.warmup, draws, bar.enabled)
        for length in warm_chunks:
            state, _ = self.advance(length)(state, args)
            bar(length, "warmup")
        traces = []
        for length in draw_chunks:
            state, trace = self.advance(length)(state, args)
            traces.append(jax.device_get(trace))
            bar(length, "sample")
        axis = keys.ndim  # the draw axis follows the key axes
        z = {k: np.concatenate([t[0][k] for t in traces], axis=axis) for k in self.sites}
        stats = {k: np.concatenate([t[1][k] for t in traces], axis=axis) for k in traces[0][1]}
        return z, stats

    def run_threads(self, tasks, draws: int, bar: _progress, values: bool = False) -> list[tuple[dict, dict]]:
        """One chain per ``(key, args)`` task, in one thread per CPU core: per task (draws, stats), axes (draw, ...).

        Every program is compiled here first, so no two threads compile the same one. With
        ``values`` the draws come post-processed (the reported values, no log likelihood).
        """
        warm_chunks, draw_chunks = _chunks(self.warmup, draws, bar.enabled)
        key, args = tasks[0]
        init = self._executable("init", self._init, key, args)
        state = init.out_info
        advance = {n: self._executable(n, self.advance(n), state, args) for n in set(warm_chunks + draw_chunks)}
        if values:
            specimen = {k: jax.ShapeDtypeStruct((draws, *shape), float) for k, (shape, _) in self.sites.items()}
            post = self._executable(("values", draws), self.post(loglik=False), specimen, args)
        stop = threading.Event()

        def chain(task):
            key, args = task
            state = init(key, args)
            for length in warm_chunks:
                if stop.is_set():
                    return None
                state, _ = advance[length](state, args)
                bar(length, "warmup")
            traces = []
            for length in draw_chunks:
                if stop.is_set():
                    return None
                state, trace = advance[length](state, args)
                traces.append(trace)
                bar(length, "sample")
            z = {k: jnp.concatenate([t[0][k] for t in traces]) for k in self.sites}
            stats = {k: np.concatenate([jax.device_get(t[1][k]) for t in traces]) for k in traces[0][1]}
            return jax.device_get(post(z, args) if values else z), stats

        pool = ThreadPoolExecutor(max_workers=min(len(tasks), cpu_count()))
        try:
            return list(pool.map(chain, tasks))
        finally:  # on an error or KeyboardInterrupt the other chains stop after their current call
            stop.set()
            pool.shutdown(wait=True, cancel_futures=True)


class _progress:
    """A tqdm bar over iterations when asked for, otherwise nothing; a context manager.

    With ``threads`` (chains running at once, each reporting its own iterations) the bar
    counts the iterations of all chains.
    """

    def __init__(self, enabled: bool, total: int, chains: int, threads: bool = False):
        self.enabled = enabled
        self._bar = None
        self._lock = threading.Lock()
        if enabled:
            from tqdm.auto import tqdm

            total, desc = (
                (total * chains, f"NUTS ({chains} chains, threads)") if threads else (total, f"NUTS ({chains} chains)")
            )
            self._bar = tqdm(total=total, desc=desc, unit="it")

    def __call__(self, n: int, phase: str) -> None:
        if self._bar is not None:
            with self._lock:
                self._bar.set_postfix_str(phase, refresh=False)
                self._bar.update(n)

    def __enter__(self) -> _progress:
        return self

    def __exit__(self, *exc) -> None:
        if self._bar is not None:
            self._bar.close()
