"""The kinds of question covertreex answers, each list written once: metrics, kernels and query kinds.

Plain tuples with no heavy imports, so the CLI and the pytest plugin can read them cheaply; everything
else that checks or offers one of these names imports it from here.
"""

METRICS = ("euclidean", "residual")
"""Distances of record (DESIGN section 3)."""

KERNELS = ("rbf", "matern52")
"""Stationary kernels of the residual-correlation metric."""

QUERY_KINDS = ("points", "indices", "predecessor")
"""Queries given as new coordinates, as indexed points, or every indexed point among its predecessors
(Vecchia ordering: point i may only have neighbours j < i)."""
