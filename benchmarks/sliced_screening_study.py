"""How many int8 slices an exact residual screening needs: a study on the gold workload's V (NumPy only).

The dense path screens every pair with an f64 GEMM value and a rigorous interval, then re-checks the pairs
that could matter canonically (rust/core/src/dense/screen.rs). An integer GEMM (AMX ``TDPBSSD``: int8
products summed exactly in int32) could stand in for the f64 GEMM only if its interval stays tight enough
that few extra pairs need the canonical re-check. This script builds that interval and counts them.

Slicing. Row i of V is scaled by s_i = 2^(floor(log2 max_t |V_it|) + 1), so u_i = V_i / s_i has |u_it| < 1
(exactly, a power-of-two scaling). Slice l = 1..S is a_il = trunc(r_l 128^l), r_1 = u_i and
r_(l+1) = r_l - a_il 128^-l, each step exact in f64, so |a_il| <= 127 and |u_it - sum_l a_ilt 128^-l| <
128^-S. The approximation keeps the slice products of levels l + l' <= S + 1 (each an exact integer dot
product, |a_il . a_jl'| <= m 127^2 < 2^31 for m <= 2^17) and scales them by s_i s_j 128^-(l + l').

Bound (the script asserts it on every pair): with w_i = ||u_i - r_(S+1)||_1 and n_il = ||a_il||_2,
    |V_i . V_j - approx| <= s_i s_j (128^-S (w_i + w_j) + m 128^-2S + D_ij),
    D_ij = sum over l + l' > S + 1 of 128^-(l + l') n_il n_jl',
the truncation of either side plus Cauchy-Schwarz on every dropped slice product (a kernel would add the
few units in the last place of combining the levels in f64, negligible against it). Divided by
sqrt(p_i p_j) it bounds the error of rho; the interval on the distance follows, T is a query's k-th smallest
upper bound and a pair is a candidate when its lower bound is at or below T. The f64 rows use the dense
path's dot-product term 2 gamma_m ||V_i|| ||V_j|| (its kernel and rounding terms are far smaller here).
The product-form rows bound the same error by alpha_i alpha_j, the shape of the dense screen's per-row
factors (rust/core/src/dense/screen.rs): with tau = 128^-S, N_i = max over l >= 2 of n_il (a dropped
product has l, l' >= 2) and c = sum over the dropped levels L of 128^-L times their number of slice pairs,
alpha_i = s_i (sqrt(c) N_i + sqrt(tau) (w_i + 1) + sqrt(m) tau); expanding the product gives every term
of the bound above, plus cross terms that are never negative.
Only the MAC count per pair is a cost figure; the AMX throughput is measured by benchmarks/amx_int8.

    python benchmarks/sliced_screening_study.py --n 32768 --queries 256
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np

import covertreex as ct

K, M, SEED = 50, 512, 42
BASE = 128.0


def slices(U: np.ndarray, S: int) -> tuple[list[np.ndarray], np.ndarray]:
    """The S int8-valued slices of U (as int64 arrays) and the remainder U - sum_l a_l 128^-l."""
    remainder, out = U.copy(), []
    for level in range(1, S + 1):
        a = np.trunc(remainder * BASE**level)
        out.append(a.astype(np.int64))
        remainder = remainder - a / BASE**level
    return out, remainder


def distance_interval(K_q, approx, error, scale):
    """Interval on the residual distance from an approximate dot product and its error bound."""
    centre = np.abs((K_q - approx) / scale)
    radius = error / scale
    hi_rho, lo_rho = centre + radius, np.maximum(0.0, centre - radius)
    lo = np.sqrt(np.maximum(0.0, 1.0 - np.minimum(1.0, hi_rho)))
    hi = np.sqrt(np.maximum(0.0, 1.0 - np.minimum(1.0, lo_rho)))
    return lo, hi


def candidates(lo, hi, own) -> np.ndarray:
    """Pairs per query whose lower bound is at or below the k-th smallest upper bound (self excluded)."""
    lo, hi = lo.copy(), hi.copy()
    rows = np.arange(lo.shape[0])
    lo[rows, own], hi[rows, own] = np.inf, np.inf
    threshold = np.sort(hi, axis=1)[:, K - 1]
    return (lo <= threshold[:, None]).sum(axis=1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=32768)
    parser.add_argument("--queries", type=int, default=256)
    parser.add_argument("--slices", type=int, nargs="+", default=[4, 5, 6])
    args = parser.parse_args()
    print(f"date {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; nproc {os.cpu_count()}; "
          f"N {args.n}, m {M}, k {K}, {args.queries} random queries (seed 0); X normal(seed {SEED}), RBF")
    X = np.random.default_rng(SEED).normal(size=(args.n, 3))
    problem = ct.residual_problem(X, m=M, seed=SEED)
    V, p = problem.V, problem.p
    q = np.random.default_rng(0).choice(args.n, args.queries, replace=False)
    K_q = np.exp(-((X[q, None, :] - X[None, :, :]) ** 2).sum(-1) / 2.0)
    exact = V[q] @ V.T
    scale = np.sqrt(p[q, None] * p[None, :])
    s = 2.0 ** (np.floor(np.log2(np.abs(V).max(axis=1))) + 1.0)
    U = V / s[:, None]
    assert np.abs(U).max() < 1.0
    norms = np.sqrt((V * V).sum(axis=1))
    eps = np.finfo(np.float64).eps / 2
    gamma = M * eps / (1 - M * eps)
    f64_error = 2.0 * gamma * np.outer(norms[q], norms)
    lo, hi = distance_interval(K_q, exact, f64_error, scale)
    f64 = candidates(lo, hi, q)
    print("| screening | slice products | int8 MACs per pair | max error / bound | rho bound median | "
          "rho bound p90 | candidates per query: median | p90 | max |")
    print("|---|---|---|---|---|---|---|---|---|")
    print(f"| f64 GEMM (the dense path) | | | | {np.median(f64_error / scale):.2g} | "
          f"{np.quantile(f64_error / scale, 0.9):.2g} | {np.median(f64):.0f} | {np.quantile(f64, 0.9):.0f} | "
          f"{f64.max()} |")
    for S in args.slices:
        parts, remainder = slices(U, S)
        assert np.abs(remainder).max() < BASE**-S
        w = np.abs(U - remainder).sum(axis=1)
        n_l = [np.sqrt((a.astype(np.float64) ** 2).sum(axis=1)) for a in parts]
        approx = np.zeros_like(exact)
        dropped = np.zeros_like(exact)
        kept = 0
        for l1 in range(1, S + 1):
            for l2 in range(1, S + 1):
                weight = BASE ** -(l1 + l2)
                if l1 + l2 <= S + 1:
                    approx += (parts[l1 - 1][q] @ parts[l2 - 1].T).astype(np.float64) * weight
                    kept += 1
                else:
                    dropped += np.outer(n_l[l1 - 1][q], n_l[l2 - 1]) * weight
        outer_s = np.outer(s[q], s)
        approx *= outer_s
        bound = outer_s * (BASE**-S * (w[q, None] + w[None, :]) + M * BASE ** (-2 * S) + dropped)
        tau = BASE**-S
        c = sum(BASE**-(l1 + l2) for l1 in range(2, S + 1) for l2 in range(2, S + 1) if l1 + l2 > S + 1)
        N = np.max(n_l[1:], axis=0)
        alpha = s * (np.sqrt(c) * N + np.sqrt(tau) * (w + 1.0) + np.sqrt(M) * tau)
        for form, error in (("sum", bound), ("product", np.outer(alpha[q], alpha))):
            ratio = np.abs(approx - exact) / error
            assert ratio.max() <= 1.0 + 1e-6, "the bound must hold on every pair"
            rho_bound = error / scale
            lo, hi = distance_interval(K_q, approx, error, scale)
            count = candidates(lo, hi, q)
            print(f"| int8 slices, S = {S}, {form} form | {kept} | {kept * M:,} | {ratio.max():.2g} | "
                  f"{np.median(rho_bound):.2g} | {np.quantile(rho_bound, 0.9):.2g} | "
                  f"{np.median(count):.0f} | {np.quantile(count, 0.9):.0f} | {count.max()} |", flush=True)


if __name__ == "__main__":
    main()
