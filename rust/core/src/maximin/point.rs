//! What one unplaced point keeps while the points placed before it stream past: the k smallest upper
//! bounds on its screening keys (their largest is T), the pairs whose interval starts at or below
//! `widen(T)` (candidates, canonical distance evaluated lazily), and `dist`, its canonical distance to
//! the nearest placed point, kept exact.
//!
//! A pair whose `lo` exceeds `widen(T)` is canonically farther than the point's k-th neighbour (at least
//! k placed points are at or below T; dense/screen.rs proves the widening) and is never kept. A pair is
//! evaluated at once only when its interval reaches the key of `dist` (it may be the new nearest), so
//! `dist` stays exact; the other candidates are evaluated when the point is placed, and only those still
//! under the cut-off. No pair is evaluated twice. A Euclidean pair offered by its exact key
//! ([`Point::admit_exact`]) comes with its canonical distance, which its candidate holds at once.

use super::split::prefetch_line;
use crate::dense::{open_pairs, widen, Sink, UpperBounds};
use crate::evaluate::Mode;
use crate::heap::Heap;
use crate::metric::{distance, Metric, MetricData};

const EPS: f64 = f64::EPSILON;

/// An upper bound on the screening key of a pair at canonical distance d, so that a pair whose `lo`
/// exceeds `widen` of it is canonically farther than d. Residual (key -s, d = sqrt(1 - s) rounded):
/// s >= (1 - d d) - 8 eps. Euclidean (key = the squared sum): at most d d (1 + 4 eps). The same bound
/// as covertreex/maximin_dense.py's `_key_bound`.
fn key_bound(metric: Metric, d: f64) -> f64 {
    match metric {
        Metric::Euclidean => d * d * (1.0 + 4.0 * EPS),
        Metric::Residual => -((1.0 - d * d) - 8.0 * EPS),
    }
}

/// A placed point that may still enter the row: its key's lower bound, its position in the order and
/// its canonical distance (NaN until evaluated).
#[derive(Debug, Clone, Copy)]
struct Candidate {
    lo: f64,
    pos: usize,
    d: f64,
}

/// What every point reads: the metric's data, the order so far and the sizes of the state.
pub struct Placed<'a> {
    pub data: &'a MetricData<'a>,
    /// Dataset index of each placed position.
    pub order: &'a [usize],
    /// Neighbours per row (upper bounds kept per point), >= 1.
    pub k: usize,
    /// Candidates a point holds at least before it drops the excluded ones (> k; see `Point::limit`).
    pub room: usize,
}

/// The state of one unplaced point (see the module docs).
#[derive(Debug, Clone)]
pub struct Point {
    bounds: UpperBounds,
    /// min(widen(T), max(floor, near)): a pair whose `lo` exceeds it is canonically farther than the
    /// k-th (inf until k seen) or beyond the floor, and not the new nearest either. Without a floor
    /// (inf), widen(T).
    cutoff: f64,
    /// The key beyond which pairs are not kept for the row (inf: none); a row whose widen(T) ends
    /// above it is not proven ([`Point::finish`]).
    floor: f64,
    candidates: Vec<Candidate>,
    /// Candidates held when the excluded ones are next dropped: twice those left by the last drop, at
    /// least `room` (0: `room`), so a drop scans O(1) candidates per pair admitted since the last.
    limit: usize,
    /// Canonical distance to the nearest placed point (inf before the first).
    pub dist: f64,
    /// widen(key_bound(dist)): a pair whose `lo` reaches it may be the new nearest.
    near: f64,
    /// Canonical distances evaluated for this point.
    pub evaluations: i64,
}

impl Point {
    /// A point keeping the `k` smallest upper bounds (k >= 1; 0: the empty state a placed point leaves),
    /// and pairs for its row up to the key `floor` (inf: all of them).
    pub fn new(k: usize, floor: f64) -> Point {
        Point {
            bounds: UpperBounds::new(k),
            cutoff: f64::INFINITY,
            floor,
            candidates: Vec::new(),
            limit: 0,
            dist: f64::INFINITY,
            near: f64::INFINITY,
            evaluations: 0,
        }
    }

    /// Offer the pair with the point placed at `pos`, given its key interval [lo, hi]; `j` is this
    /// point's dataset index. The bounds hear `hi` only if it may be among the k smallest: once k are
    /// kept, T <= widen(T) <= hi leaves them unchanged.
    fn admit(&mut self, at: &Placed, j: usize, pos: usize, lo: f64, hi: f64) {
        self.admit_known(at, j, pos, lo, hi, f64::NAN);
    }

    /// `admit`, given the pair's canonical distance `d` if known (NaN: evaluated when needed).
    fn admit_known(&mut self, at: &Placed, j: usize, pos: usize, lo: f64, hi: f64, d: f64) {
        let metric = at.data.metric;
        if (self.cutoff == f64::INFINITY || hi < self.cutoff) && self.bounds.offer(hi) {
            self.set_cutoff(metric);
        }
        if lo > self.cutoff {
            return;
        }
        if self.candidates.len() >= self.limit.max(at.room) {
            self.make_room(at, j);
        }
        self.candidates.push(Candidate { lo, pos, d });
        if !d.is_nan() {
            self.evaluations += 1;
            self.fold(metric, d);
        } else if lo <= self.near {
            let e = self.candidates.len() - 1;
            self.evaluate(at, j, e);
        }
    }

    /// Offer the Euclidean pair with the point placed at `pos` by its exact key, the canonical squared
    /// sum (`metric::squared_sum`, the placed point first): unless the key reaches the threshold, `admit`
    /// of the interval [key, key], whose canonical distance, the key's square root as
    /// `metric::distance` takes it, the candidate holds at once (an evaluation, without reading the two
    /// rows again).
    pub fn admit_exact(&mut self, at: &Placed, j: usize, pos: usize, key: f64) {
        if key < self.threshold() {
            self.admit_known(at, j, pos, key, key, key.sqrt());
        }
    }

    /// T, the k-th smallest upper bound held (inf until k): a pair whose canonical key is at or above it
    /// can change nothing, with no margin. Each of the k pairs behind T has a canonical key <= T <= that
    /// key, hence a distance no larger (rounding is monotone), and an earlier position (pairs arrive in
    /// position order): all k come before it by (distance, position), and the nearest is among them.
    pub fn threshold(&self) -> f64 {
        self.bounds.threshold()
    }

    /// Hint the CPU to fetch what an admission reads and writes beyond this state: its bounds' heap top
    /// and the end of its candidates.
    pub fn prefetch(&self) {
        if let Some(top) = self.bounds.keys().first() {
            prefetch_line(top);
        }
        if let Some(last) = self.candidates.last() {
            prefetch_line(last);
        }
    }

    /// widen(T): a pair whose key exceeds it can change nothing here (the module docs).
    pub fn cutoff(&self) -> f64 {
        self.cutoff
    }

    /// The canonical distance of candidate `e` (once), folded into `dist`.
    fn evaluate(&mut self, at: &Placed, j: usize, e: usize) -> f64 {
        let candidate = &mut self.candidates[e];
        if candidate.d.is_nan() {
            let c = at.order[candidate.pos];
            candidate.d = distance(at.data, c, c as i64, at.data, j);
            self.evaluations += 1;
            let d = candidate.d;
            self.fold(at.data.metric, d);
        }
        self.candidates[e].d
    }

    /// Fold a candidate's canonical distance `d` into `dist` (and the bound `near` that follows it).
    fn fold(&mut self, metric: Metric, d: f64) {
        if d < self.dist {
            self.dist = d;
            self.near = widen(metric, key_bound(metric, d));
            self.set_cutoff(metric);
        }
    }

    /// The cut-off from T, the floor and `near`. Only falls, as T and `near` do. A pair beyond it is
    /// beyond widen(T) (it cannot enter the row) or beyond the floor; and beyond `near`, so it cannot be
    /// the new nearest: `dist` stays exact whatever the floor.
    fn set_cutoff(&mut self, metric: Metric) {
        let kth = widen(metric, self.bounds.threshold());
        self.cutoff = kth.min(self.floor.max(self.near));
    }

    /// Whether the pairs left out can be proven beyond the row: each had a key above the cut-off of its
    /// time, at least min(widen(T), floor) for the final T, which is widen(T) when that is at most the
    /// floor (always without one).
    fn proven(&self, metric: Metric) -> bool {
        self.floor == f64::INFINITY || widen(metric, self.bounds.threshold()) <= self.floor
    }

    /// Drop the candidates the cut-off now excludes; if `room` or more are left (ties), evaluate them
    /// all and keep the k first by (distance, position): the others can never enter the row. A point
    /// thus holds fewer than 2 `room` candidates.
    fn make_room(&mut self, at: &Placed, j: usize) {
        let cutoff = self.cutoff;
        self.candidates.retain(|c| c.lo <= cutoff);
        self.limit = 2 * self.candidates.len();
        if self.candidates.len() < at.room {
            return;
        }
        let mut keys: Vec<(f64, usize)> = (0..self.candidates.len())
            .map(|e| (self.evaluate(at, j, e), self.candidates[e].pos))
            .collect();
        let by_key = |a: &(f64, usize), b: &(f64, usize)| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1));
        let last = *keys.select_nth_unstable_by(at.k - 1, by_key).1;
        self.candidates
            .retain(|c| by_key(&(c.d, c.pos), &last).is_le());
        self.limit = 2 * self.candidates.len();
    }

    /// This point's row, now that it is placed: the candidates under its cut-off, evaluated (those not
    /// yet in lockstep groups, bit for bit `metric::distance`), the k first by (distance, position) in
    /// `scratch.row` (positions). Frees the state. Returns whether the row is proven ([`Point::proven`]);
    /// an unproven one (the floor left out pairs that may belong) is not evaluated.
    pub fn finish(&mut self, at: &Placed, j: usize, scratch: &mut Scratch) -> bool {
        scratch.row.clear();
        if !self.proven(at.data.metric) {
            self.candidates = Vec::new();
            self.bounds = UpperBounds::new(0);
            return false;
        }
        let cutoff = self.cutoff;
        self.candidates.retain(|c| c.lo <= cutoff);
        scratch.points.clear();
        scratch.points.extend(
            (self.candidates.iter())
                .filter(|c| c.d.is_nan())
                .map(|c| at.order[c.pos]),
        );
        scratch.distances.clear();
        scratch.distances.resize(scratch.points.len(), 0.0);
        let (data, points) = (at.data, &scratch.points);
        Mode::Perf.distances(data, j, j as i64, data, points, &mut scratch.distances);
        self.evaluations += points.len() as i64;
        let mut fresh = scratch.distances.iter();
        for c in &mut self.candidates {
            if c.d.is_nan() {
                c.d = *fresh.next().unwrap_or(&f64::NAN);
            }
            scratch.row.offer(c.d, c.pos as i64);
        }
        self.candidates = Vec::new();
        self.bounds = UpperBounds::new(0);
        true
    }
}

/// Buffers of the placements (reused): the row being written and a lockstep group's points and
/// distances.
pub struct Scratch {
    pub row: Heap,
    points: Vec<usize>,
    distances: Vec<f64>,
}

impl Scratch {
    pub fn new(k: usize) -> Scratch {
        Scratch {
            row: Heap::new(k),
            points: Vec::new(),
            distances: Vec::new(),
        }
    }
}

/// A point's view as the dense screening's [`Sink`]: the screened row's column `j0 + t` is the point
/// placed at position `pos0 + t`.
pub struct Offers<'s, 'a> {
    pub point: &'s mut Point,
    pub at: &'s Placed<'a>,
    /// This point's dataset index.
    pub j: usize,
    pub j0: usize,
    pub pos0: usize,
    /// Only the pairs of these columns (first column, a bit per column from it), if given: the others'
    /// values were never computed (the split screen dropped them, maximin/split.rs).
    pub only: Option<(usize, u8)>,
}

impl Sink for Offers<'_, '_> {
    #[inline(always)]
    fn cutoff(&self) -> f64 {
        self.point.cutoff
    }

    /// Only the pairs at or below the cutoff on arrival are admitted: `admit` changes nothing for the
    /// others (hi >= lo > cutoff), and the cutoff only falls. Kept out of line: inlined into the
    /// screening loop (as LLVM chose once `admit` had a second caller) it slowed the outside
    /// screening of the pass by a fifth.
    #[inline(never)]
    fn offer(&mut self, j: usize, lo: &[f64], hi: &[f64]) {
        let first = self.pos0 + j - self.j0;
        for i in open_pairs(lo, self.point.cutoff) {
            if let Some((column, bits)) = self.only {
                if (bits >> (j + i - column)) & 1 == 0 {
                    continue;
                }
            }
            self.point.admit(self.at, self.j, first + i, lo[i], hi[i]);
        }
    }
}

/// The column of a round's block Gram matrix at a point just placed at `pos`, as the [`Sink`] of its
/// screened row against the whole block: pair t goes to member t of the block unless that member is
/// placed. The metric and the bound are symmetric (any summation order of the dot product obeys it),
/// so the placed point's row gives each member a valid interval. Every member has its own cut-off, so
/// the row's groups are all offered (cut-off inf) and filtered here; `dists[t]` follows member t's
/// `dist`.
pub struct Column<'s, 'a> {
    pub pool: &'s mut super::pool::Pool,
    pub members: &'s [usize],
    pub placed: &'s [bool],
    pub dists: &'s mut [f64],
    pub at: &'s Placed<'a>,
    pub pos: usize,
}

impl Sink for Column<'_, '_> {
    #[inline(always)]
    fn cutoff(&self) -> f64 {
        f64::INFINITY
    }

    fn offer(&mut self, j: usize, lo: &[f64], hi: &[f64]) {
        for (i, (&lo, &hi)) in lo.iter().zip(hi).enumerate() {
            let member = self.members[j + i];
            if self.placed[member] {
                continue;
            }
            let point = self.pool.state(member);
            if lo <= point.cutoff {
                point.admit(self.at, member, self.pos, lo, hi);
                self.dists[j + i] = point.dist;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::plane;

    /// The exclusion rule keeps a pair whose `lo` lies within the widening margin above T and drops
    /// one just past it. Intervals are synthetic (the rule does not read the data); a real rounding tie
    /// at the k-th neighbour is out of reach of test data, since an interval's rigorous width (at
    /// least 16 eps on the residual key, 56 eps relative on the Euclidean one) exceeds the margin, so
    /// `lo` falls below T long before the canonical distances could tie.
    #[test]
    fn a_pair_within_the_widening_margin_above_t_stays_a_candidate() {
        let x = [0.0, 0.0, 1.0, 0.0, 2.0, 0.0, 3.0, 0.0];
        let data = plane(&x);
        let at = Placed {
            data: &data,
            order: &[0, 1, 2],
            k: 1,
            room: 8,
        };
        let t = 1.0;
        let margin = widen(Metric::Euclidean, t);
        assert!(margin > t);
        let mut point = Point::new(1, f64::INFINITY);
        point.admit(&at, 3, 0, t, t); // T = 1, and the point's nearest distance so far (3) is exact
        point.admit(&at, 3, 1, margin, 5.0);
        point.admit(&at, 3, 2, f64::from_bits(margin.to_bits() + 1), 5.0);
        let kept: Vec<usize> = point.candidates.iter().map(|c| c.pos).collect();
        assert_eq!(kept, [0, 1]);
    }

    /// Every pair ties (all points coincide), so the cut-off excludes none: the point must evaluate and
    /// keep k, never holding 2 `room` candidates or more, and its row is still the k first positions.
    #[test]
    fn ties_keep_fewer_than_twice_room_candidates() {
        let x = [0.0; 2 * 300];
        let data = plane(&x);
        let order: Vec<usize> = (0..299).collect();
        let at = Placed {
            data: &data,
            order: &order,
            k: 3,
            room: 8,
        };
        let mut point = Point::new(3, f64::INFINITY);
        for pos in 0..299 {
            point.admit(&at, 299, pos, 0.0, 0.0);
            assert!(point.candidates.len() < 2 * at.room, "at position {pos}");
        }
        let mut scratch = Scratch::new(3);
        point.finish(&at, 299, &mut scratch);
        let (mut indices, mut distances) = ([0i64; 3], [0.0; 3]);
        scratch.row.write_sorted(&mut indices, &mut distances);
        assert_eq!((indices, distances), ([0, 1, 2], [0.0; 3]));
    }
}
