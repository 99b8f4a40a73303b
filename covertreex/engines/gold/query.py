"""Exact k-NN query: a level-synchronous walk down the cover tree.

At each step the walk expands, across the whole frontier, the children at the highest level not yet
expanded; every child's distance is evaluated and offered to a bounded heap ordered by (distance, index).
A frontier node is dropped when rounding-safe bounds prove its subtree cannot beat the current k-th
distance (strictly, so ties survive). Children that are bit-for-bit copies of their parent reuse the
parent's distance (a dedupe hit). The counters recorded here are the query telemetry of DESIGN section 7.

The schedule (covertreex.engines.schedule.Schedule) changes which work is done, never the answer:
- ``predecessor_pruning``: a child whose subtree holds no eligible index (``subtree_min >= limit``) is
  neither evaluated nor entered; nothing in it could be offered to the heap.
- ``child_reordering``: each step expands its frontier nodes by increasing lower bound
  ``d(q, node) - radius[node]``, ties by index, so near children fill the heap first and the k-th distance
  tightens before far nodes are checked. Any order is exact: a node is pruned only against the current
  k-th distance, which never falls below the final one, and the heap keeps the k best by (distance,
  index) whatever order candidates arrive in.
- ``best_first``: the walk of covertreex.engines.gold.best_first instead of this one.
- ``block_sizing`` and ``early_stop``: each step in blocks sized from its frontier, and the walk's end
  after a block that yields nothing once a guard proves everything left prunable
  (covertreex.engines.gold.blocks, which states the proof).
- ``level_cache``: a child is skipped unmeasured when its parent's distance proves its subtree beyond the
  k-th distance (covertreex.engines.gold.visit.step).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numba import njit, prange

from covertreex.counters import N_LEVEL_COUNTERS, N_QUERY_COUNTERS, LevelCounter, QueryCounter
from covertreex.engines.gold.best_first import best_first
from covertreex.engines.gold.blocks import first_width, settled
from covertreex.engines.gold.visit import slot, step
from covertreex.engines.heap import offer, write_sorted
from covertreex.metrics.kernels import distance

CHUNK = 16  # queries per parallel task; scratch arrays are allocated once per task


class Scratch(NamedTuple):
    """One worker's buffers, reused from query to query: the k-best heap, the frontier and the children a
    step adds to it as parallel node / distance / next-child-position arrays, and the best-first walk's
    priority queue (bound / node / distance), each as long as the dataset."""

    heap_d: np.ndarray
    heap_i: np.ndarray
    front_node: np.ndarray
    front_dist: np.ndarray
    front_pos: np.ndarray
    new_node: np.ndarray
    new_dist: np.ndarray
    new_pos: np.ndarray
    queue_bound: np.ndarray
    queue_node: np.ndarray
    queue_dist: np.ndarray


@njit(cache=True)
def new_scratch(n, k):
    """Buffers for queries of `k` neighbours over `n` points. The long arrays are rows of two blocks
    (integers, distances): two allocations per worker measured faster than nine."""
    ints = np.empty((5, n), dtype=np.int64)
    dists = np.empty((4, n))
    return Scratch(
        np.empty(k), np.empty(k, dtype=np.int64),
        ints[0], dists[0], ints[1],
        ints[2], dists[1], ints[3],
        dists[2], ints[4], dists[3],
    )


@njit(cache=True)
def _nearest_first(T, f_node, f_dist, f_pos, n_front, tmp_node, tmp_dist, tmp_pos):
    """Reorder the frontier by (d(q, node) - radius[node], node), using the tmp arrays as scratch."""
    by_node = np.argsort(f_node[:n_front])
    bound = f_dist[:n_front][by_node] - T.radius[f_node[:n_front][by_node]]
    order = by_node[np.argsort(bound, kind="mergesort")]  # stable: equal bounds stay in index order
    for j in range(n_front):
        tmp_node[j], tmp_dist[j], tmp_pos[j] = f_node[order[j]], f_dist[order[j]], f_pos[order[j]]
    for j in range(n_front):
        f_node[j], f_dist[j], f_pos[j] = tmp_node[j], tmp_dist[j], tmp_pos[j]


@njit(cache=True)
def query_one(T, D, Q, S, row, q_index, limit, scratch, out_i, out_d, per_level, per_query):
    """Answer one query (row `row` of Q, dataset index `q_index`, eligible indices below `limit`) on
    schedule S; fill out_i/out_d and its counter rows."""
    heap_d, heap_i = scratch.heap_d, scratch.heap_i
    f_node, f_dist, f_pos = scratch.front_node, scratch.front_dist, scratch.front_pos
    new_node, new_dist, new_pos = scratch.new_node, scratch.new_dist, scratch.new_pos
    size = 0
    # Subtrees whose smallest index is not below `entry` are never entered (every subtree is, unpruned).
    entry = limit if S.predecessor_pruning else T.levels.shape[0]
    root = T.root
    if T.subtree_min[root] >= entry:
        write_sorted(heap_d, heap_i, size, out_i, out_d)
        return
    d = distance(Q, row, q_index, D, root)
    per_level[0, LevelCounter.DISTANCE_EVALUATIONS] += 1
    per_query[QueryCounter.DISTANCE_EVALUATIONS] += 1
    if root < limit:
        size, pushed = offer(heap_d, heap_i, size, d, root)
        if pushed:
            per_level[0, LevelCounter.HEAP_PUSHES] += 1
            per_query[QueryCounter.HEAP_PUSHES] += 1
    if S.best_first:
        size = best_first(T, D, Q, S, row, q_index, limit, entry, d, size, scratch, per_level, per_query)
        write_sorted(heap_d, heap_i, size, out_i, out_d)
        return
    n_front = 0
    if T.child_offsets[root + 1] > T.child_offsets[root]:
        f_node[0], f_dist[0], f_pos[0] = root, d, T.child_offsets[root]
        n_front = 1
    while n_front > 0:
        level = T.levels[T.children[f_pos[0]]]
        for j in range(1, n_front):
            candidate = T.levels[T.children[f_pos[j]]]
            if candidate > level:
                level = candidate
        if S.child_reordering:
            _nearest_first(T, f_node, f_dist, f_pos, n_front, new_node, new_dist, new_pos)
        per_query[QueryCounter.FRONTIER_STEPS] += 1
        s = slot(T, level)
        base = first_width(n_front) if S.block_sizing else n_front
        width = base
        n_kept = n_new = lo = 0
        while lo < n_front:
            hi = min(n_front, lo + width)
            pushes, prunes = per_query[QueryCounter.HEAP_PUSHES], per_query[QueryCounter.PRUNES]
            size, n_kept, n_new = step(T, D, Q, S, row, q_index, limit, entry, f_node, f_dist, f_pos, lo, hi,
                                       n_kept, n_new, level, s, heap_d, heap_i, size, new_node, new_dist,
                                       new_pos, per_level, per_query)
            pruned_whole = per_query[QueryCounter.PRUNES] - prunes == hi - lo
            lo = hi
            if per_query[QueryCounter.HEAP_PUSHES] > pushes:
                width = base
                continue
            per_query[QueryCounter.EMPTY_BLOCKS] += 1
            width *= 2
            # The guard runs after a block pruned whole (so the heap is full), when something is left.
            if not (S.early_stop and pruned_whole and (lo < n_front or n_kept + n_new > 0)):
                continue
            kth = heap_d[0]
            if (settled(T, D, Q, f_node, f_dist, lo, n_front, kth, per_query)
                    and settled(T, D, Q, f_node, f_dist, 0, n_kept, kth, per_query)
                    and settled(T, D, Q, new_node, new_dist, 0, n_new, kth, per_query)):
                per_query[QueryCounter.EARLY_STOPS] += 1
                write_sorted(heap_d, heap_i, size, out_i, out_d)
                return
        for j in range(n_new):
            f_node[n_kept + j], f_dist[n_kept + j], f_pos[n_kept + j] = new_node[j], new_dist[j], new_pos[j]
        n_front = n_kept + n_new
    write_sorted(heap_d, heap_i, size, out_i, out_d)


@njit(cache=True, parallel=True)
def query_batch(T, D, Q, S, rows, q_index, limit, k):
    """Answer every query on schedule S (in parallel chunks); results never depend on the thread count."""
    n_q = rows.shape[0]
    n = D.X.shape[0]
    out_i = np.empty((n_q, k), dtype=np.int64)
    out_d = np.empty((n_q, k))
    per_level = np.zeros((n_q, T.n_slots, N_LEVEL_COUNTERS), dtype=np.int64)
    per_query = np.zeros((n_q, N_QUERY_COUNTERS), dtype=np.int64)
    n_chunks = (n_q + CHUNK - 1) // CHUNK
    for chunk in prange(n_chunks):
        scratch = new_scratch(n, k)
        for q in range(chunk * CHUNK, min(n_q, (chunk + 1) * CHUNK)):
            query_one(T, D, Q, S, rows[q], q_index[q], limit[q], scratch, out_i[q], out_d[q],
                      per_level[q], per_query[q])
    return out_i, out_d, per_level, per_query
