"""One step of a tree walk: enter the nodes of a frontier, measure and offer their children, counting
all of it, and hand back the nodes the walk must come back to and the children it may enter next.

Shared by the level-synchronous walk (query.py: the whole frontier, the children at one level) and the
best-first walk (best_first.py: one popped node, all its children), so the two prune, count evaluations,
dedupe hits, pushes and frontier entries the same way; they differ only in what they pass in and where the
children they get back wait (the next frontier, or the priority queue).

One call covers a whole step rather than one child: Numba inlines it into the walk at its IR level, where
each inlined call re-references its array arguments (tree, data, heap, frontier, counters): a
reference-count increment and decrement per array that LLVM does not remove from the walk's loops. Per
child (the first shape of this module) that traffic made the level walk count 37% (Euclidean) and 27%
(residual) more instructions than the same walk written out by hand; per node, still 19% and 13%; per step
it is out of the loops.
"""

from __future__ import annotations

from numba import njit

from covertreex.counters import LevelCounter, QueryCounter
from covertreex.engines.heap import offer
from covertreex.level_constants import DUPLICATE_LEVEL
from covertreex.levels import cover
from covertreex.metrics.kernels import can_prune, can_skip_child, distance


@njit(cache=True, inline="always")
def slot(T, level):
    """The per-level counter row of `level` (duplicates share the last row)."""
    if level == DUPLICATE_LEVEL:
        return T.n_slots - 1
    return T.root_level - level


@njit(cache=True, inline="always")
def step(T, D, Q, S, row, q_index, limit, entry, f_node, f_dist, f_pos, lo, hi, n_kept, n_new, level, s,
         heap_d, heap_i, size, new_node, new_dist, new_pos, per_level, per_query):
    """Enter the frontier's nodes lo..hi-1 in order, one block (node f_node[j] at distance f_dist[j] from
    query row `row`, dataset index q_index, its next child at CSR position f_pos[j]) on schedule S; the
    block, its entries and prunes are counted in row s. The heap (heap_d, heap_i) holds `size` pairs;
    n_kept nodes are kept and n_new children appended so far in this step.

    A node is pruned when the heap is full and the rounding-safe bound proves its subtree farther than
    the current k-th distance (strictly, so ties survive). Otherwise its children are taken from f_pos[j]
    on while their level is at least `level` (children are stored by decreasing level; DUPLICATE_LEVEL
    takes them all), each counted in the row of its own level:
    - skipped, unless its subtree holds an index below `entry` (predecessor pruning);
    - with ``S.level_cache``, skipped unmeasured (a cache skip) when the heap was full as the node was
      entered and the node's distance, reused at the child's level, proves the child's subtree beyond
      the k-th distance of that moment (metrics.kernels.can_skip_child);
    - measured: an exact copy of the node reuses the node's distance (a dedupe hit) unless the query is
      the copy or the node itself; any other child is evaluated;
    - offered to the heap if eligible (index below `limit`);
    - appended to new_node/new_dist/new_pos (with its first child's position) if it has children.
    A node with children left is kept: written back, in order, after the n_kept nodes kept before it
    (never past position j, so entries not yet entered stay in place).
    Returns the heap's new size, the number of nodes kept and the number of children appended."""
    k = heap_d.shape[0]
    per_level[s, LevelCounter.FRONTIER] += hi - lo
    per_level[s, LevelCounter.BLOCKS] += 1
    per_query[QueryCounter.BLOCKS] += 1
    for j in range(lo, hi):
        node, node_d, pos = f_node[j], f_dist[j], f_pos[j]
        if size == k and can_prune(D.metric, Q.slack, node_d, T.radius[node], heap_d[0]):
            per_level[s, LevelCounter.PRUNES] += 1
            per_query[QueryCounter.PRUNES] += 1
            continue
        # The k-th distance as the node is entered: the cache's skips are decided against it, so rust's
        # perf mode, which gathers children ahead, can replay the same decisions.
        skipping = S.level_cache and size == k
        kth = heap_d[0] if skipping else 0.0
        end = T.child_offsets[node + 1]
        while pos < end:
            c = T.children[pos]
            level_c = T.levels[c]
            if level_c < level:
                break
            pos += 1
            if T.subtree_min[c] >= entry:
                continue
            sc = slot(T, level_c)
            if skipping and can_skip_child(D.metric, Q.slack, node_d, cover(level_c), T.radius[c], kth):
                per_level[sc, LevelCounter.CACHE_SKIPS] += 1
                per_query[QueryCounter.CACHE_SKIPS] += 1
                continue
            if T.is_copy[c] and q_index != c and q_index != node:
                dc = node_d
                per_query[QueryCounter.DEDUPE_HITS] += 1
            else:
                dc = distance(Q, row, q_index, D, c)
                per_level[sc, LevelCounter.DISTANCE_EVALUATIONS] += 1
                per_query[QueryCounter.DISTANCE_EVALUATIONS] += 1
            if c < limit:
                size, pushed = offer(heap_d, heap_i, size, dc, c)
                if pushed:
                    per_level[sc, LevelCounter.HEAP_PUSHES] += 1
                    per_query[QueryCounter.HEAP_PUSHES] += 1
            if T.child_offsets[c + 1] > T.child_offsets[c]:
                new_node[n_new], new_dist[n_new], new_pos[n_new] = c, dc, T.child_offsets[c]
                n_new += 1
        if pos < end:
            f_node[n_kept], f_dist[n_kept], f_pos[n_kept] = node, node_d, pos
            n_kept += 1
    return size, n_kept, n_new
