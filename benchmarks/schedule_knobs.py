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
    python benchmarks/schedule_knobs.py gold --per-level     # the floor per level, beside best_first and off
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from datetime import datetime, timezone

import numpy as np
from numba import njit, prange

import covertreex as ct
from covertreex import datasets
from covertreex.counters import LevelCounter, QueryCounter
from covertreex.engines.gold.visit import slot
from covertreex.engines.schedule import Schedule
from covertreex.level_constants import DUPLICATE_LEVEL
from covertreex.levels import cover
from covertreex.metrics.kernels import can_prune, can_skip_child, distance
from pytest_pcct.gate.baselines import machine_facts

ENGINES = {"gold": {"engine": "gold"}, "rust": {"engine": "rust", "mode": "perf"}}
OFF = dict.fromkeys(Schedule._fields, False)
SCHEDULES = {"off": OFF} | {name: OFF | {name: True} for name in Schedule._fields} | {
    "all": dict.fromkeys(Schedule._fields, True)}
"""Every knob off (explicitly: some default on), each alone, all together; --schedules also takes
combinations such as predecessor_pruning+level_cache (the knobs named on, the others off)."""


def _schedule(label: str) -> dict:
    """The knobs of a --schedules label: a name of SCHEDULES or knob names joined by '+'."""
    if label in SCHEDULES:
        return SCHEDULES[label]
    names = label.split("+")
    if not set(names) <= set(Schedule._fields):
        raise KeyError(label)
    return OFF | dict.fromkeys(names, True)


@njit(cache=True)
def _floor_one(T, D, Q, row, q_index, entry, kth, cache, out):
    """The walk for one query when the k-th distance is `kth` from the start: a node is expanded iff the
    bound cannot prune it against kth, as in the walk, so the set evaluated is the least any order of
    expansion reaches (with `cache`, children the level cache skips against kth are not evaluated either).
    Adds, per counter row (slot) of the tree, the evaluations to out[slot, 0] and the nodes expanded (lower
    bound not above kth, so every exact schedule of this walk enters them) to out[slot, 1]."""
    root = T.root
    if T.subtree_min[root] >= entry:
        return
    n = T.levels.shape[0]
    stack_node = np.empty(n, dtype=np.int64)
    stack_dist = np.empty(n)
    stack_node[0], stack_dist[0] = root, distance(Q, row, q_index, D, root)
    out[0, 0] += 1
    top = 1
    while top > 0:
        top -= 1
        node, node_d = stack_node[top], stack_dist[top]
        if can_prune(D.metric, Q.slack, node_d, T.radius[node], kth):
            continue
        if T.child_offsets[node + 1] > T.child_offsets[node]:
            out[slot(T, T.levels[node]), 1] += 1
        for pos in range(T.child_offsets[node], T.child_offsets[node + 1]):
            c = T.children[pos]
            if T.subtree_min[c] >= entry:
                continue
            if cache and can_skip_child(D.metric, Q.slack, node_d, cover(T.levels[c]), T.radius[c], kth):
                continue
            if T.is_copy[c] and q_index != c and q_index != node:
                dc = node_d
            else:
                dc = distance(Q, row, q_index, D, c)
                out[slot(T, T.levels[c]), 0] += 1
            stack_node[top], stack_dist[top] = c, dc
            top += 1


@njit(cache=True, parallel=True)
def _floor(T, D, Q, rows, q_index, entry, kth, cache):
    """Per query, _floor_one's (n_slots, 2) counts."""
    out = np.zeros((rows.shape[0], T.n_slots, 2), dtype=np.int64)
    for q in prange(rows.shape[0]):
        _floor_one(T, D, Q, rows[q], q_index[q], entry[q], kth[q], cache, out[q])
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
        load, cpu = os.getloadavg()[0], time.process_time()
        result = model.query(k=self.k, **self.ask)
        cpu = time.process_time() - cpu
        same = (np.array_equal(result.indices, self.truth.indices)
                and np.array_equal(result.distances.view(np.int64), self.truth.distances.view(np.int64)))
        if not same:
            raise AssertionError(f"{engine} {schedule}: answers differ from the oracle")
        return result, (load + os.getloadavg()[0]) / 2, cpu

    def floor(self, cache: bool = False) -> np.ndarray:
        """Per query and counter row, the evaluations and the expanded nodes of the walk that knows the
        k-th distance from the start (predecessor pruning on, which prunes only what is provably
        ineligible; the level cache's skips too if `cache`): shape (queries, slots, 2)."""
        space = self.plain.space
        q = ct.CoverTree._queries(space, self.ask.get("queries"), self.ask.get("indices"),
                                  self.ask.get("predecessor", False))
        return _floor(self.plain.tree.arrays(), space.data, q.data, q.rows, q.dataset_index, q.limit,
                      self.truth.distances[:, -1], cache)


def _counter_sums(results) -> tuple[np.ndarray, np.ndarray]:
    """Per-query counters summed over queries and calls, and per-level counters summed over levels."""
    per_query = sum(r.counters.per_query.sum(axis=0) for r in results)
    per_level = sum(r.counters.per_level.sum(axis=0) for r in results)
    return per_query, per_level


def _row(label: str, runs: dict, n_queries: int) -> str:
    """One table row from {engine: [(result, load, cpu seconds), ...]}; every engine's counters must equal
    the first's."""
    results = {engine: [r for r, _, _ in triples] for engine, triples in runs.items()}
    first, *others = results
    for other in others:
        for a, b in zip(results[first], results[other], strict=True):
            if not (np.array_equal(a.counters.per_query, b.counters.per_query)
                    and np.array_equal(a.counters.per_level, b.counters.per_level)):
                raise AssertionError(f"{label}: {first} and {other} counters differ")
    pq, pl = _counter_sums(results[first])
    cells = [pq[QueryCounter.DISTANCE_EVALUATIONS], pq[QueryCounter.HEAP_PUSHES], pl[LevelCounter.FRONTIER],
             pq[QueryCounter.PRUNES]]
    timing = []
    for triples in runs.values():
        seconds = sum(r.seconds for r, _, _ in triples)
        cpu = sum(c for _, _, c in triples)
        load = np.mean([load for _, load, _ in triples])
        timing.append(f"{seconds:.2f} s, {n_queries / seconds:.0f} q/s, {cpu:.1f} s CPU (load {load:.1f})")
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


def _table(jobs: list[Job], engines: list[str], schedules: list[str]) -> None:
    """The table; its floor row only when every schedule ran."""
    n_queries = sum(job.truth.indices.shape[0] for job in jobs)
    print("| schedule | evaluations/query | heap pushes/query | frontier/query | prunes/query | "
          + " | ".join(engines) + " |")
    print("|---" * (5 + len(engines)) + "|")
    for label in schedules:
        runs = {engine: [job.run(engine, _schedule(label)) for job in jobs] for engine in engines}
        print(_row(label, runs, n_queries), flush=True)
    if set(SCHEDULES) <= set(schedules):
        for cache, label in ((False, "floor (k-th known from the start)"), (True, "floor with level_cache")):
            floor = sum(int(job.floor(cache)[:, :, 0].sum()) for job in jobs) / n_queries
            print(f"| {label} | {floor:.1f} |" + " |" * (3 + len(engines)))


def _per_level(job: Job, engines: list[str]) -> None:
    """Per tree level, the floor's evaluations and forced expansions next to best_first's and every knob
    off's evaluations (gold's, checked equal to rust's), per query: where the floor sits and why."""
    runs = {label: {engine: [job.run(engine, SCHEDULES[label])] for engine in engines}
            for label in ("off", "best_first")}
    for label, by_engine in runs.items():
        _row(label, by_engine, 1)  # checks gold's counters against rust's
    n_queries = job.truth.indices.shape[0]
    floor = job.floor().sum(axis=0) / n_queries
    walked = {label: by_engine[engines[0]][0][0].counters.per_level / n_queries
              for label, by_engine in runs.items()}
    tree = job.plain.tree.arrays()
    print("| level | nodes at level | expanded by the floor (lower bound <= k-th) | floor evaluations | "
          "best_first evaluations | off evaluations |")
    print("|---" * 6 + "|")
    for s in range(tree.n_slots):
        level = "duplicates" if s == tree.n_slots - 1 else str(tree.root_level - s)
        at = (np.sum(tree.levels == DUPLICATE_LEVEL) if s == tree.n_slots - 1
              else np.sum(tree.levels == tree.root_level - s))
        cells = [floor[s, 1], floor[s, 0], walked["best_first"][s, LevelCounter.DISTANCE_EVALUATIONS],
                 walked["off"][s, LevelCounter.DISTANCE_EVALUATIONS]]
        if at or any(cells):
            print(f"| {level} | {at} | " + " | ".join(f"{c:.1f}" for c in cells) + " |")
    total = [floor[:, 1].sum(), floor[:, 0].sum(),
             walked["best_first"][:, LevelCounter.DISTANCE_EVALUATIONS].sum(),
             walked["off"][:, LevelCounter.DISTANCE_EVALUATIONS].sum()]
    print(f"| all | {tree.levels.shape[0]} | " + " | ".join(f"{c:.1f}" for c in total) + " |")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("workload", choices=("gold", "vecchia", "fixture"))
    parser.add_argument("--n", type=int, default=32768)
    parser.add_argument("--m", type=int, default=512)
    parser.add_argument("--k", type=int, default=None, help="default: 50 (10 for the fixture)")
    parser.add_argument("--engines", default=",".join(ENGINES), help="default: gold,rust")
    parser.add_argument("--schedules", default=",".join(SCHEDULES),
                        help=f"default: all of {','.join(SCHEDULES)} (then the floor row too)")
    parser.add_argument("--per-level", action="store_true",
                        help="instead of the table: the floor per tree level next to best_first and off")
    args = parser.parse_args(argv)
    engines, schedules = args.engines.split(","), args.schedules.split(",")
    try:
        [_schedule(label) for label in schedules]
    except KeyError:
        schedules = []
    if not set(engines) <= set(ENGINES) or not schedules:
        parser.error(f"--engines takes {','.join(ENGINES)}; --schedules takes {','.join(SCHEDULES)} or "
                     "knob names joined by '+'")
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
    if "gold" in engines:  # compile / load Numba's caches before anything is timed (rust has none)
        jobs[0].run("gold", SCHEDULES["all"])
    if args.per_level:
        if len(jobs) != 1:
            parser.error("--per-level takes the gold or the vecchia workload")
        _per_level(jobs[0], engines)
    else:
        _table(jobs, engines, schedules)
    print(f"\n    answers equal to the brute oracle bit for bit in every row (recall 1.000000); "
          f"{' and '.join(engines)} counters equal; load average at end {os.getloadavg()[0]:.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
