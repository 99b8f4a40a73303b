"""rust (parity mode) == gold, bit for bit: trees, answers, counters and telemetry, over the parity fixture.

The fixture of DESIGN section 6: 1,000 points, 64 queries, k = 1..10, dimensions {1, 2, 3, 8}, six seeds,
Euclidean and residual (RBF and Matern 5/2), with tie-heavy lattices and duplicated points among the data
kinds, natural and Hilbert insertion orders, indexed and new-coordinate queries, predecessor mode, and a
tree built by one engine queried by the other.
"""

from __future__ import annotations

import numpy as np
import pytest

import covertreex as ct
from covertreex import datasets
from covertreex.engines.schedule import Schedule
from covertreex.telemetry import COMPARED_SECTIONS, validate_record

N, N_QUERIES, KS, DIMS, SEEDS = 1000, 64, range(1, 11), (1, 2, 3, 8), range(6)
KINDS = ("gaussian", "lattice", "duplicates", "clustered")
VARIANTS = ("euclidean", "residual-rbf", "residual-matern52")


def _fixture(variant: str, d: int, seed: int):
    """(metric, data, query arguments) of one parity case; every kind meets every dimension."""
    kind = KINDS[(seed + d) % len(KINDS)]
    X = datasets.make(kind, N, d, seed).points
    if variant == "euclidean":
        metric, data = "euclidean", X
    else:
        kernel = variant.split("-")[1]
        lengthscale = 0.8 if seed % 2 else np.linspace(0.6, 1.4, d)
        metric, data = "residual", ct.residual_problem(
            X, kernel=kernel, lengthscale=lengthscale, variance=1.2, m=32, seed=seed
        )
    if seed % 2:
        query = {"queries": datasets.make(kind, N_QUERIES, d, seed + 100).points}
    else:
        query = {"indices": np.random.default_rng(seed).integers(0, N, N_QUERIES)}
    return kind, metric, data, query


def assert_same_result(rust, gold, context: str) -> None:
    """Identical indices, bitwise distances, counter arrays and compared telemetry sections."""
    __tracebackhide__ = True
    same = (rust.indices == gold.indices) & (rust.distances.view(np.int64) == gold.distances.view(np.int64))
    if not same.all():
        row, pos = np.argwhere(~same)[0]
        raise AssertionError(
            f"{context}: row {row} position {pos}: rust ({rust.indices[row, pos]}, "
            f"{rust.distances[row, pos]!r}) != gold ({gold.indices[row, pos]}, {gold.distances[row, pos]!r})"
        )
    for name in ("per_query", "per_level"):
        a, b = getattr(rust.counters, name), getattr(gold.counters, name)
        if a.shape != b.shape or not np.array_equal(a, b):
            where = np.argwhere(a != b)[0].tolist() if a.shape == b.shape else f"shape {a.shape} vs {b.shape}"
            raise AssertionError(f"{context}: counters.{name} differ at {where}")
    for section in COMPARED_SECTIONS:
        assert rust.telemetry[section] == gold.telemetry[section], f"{context}: telemetry {section!r}"


def _pair(metric, **options):
    """(rust, gold) CoverTrees with the same options."""
    return tuple(ct.CoverTree(path="tree", engine=engine, metric=metric, **options)
                 for engine in ("rust", "gold"))


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("d", DIMS)
@pytest.mark.parametrize("variant", VARIANTS)
def test_rust_equals_gold(variant, d, seed):
    kind, metric, data, query = _fixture(variant, d, seed)
    order = "hilbert" if seed % 3 == 2 else "natural"
    build = "sequential" if seed % 2 else "batch"  # both builds' trees must agree bit for bit
    context = f"{variant} {kind} d={d} seed={seed} build={build}"
    rust, gold = (tree.fit(data) for tree in _pair(metric, order=order, build=build))
    assert rust.tree.same_as(gold.tree), f"{context}: trees differ"
    assert rust.tree.build_evaluations == gold.tree.build_evaluations, f"{context}: build evaluations"
    for k in KS:
        a, b = rust.query(k=k, **query), gold.query(k=k, **query)
        assert_same_result(a, b, f"{context} k={k}")
    assert a.telemetry["engine"] == "rust" and a.telemetry["mode"] == "parity"
    # The fixture really exercises the delicate paths: reused copy distances and tied distances.
    if kind == "duplicates":
        assert a.telemetry["counters"]["dedupe_hits"] > 0, context
    if kind == "lattice" and d <= 3:
        assert any(len(np.unique(row)) < k for row in a.distances), context
    validate_record(a.telemetry)
    k = 3 + seed
    assert_same_result(
        rust.query(k=k, predecessor=True), gold.query(k=k, predecessor=True), f"{context} predecessor k={k}"
    )


@pytest.mark.parametrize("d", DIMS)
@pytest.mark.parametrize("variant", VARIANTS)
def test_rust_perf_mode_equals_gold(variant, d):
    """Perf mode evaluates sibling distances in lockstep: same values, so still equal to gold bit for bit."""
    kind, metric, data, query = _fixture(variant, d, seed=1)
    fast = ct.CoverTree(path="tree", engine="rust", metric=metric, mode="perf").fit(data)
    gold = ct.CoverTree(path="tree", engine="gold", metric=metric).fit(data)
    assert fast.tree.same_as(gold.tree) and fast.tree.build_evaluations == gold.tree.build_evaluations
    for k in (1, 10):
        result = fast.query(k=k, **query)
        assert result.telemetry["mode"] == "perf"
        assert_same_result(result, gold.query(k=k, **query), f"perf {variant} {kind} d={d} k={k}")
    pred = fast.query(k=4, predecessor=True)
    assert_same_result(pred, gold.query(k=4, predecessor=True), f"perf {variant} d={d} predecessor")


@pytest.mark.parametrize("knob", [*Schedule._fields, "all"])
@pytest.mark.parametrize("mode", ["parity", "perf"])
@pytest.mark.parametrize("d", DIMS)
@pytest.mark.parametrize("variant", VARIANTS)
def test_rust_equals_gold_with_schedule_knobs(variant, d, mode, knob):
    """Each schedule knob on (and all together): rust == gold on answers and every counter, and the answers
    are those of every knob off."""
    kind, metric, data, query = _fixture(variant, d, seed=d)
    options = dict.fromkeys(Schedule._fields if knob == "all" else [knob], True)
    plain = ct.CoverTree(path="tree", engine="gold", metric=metric).fit(data)
    gold = ct.CoverTree(path="tree", engine="gold", metric=metric, **options).use_tree(plain.tree, data)
    rust = ct.CoverTree(path="tree", engine="rust", metric=metric, mode=mode, **options).fit(data)
    context = f"{knob} {mode} {variant} {kind} d={d}"
    for k, asked in ((1, query), (10, query), (7, {"predecessor": True})):
        reference, answer = plain.query(k=k, **asked), gold.query(k=k, **asked)
        assert np.array_equal(answer.indices, reference.indices), f"{context} k={k}: answers changed"
        assert np.array_equal(answer.distances.view(np.int64), reference.distances.view(np.int64))
        assert_same_result(rust.query(k=k, **asked), answer, f"{context} k={k} {asked.keys()}")


@pytest.mark.parametrize(("variant", "kind"), [("euclidean", "lattice"), ("residual-matern52", "duplicates")])
def test_trees_cross_between_engines(variant, kind):
    """A gold-built tree queried by rust, and a rust-built tree queried by gold, agree with gold on gold."""
    X = datasets.make(kind, N, 3, 11).points
    metric = "euclidean" if variant == "euclidean" else "residual"
    data = X if metric == "euclidean" else ct.residual_problem(X, kernel="matern52", m=32, seed=11)
    rust, gold = (tree.fit(data) for tree in _pair(metric))
    indices = np.arange(0, N, 17)
    reference = gold.query(indices=indices, k=7)
    rust_on_gold = ct.CoverTree(path="tree", engine="rust", metric=metric).use_tree(gold.tree, data)
    gold_on_rust = ct.CoverTree(path="tree", engine="gold", metric=metric).use_tree(rust.tree, data)
    assert_same_result(rust_on_gold.query(indices=indices, k=7), reference, f"{variant} rust on gold tree")
    assert_same_result(gold_on_rust.query(indices=indices, k=7), reference, f"{variant} gold on rust tree")
    pred = gold.query(k=5, predecessor=True)
    assert_same_result(rust_on_gold.query(k=5, predecessor=True), pred, f"{variant} predecessor, gold tree")


def test_shared_tree_preset_queries_the_gold_build():
    """residual_parity builds with gold for every engine; rust's answers and counters still match."""
    problem = ct.residual_problem(datasets.make("lattice", N, 2, 4).points, m=32, seed=4)
    rust = ct.CoverTree(path="tree", engine="rust", preset="residual_parity").fit(problem)
    gold = ct.CoverTree(path="tree", engine="gold", preset="residual_parity").fit(problem)
    assert rust.tree.same_as(gold.tree)
    assert_same_result(rust.query(k=10, predecessor=True), gold.query(k=10, predecessor=True), "shared tree")
