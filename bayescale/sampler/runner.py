"""NUTS on a NumPyro model, compiled once per model structure and data shape, then reused.

``numpyro.infer.MCMC.run`` traces and compiles again on every call. Here the sampler is
built from NumPyro's functional NUTS kernel (``numpyro.infer.hmc.hmc``) with the data as a
jit *argument*, so a second fit of same-shaped data costs only sampling. The sampler knows
a model function, its argument pytree and its latent sites; nothing of laws or groups.

On CPU every chain is its own call of a single-chain program and the calls run in one
thread per core; on GPU and TPU the chains are vmapped into one program
(:func:`default_chain_method`), and ``chain_method="parallel"`` splits them over devices
with ``jax.shard_map``. Many data sets of one model go through one compiled program
(:func:`sample_batches`).
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, replace
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree
from jax.sharding import Mesh, PartitionSpec
from numpyro.infer.hmc import hmc
from numpyro.infer.util import constrain_fn, log_likelihood, potential_energy

from bayescale.sampler import adaptation
from bayescale.sampler.cluster import chunk_size, map_on_cluster, total_threads
from bayescale.sampler.compile import KEEP_COMPILED, CompiledCache, compiled
from bayescale.sampler.laplace import laplace
from bayescale.sampler.options import LAPLACE_MAX_DIM, NUTSOptions, check_counts, dimension
from bayescale.sampler.progress import Progress
from bayescale.sampler.threads import map_in_threads

CHAIN_METHODS = ("parallel", "threads", "vectorized")
START_NEWTON_STEPS = 400  # most Newton steps from a chain's random start to the mode
INIT_TRIES = 20  # random starts tried per chain; the most probable is kept
# chain iterations (data sets x chains x (warmup + draws)) from which the sampling loop of many fits is
# compiled for running long (runs="many"): below, compiling it costs more than its faster loop saves
MANY_ITERATIONS = 200_000
# pointwise log-likelihood values (chains x draws x rows) up to which a fit may run its chains on
# (NUTSOptions.extend): 400 MB; a fit of many rows is rarely short of draws and would cost memory and time
EXTEND_MAX_VALUES = 50_000_000


@dataclass
class Samples:
    """Raw output of the samplers: arrays with leading axes (chain, draw), or (data set, chain, draw)."""

    posterior: dict[str, np.ndarray]
    log_likelihood: np.ndarray | None
    stats: dict[str, np.ndarray]
    chain_method: str
    options: NUTSOptions
    first_run: dict | None = None  # where a first run diverged and was rerun: its target acceptance and divergences
    extended: int = 0  # times the chains ran on for as many draws again (NUTSOptions.extend)

    def joined(self, more: Samples) -> Samples:
        """These draws followed by ``more``, the same chains run on (one more :attr:`extended`)."""
        join = lambda a, b: {k: np.concatenate([a[k], b[k]], axis=1) for k in a}  # noqa: E731
        loglik = None if self.log_likelihood is None else np.concatenate([self.log_likelihood, more.log_likelihood], 1)
        return replace(
            self,
            posterior=join(self.posterior, more.posterior),
            log_likelihood=loglik,
            stats=join(self.stats, more.stats),
            extended=self.extended + 1,
        )


def default_chain_method() -> str:
    """``"threads"`` on CPU, ``"vectorized"`` on GPU and TPU.

    ``"threads"``: every chain is its own call of a single-chain program, the calls in one
    thread per CPU core. ``"vectorized"``: all chains in one vmapped program, what a GPU or
    TPU wants; on CPU it runs every iteration for the longest trajectory among the chains
    and takes longer to trace and compile. ``"parallel"`` (chains split over devices with
    ``jax.shard_map``) is opt-in.
    """
    return "threads" if jax.default_backend() == "cpu" else "vectorized"


def sample(
    model: Callable,
    args,
    sites: dict[str, tuple[tuple[int, ...], float]],
    *,
    seed: int,
    chains: int,
    warmup: int,
    draws: int,
    options: NUTSOptions,
    report: Sequence[str],
    start=None,
    chain_method: str | None = None,
    progress_bar: bool = False,
    cache_key: object = None,
    longer: Callable[[Samples], bool] | None = None,
) -> Samples:
    """Run NUTS on ``model(args)`` and return the values of the sites named in ``report``.

    Parameters
    ----------
    model : callable
        A NumPyro model taking one argument, with an observed site ``"obs"``.
    args : pytree
        The model's argument; its array shapes (with ``cache_key``) select the compiled sampler.
    sites : mapping
        Latent site -> (unconstrained shape, half-width of the uniform random start). The
        half-width is also two prior standard deviations of the site, the scale Newton's
        isotropic damping runs on.
    options : NUTSOptions
        Resolved (:meth:`NUTSOptions.resolved`).
    report : sequence of str
        Sites (latent or deterministic) to return.
    start : pytree, optional
        ``(point, sd)``: site -> where chains start and their initial scale, for ``init="pilot"``.
    cache_key : hashable, optional
        Identifies the model's structure; runs with the same key and shapes share a sampler.
    longer : callable, optional
        ``longer(samples) -> bool``, asked after the draws: whether the chains should run on for
        another ``draws`` draws each (no new warmup; the adapted step size and mass matrix kept),
        at most ``options.extend`` times (:attr:`~bayescale.sampler.options.NUTSOptions.extend`)
        and while the pointwise log likelihood stays within :data:`EXTEND_MAX_VALUES` values.
    """
    check_counts(chains, warmup, draws)
    chain_method = chain_method or default_chain_method()
    if chain_method not in CHAIN_METHODS:
        raise ValueError(f"chain_method must be one of {CHAIN_METHODS}, got {chain_method!r}")
    n_devices = math.gcd(chains, jax.local_device_count()) if chain_method == "parallel" else 1
    mode = "chain" if chain_method == "threads" else "chains"
    runner = _runner(model, args, sites, warmup, options, mode, n_devices, cache_key, report, start)
    keys = list(jax.random.split(jax.random.key(seed), chains))
    tasks = [(key, args, start) for key in keys]
    target = options.target_accept_prob
    per_fit = 1 if mode == "chains" else chains

    def block(bar: Progress, states=None):
        """``draws`` more draws of every chain: from its start (``states=None``) or its ``states``."""
        if mode == "chain":
            per_chain = runner.run_threads(tasks, draws, bar, target=target, states=states)
            z, stats = (_stacked([c[i] for c in per_chain]) for i in (0, 1))
            states = [c[2] for c in per_chain]
        else:
            z, stats, states = runner.run_chains(jnp.stack(keys), args, start, draws, bar, target=target, state=states)
        values, loglik = jax.device_get(runner.post(loglik=True)(_flat(z, 0), args))
        posterior = {k: np.asarray(v).reshape((chains, draws) + np.shape(v)[1:]) for k, v in values.items()}
        loglik = np.asarray(loglik).reshape((chains, draws) + np.shape(loglik)[1:])
        return Samples(posterior, loglik, stats, chain_method, options), states

    with Progress(progress_bar, (warmup + draws) * per_fit, _desc(chains, mode)) as bar:
        samples, states = block(bar)
        while (
            samples.extended < options.extend
            and longer is not None
            and np.size(samples.log_likelihood) // (samples.extended + 1) * (samples.extended + 2) <= EXTEND_MAX_VALUES
            and longer(samples)
        ):
            bar.grow(draws * per_fit)
            more, states = block(bar, states)
            samples = samples.joined(more)
    return samples


def sample_batches(
    model: Callable,
    args,
    n: int,
    sites: dict[str, tuple[tuple[int, ...], float]],
    *,
    seeds: np.ndarray,
    chains: int,
    warmup: int,
    draws: int,
    options: NUTSOptions,
    report: Sequence[str],
    batch_size: int | None = None,
    cache_key: object = None,
    progress_bar: bool = False,
    client=None,
    threads: int | None = None,
    many: bool | None = None,
) -> Samples:
    """Run NUTS on ``n`` data sets of one model through one compiled program.

    ``args`` holds the data sets stacked along a leading axis of every leaf (same shapes
    otherwise); data set ``b`` draws with the random keys a single fit with seed ``seeds[b]``
    would use. By default on CPU every chain of every data set is its own call of a
    single-chain program, in one thread per core (no chain waits for another's trajectory);
    on GPU and TPU all data sets go in one vectorised batch. ``batch_size`` asks for
    vectorised batches of that size (on CPU, run in one thread per core); the last batch is
    padded with repeats, then trimmed. The returned arrays have leading axes (data set, chain,
    draw); the pointwise log likelihood is not computed.

    With a Dask ``client`` the data sets go to its workers in chunks
    (:func:`~bayescale.sampler.cluster.chunk_size`), each run there as above; every data set
    draws what it would draw here. ``threads``: threads to run in (default one per CPU core).
    ``many``: compile the sampling loop for a long run (``runs="many"``); by default where the
    work is at least :data:`MANY_ITERATIONS` chain iterations.
    """
    check_counts(chains, warmup, draws)
    if options.pooled_warmup:
        raise ValueError("pooled_warmup pools one fit's chains; many fits keep each chain's own warmup")
    if many is None:
        many = n * chains * (warmup + draws) >= MANY_ITERATIONS
    take = lambda idx: jax.tree_util.tree_map(lambda a: a[idx], args)  # noqa: E731
    if client is not None:
        settings = dict(sites=sites, chains=chains, warmup=warmup, draws=draws, options=options, report=report)
        settings.update(batch_size=batch_size, cache_key=cache_key, many=many)  # the whole run's choice, per chunk
        return _sample_on_cluster(client, model, take, n, seeds, progress_bar, **settings)
    on_cpu = jax.default_backend() == "cpu"
    if batch_size is None and on_cpu:
        members = [take(i) for i in range(n)]
        runner = _runner(model, members[0], sites, warmup, options, "chain", 1, cache_key, report, None, many=many)
        tasks = [(key, a, None) for a, s in zip(members, seeds, strict=True) for key in _keys(s, chains)]
        with Progress(progress_bar, n * chains, f"{n} fits, {chains} chains each", unit="chain") as bar:
            per_chain = runner.run_threads(
                tasks, draws, bar, target=options.target_accept_prob, values=True, per_chain=True, threads=threads
            )
        parts = [per_chain[b : b + chains] for b in range(0, len(tasks), chains)]
        posterior = _stacked([_stacked([c[0] for c in part]) for part in parts])
        stats = _stacked([_stacked([c[1] for c in part]) for part in parts])
        return Samples(posterior, None, stats, "threads", options)
    batch_size = min(batch_size or n, n)
    one = take(0)
    runner = _runner(model, one, sites, warmup, options, "batch", 1, cache_key, report, None, many=many)

    def run(first: int):
        idx = np.arange(first, first + batch_size) % n
        keys = jax.vmap(lambda s: jax.random.split(jax.random.key(s), chains))(jnp.asarray(seeds[idx]))
        z, stats, _ = runner.run_chains(
            keys, take(idx), None, draws, Progress(False, 0, ""), target=options.target_accept_prob
        )
        values = jax.device_get(runner.post(loglik=False)(_flat(z, 1), take(idx)))
        keep = min(batch_size, n - first)
        values = {
            k: np.asarray(v).reshape((batch_size, chains, draws) + np.shape(v)[2:])[:keep] for k, v in values.items()
        }
        return values, {k: v[:keep] for k, v in stats.items()}

    firsts = list(range(0, n, batch_size))
    with Progress(progress_bar, n, f"{n} fits in batches of {batch_size}", unit="fit") as bar:
        parts = [run(firsts[0])]  # compiles once, before any thread could compile it again
        bar(len(parts[0][1]["diverging"]), "")
        if len(firsts) > 1:
            workers = partial(map_in_threads, threads=threads) if on_cpu else lambda fn, items: [fn(i) for i in items]

            def counted(first):
                out = run(first)
                bar(len(out[1]["diverging"]), "")
                return out

            parts += workers(counted, firsts[1:])
    posterior = {k: np.concatenate([p[0][k] for p in parts]) for k in parts[0][0]}
    stats = {k: np.concatenate([p[1][k] for p in parts]) for k in parts[0][1]}
    return Samples(posterior, None, stats, "vectorized", options)


def _sample_on_cluster(client, model, take, n: int, seeds, progress_bar, **settings) -> Samples:
    """:func:`sample_batches` of ``n`` data sets (``take(indices)``: their arguments) in chunks on Dask workers."""
    size = chunk_size(n, client, settings["batch_size"])
    chunks = [np.arange(first, min(first + size, n)) for first in range(0, n, size)]
    # a short last chunk of vectorised batches is padded with its own data sets, as the local run pads its
    # last batch: a batch of another size would be another program, with other rounding
    full = [idx if settings["batch_size"] is None else np.resize(idx, size) for idx in chunks]
    items = [(jax.device_get(take(idx)), np.asarray(seeds)[idx]) for idx in full]
    sizes = [len(idx) for idx in chunks]
    with Progress(progress_bar, n, f"{n} fits on {total_threads(client)} Dask worker threads", unit="fit") as bar:
        parts = map_on_cluster(client, partial(_sample_chunk, model, **settings), items, sizes=sizes, bar=bar)
    trimmed = [(p.posterior, p.stats, m) for p, m in zip(parts, sizes, strict=True)]
    posterior = {k: np.concatenate([v[k][:m] for v, _, m in trimmed]) for k in parts[0].posterior}
    stats = {k: np.concatenate([v[k][:m] for _, v, m in trimmed]) for k in parts[0].stats}
    return Samples(posterior, None, stats, parts[0].chain_method, settings["options"])


def _sample_chunk(model, item, **settings) -> Samples:
    """:func:`sample_batches` on a chunk ``(args, seeds)`` of data sets, on a Dask worker.

    One thread: a worker runs as many chunks at once as it has threads.
    """
    args, seeds = item
    return sample_batches(model, args, len(seeds), seeds=seeds, threads=1, **settings)


def _keys(seed, chains: int) -> list:
    return list(jax.random.split(jax.random.key(seed), chains))


def _desc(chains: int, mode: str) -> str:
    return f"NUTS ({chains} chains{', threads' if mode == 'chain' else ''})"


RUNNERS = CompiledCache(KEEP_COMPILED)


def _runner(model, args, sites, warmup, options, mode, n_devices, cache_key, report, start, many=False) -> Runner:
    """The cached :class:`Runner` of this model structure, data shape and layout; ``many`` for the
    sampler of a long run of many fits (its sampling loop compiled with ``runs="many"``). The target
    acceptance is an argument of its programs, not part of it: a fit sampled again at a higher target
    (:meth:`~bayescale.sampler.options.NUTSOptions.rerun`) runs the first run's sampler."""
    options = replace(options, target_accept_prob=None)
    shapes = jax.tree_util.tree_map(lambda a: (jnp.shape(a), jnp.result_type(a)), (args, start))
    key = (mode, cache_key, model if cache_key is None else None, warmup, options, n_devices, many, tuple(report))
    key += (tuple(sorted(sites.items())), str(shapes))
    return RUNNERS.get(key, lambda: Runner(model, sites, warmup, options, mode, n_devices, many, tuple(report)))


def _stacked(parts: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    return {k: np.stack([p[k] for p in parts]) for k in parts[0]}


def _member(stacked, c: int, like):
    """Member ``c`` of pytree ``stacked`` (leading axis), each leaf with the dtype of ``like``'s."""
    return jax.tree_util.tree_map(lambda a, b: jnp.asarray(a[c], dtype=jnp.result_type(b)), stacked, like)


def _flat(z: dict[str, np.ndarray], lead: int) -> dict[str, np.ndarray]:
    """Merge the (chain, draw) axes that follow ``lead`` leading axes into one."""
    return {k: v.reshape(v.shape[:lead] + (-1,) + v.shape[lead + 2 :]) for k, v in z.items()}


def chunks(warmup: int, draws: int, progress_bar: bool, breaks=()) -> tuple[list[int], list[int]]:
    """Split warmup and draws into equal scan lengths so that one compiled loop serves both; the warmup's
    chunks end at each of ``breaks`` (iteration counts, where a pooled warmup ends a window)."""
    step = math.gcd(warmup, draws, *breaks) if warmup else draws
    if progress_bar:
        target = max((warmup + draws) // 20, 1)
        step = max(d for d in range(1, step + 1) if step % d == 0 and d <= target)
    if step < 20 and not progress_bar:  # awkward counts: a few loops rather than hundreds of calls
        edges = [0, *sorted(b for b in breaks if 0 < b < warmup), warmup] if warmup else [0]
        return np.diff(edges).tolist(), [draws]
    return [step] * (warmup // step), [step] * (draws // step)


class Runner:
    """Compiled init, advance and post-processing programs for one model structure and data shape.

    ``mode`` says what one call of the init and advance programs covers: ``"chain"`` one
    chain (:meth:`run_threads` runs the calls in threads), ``"chains"`` all chains of a fit
    (vmapped, split over ``n_devices`` with ``jax.shard_map``), ``"batch"`` all chains of a
    batch of data sets (vmapped twice). The post-processing program covers all draws of a
    fit (or, in ``"batch"`` mode, of a batch). ``many`` marks the runner of many fits long enough
    (:data:`MANY_ITERATIONS`) for its sampling loop to be compiled with ``runs="many"``
    (:func:`~bayescale.sampler.compile.compiled`).
    """

    def __init__(self, model, sites, warmup, options: NUTSOptions, mode: str, n_devices=1, many=False, report=()):
        self.model = model
        self.many = many
        self.sites = sites
        self.warmup = warmup
        self.options = options
        self.mode = mode
        self.n_devices = n_devices
        self.report = tuple(report)
        # window ends at which the chains' warmup draws are pooled (by the drivers, between calls)
        self.pooled = bool(options.pooled_warmup and options.diagonal_shrinkage and warmup)
        self._pool_after = {end + 1 for end in adaptation.window_ends(warmup)} if self.pooled else set()
        # NUTS runs on one flat vector, not on the dict of sites: every leapfrog step then updates one
        # array instead of one per site
        self._unravel = ravel_pytree({k: jnp.zeros(shape, dtype=float) for k, (shape, _) in sites.items()})[1]
        # Newton's damping is isotropic, so it runs on coordinates divided by each site's prior sd
        self._newton_scale = ravel_pytree({k: jnp.full(shape, r / 2.0) for k, (shape, r) in sites.items()})[0]
        pe_gen = lambda args: lambda flat: potential_energy(model, (args,), {}, self._unravel(flat))  # noqa: E731
        self._init_kernel, self._sample_kernel = hmc(potential_fn_gen=pe_gen, algo="NUTS")
        # NumPyro adapts the mass matrix (unless diagonal_shrinkage), adaptation.adapting the step size: towards
        # a target acceptance that is an argument of the compiled programs, so one sampler serves every target
        self._step = adaptation.adapting(
            self._sample_kernel,
            warmup,
            dimension(sites),
            step_size=options.adapt_step_size,
            shrunk=options.diagonal_shrinkage,
            # from the pilot's start the matrix in force is informed: shrink each window's estimate towards it
            toward_previous=options.init == "pilot",
            pooled=self.pooled,
        )
        self._init = self._vectorised(self._init_one, runs="once", n_args=2)
        self._advance: dict[int, Callable] = {}
        self._post: dict[bool, Callable] = {}
        self._executables: dict[Hashable, Callable] = {}
        self._lock = threading.Lock()

    # -- per-chain pieces ------------------------------------------------------------
    def _init_one(self, rng_key, args, start):
        init_key, kernel_key = jax.random.split(rng_key)
        o = self.options
        inverse_mass = None
        if o.init == "pilot":  # no random candidates to trace and compile
            z0, inverse_mass = self._pilot_start(args, start, init_key)
        elif o.init == "mode" and o.mode_starts > 1:  # each start draws its own candidates
            z0, inverse_mass = self._best_mode_start(init_key, args)
        else:
            z0 = self._start(init_key, args)
            if o.init == "mode" or o.laplace_mass:
                z, inverse_mass = self._laplace_start(z0, args, jax.random.fold_in(init_key, 1))
                z0 = z if o.init == "mode" else z0
        return self._init_kernel(
            ravel_pytree(z0)[0],
            self.warmup,
            inverse_mass_matrix=inverse_mass,
            dense_mass=o.dense_mass,
            max_tree_depth=(o.warmup_depth(lockstep=self.mode == "batch"), o.max_tree_depth),
            adapt_step_size=False,  # self._step adapts it
            adapt_mass_matrix=o.adapt_mass_matrix and not o.diagonal_shrinkage,  # then self._step adapts it
            regularize_mass_matrix=o.regularize_mass_matrix,
            model_args=(args,),
            rng_key=kernel_key,
        )

    def _start(self, key, args):
        """A uniform random start: the most probable of :data:`INIT_TRIES` candidates.

        Starts stay spread over the box (each chain draws its own candidates), but not where
        the log density is -inf (a rate law at or above 1 under a Binomial likelihood) or
        astronomically low, where a chain's step size collapses and it never moves.
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

    def _pilot_start(self, args, start, key):
        """A draw from the pilot's normal approximation ``start = (point, sd)``, and its variances as
        the initial inverse mass matrix (diagonal); where the draw's density is not finite the chain
        starts at the point itself."""
        point, sd = start
        flat, unravel = ravel_pytree(point)
        scale = ravel_pytree(sd)[0]
        draw = flat + scale * jax.random.normal(key, flat.shape)
        energy = potential_energy(self.model, (args,), {}, unravel(draw))
        z = unravel(jnp.where(jnp.isfinite(energy), draw, flat))
        return z, (jnp.diag(scale**2) if self.options.dense_mass else scale**2)

    def _laplace_start(self, z0, args, key):
        """A draw from the Laplace approximation at the mode nearest ``z0``, and its covariance.

        Damped Newton steps from the chain's random start (:func:`~bayescale.sampler.laplace.laplace`,
        at most :data:`START_NEWTON_STEPS`) find the mode and its curvature. Every chain runs
        Newton from its own random start, so chains that find different modes stay apart and
        R-hat can tell. Where there is no mode to trust (a funnel, a ridge Newton does not cross
        in time, a non-finite density) the start is ``z0`` and the matrix the identity.
        """
        flat, unravel = ravel_pytree(z0)
        if flat.size > LAPLACE_MAX_DIM:
            return z0, None
        mode, covariance, ok = self._mode(flat, args)
        return self._draw_near(mode, covariance, ok, flat, args, key)

    def _best_mode_start(self, key, args):
        """:meth:`_laplace_start` at the best of ``mode_starts`` modes, each found from its own random
        start: the one of largest Laplace mass, ``-energy + log det(covariance) / 2``.

        For laws with poor local modes (a broken power law's bends), where the mode nearest one
        random start can be worse than the best by hundreds of units of log density, a region
        with no posterior mass that NUTS never leaves. Each chain searches on its own, so
        modes of comparable mass still land in different chains and R-hat can tell.
        """
        keys = jax.random.split(key, self.options.mode_starts + 1)
        starts = jax.vmap(lambda k: ravel_pytree(self._start(k, args))[0])(keys[1:])
        modes, covariances, ok = jax.vmap(lambda y: self._mode(y, args))(starts)
        energy = jax.vmap(lambda y: potential_energy(self.model, (args,), {}, self._unravel(y)))(modes)
        mass = -energy + 0.5 * jnp.linalg.slogdet(covariances)[1]
        best = jnp.argmax(jnp.where(ok & jnp.isfinite(mass), mass, -jnp.inf))
        return self._draw_near(modes[best], covariances[best], ok[best], starts[best], args, keys[0])

    def _mode(self, flat, args):
        """The mode nearest the flat point ``flat`` by damped Newton steps, the inverse Hessian there,
        and whether both can be trusted (:func:`~bayescale.sampler.laplace.laplace`)."""
        scale = self._newton_scale
        energy = lambda y: potential_energy(self.model, (args,), {}, self._unravel(y * scale))  # noqa: E731
        fit = laplace(energy, flat / scale, START_NEWTON_STEPS)
        return fit.mode * scale, fit.covariance * jnp.outer(scale, scale), fit.ok

    def _draw_near(self, mode, covariance, ok, flat, args, key):
        """A draw from the normal approximation at ``mode`` and the initial inverse mass matrix, or
        the point ``flat`` and the identity where the mode is not to be trusted (``ok`` False)."""
        energy = lambda y: potential_energy(self.model, (args,), {}, self._unravel(y))  # noqa: E731
        draw = mode + jnp.linalg.cholesky(covariance) @ jax.random.normal(key, flat.shape)
        draw = jnp.where(jnp.isfinite(energy(draw)), draw, mode)  # the mode's energy is finite where ok
        z = self._unravel(jnp.where(ok, draw, flat))
        if self.options.dense_mass:
            return z, jnp.where(ok, covariance, jnp.eye(flat.size))
        return z, jnp.where(ok, jnp.diag(covariance), jnp.ones(flat.size))

    def _advance_one(self, state, args, target, length):
        def step(state, _):
            state = self._step(state, (args,), target)
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
        return {k: values[k] for k in self.report}

    # -- programs --------------------------------------------------------------------
    def _vectorised(self, fn, runs: str, n_args: int = 1, n_shared: int = 0):
        """``fn(key or state, *args, *shared)`` of one chain, compiled for one call of this runner's mode;
        the last ``n_shared`` arguments are the same for every chain and data set."""
        if self.mode == "chain":
            return compiled(fn, runs=runs)
        n_args += n_shared
        batched = jax.vmap(fn, in_axes=(0,) + (None,) * n_args)
        if self.mode == "batch":  # (data set, chain) keys and states; one data set's args per member
            return compiled(jax.vmap(batched, in_axes=(0,) * (1 + n_args - n_shared) + (None,) * n_shared), runs=runs)
        if self.n_devices == 1:
            return compiled(batched, runs=runs)
        mesh = Mesh(np.array(jax.local_devices()[: self.n_devices]), ("chain",))
        spec = PartitionSpec("chain")
        return compiled(
            jax.shard_map(
                batched, mesh=mesh, in_specs=(spec,) + (PartitionSpec(),) * n_args, out_specs=spec, check_vma=False
            ),
            runs=runs,
        )

    def advance(self, length: int) -> Callable:
        """The program that runs ``length`` NUTS iterations: ``(state, args, target) -> (state, (z, stats))``,
        the step size adapted towards the acceptance ``target`` (a float) during warmup."""
        if length not in self._advance:
            runs = "many" if self.many else "fit"
            self._advance[length] = self._vectorised(partial(self._advance_one, length=length), runs, n_shared=1)
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
    def run_chains(self, keys, args, start, draws: int, bar: Progress, *, target: float, state=None):
        """All chains (of all data sets) in each call: draws and stats with leading axes (..., chain, draw),
        and the chains' final state; the step size adapted towards the acceptance ``target``. With
        ``state`` (the final state of an earlier call) the chains run on from there, without warmup
        (``keys`` then only shapes the output)."""
        warm_chunks, draw_chunks = chunks(self.warmup, draws, bar.enabled, self._pool_after)
        target = jnp.asarray(target, dtype=float)
        if state is None:
            state = self._init(keys, args, start)
            done = 0
            for length in warm_chunks:
                state, _ = self.advance(length)(state, args, target)
                done += length
                if done in self._pool_after:
                    state = state._replace(adapt_state=self._pooled_end(state.adapt_state))
                bar(length, "warmup")
        traces = []
        for length in draw_chunks:
            state, trace = self.advance(length)(state, args, target)
            traces.append(jax.device_get(trace))
            bar(length, "sample")
        axis = keys.ndim  # the draw axis follows the key axes
        z = {k: np.concatenate([t[0][k] for t in traces], axis=axis) for k in self.sites}
        stats = {k: np.concatenate([t[1][k] for t in traces], axis=axis) for k in traces[0][1]}
        return z, stats, state

    def _pooled_end(self, adapt):
        """:func:`~bayescale.sampler.adaptation.pooled_window_end` of the chains on the leading axis."""
        return adaptation.pooled_window_end(adapt, toward_previous=self.options.init == "pilot")

    def _pooled_warmup(self, tasks, init, warm, warm_chunks, bar, target, threads) -> list:
        """Every task's chain through the warmup, one thread per core, pooling the chains' windows
        between the segments that end where a window does; the chains' states after the warmup."""
        target = jnp.asarray(target, dtype=float)
        states = map_in_threads(lambda task: init(*task), tasks, threads=threads)
        segments, current, done = [], [], 0
        for length in warm_chunks:
            current.append(length)
            done += length
            if done in self._pool_after or done == self.warmup:
                segments.append((current, done in self._pool_after))
                current = []

        def run(pair, lengths):
            state, (_, args, _) = pair
            for length in lengths:
                state, _ = warm[length](state, args, target)
                if bar is not None:
                    bar(length, "warmup")
            return state

        for lengths, pool in segments:
            states = map_in_threads(
                partial(run, lengths=lengths), list(zip(states, tasks, strict=True)), threads=threads
            )
            if pool:
                adapt = self._pooled_end(
                    jax.tree_util.tree_map(lambda *a: jnp.stack(a), *[s.adapt_state for s in states])
                )
                states = [s._replace(adapt_state=_member(adapt, c, s.adapt_state)) for c, s in enumerate(states)]
        return states

    def run_threads(
        self,
        tasks,
        draws: int,
        bar: Progress,
        *,
        target: float,
        values=False,
        per_chain=False,
        threads: int | None = None,
        states: list | None = None,
    ):
        """One chain per ``(key, args, start)`` task in ``threads`` threads (default one per core): (draws,
        stats, final state) each, the step size adapted towards the acceptance ``target``.

        Every program is compiled here first, so no two threads compile the same one. With
        ``values`` the draws come post-processed (the reported values, no log likelihood).
        ``per_chain``: the bar counts finished chains instead of iterations. ``states``: each task's
        chain runs on from this final state of an earlier call, without warmup.
        """
        warm_chunks, draw_chunks = chunks(self.warmup, draws, bar.enabled and not per_chain, self._pool_after)
        key, args, start = tasks[0]
        init = self._executable("init", self._init, key, args, start)
        state = init.out_info
        if self.pooled and states is None:  # the warmup in segments, the chains' windows pooled between them
            warm = {
                n: self._executable(n, self.advance(n), state, args, jnp.asarray(target, dtype=float))
                for n in set(warm_chunks)
            }
            states = self._pooled_warmup(
                tasks, init, warm, warm_chunks, bar if not per_chain else None, target, threads
            )
        if states is not None:
            warm_chunks = []
            tasks = [(s, a, start) for s, (_, a, start) in zip(states, tasks, strict=True)]
        target = jnp.asarray(target, dtype=float)
        advance = {n: self._executable(n, self.advance(n), state, args, target) for n in set(warm_chunks + draw_chunks)}
        if values:
            specimen = {k: jax.ShapeDtypeStruct((draws, *shape), float) for k, (shape, _) in self.sites.items()}
            post = self._executable(("values", draws), self.post(loglik=False), specimen, args)
        stop = threading.Event()
        iterations = not per_chain

        def chain(task):
            key, args, start = task
            state = key if states is not None else init(key, args, start)
            for length in warm_chunks:
                if stop.is_set():
                    return None
                state, _ = advance[length](state, args, target)
                if iterations:
                    bar(length, "warmup")
            traces = []
            for length in draw_chunks:
                if stop.is_set():
                    return None
                state, trace = advance[length](state, args, target)
                traces.append(trace)
                if iterations:
                    bar(length, "sample")
            z = {k: jnp.concatenate([t[0][k] for t in traces]) for k in self.sites}
            stats = {k: np.concatenate([jax.device_get(t[1][k]) for t in traces]) for k in traces[0][1]}
            out = jax.device_get(post(z, args) if values else z), stats, state
            if not iterations:
                bar(1, "")
            return out

        return map_in_threads(chain, tasks, stop, threads=threads)
