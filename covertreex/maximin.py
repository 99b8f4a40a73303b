"""Exact maximin ordering (farthest point first) by a cover-tree walk with per-subtree bounds.

The order starts at a given point; each next point is the one whose distance to the nearest point chosen so
far is largest, ties broken by the smallest dataset index. Distances are the canonical ones of
:mod:`covertreex.metrics.kernels`, so "largest" and "tie" are judged on exactly the values the oracle
computes.

How it avoids O(N^2) evaluations: every point j keeps ``dist[j]``, its canonical distance to the nearest
chosen point, and every tree node keeps the best (largest ``dist``, then smallest index) unchosen point of
its subtree. When point c is chosen, a walk from the root refreshes ``dist`` and skips a subtree when
rounding-safe bounds (:func:`~covertreex.metrics.kernels.can_prune`) prove that no point j in it has a
computed ``d(c, j)`` at or below the subtree's best ``dist`` -- then no ``dist`` in it can decrease -- or
when it holds no unchosen point. The walk recomputes the best of every node it enters, so the root always
names the next point. It runs on one thread: each choice depends on the previous one, and a parallel region
per choice cost more in synchronisation than it saved on a shared 2-core machine (measured: 5x slower under
load).

The walk only needs ``child_offsets``, ``children`` and ``radius`` (an upper bound on the distance from a
node to each descendant): a cover tree from any engine, or :func:`star` -- every point a child of one root
with an unbounded radius, which makes the same walk an exhaustive scan (the tree-less path of the brute
engine).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from numba import njit

from covertreex import interrupts
from covertreex.metrics.data import MetricData
from covertreex.metrics.kernels import can_prune, distance

CHOSEN = -1.0
"""``dist`` of a point already in the order (and a subtree best when every point in it is chosen)."""
STEPS_PER_CALL = 1024
"""Points chosen per compiled call; between calls the caller's progress callback runs."""


@njit(cache=True)
def _better(d1, i1, d2, i2):
    """Whether (d1, i1) comes before (d2, i2) in maximin order: larger distance, then smaller index."""
    return d1 > d2 or (d1 == d2 and i1 < i2)


@njit(cache=True)
def _recompute(node, offsets, children, dist, best_d, best_i):
    """best of `node`'s subtree from its own dist and its children's bests."""
    bd, bi = dist[node], node
    if bd == CHOSEN:
        bi = -1
    for pos in range(offsets[node], offsets[node + 1]):
        child = children[pos]
        if best_i[child] >= 0 and (bi < 0 or _better(best_d[child], best_i[child], bd, bi)):
            bd, bi = best_d[child], best_i[child]
    best_d[node], best_i[node] = bd, bi


@njit(cache=True)
def _walk(top, c, D, offsets, children, radius, dist, best_d, best_i, stack, evaluations):
    """Refresh dist in the subtree of `top` after choosing point c; return the distances evaluated."""
    n_eval = 0
    size = 0
    stack[size] = 2 * top
    size += 1
    while size > 0:
        size -= 1
        entry = stack[size]
        node = entry >> 1
        if entry & 1:
            _recompute(node, offsets, children, dist, best_d, best_i)
            continue
        if best_i[node] < 0:
            continue
        d = distance(D, c, c, D, node)
        n_eval += 1
        if can_prune(D.metric, D.slack, d, radius[node], best_d[node]):
            continue
        if dist[node] != CHOSEN and d < dist[node]:
            dist[node] = d
        stack[size] = 2 * node + 1
        size += 1
        for pos in range(offsets[node], offsets[node + 1]):
            stack[size] = 2 * children[pos]
            size += 1
    evaluations[0] += n_eval


@njit(cache=True)
def _steps(order, start, stop, root, D, offsets, children, radius, dist, best_d, best_i, stack,
           evaluations):
    """Fill order[start:stop]: each entry is the root's best after the previous choice (order[0] is given)."""
    for n in range(start, stop):
        c = order[n] if n == 0 else best_i[root]
        order[n] = c
        dist[c] = CHOSEN
        _walk(root, c, D, offsets, children, radius, dist, best_d, best_i, stack, evaluations)


def star(n_points: int, root: int = 0) -> tuple[int, np.ndarray, np.ndarray, np.ndarray]:
    """(root, child_offsets, children, radius) of a one-level tree: the walk over it scans every point."""
    offsets = np.zeros(n_points + 1, dtype=np.int64)
    offsets[root + 1 :] = n_points - 1
    children = np.delete(np.arange(n_points, dtype=np.int64), root)
    radius = np.zeros(n_points)
    radius[root] = np.inf
    return root, offsets, children, radius


@interrupts.deferring
def maximin_order(data: MetricData, first: int, tree=None,
                  progress: Callable[[int], None] | None = None) -> tuple[np.ndarray, int]:
    """The exact maximin order of the points of `data` starting at `first`, and the distance evaluations
    spent. `tree` is (root, child_offsets, children, radius) of a cover tree over `data` (None: :func:`star`,
    an exhaustive scan). `progress(n)` is called with the number of points chosen so far, every
    :data:`STEPS_PER_CALL` points."""
    n = data.X.shape[0]
    root, offsets, children, radius = star(n) if tree is None else tree
    dist = np.full(n, np.inf)
    best_d = np.full(n, np.inf)
    best_i = np.arange(n, dtype=np.int64)  # any index >= 0: "may hold unchosen points" until first walked
    order = np.empty(n, dtype=np.int64)
    order[0] = first
    stack = np.empty(2 * n + 2, dtype=np.int64)
    evaluations = np.zeros(1, dtype=np.int64)
    for start in range(0, n, STEPS_PER_CALL):
        stop = min(n, start + STEPS_PER_CALL)
        _steps(order, start, stop, root, data, offsets, children, radius, dist, best_d, best_i, stack,
               evaluations)
        if progress is not None:
            progress(stop)
        interrupts.check()
    return order, int(evaluations.sum())
