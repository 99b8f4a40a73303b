"""The canonical distance functions of DESIGN section 3, compiled with Numba.

Bitwise parity across engines depends on this exact operation order: sums run sequentially in index order,
no fastmath (so no FMA contraction or reassociation), libm ``exp`` and IEEE ``sqrt``. The Rust core mirrors
each line. ``lower``/``upper`` turn a computed distance into bounds on the exact one, so that tree pruning
stays exact despite rounding (see docs/parity.md).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
from numba import njit, prange

EUCLIDEAN = 0
RESIDUAL = 1
RBF = 0
MATERN52 = 1


class MetricData(NamedTuple):
    """Everything a distance needs, as plain arrays Numba (and Rust) can take."""

    metric: int
    kernel: int
    variance: float
    lengthscale: np.ndarray  # (d,)
    X: np.ndarray  # (n, d)
    V: np.ndarray  # (n, m); (n, 0) for Euclidean
    P: np.ndarray  # (n,); ones for Euclidean
    slack: float  # Euclidean: relative error bound; residual: bound on |computed d^2 - exact d^2|


@njit(cache=True)
def kernel_value(kernel, variance, r2):
    if kernel == RBF:
        return variance * math.exp(-r2 / 2.0)
    a = math.sqrt(5.0 * r2)
    return variance * (1.0 + a + a * a / 3.0) * math.exp(-a)


@njit(cache=True, parallel=True)
def kernel_block(A, B, kernel, lengthscale, variance):
    """k(A_i, B_j) for every pair: r2 summed over dimensions in order, then :func:`kernel_value` (the
    canonical formula and libm exp, element by element, so the values do not depend on the machine's
    vector exp)."""
    out = np.empty((A.shape[0], B.shape[0]))
    for i in prange(A.shape[0]):
        for j in range(B.shape[0]):
            r2 = 0.0
            for t in range(A.shape[1]):
                z = (A[i, t] - B[j, t]) / lengthscale[t]
                r2 += z * z
            out[i, j] = kernel_value(kernel, variance, r2)
    return out


@njit(cache=True, parallel=True)
def squared_norms(V):
    """||V_i||^2 of every row, summed over the columns in order."""
    out = np.empty(V.shape[0])
    for i in prange(V.shape[0]):
        acc = 0.0
        for c in range(V.shape[1]):
            acc += V[i, c] * V[i, c]
        out[i] = acc
    return out


@njit(cache=True)
def distance(A, a, a_index, B, b):
    """d(row a of A, row b of B); `a_index` is a's dataset index (or -1) so that d(i, i) is exactly 0."""
    if a_index == b:
        return 0.0
    n_dims = A.X.shape[1]
    if A.metric == EUCLIDEAN:
        acc = 0.0
        for t in range(n_dims):
            diff = A.X[a, t] - B.X[b, t]
            acc += diff * diff
        return math.sqrt(acc)
    r2 = 0.0
    for t in range(n_dims):
        z = (A.X[a, t] - B.X[b, t]) / A.lengthscale[t]
        r2 += z * z
    k = kernel_value(A.kernel, A.variance, r2)
    dot = 0.0
    for c in range(A.V.shape[1]):
        dot += A.V[a, c] * B.V[b, c]
    rho = (k - dot) / math.sqrt(A.P[a] * B.P[b])
    mag = abs(rho)
    if mag > 1.0:
        mag = 1.0
    gap = 1.0 - mag
    if gap < 0.0:
        gap = 0.0
    return math.sqrt(gap)


@njit(cache=True)
def lower(metric, slack, value):
    """A lower bound on the exact distance whose computed value is `value`."""
    if metric == EUCLIDEAN:
        return value * (1.0 - slack)
    sq = value * value - slack
    if sq <= 0.0:
        return 0.0
    return math.sqrt(sq)


@njit(cache=True)
def upper(metric, slack, value):
    """An upper bound on the exact distance whose computed value is `value`."""
    if metric == EUCLIDEAN:
        return value * (1.0 + slack)
    return math.sqrt(value * value + slack)


@njit(cache=True)
def can_prune(metric, slack, node_distance, node_radius, threshold):
    """True when no descendant can have a computed distance <= threshold (so ties are never lost)."""
    return lower(metric, slack, node_distance) - upper(metric, slack, node_radius) > upper(
        metric, slack, threshold
    )
