//! The metric of record (DESIGN section 3), line for line with covertreex/metrics/kernels.py, and the
//! rounding bounds that keep exactness despite rounding.
//!
//! ```text
//! Euclidean:  d(x, y) = sqrt(sum_t (x_t - y_t)^2)                      summed t = 0..d-1
//! Residual:   r2 = sum_t ((x_t - y_t) / l_t)^2
//!             k = s2 exp(-r2 / 2)  (RBF)  or  s2 (1 + a + a^2 / 3) exp(-a), a = sqrt(5 r2)  (Matern 5/2)
//!             p_i = max(s2 - ||V_i||^2, 1e-9)
//!             rho_ij = (k(x_i, x_j) - V_i . V_j) / sqrt(p_i p_j)      (V_i . V_j summed over m in order)
//!             d_ij = sqrt(max(0, 1 - min(1, |rho_ij|))),  d_ii = 0 exactly (same dataset index)
//! ```
//!
//! Bitwise parity with the gold engine rests on the operation order: every sum runs sequentially in index
//! order, nothing is contracted to FMA (Rust never does that on its own), `exp` is the platform libm's and
//! `sqrt` is IEEE. The bounds: `lower`/`upper` widen a computed distance into bounds on the exact one
//! (with the slack covertreex/metrics/data.py computes), so that pruning stays exact; `gamma` bounds a
//! dot product summed in any order, the base of the dense screening interval (dense/screen.rs, which
//! adds the terms of its vectorised kernel).

use std::array::from_fn;

use crate::errors::{check_sizes, CoreError, Result};

/// Which distance a [`MetricData`] defines (the integer codes of covertreex/metrics/data.py).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Metric {
    Euclidean = 0,
    Residual = 1,
}

/// The stationary kernel of the residual metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kernel {
    Rbf = 0,
    Matern52 = 1,
}

impl Metric {
    /// The metric with integer code `code` (0 Euclidean, 1 residual).
    pub fn from_code(code: i64) -> Result<Metric> {
        match code {
            0 => Ok(Metric::Euclidean),
            1 => Ok(Metric::Residual),
            _ => Err(CoreError::BadValue {
                what: "metric code",
                value: code,
                allowed: "0 (euclidean) or 1 (residual)",
            }),
        }
    }
}

impl Kernel {
    /// The kernel with integer code `code` (0 RBF, 1 Matern 5/2).
    pub fn from_code(code: i64) -> Result<Kernel> {
        match code {
            0 => Ok(Kernel::Rbf),
            1 => Ok(Kernel::Matern52),
            _ => Err(CoreError::BadValue {
                what: "kernel code",
                value: code,
                allowed: "0 (rbf) or 1 (matern52)",
            }),
        }
    }
}

/// A row-major float64 matrix view whose length is checked against its shape.
#[derive(Debug, Clone, Copy)]
pub struct Matrix<'a> {
    data: &'a [f64],
    rows: usize,
    cols: usize,
}

impl<'a> Matrix<'a> {
    /// View `data` as `rows` x `cols`; `what` names the array in the error.
    pub fn new(what: &'static str, data: &'a [f64], rows: usize, cols: usize) -> Result<Self> {
        let expected = rows.checked_mul(cols).ok_or(CoreError::DimensionMismatch {
            what,
            expected: usize::MAX,
            got: data.len(),
        })?;
        if data.len() != expected {
            return Err(CoreError::DimensionMismatch {
                what,
                expected,
                got: data.len(),
            });
        }
        Ok(Matrix { data, rows, cols })
    }

    pub fn rows(&self) -> usize {
        self.rows
    }

    pub fn cols(&self) -> usize {
        self.cols
    }

    pub fn row(&self, i: usize) -> &'a [f64] {
        &self.data[i * self.cols..(i + 1) * self.cols]
    }

    /// All elements, row-major.
    pub fn values(&self) -> &'a [f64] {
        self.data
    }
}

/// Everything a distance needs (the MetricData NamedTuple of covertreex/metrics/data.py).
#[derive(Debug, Clone, Copy)]
pub struct MetricData<'a> {
    pub metric: Metric,
    pub kernel: Kernel,
    pub variance: f64,
    /// One lengthscale per dimension.
    pub lengthscale: &'a [f64],
    /// Coordinates, n x d.
    pub x: Matrix<'a>,
    /// Low-rank factor, n x m (m = 0 for Euclidean).
    pub v: Matrix<'a>,
    /// Residual variances, n (ones for Euclidean).
    pub p: &'a [f64],
    /// Euclidean: relative error bound; residual: bound on |computed d^2 - exact d^2|.
    pub slack: f64,
}

pub(crate) fn all_finite(what: &'static str, values: &[f64]) -> Result<()> {
    // A branch-free test per chunk (vectorised: this runs over all of V on every query call); the
    // position is searched for only once something is wrong.
    let finite = |chunk: &[f64]| chunk.iter().fold(true, |ok, v| ok & v.is_finite());
    if values.chunks(1024).all(finite) {
        return Ok(());
    }
    match values.iter().position(|v| !v.is_finite()) {
        Some(position) => Err(CoreError::NonFinite { what, position }),
        None => Ok(()),
    }
}

fn all_positive(what: &'static str, values: &[f64]) -> Result<()> {
    all_finite(what, values)?;
    match values.iter().position(|v| *v <= 0.0) {
        Some(position) => Err(CoreError::NotPositive {
            what,
            position,
            value: values[position],
        }),
        None => Ok(()),
    }
}

impl MetricData<'_> {
    pub fn n_points(&self) -> usize {
        self.x.rows()
    }

    /// Check that the arrays agree in shape and hold usable values (so distances never index out of
    /// bounds and never see NaN from bad parameters).
    pub fn check(&self) -> Result<()> {
        self.check_shapes()?;
        self.check_values(false)
    }

    /// The shape half of [`Self::check`]: afterwards every row of X and V and every p can be read.
    pub(crate) fn check_shapes(&self) -> Result<()> {
        let n = self.x.rows();
        if n == 0 {
            return Err(CoreError::Empty { what: "X" });
        }
        if self.x.cols() == 0 {
            return Err(CoreError::Empty { what: "X columns" });
        }
        check_sizes(&[
            ("V rows (one per point of X)", n, self.v.rows()),
            ("P length (one per point of X)", n, self.p.len()),
            (
                "lengthscale length (one per column of X)",
                self.x.cols(),
                self.lengthscale.len(),
            ),
        ])
    }

    /// The value half of [`Self::check`], after [`Self::check_shapes`]. `v_finite`: the caller
    /// proves every value of V finite itself (or checks it with [`Self::check_v`]), so V (all n x m
    /// of it) is not read here.
    pub(crate) fn check_values(&self, v_finite: bool) -> Result<()> {
        all_finite("X", self.x.values())?;
        if !v_finite {
            self.check_v()?;
        }
        all_positive("P", self.p)?;
        all_positive("lengthscale", self.lengthscale)?;
        all_positive("variance", &[self.variance])?;
        all_finite("slack", &[self.slack])?;
        if self.slack < 0.0 {
            return Err(CoreError::NotPositive {
                what: "slack",
                position: 0,
                value: self.slack,
            });
        }
        Ok(())
    }

    /// Every coordinate of the rows `rows` of X finite (the error gives the position in all of X): what
    /// a search that reads those rows of X alone needs.
    pub(crate) fn check_x_rows(&self, rows: &[i64]) -> Result<()> {
        let d = self.x.cols();
        for &row in rows {
            let row = row as usize;
            all_finite("X", self.x.row(row)).map_err(|e| match e {
                CoreError::NonFinite { what, position } => CoreError::NonFinite {
                    what,
                    position: row * d + position,
                },
                other => other,
            })?;
        }
        Ok(())
    }

    /// V's part of [`Self::check_values`]: every value finite.
    pub(crate) fn check_v(&self) -> Result<()> {
        all_finite("V", self.v.values())
    }

    /// Whether `other` views the very same arrays with the same parameters, so that checking one
    /// checks both (indexed queries pass the indexed data itself).
    pub fn same_as(&self, other: &MetricData) -> bool {
        let same = |a: &[f64], b: &[f64]| a.as_ptr() == b.as_ptr() && a.len() == b.len();
        self.metric == other.metric
            && self.kernel == other.kernel
            && self.variance.to_bits() == other.variance.to_bits()
            && self.slack.to_bits() == other.slack.to_bits()
            && same(self.lengthscale, other.lengthscale)
            && same(self.p, other.p)
            && same(self.x.values(), other.x.values())
            && self.x.cols() == other.x.cols()
            && same(self.v.values(), other.v.values())
            && self.v.cols() == other.v.cols()
    }

    /// Check that queries `self` can be measured against `data`: same metric, kernel and shapes.
    pub fn check_compatible(&self, data: &MetricData) -> Result<()> {
        if self.metric != data.metric {
            return Err(CoreError::BadValue {
                what: "query metric code",
                value: self.metric as i64,
                allowed: "the metric code of the indexed data",
            });
        }
        if self.kernel != data.kernel {
            return Err(CoreError::BadValue {
                what: "query kernel code",
                value: self.kernel as i64,
                allowed: "the kernel code of the indexed data",
            });
        }
        check_sizes(&[
            ("query columns", data.x.cols(), self.x.cols()),
            ("query V columns", data.v.cols(), self.v.cols()),
        ])
    }
}

/// k(r2) for the kernel, in kernels.py's operation order.
pub fn kernel_value(kernel: Kernel, variance: f64, r2: f64) -> f64 {
    let (factor, argument) = kernel_parts(kernel, variance, r2);
    factor * argument.exp()
}

/// The kernel as `factor * exp(argument)`, both computed in kernels.py's operation order: k(r2) is
/// this product with libm's `exp` (the canonical value); the dense screening multiplies the same
/// factor by its bounded vectorised exp.
#[inline(always)]
pub fn kernel_parts(kernel: Kernel, variance: f64, r2: f64) -> (f64, f64) {
    match kernel {
        Kernel::Rbf => (variance, -r2 / 2.0),
        Kernel::Matern52 => {
            let a = (5.0 * r2).sqrt();
            (variance * (1.0 + a + a * a / 3.0), -a)
        }
    }
}

/// The canonical Euclidean sum of squared differences, `a` first, in index order: the square of
/// [`distance`] before its rounded square root.
#[inline]
pub fn squared_sum(a: &[f64], b: &[f64]) -> f64 {
    let mut acc = 0.0;
    for (p, q) in a.iter().zip(b) {
        let diff = p - q;
        acc += diff * diff;
    }
    acc
}

/// d(row `a` of `da`, row `b` of `db`); `a_index` is a's dataset index (or -1) so that d(i, i) is 0.
/// Shapes must have passed [`MetricData::check_compatible`].
pub fn distance(da: &MetricData, a: usize, a_index: i64, db: &MetricData, b: usize) -> f64 {
    if a_index == b as i64 {
        return 0.0;
    }
    if da.metric == Metric::Euclidean {
        return squared_sum(da.x.row(a), db.x.row(b)).sqrt();
    }
    let (r2, dot) = residual_sums(da, a, db, b);
    residual_from(da, r2, dot, da.p[a], db.p[b])
}

/// d(row `a`, row b) for the N rows b in `nodes` in lockstep (the rust engine's perf mode): each lane
/// runs [`distance`]'s sums sequentially in index order, but the lanes interleave, so the CPU overlaps N
/// add chains instead of waiting on one. Every lane is bit for bit [`distance`] (evaluate.rs tests it);
/// the one-lane loops stay separate because a zip over two slices compiles to fewer instructions.
pub fn distances<const N: usize>(
    da: &MetricData,
    a: usize,
    a_index: i64,
    db: &MetricData,
    nodes: &[usize; N],
) -> [f64; N] {
    let xa = da.x.row(a);
    let d = xa.len();
    let xb: [&[f64]; N] = from_fn(|j| &db.x.row(nodes[j])[..d]);
    let mut acc = [0.0f64; N];
    let values = if da.metric == Metric::Euclidean {
        for (t, p) in xa.iter().enumerate() {
            for (sum, row) in acc.iter_mut().zip(&xb) {
                let diff = p - row[t];
                *sum += diff * diff;
            }
        }
        acc.map(f64::sqrt)
    } else {
        for (t, (p, l)) in xa.iter().zip(da.lengthscale).enumerate() {
            for (sum, row) in acc.iter_mut().zip(&xb) {
                let z = (p - row[t]) / l;
                *sum += z * z;
            }
        }
        let va = da.v.row(a);
        let m = va.len();
        let vb: [&[f64]; N] = from_fn(|j| &db.v.row(nodes[j])[..m]);
        let mut dot = [0.0f64; N];
        for (c, p) in va.iter().enumerate() {
            for (sum, row) in dot.iter_mut().zip(&vb) {
                *sum += p * row[c];
            }
        }
        from_fn(|j| residual_from(da, acc[j], dot[j], da.p[a], db.p[nodes[j]]))
    };
    from_fn(|j| {
        if a_index == nodes[j] as i64 {
            0.0
        } else {
            values[j]
        }
    })
}

/// The residual metric's two sums for rows `a` of `da` and `b` of `db`, each sequential in index order:
/// the scaled squared coordinate distance r2 and the dot product of the V rows.
pub fn residual_sums(da: &MetricData, a: usize, db: &MetricData, b: usize) -> (f64, f64) {
    let r2 = scaled_r2(da, a, db, b);
    let mut dot = 0.0;
    for (p, q) in da.v.row(a).iter().zip(db.v.row(b)) {
        dot += p * q;
    }
    (r2, dot)
}

/// The scaled squared coordinate distance r2 of rows `a` of `da` and `b` of `db`, summed in index order.
pub(crate) fn scaled_r2(da: &MetricData, a: usize, db: &MetricData, b: usize) -> f64 {
    scaled_r2_of(da.x.row(a), db.x.row(b), da.lengthscale)
}

/// sum_t ((x_t - y_t) / l_t)^2, sequentially from t = 0 (kernels.py's order).
#[inline]
pub fn scaled_r2_of(x: &[f64], y: &[f64], lengthscale: &[f64]) -> f64 {
    let mut r2 = 0.0;
    for ((p, q), l) in x.iter().zip(y).zip(lengthscale) {
        let z = (p - q) / l;
        r2 += z * z;
    }
    r2
}

/// The residual distance from its sums: the scaled squared coordinate distance `r2`, the dot product of
/// the two V rows, and the two residual variances (shared by the scalar and lockstep evaluations).
pub(crate) fn residual_from(da: &MetricData, r2: f64, dot: f64, pa: f64, pb: f64) -> f64 {
    distance_of_similarity(similarity_from(da, r2, dot, pa, pb))
}

/// The residual distance sqrt(max(0, 1 - s)) of similarity s, in the canonical operations: it does not
/// rise as s rises (the subtraction and the square root round monotonically).
pub fn distance_of_similarity(s: f64) -> f64 {
    let mut gap = 1.0 - s;
    if gap < 0.0 {
        gap = 0.0;
    }
    gap.sqrt()
}

/// s = min(1, |rho|) from the residual sums; the distance is sqrt(max(0, 1 - s)) (the dense path's
/// screening key is -s).
pub fn similarity_from(da: &MetricData, r2: f64, dot: f64, pa: f64, pb: f64) -> f64 {
    let k = kernel_value(da.kernel, da.variance, r2);
    let rho = (k - dot) / (pa * pb).sqrt();
    let mut mag = rho.abs();
    if mag > 1.0 {
        mag = 1.0;
    }
    mag
}

/// gamma_n = n u / (1 - n u): the relative error bound of an n-term dot product in any order.
pub fn gamma(n: usize) -> f64 {
    let nu = n as f64 * (f64::EPSILON / 2.0);
    nu / (1.0 - nu)
}

/// A lower bound on the exact distance whose computed value is `value`.
pub fn lower(metric: Metric, slack: f64, value: f64) -> f64 {
    if metric == Metric::Euclidean {
        return value * (1.0 - slack);
    }
    let sq = value * value - slack;
    if sq <= 0.0 {
        return 0.0;
    }
    sq.sqrt()
}

/// An upper bound on the exact distance whose computed value is `value`.
pub fn upper(metric: Metric, slack: f64, value: f64) -> f64 {
    if metric == Metric::Euclidean {
        return value * (1.0 + slack);
    }
    (value * value + slack).sqrt()
}

/// True when no descendant can have a computed distance <= threshold (so ties are never lost).
pub fn can_prune(
    metric: Metric,
    slack: f64,
    node_distance: f64,
    node_radius: f64,
    threshold: f64,
) -> bool {
    lower(metric, slack, node_distance) - upper(metric, slack, node_radius)
        > upper(metric, slack, threshold)
}

/// True when no point of a child's subtree can have a computed distance <= threshold, proved from its
/// parent's distance alone: d(q, x) >= d(q, parent) - d(parent, child) - d(child, x), with the computed
/// d(parent, child) at most `child_cover` and d(child, x) at most `child_radius` (the proof and its
/// rounding are in covertreex/metrics/kernels.py's `can_skip_child`, operation for operation).
pub fn can_skip_child(
    metric: Metric,
    slack: f64,
    parent_distance: f64,
    child_cover: f64,
    child_radius: f64,
    threshold: f64,
) -> bool {
    let reach = (upper(metric, slack, child_cover) + upper(metric, slack, child_radius))
        * (1.0 + 4.0 * f64::EPSILON);
    lower(metric, slack, parent_distance) - reach > upper(metric, slack, threshold)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn euclidean<'a>(x: &'a [f64], ones: &'a [f64], ls: &'a [f64], d: usize) -> MetricData<'a> {
        let n = x.len() / d;
        MetricData {
            metric: Metric::Euclidean,
            kernel: Kernel::Rbf,
            variance: 1.0,
            lengthscale: ls,
            x: Matrix::new("X", x, n, d).unwrap(),
            v: Matrix::new("V", &[], n, 0).unwrap(),
            p: ones,
            slack: 0.0,
        }
    }

    #[test]
    fn euclidean_three_four_five() {
        let x = [0.0, 0.0, 3.0, 4.0];
        let data = euclidean(&x, &[1.0, 1.0], &[1.0, 1.0], 2);
        data.check().unwrap();
        assert_eq!(distance(&data, 0, -1, &data, 1), 5.0);
        assert_eq!(distance(&data, 1, -1, &data, 0), 5.0);
        // Same dataset index: exactly zero, even though the rows differ.
        assert_eq!(distance(&data, 0, 1, &data, 1), 0.0);
    }

    #[test]
    fn same_as_means_the_same_arrays_not_equal_values() {
        let (x, ones, ls) = ([0.0, 0.0, 3.0, 4.0], [1.0, 1.0], [1.0, 1.0]);
        let data = euclidean(&x, &ones, &ls, 2);
        assert!(data.same_as(&euclidean(&x, &ones, &ls, 2)));
        let copy = x;
        assert!(!data.same_as(&euclidean(&copy, &ones, &ls, 2)));
        assert!(!data.same_as(&euclidean(&x, &ones, &ls, 1)));
        assert!(!data.same_as(&MetricData {
            variance: 2.0,
            ..data
        }));
    }

    #[test]
    fn kernels_match_hand_computed_values() {
        assert_eq!(kernel_value(Kernel::Rbf, 2.0, 0.0), 2.0);
        let expected = 1.5 * (-1.0f64).exp();
        assert_eq!(kernel_value(Kernel::Rbf, 1.5, 2.0), expected);
        // Matern 5/2 at r2 = 0.8: a = 2, k = s2 * (1 + 2 + 4/3) * e^-2.
        let m = kernel_value(Kernel::Matern52, 1.0, 0.8);
        assert!((m - (13.0 / 3.0) * (-2.0f64).exp()).abs() < 1e-15);
        assert_eq!(kernel_value(Kernel::Matern52, 3.0, 0.0), 3.0);
    }

    #[test]
    fn residual_distance_of_orthogonal_residuals() {
        // Two points far apart (k = 0 in float64) with orthogonal V rows: rho = 0, d = 1.
        let x = [0.0, 100.0];
        let v = [0.5, 0.0, 0.0, 0.5];
        let p = [0.75, 0.75];
        let data = MetricData {
            metric: Metric::Residual,
            kernel: Kernel::Rbf,
            variance: 1.0,
            lengthscale: &[1.0],
            x: Matrix::new("X", &x, 2, 1).unwrap(),
            v: Matrix::new("V", &v, 2, 2).unwrap(),
            p: &p,
            slack: 1e-12,
        };
        data.check().unwrap();
        assert_eq!(distance(&data, 0, -1, &data, 1), 1.0);
        // A point against itself under another index: k = 1, V.V = 0.25, rho = 0.75/0.75 = 1, d = 0.
        assert_eq!(distance(&data, 0, -1, &data, 0), 0.0);
    }

    #[test]
    fn bounds_bracket_the_value_and_prune_strictly() {
        for metric in [Metric::Euclidean, Metric::Residual] {
            let (lo, hi) = (lower(metric, 1e-6, 0.5), upper(metric, 1e-6, 0.5));
            assert!(lo < 0.5 && 0.5 < hi);
            assert!(
                !can_prune(metric, 0.0, 1.0, 0.5, 0.5),
                "equality must not prune"
            );
            assert!(can_prune(metric, 0.0, 1.0, 0.25, 0.5));
        }
        assert_eq!(lower(Metric::Residual, 1.0, 0.5), 0.0);
    }

    #[test]
    fn check_names_the_bad_array() {
        let x = [0.0, f64::NAN];
        let data = euclidean(&x, &[1.0, 1.0], &[1.0], 1);
        assert_eq!(
            data.check(),
            Err(CoreError::NonFinite {
                what: "X",
                position: 1
            })
        );
        let x = [0.0, 1.0];
        let data = euclidean(&x, &[1.0], &[1.0], 1);
        assert!(matches!(
            data.check(),
            Err(CoreError::DimensionMismatch { what, .. }) if what.starts_with("P")
        ));
        assert!(Matrix::new("X", &x, 3, 1).is_err());
        assert!(Metric::from_code(2).is_err() && Kernel::from_code(-1).is_err());
    }
}
