"""The best-first walk (schedule knob ``best_first``; issue 12's budget ladder with a budget of one node).

Candidate subtrees wait in a priority queue ordered by their lower bound ``d(q, node) - radius[node]``,
ties by index (every node enters once, so the order is total and gold and rust pop the same sequence).
Each pop is checked against the current k-th distance and, unless pruned, all of its children are
measured, offered and queued. Close subtrees therefore fill the heap before far ones are looked at.

Exact in any order: a subtree is skipped only when the rounding-safe bound proves every point in it
farther than the current k-th distance (strictly, so ties survive), and the current k-th distance is never
below the final one; the heap keeps the k best by (distance, index) whatever order candidates arrive in.

Each pop is one block (``block_sizing`` does not apply); with ``early_stop``, a pop that is pruned ends the
walk once the guard of covertreex.engines.gold.blocks proves every queued subtree prunable.

Counters: a pop is one frontier step, one block and one frontier entry, counted (with its prune) in the
row of the node's highest child level; evaluations and pushes are counted in the row of the child's level.
"""

from __future__ import annotations

from numba import njit

from covertreex.counters import QueryCounter
from covertreex.engines.gold.blocks import settled
from covertreex.engines.gold.visit import slot, step
from covertreex.level_constants import DUPLICATE_LEVEL


@njit(cache=True)
def _before(b1, n1, b2, n2):
    """Queue order by (bound, node)."""
    return b1 < b2 or (b1 == b2 and n1 < n2)


@njit(cache=True)
def _push(bound, node, dist, size, b, v, d):
    pos = size
    while pos > 0:
        parent = (pos - 1) // 2
        if not _before(b, v, bound[parent], node[parent]):
            break
        bound[pos], node[pos], dist[pos] = bound[parent], node[parent], dist[parent]
        pos = parent
    bound[pos], node[pos], dist[pos] = b, v, d
    return size + 1


@njit(cache=True)
def _pop(bound, node, dist, size):
    """Remove the first entry (read it before calling); the new size."""
    size -= 1
    b, v, d = bound[size], node[size], dist[size]
    pos = 0
    while True:
        child = 2 * pos + 1
        if child >= size:
            break
        if child + 1 < size and _before(bound[child + 1], node[child + 1], bound[child], node[child]):
            child += 1
        if not _before(bound[child], node[child], b, v):
            break
        bound[pos], node[pos], dist[pos] = bound[child], node[child], dist[child]
        pos = child
    if size > 0:
        bound[pos], node[pos], dist[pos] = b, v, d
    return size


@njit(cache=True)
def best_first(T, D, Q, S, row, q_index, limit, entry, root_d, size, scratch, per_level, per_query):
    """Walk below the root (at distance root_d, the heap holding `size` pairs) best first on schedule S;
    the heap's final size. Subtrees whose smallest index is not below `entry` are never entered."""
    heap_d, heap_i = scratch.heap_d, scratch.heap_i
    f_node, f_dist, f_pos = scratch.front_node, scratch.front_dist, scratch.front_pos
    new_node, new_dist, new_pos = scratch.new_node, scratch.new_dist, scratch.new_pos
    bound, node, dist = scratch.queue_bound, scratch.queue_node, scratch.queue_dist
    root = T.root
    queued = 0
    if T.child_offsets[root + 1] > T.child_offsets[root]:
        queued = _push(bound, node, dist, queued, root_d - T.radius[root], root, root_d)
    while queued > 0:
        a = node[0]
        f_node[0], f_dist[0], f_pos[0] = a, dist[0], T.child_offsets[a]
        queued = _pop(bound, node, dist, queued)
        s = slot(T, T.levels[T.children[T.child_offsets[a]]])
        per_query[QueryCounter.FRONTIER_STEPS] += 1
        pushes, prunes = per_query[QueryCounter.HEAP_PUSHES], per_query[QueryCounter.PRUNES]
        size, _, n_new = step(T, D, Q, S, row, q_index, limit, entry, f_node, f_dist, f_pos, 0, 1, 0, 0,
                              DUPLICATE_LEVEL, s, heap_d, heap_i, size, new_node, new_dist, new_pos,
                              per_level, per_query)
        for j in range(n_new):
            c, dc = new_node[j], new_dist[j]
            queued = _push(bound, node, dist, queued, dc - T.radius[c], c, dc)
        if per_query[QueryCounter.HEAP_PUSHES] > pushes:
            continue
        per_query[QueryCounter.EMPTY_BLOCKS] += 1
        pruned = per_query[QueryCounter.PRUNES] > prunes
        if S.early_stop and pruned and queued > 0 and settled(T, D, Q, node, dist, 0, queued, heap_d[0],
                                                               per_query):
            per_query[QueryCounter.EARLY_STOPS] += 1
            break
    return size
