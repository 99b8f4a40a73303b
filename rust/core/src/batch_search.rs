//! The searches of one batch-build round, every batch point at once and level-synchronously, so that a
//! node's children are evaluated against all the points that expand it while their rows of V are in
//! cache (step for step the gold engine's `_search_batch` in covertreex/engines/gold/batch.py).
//!
//! Each step, the (point, node) expansions kept by the previous step are grouped by node (ordered by
//! node, then batch slot); each group's node's non-duplicate children are evaluated against the group's
//! points in rayon tasks (a wide node, the root first, split by points and by children). Per point, every
//! evaluated child is offered as parent (covering ball, smallest (distance, index)), and a child is kept
//! for the next step when `Growing::worth_expanding` says so at the point's best distance after the
//! whole step (each task already drops the children it rejects at the point's best within the task,
//! which can only be larger).
//!
//! Why the tree is the depth-first search's (build.rs): r* is the smallest (d(x, r), r) over the
//! non-duplicate nodes whose ball covers x, and a subtree is skipped only when no descendant can cover
//! x at a distance <= a distance some covering node attains, i.e. never one holding r* (the bound is
//! strict, so ties survive). Any sound search order finds the same r*, and every ancestor of r* is
//! expanded on the way, so the path distances are the same canonical values too. Only the number of
//! evaluations differs between the two searches; the values never depend on the thread count.

use std::collections::HashMap;
use std::ops::Range;

use rayon::prelude::*;

use crate::build::{escaped, Found, Growing};
use crate::canonical_block::{Block, Panels};
use crate::dense::Isa;
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

/// Most children of one task of a node whose children stay packed: a wide node (the root has about
/// 1,800 children at N = 32,768) is split over the threads, and a task's packed rows (128 x m values)
/// stay in L2 while its points sweep them.
const TASK_CHILDREN: usize = 128;

/// Nodes with at least this many non-duplicate children keep their children's rows of V packed from
/// round to round (children only ever join at the end, so only the newcomers are packed); the rows of
/// every other node are packed again by each task that expands it.
const KEPT_CHILDREN: usize = 64;

/// Fewest points of a task that pack its node's children: for fewer, packing a row of V costs more
/// than the few dot products that read it, so each point evaluates the children in lockstep
/// (evaluate.rs), reading their rows directly.
const PACKED_POINTS: usize = 4;

/// What the batch searches keep from round to round: how they evaluate, and (perf mode, residual
/// metric) the packed children of the widest nodes.
pub(crate) struct Searches {
    /// The packed children of the nodes with at least KEPT_CHILDREN of them.
    kept: HashMap<usize, Panels>,
    isa: Isa,
    mode: Mode,
    /// Whether distances come from register tiles (perf mode, residual metric).
    tiled: bool,
}

impl Searches {
    pub(crate) fn new(data: &MetricData, mode: Mode) -> Searches {
        Searches {
            kept: HashMap::new(),
            isa: Isa::fastest(),
            mode,
            tiled: mode == Mode::Perf && data.metric == Metric::Residual,
        }
    }

    /// Pack the children of `node` not packed yet, if it keeps them packed.
    fn keep(&mut self, data: &MetricData, node: usize, children: &[usize]) {
        if self.tiled && children.len() >= KEPT_CHILDREN {
            let panels = self.kept.entry(node).or_default();
            panels.extend(data, &children[panels.rows()..]);
        }
    }
}

/// Part of one step: the children `columns` of one node (positions in its child list) against some of
/// the points that expand it.
struct Task<'a> {
    visits: &'a [Visit],
    children: &'a [usize],
    columns: Range<usize>,
    panels: Option<&'a Panels>,
}

/// What a task found: per point (slot), its best parent among the task's children if one beats the
/// point's best so far; and the visits that may still be worth expanding after the step.
#[derive(Default)]
struct Outcome {
    /// (slot, distance, node).
    better: Vec<(usize, f64, usize)>,
    visits: Vec<Visit>,
}

/// Working memory of one worker.
#[derive(Default)]
struct Scratch {
    rows: Vec<usize>,
    dists: Vec<f64>,
    dots: Vec<f64>,
    block: Block,
}

/// The state of one point's search during a step, read-only: its best parent so far.
#[derive(Clone, Copy)]
struct Best {
    d: f64,
    node: i64,
}

/// Evaluate a task's pairs (perf mode, residual metric: register tiles, or lockstep for fewer than
/// PACKED_POINTS points, the canonical values either way; parity mode: one distance at a time, as gold), then keep per point the best covering child and the visits that
/// `worth_expanding` keeps at that best: the step's final best is at most it, and a smaller best only
/// prunes more, so every visit dropped here the step would drop too.
fn run(
    data: &MetricData,
    tree: &Growing,
    (points, bests): (&[usize], &[Best]),
    (task, searches): (&Task, &Searches),
    scratch: &mut Scratch,
) -> Outcome {
    let children = &task.children[task.columns.clone()];
    let n = children.len();
    let Scratch {
        rows,
        dists,
        dots,
        block,
    } = scratch;
    rows.clear();
    rows.extend(task.visits.iter().map(|v| points[v.slot]));
    dists.resize(rows.len() * n, 0.0);
    match task.panels {
        Some(panels) => {
            let pair = (&rows[..], children);
            panels.distances(searches.isa, data, pair, task.columns.clone(), dots, dists)
        }
        None if searches.tiled && rows.len() >= PACKED_POINTS => {
            block.distances(data, rows, children, dists)
        }
        None => {
            for (&x, out) in rows.iter().zip(dists.chunks_exact_mut(n.max(1))) {
                searches
                    .mode
                    .distances(data, x, x as i64, data, children, out);
            }
        }
    }
    let mut outcome = Outcome::default();
    for (v, ds) in task.visits.iter().zip(dists.chunks_exact(n.max(1))) {
        let mut best = bests[v.slot];
        let before = best.node;
        for (&c, &d) in children.iter().zip(ds) {
            if tree.better_parent(c, d, best.d, best.node) {
                best = Best { d, node: c as i64 };
            }
        }
        if best.node != before {
            outcome.better.push((v.slot, best.d, best.node as usize));
        }
        let kept = children
            .iter()
            .zip(ds)
            .filter(|&(&c, &d)| tree.worth_expanding(data, c, d, best.d));
        outcome.visits.extend(kept.map(|(&node, &d)| Visit {
            node,
            slot: v.slot,
            d,
        }));
    }
    outcome
}

/// One step: the children of each frontier node against the points that expand it (`frontier` sorted
/// by node, then slot), as tasks of at most TASK_POINTS points (and TASK_CHILDREN children of a node
/// that keeps them packed). Returns the tasks' outcomes, and per point the distances it evaluated.
fn expand(
    data: &MetricData,
    tree: &Growing,
    (points, bests): (&[usize], &[Best]),
    frontier: &[Visit],
    searches: &mut Searches,
) -> (Vec<Outcome>, Vec<u64>) {
    let groups: Vec<&[Visit]> = frontier.chunk_by(|a, b| a.node == b.node).collect();
    let mut children: Vec<Vec<usize>> = groups
        .par_iter()
        .map(|group| {
            let mut out = Vec::new();
            tree.children_into(group[0].node, &mut out);
            out
        })
        .collect();
    let mut evaluated = vec![0u64; points.len()];
    for (group, children) in groups.iter().zip(&children) {
        searches.keep(data, group[0].node, children);
        for v in *group {
            evaluated[v.slot] += children.len() as u64;
        }
    }
    let searches = &*searches;
    let mut tasks = Vec::new();
    for (group, children) in groups.iter().zip(&mut children) {
        let panels = searches.kept.get(&group[0].node);
        let width = if panels.is_some() {
            TASK_CHILDREN
        } else {
            children.len().max(1)
        };
        for visits in group.chunks(TASK_POINTS) {
            for start in (0..children.len()).step_by(width) {
                let columns = start..(start + width).min(children.len());
                tasks.push(Task {
                    visits,
                    children,
                    columns,
                    panels,
                });
            }
        }
    }
    let outcomes = tasks
        .par_iter()
        .map_init(Scratch::default, |scratch, task| {
            run(data, tree, (points, bests), (task, searches), scratch)
        })
        .collect();
    (outcomes, evaluated)
}

/// Search every point of `batch` against `tree` (see the module docs); `depth[node]` is the node's
/// depth in `tree`.
pub(crate) fn place_all(
    data: &MetricData,
    tree: &Growing,
    depth: &[usize],
    batch: &[i64],
    searches: &mut Searches,
) -> Result<Vec<Placed>> {
    let points: Vec<usize> = batch.iter().map(|&x| x as usize).collect();
    let root = tree.root;
    let mut frontier: Vec<Visit> = points
        .par_iter()
        .enumerate()
        .map(|(slot, &x)| Visit {
            node: root,
            slot,
            d: distance(data, x, x as i64, data, root),
        })
        .collect();
    let mut bests = vec![
        Best {
            d: f64::INFINITY,
            node: -1
        };
        points.len()
    ];
    for v in &frontier {
        let best = &mut bests[v.slot];
        if tree.better_parent(v.node, v.d, best.d, best.node) {
            *best = Best {
                d: v.d,
                node: v.node as i64,
            };
        }
    }
    frontier.retain(|v| tree.worth_expanding(data, v.node, v.d, bests[v.slot].d));
    let mut evaluations = vec![1u64; points.len()];
    let mut expanded: Vec<Visit> = Vec::new();
    while !frontier.is_empty() {
        frontier.sort_unstable_by_key(|v| (v.node, v.slot));
        let (outcomes, evaluated) = expand(data, tree, (&points, &bests), &frontier, searches);
        expanded.append(&mut frontier);
        for (total, count) in evaluations.iter_mut().zip(evaluated) {
            *total += count;
        }
        for outcome in &outcomes {
            for &(slot, d, node) in &outcome.better {
                let best = &mut bests[slot];
                if tree.better_parent(node, d, best.d, best.node) {
                    *best = Best {
                        d,
                        node: node as i64,
                    };
                }
            }
        }
        for outcome in outcomes {
            let kept = outcome.visits.into_iter();
            frontier
                .extend(kept.filter(|v| tree.worth_expanding(data, v.node, v.d, bests[v.slot].d)));
        }
    }
    expanded.sort_unstable_by_key(|v| (v.slot, v.node));
    points
        .iter()
        .enumerate()
        .map(|(slot, &x)| {
            let best = bests[slot];
            if best.node < 0 {
                return Err(escaped(x));
            }
            let found = Found {
                parent: best.node as usize,
                distance: best.d,
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
