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
use std::sync::{Arc, Mutex, OnceLock};

use rayon::prelude::*;

use crate::best_first::{BestFirst, Queue};
use crate::blocks::{first_width, settled};
use crate::children::{Children, Origin, Span};
use crate::counters::{
    BLOCKS, CACHE_SKIPS, EVALUATIONS, FRONTIER, HEAP_PUSHES, N_LEVEL_COUNTERS, N_QUERY_COUNTERS,
    PRUNES, Q_BLOCKS, Q_CACHE_SKIPS, Q_DEDUPE, Q_EARLY_STOPS, Q_EMPTY_BLOCKS, Q_EVALUATIONS,
    Q_HEAP_PUSHES, Q_PRUNES, Q_STEPS,
};
use crate::errors::{check_sizes, filled, CoreError, Result};
use crate::evaluate::Mode;
use crate::heap::Heap;
use crate::metric::{can_prune, distance, MetricData};
use crate::schedule::Schedule;
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
struct Entry {
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
struct Scratch {
    heap: Heap,
    front: Vec<Entry>,
    kept: Vec<Entry>,
    new: Vec<Entry>,
    children: Children,
    /// Per frontier node: its children gathered ahead of the step (perf mode), or None.
    spans: Vec<Option<Span>>,
    /// The best-first walk's queue of subtrees.
    queue: Queue,
}

impl Scratch {
    fn new(n: usize, k: usize) -> Scratch {
        Scratch {
            heap: Heap::new(k),
            front: Vec::with_capacity(n),
            kept: Vec::with_capacity(n),
            new: Vec::with_capacity(n),
            children: Children::default(),
            spans: Vec::with_capacity(n),
            queue: Queue::default(),
        }
    }
}

/// Per-chunk sums: the per-level counters and the distances perf mode evaluated but did not use.
struct Totals {
    levels: Vec<i64>,
    discarded: i64,
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
struct Walk<'a> {
    mode: Mode,
    schedule: Schedule,
    tree: &'a TreeView<'a>,
    data: &'a MetricData<'a>,
    queries: &'a QueryBatch<'a>,
}

impl Walk<'_> {
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
        let (tree, data, qd) = (self.tree, self.data, &self.queries.data);
        let limit = self.queries.limit[q];
        let from = Origin {
            data: qd,
            row: self.queries.rows[q] as usize,
            index: self.queries.dataset_index[q],
            // Every subtree is entered unless predecessor pruning skips those with no eligible index.
            entry: if self.schedule.predecessor_pruning {
                limit
            } else {
                tree.n_points() as i64
            },
            level_cache: self.schedule.level_cache,
        };
        let Scratch {
            heap,
            front,
            kept,
            new,
            children,
            spans,
            queue,
        } = scratch;
        let prunable = |e: &Entry, threshold: f64| {
            can_prune(
                data.metric,
                qd.slack,
                e.dist,
                tree.radius[e.node],
                threshold,
            )
        };
        heap.clear();
        let root = tree.root();
        if tree.subtree_min[root] >= from.entry {
            heap.write_sorted(out_i, out_d);
            return;
        }
        let d = distance(qd, from.row, from.index, data, root);
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
            heap.write_sorted(out_i, out_d);
            return;
        }
        front.clear();
        front.extend(Entry::expandable(tree, root, d));
        let guard = (data.metric, qd.slack);
        while !front.is_empty() {
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
            let at = tree.slot(level) * N_LEVEL_COUNTERS;
            let step = &mut totals.levels[at..at + N_LEVEL_COUNTERS];
            counts[Q_STEPS] += 1;
            kept.clear();
            new.clear();
            let n_front = front.len();
            let base = if self.schedule.block_sizing {
                first_width(n_front)
            } else {
                n_front
            };
            let (mut width, mut lo) = (base, 0);
            while lo < n_front {
                let hi = n_front.min(lo + width);
                let block = &front[lo..hi];
                step[FRONTIER] += block.len() as i64;
                tally(step, counts, BLOCKED);
                let (pushes, prunes) = (counts[Q_HEAP_PUSHES], counts[Q_PRUNES]);
                children.clear();
                spans.clear();
                if self.mode == Mode::Perf {
                    // Speculate: gather every node of the block not already prunable now (the k-th
                    // distance only shrinks during the block, so those stay pruned, and the level cache
                    // skips a superset later) and evaluate all at once.
                    let kth = heap.is_full().then(|| heap.worst_distance());
                    for e in block {
                        let sure = kth.is_some_and(|t| prunable(e, t));
                        spans.push(
                            (!sure).then(|| children.gather(tree, e.at(), level, &from, kth)),
                        );
                    }
                    children.evaluate(self.mode, from, data);
                }
                let evaluations = counts[Q_EVALUATIONS];
                for (j, e) in block.iter().enumerate() {
                    if heap.is_full() && prunable(e, heap.worst_distance()) {
                        tally(step, counts, PRUNED);
                        continue;
                    }
                    let kth = (from.level_cache && heap.is_full()).then(|| heap.worst_distance());
                    // Children gathered ahead were skipped against the block's k-th distance; the
                    // node's own, possibly smaller, may skip more of them.
                    let ahead = spans.get(j).copied().flatten();
                    let recheck = ahead.is_some() && from.level_cache;
                    let span = match ahead {
                        Some(span) => span,
                        None => {
                            let span = children.gather(tree, e.at(), level, &from, kth);
                            children.evaluate(self.mode, from, data);
                            span
                        }
                    };
                    for child in children.span(span) {
                        if child.skipped
                            || recheck && from.skips(tree, e.dist, child.node, level, kth)
                        {
                            tally(step, counts, SKIPPED);
                            continue;
                        }
                        if child.copy {
                            counts[Q_DEDUPE] += 1;
                        } else {
                            tally(step, counts, EVALUATED);
                        }
                        if (child.node as i64) < limit && heap.offer(child.dist, child.node as i64)
                        {
                            tally(step, counts, PUSHED);
                        }
                        new.extend(Entry::expandable(tree, child.node, child.dist));
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
                let pruned_whole = counts[Q_PRUNES] - prunes == (hi - lo) as i64;
                lo = hi;
                if counts[Q_HEAP_PUSHES] > pushes {
                    width = base;
                    continue;
                }
                counts[Q_EMPTY_BLOCKS] += 1;
                width *= 2;
                // The guard runs after a block pruned whole (so the heap is full), when something is left.
                let left = lo < n_front || !kept.is_empty() || !new.is_empty();
                if !(self.schedule.early_stop && pruned_whole && left) {
                    continue;
                }
                let kth = heap.worst_distance();
                let entries = front[lo..].iter().chain(kept.iter()).chain(new.iter());
                if settled(entries.map(|e| (e.node, e.dist)), tree, guard, kth, counts) {
                    counts[Q_EARLY_STOPS] += 1;
                    heap.write_sorted(out_i, out_d);
                    return;
                }
            }
            // The next frontier: the nodes with children left, then the new ones, in that order.
            std::mem::swap(front, kept);
            front.extend_from_slice(new);
        }
        heap.write_sorted(out_i, out_d);
    }
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
    data.check()?;
    // Checking the same arrays again would read all of V once more on every call.
    if !queries.data.same_as(data) {
        queries.data.check()?;
    }
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
pub fn default_threads() -> usize {
    rayon::current_num_threads()
}

/// CPUs this process may run on: the most worker threads a batch may ask for.
pub fn available_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// rayon's global pool takes its size from RAYON_NUM_THREADS when first used: an absurd value would start
/// that many OS threads, so it is refused like an absurd `threads`.
fn check_global_pool_size(cpus: usize) -> Result<()> {
    let Ok(text) = std::env::var("RAYON_NUM_THREADS") else {
        return Ok(());
    };
    match text.trim().parse::<u64>() {
        Ok(size) if size > cpus as u64 => Err(CoreError::BadValue {
            what: "RAYON_NUM_THREADS",
            value: i64::try_from(size).unwrap_or(i64::MAX),
            allowed: "at most the number of CPUs this process may use (0 or unset: one per CPU)",
        }),
        _ => Ok(()),
    }
}

/// The pool the batch runs on: the shared pool of `threads` workers (built on first use, then reused by
/// every later call asking for that many), or None for rayon's global pool. At most
/// [`available_threads`] workers: more would only add OS threads competing for the same cores.
pub(crate) fn thread_pool(threads: Option<i64>) -> Result<Option<Arc<rayon::ThreadPool>>> {
    static POOLS: OnceLock<Mutex<HashMap<usize, Arc<rayon::ThreadPool>>>> = OnceLock::new();
    let cpus = available_threads();
    let Some(threads) = threads else {
        return check_global_pool_size(cpus).map(|()| None);
    };
    if threads < 1 || threads as u64 > cpus as u64 {
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
/// on the mode, nor on the schedule.
pub fn query_batch(
    tree: &TreeView,
    data: &MetricData,
    queries: &QueryBatch,
    k: i64,
    threads: Option<i64>,
    mode: Mode,
    schedule: Schedule,
) -> Result<QueryOutput> {
    check_batch(tree, data, queries, k)?;
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
    };
    match thread_pool(threads)? {
        Some(pool) => pool.install(|| run_chunks(&walk, &mut out)),
        None => run_chunks(&walk, &mut out),
    }
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
                let mut totals = Totals {
                    levels: vec![0i64; slots],
                    discarded: 0,
                };
                let rows = out_i
                    .chunks_mut(k)
                    .zip(out_d.chunks_mut(k))
                    .zip(counts.chunks_mut(N_QUERY_COUNTERS));
                for (j, ((row_i, row_d), row_c)) in rows.enumerate() {
                    walk.answer(chunk * CHUNK + j, scratch, row_i, row_d, &mut totals, row_c);
                }
                totals
            },
        )
        .collect();
    for chunk in sums {
        for (total, v) in out.per_level.iter_mut().zip(chunk.levels) {
            *total += v;
        }
        out.discarded_evaluations += chunk.discarded;
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
