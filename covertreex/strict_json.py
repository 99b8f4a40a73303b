"""Strict JSON reading for the files covertreex and the plugin trust: telemetry records and baselines.

Python's :func:`json.loads` accepts three things JSON files written by these tools never hold, and reads them
as plausible data: the bare constants ``NaN``, ``Infinity`` and ``-Infinity``; numbers that overflow float64
to an infinity (``1e999``); and an object with a key twice (a bad merge), of which it silently keeps the last
value. :func:`loads` refuses all three with a ``ValueError`` that says which, so a damaged file is reported
rather than half-believed. The module imports nothing from covertreex, so the plugin's gate may load it
without loading the library.
"""

from __future__ import annotations

import json
import math


def loads(text: str):
    """`text` parsed as JSON, refusing non-finite numbers and repeated keys (ValueError; a syntax error is
    :class:`json.JSONDecodeError`, a ValueError too)."""
    return json.loads(text, parse_float=_finite_float, parse_constant=_not_json,
                      object_pairs_hook=_unique_keys)


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"the number {text[:40]} is not finite in float64")
    return value


def _not_json(constant: str):
    raise ValueError(f"{constant} is not a JSON value")


def _unique_keys(pairs: list) -> dict:
    seen = set()
    for key, _ in pairs:
        if key in seen:
            raise ValueError(f"the key {key!r:.60} appears twice in one object, as a bad merge leaves it")
        seen.add(key)
    return dict(pairs)
