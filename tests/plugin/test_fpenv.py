"""The floating-point environment probes see each change a library can leave behind, and the default comes
back; true distances are refused while the environment is changed."""

import ctypes
import ctypes.util
import platform
import sys

import pytest

from pytest_pcct.parity import fpenv
from pytest_pcct.parity.datasets import make_problem
from pytest_pcct.parity.truth import true_distances

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux") or platform.machine() != "x86_64",
    reason="changes the environment through x86-64 glibc's fenv_t",
)

FE_DOWNWARD, FE_UPWARD, FE_TOWARDZERO = 0x400, 0x800, 0xC00
MXCSR_OFFSET = 28  # glibc's x86-64 fenv_t: the x87 state (28 bytes), then the SSE control register
FLUSH_TO_ZERO, DENORMALS_ARE_ZERO = 1 << 15, 1 << 6


@pytest.fixture
def libm():
    library = ctypes.CDLL(ctypes.util.find_library("m"))
    yield library
    library.fesetenv(ctypes.c_void_p(-1))


def _set_mxcsr_bits(libm, bits: int) -> None:
    env = (ctypes.c_uint8 * 32)()
    assert libm.fegetenv(env) == 0
    mxcsr = ctypes.c_uint32.from_buffer(env, MXCSR_OFFSET)
    assert mxcsr.value & 0xFFC0 == 0x1F80  # the default control bits (the low six are sticky status flags)
    mxcsr.value |= bits
    assert libm.fesetenv(env) == 0


@pytest.mark.parametrize(("mode", "found"), [
    (FE_UPWARD, ["rounding upward"]),
    (FE_DOWNWARD, ["rounding downward or toward zero"]),
    (FE_TOWARDZERO, ["rounding downward or toward zero"]),
])
def test_a_rounding_mode_is_seen_and_undone(libm, mode, found):
    assert fpenv.changes() == []
    libm.fesetround(mode)
    assert fpenv.changes() == found
    assert fpenv.restore()
    assert fpenv.changes() == []


@pytest.mark.parametrize(("bits", "found"), [
    (FLUSH_TO_ZERO, ["subnormal results flushed to zero"]),
    (DENORMALS_ARE_ZERO, ["subnormal inputs read as zero"]),
    (FLUSH_TO_ZERO | DENORMALS_ARE_ZERO,
     ["subnormal results flushed to zero", "subnormal inputs read as zero"]),
])
def test_flush_to_zero_and_denormals_are_zero_are_seen_and_undone(libm, bits, found):
    """What a library linked with -ffast-math (crtfastmath) sets when it is loaded."""
    _set_mxcsr_bits(libm, bits)
    assert fpenv.changes() == found
    assert fpenv.restore()
    assert fpenv.changes() == []


def test_true_distances_are_refused_in_a_changed_environment(libm):
    problem = make_problem(n=20, d=2, n_queries=2)
    libm.fesetround(FE_UPWARD)
    with pytest.raises(AssertionError, match=r"true distances cannot be computed: the floating-point "
                                             r"environment is not the default \(rounding upward\)"):
        true_distances(problem, [[0, 1], [1, -1]])
    fpenv.restore()
    assert true_distances(problem, [[0, 1], [1, -1]]).shape == (2, 2)
