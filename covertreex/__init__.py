"""covertreex: exact k-NN with compressed cover trees, Euclidean and Vecchia residual correlation.

The public names below are imported on first use (PEP 562), so ``import covertreex.errors`` or ``pcct
--help`` never pays for Numba or SciPy.
"""

from importlib import import_module

__version__ = "0.1.0"

_HOMES = {
    "CoverTree": "covertreex.api",
    "KNOBS": "covertreex.config",
    "Config": "covertreex.config",
    "KnnResult": "covertreex.engines",
    "engine_available": "covertreex.engines",
    "engine_names": "covertreex.engines",
    "get_engine": "covertreex.engines",
    "ResidualProblem": "covertreex.residual",
    "residual_problem": "covertreex.residual",
    "Tree": "covertreex.tree",
    "load": "covertreex.tree",
    "validate": "covertreex.tree",
    "VecchiaNeighbors": "covertreex.vecchia",
    "vecchia_neighbors": "covertreex.vecchia",
}
"""Each public name and the module that defines it."""
_SUBMODULES = ("distributed",)
"""Submodules reachable as attributes after ``import covertreex`` (imported on first use)."""

__all__ = sorted(_HOMES)


def __getattr__(name: str):
    if name in _SUBMODULES:
        return import_module(f"covertreex.{name}")
    if name not in _HOMES:
        raise AttributeError(f"module 'covertreex' has no attribute {name!r}")
    from covertreex.resources import require_importable_numba_threads

    require_importable_numba_threads()  # the homes may import Numba
    value = getattr(import_module(_HOMES[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_HOMES, *_SUBMODULES})
