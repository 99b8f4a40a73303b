"""pytest_pcct.parity.assertions used directly: verdicts, tie handling and the exact failure texts."""

import numpy as np
import pytest

from covertreex.errors import InputTypeError, InvalidInputError, UnknownNameError
from pytest_pcct.parity.assertions import (
    assert_k_safe,
    assert_knn_equal,
    assert_predecessors,
    assert_telemetry_equal,
    assert_telemetry_valid,
    compare_knn,
)
from pytest_pcct.parity.datasets import problem_from_arrays
from pytest_pcct.parity.truth import check_answer, true_distances

IDX = np.array([[3, 7, 1, 9], [0, 2, 4, 6]])
DIST = np.array([[0.1, 0.25, 0.5, 0.75], [0.0, 1.0, 1.0, 2.0]])
PROBLEM = problem_from_arrays(  # 1-D points whose true 4 nearest neighbours of queries 0 and 100 are IDX/DIST
    np.array([[100.0], [0.5], [101.0], [0.1], [99.0], [50.0], [102.0], [0.25], [50.0], [0.75]]),
    queries=np.array([[0.0], [100.0]]),
)


def answer(idx=IDX, dist=DIST):
    return np.array(idx, dtype=np.int64), np.array(dist, dtype=np.float64)


def failure(call, *args, **kwargs) -> str:
    with pytest.raises(AssertionError) as info:
        call(*args, **kwargs)
    return str(info.value)


def test_identical_answers_are_exact():
    comparison = assert_knn_equal(answer(), answer())
    assert (comparison.status, comparison.max_abs_diff, comparison.differing_entries) == ("exact", 0.0, 0)


def test_one_ulp_fails_exact_mode_with_row_position_indices_distances_and_diff():
    idx, dist = answer()
    dist[0, 1] = np.nextafter(0.25, 1.0)
    message = failure(assert_knn_equal, answer(), (idx, dist), labels=("gold", "rust"))
    lines = message.splitlines()
    assert lines[0] == ("k-NN answers differ at query row 0, position 1: distance differs "
                        "(exact mode: identical indices and bitwise-identical distances)")
    assert lines[1] == "  gold: index 7, distance 0.25"
    assert lines[2] == "  rust: index 7, distance 0.25000000000000006 (+1 ulp)"
    assert lines[3] == "  row 0, positions 0..3 of k=4 ('!' marks entries that differ):"
    assert lines[5].split() == ["0", "|", "3", "0.1", "|", "3", "0.1"]
    assert lines[6].split() == ["!", "1", "|", "7", "0.25", "|", "7", "0.25000000000000006"]
    assert lines[-2] == "  1 of 8 entries differ, in 1 of 2 rows; max |distance difference| 5.55e-17"
    assert lines[-1] == (  # not "tie-equal": that read like a tie, and sent users to tolerance mode
        "  note: every index is the same and only distances differ (by at most 5.55e-17): one engine does "
        "not return the canonical distance bits; mode='tolerance' with rtol=1e-09, atol=1e-12 would pass "
        "these answers"
    )


def test_one_ulp_passes_tolerance_mode_but_not_zero_tolerance():
    idx, dist = answer()
    dist[0, 1] = np.nextafter(0.25, 1.0)
    tie_equal = assert_knn_equal(answer(), (idx, dist), mode="tolerance", problem=PROBLEM)
    assert tie_equal.status == "tie-equal"
    message = failure(assert_knn_equal, answer(), (idx, dist), mode="tolerance", rtol=0, atol=0,
                      problem=PROBLEM)
    assert message.splitlines()[0] == (
        "got: query row 0, position 1, index 7: reported distance 0.25000000000000006, true distance 0.25: "
        "the reported distance is not the true distance of the listed index (|reported - true| = 5.55e-17 > "
        "atol + rtol*true = 0)"
    )


def test_tolerance_mode_passes_differing_answers_only_with_their_true_distances_checked():
    idx, dist = answer()
    dist[0, 1] = np.nextafter(0.25, 1.0)
    with pytest.raises(InvalidInputError, match="tolerance mode cannot pass answers that differ without "
                       "checking their listed distances: pass problem="):
        assert_knn_equal(answer(), (idx, dist), mode="tolerance")
    assert_knn_equal(answer(), answer(), mode="tolerance")  # identical to the reference: nothing to check


@pytest.mark.parametrize(("change", "expected"), [
    (lambda i, d: i.__setitem__((0, 3), 5), "query row 0, position 3, index 5: reported distance 0.75, true "
     "distance 50.0: the reported distance is not the true distance of the listed index"),
    (lambda i, d: d.__setitem__((1, 3), np.inf), "query row 1, position 3, index 6: reported distance inf, "
     "true distance 2.0: the reported distance is not the true distance"),
    (lambda i, d: i.__setitem__((1, 1), 10), "query row 1, position 1: index 10 is not a point of the "
     "problem (n=10: indices 0..9, or -1 for padding); reported distance 1.0"),
    (lambda i, d: (i.__setitem__((0, 3), -1), d.__setitem__((0, 3), np.inf)), "query row 0 lists 3 indices "
     "but must list min(k, eligible points) = 4: position 3 is padded (-1) although more points are "
     "eligible"),
    (lambda i, d: (i.__setitem__((1, 1), 4), i.__setitem__((1, 2), 2)), "query row 1 is not sorted by "
     "(distance, index) at position 1: index 4 at distance 1.0 comes before index 2 at distance 1.0"),
    (lambda i, d: d.__setitem__((0, 0), np.nan), "query row 0, position 0, index 3: reported distance nan, "
     "true distance 0.1: the distance is NaN"),
])
def test_every_listed_index_is_checked_against_the_problem(change, expected):
    idx, dist = answer()
    change(idx, dist)
    for mode in ("exact", "tolerance"):
        message = failure(assert_knn_equal, answer(), (idx, dist), mode=mode, problem=PROBLEM)
        assert message.startswith(f"got: {expected}")
    assert failure(assert_k_safe, (idx, dist), answer(), problem=PROBLEM).startswith(f"result: {expected}")


def test_a_wrong_neighbour_strictly_inside_fails_tolerance_mode():
    idx, dist = answer()
    idx[0, 1] = 8
    message = failure(assert_knn_equal, answer(), (idx, dist), mode="tolerance")
    lines = message.splitlines()
    assert lines[0].startswith(
        "k-NN answers differ at query row 0, position 1: index differs strictly inside the k-th boundary"
    )
    assert lines[1:4] == [
        "  ref: index 7, distance 0.25",
        "  got: index 8, distance 0.25",
        "  near-equal distances at position 1: ref has indices [7], got has [8]",
    ]


def test_tied_indices_may_swap_inside_a_group_and_change_at_the_boundary():
    ref = answer([[5, 6, 7, 8]], [[1.0, 2.0, 2.0, 3.0]])
    swapped = answer([[5, 7, 6, 8]], [[1.0, 2.0, 2.0, 3.0]])
    assert compare_knn(ref, swapped).status == "tie-equal"
    boundary = answer([[5, 6, 7, 8]], [[1.0, 2.0, 3.0, 3.0]])
    other_at_boundary = answer([[5, 6, 7, 11]], [[1.0, 2.0, 3.0, 3.0]])
    assert compare_knn(boundary, other_at_boundary).status == "tie-equal"
    # the same substitution one group earlier is strictly inside the boundary
    inside = answer([[5, 6, 11, 8]], [[1.0, 2.0, 2.0, 3.0]])
    message = failure(assert_knn_equal, ref, inside, mode="tolerance")
    assert "near-equal distances at positions 1..2: ref has indices [6, 7], got has [6, 11]" in message
    # groups also form from near-equal (not identical) distances
    near = answer([[5, 7, 6, 8]], [[1.0, 2.0, 2.0 + 1e-15, 3.0]])
    assert compare_knn(ref, near).status == "tie-equal"


LINE = problem_from_arrays((1.0 + 0.6e-9 * np.arange(40))[:, None], queries=np.zeros((1, 1)), label="line")


@pytest.mark.parametrize("k", [2, 10, 30])
def test_near_equal_groups_do_not_chain_past_a_left_out_nearest_point(k):
    """Each distance is within rtol = 1e-9 of the next: near-equal groups chained, and an answer leaving
    out the nearest point passed tolerance mode, and assert_k_safe with a tolerance (its sorted distances
    agree rank by rank within it). A point is left out legitimately only while its true distance is within
    atol + rtol*true of the answer's k-th distance (k = 2: 1.2e-9 apart, relative to 1.0: not a tie)."""
    truth = (np.arange(k)[None, :], true_distances(LINE, np.arange(k)[None, :]))
    shifted = (np.arange(1, k + 1)[None, :], true_distances(LINE, np.arange(1, k + 1)[None, :]))
    kth = float(shifted[1][0, -1])
    message = failure(assert_knn_equal, truth, shifted, mode="tolerance", problem=LINE)
    assert message.splitlines()[:4] == [
        f"k-NN answers differ at query row 0, position {k - 1}: got leaves out index 0, nearer than its k-th "
        "distance by more than the tolerance (tolerance mode: rtol=1e-09, atol=1e-12, indices may differ "
        "only within ties)",
        f"  ref: index {k - 1}, distance {float(truth[1][0, -1])!r}",
        f"  got: index {k}, distance {kth!r}",
        f"  index 0 is at true distance 1.0; got's k-th distance {kth!r} exceeds it by more than atol + "
        "rtol*true, so no ranking of distances within the tolerance of the truth puts it beyond",
    ]
    message = failure(assert_k_safe, shifted, truth, rtol=1e-9, atol=1e-12, problem=LINE)
    assert message == (
        f"query row 0 dropped a true neighbour: result leaves out index 0, at true distance 1.0, though its "
        f"k-th distance {kth!r} is farther by more than atol + rtol*true (rtol=1e-09, atol=1e-12); the "
        f"sorted distances agree rank by rank within the tolerance")
    message = failure(assert_k_safe, truth, shifted, rtol=1e-9, atol=1e-12, problem=LINE)
    assert message.startswith("query row 0: the oracle leaves out index 0, at true distance 1.0, though its")
    assert message.endswith("; the oracle missed a closer point; the sorted distances agree rank by rank "
                            "within the tolerance")
    one = (np.array([[1]]), true_distances(LINE, np.array([[1]])))
    nearest = (np.array([[0]]), true_distances(LINE, np.array([[0]])))
    assert compare_knn(nearest, one, problem=LINE).status == "tie-equal"  # 0.6 rtol apart: a tie
    assert_k_safe(one, nearest, rtol=1e-9, atol=1e-12, problem=LINE)


def _ranked(reported, k):
    """The answer of an engine that reports `reported` for every point and lists the k smallest, ties by
    index (a legitimate engine when each report is within the tolerance of the truth)."""
    order = np.lexsort((np.arange(len(reported)), reported))[:k]
    return order[None].astype(np.int64), reported[order][None]


def test_tolerance_mode_judges_each_answer_against_the_truth():
    """A second look at the rule (an outside trial): judged against the other answer, a wrong answer passed
    beside a legitimate but inexact reference that left out the same point, and two legitimate engines,
    each within the tolerance of the truth but up to twice it apart, failed. Each answer is now scanned
    exhaustively, in the rows where they differ, for a point it leaves out though no ranking of distances
    within the tolerance of the truth could."""
    u = 1e-9
    points = np.concatenate([1 + np.array([0, 0.05, 0.9, 0.95, 1.9, 1.95]) * u, [2.0, 3.0]])[:, None]
    line = problem_from_arrays(points, queries=np.zeros((1, 1)))
    true = true_distances(line, np.arange(8)[None])[0]
    tol = 1e-12 + 1e-9 * true
    reported = true.copy()
    reported[[0, 1]] += 0.99 * tol[[0, 1]]  # rounded up within the tolerance: legitimately left out
    reported[[2, 3]] = 1 + np.array([0.92, 0.96]) * u
    legit = _ranked(reported, 2)
    wrong = (np.array([[4, 5]]), np.array([[1 + 1.01 * u, 1 + 1.03 * u]]))  # point 0 can be no farther than
    for answer in (legit, wrong):  # 1 + 1.001e-9 in any truthful report, yet it is left out
        check_answer(*answer, line, rtol=1e-9, atol=1e-12)
    message = failure(assert_knn_equal, legit, wrong, mode="tolerance", problem=line)
    assert "got leaves out index 0, nearer than its k-th distance by more than the tolerance" in message
    assert failure(assert_k_safe, wrong, legit, rtol=1e-9, atol=1e-12, problem=line).startswith(
        "query row 0 dropped a true neighbour: result leaves out index 0")
    square = problem_from_arrays(np.array([[1.0, 0.0], [0.0, 1.0], [2.0, 0.0], [3.0, 0.0]]),
                                 queries=np.zeros((1, 2)))
    true = true_distances(square, np.arange(4)[None])[0]  # points 0 and 1 both at exactly 1.0
    tol = 1e-12 + 1e-9 * true
    low, high = true - 0.9 * tol, true + 0.9 * tol
    a = _ranked(np.array([low[0], high[1], true[2], true[3]]), 3)  # lists 0, 1
    b = _ranked(np.array([high[0], low[1], true[2], true[3]]), 3)  # lists 1, 0
    c, d = _ranked(high, 3), _ranked(low, 3)  # 1.8 tolerances apart at every position
    for x, y in ((a, b), (c, d), (d, c)):
        assert compare_knn(x, y, problem=square).status == "tie-equal"
    far = problem_from_arrays(np.array([[1.0], [1.0010003], [2.0], [3.0]]), queries=np.zeros((1, 1)))
    true = true_distances(far, np.arange(4)[None])[0]
    swapped = _ranked(true + np.array([0.9999, -0.9999, 0, 0]) * 1e-3 * true, 3)  # rtol 1e-3: 1, 0, 2
    exact = _ranked(true, 3)
    for x, y in ((exact, swapped), (swapped, exact)):  # both failed ("strictly inside the boundary")
        assert compare_knn(x, y, rtol=1e-3, atol=0, problem=far).status == "tie-equal"
    assert_k_safe(swapped, exact, rtol=1e-3, atol=0, problem=far)


def test_only_rows_listing_different_indices_are_scanned(monkeypatch):
    """The exhaustive scan costs rows x n true distances: rows that list the same indices (an engine whose
    distance bits are not canonical differs in every row) leave no tie to judge and are not scanned (a
    review measured 1.1 s against 6 ms at n = Q = 2,000). A row subset of true_distances must match."""
    from pytest_pcct.parity import truth

    scanned = []
    scan = truth.left_out
    monkeypatch.setattr(truth, "left_out", lambda problem, answers, rows, **kw: scanned.append(list(rows))
                        or scan(problem, answers, rows, **kw))
    idx, dist = answer()
    assert compare_knn(answer(), (idx, np.nextafter(dist, np.inf)), problem=PROBLEM).status == "tie-equal"
    assert scanned == [[]]
    with pytest.raises(InvalidInputError, match=r"one row of indices per query row asked for \(query rows "
                       r"0\.\.1\), got indices of shape \(2, 4\) for 1 rows"):
        truth.true_distances(PROBLEM, idx, [1])
    with pytest.raises(InvalidInputError, match="one row of indices per query row"):
        truth.true_distances(PROBLEM, idx[:1], [-1])
    assert np.array_equal(truth.true_distances(PROBLEM, idx[1:], [1]), truth.true_distances(PROBLEM, idx)[1:])


def test_a_distance_out_of_tolerance_and_a_repeated_index_are_named():
    idx, dist = answer()
    dist[1, 3] = 2.5
    message = failure(assert_knn_equal, answer(), (idx, dist), mode="tolerance", labels=("a", "b"))
    assert message.splitlines()[0].startswith(
        "k-NN answers differ at query row 1, position 3: distance out of tolerance, |b - a| = 0.5 > "
        "atol + rtol*|a| = 2e-09"
    )
    twice = answer([[0, 2, 2, 6]], [[0.0, 1.0, 1.0, 2.0]])
    message = failure(assert_knn_equal, answer(IDX[1:], DIST[1:]), twice, mode="tolerance")
    assert "position 2: got lists index 2 more than once (positions [1, 2])" in message


def test_padding_compares_equal_and_shapes_must_match():
    padded = answer([[4, -1, -1]], [[0.5, np.inf, np.inf]])
    assert compare_knn(padded, padded).status == "exact"
    message = failure(assert_knn_equal, answer(), answer(IDX[:, :3], DIST[:, :3]))
    assert message == "k-NN answers have different shapes (n_queries, k): ref (2, 4), got (2, 3)"


def test_long_rows_show_a_window_around_the_difference():
    k = 40
    idx = np.arange(k)[None, :]
    dist = np.linspace(0.0, 1.0, k)[None, :]
    moved = dist.copy()
    moved[0, 30] += 0.5
    lines = failure(assert_knn_equal, (idx, dist), (idx, moved)).splitlines()
    assert lines[3] == "  row 0, positions 24..35 of k=40 ('!' marks entries that differ):"
    assert sum(" | " in line for line in lines) == 13  # header + 12 positions


def test_bad_arguments_raise_errors_naming_them():
    with pytest.raises(UnknownNameError, match="unknown mode 'approx'"):
        assert_knn_equal(answer(), answer(), mode="approx")
    with pytest.raises(InvalidInputError, match="rtol must be finite and >= 0, got -1"):
        assert_knn_equal(answer(), answer(), rtol=-1)
    with pytest.raises(InputTypeError, match="got must be a k-NN answer"):
        assert_knn_equal(answer(), "nope")
    with pytest.raises(InputTypeError, match="ref indices must be integers"):
        assert_knn_equal((DIST, DIST), answer())


# Query 0 on a line: point 5 at distance 1, points 6, 7 and 9 tie at 2, point 8 at 2.5, the rest at 10.
TIES = problem_from_arrays(np.array([[10.0]] * 5 + [[1.0], [2.0], [-2.0], [2.5], [-2.0]]),
                           queries=np.array([[0.0]]))


def test_k_safe_accepts_tie_breaking_and_names_a_dropped_neighbour():
    oracle = answer([[5, 6, 7]], [[1.0, 2.0, 2.0]])
    assert_k_safe(answer([[5, 6, 9]], [[1.0, 2.0, 2.0]]), oracle, problem=TIES)  # another tie: k-safe
    dropped = answer([[5, 6, 8]], [[1.0, 2.0, 2.5]])
    lines = failure(assert_k_safe, dropped, oracle, problem=TIES).splitlines()
    assert lines == [
        "query row 0 dropped a true neighbour: at rank 2 the oracle has index 7 at distance 2.0, "
        "but result's rank-2 distance is 2.5 (index 8)",
        "  oracle indices absent from result's row: [7]",
        "  rows with a distance-multiset difference: 1 of 1 (rtol=0, atol=0)",
    ]


def test_k_safe_names_a_wrong_distance_and_needs_the_problem():
    oracle = answer([[5, 6]], [[1.0, 2.0]])
    message = failure(assert_k_safe, answer([[5, 6]], [[1.0, 1.5]]), oracle, labels=("rust", "brute"),
                      problem=TIES)
    assert message.splitlines()[0] == (
        "rust: query row 0, position 1, index 6: reported distance 1.5, true distance 2.0: the reported "
        "distance is not the true distance of the listed index (|reported - true| = 0.5 > "
        "atol + rtol*true = 0)"
    )
    with pytest.raises(InvalidInputError, match="assert_k_safe checks every listed distance against the "
                       "problem: pass problem="):
        assert_k_safe(oracle, oracle)


def test_distances_that_are_not_float64_fail_every_comparison_whatever_their_values():
    """float32 distances equal to the float64 ones (exactly representable here) passed tolerance mode,
    exact mode and assert_k_safe: the helpers converted them before any check."""
    ref, idx = answer(), IDX.astype(np.int64)
    for dtype in (np.float32, np.float16, np.int64):
        got = (idx, DIST.astype(dtype) if dtype != np.int64 else np.zeros_like(DIST, dtype=np.int64))
        why = f"got: distances have dtype {np.dtype(dtype)}, not float64"
        assert why in failure(assert_knn_equal, ref, got, mode="tolerance", problem=PROBLEM)
        assert why in failure(assert_knn_equal, ref, got)
        assert why in failure(assert_knn_equal, got, ref, labels=("got", "ref"))
        assert compare_knn(ref, got).status == "different"
        assert failure(assert_k_safe, got, ref, labels=("got", "oracle"), problem=PROBLEM).startswith(why)
    swapped = (idx, DIST.astype(DIST.dtype.newbyteorder()))  # float64 in the other byte order is float64
    assert_knn_equal(ref, swapped, problem=PROBLEM)


def test_unsigned_indices_above_the_int64_range_are_not_padding():
    """2**64 - 1 in uint64 indices wrapped to -1 (padding) when converted: an answer listing it compared
    exact with one padding there."""
    ref = (np.array([[0, 1, 2, -1]]), np.array([[0.0, 1.0, 2.0, np.inf]]))
    got = (np.array([[0, 1, 2, 2**64 - 1]], dtype=np.uint64), ref[1].copy())
    why = "got: index 18446744073709551615 is not a point's index or -1 (it is above the int64 range"
    assert why in failure(assert_knn_equal, ref, got)
    assert why in failure(assert_knn_equal, ref, got, mode="tolerance")
    assert compare_knn(ref, got).status == "different"
    padded_first = (np.array([[2**64 - 1], [0]], dtype=np.uint64), np.array([[np.inf], [1.0]]))
    assert_predecessors((padded_first[0].astype(np.int64), padded_first[1]))
    assert why.replace("got", "result") in failure(assert_predecessors, padded_first)


@pytest.mark.parametrize("zero", [-0.0, -1e-300])
def test_a_negative_distance_fails_even_within_tolerance(zero):
    """-0.0 and -1e-300 in place of a true 0.0 passed tolerance mode (at rtol = atol = 0 too, as a tie)
    and assert_k_safe: a distance is never negative, and its zero is +0.0."""
    ref = answer()
    got = (ref[0], ref[1].copy())
    got[1][1, 0] = zero  # query 100.0 against point 0 at 100.0
    why = "got: query row 1, position 0, index 0: reported distance"
    for kwargs in ({}, {"rtol": 0, "atol": 0}):
        message = failure(assert_knn_equal, ref, got, mode="tolerance", problem=PROBLEM, **kwargs)
        assert why in message
        assert "the distance is negative (a distance is >= 0, and its zero is +0.0" in message
    assert "the distance is negative" in failure(assert_k_safe, got, ref, labels=("got", "oracle"),
                                                 problem=PROBLEM, rtol=0, atol=0)
    assert "distance differs" in failure(assert_knn_equal, ref, got)


def test_a_record_is_read_as_the_json_it_stands_for():
    from pytest_pcct.parity.assertions import plain_record

    record = {"counters": {"n": np.int64(3), "ok": np.bool_(True)}, "sizes": np.array([1, 2]), "t": (1, 2)}
    assert plain_record(record) == {"counters": {"n": 3, "ok": True}, "sizes": [1, 2], "t": [1, 2]}
    assert type(plain_record(record)["counters"]["n"]) is int
    for bad, why in [({"t": float("nan")}, "Out of range float values are not JSON compliant"),
                     ({"f": object()}, "Object of type object is not JSON serializable"),
                     ([1], "must be a JSON object")]:
        with pytest.raises(AssertionError, match=why):
            plain_record(bad)


RECORD = {
    "counters": {"distance_evaluations": 120, "heap_pushes": 30, "prunes": 4},
    "per_query": {"heap_pushes": {"min": 1, "max": 9, "mean": 3.5}},
    "levels": [{"level": 2, "prunes": 0}, {"level": 1, "prunes": 4}],
    "timings": {"query_seconds": 0.1},
}


def changed(path, value):
    import copy

    record = copy.deepcopy(RECORD)
    target = record
    for part in path[:-1]:
        target = target[part]
    target[path[-1]] = value
    return record


def test_telemetry_equal_compares_the_deterministic_sections_only():
    assert_telemetry_equal(RECORD, changed(("timings", "query_seconds"), 9.0))


@pytest.mark.parametrize(
    ("path", "value", "expected"),
    [
        (("counters", "heap_pushes"), 31, "telemetry differs at counters.heap_pushes: gold 30, rust 31"),
        (("levels", 1, "prunes"), 5, "telemetry differs at levels[1].prunes: gold 4, rust 5"),
        (("per_query", "heap_pushes", "mean"), 3.25, "telemetry differs at per_query.heap_pushes.mean: "
                                                     "gold 3.5, rust 3.25"),
        (("levels",), [{"level": 2, "prunes": 0}], "telemetry differs at levels (length): gold 2, rust 1"),
        (("counters", "dedupe_hits"), 0, "telemetry differs at counters.dedupe_hits: gold (missing), rust 0"),
    ],
)
def test_telemetry_equal_names_the_first_differing_field(path, value, expected):
    message = failure(assert_telemetry_equal, RECORD, changed(path, value), labels=("gold", "rust"))
    assert message == f"{expected} (compared fields: counters, per_query, levels)"


def test_telemetry_equal_takes_chosen_fields_and_requires_records():
    different = changed(("counters", "prunes"), 5)
    assert_telemetry_equal(RECORD, different, fields=["counters.heap_pushes", "levels"])
    message = failure(assert_telemetry_equal, RECORD, different, fields=["counters.prunes"])
    assert message == "telemetry differs at counters.prunes: ref 4, got 5 (compared fields: counters.prunes)"
    assert failure(assert_telemetry_equal, RECORD, None) == "got has no telemetry record (got NoneType)"
    assert failure(assert_telemetry_equal, RECORD, RECORD, fields=["nope"]) == (
        "telemetry field 'nope' is in neither record (ref, got)"
    )


def test_telemetry_equal_by_default_compares_the_sections_either_record_holds():
    """Records of an engine's own schema holding counters only failed every pair check of a telemetry
    group: 'per_query' is in neither record (an outside trial)."""
    own = {"engine": "mine", "counters": {"dist_evals": 7}}
    assert_telemetry_equal(own, dict(own))
    assert failure(assert_telemetry_equal, own, {"engine": "mine", "counters": {"dist_evals": 8}}) == (
        "telemetry differs at counters.dist_evals: ref 7, got 8 (compared fields: counters)")
    assert failure(assert_telemetry_equal, own, {"engine": "mine"}).startswith(
        "telemetry differs at counters: ref {'dist_evals': 7}, got (missing)")
    assert failure(assert_telemetry_equal, {"work": 1}, {"work": 2}) == (
        "neither record (ref, got) holds any of the sections a telemetry group compares (counters, "
        "per_query, levels); name the fields to compare")


def test_a_record_naming_covertreexs_schema_is_held_to_it_whatever_the_engine_registered():
    """An engine registered with a loose schema of its own returned a record naming covertreex's schema
    without counters: KeyError 'counters' from the consistency check (an outside trial)."""
    from pytest_pcct.parity.engines import hold_to_named_schema

    claimed = {"schema": "covertreex.query_telemetry", "schema_version": 3, "engine": "mine"}
    with pytest.raises(AssertionError, match=r"^record of mine names covertreex's schema but does not "
                                             r"match it: <record>: 'created' is a required property"):
        hold_to_named_schema(claimed, "mine:schemas/loose.json", "record of mine")
    hold_to_named_schema(claimed, None, "record of mine")  # covertreex's own: validated before, not again
    hold_to_named_schema({"schema": "mine"}, "mine:schemas/loose.json", "record of mine")


def test_telemetry_valid_checks_formats_against_the_shipped_schema(tmp_path):
    import covertreex as ct

    tree = ct.CoverTree(path="tree").fit(np.random.default_rng(0).normal(size=(30, 2)))
    record = tree.query(indices=[0, 1], k=3).telemetry
    assert_telemetry_valid(record)
    message = failure(assert_telemetry_valid, {**record, "created": "yesterday", "k": 0}, label="gold record")
    assert message.splitlines() == [
        "gold record does not match schema covertreex:schemas/query_telemetry.v5.json:",
        "  created: 'yesterday' is not a 'date-time'",
        "  k: 0 is less than the minimum of 1",
    ]
