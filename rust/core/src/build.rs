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
fn check_order(order: &[i64], n: usize) -> Result<()> {
    check_sizes(&[("order length (one entry per point)", n, order.len())])?;
    check_distinct("order", order, n)
}

/// Links of the tree under construction (children as singly linked lists in insertion order).
struct Links {
    first_child: Vec<Option<usize>>,
    last_child: Vec<usize>,
    next_sibling: Vec<Option<usize>>,
    max_child_level: Vec<i64>,
}

impl Links {
    fn new(n: usize) -> Links {
        Links {
            first_child: vec![None; n],
            last_child: vec![0; n],
            next_sibling: vec![None; n],
            max_child_level: vec![NO_CHILD_LEVEL; n],
        }
    }

    fn attach(&mut self, parent: usize, child: usize, level: i64) {
        match self.first_child[parent] {
            None => self.first_child[parent] = Some(child),
            Some(_) => self.next_sibling[self.last_child[parent]] = Some(child),
        }
        self.last_child[parent] = child;
        if level != DUPLICATE_LEVEL && level > self.max_child_level[parent] {
            self.max_child_level[parent] = level;
        }
    }
}

/// Insert the points of `data` in `order`; see the module docs. Both modes give the same tree.
pub fn build_tree(data: &MetricData, order: &[i64], mode: Mode) -> Result<BuiltTree> {
    data.check()?;
    let n = data.n_points();
    check_order(order, n)?;
    let mut levels = vec![0i64; n];
    let mut parents = vec![-1i64; n];
    let mut radius = vec![0.0f64; n];
    let mut links = Links::new(n);
    let mut cached = vec![0.0f64; n];
    let mut stack: Vec<usize> = Vec::with_capacity(n);
    let (mut group, mut dists) = (Vec::new(), Vec::new());
    let mut evaluations = 0u64;
    let root = order[0] as usize;
    levels[root] = UNBOUNDED_LEVEL;
    for &x in &order[1..] {
        let xi = x as usize;
        cached[root] = distance(data, xi, x, data, root);
        evaluations += 1;
        let mut best_d = f64::INFINITY;
        let mut best: i64 = -1;
        stack.clear();
        stack.push(root);
        while let Some(a) = stack.pop() {
            let da = cached[a];
            if da <= ldexp_one(levels[a]) && (da < best_d || (da == best_d && (a as i64) < best)) {
                best_d = da;
                best = a as i64;
            }
            if links.max_child_level[a] == NO_CHILD_LEVEL {
                continue;
            }
            let cover = ldexp_one(links.max_child_level[a]);
            let threshold = if cover < best_d { cover } else { best_d };
            if can_prune(data.metric, data.slack, da, radius[a], threshold) {
                continue;
            }
            // Every non-duplicate child is evaluated and pushed, in insertion order.
            group.clear();
            let mut next = links.first_child[a];
            while let Some(c) = next {
                if levels[c] != DUPLICATE_LEVEL {
                    group.push(c);
                }
                next = links.next_sibling[c];
            }
            dists.resize(group.len(), 0.0);
            mode.distances(data, xi, x, data, &group, &mut dists);
            evaluations += group.len() as u64;
            for (&c, &d) in group.iter().zip(&dists) {
                cached[c] = d;
                stack.push(c);
            }
        }
        // The root's ball is infinite, so it covers x unless d(x, root) itself overflowed to inf
        // (finite coordinates near 1e154 and beyond); gold then fails too, in assemble.
        if best < 0 {
            return Err(CoreError::NonFinite {
                what: "distances (coordinates too large to square in float64): X",
                position: xi,
            });
        }
        let parent = best as usize;
        let level = if best_d == 0.0 {
            DUPLICATE_LEVEL
        } else {
            level_below(best_d)
        };
        levels[xi] = level;
        parents[xi] = parent as i64;
        links.attach(parent, xi, level);
        let mut a = parent as i64;
        while a != -1 {
            // Every ancestor of the parent was evaluated on the way down.
            let ai = a as usize;
            if cached[ai] > radius[ai] {
                radius[ai] = cached[ai];
            }
            a = parents[ai];
        }
    }
    let top_level = (0..n)
        .filter(|&i| i != root && levels[i] != DUPLICATE_LEVEL)
        .map(|i| levels[i])
        .fold(NO_CHILD_LEVEL, i64::max);
    levels[root] = if top_level == NO_CHILD_LEVEL {
        0
    } else {
        top_level + 1
    };
    Ok(BuiltTree {
        levels,
        parents,
        radius,
        evaluations,
    })
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
        let built = build_tree(&line(&x), &[0, 1, 2, 3], Mode::Parity).unwrap();
        // 4 joins the root at level_below(4) = 1; 1 is nearer the root (d = 1 -> level -1); 0 duplicates.
        assert_eq!(built.parents, vec![-1, 0, 0, 0]);
        assert_eq!(built.levels, vec![2, 1, -1, DUPLICATE_LEVEL]);
        assert_eq!(built.radius, vec![4.0, 0.0, 0.0, 0.0]);
        assert_eq!(built.evaluations, 1 + 2 + 3);
    }

    #[test]
    fn single_point_tree_has_level_zero() {
        let built = build_tree(&line(&[3.0]), &[0], Mode::Perf).unwrap();
        assert_eq!(built.levels, vec![0]);
        assert_eq!(built.parents, vec![-1]);
        assert_eq!(built.evaluations, 0);
    }

    #[test]
    fn rejects_bad_orders() {
        let x = [0.0, 1.0, 2.0];
        let data = line(&x);
        assert!(matches!(
            build_tree(&data, &[0, 1], Mode::Parity),
            Err(CoreError::DimensionMismatch { .. })
        ));
        assert!(matches!(
            build_tree(&data, &[0, 1, 3], Mode::Parity),
            Err(CoreError::IndexOutOfRange { position: 2, .. })
        ));
        assert!(matches!(
            build_tree(&data, &[0, 1, 1], Mode::Parity),
            Err(CoreError::RepeatedIndex { position: 2, .. })
        ));
    }
}
