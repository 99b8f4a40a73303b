"""Suite-wide pytest plugins (pytest only accepts ``pytest_plugins`` in the top-level conftest)."""

import os
from pathlib import Path

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
