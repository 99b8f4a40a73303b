"""What every walk of the tree does with one child: measure it and offer it, counting both.

Shared by the level-synchronous walk (query.py) and the best-first walk (best_first.py), so the two count
evaluations, dedupe hits and heap pushes the same way.
"""

from __future__ import annotations

from numba import njit

from covertreex.counters import LevelCounter, QueryCounter
from covertreex.engines.heap import offer
from covertreex.levels import DUPLICATE_LEVEL
from covertreex.metrics.kernels import distance


@njit(cache=True, inline="always")
def slot(T, level):
    """The per-level counter row of `level` (duplicates share the last row)."""
    if level == DUPLICATE_LEVEL:
        return T.n_slots - 1
    return T.root_level - level


@njit(cache=True, inline="always")
def measure(T, D, Q, row, q_index, node, node_d, c, s, per_level, per_query):
    """d(q, c) for the child c of `node` (at distance node_d), counted in slot s: an exact copy of the
    node reuses node_d unless the query is the copy or the node itself."""
    if T.is_copy[c] and q_index != c and q_index != node:
        per_query[QueryCounter.DEDUPE_HITS] += 1
        return node_d
    per_level[s, LevelCounter.DISTANCE_EVALUATIONS] += 1
    per_query[QueryCounter.DISTANCE_EVALUATIONS] += 1
    return distance(Q, row, q_index, D, c)


@njit(cache=True, inline="always")
def keep(heap_d, heap_i, size, d, c, limit, s, per_level, per_query):
    """Offer candidate c at distance d to the k-best heap if it is eligible (c < limit), counting a push
    in slot s; the heap's new size."""
    if c < limit:
        size, pushed = offer(heap_d, heap_i, size, d, c)
        if pushed:
            per_level[s, LevelCounter.HEAP_PUSHES] += 1
            per_query[QueryCounter.HEAP_PUSHES] += 1
    return size
