"""The gate's rules as plain functions: counters, calibrated time, noise floor, and the fix commands."""

import functools
import math
import os
import random
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


def _paired(speeds, work=10e-3, calibration=1e-3, slowdown=1.0):
    """Recorded rounds of a machine whose speed factor per round is `speeds` (both members of a pair run at
    the same speed): (ratios, median seconds, median calibration seconds)."""
    times = [work * slowdown * s for s in speeds]
    calibrations = [calibration * s for s in speeds]
    ratios = [t / c for t, c in zip(times, calibrations, strict=True)]
    return ratios, sorted(times)[len(times) // 2], sorted(calibrations)[len(times) // 2]


def _judge(current, baseline, threshold=1.5, noise_floor=0.0):
    ratios, seconds, calibration = current
    return gate.compare_time(ratios=ratios, baseline_ratios=baseline[0], round_seconds=seconds,
                             calibration=calibration, threshold=threshold, noise_floor=noise_floor)


def _noisy(n, seed, slowdown=1.0, spread=0.05):
    """Rounds whose benchmark member alone jitters by up to +-spread (noise the pairing cannot cancel)."""
    rng = random.Random(seed)
    ratios = [10.0 * slowdown * rng.uniform(1 - spread, 1 + spread) for _ in range(n)]
    return ratios, 10e-3 * slowdown, 1e-3


def test_median_bounds_are_order_statistics_with_the_stated_coverage():
    low, median, high = gate.median_bounds(range(1, 21))
    assert (low, median, high) == (4, 10.5, 17)  # n = 20 at 99%: the 4th smallest and largest
    assert gate.median_bounds([3.0] * 7)[0] == 0.0 and gate.median_bounds([3.0] * 7)[2] == math.inf
    misses, trials = 0, 2000
    rng = random.Random(0)
    for _ in range(trials):  # coverage of the true median 0 of a symmetric distribution
        low, _, high = gate.median_bounds([rng.gauss(0, 1) for _ in range(25)])
        misses += not low <= 0 <= high
    assert misses / trials <= 0.01 + 3 * math.sqrt(0.01 * 0.99 / trials)


def test_a_drifting_machine_cancels_in_the_pairs():
    """The machine slows down 2x over the run (thermal throttling, a neighbour starting): each pair drifts
    together, so the ratio and the verdict do not move."""
    baseline = _paired([1.0] * 20)
    drifting = _paired([1 + i / 19 for i in range(20)])
    verdict = _judge(drifting, baseline)
    assert verdict.slowdown == pytest.approx(1.0) and verdict.outcome == "passed"


def test_a_bimodal_machine_does_not_raise_a_false_alarm():
    """Rounds land on a fast or a 1.6x slower mode at random (a co-tenant switching on and off); the mode
    changes between pairs, and in 1 pair of 10 between the two members of a pair."""
    rng = random.Random(1)
    speeds, ratios = [], []
    for _ in range(40):
        mode = rng.choice((1.0, 1.6))
        other = mode if rng.random() > 0.1 else 2.6 - mode
        speeds.append(mode)
        ratios.append(10.0 * mode / other)
    baseline = _noisy(40, 2)
    current = (ratios, 10e-3 * 1.6, 1e-3 * 1.6)
    assert _judge(current, baseline).outcome == "passed"


def test_a_1_5x_slowdown_is_never_passed_and_fails_when_measured_cleanly():
    baseline = _noisy(20, 3)
    noisy = _judge(_noisy(20, 4, slowdown=1.5), baseline)
    assert noisy.slowdown == pytest.approx(1.5, rel=0.05) and noisy.outcome in ("inconclusive", "failed")
    clean = _judge(_paired([1.0] * 20, slowdown=1.5), _paired([1.0] * 20))
    assert clean.outcome == "failed" and not clean.ok
    assert "slowdown 1.500x, 99% bounds [1.500x, 1.500x] vs threshold 1.500x" in clean.describe()
    assert _judge(_noisy(20, 5, slowdown=1.8), baseline).outcome == "failed"


def test_a_1_2x_slowdown_below_the_threshold_passes():
    verdict = _judge(_noisy(20, 6, slowdown=1.2), _noisy(20, 7))
    assert verdict.slowdown == pytest.approx(1.2, rel=0.05) and verdict.outcome == "passed"


def test_too_few_or_too_noisy_rounds_are_inconclusive_not_passed():
    few = _judge(_paired([1.0] * 5, slowdown=1.3), _paired([1.0] * 5))
    assert few.bounds[1] == math.inf and few.outcome == "inconclusive"
    noisy = _judge(_noisy(20, 8, slowdown=1.3, spread=0.6), _noisy(20, 9, spread=0.6))
    assert noisy.outcome == "inconclusive"


def test_noise_floor_keeps_microsecond_jitter_from_failing():
    tiny = _paired([1.0] * 20, work=10e-6, slowdown=3.0)
    jitter = _judge(tiny, _paired([1.0] * 20, work=10e-6), noise_floor=0.001)
    assert jitter.slowdown == pytest.approx(3.0) and jitter.ok and jitter.hidden_by_noise_floor
    assert not _judge(tiny, _paired([1.0] * 20, work=10e-6)).ok


@pytest.mark.parametrize(("call", "error", "match"), [
    (lambda: gate.parse_noise_floor(-1.0), InvalidInputError, "noise_floor must be a finite number >= 0"),
    (lambda: gate.parse_tolerance(True), InputTypeError, "tolerance must be a finite number >= 0, got True"),
    (lambda: gate.parse_tolerance({"a": float("nan")}), InvalidInputError, "tolerance\\['a'\\]"),
    (lambda: gate.compare_time(ratios=[1.0], baseline_ratios=[1.0], round_seconds=0.0, calibration=1,
                               threshold=1.5, noise_floor=0), InvalidInputError,
     "round_seconds must be a finite number of seconds > 0, got 0.0"),
    (lambda: gate.compare_time(ratios=[1.0, math.nan], baseline_ratios=[1.0], round_seconds=1, calibration=1,
                               threshold=1.5, noise_floor=0), InvalidInputError, "ratios must be"),
])
def test_bad_settings_are_errors_naming_the_setting(call, error, match):
    with pytest.raises(error, match=match):
        call()


@pytest.mark.parametrize("value", [-1, "-1", "nan", math.nan, "inf", 0.5, "0.5", 1, "1", "fast", None])
def test_every_bad_threshold_gets_one_message_stating_the_real_rule(value):
    """-1 and nan said "must be finite and >= 0", 0.5 "must be > 1": the rule is > 1 (at 1 any noise
    would fail) whatever is wrong with the value."""
    with pytest.raises(InputTypeError if value is None else InvalidInputError) as info:
        gate.parse_threshold(value, "--pcct-time-threshold")
    assert str(info.value) == ("--pcct-time-threshold must be a slowdown factor, a finite number > 1, got "
                               f"{value!r}")


def test_seconds_are_printed_with_a_readable_unit():
    assert [gate.seconds(x) for x in (2.5, 0.0042, 3.1e-6, 5e-9)] == ["2.5 s", "4.2 ms", "3.1 us", "5 ns"]


def test_fix_commands_edit_the_users_invocation():
    args = ("benchmarks", "-n", "2", "--benchmark-compare=0001", "-q")
    assert gate_commands.serial_command(args) == (
        "python -m pytest benchmarks --benchmark-compare=0001 -q -n 0")
    assert gate_commands.update_command(args, "all") == (
        "python -m pytest benchmarks -q -n 0 --pcct-update-baselines")
    assert gate_commands.update_command(("-n2", "--pcct-gate", "counters"), "counters") == (
        "python -m pytest -n2 --pcct-gate=counters --pcct-update-baselines")
    assert gate_commands.counters_command(("--numprocesses=2", "--pcct-gate=all", "x y")) == (
        "python -m pytest --numprocesses=2 'x y' --pcct-gate=counters")


def test_the_gate_loads_without_covertreex_numpy_or_numba():
    """Outside projects gate their own benchmarks: importing the gate costs none of our dependencies."""
    code = ("import sys; import pytest_pcct.gate_plugin, pytest_pcct.gate.session, pytest_pcct.gate.report; "
            "print(sorted(m for m in ('covertreex', 'numpy', 'numba') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def _helper(x):
    return x * 2.0


def _kernel(points, scale=1.0):
    return float(_helper(points * scale).sum()) if "a" in {"a", "b"} else 0.0


def test_the_calibration_kernel_fingerprint_follows_code_and_arguments_only():

    import numpy as np
    from numba import njit

    from pytest_pcct.gate.fingerprint import kernel_fingerprint

    def edited(points, scale=1.0):
        return float((points * scale).prod())

    edited.__qualname__ = _kernel.__qualname__  # the same name, another body
    points = np.arange(12.0).reshape(4, 3)
    fingerprint = kernel_fingerprint(_kernel, (points,), {"scale": 2.0})
    assert fingerprint == kernel_fingerprint(_kernel, (points.copy(),), {"scale": 2.0})
    assert fingerprint == kernel_fingerprint(njit(_kernel), (points,), {"scale": 2.0})  # through Numba
    changed = [kernel_fingerprint(_kernel, (points + 1,), {"scale": 2.0}),
               kernel_fingerprint(_kernel, (points,), {"scale": 3.0}),
               kernel_fingerprint(_kernel, (points.astype(np.float32),), {"scale": 2.0}),
               kernel_fingerprint(edited, (points,), {"scale": 2.0}),
               kernel_fingerprint(functools.partial(_kernel, scale=2.0), (points,), {}),
               kernel_fingerprint(functools.partial(_kernel, scale=3.0), (points,), {})]
    assert fingerprint not in changed and len(set(changed)) == len(changed)
    assert kernel_fingerprint(_kernel, (object(),), {}) == kernel_fingerprint(_kernel, (object(),), {})
    global _helper
    original = _helper
    try:
        _helper = lambda x: x * 3.0  # noqa: E731 - a helper the kernel calls, edited
        assert kernel_fingerprint(_kernel, (points,), {"scale": 2.0}) != fingerprint
    finally:
        _helper = original
    _kernel.__defaults__ = (5.0,)
    try:
        assert kernel_fingerprint(_kernel, (points,), {"scale": 2.0}) != fingerprint
    finally:
        _kernel.__defaults__ = (1.0,)


class _Sized:
    N = 10

    def __init__(self, n):
        self.n = n
        self.again = self.run  # an attribute holding its own bound method: visited once

    def run(self):
        return _helper(float(self.n))

    def run_class_size(self):
        return _helper(float(self.N))


def _closing_over(n):
    def kernel():
        return _helper(float(n))

    return kernel


def _repeated(times):
    def decorate(function):
        @functools.wraps(function)
        def wrapper(*args):
            for _ in range(times):
                function(*args)

        return wrapper

    return decorate


_SIZES = (1, 2)


def _over_sizes():
    return [_helper(float(size)) for size in _SIZES]


def test_the_fingerprint_follows_closures_bound_objects_classes_wrappers_and_tuples():
    """A calibration kernel changed through its closure, the object its method runs on, a class attribute,
    a wraps-decorator's settings or a tuple global had the same fingerprint, so a 4x slower benchmark
    passed as 0.77x against a kernel that now did 5x the work (gate red team)."""
    from pytest_pcct.gate.fingerprint import kernel_fingerprint

    def same(a, b):
        return kernel_fingerprint(a, (), {}) == kernel_fingerprint(b, (), {})

    assert same(_closing_over(5), _closing_over(5)) and not same(_closing_over(5), _closing_over(6))
    assert same(_Sized(5).run, _Sized(5).run) and not same(_Sized(5).run, _Sized(6).run)
    once, ten = _repeated(1)(_helper), _repeated(10)(_helper)
    assert kernel_fingerprint(once, (1.0,), {}) != kernel_fingerprint(ten, (1.0,), {})
    assert kernel_fingerprint(once, (1.0,), {}) == kernel_fingerprint(_repeated(1)(_helper), (1.0,), {})
    global _SIZES
    before = kernel_fingerprint(_over_sizes, (), {})
    _SIZES = (1, 3)
    try:
        assert kernel_fingerprint(_over_sizes, (), {}) != before
    finally:
        _SIZES = (1, 2)


def _over_data(data, label):
    def kernel():
        return _helper(float(len(data) + len(label)))

    return kernel


_NUMPY_TYPES = None


def _over_types():
    return [_helper(1.0) for _ in _NUMPY_TYPES]


def test_the_fingerprint_ignores_what_changes_between_runs_of_unchanged_code():
    """State a run cannot reproduce must not make a correct suite's baselines 'another kernel': unseeded
    data and a temporary path in a closure, a class attribute earlier tests count with; the fingerprint
    is taken before the kernel's first call (CalibrationCapture), so its own counters do not count. A
    tuple of NumPy types (classes with an array's attribute names) and a list holding itself are digested
    without error."""
    import numpy as np

    from pytest_pcct.gate.fingerprint import kernel_fingerprint
    from pytest_pcct.gate.paired import CalibrationCapture

    rng = np.random.default_rng()
    first = kernel_fingerprint(_over_data(rng.random(100), "/tmp/pytest-1/a"), (), {})
    assert first == kernel_fingerprint(_over_data(rng.random(100), "/tmp/pytest-2/b"), (), {})
    assert first != kernel_fingerprint(_over_data(rng.random(200), "/tmp/pytest-1/a"), (), {})  # the size
    before = kernel_fingerprint(_Sized(5).run_class_size, (), {})
    _Sized.N = 20  # a class attribute: by type only
    try:
        assert kernel_fingerprint(_Sized(5).run_class_size, (), {}) == before
    finally:
        _Sized.N = 10

    class Counting:
        def __init__(self):
            self.calls = 0

        def run(self):
            self.calls += 1

    timed = []
    capture = CalibrationCapture(lambda function, *args, **kwargs: timed.append(function()) or function())
    kernel = Counting()
    capture(kernel.run)
    assert kernel.calls == 2 and capture.fingerprint == kernel_fingerprint(Counting().run, (), {})
    global _NUMPY_TYPES
    _NUMPY_TYPES = (np.float32, np.float64)
    try:
        assert kernel_fingerprint(_over_types, (), {}) != kernel_fingerprint(_over_types, ((1,),), {})
    finally:
        _NUMPY_TYPES = None
    loop = [1]
    loop.append(loop)
    assert kernel_fingerprint(_helper, (loop,), {}) == kernel_fingerprint(_helper, (loop,), {})


class _Slotted:
    __slots__ = ("n", "tolerance")

    def __init__(self, n, tolerance=0.5):
        self.n, self.tolerance = n, tolerance

    def run(self):
        return _helper(float(self.n))


class _WithProperty:
    @property
    def size(self):
        return 10

    def run(self):
        return _helper(float(self.size))


def test_the_fingerprint_reads_sizes_in_slots_numpy_integers_properties_and_builtin_methods():
    """Different workloads that had one fingerprint (review): a __slots__ object's size, a NumPy integer
    size in a closure, a property's body, the array a built-in method runs on. A float an object holds (a
    fitted model's tolerance, drawn from data) is digested by type."""
    import numpy as np

    from pytest_pcct.gate.fingerprint import kernel_fingerprint

    def fingerprint(kernel):
        return kernel_fingerprint(kernel, (), {})

    assert fingerprint(_Slotted(10).run) != fingerprint(_Slotted(10**7).run)
    assert fingerprint(_Slotted(10, 0.1).run) == fingerprint(_Slotted(10, 0.2).run)
    assert fingerprint(_closing_over(np.int64(1000))) != fingerprint(_closing_over(np.int64(100000)))
    assert fingerprint(np.ones(10).sum) != fingerprint(np.ones(10**6).sum)
    before = fingerprint(_WithProperty().run)
    original = _WithProperty.size
    _WithProperty.size = property(lambda self: 1000)
    try:
        assert fingerprint(_WithProperty().run) != before
    finally:
        _WithProperty.size = original


def test_the_calibration_kernel_fingerprint_ignores_the_hash_seed():
    """A set constant and a set argument are digested in sorted order, not in the seed's order."""
    code = ("from tests.gate.test_decisions import _kernel\n"
            "from pytest_pcct.gate.fingerprint import kernel_fingerprint\n"
            "print(kernel_fingerprint(_kernel, ({'x', 'y', 'z'},), {}))")
    runs = {subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                           env={**os.environ, "PYTHONHASHSEED": seed}).stdout for seed in ("0", "1", "2")}
    assert len(runs) == 1


def test_the_noise_floor_stays_absolute_on_a_slower_machine():
    """A 1.7x slowdown the 1 ms floor hides at full speed fails where the machine (calibration included)
    runs 4x slower: the lost work takes 4x as long there. Scaling the floor by that slowness would have
    hidden a regression that slows the calibration kernel too (code under test spinning threads)."""
    baseline = _paired([1.0] * 20, work=1e-3, calibration=1e-3)
    fast, slow = (_judge(_paired([speed] * 20, work=1e-3, calibration=1e-3, slowdown=1.7), baseline,
                         noise_floor=0.001) for speed in (1.0, 4.0))
    assert fast.slowdown == pytest.approx(1.7) == slow.slowdown
    assert fast.ok and fast.hidden_by_noise_floor
    assert slow.outcome == "failed"
