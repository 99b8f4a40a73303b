"""Does path='auto' pick the faster path for Euclidean queries? Tree, dense and auto, cKDTree beside.

For each case (N points and Q queries from ``default_rng(0).normal``, d dimensions, k neighbours) it times,
in CPU seconds of this process (the machine is shared), a fresh fit plus one query for the tree path (its
build included: auto counts the build while no tree exists), the dense path and auto, the best of two runs,
and scipy's cKDTree (build plus query, the same CPU clock), with the tree walk's distance evaluations per
query, the cost model's estimate of them (``covertreex.paths.walk_evaluations``) and the path auto took.

    python benchmarks/auto_path.py                 # the cases of docs/benchmarks.md, one thread
    python benchmarks/auto_path.py --threads 2
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from bench_args import header, positive_int
from scipy.spatial import cKDTree

import covertreex as ct
from covertreex import paths

CASES = [(50_000, 3, 10_000, 10), (50_000, 3, 1_000, 10), (50_000, 3, 50_000, 10), (200_000, 3, 20_000, 10),
         (50_000, 2, 10_000, 10), (50_000, 5, 10_000, 10), (50_000, 8, 5_000, 10), (50_000, 3, 10_000, 50)]


def timed(path: str, X, Q, k: int, threads: int):
    """(CPU seconds, result) of a fresh fit and one query on `path`."""
    start = time.process_time()
    result = ct.CoverTree(path=path, threads=threads).fit(X).query(Q, k)
    return time.process_time() - start, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=positive_int, default=1)
    args = parser.parse_args()
    header("Euclidean, rust engine (the default), CPU seconds, best of 2")
    print("\n| N | d | Q | k | tree s | dense s | auto s (path) | cKDTree s | walk evaluations/query "
          "(model) |")
    print("|---|---|---|---|---|---|---|---|---|")
    rng = np.random.default_rng(0)
    for n, d, q, k in CASES:
        X, Q = rng.normal(size=(n, d)), rng.normal(size=(q, d))
        best = {path: min((timed(path, X, Q, k, args.threads) for _ in range(2)), key=lambda run: run[0])
                for path in ("tree", "dense", "auto")}
        start = time.process_time()
        cKDTree(X).query(Q, k, workers=args.threads)
        kd = time.process_time() - start
        walk = best["tree"][1].telemetry["counters"]["distance_evaluations"] / q
        model = paths.walk_evaluations("euclidean", d, n, k)
        print(f"| {n} | {d} | {q} | {k} | {best['tree'][0]:.3f} | {best['dense'][0]:.3f} | "
              f"{best['auto'][0]:.3f} ({best['auto'][1].telemetry['path']}) | {kd:.3f} | {walk:.0f} "
              f"({model:.0f}) |", flush=True)


if __name__ == "__main__":
    main()
