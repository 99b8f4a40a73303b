"""The Vecchia neighbour search against GPBoost's in one run (issue 13, item 5), GPBoost in its own process.

For each N: X = ``default_rng(42).normal(size=(N, 3))``, an RBF kernel with s2 = l = 1, m = 512 inducing
points and k = 50 neighbours (the Vecchia all-points workload of DESIGN section 6). Rows:

* covertreex ``vecchia_neighbors`` (metric 'residual', engine auto) with the natural ordering and with exact
  residual maximin ordering: whole wait (V, ordering, neighbours), and our recall against the brute oracle
  on the same ordering (the oracle runs only up to ``--oracle-max`` points: it costs as much as the job);
* GPBoost's VIF (``gp_approx="full_scale_vecchia"``, the correlation-based neighbour search on the residual
  process), data order, random inducing points: model construction, then the first
  ``neg_log_likelihood`` call, which runs the neighbour search with the given covariance parameters
  (GPBoost's Gaussian covariance ``s2 exp(-(r/rho)^2)``, so rho = sqrt(2) l) together with the VIF
  factorisation; GPBoost does not expose the search alone, so this is an upper bound on its search time.
  It runs in a fresh child process (:func:`gpboost_alone`), as its users run it: in this process, after the
  brute oracle's Numba code had run on Numba's OpenMP threading layer, GPBoost's OpenMP search took about
  4x as long (2026-12-06: 9.6 s against 2.2 s at N = 8,192), which inflated every ratio recorded before.

    python benchmarks/gpboost_vecchia.py                  # N = 8192 and 32768 (GPBoost: minutes)
    python benchmarks/gpboost_vecchia.py --n 2048 --m 64  # a quick check
    python benchmarks/gpboost_vecchia.py --n 32768 --metric euclidean  # ours only, Euclidean
    python benchmarks/gpboost_vecchia.py --n 32768 --skip-gpboost --dask  # Dask overhead, 2 workers

Needs ``pip install -e ".[benchmark]"`` (gpboost; not with ``--skip-gpboost``) and for ``--dask``
``pip install -e ".[dask]"``, both checked before any work. Run it on an otherwise idle machine.
"""

from __future__ import annotations

import argparse
import importlib
import multiprocessing
import os
import resource
import time
from concurrent.futures import ProcessPoolExecutor

import numpy as np
from bench_args import header, positive_int, require

import covertreex as ct
from covertreex.vecchia import permuted_problem

DIMS, SEED = 3, 42


def cpu_seconds() -> float:
    """User + system CPU seconds of this process, all threads (the machine is shared: wall time is noisy)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _residual(metric: str, m: int) -> dict:
    """The inducing points of a residual job and their seed (a Euclidean job takes neither)."""
    return {"m": m, "seed": SEED} if metric == "residual" else {}


def ours(X, k: int, m: int, metric: str, ordering: str, oracle_max: int) -> dict:
    start, cpu = time.perf_counter(), cpu_seconds()
    result = ct.vecchia_neighbors(X, k, metric=metric, ordering=ordering, **_residual(metric, m))
    row = {"seconds": time.perf_counter() - start, "cpu": cpu_seconds() - cpu,
           "ordering_seconds": result.ordering_seconds, "neighbour_seconds": result.neighbor_seconds,
           "recall": None}
    if X.shape[0] <= oracle_max:
        moved = X[result.ordering]
        if metric == "residual":
            moved = permuted_problem(ct.residual_problem(X, m=m, seed=SEED), result.ordering)
        oracle = ct.CoverTree(engine="brute", metric=metric, telemetry=False).fit(moved).query(
            k=k, predecessor=True)
        found = sum(np.intersect1d(a[a >= 0], b[b >= 0]).size
                    for a, b in zip(result.neighbors, oracle.indices, strict=True))
        row["recall"] = found / max(1, int((oracle.indices >= 0).sum()))
    return row


def on_local_cluster(X, k: int, m: int, metric: str) -> dict:
    """Our natural-ordering job with its neighbours found on a fresh LocalCluster of 2 worker processes
    (cluster start-up, including the workers' import of covertreex, excluded; the scatter and the gather
    included). CPU: this process (client and scheduler) plus the workers' during the job."""
    from distributed import Client, LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, dashboard_address=None) as cluster, \
            Client(cluster) as client:
        client.run(importlib.import_module, "covertreex.distributed")
        workers_before = client.run(cpu_seconds)
        start, cpu = time.perf_counter(), cpu_seconds()
        result = ct.vecchia_neighbors(X, k, metric=metric, ordering="natural",
                                      scheduler=client, **_residual(metric, m))
        seconds, cpu = time.perf_counter() - start, cpu_seconds() - cpu
        workers_after = client.run(cpu_seconds)
        cpu += sum(workers_after[w] - workers_before[w] for w in workers_before)
        return {"seconds": seconds, "cpu": cpu, "neighbour_seconds": result.neighbor_seconds}


def gpboost(X, k: int, m: int, threads: int) -> dict:
    import gpboost as gpb

    y = np.random.default_rng(SEED + 1).normal(size=X.shape[0])
    cpu = cpu_seconds()
    start = time.perf_counter()
    model = gpb.GPModel(gp_coords=X, cov_function="gaussian", gp_approx="full_scale_vecchia",
                        num_neighbors=k, num_ind_points=m, ind_points_selection="random",
                        vecchia_ordering="none", seed=SEED, num_parallel_threads=threads)
    built = time.perf_counter() - start
    start = time.perf_counter()
    model.neg_log_likelihood(cov_pars=np.array([1e-2, 1.0, np.sqrt(2.0)]), y=y)
    return {"construct_seconds": built, "search_and_likelihood_seconds": time.perf_counter() - start,
            "cpu": cpu_seconds() - cpu}


def gpboost_alone(X, k: int, m: int, threads: int) -> dict:
    """:func:`gpboost` in a fresh process (spawned: no state of this one, its OpenMP runtimes included)."""
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        return pool.submit(gpboost, X, k, m, threads).result()


def load() -> str:
    """The 1-minute load average now (other developers' jobs share the machine)."""
    return f"{os.getloadavg()[0]:.1f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=positive_int, nargs="+", default=[8192, 32768])
    parser.add_argument("--m", type=positive_int, default=512)
    parser.add_argument("--k", type=positive_int, default=50)
    parser.add_argument("--oracle-max", type=int, default=8192,
                        help="compute our recall against the brute oracle up to this N")
    parser.add_argument("--metric", choices=("residual", "euclidean"), default="residual",
                        help="our rows' metric; GPBoost's VIF rows run with 'residual' only")
    parser.add_argument("--skip-gpboost", action="store_true")
    parser.add_argument("--dask", action="store_true",
                        help="also run our natural-ordering job on a LocalCluster of 2 worker processes")
    args = parser.parse_args()
    if args.metric == "residual" and not args.skip_gpboost:
        require(parser, "gpboost", "benchmark", "the GPBoost rows; --skip-gpboost skips them")
    if args.dask:
        require(parser, "distributed", "dask", "--dask")
    header(f"m {args.m}, k {args.k}, d {DIMS}")
    ct.vecchia_neighbors(np.random.default_rng(0).normal(size=(300, DIMS)), 5, m=16)  # compile first
    print("\n| N | system | whole wait s | CPU s | ordering s | neighbours s | recall vs oracle | load |")
    print("|---|---|---|---|---|---|---|---|")
    for n in args.n:
        X = np.random.default_rng(SEED).normal(size=(n, DIMS))
        rows = {}
        for ordering in ("natural", "maximin"):
            row = rows[ordering] = ours(X, args.k, args.m, args.metric, ordering, args.oracle_max)
            recall = "not run" if row["recall"] is None else f"{row['recall']:.6f}"
            print(f"| {n} | covertreex {args.metric}, {ordering} ordering | {row['seconds']:.2f} | "
                  f"{row['cpu']:.2f} | {row['ordering_seconds']:.2f} | {row['neighbour_seconds']:.2f} | "
                  f"{recall} | {load()} |", flush=True)
        if args.dask:
            row = on_local_cluster(X, args.k, args.m, args.metric)
            over = row["neighbour_seconds"] / rows["natural"]["neighbour_seconds"] - 1.0
            print(f"| {n} | covertreex {args.metric}, natural ordering, LocalCluster 2 x 1 "
                  f"(neighbours {over:+.0%} vs one process) | {row['seconds']:.2f} | {row['cpu']:.2f} | | "
                  f"{row['neighbour_seconds']:.2f} | | {load()} |", flush=True)
        if args.metric == "residual" and not args.skip_gpboost:
            row = gpboost_alone(X, args.k, args.m, os.cpu_count())
            search = row["search_and_likelihood_seconds"]
            ratio = search / rows["maximin"]["seconds"]
            print(f"| {n} | GPBoost VIF (construct + first likelihood incl. search; {ratio:.1f}x our "
                  f"maximin whole wait) | {row['construct_seconds'] + search:.2f} | {row['cpu']:.2f} | | "
                  f"<= {search:.2f} | not exposed | {load()} |", flush=True)


if __name__ == "__main__":
    main()
