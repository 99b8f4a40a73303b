"""Exact screening of the residual metric below the f64 GEMM: a split of the residual that does not cancel.

The residual r_ij = k(x_i, x_j) - V_i.V_j cancels catastrophically (p ~ 1e-6 against k and V.V ~ 1), which
is why every cheaper screen tried before (float32, int8 slices of V, low rank) failed. This study measures
a screen that screens another quantity: for any m x m matrix M with

    c * lambda_max(M^T (K^2 + s~^2 K) M) <= s~^2                                              (certificate)

(K = k(U, U) exact, s~^2 = the jitter s^2 = 1e-6 * variance less the Cholesky factor's backward error),
the matrix R* - Z Z^T is positive semi-definite, where R*_ij = k_ij - k_i^T (L L^T)^{-1} k_j, k_i = k(U, x_i),
and z_i = sqrt(c) M^T k_i. Proof: the joint kernel matrix of X and U is PSD, so K_XX - K_XU K^+ K_UX is;
L L^T >= K + s~^2 I, and K^(1/2) ((K + s~^2)^{-1} + c M M^T) K^(1/2) <= I is the certificate. Hence with
e_i = R*_ii - |z_i|^2 >= 0,

    |R*_ij| <= |z_i . z_j| + sqrt(e_i e_j),

and z_i . z_j is a plain dot product of vectors with |z_i|^2 <= p_i: nothing cancels, so it can be
screened in float32 or int8 with a rigorous rounding bound. M is taken from K's eigenvectors Q as
M = Q diag(f(lambda)), f = sqrt(s^2 - (s^2 - s'^2)^2 / (lambda + s^2)) / (lambda + s'^2) with a smaller
regularisation s'^2 (--s2p, default 1e-9): then z carries most of the residual (the part the jitter
causes) and e is the error of an interpolant that is far more exact than V's (e / p small).

Every rounding between that exact statement and the library's canonical distances is bounded here:
- V is not exactly L^{-1} k: its error |eta_i| <= (|k_i - L V_i| + rounding) / s~ (a-posteriori residual);
- z, e, the certificate and K are computed in f64 (entrywise gamma_n bounds; the kernel values' own error,
  RBF only, is <= s2 (e^-1 gamma_(d+4) + 2u) each, since r2/2 exp(-r2/2) <= 1/e);
- the float32 / int8 product is bounded by gamma_m(2^-24) |q_i||q_j| (any summation order) or is exact;
- the canonical evaluation's own error is covertreex's residual_d2_error;
- the certificate is proven by a floating-point Cholesky factorisation with a margin for its rounding
  (`verified`), not by trusting an eigenvalue routine; its cancelling product is formed exactly in
  slices (covertreex.split_screen, which now holds these helpers; the runs recorded in docs/benchmarks.md
  formed it in 80-bit long double).
Roundings of about one u that are not counted term by term (a few norms, sums and the final scale; the
float32 product's underflow) are absorbed by margins far larger: the certificate's 1e-6, and
residual_d2_error's factor (it allows ~16 (m + d + 8) u where the canonical evaluation needs about
(m + 7) u). Assumptions: an exp within one ulp (glibc's is within 0.52); the kernel-error bound is
derived for RBF and Matern 5/2 (`kernel_error`). An engine must never screen a point against itself:
d_ii = 0 by definition, while the formula's bound for i == j need not be (p at its 1e-9 clamp).

For sampled query rows i (predecessor mode: every j < i, the Vecchia all-points job) the script checks
the bound against brute's canonical distances on every pair (it must never fail), then counts the pairs a
screen could skip: those whose lower bound on d_ij exceeds the query's 50th distance (the oracle's, and the
50th among the screen's 2k best candidates evaluated exactly, which an engine can compute). It also times
NumPy's float32 and float64 GEMMs of the same shape in the same run. `--data lattice` puts the points on
a lattice with every point twice (ties and duplicates); `--kernel matern52` screens the Matern 5/2
residual. No engine code uses this yet.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from bench_args import header, int_list, positive_int

import covertreex as ct
from covertreex.metrics.data import kernel_matrix, residual_d2_error
from covertreex.residual import JITTER
from covertreex.split_screen import certificate, fro, kernel_error, verified

K, SEED, D = 50, 42, 3
U64, U32 = 2.0**-53, 2.0**-24


def gamma(n: int, u: float = U64) -> float:
    return n * u / (1 - n * u)


def build(problem, s2p):
    """Per-point quantities of the bound, and the f64 Z whose products the screens approximate."""
    X, V, L, variance = problem.X, problem.V, problem.cholesky_factor, problem.variance
    U = X[problem.inducing]
    m = len(U)
    s2 = JITTER * variance
    kernel_err = kernel_error(problem.kernel, X.shape[1], variance)
    K_hat = kernel_matrix(U, U, problem.kernel, problem.lengthscale, variance)
    A_hat = K_hat + s2 * np.eye(m)
    # L L^T >= K + s2t I: the factor's backward error, the kernel's error and the jitter's rounding.
    delta_a = (fro(L @ L.T - A_hat) + gamma(m + 2) * fro(np.abs(L) @ np.abs(L).T)
               + m * kernel_err + np.sqrt(m) * U64 * (variance + s2))
    s2t = s2 - delta_a
    lam, Q = np.linalg.eigh(K_hat)
    lam = np.maximum(lam, 0.0)
    f = np.sqrt(np.maximum(s2 - (s2 - s2p) ** 2 / (lam + s2), 0.0)) / (lam + s2p)
    M0 = Q * f
    # ||Q diag(f)||_2 <= max f * ||Q^T Q||_2^(1/2), and ||Q^T Q - I||_2 <= its computed Frobenius + rounding.
    norm_q = np.sqrt(1 + fro(Q.T @ Q - np.eye(m)) + gamma(m + 2) * m)
    S0, eps0 = certificate(K_hat, M0, norm_q * f.max(), s2t, kernel_err)
    c = 1.0 / ((np.linalg.eigvalsh(S0).max() + eps0) * (1 + 1e-6))  # chosen by LAPACK, proven below
    Mc = M0 * np.sqrt(c)
    norm_mc = norm_q * f.max() * np.sqrt(c) * (1 + (2 * np.sqrt(m) + 4) * U64)  # Q f, then sqrt(c), rounded
    S, eps = certificate(K_hat, Mc, norm_mc, s2t, kernel_err)
    assert verified(S, eps), "the certificate failed"
    lam_max = np.linalg.eigvalsh(S).max()  # reported only
    bound = lam_max + eps
    K_xu = kernel_matrix(X, U, problem.kernel, problem.lengthscale, variance)
    Z = K_xu @ Mc
    zeta = (gamma(m + 2) * np.linalg.norm(np.abs(K_xu) @ np.abs(Mc), axis=1)
            + norm_mc * np.sqrt(m) * kernel_err)
    # V_i against L^{-1} k_i: the residual k_i - L V_i, computed with its rounding bound, through ||L^{-1}||.
    resid = K_xu - V @ L.T
    resid_err = gamma(m + 2) * (np.abs(K_xu) + np.abs(V) @ np.abs(L).T)
    h = (np.linalg.norm(resid, axis=1) + np.linalg.norm(resid_err, axis=1) + np.sqrt(m) * kernel_err) \
        / np.sqrt(s2t)
    del K_xu, resid, resid_err
    norm_v = np.linalg.norm(V, axis=1)
    n_up = norm_v * (1 + gamma(m + 2)) + h
    v_lo = np.maximum(norm_v * (1 - gamma(m + 2)) - h, 0.0)
    norm_z = np.linalg.norm(Z, axis=1)
    a_up = norm_z * (1 + gamma(m + 2)) + zeta
    z_lo = np.maximum(norm_z * (1 - gamma(m + 2)) - zeta, 0.0)
    e_up = np.maximum(variance - v_lo**2 - z_lo**2 + 8 * U64 * variance, 0.0)
    facts = dict(s2t=s2t, delta_a=delta_a, lam_max=lam_max, bound=bound, c=c)
    return Z, dict(zeta=zeta, h=h, n_up=n_up, a_up=a_up, e_up=e_up), facts


def quantised(Z, kind):
    """Z = s q + omega per row: q in float32 (unit rows) or int8 (entries in -127..127), the product's
    relative rounding g (gamma_m(2^-24) for float32, 0 for int8: int32 sums are exact), |q| and |omega|."""
    m = Z.shape[1]
    if kind == "float32":
        s = np.linalg.norm(Z, axis=1)
        q = (Z / np.where(s > 0, s, 1.0)[:, None]).astype(np.float32)
        g = gamma(m, U32)
    else:
        s = np.abs(Z).max(axis=1) / 127.0
        q = np.rint(Z / np.where(s > 0, s, 1.0)[:, None]).astype(np.int8)
        g = 0.0
    q64 = q.astype(np.float64)
    omega = np.linalg.norm(Z - s[:, None] * q64, axis=1) * (1 + gamma(m + 2)) + 4 * U64 * np.abs(Z).sum(1)
    return q, s, g, np.linalg.norm(q64, axis=1) * (1 + gamma(m)), omega


def products(i, J, q) -> np.ndarray:
    """q_i . q_j for j in J as the screen computes them: exactly in int32, or float32's sum."""
    if q.dtype == np.int8:
        return (q[J].astype(np.int32) @ q[i].astype(np.int32)).astype(np.float64)
    return (q[J] @ q[i]).astype(np.float64)


def dot_bound(i, J, screen, norm_z):
    """Upper bound on |z_i . z_j| for j in J from the screen's product of q_i and q_j."""
    q, s, g, norm_q, omega = screen
    prod = np.abs(products(i, J, q))
    return (s[J] * s[i] * (prod + g * norm_q[J] * norm_q[i]) * (1 + 4 * U64)
            + omega[i] * norm_z[J] + s[i] * norm_q[i] * omega[J])


def d2_lower(i, J, zz, t, p, problem):
    """Lower bound on the canonical d_ij^2 from an upper bound zz on |z_i . z_j|."""
    r_up = (zz + t["zeta"][i] * t["a_up"][J] + t["a_up"][i] * t["zeta"][J]
            + np.sqrt(t["e_up"][i] * t["e_up"][J])
            + t["h"][i] * t["n_up"][J] + t["n_up"][i] * t["h"][J] + t["h"][i] * t["h"][J])
    return d2_from(r_up, i, J, p, problem)


def v_lower(i, J, screen, norm_v, p, problem, kernel_err):
    """Lower bound on the canonical d_ij^2 from a screen of V itself (no split), and the screen's estimate
    of d_ij^2 (to pick the candidates evaluated first): r_ij = k_ij - V_i.V_j with the stored V, so only the
    screen's error and the kernel value's enter; useful where p is large enough that k - V.V cancels
    little (Matern 5/2), useless where it is the jitter's (RBF here)."""
    q, s, g, norm_q, omega = screen
    prod = products(i, J, q)
    estimate = s[J] * s[i] * prod
    error = (s[J] * s[i] * (4 * U64 * np.abs(prod) + g * norm_q[J] * norm_q[i])
             + omega[i] * norm_v[J] + s[i] * norm_q[i] * omega[J])
    k = kernel_matrix(problem.X[i:i + 1], problem.X[J], problem.kernel, problem.lengthscale,
                      problem.variance)[0]
    centre = 1.0 - np.abs(k - estimate) / np.sqrt(p[i] * p[J])
    return d2_from(np.abs(k - estimate) * (1 + 2 * U64) + error + kernel_err, i, J, p, problem), centre


def d2_from(r_up, i, J, p, problem):
    """Lower bound on the canonical d_ij^2 from an upper bound r_up on |k_ij - V_i.V_j| (exact kernel,
    stored V): the canonical evaluation's own error is residual_d2_error."""
    scale = np.sqrt(p[i] * p[J])
    error = residual_d2_error(len(problem.inducing), problem.X.shape[1], problem.variance, scale)
    return 1.0 - r_up / scale * (1 + 8 * U64) - error


def points(data: str, n: int) -> np.ndarray:
    """The gold workload's X, or a lattice of spacing 0.25 (a quarter lengthscale) with every point twice:
    exact duplicates (distance 0), equal distances everywhere, and points at an inducing point's place."""
    if data == "normal":
        return np.random.default_rng(SEED).normal(size=(n, D))
    side = int(np.ceil((n / 2) ** (1 / D)))
    axes = np.meshgrid(*[np.arange(side)] * D, indexing="ij")
    grid = np.stack(axes, axis=-1).reshape(-1, D)[: (n + 1) // 2]
    return np.repeat(grid * 0.25, 2, axis=0)[:n]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=positive_int, default=32768)
    parser.add_argument("--queries", type=positive_int, default=256, help="sampled query rows i")
    parser.add_argument("--m", type=positive_int, default=512, help="inducing points")
    parser.add_argument("--s2p", type=float, default=1e-9, help="the interpolant's regularisation s'^2")
    parser.add_argument("--tiles", type=int_list, default=(16, 64), help="query tile sizes for the union")
    parser.add_argument("--kernel", choices=("rbf", "matern52"), default="rbf")
    parser.add_argument("--data", choices=("normal", "lattice"), default="normal",
                        help="normal(seed 42) points, or a tie-heavy integer lattice with every point twice")
    args = parser.parse_args()
    header(f"N {args.n}, m {args.m}, k {K}, {args.queries} query rows, s'^2 {args.s2p:g}; "
           f"X {args.data}, {args.kernel} s2 = l = 1, inducing seed {SEED}, predecessor mode")
    X = points(args.data, args.n)
    problem = ct.residual_problem(X, m=args.m, seed=SEED, kernel=args.kernel)
    m = len(problem.inducing)
    p = problem.p
    start = time.perf_counter()
    Z, terms, facts = build(problem, args.s2p)
    print(f"bound terms in {time.perf_counter() - start:.1f} s: s~^2 = s^2 - {facts['delta_a']:.2e}; "
          f"certificate lambda_max {facts['lam_max']:.9f}, bound {facts['bound']:.9f}, c = {facts['c']:.9f}")
    rel = {name: terms[name] / np.sqrt(p) for name in ("h", "zeta")}
    e_rel = np.sqrt(terms["e_up"] / p)
    print(f"sqrt(e/p): median {np.median(e_rel):.4f}, p90 {np.quantile(e_rel, 0.9):.4f}, "
          f"max {e_rel.max():.4f}; |eta|/sqrt(p) max {rel['h'].max():.2e}; "
          f"zeta/sqrt(p) max {rel['zeta'].max():.2e}")
    norm_z = np.linalg.norm(Z, axis=1) * (1 + gamma(m + 2))
    screens = {"f64 (the exact product of Z)": None, "float32": quantised(Z, "float32"),
               "int8": quantised(Z, "int8")}
    v_screen = quantised(problem.V, "float32")
    norm_v = np.linalg.norm(problem.V, axis=1) * (1 + gamma(m + 2))
    kernel_err = kernel_error(problem.kernel, problem.X.shape[1], problem.variance)
    v_name = "float32 of V itself (no split)"
    brute = ct.CoverTree(engine="brute", metric="residual").fit(problem)
    rows = np.sort(np.random.default_rng(7).choice(np.arange(2 * K, args.n), args.queries, replace=False))
    skipped = {name: [] for name in [*screens, v_name]}
    practical = {name: [] for name in [*screens, v_name]}
    for i, J, d in predecessors(brute, rows, args.n):
        for name, screen in screens.items():
            lower = screened(i, J, d, Z, screen, norm_z, terms, p, problem)
            skipped[name].append(np.mean(beyond(lower, d[K - 1])))
            practical[name].append(np.mean(beyond(lower, threshold(lower, d))))
        lower, centre = v_lower(i, J, v_screen, norm_v, p, problem, kernel_err)
        assert (d.astype(np.float64) ** 2 * (1 + 4 * U64) >= lower).all(), i
        skipped[v_name].append(np.mean(beyond(lower, d[K - 1])))
        practical[v_name].append(np.mean(beyond(lower, threshold(centre, d))))
    print(f"\nbound held on all {int(sum(rows))} sampled pairs (canonical distances from brute)\n")
    print("| screen | skipped vs the oracle's 50th: mean | p10 | min "
          "| skipped vs the 50th of its 2k best: mean | p10 |")
    print("|---|---|---|---|---|---|")
    for name in skipped:
        a, b = np.array(skipped[name]), np.array(practical[name])
        print(f"| {name} | {a.mean():.4f} | {np.quantile(a, 0.1):.4f} | {a.min():.4f} | {b.mean():.4f} | "
              f"{np.quantile(b, 0.1):.4f} |")
    tiles(brute, problem, Z, screens["int8"], norm_z, terms, args.tiles)
    timing(problem.V, screens["float32"][0])


def predecessors(brute, rows, n):
    """(i, J, d) per row i: its predecessors j < i by (canonical distance, index) and their distances."""
    result = brute.query(indices=rows, k=n)  # every point; the predecessors j < i are kept
    for r, i in enumerate(rows):
        earlier = result.indices[r] < i
        J, d = result.indices[r][earlier], result.distances[r][earlier]
        assert len(J) == i
        yield i, J, d


def screened(i, J, d, Z, screen, norm_z, terms, p, problem):
    """The lower bounds on d_ij^2 a screen gives row i's predecessors J, checked against their canonical
    distances d (the bound must hold on every pair)."""
    m = Z.shape[1]
    zz = np.abs(Z[J] @ Z[i]) + gamma(m + 2) * norm_z[J] * norm_z[i] if screen is None \
        else dot_bound(i, J, screen, norm_z)
    lower = d2_lower(i, J, zz, terms, p, problem)
    assert (d.astype(np.float64) ** 2 * (1 + 4 * U64) >= lower).all(), i
    return lower


def beyond(lower, t):
    """The pairs whose canonical distance certainly exceeds t (so they cannot be among the k nearest)."""
    return lower * (1 - 8 * U64) > t**2 * (1 + 8 * U64)


def threshold(rank, d):
    """What an engine can know of the k-th distance: the k-th among the screen's 2k best by `rank` (its
    lower bounds, or its estimates where it has them), evaluated."""
    best = np.argsort(rank, kind="stable")[:2 * K]
    return np.sort(d[best])[K - 1]


def tiles(brute, problem, Z, screen, norm_z, terms, sizes, count: int = 8, point_tile: int = 256) -> None:
    """An engine re-checks a tile of queries against the union of its rows' survivors with one f64 GEMM:
    how many columns that is, for tiles of consecutive points along the Hilbert curve (int8 screen); and,
    with the points in Hilbert order too, how many tiles of `point_tile` points hold any survivor (those
    an engine that skips whole f64 tiles would still compute)."""
    from covertreex.ordering import hilbert_order

    order = hilbert_order(problem.X)
    tile_of = np.empty(len(order), dtype=np.int64)
    tile_of[order] = np.arange(len(order)) // point_tile
    rng = np.random.default_rng(11)
    print("\n| query tile (Hilbert-consecutive, int8 screen) | survivors per row / eligible "
          f"| columns of the tile's union / eligible | Hilbert tiles of {point_tile} points with a survivor "
          "/ with an eligible point |")
    print("|---|---|---|---|")
    for size in sizes:
        per_row, union, hit = [], [], []
        for start in rng.choice(len(order) // size, count, replace=False) * size:
            rows = np.sort(order[start:start + size])
            rows = rows[rows >= 2 * K]
            columns = np.zeros(rows.max(), dtype=bool)
            for i, J, d in predecessors(brute, rows, len(order)):
                lower = screened(i, J, d, Z, screen, norm_z, terms, problem.p, problem)
                keep = ~beyond(lower, threshold(lower, d))
                per_row.append(keep.mean())
                columns[J[keep]] = True
            union.append(columns.mean())
            eligible = np.unique(tile_of[: rows.max()])
            hit.append(np.unique(tile_of[np.flatnonzero(columns)]).size / eligible.size)
        print(f"| {size} rows ({count} tiles) | {np.mean(per_row):.4f} | {np.mean(union):.4f} | "
              f"{np.mean(hit):.4f} |")


def timing(V, q32, rows: int = 2048, repeats: int = 5) -> None:
    """NumPy's f64 GEMM of V's rows against V (what the dense path screens with) and float32 of Z's."""
    cols = min(len(V), 16384)
    print(f"\n| GEMM (NumPy, all threads), {rows} rows x {cols} cols x m {V.shape[1]} | best s | GFLOP/s "
          "| ns per pair |")
    print("|---|---|---|---|")
    for name, a in (("float64 V", V), ("float32 Z", q32)):
        left, right = np.ascontiguousarray(a[:rows]), np.ascontiguousarray(a[:cols])
        best = min(_seconds(np.matmul, left, right.T) for _ in range(repeats + 1))  # the first warms up
        print(f"| {name} | {best:.4f} | {2.0 * rows * cols * a.shape[1] / best / 1e9:.0f} | "
              f"{best / (rows * cols) * 1e9:.3f} |")


def _seconds(fn, *args) -> float:
    start = time.perf_counter()
    fn(*args)
    return time.perf_counter() - start


if __name__ == "__main__":
    main()
