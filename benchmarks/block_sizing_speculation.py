"""What ``block_sizing`` saves: rust perf mode's speculative evaluations on the gold workload's tree path
(docs/benchmarks.md, "Schedule knobs", items 3-5).

Perf mode gathers and evaluates a block's children ahead, against the k-th distance at the block's start;
children of nodes then pruned are discarded (telemetry ``speculation.discarded_evaluations``). Prints, per
schedule, evaluations, discarded evaluations, blocks and empty blocks per query and the call's process CPU
seconds (one shared tree; answers are the same in every row, checked against the first).

    python benchmarks/block_sizing_speculation.py
"""

from __future__ import annotations

import time

import numpy as np

import covertreex as ct
from covertreex.engines.schedule import Schedule

ROWS = {
    "off": {},
    "block_sizing": {"block_sizing": True},
    "level_cache": {"level_cache": True},
    "level_cache+block_sizing": {"level_cache": True, "block_sizing": True},
    "best_first+early_stop+level_cache": {"best_first": True, "early_stop": True, "level_cache": True},
}


def main() -> int:
    n = 32768
    X = np.random.default_rng(42).normal(size=(n, 3))
    problem = ct.residual_problem(X, kernel="rbf", lengthscale=1.0, variance=1.0, m=512, seed=42)
    indices = np.random.default_rng(43).integers(0, n, 1024)
    tree = ct.CoverTree(engine="rust", mode="perf", path="tree", metric="residual").fit(problem).tree
    off = dict.fromkeys(Schedule._fields, False)
    first = None
    print("| rust perf | evaluations/query | discarded/query | blocks/query | empty blocks/query | CPU s |")
    print("|---|---|---|---|---|---|")
    for label, knobs in ROWS.items():
        model = ct.CoverTree(engine="rust", mode="perf", path="tree", metric="residual", **(off | knobs))
        model.use_tree(tree, problem)
        cpu = time.process_time()
        result = model.query(indices=indices, k=50)
        cpu = time.process_time() - cpu
        first = first or result
        if not np.array_equal(result.indices, first.indices):
            raise AssertionError(f"{label}: answers differ")
        record = result.telemetry
        c, q = record["counters"], len(indices)
        cells = [c["distance_evaluations"], record["speculation"]["discarded_evaluations"], c["blocks"],
                 c["empty_blocks"]]
        print(f"| {label} | " + " | ".join(f"{v / q:.1f}" for v in cells) + f" | {cpu:.2f} |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
