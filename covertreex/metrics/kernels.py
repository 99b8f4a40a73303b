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
docs/parity.md), the dense paths' screening interval (:func:`bounds`), and the brute GEMM's error
(:func:`euclidean_constant`, :func:`residual_d2_error`).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
from numba import njit, prange

from covertreex.errors import InputTypeError, InvalidInputError
from covertreex.interrupts import deferring
from covertreex.kinds import KERNELS, METRICS

EUCLIDEAN = METRICS.index("euclidean")
RESIDUAL = METRICS.index("residual")
RBF = KERNELS.index("rbf")
MATERN52 = KERNELS.index("matern52")
P_FLOOR = 1e-9
"""The clamp of the residual variance p (DESIGN section 3)."""
EPS = float(np.finfo(np.float64).eps)


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

    def sealed(self) -> MetricData:
        """The same data with read-only views of its arrays (see :func:`read_only`)."""
        return self._replace(lengthscale=read_only(self.lengthscale), X=read_only(self.X),
                             V=read_only(self.V), P=read_only(self.P))


def read_only(array: np.ndarray) -> np.ndarray:
    """A read-only view of `array` (the caller's array keeps its own flags).

    Numba compiles a jitted function once per combination of its arguments' types, and a read-only array
    is another type than a writeable one: with MetricData, query sets and tree arrays of mixed flags, the
    gold query was compiled up to nine times in one test process (20-30 s each). Everything handed to
    jitted code is therefore read-only, one type per argument.
    """
    view = array.view()
    view.flags.writeable = False
    return view


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


def _rust_twin(name: str):
    """The rust extension's twin of a function below where it is built (rust/core/src/kernel_matrix.rs:
    the same formulas in the same order, so the same bits), else None. V's construction goes through it so
    that a rust job never starts Numba, whose first call in a process loads its compiler (~0.25 s)."""
    from covertreex.engines.rust import _extension  # here: engines import this module

    return getattr(_extension(), name, None)


@deferring
def kernel_matrix(A, B, kernel: str, lengthscale: np.ndarray, variance: float) -> np.ndarray:
    """k(A, B) for a kernel named as in :data:`covertreex.kinds.KERNELS` (see :func:`kernel_block`)."""
    A = read_only(np.ascontiguousarray(A, dtype=np.float64))
    B = read_only(np.ascontiguousarray(B, dtype=np.float64))
    lengthscale = read_only(np.ascontiguousarray(lengthscale, dtype=np.float64))
    twin = _rust_twin("kernel_matrix")
    if twin is not None:
        return twin(A, B, lengthscale, KERNELS.index(kernel), float(variance))
    return kernel_block(A, B, KERNELS.index(kernel), lengthscale, float(variance))


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


@deferring
def squared_norms(V) -> np.ndarray:
    """||V_i||^2 of every row, summed over the columns in order (:func:`squared_norms_block`, or its rust
    twin where the extension is built)."""
    V = np.ascontiguousarray(V, dtype=np.float64)
    twin = _rust_twin("squared_norms")
    return squared_norms_block(V) if twin is None else twin(V)


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


def take_rows(V, order) -> np.ndarray:
    """``V[order]`` for int64 row indices, as a new C-contiguous array: copied in parallel by the rust twin
    where it is built (into memory NumPy does not ask transparent huge pages for: on this project's virtual
    machine those fault in slowly, 0.3 s against 0.04 s per 128 MB, docs/vecchia.md), else by NumPy."""
    V = np.ascontiguousarray(V, dtype=np.float64)
    order = np.asarray(order)
    if order.ndim != 1 or not (np.issubdtype(order.dtype, np.integer) or order.size == 0):
        raise InputTypeError(f"order must be a 1-d array of integer row indices, got {order.dtype} with "
                             f"shape {order.shape}")
    order = order.astype(np.int64, copy=False)
    twin = _rust_twin("take_rows")
    if twin is not None:
        return twin(V, order)  # checks the range itself, with the same message
    outside = np.flatnonzero((order < 0) | (order >= V.shape[0]))
    if outside.size:
        first = outside[0]
        raise InvalidInputError(f"order[{first}] = {order[first]} is out of range [0, {V.shape[0]})")
    return V[order]


def residual_variance_of_norms(squared_norms: np.ndarray, variance: float) -> np.ndarray:
    """p_i = max(s2 - ||V_i||^2, 1e-9), from the squared norms of :func:`squared_norms`."""
    return np.maximum(variance - squared_norms, P_FLOOR)


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


def euclidean_slack(n_dims: int) -> float:
    """Relative error bound of a computed Euclidean distance (d subtractions, squares, sums, one sqrt)."""
    return 4.0 * (n_dims + 4) * EPS


def residual_d2_error(n_inducing: int, n_dims: int, variance, scale):
    """Bound on |computed d^2 - exact d^2| of one residual evaluation in any summation order, for a pair
    with ``sqrt(p_i p_j) >= scale``: the numerator k - V.V carries about (m + d) ulps of s2, dividing by
    sqrt(p_i p_j) scales it up, and a factor 8 covers the remaining roundings."""
    return 8.0 * (n_inducing + n_dims + 8) * EPS * variance / scale


def residual_slack(n_inducing: int, n_dims: int, variance: float, p_min: float) -> float:
    """:func:`residual_d2_error` for every pair of a space whose smallest p is `p_min`."""
    return residual_d2_error(n_inducing, n_dims, variance, p_min)


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


def operand(data: MetricData) -> np.ndarray:
    """The GEMM operand of a metric: V for the residual metric, the coordinates for Euclidean."""
    return data.X if data.metric == EUCLIDEAN else data.V


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
