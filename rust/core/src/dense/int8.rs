//! Exact int8 products of the split screen's rows: q_i . q_j in i32, by AMX tiles, AVX-512 VNNI or AVX2
//! where the CPU has them and by a loop LLVM vectorises elsewhere. Both AMX and VNNI multiply unsigned by
//! signed bytes (`tdpbusd`, `vpdpbusd`), so the query rows are offset by 128 and each sum starts from
//! -128 times the column's sum. Every step is i32 wrap-around arithmetic (neither instruction
//! saturates), and every partial sum is some terms of q_i . q_j less 128 times the other terms' q_j, so
//! within m 128 127 < 2^31 for m <= 2^16: the sums are exact in any order, every kernel gives the same
//! values and nothing downstream depends on which ran. AVX2's `vpmaddubsw` saturates its i16 pair sums,
//! so that kernel multiplies |a| by b with a's sign (`vpsignb`): with the columns' values in -127..=127
//! (the split's levels; a packing holding -128 takes the portable loop) each pair sum is at most
//! 2 128 127 < 2^15 in magnitude and never saturates, and `vpmaddwd` adds the pairs in i32.

use std::ops::Range;

use rayon::prelude::*;

/// Columns per panel of the packed layout (one 512-bit register, or one tile row, of i32 sums).
const PANEL: usize = 16;

/// Columns per step of the VNNI and AMX kernels (two panels), and the alignment [`Int8::products`] asks
/// of its column ranges.
pub const COLUMNS: usize = 2 * PANEL;

/// Query rows per step of the VNNI kernel: eight rows x two panels are sixteen accumulators, which with
/// the two column loads keep both ports busy (four rows reached two thirds of that, measured by
/// benchmarks/vnni_screen).
const ROWS: usize = 8;

/// Query rows per step of the AVX2 kernel: two rows x four registers of eight columns are eight
/// accumulators, which with the four column loads and the row's three vectors fill the sixteen registers.
const AVX2_ROWS: usize = 2;

/// Rows of a tile, and its bytes per row (64 int8 terms of a query row, four of 16 columns, or 16 i32
/// sums).
const TILE_ROWS: usize = 16;
const TILE_BYTES: usize = 64;

/// Query rows per step of the AMX kernel: two row tiles x two panels are four accumulator tiles, each
/// input tile loaded once for two products (the 2 x 2 blocking of benchmarks/amx_int8).
const AMX_ROWS: usize = 2 * TILE_ROWS;

/// The widest m the products stay exact for (the bound in the module docs).
pub const MAX_WIDTH: usize = 1 << 16;

/// Which kernel computes the products.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kernel {
    Portable,
    Avx2,
    Vnni,
    Amx,
}

impl Kernel {
    /// The fastest kernel this process runs on columns `q`: AMX, else VNNI, else AVX2 (where no value of
    /// `q` is -128, see the module docs), else the portable loop.
    fn fastest(q: &[i8]) -> Kernel {
        if amx() {
            Kernel::Amx
        } else if vnni() {
            Kernel::Vnni
        } else if avx2() && !q.contains(&i8::MIN) {
            Kernel::Avx2
        } else {
            Kernel::Portable
        }
    }

    /// The bytes a row's m terms are padded to (zeros, which add nothing): whole groups of four for
    /// `vpdpbusd`, whole tile rows for `tdpbusd`.
    fn width(self, m: usize) -> usize {
        match self {
            Kernel::Amx => m.div_ceil(TILE_BYTES) * TILE_BYTES,
            _ => m.div_ceil(4) * 4,
        }
    }

    /// The query rows of a step.
    fn rows(self) -> usize {
        match self {
            Kernel::Amx => AMX_ROWS,
            Kernel::Avx2 => AVX2_ROWS,
            _ => ROWS,
        }
    }
}

/// The kernel the split screen's products take on this CPU: "amx", "vnni", "avx2" or "portable" (the
/// split's levels lie in -127..=127, so none of its packings leaves AVX2 for the portable loop). Python's
/// cost model reads it: the products are what the split saves over the f64 GEMM.
pub fn kernel_name() -> &'static str {
    match Kernel::fastest(&[]) {
        Kernel::Amx => "amx",
        Kernel::Vnni => "vnni",
        Kernel::Avx2 => "avx2",
        Kernel::Portable => "portable",
    }
}

/// 64 bytes on a cache line: a tile row that straddles two lines costs two loads (tile loads ran about
/// 7x slower from unaligned rows in benchmarks/amx_int8).
#[derive(Clone, Copy)]
#[repr(C, align(64))]
struct Line([u8; 64]);

/// `bytes` (rounded up to whole lines) of `fill`, cache-line aligned.
fn lines(bytes: usize, fill: u8) -> Vec<Line> {
    vec![Line([fill; 64]); bytes.div_ceil(64)]
}

fn bytes(lines: &[Line]) -> &[u8] {
    // SAFETY: a Line is 64 plain bytes without padding, so the lines are their bytes in order.
    unsafe { std::slice::from_raw_parts(lines.as_ptr().cast(), lines.len() * 64) }
}

fn bytes_mut(lines: &mut [Line]) -> &mut [u8] {
    // SAFETY: a Line is 64 plain bytes without padding, so the lines are their bytes in order.
    unsafe { std::slice::from_raw_parts_mut(lines.as_mut_ptr().cast(), lines.len() * 64) }
}

/// Z's int8 rows (n x m) and how the kernel reads them ([`Int8Packing`]).
pub struct Int8<'a> {
    q: &'a [i8],
    m: usize,
    n: usize,
    /// m padded for the kernel ([`Kernel::width`]).
    width: usize,
    kernel: Kernel,
    packed: Option<&'a Packed>,
}

/// Z's rows packed for the fastest kernel this process runs (none for the portable loop): made once
/// per process and lent to every call's `Int8`. Packing is a pass over Z in scattered bytes, ~15 ms
/// at N = 32,768, m = 512, which every call on the split screen paid before (a Dask worker's ranges
/// each paid it again).
pub struct Int8Packing {
    m: usize,
    n: usize,
    width: usize,
    kernel: Kernel,
    packed: Option<Packed>,
}

/// Columns in panels of [`PANEL`]: panel p, group g (one line) holds bytes 4g..4g + 4 of columns
/// 16p..16p + 16 (zero past m and past n), which is `vpdpbusd`'s operand and, 16 groups at a time, a
/// `tdpbusd` B tile; and -128 times each column's sum, where the sums start.
struct Packed {
    panels: Vec<Line>,
    start: Vec<i32>,
}

/// A block's query rows as the kernels read them: offset by 128 into u8 (rows of `width` bytes, the
/// padding 128, i.e. zero, the last row repeated up to a whole step of the kernel; cache-line aligned)
/// and as row numbers of q.
pub struct QueryRows {
    offset: Vec<Line>,
    rows: Vec<usize>,
}

impl Int8Packing {
    /// The rows `q` (n x m, row-major) packed for the fastest kernel the CPU runs.
    pub fn of(q: &[i8], n: usize, m: usize) -> Int8Packing {
        Int8Packing::on(q, n, m, Kernel::fastest(q))
    }

    /// [`Int8Packing::of`] for `kernel` (one this process runs).
    fn on(q: &[i8], n: usize, m: usize, kernel: Kernel) -> Int8Packing {
        assert_eq!(q.len(), n * m, "q holds n x m values");
        let width = kernel.width(m);
        let packed = (kernel != Kernel::Portable).then(|| pack(q, n, m, width));
        Int8Packing {
            m,
            n,
            width,
            kernel,
            packed,
        }
    }

    /// (n, m) of the rows packed.
    pub fn shape(&self) -> (usize, usize) {
        (self.n, self.m)
    }
}

/// The rows `q` (n x m) in panels ([`Packed`]), each row padded to `width` bytes.
fn pack(q: &[i8], n: usize, m: usize, width: usize) -> Packed {
    let row = |j: usize| &q[j * m..(j + 1) * m];
    let groups = width / 4;
    let n_panels = n.div_ceil(COLUMNS) * (COLUMNS / PANEL);
    let mut panels = lines(n_panels * groups * PANEL * 4, 0);
    panels
        .par_chunks_mut(groups)
        .enumerate()
        .for_each(|(p, panel)| {
            let panel = bytes_mut(panel);
            for lane in 0..PANEL {
                let j = p * PANEL + lane;
                if j >= n {
                    break;
                }
                for (t, &value) in row(j).iter().enumerate() {
                    panel[(t / 4) * PANEL * 4 + lane * 4 + t % 4] = value as u8;
                }
            }
        });
    let mut start = vec![0i32; n_panels * PANEL];
    for (j, start) in start.iter_mut().enumerate().take(n) {
        *start = -128 * row(j).iter().map(|&v| v as i32).sum::<i32>();
    }
    Packed { panels, start }
}

impl<'a> Int8<'a> {
    /// The rows `q` (n x m, row-major) with their packing, made of the same rows
    /// ([`Int8Packing::of`]; its shape is checked, its bytes are the caller's word).
    pub fn new(q: &'a [i8], packing: &'a Int8Packing) -> Int8<'a> {
        assert_eq!(q.len(), packing.n * packing.m, "the packing is of q");
        Int8 {
            q,
            m: packing.m,
            n: packing.n,
            width: packing.width,
            kernel: packing.kernel,
            packed: packing.packed.as_ref(),
        }
    }

    fn row(&self, j: usize) -> &[i8] {
        &self.q[j * self.m..(j + 1) * self.m]
    }

    /// The rows `rows` of q as a block's query rows.
    pub fn query_rows(&self, rows: &[usize]) -> QueryRows {
        self.query_rows_of(self.q, rows)
    }

    /// The rows `rows` of `q`, other int8 rows of the same width m (n' x m, row-major), as query rows
    /// against these columns: the maximin pass screens unplaced points, rows of the whole Z, against
    /// the few points just placed, packed as columns of their own.
    pub fn query_rows_of(&self, q: &[i8], rows: &[usize]) -> QueryRows {
        assert_eq!(q.len() % self.m, 0, "q holds rows of m values");
        let row = |j: usize| &q[j * self.m..(j + 1) * self.m];
        let step = self.kernel.rows();
        let padded = rows.len().div_ceil(step) * step;
        let mut offset = lines(padded * self.width, 128);
        for (r, chunk) in bytes_mut(&mut offset)
            .chunks_exact_mut(self.width)
            .take(padded)
            .enumerate()
        {
            let row = row(rows[r.min(rows.len() - 1)]);
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
        let len = rows.rows.len() * cols.len();
        #[cfg(target_arch = "x86_64")]
        if let Some(packed) = self.packed {
            // Every row of a step is stored, the padding's too, then cut off: no value is read before
            // the kernel writes it, so `out` is not cleared first.
            let padded = rows.rows.len().div_ceil(self.kernel.rows()) * self.kernel.rows();
            debug_assert!(rows.offset.len() * 64 >= padded * self.width);
            out.resize(padded * cols.len(), 0);
            match self.kernel {
                #[cfg(target_os = "linux")]
                // SAFETY: an Amx Int8 exists only when `amx()` found AMX-INT8 and Linux granted the
                // tile state; the rows are padded to whole steps of whole tile rows, the column range is
                // whole panels inside the packed ones, `out` holds every padded row.
                Kernel::Amx => unsafe { self.products_amx(packed, rows, cols, out) },
                // SAFETY: an Avx2 Int8 exists only when `avx2()` found AVX2 and its columns hold no -128;
                // the column range is whole panels inside the packed ones, the rows padded to whole steps.
                Kernel::Avx2 => unsafe { self.products_avx2(packed, rows, cols, out) },
                // SAFETY: a packed Int8 that is neither Amx nor Avx2 is Vnni, made only when `vnni()`
                // found AVX-512F, BW and VNNI; the column range is whole panels inside the packed ones,
                // the rows padded to whole steps.
                _ => unsafe { self.products_vnni(packed, rows, cols, out) },
            }
            out.truncate(len);
            return;
        }
        out.clear();
        out.resize(len, 0);
        let width = cols.len();
        let offset = bytes(&rows.offset);
        for r in 0..rows.rows.len() {
            let a: Vec<i8> = (offset[r * self.width..r * self.width + self.m].iter())
                .map(|&b| (b as i16 - 128) as i8)
                .collect();
            for j in cols.start..cols.end.min(self.n) {
                out[r * width + j - cols.start] = dot(&a, self.row(j));
            }
        }
    }

    /// The VNNI kernel: 8 query rows x 2 panels of i32 sums in registers, one group of four terms of
    /// every row and column per step.
    ///
    /// # Safety
    /// The CPU has AVX-512F, BW and VNNI; `cols` is whole [`COLUMNS`] inside the packed ones; `out` holds
    /// whole steps of rows (rows x `cols`), and `rows` at least as many.
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
        let panels = packed.panels.as_ptr() as *const u8;
        let query = rows.offset.as_ptr() as *const u8;
        let width = cols.len();
        for r0 in (0..out.len() / width).step_by(ROWS) {
            for c0 in cols.clone().step_by(COLUMNS) {
                let base0 = panels.add((c0 / PANEL) * groups * 64);
                let base1 = base0.add(groups * 64);
                let start = packed.start.as_ptr().add(c0);
                let start0 = _mm512_loadu_si512(start as *const _);
                let start1 = _mm512_loadu_si512(start.add(PANEL) as *const _);
                let mut acc = [[start0, start1]; ROWS];
                for g in 0..groups {
                    let b0 = _mm512_loadu_si512(base0.add(g * 64) as *const _);
                    let b1 = _mm512_loadu_si512(base1.add(g * 64) as *const _);
                    for (r, acc) in acc.iter_mut().enumerate() {
                        let bytes = query.add((r0 + r) * self.width + 4 * g) as *const i32;
                        let a = _mm512_set1_epi32(bytes.read_unaligned());
                        acc[0] = _mm512_dpbusd_epi32(acc[0], a, b0);
                        acc[1] = _mm512_dpbusd_epi32(acc[1], a, b1);
                    }
                }
                for (r, acc) in acc.iter().enumerate() {
                    let to = out.as_mut_ptr().add((r0 + r) * width + c0 - cols.start);
                    _mm512_storeu_si512(to as *mut _, acc[0]);
                    _mm512_storeu_si512(to.add(PANEL) as *mut _, acc[1]);
                }
            }
        }
    }

    /// The AVX2 kernel: 2 query rows x 2 panels (four registers of eight columns) of i32 sums, one group
    /// of four terms of every row and column per step, on the VNNI kernel's packing. The query rows'
    /// offset is undone (xor 128: the signed values a), and each column's four bytes b are multiplied as
    /// |a| (unsigned) by b with a's sign, exactly (module docs), so the sums start from 0.
    ///
    /// # Safety
    /// The CPU has AVX2; no packed value is -128; `cols` is whole [`COLUMNS`] inside the packed ones;
    /// `out` holds whole steps of rows (rows x `cols`), and `rows` at least as many.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    unsafe fn products_avx2(
        &self,
        packed: &Packed,
        rows: &QueryRows,
        cols: Range<usize>,
        out: &mut [i32],
    ) {
        use std::arch::x86_64::*;
        let groups = self.width / 4;
        let panels = packed.panels.as_ptr() as *const u8;
        let query = rows.offset.as_ptr() as *const u8;
        let width = cols.len();
        let (flip, ones) = (_mm256_set1_epi8(i8::MIN), _mm256_set1_epi16(1));
        for r0 in (0..out.len() / width).step_by(AVX2_ROWS) {
            for c0 in cols.clone().step_by(COLUMNS) {
                let base = panels.add((c0 / PANEL) * groups * 64);
                let mut acc = [[_mm256_setzero_si256(); 4]; AVX2_ROWS];
                for g in 0..groups {
                    // Columns 0-7 and 8-15 of the first panel's group, then the second panel's.
                    let b = [0, 32, groups * 64, groups * 64 + 32]
                        .map(|at| _mm256_loadu_si256(base.add(g * 64 + at) as *const __m256i));
                    for (r, acc) in acc.iter_mut().enumerate() {
                        let bytes = query.add((r0 + r) * self.width + 4 * g) as *const i32;
                        let a = _mm256_xor_si256(_mm256_set1_epi32(bytes.read_unaligned()), flip);
                        let magnitude = _mm256_abs_epi8(a);
                        for (acc, &b) in acc.iter_mut().zip(&b) {
                            let pairs = _mm256_maddubs_epi16(magnitude, _mm256_sign_epi8(b, a));
                            *acc = _mm256_add_epi32(*acc, _mm256_madd_epi16(pairs, ones));
                        }
                    }
                }
                for (r, acc) in acc.iter().enumerate() {
                    let to = out.as_mut_ptr().add((r0 + r) * width + c0 - cols.start);
                    for (e, &sums) in acc.iter().enumerate() {
                        _mm256_storeu_si256(to.add(8 * e) as *mut __m256i, sums);
                    }
                }
            }
        }
    }

    /// The AMX kernel: 2 row tiles x 2 panels of i32 sums in four accumulator tiles (tmm0-3), each
    /// started from the columns' starts (a tile load of one row, stride 0), then per 64 terms two A
    /// tiles of query rows (tmm4-5) and two B tiles of 16 groups of a panel (tmm6-7, 1 KiB each,
    /// contiguous), four `tdpbusd`; stored straight into `out`. Column pairs outside, so that each is read
    /// from memory once and the block's query rows stay in cache (0.73 ns per pair, against 0.80 with
    /// row pairs outside, for 64 rows x 256 columns at m = 512).
    ///
    /// # Safety
    /// Linux granted the tile state ([`amx`]); `width` is whole tile rows; `cols` is whole [`COLUMNS`]
    /// inside the packed ones; `out` holds whole steps of rows (rows x `cols`), and `rows` at least as
    /// many.
    #[cfg(all(target_arch = "x86_64", target_os = "linux"))]
    unsafe fn products_amx(
        &self,
        packed: &Packed,
        rows: &QueryRows,
        cols: Range<usize>,
        out: &mut [i32],
    ) {
        use std::arch::asm;
        configure_tiles();
        let groups = self.width / 4;
        let panels = packed.panels.as_ptr() as *const u8;
        let query = rows.offset.as_ptr() as *const u8;
        let width = cols.len();
        let (a_stride, c_stride) = (self.width, width * 4);
        for c0 in cols.clone().step_by(COLUMNS) {
            let b0 = panels.add((c0 / PANEL) * groups * 64);
            let b1 = b0.add(groups * 64);
            let start = packed.start.as_ptr().add(c0);
            for r0 in (0..out.len() / width).step_by(AMX_ROWS) {
                let a0 = query.add(r0 * self.width);
                let a1 = a0.add(TILE_ROWS * self.width);
                asm!(
                    "tileloadd tmm0, [{s0} + {zero}*1]",
                    "tileloadd tmm1, [{s1} + {zero}*1]",
                    "tileloadd tmm2, [{s0} + {zero}*1]",
                    "tileloadd tmm3, [{s1} + {zero}*1]",
                    s0 = in(reg) start, s1 = in(reg) start.add(PANEL), zero = in(reg) 0usize,
                    options(nostack, readonly),
                );
                for k in (0..self.width).step_by(TILE_BYTES) {
                    asm!(
                        "tileloadd tmm4, [{a0} + {sa}*1]",
                        "tileloadd tmm6, [{b0} + {sb}*1]",
                        "tdpbusd tmm0, tmm4, tmm6",
                        "tileloadd tmm5, [{a1} + {sa}*1]",
                        "tdpbusd tmm2, tmm5, tmm6",
                        "tileloadd tmm7, [{b1} + {sb}*1]",
                        "tdpbusd tmm1, tmm4, tmm7",
                        "tdpbusd tmm3, tmm5, tmm7",
                        a0 = in(reg) a0.add(k), a1 = in(reg) a1.add(k),
                        b0 = in(reg) b0.add(k * PANEL), b1 = in(reg) b1.add(k * PANEL),
                        sa = in(reg) a_stride, sb = in(reg) TILE_BYTES,
                        options(nostack, readonly),
                    );
                }
                let c = out.as_mut_ptr().add(r0 * width + c0 - cols.start);
                asm!(
                    "tilestored [{c0} + {s}*1], tmm0",
                    "tilestored [{c1} + {s}*1], tmm1",
                    "tilestored [{c2} + {s}*1], tmm2",
                    "tilestored [{c3} + {s}*1], tmm3",
                    c0 = in(reg) c, c1 = in(reg) c.add(PANEL),
                    c2 = in(reg) c.add(TILE_ROWS * width), c3 = in(reg) c.add(TILE_ROWS * width + PANEL),
                    s = in(reg) c_stride,
                    options(nostack),
                );
            }
        }
        asm!("tilerelease", options(nostack, nomem));
    }
}

/// Loads palette 1 with all eight tiles 16 rows x 64 bytes into this thread's tile configuration (which
/// is per thread, so every call of the AMX kernel loads it; `tilerelease` ends it).
///
/// # Safety
/// Only after Linux granted this process the tile state ([`amx`]).
#[cfg(all(target_arch = "x86_64", target_os = "linux"))]
unsafe fn configure_tiles() {
    let mut config = Line([0; 64]);
    config.0[0] = 1;
    for t in 0..8 {
        config.0[16 + 2 * t] = TILE_BYTES as u8;
        config.0[48 + t] = TILE_ROWS as u8;
    }
    // SAFETY: a valid palette-1 configuration of 64 bytes, the tile state granted (the caller's promise).
    unsafe {
        std::arch::asm!("ldtilecfg [{}]", in(reg) config.0.as_ptr(), options(nostack, readonly))
    };
}

/// Whether this CPU runs the AVX2 kernel (detected once per process).
fn avx2() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        static AVX2: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
        *AVX2.get_or_init(|| std::is_x86_feature_detected!("avx2"))
    }
    #[cfg(not(target_arch = "x86_64"))]
    false
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

/// Whether this process runs the AMX kernel: the CPU has AMX-TILE and AMX-INT8 (cpuid leaf 7, EDX bits
/// 24 and 25; `is_x86_feature_detected!` does not know them on stable Rust) and Linux granted the tile
/// state, which it does per process on request (arch_prctl(ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA)).
/// Asked once per process.
fn amx() -> bool {
    #[cfg(all(target_arch = "x86_64", target_os = "linux"))]
    {
        static AMX: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
        *AMX.get_or_init(|| {
            use std::arch::x86_64::{__cpuid_count, __get_cpuid_max};
            if __get_cpuid_max(0).0 < 7 {
                return false;
            }
            let leaf7 = __cpuid_count(7, 0);
            if leaf7.edx & (1 << 24) == 0 || leaf7.edx & (1 << 25) == 0 {
                return false;
            }
            let (arch_prctl, req_xcomp_perm, xtiledata) = (158i64, 0x1023i64, 18i64);
            let ret: i64;
            // SAFETY: a system call with integer arguments that touches no memory of ours; the kernel
            // clobbers rcx and r11.
            unsafe {
                std::arch::asm!(
                    "syscall",
                    inlateout("rax") arch_prctl => ret, in("rdi") req_xcomp_perm, in("rsi") xtiledata,
                    lateout("rcx") _, lateout("r11") _, options(nostack),
                );
            }
            ret == 0
        })
    }
    #[cfg(not(all(target_arch = "x86_64", target_os = "linux")))]
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
            for packing in kernels(&q, n, m) {
                let int8 = Int8::new(&q, &packing);
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

    /// The packing of every kernel this process runs: the portable loop, and AVX2, VNNI and AMX where
    /// detected.
    fn kernels(q: &[i8], n: usize, m: usize) -> Vec<Int8Packing> {
        let mut out = vec![Int8Packing::on(q, n, m, Kernel::Portable)];
        if avx2() && !q.contains(&i8::MIN) {
            out.push(Int8Packing::on(q, n, m, Kernel::Avx2));
        }
        if vnni() {
            out.push(Int8Packing::on(q, n, m, Kernel::Vnni));
        }
        if amx() {
            out.push(Int8Packing::on(q, n, m, Kernel::Amx));
        }
        out
    }

    /// Shapes around the AMX kernel's tiles (16 rows, 2 x 16 rows a step, 64 terms a tile row) and the
    /// VNNI kernel's steps, a column range from past 0 and past n.
    #[test]
    fn products_are_exact_across_tile_edges() {
        let n = 83;
        for m in [4, 13, 64, 65, 512] {
            let q = values(n * m, m as u64);
            for packing in kernels(&q, n, m) {
                let int8 = Int8::new(&q, &packing);
                for rows in [1, 15, 16, 17, 33, 64] {
                    let picked: Vec<usize> = (0..rows).map(|r| (r * 5 + 3) % n).collect();
                    let query_rows = int8.query_rows(&picked);
                    let cols = COLUMNS..3 * COLUMNS;
                    let mut out = Vec::new();
                    int8.products(&query_rows, cols.clone(), &mut out);
                    assert_eq!(out.len(), rows * cols.len());
                    for (r, &i) in picked.iter().enumerate() {
                        for j in cols.clone() {
                            let want: i32 = if j < n {
                                (0..m)
                                    .map(|t| q[i * m + t] as i32 * q[j * m + t] as i32)
                                    .sum()
                            } else {
                                0
                            };
                            assert_eq!(
                                out[r * cols.len() + j - cols.start],
                                want,
                                "{:?} m {m} rows {rows} row {i} column {j}",
                                int8.kernel
                            );
                        }
                    }
                }
            }
        }
    }

    /// AVX2's pair sums stay below 2^15 only while no column value is -128: query rows of -128 are exact,
    /// and columns holding it are multiplied by another kernel.
    #[test]
    fn minus_128_is_exact_in_query_rows_and_columns() {
        let (n, m) = (40, 64);
        let mut q: Vec<i8> = (0..n * m)
            .map(|t| if t % 3 == 0 { -127 } else { 127 })
            .collect();
        let queries = vec![i8::MIN; 3 * m];
        let want = |a: &[i8], j: usize, q: &[i8]| -> i32 {
            (0..m).map(|t| a[t] as i32 * q[j * m + t] as i32).sum()
        };
        for packing in kernels(&q, n, m) {
            let int8 = Int8::new(&q, &packing);
            let rows = int8.query_rows_of(&queries, &[0, 1, 2]);
            let mut out = Vec::new();
            int8.products(&rows, 0..64, &mut out);
            for r in 0..3 {
                for j in 0..n {
                    assert_eq!(
                        out[r * 64 + j],
                        want(&queries[r * m..], j, &q),
                        "{:?}",
                        int8.kernel
                    );
                }
            }
        }
        q[5] = i8::MIN;
        let packing = Int8Packing::of(&q, n, m);
        assert_ne!(packing.kernel, Kernel::Avx2);
        let int8 = Int8::new(&q, &packing);
        let rows = int8.query_rows_of(&queries, &[0]);
        let mut out = Vec::new();
        int8.products(&rows, 0..64, &mut out);
        assert_eq!(out[0], want(&queries, 0, &q));
    }

    #[test]
    fn extreme_values_do_not_overflow() {
        let (n, m) = (40, 512);
        let q: Vec<i8> = (0..n * m)
            .map(|t| if t % 3 == 0 { -127 } else { 127 })
            .collect();
        for packing in kernels(&q, n, m) {
            let int8 = Int8::new(&q, &packing);
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
