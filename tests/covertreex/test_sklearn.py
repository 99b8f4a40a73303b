"""covertreex.sklearn: scikit-learn's own estimator checks, exactness against the brute-force oracle, and
pipelines that consume the neighbours graph."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("sklearn", minversion="1.6", reason="scikit-learn >= 1.6 is the optional extra 'sklearn'")

from sklearn.cluster import DBSCAN  # noqa: E402
from sklearn.manifold import Isomap  # noqa: E402
from sklearn.neighbors import KNeighborsTransformer  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402
from sklearn.utils.estimator_checks import parametrize_with_checks  # noqa: E402

import covertreex as ct  # noqa: E402
from covertreex import datasets  # noqa: E402
from covertreex.errors import InputTypeError, InvalidInputError, KOutOfRangeError, UnknownNameError  # noqa: E402
from covertreex.sklearn import CoverTreeNeighbors  # noqa: E402

README = Path(__file__).resolve().parents[2] / "README.md"

ESTIMATORS = [
    CoverTreeNeighbors(),
    # The default engine: with gold, the two pickle checks alone took 23 s (their read-only memmap inputs
    # are new Numba specialisations); the engines' agreement is the parity suite's job, not this adapter's.
    CoverTreeNeighbors(mode="connectivity", path="tree"),
    CoverTreeNeighbors(metric="residual", m=16),
]


@parametrize_with_checks(ESTIMATORS)
def test_scikit_learn_estimator_checks(estimator, check):
    check(estimator)


def _oracle_rows(estimator: CoverTreeNeighbors, X=None) -> tuple[np.ndarray, np.ndarray]:
    """Every training point for each query, ordered by (distance, index), from the brute engine with
    k = n on the data the estimator indexed; X=None: each training point with itself removed."""
    space = estimator.cover_tree_.space
    data = space.problem if space.metric == "residual" else space.data.X
    brute = ct.CoverTree(engine="brute", metric=space.metric, brute_variant="direct").fit(data)
    n = space.n_points
    if X is not None:
        return brute.kneighbors(X, k=n)
    dist, ind = brute.kneighbors(indices=np.arange(n), k=n)
    other = ind != np.arange(n)[:, None]
    return dist[other].reshape(n, n - 1), ind[other].reshape(n, n - 1)


def _same_bits(got: np.ndarray, expected: np.ndarray, what: str) -> None:
    assert got.shape == expected.shape, what
    assert np.array_equal(got.view(np.int64), expected.view(np.int64)), what


FITS = {
    "euclidean, lattice with repeats": (dict(), datasets.lattice(240, 2, 0, side=4)),
    "euclidean, gaussian": (dict(), datasets.gaussian(300, 3, 1)),
    "residual, matern52": (dict(metric="residual", kernel="matern52", lengthscale=0.7, variance=2.0, m=24,
                                seed=5), datasets.gaussian(300, 3, 2)),
}


@pytest.fixture(scope="module", params=sorted(FITS))
def fitted(request):
    params, X = FITS[request.param]
    return CoverTreeNeighbors(n_neighbors=4, **params).fit(X), X


def test_kneighbors_of_the_training_points_exclude_each_point_itself(fitted):
    """On the lattice, 15 copies of a point sort before it at distance 0 and the point is not among its
    k + 1 nearest: the estimator still returns the k nearest other points in (distance, index) order."""
    estimator, _ = fitted
    expected_dist, expected_ind = _oracle_rows(estimator)
    for k in (1, 4, 17):
        dist, ind = estimator.kneighbors(n_neighbors=k)
        assert np.array_equal(ind, expected_ind[:, :k]), k
        _same_bits(dist, expected_dist[:, :k], f"k={k}")
        assert np.array_equal(estimator.kneighbors(n_neighbors=k, return_distance=False), ind)


def test_kneighbors_of_new_points(fitted):
    estimator, X = fitted
    Q = datasets.gaussian(40, X.shape[1], 9)
    expected_dist, expected_ind = _oracle_rows(estimator, Q)
    dist, ind = estimator.kneighbors(Q, 6)
    assert np.array_equal(ind, expected_ind[:, :6])
    _same_bits(dist, expected_dist[:, :6], "new points")


def _radii(expected_dist: np.ndarray) -> list[float]:
    """No point, a radius equal to a listed distance (the boundary is inclusive), a middle one, all."""
    return [0.0, float(expected_dist[3, 5]), float(np.median(expected_dist[:, 20])), np.inf]


@pytest.mark.parametrize("new_points", [False, True], ids=["training points", "new points"])
def test_radius_neighbors_are_every_point_within_the_radius_with_canonical_distances(fitted, new_points):
    estimator, X = fitted
    Q = datasets.gaussian(30, X.shape[1], 11) if new_points else None
    expected_dist, expected_ind = _oracle_rows(estimator, Q)
    for radius in _radii(expected_dist):
        dist, ind = estimator.radius_neighbors(Q, radius)
        assert dist.dtype == object and ind.shape == (expected_ind.shape[0],)
        for row, (d, i) in enumerate(zip(dist, ind, strict=True)):
            inside = expected_dist[row] <= radius
            assert np.array_equal(i, expected_ind[row][inside]), (radius, row)
            _same_bits(d, expected_dist[row][inside], f"radius {radius} row {row}")
        graph = estimator.radius_neighbors_graph(Q, radius, mode="distance")
        assert graph.nnz == sum(row.size for row in ind)
        assert np.array_equal(graph.indices, np.concatenate(list(ind)))



def test_an_integer_radius_beyond_the_doubles_is_every_point(fitted):
    """radius=10**400 raised a bare OverflowError (float() of it): it is larger than every distance, as
    inf is, and answers like inf."""
    estimator, _ = fitted
    huge, everything = estimator.radius_neighbors(radius=10**400), estimator.radius_neighbors(radius=np.inf)
    for got, want in zip(huge, everything, strict=True):
        assert all(np.array_equal(a, b) for a, b in zip(got, want, strict=True))


@pytest.mark.parametrize("kind", ["gaussian", "lattice", "duplicates"])
def test_radius_neighbors_on_the_box_screen_equal_the_widening_search_and_scikit_learn(kind, monkeypatch):
    """Low-dimensional Euclidean fits answer radius_neighbors by the box screen's ball search (rust perf
    mode, the default): every point at canonical distance <= radius, boundary included, sorted by
    (distance, index), the training points without themselves; the same answers and distance bits as the
    widening k-NN search (path='tree') and scikit-learn's index sets, in blocks of RADIUS_ROWS rows."""
    from sklearn.neighbors import NearestNeighbors

    from covertreex import datasets
    from covertreex import sklearn as ours

    monkeypatch.setattr(ours, "RADIUS_ROWS", 70)
    X = datasets.make(kind, 600, 2, 3).points
    Q = np.vstack([X[:40], X[:40] + 0.25])
    boxes, widening = CoverTreeNeighbors().fit(X), CoverTreeNeighbors(path="tree").fit(X)
    calls = []
    within = boxes.cover_tree_.engine.within
    monkeypatch.setattr(boxes.cover_tree_.engine, "within",
                        lambda *args, **kw: calls.append(1) or within(*args, **kw))
    theirs = NearestNeighbors().fit(X)
    for queries in (None, Q):
        for radius in (0.0, 0.5, 1.0, 2.0):
            got, want = boxes.radius_neighbors(queries, radius), widening.radius_neighbors(queries, radius)
            sk = theirs.radius_neighbors(queries, radius, return_distance=False)
            for row, (d, i) in enumerate(zip(*got, strict=True)):
                assert np.array_equal(i, want[1][row]), (kind, radius, row)
                _same_bits(d, want[0][row], f"{kind} radius {radius} row {row}")
                assert set(i.tolist()) == set(sk[row].tolist()), (kind, radius, row)
    assert len(calls) == 4 * (9 + 2), calls  # 4 radii, blocks of 70 rows: 9 of the 600 training rows, 2 of Q


def test_the_ball_search_refuses_an_answer_beyond_memory_and_names_the_bad_row(monkeypatch):
    """A finite radius larger than the data skipped the memory check radius=inf gets (a review): the
    answer grew until an allocation aborted the process. And a bad query row was named by its place in a
    block of RADIUS_ROWS rows, not in X."""
    from covertreex import sklearn as ours

    estimator = CoverTreeNeighbors().fit(np.random.default_rng(33).normal(size=(3000, 2)))
    monkeypatch.setattr(ours, "available_bytes", lambda: 10**8)  # room for ~1.6 M points, 9 M inside
    with pytest.raises(KOutOfRangeError, match=r"^radius=1e\+300 holds too many training points for the "
                       r"memory available"):
        estimator.radius_neighbors(radius=1e300)
    monkeypatch.undo()
    monkeypatch.setattr(ours, "RADIUS_ROWS", 100)
    Q = np.zeros((250, 2))
    Q[170] = 1e200
    with pytest.raises(ValueError, match="row 170"):
        estimator.radius_neighbors(Q, radius=0.1)


def test_radius_neighbors_name_n_neighbors_below_one():
    """Its search starts from n_neighbors: 0 was "k must be >= 1", a name the caller never used."""
    estimator = CoverTreeNeighbors().fit(np.eye(4)).set_params(n_neighbors=0)
    with pytest.raises(KOutOfRangeError, match=r"^n_neighbors must be >= 1, got 0"):
        estimator.radius_neighbors(np.eye(4)[:2], radius=1.0)


def test_a_radius_too_wide_for_memory_is_named(monkeypatch):
    """It said "k = 2561 is too large" (an outside user's trial): a k of the widening search, which the
    caller never passed. radius=inf, whose answer's size is known at once, is refused before any search (an
    outside trial: 12.6 s and 2.5 GB before the refusal at N = 20,000)."""
    from covertreex import resources

    X = np.random.default_rng(30).normal(size=(3000, 2))
    monkeypatch.setattr(resources, "available_bytes", lambda: 10**8)
    with pytest.raises(KOutOfRangeError, match=r"^radius=1e\+300 holds too many training points for the "
                       r"memory available: the search widened to k = \d+ for \d+ rows failed "
                       r"\(k = \d+ is too large"):
        CoverTreeNeighbors(path="tree").fit(X).radius_neighbors(radius=1e300)
    searched = []
    estimator = CoverTreeNeighbors().fit(X)
    monkeypatch.setattr(estimator, "_knn", lambda *args: searched.append(args))
    with pytest.raises(KOutOfRangeError, match=r"^radius=inf holds too many training points for the memory "
                       r"available: all 2999 for each of 3000 rows needs 1.44e\+08 bytes"):
        estimator.radius_neighbors(radius=np.inf)
    assert not searched


def test_radius_neighbors_query_again_only_the_rows_still_inside(monkeypatch):
    """One query row inside a tight cluster needs k up to the cluster's size; the others are done at the
    first k. Every doubling re-queried all rows of X (one dense row drove a 1,000-row call to 180 s and
    1.4 GB); now only the pending ones, with the same answer."""
    rng = np.random.default_rng(4)
    X = np.vstack([rng.normal(size=(256, 2)) * 0.01, rng.normal(size=(256, 2)) * 3 + 40])
    Q = np.vstack([[[0.0, 0.0]], rng.normal(size=(40, 2)) - 40])
    estimator = CoverTreeNeighbors(path="tree").fit(X)  # the widening search (not the box screen's ball)
    queried = []
    kneighbors = estimator.cover_tree_.kneighbors
    monkeypatch.setattr(estimator.cover_tree_, "kneighbors",
                        lambda queries, k: queried.append(len(queries)) or kneighbors(queries, k))
    dist, ind = estimator.radius_neighbors(Q, radius=0.2)
    assert queried[0] == 41 and set(queried[1:]) == {1}, queried
    monkeypatch.undo()
    whole_d, whole_i = estimator.cover_tree_.kneighbors(Q, X.shape[0])
    for row in range(Q.shape[0]):
        inside = whole_d[row] <= 0.2
        assert np.array_equal(ind[row], whole_i[row][inside])
        _same_bits(dist[row], whole_d[row][inside], f"row {row}")
    assert ind[0].size > 100 and all(ind[row].size == 0 for row in range(1, 41))


def test_radius_neighbors_widen_without_overflow():
    """The ball's volume, (radius / k-th distance) ** d, overflowed float64 (OverflowError) in 1,100
    dimensions and across a cluster 1e-110 wide (a review): it is reckoned in logarithms."""
    rng = np.random.default_rng(32)
    X = rng.normal(size=(300, 1100))
    estimator = CoverTreeNeighbors().fit(X)
    radius = 2.5 * float(estimator.kneighbors(X[:20], 5)[0][:, -1].max())
    dist, ind = estimator.radius_neighbors(X[:20], radius=radius)
    whole_d, whole_i = estimator.kneighbors(X[:20], 300)
    assert all(np.array_equal(ind[row], whole_i[row][whole_d[row] <= radius]) for row in range(20))
    X = np.vstack([1e-110 * rng.normal(size=(20, 3)), rng.normal(size=(200, 3))])
    dist, ind = CoverTreeNeighbors().fit(X).radius_neighbors(np.zeros((1, 3)), radius=1.0)
    norms = np.sqrt((X * X).sum(axis=1))
    inside = np.flatnonzero(norms <= 1.0)
    assert set(range(20)) <= set(ind[0].tolist())
    assert np.array_equal(ind[0], inside[np.argsort(norms[inside], kind="stable")])


@pytest.mark.parametrize("radius", [0.3, np.inf])
def test_radius_neighbors_widen_in_blocks_of_bounded_size(monkeypatch, radius):
    """Every pending row at once peaked at 4x the answer (an outside trial was killed by the kernel at
    radius=inf on 20,000 points): each call now holds at most RADIUS_BLOCK_CELLS rows x k cells, and
    radius=inf asks for every point at its second step (doubling took 11 steps at 6,000 points), with
    scikit-learn's answer (training points without themselves, and rows of X)."""
    from sklearn.neighbors import NearestNeighbors

    from covertreex import sklearn as ours

    X = np.random.default_rng(31).normal(size=(600, 3))
    estimator = CoverTreeNeighbors(path="tree").fit(X)  # the widening search (not the box screen's ball)
    monkeypatch.setattr(ours, "RADIUS_BLOCK_CELLS", 5_000)
    calls = []
    knn = estimator._knn
    monkeypatch.setattr(estimator, "_knn", lambda Q, rows, k: calls.append((rows.size, k)) or knn(Q, rows, k))
    theirs = NearestNeighbors().fit(X)
    for Q in (None, X[:50] + 0.01):
        calls.clear()
        dist, ind = estimator.radius_neighbors(Q, radius=radius)
        assert calls and all(rows * (k + (Q is None)) <= 5_000 or rows == 1 for rows, k in calls), calls
        if radius == np.inf:  # every point at once
            assert {k for _, k in calls} == {599 if Q is None else 600}, calls
        want_d, want_i = theirs.radius_neighbors(Q, radius=radius, sort_results=True)
        for row in range(len(want_i)):
            order = np.lexsort((want_i[row], want_d[row]))  # by (distance, index)
            assert np.array_equal(ind[row], want_i[row][order]), row
            assert np.allclose(dist[row], want_d[row][order], rtol=1e-12, atol=0), row

def test_graphs_hold_the_kneighbors_answer(fitted):
    estimator, X = fitted
    dist, ind = estimator.kneighbors(X[:50], 4)
    distance = estimator.kneighbors_graph(X[:50], 4, mode="distance")
    assert distance.shape == (50, X.shape[0]) and distance.format == "csr"
    assert np.array_equal(distance.indices, ind.ravel())
    _same_bits(distance.data, dist.ravel(), "graph data")
    connectivity = estimator.kneighbors_graph(n_neighbors=4)
    assert np.array_equal(connectivity.indices, estimator.kneighbors(return_distance=False).ravel())
    assert (connectivity.data == 1.0).all()


def test_transform_follows_kneighbors_transformer_counting():
    """Mode 'distance' lists n_neighbors + 1 points per row (a training point's own entry is an explicit
    zero); mode 'connectivity' lists n_neighbors."""
    X = datasets.gaussian(100, 3, 4)
    graph = CoverTreeNeighbors(n_neighbors=5).fit_transform(X)
    assert np.diff(graph.indptr).tolist() == [6] * 100
    assert graph.diagonal().tolist() == [0.0] * 100 and graph.nnz == 600
    connectivity = CoverTreeNeighbors(n_neighbors=5, mode="connectivity").fit(X).transform(X)
    assert np.diff(connectivity.indptr).tolist() == [5] * 100


def test_residual_parameters_reach_the_residual_problem():
    X = datasets.gaussian(200, 2, 6)
    estimator = CoverTreeNeighbors(metric="residual", kernel="matern52", lengthscale=[0.5, 2.0],
                                   variance=3.0, m=20, seed=7).fit(X)
    problem = estimator.cover_tree_.space.problem
    expected = ct.residual_problem(X, kernel="matern52", lengthscale=[0.5, 2.0], variance=3.0, m=20, seed=7)
    assert problem.kernel == "matern52" and problem.variance == 3.0
    assert np.array_equal(problem.lengthscale, [0.5, 2.0]) and np.array_equal(problem.V, expected.V)


def test_engine_knobs_reach_the_cover_tree():
    estimator = CoverTreeNeighbors(engine="gold", engine_mode="perf", path="dense", threads=1)
    tree = estimator.fit(datasets.gaussian(50, 2, 0)).cover_tree_
    assert tree.engine.name == "gold"
    assert (tree.config.mode, tree.config.path, tree.config.threads) == ("perf", "dense", 1)
    defaults = CoverTreeNeighbors().fit(datasets.gaussian(50, 2, 0)).cover_tree_
    assert defaults.config == ct.CoverTree().config and defaults.engine is ct.CoverTree().engine


def _theirs(n_neighbors: int) -> KNeighborsTransformer:
    return KNeighborsTransformer(n_neighbors=n_neighbors, algorithm="kd_tree")


@pytest.mark.parametrize("kind", ["gaussian", "clustered"])
@pytest.mark.parametrize("n_neighbors", [3, 12])
def test_the_graph_is_kneighbors_transformers(kind, n_neighbors):
    """Same neighbours as scikit-learn's k-d tree, distances equal to rounding (ours are the canonical)."""
    X = datasets.make(kind, 300, 3, 8).points
    ours = CoverTreeNeighbors(n_neighbors=n_neighbors).fit_transform(X)
    theirs = _theirs(n_neighbors).fit_transform(X)
    assert np.array_equal(ours.indptr, theirs.indptr) and np.array_equal(ours.indices, theirs.indices)
    np.testing.assert_allclose(ours.data, theirs.data, rtol=1e-12, atol=0)


def test_isomap_pipeline_gives_scikit_learns_embedding():
    X = datasets.gaussian(300, 3, 8)

    def isomap(transformer):
        return make_pipeline(transformer, Isomap(n_neighbors=8, metric="precomputed")).fit_transform(X)

    np.testing.assert_allclose(np.abs(isomap(CoverTreeNeighbors(n_neighbors=8))), np.abs(isomap(_theirs(8))),
                               rtol=1e-9, atol=1e-9)


def test_dbscan_pipeline_gives_scikit_learns_clusters():
    X = datasets.clustered(300, 3, 8)

    def dbscan(transformer):
        pipeline = make_pipeline(transformer, DBSCAN(eps=0.05, min_samples=3, metric="precomputed"))
        return pipeline.fit_predict(X)

    labels = dbscan(CoverTreeNeighbors(n_neighbors=10))
    assert np.array_equal(labels, dbscan(_theirs(10))) and len(set(labels) - {-1}) >= 2
    eps = 0.99 * CoverTreeNeighbors(n_neighbors=10).fit(X).kneighbors()[0][:, -1].min()
    within = make_pipeline(CoverTreeNeighbors(n_neighbors=10), DBSCAN(eps=eps, min_samples=3,
                                                                      metric="precomputed")).fit_predict(X)
    assert len(set(within) - {-1}) >= 2  # every pair within eps is in the graph: DBSCAN's own labels
    assert np.array_equal(within, DBSCAN(eps=eps, min_samples=3).fit_predict(X))


def test_dbscan_on_the_radius_graph_gives_its_own_labels_where_the_neighbours_graph_misses_pairs():
    """docs/sklearn.md's example: with more than n_neighbors others within eps the k-NN graph lacks pairs
    and DBSCAN labels otherwise; the radius graph holds them all."""
    X = np.random.default_rng(0).normal(size=(2000, 3))
    eps, model = 0.5, CoverTreeNeighbors(n_neighbors=10).fit(X)
    assert (model.kneighbors(n_neighbors=11)[0][:, -1] <= eps).any()  # an 11th other within eps
    theirs = DBSCAN(eps=eps).fit_predict(X)
    knn = make_pipeline(CoverTreeNeighbors(n_neighbors=10), DBSCAN(eps=eps, metric="precomputed"))
    assert ((knn.fit_predict(X) == -1).sum(), (theirs == -1).sum()) == (133, 131)
    graph = model.radius_neighbors_graph(radius=eps, mode="distance")
    assert np.array_equal(DBSCAN(eps=eps, metric="precomputed").fit_predict(graph), theirs)


def test_neighbours_of_a_single_training_point_say_why_there_are_none():
    """'n_neighbors must lie in [1, 0]' named an empty range (an outside trial)."""
    with pytest.raises(KOutOfRangeError, match=r"kneighbors\(\) of the training points needs 2 or more"):
        CoverTreeNeighbors(n_neighbors=1).fit(np.zeros((1, 2))).kneighbors()


@pytest.mark.parametrize(
    ("call", "error", "message"),
    [
        (lambda e: e.kneighbors(n_neighbors=30), KOutOfRangeError,
         "n_neighbors must lie in [1, 29] (the other training points), got 30"),
        (lambda e: e.kneighbors(np.zeros((2, 2)), n_neighbors=0), KOutOfRangeError,
         "n_neighbors must lie in [1, 30] (the training points), got 0"),
        (lambda e: e.kneighbors(n_neighbors=2.5), InputTypeError, "n_neighbors must be an integer"),
        (lambda e: e.kneighbors_graph(mode="weights"), UnknownNameError,
         "unknown mode 'weights'; known modes: connectivity, distance"),
        (lambda e: e.radius_neighbors(radius=-1.0), InvalidInputError, "radius must be >= 0, got -1.0"),
        (lambda e: e.radius_neighbors(radius=float("nan")), InvalidInputError, "radius must be >= 0"),
        (lambda e: e.radius_neighbors(radius=np.array(-1.0)), InvalidInputError, "radius must be >= 0"),
        (lambda e: e.radius_neighbors(radius=np.array([0.5])), InputTypeError,
         "radius must be a real number"),
        (lambda e: e.transform(None), InputTypeError, "transform needs X (the rows to connect)"),
        (lambda e: e.kneighbors(np.zeros((2, 3))), ValueError, "X has 3 features, but CoverTreeNeighbors"),
        # named X, the argument, where CoverTree's check said "queries" (an outside review)
        (lambda e: e.kneighbors(np.full((1, 2), 1e151)), ValueError, "X has coordinates beyond +/-1e+150"),
        (lambda e: e.radius_neighbors(np.full((1, 2), 1e-300)), ValueError,
         "X has nonzero coordinates closer to 0 than 2**-450"),
        # scikit-learn's rule, which was accepted silently; and flags are booleans ('no' was True)
        (lambda e: e.radius_neighbors(return_distance=False, sort_results=True), InvalidInputError,
         "return_distance must be True if sort_results is True"),
        (lambda e: e.kneighbors(return_distance="no"), InputTypeError,
         "return_distance must be True or False, got str 'no'"),
        (lambda e: e.radius_neighbors(sort_results=1.0), InputTypeError,
         "sort_results must be True or False"),
    ],
)
def test_bad_calls_are_clear_errors(call, error, message):
    estimator = CoverTreeNeighbors().fit(datasets.gaussian(30, 2, 0))
    with pytest.raises(error, match=re.escape(message)):
        call(estimator)


@pytest.mark.parametrize(
    ("params", "error", "message"),
    [
        ({"metric": "cosine"}, UnknownNameError, "unknown metric 'cosine'; known metrics: euclidean"),
        # None was CoverTree's default metric, which COVERTREEX_PRESET could make residual
        ({"metric": None}, InvalidInputError, "metric must be a name (str), got NoneType None"),
        ({"mode": "weights"}, UnknownNameError, "unknown mode 'weights'"),
        ({"n_neighbors": 0}, KOutOfRangeError, "n_neighbors must be >= 1, got 0"),
        ({"engine_mode": "fast"}, InvalidInputError, "option 'engine_mode' must be one of 'parity', 'perf'"),
        ({"metric": "residual", "kernel": "cubic"}, UnknownNameError, "unknown kernel 'cubic'"),
        # the residual parameters are checked under the Euclidean metric too, where they were ignored
        ({"kernel": "bogus"}, UnknownNameError, "unknown kernel 'bogus'"),
        ({"lengthscale": -1}, InvalidInputError, "lengthscale must be positive and finite, got -1.0"),
        ({"lengthscale": [1.0, 2.0, 3.0]}, InvalidInputError, "lengthscale must be a scalar or have one"),
        ({"variance": float("nan")}, InvalidInputError, "variance must be positive and finite, got nan"),
        ({"m": 0}, InvalidInputError, "m (number of inducing points) must be >= 1, got 0"),
        ({"seed": -5}, InvalidInputError, "seed must be >= 0"),
    ],
)
def test_bad_parameters_are_clear_errors_at_fit(params, error, message):
    with pytest.raises(error, match=re.escape(message)):
        CoverTreeNeighbors(**params).fit(datasets.gaussian(30, 2, 0))



def test_integers_float64_cannot_hold_are_refused_and_other_dtypes_answer_as_float64():
    """scikit-learn's check converted to float64 before CoverTree saw the data, rounding 2**53 + 1 to
    2**53 without a word; integers now reach CoverTree's exactness check. Booleans, small integers and
    objects holding numbers answer as their float64 values."""
    big = np.array([[2**53 + 1, 0], [0, 1], [1, 1]], dtype=np.int64)
    with pytest.raises(InvalidInputError, match=r"^X holds values float64 cannot represent exactly"):
        CoverTreeNeighbors(n_neighbors=1).fit(big)
    fitted = CoverTreeNeighbors(n_neighbors=2).fit(big[1:])
    with pytest.raises(InvalidInputError, match=r"^X holds values float64 cannot represent exactly"):
        fitted.kneighbors(big[:1])  # named X, the argument, not CoverTree's "queries"
    truth = fitted.kneighbors(np.array([[0.0, 1.0], [1.0, 0.0]]))
    for dtype in (bool, np.int8, np.uint64, object):
        answer = fitted.kneighbors(np.array([[0, 1], [1, 0]], dtype=dtype))
        assert all(np.array_equal(a, b) for a, b in zip(answer, truth, strict=True)), dtype
    for objects in (big.astype(object), [[2**53 + 1, 0], [0, 1], [1, 1]], [[2**64 + 1], [0], [1]],
                    [[2**63 + 5], [2**63 + 4], [0]]):
        # scikit-learn made objects float64 itself: rows 0 and 1 of [[2**53 + 1], [2**53], [0]] at distance 0
        with pytest.raises(InvalidInputError, match=r"^X holds values float64 cannot represent exactly"):
            CoverTreeNeighbors(n_neighbors=1).fit(objects)


def test_a_residual_query_out_of_range_names_x():
    fitted = CoverTreeNeighbors(metric="residual", m=8).fit(datasets.gaussian(30, 3, 0))
    with pytest.raises(ValueError, match=r"^X\[0, 0\] = 1e\+151 with lengthscale 1.0 is outside"):
        fitted.kneighbors(np.full((1, 3), 1e151))


@pytest.mark.parametrize("column", ["int64 beside a float column", "nullable Int64"])
def test_integers_float64_cannot_hold_in_a_data_frame_are_refused(column):
    """scikit-learn turns a frame of mixed or nullable dtypes into float64 itself, before CoverTree's
    exactness check: rows 2**53 + 1 and 2**53 were neighbours at distance 0 (an outside review)."""
    pandas = pytest.importorskip("pandas")  # in the dev extra: CI runs this
    big = [2**53 + 1, 2**53, 0]
    frame = (pandas.DataFrame({"a": np.array(big, dtype=np.int64), "b": [0.5, 0.5, 0.5]})
             if column.startswith("int64") else pandas.DataFrame({"a": pandas.array(big, dtype="Int64")}))
    with pytest.raises(InvalidInputError, match=r"^X holds values float64 cannot represent exactly"):
        CoverTreeNeighbors(n_neighbors=1).fit(frame)
    fitted = CoverTreeNeighbors(n_neighbors=1).fit(frame.iloc[1:] - 2**52)  # within 2**53: answered
    assert fitted.kneighbors()[1].ravel().tolist() == [1, 0]


def test_a_radius_given_as_a_0d_array_is_its_number():
    """scikit-learn takes np.array(0.5); ours refused it as not a real number (an outside trial)."""
    estimator = CoverTreeNeighbors().fit(datasets.gaussian(30, 2, 0))
    given, plain = estimator.radius_neighbors(radius=np.array(0.8)), estimator.radius_neighbors(radius=0.8)
    for got, want in zip(given, plain, strict=True):
        assert all(np.array_equal(a, b) for a, b in zip(got, want, strict=True))


@pytest.mark.parametrize("fit", [lambda X: ct.CoverTree().fit(X), CoverTreeNeighbors(n_neighbors=1).fit],
                         ids=["CoverTree", "CoverTreeNeighbors"])
def test_python_integers_beyond_uint64_in_a_list_are_read_alike_by_both_faces(fit):
    """NumPy keeps them as objects: CoverTree refused [[2**64, 0], [0, 0]] as "dtype object" where the
    estimator took it, and 10**400 escaped the estimator as a bare OverflowError (an outside trial)."""
    fit([[2**64, 0], [0, 0.5]])  # 2**64 is a float64
    fit([[2**64, np.float64(0.5)], [np.int64(3), 0]])  # NumPy's scalars too (a review)
    with pytest.raises(InvalidInputError, match=r"^X holds values float64 cannot represent exactly"):
        fit([[2**64 + 1, 0], [0, 0]])
    with pytest.raises(InvalidInputError, match=r"^X holds an integer beyond float64's range"):
        fit([[10**400, 0], [0, 0]])


def test_readme_example_runs():
    section = README.read_text(encoding="utf-8").split("## scikit-learn", 1)[1].split("\n## ", 1)[0]
    [block] = re.findall(r"```python\n(.*?)```", section, flags=re.S)
    exec(compile(block, "README.md (scikit-learn)", "exec"), {})


def test_training_points_given_again_are_answered_as_the_indexed_points_they_are():
    """Under the residual metric, fit_transform (and transform or kneighbors of X_train) projected the
    training rows anew: 11 of 120 points came out about 1e-8 from themselves, where docs/sklearn.md
    promises the point itself as an explicit 0 (found by an outside trial)."""
    X = np.random.default_rng(5).normal(size=(120, 2))
    model = CoverTreeNeighbors(n_neighbors=4, mode="distance", metric="residual", kernel="matern52", m=8)
    graph = model.fit_transform(X)
    assert graph.shape == (120, 120) and graph.nnz == 120 * 5
    assert np.all(graph.diagonal() == 0.0) and all(i in graph[i].indices for i in range(120))
    dist, ind = model.kneighbors(X)
    indexed = model.cover_tree_.kneighbors(indices=np.arange(120), k=4)
    assert np.array_equal(ind, indexed[1]) and np.array_equal(dist.view(np.int64), indexed[0].view(np.int64))
    shuffled = np.random.default_rng(6).permutation(120)
    moved = X[shuffled]
    moved[7, 0] += 1e-9  # a new point, projected as such; the other rows are training points
    dist, ind = model.kneighbors(moved)
    fresh = model.cover_tree_.kneighbors(moved[7:8], k=4)
    assert np.array_equal(ind[7:8], fresh[1]) and np.array_equal(dist[7:8], fresh[0])
    others = np.delete(np.arange(120), 7)
    assert np.array_equal(ind[others], indexed[1][shuffled[others]])
    assert np.array_equal(dist[others].view(np.int64), indexed[0][shuffled[others]].view(np.int64))


def test_feature_names_out_name_a_column_per_training_point():
    """get_feature_names_out was missing (an outside user's trial): KNeighborsTransformer's graph columns
    are the training points, named by the class."""
    X = np.random.default_rng(2).normal(size=(12, 3))
    names = make_pipeline(CoverTreeNeighbors(n_neighbors=3)).fit(X).get_feature_names_out()
    assert names.tolist() == [f"covertreeneighbors{i}" for i in range(12)]
    assert len(_theirs(3).fit(X).get_feature_names_out()) == len(names)
