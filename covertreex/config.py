"""Every configuration knob, declared once as a field of the immutable per-call :class:`Config`.

A call reads its options once into a :class:`Config`; engines only ever see that object. Unknown knob names
and bad values are errors that name the knob. Presets (see :mod:`covertreex.presets`) are just named sets of
these knobs.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from functools import cached_property
from typing import Any

from covertreex.errors import InvalidInputError, unknown_name
from covertreex.resources import available_cpus
from covertreex.scalars import as_bool, as_int


@dataclass(frozen=True)
class Knob:
    """One configuration option: its default, the values it accepts and why it exists."""

    default: Any
    doc: str
    choices: tuple | None = None
    kind: type | None = None
    minimum: int | None = None
    maximum: int | Callable[[], int] | None = None
    """The largest value, or a function reading it when a value is checked (the CPUs a process may use
    change while it runs)."""
    maximum_is: str = ""
    """What the maximum stands for, said in the error."""

    def check(self, name: str, value: Any) -> Any:
        """`value` normalised (NumPy integers and booleans become plain ones), or an error naming the knob."""
        if self.choices is not None:
            if not isinstance(value, str) or value not in self.choices:
                choices = ", ".join(repr(c) for c in self.choices)
                raise InvalidInputError(f"option {name!r} must be one of {choices}, got {value!r}")
            return value
        if value is None and self.default is None:
            return None
        if self.kind is bool:
            return as_bool(value, f"option {name!r}")
        if self.kind is int:
            value = as_int(value, f"option {name!r}")
            if self.minimum is not None and value < self.minimum:
                raise InvalidInputError(f"option {name!r} must be >= {self.minimum}, got {value}")
            maximum = self.maximum() if callable(self.maximum) else self.maximum
            if maximum is not None and value > maximum:
                raise InvalidInputError(
                    f"option {name!r} must be <= {maximum} ({self.maximum_is}), got {value}")
            return value
        return value


def knob(default: Any, doc: str, **rules: Any) -> Any:
    """A :class:`Config` field that is a knob: its default, with the :class:`Knob` rules as field metadata."""
    return field(default=default, metadata={"knob": Knob(default, doc, **rules)})


BLOCK_RANGE = {"maximum": 2**31 - 1,
               "maximum_is": "2**31 - 1; a block larger than the data acts as one block of all of it"}
"""The range of every block-size knob beyond its minimum: larger values would only overflow the engines'
sizes (a gold build_block of 2**63 failed inside Numba; rust named its own argument) instead of meaning
anything."""


@dataclass(frozen=True)
class Config:
    """The resolved options of one build or query call. Each field is a knob, declared here once;
    :data:`KNOBS` is read from these fields."""

    order: str = knob(
        "natural",
        "insertion order of the build: dataset order or Hilbert-curve order",
        choices=("natural", "hilbert"),
    )
    build: str = knob(
        "auto",
        "tree build: 'sequential' insertion (the reference), 'batch' insertion (per batch, a conflict "
        "graph and a maximal independent set; parallel, same tree on any thread count), or 'auto': batch "
        "for the residual metric, sequential for Euclidean (the faster build of each, docs/benchmarks.md); "
        "trees differ, answers never do",
        choices=("auto", "sequential", "batch"),
    )
    build_block: int = knob(
        64,
        "most points per round of the batch build: larger rounds give threads more to share but cost up to "
        "block/2 conflict-pair distances per point (1 gives the sequential tree)",
        kind=int,
        minimum=1, **BLOCK_RANGE,
    )
    mode: str = knob(
        "parity",
        "rust engine mode: 'parity' follows gold's operation order bit for bit; 'perf' may reorder",
        choices=("parity", "perf"),
    )
    telemetry: bool = knob(True, "collect the work counters of every query call", kind=bool)
    threads: int | None = knob(
        None,
        "worker threads for queries, the batch build and, for raw residual points, V's construction (None: "
        "all cores), at most the CPUs this process may use (more would only add threads competing for the "
        "same cores); never changes answers",
        kind=int,
        minimum=1,
        maximum=available_cpus,
        maximum_is="the CPUs this process may use",
    )
    brute_variant: str = knob(
        "auto",
        "brute engine path: 'direct' canonical scan, 'gemm' blocked screening + canonical re-check, "
        "'auto' picks gemm for large inputs",
        choices=("auto", "direct", "gemm"),
    )
    gemm_block: int = knob(
        1024, "query rows per block in the brute gemm path, at most 2**22 / N of them against N points "
        "(bounds memory: ~60 bytes a query x point pair)", kind=int, minimum=1,
        **BLOCK_RANGE,
    )
    path: str = knob(
        "auto",
        "how a tree engine answers: 'tree' walks the cover tree, 'dense' screens the pairs (blocked GEMM, "
        "or the screen dense_screen names) and re-checks candidates canonically (exact, no tree), 'auto' "
        "chooses per call "
        "by the cost model of covertreex.paths, which counts the tree's build only while none exists (so "
        "after a call that built it, the same call may take the tree, with that path's counters)",
        choices=("auto", "tree", "dense"),
    )
    dense_query_block: int = knob(
        512, "query rows per dense tile (the unit of parallel work); never changes answers", kind=int,
        minimum=1, **BLOCK_RANGE,
    )
    dense_point_block: int = knob(
        2048, "point rows per dense GEMM tile (bounds memory); never changes answers", kind=int,
        minimum=1, **BLOCK_RANGE,
    )
    dense_screen: str = knob(
        "auto",
        "what screens the dense path's pairs: 'f64' the GEMM of V with a rigorous bound; 'split' an exact "
        "int8 product of a split of the residual that does not cancel (covertreex.split_screen), so only the "
        "pairs it cannot exclude are evaluated (pairs of two points it fits badly, and queries through which "
        "too many pairs come, take the GEMM): rust in perf mode, indexed residual queries of a problem "
        "residual_problem built, else an error; 'boxes' the Euclidean points packed by median cuts "
        "in boxes, each query skipping every box whose lower bound exceeds its k-th distance, so only "
        "the points of the boxes near it are evaluated: rust in perf mode, Euclidean points of at most 8 "
        "coordinates, else an error; 'auto' (the default) the boxes where they apply and cost less "
        "(covertreex.paths.boxes_pay), else the split where it applies, screens well "
        "(covertreex.split_screen.USEFUL) and is built already or repays its building "
        "(covertreex.split_screen.PAYS), else f64; never changes answers (the counters follow it)",
        choices=("auto", "f64", "split", "boxes"),
    )
    predecessor_pruning: bool = knob(
        True,
        "schedule: in predecessor mode never enter a subtree whose smallest index (Tree.subtree_min) is "
        "not eligible; never changes answers, never adds work (halves the Vecchia job's evaluations)",
        kind=bool,
    )
    child_reordering: bool = knob(
        False,
        "schedule: expand each step's frontier nodes nearest first, by the lower bound d(q, node) - "
        "radius, ties by index, so the k-th distance tightens sooner; never changes answers",
        kind=bool,
    )
    best_first: bool = knob(
        False,
        "schedule: walk best first (a priority queue of subtrees by the lower bound d(q, node) - radius, "
        "ties by index) instead of level by level, so close points fill the heap before far subtrees are "
        "checked; frontier steps then count queue pops; never changes answers",
        kind=bool,
    )
    early_stop: bool = knob(
        False,
        "schedule: end a walk after a block that yields no heap push once a guard proves every entry left "
        "prunable against the k-th distance (saves frontier entries and prune checks, costs guard checks); "
        "never changes answers",
        kind=bool,
    )
    block_sizing: bool = knob(
        False,
        "schedule: cut each level step into blocks sized from its frontier (1/8 of it, at least 4 entries; "
        "doubled after a block with no heap push, reset after one with); rust's perf mode evaluates a "
        "block's children ahead as one batch, so fewer are wasted; never changes answers",
        kind=bool,
    )
    level_cache: bool = knob(
        False,
        "schedule: reuse each frontier node's distance at every level of its children: a child whose "
        "subtree the parent's distance, less 2**(level + 1) and the child's radius, proves beyond the k-th "
        "distance is skipped unevaluated; never changes answers",
        kind=bool,
    )
    query_block: int = knob(
        64,
        "queries per block of the rust tree path (perf mode, level walk): a block, consecutive along the "
        "Hilbert curve of the query coordinates, walks the tree together and each step's dot products are "
        "one register tile of the children a node's run adds against the block's query rows, so each row "
        "of V is read once per node and step instead of once per query; 1 walks query by query; never "
        "changes answers or counters (64: 2.3-2.8x less CPU than 1 on the gold workload, 2.0x on Vecchia "
        "at N = 8,192; docs/benchmarks.md)",
        kind=int,
        minimum=1, **BLOCK_RANGE,
    )
    shared_tree: bool = knob(
        False,
        "build with the reference (gold) builder, so every engine compared queries one identical "
        "static tree and query parity is judged apart from build parity",
        kind=bool,
    )

    def __post_init__(self):
        for f in fields(self):
            object.__setattr__(self, f.name, KNOBS[f.name].check(f.name, getattr(self, f.name)))

    def __setstate__(self, state: dict) -> None:
        """Unpickling skips __post_init__: every knob is checked again (a pickle may have been altered, and
        an absurd block size would reach the engines), and the digest is made again from the values."""
        self.__dict__.update({f.name: state[f.name] for f in fields(self) if f.name in state})
        self.__post_init__()

    @classmethod
    def from_options(cls, base: Config | None = None, **options) -> Config:
        """Overlay `options` on `base` (or the defaults); unknown option names are errors."""
        for name in options:
            if name not in KNOBS:
                raise unknown_name("option", name, KNOBS)
        values = {f.name: getattr(base, f.name) for f in fields(cls)} if base else {}
        values.update(options)
        return cls(**values)

    def build_for(self, metric: str) -> str:
        """The build that `build` names for `metric`. 'auto' depends on the metric alone, never on the
        engine, so gold and rust build the same default tree. At N = 32,768 the batch build took 0.30x
        (gold) and 0.32x (rust) of the sequential build's CPU on the residual metric, and 1.0x (gold) and
        2.3x (rust) on Euclidean d = 3, where a distance is too cheap for its rounds to pay
        (benchmarks/build_study.py, docs/benchmarks.md)."""
        if self.build != "auto":
            return self.build
        return "batch" if metric == "residual" else "sequential"

    def as_dict(self) -> dict:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    def digest(self) -> str:
        """sha256 of the canonical JSON form; goes into telemetry and baselines."""
        return self._digest

    @cached_property
    def _digest(self) -> str:
        """Computed once per configuration (it is frozen): every query's telemetry asks."""
        payload = json.dumps(self.as_dict(), sort_keys=True).encode()
        return hashlib.sha256(payload).hexdigest()


KNOBS: dict[str, Knob] = {f.name: f.metadata["knob"] for f in fields(Config)}
"""Every knob by name, in declaration order (read from :class:`Config`'s fields)."""
