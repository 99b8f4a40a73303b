"""The gate is opt-in: a project that does not opt in (ini pcct_gate, --pcct-gate, or requesting the
pcct_gate fixture) sees pytest-benchmark exactly as without the plugin; opting in by fixture alone gates
those tests and leaves pytest-benchmark's storage where it was."""

import pytest

UNRELATED = """
def test_ok():
    pass


def test_speed(benchmark):
    benchmark(sum, range(100))
"""


def _tree(root):
    """Every directory and file under `root`, with pytest-benchmark's run files reduced to their
    directory (their names carry a counter, a commit and a timestamp)."""
    return sorted(str(p.parent.relative_to(root)) + "/<run>.json" if p.parent.parent.name == ".benchmarks"
                  else str(p.relative_to(root)) for p in root.rglob("*") if "__pycache__" not in p.parts)


@pytest.mark.parametrize("args", [(), ("--benchmark-autosave",), ("--benchmark-save=mine",)])
def test_an_unrelated_project_sees_no_change(pytester, monkeypatch, args):
    """The same project run twice, once with the gate plugin switched off: the same outcome and the same
    files (plain pytest creates no baselines/, --benchmark-autosave saves to .benchmarks/ as usual)."""
    runs = {}
    for name, disable in (("without", ("-p", "no:pcct_gate")), ("with_gate", ())):
        directory = pytester.mkdir(name)
        (directory / "test_unrelated.py").write_text(UNRELATED)
        monkeypatch.chdir(directory)
        runs[name] = pytester.runpytest(str(directory), "--rootdir", str(directory), *disable,
                                        "-p", "no:cacheprovider", "--benchmark-max-time=0.01", *args)
    assert runs["without"].ret == runs["with_gate"].ret == pytest.ExitCode.OK
    runs["with_gate"].assert_outcomes(passed=2)
    without, with_gate = pytester.path / "without", pytester.path / "with_gate"
    assert _tree(without) == _tree(with_gate)
    assert not (with_gate / "baselines").exists()
    assert "pcct regression gate" not in runs["with_gate"].stdout.str()
    assert bool(list((with_gate / ".benchmarks").glob("*/*.json"))) == bool(args)


def test_a_skipped_directory_in_a_project_that_never_used_the_gate_changes_nothing(pytester):
    """A conftest skip (an extension not built) in a project that never opted in ran the gate's check of
    skipped modules, which read pytest-benchmark's own storage as baselines and failed on its autosaves."""
    pytester.makepyfile(test_unrelated=UNRELATED)
    pytester.makepyfile(**{"gpu/conftest": "import pytest\n\npytest.importorskip('pcct_no_such_module')\n",
                           "gpu/test_gpu": "def test_gpu():\n    pass\n"})
    for _ in range(2):  # two saved runs: the gate's baselines would refuse such a directory
        result = pytester.runpytest("-p", "no:cacheprovider", "--benchmark-max-time=0.01",
                                    "--benchmark-autosave")
        assert result.ret == pytest.ExitCode.OK
        result.assert_outcomes(passed=2, skipped=1)
    assert "pcct" not in result.stdout.str()


@pytest.mark.filterwarnings("ignore:Not saving anything")  # the run with --benchmark-disable saves nothing
def test_requesting_the_fixture_opts_in_without_moving_benchmark_storage(pytester):
    pytester.makepyfile(test_gated="""
        import pytest

        @pytest.mark.pcct_calibration
        def test_calibration(benchmark):
            benchmark(sum, range(10))

        def test_work(benchmark, pcct_gate):
            benchmark(sum, range(10))
            pcct_gate.record({"steps": 3}, engine="e", dataset_digest="d", config_digest="c", schema="s",
                             schema_version=1)
    """)
    result = pytester.runpytest("-p", "no:cacheprovider", "--benchmark-disable")
    result.assert_outcomes(errors=2)  # opted in, mode 'all': fails closed without timing
    result.stdout.fnmatch_lines(["pytest-pcct gate: benchmarks are disabled (--benchmark-disable)*"])
    quick = ("-p", "no:cacheprovider", "--benchmark-max-time=0.01")
    pytester.runpytest(*quick, "--pcct-update-baselines").assert_outcomes(passed=2)
    assert len(list((pytester.path / "baselines" / "counters").glob("*.json"))) == 1
    assert not (pytester.path / "baselines" / "benchmarks").exists()
    assert list((pytester.path / ".benchmarks").glob("*/0001_pcct.json"))  # pytest-benchmark's own storage
    result = pytester.runpytest(*quick, "--benchmark-compare")  # sub-microsecond: under the noise floor
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(["*test_gated.py::test_work*1 equal*PASSED"])
    result = pytester.runpytest(*quick, "--benchmark-compare", "--benchmark-autosave")
    assert result.ret == pytest.ExitCode.USAGE_ERROR  # the run would become the next run's baseline
    result.stderr.fnmatch_lines(["ERROR: pytest-pcct gate: --benchmark-save/--benchmark-autosave would store "
                                 "this run, regressions included, where the time gate takes its baselines "
                                 "from*"])
    assert len(list((pytester.path / ".benchmarks").glob("*/*.json"))) == 1  # nothing saved


def test_a_bad_ini_value_is_a_usage_error(pytester):
    pytester.makeini("[pytest]\npcct_gate = yes\n")
    pytester.makepyfile("def test_ok():\n    pass\n")
    result = pytester.runpytest()
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        ["*pytest-pcct gate: ini pcct_gate must be all, counters, instructions or off, got 'yes'"])
