"""Hostile baseline files (issue 16): implausible or absurd content is a CorruptFileError naming the file,
never a crash of the session and never a gate that passes everything; written files keep normal modes."""

import json
import os
import re

import pytest

from pytest_pcct.gate.baselines import CounterBaseline, CounterStore, TimingStore
from pytest_pcct.gate.errors import CorruptFileError

pytestmark = pytest.mark.filterwarnings("ignore::pytest_benchmark.logger.PytestBenchmarkWarning")

NODE = "benchmarks/test_x.py::test_y[gold]"


def _saved_counter(tmp_path, steps=10):
    baseline = CounterBaseline(benchmark=NODE, engine="gold", dataset_digest="d" * 64, config_digest="c" * 64,
                               schema="covertreex.query_telemetry", schema_version=1,
                               counters={"distance_evaluations": steps})
    return CounterStore(tmp_path), CounterStore(tmp_path).save(baseline)


@pytest.mark.parametrize(("content", "reason"), [
    ("[" * 100_000 + "]" * 100_000, "maximum recursion depth exceeded"),
    ('{"counters": {"steps": ' + "9" * 5000 + "}}", "Exceeds the limit (4300 digits)"),
    ('{"counters": {"steps": 1e999}}', "the number 1e999 is not finite in float64"),
    ('{"counters": {"steps": NaN}}', "NaN is not a JSON value"),
    ('{"counters": {"steps": 10, "steps": 20}}', "the key 'steps' appears twice in one object"),  # a merge
])
def test_absurd_json_is_a_corrupt_file_naming_it(tmp_path, content, reason):
    store, path = _saved_counter(tmp_path)
    path.write_text(content)
    with pytest.raises(CorruptFileError) as info:
        store.load(NODE)
    assert str(info.value).startswith(f"{path}: counter baseline is not a plausible JSON document (")
    assert reason in str(info.value)


def test_counter_beyond_int64_is_refused(tmp_path):
    store, path = _saved_counter(tmp_path)
    huge = f'"distance_evaluations": {2**64}'
    path.write_text(path.read_text().replace('"distance_evaluations": 10', huge))
    text = "counter 'distance_evaluations' must be an integer in [0, 2**63), got 18446744073709551616"
    with pytest.raises(CorruptFileError, match=re.escape(text)):
        store.load(NODE)


def _timing_run(tmp_path, stats_min=0.01, calibration_min=0.001):
    run = {"benchmarks": [{
        "fullname": "t.py::test_a", "options": {"timer": "process_time"},
        "stats": {"min": stats_min, "max": 0.02, "mean": 0.015, "rounds": 5},
        "extra_info": {"pcct_calibration": {"min": calibration_min, "timer": "process_time"}},
    }]}
    path = tmp_path / "0001_pcct.json"
    path.write_text(json.dumps(run))
    return path


@pytest.mark.parametrize(("stats_min", "calibration_min", "where"), [
    (1e308, 0.001, "benchmark 't.py::test_a' stat 'min' = 1e+308"),
    (0.01, 1e300, "benchmark 't.py::test_a' calibration stat 'min' = 1e+300"),
    (-1.0, 0.001, "benchmark 't.py::test_a' stat 'min' = -1.0"),
    (0.01, 1e-300, "benchmark 't.py::test_a' calibration stat 'min' = 1e-300"),
    ("0.01", 0.001, "benchmark 't.py::test_a' stat 'min' = '0.01'"),
])
def test_implausible_timing_is_a_corrupt_file(tmp_path, stats_min, calibration_min, where):
    path = _timing_run(tmp_path, stats_min, calibration_min)
    with pytest.raises(CorruptFileError, match="^" + re.escape(f"{path}: {where} is not a plausible time")):
        TimingStore(tmp_path).load()


def test_plausible_timing_is_read(tmp_path):
    _timing_run(tmp_path)
    entries, _ = TimingStore(tmp_path).load()
    assert entries["t.py::test_a"]["stats"]["min"] == 0.01


def test_written_baselines_get_normal_permissions(tmp_path):
    previous = os.umask(0o022)
    try:
        store, path = _saved_counter(tmp_path)
        assert path.stat().st_mode & 0o777 == 0o644
        path.chmod(0o640)
        store.save(CounterBaseline.from_json(json.loads(path.read_text()), path))
        assert path.stat().st_mode & 0o777 == 0o640
    finally:
        os.umask(previous)


@pytest.fixture
def gated(toy, run_gate):
    """The toy project with its baselines recorded."""
    run_gate("--pcct-update-baselines").assert_outcomes(passed=3)
    return toy


def test_timing_baseline_of_1e308_fails_closed_naming_the_file(gated, run_gate):
    path = next((gated.path / "baselines" / "benchmarks").glob("*/0001_pcct.json"))
    run = json.loads(path.read_text())
    for bench in run["benchmarks"]:
        bench["stats"]["min"] = 1e308
    path.write_text(json.dumps(run))
    result = run_gate("--benchmark-compare")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    line = f"pytest-pcct gate: {path}: benchmark * stat 'min' = 1e+308 is not a plausible time*"
    result.stdout.fnmatch_lines([line])
    result.assert_outcomes(passed=1, errors=2)  # only the calibration itself, which is never compared


def test_deeply_nested_counter_baseline_does_not_crash_the_session(gated, run_gate):
    path = next((gated.path / "baselines" / "counters").glob("test_toy-test_work.*.json"))
    path.write_text("[" * 100_000 + "]" * 100_000)
    result = run_gate("--benchmark-compare")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines([f"pytest-pcct gate: {path}: counter baseline is not a plausible JSON*"])
    assert "RecursionError" not in result.stdout.str() + result.stderr.str()
