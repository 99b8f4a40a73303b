//! Hilbert-curve keys of points on a quantised grid (Skilling's transpose method): the rust twin of
//! covertreex.hilbert_curve.quantised_keys, line for line (the same f64 quantisation, the same u64 bit
//! operations), so a rust job orders its query blocks (and a fit its `order='hilbert'` insertion order)
//! without loading Numba.

use rayon::prelude::*;

use crate::errors::{check_sizes, CoreError, Result};
use crate::metric::Matrix;

/// The key of every row of `points`: each coordinate is put on a grid of 2^bits cells per dimension by
/// `floor((x - lo) / span * (2^bits - 1))`, clamped to the grid, and the cells are mapped to their
/// position along the Hilbert curve; bits shifted beyond 64 are dropped, as uint64 arithmetic drops them.
/// Serial: the Python twin's callers have no thread budget to give ([`order`] shares its keys out).
pub fn quantised_keys(points: Matrix, lo: &[f64], span: &[f64], bits: i64) -> Result<Vec<u64>> {
    let grid = Grid::new(points, lo, span, bits)?;
    let mut cells = vec![0u64; points.cols()];
    Ok((0..points.rows())
        .map(|row| grid.key(points.row(row), &mut cells))
        .collect())
}

/// The grid of [`quantised_keys`], its arguments checked.
struct Grid<'a> {
    lo: &'a [f64],
    span: &'a [f64],
    bits: u32,
    top: u64,
    high: u64,
}

impl<'a> Grid<'a> {
    fn new(points: Matrix, lo: &'a [f64], span: &'a [f64], bits: i64) -> Result<Grid<'a>> {
        let d = points.cols();
        check_sizes(&[
            ("hilbert keys: lo", d, lo.len()),
            ("hilbert keys: span", d, span.len()),
        ])?;
        if d == 0 {
            return Err(CoreError::BadValue {
                what: "hilbert keys: columns",
                value: 0,
                allowed: ">= 1",
            });
        }
        if !(1..=63).contains(&bits) {
            return Err(CoreError::BadValue {
                what: "hilbert keys: bits",
                value: bits,
                allowed: "between 1 and 63",
            });
        }
        let bits = bits as u32;
        Ok(Grid {
            lo,
            span,
            bits,
            top: (1u64 << bits) - 1,
            high: 1u64 << (bits - 1),
        })
    }

    /// The key of one row (`cells`: scratch of one cell per coordinate).
    fn key(&self, row: &[f64], cells: &mut [u64]) -> u64 {
        let top = self.top as f64;
        let bounds = self.lo.iter().zip(self.span);
        for ((&value, cell), (&lo, &span)) in row.iter().zip(cells.iter_mut()).zip(bounds) {
            let scaled = ((value - lo) / span * top).floor();
            *cell = scaled.max(0.0).min(top) as u64;
        }
        key_of(cells, self.bits, self.high)
    }
}

/// The lowest and highest coordinates of `rows` (of `d` values each).
pub(crate) fn span_of<'r>(rows: impl Iterator<Item = &'r [f64]>, d: usize) -> (Vec<f64>, Vec<f64>) {
    let mut lo = vec![f64::INFINITY; d];
    let mut hi = vec![f64::NEG_INFINITY; d];
    for row in rows {
        for ((lo, hi), &value) in lo.iter_mut().zip(hi.iter_mut()).zip(row) {
            *lo = lo.min(value);
            *hi = hi.max(value);
        }
    }
    (lo, hi)
}

/// The rows of `points` along the Hilbert curve, ties by row: covertreex.ordering.hilbert_order's rule
/// (min(16, 63 / d) bits per dimension on the grid spanning the points; a flat dimension spans 1), the
/// keys shared out on the caller's rayon pool (each is its row's alone).
pub fn order(points: Matrix) -> Result<Vec<usize>> {
    let d = points.cols();
    let (lo, hi) = span_of((0..points.rows()).map(|row| points.row(row)), d);
    let span: Vec<f64> = (lo.iter().zip(&hi))
        .map(|(lo, hi)| if hi > lo { hi - lo } else { 1.0 })
        .collect();
    let grid = Grid::new(points, &lo, &span, (63 / d.max(1) as i64).clamp(1, 16))?;
    let keys: Vec<u64> = (0..points.rows())
        .into_par_iter()
        .with_min_len(KEYS_PER_TASK)
        .map_init(
            || vec![0u64; d],
            |cells, row| grid.key(points.row(row), cells),
        )
        .collect();
    let mut order: Vec<usize> = (0..points.rows()).collect();
    order.par_sort_unstable_by_key(|&j| (keys[j], j));
    Ok(order)
}

/// Rows per unit of parallel work of [`order`]'s keys.
const KEYS_PER_TASK: usize = 4096;

/// The Hilbert key of one point's cells `x` (overwritten).
fn key_of(x: &mut [u64], bits: u32, high: u64) -> u64 {
    let d = x.len();
    let mut q = high;
    while q > 1 {
        // Skilling's inverse undo, high bit first
        let p = q - 1;
        for i in 0..d {
            // if x[i] has bit q, x[0] ^= p; else x[0] and x[i] swap their bits below q: without a
            // branch (the bits are random along the curve, and mispredictions cost more than the work)
            let set = 0u64.wrapping_sub((x[i] & q != 0) as u64);
            let t = (x[0] ^ x[i]) & p & !set;
            x[0] ^= (p & set) | t;
            x[i] ^= t;
        }
        q >>= 1;
    }
    for i in 1..d {
        // Gray encode
        x[i] ^= x[i - 1];
    }
    let mut t = 0u64;
    let mut q = high;
    while q > 1 {
        if x[d - 1] & q != 0 {
            t ^= q - 1;
        }
        q >>= 1;
    }
    let mut key = 0u64;
    for bit in (0..bits).rev() {
        // interleave the transposed bits, most significant first
        for &cell in x.iter() {
            key = (key << 1) | (((cell ^ t) >> bit) & 1);
        }
    }
    key
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_of_the_2d_curve_of_order_one_follow_the_curve() {
        // The four cells of a 2 x 2 grid, visited (0,0), (0,1), (1,1), (1,0) by the curve.
        let cells = [0.0, 0.0, 1.0, 0.0, 1.0, 1.0, 0.0, 1.0];
        let points = Matrix::new("points", &cells, 4, 2).unwrap();
        let keys = quantised_keys(points, &[0.0, 0.0], &[1.0, 1.0], 1).unwrap();
        let mut sorted = keys.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted, vec![0, 1, 2, 3]);
    }

    #[test]
    fn bad_arguments_are_errors() {
        let points = Matrix::new("points", &[0.0, 1.0], 1, 2).unwrap();
        assert!(quantised_keys(points, &[0.0], &[1.0, 1.0], 4).is_err());
        assert!(quantised_keys(points, &[0.0, 0.0], &[1.0, 1.0], 0).is_err());
        assert!(quantised_keys(points, &[0.0, 0.0], &[1.0, 1.0], 64).is_err());
        let no_columns = Matrix::new("points", &[], 3, 0).unwrap();
        assert!(quantised_keys(no_columns, &[], &[], 4).is_err());
    }

    #[test]
    fn many_dimensions_drop_high_bits_instead_of_panicking() {
        let values = vec![0.5; 100];
        let points = Matrix::new("points", &values, 1, 100).unwrap();
        assert_eq!(
            quantised_keys(points, &[0.0; 100], &[1.0; 100], 1)
                .unwrap()
                .len(),
            1
        );
    }
}
