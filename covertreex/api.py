"""The public API: ``CoverTree(engine=..., metric=...).fit(data).kneighbors(queries, k)``."""

from __future__ import annotations

import time
from dataclasses import dataclass

from covertreex.engines import KnnResult, get_engine
from covertreex.errors import InvalidInputError, KOutOfRangeError, unknown_name
from covertreex.metrics import METRICS, MetricSpace, QuerySet
from covertreex.ordering import insertion_order
from covertreex.presets import resolve
from covertreex.residual import ResidualProblem, residual_problem
from covertreex.resources import require_memory
from covertreex.telemetry import make_record
from covertreex.tree import Tree, checked
from covertreex.validation import as_bool, check_k

_ANSWER_BYTES = 16
"""Bytes per answer cell: an int64 index and a float64 distance."""


@dataclass(frozen=True)
class _Fitted:
    """What fit() or use_tree() produced, replaced as one object so a query never mixes two fits."""

    space: MetricSpace
    tree: Tree | None


class CoverTree:
    """Exact k-nearest neighbours under the Euclidean or residual-correlation metric.

    >>> idx, dist = CoverTree().fit(X).kneighbors(Q, k=5)
    >>> tree = CoverTree(metric="residual").fit(residual_problem(X, m=64, seed=0))
    >>> idx, dist = tree.kneighbors(indices=[0, 5], k=10)   # queries that are indexed points
    >>> idx, dist = tree.kneighbors(k=10, predecessor=True)  # Vecchia: each point among j < i

    Options (see :data:`covertreex.config.KNOBS`) are fixed at construction into one immutable Config.
    A preset (``preset=``, or the COVERTREEX_PRESET environment variable; see
    :mod:`covertreex.presets`) supplies the metric and the options that are not passed explicitly.

    Ownership and threads: ``fit`` keeps read-only copies of the arrays it indexes (and ``use_tree`` of
    the tree), so later changes to the caller's arrays never reach a query. One CoverTree may be shared
    by threads: queries may run concurrently with each other and with ``fit``/``use_tree``; each query
    reads the fitted state once and answers entirely from the fit completed before it started (or a
    later one), never from a mix of two. ``last_result`` is the result of whichever query finished last.
    """

    def __init__(
        self, engine: str = "gold", metric: str | None = None, *, preset: str | None = None, **options
    ):
        resolved = resolve(preset, metric, **options)
        if resolved.metric not in METRICS:
            raise unknown_name("metric", resolved.metric, METRICS)
        self.engine = get_engine(engine)
        self.preset = resolved.preset
        self.metric = resolved.metric
        self.config = resolved.config
        self._fitted: _Fitted | None = None
        self.build_seconds = 0.0
        self.last_result: KnnResult | None = None

    def fit(self, data, **residual_params) -> CoverTree:
        """Index `data`: points (n, d) for Euclidean; a ResidualProblem, or points plus
        :func:`~covertreex.residual_problem` parameters, for the residual metric."""
        if self.metric == "residual" and not isinstance(data, ResidualProblem):
            data = residual_problem(data, **residual_params)
        elif residual_params:
            raise InvalidInputError(
                f"parameters {sorted(residual_params)} only apply when fitting raw points "
                "with metric='residual'"
            )
        space = MetricSpace.create(self.metric, data)
        order = insertion_order(self.config.order, space.data.X)
        shared = self.config.shared_tree and self.engine.uses_tree
        builder = get_engine("gold") if shared else self.engine
        start = time.perf_counter()
        tree = builder.build(space, order, self.config)
        self.build_seconds = time.perf_counter() - start
        self._fitted = _Fitted(space, tree)
        return self

    def use_tree(self, tree: Tree, data) -> CoverTree:
        """Attach a tree built elsewhere (another engine, or :func:`covertreex.tree.load`) to its data.
        The tree is checked first (see :func:`covertreex.tree.checked`) and a read-only copy is kept."""
        space = MetricSpace.create(self.metric, data)
        self._fitted = _Fitted(space, checked(tree, space))
        return self

    @property
    def space(self) -> MetricSpace | None:
        """The indexed points of the current fit (None before fit)."""
        return self._fitted.space if self._fitted else None

    @property
    def tree(self) -> Tree | None:
        """The tree of the current fit (None before fit, and for an engine that builds none)."""
        return self._fitted.tree if self._fitted else None

    @staticmethod
    def _queries(space: MetricSpace, queries, indices, predecessor: bool) -> QuerySet:
        given = sum(x is not None for x in (queries, indices)) + predecessor
        if given != 1:
            raise InvalidInputError("pass exactly one of queries, indices=..., or predecessor=True")
        if predecessor:
            return space.all_points(predecessor=True)
        if indices is not None:
            return space.indexed_queries(indices)
        return space.point_queries(queries)

    def query(self, queries=None, k: int = 1, *, indices=None, predecessor: bool = False) -> KnnResult:
        """Full result: neighbours, counters and (if enabled) the telemetry record."""
        fitted = self._fitted
        if fitted is None:
            raise InvalidInputError("call fit() before querying")
        space = fitted.space
        predecessor = as_bool(predecessor, "predecessor")
        query_set = self._queries(space, queries, indices, predecessor)
        k = check_k(k, space.n_points, allow_padding=predecessor)
        require_memory(
            query_set.n_queries * k * _ANSWER_BYTES,
            f"k = {k} is too large: the answer ({query_set.n_queries} rows of k indices and distances)",
            KOutOfRangeError,
        )
        start = time.perf_counter()
        idx, dist, counters = self.engine.query(fitted.tree, space, query_set, k, self.config)
        seconds = time.perf_counter() - start
        record = None
        if self.config.telemetry:
            record = make_record(
                engine=self.engine.name,
                mode=self.engine.telemetry_mode(self.config),
                space=space,
                queries=query_set,
                k=k,
                config=self.config,
                tree=fitted.tree if self.engine.uses_tree else None,
                counters=counters,
                seconds=seconds,
            )
        self.last_result = KnnResult(idx, dist, counters, record, seconds)
        return self.last_result

    def kneighbors(self, queries=None, k: int = 1, *, indices=None, predecessor: bool = False):
        """(indices, distances), each (n_queries, k), rows sorted by (distance, index), padded (-1, inf)."""
        result = self.query(queries, k, indices=indices, predecessor=predecessor)
        return result.indices, result.distances
