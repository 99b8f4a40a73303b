"""covertreex: exact k-NN with compressed cover trees, Euclidean and Vecchia residual correlation."""

from covertreex.api import CoverTree
from covertreex.config import KNOBS, Config
from covertreex.engines import KnnResult, engine_available, engine_names, get_engine
from covertreex.residual import ResidualProblem, residual_problem
from covertreex.tree import Tree, load, validate
from covertreex.vecchia import VecchiaNeighbors, vecchia_neighbors

__version__ = "0.1.0"

__all__ = [
    "KNOBS",
    "Config",
    "CoverTree",
    "KnnResult",
    "ResidualProblem",
    "Tree",
    "VecchiaNeighbors",
    "engine_available",
    "engine_names",
    "get_engine",
    "load",
    "residual_problem",
    "validate",
    "vecchia_neighbors",
]
