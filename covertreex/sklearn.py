"""A scikit-learn estimator over :class:`~covertreex.CoverTree`: exact neighbours in scikit-learn pipelines.

:class:`CoverTreeNeighbors` follows scikit-learn's neighbours conventions (``kneighbors`` returns ``(dist,
ind)``; ``X=None`` means the training points, each without itself) and is a ``KNeighborsTransformer``:
``transform`` gives the sparse neighbours graph that estimators taking ``metric="precomputed"`` (Isomap,
TSNE, DBSCAN, ...) consume. Every answer is exact: the neighbours of the oracle, rows ordered by (distance,
index), distances bitwise the canonical ones of DESIGN section 3. Needs scikit-learn >= 1.6 (the ``sklearn``
extra).
"""

from __future__ import annotations

import math

import numpy as np
from scipy.sparse import csr_matrix

try:
    from sklearn.base import BaseEstimator, ClassNamePrefixFeaturesOutMixin, TransformerMixin
    from sklearn.utils.validation import check_is_fitted, validate_data
except ImportError as exc:  # validate_data (and the tags the checks use) arrived in scikit-learn 1.6
    raise ImportError(
        f"covertreex.sklearn needs scikit-learn >= 1.6: pip install 'covertreex[sklearn]' ({exc})"
    ) from exc

from covertreex.api import CoverTree
from covertreex.config import KNOBS
from covertreex.errors import InputTypeError, InvalidInputError, KOutOfRangeError, unknown_name
from covertreex.kinds import METRICS
from covertreex.residual import check_parameters
from covertreex.resources import ANSWER_BYTES, available_bytes, require_memory
from covertreex.scalars import as_bool, as_int
from covertreex.validation import as_array, as_points, check_exact_conversion

GRAPH_MODES = ("distance", "connectivity")
RADIUS_ROWS = 4096
"""Query rows per call of the engine's own ball search (radius_neighbors' `_within`)."""
RADIUS_BYTES_PER_POINT = 64
"""Bytes one point found by the ball search takes until its block's rows are copied out: an index and a
distance in the engine's per-query lists, in its answer and in the copied row, with room to spare; a block
may find at most the memory available over this."""
RADIUS_BLOCK_CELLS = 1 << 22
"""Query rows x k cells per call of radius_neighbors' widening search (64 MiB of indices and distances):
the rows still pending at each k go in blocks of at most this many, so the search's working memory stays
within a block while the answer accumulates, and each block's call checks that memory is left for it.
Every pending row at once peaked at 4x the answer (radius=inf, 10,000 points: 6.3 GB for a 1.6 GB answer),
and an outside trial was killed by the kernel at 20,000."""
RADIUS_MAX_GROWTH = 16.0
"""At most this factor of k per step of radius_neighbors' widening search where the volume of the ball
predicts more: data of a lower intrinsic dimension than its coordinates needs less."""

__all__ = ["GRAPH_MODES", "CoverTreeNeighbors"]


def _graph_mode(mode) -> str:
    if not isinstance(mode, str) or mode not in GRAPH_MODES:
        raise unknown_name("mode", mode, GRAPH_MODES)
    return mode


def _radius(radius) -> float:
    """A radius >= 0 (inf allowed: every point); a 0-d array is its number, as in scikit-learn."""
    if isinstance(radius, np.ndarray) and radius.ndim == 0:
        radius = radius[()]
    if isinstance(radius, bool) or not isinstance(radius, (int, float, np.integer, np.floating)):
        raise InputTypeError(f"radius must be a real number, got {type(radius).__name__} {radius!r}")
    if not radius >= 0:  # also refuses NaN
        raise InvalidInputError(f"radius must be >= 0, got {radius!r}")
    try:
        return float(radius)
    except OverflowError:  # an integer beyond the doubles: larger than every distance, as inf is
        return math.inf


def _integer_frame(X) -> np.ndarray | None:
    """A table (a pandas DataFrame) with an integer column (int64, uint64, nullable Int64) as Python objects,
    for the exactness check: scikit-learn turns a frame of mixed or nullable dtypes into float64 itself,
    and two rows 1 apart beyond 2**53 became duplicates at distance 0 (an outside review); else None."""
    dtypes, to_numpy = getattr(X, "dtypes", None), getattr(X, "to_numpy", None)
    if dtypes is None or to_numpy is None or isinstance(X, np.ndarray):
        return None
    try:
        kinds = [getattr(dtype, "kind", "") for dtype in dtypes]
    except TypeError:  # one dtype (a Series), not one per column
        return None
    return np.asarray(to_numpy(dtype=object)) if any(kind in ("i", "u") for kind in kinds) else None


def _without_self(dist: np.ndarray, ind: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Drop each row's own index from its k+1 nearest. A row without it (its k+1 nearest are all at
    distance 0 with smaller indices) drops its last column instead: either way the row keeps the k nearest
    other points in (distance, index) order."""
    keep = ind != rows[:, None]
    keep[keep.all(axis=1), -1] = False
    shape = (ind.shape[0], ind.shape[1] - 1)
    return dist[keep].reshape(shape), ind[keep].reshape(shape)


def _graph(dist: np.ndarray, ind: np.ndarray, indptr: np.ndarray, n_columns: int, mode: str) -> csr_matrix:
    """The CSR graph scikit-learn's ``*_graph`` methods return: distances, or ones, in the listed cells."""
    data = dist if mode == "distance" else np.ones(ind.shape[0])
    return csr_matrix((data, ind, indptr), shape=(indptr.shape[0] - 1, n_columns))


def _ragged(rows: list[np.ndarray]) -> np.ndarray:
    """A 1-D object array holding one array per row (scikit-learn's radius_neighbors format)."""
    out = np.empty(len(rows), dtype=object)
    for at, row in enumerate(rows):
        out[at] = row
    return out


class CoverTreeNeighbors(ClassNamePrefixFeaturesOutMixin, TransformerMixin, BaseEstimator):
    """Exact k-nearest and radius neighbours by a cover tree, as a scikit-learn ``KNeighborsTransformer``.

    >>> graph = CoverTreeNeighbors(n_neighbors=10).fit_transform(X)  # sparse; rows by (distance, index)
    >>> dist, ind = CoverTreeNeighbors(n_neighbors=10).fit(X).kneighbors()  # each point without itself
    >>> make_pipeline(CoverTreeNeighbors(n_neighbors=10), Isomap(n_neighbors=10, metric="precomputed"))

    Parameters
        n_neighbors: neighbours per query (``transform`` in mode 'distance' adds one for the point itself,
            as scikit-learn's KNeighborsTransformer does).
        mode: what ``transform`` stores, 'distance' or 'connectivity' (ones).
        radius: default radius of ``radius_neighbors`` (distance <= radius).
        metric: 'euclidean', or 'residual' (the residual correlation of a low-rank GP on the coordinates).
        kernel, lengthscale, variance, m, seed: the residual problem built in ``fit``, exactly as
            :func:`covertreex.residual_problem` takes them (unused for Euclidean).
        engine, engine_mode, path, threads: :class:`~covertreex.CoverTree`'s engine and its knobs 'mode',
            'path' and 'threads' (see :data:`covertreex.config.KNOBS`); None leaves each to CoverTree's
            default (the fastest exact configuration, or the COVERTREEX_PRESET preset).
            ``engine_mode`` is the knob 'mode', renamed because ``mode`` is the transformer's.

    Fitted attributes: ``cover_tree_`` (the fitted CoverTree), ``n_samples_fit_``, ``n_features_in_``.
    Queries by new points with the residual metric project them onto the fitted inducing points.
    """

    def __init__(
        self, n_neighbors=5, *, mode="distance", radius=1.0, metric="euclidean", kernel="rbf",
        lengthscale=1.0, variance=1.0, m=512, seed=0, engine=None, engine_mode=None, path=None,
        threads=None,
    ):
        self.n_neighbors = n_neighbors
        self.mode = mode
        self.radius = radius
        self.metric = metric
        self.kernel = kernel
        self.lengthscale = lengthscale
        self.variance = variance
        self.m = m
        self.seed = seed
        self.engine = engine
        self.engine_mode = engine_mode
        self.path = path
        self.threads = threads

    def fit(self, X, y=None):
        """Index the rows of X (y is ignored)."""
        if self.metric not in METRICS:  # None was CoverTree's default, which a preset's variable can change
            raise unknown_name("metric", self.metric, METRICS)
        _graph_mode(self.mode)
        _radius(self.radius)
        self._n_neighbors()
        X = self._validated(X)
        if self.engine_mode is not None:  # checked under its own name: 'mode' is the transformer's
            KNOBS["mode"].check("engine_mode", self.engine_mode)
        knobs = {"mode": self.engine_mode, "path": self.path, "threads": self.threads}
        tree = CoverTree(self.engine, self.metric, **{k: v for k, v in knobs.items() if v is not None})
        if tree.metric == "residual":
            tree.fit(X, kernel=self.kernel, lengthscale=self.lengthscale, variance=self.variance, m=self.m,
                     seed=self.seed)
        else:  # the residual parameters are unused here, but a bad one is still an error
            check_parameters(X.shape[1], kernel=self.kernel, lengthscale=self.lengthscale,
                             variance=self.variance, m=self.m, seed=self.seed)
            tree.fit(X)
        self.cover_tree_ = tree
        self.n_samples_fit_ = X.shape[0]
        self._n_features_out = self.n_samples_fit_  # a graph column per training point: get_feature_names_out
        return self

    def _n_neighbors(self) -> int:
        """The n_neighbors parameter, checked (set_params may have changed it since fit)."""
        n_neighbors = as_int(self.n_neighbors, "n_neighbors")
        if n_neighbors < 1:
            raise KOutOfRangeError(f"n_neighbors must be >= 1, got {n_neighbors}")
        return n_neighbors

    def _queries(self, X) -> np.ndarray | None:
        """X checked against the fit (None stays None: the training points, each without itself), its
        range too under the name X (the tree's own check called it 'queries', a name the caller never
        gave)."""
        check_is_fitted(self)
        if X is None:
            return None
        X = self._validated(X, reset=False)
        self.cover_tree_.space.check_query_range(X, "X")
        return X

    def _validated(self, X, reset: bool = True) -> np.ndarray:
        """X through scikit-learn's checks, then made float64 by covertreex's, whose errors name X:
        scikit-learn keeps integer dtypes, so that the exactness check sees them (its own conversion
        rounded int64 values above 2**53 silently); booleans become 0.0 and 1.0, as in scikit-learn's own
        neighbours."""
        if isinstance(X, (list, tuple)):
            X = as_array(X, "X")  # once, here: its dtype says whether scikit-learn's conversion can round
        source = X if isinstance(X, np.ndarray) and X.dtype == object else _integer_frame(X)
        X = validate_data(self, X, dtype="numeric", order="C", reset=reset)
        if source is not None:
            check_exact_conversion(source, X, "X", 2)  # scikit-learn made it float64, rounding big ints
        return as_points(X.astype(np.float64) if X.dtype.kind == "b" else X, "X")  # errors name X

    def _eligible(self, X) -> int:
        return self.n_samples_fit_ - (X is None)

    def _knn(self, X: np.ndarray | None, rows: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(dist, ind) of the k nearest of the query rows `rows`: training points without themselves, or
        rows of X. Only those rows are queried: a row's answer and distance bits do not depend on the
        other rows of its batch (a residual projection solves each row on its own)."""
        if X is None:
            dist, ind = self.cover_tree_.kneighbors(indices=rows, k=k + 1)
            return _without_self(dist, ind, rows)
        return self.cover_tree_.kneighbors(X[rows], k)  # a row at a training point's coordinates is it

    def kneighbors(self, X=None, n_neighbors=None, return_distance=True):
        """``(dist, ind)`` of the n_neighbors nearest training points of each row of X (or ``ind`` alone),
        rows sorted by (distance, index). ``X=None``: each training point, excluding itself."""
        return_distance = as_bool(return_distance, "return_distance")
        X = self._queries(X)
        k = as_int(self.n_neighbors if n_neighbors is None else n_neighbors, "n_neighbors")
        eligible = self._eligible(X)
        if not 1 <= k <= eligible:
            among = "other training points" if X is None else "training points"
            if eligible == 0:
                raise KOutOfRangeError(f"kneighbors() of the training points needs 2 or more of them (each "
                                       f"point's neighbours exclude itself); fitted on 1, n_neighbors={k}")
            raise KOutOfRangeError(f"n_neighbors must lie in [1, {eligible}] (the {among}), got {k}")
        n_rows = self.n_samples_fit_ if X is None else X.shape[0]
        dist, ind = self._knn(X, np.arange(n_rows), k)
        return (dist, ind) if return_distance else ind

    def kneighbors_graph(self, X=None, n_neighbors=None, mode="connectivity"):
        """CSR matrix (n_queries, n_samples_fit) with the k nearest of each row: distances or ones."""
        mode = _graph_mode(mode)
        dist, ind = self.kneighbors(X, n_neighbors)
        indptr = np.arange(0, ind.size + 1, ind.shape[1])
        return _graph(dist.ravel(), ind.ravel(), indptr, self.n_samples_fit_, mode)

    def radius_neighbors(self, X=None, radius=None, return_distance=True, sort_results=False):
        """``(dist, ind)`` object arrays with, per row of X, every training point at distance <= radius
        (or ``ind`` alone). Rows are always sorted by (distance, index), so ``sort_results`` (kept for
        scikit-learn's signature) changes nothing. ``X=None``: each training point, excluding itself.

        Exact by construction: the engine's ball search where it has one (:meth:`_within`), else an exact
        k-NN with k widened (:meth:`_widened`), for the rows whose k-th neighbour is still inside the
        radius, until it lies outside or k covers every eligible point (radius=inf: at once); rows in
        blocks of :data:`RADIUS_BLOCK_CELLS` cells."""
        return_distance = as_bool(return_distance, "return_distance")
        if as_bool(sort_results, "sort_results") and not return_distance:  # scikit-learn's rule
            raise InvalidInputError("return_distance must be True if sort_results is True")
        X = self._queries(X)
        radius = _radius(self.radius if radius is None else radius)
        self._n_neighbors()  # an estimator set to a bad n_neighbors is refused whichever search runs
        found = self._within(X, radius)
        if found is not None:
            return found if return_distance else found[1]
        n_rows = self.n_samples_fit_ if X is None else X.shape[0]
        eligible = self._eligible(X)
        dist_rows = [np.empty(0)] * n_rows
        ind_rows = [np.empty(0, dtype=np.int64)] * n_rows
        pending = np.arange(n_rows) if eligible else np.arange(0)
        k = min(self._n_neighbors(), eligible)  # where the search starts (0 was "k must be >= 1")
        if math.isinf(radius):
            k = eligible  # every point is inside: all of them at once, whose size is known before any work
            require_memory(n_rows * eligible * ANSWER_BYTES,
                           f"radius={radius} holds too many training points for the memory available: all "
                           f"{eligible} for each of {n_rows} rows", KOutOfRangeError)
        while pending.size:
            per_block = max(1, RADIUS_BLOCK_CELLS // (k + (X is None)))  # _knn lists a row's own point too
            still, reached = [], math.inf
            for start in range(0, pending.size, per_block):
                rows = pending[start : start + per_block]
                try:
                    dist, ind = self._knn(X, rows, k)
                except KOutOfRangeError as exc:  # memory: k never exceeds the eligible points
                    raise KOutOfRangeError(
                        f"radius={radius} holds too many training points for the memory available: the "
                        f"search widened to k = {k} for {rows.size} rows failed ({exc})") from exc
                done = (dist[:, -1] > radius) | (k == eligible)
                for row, d, i in zip(rows[done], dist[done], ind[done], strict=True):
                    inside = np.searchsorted(d, radius, side="right")
                    dist_rows[row], ind_rows[row] = d[:inside].copy(), i[:inside].copy()  # not block views
                still.append(rows[~done])
                if not done.all():
                    reached = min(reached, float(dist[~done, -1].min()))
            pending, k = np.concatenate(still), self._widened(k, reached, radius, eligible)
        return (_ragged(dist_rows), _ragged(ind_rows)) if return_distance else _ragged(ind_rows)

    def _within(self, X: np.ndarray | None, radius: float):
        """``(dist, ind)`` object arrays of radius_neighbors by the engine's own ball search where it has
        one for this fit (rust's box screen: Euclidean points of a few coordinates, perf mode; not with
        path='tree', which asks for the tree's walk), rows in blocks of :data:`RADIUS_ROWS`; else None.
        Not for radius=inf either: every point is inside, and the k-NN of every point at once checks that
        the answer fits in memory before it is made."""
        tree = self.cover_tree_
        within = getattr(tree.engine, "within", None)
        if within is None or tree.config.path == "tree" or math.isinf(radius):
            return None
        space = tree.space
        every = space.indexed_queries(np.arange(space.n_points)) if X is None else space.point_queries(X)
        dist_rows, ind_rows = [], []
        for start in range(0, every.n_queries, RADIUS_ROWS):
            block = every.part(np.arange(start, min(every.n_queries, start + RADIUS_ROWS)))
            most = available_bytes() // RADIUS_BYTES_PER_POINT
            try:
                found = within(space, block, radius, tree.config, most, exclude_own=X is None)
            except KOutOfRangeError as exc:
                raise KOutOfRangeError(f"radius={radius} holds too many training points for the memory "
                                       f"available ({exc})") from exc
            if found is None:  # the engine's ball search does not run for this fit
                return None
            counts, ind, dist = found
            ends = np.cumsum(counts).tolist()
            spans = list(zip([0, *ends[:-1]], ends, strict=True))  # np.split: 0.32 s, slices 0.27 (50k rows)
            dist_rows += [dist[a:b].copy() for a, b in spans]  # copies, not views that keep the block
            ind_rows += [ind[a:b].copy() for a, b in spans]
        return _ragged(dist_rows), _ragged(ind_rows)

    def _widened(self, k: int, reached: float, radius: float, eligible: int) -> int:
        """The next k of the widening search: doubled, or for Euclidean rows whose k-th distance was
        `reached` (the least among pending rows) grown as the ball's volume, (radius / reached) ** d, by at
        most :data:`RADIUS_MAX_GROWTH` a step, reckoned in logarithms (the power overflows float64 in a few
        hundred dimensions, or across a cluster 1e-110 wide). Doubling alone took 11 steps to list every
        one of 6,000 points, each step querying every pending row again."""
        growth = 2.0
        if self.cover_tree_.metric == "euclidean" and 0 < reached < radius:
            volume = self.n_features_in_ * math.log(radius / reached)
            growth = max(growth, math.exp(min(math.log(RADIUS_MAX_GROWTH), volume)))
        return min(eligible, max(k + 1, math.ceil(k * growth)))

    def radius_neighbors_graph(self, X=None, radius=None, mode="connectivity", sort_results=False):
        """CSR matrix (n_queries, n_samples_fit) with every training point within the radius of each row."""
        mode = _graph_mode(mode)
        dist, ind = self.radius_neighbors(X, radius)
        indptr = np.concatenate(([0], np.cumsum([row.size for row in ind])))
        return _graph(np.concatenate(dist), np.concatenate(ind), indptr, self.n_samples_fit_, mode)

    def transform(self, X):
        """The neighbours graph of X's rows in this estimator's ``mode``; in mode 'distance' each row holds
        n_neighbors + 1 points (the point itself, stored explicitly, when X holds training points), as
        scikit-learn's KNeighborsTransformer does."""
        check_is_fitted(self)
        if X is None:
            raise InputTypeError(
                "transform needs X (the rows to connect); kneighbors_graph() gives the training points' "
                "graph without themselves"
            )
        extra = self.mode == "distance"
        return self.kneighbors_graph(X, self._n_neighbors() + extra, mode=self.mode)
