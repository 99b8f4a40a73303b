"""Fixtures for the covertreex tests: the brute-force oracle, a bitwise comparison, and plain NumPy versions
of the canonical distances written from the formulas of DESIGN section 3 (an implementation independent
of the compiled ones, so tests can check those against it; NumPy's vectorised ``exp`` may differ from
libm's by an ulp, so residual comparisons take a stated tolerance)."""

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


def _euclidean_matrix(A: np.ndarray, B: np.ndarray) -> np.ndarray:
    """d(A_i, B_j) for every pair: sqrt of the squared differences summed over dimensions in order."""
    sq = np.zeros((A.shape[0], B.shape[0]))
    for t in range(A.shape[1]):
        diff = A[:, t][:, None] - B[:, t][None, :]
        sq += diff * diff
    return np.sqrt(sq)


def _residual_matrix(Xa, Va, pa, Xb, Vb, pb, kernel, lengthscale, variance) -> np.ndarray:
    """d = sqrt(max(0, 1 - min(1, |rho|))), rho = (k(x, y) - V_x . V_y) / sqrt(p_x p_y)."""
    lengthscale = np.broadcast_to(np.asarray(lengthscale, dtype=float), (Xa.shape[1],))
    r2 = np.zeros((Xa.shape[0], Xb.shape[0]))
    for t in range(Xa.shape[1]):
        z = (Xa[:, t][:, None] - Xb[:, t][None, :]) / lengthscale[t]
        r2 += z * z
    if kernel == "rbf":
        k = variance * np.exp(-r2 / 2.0)
    else:
        a = np.sqrt(5.0 * r2)
        k = variance * (1.0 + a + a * a / 3.0) * np.exp(-a)
    dot = np.zeros_like(r2)
    for c in range(Va.shape[1]):
        dot += Va[:, c][:, None] * Vb[:, c][None, :]
    rho = (k - dot) / np.sqrt(pa[:, None] * pb[None, :])
    return np.sqrt(np.maximum(0.0, 1.0 - np.minimum(1.0, np.abs(rho))))


@pytest.fixture
def euclidean_reference():
    """The NumPy Euclidean distance matrix ``(A, B) -> d``, written from the formula."""
    return _euclidean_matrix


@pytest.fixture
def residual_reference():
    """The NumPy residual-correlation distance matrix ``(Xa, Va, pa, Xb, Vb, pb, kernel, lengthscale,
    variance) -> d``, written from the formula."""
    return _residual_matrix
