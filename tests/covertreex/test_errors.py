"""Bad input: one test per case, each a clear ValueError/TypeError naming the argument."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import covertreex as ct
from covertreex import datasets
from covertreex.errors import (
    DimensionMismatchError,
    InputTypeError,
    InvalidInputError,
    KOutOfRangeError,
    NonFiniteError,
    UnknownNameError,
)

X = datasets.gaussian(50, 3, 0)


@pytest.fixture(scope="module")
def fitted():
    return ct.CoverTree(path="tree").fit(X)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_points(bad):
    data = X.copy()
    data[7, 1] = bad
    with pytest.raises(NonFiniteError, match=r"X contains NaN or inf \(first at row 7\)"):
        ct.CoverTree(path="tree").fit(data)


def test_non_finite_queries(fitted):
    q = X[:3].copy()
    q[2, 0] = np.nan
    with pytest.raises(NonFiniteError, match="queries contains NaN or inf"):
        fitted.kneighbors(q, k=2)


@pytest.mark.parametrize("engine", ["gold", "brute"])
def test_coordinates_whose_squares_overflow(engine):
    data = X.copy()
    data[4, 2] = 1e155
    with pytest.raises(NonFiniteError, match=r"X has coordinates beyond \+/-1e\+150 \(first at row 4\)"):
        ct.CoverTree(path="tree", engine=engine).fit(data)
    with pytest.raises(NonFiniteError, match="queries has coordinates beyond"):
        ct.CoverTree(path="tree", engine=engine).fit(X).kneighbors(data, k=1)


@pytest.mark.parametrize("engine", ["gold", "rust", "brute"])
def test_coordinates_whose_differences_underflow(engine):
    """Data scaled by 1e-160 made the dense path return a farther neighbour than the oracle (an outside
    user's trial): nonzero coordinates below 2**-450 are refused; zeros are not."""
    data = X.copy()
    data[6, 1] = 1e-160
    with pytest.raises(NonFiniteError, match=r"X has nonzero coordinates closer to 0 than 2\*\*-450 "
                                             r"\(~3.4e-136; first at row 6\)"):
        ct.CoverTree(engine=engine).fit(data)
    with pytest.raises(NonFiniteError, match="queries has nonzero coordinates closer to 0"):
        ct.CoverTree(engine=engine).fit(X).kneighbors(data, k=1)
    with pytest.raises(NonFiniteError, match="X has nonzero coordinates closer to 0"):
        ct.vecchia_neighbors(data, 3, metric="euclidean", engine=engine)
    data[6, 1] = 0.0
    ct.CoverTree(engine=engine).fit(data)


def test_coordinates_no_scaling_can_lift_are_told_to_be_rounded():
    """A column reaching 5e-324 beside O(1) columns (an outside trial): the advice to scale the data up by
    a power of two cannot work there (2**624 would take the O(1) columns past 1e150), so it is not given."""
    data = X.copy()
    data[2, 0] = 5e-324
    told = (r"exactness: no scaling can help, since lifting the smallest \(4.94e-324\) would take the "
            r"largest \(.*\) beyond \+/-1e\+150: round such coordinates to 0$")
    with pytest.raises(NonFiniteError, match=told):
        ct.CoverTree().fit(data)
    data[2, 0] = 1e-140  # 2**-450 / 1e-140 ~ 3.4e4: the largest stays far below 1e150
    with pytest.raises(NonFiniteError, match=r"exactness: scale the data up by a power of two"):
        ct.CoverTree().fit(data)


@pytest.mark.parametrize("engine", ["gold", "rust"])
@pytest.mark.parametrize("path", ["tree", "dense"])
def test_the_smallest_accepted_coordinates_give_the_oracle_answer(engine, path):
    """Points at the lower end of the range, 2**-450 to 2**-447 with zeros and duplicates among them: the
    closest distinct pairs are 2**-502 apart, the nearest a float64 square keeps normal."""
    rng = np.random.default_rng(11)
    steps = np.where(rng.random((240, 3)) < 0.5, 1 + rng.integers(0, 4, size=(240, 3)) * 2.0**-52,
                     rng.integers(1, 9, size=(240, 3)))  # ulps of 2**-450 apart, or 2**-450 multiples
    data = rng.choice([-1.0, 1.0], size=(240, 3)) * np.ldexp(steps, -450)
    data[rng.random((240, 3)) < 0.2] = 0.0
    data[200:] = data[:40]
    for args in ({"indices": np.arange(240)}, {"predecessor": True}):
        got = ct.CoverTree(engine=engine, path=path).fit(data).kneighbors(k=7, **args)
        want = ct.CoverTree(engine="brute").fit(data).kneighbors(k=7, **args)
        assert np.array_equal(got[1], want[1])
        assert np.array_equal(got[0].view(np.int64), want[0].view(np.int64))


def test_empty_points():
    with pytest.raises(InvalidInputError, match="X must not be empty"):
        ct.CoverTree(path="tree").fit(np.empty((0, 3)))


def test_empty_queries(fitted):
    with pytest.raises(InvalidInputError, match="queries must not be empty"):
        fitted.kneighbors(np.empty((0, 3)), k=1)


def test_one_dimensional_points():
    with pytest.raises(InvalidInputError, match=r"X must be 2-D with shape \(n_points, n_dims\), got shape "
                       r"\(5,\); points of one coordinate each are shape \(n, 1\), reshape\(-1, 1\), and a "
                       r"single point \(1, d\), reshape\(1, -1\)$"):
        ct.CoverTree(path="tree").fit(np.arange(5.0))


def test_three_dimensional_points():
    with pytest.raises(InvalidInputError, match="X must be 2-D"):
        ct.CoverTree(path="tree").fit(np.zeros((4, 2, 2)))


def test_query_dimension_mismatch(fitted):
    with pytest.raises(DimensionMismatchError, match="queries have 2 columns but the tree was built on 3-D"):
        fitted.kneighbors(np.zeros((2, 2)), k=1)


@pytest.mark.parametrize("k", [0, -3])
def test_k_below_one(fitted, k):
    with pytest.raises(KOutOfRangeError, match=f"k must be >= 1, got {k}"):
        fitted.kneighbors(X[:2], k=k)


def test_k_above_n(fitted):
    with pytest.raises(KOutOfRangeError, match=r"k must be <= the number of indexed points \(50\), got 51"):
        fitted.kneighbors(X[:2], k=51)


def test_k_above_eligible_in_predecessor_mode_pads(fitted):
    dist, idx = fitted.kneighbors(k=60, predecessor=True)
    assert idx.shape == (50, 60) and (idx[:, 49:] == -1).all() and np.isinf(dist[:, 49:]).all()


@pytest.mark.parametrize("k", [2.0, "3", True])
def test_k_not_an_integer(fitted, k):
    with pytest.raises(InputTypeError, match="k must be an integer"):
        fitted.kneighbors(X[:2], k=k)


def test_integer_and_float32_input_are_converted(check_same):
    ints = datasets.lattice(60, 2, 1).astype(np.int32)
    a = ct.CoverTree(path="tree").fit(ints).kneighbors(ints[:5], k=4)
    b = ct.CoverTree(path="tree").fit(ints.astype(np.float64)).kneighbors(ints[:5].astype(np.float64), k=4)
    check_same(a, b, "int32 input")
    f32 = X.astype(np.float32)
    c = ct.CoverTree(path="tree").fit(f32).kneighbors(f32[:5], k=4)
    d = ct.CoverTree(path="tree").fit(f32.astype(np.float64)).kneighbors(f32[:5].astype(np.float64), k=4)
    check_same(c, d, "float32 input (converted exactly to float64)")


@pytest.mark.parametrize("bad", [
    np.array([["a", "b"]]), np.array([[1 + 2j, 3j]]), np.array([[True, False]]),
    np.array([[1], [2], [np.timedelta64("NaT")]], dtype="timedelta64[s]"),  # NaT was read as -9.2e18
    np.array([["2026-12-04"]], dtype="datetime64[D]"),
], ids=["str", "complex", "bool", "timedelta64", "datetime64"])
def test_non_numeric_dtypes(bad):
    with pytest.raises(InputTypeError, match="X must hold real numbers"):
        ct.CoverTree(path="tree").fit(bad)


@pytest.mark.parametrize("bad", [
    np.array([[2**53 + 1], [2**53]], dtype=np.int64),  # were rounded into duplicates at distance 0
    np.array([[2**64 - 1], [0]], dtype=np.uint64),
    np.array([[np.longdouble("0.1")], [np.longdouble("0.2")]]),
], ids=["int64", "uint64", "longdouble"])
def test_values_float64_cannot_hold_are_refused_not_rounded(bad):
    with pytest.raises(InvalidInputError, match=rf"X holds values float64 cannot represent exactly \(dtype "
                                                rf"{bad.dtype}, first at row 0\)"):
        ct.CoverTree().fit(bad)
    exact = bad.dtype.type(2**52) if bad.dtype.kind in "iu" else np.longdouble(0.5)
    ct.CoverTree().fit(np.array([[exact], [exact * 2]], dtype=bad.dtype))  # exactly representable: fine


def test_a_nan_long_double_is_named_as_nan_not_as_inexact():
    with pytest.raises(NonFiniteError, match=r"X contains NaN or inf \(first at row 0\)"):
        ct.CoverTree().fit(np.array([[np.longdouble("nan")], [np.longdouble(1)]]))


@pytest.mark.skipif(np.finfo(np.longdouble).max <= np.finfo(np.float64).max,
                    reason="long double is float64 here (Windows, macOS on arm64)")
def test_a_long_double_beyond_float64_is_named_as_such_without_a_warning():
    """1e4000 as a long double was "contains NaN or inf", after a RuntimeWarning from the cast."""
    X = np.array([[np.longdouble(1)], [np.longdouble("-1e4000")]])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(NonFiniteError, match=r"X holds -1e\+4000 at row 1, beyond float64's range"):
            ct.CoverTree().fit(X)


def test_unknown_engine():
    with pytest.raises(UnknownNameError, match="unknown engine 'silver'; known engines: brute, gold"):
        ct.CoverTree(path="tree", engine="silver")


def test_unknown_metric():
    with pytest.raises(UnknownNameError, match="unknown metric 'cosine'; known metrics: euclidean, residual"):
        ct.CoverTree(path="tree", metric="cosine")


def test_unknown_kernel():
    with pytest.raises(UnknownNameError, match="unknown kernel 'matern32'; known kernels: matern52, rbf"):
        ct.residual_problem(X, kernel="matern32")


def test_unknown_option():
    with pytest.raises(UnknownNameError, match="unknown option 'block'; known options:"):
        ct.CoverTree(block=3)


def test_bad_option_value():
    with pytest.raises(InvalidInputError, match="option 'order' must be one of 'natural', 'hilbert'"):
        ct.CoverTree(order="random")


@pytest.mark.parametrize("lengthscale", [-1.0, 0.0, [1.0, -2.0, 1.0]])
def test_non_positive_lengthscale(lengthscale):
    with pytest.raises(InvalidInputError, match="lengthscale"):
        ct.residual_problem(X, lengthscale=lengthscale)


def test_lengthscale_of_wrong_length():
    with pytest.raises(DimensionMismatchError, match=r"one entry per dimension \(3\)"):
        ct.residual_problem(X, lengthscale=[1.0, 2.0])


@pytest.mark.parametrize("variance", [-1.0, 0.0, np.inf])
def test_bad_variance(variance):
    with pytest.raises(InvalidInputError, match="variance must be positive and finite"):
        ct.residual_problem(X, variance=variance)


@pytest.mark.parametrize("m", [0, -5])
def test_m_below_one(m):
    with pytest.raises(InvalidInputError, match=r"m \(number of inducing points\) must be >= 1"):
        ct.residual_problem(X, m=m)


def test_residual_metric_needs_a_problem_or_points():
    with pytest.raises(InputTypeError, match="X must be an array of numbers"):
        ct.CoverTree(path="tree", metric="residual").fit("points.csv")


def test_residual_parameters_with_euclidean_metric():
    with pytest.raises(InvalidInputError, match="only apply when fitting raw points with metric='residual'"):
        ct.CoverTree(path="tree").fit(X, m=10)



def test_a_residual_problem_with_the_euclidean_metric_is_named():
    """It was 'X must hold real numbers ..., got dtype object'."""
    with pytest.raises(InputTypeError, match=r"^a ResidualProblem is indexed with metric='residual'"):
        ct.CoverTree().fit(ct.residual_problem(X, m=10))

@pytest.mark.parametrize("indices", [[50], [-1], [0.5]])
def test_bad_query_indices(fitted, indices):
    with pytest.raises((InvalidInputError, InputTypeError), match="^indices must"):  # not query_indices
        fitted.kneighbors(indices=indices, k=1)


def test_query_before_fit():
    with pytest.raises(InvalidInputError, match="call fit"):
        ct.CoverTree(path="tree").kneighbors(X, k=1)


def test_ambiguous_query_arguments(fitted):
    with pytest.raises(InvalidInputError, match="exactly one of"):
        fitted.kneighbors(X[:2], k=1, indices=[0])


def test_bad_dataset_kind():
    with pytest.raises(UnknownNameError, match="unknown dataset kind 'uniform'"):
        datasets.make("uniform", 10, 2, 0)


def test_errors_are_builtin_subclasses():
    assert issubclass(NonFiniteError, ValueError) and issubclass(InputTypeError, TypeError)


def test_points_without_columns_and_masked_arrays_are_named():
    """A (3, 0) array was called empty (the column message could not be reached), and a masked array's
    mask was dropped, its masked entries read as the values under them (an outside trial)."""
    with pytest.raises(InvalidInputError, match=r"X must have at least one column, got shape \(3, 0\)"):
        ct.CoverTree().fit(np.empty((3, 0)))
    masked = np.ma.masked_array([[1.0, 2.0], [3.0, 4.0]], mask=[[0, 1], [0, 0]])
    with pytest.raises(InputTypeError, match="X is a masked array with masked entries"):
        ct.CoverTree().fit(masked)
    unmasked = ct.CoverTree().fit(np.ma.masked_array([[1.0, 2.0], [3.0, 4.0]]))
    assert unmasked.kneighbors(k=1, indices=[0])[1][0, 0] == 0


def test_an_ordering_with_masked_entries_is_refused():
    """An ordering was the one array taken with its mask dropped: the masked entry's hidden value was used
    as a position (an outside review)."""
    X = np.random.default_rng(0).uniform(size=(50, 2))
    order = np.ma.masked_array(np.arange(50)[::-1], mask=np.r_[True, np.zeros(49, bool)])
    with pytest.raises(InputTypeError, match="ordering is a masked array with masked entries"):
        ct.vecchia_neighbors(X, 3, metric="euclidean", ordering=order)
    with pytest.raises(InputTypeError, match="order is a masked array with masked entries"):
        ct.residual_problem(X, m=10).permuted(order)
    unmasked = ct.vecchia_neighbors(X, 3, metric="euclidean", ordering=np.ma.masked_array(order.data))
    assert unmasked.ordering[0] == 49


def test_an_output_in_a_file_or_with_too_long_a_name_is_refused_saying_so(tmp_path):
    """'the directory f.npy does not exist' (it was a file), and a bare '[Errno 36] File name too long'
    (an outside trial)."""
    from covertreex.tree import npz_target

    (tmp_path / "f.npy").write_text("")
    with pytest.raises(InvalidInputError, match=r"the directory .*f\.npy is a file, not a directory"):
        npz_target(tmp_path / "f.npy" / "x.npz", "neighbours")
    with pytest.raises(InvalidInputError, match=r"the file name is 304 bytes long, and this file system "
                                                r"takes at most \d+"):
        npz_target(tmp_path / ("a" * 300), "neighbours")
    assert npz_target(tmp_path / "a", "neighbours") == tmp_path / "a.npz"


@pytest.mark.parametrize("value", [3, [1], b"euclidean", 2.5])
def test_a_name_that_is_not_a_str_is_a_type_error_as_well(value):
    """metric=3 was an UnknownNameError (a ValueError) while engine=3 was a TypeError (an outside trial):
    both are TypeErrors now, and still UnknownNameErrors for those who catch that."""
    with pytest.raises(UnknownNameError, match=r"metric must be a name \(str\), got") as info:
        ct.CoverTree(metric=value)
    assert isinstance(info.value, TypeError) and isinstance(info.value, InputTypeError)
    with pytest.raises(InputTypeError, match=r"kernel must be a name \(str\)"):
        ct.residual_problem(X, kernel=value, m=4)


def test_a_list_of_integers_numpy_would_round_is_refused():
    """np.asarray made [[2**63 + 5], [2**63 + 4], [0]] float64 itself: rows 0 and 1 became one point (found
    while reviewing the scikit-learn fix). Exact large values in a list are still accepted."""
    with pytest.raises(InvalidInputError, match="X holds values float64 cannot represent exactly"):
        ct.CoverTree().fit([[2**63 + 5], [2**63 + 4], [0]])
    dist, idx = ct.CoverTree().fit([[2.0**60], [0.0], [1]]).kneighbors(k=1, indices=[1])
    assert idx.tolist() == [[1]] and dist.tolist() == [[0.0]]


def test_a_query_result_does_not_unpack(fitted):
    """`d, i = tree.query(...)`, written as for scipy's cKDTree.query, took the indices for the distances
    when a result unpacked in its field order, indices first (an outside trial); kneighbors unpacks as
    scikit-learn does."""
    result = fitted.query(indices=[0, 1], k=2)
    with pytest.raises(TypeError, match=r"^a KnnResult does not unpack: read result.indices"):
        distances, indices = result
    distances, indices = fitted.kneighbors(indices=[0, 1], k=2)
    assert np.array_equal(indices, result.indices) and np.array_equal(distances, result.distances)
