"""The residual problem: V and p recomputed independently, layout independence, projection."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
from scipy.linalg import cho_factor, cho_solve

import covertreex as ct
from covertreex import datasets
from covertreex.errors import (
    DimensionMismatchError,
    InputTypeError,
    InvalidInputError,
    NonFiniteError,
    UnknownNameError,
)


def _independent_v_and_p(X, kernel, lengthscale, variance, m, seed):
    """The DESIGN section 3 recipe, written separately from the library (different solver and layout)."""
    n = X.shape[0]
    chosen = np.arange(n) if m >= n else np.sort(np.random.default_rng(seed).choice(n, m, replace=False))
    scaled = X / np.broadcast_to(lengthscale, (X.shape[1],))
    U = scaled[chosen]
    r2_ux = ((U[:, None, :] - scaled[None, :, :]) ** 2).sum(axis=2)
    r2_uu = ((U[:, None, :] - U[None, :, :]) ** 2).sum(axis=2)

    def k(r2):
        if kernel == "rbf":
            return variance * np.exp(-0.5 * r2)
        a = np.sqrt(5.0 * r2)
        return variance * (1.0 + a + a**2 / 3.0) * np.exp(-a)

    Kmm = k(r2_uu) + 1e-6 * variance * np.eye(len(chosen))
    Kux = k(r2_ux)
    # V V^T = Kxu Kmm^-1 Kux, and V = (L^-1 Kux)^T with L the lower Cholesky factor
    L = np.linalg.cholesky(Kmm)
    V = np.linalg.solve(L, Kux).T
    p = np.maximum(variance - np.einsum("ij,ij->i", V, V), 1e-9)
    quad = np.einsum("ij,ji->i", Kux.T, cho_solve(cho_factor(Kmm, lower=True), Kux))
    return chosen, V, p, quad


@pytest.mark.parametrize("kernel", ["rbf", "matern52"])
@pytest.mark.parametrize("lengthscale", [0.8, "per-dim"])
def test_v_and_p_match_an_independent_computation(kernel, lengthscale):
    X = datasets.gaussian(300, 3, 11)
    ls = np.array([0.6, 1.0, 1.7]) if lengthscale == "per-dim" else lengthscale
    problem = ct.residual_problem(X, kernel=kernel, lengthscale=ls, variance=1.7, m=40, seed=5)
    chosen, V, p, quad = _independent_v_and_p(X, kernel, ls, 1.7, 40, 5)
    assert problem.inducing.tolist() == chosen.tolist()
    np.testing.assert_allclose(problem.V, V, rtol=0, atol=1e-12)
    np.testing.assert_allclose(problem.p, p, rtol=0, atol=1e-12)
    np.testing.assert_allclose((problem.V**2).sum(axis=1), quad, rtol=0, atol=1e-9)
    assert problem.V.flags.c_contiguous and problem.V.dtype == np.float64


def test_all_points_are_inducing_when_m_exceeds_n():
    problem = ct.residual_problem(datasets.gaussian(10, 2, 0), m=50, seed=0)
    assert problem.inducing.tolist() == list(range(10))
    assert problem.V.shape == (10, 10)


def test_a_given_v_of_the_wrong_shape_is_named_with_its_own_columns():
    with pytest.raises(InvalidInputError, match=r"^V must be 2-D with shape \(n_points, m\), got"):
        ct.ResidualProblem.from_arrays(np.zeros((3, 2)), np.zeros(3))


def test_fortran_ordered_v_gives_the_same_answers(check_same):
    problem = ct.residual_problem(datasets.gaussian(800, 3, 2), m=32, seed=2)
    fortran = ct.ResidualProblem.from_arrays(
        np.asfortranarray(problem.X),
        np.asfortranarray(problem.V),
        kernel="rbf",
        lengthscale=1.0,
        variance=1.0,
        factor_of_kernel=True,
    )
    assert np.array_equal(fortran.p, problem.p)
    q = np.arange(0, 800, 9)
    a = ct.CoverTree(path="tree", metric="residual").fit(problem).kneighbors(indices=q, k=10)
    b = ct.CoverTree(path="tree", metric="residual").fit(fortran).kneighbors(indices=q, k=10)
    check_same(b, a, "fortran V")


def test_strided_coordinates_are_accepted(check_same):
    X = datasets.gaussian(400, 4, 1)
    strided = np.asfortranarray(np.repeat(X, 2, axis=1))[:, ::2]
    assert not strided.flags.c_contiguous
    a = ct.CoverTree(path="tree").fit(X).kneighbors(X[:20], k=5)
    b = ct.CoverTree(path="tree").fit(strided).kneighbors(strided[:20], k=5)
    check_same(b, a, "strided")


def test_same_seed_same_bytes():
    X = datasets.gaussian(200, 2, 9)
    a = ct.residual_problem(X, m=30, seed=4)
    b = ct.residual_problem(X.copy(), m=30, seed=4)
    assert a.digest == b.digest and a.V.tobytes() == b.V.tobytes()
    assert ct.residual_problem(X, m=30, seed=5).digest != a.digest


def test_projection_of_indexed_points_is_close_to_their_rows():
    problem = ct.residual_problem(datasets.gaussian(200, 2, 9), m=30, seed=4)
    Vq, pq = problem.project(problem.X[:10])
    np.testing.assert_allclose(Vq, problem.V[:10], rtol=0, atol=1e-10)


@pytest.mark.parametrize("kernel", ["rbf", "matern52"])
@pytest.mark.parametrize(("n", "d", "m"), [(7, 1, 3), (300, 3, 64), (2049, 4, 129), (6151, 2, 96)])
def test_v_bits_are_the_recipes_solve_of_k_ux(kernel, n, d, m):
    """V is bit for bit solve_triangular(L, K(U, X)).T on one BLAS thread (covertreex.blas), the recipe's
    own layout: the library solves K(X, U) in place in Fortran order, in chunks, which must not change a
    bit. Projected query rows solve the same system row by row: each row's bits are independent of the
    batch it came in, and agree with the recipe's solve to rounding."""
    from scipy.linalg import solve_triangular

    from covertreex.blas import one_thread
    from covertreex.metrics.data import kernel_matrix

    rng = np.random.default_rng(n + d + m)
    X, Q = rng.normal(size=(n, d)) * 2.0, rng.normal(size=(11, d))
    problem = ct.residual_problem(X, kernel=kernel, lengthscale=rng.uniform(0.5, 2.0, d), variance=1.3,
                                  m=m, seed=5)
    U, ls = X[problem.inducing], problem.lengthscale

    def recipe(points):
        K_ux = kernel_matrix(U, points, kernel, ls, 1.3)
        with one_thread():
            return np.ascontiguousarray(solve_triangular(problem.cholesky_factor, K_ux, lower=True).T)

    assert problem.V.flags.c_contiguous
    np.testing.assert_array_equal(problem.V.view(np.int64), recipe(X).view(np.int64))
    together = problem.project(Q)[0]
    one_by_one = np.vstack([problem.project(Q[i : i + 1])[0] for i in range(len(Q))])
    reversed_batch = problem.project(Q[::-1])[0][::-1]
    np.testing.assert_array_equal(together.view(np.int64), one_by_one.view(np.int64))
    np.testing.assert_array_equal(together.view(np.int64), reversed_batch.view(np.int64))
    np.testing.assert_allclose(together, recipe(Q), rtol=0, atol=1e-9)


def test_the_class_is_not_a_constructor_of_unchecked_arrays():
    """A p that does not follow from V (negative, here) gave silently wrong answers on gold; the class
    itself now refuses and names the two checked ways in."""
    X = np.random.default_rng(0).normal(size=(60, 2))
    with pytest.raises(InputTypeError, match=r"residual_problem\(X, \.\.\.\).*from_arrays\(X, V"):
        ct.ResidualProblem(X, np.zeros((60, 3)), np.full(60, -1.0), "rbf", np.ones(2), 1.0)


def test_an_unpickled_problem_keeps_its_arrays_read_only():
    problem = ct.residual_problem(np.random.default_rng(0).normal(size=(60, 2)), m=10)
    copy = pickle.loads(pickle.dumps(problem))
    assert copy.digest == problem.digest
    arrays = (copy.X, copy.V, copy.p, copy.lengthscale, copy.inducing, copy.cholesky_factor)
    assert not any(arr.flags.writeable for arr in arrays)


def _altered(problem, **fields):
    """`problem` with some fields replaced behind its checks, as an altered pickle would carry them."""
    state = {**problem.__getstate__(), **fields}
    altered = object.__new__(ct.ResidualProblem)
    altered.__dict__.update(state)
    return altered


@pytest.mark.parametrize("edit, error, message", [
    (lambda p: {"p": -p.p}, InvalidInputError, "p of an unpickled ResidualProblem is not the residual "
     "variance its V gives"),
    (lambda p: {"lengthscale": np.ones(1)}, DimensionMismatchError, "lengthscale must be a scalar or have "
     r"one entry per dimension \(2\)"),
    (lambda p: {"kernel": "laplace"}, UnknownNameError, "unknown kernel 'laplace'"),
    (lambda p: {"X": p.X[:5]}, DimensionMismatchError, r"V must be a C-contiguous float64 array with one row "
     r"per point of X \(5\), got ndarray \(60, 10\)"),
    (lambda p: {"inducing": p.inducing[:-1]}, DimensionMismatchError, "V's 10 columns need 10 inducing "
     "points"),
    (lambda p: {"inducing": np.r_[p.inducing[:-1], p.inducing[0]]}, InvalidInputError, "inducing must hold "
     "distinct indices, got .* more than once"),
    (lambda p: {"cholesky_factor": p.cholesky_factor.T}, InvalidInputError, "cholesky_factor must be lower "
     "triangular"),
    (lambda p: {"cholesky_factor": None}, InvalidInputError, "needs both its inducing points and their "
     "Cholesky factor, or neither"),
    (lambda p: {"V": np.where(np.arange(60)[:, None] == 3, np.nan, p.V)}, NonFiniteError, "V row 3 contains "
     "NaN"),
    (lambda p: {"V": np.asfortranarray(p.V)}, DimensionMismatchError, "V must be a C-contiguous float64"),
    (lambda p: {"seed": -4}, InvalidInputError, "seed"),
])
def test_an_altered_pickle_of_a_problem_is_refused(edit, error, message):
    """A pickle is bytes anyone may have altered (an outside user's trial): unchecked, a negated p made gold
    drop every neighbour without an error, X cut to 5 rows answered over 5 points, and a lengthscale of
    the wrong length raised a ZeroDivisionError. Each field is now checked as from_arrays checks it."""
    problem = ct.residual_problem(np.random.default_rng(0).normal(size=(60, 2)), m=10, seed=1)
    with pytest.raises(error, match=message):
        pickle.loads(pickle.dumps(_altered(problem, **edit(problem))))


def test_unaltered_pickles_of_every_kind_of_problem_come_back_whole():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(60, 2))
    built = ct.residual_problem(X, m=10, seed=1)
    for problem in (built, built.permuted(rng.permutation(60)), ct.ResidualProblem.from_arrays(X, built.V)):
        copy = pickle.loads(pickle.dumps(problem))
        for name in ("X", "V", "p", "lengthscale", "inducing", "cholesky_factor"):
            assert np.array_equal(getattr(copy, name), getattr(problem, name), equal_nan=False) or (
                getattr(copy, name) is None and getattr(problem, name) is None), name
        assert (copy.kernel, copy.variance, copy.seed, copy.digest) == (problem.kernel, problem.variance,
                                                                        problem.seed, problem.digest)
    moved = pickle.loads(pickle.dumps(_altered(built, X=built.X + 1.0, digest="the digest it came with")))
    assert moved.digest != "the digest it came with"  # made from the arrays: a tree of `built` is refused
    with pytest.raises(InvalidInputError, match="was built on different data"):
        ct.CoverTree(metric="residual").use_tree(ct.CoverTree(metric="residual", path="tree").fit(built).tree,
                                                 moved)


def test_permuted_takes_only_a_permutation():
    """A repeated row left entries of the renumbered inducing points uninitialised (values like 4.6e18)."""
    problem = ct.residual_problem(np.random.default_rng(0).normal(size=(50, 2)), m=10)
    order = np.arange(50)
    order[3] = 4
    with pytest.raises(InvalidInputError, match="entry 4 repeats the value 4 of entry 3"):
        problem.permuted(order)
    with pytest.raises(InputTypeError, match="order must hold whole numbers"):
        problem.permuted(np.arange(50.0) + 0.5)
    with pytest.raises(InputTypeError, match=r"^order must be a 1-D array of integers \(a permutation of "
                                             r"range\(50\)\), got str"):  # no ordering name is taken here
        problem.permuted("natural")
    assert np.array_equal(problem.permuted(np.arange(50.0)[::-1]).V, problem.V[::-1])  # whole floats: R's


def test_a_zero_dimensional_array_lengthscale_is_a_scalar():
    """np.array(0.5) was refused as a lengthscale of the wrong shape (an outside trial)."""
    X = np.random.default_rng(0).normal(size=(50, 2))
    given = ct.residual_problem(X, lengthscale=np.array(0.5), m=8)
    scalar = ct.residual_problem(X, lengthscale=0.5, m=8)
    assert np.array_equal(given.V, scalar.V) and given.lengthscale.tolist() == [0.5, 0.5]


def test_a_given_v_is_answered_exactly_by_the_paths_that_need_no_metric():
    """A V that is no factor of the declared kernel (here random; in practice one made with another
    lengthscale) gives correlations above 1, so the distance is no metric: the tree dropped true
    neighbours in 9 of 100 predecessor rows and built a tree `validate` refused. Such a problem is
    answered by the dense path (auto takes it) and brute only, unless its caller says V is a factor."""
    rng = np.random.default_rng(0)
    X, V = rng.normal(size=(100, 2)), rng.normal(size=(100, 5)) * 0.3
    given = ct.ResidualProblem.from_arrays(X, V)
    assert not given.factor_of_kernel and not given.permuted(np.arange(100)[::-1]).factor_of_kernel
    oracle = ct.CoverTree(engine="brute", metric="residual").fit(given).kneighbors(k=5, predecessor=True)
    for engine in ("gold", "rust"):
        for path in ("auto", "dense"):
            model = ct.CoverTree(engine=engine, metric="residual", path=path).fit(given)
            answer = model.kneighbors(k=5, predecessor=True)
            assert np.array_equal(answer[1], oracle[1]) and answer[0].tobytes() == oracle[0].tobytes()
            assert model.last_result.telemetry["path"] == "dense" and model.built_tree is None
        with pytest.raises(InvalidInputError, match="the tree path cannot answer this residual problem: its "
                           "V was given to ResidualProblem.from_arrays without factor_of_kernel=True"):
            ct.CoverTree(engine=engine, metric="residual", path="tree").fit(given)
    with pytest.raises(InvalidInputError, match="the tree path cannot answer"):
        _ = ct.CoverTree(metric="residual").fit(given).tree
    built = ct.CoverTree(metric="residual", path="tree").fit(ct.residual_problem(X, m=10))
    with pytest.raises(InvalidInputError, match="the tree path cannot answer"):
        ct.CoverTree(metric="residual").use_tree(built.tree, given)
    with pytest.raises(InvalidInputError, match=r"V row 7 has squared norm 1.47\d+, above the variance 1.0 "
                       r"\(5 rows are\): a low-rank factor of the kernel leaves every point a residual "
                       r"variance >= 0"):
        ct.ResidualProblem.from_arrays(X, V, factor_of_kernel=True)
    with pytest.raises(InputTypeError, match="factor_of_kernel must be True or False"):
        ct.ResidualProblem.from_arrays(X, V, factor_of_kernel="yes")


def test_a_query_at_an_indexed_points_coordinates_is_that_point():
    """Projected anew, a training point came out of a solve in another operation order: up to 1e-4 from
    itself, ranked behind its near-duplicate 1e-5 away (in 9 of these 300 rows). A row equal to an indexed
    point's coordinates is now that point, whatever its batch, on every engine and path."""
    rng = np.random.default_rng(0)
    base = rng.normal(size=(150, 2))
    X = np.concatenate([base, base + 1e-5, base[:3]])  # near-duplicates, and three exact ones (first wins)
    new = rng.normal(size=(4, 2))
    mixed = np.concatenate([X[:5], new[:2], X[150:153], new[2:], X[300:303]])
    answers = []
    for engine, path in [("brute", "auto"), ("gold", "tree"), ("gold", "dense"), ("rust", "tree"),
                         ("rust", "dense")]:
        model = ct.CoverTree(engine=engine, metric="residual", path=path).fit(X, m=100)
        first = np.r_[np.arange(300), 0, 1, 2]  # an exact duplicate's coordinates name the first point
        by_coordinates = model.kneighbors(X, k=3)
        by_index = model.kneighbors(indices=first, k=3)
        assert np.array_equal(by_coordinates[1], by_index[1])
        assert by_coordinates[0].tobytes() == by_index[0].tobytes()
        assert (by_coordinates[0][:, 0] == 0).all()  # the point itself, or one tied with it at 0
        answer = model.kneighbors(mixed, k=3)
        alone = [model.kneighbors(mixed[i:i + 1], k=3) for i in range(mixed.shape[0])]
        assert all(np.array_equal(a[1][0], answer[1][i]) and a[0].tobytes() == answer[0][i].tobytes()
                   for i, a in enumerate(alone))
        answers.append(answer)
    assert all(np.array_equal(a[1], answers[0][1]) and a[0].tobytes() == answers[0][0].tobytes()
               for a in answers)
    given = ct.ResidualProblem.from_arrays(X, ct.residual_problem(X, m=100).V)  # nothing to project through
    model = ct.CoverTree(metric="residual").fit(given)
    assert np.array_equal(model.kneighbors(X[:5], k=3)[1], model.kneighbors(indices=np.arange(5), k=3)[1])
    with pytest.raises(InvalidInputError, match="built from a given V, so new query coordinates cannot be "
                       "projected"):
        model.kneighbors(mixed, k=3)


def test_a_pickle_from_before_factor_of_kernel_is_a_factor_only_if_v_was_built_here():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(30, 2))
    for problem, factor in [(ct.residual_problem(X, m=5), True),
                            (ct.ResidualProblem.from_arrays(X, rng.normal(size=(30, 3)) * 0.3), False)]:
        state = problem.__getstate__()
        del state["factor_of_kernel"]  # as pickled by the version before it
        restored = object.__new__(ct.ResidualProblem)
        restored.__setstate__(state)
        assert restored.factor_of_kernel is factor
        assert pickle.loads(pickle.dumps(problem)).factor_of_kernel is factor


def test_a_query_row_with_negative_zero_is_the_point_with_zero():
    """Keys were the rows' bytes, so -0.0 (np.round makes it) did not match a training 0.0: the row was
    projected anew and could rank behind a near-duplicate."""
    X = np.array([[0.0, 1.0], [1e-6, 1.0], [2.0, 0.5], [0.3, -1.0]])
    model = ct.CoverTree(metric="residual").fit(X, m=3)
    assert model.space.problem.points_at(np.array([[-0.0, 1.0], [0.0, -1.0]])).tolist() == [0, -1]
    by_coordinates = model.kneighbors(np.array([[-0.0, 1.0]]), k=2)
    by_index = model.kneighbors(indices=[0], k=2)
    assert np.array_equal(by_coordinates[1], by_index[1])
    assert by_coordinates[0].tobytes() == by_index[0].tobytes()


@pytest.mark.parametrize("call, error, message", [
    (lambda P: P.project(P.X[:2, :1]), DimensionMismatchError, "queries have 1 columns but the problem's "
     "points have 2"),
    (lambda P: P.points_at(P.X[0]), InvalidInputError, r"queries must be 2-D with shape "
     r"\(n_points, n_dims\), got shape \(2,\)"),
    (lambda P: P.project(np.full((1, 2), np.nan)), NonFiniteError, r"queries contains NaN or inf"),
    (lambda P: P.points_at(np.zeros((0, 2))), InvalidInputError, "queries must not be empty"),
    (lambda P: P.adopt_split_screen("x"), InputTypeError, "adopt_split_screen takes a "
     "covertreex.split_screen.SplitScreen, got str"),
])
def test_the_problems_public_methods_name_what_is_wrong_with_their_argument(call, error, message):
    """They failed with NumPy's broadcast ValueError, an IndexError, an AttributeError, or for NaN a message
    about V's squared norms (an outside user's trial)."""
    problem = ct.residual_problem(np.random.default_rng(0).normal(size=(60, 2)), m=20)
    with pytest.raises(error, match=message):
        call(problem)
    assert problem.points_at(problem.X[[3, 7]].tolist()).tolist() == [3, 7]  # a list of rows is fine
