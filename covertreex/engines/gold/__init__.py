"""The gold engine: the readable Numba reference every other engine is judged against."""

from __future__ import annotations

import numba
import numpy as np

from covertreex.config import Config
from covertreex.engines.base import QueryCounters
from covertreex.engines.gold.batch import build_tree_batch
from covertreex.engines.gold.build import build_tree
from covertreex.engines.gold.dense import dense_query
from covertreex.engines.gold.query import query_batch
from covertreex.engines.schedule import Schedule
from covertreex.engines.threads import numba_threads
from covertreex.errors import InvalidInputError
from covertreex.interrupts import check, deferring
from covertreex.metrics import MetricSpace, QuerySet
from covertreex.tree import Tree, assemble

QUERY_ROWS_PER_THREAD = 128
"""Queries per thread in one compiled call of the tree walk (8 parallel tasks of query.CHUNK each, so
the last task of a call leaves the others little to wait for): Ctrl-C is taken between two calls
(:func:`covertreex.interrupts.check`), never after a whole batch."""


class GoldEngine:
    name = "gold"
    uses_tree = True

    def available(self) -> bool:
        return True

    def telemetry_mode(self, config: Config) -> str:
        return "parity"

    @deferring
    def build(self, space: MetricSpace, order: np.ndarray, config: Config) -> Tree:
        if config.build_for(space.metric) == "batch":
            with numba_threads(config.threads):
                levels, parents, radius, evaluations = build_tree_batch(space.data, order, config.build_block)
        else:
            levels, parents, radius, evaluations = build_tree(space.data, order)
        return assemble(levels, parents, radius, order, space, evaluations)

    @deferring
    def query(self, tree: Tree, space: MetricSpace, queries: QuerySet, k: int, config: Config):
        arrays, schedule, parts = tree.arrays(), Schedule.of(config), []
        with numba_threads(config.threads):
            per_call = QUERY_ROWS_PER_THREAD * numba.get_num_threads()
            for start in range(0, max(queries.n_queries, 1), per_call):
                rows = slice(start, start + per_call)
                idx, dist, per_level, per_query = query_batch(
                    arrays, space.data, queries.data, schedule, queries.rows[rows],
                    queries.dataset_index[rows], queries.limit[rows], k,
                )
                parts.append((idx, dist, per_level.sum(axis=0), per_query))
                check()
        idx, dist, per_level, per_query = zip(*parts, strict=True)
        return (np.concatenate(idx), np.concatenate(dist),
                QueryCounters(np.concatenate(per_query), sum(per_level), {"path": "tree"}))

    @deferring
    def dense(self, space: MetricSpace, queries: QuerySet, k: int, config: Config):
        """The dense path: NumPy BLAS tiles, a Numba screening epilogue, canonical re-check (the f64
        screen: the split and the boxes are the rust engine's)."""
        if config.dense_screen not in ("auto", "f64"):
            raise InvalidInputError(f"dense_screen={config.dense_screen!r} runs on the rust engine only (in "
                                    "perf mode); the gold engine screens with the f64 GEMM")
        with numba_threads(config.threads):
            idx, dist, per_query, screened, gemm_seconds = dense_query(
                space, queries, k, config.dense_query_block, config.dense_point_block,
                workers=numba.get_num_threads(),
            )
        extra = {"path": "dense", "screened": screened, "gemm_seconds": gemm_seconds}
        return idx, dist, QueryCounters.without_levels(per_query, extra)
