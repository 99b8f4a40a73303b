"""The gold workload (DESIGN section 6) through the gold and rust engines in parity mode, in one process.

Builds both trees and answers the same queries with each, asserts that trees, neighbours (distances bit
for bit) and work counters are identical, and prints a Markdown table of build and query seconds side by
side with the machine facts (docs/benchmarks.md, "Parity run"). CPU seconds (this process, all threads)
are printed next to wall seconds: on a shared machine they are the steadier figure. Each engine is warmed
up on a tiny problem first, so Numba's compile/cache load is not timed. ``--with-perf`` adds the rust
engine in perf mode as a third row, held to the same identity checks.

    python benchmarks/parity_run.py                      # the gold workload (takes minutes: gold's build)
    python benchmarks/parity_run.py --n 4096 --m 64      # a quick smaller run
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from datetime import datetime, timezone

import numpy as np
from bench_args import cpu_model

import covertreex as ct
from covertreex.telemetry import COMPARED_SECTIONS

RUNS = {"gold": ("gold", "parity"), "rust": ("rust", "parity"), "rust perf": ("rust", "perf")}


def _run(label: str, problem, queries: np.ndarray, k: int) -> dict:
    engine, mode = RUNS[label]
    cpu = time.process_time()
    # The tree path: the default `auto` answers this workload on the dense path, with no tree to compare.
    tree = ct.CoverTree(engine=engine, metric="residual", mode=mode, path="tree").fit(problem)
    build_cpu, cpu = time.process_time() - cpu, time.process_time()
    result = tree.query(indices=queries, k=k)
    query_cpu = time.process_time() - cpu
    return {"tree": tree.tree, "build": tree.build_seconds, "result": result, "build_cpu": build_cpu,
            "query_cpu": query_cpu}


def _assert_identical(gold: dict, rust: dict) -> None:
    """Same tree, neighbours (distance bits), counter arrays and compared telemetry sections."""
    assert rust["tree"].same_as(gold["tree"]), "trees differ"
    assert rust["tree"].build_evaluations == gold["tree"].build_evaluations, "build evaluations differ"
    a, b = rust["result"], gold["result"]
    assert np.array_equal(a.indices, b.indices), "neighbour indices differ"
    assert np.array_equal(a.distances.view(np.int64), b.distances.view(np.int64)), "distances differ"
    assert np.array_equal(a.counters.per_query, b.counters.per_query), "per-query counters differ"
    assert np.array_equal(a.counters.per_level, b.counters.per_level), "per-level counters differ"
    for section in COMPARED_SECTIONS:
        assert a.telemetry[section] == b.telemetry[section], f"telemetry {section!r} differs"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=32768)
    parser.add_argument("--m", type=int, default=512)
    parser.add_argument("--k", type=int, default=50)
    parser.add_argument("--queries", type=int, default=1024)
    parser.add_argument("--with-perf", action="store_true", help="also run the rust engine in perf mode")
    args = parser.parse_args(argv)
    labels = ["gold", "rust"] + (["rust perf"] if args.with_perf else [])
    load_before = os.getloadavg()[0]

    X = np.random.default_rng(42).normal(size=(args.n, 3))
    start = time.perf_counter()
    problem = ct.residual_problem(X, kernel="rbf", lengthscale=1.0, variance=1.0, m=args.m, seed=42)
    v_seconds = time.perf_counter() - start
    queries = np.random.default_rng(43).integers(0, args.n, args.queries)

    warm = ct.residual_problem(X[:64], m=8, seed=0)
    for label in labels:
        _run(label, warm, np.arange(8), 3)
    runs = {}
    for label in labels:
        runs[label] = _run(label, problem, queries, args.k)
        print(f"{label}: build {runs[label]['build']:.2f} s", file=sys.stderr, flush=True)
    for label in labels[1:]:
        _assert_identical(runs["gold"], runs[label])

    print(f"    command: python benchmarks/parity_run.py {' '.join(argv or sys.argv[1:])}".rstrip())
    print(f"    date: {datetime.now(timezone.utc).isoformat(timespec='seconds')}")
    print(f"    nproc: {len(os.sched_getaffinity(0))}, CPU: {cpu_model()}, load average "
          f"{load_before:.1f} at start, {os.getloadavg()[0]:.1f} at end")
    print(f"    workload: N={args.n} d=3 RBF s2=l=1 m={args.m} (seed 42) k={args.k} "
          f"queries={args.queries} (seed 43); V construction {v_seconds:.2f} s (shared)")
    print(f"    identical to gold ({', '.join(labels[1:])}): trees, neighbour indices, distances (bitwise), "
          "counters and telemetry sections\n")
    print("| engine | build s | build CPU s | query s | query CPU s | queries/s | evaluations/query "
          "| build evaluations |")
    print("|---|---|---|---|---|---|---|---|")
    for label, run in runs.items():
        result = run["result"]
        evaluations = result.counters.per_query[:, 0].mean()
        print(f"| {label} | {run['build']:.2f} | {run['build_cpu']:.2f} | {result.seconds:.2f} "
              f"| {run['query_cpu']:.2f} | {args.queries / result.seconds:.0f} | {evaluations:.1f} "
              f"| {run['tree'].build_evaluations} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
