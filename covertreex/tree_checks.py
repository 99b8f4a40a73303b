"""The metric invariant checks behind :func:`covertreex.tree.validate`, in Numba.

The structural checks (invariant 1) live in :mod:`covertreex.tree_structure`. :func:`cover_problem`,
:func:`radius_problem` and :func:`copy_problem` are also run on every tree attached from outside: they are
what queries rely on.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

from covertreex.interrupts import deferring
from covertreex.level_constants import DUPLICATE_LEVEL as _DUP
from covertreex.metrics.data import read_only
from covertreex.metrics.kernels import distance
from covertreex.tree import exact_copies

OK, COVER_LEVEL, COVER_DISTANCE = 0, 1, 2


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


@njit(cache=True, parallel=True)
def _cover_violations(levels, parents, D):
    """Per node c, OK or how it breaks invariant 2 (COVER_LEVEL, COVER_DISTANCE), with the distance to
    its parent and the bound it exceeds."""
    n = parents.shape[0]
    code = np.zeros(n, dtype=np.int64)
    value = np.zeros(n)
    bound = np.zeros(n)
    for c in prange(n):
        p = parents[c]
        if p < 0:
            continue
        if levels[c] >= levels[p]:
            code[c] = COVER_LEVEL
            continue
        d = distance(D, c, c, D, p)
        b = 0.0 if levels[c] == _DUP else math.ldexp(1.0, levels[c] + 1)
        if d > b:
            code[c], value[c], bound[c] = COVER_DISTANCE, d, b
    return code, value, bound


@deferring
def cover_problem(levels, parents, D) -> str | None:
    """Invariant 2 (covering) at the first node breaking it, described, or None. The level cache's skips
    rely on it (a child lies within 2**(level+1) of its parent), so it is also run on every tree attached
    from outside. Cost: one distance per node."""
    code, value, bound = _cover_violations(read_only(levels), read_only(parents), D)
    bad = np.flatnonzero(code)
    if bad.size == 0:
        return None
    c = int(bad[0])
    p = int(parents[c])
    if code[c] == COVER_LEVEL:
        return f"at node {c}: level {int(levels[c])} is not below its parent {p}'s level {int(levels[p])}"
    return f"at node {c}: d(node, parent {p}) = {float(value[c])!r} > 2**(level+1) = {float(bound[c])!r}"


@deferring
def separation_problem(levels, D) -> tuple[int, int, float, float] | None:
    """Invariant 3 (separation): (node, other, distance, bound) of the first pair too close, or None."""
    other, value, bound = _separation(read_only(levels), D)
    bad = np.flatnonzero(other >= 0)
    if bad.size == 0:
        return None
    u = int(bad[0])
    return u, int(other[u]), float(value[u]), float(bound[u])


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


@deferring
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


def copy_problem(is_copy: np.ndarray, parents: np.ndarray, data) -> str:
    """Name the first node whose is_copy flag disagrees with the data (a query would reuse a wrong
    distance, or lose a dedupe hit and change the counters), or return ''."""
    wrong = is_copy != exact_copies(parents, data)
    if not wrong.any():
        return ""
    node = int(np.flatnonzero(wrong)[0])
    if is_copy[node]:
        return f"is_copy[{node}] is true but node {node}'s data differs from its parent {parents[node]}'s"
    return (f"is_copy[{node}] is false but node {node}'s data equals its parent {parents[node]}'s value for "
            "value")
