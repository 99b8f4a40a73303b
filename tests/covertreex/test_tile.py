"""The gold engine's tiled canonical block (covertreex/engines/gold/tile.py): every dot product is the
sequential sum bit for bit and every distance is the canonical ``distance``, on data built so that any
reordering of a sum shows, and the compiled kernel holds no fused multiply-add."""

from __future__ import annotations

import re

import numba
import numpy as np
import pytest

import covertreex as ct
from covertreex.engines.gold.tile import LANES, ROWS, TERMS, canonical_dots, residual_block
from covertreex.metrics import MetricSpace
from covertreex.metrics.kernels import distance


def _hostile_space(n, m, kernel, seed):
    """Rows of V with terms of mixed sign spanning 1e-8..1e8 (so a reordered sum rounds differently),
    norms from 1e-6 (p near the variance) to 1e6 (p at its 1e-9 clamp), and duplicate rows (distance 0
    between different indices, and between a point and itself)."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 3))
    V = rng.normal(size=(n, m)) * 10.0 ** rng.uniform(-8, 8, size=(n, m))
    V *= (10.0 ** rng.uniform(-6, 6, size=n) / np.linalg.norm(V, axis=1))[:, None]
    V[: n // 4] *= 1e-12 / np.abs(V[: n // 4]).max()  # p at the variance, k - V.V ~ k
    X[n - 3], V[n - 3] = X[n - 5], V[n - 5]
    X[n - 2], V[n - 2] = X[n - 5], V[n - 5]
    problem = ct.ResidualProblem.from_arrays(X, V, kernel=kernel, lengthscale=[0.7, 1.0, 1.3], variance=1.0)
    return MetricSpace.residual(problem).data


def _sequential_dot(a, b):
    acc = 0.0
    for x, y in zip(a.tolist(), b.tolist(), strict=True):
        acc += x * y  # Python floats: IEEE double, one rounding per operation, no FMA
    return acc


# Shapes around the tile's sizes: remainders of ROWS rows, of LANES lanes and of TERMS terms.
SHAPES = [(1, 1), (1, LANES + 3), (ROWS + 3, 2), (2 * ROWS + 1, LANES - 1), (5, 3 * LANES), (40, 40)]


@pytest.mark.parametrize("m", [1, TERMS - 1, 3 * TERMS + 5, 64])
def test_every_dot_product_is_the_sequential_sum_bit_for_bit(m):
    D = _hostile_space(60, m, "rbf", seed=m)
    rng = np.random.default_rng(m)
    for n_rows, n_lanes in SHAPES:
        rows = rng.integers(0, 60, n_rows)
        lanes = rng.integers(0, 60, n_lanes)
        got = np.empty((n_rows, n_lanes))
        canonical_dots(D.V, rows, lanes, got)
        want = np.array([[_sequential_dot(D.V[a], D.V[b]) for b in lanes] for a in rows])
        assert np.array_equal(got.view(np.int64), want.view(np.int64)), (m, n_rows, n_lanes)


@pytest.mark.parametrize("kernel", ["rbf", "matern52"])
def test_every_block_distance_is_the_canonical_distance_bit_for_bit(kernel):
    n = 70
    D = _hostile_space(n, 3 * TERMS + 5, kernel, seed=3)
    rng = np.random.default_rng(4)
    seen = []
    for n_points, n_nodes in SHAPES + [(n, n)]:  # both orientations: points or nodes packed
        points = rng.integers(0, n, n_points)
        nodes = rng.integers(0, n, n_nodes)
        points[0], nodes[-1] = nodes[0], points[-1]  # a point that is a node: distance exactly 0
        got = np.empty(n_points * n_nodes)
        residual_block(D, points, nodes, got)
        want = np.array([distance(D, a, a, D, b) for a in points for b in nodes])
        assert np.array_equal(got.view(np.int64), want.view(np.int64)), (n_points, n_nodes)
        seen.append(got)
    seen = np.concatenate(seen)  # the data reach 0 (same index, duplicates, |rho| clamped), near 1, between
    assert (seen == 0).any() and (seen > 0.99).any() and ((seen > 0.01) & (seen < 0.99)).any()


def test_the_compiled_kernel_has_no_fused_multiply_add_and_no_fastmath():
    options = dict(canonical_dots.targetoptions)
    assert not options.pop("fastmath", False)
    options.pop("cache", None)  # a cached function cannot be inspected: compile the same code afresh
    options.pop("nopython", None)
    kernel = numba.njit(**options)(canonical_dots.py_func)
    D = _hostile_space(20, 9, "rbf", seed=5)
    kernel(D.V, np.arange(3), np.arange(9), np.empty((3, 9)))
    signature = kernel.signatures[0]
    llvm = kernel.inspect_llvm(signature)
    arithmetic = [line for line in llvm.splitlines() if re.search(r"= (fadd|fmul)", line)]
    assert arithmetic and not any(re.search(r"\b(fast|contract|reassoc)\b", line) for line in arithmetic)
    assert "llvm.fma" not in llvm and "llvm.fmuladd" not in llvm
    assert not re.search(r"\bv?f(n)?m(add|sub)\d", kernel.inspect_asm(signature))
