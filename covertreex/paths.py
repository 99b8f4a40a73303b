"""Which exact path answers a query call: the cover-tree walk or dense GEMM screening (DESIGN section 5).

Both paths return the same indices and distance bits; only the work differs. ``path='auto'`` compares
estimated costs in units of one canonical distance evaluation inside the tree walk:

* dense: every eligible pair is screened inside a GEMM tile, where a pair costs about
  ``1 / DENSE_SPEEDUP[metric]`` of a tree evaluation (rows are reused across a query block and the walk's
  bookkeeping is gone);
* tree: the walk, ``walk_evaluations`` per query, plus, only when no tree exists yet, the build, which
  costs about ``BUILD_PER_WALK`` walk-evaluations per inserted point.

The rust engine's dense path may instead take the box screen for Euclidean points of a few coordinates
(rust/core/src/dense/boxes.rs), which evaluates only the points of the boxes near each query; its cost is
estimated on its own (:func:`box_screen_cost`), and the dense path costs the lower of the two.

Measured on this project's workloads (docs/benchmarks.md): the residual walk evaluates 84% of the points
at N = 8,192, 64% at 16,384 and 46% at 32,768 (the metric is nearly flat), about ``N^-0.45``; the
Euclidean walk evaluates about ``2^(d/2) k log2 N`` points (1,692 per query at N = 32,768, d = 3, k = 50;
12,156 at d = 8); a build costs 0.12-0.27 of a query's evaluations per point. So the dense path wins
for the residual metric until the pairs are very many, and the tree wins for low-dimensional Euclidean
data on the f64 screen (gold, rust's parity mode) once there are enough queries to pay for the build; where
the box screen runs, it beats both there (5-14x the tree at d = 2-8, N = 50,000). The choice never changes
an answer, only its cost; telemetry records it.
"""

from __future__ import annotations

import math

DENSE_SPEEDUP = {"residual": 16.0, "euclidean": 40.0}
"""Per metric, how many pairs screened in a GEMM tile cost one tree-walk evaluation. Residual: 16 at
m = 512. Euclidean: 28-53 (a walk evaluation 41-68 ns, a screened pair 0.9-1.7 ns, CPU time on one thread,
rust, N = 20,000-200,000, d = 2-8, k = 10 and 50; 2026-12-07, `nproc` 2, Intel Xeon; the cases of
`python benchmarks/auto_path.py`, docs/benchmarks.md, "The auto path's Euclidean cost"): at 16, d = 5,
N = 50,000 with 10,000 queries took the tree, 3.1 s against the dense path's 0.5 s."""
BUILD_PER_WALK = 0.25
"""Build evaluations per inserted point, as a share of one query's walk evaluations."""


def walk_evaluations(metric: str, n_dims: int, n_points: int, k: int) -> float:
    """Estimated canonical evaluations of one query's tree walk."""
    if metric == "residual":
        share = min(1.0, 0.46 * (n_points / 32_768) ** -0.45)
        return share * n_points
    if n_dims / 2 >= math.log2(n_points):  # 2^(d/2) alone reaches N (and overflows a float at d = 2,048)
        return float(n_points)
    return min(float(n_points), 2.0 ** (n_dims / 2) * k * math.log2(n_points + 1))


BOX_EVALUATION_COST = {False: 8.0, True: 16.0}
"""What one point the box screen evaluates costs, in pairs screened in a GEMM tile (the box bounds, the
visit and the canonical evaluation together), for queries of points (False) and in predecessor mode (True),
where opened leaves also hold points not yet eligible. Fitted with :func:`box_evaluations` to rust in perf
mode, one thread, N = 2,000 to 50,000, d = 2-8, k = 10 and 50, Gaussian points (2026-12-07 16:50 UTC,
`nproc` 2, Intel Xeon; `python benchmarks/box_cost_grid.py`, docs/benchmarks.md "Boxes cut at the median"):
the medians were 7.6 and 12.5; 16 keeps the predecessor query of 8 coordinates on the f64 screen, where the
boxes took 1.6x its time at N = 50,000. Of the 72 cases 'auto' then takes the faster screen in 61, and the
wrong choices cost 0.09 s in all (the previous constants, fitted to the Hilbert packing: 54 and 0.54 s); nine
of the eleven are at N = 2,000, where a call takes milliseconds."""


def box_evaluations(n_dims: int, n_points: int, k: int) -> float:
    """Estimated points one query's box screen evaluates: 24 * 1.71^d at k = 10 and N = 50,000, times
    (k + 19) / 29 and (N / 50,000)^0.15, at most N (least squares on the logarithms of the grid of
    :data:`BOX_EVALUATION_COST`, the boxes cut at medians)."""
    if n_dims > 64:  # 1.71^d alone reaches any N long before it overflows
        return float(n_points)
    estimate = 24.0 * 1.71**n_dims * (k + 19) / 29 * (n_points / 50_000) ** 0.15
    return min(float(n_points), estimate)


def box_screen_cost(n_dims: int, n_points: int, k: int, n_queries: int, predecessor: bool) -> float:
    """The box screen's estimated cost of a call, in pairs screened in a GEMM tile."""
    return n_queries * box_evaluations(n_dims, n_points, k) * BOX_EVALUATION_COST[bool(predecessor)]


def boxes_pay(n_dims: int, n_points: int, k: int, pairs: float, n_queries: int, predecessor: bool) -> bool:
    """Whether the box screen's estimated cost is below the f64 screen's: its `pairs` eligible pairs."""
    return box_screen_cost(n_dims, n_points, k, n_queries, predecessor) < pairs


def choose(metric: str, n_dims: int, n_points: int, k: int, pairs: float, n_queries: int,
           tree_exists: bool, *, boxes: bool = False, predecessor: bool = False) -> str:
    """'tree' or 'dense' for one call with `pairs` eligible query x point pairs; the tree's cost
    includes its build when none exists yet (it is built only if this chooses 'tree'). `boxes`: the
    engine's dense path may take the box screen (rust/core/src/dense/boxes.rs), which costs what
    :func:`boxes_pay` weighs where that is less than screening every pair."""
    walk = walk_evaluations(metric, n_dims, n_points, k)
    tree = walk * n_queries
    if not tree_exists:
        tree += BUILD_PER_WALK * walk * n_points
    dense = pairs
    if boxes:
        dense = min(dense, box_screen_cost(n_dims, n_points, k, n_queries, predecessor))
    return "tree" if tree < dense / DENSE_SPEEDUP[metric] else "dense"
