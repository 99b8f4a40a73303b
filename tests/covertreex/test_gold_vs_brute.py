"""gold == brute: identical indices and bitwise-identical distances across sizes, dims, k, seeds and data."""

from __future__ import annotations

import numpy as np
import pytest

import covertreex as ct
from covertreex import datasets

KINDS = ("gaussian", "lattice", "duplicates", "clustered")
DIMS = (1, 2, 3, 8)
KS = (1, 5, 10, 50)


def _cases():
    """Every (n, d) pair with seeds cycling through the dataset kinds: 20+ seeds in all."""
    cases = []
    for n, seeds in ((1, range(3)), (2, range(3)), (17, range(24)), (1000, range(20)), (5000, range(2))):
        for d in DIMS:
            for seed in seeds:
                if n == 1000 and seed % 4 != d % 4:
                    continue  # 20 seeds over the four dimensions: five per dimension
                cases.append((n, d, seed, KINDS[seed % len(KINDS)]))
    return cases


def _data(metric, kind, n, d, seed):
    X = datasets.make(kind, n, d, seed).points
    if metric == "euclidean":
        return X
    kernel = "rbf" if seed % 2 == 0 else "matern52"
    lengthscale = 0.7 if seed % 3 else np.linspace(0.5, 1.5, d)
    return ct.residual_problem(
        X, kernel=kernel, lengthscale=lengthscale, variance=1.3, m=min(24, n), seed=seed
    )


@pytest.mark.parametrize("metric", ["euclidean", "residual"])
@pytest.mark.parametrize(("n", "d", "seed", "kind"), _cases())
def test_gold_matches_oracle(metric, n, d, seed, kind, oracle, check_same):
    data = _data(metric, kind, n, d, seed)
    order = "hilbert" if seed % 2 else "natural"
    tree = ct.CoverTree(path="tree", engine="gold", metric=metric, order=order).fit(data)
    ct.validate(tree.tree, tree.space)
    query_idx = np.random.default_rng(seed).integers(0, n, min(n, 40))
    for k in KS:
        k = min(k, n)
        context = f"{metric} {kind} n={n} d={d} seed={seed} k={k}"
        check_same(
            tree.kneighbors(indices=query_idx, k=k), oracle(metric, data, k, indices=query_idx), context
        )
        if n <= 1000 or k == 10:  # every point queried: one k suffices at the largest size
            check_same(
                tree.kneighbors(k=k, predecessor=True),
                oracle(metric, data, k, predecessor=True),
                context + " predecessor",
            )
    if metric == "euclidean":
        fresh = datasets.gaussian(7, d, seed + 1000)
        check_same(tree.kneighbors(fresh, k=min(5, n)), oracle(metric, data, min(5, n), queries=fresh))


def test_residual_point_queries_match_oracle(oracle, check_same):
    problem = ct.residual_problem(datasets.gaussian(600, 2, 3), m=40, seed=3)
    tree = ct.CoverTree(path="tree", metric="residual").fit(problem)
    fresh = datasets.gaussian(30, 2, 4)
    check_same(tree.kneighbors(fresh, k=8), oracle("residual", problem, 8, queries=fresh))


def test_predecessor_rows_are_padded():
    X = datasets.gaussian(20, 2, 0)
    dist, idx = ct.CoverTree(path="tree").fit(X).kneighbors(k=5, predecessor=True)
    assert idx[0].tolist() == [-1] * 5 and np.isinf(dist[0]).all()
    assert set(idx[2, :2]) == {0, 1} and (idx[2, 2:] == -1).all() and np.isinf(dist[2, 2:]).all()
    assert dist[2, 0] <= dist[2, 1]
    assert all(
        set(row[row >= 0]) == set(range(min(i, 5))) or len(row[row >= 0]) == 5 for i, row in enumerate(idx)
    )
    assert all(set(row[row >= 0]) <= set(range(i)) for i, row in enumerate(idx))


@pytest.mark.parametrize("metric", ["euclidean", "residual"])
def test_gemm_brute_equals_direct_brute(metric, check_same):
    X = datasets.make("lattice", 3000, 3, 5).points
    data = X if metric == "euclidean" else ct.residual_problem(X, m=64, seed=5)
    q = np.arange(0, 3000, 11)
    direct = ct.CoverTree(engine="brute", metric=metric, brute_variant="direct").fit(data)
    gemm = ct.CoverTree(engine="brute", metric=metric, brute_variant="gemm", gemm_block=64).fit(data)
    for k in (1, 10, 50):
        check_same(gemm.kneighbors(indices=q, k=k), direct.kneighbors(indices=q, k=k), f"k={k}")
    check_same(gemm.kneighbors(k=7, predecessor=True), direct.kneighbors(k=7, predecessor=True))
    assert gemm.last_result.telemetry["counters"]["pairs_screened"] > 0


@pytest.mark.parametrize("engine", ["gold", "rust"])
@pytest.mark.parametrize("path", ["tree", "dense"])
def test_rows_as_long_as_the_data_are_sorted_like_the_oracle(engine, path, oracle, check_same):
    """k up to N on a lattice (many tied distances): the rows are written by a heapsort of the kept pairs
    (an insertion sort was O(k^2): 4.3 s for 10 queries at k = 40,000)."""
    X = np.stack(np.meshgrid(*[np.arange(11.0)] * 3), axis=-1).reshape(-1, 3)
    model = ct.CoverTree(engine=engine, path=path).fit(X)
    rows = [0, 600, 1330]
    for k in (X.shape[0] - 1, X.shape[0]):
        check_same(model.kneighbors(indices=rows, k=k), oracle("euclidean", X, k, indices=rows))


def test_a_gemm_block_holds_a_bounded_number_of_pairs(monkeypatch, check_same):
    """gemm_block counts query rows, so a block's memory grew with the points (~60 bytes a pair: 1,024
    queries against 50,000 points took 3 GB, an outside user's trial); a block now holds at most
    BLOCK_PAIRS pairs, with the same answer."""
    from covertreex.engines.brute import gemm

    X = np.random.default_rng(3).normal(size=(3000, 2))
    monkeypatch.setattr(gemm, "BLOCK_PAIRS", 3000 * 40)
    rows = []
    screen = gemm._approx_sq_distances
    monkeypatch.setattr(gemm, "_approx_sq_distances",
                        lambda space, queries, at: rows.append(at.size) or screen(space, queries, at))
    tree = ct.CoverTree(engine="brute", brute_variant="gemm", gemm_block=100).fit(X)
    got = tree.kneighbors(X[:250], k=4)
    assert rows == [40] * 6 + [10]
    monkeypatch.undo()
    check_same(got, ct.CoverTree(engine="brute", brute_variant="direct").fit(X).kneighbors(X[:250], k=4))
