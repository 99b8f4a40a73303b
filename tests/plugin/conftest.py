"""Fixtures for the pytest-pcct plugin's own tests (run through ``pytester``).

The modules below are imported here so that in-process pytester runs find them already loaded: pytester
drops modules a run imported, and re-importing covertreex would reload its Numba kernels every run.
"""

import importlib

import pytest

for _module in ("covertreex.engines.gold", "covertreex.engines.brute", "covertreex.engines.rust",
                "pytest_pcct.covertreex_engines", "pytest_pcct.session"):
    importlib.import_module(_module)

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

