//! One dense-path tile (query rows x point rows of V, inner dimension m), single-threaded, through each
//! candidate crate: best GFLOP/s of several rounds. Run `cargo run --release` in this directory, and
//! `cargo run --release --features x86-v4` for the `gemm` crate's AVX-512 kernels (as rust/core uses it).

use std::time::Instant;

fn best_gflops(rounds: usize, flops: f64, mut run: impl FnMut()) -> f64 {
    run();
    (0..rounds)
        .map(|_| {
            let start = Instant::now();
            run();
            flops / start.elapsed().as_secs_f64() / 1e9
        })
        .fold(0.0, f64::max)
}

fn main() {
    for (rows, cols, width) in [(64, 1024, 512), (256, 2048, 512), (512, 2048, 512)] {
        let a: Vec<f64> = (0..rows * width)
            .map(|i| ((i * 7919) % 1000) as f64 / 1e3)
            .collect();
        let b: Vec<f64> = (0..cols * width)
            .map(|i| ((i * 104729) % 1000) as f64 / 1e3)
            .collect();
        let mut c = vec![0.0f64; rows * cols];
        let flops = 2.0 * (rows * cols * width) as f64;
        let mm = best_gflops(10, flops, || unsafe {
            matrixmultiply::dgemm(
                rows,
                width,
                cols,
                1.0,
                a.as_ptr(),
                width as isize,
                1,
                b.as_ptr(),
                1,
                width as isize,
                0.0,
                c.as_mut_ptr(),
                cols as isize,
                1,
            )
        });
        let gm = best_gflops(10, flops, || unsafe {
            gemm::gemm(
                rows,
                cols,
                width,
                c.as_mut_ptr(),
                1,
                cols as isize,
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
            )
        });
        let fa = {
            let lhs = faer::MatRef::from_row_major_slice(&a, rows, width);
            let rhs = faer::MatRef::from_row_major_slice(&b, cols, width);
            let mut out = faer::Mat::<f64>::zeros(rows, cols);
            best_gflops(10, flops, || {
                faer::linalg::matmul::matmul(
                    out.as_mut(),
                    faer::Accum::Replace,
                    lhs,
                    rhs.transpose(),
                    1.0,
                    faer::Par::Seq,
                )
            })
        };
        let kernels = if cfg!(feature = "x86-v4") {
            "x86-v4"
        } else {
            "default"
        };
        println!(
            "tile {rows}x{cols}x{width}: matrixmultiply {mm:.1}, gemm ({kernels}) {gm:.1}, \
             faer {fa:.1} GFLOP/s"
        );
    }
}
