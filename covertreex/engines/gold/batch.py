"""Batch insertion build of the compressed cover tree (DESIGN section 4), parallel with Numba prange.

Points are taken in insertion order, in batches whose size doubles with the tree (prefix doubling, at most
`block` points). Each round:

1. every point of the batch searches the tree as it stood before the round, in parallel, exactly as the
   sequential build searches it, and so wants a parent r* and a level j = level_below(d(x, r*)) (or is an
   exact duplicate of r*). Against the old tree that placement keeps covering and separation;
2. the points that want a level, from the top level down, form a conflict graph: an edge joins x and y
   when d(x, y) <= 2**min(j_x, j_y), i.e. when inserting both would break separation. The maximal
   independent set chosen greedily in priority order (level descending, then insertion order) is inserted;
   duplicates never conflict. Pair distances are evaluated as one block per batch (the batch's rows of V
   stay in cache), skipping the pairs that a shared ancestor already proves apart;
3. the rest go back to the front of the queue and search again, now below the points that beat them.

A batch of one point is one sequential insertion, so `block = 1` gives the sequential tree. Every result of
a round depends only on the tree before it, never on the thread count. The rust engine
(rust/core/src/batch.rs) follows this step for step, so parity mode gives bit-identical trees and counts.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

from covertreex.engines.gold.build import attach, root_level, search_parent
from covertreex.levels import DUPLICATE_LEVEL, NO_CHILD_LEVEL, UNBOUNDED_LEVEL, level_below
from covertreex.metrics.kernels import can_prune, distance


@njit(cache=True, parallel=True)
def _search_batch(D, batch, root, levels, parents, depth, radius, first_child, next_sibling,
                  max_child_level, scratch, stacks, best, best_d, evaluations, path_node, path_d):
    """Search every point of `batch` against the current tree; record its parent, distance, evaluations
    and the path root..parent with d(x, node) along it (row t of path_node/path_d, root first)."""
    workers = scratch.shape[0]
    for w in prange(workers):
        for t in range(w, batch.shape[0], workers):
            x = batch[t]
            b, bd, ev = search_parent(D, x, root, levels, radius, first_child, next_sibling,
                                      max_child_level, scratch[w], stacks[w])
            best[t], best_d[t], evaluations[t] = b, bd, ev
            a = b
            while a != -1:
                path_node[t, depth[a]] = a
                path_d[t, depth[a]] = scratch[w, a]
                a = parents[a]


@njit(cache=True)
def _proved_apart(D, i, j, path_node, path_d, path_len, threshold):
    """True when a common ancestor a proves every computed d(x_i, x_j) > threshold, by the triangle
    inequality through d(x_i, a) and d(x_j, a) with the rounding-safe bounds of tree pruning."""
    for k in range(min(path_len[i], path_len[j])):
        if path_node[i, k] != path_node[j, k]:
            return False
        di, dj = path_d[i, k], path_d[j, k]
        if can_prune(D.metric, D.slack, di, dj, threshold) or can_prune(D.metric, D.slack, dj, di, threshold):
            return True
    return False


@njit(cache=True, parallel=True)
def _conflicts(D, points, wanted, path_node, path_d, path_len, conflict, evaluations):
    """conflict[i, j] (j < i, both in priority order) when d(x_i, x_j) <= 2**wanted[i]: the later point
    wants the lower level, so that is the separation radius of the pair. Duplicates never conflict."""
    for i in prange(points.shape[0]):
        if wanted[i] == DUPLICATE_LEVEL:
            continue
        threshold = math.ldexp(1.0, wanted[i])
        for j in range(i):
            if wanted[j] == DUPLICATE_LEVEL or _proved_apart(D, i, j, path_node, path_d, path_len, threshold):
                continue
            evaluations[i] += 1
            conflict[i, j] = distance(D, points[i], points[i], D, points[j]) <= threshold


@njit(cache=True)
def _independent_set(wanted, conflict):
    """Greedy maximal independent set in priority order (duplicates always join)."""
    accepted = np.zeros(wanted.shape[0], dtype=np.bool_)
    for i in range(wanted.shape[0]):
        accepted[i] = True
        if wanted[i] == DUPLICATE_LEVEL:
            continue
        for j in range(i):
            if accepted[j] and conflict[i, j]:
                accepted[i] = False
                break
    return accepted


@njit(cache=True, nogil=True)
def build_tree_batch(D, order, block, workers):
    """Insert the points in `order` in batches of at most `block`, searching on `workers` parallel lanes
    (any count gives the same tree); return (levels, parents, radius, distance evaluations), the same
    arrays as the sequential build."""
    n = D.X.shape[0]
    levels = np.zeros(n, dtype=np.int64)
    parents = np.full(n, -1, dtype=np.int64)
    depth = np.zeros(n, dtype=np.int64)
    radius = np.zeros(n)
    first_child = np.full(n, -1, dtype=np.int64)
    last_child = np.full(n, -1, dtype=np.int64)
    next_sibling = np.full(n, -1, dtype=np.int64)
    max_child_level = np.full(n, NO_CHILD_LEVEL, dtype=np.int64)
    scratch = np.zeros((workers, n))
    stacks = np.empty((workers, n), dtype=np.int64)
    root = order[0]
    levels[root] = UNBOUNDED_LEVEL
    queue = order[1:].copy()
    start = 0
    inserted = 1
    max_depth = 0
    total = 0
    while start < queue.shape[0]:
        size = min(block, inserted, queue.shape[0] - start)
        batch = queue[start:start + size]
        best = np.empty(size, dtype=np.int64)
        best_d = np.empty(size)
        evaluations = np.zeros(size, dtype=np.int64)
        path_node = np.full((size, max_depth + 1), -1, dtype=np.int64)
        path_d = np.zeros((size, max_depth + 1))
        _search_batch(D, batch, root, levels, parents, depth, radius, first_child, next_sibling,
                      max_child_level, scratch, stacks, best, best_d, evaluations, path_node, path_d)
        for t in range(size):
            if best[t] < 0:  # only a non-finite distance escapes every ball; the API rejects such input
                raise ValueError("X: a distance evaluated to inf or NaN during the build")
        wanted = np.empty(size, dtype=np.int64)
        for t in range(size):
            wanted[t] = DUPLICATE_LEVEL if best_d[t] == 0.0 else level_below(best_d[t])
        priority = np.argsort(-wanted, kind="mergesort")
        path_len = depth[best[priority]] + 1
        conflict = np.zeros((size, size), dtype=np.bool_)
        pair_evaluations = np.zeros(size, dtype=np.int64)
        _conflicts(D, batch[priority], wanted[priority], path_node[priority], path_d[priority], path_len,
                   conflict, pair_evaluations)
        total += evaluations.sum() + pair_evaluations.sum()
        accepted = _independent_set(wanted[priority], conflict)
        for i in range(size):
            if not accepted[i]:
                continue
            t = priority[i]
            x, parent = batch[t], best[t]
            attach(x, parent, wanted[t], levels, parents, first_child, last_child, next_sibling,
                   max_child_level)
            depth[x] = depth[parent] + 1
            max_depth = max(max_depth, depth[x])
            for k in range(depth[parent] + 1):
                radius[path_node[t, k]] = max(radius[path_node[t, k]], path_d[t, k])
            inserted += 1
        rejected = np.ones(size, dtype=np.bool_)
        rejected[priority[accepted]] = False
        losers = batch[rejected].copy()
        start += size - losers.shape[0]
        queue[start:start + losers.shape[0]] = losers
    levels[root] = root_level(levels, root)
    return levels, parents, radius, total
