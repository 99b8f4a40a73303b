"""Level arithmetic of the cover tree (base 2), identical in every engine."""

from __future__ import annotations

import math

from numba import njit

DUPLICATE_LEVEL = -(2**31)
"""The dedicated level of exact duplicates (distance 0 to the node they hang under)."""

UNBOUNDED_LEVEL = 2**20
"""The root's level while building: 2**UNBOUNDED_LEVEL overflows to inf, so the root covers everything."""

NO_CHILD_LEVEL = -(2**62)
"""Marks a node without non-duplicate children while building."""

LOWEST_LEVEL, HIGHEST_LEVEL = -1075, 1024
"""Every level a build over finite float64 distances can give, apart from DUPLICATE_LEVEL: from the smallest
subnormal distance (2**-1074, level -1075) up to the root above the largest finite one (level 1024)."""


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
