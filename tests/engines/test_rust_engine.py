"""The rust engine beyond parity: registration, error mapping, input layouts, threads and the GIL.

Errors are checked by calling the extension directly with broken arrays (the public API validates first,
so only direct calls reach the Rust checks): each must raise the mapped covertreex.errors class, never a
pyo3 PanicException (a BaseException that ``pytest.raises`` below would not catch) or a crash.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

import covertreex as ct
from covertreex import _rust, datasets
from covertreex.config import Config
from covertreex.counters import LevelCounter, QueryCounter
from covertreex.engines import get_engine
from covertreex.engines.schedule import Schedule
from covertreex.errors import (
    DimensionMismatchError,
    InputTypeError,
    InvalidInputError,
    KOutOfRangeError,
    NonFiniteError,
)
from covertreex.metrics import MetricSpace

X = datasets.make("duplicates", 300, 3, 5).points


@pytest.fixture(scope="module")
def space():
    return MetricSpace.residual(ct.residual_problem(X, m=16, seed=5))


@pytest.fixture(scope="module")
def tree(space):
    return get_engine("rust").build(space, np.arange(space.n_points), Config())


def _query(tree, space, *, k=4, threads=None, mode="parity", **replace):
    """Call the extension directly; `replace` swaps one argument (tree/data/queries/schedule fields or
    rows...)."""
    q = space.all_points()
    args = {
        "tree": tree.arrays(), "data": space.data, "queries": space.data, "rows": q.rows,
        "dataset_index": q.dataset_index, "limit": q.limit, "schedule": Schedule.of(Config()),
    }
    for name, value in replace.items():
        owner, _, field = name.partition("__")
        args[owner] = args[owner]._replace(**{field: value}) if field else value
    schedule = args.pop("schedule")
    return _rust.query(*args.values(), k, threads, mode, schedule)


def test_counter_columns_have_the_same_names_and_positions_in_rust_and_python(tree, space):
    assert tuple(column.field for column in QueryCounter) == _rust.QUERY_COUNTERS
    assert tuple(column.field for column in LevelCounter) == _rust.LEVEL_COUNTERS
    assert [int(column) for column in QueryCounter] == list(range(len(_rust.QUERY_COUNTERS)))
    assert [int(column) for column in LevelCounter] == list(range(len(_rust.LEVEL_COUNTERS)))
    _, _, per_level, per_query, _ = _query(tree, space)
    assert per_query.shape[1] == len(QueryCounter) and per_level.shape[1] == len(LevelCounter)


def test_registered_and_available():
    engine = get_engine("rust")
    assert "rust" in ct.engine_names() and engine.available() and engine.uses_tree
    assert engine.telemetry_mode(Config(mode="parity")) == "parity"


def test_unknown_mode_is_refused(tree, space):
    with pytest.raises(InvalidInputError, match='unknown mode "fast"'):
        _query(tree, space, mode="fast")
    with pytest.raises(InputTypeError, match="mode"):
        _rust.build(space.data, np.arange(space.n_points), None)


@pytest.mark.parametrize(
    ("replace", "error", "message"),
    [
        ({"data__P": np.ones(299)}, DimensionMismatchError, "P length"),
        ({"data__lengthscale": np.ones(2)}, DimensionMismatchError, "lengthscale length"),
        ({"queries__X": np.ones((300, 2)), "queries__lengthscale": np.ones(2)}, DimensionMismatchError,
         "query columns"),
        ({"rows": np.array([0, 300])}, DimensionMismatchError, "dataset_index length"),
        ({"tree__radius": np.ones(10)}, DimensionMismatchError, "tree radius length"),
        ({"tree__child_offsets": np.zeros(300, np.int64)}, DimensionMismatchError, "child_offsets"),
        ({"tree__children": np.full(299, 400, np.int64)}, InvalidInputError, r"tree children\[0\] = 400"),
        ({"tree__root": -3}, InvalidInputError, "tree root"),
        ({"tree__n_slots": 10**9}, InvalidInputError, "n_slots"),
        ({"data__metric": 7}, InvalidInputError, "metric code"),
        ({"data__P": -np.ones(300)}, InvalidInputError, "P must be positive"),
        ({"queries__X": np.full((300, 3), np.nan)}, NonFiniteError, "X contains NaN"),
        ({"data__X": np.asfortranarray(X)}, InvalidInputError, "data.X must be C-contiguous"),
        ({"data__X": X[:, ::-1]}, InvalidInputError, "C-contiguous"),
        ({"data__X": X.astype(np.float32)}, InputTypeError, "data.X must have dtype float64"),
        ({"rows": [0, 1]}, InputTypeError, "rows must be a numpy array"),
        ({"limit": np.zeros((300, 1), np.int64)}, DimensionMismatchError, "limit must be 1-D"),
        ({"tree__is_copy": np.zeros(300, np.int64)}, InputTypeError, "tree.is_copy must have dtype bool"),
        ({"tree__subtree_min": np.zeros(299, np.int64)}, DimensionMismatchError, "tree subtree_min length"),
        ({"tree__subtree_min": np.full(300, 1, np.int64)}, InvalidInputError, r"subtree_min\[0\] = 1"),
        ({"schedule": object()}, InputTypeError, "schedule must have a field"),
        ({"schedule__predecessor_pruning": "yes"}, InputTypeError, "schedule.predecessor_pruning"),
        ({"queries": object()}, InputTypeError, "queries must have a field"),
        ({"data__variance": "big"}, InputTypeError, "data.variance"),
    ],
)
def test_bad_query_arrays_raise_mapped_errors(tree, space, replace, error, message):
    with pytest.raises(error, match=message):
        _query(tree, space, **replace)


def test_out_of_range_rows_and_indices(tree, space):
    n = space.n_points
    with pytest.raises(InvalidInputError, match=r"rows\[2\] = 300 is out of range"):
        _query(tree, space, rows=np.r_[0, 1, 300, np.arange(3, n)])
    with pytest.raises(InvalidInputError, match="dataset_index"):
        _query(tree, space, dataset_index=np.full(n, -2))


@pytest.mark.parametrize(("k", "error"), [(0, KOutOfRangeError), (-5, KOutOfRangeError),
                                          (2**62, KOutOfRangeError), ("3", InputTypeError)])
def test_bad_k(tree, space, k, error):
    with pytest.raises(error, match="k"):
        _query(tree, space, k=k)


def test_bad_threads(tree, space):
    with pytest.raises(InvalidInputError, match="threads"):
        _query(tree, space, threads=0)


@pytest.mark.parametrize(
    ("order", "error", "message"),
    [
        (np.arange(299), DimensionMismatchError, "order length"),
        (np.r_[np.arange(299), 299 + 1], InvalidInputError, r"order\[299\] = 300"),
        (np.r_[np.arange(299), 5], InvalidInputError, "repeats"),
        (np.arange(300.0), InputTypeError, "order must have dtype int64"),
    ],
)
def test_bad_build_arrays(space, order, error, message):
    with pytest.raises(error, match=message):
        _rust.build(space.data, order, "parity")


def test_coordinates_that_overflow_are_non_finite():
    """The API refuses such points; the extension still refuses them when called directly."""
    space = MetricSpace.euclidean(np.zeros((3, 1)))
    huge = space.data._replace(X=np.array([[0.0], [1e200], [2e200]]))
    with pytest.raises(NonFiniteError, match="too large"):
        _rust.build(huge, np.arange(3), "perf")


@pytest.mark.parametrize("engine", ["gold", "rust"])
@pytest.mark.parametrize(
    ("call", "error"),
    [
        (lambda t: t.kneighbors(X[:2, :2], k=1), DimensionMismatchError),
        (lambda t: t.kneighbors(X[:2], k=301), KOutOfRangeError),
        (lambda t: t.kneighbors(indices=[0, 300], k=1), InvalidInputError),
        (lambda t: t.kneighbors(X[:2].astype(str), k=1), InputTypeError),
    ],
)
def test_both_engines_raise_the_same_class(engine, call, error):
    with pytest.raises(error):
        call(ct.CoverTree(path="tree", engine=engine).fit(X))


def _same(a, b) -> bool:
    return (
        np.array_equal(a.indices, b.indices) and a.distances.tobytes() == b.distances.tobytes()
        and np.array_equal(a.counters.per_query, b.counters.per_query)
        and np.array_equal(a.counters.per_level, b.counters.per_level)
    )


def test_any_accepted_layout_and_dtype_gives_the_same_answer():
    """float32/int input, Fortran order and strided views are normalised once, to gold's answer."""
    exact = X.astype(np.float32)  # values a float64 array holds exactly
    plain, queries = exact.astype(np.float64), exact[:20]
    reference = ct.CoverTree(path="tree", engine="gold").fit(plain).query(plain[:20], k=6)
    for variant in (exact, np.asfortranarray(plain), np.repeat(plain, 2, axis=0)[::2]):
        tree = ct.CoverTree(path="tree", engine="rust").fit(variant)
        assert _same(tree.query(np.asfortranarray(queries), k=6), reference)
    lattice = datasets.make("lattice", 200, 2, 1).points
    model = ct.CoverTree(path="tree", engine="rust").fit(lattice.astype(np.int32))
    ints = model.query(lattice[:9].astype(np.int16), k=3)
    assert _same(ints, ct.CoverTree(path="tree", engine="gold").fit(lattice).query(lattice[:9], k=3))


@pytest.mark.parametrize("metric", ["euclidean", "residual"])
def test_perf_mode_is_exact_against_the_oracle(metric):
    """Perf mode's lockstep distances are the canonical values, so even ties match brute force exactly."""
    data = datasets.make("lattice", 700, 2, 9).points
    if metric == "residual":
        data = ct.residual_problem(data, kernel="matern52", m=20, seed=9)
    fast = ct.CoverTree(path="tree", engine="rust", metric=metric, mode="perf", threads=2).fit(data)
    ct.validate(fast.tree, fast.space)
    oracle = ct.CoverTree(engine="brute", metric=metric, brute_variant="direct").fit(data)
    for query in ({"indices": np.arange(0, 700, 5)}, {"predecessor": True}):
        a, b = fast.query(k=12, **query), oracle.query(k=12, **query)
        assert np.array_equal(a.indices, b.indices) and a.distances.tobytes() == b.distances.tobytes()
        assert a.counters.extra["discarded_evaluations"] >= 0


def test_tree_arrays_in_other_dtypes_and_layouts_are_normalised(tree, space):
    odd = dataclasses.replace(
        tree, levels=tree.levels.astype(np.int32), children=tree.children[::-1].copy()[::-1],
        radius=np.repeat(tree.radius, 2)[::2], is_copy=tree.is_copy.astype(np.uint8).astype(bool),
    )
    engine, queries = get_engine("rust"), space.all_points()
    a = engine.query(odd, space, queries, 5, Config())
    b = engine.query(tree, space, queries, 5, Config())
    assert np.array_equal(a[0], b[0]) and a[1].tobytes() == b[1].tobytes()


def test_threads_option_changes_nothing(tree, space):
    one, two = (_query(tree, space, k=7, threads=t) for t in (1, 2))
    assert all(np.array_equal(a, b) for a, b in zip(one, two, strict=True))


_RUN = """
import hashlib, json, numpy as np, covertreex as ct
from covertreex import _rust, datasets
X = datasets.make("lattice", 1500, 3, 7).points
r = ct.CoverTree(path="tree", engine="rust", metric="residual").fit(X, m=24, seed=7)
h = hashlib.sha256()
for result in (r.query(indices=np.arange(0, 1500, 3), k=12), r.query(k=6, predecessor=True)):
    for a in (result.indices, result.distances, result.counters.per_query, result.counters.per_level):
        h.update(np.ascontiguousarray(a).tobytes())
for a in (r.tree.levels, r.tree.parents, r.tree.radius):
    h.update(a.tobytes())
print(json.dumps({"digest": h.hexdigest(), "threads": _rust.default_threads()}))
"""


def _run_with_rayon_threads(threads: int) -> dict:
    env = dict(os.environ, RAYON_NUM_THREADS=str(threads))
    out = subprocess.run([sys.executable, "-c", _RUN], env=env, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_rayon_thread_count_changes_nothing():
    one, two = _run_with_rayon_threads(1), _run_with_rayon_threads(2)
    assert (one["threads"], two["threads"]) == (1, 2)
    assert one["digest"] == two["digest"]


def _longest_pause(work) -> tuple[float, float]:
    """Run `work` in a thread while this thread counts; (longest gap between counts, work seconds)."""
    thread = threading.Thread(target=work)
    start = last = time.perf_counter()
    longest = 0.0
    thread.start()
    while thread.is_alive():
        now = time.perf_counter()
        longest, last = max(longest, now - last), now
    return longest, time.perf_counter() - start


def test_gil_is_released_during_build_and_query():
    points = MetricSpace.euclidean(datasets.gaussian(12000, 6, 0))
    order = np.arange(points.n_points)
    pause, seconds = _longest_pause(lambda: _rust.build(points.data, order, "parity"))
    assert seconds > 0.05 and pause < seconds / 2, (pause, seconds)
    built = get_engine("rust").build(points, order, Config())
    queries = points.all_points(predecessor=True)
    engine = get_engine("rust")
    pause, seconds = _longest_pause(lambda: engine.query(built, points, queries, 10, Config(threads=1)))
    assert seconds > 0.05 and pause < seconds / 2, (pause, seconds)


def _misaligned(values: np.ndarray) -> np.ndarray:
    """A copy of `values` one byte off its dtype's alignment (as arrays out of some pickle frames are)."""
    out = np.ndarray(values.shape, dtype=values.dtype, buffer=np.empty(values.nbytes + 1, np.uint8), offset=1)
    out[...] = values
    assert not out.flags.aligned or values.size == 0
    return out


@pytest.mark.parametrize("metric", ["euclidean", "residual"])
def test_misaligned_arrays_are_realigned_not_refused(metric):
    X = np.random.default_rng(3).normal(size=(300, 3))
    data = X if metric == "euclidean" else ct.residual_problem(X, m=32, seed=1)
    model = ct.CoverTree(engine="rust", metric=metric, path="tree").fit(data)
    space, engine = model.space, model.engine
    odd = dataclasses.replace(space, data=space.data._replace(
        X=_misaligned(space.data.X), V=_misaligned(space.data.V), P=_misaligned(space.data.P)))
    queries, odd_queries = space.indexed_queries(np.arange(40)), odd.indexed_queries(np.arange(40))
    want = engine.query(model.tree, space, queries, 5, model.config)
    got = engine.query(model.tree, odd, odd_queries, 5, model.config)
    np.testing.assert_array_equal(got[0], want[0])
    np.testing.assert_array_equal(got[1].view(np.int64), want[1].view(np.int64))
    dense = engine.dense(odd, odd_queries, 5, model.config)
    np.testing.assert_array_equal(dense[0], want[0])
