"""Fixtures for the pytest-pcct plugin's own tests (run through ``pytester``)."""

import pytest

import covertreex
import covertreex.errors
from pytest_pcct.covertreex_engines import CovertreexEngine
from pytest_pcct.datasets import make_problem


@pytest.fixture(scope="session", autouse=True)
def _engines_loaded_outside_pytester():
    """Run every engine once in this process before any in-process pytester run.

    pytester drops the modules a run imported. Numba imports modules of its own the first time it loads a
    compiled kernel, so if that happened inside a run, the next run would import them again and Numba
    would fail with "duplicate registration". Loading here keeps them imported for the whole session.
    """
    problems = [make_problem(n=20, d=2, n_queries=2),
                make_problem(n=20, d=2, n_queries=2, metric="residual", m=4)]
    for name in covertreex.engine_names():
        try:
            covertreex.get_engine(name)
        except covertreex.errors.InvalidInputError:  # not built here; tests that select it will say so
            continue
        for problem in problems:
            CovertreexEngine(name)(problem, 2)

WRONG_ENGINES = '''
import numpy as np

from pytest_pcct.engines import EngineUnavailable


def _wrapping(registry, base, change):
    def factory():
        engine = registry.create(base)

        def knn(problem, k):
            answer = engine.knn(problem, k)
            return change(answer.indices.copy(), answer.distances.copy())

        return knn

    return factory


def one_ulp(idx, dist):
    """Row 0, position 1 (0 when k = 1): the distance one ulp larger."""
    position = min(1, dist.shape[1] - 1)
    dist[0, position] = np.nextafter(dist[0, position], np.inf)
    return idx, dist


def swap_neighbour(idx, dist):
    """Row 0, position 0: an index that is not among the true neighbours, same distance."""
    taken = set(idx[0].tolist())
    idx[0, 0] = next(j for j in range(idx.max() + 2) if j not in taken)
    return idx, dist


def reverse_ties(idx, dist):
    """Within every run of exactly equal distances, the indices in reverse order (still correct)."""
    for r in range(len(idx)):
        start = 0
        for end in range(1, idx.shape[1] + 1):
            if end == idx.shape[1] or dist[r, end] != dist[r, start]:
                idx[r, start:end] = idx[r, start:end][::-1].copy()
                start = end
    return idx, dist


def unavailable():
    raise EngineUnavailable("it needs a GPU")


def pytest_pcct_register_engines(registry):
    registry.register("ulp", _wrapping(registry, "gold", one_ulp))
    registry.register("swap", _wrapping(registry, "gold", swap_neighbour))
    registry.register("tieflip", _wrapping(registry, "gold", reverse_ties))
    registry.register("gpu", unavailable)
'''


@pytest.fixture
def wrong_engines(pytester):
    """A conftest registering deliberately wrong engines (ulp, swap), a tie-reordering one and an
    unavailable one (gpu)."""
    pytester.makeconftest(WRONG_ENGINES)
    return pytester

