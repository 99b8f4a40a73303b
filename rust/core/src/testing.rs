//! Data shared by the core's unit tests.

use crate::metric::{squared_sum, Kernel, Matrix, Metric, MetricData};

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

/// The next state of a xorshift generator (never 0 from a nonzero state).
pub fn xorshift(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

/// n points of d coordinates: uniform (kind 0), on a small integer lattice (1: ties and duplicates
/// everywhere), or a few sites far apart with tiny offsets near 1e6 (other kinds: boxes whose bounds
/// round).
pub fn points(kind: usize, n: usize, d: usize, state: &mut u64) -> Vec<f64> {
    let unit = |bits: u64| (bits >> 11) as f64 / (1u64 << 53) as f64;
    (0..n * d)
        .map(|_| match kind {
            0 => unit(xorshift(state)),
            1 => (xorshift(state) % 3) as f64,
            _ => 1e6 + (xorshift(state) % 4) as f64 * 1e3 + unit(xorshift(state)) * 1e-9,
        })
        .collect()
}

/// A 7 x 7 integer lattice of the plane and 11 duplicates of its points: ties everywhere.
pub fn lattice() -> Vec<f64> {
    (0..60)
        .map(|i| if i < 49 { i } else { (i * 5) % 49 })
        .flat_map(|i| [(i % 7) as f64, (i / 7) as f64])
        .collect()
}

/// The Euclidean maximin order of `x` (rows of `d`) from `first` by a full scan of canonical distances
/// (`squared_sum`'s, then sqrt), ties to the smallest index.
pub fn brute_maximin(x: &[f64], d: usize, first: usize) -> Vec<i64> {
    let n = x.len() / d;
    let row = |i: usize| &x[i * d..(i + 1) * d];
    let mut nearest = vec![f64::INFINITY; n];
    let mut placed = vec![false; n];
    let mut order = vec![first as i64];
    let mut c = first;
    while order.len() < n {
        placed[c] = true;
        for (j, near) in nearest.iter_mut().enumerate() {
            *near = near.min(squared_sum(row(c), row(j)).sqrt());
        }
        let next = (0..n)
            .filter(|&j| !placed[j])
            .reduce(|b, j| if nearest[j] > nearest[b] { j } else { b })
            .expect("an unplaced point");
        order.push(next as i64);
        c = next;
    }
    order
}
