"""The Dask overhead of the Vecchia neighbours: one process against a 2-worker LocalCluster, alternating.

X = ``default_rng(42).normal(size=(N, 3))``, RBF, m = 512 inducing points (seed 42), k = 50, natural
ordering: every point's predecessors, found by ``CoverTree.fit(problem).query(predecessor=True)`` in this
process (2 threads) and by ``covertreex.distributed.run`` on a LocalCluster of 2 worker processes with 1
thread each (started once, workers importing covertreex before the clock starts; the client's fit, the
scatter, the tasks and the gather are timed). Runs alternate so that both sides see the same machine load.
One untimed round of both sides runs first (a cold first single-process run made the cluster look faster).
Each line: wall seconds, CPU seconds (this process -- client and the LocalCluster's scheduler -- plus the
workers' during the run), whether the answers are byte-identical, and the load average.

The last line gives every run's cluster / one-process wall ratio and their median (this project's host
drifts by +-20% within minutes: one run says little). Each cluster line also gives, from
``distributed.get_task_stream``, the wall time before the first range
started (the fit, the scatter and the dispatch) and after the last one ended (the answers' transfer).

The header names the kernel's transparent-huge-page modes and NUMPY_MADVISE_HUGEPAGE: NumPy asks for huge
pages on buffers of 4 MiB or more, which fault in slowly on this project's virtual machine (about 0.25 s per
128 MB against 0.04 s for small pages). An index array larger than Dask's 64 MiB shards travels in pieces
below that size (covertreex/small_frames.py), so at N = 32,768 the setting should no longer change the
overhead (docs/benchmarks.md, "The index in small pieces").

With ``--scatter GAP`` it times the index's scatter alone (``client.scatter([index], broadcast=True,
direct=True)``, as ``distributed.run`` makes it), ``--repeats`` times, GAP seconds apart (not with ``--job``).

With ``--job ORDERING`` it times the user's whole call instead, ``vecchia_neighbors(X, 50, ordering=ORDERING,
m=512, seed=42)`` without and with ``scheduler=client`` (V, the ordering and the neighbours; a maximin
ordering fused with the neighbours runs in this process either way), and the cluster's call a second time
with every copy of the index sent through a socket, as to workers on other machines (without
covertreex.host_shared's memory file).

    python benchmarks/dask_overhead.py --n 32768 --repeats 2
    NUMPY_MADVISE_HUGEPAGE=0 python benchmarks/dask_overhead.py --n 32768 --repeats 2
    python benchmarks/dask_overhead.py --n 32768 --repeats 2 --job maximin
    python benchmarks/dask_overhead.py --n 8192 --repeats 4 --scatter 6
"""

from __future__ import annotations

import argparse
import importlib
import os
import resource
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np
from bench_args import header, positive_int, require

import covertreex as ct
from covertreex import distributed, host_shared

K, M, SEED = 50, 512, 42
THP = Path("/sys/kernel/mm/transparent_hugepage")


def huge_page_setting() -> str:
    """The kernel's THP `enabled` and `defrag` modes (the bracketed word of each) and NumPy's switch."""
    modes = []
    for name in ("enabled", "defrag"):
        try:
            text = (THP / name).read_text()
        except OSError:
            text = "[unknown]"
        modes.append(f"THP {name} {text[text.find('[') + 1:text.find(']')]}")
    return ", ".join(modes) + f"; NUMPY_MADVISE_HUGEPAGE {os.environ.get('NUMPY_MADVISE_HUGEPAGE', 'unset')}"


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def time_the_job(X: np.ndarray, ordering: str, client) -> tuple[float, float]:
    """One whole vecchia_neighbors call in this process, then the same call given the cluster, its
    workers mapping the index from one memory file (covertreex.host_shared), then given the cluster with every
    copy through a socket: each cluster run's wall time over the process's."""
    results, walls = [], []
    for scheduler, shared in ((None, True), (client, True), (client, False)):
        workers = client.run(cpu_seconds)
        start, cpu = time.perf_counter(), cpu_seconds()
        with sharing(shared):
            results.append(ct.vecchia_neighbors(X, K, ordering=ordering, m=M, seed=SEED, scheduler=scheduler))
        wall, cpu = time.perf_counter() - start, cpu_seconds() - cpu
        walls.append(wall)
        after = client.run(cpu_seconds)
        on_workers = sum(after[w] - workers[w] for w in workers)
        where = "one process " if scheduler is None else "cluster, mapped" if shared else "cluster, TCP"
        print(f"job {ordering}, {where} wall {wall:6.2f} s  CPU {cpu + on_workers:6.2f} s (workers "
              f"{on_workers:.2f})  load {os.getloadavg()[0]:.1f}", flush=True)
    local = results[0]
    same = all(getattr(local, name).tobytes() == getattr(remote, name).tobytes()
               for remote in results[1:] for name in ("ordering", "neighbors", "distances"))
    print(f"identical {same}", flush=True)
    return walls[1] / walls[0], walls[2] / walls[0]


@contextmanager
def sharing(shared: bool):
    """Workers on this machine map the index from a memory file (the default), or get it through a socket."""
    default = host_shared.SHARED_ABOVE
    host_shared.SHARED_ABOVE = default if shared else 1 << 62
    try:
        yield
    finally:
        host_shared.SHARED_ABOVE = default


def time_the_scatter(problem, client, repeats: int, gap: float) -> None:
    """The scatter of the Vecchia job's index to every worker, `repeats` times, `gap` seconds apart."""
    index = distributed.prepare(problem, K, metric="residual", predecessor=True)
    seconds = []
    for _ in range(repeats):
        time.sleep(gap)
        start = time.perf_counter()
        [shared] = client.scatter([index], broadcast=True, hash=False, direct=True)
        seconds.append(time.perf_counter() - start)
        del shared
    print("scatter s " + " ".join(f"{s:.3f}" for s in seconds), flush=True)


def warm_up(X: np.ndarray, problem, ordering: str | None, client) -> None:
    """One untimed round of the single-process and the cluster job: a cold first run (0.74 s against
    0.62 s warm at N 32,768) would make the cluster look faster."""
    if ordering is not None:
        for scheduler in (None, client):
            ct.vecchia_neighbors(X, K, ordering=ordering, m=M, seed=SEED, scheduler=scheduler)
        return
    ct.CoverTree(metric="residual", telemetry=False).fit(problem).query(k=K, predecessor=True)
    distributed.run(distributed.prepare(problem, K, metric="residual", predecessor=True), client)


def range_span(stream) -> tuple[float, float]:
    """(first range's start, last range's end), epoch seconds, from a task stream's records."""
    spans = [(s["start"], s["stop"]) for task in stream.data for s in task["startstops"]
             if s["action"] == "compute"]
    return min(a for a, _ in spans), max(b for _, b in spans)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=positive_int, default=32768)
    parser.add_argument("--repeats", type=positive_int, default=2)
    mode = parser.add_mutually_exclusive_group()  # the scatter alone times the natural-ordering index
    mode.add_argument("--job", default=None, metavar="ORDERING",
                      help="time vecchia_neighbors with this ordering, without and with the cluster")
    mode.add_argument("--scatter", type=float, default=None, metavar="GAP",
                      help="time the index's scatter alone, GAP seconds apart")
    args = parser.parse_args()
    require(parser, "distributed", "dask", "the LocalCluster")
    from distributed import Client, LocalCluster, get_task_stream

    header(huge_page_setting())
    X = np.random.default_rng(SEED).normal(size=(args.n, 3))
    problem = None if args.job is not None else ct.residual_problem(X, m=M, seed=SEED)
    with LocalCluster(n_workers=2, threads_per_worker=1, dashboard_address=None) as cluster, \
            Client(cluster) as client:
        client.run(importlib.import_module, "covertreex.distributed")
        if args.scatter is not None:
            time_the_scatter(problem, client, args.repeats, args.scatter)
            return
        warm_up(X, problem, args.job, client)
        ratios, socket_ratios = [], []
        for _ in range(args.repeats):
            if args.job is not None:
                mapped, socket = time_the_job(X, args.job, client)
                ratios.append(mapped)
                socket_ratios.append(socket)
                continue
            start, cpu = time.perf_counter(), cpu_seconds()
            local = ct.CoverTree(metric="residual", telemetry=False).fit(problem).query(k=K, predecessor=True)
            local_wall, cpu = time.perf_counter() - start, cpu_seconds() - cpu
            print(f"one process  wall {local_wall:6.2f} s  CPU {cpu:6.2f} s  load {os.getloadavg()[0]:.1f}",
                  flush=True)
            workers = client.run(cpu_seconds)
            start, cpu, began = time.perf_counter(), cpu_seconds(), time.time()
            with get_task_stream(client) as stream:
                index = distributed.prepare(problem, K, metric="residual", predecessor=True)
                indices, distances = distributed.run(index, client)
            wall, cpu, ended = time.perf_counter() - start, cpu_seconds() - cpu, time.time()
            first, last = range_span(stream)
            after = client.run(cpu_seconds)
            on_workers = sum(after[w] - workers[w] for w in workers)
            same = np.array_equal(indices, local.indices) and distances.tobytes() == local.distances.tobytes()
            print(f"LocalCluster wall {wall:6.2f} s  CPU {cpu + on_workers:6.2f} s (client and scheduler "
                  f"{cpu:.2f}, workers {on_workers:.2f})  identical {same}  before the first range "
                  f"{first - began:.2f} s, after the last {ended - last:.2f} s  "
                  f"load {os.getloadavg()[0]:.1f}", flush=True)
            ratios.append(wall / local_wall)
        print(f"cluster / one process: {' '.join(f'{r:.2f}x' for r in ratios)}; median "
              f"{float(np.median(ratios)):.2f}x of {len(ratios)} runs", flush=True)
        if socket_ratios:
            print(f"cluster with every copy through a socket / one process: "
                  f"{' '.join(f'{r:.2f}x' for r in socket_ratios)}; median "
                  f"{float(np.median(socket_ratios)):.2f}x", flush=True)


if __name__ == "__main__":
    main()
