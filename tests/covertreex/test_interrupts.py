"""Ctrl-C during a compiled Numba call is taken when the call returns (covertreex.interrupts).

The signal is raised from inside the compiled code itself (libc's raise through ctypes), so it is always
pending while Numba boxes the returned arrays: no timing is involved.
"""

from __future__ import annotations

import ast
import ctypes
import signal
from pathlib import Path

import numpy as np
import pytest
from numba import njit

from covertreex import interrupts

_raise = ctypes.CDLL(None)["raise"]
_raise.argtypes = [ctypes.c_int]
_raise.restype = ctypes.c_int
SIGINT = int(signal.SIGINT)


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
