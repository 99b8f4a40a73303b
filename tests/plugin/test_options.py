"""Engine selection: --pcct-engines, ini pcct_engines, seeds, parametrization, usage errors, markers."""

import pytest

import covertreex
from covertreex.engines import TREE_ENGINES
from pytest_pcct.covertreex_engines import BOX_SCREEN

REGISTERED = sorted([*covertreex.engine_names(), *(f"{name}-dense" for name in TREE_ENGINES), BOX_SCREEN])
OURS = ", ".join(REGISTERED)  # each tree engine's dense path as <name>-dense, and rust's box screen
TEST_ENGINES = ["bigendian", "dropsbehindrecord", "dropsnearest", "exits", "farthest", "flipsflag", "float32",
                "gpu", "groupskip", "lastplus", "missingrow", "objectdist", "offbyone", "outside", "raises",
                "random", "recordskip", "refuses", "rejects", "roundsup", "roundsupfactory", "sharedlast",
                "sharedright", "skips", "skipsonread", "swap", "sysexit", "tiecoin", "tieflip", "ulp",
                "unittestskip", "unsorted", "writes", "xfails"]  # registered by the wrong_engines fixture
WITH_TEST_ENGINES = ", ".join(sorted([*REGISTERED, *TEST_ENGINES]))

ENGINE_TESTS = """
def test_engine(pcct_engine):
    assert pcct_engine.name in ("gold", "brute", "rust")

def test_pair(pcct_engine_pair):
    assert pcct_engine_pair.reference.name != pcct_engine_pair.candidate.name
    print("PAIR", pcct_engine_pair.id)

def test_seed(pcct_seed):
    print("SEED", pcct_seed)
"""


def test_engines_option_parametrizes_engines_and_pairs(pytester):
    pytester.makepyfile(ENGINE_TESTS)
    result = pytester.runpytest("--pcct-engines=gold,brute", "-v")
    result.assert_outcomes(passed=4)
    result.stdout.fnmatch_lines([
        "pcct: engines gold,brute (reference gold, from --pcct-engines); pairs gold-brute; seed 0",
        f"pcct: registered engines {OURS}; oracle brute; it is also under test, so its own k-safety tests "
        "check it against itself",
        "*test_engine[[]gold[]] PASSED*",
        "*test_engine[[]brute[]] PASSED*",
        "*test_pair[[]gold-brute[]] PASSED*",
    ])


def test_three_engines_pair_the_reference_with_each_other(pytester):
    pytester.makepyfile(ENGINE_TESTS)
    result = pytester.runpytest("--pcct-engines=gold,rust,brute", "-v")
    result.assert_outcomes(passed=6)
    result.stdout.fnmatch_lines(["*test_pair[[]gold-rust[]] PASSED*", "*test_pair[[]gold-brute[]] PASSED*"])


def test_ini_selects_engines_and_seed_and_the_option_wins(pytester):
    pytester.makeini("[pytest]\npcct_engines = brute, gold\npcct_seed = 7\n")
    pytester.makepyfile(ENGINE_TESTS)
    result = pytester.runpytest("-s")
    result.assert_outcomes(passed=4)
    result.stdout.fnmatch_lines([
        "pcct: engines brute,gold (reference brute, from ini option pcct_engines); pairs brute-gold; seed 7",
        "*PAIR brute-gold*",
        "*SEED 7*",
    ])
    result = pytester.runpytest("-s", "--pcct-engines=gold,brute", "--pcct-seed=3")
    result.assert_outcomes(passed=4)
    result.stdout.fnmatch_lines(
        ["*from --pcct-engines); pairs gold-brute; seed 3", "*PAIR gold-brute*", "*SEED 3*"]
    )


@pytest.mark.parametrize(
    ("engines", "message"),
    [
        ("gold,nope", "ERROR: pytest-pcct: unknown engine 'nope' requested by --pcct-engines; "
                      f"registered engines: {WITH_TEST_ENGINES}"),
        ("gold,gpu", "ERROR: pytest-pcct: engine 'gpu' requested by --pcct-engines is not available "
                     "here: it needs a GPU"),
        ("gold,,brute", "ERROR: pytest-pcct: empty engine name in --pcct-engines='gold,,brute'"),
        ("gold,brute,gold", "ERROR: pytest-pcct: engine 'gold' is listed twice in --pcct-engines=*"),
    ],
)
def test_bad_engine_selection_is_a_usage_error_naming_it(wrong_engines, engines, message):
    wrong_engines.makepyfile(ENGINE_TESTS)
    result = wrong_engines.runpytest(f"--pcct-engines={engines}")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([message])


def test_unavailable_engine_from_ini_is_a_usage_error(wrong_engines):
    wrong_engines.makeini("[pytest]\npcct_engines = gpu\n")
    wrong_engines.makepyfile(ENGINE_TESTS)
    result = wrong_engines.runpytest()
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*engine 'gpu' requested by ini option pcct_engines is not available here*"])


def test_no_engines_selected_fails_tests_that_need_them_and_leaves_others_alone(pytester):
    pytester.makepyfile(ENGINE_TESTS + "\ndef test_plain():\n    pass\n")
    result = pytester.runpytest()
    result.assert_outcomes(passed=1, errors=3)
    result.stdout.fnmatch_lines([
        "*ERROR at setup of test_engine[[]no-engines[]]*",
        "pytest-pcct: no engines selected; pass --pcct-engines=REFERENCE,OTHER,... or set the ini option "
        "pcct_engines",
    ])
    assert "pcct:" not in result.stdout.str().split("collected")[0]


def test_one_engine_skips_pair_tests_visibly(pytester):
    pytester.makepyfile(ENGINE_TESTS)
    result = pytester.runpytest("--pcct-engines=gold", "-rs")
    result.assert_outcomes(passed=2, skipped=1)
    result.stdout.fnmatch_lines(["*pcct_engine_pair needs two engines; --pcct-engines selects only gold*"])
    result.stdout.fnmatch_lines([  # and the summary says the green run compared nothing (an outside trial)
        "*= pcct parity matrix =*",
        "no engine answer was compared: 1 pair tests were skipped (the first: pcct_engine_pair needs two "
        "engines; --pcct-engines selects only gold; select two, e.g. --pcct-engines=gold,rust)",
    ])


def test_report_without_engines_is_a_usage_error(pytester):
    pytester.makepyfile("def test_plain():\n    pass\n")
    result = pytester.runpytest("--pcct-report=out.json")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["ERROR: pytest-pcct: --pcct-report needs engines*"])


def test_markers_are_registered_for_strict_markers(pytester):
    pytester.makepyfile("""
        import pytest

        @pytest.mark.pcct_parity(mode="tolerance")
        @pytest.mark.pcct_dataset("lattice", n=20, d=2)
        def test_marked():
            pass
    """)
    result = pytester.runpytest("--strict-markers")
    result.assert_outcomes(passed=1)
    result = pytester.runpytest("--markers")
    result.stdout.fnmatch_lines([
        "@pytest.mark.pcct_parity(mode='exact', rtol=1e-9, atol=1e-12, telemetry=True, repeat=False): *",
        "@pytest.mark.pcct_dataset(kind='gaussian', **params): *",
    ])


def test_help_lists_the_options(pytester):
    result = pytester.runpytest("--help")
    result.stdout.fnmatch_lines([
        "engine parity testing (pytest-pcct):",
        "*--pcct-engines=A,B*",
        "*--pcct-seed=N*",
        "*--pcct-report=FILE.json*",
        "*pcct_engines (string):*",
    ])


def test_a_bad_parity_marker_errors_naming_the_argument(pytester):
    pytester.makepyfile("""
        import pytest

        @pytest.mark.pcct_parity(mode="fuzzy")
        def test_bad_mode(pcct_engine_pair):
            pass

        @pytest.mark.pcct_parity(tolerance=1e-3)
        def test_bad_name(pcct_engine_pair):
            pass
    """)
    result = pytester.runpytest("--pcct-engines=gold,brute")
    result.assert_outcomes(errors=2)
    result.stdout.fnmatch_lines([
        "*bad pcct_parity marker: unknown mode 'fuzzy'; known modes: exact, tolerance",
        "*bad pcct_parity marker: pcct_parity takes keyword arguments mode, rtol, atol, telemetry, repeat "
        "only; got [[]'tolerance'[]]",
    ])


@pytest.mark.parametrize(("args", "message"), [
    (["--pcct-report="], "ERROR: pytest-pcct: --pcct-report is empty; name a file such as report.json"),
    (["--pcct-report=missing/parity.json"],
     "ERROR: pytest-pcct: --pcct-report=missing/parity.json: the directory */missing does not exist"),
    (["--pcct-report=."], "ERROR: pytest-pcct: --pcct-report=. is a directory; name a file inside it"),
    (["--pcct-gate-report=afile/gate.json"],
     "ERROR: pytest-pcct: --pcct-gate-report=afile/gate.json: the directory */afile does not exist"),
    (["--pcct-baselines=afile"], "ERROR: pytest-pcct: --pcct-baselines / ini pcct_baselines names */afile, "
                                 "which is a file; name a directory"),
    (["--pcct-baselines=afile/sub", "--pcct-update-baselines"],  # a traceback at the first write
     "ERROR: pytest-pcct: --pcct-baselines / ini pcct_baselines names */afile/sub, which lies under "
     "*/afile, a file; name a directory"),
    (["--pcct-baselines=dangling"], "ERROR: pytest-pcct: --pcct-baselines / ini pcct_baselines names "
                                    "*/dangling, a symbolic link to nothing; name a directory"),
    (["--pcct-report=test_outputs_seeds_and_the_oracle_are_checked_before_any_test.py"],  # the tests:
     # replaced by the report, and the run said "1 passed" (an outside trial)
     "ERROR: pytest-pcct: --pcct-report=test_*.py names a file of the test run itself, which the report "
     "would replace; name a file such as report.json"),
    (["--pcct-gate-report=pyproject.toml"], "ERROR: pytest-pcct: --pcct-gate-report=pyproject.toml names a "
                                            "file of the test run itself*"),
    (["--pcct-gate-report=tests.json"], "ERROR: pytest-pcct: --pcct-gate-report=tests.json names a file of "
                                        "the test run itself*"),  # a link to the test module
    (["-c", "custom.cfg", "--pcct-report=custom.cfg"], "ERROR: pytest-pcct: --pcct-report=custom.cfg names a "
                                                       "file of the test run itself*"),  # the ini file
    (["--pcct-seed=-1"],
     "ERROR: pytest-pcct: the pcct seed (--pcct-seed or ini pcct_seed) must be >= 0, got -1"),
    (["--pcct-oracle=nope"], "ERROR: pytest-pcct: --pcct-oracle / ini pcct_oracle: unknown engine 'nope'*"),
    (["--pcct-oracle="], "ERROR: pytest-pcct: --pcct-oracle needs an engine name, got an empty value"),
])
def test_outputs_seeds_and_the_oracle_are_checked_before_any_test(pytester, args, message):
    """Each of these failed only at the end of the run with a traceback, silently wrote nothing, failed
    inside every test (a seed numpy refuses) or did not name the option (an outside user's trial)."""
    pytester.makepyfile(ENGINE_TESTS)
    (pytester.path / "afile").write_text("")
    (pytester.path / "custom.cfg").write_text("[tool:pytest]\n")
    (pytester.path / "tests.json").symlink_to(
        "test_outputs_seeds_and_the_oracle_are_checked_before_any_test.py")
    (pytester.path / "dangling").symlink_to(pytester.path / "nowhere")
    result = pytester.runpytest("--pcct-engines=gold,brute", *args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([message])
