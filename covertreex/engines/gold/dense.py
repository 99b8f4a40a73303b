"""The gold engine's dense path: exact k-NN without a tree, by NumPy's BLAS and a Numba epilogue.

For each block of query rows and each tile of point rows, BLAS computes the tile's dot products; the
epilogue turns each into a rigorous interval on the canonical key
(:func:`covertreex.metrics.kernels.bounds`), keeps a running k-th upper bound per query and the candidates
it cannot exclude. The candidates are then re-evaluated with the canonical distance, so answers and distance
bits equal the tree path's and brute's. Memory is bounded by the block sizes (a query block x point tile,
plus candidate lists that grow only with ties). Counters: per query, the canonical re-evaluations, heap
pushes and tiles visited; pairs screened are returned apart.

Parallelism: query blocks run on a pool of Python threads, each calling single-threaded BLAS and then the
Numba epilogue, both with the GIL released, so one worker's GEMM overlaps another's epilogue. (Alternating
a multi-threaded BLAS call with a parallel Numba loop left both half idle: BLAS ran the 256 x 2048 tiles
at about half its large-product rate and its threads spin between calls.) Each query's answer depends only
on its own row, never on which block or worker holds it. Its counters depend on its block's size too (BLAS
rounds a product's entries differently for different row counts, and the candidates follow the bounds),
so the batch is cut into blocks by its size and ``query_block`` alone (:data:`MIN_BLOCKS`), never by the
number of workers: counters are the same on any thread count.
"""

from __future__ import annotations

import math
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from numba import njit

from covertreex import interrupts
from covertreex.blas import one_thread
from covertreex.counters import N_QUERY_COUNTERS, QueryCounter
from covertreex.engines.heap import offer, write_sorted
from covertreex.metrics import MetricSpace, QuerySet
from covertreex.metrics.data import operand
from covertreex.metrics.kernels import (
    bounds,
    distance,
    euclidean_constant,
    row_factors,
    self_key,
    widen,
)


@njit(cache=True, nogil=True)
def _screen_row(q, tile, j0, rows, own, limits, Q, D, qf_scale, qf_error, df_scale, df_error, euclid,
                ub_d, ub_i, ub_n, cutoff, cand_lo, cand_j, cand_n, pos, screened, steps):
    """Screen row `q` of one tile; return False when its candidate room ran out (it resumes at
    ``pos[q]`` once the caller has grown the candidate arrays). A plain loop, kept out of the prange
    body so Numba compiles it as tight scalar code."""
    cols, cap, k = tile.shape[1], cand_lo.shape[1], ub_d.shape[1]
    stop = min(limits[q], j0 + cols)
    start = max(j0, pos[q])
    if stop <= start:
        return True
    key0 = self_key(D.metric)
    threshold = cutoff[q]
    n_cand = cand_n[q]
    for j in range(start, stop):
        if n_cand == cap:
            kept = 0
            for c in range(cap):
                if cand_lo[q, c] <= threshold:
                    cand_lo[q, kept] = cand_lo[q, c]
                    cand_j[q, kept] = cand_j[q, c]
                    kept += 1
            n_cand = kept
            if kept == cap:
                pos[q], cand_n[q], cutoff[q] = j, n_cand, threshold
                screened[q] += j - start
                return False
        if j == own[q]:
            lo, hi = key0, key0
        else:
            lo, hi = bounds(Q, rows[q], D, j, tile[q, j - j0], qf_scale, qf_error, df_scale, df_error,
                            euclid)
        if hi < threshold:
            ub_n[q], pushed = offer(ub_d[q], ub_i[q], ub_n[q], hi, 0)
            if pushed and ub_n[q] == k:
                threshold = widen(D.metric, ub_d[q, 0])
        if lo <= threshold:
            cand_lo[q, n_cand] = lo
            cand_j[q, n_cand] = j
            n_cand += 1
    pos[q], cand_n[q], cutoff[q] = stop, n_cand, threshold
    screened[q] += stop - start
    steps[q] += 1
    return True


@njit(cache=True, nogil=True)
def _screen_tile(tile, j0, rows, own, limits, Q, D, qf_scale, qf_error, df_scale, df_error, euclid,
                 ub_d, ub_i, ub_n, cutoff, cand_lo, cand_j, cand_n, pos, screened, steps):
    """Screen one tile for every query of the block; return the rows that ran out of candidate room."""
    full = np.zeros(rows.shape[0], dtype=np.bool_)
    for q in range(rows.shape[0]):
        full[q] = not _screen_row(q, tile, j0, rows, own, limits, Q, D, qf_scale, qf_error, df_scale,
                                  df_error, euclid, ub_d, ub_i, ub_n, cutoff, cand_lo, cand_j, cand_n,
                                  pos, screened, steps)
    return full


@njit(cache=True, nogil=True)
def _finish(rows, own, Q, D, cand_lo, cand_j, cand_n, cutoff, out_i, out_d, evaluations, pushes):
    """Canonical distances of every candidate the final k-th bound keeps; the k best by (distance, index)."""
    k = out_i.shape[1]
    for q in range(rows.shape[0]):
        heap_d = np.empty(k)
        heap_i = np.empty(k, dtype=np.int64)
        size = 0
        for c in range(cand_n[q]):
            if cand_lo[q, c] <= cutoff[q]:
                j = cand_j[q, c]
                size, pushed = offer(heap_d, heap_i, size, distance(Q, rows[q], own[q], D, j), j)
                pushes[q] += pushed
                evaluations[q] += 1
        write_sorted(heap_d, heap_i, size, out_i[q], out_d[q])


class _Block:
    """The per-query state of one query block while its tiles stream past."""

    def __init__(self, nb: int, k: int):
        self.ub_d = np.empty((nb, k))
        self.ub_i = np.zeros((nb, k), dtype=np.int64)
        self.ub_n = np.zeros(nb, dtype=np.int64)
        self.cutoff = np.full(nb, np.inf)
        cap = 8 * k + 256
        self.cand_lo = np.empty((nb, cap))
        self.cand_j = np.empty((nb, cap), dtype=np.int64)
        self.cand_n = np.zeros(nb, dtype=np.int64)
        self.pos = np.zeros(nb, dtype=np.int64)

    def grow(self):
        """Double the candidate room (only ties at the k-th bound can fill it)."""
        nb, cap = self.cand_lo.shape
        self.cand_lo = np.concatenate([self.cand_lo, np.empty((nb, cap))], axis=1)
        self.cand_j = np.concatenate([self.cand_j, np.empty((nb, cap), dtype=np.int64)], axis=1)


MIN_BLOCKS = 2
"""A batch is cut into at least this many query blocks when it has the rows (at least
:data:`MIN_BLOCK_ROWS` each), so that a small batch still gives two workers work. A constant, not the
worker count: a one-row product, for one, takes another BLAS kernel than a three-row one (258 of 2,048
entries differed at d = 3), and with a cut that followed the workers, three queries on 2 threads screened
other candidates than on 1. Each block reads every point tile once, so one thread pays for the second
block: against the former cut by workers (residual N = 50,000, m = 256, median of 5, 2026-12-05, AMD EPYC),
64 queries took 148 ms against 136 on one thread and 82 against 82 on two; 1,024 queries 1.80 s against
1.77 and 0.91 against 0.93. Four blocks cost one thread 25% at 64 queries (and the gate's instruction
counts 1.5%)."""

MIN_BLOCK_ROWS = 8
"""The fewest rows of a block cut for :data:`MIN_BLOCKS`: a batch of a few queries is one block (4 queries
on one thread took 52 ms in 4 blocks against 35 ms in one)."""


def _rows_per_block(n_q: int, query_block: int) -> int:
    """Rows per query block: `query_block`, fewer (not below :data:`MIN_BLOCK_ROWS`) when that leaves
    fewer than :data:`MIN_BLOCKS` blocks. It depends on the batch alone, so counters do not depend on the
    thread count (they do on `query_block`, which sets the products' shapes)."""
    return max(1, min(query_block, max(MIN_BLOCK_ROWS, math.ceil(n_q / MIN_BLOCKS))))


def dense_query(space: MetricSpace, queries: QuerySet, k: int, query_block: int, point_block: int,
                workers: int):
    """Exact k-NN of every query by dense screening on `workers` threads: (indices, distances, per_query
    counters, screened, seconds spent in BLAS summed over workers). Query blocks hold at most
    `query_block` rows, fewer when the batch would otherwise make fewer than :data:`MIN_BLOCKS`."""
    n_q = queries.n_queries
    out = _Output(n_q, k)
    job = _Job(space, queries, out, k, point_block)
    rows_per_block = _rows_per_block(n_q, query_block)
    starts = range(0, n_q, rows_per_block)
    blocks = [(b0, min(n_q, b0 + rows_per_block)) for b0 in starts]
    blocks.reverse()  # the last blocks of a predecessor batch have the most tiles: start them first
    workers = max(1, min(workers, len(blocks)))
    with one_thread():
        if workers == 1:
            gemm_seconds = sum(job.run(b0, b1) for b0, b1 in blocks)
        else:
            with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="covertreex-dense") as pool:
                futures = [pool.submit(job.run, *block) for block in blocks]
                gemm_seconds = sum(interrupts.results(pool, futures))
    return out.indices, out.distances, out.per_query, out.screened, gemm_seconds


class _Output:
    """The answers and counters of every query; each block writes its own rows."""

    def __init__(self, n_q: int, k: int):
        self.indices = np.empty((n_q, k), dtype=np.int64)
        self.distances = np.empty((n_q, k))
        self.per_query = np.zeros((n_q, N_QUERY_COUNTERS), dtype=np.int64)
        self.screened = np.zeros(n_q, dtype=np.int64)


class _Job:
    """What every query block shares: both data sets, their bound factors, the output."""

    def __init__(self, space: MetricSpace, queries: QuerySet, out: _Output, k: int, point_block: int):
        self.D, self.Q = space.data, queries.data
        self.d_op, self.q_op = operand(self.D), operand(self.Q)
        self.df, self.qf = row_factors(self.D), row_factors(self.Q)
        self.euclid = euclidean_constant(space.n_dims)
        self.queries, self.out, self.k, self.point_block = queries, out, k, point_block
        self.limits = queries.eligible(space.n_points)

    def run(self, b0: int, b1: int) -> float:
        """Answer queries b0..b1; return the seconds spent in BLAS."""
        D, Q, qf, df, out = self.D, self.Q, self.qf, self.df, self.out
        queries, limits = self.queries, self.limits[b0:b1]
        rows, own = queries.rows[b0:b1], queries.dataset_index[b0:b1]
        block = _Block(b1 - b0, self.k)
        q_rows = np.ascontiguousarray(self.q_op[rows])
        end = int(limits.max()) if limits.size else 0
        tile_buffer = np.empty((b1 - b0) * min(self.point_block, max(end, 1)))
        gemm_seconds = 0.0
        for j0 in range(0, end, self.point_block):
            cols = min(self.point_block, end - j0)
            tile = tile_buffer[: (b1 - b0) * cols].reshape(b1 - b0, cols)
            start = time.perf_counter()
            np.matmul(q_rows, self.d_op[j0 : j0 + cols].T, out=tile)
            gemm_seconds += time.perf_counter() - start
            while _screen_tile(
                tile, j0, rows, own, limits, Q, D, qf.scale, qf.error, df.scale, df.error, self.euclid,
                block.ub_d, block.ub_i, block.ub_n, block.cutoff, block.cand_lo, block.cand_j,
                block.cand_n, block.pos, out.screened[b0:b1],
                out.per_query[b0:b1, QueryCounter.FRONTIER_STEPS],
            ).any():
                block.grow()
            interrupts.check()
        _finish(rows, own, Q, D, block.cand_lo, block.cand_j, block.cand_n, block.cutoff,
                out.indices[b0:b1], out.distances[b0:b1],
                out.per_query[b0:b1, QueryCounter.DISTANCE_EVALUATIONS],
                out.per_query[b0:b1, QueryCounter.HEAP_PUSHES])
        return gemm_seconds
