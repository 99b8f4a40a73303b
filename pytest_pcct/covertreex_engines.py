"""covertreex's engines (gold, rust, brute and any later one) registered as pytest-pcct engines.

Tree engines are registered twice: under their own name on the tree path (``path='tree'``: the walk whose
counters the parity group compares), and as ``<name>-dense`` on the dense path (GEMM screening with a
canonical re-check), so the parity matrix proves dense == tree == brute on every dataset; and rust's box
screen (perf mode) as ``rust-boxes``, for Euclidean problems of at most 8 coordinates only (this repo's
parity matrix leaves it out, where every residual case would be a skip; tests/covertreex/test_box_screen.py
draws the same generated cases for it).

Registration goes through the same ``pytest_pcct_register_engines`` hook other projects use. Every name in
:func:`covertreex.engine_names` is registered; whether it can run here is decided when it is selected
(``covertreex.get_engine`` raising turns into :class:`~pytest_pcct.parity.engines.EngineUnavailable`).
"""

from __future__ import annotations

from collections import OrderedDict

import numpy as np

from covertreex.kinds import METRICS, QUERY_KINDS
from pytest_pcct.parity.datasets import Problem
from pytest_pcct.parity.engines import Capabilities, EngineRegistry, EngineUnavailable

ORACLE = "brute"
PARITY_GROUP = {"gold": "covertreex-parity", "rust": "covertreex-parity"}
"""Engines whose work counters are equal field by field in parity mode (DESIGN section 7)."""
_TREES_KEPT = 8
EVERYTHING = Capabilities(metrics=METRICS, problems=QUERY_KINDS)
BOX_SCREEN = "rust-boxes"
"""The rust dense path on its box screen (rust/core/src/dense/boxes.rs)."""


class CovertreexEngine:
    """Adapter: fits ``covertreex.CoverTree`` once per indexed dataset and answers queries with it."""

    def __init__(self, name: str, engine: str | None = None, **options):
        self.name = name
        self.engine = engine or name
        self.options = options
        self._fitted: OrderedDict = OrderedDict()

    def _tree(self, problem: Problem):
        from covertreex import CoverTree

        # the same V given as a factor of its kernel or not is answered by different paths (covertreex.api)
        key = (problem.data_digest, problem.residual is None or problem.residual.factor_of_kernel)
        tree = self._fitted.pop(key, None)
        if tree is None:
            tree = CoverTree(engine=self.engine, metric=problem.metric, **self.options)
            tree.fit(problem.residual if problem.residual is not None else problem.points)
        self._fitted[key] = tree
        while len(self._fitted) > _TREES_KEPT:
            self._fitted.popitem(last=False)
        return tree

    def __call__(self, problem: Problem, k: int):
        """The k nearest neighbours; for k > n, all n of them padded with (-1, inf) to k columns (covertreex
        itself rejects k > n)."""
        tree = self._tree(problem)
        listed = min(k, problem.n_points)
        if problem.predecessor:
            answer = tree.query(k=listed, predecessor=True)
        elif problem.queries is not None:
            answer = tree.query(problem.queries, listed)
        else:
            answer = tree.query(indices=problem.query_indices, k=listed)
        if listed == k:
            return answer
        pad = ((0, 0), (0, k - listed))
        return (np.pad(answer.indices, pad, constant_values=-1),
                np.pad(answer.distances, pad, constant_values=np.inf), answer.telemetry)


def _factory(name: str, engine: str, **options):
    def make() -> CovertreexEngine:
        from covertreex import get_engine
        from covertreex.errors import InvalidInputError

        try:
            get_engine(engine)
        except InvalidInputError as exc:
            raise EngineUnavailable(str(exc)) from exc
        return CovertreexEngine(name, engine, **options)

    return make


def register(registry: EngineRegistry) -> None:
    """Register every covertreex engine (all answer every metric and problem kind) and the dense path of
    each tree engine as ``<name>-dense``; brute is the oracle."""
    from covertreex import engine_names
    from covertreex.engines import TREE_ENGINES
    from covertreex.telemetry import schema_resource

    for name in engine_names():
        path = {} if name == ORACLE else {"path": "tree"}
        registry.register(
            name, _factory(name, name, **path), oracle=name == ORACLE, telemetry_schema=schema_resource(),
            telemetry_group=PARITY_GROUP.get(name), capabilities=EVERYTHING,
        )
    for name in TREE_ENGINES:
        registry.register(
            f"{name}-dense", _factory(f"{name}-dense", name, path="dense"),
            telemetry_schema=schema_resource(), capabilities=EVERYTHING,
        )
    from covertreex.engines.rust import BOX_MAX_WIDTH

    registry.register(
        BOX_SCREEN, _factory(BOX_SCREEN, "rust", path="dense", mode="perf", dense_screen="boxes"),
        telemetry_schema=schema_resource(),
        capabilities=Capabilities(metrics=("euclidean",), problems=QUERY_KINDS, max_dims=BOX_MAX_WIDTH),
    )
