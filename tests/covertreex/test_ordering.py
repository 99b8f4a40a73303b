"""Insertion and query-block orders: the Hilbert keys trace a Hilbert curve, and orders are permutations."""

from __future__ import annotations

import numpy as np
import pytest

from covertreex.ordering import hilbert_keys, hilbert_order


def _corner_grid(side: int, d: int) -> np.ndarray:
    """The side**d cells at the grid's origin corner, plus one point at the far corner so that each
    coordinate's quantised cell is the coordinate itself."""
    bits = max(1, min(16, 63 // d))
    cells = np.stack(np.meshgrid(*[np.arange(side)] * d, indexing="ij"), -1).reshape(-1, d).astype(float)
    return np.vstack([cells, np.full((1, d), float((1 << bits) - 1))])


@pytest.mark.parametrize("d", [1, 2, 3, 4])
def test_hilbert_keys_fill_the_corner_block_one_step_at_a_time(d):
    """On the curve, the first 4**d keys (side 2**2) are exactly the corner block's cells, and each next
    key is a neighbouring cell (one coordinate changes by one)."""
    points = _corner_grid(4, d)
    keys = hilbert_keys(points)
    corner = keys[:-1]
    assert sorted(corner.tolist()) == list(range(4**d))
    walk = points[:-1][np.argsort(corner)]
    assert np.array_equal(np.abs(np.diff(walk, axis=0)).sum(axis=1), np.ones(4**d - 1))


@pytest.mark.parametrize("d", [1, 3, 21, 63, 200])
def test_hilbert_order_is_a_permutation_with_ties_by_index(d):
    rng = np.random.default_rng(d)
    points = rng.normal(size=(300, d))
    points[100:150] = points[7]  # duplicates share a key: dataset order among them
    order = hilbert_order(points)
    assert order.dtype == np.int64 and sorted(order.tolist()) == list(range(300))
    keys = hilbert_keys(points)
    ordered = keys[order]
    assert np.all(ordered[1:] >= ordered[:-1])
    same = order[ordered == keys[7]]
    assert len(same) >= 51 and np.all(np.diff(same) > 0)
    assert hilbert_order(points[:1]).tolist() == [0] and hilbert_order(points[:0]).tolist() == []
