//! The unplaced points: their GEMM operand rows in one contiguous buffer and their states beside them,
//! in the same slots (packed, but for the holes regions leave between packings, below). A round screens the pool a slab of consecutive slots at a time, so a
//! tile's GEMM reads its rows where they lie (no gather of the outside rows per tile, which cost ~8% of
//! the pass's samples as memmove), and the states of a slab are one disjoint `&mut` slice.
//!
//! The slots are cut into regions; a placed point leaves by swap-remove within its region (the region's
//! last live slot moves into its hole, O(width) per placement), so a region only ever loses points. With
//! one region (residual data) that is the pool's last slot, as it always was. Euclidean data takes
//! regions of one slab each, its points first sorted along a Hilbert curve, and every region keeps the
//! bounding box of the coordinates it held when last compacted: a box of nearby points, valid for as
//! long as the region only loses them, which lets a round skip the pairs no point of the slab can use
//! (boxes.rs). When half the slots are holes, the live ones are packed again in the same order and the
//! boxes recomputed (at most log2 N times). The slots' order thus depends on the placements alone (never
//! on the thread count). A GEMM value does not depend on where its row sits in a tile of the `gemm`
//! crate's blocked path (one pass over the depth, the same accumulation per element), so moving rows
//! between tiles changes no screening bound.

use std::cmp::Ordering;
use std::collections::BinaryHeap;

use rayon::prelude::*;

use super::point::Point;

const GONE: usize = usize::MAX;

pub struct Pool {
    width: usize,
    /// Slots per region.
    region: usize,
    /// Operand rows of the pool, slot after slot (slots x width).
    rows: Vec<f64>,
    /// Dataset index of each slot (meaningful in the live slots only).
    members: Vec<usize>,
    /// State of each slot's point.
    states: Vec<Point>,
    /// Each slot's state's `dist` and threshold, copied out (`Mark::of`) after every change, so that the
    /// scans of every round (the ranking, each slab's largest threshold) read 16 bytes a point rather
    /// than its whole state.
    marks: Vec<Mark>,
    /// Live slots of each region: its first ones.
    live: Vec<usize>,
    /// Per region, the lowest then the highest value of each operand column over the points it held
    /// when last packed (empty without boxes).
    boxes: Vec<f64>,
    /// Slot of each dataset index (GONE once placed).
    slot: Vec<usize>,
    count: usize,
}

/// A point's maximin key and threshold, as its state last had them.
#[derive(Debug, Clone, Copy)]
pub struct Mark {
    pub dist: f64,
    /// The k-th smallest upper bound (`point::Point::threshold`): an exact key at or above it can
    /// change nothing.
    pub threshold: f64,
}

impl Mark {
    pub fn of(point: &Point) -> Mark {
        Mark {
            dist: point.dist,
            threshold: point.threshold(),
        }
    }
}

/// A point in maximin order: (key, dataset index), the smaller the better (larger key, then smaller
/// index), so a max-heap of them has the worst kept point on top.
#[derive(Debug, Clone, Copy)]
struct Ranked(f64, usize);

impl Ord for Ranked {
    fn cmp(&self, other: &Self) -> Ordering {
        other.0.total_cmp(&self.0).then(self.1.cmp(&other.1))
    }
}

impl PartialOrd for Ranked {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for Ranked {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Ranked {}

/// One slab of consecutive live slots: operand rows, dataset indices, states, their marks, and its
/// region's box (lowest values, then highest; None without boxes).
pub type Slab<'p> = (
    &'p [f64],
    &'p [usize],
    &'p mut [Point],
    &'p mut [Mark],
    Option<&'p [f64]>,
);

impl Pool {
    /// The `n` points of an operand of `width` columns (`values`, row-major), in slots in the order
    /// `order`, each with state `state`. `region`: None for one region of every slot (no boxes), else
    /// slots per region, each with its box.
    pub fn new(
        values: &[f64],
        order: Vec<usize>,
        width: usize,
        region: Option<usize>,
        state: impl Fn() -> Point,
    ) -> Pool {
        let n = order.len();
        let mut slot = vec![GONE; n];
        for (s, &j) in order.iter().enumerate() {
            slot[j] = s;
        }
        let mut pool = Pool {
            width,
            region: region.unwrap_or(n).max(1),
            rows: parallel_copy(values, &order, width),
            members: order,
            states: (0..n).map(|_| state()).collect(),
            marks: Vec::new(),
            live: Vec::new(),
            boxes: Vec::new(),
            slot,
            count: n,
        };
        pool.live = (0..n.div_ceil(pool.region))
            .map(|b| pool.region.min(n - b * pool.region))
            .collect();
        pool.marks = pool.states.iter().map(Mark::of).collect();
        if region.is_some() {
            pool.measure_boxes();
        }
        pool
    }

    /// The state of dataset index `j` (unplaced).
    pub fn state(&mut self, j: usize) -> &mut Point {
        &mut self.states[self.slot[j]]
    }

    /// The canonical distance from `j` (unplaced) to its nearest placed point.
    pub fn dist(&self, j: usize) -> f64 {
        self.states[self.slot[j]].dist
    }

    /// Copy `j`'s state's key and threshold to its mark (after a change outside the slabs).
    pub fn mark(&mut self, j: usize) {
        let s = self.slot[j];
        self.marks[s] = Mark::of(&self.states[s]);
    }

    /// Take `j` out of the pool (its slot gets its region's last live row, state and index); return
    /// its state.
    pub fn remove(&mut self, j: usize) -> Point {
        let at = self.slot[j];
        let b = at / self.region;
        let last = b * self.region + self.live[b] - 1;
        let w = self.width;
        if at != last {
            self.rows.copy_within(last * w..(last + 1) * w, at * w);
            let moved = self.members[last];
            self.members[at] = moved;
            self.slot[moved] = at;
            self.states.swap(at, last);
            self.marks.swap(at, last);
        }
        self.live[b] -= 1;
        self.count -= 1;
        self.slot[j] = GONE;
        std::mem::replace(&mut self.states[last], Point::new(0, f64::INFINITY))
    }

    /// Every live slot's (dataset index, mark), in slot order.
    pub fn points(&self) -> impl Iterator<Item = (usize, Mark)> + '_ {
        let region = self.region;
        (self.live.iter().enumerate())
            .flat_map(move |(b, &live)| b * region..b * region + live)
            .map(|s| (self.members[s], self.marks[s]))
    }

    /// The `s` unplaced points with the best keys (`dist` descending, index ascending) in that order,
    /// and the best of the others (None if none is left): a heap of the s + 1 best while the marks
    /// stream past, so that the scan of every point, once a round, costs a comparison each.
    pub fn best(&self, s: usize) -> (Vec<usize>, Option<usize>) {
        let mut heap = BinaryHeap::with_capacity(s + 2);
        for (j, mark) in self.points() {
            let key = Ranked(mark.dist, j);
            if heap.len() <= s {
                heap.push(key);
            } else if let Some(mut worst) = heap.peek_mut() {
                if key < *worst {
                    *worst = key;
                }
            }
        }
        let mut ranked: Vec<usize> = heap
            .into_sorted_vec()
            .into_iter()
            .map(|Ranked(_, j)| j)
            .collect();
        let bound = (ranked.len() > s).then(|| ranked.pop()).flatten();
        (ranked, bound)
    }

    /// With boxes, pack the live slots again in their order once half the slots are holes.
    pub fn pack_if_sparse(&mut self) {
        if self.boxes.is_empty() || 2 * self.count > self.members.len() {
            return;
        }
        let live: Vec<usize> = (self.live.iter().enumerate())
            .flat_map(|(b, &live)| b * self.region..b * self.region + live)
            .collect();
        let w = self.width;
        self.rows = (live.iter())
            .flat_map(|&s| &self.rows[s * w..(s + 1) * w])
            .copied()
            .collect();
        self.members = live.iter().map(|&s| self.members[s]).collect();
        self.marks = live.iter().map(|&s| self.marks[s]).collect();
        let mut states = std::mem::take(&mut self.states);
        self.states = (live.iter())
            .map(|&s| std::mem::replace(&mut states[s], Point::new(0, f64::INFINITY)))
            .collect();
        for (s, &j) in self.members.iter().enumerate() {
            self.slot[j] = s;
        }
        let n = self.count;
        self.live = (0..n.div_ceil(self.region))
            .map(|b| self.region.min(n - b * self.region))
            .collect();
        self.measure_boxes();
    }

    /// Each region's box over its live rows.
    fn measure_boxes(&mut self) {
        let w = self.width;
        self.boxes = vec![0.0; self.live.len() * 2 * w];
        let regions = self.rows.chunks(self.region * w).zip(&self.live);
        for (bounds, (rows, &live)) in self.boxes.chunks_mut(2 * w).zip(regions) {
            let (lo, hi) = bounds.split_at_mut(w);
            lo.fill(f64::INFINITY);
            hi.fill(f64::NEG_INFINITY);
            for row in rows[..live * w].chunks(w) {
                for ((lo, hi), &x) in lo.iter_mut().zip(hi.iter_mut()).zip(row) {
                    *lo = lo.min(x);
                    *hi = hi.max(x);
                }
            }
        }
    }

    /// Slabs of at most `rows` consecutive live slots of one region, in parallel.
    pub fn slabs(&mut self, rows: usize) -> impl ParallelIterator<Item = Slab<'_>> + '_ {
        let Pool {
            width: w,
            region,
            rows: values,
            members,
            states,
            marks,
            live,
            boxes,
            ..
        } = self;
        let (w, region) = (*w, *region);
        let mut slabs = Vec::new();
        let regions = states
            .chunks_mut(region)
            .zip(marks.chunks_mut(region))
            .zip(live.iter());
        for (b, ((states, marks), &live)) in regions.enumerate() {
            let first = b * region;
            let bounds = (!boxes.is_empty()).then(|| &boxes[b * 2 * w..(b + 1) * 2 * w]);
            let parts = (members[first..first + live].chunks(rows))
                .zip(states[..live].chunks_mut(rows))
                .zip(marks[..live].chunks_mut(rows));
            for (c, ((members, states), marks)) in parts.enumerate() {
                let s = first + c * rows;
                let values = &values[s * w..(s + members.len()) * w];
                slabs.push((values, members, states, marks, bounds));
            }
        }
        slabs.into_par_iter()
    }
}

/// The rows `order` of `values` (rows of `width`), copied by every worker: the pages of a copy of V
/// (64 MiB at N = 32,768, m = 512) are first touched by the writes, and faulting them in on one core
/// took longer than the copying.
fn parallel_copy(values: &[f64], order: &[usize], width: usize) -> Vec<f64> {
    const CHUNK: usize = 1 << 16;
    let mut copy = vec![0.0; order.len() * width];
    if width == 0 {
        return copy;
    }
    let rows = (CHUNK / width).max(1);
    copy.par_chunks_mut(rows * width)
        .zip(order.par_chunks(rows))
        .for_each(|(to, from)| {
            for (to, &j) in to.chunks_mut(width).zip(from) {
                to.copy_from_slice(&values[j * width..(j + 1) * width]);
            }
        });
    copy
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Ten points of one coordinate (value 10 j for point j) in slots in the order `order`, regions of
    /// four with boxes, each point's key `keys[j]`.
    fn pool(order: Vec<usize>, keys: &[f64]) -> Pool {
        let values: Vec<f64> = (0..10).map(|j| 10.0 * j as f64).collect();
        let mut pool = Pool::new(&values, order, 1, Some(4), || Point::new(1, f64::INFINITY));
        for (j, &key) in keys.iter().enumerate() {
            pool.state(j).dist = key;
            pool.mark(j);
        }
        pool
    }

    /// Each live slab's rows, indices and marks agree, and its box holds its rows.
    fn check_slabs(pool: &mut Pool) -> Vec<usize> {
        let mut seen = Vec::new();
        let slabs: Vec<_> = pool.slabs(3).collect();
        for (values, members, states, marks, bounds) in slabs {
            let (lo, hi) = bounds.expect("regions with boxes").split_at(1);
            for (r, &j) in members.iter().enumerate() {
                assert_eq!(values[r], 10.0 * j as f64);
                assert_eq!(marks[r].dist, states[r].dist);
                assert!(lo[0] <= values[r] && values[r] <= hi[0]);
                seen.push(j);
            }
        }
        seen
    }

    #[test]
    fn best_ranks_by_key_then_index_and_the_pool_survives_removals_and_packing() {
        let keys = [3.0, 5.0, 5.0, 1.0, 5.0, f64::INFINITY, 2.0, 0.0, 4.0, 5.0];
        let mut pool = pool(vec![9, 8, 7, 6, 5, 4, 3, 2, 1, 0], &keys);
        assert_eq!(pool.best(4), (vec![5, 1, 2, 4], Some(9)));
        assert_eq!(
            pool.best(20),
            (
                (0..10).map(|r| [5, 1, 2, 4, 9, 8, 0, 6, 3, 7][r]).collect(),
                None
            )
        );
        for j in [5, 2, 7, 9] {
            assert_eq!(pool.remove(j).dist, keys[j]);
        }
        assert_eq!(pool.best(3), (vec![1, 4, 8], Some(0)));
        let mut left = check_slabs(&mut pool);
        left.sort_unstable();
        assert_eq!(left, vec![0, 1, 3, 4, 6, 8]);
        pool.remove(1);
        // Swap-removes within regions left [6, 8 | 3, 4 | 0]; 5 of 10 slots live: packed in that order.
        let before: Vec<usize> = pool.points().map(|(j, _)| j).collect();
        assert_eq!(before, vec![6, 8, 3, 4, 0]);
        pool.pack_if_sparse();
        let order: Vec<usize> = pool.points().map(|(j, _)| j).collect();
        assert_eq!(order, before);
        assert_eq!(check_slabs(&mut pool), order);
        assert_eq!(pool.best(2), (vec![4, 8], Some(0)));
        assert_eq!(pool.dist(3), 1.0);
    }
}
