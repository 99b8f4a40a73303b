"""Paired timing: every timed round of a gated benchmark follows one round of the calibration kernel.

The gate learns the kernel from the test marked ``pcct_calibration`` (whatever that test hands to
``benchmark(...)``) and, for every later gated benchmark, stands in for pytest-benchmark's fixture: a
``benchmark(fn, *args)`` call becomes ``benchmark.pedantic(fn, args, setup=...)`` whose untimed setup times
one calibration round with the benchmark's own timer. pytest-benchmark still measures, stores and reports
every benchmark round as usual; the gate keeps the calibration time of each round beside it, so test code
stays unchanged.
"""

from __future__ import annotations

from pytest_pcct.gate.errors import GateInputError
from pytest_pcct.gate.fingerprint import kernel_fingerprint
from pytest_pcct.gate.rules import MIN_PAIRED_ROUNDS, median_bounds


class CalibrationCapture:
    """Stands in for the calibration test's fixture: times it as usual and remembers the kernel, with its
    fingerprint taken before its first call (state the kernel updates as it runs, a call counter, cannot
    change it then)."""

    def __init__(self, fixture):
        self.fixture = fixture
        self.kernel = None
        self.fingerprint = None

    def __getattr__(self, name):
        return getattr(self.fixture, name)

    def _capture(self, function, args: tuple, kwargs: dict) -> None:
        self.kernel = (function, args, kwargs)
        self.fingerprint = kernel_fingerprint(function, args, kwargs)

    def __call__(self, function, *args, **kwargs):
        self._capture(function, args, kwargs)
        return self.fixture(function, *args, **kwargs)

    def pedantic(self, target, args=(), kwargs=None, setup=None, **options):
        if setup is not None:
            raise GateInputError("the calibration kernel must take fixed arguments (pedantic without setup)")
        self._capture(target, tuple(args), dict(kwargs or {}))
        return self.fixture.pedantic(target, args=args, kwargs=kwargs, **options)


class PairedTiming:
    """Stands in for a gated benchmark's fixture: runs its rounds paired with calibration rounds."""

    def __init__(self, fixture, kernel):
        self.fixture = fixture
        self._kernel = kernel
        self._calibrations: list[float] = []
        self.pairs: list[tuple[float, float]] = []

    def __getattr__(self, name):
        return getattr(self.fixture, name)

    def __call__(self, function, *args, **kwargs):
        return self.pedantic(function, args, kwargs)

    def pedantic(self, target, args=(), kwargs=None, setup=None, teardown=None, rounds=1, warmup_rounds=1,
                 iterations=1):
        """pytest-benchmark's ``pedantic`` with a calibration round before each round (at least
        ``max(MIN_PAIRED_ROUNDS, --benchmark-min-rounds)`` rounds)."""
        if iterations != 1:
            raise GateInputError("paired timing runs one call per round: use iterations=1 (give each call "
                                 "enough work instead)")
        timer = getattr(self.fixture, "_timer", None)
        if timer is None:
            raise GateInputError("this pytest-benchmark version hides its timer; paired timing needs it")
        kernel, kernel_args, kernel_kwargs = self._kernel

        def paired_setup():
            start = timer()
            kernel(*kernel_args, **kernel_kwargs)
            self._calibrations.append(timer() - start)
            return setup() if setup is not None else None

        rounds = max(int(rounds), MIN_PAIRED_ROUNDS, int(getattr(self.fixture, "_min_rounds", 0)))
        result = self.fixture.pedantic(target, args=args, kwargs=kwargs, setup=paired_setup,
                                       teardown=teardown, rounds=rounds, warmup_rounds=warmup_rounds,
                                       iterations=1)
        times = list(self.fixture.stats.stats.data)
        self.pairs = list(zip(times, self._calibrations[-len(times):], strict=True))
        return result

    def timing(self) -> dict | None:
        """The paired rounds as the gate stores them, or None when the benchmark did not run."""
        if not self.pairs:
            return None
        if not all(t > 0 and c > 0 for t, c in self.pairs):
            raise GateInputError("a paired round measured 0 s on this timer: give each call more work")
        return {
            "ratios": [t / c for t, c in self.pairs],
            "seconds": median_bounds(t for t, _ in self.pairs)[1],
            "calibration": median_bounds(c for _, c in self.pairs)[1],
        }
