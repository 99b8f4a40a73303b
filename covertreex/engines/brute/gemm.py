"""Dense screening with BLAS, then canonical re-evaluation: exact answers at GEMM speed.

For a block of queries the squared distances to all points are approximated with matrix products. With a
per-pair bound ``err`` on |approx - canonical d^2|, the k-th smallest ``approx + err`` bounds the k-th
canonical d^2 from above, so every pair whose ``approx - err`` stays under it is a candidate. Candidates are
then evaluated with the canonical distance, which makes the returned distances bitwise those of the oracle.
"""

from __future__ import annotations

import numpy as np

from covertreex import interrupts
from covertreex.engines.brute.kernels import scan_candidates
from covertreex.metrics import MetricSpace, QuerySet
from covertreex.metrics.data import kernel_matrix, residual_d2_error
from covertreex.metrics.kernels import euclidean_constant

BLOCK_PAIRS = 1 << 22
"""Query x point pairs a block holds at most, whatever ``gemm_block`` says: the screen keeps ~60 bytes a
pair (approximate values, bounds, masks), so a block takes ~250 MB at most (1,024 queries against 50,000
points took 3 GB, and Ctrl-C waited seconds for the block to end)."""


def _approx_sq_distances(space: MetricSpace, queries: QuerySet, rows: np.ndarray):
    """(approximate d^2, error bound) for query rows x all points: the bound covers the GEMM value's and
    the canonical value's rounding (:mod:`covertreex.metrics.kernels`)."""
    D, Q = space.data, queries.data
    Xq = Q.X[rows]
    if space.metric == "euclidean":
        qq = np.einsum("ij,ij->i", Xq, Xq)
        xx = np.einsum("ij,ij->i", D.X, D.X)
        approx = np.maximum(qq[:, None] + xx[None, :] - 2.0 * (Xq @ D.X.T), 0.0)
        err = euclidean_constant(space.n_dims) * (qq[:, None] + xx[None, :])
        return approx, err
    problem = space.problem
    K = kernel_matrix(Xq, D.X, problem.kernel, problem.lengthscale, problem.variance)
    scale = np.sqrt(Q.P[rows][:, None] * D.P[None, :])
    rho = (K - Q.V[rows] @ D.V.T) / scale
    approx = 1.0 - np.minimum(1.0, np.abs(rho))
    err = 2.0 * residual_d2_error(D.V.shape[1], space.n_dims, problem.variance, scale)
    return approx, err


@interrupts.deferring
def gemm_query(space: MetricSpace, queries: QuerySet, k: int, block: int):
    """Exact k-NN through dense screening: (indices, distances, evaluations, pushes, pairs screened per
    query)."""
    n_q, n = queries.n_queries, space.n_points
    out_i = np.empty((n_q, k), dtype=np.int64)
    out_d = np.empty((n_q, k))
    evaluations = np.zeros(n_q, dtype=np.int64)
    pushes = np.zeros(n_q, dtype=np.int64)
    screened = np.zeros(n_q, dtype=np.int64)
    columns = np.arange(n)
    block = max(1, min(block, BLOCK_PAIRS // max(n, 1)))
    for start in range(0, n_q, block):
        stop = min(n_q, start + block)
        rows = queries.rows[start:stop]
        approx, err = _approx_sq_distances(space, queries, rows)
        eligible = columns[None, :] < queries.limit[start:stop, None]
        own = columns[None, :] == queries.dataset_index[start:stop, None]
        lower = np.where(own, 0.0, approx - err)
        upper = np.where(eligible, np.where(own, 0.0, approx + err), np.inf)
        kk = min(k, n) - 1
        cutoff = np.partition(upper, kk, axis=1)[:, kk]
        mask = eligible & (lower <= cutoff[:, None])
        screened[start:stop] = eligible.sum(axis=1)
        offsets = np.zeros(stop - start + 1, dtype=np.int64)
        np.cumsum(mask.sum(axis=1), out=offsets[1:])
        candidates = np.nonzero(mask)[1].astype(np.int64)
        scan_candidates(
            space.data, queries.data, rows, queries.dataset_index[start:stop], offsets, candidates,
            out_i[start:stop], out_d[start:stop], evaluations[start:stop], pushes[start:stop],
        )
        interrupts.check()
    return out_i, out_d, evaluations, pushes, screened
