"""Everything handed to jitted code has one Numba type per argument, whatever the flags of the user's
arrays: Numba compiles once per combination of argument types, and the gold query takes 20-30 s to
compile, so a writeable/read-only mix multiplied the suite's compile time (see
covertreex.metrics.data.read_only)."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
from numba import typeof

import covertreex as ct
from covertreex.metrics import MetricSpace
from covertreex.tree import load

RNG = np.random.default_rng(7)
X = RNG.normal(size=(60, 3))
Q = RNG.normal(size=(5, 3))


def _read_only(array):
    frozen = array.copy()
    frozen.flags.writeable = False
    return frozen


def _query_types(space: MetricSpace):
    """The Numba type of every query set's arguments the engines pass to jitted code."""
    sets = [space.all_points(), space.all_points(predecessor=True), space.indexed_queries([0, 3, 5]),
            space.point_queries(Q), space.point_queries(_read_only(Q))]
    return {(typeof(s.data), typeof(s.rows), typeof(s.dataset_index), typeof(s.limit)) for s in sets}


@pytest.mark.parametrize("make", [
    lambda: MetricSpace.euclidean(X.copy()),
    lambda: MetricSpace.euclidean(_read_only(X)),
    lambda: MetricSpace.euclidean(np.asfortranarray(X)),
    lambda: MetricSpace.residual(ct.residual_problem(X.copy(), m=8)),
    lambda: MetricSpace.residual(ct.residual_problem(_read_only(X), m=8, lengthscale=[1.0, 2.0, 0.5])),
], ids=["euclidean", "euclidean-read-only", "euclidean-fortran", "residual", "residual-read-only"])
def test_every_space_and_query_set_has_the_one_type(make):
    space = make()
    reference = MetricSpace.euclidean(X)
    assert typeof(space.data) == typeof(reference.data)
    assert _query_types(space) == _query_types(reference)
    assert all(not a.flags.writeable for a in (space.data.lengthscale, space.data.X, space.data.V,
                                               space.data.P))


def test_a_built_tree_and_a_loaded_one_have_the_one_type(tmp_path):
    model = ct.CoverTree(engine="gold").fit(X)
    built = model.tree
    loaded = load(built.save(tmp_path / "tree.npz"))
    used = ct.CoverTree(engine="gold").use_tree(loaded, X).tree
    assert typeof(built.arrays()) == typeof(loaded.arrays()) == typeof(used.arrays())
    assert all(not a.flags.writeable for a in built.arrays()[3:])


def test_the_callers_arrays_keep_their_flags():
    points = X.copy()
    ct.CoverTree(engine="gold").fit(points).kneighbors(points[:4], k=3)
    assert points.flags.writeable
    points[0, 0] = 1.0  # still the caller's to change


@pytest.mark.parametrize("protocol", range(2, pickle.HIGHEST_PROTOCOL + 1))
def test_a_pickled_space_query_set_and_model_keep_the_one_type(protocol):
    """Unpickling skips __post_init__ and protocols below 5 bring arrays back writeable: a model pickled
    by a user (protocol 4 by default) or sent to a process pool must not cost the gold query a recompile."""
    space = MetricSpace.residual(ct.residual_problem(X, m=8))
    queries = space.all_points(predecessor=True)
    model = ct.CoverTree(engine="gold", metric="residual").fit(ct.residual_problem(X, m=8))
    copies = [pickle.loads(pickle.dumps(value, protocol=protocol)) for value in (space, queries, model)]
    assert typeof(copies[0].data) == typeof(space.data)
    assert _query_types(copies[0]) == _query_types(space)
    assert (typeof(copies[1].data), typeof(copies[1].rows), typeof(copies[1].limit)) == (
        typeof(queries.data), typeof(queries.rows), typeof(queries.limit))
    assert typeof(copies[2].space.data) == typeof(model.space.data)
