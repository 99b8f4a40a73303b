//! Query blocks (knob `query_block`): the queries of a block walk the tree together, one level step each
//! per round, and a round's distance evaluations are grouped by the node whose children they measure, so
//! each child's row of V is read once per group instead of once per query (the query side of
//! batch_search.rs, on the same register-tiled block, canonical_block.rs).
//!
//! Every query keeps its own heap, frontier and k-th distance, and takes exactly the steps of the
//! per-query walk in perf mode (query.rs: `Walk::open_step` speculates, `Walk::close_step` replays): a
//! round opens every live query's step (each at its own level), evaluates every gathered child of every
//! query, and closes every step. Only where the distances come from changes: a group is the (node, child
//! position) runs that several queries gathered, evaluated as one block of the queries' rows against the
//! union of the run's children, and every value is bitwise `metric::distance` (canonical_block.rs), so
//! answers, distance bits and counters are those of the per-query walk on any block size, block order
//! and thread count. The cells of a group's block that a query did not gather (a child its predecessor
//! pruning skips, or the copy of a node it is not) are evaluated and thrown away: they are counted in
//! `discarded_evaluations`, like perf mode's speculation, never in the counters.
//!
//! The blocks are consecutive runs of `order` (covertreex computes a locality order: the Hilbert curve
//! of the query coordinates), one rayon task per block; each query's rows of the output are written only
//! from its block's results, so nothing depends on the thread count.

use rayon::prelude::*;

use crate::canonical_block::Block;
use crate::counters::N_QUERY_COUNTERS;
use crate::errors::{check_distinct, check_sizes, CoreError, Result};
use crate::evaluate::Mode;
use crate::metric::Metric;
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

/// Answer every query block by block (see the module docs).
pub(crate) fn run_blocks(walk: &Walk, out: &mut QueryOutput, blocks: &QueryBlocks) {
    let (k, slots) = (out.k, out.per_level.len());
    let order: Vec<usize> = blocks.order.iter().map(|&q| q as usize).collect();
    let answered: Vec<Answered> = order
        .par_chunks(blocks.size)
        .map_init(Lanes::default, |lanes, queries| {
            lanes.answer(walk, queries, k, slots)
        })
        .collect();
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
    levels: Vec<i64>,
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
        self.levels.resize(b, 0);
        let mut totals = Totals::new(slots);
        let mut counts = vec![0i64; b * N_QUERY_COUNTERS];
        let rows = |j: usize| j * N_QUERY_COUNTERS..(j + 1) * N_QUERY_COUNTERS;
        for (j, &q) in queries.iter().enumerate() {
            walk.start(q, &mut self.scratch[j], &mut totals, &mut counts[rows(j)]);
        }
        loop {
            self.live.clear();
            self.live
                .extend((0..b).filter(|&j| !self.scratch[j].front.is_empty()));
            if self.live.is_empty() {
                break;
            }
            for &j in &self.live {
                let (scratch, counts) = (&mut self.scratch[j], &mut counts[rows(j)]);
                self.levels[j] = walk.open_step(queries[j], scratch, &mut totals, counts, true);
            }
            let lanes = (queries, &self.live[..]);
            totals.discarded += self.groups.evaluate(walk, lanes, &mut self.scratch);
            for &j in &self.live {
                let (scratch, counts) = (&mut self.scratch[j], &mut counts[rows(j)]);
                walk.close_step(queries[j], scratch, self.levels[j], &mut totals, counts);
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

/// The evaluation of one round, by groups (buffers reused across rounds).
#[derive(Default)]
struct Groups {
    items: Vec<Item>,
    columns: Vec<usize>,
    rows: Vec<usize>,
    indices: Vec<i64>,
    block_out: Vec<f64>,
    /// Per lane, the distances of its children to evaluate, in its order.
    dists: Vec<Vec<f64>>,
    block: Option<Block>,
}

impl Groups {
    /// Evaluate every child the live lanes gathered and hand each lane its distances; returns the
    /// distances evaluated that no lane gathered.
    fn evaluate(
        &mut self,
        walk: &Walk,
        (queries, live): (&[usize], &[usize]),
        scratch: &mut [Scratch],
    ) -> i64 {
        let data = walk.data;
        if data.metric != Metric::Residual {
            // Euclidean distances cost d terms, not m: nothing to share, each lane in lockstep.
            for &j in live {
                let from = walk.origin(queries[j]);
                scratch[j].children.evaluate(Mode::Perf, from, data);
            }
            return 0;
        }
        self.items.clear();
        self.dists.resize_with(scratch.len(), Vec::new);
        for &j in live {
            let (measured, runs) = scratch[j].children.to_measure();
            self.dists[j].resize(measured.len(), 0.0);
            let mut start = 0;
            for run in runs {
                self.items.push(Item {
                    node: run.node,
                    pos: run.pos,
                    lane: j,
                    start,
                    end: run.end,
                });
                start = run.end;
            }
        }
        self.items.sort_unstable_by_key(|i| (i.node, i.pos, i.lane));
        let mut unused = 0;
        let items = std::mem::take(&mut self.items);
        for group in items.chunk_by(|a, b| (a.node, a.pos) == (b.node, b.pos)) {
            unused += self.group(walk, queries, group, scratch);
        }
        self.items = items;
        for &j in live {
            scratch[j].children.fill(&self.dists[j]);
        }
        unused
    }

    /// Evaluate one group: its queries' rows against the union of their runs' children, one block
    /// (a lone query: its own children in lockstep, nothing to share). Returns the unused cells.
    fn group(
        &mut self,
        walk: &Walk,
        queries: &[usize],
        group: &[Item],
        scratch: &[Scratch],
    ) -> i64 {
        let data = walk.data;
        let measured =
            |item: &Item| &scratch[item.lane].children.to_measure().0[item.start..item.end];
        if let [item] = group {
            let from = walk.origin(queries[item.lane]);
            let out = &mut self.dists[item.lane][item.start..item.end];
            Mode::Perf.distances(from.data, from.row, from.index, data, measured(item), out);
            return 0;
        }
        self.columns.clear();
        for item in group {
            self.columns.extend_from_slice(measured(item));
        }
        self.columns.sort_unstable();
        self.columns.dedup();
        self.rows.clear();
        self.indices.clear();
        for item in group {
            let from = walk.origin(queries[item.lane]);
            self.rows.push(from.row);
            self.indices.push(from.index);
        }
        let cols = self.columns.len();
        self.block_out.resize(group.len() * cols, 0.0);
        let from = walk.origin(queries[group[0].lane]).data;
        self.block.get_or_insert_with(Block::new).distances(
            from,
            (&self.rows, &self.indices),
            data,
            &self.columns,
            &mut self.block_out,
        );
        let mut used = 0;
        for (i, item) in group.iter().enumerate() {
            let row = &self.block_out[i * cols..(i + 1) * cols];
            let out = &mut self.dists[item.lane][item.start..item.end];
            for (d, c) in out.iter_mut().zip(measured(item)) {
                // Every gathered child is a column: the search cannot fail.
                let j = self.columns.binary_search(c).unwrap_or_default();
                *d = row[j];
            }
            used += item.end - item.start;
        }
        (group.len() * cols - used) as i64
    }
}
