"""pytest11 entry point of the benchmark regression gate: options, markers, hooks and the pcct_gate fixture.

pytest-benchmark measures; this plugin decides. A gated test is one that requests ``pcct_gate``, or is
marked ``pcct_calibration``, or ``pcct_time`` (then judged on time alone). The gate is opt-in: a project
opts in with the ini key ``pcct_gate`` or the flag ``--pcct-gate`` (either also keeps pytest-benchmark's
storage under ``baselines/benchmarks`` and guards it), or just by having gated tests (then timing baselines
stay in pytest-benchmark's own storage). Where none of these happens, the gate touches nothing:
pytest-benchmark behaves exactly as without it. The logic lives in
:mod:`pytest_pcct.gate.session` (per-test verdicts), :mod:`pytest_pcct.gate.rules` (the rules),
:mod:`pytest_pcct.gate.baselines` (storage) and :mod:`pytest_pcct.gate.report` (table and JSON).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from pytest_pcct.output_paths import (
    DEFAULT_BASELINES,
    baselines_directory,
    baselines_path,
    check_report_file,
)

_STATE = pytest.StashKey[object]()
_ACTIVE = pytest.StashKey[bool]()
_COLLECTED = pytest.StashKey[dict]()
_SKIPPED_MODULES = pytest.StashKey[dict]()
_SKIPPED_KEY = "pcct_gate_skipped_modules"
_RECORDER = pytest.StashKey[object]()
_WORKER_KEY = "pcct_gate"
_BENCHMARK_DEFAULT_STORAGE = "file://./.benchmarks"
DEFAULT_TIME_THRESHOLD = 1.5
DEFAULT_NOISE_FLOOR = 0.001
"""Seconds. Nothing here imports covertreex (nor does pytest_pcct.gate): the plugin loads in every pytest run
and must stay cheap."""


def pytest_addoption(parser):
    group = parser.getgroup("pcct-gate", "benchmark regression gate (pytest-pcct)")
    group.addoption(
        "--pcct-gate", dest="pcct_gate", default=None, choices=("all", "counters", "instructions", "off"),
        help="opt in to the gate and choose what it judges: 'all' (work counters and calibrated time; "
             "needs --benchmark-compare, no xdist), 'counters' (work counters only; works anywhere), "
             "'instructions' (only the instruction counts of benchmarks marked pcct_instructions: the "
             "run relaunches itself under valgrind's callgrind; gate the counters in a run of their own) "
             "or 'off'. "
             "Default: ini pcct_gate; unset, the gate judges ('all') only tests requesting pcct_gate",
    )
    group.addoption(
        "--pcct-update-baselines", dest="pcct_update_baselines", action="store_true",
        help="record the baselines of the selected benchmarks instead of checking them (the only way "
             "baselines change); also removes baselines that no benchmark uses any more",
    )
    group.addoption(
        "--pcct-time-threshold", dest="pcct_time_threshold", default=None, metavar="FACTOR",
        help="default allowed calibrated slowdown factor, a number > 1 (pcct_time(threshold=...) overrides "
             f"per test); ini pcct_time_threshold, default {DEFAULT_TIME_THRESHOLD}",
    )
    group.addoption(
        "--pcct-noise-floor", dest="pcct_noise_floor", default=None, metavar="SECONDS",
        help="a slowdown costing less than this many seconds never fails; "
             f"ini pcct_noise_floor, default {DEFAULT_NOISE_FLOOR}",
    )
    group.addoption(
        "--pcct-baselines", dest="pcct_baselines", default=None, metavar="DIR",
        help="baseline directory relative to rootdir (counters/ and pytest-benchmark storage "
             "benchmarks/); ini pcct_baselines, default 'baselines'",
    )
    group.addoption(
        "--pcct-gate-report", dest="pcct_gate_report", default=None, metavar="FILE.json",
        help="write every gate result (counters, timings, verdicts, stale baselines) as JSON",
    )
    parser.addini("pcct_gate", "opt in to the regression gate: all or counters (or off); unset, only tests "
                  "requesting pcct_gate opt in", default="")
    parser.addini("pcct_time_threshold", "default allowed calibrated slowdown factor",
                  default=str(DEFAULT_TIME_THRESHOLD))
    parser.addini("pcct_noise_floor", "seconds below which a slowdown never fails",
                  default=str(DEFAULT_NOISE_FLOOR))
    parser.addini("pcct_baselines", "baseline directory relative to rootdir", default=DEFAULT_BASELINES)


def pytest_configure(config):
    for line in (
        "pcct_counters(tolerance=0.0): relative tolerance of this benchmark's work counters, one number "
        "or {counter: number} (default exact; pytest-pcct gate)",
        "pcct_time(threshold=None, noise_floor=None): allowed calibrated slowdown factor and noise floor "
        "in seconds for this benchmark; on a benchmark not requesting pcct_gate, gates it on time alone "
        "(pytest-pcct gate)",
        "pcct_calibration: the calibration kernel every benchmark's time is measured against "
        "(pytest-pcct gate)",
        "pcct_instructions(tolerance=0.01): count this benchmark's instructions under callgrind in "
        "--pcct-gate=instructions runs and gate the count with this relative tolerance (pytest-pcct gate)",
    ):
        config.addinivalue_line("markers", line)
    mode = config.getoption("pcct_gate") or config.getini("pcct_gate")
    if mode not in ("", "all", "counters", "instructions", "off"):
        raise pytest.UsageError("pytest-pcct gate: ini pcct_gate must be all, counters, instructions or off, "
                                f"got {mode!r}")
    config.stash[_ACTIVE] = mode != "off"
    from pytest_pcct.gate import commands as gate_commands

    previous = gate_commands.xdist_loaded  # put back when this run ends (a pytester run ends inside another)
    gate_commands.xdist_loaded = config.pluginmanager.hasplugin("xdist")
    config.add_cleanup(lambda: setattr(gate_commands, "xdist_loaded", previous))
    check_report_file(config.getoption("pcct_gate_report"), "--pcct-gate-report", config)
    opted_in = mode in ("all", "counters", "instructions")  # by ini or flag
    named = config.getoption("pcct_baselines") or config.getini("pcct_baselines") != DEFAULT_BASELINES
    if opted_in or named or config.getoption("pcct_update_baselines"):  # not a project that never used it
        baselines_directory(config)  # a file there is refused before any test runs (on workers, later)
    if opted_in:
        _own_benchmark_storage(config)
    if mode == "instructions":
        _relaunch_under_callgrind(config)


def _relaunch_under_callgrind(config) -> None:
    """A command-line run in instructions mode replaces itself with the same run under callgrind.

    In-process runs (pytester's inline runs) and xdist workers are left alone; the gate then says why it
    cannot count."""
    import sys

    from pytest_pcct.gate import callgrind
    from pytest_pcct.gate.errors import GateError

    args = list(config.invocation_params.args)
    if callgrind.under_callgrind() or hasattr(config, "workerinput") or args != sys.argv[1:]:
        return
    if config.getoption("benchmark_only", False):  # pytest-benchmark refuses it with --benchmark-disable
        raise pytest.UsageError("pytest-pcct gate: --pcct-gate=instructions runs each benchmark with "
                                "pytest-benchmark disabled, which --benchmark-only refuses; select the "
                                "benchmarks with -k or -m instead")
    try:
        callgrind.relaunch(args, config.rootpath, config.pluginmanager.hasplugin("cacheprovider"))
    except GateError as exc:
        raise pytest.UsageError(f"pytest-pcct gate: {exc}") from None


def _own_benchmark_storage(config) -> None:
    """Point pytest-benchmark (configured after us) at baselines/benchmarks, and let only
    --pcct-update-baselines write there."""
    option = config.option
    directory = baselines_directory(config)
    if getattr(option, "benchmark_storage", None) == _BENCHMARK_DEFAULT_STORAGE:
        option.benchmark_storage = str(directory / "benchmarks")
    saving = getattr(option, "benchmark_save", None) or getattr(option, "benchmark_autosave", None)
    if not saving:
        return
    if config.getoption("pcct_update_baselines"):
        raise pytest.UsageError("pytest-pcct gate: --pcct-update-baselines saves the timing baselines "
                                "itself; drop --benchmark-save/--benchmark-autosave")
    storage = Path(str(option.benchmark_storage).removeprefix("file://")).resolve()
    if storage.is_relative_to(directory.resolve()):
        raise pytest.UsageError(
            f"pytest-pcct gate: baselines in {directory} change only through --pcct-update-baselines; "
            "drop --benchmark-save/--benchmark-autosave or save elsewhere with --benchmark-storage=DIR"
        )


def _state(config):
    """The gate session, once a gated test was seen (None before, and when the gate is off)."""
    return config.stash.get(_STATE, None)


def _start(config):
    """Create the gate session on first need, so runs without gated tests import none of the gate."""
    state = _state(config)
    if state is None and config.stash.get(_ACTIVE, False):
        from pytest_pcct.gate.errors import GateError
        from pytest_pcct.gate.session import GateSession, GateSettings

        try:
            settings = GateSettings.from_config(config)
        except GateError as exc:
            raise pytest.UsageError(f"pytest-pcct gate: {exc}") from None
        state = config.stash[_STATE] = GateSession(
            settings, args=tuple(config.invocation_params.args), rootpath=config.rootpath,
            xdist=config.getoption("dist", "no") != "no", bench=getattr(config, "_benchmarksession", None),
        )
    return state


@pytest.fixture
def pcct_gate(request):
    """Hand this benchmark's work counters to the regression gate: ``pcct_gate.record(...)``. Requested
    where the gate would never judge them, it is an error rather than counters silently dropped."""
    from pytest_pcct.gate.session import GateRecorder

    state = _state(request.config)
    if state is not None and request.node.get_closest_marker("pcct_calibration"):
        raise pytest.UsageError("pytest-pcct gate: the calibration benchmark's counters are never gated (it "
                                "is the gate's clock); record them in a benchmark of their own")
    gated = state.gated if state is not None else set()  # no state: no test named pcct_gate
    if request.config.stash.get(_ACTIVE, False) and request.node.nodeid not in gated:
        raise pytest.UsageError("pytest-pcct gate: pcct_gate was requested while the test ran (request."
                                "getfixturevalue), so the gate, which reads each test's fixtures when it is "
                                "collected, would not judge its counters: name pcct_gate among the test's "
                                "arguments")
    recorder = GateRecorder()
    request.node.stash[_RECORDER] = recorder
    return recorder


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(session, config, items):
    calibration = [item for item in items if item.get_closest_marker("pcct_calibration")]
    gated = {item.nodeid for item in items if "pcct_gate" in getattr(item, "fixturenames", ())}
    time_only = {item.nodeid for item in items
                 if item.get_closest_marker("pcct_time") and item.nodeid not in gated}
    gated |= time_only
    if not config.stash.get(_ACTIVE, False):
        return
    uncounted = [item.nodeid for item in items
                 if item.get_closest_marker("pcct_instructions")
                 and "pcct_gate" not in getattr(item, "fixturenames", ())]
    if uncounted:  # its count would be stored with the identity its counters give: it has none
        raise pytest.UsageError("pytest-pcct gate: a benchmark marked pcct_instructions must request the "
                                "pcct_gate fixture and record its counters: " + ", ".join(uncounted))
    if not (calibration or gated):
        return
    state = _start(config)
    refusal = state.save_refusal()
    if refusal:
        raise pytest.UsageError(f"pytest-pcct gate: {refusal}")
    if len(calibration) > 1:
        raise pytest.UsageError("pytest-pcct gate: more than one test is marked pcct_calibration: "
                                + ", ".join(item.nodeid for item in calibration))
    state.collected.update(config.stash.get(_COLLECTED, {}))
    state.gated = gated
    state.time_only = time_only
    state.counted = {item.nodeid for item in items
                     if item.nodeid in gated and item.get_closest_marker("pcct_instructions")}
    if calibration:
        state.calibration_id = calibration[0].nodeid
        state.gated.add(state.calibration_id)
        items.sort(key=lambda item: item.nodeid != state.calibration_id)  # stable: calibration first


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item):
    state = _state(item.config)
    if state is None or item.nodeid not in state.gated:
        return
    message = state.blocker(item)
    if message:
        state.add_error(item.nodeid, message)
        pytest.fail(f"pytest-pcct gate: {message}", pytrace=False)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item):
    state = _state(item.config)
    gated = state is not None and item.nodeid in state.gated
    stand_in = _stand_in(item, state) if gated and "benchmark" in item.funcargs else None
    if stand_in is not None:
        item.funcargs["benchmark"] = stand_in
    try:
        result = yield
    finally:
        if stand_in is not None:  # pytest-benchmark checks its own fixture when it reports
            item.funcargs["benchmark"] = stand_in.fixture
    if gated:
        benchmark = stand_in if stand_in is not None else item.funcargs.get("benchmark")
        message = state.judge(item, item.stash.get(_RECORDER, None), benchmark)
        while state.warnings:
            item.warn(GateInconclusiveWarning(f"pytest-pcct gate: {state.warnings.pop(0)}"))
        while state.drift_notes:
            item.warn(GateCalibrationWarning(f"pytest-pcct gate: {state.drift_notes.pop(0)}"))
        if message:
            pytest.fail(f"pytest-pcct gate: {message}", pytrace=False)
    return result


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    """A gated test that was skipped (in setup or in its body) or xfailed fails: the gate fails closed (an
    expected failure absorbs the gate's own verdict, and ``xfail(run=False)`` is a skip by another
    name)."""
    report = yield
    state = _state(item.config)
    gated = state is not None and item.nodeid in state.gated
    if gated and report.skipped:
        xfailed = hasattr(report, "wasxfail")
        reason = f"xfail: {report.wasxfail}" if xfailed else _skip_reason(report)
        message = state.skipped(item.nodeid, reason, "an expected failure" if xfailed else "skipped")
        if message:
            report.outcome = "failed"
            report.longrepr = f"pytest-pcct gate: {message}"
            if xfailed:  # pytest counts no failure, and exits 0, for a report that still says xfail
                del report.wasxfail
    return report


class GateInconclusiveWarning(pytest.PytestWarning):
    """A time verdict the gate could not reach (bounds straddle the threshold); ``-W error::`` with this
    class's full name turns it into a failure."""


class GateCalibrationWarning(pytest.PytestWarning):
    """The calibration kernel's own time moved beyond ``rules.CALIBRATION_DRIFT`` of its baseline's: a
    slower machine, which the ratios absorb, or a kernel that runs the code under test, which hides its
    regressions. Its own class, so that making inconclusive verdicts fail does not fail a drifting
    machine; ``-W error::`` with this class's full name turns it into a failure where the machine is
    known to be the baseline's."""


def _stand_in(item, state):
    """What the test gets as its ``benchmark`` fixture: the calibration test a kernel capture, a gated
    benchmark paired rounds (time) or an instruction probe (under callgrind); None leaves it alone."""
    fixture = item.funcargs["benchmark"]
    if state.settings.instructions:
        from pytest_pcct.gate import callgrind

        if item.get_closest_marker("pcct_instructions") and callgrind.under_callgrind():
            return callgrind.InstructionProbe(fixture)
        return None
    if not state.settings.timing:
        return None
    from pytest_pcct.gate.paired import CalibrationCapture, PairedTiming

    if item.nodeid == state.calibration_id:
        return CalibrationCapture(fixture)
    return PairedTiming(fixture, state.calibration_kernel) if state.calibration_kernel else None


@pytest.hookimpl(wrapper=True, trylast=True)
def pytest_make_collect_report(collector):
    """Remember test modules and directories skipped while collected (``pytest.skip(allow_module_level=
    True)`` or a module-level ``importorskip``, in a test module or in a directory's conftest.py): their
    tests never reach the gate, so their baselines are checked at the end of the session instead. Remember
    too what each module and class holds, before any selection
    (node ids on the command line, ``--lf``, ``-k``) narrows it: a baseline is stale only when its test is
    gone from there (innermost wrapper: cacheprovider's ``--lf`` wrapper filters the result after us). An
    empty result says nothing: ``--lf`` reports the files it does not collect as passed and empty."""
    report = yield
    stash = collector.config.stash
    if report.skipped and isinstance(collector, (pytest.Module, pytest.Package, pytest.Dir)):
        stash[_SKIPPED_MODULES] = {**stash.get(_SKIPPED_MODULES, {}), collector.nodeid: _skip_reason(report)}
    elif report.passed and report.result and isinstance(collector, (pytest.Module, pytest.Class)):
        stash[_COLLECTED] = {**stash.get(_COLLECTED, {}), collector.nodeid: [x.nodeid for x in report.result]}
    return report


def _skip_reason(report) -> str:
    """The reason a skipped test's or module's report gives (pytest keeps (path, line, 'Skipped: ...'))."""
    longrepr = report.longrepr
    reason = longrepr[2] if isinstance(longrepr, tuple) and len(longrepr) == 3 else str(longrepr)
    return reason.removeprefix("Skipped: ")


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node, error):
    skipped = getattr(node, "workeroutput", {}).get(_SKIPPED_KEY)
    if skipped:
        stash = node.config.stash
        stash[_SKIPPED_MODULES] = {**stash.get(_SKIPPED_MODULES, {}), **skipped}
    shipped = getattr(node, "workeroutput", {}).get(_WORKER_KEY)
    if shipped:
        state = _start(node.config)
        state.results.extend(shipped["results"])
        state.collected.update(shipped["collected"])
        state.gated.update(shipped["gated"])


def _uses_the_gate(config, state) -> bool:
    """Whether this project uses the gate: opted in by ini or flag, a gated test collected, or baselines of
    the gate's own committed (a project opted in by the fixture alone, whose gated modules were all
    skipped while collected). A project that never used it is left alone."""
    if state is not None or config.getoption("pcct_gate") or config.getini("pcct_gate"):
        return True
    directory = baselines_path(config)
    try:
        return any(next((directory / kind).glob("*.json"), None) for kind in ("counters", "instructions"))
    except OSError:
        return False


def pytest_sessionfinish(session):
    config = session.config
    skipped = config.stash.get(_SKIPPED_MODULES, {})
    state = _state(config)
    if hasattr(config, "workerinput"):
        if skipped:
            config.workeroutput[_SKIPPED_KEY] = skipped
        if state is not None:
            config.workeroutput[_WORKER_KEY] = {
                "results": state.results, "collected": state.collected, "gated": sorted(state.gated),
            }
        return
    if skipped and config.stash.get(_ACTIVE, False) and _uses_the_gate(config, state):
        state = _start(config)
        problem = state.skipped_modules(skipped)
        if problem:
            state.problems.append(problem)
            session.exitstatus = pytest.ExitCode.TESTS_FAILED
    if state is None:
        return
    from pytest_pcct.gate import report as gate_report
    from pytest_pcct.gate.errors import GateError

    if not state.gated:
        return
    try:
        state.finish(failed=session.testsfailed > 0)
    except GateError as exc:
        state.problems.append(str(exc))
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
    except OSError as exc:  # saving the timing run or removing stale baselines (read-only, disk full)
        state.problems.append(f"the baselines could not be written: {exc}")
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
    if state.settings.report is not None:
        try:
            gate_report.write_json(state.settings.report, mode=state.settings.mode,
                                   update=state.settings.update, results=state.results,
                                   stale=state.stale_found)
            state.report_written = True
        except OSError as exc:  # a full disk, a read-only file: one line, not a traceback after the run
            state.problems.append(f"--pcct-gate-report could not be written: {exc}")
            if session.exitstatus in (pytest.ExitCode.OK, pytest.ExitCode.NO_TESTS_COLLECTED):
                session.exitstatus = pytest.ExitCode.TESTS_FAILED  # an interrupted run keeps its status


def pytest_terminal_summary(terminalreporter, config):
    state = _state(config)
    if state is None or not (state.gated or state.problems) or hasattr(config, "workerinput"):
        return
    from pytest_pcct.gate import report as gate_report

    s = state.settings
    tr = terminalreporter
    tr.section("pcct regression gate")
    limits = f"; threshold {s.threshold}x, noise floor {s.noise_floor * 1e3:g} ms" if s.timing else ""
    updating = " (updating baselines)" if s.update else ""
    tr.write_line(f"mode {s.mode}{updating}{limits}; baselines {s.directory}")
    for line in gate_report.table(state.results, instructions=s.instructions):
        tr.write_line(line)
    for note in state.notes:
        tr.write_line(note)
    for problem in state.problems:
        tr.write_line(f"ERROR: {problem}", red=True)
    if state.report_written:
        tr.write_line(f"gate report written to {s.report}")
