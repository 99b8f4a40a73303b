"""When the split screen repays its building: split + build against the f64 screen, one process (opt-in).

The data of covertreex.split_screen.PAYS. X = ``default_rng(42).normal(size=(N, 3))``, RBF, m inducing
points (seed 42), k = 50, rust perf mode on the dense path. It times the split's basis (the certificate,
``problem.split_basis``) and its rows with their packing (``problem.split_screen.rows()``), then the query
with ``dense_screen='f64'`` and with ``dense_screen='split'`` (the split built), alternating, and reports
the best of --repeats each; the telemetry's digest of the problem is taken first, outside every figure.
The workload is Vecchia all-points (``--queries 0``: every point against its predecessors) or that many
random indexed queries. Per row: the median sqrt(e/p), seconds, the saving per pair of the split's query
(CPU-ns: wall x 2 cores / pairs) and the pairs per point at which the split repays its building.

    python benchmarks/split_pays.py --n 16384 --queries 0
    python benchmarks/split_pays.py --n 262144 --queries 1024
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

import covertreex as ct

sys.path.insert(0, str(Path(__file__).parent))
from bench_args import header, positive_int  # noqa: E402

K = 50


def timed(work) -> float:
    start = time.perf_counter()
    work()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=positive_int, required=True)
    parser.add_argument("--m", type=positive_int, default=512)
    parser.add_argument("--queries", type=int, default=0, help="0: Vecchia all-points; else indexed queries")
    parser.add_argument("--repeats", type=positive_int, default=2)
    args = parser.parse_args()
    if args.queries < 0:
        parser.error(f"--queries must be 0 (Vecchia all-points) or a positive count, got {args.queries}")
    header()
    n, m = args.n, args.m
    problem = ct.residual_problem(np.random.default_rng(42).normal(size=(n, 3)), m=m, seed=42)
    _ = problem.digest
    basis = timed(lambda: problem.split_basis)
    if problem.split_basis is None:
        sys.exit("no split screen for this problem (see covertreex.split_screen.split_screen)")
    rows = timed(lambda: problem.split_screen.rows())
    if args.queries == 0:
        query, pairs, workload = {"predecessor": True}, n * (n - 1) / 2, "Vecchia all-points"
    else:
        indices = np.random.default_rng(43).integers(0, n, args.queries)
        query, pairs, workload = {"indices": indices}, n * args.queries, f"{args.queries} indexed queries"
    trees = {screen: ct.CoverTree(metric="residual", engine="rust", path="dense", mode="perf",
                                  dense_screen=screen).fit(problem) for screen in ("f64", "split")}
    runs = {"f64": [], "split": []}
    for _ in range(args.repeats):
        for screen, seconds in runs.items():
            seconds.append(timed(lambda s=screen: trees[s].query(k=K, **query)))
    best = {screen: min(seconds) for screen, seconds in runs.items()}
    cores = len(os.sched_getaffinity(0))
    saving = (best["f64"] - best["split"]) * cores / pairs
    build = basis + rows
    print("| workload | N | m | median sqrt(e/p) | f64 s | split s + build s (basis + rows) | "
          "saving per pair, CPU-ns | break-even pairs per point | pairs per point |")
    print("|---|---|---|---|---|---|---|---|---|")
    even = f"{build * cores / n / saving:.0f}" if saving > 0 else "never"
    print(f"| {workload} | {n:,} | {m} | {problem.split_screen.median_rest:.2f} | {best['f64']:.2f} | "
          f"{best['split']:.2f} + {build:.2f} ({basis:.2f} + {rows:.2f}) | {saving * 1e9:.1f} | {even} | "
          f"{pairs / n:.0f} |")


if __name__ == "__main__":
    main()
