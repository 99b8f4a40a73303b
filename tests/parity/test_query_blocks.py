"""Query blocks (knob ``query_block``, rust perf mode, rust/core/src/query_block.rs) change where the
distances come from, never a decision: with any block size and thread count, rust answers bitwise as the
per-query walk (gold) and the brute-force oracle, with equal per-query and per-level counters, over the
parity fixture and Hypothesis' tie-heavy cases of both metrics, indexed, new-coordinate and predecessor
queries.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import covertreex as ct
from pytest_pcct.parity.profiles import suite_settings
from pytest_pcct.parity.strategies import knn_cases
from tests.parity.test_rust_parity import DIMS, VARIANTS, _fixture, assert_same_result

TIE_HEAVY = knn_cases(family=st.sampled_from(["lattice", "duplicates", "near_ties"]), n=st.integers(20, 300))


def _blocked(metric, data, block: int, threads: int = 1, **options):
    return ct.CoverTree(path="tree", engine="rust", metric=metric, mode="perf", query_block=block,
                        threads=threads, **options).fit(data)


@pytest.mark.parametrize("reordering", [False, True])
@pytest.mark.parametrize("d", DIMS)
@pytest.mark.parametrize("variant", VARIANTS)
def test_query_blocks_equal_the_per_query_walk_on_the_parity_fixture(variant, d, reordering):
    kind, metric, data, query = _fixture(variant, d, seed=d + 1)
    gold = ct.CoverTree(path="tree", engine="gold", metric=metric, child_reordering=reordering).fit(data)
    walk = ct.CoverTree(path="tree", engine="rust", metric=metric, mode="perf",
                        child_reordering=reordering).use_tree(gold.tree, data)
    for block, threads in ((2, 1), (7, 2), (64, 2), (5000, 1)):
        blocked = _blocked(metric, data, block, threads, child_reordering=reordering)
        blocked.use_tree(gold.tree, data)
        context = f"{variant} {kind} d={d} block {block} threads {threads}"
        for k in (1, 10):
            assert_same_result(blocked.query(k=k, **query), gold.query(k=k, **query), f"{context} k={k}")
        blocks = blocked.query(k=6, predecessor=True)
        assert_same_result(blocks, gold.query(k=6, predecessor=True), f"{context} predecessor")
        # No distance is evaluated that the per-query walk does not evaluate.
        alone = walk.query(k=6, predecessor=True).counters.extra["discarded_evaluations"]
        assert blocks.counters.extra["discarded_evaluations"] == alone, context


def test_parity_mode_keeps_gold_order_whatever_the_block():
    """Parity mode evaluates one distance at a time in gold's order: no block, nothing speculative."""
    _, metric, data, query = _fixture("residual-rbf", 3, seed=0)
    model = ct.CoverTree(path="tree", engine="rust", metric=metric, mode="parity", query_block=64).fit(data)
    assert model.query(k=5, **query).counters.extra["discarded_evaluations"] == 0


@suite_settings()
@given(case=TIE_HEAVY, predecessor=st.booleans(), block=st.integers(1, 70), threads=st.sampled_from([1, 2]))
def test_query_blocks_equal_gold_and_brute_on_tie_heavy_cases(case, predecessor, block, threads):
    problem = case.problem
    data = problem.residual if problem.residual is not None else problem.points
    if predecessor:
        query = {"predecessor": True}
    elif problem.queries is not None:
        query = {"queries": problem.queries}
    else:
        query = {"indices": problem.query_indices}
    gold = ct.CoverTree(path="tree", engine="gold", metric=problem.metric).fit(data)
    blocked = _blocked(problem.metric, data, block, threads).use_tree(gold.tree, data)
    brute = ct.CoverTree(engine="brute", metric=problem.metric, brute_variant="direct").fit(data)
    k = case.k if predecessor else min(case.k, problem.n_points)  # the API pads predecessor rows only
    got = blocked.query(k=k, **query)
    assert_same_result(got, gold.query(k=k, **query), f"block {block} threads {threads}")
    oracle = brute.query(k=k, **query)
    assert np.array_equal(got.indices, oracle.indices)
    assert np.array_equal(got.distances.view(np.int64), oracle.distances.view(np.int64))
