//! The searches of one batch-build round, every batch point at once and level-synchronously, so that a
//! node's children are evaluated against all the points that expand it while their rows of V are in
//! cache (step for step the gold engine's `_search_batch` in covertreex/engines/gold/batch.py).
//!
//! Each step, the (point, node) expansions kept by the previous step are grouped by node (ordered by
//! node, then batch slot); each group is one rayon task that evaluates the node's non-duplicate children
//! against the group's points. Then, per point, every evaluated child is offered as parent (covering
//! ball, smallest (distance, index)), and a child is kept for the next step when
//! `Growing::worth_expanding` says so at the point's best distance after the whole step.
//!
//! Why the tree is the depth-first search's (build.rs): r* is the smallest (d(x, r), r) over the
//! non-duplicate nodes whose ball covers x, and a subtree is skipped only when no descendant can cover
//! x at a distance <= a distance some covering node attains, i.e. never one holding r* (the bound is
//! strict, so ties survive). Any sound search order finds the same r*, and every ancestor of r* is
//! expanded on the way, so the path distances are the same canonical values too. Only the number of
//! evaluations differs between the two searches; the values never depend on the thread count.

use rayon::prelude::*;

use crate::build::{escaped, Found, Growing};
use crate::canonical_block::Block;
use crate::errors::Result;
use crate::evaluate::Mode;
use crate::metric::{distance, Metric, MetricData};

/// One batch point after its search: where it wants to go and d(x, node) along the path root..parent.
pub(crate) struct Placed {
    /// Position in the batch.
    pub(crate) slot: usize,
    pub(crate) x: usize,
    pub(crate) found: Found,
    pub(crate) level: i64,
    pub(crate) path: Vec<(usize, f64)>,
}

/// A point (by batch slot) at a node, `d` apart.
#[derive(Clone, Copy)]
struct Visit {
    node: usize,
    slot: usize,
    d: f64,
}

/// Most points of one task: a node that many points expand (the root's children first) is split so
/// that every thread gets work.
const TASK_POINTS: usize = 64;

/// Evaluate the children of each group's node against the group's points, a task per group (or per
/// TASK_POINTS of its points); the visits come back in group order, then point order, then child
/// order. Perf mode evaluates the residual metric a block at a time (canonical_block.rs, the same
/// values); parity mode one distance at a time, as gold.
fn expand(
    data: &MetricData,
    tree: &Growing,
    points: &[usize],
    frontier: &[Visit],
    mode: Mode,
) -> Vec<Visit> {
    let tasks: Vec<&[Visit]> = frontier
        .chunk_by(|a, b| a.node == b.node)
        .flat_map(|group| group.chunks(TASK_POINTS))
        .collect();
    let blocks = mode == Mode::Perf && data.metric == Metric::Residual;
    let parts: Vec<Vec<Visit>> = tasks
        .par_iter()
        .map_init(
            || (Vec::new(), Vec::new(), Vec::new(), Block::new()),
            |(children, rows, dists, block), task| {
                tree.children_into(task[0].node, children);
                let n = children.len();
                rows.clear();
                rows.extend(task.iter().map(|v| points[v.slot]));
                dists.resize(rows.len() * n, 0.0);
                if blocks {
                    block.distances(data, rows, children, dists);
                } else {
                    for (&x, out) in rows.iter().zip(dists.chunks_exact_mut(n.max(1))) {
                        mode.distances(data, x, x as i64, data, children, out);
                    }
                }
                let pairs = task
                    .iter()
                    .flat_map(|v| children.iter().map(move |&c| (v.slot, c)));
                pairs
                    .zip(dists.iter())
                    .map(|((slot, node), &d)| Visit { node, slot, d })
                    .collect()
            },
        )
        .collect();
    parts.concat()
}

/// Search every point of `batch` against `tree` (see the module docs); `depth[node]` is the node's
/// depth in `tree`.
pub(crate) fn place_all(
    data: &MetricData,
    tree: &Growing,
    depth: &[usize],
    batch: &[i64],
    mode: Mode,
) -> Result<Vec<Placed>> {
    let points: Vec<usize> = batch.iter().map(|&x| x as usize).collect();
    let root = tree.root;
    let mut fresh: Vec<Visit> = points
        .par_iter()
        .enumerate()
        .map(|(slot, &x)| Visit {
            node: root,
            slot,
            d: distance(data, x, x as i64, data, root),
        })
        .collect();
    let (mut best_d, mut best) = (vec![f64::INFINITY; points.len()], vec![-1i64; points.len()]);
    let mut evaluations = vec![1u64; points.len()];
    let mut expanded: Vec<Visit> = Vec::new();
    loop {
        for v in &fresh {
            if tree.better_parent(v.node, v.d, best_d[v.slot], best[v.slot]) {
                (best_d[v.slot], best[v.slot]) = (v.d, v.node as i64);
            }
        }
        let mut frontier: Vec<Visit> = fresh
            .into_iter()
            .filter(|v| tree.worth_expanding(data, v.node, v.d, best_d[v.slot]))
            .collect();
        if frontier.is_empty() {
            break;
        }
        frontier.sort_unstable_by_key(|v| (v.node, v.slot));
        fresh = expand(data, tree, &points, &frontier, mode);
        for v in &fresh {
            evaluations[v.slot] += 1;
        }
        expanded.extend(frontier);
    }
    expanded.sort_unstable_by_key(|v| (v.slot, v.node));
    points
        .iter()
        .enumerate()
        .map(|(slot, &x)| {
            if best[slot] < 0 {
                return Err(escaped(x));
            }
            let found = Found {
                parent: best[slot] as usize,
                distance: best_d[slot],
                evaluations: evaluations[slot],
            };
            Ok(Placed {
                slot,
                x,
                found,
                level: found.level(),
                path: path(tree, depth, &expanded, slot, found),
            })
        })
        .collect()
}

/// (node, d(x, node)) from the root down to x's parent: the parent's distance is the found one, every
/// ancestor's is that of its expansion (`expanded` sorted by slot, then node).
fn path(
    tree: &Growing,
    depth: &[usize],
    expanded: &[Visit],
    slot: usize,
    found: Found,
) -> Vec<(usize, f64)> {
    let mine = {
        let start = expanded.partition_point(|v| v.slot < slot);
        let end = expanded.partition_point(|v| v.slot <= slot);
        &expanded[start..end]
    };
    let mut path = vec![(0, 0.0); depth[found.parent] + 1];
    path[depth[found.parent]] = (found.parent, found.distance);
    let mut a = tree.parents[found.parent];
    while a != -1 {
        let ai = a as usize;
        let at = mine.partition_point(|v| v.node < ai);
        path[depth[ai]] = (ai, mine[at].d);
        a = tree.parents[ai];
    }
    path
}
