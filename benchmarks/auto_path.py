"""Does path='auto' pick the faster path for Euclidean queries? Tree, dense and auto, with peers beside.

For each case (N points and Q queries from ``default_rng(0).normal``, d dimensions, k neighbours) it times,
in CPU seconds of this process (the machine is shared), a fresh fit plus one query for the tree path (its
build included: auto counts the build while no tree exists), the dense path and auto, the best of two runs,
and in the same run scipy's cKDTree (build plus query) and a NumPy f64 dense reference written here (norms
plus one GEMM per block of queries, then argpartition; its recall against auto's answer), on the same CPU
clock, with the tree walk's distance evaluations per query, the cost model's estimate of them
(``covertreex.paths.walk_evaluations``), the path auto took, and the GEMM floor: the wall seconds the
machine's measured dgemm rate needs for the Q x N products of d terms.

    python benchmarks/auto_path.py                 # the cases of docs/benchmarks.md, one thread
    python benchmarks/auto_path.py --threads 2
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from bench_args import header, positive_int
from dense_vs_peers import dgemm_rate
from scipy.spatial import cKDTree

import covertreex as ct
from covertreex import paths

CASES = [(50_000, 3, 10_000, 10), (50_000, 3, 1_000, 10), (50_000, 3, 50_000, 10), (200_000, 3, 20_000, 10),
         (50_000, 2, 10_000, 10), (50_000, 5, 10_000, 10), (50_000, 8, 5_000, 10), (50_000, 3, 10_000, 50)]


QUERY_BLOCK = 256
"""Queries per block of the NumPy reference (a block's distances are QUERY_BLOCK x N floats)."""


def numpy_reference(X: np.ndarray, Q: np.ndarray, k: int) -> tuple[float, np.ndarray]:
    """(CPU seconds, indices) of a dense Euclidean k-NN in plain NumPy: squared norms, one GEMM per block
    of queries, argpartition, then each row sorted by (distance, index)."""
    start = time.process_time()
    norms = (X * X).sum(axis=1)
    out = np.empty((Q.shape[0], k), dtype=np.int64)
    for a in range(0, Q.shape[0], QUERY_BLOCK):
        q = Q[a : a + QUERY_BLOCK]
        d2 = np.maximum((q * q).sum(axis=1)[:, None] + norms[None, :] - 2.0 * (q @ X.T), 0.0)
        part = np.argpartition(d2, k - 1, axis=1)[:, :k]
        order = np.lexsort((part, np.take_along_axis(d2, part, axis=1)), axis=1)
        out[a : a + QUERY_BLOCK] = np.take_along_axis(part, order, axis=1)
    return time.process_time() - start, out


def recall(found: np.ndarray, reference: np.ndarray) -> float:
    """Share of the reference's neighbours that `found` lists too, row by row."""
    return float(np.mean([np.isin(r, f).mean() for f, r in zip(found, reference, strict=True)]))


def timed(path: str, X, Q, k: int, threads: int):
    """(CPU seconds, result) of a fresh fit and one query on `path`."""
    start = time.process_time()
    result = ct.CoverTree(path=path, threads=threads).fit(X).query(Q, k)
    return time.process_time() - start, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=positive_int, default=1)
    args = parser.parse_args()
    rate = dgemm_rate()
    header("Euclidean, rust engine (the default), CPU seconds, best of 2",
           f"measured dgemm {rate:.1f} GFLOP/s")
    print("\n| N | d | Q | k | tree s | dense s | auto s (path) | cKDTree s | NumPy dense s (recall) "
          "| GEMM floor s | walk evaluations/query (model) |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    rng = np.random.default_rng(0)
    for n, d, q, k in CASES:
        X, Q = rng.normal(size=(n, d)), rng.normal(size=(q, d))
        best = {path: min((timed(path, X, Q, k, args.threads) for _ in range(2)), key=lambda run: run[0])
                for path in ("tree", "dense", "auto")}
        start = time.process_time()
        cKDTree(X).query(Q, k, workers=args.threads)
        kd = time.process_time() - start
        reference_seconds, reference = numpy_reference(X, Q, k)
        found = recall(best["auto"][1].indices, reference)
        floor = 2.0 * q * n * d / (rate * 1e9)
        walk = best["tree"][1].telemetry["counters"]["distance_evaluations"] / q
        model = paths.walk_evaluations("euclidean", d, n, k)
        print(f"| {n} | {d} | {q} | {k} | {best['tree'][0]:.3f} | {best['dense'][0]:.3f} | "
              f"{best['auto'][0]:.3f} ({best['auto'][1].telemetry['path']}) | {kd:.3f} | "
              f"{reference_seconds:.3f} ({found:.6f}) | {floor:.3f} | {walk:.0f} ({model:.0f}) |", flush=True)


if __name__ == "__main__":
    main()
