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
from covertreex.counters import QueryCounter
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
    if problem.queries is not None:
        return model.query(problem.queries, case.k)
    return model.query(indices=problem.query_indices, k=case.k)


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
    every subtree's smallest index is its root's, so point i evaluates only points j < i (point 0 none),
    and never more than with the knob off."""
    X = np.random.default_rng(3).normal(size=(500, 2))
    off, on = (ct.CoverTree(engine="gold", path="tree", predecessor_pruning=flag).fit(X)
               .query(k=5, predecessor=True) for flag in (False, True))
    evaluations = QueryCounter.DISTANCE_EVALUATIONS
    spent, before = on.counters.per_query[:, evaluations], off.counters.per_query[:, evaluations]
    assert np.all(spent <= np.arange(X.shape[0])) and np.all(spent <= before)
    assert spent.sum() < before.sum()
