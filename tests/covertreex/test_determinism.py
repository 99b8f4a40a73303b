"""Same seed, same bytes: datasets, trees, answers and counters; and the thread count changes nothing."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

import covertreex as ct
from covertreex import datasets
from covertreex.telemetry import COMPARED_SECTIONS

_RUN = """
import hashlib, json, numpy as np, covertreex as ct
from covertreex import datasets
X = datasets.make("{kind}", 1500, 3, 7).points
data = X if "{metric}" == "euclidean" else ct.residual_problem(X, m=24, seed=7)
t = ct.CoverTree(path="tree", metric="{metric}").fit(data)
r = t.query(indices=np.arange(0, 1500, 3), k=12)
p = t.query(k=6, predecessor=True)
h = hashlib.sha256()
for a in (t.tree.levels, t.tree.parents, t.tree.radius, r.indices, r.distances, r.counters.per_query,
          r.counters.per_level, p.indices, p.distances, p.counters.per_query, p.counters.per_level):
    h.update(np.ascontiguousarray(a).tobytes())
import numba
print(json.dumps({{"digest": h.hexdigest(), "threads": numba.get_num_threads()}}))
"""


def _run(threads: int, kind: str, metric: str) -> dict:
    env = dict(os.environ, NUMBA_NUM_THREADS=str(threads))
    out = subprocess.run(
        [sys.executable, "-c", _RUN.format(kind=kind, metric=metric)], env=env, capture_output=True,
        text=True, check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize(("kind", "metric"), [("lattice", "euclidean"), ("duplicates", "residual")])
def test_one_and_two_threads_give_identical_bytes(kind, metric):
    one, two = _run(1, kind, metric), _run(2, kind, metric)
    assert (one["threads"], two["threads"]) == (1, 2)
    assert one["digest"] == two["digest"]


def test_threads_option_gives_identical_results():
    X = datasets.make("clustered", 1200, 2, 1).points
    a = ct.CoverTree(threads=1).fit(X).query(indices=np.arange(1200), k=8)
    b = ct.CoverTree(threads=2).fit(X).query(indices=np.arange(1200), k=8)
    assert np.array_equal(a.indices, b.indices) and a.distances.tobytes() == b.distances.tobytes()
    assert np.array_equal(a.counters.per_query, b.counters.per_query)


@pytest.mark.parametrize("kind", list(datasets.GENERATORS))
def test_datasets_are_reproducible(kind):
    a, b = datasets.make(kind, 300, 4, 12), datasets.make(kind, 300, 4, 12)
    assert a.points.tobytes() == b.points.tobytes() and a.digest == b.digest and len(a.digest) == 64
    assert datasets.make(kind, 300, 4, 13).digest != a.digest
    assert a.points.dtype == np.float64 and a.points.flags.c_contiguous and not a.points.flags.writeable


def test_tie_heavy_datasets_have_ties_and_copies():
    lat = datasets.make("lattice", 500, 2, 0).points
    assert len(np.unique(lat, axis=0)) < 500 and np.array_equal(lat, np.round(lat))
    dup = datasets.make("duplicates", 500, 3, 0, fraction=0.3).points
    assert len(np.unique(dup, axis=0)) == 350


def test_repeated_calls_give_identical_results_and_counters():
    problem = ct.residual_problem(datasets.gaussian(900, 2, 4), kernel="matern52", m=30, seed=4)
    first = ct.CoverTree(path="tree", metric="residual").fit(problem)
    second = ct.CoverTree(path="tree", metric="residual").fit(problem)
    assert first.tree.same_as(second.tree)
    a, b = first.query(indices=np.arange(0, 900, 4), k=15), second.query(indices=np.arange(0, 900, 4), k=15)
    assert a.indices.tobytes() == b.indices.tobytes() and a.distances.tobytes() == b.distances.tobytes()
    for section in COMPARED_SECTIONS:
        assert a.telemetry[section] == b.telemetry[section]
