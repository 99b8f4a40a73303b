//! Per-query selection of the dense path: a running k-th bound over the screened pairs, the candidates
//! that bound cannot exclude, and their canonical re-evaluation (in lockstep groups: each distance is
//! bit for bit `metric::distance`, but the groups' sequential sums overlap instead of waiting on one
//! 512-term add chain at a time).

use crate::evaluate::Mode;
use crate::heap::Heap;
use crate::metric::{Metric, MetricData};

use super::screen::{widen, Sink};

/// The k smallest upper bounds seen so far (a max-heap of keys): its top is the running threshold T.
/// Keys only: the k-th smallest value of a multiset does not depend on how ties are ordered.
#[derive(Debug, Clone)]
pub struct UpperBounds {
    keys: Vec<f64>,
    k: usize,
}

impl UpperBounds {
    pub fn new(k: usize) -> UpperBounds {
        UpperBounds {
            keys: Vec::with_capacity(k),
            k,
        }
    }

    /// The kept bounds, the heap's top (the threshold once k are kept) first.
    pub fn keys(&self) -> &[f64] {
        &self.keys
    }

    /// The k-th smallest upper bound (inf until k pairs were seen, and for k = 0: the empty bounds a
    /// placed point's state leaves hold none).
    pub fn threshold(&self) -> f64 {
        if self.keys.len() < self.k.max(1) {
            f64::INFINITY
        } else {
            self.keys[0]
        }
    }

    /// Keep `hi` if it is among the k smallest; return whether the threshold may have moved.
    pub fn offer(&mut self, hi: f64) -> bool {
        let keys = &mut self.keys;
        if keys.len() < self.k {
            keys.push(hi);
            let mut pos = keys.len() - 1;
            while pos > 0 {
                let parent = (pos - 1) / 2;
                if keys[parent] >= keys[pos] {
                    break;
                }
                keys.swap(parent, pos);
                pos = parent;
            }
            return true;
        }
        if hi >= keys[0] {
            return false;
        }
        // Sift the hole at the root down to where `hi` belongs (the larger child moves up), with the
        // same comparisons as swapping `hi` down, one write per level.
        let len = keys.len();
        let mut pos = 0;
        loop {
            let left = 2 * pos + 1;
            if left >= len {
                break;
            }
            let child = if left + 1 < len {
                left + (keys[left + 1] > keys[left]) as usize
            } else {
                left
            };
            if keys[child] <= hi {
                break;
            }
            keys[pos] = keys[child];
            pos = child;
        }
        keys[pos] = hi;
        true
    }
}

/// The screening hands a group to the selection only if some `lo` is at or below the cutoff: a group
/// whose `lo` all exceed it changes nothing (hi >= lo > cutoff too). The same holds pair by pair, and
/// the cutoff only falls, so of a group only the pairs at or below the cutoff on arrival (usually one)
/// are offered, one by one, in index order.
impl Sink for Selection {
    #[inline(always)]
    fn cutoff(&self) -> f64 {
        self.cutoff
    }

    fn offer(&mut self, j: usize, lo: &[f64], hi: &[f64]) {
        for i in open_pairs(lo, self.cutoff) {
            self.offer_pair(lo[i], hi[i], (j + i) as i64);
        }
    }
}

/// The positions, ascending, of a group's pairs whose `lo` is at or below `cutoff` (a bit mask built
/// with one vector compare; a group has at most 64 pairs).
#[inline(always)]
pub fn open_pairs(lo: &[f64], cutoff: f64) -> impl Iterator<Item = usize> {
    debug_assert!(lo.len() <= 64, "a group fits a 64-bit mask");
    let mut open =
        (lo.iter().enumerate()).fold(0u64, |mask, (i, &lo)| mask | ((lo <= cutoff) as u64) << i);
    std::iter::from_fn(move || {
        (open != 0).then(|| {
            let i = open.trailing_zeros() as usize;
            open &= open - 1;
            i
        })
    })
}

/// A worker's buffers for the canonical re-check (reused across queries).
#[derive(Debug, Clone, Default)]
pub struct Recheck {
    points: Vec<usize>,
    distances: Vec<f64>,
}

/// Everything one query keeps while its tiles stream past.
pub struct Selection {
    bounds: UpperBounds,
    /// (lo, index) of every pair not yet excluded, in increasing index order.
    candidates: Vec<(f64, i64)>,
    /// The current `widen(T)`: a pair whose `lo` exceeds it is excluded.
    cutoff: f64,
    /// The candidate count at which the next compaction runs: at least 8k + 256, and twice what the
    /// last one kept, so that candidates no threshold can exclude (thousands of exact ties) cost
    /// amortised O(1) per pair instead of a scan of them all on every push (10,000 identical points,
    /// predecessor k = 10: 46 s, against 0.6 s on the tree path).
    compact_at: usize,
    /// Eligible pairs screened.
    pub screened: i64,
    /// Point tiles that held an eligible pair.
    pub tiles: i64,
    metric: Metric,
}

impl Selection {
    pub fn new(k: usize, metric: Metric) -> Selection {
        Selection {
            bounds: UpperBounds::new(k),
            candidates: Vec::new(),
            cutoff: f64::INFINITY,
            compact_at: Self::fewest_before_compacting(k),
            screened: 0,
            tiles: 0,
            metric,
        }
    }

    fn fewest_before_compacting(k: usize) -> usize {
        8 * k + 256
    }

    /// Screen one pair with key bounds (lo, hi).
    #[inline]
    fn offer_pair(&mut self, lo: f64, hi: f64, index: i64) {
        if hi < self.cutoff && self.bounds.offer(hi) {
            self.cutoff = widen(self.metric, self.bounds.threshold());
        }
        if lo <= self.cutoff {
            self.candidates.push((lo, index));
            if self.candidates.len() >= self.compact_at {
                self.compact();
                self.compact_at =
                    Self::fewest_before_compacting(self.bounds.k).max(2 * self.candidates.len());
            }
        }
    }

    /// Take over the selection of the same query over later points. The k smallest `hi` of the union
    /// are among the two sets of k smallest kept, so the threshold becomes the one a single scan of
    /// both ranges reaches (the k-th smallest finite `hi` of all pairs seen, which no scan order
    /// changes), and every pair either side excluded has its `lo` above its cutoff. The candidates stay
    /// in increasing index order.
    pub fn absorb(&mut self, later: Selection) {
        for hi in later.bounds.keys {
            if hi < self.cutoff && self.bounds.offer(hi) {
                self.cutoff = widen(self.metric, self.bounds.threshold());
            }
        }
        self.candidates.extend(later.candidates);
        self.compact();
        self.screened += later.screened;
        self.tiles += later.tiles;
    }

    /// Drop the candidates the current threshold excludes (capacity stays bounded by ties alone).
    fn compact(&mut self) {
        let cutoff = self.cutoff;
        self.candidates.retain(|(lo, _)| *lo <= cutoff);
    }

    /// Canonical distances of the surviving candidates into `heap`, offered in index order:
    /// (evaluations, heap pushes). `scratch` holds the candidates' indices and distances.
    pub fn finish(
        &mut self,
        heap: &mut Heap,
        scratch: &mut Recheck,
        queries: &MetricData,
        row: usize,
        index: i64,
        data: &MetricData,
    ) -> (i64, i64) {
        self.compact();
        scratch.points.clear();
        scratch
            .points
            .extend(self.candidates.iter().map(|&(_, j)| j as usize));
        scratch.distances.clear();
        scratch.distances.resize(scratch.points.len(), 0.0);
        Mode::Perf.distances(
            queries,
            row,
            index,
            data,
            &scratch.points,
            &mut scratch.distances,
        );
        heap.clear();
        let mut pushes = 0;
        for (&j, &d) in scratch.points.iter().zip(&scratch.distances) {
            pushes += heap.offer(d, j as i64) as i64;
        }
        (scratch.points.len() as i64, pushes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Pairs no threshold excludes (exact ties of the k-th distance) are all kept, and compactions run
    /// at geometrically growing sizes: 100,000 tied pairs cost about log2(100,000 / 336) compactions,
    /// not one per pair past the first 336.
    #[test]
    fn tied_candidates_are_compacted_a_logarithmic_number_of_times() {
        let k = 10;
        let mut selection = Selection::new(k, Metric::Euclidean);
        let mut compactions = 0;
        let mut last = selection.compact_at;
        for j in 0..100_000 {
            selection.offer_pair(0.0, 0.0, j);
            if selection.compact_at != last {
                compactions += 1;
                last = selection.compact_at;
            }
        }
        assert_eq!(selection.candidates.len(), 100_000);
        assert!(selection.candidates.windows(2).all(|w| w[0].1 < w[1].1));
        assert!((8..=10).contains(&compactions), "{compactions} compactions");
        assert!(selection.compact_at <= 2 * 100_000 + 2);
    }

    /// Pairs a later threshold excludes still go at the next compaction, however large the tie group
    /// kept before it.
    #[test]
    fn excluded_candidates_are_dropped_at_the_next_compaction() {
        let k = 2;
        let mut selection = Selection::new(k, Metric::Euclidean);
        let least = Selection::fewest_before_compacting(k);
        for j in 0..(3 * least as i64) {
            selection.offer_pair(5.0, 5.0, j);
        }
        assert!(selection.compact_at > least);
        for j in 0..(4 * least as i64) {
            selection.offer_pair(1.0, 1.0, 1_000_000 + j);
        }
        assert!(selection.candidates.iter().all(|&(lo, _)| lo == 1.0));
        assert_eq!(selection.candidates.len(), 4 * least);
    }
}
