"""The work-counter gate through pytester: real gold queries with a work-adding engine flag, tolerances,
identity checks, and counters-only mode under xdist."""

import json


def test_engine_flag_adding_distance_evaluations_fails_the_counter_gate(covertreex_project, run_gate,
                                                                         monkeypatch):
    counters_only = ("--pcct-gate=counters", "--benchmark-disable")
    run_gate(*counters_only, "--pcct-update-baselines").assert_outcomes(passed=1)
    run_gate(*counters_only).assert_outcomes(passed=1)
    monkeypatch.setenv("PCCT_TEST_OVERFETCH", "1")
    result = run_gate(*counters_only)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines([
        "*_ test_query_work _*",
        "pytest-pcct gate: work-counter regression in test_cover.py::test_query_work (baseline *.json):",
        "  distance_evaluations: baseline *, current * (+*, ratio 1.*, exact)",
        "*test_cover.py::test_query_work*changed*FAILED",
    ])
    stored = json.loads(next((covertreex_project.path / "baselines" / "counters").glob("*.json")).read_text())
    assert stored["engine"] == "gold_overfetch" and stored["schema"] == "covertreex.query_telemetry"
    assert len(stored["dataset_digest"]) == 64 and len(stored["config_digest"]) == 64
    assert stored["machine"]["cpu_count"] >= 1 and stored["counters"]["distance_evaluations"] > 0
    assert f"baseline {stored['counters']['distance_evaluations']}, current " in result.stdout.str()


def test_tolerance_marker_allows_declared_drift_only(toy, run_gate, monkeypatch):
    counters_only = ("--pcct-gate=counters", "--benchmark-disable")
    run_gate(*counters_only, "--pcct-update-baselines").assert_outcomes(passed=3)
    monkeypatch.setenv("TOY_STEPS_LENIENT", "1080")  # +8%, declared tolerance 10%
    monkeypatch.setenv("TOY_STEPS_WORK", "1001")  # +1 on an exact counter
    result = run_gate(*counters_only)
    result.assert_outcomes(passed=2, failed=1)
    result.stdout.fnmatch_lines(["*steps: baseline 1000, current 1001 (+1, ratio 1.0010, exact)",
                                 "*test_toy.py::test_lenient*1 equal, 1 within tolerance*PASSED",
                                 "*test_toy.py::test_work*1 of 2 changed*FAILED"])
    monkeypatch.setenv("TOY_STEPS_LENIENT", "1120")
    result = run_gate(*counters_only)
    result.stdout.fnmatch_lines(
        ["*steps: baseline 1000, current 1120 (+120, ratio 1.1200, tolerance 10.00%)"])


def _counters_after(run_gate, monkeypatch, variable: str, value: str):
    """The counter gate's run after recording the toy's baselines, then setting `variable`."""
    run_gate("--pcct-gate=counters", "--pcct-update-baselines").assert_outcomes(passed=3)
    monkeypatch.setenv(variable, value)
    return run_gate("--pcct-gate=counters")


def test_fewer_counters_also_fail_because_the_baseline_is_stale(toy, run_gate, monkeypatch):
    """A drop was told as a 'regression', with no word of the stale baseline or how to record it again."""
    result = _counters_after(run_gate, monkeypatch, "TOY_STEPS_WORK", "900")
    result.assert_outcomes(passed=2, failed=1)
    result.stdout.fnmatch_lines([
        "pytest-pcct gate: work counters fell (the baseline is stale: counters are deterministic, and one "
        "left high would hide the next regression) in test_toy.py::test_work (baseline *.json):",
        "  steps: baseline 1000, current 900 (-100, ratio 0.9000, exact)",
        "If the change is intended, re-record with:",
        "  python -m pytest * --pcct-gate=counters --pcct-update-baselines",
    ])


def test_changed_configuration_is_incomparable_not_a_pass(toy, run_gate, monkeypatch):
    result = _counters_after(run_gate, monkeypatch, "TOY_CONFIG", "config-2")
    result.assert_outcomes(passed=1, failed=2)
    result.stdout.fnmatch_lines([
        "pytest-pcct gate: work counters of test_toy.py::test_work are not comparable with *: "
        "config_digest: baseline 'config-1', current 'config-2'. *re-record with:",
        "  python -m pytest * --pcct-gate=counters --pcct-update-baselines",
    ])


def test_bad_tolerance_marker_is_an_error_naming_it(pytester, run_gate):
    pytester.makepyfile(test_bad='''
import pytest

@pytest.mark.pcct_counters(tolerence=0.1)
def test_it(benchmark, pcct_gate):
    benchmark(int)
    pcct_gate.record({"n": 1}, engine="e", dataset_digest="d", config_digest="c", schema="s",
                     schema_version=1)
''')
    result = run_gate("--pcct-gate=counters", "--pcct-update-baselines")
    result.assert_outcomes(errors=1)
    expected = "pcct_counters takes only keyword arguments ['tolerance']; got ['tolerence']"
    assert expected in result.stdout.str()


def test_counters_only_mode_runs_under_xdist_and_concurrent_writers_lose_nothing(pytester, run_gate):
    body = "\n".join(
        f'''
def test_b{i}(benchmark, pcct_gate):
    benchmark(sum, range({i}))
    pcct_gate.record({{"n": {i}}}, engine="e", dataset_digest="d", config_digest="c", schema="s",
                     schema_version=1)
''' for i in range(24))
    pytester.makepyfile(test_many=body)
    update = run_gate("-n", "2", "--pcct-gate=counters", "--pcct-update-baselines", subprocess=True)
    update.assert_outcomes(passed=24)
    files = list((pytester.path / "baselines" / "counters").glob("*.json"))
    assert len(files) == 24
    assert sorted(json.loads(f.read_text())["counters"]["n"] for f in files) == list(range(24))
    check = run_gate("-n", "2", "--pcct-gate=counters", "--pcct-gate-report=gate.json", subprocess=True)
    check.assert_outcomes(passed=24)
    check.stdout.fnmatch_lines(["*pcct regression gate*", "*test_many.py::test_b9*1 equal*PASSED"])
    report = json.loads((pytester.path / "gate.json").read_text())
    assert len(report["results"]) == 24 and all(r["outcome"] == "passed" for r in report["results"])


def test_a_tolerance_naming_no_counter_is_refused_when_recording_too(pytester):
    """It was accepted by --pcct-update-baselines and refused only by the next check."""
    pytester.makepyfile(test_typo='''
import pytest


@pytest.mark.pcct_counters(tolerance={"stepz": 0.1})
def test_typo(pcct_gate):
    pcct_gate.record({"steps": 7}, engine="toy", dataset_digest="d", config_digest="c", schema="s",
                     schema_version=1)
''')
    result = pytester.runpytest("-p", "no:cacheprovider", "--pcct-gate=counters", "--pcct-update-baselines")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*tolerance names counters this benchmark does not have: [[]'stepz'[]]*"])
    assert not list(pytester.path.glob("baselines/counters/*.json"))


def test_a_counter_its_reader_would_refuse_fails_the_test_that_records_it(pytester):
    """-1 and 2**64 were written by the update, refused as damage by the next run, and written again by the
    re-record command it printed (an outside user's trial)."""
    pytester.makepyfile(test_negative='''
def test_counted(pcct_gate):
    pcct_gate.record({"steps": -1, "big": 2**64}, engine="toy", dataset_digest="d", config_digest="c",
                     schema="s", schema_version=1)
''')
    result = pytester.runpytest("-p", "no:cacheprovider", "--pcct-gate=counters", "--pcct-update-baselines")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["E *GateInputError: pcct_gate.record: counter 'steps' must be an integer "
                                 "in [[]0, 2**63), got -1"])
    assert not list(pytester.path.glob("baselines/counters/*.json"))
