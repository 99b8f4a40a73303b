"""The invariant checks behind :func:`covertreex.tree.validate`: structure in NumPy, metric in Numba."""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

from covertreex.levels import DUPLICATE_LEVEL as _DUP
from covertreex.metrics.kernels import distance

OK, COVER_LEVEL, COVER_DISTANCE, SEPARATION, RADIUS = 0, 1, 2, 3, 4


def structure_problem(tree) -> str:
    """Describe the first structural defect (indices, parents, CSR, reachability), or return ''."""
    n = tree.n_points
    if not np.array_equal(np.sort(tree.insertion_order), np.arange(n)):
        return "insertion_order is not a permutation of the point indices"
    parents = tree.parents
    bad = np.flatnonzero((parents < -1) | (parents >= n) | (parents == np.arange(n)))
    if bad.size:
        return f"node {bad[0]} has invalid parent {parents[bad[0]]}"
    roots = np.flatnonzero(parents == -1)
    if roots.size != 1 or roots[0] != tree.root:
        return f"expected exactly one root (node {tree.root}), found roots {roots[:5].tolist()}"
    off = tree.child_offsets
    if off[0] != 0 or off[-1] != n - 1 or np.any(np.diff(off) < 0):
        return "child_offsets is not a valid CSR offset array"
    for node in range(n):
        kids = tree.children[off[node] : off[node + 1]]
        wrong = kids[parents[kids] != node] if kids.size else kids
        if wrong.size:
            return (
                f"node {wrong[0]} is listed as a child of node {node} but its parent is {parents[wrong[0]]}"
            )
        if kids.size > 1:
            lv = tree.levels[kids]
            ordered = (lv[:-1] > lv[1:]) | ((lv[:-1] == lv[1:]) & (kids[:-1] < kids[1:]))
            if not ordered.all():
                return f"children of node {node} are not ordered by (level desc, index asc)"
    seen = np.zeros(n, dtype=bool)
    stack = [tree.root]
    seen[tree.root] = True
    while stack:
        node = stack.pop()
        for child in tree.children[off[node] : off[node + 1]]:
            if seen[child]:
                return f"node {child} is reached twice"
            seen[child] = True
            stack.append(int(child))
    if not seen.all():
        return f"node {int(np.flatnonzero(~seen)[0])} is not reachable from the root"
    return ""


@njit(cache=True)
def _first_separation(levels, D, u):
    for v in range(u + 1, levels.shape[0]):
        if levels[v] == _DUP:
            continue
        bound = math.ldexp(1.0, min(levels[u], levels[v]))
        d = distance(D, u, u, D, v)
        if d <= bound:
            return v, d, bound
    return -1, 0.0, 0.0


@njit(cache=True, parallel=True)
def _separation(levels, D):
    n = levels.shape[0]
    other = np.full(n, -1, dtype=np.int64)
    value = np.zeros(n)
    bound = np.zeros(n)
    for u in prange(n):
        if levels[u] != _DUP:
            other[u], value[u], bound[u] = _first_separation(levels, D, u)
    return other, value, bound


@njit(cache=True)
def metric_problem(T, parents, D):
    """(code, node, other, value, bound) of the first metric invariant violated, code OK if none."""
    n = parents.shape[0]
    for c in range(n):
        p = parents[c]
        if p < 0:
            continue
        if T.levels[c] >= T.levels[p]:
            return COVER_LEVEL, c, p, 0.0, 0.0
        d = distance(D, c, c, D, p)
        bound = 0.0 if T.levels[c] == _DUP else math.ldexp(1.0, T.levels[c] + 1)
        if d > bound:
            return COVER_DISTANCE, c, p, d, bound
    other, value, bound = _separation(T.levels, D)
    for u in range(n):
        if other[u] >= 0:
            return SEPARATION, u, other[u], value[u], bound[u]
    for y in range(n):
        a = parents[y]
        while a >= 0:
            d = distance(D, a, a, D, y)
            if d > T.radius[a]:
                return RADIUS, a, y, d, T.radius[a]
            a = parents[a]
    return OK, -1, -1, 0.0, 0.0
