"""Orderings of the points for a Vecchia approximation: natural, random, user-given, exact maximin.

An ordering is an int64 permutation ``order`` of ``range(N)``: position i of the ordering holds input row
``order[i]``. Maximin orderings are computed by :mod:`covertreex.maximin` and start at the point nearest the
mean of the coordinates (squared Euclidean distance to ``X.mean(axis=0)``, ties by the smallest row index),
the first point GpGp's ``order_maxmin`` uses too; the residual-correlation maximin starts there as well,
since that metric has no mean of its own.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np

from covertreex.errors import InputTypeError, InvalidInputError, unknown_name
from covertreex.kinds import ORDERINGS
from covertreex.metrics.data import MetricData, operand
from covertreex.validation import holds_integers, refuse_masked

if TYPE_CHECKING:  # the maximin walk (Numba) loads on first use, not for the CLI's --help
    from covertreex.metrics import MetricSpace


def needs_residual_problem(metric: str, ordering) -> bool:
    """Whether a Vecchia job builds the residual problem (V and p): for its neighbours' metric or for a
    maximin ordering in that metric. Only such a job takes the kernel, lengthscale, variance and m."""
    return metric == "residual" or (isinstance(ordering, str) and ordering == "maximin-residual")


def uses_seed(metric: str, ordering) -> bool:
    """Whether a Vecchia job draws anything at random: a random ordering, or a residual problem's inducing
    points. Only such a job takes a seed."""
    return (isinstance(ordering, str) and ordering == "random") or needs_residual_problem(metric, ordering)


def first_point(X: np.ndarray) -> int:
    """The row nearest the coordinate mean (ties: smallest row), where every maximin ordering starts.
    A row whose square overflows (accepted coordinates beyond about 1e154 do) is farther than every finite
    one, so the plain sums decide while any row is finite. When none is (every row tied at inf, or the
    mean overflowed: row 0 used to start), the same sums run on X scaled by a power of two that brings it
    within +/-1, an exact scaling; rescaling while some rows were finite underflowed the near rows' squares
    to 0 and tied them (a review caught it)."""
    with np.errstate(over="ignore", invalid="ignore"):
        squares = _squared_distances_to_mean(X)
        if not np.isfinite(squares).any():
            _, exponent = np.frexp(np.abs(X).max())
            squares = _squared_distances_to_mean(np.ldexp(X, -int(exponent)))
    return int(np.argmin(squares))


def _squared_distances_to_mean(X: np.ndarray) -> np.ndarray:
    centred = X - X.mean(axis=0)
    return (centred * centred).sum(axis=1)


def given_permutation(values, n_points: int, name: str = "ordering", *, names: bool = True) -> np.ndarray:
    """A user's ordering, checked to be a permutation of range(n_points): integers, or floats that are
    whole numbers (R's numeric vectors are doubles: an R user's ``order(x) - 1`` arrives as float64, which
    a .csv of it already passed), any other float named by its entry. `name` is the argument's in errors;
    `names`: whether an ordering's name was accepted there too (the type error lists them)."""
    refuse_masked(values, name)
    arr = np.asarray(values)
    if arr.ndim != 1 or not (holds_integers(arr) or arr.dtype.kind == "f"):
        accepted = f"a name ({', '.join(ORDERINGS)}) or " if names else ""
        raise InputTypeError(
            f"{name} must be {accepted}a 1-D array of integers (a permutation of range({n_points})), got "
            f"{type(values).__name__} of dtype {arr.dtype} and shape {arr.shape}"
        )
    if arr.dtype.kind == "f":
        with np.errstate(invalid="ignore"):
            fraction = np.flatnonzero(~np.isfinite(arr) | (arr != np.floor(arr)))
        if fraction.size:
            at = int(fraction[0])
            raise InputTypeError(f"{name} must hold whole numbers, a permutation of range({n_points}); "
                                 f"entry {at} is {arr[at]}")
    if arr.shape[0] != n_points:
        raise InvalidInputError(
            f"{name} must be a permutation of range({n_points}), got {arr.shape[0]} entries"
        )
    outside = (arr < 0) | (arr >= n_points)
    if outside.any():
        at = int(np.flatnonzero(outside)[0])
        raise InvalidInputError(f"{name} must be a permutation of range({n_points}); entry {at} is "
                                f"{arr[at]}, outside it{one_based_hint(arr, n_points)}")
    arr = arr.astype(np.int64)  # every entry in range: whole floats convert exactly
    first_at = np.full(n_points, arr.shape[0], dtype=np.int64)
    np.minimum.at(first_at, arr, np.arange(arr.shape[0]))
    repeated = np.flatnonzero(first_at[arr] != np.arange(arr.shape[0]))
    if repeated.size:
        at = int(repeated[0])
        missing = int(np.flatnonzero(first_at == arr.shape[0])[0])
        raise InvalidInputError(
            f"{name} must be a permutation of range({n_points}); entry {at} repeats the value {arr[at]} "
            f"of entry {first_at[arr[at]]} (the value {missing} appears nowhere)"
        )
    return np.array(arr, dtype=np.int64)


def one_based_hint(values: np.ndarray, n_points: int) -> str:
    """A note for a permutation of 1..n (R's and GpGp's orderings count from 1), else ''."""
    if values.size != n_points or not n_points or values.min() != 1 or values.max() != n_points:
        return ""
    if np.unique(values).size != n_points:
        return ""
    return f" (it holds 1..{n_points}: orderings count from 0 here; subtract 1 from a 1-based one, as R's)"


def resolve(ordering, n_points: int) -> tuple[str, np.ndarray | None]:
    """(name, permutation): a known name and None, or 'given' and the checked user permutation."""
    if isinstance(ordering, str):
        if ordering not in ORDERINGS:
            raise unknown_name("ordering", ordering, ORDERINGS)
        return ordering, None
    return "given", given_permutation(ordering, n_points)


def maximin(space: MetricSpace, tree,
            progress: Callable[[int], None] | None = None) -> tuple[np.ndarray, int]:
    """Exact maximin order of `space` (see :mod:`covertreex.maximin`) walking `tree` (None: exhaustive
    scan); returns the order and the distance evaluations spent."""
    walk = None if tree is None else (tree.root, tree.child_offsets, tree.children, tree.radius)
    from covertreex.maximin import maximin_order

    return maximin_order(space.data, first_point(space.data.X), walk, progress)


def simple(name: str, n_points: int, seed: int) -> np.ndarray:
    """The orderings that need no distances: 'natural' and 'random' (default_rng(seed).permutation)."""
    if name == "natural":
        return np.arange(n_points, dtype=np.int64)
    return np.random.default_rng(seed).permutation(n_points).astype(np.int64)


# --- The fused maximin pass's room (gold's covertreex.maximin_dense and rust's share them) ----------

ROOM_OVER_K = 8
"""Candidate slots per point beyond k (more slots only postpone dropping the excluded candidates)."""


def working_bytes(data: MetricData, k: int) -> int:
    """An upper estimate of the fused pass's memory beyond its input, gold's or rust's, for a refusal
    before it starts: per point, 24 bytes per operand column (gold's block copies of operand rows, rust's
    pool copy) and 96 per neighbour (the answer, the upper bounds, the candidates). Measured growth of the
    peak RSS per point at N = 16,384, m = 512 (2026-12-05, AMD EPYC): rust 9.3 KB at k = 50 and 22.1 KB at
    k = 200, gold 12.9 and 17.4 KB; this estimate gives 17.1 and 31.5 KB."""
    rows, width = operand(data).shape
    return rows * (24 * width + 96 * k)
