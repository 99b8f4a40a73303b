"""Canonical distances (Numba, float64, fixed operation order) and the metric-space wrapper engines use.

The names of the metrics and kernels are defined here, free of Numba and SciPy, for callers that only list
them (``pcct --help``, the plugin). The metric space is imported on first use (PEP 562), which also lets
:mod:`covertreex.residual` import ``covertreex.metrics.kernels`` while the space imports residual.
"""

from importlib import import_module

METRICS = ("euclidean", "residual")
KERNELS = ("rbf", "matern52")
"""Kernels of the residual metric (DESIGN section 3)."""

_SPACE_NAMES = ("MetricSpace", "QuerySet")

__all__ = ["KERNELS", "METRICS", *_SPACE_NAMES]


def __getattr__(name: str):
    if name not in _SPACE_NAMES:
        raise AttributeError(f"module 'covertreex.metrics' has no attribute {name!r}")
    return getattr(import_module("covertreex.metrics.space"), name)
