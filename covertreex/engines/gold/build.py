"""Sequential insertion build of the compressed cover tree (the reference algorithm).

Point x joins the tree under r*, the node nearest to x (ties: lowest index) among the non-duplicate nodes
whose ball of radius 2**level(r) contains x, at level j = the largest integer with 2**j < d(x, r*). Then x
is more than 2**min(j, level(r)) from every node r (separation) and within 2**(j+1) of its parent
(covering). A distance of 0 makes x an exact duplicate of r*. The search for r* is a depth-first walk that
skips a subtree only when rounding-safe bounds prove it holds no better candidate.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from covertreex.interrupts import check, deferring
from covertreex.level_constants import DUPLICATE_LEVEL, NO_CHILD_LEVEL, UNBOUNDED_LEVEL
from covertreex.levels import level_below
from covertreex.metrics.kernels import can_prune, distance


@njit(cache=True, nogil=True)
def better_parent(a, d, best_d, best, levels):
    """Whether node a, d from x, covers x (d <= 2**level(a)) and beats the best parent so far by
    (distance, index)."""
    return d <= math.ldexp(1.0, levels[a]) and (d < best_d or (d == best_d and a < best))


@njit(cache=True, nogil=True)
def worth_expanding(D, a, d, best_d, radius, max_child_level):
    """Whether a search at node a, d from x, must evaluate a's children: a has a non-duplicate child and
    the rounding-safe bound cannot prove that no descendant covers x (their levels are at most
    max_child_level) at a distance <= best_d."""
    if max_child_level[a] == NO_CHILD_LEVEL:
        return False
    threshold = min(best_d, math.ldexp(1.0, max_child_level[a]))
    return not can_prune(D.metric, D.slack, d, radius[a], threshold)


@njit(cache=True, nogil=True)
def search_parent(D, x, root, levels, radius, first_child, next_sibling, max_child_level, cached, stack):
    """The search for x's parent r* in the tree as it stands: (r*, d(x, r*), distance evaluations), with
    d(x, node) left in `cached` for every node evaluated (every ancestor of r* among them). -1 for r*
    only when a non-finite distance escapes every ball."""
    cached[root] = distance(D, x, x, D, root)
    evaluations = 1
    best_d = math.inf
    best = -1
    stack[0] = root
    top = 1
    while top > 0:
        top -= 1
        a = stack[top]
        da = cached[a]
        if better_parent(a, da, best_d, best, levels):
            best_d = da
            best = a
        if not worth_expanding(D, a, da, best_d, radius, max_child_level):
            continue
        c = first_child[a]
        while c != -1:
            if levels[c] != DUPLICATE_LEVEL:
                cached[c] = distance(D, x, x, D, c)
                evaluations += 1
                stack[top] = c
                top += 1
            c = next_sibling[c]
    return best, best_d, evaluations


@njit(cache=True, nogil=True)
def attach(x, parent, level, levels, parents, first_child, last_child, next_sibling, max_child_level):
    """Hang x under `parent` at `level`, last among its children."""
    levels[x] = level
    parents[x] = parent
    if first_child[parent] == -1:
        first_child[parent] = x
    else:
        next_sibling[last_child[parent]] = x
    last_child[parent] = x
    if level != DUPLICATE_LEVEL and level > max_child_level[parent]:
        max_child_level[parent] = level


@njit(cache=True, nogil=True)
def root_level(levels, root):
    """The root's final level: one above the highest other non-duplicate level (0 when there is none)."""
    top_level = NO_CHILD_LEVEL
    for i in range(levels.shape[0]):
        if i != root and levels[i] != DUPLICATE_LEVEL and levels[i] > top_level:
            top_level = levels[i]
    return 0 if top_level == NO_CHILD_LEVEL else top_level + 1


INSERTIONS_PER_CALL = 2048
"""Points one compiled call of a build inserts (here and in the batch build): Ctrl-C is taken between
two calls (:func:`covertreex.interrupts.check`)."""


def new_tree(n: int, root: int):
    """The arrays of a tree of n points that holds only `root` (at the unbounded level until the build
    ends): levels, parents, radius, first_child, last_child, next_sibling, max_child_level."""
    levels = np.zeros(n, dtype=np.int64)
    levels[root] = UNBOUNDED_LEVEL
    return (levels, np.full(n, -1, dtype=np.int64), np.zeros(n), np.full(n, -1, dtype=np.int64),
            np.full(n, -1, dtype=np.int64), np.full(n, -1, dtype=np.int64),
            np.full(n, NO_CHILD_LEVEL, dtype=np.int64))


@njit(cache=True, nogil=True)
def insert_range(D, order, start, stop, levels, parents, radius, first_child, last_child, next_sibling,
                 max_child_level, cached, stack):
    """Insert the points order[start:stop] into the tree rooted at order[0]; return the distance
    evaluations. Releases the GIL, so other Python threads run while a tree builds."""
    evaluations = 0
    root = order[0]
    for step in range(start, stop):
        x = order[step]
        best, best_d, spent = search_parent(
            D, x, root, levels, radius, first_child, next_sibling, max_child_level, cached, stack
        )
        evaluations += spent
        if best < 0:  # only a non-finite distance escapes every ball; the API rejects such input
            raise ValueError("X: a distance evaluated to inf or NaN during the build")
        level = DUPLICATE_LEVEL if best_d == 0.0 else level_below(best_d)
        attach(x, best, level, levels, parents, first_child, last_child, next_sibling, max_child_level)
        a = best
        while a != -1:  # every ancestor of best was evaluated on the way down
            if cached[a] > radius[a]:
                radius[a] = cached[a]
            a = parents[a]
    return evaluations


@deferring
def build_tree(D, order):
    """Insert the points in `order`, :data:`INSERTIONS_PER_CALL` per compiled call; return (levels,
    parents, radius, distance evaluations)."""
    n = D.X.shape[0]
    tree = new_tree(n, order[0])
    cached, stack = np.zeros(n), np.empty(n, dtype=np.int64)
    evaluations = 0
    for start in range(1, n, INSERTIONS_PER_CALL):
        stop = min(n, start + INSERTIONS_PER_CALL)
        evaluations += insert_range(D, order, start, stop, *tree, cached, stack)
        check()
    levels, parents, radius = tree[:3]
    levels[order[0]] = root_level(levels, order[0])
    return levels, parents, radius, evaluations
