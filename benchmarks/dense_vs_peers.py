"""Exact k-NN against its peers and the machine's floor, in one process and one run.

Runs the gold workload (DESIGN section 6) and, with ``--vecchia``, the all-points Vecchia job, and prints
for each system: whole wait (V + fit + query), query seconds, ratio to the NumPy reference, recall against
the oracle, and for the dense paths the GEMM phase's GFLOP/s next to the machine's measured dgemm rate.
With ``--batches 1,64,512`` it adds small query batches against a larger index (``--batch-n``, default
262,144 points): each batch's query seconds for NumPy, for rust on all workers and on one, next to the
batch's GEMM floor and the time the machine takes to read V once (NumPy's dgemv on all threads, the floor
of a batch too small to reuse V). With ``--euclidean`` it adds the Euclidean workload
(``--euclidean-dims 3,32``: one table per dimension)
with scipy's cKDTree (and scikit-learn's KDTree and BallTree when installed). The NumPy reference is
written here, not in the library: blocked BLAS GEMM, exp, scaling and argpartition, the forty lines a user
would write.

On the Euclidean workload every system, the peers included, gets a warm-up run and then the median of
``--runs``; recall is against cKDTree's answer (the residual tables: against the brute engine's on the gold
workload, against the NumPy reference's on Vecchia all-points).

    python benchmarks/dense_vs_peers.py [--n 32768] [--vecchia] [--euclidean [--euclidean-dims 3,32]]
                                        [--runs 3] [--batches 1,64,512 [--batch-n 262144]] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import time

import numpy as np
from bench_args import choice_list, cpu_model, header, int_list, positive_int

import covertreex as ct
from covertreex.metrics.data import kernel_matrix

N, DIMS, M, K, QUERIES = 32_768, 3, 512, 50, 1024


def dgemm_rate(width: int = M, rows: int = 2048, cols: int = 8192, repeats: int = 5) -> float:
    """The machine's measured f64 GEMM rate (GFLOP/s, NumPy's BLAS, all threads), best of `repeats`."""
    rng = np.random.default_rng(0)
    a, b = rng.random((rows, width)), rng.random((cols, width))
    a @ b.T
    best = min(_timed(lambda: a @ b.T)[1] for _ in range(repeats))
    return 2.0 * rows * cols * width / best / 1e9


def _timed(fn):
    start = time.perf_counter()
    value = fn()
    return value, time.perf_counter() - start


def numpy_reference(problem, query_idx, k, block=256):
    """Dense residual k-NN in plain NumPy (the user's baseline): (indices, seconds)."""
    start = time.perf_counter()
    X, V, p = problem.X, problem.V, problem.p
    out = np.empty((len(query_idx), k), dtype=np.int64)
    inv = 1.0 / np.sqrt(p)
    for s in range(0, len(query_idx), block):
        q = query_idx[s : s + block]
        K = kernel_matrix(X[q], X, problem.kernel, problem.lengthscale, problem.variance)
        rho = (K - V[q] @ V.T) * inv[q, None] * inv[None, :]
        d = np.sqrt(1.0 - np.minimum(1.0, np.abs(rho)))
        d[np.arange(len(q)), q] = 0.0
        part = np.argpartition(d, k - 1, axis=1)[:, :k]
        order = np.lexsort((part, np.take_along_axis(d, part, axis=1)), axis=1)
        out[s : s + block] = np.take_along_axis(part, order, axis=1)
    return out, time.perf_counter() - start


def numpy_vecchia_reference(problem, k, block=512):
    """Dense predecessor k-NN in plain NumPy (lower triangle only): (indices, seconds)."""
    start = time.perf_counter()
    X, V, p = problem.X, problem.V, problem.p
    n = len(X)
    out = np.full((n, k), -1, dtype=np.int64)
    inv = 1.0 / np.sqrt(p)
    for s in range(0, n, block):
        e = min(n, s + block)
        K = kernel_matrix(X[s:e], X[:e], problem.kernel, problem.lengthscale, problem.variance)
        rho = (K - V[s:e] @ V[:e].T) * inv[s:e, None] * inv[None, :e]
        d = np.sqrt(1.0 - np.minimum(1.0, np.abs(rho)))
        d[np.arange(e - s)[:, None] + s <= np.arange(e)[None, :]] = np.inf
        kk = min(k, e)
        part = np.argpartition(d, kk - 1, axis=1)[:, :kk]
        order = np.lexsort((part, np.take_along_axis(d, part, axis=1)), axis=1)
        best = np.take_along_axis(part, order, axis=1)
        best[np.take_along_axis(d, best, axis=1) == np.inf] = -1
        out[s:e, :kk] = best
    return out, time.perf_counter() - start


def recall(found, oracle) -> float:
    hits = total = 0
    for got, ref in zip(found, oracle, strict=True):
        ref = ref[ref >= 0]
        hits += np.isin(ref, got).sum()
        total += len(ref)
    return hits / max(total, 1)


def run_engine(engine, problem, k, query, **options):
    """(result, fit + build seconds, query seconds) of one engine on the problem. The tree's build counts
    once: inside fit (path tree) or inside the first query that needs it (the query's wall time beyond
    its own `seconds`). The problem's cached digest and split screen are dropped first, so that every run
    hashes V and builds the split (where it runs) as a user's one job does (runs after the first would
    otherwise find them computed)."""
    vars(problem).pop("digest", None)
    vars(problem).pop("split_screen", None)
    model, fit_seconds = _timed(
        lambda: ct.CoverTree(engine=engine, metric="residual", **options).fit(problem))
    result, query_wall = _timed(lambda: model.query(k=k, **query))
    return result, fit_seconds + (query_wall - result.seconds), result.seconds


def median_run(fn, runs):
    """The run with the median last value (its seconds) of `runs` calls of `fn`; every run's seconds
    are printed, the first (cold: thread pools, buffers) among them."""
    results = [fn() for _ in range(runs)]
    print(f"  runs (s): {', '.join(f'{r[-1]:.3f}' for r in results)}")
    return sorted(results, key=lambda r: r[-1])[runs // 2]


def gold_workload(args, floor):
    n = args.n
    X = np.random.default_rng(42).normal(size=(n, DIMS))
    problem, v_seconds = _timed(lambda: ct.residual_problem(X, m=M, seed=42))
    query_idx = np.random.default_rng(43).integers(0, n, QUERIES)
    brute = ct.CoverTree(engine="brute", metric="residual").fit(problem)
    oracle = brute.kneighbors(indices=query_idx, k=K)[1]
    flops = 2.0 * QUERIES * n * M
    rows = []
    ref_idx, ref_q = median_run(lambda: numpy_reference(problem, query_idx, K), args.runs)
    rows.append(("numpy f64 dense reference", v_seconds + ref_q, ref_q, recall(ref_idx, oracle), None, None))
    for name, engine, options in (("rust (path auto, perf)", "rust", {"mode": "perf"}),
                                  ("gold (path auto)", "gold", {})):
        result, fit_s, query_s = median_run(
            lambda engine=engine, options=options: run_engine(
                engine, problem, K, {"indices": query_idx}, **options), args.runs)
        gemm = result.telemetry["timings"].get("gemm_seconds")
        rows.append((name, v_seconds + fit_s + query_s, query_s, recall(result.indices, oracle),
                     result.telemetry, gemm))
    return report(f"gold workload (N {n}, d {DIMS}, m {M}, k {K}, {QUERIES} queries)", rows, flops, floor)


def vecchia_workload(args, floor):
    n = args.n
    X = np.random.default_rng(42).normal(size=(n, DIMS))
    problem, v_seconds = _timed(lambda: ct.residual_problem(X, m=M, seed=42))
    flops = 2.0 * M * n * (n - 1) / 2
    oracle, ref_q = numpy_vecchia_reference(problem, K)
    rows = [("numpy f64 dense reference", v_seconds + ref_q, ref_q, None, None, None)]
    f64_options = {"mode": "perf", "path": "dense", "dense_screen": "f64"}
    rust, fit_s, query_s = median_run(
        lambda: run_engine("rust", problem, K, {"predecessor": True}, **f64_options), args.runs)
    rows.append(("rust (path dense, dense_screen f64, perf)", v_seconds + fit_s + query_s, query_s,
                 recall(rust.indices, oracle), rust.telemetry, rust.telemetry["timings"].get("gemm_seconds")))
    auto, fit_s, query_s = median_run(
        lambda: run_engine("rust", problem, K, {"predecessor": True}, mode="perf"), args.runs)
    # No GEMM rate: the split multiplies most pairs in int8, so flops over GEMM seconds would mean nothing.
    rows.append(("rust (path auto, perf: the split screen here; query s includes building it)",
                 v_seconds + fit_s + query_s, query_s, recall(auto.indices, oracle), auto.telemetry, None))
    same = np.array_equal(auto.indices, rust.indices) and np.array_equal(auto.distances, rust.distances)
    print(f"auto (split) and f64 screens identical (indices and distance bits): {same}")
    if not args.skip_gold_vecchia:
        gold, fit_s, query_s = median_run(
            lambda: run_engine("gold", problem, K, {"predecessor": True}), args.runs)
        same = np.array_equal(gold.indices, rust.indices) and np.array_equal(gold.distances, rust.distances)
        rows.append(("gold (path auto)", v_seconds + fit_s + query_s, query_s, recall(gold.indices, oracle),
                     gold.telemetry, gold.telemetry["timings"].get("gemm_seconds")))
        print(f"gold and rust identical (indices and distance bits): {same}")
    print(f"f64 GEMM floor of the job: {flops / 1e9:.0f} GFLOP / {floor:.1f} GFLOP/s = "
          f"{flops / floor / 1e9:.2f} s")
    return report(f"Vecchia all-points (N {n}, m {M}, k {K}, predecessors)", rows, flops, floor)


def batch_workload(args, floor):
    """Small batches of indexed queries against an index of ``args.batch_n`` points (the gold shape)."""
    n = args.batch_n
    X = np.random.default_rng(42).normal(size=(n, DIMS))
    problem = ct.residual_problem(X, m=M, seed=42)
    v_read = min(_timed(lambda: problem.V @ np.ones(M))[1] for _ in range(5))
    models = {threads: ct.CoverTree(engine="rust", metric="residual", path="dense", mode="perf",
                                    threads=threads).fit(problem) for threads in (None, 1)}
    brute = ct.CoverTree(engine="brute", metric="residual").fit(problem)
    lines = [f"\n## Small batches against N = {n:,} (m {M}, k {K}, indexed queries)\n",
             f"reading V once ({problem.V.nbytes / 2**20:.0f} MiB, NumPy dgemv, best of 5): "
             f"{v_read * 1e3:.1f} ms",
             "| queries | NumPy s | rust s (all workers) | rust s (1 worker) | rust / NumPy | GEMM floor s "
             "| rust / V read | recall |", "|---|---|---|---|---|---|---|---|"]
    out = []
    for q in args.batches:
        query_idx = np.random.default_rng(43).integers(0, n, q)
        oracle = brute.kneighbors(indices=query_idx, k=K)[1]
        _, ref_s = median_run(lambda query_idx=query_idx: numpy_reference(problem, query_idx, K), args.runs)
        seconds = {}
        for threads, model in models.items():
            res, seconds[threads] = median_run(lambda model=model, query_idx=query_idx: _timed(
                lambda: model.query(indices=query_idx, k=K)), args.runs)
        gemm_floor = 2.0 * q * n * M / floor / 1e9
        all_s = seconds[None]
        lines.append(f"| {q:,} | {ref_s:.4f} | {all_s:.4f} | {seconds[1]:.4f} | {all_s / ref_s:.2f}x | "
                     f"{gemm_floor:.4f} | {all_s / v_read:.1f}x | {recall(res.indices, oracle):.6f} |")
        out.append({"queries": q, "numpy_seconds": ref_s, "rust_seconds": all_s,
                    "rust_one_worker_seconds": seconds[1], "gemm_floor_seconds": gemm_floor,
                    "v_read_seconds": v_read})
    print("\n".join(lines))
    return {"title": f"small batches, N {n}", "rows": out}


def peer(tree_class, X, Q, runs):
    """(answer, build + query seconds) of a peer's tree, as ours are timed: a warm-up, then the median."""
    def one(X=X):
        return _timed(lambda: tree_class(X).query(Q, k=K))
    one(X=X[:256])
    return median_run(one, runs)


def euclidean_workload(args, dims):
    from scipy.spatial import cKDTree

    n = args.n
    X = np.random.default_rng(42).normal(size=(n, dims))
    Q = X[np.random.default_rng(43).integers(0, n, QUERIES)]
    ref, t = peer(cKDTree, X, Q, args.runs)
    rows = [("scipy cKDTree (build + query)", t, None, None, None, None)]
    try:
        from sklearn.neighbors import BallTree, KDTree

        for name, cls in (("KDTree", KDTree), ("BallTree", BallTree)):
            (_, found), t = peer(cls, X, Q, args.runs)
            rows.append((f"scikit-learn {name} (build + query)", t, None, recall(found, ref[1]), None, None))
    except ImportError:
        pass
    for engine in ("rust", "gold"):
        for path in args.euclidean_paths:
            def one(engine=engine, path=path, X=X):
                model, fit_s = _timed(lambda: ct.CoverTree(engine=engine, path=path, mode="perf"
                                                           if engine == "rust" else "parity").fit(X))
                res, query_wall = _timed(lambda: model.query(Q, k=K))  # with a lazy build, if any
                return res, fit_s + query_wall
            one(X=X[:256])  # warm-up: Numba's compilation or cache load stays out of the timings
            res, total = median_run(one, args.runs)
            rows.append((f"{engine} (path {path} -> {res.telemetry['path']})", total, res.seconds,
                         recall(res.indices, ref[1]), res.telemetry, None))
    return report(f"Euclidean (N {n}, d {dims}, k {K}, {QUERIES} queries)", rows, None, None)


def report(title, rows, flops, floor):
    base = rows[0][1]
    print(f"\n## {title}\n")
    print("| system | whole wait s | query s | vs first row | recall | evals/query | pairs screened/query "
          "| GEMM GFLOP/s (phase) |")
    print("|---|---|---|---|---|---|---|---|")
    out = []
    for name, whole, query, rec, tel, gemm in rows:
        evals = screened = rate = ""
        if tel:
            evals = f"{tel['per_query']['distance_evaluations']['mean']:.1f}"
            screened = f"{tel['per_query']['pairs_screened']['mean']:.0f}"
        if gemm and flops:
            gflops = flops / (gemm / os.cpu_count()) / 1e9
            rate = f"{gflops:.1f} ({100 * gflops / floor:.0f}% of dgemm)"
        q = "" if query is None else f"{query:.3f}"
        rec_cell = "oracle" if rec is None else f"{rec:.6f}"
        print(f"| {name} | {whole:.3f} | {q} | {whole / base:.2f}x | {rec_cell} | {evals} | {screened} "
              f"| {rate} |")
        out.append({"system": name, "whole_seconds": whole, "query_seconds": query, "ratio": whole / base,
                    "recall": rec})
    return {"title": title, "rows": out}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=positive_int, default=N,
                        help="points of the gold, Vecchia and Euclidean workloads")
    parser.add_argument("--runs", type=positive_int, default=1,
                        help="runs per system; the median is reported")
    parser.add_argument("--vecchia", action="store_true", help="also run the all-points Vecchia job")
    parser.add_argument("--skip-gold-vecchia", action="store_true", help="Vecchia job: rust and NumPy only")
    parser.add_argument("--euclidean", action="store_true", help="also run the Euclidean workload")
    parser.add_argument("--euclidean-dims", type=int_list, default=(3,),
                        help="comma-separated dimensions of the Euclidean workload (e.g. 3,32)")
    parser.add_argument("--euclidean-paths", type=choice_list(("auto", "tree", "dense")),
                        default=("auto", "tree", "dense"),
                        help="the paths timed on the Euclidean workload (the tree takes minutes at d 32)")
    parser.add_argument("--batches", type=int_list,
                        help="comma-separated sizes of the small-batch table (e.g. 1,64,512)")
    parser.add_argument("--batch-n", type=positive_int, default=262_144,
                        help="points of the small-batch index")
    parser.add_argument("--json", help="write the tables as JSON here")
    args = parser.parse_args(argv)
    floor = dgemm_rate()
    header(f"measured dgemm {floor:.1f} GFLOP/s (NumPy BLAS)")
    tables = [gold_workload(args, floor)]
    if args.vecchia:
        tables.append(vecchia_workload(args, floor))
    if args.batches:
        tables.append(batch_workload(args, floor))
    if args.euclidean:
        tables.extend(euclidean_workload(args, dims) for dims in args.euclidean_dims)
    if args.json:
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump({"dgemm_gflops": floor, "nproc": os.cpu_count(), "cpu": cpu_model(),
                       "tables": tables}, fh, indent=2)


if __name__ == "__main__":
    main()
