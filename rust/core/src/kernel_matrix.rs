//! The matrices V's construction needs (DESIGN section 3), with the metric's canonical formulas: the
//! kernel k(A_i, B_j) of every row pair and every row's squared norm; V's rows in a new order (a Vecchia
//! ordering); and the forward substitution that gives a query point its V row. covertreex/metrics/data.py
//! calls them through the extension where it is built, so that a rust job never loads Numba (its import
//! is about 0.2 s of a fresh process), and their Numba or NumPy twins otherwise. Each value is one
//! element's (or row's) sequential formula (libm's `exp` included) or a copy, so both give the same bits
//! on any thread count; tests/covertreex/test_kernel_twins.py compares them. They run on rayon's global
//! pool, so each first refuses an absurd RAYON_NUM_THREADS (`query::require_sane_global_pool`).

use rayon::prelude::*;

use crate::errors::{check_sizes, CoreError, Result};
use crate::metric::{kernel_value, scaled_r2_of, Kernel, Matrix};
use crate::query::require_sane_global_pool;

/// Rows per rayon task (independent of the thread count; values never depend on it).
const ROWS: usize = 64;

/// Values written per rayon task when an output is first filled: the pages of a large output (V is
/// 128 MiB at N = 32,768, m = 512) are faulted in by every worker, not by one.
const FILL: usize = 1 << 16;

/// An empty vector with room for exactly `len` values, or an error naming `what` instead of an abort
/// when they cannot be allocated (`len` None: the size overflowed).
fn reserved(len: Option<usize>, what: &'static str) -> Result<Vec<f64>> {
    let too_large = CoreError::BadValue {
        what,
        value: len.map_or(i64::MAX, |n| n.min(i64::MAX as usize) as i64),
        allowed: "an output that fits in memory",
    };
    let len = len.ok_or(too_large.clone())?;
    let mut out = Vec::new();
    out.try_reserve_exact(len).map_err(|_| too_large)?;
    Ok(out)
}

/// `len` zeros, or an error naming `what` instead of an abort when they cannot be allocated.
fn zeros(len: Option<usize>, what: &'static str) -> Result<Vec<f64>> {
    let mut out = reserved(len, what)?;
    let len = len.unwrap_or(0);
    out.spare_capacity_mut()[..len]
        .par_chunks_mut(FILL)
        .for_each(|chunk| chunk.iter_mut().for_each(|x| _ = x.write(0.0)));
    // SAFETY: the first `len` values of the capacity were all written just above.
    unsafe { out.set_len(len) };
    Ok(out)
}

/// The rows `order[0], order[1], ..` of `v` as a new row-major matrix (a Vecchia ordering's V), copied in
/// parallel; an index outside 0..rows is an error naming its position.
pub fn take_rows(v: Matrix, order: &[i64]) -> Result<Vec<f64>> {
    require_sane_global_pool()?;
    let rows = v.rows();
    if let Some((position, &index)) =
        (order.iter().enumerate()).find(|&(_, &i)| i < 0 || i as usize >= rows)
    {
        return Err(CoreError::IndexOutOfRange {
            what: "order",
            position,
            index,
            bound: rows,
        });
    }
    let m = v.cols();
    let len = order.len().checked_mul(m);
    let mut out = reserved(len, "rows taken: cells")?;
    let len = order.len() * m; // no overflow: `reserved` checked it
    if len > 0 {
        (out.spare_capacity_mut()[..len].par_chunks_mut(ROWS.saturating_mul(m)))
            .zip(order.par_chunks(ROWS))
            .for_each(|(to, indices)| {
                for (row, &i) in to.chunks_exact_mut(m).zip(indices) {
                    for (to, &from) in row.iter_mut().zip(v.row(i as usize)) {
                        to.write(from);
                    }
                }
            });
    }
    // SAFETY: the chunks of `order` cover the first len = order.len() m values, each written above.
    unsafe { out.set_len(len) };
    Ok(out)
}

/// k(A_i, B_j) for every row pair (A's rows x B's rows, row-major): r2 as `metric::scaled_r2_of`, then
/// `metric::kernel_value`. A, B and `lengthscale` share d >= 1 columns.
pub fn kernel_matrix(
    a: Matrix,
    b: Matrix,
    lengthscale: &[f64],
    kernel: Kernel,
    variance: f64,
) -> Result<Vec<f64>> {
    require_sane_global_pool()?;
    let d = a.cols();
    check_sizes(&[
        ("kernel matrix: columns of B", d, b.cols()),
        ("kernel matrix: lengthscales", d, lengthscale.len()),
    ])?;
    if d == 0 {
        return Err(CoreError::BadValue {
            what: "kernel matrix: columns",
            value: 0,
            allowed: ">= 1",
        });
    }
    let n_b = b.rows();
    let mut out = zeros(a.rows().checked_mul(n_b), "kernel matrix: cells")?;
    if n_b == 0 {
        return Ok(out);
    }
    // Saturating: with no rows of A, n_b may be any size (the chunks are then never formed).
    out.par_chunks_mut(ROWS.saturating_mul(n_b))
        .zip(a.values().par_chunks(ROWS.saturating_mul(d)))
        .for_each(|(rows, xs)| {
            for (row, x) in rows.chunks_exact_mut(n_b).zip(xs.chunks_exact(d)) {
                for (value, y) in row.iter_mut().zip(b.values().chunks_exact(d)) {
                    *value = kernel_value(kernel, variance, scaled_r2_of(x, y, lengthscale));
                }
            }
        });
    Ok(out)
}

/// ||V_i||^2 of every row, summed over V's columns in order.
pub fn squared_norms(v: Matrix) -> Result<Vec<f64>> {
    require_sane_global_pool()?;
    let mut out = zeros(Some(v.rows()), "squared norms: rows")?;
    let m = v.cols();
    if m == 0 {
        return Ok(out);
    }
    out.par_chunks_mut(ROWS * 16)
        .zip(v.values().par_chunks((ROWS * 16).saturating_mul(m)))
        .for_each(|(norms, rows)| {
            for (norm, row) in norms.iter_mut().zip(rows.chunks_exact(m)) {
                *norm = row.iter().fold(0.0, |acc, x| acc + x * x);
            }
        });
    Ok(out)
}

/// Row i of the result solves `L v = K_i` (L: m x m lower triangular, K: n x m, both row-major):
/// `v_t = (K_it - sum_{s<t} L_ts v_s) / L_tt`, the sum in index order, each row on its own, so a row's
/// bits never depend on the other rows or the thread count (covertreex.metrics.kernels'
/// `forward_substitution_rows`, line for line: a query point's V row).
pub fn forward_substitution_rows(l: Matrix, k: Matrix) -> Result<Vec<f64>> {
    require_sane_global_pool()?;
    let m = k.cols();
    check_sizes(&[
        ("forward substitution: rows of L", m, l.rows()),
        ("forward substitution: columns of L", m, l.cols()),
    ])?;
    let mut out = zeros(k.rows().checked_mul(m), "forward substitution: cells")?;
    if m == 0 {
        return Ok(out);
    }
    out.par_chunks_mut(ROWS.saturating_mul(m))
        .zip(k.values().par_chunks(ROWS.saturating_mul(m)))
        .for_each(|(solved, given)| {
            for (v, row) in solved.chunks_exact_mut(m).zip(given.chunks_exact(m)) {
                for t in 0..m {
                    let l_row = l.row(t);
                    let mut acc = row[t];
                    for s in 0..t {
                        acc -= l_row[s] * v[s];
                    }
                    v[t] = acc / l_row[t];
                }
            }
        });
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_value_is_the_scalar_formula() {
        let a: Vec<f64> = (0..15).map(|i| (i as f64 * 0.37).sin()).collect();
        let b: Vec<f64> = (0..9).map(|i| (i as f64 * 1.3).cos() * 2.0).collect();
        let ls = [0.7, 1.0, 2.5];
        for kernel in [Kernel::Rbf, Kernel::Matern52] {
            let (ma, mb) = (matrix(&a, 5, 3), matrix(&b, 3, 3));
            let out = kernel_matrix(ma, mb, &ls, kernel, 1.7).unwrap();
            assert_eq!(out.len(), 5 * 3);
            for i in 0..5 {
                for j in 0..3 {
                    let r2 = scaled_r2_of(&a[i * 3..i * 3 + 3], &b[j * 3..j * 3 + 3], &ls);
                    let want = kernel_value(kernel, 1.7, r2);
                    assert_eq!(out[i * 3 + j].to_bits(), want.to_bits());
                }
            }
        }
        let norms = squared_norms(matrix(&a, 5, 3)).unwrap();
        assert_eq!(norms.len(), 5);
        for (i, norm) in norms.iter().enumerate() {
            let row = &a[i * 3..i * 3 + 3];
            let want = ((0.0 + row[0] * row[0]) + row[1] * row[1]) + row[2] * row[2];
            assert_eq!(norm.to_bits(), want.to_bits());
        }
    }

    #[test]
    fn forward_substitution_solves_each_row_in_index_order() {
        let l = [2.0, 0.0, 0.0, 0.5, 1.5, 0.0, -0.25, 0.75, 3.0];
        let k: Vec<f64> = (0..7 * 3).map(|i| (i as f64 * 0.61).sin()).collect();
        let out = forward_substitution_rows(matrix(&l, 3, 3), matrix(&k, 7, 3)).unwrap();
        for (v, row) in out.chunks_exact(3).zip(k.chunks_exact(3)) {
            let v0 = row[0] / 2.0;
            let v1 = (row[1] - 0.5 * v0) / 1.5;
            let v2 = ((row[2] - -0.25 * v0) - 0.75 * v1) / 3.0;
            assert_eq!(
                v.iter().map(|x| x.to_bits()).collect::<Vec<_>>(),
                [v0, v1, v2].map(f64::to_bits)
            );
        }
        assert!(forward_substitution_rows(matrix(&l, 3, 3), matrix(&k[..14], 7, 2)).is_err());
        assert!(forward_substitution_rows(matrix(&l[..6], 2, 3), matrix(&k, 7, 3)).is_err());
        assert!(
            forward_substitution_rows(matrix(&[], 0, 0), matrix(&[], 4, 0))
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn taken_rows_are_the_rows_in_order_and_bad_indices_are_errors() {
        let v: Vec<f64> = (0..200 * 3).map(|i| i as f64 * 0.5).collect();
        let order: Vec<i64> = (0..200).map(|i| (i * 37 + 11) % 200).collect();
        let taken = take_rows(matrix(&v, 200, 3), &order).unwrap();
        for (row, &i) in taken.chunks_exact(3).zip(&order) {
            assert_eq!(row, &v[i as usize * 3..i as usize * 3 + 3]);
        }
        let repeated = take_rows(matrix(&v, 200, 3), &[5, 5, 0]).unwrap();
        assert_eq!(repeated, [&v[15..18], &v[15..18], &v[..3]].concat());
        assert!(take_rows(matrix(&v, 200, 3), &[]).unwrap().is_empty());
        let wide = 1usize << 58; // no rows: any width, and no chunk size may overflow
        assert!(take_rows(matrix(&[], 0, wide), &[]).unwrap().is_empty());
        assert!(squared_norms(matrix(&[], 0, wide)).unwrap().is_empty());
        let none = kernel_matrix(
            matrix(&[], 0, 1),
            matrix(&[0.0], 1, 1),
            &[1.0],
            Kernel::Rbf,
            1.0,
        );
        assert!(none.unwrap().is_empty());
        assert_eq!(take_rows(matrix(&[], 4, 0), &[3, 0]).unwrap().len(), 0);
        for bad in [200, -1] {
            assert!(matches!(
                take_rows(matrix(&v, 200, 3), &[0, 1, bad]),
                Err(CoreError::IndexOutOfRange {
                    what: "order",
                    position: 2,
                    ..
                })
            ));
        }
    }

    #[test]
    fn mismatched_shapes_and_impossible_sizes_are_errors() {
        let (a, b) = ([0.0; 6], [0.0; 4]);
        let run = |b: Matrix, ls: &[f64]| kernel_matrix(matrix(&a, 3, 2), b, ls, Kernel::Rbf, 1.0);
        assert_eq!(run(matrix(&b, 2, 2), &[1.0, 1.0]).unwrap().len(), 6);
        assert!(run(matrix(&b, 1, 4), &[1.0, 1.0]).is_err());
        assert!(run(matrix(&b, 2, 2), &[1.0]).is_err());
        let empty = kernel_matrix(matrix(&[], 3, 0), matrix(&[], 2, 0), &[], Kernel::Rbf, 1.0);
        assert!(empty.is_err());
        assert!(matches!(
            zeros(None, "cells"),
            Err(CoreError::BadValue { what: "cells", .. })
        ));
        assert!(zeros(Some(usize::MAX / 4), "cells").is_err());
    }

    fn matrix(values: &[f64], rows: usize, cols: usize) -> Matrix<'_> {
        Matrix::new("test", values, rows, cols).unwrap()
    }
}
