"""The accepted range of residual-metric inputs: every quantity the canonical distance computes stays finite.

The canonical arithmetic (DESIGN section 3) is a bitwise contract shared by gold, rust and brute, so it is
never rescaled; instead inputs whose arithmetic cannot be represented in float64 are refused, naming the
argument at fault. Inside the range below every intermediate is at most about 2**1002:

- ``variance`` in [2**-500, 2**500]: p_i <= s2, so p_i * p_j <= 2**1000;
- every row of V with squared norm ||V_i||^2 <= 2**500: each dot product V_i . V_j and each partial sum
  is at most ||V_i|| ||V_j|| <= 2**500 (Cauchy-Schwarz), and k - V_i . V_j at most 2**501;
- every coordinate with |x_t| <= 2**1020 (so x_t - y_t is finite) and |x_t / l_t| <= 2**249 / sqrt(d), so
  r2 = sum_t ((x_t - y_t) / l_t)^2 <= 2**500 and the Matern polynomial s2 * (1 + a + a^2/3) <= 2**1002.
"""

from __future__ import annotations

import math

import numpy as np

from covertreex.errors import NonFiniteError

MAX_SCALE = 2.0**500
"""Largest accepted variance and squared norm of a row of V."""
MIN_VARIANCE = 2.0**-500
MAX_COORDINATE = 2.0**1020


def check_variance(variance: float) -> float:
    if not MIN_VARIANCE <= variance <= MAX_SCALE:
        raise NonFiniteError(
            f"variance = {variance!r} is outside the accepted range [2**-500, 2**500] (about "
            f"[{MIN_VARIANCE:.2g}, {MAX_SCALE:.2g}]) where the residual arithmetic stays representable in "
            "float64 (see covertreex.residual_range)"
        )
    return variance


def check_v_norms(squared_norms: np.ndarray, name: str) -> None:
    """Squared row norms of V (summed in the canonical order) must be at most 2**500."""
    bad = ~(squared_norms <= MAX_SCALE)
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        if np.isnan(squared_norms[row]):  # not a matter of scale: say so (a NaN norm read as "rescale")
            raise NonFiniteError(f"{name} row {row} contains NaN")
        raise NonFiniteError(
            f"{name} row {row} has squared norm {float(squared_norms[row])!r}, above the accepted 2**500 "
            f"(about {MAX_SCALE:.2g}): its dot products would overflow float64; rescale {name} and the "
            "variance"
        )


def max_scaled_coordinate(n_dims: int) -> float:
    """The bound on |x_t / l_t| that keeps r2 <= 2**500 in n_dims dimensions."""
    return 2.0**249 / math.sqrt(n_dims)


def check_coordinates(X: np.ndarray, lengthscale: np.ndarray, name: str) -> None:
    """Coordinates (and coordinates over lengthscales) small enough for the kernel's arithmetic."""
    bound = max_scaled_coordinate(X.shape[1])
    with np.errstate(over="ignore"):
        bad = (np.abs(X) > MAX_COORDINATE) | (np.abs(X / lengthscale) > bound)
    if bad.any():
        row, col = (int(i) for i in np.argwhere(bad)[0])
        raise NonFiniteError(
            f"{name}[{row}, {col}] = {float(X[row, col])!r} with lengthscale {float(lengthscale[col])!r} is "
            f"outside the accepted range (|x| <= 2**1020, |x / lengthscale| <= {bound:.3g} in {X.shape[1]} "
            "dimensions): the kernel's squared distance would overflow float64"
        )
