"""Tree invariants: validate accepts built trees and names the first bad node of corrupted ones."""

from __future__ import annotations

import dataclasses
import os
import pickle
from pathlib import Path

import numpy as np
import pytest

import covertreex as ct
from covertreex import datasets
from covertreex.errors import CorruptFileError, InvalidInputError
from covertreex.level_constants import DUPLICATE_LEVEL
from covertreex.tree import assemble


@pytest.fixture(scope="module")
def built():
    fitted = ct.CoverTree(path="tree").fit(datasets.make("duplicates", 400, 2, 3).points)
    ct.validate(fitted.tree, fitted.space)
    return fitted.tree, fitted.space


def _reassembled(tree, space, levels=None, parents=None, radius=None):
    return assemble(
        tree.levels if levels is None else levels,
        tree.parents if parents is None else parents,
        tree.radius if radius is None else radius,
        tree.insertion_order,
        space,
    )


def _leaf_far_below_parent(tree):
    for c in range(tree.n_points):
        p = tree.parents[c]
        no_children = tree.child_offsets[c + 1] == tree.child_offsets[c]
        if (
            p >= 0
            and no_children
            and tree.levels[c] != DUPLICATE_LEVEL
            and tree.levels[c] <= tree.levels[p] - 3
        ):
            return c, p
    raise AssertionError("fixture tree has no deep leaf")


def test_duplicates_hang_under_their_copy(built):
    tree, space = built
    dups = np.flatnonzero(tree.levels == DUPLICATE_LEVEL)
    assert dups.size > 50
    X = space.data.X
    assert np.array_equal(X[dups], X[tree.parents[dups]])
    assert tree.is_copy[dups].all()


def test_missing_child_entry_is_invariant_1(built):
    tree, space = built
    children = tree.children.copy()
    children[0] = children[1]
    bad = dataclasses.replace(tree, children=children)
    with pytest.raises(InvalidInputError, match="invariant 1"):
        ct.validate(bad, space)


def test_second_root_is_invariant_1(built):
    tree, space = built
    parents = tree.parents.copy()
    parents[tree.children[0]] = -1
    with pytest.raises(InvalidInputError, match=r"invariant 1 .*roots"):
        ct.validate(dataclasses.replace(tree, parents=parents), space)


def test_child_level_not_below_parent_is_invariant_2(built):
    tree, space = built
    c, p = _leaf_far_below_parent(tree)
    levels = tree.levels.copy()
    levels[c] = levels[p]
    with pytest.raises(InvalidInputError, match=rf"invariant 2 \(covering\) violated at node {c}: level"):
        ct.validate(_reassembled(tree, space, levels=levels), space)


def test_child_too_far_for_its_level_is_invariant_2(built):
    tree, space = built
    c, _ = _leaf_far_below_parent(tree)
    levels = tree.levels.copy()
    levels[c] -= 40
    with pytest.raises(InvalidInputError, match=rf"invariant 2 \(covering\) violated at node {c}: d\(node"):
        ct.validate(_reassembled(tree, space, levels=levels), space)


def test_promoted_leaf_breaks_separation_invariant_3(built):
    tree, space = built
    c, p = _leaf_far_below_parent(tree)
    levels = tree.levels.copy()
    levels[c] = levels[p] - 1
    with pytest.raises(InvalidInputError, match=r"invariant 3 \(separation\) violated at node"):
        ct.validate(_reassembled(tree, space, levels=levels), space)


def test_short_radius_is_invariant_4(built):
    tree, space = built
    radius = tree.radius.copy()
    radius[tree.root] = np.nextafter(radius[tree.root], 0.0)
    with pytest.raises(InvalidInputError, match=rf"invariant 4 \(radius\) violated at node {tree.root}"):
        ct.validate(dataclasses.replace(tree, radius=radius), space)


def test_validate_rejects_tree_of_other_size(built):
    tree, _ = built
    other = ct.CoverTree(path="tree").fit(datasets.gaussian(10, 2, 0)).space
    with pytest.raises(InvalidInputError, match="400 nodes but the data has 10"):
        ct.validate(tree, other)


def test_save_load_round_trip(built, tmp_path):
    tree, space = built
    path = tmp_path / "tree.npz"
    tree.save(path)
    loaded = ct.load(path)
    assert loaded.same_as(tree) and loaded.metric == tree.metric and loaded.space_digest == tree.space_digest
    ct.validate(loaded, space)


def test_loaded_tree_answers_like_the_original(built, tmp_path, check_same):
    tree, space = built
    tree.save(tmp_path / "t.npz")
    X = space.data.X
    fresh = ct.CoverTree(path="tree").fit(X)
    reused = ct.CoverTree(path="tree").use_tree(ct.load(tmp_path / "t.npz"), X)
    check_same(reused.kneighbors(indices=np.arange(50), k=7), fresh.kneighbors(indices=np.arange(50), k=7))


def test_a_fitted_cover_tree_pickles_with_its_tree(built, check_same):
    X = built[1].data.X
    model = ct.CoverTree(path="tree").fit(X)
    copy = pickle.loads(pickle.dumps(model))
    assert copy.built_tree.same_as(model.built_tree)
    check_same(copy.kneighbors(indices=np.arange(50), k=7), model.kneighbors(indices=np.arange(50), k=7))


def test_a_model_pickled_before_metric_data_moved_still_loads(built, check_same):
    """MetricData moved from covertreex.metrics.kernels to covertreex.metrics.data; a pickle made before
    (a saved model, an index shipped to Dask workers) names the old module. Protocol 0 writes module names
    as text, so the old pickle is this one with its module name put back."""
    model = ct.CoverTree(path="tree").fit(built[1].data.X)
    now = pickle.dumps(model, protocol=0)
    assert b"covertreex.metrics.data\nMetricData" in now
    before = now.replace(b"covertreex.metrics.data\nMetricData", b"covertreex.metrics.kernels\nMetricData")
    check_same(pickle.loads(before).kneighbors(indices=np.arange(50), k=7),
               model.kneighbors(indices=np.arange(50), k=7))


def test_tree_for_other_data_is_refused(built):
    tree, _ = built
    with pytest.raises(InvalidInputError, match="different data"):
        ct.CoverTree(path="tree").use_tree(tree, datasets.gaussian(400, 2, 99))
    other = ct.CoverTree(path="tree").fit(datasets.gaussian(tree.n_points, 2, 99)).space
    with pytest.raises(InvalidInputError, match="^tree was built on different data or metric than `space`$"):
        ct.validate(tree, other)  # reported invariant 4 at node 1, as if the tree were damaged


@pytest.mark.parametrize("damage", ["truncate", "garbage", "missing-array", "encrypted-flag"])
def test_corrupt_tree_file_names_the_file(built, tmp_path, damage):
    tree, _ = built
    path = tmp_path / "tree.npz"
    tree.save(path)
    if damage == "truncate":
        path.write_bytes(path.read_bytes()[:200])
    elif damage == "garbage":
        path.write_bytes(b"not a zip file at all")
    elif damage == "encrypted-flag":  # zipfile raised a bare RuntimeError asking for a password
        data = bytearray(path.read_bytes())
        data[data.find(b"PK\x01\x02") + 8] |= 1  # general-purpose flag bit 0 of the first central entry
        path.write_bytes(bytes(data))
    else:
        with np.load(path) as npz:
            kept = {k: npz[k] for k in npz.files if k != "radius"}
        np.savez(path, **kept)
    with pytest.raises(CorruptFileError, match="tree.npz"):
        ct.load(path)


def test_saving_over_a_symlinked_file_keeps_the_link_and_the_files_permissions(built, tmp_path):
    """The save goes to a temporary file renamed over the real target: the symlink and the permissions of
    the file it replaces stay as they were."""
    tree, _ = built
    real, link = tmp_path / "real.npz", tmp_path / "link.npz"
    real.write_bytes(b"old")
    real.chmod(0o640)
    link.symlink_to(real)
    tree.save(link)
    assert link.is_symlink() and ct.load(real).same_as(tree)
    assert real.stat().st_mode & 0o777 == 0o640
    assert sorted(p.name for p in tmp_path.iterdir()) == ["link.npz", "real.npz"]  # no temporary left


def test_saving_over_a_hard_linked_file_updates_every_name(built, tmp_path):
    """A rename would leave the other names with the old data: such a file is written in place."""
    tree, _ = built
    first, other = tmp_path / "first.npz", tmp_path / "other.npz"
    first.write_bytes(b"old")
    os.link(first, other)
    tree.save(first)
    assert ct.load(other).same_as(tree) and first.stat().st_ino == other.stat().st_ino


def test_a_write_protected_file_is_not_replaced(built, tmp_path, monkeypatch):
    """A rename needs the directory's permission, not the file's: a file the user protected was replaced.
    (Root may write anything, so the protection is what os.access reports, as for any other user.)"""
    tree, _ = built
    kept = tmp_path / "kept.npz"
    kept.write_bytes(b"keep me")
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda p, mode: False if Path(p) == kept else real_access(p, mode))
    with pytest.raises(InvalidInputError, match="the file is not writable"):
        tree.save(kept)
    from covertreex.npz import write_arrays

    with pytest.raises(PermissionError, match="the file is not writable: '.*kept.npz'"):
        write_arrays(kept, {"x": np.zeros(1)})
    assert kept.read_bytes() == b"keep me"


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full")
def test_a_save_that_fails_names_the_path(built, tmp_path):
    """A write error was NumPy's bare '[Errno 28] No space left on device', naming no file."""
    tree, _ = built
    full = tmp_path / "full.npz"
    full.symlink_to("/dev/full")
    with pytest.raises(OSError, match="No space left on device: '.*full.npz'"):
        tree.save(full)


def test_a_tree_file_that_cannot_be_opened_raises_what_open_raises(tmp_path):
    """A missing path is a FileNotFoundError (Python's own, naming the path), not a 'corrupt' file."""
    with pytest.raises(FileNotFoundError, match="missing.npz") as caught:
        ct.load(tmp_path / "missing.npz")
    assert not isinstance(caught.value, CorruptFileError)
    with pytest.raises(IsADirectoryError):
        ct.load(tmp_path)


def test_hilbert_and_natural_orders_give_valid_trees_with_equal_answers(check_same):
    X = datasets.make("clustered", 700, 3, 8).points
    a = ct.CoverTree(order="natural").fit(X)
    b = ct.CoverTree(order="hilbert").fit(X)
    assert not np.array_equal(a.tree.insertion_order, b.tree.insertion_order)
    ct.validate(b.tree, b.space)
    check_same(
        b.kneighbors(indices=np.arange(0, 700, 5), k=9), a.kneighbors(indices=np.arange(0, 700, 5), k=9)
    )


def test_single_point_tree():
    fitted = ct.CoverTree(path="tree").fit([[1.0, 2.0]])
    ct.validate(fitted.tree, fitted.space)
    dist, idx = fitted.kneighbors([[1.0, 3.0]], k=1)
    assert idx.tolist() == [[0]] and dist.tolist() == [[1.0]]


def test_brute_engine_ignores_an_attached_tree(built, check_same):
    tree, space = built
    X = space.data.X
    brute = ct.CoverTree(engine="brute").use_tree(tree, X)
    result = brute.query(indices=np.arange(10), k=4)
    assert result.telemetry["tree_digest"] is None and result.telemetry["levels"] == []
    check_same((result.distances, result.indices),
               ct.CoverTree(path="tree").fit(X).kneighbors(indices=np.arange(10), k=4))


def test_gold_builds_are_compiled_to_release_the_gil():
    from covertreex.engines.gold.batch import _rounds
    from covertreex.engines.gold.build import insert_range

    assert insert_range.targetoptions.get("nogil") is True
    assert _rounds.targetoptions.get("nogil") is True


def test_a_built_trees_arrays_are_read_only_so_its_digest_is_taken_once():
    """Telemetry hashed the whole tree on every query (1.0 of 2.6 ms of a one-row query at N = 32,768)."""
    from covertreex.digest import array_digest

    X = np.random.default_rng(4).normal(size=(300, 3))
    tree = ct.CoverTree(metric="euclidean", path="tree").fit(X).tree
    for name in ("levels", "parents", "child_offsets", "children", "radius", "insertion_order", "is_copy",
                 "subtree_min"):
        assert not getattr(tree, name).flags.writeable, name
    expected = array_digest(np.array([tree.root]), tree.levels, tree.parents, tree.child_offsets,
                            tree.children, tree.radius)
    assert tree.digest == expected and tree.digest is tree.digest


def test_a_cover_tree_says_what_it_is():
    """It printed as '<covertreex.api.CoverTree object at 0x...>' (an outside user's trial)."""
    model = ct.CoverTree(engine="gold", metric="residual", path="tree", threads=1)
    assert repr(model) == "CoverTree(engine='gold', metric='residual', threads=1, path='tree'; not fitted)"
    model.fit(np.random.default_rng(0).normal(size=(50, 2)), m=8)
    assert repr(model).endswith("; fitted on 50 x 2, tree built)")
    assert repr(ct.CoverTree(engine="brute")) == "CoverTree(engine='brute', metric='euclidean'; not fitted)"
    assert repr(ct.CoverTree(engine="gold", preset="residual_parity")).startswith(
        "CoverTree(engine='gold', metric='residual', preset='residual_parity', ")
