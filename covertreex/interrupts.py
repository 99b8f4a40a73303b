"""Ctrl-C around compiled Numba calls: taken when the call returns, never inside it.

Python runs a signal's handler at the next bytecode it executes. During a Numba call that is the Python
code Numba runs to box what the call returns (unpickling an array's dtype, for instance); the
KeyboardInterrupt the default handler raises there is not expected by the compiled code, and the call
ends in a SystemError or a segmentation fault (numba/numba#2324; measured: Ctrl-C one second into the
gold tree build of 20,000 points exited with signal 11 in 3 of 3 runs). Inside :func:`deferred`, SIGINT is
only recorded; the handler that was installed runs when the block ends, or at :func:`check`, which loops
of Numba calls run between calls so that an interrupt still stops them early.

Only the main thread receives signals, and only a Python-level handler runs Python code, so elsewhere,
or with SIGINT ignored or left to the C default, the block changes nothing.
"""

from __future__ import annotations

import functools
import signal
import threading
from contextlib import contextmanager

_installed: list = []
"""The handler that was in place, while the outermost :func:`deferred` block runs."""
_received: list = []
"""Frames of the SIGINTs recorded since then."""


def _record(signum, frame) -> None:
    _received.append(frame)


def _deliver() -> None:
    """Run the installed handler for a recorded SIGINT (the default one raises KeyboardInterrupt)."""
    if _received and _installed:
        frame = _received[0]
        _received.clear()
        _installed[0](signal.SIGINT, frame)


def check() -> None:
    """Between two Numba calls inside :func:`deferred`: deliver a SIGINT recorded during the last one
    (on the main thread; a worker's loop leaves it to the block's end)."""
    if threading.current_thread() is threading.main_thread():
        _deliver()


@contextmanager
def deferred():
    """Hold SIGINT's Python handler until the block ends (see the module docstring)."""
    if _installed or threading.current_thread() is not threading.main_thread():
        yield
        return
    handler = signal.getsignal(signal.SIGINT)
    if not callable(handler):
        yield
        return
    signal.signal(signal.SIGINT, _record)
    _installed.append(handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, handler)
        try:
            _deliver()
        finally:
            _installed.clear()
            _received.clear()


def deferring(function):
    """`function` run inside :func:`deferred`: for Python functions that call compiled Numba code."""

    @functools.wraps(function)
    def wrapper(*args, **kwargs):
        with deferred():
            return function(*args, **kwargs)

    return wrapper
