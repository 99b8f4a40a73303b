//! Data shared by the core's unit tests.

use crate::metric::{Kernel, Matrix, Metric, MetricData};

static ONES: [f64; 400] = [1.0; 400];

/// Euclidean points of the plane: `x` holds n <= 400 rows of two coordinates, row-major.
pub fn plane(x: &[f64]) -> MetricData<'_> {
    let n = x.len() / 2;
    MetricData {
        metric: Metric::Euclidean,
        kernel: Kernel::Rbf,
        variance: 1.0,
        lengthscale: &[1.0, 1.0],
        x: Matrix::new("X", x, n, 2).unwrap(),
        v: Matrix::new("V", &[], n, 0).unwrap(),
        p: &ONES[..n],
        slack: 0.0,
    }
}
