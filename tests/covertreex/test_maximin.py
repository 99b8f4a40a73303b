"""Exact maximin orderings equal a brute-force maximin on the oracle's distances, ties and duplicates too."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

import covertreex as ct
from covertreex import vecchia_orderings
from covertreex.maximin import maximin_order
from covertreex.maximin_dense import maximin_with_neighbors


def brute_maximin(matrix: np.ndarray, first: int) -> np.ndarray:
    """Farthest point first over a full distance matrix; np.argmax takes the smallest index on ties."""
    n = matrix.shape[0]
    order = [first]
    nearest = matrix[first].copy()
    nearest[first] = -1.0
    for _ in range(n - 1):
        nxt = int(np.argmax(nearest))
        order.append(nxt)
        nearest = np.minimum(nearest, matrix[nxt])
        nearest[order] = -1.0
    return np.array(order)


def _lattice_with_duplicates():
    grid = np.array(list(itertools.product(range(5), range(5))), dtype=float)
    return np.concatenate([grid, grid[[0, 7, 7, 12]], grid[:3]])


DATASETS = {
    "gaussian": lambda: np.random.default_rng(3).normal(size=(70, 3)),
    "lattice+duplicates": _lattice_with_duplicates,
}


def _data(metric, X):
    return ct.residual_problem(X, m=8, seed=1, lengthscale=2.0) if metric == "residual" else X


@pytest.mark.parametrize("dataset", sorted(DATASETS))
@pytest.mark.parametrize("metric", ["euclidean", "residual"])
@pytest.mark.parametrize("engine", ["gold", "rust", "brute"])
def test_maximin_equals_brute_force(dataset, metric, engine, distance_matrix):
    if not ct.engine_available(engine):
        pytest.skip(f"engine {engine} not available")
    data = _data(metric, DATASETS[dataset]())
    model = ct.CoverTree(engine=engine, metric=metric, path="tree").fit(data)
    order, evaluations = vecchia_orderings.maximin(model.space, model.tree)
    first = vecchia_orderings.first_point(model.space.data.X)
    expected = brute_maximin(distance_matrix(metric, data), first)
    np.testing.assert_array_equal(order, expected)
    assert evaluations > 0


def test_every_start_gives_the_brute_force_order(distance_matrix):
    X = _lattice_with_duplicates()
    model = ct.CoverTree(engine="gold", metric="euclidean", path="tree").fit(X)
    tree = model.tree
    matrix = distance_matrix("euclidean", X)
    for first in range(X.shape[0]):
        order, _ = maximin_order(model.space.data, first, (tree.root, tree.child_offsets, tree.children,
                                                           tree.radius))
        np.testing.assert_array_equal(order, brute_maximin(matrix, first), err_msg=f"first={first}")


def test_the_tree_walk_evaluates_fewer_distances_than_a_scan():
    X = np.random.default_rng(0).normal(size=(2000, 2))
    model = ct.CoverTree(engine="gold", metric="euclidean", path="tree").fit(X)
    tree_order, tree_evals = vecchia_orderings.maximin(model.space, model.tree)
    scan_order, scan_evals = vecchia_orderings.maximin(model.space, None)
    np.testing.assert_array_equal(tree_order, scan_order)
    assert tree_evals < scan_evals / 5


def test_first_point_is_nearest_the_mean_smallest_row_on_ties():
    X = np.array([[2.0, 0.0], [1.0, 0.0], [-1.0, 0.0], [-2.0, 0.0]])
    assert vecchia_orderings.first_point(X) == 1
    assert vecchia_orderings.first_point(np.array([[5.0], [0.0], [1.0], [4.0]])) == 2


@pytest.mark.parametrize("dataset", sorted(DATASETS))
@pytest.mark.parametrize("metric", ["euclidean", "residual"])
@pytest.mark.parametrize("k, block, room", [(1, 4, None), (5, 8, None), (5, 1024, None), (40, 16, None),
                                            (1, 4, 2), (5, 8, 6), (12, 16, 13)])
def test_fused_pass_gives_brute_force_order_and_neighbours(dataset, metric, k, block, room, distance_matrix):
    """room = k + 1: candidate lists overflow all the time, so ties and duplicates go through the
    evaluate-all-and-keep-k step too."""
    data = _data(metric, DATASETS[dataset]())
    space = ct.CoverTree(metric=metric).fit(data).space
    first = vecchia_orderings.first_point(space.data.X)
    rounds = []
    order, idx, dist, evaluations = maximin_with_neighbors(space.data, first, k, rounds.append, block=block,
                                                           room=room)
    matrix = distance_matrix(metric, data)
    np.testing.assert_array_equal(order, brute_maximin(matrix, first))
    for i in range(order.shape[0]):  # row i: the k positions j < i nearest by (distance, position)
        row = matrix[order[i], order[:i]]
        best = np.lexsort((np.arange(i), row))[:k]
        np.testing.assert_array_equal(idx[i, : best.size], best, err_msg=f"row {i}")
        assert dist[i, : best.size].tobytes() == row[best].tobytes() and (idx[i, best.size :] == -1).all()
    assert rounds[-1] == order.shape[0] and (block >= order.shape[0] or len(rounds) > 1)
    assert evaluations >= sum(min(i, k) for i in range(order.shape[0]))  # every listed pair, canonically


def test_auto_engine_fuses_residual_maximin_with_the_neighbour_search():
    X = np.random.default_rng(4).normal(size=(80, 2))
    fused = ct.vecchia_neighbors(X, 6, m=8)
    walked = ct.vecchia_neighbors(X, 6, m=8, engine="gold")
    assert fused.neighbor_seconds == 0.0 and walked.neighbor_seconds > 0.0
    for name in ("ordering", "neighbors", "distances"):
        assert getattr(fused, name).tobytes() == getattr(walked, name).tobytes(), name
