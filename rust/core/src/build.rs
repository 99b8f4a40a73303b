//! Sequential insertion build of the compressed cover tree, step for step the gold engine's
//! (covertreex/engines/gold/build.py): same insertion order, same depth-first stack order, same pruning
//! bounds, so the levels, parents and radii come out bit for bit equal.
//!
//! Point x joins under r*, the nearest non-duplicate node whose ball of radius 2**level(r) contains x
//! (ties: lowest index), at level j = the largest integer with 2**j < d(x, r*); distance 0 makes x an
//! exact duplicate of r*.

use crate::errors::{check_distinct, check_sizes, CoreError, Result};
use crate::evaluate::Mode;
use crate::levels::{ldexp_one, level_below, DUPLICATE_LEVEL, NO_CHILD_LEVEL, UNBOUNDED_LEVEL};
use crate::metric::{can_prune, distance, MetricData};
use crate::stop::Stop;

/// What a build returns: the arrays covertreex.tree.assemble turns into a Tree.
#[derive(Debug, Clone, PartialEq)]
pub struct BuiltTree {
    pub levels: Vec<i64>,
    pub parents: Vec<i64>,
    pub radius: Vec<f64>,
    /// Distance evaluations spent by the build.
    pub evaluations: u64,
}

/// Check that `order` lists every index of 0..n exactly once.
pub(crate) fn check_order(order: &[i64], n: usize) -> Result<()> {
    check_sizes(&[("order length (one entry per point)", n, order.len())])?;
    check_distinct("order", order, n)
}

/// The tree under construction: levels, parents, radii and children as singly linked lists in
/// insertion order.
pub(crate) struct Growing {
    pub(crate) root: usize,
    pub(crate) levels: Vec<i64>,
    pub(crate) parents: Vec<i64>,
    pub(crate) radius: Vec<f64>,
    first_child: Vec<Option<usize>>,
    last_child: Vec<usize>,
    next_sibling: Vec<Option<usize>>,
    max_child_level: Vec<i64>,
}

impl Growing {
    /// A tree of the root alone, at the unbounded level while building.
    pub(crate) fn new(n: usize, root: usize) -> Growing {
        let mut levels = vec![0i64; n];
        levels[root] = UNBOUNDED_LEVEL;
        Growing {
            root,
            levels,
            parents: vec![-1; n],
            radius: vec![0.0; n],
            first_child: vec![None; n],
            last_child: vec![0; n],
            next_sibling: vec![None; n],
            max_child_level: vec![NO_CHILD_LEVEL; n],
        }
    }

    /// Hang `child` under `parent` at `level`, last among its children.
    pub(crate) fn attach(&mut self, parent: usize, child: usize, level: i64) {
        self.levels[child] = level;
        self.parents[child] = parent as i64;
        match self.first_child[parent] {
            None => self.first_child[parent] = Some(child),
            Some(_) => self.next_sibling[self.last_child[parent]] = Some(child),
        }
        self.last_child[parent] = child;
        if level != DUPLICATE_LEVEL && level > self.max_child_level[parent] {
            self.max_child_level[parent] = level;
        }
    }

    /// The non-duplicate children of `a` in insertion order, into `out` (cleared first).
    pub(crate) fn children_into(&self, a: usize, out: &mut Vec<usize>) {
        out.clear();
        let mut next = self.first_child[a];
        while let Some(c) = next {
            if self.levels[c] != DUPLICATE_LEVEL {
                out.push(c);
            }
            next = self.next_sibling[c];
        }
    }

    /// Whether node `a`, `d` from x, covers x (d <= 2**level(a)) and beats the best parent so far
    /// (`best` at `best_d`) by (distance, index).
    pub(crate) fn better_parent(&self, a: usize, d: f64, best_d: f64, best: i64) -> bool {
        d <= ldexp_one(self.levels[a]) && (d < best_d || (d == best_d && (a as i64) < best))
    }

    /// Whether a search at node `a`, `d` from x, must evaluate a's children: a has a non-duplicate
    /// child and the rounding-safe bound cannot prove that no descendant covers x (their levels are at
    /// most max_child_level) at a distance <= best_d.
    pub(crate) fn worth_expanding(&self, data: &MetricData, a: usize, d: f64, best_d: f64) -> bool {
        if self.max_child_level[a] == NO_CHILD_LEVEL {
            return false;
        }
        let cover = ldexp_one(self.max_child_level[a]);
        let threshold = if cover < best_d { cover } else { best_d };
        !can_prune(data.metric, data.slack, d, self.radius[a], threshold)
    }

    /// Raise the radius of `node` to `d` if it is below.
    pub(crate) fn reach(&mut self, node: usize, d: f64) {
        if d > self.radius[node] {
            self.radius[node] = d;
        }
    }

    /// The finished arrays: the root's level becomes one above the highest other non-duplicate
    /// level (0 when there is none).
    pub(crate) fn finish(mut self, evaluations: u64) -> BuiltTree {
        let root = self.root;
        let top_level = (0..self.levels.len())
            .filter(|&i| i != root && self.levels[i] != DUPLICATE_LEVEL)
            .map(|i| self.levels[i])
            .fold(NO_CHILD_LEVEL, i64::max);
        self.levels[root] = if top_level == NO_CHILD_LEVEL {
            0
        } else {
            top_level + 1
        };
        BuiltTree {
            levels: self.levels,
            parents: self.parents,
            radius: self.radius,
            evaluations,
        }
    }
}

/// Working memory of one search: d(x, node) of every node evaluated, the depth-first stack and a
/// group of children with their distances.
pub(crate) struct Search {
    pub(crate) cached: Vec<f64>,
    stack: Vec<usize>,
    group: Vec<usize>,
    dists: Vec<f64>,
}

impl Search {
    pub(crate) fn new(n: usize) -> Search {
        Search {
            cached: vec![0.0; n],
            stack: Vec::with_capacity(n),
            group: Vec::new(),
            dists: Vec::new(),
        }
    }
}

/// Where the search placed x: its parent r*, d(x, r*) and the distances evaluated.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Found {
    pub(crate) parent: usize,
    pub(crate) distance: f64,
    pub(crate) evaluations: u64,
}

impl Found {
    /// x's level: level_below(d(x, r*)), or the duplicate level at distance 0.
    pub(crate) fn level(&self) -> i64 {
        if self.distance == 0.0 {
            DUPLICATE_LEVEL
        } else {
            level_below(self.distance)
        }
    }
}

/// The error of a point x that no ball covers: d(x, root) overflowed to inf (finite coordinates near
/// 1e154 and beyond); gold then fails too, in assemble.
pub(crate) fn escaped(x: usize) -> CoreError {
    CoreError::NonFinite {
        what: "distances (coordinates too large to square in float64): X",
        position: x,
    }
}

/// Search `tree` for x's parent r* (see the module docs), leaving d(x, node) in `search.cached` for
/// every node evaluated, every ancestor of r* among them.
pub(crate) fn search_parent(
    data: &MetricData,
    tree: &Growing,
    x: usize,
    mode: Mode,
    search: &mut Search,
) -> Result<Found> {
    let root = tree.root;
    search.cached[root] = distance(data, x, x as i64, data, root);
    let mut evaluations = 1u64;
    let mut best_d = f64::INFINITY;
    let mut best: i64 = -1;
    search.stack.clear();
    search.stack.push(root);
    while let Some(a) = search.stack.pop() {
        let da = search.cached[a];
        if tree.better_parent(a, da, best_d, best) {
            best_d = da;
            best = a as i64;
        }
        if !tree.worth_expanding(data, a, da, best_d) {
            continue;
        }
        // Every non-duplicate child is evaluated and pushed, in insertion order.
        tree.children_into(a, &mut search.group);
        search.dists.resize(search.group.len(), 0.0);
        mode.distances(data, x, x as i64, data, &search.group, &mut search.dists);
        evaluations += search.group.len() as u64;
        for (&c, &d) in search.group.iter().zip(&search.dists) {
            search.cached[c] = d;
            search.stack.push(c);
        }
    }
    // The root's ball is infinite, so it covers x unless d(x, root) itself overflowed to inf.
    if best < 0 {
        return Err(escaped(x));
    }
    Ok(Found {
        parent: best as usize,
        distance: best_d,
        evaluations,
    })
}

/// Insert the points of `data` in `order`; see the module docs. Both modes give the same tree. `stop`
/// ends the call early (between insertions).
pub fn build_tree(data: &MetricData, order: &[i64], mode: Mode, stop: &Stop) -> Result<BuiltTree> {
    data.check()?;
    let n = data.n_points();
    check_order(order, n)?;
    let mut tree = Growing::new(n, order[0] as usize);
    let mut search = Search::new(n);
    let mut evaluations = 0u64;
    for &x in &order[1..] {
        stop.check()?;
        let xi = x as usize;
        let found = search_parent(data, &tree, xi, mode, &mut search)?;
        evaluations += found.evaluations;
        tree.attach(found.parent, xi, found.level());
        let mut a = found.parent as i64;
        while a != -1 {
            // Every ancestor of the parent was evaluated on the way down.
            let ai = a as usize;
            tree.reach(ai, search.cached[ai]);
            a = tree.parents[ai];
        }
    }
    Ok(tree.finish(evaluations))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metric::{Kernel, Matrix, Metric};

    fn line(x: &[f64]) -> MetricData<'_> {
        MetricData {
            metric: Metric::Euclidean,
            kernel: Kernel::Rbf,
            variance: 1.0,
            lengthscale: &[1.0],
            x: Matrix::new("X", x, x.len(), 1).unwrap(),
            v: Matrix::new("V", &[], x.len(), 0).unwrap(),
            p: &[1.0; 8][..x.len()],
            slack: 0.0,
        }
    }

    #[test]
    fn builds_a_small_tree_by_hand() {
        // Points 0, 4, 1, 0 (a duplicate of point 0), inserted in natural order.
        let x = [0.0, 4.0, 1.0, 0.0];
        let built = build_tree(&line(&x), &[0, 1, 2, 3], Mode::Parity, &Stop::default()).unwrap();
        // 4 joins the root at level_below(4) = 1; 1 is nearer the root (d = 1 -> level -1); 0 duplicates.
        assert_eq!(built.parents, vec![-1, 0, 0, 0]);
        assert_eq!(built.levels, vec![2, 1, -1, DUPLICATE_LEVEL]);
        assert_eq!(built.radius, vec![4.0, 0.0, 0.0, 0.0]);
        assert_eq!(built.evaluations, 1 + 2 + 3);
    }

    #[test]
    fn single_point_tree_has_level_zero() {
        let built = build_tree(&line(&[3.0]), &[0], Mode::Perf, &Stop::default()).unwrap();
        assert_eq!(built.levels, vec![0]);
        assert_eq!(built.parents, vec![-1]);
        assert_eq!(built.evaluations, 0);
    }

    #[test]
    fn rejects_bad_orders() {
        let x = [0.0, 1.0, 2.0];
        let data = line(&x);
        assert!(matches!(
            build_tree(&data, &[0, 1], Mode::Parity, &Stop::default()),
            Err(CoreError::DimensionMismatch { .. })
        ));
        assert!(matches!(
            build_tree(&data, &[0, 1, 3], Mode::Parity, &Stop::default()),
            Err(CoreError::IndexOutOfRange { position: 2, .. })
        ));
        assert!(matches!(
            build_tree(&data, &[0, 1, 1], Mode::Parity, &Stop::default()),
            Err(CoreError::RepeatedIndex { position: 2, .. })
        ));
    }
}
