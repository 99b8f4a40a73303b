"""The brute engine: the exhaustive oracle (a canonical scan, or dense screening for large inputs)."""

from __future__ import annotations

from contextlib import nullcontext

import numpy as np

from covertreex.blas import one_thread
from covertreex.config import Config
from covertreex.counters import N_QUERY_COUNTERS, QueryCounter
from covertreex.engines.base import QueryCounters
from covertreex.engines.brute.gemm import gemm_query
from covertreex.engines.brute.kernels import scan_all
from covertreex.engines.threads import numba_threads
from covertreex.interrupts import deferring
from covertreex.metrics import MetricSpace, QuerySet

GEMM_MIN_PAIRS = 1 << 22  # 'auto' switches to dense screening from this many query x point pairs


class BruteEngine:
    name = "brute"
    uses_tree = False

    def available(self) -> bool:
        return True

    def telemetry_mode(self, config: Config) -> str:
        return "oracle"

    def build(self, space: MetricSpace, order: np.ndarray, config: Config) -> None:
        return None

    @deferring
    def query(self, tree, space: MetricSpace, queries: QuerySet, k: int, config: Config):
        variant = config.brute_variant
        if variant == "auto":
            variant = "gemm" if queries.n_queries * space.n_points >= GEMM_MIN_PAIRS else "direct"
        with numba_threads(config.threads):
            if variant == "direct":
                idx, dist, evaluations, pushes = scan_all(
                    space.data, queries.data, queries.rows, queries.dataset_index, queries.limit, k
                )
                extra = {"path": "exhaustive"}
            else:
                # its products on one BLAS thread when a thread count is given: OpenBLAS took every core
                # under threads=1 (an outside trial); they only screen, so their bits never matter
                with one_thread() if config.threads is not None else nullcontext():
                    idx, dist, evaluations, pushes, screened = gemm_query(space, queries, k,
                                                                          config.gemm_block)
                extra = {"path": "dense", "screened": screened}
        per_query = np.zeros((queries.n_queries, N_QUERY_COUNTERS), dtype=np.int64)
        per_query[:, QueryCounter.DISTANCE_EVALUATIONS] = evaluations
        per_query[:, QueryCounter.HEAP_PUSHES] = pushes
        return idx, dist, QueryCounters.without_levels(per_query, extra)
