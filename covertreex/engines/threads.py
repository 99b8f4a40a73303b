"""Thread-count control for Numba kernels, restored after each call."""

from __future__ import annotations

from contextlib import contextmanager

import numba

from covertreex.errors import InvalidInputError
from covertreex.resources import available_cpus, require_sane_numba_threads


@contextmanager
def numba_threads(threads: int | None):
    """Run the block with `threads` Numba threads (None: leave the current setting), after refusing an
    absurd NUMBA_NUM_THREADS, and a count above the CPUs the process may use now: the model was checked
    when made, but its affinity may have shrunk since, or it was unpickled elsewhere (as rust refuses)."""
    require_sane_numba_threads()
    if threads is None:
        yield
        return
    cpus = available_cpus()
    if threads > cpus:
        raise InvalidInputError(f"threads must be between 1 and the number of CPUs this process may use "
                                f"({cpus} now), got {threads}")
    previous = numba.get_num_threads()
    numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))
    try:
        yield
    finally:
        numba.set_num_threads(previous)
