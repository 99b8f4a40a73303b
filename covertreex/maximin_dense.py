"""Exact maximin ordering fused with the predecessor search, in rounds of blocked GEMM.

Every pair (c, j) with c placed before j is a pair the predecessor query must look at, so each unplaced point
j keeps a top-k heap of placed points by (canonical distance, position), and ``dist[j]``, its distance to the
nearest placed point. When j is placed, its heap *is* its neighbour row; the ordering is exact maximin (the
largest ``dist`` next, ties to the smallest index) and the rows equal the predecessor query's on the data in
that order, distance bits included.

Rounds: the S unplaced points with the best keys (``dist`` descending, index ascending) form a block A whose
S x S GEMM is computed once; points of A are placed greedily, updating the rest of A, for as long as the best
of A beats the best key outside A at the round's start (keys outside only fall, so that bound holds and every
placement is the global best). Then every point outside A is screened against the points just placed with
one GEMM per row block. A pair is evaluated canonically unless j's heap is full and the dense path's rigorous
interval (:func:`covertreex.metrics.kernels.bounds`) proves its canonical distance is above j's k-th, which
then also exceeds ``dist[j]``: no placement and no neighbour can change (outside the block, the k-th is
taken over the kept pairs and the whole round's new ones before any is evaluated, so a pair displaced within
the round is never evaluated). So ``dist`` and the heaps are exact and the work is the predecessor query's
N^2/2 pairs plus the blocks.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
from numba import njit
from threadpoolctl import threadpool_limits

from covertreex.engines.heap import offer, write_sorted
from covertreex.metrics.kernels import (
    EPS,
    EUCLIDEAN,
    MetricData,
    bounds,
    distance,
    euclidean_constant,
    operand,
    row_factors,
    widen,
)
from covertreex.resources import available_cpus

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


@njit(cache=True)
def _offer_pair(D, c, pos, j, g, scale, error, euclid, heap_d, heap_i, heap_n, dist, evaluations):
    """Offer placed point c (at position pos) to unplaced j, from their GEMM value g."""
    n = heap_n[j]
    if n == heap_d.shape[1]:
        lo, _ = bounds(D, c, D, j, g, scale, error, scale, error, euclid)
        if lo > widen(D.metric, _key_bound(D.metric, heap_d[j, 0])):
            return
    d = distance(D, c, c, D, j)
    evaluations[j] += 1
    heap_n[j], _ = offer(heap_d[j], heap_i[j], n, d, pos)
    if d < dist[j]:
        dist[j] = d


@njit(cache=True)
def _better(d1, i1, d2, i2):
    return d1 > d2 or (d1 == d2 and i1 < i2)


@njit(cache=True)
def _place(c, n, heap_d, heap_i, heap_n, placed, order, out_i, out_d):
    write_sorted(heap_d[c], heap_i[c], heap_n[c], out_i[n], out_d[n])
    order[n] = c
    placed[c] = True


@njit(cache=True)
def _greedy_in_block(A, G, bound_d, bound_i, D, scale, error, euclid, heap_d, heap_i, heap_n, dist,
                     evaluations, placed, order, out_i, out_d, n):
    """Place points of block A while its best beats (bound_d, bound_i); return the new count placed."""
    while True:
        b = -1
        for t in range(A.shape[0]):
            if not placed[A[t]] and (b < 0 or _better(dist[A[t]], A[t], dist[A[b]], A[b])):
                b = t
        if b < 0 or (bound_i >= 0 and not _better(dist[A[b]], A[b], bound_d, bound_i)):
            return n
        c = A[b]
        _place(c, n, heap_d, heap_i, heap_n, placed, order, out_i, out_d)
        for t in range(A.shape[0]):
            if not placed[A[t]]:
                _offer_pair(D, c, n, A[t], G[b, t], scale, error, euclid, heap_d, heap_i, heap_n, dist,
                            evaluations)
        n += 1


@njit(cache=True, nogil=True)
def _screen_rows(J, B, first_pos, tile, D, scale, error, euclid, heap_d, heap_i, heap_n, dist,
                 evaluations):
    """Offer the points B (placed at positions first_pos, first_pos + 1, ...) to every row j of J, in two
    passes so that only pairs that may end in j's top k are evaluated canonically: first the intervals of
    all pairs and T, the k-th smallest upper bound on a key among j's kept pairs and the new ones (at least k
    pairs are canonically at or below it); then a canonical evaluation of every new pair with lo <= widen(T).
    Rows are independent (each touches only its own j's state), so row blocks run on separate threads.
    """
    k = heap_d.shape[1]
    lo = np.empty(B.shape[0])
    ub_d = np.empty(k)
    ub_i = np.zeros(k, dtype=np.int64)
    for r in range(J.shape[0]):
        j = J[r]
        size = 0
        for e in range(heap_n[j]):
            size, _ = offer(ub_d, ub_i, size, _key_bound(D.metric, heap_d[j, e]), 0)
        for t in range(B.shape[0]):
            lo[t], hi = bounds(D, B[t], D, j, tile[r, t], scale, error, scale, error, euclid)
            size, _ = offer(ub_d, ub_i, size, hi, 0)
        cutoff = widen(D.metric, ub_d[0]) if size == k else np.inf
        for t in range(B.shape[0]):
            if lo[t] <= cutoff:
                d = distance(D, B[t], B[t], D, j)
                evaluations[j] += 1
                heap_n[j], _ = offer(heap_d[j], heap_i[j], heap_n[j], d, first_pos + t)
                if d < dist[j]:
                    dist[j] = d


def maximin_with_neighbors(data: MetricData, first: int, k: int, progress=None, block: int = BLOCK):
    """(order, neighbours (N, k) as positions, distances (N, k), canonical evaluations) -- see the module
    docstring. `progress(n)` hears how many points are placed after each round."""
    n_points = data.X.shape[0]
    ops = operand(data)
    factors = row_factors(data)
    scale, error, euclid = factors.scale, factors.error, euclidean_constant(data.X.shape[1])
    heap_d = np.empty((n_points, k))
    heap_i = np.empty((n_points, k), dtype=np.int64)
    heap_n = np.zeros(n_points, dtype=np.int64)
    dist = np.full(n_points, np.inf)
    evaluations = np.zeros(n_points, dtype=np.int64)
    placed = np.zeros(n_points, dtype=np.bool_)
    order = np.empty(n_points, dtype=np.int64)
    out_i = np.empty((n_points, k), dtype=np.int64)
    out_d = np.empty((n_points, k))
    state = (heap_d, heap_i, heap_n, dist, evaluations)
    workers = available_cpus()

    def block_gram(pool, A):
        """ops[A] @ ops[A].T, its row chunks on the pool's threads."""
        chunks = np.array_split(A, workers)
        return np.vstack(list(pool.map(lambda rows: ops[rows] @ ops[A].T, chunks)))

    def screen_outside(pool, J, B, first_pos):
        placed_rows = ops[B]

        def screen_block(r0):
            rows = J[r0 : r0 + block]
            _screen_rows(rows, B, first_pos, ops[rows] @ placed_rows.T, data, scale, error, euclid, *state)

        list(pool.map(screen_block, range(0, J.shape[0], block)))

    with threadpool_limits(limits=1, user_api="blas"), ThreadPoolExecutor(workers) as pool:
        _place(first, 0, heap_d, heap_i, heap_n, placed, order, out_i, out_d)
        screen_outside(pool, np.flatnonzero(~placed), order[:1], 0)
        n = 1
        while n < n_points:
            unplaced = np.flatnonzero(~placed)
            ranked = unplaced[np.lexsort((unplaced, -dist[unplaced]))]
            A, outside = ranked[:block], ranked[block:]
            bound_i = int(outside[0]) if outside.size else -1
            bound_d = float(dist[bound_i]) if outside.size else 0.0
            G = block_gram(pool, A)
            start = n
            n = _greedy_in_block(A, G, bound_d, bound_i, data, scale, error, euclid, *state, placed, order,
                                 out_i, out_d, n)
            if outside.size:
                screen_outside(pool, outside, order[start:n], start)
            if progress is not None:
                progress(n)
    return order, out_i, out_d, int(evaluations.sum())
