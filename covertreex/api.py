"""The public API: ``CoverTree(engine=..., metric=...).fit(data).kneighbors(queries, k)``.

``kneighbors`` returns ``(distances, indices)``, scikit-learn's order; :mod:`covertreex.sklearn` wraps this
class as a scikit-learn estimator.
"""

from __future__ import annotations

import functools
import threading
import time

from covertreex import paths
from covertreex.config import Config
from covertreex.engines import KnnResult, engine_available, get_engine
from covertreex.errors import InvalidInputError, unknown_name
from covertreex.interrupts import deferring
from covertreex.kinds import METRICS
from covertreex.metrics import MetricSpace, QuerySet
from covertreex.metrics.data import read_only
from covertreex.ordering import insertion_order
from covertreex.presets import resolve
from covertreex.residual import ResidualProblem, residual_problem
from covertreex.resources import require_answer_memory, thread_limit
from covertreex.scalars import as_bool
from covertreex.telemetry import RecordSource
from covertreex.tree import Tree, checked
from covertreex.validation import check_k
from covertreex.vecchia_orderings import given_permutation


def _metric_unknown(space: MetricSpace) -> bool:
    """Whether the residual distance of `space` may not be a metric (a V given without the caller saying it
    is a factor of the kernel): then no cover tree may answer it."""
    return space.problem is not None and not space.problem.factor_of_kernel


def _require_metric(space: MetricSpace) -> None:
    if _metric_unknown(space):
        raise InvalidInputError(
            "the tree path cannot answer this residual problem: its V was given to "
            "ResidualProblem.from_arrays without factor_of_kernel=True, and unless V is a low-rank factor of "
            "the kernel the residual distance is no metric, so a tree pruning by the triangle inequality "
            "would drop true neighbours. path='dense' (or 'auto', which takes it here) and the brute engine "
            "answer exactly for any V; pass factor_of_kernel=True if V is such a factor"
        )


class _Fitted:
    """What fit() or use_tree() produced, replaced as one object so a query never mixes two fits. Its tree
    is built at most once, when first needed, under its own lock."""

    def __init__(self, space: MetricSpace, order=None, tree: Tree | None = None):
        self.space, self.order = space, order
        self._tree = tree
        self._lock = threading.Lock()
        self.build_seconds = 0.0

    def __getstate__(self) -> dict:
        """Pickle everything but the lock (so a fitted CoverTree pickles, tree included)."""
        return {name: value for name, value in self.__dict__.items() if name != "_lock"}

    def __setstate__(self, state: dict) -> None:
        """A tree that arrives with the fit is checked as :meth:`CoverTree.use_tree` checks one from outside
        (a pickle may have been altered: children out of range crashed gold's walk, shrunk radii made rust
        drop neighbours silently), and kept as a read-only copy; the insertion order must be a permutation
        of the points (gold's build indexes by it without bounds checks)."""
        self.__dict__.update(state)
        self._lock = threading.Lock()
        if self.order is not None:  # the insertion order gold's build indexes by, unchecked
            self.order = read_only(given_permutation(self.order, self.space.n_points, "the insertion order",
                                                     names=False))
        if self._tree is not None:
            self._tree = checked(self._tree, self.space)

    @property
    def built_tree(self) -> Tree | None:
        return self._tree

    def tree(self, engine, config) -> Tree:
        """The tree, built now by `engine` (gold for a shared tree) if it does not exist yet."""
        _require_metric(self.space)
        with self._lock:
            if self._tree is None:
                builder = get_engine("gold") if config.shared_tree else engine
                start = time.perf_counter()
                self._tree = builder.build(self.space, self.order, config)
                self.build_seconds = time.perf_counter() - start
            return self._tree


def _on_its_threads(method):
    """`method` with its parallel steps outside the engine (V's construction for raw points, the projection
    of query rows, the checks of an attached tree) on the ``threads`` knob's threads too
    (:func:`covertreex.resources.thread_limit`): the engine alone took the knob, and ``threads=1`` still
    built V on every core."""

    @functools.wraps(method)
    def limited(self, *args, **kwargs):
        if self.config.threads is None:  # no limit to set: a one-row query pays no context manager
            return method(self, *args, **kwargs)
        with thread_limit(self.config.threads):
            return method(self, *args, **kwargs)

    return limited


class CoverTree:
    """Exact k-nearest neighbours under the Euclidean or residual-correlation metric.

    >>> dist, idx = CoverTree().fit(X).kneighbors(Q, k=5)
    >>> tree = CoverTree(metric="residual").fit(residual_problem(X, m=64, seed=0))
    >>> dist, idx = tree.kneighbors(indices=[0, 5], k=10)   # queries that are indexed points
    >>> dist, idx = tree.kneighbors(k=10, predecessor=True)  # Vecchia: each point among j < i

    Options (see :data:`covertreex.config.KNOBS`) are fixed at construction into one immutable Config.
    Each engine reads the knobs that concern it (``mode`` and ``query_block``: rust only; ``brute_variant``
    and ``gemm_block``: brute only; the tree, dense and schedule knobs: gold and rust) and ignores the rest,
    so one set of options can configure a comparison across engines; no knob ever changes an answer.
    A preset (``preset=``, or the COVERTREEX_PRESET environment variable; see
    :mod:`covertreex.presets`) supplies the metric and the options that are not passed explicitly.

    Ownership and threads: ``fit`` keeps read-only copies of the arrays it indexes (and ``use_tree`` of
    the tree), so later changes to the caller's arrays never reach a query. One CoverTree may be shared
    by threads: queries may run concurrently with each other and with ``fit``/``use_tree``; each query
    reads the fitted state once and answers entirely from the fit completed before it started (or a
    later one), never from a mix of two. ``last_result`` is the result of whichever query finished last.
    A fitted CoverTree pickles, with its tree if one was built.

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
        self._fitted: _Fitted | None = None
        self.last_result: KnnResult | None = None

    @deferring  # one hold of SIGINT for every Numba call inside (the nested holds cost nothing)
    @_on_its_threads
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
        fitted = _Fitted(space, insertion_order(self.config.order, space.data.X))
        if self.config.path == "tree" and self.engine.uses_tree:
            fitted.tree(self.engine, self.config)
        self._fitted = fitted
        return self

    @_on_its_threads
    def use_tree(self, tree: Tree, data) -> CoverTree:
        """Attach a tree built elsewhere (another engine, or :func:`covertreex.tree.load`) to its data.
        The tree is checked first (see :func:`covertreex.tree.checked`) and a read-only copy is kept."""
        space = MetricSpace.create(self.metric, data)
        _require_metric(space)
        self._fitted = _Fitted(space, tree=checked(tree, space))
        return self

    def __repr__(self) -> str:
        """Engine, metric, the knobs that differ from their defaults, and what is fitted."""
        defaults = Config()
        changed = [f"{name}={value!r}" for name, value in self.config.as_dict().items()
                   if value != getattr(defaults, name)]
        fitted = self._fitted
        state = "not fitted" if fitted is None else (
            f"fitted on {fitted.space.n_points} x {fitted.space.n_dims}"
            + (", tree built" if fitted.built_tree is not None else ""))
        preset = f", preset={self.preset!r}" if self.preset else ""  # where the changed knobs came from
        return (f"CoverTree(engine={self.engine.name!r}, metric={self.metric!r}{preset}"
                + "".join(f", {text}" for text in changed) + f"; {state})")

    @property
    def space(self) -> MetricSpace | None:
        """The indexed points of the current fit (None before fit)."""
        return self._fitted.space if self._fitted else None

    @property
    def tree(self) -> Tree | None:
        """The tree of the current fit, built now if no query has needed it yet (None before fit, and
        for an engine that builds none)."""
        fitted = self._fitted
        if fitted is None or not self.engine.uses_tree:
            return None
        return fitted.tree(self.engine, self.config)

    @property
    def built_tree(self) -> Tree | None:
        """The tree if one has been built or attached, without building it."""
        return self._fitted.built_tree if self._fitted else None

    @property
    def build_seconds(self) -> float:
        """Seconds the current fit's tree took to build (0.0 while none was built, or it was attached)."""
        return self._fitted.build_seconds if self._fitted else 0.0

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

    def choose_path(self, space: MetricSpace, tree_built: bool, queries: QuerySet, k: int) -> str:
        """The path of one call: 'exhaustive' for brute, else the ``path`` knob, with 'auto' resolved by
        the cost model of :mod:`covertreex.paths`."""
        if not self.engine.uses_tree:
            return "exhaustive"
        if self.config.path != "auto":
            return self.config.path
        if _metric_unknown(space):
            return "dense"
        pairs = queries.eligible_pairs(space.n_points)
        box_screen = getattr(self.engine, "box_screen", None)  # optional in the engine interface
        boxes = box_screen is not None and box_screen(space, self.config)
        return paths.choose(self.metric, space.n_dims, space.n_points, k, pairs, queries.n_queries,
                            tree_built, boxes=boxes, predecessor=queries.predecessor)

    @deferring  # one hold of SIGINT for the projection and the engine's Numba calls
    @_on_its_threads
    def query(self, queries=None, k: int = 1, *, indices=None, predecessor: bool = False) -> KnnResult:
        """Full result: neighbours, counters and (if enabled) the telemetry record, read by name
        (``result.indices``, ``result.distances``): a KnnResult does not unpack, since scipy's
        cKDTree.query returns distances first and the result's fields hold indices first."""
        fitted = self._fitted
        if fitted is None:
            raise InvalidInputError("call fit() before querying")
        space = fitted.space
        predecessor = as_bool(predecessor, "predecessor")
        query_set = self._queries(space, queries, indices, predecessor)
        k = check_k(k, space.n_points, allow_padding=predecessor)
        require_answer_memory(query_set.n_queries, k)
        path = self.choose_path(space, fitted.built_tree is not None, query_set, k)
        tree = fitted.tree(self.engine, self.config) if path == "tree" else None  # not query time
        start = time.perf_counter()
        if path == "dense":
            idx, dist, counters = self.engine.dense(space, query_set, k, self.config)
        else:
            idx, dist, counters = self.engine.query(tree, space, query_set, k, self.config)
        seconds = time.perf_counter() - start
        source = None
        if self.config.telemetry:
            source = RecordSource.of_call(
                engine=self.engine.name, mode=self.engine.telemetry_mode(self.config), space=space,
                queries=query_set, k=k, config=self.config, tree=tree, seconds=seconds,
            )
        self.last_result = KnnResult(idx, dist, counters.frozen(), seconds, describe=source)
        return self.last_result

    def kneighbors(self, queries=None, k: int = 1, *, indices=None, predecessor: bool = False):
        """(distances, indices), each (n_queries, k), in scikit-learn's order; rows sorted by (distance,
        index), padded (inf, -1). :meth:`query` returns them by name, with the counters. Under the residual
        metric a query row equal to an indexed point's coordinates is that point (as ``indices=`` answers
        it); other rows are projected through the inducing points (docs/inputs.md)."""
        result = self.query(queries, k, indices=indices, predecessor=predecessor)
        return result.distances, result.indices
