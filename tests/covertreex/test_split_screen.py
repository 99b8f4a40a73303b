"""The split screen (covertreex.split_screen, rust/core/src/dense/split.rs): its bound holds on every pair of
data built to break it, the dense path with it answers exactly as brute force (indices, and distances bit
for bit), its counters do not depend on threads or query blocks, and it refuses where it cannot run."""

from __future__ import annotations

import copy
import pickle
from fractions import Fraction

import numpy as np
import pytest

import covertreex as ct
from covertreex import datasets, distributed, split_screen
from covertreex.engines.rust import int8_kernel
from covertreex.errors import InvalidInputError
from covertreex.split_screen import FACTORS


@pytest.fixture
def every_row_split(monkeypatch):
    """Send every pair through the split screen and have it answer every query (none to the f64 GEMM),
    whatever the points' sqrt(e/p) and however many pairs come through."""
    monkeypatch.setattr(split_screen, "ROW_REST", np.inf)
    monkeypatch.setattr(split_screen, "DECLINE_SHARE", 1)


def _lattice(n: int) -> np.ndarray:
    """A lattice of spacing 0.25 with every site twice: exact duplicates and equal distances everywhere."""
    side = int(np.ceil((n / 2) ** (1 / 3)))
    grid = np.stack(np.meshgrid(*[np.arange(side)] * 3, indexing="ij"), axis=-1).reshape(-1, 3)
    return np.repeat(grid[: (n + 1) // 2] * 0.25, 2, axis=0)[:n]


PROBLEMS = {
    "gaussian": lambda: ct.residual_problem(np.random.default_rng(0).normal(size=(1500, 3)), m=128, seed=1),
    "lattice with duplicates": lambda: ct.residual_problem(_lattice(1200), m=96, seed=2),
    "p at its clamp (small variance)": lambda: ct.residual_problem(_lattice(800), m=64, seed=3,
                                                                   variance=1e-3),
    "every point inducing": lambda: ct.residual_problem(np.random.default_rng(4).normal(size=(300, 2)),
                                                        m=300, seed=4),
    "clustered, anisotropic": lambda: ct.residual_problem(datasets.make("clustered", 1000, 3, 5).points,
                                                          m=80, seed=5, lengthscale=[0.3, 1.0, 2.0]),
    "matern 5/2": lambda: ct.residual_problem(np.random.default_rng(6).normal(size=(900, 3)), m=100, seed=6,
                                              kernel="matern52"),
}


def _bounds(split, i: int, J: np.ndarray) -> np.ndarray:
    """s_up of row i against rows J, as the rust epilogue forms it (same operations, same order)."""
    F = split.factors
    prod = np.abs((split.q[J].astype(np.int32) @ split.q[i].astype(np.int32)).astype(np.float64))
    total = prod * F[i, 0] * F[J, 0] + F[i, 1] * F[J, 2] + F[i, 2] * F[J, 1] + F[i, 3] * F[J, 4] \
        + F[i, 4] * F[J, 3] + F[i, 5] * F[J, 5] + F[i, 6] * F[J, 6]
    return (1 + 64 * 2.0**-53) * total


@pytest.mark.parametrize("name", PROBLEMS)
def test_the_bound_holds_on_every_pair(name, distance_matrix):
    """For every pair i != j: the distance the bound allows, sqrt(1 - min(s_up, 1)) in the canonical
    operations, is at most the canonical distance (that is all the skip rule relies on)."""
    problem = PROBLEMS[name]()
    split = problem.split_screen
    assert split is not None, f"{name}: the certificate should be provable"
    assert split.q.dtype == np.int8 and split.factors.shape == (len(problem.X), len(FACTORS))
    assert np.all(np.isfinite(split.factors)) and np.all(split.factors >= 0)
    D = distance_matrix("residual", problem)
    n = len(problem.X)
    for i in range(n):
        J = np.flatnonzero(np.arange(n) != i)
        allowed = np.sqrt(np.maximum(0.0, 1.0 - np.minimum(_bounds(split, i, J), 1.0)))
        worst = np.argmax(allowed - D[i, J])
        assert np.all(allowed <= D[i, J]), (
            f"{name}: row {i}, column {J[worst]}: bound allows {allowed[worst]!r}, "
            f"canonical {D[i, J[worst]]!r}")


def test_the_split_does_useful_work_on_the_gold_workload_shape():
    """Not vacuous: where the jitter makes the residual (m = 512 inducing points, as the gold workload's),
    the bound excludes nearly every pair beyond the 50th neighbour (a screen that kept everything would
    pass every exactness test)."""
    problem = ct.residual_problem(np.random.default_rng(0).normal(size=(3000, 3)), m=512, seed=1)
    split = problem.split_screen
    assert split.median_rest < split_screen.USEFUL
    brute = ct.CoverTree(engine="brute", metric="residual").fit(problem)
    rows = np.arange(2500, 3000, 25)
    result = brute.query(indices=rows, k=50)
    excluded = []
    for r, i in enumerate(rows):
        J = np.flatnonzero(np.arange(3000) != i)
        kth = result.distances[r, -1]
        excluded.append(np.mean(np.sqrt(np.maximum(0, 1 - np.minimum(_bounds(split, i, J), 1))) > kth))
    assert np.median(excluded) > 0.9, excluded  # 0.964 measured


@pytest.mark.parametrize("name", PROBLEMS)
@pytest.mark.parametrize("k", [1, 7, 50])
def test_split_dense_path_equals_brute(name, k, every_row_split, oracle, check_same):
    problem = PROBLEMS[name]()
    n = len(problem.X)
    tree = ct.CoverTree(engine="rust", metric="residual", path="dense", mode="perf", dense_screen="split",
                        dense_query_block=37, dense_point_block=200).fit(problem)
    check_same(tree.kneighbors(k=k, predecessor=True), oracle("residual", problem, k, predecessor=True),
               f"{name} k={k} predecessor")
    idx = np.random.default_rng(k).integers(0, n, 60)
    check_same(tree.kneighbors(indices=idx, k=k), oracle("residual", problem, k, indices=idx),
               f"{name} k={k} indexed")


@pytest.mark.parametrize("name", ["gaussian", "lattice with duplicates", "p at its clamp (small variance)"])
@pytest.mark.parametrize("k", [1, 20])
def test_pairs_of_badly_fit_points_take_the_gemm_with_the_same_answers(name, k, oracle, check_same):
    """The pairs of two points z fits badly take the f64 GEMM on those points alone, every other pair the
    split, and the two answers merge; queries through which too many pairs come are declined to the f64
    GEMM: brute force's answers for predecessor and indexed queries (the own pair included), and the same
    answers, counters and declines on any thread count and query block."""
    problem = PROBLEMS[name]()
    bad = problem.split_screen.fits_badly()
    assert 0 < bad.sum() < len(bad), "the data should have points of both kinds"
    idx = np.random.default_rng(k).integers(0, len(bad), 80)
    runs = []
    for threads, block in ((2, 512), (1, 7)):
        tree = ct.CoverTree(engine="rust", metric="residual", path="dense", mode="perf", telemetry=True,
                            dense_screen="split", threads=threads, dense_query_block=block).fit(problem)
        predecessor, indexed = tree.query(predecessor=True, k=k), tree.query(indices=idx, k=k)
        check_same((predecessor.distances, predecessor.indices),
                   oracle("residual", problem, k, predecessor=True), f"{name} k={k} predecessor")
        check_same((indexed.distances, indexed.indices), oracle("residual", problem, k, indices=idx),
                   f"{name} k={k} indexed")
        runs.append([(r.telemetry["counters"], r.telemetry["per_query"], r.counters.extra["declined"])
                     for r in (predecessor, indexed)])
    assert runs[0] == runs[1]
    if k == 20:
        declined = runs[0][0][2]
        assert 0 < declined < len(bad), "some queries should be declined to the f64 GEMM, not all"


def test_counters_do_not_depend_on_threads_or_query_blocks(every_row_split):
    problem = PROBLEMS["gaussian"]()
    runs = []
    for threads, block in ((1, 512), (2, 512), (2, 7), (1, 1)):
        tree = ct.CoverTree(engine="rust", metric="residual", path="dense", mode="perf", telemetry=True,
                            dense_screen="split", threads=threads, dense_query_block=block).fit(problem)
        result = tree.query(predecessor=True, k=10)
        assert result.counters.extra["declined"] == 0, "the split answers every query here"
        runs.append((result.indices, result.distances.view(np.int64), result.telemetry["counters"],
                     result.telemetry["per_query"]))
    for other in runs[1:]:
        assert np.array_equal(runs[0][0], other[0]) and np.array_equal(runs[0][1], other[1])
        assert runs[0][2] == other[2] and runs[0][3] == other[3]
    f64 = ct.CoverTree(engine="rust", metric="residual", path="dense", mode="perf", telemetry=True)
    counters = f64.fit(problem).query(predecessor=True, k=10).telemetry["counters"]
    assert counters["pairs_screened"] == runs[0][2]["pairs_screened"]
    assert counters["distance_evaluations"] != runs[0][2]["distance_evaluations"], "the split ran"


@pytest.mark.parametrize("name", ["gaussian", "lattice with duplicates", "p at its clamp (small variance)"])
def test_pairs_kept_in_the_first_pass_stand_for_the_second(name, monkeypatch, oracle, check_same):
    """A query whose first pass kept every pair that can reach its least similarity takes its candidates
    from those instead of a second pass over every point (split_screen.KEPT_PER_PROBE): one pair kept per
    probe sends every query whose least similarity is at or below its probes' through the second pass, a
    million none; the answers (brute force's), counters and declined queries are the same for every
    value."""
    problem = PROBLEMS[name]()
    idx = np.random.default_rng(5).integers(0, len(problem.X), 120)
    runs = []
    for kept in (1, 2, 3, 10**6):
        monkeypatch.setattr(split_screen, "KEPT_PER_PROBE", kept)
        tree = ct.CoverTree(engine="rust", metric="residual", path="dense", mode="perf", telemetry=True,
                            dense_screen="split", dense_query_block=64, dense_point_block=256).fit(problem)
        results = (tree.query(predecessor=True, k=20), tree.query(indices=idx, k=20))
        wanted = (oracle("residual", problem, 20, predecessor=True),
                  oracle("residual", problem, 20, indices=idx))
        for result, want, what in zip(results, wanted, ("predecessor", "indexed"), strict=True):
            check_same((result.distances, result.indices), want, f"{name} kept {kept} {what}")
        runs.append([(r.telemetry["counters"], r.telemetry["per_query"], r.counters.extra["declined"])
                     for r in results])
    assert all(run == runs[0] for run in runs[1:])
    for absurd, words in ((0, "pairs kept per probe"), (-1, "usize.s range"), (2**64, "usize.s range")):
        monkeypatch.setattr(split_screen, "KEPT_PER_PROBE", absurd)
        with pytest.raises(ValueError, match=words):
            tree.query(indices=idx, k=20)


@pytest.mark.parametrize("k", [50, 150])
def test_a_span_whose_points_are_all_left_out_hides_no_pairs_another_span_dropped(k, monkeypatch, oracle,
                                                                                   check_same):
    """Points are cut into spans when the queries are few; a left-out query offers nothing in a span of
    left-out points. Merging that empty span's probes with a span that had trimmed its own to exactly the
    probes wanted once kept the empty span's floor (none dropped): the second pass was skipped and
    the dropped pairs never looked at (wrong answers on 2 threads, with one or three pairs kept per probe
    depending on k). Found by a review."""
    problem = ct.residual_problem(np.random.default_rng(0).normal(size=(2048, 3)), m=32, seed=1)
    queries = np.array([1500, 1600, 1700, 1800, 2000])
    left = np.zeros(len(problem.X), dtype=bool)
    left[:1024] = left[queries] = True
    monkeypatch.setattr(split_screen.SplitScreen, "fits_badly", lambda self: left.copy())
    monkeypatch.setattr(split_screen, "DECLINE_SHARE", 1)
    want = oracle("residual", problem, k, indices=queries)
    for threads in (1, 2):
        for kept in (1, 3):
            monkeypatch.setattr(split_screen, "KEPT_PER_PROBE", kept)
            tree = ct.CoverTree(engine="rust", metric="residual", path="dense", mode="perf",
                                threads=threads, dense_screen="split", dense_query_block=64,
                                dense_point_block=256).fit(problem)
            check_same(tree.kneighbors(indices=queries, k=k), want, f"k={k} threads={threads} kept={kept}")


def test_auto_leaves_a_problem_the_split_fits_badly_to_the_gemm(oracle, check_same):
    """Matern 5/2's residual is the approximation's, not the jitter's: z carries little of it, so 'auto'
    keeps the f64 screen (its counters are the f64 path's), with the same answers."""
    problem = PROBLEMS["matern 5/2"]()
    assert problem.split_screen.median_rest > split_screen.USEFUL
    runs = {}
    for screen in ("auto", "f64"):
        tree = ct.CoverTree(engine="rust", metric="residual", path="dense", mode="perf", telemetry=True,
                            dense_screen=screen).fit(problem)
        runs[screen] = tree.query(predecessor=True, k=10)
    assert runs["auto"].telemetry["counters"] == runs["f64"].telemetry["counters"]
    auto = (runs["auto"].distances, runs["auto"].indices)
    check_same(auto, oracle("residual", problem, 10, predecessor=True))


@pytest.mark.parametrize(("kernel", "m"), [("rbf", 512), ("rbf", 96), ("matern52", 200)])
def test_the_estimated_rest_is_the_median_of_all_rows_within_a_few_hundredths(kernel, m):
    problem = ct.residual_problem(np.random.default_rng(8).normal(size=(9000, 3)), m=m, seed=8, kernel=kernel)
    estimate = problem.split_rest_estimate
    assert abs(estimate - problem.split_screen.median_rest) < 0.03
    assert problem.n_points > split_screen.SAMPLE  # a sample, not every row


def test_auto_does_not_build_a_split_a_sample_says_it_would_not_use(monkeypatch, oracle, check_same):
    """A problem the split fits badly (Matern 5/2) is left to the f64 GEMM from a sample of its rows: the
    split is not built, and the answers are the f64 path's."""
    problem = PROBLEMS["matern 5/2"]()
    monkeypatch.setattr(split_screen, "PAYS", {int8_kernel(): 1})
    monkeypatch.setattr(split_screen, "SAMPLE", 200)
    auto = ct.CoverTree(engine="rust", metric="residual", path="dense", mode="perf").fit(problem)
    result = auto.query(predecessor=True, k=10)
    assert problem.split_rest_estimate > split_screen.USEFUL and "split_screen" not in vars(problem)
    check_same((result.distances, result.indices), oracle("residual", problem, 10, predecessor=True))


@pytest.mark.parametrize(("pays", "estimate", "built"), [(1.2, 0.1, True), (1.2, 0.2, False),
                                                        (1.5, 0.1, False), (0.05, 0.55, True),
                                                        (0.05, 0.75, False)])
def test_a_split_that_fits_worse_must_repay_itself_over_more_pairs(monkeypatch, pays, estimate, built):
    """'auto' asks PAYS m (N + m^2 / 4) / (1 - e)^4 eligible pairs of a split whose sampled median sqrt(e/p)
    is e, none above USEFUL, and before it samples, the pairs of e = PRESUMED_REST (0.15). Here 2.40 m
    (N + m^2 / 4) pairs: PAYS 1.2 asks 2.30 of them before sampling, 1.83 at e = 0.1 and 2.93 at 0.2;
    PAYS 1.5 asks 2.87 before sampling, though a split at e = 0.1 would need only 2.29; PAYS 0.05 asks 1.22
    at 0.55, and 0.75 is above USEFUL."""
    problem = PROBLEMS["clustered, anisotropic"]()
    monkeypatch.setattr(split_screen, "PAYS", {int8_kernel(): pays})
    vars(problem)["split_rest_estimate"] = estimate
    tree = ct.CoverTree(engine="rust", metric="residual", path="dense", mode="perf").fit(problem)
    tree.query(predecessor=True, k=10)
    assert ("split_screen" in vars(problem)) == built


def test_auto_builds_the_split_only_where_it_repays_itself(oracle, check_same, monkeypatch):
    """'auto' (the default) leaves a batch too small to repay the split's building to the f64 GEMM without
    building it, builds it for a batch large enough (split_screen.PAYS, AMX's 0.75 whatever the CPU: here
    112,000 pairs against the 398,000 the rule asks before any sample, 208,000 at e = 0 over
    (1 - PRESUMED_REST)^4, then 499,500 against 305,000), and then uses it for any batch."""
    monkeypatch.setattr(split_screen, "PAYS", {int8_kernel(): 0.75})
    problem = PROBLEMS["clustered, anisotropic"]()
    tree = ct.CoverTree(engine="rust", metric="residual", path="dense", mode="perf").fit(problem)
    f64 = ct.CoverTree(engine="rust", metric="residual", path="dense", mode="perf",
                       dense_screen="f64").fit(problem)
    idx = np.arange(0, len(problem.X), 9)

    def same_work(a, b) -> bool:
        return np.array_equal(a.counters.per_query, b.counters.per_query)

    small = tree.query(indices=idx, k=10)
    assert "split_screen" not in vars(problem) and same_work(small, f64.query(indices=idx, k=10))
    assert not {"split_basis", "split_rest_estimate"} & set(vars(problem)), "no split work for a small batch"
    large = tree.query(predecessor=True, k=10)
    assert "split_screen" in vars(problem) and not same_work(large, f64.query(predecessor=True, k=10))
    check_same((large.distances, large.indices), oracle("residual", problem, 10, predecessor=True))
    again = tree.query(indices=idx, k=10)
    assert not same_work(again, small), "the split, once built, serves small batches too"
    check_same((again.distances, again.indices), oracle("residual", problem, 10, indices=idx))


def test_auto_never_takes_the_split_where_no_fast_int8_kernel_runs(monkeypatch):
    """On a CPU where the split's products take the portable loop (no AVX2, VNNI or AMX), the split cost 4x
    the f64 screen: 'auto' neither builds it nor uses one built for dense_screen='split'."""
    from covertreex.engines import rust

    monkeypatch.setattr(split_screen, "PAYS", dict.fromkeys(("amx", "vnni", "avx2"), 0))  # fast: any size
    monkeypatch.setattr(rust, "int8_kernel", lambda: "portable")
    problem = PROBLEMS["clustered, anisotropic"]()
    options = {"engine": "rust", "metric": "residual", "path": "dense", "mode": "perf"}
    f64 = ct.CoverTree(dense_screen="f64", **options).fit(problem).query(predecessor=True, k=10)
    auto = ct.CoverTree(**options).fit(problem)
    assert np.array_equal(auto.query(predecessor=True, k=10).counters.per_query, f64.counters.per_query)
    assert "split_screen" not in vars(problem)
    ct.CoverTree(dense_screen="split", **options).fit(problem).query(predecessor=True, k=10)
    assert "split_screen" in vars(problem)
    assert np.array_equal(auto.query(predecessor=True, k=10).counters.per_query, f64.counters.per_query)


@pytest.mark.parametrize(("options", "data", "query", "words"), [
    ({"mode": "parity"}, "residual", "predecessor", "perf mode only"),
    ({}, "euclidean", "predecessor", "residual metric"),
    ({}, "residual", "points", "indexed points"),
    ({}, "given V", "predecessor", "residual_problem built"),
])
def test_split_where_it_cannot_run_is_an_error(options, data, query, words):
    problem = PROBLEMS["every point inducing"]()
    fitted = {"residual": problem, "euclidean": problem.X,
              "given V": ct.ResidualProblem.from_arrays(problem.X, problem.V, lengthscale=1.0, variance=1.0)}
    metric = "euclidean" if data == "euclidean" else "residual"
    options = {"mode": "perf", **options}
    tree = ct.CoverTree(engine="rust", metric=metric, path="dense", dense_screen="split", **options)
    tree.fit(fitted[data])
    with pytest.raises(InvalidInputError, match="dense_screen='split'") as info:
        if query == "predecessor":
            tree.query(predecessor=True, k=3)
        else:
            tree.query(problem.X[:4] + 0.01, k=3)
    assert words in str(info.value)


def test_a_pickled_problem_leaves_its_split_screen_out():
    problem = PROBLEMS["every point inducing"]()
    assert problem.split_screen is not None
    copy = pickle.loads(pickle.dumps(problem))
    assert "split_screen" not in copy.__dict__
    assert np.array_equal(copy.split_screen.q, problem.split_screen.q)


def test_sliced_product_is_far_more_exact_than_f64():
    """The certificate's K M, a cancelling product (a kernel matrix times its near-null directions): the
    slices' error bound holds against exact rational arithmetic, and is far below f64's."""
    rng = np.random.default_rng(0)
    U = rng.normal(size=(40, 3))
    K = np.exp(-0.5 * ((U[:, None] - U[None]) ** 2).sum(-1))
    lam, Q = np.linalg.eigh(K)
    M = Q * (1.0 / np.sqrt(np.maximum(lam, 0) + 1e-9))
    P, err = split_screen.sliced_product(K, M)
    Kf = [[Fraction(v) for v in row] for row in K]
    Mf = [[Fraction(v) for v in row] for row in M.T]
    for r in range(40):
        for c in range(0, 40, 3):
            exact = sum(a * b for a, b in zip(Kf[r], Mf[c], strict=True))
            assert abs(Fraction(P[r, c]) - exact) <= Fraction(err[r, c]), (r, c)
    f64_error = split_screen.gamma(40) * (np.abs(K) @ np.abs(M))
    assert np.all(err <= 1e-5 * f64_error + 16 * split_screen.U64 * np.abs(P))  # relative to the result


def test_more_inducing_points_than_the_slices_take_fall_back_or_refuse(oracle, check_same):
    problem = ct.residual_problem(np.random.default_rng(0).normal(size=(700, 3)), m=600, seed=1)
    assert problem.split_screen is None
    _auto_keeps_f64_and_split_refuses(problem, "at most 512 inducing points", oracle, check_same)


def _auto_keeps_f64_and_split_refuses(problem, words: str, oracle, check_same) -> None:
    """For a problem without a split screen: 'auto' answers as brute force, 'split' raises naming why."""
    auto = ct.CoverTree(engine="rust", metric="residual", path="dense", mode="perf", dense_screen="auto")
    expected = oracle("residual", problem, 5, predecessor=True)
    check_same(auto.fit(problem).kneighbors(k=5, predecessor=True), expected)
    split = ct.CoverTree(engine="rust", metric="residual", path="dense", mode="perf", dense_screen="split")
    with pytest.raises(InvalidInputError, match=words):
        split.fit(problem).kneighbors(k=5, predecessor=True)


def test_a_pickled_index_still_runs_the_split(every_row_split):
    """A Dask worker gets the Index through pickle: its query set and space hold equal, not the same,
    arrays, and the split must still run there, with the same answers and counters."""
    problem = PROBLEMS["gaussian"]()
    index = distributed.prepare(problem, 5, metric="residual", engine="rust", predecessor=True,
                                path="dense", mode="perf", dense_screen="split")
    local = distributed.answer_range(index, 0, 1500)
    remote = distributed.answer_range(pickle.loads(pickle.dumps(index, protocol=5)), 0, 1500)
    for mine, theirs in zip(local, remote, strict=True):
        assert np.array_equal(np.asarray(mine), np.asarray(theirs))


def test_the_packed_rows_are_made_once_per_process_and_never_pickled(every_row_split, monkeypatch, oracle,
                                                                    check_same):
    """Every dense call on the split packed Z for the int8 kernel (~15 ms at N = 32,768), which each range
    of a Dask job paid again: the packing is made by the first call, kept by the split, and left out of
    its pickle (another process may run another kernel); calls after it give the same answers."""
    from covertreex import twins

    problem = PROBLEMS["gaussian"]()
    split = problem.split_screen
    assert not split.q.flags.writeable and not split.factors.flags.writeable
    tree = ct.CoverTree(engine="rust", metric="residual", path="dense", mode="perf", dense_screen="split")
    first = tree.fit(problem).query(predecessor=True, k=5)
    packed = vars(split)["_rows"]
    made = twins.rust_twin("SplitRows")
    monkeypatch.setattr(twins, "rust_twin", lambda name: pytest.fail(f"{name} made again"))
    again = tree.fit(problem).query(predecessor=True, k=5)
    assert split.rows() is packed
    assert np.array_equal(first.indices, again.indices)
    assert first.distances.tobytes() == again.distances.tobytes()
    check_same((again.distances, again.indices), oracle("residual", problem, 5, predecessor=True))
    unpickled = pickle.loads(pickle.dumps(split, protocol=5))
    assert "_rows" not in vars(unpickled) and np.array_equal(unpickled.q, split.q)
    with pytest.raises(InvalidInputError, match="split q must be read-only"):
        made(np.array(split.q))


def test_a_split_keeps_no_q_that_can_change_under_its_packing(every_row_split, oracle, check_same):
    """The packing of q is made once, and a read-only view of a writeable array changes with that array:
    the split copies such a q. The build's own q and one unpickled from out-of-band buffers (a Dask
    worker's) are taken as they are."""
    problem = PROBLEMS["gaussian"]()
    built = problem.split_screen
    assert split_screen.SplitScreen(built.q, built.factors, built.median_rest, built.source).q is built.q
    buffers = []
    sent = pickle.dumps(built, protocol=5, buffer_callback=buffers.append)
    assert np.shares_memory(pickle.loads(sent, buffers=buffers).q, built.q)
    base = np.array(built.q)
    view = base[:]
    view.flags.writeable = False
    split = split_screen.SplitScreen(view, built.factors, built.median_rest, built.source)
    split.rows()  # packed now
    base[:] = 0
    assert np.array_equal(split.q, built.q)
    again = PROBLEMS["gaussian"]()
    again.adopt_split_screen(split)
    tree = ct.CoverTree(engine="rust", metric="residual", path="dense", mode="perf", dense_screen="split")
    result = tree.fit(again).query(predecessor=True, k=5)
    assert again.split_screen is split
    check_same((result.distances, result.indices), oracle("residual", problem, 5, predecessor=True))


@pytest.mark.parametrize("copied", [lambda s: pickle.loads(pickle.dumps(s, protocol=4)), copy.deepcopy],
                         ids=["protocol 4", "deepcopy"])
def test_a_split_copied_any_way_keeps_its_arrays_read_only_and_runs(copied, every_row_split):
    """A pickle below protocol 5 (multiprocessing's) or a deep copy brings arrays back writeable, which
    the packing refuses: the split makes its own read-only again."""
    problem = PROBLEMS["gaussian"]()
    index = distributed.prepare(problem, 5, metric="residual", engine="rust", predecessor=True, path="dense",
                                mode="perf", dense_screen="split")
    again = copied(index)
    split = again.space.problem.split_screen
    assert not split.q.flags.writeable and not split.factors.flags.writeable
    mine, theirs = distributed.answer_range(index, 0, 1500), distributed.answer_range(again, 0, 1500)
    assert all(a.tobytes() == b.tobytes() for a, b in zip(mine, theirs, strict=True))


@pytest.mark.parametrize("name", PROBLEMS)
def test_every_row_of_v_meets_the_solve_bound_the_build_assumes(name, monkeypatch):
    """The build bounds ||k_i - L v_i|| a priori (dtrsm's backward error) and checks only a sample of rows:
    on data built to break it, every row's residual, formed again, is within that bound plus the
    product's own rounding (the check's rule, applied to all rows)."""
    problem = PROBLEMS[name]()
    fixed = problem.split_basis
    assert fixed is not None
    monkeypatch.setattr(split_screen, "CHECKED_ROWS", len(problem.X))
    U = problem.X[problem.inducing]
    assert split_screen._solved_within_bound(problem, U, problem.cholesky_factor, fixed)


def test_a_v_off_its_solve_gets_no_split(oracle, check_same):
    """A problem holding the inducing points and Cholesky factor of another V (here its first row moved by
    1e-9, far above the solve's bound and far below anything a test of answers would notice) has no
    split screen: the bound's premise fails, so 'auto' keeps the f64 screen and 'split' refuses."""
    from covertreex.residual import ResidualProblem, residual_variance

    problem = PROBLEMS["gaussian"]()
    V = problem.V.copy()
    V[0] += 1e-9
    V.flags.writeable = False
    p = residual_variance(V, problem.variance)
    p.flags.writeable = False
    moved = ResidualProblem._of_frozen(problem.X, V, p, problem.kernel, problem.lengthscale, problem.variance,
                                       problem.inducing, problem.cholesky_factor, problem.seed)
    assert problem.split_screen is not None and moved.split_screen is None
    _auto_keeps_f64_and_split_refuses(moved, "within its solve's error bound", oracle, check_same)


def test_the_row_constants_are_the_ones_rust_reads():
    """Rust's split_rows reads ROW_CONSTANTS by position, and forms V's deviation per row as the basis's
    check (split_screen._deviation) does: its verr factor, h r (1 + 64u) with h = delta / s~ (1 + 4u),
    agrees with the Python formula on every row (the norms' summation orders differ, hence rtol)."""
    from covertreex import twins
    from covertreex.engines.rust import _extension

    assert len(split_screen.ROW_CONSTANTS) == _extension().SPLIT_CONSTANTS
    problem = PROBLEMS["gaussian"]()
    fixed, split = problem.split_basis, problem.split_screen
    assert fixed.constants.shape == (len(split_screen.ROW_CONSTANTS),)
    assert np.all(np.isfinite(fixed.constants))
    u = split_screen.U64
    delta = split_screen._deviation(fixed, np.linalg.norm(problem.V, axis=1))
    h = delta / fixed.constant("sqrt_s2t") * (1 + 4 * u)
    verr = h / np.sqrt(problem.p) * (1 + 64 * u)
    np.testing.assert_allclose(split.factors[:, FACTORS.index("verr")], verr, rtol=1e-14)
    with pytest.raises(InvalidInputError):
        twins.rust_twin("split_rows")(problem.V[:3], problem.V[:3], problem.p[:3], fixed.constants[:-1])
