"""Suite-wide pytest plugins (pytest only accepts ``pytest_plugins`` in the top-level conftest)."""

import os

pytest_plugins = ["pytester"]

# The suite states its presets explicitly; an operator's COVERTREEX_PRESET must not change its defaults.
os.environ.pop("COVERTREEX_PRESET", None)
