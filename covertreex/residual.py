"""The residual-correlation problem of DESIGN section 3: inducing points, V and p.

``residual_problem`` follows the design's recipe step by step (inducing set, jittered Cholesky, triangular
solve, clamped residual variance). Kernel matrices here are vectorised NumPy; the per-pair kernel used inside
distances lives in :mod:`covertreex.metrics.kernels` and follows the canonical scalar operation order.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy.linalg import cholesky, solve_triangular

from covertreex.digest import array_digest
from covertreex.errors import DimensionMismatchError, InvalidInputError, unknown_name
from covertreex.validation import as_int, as_points, positive_float

KERNELS = ("rbf", "matern52")
JITTER = 1e-6
P_FLOOR = 1e-9


def check_kernel(kernel) -> str:
    if kernel not in KERNELS:
        raise unknown_name("kernel", kernel, KERNELS)
    return kernel


def lengthscale_vector(lengthscale, n_dims: int) -> np.ndarray:
    """A scalar or one positive lengthscale per dimension, returned as a length-d float64 vector."""
    ls = np.asarray(lengthscale, dtype=np.float64) if not np.isscalar(lengthscale) else None
    if ls is None:
        return np.full(n_dims, positive_float(lengthscale, "lengthscale"))
    if ls.ndim != 1 or ls.shape[0] != n_dims:
        raise DimensionMismatchError(
            f"lengthscale must be a scalar or have one entry per dimension ({n_dims}), got shape {ls.shape}"
        )
    if not np.all(np.isfinite(ls)) or np.any(ls <= 0):
        raise InvalidInputError(f"lengthscale entries must be positive and finite, got {ls.tolist()}")
    return np.ascontiguousarray(ls)


def kernel_matrix(A, B, kernel: str, lengthscale: np.ndarray, variance: float) -> np.ndarray:
    """k(A, B) with r2 summed over dimensions in order, then the kernel formula of DESIGN section 3."""
    r2 = np.zeros((A.shape[0], B.shape[0]))
    for t in range(A.shape[1]):
        z = (A[:, t][:, None] - B[:, t][None, :]) / lengthscale[t]
        r2 += z * z
    if kernel == "rbf":
        return variance * np.exp(-r2 / 2.0)
    a = np.sqrt(5.0 * r2)
    return variance * (1.0 + a + a * a / 3.0) * np.exp(-a)


def residual_variance(V: np.ndarray, variance: float) -> np.ndarray:
    """p_i = max(s2 - ||V_i||^2, 1e-9), the squared norm summed over columns in order."""
    norms = np.zeros(V.shape[0])
    for c in range(V.shape[1]):
        norms += V[:, c] * V[:, c]
    return np.maximum(variance - norms, P_FLOOR)


@dataclass(frozen=True)
class ResidualProblem:
    """Coordinates, kernel and the low-rank factor V (N x m) with residual variances p."""

    X: np.ndarray = field(repr=False)
    V: np.ndarray = field(repr=False)
    p: np.ndarray = field(repr=False)
    kernel: str
    lengthscale: np.ndarray = field(repr=False)
    variance: float
    inducing: np.ndarray | None = field(default=None, repr=False)
    cholesky_factor: np.ndarray | None = field(default=None, repr=False)
    seed: int | None = None

    @property
    def n_points(self) -> int:
        return self.X.shape[0]

    @property
    def digest(self) -> str:
        params = np.array([self.variance, *self.lengthscale])
        return array_digest(self.X, self.V, self.p, params, np.frombuffer(self.kernel.encode(), np.uint8))

    @classmethod
    def from_arrays(cls, X, V, *, kernel="rbf", lengthscale=1.0, variance=1.0) -> ResidualProblem:
        """Wrap a V computed elsewhere (any layout is accepted and normalised once); p follows from V."""
        X = as_points(X, "X")
        V = as_points(V, "V")
        if V.shape[0] != X.shape[0]:
            raise DimensionMismatchError(
                f"V must have one row per point of X ({X.shape[0]}), got {V.shape[0]}"
            )
        variance = positive_float(variance, "variance")
        ls = lengthscale_vector(lengthscale, X.shape[1])
        return cls(X, V, residual_variance(V, variance), check_kernel(kernel), ls, variance)

    def project(self, Q) -> tuple[np.ndarray, np.ndarray]:
        """V rows and p for new points Q, using the stored inducing points and Cholesky factor."""
        if self.cholesky_factor is None:
            raise InvalidInputError(
                "this residual problem was built from a given V, so new query coordinates cannot be "
                "projected; query by dataset index instead"
            )
        U = self.X[self.inducing]
        Vq = solve_triangular(
            self.cholesky_factor,
            kernel_matrix(U, Q, self.kernel, self.lengthscale, self.variance),
            lower=True,
        ).T
        Vq = np.ascontiguousarray(Vq)
        return Vq, residual_variance(Vq, self.variance)


def inducing_indices(n_points: int, m: int, seed: int) -> np.ndarray:
    """m distinct indices from default_rng(seed), sorted ascending; every index when m >= n_points."""
    if m >= n_points:
        return np.arange(n_points, dtype=np.int64)
    chosen = np.random.default_rng(seed).choice(n_points, m, replace=False)
    return np.sort(chosen).astype(np.int64)


def residual_problem(
    X, *, kernel: str = "rbf", lengthscale=1.0, variance: float = 1.0, m: int = 512, seed: int = 0
) -> ResidualProblem:
    """Build V and p exactly as DESIGN section 3 specifies (see the module docstring)."""
    X = as_points(X, "X")
    kernel = check_kernel(kernel)
    variance = positive_float(variance, "variance")
    ls = lengthscale_vector(lengthscale, X.shape[1])
    m = as_int(m, "m")
    if m < 1:
        raise InvalidInputError(f"m (number of inducing points) must be >= 1, got {m}")
    seed = as_int(seed, "seed")
    inducing = inducing_indices(X.shape[0], m, seed)
    U = X[inducing]
    Kmm = kernel_matrix(U, U, kernel, ls, variance) + JITTER * variance * np.eye(len(inducing))
    L = cholesky(Kmm, lower=True)
    V = np.ascontiguousarray(solve_triangular(L, kernel_matrix(U, X, kernel, ls, variance), lower=True).T)
    return ResidualProblem(X, V, residual_variance(V, variance), kernel, ls, variance, inducing, L, seed)
