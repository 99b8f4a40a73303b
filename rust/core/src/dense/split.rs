//! The split screen in place of the f64 GEMM (covertreex/split_screen.py states the bound and proves
//! it): for a query i and a point j != i, the exact int8 product of their rows of Z and seven factors per
//! row give s_up >= the canonical similarity s_c = min(1, |rho_c|), so the pair's canonical distance is
//! at least D(s_up), D(s) = sqrt(max(0, 1 - s)) (which does not rise with s, in floating point too). A
//! query block's points are screened twice, chunk by chunk:
//!
//! 1. *probes*: each query's k + k/4 ([`EXTRA_PROBES_PER_K`]) pairs of largest s_up (ties by index) are
//!    evaluated canonically; the k-th smallest of those distances (with 0 for the query's own index when
//!    eligible), T, is at least the query's k-th distance;
//! 2. a pair with s_up below [`least_similarity_within`] T has D(s_up) > T: its canonical distance is
//!    strictly above the k-th, so it is skipped. The rest are evaluated canonically at once, while their
//!    chunk of V is in cache, and offered to the query's heap in index order: answers and distance bits
//!    are brute's.
//!
//! Every decision is made pair by pair from exact integers and f64 operations in a fixed order, and T
//! from canonical distances: which pairs are evaluated depends neither on the spans (so the threads) nor
//! on the instruction set, and neither do the counters. A query's own pair is never screened: d_ii = 0 by
//! definition, where the bound need not hold.

use std::ops::Range;

use rayon::prelude::*;

use super::int8::{Int8, QueryRows, COLUMNS, MAX_WIDTH};
use super::screen::Isa;
use super::{count_tile, BlockRows, Job};
use crate::errors::{CoreError, Result};
use crate::evaluate::Mode;
use crate::heap::Heap;
use crate::metric::{distance_of_similarity, Metric, MetricData};
use crate::query::QueryBatch;

/// Factors per row (covertreex.split_screen.FACTORS: sigma, zerr, znorm, verr, vnorm, floor, rest).
pub const FACTORS: usize = 7;

/// Probes per query beyond the k asked for, as a divisor of k: k + ceil(k / 4) in all. More probes tighten the threshold T
/// (the k-th of more of the likeliest pairs) and cost more canonical evaluations. Vecchia all-points,
/// N = 32,768, k = 50, evaluations per query and query seconds (rust perf mode, dense path, the split built
/// before; 2026-12-06 01:35 UTC, noisy to +-0.3 s): k probes 152.0 / 4.42 s; 1.25 k 120.4 / 3.29, 3.50,
/// 3.80 s; 1.5 k 122.0 / 3.64 s; 2 k 134.5 / 3.98, 3.65, 3.87 s; 3 k 166.4 / 4.00 s.
const EXTRA_PROBES_PER_K: usize = 4;

/// (1 + 64 u): covers the fourteen roundings of [`Split::bounds`] with room to spare.
const INFLATE: f64 = 1.0 + 32.0 * f64::EPSILON;

/// The split screen's arrays, as covertreex.split_screen makes them: Z's rows in int8 (n x m) and the
/// bound's factors (n x [`FACTORS`]), both row-major.
#[derive(Debug, Clone, Copy)]
pub struct SplitData<'a> {
    pub q: &'a [i8],
    pub m: usize,
    pub factors: &'a [f64],
}

impl SplitData<'_> {
    /// Check the arrays against the data and the batch: the split screens indexed residual queries only
    /// (its rows of Z are the data's).
    pub fn check(&self, data: &MetricData, queries: &QueryBatch) -> Result<()> {
        let n = data.n_points();
        for (what, expected, got) in [
            ("split screen rows (q)", n.checked_mul(self.m), self.q.len()),
            (
                "split screen factors",
                n.checked_mul(FACTORS),
                self.factors.len(),
            ),
        ] {
            if expected != Some(got) {
                return Err(CoreError::DimensionMismatch {
                    what,
                    expected: expected.unwrap_or(usize::MAX),
                    got,
                });
            }
        }
        if self.m == 0 || self.m > MAX_WIDTH {
            return Err(CoreError::BadValue {
                what: "split screen width (m)",
                value: self.m as i64,
                allowed: "1..=65536",
            });
        }
        if let Some(position) = self
            .factors
            .iter()
            .position(|f| !(f.is_finite() && *f >= 0.0))
        {
            return Err(CoreError::NonFinite {
                what: "split screen factors (finite and >= 0)",
                position,
            });
        }
        if data.metric != Metric::Residual || !queries.data.same_as(data) {
            return Err(CoreError::BadValue {
                what: "split screen",
                value: 1,
                allowed: "only for residual queries of the indexed points",
            });
        }
        Ok(())
    }

    fn row(&self, i: usize) -> &[f64; FACTORS] {
        self.factors[i * FACTORS..(i + 1) * FACTORS]
            .try_into()
            .unwrap()
    }
}

/// The split screen of one call: its data, the factors column by column (so that a row of bounds reads
/// each contiguously), and Z's rows as the products read them.
pub struct Split<'a> {
    data: SplitData<'a>,
    columns: Vec<f64>,
    n: usize,
    int8: Int8<'a>,
}

impl<'a> Split<'a> {
    /// Checked data ([`SplitData::check`]), packed for the products.
    pub fn new(data: SplitData<'a>, n: usize) -> Split<'a> {
        let columns = (0..FACTORS)
            .flat_map(|t| (0..n).map(move |j| data.factors[j * FACTORS + t]))
            .collect();
        Split {
            int8: Int8::new(data.q, n, data.m),
            columns,
            n,
            data,
        }
    }

    /// s_up of row `i` against the points c0, c0 + 1, .. from their int8 products `prods`, into `out`:
    /// every term a product of non-negative factors, summed in one order, then inflated. The same IEEE
    /// operations on every instruction set (no fused multiply-add), so the same bits.
    fn bounds(&self, i: usize, c0: usize, prods: &[i32], out: &mut Vec<f64>) {
        out.clear();
        out.resize(prods.len(), 0.0);
        #[cfg(target_arch = "x86_64")]
        if Isa::fastest() == Isa::Avx512 {
            // SAFETY: `Isa::available` lists Avx512 only when the CPU supports AVX-512F.
            return unsafe { self.bounds_avx512(i, c0, prods, out) };
        }
        self.bounds_into(i, c0, prods, out);
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f")]
    fn bounds_avx512(&self, i: usize, c0: usize, prods: &[i32], out: &mut [f64]) {
        self.bounds_into(i, c0, prods, out);
    }

    #[inline(always)]
    fn bounds_into(&self, i: usize, c0: usize, prods: &[i32], out: &mut [f64]) {
        let a = self.data.row(i);
        let len = prods.len();
        let b: [&[f64]; FACTORS] = std::array::from_fn(|t| {
            let from = t * self.n + c0;
            &self.columns[from..from + len]
        });
        for (at, (out, &prod)) in out.iter_mut().zip(prods).enumerate() {
            let sum = (prod as f64).abs() * a[0] * b[0][at]
                + a[1] * b[2][at]
                + a[2] * b[1][at]
                + a[3] * b[4][at]
                + a[4] * b[3][at]
                + a[5] * b[5][at]
                + a[6] * b[6][at];
            *out = INFLATE * sum;
        }
    }
}

/// The smallest s in [0, 1] whose canonical distance D(s) is at most `t` (D(1) = 0): a pair whose
/// similarity is below it has D > t. By bisection over the doubles, whose order is their bits' here.
pub fn least_similarity_within(t: f64) -> f64 {
    if distance_of_similarity(0.0) <= t {
        return 0.0;
    }
    let (mut above, mut within) = (0u64, 1f64.to_bits()); // D(above) > t >= D(within)
    while within - above > 1 {
        let mid = above + (within - above) / 2;
        if distance_of_similarity(f64::from_bits(mid)) <= t {
            within = mid;
        } else {
            above = mid;
        }
    }
    f64::from_bits(within)
}

/// A query's pairs of largest bound so far, ties by index: those its threshold is taken from.
pub(super) struct Probes {
    pairs: Vec<(f64, usize)>,
    /// No pair below it can be among the `want` best any more.
    floor: f64,
    want: usize,
}

impl Probes {
    fn new(want: usize) -> Probes {
        Probes {
            pairs: Vec::new(),
            floor: f64::NEG_INFINITY,
            want,
        }
    }

    #[inline(always)]
    fn offer(&mut self, bound: f64, j: usize) {
        if bound >= self.floor {
            self.pairs.push((bound, j));
            if self.pairs.len() >= 4 * self.want + 64 {
                self.trim();
            }
        }
    }

    /// Keep the `want` best by (bound descending, index ascending): the same set in any offer order.
    fn trim(&mut self) {
        if self.pairs.len() > self.want {
            let better =
                |a: &(f64, usize), b: &(f64, usize)| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1));
            self.pairs.select_nth_unstable_by(self.want - 1, better);
            self.pairs.truncate(self.want);
            self.floor = self.pairs[self.want - 1].0;
        }
    }

    pub(super) fn absorb(&mut self, later: Probes) {
        self.pairs.extend(later.pairs);
        self.trim();
    }
}

/// A block's rows in the split screen: its query rows as the products read them, and their factors.
pub(super) struct SplitRows {
    int8: QueryRows,
    rows: Vec<usize>,
}

impl Job<'_> {
    pub(super) fn split_rows(&self, split: &Split, rows: &BlockRows) -> SplitRows {
        let n_rows = rows.limits.len();
        let batch = &self.queries.rows[rows.first..rows.first + n_rows];
        let rows: Vec<usize> = batch.iter().map(|&r| r as usize).collect();
        SplitRows {
            int8: split.int8.query_rows(&rows),
            rows,
        }
    }

    /// Pass 1 over the points `span` (whole chunks): each query's best pairs by bound.
    pub(super) fn probe(
        &self,
        split: &Split,
        rows: &BlockRows,
        split_rows: &SplitRows,
        span: Range<usize>,
    ) -> Vec<Probes> {
        let want = self.k + self.k.div_ceil(EXTRA_PROBES_PER_K);
        let mut probes: Vec<Probes> = (0..rows.limits.len()).map(|_| Probes::new(want)).collect();
        let mut chunk = ChunkBounds::default();
        for c0 in span.clone().step_by(self.chunk) {
            if self.halted() {
                break;
            }
            let cols = c0..(c0 + self.chunk).min(span.end);
            chunk.each_row(split, rows, split_rows, cols, |q, bounds| {
                for (j, &bound) in (c0..).zip(bounds) {
                    if j as i64 != rows.own[q] {
                        probes[q].offer(bound, j);
                    }
                }
            });
        }
        probes
    }

    /// Each query's probes evaluated, and with them its least similarity worth evaluating
    /// ([`least_similarity_within`] the probes' k-th distance).
    pub(super) fn thresholds(&self, rows: &BlockRows, probes: Vec<Probes>) -> Vec<Probed> {
        let k = self.k;
        probes
            .into_par_iter()
            .enumerate()
            .map_init(Vec::new, |kth: &mut Vec<f64>, (q, mut probes)| {
                probes.trim();
                let mut points: Vec<usize> = probes.pairs.iter().map(|&(_, j)| j).collect();
                points.sort_unstable();
                kth.clear();
                kth.resize(points.len(), 0.0);
                let row = self.queries.rows[rows.first + q] as usize;
                let own = rows.own[q];
                Mode::Perf.distances(&self.queries.data, row, own, self.data, &points, kth);
                let pairs = points.into_iter().zip(kth.iter().copied()).collect();
                if own >= 0 && (own as usize) < rows.limits[q] {
                    kth.push(0.0);
                }
                let least = if kth.len() < k {
                    0.0
                } else {
                    let (_, &mut t, _) = kth.select_nth_unstable_by(k - 1, f64::total_cmp);
                    least_similarity_within(t)
                };
                Probed { least, pairs }
            })
            .collect()
    }

    /// Pass 2 over the points `span` (whole tiles): each query's pairs the split cannot skip (and its
    /// own, eligible pair) that were not probes, evaluated canonically, in index order.
    pub(super) fn sift(
        &self,
        split: &Split,
        rows: &BlockRows,
        split_rows: &SplitRows,
        probed: &[Probed],
        span: Range<usize>,
    ) -> Vec<Found> {
        let nb = rows.limits.len();
        let mut found: Vec<Found> = (0..nb).map(|_| Found::default()).collect();
        let (mut chunk, mut points, mut scratch) = (ChunkBounds::default(), Vec::new(), Vec::new());
        let step = self.blocks.points;
        for j0 in span.clone().step_by(step) {
            if self.halted() {
                break;
            }
            let stop = (j0 + step).min(span.end);
            for c0 in (j0..stop).step_by(self.chunk) {
                let cols = c0..(c0 + self.chunk).min(stop);
                chunk.each_row(split, rows, split_rows, cols, |q, bounds| {
                    let (probed, own) = (&probed[q], rows.own[q]);
                    points.clear();
                    for (j, &bound) in (c0..).zip(bounds) {
                        if (j as i64 == own || bound >= probed.least) && !probed.has(j) {
                            points.push(j);
                        }
                    }
                    found[q].evaluate(self, split_rows.rows[q], own, &points, &mut scratch);
                });
            }
            let counts = found.iter_mut().map(|f| (&mut f.screened, &mut f.tiles));
            count_tile(&rows.limits, j0..stop, counts);
        }
        found
    }
}

/// A span's buffers for the bounds of its chunks.
#[derive(Default)]
struct ChunkBounds {
    products: Vec<i32>,
    bounds: Vec<f64>,
}

impl ChunkBounds {
    /// s_up of every eligible pair of the block's rows with the points `cols` (a chunk), row by row:
    /// `each(q, bounds)`, bounds[t] that of point cols.start + t, up to the row's limit.
    fn each_row(
        &mut self,
        split: &Split,
        rows: &BlockRows,
        split_rows: &SplitRows,
        cols: Range<usize>,
        mut each: impl FnMut(usize, &[f64]),
    ) {
        let aligned = cols.start / COLUMNS * COLUMNS..cols.end.div_ceil(COLUMNS) * COLUMNS;
        let (at, width) = (cols.start - aligned.start, aligned.len());
        split
            .int8
            .products(&split_rows.int8, aligned, &mut self.products);
        for (q, &limit) in rows.limits.iter().enumerate() {
            let limit = limit.min(cols.end);
            if limit > cols.start {
                let row = &self.products[q * width + at..q * width + at + (limit - cols.start)];
                split.bounds(split_rows.rows[q], cols.start, row, &mut self.bounds);
                each(q, &self.bounds);
            }
        }
    }
}

/// A query's pairs the split let through over some points, with their canonical distances, in index
/// order, and the eligible pairs and point tiles it screened there.
#[derive(Default)]
pub(super) struct Found {
    pairs: Vec<(usize, f64)>,
    pub screened: i64,
    pub tiles: i64,
}

impl Found {
    /// Evaluate the query (row `row`, dataset index `own`) against `points` (ascending) into its pairs.
    fn evaluate(
        &mut self,
        job: &Job,
        row: usize,
        own: i64,
        points: &[usize],
        scratch: &mut Vec<f64>,
    ) {
        scratch.clear();
        scratch.resize(points.len(), 0.0);
        Mode::Perf.distances(&job.queries.data, row, own, job.data, points, scratch);
        self.pairs
            .extend(points.iter().copied().zip(scratch.iter().copied()));
    }

    /// Take over the same query's pairs over later points.
    pub fn absorb(&mut self, later: Found) {
        self.pairs.extend(later.pairs);
        self.screened += later.screened;
        self.tiles += later.tiles;
    }

    /// These pairs and the probes offered to `heap` in index order: (evaluations, heap pushes).
    pub fn finish(&self, heap: &mut Heap, probed: &Probed) -> (i64, i64) {
        heap.clear();
        let (mut pushes, mut probes) = (0, probed.pairs.iter().peekable());
        for &(j, d) in &self.pairs {
            while let Some(&(p, pd)) = probes.next_if(|&&(p, _)| p < j) {
                pushes += heap.offer(pd, p as i64) as i64;
            }
            pushes += heap.offer(d, j as i64) as i64;
        }
        for &(p, pd) in probes {
            pushes += heap.offer(pd, p as i64) as i64;
        }
        ((self.pairs.len() + probed.pairs.len()) as i64, pushes)
    }
}

/// A query's probes, evaluated (by index), and the least similarity worth evaluating they give.
pub(super) struct Probed {
    least: f64,
    pairs: Vec<(usize, f64)>,
}

impl Probed {
    /// Whether point j was a probe (its distance is known already).
    fn has(&self, j: usize) -> bool {
        self.pairs.binary_search_by_key(&j, |&(p, _)| p).is_ok()
    }
}

/// Merge the spans' results query by query, in span order.
pub(super) fn merge<T>(parts: Vec<Vec<T>>, absorb: impl Fn(&mut T, T)) -> Vec<T> {
    let mut parts = parts.into_iter();
    let mut merged = parts.next().unwrap_or_default();
    for later in parts {
        for (into, later) in merged.iter_mut().zip(later) {
            absorb(into, later);
        }
    }
    merged
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn least_similarity_is_the_exact_boundary() {
        for t in [0.0, 1e-300, 1e-8, 0.123, 0.5, 0.999999, 1.0, 1.5] {
            let least = least_similarity_within(t);
            assert!(distance_of_similarity(least) <= t, "t {t}");
            if least > 0.0 {
                let below = f64::from_bits(least.to_bits() - 1);
                assert!(distance_of_similarity(below) > t, "t {t}");
            }
        }
    }

    #[test]
    fn probes_keep_the_best_by_bound_then_index_in_any_order() {
        let pairs: Vec<(f64, usize)> = (0..500).map(|j| (((j * 37) % 11) as f64, j)).collect();
        let mut forward = Probes::new(20);
        pairs.iter().for_each(|&(b, j)| forward.offer(b, j));
        forward.trim();
        let mut halves = Probes::new(20);
        let mut later = Probes::new(20);
        pairs[..250].iter().for_each(|&(b, j)| halves.offer(b, j));
        pairs[250..]
            .iter()
            .rev()
            .for_each(|&(b, j)| later.offer(b, j));
        halves.absorb(later);
        for probes in [&mut forward, &mut halves] {
            probes.pairs.sort_by_key(|&(_, j)| j);
        }
        assert_eq!(forward.pairs, halves.pairs);
        assert!(forward.pairs.iter().all(|&(b, _)| b == 10.0));
        let mut want: Vec<usize> = pairs.iter().filter(|p| p.0 == 10.0).map(|p| p.1).collect();
        want.truncate(20);
        assert_eq!(forward.pairs.iter().map(|p| p.1).collect::<Vec<_>>(), want);
    }
}
