"""The residual-correlation problem of DESIGN section 3: inducing points, V and p.

``residual_problem`` follows the design's recipe step by step (inducing set, jittered Cholesky, triangular
solve, clamped residual variance); the formulas themselves live in :mod:`covertreex.metrics.kernels`
(kernels, the distance) and :mod:`covertreex.metrics.data` (p, and V's building blocks).
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from functools import cached_property

import numpy as np

from covertreex import residual_range
from covertreex.blas import one_thread
from covertreex.digest import array_digest
from covertreex.errors import DimensionMismatchError, InputTypeError, InvalidInputError, unknown_name
from covertreex.interrupts import deferring
from covertreex.kinds import KERNELS
from covertreex.metrics.data import (
    forward_substitution,
    kernel_matrix,
    residual_variance_of_norms,
    squared_norms,
    take_rows,
)
from covertreex.scalars import as_bool, as_int, as_seed, positive_float
from covertreex.validation import as_points, dataset_indices
from covertreex.vecchia_orderings import given_permutation

JITTER = 1e-6

_REMADE = ("_coordinate_keys", "split_basis", "split_rest_estimate", "split_screen", "digest")
"""Cached attributes a pickled problem leaves out (made again on first use; the digest from the arrays
checked on arrival, never taken from the pickle)."""


def check_kernel(kernel) -> str:
    if kernel not in KERNELS:
        raise unknown_name("kernel", kernel, KERNELS)
    return kernel


def lengthscale_vector(lengthscale, n_dims: int) -> np.ndarray:
    """A scalar or one positive lengthscale per dimension, returned as a new length-d float64 vector."""
    if isinstance(lengthscale, np.ndarray) and lengthscale.ndim == 0:  # np.array(0.5): a scalar too
        lengthscale = lengthscale[()]
    if np.isscalar(lengthscale):
        return np.full(n_dims, positive_float(lengthscale, "lengthscale"))
    if isinstance(lengthscale, np.ma.MaskedArray):  # NumPy would use the masked entries' values
        raise InputTypeError("lengthscale must not be a masked array")
    array = None
    try:
        shape = np.shape(lengthscale)
        if hasattr(lengthscale, "__array__") and not isinstance(lengthscale, (list, tuple)):
            array = np.asarray(lengthscale)  # an array of any library: its dtype says what it holds
            entries = array.tolist() if array.ndim == 1 else []
        else:
            entries = list(lengthscale)  # a 0-d array entry is a number to positive_float
    except (ValueError, TypeError) as exc:
        raise InputTypeError(f"lengthscale must be a number or a sequence of numbers ({exc})") from exc
    if array is not None and array.dtype.kind not in "fiu":
        raise InputTypeError(f"lengthscale must hold real numbers, got dtype {array.dtype}")
    if len(shape) != 1 or shape[0] != n_dims:
        raise DimensionMismatchError(
            f"lengthscale must be a scalar or have one entry per dimension ({n_dims}), got shape {shape}"
        )
    # each entry as a scalar lengthscale is checked: a string, a bool or a complex number is refused
    # here too, not converted by NumPy ("0.5", True as 1.0, 1+1j cut to its real part)
    return np.array([positive_float(entry, f"lengthscale[{i}]") for i, entry in enumerate(entries)])


def _frozen(*arrays: np.ndarray) -> None:
    for arr in arrays:
        arr.flags.writeable = False


def residual_variance(V: np.ndarray, variance: float, name: str = "V") -> np.ndarray:
    """p_i = max(s2 - ||V_i||^2, 1e-9), the squared norm summed over columns in order; rows of V
    (called `name` in errors) outside the accepted range (:mod:`covertreex.residual_range`) are refused."""
    norms = squared_norms(V)
    residual_range.check_v_norms(norms, name)
    return residual_variance_of_norms(norms, variance)


def _inducing_parameters(m, seed) -> tuple[int, int]:
    m = as_int(m, "m")
    if m < 1:
        raise InvalidInputError(f"m (number of inducing points) must be >= 1, got {m}")
    return m, as_seed(seed)


def check_parameters(n_dims: int, *, kernel, lengthscale, variance, m, seed) -> None:
    """Check the parameters :func:`residual_problem` takes as it checks them, for a caller that holds them
    unused (the scikit-learn estimator under the Euclidean metric): a bad value is an error there too,
    not a setting silently ignored."""
    check_kernel(kernel)
    lengthscale_vector(lengthscale, n_dims)
    residual_range.check_variance(positive_float(variance, "variance"))
    _inducing_parameters(m, seed)


def _parameters(X, kernel, lengthscale, variance, owned: bool = True) -> tuple[np.ndarray, str, np.ndarray,
                                                                            float]:
    """X (an owned copy, unless `owned` is False: X itself where it is already C-contiguous float64) and
    the checked kernel parameters, all inside the accepted range."""
    X = as_points(X, "X", owned=owned)
    kernel = check_kernel(kernel)
    variance = residual_range.check_variance(positive_float(variance, "variance"))
    ls = lengthscale_vector(lengthscale, X.shape[1])
    residual_range.check_coordinates(X, ls, "X")
    return X, kernel, ls, variance


@dataclass(frozen=True)
class ResidualProblem:
    """Coordinates, kernel and the low-rank factor V (N x m) with residual variances p.

    Made by :func:`residual_problem` (V built from X) or :meth:`from_arrays` (V given), which check the
    arrays, keep read-only copies and derive p from V; calling the class itself is refused, since arrays
    it did not check (a negative p, a V the caller still writes to) would give wrong answers silently.
    """

    X: np.ndarray = field(repr=False)
    V: np.ndarray = field(repr=False)
    p: np.ndarray = field(repr=False)
    kernel: str
    lengthscale: np.ndarray = field(repr=False)
    variance: float
    inducing: np.ndarray | None = field(default=None, repr=False)
    cholesky_factor: np.ndarray | None = field(default=None, repr=False)
    seed: int | None = None
    factor_of_kernel: bool = True
    """Whether V is known to be a low-rank factor of the kernel (K - V V^T positive semi-definite), which
    makes the residual distance a metric, so a cover tree may prune with the triangle inequality: always
    when :func:`residual_problem` built V; for a V given to :meth:`from_arrays`, only when its caller says
    so. Brute force and the dense path are exact for any V."""

    def __post_init__(self):
        raise InputTypeError(
            "ResidualProblem(...) is not a constructor: use covertreex.residual_problem(X, ...) to build V "
            "from X, or ResidualProblem.from_arrays(X, V, ...) to wrap a V computed elsewhere (both check "
            "and copy the arrays and derive p from V)"
        )

    @classmethod
    def _of_frozen(cls, X, V, p, kernel, lengthscale, variance, inducing=None, cholesky_factor=None,
                   seed=None, factor_of_kernel=True) -> ResidualProblem:
        """An instance holding arrays this module has checked and made read-only (bypasses the refusal)."""
        problem = object.__new__(cls)
        values = (X, V, p, kernel, lengthscale, variance, inducing, cholesky_factor, seed, factor_of_kernel)
        for spec, value in zip(fields(cls), values, strict=True):
            object.__setattr__(problem, spec.name, value)
        return problem

    def __getstate__(self) -> dict:
        """Everything but what is made again on first use: the coordinate keys (a second copy of X) and
        the split screen (an int8 copy of Z)."""
        return {name: value for name, value in self.__dict__.items() if name not in _REMADE}

    def __setstate__(self, state: dict) -> None:
        """A pickle is bytes anyone may have altered, and its arrays arrive writeable: the state is checked
        as :meth:`from_arrays` checks its arguments (:func:`_checked_state`) and its arrays made read-only
        again. Unchecked, an altered p (negated) made gold drop every neighbour without an error, and rows of
        X cut short answered over those rows alone. A problem pickled before ``factor_of_kernel`` existed
        is a factor only if this module built its V (it then kept the Cholesky factor)."""
        state = {name: value for name, value in state.items() if name not in _REMADE}
        state.setdefault("factor_of_kernel", state.get("cholesky_factor") is not None)
        self.__dict__.update(_checked_state(state))
        _frozen(*(value for value in self.__dict__.values() if isinstance(value, np.ndarray)))

    @property
    def n_points(self) -> int:
        return self.X.shape[0]

    def permuted(self, order: np.ndarray) -> ResidualProblem:
        """This problem with its rows in `order` (a permutation of every row, checked): the same inducing
        points (renumbered) and Cholesky factor, so every distance between two points is unchanged bit for
        bit; and its split screen's rows in that order, if it is built (each row's are that point's own)."""
        order = given_permutation(order, self.n_points, "order", names=False)
        where = np.empty_like(order)
        where[order] = np.arange(order.shape[0])
        X, V, p = self.X[order], take_rows(self.V, order), self.p[order]
        inducing = None if self.inducing is None else where[self.inducing]
        _frozen(*(arr for arr in (X, V, p, inducing) if arr is not None))
        permuted = ResidualProblem._of_frozen(X, V, p, self.kernel, self.lengthscale, self.variance, inducing,
                                              self.cholesky_factor, self.seed, self.factor_of_kernel)
        split = self.__dict__.get("split_screen")
        if split is not None:  # made here for these very arrays: adopt_split_screen's checks would hold
            from covertreex.split_screen import source_of

            vars(permuted)["split_screen"] = split.permuted(order, source_of(X, p))
        return permuted

    @cached_property
    def _coordinate_keys(self) -> tuple[np.ndarray, np.ndarray]:
        """(the distinct rows of X as byte keys, sorted; the first point holding each), made on first use."""
        keys, first = np.unique(_row_keys(self.X), return_index=True)
        return keys, first.astype(np.int64)

    def points_at(self, Q: np.ndarray) -> np.ndarray:
        """For each row of Q, the first point whose coordinates equal it (as numbers), else -1. Such a row
        is that point: projected anew it would come out of a solve in another operation order, up to 1e-4
        from itself in distance, and could rank behind a near-duplicate."""
        keys, first = self._coordinate_keys
        wanted = _row_keys(self._query_points(Q))
        at = np.minimum(np.searchsorted(keys, wanted), len(keys) - 1)
        return np.where(keys[at] == wanted, first[at], -1).astype(np.int64)

    def _query_points(self, Q) -> np.ndarray:
        """Q checked as query coordinates of this problem (:func:`as_points`, one column per dimension of
        X): a public method given a 1-D row, a list or another dimension failed with NumPy's errors."""
        Q = as_points(Q, "queries")
        if Q.shape[1] != self.X.shape[1]:
            raise DimensionMismatchError(f"queries have {Q.shape[1]} columns but the problem's points have "
                                         f"{self.X.shape[1]}")
        return Q

    @cached_property
    def split_screen(self):
        """The split screen of this problem (covertreex.split_screen), or None where it cannot be had;
        made on first use, by the dense path of an engine that asks for it."""
        from covertreex.split_screen import split_screen

        return split_screen(self)

    @cached_property
    def split_basis(self):
        """The split screen's proven certificate (covertreex.split_screen.split_basis), or None; made once,
        for the estimate and the build alike."""
        from covertreex.split_screen import split_basis

        return split_basis(self)

    @cached_property
    def split_rest_estimate(self) -> float | None:
        """The split screen's median sqrt(e/p) estimated from a sample of rows
        (covertreex.split_screen.estimated_rest), or None where there is no split screen."""
        from covertreex.split_screen import estimated_rest

        return estimated_rest(self)

    def adopt_split_screen(self, split) -> None:
        """Take `split` (this problem's :attr:`split_screen`, built in another process from the same
        arrays) unless one is built here already: a Dask worker given the client's need not build it
        again (a pickled problem leaves it out). One of another shape, or built for other points (or these in
        another order), is refused."""
        from covertreex.split_screen import SplitScreen

        if not isinstance(split, SplitScreen):
            raise InputTypeError(f"adopt_split_screen takes a covertreex.split_screen.SplitScreen, got "
                                 f"{type(split).__name__}")
        if split.q.shape != self.V.shape:
            raise InvalidInputError(f"a split screen of {split.q.shape[0]} x {split.q.shape[1]} rows of Z "
                                    f"for a problem of {self.V.shape[0]} x {self.V.shape[1]}")
        split.check_source(self.X, self.p, "adopt_split_screen")
        self.__dict__.setdefault("split_screen", split)

    @cached_property
    def digest(self) -> str:
        """Computed once: the arrays are read-only."""
        params = np.array([self.variance, *self.lengthscale])
        return array_digest(self.X, self.V, self.p, params, np.frombuffer(self.kernel.encode(), np.uint8))

    @classmethod
    def from_arrays(cls, X, V, *, kernel="rbf", lengthscale=1.0, variance=1.0,
                    factor_of_kernel: bool = False) -> ResidualProblem:
        """Wrap a V computed elsewhere (any layout is accepted; X and V are copied, read-only, once);
        p follows from V. Accepted ranges: see :mod:`covertreex.residual_range`.

        Nothing here can check that V is a low-rank factor of this kernel (that K - V V^T is positive
        semi-definite, an N x N question), and without it the residual distance is no metric: a V made
        with another lengthscale gives correlations above 1, and a cover tree pruning by the triangle
        inequality then drops true neighbours. So such a problem is answered by brute force and the dense
        path only (exact for any V; ``path='auto'`` takes the dense path, ``path='tree'`` is refused).
        ``factor_of_kernel=True`` states that V is such a factor, built as :func:`residual_problem` builds
        it with these kernel parameters; the tree is then allowed, and a row whose squared norm exceeds
        the variance (a negative residual variance, impossible for a factor) is refused."""
        X, kernel, ls, variance = _parameters(X, kernel, lengthscale, variance)
        factor_of_kernel = as_bool(factor_of_kernel, "factor_of_kernel")
        V = as_points(V, "V", owned=True, columns="m")
        if V.shape[0] != X.shape[0]:
            raise DimensionMismatchError(
                f"V must have one row per point of X ({X.shape[0]}), got {V.shape[0]}"
            )
        p = _checked_variances(V, variance, factor_of_kernel)
        _frozen(ls, p)
        return cls._of_frozen(X, V, p, kernel, ls, variance, factor_of_kernel=factor_of_kernel)

    @deferring
    def project(self, Q) -> tuple[np.ndarray, np.ndarray]:
        """V rows and p for new points Q, using the stored inducing points and Cholesky factor. Each row
        is solved on its own in a fixed operation order (:func:`forward_substitution`),
        so a point's V row, and every distance to it, is the same whatever batch it is queried in."""
        if self.cholesky_factor is None:
            raise InvalidInputError(
                "this residual problem was built from a given V, so new query coordinates cannot be "
                "projected; query by dataset index instead"
            )
        Q = self._query_points(Q)
        residual_range.check_coordinates(Q, self.lengthscale, "queries")
        U = self.X[self.inducing]
        K_qu = kernel_matrix(Q, U, self.kernel, self.lengthscale, self.variance)
        Vq = forward_substitution(self.cholesky_factor, K_qu)
        return Vq, residual_variance(Vq, self.variance, "V of the queries")


def _checked_state(state: dict) -> dict:
    """An unpickled problem's fields, checked as :meth:`ResidualProblem.from_arrays` checks its arguments
    (:func:`_checked_variances`: p must be exactly what V gives) with its inducing points and Cholesky
    factor (:func:`_checked_inducing`). The arrays that pass are kept, not copied: a Dask worker's index
    holds the same arrays in its query set, and the engine tells indexed queries by that identity. Raises
    the covertreex error naming the field. What no check of the fields can see stays trusted: that V is
    the factor of this kernel it claims to be (``factor_of_kernel``), as for any V given to from_arrays."""
    expected = {spec.name for spec in fields(ResidualProblem)}
    if set(state) != expected:
        raise InvalidInputError(f"an unpickled ResidualProblem must have the fields {sorted(expected)}, got "
                                f"{sorted(state)}")
    X, kernel, ls, variance = _parameters(state["X"], state["kernel"], state["lengthscale"],
                                          state["variance"], owned=False)
    V = state["V"]
    if not (isinstance(V, np.ndarray) and V.dtype == np.float64 and V.ndim == 2 and V.flags.c_contiguous
            and V.shape[0] == X.shape[0] and V.shape[1] >= 1):
        raise DimensionMismatchError(f"V must be a C-contiguous float64 array with one row per point of X "
                                     f"({X.shape[0]}), got {type(V).__name__} {getattr(V, 'shape', '')}")
    factor_of_kernel = as_bool(state["factor_of_kernel"], "factor_of_kernel")
    p = state["p"]
    expected_p = _checked_variances(V, variance, factor_of_kernel)
    if not (isinstance(p, np.ndarray) and p.dtype == np.float64 and np.array_equal(p, expected_p)):
        raise InvalidInputError("p of an unpickled ResidualProblem is not the residual variance its V gives")
    inducing, L = _checked_inducing(state["inducing"], state["cholesky_factor"], X.shape[0], V.shape[1])
    seed = None if state["seed"] is None else as_seed(state["seed"])
    return dict(X=X, V=V, p=p, kernel=kernel, lengthscale=ls, variance=variance, inducing=inducing,
                cholesky_factor=L, seed=seed, factor_of_kernel=factor_of_kernel)


def _checked_inducing(inducing, L, n_points: int, m: int):
    """(inducing, L) of an unpickled problem: m distinct indices of its points and their m x m Cholesky
    factor (lower triangular, positive diagonal, finite), or both None (a V given to from_arrays)."""
    if (inducing is None) != (L is None):
        raise InvalidInputError("an unpickled ResidualProblem needs both its inducing points and their "
                                "Cholesky factor, or neither")
    if inducing is None:
        return None, None
    inducing = dataset_indices(inducing, n_points, "inducing")
    values, counts = np.unique(inducing, return_counts=True)
    if (counts > 1).any():
        raise InvalidInputError(f"inducing must hold distinct indices, got {int(values[counts > 1][0])} "
                                "more than once")
    L = as_points(L, "cholesky_factor", columns="m")
    if inducing.size != m or L.shape != (m, m):
        raise DimensionMismatchError(f"V's {m} columns need {m} inducing points and an {m} x {m} Cholesky "
                                     f"factor, got {inducing.size} points and shape {L.shape}")
    if np.triu(L, 1).any() or not (np.diagonal(L) > 0).all():
        raise InvalidInputError("cholesky_factor must be lower triangular with a positive diagonal")
    return inducing, L


def _row_keys(points: np.ndarray) -> np.ndarray:
    """Each row's bytes as one comparable value: rows of equal coordinates have equal keys (-0.0 is
    made 0.0 first, the one value with two encodings)."""
    points = np.ascontiguousarray(points, dtype=np.float64) + 0.0
    return points.view(np.dtype((np.void, points.dtype.itemsize * points.shape[1]))).ravel()


FACTOR_NORM_SLACK = 1e-12
"""Relative excess of a row's squared norm over the variance that rounding can explain in a true factor
(its residual variance is at least the jitter, 1e-6 of the variance, before rounding)."""


@deferring
def _checked_variances(V: np.ndarray, variance: float, factor_of_kernel: bool) -> np.ndarray:
    """p of a V given from outside, from its squared norms computed once: for a factor of the kernel, a row
    whose squared norm exceeds the variance is refused (a negative residual variance, impossible for a
    factor), then every row outside the accepted range (:func:`residual_variance`'s check)."""
    norms = squared_norms(V)
    over = np.flatnonzero(norms > variance * (1.0 + FACTOR_NORM_SLACK)) if factor_of_kernel else ()
    if len(over):
        i = int(over[0])
        raise InvalidInputError(
            f"V row {i} has squared norm {float(norms[i])!r}, above the variance {variance!r} ({len(over)} "
            "rows are): a low-rank factor of the kernel leaves every point a residual variance >= 0, so V "
            "is not one (factor_of_kernel=True)"
        )
    residual_range.check_v_norms(norms, "V")
    return residual_variance_of_norms(norms, variance)


def _solve_rows(L, U, X, kernel: str, ls: np.ndarray, variance: float) -> np.ndarray:
    """V = (L^-1 K(U, X))^T, C-contiguous. K(X, U) in C order is K(U, X) in Fortran order (the kernel
    is symmetric bit for bit: (a - b) / l and (b - a) / l differ only in sign), so BLAS solves it in
    place, on every core (:mod:`covertreex.triangular_solve`): the same bits as solving a copy in one
    call on one BLAS thread, without the copies or the finiteness scan of two matrices that are finite
    by construction."""
    from covertreex.triangular_solve import solve_lower_rows_in_place  # SciPy: only for a residual job

    return solve_lower_rows_in_place(L, kernel_matrix(X, U, kernel, ls, variance))


def inducing_count(n_points: int, m: int) -> int:
    """How many inducing points a request of m gives: every point when m >= n_points."""
    return min(m, n_points)


def inducing_indices(n_points: int, m: int, seed: int) -> np.ndarray:
    """m distinct indices from default_rng(seed), sorted ascending; every index when m >= n_points."""
    if inducing_count(n_points, m) == n_points:
        return np.arange(n_points, dtype=np.int64)
    chosen = np.random.default_rng(seed).choice(n_points, m, replace=False)
    return np.sort(chosen).astype(np.int64)


def residual_problem(
    X, *, kernel: str = "rbf", lengthscale=1.0, variance: float = 1.0, m: int = 512, seed: int = 0
) -> ResidualProblem:
    """Build V and p exactly as DESIGN section 3 specifies (see the module docstring). X is copied
    (read-only) once. Accepted ranges of variance, lengthscale and coordinates: see
    :mod:`covertreex.residual_range` (outside them a NonFiniteError names the argument)."""
    from scipy.linalg import LinAlgError, cholesky  # here: a Euclidean job never loads SciPy

    X, kernel, ls, variance = _parameters(X, kernel, lengthscale, variance)
    m, seed = _inducing_parameters(m, seed)
    inducing = inducing_indices(X.shape[0], m, seed)
    U = X[inducing]
    Kmm = kernel_matrix(U, U, kernel, ls, variance) + JITTER * variance * np.eye(len(inducing))
    try:
        with one_thread():  # its bits would depend on the BLAS thread count (covertreex.blas)
            L = cholesky(Kmm, lower=True)
    except LinAlgError as exc:
        raise InvalidInputError(f"the inducing-point kernel matrix is not positive definite ({exc})") from exc
    V = _solve_rows(L, U, X, kernel, ls, variance)
    p = residual_variance(V, variance)
    _frozen(ls, V, p, inducing, L)
    return ResidualProblem._of_frozen(X, V, p, kernel, ls, variance, inducing, L, seed)
