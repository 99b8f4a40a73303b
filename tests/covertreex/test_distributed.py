"""covertreex.distributed on a real 2-process LocalCluster: byte-identical answers, even after a worker
dies."""

from __future__ import annotations

import contextlib
import json
import os
import pickle
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from types import SimpleNamespace

import numpy as np
import pytest

import covertreex as ct
from covertreex import distributed, host_shared
from covertreex.engines.rust import int8_kernel
from covertreex.errors import ClusterError, InputTypeError, InvalidInputError
from covertreex.vecchia import FARTHEST_MAX_WIDTH

pytest.importorskip("distributed")

pytestmark = pytest.mark.timeout(300, method="thread")
"""A test of this module that hangs (a full suite once waited on one for over 10 minutes, 2026-12-06)
ends its process with every thread's stack printed, so the suite fails in minutes, not at CI's 90."""


WORKERS = 2
"""Worker processes of the module's cluster (the `client` fixture)."""


@pytest.fixture(scope="module")
def client():
    """A LocalCluster of 2 worker processes (1 thread each) for this module, closed at its end. Its
    scheduler's HTTP server takes a free port (':0'): with None it still took 8787, and a second module's
    or xdist worker's cluster warned that the port was in use."""
    from distributed import Client, LocalCluster

    with LocalCluster(n_workers=WORKERS, threads_per_worker=1, processes=True, dashboard_address=":0") as \
            cluster, Client(cluster) as c:
        yield c


def _same_bytes(a, b):
    return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()


@pytest.mark.parametrize("per_neighbour",
                         [distributed.PAIRS_PER_NEIGHBOUR, distributed.SPLIT_PAIRS_PER_NEIGHBOUR])
def test_ranges_cover_every_query_once_at_about_equal_cost(per_neighbour):
    limits = np.arange(0, 100_000, 100)  # every 100th predecessor row: row i may return i points
    ranges = distributed.cost_balanced_ranges(limits, 10, 8, per_neighbour)
    assert ranges[0][0] == 0 and ranges[-1][1] == 1000
    starts = [a for a, _ in ranges]
    assert all(a < b for a, b in ranges) and [b for _, b in ranges[:-1]] == starts[1:]
    answer = per_neighbour * 10
    costs = [float((limits[a:b] + answer).sum()) for a, b in ranges]
    assert len(ranges) == 8 and max(costs) - min(costs) <= 2 * (limits.max() + answer)
    assert ranges[0][1] - ranges[0][0] > 2 * (ranges[-1][1] - ranges[-1][0])  # early rows are cheap
    assert distributed.cost_balanced_ranges(np.full(3, 5), 1, 10) == [(0, 1), (1, 2), (2, 3)]
    with pytest.raises(InvalidInputError, match="limits must hold one entry per query, got none"):
        distributed.cost_balanced_ranges(np.arange(0), 3, 2)  # an IndexError before


@pytest.mark.parametrize("args, message", [
    ((np.full(4, 5), 1, 0), "n_ranges >= 1"),  # gave one range
    ((np.full(4, 5), -1, 2), "k must be >= 0"),
    ((np.full(4, 5), 1, 2.5), "n_ranges must be an integer"),  # gave 3 ranges
    ((np.full((4, 2), 5), 1, 2), "limits must be a 1-d array of integers"),
    ((np.array([1.0, np.nan]), 1, 2), "limits must be a 1-d array of integers"),
    ((np.array([3, -1]), 1, 2), "every limit >= 0"),
])
def test_ranges_of_nonsense_are_refused(args, message):
    with pytest.raises((InvalidInputError, InputTypeError), match=message):
        distributed.cost_balanced_ranges(*args)
    assert distributed.cost_balanced_ranges([5, 5, 5], 1, 2) == [(0, 2), (2, 3)]  # a list, as an array


@pytest.mark.parametrize("start, stop", [(-5, 20), (10, 5), (0, 0), (0, 1000), (1.5, 3)])
def test_a_range_outside_the_queries_is_refused(start, stop):
    """A slice's rules answered the last five queries for (-5, 20), none for (10, 5), 20 for (0, 1000)."""
    index = distributed.prepare(np.random.default_rng(0).normal(size=(50, 2)), 3, metric="euclidean",
                                indices=np.arange(20))
    with pytest.raises((InvalidInputError, InputTypeError), match="start"):
        distributed.answer_range(index, start, stop)
    with pytest.raises(InputTypeError, match="index must be what covertreex.distributed.prepare returns"):
        distributed.answer_range(None, 0, 3)


def _ranges_run(client, job) -> int:
    """How many ranges of covertreex.distributed the cluster ran during `job()` (with both workers up: a
    worker killed by an earlier test restarts)."""
    from distributed import get_task_stream

    client.wait_for_workers(2, timeout=60)
    with get_task_stream(client) as stream:
        job()
    return sum(str(task["key"]).startswith("_answer_on_worker") for task in stream.data)


@pytest.mark.parametrize("metric, ordering", [("residual", "natural"), ("residual", "maximin-euclidean"),
                                              ("euclidean", "random")])
def test_vecchia_job_on_the_cluster_is_byte_identical(client, metric, ordering):
    X = np.random.default_rng(5).normal(size=(600, 3))
    m = {"m": 32} if metric == "residual" else {}
    local = ct.vecchia_neighbors(X, 8, metric=metric, ordering=ordering, **m)
    remote = []
    ran = _ranges_run(client, lambda: remote.append(
        ct.vecchia_neighbors(X, 8, metric=metric, ordering=ordering, **m, scheduler=client)))
    assert ran == 2 * distributed.RANGES_PER_WORKER
    for name in ("ordering", "neighbors", "distances"):
        assert _same_bytes(getattr(local, name), getattr(remote[0], name)), name


@pytest.mark.parametrize("metric", ["residual", "euclidean"])
def test_a_maximin_ordering_fused_with_the_neighbours_needs_no_cluster(client, metric):
    """(Euclidean points beyond FARTHEST_MAX_WIDTH coordinates: in fewer, the boxes order alone, below.)"""
    if metric == "euclidean" and not ct.engine_available("rust"):
        pytest.skip("only the rust engine fuses a Euclidean maximin with the neighbours")
    X = np.random.default_rng(4).normal(size=(500, 3 if metric == "residual" else FARTHEST_MAX_WIDTH + 1))
    m = {"m": 32} if metric == "residual" else {}
    local = ct.vecchia_neighbors(X, 8, metric=metric, **m)
    remote = []
    ran = _ranges_run(client, lambda: remote.append(ct.vecchia_neighbors(X, 8, metric=metric, **m,
                                                                         scheduler=client)))
    assert ran == 0 and remote[0].ordering_name == "maximin" and remote[0].neighbor_seconds == 0.0
    for name in ("ordering", "neighbors", "distances"):
        assert _same_bytes(getattr(local, name), getattr(remote[0], name)), name


def test_a_euclidean_maximin_ordered_by_the_boxes_sends_its_neighbours_to_the_cluster(client):
    """In a few coordinates the rust engine orders alone (rust/core/src/maximin/farthest.rs); the predecessor
    query then runs on the cluster: the same bytes as here."""
    if not ct.engine_available("rust"):
        pytest.skip("engine rust not available")
    X = np.random.default_rng(4).normal(size=(600, 2))
    local = ct.vecchia_neighbors(X, 8, metric="euclidean")
    remote = []
    ran = _ranges_run(client, lambda: remote.append(ct.vecchia_neighbors(X, 8, metric="euclidean",
                                                                         scheduler=client)))
    assert ran > 0 and remote[0].neighbor_seconds > 0.0
    for name in ("ordering", "neighbors", "distances"):
        assert _same_bytes(getattr(local, name), getattr(remote[0], name)), name


def test_a_maximin_ordering_on_the_split_sends_its_neighbours_to_the_cluster(client, monkeypatch):
    """Where 'auto' takes the split screen, the ordering runs here and the predecessor query on the
    cluster, whatever k (the pass on the split costs more than ordering alone), on the split the permuted
    problem carries (each worker adopts it, its points' fingerprint checked): the same bytes as the fused
    pass on the f64 GEMM, in this process."""
    if not ct.engine_available("rust"):
        pytest.skip("engine rust not available")
    from covertreex import split_screen, vecchia

    monkeypatch.setattr(split_screen, "PAYS", {int8_kernel(): 0})  # at any size and fit, in this process
    monkeypatch.setattr(split_screen, "USEFUL", 1.0)
    monkeypatch.setattr(vecchia, "SPLIT_FUSED_MAX_K", {int8_kernel(): 16})
    X = np.random.default_rng(12).normal(size=(700, 3))
    k = 12  # at most SPLIT_FUSED_MAX_K: without a cluster, the pass on the split would find the rows
    fused = ct.vecchia_neighbors(X, k, m=48, engine="rust")
    remote = []
    ran = _ranges_run(client, lambda: remote.append(ct.vecchia_neighbors(X, k, m=48, scheduler=client)))
    assert ran == 2 * distributed.RANGES_PER_WORKER and remote[0].neighbor_seconds > 0.0
    for name in ("ordering", "neighbors", "distances"):
        assert _same_bytes(getattr(fused, name), getattr(remote[0], name)), name


@pytest.mark.parametrize("at", [[3, 2], [0, 0], [-1, 4], [5, 300], np.array([1.0, 2.0]), [[1, 2]]])
def test_answer_positions_takes_distinct_ascending_positions_of_the_queries(at):
    index = distributed.prepare(np.random.default_rng(5).normal(size=(300, 2)), 3, metric="euclidean",
                                predecessor=True)
    with pytest.raises(InvalidInputError, match="distinct ascending int64 positions within"):
        distributed.answer_positions(index, np.asarray(at))
    with pytest.raises(InputTypeError, match="index must be what covertreex.distributed.prepare returns"):
        distributed.answer_positions("index", np.array([0]))
    idx, dist, evaluations = distributed.answer_positions(index, np.array([0, 7, 299]))
    assert evaluations > 0
    whole = distributed.answer_range(index, 0, 300)
    assert _same_bytes(idx, whole[0][[0, 7, 299]]) and _same_bytes(dist, whole[1][[0, 7, 299]])


def test_query_set_by_scheduler_address_is_byte_identical(client):
    X = np.random.default_rng(6).normal(size=(500, 2))
    queries = np.random.default_rng(7).integers(0, 500, 64)
    local = ct.CoverTree(metric="euclidean").fit(X).query(k=5, indices=queries)
    dist, idx = distributed.kneighbors(X, 5, client.scheduler.address, indices=queries)
    assert _same_bytes(idx, local.indices) and _same_bytes(dist, local.distances)


def test_a_dense_job_takes_one_screen_on_every_worker(client, monkeypatch):
    """dense_screen='auto' chooses for the whole job once (a worker's range alone might not repay building
    the split), so every range takes the split and the answers are the single process's, bit for bit."""
    from covertreex import datasets, split_screen

    problem = ct.residual_problem(datasets.make("clustered", 1000, 3, 5).points, m=80, seed=5,
                                  lengthscale=[0.3, 1.0, 2.0])
    monkeypatch.setattr(split_screen, "PAYS", {int8_kernel(): 1})
    index = distributed.prepare(problem, 10, metric="residual", engine="rust", predecessor=True,
                                path="dense", mode="perf")
    assert index.config.dense_screen == "split"
    expected = distributed.answer_range(index, 0, 1000)
    local = ct.CoverTree(engine="rust", metric="residual", path="dense", mode="perf",
                         dense_screen="f64").fit(problem).query(k=10, predecessor=True)
    idx, dist = distributed.run(index, client, ranges_per_worker=3)
    assert _same_bytes(idx, expected[0]) and _same_bytes(dist, expected[1])
    assert _same_bytes(idx, local.indices) and _same_bytes(dist, local.distances)


def test_an_index_sends_each_array_once():
    """The problem, the space and the query set share V (read-only views of a read-only array are the
    array itself): pickle sends it once, where three views of it tripled the scatter."""
    problem = ct.residual_problem(np.random.default_rng(3).normal(size=(2000, 3)), m=128, seed=3)
    index = distributed.prepare(problem, 8, metric="residual", predecessor=True)
    buffers = []
    pickle.dumps(index, protocol=5, buffer_callback=buffers.append)
    assert problem.V.nbytes <= sum(b.raw().nbytes for b in buffers) < 1.5 * problem.V.nbytes


@pytest.mark.parametrize("metric", ["euclidean", "residual"])
def test_an_arrived_index_queries_its_own_space(metric):
    """The space is made anew when it is unpickled; the query set kept the arrays it came with, so a worker
    held X twice and each call checked all of it (the extension skips that for the indexed data itself)."""
    X = np.random.default_rng(4).normal(size=(3000, 3))
    options = {"m": 64} if metric == "residual" else {}
    index = distributed.prepare(X, 6, metric=metric, predecessor=True, **options)
    arrived = pickle.loads(pickle.dumps(index, protocol=5))
    for mine, space in zip(arrived.queries.data, arrived.space.data, strict=True):
        assert mine is space
    for sent, got in zip(distributed.answer_range(index, 0, 3000), distributed.answer_range(arrived, 0, 3000),
                         strict=True):
        assert _same_bytes(sent, got)


def test_the_split_screen_travels_with_the_index(monkeypatch):
    """A worker takes the client's split screen from the index instead of building its own (a pickled
    problem alone leaves it out)."""
    from covertreex import datasets, split_screen

    problem = ct.residual_problem(datasets.make("clustered", 600, 3, 5).points, m=60, seed=5)
    monkeypatch.setattr(split_screen, "PAYS", {int8_kernel(): 1})
    index = distributed.prepare(problem, 8, metric="residual", engine="rust", predecessor=True,
                                path="dense", mode="perf")
    assert index.takes_split and "split_screen" in vars(problem)  # built once, here
    built = problem.split_screen
    assert index.pairs_per_neighbour == distributed.SPLIT_PAIRS_PER_NEIGHBOUR
    arrived = pickle.loads(pickle.dumps(index, protocol=5))
    assert "split_screen" not in vars(pickle.loads(pickle.dumps(problem, protocol=5)))
    monkeypatch.setattr(split_screen, "split_screen", lambda problem: pytest.fail("built again"))
    split = arrived.space.problem.split_screen
    assert np.array_equal(split.q, built.q) and np.array_equal(split.factors, built.factors)
    assert _same_bytes(*(distributed.answer_range(i, 0, 600)[0] for i in (arrived, index)))


def test_only_an_index_whose_ranges_take_the_split_sends_one():
    """The split travels only where the rust dense path takes it, and only the problem's own: an index
    on the tree path, or on gold, sends none and is costed as the f64 screen; a problem refuses a split
    of another shape."""
    from covertreex import datasets, split_screen

    X = datasets.make("clustered", 600, 3, 5).points
    euclidean = distributed.prepare(X, 5, metric="euclidean", indices=np.arange(10), dense_screen="split",
                                    path="tree")
    assert not euclidean.takes_split
    problem = ct.residual_problem(X, m=60, seed=5)
    assert problem.split_screen is not None  # built: only the index decides whether it travels
    for engine, path in (("rust", "tree"), ("gold", "dense")):
        index = distributed.prepare(problem, 8, metric="residual", engine=engine, predecessor=True, path=path,
                                    dense_screen="auto")
        assert not index.takes_split and index.pairs_per_neighbour == distributed.PAIRS_PER_NEIGHBOUR
        assert "split_screen" not in vars(pickle.loads(pickle.dumps(index, protocol=5)).space.problem)
    other = ct.residual_problem(X[:300], m=60, seed=5)
    with pytest.raises(InvalidInputError, match="split screen of 600 x 60"):
        other.adopt_split_screen(split_screen.split_screen(problem))


def test_a_job_on_the_box_screen_takes_it_in_every_range_in_equal_shares():
    """The job's screen is fixed once (a worker's smaller range could price the boxes otherwise), and its
    ranges hold equal numbers of queries: a box query's work does not grow with its predecessors."""
    from covertreex import datasets

    X = datasets.gaussian(20_000, 2, 9)
    index = distributed.prepare(X, 10, metric="euclidean", predecessor=True)  # rust, perf, path 'auto'
    assert index.path == "dense" and index.config.dense_screen == "boxes"
    ranges = distributed.cost_balanced_ranges(index.costed_limits, index.k, 4, index.pairs_per_neighbour)
    assert [b - a for a, b in ranges] == [5_000] * 4
    expected = ct.CoverTree().fit(X).query(k=10, predecessor=True)
    for a, b in ranges:
        idx, dist = distributed.answer_range(index, a, b)
        assert _same_bytes(idx, expected.indices[a:b]) and _same_bytes(dist, expected.distances[a:b])


def _answers_unchanged_despite(client, interfere) -> list:
    """Run a job slow enough to be interfered with midway (the tree path on the residual metric: about
    0.3 s of work) while `interfere(client, record)` runs in a thread; check that the answer is the
    single process's, bit for bit; return what the interference recorded."""
    problem = ct.residual_problem(np.random.default_rng(8).normal(size=(2000, 3)), m=128, seed=0)
    index = distributed.prepare(problem, 20, metric="residual", engine="rust", predecessor=True,
                                path="tree", mode="perf")
    expected = distributed.answer_range(index, 0, 2000)  # the single-process run of the same function
    record = []
    thread = threading.Thread(target=interfere, args=(client, record))
    thread.start()
    idx, dist = distributed.run(index, client, ranges_per_worker=6)
    thread.join()
    assert _same_bytes(idx, expected[0]) and _same_bytes(dist, expected[1])
    return record


def _kill_a_busy_worker(client, killed):
    """Kill (SIGKILL) the first worker seen with ranges in hand; record it and its ranges."""
    pids = client.run(os.getpid)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        busy = {worker: keys for worker, keys in client.processing().items() if keys}
        if busy:
            victim = sorted(busy)[0]
            os.kill(pids[victim], signal.SIGKILL)
            killed.append((victim, busy[victim]))
            return
        time.sleep(0.005)


def test_a_killed_worker_loses_nothing(client):
    killed = _answers_unchanged_despite(client, _kill_a_busy_worker)
    assert killed and killed[0][1], "no worker was killed while it held ranges"


def test_pcct_vecchia_scheduler_flag(client, tmp_path):
    X = np.random.default_rng(9).normal(size=(300, 2))
    np.save(tmp_path / "x.npy", X)
    done = []
    ran = _ranges_run(client, lambda: done.append(subprocess.run(
        [sys.executable, "-m", "covertreex", "vecchia", str(tmp_path / "x.npy"), "--k", "6", "--m", "16",
         "--ordering", "random", "--scheduler", client.scheduler.address, "--out", str(tmp_path / "nn.npz")],
        capture_output=True, text=True, timeout=300)))
    assert done[0].returncode == 0, done[0].stderr
    assert ran == 2 * distributed.RANGES_PER_WORKER
    saved = np.load(tmp_path / "nn.npz")
    assert json.loads(str(saved["summary"]))["neighbours_found"] == "on the cluster"
    local = ct.vecchia_neighbors(X, 6, m=16, ordering="random")
    for name in ("ordering", "neighbors", "distances"):
        assert _same_bytes(saved[name], getattr(local, name)), name


def test_an_unreachable_scheduler_fails_before_any_work_even_when_no_cluster_is_needed():
    X = np.random.default_rng(3).normal(size=(50, 2))

    def no_work_expected(stage, n):
        raise AssertionError(f"{stage} started before the scheduler was reached")

    with pytest.raises(InvalidInputError, match="cannot reach the Dask scheduler at 'tcp://127.0.0.1:1'"):
        ct.vecchia_neighbors(X, 3, scheduler="tcp://127.0.0.1:1", progress=no_work_expected)


@pytest.mark.parametrize(("arguments", "error"), [
    ({"k": 0, "indices": [0]}, "k must be >= 1, got 0"),
    ({"k": 60, "indices": [0]}, r"k must be <= the number of indexed points \(50\), got 60"),
    ({"k": 3, "indices": [50]}, r"indices must lie in \[0, 50\), got 50"),
    ({"k": 3}, "pass exactly one of indices=... or predecessor=True"),
    ({"k": 3, "predecessor": True, "ranges_per_worker": 0}, "ranges_per_worker must be >= 1, got 0"),
])
def test_a_cluster_query_names_a_wrong_argument_before_reaching_the_scheduler(monkeypatch, arguments, error):
    """A wrong k waited 10 s for an unreachable scheduler, whose error then named nothing else (an outside
    trial): the arguments that need no fit are checked first."""
    def unreached(scheduler):
        raise AssertionError("the scheduler was reached before the arguments were checked")

    monkeypatch.setattr(distributed, "connected", unreached)
    X = np.random.default_rng(3).normal(size=(50, 2))
    k = arguments.pop("k")
    with pytest.raises((InputTypeError, InvalidInputError), match=error):
        distributed.kneighbors(X, k, "tcp://127.0.0.1:1", **arguments)


def _until(condition, seconds: float = 120.0) -> bool:
    """Whether `condition()` came to hold (polled; the bound only ends a wait that would never end)."""
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


@contextlib.contextmanager
def _scheduler_process(tmp_path):
    """A `dask scheduler` in a process of its own (so that the test can kill it): (process, address)."""
    file = tmp_path / "scheduler.json"
    process = subprocess.Popen([sys.executable, "-m", "distributed.cli.dask_scheduler", "--port", "0",
                                "--dashboard-address", ":0", "--scheduler-file", str(file), "--no-show"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        assert _until(lambda: file.exists() and file.stat().st_size > 0), "the scheduler never started"
        yield process, json.loads(file.read_text())["address"]
    finally:
        process.kill()
        process.wait(60)


def test_a_lost_scheduler_fails_the_job_at_once_not_after_dasks_reconnect(tmp_path, monkeypatch):
    """Dask reconnects for the client's timeout (an hour here) and holds every call meanwhile: the job
    waited that long before it failed (10 s with the default). It fails while Dask is still trying."""
    monkeypatch.setattr(distributed, "CONNECT_SECONDS", 3600)
    index = distributed.prepare(np.random.default_rng(1).normal(size=(200, 2)), 3, metric="euclidean",
                                predecessor=True)
    with _scheduler_process(tmp_path) as (process, address), distributed.connected(address) as client:
        process.kill()
        process.wait(60)
        assert _until(lambda: client.status != "running")
        for job in (lambda: distributed.run(index, client),  # lost before the job, or between its copies:
                    lambda: distributed._run_ranges(index, client, [(0, 100), (100, 200)])):
            outcome = distributed._within(120, job, "job")
            assert outcome is not None, "the job waited for Dask's reconnect"
            assert isinstance(outcome[1], ClusterError) and "lost the Dask scheduler" in str(outcome[1])
        assert client.status == "connecting"


class _Reconnecting:
    """A client as a job sees it while Dask reconnects: 'connecting' for `polls` reads of its status, then
    `after` (the connection came back, or Dask gave up)."""

    def __init__(self, polls: int, after: str):
        self.polls, self.after = polls, after
        self.scheduler = SimpleNamespace(address="tcp://127.0.0.1:8786")

    @property
    def status(self) -> str:
        self.polls -= 1
        return "connecting" if self.polls >= 0 else self.after


def test_a_dropped_connection_that_comes_back_is_not_a_lost_scheduler(monkeypatch):
    """Dask marks a client 'connecting' when only its connection drops (a live scheduler took it back in
    0.05 s): the job waits for it, up to RECONNECT_GRACE_SECONDS, instead of calling the cluster lost."""
    monkeypatch.setattr(distributed, "RECONNECT_GRACE_SECONDS", 3600)
    distributed._require_scheduler(_Reconnecting(polls=5, after="running"))
    with pytest.raises(ClusterError, match="lost the Dask scheduler at tcp://127.0.0.1:8786"):
        distributed._require_scheduler(_Reconnecting(polls=5, after="closed"))
    monkeypatch.setattr(distributed, "RECONNECT_GRACE_SECONDS", 0.0)
    with pytest.raises(ClusterError, match="client status: connecting"):
        distributed._require_scheduler(_Reconnecting(polls=10**9, after="running"))


@contextlib.contextmanager
def _listener(greeting: bytes | None):
    """A local TCP server that is no Dask scheduler: it accepts connections and sends `greeting` (or
    nothing), then reads and ignores what comes; its tcp:// address is yielded."""
    server = socket.create_server(("127.0.0.1", 0))
    held = []

    def serve():
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return
            held.append(conn)
            if greeting is not None:
                conn.sendall(greeting)

    threading.Thread(target=serve, daemon=True).start()
    try:
        yield f"tcp://127.0.0.1:{server.getsockname()[1]}"
    finally:
        server.close()
        for conn in held:
            conn.close()


def test_pcct_reports_a_failure_of_the_cluster_in_one_line(tmp_path, monkeypatch, capsys):
    """A range that killed its workers too often (or covertreex missing on them) gave a 28-94 line
    traceback; the API still raises Dask's own error."""
    from distributed import KilledWorker

    from covertreex import cli, vecchia

    def killed(*args, **kwargs):
        raise KilledWorker("_answer_on_worker-0", SimpleNamespace(address="tcp://127.0.0.1:40000"), 0)

    monkeypatch.setattr(vecchia, "vecchia_neighbors", killed)
    np.save(tmp_path / "x.npy", np.random.default_rng(0).normal(size=(20, 2)))
    argv = ["vecchia", str(tmp_path / "x.npy"), "--k", "3", "--scheduler", "tcp://127.0.0.1:8786"]
    assert cli.main(argv) == 1
    err = capsys.readouterr().err
    assert err.startswith("pcct: error: the Dask cluster at tcp://127.0.0.1:8786 failed the job: "
                          "KilledWorker")
    assert err.count("\n") == 1


def test_an_asynchronous_client_is_refused_before_any_work(client):
    """It failed with 'cannot unpack non-iterable coroutine object' and a RuntimeWarning."""
    import asyncio

    from distributed import Client

    async def job():
        async with Client(client.scheduler.address, asynchronous=True) as async_client:
            X = np.random.default_rng(0).normal(size=(30, 2))
            ct.vecchia_neighbors(X, 3, metric="euclidean", ordering="natural", scheduler=async_client)

    with pytest.raises(InvalidInputError, match="^scheduler: an asynchronous Dask Client"):
        asyncio.run(job())


def test_run_refuses_an_asynchronous_or_closed_client_at_once(client):
    """run() took a Client without connected()'s checks: an asynchronous one blocked its event loop for
    90 s and then blamed the workers, a closed one raised an AttributeError."""
    import asyncio

    from distributed import Client

    index = distributed.prepare(np.random.default_rng(0).normal(size=(30, 2)), 3, metric="euclidean",
                                indices=[0, 1, 2])

    async def job():
        async with Client(client.scheduler.address, asynchronous=True) as async_client:
            distributed.run(index, async_client)

    with pytest.raises(InvalidInputError, match="^scheduler: an asynchronous Dask Client"):
        asyncio.run(job())
    closed = Client(client.scheduler.address)
    closed.close()
    with pytest.raises(InvalidInputError, match="^scheduler: the Dask Client is not running"):
        distributed.run(index, closed)
    assert "lost the Dask scheduler during the job" in str(distributed._lost_scheduler(closed))  # no address


def test_residual_parameters_reach_the_residual_problem_of_a_cluster_job(client):
    X = np.random.default_rng(5).normal(size=(120, 2))
    dist, idx = distributed.kneighbors(X, 4, client, metric="residual", predecessor=True, m=16,
                                       kernel="matern52", seed=3)
    local = ct.CoverTree(metric="residual").fit(X, m=16, kernel="matern52", seed=3)
    expected = local.kneighbors(k=4, predecessor=True)
    assert _same_bytes(dist, expected[0]) and _same_bytes(idx, expected[1])


def test_a_connection_that_fails_dasks_handshake_check_is_tried_again():
    """Dask's `assert len(msg) == 1` fails when another client's cancellation shares a new client's first
    batch; the connection is made again (HANDSHAKE_TRIES), and a third failure is raised as it is."""
    made = []

    def flaky_client(address, timeout):
        made.append(address)
        if len(made) < 2:
            raise AssertionError
        return SimpleNamespace(address=address)

    assert distributed._connect(flaky_client, "tcp://127.0.0.1:8786").address == "tcp://127.0.0.1:8786"
    assert len(made) == 2

    def broken_client(address, timeout):
        made.append(address)
        raise AssertionError

    made.clear()
    with pytest.raises(AssertionError):
        distributed._connect(broken_client, "tcp://127.0.0.1:8786")
    assert len(made) == distributed.HANDSHAKE_TRIES


def _connect_to(address: str) -> None:
    with distributed.connected(address):
        pass


def test_a_server_that_never_answers_like_a_scheduler_is_an_error_after_a_bounded_wait(monkeypatch):
    """Dask's own timeout covers reaching the port, not the reply: an HTTP server (or the dashboard's
    port) made pcct wait for good."""
    monkeypatch.setattr(distributed, "CONNECT_SECONDS", 1)
    monkeypatch.setattr(distributed, "HANDSHAKE_SECONDS", 1)
    with _listener(None) as address, \
            pytest.raises(InvalidInputError, match="no reply from the Dask scheduler at .* within 2 s"):
        _connect_to(address)


def test_a_server_that_speaks_first_is_not_taken_for_a_scheduler_out_of_memory():
    with _listener(b"SSH-2.0-OpenSSH_8.9\r\n") as address, \
            pytest.raises(InvalidInputError, match="is not a Dask scheduler"):
        _connect_to(address)


@pytest.mark.parametrize("address", ["http://127.0.0.1:8786", " tcp://127.0.0.1:8786", "inproc://x"])
def test_an_address_dask_refuses_is_an_error_naming_it(address):
    with pytest.raises(InvalidInputError, match="Dask cannot use the scheduler address"):
        _connect_to(address)


def test_the_module_is_an_attribute_of_the_package_without_its_own_import():
    code = "import covertreex; print(covertreex.distributed.kneighbors.__name__)"
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert run.stdout.strip() == "kneighbors", run.stderr


@pytest.fixture
def dask_never_connects(monkeypatch):
    """Dask's Client replaced by one that fails the test: the address must be turned down first."""
    import distributed as dask_distributed

    class NoClient:
        def __init__(self, *args, **kwargs):
            raise AssertionError("Dask was asked to connect")

    monkeypatch.setattr(dask_distributed, "Client", NoClient)


@pytest.mark.parametrize("address", ["nonsense", "tcp://127.0.0.1", "tcp://127.0.0.1:port", "127.0.0.1:99999",
                                     "tcp://127.0.0.1:0", "tcp://:8786"])
def test_an_address_without_a_host_or_a_valid_port_is_an_error_naming_it(dask_never_connects, address):
    expected = f"scheduler must be an address like .*got '{re.escape(address)}'"
    with pytest.raises(InvalidInputError, match=expected), distributed.connected(address):
        pass


def test_answers_come_back_in_range_order_whatever_order_the_ranges_finish_in(client):
    futures = {client.submit(lambda i: (time.sleep(0.1 * (3 - i)), i)[1], i, pure=False): i for i in range(4)}
    parts = [None] * 4
    assert distributed._gather_as_they_finish(client, futures, parts) == {}
    assert parts == [0, 1, 2, 3]


def test_a_failed_range_raises_and_cancels_the_others(client):
    from distributed import Event

    release = Event(client=client)  # the other ranges cannot finish before the failure is seen
    futures = [client.submit(lambda: 1 / 0, pure=False),
               client.submit(lambda event: event.wait(60), release, pure=False),
               client.submit(lambda event: event.wait(60), release, pure=False)]
    try:
        with pytest.raises(ZeroDivisionError):
            distributed._gather_as_they_finish(client, {f: r for r, f in enumerate(futures)}, [None] * 3)
        assert [f.status for f in futures[1:]] == ["cancelled", "cancelled"]
    finally:
        release.set()


def test_a_range_cut_off_from_a_lost_copy_is_reported_lost_and_the_others_kept(client):
    from distributed import Event

    release = Event(client=client)
    [copy] = client.scatter([np.arange(5)], hash=False)
    futures = {client.submit(lambda: "kept", pure=False): 0,
               client.submit(lambda data, event: event.wait(60), copy, release, pure=False): 1}
    try:
        next(iter(futures)).result()
        client.cancel([copy], force=True)  # as Dask does when the last worker holding it dies
        parts = [None, None]
        cancelled = distributed._gather_as_they_finish(client, futures, parts)
    finally:
        release.set()
    assert list(cancelled) == [1] and parts == ["kept", None]


def _scatter_losing(client, monkeypatch, times: int) -> list:
    """Make client.scatter cancel (lose) what it scatters, `times` times (one copy of the index each: a
    job's scatter sends one per worker); return the keys it scattered."""
    scatter, scattered, lock = client.scatter, [], threading.Lock()

    def scatter_then_lose(data, **options):
        [shared] = scatter(data, **options)
        with lock:
            if len(scattered) < times:
                client.cancel([shared], force=True)
            scattered.append(shared.key)
        return [shared]

    monkeypatch.setattr(client, "scatter", scatter_then_lose)
    return scattered


def _workers(client) -> int:
    """The cluster's workers, once all are up: a worker killed by an earlier test restarts, and the
    client's cached scheduler_info() once counted 0 workers right after a job had run on them (CI)."""
    client.wait_for_workers(WORKERS, timeout=60)
    return WORKERS


def _small_index():
    return distributed.prepare(np.random.default_rng(1).normal(size=(200, 2)), 3, metric="euclidean",
                               predecessor=True)


def test_ranges_cut_off_from_a_lost_index_run_again_on_a_fresh_scatter(client, monkeypatch):
    scattered = _scatter_losing(client, monkeypatch, times=_workers(client))
    index = _small_index()
    idx, dist = distributed.run(index, client)
    expected = distributed.answer_range(index, 0, 200)
    assert len(scattered) == 2 * _workers(client)
    assert _same_bytes(idx, expected[0]) and _same_bytes(dist, expected[1])


def test_ranges_of_a_lost_copy_run_again_on_the_copies_left(client, monkeypatch):
    """A worker's copy lost (with the worker, as when it dies): its ranges run on another worker's copy,
    with no fresh scatter."""
    scattered, rounds, scatter = _scatter_losing(client, monkeypatch, times=1), [], distributed._scatter
    monkeypatch.setattr(distributed, "_scatter", lambda *args: rounds.append(1) or scatter(*args))
    index = _small_index()
    idx, dist = distributed.run(index, client, ranges_per_worker=3)
    expected = distributed.answer_range(index, 0, 200)
    assert len(rounds) == 1 and len(scattered) == _workers(client)
    assert _same_bytes(idx, expected[0]) and _same_bytes(dist, expected[1])


def test_the_copies_of_the_index_leave_for_every_worker_at_once(client, monkeypatch):
    """Each worker gets its own copy from this process, all under way together (Dask's broadcast sent one
    copy to one worker, which sent it on to the next, one hop after the other): no copy is sent before
    every worker's has begun."""
    scatter, asked, together = client.scatter, [], threading.Barrier(_workers(client), timeout=30)

    def meeting(data, **options):
        asked.append(tuple(options["workers"]))
        together.wait()
        return scatter(data, **options)

    monkeypatch.setattr(client, "scatter", meeting)
    index = _small_index()
    idx, dist = distributed.run(index, client)
    expected = distributed.answer_range(index, 0, 200)
    assert sorted(asked) == [(worker,) for worker in sorted(client.scheduler_info()["workers"])]
    assert _same_bytes(idx, expected[0]) and _same_bytes(dist, expected[1])


def _scatters_recorded(client, monkeypatch) -> list:
    """Make client.scatter record what it sends (each copy's value), then send it."""
    scatter, sent = client.scatter, []

    def recorded(data, **options):
        sent.append(data[0])
        return scatter(data, **options)

    monkeypatch.setattr(client, "scatter", recorded)
    return sent


@pytest.mark.skipif(not host_shared.SUPPORTED, reason="no memory files on this system")
def test_workers_on_this_machine_map_one_shared_copy_of_the_index(client, monkeypatch):
    """Workers that see this process's memory file get the index's arrays from it (no copy through a
    socket), mapped copy-on-write; the file is closed once the copies landed, and the answer is the same."""
    monkeypatch.setattr(host_shared, "SHARED_ABOVE", 0)
    monkeypatch.setattr(host_shared, "ROOM_TO_SPARE", 0)
    sent = _scatters_recorded(client, monkeypatch)
    index = distributed.prepare(np.random.default_rng(1).normal(size=(200, 2)), 3, metric="residual",
                                predecessor=True, m=16, seed=1)
    copies = distributed._scatter(client, index)
    assert len(copies) == _workers(client) and all(type(value) is host_shared.Published for value in sent)
    assert not any(host_shared.sees(value.path, value.token, value.identity) for value in sent)
    for worker, copy in copies.items():
        held = client.submit(_largest_array_memory, copy, workers=[worker], pure=False)
        assert held.result() == "mmap"
    del copies
    idx, dist = distributed.run(index, client)
    expected = distributed.answer_range(index, 0, 200)
    assert _same_bytes(idx, expected[0]) and _same_bytes(dist, expected[1])


def _largest_array_memory(index) -> str:
    """The kind of object whose memory the largest array of `index`'s space views (run on a worker): V
    for the residual metric (the Euclidean space copies its points when unpickled)."""
    array = max((a for a in index.space.data if isinstance(a, np.ndarray)), key=lambda a: a.nbytes)
    while isinstance(array.base, np.ndarray):
        array = array.base
    return type(memoryview(array.base).obj).__name__ if array.base is not None else "its own"


@pytest.mark.skipif(not host_shared.SUPPORTED, reason="no memory files on this system")
def test_a_worker_that_cannot_see_the_shared_file_gets_its_copy_through_the_socket(client, monkeypatch):
    """As a worker on another machine: told it sees nothing there, it is sent the index itself."""
    monkeypatch.setattr(host_shared, "SHARED_ABOVE", 0)
    monkeypatch.setattr(host_shared, "ROOM_TO_SPARE", 0)
    run = client.run

    def one_blind(function, *args, **options):
        answers = run(function, *args, **options)
        if function is host_shared.sees:
            answers[min(answers)] = False
        return answers

    monkeypatch.setattr(client, "run", one_blind)
    sent, index = _scatters_recorded(client, monkeypatch), _small_index()
    idx, dist = distributed.run(index, client)
    expected = distributed.answer_range(index, 0, 200)
    assert sorted(type(value).__name__ for value in sent) == ["Index", "Published"]
    assert _same_bytes(idx, expected[0]) and _same_bytes(dist, expected[1])


def test_a_client_that_cannot_reach_the_workers_sends_one_copy_through_the_scheduler(client, monkeypatch):
    """A client made with direct_to_workers=False keeps Dask's broadcast through the scheduler: its link,
    likely the slowest, carries one copy, not one per worker."""
    from distributed import Client

    index = _small_index()
    expected = distributed.answer_range(index, 0, 200)
    with Client(client.scheduler.address, direct_to_workers=False) as remote:
        scatter, asked = remote.scatter, []
        monkeypatch.setattr(remote, "scatter", lambda data, **options: asked.append(options) or
                            scatter(data, **options))
        idx, dist = distributed.run(index, remote)
    assert asked == [{"broadcast": True, "hash": False, "direct": False}]
    assert _same_bytes(idx, expected[0]) and _same_bytes(dist, expected[1])


def _hold(dask_worker):
    """Pause a worker for good (its memory monitor would resume it at once)."""
    from distributed.core import Status

    dask_worker.covertreex_pause = dask_worker.memory_manager.memory_pause_fraction
    dask_worker.memory_manager.memory_pause_fraction = False
    dask_worker.status = Status.paused


def _release(dask_worker):
    from distributed.core import Status

    dask_worker.memory_manager.memory_pause_fraction = dask_worker.covertreex_pause
    dask_worker.status = Status.running


def _await_statuses(client, statuses: dict) -> None:
    """Wait until the scheduler reports each worker's status as given: a worker tells it of a change in
    its own time, after client.run has returned."""
    deadline = time.monotonic() + 60
    while {w: info["status"] for w, info in client.scheduler_info()["workers"].items() if w in statuses} \
            != statuses:
        assert time.monotonic() < deadline, "the scheduler never saw the workers' statuses"
        time.sleep(0.01)


def test_a_paused_worker_gets_no_copy_and_a_job_waits_for_a_running_one(client, monkeypatch):
    """A copy sent to a paused worker waited out the client's timeout (30 s); with no worker running (all
    paused, restarting, or a cluster scaling up) the job used up its scatters at once. Now only running
    workers get copies, and the job waits for one to run."""
    workers = sorted(client.scheduler_info()["workers"])
    scatter, asked = client.scatter, []
    monkeypatch.setattr(client, "scatter", lambda data, **options: asked.append(options["workers"]) or
                        scatter(data, **options))
    index = _small_index()
    expected = distributed.answer_range(index, 0, 200)
    client.run(_hold)
    try:
        _await_statuses(client, {worker: "paused" for worker in workers})  # as the scheduler sees them
        resume = threading.Timer(0.5, client.run, args=(_release,), kwargs={"workers": [workers[1]]})
        resume.start()
        idx, dist = distributed.run(index, client)
        resume.join()
    finally:
        client.run(_release)
        _await_statuses(client, dict.fromkeys(workers, "running"))
    assert asked == [[workers[1]]]
    assert _same_bytes(idx, expected[0]) and _same_bytes(dist, expected[1])


def _poisoned(index, start, stop):
    """A range that kills whatever worker runs it: the one from query 0."""
    if start == 0:
        os._exit(1)
    return distributed.answer_range(index, start, stop)


def test_a_range_that_kills_its_workers_is_a_cluster_error_naming_it(monkeypatch):
    """Each run of a lost range is a new Dask task, so Dask's own count of the workers a task killed
    (allowed-failures, then KilledWorker) never added up: the range killed every copy's worker, scatter
    after scatter. The job counts the losses itself, against the scheduler's allowed-failures (set when it
    started), not this process's config (a remote scheduler's may differ)."""
    import dask
    from distributed import Client, LocalCluster

    monkeypatch.setattr(distributed, "_answer_on_worker", _poisoned)
    with dask.config.set({"distributed.scheduler.allowed-failures": 1}):
        cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0")
    with cluster, Client(cluster) as client, \
            dask.config.set({"distributed.scheduler.allowed-failures": 10}), \
            pytest.raises(ClusterError, match=r"queries 0\.\.\d+ were lost with 2 workers .*failures is 1\)"):
        distributed.run(_small_index(), client)


def test_a_range_cancelled_with_its_copy_intact_raises_its_own_cancellation(monkeypatch):
    """In a round where one range is cancelled with its copy intact (not by the job's losses) and another
    is lost with its copy, the error raised is the first range's (the last one seen was raised before)."""
    import distributed as dask_distributed
    from distributed import CancelledError

    class Range:
        def __init__(self, start):
            self.start = start

        def result(self):
            raise CancelledError(f"range from {self.start}")

    copies = {"tcp://a": SimpleNamespace(cancelled=lambda: False),  # ranges 0, 2, ..: their copies intact
              "tcp://b": SimpleNamespace(cancelled=lambda: True)}  # ranges 1, 3, ..: lost with theirs
    client = SimpleNamespace(status="running", loop=None,
                             submit=lambda function, copy, start, stop, **options: Range(start))
    monkeypatch.setattr(distributed, "_scatter", lambda client, index: copies)
    monkeypatch.setattr(dask_distributed, "as_completed", lambda futures, loop: iter(futures))  # in turn
    with pytest.raises(CancelledError, match="range from 0$"):
        distributed._run_ranges(None, client, [(0, 5), (5, 10)])


def test_a_job_whose_index_is_lost_at_every_scatter_is_a_cluster_error(client, monkeypatch):
    """It raised Dask's FutureCancelledError ('already forgotten'), which said neither that every copy had
    died with its worker nor which queries went unanswered (an outside review)."""
    from distributed import CancelledError

    scattered = _scatter_losing(client, monkeypatch, times=distributed.SCATTERS * _workers(client))
    lost = (r"^the queries 0\.\.\d+ and \d+ more ranges were not answered: the last copies of the index died "
            r"with their workers, and the job had made the 3 scatters it may make")
    with pytest.raises(ClusterError, match=lost) as raised:
        distributed.run(_small_index(), client)
    assert isinstance(raised.value.__cause__, CancelledError)
    assert len(scattered) == distributed.SCATTERS * _workers(client)


def test_a_cluster_without_a_running_worker_fails_after_one_wait_not_three(monkeypatch):
    """Each of the job's three scatters waited SCATTER_SECONDS for a worker: 90 s where 30 were said."""
    from distributed import Client, LocalCluster

    waits = []
    running = distributed._running_workers
    monkeypatch.setattr(distributed, "_running_workers", lambda client: waits.append(1) or running(client))
    monkeypatch.setattr(distributed, "SCATTER_SECONDS", 0.5)
    with LocalCluster(n_workers=0, processes=False, dashboard_address=":0") as cluster, Client(cluster) as c:
        at = re.escape(cluster.scheduler_address)
        with pytest.raises(ClusterError, match=f"^no worker of the Dask cluster at {at} was running for 0.5"):
            distributed.run(_small_index(), c)
    assert waits == [1]


def test_a_worker_running_another_covertreex_is_named(client, monkeypatch):
    """Workers with an older covertreex answered silently, or failed with an AttributeError about a
    function of this module (an outside review): every worker must run this process's sources."""
    theirs = distributed.source_fingerprint()
    monkeypatch.setattr(ct, "__version__", "0.0.9")  # this process's fingerprint: the workers keep theirs
    distributed.source_fingerprint.cache_clear()
    try:
        with pytest.raises(ClusterError, match=rf"^2 of the 2 workers of the Dask cluster at \S+ run another "
                                               rf"covertreex than this process \({re.escape(theirs)} at \S+, "
                                               r"0\.0\.9\+[0-9a-f]{16} here\)"):
            distributed.run(_small_index(), client)
    finally:
        distributed.source_fingerprint.cache_clear()


def test_a_worker_that_cannot_run_covertreex_is_a_cluster_error(client, monkeypatch):
    def missing():
        raise ModuleNotFoundError("No module named 'covertreex'")

    monkeypatch.setattr(distributed, "source_fingerprint", missing)  # sent by value: raised on the workers
    refused = (r"^covertreex cannot run on 2 of the 2 workers of the Dask cluster at \S+ "
               r"\(ModuleNotFoundError at \S+: No module named 'covertreex'\); install")
    with pytest.raises(ClusterError, match=refused):
        distributed.run(_small_index(), client)


def test_a_worker_gone_before_the_check_is_left_out_not_blamed(client, monkeypatch):
    """A worker that died between being listed and the check of its covertreex failed the whole job as
    'covertreex cannot run on the workers' (a review): it is left out, as one that dies during its copy."""
    workers = sorted(client.scheduler_info()["workers"])
    run, scatter, copied = client.run, client.scatter, []
    monkeypatch.setattr(client, "run", lambda function, **options: {
        **run(function, **options), workers[0]: OSError("Connection reset by peer")})
    monkeypatch.setattr(client, "scatter", lambda data, **options: copied.append(options["workers"]) or
                        scatter(data, **options))
    index = _small_index()
    idx, dist = distributed.run(index, client)
    expected = distributed.answer_range(index, 0, 200)
    assert copied == [[workers[1]]]
    assert _same_bytes(idx, expected[0]) and _same_bytes(dist, expected[1])


def test_a_job_remembers_its_schedulers_address_for_the_lost_scheduler_error(client):
    """Dask forgets the address of a client it closed on losing the scheduler: a job given an address
    string said 'lost the Dask scheduler during the job', naming none (an outside review)."""
    from distributed import Client

    address = client.scheduler.address
    job_client = Client(address)
    distributed.run(_small_index(), job_client)
    job_client.close()
    assert job_client.scheduler is None  # Dask's closed client
    assert f"lost the Dask scheduler at {address} during" in str(distributed._lost_scheduler(job_client))


def _scatter_failing(client, monkeypatch, failures: list):
    """Make client.scatter fail as Dask does when a worker dies during its copy, once per entry of
    `failures` ("key": a KeyError naming the dead worker; "stall": a copy that never ends, held until
    `release` is set), then copy for real; return (what each call did, in order, and release). A job's
    scatter copies to every worker at once, a copy is given up after 2 s here, and a job may make 6
    scatters: a slow machine's real copy given up costs one more."""
    scatter, calls, release, lock = client.scatter, [], threading.Event(), threading.Lock()

    def failing(data, **options):
        with lock:
            calls.append(failures[len(calls)] if len(calls) < len(failures) else "copied")
            call = calls[-1]
        if call == "key":
            raise KeyError("tcp://127.0.0.1:40000")
        if call == "stall":
            release.wait(60)
            raise OSError("stalled copy released")
        return scatter(data, **options)

    monkeypatch.setattr(client, "scatter", failing)
    monkeypatch.setattr(distributed, "SCATTER_SECONDS", 2.0)
    monkeypatch.setattr(distributed, "SCATTERS", 6)
    return calls, release


@pytest.mark.parametrize("failures", [["key"], ["stall"], ["key", "stall"], ["stall", "key", "key"]])
def test_a_worker_dying_during_the_copies_of_the_index_costs_a_fresh_copy(client, monkeypatch, failures):
    """Dask's scatter fails with a KeyError, or retries a dead worker every 30 s for good: the job runs on
    the copies that landed, or scatters again when none did."""
    workers = _workers(client)  # all up before the job: the copies made follow them
    calls, release = _scatter_failing(client, monkeypatch, failures)
    index = _small_index()
    try:
        idx, dist = distributed.run(index, client)
    finally:
        release.set()
    expected = distributed.answer_range(index, 0, 200)
    scatters = -(-max(len(failures) + 1, workers) // workers)  # until one copy lands
    assert calls[:len(failures)] == failures and calls[len(failures):] == ["copied"] * (
        scatters * workers - len(failures))
    assert _same_bytes(idx, expected[0]) and _same_bytes(dist, expected[1])


def test_a_job_whose_every_copy_of_the_index_fails_is_a_cluster_error(client, monkeypatch):
    failures = ["key"] * 6 * _workers(client)
    calls, _ = _scatter_failing(client, monkeypatch, failures)
    with pytest.raises(ClusterError, match="in 6 tries"):
        distributed.run(_small_index(), client)
    assert calls == failures


def test_a_range_cancelled_with_its_index_intact_is_raised_not_retried(client, monkeypatch):
    from distributed import CancelledError

    submit, scattered = client.submit, _scatter_losing(client, monkeypatch, times=0)

    def submit_then_cancel(*args, **options):
        future = submit(*args, **options)
        client.cancel([future])
        return future

    monkeypatch.setattr(client, "submit", submit_then_cancel)
    with pytest.raises(CancelledError):
        distributed.run(_small_index(), client)
    assert len(scattered) == _workers(client)


@pytest.mark.parametrize("indices", [5, np.int64(5)])
def test_prepare_names_bad_indices_like_a_query(indices):
    """The answer's memory is checked after the indices: len() of a scalar raised a bare TypeError."""
    with pytest.raises(InvalidInputError, match="^indices must be a non-empty 1-D array, got shape"):
        distributed.prepare(np.random.default_rng(1).normal(size=(50, 2)), 3, metric="euclidean",
                            engine="brute", indices=indices)


@pytest.mark.parametrize("ordering", ["maximin", "random"])
def test_a_closed_client_is_refused_before_any_work(client, ordering):
    """Dask answered a closed Client with a KeyError after the ordering's work (or, when the job needed no
    cluster, not at all): now an error naming the scheduler, before anything runs."""
    from distributed import Client

    closed = distributed._connect(Client, client.scheduler.address)  # its handshake race is retried
    closed.close()
    X = np.random.default_rng(3).normal(size=(50, 2))

    def no_work_expected(stage, n):
        raise AssertionError(f"{stage} started with a closed client")

    refused = r"^scheduler: the Dask Client is not running \(status 'closed'\)"
    with pytest.raises(InvalidInputError, match=refused):
        ct.vecchia_neighbors(X, 3, ordering=ordering, scheduler=closed, progress=no_work_expected)
    with pytest.raises(InvalidInputError, match=r"^scheduler: the Dask Client is not running"):
        distributed.kneighbors(X, 3, closed, predecessor=True)


def test_run_takes_an_index_and_a_client_or_an_address_and_names_what_else_it_got():
    """run(index, 'tcp://...') failed with AttributeError: 'str' object has no attribute 'status' (an
    outside user's trial): it now connects to an address as every other entry point does, and refuses
    anything else naming the argument, before any work."""
    index = distributed.prepare(np.random.default_rng(3).normal(size=(50, 2)), 3, metric="euclidean",
                                predecessor=True)
    with pytest.raises(InputTypeError, match=r"^scheduler must be a dask.distributed Client or an address "
                                             r"string, got NoneType"):
        distributed.run(index, None)
    with pytest.raises(InputTypeError, match=r"^index must be what covertreex.distributed.prepare returns, "
                                             r"got str"):
        distributed.run("index", "tcp://127.0.0.1:8786")


def test_predecessor_must_be_a_boolean():
    """'no' is a non-empty string: it ran the predecessor query."""
    X = np.random.default_rng(3).normal(size=(50, 2))
    with pytest.raises(InputTypeError, match=r"^predecessor must be True or False, got str 'no'"):
        distributed.prepare(X, 3, metric="euclidean", predecessor="no")


def test_a_scheduler_lost_during_the_job_is_one_clear_error(tmp_path):
    """A killed scheduler made the job fail as if a worker had died during every copy of the index ('could
    not copy the index ... a worker died during each copy'), or with a closed TCP connection's OSError;
    it is now a ClusterError saying the scheduler was lost. The scheduler is a real `dask scheduler`
    process, killed before the job starts; the job waits for nothing but the client's own reconnect
    attempt (10 s)."""
    scheduler_file = tmp_path / "scheduler.json"
    scheduler = subprocess.Popen(
        [sys.executable, "-m", "distributed.cli.dask_scheduler", "--port", "0", "--dashboard-address", ":0",
         "--scheduler-file", str(scheduler_file), "--no-show"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(600):
            if scheduler_file.exists() and scheduler_file.stat().st_size:
                break
            time.sleep(0.1)
        address = json.loads(scheduler_file.read_text())["address"]
        with distributed.connected(address) as job_client:
            scheduler.kill()
            scheduler.wait(60)
            for _ in range(600):  # the client notices the closed connection (a state, not a duration)
                if job_client.status != "running":
                    break
                time.sleep(0.1)
            with pytest.raises(ClusterError, match=f"lost the Dask scheduler at {re.escape(address)} during "
                                                   "the job"):
                distributed.run(_small_index(), job_client)
    finally:
        scheduler.kill()
        scheduler.wait(60)
