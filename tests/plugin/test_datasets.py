"""pytest_pcct.parity.datasets: seeded problems, digests, query modes and argument errors."""

import numpy as np
import pytest

from covertreex import ResidualProblem, residual_problem
from covertreex.errors import DimensionMismatchError, InputTypeError, InvalidInputError, UnknownNameError
from pytest_pcct.parity.datasets import KnnCase, ProblemCache, make_problem, problem_from_arrays


def test_same_recipe_same_digest_other_seed_other_digest():
    a, b = make_problem("clustered", n=50, d=3, seed=2), make_problem("clustered", n=50, d=3, seed=2)
    assert a.digest == b.digest and a.data_digest == b.data_digest
    assert make_problem("clustered", n=50, d=3, seed=3).digest != a.digest
    assert make_problem("clustered", n=50, d=3, seed=2, n_queries=63).data_digest == a.data_digest


def test_point_queries_are_held_out_rows_of_the_same_draw():
    problem = make_problem("lattice", n=30, d=2, seed=4, n_queries=6, side=3)
    assert set(np.unique(problem.queries)) <= {0.0, 1.0, 2.0}
    assert problem.queries.shape == (6, 2) and problem.query_indices is None


def test_index_queries_and_residual_problems():
    problem = make_problem(n=40, d=2, seed=1, metric="residual", n_queries=5, m=6, kernel="matern52")
    expected = np.random.default_rng(2).choice(40, 5, replace=False)
    assert np.array_equal(problem.query_indices, expected)
    assert problem.residual.kernel == "matern52" and problem.residual.V.shape == (40, 6)
    assert np.array_equal(problem.query_points, problem.points[expected])
    assert make_problem(n=40, d=2, seed=1, metric="residual", queries="points", m=6).queries.shape == (64, 2)


def test_cache_returns_one_problem_per_recipe():
    cache = ProblemCache()
    assert cache.get("gaussian", n=20, d=2) is cache.get("gaussian", n=20, d=2)
    assert cache.get("gaussian", n=20, d=2) is not cache.get("gaussian", n=20, d=2, seed=1)
    close = [np.array([0.5, 1.0]), np.array([0.500000001, 1.0])]  # one repr: NumPy prints 8 digits
    first, second = (cache.get(n=20, d=2, metric="residual", m=4, lengthscale=value) for value in close)
    assert first is not second and first.digest != second.digest
    assert cache.get(n=20, d=2, metric="residual", m=4, lengthscale=close[1].copy()) is second


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"metric": "cosine"}, UnknownNameError, "unknown metric 'cosine'"),
        ({"queries": "rows"}, UnknownNameError, "unknown query mode 'rows'"),
        ({"n_queries": 0}, InvalidInputError, "n_queries must be >= 1, got 0"),
        ({"n": -5}, InvalidInputError, "n must be >= 1, got -5"),  # was a problem of 54 points labelled n=-5
        ({"n": 0}, InvalidInputError, "n must be >= 1, got 0"),
        ({"seed": -1}, InvalidInputError, r"seed must be >= 0 \(a NumPy seed\), got -1"),
        ({"kind": "spiral"}, UnknownNameError, "unknown dataset kind 'spiral'"),
    ],
)
def test_bad_recipes_name_the_argument(kwargs, error, message):
    with pytest.raises(error, match=message):
        make_problem(**{"n": 10, "d": 2, **kwargs})


def test_problems_from_arrays_need_exactly_one_query_form():
    points = np.zeros((4, 2))
    with pytest.raises(InvalidInputError, match="exactly one of queries and query_indices"):
        problem_from_arrays(points)
    with pytest.raises(InvalidInputError, match="exactly one of queries and query_indices"):
        problem_from_arrays(points, queries=points, query_indices=[0])
    with pytest.raises(DimensionMismatchError):
        problem_from_arrays(points, queries=np.zeros((1, 3)))
    with pytest.raises(InvalidInputError, match=r"query_indices must lie in \[0, 4\)"):
        problem_from_arrays(points, query_indices=[4])
    problem = problem_from_arrays(points, query_indices=[0, 3])
    assert problem.label == f"euclidean n=4 d=2 q=2 {problem.digest[:12]}"


def test_knn_case_checks_metric_and_k():
    with pytest.raises(UnknownNameError, match="unknown metric 'l1'"):
        KnnCase(points=np.zeros((3, 1)), k=1, query_indices=np.array([0]), metric="l1")
    with pytest.raises(InvalidInputError, match="k must be >= 1, got 0"):
        KnnCase(points=np.zeros((3, 1)), k=0, query_indices=np.array([0]))


def _pair(answer) -> tuple:
    """An adapter's answer (a KnnResult) as (indices, distances)."""
    return answer.indices, answer.distances


@pytest.mark.parametrize(("tolerance", "error", "message"), [
    ((-1, 0), InvalidInputError, "rtol must be finite and >= 0, got -1"),
    ((float("nan"), float("nan")), InvalidInputError, "rtol must be finite and >= 0, got nan"),
    ((0, "1e-9"), InputTypeError, "atol must be a real number, got str"),
    (1e-9, InputTypeError, r"tolerance must be an \(rtol, atol\) pair, got 1e-09"),
])
def test_a_tolerance_handed_to_knn_is_checked_before_it_can_blame_an_engine(tolerance, error, message):
    """knn(tolerance=(-1, 0)) made every distance 'untrue', so a correct engine failed."""
    from pytest_pcct.covertreex_engines import CovertreexEngine
    from pytest_pcct.parity.engines import EngineRegistry

    registry = EngineRegistry()
    brute = CovertreexEngine("brute")
    registry.register("brute", lambda: lambda problem, k: _pair(brute(problem, k)))
    problem = make_problem(n=30, d=2, n_queries=3)
    with pytest.raises(error, match=message):
        registry.create("brute").knn(problem, 2, tolerance=tolerance)
    registry.create("brute").knn(problem, 2, tolerance=(0, 0))
    registry.create("brute").knn(problem, 2, tolerance=np.array([1e-9, 0.0]))  # any (rtol, atol) pair


def test_a_given_v_is_answered_by_the_tree_engines_only_as_a_declared_factor():
    """gold and rust (path tree) refuse a V given without factor_of_kernel=True; the adapter kept one fit
    per data digest, so whether they refused depended on which of the two problems came first."""
    from pytest_pcct.covertreex_engines import CovertreexEngine

    X = np.random.default_rng(3).normal(size=(40, 2))
    V = residual_problem(X, m=8).V
    declared, given = (problem_from_arrays(ResidualProblem.from_arrays(X, V, factor_of_kernel=flag),
                                           query_indices=[0, 5]) for flag in (True, False))
    assert declared.data_digest == given.data_digest
    tree, dense = CovertreexEngine("gold", path="tree"), CovertreexEngine("gold", path="dense")
    expected = _pair(dense(given, 3))
    answer = _pair(tree(declared, 3))
    assert all(np.array_equal(a, b) for a, b in zip(answer, expected, strict=True))
    with pytest.raises(InvalidInputError, match="factor_of_kernel=True"):
        tree(given, 3)
