//! Trees built by the core, sequential and batch, satisfy the four invariants of DESIGN section 4 on
//! seeded point sets, including tie-heavy lattices with repeated points and the residual metric.

mod common;

use common::{points, Assembled, Lcg, Points, Space};
use covertreex_core::levels::{ldexp_one, DUPLICATE_LEVEL};
use covertreex_core::metric::distance;
use covertreex_core::{build_tree, build_tree_batch, Kernel, MetricData, Mode, Stop};

/// Both builds of `space` in `order` (batch with small rounds, so many points conflict) hold the
/// invariants.
fn check_invariants(space: &Space, order: &[i64]) {
    let data = space.data();
    let sequential = build_tree(&data, order, Mode::Perf, &Stop::default()).unwrap();
    let batch = build_tree_batch(&data, order, Mode::Perf, 16, None, &Stop::default()).unwrap();
    for built in [sequential, batch] {
        let tree = Assembled::new(&built, &data);
        tree.view().check(space.n).unwrap();
        check_structure(&tree);
        check_metric(&tree, &data);
    }
}

/// Invariant 1: one root, every node reached from it exactly once.
fn check_structure(tree: &Assembled) {
    let n = tree.levels.len();
    assert_eq!(tree.parents.iter().filter(|&&p| p < 0).count(), 1);
    let mut seen = vec![false; n];
    let mut stack = vec![tree.root as usize];
    seen[tree.root as usize] = true;
    while let Some(node) = stack.pop() {
        let (start, end) = tree.view().child_range(node);
        for &c in &tree.children[start..end] {
            assert_eq!(tree.parents[c as usize], node as i64);
            assert!(!seen[c as usize], "node {c} reached twice");
            seen[c as usize] = true;
            stack.push(c as usize);
        }
    }
    assert!(seen.iter().all(|&s| s), "every node is reachable");
}

/// Invariants 2-4: covering, separation, radius.
fn check_metric(tree: &Assembled, data: &MetricData) {
    let n = tree.levels.len();
    let d = |a: usize, b: usize| distance(data, a, a as i64, data, b);
    for c in 0..n {
        let p = tree.parents[c];
        if p < 0 {
            continue;
        }
        let (p, level) = (p as usize, tree.levels[c]);
        assert!(level < tree.levels[p], "covering level at {c}");
        let bound = if level == DUPLICATE_LEVEL {
            0.0
        } else {
            ldexp_one(level + 1)
        };
        assert!(d(c, p) <= bound, "covering distance at {c}");
        let mut a = tree.parents[c];
        while a >= 0 {
            assert!(d(a as usize, c) <= tree.radius[a as usize], "radius of {a}");
            a = tree.parents[a as usize];
        }
    }
    for u in 0..n {
        for v in u + 1..n {
            let (lu, lv) = (tree.levels[u], tree.levels[v]);
            if lu != DUPLICATE_LEVEL && lv != DUPLICATE_LEVEL {
                assert!(d(u, v) > ldexp_one(lu.min(lv)), "separation of {u} and {v}");
            }
        }
    }
}

fn shuffled(n: usize, rng: &mut Lcg) -> Vec<i64> {
    let mut order: Vec<i64> = (0..n as i64).collect();
    for i in (1..n).rev() {
        order.swap(i, rng.below(i as u64 + 1) as usize);
    }
    order
}

#[test]
fn euclidean_trees_hold_the_invariants() {
    for seed in 0..4 {
        let mut rng = Lcg::new(seed);
        for (kind, d) in [
            (Points::Uniform, 1),
            (Points::Uniform, 3),
            (Points::Lattice, 2),
        ] {
            let n = 200;
            let space = Space::euclidean(points(kind, n, d, &mut rng), d);
            check_invariants(&space, &(0..n as i64).collect::<Vec<_>>());
            check_invariants(&space, &shuffled(n, &mut rng));
        }
    }
}

#[test]
fn residual_trees_hold_the_invariants() {
    for (seed, kernel) in [(10, Kernel::Rbf), (11, Kernel::Matern52)] {
        let mut rng = Lcg::new(seed);
        for kind in [Points::Uniform, Points::Lattice] {
            let x = points(kind, 150, 2, &mut rng);
            let space = Space::residual(x.clone(), 2, &x[..12], 6, kernel);
            check_invariants(&space, &shuffled(150, &mut rng));
        }
    }
}

#[test]
fn lattice_repeats_become_duplicates() {
    let mut rng = Lcg::new(3);
    // 100 points on a 4 x 4 grid: at most 16 distinct rows, the rest are exact duplicates.
    let space = Space::euclidean(points(Points::Lattice, 100, 2, &mut rng), 2);
    let built = build_tree(
        &space.data(),
        &(0..100).collect::<Vec<_>>(),
        Mode::Parity,
        &Stop::default(),
    )
    .unwrap();
    let dups = built
        .levels
        .iter()
        .filter(|&&l| l == DUPLICATE_LEVEL)
        .count();
    assert!(dups >= 84, "{dups} duplicates");
}
