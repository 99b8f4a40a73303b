"""Deliberately wrong engines registered by a test are caught through pcct_engine_pair, in both modes."""

import json
import platform
import re
import sys

import pytest

PAIR_TESTS = """
import pytest

@pytest.mark.pcct_dataset("gaussian", n=120, d=3, n_queries=6)
def test_exact(pcct_engine_pair, pcct_dataset):
    pcct_engine_pair.check(pcct_dataset(), 5)

@pytest.mark.pcct_parity(mode="tolerance")
@pytest.mark.pcct_dataset("gaussian", n=120, d=3, n_queries=6)
def test_tolerance(pcct_engine_pair, pcct_dataset):
    pcct_engine_pair.check(pcct_dataset(), 5)

@pytest.mark.pcct_parity(mode="tolerance", rtol=0, atol=0)
@pytest.mark.pcct_dataset("gaussian", n=120, d=3, n_queries=6)
def test_zero_tolerance(pcct_engine_pair, pcct_dataset):
    pcct_engine_pair.check(pcct_dataset(), 5)
"""

DATASET = "euclidean gaussian d=3 n=120 q=6 queries=points seed=0"

ONE_PAIR_CHECK = """
def test_pair(pcct_engine_pair, pcct_dataset):
    pcct_engine_pair.check(pcct_dataset(n=50, d=2, n_queries=3), 2)
"""


def test_a_one_ulp_distance_is_caught_in_exact_mode_and_at_zero_tolerance(wrong_engines):
    wrong_engines.makepyfile(PAIR_TESTS)
    result = wrong_engines.runpytest("--pcct-engines=gold,ulp")
    result.assert_outcomes(passed=1, failed=2)
    result.stdout.fnmatch_lines([
        "*_ test_exact[[]gold-ulp[]] _*",
        f"E **AssertionError: gold-ulp on {DATASET}, k=5:",
        "E *k-NN answers differ at query row 0, position 1: distance differs (exact mode: *",
        "E *gold: index *, distance *",
        "E *ulp: index *, distance * (+1 ulp)",
        "E *row 0, positions 0..4 of k=5 ('!' marks entries that differ):",
        "E *pos |     gold index  gold distance           |      ulp index  ulp distance",
        "E *! * 1 | *",
        "E *1 of 30 entries differ, in 1 of 6 rows; max |distance difference| *",
        "E *note: every index is the same and only distances differ (by at most *): one engine does not "
        "return the canonical distance bits; *",
        "*_ test_zero_tolerance[[]gold-ulp[]] _*",
        f"E *AssertionError: engine 'ulp' on {DATASET}, k=5: query row 0, position 1, index *: reported "
        "distance *, true distance *: the reported distance is not the true distance of the listed index "
        "(|reported - true| = 2.22e-16 > atol + rtol*true = 0)",
    ])
    result.stdout.fnmatch_lines([  # three checks of one (pair, dataset, k): one cell, the worst verdict
        "*= pcct parity matrix =*",
        "1 cells (engine pair x dataset x k): 0 exact, 0 tie-equal, 1 failed",
        f"gold-ulp  {DATASET}  5  F       2.2e-16  not compared",
    ])


def test_parity_markers_merge_keyword_by_keyword(wrong_engines):
    """A module's rtol=0, atol=0 holds under a function's mode="tolerance" (the closest marker alone put
    rtol back to 1e-9, and the one-ulp engine passed), and a function's own tolerances win over it."""
    wrong_engines.makepyfile("""
        import pytest

        pytestmark = pytest.mark.pcct_parity(rtol=0, atol=0)

        @pytest.mark.pcct_parity(mode="tolerance")
        def test_module_tolerances(pcct_engine_pair, pcct_dataset):
            pcct_engine_pair.check(pcct_dataset(n=120, d=3, n_queries=6), 5)

        @pytest.mark.pcct_parity(mode="tolerance", rtol=1e-9, atol=1e-12)
        def test_own_tolerances(pcct_engine_pair, pcct_dataset):
            pcct_engine_pair.check(pcct_dataset(n=120, d=3, n_queries=6), 5)
    """)
    result = wrong_engines.runpytest("--pcct-engines=gold,ulp")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines([
        "*_ test_module_tolerances[[]gold-ulp[]] _*",
        "E *the reported distance is not the true distance of the listed index (|reported - true| = 2.22e-16 "
        "> atol + rtol*true = 0)",
    ])


def test_a_wrong_neighbour_is_caught_in_exact_and_tolerance_mode(wrong_engines):
    wrong_engines.makepyfile(PAIR_TESTS)
    result = wrong_engines.runpytest("--pcct-engines=gold,swap")
    result.assert_outcomes(failed=3)
    untrue = (f"E *AssertionError: engine 'swap' on {DATASET}, k=5: query row 0, position 0, index 0: "
              "reported distance *, true distance *: the reported distance is not the true distance of the "
              "listed index*")
    result.stdout.fnmatch_lines(["*_ test_exact[[]gold-swap[]] _*", untrue,
                                 "*_ test_tolerance[[]gold-swap[]] _*", untrue])
    result.stdout.fnmatch_lines([
        "*= pcct parity matrix =*",
        "1 cells (engine pair x dataset x k): 0 exact, 0 tie-equal, 1 failed",
        f"gold-swap  {DATASET}  5  F       -        not compared",
    ])


def test_an_answer_without_the_nearest_fails_where_every_gap_is_below_the_tolerance(wrong_engines):
    """Points 1 + j * 0.6e-9 from the query: each distance is within rtol = 1e-9 of the next, so the
    near-equal groups chained into one and an answer listing the 2nd..11th nearest passed tolerance mode as
    a boundary tie (an outside trial); the 1st and the 11th are 6 rtol apart: not a tie."""
    wrong_engines.makepyfile("""
        import numpy as np
        import pytest
        from pytest_pcct.parity.datasets import problem_from_arrays

        LINE = problem_from_arrays((1.0 + 0.6e-9 * np.arange(40))[:, None], queries=np.zeros((1, 1)),
                                   label="line")

        @pytest.mark.pcct_parity(mode="tolerance")
        def test_tolerance(pcct_engine_pair):
            pcct_engine_pair.check(LINE, 10)

        @pytest.mark.pcct_parity(mode="tolerance")
        def test_a_true_tie(pcct_engine_pair):
            pcct_engine_pair.check(LINE, 1)  # the 2nd nearest is 0.6 rtol from the nearest: a tie
    """)
    result = wrong_engines.runpytest("--pcct-engines=gold,dropsnearest")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines([
        "*_ test_tolerance[[]gold-dropsnearest[]] _*",
        "E *k-NN answers differ at query row 0, position 9: dropsnearest leaves out index 0, nearer than its "
        "k-th distance by more than the tolerance*",
        "E *index 0 is at true distance 1.0; dropsnearest's k-th distance 1.000000006 exceeds it by more "
        "than atol + rtol*true, so no ranking of distances within the tolerance of the truth puts it beyond",
    ])


def test_a_tie_choice_that_changes_from_call_to_call_fails_when_asked_again(wrong_engines):
    """Each of tiecoin's answers is tie-equal to gold's, but it breaks a boundary tie one way on one call
    and the other way on the next (an outside user's engine choosing at random passed every check). With
    repeat=True each engine answers twice, recorded once; without it tolerance mode lets it pass, as an
    engine whose reductions round differently from run to run must."""
    wrong_engines.makepyfile("""
        import pytest

        @pytest.mark.parametrize("repeat", [True, False])
        def test_lattice(pcct_engine_pair, pcct_dataset, pcct_telemetry, repeat):
            pcct_engine_pair.check(pcct_dataset("lattice", n=200, d=2, n_queries=8, side=4), 6,
                                   mode="tolerance", repeat=repeat)
    """)
    result = wrong_engines.runpytest("--pcct-engines=gold,tiecoin,tieflip")
    result.assert_outcomes(passed=3, failed=1)
    result.stdout.fnmatch_lines([
        "*_ test_lattice[[]gold-tiecoin-True[]] _*",
        "E *AssertionError: gold-tiecoin on euclidean lattice *, k=6:",
        "E *engine 'tiecoin' answered the same problem differently when asked again (* rows differ; the "
        "first, query row *: indices [[]*], then [[]*]; distances [[]*], then [[]*])",
        "*= pcct parity matrix =*",
        "*gold-tiecoin*lattice*  6  F  *",
    ])
    result = wrong_engines.runpytest("--pcct-engines=tiecoin,gold")  # the reference is asked again too
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines([
        "*_ test_lattice[[]tiecoin-gold-True[]] _*",
        "E *engine 'tiecoin' answered the same problem differently when asked again *",
    ])


def test_a_repeated_call_is_recorded_once(pytester):
    pytester.makepyfile("""
        def test_pair(pcct_engine_pair, pcct_dataset, pcct_telemetry):
            pcct_engine_pair.check(pcct_dataset(n=50, d=2, n_queries=3), 2, repeat=True)
            assert len(pcct_telemetry.for_engine("brute")) == 1
    """)
    pytester.runpytest("--pcct-engines=gold,brute").assert_outcomes(passed=1)


def test_tie_reordering_is_tie_equal_but_not_exact(wrong_engines):
    wrong_engines.makepyfile("""
        import pytest

        @pytest.mark.parametrize("mode", ["exact", "tolerance"])
        def test_lattice(pcct_engine_pair, pcct_dataset, mode):
            problem = pcct_dataset("lattice", n=200, d=2, n_queries=8, side=4)
            outcome = pcct_engine_pair.check(problem, 6, mode=mode)
            assert outcome.status == "tie-equal"
    """)
    result = wrong_engines.runpytest("--pcct-engines=gold,tieflip")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines([
        "E *k-NN answers differ at query row 0, position *: index differs (exact mode: *",
        "E *note: the answers are tie-equal (they pass mode='tolerance' with rtol=1e-09, atol=1e-12)",
    ])


def test_counters_are_compared_and_records_validated(pytester):
    pytester.makeconftest("""
        from pytest_pcct.covertreex_engines import PARITY_GROUP
        from covertreex.telemetry import schema_resource


        def recounting(registry, change):
            def factory():
                engine = registry.create("gold")

                def knn(problem, k):  # the total and its level's row changed alike: a consistent record
                    answer = engine.knn(problem, k)
                    prunes = change(answer.telemetry)
                    counters = dict(answer.telemetry["counters"], prunes=prunes)
                    *levels, last = answer.telemetry["levels"]
                    last = dict(last, prunes=last["prunes"] + prunes - answer.telemetry["counters"]["prunes"])
                    return answer.indices, answer.distances, {**answer.telemetry, "counters": counters,
                                                              "levels": [*levels, last]}

                return knn

            return factory


        def pytest_pcct_register_engines(registry):
            for name, change in [("miscount", lambda t: t["counters"]["prunes"] + 1),
                                 ("badrecord", lambda t: -1)]:
                registry.register(name, recounting(registry, change), telemetry_schema=schema_resource(),
                                  telemetry_group=PARITY_GROUP["gold"])
    """)
    pytester.makepyfile(ONE_PAIR_CHECK)
    result = pytester.runpytest("--pcct-engines=gold,miscount,badrecord", "--pcct-report=r.json")
    result.assert_outcomes(failed=2)
    report = json.loads((pytester.path / "r.json").read_text())  # "0 failed" alone read green to a CI job
    assert report["totals"] == {"exact": 1, "tie-equal": 0, "failed": 1, "counters differ": 1}
    [miscount] = [cell for cell in report["cells"] if cell["candidate"] == "miscount"]
    assert miscount["failure"].startswith("answers agree but telemetry differs at counters.prunes: gold ")
    result.stdout.fnmatch_lines([
        "*_ test_pair[[]gold-miscount[]] _*",
        "E *AssertionError: gold-miscount on euclidean gaussian d=2 n=50 q=3 queries=points seed=0, k=2: "
        "answers agree but telemetry differs at counters.prunes: gold *, miscount * (compared fields: "
        "counters, per_query, levels)",
        "*_ test_pair[[]gold-badrecord[]] _*",
        "E *AssertionError: telemetry record of engine 'badrecord' does not match schema "
        "covertreex:schemas/query_telemetry.v5.json:",
        "E *counters/prunes: -1 is less than the minimum of 0",
        "*= pcct parity matrix =*",
        "2 cells (engine pair x dataset x k): 1 exact, 0 tie-equal, 1 failed; counters differ in 1",
        "gold-miscount   euclidean gaussian d=2 n=50 q=3 queries=points seed=0  2  E       0        differ",
    ])


def test_a_record_of_another_call_fails(pytester):
    """A record kept from an earlier call, or with one described field changed, is still valid against the
    schema; the plugin compares what it describes with the call."""
    pytester.makeconftest("""
        from covertreex.telemetry import schema_resource


        def lying(registry, change):
            def factory():
                engine, first = registry.create("gold"), []

                def knn(problem, k):
                    answer = engine.knn(problem, k)
                    first.append(answer.telemetry)
                    return answer.indices, answer.distances, change(first[0], answer.telemetry)

                return knn

            return factory


        def pytest_pcct_register_engines(registry):
            for name, change in [("stale", lambda first, now: first),
                                 ("wrongk", lambda first, now: {**now, "k": now["k"] + 1}),
                                 ("honest", lambda first, now: now)]:
                registry.register(name, lying(registry, change), telemetry_schema=schema_resource())
    """)
    pytester.makepyfile("""
        def test_pair(pcct_engine_pair, pcct_dataset):
            pcct_engine_pair.check(pcct_dataset(n=50, d=2, n_queries=3), 2)
            pcct_engine_pair.check(pcct_dataset(n=50, d=2, n_queries=3, seed=1), 2)
            pcct_engine_pair.check(pcct_dataset(n=40, d=2, n_queries=3), 2)
            pcct_engine_pair.check(pcct_dataset(n=40, d=2, n_queries=3), 60)


        def test_same_data_sizes_and_k(pcct_engine_pair, pcct_dataset):
            # the same 50 points; 3 queries at new coordinates, then 3 indexed points, then 3 others
            pcct_engine_pair.check(pcct_dataset(n=50, d=2, n_queries=3, queries="points"), 2)
            pcct_engine_pair.check(pcct_dataset(n=50, d=2, n_queries=3, queries="indices"), 2)
    """)
    result = pytester.runpytest("--pcct-engines=gold,stale,wrongk,honest")
    result.assert_outcomes(passed=2, failed=4)
    result.stdout.fnmatch_lines([
        "*_ test_pair[[]gold-stale[]] _*",
        "E *AssertionError: telemetry record of engine 'stale' on euclidean gaussian d=2 n=50 q=3 "
        "queries=points seed=1, k=2 describes another call: dataset_digest '*' (the call: '*')",
        "*_ test_pair[[]gold-wrongk[]] _*",
        "E *AssertionError: telemetry record of engine 'wrongk' on euclidean gaussian d=2 n=50 q=3 "
        "queries=points seed=0, k=2 describes another call: k 3 (the call: 2)",
    ], consecutive=False)
    result.stdout.fnmatch_lines([
        "*_ test_same_data_sizes_and_k[[]gold-stale[]] _*",
        "E *AssertionError: telemetry record of engine 'stale' on euclidean gaussian d=2 n=50 q=3 "
        "queries=indices seed=0, k=2 describes another call: query_digest 'points:*' (the call: 'indices:*')",
    ])


def test_an_indexed_problem_answered_at_its_coordinates_describes_its_call(pytester):
    """An honest adapter may answer an 'indices' problem at problem.query_points (the docs offer them in
    either mode): its record names those coordinates, which are the call's queries (a review)."""
    pytester.makeconftest("""
        import covertreex as ct
        from covertreex.telemetry import schema_resource


        def pytest_pcct_register_engines(registry):
            def factory():
                def knn(problem, k):
                    answer = ct.CoverTree(engine="gold").fit(problem.points).query(problem.query_points, k)
                    return answer.indices, answer.distances, answer.telemetry

                return knn

            registry.register("atcoordinates", factory, telemetry_schema=schema_resource())
    """)
    pytester.makepyfile("""
        def test_pair(pcct_engine_pair, pcct_dataset):
            pcct_engine_pair.check(pcct_dataset(n=50, d=2, n_queries=3, queries="indices"), 2)
            pcct_engine_pair.check(pcct_dataset(n=50, d=2, n_queries=3, queries="points"), 2)
    """)
    pytester.runpytest("--pcct-engines=gold,atcoordinates").assert_outcomes(passed=1)


def test_a_record_that_names_no_queries_fails(pytester):
    """A version 4 record (valid against its own schema) names no queries, so it cannot show it counted
    this call: the plugin says so, rather than calling it a record of another call."""
    pytester.makeconftest("""
        from covertreex.telemetry import schema_resource


        def pytest_pcct_register_engines(registry):
            def factory():
                engine = registry.create("gold")

                def knn(problem, k):
                    answer = engine.knn(problem, k)
                    record = {key: value for key, value in answer.telemetry.items() if key != "query_digest"}
                    return answer.indices, answer.distances, {**record, "schema_version": 4}

                return knn

            registry.register("older", factory, telemetry_schema=schema_resource(4))
    """)
    pytester.makepyfile("""
        def test_pair(pcct_engine_pair, pcct_dataset):
            pcct_engine_pair.check(pcct_dataset(n=50, d=2, n_queries=3), 2)
    """)
    result = pytester.runpytest("--pcct-engines=gold,older")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines([
        "E *AssertionError: telemetry record of engine 'older' on euclidean gaussian d=2 n=50 q=3 "
        "queries=points seed=0, k=2 is a version 4 record, which does not name its queries: a record checked "
        "against a call must name them (query_digest, version 5)",
    ])


ZEROED = """
def _zeroed(record):
    spread = {"min": 0, "max": 0, "mean": 0.0}
    counted = ("distance_evaluations", "heap_pushes", "prunes", "cache_skips", "frontier", "blocks")
    return {**record, "counters": dict.fromkeys(record["counters"], 0),
            "per_query": {name: spread for name in record["per_query"]},
            "levels": [dict(row, **dict.fromkeys(counted, 0)) for row in record["levels"]]}
"""


@pytest.mark.parametrize("name, change, complaint", [
    ("zeroed", "_zeroed(now)", "the answer lists 6 neighbours but the record visited 0 nodes"),
    ("levels", "{**now, 'levels': now['levels'][1:]}", "counters.distance_evaluations = * but the levels' "
     "rows sum to *"),
    ("spread", "{**now, 'per_query': {**now['per_query'], 'heap_pushes': {'min': 9, 'max': 1, 'mean': 5.0}}}",
     "per_query.heap_pushes {'min': 9, 'max': 1, 'mean': 5.0} cannot spread counters.heap_pushes = *"),
    ("huge", "{**now, 'counters': {**now['counters'], 'prunes': 1e290}}",
     "counters.prunes = 1e+290 is not an integer below 2**63"),
    ("visited", "{**now, 'counters': {**now['counters'], 'nodes_visited': 1}}",
     "counters.nodes_visited = 1 is not distance_evaluations + dedupe_hits = *"),
])
def test_a_record_that_contradicts_itself_fails_without_a_peer_to_compare(pytester, name, change, complaint):
    """An engine outside any telemetry group has no peer whose counters would differ from its own, so an
    outside user's zeroed, inconsistent or absurd counters passed: each is valid against the schema alone.
    A record's counters must agree with each other and with the answer."""
    pytester.makeconftest(ZEROED + f"""
from covertreex.telemetry import schema_resource


def factory(registry):
    def make():
        engine = registry.create("gold")

        def knn(problem, k):
            answer = engine.knn(problem, k)
            now = answer.telemetry
            return answer.indices, answer.distances, {change}

        return knn

    return make


def pytest_pcct_register_engines(registry):
    registry.register("{name}", factory(registry), telemetry_schema=schema_resource())
""")
    pytester.makepyfile(ONE_PAIR_CHECK)
    result = pytester.runpytest(f"--pcct-engines=brute,{name}")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines([f"E *AssertionError: telemetry record of engine '{name}' on euclidean "
                                 "gaussian d=2 n=50 q=3 queries=points seed=0, k=2 contradicts itself: "
                                 f"*{complaint}*"])


def test_counters_that_only_compare_equal_are_not_equal(pytester):
    """An int subclass whose == is always true made any counters 'equal' to the reference's; a record is
    read as the JSON it stands for, so its counters are the numbers they print as."""
    pytester.makeconftest("""
        from pytest_pcct.covertreex_engines import PARITY_GROUP
        from covertreex.telemetry import schema_resource


        class AlwaysEqual(int):
            def __eq__(self, other):
                return True

            def __ne__(self, other):
                return False

            __hash__ = int.__hash__


        def liar(registry):
            def factory():
                engine = registry.create("gold")

                def knn(problem, k):  # one count raised, where nothing else in the record sums it
                    answer = engine.knn(problem, k)
                    counters = {name: AlwaysEqual(value + (name == "empty_blocks"))
                                for name, value in answer.telemetry["counters"].items()}
                    return answer.indices, answer.distances, {**answer.telemetry, "counters": counters}

                return knn

            return factory


        def pytest_pcct_register_engines(registry):
            registry.register("liar", liar(registry), telemetry_schema=schema_resource(),
                              telemetry_group=PARITY_GROUP["gold"])
    """)
    pytester.makepyfile(ONE_PAIR_CHECK)
    result = pytester.runpytest("--pcct-engines=gold,liar")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["E *AssertionError: gold-liar on * answers agree but telemetry differs at "
                                 "counters.empty_blocks: gold *, liar *"])


@pytest.mark.skipif(not sys.platform.startswith("linux") or platform.machine() != "x86_64",
                    reason="sets the rounding mode through x86 glibc's fesetround")
def test_an_engine_that_leaves_the_rounding_mode_changed_fails(wrong_engines):
    """An engine (or its factory) that left the thread rounding upward made every later computation, the
    oracle's and the truth check's included, round upward: exact mode passed answers whose distances were
    not the canonical ones. The default is put back, so the tests after it are judged normally."""
    wrong_engines.makepyfile(PAIR_IN_BOTH_MODES)
    result = wrong_engines.runpytest("--pcct-engines=gold,roundsup,brute", "-v", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=2, failed=2)
    result.stdout.fnmatch_lines_random([
        "*EngineFailure: after engine 'roundsup' answered euclidean gaussian *, k=5, the floating-point "
        "environment is not the default (rounding upward): every later computation in this thread, the "
        "oracle's and the plugin's truth check included, would share the change, so answers could agree bit "
        "for bit without any being the canonical one; the default was put back",
        "*test_pair[[]gold-brute-exact[]] PASSED*",
        "*test_pair[[]gold-brute-tolerance[]] PASSED*",
    ])
    result = wrong_engines.runpytest("--pcct-engines=gold,roundsupfactory", "-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["ERROR: pytest-pcct: engine 'roundsupfactory' requested by --pcct-engines "
                                 "could not be created: EngineFailure: after the factory of engine "
                                 "'roundsupfactory' ran, the floating-point environment is not the default "
                                 "(rounding upward)*; the default was put back"])


def test_a_property_prints_a_counterexample_that_reproduces_as_written(wrong_engines):
    wrong_engines.makepyfile(test_prop="""
        from hypothesis import Phase, given, settings
        from hypothesis import strategies as st
        from pytest_pcct.parity.strategies import knn_cases

        @settings(settings.get_profile("ci"), deadline=None, phases=[Phase.generate, Phase.shrink],
                  report_multiple_bugs=False)
        @given(case=knn_cases(metric="euclidean", n=st.integers(2, 12), d=st.integers(1, 2)))
        def test_prop(pcct_engine_pair, case):
            pcct_engine_pair.check(case.problem, case.k)
    """)
    result = wrong_engines.runpytest("--pcct-engines=gold,swap", "test_prop.py")
    result.assert_outcomes(failed=1)
    printed = re.search(r"^E +case=(KnnCase\(.*\)),$", result.stdout.str(), flags=re.M).group(1)
    wrong_engines.makepyfile(test_again=f"""
        import numpy as np
        from pytest_pcct.parity.datasets import KnnCase

        def test_again(pcct_engine_pair):
            case = {printed}
            pcct_engine_pair.check(case.problem, case.k)
    """)
    wrong_engines.runpytest("--pcct-engines=gold,swap", "test_again.py").assert_outcomes(failed=1)
    wrong_engines.runpytest("--pcct-engines=gold,brute", "test_again.py").assert_outcomes(passed=1)


EVERY_MODE = """
import pytest
from hypothesis import Phase, given, settings
from hypothesis import strategies as st

from pytest_pcct.parity.assertions import assert_k_safe
from pytest_pcct.parity.strategies import knn_cases

GAUSSIAN = pytest.mark.pcct_dataset("gaussian", n=120, d=3, n_queries=6)


@GAUSSIAN
@pytest.mark.parametrize("k", [1, 5])
@pytest.mark.parametrize("mode", ["exact", "tolerance"])
def test_pair(pcct_engine_pair, pcct_dataset, mode, k):
    pcct_engine_pair.check(pcct_dataset(), k, mode=mode)


@GAUSSIAN
@pytest.mark.parametrize("k", [1, 5])
def test_k_safe(pcct_engine, pcct_oracle, pcct_dataset, k):
    problem = pcct_dataset()
    assert_k_safe(pcct_engine.knn(problem, k), pcct_oracle.knn(problem, k), rtol=1e-9)


@settings(max_examples=25, deadline=None, database=None, phases=[Phase.generate], derandomize=True)
@given(case=knn_cases(metric="euclidean", family="uniform", n=st.integers(20, 40), k=st.integers(2, 6)))
def test_property(pcct_engine, pcct_oracle, case):
    assert_k_safe(pcct_engine.knn(case.problem, case.k), pcct_oracle.knn(case.problem, case.k))
"""

WRONG = ("lastplus", "random", "farthest", "offbyone", "unsorted", "float32", "outside")
NAMES_THE_ENTRY = re.compile(
    r"query row \d+, position \d+, index -?\d+: reported distance [^,]+, true distance")
WHAT_IS_WRONG = {
    "unsorted": re.compile(r"query row \d+ is not sorted by \(distance, index\) at position \d+: index \d+ "
                           r"at distance \S+ comes before index \d+ at distance \S+ "
                           r"\(true distances \S+ and \S+\)"),
    "float32": re.compile(r"distances have dtype float32, not float64 \(the distances of record\)(, e\.g\. "
                          + NAMES_THE_ENTRY.pattern + r"| \(its values happen to equal the true distances in "
                          r"this answer\))"),
    "outside": re.compile(r"query row \d+, position \d+: index \d+ is not a point of the problem "
                          r"\(n=\d+: indices 0\.\.\d+, or -1 for padding\); reported distance"),
}


def test_every_wrong_engine_fails_in_every_mode_naming_the_entry_and_its_true_distance(wrong_engines):
    """The wrong engines of issue 10 fail exact mode, tolerance mode, k-safety and a Hypothesis property,
    each with a message naming query row, position, index and reported vs true distance."""
    wrong_engines.makepyfile(test_every_mode=EVERY_MODE)
    result = wrong_engines.runpytest(f"--pcct-engines=gold,{','.join(WRONG)}", "-p", "no:cacheprovider")
    reports = [r for r in result.reprec.getreports("pytest_runtest_logreport") if r.when == "call"]
    for name in WRONG:
        mine = [r for r in reports if f"[{name}" in r.nodeid or f"-{name}-" in r.nodeid
                or r.nodeid.endswith(f"-{name}]")]
        applicable = [r for r in mine if not (name == "unsorted" and "-1]" in r.nodeid)]  # k=1 is sorted
        assert len(applicable) == (4 if name == "unsorted" else 7), (name, [r.nodeid for r in mine])
        for report in applicable:
            assert report.failed, f"{report.nodeid} passed"
            text = str(report.longrepr)
            assert f"engine {name!r} on " in text, text
            named = (WHAT_IS_WRONG.get(name, NAMES_THE_ENTRY), WHAT_IS_WRONG["unsorted"])  # (ties)
            assert any(pattern.search(text) for pattern in named), text
    reference = [r for r in reports if "[gold" in r.nodeid and "gold-" not in r.nodeid]
    assert reference and all(r.passed for r in reference)


PAIR_IN_BOTH_MODES = """
import pytest

@pytest.mark.parametrize("mode", ["exact", "tolerance"])
def test_pair(pcct_engine_pair, pcct_dataset, mode):
    pcct_engine_pair.check(pcct_dataset(n=120, d=3, n_queries=6), 5, mode=mode)
"""


def test_an_engine_that_raises_or_answers_the_wrong_shape_fails_and_is_a_failed_cell(wrong_engines):
    """Raising the plugin's own UnsupportedProblemError is no way out: only the plugin's refusal, made
    before the engine is called, is a skip. Every such failure is a failed cell of the parity report, a
    SystemExit too (it failed the test, but the report had no cell), and distances that are objects fail
    by their dtype (one of None raised a bare TypeError)."""
    wrong_engines.makepyfile(PAIR_IN_BOTH_MODES)
    result = wrong_engines.runpytest("--pcct-engines=gold,refuses,raises,sysexit,objectdist,missingrow",
                                     "--pcct-report=r.json", "-p", "no:cacheprovider")
    result.assert_outcomes(failed=10)
    result.stdout.fnmatch_lines(["*EngineFailure: engine 'refuses' raised UnsupportedProblemError on "
                                 "euclidean gaussian *, k=5, a problem it was registered for (this engine "
                                 "gives up here)*"])
    report = json.loads((wrong_engines.path / "r.json").read_text())
    assert report["totals"] == {"exact": 0, "tie-equal": 0, "failed": 5, "counters differ": 0}
    failures = {cell["candidate"]: cell["failure"] for cell in report["cells"]}
    assert failures["refuses"].startswith("engine 'refuses' raised UnsupportedProblemError on ")
    assert failures["raises"] == "RuntimeError: the engine crashed"
    assert failures["sysexit"] == "SystemExit: 0"
    assert failures["objectdist"] == ("engine 'objectdist' on euclidean gaussian d=3 n=120 q=6 "
                                      "queries=points seed=0, k=5: distances have dtype object, not float64 "
                                      "(the distances of record)")
    assert failures["missingrow"] == ("InvalidInputError: engine 'missingrow' returned indices of shape "
                                      "(5, 5), expected (6, 5)")
    assert all(cell["checks"] == 2 and cell["max_abs_diff"] is None for cell in report["cells"])


def test_an_engine_that_writes_into_its_input_fails_and_the_next_test_gets_the_problem_afresh(wrong_engines):
    """A problem an engine changed is never checked against again: the next test that asks for it gets it
    made afresh, so the engine fails there for what it does itself. (The tests after it failed as "changed
    after it was made", so serial and xdist runs told different failures, as xdist shared the tests out.)"""
    wrong_engines.makepyfile(PAIR_IN_BOTH_MODES)
    result = wrong_engines.runpytest("--pcct-engines=gold,writes", "--pcct-report=r.json", "-p",
                                     "no:cacheprovider")
    result.assert_outcomes(failed=2)
    result.stdout.fnmatch_lines(["*EngineFailure: engine 'writes' changed points of euclidean "
                                 "gaussian *(k=5); an engine must leave its input unchanged"] * 2)
    assert "changed after it was made" not in result.stdout.str()
    assert "ProblemChangedWarning" not in result.stdout.str()  # its failure named the change
    report = json.loads((wrong_engines.path / "r.json").read_text())
    assert report["totals"]["failed"] == 1 and report["cells"][0]["status"] == "failed"  # one cell, both


def test_a_problem_changed_within_a_test_fails_its_next_check(pytester):
    """The same Problem object, changed and checked again in one test, is named as changed."""
    pytester.makepyfile("""
        import numpy as np

        def test_changed(pcct_engine_pair, pcct_dataset):
            problem = pcct_dataset(n=50, d=2, n_queries=3)
            pcct_engine_pair.check(problem, 2)
            problem.points.flags.writeable = True
            problem.points[0, 0] += 1.0
            pcct_engine_pair.check(problem, 2)
    """)
    result = pytester.runpytest("--pcct-engines=gold,brute")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*EngineFailure: points of euclidean gaussian * changed after it was made "
                                 "(by an engine that failed on it before, or by the test)*"])


def test_a_problem_changed_after_its_checks_is_told_when_next_asked_for(pytester):
    """A change made after every check of a problem (by an engine's background thread once it returned, in
    an outside trial; here by the test) was remade silently for the next test: it is told as a warning."""
    pytester.makepyfile("""
        def test_changes_it_after_checking(pcct_engine_pair, pcct_dataset):
            problem = pcct_dataset(n=50, d=2, n_queries=3)
            pcct_engine_pair.check(problem, 2)
            problem.points.flags.writeable = True
            problem.points[0, 0] += 1.0

        def test_asks_for_it_again(pcct_engine_pair, pcct_dataset):
            pcct_engine_pair.check(pcct_dataset(n=50, d=2, n_queries=3), 2)
    """)
    result = pytester.runpytest("--pcct-engines=gold,brute")
    result.assert_outcomes(passed=2, warnings=1)
    result.stdout.fnmatch_lines(["*ProblemChangedWarning: pytest-pcct: points of euclidean gaussian * "
                                 "changed after every check of it passed (something wrote into it after an "
                                 "engine returned, a background thread of one, say); it is made afresh for "
                                 "this test"])
    result = pytester.runpytest("--pcct-engines=gold,brute", "-W",
                                "error::pytest_pcct.parity.datasets.ProblemChangedWarning")
    result.assert_outcomes(passed=1, failed=1)


def test_an_engine_that_changes_a_frozen_field_of_its_problem_fails_naming_it(wrong_engines):
    """object.__setattr__ past the frozen dataclass went unseen (only arrays were digested): an engine that
    turned a predecessor problem into a plain one passed with row i listing i itself."""
    wrong_engines.makepyfile(PAIR_IN_BOTH_MODES)
    result = wrong_engines.runpytest("--pcct-engines=gold,flipsflag", "-p", "no:cacheprovider")
    result.assert_outcomes(failed=2)
    result.stdout.fnmatch_lines(["*EngineFailure: engine 'flipsflag' changed predecessor of euclidean "
                                 "gaussian *(k=5); an engine must leave its input unchanged"] * 2)


@pytest.mark.parametrize(("engine", "what"), [
    ("skips", "skip the test"), ("xfails", "xfail the test"), ("unittestskip", "skip the test"),
    ("skipsonread", "skip the test"), ("groupskip", "skip the test"), ("recordskip", "skip the test"),
    ("exits", "end the run (pytest.exit)"), ("rejects", "reject the Hypothesis example (assume or reject)"),
])
def test_an_engine_that_skips_xfails_or_exits_fails(wrong_engines, engine, what):
    """pytest.importorskip, pytest.xfail or unittest.SkipTest inside an engine made its test a skip or an
    expected failure: a green run with no cell checked; so did a skip inside an exception group or read
    from its telemetry record, and pytest.exit(returncode=0) ended the run with exit code 0."""
    wrong_engines.makepyfile(PAIR_IN_BOTH_MODES)
    result = wrong_engines.runpytest(f"--pcct-engines=gold,{engine}", "--pcct-report=r.json",
                                     "-p", "no:cacheprovider")
    result.assert_outcomes(failed=2)
    result.stdout.fnmatch_lines([f"*EngineFailure: engine '{engine}' tried to {what} on euclidean "
                                 "gaussian *, k=5 (*); an engine answers or fails*"])
    assert json.loads((wrong_engines.path / "r.json").read_text())["totals"]["failed"] == 1


def test_a_record_whose_get_skips_cannot_hide_a_wrong_answer(wrong_engines):
    """The record was read (its .get) after the guard around the engine's call, so a wrong engine whose
    record skipped there turned its failing test into a skip; records are read as plain JSON now."""
    wrong_engines.makepyfile(PAIR_IN_BOTH_MODES)
    result = wrong_engines.runpytest("--pcct-engines=gold,dropsbehindrecord", "-p", "no:cacheprovider")
    result.assert_outcomes(failed=2)
    result.stdout.fnmatch_lines(["*gold-dropsbehindrecord on euclidean gaussian *, k=5:*"])


def test_an_answer_in_a_buffer_its_engine_reuses_is_kept_as_it_arrived(wrong_engines):
    """Two engines writing their answers into one reused buffer: the reference's answer was overwritten by
    the candidate's before the comparison, so a candidate with a wrong k-th neighbour passed."""
    wrong_engines.makepyfile(PAIR_IN_BOTH_MODES)
    result = wrong_engines.runpytest("--pcct-engines=sharedright,sharedlast", "--pcct-oracle=gold",
                                     "-p", "no:cacheprovider")
    result.assert_outcomes(failed=2)


def test_float64_distances_in_either_byte_order_are_float64(wrong_engines):
    wrong_engines.makepyfile(PAIR_IN_BOTH_MODES)
    wrong_engines.runpytest("--pcct-engines=gold,bigendian", "-p", "no:cacheprovider").assert_outcomes(
        passed=2)


def test_check_names_a_k_that_is_not_an_integer(wrong_engines):
    """check(problem, None) failed with int()'s bare TypeError."""
    wrong_engines.makepyfile("""
        def test_pair(pcct_engine_pair, pcct_dataset):
            pcct_engine_pair.check(pcct_dataset(n=30, d=2, n_queries=3), None)
    """)
    result = wrong_engines.runpytest("--pcct-engines=gold,brute", "-p", "no:cacheprovider")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*InputTypeError: k must be an integer*"])


def test_a_benchmark_only_run_says_that_no_answer_was_checked(wrong_engines, monkeypatch):
    """--benchmark-only (pytest-benchmark skips every non-benchmark test) turned a wrong engine's run green
    with a report of 0 cells and nothing said (an outside trial): the run still skips, but says so, and
    the report is marked."""
    wrong_engines.makepyfile(PAIR_IN_BOTH_MODES)
    monkeypatch.delenv("PYTEST_XDIST_WORKER", raising=False)  # else pytest-benchmark turns on
    # --benchmark-disable in the inner run, and refuses it beside --benchmark-only
    result = wrong_engines.runpytest("--pcct-engines=gold,lastplus", "--benchmark-only",
                                     "--pcct-report=r.json", "-p", "no:cacheprovider", "-p", "no:xdist")
    result.assert_outcomes(skipped=2)
    result.stdout.fnmatch_lines(["no engine answer was checked: --benchmark-only skips every test that is "
                                 "not a benchmark*"])
    report = json.loads((wrong_engines.path / "r.json").read_text())
    assert report["benchmark_only"] is True and report["cells"] == []
