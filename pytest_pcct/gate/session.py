"""One test session of the regression gate: settings, fail-closed checks and the verdict of each benchmark.

The plugin calls in at three points per gated test: :meth:`GateSession.blocker` before setup (an error
there is a test *error* carrying the command that fixes it), :meth:`GateSession.judge` right after the test
body (a regression fails that test, in its call phase), and the ``pcct_gate`` fixture, through which the
test hands over its work counters (:class:`GateRecorder`).
"""

from __future__ import annotations

import math
import os
import platform
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

from pytest_pcct.gate import callgrind
from pytest_pcct.gate import commands as gate_commands
from pytest_pcct.gate import rules as gate
from pytest_pcct.gate.baselines import (
    CALIBRATION_KEY,
    IDENTITY,
    PAIRED_KEY,
    CounterBaseline,
    CounterStore,
    TimingStore,
    counter_problem,
    cpu_identity,
    has_type,
    machine_facts,
    now,
)
from pytest_pcct.gate.errors import CorruptFileError, GateError, GateInputError, GateTypeError
from pytest_pcct.gate.paired import PairedTiming
from pytest_pcct.output_paths import baselines_directory

MODES = ("all", "counters", "instructions", "off")
INSTRUCTION_SCHEMA = (f"callgrind.instructions ({platform.python_implementation()} "
                      f"{platform.python_version()})")
"""Counter schema of the stored instruction counts (the other identity fields are the work counters'). It
names the interpreter, patch release included: a count under another Python is not comparable (its bytecode
and runtime are other code) and is refused as such, with the re-record command, not judged."""
INSTRUCTION_TOLERANCE = 0.01
"""Default relative tolerance of an instruction count: callgrind counts repeat to a few parts per million for
the same code (allocator and hash-table growth move a little); a 1% change is code, not noise."""


@dataclass(frozen=True)
class GateSettings:
    """Resolved options (command line over ini)."""

    mode: str
    update: bool
    threshold: float
    noise_floor: float
    directory: Path
    report: Path | None

    @classmethod
    def from_config(cls, config) -> GateSettings:
        def pick(option: str):
            value = config.getoption(option)
            return config.getini(option) if value is None else value

        def named(option: str) -> str:
            """How the user set `option`, for an error: the flag, or the ini key when no flag was given."""
            flag = "--" + option.replace("_", "-")
            return flag if config.getoption(option) is not None else f"ini {option}"

        mode = pick("pcct_gate") or "all"  # unset: opted in by requesting pcct_gate
        if mode not in MODES:
            raise GateInputError(f"--pcct-gate must be one of {', '.join(MODES)}, got {mode!r}")
        report = config.getoption("pcct_gate_report")
        return cls(
            mode=mode,
            update=bool(config.getoption("pcct_update_baselines")),
            threshold=gate.parse_threshold(pick("pcct_time_threshold"), named("pcct_time_threshold")),
            noise_floor=gate.parse_noise_floor(pick("pcct_noise_floor"), named("pcct_noise_floor")),
            directory=baselines_directory(config),
            report=Path(config.invocation_params.dir, report) if report else None,
        )

    @property
    def timing(self) -> bool:
        return self.mode == "all"

    @property
    def instructions(self) -> bool:
        return self.mode == "instructions"


@dataclass(frozen=True)
class Limits:
    """What one test allows: counter tolerance, slowdown threshold, noise floor (markers over defaults), and
    the relative tolerance of its instruction count (None: no instruction leg; marker pcct_instructions)."""

    tolerance: float | dict
    threshold: float
    noise_floor: float
    instructions: float | None = None

    @classmethod
    def of(cls, item, settings: GateSettings) -> Limits:
        counters = _marker_kwargs(item, "pcct_counters", {"tolerance"})
        time = _marker_kwargs(item, "pcct_time", {"threshold", "noise_floor"})
        instructions = _marker_kwargs(item, "pcct_instructions", {"tolerance"})
        opted_in = item.get_closest_marker("pcct_instructions") is not None
        return cls(
            gate.parse_tolerance(counters.get("tolerance", 0.0), "pcct_counters(tolerance=...)"),
            gate.parse_threshold(time.get("threshold", settings.threshold), "pcct_time(threshold=...)"),
            gate.parse_noise_floor(time.get("noise_floor", settings.noise_floor),
                                   "pcct_time(noise_floor=...)"),
            gate.parse_tolerance(instructions.get("tolerance", INSTRUCTION_TOLERANCE),
                                 "pcct_instructions(tolerance=...)") if opted_in else None,
        )


def _marker_kwargs(item, name: str, allowed: set) -> dict:
    mark = item.get_closest_marker(name)
    if mark is None:
        return {}
    unknown = sorted(set(mark.kwargs) - allowed)
    if mark.args or unknown:
        raise GateInputError(
            f"@pytest.mark.{name} takes only keyword arguments {sorted(allowed)}; got "
            f"{list(mark.args) + unknown}"
        )
    return dict(mark.kwargs)


@dataclass
class Recorded:
    counters: dict
    identity: dict


class GateRecorder:
    """What the ``pcct_gate`` fixture returns: the test reports its work counters here."""

    def __init__(self):
        self.recorded: Recorded | None = None

    def record(self, counters, *, engine: str, dataset_digest: str, config_digest: str, schema: str,
               schema_version: int) -> None:
        """Record this benchmark's work counters and the identity they are valid for (call once). Both are
        checked here by the rules the baseline reader applies: a value it would refuse must never be saved."""
        if self.recorded is not None:
            raise GateInputError("pcct_gate.record: counters were already recorded for this test")
        if not isinstance(counters, Mapping):
            raise GateTypeError("pcct_gate.record: counters must be a mapping of counter names to ints, e.g. "
                                f"{{'steps': 40000}}, got {counters!r:.40}")
        clean = {str(name): value for name, value in counters.items()}
        if not clean:
            raise GateInputError("pcct_gate.record: counters is empty")
        for name, value in clean.items():
            problem = counter_problem(name, value)
            if problem:
                raise GateInputError(f"pcct_gate.record: {problem}")
        identity = {"engine": engine, "dataset_digest": dataset_digest, "config_digest": config_digest,
                    "schema": schema, "schema_version": schema_version}
        for key, kind in IDENTITY.items():
            if not has_type(identity[key], kind):
                raise GateTypeError(f"pcct_gate.record: {key} must be a {kind.__name__}, got "
                                    f"{identity[key]!r:.40}")
        self.recorded = Recorded(clean, identity)

    def record_telemetry(self, record: dict) -> None:
        """Record the ``counters`` of a covertreex query telemetry record, with its identity fields."""
        if not isinstance(record, dict) or "counters" not in record:
            raise GateInputError("pcct_gate.record_telemetry needs a telemetry record (telemetry=True)")
        self.record(record["counters"], engine=record["engine"], dataset_digest=record["dataset_digest"],
                    config_digest=record["config_digest"], schema=record["schema"],
                    schema_version=record["schema_version"])


WALL_CLOCKS = frozenset(f"{module}{name}{unit}" for module in ("", "time.")
                        for name in ("perf_counter", "time", "monotonic") for unit in ("", "_ns"))
"""Timers whose rounds include other processes' load, as pytest-benchmark names them ('perf_counter' its
default, 'time.perf_counter' one given by --benchmark-timer)."""


def _inside(nodeid: str, holder: str) -> bool:
    """Whether the test `nodeid` is collected under `holder`: a module's node id, or a directory's (the
    root directory's is empty)."""
    path = nodeid.split("::")[0]
    return path == holder or not holder or path.startswith(holder + "/")


@dataclass
class GateSession:
    settings: GateSettings
    args: tuple
    rootpath: Path
    bench: object = None
    """pytest-benchmark's BenchmarkSession (created after this object, attached by the plugin)."""
    gated: set = field(default_factory=set)
    counted: set = field(default_factory=set)
    """Gated tests marked pcct_instructions: the only ones an instructions run judges."""
    time_only: set = field(default_factory=set)
    """Gated tests judged on time alone (marked pcct_time without requesting pcct_gate: no counters)."""
    calibration_id: str | None = None
    collected: dict = field(default_factory=dict)
    """Node id of each module and class collected -> the node ids it held, before any selection."""
    results: list = field(default_factory=list)
    calibration: dict | None = None
    calibration_kernel: tuple | None = None
    """(function, args, kwargs) the calibration test timed; every gated benchmark's rounds pair with it."""
    xdist: bool = False
    notes: list = field(default_factory=list)
    problems: list = field(default_factory=list)
    warnings: list = field(default_factory=list)
    """Inconclusive time verdicts of the current test, for the plugin to raise as pytest warnings."""
    drift_notes: list = field(default_factory=list)
    """Calibrations of the current test that moved beyond rules.CALIBRATION_DRIFT, likewise."""
    stale_found: dict = field(default_factory=dict)
    report_written: bool = False
    """Whether --pcct-gate-report's file was written (the summary says so only then)."""
    _timing: tuple | None = None

    def __post_init__(self):
        self.counters = CounterStore(self.settings.directory / "counters")
        self.instructions = CounterStore(self.settings.directory / "instructions")

    @cached_property
    def _processor(self) -> str | None:
        """This machine's cpu_identity, read once: pytest-benchmark's machine info costs 0.2 s a reading."""
        return cpu_identity(self.bench.get_machine_info())

    # -- where the baselines are -----------------------------------------------------------------
    def timing_store(self) -> TimingStore:
        storage = getattr(self.bench.storage, "path", None)
        if storage is None:
            raise GateInputError("the time gate needs pytest-benchmark file storage (--benchmark-storage)")
        return TimingStore(Path(storage) / self.bench.machine_id)

    def timing_baseline(self) -> tuple[dict, list]:
        """(fullname -> entry, files) of the run ``--benchmark-compare`` selected, read strictly once."""
        if self._timing is None:
            try:
                self._timing = (*self.timing_store().load(self.bench.compare), None)
            except GateError as exc:
                self._timing = ({}, [], str(exc))
        entries, files, error = self._timing
        if error:
            raise CorruptFileError(error)
        return entries, files

    # -- fail closed -------------------------------------------------------------------------------
    def _session_blocker(self) -> str | None:
        """A reason no gated test can be judged in this session, with the command that fixes it."""
        s, bench, args = self.settings, self.bench, self.args
        if bench is None:
            return "pytest-benchmark is not active (was it disabled with -p no:benchmark?)"
        if bench.skip:
            return ("--benchmark-skip skips the benchmarks the gate must judge; drop it:\n  "
                    + gate_commands.timed_command(args, s.timing))
        if s.instructions:
            return self._instructions_blocker()
        if not s.timing:
            return None
        if os.environ.get("PYTEST_XDIST_WORKER") or self.xdist:
            return ("timing under pytest-xdist is not trustworthy (workers share the cores, and "
                    "pytest-benchmark disables timing there). Run serially:\n  "
                    + gate_commands.serial_command(args)
                    + "\nor gate work counters only:\n  " + gate_commands.counters_command(args))
        if bench.disabled:
            return ("benchmarks are disabled (--benchmark-disable), so there is no timing to judge. Run:\n  "
                    + gate_commands.timed_command(args, time_gate=True)
                    + "\nor gate work counters only:\n  " + gate_commands.counters_command(args))
        if self.calibration_id is None:
            return ("no calibration benchmark (a test marked pcct_calibration) is selected; the time gate "
                    "measures every benchmark relative to it in the same run. Select it too, e.g. run the "
                    "whole benchmark directory.")
        if not s.update and not bench.compare:
            return ("the time gate compares with a stored pytest-benchmark run: add --benchmark-compare:\n  "
                    + gate_commands.command(args, add=("--benchmark-compare",)))
        try:
            self.timing_store().saved_runs()  # the one committed run (or none yet), whatever is selected
        except GateError as exc:
            return str(exc)
        return None

    def save_refusal(self) -> str | None:
        """Why this session must not start at all: the time gate with pytest-benchmark saving the run.
        A saved run lands where --benchmark-compare takes the next run's baselines from, a regression
        included, and pytest-benchmark saves it even when every gated test errors; so this is a usage
        error before any test runs, not a per-test one."""
        bench = self.bench
        if not self.settings.timing or bench is None or not (bench.save or bench.autosave):
            return None
        if self.settings.update:
            return ("--pcct-update-baselines saves the timing baselines itself; drop "
                    "--benchmark-save/--benchmark-autosave")
        return ("--benchmark-save/--benchmark-autosave would store this run, regressions included, where "
                "the time gate takes its baselines from, and the next run would compare with it; timing "
                "baselines change only through --pcct-update-baselines. Run:\n  "
                + gate_commands.command(self.args, drop=gate_commands.SAVING,
                                        add=gate_commands.compared(self.args)))

    def _instructions_blocker(self) -> str | None:
        if os.environ.get("PYTEST_XDIST_WORKER") or self.xdist:
            return ("instruction counts are taken serially under callgrind; run without xdist:\n  "
                    + gate_commands.instructions_command(self.args))
        if not callgrind.under_callgrind():
            return ("this session is not running under callgrind (the gate relaunches a command-line run "
                    "itself; an in-process run cannot be). Run:\n  "
                    + gate_commands.instructions_command(self.args))
        return None

    def _skips(self, nodeid: str) -> bool:
        """Whether this mode has nothing of `nodeid` to judge."""
        if self.settings.instructions:
            return nodeid not in self.counted
        untimed = nodeid in self.time_only or nodeid == self.calibration_id
        return untimed and not self.settings.timing

    def blocker(self, item) -> str | None:
        """Why the gated test `item` cannot be judged (an error naming the fix), or None."""
        nodeid = item.nodeid
        if self._skips(nodeid):
            return None
        reason = self._session_blocker()
        if reason or nodeid == self.calibration_id:
            return reason
        try:
            limits = Limits.of(item, self.settings)
            if not self.settings.update:
                return self._baseline_blocker(nodeid, limits)
        except GateError as exc:
            return str(exc)
        return None

    def _fix(self) -> str:
        return gate_commands.update_command(self.args, self.settings.mode)

    def _baseline_blocker(self, nodeid: str, limits: Limits) -> str | None:
        try:
            judges_counters = nodeid not in self.time_only and not self.settings.instructions
            if judges_counters and self.counters.load(nodeid) is None:
                return (f"no work-counter baseline for {nodeid} (expected "
                        f"{self.counters.path_for(nodeid)}). Record it with:\n  {self._fix()}")
            if (self.settings.instructions and limits.instructions is not None
                    and self.instructions.load(nodeid) is None):
                return (f"no instruction-count baseline for {nodeid} (expected "
                        f"{self.instructions.path_for(nodeid)}). Record it with:\n  {self._fix()}")
            if self.settings.timing:
                entries, files = self.timing_baseline()
                if nodeid not in entries:
                    if not files and self.bench.compare is not True and self.timing_store().saved_runs():
                        return (f"no timing baseline for {nodeid}: {self._no_selected_run()}. Select one "
                                "by its number (--benchmark-compare=0001) or its whole name, without "
                                "'.json', or give --benchmark-compare alone")
                    where = ", ".join(map(str, files)) or self._no_selected_run()
                    return f"no timing baseline for {nodeid} ({where}). Record it with:\n  {self._fix()}"
                self._stored_timing(nodeid)
        except CorruptFileError as exc:
            return f"{exc}\nRepair or delete the file, then re-record the baselines with:\n  {self._fix()}"
        return None

    def _no_selected_run(self) -> str:
        store, selector = self.timing_store(), self.bench.compare
        saved = store.saved_runs()
        if selector is True or not saved:
            return f"no saved run in {store.directory}"
        return (f"--benchmark-compare={selector} selects none of the saved runs in {store.directory} "
                f"({', '.join(run.name for run in saved)})")

    def skipped(self, nodeid: str, reason: str, what: str = "skipped") -> str | None:
        """The failure a skip (or xfail: `what`) of the gated test `nodeid` becomes (None when this mode
        has nothing of it to judge): a skipped benchmark is never judged, so a skip that starts to happen
        in CI would hide any regression behind a passing run."""
        if self._skips(nodeid):
            return None
        verb = "record its baselines" if self.settings.update else "judge it"
        message = (f"{nodeid} was {what} ({reason}), so the gate cannot {verb}: a skipped benchmark would "
                   "hide any regression. To leave it out of a run on purpose, deselect it (-k, -m or "
                   "--deselect)")
        self.add_error(nodeid, message)
        return message

    def skipped_modules(self, skipped: dict[str, str]) -> str | None:
        """The failure of a session in which test modules holding baselines this mode judges were skipped
        while collected (`skipped`: module node id -> reason): their tests never reached the gate."""
        try:
            store = self.instructions if self.settings.instructions else self.counters
            names = set(store.stored())
            if self.settings.timing and getattr(getattr(self.bench, "storage", None), "path", None):
                names |= set(self.timing_store().load(True)[0])
        except GateError as exc:
            return str(exc)
        hidden = {n: holder for n in names for holder in skipped if _inside(n, holder)}
        if not hidden:
            return None
        holders = sorted(set(hidden.values()))
        reasons = "; ".join(f"{holder or '.'} ({skipped[holder]})" for holder in holders)
        return (f"{len(hidden)} benchmark(s) with baselines were not judged: their module or directory was "
                f"skipped while collected: {reasons}. A skipped benchmark would hide any regression; to "
                "leave a module or directory out on purpose, --ignore it (-k and --deselect act after "
                "collection, when the skip has happened)")

    # -- after the test body ----------------------------------------------------------------------
    def judge(self, item, recorder: GateRecorder | None, benchmark) -> str | None:
        """Record or check one gated test; return the failure message of a regression, or None."""
        before = len(self.results)
        message = self._judge(item, recorder, benchmark)
        if message and len(self.results) == before:
            self.add_error(item.nodeid, message)
        return message

    def _judge(self, item, recorder: GateRecorder | None, benchmark) -> str | None:
        nodeid = item.nodeid
        if self._skips(nodeid):
            return None
        timing = _timing_of(benchmark) if self.settings.timing else None
        if self.settings.timing and timing is None:
            if getattr(getattr(benchmark, "fixture", None), "stats", None) is not None:
                return (f"{nodeid} ran pytest-benchmark's fixture through another fixture that holds it (a "
                        "wrapper), not through its own `benchmark` argument, which is where the gate times "
                        "paired rounds: call benchmark(...) from the test itself")
            return f"{nodeid} did not call benchmark(...), so there is no timing to gate"
        if nodeid == self.calibration_id:
            if timing is not None:
                self.calibration_kernel = getattr(benchmark, "kernel", None)
                self.calibration = {**timing, "kernel": getattr(benchmark, "fingerprint", None)}
                self._add(nodeid, "calibration", "passed",
                          time={"calibration_seconds": timing["median"]})
                if timing["timer"] in WALL_CLOCKS:
                    self.notes.append(
                        f"the benchmarks time with {timing['timer']}, a wall clock: on a loaded machine "
                        "other processes' work enters the rounds and an unchanged benchmark can fail; "
                        "--benchmark-timer=time.process_time times this process's CPU alone (docs/plugin.md)")
            return None
        recorded = None if recorder is None else recorder.recorded
        if recorded is None and nodeid not in self.time_only:
            return (f"{nodeid} recorded no work counters: call pcct_gate.record(...) or "
                    "pcct_gate.record_telemetry(...) in the test (or gate it on time alone: mark it "
                    "pcct_time and do not request pcct_gate)")
        if timing is not None:
            if self.calibration is None:
                return "the calibration benchmark did not run before this test (did it fail?)"
            if timing["timer"] != self.calibration["timer"]:
                return (f"{nodeid} is timed with {timing['timer']} but the calibration with "
                        f"{self.calibration['timer']}; their ratio means nothing. Use one timer for both.")
            if "ratios" not in timing:
                return (f"{nodeid} was not timed in paired rounds: the calibration test handed no kernel to "
                        "benchmark(...)")
            benchmark.extra_info[CALIBRATION_KEY] = dict(self.calibration)
            benchmark.extra_info[PAIRED_KEY] = {k: timing[k] for k in ("ratios", "seconds", "calibration")}
        try:
            limits = Limits.of(item, self.settings)
            counted = self._instructions_of(nodeid, limits, recorded, benchmark)
            if self.settings.update:
                if recorded is not None and isinstance(limits.tolerance, dict):
                    gate.check_tolerance_names(limits.tolerance, recorded.counters)  # not only when checking
                return self._update(nodeid, recorded, counted)
            return self._check(nodeid, limits, recorded, timing, counted)
        except GateError as exc:
            return str(exc)
        except OSError as exc:  # a baseline file that cannot be read or written (read-only, disk full)
            return f"{nodeid}: a baseline file could not be read or written: {exc}"

    def _instructions_of(self, nodeid: str, limits: Limits, recorded: Recorded | None,
                         benchmark) -> Recorded | None:
        """This test's instruction count as a one-counter record with its own identity, or None when this
        session does not count instructions for it."""
        if not self.settings.instructions or limits.instructions is None:
            return None
        if recorded is None:
            raise GateInputError(f"{nodeid} is marked pcct_instructions but records no work counters: the "
                                 "instruction count is stored with their identity (engine, digests)")
        count = getattr(benchmark, "instructions", None)
        if count is None:
            raise GateInputError(f"{nodeid} did not call benchmark(...), so there is no instruction count")
        identity = {**recorded.identity, "schema": INSTRUCTION_SCHEMA, "schema_version": 1}
        return Recorded({"instructions": count}, identity)

    def _update(self, nodeid: str, recorded: Recorded | None, counted: Recorded | None) -> None:
        """Save this test's baseline: instruction counts in an instructions run, else work counters."""
        kind, record, store = (("instructions", counted, self.instructions) if self.settings.instructions
                               else ("counters", recorded, self.counters))
        if record is None:
            self._add(nodeid, "benchmark", "updated")
            return None
        store.save(CounterBaseline(benchmark=nodeid, counters=record.counters, machine=machine_facts(),
                                   created=now(), **record.identity))
        self._add(nodeid, "benchmark", "updated", **{kind: {"recorded": record.counters}})
        return None

    def _check(self, nodeid: str, limits: Limits, recorded: Recorded | None,
               timing: dict | None, counted: Recorded | None = None) -> str | None:
        problems = []
        judges_counters = recorded is not None and not self.settings.instructions
        counters = self._counters(nodeid, limits, recorded) if judges_counters else None
        instructions = None if counted is None else self._counters(
            nodeid, limits, counted, store=self.instructions, tolerance=limits.instructions)
        if instructions is not None and not instructions.ok:
            where = self.instructions.path_for(nodeid)
            problems.append(f"instruction-count regression in {nodeid} (baseline {where}):\n"
                            + "\n".join(f"  {row.describe()}" for row in instructions.rows)
                            + "".join(f"\n  {m}" for m in instructions.mismatch)
                            + f"\nIf the change is intended, re-record with:\n  {self._fix()}")
        if counters is None:
            pass  # judged on time alone
        elif counters.mismatch:
            where = self.counters.path_for(nodeid)
            problems.append(
                f"work counters of {nodeid} are not comparable with {where}: " + "; ".join(counters.mismatch)
                + ". The benchmark's input, engine or configuration changed; if that is intended, "
                f"re-record with:\n  {self._fix()}"
            )
        elif not counters.ok:
            where = self.counters.path_for(nodeid)
            changed = [row for row in counters.rows if not row.ok]
            fell = all(None not in (row.baseline, row.current) and row.current < row.baseline
                       for row in changed)
            what = ("work counters fell (the baseline is stale: counters are deterministic, and one left "
                    "high would hide the next regression)" if fell else "work-counter regression")
            problems.append(f"{what} in {nodeid} (baseline {where}):\n"
                            + "\n".join(f"  {row.describe()}" for row in changed)
                            + f"\nIf the change is intended, re-record with:\n  {self._fix()}")
        time = self._time(nodeid, limits, timing) if timing is not None else None
        if time is not None and time.hidden_by_noise_floor:
            self.notes.append(time.floor_note(nodeid))
        if time is not None and time.calibration_moved:
            self.drift_notes.append(time.drift_note(nodeid))
        source = self.timing_baseline()[0][nodeid]["_file"] if time is not None else None
        if time is not None and time.outcome == "failed":
            problems.append(f"time regression in {nodeid} (baseline {source}):\n  {time.describe()}")
        message = "\n".join(problems) or None
        inconclusive = not message and time is not None and time.outcome == "inconclusive"
        if inconclusive:
            self.warnings.append(
                f"time of {nodeid} is inconclusive (baseline {source}): the confidence bounds straddle the "
                f"threshold; rerun with more rounds:\n  "
                f"{gate_commands.more_rounds_command(self.args, 2 * len(time.ratios))}\n  {time.describe()}")
        self._add(nodeid, "benchmark", "failed" if message else "inconclusive" if inconclusive else "passed",
                  counters=counters.to_json() if counters else None, time=time.to_json() if time else None,
                  instructions=instructions.to_json() if instructions else None, message=message)
        return message

    def _counters(self, nodeid: str, limits: Limits, recorded: Recorded, store: CounterStore | None = None,
                  tolerance=None) -> gate.CounterVerdict:
        baseline = (store or self.counters).load(nodeid)
        return gate.compare_counters(baseline.identity(), baseline.counters, recorded.identity,
                                     recorded.counters, limits.tolerance if tolerance is None else tolerance)

    def _time(self, nodeid: str, limits: Limits, timing: dict) -> gate.TimeVerdict:
        stored = self._stored_timing(nodeid)
        if stored["timer"] != timing["timer"]:
            raise CorruptFileError(
                f"{stored['file']}: the timing baseline of {nodeid} was measured with {stored['timer']}, "
                f"this run uses {timing['timer']}; re-record it with:\n  {self._fix()}"
            )
        if stored["kernel"] != self.calibration["kernel"]:
            raise CorruptFileError(
                f"{stored['file']}: the timing baseline of {nodeid} was measured against "
                + ("a calibration kernel of unknown identity (recorded before pytest-pcct fingerprinted it)"
                   if stored["kernel"] is None else "another calibration kernel (its code or arguments "
                   "changed since)")
                + f", so its ratios and this run's are incomparable; re-record it with:\n  {self._fix()}"
            )
        same_cpu = stored["cpu"] is not None and stored["cpu"] == self._processor
        return gate.compare_time(  # the calibration's drift only judged on the baseline's processor
            ratios=timing["ratios"], baseline_ratios=stored["ratios"], round_seconds=timing["seconds"],
            calibration=timing["calibration"], threshold=limits.threshold, noise_floor=limits.noise_floor,
            baseline_calibration=stored["calibration"] if same_cpu else None,
        )

    def _stored_timing(self, nodeid: str) -> dict:
        """The baseline entry of `nodeid`: its paired ratios and the timer they were measured with."""
        entry = self.timing_baseline()[0][nodeid]
        source = entry["_file"]
        try:
            calibration = entry["extra_info"][CALIBRATION_KEY]
            timers = {entry["options"]["timer"], calibration["timer"]}
            stored = entry["extra_info"][PAIRED_KEY]["ratios"]
            if not isinstance(stored, list) or not all(
                    isinstance(r, (int, float)) and not isinstance(r, bool) for r in stored):
                raise TypeError("the paired ratios must be a list of numbers")  # "1.5" and "ratios" read too
            ratios = [float(r) for r in stored]
        except (KeyError, TypeError, ValueError) as exc:
            what = f"lacks {exc}" if isinstance(exc, KeyError) else f"holds a field of the wrong kind ({exc})"
            raise CorruptFileError(f"{source}: the timing baseline of {nodeid} {what} (saved without "
                                   "pytest-pcct or before paired timing, or damaged); re-record it with:\n  "
                                   f"{self._fix()}") from None
        if len(timers) != 1:
            raise CorruptFileError(f"{source}: the timing baseline of {nodeid} and its calibration were "
                                   "measured with different timers")
        if not ratios or not all(math.isfinite(r) and r > 0 for r in ratios):
            raise CorruptFileError(f"{source}: the timing baseline of {nodeid} has a non-positive, "
                                   "non-finite or empty list of paired ratios")
        problem = gate.implausible_paired_rounds(ratios, entry["extra_info"][PAIRED_KEY], entry["stats"])
        if problem:
            raise CorruptFileError(f"{source}: the timing baseline of {nodeid} is damaged: {problem}; "
                                   f"re-record it with:\n  {self._fix()}")
        paired_calibration = entry["extra_info"][PAIRED_KEY]["calibration"]  # checked just above
        factor = gate.calibrations_disagree(paired_calibration, calibration.get("median"))  # plausible
        if factor is not None:
            note = (f"{source}: the timing baseline of {nodeid} has a median calibration round of "
                    f"{gate.seconds(paired_calibration)} where the same run's calibration test took "
                    f"{gate.seconds(calibration['median'])} ({factor:.2f}x): the file was edited (ratios and "
                    "calibration scaled together pass any slowdown), or the machine's speed changed that "
                    "much while it was recorded; the verdict stands on its ratios: review the baseline or "
                    "re-record it")
            if note not in self.drift_notes:  # read before the test runs and again to judge it
                self.drift_notes.append(note)
        return {"file": source, "ratios": ratios, "timer": timers.pop(), "kernel": calibration.get("kernel"),
                "calibration": paired_calibration,
                "cpu": entry["_cpu"]}

    def _add(self, nodeid: str, kind: str, outcome: str, *, counters=None, time=None, instructions=None,
             message=None):
        self.results.append({"nodeid": nodeid, "kind": kind, "outcome": outcome, "counters": counters,
                             "time": time, "instructions": instructions, "message": message})

    def add_error(self, nodeid: str, message: str) -> None:
        kind = "calibration" if nodeid == self.calibration_id else "benchmark"
        self._add(nodeid, kind, "error", message=message)

    # -- end of session -----------------------------------------------------------------------------
    def stale(self) -> dict[str, list[str]]:
        """Stored baselines no benchmark uses any more: their file is gone, or the innermost module or
        class of their node id that this session collected no longer holds the next part of it (a test
        renamed or removed, a parametrization id gone, a class gone). Selecting tests (node ids, --lf,
        -k) narrows what runs, not what was collected, so it makes no baseline stale."""

        def unused(nodeid: str) -> bool:
            if not (self.rootpath / nodeid.split("::")[0]).exists():
                return True
            holders = [c for c in self.collected if nodeid.startswith(c + "::")]  # ids may hold "::"
            if not holders:
                return False
            held = self.collected[max(holders, key=len)]
            return not any(nodeid == x or nodeid.startswith(x + "::") for x in held)

        found = {"counters": sorted(n for n in self.counters.stored() if unused(n)),
                 "instructions": sorted(n for n in self.instructions.stored() if unused(n))}
        if self.settings.timing and getattr(self.bench.storage, "path", None) is not None:
            entries, _ = self.timing_store().load(True)
            found["timing"] = sorted(n for n in entries if unused(n))
        return found

    def finish(self, failed: bool = False) -> None:
        """End of a run that collected gated tests: find stale baselines; in update mode save the timing
        baselines and remove the stale ones, unless a test of the run `failed` (a benchmark that errored
        while collected, or an empty parametrization, would look stale and lose its baselines)."""
        self.stale_found = self.stale()
        recorded_here = ({"instructions"} if self.settings.instructions
                         else {"counters", "timing"} if self.settings.timing else {"counters"})
        removable = recorded_here if self.settings.update and not failed else set()
        if self.settings.update:
            saved = self._save_timing(drop="timing" in removable)
            if saved:
                self.notes.append(f"timing baselines written to {saved}")
        if "counters" in removable:
            for nodeid in self.stale_found["counters"]:
                self.counters.remove(nodeid)
        if "instructions" in removable:
            for nodeid in self.stale_found["instructions"]:
                self.instructions.remove(nodeid)
        if "timing" in removable and self.stale_found.get("timing"):
            self.timing_store().remove_entries(set(self.stale_found["timing"]))
        for kind, names in self.stale_found.items():  # an update removes only the kind it records
            verb = ("removed" if kind in removable else "kept: this update run failed"
                    if self.settings.update and kind in recorded_here
                    else "reported; an update of this kind removes them")
            for nodeid in names:
                self.notes.append(f"stale {kind} baseline, used by no benchmark ({verb}): {nodeid}")
        unjudged = sorted({n for kind in recorded_here for n in self.stale_found.get(kind, [])})
        if unjudged and not self.settings.update:
            shown = ", ".join(unjudged[:5]) + (f" and {len(unjudged) - 5} more" if len(unjudged) > 5 else "")
            raise GateInputError(
                f"{len(unjudged)} benchmark(s) with baselines this run judges were not collected: {shown}. A "
                "benchmark that stops being collected (renamed, a parametrization gone) would hide its "
                "regressions; if it is gone on purpose, remove its baselines with:\n  " + self._fix())

    def _save_timing(self, drop: bool) -> Path | None:
        """Update mode: merge this run's gated timings into the stored run (atomically), without its stale
        entries if `drop`."""
        if not self.settings.timing or self.calibration is None:
            return None
        recorded = {r["nodeid"] for r in self.results if r["outcome"] == "updated"} | {self.calibration_id}
        fresh = [b for b in self.bench.benchmarks if b.fullname in recorded and not b.has_error]
        if not fresh:
            return None
        config = self.bench.config
        machine = self.bench.get_machine_info()
        commit = config.hook.pytest_benchmark_generate_commit_info(config=config)
        run = config.hook.pytest_benchmark_generate_json(
            config=config, benchmarks=fresh, include_data=False, machine_info=machine, commit_info=commit,
        )
        config.hook.pytest_benchmark_update_json(config=config, benchmarks=fresh, output_json=run)
        stale = set(self.stale_found.get("timing", [])) if drop else set()
        return self.timing_store().merge_save(run, keep_old=lambda name: name not in stale)


def _timing_of(benchmark) -> dict | None:
    """What the gate needs of a benchmark that has run (else None): the timer's name, and the paired
    rounds (:meth:`PairedTiming.timing`) or, for the calibration test, min and median."""
    metadata = getattr(benchmark, "stats", None)
    if metadata is None:
        return None
    timer = metadata.as_dict(include_data=False, stats=False)["options"]["timer"]
    if isinstance(benchmark, PairedTiming):
        paired = benchmark.timing()
        return None if paired is None else {**paired, "timer": timer}
    return {"min": metadata.stats.min, "median": metadata.stats.median, "timer": timer}
