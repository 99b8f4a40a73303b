"""The benchmark regression gate of pytest-pcct, usable by any project on its own benchmarks.

``rules`` (the decisions, plain functions), ``commands`` (the fix commands errors print), ``baselines``
(storage), ``session`` (one run's verdicts) and ``report`` (table and JSON); the pytest plugin that wires
them in is :mod:`pytest_pcct.gate_plugin`. Nothing here imports covertreex, NumPy or Numba.
"""
