"""Could the dense path skip whole point tiles? A study of ball-bound tile pruning on Vecchia all-points.

The dense path computes every eligible pair in GEMM tiles; the tree skips points one at a time but
evaluates each outside any GEMM. In between: cut the points into tiles of nearby points, give each tile a
centre c (a member) and a radius r = max d(c, x) over its members, and skip a tile for query q when
d(q, c) - r > T_q, T_q being q's final k-th distance (the triangle inequality; DESIGN section 3). A query
block shares a tile unless every query in it may skip it.

This script measures the most such a scheme could save, with exact arithmetic taken for granted (no
rounding margin) and the final T_q known in advance (a real search only has a running bound, which is
looser): the pairs of tiles not skipped, against the N^2 / 2 pairs of the dense triangle. Tiles are the
leaves of a median kd-split of X (tile-sized, compact in X, where residual-metric neighbours live);
queries are blocked in the same order. NumPy for the study; the dense path's answers give T_q.

    python benchmarks/tile_pruning_study.py --n 32768 --tiles 16,64,256 --block 64
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from bench_args import header, int_list, positive_int

import covertreex as ct

M, K = 512, 50


def residual_distances(problem, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """d(rows x cols) by DESIGN section 3's formula, in NumPy's summation order (a study, not canonical)."""
    X, V, p = problem.X, problem.V, problem.p
    r2 = ((X[rows][:, None, :] - X[cols][None, :, :]) ** 2).sum(-1)
    rho = (problem.variance * np.exp(-r2 / 2) - V[rows] @ V[cols].T) / np.sqrt(p[rows][:, None] * p[cols])
    return np.sqrt(np.maximum(0.0, 1.0 - np.minimum(1.0, np.abs(rho))))


def kd_leaves(X: np.ndarray, ids: np.ndarray, leaf: int) -> list[np.ndarray]:
    """Median splits on the widest coordinate until each part holds at most `leaf` points."""
    if len(ids) <= leaf:
        return [ids]
    points = X[ids]
    axis = int(np.argmax(points.max(0) - points.min(0)))
    ordered = ids[np.argsort(points[:, axis], kind="stable")]
    half = max(len(ordered) // 2 // leaf, 1) * leaf
    return kd_leaves(X, ordered[:half], leaf) + kd_leaves(X, ordered[half:], leaf)


def study(problem, kth: np.ndarray, tile: int, block: int) -> dict:
    n = problem.n_points
    leaves = kd_leaves(problem.X, np.arange(n), tile)
    order = np.concatenate(leaves)
    centres = np.array([members[np.argmin(((problem.X[members] - problem.X[members].mean(0)) ** 2).sum(1))]
                        for members in leaves])
    radius = np.array([residual_distances(problem, centres[t:t + 1], members).max()
                       for t, members in enumerate(leaves)])
    first = np.array([members.min() for members in leaves])  # a tile with no predecessor of q is skipped
    sizes = np.array([len(members) for members in leaves])
    block_pairs = query_pairs = 0
    for start in range(0, n, block):
        queries = order[start:start + block]
        needed = ((residual_distances(problem, queries, centres) - radius <= kth[queries][:, None])
                  & (first < queries[:, None]))
        query_pairs += int((needed * sizes).sum())
        block_pairs += int(sizes[needed.any(0)].sum()) * len(queries)
    triangle = n * n / 2
    return {"tile": tile, "radius_median": float(np.median(radius)), "kth_median": float(np.median(kth[K:])),
            "block": block_pairs / triangle, "query": query_pairs / triangle}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=positive_int, default=32_768)
    parser.add_argument("--tiles", type=int_list, default=(16, 64, 256))
    parser.add_argument("--block", type=positive_int, default=64)
    args = parser.parse_args(argv)
    header()
    X = np.random.default_rng(42).normal(size=(args.n, 3))
    problem = ct.residual_problem(X, m=M, seed=42)
    start = time.perf_counter()
    distances, _ = ct.CoverTree(engine="rust", metric="residual", path="dense").fit(problem).kneighbors(
        k=K, predecessor=True)
    print(f"dense path, all points among their predecessors: {time.perf_counter() - start:.1f} s")
    print("| N | tile | query block | median tile radius | median k-th distance | block pairs / triangle | "
          "per-query pairs / triangle |")
    print("|---|---|---|---|---|---|---|")
    for tile in args.tiles:
        row = study(problem, distances[:, K - 1], tile, args.block)
        print(f"| {args.n} | {tile} | {args.block} | {row['radius_median']:.3f} | {row['kth_median']:.3f} | "
              f"{row['block']:.3f} | {row['query']:.3f} |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
