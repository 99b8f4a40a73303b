"""Batch insertion build of the compressed cover tree (DESIGN section 4), parallel with Numba prange.

Points are taken in insertion order, in batches whose size doubles with the tree (prefix doubling, at most
`block` points). Each round:

1. every point of the batch searches the tree as it stood before the round, all points together and level
   by level: each step groups the (point, node) expansions by node and evaluates the node's children
   against all its points in one parallel task (the children's rows of V are read once per task, not once
   per point; residual distances come from the tiled canonical kernel of engines/gold/tile.py, bit for bit
   the canonical ones). A point's parent r* is the smallest (d(x, r), r) over the non-duplicate nodes whose
   ball covers x, and a subtree is skipped only when no descendant can cover x at a distance <= one some
   covering node attains (a strict, rounding-safe bound, so ties survive): any sound search order finds
   the same r* as the sequential build's depth-first search, and every ancestor of r* is expanded on the
   way. Only the count of evaluations differs. So x wants r* and a level j = level_below(d(x, r*)) (or is
   an exact duplicate of r*); against the old tree that placement keeps covering and separation;
2. the points that want a level, from the top level down, form a conflict graph: an edge joins x and y
   when d(x, y) <= 2**min(j_x, j_y), i.e. when inserting both would break separation. The maximal
   independent set chosen greedily in priority order (level descending, then insertion order) is inserted;
   duplicates never conflict. Pair distances are evaluated as one block per batch (the batch's rows of V
   stay in cache), skipping the pairs that a shared ancestor already proves apart;
3. the rest go back to the front of the queue and search again, now below the points that beat them.

A batch of one point is one sequential insertion, so `block = 1` gives the sequential tree (with the
evaluations of the level-synchronous search). Every result of
a round depends only on the tree before it, never on the thread count. The rust engine
(rust/core/src/batch.rs) follows this step for step, so parity mode gives bit-identical trees and counts.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

from covertreex.engines.gold.build import (
    INSERTIONS_PER_CALL,
    attach,
    better_parent,
    new_tree,
    root_level,
    worth_expanding,
)
from covertreex.engines.gold.tile import residual_block
from covertreex.interrupts import check, deferring
from covertreex.level_constants import DUPLICATE_LEVEL
from covertreex.levels import level_below
from covertreex.metrics.data import RESIDUAL
from covertreex.metrics.kernels import can_prune, distance

TASK_POINTS = 32
"""Most points of one parallel task: a node that many points expand (the root's children first) is split
so that every thread gets work."""


@njit(cache=True, parallel=True)
def _root_distances(D, batch, root):
    out = np.empty(batch.shape[0])
    for t in prange(batch.shape[0]):
        out[t] = distance(D, batch[t], batch[t], D, root)
    return out


@njit(cache=True)
def _tasks(node, n_children):
    """The expansions (sorted by node, then slot) cut into tasks: runs of one node, at most TASK_POINTS
    long; per task its first and last + 1 expansion and where its evaluations start in the output."""
    starts = []
    for i in range(node.shape[0]):
        if i == 0 or node[i] != node[i - 1] or i - starts[-1] == TASK_POINTS:
            starts.append(i)
    task_start = np.array(starts, dtype=np.int64)
    task_end = np.append(task_start[1:], node.shape[0])
    out_start = np.zeros(task_start.shape[0] + 1, dtype=np.int64)
    for t in range(task_start.shape[0]):
        out_start[t + 1] = out_start[t] + (task_end[t] - task_start[t]) * n_children[node[task_start[t]]]
    return task_start, task_end, out_start


@njit(cache=True)
def _children(a, levels, first_child, next_sibling, n_children):
    """a's non-duplicate children, in sibling order."""
    out = np.empty(n_children[a], dtype=np.int64)
    c, at = first_child[a], 0
    while c != -1:
        if levels[c] != DUPLICATE_LEVEL:
            out[at] = c
            at += 1
        c = next_sibling[c]
    return out


@njit(cache=True, parallel=True)
def _expand(D, batch, levels, first_child, next_sibling, n_children, node, slot, task_start, task_end,
            out_start, out_node, out_slot, out_d):
    """Evaluate each task's node's non-duplicate children against the task's points as one block (the
    residual metric's tile, engines/gold/tile.py, reads each row of V once per task); outputs in task
    order, then point order, then child order."""
    for t in prange(task_start.shape[0]):
        children = _children(node[task_start[t]], levels, first_child, next_sibling, n_children)
        slots = slot[task_start[t]:task_end[t]]
        points = batch[slots]
        at = out_start[t]
        if D.metric == RESIDUAL:
            residual_block(D, points, children, out_d[at:out_start[t + 1]])
        for i in range(points.shape[0]):
            for c in children:
                out_node[at], out_slot[at] = c, slots[i]
                if D.metric != RESIDUAL:
                    out_d[at] = distance(D, points[i], points[i], D, c)
                at += 1


@njit(cache=True, nogil=True)
def _search_batch(D, batch, root, levels, parents, depth, radius, first_child, next_sibling,
                  max_child_level, best, best_d, evaluations, path_node, path_d):
    """Search every point of `batch` against the current tree, all together and level-synchronously;
    record its parent, distance, evaluations and the path root..parent with d(x, node) along it (row t
    of path_node/path_d, root first). See the module docs for why the parents are the sequential
    search's."""
    b, n = batch.shape[0], levels.shape[0]
    n_children = np.zeros(n, dtype=np.int64)
    for c in range(n):
        if parents[c] != -1 and levels[c] != DUPLICATE_LEVEL:
            n_children[parents[c]] += 1
    node = np.full(b, root, dtype=np.int64)
    slot = np.arange(b)
    d = _root_distances(D, batch, root)
    best[:] = -1
    best_d[:] = math.inf
    evaluations[:] = 1
    kept_key = np.empty(0, dtype=np.int64)
    kept_d = np.empty(0)
    while True:
        for i in range(node.shape[0]):
            s = slot[i]
            if better_parent(node[i], d[i], best_d[s], best[s], levels):
                best_d[s], best[s] = d[i], node[i]
        keep = np.empty(node.shape[0], dtype=np.bool_)
        for i in range(node.shape[0]):
            keep[i] = worth_expanding(D, node[i], d[i], best_d[slot[i]], radius, max_child_level)
        node, slot, d = node[keep], slot[keep], d[keep]
        if node.shape[0] == 0:
            break
        order = np.argsort(node * b + slot)
        node, slot, d = node[order], slot[order], d[order]
        kept_key = np.concatenate((kept_key, slot * n + node))
        kept_d = np.concatenate((kept_d, d))
        task_start, task_end, out_start = _tasks(node, n_children)
        total = out_start[-1]
        out_node = np.empty(total, dtype=np.int64)
        out_slot = np.empty(total, dtype=np.int64)
        out_d = np.empty(total)
        _expand(D, batch, levels, first_child, next_sibling, n_children, node, slot, task_start, task_end,
                out_start, out_node, out_slot, out_d)
        node, slot, d = out_node, out_slot, out_d
        for i in range(slot.shape[0]):
            evaluations[slot[i]] += 1
    order = np.argsort(kept_key)
    kept_key, kept_d = kept_key[order], kept_d[order]
    for s in range(b):
        r = best[s]
        if r < 0:
            continue
        path_node[s, depth[r]], path_d[s, depth[r]] = r, best_d[s]
        a = parents[r]
        while a != -1:  # every ancestor of r was expanded on the way down
            path_node[s, depth[a]] = a
            path_d[s, depth[a]] = kept_d[np.searchsorted(kept_key, s * n + a)]
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
def _rounds(D, queue, root, block, budget, progress, levels, parents, depth, radius, first_child, last_child,
            next_sibling, max_child_level):
    """Run rounds until `budget` more points are in the tree or the queue is empty. `progress` holds
    (queue position, points in the tree, deepest depth, distance evaluations), read and updated."""
    start, inserted, max_depth, total = progress[0], progress[1], progress[2], progress[3]
    goal = inserted + budget
    while start < queue.shape[0] and inserted < goal:
        size = min(block, inserted, queue.shape[0] - start)
        batch = queue[start:start + size]
        best = np.empty(size, dtype=np.int64)
        best_d = np.empty(size)
        evaluations = np.zeros(size, dtype=np.int64)
        path_node = np.full((size, max_depth + 1), -1, dtype=np.int64)
        path_d = np.zeros((size, max_depth + 1))
        _search_batch(D, batch, root, levels, parents, depth, radius, first_child, next_sibling,
                      max_child_level, best, best_d, evaluations, path_node, path_d)
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
    progress[0], progress[1], progress[2], progress[3] = start, inserted, max_depth, total


@deferring
def build_tree_batch(D, order, block):
    """Insert the points in `order` in batches of at most `block` (on any number of threads the same
    tree), rounds of about :data:`INSERTIONS_PER_CALL` points per compiled call; return (levels,
    parents, radius, distance evaluations), the same arrays as the sequential build."""
    n, root = D.X.shape[0], order[0]
    levels, parents, radius, first_child, last_child, next_sibling, max_child_level = new_tree(n, root)
    depth = np.zeros(n, dtype=np.int64)
    queue = order[1:].copy()
    progress = np.array([0, 1, 0, 0], dtype=np.int64)
    while progress[0] < queue.shape[0]:
        _rounds(D, queue, root, block, INSERTIONS_PER_CALL, progress, levels, parents, depth, radius,
                first_child, last_child, next_sibling, max_child_level)
        check()
    levels[root] = root_level(levels, root)
    return levels, parents, radius, int(progress[3])
