"""A metric space over the indexed points, and the query sets engines search it with.

The space turns user input (coordinates, or a :class:`~covertreex.residual.ResidualProblem`) into the
:class:`~covertreex.metrics.data.MetricData` arrays every engine consumes, with the rounding slack
(defined in :mod:`covertreex.metrics.data`) that keeps pruning exact.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from functools import cached_property

import numpy as np

from covertreex import residual_range
from covertreex.digest import array_digest, query_digest
from covertreex.errors import InputTypeError, InvalidInputError, NonFiniteError, unknown_name
from covertreex.kinds import KERNELS, METRICS
from covertreex.metrics.data import (
    EUCLIDEAN,
    RBF,
    RESIDUAL,
    MetricData,
    euclidean_slack,
    read_only,
    residual_slack,
)
from covertreex.residual import ResidualProblem
from covertreex.validation import as_points, check_dims, dataset_indices

MAX_EUCLIDEAN_COORDINATE = 1e150
"""Beyond this magnitude a squared coordinate difference can overflow float64 and distances become inf."""
MIN_EUCLIDEAN_COORDINATE = 2.0**-450
"""Nonzero coordinates closer to 0 are refused. Two coordinates of at least this magnitude (or 0) differ by
a multiple of 2**-502 (the ulp of 2**-450), so a nonzero difference squares to at least 2**-1004, a normal
float64: every squared distance keeps the relative rounding error the exact pruning and the dense screen's
bounds rely on. Below it, differences squared into the subnormal range (or to 0) lost that, and engines
disagreed with the oracle on data scaled by 1e-160 (an outside user's trial, 2026-12-04)."""


def _check_magnitude(X: np.ndarray, name: str) -> None:
    magnitude = np.abs(X)
    big = magnitude > MAX_EUCLIDEAN_COORDINATE
    if big.any():
        row = int(np.argwhere(big)[0][0])
        raise NonFiniteError(
            f"{name} has coordinates beyond +/-{MAX_EUCLIDEAN_COORDINATE:g} (first at row {row}); "
            "their squared distances would overflow float64"
        )
    tiny = (magnitude < MIN_EUCLIDEAN_COORDINATE) & (magnitude > 0)
    if tiny.any():
        row = int(np.argwhere(tiny)[0][0])
        smallest, largest = float(magnitude[tiny].min()), float(magnitude.max())
        remedy = ("scale the data up by a power of two (distances scale with it) or round such coordinates "
                  "to 0")
        if largest * (MIN_EUCLIDEAN_COORDINATE / smallest) > MAX_EUCLIDEAN_COORDINATE:  # lifting the smallest
            remedy = (f"no scaling can help, since lifting the smallest ({smallest:.3g}) would take the "
                      f"largest ({largest:.3g}) beyond +/-{MAX_EUCLIDEAN_COORDINATE:g}: round such "
                      "coordinates to 0")
        raise NonFiniteError(
            f"{name} has nonzero coordinates closer to 0 than 2**-450 (~{MIN_EUCLIDEAN_COORDINATE:.2g}; "
            f"first at row {row}); their squared differences could underflow float64 and distances lose "
            f"their exactness: {remedy}"
        )


@dataclass(frozen=True)
class QuerySet:
    """Query rows for an engine: data rows, their dataset index (-1 if external) and eligibility limit.

    A query may only return dataset indices j < limit[i]; limit is n for ordinary queries and i for
    predecessor (Vecchia) queries.
    """

    data: MetricData = field(repr=False)
    rows: np.ndarray = field(repr=False)
    dataset_index: np.ndarray = field(repr=False)
    limit: np.ndarray = field(repr=False)
    predecessor: bool = False
    coordinates: bool = False
    """Given as coordinates (:meth:`MetricSpace.point_queries`; data.X holds them), not as indexed points."""

    def __post_init__(self):
        object.__setattr__(self, "data", self.data.sealed())
        for name in ("rows", "dataset_index", "limit"):
            object.__setattr__(self, name, read_only(getattr(self, name)))

    def __setstate__(self, state: dict) -> None:
        """Unpickling skips __post_init__, and pickle protocols below 5 bring arrays back writeable."""
        self.__dict__.update(state)
        self.__post_init__()

    @property
    def n_queries(self) -> int:
        return self.rows.shape[0]

    def part(self, at: np.ndarray) -> QuerySet:
        """The queries at positions `at`."""
        return replace(self, rows=self.rows[at], dataset_index=self.dataset_index[at], limit=self.limit[at])

    def eligible(self, n_points: int) -> np.ndarray:
        """How many of the `n_points` indexed points each query may return (its limit, at most them)."""
        return np.minimum(self.limit, n_points)

    def eligible_pairs(self, n_points: int) -> float:
        """The query x point pairs a search of every eligible point would screen."""
        return float(self.eligible(n_points).sum())

    def digest(self) -> str:
        """Which queries these are (:func:`covertreex.digest.query_digest`), as telemetry names them."""
        if self.coordinates:
            return query_digest("points", self.data.X)
        return query_digest("predecessor" if self.predecessor else "indices", self.dataset_index)


@dataclass(frozen=True)
class MetricSpace:
    """The indexed points under one metric."""

    metric: str
    data: MetricData = field(repr=False)
    problem: ResidualProblem | None = field(default=None, repr=False)

    def __post_init__(self):
        object.__setattr__(self, "data", self.data.sealed())

    def __getstate__(self) -> dict:
        """What the space indexes, without what was derived from it (the digest, an engine's index such as
        the packed boxes): the receiving side makes them again if it needs them."""
        return {"metric": self.metric, "data": self.data, "problem": self.problem}

    def __setstate__(self, state: dict) -> None:
        """A pickle may have been altered: the space is made again from what it indexes, its problem
        (checked as it is unpickled) or its points (checked as :meth:`euclidean` checks them), never taken
        as sent; so is its digest, which names the data in telemetry and tells a tree's data apart."""
        metric = state.get("metric")
        if metric == "residual":
            made = MetricSpace.residual(state.get("problem"))
        elif metric == "euclidean":
            made = MetricSpace.euclidean(state["data"].X)
        else:
            raise unknown_name("metric", metric, METRICS)
        self.__dict__.update(vars(made))

    @cached_property
    def digest(self) -> str:
        """The data's digest, computed on first use (a search that never names its data, such as
        vecchia_neighbors' fused pass, does not pay for hashing V)."""
        return self.problem.digest if self.problem is not None else array_digest(self.data.X)

    def derived(self, name: str, make):
        """A value an engine derives from the indexed points alone (an index of its own, such as the rust
        dense path's packed boxes), made by `make()` on first use and kept with the space, as
        functools.cached_property keeps :attr:`digest` (a pickled space is made again, without it)."""
        value = self.__dict__.get(name)
        if value is None:
            value = self.__dict__[name] = make()
        return value

    @property
    def n_points(self) -> int:
        return self.data.X.shape[0]

    @property
    def n_dims(self) -> int:
        return self.data.X.shape[1]

    @classmethod
    def euclidean(cls, points) -> MetricSpace:
        if isinstance(points, ResidualProblem):  # NumPy would see an object, "dtype object" the error
            raise InputTypeError("a ResidualProblem is indexed with metric='residual'; the Euclidean metric "
                                 "takes the points themselves (problem.X)")
        X = as_points(points, "X", owned=True)
        _check_magnitude(X, "X")
        data = MetricData(
            EUCLIDEAN,
            RBF,
            1.0,
            np.ones(X.shape[1]),
            X,
            np.zeros((X.shape[0], 0)),
            np.ones(X.shape[0]),
            euclidean_slack(X.shape[1]),
        )
        return cls("euclidean", data)

    @classmethod
    def residual(cls, problem: ResidualProblem) -> MetricSpace:
        if not isinstance(problem, ResidualProblem):
            raise InvalidInputError(
                f"the residual metric needs a ResidualProblem (see covertreex.residual_problem), "
                f"got {type(problem).__name__}"
            )
        data = _residual_data(problem, problem.X, problem.V, problem.p, float(problem.p.min()))
        return cls("residual", data, problem)

    @classmethod
    def create(cls, metric: str, data) -> MetricSpace:
        if metric == "euclidean":
            return cls.euclidean(data)
        if metric == "residual":
            return cls.residual(data)
        raise unknown_name("metric", metric, METRICS)

    def all_points(self, *, predecessor: bool = False) -> QuerySet:
        """Every indexed point as a query (predecessor mode restricts point i to indices j < i)."""
        index = np.arange(self.n_points, dtype=np.int64)
        limit = index.copy() if predecessor else np.full(self.n_points, self.n_points, dtype=np.int64)
        return QuerySet(self.data, index, index, limit, predecessor)

    def indexed_queries(self, indices) -> QuerySet:
        """Queries that are indexed points themselves (d(i, i) = 0 holds by index)."""
        idx = dataset_indices(indices, self.n_points)
        return QuerySet(self.data, idx, idx, np.full(idx.shape[0], self.n_points, dtype=np.int64))

    def check_query_range(self, Q: np.ndarray, name: str) -> None:
        """Query coordinates `Q` (float64, this space's width) within the range this metric computes
        exactly, else the NonFiniteError naming them `name`: Euclidean magnitudes (:data:`MAX_EUCLIDEAN_
        COORDINATE`, :data:`MIN_EUCLIDEAN_COORDINATE`); residual coordinates in lengthscales, as the
        projection needs them (covertreex.residual_range). A caller that took them under another name
        than 'queries' (the scikit-learn estimator's X) checks them first."""
        if self.metric == "euclidean":
            _check_magnitude(Q, name)
        else:
            residual_range.check_coordinates(Q, self.problem.lengthscale, name)

    def point_queries(self, queries) -> QuerySet:
        """Queries at coordinates. Residual: a row at an indexed point's coordinates (equal as numbers) is
        that point, answered as by its index (its V row and p, distance 0 to itself); any other row is
        projected through the problem's inducing points."""
        Q = as_points(queries, "queries")
        check_dims(Q, self.n_dims)
        n = Q.shape[0]
        at = np.full(n, -1, dtype=np.int64)
        if self.metric == "euclidean":
            self.check_query_range(Q, "queries")
            qdata = self.data._replace(X=Q, V=np.zeros((n, 0)), P=np.ones(n))
        else:
            at = self.problem.points_at(Q)
            qdata = self._residual_rows(Q, at)
        rows = np.arange(n, dtype=np.int64)
        return QuerySet(qdata, rows, at, np.full(n, self.n_points, dtype=np.int64), coordinates=True)

    def _residual_rows(self, Q: np.ndarray, at: np.ndarray) -> MetricData:
        """Residual query data: the indexed point's V row and p where `at` names one, else the projection
        (row by row, so a row's bits do not depend on which others are projected with it)."""
        problem, known = self.problem, at >= 0
        if not known.any():  # new points only: the projection itself, not a copy of it
            V, p = problem.project(Q)
        else:
            V = np.empty((Q.shape[0], problem.V.shape[1]))
            p = np.empty(Q.shape[0])
            V[known], p[known] = problem.V[at[known]], problem.p[at[known]]
            if not known.all():
                V[~known], p[~known] = problem.project(Q[~known])
        return _residual_data(problem, Q, V, p, min(float(p.min()), float(problem.p.min())))


def _residual_data(problem: ResidualProblem, X, V, p, p_min: float) -> MetricData:
    slack = residual_slack(V.shape[1], X.shape[1], problem.variance, p_min)
    return MetricData(
        RESIDUAL, KERNELS.index(problem.kernel), problem.variance, problem.lengthscale, X, V, p, slack
    )
