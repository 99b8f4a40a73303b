"""Tree files from outside (issue 16): every damaged file is refused with a covertreex error naming the file
and its first bad entry, gold and rust accept and refuse exactly the same files, and a file that is accepted
answers exactly like brute force."""

from __future__ import annotations

import dataclasses
import os
import pickle
import subprocess
import sys
import threading
import zipfile

import numpy as np
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

import covertreex as ct
from covertreex import datasets
from covertreex.errors import CorruptFileError, CovertreexError, InputTypeError, InvalidInputError
from covertreex.level_constants import DUPLICATE_LEVEL

K = 5
QUERIES = np.arange(0, 300, 7)


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """A tree over data with duplicates (so some is_copy flags are set), saved once, and its data."""
    X = datasets.make("duplicates", 300, 2, 5).points
    path = tmp_path_factory.mktemp("trees") / "good.npz"
    ct.CoverTree().fit(X).tree.save(path)
    with np.load(path) as npz:
        members = {name: npz[name] for name in npz.files}
    return path, members, X


@pytest.fixture(scope="module")
def truth(saved):
    _, _, X = saved
    return ct.CoverTree(engine="brute", brute_variant="direct").fit(X).kneighbors(indices=QUERIES, k=K)


def _write(path, members, **changed):
    np.savez(path, **{**members, **changed})
    return path


def _outcome(engine: str, path, X):
    """('error', class, message) or ('answer', indices, distances) of loading `path` and querying it."""
    try:
        model = ct.CoverTree(engine=engine).use_tree(ct.load(path), X)
        dist, idx = model.kneighbors(indices=QUERIES, k=K)
    except CovertreexError as exc:
        return ("error", type(exc).__name__, str(exc))
    return ("answer", idx.tolist(), dist.view(np.int64).tolist())


def _edited(members, name, edit):
    arr = members[name].copy()
    edit(arr)
    return arr


def _root_child(members):
    """Position in `children` of the root's first child."""
    return int(members["child_offsets"][int(members["root"])])


def _first_parent(members):
    """A node with children, other than the root."""
    off = members["child_offsets"]
    root = int(members["root"])
    return next(i for i in range(len(off) - 1) if i != root and off[i + 1] > off[i])


def _corruptions(members):
    """name -> (changed members, text the error must contain)."""
    root = int(members["root"])
    n = members["levels"].shape[0]
    copy = int(np.flatnonzero(members["is_copy"])[0])
    not_copy = int(np.flatnonzero(~members["is_copy"] & (members["parents"] >= 0))[0])
    pos = _root_child(members)
    parent = _first_parent(members)

    def set_at(name, index, value):
        return {name: _edited(members, name, lambda a: a.__setitem__(index, value))}

    def raw_bool(index, byte):
        flags = members["is_copy"].copy()
        flags.view(np.uint8)[index] = byte
        return {"is_copy": flags}

    return {
        "child 10**6": (set_at("children", 3, 10**6), "children[3] = 1000000 is out of range"),
        "child -5": (set_at("children", 3, -5), "children[3] = -5 is out of range"),
        "offset 10**6": (set_at("child_offsets", 5, 10**6), "child_offsets"),
        "root 10**6": ({"root": np.int64(10**6)}, "root = 1000000"),
        "root shape (2,)": ({"root": np.array([root, root])}, "member 'root' must be a single int"),
        "moved root": ({"root": np.int64(members["children"][pos])}, "expected exactly one root"),
        "repeated child": (set_at("children", pos + 1, members["children"][pos]), "is listed"),
        "float levels": ({"levels": members["levels"].astype(np.float64)}, "levels has dtype float64"),
        "string radius": ({"radius": members["radius"].astype(str)}, "radius has dtype <U"),
        "huge level": (set_at("levels", not_copy, 2**62), f"levels[{not_copy}] = {2**62}"),
        "bool byte 2": (raw_bool(copy, 2), f"is_copy[{copy}] holds the byte 2"),
        "bool byte 5": (raw_bool(not_copy, 5), f"is_copy[{not_copy}] holds the byte 5"),
        "radius -1": (set_at("radius", root, -1.0), f"radius[{root}] = -1.0"),
        "radius nan": (set_at("radius", root, np.nan), f"radius[{root}] = nan"),
        "root radius 0": (set_at("radius", root, 0.0), f"radius[{root}] = 0.0 < d(node {root}"),
        "all radii 0": ({"radius": np.zeros(n)}, "radius["),
        "is_copy forced true": (set_at("is_copy", not_copy, True), f"is_copy[{not_copy}] is true"),
        "is_copy cleared": (set_at("is_copy", copy, False), f"is_copy[{copy}] is false"),
        "short children": ({"children": members["children"][:-1]}, "member 'children' claims"),
        "parents as a column": ({"parents": members["parents"].reshape(-1, 1)},  # switched the shape
                                "member 'parents' has shape (300, 1), expected a 1-D array"),  # check off
        "level above parent": (set_at("levels", members["children"][pos], members["levels"][root]),
                               f"node {members['children'][pos]} at level"),
        "format 1": ({"format_version": np.int64(1)}, "unsupported tree format version 1"),
        "subtree_min above the node": (set_at("subtree_min", parent, parent + 1),
                                       f"subtree_min[{parent}] = {parent + 1} is not the smallest"),
        "metric": ({"metric": np.str_("cosine")}, "unknown metric 'cosine'"),
        # passed every check, then the level cache skipped true neighbours (an outside user's trial)
        "levels shifted down": ({"levels": np.where(members["levels"] == DUPLICATE_LEVEL, DUPLICATE_LEVEL,
                                                    members["levels"] - 1)},
                                "invariant 2 (covering) violated at node"),
    }


CASES = (
    "child 10**6", "child -5", "offset 10**6", "root 10**6", "root shape (2,)", "moved root",
    "repeated child", "float levels", "string radius", "huge level", "bool byte 2", "bool byte 5",
    "radius -1", "radius nan", "root radius 0", "all radii 0", "is_copy forced true", "is_copy cleared",
    "short children", "parents as a column", "format 1", "subtree_min above the node", "metric",
    "level above parent", "levels shifted down",
)


@pytest.mark.parametrize("case", CASES)
def test_damaged_tree_file_is_refused_alike_by_gold_and_rust(saved, tmp_path, case):
    _, members, X = saved
    changed, text = _corruptions(members)[case]
    path = _write(tmp_path / "bad.npz", members, **changed)
    gold, rust = _outcome("gold", path, X), _outcome("rust", path, X)
    assert gold == rust
    kind, cls, message = gold
    assert kind == "error" and cls == "CorruptFileError", gold
    assert "bad.npz" in message and text in message, message


def test_out_of_range_child_no_longer_crashes_the_interpreter(saved, tmp_path):
    """This file made gold read outside its arrays (exit 139); now it is an error message."""
    _, members, X = saved
    children = _edited(members, "children", lambda a: a.fill(10**6))
    path = _write(tmp_path / "crash.npz", members, children=children)
    np.save(tmp_path / "X.npy", X)
    script = (
        "import numpy as np, covertreex as ct\n"
        f"X = np.load({str(tmp_path / 'X.npy')!r})\n"
        f"tree = ct.load({str(path)!r})\n"
        "ct.CoverTree().use_tree(tree, X).kneighbors(indices=[0, 1], k=3)\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert done.returncode == 1, done.stderr
    assert "CorruptFileError" in done.stderr and "crash.npz: children[0] = 1000000" in done.stderr


def _header_claiming(path, name, shape, members):
    """Rewrite `path` with member `name`'s header claiming `shape` over the member's real data."""
    with zipfile.ZipFile(path, "w") as archive:
        for member, value in members.items():
            with archive.open(f"{member}.npy", "w") as fh:
                if member == name:
                    header = {"descr": value.dtype.str, "fortran_order": False, "shape": shape}
                    np.lib.format.write_array_header_1_0(fh, header)
                    fh.write(value.tobytes())
                else:
                    np.lib.format.write_array(fh, value)
    return path


def test_member_header_claiming_1e11_elements_is_refused_before_allocation(saved, tmp_path):
    _, members, _ = saved
    path = _header_claiming(tmp_path / "huge.npz", "levels", (10**11,), members)
    with pytest.raises(CorruptFileError, match=r"huge\.npz: member 'levels' claims shape \(100000000000,\)"):
        ct.load(path)


def test_a_member_of_compressed_zeros_out_of_proportion_is_refused_before_it_is_read(saved, tmp_path):
    """A 1 MB file whose 'levels' claimed 150 million nodes in deflated zeros (within the memory
    available) was read, 1.2 GB, before 'parents' was blamed (an outside trial); the claims are compared
    first, and the odd member named."""
    _, members, _ = saved
    path = tmp_path / "zeros.npz"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for member, value in members.items():
            with archive.open(f"{member}.npy", "w", force_zip64=True) as fh:
                if member == "levels":
                    header = {"descr": "<i8", "fortran_order": False, "shape": (20_000_000,)}
                    np.lib.format.write_array_header_1_0(fh, header)
                    for _ in range(20):
                        fh.write(bytes(8_000_000))
                else:
                    np.lib.format.write_array(fh, value)
    odd = r"zeros\.npz: member 'levels' claims 20000000 entries where the tree's other arrays hold 300 nodes"
    with pytest.raises(CorruptFileError, match=odd):
        ct.load(path)


def test_a_tree_loads_by_the_name_it_was_saved_under(saved, tmp_path):
    """save('t') writes t.npz; load('t') found no file 't'. An empty path was "Is a directory: '.'"."""
    path, _, _ = saved
    tree = ct.load(path)
    assert tree.save(tmp_path / "t") == tmp_path / "t.npz"
    assert ct.load(tmp_path / "t").same_as(tree) and ct.load(str(tmp_path / "t")).same_as(tree)
    with pytest.raises(InvalidInputError, match="the path of the tree to load is empty"):
        ct.load("")
    with pytest.raises(FileNotFoundError):
        ct.load(tmp_path / "u")


@pytest.mark.skipif(not os.path.exists("/dev/zero"), reason="a device that never ends")
def test_a_device_is_refused_not_read_until_memory_runs_out(tmp_path):
    (tmp_path / "zero.npz").symlink_to("/dev/zero")
    with pytest.raises(CorruptFileError, match="zero.npz is not a regular file or a pipe"):
        ct.load(tmp_path / "zero.npz")


@pytest.mark.timeout(120)  # a second open of the pipe waits for a writer that never comes
def test_a_tree_from_a_named_pipe_is_read_once(saved, tmp_path):
    """zipfile seeks, and a pipe cannot ("File is not a zip file"); the file was also opened twice (its
    version, then its arrays), which waits forever on a pipe."""
    path, _, _ = saved
    pipe = tmp_path / "tree.npz"
    os.mkfifo(pipe)
    writer = threading.Thread(target=pipe.write_bytes, args=(path.read_bytes(),), daemon=True)
    writer.start()
    assert ct.load(pipe).same_as(ct.load(path))
    writer.join(timeout=60)


def test_accepted_tree_is_a_read_only_copy(saved, truth, tmp_path, check_same):
    _, members, X = saved
    tree = ct.load(_write(tmp_path / "ok.npz", members))
    model = ct.CoverTree().use_tree(tree, X)
    tree.radius[:] = 0.0
    tree.children[:] = 10**6
    assert not model.tree.radius.flags.writeable
    check_same(model.kneighbors(indices=QUERIES, k=K), truth)


def test_tree_built_here_and_damaged_in_memory_is_refused_without_a_file_name(saved):
    _, _, X = saved
    tree = ct.CoverTree().fit(X).tree
    radius = tree.radius.copy()
    radius[tree.root] = 0.0
    with pytest.raises(InvalidInputError, match=rf"^tree: radius\[{tree.root}\] = 0.0 <") as info:
        ct.CoverTree().use_tree(dataclasses.replace(tree, radius=radius), X)
    assert not isinstance(info.value, CorruptFileError)


def test_a_chain_whose_levels_do_not_fall_is_refused_before_any_per_ancestor_work():
    """A path of 20,000 nodes would cost 2e8 distances to check radii along; levels that do not fall
    along it are refused first, in O(n)."""
    n = 20_000
    X = np.arange(n, dtype=float)[:, None]
    chain = ct.Tree(
        0, levels=np.zeros(n, np.int64), parents=np.arange(-1, n - 1, dtype=np.int64),
        child_offsets=np.concatenate([np.arange(n, dtype=np.int64), [n - 1]]),
        children=np.arange(1, n, dtype=np.int64), radius=np.full(n, 1e9), insertion_order=np.arange(n),
        is_copy=np.zeros(n, bool), subtree_min=np.arange(n), metric="euclidean",
        space_digest=ct.CoverTree().fit(X).space.digest,
    )
    text = r"^tree: node 1 at level 0 is not below its parent 0's level 0"
    with pytest.raises(InvalidInputError, match=text):
        ct.CoverTree().use_tree(chain, X)


@pytest.fixture(scope="module")
def fitted(saved):
    _, _, X = saved
    return ct.CoverTree().fit(X)


def test_validate_catches_wrong_copy_flags(fitted):
    tree, space = fitted.tree, fitted.space
    node = int(np.flatnonzero(~tree.is_copy & (tree.parents >= 0))[0])
    flags = tree.is_copy.copy()
    flags[node] = True
    with pytest.raises(InvalidInputError, match=rf"exact-copy flags wrong: is_copy\[{node}\] is true"):
        ct.validate(dataclasses.replace(tree, is_copy=flags), space)


@pytest.mark.parametrize(
    ("name", "value", "text"),
    [("children", 10**6, r"invariant 1 .*children\[0\] = 1000000 is out of range"),
     ("levels", 2**62, r"tree arrays are unusable: levels\[\d+\] = 4611686018427387904"),
     ("radius", -1.0, r"tree arrays are unusable: radius\[0\] = -1.0")],
)
def test_validate_raises_only_covertreex_errors(fitted, name, value, text):
    tree = fitted.tree
    arr = getattr(tree, name).copy()
    arr[0 if name != "levels" else int(tree.children[0])] = value
    with pytest.raises(InvalidInputError, match=text):
        ct.validate(dataclasses.replace(tree, **{name: arr}), fitted.space)


def test_validate_of_none_is_a_type_error(fitted):
    with pytest.raises(InputTypeError, match="tree must be a covertreex Tree, got NoneType"):
        ct.validate(None, fitted.space)
    with pytest.raises(InputTypeError, match="space must be a covertreex MetricSpace, got NoneType"):
        ct.validate(fitted.tree, None)


def test_duplicates_stay_at_the_duplicate_level(fitted):
    assert (fitted.tree.levels[fitted.tree.is_copy] == DUPLICATE_LEVEL).all()


_INTERESTING_INTS = st.sampled_from([-(2**63), -(2**31), -5, -1, 0, 1, 2, 299, 300, 301, 10**6, 2**62])
_INTERESTING_FLOATS = st.floats(allow_nan=True, allow_infinity=True) | st.sampled_from([0.0, -0.0, 1e-300])


@st.composite
def _member_damage(draw, members):
    name = draw(st.sampled_from(sorted(members)))
    arr = np.array(members[name], copy=True)
    if arr.ndim == 0 or arr.dtype.kind == "U":
        value = draw(_INTERESTING_INTS) if arr.dtype.kind == "i" else draw(st.text(max_size=8))
        return name, np.array(value, dtype=arr.dtype if arr.dtype.kind == "i" else None)
    index = draw(st.integers(0, arr.shape[0] - 1))
    if arr.dtype == np.float64:
        arr[index] = draw(_INTERESTING_FLOATS)
    elif arr.dtype == np.bool_:
        arr.view(np.uint8)[index] = draw(st.integers(0, 255))
    else:
        arr[index] = draw(_INTERESTING_INTS | st.integers(-2, arr.shape[0] + 2))
    return name, arr


@settings(max_examples=120, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_fuzzed_tree_files_give_an_error_or_the_exact_answer(saved, truth, tmp_path_factory, data):
    path, members, X = saved
    target = tmp_path_factory.mktemp("fuzz") / "fuzzed.npz"
    if data.draw(st.booleans(), label="byte-level"):
        raw = bytearray(path.read_bytes())
        for _ in range(data.draw(st.integers(1, 4), label="bytes")):
            raw[data.draw(st.integers(0, len(raw) - 1))] = data.draw(st.integers(0, 255))
        target.write_bytes(bytes(raw))
    else:
        name, value = data.draw(_member_damage(members), label="member")
        _write(target, members, **{name: value})
    outcome = _outcome("gold", target, X)
    event(outcome[0] if outcome[0] == "answer" else outcome[1])
    assert outcome == _outcome("rust", target, X)
    if outcome[0] == "answer":
        assert outcome[1] == truth[1].tolist() and outcome[2] == truth[0].view(np.int64).tolist()


@pytest.mark.parametrize("engine", ["gold", "rust"])
@pytest.mark.parametrize("field, damage, message", [
    ("children", lambda a: _set(a, 0, 10**9), r"children\[0\] = 1000000000 is out of range"),
    ("radius", lambda a: np.zeros_like(a), r"radius\[0\] = 0.0 < d\(node 0, descendant"),
])
def test_a_pickled_cover_tree_is_checked_like_an_attached_one(engine, field, damage, message):
    """An outside user's trial: the tree of an unpickled CoverTree came back writeable and unchecked, so
    children out of range crashed gold's walk (a segfault) and zeroed radii made rust drop a neighbour
    silently. It is now checked as use_tree checks a tree, and kept read-only; an unaltered one answers as
    before."""
    if not ct.engine_available(engine):
        pytest.skip(f"engine {engine} not available")
    X = datasets.gaussian(300, 3, 0)
    model = ct.CoverTree(engine=engine, path="tree").fit(X)
    expected = model.kneighbors(X[:5], k=K)
    again = pickle.loads(pickle.dumps(model))
    assert not again.built_tree.children.flags.writeable
    assert all(np.array_equal(a, b) for a, b in zip(again.kneighbors(X[:5], k=K), expected, strict=True))
    tree = model.built_tree
    model._fitted._tree = dataclasses.replace(tree, **{field: damage(getattr(tree, field))})
    with pytest.raises(InvalidInputError, match=message):
        pickle.loads(pickle.dumps(model))


def test_a_pickled_euclidean_space_is_made_again_from_its_points():
    """A space's data arrive in the pickle beside its digest: both are made again from the points, checked
    (a NaN put into the pickled data is refused, not searched)."""
    model = ct.CoverTree(metric="euclidean").fit(datasets.gaussian(300, 3, 0))
    space = model.space
    X = np.array(space.data.X)
    X[3, 1] = np.nan
    object.__setattr__(space, "data", space.data._replace(X=X))
    with pytest.raises(CovertreexError, match=r"X contains NaN or inf \(first at row 3\)"):
        pickle.loads(pickle.dumps(model))


def _set(array, at, value):
    changed = np.array(array)
    changed[at] = value
    return changed
