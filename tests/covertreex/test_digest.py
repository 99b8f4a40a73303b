"""The content digest: chunks hashed in parallel, the same digest on any thread count, and every byte,
the dtype and the shape count."""

from __future__ import annotations

import numpy as np
import pytest

from covertreex import digest


@pytest.fixture
def small_chunks(monkeypatch):
    """64-byte chunks, so that small arrays span many of them."""
    monkeypatch.setattr(digest, "CHUNK_BYTES", 64)


@pytest.mark.parametrize("cpus", [1, 2, 3])
def test_the_digest_does_not_depend_on_the_thread_count(small_chunks, monkeypatch, cpus):
    arrays = (np.arange(1000, dtype=np.float64).reshape(100, 10), np.arange(7, dtype=np.int64))
    expected = digest.array_digest(*arrays)
    monkeypatch.setattr(digest, "worker_threads", lambda: cpus)
    assert digest.array_digest(*arrays) == expected


@pytest.mark.parametrize("n_bytes", [8, 64, 72, 640, 648])
def test_every_byte_of_every_chunk_counts(small_chunks, n_bytes):
    base = np.zeros(n_bytes // 8)
    seen = {digest.array_digest(base)}
    for at in range(len(base)):  # first, middle and last (partial) chunks alike
        changed = base.copy()
        changed[at] = 1.0
        seen.add(digest.array_digest(changed))
    assert len(seen) == len(base) + 1


def test_dtype_shape_order_and_chunking_count():
    values = np.arange(12, dtype=np.float64)
    variants = [
        digest.array_digest(values),
        digest.array_digest(values.reshape(3, 4)),
        digest.array_digest(values.view(np.int64)),
        digest.array_digest(values[:6], values[6:]),
        digest.array_digest(values[6:], values[:6]),
    ]
    assert len(set(variants)) == len(variants)
    # Fortran order is hashed as its C-order bytes: the same digest as the C-contiguous copy.
    assert digest.array_digest(np.asfortranarray(values.reshape(3, 4))) == variants[1]


def test_a_large_array_hashes_in_chunks_on_two_threads(monkeypatch):
    big = np.random.default_rng(0).normal(size=3 * digest.CHUNK_BYTES // 8 + 5)
    one = digest.array_digest(big)
    monkeypatch.setattr(digest, "worker_threads", lambda: 1)
    assert digest.array_digest(big) == one
    big[-1] += 1.0
    assert digest.array_digest(big) != one
