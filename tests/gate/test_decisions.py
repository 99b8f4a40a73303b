"""The gate's rules as plain functions: counters, calibrated time, noise floor, and the fix commands."""

import subprocess
import sys

import pytest

from pytest_pcct.gate import commands as gate_commands
from pytest_pcct.gate import rules as gate
from pytest_pcct.gate.errors import GateInputError as InvalidInputError
from pytest_pcct.gate.errors import GateTypeError as InputTypeError

IDENTITY = {"engine": "gold", "dataset_digest": "d", "config_digest": "c"}


def test_equal_counters_pass_and_any_change_fails_by_default():
    same = gate.compare_counters(IDENTITY, {"a": 5, "b": 7}, IDENTITY, {"a": 5, "b": 7})
    assert same.ok and same.summary() == "2 equal"
    more = gate.compare_counters(IDENTITY, {"a": 5}, IDENTITY, {"a": 6})
    fewer = gate.compare_counters(IDENTITY, {"a": 5}, IDENTITY, {"a": 4})
    assert not more.ok and not fewer.ok
    assert more.rows[0].describe() == "a: baseline 5, current 6 (+1, ratio 1.2000, exact)"


def test_added_or_removed_counters_fail():
    verdict = gate.compare_counters(IDENTITY, {"a": 1, "gone": 2}, IDENTITY, {"a": 1, "new": 3})
    assert not verdict.ok and verdict.summary() == "2 of 3 changed"
    text = [row.describe() for row in verdict.rows if not row.ok]
    assert text == ["gone: baseline 2, missing from this run",
                    "new: new counter, current 3 (not in the baseline)"]


def test_tolerance_is_relative_and_can_be_per_counter():
    assert gate.compare_counters(IDENTITY, {"a": 100}, IDENTITY, {"a": 110}, 0.10).ok
    assert not gate.compare_counters(IDENTITY, {"a": 100}, IDENTITY, {"a": 111}, 0.10).ok
    mixed = gate.compare_counters(IDENTITY, {"a": 100, "b": 100}, IDENTITY, {"a": 105, "b": 101}, {"a": 0.05})
    assert [row.ok for row in mixed.rows] == [True, False]
    with pytest.raises(InvalidInputError, match="does not have: \\['typo'\\]"):
        gate.compare_counters(IDENTITY, {"a": 1}, IDENTITY, {"a": 1}, {"typo": 0.1})


def test_identity_mismatch_makes_counters_incomparable():
    verdict = gate.compare_counters(IDENTITY, {"a": 1}, {**IDENTITY, "engine": "rust"}, {"a": 1})
    assert not verdict.ok and verdict.summary() == "incomparable"
    assert verdict.mismatch == ["engine: baseline 'gold', current 'rust'"]


def test_time_is_judged_relative_to_the_calibration():
    slower_machine = gate.compare_time(current=0.020, calibration=0.002, baseline=0.010,
                                       baseline_calibration=0.001, threshold=1.5, noise_floor=0.001)
    assert slower_machine.slowdown == pytest.approx(1.0) and slower_machine.ok
    regression = gate.compare_time(current=0.020, calibration=0.001, baseline=0.010,
                                   baseline_calibration=0.001, threshold=1.5, noise_floor=0.001)
    assert regression.slowdown == pytest.approx(2.0) and not regression.ok
    assert regression.expected == pytest.approx(0.010)
    assert "slowdown 2.000x vs threshold 1.500x" in regression.describe()
    assert "baseline 10 ms at calibration 1 ms (ratio 10)" in regression.describe()


def test_noise_floor_keeps_microsecond_jitter_from_failing():
    jitter = gate.compare_time(current=30e-6, calibration=0.001, baseline=10e-6, baseline_calibration=0.001,
                               threshold=1.5, noise_floor=0.001)
    assert jitter.slowdown == pytest.approx(3.0) and jitter.ok
    no_floor = gate.compare_time(current=30e-6, calibration=0.001, baseline=10e-6,
                                 baseline_calibration=0.001, threshold=1.5, noise_floor=0.0)
    assert not no_floor.ok


@pytest.mark.parametrize(("call", "error", "match"), [
    (lambda: gate.parse_threshold(0.9), InvalidInputError, "must be >= 1"),
    (lambda: gate.parse_threshold("fast"), InvalidInputError, "must be a number"),
    (lambda: gate.parse_noise_floor(-1.0), InvalidInputError, "finite and >= 0"),
    (lambda: gate.parse_tolerance(True), InputTypeError, "must be a number"),
    (lambda: gate.parse_tolerance({"a": float("nan")}), InvalidInputError, "tolerance\\['a'\\]"),
    (lambda: gate.compare_time(current=0.0, calibration=1, baseline=1, baseline_calibration=1, threshold=1.5,
                               noise_floor=0), InvalidInputError, "current time must be > 0"),
])
def test_bad_settings_are_errors_naming_the_setting(call, error, match):
    with pytest.raises(error, match=match):
        call()


def test_seconds_are_printed_with_a_readable_unit():
    assert [gate.seconds(x) for x in (2.5, 0.0042, 3.1e-6, 5e-9)] == ["2.5 s", "4.2 ms", "3.1 us", "5 ns"]


def test_fix_commands_edit_the_users_invocation():
    args = ("benchmarks", "-n", "2", "--benchmark-compare=0001", "-q")
    assert gate_commands.serial_command(args) == (
        "python -m pytest benchmarks --benchmark-compare=0001 -q -p no:xdist")
    assert gate_commands.update_command(args, counters_only=False) == (
        "python -m pytest benchmarks -q -p no:xdist --pcct-update-baselines")
    assert gate_commands.update_command(("-n2", "--pcct-gate", "counters"), counters_only=True) == (
        "python -m pytest -n2 --pcct-gate=counters --pcct-update-baselines")
    assert gate_commands.counters_command(("--numprocesses=2", "--pcct-gate=all", "x y")) == (
        "python -m pytest --numprocesses=2 'x y' --pcct-gate=counters")


def test_the_gate_loads_without_covertreex_numpy_or_numba():
    """Outside projects gate their own benchmarks: importing the gate costs none of our dependencies."""
    code = ("import sys; import pytest_pcct.gate_plugin, pytest_pcct.gate.session, pytest_pcct.gate.report; "
            "print(sorted(m for m in ('covertreex', 'numpy', 'numba') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
