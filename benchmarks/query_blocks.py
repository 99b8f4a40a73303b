"""Query blocks (knob ``query_block``) against the per-query walk, in one process, on one tree.

The gold-workload shape (residual RBF, m = 512, k = 50, X = default_rng(42).normal(size=(N, 3)); 1,024
dataset-index queries default_rng(43).integers(0, N, 1024)) or, with ``--vecchia``, every point against its
predecessors. One rust tree (perf mode, batch build) is built once; the tree path then answers with each
block size in turn (the per-query walk, block 1, always, first: every other block size is checked against
its answer), ``--runs`` rounds alternating, and (gold workload) the dense path and the NumPy f64
reference of benchmarks/dense_vs_peers.py run in the same process. Process CPU seconds (every thread's) are
the figure to compare on a shared machine; wall seconds are listed. Every block size must give the per-query
walk's indices, distance bits and counters (checked here).

    python benchmarks/query_blocks.py [--n 32768] [--vecchia] [--blocks 1,16,64,256] [--runs 2]
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
from bench_args import header, int_list, positive_int  # noqa: E402
from dense_vs_peers import QUERIES, K, M, numpy_reference  # noqa: E402


def _cpu_timed(fn):
    """(value, process CPU seconds, wall seconds) of fn()."""
    cpu, wall = time.process_time(), time.perf_counter()
    value = fn()
    return value, time.process_time() - cpu, time.perf_counter() - wall


def _same(a, b) -> bool:
    return (np.array_equal(a.indices, b.indices) and np.array_equal(a.distances.view(np.int64),
            b.distances.view(np.int64)) and np.array_equal(a.counters.per_query, b.counters.per_query)
            and np.array_equal(a.counters.per_level, b.counters.per_level))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=positive_int, default=32_768)
    parser.add_argument("--vecchia", action="store_true", help="all points against their predecessors")
    parser.add_argument("--blocks", type=int_list, default=(1, 16, 64, 256),
                        help="query_block values; 1, the per-query walk, always runs as the reference")
    parser.add_argument("--runs", type=positive_int, default=2,
                        help="rounds over the block sizes (alternating)")
    parser.add_argument("--no-dense", action="store_true", help="skip the dense path and NumPy reference")
    args = parser.parse_args(argv)
    blocks = [1, *(b for b in dict.fromkeys(args.blocks) if b != 1)]
    header()
    X = np.random.default_rng(42).normal(size=(args.n, 3))
    problem = ct.residual_problem(X, m=M, seed=42)
    if args.vecchia:
        query = {"predecessor": True}
    else:
        query = {"indices": np.random.default_rng(43).integers(0, args.n, QUERIES)}
    options = {"engine": "rust", "metric": "residual", "mode": "perf", "path": "tree"}
    tree = ct.CoverTree(build="batch", **options).fit(problem).tree
    models = {b: ct.CoverTree(query_block=b, **options).use_tree(tree, problem) for b in blocks}
    rows = {b: [] for b in blocks}
    extra = {}
    reference = None
    for _ in range(args.runs):
        for b in blocks:
            result, cpu, wall = _cpu_timed(lambda b=b: models[b].query(k=K, **query))
            reference = reference or result
            assert _same(result, reference), f"query_block {b} differs from the per-query walk"
            rows[b].append((cpu, wall, result))
        if not args.vecchia and not args.no_dense:
            dense = ct.CoverTree(engine="rust", metric="residual", mode="perf", path="dense").fit(problem)
            result, cpu, wall = _cpu_timed(lambda dense=dense: dense.query(k=K, **query))
            assert np.array_equal(result.indices, reference.indices)
            extra.setdefault("rust dense path", []).append((cpu, wall))
            _, cpu, wall = _cpu_timed(lambda: numpy_reference(problem, query["indices"], K))
            extra.setdefault("numpy f64 dense reference", []).append((cpu, wall))
    n_q = reference.indices.shape[0]
    print(f"load average at the end {os.getloadavg()[0]:.2f}")
    print("| system | CPU s (each run) | wall s (each run) | evals/query | discarded/query |")
    print("|---|---|---|---|---|")
    for b in blocks:
        cpu = ", ".join(f"{c:.2f}" for c, _, _ in rows[b])
        wall = ", ".join(f"{w:.2f}" for _, w, _ in rows[b])
        result = rows[b][0][2]
        evals = result.counters.per_query[:, 0].sum() / n_q
        discarded = result.counters.extra["discarded_evaluations"] / n_q
        name = "tree, per-query walk" if b == 1 else f"tree, query_block {b}"
        print(f"| {name} | {cpu} | {wall} | {evals:.1f} | {discarded:.1f} |")
    for name, runs in extra.items():
        cpu = ", ".join(f"{c:.2f}" for c, _ in runs)
        wall = ", ".join(f"{w:.2f}" for _, w in runs)
        print(f"| {name} | {cpu} | {wall} | | |")


if __name__ == "__main__":
    main()
