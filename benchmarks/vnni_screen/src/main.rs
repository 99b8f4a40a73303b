//! What the int8 screen of benchmarks/split_screening_study.py costs on AVX-512 VNNI, one core, against
//! the dense path's f64 GEMM tile (`covertreex_core::dense::gram`) in the same run:
//!
//! * `products`: the int8 products of a 512-deep row pair, `vpdpbusd` (u8 x i8 into i32, exact; the
//!   query rows offset by 128 into u8 and the offset's 128 * sum(column) subtracted), 8 query rows x 32
//!   columns per step (sixteen accumulators; 4 rows reached 201 GMAC/s, 8 rows the two ports' peak),
//!   columns packed in 16-column panels of 4-byte groups;
//! * `with the epilogue`: each product then becomes the pair's bound (|prod| s_i s_j + five rank-one
//!   terms, in f64) and is compared with the query's threshold; survivors are counted (the factors are
//!   synthetic: only the work is real).
//!
//! Checked against a scalar reference on every pair of one block. AVX-512 VNNI only (Intel Ice Lake and
//! later, AMD Zen 4 and later). Run `cargo run --release` in this directory.

use std::arch::x86_64::*;
use std::hint::black_box;
use std::time::Instant;

use covertreex_core::dense::gram;

const M: usize = 512;
const GROUPS: usize = M / 4;
const PANEL: usize = 16;
const ROWS: usize = 8;
const RANK: usize = 5;

/// Deterministic int8 values in -127..=127 (a xorshift; no dependency).
fn values(count: usize, seed: u64) -> Vec<i8> {
    let mut state = seed | 1;
    (0..count)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            ((state % 255) as i64 - 127) as i8
        })
        .collect()
}

/// Columns packed for `vpdpbusd`: panel p, group g holds columns 16p..16p+16, bytes 4g..4g+4 of each.
fn pack_columns(cols: &[i8], n: usize) -> Vec<i8> {
    let mut packed = vec![0i8; n * M];
    for (j, col) in cols.chunks_exact(M).enumerate() {
        let (panel, lane) = (j / PANEL, j % PANEL);
        for g in 0..GROUPS {
            let at = (panel * GROUPS + g) * PANEL * 4 + lane * 4;
            packed[at..at + 4].copy_from_slice(&col[4 * g..4 * g + 4]);
        }
    }
    packed
}

struct Screen<'a> {
    rows_u8: &'a [u8],
    packed: &'a [i8],
    col_offset: &'a [i32],
    n_cols: usize,
}

/// Per-row and per-column factors of the bound (synthetic: only the work matters here).
struct Factors {
    scale_row: Vec<f64>,
    scale_col: Vec<f64>,
    rank_row: Vec<[f64; RANK]>,
    /// Column factors by term, each contiguous over the columns (one load per 8 lanes).
    rank_col: [Vec<f64>; RANK],
    threshold: Vec<f64>,
}

#[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
unsafe fn block(s: &Screen, r0: usize, p0: usize, out: &mut [[__m512i; 2]; ROWS]) {
    let mut acc = [[_mm512_setzero_si512(); 2]; ROWS];
    let base0 = s.packed.as_ptr().add(p0 * GROUPS * PANEL * 4);
    let base1 = base0.add(GROUPS * PANEL * 4);
    for g in 0..GROUPS {
        let b0 = _mm512_loadu_si512(base0.add(g * 64) as *const _);
        let b1 = _mm512_loadu_si512(base1.add(g * 64) as *const _);
        for (r, acc) in acc.iter_mut().enumerate() {
            let bytes = s.rows_u8.as_ptr().add((r0 + r) * M + 4 * g) as *const i32;
            let a = _mm512_set1_epi32(bytes.read_unaligned());
            acc[0] = _mm512_dpbusd_epi32(acc[0], a, b0);
            acc[1] = _mm512_dpbusd_epi32(acc[1], a, b1);
        }
    }
    let off0 = _mm512_loadu_si512(s.col_offset.as_ptr().add(p0 * PANEL) as *const _);
    let off1 = _mm512_loadu_si512(s.col_offset.as_ptr().add((p0 + 1) * PANEL) as *const _);
    for r in 0..ROWS {
        out[r] = [
            _mm512_sub_epi32(acc[r][0], off0),
            _mm512_sub_epi32(acc[r][1], off1),
        ];
    }
}

#[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
unsafe fn survivors(prods: &[[__m512i; 2]; ROWS], f: &Factors, r0: usize, p0: usize) -> u32 {
    let mut count = 0;
    for (r, row) in prods.iter().enumerate() {
        let i = r0 + r;
        let si = _mm512_set1_pd(f.scale_row[i]);
        let ti = _mm512_set1_pd(f.threshold[i]);
        for (half, &prod) in row.iter().enumerate() {
            for eighth in 0..2 {
                let j0 = (p0 + half) * PANEL + 8 * eighth;
                let lanes = if eighth == 0 {
                    _mm512_castsi512_si256(prod)
                } else {
                    _mm512_extracti64x4_epi64(prod, 1)
                };
                let abs = _mm512_cvtepi32_pd(_mm256_abs_epi32(lanes));
                let sj = _mm512_loadu_pd(f.scale_col.as_ptr().add(j0));
                let mut bound = _mm512_mul_pd(_mm512_mul_pd(abs, si), sj);
                for k in 0..RANK {
                    let a = _mm512_set1_pd(f.rank_row[i][k]);
                    let b = _mm512_loadu_pd(f.rank_col[k].as_ptr().add(j0));
                    bound = _mm512_add_pd(bound, _mm512_mul_pd(a, b));
                }
                let keep = _mm512_cmp_pd_mask(bound, ti, _CMP_GE_OQ);
                count += keep.count_ones();
            }
        }
    }
    count
}

/// Seconds per pass over every row block and panel pair, best of `repeats`, and the survivors counted.
fn timed(s: &Screen, rows: usize, f: Option<&Factors>, repeats: usize) -> (f64, u64) {
    let mut best = f64::INFINITY;
    let mut kept = 0u64;
    for _ in 0..repeats {
        let start = Instant::now();
        kept = 0;
        let mut out = [[unsafe { _mm512_setzero_si512() }; 2]; ROWS];
        for r0 in (0..rows).step_by(ROWS) {
            for p0 in (0..s.n_cols / PANEL).step_by(2) {
                // SAFETY: the CPU has AVX-512 VNNI (checked in main); indices stay inside the buffers.
                unsafe {
                    block(s, r0, p0, &mut out);
                    if let Some(f) = f {
                        kept += survivors(&out, f, r0, p0) as u64;
                    }
                }
                black_box(&out);
            }
        }
        best = best.min(start.elapsed().as_secs_f64());
    }
    (best, kept)
}

fn main() {
    if !(is_x86_feature_detected!("avx512f")
        && is_x86_feature_detected!("avx512bw")
        && is_x86_feature_detected!("avx512vnni"))
    {
        eprintln!("this CPU offers no AVX-512 VNNI");
        std::process::exit(1);
    }
    let (rows, cols) = (512, 2048);
    let a = values(rows * M, 7);
    let b = values(cols * M, 11);
    let rows_u8: Vec<u8> = a.iter().map(|&x| (x as i16 + 128) as u8).collect();
    let col_offset: Vec<i32> = b
        .chunks_exact(M)
        .map(|c| 128 * c.iter().map(|&x| x as i32).sum::<i32>())
        .collect();
    let packed = pack_columns(&b, cols);
    let s = Screen {
        rows_u8: &rows_u8,
        packed: &packed,
        col_offset: &col_offset,
        n_cols: cols,
    };
    // Every pair of the first block against a scalar dot product.
    let mut out = [[unsafe { _mm512_setzero_si512() }; 2]; ROWS];
    unsafe { block(&s, 0, 0, &mut out) };
    for (r, row) in out.iter().enumerate() {
        for (half, v) in row.iter().enumerate() {
            let mut lanes = [0i32; 16];
            unsafe { _mm512_storeu_si512(lanes.as_mut_ptr() as *mut _, *v) };
            for (lane, &got) in lanes.iter().enumerate() {
                let j = half * PANEL + lane;
                let want: i32 = (0..M)
                    .map(|t| a[r * M + t] as i32 * b[j * M + t] as i32)
                    .sum();
                assert_eq!(got, want, "row {r}, column {j}");
            }
        }
    }
    let f = Factors {
        scale_row: (0..rows)
            .map(|i| 1e-3 * (1.0 + i as f64 / rows as f64))
            .collect(),
        scale_col: (0..cols)
            .map(|j| 1e-3 * (1.0 + j as f64 / cols as f64))
            .collect(),
        rank_row: (0..rows)
            .map(|i| [1e-4 * i as f64 / rows as f64; RANK])
            .collect(),
        rank_col: std::array::from_fn(|_| {
            (0..cols).map(|j| 1e-4 * j as f64 / cols as f64).collect()
        }),
        threshold: vec![5e-3; rows],
    };
    let pairs = (rows * cols) as f64;
    println!("| kernel (one core, {rows} x {cols} pairs, m = {M}) | int8 GMAC/s | ns per pair |");
    println!("|---|---|---|");
    let (t, _) = timed(&s, rows, None, 5);
    println!(
        "| VNNI products (vpdpbusd, {ROWS} x 32 blocking) | {:.0} | {:.3} |",
        pairs * M as f64 / t / 1e9,
        t / pairs * 1e9
    );
    let (t, kept) = timed(&s, rows, Some(&f), 5);
    black_box(kept);
    println!(
        "| VNNI products with the bound-and-compare epilogue | {:.0} | {:.3} |",
        pairs * M as f64 / t / 1e9,
        t / pairs * 1e9
    );
    f64_tile(rows, cols);
}

/// The dense path's f64 tile on the same shape (one thread), for the ratio.
fn f64_tile(rows: usize, cols: usize) {
    let a: Vec<f64> = values(rows * M, 3)
        .iter()
        .map(|&x| x as f64 / 127.0)
        .collect();
    let b: Vec<f64> = values(cols * M, 5)
        .iter()
        .map(|&x| x as f64 / 127.0)
        .collect();
    let mut out = vec![0.0; rows * cols];
    let mut best = f64::INFINITY;
    for _ in 0..5 {
        let start = Instant::now();
        gram(&mut out, &a, &b, rows, cols, M);
        best = best.min(start.elapsed().as_secs_f64());
        black_box(&out);
    }
    let pairs = (rows * cols) as f64;
    println!(
        "| f64 GEMM tile (the dense path's `gram`) | {:.0} GFLOP/s | {:.3} |",
        2.0 * pairs * M as f64 / best / 1e9,
        best / pairs * 1e9
    );
}
