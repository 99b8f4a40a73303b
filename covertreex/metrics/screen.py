"""The dense path's screening bound (DESIGN section 5), the Python twin of rust/core/src/dense/screen.rs.

GEMM reorders the dot product, so each pair gets an interval ``lo <= key <= hi`` on a key that orders pairs
exactly as the canonical distance does (smaller is closer). For any summation order, FMA included,
``|fl(a.b) - a.b| <= gamma_n ||a|| ||b||`` with ``gamma_n = n u / (1 - n u)``, ``u = eps / 2``; the canonical
sequential sum obeys the same bound. With T the k-th smallest ``hi`` of a query, at least k pairs have a
canonical distance <= D(T); a pair with ``lo > widen(T)`` has a canonical distance strictly above the k-th,
so it cannot enter the answer even by a tie. Every other pair is re-evaluated canonically.

Residual, key ``-s`` with ``s = min(1, |rho|)`` (the canonical distance ``sqrt(1 - s)`` is non-increasing in
s). Here the kernel value is computed by the canonical code itself (libm's exp), so only the dot product
differs. (Rust's screening evaluates exp with a vectorised approximation and adds one term for it,
``(KERNEL_REL k + kernel_floor) r_i r_j``, defined and proved in rust/core/src/dense/screen.rs and exp.rs;
every term below is shared.) With
``r_i = 1/sqrt(p_i)``, ``n_i = ||V_i||`` as computed and ``rho_a = ((k - g) r_i) r_j``::

    |rho_a - rho_c| <= a_i a_j + 16 eps |rho_a| + 16 eps,
    a_i = sqrt(2 gamma_{m+4}) n_i (1 + (m+4) eps) r_i (1 + 16 eps).

The first term is both dot products' error ``2 gamma_m ||V_i|| ||V_j||`` over ``sqrt(p_i p_j)`` (``n_i`` and
``r_i`` inflated for their own rounding; this is where p at its 1e-9 clamp widens the interval); the second
covers the roundings of ``k - g``, of the two scalings and of the bound itself; the last the rounding of
``s +/- E``. ``widen(T) = T + 8 eps``: if ``s' < s - 8 eps`` then ``fl(1 - s') > fl(1 - s) + 7 eps`` and the
correctly rounded square roots differ.

Euclidean, key ``d^2``: ``approx = max(0, |x|^2 + |y|^2 - 2 g)`` and
``|approx - acc_c| <= 16 (d + 4) eps (|x|^2 + |y|^2)`` (the GEMM's and the canonical sum's ``gamma_d``
errors plus the roundings of the norms and the combination); ``widen(T) = T (1 + 8 eps)``, since
``x > y (1 + 4 eps)`` implies ``fl(sqrt x) > fl(sqrt y)``.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
from numba import njit

from covertreex.metrics.kernels import EUCLIDEAN, MetricData, kernel_value

EPS = float(np.finfo(np.float64).eps)


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
