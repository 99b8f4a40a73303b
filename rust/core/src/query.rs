//! Exact k-NN query: the level-synchronous walk of covertreex/engines/gold/query.py, step for step, with
//! the same per-level and per-query counters (DESIGN section 7).
//!
//! Each step expands, across the whole frontier, the children at the highest level not yet expanded;
//! every child's distance is evaluated (or reused, for an exact copy of its parent) and offered to a
//! bounded heap ordered by (distance, index). A frontier node is dropped when rounding-safe bounds prove
//! its subtree cannot beat the k-th distance. Queries run in parallel chunks on rayon; each query owns
//! its output and counter rows, so nothing depends on the thread count. The schedule
//! (crate::schedule) changes which work is done exactly as it does in gold, never the answer.

use std::cmp::Ordering;
use std::collections::HashMap;
use std::ops::Range;
use std::sync::{Arc, Mutex, OnceLock};

use rayon::prelude::*;

use crate::best_first::{BestFirst, Queue};
use crate::blocks::{first_width, settled};
use crate::children::{Children, Origin, Pending, Span};
use crate::counters::{
    BLOCKS, CACHE_SKIPS, EVALUATIONS, FRONTIER, HEAP_PUSHES, N_LEVEL_COUNTERS, N_QUERY_COUNTERS,
    PRUNES, Q_BLOCKS, Q_CACHE_SKIPS, Q_DEDUPE, Q_EARLY_STOPS, Q_EMPTY_BLOCKS, Q_EVALUATIONS,
    Q_HEAP_PUSHES, Q_PRUNES, Q_STEPS,
};
use crate::errors::{check_sizes, filled, CoreError, Result};
use crate::evaluate::Mode;
use crate::heap::Heap;
use crate::metric::{can_prune, distance, MetricData};
use crate::query_block::{run_blocks, QueryBlocks};
use crate::schedule::Schedule;
use crate::stop::Stop;
use crate::tree::TreeView;

/// Events counted both in their level's row and in the query's row: (level column, query column).
pub(crate) const EVALUATED: (usize, usize) = (EVALUATIONS, Q_EVALUATIONS);
pub(crate) const PUSHED: (usize, usize) = (HEAP_PUSHES, Q_HEAP_PUSHES);
pub(crate) const PRUNED: (usize, usize) = (PRUNES, Q_PRUNES);
pub(crate) const SKIPPED: (usize, usize) = (CACHE_SKIPS, Q_CACHE_SKIPS);
pub(crate) const BLOCKED: (usize, usize) = (BLOCKS, Q_BLOCKS);
/// Queries per parallel task.
const CHUNK: usize = 16;

/// The query rows (covertreex.metrics.QuerySet): row `rows[i]` of `data`, whose dataset index is
/// `dataset_index[i]` (-1 for an outside point), may only return indices below `limit[i]`.
#[derive(Debug, Clone, Copy)]
pub struct QueryBatch<'a> {
    pub data: MetricData<'a>,
    pub rows: &'a [i64],
    pub dataset_index: &'a [i64],
    pub limit: &'a [i64],
}

/// Answers and counters of one batch, row-major.
#[derive(Debug, Clone, PartialEq)]
pub struct QueryOutput {
    pub n_queries: usize,
    pub k: usize,
    /// n_queries x k, padded with -1.
    pub indices: Vec<i64>,
    /// n_queries x k, padded with inf.
    pub distances: Vec<f64>,
    /// n_slots x N_LEVEL_COUNTERS, summed over queries.
    pub per_level: Vec<i64>,
    /// n_queries x N_QUERY_COUNTERS.
    pub per_query: Vec<i64>,
    /// Distances perf mode evaluated speculatively for nodes then pruned (0 in parity mode); not part
    /// of the counters above, which count what the algorithm uses.
    pub discarded_evaluations: i64,
}

/// A frontier node: its distance to the query and the position of its next unexpanded child.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Entry {
    node: usize,
    dist: f64,
    pos: usize,
}

impl Entry {
    /// (node, distance, next child position), as `Children::gather` takes it.
    fn at(&self) -> (usize, f64, usize) {
        (self.node, self.dist, self.pos)
    }

    /// The frontier entry of `node` at its first child, if it has children.
    fn expandable(tree: &TreeView, node: usize, dist: f64) -> Option<Entry> {
        let (start, end) = tree.child_range(node);
        (end > start).then_some(Entry {
            node,
            dist,
            pos: start,
        })
    }
}

/// Buffers reused across the queries of one worker.
pub(crate) struct Scratch {
    pub(crate) heap: Heap,
    pub(crate) front: Vec<Entry>,
    kept: Vec<Entry>,
    new: Vec<Entry>,
    pub(crate) children: Children,
    /// Per entry of the open block: its children gathered when the block was opened (perf mode), or None.
    spans: Vec<Option<Span>>,
    /// The best-first walk's queue of subtrees.
    queue: Queue,
    /// The level step in progress and its open block (None between steps).
    step: Option<Step>,
}

/// A level step in progress: its level, its blocks' base and next width, and the frontier positions of
/// the block open now (or last closed).
#[derive(Debug, Clone)]
pub(crate) struct Step {
    level: i64,
    base: usize,
    width: usize,
    block: Range<usize>,
}

impl Scratch {
    /// The open block's speculated runs of children, in queue order: (frontier node, child position, how
    /// many of the run's children are queued for evaluation, i.e. are neither copies nor skipped).
    pub(crate) fn runs(&self) -> impl Iterator<Item = (usize, usize, usize)> + '_ {
        let children = &self.children;
        let block = self.step.as_ref().map_or(0..0, |step| step.block.clone());
        self.front[block]
            .iter()
            .zip(&self.spans)
            .filter_map(move |(e, span)| {
                let span = children.span((*span)?);
                let queued = span.iter().filter(|c| !c.copy && !c.skipped).count();
                Some((e.node, e.pos, queued))
            })
    }

    /// Buffers for `k` neighbours, the frontier's room for `n` nodes reserved.
    pub(crate) fn new(n: usize, k: usize) -> Scratch {
        Scratch {
            heap: Heap::new(k),
            front: Vec::with_capacity(n),
            kept: Vec::with_capacity(n),
            new: Vec::with_capacity(n),
            children: Children::default(),
            spans: Vec::with_capacity(n),
            queue: Queue::default(),
            step: None,
        }
    }
}

/// Per-chunk sums: the per-level counters and the distances perf mode evaluated but did not use.
pub(crate) struct Totals {
    pub(crate) levels: Vec<i64>,
    pub(crate) discarded: i64,
}

impl Totals {
    pub(crate) fn new(slots: usize) -> Totals {
        Totals {
            levels: vec![0; slots],
            discarded: 0,
        }
    }

    /// Add these sums to the batch's.
    pub(crate) fn add_to(self, out: &mut QueryOutput) {
        for (total, v) in out.per_level.iter_mut().zip(self.levels) {
            *total += v;
        }
        out.discarded_evaluations += self.discarded;
    }
}

/// Count one event in its level's row `step` and in the query's row `counts`.
pub(crate) fn tally(
    step: &mut [i64],
    counts: &mut [i64],
    (level_column, query_column): (usize, usize),
) {
    step[level_column] += 1;
    counts[query_column] += 1;
}

/// Everything shared by the queries of one batch (checked once).
pub(crate) struct Walk<'a> {
    mode: Mode,
    schedule: Schedule,
    pub(crate) tree: &'a TreeView<'a>,
    pub(crate) data: &'a MetricData<'a>,
    queries: &'a QueryBatch<'a>,
    /// Checked before each query (each block of them): the rest are skipped once it is requested.
    pub(crate) stop: &'a Stop,
}

impl Walk<'_> {
    /// Query `q`'s row, index, and the subtrees it enters.
    pub(crate) fn origin(&self, q: usize) -> Origin<'_> {
        Origin {
            data: &self.queries.data,
            row: self.queries.rows[q] as usize,
            index: self.queries.dataset_index[q],
            // Every subtree is entered unless predecessor pruning skips those with no eligible index.
            entry: if self.schedule.predecessor_pruning {
                self.queries.limit[q]
            } else {
                self.tree.n_points() as i64
            },
            level_cache: self.schedule.level_cache,
        }
    }

    /// Answer query `q` into its output rows; add its per-level counts to `totals`.
    fn answer(
        &self,
        q: usize,
        scratch: &mut Scratch,
        out_i: &mut [i64],
        out_d: &mut [f64],
        totals: &mut Totals,
        counts: &mut [i64],
    ) {
        self.start(q, scratch, totals, counts);
        let speculate = self.mode == Mode::Perf;
        while self.open_block(q, scratch, totals, counts, speculate) {
            if speculate {
                scratch
                    .children
                    .evaluate(self.mode, self.origin(q), self.data);
            }
            self.close_block(q, scratch, totals, counts);
        }
        scratch.heap.write_sorted(out_i, out_d);
    }

    /// Start query `q`: an empty heap, the root evaluated and offered, and the frontier of the level walk
    /// (left empty when the answer is already complete: no eligible subtree, or the best-first walk).
    pub(crate) fn start(
        &self,
        q: usize,
        scratch: &mut Scratch,
        totals: &mut Totals,
        counts: &mut [i64],
    ) {
        let (tree, data) = (self.tree, self.data);
        let limit = self.queries.limit[q];
        let from = self.origin(q);
        let Scratch {
            heap,
            front,
            children,
            queue,
            step,
            ..
        } = scratch;
        heap.clear();
        front.clear();
        *step = None;
        let root = tree.root();
        if tree.subtree_min[root] >= from.entry {
            return;
        }
        let d = distance(from.data, from.row, from.index, data, root);
        let top = &mut totals.levels[..N_LEVEL_COUNTERS];
        tally(top, counts, EVALUATED);
        if (root as i64) < limit && heap.offer(d, root as i64) {
            tally(top, counts, PUSHED);
        }
        if self.schedule.best_first {
            let walk = BestFirst {
                tree,
                data,
                from,
                limit,
                mode: self.mode,
                early_stop: self.schedule.early_stop,
            };
            walk.walk(d, heap, queue, children, &mut totals.levels, counts);
            return;
        }
        front.extend(Entry::expandable(tree, root, d));
    }

    /// Open query `q`'s next block, or return false when its walk is over. A new step (none open)
    /// chooses its level, orders the frontier and counts itself; its blocks are the whole frontier, or
    /// runs sized from it under `block_sizing`. When `speculate`, the children of every entry of the
    /// block not already prunable are gathered (the k-th distance only shrinks during the block, so
    /// those stay pruned, and the level cache then skips a superset) for one evaluation before
    /// [`Walk::close_block`].
    pub(crate) fn open_block(
        &self,
        q: usize,
        scratch: &mut Scratch,
        totals: &mut Totals,
        counts: &mut [i64],
        speculate: bool,
    ) -> bool {
        let tree = self.tree;
        let from = self.origin(q);
        let Scratch {
            heap,
            front,
            kept,
            new,
            children,
            spans,
            step,
            ..
        } = scratch;
        if front.is_empty() {
            return false;
        }
        let open = match step.take() {
            Some(open) => open,
            None => {
                let mut level = tree.levels[tree.child(front[0].pos)];
                for e in &front[1..] {
                    let candidate = tree.levels[tree.child(e.pos)];
                    if candidate > level {
                        level = candidate;
                    }
                }
                if self.schedule.child_reordering {
                    nearest_first(tree, front);
                }
                counts[Q_STEPS] += 1;
                kept.clear();
                new.clear();
                let base = if self.schedule.block_sizing {
                    first_width(front.len())
                } else {
                    front.len()
                };
                Step {
                    level,
                    base,
                    width: base,
                    block: 0..0,
                }
            }
        };
        let start = open.block.end;
        let block = start..front.len().min(start + open.width);
        let at = tree.slot(open.level) * N_LEVEL_COUNTERS;
        let row = &mut totals.levels[at..at + N_LEVEL_COUNTERS];
        row[FRONTIER] += block.len() as i64;
        tally(row, counts, BLOCKED);
        children.clear();
        spans.clear();
        if speculate {
            let kth = heap.is_full().then(|| heap.worst_distance());
            for e in &front[block.clone()] {
                let sure = kth.is_some_and(|t| self.prunable(from.data, e, t));
                let gathered =
                    (!sure).then(|| children.gather(tree, e.at(), open.level, &from, kth));
                spans.push(gathered);
            }
        }
        *step = Some(Step { block, ..open });
        true
    }

    /// Can frontier entry `e` be dropped at k-th distance `threshold`?
    fn prunable(&self, qd: &MetricData, e: &Entry, threshold: f64) -> bool {
        let radius = self.tree.radius[e.node];
        can_prune(self.data.metric, qd.slack, e.dist, radius, threshold)
    }

    /// Close query `q`'s open block: each of its entries in order is pruned at the current k-th
    /// distance or its children (gathered and evaluated now unless speculated; those the level cache
    /// skips stay unevaluated) are offered and queued. A block with no heap push doubles the next one
    /// (`block_sizing`) and, when it was pruned whole, lets the early-stop guard end the walk. After
    /// the step's last block the next frontier is set.
    pub(crate) fn close_block(
        &self,
        q: usize,
        scratch: &mut Scratch,
        totals: &mut Totals,
        counts: &mut [i64],
    ) {
        let tree = self.tree;
        let limit = self.queries.limit[q];
        let from = self.origin(q);
        let Scratch {
            heap,
            front,
            kept,
            new,
            children,
            spans,
            step,
            ..
        } = scratch;
        let Some(mut open) = step.take() else {
            return;
        };
        let level = open.level;
        let at = tree.slot(level) * N_LEVEL_COUNTERS;
        let row = &mut totals.levels[at..at + N_LEVEL_COUNTERS];
        let (pushes, prunes, evaluations) = (
            counts[Q_HEAP_PUSHES],
            counts[Q_PRUNES],
            counts[Q_EVALUATIONS],
        );
        for (j, e) in front[open.block.clone()].iter().enumerate() {
            if heap.is_full() && self.prunable(from.data, e, heap.worst_distance()) {
                tally(row, counts, PRUNED);
                continue;
            }
            let kth = (from.level_cache && heap.is_full()).then(|| heap.worst_distance());
            // Children gathered ahead were skipped against the block's k-th distance; the node's own,
            // possibly smaller, may skip more of them.
            let ahead = spans.get(j).copied().flatten();
            let recheck = ahead.is_some() && from.level_cache;
            let span = match ahead {
                Some(span) => span,
                None => {
                    let span = children.gather(tree, e.at(), level, &from, kth);
                    children.evaluate(self.mode, from, self.data);
                    span
                }
            };
            for child in children.span(span) {
                let skipped = recheck && from.skips(tree, e.dist, child.node, level, kth);
                if use_child(child, skipped, limit, heap, row, counts) {
                    new.extend(Entry::expandable(tree, child.node, child.dist));
                }
            }
            if span.next < tree.child_range(e.node).1 {
                kept.push(Entry {
                    pos: span.next,
                    ..*e
                });
            }
        }
        let used = counts[Q_EVALUATIONS] - evaluations;
        totals.discarded += children.evaluated() as i64 - used;
        let pruned_whole = counts[Q_PRUNES] - prunes == open.block.len() as i64;
        let rest = open.block.end..front.len();
        if counts[Q_HEAP_PUSHES] > pushes {
            open.width = open.base;
        } else {
            counts[Q_EMPTY_BLOCKS] += 1;
            open.width *= 2;
            // The guard runs after a block pruned whole (so the heap is full), when something is left.
            let left = !rest.is_empty() || !kept.is_empty() || !new.is_empty();
            if self.schedule.early_stop && pruned_whole && left {
                let entries = front[rest.clone()]
                    .iter()
                    .chain(kept.iter())
                    .chain(new.iter());
                let guard = (self.data.metric, from.data.slack);
                let kth = heap.worst_distance();
                if settled(entries.map(|e| (e.node, e.dist)), tree, guard, kth, counts) {
                    counts[Q_EARLY_STOPS] += 1;
                    front.clear();
                    return;
                }
            }
        }
        if rest.is_empty() {
            // The next frontier: the nodes with children left, then the new ones, in that order.
            std::mem::swap(front, kept);
            front.extend_from_slice(new);
        } else {
            *step = Some(open);
        }
    }
}

/// Count one gathered child in its level's `row` and the query's `counts` and offer it to the heap when
/// its index is below `limit`; false (nothing offered) when the level cache skipped it, at gathering or
/// now (`skipped`). A copy reuses its parent's distance (a dedupe hit), any other child was evaluated.
/// Shared by the level walk and the best-first walk, so both count a child alike.
pub(crate) fn use_child(
    child: &Pending,
    skipped: bool,
    limit: i64,
    heap: &mut Heap,
    row: &mut [i64],
    counts: &mut [i64],
) -> bool {
    if child.skipped || skipped {
        tally(row, counts, SKIPPED);
        return false;
    }
    if child.copy {
        counts[Q_DEDUPE] += 1;
    } else {
        tally(row, counts, EVALUATED);
    }
    if (child.node as i64) < limit && heap.offer(child.dist, child.node as i64) {
        tally(row, counts, PUSHED);
    }
    true
}

/// Order the frontier by (d(q, node) - radius[node], node): the nearest subtrees are expanded first, so
/// the k-th distance tightens before far nodes are checked. Any order is exact (see gold's query.py).
fn nearest_first(tree: &TreeView, front: &mut [Entry]) {
    let bound = |e: &Entry| e.dist - tree.radius[e.node];
    front.sort_unstable_by(|a, b| {
        // Bounds are finite; -0.0 and 0.0 compare equal, as in NumPy's sort.
        let by_bound = bound(a).partial_cmp(&bound(b)).unwrap_or(Ordering::Equal);
        by_bound.then(a.node.cmp(&b.node))
    });
}

fn check_indices(what: &'static str, values: &[i64], low: i64, bound: usize) -> Result<()> {
    match values.iter().position(|&v| v < low || v >= bound as i64) {
        Some(position) => Err(CoreError::IndexOutOfRange {
            what,
            position,
            index: values[position],
            bound,
        }),
        None => Ok(()),
    }
}

fn check_batch(tree: &TreeView, data: &MetricData, queries: &QueryBatch, k: i64) -> Result<()> {
    check_queries(data, queries, k)?;
    tree.check(data.n_points())
}

/// Check the indexed data, the query rows and k (everything a batch needs but the tree).
pub(crate) fn check_queries(data: &MetricData, queries: &QueryBatch, k: i64) -> Result<()> {
    check_queries_given(data, queries, k, false)
}

/// [`check_queries`], where `v_finite` says the caller proves the indexed V finite itself (the dense
/// path, from the row norms it takes anyway, before any answer is returned), so that V is not read
/// once more here.
pub(crate) fn check_queries_given(
    data: &MetricData,
    queries: &QueryBatch,
    k: i64,
    v_finite: bool,
) -> Result<()> {
    data.check_shapes()?;
    data.check_values(v_finite)?;
    // Checking the same arrays again would read all of V once more on every call.
    if !queries.data.same_as(data) {
        queries.data.check()?;
    }
    check_query_rows(data, queries, k)
}

/// The part of [`check_queries_given`] that reads no value of the data: the query data fits the indexed
/// data, one dataset index and limit per query row, rows and indices in range, and k.
pub(crate) fn check_query_rows(data: &MetricData, queries: &QueryBatch, k: i64) -> Result<()> {
    queries.data.check_compatible(data)?;
    let n_q = queries.rows.len();
    check_sizes(&[
        (
            "dataset_index length (one per query row)",
            n_q,
            queries.dataset_index.len(),
        ),
        ("limit length (one per query row)", n_q, queries.limit.len()),
    ])?;
    check_indices("rows", queries.rows, 0, queries.data.n_points())?;
    check_indices("dataset_index", queries.dataset_index, -1, data.n_points())?;
    if k < 1 {
        return Err(CoreError::KOutOfRange {
            k,
            reason: "must be >= 1",
        });
    }
    Ok(())
}

/// Worker threads of rayon's global pool, which runs every batch given no `threads` (RAYON_NUM_THREADS,
/// else one per core).
/// An absurd RAYON_NUM_THREADS is an error, as for any use of the global pool.
pub fn default_threads() -> Result<usize> {
    require_sane_global_pool()?;
    Ok(rayon::current_num_threads())
}

/// CPUs this process may run on: the most worker threads a batch may ask for.
pub fn available_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// Called before any work runs on rayon's global pool, which takes its size from RAYON_NUM_THREADS when
/// first used: an absurd value would start that many OS threads, so it is refused like an absurd `threads`.
pub(crate) fn require_sane_global_pool() -> Result<()> {
    // The variable first: counting the CPUs reads cgroup files (8.5 us, a third of a one-row query's call).
    let Ok(text) = std::env::var("RAYON_NUM_THREADS") else {
        return Ok(());
    };
    let cpus = available_threads();
    // rayon reads the value as usize::from_str does and silently takes one thread per CPU for anything
    // else; only the empty value, an unset variable in effect, is left to it.
    match text.parse::<usize>() {
        Ok(size) if size > cpus => Err(CoreError::BadValue {
            what: "RAYON_NUM_THREADS",
            value: i64::try_from(size).unwrap_or(i64::MAX),
            allowed: "at most the number of CPUs this process may use (0 or unset: one per CPU)",
        }),
        Err(_) if !text.is_empty() => Err(CoreError::BadText {
            what: "RAYON_NUM_THREADS",
            text,
            allowed: "a whole number of threads, digits only, at most the number of CPUs this process may \
                      use (0 or unset: one per CPU)",
        }),
        _ => Ok(()),
    }
}

/// `work` run on the shared pool of `threads` workers (None: rayon's global pool, after the
/// `RAYON_NUM_THREADS` check): everything rayon does inside it (norms, tiles, rows) uses that pool's
/// workers and no others. A count above the CPUs this process may use is an error.
pub fn on_pool<T: Send>(threads: Option<i64>, work: impl FnOnce() -> T + Send) -> Result<T> {
    Ok(run_on(thread_pool(threads)?, work))
}

/// `work` run on `pool` (a [`thread_pool`]), or on rayon's global pool for None.
pub(crate) fn run_on<T: Send>(
    pool: Option<Arc<rayon::ThreadPool>>,
    work: impl FnOnce() -> T + Send,
) -> T {
    match pool {
        Some(pool) => pool.install(work),
        None => work(),
    }
}

/// The pool the batch runs on: the shared pool of `threads` workers (built on first use, then reused by
/// every later call asking for that many), or None for rayon's global pool. At most
/// [`available_threads`] workers: more would only add OS threads competing for the same cores.
pub(crate) fn thread_pool(threads: Option<i64>) -> Result<Option<Arc<rayon::ThreadPool>>> {
    static POOLS: OnceLock<Mutex<HashMap<usize, Arc<rayon::ThreadPool>>>> = OnceLock::new();
    let Some(threads) = threads else {
        return require_sane_global_pool().map(|()| None);
    };
    if threads < 1 || threads as u64 > available_threads() as u64 {
        return Err(CoreError::BadValue {
            what: "threads",
            value: threads,
            allowed: "between 1 and the number of CPUs this process may use (or None for all)",
        });
    }
    let threads = threads as usize;
    let mut pools = POOLS
        .get_or_init(Mutex::default)
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    if let Some(pool) = pools.get(&threads) {
        return Ok(Some(Arc::clone(pool)));
    }
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .map_err(|e| CoreError::ThreadPool {
            reason: e.to_string(),
        })?;
    let pool = Arc::new(pool);
    pools.insert(threads, Arc::clone(&pool));
    Ok(Some(pool))
}

/// Answer every query of the batch: the k nearest indexed points by (distance, index), with counters.
/// `threads` = None runs on rayon's global pool (RAYON_NUM_THREADS); results never depend on it, nor
/// on the mode, nor on the schedule, nor on `blocks` (query blocks, query_block.rs: perf mode's level
/// walk only; parity mode keeps gold's order and best-first its own walk). `stop` ends the call early
/// (between queries).
#[allow(clippy::too_many_arguments)]
pub fn query_batch(
    tree: &TreeView,
    data: &MetricData,
    queries: &QueryBatch,
    k: i64,
    threads: Option<i64>,
    mode: Mode,
    schedule: Schedule,
    blocks: Option<QueryBlocks>,
    stop: &Stop,
) -> Result<QueryOutput> {
    check_batch(tree, data, queries, k)?;
    if let Some(blocks) = &blocks {
        blocks.check(queries.rows.len())?;
    }
    let blocks = blocks.filter(|_| mode == Mode::Perf && !schedule.best_first);
    let n_q = queries.rows.len();
    let slots = tree.n_slots() * N_LEVEL_COUNTERS;
    let cells = n_q.checked_mul(k as usize);
    let mut out = QueryOutput {
        n_queries: n_q,
        k: k as usize,
        indices: filled(cells, -1i64, k)?,
        distances: filled(cells, f64::INFINITY, k)?,
        per_level: vec![0; slots],
        per_query: vec![0; n_q * N_QUERY_COUNTERS],
        discarded_evaluations: 0,
    };
    if n_q == 0 {
        return Ok(out);
    }
    let walk = Walk {
        mode,
        schedule,
        tree,
        data,
        queries,
        stop,
    };
    let run = |out: &mut QueryOutput| match &blocks {
        Some(blocks) => run_blocks(&walk, out, blocks),
        None => run_chunks(&walk, out),
    };
    on_pool(threads, || run(&mut out))?;
    stop.check()?;
    Ok(out)
}

fn run_chunks(walk: &Walk, out: &mut QueryOutput) {
    let (k, n) = (out.k, walk.data.n_points());
    let slots = out.per_level.len();
    let sums: Vec<Totals> = out
        .indices
        .par_chunks_mut(CHUNK.saturating_mul(k))
        .zip(out.distances.par_chunks_mut(CHUNK.saturating_mul(k)))
        .zip(out.per_query.par_chunks_mut(CHUNK * N_QUERY_COUNTERS))
        .enumerate()
        .map_init(
            || Scratch::new(n, k),
            |scratch, (chunk, ((out_i, out_d), counts))| {
                let mut totals = Totals::new(slots);
                let rows = out_i
                    .chunks_mut(k)
                    .zip(out_d.chunks_mut(k))
                    .zip(counts.chunks_mut(N_QUERY_COUNTERS));
                for (j, ((row_i, row_d), row_c)) in rows.enumerate() {
                    if walk.stop.requested() {
                        break;
                    }
                    walk.answer(chunk * CHUNK + j, scratch, row_i, row_d, &mut totals, row_c);
                }
                totals
            },
        )
        .collect();
    for chunk in sums {
        chunk.add_to(out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_pool_per_thread_count_is_reused_across_calls() {
        let first = thread_pool(Some(1)).unwrap().unwrap();
        let again = thread_pool(Some(1)).unwrap().unwrap();
        assert!(Arc::ptr_eq(&first, &again));
        assert_eq!(first.current_num_threads(), 1);
        assert!(thread_pool(None).unwrap().is_none());
    }
}
