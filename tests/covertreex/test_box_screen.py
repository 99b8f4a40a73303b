"""The dense path's box screen (rust/core/src/dense/boxes.rs): Euclidean points of a few coordinates packed
in boxes by median cuts. Its answers equal brute force bit for bit on every query kind, on
tie-heavy data and on coordinates whose box bounds round; its counters depend on nothing but the queries;
'auto' takes it where the cost model says it pays; the knob refuses it where it cannot run."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import covertreex as ct
from covertreex import datasets, paths
from covertreex.errors import InvalidInputError
from covertreex.kinds import QUERY_KINDS
from pytest_pcct.covertreex_engines import BOX_SCREEN, CovertreexEngine
from pytest_pcct.parity.profiles import suite_settings
from pytest_pcct.parity.strategies import knn_cases

BOXES = {"engine": "rust", "mode": "perf", "path": "dense", "dense_screen": "boxes"}


def _boxes(X, **options):
    return ct.CoverTree(**{**BOXES, **options}).fit(X)


def _rounding_prone(n: int, d: int, seed: int) -> np.ndarray:
    """A few sites far from the origin (1e6 to 1e12), each point a few ulps off its site: box bounds and
    distances round at every step, and many distances tie exactly."""
    rng = np.random.default_rng(seed)
    base = 10.0 ** int(rng.integers(6, 13))
    sites = base + rng.integers(0, 4, size=(max(1, n // 20), d)) * (base * 1e-3)
    X = sites[rng.integers(0, len(sites), n)]
    return X + rng.integers(-3, 4, size=X.shape) * np.spacing(X)


def _points(kind: str, n: int, d: int, seed: int) -> np.ndarray:
    if kind == "rounding":
        return _rounding_prone(n, d, seed)
    return datasets.make(kind, n, d, seed).points


def _outside(X: np.ndarray, seed: int) -> np.ndarray:
    """Queries that are not indexed points: fresh ones, copies of indexed rows, and rows nudged by an ulp."""
    rng = np.random.default_rng(seed)
    rows = X[rng.integers(0, len(X), 6)]
    fresh = X.min(axis=0) + rng.uniform(size=(6, X.shape[1])) * (X.max(axis=0) - X.min(axis=0))
    nudged = np.where(rows != 0, np.nextafter(rows, np.inf), rows)  # 0 would step to a subnormal, refused
    return np.vstack([fresh, rows, nudged])


@pytest.mark.parametrize("kind", ["gaussian", "lattice", "duplicates", "clustered", "rounding"])
@pytest.mark.parametrize(("d", "seed"), [(1, 0), (2, 1), (3, 2), (5, 3), (8, 4)])
def test_box_screen_equals_the_oracle(kind, d, seed, oracle, check_same):
    n = 700
    X = _points(kind, n, d, seed)
    model = _boxes(X)
    indices = np.random.default_rng(seed).integers(0, n, 60)
    outside = _outside(X, seed)
    for k in (1, 7, 16, 50):
        context = f"{kind} d={d} k={k}"
        check_same(model.kneighbors(indices=indices, k=k), oracle("euclidean", X, k, indices=indices),
                   context)
        check_same(model.kneighbors(outside, k=k), oracle("euclidean", X, k, queries=outside),
                   context + " outside")
        check_same(model.kneighbors(k=k, predecessor=True), oracle("euclidean", X, k, predecessor=True),
                   context + " predecessor")
    padded = model.kneighbors(k=n + 5, predecessor=True)
    check_same(padded, oracle("euclidean", X, n + 5, predecessor=True), f"{kind} d={d} padded")
    assert model.last_result.counters.extra["screen"] == "boxes"


@pytest.mark.parametrize("d", [1, 2, 3])
def test_the_boxes_skip_most_pairs_in_few_dimensions(d):
    X = datasets.gaussian(5000, d, 7)
    result = _boxes(X).query(indices=np.arange(0, 5000, 10), k=10)
    counters = result.telemetry["counters"]
    assert counters["pairs_screened"] == counters["distance_evaluations"]
    assert counters["pairs_screened"] < 0.05 * 500 * 5000
    assert counters["prunes"] > 0 and counters["frontier_steps"] > 0


def test_counters_depend_on_the_queries_alone():
    """Each query searches alone: the same counters on 1 or 2 threads and with the queries reversed."""
    X = datasets.make("lattice", 3000, 3, 5).points
    queries = np.random.default_rng(5).integers(0, 3000, 400)
    runs = [_boxes(X, threads=t).query(indices=order, k=9)
            for t in (1, 2) for order in (queries, queries[::-1])]
    for run in runs[1:]:
        assert run.telemetry["counters"] == runs[0].telemetry["counters"]
    assert np.array_equal(runs[0].counters.per_query, runs[2].counters.per_query)
    assert np.array_equal(runs[0].counters.per_query, runs[1].counters.per_query[::-1])
    assert np.array_equal(runs[0].indices, runs[3].indices[::-1])


@pytest.mark.parametrize(("options", "data", "says"), [
    ({"metric": "residual"}, "problem", "needs the Euclidean metric"),
    ({"mode": "parity"}, "points", "perf mode only"),
    ({}, "nine", "at most 8 coordinates, not 9"),
    ({"engine": "gold", "mode": "parity"}, "points", "rust engine only"),
])
def test_asking_for_the_boxes_where_they_cannot_run_is_an_error(options, data, says):
    X = datasets.gaussian(200, 9 if data == "nine" else 3, 1)
    fitted = ct.residual_problem(X, m=16, seed=1) if data == "problem" else X
    model = _boxes(fitted, **options)
    with pytest.raises(InvalidInputError, match="dense_screen='boxes'") as error:
        model.query(indices=np.arange(5), k=3)
    assert says in str(error.value)


def test_auto_takes_the_boxes_where_they_pay_and_packs_once():
    X = datasets.gaussian(20_000, 2, 3)
    model = ct.CoverTree().fit(X)  # the default: rust in perf mode, path and screen 'auto'
    first = model.query(X[:4000] + 1e-3, k=10)
    assert first.telemetry["path"] == "dense" and model.built_tree is None
    assert first.counters.extra["screen"] == "boxes"
    assert first.telemetry["counters"]["pairs_screened"] < 0.01 * 4000 * 20_000
    packed = vars(model.space)["packed_boxes"]
    model.query(k=5, predecessor=True)
    assert vars(model.space)["packed_boxes"] is packed, "the boxes are packed once per fit"
    few = ct.CoverTree(path="dense").fit(datasets.gaussian(600, 8, 3)).query(indices=np.arange(600), k=10)
    assert few.counters.extra["screen"] == "f64", "8-D and few points: the boxes would cost more"
    assert few.telemetry["counters"]["pairs_screened"] == 600 * 600


def test_the_width_limit_is_the_extensions():
    from covertreex import _rust
    from covertreex.engines.rust import BOX_MAX_WIDTH

    assert _rust.BOX_MAX_WIDTH == BOX_MAX_WIDTH


def test_the_cost_model_prices_the_boxes():
    assert paths.boxes_pay(3, 50_000, 10, 5e8, 10_000, predecessor=False)
    assert not paths.boxes_pay(8, 2_000, 10, 2_000 * 400, 400, predecessor=False)
    assert not paths.boxes_pay(6, 2_000, 10, 2_000 * 1_999 / 2, 2_000, predecessor=True)  # boxes 1.6x f64
    # The tree won at d = 2 against screening every pair; the boxes beat both (docs/benchmarks.md).
    assert paths.choose("euclidean", 2, 50_000, 10, 5e8, 10_000, tree_exists=False) == "tree"
    assert paths.choose("euclidean", 2, 50_000, 10, 5e8, 10_000, tree_exists=False, boxes=True) == "dense"
    assert paths.box_evaluations(4_000, 50_000, 10) == 50_000


def test_a_packing_that_does_not_fit_the_points_is_an_error_not_a_crash():
    X = datasets.gaussian(300, 2, 4)
    model = _boxes(X)
    model.query(indices=[0], k=2)
    order, coords, boxes, least = vars(model.space)["packed_boxes"]
    vars(model.space)["packed_boxes"] = (order[:-1], coords, boxes, least)
    with pytest.raises(ValueError, match="packed boxes: order"):
        model.query(indices=[0], k=2)
    vars(model.space)["packed_boxes"] = (order, coords[:-1], boxes, least)
    with pytest.raises(ValueError, match="packed boxes: coords"):
        model.query(indices=[0], k=2)
    assert not order.flags.writeable, "a packing is kept read-only: its values are not checked per call"


def test_a_pickled_model_packs_its_own_boxes(check_same):
    X = datasets.gaussian(2000, 3, 6)
    model = _boxes(X)
    expected = model.kneighbors(indices=np.arange(50), k=8)
    assert "packed_boxes" in vars(model.space)
    copy = pickle.loads(pickle.dumps(model))
    assert "packed_boxes" not in vars(copy.space), "derived values do not travel"
    fresh = _boxes(X).space  # never queried: nothing derived yet
    assert len(pickle.dumps(model.space)) == len(pickle.dumps(fresh))
    check_same(copy.kneighbors(indices=np.arange(50), k=8), expected, "after pickling")


BOX_ENGINE = CovertreexEngine(BOX_SCREEN, "rust", path="dense", mode="perf", dense_screen="boxes")
ORACLE = CovertreexEngine("brute", "brute", brute_variant="direct")


@suite_settings()
@given(case=knn_cases(metric="euclidean", queries=st.sampled_from(QUERY_KINDS)))
def test_generated_cases_equal_the_oracle(case):
    """The plugin's generated Euclidean cases (lattices, duplicates, clusters, near-ties a few ulps apart,
    arbitrary floats; points, indices and predecessor queries) through the registered `rust-boxes`."""
    (indices, distances), (expected, truth) = (_rows(engine(case.problem, case.k)) for engine in (BOX_ENGINE,
                                                                                                  ORACLE))
    assert np.array_equal(indices, expected)
    assert np.array_equal(distances.view(np.int64), truth.view(np.int64))


def _rows(answer):
    """(indices, distances) of an adapter's answer: a KnnResult, or a tuple when it padded k beyond n."""
    return (answer[0], answer[1]) if isinstance(answer, tuple) else (answer.indices, answer.distances)
