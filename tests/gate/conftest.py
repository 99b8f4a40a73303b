"""Fixtures for the regression gate's tests: tiny pytester projects gated by the installed plugin.

``toy`` is a project timed by a scripted clock, not by the machine: pytest-benchmark reads the toy's
``toy_clock.clock`` (chosen with ``@pytest.mark.benchmark(timer=...)``, the marker form of
``--benchmark-timer``), and the toy's "work" only advances that clock by a fixed number of nanoseconds,
scaled by an environment variable. Every round of a benchmark therefore measures exactly its scripted
duration, so an injected 2x slowdown is 2.000x on any machine under any load, and the gate's verdicts
are deterministic. Its counters are plain numbers read from environment variables, so a test can inject
a counter regression without touching the timing. ``covertreex_project`` gates real gold-engine queries
(counters only), with an over-fetching engine flag that makes the same query do more work.
"""

import importlib

import numpy as np
import pytest

import covertreex as ct

for _module in ("pytest_pcct.gate.session", "pytest_pcct.gate.report", "pytest_pcct.gate.baselines",
                "covertreex.engines.gold", "hypothesis"):
    importlib.import_module(_module)  # loaded once here, not again by every in-process pytester run

FAST = ("-p", "no:cacheprovider", "--benchmark-min-rounds=5", "--benchmark-max-time=0.05")
"""Options of every gate run here: few rounds, so each project run takes a fraction of a second."""

TOY_CLOCK = '''
"""A scripted clock in integer nanoseconds: it moves only when the toy's work advances it, plus one
nanosecond per read (pytest-benchmark measures a timer's precision as the smallest step it sees)."""

_now_ns = [0]


def advance(nanoseconds):
    _now_ns[0] += int(nanoseconds)


def clock():
    _now_ns[0] += 1
    return _now_ns[0] * 1e-9


def other_clock():
    """The same clock under another name: baselines recorded with one timer are incomparable with the
    other."""
    return clock()
'''

TOY_TESTS = '''
import os

import pytest

import toy_clock

pytestmark = pytest.mark.benchmark(timer=getattr(toy_clock, os.environ.get("TOY_TIMER", "clock")))
if os.environ.get("TOY_SKIP") == "module":
    pytest.skip("the toy skips its module", allow_module_level=True)


_calls = {}


def _work(name, nanoseconds):
    """A scripted amount of work: advances the toy clock, scaled by an environment variable, and by the
    next factor of the cycle in TOY_JITTER_<name> (e.g. "1,1.6": a machine alternating two speeds)."""
    cycle = [float(f) for f in os.environ.get("TOY_JITTER_" + name, "1").split(",")]
    _calls[name] = _calls.get(name, -1) + 1
    jitter = cycle[_calls[name] % len(cycle)]
    toy_clock.advance(nanoseconds * float(os.environ.get(name, "1")) * jitter)


@pytest.mark.pcct_calibration
def test_calibration(benchmark):
    if os.environ.get("TOY_SKIP") == "calibration":
        pytest.skip("the toy skips its calibration")
    benchmark(_work, "TOY_CALIBRATION_SCALE", int(os.environ.get("TOY_CALIBRATION_NS", "1000000")))


def _record(pcct_gate, name):
    steps = int(os.environ.get("TOY_STEPS_" + name.upper(), "1000"))
    pcct_gate.record({"steps": steps, "visits": 50}, engine="toy", dataset_digest="data-1",
                     config_digest=os.environ.get("TOY_CONFIG", "config-1"), schema="toy.counters",
                     schema_version=1)


def test_work(benchmark, pcct_gate):
    if os.environ.get("TOY_SKIP") == "body":
        pytest.skip("the toy skips its work")
    benchmark(_work, "TOY_SLOWDOWN_WORK", 2_000_000)
    _record(pcct_gate, "work")


@pytest.mark.pcct_time(threshold=5.0)
@pytest.mark.pcct_counters(tolerance={"steps": 0.10})
@pytest.mark.skipif(os.environ.get("TOY_SKIP") == "marker", reason="the toy skips lenient work")
def test_lenient(benchmark, pcct_gate):
    benchmark(_work, "TOY_SLOWDOWN_LENIENT", 2_000_000)
    _record(pcct_gate, "lenient")
'''


@pytest.fixture(autouse=True)
def _not_an_xdist_worker(monkeypatch):
    """Project runs are serial even when this suite runs under xdist (whose workers export this variable,
    which both pytest-benchmark and the gate read)."""
    monkeypatch.delenv("PYTEST_XDIST_WORKER", raising=False)


@pytest.fixture
def scripted_clock(pytester):
    """A project opted in to the gate by its ini file, with the module toy_clock (TOY_CLOCK) to time with."""
    pytester.makeini("[pytest]\npcct_gate = all\n")
    pytester.makepyfile(toy_clock=TOY_CLOCK)
    return pytester


@pytest.fixture
def toy(scripted_clock):
    """A toy project (calibration + two gated benchmarks on a scripted clock) that opts in to the gate by
    its ini file, returned as the pytester."""
    scripted_clock.makepyfile(test_toy=TOY_TESTS)
    return scripted_clock


@pytest.fixture
def run_gate(pytester):
    """run_gate(*args, subprocess=False): pytest in the project, with the quick benchmark options."""

    def run(*args, subprocess=False):
        runner = pytester.runpytest_subprocess if subprocess else pytester.runpytest
        return runner(*FAST, *args)

    return run


COVERTREEX_CONFTEST = '''
import os

import covertreex.engines
from covertreex.engines.gold import GoldEngine


class OverfetchingGold(GoldEngine):
    """The gold engine with a work-adding flag: with PCCT_TEST_OVERFETCH=1 a query fetches 4k neighbours
    and keeps the first k. The answer is the same; the search does more distance evaluations."""

    name = "gold_overfetch"

    def query(self, tree, space, queries, k, config):
        if os.environ.get("PCCT_TEST_OVERFETCH") != "1":
            return super().query(tree, space, queries, k, config)
        idx, dist, counters = super().query(tree, space, queries, min(4 * k, space.n_points), config)
        return idx[:, :k].copy(), dist[:, :k].copy(), counters


def pytest_configure(config):
    covertreex.engines.ENGINES["gold_overfetch"] = OverfetchingGold


def pytest_unconfigure(config):
    """Leave the registry as found: pytester runs this project inside the outer test session."""
    covertreex.engines.ENGINES.pop("gold_overfetch", None)
    covertreex.engines._INSTANCES.pop("gold_overfetch", None)
'''

COVERTREEX_TESTS = '''
import covertreex as ct
from covertreex import datasets


def test_query_work(benchmark, pcct_gate):
    points = datasets.make("gaussian", 300, 2, seed=0).points
    queries = datasets.make("gaussian", 20, 2, seed=1).points
    tree = ct.CoverTree(path="tree", engine="gold_overfetch").fit(points)
    result = benchmark(tree.query, queries, k=3)
    pcct_gate.record_telemetry(result.telemetry)
'''


@pytest.fixture(scope="session")
def _gold_warmed():
    """One gold fit and query in this process, before any pytester snapshot: Numba imports some of its
    modules lazily on first compile, and a module pytester dropped after a run would register twice."""
    points = np.random.default_rng(0).normal(size=(50, 2))
    ct.CoverTree(path="tree", engine="gold").fit(points).query(points[:3], k=2)


@pytest.fixture
def covertreex_project(_gold_warmed, pytester):
    """A project gating real gold queries through an engine with a work-adding flag (registered for the
    duration of each run only)."""
    pytester.makeconftest(COVERTREEX_CONFTEST)
    pytester.makepyfile(test_cover=COVERTREEX_TESTS)
    return pytester
