"""Dense-path tile shapes (`dense_query_block` x `dense_point_block`) compared in one process, alternating.

Residual RBF, m = 512, X = default_rng(42).normal(size=(N, 3)) (DESIGN section 6). Each round fits a fresh
model per shape and times one query: the Vecchia job (every point among its predecessors) with rust in mode
perf, or with ``--gold-workload`` the 1,024 dataset-index queries default_rng(43).integers(0, N, 1024) with
rust (perf) and gold. Prints per shape the median and minimum wall seconds, the median process CPU seconds
and the SHA-1 of the answers (indices and distance bits), which must be the same for every shape.

    python benchmarks/dense_blocks.py --n 32768 --shapes 256x2048,512x2048 --runs 3
    python benchmarks/dense_blocks.py --n 32768 --shapes 256x2048,512x2048 --runs 5 --gold-workload
"""

from __future__ import annotations

import argparse
import hashlib
import os
import statistics
import time

import numpy as np
from bench_args import header, positive_int

import covertreex as ct


def shapes_arg(text: str) -> list[tuple[int, int]]:
    """Comma-separated QUERIESxPOINTS tile shapes of positive integers, e.g. ``256x2048,512x2048``."""
    try:
        shapes = [tuple(positive_int(side) for side in shape.split("x")) for shape in text.split(",")]
    except argparse.ArgumentTypeError:
        shapes = []
    if not shapes or any(len(shape) != 2 for shape in shapes):
        raise argparse.ArgumentTypeError(
            f"expected QUERIESxPOINTS shapes such as 256x2048,512x2048, got {text!r}")
    return shapes


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=positive_int, default=32768)
    parser.add_argument("--shapes", type=shapes_arg, default=[(256, 2048), (512, 2048)])
    parser.add_argument("--runs", type=positive_int, default=3)
    parser.add_argument("--gold-workload", action="store_true")
    args = parser.parse_args(argv)
    problem = ct.residual_problem(np.random.default_rng(42).normal(size=(args.n, 3)), m=512, seed=42)
    if args.gold_workload:
        query = {"indices": np.random.default_rng(43).integers(0, args.n, 1024)}
        engines = (("rust", {"mode": "perf"}), ("gold", {}))
    else:
        query, engines = {"predecessor": True}, (("rust", {"mode": "perf"}),)
    header()
    runs: dict[tuple, list] = {}
    for _ in range(args.runs):
        for engine, options in engines:
            for queries, points in args.shapes:
                shape = {"dense_query_block": queries, "dense_point_block": points}
                model = ct.CoverTree(engine=engine, metric="residual", path="dense", **shape,
                                     **options).fit(problem)
                wall, cpu = time.perf_counter(), time.process_time()
                result = model.query(k=50, **query)
                wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
                answer = hashlib.sha1(result.indices.tobytes() + result.distances.tobytes()).hexdigest()[:10]
                runs.setdefault((engine, queries, points), []).append((wall, cpu, answer))
    for (engine, queries, points), rows in runs.items():
        walls, cpus = [r[0] for r in rows], [r[1] for r in rows]
        print(f"{engine} {queries}x{points}: wall median {statistics.median(walls):.3f} "
              f"min {min(walls):.3f}, CPU median {statistics.median(cpus):.3f}, "
              f"answers {sorted({r[2] for r in rows})}")
    print(f"load at end {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
