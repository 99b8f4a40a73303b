"""V's construction (and a query point's V row) has two implementations of its kernels, Numba's
(covertreex/metrics/kernels.py) and the rust extension's (rust/core/src/kernel_matrix.rs, called by
covertreex/metrics/data.py where it is built, so a rust job never loads Numba): they must give the same bits,
and so must V."""

from __future__ import annotations

import numpy as np
import pytest

import covertreex as ct
from covertreex import twins
from covertreex.errors import InputTypeError, InvalidInputError
from covertreex.metrics import data, kernels

pytestmark = pytest.mark.skipif(twins.rust_twin("kernel_matrix") is None,
                                reason="the rust extension is not built")

LENGTHSCALES = [
    [1.0, 1.0, 1.0],
    [0.3, 1.7, 2.0**-3],
    [1e-3, 50.0, 0.999],
    [2.0**40, 2.0**-40, 3.0],
]


@pytest.mark.parametrize("kernel", ["rbf", "matern52"])
@pytest.mark.parametrize("lengthscale", LENGTHSCALES)
@pytest.mark.parametrize("shape", [(1, 1), (7, 300), (301, 67)])
def test_the_rust_kernel_matrix_is_numbas_bit_for_bit(kernel, lengthscale, shape):
    rng = np.random.default_rng(len(lengthscale) + shape[0])
    A, B = rng.normal(size=(shape[0], 3)) * 3.0, rng.normal(size=(shape[1], 3))
    A[0] = B[0]  # a pair at distance 0
    ls = np.array(lengthscale)
    twin = data.kernel_matrix(A, B, kernel, ls, 1.3)
    numba = kernels.kernel_block(A, B, data.KERNELS.index(kernel), ls, 1.3)
    assert twin.shape == numba.shape and twin.tobytes() == numba.tobytes()


@pytest.mark.parametrize("shape", [(1, 1), (5, 512), (3000, 37)])
def test_the_rust_squared_norms_are_numbas_bit_for_bit(shape):
    V = np.random.default_rng(shape[0]).normal(size=shape) * 1e-3
    assert data.squared_norms(V).tobytes() == kernels.squared_norms_block(V).tobytes()


def _lower_factor(m: int, rng, scale: float) -> np.ndarray:
    A = rng.normal(size=(m, m))
    return np.linalg.cholesky(A @ A.T + m * np.eye(m)) * scale


@pytest.mark.parametrize("n, m", [(1, 1), (9, 3), (1000, 64), (37, 512)])
@pytest.mark.parametrize("scale", [1.0, 1e-150, 1e150])
def test_the_rust_forward_substitution_is_numbas_bit_for_bit(n, m, scale):
    assert twins.rust_twin("forward_substitution_rows") is not None  # a stale build: Numba against itself
    rng = np.random.default_rng(n + m)
    L, K = _lower_factor(m, rng, scale), rng.normal(size=(n, m))
    twin = data.forward_substitution(L, K)
    numba = kernels.forward_substitution_rows(data.read_only(np.asfortranarray(L)), data.read_only(K))
    assert twin.shape == (n, m) and twin.flags.c_contiguous and twin.tobytes() == numba.tobytes()
    assert data.forward_substitution(L, K[n // 2:]).tobytes() == twin[n // 2:].tobytes()  # rows alone


def test_the_rust_forward_substitution_refuses_mismatched_shapes():
    twin = twins.rust_twin("forward_substitution_rows")
    with pytest.raises(ValueError, match="rows of L: expected 3, got 2"):
        twin(np.eye(2), np.zeros((4, 3)))
    with pytest.raises(ValueError, match="columns of L: expected 3, got 2"):
        twin(np.zeros((3, 2)), np.zeros((4, 3)))


@pytest.mark.parametrize("twin", [True, False])
def test_forward_substitution_refuses_mismatched_shapes_on_either_path(monkeypatch, twin):
    """Numba's kernel reads out of bounds where the shapes disagree: the wrapper checks them for both."""
    if not twin:
        monkeypatch.setattr(twins, "rust_twin", lambda name: None)
    for L, K in ((np.eye(2), np.ones((4, 3))), (2 * np.eye(5), np.ones((1, 3))),
                 (np.ones((3, 2)), np.ones((4, 2)))):
        with pytest.raises(ValueError, match=r"needs L of shape \(m, m\) and K of shape \(n, m\)"):
            data.forward_substitution(L, K)


def test_query_points_project_the_same_without_the_extension(monkeypatch):
    X = np.random.default_rng(5).normal(size=(800, 3))
    problem = ct.residual_problem(X, lengthscale=0.6, m=40, seed=2)
    Q = np.random.default_rng(6).normal(size=(50, 3))
    with_rust = problem.project(Q)
    monkeypatch.setattr(twins, "rust_twin", lambda name: None)
    with_numba = problem.project(Q)
    assert all(a.tobytes() == b.tobytes() for a, b in zip(with_rust, with_numba, strict=True))


@pytest.mark.parametrize("n, m, size", [(1, 1, 1), (300, 67, 300), (5000, 8, 7000), (4, 0, 3), (9, 3, 0)])
def test_the_rust_taken_rows_are_numpys(n, m, size):
    assert twins.rust_twin("take_rows") is not None  # a stale build would compare NumPy with NumPy
    rng = np.random.default_rng(n + m)
    V = rng.normal(size=(n, m))
    order = rng.integers(0, n, size=size).astype(np.int32)  # repeats allowed: any row indices
    taken = data.take_rows(V, order)
    assert taken.shape == (size, m) and taken.flags.c_contiguous
    assert taken.tobytes() == V[order].tobytes()


@pytest.mark.parametrize("twin", [True, False])
@pytest.mark.parametrize("bad", [-1, 40])
def test_taken_rows_out_of_range_name_the_order(monkeypatch, twin, bad):
    if not twin:
        monkeypatch.setattr(twins, "rust_twin", lambda name: None)
    with pytest.raises(InvalidInputError, match=r"order\[2\] = .* out of range \[0, 40\)"):
        data.take_rows(np.zeros((40, 3)), np.array([0, 39, bad]))


@pytest.mark.parametrize("order", [np.array([2.9, 0.2]), np.array([[0, 1]]), np.array(["0"])])
def test_taken_rows_need_a_flat_integer_order(order):
    with pytest.raises(InputTypeError, match="order must be a 1-d array of integer row indices"):
        data.take_rows(np.zeros((4, 3)), order)


@pytest.mark.parametrize("kernel", ["rbf", "matern52"])
def test_v_and_p_do_not_depend_on_which_twin_builds_them(monkeypatch, kernel):
    X = np.random.default_rng(3).normal(size=(2500, 2))
    with_rust = ct.residual_problem(X, kernel=kernel, lengthscale=[0.7, 1.9], variance=2.0, m=96, seed=1)
    monkeypatch.setattr(twins, "rust_twin", lambda name: None)
    with_numba = ct.residual_problem(X, kernel=kernel, lengthscale=[0.7, 1.9], variance=2.0, m=96, seed=1)
    assert with_rust.V.tobytes() == with_numba.V.tobytes()
    assert with_rust.p.tobytes() == with_numba.p.tobytes()
    assert with_rust.digest == with_numba.digest


def test_bad_shapes_are_clear_errors():
    twin = twins.rust_twin("kernel_matrix")
    with pytest.raises(ValueError, match="lengthscales: expected 3, got 2"):
        twin(np.zeros((4, 3)), np.zeros((2, 3)), 0, np.ones(2), 1.0)
    with pytest.raises(ValueError, match="columns of B: expected 3, got 2"):
        twin(np.zeros((4, 3)), np.zeros((2, 2)), 0, np.ones(3), 1.0)
    with pytest.raises(ValueError, match="columns must be >= 1"):
        twin(np.zeros((4, 0)), np.zeros((2, 0)), 0, np.ones(0), 1.0)
    with pytest.raises(ValueError):
        twin(np.zeros((4, 3)), np.zeros((2, 3)), 7, np.ones(3), 1.0)  # no kernel has code 7


@pytest.mark.parametrize("d", [1, 2, 3, 8, 64, 100])
def test_the_rust_hilbert_keys_are_numbas(d):
    """Query blocks follow these keys: the twin must give the same uint64 for every point, including
    points on the grid's edges, constant columns and dimensions whose bits overflow the key."""
    from covertreex.hilbert_curve import quantised_keys

    rng = np.random.default_rng(d)
    points = rng.normal(size=(500, d)) * 10.0 ** rng.integers(-3, 4, size=d)
    points[:, 0] = 7.0  # a constant column: span 1
    points[1] = points.min(axis=0)
    points[2] = points.max(axis=0)
    bits = max(1, min(16, 63 // d))
    lo, hi = points.min(axis=0), points.max(axis=0)
    span = np.where(hi > lo, hi - lo, 1.0)
    twin = twins.rust_twin("quantised_keys")(points, lo, span, bits)
    numba = quantised_keys(points, lo, span, bits)
    assert twin.dtype == numba.dtype == np.uint64 and twin.tobytes() == numba.tobytes()


@pytest.mark.parametrize("metric", ["euclidean", "residual"])
@pytest.mark.parametrize("data", ["normal", "duplicates"])
def test_the_rust_subtree_minima_are_numbas(metric, data):
    from covertreex.tree_structure import subtree_minima

    rng = np.random.default_rng(3)
    X = rng.normal(size=(400, 3)) if data == "normal" else np.repeat(rng.integers(0, 4, size=(100, 3)), 4, 0)
    model = ct.CoverTree(engine="gold", metric=metric, path="tree")
    tree = model.fit(X, **({"m": 16} if metric == "residual" else {})).tree
    twin = twins.rust_twin("subtree_minima")(tree.root, tree.child_offsets, tree.children)
    numba = subtree_minima(tree.root, tree.child_offsets, tree.children)
    assert twin.tobytes() == numba.tobytes() == tree.subtree_min.tobytes()


def test_the_rust_subtree_minima_refuse_malformed_arrays():
    twin = twins.rust_twin("subtree_minima")
    with pytest.raises(InvalidInputError, match="tree root"):
        twin(5, np.array([0, 1, 1]), np.array([1]))
    with pytest.raises(InvalidInputError):
        twin(0, np.array([0, 2, 2]), np.array([1, 1]))  # a child listed twice
