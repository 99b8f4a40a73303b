"""The one interface every engine implements, and the result type they all return.

Indices are int64 and distances float64, rows sorted by (distance, index) and padded with (-1, inf).
Counters are raw integer arrays; :mod:`covertreex.telemetry` turns them into the schema'd record, so
engines never format telemetry themselves.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from typing import Protocol

import numpy as np

from covertreex.config import Config
from covertreex.counters import N_LEVEL_COUNTERS
from covertreex.metrics import MetricSpace, QuerySet
from covertreex.tree import Tree


@dataclass(frozen=True, eq=False)
class QueryCounters:
    """Work counters of one query call.

    per_query: (n_queries, N_QUERY_COUNTERS) int64, columns :class:`~covertreex.counters.QueryCounter`.
    per_level: (n_slots, N_LEVEL_COUNTERS) int64, columns :class:`~covertreex.counters.LevelCounter`,
    summed over queries, one row per tree level from the root's down plus a last row for duplicates (no
    rows when no tree answered: :meth:`without_levels`).
    extra: the path that answered ("tree" or "dense"; brute: its variant), and per-path extras:
    "screened" (per-query eligible pairs screened by a dense path), "discarded_evaluations" (rust),
    "declined" (queries the split screen gave back to the f64 GEMM: covertreex.split_screen.DECLINE_SHARE),
    "screen" (rust's dense path: 'f64', 'split' or 'boxes', the screen its pairs took).
    """

    per_query: np.ndarray = field(repr=False)
    per_level: np.ndarray = field(repr=False)
    extra: dict = field(default_factory=dict)

    def frozen(self) -> QueryCounters:
        """These counters with read-only arrays, so a result's telemetry, built on first read, reports
        what the call counted."""
        for array in (self.per_query, self.per_level, *self.extra.values()):
            if isinstance(array, np.ndarray):
                array.flags.writeable = False
        return self

    @classmethod
    def without_levels(cls, per_query: np.ndarray, extra: dict) -> QueryCounters:
        """Counters of a call that walked no tree (dense paths, brute force)."""
        return cls(per_query, np.zeros((0, N_LEVEL_COUNTERS), dtype=np.int64), extra)


@dataclass(frozen=True, eq=False)
class KnnResult:
    """Neighbours of each query, sorted by (distance, index), plus the work counters and telemetry."""

    indices: np.ndarray
    distances: np.ndarray
    counters: QueryCounters = field(repr=False)
    seconds: float = 0.0
    describe: Callable[[QueryCounters], dict] | None = field(default=None, repr=False, kw_only=True)
    """Builds the telemetry record from the counters (None with telemetry off)."""

    @cached_property
    def telemetry(self) -> dict | None:
        """The telemetry record of the call (None with telemetry off), built on first read."""
        return None if self.describe is None else self.describe(self.counters)

    def __iter__(self):
        """Refused: ``d, i = tree.query(...)``, written as for scipy's cKDTree.query (distances first), took
        the indices for the distances without a word when a result unpacked in its field order."""
        raise TypeError("a KnnResult does not unpack: read result.indices and result.distances by name "
                        "(CoverTree.kneighbors returns (distances, indices), as scipy and scikit-learn do)")


class Engine(Protocol):
    name: str
    uses_tree: bool

    def available(self) -> bool:
        """Whether this engine can run here (e.g. its compiled extension is importable)."""

    def telemetry_mode(self, config: Config) -> str:
        """The 'mode' field of this engine's telemetry records."""

    def build(self, space: MetricSpace, order: np.ndarray, config: Config) -> Tree | None:
        """Build the tree over `space`, inserting points in `order`."""

    def query(
        self, tree: Tree | None, space: MetricSpace, queries: QuerySet, k: int, config: Config
    ) -> tuple[np.ndarray, np.ndarray, QueryCounters]:
        """Exact k-NN of every query by the tree walk: (indices, distances, counters)."""

    def dense(
        self, space: MetricSpace, queries: QuerySet, k: int, config: Config
    ) -> tuple[np.ndarray, np.ndarray, QueryCounters]:
        """Exact k-NN of every query without a tree (tree engines only; see covertreex.paths)."""

    # Optional: ``box_screen(space, config) -> bool``, whether the dense path may screen `space` by boxes
    # of points (covertreex.paths.choose then prices it by its own cost model); absent means no.
