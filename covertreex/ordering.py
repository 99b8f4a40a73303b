"""Insertion orders for the sequential build, computed once in Python and handed to every engine."""

from __future__ import annotations

import numpy as np

from covertreex.errors import unknown_name


def natural_order(points: np.ndarray) -> np.ndarray:
    return np.arange(points.shape[0], dtype=np.int64)


def hilbert_keys(points: np.ndarray) -> np.ndarray:
    """Hilbert-curve index of each point on a per-dimension quantised grid (Skilling's transpose method)."""
    n, d = points.shape
    bits = max(1, min(16, 63 // d))
    lo, hi = points.min(axis=0), points.max(axis=0)
    span = np.where(hi > lo, hi - lo, 1.0)
    top = (1 << bits) - 1
    grid = np.clip(np.floor((points - lo) / span * top), 0, top).astype(np.uint64)
    X = [grid[:, i].copy() for i in range(d)]
    q = 1 << (bits - 1)
    while q > 1:
        p = np.uint64(q - 1)
        for i in range(d):
            has = (X[i] & np.uint64(q)) != 0
            t = (X[0] ^ X[i]) & p
            X[0] = np.where(has, X[0] ^ p, X[0] ^ t)
            if i:
                X[i] = np.where(has, X[i], X[i] ^ t)
        q >>= 1
    for i in range(1, d):
        X[i] ^= X[i - 1]
    t = np.zeros(n, dtype=np.uint64)
    q = 1 << (bits - 1)
    while q > 1:
        t = np.where((X[d - 1] & np.uint64(q)) != 0, t ^ np.uint64(q - 1), t)
        q >>= 1
    keys = np.zeros(n, dtype=np.uint64)
    for bit in range(bits - 1, -1, -1):
        for i in range(d):
            keys = (keys << np.uint64(1)) | (((X[i] ^ t) >> np.uint64(bit)) & np.uint64(1))
    return keys


def hilbert_order(points: np.ndarray) -> np.ndarray:
    """Points sorted along the Hilbert curve, ties by dataset index. One point needs no keys: they cost
    about 0.7 ms whatever the count (bits x dimensions NumPy calls), most of a one-row tree query."""
    if points.shape[0] <= 1:
        return natural_order(points)
    keys = hilbert_keys(points)
    return np.lexsort((np.arange(points.shape[0]), keys)).astype(np.int64)


ORDERS = {"natural": natural_order, "hilbert": hilbert_order}


def insertion_order(name: str, points: np.ndarray) -> np.ndarray:
    if name not in ORDERS:
        raise unknown_name("insertion order", name, ORDERS)
    return ORDERS[name](points)
