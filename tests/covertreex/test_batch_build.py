"""The batch build: valid trees whose answers equal the sequential tree's and brute force's, gold == rust
tree for tree in parity mode, and the same tree on any thread count, over tie-heavy data and fuzzed cases."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import covertreex as ct
from covertreex import datasets
from covertreex.errors import InvalidInputError

ENGINES = ("gold", "rust")
KINDS = ("lattice", "duplicates", "clustered", "gaussian")
METRICS = ("euclidean", "residual")


def _points(metric, kind, n, d, seed):
    """`n` points of `kind` in `d` dimensions, as the metric's input (a residual problem with m = 16)."""
    X = datasets.make(kind, n, d, seed).points
    return X if metric == "euclidean" else ct.residual_problem(X, m=min(16, n), seed=seed)


def _fit(engine, metric, data, **options):
    return ct.CoverTree(engine=engine, metric=metric, path="tree", **options).fit(data)


def _same_answers(a, b):
    return np.array_equal(a[0], b[0]) and np.array_equal(a[1].view(np.int64), b[1].view(np.int64))


def _trees_equal(a, b):
    return a.same_as(b) and a.build_evaluations == b.build_evaluations


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("metric", METRICS)
@pytest.mark.parametrize("kind", KINDS)
def test_batch_trees_are_valid_and_answer_like_sequential_and_brute(engine, metric, kind, oracle,
                                                                    check_same):
    data = _points(metric, kind, 500, 3, 11)
    sequential = _fit(engine, metric, data, build="sequential")
    for block in (16, 256):
        batch = _fit(engine, metric, data, build="batch", build_block=block)
        ct.validate(batch.tree, batch.space)
        for query in ({"indices": np.arange(0, 500, 7)}, {"predecessor": True}):
            context = f"{engine} {metric} {kind} block {block} {query}"
            check_same(batch.kneighbors(k=9, **query), sequential.kneighbors(k=9, **query), context)
            check_same(batch.kneighbors(k=9, **query), oracle(metric, data, 9, **query), context)


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("metric", METRICS)
def test_the_default_build_is_batch_for_residual_and_sequential_for_euclidean(engine, metric):
    data = _points(metric, "clustered", 400, 3, 2)
    chosen = "batch" if metric == "residual" else "sequential"
    default = _fit(engine, metric, data).tree
    assert _trees_equal(default, _fit(engine, metric, data, build=chosen).tree)
    assert not _trees_equal(default, _fit(engine, metric, data, build={"batch": "sequential",
                                                                       "sequential": "batch"}[chosen]).tree)


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("metric", METRICS)
def test_batch_of_one_point_per_round_is_the_sequential_tree(engine, metric):
    # The same tree; the level-synchronous search counts its own evaluations.
    data = _points(metric, "duplicates", 300, 2, 4)
    sequential = _fit(engine, metric, data, build="sequential").tree
    assert _fit(engine, metric, data, build="batch", build_block=1).tree.same_as(sequential)
    assert not _fit(engine, metric, data, build="batch").tree.same_as(sequential)


@pytest.mark.parametrize("metric", METRICS)
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("order", ["natural", "hilbert"])
def test_gold_and_rust_build_the_same_batch_tree(metric, kind, order):
    data = _points(metric, kind, 600, 3, 5)
    gold = _fit("gold", metric, data, build="batch", order=order, build_block=64).tree
    for mode in ("parity", "perf"):
        rust = _fit("rust", metric, data, build="batch", order=order, build_block=64, mode=mode).tree
        assert _trees_equal(rust, gold), (mode, gold.build_evaluations, rust.build_evaluations)


@pytest.mark.parametrize("engine", ENGINES)
def test_thread_count_never_changes_the_batch_tree(engine):
    data = _points("residual", "lattice", 600, 2, 8)
    one = _fit(engine, "residual", data, build="batch", build_block=32, threads=1).tree
    two = _fit(engine, "residual", data, build="batch", build_block=32, threads=2).tree
    assert _trees_equal(one, two)


_RUN = """
import hashlib, json, numba, numpy as np, covertreex as ct
from covertreex import datasets
X = datasets.make("duplicates", 800, 3, 9).points
h = hashlib.sha256()
for engine in ("gold", "rust"):
    t = ct.CoverTree(engine=engine, path="tree", build="batch", build_block=48).fit(X).tree
    for a in (t.levels, t.parents, t.radius, np.array([t.build_evaluations])):
        h.update(np.ascontiguousarray(a).tobytes())
print(json.dumps({"digest": h.hexdigest(), "threads": numba.get_num_threads()}))
"""


def _digest_with(threads: int) -> dict:
    env = dict(os.environ, NUMBA_NUM_THREADS=str(threads), RAYON_NUM_THREADS=str(threads))
    out = subprocess.run([sys.executable, "-c", _RUN], env=env, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_one_and_two_worker_processes_build_identical_batch_trees():
    one, two = _digest_with(1), _digest_with(2)
    assert (one["threads"], two["threads"]) == (1, 2)
    assert one["digest"] == two["digest"]


def test_cli_build_flags_choose_the_batch_build(tmp_path):
    out = tmp_path / "tree.npz"
    done = subprocess.run(
        [sys.executable, "-m", "covertreex", "build", "--n", "300", "--dims", "2", "--build", "batch",
         "--build-block", "8", "--check", "--out", str(out)], capture_output=True, text=True, timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert "check   the four cover-tree invariants hold" in done.stdout
    points = datasets.make("gaussian", 300, 2, 42).points
    saved = ct.load(out)
    assert saved.same_as(ct.CoverTree(build="batch", build_block=8).fit(points).tree)
    assert not saved.same_as(ct.CoverTree().fit(points).tree)


@pytest.mark.parametrize("engine", ENGINES)
def test_batch_build_block_below_one_is_an_error(engine):
    with pytest.raises(InvalidInputError, match="build_block"):
        _fit(engine, "euclidean", np.zeros((3, 2)), build="batch", build_block=0)


# the oracle fixture holds no state, so sharing it between examples is safe
@settings(max_examples=30, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(
    seed=st.integers(0, 2**16), metric=st.sampled_from(METRICS), kind=st.sampled_from(KINDS),
    n=st.integers(1, 160), d=st.integers(1, 4), block=st.integers(1, 40), k=st.integers(1, 12),
)
def test_fuzzed_batch_trees_are_valid_equal_across_engines_and_exact(seed, metric, kind, n, d, block, k,
                                                                       oracle):
    data = _points(metric, kind, n, d, seed)
    gold = _fit("gold", metric, data, build="batch", build_block=block)
    rust = _fit("rust", metric, data, build="batch", build_block=block)
    ct.validate(gold.tree, gold.space)
    assert _trees_equal(rust.tree, gold.tree)
    query = {"indices": np.arange(n)}
    k = min(k, n)
    assert _same_answers(gold.kneighbors(k=k, **query), oracle(metric, data, k, **query))
