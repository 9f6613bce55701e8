"""Many fits on a Dask cluster (``client=``): the same draws as in one process, a lost worker recovered."""

from __future__ import annotations

import os
import signal
import threading
import time

import numpy as np
import pandas as pd
import pytest
from distributed import Client, LocalCluster

import bayescale as bs
from bayescale.sampler.cluster import CHUNK_MAX, chunk_size, map_on_cluster
from bayescale.sampler.progress import Progress
from tests.test_many import tasks

SHORT = {"chains": 2, "warmup": 300, "draws": 300, "progress_bar": False}
# tests with SHORT chains ask whether a cluster gives the local draws, not whether such chains are long enough
# (an R-hat just above 1.01 in a few of them); the warning is raised alike with and without a client
short_chains = pytest.mark.filterwarnings("ignore::bayescale.SamplerWarning")


def chunk_tasks(dask_scheduler) -> list[tuple[str, str | None]]:
    """State and worker of every chunk of fits the scheduler still knows (fetched ones are forgotten)."""
    return [
        (ts.state, ts.processing_on.address if ts.processing_on else None)
        for ts in dask_scheduler.tasks.values()
        if str(ts.key).startswith("_sample_chunk")
    ]


def assert_same_fits(a: bs.ScalingFits, b: bs.ScalingFits) -> None:
    assert list(a) == list(b)
    for name in a.model.parameter_names:
        np.testing.assert_array_equal(a.draws(name), b.draws(name))
    pd.testing.assert_frame_equal(a.health, b.health)


def test_contract_usage_with_a_worker_killed_mid_run():
    df = tasks(8, seed=5)
    model = bs.ScalingModel(bs.laws.PowerLaw("N"), target="loss", inputs={"N": "N"})
    local = model.fit_many(df, by="task", seed=0)
    n_chunks = df["task"].nunique()  # 8 data sets on 2 threads: one data set per chunk

    # as the contract writes it, with the dashboard on a free port (another cluster may hold the default)
    client = Client(LocalCluster(n_workers=2, threads_per_worker=1, dashboard_address=":0"))
    with client:
        pids = client.run(os.getpid)
        returned = threading.Event()
        killed = {}

        def kill_a_busy_worker():
            # once some chunks are back (forgotten by the scheduler) and others still run, kill a worker running one
            while not returned.is_set():
                known = client.run_on_scheduler(chunk_tasks)
                busy = [worker for state, worker in known if state == "processing" and worker in pids]
                if 0 < len(known) <= n_chunks - 2 and busy:
                    os.kill(pids[busy[0]], signal.SIGKILL)
                    killed.update(worker=busy[0], chunks_left=len(known))
                    return
                time.sleep(0.02)

        killer = threading.Thread(target=kill_a_busy_worker)
        killer.start()
        fits = model.fit_many(df, by="task", seed=0, client=client)
        returned.set()
        killer.join()
        fits.summary()
        assert killed, "no worker was killed while the fits ran"
        assert pids[killed["worker"]] not in client.run(os.getpid).values()  # a new worker took its place
    assert_same_fits(fits, local)  # nothing lost, nothing duplicated, the same draws


@pytest.fixture(scope="module")
def threads_client():
    """A cluster in this process (two worker threads): cheap to start, for the studies' plumbing."""
    with Client(LocalCluster(n_workers=1, threads_per_worker=2, processes=False, dashboard_address=":0")) as client:
        yield client


@short_chains
def test_vectorised_batches_on_a_cluster_give_the_local_draws(threads_client):
    df = tasks(5, seed=6)
    model = bs.ScalingModel(bs.laws.PowerLaw("N"), target="loss", inputs={"N": "N"})
    local = model.fit_many(df, by="task", seed=1, batch_size=2, **SHORT)
    remote = model.fit_many(df, by="task", seed=1, batch_size=2, client=threads_client, **SHORT)
    assert_same_fits(remote, local)


@short_chains
def test_studies_on_a_cluster_match_local(threads_client):
    model = bs.ScalingModel(bs.laws.PowerLaw("N"), target="loss", inputs={"N": "N"})
    design = pd.DataFrame({"N": np.geomspace(1e7, 1e9, 8)})
    settings = dict(n_sims=4, seed=2, chains=2, warmup=200, draws=200, progress_bar=False)
    local = bs.calibration.sbc(model, design, **settings)
    remote = bs.calibration.sbc(model, design, client=threads_client, **settings)
    pd.testing.assert_frame_equal(remote.ranks, local.ranks)

    curve = tasks(1, seed=7).drop(columns="task")
    options = dict(scale="N", decades=(0.5, 1.0), baseline=False, seed=0, chains=2, warmup=300, draws=300)
    local = bs.validation.backtest(model, curve, **options)
    remote = bs.validation.backtest(model, curve, client=threads_client, **options)
    pd.testing.assert_frame_equal(remote.pointwise(), local.pointwise())


def test_a_client_that_is_not_one_is_refused_before_any_fit():
    model = bs.ScalingModel(bs.laws.PowerLaw("N"), target="loss", inputs={"N": "N"})
    with pytest.raises(TypeError, match=r"client must be a dask.distributed.Client.*got str"):
        model.fit_many(tasks(2), by="task", client="tcp://scheduler:8786")
    with pytest.raises(TypeError, match="client must be"):
        bs.calibration.sbc(model, pd.DataFrame({"N": [1e7, 1e8, 1e9]}), n_sims=2, client=object())


class WorkersOn:
    """What chunk_size asks of a client: the workers' backends and threads (no cluster started)."""

    def __init__(self, backend: str, workers: int, threads: int) -> None:
        self.backends = {f"tcp://w{i}": backend for i in range(workers)}
        self.threads = threads

    def run(self, fn):
        return dict(self.backends)

    def nthreads(self):
        return {w: self.threads for w in self.backends}


def test_chunks_are_a_batch_per_device_on_gpus_and_small_on_cpus():
    assert chunk_size(10_000, WorkersOn("gpu", 2, 1), None) == 5_000  # one vectorised batch per device
    assert chunk_size(10_001, WorkersOn("tpu", 4, 1), None) == 2_501
    assert chunk_size(10_000, WorkersOn("cpu", 2, 1), None) == CHUNK_MAX
    assert chunk_size(40, WorkersOn("cpu", 2, 1), None) == 2  # about TASKS_PER_THREAD chunks per thread
    assert chunk_size(3, WorkersOn("cpu", 8, 2), None) == 1
    assert chunk_size(10_000, WorkersOn("gpu", 2, 1), 512) == 512  # batch_size given: one batch per task


def square_but_not_three(x: int) -> int:
    if x == 3:
        raise ValueError("three is not welcome")
    return x * x


def test_results_come_back_in_order_and_an_error_is_raised_at_the_call(threads_client):
    with Progress(False, 6, "") as bar:
        squares = map_on_cluster(threads_client, square_but_not_three, [5, 4, 2, 1], sizes=[1] * 4, bar=bar)
        assert squares == [25, 16, 4, 1]
        with pytest.raises(ValueError, match="three is not welcome"):
            map_on_cluster(threads_client, square_but_not_three, [1, 2, 3, 4, 5, 6], sizes=[1] * 6, bar=bar)
