//! The GEMM of one tile, through the `gemm` crate with its AVX-512 kernels (`x86-v4`, chosen at run time
//! where the CPU has AVX-512F), chosen over `matrixmultiply` and faer after measuring them on the tile
//! shapes on an AMD and an Intel machine (docs/benchmarks.md); single-threaded here because rayon
//! already runs one tile per worker.

/// `out` (rows x cols, row-major) = A B^T, where A is `rows` x `width` and B is `cols` x `width`, both
/// row-major and contiguous.
pub fn gram(out: &mut [f64], a: &[f64], b: &[f64], rows: usize, cols: usize, width: usize) {
    gram_strided(out, cols, a, b, rows, cols, width);
}

/// [`gram`] into the first `cols` columns of a row-major `out` whose rows are `stride` apart.
pub fn gram_strided(
    out: &mut [f64],
    stride: usize,
    a: &[f64],
    b: &[f64],
    rows: usize,
    cols: usize,
    width: usize,
) {
    assert!(cols <= stride && a.len() >= rows * width && b.len() >= cols * width);
    assert!(rows == 0 || out.len() >= (rows - 1) * stride + cols);
    if rows == 0 || cols == 0 {
        return;
    }
    if width == 0 {
        out.chunks_mut(stride)
            .take(rows)
            .for_each(|row| row[..cols].fill(0.0));
        return;
    }
    // SAFETY: the asserts above keep every access inside the three slices: out is rows x cols with
    // row stride `stride`, A is rows x width with row stride width, and B^T (width x cols) reads B's row j
    // as column j, so element (t, j) sits at j * width + t.
    unsafe {
        gemm::gemm(
            rows,
            cols,
            width,
            out.as_mut_ptr(),
            1,
            stride as isize,
            false,
            a.as_ptr(),
            1,
            width as isize,
            b.as_ptr(),
            width as isize,
            1,
            0.0,
            1.0,
            false,
            false,
            false,
            gemm::Parallelism::None,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_a_naive_product() {
        let (rows, cols, width) = (5, 7, 3);
        let a: Vec<f64> = (0..rows * width).map(|i| i as f64 * 0.5 - 2.0).collect();
        let b: Vec<f64> = (0..cols * width).map(|i| (i % 4) as f64 - 1.0).collect();
        let mut out = vec![f64::NAN; rows * cols];
        gram(&mut out, &a, &b, rows, cols, width);
        for i in 0..rows {
            for j in 0..cols {
                let want: f64 = (0..width)
                    .map(|t| a[i * width + t] * b[j * width + t])
                    .sum();
                assert_eq!(out[i * cols + j], want);
            }
        }
    }

    #[test]
    fn strided_output_fills_only_its_columns() {
        let (rows, cols, width, stride) = (3, 2, 4, 5);
        let a: Vec<f64> = (0..rows * width).map(|i| i as f64 - 3.0).collect();
        let b: Vec<f64> = (0..cols * width).map(|i| (i % 3) as f64).collect();
        gram(&mut [], &[], &[], 3, 0, 0); // no columns: nothing to write, no panic
        for width in [width, 0] {
            let mut out = vec![f64::NAN; rows * stride];
            gram_strided(&mut out, stride, &a, &b, rows, cols, width);
            for i in 0..rows {
                for j in 0..stride {
                    let got = out[i * stride + j];
                    if j < cols {
                        let want: f64 = (0..width).map(|t| a[i * 4 + t] * b[j * 4 + t]).sum();
                        assert_eq!(got, want);
                    } else {
                        assert!(got.is_nan(), "column {j} of row {i} was written");
                    }
                }
            }
        }
    }
}
