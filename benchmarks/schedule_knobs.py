"""The schedule knobs (covertreex.engines.schedule) against every knob off, on one workload
(docs/benchmarks.md, "Schedule knobs").

For each schedule — every knob off, each knob alone, all together — the tree path answers the workload with
gold and with rust (perf mode) on one shared tree; answers must equal the oracle's bit for bit (recall
1.000000) and gold's counters must equal rust's. Prints one Markdown row per schedule: distance evaluations,
heap pushes, frontier entries and prunes per query (deterministic), then seconds and queries/s per engine
with the load average around each timed call (the machine is shared). The last row, "floor", is the walk
given the true k-th distance from the start: no schedule of this walk can prune more, so it bounds what
any knob can save.

    python benchmarks/schedule_knobs.py gold                 # the gold workload (1,024 queries, N = 32,768)
    python benchmarks/schedule_knobs.py vecchia --n 8192     # every point against its predecessors
    python benchmarks/schedule_knobs.py fixture              # the parity fixture, summed
"""

from __future__ import annotations

import argparse
import os
import sys
from datetime import datetime, timezone

import numpy as np
from numba import njit, prange

import covertreex as ct
from covertreex import datasets
from covertreex.counters import LevelCounter, QueryCounter
from covertreex.engines.schedule import Schedule
from covertreex.metrics.kernels import can_prune, distance
from pytest_pcct.gate.baselines import machine_facts

ENGINES = {"gold": {"engine": "gold"}, "rust": {"engine": "rust", "mode": "perf"}}
SCHEDULES = {"off": {}} | {name: {name: True} for name in Schedule._fields} | {
    "all": dict.fromkeys(Schedule._fields, True)}


@njit(cache=True)
def _floor_one(T, D, Q, row, q_index, entry, kth):
    """Evaluations of the walk for one query when the k-th distance is `kth` from the start: a node is
    expanded iff the bound cannot prune it against kth, as in the walk, so the set evaluated is the least
    any order of expansion reaches."""
    root = T.root
    if T.subtree_min[root] >= entry:
        return 0
    n = T.levels.shape[0]
    stack_node = np.empty(n, dtype=np.int64)
    stack_dist = np.empty(n)
    stack_node[0], stack_dist[0] = root, distance(Q, row, q_index, D, root)
    top, evaluations = 1, 1
    while top > 0:
        top -= 1
        node, node_d = stack_node[top], stack_dist[top]
        if can_prune(D.metric, Q.slack, node_d, T.radius[node], kth):
            continue
        for pos in range(T.child_offsets[node], T.child_offsets[node + 1]):
            c = T.children[pos]
            if T.subtree_min[c] >= entry:
                continue
            if T.is_copy[c] and q_index != c and q_index != node:
                dc = node_d
            else:
                dc = distance(Q, row, q_index, D, c)
                evaluations += 1
            stack_node[top], stack_dist[top] = c, dc
            top += 1
    return evaluations


@njit(cache=True, parallel=True)
def _floor(T, D, Q, rows, q_index, entry, kth):
    out = np.empty(rows.shape[0], dtype=np.int64)
    for q in prange(rows.shape[0]):
        out[q] = _floor_one(T, D, Q, rows[q], q_index[q], entry[q], kth[q])
    return out


class Job:
    """One asked question: a fitted space and tree, its queries, k, and the oracle's answer."""

    def __init__(self, metric, data, ask: dict, k: int):
        self.ask, self.k = ask, k
        self.plain = ct.CoverTree(engine="rust", mode="perf", path="tree", metric=metric).fit(data)
        self.data, self.metric = data, metric
        self.truth = ct.CoverTree(engine="brute", metric=metric).fit(data).query(k=k, **ask)

    def run(self, engine: str, schedule: dict):
        model = ct.CoverTree(path="tree", metric=self.metric, **ENGINES[engine], **schedule)
        model.use_tree(self.plain.tree, self.data)
        load = os.getloadavg()[0]
        result = model.query(k=self.k, **self.ask)
        same = (np.array_equal(result.indices, self.truth.indices)
                and np.array_equal(result.distances.view(np.int64), self.truth.distances.view(np.int64)))
        if not same:
            raise AssertionError(f"{engine} {schedule}: answers differ from the oracle")
        return result, (load + os.getloadavg()[0]) / 2

    def floor(self) -> np.ndarray:
        """Per query, the evaluations of the walk that knows the k-th distance from the start (predecessor
        pruning on, which prunes only what is provably ineligible)."""
        space = self.plain.space
        q = ct.CoverTree._queries(space, self.ask.get("queries"), self.ask.get("indices"),
                                  self.ask.get("predecessor", False))
        return _floor(self.plain.tree.arrays(), space.data, q.data, q.rows, q.dataset_index, q.limit,
                      self.truth.distances[:, -1])


def _counter_sums(results) -> tuple[np.ndarray, np.ndarray]:
    """Per-query counters summed over queries and calls, and per-level counters summed over levels."""
    per_query = sum(r.counters.per_query.sum(axis=0) for r in results)
    per_level = sum(r.counters.per_level.sum(axis=0) for r in results)
    return per_query, per_level


def _row(label: str, runs: dict, n_queries: int) -> str:
    """One table row from {engine: [(result, load), ...]}; gold's and rust's counters must be equal."""
    results = {engine: [r for r, _ in pairs] for engine, pairs in runs.items()}
    for a, b in zip(results["gold"], results["rust"], strict=True):
        if not (np.array_equal(a.counters.per_query, b.counters.per_query)
                and np.array_equal(a.counters.per_level, b.counters.per_level)):
            raise AssertionError(f"{label}: gold and rust counters differ")
    pq, pl = _counter_sums(results["gold"])
    cells = [pq[QueryCounter.DISTANCE_EVALUATIONS], pq[QueryCounter.HEAP_PUSHES], pl[LevelCounter.FRONTIER],
             pq[QueryCounter.PRUNES]]
    timing = []
    for pairs in runs.values():
        seconds = sum(r.seconds for r, _ in pairs)
        load = np.mean([load for _, load in pairs])
        timing.append(f"{seconds:.2f} s, {n_queries / seconds:.0f} q/s (load {load:.1f})")
    return (f"| {label} | " + " | ".join(f"{c / n_queries:.1f}" for c in cells) + " | " + " | ".join(timing)
            + " |")


def _gold_workload(n: int, m: int):
    """DESIGN section 6's gold workload at size n: 1,024 indexed queries (seed 43), k = 50."""
    X = np.random.default_rng(42).normal(size=(n, 3))
    problem = ct.residual_problem(X, kernel="rbf", lengthscale=1.0, variance=1.0, m=m, seed=42)
    return problem


def _fixture_jobs(k: int) -> list[Job]:
    """The parity fixture (tests/parity/test_rust_parity.py): 1,000 points, 64 queries, dimensions
    1, 2, 3, 8, six seeds, Euclidean and residual RBF / Matern 5/2, each asked as drawn and in predecessor
    mode."""
    kinds = ("gaussian", "lattice", "duplicates", "clustered")
    jobs = []
    for variant in ("euclidean", "rbf", "matern52"):
        for d in (1, 2, 3, 8):
            for seed in range(6):
                kind = kinds[(seed + d) % len(kinds)]
                X = datasets.make(kind, 1000, d, seed).points
                metric, data = "euclidean", X
                if variant != "euclidean":
                    lengthscale = 0.8 if seed % 2 else np.linspace(0.6, 1.4, d)
                    metric, data = "residual", ct.residual_problem(
                        X, kernel=variant, lengthscale=lengthscale, variance=1.2, m=32, seed=seed)
                if seed % 2:
                    ask = {"queries": datasets.make(kind, 64, d, seed + 100).points}
                else:
                    ask = {"indices": np.random.default_rng(seed).integers(0, 1000, 64)}
                jobs += [Job(metric, data, ask, k), Job(metric, data, {"predecessor": True}, k)]
    return jobs


def _table(jobs: list[Job]) -> None:
    n_queries = sum(job.truth.indices.shape[0] for job in jobs)
    print("| schedule | evaluations/query | heap pushes/query | frontier/query | prunes/query | "
          + " | ".join(ENGINES) + " |")
    print("|---" * (5 + len(ENGINES)) + "|")
    for label, schedule in SCHEDULES.items():
        runs = {engine: [job.run(engine, schedule) for job in jobs] for engine in ENGINES}
        print(_row(label, runs, n_queries), flush=True)
    floor = sum(int(job.floor().sum()) for job in jobs) / n_queries
    print(f"| floor (k-th known from the start) | {floor:.1f} |" + " |" * (3 + len(ENGINES)))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("workload", choices=("gold", "vecchia", "fixture"))
    parser.add_argument("--n", type=int, default=32768)
    parser.add_argument("--m", type=int, default=512)
    parser.add_argument("--k", type=int, default=None, help="default: 50 (10 for the fixture)")
    args = parser.parse_args(argv)
    facts = machine_facts()
    print(f"    command: python benchmarks/schedule_knobs.py {' '.join(argv or sys.argv[1:])}")
    print(f"    date: {datetime.now(timezone.utc).isoformat(timespec='seconds')}; nproc: "
          f"{facts['cpu_count']}, CPU: {facts['cpu_model']}; load average at start {os.getloadavg()[0]:.1f}")
    if args.workload == "fixture":
        jobs = _fixture_jobs(args.k or 10)
    else:
        problem = _gold_workload(args.n, args.m)
        ask = ({"predecessor": True} if args.workload == "vecchia"
               else {"indices": np.random.default_rng(43).integers(0, args.n, 1024)})
        jobs = [Job("residual", problem, ask, args.k or 50)]
    for engine in ENGINES:  # compile / load caches before anything is timed
        jobs[0].run(engine, SCHEDULES["all"])
    _table(jobs)
    print(f"\n    answers equal to the brute oracle bit for bit in every row (recall 1.000000); gold and "
          f"rust counters equal; load average at end {os.getloadavg()[0]:.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
