//! The best-first walk (schedule knob `best_first`), step for step as covertreex/engines/gold/best_first.py:
//! subtrees wait in a priority queue by their lower bound d(q, node) - radius, ties by index (every node
//! enters once, so gold and rust pop the same sequence); each pop is checked against the current k-th
//! distance and, unless pruned, all of its children are measured, offered and queued. Exact in any order
//! (see the Python module); a pop counts as one frontier step and one block in the row of the node's
//! highest child level, evaluations and pushes in the row of the child's level. With `early_stop`, a pop
//! that is pruned ends the walk once the guard (crate::blocks) proves every queued subtree prunable; the
//! guard reads the queue in its array order, which is gold's because the queue is gold's binary heap.

use crate::blocks::settled;
use crate::children::{Children, Origin};
use crate::counters::{
    FRONTIER, N_LEVEL_COUNTERS, Q_EARLY_STOPS, Q_EMPTY_BLOCKS, Q_HEAP_PUSHES, Q_PRUNES, Q_STEPS,
};
use crate::evaluate::Mode;
use crate::heap::Heap;
use crate::metric::{can_prune, MetricData};
use crate::query::{tally, use_child, BLOCKED, PRUNED};
use crate::tree::TreeView;

/// A subtree waiting in the queue: its root, the root's distance to the query, and its lower bound.
#[derive(Debug, Clone, Copy)]
struct Queued {
    bound: f64,
    node: usize,
    dist: f64,
}

impl Queued {
    /// Queue order by (bound, node); bounds are finite, -0.0 and 0.0 compare equal, as in gold.
    fn before(&self, other: &Queued) -> bool {
        self.bound < other.bound || (self.bound == other.bound && self.node < other.node)
    }
}

/// The queue: a binary min-heap by (bound, node) in an array, sifted exactly as gold's `_push`/`_pop`.
#[derive(Debug, Default)]
pub(crate) struct Queue {
    items: Vec<Queued>,
}

impl Queue {
    fn push(&mut self, item: Queued) {
        let mut pos = self.items.len();
        self.items.push(item);
        while pos > 0 {
            let parent = (pos - 1) / 2;
            if !item.before(&self.items[parent]) {
                break;
            }
            self.items[pos] = self.items[parent];
            pos = parent;
        }
        self.items[pos] = item;
    }

    fn pop(&mut self) -> Option<Queued> {
        let first = *self.items.first()?;
        let last = self.items.pop()?;
        let size = self.items.len();
        let mut pos = 0;
        loop {
            let mut child = 2 * pos + 1;
            if child >= size {
                break;
            }
            if child + 1 < size && self.items[child + 1].before(&self.items[child]) {
                child += 1;
            }
            if !self.items[child].before(&last) {
                break;
            }
            self.items[pos] = self.items[child];
            pos = child;
        }
        if size > 0 {
            self.items[pos] = last;
        }
        Some(first)
    }
}

/// One query's best-first walk below the root.
pub(crate) struct BestFirst<'a> {
    pub tree: &'a TreeView<'a>,
    pub data: &'a MetricData<'a>,
    pub from: Origin<'a>,
    /// Only indices below this enter the heap.
    pub limit: i64,
    pub mode: Mode,
    pub early_stop: bool,
}

impl BestFirst<'_> {
    fn enqueue(&self, queue: &mut Queue, node: usize, dist: f64) {
        let (start, end) = self.tree.child_range(node);
        if end > start {
            let bound = dist - self.tree.radius[node];
            queue.push(Queued { bound, node, dist });
        }
    }

    /// Walk below the root (at distance `root_dist`), filling `heap` and the counter rows.
    pub fn walk(
        &self,
        root_dist: f64,
        heap: &mut Heap,
        queue: &mut Queue,
        children: &mut Children,
        levels: &mut [i64],
        counts: &mut [i64],
    ) {
        let tree = self.tree;
        let row_of = |level: i64| tree.slot(level) * N_LEVEL_COUNTERS;
        let slack = self.from.data.slack;
        queue.items.clear();
        self.enqueue(queue, tree.root(), root_dist);
        while let Some(Queued { node, dist, .. }) = queue.pop() {
            let at = row_of(tree.levels[tree.child(tree.child_range(node).0)]);
            let row = &mut levels[at..at + N_LEVEL_COUNTERS];
            row[FRONTIER] += 1;
            tally(row, counts, BLOCKED);
            counts[Q_STEPS] += 1;
            let (pushes, prunes) = (counts[Q_HEAP_PUSHES], counts[Q_PRUNES]);
            let full = heap.is_full();
            if full
                && can_prune(
                    self.data.metric,
                    slack,
                    dist,
                    tree.radius[node],
                    heap.worst_distance(),
                )
            {
                tally(row, counts, PRUNED);
            } else {
                let kth = full.then(|| heap.worst_distance());
                children.clear();
                let span = children.gather_all(tree, (node, dist), &self.from, kth);
                children.evaluate(self.mode, self.from, self.data);
                for child in children.span(span) {
                    let level = tree.levels[child.node];
                    let at = row_of(level);
                    let row = &mut levels[at..at + N_LEVEL_COUNTERS];
                    if use_child(child, false, self.limit, heap, row, counts) {
                        self.enqueue(queue, child.node, child.dist);
                    }
                }
            }
            if counts[Q_HEAP_PUSHES] > pushes {
                continue;
            }
            counts[Q_EMPTY_BLOCKS] += 1;
            let pruned = counts[Q_PRUNES] > prunes;
            if self.early_stop && pruned && !queue.items.is_empty() {
                let entries = queue.items.iter().map(|q| (q.node, q.dist));
                let guard = (self.data.metric, slack);
                if settled(entries, tree, guard, heap.worst_distance(), counts) {
                    counts[Q_EARLY_STOPS] += 1;
                    break;
                }
            }
        }
    }
}
