//! The dense path (DESIGN section 5): exact k-NN without a tree, as blocked GEMM tiles of query rows x
//! point rows with a fused epilogue that screens every pair against a per-query running k-th bound,
//! then a canonical re-evaluation of the pairs the bound cannot exclude; or, for Euclidean points of a
//! few coordinates, the box screen, which skips whole boxes of points instead of screening pairs.
//!
//! One concern per module: `screen` (the rigorous per-pair bound and the key), `exp` (the screening's
//! vectorisable exp and its error bound), `tile` (the GEMM), `select` (running bound, candidates,
//! canonical re-check), `split` and `split_rows` (the split screen), `boxes` (the box screen). Query
//! blocks, and spans of a block's point tiles when the blocks are too few for the workers, run in
//! parallel on rayon. Tile shapes never depend on the thread count and spans
//! decide nothing ([`spans`]), so answers and counters do not either.

pub(crate) mod boxes;
mod exp;
mod int8;
mod screen;
mod select;
mod split;
mod split_rows;
mod tile;

use std::ops::Range;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::Instant;

use rayon::prelude::*;

pub use screen::{dot_lanes, widen, Isa, RowFactors, Screen, Sink};

use crate::counters::{N_QUERY_COUNTERS, Q_EVALUATIONS, Q_HEAP_PUSHES, Q_STEPS};
use crate::errors::{filled, CoreError, Result};
use crate::heap::Heap;
use crate::metric::{Metric, MetricData};
use crate::query::{check_queries_given, run_on, thread_pool, QueryBatch};
use crate::stop::Stop;
pub use boxes::{
    gap_bound, pack, within, Boxes, PackedArrays, PackedBoxes, Within, LEAF as BOX_LEAF,
    MAX_WIDTH as BOX_MAX_WIDTH,
};
pub use int8::{kernel_name as int8_kernel, Int8, Int8Packing, COLUMNS as INT8_COLUMNS};
pub use screen::operand;
pub use select::{open_pairs, UpperBounds};
use select::{Recheck, Selection};
pub use split::{check_split_rows, pack_split_rows, FactorColumns, SplitData, FACTORS};
use split::{merge, Found, Probes, Split};
pub use split_rows::{split_rows, SplitConstants, SplitRowsOut, SPLIT_CONSTANTS};
pub use tile::{gram, gram_strided};

/// Tile shape: query rows per block (the unit of parallel work) and point rows per GEMM tile.
#[derive(Debug, Clone, Copy)]
pub struct Blocks {
    pub queries: usize,
    pub points: usize,
}

/// Answers and counters of a dense batch, row-major.
#[derive(Debug, Clone, PartialEq)]
pub struct DenseOutput {
    pub n_queries: usize,
    pub k: usize,
    pub indices: Vec<i64>,
    pub distances: Vec<f64>,
    /// n_queries x N_QUERY_COUNTERS: canonical re-evaluations, heap pushes, 0, 0, tiles visited.
    pub per_query: Vec<i64>,
    /// Eligible pairs screened per query.
    pub screened: Vec<i64>,
    /// Per query, whether the split screen gave it back unanswered (its answer row is padding): it let
    /// through so many pairs that their canonical evaluations would cost more than the GEMM's row, so the
    /// caller answers it on the f64 path, with the other queries given back (the GEMM's reuse of each
    /// point row needs many query rows). Always false without the split.
    pub declined: Vec<bool>,
    /// Seconds the workers spent inside GEMM, summed over workers (a timing: never compared).
    pub gemm_seconds: f64,
}

/// Work units per worker a call aims for when it has few query blocks: the point range of each block
/// is then cut into spans of whole tiles screened in parallel, so a batch smaller than a block per
/// worker still uses every core (two per worker, so that one long unit does not leave a worker idle).
/// The split decides no answer or counter ([`Job::run`] says why), so it may follow the thread count.
const UNITS_PER_WORKER: usize = 2;

/// The fewest point tiles in a span: each span warms up its own k-th bound and holds its own
/// candidates, so spans stay long enough for that to be a small part of their work.
const SPAN_TILES: usize = 4;

/// Into how many spans each block's `tiles` point tiles are cut when a call with `n_blocks` query
/// blocks runs on `workers` threads: 1 when the blocks alone give every worker its units, or when one
/// worker does everything (a split would only add the spans' own warm-up).
pub fn spans(n_blocks: usize, tiles: usize, workers: usize) -> usize {
    if workers <= 1 {
        return 1;
    }
    (UNITS_PER_WORKER * workers)
        .div_ceil(n_blocks.max(1))
        .min(tiles / SPAN_TILES)
        .max(1)
}

/// Point rows whose factors are taken together, and whose GEMM is one call for a small block, when the
/// point tile is a multiple of it: 1 MiB of V at m = 512, still in cache when the GEMM reads the rows
/// its norms just read. A small block's GEMM is memory-bound, so its calls lose nothing by being short.
const CHUNK: usize = 256;

/// Query rows up to which a block's GEMM runs chunk by chunk.
const SMALL_BLOCK: usize = 32;

/// The chunk of a call whose point tiles have `tile` rows: [`CHUNK`] when it divides them (chunks
/// then never straddle a tile), else the tile itself.
fn chunk_rows(tile: usize) -> usize {
    if tile.is_multiple_of(CHUNK) {
        CHUNK
    } else {
        tile
    }
}

/// Tile buffers a call's spans (or the maximin pass's slabs) take and give back: as many as ran at
/// once, each reused, so no tile's pages are faulted in twice.
#[derive(Default)]
pub struct Tiles(Mutex<Vec<Vec<f64>>>);

impl Tiles {
    pub fn take(&self) -> Vec<f64> {
        self.lock().pop().unwrap_or_default()
    }

    pub fn give(&self, tile: Vec<f64>) {
        self.lock().push(tile);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Vec<f64>>> {
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

struct Job<'a> {
    data: &'a MetricData<'a>,
    queries: &'a QueryBatch<'a>,
    screen: Screen<'a>,
    blocks: Blocks,
    k: usize,
    /// Query blocks of the call (with each block's tiles and the workers, they give its [`spans`]).
    n_blocks: usize,
    tiles: Tiles,
    /// Points per chunk of factors ([`chunk_rows`]).
    chunk: usize,
    /// The factors of each chunk's rows, taken by the first span that reaches the chunk.
    factors: Vec<OnceLock<RowFactors>>,
    /// The factors of each point tile's rows (its chunks').
    tile_factors: Vec<OnceLock<RowFactors>>,
    /// V checked value by value, when its norms did not prove it finite ([`Job::v_ok`]).
    v_check: OnceLock<Result<()>>,
    gemm_nanos: AtomicU64,
    stop: &'a Stop,
    /// The split screen ahead of the GEMM ([`split`]), when the caller gave one.
    split: Option<Split<'a>>,
}

/// The output rows of one query block.
struct BlockOut<'a> {
    first: usize,
    indices: &'a mut [i64],
    distances: &'a mut [f64],
    counts: &'a mut [i64],
    screened: &'a mut [i64],
    declined: &'a mut [bool],
}

/// One query block's rows, gathered, and what bounds each query's points.
struct BlockRows<'a> {
    first: usize,
    /// The block's GEMM operand rows, contiguous.
    values: Vec<f64>,
    /// Points each query may take: 0..limit.
    limits: Vec<usize>,
    /// Each query's own dataset index (its pair gets distance 0), or -1.
    own: &'a [i64],
}

impl<'a> Job<'a> {
    fn new(
        data: &'a MetricData,
        queries: &'a QueryBatch,
        blocks: Blocks,
        k: usize,
        stop: &'a Stop,
        split: Option<SplitData<'a>>,
    ) -> Job<'a> {
        let chunk = chunk_rows(blocks.points);
        let cells = |rows: usize| (0..data.n_points().div_ceil(rows)).map(|_| OnceLock::new());
        Job {
            data,
            queries,
            screen: Screen::without_data_rows(queries, data),
            blocks,
            k,
            n_blocks: queries.rows.len().div_ceil(blocks.queries),
            tiles: Tiles::default(),
            chunk,
            factors: cells(chunk).collect(),
            tile_factors: cells(blocks.points).collect(),
            v_check: OnceLock::new(),
            gemm_nanos: AtomicU64::new(0),
            stop,
            split: split.map(|split| Split::new(split, data.n_points())),
        }
    }
}

impl Job<'_> {
    /// V checked value by value, once per call (only when its norms do not prove it finite).
    fn v_ok(&self) -> Result<()> {
        self.v_check.get_or_init(|| self.data.check_v()).clone()
    }

    /// Whether V was checked and found bad, or the caller asked to stop: the spans stop at their next
    /// tile and the blocks not begun are skipped (the call returns the error).
    fn halted(&self) -> bool {
        matches!(self.v_check.get(), Some(Err(_))) || self.stop.requested()
    }

    /// The factors of the points of chunk `c`: the first span to reach the chunk takes them just before
    /// its GEMM reads the same rows, so a call whose blocks hold at most [`SMALL_BLOCK`] query rows
    /// reads V from memory once, not twice (one with larger blocks takes them all first). Serial inside
    /// the cell ([`RowFactors::of_serial`]); spans run in parallel anyway. When they do not prove the
    /// chunk finite, V is checked at once ([`Self::v_ok`]).
    fn chunk_factors(&self, c: usize) -> &RowFactors {
        self.factors[c].get_or_init(|| {
            let n = self.data.n_points();
            let rows = c * self.chunk..((c + 1) * self.chunk).min(n);
            let factors = RowFactors::of_serial(self.data, rows);
            if !factors.prove_rows_finite(self.data) {
                _ = self.v_ok();
            }
            factors
        })
    }

    /// The factors of the points of tile `t`, its chunks' put together (a larger block screens a whole
    /// tile's row at once).
    fn tile_factors(&self, t: usize) -> &RowFactors {
        self.tile_factors[t].get_or_init(|| {
            let n = self.data.n_points();
            let (first, stop) = (
                t * self.blocks.points,
                ((t + 1) * self.blocks.points).min(n),
            );
            let chunks = first / self.chunk..stop.div_ceil(self.chunk);
            RowFactors::concat(chunks.map(|c| self.chunk_factors(c)))
        })
    }

    /// Whether the factors of every chunk (those no span reached are taken now) prove V finite
    /// ([`RowFactors::prove_rows_finite`]; never for Euclidean, whose V is empty and whose factors are
    /// the coordinates' norms).
    fn v_proven_finite(&self) -> bool {
        self.data.metric == Metric::Residual
            && (0..self.factors.len())
                .into_par_iter()
                .all(|c| self.chunk_factors(c).prove_rows_finite(self.data))
    }

    fn gather(&self, first: usize, nb: usize) -> BlockRows<'_> {
        let n = self.data.n_points();
        let (q_values, width) = operand(&self.queries.data);
        let block = first..first + nb;
        let mut values = Vec::with_capacity(nb * width);
        for &r in &self.queries.rows[block.clone()] {
            let r = r as usize;
            values.extend_from_slice(&q_values[r * width..(r + 1) * width]);
        }
        BlockRows {
            first,
            values,
            limits: (self.queries.limit[block.clone()].iter())
                .map(|&l| l.clamp(0, n as i64) as usize)
                .collect(),
            own: &self.queries.dataset_index[block],
        }
    }

    /// The block's selections over the points `span` (whole tiles, from a multiple of the tile size).
    /// A small block's GEMM runs chunk by chunk, each just after its norms, while the chunk is in cache
    /// ([`CHUNK`]); a larger one's runs per tile (it reuses each point row across its query rows).
    fn screen(&self, rows: &BlockRows, span: Range<usize>, tile: &mut Vec<f64>) -> Vec<Selection> {
        let nb = rows.limits.len();
        let mut selections: Vec<Selection> = (0..nb)
            .map(|_| Selection::new(self.k, self.data.metric))
            .collect();
        let points = self.blocks.points;
        for j0 in span.clone().step_by(points) {
            if self.halted() {
                break;
            }
            let stop = (j0 + points).min(span.end);
            if nb <= SMALL_BLOCK {
                for c0 in (j0..stop).step_by(self.chunk) {
                    let factors = self.chunk_factors(c0 / self.chunk);
                    let cols = self.chunk.min(stop - c0);
                    self.screen_points(rows, &mut selections, tile, c0..c0 + cols, factors);
                }
            } else {
                let factors = self.tile_factors(j0 / points);
                self.screen_points(rows, &mut selections, tile, j0..stop, factors);
            }
            let counts = selections
                .iter_mut()
                .map(|s| (&mut s.screened, &mut s.tiles));
            count_tile(&rows.limits, j0..stop, counts);
        }
        selections
    }

    /// One GEMM of the block's rows against the points `at` (whose factors start at `at.start`), and
    /// each query's eligible pairs among them screened into its selection.
    fn screen_points(
        &self,
        rows: &BlockRows,
        selections: &mut [Selection],
        tile: &mut Vec<f64>,
        at: Range<usize>,
        factors: &RowFactors,
    ) {
        let (nb, cols, g0) = (rows.limits.len(), at.len(), at.start);
        let (p_values, width) = operand(self.data);
        tile.resize(nb * cols, 0.0);
        let start = Instant::now();
        gram(
            tile,
            &rows.values,
            &p_values[g0 * width..at.end * width],
            nb,
            cols,
            width,
        );
        let nanos = start.elapsed().as_nanos() as u64;
        self.gemm_nanos.fetch_add(nanos, Ordering::Relaxed);
        for (q, selection) in selections.iter_mut().enumerate() {
            let limit = rows.limits[q].min(at.end);
            if limit <= g0 {
                continue;
            }
            let values = &tile[q * cols..q * cols + (limit - g0)];
            let own = usize::try_from(rows.own[q] - g0 as i64).ok();
            let points = factors.points(0..values.len());
            self.screen
                .screen_row_given(rows.first + q, g0, values, own, points, selection);
        }
    }

    /// Answer one query block: its spans screened in parallel, merged in point order, re-checked. A
    /// query's final candidates are the pairs whose `lo` is at or below widen(T), T the k-th smallest
    /// `hi` of all its pairs (`Selection::absorb`), however the points were split: the answers and every
    /// counter are those of one span. With the split screen ([`split`]) its two passes take the spans.
    fn run(&self, mut out: BlockOut) {
        let nb = out.screened.len();
        let rows = self.gather(out.first, nb);
        let end = rows.limits.iter().copied().max().unwrap_or(0);
        let tiles = end.div_ceil(self.blocks.points);
        let spans = spans(self.n_blocks, tiles, rayon::current_num_threads());
        let bounds: Vec<Range<usize>> = (0..spans)
            .map(|s| {
                let at = |s: usize| (s * tiles / spans * self.blocks.points).min(end);
                at(s)..at(s + 1)
            })
            .collect();
        if let Some(split) = &self.split {
            return self.run_split(split, out, &rows, bounds);
        }
        let parts: Vec<Vec<Selection>> = bounds
            .into_par_iter()
            .map(|span| {
                let mut tile = self.tiles.take();
                let selections = self.screen(&rows, span, &mut tile);
                self.tiles.give(tile);
                selections
            })
            .collect();
        if self.halted() {
            return; // the call returns V's error or Interrupted
        }
        let mut selections = merge(parts, Selection::absorb);
        let rows = &rows;
        // The canonical re-checks, query by query in parallel (the block's only work left).
        self.write(&mut out, &mut selections, |q, selection, heap, recheck| {
            let row = self.queries.rows[rows.first + q] as usize;
            let data = self.data;
            let (evaluations, pushes) =
                selection.finish(heap, recheck, &self.queries.data, row, rows.own[q], data);
            [evaluations, pushes, selection.tiles, selection.screened]
        });
    }

    /// The block's queries with the split screen: probes, thresholds, then the pairs let through.
    fn run_split(
        &self,
        split: &Split,
        mut out: BlockOut,
        rows: &BlockRows,
        spans: Vec<Range<usize>>,
    ) {
        let every = self.split_rows(split, rows, (0..rows.limits.len()).collect());
        let probes = (spans.clone().into_par_iter())
            .map(|span| self.probe(split, rows, &every, span))
            .collect();
        if self.halted() {
            return;
        }
        let mut probed = self.thresholds(split, rows, merge(probes, Probes::absorb));
        let again = (probed.iter().enumerate())
            .filter_map(|(q, p)| p.sift.then_some(q))
            .collect();
        let again = self.split_rows(split, rows, again);
        let found = (spans.into_par_iter())
            .map(|span| self.sift(split, rows, &again, &probed, span))
            .collect();
        if self.halted() {
            return;
        }
        let mut found = merge(found, Found::absorb);
        for (found, probed) in found.iter_mut().zip(&mut probed) {
            found.adopt(probed);
        }
        self.write(&mut out, &mut found, |q, found, heap, _| {
            let row = self.queries.rows[rows.first + q] as usize;
            let (evaluations, pushes) = found.finish(self, row, rows.own[q], heap, &probed[q]);
            [evaluations, pushes, found.tiles, found.screened]
        });
        for (declined, found) in out.declined.iter_mut().zip(&found) {
            *declined = found.declined();
        }
    }

    /// Each query's answer from its heap after `answer` (query by query in parallel) filled it and
    /// gave its evaluations, heap pushes, point tiles and pairs screened.
    fn write<T: Send>(
        &self,
        out: &mut BlockOut,
        per_query: &mut [T],
        answer: impl Fn(usize, &mut T, &mut Heap, &mut Recheck) -> [i64; 4] + Sync,
    ) {
        let k = self.k;
        (out.indices.par_chunks_mut(k))
            .zip(out.distances.par_chunks_mut(k))
            .zip(out.counts.par_chunks_mut(N_QUERY_COUNTERS))
            .zip(out.screened.par_iter_mut())
            .zip(per_query.par_iter_mut())
            .enumerate()
            .for_each_init(
                || (Heap::new(k), Recheck::default()),
                |(heap, recheck), (q, ((((indices, distances), counts), screened), state))| {
                    let [evaluations, pushes, tiles, pairs] = answer(q, state, heap, recheck);
                    heap.write_sorted(indices, distances);
                    counts[Q_EVALUATIONS] = evaluations;
                    counts[Q_HEAP_PUSHES] = pushes;
                    counts[Q_STEPS] = tiles;
                    *screened = pairs;
                },
            );
    }
}

/// Each query's counts for the point tile `tile`: its eligible pairs there (points below its limit) and
/// the tile itself, if it holds any.
fn count_tile<'c>(
    limits: &[usize],
    tile: Range<usize>,
    counts: impl Iterator<Item = (&'c mut i64, &'c mut i64)>,
) {
    for (&limit, (pairs, tiles)) in limits.iter().zip(counts) {
        let eligible = limit.min(tile.end);
        if eligible > tile.start {
            *pairs += (eligible - tile.start) as i64;
            *tiles += 1;
        }
    }
}

fn check_blocks(blocks: Blocks) -> Result<()> {
    for (what, value) in [
        ("dense query block", blocks.queries),
        ("dense point block", blocks.points),
    ] {
        if value < 1 {
            return Err(CoreError::BadValue {
                what,
                value: value as i64,
                allowed: ">= 1",
            });
        }
    }
    Ok(())
}

/// Answer every query of the batch exactly by dense screening: the k nearest indexed points by
/// (distance, index), with distances bitwise the canonical ones. `threads` = None runs on rayon's
/// global pool; results and counters never depend on it. `stop` ends the call early (between tiles).
/// `screen` picks the pairs' screen: the f64 GEMM, the split for indexed residual queries (`split.rs`:
/// the same answers, fewer pairs through the GEMM), or the boxes of Euclidean points ([`Boxes`]: the
/// same answers, most pairs never looked at).
pub fn dense_query(
    data: &MetricData,
    queries: &QueryBatch,
    k: i64,
    threads: Option<i64>,
    blocks: Blocks,
    stop: &Stop,
    screen: DenseScreen,
) -> Result<DenseOutput> {
    let split = match screen {
        DenseScreen::F64 => None,
        DenseScreen::Split(split) => Some(split),
        DenseScreen::Boxes(boxes) => return boxes::query(data, queries, k, threads, stop, &boxes),
    };
    data.check_shapes()?;
    // Every check but V's values, in a full check's order; when one fails, the full check runs, so
    // the error is the one it gives first (V's, when V is bad too). V's values are proven finite by
    // the row norms the screen takes anyway (one read of V serves both), else checked, before any
    // answer is returned.
    let full_check_first = |e| check_queries_given(data, queries, k, false).and(Err(e));
    let out = check_queries_given(data, queries, k, true)
        .and_then(|()| check_blocks(blocks))
        .and_then(|()| split.map_or(Ok(()), |split| split.check(data, queries, k as usize)))
        .and_then(|()| DenseOutput::empty(queries.rows.len(), k))
        .or_else(full_check_first)?;
    if queries.rows.is_empty() {
        data.check_v()?;
        return Ok(out);
    }
    let pool = thread_pool(threads).or_else(|e| data.check_v().and(Err(e)))?;
    run_on(pool, || answer(data, queries, blocks, out, stop, split))
}

/// What screens the dense path's pairs ([`dense_query`]).
#[derive(Clone, Copy)]
pub enum DenseScreen<'a> {
    /// The f64 GEMM with its rigorous bound.
    F64,
    /// The split screen's int8 products (indexed residual queries).
    Split(SplitData<'a>),
    /// The boxes of Euclidean points.
    Boxes(Boxes<'a>),
}

impl DenseOutput {
    /// The output of `n_q` queries before any is answered (padding), or the error of an answer too
    /// large for memory.
    fn empty(n_q: usize, k: i64) -> Result<DenseOutput> {
        let cells = n_q.checked_mul(k as usize);
        Ok(DenseOutput {
            n_queries: n_q,
            k: k as usize,
            indices: filled(cells, -1i64, k)?,
            distances: filled(cells, f64::INFINITY, k)?,
            per_query: vec![0; n_q * N_QUERY_COUNTERS],
            screened: vec![0; n_q],
            declined: vec![false; n_q],
            gemm_seconds: 0.0,
        })
    }
}

/// [`dense_query`] on the pool it chose, its arguments checked but for V's values.
fn answer(
    data: &MetricData,
    queries: &QueryBatch,
    blocks: Blocks,
    mut out: DenseOutput,
    stop: &Stop,
    split: Option<SplitData>,
) -> Result<DenseOutput> {
    let job = Job::new(data, queries, blocks, out.k, stop, split);
    // A NaN or an infinity in V must stop the call before it costs anything: such a row's bounds
    // exclude nothing, so its query would keep every pair as a candidate. On the split screen its
    // factors, checked finite, prove V finite ([`SplitData`]). Otherwise query rows of the indexed data
    // are tested first; data rows as their chunks' norms are taken (`Job::chunk_factors`).
    let proven = job.split.is_some();
    if !proven && queries.data.same_as(data) && !job.screen.query_rows.prove_rows_finite(data) {
        job.v_ok()?;
    }
    if !proven && out.n_queries.min(blocks.queries) > SMALL_BLOCK {
        // Blocks of more than SMALL_BLOCK rows screen whole tiles: each point row serves many query
        // rows, the norms' own read of V weighs little, and spans of different blocks would otherwise
        // wait on each other's norms tile by tile.
        // A chunk whose norms fail the proof checks V at once (`Job::chunk_factors`), and a bad V then
        // stops every span before its first tile.
        (0..job.tile_factors.len())
            .into_par_iter()
            .for_each(|t| _ = job.tile_factors(t));
    }
    run_blocks(&job, &mut out);
    if !proven && !job.v_proven_finite() {
        job.v_ok()?;
    }
    stop.check()?;
    out.gemm_seconds = job.gemm_nanos.load(Ordering::Relaxed) as f64 * 1e-9;
    Ok(out)
}

fn run_blocks(job: &Job, out: &mut DenseOutput) {
    let (k, bq) = (job.k, job.blocks.queries);
    out.indices
        .par_chunks_mut(bq.saturating_mul(k))
        .zip(out.distances.par_chunks_mut(bq.saturating_mul(k)))
        .zip(
            out.per_query
                .par_chunks_mut(bq.saturating_mul(N_QUERY_COUNTERS)),
        )
        .zip(out.screened.par_chunks_mut(bq))
        .zip(out.declined.par_chunks_mut(bq))
        .enumerate()
        // Last block first: in predecessor mode a block's work grows with its position, and a pool
        // that ends on the cheapest blocks leaves no worker waiting on a long one.
        .rev()
        .for_each(
            |(b, ((((indices, distances), counts), screened), declined))| {
                if job.halted() {
                    return;
                }
                job.run(BlockOut {
                    first: b * bq,
                    indices,
                    distances,
                    counts,
                    screened,
                    declined,
                })
            },
        );
}
