"""Content digests: the identity of a dataset or problem in telemetry and baselines."""

from __future__ import annotations

import hashlib
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from covertreex.errors import unknown_name
from covertreex.kinds import QUERY_KINDS
from covertreex.resources import worker_threads

CHUNK_BYTES = 1 << 23
"""Bytes per separately hashed chunk (8 MiB). sha256 is sequential and V alone is 128 MiB at N = 32,768,
m = 512 (about 0.1 s of one core); fixed chunks hash on every core, and because their boundaries never
depend on the thread count, neither does the digest."""


def _chunk_digest(chunk: np.ndarray) -> bytes:
    return hashlib.sha256(chunk).digest()  # hashlib releases the GIL for buffers this large


def array_digest(*arrays: np.ndarray) -> str:
    """sha256 over, for each array in order, its dtype, its shape and the sha256 of each CHUNK_BYTES
    chunk of its C-order bytes (a two-level hash: any changed byte changes its chunk's digest)."""
    h = hashlib.sha256()
    for arr in arrays:
        arr = np.ascontiguousarray(arr)
        h.update(str(arr.dtype.str).encode())
        h.update(repr(arr.shape).encode())
        data = arr.reshape(-1).view(np.uint8)  # the bytes of tobytes(), without copying them
        chunks = [data[start : start + CHUNK_BYTES] for start in range(0, len(data), CHUNK_BYTES)]
        workers = min(worker_threads(), len(chunks)) if len(chunks) > 1 else 1
        if workers > 1:
            with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="covertreex-digest") as pool:
                digests = list(pool.map(_chunk_digest, chunks))
        else:
            digests = [_chunk_digest(chunk) for chunk in chunks]
        for digest in digests:
            h.update(digest)
    return h.hexdigest()


def query_digest(kind: str, values: np.ndarray) -> str:
    """The identity of a query set, as telemetry records and pytest-pcct's problems name it: its kind, a
    colon, and :func:`array_digest` of its coordinates (float64, kind 'points') or of its dataset indices
    (int64; 'predecessor': ``arange(n)``). Two calls with the same data, sizes and k but other queries
    differ here."""
    if kind not in QUERY_KINDS:
        raise unknown_name("query kind", kind, QUERY_KINDS)
    return f"{kind}:{array_digest(values)}"
