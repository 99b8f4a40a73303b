"""A live "phase ... N s" line on stderr while a long step runs, only when stderr is a terminal.

It claims nothing it does not know: the line names the running phase and the time spent so far, and is
erased when the phase ends. The ticker is a Python thread, so it advances whenever the running step lets
the GIL go (the rust engine and Numba's parallel query loops do; gold's sequential Numba build does not,
and its line then shows the elapsed time only when the build returns).
"""

from __future__ import annotations

import sys
import threading
import time
from contextlib import contextmanager

TICK_SECONDS = 0.5


@contextmanager
def phase(label: str, stream=None):
    """Show `label` and its elapsed seconds on `stream` (default stderr) while the block runs."""
    stream = sys.stderr if stream is None else stream
    if not stream.isatty():
        yield
        return
    start = time.perf_counter()
    stop = threading.Event()

    def show():
        stream.write(f"\r\033[K{label} ... {time.perf_counter() - start:.0f} s")
        stream.flush()

    def tick():
        while not stop.wait(TICK_SECONDS):
            show()

    show()
    ticker = threading.Thread(target=tick, name="pcct-progress", daemon=True)
    ticker.start()
    try:
        yield
    finally:
        stop.set()
        ticker.join()
        stream.write("\r\033[K")
        stream.flush()
