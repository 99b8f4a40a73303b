"""The problem's bits never depend on how many threads BLAS may use (covertreex.blas)."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import threading

import numpy as np
import pytest
from threadpoolctl import threadpool_info, threadpool_limits

import covertreex as ct
from covertreex.blas import one_thread

# (n, m): a Cholesky factor (m = 200, 512) and a one-chunk solve (n = 150) that OpenBLAS rounded otherwise
# on 2 threads than on 1 before the library fixed the count.
SHAPES = [(150, 12), (3000, 200), (2500, 512)]


def _problem_bytes(n: int, m: int) -> list[bytes]:
    X = np.random.default_rng(n + m).normal(size=(n, 3))
    problem = ct.residual_problem(X, m=m, seed=3)
    return [problem.cholesky_factor.tobytes(), problem.V.tobytes(), problem.p.tobytes()]


def digest() -> str:
    """One hash of every SHAPES problem's bytes."""
    return hashlib.sha256(b"".join(b for shape in SHAPES for b in _problem_bytes(*shape))).hexdigest()


def _blas_threads() -> list[int]:
    return [info["num_threads"] for info in threadpool_info() if info["user_api"] == "blas"]


@pytest.mark.parametrize("n, m", SHAPES)
def test_the_factor_v_and_p_have_the_same_bits_on_one_blas_thread_or_two(n, m):
    with threadpool_limits(limits=1, user_api="blas"):
        one = _problem_bytes(n, m)
    with threadpool_limits(limits=2, user_api="blas"):
        two = _problem_bytes(n, m)
    assert one == two


def test_a_problem_built_on_a_worker_thread_while_another_thread_controls_threadpoolctl_has_the_same_bits():
    """threadpoolctl ignores a limit asked for from a thread other than the one holding its control; the
    library's limit must hold there too."""
    with threadpool_limits(limits=1, user_api="blas"):
        expected = _problem_bytes(3000, 200)
    built = []
    with threadpool_limits(limits=2, user_api="blas"):  # this thread now controls threadpoolctl's limits
        worker = threading.Thread(target=lambda: built.append(_problem_bytes(3000, 200)))
        worker.start()
        worker.join(300)
    assert built == [expected]


def test_a_process_told_to_use_one_blas_thread_builds_the_same_problem():
    """What a Dask LocalCluster does to the processes started after it (OMP_NUM_THREADS=1 and others)."""
    script = ("import sys; sys.path.insert(0, sys.argv[1]); from test_blas import digest; print(digest())")
    env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1")
    done = subprocess.run([sys.executable, "-c", script, os.path.dirname(__file__)], env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == digest()


def test_a_holder_entering_after_another_limit_raised_the_count_sets_one_thread_again():
    with threadpool_limits(limits=2, user_api="blas"):
        before = _blas_threads()
        # someone else's limit, entered during the block, then another holder
        with one_thread(), threadpool_limits(limits=2, user_api="blas"), one_thread():
            inside = _blas_threads()
        assert inside == [1] * len(before)
        assert _blas_threads() == before


def test_overlapping_holders_keep_one_thread_until_the_last_leaves_in_entering_order():
    """Holders leave in the order they entered (threadpoolctl's own contexts, each restoring what it found,
    would restore 2 threads when the first leaves and 1 thread for good when the last does)."""
    entered = [threading.Event() for _ in range(3)]
    leave = [threading.Event() for _ in range(3)]

    def hold(i):
        with one_thread():
            entered[i].set()
            leave[i].wait(60)

    threads = [threading.Thread(target=hold, args=(i,)) for i in range(3)]
    with threadpool_limits(limits=2, user_api="blas"):
        before = _blas_threads()
        assert before == [2] * len(before)
        for thread, done in zip(threads, entered, strict=True):
            thread.start()
            assert done.wait(60)
        for i, thread in enumerate(threads):
            assert _blas_threads() == [1] * len(before)
            leave[i].set()
            thread.join(60)
        assert _blas_threads() == before
