"""Exact maximin ordering fused with the predecessor search, in rounds of blocked GEMM.

Every pair (c, j) with c placed before j is a pair the predecessor query must look at, so each unplaced
point j collects its candidate neighbours among the placed points while they are placed, and keeps
``dist[j]``, its canonical distance to the nearest placed point. When j is placed, its candidates give its
neighbour row; the ordering is exact maximin (the largest ``dist`` next, ties to the smallest index) and
the rows equal the predecessor query's on the data in that order, distance bits included.

Rounds: the S unplaced points with the best keys (``dist`` descending, index ascending) form a block A whose
S x S GEMM is computed once; points of A are placed greedily, updating the rest of A, for as long as the best
of A beats the best key outside A at the round's start (keys outside only fall, so that bound holds and every
placement is the global best). Then every point outside A is screened against the points just placed with
one GEMM per row block, row blocks on a pool of threads.

Canonical evaluation is deferred, as in the dense path's selection: each pair gets the rigorous interval
``lo <= key <= hi`` of :func:`covertreex.metrics.kernels.bounds` from its GEMM value. j keeps the k smallest
``hi`` it has seen (their largest is T: at least k placed points are canonically at or below it) and, as
candidates, the pairs with ``lo <= widen(T)``; a pair outside that is canonically farther than j's k-th
neighbour and never enters its row. A pair is evaluated canonically at once only when its interval reaches
``dist[j]`` (it may be the new nearest), so ``dist`` stays exact; the other candidates are evaluated when j
is placed, and then only those still under the cut-off (about k). A pair is evaluated at most once.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import NamedTuple

import numpy as np
from numba import njit

from covertreex import interrupts
from covertreex.blas import one_thread
from covertreex.engines.heap import offer, write_sorted
from covertreex.metrics.data import EPS, EUCLIDEAN, MetricData, operand
from covertreex.metrics.kernels import bounds, distance, euclidean_constant, row_factors, widen
from covertreex.resources import worker_threads
from covertreex.vecchia_orderings import ROOM_OVER_K

BLOCK = 1024
"""Points per round's block A (its S x S GEMM) and rows per GEMM tile of the outside screen."""


@njit(cache=True)
def _key_bound(metric, d):
    """An upper bound on the screening key of a pair whose canonical distance is d, so that a pair whose
    key interval starts above widen(bound) is canonically farther. Residual: s = min(1, |rho|) of a pair at
    canonical distance d is >= (1 - d*d) - 8 eps; Euclidean: its squared sum is <= d*d (1 + 4 eps) (see
    covertreex.metrics.kernels for the keys)."""
    if metric == EUCLIDEAN:
        return d * d * (1.0 + 4.0 * EPS)
    return -((1.0 - d * d) - 8.0 * EPS)


class Candidates(NamedTuple):
    """Per unplaced point j: the k smallest upper bounds seen (a max-heap, ``ub``/``ub_pos``/``ub_n``), the
    pairs not yet excluded (``lo``, ``pos``, canonical ``d`` or NaN while not evaluated; ``n`` of them),
    ``dist[j]`` and the canonical evaluations spent on j."""

    ub: np.ndarray
    ub_pos: np.ndarray
    ub_n: np.ndarray
    lo: np.ndarray
    pos: np.ndarray
    d: np.ndarray
    n: np.ndarray
    dist: np.ndarray
    evaluations: np.ndarray


def candidates(n_points: int, k: int, room: int) -> Candidates:
    """Empty state for `n_points` points: k upper bounds and `room` (> k) candidate slots each."""
    return Candidates(np.empty((n_points, k)), np.empty((n_points, k), dtype=np.int64),
                      np.zeros(n_points, dtype=np.int64), np.empty((n_points, room)),
                      np.empty((n_points, room), dtype=np.int64), np.empty((n_points, room)),
                      np.zeros(n_points, dtype=np.int64), np.full(n_points, np.inf),
                      np.zeros(n_points, dtype=np.int64))


@njit(cache=True, nogil=True, inline="always")
def _cutoff(metric, C, j):
    """widen(T) of j: a pair whose lo exceeds it is canonically farther than j's k-th (inf until k seen)."""
    return widen(metric, C.ub[j, 0]) if C.ub_n[j] == C.ub.shape[1] else np.inf


@njit(cache=True, nogil=True)
def _evaluate(D, order, j, e, C):
    """Canonical distance of candidate e of j (once), folded into dist[j]."""
    if np.isnan(C.d[j, e]):
        c = order[C.pos[j, e]]
        C.d[j, e] = distance(D, c, c, D, j)
        C.evaluations[j] += 1
        if C.d[j, e] < C.dist[j]:
            C.dist[j] = C.d[j, e]


@njit(cache=True, nogil=True)
def _make_room(D, order, j, C):
    """Drop the candidates the cut-off now excludes; if every one is still under it (ties), evaluate them
    all and keep the k first by (distance, position): the rest can never enter j's row."""
    cutoff = _cutoff(D.metric, C, j)
    kept = 0
    for e in range(C.n[j]):
        if C.lo[j, e] <= cutoff:
            C.lo[j, kept], C.pos[j, kept], C.d[j, kept] = C.lo[j, e], C.pos[j, e], C.d[j, e]
            kept += 1
    C.n[j] = kept
    if kept < C.lo.shape[1]:
        return
    k = C.ub.shape[1]
    best_d = np.empty(k)
    best_e = np.empty(k, dtype=np.int64)
    size = 0
    for e in range(kept):
        _evaluate(D, order, j, e, C)
        size, _ = offer(best_d, best_e, size, C.d[j, e], C.pos[j, e] * C.lo.shape[1] + e)
    keep = np.sort(best_e[:size] % C.lo.shape[1])
    for slot in range(size):
        e = keep[slot]
        C.lo[j, slot], C.pos[j, slot], C.d[j, slot] = C.lo[j, e], C.pos[j, e], C.d[j, e]
    C.n[j] = size


@njit(cache=True, nogil=True)
def _add_candidate(D, order, pos, j, lo, C):
    """Keep the pair of j and the point at position `pos` as a candidate (its lo is under j's cut-off),
    evaluating it at once if it may be j's nearest (so dist[j] stays exact)."""
    if C.n[j] == C.lo.shape[1]:
        _make_room(D, order, j, C)
    e = C.n[j]
    C.lo[j, e], C.pos[j, e], C.d[j, e] = lo, pos, np.nan
    C.n[j] = e + 1
    if lo <= widen(D.metric, _key_bound(D.metric, C.dist[j])):
        _evaluate(D, order, j, e, C)


@njit(cache=True, nogil=True, inline="always")
def _admit(D, order, pos, j, lo, hi, C):
    """Offer the point placed at position `pos` to unplaced j, given their key interval [lo, hi]."""
    C.ub_n[j], _ = offer(C.ub[j], C.ub_pos[j], C.ub_n[j], hi, pos)
    if lo <= _cutoff(D.metric, C, j):
        _add_candidate(D, order, pos, j, lo, C)


@njit(cache=True)
def _better(d1, i1, d2, i2):
    return d1 > d2 or (d1 == d2 and i1 < i2)


@njit(cache=True)
def _place(D, c, n, C, placed, order, out_i, out_d):
    """Put c at position n; its row: the candidates under its cut-off, evaluated, k first by (d, pos)."""
    k = C.ub.shape[1]
    row_d = np.empty(k)
    row_i = np.empty(k, dtype=np.int64)
    size = 0
    cutoff = _cutoff(D.metric, C, c)
    for e in range(C.n[c]):
        if C.lo[c, e] <= cutoff:
            _evaluate(D, order, c, e, C)
            size, _ = offer(row_d, row_i, size, C.d[c, e], C.pos[c, e])
    write_sorted(row_d, row_i, size, out_i[n], out_d[n])
    order[n] = c
    placed[c] = True


@njit(cache=True)
def _greedy_in_block(A, G, bound_d, bound_i, D, scale, error, euclid, C, placed, order, out_i, out_d, n):
    """Place points of block A while its best beats (bound_d, bound_i); return the new count placed."""
    dist = C.dist
    while True:
        b = -1
        for t in range(A.shape[0]):
            if not placed[A[t]] and (b < 0 or _better(dist[A[t]], A[t], dist[A[b]], A[b])):
                b = t
        if b < 0 or (bound_i >= 0 and not _better(dist[A[b]], A[b], bound_d, bound_i)):
            return n
        c = A[b]
        _place(D, c, n, C, placed, order, out_i, out_d)
        for t in range(A.shape[0]):
            if not placed[A[t]]:
                lo, hi = bounds(D, c, D, A[t], G[b, t], scale, error, scale, error, euclid)
                _admit(D, order, n, A[t], lo, hi, C)
        n += 1


@njit(cache=True, nogil=True)
def _screen_rows(J, first_pos, tile, D, scale, error, euclid, C, order):
    """Offer the points placed at positions first_pos, first_pos + 1, ... to every row j of J: first every
    pair's interval and its hi into j's upper bounds, then the pairs under the resulting cut-off become
    candidates (so a pair displaced within the round is never kept). Rows are independent (each touches
    only its own j's state), so row blocks run on separate threads."""
    lo = np.empty(tile.shape[1])
    for r in range(J.shape[0]):
        j = J[r]
        ub, ub_pos, size = C.ub[j], C.ub_pos[j], C.ub_n[j]
        for t in range(tile.shape[1]):
            c = order[first_pos + t]
            lo[t], hi = bounds(D, c, D, j, tile[r, t], scale, error, scale, error, euclid)
            size, _ = offer(ub, ub_pos, size, hi, first_pos + t)
        C.ub_n[j] = size
        cutoff = _cutoff(D.metric, C, j)
        for t in range(tile.shape[1]):
            if lo[t] <= cutoff:
                _add_candidate(D, order, first_pos + t, j, lo[t], C)


@interrupts.deferring
def maximin_with_neighbors(data: MetricData, first: int, k: int, progress=None, block: int = BLOCK,
                           room: int | None = None):
    """(order, neighbours (N, k) as positions, distances (N, k), canonical evaluations) -- see the module
    docstring. `progress(placed, answered)` hears after each round how many points are placed and how many
    rows are answered (the same count here: a row is written as its point is placed); `room` is how many
    candidates a point keeps before it drops the excluded ones (any value > k is exact; the default k + 8
    spent the same CPU and evaluations as 2k at N = 8,192, k = 50, in 30% less memory)."""
    n_points = data.X.shape[0]
    ops = operand(data)
    factors = row_factors(data)
    scale, error, euclid = factors.scale, factors.error, euclidean_constant(data.X.shape[1])
    C = candidates(n_points, k, k + ROOM_OVER_K if room is None else max(room, k + 1))
    placed = np.zeros(n_points, dtype=np.bool_)
    order = np.empty(n_points, dtype=np.int64)
    out_i = np.empty((n_points, k), dtype=np.int64)
    out_d = np.empty((n_points, k))
    workers = worker_threads()

    def block_gram(pool, A):
        """ops[A] @ ops[A].T, its row chunks on the pool's threads."""
        chunks = np.array_split(A, workers)
        return np.vstack(list(pool.map(lambda rows: ops[rows] @ ops[A].T, chunks)))

    def screen_outside(pool, J, first_pos, stop_pos):
        placed_rows = ops[order[first_pos:stop_pos]]

        def screen_block(r0):
            rows = J[r0 : r0 + block]
            _screen_rows(rows, first_pos, ops[rows] @ placed_rows.T, data, scale, error, euclid, C, order)

        list(pool.map(screen_block, range(0, J.shape[0], block)))

    with one_thread(), ThreadPoolExecutor(workers) as pool:
        _place(data, first, 0, C, placed, order, out_i, out_d)
        screen_outside(pool, np.flatnonzero(~placed), 0, 1)
        n = 1
        while n < n_points:
            unplaced = np.flatnonzero(~placed)
            ranked = unplaced[np.lexsort((unplaced, -C.dist[unplaced]))]
            A, outside = ranked[:block], ranked[block:]
            bound_i = int(outside[0]) if outside.size else -1
            bound_d = float(C.dist[bound_i]) if outside.size else 0.0
            G = block_gram(pool, A)
            start = n
            n = _greedy_in_block(A, G, bound_d, bound_i, data, scale, error, euclid, C, placed, order, out_i,
                                 out_d, n)
            if outside.size:
                screen_outside(pool, outside, start, n)
            if progress is not None:
                progress(n, n)
            interrupts.check()
    return order, out_i, out_d, int(C.evaluations.sum())
