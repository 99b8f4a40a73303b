"""The instruction leg end to end, under the real valgrind: a pytest run in mode instructions relaunches
itself under callgrind, records a benchmark's instruction count, passes unchanged code, and fails a call that
does 1.5x the work, printing the command that re-records (which is then run as printed)."""

import shlex

import pytest

PROJECT = '''
import os

import pytest


def work(n):
    return sum(i * i for i in range(n))


@pytest.mark.pcct_instructions
def test_counted(benchmark, pcct_gate):
    benchmark(work, int(os.environ.get("WORK_N", "20000")))
    pcct_gate.record({"steps": 1}, engine="mine", dataset_digest="d", config_digest="c", schema="s",
                     schema_version=1)


@pytest.mark.pcct_instructions(tolerance=0.6)
def test_lenient(benchmark, pcct_gate):
    benchmark.pedantic(work, args=(int(os.environ.get("WORK_N", "20000")),), rounds=3)
    pcct_gate.record({"steps": 1}, engine="mine", dataset_digest="d", config_digest="c", schema="s",
                     schema_version=1)
'''

GATE = ("-p", "no:xdist", "-p", "no:pcct", "--pcct-gate=instructions")


@pytest.fixture
def counted(pytester):
    pytester.makepyfile(test_bench=PROJECT)
    return pytester


def test_instruction_counts_record_pass_and_catch_a_1_5x_slowdown(counted, monkeypatch):
    recorded = counted.runpytest_subprocess(*GATE, "--pcct-update-baselines")
    recorded.assert_outcomes(passed=2)
    recorded.stdout.fnmatch_lines(["*test_bench.py::test_counted*recorded *,*UPDATED"])
    assert len(list(counted.path.glob("baselines/instructions/*.json"))) == 2
    assert not list(counted.path.glob("baselines/counters/*.json"))  # counters are the other modes' job

    unchanged = counted.runpytest_subprocess(*GATE)
    unchanged.assert_outcomes(passed=2)
    unchanged.stdout.fnmatch_lines(["*test_bench.py::test_counted*x (limit +-1.00%)*PASSED"])

    monkeypatch.setenv("WORK_N", "30000")
    slower = counted.runpytest_subprocess(*GATE)
    slower.assert_outcomes(passed=1, failed=1)  # test_lenient allows 60%
    slower.stdout.fnmatch_lines([
        "pytest-pcct gate: instruction-count regression in test_bench.py::test_counted (baseline *):",
        "  instructions: baseline *, current * (+*, ratio 1.4*, tolerance 1.00%)",
        "If the change is intended, re-record with:",
        "  python -m pytest --basetemp=* -p no:xdist -p no:pcct --pcct-gate=instructions "
        "--pcct-update-baselines",
    ])
    rerecord = shlex.split(slower.stdout.lines[slower.stdout.lines.index(
        "If the change is intended, re-record with:") + 1])
    own = [arg for arg in rerecord[3:] if not arg.startswith("--basetemp")]  # pytester adds its own
    counted.runpytest_subprocess(*own).assert_outcomes(passed=2)
    counted.runpytest_subprocess(*GATE).assert_outcomes(passed=2)


def test_an_in_process_run_cannot_count_and_says_how_to(counted):
    """pytester's inline run cannot be relaunched under valgrind: the gate names the command instead."""
    result = counted.runpytest(*GATE)
    result.assert_outcomes(errors=2)
    result.stdout.fnmatch_lines(["*this session is not running under callgrind*",
                                 "*python -m pytest -p no:xdist -p no:pcct --basetemp=* "
                                 "--pcct-gate=instructions"])
    printed = next(line for line in result.stdout.lines if line.strip().startswith("python -m pytest"))
    own = [arg for arg in shlex.split(printed)[3:] if not arg.startswith("--basetemp")]
    ran = counted.runpytest_subprocess(*own)  # relaunched under callgrind: now it only lacks baselines
    ran.assert_outcomes(errors=2)
    ran.stdout.fnmatch_lines(["*no instruction-count baseline for test_bench.py::test_counted*"])
