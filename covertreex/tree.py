"""The engine-neutral compressed cover tree: arrays any engine can query, save and load.

One node per input point (node id == dataset index). ``levels`` holds each node's level (base 2); exact
duplicates sit at :data:`DUPLICATE_LEVEL` below the copy they duplicate. Children are stored CSR, ordered by
(level descending, index ascending), so every engine walks them in the same order. ``subtree_min`` holds the
smallest dataset index under each node, which lets predecessor mode skip subtrees with no eligible index.
"""

from __future__ import annotations

import dataclasses
import errno
import math
import os
import tempfile
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import NamedTuple

import numpy as np

from covertreex import twins
from covertreex.digest import array_digest
from covertreex.errors import CorruptFileError, InputTypeError, InvalidInputError
from covertreex.interrupts import deferring
from covertreex.kinds import METRICS
from covertreex.metrics import MetricSpace
from covertreex.metrics.data import read_only
from covertreex.npz import opened, read_arrays, write_arrays
from covertreex.resources import limited_threads, require_sane_numba_threads

FORMAT_VERSION = 2
"""Version 2 added ``subtree_min``; a version 1 file is refused (rebuild the tree and save it again)."""
DTYPES = {
    "levels": np.dtype(np.int64),
    "parents": np.dtype(np.int64),
    "child_offsets": np.dtype(np.int64),
    "children": np.dtype(np.int64),
    "radius": np.dtype(np.float64),
    "insertion_order": np.dtype(np.int64),
    "is_copy": np.dtype(np.bool_),
    "subtree_min": np.dtype(np.int64),
}
"""Every array of a tree and its dtype, in the order of the :class:`Tree` fields (and of a saved file).

The checks and kernels over these arrays (:mod:`covertreex.tree_checks`, :mod:`covertreex.tree_structure`,
:mod:`covertreex.levels`) are Numba code, imported by the functions below that use them, and what a build
needs of them has a rust twin (:mod:`covertreex.twins`): a rust job that builds its tree never loads Numba
(:func:`load` checks a saved tree with Numba code)."""
_ARRAYS = tuple(DTYPES)
_SCALARS = ("format_version", "root", "metric", "space_digest")


class TreeArrays(NamedTuple):
    """The tree as Numba sees it."""

    root: int
    root_level: int
    n_slots: int
    levels: np.ndarray
    child_offsets: np.ndarray
    children: np.ndarray
    radius: np.ndarray
    is_copy: np.ndarray
    subtree_min: np.ndarray


@dataclass(frozen=True, eq=False)
class Tree:
    """A built cover tree over the points of one metric space (identified by `space_digest`)."""

    root: int
    levels: np.ndarray = field(repr=False)
    parents: np.ndarray = field(repr=False)
    child_offsets: np.ndarray = field(repr=False)
    children: np.ndarray = field(repr=False)
    radius: np.ndarray = field(repr=False)
    insertion_order: np.ndarray = field(repr=False)
    is_copy: np.ndarray = field(repr=False)
    subtree_min: np.ndarray = field(repr=False)
    metric: str
    space_digest: str
    build_evaluations: int | None = None
    """Distance evaluations the build spent (a work counter for the regression gate); None when loaded."""
    source: str | None = field(default=None, repr=False)
    """The file the tree was loaded from (named in errors about it); None when built here."""

    @property
    def n_points(self) -> int:
        return self.levels.shape[0]

    @cached_property
    def level_range(self) -> tuple[int, int]:
        """(highest, lowest) level among nodes that are not duplicates (read once: every query's walk and
        telemetry ask, and the arrays are read-only)."""
        from covertreex.level_constants import DUPLICATE_LEVEL

        real = self.levels[self.levels != DUPLICATE_LEVEL]
        return int(real.max()), int(real.min())

    @property
    def level_slots(self) -> list:
        """Telemetry row labels: every level from the root's down to the lowest, then 'duplicates'."""
        top, bottom = self.level_range
        return list(range(top, bottom - 1, -1)) + ["duplicates"]

    @cached_property
    def digest(self) -> str:
        """sha256 of the structure (root, levels, parents, children, radii): telemetry's tree_digest.
        Computed once: every query with telemetry hashed the tree anew (about 1.5 ms at N = 32,768)."""
        return array_digest(np.array([self.root]), self.levels, self.parents, self.child_offsets,
                            self.children, self.radius)

    def arrays(self) -> TreeArrays:
        """The walk's arrays, read-only (one Numba type for every tree: see :func:`read_only`)."""
        top, bottom = self.level_range
        return TreeArrays(
            self.root,
            top,
            top - bottom + 2,
            *(read_only(getattr(self, name)) for name in TreeArrays._fields[3:]),
        )

    def same_as(self, other: Tree) -> bool:
        """Identical structure and bitwise-identical radii."""
        return (
            self.root == other.root
            and all(np.array_equal(getattr(self, name), getattr(other, name)) for name in _ARRAYS)
            and np.array_equal(self.radius.view(np.int64), other.radius.view(np.int64))
        )

    def save(self, path) -> Path:
        """Write the tree to `path` and return the path written: `path` itself when it ends in .npz (in
        any letter case), else `path` + '.npz'. A directory is refused: name a file inside it. A failed
        write leaves the file that was there (see :func:`covertreex.npz.write_arrays`)."""
        path = npz_target(path, "tree")
        write_arrays(path, {
            "format_version": FORMAT_VERSION,
            "root": self.root,
            "metric": self.metric,
            "space_digest": self.space_digest,
            **{name: getattr(self, name) for name in _ARRAYS},
        })
        return path


def npz_target(path, what: str = "tree") -> Path:
    """The file an .npz write of `path` really creates: `path` itself when it ends in .npz in any letter
    case (x.NPZ was written as x.NPZ.npz, NumPy's rule for a name), else `path` + '.npz'. A directory is
    refused, naming a file inside it instead; so is a path written as a directory (a trailing separator),
    which NumPy would have turned into a file beside it."""
    path = Path(_path_text(path, what, ".npz"))
    named = path.suffix.lower() == ".npz"
    _refuse_long_name(Path(path.name + ("" if named else ".npz")), path, what)
    _refuse_directory(path, what)  # after: a stat of too long a name fails with a bare ENAMETOOLONG
    target = path if named else path.with_name(path.name + ".npz")
    _refuse_directory(target, what)
    _check_writable(target, what)
    return target


def file_target(path, what: str, suffix: str) -> Path:
    """`path` checked as a file a write or an append will create or extend (the checks of
    :func:`npz_target`, without its suffix rule), before the work whose result it is to hold."""
    path = Path(_path_text(path, what, suffix))
    _refuse_long_name(path, path, what)
    _refuse_directory(path, what, suffix)
    _check_writable(path, what)
    return path


def _path_text(path, what: str, suffix: str) -> str:
    """`path` as written (Path() would drop a trailing separator), refused when empty or when it names a
    directory that does not exist."""
    as_path(path)
    text = os.fspath(path)
    if not text.strip():
        raise InvalidInputError(f"the path to save the {what} to is empty")
    if text.endswith(("/", os.sep)) and not Path(text).is_dir():
        raise InvalidInputError(f"{text} names a directory, which does not exist; save the {what} to a file "
                                f"such as {Path(text) / (what + suffix)} in an existing directory")
    return text


def _refuse_long_name(name: Path, path: Path, what: str) -> None:
    """`name` (the file the write of `path` creates) longer than its file system takes, named as such."""
    length = len(os.fsencode(name.name))
    try:
        longest = os.pathconf(path.parent if path.parent.is_dir() else ".", "PC_NAME_MAX")
    except (OSError, ValueError):  # no limit reported: the write itself will say
        return
    if length > longest:
        raise InvalidInputError(f"cannot save the {what} to {path.parent / name}: the file name is {length} "
                                f"bytes long, and this file system takes at most {longest}")


def _refuse_directory(path: Path, what: str, suffix: str = ".npz") -> None:
    if path.is_dir():
        raise InvalidInputError(f"{path} is a directory; save the {what} to a file such as "
                                f"{path / (what + suffix)}")


def as_path(value, name: str = "path") -> Path:
    """`value` as a file path: a str or os.PathLike (bytes are refused: decode them first)."""
    if isinstance(value, bytes) or not isinstance(value, str | os.PathLike):
        raise InputTypeError(f"{name} must be a file path (str or os.PathLike), got {type(value).__name__}")
    return Path(value)


def _check_writable(target: Path, what: str) -> None:
    """Fail now if `target` cannot be written (a missing directory, no permission, a read-only or virtual
    file system), not after the work whose result it was to hold: a scratch file is created beside it
    and removed."""
    if not target.parent.is_dir():
        problem = "is a file, not a directory" if target.parent.exists() else "does not exist"
        raise InvalidInputError(f"cannot save the {what} to {target}: the directory {target.parent} "
                                f"{problem}")
    try:
        if target.exists():  # written in place: the file itself must take it
            if not os.access(target, os.W_OK):
                raise PermissionError(errno.EACCES, "the file is not writable")
            return
        with tempfile.NamedTemporaryFile(dir=target.parent, prefix=".pcct-", suffix=".probe"):
            pass
    except OSError as exc:
        raise InvalidInputError(f"cannot save the {what} to {target}: {exc.strerror or exc}") from None


def exact_copies(parents: np.ndarray, data) -> np.ndarray:
    """is_copy[c]: c's rows equal its parent's value for value (==, so 0.0 and -0.0 count as equal: they
    give the same distances bit for bit), so a query may reuse the parent's distance."""
    is_copy = np.zeros(parents.shape[0], dtype=np.bool_)
    child = np.flatnonzero(parents >= 0)
    par = parents[child]
    same = np.all(data.X[child] == data.X[par], axis=1) & (data.P[child] == data.P[par])
    child, par = child[same], par[same]
    if data.V.shape[1]:
        # Only the few pairs equal so far: gathering every row of V would copy all of V twice.
        same = np.all(data.V[child] == data.V[par], axis=1)
        child = child[same]
    is_copy[child] = True
    return is_copy


@deferring  # Numba's only where the extension is not built
def subtree_minima(root: int, offsets: np.ndarray, children: np.ndarray) -> np.ndarray:
    """Per node, the smallest dataset index in its subtree (:func:`covertreex.tree_structure.subtree_minima`,
    or its rust twin where the extension is built: the same values, and no Numba for a rust job)."""
    twin = twins.rust_twin("subtree_minima")
    if twin is not None:
        return twin(root, offsets, children)
    from covertreex import tree_structure

    return tree_structure.subtree_minima(root, read_only(offsets), read_only(children))


@deferring
def assemble(
    levels, parents, radius, insertion_order, space: MetricSpace, evaluations: int | None = None
) -> Tree:
    """Finish a build: CSR children in canonical order and the exact-copy flags, shared by all engines.
    `evaluations` is the build's distance-evaluation count, kept on the tree as a work counter."""
    n = levels.shape[0]
    roots = np.flatnonzero(parents < 0)
    if roots.shape[0] != 1:
        raise InvalidInputError(f"a build must produce exactly one root, got {roots.shape[0]}")
    root = int(roots[0])
    nonroot = np.flatnonzero(parents >= 0)
    ordered = nonroot[np.lexsort((nonroot, -levels[nonroot], parents[nonroot]))]
    counts = np.bincount(parents[nonroot], minlength=n)
    offsets = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(counts, out=offsets[1:])
    children = ordered.astype(np.int64)
    arrays = (
        levels.astype(np.int64),
        parents.astype(np.int64),
        offsets,
        children,
        radius.astype(np.float64),
        insertion_order.astype(np.int64),
        exact_copies(parents, space.data),
        subtree_minima(root, offsets, children),
    )
    for array in arrays:  # the tree's own arrays, fixed from here on (its digest is computed once)
        array.flags.writeable = False
    return Tree(root, *arrays, space.metric, space.digest, None if evaluations is None else int(evaluations))


def _scalar(path: Path, name: str, value: np.ndarray, kind: str):
    """A 0-d member of a tree file as a Python value of `kind` ('int' or 'str')."""
    wanted = np.integer if kind == "int" else np.str_
    if value.shape != () or not np.issubdtype(value.dtype, wanted):
        raise CorruptFileError(
            f"{path}: member {name!r} must be a single {kind}, got dtype {value.dtype} shape {value.shape}"
        )
    return value.item()


def _walkable_problem(tree: Tree) -> str:
    """The O(n) checks that make a tree safe for any engine to walk (see covertreex.tree_structure)."""
    from covertreex import tree_structure

    return (
        tree_structure.array_problem(tree)
        or tree_structure.structure_problem(tree)
        or tree_structure.level_problem(tree)
    )


def load(path) -> Tree:
    """Read a tree written by :meth:`Tree.save`, from `path`, or from `path` + '.npz' where `path` does not
    end in .npz and only that file exists (the name ``save`` writes for it). A damaged or foreign file raises
    CorruptFileError naming the file and its first bad entry (a path that cannot be opened, what ``open``
    raises); only trees whose structure any engine can walk are returned."""
    if isinstance(path, str) and not path:  # Path('') is '.': "Is a directory"
        raise InvalidInputError("the path of the tree to load is empty")
    path = as_path(path)
    saved_as = path.with_name(path.name + ".npz")
    if path.suffix.lower() != ".npz" and not path.exists() and saved_as.is_file():
        path = saved_as
    from covertreex import tree_structure  # Numba: as the checks below

    with opened(path) as source:  # once: a pipe opens only once
        members = read_arrays(path, _SCALARS, "covertreex tree file", source=source)
        version = _scalar(path, "format_version", members["format_version"], "int")
        if version != FORMAT_VERSION:
            raise CorruptFileError(
                f"{path}: unsupported tree format version {version} (this covertreex reads version "
                f"{FORMAT_VERSION}; rebuild the tree and save it again)"
            )
        members.update(read_arrays(path, _ARRAYS, "covertreex tree file", tree_structure.shapes_problem,
                                   source))
    metric = _scalar(path, "metric", members["metric"], "str")
    if metric not in METRICS:
        raise CorruptFileError(f"{path}: unknown metric {metric!r}; known metrics: {', '.join(METRICS)}")
    tree = Tree(
        _scalar(path, "root", members["root"], "int"),
        metric=metric,
        space_digest=_scalar(path, "space_digest", members["space_digest"], "str"),
        source=str(path),
        **{name: members[name] for name in _ARRAYS},
    )
    message = _walkable_problem(tree)
    if message:
        raise CorruptFileError(f"{path}: {message}")
    return tree


def _owned(tree: Tree) -> Tree:
    """A copy of `tree` whose arrays nobody else holds, read-only, so later changes by the caller to the
    arrays it passed can never reach a query."""
    arrays = {}
    for name in _ARRAYS:
        arr = np.array(getattr(tree, name), copy=True)
        arr.flags.writeable = False
        arrays[name] = arr
    return dataclasses.replace(tree, root=int(tree.root), **arrays)


def _require_tree(tree) -> None:
    if not isinstance(tree, Tree):
        raise InputTypeError(f"tree must be a covertreex Tree, got {type(tree).__name__}")


def checked(tree, space: MetricSpace) -> Tree:
    """An owned, read-only copy of a tree from outside, after the checks any query relies on: types,
    dtypes, ranges and structure (O(n)), exact-copy flags against the data, every node within its
    level's cover of its parent (invariant 2, one distance per node) and every radius against its
    descendants' distances (one distance per node and ancestor). Raises CorruptFileError naming the file
    for a loaded tree, InvalidInputError otherwise; the full invariants stay with :func:`validate`."""
    from covertreex import tree_checks, tree_structure

    _require_tree(tree)
    error = CorruptFileError if tree.source else InvalidInputError
    label = f"tree file {tree.source}" if tree.source else "tree"
    message = tree_structure.array_problem(tree)
    if not message:  # check the copy, so the caller cannot change what was checked
        tree = _owned(tree)
        message = _walkable_problem(tree)
    if message:
        raise error(f"{label}: {message}")
    if not _built_on(tree, space):
        raise InvalidInputError(f"{label} was built on different data or metric than the points it is used "
                                "with")
    from covertreex.engines.threads import numba_threads  # Numba, as tree_checks

    with numba_threads(limited_threads()):  # the caller's threads (CoverTree.use_tree: its knob)
        copies = tree_checks.copy_problem(tree.is_copy, tree.parents, space.data)
        message = "" if copies else tree_checks.cover_problem(tree.levels, tree.parents, space.data)
        bad = None if copies or message else tree_checks.radius_problem(tree.parents, tree.radius,
                                                                          space.data)
    if copies:
        raise error(f"{label}: {copies}")
    if message:
        raise error(f"{label}: invariant 2 (covering) violated {message}")
    if bad is not None:
        raise error(f"{label}: {bad[1]}")
    return tree


def _built_on(tree: Tree, space: MetricSpace) -> bool:
    """Whether the tree records `space`'s digest and metric (what it was built on)."""
    names = (tree.space_digest, tree.metric)
    return all(isinstance(name, str) for name in names) and names == (space.digest, space.metric)


def validate(tree: Tree, space: MetricSpace) -> None:
    """Check the four invariants of DESIGN section 4 and the exact-copy flags; raise InvalidInputError
    naming the first bad node (InputTypeError when `tree` or `space` is not one)."""
    from covertreex import tree_checks, tree_structure

    _require_tree(tree)
    if not isinstance(space, MetricSpace):
        raise InputTypeError(f"space must be a covertreex MetricSpace, got {type(space).__name__}")
    message = tree_structure.array_problem(tree)
    if message:
        raise InvalidInputError(f"tree arrays are unusable: {message}")
    n = space.n_points
    if tree.n_points != n:
        raise InvalidInputError(f"tree has {tree.n_points} nodes but the data has {n} points")
    if not _built_on(tree, space):  # its invariants would fail against these points, as if it were damaged
        raise InvalidInputError("tree was built on different data or metric than `space`")
    message = tree_structure.structure_problem(tree)
    if message:
        raise InvalidInputError(f"invariant 1 (one tree over every index) violated: {message}")
    message = tree_checks.copy_problem(tree.is_copy, tree.parents, space.data)
    if message:
        raise InvalidInputError(f"exact-copy flags wrong: {message}")
    require_sane_numba_threads()
    message = tree_checks.cover_problem(tree.levels, tree.parents, space.data)
    if message:
        raise InvalidInputError(f"invariant 2 (covering) violated {message}")
    apart = tree_checks.separation_problem(tree.levels, space.data)
    if apart is not None:
        node, other, value, bound = apart
        raise InvalidInputError(
            f"invariant 3 (separation) violated at node {node}: d(node, node {other}) = {value!r} <= "
            f"2**{int(math.log2(bound)) if bound > 0 else bound} = {bound!r} (levels "
            f"{int(tree.levels[node])} and {int(tree.levels[other])})"
        )
    bad = tree_checks.radius_problem(tree.parents, tree.radius, space.data)
    if bad is not None:
        raise InvalidInputError(f"invariant 4 (radius) violated at node {bad[0]}: {bad[1]}")
