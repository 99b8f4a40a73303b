"""The split screen: a rigorous bound on the residual correlation from an int8 product that does not cancel.

The residual r_ij = k(x_i, x_j) - V_i.V_j cancels catastrophically (p ~ 1e-6 against k and V.V ~ 1), so no
cheap product of V can screen it. For any m x m matrix M with

    c * lambda_max(M^T (K^2 + s~^2 K) M) <= s~^2                                              (certificate)

(K = k(U, U) exact, s~^2 = the jitter s^2 = 1e-6 * variance less the Cholesky factor's backward error),
R* - Z Z^T is positive semi-definite, where R*_ij = k_ij - k_i^T (L L^T)^{-1} k_j, k_i = k(U, x_i) and
z_i = sqrt(c) M^T k_i (the joint kernel matrix of X and U is PSD, so K_XX - K_XU K^+ K_UX is; L L^T >=
K + s~^2 I, and K^(1/2) ((K + s~^2)^{-1} + c M M^T) K^(1/2) <= I is the certificate). With
e_i = R*_ii - |z_i|^2 >= 0,

    |R*_ij| <= |z_i . z_j| + sqrt(e_i e_j),

and z_i . z_j is a dot product of vectors with |z_i|^2 <= p_i: nothing cancels, so an int8 copy of Z
(exact int32 products) screens it. M = Q diag(f(lambda)) from K's eigenvectors, with f chosen so that z
carries the part of the residual the jitter causes (an interpolant regularised by s'^2 = 1e-9 s2).

Z is formed from V, one GEMM per block of rows: Z = V P with P = L^T M sqrt(c) (formed once, with its
error bound), since z_i = sqrt(c) M^T (L v_i + delta_i) where delta_i = k_i - L v_i is V's deviation from
L^-1 k. That deviation is bounded a priori: V is made by BLAS dtrsm from the computed kernel rows k^_i, and
substitution, blocked or not, with its sums in any order and a division or a rounded reciprocal per
diagonal entry, is backward stable componentwise: (L + dL_i) v_i = k^_i with |dL_i| <= gamma_(m+2) |L|
(Higham, Accuracy and Stability of Numerical Algorithms, 2nd ed., Thm 8.5 and section 13.1), so
||delta_i|| <= sqrt(m) kernel_err + gamma_(m+2) ||L||_F ||v_i||, and ||v_i - L^-1 k_i|| <= ||delta_i|| / s~.
That assumption on the BLAS is checked on :data:`CHECKED_ROWS` rows when the basis is made: their
residuals, formed again, must lie within twice the bound (else no split), which catches a BLAS that errs
by far more (one that inverted diagonal blocks, by a factor up to cond(L_11)), not a small excess. The
split trusts V to be that solve's output on every row, as residual_problem made it (its arrays are
read-only; permuting rows or pickling keeps their bits): a V altered afterwards (forced writeable, a
tampered pickle) is outside its contract, and a review found that such a row can be screened wrongly.
(Before, each block also formed its kernel rows and V L^T to measure delta_i: two more GEMM-sized passes,
~2.5x the build's time.)

Every rounding between that statement and the canonical similarity s_c = min(1, |rho_c|) is bounded:
V against L^-1 k (above), Z's and e's f64 rounding, the kernel values' own error (:func:`kernel_error`),
the int8 rounding of Z (per-row scale; the products are exact), and the canonical evaluation's
(covertreex.metrics.data.residual_d2_error). The certificate's cancelling product K M is formed exactly in
slices (:func:`sliced_product`), and the certificate is proven by a floating-point Cholesky factorisation
with a margin for its own rounding (:func:`verified`), not by an eigenvalue routine. The result is seven
factors per row (:data:`FACTORS`) such that for i != j

    s_c(i, j) <= (1 + 64 u) (|q_i . q_j| sigma_i sigma_j + zerr_i znorm_j + znorm_i zerr_j
                             + verr_i vnorm_j + vnorm_i verr_j + floor_i floor_j + rest_i rest_j),

which the rust dense path evaluates per pair in f64 (fourteen roundings, covered by its 64 u). Terms of
Z's scale (~sqrt p) and of V's (~1) stay apart: a product of one's error with the other's norm would be
a thousand times too large. Never for i == j: d_ii = 0 by definition,
while this bound need not hold there. benchmarks/split_screening_study.py measured it (docs/benchmarks.md).
"""

from __future__ import annotations

import hashlib
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from types import SimpleNamespace

import numpy as np

from covertreex.blas import one_thread
from covertreex.errors import InvalidInputError
from covertreex.resources import worker_threads

U64 = 2.0**-53
EPS = 2.0**-52

S2P = 1e-9
"""The interpolant's regularisation s'^2, relative to the variance (the study's default: a smaller one moves
more of the residual into z but makes M larger and the certificate's margins costlier)."""

FACTORS = ("sigma", "zerr", "znorm", "verr", "vnorm", "floor", "rest")
"""The columns of :attr:`SplitScreen.factors`, in the order the rust epilogue reads them."""

ROWS = 4096
"""Rows of V whose Z is formed at a time (16 MiB at m = 512). A GEMM's bits depend on its shape (OpenBLAS's
kernels for the edge rows: at m = 300, blocks of 512 rows gave the last 8 rows of each other bits), so this
stays as it was; the rest of each row's work is rust's (:func:`_rows`)."""

CHECKED_ROWS = 256
"""Rows, spread evenly, whose solve residual k^_i - L v_i the basis measures against the a-priori bound
that the build relies on (the module docstring): ~1 ms at m = 512."""

ROW_REST = 0.6
"""The largest sqrt(e/p) of a point z fits well (:meth:`SplitScreen.fits_badly`): the pairs of two points
above it take the f64 GEMM, every other pair the split. Vecchia all-points at N = 65,536 (2026-12-06 03:52
UTC, Intel Xeon, 2 cores; an uncommitted /tmp script: the gold workload's problem, its split built first,
one CoverTree(engine="rust", path="dense", dense_screen="split", mode="perf") queried with predecessor=True,
k=50 after setting ROW_REST, in two alternating rounds; query seconds, and points above / declined queries /
canonical evaluations per query): 0.3: 7.80 s (36% / 797 / 88.1); 0.4:
6.46, 6.61 s (26% / 1,518 / 87.8); 0.5: 6.12, 6.13 s (18% / 2,394 / 90.2); 0.6: 6.03, 6.03, 5.76, 6.18 s
(10% / 3,402 / 97.0); 0.7: 5.83, 6.01 s (3.9% / 4,225 / 103.6); 0.8: 5.89, 6.67 s (1% / 4,555 / 105.6).
Higher values leave fewer pairs to the GEMM (the fraction above, squared) and decline more queries."""

DECLINE_SHARE = 16
"""The split gives a query back to the f64 GEMM (declines it) when more than one in this many of its
eligible pairs come through its bound (and more than 256): each such pair is evaluated canonically, which
reads the point's row of V for that one pair, some 20 times a pair's share of a GEMM over a block of queries
(~300 ns against ~15 ns at m = 512). Points the split resolves poorly are declined so: an inducing point's
residual is the jitter's and is correlated with no other point's above the bound's error terms, so nearly
every pair of it comes through (at N = 32,768 the 512 inducing points' rows took 23% of the canonical
evaluations before). 1 never declines."""

KEPT_PER_PROBE = 3
"""Pairs the split's first pass keeps per probe (the best by bound; k + ceil(k/4) probes per query): a query
whose kept pairs reach below its least similarity takes its remaining candidates from them instead of a
second pass of int8 products and bounds over every point (rust/core/src/dense/split.rs); the same pairs are
evaluated and the same answers and counters come out for any value >= 1. The split's bounds are tight at
the top: at N = 65,536 (40 rows sampled) 56-146 pairs of a point z fits well reach its least similarity,
133-3,523 of the others'. Vecchia all-points, m = 512, k = 50 (rust perf mode, dense path, the split built
before; 2026-12-06 13:13-13:24 UTC, Intel Xeon, 2 cores, fresh processes, alternating): queries through
the second pass at N = 65,536 47,976 / 9,213 / 6,089 / 5,028 with 1 / 2 / 3 / 4 kept per probe, query
seconds 6.16-7.36 / 5.63-6.79 / 5.30-6.40 / 5.81-6.44 (more kept, more pairs offered in the first pass);
N = 131,072: 20.3 s with 1, 15.6 s with 3."""

PAYS = {"amx": 0.75, "vnni": 1.5, "avx2": 1.5}
"""dense_screen='auto' builds the split for a batch only when its eligible pairs reach PAYS m (N + m^2 / 4) /
(1 - e)^4, e the sampled median sqrt(e/p) (:func:`estimated_rest`; a split built already is used whenever its
kernel is listed here), PAYS taken for the kernel that multiplies the split's int8 rows on this CPU
(``covertreex._rust.INT8_KERNEL``): the products are what a screened pair costs instead of its share of the
f64 GEMM. Where no fast kernel runs ('portable', LLVM's vectorisation of a plain loop) 'auto' never takes the
split: the Vecchia job at N = 16,384 took 13.0-13.3 s on it against 3.1 s on the f64 screen (2026-12-07, AMD
EPYC without AVX-512, before the AVX2 kernel). AVX2 (same machine, its kernel and the bounds' AVX2 loop; /tmp
script timing ``CoverTree(metric="residual", dense_screen=...).fit(problem).query(k=50, predecessor=True)``,
the split's build included, fresh processes, both orders, 22:32-22:36 UTC): split against f64 2.33 / 2.21 s at
N = 16,384, 2.83-2.96 / 3.47-3.54 s at 20,480, 5.55-5.91 / 8.48-8.64 s at 32,768; the tie near 17,000 (e
~0.17) puts PAYS at 1.5. The maximin job, which orders on the split where the query takes it, ties at 20,480
(6.22 s on the split against 6.04 s fused on f64) and wins above (10.6 / 12.7 s at 32,768; 34.1 / 46.2 s at
65,536). VNNI was not measured on a machine without AMX: it takes AVX2's value (its products are faster),
which costs at most a near tie. On AMX, building it costs ~10 CPU-us per point at m = 512 (the GEMM Z = V P,
7.5 of them) and a fixed ~0.22 s for the basis (its certificate, ~m^3: as much as m^2 / 4 points' rows); a
pair it screens instead of the f64 GEMM saves ~5-13 CPU-ns where z fits well, far less where it fits worse
(more pairs come through its bound), hence the steep (1 - e)^4. Measured 2026-12-06 16:04-16:30 UTC (Intel
Xeon, 2 cores; benchmarks/split_pays.py; docs/benchmarks.md, "The split's build from V"), split + its build
against the f64 screen: Vecchia all-points k = 50, m = 512 (e 0.16-0.19): 0.54 / 0.37 s at N = 8,192, 0.87 /
0.83 at 12,288, 0.89 / 1.13 at 16,384, 1.86 / 4.33 at 32,768; m = 256 (e ~0.6): 1.10 / 0.90 at 16,384, 2.44 /
2.59 at 32,768; 1,024 indexed queries (m = 512): 0.78 / 0.58 at N = 65,536, 2.13 / 2.11 at 262,144, and at
1,048,576 the query phase 7.11-7.80 s against 7.63-10.19 s in four same-run pairs (the rule takes the split
there from N ~ 450,000). It takes the faster screen in each cell but near-ties: 12,288 (5% slower) and m = 256
at 32,768 (6% faster, left to f64)."""

PRESUMED_REST = 0.15
"""The sampled median sqrt(e/p) (:func:`estimated_rest`) 'auto' presumes before it samples a problem: just
below the least measured (0.16-0.19, RBF at m = 512), so only a batch that a split fitting as well as any
measured would repay (PAYS m (N + m^2 / 4) / (1 - 0.15)^4 eligible pairs) pays for the sample, 0.23 s at
m = 512 (the basis and its certificate, ~m^3; kept for the split if it is built). Presuming e = 0 sampled
every Vecchia job from N ~ 7,500 and left the ones below ~11,500 to the f64 screen after all: the maximin
job at N = 8,192 took 0.75-0.97 s on 'auto' against 0.50-0.56 s on the rust engine's f64 pass, and at
10,000 0.98-1.20 s against 0.75-0.77 s (2026-12-07, k = 10 and 30, m = 512). Now the sample starts near
N = 10,600."""

USEFUL = 0.7
"""The split screens well only where z carries most of the residual: the largest sampled median sqrt(e/p)
at which it is used (RBF's gold workload, m = 512: 0.19; RBF at m = 256: ~0.6, where the split won from
N = 65,536; m = 128: 0.95-0.98, where it lost even at N = 131,072; Matern 5/2, whose residual is the
approximation's: 0.9999)."""


def gamma(n: int) -> float:
    return n * U64 / (1 - n * U64)


def fro(a) -> float:
    return float(np.sqrt((np.asarray(a, dtype=np.float64) ** 2).sum()))


def fro_up(a) -> float:
    """An upper bound on ||a||_F: :func:`fro` with its rounding (a sum of a.size squares, a square root)."""
    return fro(a) * (1 + gamma(np.size(a) + 2))


def _on_cpus(task, items) -> list:
    """[task(item) for item in items] on the threads this call may use (:func:`worker_threads`). NumPy
    releases the GIL, and under :func:`one_thread` (the process-wide OpenBLAS count) each GEMM still runs on
    one BLAS thread: the same bits as one after another."""
    with ThreadPoolExecutor(max_workers=max(1, min(worker_threads(), len(items)))) as pool:
        return list(pool.map(task, items))


def kernel_error(kernel: str, d: int, variance: float) -> float:
    """A bound on |k_hat - k| for any pair, in the library's operation order (rust/core/src/metric.rs
    kernel_parts; an exp within one ulp, 2u). r2 carries gamma_(d+4) (a subtraction, a division and a
    square per dimension, d - 1 additions). RBF: s2 exp(-r2/2), whose slope times r2 is at most s2/e, plus
    exp's and the variance's roundings (3u). Matern 5/2: a = sqrt(5 r2) carries gamma_(d+7); g(a) =
    (1 + a + a^2/3) e^-a has |g'(a)| a <= a^2 (1 + a) e^-a / 3 <= 0.6044 (at a = 1 + sqrt 3), and the
    factor's five roundings, exp's and the product's give gamma_9 of g <= 1."""
    if kernel == "rbf":
        return variance * (np.exp(-1) * gamma(d + 4) + 3 * U64) * 1.01
    if kernel == "matern52":
        return variance * (0.6044 * gamma(d + 7) + gamma(9)) * 1.01
    raise ValueError(f"no kernel-error bound for kernel {kernel!r}")


SLICE_BITS = 22
"""Bits per slice of :func:`sliced_product`: two slices multiply into 44 bits, and a sum of up to 2^9
such products into 53, exactly."""


SLICES = 4
"""Slices per operand: 88 bits below each row's (column's) top, so an entry far below its row's largest
keeps its own 53 (three slices cut such entries of K M's operands at 2^-66 of the row's top, and that
remainder, not the sum, then dominated the error)."""


def _slices(A: np.ndarray, axis: int, count: int = SLICES):
    """A = A_1 + .. + A_count + R: A_t holds the bits SLICE_BITS (t - 1) .. SLICE_BITS t below the top of
    its row (axis 1) or column (axis 0), each an integer times 2^(e - SLICE_BITS t), and
    |R| < 2^(e - SLICE_BITS count)."""
    top = np.abs(A).max(axis=axis, keepdims=True)
    _, e = np.frexp(np.where(top > 0, top, 1.0))  # |a| < 2^e along the row or column
    rest, parts = A.copy(), []
    for t in range(1, count + 1):
        shift = e - SLICE_BITS * t
        part = np.ldexp(np.trunc(np.ldexp(rest, -shift)), shift)
        parts.append(part)
        rest = rest - part  # exact: `part` is `rest` cut to a coarser grid of its own bits
    return parts, np.ldexp(1.0, e - SLICE_BITS * count)


MAX_INDUCING = 512
"""The most inducing points the split screen takes: :func:`sliced_product`'s slice products are exact for
an inner dimension up to 2^(53 - 2 SLICE_BITS)."""


SLICED_ROWS = 128
"""Rows of :func:`sliced_product` per task: four tasks at m = 512, whose arrays stay in a core's cache (one
product at m = 512 under one_thread, 2 cores: 0.19 s in one task, 0.07-0.09 s in four, 0.10 s in two)."""


def sliced_product(A: np.ndarray, B: np.ndarray):
    """(A @ B, a bound on each entry's error) for an inner dimension of at most 512, with an error of
    about u |A B| + 2^-80 |A| |B| instead of f64's 2^-44 |A| |B| at 512 terms: A's rows and B's columns
    are cut into 22-bit slices (:func:`_slices`), every product of two slices is an f64 GEMM that is
    exact (integers below 2^53 on one grid, whatever the summation order or BLAS threading), and only the
    exact parts' compensated sum and the slices' remainders err. A row of the result depends only on A's
    row, so blocks of rows run on the CPUs with the same bits."""
    if A.shape[1] > MAX_INDUCING:
        raise ValueError(f"sliced_product: inner dimension {A.shape[1]} > {MAX_INDUCING} would not be exact")
    b_parts, b_rest = _slices(B, axis=0)
    b_sums = np.abs(B).sum(axis=0, keepdims=True)
    blocks = _on_cpus(lambda start: _sliced_rows(A[start:start + SLICED_ROWS], b_parts, b_rest, b_sums),
                      range(0, len(A), SLICED_ROWS))
    return tuple(np.concatenate(columns) for columns in zip(*blocks, strict=True))


def _sliced_rows(A, b_parts, b_rest, b_sums):
    """:func:`sliced_product` of the rows A, given B's slices, remainder and column sums of |B|."""
    a_parts, a_rest = _slices(A, axis=1)
    parts = [a @ b for a in a_parts for b in b_parts]
    # The parts cancel (each slice's truncation is large against a small entry of K M): a compensated sum
    # of n terms errs by at most u |sum| + gamma_(n-1)^2 sum |part| (Ogita, Rump and Oishi, "Accurate sum
    # and dot product", SIAM J. Sci. Comput. 26, 2005, Sum2; Neumaier's variant here), with margins.
    total, carried = np.zeros_like(parts[0]), np.zeros_like(parts[0])
    for part in parts:
        after = total + part
        carried += np.where(np.abs(total) >= np.abs(part), (total - after) + part, (part - after) + total)
        total = after
    total = total + carried
    summed = 4 * U64 * np.abs(total) + 8 * (len(parts) * U64) ** 2 * sum(np.abs(part) for part in parts)
    cut = a_rest * b_sums + np.abs(A).sum(axis=1, keepdims=True) * b_rest
    return total, summed + cut * (1 + gamma(4)) * 2


def certificate(K_hat, M, norm_m, s2t, kernel_err):
    """The computed S ~ M^T (K^2 + s2t K) M / s2t for the exact K (|K - K_hat| <= kernel_err entrywise),
    and eps >= ||S_exact - S||_2, given norm_m >= ||M||_2. K_hat M cancels (M is large, ~sqrt(2) / s',
    where K is small): it is formed exactly in slices; the other two products are f64 GEMMs of it."""
    m = len(M)
    P, p_err = sliced_product(K_hat, M)
    err_p = fro(p_err)  # >= ||computed P - K_hat M||_F
    gram, cross = P.T @ P, M.T @ P
    T = gram + s2t * cross
    S = (T + T.T) / (2 * s2t)
    g = gamma(m + 2)
    norm_p = fro(P) + err_p  # >= ||K_hat M||_2
    products = 2 * norm_p * err_p + err_p**2 + g * fro(P) ** 2 + s2t * (norm_m * err_p + g * fro(M) * fro(P))
    rounding = (products + 3 * U64 * (fro(gram) + s2t * fro(cross))) / s2t + 2 * U64 * fro(S)
    # The exact K: K^2 - K_hat^2 = dK K_hat + K_hat dK + dK^2 with ||dK||_2 <= m * kernel_err.
    eps_k = m * kernel_err
    perturbation = (2 * norm_m * eps_k * norm_p + eps_k**2 * norm_m**2 + s2t * norm_m**2 * eps_k) / s2t
    return S, rounding + perturbation


def verified(S, eps) -> bool:
    """Whether lambda_max(S_exact) <= 1 is proven for any S_exact within eps of S (2-norm): a
    floating-point Cholesky factorisation of G - delta I, G = (1 - eps) I - S, that succeeds proves G
    positive semi-definite when delta covers the factorisation's rounding (gamma_(m+1) tr(G), and the
    diagonal's own rounding): no trust in an eigenvalue routine is needed."""
    m = len(S)
    G = (1 - eps) * np.eye(m) - S
    g = gamma(m + 1)
    delta = g / (1 - g) * np.trace(G) + 4 * U64 * (1 + np.abs(np.diag(S)).max())
    try:
        np.linalg.cholesky(G - delta * np.eye(m))
    except np.linalg.LinAlgError:
        return False
    return True


@dataclass(frozen=True)
class SplitScreen:
    """Z in int8 (N x m, each row scaled into -127..127) and the seven per-row factors of the bound (N x
    len(FACTORS), :data:`FACTORS`), and how well z fits the problem's rows. Both arrays are read-only, and q
    is held by the split alone or read-only down to its memory's owner (:func:`_unchangeable`): :meth:`rows`
    packs it once."""

    q: np.ndarray
    factors: np.ndarray
    median_rest: float
    """The median of sqrt(e/p): how much of the residual z leaves out (see :data:`USEFUL`)."""
    source: bytes
    """:func:`source_of` the points it is built for: a split is used on those only."""

    def __post_init__(self):
        from covertreex.metrics.data import read_only

        object.__setattr__(self, "q", _unchangeable(self.q))
        object.__setattr__(self, "factors", read_only(self.factors))

    def permuted(self, order: np.ndarray, source: bytes) -> SplitScreen:
        """The split screen of the problem with its rows in `order` (a permutation the caller checked), whose
        :func:`source_of` is `source`: the bound of a pair reads the two points' own rows only."""
        q = self.q[order]
        q.flags.writeable = False  # a fresh array nobody else holds: kept, not copied (_unchangeable)
        return SplitScreen(q, self.factors[order], self.median_rest, source)

    def check_source(self, X, p, what: str) -> None:
        """Raise unless this split was built for the points (X, p), in that order: on other points its
        bounds are of other pairs, and answers screened by it would be wrong without any error."""
        if source_of(X, p) != self.source:
            raise InvalidInputError(f"{what}: a split screen built for other points, or for these points in "
                                    "another order (covertreex.split_screen.source_of differs)")

    def rows(self, threads: int | None = None):
        """q with its packing for the rust engine's int8 products (``covertreex._rust.SplitRows``), made
        on `threads` by the first call on this split and kept: every dense call on the split packed q
        before, ~15 ms at N = 32,768, m = 512, which each range of a Dask job paid again. Not pickled
        (another process may run another kernel)."""
        made = self.__dict__.get("_rows")
        if made is None:
            from covertreex import twins

            made = self.__dict__.setdefault("_rows", twins.rust_twin("SplitRows")(self.q, threads))
        return made

    def __getstate__(self) -> dict:
        return {name: value for name, value in self.__dict__.items() if name != "_rows"}

    def __setstate__(self, state: dict) -> None:
        """Read-only again: a pickle below protocol 5 (multiprocessing's) or a deep copy brings the arrays
        back writeable, and :meth:`rows` packs only a read-only q. q is taken as it came, not through
        :func:`_unchangeable`, which would copy it off a Dask worker's receiving buffer: its memory is this
        split's own, or (unpickled in the same process from out-of-band buffers) the pickled split's q's."""
        from covertreex.metrics.data import read_only

        self.__dict__.update(state)
        for name in ("q", "factors"):
            object.__setattr__(self, name, read_only(state[name]))

    def fits_badly(self) -> np.ndarray:
        """Per point, whether z leaves out much of its residual (sqrt(e/p) > :data:`ROW_REST`: points in
        sparse regions, whose residual is the approximation's). The bound on a pair of two such points is
        loose (their rest terms multiply), and such a point's nearest neighbours are mostly such points:
        those pairs take the f64 GEMM, and the split screens the others well."""
        return self.factors[:, FACTORS.index("rest")] > ROW_REST


def source_of(X, p) -> bytes:
    """A fingerprint of the points a split screen serves: their coordinates and residual variances, in
    order (16 bytes of BLAKE2b; ~1 ms at N = 32,768). V follows from them for a problem this library builds,
    and a split of other points or of these in another order bounds other pairs."""
    digest = hashlib.blake2b(digest_size=16)
    for array in (X, p):
        digest.update(np.ascontiguousarray(array, dtype=np.float64).tobytes())
    return digest.digest()


def _unchangeable(array: np.ndarray) -> np.ndarray:
    """`array` if it and every array it views are read-only, down to one that owns its memory or to
    immutable bytes; else a read-only copy of it: a read-only view of a writeable array changes with that
    array, and :meth:`SplitScreen.rows` would keep packed rows that no longer match. (Whoever holds the
    owning array can still set it writeable again: that is misuse this cannot stop.)"""
    base = array
    while isinstance(base, np.ndarray) and not base.flags.writeable and base.base is not None:
        base = base.base
    if isinstance(base, bytes) or (isinstance(base, np.ndarray) and not base.flags.writeable):
        return array
    own = np.array(array)
    own.flags.writeable = False
    return own


def split_screen(problem) -> SplitScreen | None:
    """The split screen of a residual problem whose V this library built (it needs the inducing points and
    the Cholesky factor), or None: without the rust extension, for a V given from outside, for more than
    MAX_INDUCING inducing points,
    when the jitter leaves no margin, when the certificate cannot be proven, or when V's rows do not meet
    the solve's bound (:func:`_solved_within_bound`). Deterministic: every BLAS
    call runs on one thread. The certificate is the problem's :attr:`split_basis` (made once)."""
    fixed = problem.split_basis
    if fixed is None:
        return None
    with one_thread():
        return _build(problem, fixed)


def split_basis(problem) -> _Fixed | None:
    """The proven certificate and what every row's factors take from it (the build's first part: ~0.2 s
    at m = 512), or None where no split screen can be had (see :func:`split_screen`)."""
    from covertreex import twins

    if problem.cholesky_factor is None or problem.inducing is None or len(problem.inducing) > MAX_INDUCING:
        return None
    if twins.rust_twin("split_rows") is None:  # only the rust engine runs the split: without it, none
        return None
    with one_thread():
        return _basis(problem)


SAMPLE = 2048
"""Rows :func:`estimated_rest` takes: the median sqrt(e/p) of 2,048 rows is within a few hundredths of
all rows' (tests/covertreex/test_split_screen.py)."""


def estimated_rest(problem) -> float | None:
    """The median sqrt(e/p) of :data:`SAMPLE` rows spread evenly over the problem: what the build would
    give as :attr:`SplitScreen.median_rest`, for a fraction of its cost, so that dense_screen='auto' does
    not build a split it would not use (a Matern 5/2 problem's, median ~1: the whole build, ~1 s at
    N = 32,768, was spent for nothing). None where no split screen can be had. A problem of at most
    SAMPLE rows is its own sample: its split is built (for the same cost) and its median returned."""
    fixed = problem.split_basis
    if fixed is None:
        return None
    n = problem.n_points
    if n <= SAMPLE:
        return problem.split_screen.median_rest
    rows = np.linspace(0, n - 1, SAMPLE).astype(np.int64)
    sample = SimpleNamespace(X=problem.X[rows], V=problem.V[rows], p=problem.p[rows],
                             variance=problem.variance)
    width, size = fixed.P.shape[1], len(rows)
    q, factors = np.empty((size, width), dtype=np.int8), np.empty((size, len(FACTORS)))
    with one_thread():
        rest = _rows(sample, slice(0, size), fixed, q, factors, _Work(width, size))
    return float(np.median(rest))


def _basis(problem) -> _Fixed | None:
    X, L, variance = problem.X, problem.cholesky_factor, problem.variance
    from covertreex.metrics.data import kernel_matrix, residual_d2_error
    from covertreex.residual import JITTER

    U = X[problem.inducing]
    m, d = len(U), X.shape[1]
    s2 = JITTER * variance
    kernel_err = kernel_error(problem.kernel, d, variance)
    K_hat = kernel_matrix(U, U, problem.kernel, problem.lengthscale, variance)
    A_hat = K_hat + s2 * np.eye(m)
    # L L^T >= K + s2t I: the factor's backward error, the kernel's error and the jitter's rounding.
    delta_a = (fro(L @ L.T - A_hat) + gamma(m + 2) * fro(np.abs(L) @ np.abs(L).T)
               + m * kernel_err + np.sqrt(m) * U64 * (variance + s2))
    s2t = s2 - delta_a
    if not s2t > 0:
        return None
    lam, Q = np.linalg.eigh(K_hat)
    lam = np.maximum(lam, 0.0)
    s2p = S2P * variance
    f = np.sqrt(np.maximum(s2 - (s2 - s2p) ** 2 / (lam + s2), 0.0)) / (lam + s2p)
    M0 = Q * f
    # ||Q diag(f)||_2 <= max f * ||Q^T Q||_2^(1/2), and ||Q^T Q - I||_2 <= its computed Frobenius + rounding.
    norm_q = np.sqrt(1 + fro(Q.T @ Q - np.eye(m)) + gamma(m + 2) * m)
    S0, eps0 = certificate(K_hat, M0, norm_q * f.max(), s2t, kernel_err)
    c = 1.0 / ((np.linalg.eigvalsh(S0).max() + eps0) * (1 + 1e-6))  # chosen by LAPACK, proven below
    if not 0 < c <= 1 + 1e-3:
        return None
    Mc = M0 * np.sqrt(c)
    norm_mc = norm_q * f.max() * np.sqrt(c) * (1 + (2 * np.sqrt(m) + 4) * U64)  # Q f, then sqrt(c), rounded
    S, eps = certificate(K_hat, Mc, norm_mc, s2t, kernel_err)
    if not verified(S, eps):
        return None
    P = L.T @ Mc
    # |fl(L^T Mc) - L^T Mc| <= gamma_m |L^T| |Mc| entrywise; the nonnegative product's own rounding is
    # covered by the factor 2.
    err_p = 2 * gamma(m) * fro_up(np.abs(L.T) @ np.abs(Mc))
    E = residual_d2_error(m, d, variance, 1.0)  # the canonical evaluation's error numerator (scale 1)
    values = {"gamma": gamma(m + 2), "gamma_m": gamma(m), "kernel_term": np.sqrt(m) * kernel_err,
              "fro_l": fro_up(L), "sqrt_s2t": np.sqrt(s2t), "norm_mc": norm_mc, "err_p": err_p,
              "fro_p": fro_up(P), "variance": variance, "sqrt_e": np.sqrt(E)}
    fixed = _Fixed(P, np.array([values[name] for name in ROW_CONSTANTS]))
    return fixed if _solved_within_bound(problem, U, L, fixed) else None


def _solved_within_bound(problem, U, L, fixed: _Fixed) -> bool:
    """Whether V's rows meet the solve's a-priori bound (the module docstring) on :data:`CHECKED_ROWS` rows
    spread evenly: each residual k^_i - L v_i, formed again in f64, within the bound plus that product's
    own rounding, gamma_m ||L||_F ||v_i||, with a factor 2 to spare."""
    from covertreex.metrics.data import kernel_matrix

    n, m = problem.V.shape
    rows = np.unique(np.linspace(0, n - 1, min(n, CHECKED_ROWS)).astype(np.int64))
    V = problem.V[rows]
    K_xu = kernel_matrix(problem.X[rows], U, problem.kernel, problem.lengthscale, problem.variance)
    residual = np.linalg.norm(K_xu - V @ L.T, axis=1)
    norm_v = np.linalg.norm(V, axis=1)
    allowed = 2 * (_deviation(fixed, norm_v) + gamma(m) * fixed.constant("fro_l") * norm_v
                   + 2 * U64 * np.linalg.norm(K_xu, axis=1))
    return bool(np.all(residual <= allowed))


def _deviation(fixed: _Fixed, norm_v: np.ndarray) -> np.ndarray:
    """An upper bound on ||k_i - L v_i|| (k_i the exact kernel row) given the computed ||v_i||: the kernel
    rows' error and the solve's backward error (module docstring). rust's split_rows forms the same
    quantity per row from the same constants (tests/covertreex/test_split_screen.py compares them)."""
    g = fixed.constant("gamma")
    return (fixed.constant("kernel_term") + g * fixed.constant("fro_l") * norm_v * (1 + g)) * (1 + 4 * U64)


def _build(problem, fixed: _Fixed) -> SplitScreen:
    X, width = problem.X, fixed.P.shape[1]
    q = np.empty((len(X), width), dtype=np.int8)
    factors = np.empty((len(X), len(FACTORS)))
    rest = np.empty(len(X))
    work = _Work(width, min(ROWS, len(X)))

    def rows_from(start: int) -> None:
        rows = slice(start, min(start + ROWS, len(X)))
        rest[rows] = _rows(problem, rows, fixed, q, factors, work)

    _on_cpus(rows_from, range(0, len(X), ROWS))
    q.flags.writeable = False  # q is this build's alone: read-only, SplitScreen takes it without a copy
    return SplitScreen(q, factors, float(np.median(rest)), source_of(X, problem.p))


@dataclass(frozen=True)
class _Fixed:
    """What every block of rows takes from the build: P = L^T Mc, and the :data:`ROW_CONSTANTS` rust's
    split_rows reads (among them upper bounds on ||Mc||_2, ||L||_F and ||P||_F, err_p >= ||P - L^T Mc||_F).
    """

    P: np.ndarray
    constants: np.ndarray

    def constant(self, name: str) -> float:
        return float(self.constants[ROW_CONSTANTS.index(name)])


class _Work(threading.local):
    """A thread's block of Z for :func:`_rows`, reused from block to block (a fresh one would page in, where
    the environment pins glibc's mmap threshold, see covertreex.malloc_thresholds)."""

    def __init__(self, m: int, rows: int):
        self.Z = np.empty((rows, m))


ROW_CONSTANTS = ("gamma", "gamma_m", "kernel_term", "fro_l", "sqrt_s2t", "norm_mc", "err_p", "fro_p",
                 "variance", "sqrt_e")
"""What the rust engine's split_rows (rust/core/src/dense/split_rows.rs, which forms each row's int8 z and
factors as this module's docstring derives them) takes from the problem, in this order: gamma_(m+2) and
gamma_m, sqrt(m) times the kernel values' error, upper bounds on ||L||_F, sqrt(s~^2), ||Mc||_2, the bound
err_p, ||P||_F, the variance, and sqrt of the canonical evaluation's error numerator
(covertreex.metrics.data.residual_d2_error at scale 1). Made once per basis (:class:`_Fixed`)."""


def _rows(problem, rows: slice, fixed: _Fixed, q, factors, work: _Work) -> np.ndarray:
    """The int8 rows of Z and the bound's factors of X[rows] (written into q and factors); returns their
    sqrt(e/p). The GEMM takes the whole block (see :data:`ROWS`), the rest is rust's split_rows."""
    from covertreex import twins

    n = rows.stop - rows.start
    Z = np.matmul(problem.V[rows], fixed.P, out=work.Z[:n])
    q[rows], factors[rows], rest = twins.rust_twin("split_rows")(Z, problem.V[rows], problem.p[rows],
                                                                 fixed.constants)
    return rest
