//! Evaluating a group of distances from one point: one by one (parity mode, the literal port of gold) or
//! in lockstep groups of LANES (perf mode, `metric::distances`). Every value is bit for bit the scalar
//! one, so perf mode keeps gold's answers, trees and counters exactly; this module only groups.

use std::array::from_fn;

use crate::errors::{CoreError, Result};
use crate::metric::{distance, distances, MetricData};

/// The widest lockstep group in perf mode (a group's tail goes in groups of 4, 2, then one by one).
pub const LANES: usize = 8;

/// How the rust engine evaluates the distances it needs (telemetry's `mode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// One distance at a time, in gold's order.
    Parity,
    /// Groups of LANES distances in lockstep (same values, same order of use).
    Perf,
}

impl Mode {
    /// The mode named `name` ("parity" or "perf").
    pub fn from_name(name: &str) -> Result<Mode> {
        match name {
            "parity" => Ok(Mode::Parity),
            "perf" => Ok(Mode::Perf),
            _ => Err(CoreError::UnknownName {
                what: "mode",
                name: name.to_string(),
                allowed: "'parity' or 'perf'",
            }),
        }
    }

    /// d(row `a` of `da`, row `b` of `db`) for every b in `nodes`, into `out` (same length).
    pub fn distances(
        self,
        da: &MetricData,
        a: usize,
        a_index: i64,
        db: &MetricData,
        nodes: &[usize],
        out: &mut [f64],
    ) {
        if self == Mode::Parity {
            for (&b, d) in nodes.iter().zip(out.iter_mut()) {
                *d = distance(da, a, a_index, db, b);
            }
            return;
        }
        let rest = lockstep::<LANES>(da, a, a_index, db, nodes, out);
        let rest = lockstep::<4>(da, a, a_index, db, rest.0, rest.1);
        let rest = lockstep::<2>(da, a, a_index, db, rest.0, rest.1);
        for (&b, d) in rest.0.iter().zip(rest.1.iter_mut()) {
            *d = distance(da, a, a_index, db, b);
        }
    }
}

/// Evaluate the leading whole groups of N nodes in lockstep; return the nodes and outputs left over.
fn lockstep<'n, 'o, const N: usize>(
    da: &MetricData,
    a: usize,
    a_index: i64,
    db: &MetricData,
    nodes: &'n [usize],
    out: &'o mut [f64],
) -> (&'n [usize], &'o mut [f64]) {
    let mut groups = nodes.chunks_exact(N);
    let mut outs = out.chunks_exact_mut(N);
    for (group, dst) in (&mut groups).zip(&mut outs) {
        let group: [usize; N] = from_fn(|j| group[j]);
        dst.copy_from_slice(&distances(da, a, a_index, db, &group));
    }
    (groups.remainder(), outs.into_remainder())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::metric::{Kernel, Matrix, Metric};

    /// Pseudo-random values in [-1, 1) (a fixed LCG; the core has no RNG dependency).
    pub(crate) fn values(n: usize, seed: u64) -> Vec<f64> {
        let mut state = seed;
        (0..n)
            .map(|_| {
                state = state
                    .wrapping_mul(6_364_136_223_846_793_005)
                    .wrapping_add(1_442_695_040_888_963_407);
                (state >> 11) as f64 / (1u64 << 52) as f64 - 1.0
            })
            .collect()
    }

    #[test]
    fn lockstep_is_bitwise_the_scalar_distance() {
        let (n, d, m) = (40, 3, 33);
        let x = values(n * d, 1);
        let v: Vec<f64> = values(n * m, 2).iter().map(|a| a * 0.1).collect();
        let p: Vec<f64> = (0..n)
            .map(|i| 1.0 - v[i * m..(i + 1) * m].iter().map(|a| a * a).sum::<f64>())
            .collect();
        for (metric, kernel) in [
            (Metric::Euclidean, Kernel::Rbf),
            (Metric::Residual, Kernel::Rbf),
            (Metric::Residual, Kernel::Matern52),
        ] {
            let data = MetricData {
                metric,
                kernel,
                variance: 1.0,
                lengthscale: &[0.7, 1.1, 0.9],
                x: Matrix::new("X", &x, n, d).unwrap(),
                v: Matrix::new("V", &v, n, m).unwrap(),
                p: &p,
                slack: 0.0,
            };
            for len in [0, 1, 2, 3, 5, 7, 8, 9, 15, 17, 39] {
                let nodes: Vec<usize> = (0..len).map(|i| (i * 7 + 3) % n).collect();
                let a_index = nodes.get(2).map_or(-1, |&b| b as i64);
                let (mut fast, mut slow) = (vec![0.0; len], vec![0.0; len]);
                Mode::Perf.distances(&data, 5, a_index, &data, &nodes, &mut fast);
                Mode::Parity.distances(&data, 5, a_index, &data, &nodes, &mut slow);
                let bits = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
                assert_eq!(bits(&fast), bits(&slow), "{metric:?} {kernel:?} len {len}");
                if len > 2 {
                    assert_eq!(fast[2], 0.0, "d(i, i) = 0 by index");
                }
            }
        }
    }

    #[test]
    fn modes_are_named() {
        assert_eq!(Mode::from_name("perf"), Ok(Mode::Perf));
        assert!(Mode::from_name("fast").is_err());
    }
}
