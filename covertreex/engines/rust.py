"""The rust engine: rust/core (through the PyO3 module ``covertreex._rust``) behind the engine interface.

Parity mode follows the gold engine's operation order step for step, so trees, answers and every counter
are bit-for-bit equal to gold's (docs/parity.md). Perf mode evaluates groups of distances in lockstep
(several sequential sums interleaved: faster, and bit for bit the same values) and, in queries, gathers a
whole step's children before pruning; it returns the same trees, answers and counters, and reports the
speculative distances it threw away as ``counters.extra["discarded_evaluations"]`` (0 in parity mode).
The dense path (:meth:`RustEngine.dense`) answers without a tree: GEMM tiles with a fused screening
epilogue and a canonical re-check (rust/core/src/dense). The tree format
code is shared: the extension returns levels, parents and radii, and :func:`covertreex.tree.assemble`
builds the Tree exactly as for gold.

Arrays reach the extension C-contiguous in their canonical dtypes; :func:`_canonical` copies only an
array that is not already so (never the case for spaces and trees made by covertreex itself). The GIL is
released while the extension builds or queries, on rayon threads; during a long call the calling thread
polls :func:`covertreex.interrupts.check`, so Ctrl-C ends it between blocks of its work.
"""

from __future__ import annotations

import importlib
from functools import cache

import numpy as np

from covertreex import interrupts
from covertreex.config import Config
from covertreex.engines.base import QueryCounters
from covertreex.engines.schedule import Schedule
from covertreex.errors import InvalidInputError
from covertreex.metrics import MetricSpace, QuerySet
from covertreex.ordering import hilbert_order
from covertreex.split_screen import USEFUL
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
    """The compiled module, or None when it is not built/installed here."""
    try:
        return importlib.import_module("covertreex._rust")
    except ImportError:
        return None


_LAYOUT = ("C_CONTIGUOUS", "ALIGNED")  # what the extension reads; ascontiguousarray alone keeps misalignment


def _canonical(arrays, dtypes: dict):
    """`arrays` (a NamedTuple) with the listed fields C-contiguous and aligned in their dtypes."""
    return arrays._replace(**{
        name: np.require(getattr(arrays, name), dtype=dtype, requirements=_LAYOUT)
        for name, dtype in dtypes.items()
    })


def _index(values) -> np.ndarray:
    return np.require(values, dtype=np.int64, requirements=_LAYOUT)


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

    def dense(self, space: MetricSpace, queries: QuerySet, k: int, config: Config):
        """The dense path: GEMM tiles (the `gemm` crate) with a fused screening epilogue on rayon, or the
        split screen's int8 products where `dense_screen` asks for it (covertreex.split_screen), for the
        query rows it screens well (the rest take the GEMM in a second call)."""
        split = dense_split(space, queries, config)
        if split is None:
            return self._dense(space, queries, k, config)
        by_split = split.screens_well(queries.rows)
        parts = [(self._dense(space, _part(queries, rows), k, config, split if by else None), rows)
                 for by, rows in ((True, by_split), (False, ~by_split)) if rows.any()]
        idx = np.empty((queries.n_queries, k), dtype=np.int64)
        dist = np.empty((queries.n_queries, k))
        per_query = np.empty((queries.n_queries, parts[0][0][2].per_query.shape[1]), dtype=np.int64)
        screened = np.empty(queries.n_queries, dtype=np.int64)
        for (i, d, counters), rows in parts:
            idx[rows], dist[rows], per_query[rows] = i, d, counters.per_query
            screened[rows] = counters.extra["screened"]
        gemm_seconds = sum(counters.extra["gemm_seconds"] for (_, _, counters), _ in parts)
        extra = {"path": "dense", "screened": screened, "gemm_seconds": gemm_seconds}
        return idx, dist, QueryCounters.without_levels(per_query, extra)

    def _dense(self, space: MetricSpace, queries: QuerySet, k: int, config: Config, split=None):
        data = _canonical(space.data, _METRIC_DTYPES)
        idx, dist, per_query, screened, gemm_seconds = _extension().dense(
            data, data if split is not None else _canonical(queries.data, _METRIC_DTYPES),
            _index(queries.rows), _index(queries.dataset_index), _index(queries.limit), k,
            config.threads, config.dense_query_block, config.dense_point_block,
            _interrupt(queries.n_queries * space.n_points),
            None if split is None else (split.q, split.factors),
        )
        extra = {"path": "dense", "screened": screened, "gemm_seconds": gemm_seconds}
        return idx, dist, QueryCounters.without_levels(per_query, extra)


def _part(queries: QuerySet, rows: np.ndarray) -> QuerySet:
    """The queries at the positions where `rows` is True."""
    return QuerySet(queries.data, queries.rows[rows], queries.dataset_index[rows], queries.limit[rows],
                    queries.predecessor)


def _indexed(space: MetricSpace, queries: QuerySet) -> bool:
    """Whether the queries are indexed points (their own rows of the space's data): the same arrays in
    one process, equal ones after a trip through pickle (a Dask worker's copy of an Index)."""
    if not (np.all(queries.dataset_index >= 0) and np.array_equal(queries.dataset_index, queries.rows)):
        return False
    same = (queries.data.X.__array_interface__ == space.data.X.__array_interface__
            and queries.data.V.__array_interface__ == space.data.V.__array_interface__)
    return same or all(np.array_equal(getattr(queries.data, name), getattr(space.data, name))
                       for name in ("X", "V", "P"))


def dense_split(space: MetricSpace, queries: QuerySet, config: Config):
    """The split screen the dense path runs for this call (covertreex.split_screen), or None: per the
    `dense_screen` knob, which raises when 'split' is asked for where it cannot run."""
    if config.dense_screen == "f64":
        return None
    split, reason = None, None
    if config.mode != "perf":
        reason = "runs in perf mode only (parity mode keeps gold's counters)"
    elif space.problem is None:
        reason = "needs the residual metric"
    elif not _indexed(space, queries):
        reason = "needs queries of the indexed points (indices=..., or predecessor mode)"
    else:
        split = space.problem.split_screen
        if split is None:
            reason = ("needs a problem whose V covertreex.residual_problem built (with its inducing points "
                      "and Cholesky factor), at most 512 inducing points, and a certificate it can prove")
    if reason is not None:
        if config.dense_screen == "split":
            raise InvalidInputError(f"dense_screen='split' {reason}")
        return None
    if config.dense_screen == "auto" and split.median_rest > USEFUL:
        return None
    return split


MAXIMIN_BLOCK = 512
"""Points per round of the rust maximin pass (gold's is maximin_dense.BLOCK). Wall seconds of the pass at
m = 512, k = 50 (2026-12-03, Intel Xeon, 2 cores, /tmp script timing ``maximin_with_neighbors`` alone,
alternating runs): N = 32,768: 6.25-6.32 s at 256, 5.76-6.04 s at 512, 6.06-6.21 s at 768, 6.29-6.38 s at
1,024; N = 8,192: 0.57-0.65 s at 256, 0.61-0.64 s at 512, 0.75-0.79 s at 1,024 (each round's block Gram
matrix weighs more at small N)."""


def maximin_with_neighbors(data, first: int, k: int, progress=None, block: int = MAXIMIN_BLOCK,
                           room: int | None = None, threads: int | None = None):
    """:func:`covertreex.maximin_dense.maximin_with_neighbors` in rust (rust/core/src/maximin): the same
    (order, neighbour positions, distances, canonical evaluations) signature and the same order and rows,
    bit for bit; its evaluation count differs (the rust screening bound is not gold's). `threads` None:
    rayon's global pool; nothing returned depends on it."""

    order, indices, distances, evaluations, _ = _extension().maximin(
        _canonical(data, _METRIC_DTYPES), first, k, block,
        k + ROOM_OVER_K if room is None else room, threads, progress, _interrupt(len(data.X) ** 2),
    )
    return order, indices, distances, evaluations
