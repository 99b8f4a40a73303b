"""The gold workload (DESIGN section 6) through the gold and rust engines in parity mode, in one process.

Builds both trees and answers the same queries with each, asserts that trees, neighbours (distances bit
for bit) and work counters are identical, and prints a Markdown table of build and query seconds side by
side with the machine facts (docs/benchmarks.md, "Parity run"). Each engine is warmed up on a tiny
problem first, so Numba's compile/cache load is not timed.

    python benchmarks/parity_run.py                      # the gold workload (takes minutes: gold's build)
    python benchmarks/parity_run.py --n 4096 --m 64      # a quick smaller run
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import time
from datetime import datetime, timezone

import numpy as np

import covertreex as ct
from covertreex.telemetry import COMPARED_SECTIONS

ENGINES = ("gold", "rust")


def _cpu_model() -> str:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return platform.processor() or "unknown"
    return next((line.split(":", 1)[1].strip() for line in out.splitlines()
                 if line.startswith("Model name")), "unknown")


def _run(engine: str, problem, queries: np.ndarray, k: int) -> dict:
    tree = ct.CoverTree(engine=engine, metric="residual", mode="parity").fit(problem)
    result = tree.query(indices=queries, k=k)
    return {"tree": tree.tree, "build": tree.build_seconds, "result": result}


def _assert_identical(gold: dict, rust: dict) -> None:
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
    args = parser.parse_args(argv)

    X = np.random.default_rng(42).normal(size=(args.n, 3))
    start = time.perf_counter()
    problem = ct.residual_problem(X, kernel="rbf", lengthscale=1.0, variance=1.0, m=args.m, seed=42)
    v_seconds = time.perf_counter() - start
    queries = np.random.default_rng(43).integers(0, args.n, args.queries)

    warm = ct.residual_problem(X[:64], m=8, seed=0)
    for engine in ENGINES:
        _run(engine, warm, np.arange(8), 3)
    runs = {}
    for engine in ENGINES:
        runs[engine] = _run(engine, problem, queries, args.k)
        print(f"{engine}: build {runs[engine]['build']:.2f} s", file=sys.stderr, flush=True)
    _assert_identical(runs["gold"], runs["rust"])

    print(f"    command: python benchmarks/parity_run.py {' '.join(argv or sys.argv[1:])}".rstrip())
    print(f"    date: {datetime.now(timezone.utc).isoformat(timespec='seconds')}")
    print(f"    nproc: {len(os.sched_getaffinity(0))}, CPU: {_cpu_model()}")
    print(f"    workload: N={args.n} d=3 RBF s2=l=1 m={args.m} (seed 42) k={args.k} "
          f"queries={args.queries} (seed 43); V construction {v_seconds:.2f} s (shared)")
    print("    identical: trees, neighbour indices, distances (bitwise), counters and telemetry sections\n")
    print("| engine | build s | query s | queries/s | evaluations/query | build evaluations |")
    print("|---|---|---|---|---|---|")
    for engine, run in runs.items():
        result = run["result"]
        evaluations = result.counters.per_query[:, 0].mean()
        print(f"| {engine} | {run['build']:.3f} | {result.seconds:.3f} | {args.queries / result.seconds:.0f} "
              f"| {evaluations:.1f} | {run['tree'].build_evaluations} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
