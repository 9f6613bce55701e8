"""NUTS driver: compiled once per model structure and data shape, then reused.

``numpyro.infer.MCMC.run`` traces and compiles again on every call. Here the sampler
is built from NumPyro's functional NUTS kernel (``numpyro.infer.hmc.hmc``) with the
data as a jit *argument*, so a second fit of same-shaped data costs only sampling. One
compiled loop runs every warmup window and the draws (its length is a traced argument);
the warmup itself is :mod:`bayescale.warmup`.
Chains are vmapped and, when JAX sees several devices (CPU cores exposed as devices
by :mod:`bayescale._config`, or GPUs), split across them with ``jax.shard_map``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, PartitionSpec
from numpyro.infer.hmc import hmc
from numpyro.infer.util import constrain_fn, log_likelihood, potential_energy

from bayescale import warmup as adaptation
from bayescale.model import ModelArgs, n_rows, pad_rows, row_bucket

CHAIN_METHODS = ("parallel", "vectorized")
DENSE_MAX_DIM = 64  # largest model given a dense mass matrix by default (see NUTSOptions)


@dataclass(frozen=True)
class NUTSOptions:
    """Options passed to NumPyro's NUTS kernel (see ``numpyro.infer.NUTS``).

    The defaults suit scaling-law posteriors: after centring the inputs the remaining
    correlations (irreducible term against prefactors, prefactor against exponent) are
    close to linear, so a dense mass matrix removes them (Chinchilla data: 7 leapfrog
    steps per draw, against 113 with a diagonal one). ``dense_mass=None`` (default) picks
    a dense matrix up to :data:`DENSE_MAX_DIM` unconstrained dimensions and a diagonal one
    above, where a few hundred warmup draws cannot estimate the covariance.
    The warmup is :mod:`bayescale.warmup` (Stan's windows; each chain's mass matrix
    partially pooled with the other chains'), not NumPyro's; ``adapt_step_size`` and
    ``adapt_mass_matrix`` switch its two halves off.
    ``regularize_mass_matrix=None`` (default) turns Stan's shrinkage of the adapted
    matrix towards ``1e-3 * I`` off for dense matrices of fewer than 25 dimensions (the
    first adaptation window has 25 draws, so their covariance is invertible) and on above,
    where it keeps the matrix invertible. The model's coordinates are scaled
    (``bayescale.model.Z_SCALE``) so that the shrinkage is small; unscaled, it spoiled the
    preconditioner (26 instead of 7 steps per draw on the Chinchilla data), and on weakly
    identified single fits it still cost effective draws (OLMo ladder, 16 runs: min ESS
    160 with it, 780 without), hence off where it is not needed.
    """

    dense_mass: bool | None = None
    target_accept_prob: float = 0.9
    max_tree_depth: int = 10
    adapt_step_size: bool = True
    adapt_mass_matrix: bool = True
    regularize_mass_matrix: bool | None = None

    @classmethod
    def from_kwargs(cls, **options) -> NUTSOptions:
        """Options from a user's keywords, with unknown names named in a ``TypeError``."""
        unknown = set(options) - set(cls.__dataclass_fields__)
        if unknown:
            raise TypeError(f"unknown NUTS options {sorted(unknown)}; valid: {sorted(cls.__dataclass_fields__)}")
        return cls(**options)

    def __post_init__(self) -> None:
        if not 0 < self.target_accept_prob < 1:
            raise ValueError(f"target_accept_prob must be in (0, 1), got {self.target_accept_prob}")
        if not (isinstance(self.max_tree_depth, int) and 1 <= self.max_tree_depth <= 15):
            raise ValueError(f"max_tree_depth must be an integer in [1, 15], got {self.max_tree_depth!r}")


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


def default_chain_method() -> str:
    """``"vectorized"``: all chains in one compiled program on the default device.

    ``"parallel"`` (chains split over local devices with ``jax.shard_map``) is opt-in: on
    CPU devices made with ``--xla_force_host_platform_device_count`` it halved the wall
    time of small fits on 2 cores, but a 61-dimensional model with a dense mass matrix
    hung there (every thread idle), so it is not the default.
    """
    return "vectorized"


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
    options = _resolved(options, sites)
    chain_method = chain_method or default_chain_method()
    if chain_method not in CHAIN_METHODS:
        raise ValueError(f"chain_method must be one of {CHAIN_METHODS}, got {chain_method!r}")
    n_devices = math.gcd(chains, jax.local_device_count()) if chain_method == "parallel" else 1
    shapes = jax.tree_util.tree_map(lambda a: (jnp.shape(a), jnp.result_type(a)), args)
    key = (
        cache_key,
        model if cache_key is None else None,
        warmup,
        options,
        n_devices,
        tuple(sorted(sites.items())),
        str(shapes),
    )
    runner = _RUNNERS.get(key)
    if runner is None:
        runner = _RUNNERS[key] = _Runner(model, sites, warmup, options, n_devices)
    samples = runner.run(
        args, seed=seed, chains=chains, draws=draws, progress_bar=progress_bar, chain_method=chain_method
    )
    return replace(samples, log_likelihood=samples.log_likelihood[..., :rows])


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
    options = _resolved(options, sites)
    shapes = jax.tree_util.tree_map(lambda a: (jnp.shape(a)[1:], jnp.result_type(a)), args)
    key = ("batch", cache_key, model if cache_key is None else None, warmup, options, tuple(sorted(sites.items())))
    key += (str(shapes),)
    runner = _RUNNERS.get(key)
    if runner is None:
        runner = _RUNNERS[key] = _Runner(model, sites, warmup, options, 1, batched=True)
    return runner.run_many(args, seeds=np.asarray(seeds), chains=chains, draws=draws)


def _resolved(options: NUTSOptions, sites) -> NUTSOptions:
    """Fill the defaults of ``dense_mass`` and ``regularize_mass_matrix`` from the model's dimension."""
    dims = sum(math.prod(shape) for shape, _ in sites.values())
    if options.dense_mass is None:
        options = replace(options, dense_mass=dims <= DENSE_MAX_DIM)
    if options.regularize_mass_matrix is None:
        options = replace(options, regularize_mass_matrix=not (options.dense_mass and dims < 25))
    return options


_RUNNERS: dict = {}
INIT_TRIES = 20  # random starts tried per chain; the most probable is kept


def _chunks(draws: int, progress_bar: bool) -> list[int]:
    """Split the draws into equal scan lengths: one loop, or ~20 for a progress bar."""
    if not progress_bar:
        return [draws]
    target = max(draws // 20, 1)
    step = max(d for d in range(1, target + 1) if draws % d == 0)
    return [step] * (draws // step)


class _Runner:
    """Compiled init, advance and post-processing functions for one model structure."""

    def __init__(self, model, sites, warmup, options: NUTSOptions, n_devices: int, batched: bool = False):
        self.model = model
        self.sites = sites
        self.warmup = warmup
        self.options = options
        self.n_devices = n_devices
        self.batched = batched
        pe_gen = lambda args: partial(potential_energy, model, (args,), {})  # noqa: E731
        self._init_kernel, self._sample_kernel = hmc(potential_fn_gen=pe_gen, algo="NUTS")
        self._init = self._over_chains(self._init_one)
        self._window_end = jax.jit(jax.vmap(self._window_end_one) if batched else self._window_end_one)
        self._end_warmup = jax.jit(jax.vmap(self._end_warmup_one) if batched else self._end_warmup_one)
        self._loops: dict[int, Callable] = {}
        post = jax.vmap(self._values_one if batched else self._post_one, in_axes=(0, None))
        self._post = jax.jit(jax.vmap(post) if batched else post)

    # -- per-chain pieces ------------------------------------------------------------
    def _init_one(self, rng_key, args):
        """A chain's NUTS state (NumPyro's own adaptation off) and its warmup state."""
        init_key, kernel_key = jax.random.split(rng_key)
        z0 = self._start(init_key, args)
        o = self.options
        state = self._init_kernel(
            z0,
            0,
            dense_mass=o.dense_mass,
            target_accept_prob=o.target_accept_prob,
            max_tree_depth=o.max_tree_depth,
            adapt_step_size=False,
            adapt_mass_matrix=False,
            model_args=(args,),
            rng_key=kernel_key,
        )
        return state, adaptation.init(state.z, state.adapt_state.step_size)

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

    def _window_end_one(self, carry):
        """Close a window for one fit's chains: pooled mass matrix, dual averaging restarted."""
        state, tuning = carry
        adapt = state.adapt_state
        if self.options.adapt_mass_matrix:
            o = self.options
            inverse = adaptation.inverse_mass(tuning, o.dense_mass, o.regularize_mass_matrix)
            sqrt, sqrt_inv = jax.vmap(adaptation.mass_factors)(inverse)
            # chains that never moved give a zero variance, hence no factors: keep the old matrix then
            usable = jnp.all(jnp.isfinite(sqrt)) & jnp.all(jnp.isfinite(sqrt_inv))
            tile = lambda new, old: jnp.where(usable, new, old)  # noqa: E731
            adapt = adapt._replace(
                inverse_mass_matrix=tile(inverse, adapt.inverse_mass_matrix),
                mass_matrix_sqrt=tile(sqrt, adapt.mass_matrix_sqrt),
                mass_matrix_sqrt_inv=tile(sqrt_inv, adapt.mass_matrix_sqrt_inv),
            )
        tuning = jax.vmap(adaptation.init)(state.z, adapt.step_size)
        return state._replace(adapt_state=adapt), tuning

    def _end_warmup_one(self, carry):
        """The state to sample from: step size set to dual averaging's average."""
        state, tuning = carry
        if self.options.adapt_step_size and self.warmup:
            adapt = state.adapt_state._replace(step_size=jax.vmap(adaptation.final_step_size)(tuning))
            state = state._replace(adapt_state=adapt)
        return state, tuning

    def warm(self, carry, args, trace_length: int, bar=None):
        """Run the warmup :func:`~bayescale.warmup.schedule`; the state to sample from."""
        loop = self.loop(trace_length)
        for length, collect in adaptation.schedule(self.warmup):
            carry, _ = loop(carry, args, length, True, collect)
            if collect:
                carry = self._window_end(carry)
            if bar is not None:
                bar(length, "warmup")
        return self._end_warmup(carry)

    def _loop_one(self, carry, args, length, adapting, collect, trace_length):
        """``length`` NUTS iterations, recording the first ``trace_length`` draws.

        ``length``, ``adapting`` and ``collect`` are traced, so one compiled loop serves
        every warmup window (adapting; ``collect`` adds the draws to the mass-matrix window)
        and the draws (``length == trace_length``): one compilation per model and shape.
        """
        o = self.options

        def adapt(state, tuning):
            tuning, step_size = adaptation.update(tuning, state.z, state.accept_prob, o.target_accept_prob, collect)
            if o.adapt_step_size:
                state = state._replace(adapt_state=state.adapt_state._replace(step_size=step_size))
            return state, tuning

        def body(i, value):
            (state, tuning), trace = value
            state = self._sample_kernel(state, model_args=(args,))
            state, tuning = jax.lax.cond(adapting, adapt, lambda s, t: (s, t), state, tuning)
            info = _draw_info(state)
            trace = jax.tree_util.tree_map(lambda buffer, x: buffer.at[i].set(x, mode="drop"), trace, (state.z, info))
            return (state, tuning), trace

        state = carry[0]
        example = (state.z, _draw_info(state))
        trace = jax.tree_util.tree_map(lambda x: jnp.zeros((trace_length,) + jnp.shape(x), jnp.result_type(x)), example)
        return jax.lax.fori_loop(0, length, body, (carry, trace))

    def _post_one(self, z, args):
        values = constrain_fn(self.model, (args,), {}, z, return_deterministic=True)
        loglik = log_likelihood(self.model, values, args, batch_ndims=0)["obs"]
        return self._reported(values), loglik

    def _values_one(self, z, args):
        return self._reported(constrain_fn(self.model, (args,), {}, z, return_deterministic=True))

    def _reported(self, values):
        return {k: v for k, v in values.items() if not (k in self.sites and k.endswith("_z"))}

    # -- batching over chains and devices -------------------------------------------
    def _over_chains(self, fn, shared: int = 1):
        """``fn(per_chain, *shared)`` vmapped over chains (and data sets), jitted, sharded over devices."""
        batched = jax.vmap(fn, in_axes=(0,) + (None,) * shared)
        if self.batched:  # (data set, chain) keys and states; one data set's args per member
            return jax.jit(jax.vmap(batched, in_axes=(0, 0) + (None,) * (shared - 1)))
        if self.n_devices == 1:
            return jax.jit(batched)
        mesh = Mesh(np.array(jax.local_devices()[: self.n_devices]), ("chain",))
        spec = PartitionSpec("chain")
        return jax.jit(
            jax.shard_map(
                batched, mesh=mesh, in_specs=(spec,) + (PartitionSpec(),) * shared, out_specs=spec, check_vma=False
            )
        )

    def loop(self, trace_length: int) -> Callable:
        """The compiled :meth:`_loop_one` over chains, for traces of ``trace_length`` draws."""
        if trace_length not in self._loops:
            self._loops[trace_length] = self._over_chains(partial(self._loop_one, trace_length=trace_length), shared=4)
        return self._loops[trace_length]

    # -- driver ----------------------------------------------------------------------
    def run(self, args, *, seed, chains, draws, progress_bar, chain_method) -> Samples:
        keys = jax.random.split(jax.random.key(seed), chains)
        bar = _progress(progress_bar, self.warmup + draws, chains)
        chunks = _chunks(draws, progress_bar)
        state = self.warm(self._init(keys, args), args, chunks[0], bar)
        traces = []
        for length in chunks:
            state, trace = self.loop(length)(state, args, length, False, False)
            traces.append(jax.device_get(trace))
            bar(length, "sample")
        bar.close()
        z = {k: np.concatenate([t[0][k] for t in traces], axis=1) for k in self.sites}
        stats = {k: np.concatenate([t[1][k] for t in traces], axis=1) for k in traces[0][1]}
        flat = {k: v.reshape((chains * draws,) + v.shape[2:]) for k, v in z.items()}
        values, loglik = jax.device_get(self._post(flat, args))
        posterior = {k: np.asarray(v).reshape((chains, draws) + np.shape(v)[1:]) for k, v in values.items()}
        loglik = np.asarray(loglik).reshape((chains, draws) + np.shape(loglik)[1:])
        return Samples(posterior, loglik, stats, chain_method, self.options)

    def run_many(self, args, *, seeds, chains, draws) -> Samples:
        keys = jax.vmap(lambda s: jax.random.split(jax.random.key(s), chains))(jnp.asarray(seeds))
        state = self.warm(self._init(keys, args), args, draws)
        state, trace = self.loop(draws)(state, args, draws, False, False)
        traces = [jax.device_get(trace)]
        n = len(seeds)
        z = {k: np.concatenate([t[0][k] for t in traces], axis=2) for k in self.sites}
        stats = {k: np.concatenate([t[1][k] for t in traces], axis=2) for k in traces[0][1]}
        flat = {k: v.reshape((n, chains * draws) + v.shape[3:]) for k, v in z.items()}
        values = jax.device_get(self._post(flat, args))
        posterior = {k: np.asarray(v).reshape((n, chains, draws) + np.shape(v)[2:]) for k, v in values.items()}
        return Samples(posterior, None, stats, "vectorized", self.options)


def _draw_info(state) -> dict:
    """What the trace records of a NUTS state besides its position."""
    return {
        "diverging": state.diverging,
        "n_steps": state.num_steps,
        "acceptance_rate": state.accept_prob,
        "energy": state.energy,
        "lp": -state.potential_energy,
        "step_size": state.adapt_state.step_size,
    }


class _progress:
    """A tqdm bar over iterations when asked for, otherwise nothing."""

    def __init__(self, enabled: bool, total: int, chains: int):
        self._bar = None
        if enabled:
            from tqdm.auto import tqdm

            self._bar = tqdm(total=total, desc=f"NUTS ({chains} chains)", unit="it")

    def __call__(self, n: int, phase: str) -> None:
        if self._bar is not None:
            self._bar.set_postfix_str(phase)
            self._bar.update(n)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
