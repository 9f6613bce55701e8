"""Compiling JAX programs for how long they run, and a bounded cache of compiled programs.

Compiling is most of a small fit's cold time, so on CPU a program that runs briefly is
compiled with cheaper settings than one that samples for long (``docs/sampler.md`` has the
measurements, ``benchmarks/bench_compile.py`` makes them).
"""

from __future__ import annotations

import functools
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable

import jax

KEEP_COMPILED = 16  # compiled samplers kept per process (see CompiledCache)
CPU_OPTIMIZATION_LEVEL = 0  # LLVM optimisation level of run-once programs compiled for CPU
CPU_COMPILER_OPTIONS = {"xla_cpu_use_fusion_emitters": False}  # CPU programs that run briefly
RUNS = ("once", "fit", "many")  # how long a compiled program runs


def compiled(fn: Callable, *, runs: str = "fit") -> Callable:
    """``jax.jit(fn)``, compiled for CPU as suits how long the program ``runs``.

    - ``"once"``: once per fit (random starts, the step-size search, post-processing, the
      pilot): LLVM optimisation level :data:`CPU_OPTIMIZATION_LEVEL` and XLA's older LLVM
      emitters for fused loops (:data:`CPU_COMPILER_OPTIONS`).
    - ``"fit"``: the sampling loop of one fit: the older emitters only (faster to compile,
      slightly slower to run).
    - ``"many"``: the sampling loop of a long run of many fits
      (:data:`~bayescale.sampler.runner.MANY_ITERATIONS` chain iterations or more), where
      sampling is most of the time: XLA's defaults.

    Other backends always get XLA's defaults.

    Examples
    --------
    >>> square = compiled(lambda x: x * x, runs="once")
    >>> float(square(3.0))
    9.0
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
    fails is left out.
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

    Every compiled program holds machine code that the operating system counts as memory
    mappings (1,000-1,600 for one NUTS sampler on CPU), and Linux ends a process at
    ``vm.max_map_count`` of them with a segmentation fault inside the compiler. So the
    least recently used program is dropped when a new one needs the room; using it again
    compiles it again.

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
        self._lock = threading.Lock()  # samplers are looked up from several threads

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
