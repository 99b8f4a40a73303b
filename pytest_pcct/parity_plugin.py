"""pytest11 entry point ``pcct`` of the parity plugin: options, hooks and fixtures only (the logic lives in
:mod:`pytest_pcct.parity`; covertreex's engines come from their own plugin, ``pcct_covertreex``).

Nothing heavy is imported unless engines are selected (``--pcct-engines`` or ini ``pcct_engines``), so the
plugin costs nothing in a run that does not use it.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from pytest_pcct.output_paths import check_report_file

pytest.register_assert_rewrite("pytest_pcct.parity.assertions")

_SESSION = pytest.StashKey[object]()
_SKIPS = pytest.StashKey[object]()
_MATRIX_KEY = "pcct_parity_matrix"
_REPORT_ERROR = pytest.StashKey[str]()


def pytest_addhooks(pluginmanager):
    from pytest_pcct.parity import hooks

    pluginmanager.add_hookspecs(hooks)


def pytest_addoption(parser):
    group = parser.getgroup("pcct", "engine parity testing (pytest-pcct)")
    group.addoption(
        "--pcct-engines", dest="pcct_engines", default=None, metavar="A,B[,...]",
        help="engines to test, comma-separated, reference first (e.g. gold,rust); overrides ini pcct_engines",
    )
    group.addoption(
        "--pcct-seed", dest="pcct_seed", type=int, default=None, metavar="N",
        help="base seed of pcct datasets (default: ini pcct_seed, else 0)",
    )
    group.addoption(
        "--pcct-report", dest="pcct_report", default=None, metavar="FILE.json",
        help="write the parity matrix (engine pair x dataset x k) as JSON",
    )
    group.addoption(
        "--pcct-oracle", dest="pcct_oracle", default=None, metavar="NAME",
        help="registered engine to use as the oracle (default: the one registered with oracle=True)",
    )
    parser.addini(
        "pcct_engines", "engines to test when --pcct-engines is not given (reference first)", default=""
    )
    parser.addini("pcct_oracle", "registered engine to use as the oracle", default="")
    parser.addini("pcct_seed", "base seed of pcct datasets", default="0")


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config):
    config.addinivalue_line(
        "markers",
        "pcct_parity(mode='exact', rtol=1e-9, atol=1e-12, telemetry=True, repeat=False): how "
        "pcct_engine_pair.check compares answers in this test (pytest-pcct)",
    )
    config.addinivalue_line(
        "markers",
        "pcct_dataset(kind='gaussian', **params): default arguments of the pcct_dataset factory in this "
        "test (pytest-pcct)",
    )
    profile = config.getoption("hypothesis_profile", default=None)
    if profile and profile.startswith("pcct"):
        from pytest_pcct.parity.profiles import register_profiles

        register_profiles()
    from pytest_pcct.parity import selection

    check_report_file(config.getoption("pcct_report"), "--pcct-report", config)
    chosen = selection.read(config)
    session = None
    if chosen.engines:
        from pytest_pcct.parity.session import PcctSession

        session = PcctSession(chosen, config.hook.pytest_pcct_register_engines)
        config.stash[_SKIPS] = _SkippedPairTests(chosen.pairs)
        config.pluginmanager.register(config.stash[_SKIPS], "pcct-skipped-pair-tests")
    elif config.getoption("pcct_report") is not None:
        raise pytest.UsageError(
            "pytest-pcct: --pcct-report needs engines (--pcct-engines or ini pcct_engines)"
        )
    config.stash[_SESSION] = session


def _session(config):
    session = config.stash.get(_SESSION, None)
    if session is None:
        pytest.fail(
            "pytest-pcct: no engines selected; pass --pcct-engines=REFERENCE,OTHER,... or set the ini "
            "option pcct_engines", pytrace=False,
        )
    return session


def pytest_report_header(config):
    session = config.stash.get(_SESSION, None)
    if session is None:
        return None
    chosen = session.selection
    pairs = ", ".join(f"{a}-{b}" for a, b in chosen.pairs) or "none (one engine)"
    return [
        f"pcct: engines {','.join(chosen.engines)} (reference {chosen.engines[0]}, from {chosen.source}); "
        f"pairs {pairs}; seed {chosen.seed}",
        f"pcct: registered engines {', '.join(session.registry.names())}; oracle {_oracle_line(session)}",
    ]


def _oracle_line(session) -> str:
    """The oracle of pcct_oracle, and whether the run chose it (a wrong engine chosen as the oracle checks
    itself: the header is where a reader sees that)."""
    oracle = session.registry.oracle()
    if oracle is None:
        return "none registered"
    chosen = " (chosen with --pcct-oracle / ini pcct_oracle)" if session.selection.oracle is not None else ""
    itself = ("; it is also under test, so its own k-safety tests check it against itself"
              if oracle.name in session.selection.engines else "")
    return f"{oracle.name}{chosen}{itself}"


NO_PAIR = "pcct_engine_pair needs two engines"
"""The reason a pair test is skipped when one engine is selected."""


def pytest_generate_tests(metafunc):
    names = set(metafunc.fixturenames)
    if not names & {"pcct_engine", "pcct_engine_pair"}:
        return
    session = metafunc.config.stash.get(_SESSION, None)
    if session is None:  # the fixtures then fail at setup, naming the missing option
        for name in names & {"pcct_engine", "pcct_engine_pair"}:
            metafunc.parametrize(name, [pytest.param(None, id="no-engines")], indirect=True, scope="session")
        return
    chosen = session.selection
    if "pcct_engine" in names:
        metafunc.parametrize("pcct_engine", chosen.engines, indirect=True, scope="session")
    if "pcct_engine_pair" in names:
        pairs = [pytest.param(p, id=f"{p[0]}-{p[1]}") for p in chosen.pairs] or [pytest.param(
            None, id="no-pair", marks=pytest.mark.skip(
                reason=f"{NO_PAIR}; {chosen.source} selects only {chosen.engines[0]}"
            ),
        )]
        metafunc.parametrize("pcct_engine_pair", pairs, indirect=True, scope="session")


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item):
    session = item.config.stash.get(_SESSION, None)
    if session is not None:
        from covertreex.errors import InvalidInputError
        from pytest_pcct.parity.session import ParitySettings

        try:
            settings = ParitySettings.from_markers(item.iter_markers("pcct_parity"))
        except InvalidInputError as exc:
            problem = str(exc)
        else:
            session.begin_test(settings)
            return
        pytest.fail(f"bad pcct_parity marker: {problem}", pytrace=False)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item):
    """A question an engine was not registered for is a skip naming why, never a failure of the engine."""
    try:
        return (yield)
    except Exception as exc:
        engines = sys.modules.get("pytest_pcct.parity.engines")
        if engines is not None and isinstance(exc, engines.UnsupportedProblemError):
            pytest.skip(str(exc))
        raise


@pytest.hookimpl(trylast=True)
def pytest_runtest_teardown(item, nextitem):
    session = item.config.stash.get(_SESSION, None)
    if session is not None:
        session.end_test()


def pytest_sessionfinish(session, exitstatus):
    config = session.config
    state = config.stash.get(_SESSION, None)
    if state is None:
        return
    if hasattr(config, "workerinput"):
        config.workeroutput[_MATRIX_KEY] = state.matrix.to_json()
        return
    target = config.getoption("pcct_report")
    if target:
        chosen = state.selection
        path = Path(config.invocation_params.dir, target)
        skipped_all = {"benchmark_only": True} if config.getoption("benchmark_only", False) else {}
        try:
            state.matrix.write(path, engines=list(chosen.engines), seed=chosen.seed,
                               skipped_pair_tests=len(_skipped_pair_tests(config)), **skipped_all)
        except OSError as exc:  # a full disk, a read-only file: one line, not a traceback after the run
            config.stash[_REPORT_ERROR] = f"pytest-pcct: --pcct-report could not be written: {exc}"
            if session.exitstatus in (pytest.ExitCode.OK, pytest.ExitCode.NO_TESTS_COLLECTED):
                session.exitstatus = pytest.ExitCode.TESTS_FAILED  # an interrupted run keeps its status


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node, error):
    state = node.config.stash.get(_SESSION, None)
    payload = getattr(node, "workeroutput", {}).get(_MATRIX_KEY)
    if state is not None and payload is not None:
        state.matrix.merge_json(payload)


class _SkippedPairTests:
    """The reports of pcct_engine_pair's tests that were skipped (one engine selected, or engines whose
    Capabilities leave out every problem a test asks), as they arrive (on the controller of an xdist run
    too), kept here: read from the terminal reporter's, a run under ``-p no:terminal`` counted none."""

    def __init__(self, pairs):
        self.pairs = pairs
        self.reports: dict = {}

    def pytest_runtest_logreport(self, report) -> None:
        if report.skipped and _is_pair_test(report.nodeid, self.pairs):
            self.reports.setdefault(report.nodeid, report)


def _skipped_pair_tests(config) -> list:
    """The skipped pair tests' reports, the first skipped first (a run of them alone compared nothing)."""
    return list(config.stash[_SKIPS].reports.values())


def _reason(report) -> str:
    """Why the test of `report` was skipped."""
    reason = str(report.longrepr[-1] if isinstance(report.longrepr, tuple) else report.longrepr)
    return reason.removeprefix("Skipped: ")


def _is_pair_test(nodeid: str, pairs) -> bool:
    """Whether the test `nodeid` is one of pcct_engine_pair's, by its parameter id (the controller of an
    xdist run has the reports, not the items)."""
    params = f"-{nodeid.partition('[')[2].removesuffix(']')}-"
    return any(f"-{pair}-" in params for pair in [f"{a}-{b}" for a, b in pairs] or ["no-pair"])


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    state = config.stash.get(_SESSION, None)
    if state is None or hasattr(config, "workerinput"):
        return
    _matrix_summary(terminalreporter, config, state)
    if _REPORT_ERROR in config.stash:
        terminalreporter.line(config.stash[_REPORT_ERROR], red=True, bold=True)


def _matrix_summary(terminalreporter, config, state) -> None:
    """The matrix section, or why there is none."""
    if not state.matrix.cells and config.getoption("benchmark_only", False):
        # pytest-benchmark skips every other test: a green run here checked no answer at all
        terminalreporter.section("pcct parity matrix")
        terminalreporter.line("no engine answer was checked: --benchmark-only skips every test that is not "
                              "a benchmark, the parity tests included; run without it to check answers",
                              yellow=True, bold=True)
        return
    if not state.matrix.cells:
        pairs = state.selection.pairs
        skipped = _skipped_pair_tests(config)
        ran = any(_is_pair_test(report.nodeid, pairs) for outcome in ("passed", "failed", "error")
                  for report in terminalreporter.stats.get(outcome, ()))  # compared by hand, perhaps
        if skipped and not ran:  # a green run that compared nothing: one engine selected (a typo, an ini
            # default), or engines that refuse every problem the pair tests draw
            reason = _reason(skipped[0])
            advice = "; select two, e.g. --pcct-engines=gold,rust" if NO_PAIR in reason else ""
            terminalreporter.section("pcct parity matrix")
            terminalreporter.line(f"no engine answer was compared: {len(skipped)} pair tests were skipped "
                                  f"(the first: {reason}{advice})", yellow=True, bold=True)
        return
    terminalreporter.section("pcct parity matrix")
    for line in state.matrix.lines():
        terminalreporter.line(line)
    skipped = _skipped_pair_tests(config)
    if skipped:  # capabilities may leave out what an engine gets wrong: said here, not only under -rs
        terminalreporter.line(f"{len(skipped)} pair tests were skipped and compared nothing (the first: "
                              f"{_reason(skipped[0])})", yellow=True)
    if config.getoption("pcct_report") and _REPORT_ERROR not in config.stash:
        terminalreporter.line(f"parity report written to {config.getoption('pcct_report')}")


@pytest.fixture(scope="session")
def pcct_seed(request) -> int:
    """The run's base seed for pcct datasets (--pcct-seed or ini pcct_seed)."""
    return _session(request.config).selection.seed


@pytest.fixture(scope="session")
def pcct_engine(request):
    """Each selected engine in turn, as a handle: pcct_engine.knn(problem, k) -> Answer."""
    return _session(request.config).engine(request.param)


@pytest.fixture(scope="session")
def pcct_engine_pair(request):
    """Each (reference, candidate) pair of selected engines: .check(problem, k) asserts and records parity."""
    return _session(request.config).pair(request.param)


@pytest.fixture(scope="session")
def pcct_oracle(request):
    """The registered oracle engine (exact by construction), selected or not."""
    return _session(request.config).oracle()


@pytest.fixture
def pcct_dataset(request):
    """Factory of cached seeded problems: pcct_dataset(kind, n=, d=, seed=, metric=, ...) -> Problem."""
    state = _session(request.config)
    defaults = {"seed": state.selection.seed}
    for marker in reversed(list(request.node.iter_markers("pcct_dataset"))):  # closest last: it wins
        defaults.update(dict(zip(("kind",), marker.args, strict=False)), **marker.kwargs)

    def make(*kind, **params):
        if len(kind) > 1:
            from covertreex.errors import InputTypeError

            raise InputTypeError(f"pcct_dataset takes at most one positional argument (kind), got {kind!r}")
        return state.problems.get(**{**defaults, **dict(zip(("kind",), kind, strict=False)), **params})

    return make


@pytest.fixture
def pcct_telemetry(request):
    """This test's telemetry records (schema-checked as engines return them); .add() checks more."""
    return _session(request.config).telemetry_log()
