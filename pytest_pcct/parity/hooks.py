"""Hook specifications of pytest-pcct (implement them in a conftest.py or a plugin)."""

import pytest


@pytest.hookspec
def pytest_pcct_register_engines(registry):
    """Register k-NN engines: ``registry.register(name, factory, oracle=..., telemetry_schema=...)``.

    Called once per session (and per xdist worker) when engines are selected, before any test runs;
    ``registry`` is a :class:`pytest_pcct.parity.engines.EngineRegistry`. Factories run only for selected
    engines.
    """
