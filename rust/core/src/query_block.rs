//! Query blocks (knob `query_block`): the queries of a block walk the tree together, one level step each
//! per round, and a round's distance evaluations are grouped by the node whose children they measure, so
//! each child's row of V is read once per group instead of once per query (the query side of
//! batch_search.rs, on the register tile of canonical_block.rs).
//!
//! Every query keeps its own heap, frontier and k-th distance, and takes exactly the steps of the
//! per-query walk in perf mode (query.rs: `Walk::open_block` speculates, `Walk::close_block` replays): a
//! round opens every live query's next block of its step (each at its own level), evaluates every child any of them
//! gathered, and closes every block. Only where the distances come from changes. The block's query rows
//! of V are packed once per block, lanes of COLS queries to a panel; a group is the (node, child
//! position) runs that several queries gathered in the round, and its dot products are one tile pass of
//! the union of the runs' children against the panels of the lanes the group spans. Each dot product is
//! the canonical sequential sum, so each query's distance, finished from it with `metric::distance`'s
//! own epilogue, is bitwise the per-query walk's: answers, distance bits and counters are the same on
//! any block size, block order and thread count, and no distance is evaluated that the walk does not
//! evaluate (the dot products of lanes that did not gather a child are the tile's only spare work).
//!
//! The blocks are consecutive runs of `order` (covertreex computes a locality order: the Hilbert curve
//! of the query coordinates), one rayon task per block; each query's rows of the output are written only
//! from its block's results, so nothing depends on the thread count.

use rayon::prelude::*;

use crate::canonical_block::{Block, COLS};
use crate::counters::N_QUERY_COUNTERS;
use crate::errors::{check_distinct, check_sizes, CoreError, Result};
use crate::evaluate::Mode;
use crate::metric::{residual_from, scaled_r2, Metric};
use crate::query::{QueryOutput, Scratch, Totals, Walk};

/// How the queries are blocked: runs of `size` consecutive entries of `order`, a permutation of the
/// query positions.
#[derive(Debug, Clone, Copy)]
pub struct QueryBlocks<'a> {
    pub size: usize,
    pub order: &'a [i64],
}

impl QueryBlocks<'_> {
    pub(crate) fn check(&self, n_queries: usize) -> Result<()> {
        if self.size < 1 {
            return Err(CoreError::BadValue {
                what: "query_block",
                value: i64::try_from(self.size).unwrap_or(i64::MAX),
                allowed: ">= 1",
            });
        }
        check_sizes(&[(
            "block order length (one entry per query row)",
            n_queries,
            self.order.len(),
        )])?;
        check_distinct("block order", self.order, n_queries)
    }
}

/// One block's answers, in block order: its queries' positions, output rows and counter rows.
struct Answered {
    queries: Vec<usize>,
    indices: Vec<i64>,
    distances: Vec<f64>,
    counts: Vec<i64>,
    totals: Totals,
}

/// Blocks answered in parallel per worker thread before their rows are copied out: bounds the answers
/// held twice (the waves' cut never changes a result).
const WAVE: usize = 16;

/// Answer every query block by block (see the module docs).
pub(crate) fn run_blocks(walk: &Walk, out: &mut QueryOutput, blocks: &QueryBlocks) {
    let (k, slots) = (out.k, out.per_level.len());
    let order: Vec<usize> = blocks.order.iter().map(|&q| q as usize).collect();
    let wave = WAVE * rayon::current_num_threads();
    for wave in order.chunks(blocks.size.saturating_mul(wave)) {
        // Once the caller asks to stop, the blocks not begun are skipped and the wave is dropped (the
        // call returns Interrupted).
        let answered: Option<Vec<Answered>> = wave
            .par_chunks(blocks.size)
            .map_init(Lanes::default, |lanes, queries| {
                (!walk.stop.requested()).then(|| lanes.answer(walk, queries, k, slots))
            })
            .collect();
        let Some(answered) = answered else {
            return;
        };
        copy_out(answered, out);
    }
}

/// Write each block's rows to its queries' rows of the output and add its per-level sums.
fn copy_out(answered: Vec<Answered>, out: &mut QueryOutput) {
    let k = out.k;
    for block in answered {
        for (j, &q) in block.queries.iter().enumerate() {
            out.indices[q * k..(q + 1) * k].copy_from_slice(&block.indices[j * k..(j + 1) * k]);
            out.distances[q * k..(q + 1) * k].copy_from_slice(&block.distances[j * k..(j + 1) * k]);
            let (row, from) = (q * N_QUERY_COUNTERS, j * N_QUERY_COUNTERS);
            out.per_query[row..row + N_QUERY_COUNTERS]
                .copy_from_slice(&block.counts[from..from + N_QUERY_COUNTERS]);
        }
        block.totals.add_to(out);
    }
}

/// One worker's buffers: a walk per query of the block and the evaluation groups, reused across blocks.
#[derive(Default)]
struct Lanes {
    scratch: Vec<Scratch>,
    live: Vec<usize>,
    groups: Groups,
}

impl Lanes {
    fn answer(&mut self, walk: &Walk, queries: &[usize], k: usize, slots: usize) -> Answered {
        let b = queries.len();
        while self.scratch.len() < b {
            // Frontiers grow as needed: reserving the dataset's size per lane would cost b x N.
            self.scratch.push(Scratch::new(0, k));
        }
        let mut totals = Totals::new(slots);
        let mut counts = vec![0i64; b * N_QUERY_COUNTERS];
        let rows = |j: usize| j * N_QUERY_COUNTERS..(j + 1) * N_QUERY_COUNTERS;
        for (j, &q) in queries.iter().enumerate() {
            walk.start(q, &mut self.scratch[j], &mut totals, &mut counts[rows(j)]);
        }
        self.groups.start_block(walk, queries);
        loop {
            self.live.clear();
            for (j, &q) in queries.iter().enumerate() {
                let (scratch, counts) = (&mut self.scratch[j], &mut counts[rows(j)]);
                if walk.open_block(q, scratch, &mut totals, counts, true) {
                    self.live.push(j);
                }
            }
            if self.live.is_empty() {
                break;
            }
            let lanes = (queries, &self.live[..]);
            self.groups.evaluate(walk, lanes, &mut self.scratch);
            for &j in &self.live {
                let (scratch, counts) = (&mut self.scratch[j], &mut counts[rows(j)]);
                walk.close_block(queries[j], scratch, &mut totals, counts);
            }
        }
        let (mut indices, mut distances) = (vec![-1i64; b * k], vec![f64::INFINITY; b * k]);
        for (j, (row_i, row_d)) in indices
            .chunks_exact_mut(k)
            .zip(distances.chunks_exact_mut(k))
            .enumerate()
        {
            self.scratch[j].heap.write_sorted(row_i, row_d);
        }
        Answered {
            queries: queries.to_vec(),
            indices,
            distances,
            counts,
            totals,
        }
    }
}

/// A run of children one query gathered: the node, the child position, the query's lane and the run's
/// range in the lane's list of children to evaluate.
#[derive(Clone, Copy)]
struct Item {
    node: usize,
    pos: usize,
    lane: usize,
    start: usize,
    end: usize,
}

/// The evaluation of one round, by groups (buffers reused across rounds and blocks).
#[derive(Default)]
struct Groups {
    items: Vec<Item>,
    columns: Vec<usize>,
    /// Per lane, the distances of its children to evaluate, in its order.
    dists: Vec<Vec<f64>>,
    /// The block's query rows of V, packed once per block (residual metric).
    block: Block,
}

impl Groups {
    /// Pack the rows of V of a new block's queries (the residual metric's dot products read them in
    /// every group of every round).
    fn start_block(&mut self, walk: &Walk, queries: &[usize]) {
        if walk.data.metric == Metric::Residual {
            let rows: Vec<usize> = queries.iter().map(|&q| walk.origin(q).row).collect();
            let from = walk.origin(queries[0]).data;
            self.block.pack(from, &rows);
        }
    }

    /// Evaluate every child the live lanes gathered and hand each lane its distances.
    fn evaluate(
        &mut self,
        walk: &Walk,
        (queries, live): (&[usize], &[usize]),
        scratch: &mut [Scratch],
    ) {
        let data = walk.data;
        if data.metric != Metric::Residual {
            // Euclidean distances cost d terms, not m: nothing to share, each lane in lockstep.
            for &j in live {
                let from = walk.origin(queries[j]);
                scratch[j].children.evaluate(Mode::Perf, from, data);
            }
            return;
        }
        self.items.clear();
        self.dists.resize_with(scratch.len(), Vec::new);
        for &j in live {
            self.dists[j].resize(scratch[j].children.to_measure().len(), 0.0);
            let mut start = 0;
            for (node, pos, queued) in scratch[j].runs().filter(|run| run.2 > 0) {
                let end = start + queued;
                self.items.push(Item {
                    node,
                    pos,
                    lane: j,
                    start,
                    end,
                });
                start = end;
            }
        }
        self.items.sort_unstable_by_key(|i| (i.node, i.pos, i.lane));
        let items = std::mem::take(&mut self.items);
        for group in items.chunk_by(|a, b| (a.node, a.pos) == (b.node, b.pos)) {
            self.group(walk, queries, group, scratch);
        }
        self.items = items;
        for &j in live {
            scratch[j].children.fill(&self.dists[j]);
        }
    }

    /// Evaluate one group: the dot products of the union of its runs' children with the packed rows of
    /// the lanes it spans, then each lane's own distances from them (a lone lane: its own children in
    /// lockstep, nothing to share).
    fn group(&mut self, walk: &Walk, queries: &[usize], group: &[Item], scratch: &[Scratch]) {
        let data = walk.data;
        let measured =
            |item: &Item| &scratch[item.lane].children.to_measure()[item.start..item.end];
        if let [item] = group {
            let from = walk.origin(queries[item.lane]);
            let out = &mut self.dists[item.lane][item.start..item.end];
            Mode::Perf.distances(from.data, from.row, from.index, data, measured(item), out);
            return;
        }
        self.columns.clear();
        for item in group {
            self.columns.extend_from_slice(measured(item));
        }
        self.columns.sort_unstable();
        self.columns.dedup();
        // Items are sorted by lane: the group spans lanes first..=last.
        let (first, last) = (group[0].lane, group[group.len() - 1].lane);
        let offset = first - first % COLS;
        let dots = self.block.dots_with(data, &self.columns, first..last + 1);
        let width = dots.len() / self.columns.len();
        for item in group {
            let from = walk.origin(queries[item.lane]);
            let (qd, q) = (from.data, from.row);
            let out = &mut self.dists[item.lane][item.start..item.end];
            for (d, &c) in out.iter_mut().zip(measured(item)) {
                // Every gathered child is a column: the search cannot fail.
                let i = self.columns.binary_search(&c).unwrap_or_default();
                let dot = dots[i * width + item.lane - offset];
                *d = if from.index == c as i64 {
                    0.0
                } else {
                    residual_from(qd, scaled_r2(qd, q, data, c), dot, qd.p[q], data.p[c])
                };
            }
        }
    }
}
