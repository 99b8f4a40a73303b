"""What outside projects declare and choose: engine capabilities (unsupported cases are skipped with the
reason), restricted strategies, registration mistakes as usage errors, their own oracle, and k > n."""

import json
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from covertreex.errors import InputTypeError, InvalidInputError, UnknownNameError
from pytest_pcct.parity.engines import Capabilities
from pytest_pcct.parity.strategies import knn_cases

EUCLIDEAN_ONLY = """
from pytest_pcct.parity.engines import Capabilities


def euclid(registry):
    def factory():
        gold = registry.create("gold")
        return lambda problem, k: tuple(gold.knn(problem, k))  # without telemetry

    return factory


def pytest_pcct_register_engines(registry):
    registry.register("euclid", euclid(registry), capabilities=Capabilities(metrics=["euclidean"]))
"""


def test_points_of_more_coordinates_than_an_engine_takes_are_skipped_with_the_reason(pytester):
    """covertreex's rust-boxes answers at most 8 coordinates: a 10-D problem is a skip naming the limit,
    never a call that fails."""
    pytester.makepyfile("""
        import pytest

        @pytest.mark.parametrize("d", [8, 10])
        def test_pair(pcct_engine_pair, pcct_dataset, d):
            pcct_engine_pair.check(pcct_dataset(n=60, d=d, n_queries=4), 3)
    """)
    result = pytester.runpytest("--pcct-engines=gold,rust-boxes", "-rs", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, skipped=1)
    result.stdout.fnmatch_lines(["SKIPPED [[]1[]] *engine 'rust-boxes' was not registered for points of 10 "
                                 "coordinates (it supports at most 8): *"])


def test_an_unsupported_metric_is_skipped_with_the_reason(pytester):
    pytester.makeconftest(EUCLIDEAN_ONLY)
    pytester.makepyfile("""
        import pytest

        @pytest.mark.parametrize("metric", ["euclidean", "residual"])
        def test_pair(pcct_engine_pair, pcct_dataset, metric):
            pcct_engine_pair.check(pcct_dataset(n=60, d=2, n_queries=4, metric=metric), 3)
    """)
    result = pytester.runpytest("--pcct-engines=gold,euclid", "-rs", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, skipped=1)
    result.stdout.fnmatch_lines(["SKIPPED [[]1[]] *engine 'euclid' was not registered for the residual "
                                 "metric (it supports euclidean): residual gaussian *"])
    # beside the matrix too, without -rs (an engine wrong only where it declares no support looked green)
    result = pytester.runpytest("--pcct-engines=gold,euclid", "-p", "no:cacheprovider")
    result.stdout.fnmatch_lines(["1 pair tests were skipped and compared nothing (the first: engine 'euclid' "
                                 "was not registered for the residual metric *"])


def test_a_run_whose_pair_tests_an_engine_refused_says_nothing_was_compared(pytester):
    """Two engines, every pair test skipped by a capability: a green run, exit 0, no matrix, and no word
    that no answer was compared (an outside trial)."""
    pytester.makeconftest(EUCLIDEAN_ONLY)
    pytester.makepyfile("""
        def test_pair(pcct_engine_pair, pcct_dataset):
            pcct_engine_pair.check(pcct_dataset(n=60, d=2, n_queries=4, metric="residual"), 3)
    """)
    result = pytester.runpytest("--pcct-engines=gold,euclid", "-p", "no:cacheprovider",
                                "--pcct-report=r.json")
    result.assert_outcomes(skipped=1)
    result.stdout.fnmatch_lines(["no engine answer was compared: 1 pair tests were skipped (the first: "
                                 "engine 'euclid' was not registered for the residual metric*"])
    report = json.loads((pytester.path / "r.json").read_text())  # what a CI job reads: no cell, 1 skipped
    assert report["cells"] == [] and report["skipped_pair_tests"] == 1
    pytester.runpytest("--pcct-engines=gold,euclid", "-p", "no:cacheprovider", "-p", "no:terminal",
                       "--pcct-report=quiet.json")  # counted without the terminal reporter too (a review)
    assert json.loads((pytester.path / "quiet.json").read_text())["skipped_pair_tests"] == 1
    pytester.makepyfile(test_by_hand="""
        from pytest_pcct.parity.assertions import assert_knn_equal

        def test_pair_by_hand(pcct_engine_pair, pcct_dataset):  # no cell, but a pair test that ran
            problem = pcct_dataset(n=60, d=2, n_queries=4)
            pair = pcct_engine_pair
            assert_knn_equal(pair.reference.knn(problem, 3), pair.candidate.knn(problem, 3))
    """)
    result = pytester.runpytest("--pcct-engines=gold,euclid", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, skipped=1)
    assert "no engine answer was compared" not in result.stdout.str()


def test_a_property_test_drawing_problems_an_engine_refuses_checks_the_others_instead_of_skipping(pytester):
    """The default knn_cases() draws both metrics, the default Capabilities answer Euclidean only: the first
    residual draw skipped the whole property test, so an engine wrong only on some Euclidean problems passed
    as a skip (an outside user's trial). Refused draws are now rejected: the test runs to its end and every
    Euclidean draw is compared (cells in the matrix)."""
    pytester.makeconftest(EUCLIDEAN_ONLY)
    pytester.makepyfile("""
        from hypothesis import given
        from pytest_pcct.parity.profiles import suite_settings
        from pytest_pcct.parity.strategies import knn_cases

        @suite_settings()
        @given(case=knn_cases())
        def test_property(pcct_engine_pair, case):
            pcct_engine_pair.check(case.problem, case.k)
    """)
    result = pytester.runpytest("--pcct-engines=gold,euclid", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
    cells = re.search(r"(\d+) cells \(engine pair x dataset x k\): \1 exact", result.stdout.str())
    assert cells and int(cells.group(1)) >= 10, result.stdout.str()
    assert "residual" not in result.stdout.str().split("pcct parity matrix")[1]


def test_a_property_test_of_nothing_the_engines_answer_fails_not_skips(pytester):
    """Every draw refused (residual problems for a Euclidean engine): Hypothesis finds no example it may
    run and the test fails (its health check on filtered draws, or Unsatisfiable where that check is
    suppressed), instead of passing or skipping with nothing compared."""
    pytester.makeconftest(EUCLIDEAN_ONLY)
    pytester.makepyfile("""
        from hypothesis import given
        from pytest_pcct.parity.engines import Capabilities
        from pytest_pcct.parity.profiles import suite_settings
        from pytest_pcct.parity.strategies import knn_cases

        @suite_settings()
        @given(case=knn_cases(capabilities=Capabilities(metrics=["residual"])))
        def test_property(pcct_engine_pair, case):
            pcct_engine_pair.check(case.problem, case.k)
    """)
    result = pytester.runpytest("--pcct-engines=gold,euclid", "-p", "no:cacheprovider")
    result.assert_outcomes(failed=1)
    output = result.stdout.str()
    assert "filtering out a lot of inputs" in output or "Unsatisfiable" in output, output


FLOORED_AT = """
import numpy as np

import covertreex as ct
from covertreex.metrics.data import squared_norms
from covertreex.residual import ResidualProblem
from pytest_pcct.covertreex_engines import CovertreexEngine
from pytest_pcct.parity.engines import Capabilities


class FlooredAt(CovertreexEngine):
    \"\"\"brute force on the problem with p = max(variance - V.V, floor): right at floor 1e-9 only.\"\"\"

    def __init__(self, floor):
        super().__init__("floored", "brute")
        self.floor = floor

    def _tree(self, problem):
        r = problem.residual
        p = np.maximum(r.variance - squared_norms(r.V), self.floor)
        p.flags.writeable = False
        given = ResidualProblem._of_frozen(r.X, r.V, p, r.kernel, r.lengthscale, r.variance, r.inducing,
                                           r.cholesky_factor, r.seed, r.factor_of_kernel)
        return ct.CoverTree(engine="brute", metric="residual", telemetry=False).fit(given)


def pytest_pcct_register_engines(registry):
    residual = Capabilities(metrics=["residual"], problems=["points", "indices", "predecessor"])
    registry.register("floored", lambda: FlooredAt(1e-9), capabilities=residual)
    registry.register("unfloored", lambda: FlooredAt(1e-300), capabilities=residual)
"""


def test_the_generated_cases_reach_the_residual_floor(pytester):
    """An engine without the floor p = max(variance - V.V, 1e-9) passed every residual case knn_cases drew
    at variances of 0.5-2, where p never reaches it (an outside red team); the draws now reach it. The same
    engine with the floor (its control) passes."""
    pytester.makeconftest(FLOORED_AT)
    pytester.makepyfile("""
        from hypothesis import given
        from pytest_pcct.parity.engines import Capabilities
        from pytest_pcct.parity.profiles import suite_settings
        from pytest_pcct.parity.strategies import knn_cases

        RESIDUAL = Capabilities(metrics=["residual"], problems=["points", "indices", "predecessor"])

        @suite_settings()
        @given(case=knn_cases(capabilities=RESIDUAL))
        def test_property(pcct_engine_pair, case):
            pcct_engine_pair.check(case.problem, case.k)
    """)
    pytester.runpytest("--pcct-engines=brute,floored", "-p", "no:cacheprovider").assert_outcomes(passed=1)
    result = pytester.runpytest("--pcct-engines=brute,unfloored", "-p", "no:cacheprovider")
    result.assert_outcomes(failed=1)


@settings(max_examples=30, deadline=None, database=None)
@given(case=knn_cases(capabilities=Capabilities(metrics=["euclidean"], problems=["points"])))
def test_strategies_draw_only_what_the_capabilities_allow(case):
    assert case.metric == "euclidean" and case.queries is not None


@settings(max_examples=30, deadline=None, database=None)
@given(case=knn_cases(capabilities=Capabilities(max_dims=2)))
def test_strategies_draw_no_more_coordinates_than_the_capabilities_allow(case):
    assert case.problem.n_dims <= 2


@settings(max_examples=60, deadline=None, database=None)
@given(case=knn_cases(capabilities=Capabilities(problems=["predecessor"]), n=st.integers(1, 8)))
def test_an_engine_that_answers_predecessor_problems_gets_them(case):
    """knn_cases never drew a predecessor problem, whatever the capabilities said."""
    assert case.predecessor and case.problem.kind == "predecessor"


@pytest.mark.parametrize(("kwargs", "error", "match"), [
    ({"metrics": ["cosine"]}, UnknownNameError, "unknown metric 'cosine'; known metrics: euclidean, "
     "residual"),
    ({"problems": "points"}, InvalidInputError, "problem kinds must be a non-empty list of names"),
    ({"max_dims": 0}, InvalidInputError, "max_dims must be >= 1"),
    ({"max_dims": "8"}, InputTypeError, "max_dims must be an integer"),
])
def test_capabilities_are_checked(kwargs, error, match):
    with pytest.raises(error, match=match):
        Capabilities(**kwargs)
    with pytest.raises(InputTypeError, match="must be a pytest_pcct.parity.engines.Capabilities"):
        knn_cases(capabilities={"metrics": ["euclidean"]})


@pytest.mark.parametrize(("register", "message"), [
    ('registry.register("gold", lambda: None)', "engine 'gold' is already registered"),
    ('registry.register("mine", lambda: None, oracle=True)',
     "engine 'mine' cannot be the oracle: 'brute' already is; register it without oracle=True and choose it "
     "with --pcct-oracle or the ini option pcct_oracle"),
    ('registry.register("mine", lambda: None, predecessor=True)',
     "TypeError: *register() got an unexpected keyword argument 'predecessor'"),
    ('registry.register("mine", lambda: None, telemetry_schema="covertreex:schemas/query_telemtry.v4.json")',
     "telemetry_schema of engine 'mine': schema 'covertreex:schemas/query_telemtry.v4.json' cannot be read: "
     "*No such file*"),
    ('registry.register("mine", lambda: None, telemetry_schema=True)',
     "telemetry_schema of engine 'mine' must be a 'package:path.json' string, got bool"),
    ('registry.register("mine", lambda: None, telemetry_group=7)',
     "telemetry_group of engine 'mine' must be a non-empty string or None, got 7"),
    ('__import__("pytest").importorskip("no_such_module_here")',
     "Skipped: could not import 'no_such_module_here'*raises pytest_pcct.parity.engines.EngineUnavailable*"),
    ('raise SystemExit(0)', "SystemExit: 0"),
])
def test_registration_mistakes_are_usage_errors(pytester, register, message):
    pytester.makeconftest(f"def pytest_pcct_register_engines(registry):\n    {register}\n")
    pytester.makepyfile("def test_ok():\n    pass\n")
    result = pytester.runpytest("--pcct-engines=gold,brute")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"ERROR: pytest-pcct: engine registration failed: *{message}"])
    assert "INTERNALERROR" not in result.stdout.str() + result.stderr.str()


@pytest.mark.parametrize(("factory", "message"), [
    ('pytest.importorskip("no_such_module_here")',
     "Skipped: could not import 'no_such_module_here'*raises pytest_pcct.parity.engines.EngineUnavailable*"),
    ("raise SystemExit(0)", "SystemExit: 0"),
    ('pytest.fail("gave up")', "Failed: gave up"),
    ('pytest.xfail("not yet")', "XFailed: not yet"),
    ('pytest.exit("gave up", returncode=0)', "Exit: gave up"),
])
def test_a_factory_that_skips_or_exits_is_a_usage_error(pytester, factory, message):
    """pytest's skip, fail and xfail and SystemExit are BaseExceptions: raised by a factory they ended in
    an INTERNALERROR (exit code 3); pytest.exit, an Exception, was a usage error already."""
    pytester.makeconftest(f"""
        import pytest

        def make():
            {factory}

        def pytest_pcct_register_engines(registry):
            registry.register("mine", make)
    """)
    pytester.makepyfile("def test_ok():\n    pass\n")
    result = pytester.runpytest("--pcct-engines=gold,mine")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"ERROR: pytest-pcct: engine 'mine' requested by * could not be created: "
                                 f"{message}"])
    assert "INTERNALERROR" not in result.stdout.str() + result.stderr.str()


def test_a_project_replaces_the_oracle(pytester):
    pytester.makeconftest(EUCLIDEAN_ONLY)
    pytester.makepyfile("""
        def test_oracle(pcct_oracle):
            assert pcct_oracle.name == "euclid"
    """)
    result = pytester.runpytest("--pcct-engines=gold", "--pcct-oracle=euclid")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["pcct: registered engines *; oracle euclid (chosen with --pcct-oracle / ini "
                                 "pcct_oracle)"])
    pytester.makeini("[pytest]\npcct_oracle = euclid\n")
    pytester.runpytest("--pcct-engines=gold").assert_outcomes(passed=1)
    result = pytester.runpytest("--pcct-engines=gold", "--pcct-oracle=nope")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--pcct-oracle / ini pcct_oracle: unknown engine 'nope'*"])


def test_k_larger_than_n_is_padded_end_to_end(pytester):
    pytester.makepyfile("""
        import numpy as np
        from pytest_pcct.parity.assertions import assert_k_safe

        def test_pair(pcct_engine_pair, pcct_dataset):
            outcome = pcct_engine_pair.check(pcct_dataset("lattice", n=5, d=2, n_queries=3, side=3), 8)
            assert (outcome.candidate.indices[:, 5:] == -1).all()
            assert np.isinf(outcome.candidate.distances[:, 5:]).all()

        def test_k_safe(pcct_engine, pcct_oracle, pcct_dataset):
            problem = pcct_dataset("lattice", n=5, d=2, n_queries=3, side=3)
            assert_k_safe(pcct_engine.knn(problem, 8), pcct_oracle.knn(problem, 8))
    """)
    pytester.runpytest("--pcct-engines=gold,brute", "-p", "no:cacheprovider").assert_outcomes(passed=3)


def test_the_covertreex_engines_can_be_switched_off(pytester):
    """A project with only its own engines (and its own oracle) sees none of covertreex's."""
    pytester.makeconftest("""
        def pytest_pcct_register_engines(registry):
            registry.register("mine", lambda: lambda problem, k: None, oracle=True)
    """)
    pytester.makepyfile("def test_oracle(pcct_oracle):\n    assert pcct_oracle.name == 'mine'\n")
    off = ("-p", "no:pcct_covertreex")
    result = pytester.runpytest("--pcct-engines=mine", *off)
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["pcct: registered engines mine; oracle mine; it is also under test, so its "
                                 "own k-safety tests check it against itself"])
    result = pytester.runpytest("--pcct-engines=gold", *off)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        ["*unknown engine 'gold' requested by --pcct-engines; registered engines: mine"])
