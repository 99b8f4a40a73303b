"""V's construction has two implementations of its kernels, Numba's (covertreex/metrics/kernels.py) and the
rust extension's (rust/core/src/kernel_matrix.rs, used where it is built so a rust job never starts Numba):
they must give the same bits, and so must V."""

from __future__ import annotations

import numpy as np
import pytest

import covertreex as ct
from covertreex.errors import InputTypeError, InvalidInputError
from covertreex.metrics import kernels

pytestmark = pytest.mark.skipif(kernels._rust_twin("kernel_matrix") is None,
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
    twin = kernels.kernel_matrix(A, B, kernel, ls, 1.3)
    numba = kernels.kernel_block(A, B, kernels.KERNELS.index(kernel), ls, 1.3)
    assert twin.shape == numba.shape and twin.tobytes() == numba.tobytes()


@pytest.mark.parametrize("shape", [(1, 1), (5, 512), (3000, 37)])
def test_the_rust_squared_norms_are_numbas_bit_for_bit(shape):
    V = np.random.default_rng(shape[0]).normal(size=shape) * 1e-3
    assert kernels.squared_norms(V).tobytes() == kernels.squared_norms_block(V).tobytes()


@pytest.mark.parametrize("n, m, size", [(1, 1, 1), (300, 67, 300), (5000, 8, 7000), (4, 0, 3), (9, 3, 0)])
def test_the_rust_taken_rows_are_numpys(n, m, size):
    assert kernels._rust_twin("take_rows") is not None  # a stale build would compare NumPy with NumPy
    rng = np.random.default_rng(n + m)
    V = rng.normal(size=(n, m))
    order = rng.integers(0, n, size=size).astype(np.int32)  # repeats allowed: any row indices
    taken = kernels.take_rows(V, order)
    assert taken.shape == (size, m) and taken.flags.c_contiguous
    assert taken.tobytes() == V[order].tobytes()


@pytest.mark.parametrize("twin", [True, False])
@pytest.mark.parametrize("bad", [-1, 40])
def test_taken_rows_out_of_range_name_the_order(monkeypatch, twin, bad):
    if not twin:
        monkeypatch.setattr(kernels, "_rust_twin", lambda name: None)
    with pytest.raises(InvalidInputError, match=r"order\[2\] = .* out of range \[0, 40\)"):
        kernels.take_rows(np.zeros((40, 3)), np.array([0, 39, bad]))


@pytest.mark.parametrize("order", [np.array([2.9, 0.2]), np.array([[0, 1]]), np.array(["0"])])
def test_taken_rows_need_a_flat_integer_order(order):
    with pytest.raises(InputTypeError, match="order must be a 1-d array of integer row indices"):
        kernels.take_rows(np.zeros((4, 3)), order)


@pytest.mark.parametrize("kernel", ["rbf", "matern52"])
def test_v_and_p_do_not_depend_on_which_twin_builds_them(monkeypatch, kernel):
    X = np.random.default_rng(3).normal(size=(2500, 2))
    with_rust = ct.residual_problem(X, kernel=kernel, lengthscale=[0.7, 1.9], variance=2.0, m=96, seed=1)
    monkeypatch.setattr(kernels, "_rust_twin", lambda name: None)
    with_numba = ct.residual_problem(X, kernel=kernel, lengthscale=[0.7, 1.9], variance=2.0, m=96, seed=1)
    assert with_rust.V.tobytes() == with_numba.V.tobytes()
    assert with_rust.p.tobytes() == with_numba.p.tobytes()
    assert with_rust.digest == with_numba.digest


def test_bad_shapes_are_clear_errors():
    twin = kernels._rust_twin("kernel_matrix")
    with pytest.raises(ValueError, match="lengthscales: expected 3, got 2"):
        twin(np.zeros((4, 3)), np.zeros((2, 3)), np.ones(2), 0, 1.0)
    with pytest.raises(ValueError, match="columns of B: expected 3, got 2"):
        twin(np.zeros((4, 3)), np.zeros((2, 2)), np.ones(3), 0, 1.0)
    with pytest.raises(ValueError, match="columns must be >= 1"):
        twin(np.zeros((4, 0)), np.zeros((2, 0)), np.ones(0), 0, 1.0)
    with pytest.raises(ValueError):
        twin(np.zeros((4, 3)), np.zeros((2, 3)), np.ones(3), 7, 1.0)  # no kernel has code 7
