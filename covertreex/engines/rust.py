"""The rust engine: rust/core (through the PyO3 module ``covertreex._rust``) behind the engine interface.

Parity mode follows the gold engine's operation order step for step, so trees, answers and every counter
are bit-for-bit equal to gold's (docs/parity.md). Perf mode evaluates groups of distances in lockstep
(several sequential sums interleaved: faster, and bit for bit the same values) and, in queries, gathers a
whole step's children before pruning; it returns the same trees, answers and counters, and reports the
speculative distances it threw away as ``counters.extra["discarded_evaluations"]`` (0 in parity mode).
The dense path (:meth:`RustEngine.dense`) answers without a tree: GEMM tiles with a fused screening
epilogue and a canonical re-check, the split screen's int8 products (residual), or the packed boxes of
low-dimensional Euclidean points (rust/core/src/dense). The tree format code is shared: the extension
returns levels, parents and radii, and :func:`covertreex.tree.assemble` builds the Tree exactly as for gold.

Arrays reach the extension C-contiguous in their canonical dtypes; :func:`_canonical` copies only an
array that is not already so (never the case for spaces and trees made by covertreex itself). The GIL is
released while the extension builds or queries, on rayon threads; during a long call the calling thread
polls :func:`covertreex.interrupts.check`, so Ctrl-C ends it between blocks of its work.
"""

from __future__ import annotations

import importlib
import math
from dataclasses import replace
from functools import cache

import numpy as np

from covertreex import interrupts, paths, split_screen
from covertreex.config import Config
from covertreex.engines.base import QueryCounters
from covertreex.engines.schedule import Schedule
from covertreex.errors import InvalidInputError
from covertreex.extension_sources import require_built_from
from covertreex.metrics import MetricSpace, QuerySet
from covertreex.metrics.data import MetricData
from covertreex.ordering import hilbert_order
from covertreex.tree import Tree, assemble
from covertreex.vecchia_orderings import ROOM_OVER_K

_METRIC_DTYPES = {"lengthscale": np.float64, "X": np.float64, "V": np.float64, "P": np.float64}
_TREE_DTYPES = {
    "levels": np.int64, "child_offsets": np.int64, "children": np.int64, "radius": np.float64,
    "is_copy": np.bool_, "subtree_min": np.int64,
}


INTERRUPTIBLE_PAIRS = 1 << 22
"""Distance pairs (an upper bound: queries x points) from which a call can be interrupted (25-50 ms of
work at m = 512 on the GEMM path). Below it, the call runs on the calling thread: a thread of its own
costs 0.07 ms on a call of 2,000 x 2,000 pairs (44 ms) and 0.7-0.9 ms on a one-row query of 2,000
points, whose whole call takes 0.7-1.9 ms (2026-12-05, AMD EPYC, 2 cores, alternating runs)."""


def _interrupt(pairs: int):
    """The extension's `interrupt` argument for a call of at most `pairs` distance pairs: the SIGINT
    check :func:`covertreex.interrupts.check`, or None for a call too short for Ctrl-C to matter."""
    return interrupts.check if pairs >= INTERRUPTIBLE_PAIRS else None


@cache
def _extension():
    """The compiled module, or None when it is not built/installed here; in a source checkout, one built
    from other Rust sources than it holds is an error (:mod:`covertreex.extension_sources`)."""
    try:
        module = importlib.import_module("covertreex._rust")
    except ImportError:
        return None
    require_built_from(module)
    return module


_LAYOUT = ("C_CONTIGUOUS", "ALIGNED")  # what the extension reads; ascontiguousarray alone keeps misalignment


def _canonical(arrays, dtypes: dict):
    """`arrays` (a NamedTuple) with the listed fields C-contiguous and aligned in their dtypes."""
    fields = {name: _required(getattr(arrays, name), dtype) for name, dtype in dtypes.items()}
    if all(fields[name] is getattr(arrays, name) for name in fields):
        return arrays
    return arrays._replace(**fields)


def _required(values, dtype) -> np.ndarray:
    """`values` C-contiguous and aligned in `dtype`: itself when so already (the test is a fifth of
    np.require's cost, which a one-row query paid 11 times a call), else a copy."""
    if type(values) is np.ndarray and values.dtype == dtype and values.flags.c_contiguous \
            and values.flags.aligned:
        return values
    return np.require(values, dtype=dtype, requirements=_LAYOUT)


def _index(values) -> np.ndarray:
    return _required(values, np.int64)


def _blocks(queries: QuerySet, config: Config):
    """(queries per block, block order) for the core's query blocks, or None to walk query by query.
    Blocks are runs of the Hilbert order of the query coordinates: queries near each other expand the
    same nodes, which is what a block shares. Only perf mode's level walk uses them."""
    if config.query_block == 1 or config.mode != "perf" or config.best_first or not queries.n_queries:
        return None
    return config.query_block, _index(hilbert_order(queries.data.X[queries.rows]))


class RustEngine:
    name = "rust"
    uses_tree = True

    def available(self) -> bool:
        return _extension() is not None

    def telemetry_mode(self, config: Config) -> str:
        return config.mode

    def build(self, space: MetricSpace, order: np.ndarray, config: Config) -> Tree:
        order = _index(order)
        data = _canonical(space.data, _METRIC_DTYPES)
        block = config.build_block if config.build_for(space.metric) == "batch" else None
        levels, parents, radius, evaluations = _extension().build(
            data, order, config.mode, block, config.threads, _interrupt(len(order) ** 2)
        )
        return assemble(levels, parents, radius, order, space, evaluations)

    def query(self, tree: Tree, space: MetricSpace, queries: QuerySet, k: int, config: Config):
        idx, dist, per_level, per_query, discarded = _extension().query(
            _canonical(tree.arrays(), _TREE_DTYPES), _canonical(space.data, _METRIC_DTYPES),
            _canonical(queries.data, _METRIC_DTYPES), _index(queries.rows),
            _index(queries.dataset_index), _index(queries.limit), k, config.threads, config.mode,
            Schedule.of(config), _blocks(queries, config), _interrupt(queries.n_queries * space.n_points),
        )
        extra = {"path": "tree", "discarded_evaluations": discarded}
        return idx, dist, QueryCounters(per_query, per_level, extra)

    def box_screen(self, space: MetricSpace, config: Config) -> bool:
        """Whether the dense path may screen `space`'s pairs by packed boxes under `config` (dense_boxes;
        covertreex.paths then weighs their cost)."""
        return config.dense_screen in ("auto", "boxes") and _box_screen_refusal(space, config) is None

    def within(self, space: MetricSpace, queries: QuerySet, radius: float, config: Config, most: int,
               exclude_own: bool = False):
        """Every eligible point at distance <= `radius` of each query, by the box screen's packing: (points
        found per query, their indices, their canonical distances), each query's sorted by (distance,
        index), or None where the box screen cannot run (:meth:`box_screen`). More than `most` points in
        all is a KOutOfRangeError. `exclude_own`: no query returns its own dataset index (scikit-learn's
        radius_neighbors of the training points)."""
        if not self.box_screen(space, config):
            return None
        return _extension().within_boxes(
            _canonical(space.data, _METRIC_DTYPES), _canonical(queries.data, _METRIC_DTYPES),
            _index(queries.rows), _index(queries.dataset_index), _index(queries.limit), float(radius),
            bool(exclude_own), int(most), config.threads, _packing(space, config),
            _interrupt(queries.n_queries * space.n_points),
        )

    def dense(self, space: MetricSpace, queries: QuerySet, k: int, config: Config):
        """The dense path: GEMM tiles (the `gemm` crate) with a fused screening epilogue on rayon, or the
        split screen's int8 products where `dense_screen` asks for it (covertreex.split_screen), or, for
        Euclidean points of a few coordinates, the box screen (dense_boxes). With the
        split, the pairs of two points z fits badly take the GEMM first, on those points alone, and their
        distances join the split's threshold for the other pairs; the two answers are merged. Queries the
        split declines (too many pairs came through) take the GEMM together at the end."""
        boxes = dense_boxes(space, queries, k, config)
        if boxes is not None:
            return _screened_by("boxes", *self._dense(space.data, queries, k, config, boxes=boxes)[:3])
        split = dense_split(space, queries, config)
        if split is None:
            return _screened_by("f64", *self._dense(space.data, queries, k, config)[:3])
        left_out = split.fits_badly()
        routed = np.flatnonzero(left_out[queries.rows])
        given = np.full((queries.n_queries, k), np.inf)
        if routed.size:
            points = np.flatnonzero(left_out)
            rows = _rows_of(space.data, points)
            gemm = self._dense(rows, _among(queries, routed, points, rows), k, config)
            gemm_idx = np.where(gemm[0] >= 0, points[np.maximum(gemm[0], 0)], -1)
            given[routed] = gemm[1]
        screen = (split.rows(config.threads), split.factors, left_out, given, split_screen.DECLINE_SHARE,
                  split_screen.KEPT_PER_PROBE)
        idx, dist, counters, declined = self._dense(space.data, queries, k, config, screen)
        if routed.size:
            idx[routed], dist[routed] = _merged(idx[routed], dist[routed], gemm_idx, gemm[1])
            _add(counters, gemm[2], routed)
        declined = np.flatnonzero(declined)
        if declined.size:
            again = self._dense(space.data, queries.part(declined), k, config)
            idx[declined], dist[declined] = again[0], again[1]
            _add(counters, again[2], declined)
        return _screened_by("split", idx, dist, counters)

    def _dense(self, data: MetricData, queries: QuerySet, k: int, config: Config, split=None, boxes=None):
        """One dense call on the points `data` (`split`, `boxes`: see rust/python's dense): indices,
        distances, counters, and the queries the split declined."""
        points = _canonical(data, _METRIC_DTYPES)
        idx, dist, per_query, screened, declined, gemm_seconds = _extension().dense(
            points, points if split is not None else _canonical(queries.data, _METRIC_DTYPES),
            _index(queries.rows), _index(queries.dataset_index), _index(queries.limit), k,
            config.threads, config.dense_query_block, config.dense_point_block,
            _interrupt(queries.n_queries * len(data.X)), split, boxes,
        )
        extra = {"path": "dense", "screened": screened, "gemm_seconds": gemm_seconds}
        if split is not None:
            extra["declined"] = int(declined.sum())
        return idx, dist, QueryCounters.without_levels(per_query, extra), declined


def _screened_by(screen: str, idx: np.ndarray, dist: np.ndarray, counters: QueryCounters):
    """The dense path's answer with the screen that took its pairs named in ``counters.extra``."""
    counters.extra["screen"] = screen
    return idx, dist, counters


def _add(counters: QueryCounters, more: QueryCounters, at: np.ndarray) -> None:
    """Count `more`'s work (a second call's, for the queries at positions `at`) in `counters`."""
    counters.per_query[at] += more.per_query
    counters.extra["screened"][at] += more.extra["screened"]
    counters.extra["gemm_seconds"] += more.extra["gemm_seconds"]


def _rows_of(data: MetricData, points: np.ndarray) -> MetricData:
    """The metric data of the points `points` alone."""
    return data._replace(X=data.X[points], V=data.V[points], P=data.P[points])


def _among(queries: QuerySet, at: np.ndarray, points: np.ndarray, data: MetricData) -> QuerySet:
    """The indexed queries at positions `at`, all of them among the ascending `points`, as queries of
    those points alone, whose metric data is `data` (their rows, own index and eligibility limit
    renumbered): queries on the points' own arrays are checked with them, where queries on the whole
    data set had all of its V read for its check on every call."""
    def among(index):
        return np.searchsorted(points, index)

    return replace(queries, data=data, rows=among(queries.rows[at]),
                   dataset_index=among(queries.dataset_index[at]), limit=among(queries.limit[at]))


def _merged(idx_a, dist_a, idx_b, dist_b):
    """Per row, the k best of two answers over disjoint points, by (distance, index), padding last."""
    k = idx_a.shape[1]
    idx, dist = np.concatenate([idx_a, idx_b], axis=1), np.concatenate([dist_a, dist_b], axis=1)
    order = np.lexsort((np.where(idx < 0, np.iinfo(np.int64).max, idx), dist), axis=1)[:, :k]
    return np.take_along_axis(idx, order, axis=1), np.take_along_axis(dist, order, axis=1)


def _indexed(space: MetricSpace, queries: QuerySet) -> bool:
    """Whether the queries are indexed points (their own rows of the space's data): the same arrays in
    one process, equal ones after a trip through pickle (a Dask worker's copy of an Index)."""
    if not (np.all(queries.dataset_index >= 0) and np.array_equal(queries.dataset_index, queries.rows)):
        return False
    same = (queries.data.X.__array_interface__ == space.data.X.__array_interface__
            and queries.data.V.__array_interface__ == space.data.V.__array_interface__)
    return same or all(np.array_equal(getattr(queries.data, name), getattr(space.data, name))
                       for name in ("X", "V", "P"))


BOX_MAX_WIDTH = 8
"""Coordinates up to which the dense path offers the box screen: rust/core's `dense::BOX_MAX_WIDTH`, which
the extension exports (a test checks they agree; the plugin reads this one without loading it)."""


def _box_screen_refusal(space: MetricSpace, config: Config) -> str | None:
    """Why the box screen cannot run for `space` under `config`, or None."""
    if config.mode != "perf":
        return "runs in perf mode only (parity mode keeps gold's counters)"
    if space.metric != "euclidean":
        return "needs the Euclidean metric"
    if space.n_dims > BOX_MAX_WIDTH:
        return f"needs points of at most {BOX_MAX_WIDTH} coordinates, not {space.n_dims}"
    return None


def dense_boxes(space: MetricSpace, queries: QuerySet, k: int, config: Config):
    """The packed boxes (rust/core/src/dense/boxes.rs) the dense path screens this call's pairs with, made
    once per space, or None (:func:`_takes_boxes`)."""
    return _packing(space, config) if _takes_boxes(space, queries, k, config) else None


def _packing(space: MetricSpace, config: Config) -> tuple:
    """The packed boxes of `space`'s points, made on first use and kept with the space."""
    return space.derived("packed_boxes",
                         lambda: _read_only(_extension().pack_boxes(space.data.X, config.threads)))


def _read_only(arrays: tuple) -> tuple:
    """`arrays`, each made read-only: a packing is checked by shape alone on every call (its values were
    made with the points), so it must not change after."""
    for array in arrays:
        array.flags.writeable = False
    return arrays


def _takes_boxes(space: MetricSpace, queries: QuerySet, k: int, config: Config) -> bool:
    """Whether this call takes the box screen, per the `dense_screen` knob, which raises when 'boxes' is
    asked for where they cannot run; 'auto' takes them where they apply and covertreex.paths.boxes_pay
    says they cost less than screening every eligible pair."""
    if config.dense_screen not in ("auto", "boxes"):
        return False
    reason = _box_screen_refusal(space, config)
    if reason is not None:
        if config.dense_screen == "boxes":
            raise InvalidInputError(f"dense_screen='boxes' {reason}")
        return False
    pairs = queries.eligible_pairs(space.n_points)
    return config.dense_screen == "boxes" or paths.boxes_pay(
        space.n_dims, space.n_points, k, pairs, queries.n_queries, queries.predecessor)


def dense_split(space: MetricSpace, queries: QuerySet, config: Config):
    """The split screen the dense path runs for this call (covertreex.split_screen), or None: per the
    `dense_screen` knob, which raises when 'split' is asked for where it cannot run."""
    if config.dense_screen in ("f64", "boxes"):
        return None
    split, reason = None, None
    if config.mode != "perf":
        reason = "runs in perf mode only (parity mode keeps gold's counters)"
    elif space.problem is None:
        reason = "needs the residual metric"
    elif not _indexed(space, queries):
        reason = "needs queries of the indexed points (indices=..., or predecessor mode)"
    elif config.dense_screen == "auto" and not _split_pays(space, queries):
        return None
    else:
        split = space.problem.split_screen
        if split is None:
            reason = ("needs a problem whose V covertreex.residual_problem built (with its inducing points "
                      "and Cholesky factor, V's rows within its solve's error bound), at most 512 inducing "
                      "points, and a certificate it can prove")
    if reason is not None:
        if config.dense_screen == "split":
            raise InvalidInputError(f"dense_screen='split' {reason}")
        return None
    if config.dense_screen == "auto" and split.median_rest > split_screen.USEFUL:
        return None
    return split


def dense_screen_for(space: MetricSpace, queries: QuerySet, k: int, config: Config) -> str:
    """The screen ('boxes', 'split' or 'f64') `config.dense_screen` takes for this batch as a whole: for a
    job cut into parts that must all screen alike (covertreex.distributed)."""
    if _takes_boxes(space, queries, k, config):
        return "boxes"
    return "f64" if dense_split(space, queries, config) is None else "split"


def int8_kernel() -> str:
    """Which kernel multiplies the split screen's int8 rows on this CPU ('amx', 'vnni', 'avx2' or
    'portable'), as the extension reports it; 'portable' for an extension built before it reported one (an
    editable install not rebuilt), whose split 'auto' then leaves alone."""
    return getattr(_extension(), "INT8_KERNEL", "portable")


def _split_pays(space: MetricSpace, queries: QuerySet) -> bool:
    """Whether 'auto' may use the split for this batch: never where this CPU has no fast int8 kernel
    (covertreex.split_screen.PAYS names those that are); else where it is built already, or where a sample
    of its rows says it fits the problem (covertreex.split_screen.estimated_rest e <= USEFUL) and the
    batch's eligible pairs repay building it, PAYS m (N + m^2 / 4) / (1 - e)^4 of them (a split that fits
    worse lets more pairs through: it pays later). A split built is still checked on all its rows. The
    pairs are compared with what a split fitting well would need (e = split_screen.PRESUMED_REST) first, so
    a small batch (the gold workload's 1,024 queries, the Vecchia job below N ~ 10,600 on AMX) is refused
    before any of the split's work, its certificate and sample included."""
    pays = split_screen.PAYS.get(int8_kernel())
    if pays is None:  # no fast int8 kernel on this CPU: the split costs more than it saves
        return False
    if "split_screen" in vars(space.problem):
        return True
    m = space.data.V.shape[1]
    pairs = queries.eligible_pairs(space.n_points)
    least = pays * m * (space.n_points + m * m / 4)
    if pairs < least / (1 - split_screen.PRESUMED_REST) ** 4:
        return False
    estimate = space.problem.split_rest_estimate
    return estimate is not None and estimate <= split_screen.USEFUL and pairs >= least / (1 - estimate) ** 4


MAXIMIN_BLOCK = 512
"""Points per round of the rust maximin pass (gold's is maximin_dense.BLOCK). Wall seconds of the pass at
m = 512, k = 50 (2026-12-03, Intel Xeon, 2 cores, /tmp script timing ``maximin_with_neighbors`` alone,
alternating runs): N = 32,768: 6.25-6.32 s at 256, 5.76-6.04 s at 512, 6.06-6.21 s at 768, 6.29-6.38 s at
1,024; N = 8,192: 0.57-0.65 s at 256, 0.61-0.64 s at 512, 0.75-0.79 s at 1,024 (each round's block Gram
matrix weighs more at small N)."""


def maximin_order(X, first: int, progress=None, threads: int | None = None, prefixes=(),
                  on_prefix=None) -> tuple[np.ndarray, int]:
    """The exact maximin order of the Euclidean points X (float64, C order, finite) from row `first`, alone,
    by the packed boxes (rust/core/src/maximin/farthest.rs: O(N log N) evaluations in a few dimensions):
    (order, canonical evaluations), the order of :func:`maximin_with_neighbors`, bit for bit. `progress(n)`
    hears the points placed every 4,096 placements and at the end; `threads` packs the boxes (the placements
    are serial; None: rayon's global pool). `on_prefix(order_so_far)` hears the order placed so far once
    it reaches each of the sizes `prefixes` (ascending; heard at the next multiple of 4,096, once however
    many sizes that passes, never for the whole order): covertreex.vecchia_overlap answers rows meanwhile."""
    return _extension().maximin_farthest(X, first, threads, progress, _interrupt(len(X) ** 2),
                                         sorted(prefixes), on_prefix)


def maximin_with_neighbors(data, first: int, k: int, progress=None, block: int = MAXIMIN_BLOCK,
                           room: int | None = None, threads: int | None = None, split=None):
    """:func:`covertreex.maximin_dense.maximin_with_neighbors` in rust (rust/core/src/maximin): the same
    (order, neighbour positions, distances, canonical evaluations) signature and the same order and rows,
    bit for bit; its evaluation count differs (the rust screening bound is not gold's). `split` (a
    covertreex.split_screen.SplitScreen of the data's V) screens each round's pairs before the f64 GEMM
    (rust/core/src/maximin/split.rs): the same order and rows again. `threads` None: rayon's global pool;
    nothing returned depends on it."""
    order, indices, distances, evaluations, _ = maximin_on_split(data, first, k, split, math.inf, progress,
                                                                 block, room, threads)
    return order, indices, distances, evaluations


def maximin_on_split(data, first: int, k: int, split, floor: float, progress=None, block: int = MAXIMIN_BLOCK,
                     room: int | None = None, threads: int | None = None):
    """:func:`maximin_with_neighbors` keeping pairs for the rows only up to the residual similarity -floor
    (`floor` a key; math.inf: every pair may be kept, and no row is left), on the split screen `split`
    (None: none, and no floor): (order, neighbour positions, distances, canonical evaluations, unproven
    positions). The rows of the unproven positions (ascending) are padding: their k-th neighbour may lie
    beyond the floor, so the predecessor query of those positions in this order must find them
    (rust/core/src/maximin/split.rs); every other row is the pass's without a floor, bit for bit.
    `progress(placed, answered)` hears after each round the points placed and the rows answered: written
    (a round's rows are written during the next round) and proven."""
    if split is not None:
        split.check_source(data.X, data.P, "maximin_with_neighbors")
    if math.isnan(floor):
        raise InvalidInputError("floor must be a residual key (-similarity) or inf, got nan")
    screen = None if split is None else (split.q, split.factors, floor)
    order, indices, distances, evaluations, _, _, unproven = _extension().maximin(
        _canonical(data, _METRIC_DTYPES), first, k, block,
        k + ROOM_OVER_K if room is None else room, threads, progress, _interrupt(len(data.X) ** 2), screen,
    )
    return order, indices, distances, evaluations, unproven
