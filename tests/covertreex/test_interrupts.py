"""Ctrl-C during a compiled Numba call is taken when the call returns (covertreex.interrupts); a long
rust call takes it while it runs.

The signal is raised from inside the compiled code itself (libc's raise through ctypes), so it is always
pending while Numba boxes the returned arrays; for rust, it is pending before the call, whose first poll
comes before its work: no timing is involved.
"""

from __future__ import annotations

import ast
import ctypes
import signal
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from numba import njit

import covertreex as ct
from covertreex import interrupts
from covertreex.maximin import STEPS_PER_CALL, maximin_order
from covertreex.vecchia import FARTHEST_MAX_WIDTH

_raise = ctypes.CDLL(None)["raise"]
_raise.argtypes = [ctypes.c_int]
_raise.restype = ctypes.c_int
SIGINT = int(signal.SIGINT)


@pytest.fixture(autouse=True)
def _default_sigint_handler():
    """These tests raise SIGINT and expect Python's default handler, which a suite started in the
    background inherits as SIG_IGN (a shell ignores SIGINT in its asynchronous jobs, as nohup does): 8 of
    them failed so."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


@njit
def _interrupted_call(n):
    """SIGINT to this process from inside compiled code, then two new arrays to box on return (unguarded,
    the tuple comes back holding NULL: measured with numba 0.68)."""
    _raise(SIGINT)
    return np.arange(n), np.ones(n, np.int8)


@njit
def _interrupted_pair(n):
    _raise(SIGINT)
    return np.arange(n), 1.0


def test_without_the_guard_numba_fails_on_return():
    """Why the module exists: the interrupt lands in Numba's boxing, which cannot take it."""
    with pytest.raises(SystemError, match="returned a result with an exception set"):
        _interrupted_pair(3)


def test_the_interrupt_is_raised_once_the_call_has_returned():
    returned = []
    with pytest.raises(KeyboardInterrupt), interrupts.deferred():
        returned.append(_interrupted_call(3))
    assert np.array_equal(returned[0][0], np.arange(3))
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_check_delivers_between_calls_and_the_installed_handler_is_the_one_run():
    heard = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: heard.append(signum))
    try:
        with interrupts.deferred():
            _interrupted_call(2)
            assert heard == []
            interrupts.check()
            assert heard == [SIGINT]
            _interrupted_call(2)
        assert heard == [SIGINT, SIGINT]
    finally:
        signal.signal(signal.SIGINT, previous)


def test_nested_blocks_hold_it_to_the_outermost_and_an_ignored_sigint_stays_ignored():
    with pytest.raises(KeyboardInterrupt), interrupts.deferred():
        with interrupts.deferred():
            _interrupted_call(2)
        assert signal.getsignal(signal.SIGINT) is not signal.default_int_handler
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        with interrupts.deferred():
            assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
            _interrupted_call(2)  # no Python handler runs, so nothing to defer
    finally:
        signal.signal(signal.SIGINT, previous)


def test_a_second_sigint_while_the_handler_is_restored_leaves_no_guard_behind(monkeypatch):
    """A Ctrl-C pressed again just as the block ends raises from inside its exit; the module's state must
    already be clean, or every later block would hold nothing (and deliver a stale record)."""
    restore = interrupts._signal.signal

    def restore_then_interrupt(signum, handler):
        previous = restore(signum, handler)
        if handler is signal.default_int_handler:
            signal.raise_signal(signal.SIGINT)
        return previous

    monkeypatch.setattr(interrupts._signal, "signal", restore_then_interrupt)
    with pytest.raises(KeyboardInterrupt), interrupts.deferred():
        _interrupted_call(2)
    monkeypatch.undo()
    with interrupts.deferred():
        assert signal.getsignal(signal.SIGINT) is not signal.default_int_handler  # held again
        interrupts.check()  # nothing stale to deliver


def test_a_handler_that_installs_another_is_followed_and_its_choice_kept():
    """First Ctrl-C: ask to stop and make the next one quit (a common pattern). The hold must stay on for
    the Numba calls after it, and the new handler must be what the block leaves installed."""
    asked = []

    def first_asks_to_stop(signum, frame):
        asked.append(signum)
        signal.signal(signal.SIGINT, signal.default_int_handler)

    previous = signal.signal(signal.SIGINT, first_asks_to_stop)
    try:
        with pytest.raises(KeyboardInterrupt), interrupts.deferred():
            _interrupted_call(2)
            interrupts.check()
            assert asked == [SIGINT]
            _interrupted_pair(2)  # unguarded, this is the SystemError of the test above
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    finally:
        signal.signal(signal.SIGINT, previous)


def test_waiting_on_a_pool_stops_at_a_recorded_sigint_and_cancels_what_has_not_started():
    release = threading.Event()
    with ThreadPoolExecutor(max_workers=1) as pool:
        futures = [pool.submit(release.wait, 30), pool.submit(int, 1), pool.submit(int, 2)]
        with pytest.raises(KeyboardInterrupt), interrupts.deferred():
            signal.raise_signal(signal.SIGINT)  # recorded at once: the recorder is installed
            interrupts.results(pool, futures)
        release.set()
    assert futures[0].result() is True and futures[1].cancelled() and futures[2].cancelled()


def test_the_maximin_loop_stops_after_the_chunk_that_was_interrupted():
    X = np.random.default_rng(0).normal(size=(3 * STEPS_PER_CALL, 2))
    data = ct.CoverTree(engine="gold", metric="euclidean").fit(X).space.data
    reached = []
    with pytest.raises(KeyboardInterrupt), interrupts.deferred():
        signal.raise_signal(signal.SIGINT)
        maximin_order(data, 0, progress=reached.append)
    assert reached == [STEPS_PER_CALL]


def test_gold_builds_and_tree_queries_stop_after_the_compiled_call_that_was_interrupted(monkeypatch):
    from covertreex.engines import gold
    from covertreex.engines.gold import batch, build

    X = np.random.default_rng(3).normal(size=(3 * build.INSERTIONS_PER_CALL, 2))
    built = ct.CoverTree(engine="gold", metric="euclidean", path="tree").fit(X)
    built.query(k=2, indices=[0])
    runs = {
        (build, "insert_range"): lambda: ct.CoverTree(engine="gold", metric="euclidean", path="tree",
                                                      build="sequential").fit(X).query(k=2, indices=[0]),
        (batch, "_rounds"): lambda: ct.CoverTree(engine="gold", metric="euclidean", path="tree",
                                                 build="batch").fit(X).query(k=2, indices=[0]),
        (gold, "query_batch"): lambda: built.query(k=2, indices=np.arange(len(X))),
    }
    for (module, name), run in runs.items():
        compiled, calls = getattr(module, name), []

        def counted(*args, compiled=compiled, calls=calls, name=name):
            calls.append(name)
            return compiled(*args)

        monkeypatch.setattr(module, name, counted)
        with pytest.raises(KeyboardInterrupt), interrupts.deferred():
            signal.raise_signal(signal.SIGINT)
            run()
        assert calls == [name]


needs_rust = pytest.mark.skipif(not ct.engine_available("rust"), reason="the rust extension is not built")
N_LONG = 2100
"""Points of the rust calls below: every call on all of them is long enough to be interruptible."""


class Stopped(Exception):
    pass


def _stopping_check():
    raise Stopped


@needs_rust
@pytest.mark.parametrize("call", ["sequential build", "batch build", "tree query", "dense query",
                                  "maximin pass", "maximin by the boxes"])
def test_every_long_rust_call_raises_what_its_interrupt_check_raises(call, monkeypatch):
    """The extension polls covertreex.interrupts.check while it works and ends with its exception."""
    from covertreex.engines import rust

    assert N_LONG**2 >= rust.INTERRUPTIBLE_PAIRS
    X = np.random.default_rng(1).normal(size=(N_LONG, 3))
    built = ct.CoverTree(engine="rust", metric="euclidean", path="tree").fit(X)
    built.query(k=2, indices=[0])  # builds the tree before the check is replaced
    everything = np.arange(N_LONG)
    wide = np.hstack([X, np.repeat(X[:, :1], FARTHEST_MAX_WIDTH - 2, axis=1)])  # beyond the boxes' width
    calls = {
        "sequential build": lambda: ct.CoverTree(engine="rust", metric="euclidean", path="tree",
                                                 build="sequential").fit(X).query(k=2, indices=[0]),
        "batch build": lambda: ct.CoverTree(engine="rust", metric="euclidean", path="tree",
                                            build="batch").fit(X).query(k=2, indices=[0]),
        "tree query": lambda: built.query(k=5, indices=everything),
        "dense query": lambda: ct.CoverTree(engine="rust", metric="euclidean", path="dense").fit(X).query(
            k=5, indices=everything),
        "maximin pass": lambda: ct.vecchia_neighbors(wide, 5, metric="euclidean", ordering="maximin",
                                                     engine="rust"),
        "maximin by the boxes": lambda: rust.maximin_order(X, 0),
    }
    monkeypatch.setattr(interrupts, "check", _stopping_check)
    with pytest.raises(Stopped):
        calls[call]()


def _reports_until_stopped(monkeypatch, run) -> list[int]:
    """The progress reports `run(progress)` makes before it ends with the interrupt check's exception: the
    first report waits until the check has raised, so a call that stops at its next check reports once (no
    timing: each side waits for the other)."""
    raised, reports = threading.Event(), []

    def check():
        if reports:  # the first poll comes before any report; the next ones after the first
            raised.set()
            raise Stopped

    def progress(n, *answered):  # the fused pass also hears the rows answered
        reports.append(n)
        assert raised.wait(60)

    monkeypatch.setattr(interrupts, "check", check)
    with pytest.raises(Stopped):
        run(progress)
    return reports


@needs_rust
def test_a_rust_maximin_pass_ends_at_the_round_after_its_interrupt_check_raised(monkeypatch):
    """The pass checks between rounds: it must stop at its next round, not run to the end."""
    from covertreex.engines import rust

    X = np.random.default_rng(4).normal(size=(N_LONG, 3))
    data = ct.CoverTree(engine="rust", metric="euclidean").fit(X).space.data
    rounds = _reports_until_stopped(
        monkeypatch, lambda progress: rust.maximin_with_neighbors(data, 0, 5, progress=progress))
    assert len(rounds) == 1 and rounds[0] < N_LONG


@needs_rust
def test_the_boxes_maximin_order_ends_at_the_report_after_its_interrupt_check_raised(monkeypatch):
    """rust/core/src/maximin/farthest.rs checks every 4,096 placements: it must stop at the next check."""
    from covertreex.engines import rust

    X = np.random.default_rng(4).uniform(size=(3 * 4096, 2))
    assert _reports_until_stopped(monkeypatch, lambda progress: rust.maximin_order(X, 0, progress=progress)) \
        == [4096]


@needs_rust
def test_a_sigint_held_back_is_handled_during_a_long_rust_call_not_after_it():
    X = np.random.default_rng(2).normal(size=(N_LONG, 3))
    model = ct.CoverTree(engine="rust", metric="euclidean", path="dense").fit(X)
    everything = np.arange(N_LONG)
    expected = model.query(k=5, indices=everything)
    events = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: events.append("handler"))
    try:
        with interrupts.deferred():
            signal.raise_signal(signal.SIGINT)  # recorded: the recorder is installed
            got = model.query(k=5, indices=everything)
            events.append("returned")
    finally:
        signal.signal(signal.SIGINT, previous)
    # The handler did not raise, so the call went on to its full answer.
    assert events == ["handler", "returned"]
    assert np.array_equal(got.indices, expected.indices)
    assert np.array_equal(got.distances, expected.distances)
    reached = []
    with pytest.raises(KeyboardInterrupt), interrupts.deferred():
        signal.raise_signal(signal.SIGINT)
        model.query(k=5, indices=everything)
        reached.append("returned")
    assert reached == []
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


PACKAGE = Path(interrupts.__file__).parent
REACHED_ONLY_FROM_GUARDED = {
    ("engines/gold/dense.py", "run"),  # GoldEngine.dense's query blocks; it checks between tiles
    ("maximin_dense.py", "screen_outside"),  # both inside maximin_with_neighbors
    ("maximin_dense.py", "screen_block"),
}


def _jitted(node) -> bool:
    return any("jit" in ast.unparse(d) for d in node.decorator_list)


def _module_aliases(tree) -> set[str]:
    """Names bound to modules of the package (`from covertreex import tree_structure`, `import x as y`)."""
    names = {alias.asname or alias.name for node in ast.walk(tree) if isinstance(node, ast.Import)
             for alias in node.names}
    names |= {alias.asname or alias.name for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)
              and node.module in {"covertreex", "covertreex.engines", "covertreex.metrics"}
              for alias in node.names}
    return names


def _calls_compiled(function, compiled: set[str], modules: set[str]) -> bool:
    for call in ast.walk(function):
        if not isinstance(call, ast.Call):
            continue
        if isinstance(call.func, ast.Name) and call.func.id in compiled:
            return True
        if (isinstance(call.func, ast.Attribute) and call.func.attr in compiled
                and isinstance(call.func.value, ast.Name) and call.func.value.id in modules):
            return True
    return False


def test_every_python_function_that_calls_numba_defers_sigint():
    """Each Python function of the package that calls a compiled function runs inside `deferred`: by its
    decorator, or by its one caller (listed)."""
    modules = {path: ast.parse(path.read_text()) for path in PACKAGE.rglob("*.py")}
    compiled = {node.name for tree in modules.values() for node in ast.walk(tree)
                if isinstance(node, ast.FunctionDef) and _jitted(node)}
    callers = []
    for path, tree in modules.items():
        aliases = _module_aliases(tree)
        callers += [(str(path.relative_to(PACKAGE)), node.name, node) for node in ast.walk(tree)
                    if isinstance(node, ast.FunctionDef) and not _jitted(node)
                    and _calls_compiled(node, compiled, aliases)]
    assert len(callers) >= 15  # the scan sees the package's entry points
    unguarded = [(path, name) for path, name, node in callers
                 if not any("deferring" in ast.unparse(d) for d in node.decorator_list)
                 and (path, name) not in REACHED_ONLY_FROM_GUARDED]
    assert unguarded == []
