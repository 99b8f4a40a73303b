"""A pytest plugin that makes every CoverTree fit and query uniformly slower, for the gate fidelity harness.

With ``PCCT_INJECT_SLOWDOWN=1.5`` in the environment, each ``CoverTree.fit`` and ``CoverTree.query`` burns
CPU in a busy loop for half as long again as the call itself took (process time), so the call costs 1.5x
its CPU time and more instructions, while its results and work counters stay the same: exactly the
regression the gate must catch. Load it with ``-p slowdown_plugin`` (``benchmarks/`` on ``PYTHONPATH``);
without the variable it changes nothing.
"""

from __future__ import annotations

import functools
import os
import time

ENV = "PCCT_INJECT_SLOWDOWN"


def _burn(seconds: float) -> None:
    end = time.process_time() + seconds
    while time.process_time() < end:
        pass


def _slowed(method, factor: float):
    @functools.wraps(method)
    def slowed(*args, **kwargs):
        start = time.process_time()
        result = method(*args, **kwargs)
        _burn((factor - 1.0) * (time.process_time() - start))
        return result

    return slowed


def pytest_configure(config):
    text = os.environ.get(ENV)
    if not text:
        return
    factor = float(text)
    if not factor >= 1.0:
        raise ValueError(f"{ENV} must be a slowdown factor >= 1, got {text!r}")
    from covertreex.api import CoverTree

    for name in ("fit", "query"):
        setattr(CoverTree, name, _slowed(getattr(CoverTree, name), factor))
