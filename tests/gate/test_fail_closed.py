"""The gate fails closed: every situation in which it cannot judge is an error that prints the command
fixing it, never a silent pass. Also: damaged baselines are named, stale baselines fail a check run."""

import copy
import json
import re
import shlex

import pytest

pytestmark = pytest.mark.filterwarnings("ignore::pytest_benchmark.logger.PytestBenchmarkWarning")

@pytest.fixture
def recorded(toy, run_gate):
    """The toy project with all its baselines recorded."""
    run_gate("--pcct-update-baselines").assert_outcomes(passed=3)
    return toy


def _counter_file(project, test):
    return next((project.path / "baselines" / "counters").glob(f"test_toy-{test}.*.json"))


def _timing_file(project):
    return next((project.path / "baselines" / "benchmarks").glob("*/0001_pcct.json"))


def test_time_gate_without_benchmark_compare(recorded, run_gate):
    result = run_gate()
    result.assert_outcomes(errors=3)
    result.stdout.fnmatch_lines([
        "pytest-pcct gate: the time gate compares with a stored pytest-benchmark run: add "
        "--benchmark-compare:",
        "  python -m pytest * --benchmark-compare",
    ])


@pytest.mark.parametrize("option", ["--benchmark-disable", "--benchmark-skip"])
def test_disabled_or_skipped_benchmarks(recorded, run_gate, option):
    result = run_gate("--benchmark-compare", option)
    result.assert_outcomes(errors=3)
    assert option in result.stdout.str() and "pytest-pcct gate: " in result.stdout.str()
    if option == "--benchmark-disable":
        result.stdout.fnmatch_lines(
            ["*or gate work counters only:", "  python -m pytest * --pcct-gate=counters"])
        run_gate("--benchmark-compare", option, "--pcct-gate=counters").assert_outcomes(passed=3)


def test_timing_in_an_xdist_worker(recorded, run_gate, monkeypatch):
    """What every xdist worker sees (tests/gate/test_counter_gate.py runs real xdist in counters mode)."""
    monkeypatch.setenv("PYTEST_XDIST_WORKER", "gw0")
    result = run_gate("--benchmark-compare")
    result.assert_outcomes(errors=3)
    result.stdout.fnmatch_lines([
        "pytest-pcct gate: timing under pytest-xdist is not trustworthy*Run serially:",
        "  python -m pytest * -n 0",
        "or gate work counters only:",
        "  python -m pytest * --pcct-gate=counters",
    ])
    run_gate("--pcct-gate=counters").assert_outcomes(passed=3)


def test_missing_counter_baseline(recorded, run_gate):
    path = _counter_file(recorded, "test_work")
    path.unlink()
    result = run_gate("--benchmark-compare")
    result.assert_outcomes(passed=2, errors=1)
    result.stdout.fnmatch_lines([
        f"pytest-pcct gate: no work-counter baseline for test_toy.py::test_work (expected {path}). "
        "Record it with:",
        "  python -m pytest * -n 0 --pcct-update-baselines",
    ])


def test_missing_timing_baseline(toy, run_gate):
    run_gate("--pcct-gate=counters", "--pcct-update-baselines").assert_outcomes(passed=3)
    result = run_gate("--benchmark-compare")
    result.assert_outcomes(passed=1, errors=2)
    result.stdout.fnmatch_lines(["pytest-pcct gate: no timing baseline for test_toy.py::test_work "
                                 "(no saved run in *). Record it with:"])


def test_a_selector_matching_no_saved_run_says_so(recorded, run_gate):
    result = run_gate("--benchmark-compare=0042")
    result.assert_outcomes(passed=1, errors=2)
    result.stdout.fnmatch_lines([f"pytest-pcct gate: no timing baseline for test_toy.py::test_work: "
                                 f"--benchmark-compare=0042 selects none of the saved runs in * "
                                 f"({_timing_file(recorded).name}). Select one by its number "
                                 "(--benchmark-compare=0001) or its whole name, without '.json', or give "
                                 "--benchmark-compare alone"])  # not re-recording over a good baseline
    run_gate("--benchmark-compare=0001").assert_outcomes(passed=3)


def test_calibration_not_selected(recorded, run_gate):
    result = run_gate("--benchmark-compare", "-k", "work")
    result.assert_outcomes(errors=1, deselected=2)
    result.stdout.fnmatch_lines(
        ["pytest-pcct gate: no calibration benchmark (a test marked pcct_calibration)*"])


def test_a_different_timer_is_incomparable(recorded, run_gate, monkeypatch):
    monkeypatch.setenv("TOY_TIMER", "other_clock")
    result = run_gate("--benchmark-compare")
    result.assert_outcomes(passed=1, failed=2)
    result.stdout.fnmatch_lines(["*: the timing baseline of test_toy.py::test_work was measured with "
                                 "clock, this run uses other_clock; re-record it with:"])


def test_baselines_change_only_through_the_update_flag(recorded, run_gate):
    result = run_gate("--benchmark-save=mine")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*baselines in * change only through --pcct-update-baselines*"])
    result = run_gate("--benchmark-autosave", "--pcct-update-baselines")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    run_gate("--benchmark-save=mine", "--benchmark-storage=elsewhere", "--benchmark-compare",
             "--pcct-gate=counters").assert_outcomes(passed=3)


@pytest.mark.parametrize("kind", ["counters", "timing"])
def test_truncated_baseline_is_an_error_naming_the_file(recorded, run_gate, kind):
    path = _counter_file(recorded, "test_work") if kind == "counters" else _timing_file(recorded)
    path.write_bytes(path.read_bytes()[: len(path.read_bytes()) // 2])
    result = run_gate("--benchmark-compare")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines([
        f"pytest-pcct gate: {path}: * is not valid JSON (*truncated or edited by hand?)",
        "Repair or delete the file, then re-record the baselines with:",
    ])


def test_stale_baselines_are_reported_then_removed_by_the_update(recorded, run_gate):
    source = recorded.path / "test_toy.py"
    text = source.read_text()
    source.write_text(text[: text.index("@pytest.mark.pcct_time")])  # test_lenient is gone
    lenient = _counter_file(recorded, "test_lenient")
    result = run_gate("--benchmark-compare")
    result.assert_outcomes(passed=2)
    assert result.ret == pytest.ExitCode.TESTS_FAILED  # a benchmark no longer collected hides regressions
    result.stdout.fnmatch_lines([
        "stale counters baseline, used by no benchmark (reported; an update of this kind removes them): "
        "test_toy.py::test_lenient",
        "stale timing baseline, used by no benchmark (*): test_toy.py::test_lenient",
        "ERROR: 1 benchmark(s) with baselines this run judges were not collected: test_toy.py::test_lenient. "
        "A benchmark that stops being collected (renamed, a parametrization gone) would hide its "
        "regressions; if it is gone on purpose, remove its baselines with:",
    ])
    assert lenient.exists()
    run_gate("-k", "work or calibration", "--pcct-update-baselines").assert_outcomes(passed=2)
    assert not lenient.exists()
    names = [b["fullname"] for b in json.loads(_timing_file(recorded).read_text())["benchmarks"]]
    assert names == ["test_toy.py::test_calibration", "test_toy.py::test_work"]



def test_a_failed_update_removes_no_stale_baseline(recorded, run_gate, monkeypatch):
    """An update run in which a benchmark failed (here: its parametrization emptied, an error) removed
    the baselines that then looked stale, though nothing had been re-recorded in their place."""
    recorded.makepyfile(test_param=PARAMETRIZED)
    counters = ("--pcct-gate=counters", "--benchmark-disable", "--pcct-update-baselines")
    run_gate(*counters).assert_outcomes(passed=6)
    before = _counter_names(recorded)
    monkeypatch.setenv("TOY_CASES", "a")  # b::c looks stale
    monkeypatch.setenv("TOY_STEPS_WORK", "-1")  # a counter the gate refuses: the update run fails
    result = run_gate(*counters)
    result.assert_outcomes(passed=4, failed=1)
    result.stdout.fnmatch_lines(["stale counters baseline, used by no benchmark (kept: this update run "
                                 "failed): test_param.py::test_cases[[]b::c[]]"])
    assert _counter_names(recorded) == before


def test_an_update_removes_only_the_stale_baselines_of_the_kind_it_records(recorded, run_gate):
    """A counters update deleted stale instruction baselines too (it cannot re-record them)."""
    counter_file = _counter_file(recorded, "test_work")
    gone = json.loads(counter_file.read_text())
    gone["benchmark"] = "test_toy.py::test_gone"
    instructions = recorded.path / "baselines" / "instructions"
    instructions.mkdir()
    (instructions / "test_toy-test_gone.json").write_text(json.dumps(gone))
    update = run_gate("--pcct-gate=counters", "--pcct-update-baselines")
    update.assert_outcomes(passed=3)
    update.stdout.fnmatch_lines(["stale instructions baseline, used by no benchmark (reported; an update of "
                                 "this kind removes them): test_toy.py::test_gone"])
    assert (instructions / "test_toy-test_gone.json").exists()

def test_deselected_benchmarks_keep_their_baselines(recorded, run_gate):
    run_gate("-k", "work or calibration", "--pcct-update-baselines").assert_outcomes(passed=2, deselected=1)
    assert _counter_file(recorded, "test_lenient").exists()
    names = [b["fullname"] for b in json.loads(_timing_file(recorded).read_text())["benchmarks"]]
    assert "test_toy.py::test_lenient" in names
    run_gate("--benchmark-compare").assert_outcomes(passed=3)



PARAMETRIZED = '''
import os

import pytest


@pytest.mark.parametrize("case", os.environ.get("TOY_CASES", "a,b::c").split(","))
def test_cases(pcct_gate, case):
    pcct_gate.record({"steps": 7}, engine="toy", dataset_digest="data-1", config_digest="config-1",
                     schema="toy.counters", schema_version=1)


class TestGroup:
    def test_member(self, pcct_gate):
        pcct_gate.record({"steps": 8}, engine="toy", dataset_digest="data-1", config_digest="config-1",
                         schema="toy.counters", schema_version=1)
'''


def _counter_names(project) -> set[str]:
    files = (project.path / "baselines" / "counters").glob("*.json")
    return {json.loads(path.read_text())["benchmark"] for path in files}


def test_selecting_tests_by_node_id_or_last_failed_makes_no_other_baseline_stale(recorded, monkeypatch):
    """Running one test by node id, or --lf, collected only it: every other baseline of the file was
    called stale and an update deleted it (an outside user's trial). What a module holds is now read
    before any selection narrows it."""
    recorded.makepyfile(test_param=PARAMETRIZED)
    counters = ("--pcct-gate=counters", "--benchmark-disable")
    recorded.runpytest(*counters, "--pcct-update-baselines").assert_outcomes(passed=6)
    everything = _counter_names(recorded)
    assert "test_param.py::test_cases[b::c]" in everything and len(everything) == 5
    chosen = recorded.runpytest(*counters, "test_param.py::test_cases[a]", "test_toy.py::test_work",
                                "--pcct-update-baselines")
    chosen.assert_outcomes(passed=2)
    assert "stale counters" not in chosen.stdout.str() and _counter_names(recorded) == everything
    monkeypatch.setenv("TOY_STEPS_WORK", "2000")  # test_work's counters regress: the last failure
    recorded.runpytest(*counters).assert_outcomes(passed=5, failed=1)
    last_failed = recorded.runpytest(*counters, "--lf", "--pcct-update-baselines")
    last_failed.assert_outcomes(passed=1)
    assert "stale counters" not in last_failed.stdout.str() and _counter_names(recorded) == everything
    monkeypatch.setenv("TOY_CASES", "a")  # the id "b::c" is gone: its baseline, and only it, is stale
    gone = recorded.runpytest(*counters, "test_param.py::TestGroup")
    gone.assert_outcomes(passed=1)
    assert gone.ret == pytest.ExitCode.TESTS_FAILED  # a parametrization that vanished hides its regressions
    gone.stdout.fnmatch_lines(
        ["stale counters baseline, used by no benchmark (*): test_param.py::test_cases[[]b::c[]]",
         "ERROR: 1 benchmark(s) with baselines this run judges were not collected: "
         "test_param.py::test_cases[[]b::c[]]. *"])
    assert gone.stdout.str().count("stale counters baseline") == 1

PRINTED = re.compile(r"^  python -m pytest (.*)$", re.M)


def _break(project, monkeypatch, how):
    """Put the recorded toy project in one of the states the gate refuses to judge."""
    if how == "xdist worker":
        monkeypatch.setenv("PYTEST_XDIST_WORKER", "gw0")
    elif how == "missing counters":
        _counter_file(project, "test_work").unlink()
    elif how == "truncated timing":
        path = _timing_file(project)
        path.write_bytes(path.read_bytes()[:100])
    elif how == "changed configuration":
        monkeypatch.setenv("TOY_CONFIG", "config-2")  # the counters' config digest no longer matches
    elif how == "other timer":
        monkeypatch.setenv("TOY_TIMER", "other_clock")  # baselines were timed with toy_clock.clock


@pytest.mark.parametrize(("how", "args"), [
    ("nothing", ()),
    ("nothing", ("--benchmark-disable",)),
    ("nothing", ("--benchmark-skip",)),
    ("xdist worker", ("--benchmark-compare",)),
    ("missing counters", ("--benchmark-compare",)),
    ("truncated timing", ("--benchmark-compare",)),
    ("changed configuration", ("--benchmark-compare",)),
    ("other timer", ("--benchmark-compare",)),
])
def test_every_printed_command_works(recorded, run_gate, monkeypatch, how, args):
    """Each command the gate prints to fix a run, run as printed (outside xdist), passes."""
    _break(recorded, monkeypatch, how)
    result = run_gate(*args)
    assert result.ret != pytest.ExitCode.OK
    printed = list(dict.fromkeys(PRINTED.findall(result.stdout.str())))
    assert printed, result.stdout.str()
    monkeypatch.delenv("PYTEST_XDIST_WORKER", raising=False)
    if "Repair or delete the file, then re-record" in result.stdout.str():
        _timing_file(recorded).unlink()  # as the message says, before its command
    for line in printed:
        fixed = recorded.runpytest(*shlex.split(line))
        assert fixed.ret == pytest.ExitCode.OK, f"printed command failed: python -m pytest {line}"


@pytest.mark.parametrize("mode", ["all", "counters"])
@pytest.mark.parametrize(("how", "test", "outcome"), [("body", "test_work", "failed"),
                                                       ("marker", "test_lenient", "errors")])
def test_a_skipped_benchmark_fails(recorded, run_gate, monkeypatch, mode, how, test, outcome):
    """A benchmark skipped in its body or by a marker is never judged: a skip that began to happen in CI
    would otherwise pass every regression. Deselecting it is how a run leaves it out on purpose."""
    monkeypatch.setenv("TOY_SKIP", how)
    monkeypatch.setenv("TOY_SLOWDOWN_WORK" if how == "body" else "TOY_SLOWDOWN_LENIENT", "9")
    monkeypatch.setenv(f"TOY_STEPS_{test.removeprefix('test_').upper()}", "2000")
    result = run_gate("--benchmark-compare", f"--pcct-gate={mode}", "--pcct-gate-report=gate.json")
    result.assert_outcomes(passed=2, **{outcome: 1})
    reason = "the toy skips its work" if how == "body" else "the toy skips lenient work"
    result.stdout.fnmatch_lines([f"*pytest-pcct gate: test_toy.py::{test} was skipped ({reason}), so the "
                                 "gate cannot judge it: a skipped benchmark would hide any regression. To "
                                 "leave it out of a run on purpose, deselect it (-k, -m or --deselect)*"])
    report = json.loads((recorded.path / "gate.json").read_text())
    assert [r["outcome"] for r in report["results"] if r["nodeid"] == f"test_toy.py::{test}"] == ["error"]
    deselected = run_gate("--benchmark-compare", f"--pcct-gate={mode}", "--deselect", f"test_toy.py::{test}")
    deselected.assert_outcomes(passed=2, deselected=1)


@pytest.mark.parametrize("args", [["--benchmark-compare"], ["--pcct-gate=counters"],
                                  ["--pcct-gate=counters", "-n", "2"]], ids=["all", "counters", "xdist"])
def test_a_module_skipped_while_collected_fails_the_session(recorded, run_gate, monkeypatch, args):
    """A module-level skip (an importorskip, a platform check) stops its tests from being collected at
    all, so no test of it reaches the gate: the session fails, naming the module and the reason."""
    monkeypatch.setenv("TOY_SKIP", "module")
    result = run_gate(*args, subprocess="-n" in args)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(["ERROR: * benchmark(s) with baselines were not judged: their module or "
                                 "directory was skipped while collected: test_toy.py (the toy skips its "
                                 "module). *"])
    ignored = run_gate(*args, "--ignore=test_toy.py", subprocess="-n" in args)
    assert ignored.ret == pytest.ExitCode.NO_TESTS_COLLECTED


def test_a_directory_skipped_by_its_conftest_fails_the_session(pytester, run_gate, monkeypatch):
    """A skip in a directory's conftest.py (an extension not built) hid every baseline below it: the run
    passed with the benchmarks skipped and no gate section at all (gate red team)."""
    from tests.gate.conftest import TOY_CLOCK, TOY_TESTS

    pytester.makeini("[pytest]\npcct_gate = all\n")
    pytester.makepyfile(**{"bench/toy_clock": TOY_CLOCK, "bench/test_toy": TOY_TESTS, "test_other": "def "
                           "test_other():\n    pass\n"})
    pytester.makepyfile(**{"bench/conftest": "import os\nimport pytest\n\nif os.environ.get('NO_EXT'):\n"
                           "    pytest.skip('the extension is not built', allow_module_level=True)\n"})
    run_gate("--pcct-gate=counters", "--pcct-update-baselines").assert_outcomes(passed=4)
    monkeypatch.setenv("NO_EXT", "1")
    result = run_gate("--pcct-gate=counters")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(["ERROR: 2 benchmark(s) with baselines were not judged: their module or "
                                 "directory was skipped while collected: bench (the extension is not "
                                 "built). *"])
    assert run_gate("--pcct-gate=counters", "--ignore=bench").ret == pytest.ExitCode.OK


def test_a_skipped_directory_fails_a_project_opted_in_by_the_fixture_alone(pytester, run_gate, monkeypatch):
    """No ini, no flag: the gate's own baselines say the project uses it, though the skip leaves no gated
    test collected (review: the first fix for unrelated projects let this pass)."""
    from tests.gate.conftest import TOY_CLOCK, TOY_TESTS

    pytester.makepyfile(**{"bench/toy_clock": TOY_CLOCK, "bench/test_toy": TOY_TESTS})
    pytester.makepyfile(**{"bench/conftest": "import os\nimport pytest\n\nif os.environ.get('NO_EXT'):\n"
                           "    pytest.skip('the extension is not built', allow_module_level=True)\n"})
    run_gate("--pcct-update-baselines").assert_outcomes(passed=3)
    monkeypatch.setenv("NO_EXT", "1")
    result = run_gate()
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(["ERROR: * benchmark(s) with baselines were not judged: their module or "
                                 "directory was skipped while collected: bench (the extension is not "
                                 "built). *"])


XFAIL_TESTS = """
import os

import pytest


def _record(pcct_gate):
    pcct_gate.record({"steps": int(os.environ.get("STEPS", "10"))}, engine="toy", dataset_digest="d",
                     config_digest="c", schema="toy.counters", schema_version=1)


@pytest.mark.xfail(reason="known to be flaky")
def test_expected(benchmark, pcct_gate):
    benchmark(lambda: None)
    _record(pcct_gate)


@pytest.mark.xfail(bool(os.environ.get("NOT_HERE")), reason="not on this machine", run=False)
def test_not_run(benchmark, pcct_gate):
    benchmark(lambda: None)
    _record(pcct_gate)
"""


def test_an_xfailed_gated_benchmark_fails(pytester, run_gate, monkeypatch):
    """An xfail marker absorbed the gate's own failure (its table said FAILED, the run exited 0), and
    xfail(run=False) kept a benchmark from ever being judged (gate red team)."""
    pytester.makeini("[pytest]\npcct_gate = all\n")
    pytester.makepyfile(test_xf=XFAIL_TESTS)
    run_gate("--pcct-gate=counters", "--pcct-update-baselines").assert_outcomes(passed=1, xpassed=1)
    monkeypatch.setenv("STEPS", "99999")  # a counter regression in both
    monkeypatch.setenv("NOT_HERE", "1")
    result = run_gate("--pcct-gate=counters")
    result.assert_outcomes(failed=1, errors=1)  # the run=False one in its setup
    assert result.ret == pytest.ExitCode.TESTS_FAILED  # the report still said xfail: pytest exited 0
    result.stdout.fnmatch_lines_random([
        "*test_xf.py::test_expected was an expected failure (xfail: known to be flaky), so the gate cannot "
        "judge it*",
        "*test_xf.py::test_not_run was an expected failure (xfail: *not on this machine), so the gate "
        "cannot judge it*"])


def test_a_benchmark_timed_through_a_wrapper_fixture_is_named_as_such(toy, run_gate):
    """A fixture wrapping `benchmark` holds pytest-benchmark's own fixture, which the gate's paired timing
    does not replace: the test was told it 'did not call benchmark(...)' although it had."""
    toy.makeconftest("import pytest\n\n\n@pytest.fixture\ndef timed(benchmark):\n"
                     "    return lambda function, *args: benchmark(function, *args)\n")
    toy.makepyfile(test_wrap="import pytest\n\n\n@pytest.mark.pcct_time\ndef test_wrapped(timed):\n"
                             "    timed(sum, range(10))\n")
    result = run_gate("--pcct-update-baselines")
    result.assert_outcomes(passed=3, failed=1)
    result.stdout.fnmatch_lines(["*test_wrap.py::test_wrapped ran pytest-benchmark's fixture through another "
                                 "fixture that holds it (a wrapper), not through its own `benchmark` "
                                 "argument*"])


def test_counters_the_gate_would_never_judge_are_an_error(toy, run_gate):
    """Counters recorded by the calibration benchmark, or through request.getfixturevalue('pcct_gate'),
    were silently dropped: never saved, never checked (gate red team)."""
    toy.makepyfile(test_dropped="""
        import pytest


        def _record(gate):
            gate.record({"steps": 1}, engine="toy", dataset_digest="d", config_digest="c",
                        schema="toy.counters", schema_version=1)


        def test_dynamic(benchmark, request):
            benchmark(sum, range(10))
            _record(request.getfixturevalue("pcct_gate"))
    """)
    result = run_gate("--pcct-gate=counters", "--pcct-update-baselines")
    result.assert_outcomes(passed=3, failed=1)
    result.stdout.fnmatch_lines(["*pcct_gate was requested while the test ran (request.getfixturevalue)*"])
    alone = run_gate("--pcct-update-baselines", "test_dropped.py", "-p", "no:randomly")  # nothing else gated
    alone.assert_outcomes(failed=1)
    source = (toy.path / "test_toy.py").read_text()
    (toy.path / "test_toy.py").write_text(source.replace("def test_calibration(benchmark):",
                                                         "def test_calibration(benchmark, pcct_gate):"))
    result = run_gate("--pcct-gate=counters", "--pcct-update-baselines", "test_toy.py")
    result.assert_outcomes(passed=2, errors=1)
    result.stdout.fnmatch_lines(["*the calibration benchmark's counters are never gated*"])


def test_a_skipped_calibration_fails_only_where_it_is_judged(recorded, run_gate, monkeypatch):
    monkeypatch.setenv("TOY_SKIP", "calibration")
    run_gate("--pcct-gate=counters").assert_outcomes(passed=2, skipped=1)  # counters use no calibration
    result = run_gate("--benchmark-compare")
    result.assert_outcomes(failed=3)
    result.stdout.fnmatch_lines(
        ["*test_toy.py::test_calibration was skipped (the toy skips its calibration)*"])


def _edit_timing_entry(project, test, edit):
    path = _timing_file(project)
    run = json.loads(path.read_text())
    edit(next(b for b in run["benchmarks"] if b["fullname"] == f"test_toy.py::{test}"))
    path.write_text(json.dumps(run))
    return path


@pytest.mark.parametrize(("edit", "problem"), [
    (lambda paired: paired.update(ratios=[r * 1000 for r in paired["ratios"]]),
     "the median paired ratio * disagrees with its median seconds over median calibration, *"),
    (lambda paired: paired.update(ratios=paired["ratios"][:1]),
     "1 paired ratios, but the gate records at least 20"),
    (lambda paired: paired.update(ratios=paired["ratios"] * 2),
     "* paired ratios for * rounds in its stats"),
], ids=["ratios-times-1000", "one-ratio", "more-ratios-than-rounds"])
def test_damaged_paired_ratios_are_a_corrupt_file(recorded, run_gate, monkeypatch, edit, problem):
    """Ratios scaled by 1000 would pass any slowdown; one ratio would make every verdict inconclusive."""
    path = _edit_timing_entry(recorded, "test_work", lambda bench: edit(bench["extra_info"]["pcct_paired"]))
    monkeypatch.setenv("TOY_SLOWDOWN_WORK", "4")
    result = run_gate("--benchmark-compare", "--benchmark-min-rounds=20")
    result.assert_outcomes(passed=2, errors=1)
    result.stdout.fnmatch_lines([f"pytest-pcct gate: {path}: the timing baseline of test_toy.py::test_work "
                                 f"is damaged: {problem}; re-record it with:"])


def test_ratios_scaled_with_their_calibration_are_warned_of(recorded, run_gate, monkeypatch):
    """An outside trial kept the median check happy: ratios times 3.5 with the calibration over 3.5 passed
    a 4x slowdown. The calibration then disagrees with the same run's calibration test, which a machine
    whose speed changed while the baseline was recorded does too (the ratios absorb that by design): a
    warning naming both readings, the verdict standing on the ratios."""
    def scaled(bench):
        paired = bench["extra_info"]["pcct_paired"]
        paired.update(ratios=[r * 3.5 for r in paired["ratios"]], calibration=paired["calibration"] / 3.5)

    path = _edit_timing_entry(recorded, "test_work", scaled)
    result = run_gate("--benchmark-compare", "--benchmark-min-rounds=20")
    result.assert_outcomes(passed=3)
    result.stdout.fnmatch_lines([f"*GateCalibrationWarning: pytest-pcct gate: {path}: the timing baseline of "
                                 "test_toy.py::test_work has a median calibration round of * where the same "
                                 "run's calibration test took * (3.*x): the file was edited*"])
    assert result.stdout.str().count("has a median calibration round of") == 1


@pytest.mark.parametrize(("edit", "problem"), [
    (lambda paired: paired.update(ratios=["f", *paired["ratios"][1:]]),
     "holds a field of the wrong kind (the paired ratios must be a list of numbers)"),
    (lambda paired: paired.update(ratios=[str(r) for r in paired["ratios"]]),  # float() read each
     "holds a field of the wrong kind (the paired ratios must be a list of numbers)"),
    (lambda paired: paired.update(ratios="ratios"),  # read letter by letter
     "holds a field of the wrong kind (the paired ratios must be a list of numbers)"),
    (lambda paired: paired.pop("ratios"), "lacks 'ratios'"),
], ids=["a-ratio-of-text", "ratios-as-text", "a-text-for-ratios", "no-ratios"])
def test_a_paired_field_of_the_wrong_kind_is_named_as_such(recorded, run_gate, edit, problem):
    """'lacks could not convert string to float' read as nonsense (an outside trial)."""
    path = _edit_timing_entry(recorded, "test_work", lambda bench: edit(bench["extra_info"]["pcct_paired"]))
    result = run_gate("--benchmark-compare", "--benchmark-min-rounds=20")
    result.assert_outcomes(passed=2, errors=1)
    result.stdout.fnmatch_lines([f"pytest-pcct gate: {path}: the timing baseline of test_toy.py::test_work "
                                 f"{problem} (saved without pytest-pcct*"])


def test_a_changed_calibration_kernel_is_incomparable(recorded, run_gate, monkeypatch):
    """Three times the calibration work and three times the benchmark's: the ratios look unchanged, but
    they are measured against another kernel, so the baselines no longer apply."""
    monkeypatch.setenv("TOY_CALIBRATION_NS", "3000000")
    monkeypatch.setenv("TOY_SLOWDOWN_WORK", "3")
    result = run_gate("--benchmark-compare")
    result.assert_outcomes(passed=1, failed=2)
    result.stdout.fnmatch_lines(["*: the timing baseline of test_toy.py::test_work was measured against "
                                 "another calibration kernel (its code or arguments changed since), so its "
                                 "ratios and this run's are incomparable; re-record it with:"])
    monkeypatch.delenv("TOY_CALIBRATION_NS")
    monkeypatch.delenv("TOY_SLOWDOWN_WORK")
    _edit_timing_entry(recorded, "test_work",
                       lambda bench: bench["extra_info"]["pcct_calibration"].pop("kernel"))
    result = run_gate("--benchmark-compare")
    result.assert_outcomes(passed=2, failed=1)
    result.stdout.fnmatch_lines(["*: the timing baseline of test_toy.py::test_work was measured against a "
                                 "calibration kernel of unknown identity (recorded before pytest-pcct "
                                 "fingerprinted it), *"])


def test_a_run_saved_where_baselines_are_read_is_refused(recorded, run_gate):
    """Saved elsewhere than baselines/, a run is still where --benchmark-compare takes the baselines from:
    a failing run would become the next run's baseline."""
    (recorded.path / "elsewhere").mkdir()
    result = run_gate("--benchmark-storage=elsewhere", "--benchmark-autosave")
    assert result.ret == pytest.ExitCode.USAGE_ERROR  # before any test: pytest-benchmark saves the run
    result.stderr.fnmatch_lines([  # even when every gated test errors, and the next run compares with it
        "ERROR: pytest-pcct gate: --benchmark-save/--benchmark-autosave would store this run, regressions "
        "included, where the time gate takes its baselines from*",
        "  python -m pytest * --benchmark-storage=elsewhere *--benchmark-compare"])
    [command] = [line for line in result.stderr.lines if line.startswith("  python -m pytest")]
    assert "--benchmark-autosave" not in command
    assert not list((recorded.path / "elsewhere").rglob("*.json"))
    result = run_gate("--benchmark-save=mine", "--pcct-update-baselines", "--benchmark-storage=elsewhere")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["ERROR: pytest-pcct gate: --pcct-update-baselines saves the timing "
                                 "baselines itself; drop --benchmark-save/--benchmark-autosave"])


def _with_a_slower_copy(project, monkeypatch):
    """The committed timing run, test_work's entry and a copy of it with every time and paired ratio 3x
    (consistent in itself); and test_work made 2.5x slower, which that copy as the baseline would pass."""
    path = _timing_file(project)
    run = json.loads(path.read_text())
    work = next(b for b in run["benchmarks"] if b["fullname"] == "test_toy.py::test_work")
    slower = copy.deepcopy(work)
    paired = slower["extra_info"]["pcct_paired"]
    paired["ratios"] = [3 * ratio for ratio in paired["ratios"]]
    paired["seconds"] *= 3
    for stat, value in slower["stats"].items():
        if isinstance(value, float):
            slower["stats"][stat] = value / 3 if stat == "ops" else value * 3
    monkeypatch.setenv("TOY_SLOWDOWN_WORK", "2.5")
    return path, run, work, slower


def test_a_duplicate_timing_entry_cannot_hide_a_slowdown(recorded, run_gate, monkeypatch):
    """A bad merge appended the slower copy to the committed run: the last entry was the baseline."""
    path, run, _, slower = _with_a_slower_copy(recorded, monkeypatch)
    path.write_text(json.dumps({**run, "benchmarks": [*run["benchmarks"], slower]}))
    result = run_gate("--benchmark-compare")
    result.assert_outcomes(passed=1, errors=2)  # the calibration is never compared
    result.stdout.fnmatch_lines([f"pytest-pcct gate: {path}: holds two entries for benchmark "
                                 "'test_toy.py::test_work' (a bad merge?), so which one is its baseline is "
                                 "unknown", "Repair or delete the file, then re-record *"])


def test_a_stray_saved_run_cannot_hide_a_slowdown(recorded, run_gate, monkeypatch):
    """A hand-made 0002_manual.json beside the committed run was the baseline (--benchmark-compare takes the
    newest). Checks and updates are refused, naming every file, whatever --benchmark-compare selects."""
    path, run, work, slower = _with_a_slower_copy(recorded, monkeypatch)
    committed = path.read_text()
    stray = path.with_name("0002_manual.json")
    benches = [slower if bench is work else bench for bench in run["benchmarks"]]
    stray.write_text(json.dumps({**run, "benchmarks": benches}))
    refusal = (f"pytest-pcct gate: {path.parent} must hold one saved pytest-benchmark run, the committed "
               "timing baselines (0001_pcct.json as --pcct-update-baselines writes them), but it holds 2: "
               "0001_pcct.json, 0002_manual.json. --benchmark-compare would take the newest, *")
    for args in (("--benchmark-compare",), ("--benchmark-compare=0001",), ("--pcct-update-baselines",)):
        result = run_gate(*args)
        result.assert_outcomes(errors=3)
        result.stdout.fnmatch_lines([refusal])
    assert path.read_text() == committed and stray.exists()  # the update wrote nothing
    stray.unlink()
    result = run_gate("--benchmark-compare")
    result.assert_outcomes(passed=2, failed=1)
    result.stdout.fnmatch_lines(["*test_toy.py::test_work*2.50x (limit 1.50x)*FAILED"])
