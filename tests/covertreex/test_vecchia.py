"""vecchia_neighbors: the exact predecessors in the chosen ordering, its layouts, and its input errors."""

from __future__ import annotations

import itertools
import re
import warnings

import numpy as np
import pytest

import covertreex as ct
from covertreex.errors import InputTypeError, InvalidInputError, KOutOfRangeError, UnknownNameError
from covertreex.vecchia import FARTHEST_MAX_WIDTH, TransposedPointsWarning, permuted_problem
from covertreex.vecchia_orderings import needs_residual_problem

RESIDUAL = {"m": 6, "seed": 2, "lengthscale": 1.5}


def predecessors_by_brute_force(matrix: np.ndarray, order: np.ndarray, k: int):
    """Row i: the k positions j < i nearest to position i by (distance, position), padded (-1, inf)."""
    n = order.shape[0]
    idx = np.full((n, k), -1, dtype=np.int64)
    dist = np.full((n, k), np.inf)
    for i in range(n):
        row = matrix[order[i], order[:i]]
        best = np.lexsort((np.arange(i), row))[:k]
        idx[i, : best.size] = best
        dist[i, : best.size] = row[best]
    return idx, dist


def _tied_points():
    grid = np.array(list(itertools.product(range(4), range(4))), dtype=float)
    return np.concatenate([grid, grid[[1, 1, 5]], np.random.default_rng(0).normal(size=(12, 2))])


def _natural_data(metric, X):
    return ct.residual_problem(X, **RESIDUAL) if metric == "residual" else X


@pytest.mark.parametrize("metric", ["euclidean", "residual"])
@pytest.mark.parametrize("ordering", ["natural", "random", "maximin", "maximin-euclidean",
                                      "maximin-residual", "given"])
@pytest.mark.parametrize("engine", ["auto", "gold", "rust", "brute"])
def test_neighbors_equal_brute_force_on_the_ordering(metric, ordering, engine, distance_matrix,
                                                     check_same):
    X = _tied_points()
    given = np.random.default_rng(9).permutation(X.shape[0])
    residual = RESIDUAL if needs_residual_problem(metric, ordering) else (
        {"seed": RESIDUAL["seed"]} if ordering == "random" else {})
    result = ct.vecchia_neighbors(X, 4, metric=metric, ordering=given if ordering == "given" else ordering,
                                  engine=engine, **residual)
    if ordering == "given":
        np.testing.assert_array_equal(result.ordering, given)
    assert sorted(result.ordering) == list(range(X.shape[0]))
    expected = predecessors_by_brute_force(distance_matrix(metric, _natural_data(metric, X)),
                                           result.ordering, 4)
    check_same((result.neighbors, result.distances), expected, f"{metric} {ordering} {engine}")


def test_orderings_are_what_their_names_say():
    X = np.random.default_rng(1).normal(size=(40, 2))
    natural = ct.vecchia_neighbors(X, 3, metric="euclidean", ordering="natural")
    np.testing.assert_array_equal(natural.ordering, np.arange(40))
    rand = ct.vecchia_neighbors(X, 3, metric="euclidean", ordering="random", seed=5)
    np.testing.assert_array_equal(rand.ordering, np.random.default_rng(5).permutation(40))
    maximin = ct.vecchia_neighbors(X, 3, metric="euclidean", ordering="maximin")
    assert maximin.maximin_evaluations > 0 and natural.maximin_evaluations is None
    assert maximin.ordering[0] == np.argmin(((X - X.mean(axis=0)) ** 2).sum(axis=1))


def test_the_natural_order_shares_the_problem_and_any_other_copies_it():
    problem = ct.residual_problem(_tied_points(), **RESIDUAL)
    assert permuted_problem(problem, np.arange(problem.n_points)) is problem
    swapped = np.arange(problem.n_points)
    swapped[[0, -1]] = swapped[[-1, 0]]
    moved = permuted_problem(problem, swapped)
    assert moved is not problem and moved.V.tobytes() == problem.V[swapped].tobytes()
    assert not moved.V.flags.writeable and moved.V.flags.c_contiguous


def test_permuted_residual_problem_keeps_every_distance(distance_matrix):
    problem = ct.residual_problem(_tied_points(), **RESIDUAL)
    order = np.random.default_rng(4).permutation(problem.n_points)
    moved = permuted_problem(problem, order)
    before, after = distance_matrix("residual", problem), distance_matrix("residual", moved)
    np.testing.assert_array_equal(after.view(np.int64), before[np.ix_(order, order)].view(np.int64))
    np.testing.assert_array_equal(moved.X[moved.inducing], problem.X[problem.inducing])
    # New points project the same through both (same inducing points, same Cholesky factor); a data
    # point projects to its V row up to rounding (V is one batched solve, a projection solves row by row).
    Q = problem.X[:3] + 0.25
    np.testing.assert_array_equal(moved.project(Q)[0].view(np.int64), problem.project(Q)[0].view(np.int64))
    np.testing.assert_allclose(moved.project(problem.X[:3])[0], problem.V[:3], rtol=0, atol=1e-12)


def test_layouts_input_rows_and_gpgp():
    X = np.random.default_rng(2).normal(size=(12, 2))
    result = ct.vecchia_neighbors(X, 3, metric="euclidean", ordering="random", seed=3)
    assert result.neighbors.shape == result.distances.shape == (12, 3) and result.k == 3
    assert (result.neighbors[0] == -1).all() and (result.neighbors[2, 2] == -1)
    rows = result.input_rows()
    mask = result.neighbors >= 0
    np.testing.assert_array_equal(rows[mask], result.ordering[result.neighbors[mask]])
    assert (rows[~mask] == -1).all()
    position = np.argsort(result.ordering)  # the docstring's way to X[j]'s neighbours: points before it
    for j in range(12):
        listed = rows[position[j]][rows[position[j]] >= 0]
        assert (position[listed] < position[j]).all() and len(listed) == min(position[j], 3)
        brute = np.argsort(np.linalg.norm(X[result.ordering[:position[j]]] - X[j], axis=1), kind="stable")[:3]
        np.testing.assert_array_equal(listed, result.ordering[:position[j]][brute])
    gpgp = result.to_gpgp()
    assert gpgp.shape == (12, 4)
    np.testing.assert_array_equal(gpgp[:, 0], np.arange(1, 13))
    np.testing.assert_array_equal(gpgp[:, 1:][mask], result.neighbors[mask] + 1)
    assert np.isnan(gpgp[:, 1:][~mask]).all() and np.isnan(gpgp[0, 1:]).all()


@pytest.mark.parametrize("ordering, error, words", [
    (np.arange(5), InvalidInputError, "permutation of range(6), got 5 entries"),
    (np.array([0, 1, 2, 3, 4, 6]), InvalidInputError, "entry 5 is 6"),
    (np.array([0, 1, 2, 2, 4, 5]), InvalidInputError,
     "entry 3 repeats the value 2 of entry 2 (the value 3 appears nowhere)"),
    (np.array([0, 5, 5, 4, 4, 1]), InvalidInputError,  # the first repeated entry, not the smallest value
     "entry 2 repeats the value 5 of entry 1 (the value 2 appears nowhere)"),
    (np.arange(6.0) + 0.5, InputTypeError, "ordering must hold whole numbers, a permutation of range(6); "
     "entry 0 is 0.5"),
    (np.array([0.0, 1, 2, np.nan, 4, 5]), InputTypeError, "entry 3 is nan"),
    (np.array([0.0, 1, 2, 3, 4, 6]), InvalidInputError, "entry 5 is 6.0"),
    (np.arange(6).reshape(2, 3), InputTypeError, "1-D array of integers"),
    (np.arange(6).astype("m8[s]"), InputTypeError, "1-D array of integers"),  # an IndexError traceback
    (np.arange(6).astype(bool), InputTypeError, "1-D array of integers"),
    ("maximal", UnknownNameError, "unknown ordering 'maximal'"),
])
def test_bad_orderings_are_named(ordering, error, words):
    with pytest.raises(error, match=re.escape(words)):
        ct.vecchia_neighbors(np.zeros((6, 2)), 2, metric="euclidean", ordering=ordering)


def test_an_ordering_of_whole_floats_is_the_permutation_they_hold():
    """R's numeric vectors are doubles (an R user's order(x) - 1): refused as float64 in Python and in a
    .npy file, where the same numbers in a .csv were taken (an outside GP trial)."""
    X = np.random.default_rng(8).normal(size=(40, 2))
    order = np.random.default_rng(9).permutation(40)
    as_ints = ct.vecchia_neighbors(X, 3, metric="euclidean", ordering=order)
    as_floats = ct.vecchia_neighbors(X, 3, metric="euclidean", ordering=order.astype(np.float64))
    assert as_floats.ordering.dtype == np.int64
    for field in ("ordering", "neighbors", "distances"):
        assert getattr(as_floats, field).tobytes() == getattr(as_ints, field).tobytes()


def test_bad_arguments_fail_before_work():
    X = np.random.default_rng(0).normal(size=(8, 2))
    with pytest.raises(UnknownNameError, match="metric"):
        ct.vecchia_neighbors(X, 2, metric="cosine")
    with pytest.raises(UnknownNameError, match="engine"):
        ct.vecchia_neighbors(X, 2, engine="fast")
    with pytest.raises(KOutOfRangeError, match="k must be >= 1"):
        ct.vecchia_neighbors(X, 0)
    with pytest.raises(InvalidInputError, match="X must be 2-D"):
        ct.vecchia_neighbors(X[0], 2)
    with pytest.raises(InputTypeError, match="vecchia_neighbors takes the points X and builds the residual "
                       "problem of the ordering it chooses"):  # was a "dtype object" message
        ct.vecchia_neighbors(ct.residual_problem(X, m=4), 2)



@pytest.mark.parametrize(("metric", "ordering", "k", "engine"), [
    ("residual", "maximin", 4, "auto"), ("residual", "maximin", 20, "gold"),
    ("residual", "natural", 4, "gold"),
    ("euclidean", "maximin-residual", 4, "auto"), ("euclidean", "maximin", 4, "auto"),
])
def test_the_job_hands_back_the_residual_problem_it_built(metric, ordering, k, engine):
    """A VIF user needs V and the inducing points besides the neighbours, and had to build V again (the
    split's routes: tests/covertreex/test_maximin.py, test_vecchia_job_on_the_split_...)."""
    X = _tied_points()
    result = ct.vecchia_neighbors(X, k, metric=metric, ordering=ordering, engine=engine,
                                  **(RESIDUAL if needs_residual_problem(metric, ordering) else {}))
    if not needs_residual_problem(metric, ordering):
        assert result.problem is None
        return
    again = ct.residual_problem(X, **RESIDUAL)
    for name in ("X", "V", "p", "inducing"):
        assert np.array_equal(getattr(result.problem, name), getattr(again, name)), name
    assert np.array_equal(result.problem.permuted(result.ordering).V, again.V[result.ordering])


@pytest.mark.parametrize("ordering", ["random", "maximin", "natural"])
@pytest.mark.parametrize(("seed", "error", "words"), [
    (-1, InvalidInputError, "seed must be >= 0"), (1.5, InputTypeError, "seed must be an integer, got float"),
    ("3", InputTypeError, "seed must be an integer, got str"), (None, InputTypeError, "got NoneType"),
    (True, InputTypeError, "got bool"),
])
def test_a_bad_seed_is_refused_for_every_metric_and_ordering(ordering, seed, error, words):
    """Checked only where the residual problem used it: a Euclidean random ordering took seed=None (a fresh
    ordering each call) or failed inside NumPy without naming seed."""
    with pytest.raises(error, match=re.escape(words)):
        ct.vecchia_neighbors(np.eye(4), 2, metric="euclidean", ordering=ordering, seed=seed)


@pytest.mark.parametrize("ordering", ["natural", "maximin", "maximin-euclidean", [3, 2, 1, 0]])
def test_a_seed_given_to_a_job_that_draws_nothing_at_random_is_refused(ordering):
    """A Euclidean job not ordered at random ran with any seed, ignored, where the CLI refuses --seed."""
    words = ("seed: only for ordering 'random' or a residual problem's inducing points (the metric is "
             "'euclidean'")
    with pytest.raises(InvalidInputError, match=re.escape(words)):
        ct.vecchia_neighbors(np.eye(4), 2, metric="euclidean", ordering=ordering, seed=0)
    unseeded = ct.vecchia_neighbors(np.eye(4), 2, metric="euclidean", ordering=ordering)
    assert unseeded.neighbors.shape == (4, 2)
    for name, options in (("random", {}), ("maximin-residual", {"m": 2})):  # jobs that draw: theirs
        seeded = ct.vecchia_neighbors(np.eye(4), 2, metric="euclidean", ordering=name, seed=7, **options)
        assert seeded.neighbors.shape == (4, 2)
    not_given = ct.vecchia_neighbors(np.eye(4), 2, metric="euclidean", ordering="random")
    assert np.array_equal(not_given.ordering, np.random.default_rng(0).permutation(4))


@pytest.mark.parametrize("option", [{"kernel": "matern52"}, {"lengthscale": 2.0}, {"variance": 3.0},
                                    {"m": 8}, {"m": 0}, {"kernel": "x"}])
def test_residual_options_given_to_a_job_without_the_residual_problem_are_refused(option):
    """They were dropped without a word (m=0, kernel='x' included), where the CLI refuses them."""
    name = next(iter(option))
    words = f"{name}: only for the residual metric or ordering 'maximin-residual' (the metric is 'euclidean'"
    with pytest.raises(InvalidInputError, match=re.escape(words)):
        ct.vecchia_neighbors(np.eye(4), 2, metric="euclidean", ordering="maximin", **option)
    if option not in ({"m": 0}, {"kernel": "x"}):  # a valid option is taken where the job uses it
        result = ct.vecchia_neighbors(np.eye(4), 2, metric="euclidean", ordering="maximin-residual", **option)
        assert result.neighbors.shape == (4, 2)


def test_a_fused_pass_reports_ordering_and_neighbours_as_it_goes():
    """The fused pass finds the rows while it orders: both stages advance round by round (the rows of a
    round's points one round behind, as they are written), so a progress bar over both reaches its end
    with the pass instead of halfway (an outside trial's bar stopped at 49%, then vanished)."""
    if not ct.engine_available("rust"):
        pytest.skip("engine rust not available")
    single = []  # one point takes no round of the pass: its stages are reported all the same
    ct.vecchia_neighbors(np.zeros((1, 1)), 1, metric="euclidean", engine="rust",
                         progress=lambda *call: single.append(call))
    assert ("ordering", 1) in single and single[-1] == ("neighbours", 1)
    X = np.random.default_rng(2).uniform(size=(3000, FARTHEST_MAX_WIDTH + 1))  # fused beyond the boxes' width
    heard = []
    ct.vecchia_neighbors(X, 5, metric="euclidean", engine="rust", progress=lambda *call: heard.append(call))
    ordering = [n for stage, n in heard if stage == "ordering"]
    neighbours = [n for stage, n in heard if stage == "neighbours"]
    assert ordering[-1] == neighbours[-1] == 3000 and len(ordering) > 3
    assert ordering == sorted(ordering) and neighbours == sorted(neighbours)
    assert any(0 < n < 3000 for n in neighbours)  # rows were reported before the ordering ended
    placed = 0
    for stage, n in heard:
        placed = n if stage == "ordering" else placed
        assert stage == "ordering" or n <= placed


@pytest.mark.parametrize("metric, ordering", [("euclidean", "random"), ("residual", "natural"),
                                              ("euclidean", "maximin-residual")])
def test_the_neighbours_of_an_ordering_found_first_report_as_they_go(metric, ordering, monkeypatch):
    """The predecessor query after an ordering reported 0, then N: the command line's bar sat at half for
    the whole query (an outside trial). Heard of, it runs in ranges of equal cost, reporting each, and
    answers as one call does, byte for byte."""
    from covertreex import vecchia

    monkeypatch.setattr(vecchia, "PAIRS_PER_PROGRESS_RANGE", 1000)  # ranges from 3,000 points, not 32,768
    X = np.random.default_rng(5).uniform(size=(3000, 2))
    options = {"m": 16} if needs_residual_problem(metric, ordering) else {}
    heard = []
    told = ct.vecchia_neighbors(X, 6, metric=metric, ordering=ordering,
                                progress=lambda *call: heard.append(call), **options)
    quiet = ct.vecchia_neighbors(X, 6, metric=metric, ordering=ordering, **options)
    for field in ("ordering", "neighbors", "distances"):
        assert getattr(told, field).tobytes() == getattr(quiet, field).tobytes(), field
    answered = [n for stage, n in heard if stage == "neighbours"]
    assert answered[0] == 0 and answered[-1] == 3000 and answered == sorted(answered)
    assert len(set(answered)) > 10  # the ranges, not 0 then N


@pytest.mark.parametrize("metric", ["residual", "euclidean"])
def test_engine_none_is_the_job_of_auto(metric):
    """None is CoverTree's default engine, 'auto'; the job compared it by name and took the tree walk's
    maximin with 24x the evaluations (an outside review): the same path now, so the same evaluations."""
    X = np.random.default_rng(0).normal(size=(1500, 3))
    options = {"m": 32, "seed": 1} if metric == "residual" else {}
    auto = ct.vecchia_neighbors(X, 8, metric=metric, ordering="maximin", engine="auto", **options)
    none = ct.vecchia_neighbors(X, 8, metric=metric, ordering="maximin", engine=None, **options)
    assert none.maximin_evaluations == auto.maximin_evaluations
    for name in ("ordering", "neighbors", "distances"):
        assert getattr(none, name).tobytes() == getattr(auto, name).tobytes(), name


def test_progress_must_be_callable_and_sparse_points_are_named():
    X = np.random.default_rng(0).normal(size=(8, 2))
    with pytest.raises(InputTypeError, match=r"^progress must be None or a callable \(stage, n\), got bool"):
        ct.vecchia_neighbors(X, 2, progress=True)
    sparse = pytest.importorskip("scipy.sparse")
    with pytest.raises(InputTypeError, match=r"^X must be a dense array of numbers, got a scipy.sparse csr_"):
        ct.vecchia_neighbors(sparse.csr_matrix(X), 2)

def test_k_beyond_n_pads_every_row():
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # three points of three coordinates: not taken for X transposed
        result = ct.vecchia_neighbors(np.eye(3), 5, metric="euclidean", ordering="natural")
    assert result.neighbors.shape == (3, 5)
    np.testing.assert_array_equal(result.neighbors[2], [0, 1, -1, -1, -1])


@pytest.mark.parametrize("metric", ["euclidean", "residual"])
def test_points_given_as_columns_are_warned_of(metric):
    """A (d, N) array of N points as columns (R's layout) is a job on d points, every row padded: warned
    of, the answer still exact for X's rows; fewer neighbours than rows, or as many coordinates, is not."""
    columns = np.random.default_rng(3).normal(size=(4, 50))
    options = {"m": 2, "lengthscale": 10.0} if metric == "residual" else {}
    with pytest.warns(TransposedPointsWarning, match=r"^X has 4 rows of 50 coordinates each and k = 4 is"):
        result = ct.vecchia_neighbors(columns, 4, metric=metric, **options)
    assert result.neighbors.shape == (4, 4) and (result.neighbors[:, -1] == -1).all()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ct.vecchia_neighbors(columns, 3, metric=metric, **options)
        ct.vecchia_neighbors(columns[:, :4], 4, metric=metric, **options)
        ct.vecchia_neighbors(columns[:1], 4, metric=metric, **options)  # one point: one row, plainly padded


def test_permuting_a_problem_built_from_a_given_v():
    problem = ct.residual_problem(_tied_points(), **RESIDUAL)
    given = ct.ResidualProblem.from_arrays(problem.X, problem.V, lengthscale=RESIDUAL["lengthscale"])
    order = np.random.default_rng(6).permutation(problem.n_points)
    moved = permuted_problem(given, order)
    assert moved.inducing is None and moved.V.tobytes() == given.V[order].tobytes()


def test_an_unknown_engine_lists_auto_among_the_known_ones():
    text = re.escape("unknown engine 'cuda'; known engines: auto, brute")
    with pytest.raises(UnknownNameError, match=text):
        ct.vecchia_neighbors(np.zeros((6, 2)), 2, metric="euclidean", engine="cuda")


@pytest.mark.parametrize("ordering", ["natural", "maximin"])
def test_neighbours_without_any_residual_correlation_are_warned_of(ordering):
    """Points in [0, 1000]^2 under the default lengthscale 1 (an outside user's trial): 97.8% of the
    distances were exactly 1.0, so the neighbours (and maximin) were ties broken by position, without a
    word. The same points on their own scale, or in Euclidean distance, are not warned of."""
    from covertreex.vecchia import UncorrelatedNeighboursWarning

    X = np.random.default_rng(0).uniform(0, 1000, size=(600, 2))
    with pytest.warns(UncorrelatedNeighboursWarning, match=r"^9\d\.\d% of the points are at residual "
                      r"distance 1\.0 from even their nearest predecessor, .*is the lengthscale \(1\) on the "
                      r"scale of the points' spacing\?$"):
        ct.vecchia_neighbors(X, 5, m=32, ordering=ordering)
    line = np.arange(300.0)[:, None]  # well scaled, but k = 20 reaches past the correlated neighbours
    with warnings.catch_warnings():
        warnings.simplefilter("error", UncorrelatedNeighboursWarning)
        ct.vecchia_neighbors(X, 5, m=32, ordering=ordering, lengthscale=100.0)
        ct.vecchia_neighbors(X, 5, metric="euclidean", ordering=ordering)
        far = ct.vecchia_neighbors(line, 20, m=16, ordering=ordering)
    assert (far.distances[20:] == 1.0).mean() > 0.5  # what the review saw warned of, counting every k


@pytest.mark.parametrize("ordering", ["natural", "maximin"])
def test_neighbours_perfectly_correlated_are_warned_of(ordering):
    """The other extreme (an outside GP user's trial): points in the unit square under lengthscale 1e8 sat at
    residual distance exactly 0 from their nearest predecessor (99.8%), and 'maximin' was the natural
    order, without a word. Exact duplicates at distance 0 are not warned of, nor a well-scaled lengthscale."""
    from covertreex.vecchia import DegenerateNeighboursWarning, PerfectlyCorrelatedNeighboursWarning

    X = np.random.default_rng(1).uniform(size=(600, 2))
    with pytest.warns(PerfectlyCorrelatedNeighboursWarning, match=r"^\d+\.\d% of the points are at residual "
                      r"distance 0 from their nearest predecessor, .*is the lengthscale \(1e\+08\) far above "
                      r"the points' spread\?$"):
        result = ct.vecchia_neighbors(X, 5, m=32, ordering=ordering, lengthscale=1e8)
    assert (result.distances[1:, 0] == 0.0).mean() > 0.9
    with warnings.catch_warnings():
        warnings.simplefilter("error", DegenerateNeighboursWarning)
        ct.vecchia_neighbors(X, 5, m=32, ordering=ordering, lengthscale=10.0)
        twice = ct.vecchia_neighbors(np.repeat(X, 2, axis=0), 5, m=32, ordering=ordering, lengthscale=0.3)
    assert (twice.distances[1:, 0] == 0.0).mean() > 0.45  # each point's copy: a duplicate, not a degeneracy
