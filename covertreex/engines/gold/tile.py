"""Canonical residual distances of a block of points against a block of nodes, many sums at a time.

The canonical dot product V_a . V_b is the sequential sum ``((0 + a_0 b_0) + a_1 b_1) + ..`` in index order,
one multiplication and one addition per term (covertreex/metrics/kernels.py): one long chain of dependent
additions, so one evaluation at a time waits on the adder's latency for every term. Here the rows of one side
(the "lanes", whichever side has more rows) are packed term-major, and the innermost loop runs across the
lanes: every lane keeps its own accumulator and its own sequential sum, so LLVM vectorises across lanes
without reordering any single sum, and the CPU overlaps up to ROWS x lanes independent chains. Terms are
taken TERMS at a time per accumulator load and store (still added one by one, in order). Numba compiles
without fastmath, so no multiplication and addition are contracted into an FMA (tests/covertreex/
test_tile.py checks the bits against :func:`covertreex.metrics.kernels.distance` and the machine code for
FMA instructions). The per-pair rest (r2, kernel, rho, sqrt) is the canonical
:func:`~covertreex.metrics.kernels.residual_from_dot`. Rust's twin is rust/core/src/canonical_block.rs.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from covertreex.metrics.kernels import residual_from_dot

LANES = 8
"""The packed side is padded with zero rows to a multiple of this (whole vectors, no scalar remainder)."""
ROWS = 8
"""Rows of the broadcast side per pass over the packed rows: ROWS x lanes independent sums in flight."""
TERMS = 8
"""Terms added to an accumulator between its load and its store."""


@njit(cache=True)
def _pack(V, rows):
    """Rows `rows` of V, term-major: packed[t, j] = V[rows[j], t], zero-padded to a multiple of LANES;
    copied TERMS terms at a time so the writes stay within a few cache lines."""
    m = V.shape[1]
    width = -(-rows.shape[0] // LANES) * LANES
    packed = np.empty((m, width))
    packed[:, rows.shape[0]:] = 0.0
    for first in range(0, m, TERMS):
        last = min(first + TERMS, m)
        for j in range(rows.shape[0]):
            row = V[rows[j]]
            for t in range(first, last):
                packed[t, j] = row[t]
    return packed


@njit(cache=True)
def canonical_dots(V, rows, lanes, out):
    """out[i, j] = V[rows[i]] . V[lanes[j]], each the canonical sequential sum (bit for bit)."""
    m = V.shape[1]
    packed = _pack(V, lanes)
    width = packed.shape[1]
    acc = np.empty((ROWS, width))
    for first in range(0, rows.shape[0], ROWS):
        count = min(ROWS, rows.shape[0] - first)
        acc[:count] = 0.0
        t = 0
        while t + TERMS <= m:
            for i in range(count):
                row = V[rows[first + i]]
                a0, a1, a2, a3 = row[t], row[t + 1], row[t + 2], row[t + 3]
                a4, a5, a6, a7 = row[t + 4], row[t + 5], row[t + 6], row[t + 7]
                sums = acc[i]
                for j in range(width):
                    s = sums[j] + a0 * packed[t, j]
                    s += a1 * packed[t + 1, j]
                    s += a2 * packed[t + 2, j]
                    s += a3 * packed[t + 3, j]
                    s += a4 * packed[t + 4, j]
                    s += a5 * packed[t + 5, j]
                    s += a6 * packed[t + 6, j]
                    s += a7 * packed[t + 7, j]
                    sums[j] = s
            t += TERMS
        for u in range(t, m):
            for i in range(count):
                a = V[rows[first + i], u]
                sums = acc[i]
                for j in range(width):
                    sums[j] += a * packed[u, j]
        for i in range(count):
            for j in range(lanes.shape[0]):
                out[first + i, j] = acc[i, j]


@njit(cache=True)
def residual_block(D, points, nodes, out):
    """out[i * len(nodes) + j] = the canonical residual distance d(points[i], nodes[j]) (rows of D; a point
    equal to a node gets 0). The side with fewer rows is packed: fewer copies, and the packed block stays
    in cache while every row of the other side streams past it once."""
    n_points, n_nodes = points.shape[0], nodes.shape[0]
    swap = n_points < n_nodes
    rows, lanes = (nodes, points) if swap else (points, nodes)
    dots = np.empty((rows.shape[0], lanes.shape[0]))
    canonical_dots(D.V, rows, lanes, dots)
    for i in range(n_points):
        for j in range(n_nodes):
            a, b = points[i], nodes[j]
            dot = dots[j, i] if swap else dots[i, j]
            out[i * n_nodes + j] = 0.0 if a == b else residual_from_dot(D, a, D, b, dot)
