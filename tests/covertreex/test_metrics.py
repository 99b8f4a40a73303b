"""The compiled canonical distances against the NumPy reference and the metric's basic facts."""

from __future__ import annotations

import numpy as np
import pytest

import covertreex as ct
from covertreex import datasets
from covertreex.metrics import MetricSpace
from covertreex.metrics.kernels import distance


def _matrix(space):
    D = space.data
    n = space.n_points
    return np.array([[distance(D, i, -1, D, j) for j in range(n)] for i in range(n)])


def test_euclidean_matches_reference_bitwise(euclidean_reference):
    X = datasets.gaussian(60, 5, 0)
    got = _matrix(MetricSpace.euclidean(X))
    assert np.array_equal(got, euclidean_reference(X, X))


@pytest.mark.parametrize("kernel", ["rbf", "matern52"])
def test_residual_matches_reference(kernel, residual_reference):
    problem = ct.residual_problem(
        datasets.gaussian(60, 3, 1), kernel=kernel, lengthscale=[0.5, 1, 2], m=20, seed=1
    )
    space = MetricSpace.residual(problem)
    got = _matrix(space)
    ref = residual_reference(
        problem.X,
        problem.V,
        problem.p,
        problem.X,
        problem.V,
        problem.p,
        kernel,
        problem.lengthscale,
        problem.variance,
    )
    np.testing.assert_allclose(got**2, ref**2, rtol=0, atol=1e-9)
    assert np.array_equal(got, got.T), "the canonical distance is symmetric bit for bit"
    assert (got >= 0).all() and (got <= 1).all()


def test_distance_to_itself_is_exactly_zero_by_index():
    problem = ct.residual_problem(datasets.gaussian(30, 2, 2), m=30, seed=2)  # m = n: p clamps to 1e-9
    D = MetricSpace.residual(problem).data
    assert all(distance(D, i, i, D, i) == 0.0 for i in range(30))


def test_residual_distance_hand_computed_case():
    X = np.array([[0.0], [1.0], [3.0]])
    V = np.array([[0.5], [0.25], [0.0]])
    problem = ct.ResidualProblem.from_arrays(X, V, kernel="rbf", lengthscale=2.0, variance=1.0)
    D = MetricSpace.residual(problem).data
    k01 = np.exp(-(0.5**2) / 2.0)
    rho = (k01 - 0.5 * 0.25) / np.sqrt((1 - 0.25) * (1 - 0.0625))
    assert distance(D, 0, 0, D, 1) == pytest.approx(np.sqrt(1 - rho), abs=1e-15)


def test_triangle_inequality_holds_on_the_residual_metric():
    problem = ct.residual_problem(datasets.gaussian(50, 2, 3), m=10, seed=3)
    d = _matrix(MetricSpace.residual(problem))
    slack = 1e-9
    assert (d[:, None, :] <= d[:, :, None] + d[None, :, :] + slack).all()
