"""The metric's data and its plain-Python arithmetic: kind codes, :class:`MetricData`, read-only views, the
rounding slack of one evaluation, and V's building blocks (kernel matrix, squared norms, row gathers,
forward substitution), which the rust extension's twins compute where it is built.

Nothing here imports Numba, so a rust job on the dense path never loads it (its import alone is 0.2 s of a
fresh process). The jitted formulas of record, and the tree walk's and dense screen's bounds, are in
:mod:`covertreex.metrics.kernels`; V's building blocks import its kernels only where the extension is not
built.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from covertreex import twins
from covertreex.errors import DimensionMismatchError, InputTypeError, InvalidInputError
from covertreex.interrupts import deferring
from covertreex.kinds import KERNELS, METRICS
from covertreex.resources import limited_threads

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
        """The same data with its arrays read-only (views, or the arrays that were so: :func:`read_only`)."""
        return self._replace(lengthscale=read_only(self.lengthscale), X=read_only(self.X),
                             V=read_only(self.V), P=read_only(self.P))


def read_only(array: np.ndarray) -> np.ndarray:
    """`array` read-only: a read-only view of it (the caller's array keeps its own flags), or itself if it
    is read-only already.

    Numba compiles a jitted function once per combination of its arguments' types, and a read-only array
    is another type than a writeable one: with MetricData, query sets and tree arrays of mixed flags, the
    gold query was compiled up to nine times in one test process (20-30 s each). Everything handed to
    jitted code is therefore read-only, one type per argument.

    An array that is read-only already is returned itself: pickle sends one copy of an object however
    often it is referenced, but one per view, so three views of a problem's V (its own, the space's and
    the query set's) made a Dask index 407 MB at N = 32,768 where V is 128 MB.
    """
    if not array.flags.writeable:
        return array
    view = array.view()
    view.flags.writeable = False
    return view


def operand(data: MetricData) -> np.ndarray:
    """The GEMM operand of a metric: V for the residual metric, the coordinates for Euclidean."""
    return data.X if data.metric == EUCLIDEAN else data.V


# --- Rounding bounds of one evaluation (the tree walk's pruning slack) -----------------------------


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


# --- V's building blocks: the rust twin where it is built, else Numba's (or NumPy's) ------------------


def _in_parallel(twin: str, numba_kernel: str, *args):
    """The rust twin `twin` of one of V's building blocks where the extension is built, else its Numba
    kernel (the same arguments, the same bits), either on the threads the call may use
    (:func:`covertreex.resources.thread_limit`)."""
    threads = limited_threads()
    function = twins.rust_twin(twin)
    if function is not None:
        return function(*args, threads=threads)
    from covertreex.engines.threads import numba_threads  # Numba: only without the extension
    from covertreex.metrics import kernels

    with numba_threads(threads):
        return getattr(kernels, numba_kernel)(*args)


@deferring
def kernel_matrix(A, B, kernel: str, lengthscale: np.ndarray, variance: float) -> np.ndarray:
    """k(A, B) for a kernel named as in :data:`covertreex.kinds.KERNELS` (see
    :func:`covertreex.metrics.kernels.kernel_block`)."""
    A = read_only(np.ascontiguousarray(A, dtype=np.float64))
    B = read_only(np.ascontiguousarray(B, dtype=np.float64))
    lengthscale = read_only(np.ascontiguousarray(lengthscale, dtype=np.float64))
    return _in_parallel("kernel_matrix", "kernel_block", A, B, KERNELS.index(kernel), lengthscale,
                        float(variance))


@deferring
def squared_norms(V) -> np.ndarray:
    """||V_i||^2 of every row, summed over the columns in order (the rust twin where the extension is
    built, else :func:`covertreex.metrics.kernels.squared_norms_block`)."""
    V = np.ascontiguousarray(V, dtype=np.float64)
    return _in_parallel("squared_norms", "squared_norms_block", V)


@deferring
def forward_substitution(L, K) -> np.ndarray:
    """Row i of the result solves L v = K_i (L lower triangular, K: n x m), each row on its own in the
    canonical order of :func:`covertreex.metrics.kernels.forward_substitution_rows` (the rust twin where the
    extension is built, the same bits), so a query point's V row never depends on its batch."""
    L = read_only(np.ascontiguousarray(L, dtype=np.float64))
    K = read_only(np.ascontiguousarray(K, dtype=np.float64))
    if L.ndim != 2 or K.ndim != 2 or L.shape != (K.shape[1], K.shape[1]):
        raise DimensionMismatchError(f"forward substitution needs L of shape (m, m) and K of shape (n, m), "
                                     f"got L {L.shape} and K {K.shape}")
    if twins.rust_twin("forward_substitution_rows") is None:
        L = read_only(np.asfortranarray(L))  # the Numba kernel's layout
    return _in_parallel("forward_substitution_rows", "forward_substitution_rows", L, K)


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
    twin = twins.rust_twin("take_rows")
    if twin is not None:  # checks the range itself, with the same message
        return twin(V, order, threads=limited_threads())
    outside = np.flatnonzero((order < 0) | (order >= V.shape[0]))
    if outside.size:
        first = outside[0]
        raise InvalidInputError(f"order[{first}] = {order[first]} is out of range [0, {V.shape[0]})")
    return V[order]


def residual_variance_of_norms(squared_norms: np.ndarray, variance: float) -> np.ndarray:
    """p_i = max(s2 - ||V_i||^2, 1e-9), from the squared norms of :func:`squared_norms`."""
    return np.maximum(variance - squared_norms, P_FLOOR)
