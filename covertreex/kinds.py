"""The kinds of question covertreex answers, each list written once: metrics, kernels, query kinds,
dataset generators and named Vecchia orderings.

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

DATASETS = ("gaussian", "clustered", "lattice", "duplicates")
"""Point generators of :mod:`covertreex.datasets` (the CLI's --dataset choices)."""

ORDERINGS = ("natural", "random", "maximin", "maximin-euclidean", "maximin-residual")
"""Named Vecchia orderings of :mod:`covertreex.vecchia_orderings` ('maximin' follows the metric)."""
