"""The public API: ``CoverTree(engine=..., metric=...).fit(data).kneighbors(queries, k)``."""

from __future__ import annotations

import threading
import time

from covertreex import paths
from covertreex.engines import KnnResult, engine_available, get_engine
from covertreex.errors import InvalidInputError, unknown_name
from covertreex.metrics import METRICS, MetricSpace, QuerySet
from covertreex.ordering import insertion_order
from covertreex.presets import resolve
from covertreex.residual import ResidualProblem, residual_problem
from covertreex.telemetry import make_record
from covertreex.tree import Tree
from covertreex.validation import check_k


class CoverTree:
    """Exact k-nearest neighbours under the Euclidean or residual-correlation metric.

    >>> idx, dist = CoverTree().fit(X).kneighbors(Q, k=5)
    >>> tree = CoverTree(metric="residual").fit(residual_problem(X, m=64, seed=0))
    >>> idx, dist = tree.kneighbors(indices=[0, 5], k=10)   # queries that are indexed points
    >>> idx, dist = tree.kneighbors(k=10, predecessor=True)  # Vecchia: each point among j < i

    Options (see :data:`covertreex.config.KNOBS`) are fixed at construction into one immutable Config.
    A preset (``preset=``, or the COVERTREEX_PRESET environment variable; see
    :mod:`covertreex.presets`) supplies the metric and the options that are not passed explicitly.

    ``engine=None`` (the default) is the fastest exact configuration available: the rust engine in mode
    'perf' (gold where the extension is missing), unless a preset or an explicit ``mode`` says otherwise.
    The tree is built when a query takes the tree path (``path='tree'`` builds it in :meth:`fit`;
    ``'auto'`` and ``'dense'`` build it only on the first query that needs it, or when :attr:`tree` is
    read), so a fit never waits for a tree no query uses.
    """

    def __init__(
        self, engine: str | None = None, metric: str | None = None, *, preset: str | None = None,
        **options,
    ):
        fastest = engine is None
        if fastest:
            engine = "rust" if engine_available("rust") else "gold"
        resolved = resolve(preset, metric, defaults={"mode": "perf"} if fastest else None, **options)
        if resolved.metric not in METRICS:
            raise unknown_name("metric", resolved.metric, METRICS)
        self.engine = get_engine(engine)
        self.preset = resolved.preset
        self.metric = resolved.metric
        self.config = resolved.config
        self.space: MetricSpace | None = None
        self._tree: Tree | None = None
        self._order = None
        self._build_lock = threading.Lock()
        self.build_seconds = 0.0
        self.last_result: KnnResult | None = None

    @property
    def tree(self) -> Tree | None:
        """The cover tree over the fitted data (built now if no query has needed it yet)."""
        if self._tree is None and self.space is not None and self.engine.uses_tree:
            self._build()
        return self._tree

    @property
    def built_tree(self) -> Tree | None:
        """The tree if one has been built or attached, without building it."""
        return self._tree

    def _build(self) -> None:
        with self._build_lock:
            if self._tree is not None:
                return
            shared = self.config.shared_tree
            builder = get_engine("gold") if shared else self.engine
            start = time.perf_counter()
            tree = builder.build(self.space, self._order, self.config)
            self.build_seconds = time.perf_counter() - start
            self._tree = tree

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
        self.space, self._tree, self.build_seconds = space, None, 0.0
        self._order = insertion_order(self.config.order, space.data.X)
        if self.config.path == "tree" and self.engine.uses_tree:
            self._build()
        return self

    def use_tree(self, tree: Tree, data) -> CoverTree:
        """Attach a tree built elsewhere (another engine, or :func:`covertreex.tree.load`) to its data."""
        space = MetricSpace.create(self.metric, data)
        if tree.space_digest != space.digest or tree.metric != space.metric:
            raise InvalidInputError("tree was built on different data or metric than `data`")
        self.space, self._tree = space, tree
        return self

    def _queries(self, queries, indices, predecessor) -> QuerySet:
        given = sum(x is not None and x is not False for x in (queries, indices, predecessor or None))
        if given != 1:
            raise InvalidInputError("pass exactly one of queries, indices=..., or predecessor=True")
        if predecessor:
            return self.space.all_points(predecessor=True)
        if indices is not None:
            return self.space.indexed_queries(indices)
        return self.space.point_queries(queries)

    def choose_path(self, queries: QuerySet, k: int) -> str:
        """The path of one call: the engine's own for brute, else the ``path`` knob, with 'auto'
        resolved by the cost model of :mod:`covertreex.paths`."""
        if not self.engine.uses_tree:
            return "exhaustive"
        if self.config.path != "auto":
            return self.config.path
        pairs = float(queries.limit.clip(0, self.space.n_points).sum())
        return paths.choose(self.metric, self.space.n_dims, self.space.n_points, k, pairs,
                            queries.n_queries, self._tree is not None)

    def query(self, queries=None, k: int = 1, *, indices=None, predecessor: bool = False) -> KnnResult:
        """Full result: neighbours, counters and (if enabled) the telemetry record."""
        if self.space is None:
            raise InvalidInputError("call fit() before querying")
        query_set = self._queries(queries, indices, predecessor)
        k = check_k(k, self.space.n_points, allow_padding=predecessor)
        path = self.choose_path(query_set, k)
        tree = self.tree if path == "tree" else None  # a lazy build is not query time
        start = time.perf_counter()
        if path == "dense":
            idx, dist, counters = self.engine.dense(self.space, query_set, k, self.config)
        else:
            idx, dist, counters = self.engine.query(tree, self.space, query_set, k, self.config)
        seconds = time.perf_counter() - start
        record = None
        if self.config.telemetry:
            record = make_record(
                engine=self.engine.name,
                mode=self.engine.telemetry_mode(self.config),
                space=self.space,
                queries=query_set,
                k=k,
                config=self.config,
                tree=tree,
                counters=counters,
                seconds=seconds,
            )
        self.last_result = KnnResult(idx, dist, counters, record, seconds)
        return self.last_result

    def kneighbors(self, queries=None, k: int = 1, *, indices=None, predecessor: bool = False):
        """(indices, distances), each (n_queries, k), rows sorted by (distance, index), padded (-1, inf)."""
        result = self.query(queries, k, indices=indices, predecessor=predecessor)
        return result.indices, result.distances
