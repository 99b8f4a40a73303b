"""Fixtures for the regression gate's tests: tiny pytester projects gated by the installed plugin.

``toy`` is a project whose "work" is a fixed CPU loop timed with ``time.process_time`` (like the real
suite): other processes' load does not change the CPU time a loop takes, so the fastest round (the gate's
statistic) is steady even on a busy machine, and a 2x slowdown is unmistakable. Its counters
are plain numbers read from environment variables, so a test can inject a counter regression without
touching the timing. ``covertreex_project`` gates real gold-engine queries, with an over-fetching engine
flag that makes the same query do more work.
"""

import importlib

import numpy as np
import pytest

import covertreex as ct

for _module in ("pytest_pcct.gate_session", "pytest_pcct.gate_report", "pytest_pcct.baselines",
                "covertreex.engines.gold", "hypothesis"):
    importlib.import_module(_module)  # loaded once here, not again by every in-process pytester run

FAST = ("-p", "no:cacheprovider", "--benchmark-min-rounds=5", "--benchmark-max-time=0.05")
"""Options of every gate run here: few rounds, so each project run takes a fraction of a second."""

TOY_TESTS = '''
import os
import time

import pytest

pytestmark = pytest.mark.benchmark(timer=getattr(time, os.environ.get("TOY_TIMER", "process_time")))


def _spin(name, count):
    """A fixed amount of CPU work, scaled by an environment variable."""
    return sum(range(int(count * float(os.environ.get(name, "1")))))


@pytest.mark.pcct_calibration
def test_calibration(benchmark):
    benchmark(_spin, "TOY_CALIBRATION_SCALE", 100_000)


def _record(pcct_gate, name):
    steps = int(os.environ.get("TOY_STEPS_" + name.upper(), "1000"))
    pcct_gate.record({"steps": steps, "visits": 50}, engine="toy", dataset_digest="data-1",
                     config_digest=os.environ.get("TOY_CONFIG", "config-1"), schema="toy.counters",
                     schema_version=1)


def test_work(benchmark, pcct_gate):
    benchmark(_spin, "TOY_SLOWDOWN_WORK", 200_000)
    _record(pcct_gate, "work")


@pytest.mark.pcct_time(threshold=5.0)
@pytest.mark.pcct_counters(tolerance={"steps": 0.10})
def test_lenient(benchmark, pcct_gate):
    benchmark(_spin, "TOY_SLOWDOWN_LENIENT", 200_000)
    _record(pcct_gate, "lenient")
'''


@pytest.fixture(autouse=True)
def _not_an_xdist_worker(monkeypatch):
    """Project runs are serial even when this suite runs under xdist (whose workers export this variable,
    which both pytest-benchmark and the gate read)."""
    monkeypatch.delenv("PYTEST_XDIST_WORKER", raising=False)


@pytest.fixture
def toy(pytester):
    """A toy project (calibration + two gated sleeps), returned as the pytester."""
    pytester.makepyfile(test_toy=TOY_TESTS)
    return pytester


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
