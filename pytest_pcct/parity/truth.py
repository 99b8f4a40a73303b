"""What an engine's answer claims, checked against the problem it answers: strict form, true distances.

A comparison of two answers is only as sound as their claims: an engine that lists a wrong index with the
right distance, or the farthest point labelled as the nearest, can agree with a reference on every distance.
So the plugin checks every answer against its problem on its own, before any comparison:

* form: integer indices, float64 distances, no distance NaN or negative (-0.0 included: the zero of a
  distance is +0.0), every listed index a point of the problem and eligible (j < i in predecessor row i),
  listed entries first and then (-1, inf) padding, exactly min(k, eligible) entries listed;
* truth: the canonical distance (``covertreex.metrics``: float64, fixed operation order) of every listed
  (query, index) pair equals the reported one within ``atol + rtol * true``;
* then: no index twice, rows sorted by (distance, index).

Completeness (no closer point left out) is the comparison's job: where two answers list different
indices, :func:`left_out` scans those rows exhaustively for a point an answer leaves out though no ranking
of distances within the tolerance of the truth could.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from numba import njit

from covertreex.errors import InvalidInputError
from covertreex.interrupts import deferring
from covertreex.metrics.kernels import distance
from pytest_pcct.parity import fpenv

__all__ = ["check_answer", "left_out", "true_distances"]


@njit(cache=True)
def _listed_distances(A, rows, a_index, B, indices):  # pragma: no cover - compiled
    out = np.full(indices.shape, np.inf)
    n = B.X.shape[0]
    for r in range(indices.shape[0]):
        for p in range(indices.shape[1]):
            j = indices[r, p]
            if 0 <= j < n:
                out[r, p] = distance(A, rows[r], a_index[r], B, j)
    return out


@lru_cache(maxsize=8)
def _spaces(problem):
    """(indexed space, query set) of `problem`, built once per problem object."""
    from covertreex.metrics import MetricSpace

    space = MetricSpace.create(problem.metric, problem.residual if problem.residual is not None
                               else problem.points)
    if problem.predecessor:
        return space, space.all_points(predecessor=True)
    if problem.queries is not None:
        return space, space.point_queries(problem.queries)
    return space, space.indexed_queries(problem.query_indices)


@deferring
def true_distances(problem, indices, rows=None) -> np.ndarray:
    """The canonical distance of every (query row, listed index) pair; inf where no point is listed.
    `rows` (None: every query row, in order) picks the query rows `indices` lists for."""
    __tracebackhide__ = True
    found = fpenv.changes()
    if found:
        raise AssertionError(f"true distances cannot be computed: {fpenv.described(found)}")
    space, queries = _spaces(problem)
    listed = np.ascontiguousarray(indices, dtype=np.int64)
    at = np.arange(queries.n_queries) if rows is None else np.asarray(rows, dtype=np.int64)
    if listed.ndim != 2 or listed.shape[0] != at.size or ((at < 0) | (at >= queries.n_queries)).any():
        raise InvalidInputError(f"true_distances needs one row of indices per query row asked for (query "
                                f"rows 0..{queries.n_queries - 1}), got indices of shape {listed.shape} "
                                f"for {at.size} rows")
    return _listed_distances(queries.data, queries.rows[at], queries.dataset_index[at], space.data, listed)


ROW_BLOCK_CELLS = 1 << 20
"""(query row, point) pairs per block of :func:`left_out`'s exhaustive scan (about 35 MB with the block's
indices, distances and temporaries)."""


def left_out(problem, answers, rows, *, rtol: float, atol: float):
    """The first point one of `answers` ((indices, distances) pairs of one problem) leaves out though no
    truthful ranking could, among the query rows `rows` (an exhaustive scan of those rows, their true
    distances computed once for every answer): an eligible point an answer does not list whose true
    distance t is below the row's last listed distance by more than ``atol + rtol * t``. An engine that
    reports every distance within that much of the truth and lists the k smallest of its reports lists
    every such point. Returns (answer number, row, index, true distance, k-th distance) or None; rows that
    list no point are skipped (their form, min(k, eligible) entries, is :func:`check_answer`'s)."""
    __tracebackhide__ = True
    _, queries = _spaces(problem)
    n = problem.n_points
    rows = np.asarray(rows, dtype=np.int64)
    per_block = max(1, ROW_BLOCK_CELLS // max(1, n))
    for start in range(0, rows.size, per_block):
        block = rows[start : start + per_block]
        every = np.broadcast_to(np.arange(n, dtype=np.int64), (block.size, n))
        every = np.where(every < queries.limit[block, None], every, -1)  # predecessor rows: j < i only
        truth = true_distances(problem, every, block)
        for number, (indices, distances) in enumerate(answers):
            listed = (indices[block] >= 0).sum(axis=1)
            kth = np.where(listed > 0, distances[block, np.maximum(listed - 1, 0)], -np.inf)[:, None]
            inside = np.zeros(every.shape, dtype=bool)
            at, slot = np.nonzero(indices[block] >= 0)
            inside[at, indices[block][at, slot]] = True
            with np.errstate(invalid="ignore"):
                found = (every >= 0) & ~inside & (kth - truth > atol + rtol * truth)
            if found.any():
                r, j = (int(v) for v in np.argwhere(found)[0])
                return number, int(block[r]), j, float(truth[r, j]), float(kth[r, 0])
    return None


def _first(mask: np.ndarray) -> tuple[int, int]:
    row, pos = np.argwhere(mask)[0]
    return int(row), int(pos)


def _fail(label: str, text: str, mask: np.ndarray | None = None) -> None:
    __tracebackhide__ = True
    count = f"\n  rows affected: {int(mask.any(axis=1).sum())} of {mask.shape[0]}" if mask is not None else ""
    raise AssertionError(f"{label}: {text}{count}")


def _shown(value) -> str:
    """A reported distance as the message shows it: a float's repr, or whatever an ill-typed answer holds."""
    try:
        return repr(float(value))
    except (TypeError, ValueError):
        return repr(value)


def _entry(indices, reported, truth, row: int, pos: int) -> str:
    return (f"query row {row}, position {pos}, index {int(indices[row, pos])}: reported distance "
            f"{float(reported[row, pos])!r}, true distance {float(truth[row, pos])!r}")


def check_answer(indices, distances, problem, *, rtol: float, atol: float, label: str = "answer") -> None:
    """Assert `indices`/`distances` (n_queries, k) are a well-formed, truthful answer to `problem`.

    Raises AssertionError naming query row, position, index, and reported vs true distance of the first
    breach (see the module docstring for the rules, checked in that order)."""
    __tracebackhide__ = True
    indices, raw = np.asarray(indices), np.asarray(distances)
    if not np.issubdtype(indices.dtype, np.integer):
        _fail(label, f"indices have dtype {indices.dtype}; they must be integers")
    n, (n_rows, k) = problem.n_points, indices.shape
    outside = (indices < -1) | (indices >= n)
    if outside.any():
        row, pos = _first(outside)
        _fail(label, f"query row {row}, position {pos}: index {int(indices[row, pos])} is not a point of the "
                     f"problem (n={n}: indices 0..{n - 1}, or -1 for padding); reported distance "
                     f"{_shown(raw[row, pos])}", outside)
    indices = indices.astype(np.int64, copy=False)
    truth = true_distances(problem, indices)
    if raw.dtype.kind == "f" and raw.dtype.itemsize == 8:
        raw = raw.astype(np.float64, copy=False)  # float64 in either byte order
    if raw.dtype != np.float64:
        example = ""  # objects or text: no value to compare (None made astype raise a bare TypeError)
        if raw.dtype.kind in "biuf":
            changed = raw.astype(np.float64) != truth
            example = (f", e.g. {_entry(indices, raw, truth, *_first(changed))}" if changed.any() else
                       " (its values happen to equal the true distances in this answer)")
        _fail(label, f"distances have dtype {raw.dtype}, not float64 (the distances of record){example}")
    reported = raw
    listed = indices >= 0
    eligible = (np.arange(n_rows) if problem.predecessor else np.full(n_rows, n))[:, None]
    checks = (
        (np.isnan(reported), "the distance is NaN"),
        (np.signbit(reported), "the distance is negative (a distance is >= 0, and its zero is +0.0, not "
                               "-0.0)"),
        (listed & (indices >= eligible),
         "the index is not eligible (predecessor row i may list only indices j < i)"),
        (~listed & (reported != np.inf), "padding (-1) must have distance inf"),
        (listed & np.pad(~listed[:, :-1], ((0, 0), (1, 0))).cumsum(axis=1).astype(bool),
         "an index is listed after padding (-1); padding comes last"),
    )
    for mask, why in checks:
        if mask.any():
            row, pos = _first(mask)
            _fail(label, f"{_entry(indices, reported, truth, row, pos)}: {why}", mask)
    expected = np.minimum(eligible[:, 0], k)
    short = listed.sum(axis=1) != expected
    if short.any():
        row = int(np.flatnonzero(short)[0])
        count, must = int(listed[row].sum()), int(expected[row])
        why = (f"position {count} is padded (-1) although more points are eligible" if count < must else
               f"only {must} points are eligible, so positions {must}.. must be padding (-1, inf) (an index "
               "listed twice or an ineligible one is no neighbour)")
        _fail(label, f"query row {row} lists {count} indices but must list min(k, eligible points) = {must}: "
                     f"{why}", short[:, None])
    with np.errstate(invalid="ignore"):
        wrong = listed & ~(np.abs(reported - truth) <= atol + rtol * np.abs(truth))
    if wrong.any():
        row, pos = _first(wrong)
        gap = abs(float(reported[row, pos]) - float(truth[row, pos]))
        _fail(label, f"{_entry(indices, reported, truth, row, pos)}: the reported distance is not the true "
                     f"distance of the listed index (|reported - true| = {gap:.3g} > atol + rtol*true = "
                     f"{atol + rtol * abs(float(truth[row, pos])):.3g})", wrong)
    order = np.sort(np.where(listed, indices, -1 - np.arange(k)[None, :]), axis=1)
    twice = np.zeros_like(listed)
    twice[:, 1:] = order[:, 1:] == order[:, :-1]
    if twice.any():
        row, rank = _first(twice)
        index = int(order[row, rank])
        where = np.flatnonzero(indices[row] == index).tolist()
        _fail(label, f"{_entry(indices, reported, truth, row, where[1])}: the index is listed more than "
                     f"once (positions {where})", twice)
    before = listed[:, :-1] & listed[:, 1:]
    unsorted = before & ((reported[:, :-1] > reported[:, 1:])
                         | ((reported[:, :-1] == reported[:, 1:]) & (indices[:, :-1] > indices[:, 1:])))
    if unsorted.any():
        row, pos = _first(unsorted)
        _fail(label, f"query row {row} is not sorted by (distance, index) at position {pos}: index "
                     f"{int(indices[row, pos])} at distance {float(reported[row, pos])!r} comes before index "
                     f"{int(indices[row, pos + 1])} at distance {float(reported[row, pos + 1])!r} "
                     f"(true distances {float(truth[row, pos])!r} and {float(truth[row, pos + 1])!r})",
              unsorted)
