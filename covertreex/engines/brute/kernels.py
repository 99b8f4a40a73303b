"""Exhaustive scans with the canonical distance, so brute-force distances equal the tree engines' bitwise."""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from covertreex.engines.heap import offer, write_sorted
from covertreex.metrics.kernels import distance


@njit(cache=True, parallel=True)
def scan_all(D, Q, rows, q_index, limit, k):
    """Every eligible point of every query; returns (indices, distances, evaluations, heap pushes)."""
    n_q = rows.shape[0]
    out_i = np.empty((n_q, k), dtype=np.int64)
    out_d = np.empty((n_q, k))
    evaluations = np.zeros(n_q, dtype=np.int64)
    pushes = np.zeros(n_q, dtype=np.int64)
    for q in prange(n_q):
        heap_d = np.empty(k)
        heap_i = np.empty(k, dtype=np.int64)
        size = 0
        for j in range(limit[q]):
            size, pushed = offer(heap_d, heap_i, size, distance(Q, rows[q], q_index[q], D, j), j)
            pushes[q] += pushed
        evaluations[q] = limit[q]
        write_sorted(heap_d, heap_i, size, out_i[q], out_d[q])
    return out_i, out_d, evaluations, pushes


@njit(cache=True, parallel=True)
def scan_candidates(D, Q, rows, q_index, k, offsets, candidates, out_i, out_d, evaluations, pushes):
    """Canonical distances for each query's candidate list (CSR, ascending indices); keep the k best."""
    for q in prange(rows.shape[0]):
        heap_d = np.empty(k)
        heap_i = np.empty(k, dtype=np.int64)
        size = 0
        for pos in range(offsets[q], offsets[q + 1]):
            j = candidates[pos]
            size, pushed = offer(heap_d, heap_i, size, distance(Q, rows[q], q_index[q], D, j), j)
            pushes[q] += pushed
        evaluations[q] = offsets[q + 1] - offsets[q]
        write_sorted(heap_d, heap_i, size, out_i[q], out_d[q])
