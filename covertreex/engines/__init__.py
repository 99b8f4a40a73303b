"""The engine registry: one name -> factory table; unknown names list the known ones.

The shared interface (:mod:`covertreex.engines.base`, which needs NumPy) is imported on first use, so
listing engine names stays cheap.
"""

from __future__ import annotations

from collections.abc import Callable
from importlib import import_module
from typing import TYPE_CHECKING

from covertreex.errors import InputTypeError, InvalidInputError, unknown_name

if TYPE_CHECKING:
    from covertreex.engines.base import Engine


def _gold() -> Engine:
    from covertreex.engines.gold import GoldEngine

    return GoldEngine()


def _rust() -> Engine:
    from covertreex.engines.rust import RustEngine

    return RustEngine()


def _brute() -> Engine:
    from covertreex.engines.brute import BruteEngine

    return BruteEngine()


ENGINES: dict[str, Callable[[], Engine]] = {"gold": _gold, "rust": _rust, "brute": _brute}
TREE_ENGINES = ("gold", "rust")
"""Engines that walk a tree and also have the dense path (listed so callers need not import them)."""
_INSTANCES: dict[str, Engine] = {}


def get_engine(name: str) -> Engine:
    """The engine registered as `name`; raises if the name is unknown or the engine cannot run here."""
    if not engine_available(name):
        raise InvalidInputError(f"engine {name!r} is registered but not available here")
    return _INSTANCES[name]


def engine_available(name: str) -> bool:
    """Whether the engine registered as `name` can run here."""
    if not isinstance(name, str):
        raise InputTypeError(f"engine must be a name (str), got {type(name).__name__} {name!r}")
    if name not in ENGINES:
        raise unknown_name("engine", name, ENGINES)
    if name not in _INSTANCES:
        _INSTANCES[name] = ENGINES[name]()
    return _INSTANCES[name].available()


def engine_names() -> list[str]:
    return sorted(ENGINES)


_BASE_NAMES = ("Engine", "KnnResult", "QueryCounters")


def __getattr__(name: str):
    if name not in _BASE_NAMES:
        raise AttributeError(f"module 'covertreex.engines' has no attribute {name!r}")
    return getattr(import_module("covertreex.engines.base"), name)


__all__ = [
    "ENGINES", "TREE_ENGINES", "Engine", "KnnResult", "QueryCounters", "engine_available", "engine_names",
    "get_engine",
]
