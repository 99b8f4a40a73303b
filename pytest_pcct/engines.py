"""The engine adapter interface and the registry the plugin looks engines up in.

An engine is any callable ``engine(problem, k)`` (see :class:`pytest_pcct.datasets.Problem`) that returns
``(indices, distances)``, ``(indices, distances, telemetry)`` or an object with ``.indices``,
``.distances`` and optionally ``.telemetry``: indices (n_queries, k) integers, distances float64, rows
sorted by (distance, index), padded with (-1, inf) where fewer than k points are eligible (k > n, or
predecessor rows), telemetry a dict or None. Every answer is checked on arrival against its problem
(:func:`pytest_pcct.truth.check_answer`: form, and the true distance of every listed index).
Engines are registered by name with a factory (called only when the engine is selected) through the
``pytest_pcct_register_engines(registry)`` hook.
A factory that cannot produce its engine here raises :class:`EngineUnavailable` with the reason.
Predecessor problems (``problem.predecessor``) reach only engines registered with ``predecessor=True``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np

from covertreex.errors import InputTypeError, InvalidInputError, unknown_name
from covertreex.validation import as_int
from pytest_pcct.assertions import DEFAULT_ATOL, DEFAULT_RTOL, assert_telemetry_valid
from pytest_pcct.datasets import Problem
from pytest_pcct.truth import check_answer


class EngineUnavailable(RuntimeError):
    """Raised by an engine factory when its engine cannot run here; the message says why."""


class UnsupportedProblemError(InvalidInputError):
    """A problem kind the engine was not registered for (e.g. predecessor queries), so its answer would
    be compared against a question it does not answer."""


@dataclass(frozen=True, eq=False)
class Answer:
    """One engine's answer: int64 indices and float64 distances (n_queries, k), its telemetry, and the
    problem it answers (so assertions can recompute true distances)."""

    indices: np.ndarray
    distances: np.ndarray
    telemetry: dict | None
    engine: str
    problem: Problem | None = None

    def __iter__(self):
        """Unpack as ``indices, distances``."""
        return iter((self.indices, self.distances))


@dataclass(frozen=True)
class EngineSpec:
    """How to make one registered engine, and how to treat its answers.

    oracle: answers are exact by construction (the reference for k-safety checks; at most one).
    telemetry_schema: 'package:path.json' every telemetry record must match (required to emit records).
    telemetry_group: engines sharing a group produce comparable counters, compared field by field.
    predecessor: the engine answers predecessor problems (row i among indices j < i, padded).
    """

    name: str
    factory: Callable[[], Callable]
    oracle: bool = False
    telemetry_schema: str | None = None
    telemetry_group: str | None = None
    predecessor: bool = False


class EngineRegistry:
    """Name -> :class:`EngineSpec`; filled by the ``pytest_pcct_register_engines`` hook."""

    def __init__(self):
        self._specs: dict[str, EngineSpec] = {}

    def register(
        self, name: str, factory: Callable[[], Callable], *, oracle: bool = False,
        telemetry_schema: str | None = None, telemetry_group: str | None = None, predecessor: bool = False,
    ) -> EngineSpec:
        """Register `factory` (no arguments -> engine callable) under `name`."""
        if not isinstance(name, str) or not name or any(c in name for c in ", \t\n"):
            raise InvalidInputError(f"engine name must be a non-empty word without commas, got {name!r}")
        if name in self._specs:
            raise InvalidInputError(f"engine {name!r} is already registered")
        if not callable(factory):
            raise InvalidInputError(f"factory of engine {name!r} must be callable, got {factory!r}")
        if not isinstance(predecessor, bool):
            raise InputTypeError(f"predecessor of engine {name!r} must be True or False, got {predecessor!r}")
        current = self.oracle()
        if oracle and current is not None:
            raise InvalidInputError(f"engine {name!r} cannot be the oracle: {current.name!r} already is")
        spec = EngineSpec(name, factory, oracle, telemetry_schema, telemetry_group, predecessor)
        self._specs[name] = spec
        return spec

    def names(self) -> list[str]:
        return sorted(self._specs)

    def spec(self, name: str) -> EngineSpec:
        if name not in self._specs:
            raise unknown_name("engine", name, self._specs)
        return self._specs[name]

    def oracle(self) -> EngineSpec | None:
        return next((s for s in self._specs.values() if s.oracle), None)

    def create(self, name: str, on_answer: Callable[[Answer], None] | None = None,
               **handle_options) -> EngineHandle:
        """Make the engine registered as `name`; raises EngineUnavailable if it cannot run here."""
        spec = self.spec(name)
        engine = spec.factory()
        if not callable(engine):
            raise InvalidInputError(f"factory of engine {name!r} returned {engine!r}, which is not callable")
        return EngineHandle(spec, engine, on_answer, **handle_options)


def _normalise(name: str, output, problem: Problem, k: int) -> Answer:
    if hasattr(output, "indices") and hasattr(output, "distances"):
        parts = (output.indices, output.distances, getattr(output, "telemetry", None))
    elif isinstance(output, (tuple, list)) and len(output) in (2, 3):
        parts = (*output, None) if len(output) == 2 else tuple(output)
    else:
        raise InvalidInputError(
            f"engine {name!r} returned {type(output).__name__}; expected (indices, distances[, telemetry]) "
            "or an object with .indices and .distances"
        )
    indices, distances, telemetry = np.asarray(parts[0]), np.asarray(parts[1]), parts[2]
    for what, arr in (("indices", indices), ("distances", distances)):
        if arr.shape != (problem.n_queries, k):
            raise InvalidInputError(
                f"engine {name!r} returned {what} of shape {arr.shape}, expected ({problem.n_queries}, {k})"
            )
    if telemetry is not None and not isinstance(telemetry, dict):
        raise InvalidInputError(f"engine {name!r} returned telemetry of type {type(telemetry).__name__}")
    return Answer(indices, distances, telemetry, name, problem)


class EngineHandle:
    """A created engine: runs it, checks what it returns against the problem and validates its telemetry.

    `tolerance` gives the (rtol, atol) within which a reported distance must equal the true one (the
    running test's pcct_parity settings, when a session provides them).
    """

    def __init__(self, spec: EngineSpec, engine: Callable, on_answer=None,
                 tolerance: Callable[[], tuple[float, float]] = lambda: (DEFAULT_RTOL, DEFAULT_ATOL)):
        self.spec = spec
        self._engine = engine
        self._on_answer = on_answer
        self._tolerance = tolerance

    @property
    def name(self) -> str:
        return self.spec.name

    def __repr__(self) -> str:
        return f"<pcct engine {self.name!r}>"

    def knn(self, problem: Problem, k: int) -> Answer:
        """The engine's k nearest neighbours of every query of `problem`."""
        __tracebackhide__ = True
        if not isinstance(problem, Problem):
            raise InvalidInputError(f"problem must be a pytest_pcct Problem, got {type(problem).__name__}")
        k = as_int(k, "k")
        if k < 1:
            raise InvalidInputError(f"k must be >= 1, got {k}")
        if problem.predecessor and not self.spec.predecessor:
            raise UnsupportedProblemError(
                f"engine {self.name!r} was not registered for predecessor problems ({problem.label}); "
                "register it with predecessor=True once it answers them (row i among indices j < i, "
                "padded with (-1, inf))"
            )
        answer = _normalise(self.name, self._engine(problem, k), problem, k)
        rtol, atol = self._tolerance()
        check_answer(answer.indices, answer.distances, problem, rtol=rtol, atol=atol,
                     label=f"engine {self.name!r} on {problem.label}, k={k}")
        answer = replace(answer, indices=answer.indices.astype(np.int64, copy=False))
        if answer.telemetry is not None:
            if self.spec.telemetry_schema is None:
                raise InvalidInputError(
                    f"engine {self.name!r} returned a telemetry record but was registered without "
                    "telemetry_schema, so the record cannot be validated"
                )
            assert_telemetry_valid(
                answer.telemetry, schema=self.spec.telemetry_schema,
                label=f"telemetry record of engine {self.name!r}",
            )
        if self._on_answer is not None:
            self._on_answer(answer)
        return answer
