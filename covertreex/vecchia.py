"""The Vecchia job in one call: an ordering, then every point's k nearest predecessors in that ordering.

Shape conventions (N points, k neighbours):

* ``ordering`` (N,) int64 is a permutation: position i of the ordering holds input row ``ordering[i]``.
* ``neighbors`` (N, k) int64 holds *positions in the ordering*: row i lists the min(i, k) positions j < i
  nearest to position i, sorted by (distance, position), then -1 padding (rows 0..k-1 are padded).
* ``distances`` (N, k) float64 are the canonical distances of those pairs, +inf at the padding.

Row i of ``neighbors`` therefore indexes ``X[ordering]`` (the data in Vecchia order), which is the layout a
sparse inverse-Cholesky builder consumes; :meth:`VecchiaNeighbors.input_rows` maps it back to rows of X and
:meth:`VecchiaNeighbors.to_gpgp` gives GpGp's 1-based, self-first ``NNarray``.

The answer is the exact predecessor query of :class:`~covertreex.api.CoverTree` run on the data *in the
chosen order*: for the residual metric the problem is built once on X as given (so ``m`` and ``seed`` pick
the same inducing points whatever the ordering) and its rows X, V and p are then permuted together, which
leaves every pairwise distance bit for bit unchanged.
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field

import numpy as np

from covertreex import vecchia_orderings
from covertreex.api import CoverTree
from covertreex.engines import engine_available, engine_names
from covertreex.errors import InputTypeError, InvalidInputError, unknown_name
from covertreex.kinds import METRICS
from covertreex.metrics import MetricSpace
from covertreex.residual import ResidualProblem, residual_problem
from covertreex.resources import (
    available_cpus,
    limited_threads,
    require_answer_memory,
    require_memory,
    thread_limit,
)
from covertreex.scalars import as_seed
from covertreex.validation import as_points, check_k


@dataclass(frozen=True, eq=False)
class VecchiaNeighbors:
    """An ordering and each point's nearest predecessors in it (shapes: see :mod:`covertreex.vecchia`)."""

    ordering: np.ndarray
    neighbors: np.ndarray
    distances: np.ndarray
    metric: str
    ordering_name: str
    ordering_seconds: float = 0.0
    neighbor_seconds: float = 0.0
    maximin_evaluations: int | None = field(default=None, repr=False)
    """Distance evaluations the maximin ordering spent (None for other orderings); when the ordering was
    fused with the neighbour search (see FUSED_ORDERINGS), the canonical evaluations of both, and
    ``neighbor_seconds`` is then 0 (all the time counts as ordering). ``neighbor_seconds`` is the wait
    after the ordering ended: rows answered while it ran (covertreex.vecchia_overlap) count in neither."""
    problem: ResidualProblem | None = field(default=None, repr=False)
    """The residual problem the job built on X as given (inducing points, L, V, p; None for a job that
    builds none): what a VIF approximation conditions on besides the neighbours, so that building V again
    is never needed (``problem.permuted(ordering)`` puts its rows in the ordering)."""

    @property
    def k(self) -> int:
        return self.neighbors.shape[1]

    def input_rows(self) -> np.ndarray:
        """``neighbors`` with each entry as a row of the input X (-1 padding kept); row i is still position i
        of the ordering, the point ``X[ordering[i]]``, not ``X[i]``. The neighbours of ``X[j]`` are
        ``input_rows()[np.argsort(ordering)[j]]``, conditioning ``X[j]`` on points ordered before it."""
        return np.where(self.neighbors >= 0, self.ordering[np.maximum(self.neighbors, 0)], -1)

    def to_gpgp(self) -> np.ndarray:
        """GpGp's ``NNarray``: (N, k + 1) float64, 1-based positions in the ordering, row i = (i + 1, its
        neighbours nearest first), NaN where GpGp has NA (the first rows). Its companion, the ordering
        1-based as GpGp's ``order_maxmin`` returns it (``locs[ord, ]`` puts R's points in it), is
        ``ordering + 1``."""
        out = np.empty((self.neighbors.shape[0], self.k + 1))
        out[:, 0] = np.arange(1, out.shape[0] + 1)
        out[:, 1:] = np.where(self.neighbors >= 0, self.neighbors + 1.0, np.nan)
        return out


def _cover_tree(engine: str, metric: str, **options) -> CoverTree:
    """The one place this module builds the public estimator ('auto' is the fastest exact engine), on the
    job's threads (:func:`covertreex.resources.thread_limit`) unless `options` say otherwise."""
    if isinstance(engine, str) and engine != "auto" and engine not in engine_names():
        raise unknown_name("engine", engine, ["auto", *engine_names()])
    options.setdefault("threads", limited_threads())
    return CoverTree(engine=None if engine == "auto" else engine, metric=metric, telemetry=False,
                     **options)


def permuted_problem(problem: ResidualProblem, order: np.ndarray) -> ResidualProblem:
    """`problem` with its rows in `order` (:meth:`ResidualProblem.permuted`); the natural order of all its
    points returns `problem` itself, sharing its arrays instead of copying V."""
    return problem if _is_identity(order, problem.n_points) else problem.permuted(order)


def _is_identity(order: np.ndarray, n: int) -> bool:
    """Whether `order` is the natural ordering of all n rows."""
    return bool(np.array_equal(order, np.arange(n)))


def _order(name: str, X, problem, metric: str, engine: str, seed: int,
           progress) -> tuple[np.ndarray, int | None]:
    """The permutation ordering `name` gives, and the distance evaluations a maximin ordering spent."""
    if not name.startswith("maximin"):
        return vecchia_orderings.simple(name, X.shape[0], seed), None
    in_metric = metric if name == "maximin" else name.removeprefix("maximin-")
    data = problem if in_metric == "residual" else X
    if _orders_alone_by_boxes(in_metric, X, engine):
        return _farthest_order(X, progress)
    if _rust_chosen(engine):  # the rust pass with one neighbour per row: the order is all it keeps
        placed = None if progress is None else lambda n, answered: progress(n)
        order, _, _, evaluations = _fused_pass(in_metric, data, 1, engine, placed, rows=False)
        return order, evaluations
    model = _cover_tree(engine, in_metric, path="tree").fit(data)
    return vecchia_orderings.maximin(model.space, model.tree, progress)


def _predecessors(data, k: int, metric: str, engine: str, client,
                  answered: Callable[[int], None] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Every point's k nearest predecessors in `data`, here or (given a dask client) on its cluster; here,
    in :data:`PROGRESS_RANGES` ranges of equal cost when `answered(n)` is to hear how many rows are done."""
    if client is None and answered is None:
        result = _cover_tree(engine, metric).fit(data).query(k=k, predecessor=True)
        return result.indices, result.distances
    from covertreex import distributed

    index = distributed.prepare(data, k, metric=metric, engine=engine, predecessor=True,
                                threads=limited_threads())
    if client is not None:
        return distributed.run(index, client)
    n = index.queries.n_queries
    indices, distances = np.empty((n, k), dtype=np.int64), np.empty((n, k))  # each range's rows go in once
    answer_rows(index, 0, n, indices, distances, answered)
    return indices, distances


def answer_rows(index, start: int, stop: int, indices: np.ndarray, distances: np.ndarray,
                answered: Callable[[int], None] | None) -> None:
    """Rows start..stop-1 of the prepared `index` (:func:`covertreex.distributed.prepare`) into the same rows
    of `indices` and `distances`: in one call, or, when `answered(n)` is to hear how many rows are done, in
    up to :data:`PROGRESS_RANGES` ranges of equal cost, each heard as it ends (the same answer)."""
    from covertreex import distributed

    if answered is None:
        indices[start:stop], distances[start:stop] = distributed.answer_range(index, start, stop)
        return
    limits = index.costed_limits[start:stop]
    pairs = index.queries.eligible(index.space.n_points)[start:stop].sum(dtype=np.float64)
    count = _range_count(pairs)
    for a, b in distributed.cost_balanced_ranges(limits, index.k, count, index.pairs_per_neighbour):
        indices[start + a:start + b], distances[start + a:start + b] = distributed.answer_range(
            index, start + a, start + b)
        answered(start + b)


def _range_count(pairs: float) -> int:
    """How many ranges of equal cost a query of `pairs` eligible pairs runs in when its progress is heard."""
    return int(min(PROGRESS_RANGES, max(1, math.ceil(pairs / PAIRS_PER_PROGRESS_RANGE))))


PROGRESS_RANGES = 16
"""Most ranges of equal cost (:func:`covertreex.distributed.cost_balanced_ranges`, the Dask job's) the
predecessor query runs in when a progress callback is given, so that it hears of the rows as they are
answered: in one call it heard 0 and then N, and the command line's bar sat at half for the whole query (an
outside trial). The answer is the one call's, byte for byte (the ranges of a Dask job are)."""

PAIRS_PER_PROGRESS_RANGE = 1 << 29
"""Eligible pairs per range of :data:`PROGRESS_RANGES` (the count rounded up): each range costs 33-42 ms
more than its share of one call (the residual split screen, N = 32,768-65,536, m = 512, k = 50, 2026-12-07:
16 ranges 1.96-1.98 s against 1.46-1.47 s for one call at 32,768, 4.42-4.45 against 3.70-3.88 at 65,536;
4 ranges 1.53-1.56 and 3.69-3.86), so the N (N - 1) / 2 pairs of N = 32,768 (1.5 s) run in one range,
65,536 in four and 131,072 in sixteen."""


FUSED_ORDERINGS = {"residual": ("maximin", "maximin-residual"), "euclidean": ("maximin", "maximin-euclidean")}
"""Per neighbour metric, the maximin orderings in that same metric: computed fused with the neighbours
(rust/core/src/maximin with the rust engine, chosen by 'auto' when built; covertreex.maximin_dense for
residual under 'auto' without it). At N = 8,192 the gold pass halved the whole wait of the tree walk
followed by the predecessor query (docs/vecchia.md). Where the rust pass takes the split screen
(:func:`_maximin_split`) and k exceeds :func:`split_fused_max_k`, or a Dask cluster finds the rows, it
orders alone instead (one neighbour per row) and the predecessor query on the split finds the rows. A
Euclidean maximin ordering of points of at most :data:`FARTHEST_MAX_WIDTH` coordinates is found alone by
the rust engine's packed boxes, and the rows by the predecessor query: with two threads or more, the rows
of each finished prefix of the order while the rest is placed (:mod:`covertreex.vecchia_overlap`)."""

SPLIT_FUSED_MAX_K = {"amx": 16, "vnni": 16, "avx2": 200}
"""Per int8 kernel (:func:`covertreex.engines.rust.int8_kernel`, as :data:`covertreex.split_screen.PAYS`),
the largest k for which the rust pass on the split screen finds the rows itself (:func:`split_fused_max_k`).
The split lets few of the ordering's pairs through, but a row's candidates in the pass's early rounds are
nearly all pairs, more so the larger k, and go to the f64 GEMM; the order alone then the split's query
multiplies every pair's int8 rows twice instead. Which costs more depends on the int8 products' speed.
AMX (N = 32,768, m = 512; 2026-12-06 11:37 UTC, Intel Xeon, 2 cores; fused on the split against the order
alone then the query, split prebuilt, two runs each): k = 4: 2.23, 2.28 s against 2.92, 2.91 s; k = 10:
2.54, 2.66 against 2.86, 2.75; k = 20: 3.43, 3.26 against 3.59, 2.97; k = 30: 3.87, 3.87 against 3.02,
3.56; the whole job at k = 50: fused 6.02-7.31 s, the order alone then the query 4.10-4.51 s (docs/
benchmarks.md, "The maximin job on the split"). AVX2 (whole jobs, fresh processes, the same answers;
2026-12-08 00:00-00:12 UTC, AMD EPYC, 2 cores; docs/benchmarks.md, "The fused maximin pass on AVX2"):
fused at every k measured, 10 to 200, as fast or faster, 23% at k = 50 and N = 65,536. VNNI, not
measured, keeps AMX's rule."""


SPLIT_ROW_FLOOR = 0.5
"""The residual similarity below which the rust maximin pass on the split keeps no pair for a row
(rust/core/src/maximin/split.rs): early in the pass a point's k-th neighbour among the few points placed is
far, so nearly every pair came through the split's bound (loose below a similarity of about 0.4 here) and
took an f64 value, only to be superseded by nearer points placed later: 104 M of the 537 M pairs at N =
32,768, m = 512, k = 50. A row whose k-th neighbour may lie beyond the floor is left to the predecessor query
of those positions; they belong mostly to points placed early, which have few predecessors. There
(2026-12-08, AMD EPYC, AVX2, 2 cores; docs/benchmarks.md, "A floor under the fused pass's rows"): floor 0.2
left 9% of the rows (1.0% of the pairs the query screens) and valued 67 M pairs, 0.3 52 M, 0.4 32 M, 0.5
12 M and 38% of the rows (16% of the pairs); the whole job took 12% less CPU at 0.5 than without a floor
(17.5-21.1 against 20.2-22.7 CPU s; 26.4 against 30.3 s of wall at N = 65,536), the same answer."""


def split_fused_max_k() -> int:
    """:data:`SPLIT_FUSED_MAX_K` for this CPU's int8 kernel; for one not listed (the portable loop, where
    'auto' never takes the split), the smallest listed."""
    from covertreex.engines.rust import int8_kernel

    return SPLIT_FUSED_MAX_K.get(int8_kernel(), min(SPLIT_FUSED_MAX_K.values()))


FARTHEST_MAX_WIDTH = 7
"""Coordinates up to which a Euclidean maximin ordering under the rust engine is found alone by the packed
boxes (rust/core/src/maximin/farthest.rs, O(N log N) evaluations in a few dimensions) and the rows by the
predecessor query in that order, instead of by the fused pass, which scans every unplaced point each
round. Whole job, k = 30, uniform points, boxes against the fused pass, the same answers (2026-12-07 16:14
UTC, Intel Xeon, 2 cores; `python benchmarks/euclidean_vecchia.py --sizes 20000,200000 --dims 5,6,7,8,10
--numpy-max 1`, docs/benchmarks.md "Boxes cut at the median"): N = 20,000: d = 5 0.31
against 0.38 s, 6: 0.32 / 0.39, 7: 0.38 / 0.39, 8: 0.49 / 0.40, 10: 0.77 / 0.45; N = 200,000: d = 5 3.37 /
9.07, 6: 5.20 / 11.53, 7: 8.46 / 16.12, 8: 16.42 / 17.89, 10: 25.08 / 18.17. In more coordinates every box
is near every point. The ordering alone (a residual job's 'maximin-euclidean') follows the same rule."""


def _orders_alone_on_split(metric: str, k: int, problem, engine: str, clustered: bool) -> bool:
    """Whether the maximin pass of a residual job with k neighbours orders alone on the split screen, the
    predecessor query finding the rows: above :data:`SPLIT_FUSED_MAX_K`, or for any k when a Dask cluster
    finds the rows (`clustered`). On the split the fused pass costs more than ordering alone (7.6 against
    5.4 s at N = 32,768, k = 50 on AVX2, and the rows its floor leaves take the query another 2 s), so it
    pays only against the query in the same process; a cluster's workers take the query's pairs off this
    machine."""
    return (metric == "residual" and _rust_chosen(engine) and (clustered or k > split_fused_max_k())
            and _maximin_split(MetricSpace.create(metric, problem), engine) is not None)


def _orders_alone_by_boxes(ordering_metric: str, X: np.ndarray, engine: str) -> bool:
    """Whether a maximin ordering in `ordering_metric` of the points X is found alone by the packed boxes
    (:data:`FARTHEST_MAX_WIDTH`)."""
    return ordering_metric == "euclidean" and _rust_chosen(engine) and X.shape[1] <= FARTHEST_MAX_WIDTH


def _farthest_order(X: np.ndarray, progress) -> tuple[np.ndarray, int]:
    """The exact Euclidean maximin order of X by the packed boxes, and its canonical evaluations."""
    from covertreex.engines.rust import maximin_order

    points = MetricSpace.create("euclidean", X).data.X
    return maximin_order(points, vecchia_orderings.first_point(points), progress, threads=limited_threads())


def _rust_chosen(engine: str) -> bool:
    """Whether `engine` runs the rust engine here ('auto' does when the extension is built)."""
    return engine == "rust" or (engine == "auto" and engine_available("rust"))


def _fused_pass(metric: str, data, k: int, engine: str, progress, rows: bool = True):
    """(order, neighbour positions, distances, evaluations) of the maximin pass fused with the neighbour
    search: rust's when the rust engine is chosen, else gold's (the same order and rows, bit for bit).
    `rows`: whether the rows are wanted (else only the order is, and any row may be padding). On the split
    screen, the pass keeps pairs for the rows only up to :data:`SPLIT_ROW_FLOOR`, and the rows it leaves
    unproven are found by the predecessor query of those positions. `progress(placed, answered)` hears the
    points placed and the rows answered, during the pass and, heard of, as the unproven rows are found (in
    as many parts of equal cost as :func:`answer_rows` takes for their pairs, the answer of one call)."""
    space = MetricSpace.create(metric, data)
    require_memory(vecchia_orderings.working_bytes(space.data, k),
                   f"the maximin pass over {space.n_points} points with k = {k} neighbours each")
    first = vecchia_orderings.first_point(space.data.X)
    if not _rust_chosen(engine):
        from covertreex.maximin_dense import maximin_with_neighbors as run  # Numba: gold's pass only

        return run(space.data, first, k, progress)
    from covertreex.engines.rust import maximin_on_split

    split = _maximin_split(space, engine)
    floor = -SPLIT_ROW_FLOOR if split is not None and rows else math.inf
    order, indices, distances, evaluations, unproven = maximin_on_split(
        space.data, first, k, split, floor, progress, threads=limited_threads())
    if unproven.size:
        from covertreex import distributed

        require_memory(_permuted_bytes(space.problem), f"the predecessor query of the {unproven.size} "
                       f"rows the maximin pass over {space.n_points} points left unproven (the problem in "
                       "its order)")
        index = distributed.prepare(permuted_problem(space.problem, order), k, metric="residual",
                                    engine=engine, predecessor=True, threads=limited_threads())
        n, answered = space.n_points, space.n_points - unproven.size
        if progress is not None:  # the last round's rows are written once the pass ends
            progress(n, answered)
        count = _range_count(unproven.sum(dtype=np.float64)) if progress is not None else 1
        # Position i has i predecessors: the positions are the limits of the Dask job's ranges of equal cost.
        for a, b in distributed.cost_balanced_ranges(unproven, index.k, count, index.pairs_per_neighbour):
            part = unproven[a:b]
            indices[part], distances[part], more = distributed.answer_positions(index, part)
            evaluations += more
            answered += part.size
            if progress is not None:
                progress(n, answered)
    return order, indices, distances, evaluations


def _permuted_bytes(problem: ResidualProblem) -> int:
    """The bytes of `problem`'s arrays copied when it is permuted: X, V, p and its split screen's rows."""
    split = problem.split_screen
    return sum(a.nbytes for a in (problem.X, problem.V, problem.p, split.q, split.factors))


def _maximin_split(space: MetricSpace, engine: str):
    """The split screen (covertreex.split_screen) the rust maximin pass over `space` takes, else None: by the
    predecessor query's rule on the same data, whose pairs the pass screens too (also for a residual
    ordering of a Euclidean job, where no residual query follows)."""
    if space.problem is None or not _rust_chosen(engine):
        return None
    from covertreex.engines.rust import dense_split

    return dense_split(space, space.all_points(predecessor=True), _cover_tree(engine, "residual").config)


def _fused(metric: str, data, k: int, name: str, engine: str, report, start: float) -> VecchiaNeighbors:
    """Maximin ordering in `metric` and every row's neighbours in one pass; its time from `start` (a
    perf_counter reading) counts as ordering."""
    def placed(n: int, answered: int) -> None:
        report("ordering", n)
        report("neighbours", answered)

    heard = None if report is _unheard else placed
    order, indices, distances, evaluations = _fused_pass(metric, data, k, engine, heard)
    report("ordering", order.shape[0])  # a single point takes no round, so no report came
    report("neighbours", order.shape[0])
    return VecchiaNeighbors(order, indices, distances, metric, name, time.perf_counter() - start, 0.0,
                            evaluations, data if metric == "residual" else None)


def _residual_options(metric: str, ordering: str, **given) -> dict | None:
    """The residual problem's options the caller gave (None: residual_problem's default), or None for a
    job that builds no residual problem; such a job given one of them is an error, not a silent no-op."""
    chosen = {name: value for name, value in given.items() if value is not None}
    if vecchia_orderings.needs_residual_problem(metric, ordering):
        return chosen
    if chosen:
        raise InvalidInputError(f"{', '.join(chosen)}: only for the residual metric or ordering "
                                f"'maximin-residual' (the metric is {metric!r}, the ordering {ordering!r})")
    return None


class _NotGiven:
    """The default of `seed`, told apart from every value a caller can pass (None included, which is
    refused as everywhere: it would draw a fresh seed each call)."""

    def __repr__(self) -> str:
        return "<not given: 0>"


SEED_NOT_GIVEN = _NotGiven()


def _seed_option(seed, metric: str, ordering: str) -> int:
    """The checked seed (not given: 0); given to a job that draws nothing at random, an error rather than a
    silent no-op, as the residual options are (the CLI's --seed follows the same rule)."""
    if seed is SEED_NOT_GIVEN:
        return 0
    seed = as_seed(seed)
    if not vecchia_orderings.uses_seed(metric, ordering):
        raise InvalidInputError(f"seed: only for ordering 'random' or a residual problem's inducing points "
                                f"(the metric is {metric!r}, the ordering {ordering!r})")
    return seed


def vecchia_neighbors(
    X, k: int, *, metric: str = "residual", ordering="maximin", kernel: str | None = None, lengthscale=None,
    variance: float | None = None, m: int | None = None, seed: int | _NotGiven = SEED_NOT_GIVEN,
    engine: str = "auto", progress: Callable[[str, int], None] | None = None, scheduler=None,
    threads: int | None = None,
) -> VecchiaNeighbors:
    """Order the N rows of X, then find each point's k nearest predecessors in that ordering, exactly.

    metric: 'residual' (the residual correlation of an RBF/Matern 5/2 GP after m inducing points; kernel,
    lengthscale, variance, m and seed as :func:`covertreex.residual_problem` takes them, None for its defaults
    'rbf', 1.0, 1.0, 512; RBF is variance * exp(-r^2 / 2) and Matern 5/2 variance * (1 + a + a^2 / 3) *
    exp(-a), a = sqrt(5) r, with r the distance in lengthscales; the residual variance has an absolute floor
    of 1e-9, so keep variance near 1: docs/vecchia.md) or 'euclidean'. kernel, lengthscale, variance and m
    given to a job that builds no residual problem (metric 'euclidean' with an ordering other than
    'maximin-residual') are refused, not ignored. seed (an integer >= 0; not given: 0) picks the inducing
    points and the random ordering, and is refused, likewise, by a job that draws neither.
    ordering: 'natural', 'random' (``default_rng(seed).permutation``), 'maximin' (exact maximin in
    `metric`), 'maximin-euclidean', 'maximin-residual', or a permutation of range(N).
    engine: 'auto' (or None, as CoverTree takes it; the fastest exact way: 'rust' in perf mode when it is
    built, which takes the split screen where it pays, else gold's fused pass of
    :mod:`covertreex.maximin_dense` for residual maximin), 'rust'
    (in parity mode, an explicit engine's default, which keeps the f64 screen: the same answers, 1.6x the
    wait of 'auto' at N = 32,768, m = 512), 'gold' or 'brute' (maximin by that engine's tree walk, then its
    predecessor query). With rust ('rust', or 'auto' when built), a Euclidean maximin of points of at most
    FARTHEST_MAX_WIDTH (7) coordinates, in either job, is found alone by the packed boxes of
    rust/core/src/maximin/farthest.rs in O(N log N) evaluations, and the predecessor query finds the rows
    (in a Euclidean job on two or more threads, those of each finished prefix of the order while the rest
    is placed: covertreex/vecchia_overlap.py, the same answer); any other maximin in the neighbour metric is
    fused with the neighbours by rust/core/src/maximin, and one in the other metric runs that pass for the
    ordering alone, then the predecessor query.
    `progress(stage, n)` hears how many points of N a stage ('ordering', then 'neighbours'; a fused pass,
    and the overlapping Euclidean job, report both as they go) has finished, always on the calling thread;
    heard of, the neighbours of an ordering found first are found in up to PROGRESS_RANGES (16) ranges of
    equal cost, each reported as it ends (the same answer). `scheduler` (a
    dask.distributed Client or a scheduler address) finds the neighbours on that cluster
    (:mod:`covertreex.distributed`; the ordering is computed here); the answer is byte-identical. A maximin
    ordering that the engine fuses with the neighbours (above) runs here whatever the scheduler: the pass
    finds the neighbours while it orders, for little more than ordering alone, so the cluster could only
    repeat them (docs/vecchia.md, "On a Dask cluster"); where it takes the split screen, where that pass
    costs more than ordering alone, the ordering runs here and the neighbours on the cluster.
    threads: how many threads the job runs on here (None: every CPU the process may use; at most that
    many), every parallel step included (V's construction, the split screen, the ordering, the neighbours);
    never changes the answer. A cluster's workers keep their own thread counts.
    Returns a :class:`VecchiaNeighbors`.
    """
    if metric not in METRICS:
        raise unknown_name("metric", metric, METRICS)
    if engine is None:  # CoverTree's default, 'auto': compared by name below (None took the slow tree walk)
        engine = "auto"
    if isinstance(X, ResidualProblem):  # NumPy would see an object, "dtype object" the error
        raise InputTypeError("vecchia_neighbors takes the points X and builds the residual problem of the "
                             "ordering it chooses (kernel, lengthscale, variance, m, seed); pass problem.X "
                             "and those parameters, not a ResidualProblem")
    X = as_points(X, "X")
    name, given = vecchia_orderings.resolve(ordering, X.shape[0])
    residual = _residual_options(metric, name, kernel=kernel, lengthscale=lengthscale, variance=variance, m=m)
    seed = _seed_option(seed, metric, name)
    if progress is not None and not callable(progress):
        raise InputTypeError(f"progress must be None or a callable (stage, n), got {type(progress).__name__}")
    k = check_k(k, X.shape[0], allow_padding=True)
    require_answer_memory(X.shape[0], k)
    threads = _cover_tree(engine, metric, threads=threads).config.threads  # checks engine and threads
    _warn_if_transposed(X, k)  # after every refusal: no warning before an error
    with ExitStack() as stack:
        stack.enter_context(thread_limit(threads))
        client = None
        if scheduler is not None:  # connect first: an unreachable scheduler fails before any work
            from covertreex import distributed

            client = stack.enter_context(distributed.connected(scheduler))
        problem = None
        if residual is not None:
            problem = residual_problem(X, **residual, seed=seed)
        report = _unheard if progress is None else progress
        start = time.perf_counter()  # the ordering's clock: a split screen it takes is built on it
        fused = name in FUSED_ORDERINGS[metric] and (
            _rust_chosen(engine) or (engine == "auto" and metric == "residual"))
        if fused and _orders_alone_on_split(metric, k, problem, engine, client is not None):
            fused = False  # the pass orders alone on the split, the query finds the rows (FUSED_ORDERINGS)
        if fused and _orders_alone_by_boxes(metric, X, engine):
            fused = False  # the boxes order alone, the query finds the rows (FARTHEST_MAX_WIDTH)
        if fused:
            result = _fused(metric, problem if metric == "residual" else X, k, name, engine, report, start)
        else:
            result = _ordered_then_queried(X, k, metric, name, given, problem, engine, seed, report, client,
                                           start)
    _warn_if_degenerate(result)
    return result


def _unheard(stage: str, n: int) -> None:
    """The progress of a job nobody asked to hear (its neighbours are then found in one call)."""


def _ordered_then_queried(X, k, metric, name, given, problem, engine, seed, report, client, start):
    """The job of an ordering given, or computed on its own, then the predecessor query in it; for a
    Euclidean maximin job by the boxes with a core to spare, the rows come while the order is placed."""
    threads = limited_threads() or available_cpus()
    if (given is None and client is None and metric == "euclidean" and threads >= 2
            and name in FUSED_ORDERINGS[metric] and _orders_alone_by_boxes(metric, X, engine)):
        space, model = MetricSpace.create("euclidean", X), _cover_tree(engine, metric)
        if model.engine.box_screen(space, model.config):  # the rows on the box screen, whose prefixes
            # pack in no time; engine='rust' (parity mode) built a tree per prefix: 15-25% slower (a review)
            from covertreex.vecchia_overlap import ordered_with_rows

            points = space.data.X
            order, evaluations, ordering_seconds, indices, distances = ordered_with_rows(
                points, vecchia_orderings.first_point(points), k, engine, threads, report,
                report is not _unheard, start)
            return VecchiaNeighbors(order, indices, distances, metric, name, ordering_seconds,
                                    time.perf_counter() - start - ordering_seconds, evaluations, problem)
    order, evaluations = (given, None) if given is not None else _order(
        name, X, problem, metric, engine, seed, lambda n: report("ordering", n))
    ordering_seconds = time.perf_counter() - start
    report("ordering", X.shape[0])
    if metric == "residual":
        data = permuted_problem(problem, order)
    else:
        data = X if _is_identity(order, X.shape[0]) else X[order]
    start = time.perf_counter()
    report("neighbours", 0)
    told = None if report is _unheard else (lambda n: report("neighbours", n))  # unheard on a cluster
    indices, distances = _predecessors(data, k, metric, engine, client, told)
    report("neighbours", X.shape[0])
    return VecchiaNeighbors(order, indices, distances, metric, name, ordering_seconds,
                            time.perf_counter() - start, evaluations, problem)


DEGENERATE_SHARE = 0.5
"""Share of the points whose nearest predecessor is at residual distance exactly 1 (no residual correlation
at all), or exactly 0 at other coordinates (perfect correlation), above which :func:`vecchia_neighbors`
warns: their neighbours are ties broken by position. Judged on the nearest only: a k beyond the correlated
neighbourhood of well-scaled points (1-D points 1 apart, lengthscale 1, k = 20) lists many neighbours at
1.0 legitimately."""


class VecchiaJobWarning(UserWarning):
    """A Vecchia job's answer is exact but likely not what its caller meant; `pcct vecchia` tells each as one
    line on stderr and lists it in its summary."""


class TransposedPointsWarning(VecchiaJobWarning):
    """X has fewer rows (two or more) than coordinates and k reaches every row: every neighbour row is
    padded, which is what a job on X.T looks like (points as columns, as R's and some GP code's matrices hold
    them). The answer is still the exact one for X's rows (k >= N is allowed: k = N - 1 is the exact GP)."""


def _warn_if_transposed(X: np.ndarray, k: int) -> None:
    n, d = X.shape
    if 2 <= n <= k and d > n:  # one point is one row of output, its padding plain to see
        warnings.warn(TransposedPointsWarning(
            f"X has {n} rows of {d} coordinates each and k = {k} is at least the number of rows, so every "
            f"row of neighbours is padded; the rows are the points: if yours are the columns, transpose X"),
            stacklevel=3)


class DegenerateNeighboursWarning(VecchiaJobWarning):
    """The residual metric cannot tell most points' neighbours apart: they are ties broken by position,
    exact but of no use to a GP (:class:`UncorrelatedNeighboursWarning`,
    :class:`PerfectlyCorrelatedNeighboursWarning`)."""


class UncorrelatedNeighboursWarning(DegenerateNeighboursWarning):
    """Most points have no residual correlation with even their nearest predecessor: the kernel's
    lengthscale is likely far below the spacing of the points (an outside user's trial: points in
    [0, 1000]^2 with the default lengthscale 1 gave 97.8% of the distances at 1.0 and a 'maximin' ordering
    that was the natural one)."""


class PerfectlyCorrelatedNeighboursWarning(DegenerateNeighboursWarning):
    """Most points are perfectly correlated with their nearest predecessor though their coordinates
    differ: the inducing points leave no residual to tell them apart, the lengthscale being far above the
    points' spread (an outside trial: points in the unit square, lengthscale 1e8, 99.8% of the points at
    distance 0 and a 'maximin' ordering that was the natural one)."""


def _warn_if_degenerate(result: VecchiaNeighbors) -> None:
    if result.metric != "residual":
        return
    listed = result.neighbors[:, 0] >= 0
    rows = max(1, int(listed.sum()))
    nearest = result.distances[:, 0]
    scales = ", ".join(f"{scale:g}" for scale in np.unique(result.problem.lengthscale))
    uncorrelated = float(np.count_nonzero(listed & (nearest == 1.0))) / rows
    if uncorrelated > DEGENERATE_SHARE:
        warnings.warn(UncorrelatedNeighboursWarning(
            f"{uncorrelated:.1%} of the points are at residual distance 1.0 from even their nearest "
            f"predecessor, the distance's largest value (no correlation left): their neighbours, and a "
            f"maximin ordering, are ties broken by position; is the lengthscale ({scales}) on the scale of "
            f"the points' spacing?"), stacklevel=3)
        return
    X = result.problem.X  # in input order; ordering[i] is position i's row
    elsewhere = (X[result.ordering] != X[result.ordering[np.maximum(result.neighbors[:, 0], 0)]]).any(axis=1)
    correlated = float(np.count_nonzero(listed & (nearest == 0.0) & elsewhere)) / rows
    if correlated > DEGENERATE_SHARE:
        warnings.warn(PerfectlyCorrelatedNeighboursWarning(
            f"{correlated:.1%} of the points are at residual distance 0 from their nearest predecessor, the "
            f"distance's smallest value, at other coordinates (perfect correlation: the inducing points "
            f"leave no residual to tell them apart): their neighbours, and a maximin ordering, are ties "
            f"broken by position; is the lengthscale ({scales}) far above the points' spread?"),
            stacklevel=3)
