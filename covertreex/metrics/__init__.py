"""Canonical distances (Numba, float64, fixed operation order) and the metric-space wrapper engines use.

The names of the metrics and kernels live in :mod:`covertreex.kinds`; the jitted formulas in
:mod:`covertreex.metrics.kernels`, the data they read and V's building blocks (no Numba) in
:mod:`covertreex.metrics.data`. The metric space is imported on first use (PEP 562), which also lets
:mod:`covertreex.residual` import ``covertreex.metrics.data`` while the space imports residual.
"""

from importlib import import_module

_SPACE_NAMES = ("MetricSpace", "QuerySet")

__all__ = list(_SPACE_NAMES)


def __getattr__(name: str):
    if name not in _SPACE_NAMES:
        raise AttributeError(f"module 'covertreex.metrics' has no attribute {name!r}")
    return getattr(import_module("covertreex.metrics.space"), name)
