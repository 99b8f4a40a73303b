//! AMX int8 throughput on one core, for the sliced screening product of
//! benchmarks/sliced_screening_study.py (S = 5 slices of 7 bits, the 15 slice products of levels
//! l + l' <= 6, 7,680 int8 multiply-adds per pair of 512-term rows), against the f64 GEMM tile of the
//! dense path (`covertreex_core::dense::gram`: the `gemm` crate with its AVX-512 kernels), in one run:
//!
//! * `peak`: TDPBSSD on tile registers only (no loads), the unit's ceiling;
//! * tile loads alone (TILELOADD of 1 KiB from L1, millions per second);
//! * the 2 x 2 register blocking (four 16 x 16 int32 accumulators, two A and two B tiles) with
//!   every load from the same L1-resident tiles, and a 2 x 1 blocking with double-buffered inputs (two
//!   accumulators, six input tiles: more loads per product, none waiting on a tile still being read);
//! * `packed R x C`: the sliced product of R rows by C columns, operands packed tile by tile (A rows in
//!   16-row strips, B columns in 16-column VNNI panels, slices in reversed order so that each level is
//!   one contiguous run of the depth), per level four accumulators stored and, with `convert`, scaled
//!   into f64; checked against a scalar reference on one pair.
//!
//! Linux on x86-64 with AMX-INT8 only (asks the kernel for the tile state with arch_prctl). Inline
//! assembly because Rust's AMX intrinsics are unstable and no maintained crate offers int8 AMX GEMM.
//! Run `cargo run --release` in this directory.

use std::arch::asm;
use std::arch::x86_64::__cpuid_count;
use std::time::Instant;

use covertreex_core::dense::gram;

const S: usize = 5;
const M: usize = 512;
const DEPTH: usize = S * M;
const CHUNKS: usize = DEPTH / 64;
const TILE: usize = 1024;

fn amx_int8() -> bool {
    let leaf7 = __cpuid_count(7, 0);
    leaf7.edx & (1 << 24) != 0 && leaf7.edx & (1 << 25) != 0
}

/// arch_prctl(ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA): Linux grants the tile state per process.
fn request_tiles() -> bool {
    let ret: i64;
    // SAFETY: a plain system call with integer arguments.
    unsafe {
        asm!("syscall", inlateout("rax") 158i64 => ret, in("rdi") 0x1023i64, in("rsi") 18i64,
             lateout("rcx") _, lateout("r11") _, options(nostack));
    }
    ret == 0
}

#[repr(C, align(64))]
struct Config([u8; 64]);

/// Palette 1, all eight tiles 16 rows x 64 bytes.
fn configure() {
    let mut cfg = Config([0; 64]);
    cfg.0[0] = 1;
    for t in 0..8 {
        cfg.0[16 + 2 * t] = 64;
        cfg.0[48 + t] = 16;
    }
    // SAFETY: a valid configuration, after the kernel granted the tile state.
    unsafe { asm!("ldtilecfg [{}]", in(reg) cfg.0.as_ptr()) };
}

/// One 2 x 2 step: two A tiles, two B tiles, four TDPBSSD.
#[inline(always)]
unsafe fn step(a0: *const i8, a1: *const i8, b0: *const i8, b1: *const i8) {
    asm!(
        "tileloadd tmm4, [{a0} + {s}*1]",
        "tileloadd tmm6, [{b0} + {s}*1]",
        "tdpbssd tmm0, tmm4, tmm6",
        "tileloadd tmm5, [{a1} + {s}*1]",
        "tdpbssd tmm2, tmm5, tmm6",
        "tileloadd tmm7, [{b1} + {s}*1]",
        "tdpbssd tmm1, tmm4, tmm7",
        "tdpbssd tmm3, tmm5, tmm7",
        a0 = in(reg) a0, a1 = in(reg) a1, b0 = in(reg) b0, b1 = in(reg) b1, s = in(reg) 64usize,
    );
}

fn seconds(mut run: impl FnMut()) -> f64 {
    run();
    (0..5)
        .map(|_| {
            let start = Instant::now();
            run();
            start.elapsed().as_secs_f64()
        })
        .fold(f64::INFINITY, f64::min)
}

/// Multiply-adds of one 2 x 2 step (four TDPBSSD), in billions.
const STEP_GMAC: f64 = 4.0 * 16.0 * 16.0 * 64.0 / 1e9;

/// `steps` runs of `body` per second, times `per_step`.
fn rate(steps: usize, per_step: f64, mut body: impl FnMut()) -> f64 {
    let s = seconds(|| (0..steps).for_each(|_| body()));
    steps as f64 * per_step / s
}

/// TDPBSSD on tile registers only: the unit's ceiling (GMAC/s).
fn peak() -> f64 {
    // SAFETY: tiles are configured; no memory is touched.
    unsafe {
        asm!(
            "tilezero tmm4",
            "tilezero tmm5",
            "tilezero tmm6",
            "tilezero tmm7"
        )
    };
    rate(2_000_000, STEP_GMAC, || unsafe {
        asm!(
            "tdpbssd tmm0, tmm4, tmm6",
            "tdpbssd tmm1, tmm4, tmm7",
            "tdpbssd tmm2, tmm5, tmm6",
            "tdpbssd tmm3, tmm5, tmm7"
        )
    })
}

/// Four 1 KiB tile loads from L1 per step, nothing else (millions of loads per second).
fn loads_only(p: *const i8) -> f64 {
    rate(500_000, 4e-6, || unsafe {
        asm!(
            "tileloadd tmm4, [{a0} + {s}*1]",
            "tileloadd tmm5, [{a1} + {s}*1]",
            "tileloadd tmm6, [{b0} + {s}*1]",
            "tileloadd tmm7, [{b1} + {s}*1]",
            a0 = in(reg) p, a1 = in(reg) p.add(TILE), b0 = in(reg) p.add(2 * TILE),
            b1 = in(reg) p.add(3 * TILE), s = in(reg) 64usize,
        )
    })
}

/// The 2 x 2 step with every tile from L1 (GMAC/s).
fn l1_resident(p: *const i8) -> f64 {
    rate(500_000, STEP_GMAC, || unsafe {
        step(p, p.add(TILE), p.add(2 * TILE), p.add(3 * TILE))
    })
}

/// Two accumulators, inputs double-buffered in six tiles, from L1 (GMAC/s).
fn l1_double_buffered(p: *const i8) -> f64 {
    rate(500_000, STEP_GMAC, || unsafe {
        asm!(
            "tileloadd tmm2, [{a0} + {s}*1]",
            "tileloadd tmm4, [{b0} + {s}*1]",
            "tileloadd tmm3, [{a1} + {s}*1]",
            "tdpbssd tmm0, tmm2, tmm4",
            "tdpbssd tmm1, tmm3, tmm4",
            "tileloadd tmm5, [{a2} + {s}*1]",
            "tileloadd tmm7, [{b1} + {s}*1]",
            "tileloadd tmm6, [{a3} + {s}*1]",
            "tdpbssd tmm0, tmm5, tmm7",
            "tdpbssd tmm1, tmm6, tmm7",
            a0 = in(reg) p, a1 = in(reg) p.add(TILE), b0 = in(reg) p.add(2 * TILE),
            a2 = in(reg) p.add(3 * TILE), a3 = in(reg) p.add(4 * TILE), b1 = in(reg) p.add(5 * TILE),
            s = in(reg) 64usize,
        )
    })
}

/// 64 bytes on a cache line: tiles are loaded row by row, and a row that straddles two lines costs two.
#[derive(Clone, Copy)]
#[repr(C, align(64))]
struct Line([i8; 64]);

/// `bytes` (a multiple of 64) of zeros, cache-line aligned.
fn lines(bytes: usize) -> Vec<Line> {
    vec![Line([0; 64]); bytes / 64]
}

fn bytes_mut(lines: &mut [Line]) -> &mut [i8] {
    // SAFETY: Line is 64 plain bytes without padding.
    unsafe { std::slice::from_raw_parts_mut(lines.as_mut_ptr().cast(), lines.len() * 64) }
}

fn bytes(lines: &[Line]) -> &[i8] {
    // SAFETY: as in bytes_mut.
    unsafe { std::slice::from_raw_parts(lines.as_ptr().cast(), lines.len() * 64) }
}

/// Row-major slices (rows x DEPTH, slice l at l * M) packed into 16-row strips of 64-byte chunks.
fn pack_a(values: &[i8], rows: usize) -> Vec<Line> {
    let mut packed = lines(rows * DEPTH);
    let out = bytes_mut(&mut packed);
    for i in 0..rows {
        for k in 0..DEPTH {
            out[((i / 16) * CHUNKS + k / 64) * TILE + (i % 16) * 64 + k % 64] =
                values[i * DEPTH + k];
        }
    }
    packed
}

/// Row-major slices packed into 16-column VNNI panels, slices in reversed order.
fn pack_b(values: &[i8], cols: usize) -> Vec<Line> {
    let mut packed = lines(cols * DEPTH);
    let out = bytes_mut(&mut packed);
    for j in 0..cols {
        for k in 0..DEPTH {
            let v = values[j * DEPTH + (S - 1 - k / M) * M + k % M];
            out[((j / 16) * CHUNKS + k / 64) * TILE + ((k % 64) / 4) * 64 + (j % 16) * 4 + k % 4] =
                v;
        }
    }
    packed
}

/// The sliced product of every row of `a` and column of `b` (packed), levels 2..=S + 1, into `out`
/// (rows x cols) when `convert`.
unsafe fn sliced(a: &[i8], b: &[i8], rows: usize, cols: usize, out: &mut [f64], convert: bool) {
    let mut level = [0i32; 32 * 32];
    let mut acc = [0f64; 32 * 32];
    for j0 in (0..cols).step_by(32) {
        for i0 in (0..rows).step_by(32) {
            acc.fill(0.0);
            for l in 2..=S + 1 {
                let (n, skip) = ((M / 64) * (l - 1), (M / 64) * (S + 1 - l));
                asm!(
                    "tilezero tmm0",
                    "tilezero tmm1",
                    "tilezero tmm2",
                    "tilezero tmm3"
                );
                let a0 = a.as_ptr().add((i0 / 16) * CHUNKS * TILE);
                let a1 = a0.add(CHUNKS * TILE);
                let b0 = b.as_ptr().add(((j0 / 16) * CHUNKS + skip) * TILE);
                let b1 = b0.add(CHUNKS * TILE);
                for c in 0..n {
                    step(
                        a0.add(c * TILE),
                        a1.add(c * TILE),
                        b0.add(c * TILE),
                        b1.add(c * TILE),
                    );
                }
                let o = level.as_mut_ptr();
                asm!(
                    "tilestored [{c0} + {s}*1], tmm0", "tilestored [{c1} + {s}*1], tmm1",
                    "tilestored [{c2} + {s}*1], tmm2", "tilestored [{c3} + {s}*1], tmm3",
                    c0 = in(reg) o, c1 = in(reg) o.add(16), c2 = in(reg) o.add(512), c3 = in(reg) o.add(528),
                    s = in(reg) 128usize,
                );
                if convert {
                    let weight = 128f64.powi(-(l as i32));
                    for (d, &v) in acc.iter_mut().zip(&level) {
                        *d += v as f64 * weight;
                    }
                }
            }
            for r in 0..32 {
                out[(i0 + r) * cols + j0..][..32].copy_from_slice(&acc[r * 32..][..32]);
            }
        }
    }
}

/// Deterministic values in -127..=127.
fn xorshift() -> impl FnMut() -> i8 {
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        ((seed % 255) as i64 - 127) as i8
    }
}

fn packed(rows: usize, cols: usize) {
    let mut next = xorshift();
    let av: Vec<i8> = (0..rows * DEPTH).map(|_| next()).collect();
    let bv: Vec<i8> = (0..cols * DEPTH).map(|_| next()).collect();
    let (a, b) = (pack_a(&av, rows), pack_b(&bv, cols));
    let (a, b) = (bytes(&a), bytes(&b));
    let mut out = vec![0f64; rows * cols];
    unsafe { sliced(a, b, rows, cols, &mut out, true) };
    let (i, j) = (rows / 2 + 3, cols / 2 + 5);
    let mut want = 0.0;
    for l in 2..=S + 1 {
        for l1 in (1..l).filter(|&l1| l - l1 <= S) {
            let dot: i64 = (0..M)
                .map(|t| {
                    av[i * DEPTH + (l1 - 1) * M + t] as i64
                        * bv[j * DEPTH + (l - l1 - 1) * M + t] as i64
                })
                .sum();
            want += dot as f64 * 128f64.powi(-(l as i32));
        }
    }
    assert_eq!(
        out[i * cols + j],
        want,
        "the sliced product against its scalar reference"
    );
    let macs = (2..=S + 1).map(|l| M * (l - 1)).sum::<usize>() as f64;
    for convert in [false, true] {
        let s = seconds(|| unsafe { sliced(a, b, rows, cols, &mut out, convert) });
        let pairs = (rows * cols) as f64;
        println!(
            "| packed {rows} x {cols}, convert {convert} | {:.0} | {:.2} |",
            macs * pairs / s / 1e9,
            s * 1e9 / pairs
        );
    }
}

/// The dense path's f64 tile (`covertreex_core::dense::gram`, one thread): rows x cols pairs of
/// 512-term rows.
fn f64_tile(rows: usize, cols: usize) {
    let mut next = xorshift();
    let a: Vec<f64> = (0..rows * M).map(|_| next() as f64 / 128.0).collect();
    let b: Vec<f64> = (0..cols * M).map(|_| next() as f64 / 128.0).collect();
    let mut c = vec![0.0f64; rows * cols];
    let s = seconds(|| gram(&mut c, &a, &b, rows, cols, M));
    let pairs = (rows * cols) as f64;
    println!(
        "| f64 GEMM tile {rows} x {cols} (the dense path's) | {:.0} GFLOP/s | {:.2} |",
        2.0 * pairs * M as f64 / s / 1e9,
        s * 1e9 / pairs
    );
}

fn main() {
    if !amx_int8() || !request_tiles() {
        eprintln!("this CPU or kernel offers no AMX-INT8 tiles");
        std::process::exit(1);
    }
    configure();
    println!("| kernel (one core) | int8 GMAC/s | ns per pair |");
    println!("|---|---|---|");
    let tiles = lines(6 * TILE);
    let p = bytes(&tiles).as_ptr();
    println!("| peak: TDPBSSD on registers | {:.0} | |", peak());
    println!(
        "| 2 x 2 blocking, L1-resident tiles | {:.0} | |",
        l1_resident(p)
    );
    println!(
        "| tile loads only (million per s) | {:.0} | |",
        loads_only(p)
    );
    println!(
        "| 2 x 1 double-buffered, L1-resident tiles | {:.0} | |",
        l1_double_buffered(p)
    );
    for (rows, cols) in [(64, 64), (512, 512), (512, 2048)] {
        packed(rows, cols);
    }
    unsafe { asm!("tilerelease") };
    f64_tile(512, 2048);
}
