"""The schedule knobs (covertreex.engines.schedule) change work, never answers: with each knob on, and with
all of them on, gold answers bitwise as with every knob off and as the brute-force oracle, and rust (parity
and perf mode) equals gold on answers and on every counter. Hypothesis draws tie-heavy cases (lattices,
duplicates, near-ties) of both metrics, asked as drawn or in predecessor mode.
"""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import covertreex as ct
from covertreex.counters import LevelCounter, QueryCounter
from covertreex.engines.schedule import Schedule
from pytest_pcct.parity.profiles import suite_settings
from pytest_pcct.parity.strategies import knn_cases

SCHEDULES = {name: {name: True} for name in Schedule._fields} | {"all": dict.fromkeys(Schedule._fields, True)}
"""Each schedule knob on alone, then all of them together."""
TIE_HEAVY = knn_cases(family=st.sampled_from(["lattice", "duplicates", "near_ties"]), n=st.integers(20, 300))


def _answer(case, engine: str, predecessor: bool, **options):
    """The answer of `engine` (tree path, `options`) to `case`, or to its predecessor problem."""
    problem = case.problem
    data = problem.residual if problem.residual is not None else problem.points
    path = {} if engine == "brute" else {"path": "tree"}
    model = ct.CoverTree(engine=engine, metric=problem.metric, **path, **options).fit(data)
    if predecessor:
        return model.query(k=case.k, predecessor=True)
    k = min(case.k, problem.n_points)  # the API pads predecessor rows only
    if problem.queries is not None:
        return model.query(problem.queries, k)
    return model.query(indices=problem.query_indices, k=k)


def _assert_same_answer(a, b, what: str) -> None:
    __tracebackhide__ = True
    assert np.array_equal(a.indices, b.indices), f"{what}: indices differ"
    assert np.array_equal(a.distances.view(np.int64), b.distances.view(np.int64)), f"{what}: distance bits"


@pytest.mark.parametrize("schedule", SCHEDULES)
@suite_settings()
@given(case=TIE_HEAVY, predecessor=st.booleans())
def test_schedule_keeps_every_answer_and_engine_parity(schedule, case, predecessor):
    options = SCHEDULES[schedule]
    on = _answer(case, "gold", predecessor, **options)
    _assert_same_answer(on, _answer(case, "gold", predecessor), f"{schedule} vs every knob off")
    _assert_same_answer(on, _answer(case, "brute", predecessor), f"{schedule} vs brute")
    for mode in ("parity", "perf"):
        rust = _answer(case, "rust", predecessor, mode=mode, **options)
        _assert_same_answer(rust, on, f"rust {mode} {schedule}")
        assert np.array_equal(rust.counters.per_query, on.counters.per_query), f"rust {mode} per-query"
        assert np.array_equal(rust.counters.per_level, on.counters.per_level), f"rust {mode} per-level"


def test_predecessor_pruning_cuts_the_vecchia_walk():
    """Point i of a predecessor query never enters a subtree of later points. Inserted in natural order,
    every subtree's smallest index is its root's (the sequential build; a batch round may insert a later
    point first), so point i evaluates only points j < i (point 0 none), and never more than with the knob
    off."""
    X = np.random.default_rng(3).normal(size=(500, 2))
    off, on = (ct.CoverTree(engine="gold", path="tree", build="sequential", predecessor_pruning=flag).fit(X)
               .query(k=5, predecessor=True) for flag in (False, True))
    evaluations = QueryCounter.DISTANCE_EVALUATIONS
    spent, before = on.counters.per_query[:, evaluations], off.counters.per_query[:, evaluations]
    assert np.all(spent <= np.arange(X.shape[0])) and np.all(spent <= before)
    assert spent.sum() < before.sum()


def _columns(result, *columns) -> list[int]:
    """Per-query counter columns summed over the queries."""
    return [int(result.counters.per_query[:, column].sum()) for column in columns]


@pytest.fixture(scope="module")
def residual_walk():
    """A residual problem and the gold tree path on it, asked for 10 neighbours of 120 indexed points."""
    X = np.random.default_rng(5).normal(size=(1500, 3))
    problem = ct.residual_problem(X, kernel="rbf", lengthscale=1.0, variance=1.0, m=48, seed=5)
    indices = np.random.default_rng(6).integers(0, 1500, 120)

    def walk(engine: str = "gold", **options):
        model = ct.CoverTree(engine=engine, metric="residual", path="tree", **options).fit(problem)
        return model.query(indices=indices, k=10)
    return walk


def test_level_cache_skips_children_without_evaluating_them(residual_walk):
    """A skipped child could not have entered the heap, so the heap sees the same offers that matter:
    the same pushes and answer, fewer evaluations (each skip saves its own evaluation at least)."""
    Q = QueryCounter
    off, on = residual_walk(), residual_walk(level_cache=True)
    _assert_same_answer(on, off, "level_cache")
    pushes_off, evaluations_off = _columns(off, Q.HEAP_PUSHES, Q.DISTANCE_EVALUATIONS)
    pushes_on, evaluations_on, skips = _columns(on, Q.HEAP_PUSHES, Q.DISTANCE_EVALUATIONS, Q.CACHE_SKIPS)
    assert pushes_on == pushes_off
    assert skips > 0 and evaluations_on + skips <= evaluations_off
    assert _columns(off, Q.CACHE_SKIPS) == [0]


@pytest.mark.parametrize("walk", [{"best_first": True}, {"child_reordering": True, "block_sizing": True}])
def test_early_stop_ends_the_walk_without_losing_work(residual_walk, walk):
    """Once the guard proves everything left prunable, what the walk would still do is prune: the stop
    saves those frontier entries and prune checks, never an evaluation or a push. Best first pops in
    bound order, so its guard rarely finds an entry left unprunable; the level walk's frontier is not in
    that order, so a guard that passed too easily would stop it early and lose evaluations."""
    Q = QueryCounter
    off, on = residual_walk(**walk), residual_walk(**walk, early_stop=True)
    _assert_same_answer(on, off, "early_stop")
    same = (Q.DISTANCE_EVALUATIONS, Q.HEAP_PUSHES)
    assert _columns(on, *same) == _columns(off, *same)
    stops, checks, prunes = _columns(on, Q.EARLY_STOPS, Q.GUARD_CHECKS, Q.PRUNES)
    assert stops > 0 and checks > 0 and prunes < _columns(off, Q.PRUNES)[0]
    entries = [int(result.counters.per_level[:, LevelCounter.FRONTIER].sum()) for result in (on, off)]
    assert entries[0] < entries[1]


def test_block_sizing_cuts_steps_and_perf_mode_wastes_fewer_evaluations(residual_walk):
    """Blocks change no walk decision (same evaluations, pushes, prunes, frontier entries), only the
    unit rust's perf mode evaluates ahead: against a fresher k-th distance it discards fewer."""
    Q = QueryCounter
    same = (Q.DISTANCE_EVALUATIONS, Q.HEAP_PUSHES, Q.PRUNES, Q.FRONTIER_STEPS)
    off, on = residual_walk(), residual_walk(block_sizing=True)
    _assert_same_answer(on, off, "block_sizing")
    assert _columns(on, *same) == _columns(off, *same)
    assert np.array_equal(on.counters.per_level[:, 0], off.counters.per_level[:, 0])  # frontier entries
    assert _columns(on, Q.BLOCKS)[0] > _columns(off, Q.BLOCKS)[0] == _columns(off, Q.FRONTIER_STEPS)[0]
    wasted = [residual_walk("rust", mode="perf", block_sizing=flag).telemetry["speculation"]
              ["discarded_evaluations"] for flag in (False, True)]
    assert 0 <= wasted[1] < wasted[0]


@pytest.mark.parametrize("metric", ["euclidean", "residual"])
@pytest.mark.parametrize(("engine", "mode"), [("gold", "parity"), ("rust", "parity"), ("rust", "perf")])
def test_no_point_is_measured_twice_by_one_query(engine, mode, metric):
    """Issue 12's visited mask is the tree itself: every point has one place in it, and an exact duplicate
    of a node (a copy) takes its parent's distance (a dedupe hit). So with k = n, where nothing can be
    pruned, each query reaches every point exactly once: evaluations + dedupe hits == n. A walk that
    measured a node twice would count more; a dedupe that stopped working would leave no dedupe hit."""
    rng = np.random.default_rng(1)
    X = np.vstack([rng.integers(0, 4, size=(60, 2)).astype(float), np.zeros((5, 2))])  # 16 distinct sites
    n = len(X)
    model = ct.CoverTree(engine=engine, mode=mode, metric=metric, path="tree", telemetry=True)
    model.fit(X) if metric == "euclidean" else model.fit(X, m=8, seed=0)
    result = model.query(X[:7] + 0.1, n)
    counters = result.telemetry["counters"]
    # Each query needs all n points (k = n), so a total of 7 n means exactly n for each.
    assert counters["distance_evaluations"] + counters["dedupe_hits"] == 7 * n
    assert counters["dedupe_hits"] > 0  # the duplicates really are deduplicated
