"""One pytest run's pcct state: the selected engines and their pairs, shared datasets, the parity matrix,
and the settings and telemetry of the test that is running.

Created at configure time only when engines are selected; every requested engine is created then, so an
unknown or unavailable engine stops the run with a usage error naming it, never a skip.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields, replace

import numpy as np
import pytest

from covertreex.errors import CovertreexError, InvalidInputError, UnknownNameError, unknown_name
from pytest_pcct.parity.assertions import (
    DEFAULT_ATOL,
    DEFAULT_RTOL,
    MODES,
    KnnComparison,
    assert_telemetry_equal,
    assert_telemetry_valid,
    compare_knn,
    plain_record,
)
from pytest_pcct.parity.datasets import Problem, ProblemCache
from pytest_pcct.parity.engines import (
    Answer,
    EngineHandle,
    EngineRegistry,
    EngineUnavailable,
    UnsupportedProblemError,
    call_arguments,
    check_record_consistent,
    hold_to_named_schema,
    is_rejection,
    require_unchanged,
)
from pytest_pcct.parity.report import Cell, ParityMatrix
from pytest_pcct.parity.selection import Selection


@dataclass(frozen=True)
class ParitySettings:
    """How pcct_engine_pair.check compares answers; set per test with @pytest.mark.pcct_parity(...)."""

    mode: str = "exact"
    rtol: float = DEFAULT_RTOL
    atol: float = DEFAULT_ATOL
    telemetry: bool = True
    repeat: bool = False
    """Ask each engine a second time and require the same bits (see :func:`answer_again_differs`)."""

    def __post_init__(self):
        if self.mode not in MODES:
            raise unknown_name("mode", self.mode, MODES)
        for name in ("rtol", "atol"):
            value = getattr(self, name)
            finite = isinstance(value, (int, float)) and not isinstance(value, bool) and 0 <= value < 1e308
            if not finite:
                raise InvalidInputError(f"{name} must be a finite number >= 0, got {value!r}")
        for name in ("telemetry", "repeat"):
            if not isinstance(getattr(self, name), bool):
                raise InvalidInputError(f"{name} must be True or False, got {getattr(self, name)!r}")

    @classmethod
    def from_markers(cls, markers) -> ParitySettings:
        """The settings of a test's pcct_parity markers, closest first (``item.iter_markers``): merged
        keyword by keyword, the closest one's value winning, so a module's ``rtol=0`` still holds under a
        function's ``mode="tolerance"`` (the closest marker alone silently put rtol back to 1e-9)."""
        known = [f.name for f in fields(cls)]
        merged = {}
        for marker in reversed(list(markers)):
            unknown = sorted(set(marker.kwargs) - set(known))
            if marker.args or unknown:
                raise InvalidInputError(
                    f"pcct_parity takes keyword arguments {', '.join(known)} only; got "
                    f"{'positional arguments ' + repr(marker.args) if marker.args else unknown}"
                )
            merged.update(marker.kwargs)
        return cls(**merged)

    def overridden(self, **values) -> ParitySettings:
        """These settings with every non-None value of `values` replacing the field it names."""
        return replace(self, **{k: v for k, v in values.items() if v is not None})


class TelemetryLog:
    """Telemetry records of one test: every record an engine returned (already schema-checked), plus
    records the test adds itself with :meth:`add`."""

    def __init__(self):
        self.entries: list[tuple[str, dict]] = []

    @property
    def records(self) -> list[dict]:
        return [record for _, record in self.entries]

    def for_engine(self, name: str) -> list[dict]:
        return [record for engine, record in self.entries if engine == name]

    def add(self, record: dict, *, engine: str = "", schema: str | None = None) -> dict:
        """Validate `record` (default schema: covertreex query telemetry) and keep it as the JSON data it
        stands for: the checks an engine's record meets (JSON values only, no NaN; a covertreex record's
        counters consistent), which a record added here skipped."""
        __tracebackhide__ = True
        label = f"telemetry record of {engine}" if engine else "telemetry record"
        record = plain_record(record, label)
        assert_telemetry_valid(record, schema=schema, label=label)
        hold_to_named_schema(record, schema, label)
        check_record_consistent(record, None, label)
        self.entries.append((engine, record))
        return record

    def write_jsonl(self, path) -> None:
        from covertreex.telemetry import write_jsonl

        write_jsonl(path, self.records)


@dataclass
class _RunningTest:
    settings: ParitySettings
    telemetry: TelemetryLog = field(default_factory=TelemetryLog)


@dataclass(frozen=True, eq=False)
class PairOutcome:
    """Both answers of a pair check and how they compared."""

    reference: Answer
    candidate: Answer
    comparison: KnnComparison
    status: str


class EnginePair:
    """An ordered (reference, candidate) pair of selected engines."""

    def __init__(self, session: PcctSession, reference: EngineHandle, candidate: EngineHandle):
        self._session = session
        self.reference = reference
        self.candidate = candidate

    @property
    def id(self) -> str:
        return f"{self.reference.name}-{self.candidate.name}"

    def __repr__(self) -> str:
        return f"<pcct engine pair {self.id}>"

    def check(
        self, problem: Problem, k: int, *, mode=None, rtol=None, atol=None, telemetry=None, repeat=None
    ) -> PairOutcome:
        """Run both engines on `problem`, assert their answers are equal and record the outcome in the
        parity matrix. Defaults come from the test's pcct_parity marker; with telemetry on, engines of one
        telemetry group must also report equal counters; with repeat on, each engine must answer a second
        call with the same bits."""
        __tracebackhide__ = True
        settings = self._session.settings().overridden(mode=mode, rtol=rtol, atol=atol, telemetry=telemetry,
                                                       repeat=repeat)
        k = call_arguments(problem, k)  # a bad argument is the test's mistake: no cell
        key = (self.reference.name, self.candidate.name, problem.label, k)
        try:
            require_unchanged(problem)  # once, then both refusals, before either engine runs
            for engine in (self.reference, self.candidate):
                engine.refuse_unsupported(problem)
            tolerance = (settings.rtol, settings.atol)
            ref = self.reference.answer_supported(problem, k, tolerance)
            got = self.candidate.answer_supported(problem, k, tolerance)
            asked = ((ref, self.reference), (got, self.candidate)) if settings.repeat else ()
            again = [(first, engine.answer_supported(problem, k, tolerance, record=False))
                     for first, engine in asked]
        except (UnsupportedProblemError, KeyboardInterrupt):  # the plugin's refusal (a skip), a user's stop
            raise
        except BaseException as exc:
            # An untruthful or ill-formed answer, or an engine that raised, is a failed cell, then the
            # failure; BaseExceptions too: an engine's SystemExit failed the test but left no cell in the
            # report. A refused draw of a Hypothesis test is no cell either.
            if is_rejection(exc):
                raise
            first = (str(exc).splitlines() or [""])[0]
            failure = first if isinstance(exc, AssertionError) else f"{type(exc).__name__}: {first}"
            self._session.matrix.add(key, Cell("failed", math.nan, 1, {problem.digest}, failure=failure))
            raise
        labels = (ref.engine, got.engine)
        comparison = compare_knn(ref, got, rtol=settings.rtol, atol=settings.atol, labels=labels)
        passed = comparison.passes(settings.mode)
        group = self.reference.spec.telemetry_group
        same_group = group is not None and group == self.candidate.spec.telemetry_group
        counters, counter_error = "not compared", None
        if passed and settings.telemetry and same_group:
            try:
                assert_telemetry_equal(ref, got, labels=labels)
                counters = "equal"
            except AssertionError as exc:
                counters, counter_error = "differ", exc
        message = None if passed else comparison.message(settings.mode)
        if passed:  # the comparison's own failure first: it says more
            message = next(filter(None, (answer_again_differs(*pair) for pair in again)), None)
            passed = message is None
        status = comparison.status if passed else "failed"
        counter_message = None if counter_error is None else f"answers agree but {counter_error}"
        failure = message.splitlines()[0] if message else counter_message and counter_message.splitlines()[0]
        self._session.matrix.add(key, Cell(status, comparison.max_abs_diff, 1, {problem.digest}, counters,
                                           failure=failure))
        where = f"{self.id} on {problem.label}, k={k}"
        if message is not None:
            raise AssertionError(f"{where}:\n{message}")
        if counter_message is not None:
            raise AssertionError(f"{where}: {counter_message}")
        return PairOutcome(ref, got, comparison, status)


def answer_again_differs(first: Answer, again: Answer) -> str | None:
    """Why `again`, an engine's answer to a second identical call, is not `first` bit for bit (None if
    it is). Opt-in (``repeat=True``): tolerance mode lets an engine break a boundary tie its own way, and
    an engine choosing at random passed every check; but an engine whose GPU or threaded reductions round
    differently from run to run is correct in tolerance mode and would fail it."""
    differ = ((first.indices != again.indices).any(axis=1)
              | (first.distances.view(np.int64) != again.distances.view(np.int64)).any(axis=1))
    rows = np.flatnonzero(differ)
    if rows.size == 0:
        return None
    row = int(rows[0])
    return (f"engine {first.engine!r} answered the same problem differently when asked again ({rows.size} "
            f"rows differ; the first, query row {row}: indices {first.indices[row].tolist()}, then "
            f"{again.indices[row].tolist()}; distances {first.distances[row].tolist()}, then "
            f"{again.distances[row].tolist()})")


_CONFIGURE_ERRORS = (Exception, pytest.skip.Exception, pytest.fail.Exception, SystemExit)
"""What a registration hook or an engine's factory may raise that ends in a usage error: pytest's skip (say
``importorskip`` of a missing library), fail and xfail, and SystemExit, are BaseExceptions that at
configure time ended in an INTERNALERROR (pytest.exit's is an Exception). KeyboardInterrupt stays the
user's."""


def _raised(exc: BaseException) -> str:
    """`exc` named for a usage error; a skip tried at configure time also says what to do instead."""
    told = f"{type(exc).__name__}: {exc}"
    if isinstance(exc, pytest.skip.Exception):
        told += (" (a factory whose engine cannot run here raises pytest_pcct.parity.engines."
                 "EngineUnavailable: a usage error naming it)")
    return told


class PcctSession:
    """The pcct state of one pytest run (one per xdist worker, merged on the controller)."""

    def __init__(self, selection: Selection, register_hook):
        self.selection = selection
        self.matrix = ParityMatrix()
        self.problems = ProblemCache()
        self.registry = EngineRegistry()
        try:
            register_hook(registry=self.registry)
        except _CONFIGURE_ERRORS as exc:  # every mistake in a registration hook: a usage error
            raise pytest.UsageError(
                f"pytest-pcct: engine registration failed: {_raised(exc)}"
            ) from None
        if selection.oracle is not None:
            try:
                self.registry.choose_oracle(selection.oracle)
            except CovertreexError as exc:
                raise pytest.UsageError(f"pytest-pcct: --pcct-oracle / ini pcct_oracle: {exc}") from None
        self._handles: dict[str, EngineHandle] = {}
        self._running: _RunningTest | None = None
        for name in selection.engines:
            self._handles[name] = self._create(name, f"requested by {selection.source}")

    def _create(self, name: str, why: str) -> EngineHandle:
        try:
            return self.registry.create(name, self._collect, tolerance=self._tolerance)
        except UnknownNameError:
            known = ", ".join(self.registry.names()) or "none"
            raise pytest.UsageError(
                f"pytest-pcct: unknown engine {name!r} {why}; registered engines: {known}"
            ) from None
        except EngineUnavailable as exc:
            raise pytest.UsageError(
                f"pytest-pcct: engine {name!r} {why} is not available here: {exc}"
            ) from None
        except _CONFIGURE_ERRORS as exc:
            raise pytest.UsageError(
                f"pytest-pcct: engine {name!r} {why} could not be created: {_raised(exc)}"
            ) from exc

    def _collect(self, answer: Answer) -> None:
        if self._running is not None and answer.telemetry is not None:
            self._running.telemetry.entries.append((answer.engine, answer.telemetry))

    def _tolerance(self) -> tuple[float, float]:
        settings = self.settings()
        return settings.rtol, settings.atol

    def engine(self, name: str) -> EngineHandle:
        return self._handles[name]

    def pair(self, names: tuple[str, str]) -> EnginePair:
        return EnginePair(self, self._handles[names[0]], self._handles[names[1]])

    def oracle(self) -> EngineHandle:
        spec = self.registry.oracle()
        if spec is None:
            raise InvalidInputError("no oracle engine is registered (register one with oracle=True)")
        if spec.name not in self._handles:
            self._handles[spec.name] = self._create(spec.name, "as the oracle")
        return self._handles[spec.name]

    def begin_test(self, settings: ParitySettings) -> None:
        self._running = _RunningTest(settings)

    def end_test(self) -> None:
        self._running = None

    def settings(self) -> ParitySettings:
        return self._running.settings if self._running is not None else ParitySettings()

    def telemetry_log(self) -> TelemetryLog:
        if self._running is None:
            raise InvalidInputError("pcct_telemetry is only available while a test runs")
        return self._running.telemetry
