"""The engine-neutral compressed cover tree: arrays any engine can query, save and load.

One node per input point (node id == dataset index). ``levels`` holds each node's level (base 2); exact
duplicates sit at :data:`DUPLICATE_LEVEL` below the copy they duplicate. Children are stored CSR, ordered by
(level descending, index ascending), so every engine walks them in the same order.
"""

from __future__ import annotations

import math
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import numpy as np

from covertreex.errors import CorruptFileError, InvalidInputError
from covertreex.levels import DUPLICATE_LEVEL
from covertreex.metrics import MetricSpace

FORMAT_VERSION = 1
_ARRAYS = ("levels", "parents", "child_offsets", "children", "radius", "insertion_order", "is_copy")


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
    metric: str
    space_digest: str
    build_evaluations: int | None = None
    """Distance evaluations the build spent (a work counter for the regression gate); None when loaded."""

    @property
    def n_points(self) -> int:
        return self.levels.shape[0]

    @property
    def level_range(self) -> tuple[int, int]:
        """(highest, lowest) level among nodes that are not duplicates."""
        real = self.levels[self.levels != DUPLICATE_LEVEL]
        return int(real.max()), int(real.min())

    @property
    def level_slots(self) -> list:
        """Telemetry row labels: every level from the root's down to the lowest, then 'duplicates'."""
        top, bottom = self.level_range
        return list(range(top, bottom - 1, -1)) + ["duplicates"]

    def arrays(self) -> TreeArrays:
        top, bottom = self.level_range
        return TreeArrays(
            self.root,
            top,
            top - bottom + 2,
            self.levels,
            self.child_offsets,
            self.children,
            self.radius,
            self.is_copy,
        )

    def same_as(self, other: Tree) -> bool:
        """Identical structure and bitwise-identical radii."""
        return (
            self.root == other.root
            and all(np.array_equal(getattr(self, name), getattr(other, name)) for name in _ARRAYS)
            and np.array_equal(self.radius.view(np.int64), other.radius.view(np.int64))
        )

    def save(self, path) -> None:
        """Write the tree to `path` (.npz)."""
        np.savez(
            path,
            format_version=FORMAT_VERSION,
            root=self.root,
            metric=self.metric,
            space_digest=self.space_digest,
            **{name: getattr(self, name) for name in _ARRAYS},
        )


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
    return Tree(
        root,
        levels.astype(np.int64),
        parents.astype(np.int64),
        offsets,
        ordered.astype(np.int64),
        radius.astype(np.float64),
        insertion_order.astype(np.int64),
        _exact_copies(parents, space),
        space.metric,
        space.digest,
        None if evaluations is None else int(evaluations),
    )


def _exact_copies(parents: np.ndarray, space: MetricSpace) -> np.ndarray:
    """is_copy[c]: c's rows equal its parent's bit for bit, so a query may reuse the parent's distance."""
    data = space.data
    is_copy = np.zeros(parents.shape[0], dtype=np.bool_)
    child = np.flatnonzero(parents >= 0)
    par = parents[child]
    same = np.all(data.X[child] == data.X[par], axis=1) & (data.P[child] == data.P[par])
    if data.V.shape[1]:
        same &= np.all(data.V[child] == data.V[par], axis=1)
    is_copy[child[same]] = True
    return is_copy


def load(path) -> Tree:
    """Read a tree written by :meth:`Tree.save`; a damaged or foreign file raises CorruptFileError."""
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as npz:
            if int(npz["format_version"]) != FORMAT_VERSION:
                raise CorruptFileError(
                    f"{path}: unsupported tree format version {int(npz['format_version'])}"
                )
            arrays = {name: npz[name] for name in _ARRAYS}
            root, metric, digest = int(npz["root"]), str(npz["metric"]), str(npz["space_digest"])
    except CorruptFileError:
        raise
    except (OSError, KeyError, ValueError, zipfile.BadZipFile, EOFError) as exc:
        raise CorruptFileError(f"{path}: not a readable covertreex tree file ({exc})") from exc
    n = arrays["levels"].shape[0]
    expected = {"child_offsets": n + 1, "children": max(n - 1, 0)}
    for name, arr in arrays.items():
        if arr.ndim != 1 or arr.shape[0] != expected.get(name, n):
            raise CorruptFileError(
                f"{path}: array {name!r} has shape {arr.shape}, expected length {expected.get(name, n)}"
            )
    return Tree(root, metric=metric, space_digest=digest, **arrays)


def validate(tree: Tree, space: MetricSpace) -> None:
    """Check the four invariants of DESIGN section 4; raise InvalidInputError naming the first bad node."""
    from covertreex import tree_checks

    n = space.n_points
    if tree.n_points != n:
        raise InvalidInputError(f"tree has {tree.n_points} nodes but the data has {n} points")
    message = tree_checks.structure_problem(tree)
    if message:
        raise InvalidInputError(f"invariant 1 (one tree over every index) violated: {message}")
    code, node, other, value, bound = tree_checks.metric_problem(tree.arrays(), tree.parents, space.data)
    if code == tree_checks.OK:
        return
    lv, lo = int(tree.levels[node]), int(tree.levels[other]) if other >= 0 else None
    if code == tree_checks.COVER_LEVEL:
        raise InvalidInputError(
            f"invariant 2 (covering) violated at node {node}: level {lv} is not below its parent "
            f"{other}'s level {lo}"
        )
    if code == tree_checks.COVER_DISTANCE:
        raise InvalidInputError(
            f"invariant 2 (covering) violated at node {node}: d(node, parent {other}) = {value!r} > "
            f"2**(level+1) = {bound!r}"
        )
    if code == tree_checks.SEPARATION:
        raise InvalidInputError(
            f"invariant 3 (separation) violated at node {node}: d(node, node {other}) = {value!r} <= "
            f"2**{int(math.log2(bound)) if bound > 0 else bound} = {bound!r} (levels {lv} and {lo})"
        )
    raise InvalidInputError(
        f"invariant 4 (radius) violated at node {node}: radius {bound!r} < d(node, descendant {other}) = "
        f"{value!r}"
    )
