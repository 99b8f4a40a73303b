"""Suite-wide pytest plugins (pytest only accepts ``pytest_plugins`` in the top-level conftest)."""

import os
import signal
import sys
from pathlib import Path

import pytest

pytest_plugins = ["pytester"]

# The suite states its presets explicitly; an operator's COVERTREEX_PRESET must not change its defaults.
os.environ.pop("COVERTREEX_PRESET", None)

# Numba's on-disk cache is not safe for processes that compile the same function at the same time (numba
# issues 4807 and 10128: an index and object files written by two processes can disagree, and loading them
# later crashes the interpreter). On a fresh clone every pytest-xdist worker compiles at once, so each one
# caches in a directory of its own; set before any test module imports Numba. Serial runs keep the default.
if worker := os.environ.get("PYTEST_XDIST_WORKER"):
    base = os.environ.get("NUMBA_CACHE_DIR") or str(Path(__file__).resolve().parent.parent / ".numba-cache")
    os.environ["NUMBA_CACHE_DIR"] = str(Path(base, worker))


@pytest.fixture(autouse=True)
def _sigint_left_as_found():
    """A test that leaves SIGINT's handler changed, or a covertreex.interrupts guard open, makes the tests
    after it on its worker fail far from the cause; such a test fails itself instead."""
    before = signal.getsignal(signal.SIGINT)
    yield
    after = signal.getsignal(signal.SIGINT)
    assert after is before, f"the test left SIGINT's handler {after!r}, found {before!r}"
    interrupts = sys.modules.get("covertreex.interrupts")
    assert interrupts is None or not interrupts._installed, "the test left an interrupts.deferred block open"
