//! The exact maximin order of Euclidean points alone, on the packed boxes of the dense path's box
//! screen (dense/boxes.rs): the order of the fused pass (mod.rs) without its scan of every unplaced
//! point each round, which made the pass quadratic in N whatever the dimension.
//!
//! Every box keeps the best key (distance to the nearest placed point, larger first, then the smaller
//! index) of the unplaced points under it, so the next point is the top box's. Placing point c lowers
//! only the distances of points nearer to c than their own distance. A box is skipped when the square
//! root of its lower bound ([`gap_bound`](crate::dense::gap_bound), never above the canonical squared
//! sum from c to any of its points) is at or above its best distance: each of its points is then at
//! least that far from c, so at least as far as its own distance, and min() keeps it. Otherwise its
//! children are visited and its key is recomputed from theirs on the way back; the boxes holding c are
//! always visited (their keys lose c). Distances are [`squared_sum`](crate::metric::squared_sum)'s
//! canonical sums and their correctly rounded square roots, so the order is the brute-force order bit
//! for bit, ties to the smaller index.
//!
//! Work: the point placed r-th is the farthest, at distance l_r, so every unplaced point is within l_r
//! of a placed one; the boxes its placement visits lie near the ball of radius l_r around it, which
//! holds about N / r points in a few dimensions: O(N log N) evaluations in all. In many dimensions
//! every box is near every point and the fused pass's GEMM tiles do the same work faster.

use super::{better, check_first};
use crate::dense::boxes::{level_starts, pack, Boxes, FAN, LEAF, MAX_LEAF};
use crate::errors::Result;
use crate::metric::Matrix;
use crate::stop::Stop;

/// Placements between two progress reports and stop checks.
const REPORT_EVERY: usize = 4096;

/// The distance of a placed point: below every distance, so never a box's best key and never lowered.
const PLACED: f64 = f64::NEG_INFINITY;

/// The exact maximin order of some points and the canonical distances it evaluated.
#[derive(Debug, Clone, PartialEq)]
pub struct MaximinOrder {
    /// Dataset index at each position.
    pub order: Vec<i64>,
    /// Canonical distances evaluated (pairs of a placed point with the unplaced points of the leaves
    /// its placement opened).
    pub evaluations: i64,
}

struct Farthest<'a> {
    boxes: Boxes<'a>,
    points: Matrix<'a>,
    /// The first box of each level, leaves first ([`level_starts`]).
    starts: Vec<usize>,
    /// The distance to the nearest placed point of the point at each position of the packing.
    dist: Vec<f64>,
    /// Every box's best key among its unplaced points ([`PLACED`] when none is left).
    best_dist: Vec<f64>,
    best_index: Vec<i64>,
    /// Per level, the box (numbered within its level) that holds the point being placed.
    home: Vec<usize>,
    evaluations: i64,
}

impl Farthest<'_> {
    /// Put the point at packing position `at` (dataset index `c`) in place: lower the distances it
    /// lowers and every key on the way.
    fn place(&mut self, c: usize, at: usize) {
        self.dist[at] = PLACED;
        let mut home = at / LEAF;
        for level in self.home.iter_mut() {
            *level = home;
            home /= FAN;
        }
        let top = self.starts.len() - 2;
        self.visit(top, 0, self.points.row(c));
    }

    /// Update box `node` of `level` (numbered within it; 0: a leaf) for a point placed at `query`.
    fn visit(&mut self, level: usize, node: usize, query: &[f64]) {
        if level == 0 {
            return self.open(node, query);
        }
        let (first, children) = self.boxes.children(&self.starts, level, node);
        for child in children.clone() {
            let holds_placed = self.home[level - 1] == child - first;
            if holds_placed || self.best_dist[child] > self.boxes.bound(child, query).sqrt() {
                self.visit(level - 1, child - first, query);
            }
        }
        let (d, i) = self.best_of(children);
        let own = self.starts[level] + node;
        (self.best_dist[own], self.best_index[own]) = (d, i);
    }

    /// The best key of boxes `range` (global numbers).
    fn best_of(&self, range: std::ops::Range<usize>) -> (f64, i64) {
        let mut best = (PLACED, i64::MAX);
        for b in range {
            if better(self.best_dist[b], self.best_index[b], best.0, best.1) {
                best = (self.best_dist[b], self.best_index[b]);
            }
        }
        best
    }

    /// Lower the distances of leaf `leaf`'s unplaced points to the point placed at `query`, and set
    /// the leaf's key.
    fn open(&mut self, leaf: usize, query: &[f64]) {
        let mut sums = [0.0f64; MAX_LEAF];
        let members = self.boxes.leaf_sums(leaf, query, &mut sums);
        let first = leaf * LEAF;
        let mut best = (PLACED, i64::MAX);
        for (t, (&index, &sum)) in members.iter().zip(&sums).enumerate() {
            let dist = &mut self.dist[first + t];
            if *dist == PLACED {
                continue;
            }
            self.evaluations += 1;
            *dist = dist.min(sum.sqrt());
            if better(*dist, index, best.0, best.1) {
                best = (*dist, index);
            }
        }
        (self.best_dist[leaf], self.best_index[leaf]) = best;
    }
}

/// The exact maximin order of the Euclidean points `x` from point `first` (the farthest point from
/// those placed next, ties to the smallest index), by the boxes (see the module docs); `threads`: the
/// packing's workers (None: rayon's global pool; the placements are serial). `progress(order)` hears
/// the order so far every 4,096 placements and at the end (once): a prefix of the order is final, so
/// a caller may answer its points' predecessor rows while the rest is placed; `stop` ends the call
/// early.
pub fn maximin_order(
    x: Matrix,
    first: i64,
    threads: Option<i64>,
    progress: &mut (dyn FnMut(&[i64]) + Send),
    stop: &Stop,
) -> Result<MaximinOrder> {
    let n = x.rows();
    check_first(first, n)?;
    let packed = pack(x, threads)?;
    let boxes = Boxes::new(packed.arrays(), n, x.cols())?;
    let starts = level_starts(n, LEAF, FAN);
    let n_boxes = starts[starts.len() - 1];
    let mut position = vec![0; n];
    for (at, &j) in packed.order.iter().enumerate() {
        position[j as usize] = at;
    }
    let mut pass = Farthest {
        boxes,
        points: x,
        dist: vec![f64::INFINITY; n],
        best_dist: vec![f64::INFINITY; n_boxes],
        // Before any placement every point's key is (inf, its index): a box's best is its least index.
        best_index: packed.least.clone(),
        home: vec![0; starts.len() - 1],
        starts,
        evaluations: 0,
    };
    let mut order = Vec::with_capacity(n);
    let mut c = first as usize;
    for placed in 1..=n {
        order.push(c as i64);
        pass.place(c, position[c]);
        if placed % REPORT_EVERY == 0 {
            stop.check()?;
            progress(&order);
        }
        if placed < n {
            c = pass.best_index[n_boxes - 1] as usize; // the top box's best
        }
    }
    if !n.is_multiple_of(REPORT_EVERY) {
        progress(&order);
    }
    Ok(MaximinOrder {
        order,
        evaluations: pass.evaluations,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::errors::CoreError;
    use crate::testing::{brute_maximin, lattice, points};

    fn ordered(x: &[f64], d: usize, first: i64) -> MaximinOrder {
        let m = Matrix::new("X", x, x.len() / d, d).unwrap();
        maximin_order(m, first, Some(1), &mut |_: &[i64]| {}, &Stop::default()).unwrap()
    }

    #[test]
    fn lattices_duplicates_and_random_points_are_brute_force() {
        let mut state = 0x9e37_79b9_7f4a_7c15_u64;
        let mut cases = vec![(lattice(), 2), (vec![5.0], 1)];
        for (kind, n, d) in [(0, 700, 3), (1, 300, 2), (2, 200, 2), (0, 129, 1)] {
            cases.push((points(kind, n, d, &mut state), d));
        }
        // Squares that underflow (every distance 0) or overflow (pairs across the groups at inf).
        cases.push((
            (0..100)
                .map(|i| f64::from(i % 7) * 2f64.powi(-1070))
                .collect(),
            2,
        ));
        let huge = (0..60).map(|i| f64::from(i % 9) * if i % 3 == 0 { 1e200 } else { 1.0 });
        cases.push((huge.collect(), 1));
        for (x, d) in &cases {
            let n = x.len() / d;
            for first in [0, n / 2, n - 1] {
                assert_eq!(
                    ordered(x, *d, first as i64).order,
                    brute_maximin(x, *d, first)
                );
            }
        }
    }

    #[test]
    fn progress_hears_final_prefixes_of_the_order() {
        let mut state = 0x2545_f491_4f6c_dd1d_u64;
        let x = points(0, 2 * REPORT_EVERY + 100, 2, &mut state);
        let m = Matrix::new("X", &x, x.len() / 2, 2).unwrap();
        let mut heard: Vec<Vec<i64>> = Vec::new();
        let out = maximin_order(
            m,
            0,
            Some(1),
            &mut |o: &[i64]| heard.push(o.to_vec()),
            &Stop::default(),
        );
        let order = out.unwrap().order;
        let lengths: Vec<usize> = heard.iter().map(Vec::len).collect();
        assert_eq!(lengths, [REPORT_EVERY, 2 * REPORT_EVERY, order.len()]);
        assert!(heard.iter().all(|prefix| order.starts_with(prefix)));
    }

    #[test]
    fn the_first_point_must_be_a_point() {
        let x = [0.0, 1.0, 2.0];
        let m = Matrix::new("X", &x, 3, 1).unwrap();
        for first in [-1, 3] {
            let got = maximin_order(m, first, None, &mut |_: &[i64]| {}, &Stop::default());
            assert!(matches!(got, Err(CoreError::IndexOutOfRange { .. })));
        }
    }
}
