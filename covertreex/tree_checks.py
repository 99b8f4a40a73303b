"""The metric invariant checks behind :func:`covertreex.tree.validate`, in Numba.

The structural checks (invariant 1) live in :mod:`covertreex.tree_structure`. :func:`radius_problem` and
:func:`copy_problem` are also run on every tree attached from outside: they are what queries rely on.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

from covertreex.levels import DUPLICATE_LEVEL as _DUP
from covertreex.metrics.kernels import distance, read_only

OK, COVER_LEVEL, COVER_DISTANCE, SEPARATION = 0, 1, 2, 3


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
    return OK, -1, -1, 0.0, 0.0


@njit(cache=True, parallel=True)
def _radius_violations(parents, radius, D):
    """Per node y, the first ancestor whose radius is below its computed distance to y (or -1)."""
    n = parents.shape[0]
    ancestor = np.full(n, -1, dtype=np.int64)
    value = np.zeros(n)
    for y in prange(n):
        a = parents[y]
        while a >= 0:
            d = distance(D, a, a, D, y)
            if d > radius[a]:
                ancestor[y], value[y] = a, d
                break
            a = parents[a]
    return ancestor, value


def radius_problem(parents, radius, D) -> tuple[int, str] | None:
    """(node, description) of the first radius below a descendant's distance (invariant 4, which pruning
    relies on), or None. Cost: one distance per (node, ancestor) pair; levels fall along every path, so
    a node has at most ~2,100 ancestors (the level range) and typically a few dozen."""
    ancestor, value = _radius_violations(read_only(parents), read_only(radius), D)
    bad = np.flatnonzero(ancestor >= 0)
    if bad.size == 0:
        return None
    y = int(bad[0])
    node = int(ancestor[y])
    d = float(value[y])
    return node, f"radius[{node}] = {float(radius[node])!r} < d(node {node}, descendant {y}) = {d!r}"


def exact_copies(parents: np.ndarray, data) -> np.ndarray:
    """is_copy[c]: c's rows equal its parent's bit for bit, so a query may reuse the parent's distance."""
    is_copy = np.zeros(parents.shape[0], dtype=np.bool_)
    child = np.flatnonzero(parents >= 0)
    par = parents[child]
    same = np.all(data.X[child] == data.X[par], axis=1) & (data.P[child] == data.P[par])
    child, par = child[same], par[same]
    if data.V.shape[1]:
        # Only the few pairs equal so far: gathering every row of V would copy all of V twice.
        same = np.all(data.V[child] == data.V[par], axis=1)
        child = child[same]
    is_copy[child] = True
    return is_copy


def copy_problem(is_copy: np.ndarray, parents: np.ndarray, data) -> str:
    """Name the first node whose is_copy flag disagrees with the data (a query would reuse a wrong
    distance, or lose a dedupe hit and change the counters), or return ''."""
    wrong = is_copy != exact_copies(parents, data)
    if not wrong.any():
        return ""
    node = int(np.flatnonzero(wrong)[0])
    if is_copy[node]:
        return f"is_copy[{node}] is true but node {node}'s data differs from its parent {parents[node]}'s"
    return f"is_copy[{node}] is false but node {node}'s data equals its parent {parents[node]}'s bit for bit"
