"""covertreex's engines as a pytest plugin of their own, loaded by pytest-pcct (its ``pytest_plugins``).

A project that tests only its own engines switches them off with ``-p no:pytest_pcct.covertreex_plugin``
(then it may register its own oracle with ``oracle=True``). Registration goes through the same hook other
projects implement, first, so other registrations can refer to these engines.
"""

import pytest


@pytest.hookimpl(tryfirst=True)
def pytest_pcct_register_engines(registry):
    from pytest_pcct.covertreex_engines import register

    register(registry)
