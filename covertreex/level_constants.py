"""The cover tree's level constants, apart from :mod:`covertreex.levels`'s Numba arithmetic so that reading a
tree's levels (as every rust query does) loads no Numba."""

from __future__ import annotations

DUPLICATE_LEVEL = -(2**31)
"""The dedicated level of exact duplicates (distance 0 to the node they hang under)."""

UNBOUNDED_LEVEL = 2**20
"""The root's level while building: 2**UNBOUNDED_LEVEL overflows to inf, so the root covers everything."""

NO_CHILD_LEVEL = -(2**62)
"""Marks a node without non-duplicate children while building."""

LOWEST_LEVEL, HIGHEST_LEVEL = -1075, 1024
"""Every level a build over finite float64 distances can give, apart from DUPLICATE_LEVEL: from the smallest
subnormal distance (2**-1074, level -1075) up to the root above the largest finite one (level 1024)."""
