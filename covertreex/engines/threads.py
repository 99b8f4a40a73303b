"""Thread-count control for Numba kernels, restored after each call."""

from __future__ import annotations

from contextlib import contextmanager

import numba

from covertreex.resources import require_sane_numba_threads


@contextmanager
def numba_threads(threads: int | None):
    """Run the block with `threads` Numba threads (None: leave the current setting), after refusing an
    absurd NUMBA_NUM_THREADS."""
    require_sane_numba_threads()
    if threads is None:
        yield
        return
    previous = numba.get_num_threads()
    numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))
    try:
        yield
    finally:
        numba.set_num_threads(previous)
