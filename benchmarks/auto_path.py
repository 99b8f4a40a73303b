"""Does path='auto' pick the faster path for Euclidean queries? Tree, dense and auto, with peers beside.

For each case (N points and Q queries from ``default_rng(0).normal``, d dimensions, k neighbours) it times,
in CPU seconds of this process (the machine is shared), a fresh fit plus one query for the tree path (its
build included: auto counts the build while no tree exists), the dense path on its f64 screen and on its box
screen (the boxes' packing included), and auto, the best of two runs, and in the same run scipy's cKDTree
(build plus query) and a NumPy f64 dense reference written here (norms plus one GEMM per block of queries,
then argpartition; its recall against auto's answer), on the same CPU clock, with the tree walk's and the
box screen's distance evaluations per query beside the cost model's estimates of them
(``covertreex.paths.walk_evaluations`` and ``box_evaluations``), the path and screen auto took, and the
GEMM floor: the wall seconds the machine's measured dgemm rate needs for the Q x N products of d terms.

With --predecessor each case is the Vecchia query instead: every one of the N points against the points
before it (``query(k=k, predecessor=True)``, Q is ignored); cKDTree then answers the k + 1 nearest among all
points (not the same problem: no kd-tree library restricts a query to earlier points) and the NumPy
reference masks the later points (its recall counted on the rows with at least k earlier points).

    python benchmarks/auto_path.py                 # the cases of docs/benchmarks.md, one thread
    python benchmarks/auto_path.py --threads 2
    python benchmarks/auto_path.py --predecessor
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


def numpy_reference(X: np.ndarray, Q: np.ndarray, k: int, predecessor: bool = False):
    """(CPU seconds, indices) of a dense Euclidean k-NN in plain NumPy: squared norms, one GEMM per block
    of queries, argpartition, then each row sorted by (distance, index). `predecessor`: Q is X and row i
    takes only the points before it."""
    start = time.process_time()
    norms = (X * X).sum(axis=1)
    out = np.empty((Q.shape[0], k), dtype=np.int64)
    for a in range(0, Q.shape[0], QUERY_BLOCK):
        q = Q[a : a + QUERY_BLOCK]
        d2 = np.maximum((q * q).sum(axis=1)[:, None] + norms[None, :] - 2.0 * (q @ X.T), 0.0)
        if predecessor:
            d2[np.arange(a, a + len(q))[:, None] <= np.arange(X.shape[0])[None, :]] = np.inf
        part = np.argpartition(d2, k - 1, axis=1)[:, :k]
        order = np.lexsort((part, np.take_along_axis(d2, part, axis=1)), axis=1)
        out[a : a + QUERY_BLOCK] = np.take_along_axis(part, order, axis=1)
    return time.process_time() - start, out


def recall(found: np.ndarray, reference: np.ndarray) -> float:
    """Share of the reference's neighbours that `found` lists too, row by row."""
    return float(np.mean([np.isin(r, f).mean() for f, r in zip(found, reference, strict=True)]))


RUNS = {"tree": {"path": "tree"}, "dense f64": {"path": "dense", "dense_screen": "f64"},
        "dense boxes": {"path": "dense", "dense_screen": "boxes"}, "auto": {}}
"""The runs of each case: CoverTree options over the default (rust in perf mode, path and screen 'auto')."""


def timed(options: dict, X, Q, k: int, threads: int):
    """(CPU seconds, result) of a fresh fit and one query with `options` (Q None: the predecessor query)."""
    start = time.process_time()
    model = ct.CoverTree(threads=threads, **options).fit(X)
    result = model.query(k=k, predecessor=True) if Q is None else model.query(Q, k)
    return time.process_time() - start, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=positive_int, default=1)
    parser.add_argument("--predecessor", action="store_true",
                        help="the Vecchia query: each point against the points before it")
    args = parser.parse_args()
    rate = dgemm_rate()
    header("Euclidean, rust engine (the default), CPU seconds, best of 2"
           + (", predecessor queries" if args.predecessor else ""),
           f"measured dgemm {rate:.1f} GFLOP/s")
    print("\n| N | d | Q | k | tree s | dense f64 s | dense boxes s | auto s (path, screen) | cKDTree s | "
          "auto / cKDTree | NumPy dense s (recall) | GEMM floor s | walk evaluations/query (model) | "
          "box evaluations/query (model) |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    rng = np.random.default_rng(0)
    cases = CASES
    if args.predecessor:  # Q is ignored: the cases that differ only in Q are one case
        cases = list(dict.fromkeys((n, d, n, k) for n, d, _, k in CASES))
    for n, d, q, k in cases:
        X, Q = rng.normal(size=(n, d)), rng.normal(size=(q, d))
        given = None if args.predecessor else Q
        best = {name: min((timed(options, X, given, k, args.threads) for _ in range(2)),
                          key=lambda run: run[0])
                for name, options in RUNS.items()}
        kd = min(kd_seconds(X, X if args.predecessor else Q, k + args.predecessor, args.threads)
                 for _ in range(2))
        reference_seconds, reference = numpy_reference(X, X if args.predecessor else Q, k, args.predecessor)
        auto = best["auto"][1]
        full = slice(k, None) if args.predecessor else slice(None)  # rows with k eligible points
        found = recall(auto.indices[full], reference[full])
        floor = 2.0 * q * n * d / (rate * 1e9) / (2 if args.predecessor else 1)
        walk = best["tree"][1].telemetry["counters"]["distance_evaluations"] / q
        boxes = best["dense boxes"][1].telemetry["counters"]["distance_evaluations"] / q
        screen = auto.counters.extra.get("screen")
        taken = auto.telemetry["path"] + (f", {screen}" if screen else "")
        print(f"| {n} | {d} | {q} | {k} | {best['tree'][0]:.3f} | {best['dense f64'][0]:.3f} | "
              f"{best['dense boxes'][0]:.3f} | {best['auto'][0]:.3f} ({taken}) | {kd:.3f} | "
              f"{best['auto'][0] / kd:.2f}x | {reference_seconds:.3f} ({found:.6f}) | {floor:.3f} | "
              f"{walk:.0f} ({paths.walk_evaluations('euclidean', d, n, k):.0f}) | "
              f"{boxes:.0f} ({paths.box_evaluations(d, n, k):.0f}) |", flush=True)


def kd_seconds(X, Q, k: int, threads: int) -> float:
    """CPU seconds of scipy's cKDTree: its build and the query."""
    start = time.process_time()
    cKDTree(X).query(Q, k, workers=threads)
    return time.process_time() - start

if __name__ == "__main__":
    main()
