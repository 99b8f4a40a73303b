"""Hypothesis strategies for k-NN problems: point sets that stress exactness (integer lattices, duplicated
rows, tight clusters, near-ties a few ulps apart) and whole cases with k, queries and metric parameters.

Every argument is keyword-only and takes a value or a strategy. Values are checked when the strategy is
built and drawn values when drawn; either way the error names the argument. Coordinates are finite.

>>> @given(case=knn_cases(family="lattice", metric="euclidean"))
... def test_k_safe(pcct_engine, pcct_oracle, case):
...     assert_k_safe(pcct_engine.knn(case.problem, case.k), pcct_oracle.knn(case.problem, case.k))
"""

from __future__ import annotations

import numbers

import numpy as np
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from hypothesis.strategies import SearchStrategy

from covertreex.errors import InputTypeError, InvalidInputError, unknown_name
from covertreex.kinds import KERNELS, METRICS, QUERY_KINDS
from covertreex.metrics.space import MIN_EUCLIDEAN_COORDINATE
from pytest_pcct.parity.datasets import CASE_QUERIES, KnnCase

__all__ = [
    "FAMILIES",
    "KnnCase",
    "clusters",
    "duplicated",
    "knn_cases",
    "lattices",
    "near_ties",
    "point_sets",
]

MAX_POINTS = 10_000
MAX_DIMS = 64

# Default argument strategies (module-level so every call shares one instance).
SIZES = st.integers(1, 80)
DIMS_MOST = 8
DIMS = st.integers(1, DIMS_MOST)
SIDES = st.integers(1, 5)
UNIQUE_ROWS = st.integers(1, 8)
CENTERS = st.integers(1, 4)
SPREADS = st.floats(1e-6, 0.1)
ULPS = st.integers(1, 4)


def _integer(name: str, low: int, high: int):
    def check(value):
        if isinstance(value, bool) or not isinstance(value, numbers.Integral):
            raise InputTypeError(f"{name} must be an integer, got {type(value).__name__} {value!r}")
        if not low <= value <= high:
            raise InvalidInputError(f"{name} must be in [{low}, {high}], got {value}")
        return int(value)

    return check


def _real(name: str, low: float, high: float):
    def check(value):
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            raise InputTypeError(f"{name} must be a real number, got {type(value).__name__} {value!r}")
        if not (np.isfinite(value) and low <= value <= high):
            raise InvalidInputError(f"{name} must be finite and in [{low}, {high}], got {value}")
        return float(value)

    return check


def _choice(name: str, options):
    def check(value):
        if value not in options:
            raise unknown_name(name, value, options)
        return value

    return check


def _param(value, name: str, check) -> SearchStrategy:
    """`value` as a strategy: a strategy's draws are checked when drawn, a plain value right now."""
    if isinstance(value, SearchStrategy):
        return value.map(check)
    return st.just(check(value))


def _sizes(n, d) -> tuple[SearchStrategy, SearchStrategy]:
    return _param(n, "n", _integer("n", 1, MAX_POINTS)), _param(d, "d", _integer("d", 1, MAX_DIMS))


def _finite(low: float, high: float) -> SearchStrategy:
    return st.floats(low, high, allow_nan=False, allow_infinity=False)


def _accepted(points: np.ndarray) -> np.ndarray:
    """`points` with every coordinate nearer 0 than covertreex's Euclidean range (2**-450) set to 0, so a
    drawn case is one the engines answer instead of refuse (Hypothesis likes values such as 1e-198)."""
    return np.where(np.abs(points) < MIN_EUCLIDEAN_COORDINATE, 0.0, points)


@st.composite
def _grid(draw, n, d, side) -> np.ndarray:
    shape, top = (draw(n), draw(d)), draw(side) - 1
    return draw(hnp.arrays(np.int64, shape, elements=st.integers(0, top))).astype(np.float64)


def point_sets(*, n=SIZES, d=DIMS, bound=100.0) -> SearchStrategy:
    """Arbitrary finite float64 points (n, d) with coordinates in [-bound, bound], 0 or at least 2**-450 in
    magnitude (the Euclidean range covertreex accepts)."""
    n, d = _sizes(n, d)
    bound = _real("bound", MIN_EUCLIDEAN_COORDINATE, 1e150)(bound)

    @st.composite
    def build(draw):
        shape = (draw(n), draw(d))
        return _accepted(draw(hnp.arrays(np.float64, shape, elements=_finite(-bound, bound))))

    return build()


def lattices(*, n=SIZES, d=DIMS, side=SIDES) -> SearchStrategy:
    """Points of the integer grid {0..side-1}^d: exactly tied distances everywhere, repeats when dense."""
    n, d = _sizes(n, d)
    return _grid(n, d, _param(side, "side", _integer("side", 1, 1000)))


def duplicated(*, n=SIZES, d=DIMS, unique=UNIQUE_ROWS) -> SearchStrategy:
    """n rows drawn (with repeats) from `unique` distinct-or-not base points: many exact duplicates."""
    n, d = _sizes(n, d)
    unique = _param(unique, "unique", _integer("unique", 1, MAX_POINTS))

    @st.composite
    def build(draw):
        base = draw(point_sets(n=unique, d=d))
        picks = draw(hnp.arrays(np.int64, draw(n), elements=st.integers(0, len(base) - 1)))
        return np.ascontiguousarray(base[picks])

    return build()


def clusters(*, n=SIZES, d=DIMS, centers=CENTERS, spread=SPREADS) -> SearchStrategy:
    """Tight blobs: `centers` centres in [-10, 10]^d, each point within `spread` of its centre per axis."""
    n, d = _sizes(n, d)
    centers = _param(centers, "centers", _integer("centers", 1, MAX_POINTS))
    spread = _param(spread, "spread", _real("spread", 0.0, 1e6))

    @st.composite
    def build(draw):
        rows, dims, width = draw(n), draw(d), draw(spread)
        middles = draw(hnp.arrays(np.float64, (draw(centers), dims), elements=_finite(-10, 10)))
        labels = draw(hnp.arrays(np.int64, rows, elements=st.integers(0, len(middles) - 1)))
        offsets = draw(hnp.arrays(np.float64, (rows, dims), elements=_finite(-1, 1)))
        return _accepted(np.ascontiguousarray(middles[labels] + width * offsets))

    return build()


def near_ties(*, n=SIZES, d=DIMS, side=SIDES, ulps=ULPS) -> SearchStrategy:
    """Lattice points nudged by up to `ulps` units in the last place: distances tie up to rounding."""
    n, d = _sizes(n, d)
    side = _param(side, "side", _integer("side", 1, 1000))
    ulps = _param(ulps, "ulps", _integer("ulps", 0, 1 << 20))

    @st.composite
    def build(draw):
        grid, reach = draw(_grid(n, d, side)), draw(ulps)
        steps = draw(hnp.arrays(np.int64, grid.shape, elements=st.integers(-reach, reach)))
        return np.ascontiguousarray(grid + steps * np.spacing(np.maximum(np.abs(grid), 1.0)))

    return build()


FAMILIES = {
    "uniform": point_sets,
    "lattice": lattices,
    "duplicates": duplicated,
    "clustered": clusters,
    "near_ties": near_ties,
}
"""Point families by name, as ``knn_cases(family=...)`` accepts them (lattice, duplicates and clustered are
also kinds of the pcct_dataset fixture, under the same names)."""


_CASE_DEFAULTS = {
    "family": st.sampled_from(sorted(FAMILIES)), "n": st.integers(2, 80), "k": st.integers(1, 10),
    "metric": st.sampled_from(METRICS), "queries": st.sampled_from(CASE_QUERIES),
    "n_queries": st.integers(1, 16), "kernel": st.sampled_from(KERNELS),
    "lengthscale": st.floats(0.25, 4.0), "variance": st.one_of(st.floats(0.5, 2.0), st.floats(1e-10, 1e-7)),
    "m": st.integers(1, 32),
}
"""The draws of :func:`knn_cases`. Variances below the residual floor of 1e-9 (p = max(variance - V.V,
1e-9)) are drawn too: at 0.5-2 the floor was never reached, and an engine without it passed every
generated residual case (an outside red team)."""


def _restricted(capabilities, metric, queries, d):
    """The default metric, query-mode and dimension strategies narrowed to `capabilities`."""
    from pytest_pcct.parity.engines import Capabilities

    if not isinstance(capabilities, Capabilities):
        raise InputTypeError(f"capabilities must be a pytest_pcct.parity.engines.Capabilities, got "
                             f"{type(capabilities).__name__}")
    modes = list(capabilities.problems)  # predecessor problems too, when the engine answers them
    if metric is _CASE_DEFAULTS["metric"]:
        metric = st.sampled_from(capabilities.metrics)
    if queries is _CASE_DEFAULTS["queries"]:
        queries = st.sampled_from(modes)
    if d is DIMS and capabilities.max_dims is not None:
        d = st.integers(1, min(capabilities.max_dims, DIMS_MOST))
    return metric, queries, d


def knn_cases(
    *, family=_CASE_DEFAULTS["family"], points=None, n=_CASE_DEFAULTS["n"], d=DIMS,
    k=_CASE_DEFAULTS["k"], metric=_CASE_DEFAULTS["metric"], queries=_CASE_DEFAULTS["queries"],
    n_queries=_CASE_DEFAULTS["n_queries"], kernel=_CASE_DEFAULTS["kernel"],
    lengthscale=_CASE_DEFAULTS["lengthscale"], variance=_CASE_DEFAULTS["variance"], m=_CASE_DEFAULTS["m"],
    capabilities=None,
) -> SearchStrategy[KnnCase]:
    """Whole k-NN cases: points of a `family` (or from `points`, an array strategy), k, metric, queries.

    queries="points" holds the last n_queries drawn rows out as query coordinates (from the same family;
    a single drawn row is both the data and the query);
    "indices" queries indexed points; "predecessor" queries every point among its predecessors. k may
    exceed the eligible points (the answer then pads with (-1, inf)): k is not capped at n. Residual cases
    draw kernel, lengthscale, variance and m (inducing points) as well. `capabilities` (the
    :class:`~pytest_pcct.parity.engines.Capabilities` an engine was registered with) sets the default
    metrics, query modes and dimensions to what that engine answers, predecessor problems included;
    without it the default query modes are points and indices.
    """
    if capabilities is not None:
        metric, queries, d = _restricted(capabilities, metric, queries, d)
    family = _param(family, "family", _choice("point family", FAMILIES))
    if points is not None and not isinstance(points, SearchStrategy):
        raise InputTypeError(f"points must be a strategy of (n, d) arrays, got {type(points).__name__}")
    n, d = _sizes(n, d)
    k = _param(k, "k", _integer("k", 1, MAX_POINTS))
    metric = _param(metric, "metric", _choice("metric", METRICS))
    queries = _param(queries, "queries", _choice("query mode", QUERY_KINDS))
    n_queries = _param(n_queries, "n_queries", _integer("n_queries", 1, MAX_POINTS))
    kernel = _param(kernel, "kernel", _choice("kernel", KERNELS))
    lengthscale = _param(lengthscale, "lengthscale", _real("lengthscale", 1e-6, 1e6))
    variance = _param(variance, "variance", _real("variance", 1e-12, 1e6))
    m = _param(m, "m", _integer("m", 1, MAX_POINTS))

    @st.composite
    def build(draw) -> KnnCase:
        if points is None:
            name = draw(family)
            rows = draw(FAMILIES[name](n=n, d=d))
        else:
            name, rows = "custom", np.asarray(draw(points), dtype=np.float64)
        count, mode = draw(n_queries), draw(queries)
        query_rows = query_indices = None
        if mode == "points" and len(rows) > 1:
            count = min(count, len(rows) - 1)
            data, query_rows = rows[:-count], rows[-count:]
        elif mode == "points":  # one row: it is the data and, as coordinates, the query
            data, query_rows = rows, rows.copy()
        else:
            data = rows
            if mode != "predecessor":
                query_indices = draw(hnp.arrays(np.int64, count, elements=st.integers(0, len(rows) - 1)))
        chosen = draw(metric)
        extra = {}
        if chosen == "residual":
            extra = {"kernel": draw(kernel), "lengthscale": draw(lengthscale),
                     "variance": draw(variance), "m": draw(m)}
        return KnnCase(
            points=np.ascontiguousarray(data), k=draw(k), queries=query_rows, query_indices=query_indices,
            predecessor=mode == "predecessor", metric=chosen, family=name, **extra,
        )

    return build()
