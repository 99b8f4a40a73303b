//! Exact int8 products of the split screen's rows: q_i . q_j in i32, by AVX-512 VNNI where the CPU has
//! it (`vpdpbusd` multiplies unsigned by signed bytes, so the query rows are offset by 128 and 128 times
//! the column's sum is taken off again) and by a loop LLVM vectorises elsewhere. Integer sums are exact
//! in any order (|q_i . q_j| <= m 127^2, and the offset sums <= m 255 127, below 2^31 for m <= 2^16),
//! so every kernel gives the same values and nothing downstream depends on which ran.

use std::ops::Range;

use rayon::prelude::*;

/// Columns per panel of the packed layout (one 512-bit register of i32 sums).
const PANEL: usize = 16;

/// Columns per step of the VNNI kernel (two panels), and the alignment [`Int8::products`] asks of its
/// column ranges.
pub const COLUMNS: usize = 2 * PANEL;

/// Query rows per step of the VNNI kernel: eight rows x two panels are sixteen accumulators, which with
/// the two column loads keep both ports busy (four rows reached two thirds of that, measured by
/// benchmarks/vnni_screen).
const ROWS: usize = 8;

/// The widest m the products stay exact for (the bound in the module docs).
pub const MAX_WIDTH: usize = 1 << 16;

/// Z's int8 rows (n x m) and, on a CPU with AVX-512 VNNI, the same rows packed for `vpdpbusd`.
pub struct Int8<'a> {
    q: &'a [i8],
    m: usize,
    n: usize,
    /// m rounded up to whole groups of four bytes.
    width: usize,
    packed: Option<Packed>,
}

/// Columns in panels of [`PANEL`]: panel p, group g holds bytes 4g..4g + 4 of columns 16p..16p + 16 (zero
/// past m and past n), and 128 times each column's sum.
struct Packed {
    panels: Vec<i8>,
    offsets: Vec<i32>,
}

/// A block's query rows as the kernels read them: offset by 128 into u8 (zero-padded rows of `width`
/// bytes, the last row repeated up to a multiple of [`ROWS`]) and as row numbers of q.
pub struct QueryRows {
    offset: Vec<u8>,
    rows: Vec<usize>,
}

impl<'a> Int8<'a> {
    /// The rows `q` (n x m, row-major), packed at once when the CPU has AVX-512 VNNI.
    pub fn new(q: &'a [i8], n: usize, m: usize) -> Int8<'a> {
        Int8::on(q, n, m, vnni())
    }

    /// [`Int8::new`] on the VNNI kernel (only where [`vnni`] holds) or on the portable loop.
    fn on(q: &'a [i8], n: usize, m: usize, vnni: bool) -> Int8<'a> {
        debug_assert_eq!(q.len(), n * m);
        let width = m.div_ceil(4) * 4;
        let mut int8 = Int8 {
            q,
            m,
            n,
            width,
            packed: None,
        };
        if vnni {
            int8.packed = Some(int8.pack());
        }
        int8
    }

    fn pack(&self) -> Packed {
        let groups = self.width / 4;
        let n_panels = self.n.div_ceil(COLUMNS) * (COLUMNS / PANEL);
        let mut panels = vec![0i8; n_panels * groups * PANEL * 4];
        panels
            .par_chunks_mut(groups * PANEL * 4)
            .enumerate()
            .for_each(|(p, panel)| {
                for lane in 0..PANEL {
                    let j = p * PANEL + lane;
                    if j >= self.n {
                        break;
                    }
                    for (t, &value) in self.row(j).iter().enumerate() {
                        panel[(t / 4) * PANEL * 4 + lane * 4 + t % 4] = value;
                    }
                }
            });
        let mut offsets = vec![0i32; n_panels * PANEL];
        for (j, offset) in offsets.iter_mut().enumerate().take(self.n) {
            *offset = 128 * self.row(j).iter().map(|&v| v as i32).sum::<i32>();
        }
        Packed { panels, offsets }
    }

    fn row(&self, j: usize) -> &[i8] {
        &self.q[j * self.m..(j + 1) * self.m]
    }

    /// The rows `rows` of q as a block's query rows.
    pub fn query_rows(&self, rows: &[usize]) -> QueryRows {
        let padded = rows.len().div_ceil(ROWS) * ROWS;
        let mut offset = vec![128u8; padded * self.width];
        for (r, chunk) in offset.chunks_exact_mut(self.width).enumerate() {
            let row = self.row(rows[r.min(rows.len() - 1)]);
            for (to, &value) in chunk.iter_mut().zip(row) {
                *to = (value as i16 + 128) as u8;
            }
        }
        QueryRows {
            offset,
            rows: rows.to_vec(),
        }
    }

    /// q_r . q_j for every row r of `rows` and column j of `cols` (a range of whole [`COLUMNS`] from a
    /// multiple of it: columns at or past n give 0), row-major into `out` (rows x cols).
    pub fn products(&self, rows: &QueryRows, cols: Range<usize>, out: &mut Vec<i32>) {
        debug_assert!(cols.start.is_multiple_of(COLUMNS) && cols.len().is_multiple_of(COLUMNS));
        out.clear();
        out.resize(rows.rows.len() * cols.len(), 0);
        #[cfg(target_arch = "x86_64")]
        if let Some(packed) = &self.packed {
            // SAFETY: `packed` exists only when `vnni()` found AVX-512F, BW and VNNI; the column range
            // is whole panels inside the packed columns, the rows padded to whole steps.
            unsafe { self.products_vnni(packed, rows, cols, out) };
            return;
        }
        let width = cols.len();
        for (r, &i) in rows.rows.iter().enumerate() {
            let a = self.row(i);
            for j in cols.start..cols.end.min(self.n) {
                out[r * width + j - cols.start] = dot(a, self.row(j));
            }
        }
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
    unsafe fn products_vnni(
        &self,
        packed: &Packed,
        rows: &QueryRows,
        cols: Range<usize>,
        out: &mut [i32],
    ) {
        use std::arch::x86_64::*;
        let groups = self.width / 4;
        let panel_bytes = groups * PANEL * 4;
        let (n_rows, width) = (rows.rows.len(), cols.len());
        for r0 in (0..n_rows).step_by(ROWS) {
            for c0 in cols.clone().step_by(COLUMNS) {
                let p0 = c0 / PANEL;
                let base0 = packed.panels.as_ptr().add(p0 * panel_bytes);
                let base1 = base0.add(panel_bytes);
                let mut acc = [[_mm512_setzero_si512(); 2]; ROWS];
                for g in 0..groups {
                    let b0 = _mm512_loadu_si512(base0.add(g * 64) as *const _);
                    let b1 = _mm512_loadu_si512(base1.add(g * 64) as *const _);
                    for (r, acc) in acc.iter_mut().enumerate() {
                        let at = (r0 + r) * self.width + 4 * g;
                        let bytes = rows.offset.as_ptr().add(at) as *const i32;
                        let a = _mm512_set1_epi32(bytes.read_unaligned());
                        acc[0] = _mm512_dpbusd_epi32(acc[0], a, b0);
                        acc[1] = _mm512_dpbusd_epi32(acc[1], a, b1);
                    }
                }
                let offsets = packed.offsets.as_ptr().add(c0);
                let off0 = _mm512_loadu_si512(offsets as *const _);
                let off1 = _mm512_loadu_si512(offsets.add(PANEL) as *const _);
                for (r, acc) in acc.iter().enumerate().take(n_rows - r0) {
                    let to = out.as_mut_ptr().add((r0 + r) * width + c0 - cols.start);
                    _mm512_storeu_si512(to as *mut _, _mm512_sub_epi32(acc[0], off0));
                    _mm512_storeu_si512(to.add(PANEL) as *mut _, _mm512_sub_epi32(acc[1], off1));
                }
            }
        }
    }
}

/// Whether this CPU runs the VNNI kernel (detected once per process).
fn vnni() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        static VNNI: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
        *VNNI.get_or_init(|| {
            std::is_x86_feature_detected!("avx512f")
                && std::is_x86_feature_detected!("avx512bw")
                && std::is_x86_feature_detected!("avx512vnni")
        })
    }
    #[cfg(not(target_arch = "x86_64"))]
    false
}

/// The exact int8 dot product (LLVM vectorises the integer sum, whose order does not matter).
fn dot(a: &[i8], b: &[i8]) -> i32 {
    a.iter().zip(b).map(|(&x, &y)| x as i32 * y as i32).sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Spread int8 values in -127..=127 (a multiplicative hash of the position).
    fn values(count: usize, seed: u64) -> Vec<i8> {
        (0..count as u64)
            .map(|t| {
                ((t.wrapping_add(seed).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 40) % 255) as i64
                    - 127
            })
            .map(|v| v as i8)
            .collect()
    }

    #[test]
    fn products_are_the_exact_dot_products_for_any_shape() {
        for (n, m, rows) in [(70, 13, 11), (64, 512, 9), (33, 4, 1), (100, 130, 17)] {
            let q = values(n * m, (n * m) as u64);
            for int8 in kernels(&q, n, m) {
                let picked: Vec<usize> = (0..rows).map(|r| (r * 7) % n).collect();
                let query_rows = int8.query_rows(&picked);
                let cols = 0..n.div_ceil(COLUMNS) * COLUMNS;
                let mut out = Vec::new();
                int8.products(&query_rows, cols.clone(), &mut out);
                for (r, &i) in picked.iter().enumerate() {
                    for j in 0..n {
                        let want: i32 = (0..m)
                            .map(|t| q[i * m + t] as i32 * q[j * m + t] as i32)
                            .sum();
                        assert_eq!(
                            out[r * cols.len() + j],
                            want,
                            "n {n} m {m} row {i} column {j}"
                        );
                    }
                }
            }
        }
    }

    /// Every kernel this CPU runs: the portable loop, and VNNI where detected.
    fn kernels(q: &[i8], n: usize, m: usize) -> Vec<Int8<'_>> {
        let mut out = vec![Int8::on(q, n, m, false)];
        if vnni() {
            out.push(Int8::on(q, n, m, true));
        }
        out
    }

    #[test]
    fn extreme_values_do_not_overflow() {
        let (n, m) = (40, 512);
        let q: Vec<i8> = (0..n * m)
            .map(|t| if t % 3 == 0 { -127 } else { 127 })
            .collect();
        for int8 in kernels(&q, n, m) {
            let rows = int8.query_rows(&[0, 1, 39]);
            let mut out = Vec::new();
            int8.products(&rows, 32..64, &mut out);
            for (r, &i) in [0usize, 1, 39].iter().enumerate() {
                for j in 32..n {
                    let want: i32 = (0..m)
                        .map(|t| q[i * m + t] as i32 * q[j * m + t] as i32)
                        .sum();
                    assert_eq!(out[r * 32 + j - 32], want);
                }
            }
        }
    }
}
