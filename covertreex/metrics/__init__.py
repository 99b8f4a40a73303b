"""Canonical distances (Numba, float64, fixed operation order) and the metric-space wrapper engines use."""

from covertreex.metrics.space import METRICS, MetricSpace, QuerySet

__all__ = ["METRICS", "MetricSpace", "QuerySet"]
