"""V's triangular solve on every core, with bits that never depend on the thread count.

DESIGN section 3 defines V by ``solve_triangular(L, k(U, X), lower=True)``. SciPy's wrapper holds the GIL,
and how OpenBLAS shares one call among its threads changes the bits (:mod:`covertreex.blas`). The
right-hand sides (one per point) are independent: this module calls the routine SciPy's solve ends in (BLAS
dtrsm, left, lower, no transpose, non-unit; LAPACK's dtrtrs only adds a zero-diagonal check that a
successful Cholesky factor always passes) on fixed chunks of CHUNK_POINTS points, each on one BLAS thread,
from a thread pool. SciPy exports dtrsm through its Cython C API; ctypes calls it with the GIL released.
Chunk boundaries never depend on the thread count, so V never does; `tests/covertreex/test_residual.py`
checks V bit for bit against the one-call solve on one BLAS thread.
"""

from __future__ import annotations

import ctypes
from concurrent.futures import ThreadPoolExecutor
from functools import cache

import numpy as np
from scipy.linalg import cython_blas

from covertreex.blas import one_thread
from covertreex.errors import InvalidInputError
from covertreex.resources import worker_threads

CHUNK_POINTS = 2048
"""Right-hand sides per dtrsm call: large enough to keep BLAS efficient, small enough to share the
points of a few-thousand-point problem between two cores. At this size V equals the one-call solve;
some sizes round points otherwise (on one thread, 2026-12-04, a 6,151 x 96 V: 330 values differ at
2,047, 72,524 at 7; none at 1,000, 100 or 8)."""

_int = ctypes.POINTER(ctypes.c_int)
_double = ctypes.POINTER(ctypes.c_double)
_DTRSM = ctypes.CFUNCTYPE(None, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p,
                          _int, _int, _double, _double, _int, _double, _int)


@cache
def _dtrsm():
    """SciPy's BLAS dtrsm (the library its own `solve_triangular` uses) as a ctypes function."""
    capsule = cython_blas.__pyx_capi__["dtrsm"]
    name_of = ctypes.pythonapi.PyCapsule_GetName
    name_of.restype, name_of.argtypes = ctypes.c_char_p, [ctypes.py_object]
    pointer_of = ctypes.pythonapi.PyCapsule_GetPointer
    pointer_of.restype, pointer_of.argtypes = ctypes.c_void_p, [ctypes.py_object, ctypes.c_char_p]
    return _DTRSM(pointer_of(capsule, name_of(capsule)))


def solve_lower_rows_in_place(L: np.ndarray, K: np.ndarray) -> np.ndarray:
    """Overwrite each row K_i (K: N x m, C-contiguous float64) with L^-1 K_i, where L (m x m) is lower
    triangular with a nonzero diagonal; return K. The same bits as ``solve_triangular(L, K.T,
    lower=True).T`` on one BLAS thread."""
    n, m = K.shape
    if L.shape != (m, m) or K.dtype != np.float64 or not K.flags.c_contiguous or not K.flags.writeable:
        raise InvalidInputError(f"solve_lower_rows_in_place needs L of shape ({m}, {m}) and a writeable "
                         f"C-contiguous float64 K, got L {L.shape} and K {K.dtype} {K.flags}")
    L = np.asfortranarray(L, dtype=np.float64)
    dtrsm = _dtrsm()
    order = ctypes.c_int(m)
    one = ctypes.c_double(1.0)

    def solve(start: int) -> None:
        chunk = K[start : start + CHUNK_POINTS]  # as a Fortran m x n matrix: one point per column
        with one_thread():  # again in this thread: a BLAS whose thread count is per thread needs it
            dtrsm(b"L", b"L", b"N", b"N", ctypes.byref(order), ctypes.byref(ctypes.c_int(chunk.shape[0])),
                  ctypes.byref(one), L.ctypes.data_as(_double), ctypes.byref(order),
                  chunk.ctypes.data_as(_double), ctypes.byref(order))

    starts = range(0, n, CHUNK_POINTS)
    workers = min(worker_threads(), len(starts))
    with one_thread():  # the bits: covertreex.blas; the pool's threads are the parallelism
        if workers <= 1:
            for start in starts:
                solve(start)
        else:
            with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="covertreex-solve") as pool:
                list(pool.map(solve, starts))
    return K
