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
        ks = sorted(by_k)
        assert all(by_k[a] > by_k[b] for a, b in zip(ks, ks[1:])), f"{name}: gap not shrinking {by_k}"
    assert all(gaps["residual"][k] < gaps["euclidean"][k] for k in gaps["residual"]), gaps
