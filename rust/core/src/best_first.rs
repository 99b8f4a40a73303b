//! The best-first walk (schedule knob `best_first`), step for step as covertreex/engines/gold/best_first.py:
//! subtrees wait in a priority queue by their lower bound d(q, node) - radius, ties by index (every node
//! enters once, so gold and rust pop the same sequence); each pop is checked against the current k-th
//! distance and, unless pruned, all of its children are measured, offered and queued. Exact in any order
//! (see the Python module); a pop counts as one frontier step in the row of the node's highest child
//! level, evaluations and pushes in the row of the child's level.

use std::cmp::Ordering;
use std::collections::BinaryHeap;

use crate::children::{Children, Origin};
use crate::counters::{FRONTIER, N_LEVEL_COUNTERS, Q_DEDUPE, Q_STEPS};
use crate::evaluate::Mode;
use crate::heap::Heap;
use crate::metric::{can_prune, MetricData};
use crate::query::{tally, EVALUATED, PRUNED, PUSHED};
use crate::tree::TreeView;

/// A subtree waiting in the queue: its root, the root's distance to the query, and its lower bound.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Queued {
    bound: f64,
    node: usize,
    dist: f64,
}

impl Queued {
    /// Queue order, reversed for std's max-heap: the smallest (bound, node) pops first. Bounds are finite;
    /// -0.0 and 0.0 compare equal, as in gold.
    fn key_cmp(&self, other: &Queued) -> Ordering {
        let by_bound = other
            .bound
            .partial_cmp(&self.bound)
            .unwrap_or(Ordering::Equal);
        by_bound.then(other.node.cmp(&self.node))
    }
}

impl PartialEq for Queued {
    fn eq(&self, other: &Queued) -> bool {
        self.key_cmp(other) == Ordering::Equal
    }
}

impl Eq for Queued {}

impl PartialOrd for Queued {
    fn partial_cmp(&self, other: &Queued) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Queued {
    fn cmp(&self, other: &Queued) -> Ordering {
        self.key_cmp(other)
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
}

impl BestFirst<'_> {
    fn enqueue(&self, queue: &mut BinaryHeap<Queued>, node: usize, dist: f64) {
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
        queue: &mut BinaryHeap<Queued>,
        children: &mut Children,
        levels: &mut [i64],
        counts: &mut [i64],
    ) {
        let tree = self.tree;
        let row_of = |level: i64| tree.slot(level) * N_LEVEL_COUNTERS;
        queue.clear();
        self.enqueue(queue, tree.root(), root_dist);
        while let Some(Queued { node, dist, .. }) = queue.pop() {
            let at = row_of(tree.levels[tree.child(tree.child_range(node).0)]);
            let row = &mut levels[at..at + N_LEVEL_COUNTERS];
            row[FRONTIER] += 1;
            counts[Q_STEPS] += 1;
            let slack = self.from.data.slack;
            if heap.is_full()
                && can_prune(
                    self.data.metric,
                    slack,
                    dist,
                    tree.radius[node],
                    heap.worst_distance(),
                )
            {
                tally(row, counts, PRUNED);
                continue;
            }
            children.clear();
            let span = children.gather_all(tree, (node, dist), &self.from);
            children.evaluate(self.mode, self.from, self.data);
            for child in children.span(span) {
                let at = row_of(tree.levels[child.node]);
                let row = &mut levels[at..at + N_LEVEL_COUNTERS];
                if child.copy {
                    counts[Q_DEDUPE] += 1;
                } else {
                    tally(row, counts, EVALUATED);
                }
                if (child.node as i64) < self.limit && heap.offer(child.dist, child.node as i64) {
                    tally(row, counts, PUSHED);
                }
                self.enqueue(queue, child.node, child.dist);
            }
        }
    }
}
