"""Where the box screen pays against the f64 screen, and the fit of covertreex.paths' box cost model.

For each case (N Gaussian points from ``default_rng(0).normal``, d coordinates, k neighbours; queries of
N / 5 new points, or the predecessor query of every point) it times, in CPU seconds of this process on one
thread (best of two), the dense path's query on the box screen and on the f64 screen (fits outside the
timer), with the box screen's evaluations per query beside the model's estimate
(``covertreex.paths.box_evaluations``) and the screen ``dense_screen='auto'`` takes. It then fits the model's
constants to the run: evaluations per query = a * b^d * (k + c) / (10 + c) * (N / 50,000)^g by least squares
on their logarithms (c from the pairs of the smallest and largest k; rows evaluating more than half the
points left out), and the cost of one evaluation in f64-screen pairs (the median over those rows, per query
kind), and says in how many cases the library's constants and the fitted ones pick the faster screen and
the CPU seconds their wrong choices lose. The answers of both screens are checked equal.

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
    """(best CPU seconds of two, result) of the dense path's query on `screen`, one thread; the fit and
    a first call (which packs the boxes) untimed."""
    model = ct.CoverTree(metric="euclidean", path="dense", dense_screen=screen, threads=1).fit(X)
    model.query(k=k, predecessor=True) if queries is None else model.query(queries, k=k)
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


def fit(rows: list[dict]) -> dict | None:
    """The model's constants fitted to the measured rows (see the module docs), or None when the grid
    cannot determine them (fewer than two sizes, dimensions or values of k)."""
    if min(len({r[key] for r in rows}) for key in ("n", "d", "k")) < 2:
        return None
    # The model's estimate is capped at N; rows that evaluate more than half the points stay out of the
    # power law's fit.
    rows = [r for r in rows if r["evaluations"] < 0.5 * r["n"]]
    k_low, k_high = min(r["k"] for r in rows), max(r["k"] for r in rows)
    c_values = []
    for r in (r for r in rows if r["k"] == k_low):
        same = (r["n"], r["d"], r["kind"])
        high = [s for s in rows if (s["n"], s["d"], s["kind"]) == same and s["k"] == k_high]
        if high and high[0]["evaluations"] > r["evaluations"]:
            ratio = high[0]["evaluations"] / r["evaluations"]  # (k_high + c) / (k_low + c)
            c_values.append((k_high - k_low * ratio) / (ratio - 1))
    if not c_values:
        return None
    c = float(np.median(c_values))
    design = np.array([[1.0, r["d"], np.log(r["n"] / 50_000)] for r in rows])
    target = np.array([np.log(r["evaluations"] * (10 + c) / (r["k"] + c)) for r in rows])
    (log_a, log_b, g), *_ = np.linalg.lstsq(design, target, rcond=None)
    costs = {}
    for kind in ("points", "predecessor"):
        units = [r["boxes_s"] / (r["f64_s"] / r["pairs"]) / (r["queries"] * r["evaluations"])
                 for r in rows if r["kind"] == kind]
        costs[kind] = float(np.median(units)) if units else float("nan")
    return {"a": float(np.exp(log_a)), "b": float(np.exp(log_b)), "c": c, "g": float(g), "costs": costs}


def decisions(rows: list[dict], boxes_cost) -> tuple[int, float]:
    """How many rows a cost model (`boxes_cost(row)`, in f64 pairs) sends to the faster screen, and the CPU
    seconds its wrong choices lose in all."""
    right, lost = 0, 0.0
    for r in rows:
        chosen = r["boxes_s"] if boxes_cost(r) < r["pairs"] else r["f64_s"]
        right += chosen == min(r["boxes_s"], r["f64_s"])
        lost += chosen - min(r["boxes_s"], r["f64_s"])
    return right, lost


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
            points = rng.normal(size=(n // 5, d))  # the same queries for every k
            for k in args.ks:
                for kind, queries in (("points", points), ("predecessor", None)):
                    boxes_s, boxes = query_seconds(X, queries, k, "boxes")
                    f64_s, f64 = query_seconds(X, queries, k, "f64")
                    if not (np.array_equal(boxes.indices, f64.indices)
                            and boxes.distances.tobytes() == f64.distances.tobytes()):
                        raise SystemExit(f"the screens' answers differ: N {n}, d {d}, k {k}, {kind}")
                    n_queries = n if queries is None else len(queries)
                    pairs = n * (n - 1) / 2 if queries is None else n_queries * n
                    evaluations = float(np.mean(boxes.counters.extra["screened"]))
                    rows.append({"n": n, "d": d, "k": k, "kind": kind, "queries": n_queries, "pairs": pairs,
                                 "boxes_s": boxes_s, "f64_s": f64_s, "evaluations": evaluations})
                    label = "predecessor" if queries is None else f"{n_queries} points"
                    model = paths.box_evaluations(d, n, k)
                    print(f"| {n} | {d} | {k} | {label} | {boxes_s:.4f} | {f64_s:.4f} | "
                          f"{boxes_s / f64_s:.2f} | {evaluations:.0f} ({model:.0f}) | "
                          f"{auto_screen(X, queries, k)} |", flush=True)
    library = decisions(rows, lambda r: paths.box_screen_cost(r["d"], r["n"], r["k"], r["queries"],
                                                               r["kind"] == "predecessor"))
    print(f"\nthe library's constants (covertreex.paths) choose the faster screen in {library[0]} of "
          f"{len(rows)} cases; their wrong choices lose {library[1]:.3f} CPU s in all")
    constants = fit(rows)
    if constants is None:
        print("not fitted: the grid needs at least two sizes, two dimensions and two values of k")
        return
    a, b, c, g = (constants[key] for key in ("a", "b", "c", "g"))
    costs = constants["costs"]
    print(f"fitted: evaluations/query = {a:.1f} * {b:.3f}^d * (k + {c:.1f}) / {10 + c:.1f} * "
          f"(N / 50,000)^{g:.3f}; cost per evaluation in f64 pairs (medians): points {costs['points']:.1f}, "
          f"predecessor {costs['predecessor']:.1f}")

    def fitted_cost(r: dict) -> float:
        estimate = min(float(r["n"]), a * b ** r["d"] * (r["k"] + c) / (10 + c) * (r["n"] / 50_000) ** g)
        return r["queries"] * estimate * costs[r["kind"]]

    right, lost = decisions(rows, fitted_cost)
    print(f"the fitted constants choose the faster screen in {right} of {len(rows)} cases; their wrong "
          f"choices lose {lost:.3f} CPU s in all")


if __name__ == "__main__":
    main()
