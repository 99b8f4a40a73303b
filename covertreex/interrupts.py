"""Ctrl-C around compiled Numba calls: taken when the call returns, never inside it.

Python runs a signal's handler at the next bytecode it executes. During a Numba call that is the Python
code Numba runs to box what the call returns (unpickling an array's dtype, for instance); the
KeyboardInterrupt the default handler raises there is not expected by the compiled code, and the call
ends in a SystemError, a tuple holding NULL or a segmentation fault (numba/numba#2324; measured: Ctrl-C
one second into the gold tree build of 20,000 points exited with signal 11 in 3 of 3 runs). Inside
:class:`deferred`, SIGINT's Python handler is replaced by one that only records the signal; the handler
that was installed runs when the outermost block ends, or at :func:`check`, which loops of Numba calls
(and waits on pools that run them, :func:`results`) call between calls so that an interrupt still stops
them early. A handler that installs another one when it runs (a first Ctrl-C asks to stop, the second
quits) is followed: the new one is the one run, and restored, after that.

Only the main thread receives signals, and only a Python-level handler runs Python code, so elsewhere,
or with SIGINT ignored or left to the C default, the block changes nothing.
"""

from __future__ import annotations

import _signal  # signal's functions without their enum conversion: 0.05 and 0.7 us a call, not 2.8 and 4.7
import functools
import signal
import threading
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait

_installed: list = []
"""The handler to run for SIGINT (and to restore), while the outermost :class:`deferred` block runs."""
_received: list = []
"""Frames of the SIGINTs recorded since that block began."""

SIGINT = int(signal.SIGINT)

POLL_SECONDS = 0.1
"""How often :func:`results` looks for a recorded interrupt while the pool works."""


def _record(signum, frame) -> None:
    _received.append(frame)


def _follow_handler_change() -> None:
    """After the handler ran: if it installed another, that one is run and restored from now on, and the
    recorder goes back in place (unless SIGINT is now ignored or left to C, which runs no Python)."""
    current = _signal.getsignal(SIGINT)
    if current is not _record:
        _installed[0] = current
        if callable(current):
            _signal.signal(SIGINT, _record)


def check() -> None:
    """Between two Numba calls inside :class:`deferred`: run the handler for a SIGINT recorded during the
    last one (on the main thread only; a worker's loop leaves it to the main thread)."""
    if not (_received and _installed) or threading.current_thread() is not threading.main_thread():
        return
    frame = _received[0]
    _received.clear()
    handler = _installed[0]
    if not callable(handler):
        return
    try:
        handler(SIGINT, frame)
    finally:
        _follow_handler_change()


class deferred:  # noqa: N801 -- used as a context manager, like contextlib's lower-case ones
    """Hold SIGINT's Python handler until the block ends (see the module docstring). Nested blocks hold
    nothing more; the outermost one restores the handler and then runs it for a recorded SIGINT."""

    __slots__ = ("outermost",)

    def __enter__(self) -> deferred:
        self.outermost = False
        if _installed or threading.current_thread() is not threading.main_thread():
            return self
        handler = _signal.getsignal(SIGINT)
        if callable(handler):
            _received.clear()  # a record left by an earlier block's last instant is not this block's
            _installed.append(handler)
            _signal.signal(SIGINT, _record)
            self.outermost = True
        return self

    def __exit__(self, *exc) -> bool:
        if not self.outermost:
            return False
        handler = _installed.pop()  # first: from here on, check() and nested blocks see no guard
        if _signal.getsignal(SIGINT) is _record:
            _signal.signal(SIGINT, handler)
        frames = _received[:1]
        _received.clear()
        if frames and callable(handler):
            handler(SIGINT, frames[0])
        return False


def deferring(function):
    """`function` run inside :class:`deferred`: for Python functions that call compiled Numba code."""

    @functools.wraps(function)
    def wrapper(*args, **kwargs):
        with deferred():
            return function(*args, **kwargs)

    return wrapper


def results(pool: ThreadPoolExecutor, futures: list[Future]) -> list:
    """The futures' results in order, waited for in slices of POLL_SECONDS with :func:`check` between
    them, so that a recorded Ctrl-C stops the pool's work: the tasks not yet started are cancelled and
    the running ones finish."""
    pending = set(futures)
    try:
        while pending:
            done, pending = wait(pending, timeout=POLL_SECONDS, return_when=FIRST_EXCEPTION)
            check()
            for future in done:
                if future.exception() is not None:
                    future.result()  # raises the task's error
    except BaseException:
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    return [future.result() for future in futures]
