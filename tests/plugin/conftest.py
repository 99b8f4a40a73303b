"""Fixtures for the pytest-pcct plugin's own tests (run through ``pytester``)."""

import numba
import numpy as np
import pytest

import covertreex
import covertreex.errors
from pytest_pcct.covertreex_engines import CovertreexEngine
from pytest_pcct.parity.datasets import make_problem
from pytest_pcct.parity.truth import true_distances


@pytest.fixture(scope="session", autouse=True)
def _engines_loaded_outside_pytester():
    """Run every engine (and the plugin's true-distance kernel) once in this process before any in-process
    pytester run.

    pytester drops the modules a run imported. Numba imports modules of its own the first time it loads a
    compiled kernel, and more (numba.core.boxing) the first time it compiles one, so if that happened inside
    a run, the next run would import them again and Numba would fail with "duplicate registration". Loading
    here keeps them imported for the whole session; the uncached function below compiles even when every
    kernel comes from Numba's cache (a partly warm cache left the compile to a run, and two tests failed).
    """
    numba.njit(lambda flag, values: values[0] if flag else 0.0)(True, np.zeros(1))
    problems = [make_problem(n=20, d=2, n_queries=2),
                make_problem(n=20, d=2, n_queries=2, metric="residual", m=4)]
    for problem in problems:
        true_distances(problem, [[0, 1], [1, -1]])
    for name in covertreex.engine_names():
        try:
            covertreex.get_engine(name)
        except covertreex.errors.InvalidInputError:  # not built here; tests that select it will say so
            continue
        for problem in problems:
            CovertreexEngine(name)(problem, 2)

WRONG_ENGINES = '''
import unittest

import numpy as np
import pytest

from covertreex.telemetry import schema_resource
from pytest_pcct.parity.engines import EngineUnavailable, UnsupportedProblemError


def _wrapping(registry, base, change):
    def factory():
        engine = registry.create(base)

        def knn(problem, k):
            answer = engine.knn(problem, k)
            return change(answer.indices.copy(), answer.distances.copy(), problem)

        return knn

    return factory


def one_ulp(idx, dist, problem):
    """Row 0, position 1 (0 when k = 1): the distance one ulp larger."""
    position = min(1, dist.shape[1] - 1)
    dist[0, position] = np.nextafter(dist[0, position], np.inf)
    return idx, dist


def swap_neighbour(idx, dist, problem):
    """Row 0, position 0: an index that is not among the true neighbours, same distance."""
    taken = set(idx[0].tolist())
    idx[0, 0] = next((j for j in range(problem.n_points) if j not in taken), idx[0, 0])
    return idx, dist


def boundary_tie(registry):
    """Where the k-th distance ties with the (k+1)-th, the (k+1)-th point listed instead: still correct."""
    def factory():
        engine = registry.create("gold")

        def knn(problem, k):
            if k >= problem.n_points:
                return engine.knn(problem, k)
            wider = engine.knn(problem, k + 1)
            idx, dist = wider.indices[:, :k].copy(), wider.distances[:, :k]
            tied = wider.distances[:, k] == dist[:, k - 1]
            idx[tied, k - 1] = wider.indices[tied, k]
            return idx, dist

        return knn

    return factory


def alternating_tie(registry):
    """tieflip's answer on every other call, gold's on the others: each correct, but not the same twice."""
    def factory():
        flipped, engine, calls = boundary_tie(registry)(), registry.create("gold"), []

        def knn(problem, k):
            calls.append(k)
            if len(calls) % 2:
                return flipped(problem, k)
            answer = engine.knn(problem, k)
            return answer.indices, answer.distances

        return knn

    return factory


def last_plus_one(idx, dist, problem):
    """The last index of every row replaced by (index + 1) % n, distances untouched."""
    idx[:, -1] = (idx[:, -1] + 1) % problem.n_points
    return idx, dist


def random_indices(idx, dist, problem):
    """Random indices, the true distances kept."""
    return np.random.default_rng(7).integers(0, problem.n_points, idx.shape), dist


def farthest_last(idx, dist, problem):
    """Every row's last index replaced by the farthest point, labelled with the true k-th distance."""
    gaps = problem.query_points[:, None, :] - problem.points[None, :, :]
    idx[:, -1] = np.argmax((gaps * gaps).sum(axis=2), axis=1)
    return idx, dist


def off_by_one(idx, dist, problem):
    """1-based indices (wrapping n to 0)."""
    return (idx + 1) % problem.n_points, dist


def unsorted(idx, dist, problem):
    """The true neighbours, farthest first."""
    return idx[:, ::-1].copy(), dist[:, ::-1].copy()


def single_precision(idx, dist, problem):
    """The true neighbours with float32 distances."""
    return idx, dist.astype(np.float32)


def out_of_range(idx, dist, problem):
    """Row 0's last index past the end of the points."""
    idx[0, -1] = problem.n_points + 5
    return idx, dist


def refuses(idx, dist, problem):
    """Gives up with the plugin's own refusal on a problem it was registered for."""
    raise UnsupportedProblemError("this engine gives up here")


def raises(idx, dist, problem):
    raise RuntimeError("the engine crashed")


def exits_the_interpreter(idx, dist, problem):
    """SystemExit, a BaseException: it failed the test but left no cell in the report."""
    raise SystemExit(0)


def objects_for_distances(idx, dist, problem):
    """Distances as Python objects, one of them None: converting them raised a bare TypeError."""
    objects = dist.astype(object)
    objects[0, 0] = None
    return idx, objects


def missing_row(idx, dist, problem):
    """The last query's row left out."""
    return idx[:-1], dist[:-1]


def writes_input(idx, dist, problem):
    """The true answer, after swapping two indexed points in place (past the read-only flag)."""
    problem.points.setflags(write=True)
    problem.points[[0, 1]] = problem.points[[1, 0]]
    return idx, dist


def skips(idx, dist, problem):
    """Skips the test from inside the call, as a missing optional backend would."""
    pytest.importorskip("a_backend_that_is_not_installed")


def xfails(idx, dist, problem):
    pytest.xfail("the backend does not support this")


def skips_unittest(idx, dist, problem):
    raise unittest.SkipTest("not on this platform")


class _SkippingAnswer:
    """An answer object whose distances skip the test when read (a lazy binding's result)."""

    indices = None

    @property
    def distances(self):
        pytest.skip("the backend is gone")


def skips_on_read(idx, dist, problem):
    answer = _SkippingAnswer()
    answer.indices = idx
    return answer


def flips_a_flag(idx, dist, problem):
    """The true answer, after turning the (frozen) problem into a predecessor problem."""
    object.__setattr__(problem, "predecessor", not problem.predecessor)
    return idx, dist


SHARED = {}


def into_shared_buffer(idx, dist):
    """idx/dist copied into one buffer that every call reuses (a C library's static result arrays)."""
    if SHARED.get("idx") is None or SHARED["idx"].shape != idx.shape:
        SHARED["idx"], SHARED["dist"] = np.empty_like(idx), np.empty_like(dist)
    SHARED["idx"][...], SHARED["dist"][...] = idx, dist
    return SHARED["idx"], SHARED["dist"]


def shared_right(idx, dist, problem):
    return into_shared_buffer(idx, dist)


def shared_wrong_last(registry):
    """Each row's k-th neighbour replaced by its (k+1)-th, at its true distance, in the shared buffer."""
    def factory():
        engine = registry.create("gold")

        def knn(problem, k):
            wider = engine.knn(problem, min(k + 1, problem.n_points))
            idx, dist = wider.indices[:, :k].copy(), wider.distances[:, :k].copy()
            idx[:, -1], dist[:, -1] = wider.indices[:, -1], wider.distances[:, -1]
            return into_shared_buffer(idx, dist)

        return knn

    return factory


def exits(idx, dist, problem):
    """Ends the run with exit code 0 from inside the call."""
    pytest.exit("the engine gave up", returncode=0)


def skips_in_a_group(idx, dist, problem):
    """A skip raised by a worker of a task group, wrapped in an exception group (pytest unwraps a group
    of skips into a skip)."""
    try:
        from builtins import BaseExceptionGroup
    except ImportError:  # Python 3.10
        from exceptiongroup import BaseExceptionGroup
    try:
        pytest.importorskip("a_backend_that_is_not_installed")
    except BaseException as exc:
        raise BaseExceptionGroup("the engine's workers", [exc]) from None


def rejects(idx, dist, problem):
    """Rejects the Hypothesis example it cannot answer (hypothesis.reject)."""
    from hypothesis import reject

    reject()


class _SkippingRecord(dict):
    """A telemetry record whose items skip the test when read."""

    def items(self):
        pytest.skip("telemetry not available")


def skips_in_its_record(idx, dist, problem):
    return idx, dist, _SkippingRecord(note="x")


class _SkippingOnGet(dict):
    """A valid record whose .get skips the test (the plugin reads records after the engine's call)."""

    def get(self, *args):
        pytest.skip("telemetry not available")


def drops_the_nearest_behind_a_skipping_record(registry):
    """Each row's true neighbours 2..k+1 at their true distances (the nearest left out), with the
    reference's own record for k: truthful entries, so only the comparison catches it."""
    def factory():
        engine = registry.create("gold")

        def knn(problem, k):
            wider = engine.knn(problem, k + 1)
            record = _SkippingOnGet({**wider.telemetry, "k": k})
            return wider.indices[:, 1:].copy(), wider.distances[:, 1:].copy(), record

        return knn

    return factory


def drops_the_nearest(registry):
    """Each row's true neighbours 2..k+1 at their true distances, the nearest left out: truthful entries,
    which only the comparison can catch (tolerance mode once grouped them away where every gap of a row
    is below rtol)."""
    def factory():
        engine = registry.create("gold")

        def knn(problem, k):
            wider = engine.knn(problem, k + 1)
            return wider.indices[:, 1:].copy(), wider.distances[:, 1:].copy()

        return knn

    return factory


def _libm():
    import ctypes
    import ctypes.util

    return ctypes.CDLL(ctypes.util.find_library("m"))


FE_UPWARD = 0x800  # x86 glibc


def rounds_up(idx, dist, problem):
    """The true answer, leaving the thread rounding upward (as a library set up on load would)."""
    _libm().fesetround(FE_UPWARD)
    return idx, dist


def rounding_up_factory():
    _libm().fesetround(FE_UPWARD)
    return lambda problem, k: None


def big_endian(idx, dist, problem):
    """The true answer, its distances float64 in big-endian byte order: still float64, so right."""
    return idx, dist.astype(">f8")


def unavailable():
    raise EngineUnavailable("it needs a GPU")


WRONG = {"ulp": one_ulp, "swap": swap_neighbour, "lastplus": last_plus_one, "random": random_indices,
         "farthest": farthest_last, "offbyone": off_by_one, "unsorted": unsorted,
         "float32": single_precision, "outside": out_of_range, "refuses": refuses, "raises": raises,
         "sysexit": exits_the_interpreter, "objectdist": objects_for_distances, "missingrow": missing_row,
         "writes": writes_input, "bigendian": big_endian, "skips": skips,
         "xfails": xfails, "unittestskip": skips_unittest, "skipsonread": skips_on_read,
         "flipsflag": flips_a_flag, "sharedright": shared_right, "exits": exits,
         "groupskip": skips_in_a_group, "rejects": rejects, "recordskip": skips_in_its_record,
         "roundsup": rounds_up}


def pytest_pcct_register_engines(registry):
    for name, change in WRONG.items():
        registry.register(name, _wrapping(registry, "gold", change))
    registry.register("tieflip", boundary_tie(registry))
    registry.register("tiecoin", alternating_tie(registry))
    registry.register("sharedlast", shared_wrong_last(registry))
    registry.register("gpu", unavailable)
    registry.register("roundsupfactory", rounding_up_factory)
    registry.register("dropsnearest", drops_the_nearest(registry))
    registry.register("dropsbehindrecord", drops_the_nearest_behind_a_skipping_record(registry),
                      telemetry_schema=schema_resource())
'''


@pytest.fixture
def wrong_engines(pytester):
    """A conftest registering deliberately wrong engines (see WRONG), a correct one that breaks boundary
    ties differently (tieflip) and an unavailable one (gpu)."""
    pytester.makeconftest(WRONG_ENGINES)
    return pytester

