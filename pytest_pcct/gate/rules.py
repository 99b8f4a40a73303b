"""Gate decisions: compare one benchmark's work counters and calibrated time with its baselines.

Pure functions over plain values, so every rule is testable without pytest:

* counters must equal the baseline exactly, unless a relative tolerance is declared (for all counters or
  per counter). A change in either direction fails: counters are deterministic, so a drop means the
  baseline is stale and would hide the next regression;
* time is judged on paired rounds: each timed round of a benchmark follows one round of the calibration
  kernel, and the statistic is the median of the per-round ratios ``t_i / c_i`` (a machine that drifts or
  switches speed between rounds moves both members of a pair, so their ratio stays). The slowdown is this
  median over the baseline's, with distribution-free confidence bounds (see :func:`median_bounds`), and
  has three outcomes: *passed* when the upper bound is below the threshold (or the time lost is under the
  absolute noise floor), *failed* when the lower bound reaches the threshold, and *inconclusive* when the
  bounds straddle it: too few or too noisy rounds to tell, which the gate reports with the command that
  reruns with more rounds, never as a silent pass.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping
from dataclasses import dataclass, field

from pytest_pcct.gate.errors import GateInputError, GateTypeError

TIME_STAT = "median of paired ratios"
"""What the time leg compares (see the module docstring)."""
CONFIDENCE = 0.99
"""Coverage of each median's confidence interval; the slowdown's bounds combine two (>= 98% jointly), so a
verdict of failed (or passed) is wrong in at most 1 run in 100 if rounds are independent."""
MIN_PAIRED_ROUNDS = 20
"""Fewest paired rounds a gated benchmark runs: at 99%, 8 rounds give only the extreme order statistics as
bounds; 20 bring them to the 4th smallest and largest."""


CALIBRATION_DRIFT = 2.0
"""Factor, either way, beyond which this run's median calibration round is reported against its
baseline's, when both ran on the same processor (the session decides). A calibration kernel that runs
code under test (reached through an attribute the fingerprint cannot follow) slows down with it and hides
the regression in the ratios (a 3x slowdown measured 1.00x in an outside trial); so does a machine that
slowed down, which the ratios are there to absorb. The gate cannot tell the two apart, so it warns,
naming both readings, and the verdict stands."""


PAIRED_AGREEMENT = 1.1
"""Largest factor a stored median of paired ratios may differ from its stored median seconds over median
calibration seconds. The two summarise the same rounds and agreed within 2% in every baseline this project
recorded; a file beyond 1.1x was edited or damaged (ratios scaled by 1000 would let any slowdown pass).
A consistent forgery (ratios, seconds, calibrations and stats edited together) is beyond any check of one
file."""

def implausible_paired_rounds(ratios: list[float], paired: Mapping, stats: Mapping) -> str | None:
    """Why a stored benchmark's paired rounds cannot be what the gate recorded (None if they can): fewer
    than :data:`MIN_PAIRED_ROUNDS`, another count or median seconds than its pytest-benchmark stats, or a
    median ratio that disagrees with its own median seconds and calibration by more than
    :data:`PAIRED_AGREEMENT`."""
    rounds = stats.get("rounds")
    if len(ratios) < MIN_PAIRED_ROUNDS:
        return f"{len(ratios)} paired ratios, but the gate records at least {MIN_PAIRED_ROUNDS}"
    if rounds != len(ratios):
        return f"{len(ratios)} paired ratios for {rounds!r} rounds in its stats"
    seconds, calibration = paired.get("seconds"), paired.get("calibration")
    numbers = all(isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0
                  for v in (seconds, calibration))
    if not numbers:
        return "its paired median seconds and calibration are not positive numbers"
    median = stats.get("median")
    if not (isinstance(median, (int, float)) and math.isclose(median, seconds, rel_tol=1e-9)):
        return f"its paired median seconds {seconds!r} are not its stats' median {median!r} (the same rounds)"
    middle = statistics.median(ratios)
    if not 1 / PAIRED_AGREEMENT <= middle / (seconds / calibration) <= PAIRED_AGREEMENT:
        return (f"the median paired ratio {middle:.4g} disagrees with its median seconds over median "
                f"calibration, {seconds / calibration:.4g}")
    return None


def calibrations_disagree(paired_calibration: float, calibration_test: float | None) -> float | None:
    """The factor by which a stored benchmark's median calibration round and the same run's calibration
    test (the same kernel on the same timer: 0.92-1.0x in this project's baselines) differ, when beyond
    :data:`CALIBRATION_DRIFT`, else None. An outside trial divided the first by 3.5 and scaled the ratios up
    to match, and a 3x slowdown passed; but a machine whose speed changed that much while the baseline was
    recorded does the same, and the ratios absorb that by design, so the session warns and the verdict
    stands (as for :attr:`TimeVerdict.calibration_moved`)."""
    if calibration_test is None:
        return None
    factor = max(paired_calibration / calibration_test, calibration_test / paired_calibration)
    return factor if factor > CALIBRATION_DRIFT else None


def _number(value, name: str, rule: str, holds) -> float:
    """`value` (a number, or the text of an option or ini value) as a float, when it is finite and `holds`
    for it; anything else raises one error saying `name` must be `rule`, whatever was wrong with it."""
    number = value
    if isinstance(value, str):
        try:
            number = float(value)
        except ValueError:
            number = None
    if isinstance(number, bool) or not isinstance(number, (int, float)):
        kind = GateInputError if isinstance(value, str) else GateTypeError
        raise kind(f"{name} must be {rule}, got {value!r}")
    if not (math.isfinite(number) and holds(number)):
        raise GateInputError(f"{name} must be {rule}, got {value!r}")
    return float(number)


def _nonnegative(value, name: str) -> float:
    return _number(value, name, "a finite number >= 0", lambda number: number >= 0)


def parse_tolerance(tolerance, name: str = "tolerance") -> float | dict[str, float]:
    """A relative tolerance for every counter (number) or per counter name (mapping)."""
    if isinstance(tolerance, Mapping):
        return {str(k): _nonnegative(v, f"{name}[{k!r}]") for k, v in tolerance.items()}
    return _nonnegative(tolerance, name)


def parse_threshold(threshold, name: str = "threshold") -> float:
    """A slowdown factor (> 1: at 1 any slowdown at all, noise included, would fail)."""
    return _number(threshold, name, "a slowdown factor, a finite number > 1", lambda number: number > 1)


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


def check_tolerance_names(tolerance: Mapping[str, float], counters) -> None:
    """A per-counter tolerance must name counters the benchmark has (a typo would tolerate nothing)."""
    unknown = sorted(set(tolerance) - set(counters))
    if unknown:
        raise GateInputError(f"tolerance names counters this benchmark does not have: {unknown}")


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
        check_tolerance_names(tolerance, names)
    rows = [
        CounterRow(name, baseline.get(name), current.get(name),
                   tolerance.get(name, 0.0) if isinstance(tolerance, Mapping) else tolerance)
        for name in names
    ]
    return CounterVerdict(rows, mismatch)


def median_bounds(values, confidence: float = CONFIDENCE) -> tuple[float, float, float]:
    """(lower, median, upper): the median of `values` and a distribution-free confidence interval for it.

    The interval is [x_(j), x_(n+1-j)] of the sorted values with the largest j for which
    P(Binomial(n, 1/2) <= j - 1) <= (1 - confidence) / 2; it covers the true median with probability
    >= `confidence` for independent rounds, whatever their distribution. With too few values for any such
    j the bounds are 0 and infinity: nothing can be concluded."""
    xs = sorted(float(v) for v in values)
    n = len(xs)
    if n == 0:
        raise GateInputError("no rounds to summarise")
    tail, cdf, j = (1.0 - confidence) / 2.0, 0.0, 0
    while j < n // 2:
        cdf += math.comb(n, j) / 2.0**n
        if cdf > tail:
            break
        j += 1
    middle = xs[(n - 1) // 2] if n % 2 else 0.5 * (xs[n // 2 - 1] + xs[n // 2])
    return (xs[j - 1], middle, xs[n - j]) if j else (0.0, middle, math.inf)


def _ratios(values, name: str) -> list[float]:
    ratios = [float(v) for v in values]
    if not ratios or not all(math.isfinite(r) and r > 0 for r in ratios):
        raise GateInputError(f"{name} must be a non-empty list of finite positive ratios")
    return ratios


@dataclass(frozen=True)
class TimeVerdict:
    ratios: list[float]
    """This run's per-round ratios benchmark time / calibration time."""
    baseline_ratios: list[float]
    round_seconds: float
    """This run's median round time (what the noise floor is weighed against)."""
    calibration: float
    """This run's median calibration round time."""
    threshold: float
    noise_floor: float
    baseline_calibration: float | None = None
    """The baseline run's median calibration round time (None: not known, not checked)."""

    @property
    def calibration_drift(self) -> float | None:
        """This run's median calibration round over the baseline's."""
        return None if self.baseline_calibration is None else self.calibration / self.baseline_calibration

    @property
    def calibration_moved(self) -> bool:
        """Whether the calibration kernel's own time left :data:`CALIBRATION_DRIFT` of its baseline's."""
        drift = self.calibration_drift
        return drift is not None and not 1 / CALIBRATION_DRIFT <= drift <= CALIBRATION_DRIFT

    @property
    def ratio(self) -> float:
        return median_bounds(self.ratios)[1]

    @property
    def baseline_ratio(self) -> float:
        return median_bounds(self.baseline_ratios)[1]

    @property
    def slowdown(self) -> float:
        return self.ratio / self.baseline_ratio

    @property
    def bounds(self) -> tuple[float, float]:
        """Confidence bounds of the slowdown (current bounds over the baseline's opposite bounds)."""
        low, _, high = median_bounds(self.ratios)
        base_low, _, base_high = median_bounds(self.baseline_ratios)
        return low / base_high, (high / base_low if base_low > 0 else math.inf)

    @property
    def expected(self) -> float:
        """The baseline time rescaled to this run's machine speed."""
        return self.baseline_ratio * self.calibration

    @property
    def loss(self) -> float:
        return self.round_seconds - self.expected

    @property
    def outcome(self) -> str:
        """passed, failed or inconclusive (see the module docstring)."""
        low, high = self.bounds
        if high < self.threshold or self.loss <= self.noise_floor:
            return "passed"
        return "failed" if low >= self.threshold else "inconclusive"

    @property
    def ok(self) -> bool:
        return self.outcome != "failed"

    @property
    def hidden_by_noise_floor(self) -> bool:
        """A slowdown at or beyond the threshold that passes only because it costs less than the floor."""
        return self.slowdown >= self.threshold and self.loss <= self.noise_floor

    @property
    def gateable_time(self) -> float:
        """The per-call time a benchmark needs for a slowdown at the threshold to exceed the noise floor."""
        return self.noise_floor / (self.threshold - 1) if self.threshold > 1 else math.inf

    def floor_note(self, nodeid: str) -> str:
        """Why a slowdown passed although it exceeds the threshold, and how to make it count."""
        return (f"noise floor hid a slowdown: {nodeid} is {self.slowdown:.2f}x slower (limit "
                f"{self.threshold:.2f}x) but loses only {seconds(self.loss)}, under the "
                f"{seconds(self.noise_floor)} noise floor; give each benchmarked call at least "
                f"{seconds(self.gateable_time)} of work (noise floor / (threshold - 1)) so the gate can "
                "see it")

    def drift_note(self, nodeid: str) -> str:
        """Why a calibration that moved beyond :data:`CALIBRATION_DRIFT` makes this verdict suspect."""
        return (f"the calibration kernel took {self.calibration_drift:.2f}x its baseline's time while "
                f"{nodeid} was timed (median {seconds(self.calibration)} against "
                f"{seconds(self.baseline_calibration)}): on another or a slower machine the ratios absorb "
                "that, but a kernel that runs the code under test slows down with it and hides its "
                "regressions (keep the calibration kernel free of that code)")

    def describe(self) -> str:
        low, high = self.bounds
        return (
            f"time ({TIME_STAT}): baseline ratio {self.baseline_ratio:.4g} over "
            f"{len(self.baseline_ratios)} rounds; current ratio {self.ratio:.4g} over {len(self.ratios)} "
            f"rounds (median {seconds(self.round_seconds)} at calibration {seconds(self.calibration)}); "
            f"slowdown {self.slowdown:.3f}x, {CONFIDENCE:.0%} bounds [{low:.3f}x, {high:.3f}x] vs threshold "
            f"{self.threshold:.3f}x; {seconds(self.loss)} over the rescaled baseline "
            f"{seconds(self.expected)} vs noise floor {seconds(self.noise_floor)}"
        )

    def to_json(self) -> dict:
        low, high = self.bounds
        return {
            "ok": self.ok, "outcome": self.outcome, "stat": TIME_STAT, "confidence": CONFIDENCE,
            "rounds": len(self.ratios), "baseline_rounds": len(self.baseline_ratios),
            "current_seconds": self.round_seconds, "calibration_seconds": self.calibration,
            "ratio": self.ratio,
            "baseline_ratio": self.baseline_ratio, "slowdown": self.slowdown, "slowdown_low": low,
            "slowdown_high": high if math.isfinite(high) else None, "threshold": self.threshold,
            "noise_floor_seconds": self.noise_floor, "hidden_by_noise_floor": self.hidden_by_noise_floor,
            "baseline_calibration_seconds": self.baseline_calibration,
            "calibration_drift": self.calibration_drift,
        }


def compare_time(*, ratios, baseline_ratios, round_seconds: float, calibration: float, threshold: float,
                 noise_floor: float, baseline_calibration: float | None = None) -> TimeVerdict:
    """The calibrated slowdown of one benchmark against its baseline, from paired rounds (and the
    calibration kernel's drift from the baseline's, when its median round is given)."""
    given = [("round_seconds", round_seconds), ("calibration", calibration)]
    if baseline_calibration is not None:
        given.append(("baseline_calibration", baseline_calibration))
    for name, value in given:
        _number(value, name, "a finite number of seconds > 0", lambda number: number > 0)
    return TimeVerdict(_ratios(ratios, "ratios"), _ratios(baseline_ratios, "baseline_ratios"),
                       float(round_seconds),
                       float(calibration), parse_threshold(threshold), parse_noise_floor(noise_floor),
                       None if baseline_calibration is None else float(baseline_calibration))
