"""Exhaustive scans with the canonical distance, so brute-force distances equal the tree engines' bitwise.

The oracle selects with its own code, sharing none with the tree engines' heap (a bug there must not hide
in both): each query keeps its best pairs in its output row itself, sorted by (distance, index), by
insertion. Pairs arrive in ascending index order and a pair enters when the row is not yet full or it
comes before the row's last pair; those entries are the heap pushes the telemetry counts.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from covertreex.metrics.kernels import distance


@njit(cache=True)
def _before(d1, i1, d2, i2):
    """Does (d1, i1) come before (d2, i2) in (distance, index) order?"""
    return d1 < d2 or (d1 == d2 and i1 < i2)


@njit(cache=True)
def _enter(out_i, out_d, size, d, i):
    """Insert (d, i) into the sorted row if it belongs among the k best; return (new size, entered)."""
    k = out_i.shape[0]
    if size == k and not _before(d, i, out_d[k - 1], out_i[k - 1]):
        return size, False
    pos = min(size, k - 1)
    while pos > 0 and _before(d, i, out_d[pos - 1], out_i[pos - 1]):
        out_d[pos] = out_d[pos - 1]
        out_i[pos] = out_i[pos - 1]
        pos -= 1
    out_d[pos] = d
    out_i[pos] = i
    return min(size + 1, k), True


@njit(cache=True, parallel=True)
def scan_all(D, Q, rows, q_index, limit, k):
    """Every eligible point of every query; returns (indices, distances, evaluations, pushes)."""
    n_q = rows.shape[0]
    out_i = np.full((n_q, k), -1, dtype=np.int64)
    out_d = np.full((n_q, k), np.inf)
    evaluations = np.zeros(n_q, dtype=np.int64)
    pushes = np.zeros(n_q, dtype=np.int64)
    for q in prange(n_q):
        size = 0
        for j in range(limit[q]):
            size, entered = _enter(out_i[q], out_d[q], size, distance(Q, rows[q], q_index[q], D, j), j)
            pushes[q] += entered
        evaluations[q] = limit[q]
    return out_i, out_d, evaluations, pushes


@njit(cache=True, parallel=True)
def scan_candidates(D, Q, rows, q_index, offsets, candidates, out_i, out_d, evaluations, pushes):
    """Canonical distances for each query's candidate list (CSR, ascending indices); keep the k best in the
    rows of out_i/out_d (k = their width)."""
    for q in prange(rows.shape[0]):
        out_i[q] = -1
        out_d[q] = np.inf
        size = 0
        for pos in range(offsets[q], offsets[q + 1]):
            j = candidates[pos]
            size, entered = _enter(out_i[q], out_d[q], size, distance(Q, rows[q], q_index[q], D, j), j)
            pushes[q] += entered
        evaluations[q] = offsets[q + 1] - offsets[q]
