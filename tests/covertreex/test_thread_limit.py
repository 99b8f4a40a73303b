"""`threads` bounds every parallel step of a call, not only the engine's: V's construction, the split
screen, the maximin pass and the neighbours of `vecchia_neighbors(threads=...)` and of a CoverTree fitted on
raw points; and it never changes an answer."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import covertreex as ct
from covertreex.engines import engine_available
from covertreex.errors import InputTypeError, InvalidInputError
from covertreex.resources import available_cpus, limited_threads, thread_limit, worker_threads

ENGINES = ["auto", "gold"] + (["rust"] if engine_available("rust") else [])


def test_a_limit_inside_another_keeps_the_smaller():
    assert limited_threads() is None and worker_threads() == available_cpus()
    with thread_limit(3):
        assert limited_threads() == 3
        with thread_limit(None):
            assert limited_threads() == 3
        with thread_limit(5):
            assert limited_threads() == 3
        with thread_limit(1):
            assert limited_threads() == 1 and worker_threads() == 1
        assert limited_threads() == 3 and worker_threads() == min(3, available_cpus())
    assert limited_threads() is None


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("metric, ordering", [("residual", "maximin"), ("euclidean", "maximin"),
                                              ("residual", "random"), ("euclidean", "maximin-residual")])
def test_the_job_on_one_thread_is_the_job_on_all(engine, metric, ordering):
    X = np.random.default_rng(5).uniform(size=(700, 2))
    X[350:360] = X[0]  # duplicates: ties broken by position
    options = {"lengthscale": 0.2, "m": 48} if "residual" in (metric, ordering.removeprefix("maximin-")) \
        else {}
    one = ct.vecchia_neighbors(X, 12, metric=metric, ordering=ordering, engine=engine, threads=1, **options)
    every = ct.vecchia_neighbors(X, 12, metric=metric, ordering=ordering, engine=engine, **options)
    for name in ("ordering", "neighbors", "distances"):
        assert getattr(one, name).tobytes() == getattr(every, name).tobytes(), name
    assert one.maximin_evaluations == every.maximin_evaluations


@pytest.mark.parametrize("threads, error", [(0, InvalidInputError), (10**9, InvalidInputError),
                                            (True, InputTypeError), (1.5, InputTypeError),
                                            ("2", InputTypeError)])
def test_a_bad_thread_count_is_refused_before_any_work(threads, error):
    with pytest.raises(error, match="threads"):
        ct.vecchia_neighbors(np.zeros((10, 2)), 3, threads=threads)


POOLED_MODULES = ("split_screen", "triangular_solve", "maximin_dense", "digest")
"""The modules that run work on Python thread pools (each GEMM or solve on one BLAS thread)."""


def _pools_started(monkeypatch, job) -> list[int]:
    """The max_workers of every thread pool those modules start while `job()` runs."""
    import importlib
    from concurrent.futures import ThreadPoolExecutor

    started = []

    class Recorded(ThreadPoolExecutor):
        def __init__(self, max_workers=None, *args, **kwargs):
            started.append(max_workers)
            super().__init__(max_workers, *args, **kwargs)

    for name in POOLED_MODULES:
        monkeypatch.setattr(importlib.import_module(f"covertreex.{name}"), "ThreadPoolExecutor", Recorded)
    job()
    return started


def _pooled_jobs(threads):
    """A residual fit whose V is solved in chunks, the gold maximin pass, and the split screen's build."""
    X = np.random.default_rng(2).uniform(size=(5000, 2))
    ct.CoverTree(metric="residual", threads=threads).fit(X, lengthscale=0.1, m=32)
    ct.vecchia_neighbors(X[:1500], 5, lengthscale=0.1, m=32, engine="gold", threads=threads)
    if engine_available("rust"):
        model = ct.CoverTree(engine="rust", metric="residual", mode="perf", path="dense",
                             dense_screen="split", threads=threads)
        model.fit(X[:3000], lengthscale=0.1, m=32).query(k=5, predecessor=True)


def test_the_python_pools_take_the_limit(monkeypatch):
    """The triangular solve's, the split screen's and the gold maximin pass's pools of threads each ran on
    every CPU whatever `threads` said; with no limit they do (where there are 2 CPUs to see it)."""
    assert set(_pools_started(monkeypatch, lambda: _pooled_jobs(1))) <= {1}
    if available_cpus() >= 2:
        assert max(_pools_started(monkeypatch, lambda: _pooled_jobs(None))) >= 2


WORKERS_LEFT = textwrap.dedent("""
    import os, sys
    import numpy as np
    import scipy.linalg  # loads SciPy's own OpenBLAS, whose idle threads start with it: not ours
    import covertreex as ct

    def threads_now():
        return len(os.listdir("/proc/self/task"))

    X = np.random.default_rng(0).uniform(size=(3000, 2))
    limit = None if sys.argv[1] == "none" else int(sys.argv[1])
    before = threads_now()
    ct.vecchia_neighbors(X, 10, lengthscale=0.1, m=64, threads=limit)
    ct.vecchia_neighbors(X, 10, metric="euclidean", threads=limit)
    model = ct.CoverTree(metric="residual", threads=limit).fit(X, lengthscale=0.1, m=64)
    model.query(X[:50] + 0.001, k=5)  # projects the rows through the inducing points
    print(threads_now() - before)
""")


@pytest.mark.skipif(not sys.platform.startswith("linux") or not engine_available("rust"),
                    reason="counts the threads of /proc/self/task that the rust engine's pools leave")
def test_one_thread_leaves_one_worker_behind():
    """Rayon's pools outlive their calls: a job limited to one thread may leave the one-worker pool it ran
    on, never rayon's global pool of a worker per CPU (its kernel rows and row gathers once ran there). A
    job without a limit leaves the global pool: the count can tell them apart where there are 2 CPUs."""
    def left(limit: str) -> int:
        done = subprocess.run([sys.executable, "-c", WORKERS_LEFT, limit], capture_output=True, text=True,
                              timeout=300, env={k: v for k, v in os.environ.items()
                                                if k != "RAYON_NUM_THREADS"})
        assert done.returncode == 0, done.stderr
        return int(done.stdout)

    assert left("1") <= 1
    if available_cpus() >= 2:
        assert left("none") >= 2


def test_the_brute_engines_products_take_one_blas_thread_under_a_thread_count(monkeypatch):
    """OpenBLAS ran brute's screening products on every core under threads=1 (an outside trial: 1.26
    cores busy); with no count it keeps its own."""
    from threadpoolctl import threadpool_info

    from covertreex.engines import brute

    seen = []
    screen = brute.gemm_query

    def spied(*args, **kwargs):
        seen.append(max(info["num_threads"] for info in threadpool_info() if info["user_api"] == "blas"))
        return screen(*args, **kwargs)

    monkeypatch.setattr(brute, "gemm_query", spied)
    X = np.random.default_rng(4).normal(size=(400, 3))
    one = ct.CoverTree(engine="brute", brute_variant="gemm", threads=1).fit(X).query(k=4, predecessor=True)
    every = ct.CoverTree(engine="brute", brute_variant="gemm").fit(X).query(k=4, predecessor=True)
    assert seen[0] == 1 and one.indices.tobytes() == every.indices.tobytes()
