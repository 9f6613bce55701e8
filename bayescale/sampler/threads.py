"""The one thread pool: compiled programs called from one thread per CPU core (JAX releases the GIL)."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor


def cpu_count() -> int:
    """CPU cores this process may use."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def map_in_threads(
    fn: Callable, items: Sequence, stop: threading.Event | None = None, threads: int | None = None
) -> list:
    """``[fn(item) for item in items]``, in ``threads`` threads (default one per CPU core; at most one per item).

    On an error or a ``KeyboardInterrupt`` the items not started are cancelled and ``stop``
    is set, so that running ``fn`` calls that check it can return early.

    Examples
    --------
    >>> map_in_threads(lambda x: x * x, [1, 2, 3])
    [1, 4, 9]
    """
    pool = ThreadPoolExecutor(max_workers=max(1, min(len(items), threads or cpu_count())))
    try:
        return list(pool.map(fn, items))
    finally:
        if stop is not None:
            stop.set()
        pool.shutdown(wait=True, cancel_futures=True)
