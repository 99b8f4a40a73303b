"""Gate decisions: compare one benchmark's work counters and calibrated time with its baselines.

Pure functions over plain values, so every rule is testable without pytest:

* counters must equal the baseline exactly, unless a relative tolerance is declared (for all counters or
  per counter). A change in either direction fails: counters are deterministic, so a drop means the
  baseline is stale and would hide the next regression;
* time is judged as a ratio to the calibration kernel measured in the same run, compared with the same
  ratio in the baseline: ``slowdown = (t / c) / (t0 / c0)``. It fails only when the slowdown exceeds the
  threshold *and* the time lost, ``t - t0 * c / c0``, exceeds the absolute noise floor.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

from pytest_pcct.gate.errors import GateInputError, GateTypeError

TIME_STAT = "min"
"""The pytest-benchmark statistic compared: on a shared machine interference only ever adds time, so the
fastest round is the steadiest estimate of the work itself."""


def _nonnegative(value, name: str) -> float:
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            raise GateInputError(f"{name} must be a number, got {value!r}") from None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise GateTypeError(f"{name} must be a number, got {value!r}")
    if not math.isfinite(value) or value < 0:
        raise GateInputError(f"{name} must be finite and >= 0, got {value!r}")
    return float(value)


def parse_tolerance(tolerance, name: str = "tolerance") -> float | dict[str, float]:
    """A relative tolerance for every counter (number) or per counter name (mapping)."""
    if isinstance(tolerance, Mapping):
        return {str(k): _nonnegative(v, f"{name}[{k!r}]") for k, v in tolerance.items()}
    return _nonnegative(tolerance, name)


def parse_threshold(threshold, name: str = "threshold") -> float:
    """A slowdown factor (>= 1)."""
    value = _nonnegative(threshold, name)
    if value < 1.0:
        raise GateInputError(f"{name} is a slowdown factor and must be >= 1, got {threshold!r}")
    return value


def parse_noise_floor(noise_floor, name: str = "noise_floor") -> float:
    """An absolute time in seconds (>= 0)."""
    return _nonnegative(noise_floor, name)


def seconds(value: float) -> str:
    """A duration with a unit a reader does not have to convert."""
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("us", 1e-6)):
        if abs(value) >= scale:
            return f"{value / scale:.3g} {unit}"
    return f"{value / 1e-9:.3g} ns"


@dataclass(frozen=True)
class CounterRow:
    name: str
    baseline: int | None
    current: int | None
    tolerance: float

    @property
    def ok(self) -> bool:
        if self.baseline is None or self.current is None:
            return False
        return abs(self.current - self.baseline) <= self.tolerance * abs(self.baseline)

    def describe(self) -> str:
        allowed = "exact" if self.tolerance == 0 else f"tolerance {self.tolerance:.2%}"
        if self.baseline is None:
            return f"{self.name}: new counter, current {self.current} (not in the baseline)"
        if self.current is None:
            return f"{self.name}: baseline {self.baseline}, missing from this run"
        change = self.current - self.baseline
        ratio = self.current / self.baseline if self.baseline else math.inf
        return (f"{self.name}: baseline {self.baseline}, current {self.current} ({change:+d}, ratio "
                f"{ratio:.4f}, {allowed})")


@dataclass(frozen=True)
class CounterVerdict:
    rows: list[CounterRow]
    mismatch: list[str] = field(default_factory=list)
    """Identity fields that differ (engine, digests, schema): the counters are not comparable at all."""

    @property
    def ok(self) -> bool:
        return not self.mismatch and all(row.ok for row in self.rows)

    def summary(self) -> str:
        return summarize_counters(self.to_json())

    def to_json(self) -> dict:
        return {
            "ok": self.ok, "mismatch": self.mismatch,
            "counters": {r.name: {"baseline": r.baseline, "current": r.current, "tolerance": r.tolerance,
                                  "ok": r.ok} for r in self.rows},
        }


def summarize_counters(verdict: dict) -> str:
    """'3 equal', '2 equal, 1 within tolerance', '1 of 3 changed' or 'incomparable', from a counter
    verdict's JSON form (what the table shows)."""
    if verdict["mismatch"]:
        return "incomparable"
    rows = verdict["counters"].values()
    changed = sum(not row["ok"] for row in rows)
    if changed:
        return f"{changed} of {len(rows)} changed"
    drifted = sum(row["baseline"] != row["current"] for row in rows)
    equal = f"{len(rows) - drifted} equal"
    return f"{equal}, {drifted} within tolerance" if drifted else equal


def compare_counters(
    baseline_identity: Mapping, baseline: Mapping[str, int], current_identity: Mapping,
    current: Mapping[str, int], tolerance: float | Mapping[str, float] = 0.0,
) -> CounterVerdict:
    """Every counter of the baseline and of this run, side by side, with the tolerance that applies."""
    mismatch = [
        f"{key}: baseline {baseline_identity.get(key)!r}, current {current_identity.get(key)!r}"
        for key in sorted(set(baseline_identity) | set(current_identity))
        if baseline_identity.get(key) != current_identity.get(key)
    ]
    names = sorted(set(baseline) | set(current))
    if isinstance(tolerance, Mapping):
        unknown = sorted(set(tolerance) - set(names))
        if unknown:
            raise GateInputError(f"tolerance names counters this benchmark does not have: {unknown}")
    rows = [
        CounterRow(name, baseline.get(name), current.get(name),
                   tolerance.get(name, 0.0) if isinstance(tolerance, Mapping) else tolerance)
        for name in names
    ]
    return CounterVerdict(rows, mismatch)


@dataclass(frozen=True)
class TimeVerdict:
    current: float
    calibration: float
    baseline: float
    baseline_calibration: float
    threshold: float
    noise_floor: float

    @property
    def ratio(self) -> float:
        return self.current / self.calibration

    @property
    def baseline_ratio(self) -> float:
        return self.baseline / self.baseline_calibration

    @property
    def slowdown(self) -> float:
        return self.ratio / self.baseline_ratio

    @property
    def expected(self) -> float:
        """The baseline time rescaled to this run's machine speed."""
        return self.baseline_ratio * self.calibration

    @property
    def ok(self) -> bool:
        return self.slowdown <= self.threshold or self.current - self.expected <= self.noise_floor

    @property
    def hidden_by_noise_floor(self) -> bool:
        """A slowdown beyond the threshold that passes only because it costs less than the noise floor."""
        return self.slowdown > self.threshold and self.ok

    @property
    def gateable_time(self) -> float:
        """The per-call time a benchmark needs for a slowdown at the threshold to exceed the noise floor."""
        return self.noise_floor / (self.threshold - 1) if self.threshold > 1 else math.inf

    def floor_note(self, nodeid: str) -> str:
        """Why a slowdown passed although it exceeds the threshold, and how to make it count."""
        return (f"noise floor hid a slowdown: {nodeid} is {self.slowdown:.2f}x slower (limit "
                f"{self.threshold:.2f}x) but loses only {seconds(self.current - self.expected)}, under the "
                f"{seconds(self.noise_floor)} noise floor; give each benchmarked call at least "
                f"{seconds(self.gateable_time)} of work (noise floor / (threshold - 1)) so the gate can "
                "see it")

    def describe(self) -> str:
        return (
            f"time ({TIME_STAT}): baseline {seconds(self.baseline)} at calibration "
            f"{seconds(self.baseline_calibration)} (ratio {self.baseline_ratio:.4g}); current "
            f"{seconds(self.current)} at calibration {seconds(self.calibration)} (ratio {self.ratio:.4g}); "
            f"slowdown {self.slowdown:.3f}x vs threshold {self.threshold:.3f}x; "
            f"{seconds(self.current - self.expected)} over the rescaled baseline "
            f"{seconds(self.expected)} vs noise floor {seconds(self.noise_floor)}"
        )

    def to_json(self) -> dict:
        return {
            "ok": self.ok, "stat": TIME_STAT, "current_seconds": self.current,
            "calibration_seconds": self.calibration, "baseline_seconds": self.baseline,
            "baseline_calibration_seconds": self.baseline_calibration, "ratio": self.ratio,
            "baseline_ratio": self.baseline_ratio, "slowdown": self.slowdown, "threshold": self.threshold,
            "noise_floor_seconds": self.noise_floor, "hidden_by_noise_floor": self.hidden_by_noise_floor,
        }


def compare_time(
    *, current: float, calibration: float, baseline: float, baseline_calibration: float,
    threshold: float, noise_floor: float,
) -> TimeVerdict:
    """The calibrated slowdown of one benchmark against its baseline."""
    for name, value in (("current", current), ("calibration", calibration), ("baseline", baseline),
                        ("baseline_calibration", baseline_calibration)):
        if _nonnegative(value, name) <= 0:
            raise GateInputError(f"{name} time must be > 0, got {value!r}")
    return TimeVerdict(current, calibration, baseline, baseline_calibration,
                       parse_threshold(threshold), parse_noise_floor(noise_floor))
