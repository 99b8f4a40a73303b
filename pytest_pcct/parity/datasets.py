"""k-NN problems handed to engines: indexed points (or a residual problem) plus queries, with a digest.

An engine under test receives a :class:`Problem` and k and nothing else, so any k-NN engine can be adapted:
``problem.points`` and ``problem.query_points`` are plain float64 coordinates; residual engines also read
``problem.residual``. A predecessor (Vecchia) problem queries every indexed point i in order and allows
only neighbours j < i, so rows i < k are padded with (-1, inf). :func:`make_problem` builds seeded
problems from :func:`covertreex.datasets.make` and :func:`covertreex.residual_problem`;
:class:`ProblemCache` keeps one copy per recipe for a test session.
"""

from __future__ import annotations

import hashlib
import json
import warnings
from dataclasses import dataclass, field, fields
from functools import cached_property

import numpy as np

from covertreex import datasets, residual_problem
from covertreex.digest import array_digest, query_digest
from covertreex.errors import InputTypeError, InvalidInputError, unknown_name
from covertreex.kinds import METRICS, QUERY_KINDS
from covertreex.residual import ResidualProblem
from covertreex.scalars import as_int
from covertreex.validation import as_points, check_dims, dataset_indices

CASE_QUERIES = tuple(kind for kind in QUERY_KINDS if kind != "predecessor")
"""Query kinds a problem recipe or a case names (a predecessor problem has its own flag)."""
QUERY_MODES = ("auto", *CASE_QUERIES)


def _frozen(array: np.ndarray) -> np.ndarray:
    array.setflags(write=False)
    return array


@dataclass(frozen=True, eq=False)
class Problem:
    """A k-NN question without k: indexed data and queries, identified by label and content digest.

    Exactly one of ``queries`` (new coordinates) and ``query_indices`` (indexed points as queries) is set;
    ``data_digest`` identifies the indexed data alone (engines may reuse an index built on it),
    ``query_digest`` the queries alone.
    ``predecessor``: query_indices is ``0..n-1`` and query row i may only list indices j < i.
    """

    points: np.ndarray = field(repr=False)
    queries: np.ndarray | None = field(repr=False)
    query_indices: np.ndarray | None = field(repr=False)
    residual: ResidualProblem | None = field(repr=False)
    label: str
    digest: str
    data_digest: str = field(repr=False)
    query_digest: str = field(repr=False)
    """Which queries these are (:func:`covertreex.digest.query_digest`), as covertreex's records name them."""
    predecessor: bool = False

    @property
    def metric(self) -> str:
        return "euclidean" if self.residual is None else "residual"

    @property
    def kind(self) -> str:
        """'points' (query coordinates), 'indices' (indexed points as queries) or 'predecessor'."""
        if self.predecessor:
            return "predecessor"
        return "points" if self.queries is not None else "indices"

    @property
    def n_points(self) -> int:
        return self.points.shape[0]

    @property
    def n_dims(self) -> int:
        return self.points.shape[1]

    @property
    def n_queries(self) -> int:
        return len(self.queries if self.queries is not None else self.query_indices)

    @property
    def query_points(self) -> np.ndarray:
        """Query coordinates in either mode (indexed queries are their points' own coordinates)."""
        return self.queries if self.queries is not None else self.points[self.query_indices]

    @cached_property
    def pristine_fields(self) -> dict[str, str]:
        """:meth:`field_fingerprints` as made (:func:`problem_from_arrays` asks at once)."""
        return self.field_fingerprints()

    def field_fingerprints(self) -> dict[str, str]:
        """Every field an engine is handed, its own and its residual problem's, as it holds now: an array's
        digest, any other value's repr. An engine that writes into its input (past the read-only flags, or
        with ``object.__setattr__`` on a frozen field such as ``predecessor`` or ``residual.variance``)
        changes one, and would corrupt every later test of the session."""
        values = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "residual"}
        values["residual"] = None if self.residual is None else type(self.residual).__name__
        if self.residual is not None:
            values |= {f"residual.{f.name}": getattr(self.residual, f.name) for f in fields(self.residual)}
        return {name: array_digest(value) if isinstance(value, np.ndarray) else repr(value)
                for name, value in values.items()}

    def changed_fields(self) -> list[str]:
        """The fields that differ from :attr:`pristine_fields` (empty while the problem is unchanged)."""
        pristine, now = self.pristine_fields, self.field_fingerprints()
        return [name for name in pristine.keys() | now.keys() if pristine.get(name) != now.get(name)]

    def change_told(self) -> None:
        """Note that a failure named the problem's change as it stands now (:class:`ProblemCache` warns of
        a change no failure named)."""
        object.__setattr__(self, "_told", self.field_fingerprints())

    def change_untold(self) -> bool:
        """Whether the problem changed since it was made, or since a failure last named its change."""
        return self.__dict__.get("_told", self.pristine_fields) != self.field_fingerprints()


def problem_from_arrays(
    data, *, queries=None, query_indices=None, predecessor: bool = False, label: str | None = None
) -> Problem:
    """Wrap points (Euclidean) or a ResidualProblem, and queries given as coordinates or indices, or
    (predecessor=True) every indexed point among its predecessors."""
    if not isinstance(predecessor, bool):
        raise InputTypeError(f"predecessor must be True or False, got {predecessor!r}")
    if (queries is None) + (query_indices is None) + (not predecessor) != 2:
        raise InvalidInputError("pass exactly one of queries and query_indices, or predecessor=True alone")
    residual = data if isinstance(data, ResidualProblem) else None
    points = _frozen(np.array(residual.X if residual else as_points(data, "data")))
    data_digest = residual.digest if residual else array_digest(points)
    if predecessor:
        query_indices = _frozen(np.arange(points.shape[0], dtype=np.int64))
        queried = query_digest("predecessor", query_indices)
    elif queries is not None:
        queries = _frozen(np.array(as_points(queries, "queries")))
        check_dims(queries, points.shape[1])
        queried = query_digest("points", queries)
    else:
        query_indices = _frozen(np.array(dataset_indices(query_indices, points.shape[0], "query_indices")))
        queried = query_digest("indices", query_indices)
    metric = "euclidean" if residual is None else "residual"
    digest = hashlib.sha256(f"{metric}|{data_digest}|{queried}".encode()).hexdigest()
    n_q = len(queries if queries is not None else query_indices)
    mode = " predecessor" if predecessor else ""
    label = label or f"{metric}{mode} n={points.shape[0]} d={points.shape[1]} q={n_q} {digest[:12]}"
    problem = Problem(points, queries, query_indices, residual, label, digest, data_digest, queried,
                      predecessor)
    problem.pristine_fields  # noqa: B018 (taken now: a change made before the first check is a change too)
    return problem


def _params_text(params: dict) -> str:
    return " ".join(f"{key}={params[key]}" for key in sorted(params))


def make_problem(
    kind: str = "gaussian", *, n: int = 1000, d: int = 3, seed: int = 0, metric: str = "euclidean",
    n_queries: int | None = None, queries: str = "auto", predecessor: bool = False, kernel: str = "rbf",
    lengthscale=1.0, variance: float = 1.0, m: int = 32, **kind_params,
) -> Problem:
    """A seeded problem: ``covertreex.datasets.make(kind, ...)`` points, queries and (residual) the V factor.

    queries="points" draws n + n_queries rows from the generator and holds the last n_queries out as
    query coordinates (same clusters, lattice and duplicate pool as the data); queries="indices" queries
    indexed points ``default_rng(seed + 1).choice(n, n_queries)``; "auto" is points for Euclidean and
    indices for residual problems; n_queries defaults to 64. predecessor=True queries every indexed point
    among its predecessors (n_queries is then n, and the label says queries=predecessor).
    Residual problems use ``residual_problem(points, ..., seed=seed)``.
    """
    if metric not in METRICS:
        raise unknown_name("metric", metric, METRICS)
    if queries not in QUERY_MODES:
        raise unknown_name("query mode", queries, QUERY_MODES)
    if not isinstance(predecessor, bool):
        raise InputTypeError(f"predecessor must be True or False, got {predecessor!r}")
    n, seed = as_int(n, "n"), as_int(seed, "seed")
    if n < 1:
        raise InvalidInputError(f"n must be >= 1, got {n}")
    if seed < 0:
        raise InvalidInputError(f"seed must be >= 0 (a NumPy seed), got {seed}")
    if predecessor and queries != "auto":
        raise InvalidInputError(f"predecessor=True queries every indexed point; got queries={queries!r}")
    if predecessor and n_queries not in (None, n):
        raise InvalidInputError(f"predecessor=True queries all n={n} points; got n_queries={n_queries}")
    n_queries = as_int(n if predecessor else 64 if n_queries is None else n_queries, "n_queries")
    if n_queries < 1:
        raise InvalidInputError(f"n_queries must be >= 1, got {n_queries}")
    if predecessor:
        mode = "predecessor"
    else:
        mode = queries if queries != "auto" else ("points" if metric == "euclidean" else "indices")
    extra = n_queries if mode == "points" else 0
    rows = datasets.make(kind, n + extra, d, seed, **kind_params).points
    data = rows[:n]
    params = {"n": n, "d": d, "seed": seed, "q": n_queries, "queries": mode, **kind_params}
    if metric == "residual":
        data = residual_problem(
            data, kernel=kernel, lengthscale=lengthscale, variance=variance, m=m, seed=seed
        )
        params.update(kernel=kernel, lengthscale=lengthscale, variance=variance, m=m)
    label = f"{metric} {kind} {_params_text(params)}"
    if mode == "points":
        return problem_from_arrays(data, queries=rows[n:], label=label)
    if mode == "predecessor":
        return problem_from_arrays(data, predecessor=True, label=label)
    picks = np.random.default_rng(seed + 1).choice(n, n_queries, replace=n_queries > n)
    return problem_from_arrays(data, query_indices=picks, label=label)


def _recipe_value(value) -> str:
    """A recipe argument JSON cannot hold, as a key: an array by its content (its repr rounds to 8 digits,
    so two lengthscales 1e-9 apart would share one cached problem), anything else by its repr."""
    if isinstance(value, np.ndarray) and not value.dtype.hasobject:
        return f"array {value.dtype.str} {value.shape} {array_digest(value)}"
    return repr(value)


class ProblemCache:
    """One Problem per recipe for the whole session (problems are read-only, so sharing is safe). One that
    an engine changed all the same (and failed for) is made afresh for the next test that asks: the tests
    after it failed as "changed after it was made", so which tests told which failure depended on how
    xdist shared them out (a digest of the fields per request: far cheaper than any engine's call). A
    change no failure named is told then, as a :class:`ProblemChangedWarning`."""

    def __init__(self):
        self._problems: dict[str, Problem] = {}

    def get(self, *args, **kwargs) -> Problem:
        key = json.dumps([args, kwargs], sort_keys=True, default=_recipe_value)
        problem = self._problems.get(key)
        changed = [] if problem is None else problem.changed_fields()
        if changed:
            if problem.change_untold():
                warnings.warn(ProblemChangedWarning(
                    f"pytest-pcct: {', '.join(sorted(changed))} of {problem.label} changed "
                    "after every check of it passed (something wrote into it after an engine returned, a "
                    "background thread of one, say); it is made afresh for this test"), stacklevel=2)
            problem = None
        if problem is None:
            problem = self._problems[key] = make_problem(*args, **kwargs)
        return problem


class ProblemChangedWarning(UserWarning):
    """A cached problem changed where no check saw it: after the engine calls that used it had returned.
    A warning, not a failure: the test that asks for it next did not change it, and which test that is
    depends on how pytest-xdist shares the tests out; ``-W error::pytest_pcct.parity.datasets.
    ProblemChangedWarning`` makes it fail."""


@dataclass(frozen=True, eq=False)
class KnnCase:
    """A literal k-NN test case (what the Hypothesis strategies draw and regression tests spell out)."""

    points: np.ndarray
    k: int
    queries: np.ndarray | None = None
    query_indices: np.ndarray | None = None
    predecessor: bool = False
    metric: str = "euclidean"
    kernel: str = "rbf"
    lengthscale: float = 1.0
    variance: float = 1.0
    m: int = 32
    family: str = "case"

    def __post_init__(self):
        if self.metric not in METRICS:
            raise unknown_name("metric", self.metric, METRICS)
        if as_int(self.k, "k") < 1:
            raise InvalidInputError(f"k must be >= 1, got {self.k}")

    def __repr__(self) -> str:
        """A constructor call that rebuilds this case bit for bit (numpy's own repr rounds floats), so a
        shrunk Hypothesis counterexample can be pasted into a regression test as printed."""
        parts = []
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, np.ndarray):
                parts.append(f"{f.name}=np.array({value.tolist()!r})")
            elif value is not None and value != f.default:
                parts.append(f"{f.name}={value!r}")
        return f"KnnCase({', '.join(parts)})"

    def _repr_pretty_(self, printer, cycle) -> None:
        """Hypothesis prints falsifying examples with this (its dataclass printer would round arrays)."""
        printer.text(repr(self))

    @cached_property
    def problem(self) -> Problem:
        """The Problem engines answer (residual V and p computed here, with seed 0 for the inducing set)."""
        data = self.points
        if self.metric == "residual":
            data = residual_problem(
                self.points, kernel=self.kernel, lengthscale=self.lengthscale,
                variance=self.variance, m=self.m, seed=0,
            )
        label = f"generated {self.metric}{' predecessor' if self.predecessor else ''} {self.family}"
        return problem_from_arrays(
            data, queries=self.queries, query_indices=self.query_indices, predecessor=self.predecessor,
            label=label,
        )
