"""The wait of one call with a single query row, against scipy and scikit-learn, one process.

A k-NN library is often called one row at a time (online lookups, a loop over new points); there the
fixed cost of a call, not the search, is the user's wait. Per case (N training points from
``default_rng(0).normal``, d dimensions, k), the median wall microseconds of a call with one query row
(``--calls`` calls after 200 warm-up calls, each a new row from a fixed pool), for:

* covertreex's ``CoverTree().fit(X).query(q, k)`` (rust in perf mode, 'auto' path: the box screen where
  d <= 8) and scikit-learn's estimator face of it, ``CoverTreeNeighbors(n_neighbors=k).kneighbors(q)``;
* scipy's ``cKDTree(X).query(q, k)``, scikit-learn's ``KDTree(X).query(q, k)`` and its estimator,
  ``NearestNeighbors(n_neighbors=k).kneighbors(q)`` (its 'auto' algorithm: the kd-tree here), the like of
  ours (both validate the row by scikit-learn's ``validate_data``, then the index validates it again);
* a NumPy f64 reference written here (the squared distances to every point, argpartition, then the k
  sorted by (distance, index)): what a call costs that reads every point.

Every answer's indices are checked equal to the NumPy reference's on the pool's rows.

    python benchmarks/single_query.py
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
from bench_args import header, positive_int
from scipy.spatial import cKDTree
from sklearn.neighbors import KDTree, NearestNeighbors

import covertreex as ct
from covertreex.sklearn import CoverTreeNeighbors

CASES = [(50_000, 3, 10), (50_000, 8, 10), (200_000, 3, 10)]
"""(N, d, k)."""
POOL = 64
"""Query rows the calls cycle through."""


def numpy_reference(X: np.ndarray, q: np.ndarray, k: int) -> np.ndarray:
    """The k nearest rows of X to the one row q, by (squared distance, index)."""
    squared = ((X - q) ** 2).sum(axis=1)
    near = np.argpartition(squared, k - 1)[:k]
    kth = squared[near].max()
    near = np.flatnonzero(squared <= kth)  # every tie at the k-th distance, so the index breaks it
    return near[np.lexsort((near, squared[near]))][:k]


def median_microseconds(call, rows: np.ndarray, calls: int) -> float:
    """The median wall time of `call(row)` over `calls` calls cycling through `rows`, after 200 warm-ups."""
    for at in range(200):
        call(rows[at % len(rows)][None, :])
    times = []
    for at in range(calls):
        row = rows[at % len(rows)][None, :]
        start = time.perf_counter()
        call(row)
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e6


COLUMNS = {"covertreex": "covertreex query", "ckdtree": "cKDTree", "sklearn": "sklearn KDTree",
           "estimator": "CoverTreeNeighbors.kneighbors", "their estimator": "NearestNeighbors.kneighbors",
           "numpy": "NumPy reference"}
"""Each system's column, in the table's order."""


def systems(X: np.ndarray, k: int) -> dict:
    """Each system's call on one query row (a (1, d) array), returning that row's k indices."""
    tree = ct.CoverTree().fit(X)
    estimator = CoverTreeNeighbors(n_neighbors=k).fit(X)
    kd, sk, theirs = cKDTree(X), KDTree(X), NearestNeighbors(n_neighbors=k).fit(X)
    return {
        "covertreex": lambda q: tree.query(q, k).indices[0],
        "ckdtree": lambda q: kd.query(q, k)[1][0],
        "sklearn": lambda q: sk.query(q, k, return_distance=False)[0],
        "estimator": lambda q: estimator.kneighbors(q, return_distance=False)[0],
        "their estimator": lambda q: theirs.kneighbors(q, return_distance=False)[0],
        "numpy": lambda q: numpy_reference(X, q[0], k),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=positive_int, default=5_000, help="timed calls per system and case")
    args = parser.parse_args()
    header()
    names = [f"{column} µs" for column in COLUMNS.values()]
    print("| " + " | ".join(["N", "d", "k", *names, "query / cKDTree", "estimator / sklearn's",
                             "indices equal"]) + " |")
    print("|---" * (len(names) + 6) + "|")
    for n, d, k in CASES:
        rng = np.random.default_rng(0)
        X, rows = rng.normal(size=(n, d)), rng.normal(size=(POOL, d))
        calls = systems(X, k)
        equal = all(np.array_equal(call(row[None, :]), numpy_reference(X, row, k))
                    for call in calls.values() for row in rows)
        wait = {name: median_microseconds(call, rows, args.calls) for name, call in calls.items()}
        cells = [f"{n:,}", str(d), str(k), *(f"{wait[name]:.1f}" for name in COLUMNS),
                 f"{wait['covertreex'] / wait['ckdtree']:.2f}x",
                 f"{wait['estimator'] / wait['their estimator']:.2f}x", str(equal)]
        print("| " + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
    main()
