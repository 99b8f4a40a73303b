"""Issue 13's target: the Vecchia job with maximin ordering against the predecessor query alone, one process.

X = ``default_rng(42).normal(size=(N, 3))``, RBF, m = 512 inducing points (seed 42), k = 50 (the gold
workload's data). Rows alternate, so that both sides see the same machine load:

* ``vecchia_neighbors(X, 50, ordering="maximin", engine=ENGINE)``: the whole wait (V, the maximin ordering
  and every row's neighbours; with the rust engine the ordering and the neighbours are one fused pass on the
  f64 GEMM, except where the engine takes the split screen ('auto', rust in perf mode, at these sizes): the
  pass runs on the split, and above the int8 kernel's ``covertreex.vecchia.SPLIT_FUSED_MAX_K`` it orders
  alone there and the predecessor query finds the rows);
* the predecessor query alone on the data in that ordering, on the same engine: ``CoverTree(engine=ENGINE,
  'auto': the default).fit(problem in that order).query(k=50, predecessor=True)`` (V is built beforehand
  and not counted; the split screen, where the engine takes it, is built within the query); its neighbours
  are checked to equal the job's, bit for bit;
* the same job with that ordering given: ``vecchia_neighbors(X, 50, ordering=<the maximin permutation>)``,
  the whole wait a user has without the ordering step (V, the permutation and the predecessor query);
  its neighbours are checked too.

The header gives the machine's measured f64 GEMM rate (NumPy's BLAS, benchmarks/dense_vs_peers.py) and
the GEMM floor of the search it implies (N^2 / 2 pairs of m-term dot products); each line gives the job's
wall time over that floor. Each line: process CPU seconds (``time.process_time``: this machine is shared,
so wall time mostly measures the other jobs), wall seconds, the load average, and the job's times over the
query's.

    python benchmarks/maximin_vs_predecessor.py --n 8192 32768 --repeats 2
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from functools import partial
from pathlib import Path

import numpy as np

import covertreex as ct
from covertreex.vecchia import permuted_problem

sys.path.insert(0, str(Path(__file__).parent))
from bench_args import header, positive_int  # noqa: E402
from dense_vs_peers import dgemm_rate  # noqa: E402

K, M, SEED = 50, 512, 42


def timed(work):
    cpu, wall = time.process_time(), time.perf_counter()
    result = work()
    return result, time.process_time() - cpu, time.perf_counter() - wall


def predecessors(data, engine: str):
    """The predecessor query alone: every point's k nearest earlier points, on `engine` as the job runs it
    ('auto': the default CoverTree, rust in perf mode, which takes the split screen where it pays)."""
    tree = ct.CoverTree(engine=None if engine == "auto" else engine, metric="residual")
    return tree.fit(data).query(k=K, predecessor=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=positive_int, nargs="+", default=[8192, 32768])
    parser.add_argument("--repeats", type=positive_int, default=2)
    parser.add_argument("--engine", default="auto",
                        help="auto: the library's default (rust perf mode, the split where it pays); "
                             "rust: parity mode, the f64 fused pass (this script's default until 2026-12-06)")
    args = parser.parse_args()
    rate = dgemm_rate()
    header(f"engine {args.engine}", f"measured dgemm {rate:.1f} GFLOP/s")
    print("| N | run | job CPU s | job wall s | ordering wall s | query CPU s | query wall s | "
          "job / query (CPU) | job / query (wall) | job, ordering given: wall s | job / that (wall) | "
          "GEMM floor s | job / floor | load before, after |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for n in args.n:
        floor = float(n) * n * M / rate / 1e9
        X = np.random.default_rng(SEED).normal(size=(n, 3))
        problem = ct.residual_problem(X, m=M, seed=SEED)
        for run in range(args.repeats):
            load = os.getloadavg()[0]
            job, job_cpu, job_wall = timed(partial(ct.vecchia_neighbors, X, K, ordering="maximin", m=M,
                                                   seed=SEED, engine=args.engine))
            ordered = permuted_problem(problem, job.ordering)
            query, query_cpu, query_wall = timed(partial(predecessors, ordered, args.engine))
            assert query.indices.tobytes() == job.neighbors.tobytes()
            assert query.distances.tobytes() == job.distances.tobytes()
            given, _, given_wall = timed(partial(ct.vecchia_neighbors, X, K, ordering=job.ordering, m=M,
                                                 seed=SEED, engine=args.engine))
            assert given.neighbors.tobytes() == job.neighbors.tobytes()
            assert given.distances.tobytes() == job.distances.tobytes()
            print(f"| {n:,} | {run + 1} | {job_cpu:.2f} | {job_wall:.2f} | {job.ordering_seconds:.2f} | "
                  f"{query_cpu:.2f} | {query_wall:.2f} | {job_cpu / query_cpu:.2f}x | "
                  f"{job_wall / query_wall:.2f}x | {given_wall:.2f} | {job_wall / given_wall:.2f}x | "
                  f"{floor:.2f} | {job_wall / floor:.2f}x | {load:.1f}, {os.getloadavg()[0]:.1f} |",
                  flush=True)


if __name__ == "__main__":
    main()
