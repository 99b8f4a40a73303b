//! Per-query selection of the dense path: a running k-th bound over the screened pairs, the candidates
//! that bound cannot exclude, and their canonical re-evaluation.

use crate::heap::Heap;
use crate::metric::{distance, MetricData};

use super::screen::Screen;

/// The k smallest upper bounds seen so far (a max-heap of keys): its top is the running threshold T.
#[derive(Debug, Clone)]
struct UpperBounds {
    keys: Vec<f64>,
    k: usize,
}

impl UpperBounds {
    fn new(k: usize) -> UpperBounds {
        UpperBounds {
            keys: Vec::with_capacity(k),
            k,
        }
    }

    /// The k-th smallest upper bound (inf until k pairs were seen).
    fn threshold(&self) -> f64 {
        if self.keys.len() < self.k {
            f64::INFINITY
        } else {
            self.keys[0]
        }
    }

    /// Keep `hi` if it is among the k smallest; return whether the threshold may have moved.
    fn offer(&mut self, hi: f64) -> bool {
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
        keys[0] = hi;
        let mut pos = 0;
        loop {
            let mut child = 2 * pos + 1;
            if child >= keys.len() {
                break;
            }
            if child + 1 < keys.len() && keys[child + 1] > keys[child] {
                child += 1;
            }
            if keys[child] <= keys[pos] {
                break;
            }
            keys.swap(child, pos);
            pos = child;
        }
        true
    }
}

/// Everything one query keeps while its tiles stream past.
pub struct Selection {
    bounds: UpperBounds,
    /// (lo, index) of every pair not yet excluded, in increasing index order.
    candidates: Vec<(f64, i64)>,
    /// The current `widen(T)`: a pair whose `lo` exceeds it is excluded.
    cutoff: f64,
    /// Eligible pairs screened.
    pub screened: i64,
}

impl Selection {
    pub fn new(k: usize) -> Selection {
        Selection {
            bounds: UpperBounds::new(k),
            candidates: Vec::new(),
            cutoff: f64::INFINITY,
            screened: 0,
        }
    }

    /// Screen one pair with key bounds (lo, hi).
    #[inline]
    fn offer(&mut self, screen: &Screen, lo: f64, hi: f64, index: i64) {
        if hi < self.cutoff && self.bounds.offer(hi) {
            self.cutoff = screen.widen(self.bounds.threshold());
        }
        if lo <= self.cutoff {
            self.candidates.push((lo, index));
            if self.candidates.len() >= 8 * self.bounds.k + 256 {
                self.compact();
            }
        }
    }

    /// Screen the pairs of points j0, j0 + 1, .. with key bounds `lo[i]`, `hi[i]`. A run of pairs whose
    /// `lo` all exceed the cutoff changes nothing (hi >= lo > cutoff too), so such runs are skipped
    /// after one branch-free (vectorised) test; the rest are offered one by one, in index order.
    pub fn offer_row(&mut self, screen: &Screen, lo: &[f64], hi: &[f64], j0: usize) {
        const RUN: usize = 16;
        for (r, (lo, hi)) in lo.chunks(RUN).zip(hi.chunks(RUN)).enumerate() {
            let cutoff = self.cutoff;
            if !lo.iter().fold(false, |any, &l| any | (l <= cutoff)) {
                continue;
            }
            for ((j, &lo), &hi) in (j0 + r * RUN..).zip(lo).zip(hi) {
                self.offer(screen, lo, hi, j as i64);
            }
        }
    }

    /// Drop the candidates the current threshold excludes (capacity stays bounded by ties alone).
    fn compact(&mut self) {
        let cutoff = self.cutoff;
        self.candidates.retain(|(lo, _)| *lo <= cutoff);
    }

    /// Canonical distances of the surviving candidates into `heap`: (evaluations, heap pushes).
    pub fn finish(
        &mut self,
        heap: &mut Heap,
        queries: &MetricData,
        row: usize,
        index: i64,
        data: &MetricData,
    ) -> (i64, i64) {
        self.compact();
        heap.clear();
        let mut pushes = 0;
        for &(_, j) in &self.candidates {
            let d = distance(queries, row, index, data, j as usize);
            pushes += heap.offer(d, j) as i64;
        }
        (self.candidates.len() as i64, pushes)
    }
}
