"""Exact maximin orderings equal a brute-force maximin on the oracle's distances, ties and duplicates too."""

from __future__ import annotations

import itertools
import os

import numpy as np
import pytest

import covertreex as ct
from covertreex import maximin_dense, vecchia_orderings
from covertreex.engines.rust import int8_kernel
from covertreex.errors import CovertreexError, NonFiniteError
from covertreex.maximin import maximin_order
from covertreex.vecchia import FARTHEST_MAX_WIDTH


def brute_maximin(matrix: np.ndarray, first: int) -> np.ndarray:
    """Farthest point first over a full distance matrix; np.argmax takes the smallest index on ties."""
    n = matrix.shape[0]
    order = [first]
    nearest = matrix[first].copy()
    nearest[first] = -1.0
    for _ in range(n - 1):
        nxt = int(np.argmax(nearest))
        order.append(nxt)
        nearest = np.minimum(nearest, matrix[nxt])
        nearest[order] = -1.0
    return np.array(order)


def _lattice_with_duplicates():
    grid = np.array(list(itertools.product(range(5), range(5))), dtype=float)
    return np.concatenate([grid, grid[[0, 7, 7, 12]], grid[:3]])


def _near_duplicates():
    """Gaussian points, every seventh nudged 1e-9 from another; as a residual problem (see _data) every
    point is inducing with a small variance, so p sits at its 1e-9 clamp and k - V.V cancels."""
    rng = np.random.default_rng(5)
    X = rng.normal(size=(60, 2))
    X[1::7] = X[::7][: len(X[1::7])] + 1e-9 * rng.normal(size=(len(X[1::7]), 2))
    return X


DATASETS = {
    "gaussian": lambda: np.random.default_rng(3).normal(size=(70, 3)),
    "lattice+duplicates": _lattice_with_duplicates,
    "clamp": _near_duplicates,
}


def _data(metric, X, dataset="gaussian"):
    if metric == "euclidean":
        return X
    if dataset == "clamp":
        return ct.residual_problem(X, m=X.shape[0], seed=1, lengthscale=2.0, variance=1e-4)
    return ct.residual_problem(X, m=8, seed=1, lengthscale=2.0)


def _fused_pass(engine):
    """The fused maximin pass of `engine` (gold: covertreex.maximin_dense; rust: rust/core/src/maximin)."""
    if not ct.engine_available(engine):
        pytest.skip(f"engine {engine} not available")
    if engine == "rust":
        from covertreex.engines import rust

        return rust.maximin_with_neighbors
    return maximin_dense.maximin_with_neighbors


FUSED_ENGINES = ["gold", "rust"]


@pytest.mark.parametrize("dataset", sorted(DATASETS))
@pytest.mark.parametrize("metric", ["euclidean", "residual"])
@pytest.mark.parametrize("engine", ["gold", "rust", "brute"])
def test_maximin_equals_brute_force(dataset, metric, engine, distance_matrix):
    if not ct.engine_available(engine):
        pytest.skip(f"engine {engine} not available")
    data = _data(metric, DATASETS[dataset](), dataset)
    model = ct.CoverTree(engine=engine, metric=metric, path="tree").fit(data)
    order, evaluations = vecchia_orderings.maximin(model.space, model.tree)
    first = vecchia_orderings.first_point(model.space.data.X)
    expected = brute_maximin(distance_matrix(metric, data), first)
    np.testing.assert_array_equal(order, expected)
    assert evaluations > 0


def test_every_start_gives_the_brute_force_order(distance_matrix):
    X = _lattice_with_duplicates()
    model = ct.CoverTree(engine="gold", metric="euclidean", path="tree").fit(X)
    tree = model.tree
    matrix = distance_matrix("euclidean", X)
    for first in range(X.shape[0]):
        order, _ = maximin_order(model.space.data, first, (tree.root, tree.child_offsets, tree.children,
                                                           tree.radius))
        np.testing.assert_array_equal(order, brute_maximin(matrix, first), err_msg=f"first={first}")


def test_the_tree_walk_evaluates_fewer_distances_than_a_scan():
    X = np.random.default_rng(0).normal(size=(2000, 2))
    model = ct.CoverTree(engine="gold", metric="euclidean", path="tree").fit(X)
    tree_order, tree_evals = vecchia_orderings.maximin(model.space, model.tree)
    scan_order, scan_evals = vecchia_orderings.maximin(model.space, None)
    np.testing.assert_array_equal(tree_order, scan_order)
    assert tree_evals < scan_evals / 5


def test_first_point_is_nearest_the_mean_smallest_row_on_ties():
    X = np.array([[2.0, 0.0], [1.0, 0.0], [-1.0, 0.0], [-2.0, 0.0]])
    assert vecchia_orderings.first_point(X) == 1
    assert vecchia_orderings.first_point(np.array([[5.0], [0.0], [1.0], [4.0]])) == 2


def check_fused(matrix, first, k, order, idx, dist):
    """`order` is the brute-force maximin from `first` and row i of (idx, dist) the k positions j < i
    nearest to position i by (distance, position), with the oracle's distance bits."""
    np.testing.assert_array_equal(order, brute_maximin(matrix, first))
    for i in range(order.shape[0]):
        row = matrix[order[i], order[:i]]
        best = np.lexsort((np.arange(i), row))[:k]
        np.testing.assert_array_equal(idx[i, : best.size], best, err_msg=f"row {i}")
        assert dist[i, : best.size].tobytes() == row[best].tobytes() and (idx[i, best.size :] == -1).all()


def test_first_point_of_coordinates_whose_squares_overflow_is_the_scaled_datas():
    """Coordinates beyond about 1e154 (accepted by the residual metric up to 2**1020) made every squared
    distance to the mean inf, and the ordering started at row 0; a mean of 2**1020-sized values overflowed
    too. The start is now that of the same data scaled by a power of two, on every engine."""
    rng = np.random.default_rng(3)
    for scale in (1e300, 2.0**1020, 1e160):
        X = np.clip(rng.normal(size=(40, 2)), -1, 1) * scale
        expected = vecchia_orderings.first_point(X / scale)
        assert expected != 0 and vecchia_orderings.first_point(X) == expected
    X = np.array([[5.0], [0.0], [1.5], [-4.0], [3.0]])
    for engine in ("auto", "gold", "brute"):
        huge = ct.vecchia_neighbors(X * 1e300, 2, metric="residual", ordering="maximin", lengthscale=1e300,
                                    m=3, engine=engine)
        plain = ct.vecchia_neighbors(X, 2, metric="residual", ordering="maximin", lengthscale=1.0, m=3,
                                     engine=engine)
        assert huge.ordering.tolist() == plain.ordering.tolist() == [2, 3, 4, 0, 1]
    mixed = np.array([[1e300, 0.0], [-1e300, 0.0], [0.0, 5.0], [0.0, 1.0], [0.0, 3.0]])  # mean (0, 1.8)
    assert vecchia_orderings.first_point(mixed) == 3  # a rescale while rows 2-4 were finite tied them at 0


@pytest.mark.parametrize("engine", FUSED_ENGINES)
@pytest.mark.parametrize("dataset", sorted(DATASETS))
@pytest.mark.parametrize("metric", ["euclidean", "residual"])
@pytest.mark.parametrize("k, block, room", [(1, 4, None), (5, 8, None), (5, 1024, None), (40, 16, None),
                                            (1, 4, 2), (5, 8, 6), (12, 16, 13), (100, 8, None)])
def test_fused_pass_gives_brute_force_order_and_neighbours(engine, dataset, metric, k, block, room,
                                                           distance_matrix):
    """room = k + 1: candidate lists overflow all the time, so ties and duplicates go through the
    evaluate-all-and-keep-k step too; k = 100 > N pads every row."""
    data = _data(metric, DATASETS[dataset](), dataset)
    space = ct.CoverTree(metric=metric).fit(data).space
    first = vecchia_orderings.first_point(space.data.X)
    rounds = []
    order, idx, dist, evaluations = _fused_pass(engine)(space.data, first, k, lambda *c: rounds.append(c),
                                                        block=block, room=room)
    check_fused(distance_matrix(metric, data), first, k, order, idx, dist)
    placed = [n for n, _ in rounds]
    assert placed[-1] == order.shape[0] and (block >= order.shape[0] or len(rounds) > 1)
    # (placed, answered): gold writes a row as its point is placed, rust a round's rows during the next
    assert [answered for _, answered in rounds] == (placed if engine == "gold" else [1] + placed[:-1])
    assert evaluations >= sum(min(i, k) for i in range(order.shape[0]))  # every listed pair, canonically


@pytest.mark.parametrize("metric", ["euclidean", "residual"])
def test_rust_pass_with_a_block_of_several_gram_strips(metric, distance_matrix):
    """A block of 512 points spans four strips of the block Gram matrix (rust computes the strips'
    lower triangle and mirrors it); 600 points on a coarse lattice with jitter-free duplicates, so
    ties cross the strips too."""
    rng = np.random.default_rng(11)
    X = rng.integers(0, 9, size=(600, 3)).astype(float)
    data = _data(metric, X)
    space = ct.CoverTree(metric=metric).fit(data).space
    first = vecchia_orderings.first_point(space.data.X)
    rounds = []
    order, idx, dist, _ = _fused_pass("rust")(space.data, first, 6, lambda *c: rounds.append(c), block=512)
    check_fused(distance_matrix(metric, data), first, 6, order, idx, dist)
    assert len(rounds) > 1


@pytest.mark.parametrize("engine", FUSED_ENGINES)
@pytest.mark.parametrize("metric", ["euclidean", "residual"])
def test_fused_pass_from_every_start_on_a_lattice(engine, metric, distance_matrix):
    data = _data(metric, _lattice_with_duplicates())
    space = ct.CoverTree(metric=metric).fit(data).space
    matrix = distance_matrix(metric, data)
    for first in range(space.n_points):
        order, idx, dist, _ = _fused_pass(engine)(space.data, first, 3, block=6)
        check_fused(matrix, first, 3, order, idx, dist)


@pytest.mark.parametrize("metric", ["euclidean", "residual"])
def test_rust_pass_is_the_same_on_any_thread_count(metric):
    """Order, rows, distance bits and the evaluation count; blocks of 16 rows, so both threads work."""
    from covertreex.resources import available_cpus

    run = _fused_pass("rust")
    if available_cpus() < 2:
        pytest.skip("needs 2 CPUs")
    X = np.random.default_rng(6).normal(size=(400, 3))
    space = ct.CoverTree(metric=metric).fit(_data(metric, X)).space
    one, two = (run(space.data, 0, 7, block=16, threads=t) for t in (1, 2))
    for a, b in zip(one, two, strict=True):
        assert np.asarray(a).tobytes() == np.asarray(b).tobytes()


def _plane_sets():
    """2-D point sets on which a slab's box skips most pairs, each built to trip one part of it: uniform
    points; a lattice with 300 of its 576 points doubled (ties at every distance, and points at distance
    0); a cluster beside far-off points (boxes of very different sizes); coordinates in [2**-450,
    2**-449), the smallest magnitudes the metric accepts, whose squared differences go down to 2**-1004,
    near the bottom of float64's normal range; 20 sites, each repeated about 75 times (replicate
    measurements: once a point holds k duplicates at distance 0, no later pair can change it); and one
    site repeated 1,500 times, whose box holds every placed point."""
    rng = np.random.default_rng(21)
    uniform = rng.uniform(size=(1500, 2))
    grid = np.array(list(itertools.product(range(24), range(24))), dtype=float)
    lattice = np.concatenate([grid, grid[rng.permutation(len(grid))[:300]]])
    clustered = np.concatenate([rng.normal(scale=1e-3, size=(1200, 2)), rng.uniform(-50, 50, size=(200, 2))])
    tiny = (1.0 + uniform) * 2.0**-450
    sites = rng.uniform(size=(20, 2))[rng.integers(0, 20, 1500)]
    return {"uniform": uniform, "lattice": lattice, "clustered": clustered, "tiny": tiny, "sites": sites,
            "one site": np.full((1500, 2), 0.25)}


@pytest.mark.parametrize("name", ["uniform", "lattice", "clustered", "tiny", "sites", "one site"])
@pytest.mark.parametrize("k, block", [(1, 16), (6, 64), (30, 32)])
def test_rust_pass_skips_far_slabs_and_stays_exact(name, k, block, distance_matrix):
    """Euclidean slabs hold nearby points (a Hilbert order) and skip the placed points their box proves
    too far for every point in them (rust/core/src/maximin/boxes.rs): the order, rows and distance bits
    are still brute force's, on one thread or two; on uniform points and on repeated sites fewer than half
    the pairs get a value."""
    from covertreex.engines import rust

    if not ct.engine_available("rust"):
        pytest.skip("engine rust not available")
    X = _plane_sets()[name]
    space = ct.CoverTree(metric="euclidean").fit(X).space
    first = vecchia_orderings.first_point(space.data.X)
    data = rust._canonical(space.data, rust._METRIC_DTYPES)
    runs = [rust._extension().maximin(data, first, k, block, k + 8, threads, None, None, None)
            for threads in (1, min(2, os.cpu_count() or 1))]
    for a, b in zip(*runs, strict=True):
        assert np.asarray(a).tobytes() == np.asarray(b).tobytes()
    order, idx, dist, _, _, screened, _ = runs[0]
    check_fused(distance_matrix("euclidean", X), first, k, order, idx, dist)
    pairs = X.shape[0] * (X.shape[0] - 1) // 2
    if name in ("uniform", "sites", "one site"):  # without the boxes every pair outside the blocks is
        assert screened < pairs / 2, f"{screened} pairs screened of {pairs}"  # screened (one site:
        # 4,404,279 of 4,498,500 at N = 3,000 while a slab near most placed points took the GEMM)
    if name == "sites" and k < 30:
        # Once a point holds k duplicates at distance 0 no later pair is valued: 7,932 pairs at k = 1 and
        # 86,628 at k = 6, against 72,484 and 184,859 while pairs at the widened cut-off still were.
        assert screened < pairs / 10, f"{screened} pairs screened of {pairs}"


@pytest.mark.parametrize("metric", ["euclidean", "residual"])
def test_rust_pass_takes_a_block_larger_than_the_points(metric):
    """A block beyond the points is the points (a review found 2**62 a capacity-overflow panic and 2**32 a
    64 GiB allocation that aborted the process once a Euclidean pool's regions took the block's size)."""
    from covertreex.engines import rust

    if not ct.engine_available("rust"):
        pytest.skip("engine rust not available")
    X = np.random.default_rng(8).uniform(size=(50, 2))
    space = ct.CoverTree(metric=metric).fit(_data(metric, X)).space
    data = rust._canonical(space.data, rust._METRIC_DTYPES)
    runs = [rust._extension().maximin(data, 0, 3, block, 11, 1, None, None, None)
            for block in (50, 2**32, 2**62)]
    for run in runs[1:]:
        for a, b in zip(runs[0], run, strict=True):
            assert np.asarray(a).tobytes() == np.asarray(b).tobytes()


@pytest.mark.parametrize("change, error", [({"first": 30}, "first"), ({"k": 0}, "k = 0"),
                                           ({"block": 0}, "block"), ({"threads": 10**6}, "threads")])
def test_rust_pass_refuses_bad_arguments(change, error):
    X = np.random.default_rng(7).normal(size=(30, 2))
    space = ct.CoverTree(metric="euclidean").fit(X).space
    arguments = {"first": 0, "k": 3, "block": 8, "threads": None, **change}
    with pytest.raises(CovertreexError, match=error):
        _fused_pass("rust")(space.data, arguments["first"], arguments["k"], block=arguments["block"],
                            threads=arguments["threads"])


def test_rust_pass_reraises_what_the_progress_callback_raises():
    X = np.random.default_rng(8).normal(size=(50, 2))
    space = ct.CoverTree(metric="euclidean").fit(X).space

    def stop(placed, answered):
        raise KeyError(f"seen {placed}")

    with pytest.raises(KeyError, match="seen"):
        _fused_pass("rust")(space.data, 0, 3, stop, block=8)


@pytest.mark.parametrize("engine", ["auto", "rust"])
@pytest.mark.parametrize("metric", ["residual", "euclidean"])
def test_vecchia_neighbors_fuses_maximin_with_the_neighbour_search(engine, metric):
    """'auto' runs rust's pass when it is built, else gold's (residual only: gold walks a tree for
    Euclidean; Euclidean points of a few coordinates are ordered by the boxes instead, below)."""
    if not ct.engine_available("rust") and (engine == "rust" or metric == "euclidean"):
        pytest.skip("engine rust not available")
    X = np.random.default_rng(4).normal(size=(80, 2 if metric == "residual" else FARTHEST_MAX_WIDTH + 1))
    m = {"m": 8} if metric == "residual" else {}
    fused = ct.vecchia_neighbors(X, 6, metric=metric, engine=engine, **m)
    walked = ct.vecchia_neighbors(X, 6, metric=metric, engine="gold", **m)
    assert fused.neighbor_seconds == 0.0 and walked.neighbor_seconds > 0.0
    for name in ("ordering", "neighbors", "distances"):
        assert getattr(fused, name).tobytes() == getattr(walked, name).tobytes(), name


def _points_for_the_boxes():
    """Euclidean points the boxes order (at most FARTHEST_MAX_WIDTH coordinates), ties and extremes among
    them: a lattice with duplicates, one site repeated, a tight cluster beside far points, the smallest and
    largest coordinates the metric accepts, one and six coordinates."""
    rng = np.random.default_rng(11)
    lattice = np.array(list(itertools.product(range(6), repeat=2)), dtype=float)
    return {
        "uniform": rng.uniform(size=(400, 3)),
        "lattice+duplicates": np.concatenate([lattice, lattice[::3], lattice[:5]]),
        "one site": np.repeat([[0.5, 0.25]], 60, axis=0),
        "cluster and far points": np.concatenate([1e-6 * rng.normal(size=(200, 2)),
                                                  1e3 * rng.normal(size=(20, 2))]),
        "smallest coordinates": np.where(rng.uniform(size=(80, 2)) < 0.3, 0.0,
                                         2.0**-450 * (1 + rng.integers(0, 4, size=(80, 2)) / 4)),
        "largest coordinates": np.concatenate([np.clip(rng.normal(size=(30, 2)), -1, 1) * 9e149,
                                               rng.normal(size=(30, 2))]),
        "1-D": rng.normal(size=(300, 1)),
        "widest": rng.normal(size=(200, FARTHEST_MAX_WIDTH)),
    }


@pytest.mark.parametrize("name", sorted(_points_for_the_boxes()))
def test_the_boxes_order_is_brute_force_maximin(name, distance_matrix):
    """rust/core/src/maximin/farthest.rs skips a box only when its bound proves every point in it keeps
    its distance: any slip shows as a wrong order, most surely on ties (lattice, one site)."""
    if not ct.engine_available("rust"):
        pytest.skip("engine rust not available")
    from covertreex.engines import rust

    X = _points_for_the_boxes()[name]
    matrix = distance_matrix("euclidean", X)
    n = X.shape[0]
    for first in sorted({0, n // 3, n - 1, vecchia_orderings.first_point(X)}):
        for threads in (1, 2):
            order, evaluations = rust.maximin_order(X, first, threads=threads)
            np.testing.assert_array_equal(order, brute_maximin(matrix, first), err_msg=f"first={first}")
            assert 0 < evaluations <= n * (n - 1) // 2 + n


def test_the_boxes_order_stays_near_linear_beside_an_outlier_or_a_tight_cluster():
    """Packed along the Hilbert curve, points sharing a grid cell (all but an outlier's, or a cluster of
    width 1e-9) fell into leaves by row and every placement opened them all: 20,034 evaluations per point
    at N = 50,000 with one outlier (a review's case). Cut at medians, the work stays about 30 per point
    in the plane (counters, not time)."""
    if not ct.engine_available("rust"):
        pytest.skip("engine rust not available")
    from covertreex.engines import rust

    rng = np.random.default_rng(1)
    n = 20_000
    for X in (np.concatenate([rng.uniform(size=(n, 2)), [[1e5, 1e5]]]),
              np.concatenate([rng.uniform(size=(n // 2, 2)), 1e-9 * rng.uniform(size=(n // 2, 2))])):
        _, evaluations = rust.maximin_order(X, vecchia_orderings.first_point(X))
        assert evaluations < 60 * len(X)


def test_the_boxes_order_a_few_coordinates_for_the_job_and_the_query_finds_the_rows():
    """A Euclidean maximin job in at most FARTHEST_MAX_WIDTH coordinates orders by the boxes, then queries:
    the gold engine's answer bit for bit, its evaluations far below the pairs, progress heard as it goes."""
    if not ct.engine_available("rust"):
        pytest.skip("engine rust not available")
    X = np.random.default_rng(6).uniform(size=(9000, 2))
    walked = ct.vecchia_neighbors(X, 7, metric="euclidean", engine="gold")
    for engine in ("auto", "rust"):
        heard = []
        boxed = ct.vecchia_neighbors(X, 7, metric="euclidean", engine=engine,
                                     progress=lambda *call, heard=heard: heard.append(call))
        assert boxed.neighbor_seconds > 0.0 and boxed.maximin_evaluations < 200 * len(X)
        for name in ("ordering", "neighbors", "distances"):
            assert getattr(boxed, name).tobytes() == getattr(walked, name).tobytes(), name
        assert [n for stage, n in heard if stage == "ordering"][:3] == [4096, 8192, 9000]
    residual = ct.vecchia_neighbors(X[:500], 5, ordering="maximin-euclidean", m=16)  # by the boxes too
    euclidean = ct.vecchia_neighbors(X[:500], 5, metric="euclidean", engine="gold")
    assert residual.ordering.tobytes() == euclidean.ordering.tobytes()


def _split_problems():
    """Residual problems the split screen fits (z carries most of the residual), ties and p at its clamp
    among them."""
    lattice = np.repeat(np.stack(np.meshgrid(*[np.arange(7)] * 3, indexing="ij"), -1).reshape(-1, 3), 2, 0)
    return {
        "gaussian": lambda: ct.residual_problem(np.random.default_rng(0).normal(size=(1500, 3)), m=128,
                                                seed=1),
        "lattice with duplicates": lambda: ct.residual_problem(lattice * 0.25, m=96, seed=2),
        "p at its clamp": lambda: ct.residual_problem(lattice[:500] * 0.25, m=64, seed=3, variance=1e-3),
    }


SPLIT_PROBLEMS = _split_problems()


@pytest.fixture(scope="module")
def split_problem():
    """One problem per name, its split built once for the module."""
    made = {}

    def get(name):
        if name not in made:
            made[name] = SPLIT_PROBLEMS[name]()
            assert made[name].split_screen is not None
        return made[name]

    return get


@pytest.mark.parametrize("name", sorted(SPLIT_PROBLEMS))
@pytest.mark.parametrize("k, block", [(1, 512), (6, 512), (40, 16)])
def test_rust_pass_on_the_split_gives_the_f64_pass_and_brute_force(name, k, block, split_problem,
                                                                   distance_matrix):
    """The split drops a round's pairs beyond each point's cut-off before any f64 work: order, rows and
    distance bits stay the f64 pass's. Blocks of 512 send the early rounds' rows (every pair comes
    through) to the GEMM and the later ones' survivors to single dot products; blocks of 16 only the
    latter."""
    problem = split_problem(name)
    space = ct.CoverTree(metric="residual").fit(problem).space
    first = vecchia_orderings.first_point(space.data.X)
    run = _fused_pass("rust")
    f64 = run(space.data, first, k, block=block)
    split = run(space.data, first, k, block=block, split=problem.split_screen)
    for a, b in zip(f64[:3], split[:3], strict=True):
        assert a.tobytes() == b.tobytes()
    check_fused(distance_matrix("residual", problem), first, k, *split[:3])


@pytest.mark.parametrize("name", sorted(SPLIT_PROBLEMS))
@pytest.mark.parametrize("k, block", [(6, 512), (40, 16)])
@pytest.mark.parametrize("floor", [0.9, 0.5, 0.0, -0.5])
def test_rust_pass_on_the_split_with_a_floor_leaves_only_rows_it_cannot_prove(name, k, block, floor,
                                                                              split_problem, distance_matrix):
    """Keeping pairs for the rows only up to a residual similarity (the key -floor) leaves the order and
    every proven row the pass's without it, bit for bit; the rows it cannot prove are padding, listed
    ascending. A floor of similarity 0.9 leaves most rows (a pass that took them as proven would give rows
    without their neighbours beyond it); -0.5 (every pair reaches it) only the first k. Each round reports
    the points placed and the rows answered: those of the rounds before it, less the unproven ones."""
    from covertreex.engines import rust

    problem = split_problem(name)
    space = ct.CoverTree(metric="residual").fit(problem).space
    first = vecchia_orderings.first_point(space.data.X)
    whole = _fused_pass("rust")(space.data, first, k, block=block, split=problem.split_screen)
    heard = []
    order, idx, dist, _, unproven = rust.maximin_on_split(space.data, first, k, problem.split_screen, -floor,
                                                          lambda *call: heard.append(call), block=block)
    assert order.tobytes() == whole[0].tobytes()
    written = [1] + [placed for placed, _ in heard[:-1]]  # the first point is placed before any round
    assert [answered for _, answered in heard] == [w - np.count_nonzero(unproven < w) for w in written]
    assert unproven.dtype == np.int64 and np.all(np.diff(unproven) > 0)
    proven = np.setdiff1d(np.arange(order.shape[0]), unproven)
    assert idx[proven].tobytes() == whole[1][proven].tobytes()
    assert dist[proven].tobytes() == whole[2][proven].tobytes()
    assert (idx[unproven] == -1).all() and (dist[unproven] == np.inf).all()
    if floor == 0.9:
        assert unproven.size > order.shape[0] // 2
    if floor == -0.5:  # only the rows of fewer than k predecessors, which hold no k-th to prove
        assert unproven.tolist() == list(range(k))
    check_fused(distance_matrix("residual", problem), first, k, *whole[:3])


def test_rust_pass_refuses_a_floor_that_is_nan(split_problem):
    from covertreex.engines import rust

    problem = split_problem("p at its clamp")
    space = ct.CoverTree(metric="residual").fit(problem).space
    with pytest.raises(CovertreexError, match="floor must be a residual key"):
        rust.maximin_on_split(space.data, 0, 3, problem.split_screen, np.nan)
    data = rust._canonical(space.data, rust._METRIC_DTYPES)  # the extension's own check
    split = (problem.split_screen.q, problem.split_screen.factors, np.nan)
    with pytest.raises(NonFiniteError, match=r"^split floor is NaN \(a number or \+/-inf is expected\)$"):
        rust._extension().maximin(data, 0, 3, 8, 4, None, None, None, split)


def test_rust_pass_on_the_split_is_the_same_on_any_thread_count(split_problem):
    from covertreex.resources import available_cpus

    if available_cpus() < 2:
        pytest.skip("needs 2 CPUs")
    problem = split_problem("gaussian")
    space = ct.CoverTree(metric="residual").fit(problem).space
    one, two = (_fused_pass("rust")(space.data, 0, 7, block=64, threads=t, split=problem.split_screen)
                for t in (1, 2))
    for a, b in zip(one, two, strict=True):
        assert np.asarray(a).tobytes() == np.asarray(b).tobytes()


def test_rust_pass_refuses_a_split_of_other_data(split_problem):
    """A split bounds the pairs of the points it was built for: of other points (even as many), of these in
    another order, or on Euclidean data it is refused, not used to give wrong answers."""
    problem = split_problem("p at its clamp")
    space = ct.CoverTree(metric="residual").fit(problem).space
    run = _fused_pass("rust")
    with pytest.raises(CovertreexError, match="built for other points"):
        run(space.data, 0, 3, split=split_problem("gaussian").split_screen)
    order = np.random.default_rng(2).permutation(problem.n_points)
    bare = ct.ResidualProblem.from_arrays(problem.X, problem.V)  # the same points, no split built yet
    with pytest.raises(CovertreexError, match="another order"):
        bare.permuted(order).adopt_split_screen(problem.split_screen)
    X = np.random.default_rng(7).normal(size=(len(problem.X), 2))
    with pytest.raises(CovertreexError, match="residual metric"):
        from covertreex.engines import rust

        rust._extension().maximin(ct.CoverTree(metric="euclidean").fit(X).space.data, 0, 3, 8, 4, None, None,
                                  None, (problem.split_screen.q, problem.split_screen.factors, np.inf))


def _one_factor(factors, at, value):
    """`factors` with its flat element `at` set to `value`."""
    changed = np.array(factors)
    changed.flat[at] = value
    return changed


@pytest.mark.parametrize("change, words", [
    (lambda q, f: (q, np.ascontiguousarray(f.reshape(7, -1))), "7 columns"),
    (lambda q, f: (q[:-1], f), "n x m values"),
    (lambda q, f: (q, _one_factor(f, 16, -1.0)), ">= 0, got -1 at position 2"),
    (lambda q, f: (q, _one_factor(f, 22, np.nan)), "NaN or inf .* position 3"),
])
def test_rust_pass_names_what_is_wrong_with_split_arrays(change, words, split_problem):
    from covertreex.engines import rust

    problem = split_problem("p at its clamp")
    q, factors = change(problem.split_screen.q, problem.split_screen.factors)
    data = rust._canonical(ct.CoverTree(metric="residual").fit(problem).space.data, rust._METRIC_DTYPES)
    with pytest.raises(CovertreexError, match=words):
        rust._extension().maximin(data, 0, 3, 8, 4, None, None, None, (q, factors, np.inf))


def test_a_permuted_problem_takes_its_split_rows_in_that_order(split_problem, oracle, check_same):
    problem = split_problem("lattice with duplicates")
    order = np.random.default_rng(9).permutation(problem.n_points)
    permuted = problem.permuted(order)
    split = vars(permuted)["split_screen"]
    assert np.array_equal(split.q, problem.split_screen.q[order])
    assert np.array_equal(split.factors, problem.split_screen.factors[order])
    tree = ct.CoverTree(engine="rust", metric="residual", path="dense", mode="perf", dense_screen="split")
    result = tree.fit(permuted).query(predecessor=True, k=8)
    check_same((result.distances, result.indices), oracle("residual", permuted, 8, predecessor=True))


def test_a_job_on_the_split_reports_the_unproven_rows_as_they_are_found(monkeypatch):
    """The rows a floor leaves unproven are not reported answered by the pass; heard of, they are found in
    parts of equal cost, each reported, so a progress bar neither claims them early nor stalls at its end
    while they are found; the answer is the one of a job nobody hears, byte for byte."""
    if not ct.engine_available("rust"):
        pytest.skip("engine rust not available")
    from covertreex import distributed, split_screen, vecchia

    monkeypatch.setattr(split_screen, "PAYS", {int8_kernel(): 0})  # at any size and fit
    monkeypatch.setattr(split_screen, "USEFUL", 1.0)
    monkeypatch.setattr(vecchia, "SPLIT_FUSED_MAX_K", {int8_kernel(): 24})
    monkeypatch.setattr(vecchia, "PAIRS_PER_PROGRESS_RANGE", 20_000)  # parts from 1,200 points
    parts, answer = [], distributed.answer_positions

    def recorded(index, at):
        parts.append(at.size)
        return answer(index, at)

    monkeypatch.setattr(distributed, "answer_positions", recorded)
    X = np.random.default_rng(10).normal(size=(1200, 3))
    heard = []
    told = ct.vecchia_neighbors(X, 20, m=96, seed=3, progress=lambda *call: heard.append(call))
    told_parts, parts[:] = list(parts), []
    unproven = sum(told_parts)
    assert len(told_parts) > 3 and unproven > 100
    quiet = ct.vecchia_neighbors(X, 20, m=96, seed=3)
    assert parts == [unproven]  # unheard: one call
    for name in ("ordering", "neighbors", "distances"):
        assert getattr(told, name).tobytes() == getattr(quiet, name).tobytes(), name
    ordering = [n for stage, n in heard if stage == "ordering"]
    answered = [n for stage, n in heard if stage == "neighbours"]
    assert answered == sorted(answered) and answered[-1] == 1200 and ordering[-1] == 1200
    proven = 1200 - unproven
    during = answered[:answered.index(proven)]
    assert during and max(during) < proven  # the pass never counted an unproven row
    assert sorted(set(answered[answered.index(proven):])) == list(proven + np.cumsum([0] + told_parts))


@pytest.mark.parametrize(("kernel", "max_k"), [("amx", 16), ("vnni", 16), ("avx2", 200), ("portable", 16)])
def test_the_split_fused_pass_takes_k_by_the_int8_kernel(monkeypatch, kernel, max_k):
    """The pass on the split finds the rows itself up to a k measured per int8 kernel (where the products
    are slow, multiplying every pair twice costs more than the fused pass's f64 work); a kernel not listed
    takes the smallest."""
    from covertreex import vecchia
    from covertreex.engines import rust

    monkeypatch.setattr(rust, "int8_kernel", lambda: kernel)
    assert vecchia.split_fused_max_k() == max_k


@pytest.mark.parametrize("k", [20, 30])
@pytest.mark.parametrize("floor", [0.5, 0.95])
def test_vecchia_job_on_the_split_equals_the_fused_f64_job(monkeypatch, k, floor):
    """Where 'auto' takes the split, the rust pass on it finds the rows itself up to split_fused_max_k()
    (here 24), but those its floor leaves unproven, and above it orders alone, the predecessor query finding
    the rows: either way the same ordering, rows and distance bits as the fused pass on the f64 GEMM
    ('rust', parity mode)."""
    if not ct.engine_available("rust"):
        pytest.skip("engine rust not available")
    from covertreex import split_screen, vecchia

    monkeypatch.setattr(split_screen, "PAYS", {int8_kernel(): 0})  # at any size and fit
    monkeypatch.setattr(vecchia, "SPLIT_FUSED_MAX_K", {int8_kernel(): 24})
    monkeypatch.setattr(vecchia, "SPLIT_ROW_FLOOR", floor)
    from covertreex import distributed

    left, answer = [], distributed.answer_positions

    def recorded(index, at):
        left.append(at.size)
        found = answer(index, at)
        counted.append(found[2])
        return found

    from covertreex.engines import rust

    counted, run_pass = [], rust.maximin_on_split

    def pass_counted(*args, **options):
        found = run_pass(*args, **options)
        counted.append(found[3])
        return found

    monkeypatch.setattr(distributed, "answer_positions", recorded)
    monkeypatch.setattr(rust, "maximin_on_split", pass_counted)
    monkeypatch.setattr(split_screen, "USEFUL", 1.0)
    X = np.random.default_rng(10).normal(size=(1200, 3))
    split = ct.vecchia_neighbors(X, k, m=96, seed=3)
    fused = ct.vecchia_neighbors(X, k, m=96, seed=3, engine="rust")
    assert fused.neighbor_seconds == 0.0
    assert (split.neighbor_seconds > 0.0) == (k > 24)
    if k <= 24:  # the rows the floor left unproven were found by the predecessor query of those positions
        assert len(left) == 1 and left[0] >= k and (floor < 0.9 or left[0] > 600)
        assert split.maximin_evaluations == counted[0] + counted[1] > counted[0]  # the pass, the query
    else:
        assert left == []
    for name in ("ordering", "neighbors", "distances"):
        assert getattr(split, name).tobytes() == getattr(fused, name).tobytes(), name
    assert split.problem is not None and split.problem.V.tobytes() == fused.problem.V.tobytes()  # handed back
