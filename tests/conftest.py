"""Suite-wide pytest plugins (pytest only accepts ``pytest_plugins`` in the top-level conftest)."""

pytest_plugins = ["pytester"]
