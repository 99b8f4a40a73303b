"""The engine adapter interface and the registry the plugin looks engines up in.

An engine is any callable ``engine(problem, k)`` (see :class:`pytest_pcct.parity.datasets.Problem`) that
returns ``(indices, distances)``, ``(indices, distances, telemetry)`` or an object with ``.indices``,
``.distances`` and optionally ``.telemetry``: indices (n_queries, k) integers, distances float64, rows
sorted by (distance, index), padded with (-1, inf) where fewer than k points are eligible (k > n, or
predecessor rows), telemetry a dict or None. Every answer is checked on arrival against its problem
(:func:`pytest_pcct.parity.truth.check_answer`: form, and the true distance of every listed index).
Engines are registered by name with a factory (called only when the engine is selected) through the
``pytest_pcct_register_engines(registry)`` hook.
A factory that cannot produce its engine here raises :class:`EngineUnavailable` with the reason.
Each engine declares what it answers (:class:`Capabilities`: metrics and problem kinds); asked anything
else it raises :class:`UnsupportedProblemError`, which the plugin reports as a skip naming the reason;
inside a Hypothesis test the drawn problem is rejected instead (:meth:`EngineHandle.require_support`).
"""

from __future__ import annotations

import sys
import unittest
from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np
import pytest

from covertreex.digest import query_digest
from covertreex.errors import InputTypeError, InvalidInputError, unknown_name
from covertreex.kinds import METRICS, QUERY_KINDS
from covertreex.scalars import as_int
from pytest_pcct.parity import fpenv
from pytest_pcct.parity.assertions import (
    DEFAULT_ATOL,
    DEFAULT_RTOL,
    assert_telemetry_valid,
    checked_tolerances,
    plain_record,
)
from pytest_pcct.parity.datasets import Problem
from pytest_pcct.parity.truth import check_answer

try:
    from builtins import BaseExceptionGroup
except ImportError:  # Python 3.10: the backport pytest depends on there
    from exceptiongroup import BaseExceptionGroup


class EngineUnavailable(RuntimeError):
    """Raised by an engine factory when its engine cannot run here; the message says why."""


class UnsupportedProblemError(InvalidInputError):
    """A metric or problem kind the engine was not registered for: a question it does not answer, so the
    plugin skips the test (with this message) rather than failing the engine. Only the plugin raises it,
    before calling the engine; an engine raising it itself fails (:class:`EngineFailure`)."""


def _escape(exc: BaseException) -> str | None:
    """What `exc`, raised inside an engine's call, would do to the test instead of failing it, or None: a
    skip (pytest.skip, importorskip, unittest's SkipTest), an expected failure (pytest.xfail), the end of
    the run with its own exit code (pytest.exit), or a rejected Hypothesis example (assume, reject), each
    also inside an exception group (pytest unwraps a group of skips into a skip). Any of them would let a
    wrong engine's run end green."""
    if isinstance(exc, BaseExceptionGroup):
        return next(filter(None, map(_escape, exc.exceptions)), None)
    if isinstance(exc, pytest.xfail.Exception):
        return "xfail the test"
    if isinstance(exc, (pytest.skip.Exception, unittest.SkipTest)):
        return "skip the test"
    if isinstance(exc, pytest.exit.Exception):
        return "end the run (pytest.exit)"
    hypothesis_errors = sys.modules.get("hypothesis.errors")  # loaded by Hypothesis if anything can raise it
    if hypothesis_errors is not None and isinstance(exc, hypothesis_errors.UnsatisfiedAssumption):
        return "reject the Hypothesis example (assume or reject)"
    return None


class EngineFailure(AssertionError):
    """An engine misbehaved on a problem it was registered for in a way no answer check sees: it refused
    the problem by raising :class:`UnsupportedProblemError` itself, or tried to skip or xfail the test, end
    the run or reject a Hypothesis example from inside its call (each would otherwise turn its failure into
    a green run), or it changed the problem or the floating-point environment."""


def _names(values, kind: str, known: tuple[str, ...]) -> tuple[str, ...]:
    if isinstance(values, str) or not values:
        raise InvalidInputError(f"{kind}s must be a non-empty list of names, got {values!r}")
    for value in values:
        if value not in known:
            raise unknown_name(kind, value, known)
    return tuple(v for v in known if v in values)


@dataclass(frozen=True)
class Capabilities:
    """What an engine answers: metrics (euclidean, residual), problem kinds (points, indices, predecessor)
    and, where it has a limit, the most coordinates a point may have. The default is Euclidean queries by
    coordinates or by index, of any dimension."""

    metrics: tuple[str, ...] = ("euclidean",)
    problems: tuple[str, ...] = ("points", "indices")
    max_dims: int | None = None

    def __post_init__(self):
        object.__setattr__(self, "metrics", _names(self.metrics, "metric", METRICS))
        object.__setattr__(self, "problems", _names(self.problems, "problem kind", QUERY_KINDS))
        if self.max_dims is not None:
            object.__setattr__(self, "max_dims", as_int(self.max_dims, "max_dims"))
            if self.max_dims < 1:
                raise InvalidInputError(f"max_dims must be >= 1 (or None: any dimension), got "
                                        f"{self.max_dims}")

    def refusal(self, problem: Problem) -> str | None:
        """Why an engine with these capabilities cannot answer `problem`, or None."""
        if problem.metric not in self.metrics:
            return f"the {problem.metric} metric (it supports {', '.join(self.metrics)})"
        if problem.kind not in self.problems:
            return f"{problem.kind} problems (it supports {', '.join(self.problems)})"
        if self.max_dims is not None and problem.n_dims > self.max_dims:
            return f"points of {problem.n_dims} coordinates (it supports at most {self.max_dims})"
        return None


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

    oracle: answers are exact by construction (the default oracle of k-safety checks; at most one).
    telemetry_schema: 'package:path.json' every telemetry record must match (required to emit records).
    telemetry_group: engines sharing a group produce comparable counters, compared field by field.
    capabilities: the metrics and problem kinds the engine answers.
    """

    name: str
    factory: Callable[[], Callable]
    oracle: bool = False
    telemetry_schema: str | None = None
    telemetry_group: str | None = None
    capabilities: Capabilities = Capabilities()


def _check_schema(engine: str, resource) -> None:
    """Load and check `resource` when the engine is registered: a misspelt schema would otherwise pass
    every run in which the engine happens to return no record."""
    from covertreex import schema

    if not isinstance(resource, str):
        raise InputTypeError(f"telemetry_schema of engine {engine!r} must be a 'package:path.json' string, "
                             f"got {type(resource).__name__}")
    try:
        schema.validator(resource)
    except InvalidInputError as exc:  # CorruptFileError stays one
        raise type(exc)(f"telemetry_schema of engine {engine!r}: {exc}") from exc


class EngineRegistry:
    """Name -> :class:`EngineSpec`; filled by the ``pytest_pcct_register_engines`` hook."""

    def __init__(self):
        self._specs: dict[str, EngineSpec] = {}
        self._oracle: str | None = None

    def register(
        self, name: str, factory: Callable[[], Callable], *, oracle: bool = False,
        telemetry_schema: str | None = None, telemetry_group: str | None = None,
        capabilities: Capabilities | None = None,
    ) -> EngineSpec:
        """Register `factory` (no arguments -> engine callable) under `name`, answering `capabilities`."""
        if not isinstance(name, str) or not name or any(c in name for c in ", \t\n"):
            raise InvalidInputError(f"engine name must be a non-empty word without commas, got {name!r}")
        if name in self._specs:
            raise InvalidInputError(f"engine {name!r} is already registered")
        if not callable(factory):
            raise InvalidInputError(f"factory of engine {name!r} must be callable, got {factory!r}")
        if not isinstance(oracle, bool):
            raise InputTypeError(f"oracle of engine {name!r} must be True or False, got {oracle!r}")
        capabilities = Capabilities() if capabilities is None else capabilities
        if not isinstance(capabilities, Capabilities):
            raise InputTypeError(f"capabilities of engine {name!r} must be a pytest_pcct.parity.engines."
                                 f"Capabilities, got {type(capabilities).__name__}")
        if telemetry_schema is not None:
            _check_schema(name, telemetry_schema)
        if telemetry_group is not None and (not isinstance(telemetry_group, str) or not telemetry_group):
            raise InputTypeError(f"telemetry_group of engine {name!r} must be a non-empty string or None, "
                                 f"got {telemetry_group!r}")
        if oracle and self._oracle is not None:
            raise InvalidInputError(
                f"engine {name!r} cannot be the oracle: {self._oracle!r} already is; register it without "
                "oracle=True and choose it with --pcct-oracle or the ini option pcct_oracle"
            )
        spec = EngineSpec(name, factory, oracle, telemetry_schema, telemetry_group, capabilities)
        self._specs[name] = spec
        if oracle:
            self._oracle = name
        return spec

    def choose_oracle(self, name: str) -> None:
        """Make the registered engine `name` the oracle (a project replacing the default one)."""
        self._oracle = self.spec(name).name

    def names(self) -> list[str]:
        return sorted(self._specs)

    def spec(self, name: str) -> EngineSpec:
        if name not in self._specs:
            raise unknown_name("engine", name, self._specs)
        return self._specs[name]

    def oracle(self) -> EngineSpec | None:
        return None if self._oracle is None else self._specs[self._oracle]

    def create(self, name: str, on_answer: Callable[[Answer], None] | None = None,
               **handle_options) -> EngineHandle:
        """Make the engine registered as `name`; raises EngineUnavailable if it cannot run here."""
        spec = self.spec(name)
        engine = spec.factory()
        _check_environment(f"after the factory of engine {name!r} ran")
        if not callable(engine):
            raise InvalidInputError(f"factory of engine {name!r} returned {engine!r}, which is not callable")
        return EngineHandle(spec, engine, on_answer, **handle_options)


def _check_environment(when: str) -> None:
    """Fail when the floating-point environment is not the default, after putting the default back where
    the C library allows it (so that one engine's change does not fail every later test too)."""
    __tracebackhide__ = True
    found = fpenv.changes()
    if found:
        restored = "; the default was put back" if fpenv.restore() else ""
        raise EngineFailure(f"{when}, {fpenv.described(found)}{restored}")


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
    # Copies: an engine may hand out a buffer it reuses (a C library's static result), which would
    # overwrite this answer under the comparison.
    indices, distances, telemetry = np.array(parts[0]), np.array(parts[1]), parts[2]
    for what, arr in (("indices", indices), ("distances", distances)):
        if arr.shape != (problem.n_queries, k):
            raise InvalidInputError(
                f"engine {name!r} returned {what} of shape {arr.shape}, expected ({problem.n_queries}, {k})"
            )
    if telemetry is not None:
        if not isinstance(telemetry, dict):
            raise InvalidInputError(f"engine {name!r} returned telemetry of type {type(telemetry).__name__}")
        telemetry = plain_record(telemetry, f"telemetry record of engine {name!r}")
    return Answer(indices, distances, telemetry, name, problem)


def _tolerance_pair(tolerance) -> tuple[float, float]:
    try:
        rtol, atol = tolerance
    except (TypeError, ValueError):
        raise InputTypeError(f"tolerance must be an (rtol, atol) pair, got {tolerance!r}") from None
    return checked_tolerances(*(value.item() if isinstance(value, np.generic) else value
                                for value in (rtol, atol)))


def _check_record_describes(record: dict, problem: Problem, k: int, label: str) -> None:
    """A covertreex query record names the call it counted; one naming another call (a record kept from an
    earlier call, or made up) is valid against the schema, so it is compared with the call here. Its k may
    be capped at the number of points (an engine that pads a short answer counts what it listed)."""
    __tracebackhide__ = True
    from covertreex.telemetry import SCHEMA_NAME, SCHEMA_VERSION

    if record.get("schema") != SCHEMA_NAME:
        return
    if record.get("query_digest") is None:
        raise AssertionError(f"{label} is a version {record.get('schema_version')!r} record, which does not "
                             f"name its queries: a record checked against a call must name them "
                             f"(query_digest, version {SCHEMA_VERSION})")
    expected = {"metric": problem.metric, "n_points": problem.n_points, "n_dims": problem.n_dims,
                "n_queries": problem.n_queries, "predecessor": problem.predecessor,
                "dataset_digest": problem.data_digest, "query_digest": problem.query_digest}
    if problem.residual is not None:
        expected["kernel"] = problem.residual.kernel
    if problem.kind == "indices" and record.get("query_digest") != problem.query_digest:
        at_points = query_digest("points", problem.query_points)  # an adapter may query their coordinates
        if record.get("query_digest") == at_points:
            expected["query_digest"] = at_points
    wrong = [f"{name} {record.get(name)!r} (the call: {value!r})"
             for name, value in expected.items() if record.get(name) != value]
    if record.get("k") not in {k, min(k, problem.n_points)}:
        wrong.append(f"k {record.get('k')!r} (the call: {k})")
    if wrong:
        raise AssertionError(f"{label} describes another call: " + ", ".join(wrong))


def hold_to_named_schema(record: dict, registered: str | None, label: str) -> None:
    """A record naming covertreex's schema is held to it (the version it names) whatever schema its engine
    registered (`registered`; None: covertreex's, which validated it already): one without counters
    raised KeyError in the consistency check, or failed as 'describes another call'."""
    __tracebackhide__ = True
    from covertreex.telemetry import SCHEMA_NAME, schema_resource, validation_errors

    if record.get("schema") != SCHEMA_NAME or registered in (None, schema_resource()):
        return
    problems = validation_errors(record)
    if problems:
        raise AssertionError(f"{label} names covertreex's schema but does not match it: "
                             + "; ".join(problems[:5]))


def check_record_consistent(record: dict, indices: np.ndarray | None, label: str) -> None:
    """A covertreex query record's counters must agree with each other and with the answer (`indices`;
    None: a record without one): the schema checks each number alone, so an engine outside a telemetry
    group (whose counters no peer checks) passed with zeroed counters, a total unlike its per-level rows, a
    spread whose min exceeds its max, or a count of 1e290 (an integral float is an integer to JSON
    Schema). The record meets covertreex's schema (:func:`hold_to_named_schema`). Fields an older schema
    version lacks are not asked for."""
    __tracebackhide__ = True
    from covertreex.telemetry import LEVEL_FIELDS, SCHEMA_NAME

    if record.get("schema") != SCHEMA_NAME:
        return
    counters, per_query, n = record["counters"], record.get("per_query", {}), record["n_queries"]
    wrong = [f"counters.{name} = {value!r} is not an integer below 2**63" for name, value in counters.items()
             if type(value) is not int or not 0 <= value < 2**63]
    visited = counters["distance_evaluations"] + counters.get("dedupe_hits", 0)
    if counters.get("nodes_visited", visited) != visited:
        wrong.append(f"counters.nodes_visited = {counters['nodes_visited']} is not distance_evaluations + "
                     f"dedupe_hits = {visited}")
    listed = 0 if indices is None else int((indices >= 0).sum())
    if visited < listed:
        wrong.append(f"the answer lists {listed} neighbours but the record visited {visited} nodes")
    for name, spread in per_query.items():
        total = counters.get(name, 0)
        if not spread["min"] <= spread["mean"] <= spread["max"] or not (
                n * spread["min"] <= total <= n * spread["max"]):
            wrong.append(f"per_query.{name} {spread} cannot spread counters.{name} = {total} over {n} "
                         "queries")
    levels = record.get("levels") or [{}]  # no rows (dense path, brute): nothing to sum
    for name in LEVEL_FIELDS:
        if name in counters and name in levels[0]:
            rows = sum(level[name] for level in levels)
            if rows != counters[name]:
                wrong.append(f"counters.{name} = {counters[name]} but the levels' rows sum to {rows}")
    if wrong:
        raise AssertionError(f"{label} contradicts itself: " + "; ".join(wrong))


def is_rejection(exc: BaseException) -> bool:
    """Whether `exc` is Hypothesis rejecting the drawn example (what :meth:`EngineHandle.require_support`
    raises inside a property test for a problem an engine refuses)."""
    errors = sys.modules.get("hypothesis.errors")
    return errors is not None and isinstance(exc, errors.UnsatisfiedAssumption)


def require_unchanged(problem: Problem) -> None:
    """Fail on a problem changed since it was made, before any refusal of it: an engine that turned a
    problem into a kind the other engine refuses would otherwise turn the tests after it into skips."""
    __tracebackhide__ = True
    changed = sorted(problem.changed_fields())
    if changed:
        problem.change_told()
        raise EngineFailure(f"{', '.join(changed)} of {problem.label} changed after it was made (by an "
                            "engine that failed on it before, or by the test), so no answer to it can be "
                            "checked")


def call_arguments(problem, k) -> int:
    """k of a call on `problem`, both checked: a pytest_pcct Problem and an integer >= 1."""
    if not isinstance(problem, Problem):
        raise InvalidInputError(f"problem must be a pytest_pcct Problem, got {type(problem).__name__}")
    k = as_int(k, "k")
    if k < 1:
        raise InvalidInputError(f"k must be >= 1, got {k}")
    return k


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

    def supports(self, problem: Problem) -> bool:
        """Whether the engine answers `problem` (its metric and kind are among its capabilities)."""
        return self.spec.capabilities.refusal(problem) is None

    def require_support(self, problem: Problem) -> None:
        """:func:`require_unchanged`, then :meth:`refuse_unsupported`."""
        __tracebackhide__ = True
        require_unchanged(problem)
        self.refuse_unsupported(problem)

    def refuse_unsupported(self, problem: Problem) -> None:
        """Refuse a problem outside the engine's Capabilities: UnsupportedProblemError, a skip; but inside a
        Hypothesis test the draw is rejected (``hypothesis.reject``), so Hypothesis draws others and fails
        (Unsatisfiable) if it finds none the engines answer. Raised there, the refusal skipped the whole
        property test at the first such draw: the default ``knn_cases()`` draws both metrics, the default
        Capabilities cover Euclidean only, and a wrong engine passed with nothing compared."""
        __tracebackhide__ = True
        refusal = self.spec.capabilities.refusal(problem)
        if refusal is None:
            return
        hypothesis = sys.modules.get("hypothesis")
        if hypothesis is not None and hypothesis.currently_in_test_context():
            hypothesis.reject()
        raise UnsupportedProblemError(
            f"engine {self.name!r} was not registered for {refusal}: {problem.label}")

    def knn(self, problem: Problem, k: int, *, tolerance: tuple[float, float] | None = None) -> Answer:
        """The engine's k nearest neighbours of every query of `problem`, checked against it with
        `tolerance` (rtol, atol; default: the running test's)."""
        __tracebackhide__ = True
        k = call_arguments(problem, k)
        tolerance = self._tolerance() if tolerance is None else _tolerance_pair(tolerance)
        self.require_support(problem)
        return self.answer_supported(problem, k, tolerance)

    def answer_supported(self, problem: Problem, k: int, tolerance: tuple[float, float], *,
                         record: bool = True) -> Answer:
        """:meth:`knn` after its arguments were checked (:func:`call_arguments`) and the problem found
        unchanged and supported: for a caller that does that once for both engines of a pair. `record`
        False: the answer is not handed on (a repeated call's telemetry is not the test's twice)."""
        __tracebackhide__ = True
        rtol, atol = tolerance
        _check_environment(f"before engine {self.name!r} was called on {problem.label}, k={k}")
        try:
            # its answer is read inside the guard too (a property, __array__, or its telemetry's items may
            # skip), into plain arrays and a plain JSON record that nothing of the engine's runs in later
            answer = _normalise(self.name, self._engine(problem, k), problem, k)
        except UnsupportedProblemError as exc:
            raise EngineFailure(
                f"engine {self.name!r} raised UnsupportedProblemError on {problem.label}, k={k}, a problem "
                f"it was registered for ({exc}); declare what it answers with Capabilities when registering "
                "it"
            ) from exc
        except BaseException as exc:
            escape = _escape(exc)
            if escape is None:
                raise
            raise EngineFailure(
                f"engine {self.name!r} tried to {escape} on {problem.label}, k={k} ({exc}); an engine "
                "answers or fails, and the plugin alone skips, for the problems its Capabilities leave out "
                "(an engine that cannot run here raises EngineUnavailable from its factory)"
            ) from exc
        _check_environment(f"after engine {self.name!r} answered {problem.label}, k={k}")
        changed = sorted(problem.changed_fields())
        if changed:
            problem.change_told()
            raise EngineFailure(f"engine {self.name!r} changed {', '.join(changed)} of {problem.label} "
                                f"(k={k}); an engine must leave its input unchanged")
        check_answer(answer.indices, answer.distances, problem, rtol=rtol, atol=atol,
                     label=f"engine {self.name!r} on {problem.label}, k={k}")
        answer = replace(answer, indices=answer.indices.astype(np.int64, copy=False),
                         distances=answer.distances.astype(np.float64, copy=False))  # native byte order
        if answer.telemetry is not None:
            if self.spec.telemetry_schema is None:
                raise InvalidInputError(
                    f"engine {self.name!r} returned a telemetry record but was registered without "
                    "telemetry_schema, so the record cannot be validated"
                )
            label = f"telemetry record of engine {self.name!r}"
            assert_telemetry_valid(answer.telemetry, schema=self.spec.telemetry_schema, label=label)
            hold_to_named_schema(answer.telemetry, self.spec.telemetry_schema, label)
            where = f"{label} on {problem.label}, k={k}"
            _check_record_describes(answer.telemetry, problem, k, where)
            check_record_consistent(answer.telemetry, answer.indices, where)
        if record and self._on_answer is not None:
            self._on_answer(answer)
        return answer
