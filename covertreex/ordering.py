"""Insertion orders for the sequential build, computed once in Python and handed to every engine."""

from __future__ import annotations

import numpy as np

from covertreex import twins
from covertreex.errors import unknown_name
from covertreex.interrupts import deferring


def natural_order(points: np.ndarray) -> np.ndarray:
    return np.arange(points.shape[0], dtype=np.int64)


@deferring  # the compiled pass holds SIGINT until it returns, like every Numba call
def hilbert_keys(points: np.ndarray) -> np.ndarray:
    """Hilbert-curve index of each point on a per-dimension quantised grid (Skilling's transpose method),
    `bits` = min(16, 63 // d) per dimension so a key fits in 63 bits up to d = 63. Beyond, with one bit
    per dimension, the d-bit index does not fit its uint64 key, whose arithmetic wraps: an insertion order
    that follows the curve less well, never another answer (any insertion order gives an exact tree)."""
    points = np.require(points, dtype=np.float64, requirements=["C", "ALIGNED"])  # as the extension reads
    n, d = points.shape
    bits = max(1, min(16, 63 // d))
    lo, hi = points.min(axis=0), points.max(axis=0)
    span = np.where(hi > lo, hi - lo, 1.0)
    twin = twins.rust_twin("quantised_keys")  # the same keys, and no Numba for a rust job
    if twin is not None:
        return twin(points, lo, span, bits)
    from covertreex.hilbert_curve import quantised_keys  # Numba: a natural order never loads it

    return quantised_keys(points, lo, span, bits)


def hilbert_order(points: np.ndarray) -> np.ndarray:
    """Points sorted along the Hilbert curve, ties by dataset index."""
    if points.shape[0] <= 1:
        return natural_order(points)
    keys = hilbert_keys(points)
    return np.lexsort((np.arange(points.shape[0]), keys)).astype(np.int64)


ORDERS = {"natural": natural_order, "hilbert": hilbert_order}


def insertion_order(name: str, points: np.ndarray) -> np.ndarray:
    if name not in ORDERS:
        raise unknown_name("insertion order", name, ORDERS)
    return ORDERS[name](points)
