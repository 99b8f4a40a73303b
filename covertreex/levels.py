"""Level arithmetic of the cover tree (base 2), identical in every engine (its constants:
:mod:`covertreex.level_constants`)."""

from __future__ import annotations

import math

from numba import njit


@njit(cache=True)
def level_below(value):
    """The largest integer j with 2**j < value (value finite and > 0), computed exactly via frexp."""
    mantissa, exponent = math.frexp(value)
    if mantissa == 0.5:
        return exponent - 2
    return exponent - 1


@njit(cache=True)
def cover(level):
    """An upper bound on the computed distance from a node at `level` to its parent: 2**(level + 1) (the
    covering invariant, DESIGN section 4), raised to 2**-1022 below the normal range (duplicates
    included, whose distance is 0) and inf above it, so that Rust builds the same value from exponent bits."""
    exponent = max(level + 1, -1022)
    if exponent > 1023:
        return math.inf
    return math.ldexp(1.0, exponent)
