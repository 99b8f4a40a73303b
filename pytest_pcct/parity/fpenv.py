"""The floating-point environment canonical distances assume: round to nearest, subnormals kept.

An engine, or a library it loads (one linked with ``-ffast-math`` sets flush-to-zero when it is loaded), can
change the rounding mode or the subnormal handling of the thread it runs on and leave it changed. Every
later computation there, the oracle's and the plugin's own truth check included, then shares the change, so
answers agree bit for bit while none is the canonical one. The plugin looks at the environment after each
engine factory and around each engine call, and before it computes true distances.

The probes are arithmetic on module globals (read at run time, so never folded by the compiler), which
works on any platform; putting the default back needs the C library's ``FE_DFL_ENV`` (glibc).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import struct
import sys
from functools import cache

_ONE, _TINY = 1.0, 2.0**-60
_SMALLEST_NORMAL, _HALF = 2.2250738585072014e-308, 0.5
_SMALLEST_SUBNORMAL, _HUGE = 5e-324, 2.0**60
_ZERO_BITS = struct.pack("<d", 0.0)


def _is_zero(value: float) -> bool:
    """By its bits: a comparison would read a subnormal as zero itself when subnormal inputs are."""
    return struct.pack("<d", value) == _ZERO_BITS


def changes() -> list[str]:
    """How the current thread's environment differs from the default (empty when it is the default)."""
    found = []
    if _ONE + _TINY != _ONE:
        found.append("rounding upward")
    if _ONE - _TINY != _ONE:
        found.append("rounding downward or toward zero")
    if _is_zero(_SMALLEST_NORMAL * _HALF):  # a subnormal result
        found.append("subnormal results flushed to zero")
    if _is_zero(_SMALLEST_SUBNORMAL * _HUGE):  # a subnormal input, a normal result
        found.append("subnormal inputs read as zero")
    return found


@cache
def _libm():
    if not sys.platform.startswith("linux"):
        return None
    name = ctypes.util.find_library("m")
    return ctypes.CDLL(name) if name else None


def restore() -> bool:
    """Put the default environment back where the C library allows it (glibc: ``fesetenv(FE_DFL_ENV)``,
    which resets the rounding mode and the SSE flush and denormal flags); whether it is the default now."""
    libm = _libm()
    if libm is not None:
        libm.fesetenv(ctypes.c_void_p(-1))  # glibc's FE_DFL_ENV is ((const fenv_t *) -1)
    return not changes()


def described(found: list[str]) -> str:
    """`found` (from :func:`changes`) as a clause, with what it does to a parity run."""
    return (f"the floating-point environment is not the default ({', '.join(found)}): every later "
            "computation in this thread, the oracle's and the plugin's truth check included, would share the "
            "change, so answers could agree bit for bit without any being the canonical one")
