//! Screening bounds of the dense path: a GEMM value turned into a rigorous interval on a *key* that
//! orders pairs exactly as the canonical distance does (smaller key = closer). Bounds are computed a
//! group of [`GROUP`] pairs at a time in branch-free code that LLVM vectorises, with AVX2 + FMA or
//! AVX-512 where the CPU has them: the same IEEE operations on any instruction set (Rust never
//! contracts a multiply and an add; the fused multiply-adds of `super::exp` are explicit and round
//! once everywhere), so from the same GEMM values the bounds, and with them the candidates and the
//! counters, are the same bits on every machine ([`Isa`]). The GEMM values themselves are those of the
//! `gemm` crate's kernel for the tile's shape, which may differ between CPUs (its kernels and blocking
//! follow the instruction set and cache sizes) and between a one-row tile and a taller one: a counter
//! may then differ by a borderline pair, never an answer or a distance bit.
//!
//! GEMM reorders the dot product, so its value `g` differs from the canonical sequential sum. For any
//! summation order (blocked, FMA or not), |fl(a.b) - a.b| <= gamma_n ||a|| ||b||, gamma_n = n u/(1 - n u),
//! u = eps/2, and the canonical sum obeys the same bound. Each pair gets `lo <= key_c <= hi`, where
//! `key_c` is the key of the canonical distance. If T is the k-th smallest `hi` of a query, at least k
//! pairs have canonical distance <= D(T), so a pair with `lo > widen(T)` has a canonical distance
//! *strictly* above the k-th: it can never enter the answer, not even by a tie. Every other pair is
//! re-evaluated canonically, so the answer and its distance bits are those of the canonical metric.
//!
//! Residual (key = -s, s = min(1, |rho|), canonical distance sqrt(1 - s), non-increasing in s): the
//! coordinates' r2 and every factor of the kernel before its exp are computed in the canonical order
//! (bit-identical), but exp is the vectorisable one of `super::exp`, so the kernel value k_a may differ
//! from the canonical k_c, and the dot product differs. With r_i = 1/sqrt(p_i), n_i = ||V_i|| as
//! computed and rho_a = ((k_a - g) r_i) r_j:
//!   |rho_a - rho_c| <= a_i a_j + (KERNEL_REL k_a + kernel_floor) r_i r_j + 16 eps |rho_a| + 16 eps,
//!   a_i = sqrt(2 gamma_{m+4}) n_i (1 + (m+4) eps) r_i (1 + 16 eps).
//! The first term is the two dot products' error 2 gamma_m ||V_i|| ||V_j|| divided by sqrt(p_i p_j)
//! (n_i and r_i inflated for their own rounding); the second is the kernel's (see [`KERNEL_REL`]); the
//! third covers the roundings of k - g, of the scaling (3 in the canonical division, 6 here) and of the
//! bound itself; the last covers rounding in s +/- E. widen(T) = T + 8 eps: if s' < s - 8 eps then
//! fl(1 - s') > fl(1 - s) + 7 eps and the correctly rounded square roots differ, so the canonical
//! distances are strictly ordered. covertreex/metrics/kernels.py holds this bound for gold, whose screening
//! evaluates the kernel with libm (k_a = k_c), so its kernel term is zero; all other terms are shared.
//!
//! Euclidean (key = d^2): g = x.y, approx = max(0, |x|^2 + |y|^2 - 2 g), and
//!   |approx - acc_c| <= 16 (d + 4) eps (|x|^2 + |y|^2),
//! covering the GEMM's and the canonical sum's gamma_d errors and the roundings of the norms and of
//! the combination. widen(T) = T (1 + 8 eps): x > y (1 + 4 eps) implies fl(sqrt x) > fl(sqrt y).

use std::array::from_fn;
use std::ops::Range;

use rayon::prelude::*;

use super::exp::{exp_lanes, EXP_ABS, EXP_REL};
use crate::metric::{gamma, kernel_parts, Kernel, Metric, MetricData};
use crate::query::QueryBatch;

const EPS: f64 = f64::EPSILON;

/// Pairs screened together: their bounds are computed step by step across the group (two AVX2
/// vectors, four SSE2 ones, of independent exp chains the CPU overlaps), kept in registers and handed
/// to the selection as one group.
const GROUP: usize = 8;

/// |k_a - k_c| <= KERNEL_REL k_a + kernel_floor. Both kernels end in one multiplication w * exp(x)
/// whose factor w and argument x are bit-identical on both sides, so for x >= UNDERFLOW_ARG (normal
/// values) |k_a - k_c| <= EXP_REL w e_c + u (k_a + k_c) <= (64 u + 2 u) k_a (1 + 70 u). The term is
/// scaled by r_i r_j where the canonical value divides by fl(sqrt(fl(p_i p_j))) (a factor <= 1 + 6 u
/// between them) and is itself computed with 5 roundings: 66 u (1 + 82 u) < 68 u = KERNEL_REL.
const KERNEL_REL: f64 = EXP_REL + 2.0 * EPS;

/// The absolute part of the kernel's bound for variance s2. Below UNDERFLOW_ARG the fast exp is 0 and
/// k_c <= s2 (1 + 8 u) max(1, 1 + a + a^2/3) e^-a (Matern's factor times e^-a falls with a, here
/// a > 708, and 1 + 708 + 708^2/3 < 2^17.4), so k_c < s2 2^18 EXP_ABS. A subnormal k_a or k_c errs by
/// <= 2^-1075 absolute, as does a subnormal KERNEL_REL k_a: 2^-1020 covers them. As
/// p_i <= max(s2, 1e-9), r_i r_j >= 1 / max(s2, 1e-9) and the floor's products stay normal, so their
/// roundings are relative (within the margins above).
fn kernel_floor(variance: f64) -> f64 {
    variance * (EXP_ABS * 2f64.powi(18)) + 2f64.powi(-1020)
}

/// Rows per parallel task of [`RowFactors::of`] (a task reads at least ~1 MB of V at m = 512).
const NORM_ROWS: usize = 256;

/// Per-row factors of one data set (indexed points or query rows) that the bound uses.
#[derive(Debug, Clone, Default)]
pub struct RowFactors {
    /// Residual: 1/sqrt(p_i). Euclidean: |x_i|^2.
    pub scale: Vec<f64>,
    /// Residual: a_i of the bound. Euclidean: unused (empty).
    pub error: Vec<f64>,
}

/// The GEMM operand of a metric: V for the residual metric, the coordinates for Euclidean.
pub fn operand<'a>(data: &MetricData<'a>) -> (&'a [f64], usize) {
    match data.metric {
        Metric::Residual => (data.v.values(), data.v.cols()),
        Metric::Euclidean => (data.x.values(), data.x.cols()),
    }
}

/// Partial sums of [`dot_lanes`]: enough independent add chains (eight SSE2 vectors) that reading the
/// rows from memory, not the adds' latency, limits it (four chains took twice as long as the GEMV that
/// reads the same rows).
const LANES: usize = 16;

/// a.b with `LANES` (16) interleaved partial sums (vectorised, no serial dependency chain), combined
/// pairwise. Every screening bound holds for any summation order (the GEMM's is another), and this order
/// is fixed, so are the bits on every machine: with AVX2 the same multiplies and adds run four lanes to a
/// register instead of SSE2's two (no fused multiply-add): the maximin pass on the split, whose survivors
/// each take one, took 5.95-6.03 s against 6.15-6.48 s (N = 32,768, k = 50, AMD EPYC, alternating runs).
pub fn dot_lanes(a: &[f64], b: &[f64]) -> f64 {
    match Isa::fastest() {
        Isa::Baseline => dot_lanes_on(a, b),
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `Isa::available` lists Avx2 and Avx512 only when the CPU supports AVX2.
        Isa::Avx2 | Isa::Avx512 => unsafe { dot_lanes_avx2(a, b) },
    }
}

/// [`dot_lanes`] compiled for AVX2: the same operations on wider registers.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn dot_lanes_avx2(a: &[f64], b: &[f64]) -> f64 {
    dot_lanes_on(a, b)
}

#[inline(always)]
fn dot_lanes_on(a: &[f64], b: &[f64]) -> f64 {
    let mut partial = [0.0; LANES];
    let (lanes_a, lanes_b) = (a.chunks_exact(LANES), b[..a.len()].chunks_exact(LANES));
    let tail = lanes_a.remainder().iter().zip(lanes_b.remainder());
    for (x, y) in lanes_a.zip(lanes_b) {
        for ((acc, x), y) in partial.iter_mut().zip(x).zip(y) {
            *acc += x * y;
        }
    }
    let mut width = LANES;
    while width > 1 {
        width /= 2;
        for i in 0..width {
            partial[i] += partial[i + width];
        }
    }
    tail.fold(partial[0], |acc, (x, y)| acc + x * y)
}

/// ||row||^2 by [`dot_lanes`]: the inflations of n_i and of the Euclidean norms cover any order.
fn norm2(row: &[f64]) -> f64 {
    dot_lanes(row, row)
}

impl RowFactors {
    /// The factors of rows `rows` of `data`, in that order, rows in parallel on the current rayon
    /// pool (each row's factors are its own: the same bits on any thread count).
    pub fn of(data: &MetricData, rows: impl Iterator<Item = usize>) -> RowFactors {
        let rows: Vec<usize> = rows.collect();
        let (values, width) = operand(data);
        let norms2 = (rows.par_iter().with_min_len(NORM_ROWS))
            .map(|&i| norm2(&values[i * width..(i + 1) * width]))
            .collect();
        RowFactors::from_norms(data, rows.into_iter(), norms2)
    }

    /// The factors of a query batch's rows, by position in the batch.
    fn of_batch(batch: &QueryBatch) -> RowFactors {
        RowFactors::of(&batch.data, batch.rows.iter().map(|&r| r as usize))
    }

    /// [`RowFactors::of`] the consecutive rows `rows`, on the calling thread alone: for a caller that
    /// computes them inside a once-initialised cell, where rayon must not steal work into the
    /// initialisation (a stolen task asking for the same cell would wait on itself).
    pub fn of_serial(data: &MetricData, rows: Range<usize>) -> RowFactors {
        let (values, width) = operand(data);
        let norms2 = (rows.clone())
            .map(|i| norm2(&values[i * width..(i + 1) * width]))
            .collect();
        RowFactors::from_norms(data, rows, norms2)
    }

    fn from_norms(
        data: &MetricData,
        rows: impl Iterator<Item = usize>,
        norms2: Vec<f64>,
    ) -> RowFactors {
        if data.metric == Metric::Euclidean {
            return RowFactors {
                scale: norms2,
                error: Vec::new(),
            };
        }
        let m = data.v.cols();
        let c = (2.0 * gamma(m + 4)).sqrt() * (1.0 + (m + 4) as f64 * EPS) * (1.0 + 16.0 * EPS);
        let (scale, error) = rows
            .zip(norms2)
            .map(|(i, n2)| {
                let r = 1.0 / data.p[i].sqrt();
                (r, c * n2.sqrt() * r)
            })
            .unzip();
        RowFactors { scale, error }
    }

    /// The factors of consecutive rows, part after part.
    pub fn concat<'r>(parts: impl Iterator<Item = &'r RowFactors>) -> RowFactors {
        let mut out = RowFactors::default();
        for part in parts {
            out.scale.extend_from_slice(&part.scale);
            out.error.extend_from_slice(&part.error);
        }
        out
    }

    /// Whether these factors of some rows of `data` prove those rows of V finite: a residual row's
    /// error factor is c |v_i| / sqrt(p_i) with c finite, and a NaN or an infinity anywhere in v_i makes
    /// |v_i|^2 NaN or +inf (a sum of squares), hence the factor NaN or inf. So all factors finite means
    /// the rows finite; the converse may fail (|v_i|^2 can overflow, p can be bad), and then V is
    /// checked value by value.
    pub fn prove_rows_finite(&self, data: &MetricData) -> bool {
        data.metric == Metric::Residual && self.error.iter().fold(true, |ok, e| ok & e.is_finite())
    }

    /// The factors of the points `points` (positions in these factors), for [`Screen::screen_row_given`].
    pub fn points(&self, points: Range<usize>) -> PointFactors<'_> {
        PointFactors {
            scale: &self.scale[points.clone()],
            error: self.error.get(points).unwrap_or_default(),
        }
    }
}

/// The factors of consecutive points j0, j0 + 1, .. of a screened row (a slice of [`RowFactors`];
/// Euclidean: `error` is empty).
#[derive(Debug, Clone, Copy)]
pub struct PointFactors<'r> {
    scale: &'r [f64],
    error: &'r [f64],
}

/// The threshold below which a pair's `lo` keeps it a candidate, given the k-th smallest `hi` (the
/// module docs say why).
#[inline]
pub fn widen(metric: Metric, t: f64) -> f64 {
    match metric {
        Metric::Residual => t + 8.0 * EPS,
        Metric::Euclidean => t * (1.0 + 8.0 * EPS),
    }
}

/// Where the groups of one row of bounds go.
pub trait Sink {
    /// A group whose every `lo` exceeds this is skipped: it can change nothing.
    fn cutoff(&self) -> f64;
    /// A group of pairs (points j, j + 1, ..) with key bounds `lo[i]`, `hi[i]`, at least one `lo` at
    /// or below the cutoff.
    fn offer(&mut self, j: usize, lo: &[f64], hi: &[f64]);
}

/// The instruction set the screening loops are compiled for. Every one computes the same bits; the
/// baseline (x86-64's SSE2, or whatever the target has; fused multiply-adds through libm there) always
/// works, AVX2 and AVX-512, each with FMA, are used where detected (AVX-512's 32 registers hold a whole
/// group's constants and lanes without spilling).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Isa {
    Baseline,
    #[cfg(target_arch = "x86_64")]
    Avx2,
    #[cfg(target_arch = "x86_64")]
    Avx512,
}

impl Isa {
    /// The fastest of [`Isa::available`], detected once per process.
    pub fn fastest() -> Isa {
        static FASTEST: std::sync::OnceLock<Isa> = std::sync::OnceLock::new();
        *FASTEST.get_or_init(|| *Isa::available().last().unwrap())
    }

    /// Every instruction set this CPU can run, the fastest last: AVX2 with FMA, then AVX-512F only
    /// where AVX2 is listed too.
    pub fn available() -> Vec<Isa> {
        let mut out = vec![Isa::Baseline];
        #[cfg(target_arch = "x86_64")]
        if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
            out.push(Isa::Avx2);
        }
        #[cfg(target_arch = "x86_64")]
        // After AVX2 only: code for AVX-512 may take AVX2's paths too (`dot_lanes`), and a virtual
        // machine may offer AVX-512F while it hides AVX2.
        if out.contains(&Isa::Avx2) && std::is_x86_feature_detected!("avx512f") {
            out.push(Isa::Avx512);
        }
        out
    }
}

/// One screened row: the batch's query `q` against points j0, j0 + 1, .. (GEMM values `g`), and the
/// position of its own dataset index in the row, if there.
#[derive(Clone, Copy)]
struct Row<'g> {
    q: usize,
    j0: usize,
    g: &'g [f64],
    own: Option<usize>,
}

/// Everything the bound of one query batch needs: both data sets and their row factors (the queries'
/// by position in the batch).
pub struct Screen<'a> {
    pub queries: &'a MetricData<'a>,
    /// The batch's rows of `queries`.
    query_index: &'a [i64],
    pub data: &'a MetricData<'a>,
    /// By position in the batch: computed by [`Screen::new`], or given to [`Screen::with_query_rows`].
    pub query_rows: RowFactors,
    pub data_rows: RowFactors,
    euclid: f64,
    /// Residual: the indexed points' coordinates column by column (d x n), so that the groups load
    /// them contiguously. Euclidean: empty.
    columns: Vec<f64>,
    /// Per dimension, how r2 scales a coordinate difference (bit for bit the canonical division).
    scalings: Vec<Scaling>,
    kernel_floor: f64,
    isa: Isa,
}

impl<'a> Screen<'a> {
    /// The screen of a checked batch (its rows index `batch.data`), on the fastest instruction set.
    pub fn new(batch: &'a QueryBatch<'a>, data: &'a MetricData<'a>) -> Screen<'a> {
        let query_rows = RowFactors::of_batch(batch);
        Screen::with_query_rows(batch, data, query_rows)
    }

    /// [`Screen::new`] without the factors of `data`'s rows: every row is screened with
    /// [`Self::screen_row_given`] and the factors of its points (the dense path takes them chunk by
    /// chunk, just before the GEMM reads the same rows).
    pub fn without_data_rows(batch: &'a QueryBatch<'a>, data: &'a MetricData<'a>) -> Screen<'a> {
        let query_rows = RowFactors::of_batch(batch);
        Screen::with_factors(batch, data, query_rows, RowFactors::default())
    }

    /// [`Screen::new`] with the batch's row factors given (`RowFactors::of(&batch.data, batch.rows)`):
    /// a caller that screens the same query rows against many small `data` sets (the maximin pass's
    /// rounds) computes their norms, O(rows x m), once instead of once per screen (and hands each
    /// screen a copy, O(rows)).
    pub fn with_query_rows(
        batch: &'a QueryBatch<'a>,
        data: &'a MetricData<'a>,
        query_rows: RowFactors,
    ) -> Screen<'a> {
        let data_rows = RowFactors::of(data, 0..data.n_points());
        Screen::with_factors(batch, data, query_rows, data_rows)
    }

    fn with_factors(
        batch: &'a QueryBatch<'a>,
        data: &'a MetricData<'a>,
        query_rows: RowFactors,
        data_rows: RowFactors,
    ) -> Screen<'a> {
        let queries = &batch.data;
        debug_assert_eq!(
            query_rows.scale.len(),
            batch.rows.len(),
            "one factor per query row"
        );
        let euclid = 16.0 * (data.x.cols() + 4) as f64 * EPS;
        let (n, d) = (data.n_points(), data.x.cols());
        let columns = match data.metric {
            Metric::Euclidean => Vec::new(),
            Metric::Residual => (0..d)
                .flat_map(|t| (0..n).map(move |j| data.x.row(j)[t]))
                .collect(),
        };
        let scalings = queries.lengthscale.iter().map(|&l| Scaling::of(l));
        Screen {
            scalings: scalings.collect(),
            queries,
            query_index: batch.rows,
            data,
            query_rows,
            data_rows,
            euclid,
            columns,
            kernel_floor: kernel_floor(queries.variance),
            isa: Isa::fastest(),
        }
    }

    /// The same screen on instruction set `isa` (one of [`Isa::available`]).
    pub fn on(self, isa: Isa) -> Screen<'a> {
        assert!(Isa::available().contains(&isa), "{isa:?} is not available");
        Screen { isa, ..self }
    }

    /// The key of a pair at canonical distance 0 (a query and its own dataset index).
    pub fn self_key(&self) -> f64 {
        match self.data.metric {
            Metric::Residual => -1.0,
            Metric::Euclidean => 0.0,
        }
    }

    /// Bounds (lo, hi) on the canonical keys of the batch's query `q` against points j0, j0 + 1, ..,
    /// one pair per GEMM value of `g`, a group of at most `GROUP` pairs at a time, in index order;
    /// the groups not below the sink's cutoff are offered to it (the test is one vector compare). The
    /// pair at position `own` of the row (the query's own dataset index) gets the key of distance 0
    /// exactly.
    pub fn screen_row(
        &self,
        q: usize,
        j0: usize,
        g: &[f64],
        own: Option<usize>,
        sink: &mut impl Sink,
    ) {
        let points = self.data_rows.points(j0..j0 + g.len());
        self.screen_row_given(q, j0, g, own, points, sink);
    }

    /// [`Self::screen_row`] with the points' factors given (a screen built by
    /// [`Screen::without_data_rows`] holds none).
    pub fn screen_row_given(
        &self,
        q: usize,
        j0: usize,
        g: &[f64],
        own: Option<usize>,
        points: PointFactors,
        sink: &mut impl Sink,
    ) {
        let row = Row { q, j0, g, own };
        match self.isa {
            Isa::Baseline => self.row(row, points, sink),
            #[cfg(target_arch = "x86_64")]
            // SAFETY: `Isa::available` lists Avx2 only when the CPU supports AVX2 and FMA.
            Isa::Avx2 => unsafe { self.row_avx2(row, points, sink) },
            #[cfg(target_arch = "x86_64")]
            // SAFETY: `Isa::available` lists Avx512 only when the CPU supports AVX-512F and FMA.
            Isa::Avx512 => unsafe { self.row_avx512(row, points, sink) },
        }
    }

    /// [`Self::row`] compiled for AVX2 and FMA: four lanes instead of SSE2's two, the same operations.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    fn row_avx2(&self, row: Row, points: PointFactors, sink: &mut impl Sink) {
        self.row(row, points, sink);
    }

    /// [`Self::row`] compiled for AVX-512F and FMA: a group of eight lanes is one register.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f,fma")]
    fn row_avx512(&self, row: Row, points: PointFactors, sink: &mut impl Sink) {
        self.row(row, points, sink);
    }

    #[inline(always)]
    fn row(&self, Row { q, j0, g, own }: Row, points: PointFactors, sink: &mut impl Sink) {
        let scale_q = self.query_rows.scale[q];
        let (scales, errors) = (&points.scale[..g.len()], points.error);
        if self.data.metric == Metric::Euclidean {
            let bounds = EuclideanBounds {
                norm_q: scale_q,
                norms: scales,
                euclid: self.euclid,
            };
            return self.groups(&bounds, g, j0, own, sink);
        }
        let errors = &errors[..g.len()];
        let variance = self.queries.variance;
        match self.queries.kernel {
            Kernel::Rbf => {
                let parts = |r2| kernel_parts(Kernel::Rbf, variance, r2);
                let bounds = self.residual(q, j0, scales, errors, parts);
                self.groups(&bounds, g, j0, own, sink)
            }
            Kernel::Matern52 => {
                let parts = |r2| kernel_parts(Kernel::Matern52, variance, r2);
                let bounds = self.residual(q, j0, scales, errors, parts);
                self.groups(&bounds, g, j0, own, sink)
            }
        }
    }

    /// The residual bounds of query `q` against the points from `j0` on, whose factors are `scales`
    /// and `errors`, with the kernel's `parts`.
    #[inline(always)]
    fn residual<'r, P>(
        &'r self,
        q: usize,
        j0: usize,
        scales: &'r [f64],
        errors: &'r [f64],
        parts: P,
    ) -> ResidualBounds<'r, P> {
        ResidualBounds {
            query: self.queries.x.row(self.query_index[q] as usize),
            scalings: &self.scalings,
            columns: &self.columns,
            n: self.data.n_points(),
            j0,
            scale_q: self.query_rows.scale[q],
            error_q: self.query_rows.error[q],
            scales,
            errors,
            kernel_floor: self.kernel_floor,
            parts,
        }
    }

    /// The row in whole groups of [`GROUP`] pairs, then the rest one by one (the same operations per
    /// pair either way).
    #[inline(always)]
    fn groups<B: GroupBounds>(
        &self,
        bounds: &B,
        g: &[f64],
        j0: usize,
        own: Option<usize>,
        sink: &mut impl Sink,
    ) {
        let whole = g.len() / GROUP * GROUP;
        for (at, g) in (0..whole).step_by(GROUP).zip(g.chunks_exact(GROUP)) {
            let parts = bounds.group::<GROUP>(at, g.try_into().unwrap());
            self.pass::<B, GROUP>(parts, j0, at, own, sink);
        }
        for (at, &g) in (whole..).zip(&g[whole..]) {
            let parts = bounds.group::<1>(at, &[g]);
            self.pass::<B, 1>(parts, j0, at, own, sink);
        }
    }

    /// Offer the group of row positions at, at + 1, .. to the sink unless every `lo` exceeds its
    /// cutoff, after giving the pair at row position `own` (if in the group) the key of distance 0. The
    /// `hi` are computed only for a group that is offered (most are not).
    #[inline(always)]
    fn pass<B: GroupBounds, const N: usize>(
        &self,
        (center, radius): ([f64; N], [f64; N]),
        j0: usize,
        at: usize,
        own: Option<usize>,
        sink: &mut impl Sink,
    ) {
        let own = own.and_then(|own| own.checked_sub(at)).filter(|&i| i < N);
        let mut lo: [f64; N] = from_fn(|i| B::lo(center[i], radius[i]));
        if let Some(i) = own {
            lo[i] = self.self_key();
        }
        let cutoff = sink.cutoff();
        if lo.iter().fold(false, |any, &l| any | (l <= cutoff)) {
            let mut hi: [f64; N] = from_fn(|i| B::hi(center[i], radius[i]));
            if let Some(i) = own {
                hi[i] = self.self_key();
            }
            sink.offer(j0 + at, &lo, &hi);
        }
    }
}

/// The key bounds of N consecutive pairs of one row, from their GEMM values, as a center and a radius
/// per pair from which `lo` and `hi` follow (so that `hi` is computed only where it is needed).
trait GroupBounds {
    /// (center, radius) of the pairs at row positions at, at + 1, .., at + N - 1.
    fn group<const N: usize>(&self, at: usize, g: &[f64; N]) -> ([f64; N], [f64; N]);
    /// The lower bound on the key of a pair from its center and radius.
    fn lo(center: f64, radius: f64) -> f64;
    /// The upper bound on the key of a pair from its center and radius.
    fn hi(center: f64, radius: f64) -> f64;
}

/// One row of Euclidean bounds (the module docs): squared norms and the error factor.
struct EuclideanBounds<'r> {
    norm_q: f64,
    norms: &'r [f64],
    euclid: f64,
}

impl GroupBounds for EuclideanBounds<'_> {
    /// center = the GEMM's approximate squared distance, radius = its error bound.
    #[inline(always)]
    fn group<const N: usize>(&self, at: usize, g: &[f64; N]) -> ([f64; N], [f64; N]) {
        let (mut center, mut radius) = ([0.0; N], [0.0; N]);
        let norms: &[f64; N] = self.norms[at..at + N].try_into().unwrap();
        for (((center, radius), &g), &norm_j) in
            center.iter_mut().zip(&mut radius).zip(g).zip(norms)
        {
            let norms = self.norm_q + norm_j;
            *center = (norms - 2.0 * g).max(0.0);
            *radius = self.euclid * norms;
        }
        (center, radius)
    }

    #[inline(always)]
    fn lo(center: f64, radius: f64) -> f64 {
        center - radius
    }

    #[inline(always)]
    fn hi(center: f64, radius: f64) -> f64 {
        center + radius
    }
}

/// One row of residual bounds (the module docs): the query's coordinates and factors, the points'
/// columns and factors, and `parts` mapping r2 to the kernel's factor and exp argument.
struct ResidualBounds<'r, P> {
    query: &'r [f64],
    scalings: &'r [Scaling],
    columns: &'r [f64],
    n: usize,
    j0: usize,
    scale_q: f64,
    error_q: f64,
    scales: &'r [f64],
    errors: &'r [f64],
    kernel_floor: f64,
    parts: P,
}

impl<P: Fn(f64) -> (f64, f64)> GroupBounds for ResidualBounds<'_, P> {
    /// center = |rho_a|, radius = its error bound e (the module docs).
    #[inline(always)]
    fn group<const N: usize>(&self, at: usize, g: &[f64; N]) -> ([f64; N], [f64; N]) {
        // r2 in the canonical order: per pair, a sequential sum over the dimensions from 0.0.
        let mut r2 = [0.0; N];
        for (t, (&x, &scaling)) in self.query.iter().zip(self.scalings).enumerate() {
            let from = t * self.n + self.j0 + at;
            let column: &[f64; N] = self.columns[from..from + N].try_into().unwrap();
            let pairs = r2.iter_mut().zip(column);
            match scaling {
                Scaling::Times(f) => pairs.for_each(|(acc, &y)| *acc += square((x - y) * f)),
                Scaling::Over(l) => pairs.for_each(|(acc, &y)| *acc += square((x - y) / l)),
            }
        }
        let (mut factor, mut argument) = ([0.0; N], [0.0; N]);
        for ((factor, argument), &r2) in factor.iter_mut().zip(&mut argument).zip(&r2) {
            (*factor, *argument) = (self.parts)(r2);
        }
        let exp = exp_lanes(argument);
        let scales: &[f64; N] = self.scales[at..at + N].try_into().unwrap();
        let errors: &[f64; N] = self.errors[at..at + N].try_into().unwrap();
        let (mut center, mut radius) = ([0.0; N], [0.0; N]);
        let pairs = center
            .iter_mut()
            .zip(&mut radius)
            .zip(factor.iter().zip(exp));
        for ((((center, radius), (factor, exp)), &g), (&scale_j, &error_j)) in
            pairs.zip(g).zip(scales.iter().zip(errors))
        {
            let k = factor * exp;
            let rho = (k - g) * self.scale_q * scale_j;
            let mag = rho.abs();
            let kernel_error = (KERNEL_REL * k + self.kernel_floor) * self.scale_q * scale_j;
            let e = self.error_q * error_j + kernel_error + 16.0 * EPS * mag + 16.0 * EPS;
            (*center, *radius) = (mag, e);
        }
        (center, radius)
    }

    /// key = -s: lo = -min(|rho_a| + e, 1).
    #[inline(always)]
    fn lo(mag: f64, e: f64) -> f64 {
        -(mag + e).min(1.0)
    }

    /// hi = -clamp(|rho_a| - e, 0, 1).
    #[inline(always)]
    fn hi(mag: f64, e: f64) -> f64 {
        -(mag - e).clamp(0.0, 1.0)
    }
}

#[inline(always)]
fn square(z: f64) -> f64 {
    z * z
}

/// How r2 divides a coordinate difference by a lengthscale l: by multiplying with 1/l when that
/// reciprocal is exact (l a power of two), which gives bit for bit the canonical quotient (both are
/// the correctly rounded value of the same real number) without a division per pair.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Scaling {
    Times(f64),
    Over(f64),
}

impl Scaling {
    fn of(l: f64) -> Scaling {
        const FRACTION: u64 = (1 << 52) - 1;
        if l.is_normal() && l.to_bits() & FRACTION == 0 && (1.0 / l).is_normal() {
            Scaling::Times(1.0 / l)
        } else {
            Scaling::Over(l)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// (x - y) scaled as r2 scales it by lengthscale l.
    fn scaled(l: f64, x: f64, y: f64) -> f64 {
        match Scaling::of(l) {
            Scaling::Times(f) => (x - y) * f,
            Scaling::Over(l) => (x - y) / l,
        }
    }

    #[test]
    fn scaling_is_bitwise_the_canonical_quotient() {
        let powers = [
            0.5,
            1.0,
            2.0,
            0.125,
            1024.0,
            2f64.powi(-1000),
            2f64.powi(1000),
        ];
        for l in powers {
            assert!(matches!(Scaling::of(l), Scaling::Times(_)), "{l:e}");
        }
        // Not powers of two, or a power whose reciprocal (or itself) is subnormal: divide.
        let others = [
            0.7,
            1.3,
            3.0,
            1.0 + f64::EPSILON,
            2f64.powi(1023),
            f64::MIN_POSITIVE / 2.0,
        ];
        for l in others {
            assert!(matches!(Scaling::of(l), Scaling::Over(_)), "{l:e}");
        }
        let mut state = 7u64;
        let mut next = || {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            f64::from_bits(state >> 2) // finite, positive, all exponents
        };
        for l in powers.iter().chain(&others) {
            for _ in 0..2000 {
                let (x, y) = (next(), -next());
                for (x, y) in [(x, y), (y, x), (x, x * (1.0 + f64::EPSILON))] {
                    let canonical = (x - y) / l;
                    assert_eq!(
                        scaled(*l, x, y).to_bits(),
                        canonical.to_bits(),
                        "{l:e} {x:e} {y:e}"
                    );
                }
            }
        }
    }

    #[test]
    fn dot_lanes_gives_the_same_bits_on_every_instruction_set() {
        let mut state = 0x9e37_79b9_7f4a_7c15;
        for n in [0, 1, 15, 16, 17, 33, 512, 515] {
            // Uniform values of both signs and of scales 2^-30..2^30: the sums round at every step.
            let mut value = || {
                let unit =
                    (crate::testing::xorshift(&mut state) >> 11) as f64 / (1u64 << 53) as f64;
                let scale = (crate::testing::xorshift(&mut state) % 61) as i32 - 30;
                (unit - 0.5) * 2f64.powi(scale)
            };
            let a: Vec<f64> = (0..n).map(|_| value()).collect();
            let b: Vec<f64> = (0..n + 3).map(|_| value()).collect();
            let baseline = dot_lanes_on(&a, &b);
            assert_eq!(dot_lanes(&a, &b).to_bits(), baseline.to_bits(), "n = {n}");
            #[cfg(target_arch = "x86_64")]
            if Isa::available().contains(&Isa::Avx2) {
                // SAFETY: the CPU supports AVX2 (listed by `Isa::available`).
                let avx2 = unsafe { dot_lanes_avx2(&a, &b) };
                assert_eq!(avx2.to_bits(), baseline.to_bits(), "n = {n}");
            }
        }
    }
}
