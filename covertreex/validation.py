"""Normalise user arrays once, at the API boundary, with errors that name the argument.

Every engine receives C-contiguous float64 arrays; converting here means the kernels never see Fortran order,
strides, integer or float32 input. ``as_points`` copies only when the input is not already
C-contiguous float64, or when asked to (``owned=True``: a read-only copy for arrays that are kept).
"""

from __future__ import annotations

import numpy as np

from covertreex.errors import (
    DimensionMismatchError,
    InputTypeError,
    InvalidInputError,
    KOutOfRangeError,
    NonFiniteError,
)
from covertreex.scalars import as_int


def as_array(array, name: str) -> np.ndarray:
    """`array` as a NumPy array, refusing what NumPy would misread (sparse, masked, rounded lists)."""
    if isinstance(array, (str, bytes)) or array is None:
        raise InputTypeError(f"{name} must be an array of numbers, got {type(array).__name__}")
    if type(array).__module__.startswith("scipy.sparse"):  # NumPy would wrap it as a 0-D object array
        raise InputTypeError(f"{name} must be a dense array of numbers, got a scipy.sparse "
                             f"{type(array).__name__} (pass {name}.toarray() if it fits in memory)")
    refuse_masked(array, name)
    try:
        arr = np.asarray(array)
    except (ValueError, TypeError) as exc:  # ragged nesting, objects NumPy cannot turn into an array
        raise InputTypeError(f"{name} must be a rectangular array of numbers ({exc})") from exc
    if isinstance(array, (list, tuple)) and arr.dtype == object:
        arr = _python_numbers(arr, name)
    if isinstance(array, (list, tuple)) and arr.dtype.kind == "f":
        _refuse_rounded_list(array, arr, name)
    return arr


def refuse_masked(array, name: str) -> None:
    """Refuse a masked array with masked entries: np.asarray drops the mask and keeps what lies under it."""
    if isinstance(array, np.ma.MaskedArray) and np.ma.getmask(array) is not np.ma.nomask \
            and np.ma.getmask(array).any():
        raise InputTypeError(f"{name} is a masked array with masked entries, which would be read as the "
                             f"values under the mask: pass {name}.filled(value) or only the unmasked rows")


def _python_numbers(arr: np.ndarray, name: str) -> np.ndarray:
    """A list's object array as float64 when it holds only ints and floats float64 holds (Python's or
    NumPy's up to float64; no bools, which CoverTree refuses as it refuses bool arrays): NumPy keeps
    integers beyond uint64 as objects, where CoverTree refused them as "dtype object" and scikit-learn's
    conversion took them (an outside trial); the caller then refuses any it rounded. Anything else stays
    as it was."""
    numbers = (int, float, np.integer, np.float16, np.float32, np.float64)
    if not all(isinstance(value, numbers) and not isinstance(value, bool) for value in arr.flat):
        return arr
    try:
        return arr.astype(np.float64)
    except OverflowError:
        raise InvalidInputError(f"{name} holds an integer beyond float64's range (about 1.8e308)") from None


def _refuse_rounded_list(array, arr: np.ndarray, name: str) -> None:
    """NumPy turns a list holding Python integers beyond int64 into float64 itself, rounding them (2**63 + 5
    and 2**63 + 4 became one point). Only values of 2**53 or more can be rounded integers: those are
    compared with the list's own numbers, exactly."""
    with np.errstate(invalid="ignore"):
        large = np.abs(arr) >= 2.0**53
    if not large.any():
        return
    given = np.asarray(array, dtype=object)[large]
    if (arr[large].astype(object) != given).any():
        raise InvalidInputError(f"{name} holds values float64 cannot represent exactly (integers in a "
                                "list); convert them to float64 yourself if that rounding is acceptable")


def as_points(array, name: str, *, ndim: int = 2, owned: bool = False, columns: str = "n_dims") -> np.ndarray:
    """Return `array` as a C-contiguous float64 array of `ndim` dimensions, rejecting unusable input.
    With `owned`, always a fresh read-only copy (for arrays a fitted object keeps); `columns` names the
    second dimension in errors."""
    arr = as_array(array, name)
    if arr.dtype.kind not in "fiu":  # not bool, complex, timedelta64 (an integer subtype to NumPy), ...
        raise InputTypeError(f"{name} must hold real numbers (float or int dtype), got dtype {arr.dtype}")
    if arr.ndim != ndim:
        shape = f"(n_points, {columns})" if ndim == 2 else "(n,)"
        hint = ""
        if ndim == 2 and arr.ndim == 1 and columns == "n_dims":
            hint = ("; points of one coordinate each are shape (n, 1), reshape(-1, 1), and a single point "
                    "(1, d), reshape(1, -1)")
        raise InvalidInputError(f"{name} must be {ndim}-D with shape {shape}, got shape {arr.shape}{hint}")
    if arr.shape[0] == 0:
        raise InvalidInputError(f"{name} must not be empty, got shape {arr.shape}")
    if ndim == 2 and arr.shape[1] == 0:  # rows without coordinates
        raise InvalidInputError(f"{name} must have at least one column, got shape {arr.shape}")
    source = arr
    with np.errstate(over="ignore"):  # a long double beyond float64 overflows: said below, not warned of
        if owned:
            arr = np.array(arr, dtype=np.float64, order="C", copy=True)
            arr.flags.writeable = False
        else:
            arr = np.ascontiguousarray(arr, dtype=np.float64)
    finite = np.isfinite(arr)
    if not finite.all():
        bad = np.argwhere(~finite)[0]
        where = f"row {bad[0]}" if ndim == 2 else f"position {bad[0]}"
        if source.dtype.kind == "f" and np.isfinite(source[tuple(bad)]):  # a long double's range is wider
            raise NonFiniteError(f"{name} holds {str(source[tuple(bad)])} at {where}, beyond float64's range "
                                 f"(about 1.8e308)")
        raise NonFiniteError(f"{name} contains NaN or inf (first at {where})")
    check_exact_conversion(source, arr, name, ndim)  # after: a NaN long double is NaN, not inexact
    return arr


def check_exact_conversion(source: np.ndarray, converted: np.ndarray, name: str, ndim: int) -> None:
    """Distances are computed in float64, so input float64 cannot hold exactly (integers beyond 2**53,
    long doubles, Python integers in an object array) is refused rather than silently rounded (two points
    1 apart became duplicates)."""
    lossy = source.dtype.kind in "iuO" and source.dtype.itemsize > 4 or (
        source.dtype.kind == "f" and source.dtype.itemsize > 8)
    if not lossy:
        return
    with np.errstate(invalid="ignore", over="ignore"):
        changed = converted.astype(source.dtype) != source
    if changed.any():
        bad = np.argwhere(changed)[0]
        where = f"row {bad[0]}" if ndim == 2 else f"position {bad[0]}"
        raise InvalidInputError(
            f"{name} holds values float64 cannot represent exactly (dtype {source.dtype}, first at {where}); "
            "convert it to float64 yourself if that rounding is acceptable"
        )


def check_dims(queries: np.ndarray, n_dims: int, name: str = "queries") -> None:
    """Queries must live in the same space as the indexed points."""
    if queries.shape[1] != n_dims:
        raise DimensionMismatchError(
            f"{name} have {queries.shape[1]} columns but the tree was built on {n_dims}-D points"
        )


def check_k(k, n_eligible: int, *, allow_padding: bool = False) -> int:
    """k must be at least 1 and, unless rows are padded, at most the number of eligible points."""
    k = as_int(k, "k")
    if k < 1:
        raise KOutOfRangeError(f"k must be >= 1, got {k}")
    if not allow_padding and k > n_eligible:
        raise KOutOfRangeError(f"k must be <= the number of indexed points ({n_eligible}), got {k}")
    return k


def holds_integers(arr: np.ndarray) -> bool:
    """Whether `arr` has an integer dtype, judged by kind as :func:`as_points` judges points: np.issubdtype
    counts timedelta64 as an integer (such an ordering ended in an IndexError, such indices were used)."""
    return arr.dtype.kind in "iu"


def dataset_indices(values, n_points: int, name: str = "indices") -> np.ndarray:
    """Validate an array of dataset indices in [0, n_points)."""
    arr = as_array(values, name)
    if arr.ndim != 1 or arr.size == 0:
        raise InvalidInputError(f"{name} must be a non-empty 1-D array, got shape {arr.shape}")
    if not holds_integers(arr):
        raise InputTypeError(f"{name} must hold integers, got dtype {arr.dtype}")
    outside = (arr < 0) | (arr >= n_points)
    if outside.any():
        at = int(np.flatnonzero(outside)[0])
        raise InvalidInputError(f"{name} must lie in [0, {n_points}), got {arr[at]} at position {at}")
    return np.ascontiguousarray(arr, dtype=np.int64)
