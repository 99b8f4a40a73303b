"""docs/vecchia.md's likelihood example runs as written and its conclusions hold."""

from __future__ import annotations

import re
from pathlib import Path

DOC = Path(__file__).resolve().parents[2] / "docs" / "vecchia.md"


def test_likelihood_example_runs_and_residual_neighbours_win():
    [code] = re.findall(r"```python\n(.*?)```", DOC.read_text(), flags=re.S)
    namespace = {"__name__": "vecchia_doc"}
    exec(compile(code, str(DOC), "exec"), namespace)
    gaps = namespace["gaps"]
    for name, by_k in gaps.items():
        gap = [by_k[k] for k in sorted(by_k)]
        assert gap == sorted(gap, reverse=True), f"{name}: the gap does not shrink as k grows: {by_k}"
    assert all(gaps["residual"][k] < gaps["euclidean"][k] for k in gaps["residual"]), gaps
