"""Where the box screen pays against the f64 screen, and the fit of covertreex.paths' box cost model.

For each case (N Gaussian points from ``default_rng(0).normal``, d coordinates, k neighbours; queries of
N / 5 new points, or the predecessor query of every point) it times, in CPU seconds of this process on one
thread (best of two), the dense path's query on the box screen and on the f64 screen (fits outside the
timer), with the box screen's evaluations per query beside the model's estimate
(``covertreex.paths.box_evaluations``) and the screen ``dense_screen='auto'`` takes. It then fits the model's
constants to the run: evaluations per query = a * b^d * (k + c) / (10 + c) * (N / 50,000)^g by least squares
on their logarithms (c from the k = 10 and k = 50 pairs), and the cost of one evaluation in f64-screen
pairs (the median over the cases, per query kind), and says in how many cases those constants pick the
faster screen. The answers of both screens are checked equal.

    python benchmarks/box_cost_grid.py                  # the 72 cases of docs/benchmarks.md
    python benchmarks/box_cost_grid.py --sizes 2000 --dims 2,8
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from bench_args import header, int_list

import covertreex as ct
from covertreex import paths


def query_seconds(X: np.ndarray, queries, k: int, screen: str):
    """(best CPU seconds of two, result) of the dense path's query on `screen`, one thread, fit untimed."""
    model = ct.CoverTree(metric="euclidean", path="dense", dense_screen=screen, threads=1).fit(X)
    best, result = np.inf, None
    for _ in range(2):
        start = time.process_time()
        result = (model.query(k=k, predecessor=True) if queries is None else model.query(queries, k=k))
        best = min(best, time.process_time() - start)
    return best, result


def auto_screen(X: np.ndarray, queries, k: int) -> str:
    """The screen dense_screen='auto' takes for the call."""
    model = ct.CoverTree(metric="euclidean", path="dense", threads=1).fit(X)
    result = model.query(k=k, predecessor=True) if queries is None else model.query(queries, k=k)
    return result.counters.extra.get("screen", "?")


def fit(rows: list[dict]) -> dict:
    """The model's constants fitted to the measured rows (see the module docs)."""
    rows = [r for r in rows if r["evaluations"] < 0.5 * r["n"]]  # capped at N: outside the power law
    c_values = []
    for r in rows:
        same = (r["n"], r["d"], r["kind"])
        other = [s for s in rows if (s["n"], s["d"], s["kind"]) == same and s["k"] == 50]
        if r["k"] == 10 and other:
            ratio = other[0]["evaluations"] / r["evaluations"]  # (50 + c) / (10 + c)
            if ratio > 1.0:
                c_values.append((50 - 10 * ratio) / (ratio - 1))
    c = float(np.median(c_values)) if c_values else 30.0
    design = np.array([[1.0, r["d"], np.log(r["n"] / 50_000)] for r in rows])
    target = np.array([np.log(r["evaluations"] * (10 + c) / (r["k"] + c)) for r in rows])
    (log_a, log_b, g), *_ = np.linalg.lstsq(design, target, rcond=None)
    costs = {}
    for kind in ("points", "predecessor"):
        units = [r["boxes_s"] / (r["f64_s"] / r["pairs"]) / (r["queries"] * r["evaluations"])
                 for r in rows if r["kind"] == kind]
        costs[kind] = float(np.median(units)) if units else float("nan")
    return {"a": float(np.exp(log_a)), "b": float(np.exp(log_b)), "c": c, "g": float(g), "costs": costs}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int_list, default=(2_000, 10_000, 50_000))
    parser.add_argument("--dims", type=int_list, default=(2, 3, 4, 5, 6, 8))
    parser.add_argument("--ks", type=int_list, default=(10, 50))
    args = parser.parse_args()
    header("Euclidean, dense path, one thread, CPU seconds (best of 2)")
    print("\n| N | d | k | queries | box screen s | f64 screen s | boxes / f64 | "
          "box evaluations/query (model) | auto takes |")
    print("|---|---|---|---|---|---|---|---|---|")
    rows = []
    for n in args.sizes:
        for d in args.dims:
            rng = np.random.default_rng(0)
            X = rng.normal(size=(n, d))
            for k in args.ks:
                for kind, queries in (("points", rng.normal(size=(n // 5, d))), ("predecessor", None)):
                    boxes_s, boxes = query_seconds(X, queries, k, "boxes")
                    f64_s, f64 = query_seconds(X, queries, k, "f64")
                    assert np.array_equal(boxes.indices, f64.indices)
                    assert boxes.distances.tobytes() == f64.distances.tobytes()
                    n_queries = n if queries is None else len(queries)
                    pairs = n * (n - 1) / 2 if queries is None else n_queries * n
                    evaluations = float(np.mean(boxes.counters.extra["screened"]))
                    rows.append({"n": n, "d": d, "k": k, "kind": kind, "queries": n_queries, "pairs": pairs,
                                 "boxes_s": boxes_s, "f64_s": f64_s, "evaluations": evaluations,
                                 "faster": "boxes" if boxes_s < f64_s else "f64"})
                    label = "predecessor" if queries is None else f"{n_queries} points"
                    model = paths.box_evaluations(d, n, k)
                    print(f"| {n} | {d} | {k} | {label} | {boxes_s:.4f} | {f64_s:.4f} | "
                          f"{boxes_s / f64_s:.2f} | {evaluations:.0f} ({model:.0f}) | "
                          f"{auto_screen(X, queries, k)} |", flush=True)
    constants = fit(rows)
    print(f"\nfitted: evaluations/query = {constants['a']:.1f} * {constants['b']:.3f}^d * (k + "
          f"{constants['c']:.1f}) / {10 + constants['c']:.1f} * (N / 50,000)^{constants['g']:.3f}; cost per "
          f"evaluation in f64 pairs: points {constants['costs']['points']:.1f}, predecessor "
          f"{constants['costs']['predecessor']:.1f}")
    right = 0
    for r in rows:
        estimate = min(float(r["n"]), constants["a"] * constants["b"] ** r["d"] * (r["k"] + constants["c"])
                       / (10 + constants["c"]) * (r["n"] / 50_000) ** constants["g"])
        boxes_cost = r["queries"] * estimate * constants["costs"][r["kind"]]
        right += ("boxes" if boxes_cost < r["pairs"] else "f64") == r["faster"]
    print(f"with the fitted constants the faster screen is chosen in {right} of {len(rows)} cases")


if __name__ == "__main__":
    main()
