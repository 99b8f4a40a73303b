"""O(n) checks of a tree's arrays, run before any engine walks a tree that came from outside.

A walk indexes ``children`` through ``child_offsets`` from ``root`` without bounds checks (Numba) and keeps
per-query scratch of one entry per node, so a wrong dtype, an out-of-range entry, a node listed twice or a
cycle must be refused first. Each function returns a message naming the first bad entry, or '' if none.
"""

from __future__ import annotations

import numbers

import numpy as np
from numba import njit

from covertreex.interrupts import deferring
from covertreex.level_constants import DUPLICATE_LEVEL, HIGHEST_LEVEL, LOWEST_LEVEL
from covertreex.metrics.data import read_only
from covertreex.tree import DTYPES


def expected_lengths(n: int) -> dict[str, int]:
    """The length of each array of a tree over n points."""
    lengths = dict.fromkeys(DTYPES, n)
    lengths.update(child_offsets=n + 1, children=max(n - 1, 0))
    return lengths


def shapes_problem(shapes: dict[str, tuple[int, ...]]) -> str:
    """The first array whose claimed shape disagrees with the others' (as :func:`expected_lengths` relates
    them), judged before any is read: the node count is the one most arrays agree on, so the odd array is
    the one named (a tree file whose 'levels' claimed 150 million nodes was read, 1.2 GB, and then
    'parents' was blamed)."""
    for name, shape in shapes.items():
        if len(shape) != 1:  # refused here too: one odd member must not switch the comparison off
            return f"member {name!r} has shape {shape}, expected a 1-D array"
    votes: dict[int, int] = {}
    for name, (length,) in shapes.items():
        n = {"child_offsets": length - 1, "children": length + 1}.get(name, length)
        votes[n] = votes.get(n, 0) + 1
    n = max(sorted(votes), key=lambda count: votes[count])
    for name, length in expected_lengths(n).items():
        if name in shapes and shapes[name][0] != length:
            return (f"member {name!r} claims {shapes[name][0]} entries where the tree's other arrays hold "
                    f"{n} nodes (it needs {length})")
    return ""


def _first(mask: np.ndarray) -> int:
    return int(np.flatnonzero(mask)[0])


def array_problem(tree) -> str:
    """Types, dtypes, shapes and the value ranges each array must respect on its own."""
    for name, dtype in DTYPES.items():
        arr = getattr(tree, name, None)
        if not isinstance(arr, np.ndarray):
            return f"{name} must be a numpy array, got {type(arr).__name__}"
        if arr.dtype != dtype:
            return f"{name} has dtype {arr.dtype}, expected {dtype}"
        if arr.ndim != 1:
            return f"{name} has shape {arr.shape}, expected a 1-D array"
    n = tree.levels.shape[0]
    if n == 0:
        return "the tree has no nodes"
    for name, length in expected_lengths(n).items():
        if getattr(tree, name).shape[0] != length:
            return f"{name} has length {getattr(tree, name).shape[0]}, expected {length} for {n} nodes"
    root = tree.root
    if isinstance(root, bool) or not isinstance(root, numbers.Integral) or not 0 <= root < n:
        return f"root = {root!r} is not a node index in [0, {n})"
    flags = tree.is_copy.view(np.uint8)
    if np.any(flags > 1):
        at = _first(flags > 1)
        return f"is_copy[{at}] holds the byte {flags[at]}, not a boolean 0 or 1"
    radius = tree.radius
    if not np.all(np.isfinite(radius) & (radius >= 0.0)):
        at = _first(~(np.isfinite(radius) & (radius >= 0.0)))
        return f"radius[{at}] = {float(radius[at])!r} is not a finite number >= 0"
    levels = tree.levels
    usable = (levels == DUPLICATE_LEVEL) | ((levels >= LOWEST_LEVEL) & (levels <= HIGHEST_LEVEL))
    if not usable.all():
        at = _first(~usable)
        return (
            f"levels[{at}] = {levels[at]} is neither in [{LOWEST_LEVEL}, {HIGHEST_LEVEL}] nor the "
            f"duplicate level {DUPLICATE_LEVEL}"
        )
    if levels[root] == DUPLICATE_LEVEL:
        return f"the root {root} is at the duplicate level"
    return ""


def _index_problem(name: str, values: np.ndarray, n: int) -> str:
    """Entries of `values` must be node indices in [0, n)."""
    bad = (values < 0) | (values >= n)
    if bad.any():
        at = _first(bad)
        return f"{name}[{at}] = {values[at]} is out of range [0, {n})"
    return ""


def _csr_problem(offsets: np.ndarray, n: int) -> str:
    if offsets[0] != 0:
        return f"child_offsets[0] = {offsets[0]}, expected 0"
    steps = np.diff(offsets)
    if np.any(steps < 0):
        at = _first(steps < 0) + 1
        return f"child_offsets[{at}] = {offsets[at]} is below child_offsets[{at - 1}] = {offsets[at - 1]}"
    if offsets[n] != n - 1:
        return f"child_offsets[{n}] = {offsets[n]}, expected {n - 1} (the number of children)"
    return ""


@njit(cache=True)
def _first_unreachable(root, offsets, children):
    """The first node a walk from the root never reaches, or -1 (indices already checked in range)."""
    n = offsets.shape[0] - 1
    seen = np.zeros(n, dtype=np.bool_)
    stack = np.empty(n, dtype=np.int64)
    seen[root] = True
    stack[0] = root
    top = 1
    while top > 0:
        top -= 1
        node = stack[top]
        for pos in range(offsets[node], offsets[node + 1]):
            child = children[pos]
            if not seen[child]:
                seen[child] = True
                stack[top] = child
                top += 1
    for node in range(n):
        if not seen[node]:
            return node
    return -1


@njit(cache=True)
def subtree_minima(root, offsets, children):
    """Per node, the smallest dataset index in its subtree, itself included (node id == dataset index):
    predecessor mode never enters a subtree whose minimum is not below the query's limit. A breadth-first
    walk lists every parent before its children, so the walk read backwards settles each node after all
    of its children. Assumes one tree over every index (see :func:`structure_problem`)."""
    n = offsets.shape[0] - 1
    walk = np.empty(n, dtype=np.int64)
    walk[0] = root
    size = 1
    for t in range(n):
        for pos in range(offsets[walk[t]], offsets[walk[t] + 1]):
            walk[size] = children[pos]
            size += 1
    minima = np.arange(n)
    for t in range(n - 1, -1, -1):
        node = walk[t]
        for pos in range(offsets[node], offsets[node + 1]):
            minima[node] = min(minima[node], minima[children[pos]])
    return minima


@deferring
def structure_problem(tree) -> str:
    """One tree over every index: a permutation as insertion order, parents and CSR children that agree,
    every node but the root listed exactly once, children ordered by (level desc, index asc), every node
    reachable from the root, and each node's subtree minimum what the structure gives. Assumes
    :func:`array_problem` found nothing."""
    n = tree.n_points
    order = tree.insertion_order
    message = _index_problem("insertion_order", order, n)
    if message:
        return message
    counts = np.bincount(order, minlength=n)
    if np.any(counts != 1):
        node = _first(counts != 1)
        return f"insertion_order is not a permutation: node {node} appears {counts[node]} times"
    parents = tree.parents
    bad = (parents < -1) | (parents >= n) | (parents == np.arange(n))
    if bad.any():
        return f"node {_first(bad)} has invalid parent {parents[_first(bad)]}"
    roots = np.flatnonzero(parents == -1)
    if roots.size != 1 or roots[0] != tree.root:
        return f"expected exactly one root (node {tree.root}), found roots {roots[:5].tolist()}"
    offsets, children = tree.child_offsets, tree.children
    message = _csr_problem(offsets, n) or _index_problem("children", children, n)
    if message:
        return message
    owner = np.repeat(np.arange(n), np.diff(offsets))
    wrong = parents[children] != owner
    if wrong.any():
        c = children[_first(wrong)]
        return f"node {c} is listed as a child of node {owner[_first(wrong)]} but its parent is {parents[c]}"
    listed = np.bincount(children, minlength=n)
    listed[tree.root] += 1
    if np.any(listed != 1):
        node = _first(listed != 1)
        return f"node {node} is listed {listed[node] - (node == tree.root)} times as a child"
    lv = tree.levels[children]
    same = owner[:-1] == owner[1:]
    ordered = (lv[:-1] > lv[1:]) | ((lv[:-1] == lv[1:]) & (children[:-1] < children[1:]))
    if np.any(same & ~ordered):
        return f"children of node {owner[_first(same & ~ordered)]} are not ordered by (level desc, index asc)"
    offsets, children = read_only(offsets), read_only(children)
    lost = _first_unreachable(tree.root, offsets, children)
    if lost >= 0:
        return f"node {lost} is not reachable from the root"
    wrong = tree.subtree_min != subtree_minima(tree.root, offsets, children)
    if wrong.any():
        node = _first(wrong)
        return (f"subtree_min[{node}] = {tree.subtree_min[node]} is not the smallest index in the subtree of "
                f"node {node}")
    return ""


def level_problem(tree) -> str:
    """Every child's level is below its parent's (the level half of invariant 2). Levels lie in a range of
    ~2,100, so this bounds every path and keeps per-ancestor checks and walks linear. Assumes
    :func:`structure_problem` found nothing."""
    child = np.flatnonzero(tree.parents >= 0)
    parent = tree.parents[child]
    bad = tree.levels[child] >= tree.levels[parent]
    if bad.any():
        c, p = int(child[_first(bad)]), int(parent[_first(bad)])
        return f"node {c} at level {tree.levels[c]} is not below its parent {p}'s level {tree.levels[p]}"
    return ""
