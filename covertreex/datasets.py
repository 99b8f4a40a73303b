"""Seeded point-set generators. Same arguments, same bytes, on every machine.

Each generator draws from ``numpy.random.default_rng(seed)`` only, returns C-contiguous float64 (n, d), and
:func:`make` wraps the result in a :class:`Dataset` carrying its content digest for baselines.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from covertreex.digest import array_digest
from covertreex.errors import InvalidInputError, unknown_name
from covertreex.kinds import DATASETS
from covertreex.scalars import as_int


def _check_size(n, d) -> tuple[int, int]:
    n, d = as_int(n, "n"), as_int(d, "d")
    if n < 1:
        raise InvalidInputError(f"n must be >= 1, got {n}")
    if d < 1:
        raise InvalidInputError(f"d must be >= 1, got {d}")
    return n, d


def gaussian(n: int, d: int, seed: int) -> np.ndarray:
    """Standard normal points."""
    n, d = _check_size(n, d)
    return np.random.default_rng(seed).normal(size=(n, d))


def clustered(n: int, d: int, seed: int, *, centers: int = 8, spread: float = 0.05) -> np.ndarray:
    """Tight Gaussian blobs around `centers` uniform centres in the unit cube."""
    n, d = _check_size(n, d)
    centers = as_int(centers, "centers")
    if centers < 1:
        raise InvalidInputError(f"centers must be >= 1, got {centers}")
    rng = np.random.default_rng(seed)
    middles = rng.uniform(0.0, 1.0, size=(centers, d))
    labels = rng.integers(0, centers, size=n)
    return np.ascontiguousarray(middles[labels] + spread * rng.normal(size=(n, d)))


def lattice(n: int, d: int, seed: int, *, side: int = 6) -> np.ndarray:
    """Points on the integer grid {0..side-1}^d: many exactly tied distances (and repeats once n > side^d)."""
    n, d = _check_size(n, d)
    side = as_int(side, "side")
    if side < 1:
        raise InvalidInputError(f"side must be >= 1, got {side}")
    return np.random.default_rng(seed).integers(0, side, size=(n, d)).astype(np.float64)


def duplicates(n: int, d: int, seed: int, *, fraction: float = 0.3) -> np.ndarray:
    """Gaussian points where about `fraction` of the rows are exact copies of earlier-drawn rows."""
    n, d = _check_size(n, d)
    if not 0.0 <= fraction < 1.0:
        raise InvalidInputError(f"fraction must be in [0, 1), got {fraction}")
    rng = np.random.default_rng(seed)
    n_unique = max(1, n - int(round(fraction * n)))
    unique = rng.normal(size=(n_unique, d))
    picks = np.concatenate([np.arange(n_unique), rng.integers(0, n_unique, size=n - n_unique)])
    return np.ascontiguousarray(unique[rng.permutation(picks)])


GENERATORS = dict(zip(DATASETS, (gaussian, clustered, lattice, duplicates), strict=True))
"""The generator of each name in :data:`covertreex.kinds.DATASETS`."""


@dataclass(frozen=True)
class Dataset:
    """A generated point set and the recipe that made it."""

    kind: str
    n: int
    d: int
    seed: int
    points: np.ndarray = field(repr=False)
    digest: str
    params: dict = field(default_factory=dict)


def make(kind: str, n: int, d: int, seed: int, **params) -> Dataset:
    """Generate dataset `kind` (one of :data:`GENERATORS`) and attach its sha256 digest."""
    try:
        generator = GENERATORS[kind]
    except KeyError:
        raise unknown_name("dataset kind", kind, GENERATORS) from None
    points = generator(n, d, seed, **params)
    points.setflags(write=False)
    return Dataset(kind, n, d, seed, points, array_digest(points), dict(params))
