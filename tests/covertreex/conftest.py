"""Fixtures for the covertreex tests: the brute-force oracle and a bitwise comparison."""

from __future__ import annotations

import numpy as np
import pytest

import covertreex as ct


def _check_same(result, oracle, context=""):
    """Identical indices and bitwise-identical distances, with a message naming the first difference."""
    got_d, got_i = result
    ref_d, ref_i = oracle
    assert got_i.shape == ref_i.shape, f"{context}: shape {got_i.shape} != {ref_i.shape}"
    same = (got_i == ref_i) & (got_d.view(np.int64) == ref_d.view(np.int64))
    if not same.all():
        row, pos = np.argwhere(~same)[0]
        raise AssertionError(
            f"{context}: row {row} position {pos}: got ({got_i[row, pos]}, {got_d[row, pos]!r}) "
            f"expected ({ref_i[row, pos]}, {ref_d[row, pos]!r})"
        )


@pytest.fixture
def check_same():
    """Assert two (distances, indices) results (as kneighbors returns them) are identical, distances bit
    for bit."""
    return _check_same


@pytest.fixture
def oracle():
    """Brute-force answers for the same data, metric and query arguments."""

    def run(metric, data, k, **query):
        return ct.CoverTree(engine="brute", metric=metric, brute_variant="direct").fit(data).kneighbors(
            k=k, **query
        )

    return run


@pytest.fixture
def distance_matrix():
    """All pairwise canonical distances (n, n) of points or a residual problem, from the brute oracle."""

    def run(metric, data):
        model = ct.CoverTree(engine="brute", metric=metric, brute_variant="direct").fit(data)
        n = model.space.n_points
        result = model.query(indices=np.arange(n), k=n)
        matrix = np.empty((n, n))
        np.put_along_axis(matrix, result.indices, result.distances, axis=1)
        return matrix

    return run
