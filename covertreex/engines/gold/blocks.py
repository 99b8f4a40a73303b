"""Blocks of a walk step and the early stop they allow (schedule knobs ``block_sizing`` and
``early_stop``; issue 12 items 3 and 4). Rust's twin is rust/core/src/blocks.rs.

A *block* is the unit of work a walk does between two looks at its k-th distance: a run of frontier
entries of one level step (a whole step unless ``block_sizing``), or one popped subtree of the best-first
walk. Each block counts its entries (telemetry ``frontier``), and whether it yielded a heap push.

``block_sizing`` cuts each level step into blocks sized from its frontier: the first is 1/8 of it (at
least MIN_BLOCK entries), a block that yields nothing doubles the next one (the k-th distance is
settling), a block that yields resets it to the first size. Gold only counts them; rust's perf mode
gathers and evaluates a block's children ahead as one lockstep batch, against the k-th distance at the
block's start, so smaller blocks while the k-th distance moves waste fewer speculative evaluations
(telemetry ``speculation.discarded_evaluations``). Blocks never change which nodes are entered, pruned or
measured: the walk still enters the step's entries in order, each against the current k-th distance.

``early_stop`` ends the walk after a block that yields nothing, once the heap is full and the guard
(:func:`settled`) proves every entry left — the rest of the step, the nodes kept for the next one, the
children just added, or best-first's queue — prunable against the current k-th distance t. Proof: each
of those entries bounds a subtree holding every point the walk could still offer, and can_prune shows
no such point has a computed distance <= t; the k-th distance never grows, so none of them could ever
enter the heap (not even by a tie: the bound is strict), and the answer is the heap as it stands. The
walk would have pruned each of them at its next check anyway, so the stop saves those frontier entries,
prune checks and steps (never an evaluation), at the price of the guard's checks (telemetry
``guard_checks``).
"""

from __future__ import annotations

from numba import njit

from covertreex.counters import QueryCounter
from covertreex.metrics.kernels import can_prune

MIN_BLOCK = 4
"""The smallest block of a sized step (entries), so a block still gives perf mode's lockstep work."""
SPLIT = 8
"""A sized step's first block is 1/SPLIT of its frontier."""


@njit(cache=True)
def first_width(n_front):
    """The first block of a sized step of n_front entries (also the size it resets to after a yield)."""
    return max(MIN_BLOCK, (n_front + SPLIT - 1) // SPLIT)


@njit(cache=True)
def settled(T, D, Q, nodes, dists, lo, hi, threshold, per_query):
    """True when every entry lo..hi-1 (node nodes[j] at distance dists[j]) is prunable against the k-th
    distance `threshold`; stops at the first that is not. Each entry tested is one guard check."""
    for j in range(lo, hi):
        per_query[QueryCounter.GUARD_CHECKS] += 1
        if not can_prune(D.metric, Q.slack, dists[j], T.radius[nodes[j]], threshold):
            return False
    return True
