//! Batch insertion build of the compressed cover tree on rayon, step for step the gold engine's
//! (covertreex/engines/gold/batch.py), so parity mode gives bit-identical trees and evaluation counts.
//!
//! Points are taken in insertion order in batches whose size doubles with the tree (at most `block`).
//! Each round: (1) every batch point searches the tree as it stood before the round (all together, level
//! by level, so that each node's children are evaluated as one block for every point that expands it:
//! batch_search.rs) and finds the parent r* the sequential build would find, so it wants r* and a level
//! j = level_below(d(x, r*)) (or duplicates r*); (2) the points that want a level, from the top level down, form a conflict graph (an edge when
//! d(x, y) <= 2**min(j_x, j_y), where inserting both would break separation), evaluated as one block per
//! batch and skipping the pairs a shared ancestor proves apart; the greedy maximal independent set in
//! priority order (level descending, then insertion order) is inserted, duplicates always; (3) the rest
//! return to the front of the queue. Nothing depends on the thread count; a block of 1 gives the
//! sequential tree (with the evaluations of the level-synchronous search).

use rayon::prelude::*;

use crate::batch_search::{place_all, Placed, Searches};
use crate::build::{check_order, BuiltTree, Growing};
use crate::errors::{CoreError, Result};
use crate::evaluate::Mode;
use crate::levels::{ldexp_one, DUPLICATE_LEVEL};
use crate::metric::{can_prune, MetricData};
use crate::query::on_pool;
use crate::stop::Stop;

/// True when a common ancestor a proves every computed d(x, y) > threshold (triangle inequality through
/// d(x, a) and d(y, a), with the rounding-safe bounds of tree pruning).
fn proved_apart(data: &MetricData, x: &Placed, y: &Placed, threshold: f64) -> bool {
    let prune = |a: f64, b: f64| can_prune(data.metric, data.slack, a, b, threshold);
    for (&(nx, dx), &(ny, dy)) in x.path.iter().zip(&y.path) {
        if nx != ny {
            return false;
        }
        if prune(dx, dy) || prune(dy, dx) {
            return true;
        }
    }
    false
}

/// For each point (in priority order), the earlier points it conflicts with, and the pair distances
/// evaluated. The later point of a pair wants the lower level: 2**level is the pair's separation radius.
fn conflicts(data: &MetricData, ranked: &[&Placed], mode: Mode) -> (Vec<Vec<usize>>, u64) {
    let rows: Vec<(Vec<usize>, u64)> = (0..ranked.len())
        .into_par_iter()
        .map(|i| {
            let x = ranked[i];
            if x.level == DUPLICATE_LEVEL {
                return (Vec::new(), 0);
            }
            let threshold = ldexp_one(x.level);
            let (earlier, nodes): (Vec<usize>, Vec<usize>) = (0..i)
                .filter(|&j| {
                    ranked[j].level != DUPLICATE_LEVEL
                        && !proved_apart(data, x, ranked[j], threshold)
                })
                .map(|j| (j, ranked[j].x))
                .unzip();
            let mut dists = vec![0.0; nodes.len()];
            mode.distances(data, x.x, x.x as i64, data, &nodes, &mut dists);
            let hits = earlier
                .iter()
                .zip(&dists)
                .filter(|&(_, &d)| d <= threshold)
                .map(|(&j, _)| j)
                .collect();
            (hits, nodes.len() as u64)
        })
        .collect();
    let evaluations = rows.iter().map(|r| r.1).sum();
    (rows.into_iter().map(|r| r.0).collect(), evaluations)
}

/// Greedy maximal independent set in priority order (duplicates always join).
fn independent_set(ranked: &[&Placed], conflicts: &[Vec<usize>]) -> Vec<bool> {
    let mut accepted = vec![false; ranked.len()];
    for i in 0..ranked.len() {
        accepted[i] =
            ranked[i].level == DUPLICATE_LEVEL || !conflicts[i].iter().any(|&j| accepted[j]);
    }
    accepted
}

/// Insert the points of `data` in `order` in batches of at most `block`; see the module docs.
/// `threads` = None runs on rayon's global pool. Both modes and every thread count give the same tree.
/// `stop` ends the call early (between rounds).
pub fn build_tree_batch(
    data: &MetricData,
    order: &[i64],
    mode: Mode,
    block: i64,
    threads: Option<i64>,
    stop: &Stop,
) -> Result<BuiltTree> {
    data.check()?;
    let n = data.n_points();
    check_order(order, n)?;
    if block < 1 {
        return Err(CoreError::BadValue {
            what: "block",
            value: block,
            allowed: "at least 1",
        });
    }
    on_pool(threads, || grow(data, order, mode, block as usize, stop))?
}

fn grow(
    data: &MetricData,
    order: &[i64],
    mode: Mode,
    block: usize,
    stop: &Stop,
) -> Result<BuiltTree> {
    let n = data.n_points();
    let mut tree = Growing::new(n, order[0] as usize);
    let mut depth = vec![0usize; n];
    let mut queue = order[1..].to_vec();
    let (mut start, mut inserted, mut evaluations) = (0usize, 1usize, 0u64);
    let mut searches = Searches::new(data, mode);
    while start < queue.len() {
        stop.check()?;
        let size = block.min(inserted).min(queue.len() - start);
        let batch = &queue[start..start + size];
        let placed = place_all(data, &tree, &depth, batch, &mut searches)?;
        evaluations += placed.iter().map(|p| p.found.evaluations).sum::<u64>();
        let mut ranked: Vec<&Placed> = placed.iter().collect();
        ranked.sort_by_key(|p| std::cmp::Reverse(p.level)); // stable: ties keep insertion order
        let (conflicts, pair_evaluations) = conflicts(data, &ranked, mode);
        evaluations += pair_evaluations;
        let accepted = independent_set(&ranked, &conflicts);
        let mut rejected = vec![true; size];
        for (p, _) in ranked.iter().zip(&accepted).filter(|(_, &a)| a) {
            tree.attach(p.found.parent, p.x, p.level);
            depth[p.x] = depth[p.found.parent] + 1;
            for &(node, d) in &p.path {
                tree.reach(node, d);
            }
            rejected[p.slot] = false;
            inserted += 1;
        }
        let losers: Vec<i64> = (0..size)
            .filter(|&t| rejected[t])
            .map(|t| batch[t])
            .collect();
        start += size - losers.len();
        queue[start..start + losers.len()].copy_from_slice(&losers);
    }
    Ok(tree.finish(evaluations))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::build::build_tree;
    use crate::evaluate::tests::values;
    use crate::metric::{Kernel, Matrix, Metric};
    use crate::testing::plane;

    /// A 10 x 10 integer lattice visited twice: every point has an exact duplicate, and ties abound.
    fn lattice() -> Vec<f64> {
        (0..200)
            .flat_map(|i| [((i % 100) % 10) as f64, ((i % 100) / 10) as f64])
            .collect()
    }

    fn natural(n: usize) -> Vec<i64> {
        (0..n as i64).collect()
    }

    #[test]
    fn block_of_one_is_the_sequential_build() {
        let x = lattice();
        let data = plane(&x);
        let order = natural(200);
        let sequential = build_tree(&data, &order, Mode::Parity, &Stop::default()).unwrap();
        let batch =
            build_tree_batch(&data, &order, Mode::Parity, 1, Some(1), &Stop::default()).unwrap();
        // The same tree; the level-synchronous search counts its own evaluations.
        let tree = |b: &BuiltTree| (b.levels.clone(), b.parents.clone(), b.radius.clone());
        assert_eq!(tree(&batch), tree(&sequential));
    }

    #[test]
    fn same_tree_on_any_thread_count_and_mode() {
        let x = lattice();
        let data = plane(&x);
        let order: Vec<i64> = (0..200).map(|i| (i * 37) % 200).collect();
        let one =
            build_tree_batch(&data, &order, Mode::Parity, 16, Some(1), &Stop::default()).unwrap();
        let two =
            build_tree_batch(&data, &order, Mode::Perf, 16, Some(2), &Stop::default()).unwrap();
        assert_eq!(one, two);
        let dups = one.levels.iter().filter(|&&l| l == DUPLICATE_LEVEL).count();
        assert_eq!(
            dups, 100,
            "the second visit of every lattice point is a duplicate"
        );
    }

    #[test]
    fn conflicting_points_do_not_join_the_same_round() {
        // Root 0 at the origin, -8 joins alone; then 8 and 8.5 share the second round under the root:
        // 8 wants level 2, 8.5 level 3 (2**3 < 8.5). They are 0.5 apart, so they conflict and the
        // higher level wins although it comes later; 8 retries and lands under 8.5 at level -2.
        let x = [0.0, 0.0, -8.0, 0.0, 8.0, 0.0, 8.5, 0.0];
        let built = build_tree_batch(
            &plane(&x),
            &[0, 1, 2, 3],
            Mode::Parity,
            4,
            Some(1),
            &Stop::default(),
        )
        .unwrap();
        assert_eq!(built.parents, vec![-1, 0, 3, 0]);
        assert_eq!(built.levels, vec![4, 2, -2, 3]);
        assert_eq!(built.radius, vec![8.5, 0.0, 0.0, 0.5]);
        // Searches 1 + 2 + 2 + 3 distances, and the one pair of the second round.
        assert_eq!(built.evaluations, 9);
    }

    #[test]
    fn tiled_searches_build_the_parity_tree() {
        // Residual metric, points far apart in X with near-orthogonal rows of V: distances near 1, so
        // the first half of the points become children of the root, whose packed rows are kept from
        // round to round and split into tasks of TASK_CHILDREN. Each later point is a twin of an
        // earlier one: the same row of V, X moved by a scaled r2 of 0.04 to 0.16 (d about 0.2 to 0.35),
        // or not at all (an exact copy), so it lands under its twin through every column task.
        let (n, d, m) = (640, 3, 24);
        let mut x: Vec<f64> = values(n * d, 5).iter().map(|a| a * 40.0).collect();
        let mut v: Vec<f64> = values(n * m, 6).iter().map(|a| a * 0.2).collect();
        let shift = values(n, 7);
        for i in n / 2..n {
            let twin = i - n / 2;
            v.copy_within(twin * m..(twin + 1) * m, i * m);
            x.copy_within(twin * d..(twin + 1) * d, i * d);
            if twin % 50 != 0 {
                x[i * d] += 0.2 + 0.2 * shift[i].abs();
            }
        }
        let p: Vec<f64> = (0..n)
            .map(|i| 1.0 - v[i * m..(i + 1) * m].iter().map(|a| a * a).sum::<f64>())
            .collect();
        let data = MetricData {
            metric: Metric::Residual,
            kernel: Kernel::Rbf,
            variance: 1.0,
            lengthscale: &[1.0, 1.5, 2.0],
            x: Matrix::new("X", &x, n, d).unwrap(),
            v: Matrix::new("V", &v, n, m).unwrap(),
            p: &p,
            slack: 0.0,
        };
        let order: Vec<i64> = (0..n as i64).collect();
        let parity =
            build_tree_batch(&data, &order, Mode::Parity, 64, Some(1), &Stop::default()).unwrap();
        let twins = (n / 2..n).filter(|&i| parity.parents[i] == (i - n / 2) as i64);
        assert!(
            twins.count() > n / 2 - 8,
            "nearly every twin under its twin"
        );
        let root_children = parity.parents.iter().filter(|&&a| a == 0).count();
        assert!(
            root_children > 2 * 128,
            "{root_children} children of the root"
        );
        for threads in [1, 2] {
            let perf = build_tree_batch(
                &data,
                &order,
                Mode::Perf,
                64,
                Some(threads),
                &Stop::default(),
            )
            .unwrap();
            assert_eq!(perf, parity);
        }
    }

    #[test]
    fn rejects_a_zero_block() {
        let x = lattice();
        assert!(matches!(
            build_tree_batch(
                &plane(&x),
                &natural(200),
                Mode::Parity,
                0,
                None,
                &Stop::default()
            ),
            Err(CoreError::BadValue { what: "block", .. })
        ));
    }
}
