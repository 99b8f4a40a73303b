//! The split screen ahead of the outside screening (covertreex/split_screen.py states and proves its
//! bound; dense/split.rs computes it): for an unplaced point j and a point c just placed, the exact int8
//! product of their rows of Z and the bound's factors give s_up >= s_c, the pair's canonical similarity
//! (j != c). A pair with s_up < -cutoff (the residual key is -s) has a canonical key above the point's
//! cut-off, so it is canonically farther than the point's k-th neighbour so far: `point::Point::admit`
//! would never keep it, and it cannot be the point's new nearest either (that one is at or below the
//! k-th). Such a pair is dropped before any f64 work. The others (survivors) get their GEMM value as
//! one dot product of their rows of V ([`dot_lanes`]: the screen's bound holds for any summation
//! order) and go through the f64 screen as before, so the candidates, `dist` and the rows are decided
//! by the same intervals and canonical distances: the order and the rows are the f64 pass's, bit for
//! bit. Only the evaluation count may differ, either way: the split drops pairs the f64 interval could not
//! exclude (canonically beyond the k-th: evaluated in vain there), and a survivor's single dot product or
//! smaller GEMM tile rounds otherwise than the whole tile did (other intervals; equal counts so far).
//!
//! Early in the pass every pair survives (few points are placed, so a point's k-th is far), and so do
//! most pairs of a point z fits badly: a row with more than [`SPARSE_MAX`] survivors takes the GEMM
//! tile with the others like it in its slab. Which rows do, and which pairs survive, follows from exact
//! integers and a fixed order of f64 operations: never from the threads.

use crate::dense::{
    check_split_rows, dot_lanes, gram, FactorColumns, Int8, Int8Packing, FACTORS, INT8_COLUMNS,
};
use crate::errors::{CoreError, Result};
use crate::metric::{Metric, MetricData};

/// Survivors above which a row of a round takes the GEMM tile: a survivor's dot product reads its two
/// rows of V outside any GEMM (~200 ns with the f64 screen of its group at m = 512, perf samples of the
/// pass at N = 32,768), a GEMM row costs ~15-20 ns per pair with its screen.
pub const SPARSE_MAX: usize = 64;

/// Z's int8 rows (n x m, row-major) and the bound's factors (n x [`FACTORS`]) of every point, as
/// covertreex.split_screen makes them for the data's V (its bound rests on that V); and `floor`, the
/// residual key (-similarity) beyond which pairs are kept for no row (inf: every pair may be): a row whose
/// k-th neighbour may lie beyond it is left unproven ([`MaximinOutput::unproven`](super::MaximinOutput)).
/// Early in the pass a point's k-th is far (few points are placed), so nearly every pair passes the
/// split's bound, and took an f64 value, only to be superseded later; with a floor, only the pairs that
/// may be the point's new nearest or reach the floor do. The rows left unproven belong mostly to points
/// placed early, which have few predecessors: at N = 32,768, k = 50 and similarity 0.5, 38% of the rows
/// but 16% of the predecessor query's pairs (their query took ~2 s of the ~9 s job on an AVX2 host).
#[derive(Clone, Copy)]
pub struct MaximinSplit<'a> {
    pub q: &'a [i8],
    pub m: usize,
    pub factors: &'a [f64],
    pub floor: f64,
}

impl MaximinSplit<'_> {
    /// The arrays against the residual data ([`check_split_rows`]).
    pub fn check(&self, data: &MetricData) -> Result<()> {
        if data.metric != Metric::Residual {
            return Err(CoreError::BadValue {
                what: "split screen",
                value: 1,
                allowed: "only for the residual metric",
            });
        }
        if self.floor.is_nan() {
            return Err(CoreError::NotANumber {
                what: "split floor",
            });
        }
        check_split_rows(self.q, self.m, self.factors, data.n_points())
    }

    fn factors_of(&self, j: usize) -> &[f64; FACTORS] {
        self.factors[j * FACTORS..(j + 1) * FACTORS]
            .try_into()
            .unwrap()
    }
}

/// The points placed in a round as the int8 products' columns: their rows of Z packed, their factors.
pub struct Chunk {
    q: Vec<i8>,
    packing: Int8Packing,
    columns: FactorColumns,
    count: usize,
}

impl Chunk {
    /// The points `placed` (dataset indices, in position order).
    pub fn of(split: &MaximinSplit, placed: &[usize]) -> Chunk {
        let m = split.m;
        let q: Vec<i8> = (placed.iter())
            .flat_map(|&c| &split.q[c * m..(c + 1) * m])
            .copied()
            .collect();
        Chunk {
            packing: Int8Packing::of(&q, placed.len(), m),
            columns: FactorColumns::of(split.factors, placed),
            count: placed.len(),
            q,
        }
    }
}

/// One slab's rows against a chunk: which pairs survive, and the rows that take the GEMM.
pub struct Survivors {
    /// Per slab row, `stride` bytes: bit t % 8 of byte t / 8 for the chunk's column t (read for the
    /// sparse rows only).
    masks: Vec<u8>,
    stride: usize,
    /// Slab rows with more than [`SPARSE_MAX`] survivors.
    pub dense: Vec<usize>,
    /// The other slab rows with survivors, in order.
    pub sparse: Vec<usize>,
}

impl Survivors {
    /// Every one of `rows` slab rows on the GEMM (no split screen).
    pub fn every(rows: usize) -> Survivors {
        Survivors {
            masks: Vec::new(),
            stride: 0,
            dense: (0..rows).collect(),
            sparse: Vec::new(),
        }
    }

    /// Screen the slab's points `members` (dataset indices), those with `screened(r)`, against `chunk`:
    /// a pair survives when its s_up reaches -cutoffs(r).
    pub fn of(
        split: &MaximinSplit,
        chunk: &Chunk,
        members: &[usize],
        screened: impl Fn(usize) -> bool,
        cutoffs: impl Fn(usize) -> f64,
    ) -> Survivors {
        let stride = chunk.count.div_ceil(8);
        let mut masks = vec![0u8; members.len() * stride];
        let (mut mask, mut dense, mut sparse) = (Vec::new(), Vec::new(), Vec::new());
        // A row whose cut-off is still infinite lets every pair through: the GEMM, without products.
        let all_through = chunk.count > SPARSE_MAX;
        let mut rows = Vec::new();
        for r in (0..members.len()).filter(|&r| screened(r)) {
            if all_through && cutoffs(r) == f64::INFINITY {
                dense.push(r);
            } else {
                rows.push(r);
            }
        }
        if rows.is_empty() {
            return Survivors {
                masks,
                stride,
                dense,
                sparse,
            };
        }
        let int8 = Int8::new(&chunk.q, &chunk.packing);
        let points: Vec<usize> = rows.iter().map(|&r| members[r]).collect();
        let padded = chunk.count.div_ceil(INT8_COLUMNS) * INT8_COLUMNS;
        let mut prods = Vec::new();
        int8.products(&int8.query_rows_of(split.q, &points), 0..padded, &mut prods);
        for (t, (&r, &j)) in rows.iter().zip(&points).enumerate() {
            let row = &prods[t * padded..t * padded + chunk.count];
            (chunk.columns).reach(split.factors_of(j), 0, row, -cutoffs(r), &mut mask);
            let count: u32 = mask.iter().map(|bits| bits.count_ones()).sum();
            if count as usize > SPARSE_MAX {
                dense.push(r);
            } else if count > 0 {
                sparse.push(r);
                masks[r * stride..(r + 1) * stride].copy_from_slice(&mask);
            }
        }
        dense.sort_unstable();
        Survivors {
            masks,
            stride,
            dense,
            sparse,
        }
    }

    /// Pairs given a value: `cols` per dense row with `screened(r)`, the surviving columns of the
    /// sparse rows.
    pub fn pairs(&self, cols: usize, screened: impl Fn(usize) -> bool) -> i64 {
        let sparse: u32 = (self.sparse.iter())
            .flat_map(|&r| &self.masks[r * self.stride..(r + 1) * self.stride])
            .map(|bits| bits.count_ones())
            .sum();
        let dense = self.dense.iter().filter(|&&r| screened(r)).count();
        (dense * cols) as i64 + i64::from(sparse)
    }

    /// Slab row `r`'s survivors, a group of eight columns at a time: (first column, bits).
    pub fn groups(&self, r: usize) -> impl Iterator<Item = (usize, u8)> + '_ {
        (self.masks[r * self.stride..(r + 1) * self.stride]
            .iter()
            .enumerate())
        .filter(|&(_, &bits)| bits != 0)
        .map(|(byte, &bits)| (8 * byte, bits))
    }
}

/// The GEMM values of a group's survivors (`bits` over columns c0..c0 + 8 of `placed`, rows of
/// `width`) with the point's operand row `row`; the other columns' values are 0 and must not be read.
pub fn group_values(row: &[f64], placed: &[f64], width: usize, c0: usize, bits: u8) -> [f64; 8] {
    let mut g = [0.0; 8];
    let mut left = bits;
    while left != 0 {
        let t = left.trailing_zeros() as usize;
        left &= left - 1;
        let c = c0 + t;
        g[t] = dot_lanes(row, &placed[c * width..(c + 1) * width]);
    }
    g
}

/// The GEMM tile of slab rows `rows` (operand rows of `width` in `values`, the slab's `slab` rows) against
/// the chunk's `cols` points (`placed`), into `tile` (rows x cols): on the slab's own rows when `rows` is
/// all of them, else on a gathered copy.
pub fn dense_tile(
    tile: &mut Vec<f64>,
    values: &[f64],
    rows: &[usize],
    slab: usize,
    placed: &[f64],
    cols: usize,
    width: usize,
) {
    tile.resize(rows.len() * cols, 0.0);
    if rows.len() == slab {
        gram(tile, values, placed, slab, cols, width);
        return;
    }
    let gathered: Vec<f64> = (rows.iter())
        .flat_map(|&r| &values[r * width..(r + 1) * width])
        .copied()
        .collect();
    gram(tile, &gathered, placed, rows.len(), cols, width);
}

/// Ask the CPU to bring the cache line holding `item` into its caches (a hint, as [`prefetch`]).
pub fn prefetch_line<T>(item: &T) {
    #[cfg(not(target_arch = "x86_64"))]
    let _ = item;
    // SAFETY: a prefetch hint reads nothing and faults on no address; the pointer is a reference's.
    #[cfg(target_arch = "x86_64")]
    unsafe {
        std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(
            (item as *const T).cast(),
        )
    };
}

/// Ask the CPU to bring `values` into its caches (a hint; nothing else changes): a survivor's row of V is
/// read for its few dot products only, from memory (the pool of unplaced rows is far larger than the
/// caches), so the next row's lines are fetched while the current row is used.
pub fn prefetch(values: &[f64]) {
    #[cfg(not(target_arch = "x86_64"))]
    let _ = values;
    #[cfg(target_arch = "x86_64")]
    for line in values.chunks(8) {
        // SAFETY: a prefetch hint reads nothing and faults on no address; the pointer is in bounds.
        unsafe {
            std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(
                line.as_ptr().cast(),
            )
        };
    }
}
