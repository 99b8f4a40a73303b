"""Insertion orders for the sequential build, computed once in Python and handed to every engine."""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from covertreex.errors import unknown_name
from covertreex.interrupts import deferring


def natural_order(points: np.ndarray) -> np.ndarray:
    return np.arange(points.shape[0], dtype=np.int64)


@deferring  # the compiled pass holds SIGINT until it returns, like every Numba call
def hilbert_keys(points: np.ndarray) -> np.ndarray:
    """Hilbert-curve index of each point on a per-dimension quantised grid (Skilling's transpose method),
    `bits` = min(16, 63 // d) per dimension so a key fits in 63 bits."""
    n, d = points.shape
    bits = max(1, min(16, 63 // d))
    lo, hi = points.min(axis=0), points.max(axis=0)
    span = np.where(hi > lo, hi - lo, 1.0)
    return _hilbert_keys(np.ascontiguousarray(points, dtype=np.float64), lo, span, bits)


@njit(cache=True)
def _hilbert_keys(points, lo, span, bits):
    """Point by point in compiled code, in uint64 throughout: the same transform written as whole-array
    NumPy calls cost about 0.7 ms whatever the count (bits x dimensions x 5 calls), most of a small query
    batch's time."""
    n, d = points.shape
    one = np.uint64(1)
    top = (one << np.uint64(bits)) - one
    high = one << np.uint64(bits - 1)
    keys = np.zeros(n, dtype=np.uint64)
    x = np.empty(d, dtype=np.uint64)
    for row in range(n):
        for i in range(d):
            cell = math.floor((points[row, i] - lo[i]) / span[i] * float(top))
            x[i] = np.uint64(min(max(cell, 0.0), float(top)))
        q = high
        while q > one:  # Skilling's inverse undo, high bit first
            p = q - one
            for i in range(d):
                if x[i] & q:
                    x[0] ^= p
                else:
                    t = (x[0] ^ x[i]) & p
                    x[0] ^= t
                    x[i] ^= t
            q >>= one
        for i in range(1, d):  # Gray encode
            x[i] ^= x[i - 1]
        t = np.uint64(0)
        q = high
        while q > one:
            if x[d - 1] & q:
                t ^= q - one
            q >>= one
        key = np.uint64(0)
        for bit in range(bits - 1, -1, -1):  # interleave the transposed bits, most significant first
            for i in range(d):
                key = (key << one) | (((x[i] ^ t) >> np.uint64(bit)) & one)
        keys[row] = key
    return keys


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
