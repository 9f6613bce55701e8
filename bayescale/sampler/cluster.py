"""Work spread over a Dask cluster: items go to the workers, results stream back in order.

Dask's scheduler does the placing, the load balancing and the recovery: a task whose worker
dies (a killed process, a lost connection) is run again on another worker, and a result
already fetched is never fetched twice. Here only the pieces a fit needs: a check that the
client is one, the size of a task (:func:`chunk_size`) and :func:`map_on_cluster`. A worker keeps
what it compiled in its process (:data:`bayescale.sampler.runner.RUNNERS`), so each worker
compiles a sampler once and reuses it for every later task of the same shape.

``distributed`` is optional: only a user who passes a client needs it installed.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import jax

from bayescale.sampler.progress import Progress

TASKS_PER_THREAD = 16  # chunks per worker thread on CPU: a late chunk then delays the end by little
CHUNK_MAX = 64  # most data sets per chunk on CPU: a chunk run again after a failure costs little


def check_client(client) -> None:
    """Raise a TypeError unless ``client`` is a ``dask.distributed.Client`` (or quacks like one)."""
    if not all(callable(getattr(client, name, None)) for name in ("submit", "nthreads", "cancel")):
        raise TypeError(
            "client must be a dask.distributed.Client, e.g. Client(LocalCluster(n_workers=2, threads_per_worker=1)), "
            f"got {type(client).__name__}"
        )


def total_threads(client) -> int:
    """Worker threads on the cluster now (at least one: a cluster still starting counts as one)."""
    return max(1, sum(client.nthreads().values()))


def chunk_size(n: int, client, batch_size: int | None) -> int:
    """Data sets per task.

    ``batch_size`` when given (each task one vectorised batch). Otherwise, where a worker
    runs on a GPU or TPU, an equal share per worker (one vectorised batch on its device);
    on CPU workers a share small enough that the tasks balance over the threads.
    """
    if batch_size is not None:
        return batch_size
    backends = client.run(jax.default_backend)
    if any(b != "cpu" for b in backends.values()):
        return max(1, math.ceil(n / len(backends)))
    return max(1, min(CHUNK_MAX, math.ceil(n / (TASKS_PER_THREAD * total_threads(client)))))


def map_on_cluster(client, fn: Callable, items: Sequence, *, sizes: Sequence[int], bar: Progress) -> list:
    """``[fn(item) for item in items]`` run on the workers of ``client``, in the order of ``items``.

    Results are fetched as they finish (the bar advances by ``sizes[i]`` for item ``i``),
    so a worker holds no more than the tasks it runs. An error in ``fn`` cancels the tasks
    not finished and is raised here; a worker lost mid-task is Dask's to recover (the task
    runs again elsewhere, up to ``distributed.scheduler.allowed-failures`` times).
    """
    from distributed import as_completed  # optional dependency: the caller gave a client, so it is installed

    futures = [client.submit(fn, item, pure=False) for item in items]
    position = {future.key: i for i, future in enumerate(futures)}
    results = [None] * len(items)
    done = as_completed(futures, loop=client.loop, with_results=True)
    del futures  # as_completed holds them until they are yielded; then their results leave the workers
    try:
        for future, result in done:
            i = position[future.key]
            results[i] = result
            bar(sizes[i])
    except BaseException:
        client.cancel(list(done.futures))
        raise
    return results
