"""pytest11 entry point ``pcct_covertreex``: covertreex's engines registered with the parity plugin.

A plugin of its own, so a project that tests only its own engines switches them off with
``-p no:pcct_covertreex`` (then it may register its own oracle with ``oracle=True``). The hook is optional:
with the parity plugin switched off (``-p no:pcct``) nothing specifies it, and this plugin does nothing.
Registration runs first, so other registrations can refer to these engines.
"""

import pytest


@pytest.hookimpl(tryfirst=True, optionalhook=True)
def pytest_pcct_register_engines(registry):
    from pytest_pcct.covertreex_engines import register

    register(registry)
