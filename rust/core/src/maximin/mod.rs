//! Exact maximin ordering fused with the predecessor search (covertreex/maximin_dense.py, the gold
//! pass, in Rust on the dense path's GEMM tiles, screening bounds and canonical metric).
//!
//! Every pair (c, j) with c placed before j is a pair the predecessor query must look at, so each
//! unplaced point j collects its candidate neighbours among the placed points while they are placed,
//! and keeps `dist[j]`, its canonical distance to the nearest placed point (`point`). When j is
//! placed, its candidates give its neighbour row. The ordering is exact maximin (the largest `dist`
//! next, ties to the smallest index) and the rows equal the predecessor query's on the data in that
//! order, distance bits included: both depend only on canonical distances (`metric::distance`), never
//! on GEMM values, which only decide which pairs are evaluated, through the rigorous intervals of
//! `dense::Screen`.
//!
//! Rounds: the S unplaced points with the best keys (`dist` descending, index ascending) form a block
//! A whose S x S Gram matrix is computed once (its lower triangle in strips of `GRAM_ROWS` rows,
//! mirrored); points of A are placed greedily, for as long as the best of A beats the best key outside
//! A at the round's start (keys outside only fall, so that bound holds and every placement is the
//! global best). Each placed point updates the rest of A through one screened row of the Gram matrix
//! against the whole block (`point::Column`): vectorised, where a scalar bound per member cost twice
//! as much wall time at S = 512. The rows of the points placed in a round are written in parallel
//! during the next round's placements, which are serial (a placed point has seen every point placed
//! before it, so its row depends on nothing else); every point outside A is screened against the
//! points just placed, one GEMM
//! tile per slab of the compacted unplaced rows (`pool`), slabs on rayon; given the split screen, its
//! exact int8 bound drops most of those pairs before the GEMM first (split.rs); for Euclidean data, a
//! slab of nearby points skips the placed points its bounding box proves too far for all of them, and
//! values the pairs left by their exact keys (boxes.rs, pool.rs). A point's state is touched
//! by one slab only and sees the placed points in position order, and slabs never depend on the
//! thread count, so the order, rows and counters do not either.

mod boxes;
mod farthest;
mod point;
mod pool;
mod rows;
mod split;

use rayon::prelude::*;

use crate::dense::{gram_strided, operand, RowFactors, Screen, Tiles};
use crate::errors::{filled, CoreError, Result};
use crate::hilbert;
use crate::metric::{squared_sum, Metric, MetricData};
use crate::query::{on_pool, QueryBatch};
use crate::stop::Stop;
pub use farthest::{maximin_order, MaximinOrder};
use point::{Column, Offers, Placed, Point, Scratch};
use pool::{Mark, Pool};
use rows::Rows;
pub use split::MaximinSplit;
use split::{dense_tile, group_values, prefetch, prefetch_line, Chunk, Survivors};

/// Rows per GEMM call of a round's block Gram matrix (the unit of parallel work there): strip b holds
/// the columns 0..(b + 1) GRAM_ROWS only, so the block's GEMM does little more than half the S x S
/// products, and each call's packing of its operands serves 128 rows (at 64, packing cost a fifth).
const GRAM_ROWS: usize = 128;

/// The order, the neighbour rows and the work of one pass.
#[derive(Debug, Clone, PartialEq)]
pub struct MaximinOutput {
    /// Dataset index at each position.
    pub order: Vec<i64>,
    pub k: usize,
    /// n x k positions (row i: the positions j < i nearest to position i by (distance, position)),
    /// padded with -1.
    pub indices: Vec<i64>,
    /// n x k canonical distances, padded with inf.
    pub distances: Vec<f64>,
    /// Canonical distances evaluated: by `metric::distance`, or (Euclidean pairs valued by their exact
    /// keys, `point::Point::admit_exact`) the square roots of the keys a point kept as candidates; the
    /// keys computed and found at or beyond a threshold count in `screened` only.
    pub evaluations: i64,
    /// Rounds run (blocks A).
    pub rounds: i64,
    /// Pairs of unplaced points outside a round's block with the points it placed that were given a
    /// value and screened (the rest were dropped by the split screen or a slab's box, or the round
    /// placed every point left).
    pub screened: i64,
    /// Positions whose rows the split's floor left unproven ([`MaximinSplit`]), ascending: their rows
    /// hold padding (-1, inf) and must be found otherwise (the predecessor query of those positions in
    /// this order). Empty without a floor.
    pub unproven: Vec<i64>,
}

/// Sizes of the pass: points per block A, rows per GEMM tile outside it and, for Euclidean data, points
/// per region of the pool (each with its box, pool.rs), all capped at the points; candidates a point holds
/// at least before dropping the excluded ones (raised to k + 1 if lower; any value > k is exact; a
/// point holds fewer than 2 `room`, see `point::Point::limit`).
#[derive(Debug, Clone, Copy)]
pub struct MaximinSizes {
    pub block: i64,
    pub room: i64,
}

/// Points placed at consecutive positions from `start`, with their states, rows not yet written.
struct Placements {
    start: usize,
    states: Vec<Point>,
}

impl Placements {
    fn stop(&self) -> usize {
        self.start + self.states.len()
    }
}

/// The pass's neighbour rows, taken out of its output while they are written beside the placements.
struct Answers {
    k: usize,
    indices: Vec<i64>,
    distances: Vec<f64>,
    unproven: Vec<i64>,
}

impl Answers {
    fn take(out: &mut MaximinOutput) -> Answers {
        Answers {
            k: out.k,
            indices: std::mem::take(&mut out.indices),
            distances: std::mem::take(&mut out.distances),
            unproven: std::mem::take(&mut out.unproven),
        }
    }

    /// Put the rows back, with the evaluations their writing took.
    fn give_back(self, out: &mut MaximinOutput, evaluations: i64) {
        out.indices = self.indices;
        out.distances = self.distances;
        out.unproven = self.unproven;
        out.evaluations += evaluations;
    }

    /// Write the rows of `placed`, in parallel (each depends only on its own state and the order up to
    /// its position, `at.order`), padding where a row is unproven; return the canonical evaluations of
    /// their states.
    fn write(&mut self, at: &Placed, mut placed: Placements) -> i64 {
        let (k, start) = (self.k, placed.start);
        let cells = start * k..placed.stop() * k;
        let rows = (self.indices[cells.clone()].par_chunks_mut(k))
            .zip(self.distances[cells].par_chunks_mut(k))
            .zip(placed.states.par_iter_mut());
        let proven: Vec<bool> = (rows.enumerate())
            .map_init(
                || Scratch::new(at.k),
                |scratch, (t, ((indices, distances), state))| {
                    let proven = state.finish(at, at.order[start + t], scratch);
                    if proven {
                        scratch.row.write_sorted(indices, distances);
                    } else {
                        indices.fill(-1);
                        distances.fill(f64::INFINITY);
                    }
                    proven
                },
            )
            .collect();
        let left = proven.iter().enumerate().filter(|&(_, &p)| !p);
        self.unproven.extend(left.map(|(t, _)| (start + t) as i64));
        placed.states.iter().map(|p| p.evaluations).sum()
    }
}

struct Pass<'a> {
    data: &'a MetricData<'a>,
    /// The unplaced points: operand rows and states.
    pool: Pool,
    placed: Vec<bool>,
    /// Whether a point is in the current round's block A (screened by the block's Gram matrix instead).
    in_block: Vec<bool>,
    order: Vec<usize>,
    /// 0..n: the query rows of the screens outside the blocks (a point is screened as its own dataset
    /// index), whose factors (`factors`, the norms of every row of V) are thus computed once.
    all: Vec<i64>,
    factors: RowFactors,
    /// Neighbours kept per row internally (k capped at n - 1, at least 1) and columns of the output.
    kept: usize,
    room: usize,
    block: usize,
    /// The block Gram matrix's buffer, reused by every round.
    gram: Vec<f64>,
    /// The outside screening's tile buffers, reused by every round.
    tiles: Tiles,
    /// The split screen ahead of the outside screening (split.rs), if given.
    split: Option<MaximinSplit<'a>>,
    out: MaximinOutput,
}

/// Whether (d1, i1) comes before (d2, i2) in maximin order: larger distance, then smaller index.
fn better<I: Ord>(d1: f64, i1: I, d2: f64, i2: I) -> bool {
    d1 > d2 || (d1 == d2 && i1 < i2)
}

impl<'a> Pass<'a> {
    /// The pass before its first placement: every point unplaced, with the norms of every row; `out`
    /// holds its answers (padding until written).
    fn new(
        data: &'a MetricData<'a>,
        k: i64,
        sizes: MaximinSizes,
        split: Option<MaximinSplit<'a>>,
        out: MaximinOutput,
    ) -> Result<Pass<'a>> {
        let n = data.n_points();
        let kept = (k as usize).min(n - 1).max(1);
        let (values, width) = operand(data);
        let block = (sizes.block as usize).min(n);
        let floor = split.map_or(f64::INFINITY, |split| split.floor);
        // Euclidean: slabs of nearby points, each a region of the pool with its box (pool.rs).
        let (order, region) = match data.metric {
            Metric::Euclidean => (hilbert::order(data.x)?, Some(block)),
            Metric::Residual => ((0..n).collect(), None),
        };
        Ok(Pass {
            data,
            pool: Pool::new(values, order, width, region, || Point::new(kept, floor)),
            placed: vec![false; n],
            in_block: vec![false; n],
            order: vec![0; n],
            all: (0..n as i64).collect(),
            factors: RowFactors::of(data, 0..n),
            kept,
            room: (sizes.room.max(k.saturating_add(1)) as usize).max(kept + 1),
            block,
            gram: Vec::new(),
            tiles: Tiles::default(),
            split,
            out,
        })
    }

    /// Put point c at position n; return its state, whose row [`Answers::write`] writes.
    fn place(&mut self, c: usize, n: usize) -> Point {
        self.order[n] = c;
        self.placed[c] = true;
        self.out.order[n] = c as i64;
        self.pool.remove(c)
    }

    /// Place points of block `a` (ranked) from position `start` on while the best of them beats
    /// `bound` (the best point outside, if any), and meanwhile write the rows of the points placed
    /// before (`earlier`): the placements are serial, the rows parallel, so the rows fill the cores
    /// the placements leave idle. Return the points placed now.
    fn greedy(
        &mut self,
        a: &[usize],
        bound: Option<usize>,
        start: usize,
        earlier: Placements,
    ) -> Result<Placements> {
        let rows = Rows::gather(self.data, a);
        let block = rows.view(self.data)?;
        let g = self.block_gram(&block);
        let index: Vec<i64> = a.iter().map(|&j| j as i64).collect();
        let batch = QueryBatch {
            data: *self.data,
            rows: &index,
            dataset_index: &index,
            limit: &index,
        };
        let screen = Screen::new(&batch, &block);
        // The rows read the order up to their positions while the placements extend it: a copy of
        // that prefix (at most n positions per round) lets both run at once.
        let order = self.order[..earlier.stop()].to_vec();
        let mut out = Answers::take(&mut self.out);
        let at = Placed {
            data: self.data,
            order: &order,
            k: self.kept,
            room: self.room,
        };
        let (evaluations, now) = rayon::join(
            || out.write(&at, earlier),
            || self.place_greedily(a, bound, start, &g, &screen),
        );
        out.give_back(&mut self.out, evaluations);
        self.gram = g;
        for &j in a.iter().filter(|&&j| !self.placed[j]) {
            self.pool.mark(j);
        }
        Ok(now)
    }

    /// The block's Gram matrix (S x S, row-major), in the pass's reused buffer.
    fn block_gram(&mut self, block: &MetricData) -> Vec<f64> {
        let (values, width) = operand(block);
        let s = block.n_points();
        let mut g = std::mem::take(&mut self.gram);
        g.resize(s * s, 0.0);
        // Strip b costs b + 1 units: listed largest, smallest, second largest, .., so that rayon's
        // halving of the list gives each half the same work.
        let mut strips: Vec<(usize, &mut [f64])> =
            g.chunks_mut(GRAM_ROWS * s).enumerate().collect();
        let mut balanced = Vec::with_capacity(strips.len());
        while let Some(last) = strips.pop() {
            balanced.push(last);
            if !strips.is_empty() {
                balanced.push(strips.remove(0));
            }
        }
        balanced.into_par_iter().for_each(|(b, strip)| {
            let (first, count) = (b * GRAM_ROWS, strip.len() / s);
            let mine = &values[first * width..(first + count) * width];
            gram_strided(strip, s, mine, values, count, first + count, width);
        });
        for t in 0..s {
            for u in (t / GRAM_ROWS + 1) * GRAM_ROWS..s {
                g[t * s + u] = g[u * s + t];
            }
        }
        g
    }

    /// The placements of [`Self::greedy`], given the block's Gram matrix `g` and its screen.
    fn place_greedily(
        &mut self,
        a: &[usize],
        bound: Option<usize>,
        start: usize,
        g: &[f64],
        screen: &Screen,
    ) -> Placements {
        let s = a.len();
        let mut n = start;
        let mut states = Vec::new();
        let mut dists: Vec<f64> = a.iter().map(|&j| self.pool.dist(j)).collect();
        loop {
            let mut best: Option<usize> = None;
            for (t, &j) in a.iter().enumerate() {
                let beats = |b: usize| better(dists[t], j, dists[b], a[b]);
                if !self.placed[j] && best.is_none_or(beats) {
                    best = Some(t);
                }
            }
            let Some(b) = best else { break };
            let c = a[b];
            // The round's first point is a[0], the global best by the ranking: placing it without the
            // test guarantees progress (a ranking that disagreed with `better` would give a wrong
            // order, which the tests see, instead of an endless loop).
            if let Some(o) = bound.filter(|_| n > start) {
                if !better(dists[b], c, self.pool.dist(o), o) {
                    break;
                }
            }
            states.push(self.place(c, n));
            let at = Placed {
                data: self.data,
                order: &self.order[..n + 1],
                k: self.kept,
                room: self.room,
            };
            let mut column = Column {
                pool: &mut self.pool,
                members: a,
                placed: &self.placed,
                dists: &mut dists,
                at: &at,
                pos: n,
            };
            screen.screen_row(b, 0, &g[b * s..(b + 1) * s], None, &mut column);
            n += 1;
        }
        Placements { start, states }
    }

    /// Screen the unplaced points outside the round's block A against the points placed at positions
    /// start..stop.
    fn screen_outside(&mut self, start: usize, stop: usize) -> Result<()> {
        let data = self.data;
        let chunk = Rows::gather(data, &self.order[start..stop]);
        let chunk = chunk.view(data)?;
        let (placed_values, width) = operand(&chunk);
        let batch = QueryBatch {
            data: *data,
            rows: &self.all,
            dataset_index: &self.all,
            limit: &self.all,
        };
        let screen = Screen::with_query_rows(&batch, &chunk, self.factors.clone());
        let at = Placed {
            data,
            order: &self.order[..stop],
            k: self.kept,
            room: self.room,
        };
        let (block, cols, in_block) = (self.block, stop - start, &self.in_block);
        let tiles = &self.tiles;
        let split = self.split.as_ref();
        let chunk = split.map(|split| Chunk::of(split, &self.order[start..stop]));
        let pairs: i64 = (self.pool.slabs(block))
            .map(|(values, members, states, marks, bounds)| {
                let screened = |r: usize| !in_block[members[r]];
                let survivors = match (split, &chunk, bounds) {
                    (Some(split), Some(chunk), _) => {
                        let cutoffs: Vec<f64> = states.iter().map(|p| p.cutoff()).collect();
                        Survivors::of(split, chunk, members, screened, |r| cutoffs[r])
                    }
                    (_, _, Some(bounds)) => {
                        match near(bounds, marks, screened, placed_values, width, cols) {
                            Near::Nothing => return 0,
                            Near::Few(mask) => {
                                let mut slab = ExactSlab {
                                    values,
                                    members,
                                    states,
                                    marks,
                                    width,
                                };
                                return slab.offer_keys(screened, &mask, placed_values, &at, start);
                            }
                            Near::Most => Survivors::every(members.len()),
                        }
                    }
                    _ => Survivors::every(members.len()),
                };
                let mut tile = tiles.take();
                for (t, &r) in survivors.sparse.iter().enumerate() {
                    if let Some(&next) = survivors.sparse.get(t + 1) {
                        prefetch(&values[next * width..(next + 1) * width]);
                    }
                    let (j, row) = (members[r], &values[r * width..(r + 1) * width]);
                    for (c0, bits) in survivors.groups(r) {
                        let g = group_values(row, placed_values, width, c0, bits);
                        let len = (cols - c0).min(8);
                        screen.screen_row(
                            j,
                            c0,
                            &g[..len],
                            None,
                            &mut offers(&mut states[r], &at, j, start, Some((c0, bits))),
                        );
                    }
                }
                if !survivors.dense.is_empty() {
                    let slab = members.len();
                    let dense = &survivors.dense;
                    dense_tile(&mut tile, values, dense, slab, placed_values, cols, width);
                }
                for (t, &r) in survivors.dense.iter().enumerate() {
                    if screened(r) {
                        let g = &tile[t * cols..(t + 1) * cols];
                        let sink = &mut offers(&mut states[r], &at, members[r], start, None);
                        screen.screen_row(members[r], 0, g, None, sink);
                    }
                }
                tiles.give(tile);
                for &r in survivors.sparse.iter().chain(&survivors.dense) {
                    marks[r] = Mark::of(&states[r]);
                }
                survivors.pairs(cols, screened)
            })
            .sum();
        self.out.screened += pairs;
        Ok(())
    }

    fn run(
        &mut self,
        first: usize,
        progress: &mut (dyn FnMut(usize, usize) + Send),
        stop: &Stop,
    ) -> Result<()> {
        let n_points = self.placed.len();
        let state = self.place(first, 0);
        let mut earlier = Placements {
            start: 0,
            states: vec![state],
        };
        self.screen_outside(0, 1)?;
        let mut n = 1;
        while n < n_points {
            stop.check()?;
            self.pool.pack_if_sparse();
            let (a, bound) = self.pool.best(self.block);
            a.iter().for_each(|&j| self.in_block[j] = true);
            let now = self.greedy(&a, bound, n, earlier)?;
            let end = now.stop();
            if bound.is_some() {
                self.screen_outside(n, end)?;
            }
            a.iter().for_each(|&j| self.in_block[j] = false);
            n = end;
            earlier = now;
            self.out.rounds += 1;
            // The rows before `earlier` are written; those the floor left unproven are not answered.
            progress(n, earlier.start - self.out.unproven.len());
        }
        let mut out = Answers::take(&mut self.out);
        let at = Placed {
            data: self.data,
            order: &self.order,
            k: self.kept,
            room: self.room,
        };
        let evaluations = out.write(&at, earlier);
        out.give_back(&mut self.out, evaluations);
        Ok(())
    }
}

/// Point `j`'s state as the sink of its screened row against the points placed from position `start`
/// on (`only`: see [`Offers`]).
fn offers<'s, 'a>(
    point: &'s mut Point,
    at: &'s Placed<'a>,
    j: usize,
    start: usize,
    only: Option<(usize, u8)>,
) -> Offers<'s, 'a> {
    Offers {
        point,
        at,
        j,
        j0: 0,
        pos0: start,
        only,
    }
}

/// Coordinates up to which a slab's pairs always go by exact keys once its points hold k bounds, however
/// many placed points its box leaves: a key of a few terms costs about what a GEMM value and its screen
/// do, and only exact keys let a threshold reach 0 (rows of one repeated site: a GEMM bound of a
/// duplicate pair is above 0, so every pair was valued, 4,404,279 of 4,498,500 at N = 3,000).
const EXACT_KEYS_WIDTH: usize = 4;

/// What the box of a slab's region leaves of a round's placed points (boxes.rs).
enum Near {
    /// No pair of the slab can change anything.
    Nothing,
    /// The placed points that may matter (bit t % 8 of byte t / 8 for placed point t), few of them or
    /// rows of at most [`EXACT_KEYS_WIDTH`] coordinates: their pairs get their exact keys
    /// ([`ExactSlab::offer_keys`]).
    Few(Vec<u8>),
    /// Most placed points may matter, in more than [`EXACT_KEYS_WIDTH`] coordinates (or a point holds
    /// fewer than k bounds): the GEMM tile.
    Most,
}

/// The placed points (`cols` rows of `width` in `placed`) that may matter to the screened points of a
/// slab whose region's box is `bounds`.
fn near(
    bounds: &[f64],
    marks: &[Mark],
    screened: impl Fn(usize) -> bool,
    placed: &[f64],
    width: usize,
    cols: usize,
) -> Near {
    let reach = (0..marks.len())
        .filter(|&r| screened(r))
        .map(|r| marks[r].threshold)
        .fold(f64::NEG_INFINITY, f64::max);
    if reach == f64::NEG_INFINITY {
        return Near::Nothing;
    }
    if reach == f64::INFINITY {
        return Near::Most;
    }
    let mut mask = Vec::new();
    let count = boxes::reachable(bounds, placed, width, cols, reach, &mut mask);
    if count == 0 {
        Near::Nothing
    } else if 2 * count > cols && width > EXACT_KEYS_WIDTH {
        Near::Most
    } else {
        Near::Few(mask)
    }
}

/// A slab of Euclidean points whose pairs go by exact keys: their coordinates (rows of `width`), dataset
/// indices, states and marks.
struct ExactSlab<'s> {
    values: &'s [f64],
    members: &'s [usize],
    states: &'s mut [Point],
    marks: &'s mut [Mark],
    width: usize,
}

impl ExactSlab<'_> {
    /// Offer each screened point its pairs with the placed points of `mask` (coordinates `placed`,
    /// positions from `start` on) by their exact keys (`point::Point::admit_exact`): the canonical
    /// squared sum is an interval [key, key] that holds the key, so the point's state decides on it as
    /// on any screened interval, without a GEMM value or its error bound. Returns the pairs valued.
    fn offer_keys(
        &mut self,
        screened: impl Fn(usize) -> bool,
        mask: &[u8],
        placed: &[f64],
        at: &Placed,
        start: usize,
    ) -> i64 {
        let w = self.width;
        let groups: Vec<(usize, u8)> = (mask.iter().enumerate())
            .filter(|&(_, &bits)| bits != 0)
            .map(|(byte, &bits)| (8 * byte, bits))
            .collect();
        // First the keys of every row, and the pairs below its mark's threshold (as high as its state's
        // or higher: thresholds only fall; `point::Point::threshold` says why a key at or above it
        // changes nothing) with their states fetched; then those states' heap buffers fetched; then the
        // admissions, in row and position order as one pass would make them (`admit_exact` checks each
        // against the live threshold): an admission's loads, from states far apart in memory, overlap
        // instead of waiting in turn.
        let mut pending: Vec<(usize, usize, f64)> = Vec::new();
        let mut pairs = 0;
        for r in (0..self.members.len()).filter(|&r| screened(r)) {
            let x = &self.values[r * w..(r + 1) * w];
            let (threshold, before) = (self.marks[r].threshold, pending.len());
            for &(c0, bits) in &groups {
                let mut left = bits;
                while left != 0 {
                    let t = left.trailing_zeros() as usize;
                    left &= left - 1;
                    let key = squared_sum(&placed[(c0 + t) * w..(c0 + t + 1) * w], x);
                    if key < threshold {
                        pending.push((r, start + c0 + t, key));
                    }
                }
                pairs += i64::from(bits.count_ones());
            }
            if pending.len() > before {
                prefetch_line(&self.states[r]);
            }
        }
        let mut last = usize::MAX;
        for &(r, _, _) in &pending {
            if r != last {
                self.states[r].prefetch();
                last = r;
            }
        }
        for &(r, pos, key) in &pending {
            let point = &mut self.states[r];
            point.admit_exact(at, self.members[r], pos, key);
            self.marks[r] = Mark::of(point);
        }
        pairs
    }
}

/// That the ordering's first point is one of the `n` points.
fn check_first(first: i64, n: usize) -> Result<()> {
    if first < 0 || first >= n as i64 {
        return Err(CoreError::IndexOutOfRange {
            what: "first",
            position: 0,
            index: first,
            bound: n,
        });
    }
    Ok(())
}

fn check(data: &MetricData, first: i64, k: i64, sizes: MaximinSizes) -> Result<()> {
    data.check()?;
    check_first(first, data.n_points())?;
    if k < 1 {
        return Err(CoreError::KOutOfRange {
            k,
            reason: "must be >= 1",
        });
    }
    if sizes.block < 1 {
        return Err(CoreError::BadValue {
            what: "maximin block",
            value: sizes.block,
            allowed: ">= 1",
        });
    }
    Ok(())
}

/// The exact maximin order of `data` from point `first`, and every position's k nearest earlier
/// positions (see the module docs). `threads` = None runs on rayon's global pool; nothing returned
/// depends on it. `progress(placed, answered)` hears after each round how many points are placed and how
/// many rows are answered (written, and proven: a round's rows are written during the next round, and
/// the unproven ones are left to the caller); `stop` ends the call
/// early (between rounds). `split` (residual data only) screens each round's pairs outside its block
/// first (split.rs): the same order and rows.
#[allow(clippy::too_many_arguments)]
pub fn maximin_neighbors(
    data: &MetricData,
    first: i64,
    k: i64,
    sizes: MaximinSizes,
    split: Option<MaximinSplit>,
    threads: Option<i64>,
    progress: &mut (dyn FnMut(usize, usize) + Send),
    stop: &Stop,
) -> Result<MaximinOutput> {
    check(data, first, k, sizes)?;
    let n = data.n_points();
    let cells = n.checked_mul(k as usize);
    let out = MaximinOutput {
        order: vec![0; n],
        k: k as usize,
        indices: filled(cells, -1i64, k)?,
        distances: filled(cells, f64::INFINITY, k)?,
        evaluations: 0,
        rounds: 0,
        screened: 0,
        unproven: Vec::new(),
    };
    if let Some(split) = &split {
        split.check(data)?;
    }
    on_pool(threads, || {
        let mut pass = Pass::new(data, k, sizes, split, out)?;
        pass.run(first as usize, progress, stop)?;
        Ok(pass.out)
    })?
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metric::distance;
    use crate::query::available_threads;
    use crate::testing::{brute_maximin, lattice, plane};

    #[test]
    fn order_and_rows_are_brute_force_on_any_thread_count() {
        let x = lattice();
        let data = plane(&x);
        let (n, k) = (data.n_points(), 4);
        let threads = available_threads().min(2) as i64;
        for (block, room) in [(4, 0), (64, 0), (3, 5)] {
            for first in [0, 24, 59] {
                let sizes = MaximinSizes { block, room };
                let [one, many] = [1, threads].map(|t| {
                    maximin_neighbors(
                        &data,
                        first,
                        k,
                        sizes,
                        None,
                        Some(t),
                        &mut |_, _| {},
                        &Stop::default(),
                    )
                    .unwrap()
                });
                assert_eq!(one, many);
                assert_eq!(one.order, brute_maximin(&x, 2, first as usize));
                for i in 0..n {
                    let at = |p: usize| one.order[p] as usize;
                    let mut row: Vec<(f64, i64)> = (0..i)
                        .map(|p| (distance(&data, at(p), -1, &data, at(i)), p as i64))
                        .collect();
                    row.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
                    row.resize(k as usize, (f64::INFINITY, -1));
                    let cells = i * k as usize..(i + 1) * k as usize;
                    let (want_d, want_i): (Vec<f64>, Vec<i64>) = row.into_iter().unzip();
                    assert_eq!(one.indices[cells.clone()], want_i, "row {i}");
                    assert_eq!(one.distances[cells], want_d, "row {i}");
                }
            }
        }
    }

    #[test]
    fn bad_arguments_are_errors() {
        let x = lattice();
        let data = plane(&x);
        let run = |first, k, block| {
            let sizes = MaximinSizes { block, room: 0 };
            maximin_neighbors(
                &data,
                first,
                k,
                sizes,
                None,
                None,
                &mut |_, _| {},
                &Stop::default(),
            )
        };
        assert!(matches!(
            run(60, 3, 8),
            Err(CoreError::IndexOutOfRange { .. })
        ));
        assert!(matches!(
            run(-1, 3, 8),
            Err(CoreError::IndexOutOfRange { .. })
        ));
        assert!(matches!(run(0, 0, 8), Err(CoreError::KOutOfRange { .. })));
        assert!(matches!(run(0, 3, 0), Err(CoreError::BadValue { .. })));
    }
}
