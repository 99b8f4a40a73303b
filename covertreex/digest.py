"""Content digests: the identity of a dataset or problem in telemetry and baselines."""

from __future__ import annotations

import hashlib

import numpy as np


def array_digest(*arrays: np.ndarray) -> str:
    """sha256 over dtype, shape and C-order bytes of each array, in order."""
    h = hashlib.sha256()
    for arr in arrays:
        arr = np.ascontiguousarray(arr)
        h.update(str(arr.dtype.str).encode())
        h.update(repr(arr.shape).encode())
        h.update(arr.reshape(-1).view(np.uint8))  # the bytes of tobytes(), without copying them
    return h.hexdigest()
