"""The metric of record (DESIGN section 3) and its rounding bounds: every formula in one module.

Euclidean::

    d(x, y) = sqrt(sum_t (x_t - y_t)^2)                                  summed t = 0..d-1

Residual correlation, for a stationary kernel with ``r2 = sum_t ((x_t - y_t) / l_t)^2``::

    k = s2 exp(-r2 / 2)                                                  (RBF)
    k = s2 (1 + a + a^2 / 3) exp(-a),  a = sqrt(5 r2)                   (Matern 5/2)
    p_i = max(s2 - ||V_i||^2, 1e-9)
    rho_ij = (k(x_i, x_j) - V_i . V_j) / sqrt(p_i p_j)                   (V_i . V_j summed over m in order)
    d_ij = sqrt(max(0, 1 - min(1, |rho_ij|))),  d_ii = 0 exactly (same dataset index)

Bitwise parity across engines depends on this exact operation order: sums run sequentially in index order,
no fastmath (so no FMA contraction or reassociation), libm ``exp`` and IEEE ``sqrt``. The Rust twin is
rust/core/src/metric.rs, line for line. Below the formulas are the bounds that keep exactness despite
rounding: the pruning slack of the tree walk (:func:`lower`, :func:`upper`, :func:`can_prune`; see
docs/parity.md; the slack of one evaluation is :func:`covertreex.metrics.data.residual_slack`), the dense
paths' screening interval (:func:`bounds`), and the brute GEMM's error (:func:`euclidean_constant`,
:func:`covertreex.metrics.data.residual_d2_error`). The kind codes, ``MetricData`` and V's building
blocks (which call these kernels only where the rust extension is not built) are in
:mod:`covertreex.metrics.data`, which imports no Numba.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
from numba import njit, prange

# MetricData is also the name that pickles made before it moved to data.py refer to
# (covertreex.metrics.kernels.MetricData): keep it importable from here.
from covertreex.metrics.data import EPS, EUCLIDEAN, RBF, MetricData, operand

# --- The formulas -------------------------------------------------------------------------------------


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
def forward_substitution_rows(L, K):
    """Row i of the result solves L v = K_i (L lower triangular), each v_t = (K_it - sum_{s<t} L_ts v_s)
    / L_tt with the sum in index order: every row's bits depend on that row alone, never on the other
    rows of the batch or on the thread count (a LAPACK solve's rounding depends on how many right-hand
    sides it is given)."""
    out = np.empty(K.shape)
    for i in prange(K.shape[0]):
        for t in range(K.shape[1]):
            acc = K[i, t]
            for s in range(t):
                acc -= L[t, s] * out[i, s]
            out[i, t] = acc / L[t, t]
    return out


@njit(cache=True, parallel=True)
def squared_norms_block(V):
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
    dot = 0.0
    for c in range(A.V.shape[1]):
        dot += A.V[a, c] * B.V[b, c]
    return residual_from_dot(A, a, B, b, dot)


@njit(cache=True)
def residual_from_dot(A, a, B, b, dot):
    """The residual distance of row a of A and row b of B (a != b) from their canonical dot product
    V_a . V_b, so a caller that computes many dot products at once (engines/gold/tile.py) shares the rest."""
    r2 = 0.0
    for t in range(A.X.shape[1]):
        z = (A.X[a, t] - B.X[b, t]) / A.lengthscale[t]
        r2 += z * z
    k = kernel_value(A.kernel, A.variance, r2)
    rho = (k - dot) / math.sqrt(A.P[a] * B.P[b])
    mag = abs(rho)
    if mag > 1.0:
        mag = 1.0
    gap = 1.0 - mag
    if gap < 0.0:
        gap = 0.0
    return math.sqrt(gap)


# --- Rounding bounds of one evaluation, and the tree walk's pruning ------------------------------------


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


@njit(cache=True)
def can_skip_child(metric, slack, parent_distance, child_cover, child_radius, threshold):
    """True when no point of a child's subtree can have a computed distance <= threshold, proved from its
    parent's distance alone (the child is then never evaluated).

    Proof: x in the child c's subtree of parent a satisfies, exactly, d(q, x) >= d(q, a) - d(a, c) - d(c, x)
    (triangle inequality; the residual distance is a metric, DESIGN section 3). The computed d(a, c) is at
    most `child_cover` (covering) and the computed d(c, x) at most `child_radius`, so upper() of each bounds
    the exact one; their float sum times (1 + 4 eps) is at least the exact sum (two roundings of relative
    size <= eps/2 each). lower() bounds d(q, a) from below. A float difference that exceeds the float
    upper(threshold) implies the exact difference does (rounding is monotone), so every exact d(q, x) is
    above the largest exact distance a computed value <= threshold can stand for: strict, so ties survive.
    """
    reach = (upper(metric, slack, child_cover) + upper(metric, slack, child_radius)) * (1.0 + 4.0 * EPS)
    return lower(metric, slack, parent_distance) - reach > upper(metric, slack, threshold)


# --- Rounding bounds of a GEMM dot product (dense paths, brute's gemm variant) --------------------------
# The dense paths' screening bound (DESIGN section 5); its Rust twin is rust/core/src/dense/screen.rs.
#
# GEMM reorders the dot product, so each pair gets an interval ``lo <= key <= hi`` on a key that orders
# pairs exactly as the canonical distance does (smaller is closer). For any summation order, FMA included,
# ``|fl(a.b) - a.b| <= gamma_n ||a|| ||b||`` with ``gamma_n = n u / (1 - n u)``, ``u = eps / 2``; the
# canonical sequential sum obeys the same bound. With T the k-th smallest ``hi`` of a query, at least k
# pairs have a canonical distance <= D(T); a pair with ``lo > widen(T)`` has a canonical distance strictly
# above the k-th, so it cannot enter the answer even by a tie. Every other pair is re-evaluated canonically.
#
# Residual, key ``-s`` with ``s = min(1, |rho|)`` (the canonical distance ``sqrt(1 - s)`` is non-increasing
# in s). Here the kernel value is computed by the canonical code itself (libm's exp), so only the dot
# product differs. (Rust's screening evaluates exp with a vectorised approximation and adds one term for it,
# ``(KERNEL_REL k + kernel_floor) r_i r_j``, defined and proved in rust/core/src/dense/screen.rs and exp.rs;
# every term below is shared.) With ``r_i = 1/sqrt(p_i)``, ``n_i = ||V_i||`` as computed and ``rho_a = ((k -
# g) r_i) r_j``::
#
#     |rho_a - rho_c| <= a_i a_j + 16 eps |rho_a| + 16 eps,
#     a_i = sqrt(2 gamma_{m+4}) n_i (1 + (m+4) eps) r_i (1 + 16 eps).
#
# The first term is both dot products' error ``2 gamma_m ||V_i|| ||V_j||`` over ``sqrt(p_i p_j)`` (``n_i``
# and ``r_i`` inflated for their own rounding; this is where p at its 1e-9 clamp widens the interval); the
# second covers the roundings of ``k - g``, of the two scalings and of the bound itself; the last the
# rounding of ``s +/- E``. ``widen(T) = T + 8 eps``: if ``s' < s - 8 eps`` then ``fl(1 - s') > fl(1 - s) + 7
# eps`` and the correctly rounded square roots differ.
#
# Euclidean, key ``d^2``: ``approx = max(0, |x|^2 + |y|^2 - 2 g)`` and ``|approx - acc_c| <= 16 (d + 4) eps
# (|x|^2 + |y|^2)`` (the GEMM's and the canonical sum's ``gamma_d`` errors plus the roundings of the norms
# and the combination); ``widen(T) = T (1 + 8 eps)``, since ``x > y (1 + 4 eps)`` implies ``fl(sqrt x) >
# fl(sqrt y)``.


def gamma(n: int) -> float:
    """gamma_n = n u / (1 - n u): the relative error bound of an n-term dot product in any order."""
    nu = n * (EPS / 2.0)
    return nu / (1.0 - nu)


class RowFactors(NamedTuple):
    """Per-row factors of the bound: residual (1/sqrt(p_i), a_i); Euclidean (|x_i|^2, unused)."""

    scale: np.ndarray
    error: np.ndarray


def row_factors(data: MetricData) -> RowFactors:
    """The bound's factors for every row of `data` (norms in any order: the inflation covers it)."""
    values = operand(data)
    norms2 = np.einsum("ij,ij->i", values, values)
    if data.metric == EUCLIDEAN:
        return RowFactors(norms2, np.zeros(0))
    m = values.shape[1]
    c = math.sqrt(2.0 * gamma(m + 4)) * (1.0 + (m + 4) * EPS) * (1.0 + 16.0 * EPS)
    scale = 1.0 / np.sqrt(data.P)
    return RowFactors(scale, c * np.sqrt(norms2) * scale)


def euclidean_constant(n_dims: int) -> float:
    """``|approx - canonical d^2| <= euclidean_constant(d) (|x|^2 + |y|^2)`` for a GEMM-based ``approx``
    (derived above)."""
    return 16.0 * (n_dims + 4) * EPS


@njit(cache=True)
def self_key(metric):
    """The key of a pair at canonical distance 0 (a query and its own dataset index)."""
    return 0.0 if metric == EUCLIDEAN else -1.0


@njit(cache=True)
def widen(metric, t):
    """The cut-off a pair's ``lo`` must exceed to be excluded, given the k-th smallest ``hi``."""
    if metric == EUCLIDEAN:
        return t * (1.0 + 8.0 * EPS)
    return t + 8.0 * EPS


@njit(cache=True)
def bounds(Q, q, D, j, g, q_scale, q_error, d_scale, d_error, euclid):
    """(lo, hi) on the canonical key of query row `q` of Q against point `j` of D, from GEMM value `g`."""
    if D.metric == EUCLIDEAN:
        norms = q_scale[q] + d_scale[j]
        approx = max(norms - 2.0 * g, 0.0)
        e = euclid * norms
        return approx - e, approx + e
    r2 = 0.0
    for t in range(Q.X.shape[1]):
        z = (Q.X[q, t] - D.X[j, t]) / Q.lengthscale[t]
        r2 += z * z
    k = kernel_value(Q.kernel, Q.variance, r2)
    rho = (k - g) * q_scale[q] * d_scale[j]
    mag = abs(rho)
    e = q_error[q] * d_error[j] + 16.0 * EPS * mag + 16.0 * EPS
    hi_s = min(mag + e, 1.0)
    lo_s = min(max(mag - e, 0.0), 1.0)
    return -hi_s, -lo_s
