"""The schedule of a tree walk: the knobs that change which work a query does and in what order, never its
answer (DESIGN section 5). Both tree engines take them as one object, read once from the Config."""

from __future__ import annotations

from typing import NamedTuple

from covertreex.config import Config


class Schedule(NamedTuple):
    """The schedule knobs of :class:`covertreex.config.Config`, by the same names (Numba and the Rust
    extension read the fields)."""

    predecessor_pruning: bool
    child_reordering: bool
    best_first: bool
    early_stop: bool
    block_sizing: bool
    level_cache: bool

    @classmethod
    def of(cls, config: Config) -> Schedule:
        return cls(*(getattr(config, name) for name in cls._fields))
