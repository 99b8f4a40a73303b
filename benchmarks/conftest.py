"""Fixtures of the gated benchmark suite (run it by naming it: ``pytest benchmarks ...``; see README).

Every workload is small enough to time in well under a second per round, pinned to one thread, and
seeded so its dataset digest never changes. Every file times with ``time.process_time`` (the CPU time of
this process, all threads) rather than wall time: on a shared 2-core machine other processes' load
inflates wall time by 2x and more, but not the CPU time our own work takes. A regression that adds
waiting rather than computing is therefore not this suite's to catch.
An engine that is selected but not available here is an error at setup, never a skip.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pytest

import covertreex as ct
from covertreex import datasets
from covertreex.metrics.data import kernel_matrix
from covertreex.metrics.kernels import forward_substitution_rows
from covertreex.residual import JITTER, inducing_indices

DEFAULT_ENGINES = "gold,rust"
BUILD_COUNTERS_SCHEMA = ("covertreex.build_counters", 1)
"""Name and version of the build counter set recorded below (bump the version if it changes)."""


def pytest_addoption(parser):
    parser.addoption(
        "--pcct-bench-engines", default=DEFAULT_ENGINES, metavar="A,B",
        help=f"engines the benchmark suite times (default {DEFAULT_ENGINES}); an unavailable one is an error",
    )


def _chosen_engines(config) -> list[str]:
    return [n.strip() for n in config.getoption("pcct_bench_engines").split(",") if n.strip()]


def pytest_generate_tests(metafunc):
    """Every default engine is generated and the ones not chosen are deselected (not left ungenerated): the
    gate then knows their benchmarks still exist and keeps their baselines."""
    if "bench_engine" in metafunc.fixturenames:
        chosen = _chosen_engines(metafunc.config)
        names = list(dict.fromkeys([*DEFAULT_ENGINES.split(","), *chosen]))
        metafunc.parametrize("bench_engine", names, indirect=True, scope="session")


def pytest_collection_modifyitems(config, items):
    chosen = set(_chosen_engines(config))
    left_out = [item for item in items
                if getattr(item, "callspec", None) and item.callspec.params.get("bench_engine", None)
                not in (None, *chosen)]
    if left_out:
        config.hook.pytest_deselected(items=left_out)
        items[:] = [item for item in items if item not in left_out]


@pytest.fixture(scope="session")
def bench_engine(request) -> str:
    """The engine under benchmark; raises (an error, not a skip) when it is unknown or not built here."""
    ct.get_engine(request.param)
    return request.param


@dataclass(frozen=True)
class Workload:
    """Data to index and the query call to time on it."""

    metric: str
    data: object = field(repr=False)
    query: dict = field(repr=False)


def _cholesky_in_order(A: np.ndarray) -> np.ndarray:
    """The lower Cholesky factor of A in plain Python floats: every sum in index order, one rounding per
    operation, so the same bits on every machine (LAPACK's are its CPU-specific kernels')."""
    m = A.shape[0]
    L = [[0.0] * m for _ in range(m)]
    for j in range(m):
        for i in range(j, m):
            s = float(A[i, j])
            for t in range(j):
                s -= L[i][t] * L[j][t]
            L[i][j] = math.sqrt(s) if i == j else s / L[j][j]
    return np.array(L)


def portable_residual_problem(X: np.ndarray, m: int, seed: int) -> ct.ResidualProblem:
    """DESIGN section 3's V and p (RBF, unit lengthscale and variance) computed in a fixed operation order,
    so the dataset digest, and every counter the gate compares against it, is the same on every machine.
    ``ct.residual_problem`` solves with the machine's BLAS: the same recipe, whose last bits depend on the
    CPU the BLAS library picked its kernels for (a baseline recorded on an AVX2 machine did not match an
    AVX-512 one)."""
    U = X[inducing_indices(X.shape[0], m, seed)]
    ls = np.ones(X.shape[1])
    L = _cholesky_in_order(kernel_matrix(U, U, "rbf", ls, 1.0) + JITTER * np.eye(len(U)))
    V = forward_substitution_rows(L, kernel_matrix(X, U, "rbf", ls, 1.0))
    return ct.ResidualProblem.from_arrays(X, V, kernel="rbf", lengthscale=1.0, variance=1.0,
                                          factor_of_kernel=True)


@pytest.fixture(scope="session")
def workloads() -> dict[str, Workload]:
    """Euclidean: 4,096 Gaussian points in 3-d, 256 new query points. Residual: 2,048 points, RBF, m=32
    (V in a fixed operation order: :func:`portable_residual_problem`), 128 indexed queries. k = 10 for
    both."""
    points = datasets.make("gaussian", 4096, 3, seed=0).points
    queries = datasets.make("gaussian", 256, 3, seed=1).points
    residual = portable_residual_problem(datasets.make("gaussian", 2048, 3, seed=0).points, m=32, seed=0)
    return {
        "euclidean": Workload("euclidean", points, {"queries": queries, "k": 10}),
        "residual": Workload("residual", residual, {"indices": np.arange(0, 2048, 16), "k": 10}),
    }


@pytest.fixture
def fitted(bench_engine):
    """fitted(workload, path): a single-threaded CoverTree of the engine under benchmark on that path
    ('tree' builds the tree in fit), fitted once (which also compiles any Numba code, so nothing timed
    afterwards includes compilation)."""

    def fit(workload: Workload, path: str = "tree") -> ct.CoverTree:
        model = ct.CoverTree(engine=bench_engine, metric=workload.metric, threads=1, path=path)
        return model.fit(workload.data)

    return fit


@pytest.fixture
def pcct_build_counters(pcct_gate):
    """Record a fitted CoverTree's build work counters with the gate."""

    def record(fitted: ct.CoverTree) -> None:
        name, version = BUILD_COUNTERS_SCHEMA
        pcct_gate.record(
            {"distance_evaluations": fitted.tree.build_evaluations},
            engine=fitted.engine.name, dataset_digest=fitted.space.digest,
            config_digest=fitted.config.digest(), schema=name, schema_version=version,
        )

    return record
