"""The work counters' columns, named once (DESIGN section 7; fields in docs/telemetry.md).

Engines fill counter rows column by column, telemetry and the CLI read them by name. A member's value is
its column and its :attr:`field` the telemetry field it becomes. The Rust core names the same columns
(rust/core/src/counters.rs) and its extension exports them; tests/engines check that both sides agree.
"""

from __future__ import annotations

from enum import IntEnum


class _Column(IntEnum):
    @property
    def field(self) -> str:
        """The telemetry field this column is reported as."""
        return self.name.lower()


class QueryCounter(_Column):
    """Columns of the per-query counter rows (one row per query)."""

    DISTANCE_EVALUATIONS = 0
    HEAP_PUSHES = 1
    PRUNES = 2
    DEDUPE_HITS = 3
    FRONTIER_STEPS = 4
    BLOCKS = 5
    EMPTY_BLOCKS = 6
    EARLY_STOPS = 7
    GUARD_CHECKS = 8
    CACHE_SKIPS = 9


class LevelCounter(_Column):
    """Columns of the per-level counter rows (one row per tree level, root's first, then duplicates)."""

    FRONTIER = 0
    DISTANCE_EVALUATIONS = 1
    HEAP_PUSHES = 2
    PRUNES = 3
    BLOCKS = 4
    CACHE_SKIPS = 5


N_QUERY_COUNTERS = len(QueryCounter)
N_LEVEL_COUNTERS = len(LevelCounter)
