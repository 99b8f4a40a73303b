"""The calibration kernel: a fixed dense computation every benchmark's time is measured against.

Its cost follows the same machine traits as the engines' inner loops (scalar float64 arithmetic and
sqrt over a small cache-resident array, one thread), so the ratio benchmark / calibration cancels most of
a machine's (or a busy neighbour's) effect on both.
"""

import math
import time

import numpy as np
import pytest
from numba import njit

pytestmark = pytest.mark.benchmark(timer=time.process_time)  # see benchmarks/conftest.py

POINTS = np.random.default_rng(0).normal(size=(768, 3))


@njit(cache=True)
def pairwise_distance_sum(points):
    """Sum of the Euclidean distances of every ordered pair, in a fixed order."""
    total = 0.0
    n, d = points.shape
    for i in range(n):
        for j in range(n):
            r2 = 0.0
            for t in range(d):
                z = points[i, t] - points[j, t]
                r2 += z * z
            total += math.sqrt(r2)
    return total


@pytest.mark.pcct_calibration
def test_calibration(benchmark):
    expected = pairwise_distance_sum(POINTS)  # compiles before timing
    assert benchmark(pairwise_distance_sum, POINTS) == expected
