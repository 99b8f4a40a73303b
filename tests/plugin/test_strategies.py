"""pytest_pcct.parity.strategies and profiles: validation naming the argument, what the draws look like."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from covertreex.errors import InputTypeError, InvalidInputError, UnknownNameError
from pytest_pcct.parity import strategies
from pytest_pcct.parity.profiles import PROFILES, register_profiles, suite_settings
from pytest_pcct.parity.strategies import clusters, duplicated, knn_cases, lattices, near_ties, point_sets

QUICK = settings(settings.get_profile("ci"), max_examples=25, deadline=None)


def test_all_is_explicit_and_complete():
    assert sorted(strategies.__all__) == sorted(
        ["FAMILIES", "KnnCase", "clusters", "duplicated", "knn_cases", "lattices", "near_ties", "point_sets"]
    )
    assert all(hasattr(strategies, name) for name in strategies.__all__)


@pytest.mark.parametrize(
    ("call", "error", "message"),
    [
        (lambda: knn_cases(k=0), InvalidInputError, "k must be in [1, 10000], got 0"),
        (lambda: knn_cases(metric="manhattan"), UnknownNameError, "unknown metric 'manhattan'"),
        (lambda: knn_cases(family="spiral"), UnknownNameError, "unknown point family 'spiral'; known point "
         "families: clustered, duplicates, lattice, near_ties, uniform"),
        (lambda: knn_cases(points=np.zeros((3, 2))), InputTypeError, "points must be a strategy"),
        (lambda: knn_cases(lengthscale=-1.0), InvalidInputError, "lengthscale must be finite and in"),
        (lambda: lattices(side="3"), InputTypeError, "side must be an integer, got str '3'"),
        (lambda: point_sets(n=0), InvalidInputError, "n must be in [1, 10000], got 0"),
        (lambda: point_sets(bound=float("inf")), InvalidInputError, "bound must be finite"),
        (lambda: point_sets(bound=1e-300), InvalidInputError,
         "bound must be finite and in [3.4395525670743494e-136, "),  # 2**-450: below, every point is 0
        (lambda: clusters(spread=True), InputTypeError, "spread must be a real number, got bool"),
        (lambda: near_ties(ulps=-1), InvalidInputError, "ulps must be in [0, 1048576], got -1"),
    ],
)
def test_values_are_validated_eagerly_naming_the_argument(call, error, message):
    with pytest.raises(error) as info:
        call()
    assert message in str(info.value)


def test_drawn_values_are_validated_naming_the_argument():
    @QUICK
    @given(case=knn_cases(k=st.just(-2)))
    def draw(case):
        pass

    with pytest.raises(InvalidInputError, match=r"k must be in \[1, 10000\], got -2"):
        draw()


@QUICK
@given(case=knn_cases())
def test_cases_are_finite_and_consistent(case):
    assert case.points.dtype == np.float64 and np.isfinite(case.points).all()
    assert 1 <= case.k <= 10  # k beyond the points too: answers pad
    assert (case.queries is None) != (case.query_indices is None) and not case.predecessor
    problem = case.problem
    assert problem.metric == case.metric and problem.label == f"generated {case.metric} {case.family}"
    assert problem.query_points.shape == (problem.n_queries, problem.n_dims)


@QUICK
@given(points=lattices(side=3), ties=near_ties(side=3, ulps=2), dups=duplicated(n=30, unique=4))
def test_families_have_the_shape_they_promise(points, ties, dups):
    assert set(np.unique(points)) <= {0.0, 1.0, 2.0}
    assert np.abs(ties - np.round(ties)).max(initial=0.0) <= 2 * np.spacing(2.0)
    assert len(dups) == 30 and len(np.unique(dups, axis=0)) <= 4


@QUICK
@given(case=knn_cases(points=point_sets(n=5, d=2), queries="indices", k=9, n_queries=3))
def test_custom_points_and_k_beyond_them(case):
    """k was capped at the points, so no drawn case made an engine pad a row."""
    assert case.family == "custom" and case.points.shape == (5, 2) and case.k == 9
    assert case.query_indices.shape == (3,)


@QUICK
@given(case=knn_cases(queries="predecessor", n=st.integers(1, 12)))
def test_predecessor_cases_query_every_point_among_its_predecessors(case):
    problem = case.problem
    assert case.predecessor and problem.predecessor and problem.kind == "predecessor"
    assert case.queries is None and case.query_indices is None
    assert problem.n_queries == problem.n_points == len(case.points)
    assert "predecessor" in problem.label and "predecessor=True" in repr(case)


@QUICK
@given(case=knn_cases(queries="points", n=1))
def test_a_single_row_with_point_queries_is_queried_by_its_coordinates(case):
    """One drawn row was held out from nothing, so the case fell back to indexed queries: a problem kind an
    engine registered for point queries only had not asked for, which the plugin then skipped."""
    assert case.points.shape[0] == 1 and case.query_indices is None
    assert np.array_equal(case.queries, case.points) and case.problem.kind == "points"


def test_profiles_derive_from_ci_without_deadline():
    register_profiles()
    ci = settings.get_profile("ci")
    for name, examples in PROFILES.items():
        profile = settings.get_profile(name)
        assert (profile.max_examples, profile.deadline) == (examples, None)
        assert (profile.derandomize, profile.database) == (ci.derandomize, None)
    before = settings.get_current_profile_name()
    try:
        settings.load_profile("default")
        assert suite_settings().max_examples == PROFILES["pcct"]
        settings.load_profile("pcct-thorough")  # a profile the user chose wins
        assert suite_settings() is settings.default
    finally:
        settings.load_profile(before)
    with pytest.raises(UnknownNameError, match="unknown pcct profile 'fast'"):
        suite_settings("fast")
