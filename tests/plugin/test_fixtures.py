"""Fixture behaviour through pytester: pcct_dataset, pcct_engine, pcct_oracle, pcct_telemetry."""

from pytest_pcct.parity.datasets import make_problem


def test_dataset_factory_caches_seeds_and_reads_the_marker(pytester):
    expected = make_problem("lattice", n=40, d=2, seed=5, n_queries=4).digest
    pytester.makepyfile(f"""
        import pytest

        def test_cached_and_seeded(pcct_dataset):
            problem = pcct_dataset("lattice", n=40, d=2, n_queries=4)
            assert problem is pcct_dataset(kind="lattice", n=40, d=2, n_queries=4, seed=5)
            assert problem.digest == "{expected}"
            assert problem.label == "euclidean lattice d=2 n=40 q=4 queries=points seed=5"
            assert problem.points.shape == (40, 2) and problem.queries.shape == (4, 2)
            assert not problem.points.flags.writeable

        @pytest.mark.pcct_dataset("duplicates", n=30, d=3, metric="residual", m=8, seed=1)
        def test_marker_defaults(pcct_dataset):
            problem = pcct_dataset(n_queries=5)
            assert problem.label == ("residual duplicates d=3 kernel=rbf lengthscale=1.0 m=8 n=30 q=5 "
                                     "queries=indices seed=1 variance=1.0")
            assert problem.residual.V.shape == (30, 8) and problem.query_indices.shape == (5,)

        def test_bad_arguments(pcct_dataset):
            with pytest.raises(ValueError, match="unknown dataset kind 'spiral'"):
                pcct_dataset("spiral")
            with pytest.raises(TypeError, match="at most one positional argument"):
                pcct_dataset("lattice", 40)

        @pytest.mark.pcct_dataset("lattice", n=36)
        class TestMerged:
            @pytest.mark.pcct_dataset(d=3)
            def test_markers_merge(self, pcct_dataset):  # the closest marker alone dropped kind and n
                assert pcct_dataset(n_queries=2).label.startswith("euclidean lattice d=3 n=36 q=2")
    """)
    pytester.runpytest("--pcct-engines=gold,brute", "--pcct-seed=5").assert_outcomes(passed=4)


def test_engines_oracle_and_telemetry_fixtures(pytester):
    pytester.makepyfile("""
        import pytest

        def test_engine_answers(pcct_engine, pcct_dataset, pcct_telemetry):
            problem = pcct_dataset(n=60, d=2, n_queries=3)
            answer = pcct_engine.knn(problem, 4)
            assert answer.engine == pcct_engine.name
            assert answer.indices.shape == (3, 4) and answer.distances.dtype == "float64"
            assert [r["engine"] for r in pcct_telemetry.records] == [pcct_engine.name]
            assert pcct_telemetry.for_engine(pcct_engine.name)[0]["k"] == 4

        def test_oracle_needs_no_selection(pcct_oracle):
            assert pcct_oracle.name == "brute"

        def test_records_are_per_test(pcct_telemetry):
            assert pcct_telemetry.records == []

        def test_add_validates(pcct_engine, pcct_dataset, pcct_telemetry, tmp_path):
            record = pcct_engine.knn(pcct_dataset(n=20, d=1, n_queries=2), 1).telemetry
            with pytest.raises(AssertionError, match="created: 'soon' is not a 'date-time'"):
                pcct_telemetry.add({**record, "created": "soon"}, engine="mine")
            pcct_telemetry.add(record, engine="mine")
            pcct_telemetry.write_jsonl(tmp_path / "t.jsonl")
            assert len((tmp_path / "t.jsonl").read_text().splitlines()) == 2
            # the checks an engine's record meets (an outside trial added these and wrote bare NaN)
            nan = {**record, "timings": {**record["timings"], "query_seconds": float("nan")}}
            with pytest.raises(AssertionError, match="is not JSON data: Out of range float"):
                pcct_telemetry.add(nan, engine="mine")
            huge = {**record, "counters": {**record["counters"], "distance_evaluations": 2**62}}
            with pytest.raises(AssertionError, match="contradicts itself: .*counters.distance_evaluations"):
                pcct_telemetry.add(huge, engine="mine")
            wide = {**record, "counters": {**record["counters"], "distance_evaluations": 1e300}}
            with pytest.raises(AssertionError, match="1e[+]300 is not of type 'integer'"):  # the draft's rule
                pcct_telemetry.add(wide, engine="mine")  # took 1e300 for an integer, as Python's float
            assert len(pcct_telemetry.records) == 2
    """)
    result = pytester.runpytest("--pcct-engines=gold,rust", "-v")
    result.assert_outcomes(passed=6)
    result.stdout.fnmatch_lines(
        ["*test_engine_answers[[]gold[]] PASSED*", "*test_engine_answers[[]rust[]] PASSED*"]
    )


def test_engine_output_is_checked(pytester):
    pytester.makeconftest("""
        import numpy as np

        def pytest_pcct_register_engines(registry):
            registry.register("short", lambda: lambda problem, k: (np.zeros((1, k), int), np.zeros((1, k))))
            def chatty():
                brute = registry.create("brute")
                return lambda problem, k: (*brute.knn(problem, k), {"engine": "chatty"})

            registry.register("chatty", chatty)
    """)
    pytester.makepyfile("""
        def test_run(pcct_engine, pcct_dataset):
            pcct_engine.knn(pcct_dataset(n=20, d=2, n_queries=3), 2)
    """)
    result = pytester.runpytest("--pcct-engines=short,chatty")
    result.assert_outcomes(failed=2)
    result.stdout.fnmatch_lines([
        "E *engine 'short' returned indices of shape (1, 2), expected (3, 2)",
        "E *engine 'chatty' returned a telemetry record but was registered without telemetry_schema, "
        "so the record cannot be validated",
    ])


def test_registration_errors_name_the_problem():
    import pytest

    from covertreex.errors import InvalidInputError
    from pytest_pcct.parity.engines import EngineRegistry

    registry = EngineRegistry()
    registry.register("a", lambda: None, oracle=True)
    for kwargs, message in [
        ({"name": "a", "factory": lambda: None}, "engine 'a' is already registered"),
        ({"name": "b,c", "factory": lambda: None}, "engine name must be a non-empty word without commas"),
        ({"name": "b", "factory": 3}, "factory of engine 'b' must be callable"),
        ({"name": "b", "factory": lambda: None, "oracle": True}, "'a' already is"),
    ]:
        with pytest.raises(InvalidInputError, match=message):
            registry.register(**kwargs)
    with pytest.raises(InvalidInputError, match="returned None, which is not callable"):
        registry.create("a")
