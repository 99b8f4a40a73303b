"""Parity assertions for k-NN answers and telemetry; plain functions, usable with or without pytest.

Each raises ``AssertionError`` with a message that can be read without a debugger: the first differing
query row and position, both indices and both distances, and a short diff of that row.

Two answers compare in one of three ways (:func:`compare_knn`):
- ``exact``: identical indices and bitwise-identical distances;
- ``tie-equal``: with a problem, both answers truthful (below) and neither leaving out a point whose true
  distance t is below its own k-th distance by more than ``atol + rtol * t`` (an exhaustive scan of the rows
  where they list different indices): both are the k nearest up to ties within the tolerance, whatever each
  lists; without one, every distance within ``atol + rtol * |ref|`` and indices that differ only inside groups
  of near-equal distances, or in the group cut by the k-th boundary (tolerance mode then passes nothing);
- ``different``: anything else.

Padding (index -1, distance inf: fewer than k eligible points, as in predecessor queries) is part of the
answer: a position one answer pads and the other fills is a difference in every mode.

Tolerance mode and :func:`assert_k_safe` compare distances, so they first check that every listed distance
is the true distance of its index (:func:`pytest_pcct.parity.truth.check_answer`). They need the problem
for that: answers from pcct engines carry it (``answer.problem``); plain arrays need ``problem=``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import numpy as np

from covertreex.errors import InputTypeError, InvalidInputError, unknown_name

__all__ = [
    "DEFAULT_ATOL",
    "DEFAULT_RTOL",
    "MODES",
    "KnnComparison",
    "assert_k_safe",
    "assert_knn_equal",
    "assert_predecessors",
    "assert_telemetry_equal",
    "assert_telemetry_valid",
    "compare_knn",
]

MODES = ("exact", "tolerance")
DEFAULT_RTOL = 1e-9
DEFAULT_ATOL = 1e-12
_WINDOW = 12  # positions of a row shown in a diff
_MISSING = object()


def _knn_arrays(result, name: str) -> tuple[np.ndarray, np.ndarray, str | None]:
    """(indices, distances, why the answer is unfit or None) of an answer object (.indices/.distances)
    or an (indices, distances) tuple, as int64 and float64; an answer whose distances are of another dtype,
    or whose unsigned indices do not fit int64, fails whatever its values."""
    if hasattr(result, "indices") and hasattr(result, "distances"):
        indices, distances = result.indices, result.distances
    elif isinstance(result, (tuple, list)) and len(result) in (2, 3):
        indices, distances = result[0], result[1]
    else:
        raise InputTypeError(
            f"{name} must be a k-NN answer with .indices and .distances or an (indices, distances) "
            f"pair, got {type(result).__name__}"
        )
    indices, distances = np.asarray(indices), np.asarray(distances)
    if indices.ndim != 2 or indices.shape != distances.shape:
        raise InvalidInputError(
            f"{name} must hold 2-D indices and distances of one shape (n_queries, k), "
            f"got {indices.shape} and {distances.shape}"
        )
    if not np.issubdtype(indices.dtype, np.integer):
        raise InputTypeError(f"{name} indices must be integers, got dtype {indices.dtype}")
    unfit = None
    if distances.dtype.kind != "f" or distances.dtype.itemsize != 8:  # float64 in either byte order
        unfit = f"{name}: distances have dtype {distances.dtype}, not float64 (the distances of record)"
    elif indices.dtype.kind == "u" and indices.size and indices.max() > np.iinfo(np.int64).max:
        unfit = (f"{name}: index {indices.max()} is not a point's index or -1 (it is above the int64 range, "
                 "and would read as -1, the padding, once converted)")
    return indices.astype(np.int64, copy=False), distances.astype(np.float64, copy=False), unfit


def checked_tolerances(rtol, atol) -> tuple[float, float]:
    """(rtol, atol) as floats, each a finite real number >= 0, else an error naming it."""
    for name, value in (("rtol", rtol), ("atol", atol)):
        if isinstance(value, bool) or not isinstance(value, (int, float, np.floating)):
            raise InputTypeError(f"{name} must be a real number, got {type(value).__name__}")
        if not np.isfinite(value) or value < 0:
            raise InvalidInputError(f"{name} must be finite and >= 0, got {value}")
    return float(rtol), float(atol)


def _near(a: np.ndarray, b: np.ndarray, rtol: float, atol: float) -> np.ndarray:
    """Elementwise |b - a| <= atol + rtol * |a|, with equal infinities counted as near."""
    with np.errstate(invalid="ignore"):
        return (a == b) | (np.abs(b - a) <= atol + rtol * np.abs(a))


def _dist(x) -> str:
    return repr(float(x))


def _ulps(a: float, b: float) -> str:
    """' (+n ulps)' between two non-negative finite distances a few ulps apart, else ''."""
    if not (np.isfinite(a) and np.isfinite(b) and a >= 0 and b >= 0):
        return ""
    steps = int(np.float64(b).view(np.int64)) - int(np.float64(a).view(np.int64))
    if steps == 0 or abs(steps) > 1000:
        return ""
    return f" ({steps:+d} ulp{'s' if abs(steps) != 1 else ''})"


def _labels(labels) -> tuple[str, str]:
    if not (isinstance(labels, (tuple, list)) and len(labels) == 2):
        raise InvalidInputError(f"labels must be a pair of names, got {labels!r}")
    return str(labels[0]), str(labels[1])


def _same_shape(left: np.ndarray, right: np.ndarray, labels) -> None:
    __tracebackhide__ = True
    if left.shape != right.shape:
        raise AssertionError(
            f"k-NN answers have different shapes (n_queries, k): {labels[0]} {left.shape}, "
            f"{labels[1]} {right.shape}"
        )


def _padding_reason(ref_index, got_index, labels) -> str | None:
    """Why a position differs when exactly one of the two answers pads it (-1), else None."""
    if (ref_index < 0) == (got_index < 0):
        return None
    pads, fills = labels if ref_index < 0 else labels[::-1]
    return f"{pads} pads this position (-1: fewer than k eligible points) but {fills} lists an index"


@dataclass(frozen=True)
class _Difference:
    row: int
    position: int
    reason: str
    detail: str = ""


def _row_table(diff: _Difference, left, right, labels, marks: np.ndarray) -> list[str]:
    """A few positions of one row, side by side, '!' on positions that are not bitwise identical."""
    (li, ld), (ri, rd) = left, right
    k = len(li)
    lo = max(0, min(diff.position - _WINDOW // 2, k - _WINDOW))
    hi = min(k, lo + _WINDOW)
    a, b = labels
    lines = [f"  row {diff.row}, positions {lo}..{hi - 1} of k={k} ('!' marks entries that differ):",
             f"      pos | {a + ' index':>14}  {a + ' distance':<24}| {b + ' index':>14}  {b} distance"]
    for p in range(lo, hi):
        mark = "!" if marks[p] else " "
        lines.append(
            f"    {mark}{p:>4} | {li[p]:>14}  {_dist(ld[p]):<24}| {ri[p]:>14}  {_dist(rd[p])}"
        )
    return lines


def _row_violation(row, ri, rd, gi, gd, rtol, atol, labels) -> _Difference | None:
    """The first breach of the tie-aware tolerance in one row, judged from the two answers alone (no
    problem to check them against; tolerance mode then passes nothing that differs)."""
    a, b = labels
    padded = (ri < 0) != (gi < 0)
    if padded.any():
        j = int(np.argmax(padded))
        return _Difference(row, j, _padding_reason(ri[j], gi[j], labels))
    close = _near(rd, gd, rtol, atol)
    if not close.all():
        j = int(np.argmin(close))
        bound = atol + rtol * abs(rd[j])
        return _Difference(
            row, j, f"distance out of tolerance, |{b} - {a}| = {abs(gd[j] - rd[j]):.3g} > "
            f"atol + rtol*|{a}| = {bound:.3g}",
        )
    listed = gi[gi >= 0]
    values, counts = np.unique(listed, return_counts=True)
    if (counts > 1).any():
        twice = int(values[counts > 1][0])
        where = np.flatnonzero(gi == twice).tolist()
        return _Difference(row, where[1], f"{b} lists index {twice} more than once (positions {where})")
    k = len(ri)
    linked = _near(rd[:-1], rd[1:], rtol, atol) | _near(gd[:-1], gd[1:], rtol, atol)
    start = 0
    for end in range(k):
        if end < k - 1 and linked[end]:
            continue
        group = slice(start, end + 1)
        if end < k - 1 and sorted(ri[group].tolist()) != sorted(gi[group].tolist()):
            members = set(ri[group].tolist())
            j = next((p for p in range(start, end + 1) if gi[p] not in members), start)
            span = f"position {start}" if start == end else f"positions {start}..{end}"
            return _Difference(
                row, j, "index differs strictly inside the k-th boundary",
                f"near-equal distances at {span}: {a} has indices {sorted(ri[group].tolist())}, "
                f"{b} has {sorted(gi[group].tolist())}",
            )
        start = end + 1
    return None


def _left_out_of(problem, answers, labels, rows, rtol: float, atol: float) -> _Difference | None:
    """The first point either answer leaves out though no truthful ranking could (:func:`pytest_pcct.
    parity.truth.left_out`, an exhaustive scan of `rows`, those where the answers list different indices).
    Two answers that both pass it, and the truth check, are both the k nearest up to ties within the
    tolerance there, whatever they list: judged pairwise instead, near-equal groups chained (an answer
    without a row's nearest point passed where every gap was below rtol) and two engines each within the
    tolerance of the truth, up to twice it apart, failed."""
    from pytest_pcct.parity.truth import left_out

    found = left_out(problem, answers, rows, rtol=rtol, atol=atol)
    if found is not None:
        number, row, j, truth, kth = found
        label, indices = labels[number], answers[number][0]
        return _Difference(
            row, int((indices[row] >= 0).sum()) - 1,
            f"{label} leaves out index {j}, nearer than its k-th distance by more than the tolerance",
            f"index {j} is at true distance {_dist(truth)}; {label}'s k-th distance {_dist(kth)} exceeds it "
            f"by more than atol + rtol*true, so no ranking of distances within the tolerance of the truth "
            f"puts it beyond",
        )
    return None


@dataclass(frozen=True, eq=False)
class KnnComparison:
    """How two k-NN answers relate: status 'exact', 'tie-equal' or 'different', and where they differ."""

    status: str
    max_abs_diff: float
    rtol: float
    atol: float
    labels: tuple[str, str]
    differing_entries: int
    differing_rows: int
    first_difference: _Difference | None = field(repr=False)
    violation: _Difference | None = field(repr=False)
    arrays: tuple = field(repr=False)
    untrue: str | None = field(default=None, repr=False)
    """Why an answer is not a truthful answer to the problem (a listed distance is not its index's true
    distance, or the answer is ill-formed); None when both are, or when no problem was given."""
    verified: bool = False
    """Whether listed distances were checked against the problem (required for a tie-equal pass)."""

    def passes(self, mode: str) -> bool:
        """Whether the answers are equal in `mode` ('exact' or 'tolerance')."""
        if mode not in MODES:
            raise unknown_name("mode", mode, MODES)
        if mode == "exact" or self.status != "tie-equal":
            return self.status == "exact"
        if not self.verified:
            raise InvalidInputError(
                "tolerance mode cannot pass answers that differ without checking their listed distances: "
                "pass problem= (or answers from pcct engines, which carry their problem)"
            )
        return True

    def message(self, mode: str) -> str:
        """The failure message of `mode` (call only when :meth:`passes` is False)."""
        if self.untrue is not None:
            return self.untrue
        diff = self.first_difference if mode == "exact" else self.violation
        a, b = self.labels
        ri, rd, gi, gd = (arr[diff.row] for arr in self.arrays)
        j = diff.position
        if mode == "exact":
            how = "exact mode: identical indices and bitwise-identical distances"
        else:
            how = (f"tolerance mode: rtol={self.rtol:g}, atol={self.atol:g}, "
                   "indices may differ only within ties")
        lines = [
            f"k-NN answers differ at query row {diff.row}, position {j}: {diff.reason} ({how})",
            f"  {a}: index {ri[j]}, distance {_dist(rd[j])}",
            f"  {b}: index {gi[j]}, distance {_dist(gd[j])}{_ulps(rd[j], gd[j])}",
        ]
        if diff.detail:
            lines.append(f"  {diff.detail}")
        marks = (ri != gi) | (rd.view(np.uint64) != gd.view(np.uint64))
        lines += _row_table(diff, (ri, rd), (gi, gd), self.labels, marks)
        n_rows, k = self.arrays[0].shape
        lines.append(
            f"  {self.differing_entries} of {n_rows * k} entries differ, in {self.differing_rows} of "
            f"{n_rows} rows; max |distance difference| {self.max_abs_diff:.3g}"
        )
        if mode == "exact" and self.status == "tie-equal":
            lines.append(self._tie_equal_note())
        return "\n".join(lines)

    def _tie_equal_note(self) -> str:
        """What an exact-mode failure of tie-equal answers means: with every index the same, one engine's
        distances are not the canonical bits (a 1-ulp lie read as a tie before, nudging users to tolerance
        mode); otherwise the indices differ within ties, as tolerance mode allows."""
        tolerance = f"mode='tolerance' with rtol={self.rtol:g}, atol={self.atol:g}"
        if np.array_equal(self.arrays[0], self.arrays[2]):
            return (f"  note: every index is the same and only distances differ (by at most "
                    f"{self.max_abs_diff:.3g}): one engine does not return the canonical distance bits; "
                    f"{tolerance} would pass these answers")
        return f"  note: the answers are tie-equal (they pass {tolerance})"


def _problem_of(problem, *answers):
    """`problem`, else the problem the first answer that carries one was computed for, else None."""
    if problem is not None:
        return problem
    return next((a.problem for a in answers if getattr(a, "problem", None) is not None), None)


def _untrue(problem, answers, labels, rtol, atol) -> str | None:
    """The message of the first answer that is not truthful for `problem`, else None."""
    from pytest_pcct.parity.truth import check_answer

    for (indices, distances), label in zip(answers, labels, strict=True):
        try:
            check_answer(indices, distances, problem, rtol=rtol, atol=atol, label=label)
        except AssertionError as exc:
            return str(exc)
    return None


def compare_knn(
    ref, got, *, rtol: float = DEFAULT_RTOL, atol: float = DEFAULT_ATOL, labels=("ref", "got"),
    problem=None,
) -> KnnComparison:
    """Classify `got` against `ref` (answers or (indices, distances) pairs) without raising on a mismatch.

    With a problem (``problem=`` or carried by the answers) both answers are first checked against it; an
    untruthful one makes the status 'different'."""
    __tracebackhide__ = True
    labels = _labels(labels)
    rtol, atol = checked_tolerances(rtol, atol)
    problem = _problem_of(problem, got, ref)
    ri, rd, ref_dtype = _knn_arrays(ref, labels[0])
    gi, gd, got_dtype = _knn_arrays(got, labels[1])
    _same_shape(ri, gi, labels)
    untrue = ref_dtype or got_dtype
    if untrue is None and problem is not None:
        untrue = _untrue(problem, [(ri, rd), (gi, gd)], labels, rtol, atol)
    differs = (ri != gi) | (rd.view(np.uint64) != gd.view(np.uint64))
    with np.errstate(invalid="ignore"):
        gap = np.abs(gd - rd)
    gap = np.where(rd == gd, 0.0, np.where(np.isnan(gap), np.inf, gap))
    max_abs_diff = float(gap.max()) if gap.size else 0.0
    first = violation = None
    status = "exact"
    if differs.any():
        row, pos = (int(x) for x in np.argwhere(differs)[0])
        same_index = ri[row, pos] == gi[row, pos]
        reason = "distance differs" if same_index else (
            _padding_reason(ri[row, pos], gi[row, pos], labels)
            or ("index differs" if rd[row, pos] == gd[row, pos] else "index and distance differ"))
        first = _Difference(row, pos, reason)
        if problem is not None and untrue is None:  # rows that list the same indices leave no tie to judge
            rows = np.flatnonzero((_absent(ri, gi) | _absent(gi, ri)).any(axis=1))
            violation = _left_out_of(problem, ((ri, rd), (gi, gd)), labels, rows, rtol, atol)
        else:
            for r in np.flatnonzero(differs.any(axis=1)):
                violation = _row_violation(int(r), ri[r], rd[r], gi[r], gd[r], rtol, atol, labels)
                if violation is not None:
                    break
        status = "different" if violation is not None else "tie-equal"
    if untrue is not None:
        status = "different"
    return KnnComparison(
        status, max_abs_diff, rtol, atol, labels, int(differs.sum()), int(differs.any(axis=1).sum()),
        first, violation, (ri, rd, gi, gd), untrue, problem is not None,
    )


def assert_knn_equal(
    ref, got, *, mode: str = "exact", rtol: float = DEFAULT_RTOL, atol: float = DEFAULT_ATOL,
    labels=("ref", "got"), problem=None,
) -> KnnComparison:
    """Assert two k-NN answers are equal: mode='exact' (bitwise) or 'tolerance' (tie-aware, rtol/atol,
    listed distances checked against `problem`, which answers from pcct engines carry)."""
    __tracebackhide__ = True
    if mode not in MODES:
        raise unknown_name("mode", mode, MODES)
    comparison = compare_knn(ref, got, rtol=rtol, atol=atol, labels=labels, problem=problem)
    if not comparison.passes(mode):
        raise AssertionError(comparison.message(mode))
    return comparison


def assert_k_safe(
    result, oracle, *, rtol: float = 0.0, atol: float = 0.0, labels=("result", "oracle"), problem=None,
):
    """Assert `result` dropped no true neighbour: every listed distance is the true distance of its index
    (checked against `problem`, which answers from pcct engines carry), per row the sorted distances equal
    the oracle's (within rtol/atol), and neither answer leaves out a point whose true distance is below
    that answer's k-th distance by more than the tolerance (an exhaustive scan of the rows whose index
    sets differ).

    The distance multiset holds across tie-breaking differences; index parity is :func:`assert_knn_equal`'s
    job. Padding (-1) is part of the checked form: both answers pad exactly the positions beyond the
    eligible points.
    """
    __tracebackhide__ = True
    a, b = _labels(labels)
    rtol, atol = checked_tolerances(rtol, atol)
    problem = _problem_of(problem, result, oracle)
    if problem is None:
        raise InvalidInputError(
            "assert_k_safe checks every listed distance against the problem: pass problem= (or answers "
            "from pcct engines, which carry their problem)"
        )
    ri, rd, result_dtype = _knn_arrays(result, a)
    oi, od, oracle_dtype = _knn_arrays(oracle, b)
    _same_shape(ri, oi, (a, b))
    untrue = result_dtype or oracle_dtype or _untrue(problem, [(ri, rd), (oi, od)], (a, b), rtol, atol)
    if untrue is not None:
        raise AssertionError(untrue)
    r_order = np.argsort(rd, axis=1, kind="stable")
    o_order = np.argsort(od, axis=1, kind="stable")
    rs, os_ = np.take_along_axis(rd, r_order, 1), np.take_along_axis(od, o_order, 1)
    bad = ~_near(os_, rs, rtol, atol)
    if not bad.any():
        _check_none_left_out((ri, rd, a), (oi, od, b), rtol, atol, problem)
        return
    row, rank = (int(x) for x in np.argwhere(bad)[0])
    got_index, true_index = ri[row, r_order[row, rank]], oi[row, o_order[row, rank]]
    if rs[row, rank] > os_[row, rank]:
        missing = sorted(set(oi[row].tolist()) - set(ri[row].tolist()) - {-1})
        head = (f"query row {row} dropped a true neighbour: at rank {rank} the {b} has index {true_index} "
                f"at distance {_dist(os_[row, rank])}, but {a}'s rank-{rank} distance is "
                f"{_dist(rs[row, rank])} (index {got_index})")
        tail = f"  {b} indices absent from {a}'s row: {missing[:10]}{' ...' if len(missing) > 10 else ''}"
    else:  # both lists are true distances, so the oracle left out a closer point
        head = (f"query row {row}: {a} lists index {got_index} at distance {_dist(rs[row, rank])} "
                f"at rank {rank}, closer than the {b}'s rank-{rank} distance {_dist(os_[row, rank])} "
                f"(index {true_index}): the {b} missed a closer point")
        tail = f"  {int(bad[row].sum())} of {rd.shape[1]} ranks of this row disagree"
    others = int(bad.any(axis=1).sum()) - 1
    raise AssertionError(
        f"{head}\n{tail}\n  rows with a distance-multiset difference: {others + 1} of {rd.shape[0]}"
        f" (rtol={rtol:g}, atol={atol:g})"
    )


def _check_none_left_out(result, oracle, rtol: float, atol: float, problem) -> None:
    """Raise if either answer leaves out a point no truthful ranking could (:func:`pytest_pcct.parity.
    truth.left_out`), in the rows where they list different indices. Sorted distances compared rank by
    rank within the tolerance let a row drop its nearest point when every gap is below it (each rank then
    differs by one gap)."""
    __tracebackhide__ = True
    from pytest_pcct.parity.truth import left_out

    (ri, rd, a), (oi, od, b) = result, oracle
    rows = np.flatnonzero((_absent(ri, oi) | _absent(oi, ri)).any(axis=1))
    found = left_out(problem, ((ri, rd), (oi, od)), rows, rtol=rtol, atol=atol)
    if found is not None:
        number, row, j, t, kth = found
        head, tail = ((f"query row {row} dropped a true neighbour: {a}", "") if number == 0 else
                      (f"query row {row}: the {b}", f"; the {b} missed a closer point"))
        raise AssertionError(
            f"{head} leaves out index {j}, at true distance {_dist(t)}, though its k-th distance "
            f"{_dist(kth)} is farther by more than atol + rtol*true (rtol={rtol:g}, atol={atol:g})"
            f"{tail}; the sorted distances agree rank by rank within the tolerance"
        )


def _absent(xi: np.ndarray, yi: np.ndarray) -> np.ndarray:
    """Where answer x lists an index (not padding) that answer y does not list in the same row."""
    span = np.int64(max(int(xi.max(initial=0)), int(yi.max(initial=0))) + 2)
    rows = np.arange(xi.shape[0], dtype=np.int64)[:, None] * span  # one key per (row, index) pair
    return (xi >= 0) & ~np.isin(rows + xi, rows + yi)


def assert_predecessors(result, *, label: str = "result") -> None:
    """Assert a predecessor (Vecchia) answer is well formed, where query row i is indexed point i: row i
    lists min(i, k) distinct indices j < i at finite distances >= 0 (float64, the zero +0.0), sorted by
    (distance, index), then (-1, inf) padding.

    An engine that returns an ineligible index (j >= i) can still be tie-equal to the oracle when
    distances tie (duplicates), so eligibility is checked on its own, not left to the comparison.
    """
    __tracebackhide__ = True
    indices, distances, unfit = _knn_arrays(result, label)
    if unfit is not None:
        raise AssertionError(unfit)
    n, k = indices.shape
    row_of = np.arange(n)[:, None]
    listed = np.arange(k)[None, :] < np.minimum(row_of, k)
    eligible = (indices >= 0) & (indices < row_of) & np.isfinite(distances) & ~np.signbit(distances)
    padding = (indices == -1) & (distances == np.inf)
    ordered = np.sort(np.where(listed, indices, -1 - np.arange(k)[None, :]), axis=1)
    repeated = np.zeros_like(listed)
    repeated[:, 1:] = ordered[:, 1:] == ordered[:, :-1]
    bad = np.where(listed, ~eligible, ~padding)
    both = listed[:, :-1] & listed[:, 1:]
    unsorted = both & ((distances[:, :-1] > distances[:, 1:])
                       | ((distances[:, :-1] == distances[:, 1:]) & (indices[:, :-1] > indices[:, 1:])))
    if not bad.any() and not repeated.any():
        if unsorted.any():
            row, pos = (int(x) for x in np.argwhere(unsorted)[0])
            raise AssertionError(
                f"{label}: predecessor query row {row} is not sorted by (distance, index) at position {pos}: "
                f"index {int(indices[row, pos])} at distance {_dist(distances[row, pos])} comes before index "
                f"{int(indices[row, pos + 1])} at distance {_dist(distances[row, pos + 1])}\n"
                f"  unsorted rows: {int(unsorted.any(axis=1).sum())} of {n}")
        return
    row = int(np.argwhere(bad | repeated)[0][0])
    if bad[row].any():
        pos = int(np.argmax(bad[row]))
        j, dist = int(indices[row, pos]), _dist(distances[row, pos])
        if not listed[row, pos]:
            why = (f"expected padding (-1, inf): point {row} has only {row} predecessors, so positions "
                   f"{min(row, k)}..{k - 1} are padded")
        elif 0 <= j < row:
            why = "a predecessor must be at a finite distance >= 0 (its zero is +0.0, not -0.0)"
        else:
            why = f"index {j} is not eligible: row {row} may only list indices 0 <= j < {row}"
    else:
        twice = int(ordered[row][np.argmax(repeated[row])])
        pos = int(np.flatnonzero(indices[row] == twice)[1])
        j, dist = twice, _dist(distances[row, pos])
        why = f"index {twice} is listed more than once in the row"
    raise AssertionError(
        f"{label}: predecessor query row {row}, position {pos} (index {j}, distance {dist}): {why}\n"
        f"  rows with an ill-formed predecessor answer: {int((bad | repeated).any(axis=1).sum())} of {n}"
    )


def plain_record(record, label: str = "telemetry record") -> dict:
    """`record` as the JSON data it stands for (plain dict, list, str, int, float, bool, None; NumPy numbers
    and arrays as the values they hold). A subclass would otherwise take part in the checks: an int whose
    == is always true makes any counters equal, a dict whose .get skips the test skips it. NaN and
    infinities are not JSON and are refused."""
    __tracebackhide__ = True
    try:
        plain = json.loads(json.dumps(record, allow_nan=False, default=_numpy_value))
    except (TypeError, ValueError, RecursionError) as exc:
        raise AssertionError(f"{label} is not JSON data: {exc}") from None
    if not isinstance(plain, dict):
        raise AssertionError(f"{label} must be a JSON object (a dict), got {type(record).__name__}")
    return plain


def _numpy_value(value):
    """A NumPy scalar or array in a record as the JSON value it prints as (counts summed with NumPy are
    np.int64); anything else is not JSON data."""
    if isinstance(value, (np.generic, np.ndarray)):
        return value.tolist()
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


def _record(answer, name: str) -> dict:
    record = getattr(answer, "telemetry", answer)
    if not isinstance(record, dict):
        raise AssertionError(f"{name} has no telemetry record (got {type(record).__name__})")
    return plain_record(record, f"{name}'s telemetry record")


def _lookup(record: dict, path: str):
    value = record
    for part in path.split("."):
        if not isinstance(value, dict) or part not in value:
            return _MISSING
        value = value[part]
    return value


def _first_difference(a, b, path: str):
    """(path, a, b) at the first leaf where a and b differ, walking dict keys in sorted order."""
    if isinstance(a, dict) and isinstance(b, dict):
        for key in sorted(set(a) | set(b), key=str):
            found = _first_difference(a.get(key, _MISSING), b.get(key, _MISSING), f"{path}.{key}")
            if found:
                return found
        return None
    if isinstance(a, list) and isinstance(b, list):
        for i, (x, y) in enumerate(zip(a, b, strict=False)):
            found = _first_difference(x, y, f"{path}[{i}]")
            if found:
                return found
        if len(a) != len(b):
            return (f"{path} (length)", len(a), len(b))
        return None
    if isinstance(a, bool) != isinstance(b, bool) or a is _MISSING or b is _MISSING or a != b:
        return (path, a, b)
    return None


def _show(value) -> str:
    return "(missing)" if value is _MISSING else repr(value)


def assert_telemetry_equal(ref, got, fields=None, *, labels=("ref", "got")) -> None:
    """Assert the compared telemetry fields are equal, naming the first differing field.

    `ref` and `got` are records or answers with a ``.telemetry`` record. `fields` are top-level sections or
    dotted paths (``"counters.heap_pushes"``), each required in one record at least; by default those of
    ``covertreex.telemetry.COMPARED_SECTIONS`` either record holds (a record of another schema may have
    counters only), at least one of them.
    """
    __tracebackhide__ = True
    a, b = _labels(labels)
    left, right = _record(ref, a), _record(got, b)
    if fields is None:
        from covertreex.telemetry import COMPARED_SECTIONS

        fields = [name for name in COMPARED_SECTIONS if name in left or name in right]
        if not fields:
            raise AssertionError(f"neither record ({a}, {b}) holds any of the sections a telemetry group "
                                 f"compares ({', '.join(COMPARED_SECTIONS)}); name the fields to compare")
    if isinstance(fields, str) or not fields:
        raise InvalidInputError(f"fields must be a non-empty list of field names, got {fields!r}")
    for name in fields:
        x, y = _lookup(left, name), _lookup(right, name)
        if x is _MISSING and y is _MISSING:
            raise AssertionError(f"telemetry field {name!r} is in neither record ({a}, {b})")
        found = _first_difference(x, y, name)
        if found:
            path, x, y = found
            raise AssertionError(
                f"telemetry differs at {path}: {a} {_show(x)}, {b} {_show(y)} "
                f"(compared fields: {', '.join(fields)})"
            )


def assert_telemetry_valid(record, *, schema: str | None = None, label: str = "telemetry record") -> None:
    """Assert `record` validates against `schema` ('package:path.json'; default: covertreex's)."""
    __tracebackhide__ = True
    from covertreex import schema as schemas
    from covertreex.telemetry import schema_resource, validation_errors

    resource = schema or schema_resource()
    problems = schemas.errors(record, resource) if schema else validation_errors(record)
    if problems:
        more = f"\n  ... and {len(problems) - 10} more" if len(problems) > 10 else ""
        raise AssertionError(
            f"{label} does not match schema {resource}:\n" + "\n".join(f"  {p}" for p in problems[:10]) + more
        )
