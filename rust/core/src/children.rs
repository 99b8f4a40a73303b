//! The children one query step expands: gathered per frontier node, their distances evaluated as one
//! group, then used in order by the walk. Perf mode gathers every frontier node's children before the
//! step's first prune check (speculation); the walk then replays them exactly as parity mode would, so a
//! node pruned on the way only wastes the distances gathered for it (counted as discarded).

use crate::evaluate::Mode;
use crate::levels::cover;
use crate::metric::{can_skip_child, MetricData};
use crate::tree::TreeView;

/// A child waiting to be used: its distance is its parent's (an exact copy) or an evaluated one, or none
/// (skipped by the level cache when gathered).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Pending {
    pub node: usize,
    pub copy: bool,
    pub skipped: bool,
    pub dist: f64,
}

/// Where one frontier node's children sit in the pending list, and its next child position after them.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Span {
    start: usize,
    end: usize,
    pub next: usize,
}

/// The query row the distances are measured from, and the subtrees it enters.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Origin<'a> {
    pub data: &'a MetricData<'a>,
    pub row: usize,
    pub index: i64,
    /// Subtrees whose smallest index is not below this are never entered.
    pub entry: i64,
    /// Whether the level cache skips children (schedule knob `level_cache`).
    pub level_cache: bool,
}

impl Origin<'_> {
    /// Whether the level cache skips `child` (at `level`) of a node at `node_dist`, against the k-th
    /// distance `kth` the node was entered with (None: the heap was not full then).
    pub fn skips(
        &self,
        tree: &TreeView,
        node_dist: f64,
        child: usize,
        level: i64,
        kth: Option<f64>,
    ) -> bool {
        let data = self.data;
        self.level_cache
            && kth.is_some_and(|t| {
                can_skip_child(
                    data.metric,
                    data.slack,
                    node_dist,
                    cover(level),
                    tree.radius[child],
                    t,
                )
            })
    }
}

/// Gathered children and their distances (buffers reused across steps and queries).
#[derive(Debug, Default)]
pub(crate) struct Children {
    pending: Vec<Pending>,
    /// Children still to evaluate, and their positions in `pending`.
    measured: Vec<usize>,
    slots: Vec<usize>,
    dists: Vec<f64>,
    /// Distances evaluated since the last clear.
    evaluated: usize,
}

impl Children {
    pub fn clear(&mut self) {
        self.pending.clear();
        self.evaluated = 0;
    }

    /// Distances evaluated since the last clear.
    pub fn evaluated(&self) -> usize {
        self.evaluated
    }

    /// Queue the children of `node` (at distance `node_dist`) from position `pos` whose level is `level`
    /// and whose subtree the query enters; an exact copy of the node reuses its distance unless the
    /// query is the copy or the node itself; a child the level cache skips against `kth` is queued
    /// unevaluated.
    pub fn gather(
        &mut self,
        tree: &TreeView,
        (node, node_dist, pos): (usize, f64, usize),
        level: i64,
        from: &Origin,
        kth: Option<f64>,
    ) -> Span {
        let query_index = from.index;
        let start = self.pending.len();
        let end = tree.child_range(node).1;
        let mut next = pos;
        while next < end && tree.levels[tree.child(next)] == level {
            let c = tree.child(next);
            next += 1;
            if tree.subtree_min[c] >= from.entry {
                continue;
            }
            let skipped = from.skips(tree, node_dist, c, level, kth);
            let copy = tree.is_copy[c] && query_index != c as i64 && query_index != node as i64;
            if !copy && !skipped {
                self.measured.push(c);
                self.slots.push(self.pending.len());
            }
            self.pending.push(Pending {
                node: c,
                copy,
                skipped,
                dist: node_dist,
            });
        }
        Span {
            start,
            end: self.pending.len(),
            next,
        }
    }

    /// Queue every child of `node` (at distance `node_dist`) the query enters, run by run of equal
    /// level, as one span.
    pub fn gather_all(
        &mut self,
        tree: &TreeView,
        (node, node_dist): (usize, f64),
        from: &Origin,
        kth: Option<f64>,
    ) -> Span {
        let start = self.pending.len();
        let (mut pos, end) = tree.child_range(node);
        while pos < end {
            let level = tree.levels[tree.child(pos)];
            pos = self
                .gather(tree, (node, node_dist, pos), level, from, kth)
                .next;
        }
        Span {
            start,
            end: self.pending.len(),
            next: end,
        }
    }

    /// Evaluate every queued child that is not a copy, as one group.
    pub fn evaluate(&mut self, mode: Mode, from: Origin, data: &MetricData) {
        self.dists.resize(self.measured.len(), 0.0);
        mode.distances(
            from.data,
            from.row,
            from.index,
            data,
            &self.measured,
            &mut self.dists,
        );
        let dists = std::mem::take(&mut self.dists);
        self.fill(&dists);
        self.dists = dists;
    }

    /// The children queued for evaluation (all but copies, in queue order), for an evaluation done
    /// elsewhere (query_block.rs) and handed back by [`Children::fill`].
    pub fn to_measure(&self) -> &[usize] {
        &self.measured
    }

    /// Set the distances of the children queued for evaluation (`dists[i]` is that of
    /// `to_measure()[i]`); none is queued afterwards.
    pub fn fill(&mut self, dists: &[f64]) {
        for (&slot, &d) in self.slots.iter().zip(dists) {
            self.pending[slot].dist = d;
        }
        self.evaluated += self.measured.len();
        self.measured.clear();
        self.slots.clear();
    }

    pub fn span(&self, span: Span) -> &[Pending] {
        &self.pending[span.start..span.end]
    }
}
