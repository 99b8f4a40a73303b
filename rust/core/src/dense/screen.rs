//! Screening bounds of the dense path: a GEMM value turned into a rigorous interval on a *key* that
//! orders pairs exactly as the canonical distance does (smaller key = closer), with the same operation
//! count and constants as covertreex/engines/dense_screen.py.
//!
//! GEMM reorders the dot product, so its value `g` differs from the canonical sequential sum. For any
//! summation order (blocked, FMA or not), |fl(a.b) - a.b| <= gamma_n ||a|| ||b||, gamma_n = n u/(1 - n u),
//! u = eps/2, and the canonical sum obeys the same bound. Each pair gets `lo <= key_c <= hi`, where
//! `key_c` is the key of the canonical distance. If T is the k-th smallest `hi` of a query, at least k
//! pairs have canonical distance <= D(T), so a pair with `lo > widen(T)` has a canonical distance
//! *strictly* above the k-th: it can never enter the answer, not even by a tie. Every other pair is
//! re-evaluated canonically, so the answer and its distance bits are those of the canonical metric.
//!
//! Residual (key = -s, s = min(1, |rho|), canonical distance sqrt(1 - s), non-increasing in s): the kernel
//! value is computed with the canonical code itself (bit-identical), so only the dot product differs.
//! With r_i = 1/sqrt(p_i) and n_i = ||V_i|| as computed, and rho_a = ((k - g) r_i) r_j:
//!   |rho_a - rho_c| <= a_i a_j + 16 eps |rho_a| + 16 eps,
//!   a_i = sqrt(2 gamma_{m+4}) n_i (1 + (m+4) eps) r_i (1 + 16 eps).
//! The first term is the two dot products' error 2 gamma_m ||V_i|| ||V_j|| divided by sqrt(p_i p_j)
//! (n_i and r_i inflated for their own rounding); the second covers the roundings of k - g, of the
//! scaling (3 in the canonical division, 6 here) and of the bound itself; the last covers rounding in
//! s +/- E. widen(T) = T + 8 eps: if s' < s - 8 eps then fl(1 - s') > fl(1 - s) + 7 eps and the
//! correctly rounded square roots differ, so the canonical distances are strictly ordered.
//!
//! Euclidean (key = d^2): g = x.y, approx = max(0, |x|^2 + |y|^2 - 2 g), and
//!   |approx - acc_c| <= 16 (d + 4) eps (|x|^2 + |y|^2),
//! covering the GEMM's and the canonical sum's gamma_d errors and the roundings of the norms and of
//! the combination. widen(T) = T (1 + 8 eps): x > y (1 + 4 eps) implies fl(sqrt x) > fl(sqrt y).

use crate::metric::{kernel_value, Metric, MetricData};

const EPS: f64 = f64::EPSILON;

/// gamma_n = n u / (1 - n u): the relative error bound of an n-term dot product in any order.
pub fn gamma(n: usize) -> f64 {
    let nu = n as f64 * (EPS / 2.0);
    nu / (1.0 - nu)
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

impl RowFactors {
    /// The factors of every row of `data`.
    pub fn of(data: &MetricData) -> RowFactors {
        let (values, width) = operand(data);
        let norms2 = values.chunks(width.max(1)).map(|row| {
            let mut acc = 0.0;
            for v in row {
                acc += v * v;
            }
            acc
        });
        if data.metric == Metric::Euclidean {
            return RowFactors {
                scale: norms2.take(data.n_points()).collect(),
                error: Vec::new(),
            };
        }
        let m = data.v.cols();
        let c = (2.0 * gamma(m + 4)).sqrt() * (1.0 + (m + 4) as f64 * EPS) * (1.0 + 16.0 * EPS);
        let scale: Vec<f64> = data.p.iter().map(|p| 1.0 / p.sqrt()).collect();
        let error = norms2
            .take(data.n_points())
            .zip(&scale)
            .map(|(n2, r)| c * n2.sqrt() * r)
            .collect();
        RowFactors { scale, error }
    }
}

/// Everything the bound of one query batch needs: both data sets and their row factors.
pub struct Screen<'a> {
    pub queries: &'a MetricData<'a>,
    pub data: &'a MetricData<'a>,
    pub query_rows: RowFactors,
    pub data_rows: RowFactors,
    euclid: f64,
}

impl<'a> Screen<'a> {
    pub fn new(queries: &'a MetricData<'a>, data: &'a MetricData<'a>) -> Screen<'a> {
        let euclid = 16.0 * (data.x.cols() + 4) as f64 * EPS;
        Screen {
            queries,
            data,
            query_rows: RowFactors::of(queries),
            data_rows: RowFactors::of(data),
            euclid,
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

    /// (lo, hi) on the canonical key of query row `q` against point `j`, from the GEMM value `g`.
    #[inline]
    pub fn bounds(&self, q: usize, j: usize, g: f64) -> (f64, f64) {
        if self.data.metric == Metric::Euclidean {
            let norms = self.query_rows.scale[q] + self.data_rows.scale[j];
            let approx = (norms - 2.0 * g).max(0.0);
            let e = self.euclid * norms;
            return (approx - e, approx + e);
        }
        let (xq, xj) = (self.queries.x.row(q), self.data.x.row(j));
        let mut r2 = 0.0;
        for ((p, v), l) in xq.iter().zip(xj).zip(self.queries.lengthscale) {
            let z = (p - v) / l;
            r2 += z * z;
        }
        let k = kernel_value(self.queries.kernel, self.queries.variance, r2);
        let rho = (k - g) * self.query_rows.scale[q] * self.data_rows.scale[j];
        let mag = rho.abs();
        let e = self.query_rows.error[q] * self.data_rows.error[j] + 16.0 * EPS * mag + 16.0 * EPS;
        let hi_s = (mag + e).min(1.0);
        let lo_s = (mag - e).clamp(0.0, 1.0);
        (-hi_s, -lo_s)
    }
}
