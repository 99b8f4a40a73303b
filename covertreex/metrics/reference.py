"""Plain NumPy versions of the canonical distances, written from the formulas; used only by tests.

They evaluate the same formulas as :mod:`covertreex.metrics.kernels` for whole matrices at once, so tests
can check the compiled kernels against an independent implementation (within a stated tolerance, since
NumPy's vectorised ``exp`` may differ from libm's by an ulp).
"""

from __future__ import annotations

import numpy as np


def euclidean_matrix(A: np.ndarray, B: np.ndarray) -> np.ndarray:
    sq = np.zeros((A.shape[0], B.shape[0]))
    for t in range(A.shape[1]):
        diff = A[:, t][:, None] - B[:, t][None, :]
        sq += diff * diff
    return np.sqrt(sq)


def residual_matrix(Xa, Va, pa, Xb, Vb, pb, kernel, lengthscale, variance) -> np.ndarray:
    """d = sqrt(max(0, 1 - min(1, |rho|))), rho = (k(x, y) - V_x . V_y) / sqrt(p_x p_y)."""
    lengthscale = np.broadcast_to(np.asarray(lengthscale, dtype=float), (Xa.shape[1],))
    r2 = np.zeros((Xa.shape[0], Xb.shape[0]))
    for t in range(Xa.shape[1]):
        z = (Xa[:, t][:, None] - Xb[:, t][None, :]) / lengthscale[t]
        r2 += z * z
    if kernel == "rbf":
        k = variance * np.exp(-r2 / 2.0)
    else:
        a = np.sqrt(5.0 * r2)
        k = variance * (1.0 + a + a * a / 3.0) * np.exp(-a)
    dot = np.zeros_like(r2)
    for c in range(Va.shape[1]):
        dot += Va[:, c][:, None] * Vb[:, c][None, :]
    rho = (k - dot) / np.sqrt(pa[:, None] * pb[None, :])
    return np.sqrt(np.maximum(0.0, 1.0 - np.minimum(1.0, np.abs(rho))))
