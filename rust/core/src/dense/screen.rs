//! Screening bounds of the dense path: a GEMM value turned into a rigorous interval on a *key* that
//! orders pairs exactly as the canonical distance does (smaller key = closer). Bounds are computed a
//! point-block row at a time in branch-free loops that LLVM vectorises.
//!
//! GEMM reorders the dot product, so its value `g` differs from the canonical sequential sum. For any
//! summation order (blocked, FMA or not), |fl(a.b) - a.b| <= gamma_n ||a|| ||b||, gamma_n = n u/(1 - n u),
//! u = eps/2, and the canonical sum obeys the same bound. Each pair gets `lo <= key_c <= hi`, where
//! `key_c` is the key of the canonical distance. If T is the k-th smallest `hi` of a query, at least k
//! pairs have canonical distance <= D(T), so a pair with `lo > widen(T)` has a canonical distance
//! *strictly* above the k-th: it can never enter the answer, not even by a tie. Every other pair is
//! re-evaluated canonically, so the answer and its distance bits are those of the canonical metric.
//!
//! Residual (key = -s, s = min(1, |rho|), canonical distance sqrt(1 - s), non-increasing in s): the
//! coordinates' r2 and every factor of the kernel before its exp are computed in the canonical order
//! (bit-identical), but exp is the vectorisable one of `super::exp`, so the kernel value k_a may differ
//! from the canonical k_c, and the dot product differs. With r_i = 1/sqrt(p_i), n_i = ||V_i|| as
//! computed and rho_a = ((k_a - g) r_i) r_j:
//!   |rho_a - rho_c| <= a_i a_j + (KERNEL_REL k_a + kernel_floor) r_i r_j + 16 eps |rho_a| + 16 eps,
//!   a_i = sqrt(2 gamma_{m+4}) n_i (1 + (m+4) eps) r_i (1 + 16 eps).
//! The first term is the two dot products' error 2 gamma_m ||V_i|| ||V_j|| divided by sqrt(p_i p_j)
//! (n_i and r_i inflated for their own rounding); the second is the kernel's (see [`KERNEL_REL`]); the
//! third covers the roundings of k - g, of the scaling (3 in the canonical division, 6 here) and of the
//! bound itself; the last covers rounding in s +/- E. widen(T) = T + 8 eps: if s' < s - 8 eps then
//! fl(1 - s') > fl(1 - s) + 7 eps and the correctly rounded square roots differ, so the canonical
//! distances are strictly ordered. covertreex/metrics/kernels.py holds this bound for gold, whose screening
//! evaluates the kernel with libm (k_a = k_c), so its kernel term is zero; all other terms are shared.
//!
//! Euclidean (key = d^2): g = x.y, approx = max(0, |x|^2 + |y|^2 - 2 g), and
//!   |approx - acc_c| <= 16 (d + 4) eps (|x|^2 + |y|^2),
//! covering the GEMM's and the canonical sum's gamma_d errors and the roundings of the norms and of
//! the combination. widen(T) = T (1 + 8 eps): x > y (1 + 4 eps) implies fl(sqrt x) > fl(sqrt y).

use super::exp::{exp_nonpositive, EXP_ABS, EXP_REL};
use crate::metric::{gamma, kernel_with, Kernel, Metric, MetricData};
use crate::query::QueryBatch;

const EPS: f64 = f64::EPSILON;

/// |k_a - k_c| <= KERNEL_REL k_a + kernel_floor. Both kernels end in one multiplication w * exp(x)
/// whose factor w and argument x are bit-identical on both sides, so for x >= UNDERFLOW_ARG (normal
/// values) |k_a - k_c| <= EXP_REL w e_c + u (k_a + k_c) <= (64 u + 2 u) k_a (1 + 70 u). The term is
/// scaled by r_i r_j where the canonical value divides by fl(sqrt(fl(p_i p_j))) (a factor <= 1 + 6 u
/// between them) and is itself computed with 5 roundings: 66 u (1 + 82 u) < 68 u = KERNEL_REL.
const KERNEL_REL: f64 = EXP_REL + 2.0 * EPS;

/// The absolute part of the kernel's bound for variance s2. Below UNDERFLOW_ARG the fast exp is 0 and
/// k_c <= s2 (1 + 8 u) max(1, 1 + a + a^2/3) e^-a (Matern's factor times e^-a falls with a, here
/// a > 708, and 1 + 708 + 708^2/3 < 2^17.4), so k_c < s2 2^18 EXP_ABS. A subnormal k_a or k_c errs by
/// <= 2^-1075 absolute, as does a subnormal KERNEL_REL k_a: 2^-1020 covers them. As
/// p_i <= max(s2, 1e-9), r_i r_j >= 1 / max(s2, 1e-9) and the floor's products stay normal, so their
/// roundings are relative (within the margins above).
fn kernel_floor(variance: f64) -> f64 {
    variance * (EXP_ABS * 2f64.powi(18)) + 2f64.powi(-1020)
}

/// Per-row factors of one data set (indexed points or query rows) that the bound uses.
#[derive(Debug, Clone, Default)]
pub struct RowFactors {
    /// Residual: 1/sqrt(p_i). Euclidean: |x_i|^2.
    pub scale: Vec<f64>,
    /// Residual: a_i of the bound. Euclidean: unused (empty).
    pub error: Vec<f64>,
}

/// The GEMM operand of a metric: V for the residual metric, the coordinates for Euclidean.
pub fn operand<'a>(data: &MetricData<'a>) -> (&'a [f64], usize) {
    match data.metric {
        Metric::Residual => (data.v.values(), data.v.cols()),
        Metric::Euclidean => (data.x.values(), data.x.cols()),
    }
}

/// ||row||^2 with four interleaved partial sums (vectorised, no serial dependency chain). The bound
/// holds for any summation order: the inflations of n_i and of the Euclidean norms cover them all.
fn norm2(row: &[f64]) -> f64 {
    let mut partial = [0.0; 4];
    let quads = row.chunks_exact(4);
    let tail = quads.remainder();
    for quad in quads {
        for (acc, v) in partial.iter_mut().zip(quad) {
            *acc += v * v;
        }
    }
    let head = (partial[0] + partial[1]) + (partial[2] + partial[3]);
    tail.iter().fold(head, |acc, v| acc + v * v)
}

impl RowFactors {
    /// The factors of rows `rows` of `data`, in that order.
    pub fn of(data: &MetricData, rows: impl Iterator<Item = usize>) -> RowFactors {
        let (values, width) = operand(data);
        let norms2 = rows.map(|i| (i, norm2(&values[i * width..(i + 1) * width])));
        if data.metric == Metric::Euclidean {
            return RowFactors {
                scale: norms2.map(|(_, n2)| n2).collect(),
                error: Vec::new(),
            };
        }
        let m = data.v.cols();
        let c = (2.0 * gamma(m + 4)).sqrt() * (1.0 + (m + 4) as f64 * EPS) * (1.0 + 16.0 * EPS);
        let (scale, error) = norms2
            .map(|(i, n2)| {
                let r = 1.0 / data.p[i].sqrt();
                (r, c * n2.sqrt() * r)
            })
            .unzip();
        RowFactors { scale, error }
    }
}

/// One worker's row of key bounds (and its r2 scratch), as long as the longest point block.
#[derive(Debug, Clone, Default)]
pub struct Keys {
    lo: Vec<f64>,
    hi: Vec<f64>,
    r2: Vec<f64>,
}

impl Keys {
    pub fn with_len(len: usize) -> Keys {
        Keys {
            lo: vec![0.0; len],
            hi: vec![0.0; len],
            r2: vec![0.0; len],
        }
    }
}

/// Everything the bound of one query batch needs: both data sets and their row factors (the queries'
/// by position in the batch).
pub struct Screen<'a> {
    pub queries: &'a MetricData<'a>,
    /// The batch's rows of `queries`.
    query_index: &'a [i64],
    pub data: &'a MetricData<'a>,
    pub query_rows: RowFactors,
    pub data_rows: RowFactors,
    euclid: f64,
    /// Residual: the indexed points' coordinates column by column (d x n), so that the row loops load
    /// them contiguously. Euclidean: empty.
    columns: Vec<f64>,
    kernel_floor: f64,
}

impl<'a> Screen<'a> {
    /// The screen of a checked batch (its rows index `batch.data`).
    pub fn new(batch: &'a QueryBatch<'a>, data: &'a MetricData<'a>) -> Screen<'a> {
        let queries = &batch.data;
        let euclid = 16.0 * (data.x.cols() + 4) as f64 * EPS;
        let (n, d) = (data.n_points(), data.x.cols());
        let columns = match data.metric {
            Metric::Euclidean => Vec::new(),
            Metric::Residual => (0..d)
                .flat_map(|t| (0..n).map(move |j| data.x.row(j)[t]))
                .collect(),
        };
        Screen {
            queries,
            query_index: batch.rows,
            data,
            query_rows: RowFactors::of(queries, batch.rows.iter().map(|&r| r as usize)),
            data_rows: RowFactors::of(data, 0..n),
            euclid,
            columns,
            kernel_floor: kernel_floor(queries.variance),
        }
    }

    /// The key of a pair at canonical distance 0 (a query and its own dataset index).
    pub fn self_key(&self) -> f64 {
        match self.data.metric {
            Metric::Residual => -1.0,
            Metric::Euclidean => 0.0,
        }
    }

    /// The threshold below which a pair's `lo` keeps it a candidate, given the k-th smallest `hi`.
    #[inline]
    pub fn widen(&self, t: f64) -> f64 {
        match self.data.metric {
            Metric::Residual => t + 8.0 * EPS,
            Metric::Euclidean => t * (1.0 + 8.0 * EPS),
        }
    }

    /// (lo, hi) on the canonical keys of the batch's query `q` against points j0, j0 + 1, .., one per GEMM
    /// value of `g`, written into `keys` and returned.
    pub fn bounds<'k>(
        &self,
        keys: &'k mut Keys,
        q: usize,
        j0: usize,
        g: &[f64],
    ) -> (&'k mut [f64], &'k mut [f64]) {
        let len = g.len();
        let (lo, hi, r2) = (
            &mut keys.lo[..len],
            &mut keys.hi[..len],
            &mut keys.r2[..len],
        );
        #[cfg(target_arch = "x86_64")]
        if std::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU has just been seen to support AVX2.
            unsafe { self.fill_avx2(lo, hi, r2, q, j0, g) };
            return (lo, hi);
        }
        self.fill(lo, hi, r2, q, j0, g);
        (lo, hi)
    }

    /// [`Self::fill`] compiled for AVX2: four lanes instead of SSE2's two, the same IEEE operations
    /// (Rust never contracts to FMA), so the same bits.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    fn fill_avx2(
        &self,
        lo: &mut [f64],
        hi: &mut [f64],
        r2: &mut [f64],
        q: usize,
        j0: usize,
        g: &[f64],
    ) {
        self.fill(lo, hi, r2, q, j0, g);
    }

    #[inline(always)]
    fn fill(&self, lo: &mut [f64], hi: &mut [f64], r2: &mut [f64], q: usize, j0: usize, g: &[f64]) {
        if self.data.metric == Metric::Euclidean {
            let norm_q = self.query_rows.scale[q];
            let norms = &self.data_rows.scale[j0..j0 + g.len()];
            for (((lo, hi), &g), &norm_j) in lo.iter_mut().zip(hi.iter_mut()).zip(g).zip(norms) {
                let norms = norm_q + norm_j;
                let approx = (norms - 2.0 * g).max(0.0);
                let e = self.euclid * norms;
                (*lo, *hi) = (approx - e, approx + e);
            }
            return;
        }
        self.fill_r2(r2, q, j0);
        let variance = self.queries.variance;
        match self.queries.kernel {
            Kernel::Rbf => self.residual_bounds(lo, hi, r2, q, j0, g, |r2| {
                kernel_with(Kernel::Rbf, variance, r2, exp_nonpositive)
            }),
            Kernel::Matern52 => self.residual_bounds(lo, hi, r2, q, j0, g, |r2| {
                kernel_with(Kernel::Matern52, variance, r2, exp_nonpositive)
            }),
        }
    }

    /// r2 of the batch's query `q` against points j0.. in the canonical order: per pair, a sequential sum over
    /// the dimensions from 0.0 (here dimension by dimension over the whole row).
    #[inline(always)]
    fn fill_r2(&self, r2: &mut [f64], q: usize, j0: usize) {
        let n = self.data.n_points();
        let query = self.queries.x.row(self.query_index[q] as usize);
        let term = |x: f64, y: f64, l: f64| {
            let z = (x - y) / l;
            z * z
        };
        for (t, (&x, &l)) in query.iter().zip(self.queries.lengthscale).enumerate() {
            let column = &self.columns[t * n + j0..t * n + j0 + r2.len()];
            let pairs = r2.iter_mut().zip(column);
            if t == 0 {
                // The canonical 0.0 + z * z is z * z itself (z * z is never -0.0).
                pairs.for_each(|(acc, &y)| *acc = term(x, y, l));
            } else {
                pairs.for_each(|(acc, &y)| *acc += term(x, y, l));
            }
        }
    }

    /// The residual bounds of the module docs, with `kernel` mapping r2 to k_a.
    #[allow(clippy::too_many_arguments)]
    #[inline(always)]
    fn residual_bounds(
        &self,
        lo: &mut [f64],
        hi: &mut [f64],
        r2: &[f64],
        q: usize,
        j0: usize,
        g: &[f64],
        kernel: impl Fn(f64) -> f64,
    ) {
        let points = j0..j0 + g.len();
        let (scale_q, error_q) = (self.query_rows.scale[q], self.query_rows.error[q]);
        let scales = &self.data_rows.scale[points.clone()];
        let errors = &self.data_rows.error[points];
        let pairs = lo.iter_mut().zip(hi.iter_mut()).zip(r2).zip(g);
        for ((((lo, hi), &r2), &g), (&scale_j, &error_j)) in pairs.zip(scales.iter().zip(errors)) {
            let k = kernel(r2);
            let rho = (k - g) * scale_q * scale_j;
            let mag = rho.abs();
            let kernel_error = (KERNEL_REL * k + self.kernel_floor) * scale_q * scale_j;
            let e = error_q * error_j + kernel_error + 16.0 * EPS * mag + 16.0 * EPS;
            let hi_s = (mag + e).min(1.0);
            let lo_s = (mag - e).clamp(0.0, 1.0);
            (*lo, *hi) = (-hi_s, -lo_s);
        }
    }
}
