"""The Euclidean Vecchia job (exact maximin ordering, k nearest predecessors) at GP-sized N, peers beside.

Per case (N uniform points in [0, 1]^d, seed 0; k neighbours) it runs, in this process and one after the
other: our whole job (``vecchia_neighbors(X, k, metric="euclidean", ordering="maximin")``: in up to
FARTHEST_MAX_WIDTH coordinates the packed boxes order alone while the other threads answer the rows of the
order's prefixes, then the rest, covertreex/vecchia_overlap.py; in more, the rust pass that orders and finds
the rows together), with its ordering's evaluations per point; the same job with every row answered after
the order (no prefix handed over: the route before the overlap), its answer checked equal;
up to --other-max points, the other route on the same data (the fused pass alone, or the boxes' order then
the query), its answer checked equal to the job's, which is how FARTHEST_MAX_WIDTH was chosen; scipy's
cKDTree answering each point's k + 1 nearest among *all* points
(build included: not the Vecchia problem, which needs an ordering first and excludes later points, but the
fastest library answer to the neighbour half alone), and, up to --numpy-max points, a NumPy f64 reference
written here (the maximin loop of N vector steps, then blocked predecessor distances with argpartition),
checked against ours (same order, neighbour recall). The GEMM floor column is the time the machine's
measured dgemm rate needs for the N^2 / 2 pair products of d terms: what a dense pass cannot go below.

    python benchmarks/euclidean_vecchia.py                           # the cases of docs/benchmarks.md
    python benchmarks/euclidean_vecchia.py --sizes 1000000 --dims 2,3 --other-max 0
    python benchmarks/euclidean_vecchia.py --sizes 20000,200000 --dims 5,6,7,8,10 --numpy-max 1   # the rule
    python benchmarks/euclidean_vecchia.py --sizes 32768 --dims 2 --numpy-max 32768
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from bench_args import header, int_list, positive_int
from dense_vs_peers import dgemm_rate
from scipy.spatial import cKDTree

import covertreex as ct
from covertreex import vecchia_orderings, vecchia_overlap
from covertreex.engines import rust
from covertreex.vecchia import FARTHEST_MAX_WIDTH

ROW_BLOCK = 256
"""Rows per block of the NumPy reference's predecessor distances (a block is ROW_BLOCK x N floats)."""


def squared_sums(A: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Squared distances from each row of A to b, summed over the coordinates in order (the canonical
    order, so the bits are the library's); b broadcasts: a row, or a block's rows against all of A."""
    total = (A[..., 0] - b[..., 0]) ** 2
    for i in range(1, A.shape[-1]):
        total += (A[..., i] - b[..., i]) ** 2
    return total


def numpy_reference(X: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Exact maximin (from the same first point, ties to the smallest row) and each position's k nearest
    earlier positions, by (distance, position), in plain NumPy: (order, neighbour positions)."""
    n = X.shape[0]
    order = np.empty(n, dtype=np.int64)
    nearest = np.full(n, np.inf)
    c = vecchia_orderings.first_point(X)
    for t in range(n):
        order[t] = c
        np.minimum(nearest, np.sqrt(squared_sums(X, X[c])), out=nearest)
        nearest[c] = -1.0  # placed: never the farthest again
        c = int(np.argmax(nearest))
    Y = X[order]
    rows = np.full((n, k), -1, dtype=np.int64)
    for a in range(0, n, ROW_BLOCK):
        b = min(n, a + ROW_BLOCK)
        d = np.sqrt(squared_sums(Y[None, :b, :], Y[a:b, None, :]))
        d[np.arange(b)[None, :] >= np.arange(a, b)[:, None]] = np.inf  # only earlier positions
        for i in range(a, b):
            row = d[i - a]
            m = min(k, i)
            if m:
                part = np.argpartition(row, m - 1)[:m] if m < i else np.arange(i)
                rows[i, :m] = part[np.lexsort((part, row[part]))]
    return order, rows


def recall(ours: np.ndarray, reference: np.ndarray) -> float:
    """Share of the reference's listed neighbours that our rows list too."""
    hits = sum(np.intersect1d(a[a >= 0], b[b >= 0]).size for a, b in zip(ours, reference, strict=True))
    return hits / max(1, int((reference >= 0).sum()))


def other_route(X: np.ndarray, k: int, job) -> str:
    """The table cells of the route the job did not take on X (the fused pass alone, or the boxes' order then
    the predecessor query), its answer checked equal to the job's."""
    first = vecchia_orderings.first_point(X)
    space = ct.CoverTree(metric="euclidean").fit(X).space  # X validated outside the timer
    start = time.perf_counter()
    if X.shape[1] <= FARTHEST_MAX_WIDTH:
        order, rows, _, evaluations = rust.maximin_with_neighbors(space.data, first, k)
        name = "fused pass"
    else:
        order, evaluations = rust.maximin_order(X, first)
        rows = ct.vecchia_neighbors(X, k, metric="euclidean", ordering=order).neighbors
        name = "boxes' order + query"
    seconds = time.perf_counter() - start
    assert np.array_equal(order, job.ordering) and np.array_equal(rows, job.neighbors)
    return f"| {name} | {seconds:.2f} | {evaluations / len(X):.1f} "


def rows_after_the_order(X: np.ndarray, k: int, job) -> str:
    """The job's wall seconds with no row answered before the order is complete (FIRST_PREFIX beyond N/2:
    no prefix is handed over), its answer checked equal to the job's; where the job takes no overlap (more
    than FARTHEST_MAX_WIDTH coordinates), 'same route'."""
    if X.shape[1] > FARTHEST_MAX_WIDTH:
        return "same route"
    kept = vecchia_overlap.FIRST_PREFIX
    vecchia_overlap.FIRST_PREFIX = len(X)
    try:
        start = time.perf_counter()
        again = ct.vecchia_neighbors(X, k, metric="euclidean", ordering="maximin")
        seconds = time.perf_counter() - start
    finally:
        vecchia_overlap.FIRST_PREFIX = kept
    assert all(getattr(again, name).tobytes() == getattr(job, name).tobytes()
               for name in ("ordering", "neighbors", "distances"))
    return f"{seconds:.2f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int_list, default=(32768, 100000, 300000))
    parser.add_argument("--dims", type=int_list, default=(2, 3))
    parser.add_argument("--k", type=positive_int, default=30)
    parser.add_argument("--numpy-max", type=positive_int, default=32768,
                        help="largest N the NumPy reference runs at (its maximin loop is O(N^2))")
    parser.add_argument("--other-max", type=int, default=300000,
                        help="largest N the other route runs at (0: never; the fused pass is quadratic in N)")
    args = parser.parse_args()
    if not ct.engine_available("rust"):
        parser.error("the rust extension is not built: pip install -e .")
    rate = dgemm_rate()
    header(f"k {args.k}", f"measured dgemm {rate:.1f} GFLOP/s")
    warm = np.random.default_rng(1).uniform(size=(50_000, 2))  # the first job pays the process's one-time
    ct.vecchia_neighbors(warm, args.k, metric="euclidean", ordering="maximin")  # costs: not the table's
    print("\n| N | d | job wall s | job CPU s | ordering s | ordering evaluations/point | neighbours s "
          "(after the order) | job with every row after the order: wall s | other route | its wall s | "
          "its evaluations/point | cKDTree all-points k+1 s | NumPy reference s (same order, recall) | "
          "GEMM floor s |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for n in args.sizes:
        for d in args.dims:
            X = np.random.default_rng(0).uniform(size=(n, d))
            wall, cpu = time.perf_counter(), time.process_time()
            job = ct.vecchia_neighbors(X, args.k, metric="euclidean", ordering="maximin")
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
            after = rows_after_the_order(X, args.k, job)
            other = "| not run " * 3
            if n <= args.other_max:
                other = other_route(X, args.k, job)
            start = time.perf_counter()
            cKDTree(X).query(X, args.k + 1, workers=-1)
            kd = time.perf_counter() - start
            reference = "not run"
            if n <= args.numpy_max:
                start = time.perf_counter()
                ref_order, ref_rows = numpy_reference(X, args.k)
                same = "yes" if np.array_equal(ref_order, job.ordering) else "no"
                reference = (f"{time.perf_counter() - start:.2f} ({same}, "
                             f"{recall(job.neighbors, ref_rows):.6f})")
            floor = n * n / 2 * 2 * d / (rate * 1e9)
            print(f"| {n} | {d} | {wall:.2f} | {cpu:.2f} | {job.ordering_seconds:.2f} | "
                  f"{job.maximin_evaluations / n:.1f} | {job.neighbor_seconds:.2f} | {after} {other}| "
                  f"{kd:.2f} | {reference} | {floor:.2f} |", flush=True)


if __name__ == "__main__":
    main()
