"""One BLAS thread for every BLAS call whose bits the project keeps.

OpenBLAS shares a call's work among its threads in ways that change its rounding. On 2 threads against 1
(2026-12-04, AMD EPYC, 2 cores), the Cholesky factor of a 200 x 200 or 512 x 512 kernel matrix came out
with other bits, and so did a triangular solve of 150 right-hand sides. V, p and every residual distance
would then depend on the machine's core count and on OPENBLAS_NUM_THREADS / OMP_NUM_THREADS, which a Dask
LocalCluster sets to 1 in its own process's environment, and so in every subprocess started after it. Such
calls run inside :func:`one_thread`; where parallelism pays, the caller runs several of them on its own
threads (:mod:`covertreex.triangular_solve`).

The OpenBLAS that NumPy's and SciPy's wheels bundle keeps one thread count for the whole process (its
"pthreads" threading layer). threadpoolctl lets only one Python thread at a time change it and silently
ignores the others, so a limit asked for from a worker thread (a Dask task, a user's thread pool) could
leave BLAS on all its threads. :func:`one_thread` therefore sets that count itself, through OpenBLAS's own
functions, from any thread, and counts its holders: every holder sets one thread as it enters (a limit set
meanwhile by code outside this module could have raised it), the last to leave restores what the first
found unless someone else has set another count since, so overlapping and nested holders never leave
their limit behind. Code outside this module that changes the count from another thread while a block
runs can still raise it for the rest of that block (and a threadpoolctl context entered during a block
restores, when it ends, the one thread it found). BLAS libraries whose thread count is per thread
(OpenMP layers, MKL) are limited through threadpoolctl in the entering thread only, which covers the calls
made in that thread (the Cholesky, each dtrsm chunk), not products the gold engines run on pool threads.
"""

from __future__ import annotations

import ctypes
import itertools
import threading
from contextlib import ExitStack, contextmanager
from functools import cache

import numpy  # noqa: F401 -- loads NumPy's BLAS before the libraries are looked for
from threadpoolctl import ThreadpoolController

_PREFIXES, _SUFFIXES = ("", "scipy_"), ("", "64_", "_64")
"""How OpenBLAS builds name their exported functions (scipy-openblas wheels add a prefix, 64-bit integer
builds a suffix)."""


class _SharedCount:
    """The process-wide thread count of one pthreads OpenBLAS, through its get and set functions."""

    def __init__(self, path: str):
        library = ctypes.CDLL(path)
        for prefix, suffix in itertools.product(_PREFIXES, _SUFFIXES):
            get = getattr(library, f"{prefix}openblas_get_num_threads{suffix}", None)
            put = getattr(library, f"{prefix}openblas_set_num_threads{suffix}", None)
            if get is not None and put is not None:
                get.restype, get.argtypes = ctypes.c_int, []
                put.restype, put.argtypes = None, [ctypes.c_int]
                self.get, self.set = get, put
                return
        raise LookupError(f"no openblas_get/set_num_threads in {path}")


@cache
def _libraries() -> tuple[list[_SharedCount], ThreadpoolController | None]:
    """The pthreads OpenBLAS libraries of this process, and a threadpoolctl controller of the other BLAS
    libraries (None when there are none); found once, with SciPy's loaded first (imported here, not with
    this module: a Euclidean job never calls SciPy, and its import costs 0.2-0.4 s)."""
    import scipy.linalg  # noqa: F401

    controller = ThreadpoolController().select(user_api="blas")
    shared, others = [], []
    for library in controller.lib_controllers:
        if library.internal_api == "openblas" and getattr(library, "threading_layer", "") == "pthreads":
            try:
                shared.append(_SharedCount(library.filepath))
                continue
            except LookupError:
                pass
        others.append(library.filepath)
    rest = ThreadpoolController().select(filepath=others) if others else None
    return shared, rest


_lock = threading.Lock()
_holders = 0
_found: list[int] = []


@contextmanager
def one_thread():
    """Every BLAS library of the process on one thread while the block runs (see the module docstring)."""
    global _holders, _found
    shared, rest = _libraries()
    with _lock:
        if _holders == 0:
            _found = [library.get() for library in shared]
        for library in shared:  # again on every entry: someone else's limit may have changed it since
            if library.get() != 1:
                library.set(1)
        _holders += 1
    try:
        with ExitStack() as stack:
            if rest is not None:
                stack.enter_context(rest.limit(limits=1))
            yield
    finally:
        with _lock:
            _holders -= 1
            if _holders == 0:
                for library, count in zip(shared, _found, strict=True):
                    if library.get() == 1:  # a count someone else set meanwhile is theirs to restore
                        library.set(count)
