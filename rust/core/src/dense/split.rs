//! The split screen in place of the f64 GEMM (covertreex/split_screen.py states the bound and proves
//! it): for a query i and a point j != i, the exact int8 product of their rows of Z and seven factors per
//! row give s_up >= the canonical similarity s_c = min(1, |rho_c|), so the pair's canonical distance is
//! at least D(s_up), D(s) = sqrt(max(0, 1 - s)) (which does not rise with s, in floating point too). A
//! query block's points are screened twice, chunk by chunk, each pass comparing every pair's s_up with a
//! threshold of its query in vectors ([`FactorColumns::reach`]) and taking s_up itself of the few that reach it:
//!
//! 1. *probes*: each query's k + ceil(k/4) ([`EXTRA_PROBES_PER_K`]) pairs of largest s_up (ties by
//!    index) are evaluated canonically; the k-th smallest of those distances and of the k the caller
//!    gives (with 0 for the query's own index when eligible), T, is at least the query's k-th distance;
//! 2. a pair with s_up below [`least_similarity_within`] T has D(s_up) > T: its canonical distance is
//!    strictly above the k-th, so it is skipped. The rest are gathered, then evaluated canonically and
//!    offered to the query's heap in index order with the probes: answers and distance bits are brute's.
//!    A query through which too many come is declined instead ([`Found`]).
//!
//! Pass 1 keeps more pairs than it probes ([`SplitData::kept_per_probe`]): where the least of those kept bounds
//! lies below the query's least similarity, every pair that reaches it was kept, and pass 2 takes them
//! from there instead of a second round of products ([`Probed::sift`]): the same pairs either way.
//!
//! The pairs of two points the caller leaves out ([`SplitData::left_out`]) are neither screened nor
//! counted: the caller answers them and gives their distances. Every decision is made pair by pair from
//! exact integers and f64 operations in a fixed order, and T from canonical distances: which pairs are
//! evaluated and which queries declined depends neither on the spans (so the threads) nor on the
//! instruction set, and neither do the counters. A query's own pair is never screened: d_ii = 0 by
//! definition, where the bound need not hold.

use std::ops::Range;

use rayon::prelude::*;

use super::int8::{Int8, Int8Packing, QueryRows, COLUMNS, MAX_WIDTH};
use super::screen::Isa;
use super::{count_tile, BlockRows, Job};
use crate::errors::{CoreError, Result};
use crate::evaluate::Mode;
use crate::heap::Heap;
use crate::metric::{distance_of_similarity, Metric, MetricData};
use crate::query::{run_on, thread_pool, QueryBatch};

/// Factors per row (covertreex.split_screen.FACTORS: sigma, zerr, znorm, verr, vnorm, floor, rest).
pub const FACTORS: usize = 7;

/// Probes per query beyond the k asked for, as a divisor of k: k + ceil(k / 4) in all. More probes
/// tighten the threshold T (the k-th of more of the likeliest pairs) and cost more canonical evaluations. Vecchia all-points,
/// N = 32,768, k = 50, evaluations per query and query seconds (rust perf mode, dense path, the split built
/// before; 2026-12-06 01:35 UTC, noisy to +-0.3 s): k probes 152.0 / 4.42 s; 1.25 k 120.4 / 3.29, 3.50,
/// 3.80 s; 1.5 k 122.0 / 3.64 s; 2 k 134.5 / 3.98, 3.65, 3.87 s; 3 k 166.4 / 4.00 s.
const EXTRA_PROBES_PER_K: usize = 4;

/// (1 + 64 u): covers the fourteen roundings of [`FactorColumns::bound`] (and of [`FactorColumns::reach`]'s same
/// operations) with room to spare.
const INFLATE: f64 = 1.0 + 32.0 * f64::EPSILON;

/// The terms after the first of [`FactorColumns::bound`]'s sum, in its order: (the row's factor, the
/// point's factor column). The vector loops add them in this order too, so that every loop gives the
/// scalar bound's bits.
#[cfg(target_arch = "x86_64")]
const TERMS: [(usize, usize); 6] = [(1, 2), (2, 1), (3, 4), (4, 3), (5, 5), (6, 6)];

/// The split screen's arrays, as covertreex.split_screen makes them: Z's rows in int8 (n x m) with their
/// packing for the products ([`Int8Packing::of`] the same rows, made once per process) and the bound's
/// factors (n x `FACTORS`), both row-major; and what the caller answers elsewhere.
///
/// The factors, checked finite, also prove V's rows finite (vnorm_i bounds |v_i| / sqrt(p_i): a NaN or an
/// infinity in v_i makes it NaN or infinite), so a call on the split reads no row of V for that proof:
/// the split must be V's own, which its bound rests on anyway (covertreex builds it from the problem's V
/// and pairs it with no other).
#[derive(Clone, Copy)]
pub struct SplitData<'a> {
    pub q: &'a [i8],
    pub packing: &'a Int8Packing,
    pub m: usize,
    pub factors: &'a [f64],
    /// Per point (n): whether it is left out, so that the pairs of two left-out points are neither
    /// screened nor counted here (the caller answers them: pairs of two points z fits badly, which the
    /// f64 GEMM screens far better).
    pub left_out: &'a [bool],
    /// Per query of the batch, k distances the caller found elsewhere (its answer among the pairs left
    /// out, padded with infinity), row-major: they join the probes' in the query's threshold T.
    pub given: &'a [f64],
    /// A query is declined ([`super::DenseOutput::declined`]) when more than one in this many of its
    /// eligible pairs come through (and more than `DECLINE_FLOOR`); 1: never
    /// (covertreex.split_screen.DECLINE_SHARE says why).
    pub decline_share: usize,
    /// Pairs pass 1 keeps per probe (the best by bound): a query whose kept pairs reach below its least
    /// similarity takes them instead of pass 2 (covertreex.split_screen.KEPT_PER_PROBE
    /// has the measurements). The same pairs are evaluated for any value >= 1.
    pub kept_per_probe: usize,
}

/// The split screen's width m within what the int8 products keep exact ([`MAX_WIDTH`]).
fn check_width(m: usize) -> Result<()> {
    if m == 0 || m > MAX_WIDTH {
        return Err(CoreError::BadValue {
            what: "split screen width (m)",
            value: m as i64,
            allowed: "1..=65536",
        });
    }
    Ok(())
}

/// Z's int8 rows `q` (n x m, row-major) packed for the products ([`SplitData::packing`]), on `threads`
/// workers (None: rayon's global pool; the packing does not depend on them).
pub fn pack_split_rows(q: &[i8], n: usize, m: usize, threads: Option<i64>) -> Result<Int8Packing> {
    check_width(m)?;
    if n.checked_mul(m) != Some(q.len()) {
        return Err(CoreError::DimensionMismatch {
            what: "split screen rows (q)",
            expected: n.saturating_mul(m),
            got: q.len(),
        });
    }
    let pool = thread_pool(threads)?;
    Ok(run_on(pool, || Int8Packing::of(q, n, m)))
}

/// Z's int8 rows `q` (n x m) and the bound's `factors` (n x [`FACTORS`]) of n points: one row of each
/// per point, m within the products' exact range, the factors finite and >= 0.
pub fn check_split_rows(q: &[i8], m: usize, factors: &[f64], n: usize) -> Result<()> {
    for (what, expected, got) in [
        (
            "split screen rows (q), n x m values",
            n.checked_mul(m),
            q.len(),
        ),
        (
            "split screen factors, n x 7 values",
            n.checked_mul(FACTORS),
            factors.len(),
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
    check_width(m)?;
    for (position, row) in factors.chunks(FACTORS).enumerate() {
        let what = "split screen factors (position: the row)";
        if row.iter().any(|f| !f.is_finite()) {
            return Err(CoreError::NonFinite { what, position });
        }
        if let Some(&value) = row.iter().find(|&&f| f < 0.0) {
            return Err(CoreError::Negative {
                what,
                position,
                value,
            });
        }
    }
    Ok(())
}

impl SplitData<'_> {
    /// Check the arrays against the data and the batch: the split screens indexed residual queries only
    /// (its rows of Z are the data's).
    pub fn check(&self, data: &MetricData, queries: &QueryBatch, k: usize) -> Result<()> {
        let n = data.n_points();
        check_split_rows(self.q, self.m, self.factors, n)?;
        for (what, expected, got) in [
            (
                "split screen packing's rows",
                Some(n),
                self.packing.shape().0,
            ),
            (
                "split screen packing's width",
                Some(self.m),
                self.packing.shape().1,
            ),
            ("split screen points left out", Some(n), self.left_out.len()),
            (
                "split screen given distances",
                queries.rows.len().checked_mul(k),
                self.given.len(),
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
        if self.decline_share == 0 {
            return Err(CoreError::BadValue {
                what: "split screen decline share",
                value: 0,
                allowed: ">= 1",
            });
        }
        if self.kept_per_probe == 0 {
            return Err(CoreError::BadValue {
                what: "split screen pairs kept per probe",
                value: 0,
                allowed: ">= 1",
            });
        }
        if let Some(position) = self.given.iter().position(|t| t.is_nan() || *t < 0.0) {
            return Err(CoreError::NonFinite {
                what: "split screen given distances (>= 0, or infinity)",
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
    columns: FactorColumns,
    int8: Int8<'a>,
    /// `left_before[j]`: the points before j that are left out.
    left_before: Vec<usize>,
}

impl<'a> Split<'a> {
    /// Checked data ([`SplitData::check`]), packed for the products.
    pub fn new(data: SplitData<'a>, n: usize) -> Split<'a> {
        let columns = FactorColumns::of(data.factors, &(0..n).collect::<Vec<_>>());
        let left_before = std::iter::once(0)
            .chain(data.left_out.iter().scan(0, |count, &left| {
                *count += left as usize;
                Some(*count)
            }))
            .collect();
        Split {
            int8: Int8::new(data.q, data.packing),
            columns,
            data,
            left_before,
        }
    }

    /// Whether the pair of query row `i` and point `j` is left to the caller.
    #[inline(always)]
    fn left(&self, i: usize, j: usize) -> bool {
        self.data.left_out[i] && self.data.left_out[j]
    }

    /// The pairs of row `i` with the points `points` left to the caller.
    fn left_pairs(&self, i: usize, points: Range<usize>) -> i64 {
        if self.data.left_out[i] {
            (self.left_before[points.end] - self.left_before[points.start]) as i64
        } else {
            0
        }
    }
}

/// The bound's factors of some points (covertreex.split_screen.FACTORS), column by column, so that a
/// row of bounds reads each factor of consecutive points contiguously.
pub struct FactorColumns {
    values: Vec<f64>,
    n: usize,
}

impl FactorColumns {
    /// The factors of `points` (rows of `factors`, n x [`FACTORS`] row-major), in that order.
    pub fn of(factors: &[f64], points: &[usize]) -> FactorColumns {
        let values = (0..FACTORS)
            .flat_map(|t| points.iter().map(move |&j| factors[j * FACTORS + t]))
            .collect();
        FactorColumns {
            values,
            n: points.len(),
        }
    }

    /// s_up of a row with factors `a` and point `j` from their int8 product: every term a product of
    /// non-negative factors, summed in one order, then inflated. The same IEEE operations as
    /// [`FactorColumns::reach`]'s vectors (no fused multiply-add), so the same bits.
    #[inline(always)]
    fn bound(&self, a: &[f64; FACTORS], j: usize, prod: i32) -> f64 {
        let n = self.n;
        let b = |t: usize| self.values[t * n + j];
        let sum = (prod as f64).abs() * a[0] * b(0)
            + a[1] * b(2)
            + a[2] * b(1)
            + a[3] * b(4)
            + a[4] * b(3)
            + a[5] * b(5)
            + a[6] * b(6);
        INFLATE * sum
    }

    /// Which pairs of a row with factors `a` and the points c0, c0 + 1, .. (int8 products `prods`) have
    /// s_up >= `threshold`: bit t % 8 of `mask[t / 8]`. Only those few need s_up itself.
    pub fn reach(
        &self,
        a: &[f64; FACTORS],
        c0: usize,
        prods: &[i32],
        threshold: f64,
        mask: &mut Vec<u8>,
    ) {
        self.reach_into::<false>(a, c0, prods, threshold, mask, &mut Vec::new());
    }

    /// [`FactorColumns::reach_on`] with the fastest instruction set this CPU runs.
    fn reach_into<const KEEP: bool>(
        &self,
        a: &[f64; FACTORS],
        c0: usize,
        prods: &[i32],
        threshold: f64,
        mask: &mut Vec<u8>,
        bounds: &mut Vec<f64>,
    ) {
        self.reach_on::<KEEP>(Isa::fastest(), a, c0, prods, threshold, mask, bounds);
    }

    /// [`FactorColumns::reach`], and with KEEP pair t's s_up in `bounds[t]` (its bits: the same
    /// operations; `bounds` grows to the pairs' count, never shrinks), for a caller that keeps the s_up of
    /// those that reach the threshold; in vectors of `isa` (one this CPU runs), the same bits either way.
    #[allow(clippy::too_many_arguments)]
    fn reach_on<const KEEP: bool>(
        &self,
        isa: Isa,
        a: &[f64; FACTORS],
        c0: usize,
        prods: &[i32],
        threshold: f64,
        mask: &mut Vec<u8>,
        bounds: &mut Vec<f64>,
    ) {
        mask.clear();
        mask.resize(prods.len().div_ceil(8), 0);
        if KEEP && bounds.len() < prods.len() {
            bounds.resize(prods.len(), 0.0); // every value below prods.len() is written below
        }
        let done = match isa {
            // SAFETY: `Isa::available` lists Avx512 only when the CPU supports AVX-512F.
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => unsafe {
                self.reach_avx512::<KEEP>(a, c0, prods, threshold, mask, bounds)
            },
            // SAFETY: `Isa::available` lists Avx2 only when the CPU supports AVX2.
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 => unsafe { self.reach_avx2::<KEEP>(a, c0, prods, threshold, mask, bounds) },
            Isa::Baseline => 0,
        };
        for t in done..prods.len() {
            let bound = self.bound(a, c0 + t, prods[t]);
            if KEEP {
                bounds[t] = bound;
            }
            if bound >= threshold {
                mask[t / 8] |= 1 << (t % 8);
            }
        }
    }

    /// The whole groups of eight pairs of `prods` from point c0, and where the points' factor values
    /// begin (factor t of point c0 + p at `t * n + p`), checked to lie inside the columns, as `bounds` to
    /// hold the groups' pairs with KEEP: one check for all seven factors, where building seven checked
    /// slices per call took ~4% of a large query's profile.
    #[cfg(target_arch = "x86_64")]
    fn lanes<const KEEP: bool>(
        &self,
        c0: usize,
        prods: &[i32],
        bounds: &[f64],
    ) -> (usize, *const f64) {
        let groups = prods.len() / 8;
        assert!(c0 + groups * 8 <= self.n && self.values.len() == FACTORS * self.n);
        assert!(!KEEP || bounds.len() >= groups * 8);
        (groups, self.values[c0..].as_ptr())
    }

    /// [`FactorColumns::reach_into`] eight pairs at a time, [`FactorColumns::bound`]'s operations on
    /// vectors; returns how many pairs it did (whole groups of eight).
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f")]
    fn reach_avx512<const KEEP: bool>(
        &self,
        a: &[f64; FACTORS],
        c0: usize,
        prods: &[i32],
        threshold: f64,
        mask: &mut [u8],
        bounds: &mut [f64],
    ) -> usize {
        use std::arch::x86_64::*;
        let (groups, points) = self.lanes::<KEEP>(c0, prods, bounds);
        let at = |t: usize, g: usize| {
            // SAFETY: t < FACTORS and g < groups, so t * n + c0 + g * 8 + 7 < FACTORS * n (lanes).
            unsafe { _mm512_loadu_pd(points.add(t * self.n + g * 8)) }
        };
        let factors = a.map(|v| _mm512_set1_pd(v));
        let (inflate, threshold) = (_mm512_set1_pd(INFLATE), _mm512_set1_pd(threshold));
        for (g, mask) in mask.iter_mut().enumerate().take(groups) {
            // SAFETY: eight i32 at g * 8 lie inside prods (g < groups).
            let prod = unsafe { _mm256_loadu_si256(prods.as_ptr().add(g * 8) as *const __m256i) };
            let prod = _mm512_abs_pd(_mm512_cvtepi32_pd(prod));
            let mut sum = _mm512_mul_pd(_mm512_mul_pd(prod, factors[0]), at(0, g));
            for (f, t) in TERMS {
                sum = _mm512_add_pd(sum, _mm512_mul_pd(factors[f], at(t, g)));
            }
            let bound = _mm512_mul_pd(inflate, sum);
            if KEEP {
                // SAFETY: bounds holds at least groups * 8 values (the assert), so eight at g * 8.
                unsafe { _mm512_storeu_pd(bounds.as_mut_ptr().add(g * 8), bound) };
            }
            *mask = _mm512_cmp_pd_mask::<_CMP_GE_OQ>(bound, threshold);
        }
        groups * 8
    }

    /// [`FactorColumns::reach_on`] four pairs a vector, two vectors a byte of the mask,
    /// [`FactorColumns::bound`]'s operations on vectors; returns how many pairs it did (whole groups of
    /// eight).
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    fn reach_avx2<const KEEP: bool>(
        &self,
        a: &[f64; FACTORS],
        c0: usize,
        prods: &[i32],
        threshold: f64,
        mask: &mut [u8],
        bounds: &mut [f64],
    ) -> usize {
        use std::arch::x86_64::*;
        let (groups, points) = self.lanes::<KEEP>(c0, prods, bounds);
        let at = |t: usize, v: usize| {
            // SAFETY: t < FACTORS and v < 2 groups, so t * n + c0 + v * 4 + 3 < FACTORS * n (lanes).
            unsafe { _mm256_loadu_pd(points.add(t * self.n + v * 4)) }
        };
        let factors = a.map(|v| _mm256_set1_pd(v));
        let (inflate, threshold) = (_mm256_set1_pd(INFLATE), _mm256_set1_pd(threshold));
        let sign = _mm256_set1_pd(-0.0);
        for (g, mask) in mask.iter_mut().enumerate().take(groups) {
            let mut bits = 0;
            for v in [2 * g, 2 * g + 1] {
                // SAFETY: four i32 at v * 4 lie inside prods (v < 2 groups).
                let prod = unsafe { _mm_loadu_si128(prods.as_ptr().add(v * 4) as *const __m128i) };
                let prod = _mm256_andnot_pd(sign, _mm256_cvtepi32_pd(prod)); // |prod|, as f64::abs
                let mut sum = _mm256_mul_pd(_mm256_mul_pd(prod, factors[0]), at(0, v));
                for (f, t) in TERMS {
                    sum = _mm256_add_pd(sum, _mm256_mul_pd(factors[f], at(t, v)));
                }
                let bound = _mm256_mul_pd(inflate, sum);
                if KEEP {
                    // SAFETY: bounds holds at least groups * 8 values (the assert), so four at v * 4.
                    unsafe { _mm256_storeu_pd(bounds.as_mut_ptr().add(v * 4), bound) };
                }
                let reached = _mm256_movemask_pd(_mm256_cmp_pd::<_CMP_GE_OQ>(bound, threshold));
                bits |= (reached as u8) << (4 * (v % 2));
            }
            *mask = bits;
        }
        groups * 8
    }
}

/// `each(t)` for every bit t set in `mask`, in order: eight bytes at a time, as most rows have few bits.
#[inline(always)]
fn each_set(mask: &[u8], mut each: impl FnMut(usize)) {
    for (word, bytes) in mask.chunks(8).enumerate() {
        let mut le = [0u8; 8];
        le[..bytes.len()].copy_from_slice(bytes);
        let mut bits = u64::from_le_bytes(le);
        while bits != 0 {
            each(word * 64 + bits.trailing_zeros() as usize);
            bits &= bits - 1;
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

/// The order of a query's pairs (bound, index) from best: bound descending, then index ascending.
fn better(a: &(f64, usize), b: &(f64, usize)) -> std::cmp::Ordering {
    b.0.total_cmp(&a.0).then(a.1.cmp(&b.1))
}

/// A query's pairs of largest bound so far, ties by index: the best are its probes, which its threshold is
/// taken from, the others may spare it pass 2 ([`SplitData::kept_per_probe`]).
pub(super) struct Probes {
    pairs: Vec<(f64, usize)>,
    /// No pair below it can be among the `want` best any more; every pair above it is kept.
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

    /// The best `probes` of the kept pairs (by bound, then index), by index, and the others (bound,
    /// index) in no order; after [`Probes::trim`].
    fn parted(mut self, probes: usize) -> (Vec<usize>, Vec<(f64, usize)>) {
        if self.pairs.len() > probes {
            self.pairs.select_nth_unstable_by(probes - 1, better);
        }
        let rest = self.pairs.split_off(probes.min(self.pairs.len()));
        let mut best: Vec<usize> = self.pairs.into_iter().map(|(_, j)| j).collect();
        best.sort_unstable();
        (best, rest)
    }

    /// Offer the pairs of points c0 + t whose bit t is set in `mask` (their bounds at or above the floor,
    /// `bounds[t]`), but those `skip` names; trim once after them if they made many.
    #[inline(always)]
    fn offer_row(&mut self, c0: usize, bounds: &[f64], mask: &[u8], skip: impl Fn(usize) -> bool) {
        each_set(mask, |t| {
            if !skip(c0 + t) {
                self.pairs.push((bounds[t], c0 + t));
            }
        });
        if self.pairs.len() >= self.want.saturating_mul(4).saturating_add(64) {
            self.trim();
        }
    }

    /// Keep the `want` best by (bound descending, index ascending): the same set in any offer order.
    fn trim(&mut self) {
        if self.pairs.len() > self.want {
            self.pairs.select_nth_unstable_by(self.want - 1, better);
            self.pairs.truncate(self.want);
            self.floor = self.pairs[self.want - 1].0;
        }
    }

    /// Take over the same query's pairs of another span: a pair either span dropped is at or below its
    /// floor, so the larger floor is the merged one's (an empty span's floor, -inf, must not stand for a
    /// span that dropped pairs after trimming to exactly `want`).
    pub(super) fn absorb(&mut self, later: Probes) {
        self.floor = self.floor.max(later.floor);
        self.pairs.extend(later.pairs);
        self.trim();
    }
}

/// Some of a block's rows in the split screen: their positions in the block, their rows of the data,
/// and their query rows as the products read them.
pub(super) struct SplitRows {
    int8: QueryRows,
    at: Vec<usize>,
    rows: Vec<usize>,
}

impl Job<'_> {
    /// The block's rows at the positions `at`.
    pub(super) fn split_rows(&self, split: &Split, rows: &BlockRows, at: Vec<usize>) -> SplitRows {
        let data_rows: Vec<usize> = (at.iter())
            .map(|&q| self.queries.rows[rows.first + q] as usize)
            .collect();
        SplitRows {
            int8: split.int8.query_rows(&data_rows),
            at,
            rows: data_rows,
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
        let kept = self.probes().saturating_mul(split.data.kept_per_probe);
        let mut probes: Vec<Probes> = (0..rows.limits.len()).map(|_| Probes::new(kept)).collect();
        let mut chunk = ChunkBounds::default();
        for c0 in span.clone().step_by(self.chunk) {
            if self.halted() {
                break;
            }
            let cols = c0..(c0 + self.chunk).min(span.end);
            // Each query's floor as the chunk starts (it rises only when a row of the chunk trims).
            let floors: Vec<f64> = probes.iter().map(|p| p.floor).collect();
            chunk.each_row::<true>(
                split,
                rows,
                split_rows,
                cols,
                &floors,
                |q, i, bounds, mask| {
                    let own = rows.own[q];
                    let skip = |j: usize| j as i64 == own || split.left(i, j);
                    probes[q].offer_row(c0, bounds, mask, skip);
                },
            );
        }
        probes
    }

    /// Probes per query.
    fn probes(&self) -> usize {
        self.k + self.k.div_ceil(EXTRA_PROBES_PER_K)
    }

    /// Each query's probes evaluated, and with them its least similarity worth evaluating
    /// ([`least_similarity_within`] the k-th smallest of the probes' distances and those given).
    pub(super) fn thresholds(
        &self,
        split: &Split,
        rows: &BlockRows,
        probes: Vec<Probes>,
    ) -> Vec<Probed> {
        let k = self.k;
        probes
            .into_par_iter()
            .enumerate()
            .map_init(Vec::new, |kth: &mut Vec<f64>, (q, mut probes)| {
                probes.trim();
                let floor = probes.floor;
                let (points, kept) = probes.parted(self.probes());
                kth.clear();
                kth.resize(points.len(), 0.0);
                let row = self.queries.rows[rows.first + q] as usize;
                let own = rows.own[q];
                Mode::Perf.distances(&self.queries.data, row, own, self.data, &points, kth);
                let pairs = points.into_iter().zip(kth.iter().copied()).collect();
                let own = own_pair(split, row, own, rows.limits[q]);
                if own.is_some() {
                    kth.push(0.0);
                }
                let at = (rows.first + q) * k;
                kth.extend(
                    split.data.given[at..at + k]
                        .iter()
                        .filter(|d| d.is_finite()),
                );
                let least = if kth.len() < k {
                    0.0
                } else {
                    let (_, &mut t, _) = kth.select_nth_unstable_by(k - 1, f64::total_cmp);
                    least_similarity_within(t)
                };
                // Every pair with s_up above the floor was kept: pass 2 would find no other pair
                // where the least similarity is above it.
                let sift = floor > f64::NEG_INFINITY && least <= floor;
                let passed = if sift {
                    Vec::new()
                } else {
                    let reach = kept.into_iter().filter(|&(bound, _)| bound >= least);
                    let mut passed: Vec<usize> = reach.map(|(_, j)| j).collect();
                    passed.sort_unstable();
                    passed
                };
                Probed {
                    least,
                    pairs,
                    own,
                    sift,
                    passed,
                }
            })
            .collect()
    }

    /// Pass 2 over the points `span` (whole tiles): the pairs the split cannot skip that were not
    /// probes, in index order, of the queries `split_rows` (those [`Probed::sift`] holds for), unless
    /// they are too many ([`Found::room`]); every query's eligible pairs and tiles counted.
    pub(super) fn sift(
        &self,
        split: &Split,
        rows: &BlockRows,
        split_rows: &SplitRows,
        probed: &[Probed],
        span: Range<usize>,
    ) -> Vec<Found> {
        let share = split.data.decline_share;
        let mut found: Vec<Found> = (rows.limits.iter())
            .map(|&limit| Found::new(limit, share))
            .collect();
        let mut chunk = ChunkBounds::default();
        let least: Vec<f64> = probed.iter().map(|p| p.least).collect();
        let step = self.blocks.points;
        for j0 in span.clone().step_by(step) {
            if self.halted() {
                break;
            }
            let stop = (j0 + step).min(span.end);
            for c0 in (j0..stop).step_by(self.chunk) {
                let cols = c0..(c0 + self.chunk).min(stop);
                chunk.each_row::<false>(split, rows, split_rows, cols, &least, |q, i, _, mask| {
                    let (probed, found) = (&probed[q], &mut found[q]);
                    if found.over {
                        return;
                    }
                    each_set(mask, |t| {
                        let j = c0 + t;
                        if !split.left(i, j) && !probed.has(j) && Some(j) != probed.own {
                            found.points.push(j);
                        }
                    });
                    found.check_room();
                });
            }
            let counts = found.iter_mut().map(|f| (&mut f.screened, &mut f.tiles));
            count_tile(&rows.limits, j0..stop, counts);
            for (q, found) in found.iter_mut().enumerate() {
                let eligible = j0..rows.limits[q].clamp(j0, stop);
                let i = self.queries.rows[rows.first + q] as usize;
                found.screened -= split.left_pairs(i, eligible);
            }
        }
        found
    }
}

/// The query's own pair if it is eligible and the split's (not left to the caller): row `row`, dataset
/// index `own`, points below `limit`. Never screened: evaluated (d = 0) with the pairs let through.
fn own_pair(split: &Split, row: usize, own: i64, limit: usize) -> Option<usize> {
    usize::try_from(own)
        .ok()
        .filter(|&o| o < limit && !split.left(row, o))
}

/// A span's buffers for the products and masks of its chunks.
#[derive(Default)]
struct ChunkBounds {
    products: Vec<i32>,
    mask: Vec<u8>,
    bounds: Vec<f64>,
}

impl ChunkBounds {
    /// The int8 products of the rows `split_rows` with the points `cols` (a chunk) and, row by row, which
    /// eligible pairs have s_up >= the row's threshold ([`FactorColumns::reach`]): `each(q, row, bounds,
    /// mask)` (q its position in the block, `row` in the data; with KEEP `bounds[t]` is the s_up of pair
    /// t for every bit t set in `mask`, its other values stale; else empty), index t for point
    /// cols.start + t, up to the row's limit.
    fn each_row<const KEEP: bool>(
        &mut self,
        split: &Split,
        rows: &BlockRows,
        split_rows: &SplitRows,
        cols: Range<usize>,
        thresholds: &[f64],
        mut each: impl FnMut(usize, usize, &[f64], &[u8]),
    ) {
        if split_rows.at.is_empty() {
            return;
        }
        let aligned = cols.start / COLUMNS * COLUMNS..cols.end.div_ceil(COLUMNS) * COLUMNS;
        let (at, width) = (cols.start - aligned.start, aligned.len());
        split
            .int8
            .products(&split_rows.int8, aligned, &mut self.products);
        for (r, (&q, &i)) in split_rows.at.iter().zip(&split_rows.rows).enumerate() {
            let limit = rows.limits[q].min(cols.end);
            if limit > cols.start {
                let row = &self.products[r * width + at..r * width + at + (limit - cols.start)];
                let (a, mask, bounds) = (split.data.row(i), &mut self.mask, &mut self.bounds);
                (split.columns).reach_into::<KEEP>(a, cols.start, row, thresholds[q], mask, bounds);
                each(q, i, if KEEP { bounds } else { &[] }, mask);
            }
        }
    }
}

/// A query's pairs the split let through over some points, in index order, and the eligible pairs and
/// point tiles it screened there.
pub(super) struct Found {
    points: Vec<usize>,
    /// The most pairs the query evaluates canonically before it is declined.
    room: usize,
    /// Whether more came through (the pairs are then dropped).
    over: bool,
    pub screened: i64,
    pub tiles: i64,
}

/// Pairs let through that never decline a query: too few to be worth a call of their own.
const DECLINE_FLOOR: usize = 256;

impl Found {
    fn new(eligible: usize, decline_share: usize) -> Found {
        Found {
            points: Vec::new(),
            room: (eligible / decline_share).max(DECLINE_FLOOR),
            over: false,
            screened: 0,
            tiles: 0,
        }
    }

    /// Drop the pairs once they are more than the room: the query is declined, however its points
    /// were cut into spans (a span over the room is over it in total, and the spans' sum is checked).
    fn check_room(&mut self) {
        if self.points.len() > self.room {
            self.over = true;
            self.points = Vec::new();
        }
    }

    pub fn declined(&self) -> bool {
        self.over
    }

    /// The pairs pass 1 found already (a query pass 2 did not take: [`Probed::sift`]).
    pub fn adopt(&mut self, probed: &mut Probed) {
        if !probed.sift {
            self.points = std::mem::take(&mut probed.passed);
            self.check_room();
        }
    }

    /// Take over the same query's pairs over later points.
    pub fn absorb(&mut self, later: Found) {
        self.over |= later.over;
        if !self.over {
            self.points.extend(later.points);
            self.check_room();
        }
        self.screened += later.screened;
        self.tiles += later.tiles;
    }

    /// The pairs let through evaluated canonically (the query: row `row`, dataset index `own`) and,
    /// with the probes, offered to `heap` in index order: (evaluations, heap pushes). A declined query
    /// leaves the heap empty, its probes its only evaluations.
    pub fn finish(
        &mut self,
        job: &Job,
        row: usize,
        own: i64,
        heap: &mut Heap,
        probed: &Probed,
    ) -> (i64, i64) {
        heap.clear();
        if self.over {
            return (probed.pairs.len() as i64, 0);
        }
        let points = &mut self.points;
        if let Some(o) = probed.own {
            points.insert(points.partition_point(|&j| j < o), o);
        }
        let mut distances = vec![0.0; points.len()];
        Mode::Perf.distances(
            &job.queries.data,
            row,
            own,
            job.data,
            points,
            &mut distances,
        );
        let (mut pushes, mut probes) = (0, probed.pairs.iter().peekable());
        for (&j, &d) in points.iter().zip(&distances) {
            while let Some(&(p, pd)) = probes.next_if(|&&(p, _)| p < j) {
                pushes += heap.offer(pd, p as i64) as i64;
            }
            pushes += heap.offer(d, j as i64) as i64;
        }
        for &(p, pd) in probes {
            pushes += heap.offer(pd, p as i64) as i64;
        }
        ((points.len() + probed.pairs.len()) as i64, pushes)
    }
}

/// A query's probes, evaluated (by index), and the least similarity worth evaluating they give.
pub(super) struct Probed {
    least: f64,
    pairs: Vec<(usize, f64)>,
    /// The query's own pair ([`own_pair`]).
    own: Option<usize>,
    /// Whether a pair that was not kept may reach `least`, so that pass 2 must look for it.
    pub sift: bool,
    /// Unless `sift`: the kept pairs that are not probes and reach `least`, by index (pass 2's finds).
    passed: Vec<usize>,
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

    /// Spread values from a multiplicative hash of the position, in [0, 1).
    fn spread(count: usize, seed: u64) -> impl Iterator<Item = f64> {
        (0..count as u64).map(move |t| {
            let h = t.wrapping_add(seed).wrapping_mul(0x9E37_79B9_7F4A_7C15);
            (h >> 11) as f64 / (1u64 << 53) as f64
        })
    }

    #[test]
    fn the_mask_holds_exactly_the_pairs_whose_bound_reaches_the_threshold() {
        // Thresholds equal to some pair's bound: a vector sum in another order than the scalar one, or
        // a fused multiply-add, would move such a pair across it.
        let (n, m) = (203, 24);
        let q: Vec<i8> = spread(n * m, 1)
            .map(|v| (v * 254.0) as i8 - 127 + 1)
            .collect();
        let factors: Vec<f64> = spread(n * FACTORS, 2).map(|v| v * 1e-3 + v * v).collect();
        let left_out = vec![false; n];
        let packing = Int8Packing::of(&q, n, m);
        let data = SplitData {
            q: &q,
            packing: &packing,
            m,
            factors: &factors,
            left_out: &left_out,
            given: &[],
            decline_share: 1,
            kept_per_probe: 1,
        };
        let split = Split::new(data, n);
        let dot = |i: usize, j: usize| -> i32 {
            (0..m)
                .map(|t| q[i * m + t] as i32 * q[j * m + t] as i32)
                .sum()
        };
        let mut mask = Vec::new();
        for i in [0, 5, 202] {
            for c0 in [0, 3, 64] {
                let prods: Vec<i32> = (c0..n).map(|j| dot(i, j)).collect();
                let a = split.data.row(i);
                let bounds: Vec<f64> = (c0..n)
                    .map(|j| split.columns.bound(a, j, dot(i, j)))
                    .collect();
                for threshold in [bounds[0], bounds[17], bounds[99], f64::NEG_INFINITY, 0.3] {
                    split.columns.reach(a, c0, &prods, threshold, &mut mask);
                    for isa in Isa::available() {
                        let mut kept = Vec::new();
                        let mut same = Vec::new();
                        (split.columns)
                            .reach_on::<true>(isa, a, c0, &prods, threshold, &mut same, &mut kept);
                        assert_eq!(same, mask, "{isa:?}");
                        let bits = |v: &[f64]| v.iter().map(|b| b.to_bits()).collect::<Vec<_>>();
                        assert_eq!(bits(&kept[..prods.len()]), bits(&bounds), "{isa:?}");
                    }
                    let mut set = Vec::new();
                    each_set(&mask, |t| set.push(t));
                    let want: Vec<usize> = (0..bounds.len())
                        .filter(|&t| bounds[t] >= threshold)
                        .collect();
                    assert_eq!(set, want, "row {i} from {c0} threshold {threshold}");
                }
            }
        }
    }

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
    fn an_empty_span_keeps_a_later_spans_floor() {
        let bounds: Vec<f64> = (0..200).map(|j| ((j * 37) % 11) as f64).collect();
        let mask = vec![0xffu8; 200 / 8];
        let mut later = Probes::new(20);
        later.offer_row(0, &bounds, &mask, |_| false); // 200 >= 4 * 20 + 64: trimmed to exactly 20
        let floor = later.floor;
        assert!(floor > f64::NEG_INFINITY && later.pairs.len() == 20);
        let mut merged = Probes::new(20);
        merged.absorb(later);
        assert_eq!(
            merged.floor, floor,
            "180 pairs were dropped, yet the floor says none were"
        );
    }

    #[test]
    fn probes_keep_the_best_by_bound_then_index_in_any_order() {
        let bounds: Vec<f64> = (0..500).map(|j| ((j * 37) % 11) as f64).collect();
        let skip = |j: usize| j.is_multiple_of(7);
        // Rows of `width` points from c0, every bit set (the floor only drops pairs `trim` drops too).
        let offer = |probes: &mut Probes, c0: usize, width: usize| {
            let mut mask = vec![0u8; width.div_ceil(8)];
            (0..width).for_each(|t| mask[t / 8] |= 1 << (t % 8));
            probes.offer_row(c0, &bounds[c0..c0 + width], &mask, skip);
        };
        let mut forward = Probes::new(20);
        (0..500)
            .step_by(50)
            .for_each(|c0| offer(&mut forward, c0, 50));
        forward.trim();
        let mut halves = Probes::new(20);
        let mut later = Probes::new(20);
        (0..250)
            .step_by(10)
            .for_each(|c0| offer(&mut halves, c0, 10));
        (250..500)
            .step_by(25)
            .rev()
            .for_each(|c0| offer(&mut later, c0, 25));
        halves.absorb(later);
        for probes in [&mut forward, &mut halves] {
            probes.pairs.sort_by_key(|&(_, j)| j);
        }
        assert_eq!(forward.pairs, halves.pairs);
        assert!(forward.pairs.iter().all(|&(b, _)| b == 10.0));
        let mut want: Vec<usize> = (0..500)
            .filter(|&j| bounds[j] == 10.0 && !skip(j))
            .collect();
        want.truncate(20);
        assert_eq!(forward.pairs.iter().map(|p| p.1).collect::<Vec<_>>(), want);
    }
}
