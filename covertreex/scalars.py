"""Checks of scalar arguments (integers, booleans, positive reals) with errors that name the argument.

Kept apart from :mod:`covertreex.validation` (arrays) because it imports no NumPy: the configuration and
the CLI's argument parser use it, and ``pcct --help`` must not pay for NumPy's import.
"""

from __future__ import annotations

import math
import numbers
import sys

from covertreex.errors import InputTypeError, InvalidInputError


def as_int(value, name: str) -> int:
    """Accept Python and NumPy integers, and a NumPy array of one integer and no dimensions (not bools,
    floats or timedelta64, an integer to NumPy) and return a plain int."""
    value = _unwrapped(value)
    if isinstance(value, (bool, *_numpy_types("timedelta64"))) or not isinstance(value, numbers.Integral):
        raise InputTypeError(f"{name} must be an integer, got {type(value).__name__} {value!r}")
    return int(value)


def _unwrapped(value):
    """The number a NumPy array of no dimensions holds (``np.array(2.0)``, what reductions return), as a
    scalar of its dtype; any other value unchanged."""
    numpy = sys.modules.get("numpy")
    if numpy is None or not isinstance(value, numpy.ndarray):
        return value
    return value[()] if value.ndim == 0 and value.dtype.kind in "iuf" else value


def _numpy_types(*names: str) -> tuple[type, ...]:
    """NumPy's scalar types of these names, if NumPy is loaded (a value cannot be one if it is not)."""
    numpy = sys.modules.get("numpy")
    return () if numpy is None else tuple(getattr(numpy, name) for name in names)


def as_seed(value) -> int:
    """A seed for numpy.random.default_rng: an integer >= 0 (None would draw a fresh one each call, so
    the same call would answer differently)."""
    seed = as_int(value, "seed")
    if seed < 0:
        raise InvalidInputError(f"seed must be >= 0 (numpy.random.default_rng needs one), got {seed}")
    return seed


def as_bool(value, name: str) -> bool:
    """Accept Python and NumPy booleans only (a string such as 'no' is not a boolean)."""
    if not isinstance(value, (bool, *_numpy_types("bool_"))):
        raise InputTypeError(f"{name} must be True or False, got {type(value).__name__} {value!r}")
    return bool(value)


def positive_float(value, name: str) -> float:
    """A strictly positive finite real number (a NumPy array of one and no dimensions too)."""
    value = _unwrapped(value)
    if isinstance(value, (bool, *_numpy_types("timedelta64"))) or not isinstance(value, numbers.Real):
        raise InputTypeError(f"{name} must be a real number, got {type(value).__name__}")
    try:
        value = float(value)
    except OverflowError:  # an integer beyond the doubles (10**400)
        raise InvalidInputError(f"{name} must be positive and finite, got an integer beyond the float64 "
                                "range") from None
    if not math.isfinite(value) or value <= 0.0:
        raise InvalidInputError(f"{name} must be positive and finite, got {value}")
    return value
