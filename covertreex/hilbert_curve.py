"""The Hilbert-curve keys of :func:`covertreex.ordering.hilbert_keys`, in compiled code (Numba): a module of
its own so that importing the orderings, as every fit does, never loads Numba."""

from __future__ import annotations

import math

import numpy as np
from numba import njit


@njit(cache=True)
def quantised_keys(points, lo, span, bits):
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
