"""The dense path: exact (dense == tree == brute, bitwise) on every query kind, metric and tie-heavy data;
its screening bound holds where cancellation is worst; `auto` picks by the cost model; fit stays lazy."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import covertreex as ct
from covertreex import datasets
from covertreex.metrics.data import EPS, operand
from covertreex.metrics.kernels import gamma, row_factors

TREE_ENGINES = ("gold", "rust")
KINDS = ("gaussian", "lattice", "duplicates", "clustered")


def _data(metric, kind, n, d, seed, m=24):
    X = datasets.make(kind, n, d, seed).points
    if metric == "euclidean":
        return X
    kernel = "rbf" if seed % 2 == 0 else "matern52"
    lengthscale = 0.7 if seed % 3 else np.linspace(0.5, 1.5, d)
    return ct.residual_problem(X, kernel=kernel, lengthscale=lengthscale, variance=1.3, m=min(m, n),
                               seed=seed)


def _dense(engine, metric, data, **options):
    return ct.CoverTree(engine=engine, metric=metric, path="dense", **options).fit(data)


@pytest.mark.parametrize("engine", TREE_ENGINES)
@pytest.mark.parametrize("metric", ["euclidean", "residual"])
@pytest.mark.parametrize(("kind", "d", "seed"), [(k, d, s) for s, k in enumerate(KINDS) for d in (1, 3, 8)])
def test_dense_equals_tree_and_oracle(engine, metric, kind, d, seed, oracle, check_same):
    n = 600
    data = _data(metric, kind, n, d, seed)
    dense = _dense(engine, metric, data, dense_query_block=7, dense_point_block=97)
    tree = ct.CoverTree(engine=engine, metric=metric, path="tree").fit(data)
    idx = np.random.default_rng(seed).integers(0, n, 40)
    for k in (1, 5, 10, 50):
        context = f"{engine} {metric} {kind} d={d} k={k}"
        expected = oracle(metric, data, k, indices=idx)
        check_same(dense.kneighbors(indices=idx, k=k), expected, context)
        check_same(tree.kneighbors(indices=idx, k=k), expected, context + " tree")
        check_same(dense.kneighbors(k=k, predecessor=True), oracle(metric, data, k, predecessor=True),
                   context + " predecessor")
    fresh = datasets.gaussian(9, d, seed + 100)
    check_same(dense.kneighbors(fresh, k=12), oracle(metric, data, 12, queries=fresh), "new points")
    assert dense.built_tree is None, "the dense path never builds a tree"
    assert dense.last_result.telemetry["path"] == "dense"


@pytest.mark.parametrize("engine", TREE_ENGINES)
def test_k_th_boundary_ties_on_a_lattice(engine, oracle, check_same):
    """An integer lattice with every site repeated: the k-th distance is shared by many points, and the
    answer must pick the lowest indices among them exactly as the oracle does."""
    sites = np.stack(np.meshgrid(np.arange(5.0), np.arange(5.0)), axis=-1).reshape(-1, 2)
    X = np.repeat(sites, 4, axis=0)[np.random.default_rng(3).permutation(100)]
    for metric, data in (("euclidean", X), ("residual", ct.residual_problem(X, m=25, seed=1))):
        dense = _dense(engine, metric, data, dense_query_block=5, dense_point_block=13)
        for k in (1, 3, 4, 5, 9, 20, 50):
            check_same(dense.kneighbors(indices=np.arange(100), k=k),
                       oracle(metric, data, k, indices=np.arange(100)), f"{metric} k={k}")


def _clamped_problem(seed: int, n: int = 120):
    """Points that are all inducing points with a small variance, so every p sits at the 1e-9 clamp and
    k - V.V cancels to a few ulps of the variance; a few near-duplicates sharpen the ties."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 2))
    X[1::7] = X[::7][: len(X[1::7])] + 1e-9 * rng.normal(size=(len(X[1::7]), 2))
    return ct.residual_problem(X, lengthscale=2.0, variance=1e-4, m=n, seed=seed)


def test_residual_variances_sit_at_the_clamp_in_the_adversarial_problem():
    problem = _clamped_problem(0)
    assert np.all(problem.p == 1e-9)
    norms = np.sqrt(np.einsum("ij,ij->i", problem.V, problem.V))
    assert np.all(np.abs(norms - 1e-2) < 1e-7), "rows of V have norm close to sqrt(variance)"


@pytest.mark.parametrize("seed", range(4))
def test_screening_bound_holds_for_every_pair_under_cancellation(seed):
    """|rho_a - rho_c| <= E for every pair, with rho_a from a BLAS product and rho_c canonical; and the
    interval always contains the canonical key."""
    from covertreex.metrics.kernels import bounds, distance

    problem = _clamped_problem(seed)
    space = ct.CoverTree(metric="residual", path="dense").fit(problem).space
    D = space.data
    f = row_factors(D)
    G = operand(D) @ operand(D).T
    worst = 0.0
    for i in range(D.X.shape[0]):
        for j in range(D.X.shape[0]):
            if i == j:
                continue
            lo, hi = bounds(D, i, D, j, G[i, j], f.scale, f.error, f.scale, f.error, 0.0)
            d = distance(D, i, -1, D, j)
            s = 1.0 - d * d  # the canonical s, up to the rounding of 1 - s and sqrt
            assert -hi - 4 * EPS <= s <= -lo + 4 * EPS, (i, j, lo, hi, s)
            worst = max(worst, hi - lo)
    assert worst > 1e-9, "the test must reach the bound's wide regime (p at the clamp: ~1e-14 at p ~ 1)"


@pytest.mark.parametrize("engine", TREE_ENGINES)
@pytest.mark.parametrize("seed", range(3))
def test_every_true_neighbour_survives_screening_at_the_clamp(engine, seed, oracle, check_same):
    problem = _clamped_problem(seed)
    dense = _dense(engine, "residual", problem, dense_query_block=8, dense_point_block=16)
    for k in (1, 2, 10, 40):
        check_same(dense.kneighbors(k=k, predecessor=True),
                   oracle("residual", problem, k, predecessor=True), f"k={k}")
        check_same(dense.kneighbors(indices=np.arange(problem.n_points), k=k),
                   oracle("residual", problem, k, indices=np.arange(problem.n_points)), f"k={k}")


def _exp_edge_problem(kernel: str):
    """1-D points whose gaps to the origin put the kernel's exp argument (lengthscale 0.5) on both sides of
    the Rust screening exp's reduction boundaries -(n + 1/2) ln2, of its cut-off to 0 at -708, in libm's
    subnormal range and past libm's underflow; each gap on both sides of a doubled origin (exact ties at
    the k-th distance), a 1e-9 near-duplicate, every point inducing (p at the jitter or the clamp)."""
    arguments = np.array([0.5, 1.5, 9.5, 1000.5]) * np.log(2.0)
    arguments = np.concatenate([arguments, [707.9, 708.0, 708.0000001, 708.3, 708.5, 720.0, 745.1, 745.2,
                                            800.0]])
    gaps = np.sqrt(arguments / 2.0) if kernel == "rbf" else arguments / np.sqrt(20.0)
    X = np.concatenate([[0.0, 0.0, 1e-9], np.ravel(np.column_stack([gaps, -gaps]))])[:, None]
    return ct.residual_problem(X, kernel=kernel, lengthscale=0.5, variance=1.0, m=len(X), seed=0)


@pytest.mark.parametrize("engine", TREE_ENGINES)
@pytest.mark.parametrize("kernel", ["rbf", "matern52"])
def test_kernel_values_at_the_fast_exp_edges_stay_exact(engine, kernel, oracle, check_same):
    problem = _exp_edge_problem(kernel)
    n = problem.n_points
    dense = _dense(engine, "residual", problem, dense_query_block=4, dense_point_block=5)
    for k in (1, 2, 3, 7, 16, n - 1, n):
        check_same(dense.kneighbors(indices=np.arange(n), k=k),
                   oracle("residual", problem, k, indices=np.arange(n)), f"k={k}")
        check_same(dense.kneighbors(k=k, predecessor=True),
                   oracle("residual", problem, k, predecessor=True), f"predecessor k={k}")
        outside = 0.75 * problem.X
        check_same(dense.kneighbors(outside, k=k), oracle("residual", problem, k, queries=outside),
                   f"outside k={k}")


def test_gamma_is_the_standard_dot_product_constant():
    assert gamma(512) == pytest.approx(512 * EPS / 2 / (1 - 512 * EPS / 2))
    assert gamma(0) == 0.0


def test_the_dot_product_margin_is_needed_at_the_clamp():
    """At p = 1e-9 the GEMM's reordered sums move |rho| by far more than the rounding-only part of the
    bound (16 eps |rho| + 16 eps): without the a_i a_j term the screen would not be rigorous there."""
    from covertreex.metrics.kernels import bounds, distance

    problem = _clamped_problem(2)
    D = ct.CoverTree(metric="residual", path="dense").fit(problem).space.data
    f = row_factors(D)
    no_dot_term = np.zeros_like(f.error)
    G = operand(D) @ operand(D).T
    gaps = []
    for i in range(D.X.shape[0]):
        for j in range(D.X.shape[0]):
            if i != j:
                lo, hi = bounds(D, i, D, j, G[i, j], f.scale, no_dot_term, f.scale, no_dot_term, 0.0)
                gaps.append(abs(-(lo + hi) / 2 - (1.0 - distance(D, i, -1, D, j) ** 2)))
    assert max(gaps) > 1000 * EPS


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 2**16), metric=st.sampled_from(["euclidean", "residual"]),
    kind=st.sampled_from(KINDS), d=st.integers(1, 4), k=st.integers(1, 30),
    query_block=st.integers(1, 70), point_block=st.integers(1, 300), threads=st.sampled_from([1, 2]),
    engine=st.sampled_from(TREE_ENGINES),
)
def test_answer_never_depends_on_path_blocks_or_threads(seed, metric, kind, d, k, query_block,
                                                        point_block, threads, engine):
    data = _data(metric, kind, 150, d, seed, m=12)
    base = ct.CoverTree(engine="gold", metric=metric, path="tree", threads=1).fit(data)
    other = ct.CoverTree(engine=engine, metric=metric, path="dense", dense_query_block=query_block,
                         dense_point_block=point_block, threads=threads).fit(data)
    for query in ({"predecessor": True}, {"indices": np.arange(0, 150, 3)}):
        a, b = base.kneighbors(k=k, **query), other.kneighbors(k=k, **query)
        assert np.array_equal(a[1], b[1]) and np.array_equal(a[0].view(np.int64), b[0].view(np.int64))


def test_dense_counters_are_deterministic_across_threads_and_engines():
    problem = _data("residual", "gaussian", 800, 3, 5)
    runs = [_dense(engine, "residual", problem, threads=t).query(indices=np.arange(0, 800, 5), k=9)
            for engine in TREE_ENGINES for t in (1, 2)]
    first = runs[0].telemetry["counters"]
    assert first["pairs_screened"] == 160 * 800
    assert 160 * 9 <= first["distance_evaluations"] < 160 * 800 // 4
    for run in runs[1:]:
        assert run.telemetry["counters"]["pairs_screened"] == first["pairs_screened"]
    for engine_runs in (runs[:2], runs[2:]):
        assert engine_runs[0].telemetry["counters"] == engine_runs[1].telemetry["counters"]


@pytest.mark.parametrize("engine", TREE_ENGINES)
@pytest.mark.parametrize("metric", ["euclidean", "residual"])
@pytest.mark.parametrize("n_queries", [2, 3, 5, 9, 40])
def test_a_small_batch_has_the_same_counters_on_any_thread_count(engine, metric, n_queries):
    """Gold cut a small batch into one block per worker, and BLAS rounds a one-row product otherwise than a
    three-row one: 3 queries far from the origin screened other candidates on 2 threads than on 1."""
    X = np.random.default_rng(20).uniform(size=(4000, 3)) + 1e6
    data = X if metric == "euclidean" else ct.residual_problem(X - 1e6, m=32, seed=1)
    queries = (X[:n_queries] + 1e-3) if metric == "euclidean" else None
    ask = {"indices": np.arange(n_queries)} if queries is None else {}
    runs = [_dense(engine, metric, data, threads=t).query(queries, k=10, **ask) for t in (1, 2)]
    assert runs[0].telemetry["counters"] == runs[1].telemetry["counters"]
    assert np.array_equal(runs[0].counters.per_query, runs[1].counters.per_query)


def test_auto_picks_dense_for_the_flat_residual_metric():
    X = datasets.gaussian(4096, 3, 42)
    model = ct.CoverTree(engine="rust", metric="residual", path="auto").fit(
        ct.residual_problem(X, m=64, seed=42))
    result = model.query(indices=np.arange(0, 4096, 16), k=50)
    assert result.telemetry["path"] == "dense" and model.built_tree is None


def test_auto_picks_the_tree_for_low_dimensional_euclidean_data_at_scale():
    X = datasets.gaussian(60_000, 2, 1)
    model = ct.CoverTree(engine="rust", metric="euclidean", path="auto").fit(X)
    assert model.built_tree is None, "fit never builds a tree on the auto path"
    result = model.query(k=5, predecessor=True)
    assert result.telemetry["path"] == "tree" and model.built_tree is not None
    assert result.telemetry["per_query"]["distance_evaluations"]["mean"] < 0.01 * 60_000


def test_auto_prices_a_euclidean_pair_by_its_own_measured_cost():
    """A screened Euclidean pair costs 1/28-1/53 of a walk evaluation, not the residual metric's 1/16: at
    d = 5, N = 50,000, 10,000 queries, auto took the tree, 3.1 s against the dense path's 0.5 s
    (docs/benchmarks.md, "The auto path's Euclidean cost"); d = 2 still takes the tree, where it is faster."""
    from covertreex import paths

    assert paths.choose("euclidean", 5, 50_000, 10, 5e8, 10_000, tree_exists=False) == "dense"
    assert paths.choose("euclidean", 2, 50_000, 10, 5e8, 10_000, tree_exists=False) == "tree"
    assert paths.choose("residual", 3, 32_768, 50, 32_768 * 1024, 1024, tree_exists=False) == "dense"


@pytest.mark.parametrize("engine", ["gold", "rust"])
@pytest.mark.parametrize("d", [2047, 2048, 5000])
def test_auto_takes_any_dimension(engine, d, oracle, check_same):
    """The cost model's 2^(d/2) overflowed a float at d = 2,048 (an OverflowError from every auto query
    of 2,048-D embeddings): a walk that cannot beat scanning every point is costed as that."""
    X = datasets.gaussian(12, d, 3)
    model = ct.CoverTree(engine=engine, path="auto").fit(X)
    result = model.query(X[:3], k=4)
    assert result.telemetry["path"] == "dense"
    check_same((result.distances, result.indices), oracle("euclidean", X, 4, queries=X[:3]))


def test_path_tree_builds_at_fit_and_reading_tree_builds_lazily():
    X = datasets.gaussian(300, 2, 0)
    assert ct.CoverTree(engine="gold", path="tree").fit(X).built_tree is not None
    lazy = ct.CoverTree(engine="gold", path="dense").fit(X)
    assert lazy.built_tree is None
    tree = lazy.tree
    assert tree is not None and lazy.built_tree is tree and lazy.build_seconds > 0


def test_tree_engines_are_listed_for_callers_that_must_not_import_them():
    from covertreex.engines import ENGINES, TREE_ENGINES

    assert set(TREE_ENGINES) == {name for name in ENGINES if ct.get_engine(name).uses_tree}
