"""Predecessor (Vecchia) problems: eligibility (row i lists only j < i), padding in every comparison, and
engines that were not registered for them."""

import numpy as np
import pytest

from covertreex.errors import InputTypeError, InvalidInputError
from pytest_pcct.parity.assertions import assert_k_safe, assert_knn_equal, assert_predecessors, compare_knn
from pytest_pcct.parity.datasets import make_problem, problem_from_arrays

INF = np.inf

# Points 0, 1, 1 on a line, k = 2: row 0 has no predecessor, row 1 one, row 2 two (point 1 at distance 0).
TRUE = (np.array([[-1, -1], [0, -1], [1, 0]]), np.array([[INF, INF], [1.0, INF], [0.0, 1.0]]))
LINE = problem_from_arrays(np.array([[0.0], [1.0], [1.0]]), predecessor=True)


def test_a_predecessor_problem_queries_every_point_in_order_and_is_keyed_apart():
    plain = make_problem("lattice", n=30, d=2, seed=4, side=3, queries="indices", n_queries=30)
    pred = make_problem("lattice", n=30, d=2, seed=4, side=3, predecessor=True)
    assert pred.predecessor and not plain.predecessor
    assert pred.query_indices.tolist() == list(range(30)) and pred.queries is None and pred.n_queries == 30
    assert pred.data_digest == plain.data_digest and pred.digest != plain.digest
    assert pred.label == "euclidean lattice d=2 n=30 q=30 queries=predecessor seed=4 side=3"
    wrapped = problem_from_arrays(pred.points, predecessor=True)
    assert wrapped.digest == pred.digest and "predecessor" in wrapped.label


@pytest.mark.parametrize(("kwargs", "error", "match"), [
    ({"queries": "points"}, InvalidInputError, "predecessor=True queries every indexed point"),
    ({"n_queries": 5}, InvalidInputError, "queries all n=10 points; got n_queries=5"),
    ({"predecessor": 1}, InputTypeError, "predecessor must be True or False"),
])
def test_make_problem_rejects_predecessor_contradictions(kwargs, error, match):
    with pytest.raises(error, match=match):
        make_problem(**{"n": 10, "d": 2, "predecessor": True, **kwargs})


def test_problem_from_arrays_takes_predecessor_alone():
    with pytest.raises(InvalidInputError, match="or predecessor=True alone"):
        problem_from_arrays(np.zeros((4, 2)), query_indices=[0], predecessor=True)


def test_an_ineligible_index_is_caught_even_where_the_comparison_calls_it_tie_equal():
    first = (TRUE[0][:, :1], TRUE[1][:, :1])  # k = 1
    self_match = (first[0].copy(), first[1])
    self_match[0][2, 0] = 2  # point 2 itself, at the same distance 0 as its duplicate predecessor 1
    assert compare_knn(first, self_match).status == "tie-equal"  # k = 1: a boundary tie group
    assert compare_knn(first, self_match, problem=LINE).status == "different"  # unless checked for truth
    with pytest.raises(AssertionError, match=r"row 2, position 0 \(index 2, distance 0.0\): index 2 is not "
                       r"eligible: row 2 may only list indices 0 <= j < 2"):
        assert_predecessors(self_match)
    assert_predecessors(first)
    assert_predecessors(TRUE)


@pytest.mark.parametrize(("row", "pos", "index", "dist", "match"), [
    (1, 1, 0, 1.0, r"expected padding \(-1, inf\): point 1 has only 1 predecessors"),
    (2, 1, 1, 1.0, "index 1 is listed more than once"),
    (1, 0, 0, INF, "a predecessor must be at a finite distance"),
    (2, 0, 1, -0.0, r"a predecessor must be at a finite distance >= 0 \(its zero is \+0.0, not -0.0\)"),
    (1, 0, 0, -1.0, "a predecessor must be at a finite distance >= 0"),
    (2, 1, -1, INF, "index -1 is not eligible: row 2 may only list indices 0 <= j < 2"),
])
def test_ill_formed_predecessor_rows_are_named(row, pos, index, dist, match):
    indices, distances = TRUE[0].copy(), TRUE[1].copy()
    indices[row, pos], distances[row, pos] = index, dist
    with pytest.raises(AssertionError, match=match):
        assert_predecessors((indices, distances), label="mine")


def test_a_filled_padding_position_differs_in_exact_and_tolerance_mode():
    filled = (TRUE[0].copy(), TRUE[1].copy())
    filled[0][1, 1], filled[1][1, 1] = 2, 1.0  # index 2 is not a predecessor of point 1
    for mode in ("exact", "tolerance"):
        with pytest.raises(AssertionError, match=r"query row 1, position 1: ref pads this position \(-1: "
                           "fewer than k eligible points\\) but got lists an index"):
            assert_knn_equal(TRUE, filled, mode=mode)
    ineligible = (r"query row 1, position 1, index 2: reported distance 1.0, true distance 0.0: the index is "
                  r"not eligible \(predecessor row i may list only indices j < i\)")
    with pytest.raises(AssertionError, match="result: " + ineligible):
        assert_k_safe(filled, TRUE, problem=LINE)
    with pytest.raises(AssertionError, match="oracle: " + ineligible):
        assert_k_safe(TRUE, filled, problem=LINE)


def test_padding_with_a_finite_distance_is_not_tie_equal():
    fake = (TRUE[0].copy(), TRUE[1].copy())
    fake[0][2, 1] = -1  # drops predecessor 0 but keeps its distance
    assert compare_knn(TRUE, fake).status == "different"
    assert compare_knn(TRUE, TRUE).status == "exact"
    assert_k_safe(TRUE, TRUE, problem=LINE)


ENGINES = '''
from pytest_pcct.parity.datasets import problem_from_arrays
from pytest_pcct.parity.engines import Capabilities


def _gold(registry):
    return registry.create("gold")


def leaky_factory(registry):
    """Answers a predecessor problem as plain indexed queries: j >= i (the point itself first) leaks in."""
    def factory():
        gold = _gold(registry)

        def knn(problem, k):
            plain = problem_from_arrays(
                problem.residual if problem.residual is not None else problem.points,
                query_indices=problem.query_indices,
            )
            return gold.knn(plain, k)

        return knn

    return factory


def plain_factory(registry):
    def factory():
        gold = _gold(registry)
        return lambda problem, k: gold.knn(problem, k)

    return factory


def pytest_pcct_register_engines(registry):
    registry.register("leaky", leaky_factory(registry),
                      capabilities=Capabilities(problems=["points", "indices", "predecessor"]))
    registry.register("plain", plain_factory(registry))
'''

TESTS = '''
import pytest

PROBLEM = {"kind": "duplicates", "n": 60, "d": 2, "predecessor": True}


@pytest.mark.parametrize("mode", ["exact", "tolerance"])
def test_pair(pcct_engine_pair, pcct_dataset, mode):
    pcct_engine_pair.check(pcct_dataset(**PROBLEM), 3, mode=mode)


def test_k_safe(pcct_engine, pcct_oracle, pcct_dataset):
    from pytest_pcct.parity.assertions import assert_k_safe

    problem = pcct_dataset(**PROBLEM)
    assert_k_safe(pcct_engine.knn(problem, 3), pcct_oracle.knn(problem, 3))
'''

DATASET = "euclidean duplicates d=2 n=60 q=60 queries=predecessor seed=0"


def test_an_engine_returning_ineligible_indices_is_caught(pytester):
    pytester.makeconftest(ENGINES)
    pytester.makepyfile(TESTS)
    result = pytester.runpytest("--pcct-engines=gold,leaky", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, failed=3)  # gold: k-safe; leaky: both pair modes and k-safety fail
    result.stdout.fnmatch_lines([
        "*_ test_pair[[]gold-leaky-exact[]] _*",
        f"E *AssertionError: engine 'leaky' on {DATASET}, k=3: query row 0, position 0, index 0: reported "
        "distance 0.0, true distance 0.0: the index is not eligible (predecessor row i may list only "
        "indices j < i)",
        "E *rows affected: 60 of 60",
    ])


def test_an_engine_not_registered_for_predecessor_problems_is_skipped_with_the_reason(pytester):
    pytester.makeconftest(ENGINES)
    pytester.makepyfile(TESTS)
    result = pytester.runpytest("--pcct-engines=gold,plain", "-p", "no:cacheprovider", "-rs")
    result.assert_outcomes(passed=1, skipped=3)  # gold's k-safety passes; every use of plain is skipped
    result.stdout.fnmatch_lines([
        "SKIPPED [[]*] *engine 'plain' was not registered for predecessor problems (it supports points, "
        f"indices): {DATASET}",
    ])


def test_an_unsorted_or_float32_predecessor_answer_fails():
    """Both passed before: rows were checked for eligibility and padding only, and distances were
    converted to float64 before any check."""
    indices, distances = TRUE[0].copy(), TRUE[1].copy()
    row = next(r for r in range(len(indices)) if r >= 2 and distances[r, 0] < distances[r, 1])
    indices[row, :2], distances[row, :2] = indices[row, 1::-1], distances[row, 1::-1]
    with pytest.raises(AssertionError, match=f"predecessor query row {row} is not sorted by "
                       r"\(distance, index\) at position 0"):
        assert_predecessors((indices, distances))
    with pytest.raises(AssertionError, match="distances have dtype float32, not float64"):
        assert_predecessors((TRUE[0], TRUE[1].astype(np.float32)))
