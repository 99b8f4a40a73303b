"""How each path scales with N: seconds, work and peak memory, in fresh processes (opt-in, long).

Two workloads under the residual metric (RBF, lengthscale 1, variance 1, m = 512, k = 50, Gaussian points in
3-D, DESIGN section 6): the gold-workload shape (1,024 dataset-index queries) at N in {32,768, 131,072,
524,288, 1,048,576}, and Vecchia all-points (every point among its predecessors) at N in {32,768, 131,072,
262,144}. For each N it runs the rust engine (mode perf) on each path (tree; dense, with the f64 GEMM
screen; split, the dense path with the split screen; auto, every default: SYSTEM_OPTIONS) and the NumPy f64
reference of benchmarks/dense_vs_peers.py, every run in its own process so that its peak RSS is its own,
and reports: seconds (V, fit + build, query), canonical distance evaluations per query, the fraction of
the eligible points evaluated, peak RSS and its ratio to the bytes of V, and recall against the NumPy
reference.

A run is skipped when the same system at the previous size, scaled by the workload's growth (N for
queries, N^2 for Vecchia all-points), predicts more than --budget seconds; skipped runs are listed. Prints
a markdown table (with the command, nproc, CPU model, date and load) and writes a log-log PNG of seconds
vs N per system (matplotlib: the `benchmark` extra).

    python benchmarks/scaling.py [--sizes 32768,131072] [--vecchia-sizes 32768] [--budget 900]
                                 [--png docs/scaling.png] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

import covertreex as ct
from covertreex.counters import QueryCounter

sys.path.insert(0, str(Path(__file__).parent))
from bench_args import choice_list, header, int_list, require  # noqa: E402
from dense_vs_peers import (  # noqa: E402
    numpy_reference,
    numpy_vecchia_reference,
    recall,
    run_engine,
)

DIMS, M, K, QUERIES = 3, 512, 50, 1024
SIZES = (32_768, 131_072, 524_288, 1_048_576)
VECCHIA_SIZES = (32_768, 131_072, 262_144)
SYSTEMS = ("numpy", "tree", "dense", "split", "auto")
SYSTEM_OPTIONS = {
    "tree": {"path": "tree"},
    "dense": {"path": "dense", "dense_screen": "f64"},
    "split": {"path": "dense", "dense_screen": "split"},
    "auto": {"path": "auto"},
}
"""The engine's options per system: `dense` is the dense path with the f64 GEMM screen, `split` the dense
path with the split screen (covertreex.split_screen, its build in the query), `auto` every default (the
path and the screen chosen per batch)."""
GROWTH = {"query": 1, "vecchia": 2}
"""Exponent of N in each workload's dense work: a skipped size is predicted from the previous one."""
REFERENCE_BYTES = 1 << 28
"""The NumPy reference's blocks hold about this many bytes per intermediate (its memory is not the
engine's; the block only keeps it from swapping at large N)."""


def run_one(workload: str, n: int, system: str, answers: Path) -> dict:
    """One system on one workload in this process: the figures of the table, answers saved to `answers`.
    A small problem runs first, so that loading compiled kernels is not part of the figures."""
    for size in (256, n):
        X = np.random.default_rng(42).normal(size=(size, DIMS))
        start = time.perf_counter()
        problem = ct.residual_problem(X, m=min(M, size), seed=42)
        v_seconds = time.perf_counter() - start
        query = ({"predecessor": True} if workload == "vecchia"
                 else {"indices": np.random.default_rng(43).integers(0, size, QUERIES)})
        if system == "numpy":
            block = max(1, REFERENCE_BYTES // (8 * size))
            reference = numpy_vecchia_reference if workload == "vecchia" else numpy_reference
            args = (problem, K) if workload == "vecchia" else (problem, query["indices"], K)
            indices, query_seconds = reference(*args, block=block)
            fit_seconds, path, evaluations = 0.0, "numpy", None
        else:
            # mode perf: the default engine's mode (the tree's tiled build and query blocks need it)
            options = SYSTEM_OPTIONS[system]
            result, fit_seconds, query_seconds = run_engine("rust", problem, K, query, mode="perf",
                                                            **options)
            indices, path = result.indices, result.counters.extra.get("path")
            evaluations = float(result.counters.per_query[:, QueryCounter.DISTANCE_EVALUATIONS].mean())
    np.save(answers, indices)
    eligible = (n - 1) / 2 if workload == "vecchia" else n
    return {"v_seconds": v_seconds, "v_bytes": problem.V.nbytes, "fit_seconds": fit_seconds,
            "query_seconds": query_seconds, "path": path, "evaluations_per_query": evaluations,
            "fraction_evaluated": None if evaluations is None else evaluations / eligible,
            "peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024}


def in_child(workload: str, n: int, system: str, answers: Path) -> dict:
    """run_one in a fresh interpreter (its peak RSS is then this run's alone)."""
    spec = json.dumps({"workload": workload, "n": n, "system": system, "answers": str(answers)})
    done = subprocess.run([sys.executable, __file__, "--child", spec], capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"{workload} N={n} {system} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.splitlines()[-1])


def study(workload: str, sizes, systems, budget: float, scratch: Path, bar) -> tuple[list, list]:
    """Every (N, system) of one workload that the budget allows: (rows, skipped descriptions)."""
    rows, skipped, last = [], [], {}
    systems = sorted(systems, key=lambda system: system != "numpy")  # the reference first, for recall
    for n in sizes:
        reference = None
        for system in systems:
            previous = last.get(system)
            if previous is not None:
                predicted = previous[1] * (n / previous[0]) ** GROWTH[workload]
                if predicted > budget:
                    skipped.append(f"{workload} N={n} {system} (predicted {predicted:.0f} s)")
                    bar.update()
                    continue
            answers = scratch / f"{workload}-{n}-{system}.npy"
            figures = in_child(workload, n, system, answers)
            total = figures["v_seconds"] + figures["fit_seconds"] + figures["query_seconds"]
            last[system] = (n, total)
            found = np.load(answers)
            if system == "numpy":
                reference = found
            figures.update(workload=workload, n=n, system=system, whole_seconds=total,
                           recall=None if reference is None else recall(found, reference))
            rows.append(figures)
            bar.update()
    return rows, skipped


def table(rows: list) -> str:
    lines = ["| workload | N | system (path) | V s | fit + build s | query s | whole s | evals/query | "
             "fraction evaluated | peak RSS GiB | RSS / V | recall vs NumPy |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        evals = r.get("evaluations_per_query")
        fraction = r.get("fraction_evaluated")
        lines.append(
            f"| {r['workload']} | {r['n']} | {r['system']} ({r['path']}) | {r['v_seconds']:.2f} | "
            f"{r['fit_seconds']:.2f} | {r['query_seconds']:.2f} | {r['whole_seconds']:.2f} | "
            f"{'' if evals is None else f'{evals:.1f}'} | "
            f"{'' if fraction is None else f'{fraction:.3f}'} | {r['peak_rss_bytes'] / 2**30:.2f} | "
            f"{r['peak_rss_bytes'] / r['v_bytes']:.2f} | "
            f"{'' if r['recall'] is None else format(r['recall'], '.6f')} |")
    return "\n".join(lines)


def plot(rows: list, png: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    workloads = sorted({r["workload"] for r in rows})
    fig, axes = plt.subplots(1, len(workloads), figsize=(6 * len(workloads), 4.5), squeeze=False)
    for ax, workload in zip(axes[0], workloads, strict=True):
        for system in SYSTEMS:
            mine = [r for r in rows if r["workload"] == workload and r["system"] == system]
            if not mine:
                continue
            n = [r["n"] for r in mine]
            [line] = ax.loglog(n, [r["whole_seconds"] for r in mine], marker="o", label=system)
            # The query phase alone, dashed: where a kept index would cross over.
            ax.loglog(n, [r["query_seconds"] for r in mine], linestyle="--", marker=".",
                      color=line.get_color(), label=f"{system}: query phase")
        ax.set(title=f"{workload} (rust; NumPy f64 reference)", xlabel="N points",
               ylabel="seconds: whole wait (V + fit + query), dashed: query")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend()
    fig.tight_layout()
    fig.savefig(png, dpi=120)


def sizes_arg(text: str) -> tuple[int, ...]:
    """Comma-separated positive sizes; '' skips the workload."""
    return int_list(text) if text else ()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=sizes_arg, default=SIZES, help="N of the query workload")
    parser.add_argument("--vecchia-sizes", type=sizes_arg, default=VECCHIA_SIZES,
                        help="N of Vecchia all-points ('' skips it)")
    parser.add_argument("--systems", type=choice_list(SYSTEMS), default=SYSTEMS)
    parser.add_argument("--budget", type=float, default=900.0,
                        help="skip a run predicted to take longer than this many seconds")
    parser.add_argument("--png", type=Path, default=None, help="write the log-log plot here")
    parser.add_argument("--json", type=Path, default=None, help="write every row here")
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        spec = json.loads(args.child)
        print(json.dumps(run_one(spec["workload"], spec["n"], spec["system"], Path(spec["answers"]))))
        return 0

    if args.png:
        require(parser, "matplotlib", "benchmark", "--png")
    from tqdm import tqdm

    header()
    plan = [("query", args.sizes), ("vecchia", args.vecchia_sizes)]
    rows, skipped = [], []
    with tempfile.TemporaryDirectory() as scratch, tqdm(
            total=sum(len(s) for _, s in plan) * len(args.systems), unit="run",
            disable=not sys.stderr.isatty()) as bar:
        for workload, sizes in plan:
            done, missed = study(workload, sizes, args.systems, args.budget, Path(scratch), bar)
            rows += done
            skipped += missed
    print(table(rows))
    if skipped:
        print("skipped: " + "; ".join(skipped))
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))
    if args.png:
        plot(rows, args.png)
        print(f"plot: {args.png}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
