"""radius_neighbors against scikit-learn and scipy, one process: every training point within a radius.

Per case (N training points and Q query points from ``default_rng(0).normal``, d dimensions, a radius that
holds about `count` points a row), CPU seconds of this process, best of 2, fit included:

* covertreex's ``CoverTreeNeighbors(radius=r)`` (rust in perf mode: the box screen's ball search for
  Euclidean points of up to 8 coordinates), and the same with ``path='tree'`` (the widening exact k-NN);
* scikit-learn's ``NearestNeighbors(radius=r).radius_neighbors(sort_results=True)`` (its kd-tree) and
  scipy's ``cKDTree.query_ball_point(return_sorted=True)``;
* a NumPy f64 reference written here (squared distances by one GEMM per block of queries, then the mask),
  up to --numpy-max training points;

with each peer's index sets against ours (equal: every row the same set), the mean points a row, and the
GEMM floor of the Q x N products of d terms at the machine's measured dgemm rate.

    python benchmarks/radius_vs_sklearn.py
"""

from __future__ import annotations

import argparse
import time
from functools import partial

import numpy as np
from bench_args import header, positive_int
from dense_vs_peers import dgemm_rate
from scipy.spatial import cKDTree
from sklearn.neighbors import NearestNeighbors

from covertreex.sklearn import CoverTreeNeighbors

CASES = [(50_000, 3, 5_000, 5), (50_000, 3, 5_000, 40), (50_000, 3, 5_000, 300), (50_000, 2, 5_000, 40),
         (50_000, 5, 5_000, 40), (200_000, 3, 10_000, 40)]
"""(N, d, Q, points a row the radius is chosen for)."""
BLOCK = 256
"""Query rows per block of the NumPy reference."""


def best(work) -> tuple[float, object]:
    """(CPU seconds, result) of the faster of two runs of `work`."""
    runs = []
    for _ in range(2):
        start = time.process_time()
        result = work()
        runs.append((time.process_time() - start, result))
    return min(runs, key=lambda run: run[0])


def radius_for(X: np.ndarray, Q: np.ndarray, count: int) -> float:
    """The median distance from the first 200 queries to their count-th nearest training point."""
    distances, _ = cKDTree(X).query(Q[:200], count)
    return float(np.median(distances[:, -1]))


def numpy_reference(X: np.ndarray, Q: np.ndarray, radius: float) -> list[np.ndarray]:
    """Each query's training points within `radius`, by squared distances from one GEMM per block."""
    norms = (X * X).sum(axis=1)
    rows = []
    for a in range(0, len(Q), BLOCK):
        q = Q[a : a + BLOCK]
        d2 = (q * q).sum(axis=1)[:, None] + norms[None, :] - 2.0 * (q @ X.T)
        rows += [np.flatnonzero(row <= radius * radius) for row in d2]
    return rows


def same_sets(ours, theirs) -> bool:
    """Whether every row of `theirs` (arrays or lists) holds the same indices as ours."""
    return all(set(np.asarray(a).tolist()) == set(np.asarray(b).tolist())
               for a, b in zip(ours, theirs, strict=True))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--numpy-max", type=positive_int, default=50_000,
                        help="largest N the NumPy reference runs at (default: %(default)s)")
    args = parser.parse_args()
    rate = dgemm_rate()
    header("radius_neighbors, CPU seconds, best of 2, fit included", f"measured dgemm {rate:.1f} GFLOP/s")
    print("\n| N | d | Q | points/row | covertreex s | covertreex path='tree' s | scikit-learn s | cKDTree s "
          "| ours / scikit-learn | NumPy s (same sets) | GEMM floor s | peers' sets equal ours |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    rng = np.random.default_rng(0)
    for n, d, q, count in CASES:
        X, Q = rng.normal(size=(n, d)), rng.normal(size=(q, d))
        radius = radius_for(X, Q, count)
        ours_s, (_, ours) = best(partial(covertreex_radius, X, Q, radius, {}))
        tree_s, (_, tree) = best(partial(covertreex_radius, X, Q, radius, {"path": "tree"}))
        sk_s, (_, sk) = best(partial(sklearn_radius, X, Q, radius))
        kd_s, kd = best(partial(kd_radius, X, Q, radius))
        numpy = "not run"
        if n <= args.numpy_max:
            numpy_s, reference = best(partial(numpy_reference, X, Q, radius))
            numpy = f"{numpy_s:.3f} ({'yes' if same_sets(ours, reference) else 'NO'})"
        equal = same_sets(ours, tree) and same_sets(ours, sk) and same_sets(ours, kd)
        floor = 2.0 * q * n * d / (rate * 1e9)
        per_row = np.mean([len(row) for row in ours])
        print(f"| {n:,} | {d} | {q:,} | {per_row:.1f} | {ours_s:.3f} | {tree_s:.3f} | {sk_s:.3f} "
              f"| {kd_s:.3f} | {ours_s / sk_s:.2f}x | {numpy} | {floor:.3f} | {'yes' if equal else 'NO'} |",
              flush=True)


def covertreex_radius(X, Q, radius: float, options: dict):
    return CoverTreeNeighbors(radius=radius, **options).fit(X).radius_neighbors(Q)


def sklearn_radius(X, Q, radius: float):
    return NearestNeighbors(radius=radius).fit(X).radius_neighbors(Q, sort_results=True)


def kd_radius(X, Q, radius: float):
    return cKDTree(X).query_ball_point(Q, radius, return_sorted=True)


if __name__ == "__main__":
    main()
