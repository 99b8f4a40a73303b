"""Sequential vs batch build on the gold-workload shape: build CPU seconds, build evaluations, and what the
tree costs the queries (opt-in, long; the figures of docs/benchmarks.md "Batch build").

Residual RBF, lengthscale 1, variance 1, m = 512, X = default_rng(42).normal(size=(N, 3)), inducing seed 42,
k = 50, 1,024 dataset-index queries default_rng(43).integers(0, N, 1024) (DESIGN section 6). For each N,
engine and build (sequential, or batch with each block size) it builds the tree once and reports: process CPU
seconds of the build (every thread's, so a 2-thread build at full speed shows ~2x its wall time; the machine
is shared, so CPU time is the figure to compare), wall seconds, build distance evaluations, query distance
evaluations per query on the tree path, and whether the answers equal the sequential tree's bit for bit.
With ``--metric euclidean`` the same X is indexed under the Euclidean metric (no V).

    python benchmarks/build_study.py [--sizes 8192,32768] [--engines rust,gold] [--blocks 64,256,1024]
                                     [--mode perf] [--threads 2] [--metric euclidean]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

import covertreex as ct
from covertreex.counters import QueryCounter

sys.path.insert(0, str(Path(__file__).parent))
from bench_args import choice_list, header, int_list, positive_int  # noqa: E402

M, K, QUERIES = 512, 50, 1024


def problem(n: int, metric: str = "residual"):
    X = np.random.default_rng(42).normal(size=(n, 3))
    data = ct.residual_problem(X, m=M, seed=42) if metric == "residual" else X
    return data, np.random.default_rng(43).integers(0, n, QUERIES)


def run(engine: str, data, queries, build: str, block: int, mode: str, threads: int | None,
        metric: str = "residual") -> dict:
    options = {"build": build, "build_block": block, "threads": threads}
    if engine == "rust":
        options["mode"] = mode
    model = ct.CoverTree(engine=engine, metric=metric, path="auto", **options).fit(data)
    cpu, wall = time.process_time(), time.perf_counter()
    tree = model.tree
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    model = ct.CoverTree(engine=engine, metric=metric, path="tree", **options).use_tree(tree, data)
    result = model.query(indices=queries, k=K)
    evaluations = result.counters.per_query[:, QueryCounter.DISTANCE_EVALUATIONS]
    return {"cpu": cpu, "wall": wall, "build_evaluations": tree.build_evaluations,
            "query_evaluations": float(evaluations.mean()), "answers": result}


def _same(a, b) -> bool:
    """Same indices and the same distance bits."""
    return np.array_equal(a.indices, b.indices) and np.array_equal(
        a.distances.view(np.int64), b.distances.view(np.int64))


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int_list, default=(8192, 32768))
    parser.add_argument("--engines", type=choice_list(("rust", "gold")), default=("rust", "gold"))
    parser.add_argument("--blocks", type=int_list, default=(64, 256, 1024))
    parser.add_argument("--mode", default="perf", choices=("perf", "parity"))
    parser.add_argument("--threads", type=positive_int, default=None)
    parser.add_argument("--metric", default="residual", choices=("residual", "euclidean"))
    args = parser.parse_args(argv)
    warm = problem(512, args.metric)
    for engine in args.engines:  # compile (gold) / fault in (rust) outside the figures
        for build in ("sequential", "batch"):
            run(engine, warm[0], warm[1], build, 64, args.mode, args.threads, args.metric)
    header(f"threads {args.threads or 'all'}", f"rust mode {args.mode}", f"metric {args.metric}")
    print("| N | engine | build | block | build CPU s | build wall s | build evaluations | query evals/query "
          "| answers == sequential |")
    print("|---|---|---|---|---|---|---|---|---|")
    for n in args.sizes:
        data, queries = problem(n, args.metric)
        for engine in args.engines:
            reference = None
            for build, block in [("sequential", 1)] + [("batch", b) for b in args.blocks]:
                r = run(engine, data, queries, build, block, args.mode, args.threads, args.metric)
                if reference is None:
                    reference, same = r["answers"], "-"
                else:
                    same = "yes" if _same(r["answers"], reference) else "NO"
                block_cell = block if build == "batch" else "-"
                print(f"| {n:,} | {engine} | {build} | {block_cell} | {r['cpu']:.2f} | {r['wall']:.2f} "
                      f"| {r['build_evaluations']:,} | {r['query_evaluations']:,.0f} | {same} |", flush=True)
    print(f"load at end {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
