//! The box screen of the dense path: Euclidean points of a few coordinates, packed by median cuts
//! ([`split_order`]) into leaves of [`LEAF`] points, each leaf with the bounding box of its points, and
//! boxes of [`FAN`] boxes above them up to one box of everything (a packed R-tree). A query visits
//! boxes nearest first and skips every box whose lower bound on the distance to any of its points exceeds its running
//! k-th distance; the points of the leaves it opens are evaluated canonically. In a few dimensions a
//! query opens a few leaves near it, where the GEMM screen went through every pair (and cKDTree answered
//! 10-40x faster than either path: docs/benchmarks.md, "The auto path's Euclidean cost", then "The box
//! screen").
//!
//! Exact with no error analysis: the lower bound of a box is [`gap_bound`] (coordinate by coordinate
//! the gap from the query to the box, squared and summed in the canonical order), which never exceeds the
//! canonical squared sum of any point of the box (its argument is on `gap_bound`); `sqrt` is correctly
//! rounded, so monotone, and a box is skipped only when the square root of its bound is *above* the k-th
//! distance: its points' distances are then above it too, and no tie at the k-th distance is lost. In
//! predecessor mode a box none of whose points is eligible (its smallest dataset index at or above the
//! query's limit) is skipped as well. Each query's search is sequential and its own, so answers and
//! counters depend on nothing but the query and the points (not on threads, blocks or query order).
//!
//! A tiny own R-tree rather than a crate's k-d tree: the answer must be ordered by (distance, index)
//! with the canonical distance bits, and a k-th-distance tie must go to the lowest index; the crates
//! (kiddo, kdtree) break ties as their traversal meets them.

use std::cmp;
use std::ops::Range;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, PoisonError};

use rayon::prelude::*;

use super::DenseOutput;
use crate::counters::{N_QUERY_COUNTERS, Q_EVALUATIONS, Q_HEAP_PUSHES, Q_PRUNES, Q_STEPS};
use crate::errors::{CoreError, Result};
use crate::heap::Heap;
use crate::hilbert::{self, span_of};
use crate::metric::{all_finite, Matrix, Metric, MetricData};
use crate::query::{check_query_rows, run_on, thread_pool, QueryBatch};
use crate::stop::Stop;

/// A lower bound on the canonical squared sum ([`squared_sum`](crate::metric::squared_sum)) between `x`
/// and every point of the box (`lo`, `hi`), exactly, with no error analysis: coordinate by coordinate
/// |y_i - x_i| >= e_i for a point y of the box, where e_i is lo_i - x_i, x_i - hi_i or 0; rounding to
/// nearest is monotone and symmetric, so |fl(x_i - y_i)| >= fl(e_i) and the rounded squares keep that
/// order; and both sums add these non-negative terms in the same index order from 0, each rounded
/// addition monotone in both operands.
pub fn gap_bound(x: &[f64], lo: &[f64], hi: &[f64]) -> f64 {
    let mut sum = 0.0;
    for ((&x, &lo), &hi) in x.iter().zip(lo).zip(hi) {
        let gap = (lo - x).max(x - hi).max(0.0);
        sum += gap * gap;
    }
    sum
}

/// Points per leaf box.
pub const LEAF: usize = 16;
/// Boxes per box of the level above.
pub const FAN: usize = 8;
/// Coordinates up to which the box screen is offered (`dense_screen='auto'` takes it there).
pub const MAX_WIDTH: usize = 8;

/// Points packed into boxes: what [`pack`] returns and the dense path takes back on every call.
#[derive(Debug, Clone, PartialEq)]
pub struct PackedBoxes {
    /// The dataset index of the point at each position of the packing (a permutation of 0..N).
    pub order: Vec<i64>,
    /// The points' coordinates in that order, leaf by leaf, each leaf's coordinate t of its points
    /// together (`leaf` values, padded with 0 past the last point), so that a leaf's points are
    /// evaluated in lockstep.
    pub coords: Vec<f64>,
    /// Every box's lowest then highest coordinates (2 d values), leaves first, level by level up to
    /// the top box.
    pub boxes: Vec<f64>,
    /// Every box's smallest dataset index, in the same order.
    pub least: Vec<i64>,
}

/// The first box of each level, leaves first, and the end of the last one (the top level holds one
/// box), for `n` points in leaves of `leaf` and boxes of `fan` (no level for no points).
pub(crate) fn level_starts(n: usize, leaf: usize, fan: usize) -> Vec<usize> {
    let mut starts = vec![0];
    let mut count = n.div_ceil(leaf);
    while count > 0 {
        starts.push(starts[starts.len() - 1] + count);
        if count == 1 {
            break;
        }
        count = count.div_ceil(fan);
    }
    starts
}

/// The points of `x` packed in leaves of [`LEAF`] points and boxes of `FAN` boxes, cut at medians
/// (`split_order`), on `threads` workers (None: rayon's global pool); the packing does not depend on
/// them.
pub fn pack(x: Matrix, threads: Option<i64>) -> Result<PackedBoxes> {
    run_on(thread_pool(threads)?, || pack_with(x, LEAF, FAN))
}

/// Points from which the two halves of a split are arranged in parallel: such a part is about 10 ms of
/// work (10^6 points pack in 0.39-0.44 s on one thread, 0.21-0.24 s on two), far above a rayon task's
/// cost; smaller parts stay on their thread.
const PARALLEL_SPLIT: usize = 1 << 15;

/// The rows of `x` in an order whose aligned runs (of `leaf`, `leaf fan`, `leaf fan^2`, .. points: the
/// leaves and boxes of the packing) are compact: a box's points are cut in two along the coordinate of
/// [`cut_coordinate`] at a multiple of its children's capacity nearest the middle, and again, until
/// every part fits one child, whose points are arranged the same way. Along the Hilbert curve (the
/// order before 2026-12-07) a run of 16 points often straddled a jump of the curve, and a query opened 1.4-3.9x as
/// many points, more or fewer with N as runs fell against the curve's cells; points sharing a cell of
/// its grid (all but a far outlier's) followed by row, and their leaves overlapped (docs/benchmarks.md,
/// "Boxes cut at the median"). Ties in the cut coordinate go by the other coordinates, then by row, so
/// the order depends on X (its rows and their order) and never on the thread count.
pub(crate) fn split_order(x: Matrix, leaf: usize, fan: usize) -> Vec<usize> {
    let mut order: Vec<usize> = (0..x.rows()).collect();
    let mut capacity = leaf;
    while capacity < order.len() {
        capacity = capacity.saturating_mul(fan);
    }
    arrange(x, &mut order, capacity, leaf, fan);
    order
}

/// Arrange the points of one box of `capacity` points ([`split_order`]).
fn arrange(x: Matrix, part: &mut [usize], capacity: usize, leaf: usize, fan: usize) {
    if part.len() > leaf {
        cut(x, part, capacity / fan, leaf, fan);
    }
}

/// Rows of a part whose coordinates [`cut_coordinate`] reads (evenly spaced through it).
const SPREAD_SAMPLE: usize = 64;

/// The coordinate to cut `part` along: the widest spread of its middle half, judged on up to
/// [`SPREAD_SAMPLE`] of its rows, then the widest range, then the smallest coordinate. By range alone a
/// few far points chose a coordinate along which most points lay within 1e-12 of each other, and every
/// box on the way down to them spanned all the others (a line and two points far off it: 345 evaluations
/// a query, 25 for the line alone; a review). The sample only steers the cut: any cut is exact.
fn cut_coordinate(x: Matrix, part: &[usize]) -> usize {
    let step = part.len().div_ceil(SPREAD_SAMPLE).max(1);
    let (lo, hi) = span_of(part.iter().map(|&j| x.row(j)), x.cols());
    let mut values = Vec::with_capacity(SPREAD_SAMPLE);
    let spread = |t: usize, values: &mut Vec<f64>| {
        values.clear();
        values.extend(part.iter().step_by(step).map(|&j| x.row(j)[t]));
        let quarter = values.len() / 4;
        let top = values.len() - 1 - quarter;
        let high = *values.select_nth_unstable_by(top, f64::total_cmp).1;
        let low = *values[..=top]
            .select_nth_unstable_by(quarter, f64::total_cmp)
            .1;
        (high - low, hi[t] - lo[t])
    };
    let spreads: Vec<(f64, f64)> = (0..x.cols()).map(|t| spread(t, &mut values)).collect();
    (0..x.cols())
        .max_by(|&a, &b| {
            let ((qa, ra), (qb, rb)) = (spreads[a], spreads[b]);
            qa.total_cmp(&qb).then(ra.total_cmp(&rb)).then(b.cmp(&a))
        })
        .unwrap_or(0)
}

/// Cut `part` into runs of `child` points (the last one shorter), each arranged as a box.
fn cut(x: Matrix, part: &mut [usize], child: usize, leaf: usize, fan: usize) {
    let n = part.len();
    if n <= child {
        return arrange(x, part, child, leaf, fan);
    }
    // The multiple of `child` nearest n / 2: child <= at < n, since n > child.
    let at = child * ((n + child) / (2 * child));
    debug_assert!(child <= at && at < n);
    let widest = cut_coordinate(x, part);
    // Ties in the cut coordinate go by the others in order, then by row: where most points share one
    // value of it (a lattice), ties by row alone split them into boxes that each spanned all of them.
    part.select_nth_unstable_by(at, |&a, &b| {
        let (ra, rb) = (x.row(a), x.row(b));
        let others = || {
            let mut orders = ra.iter().zip(rb).map(|(p, q)| p.total_cmp(q));
            orders.find(|o| o.is_ne()).unwrap_or(cmp::Ordering::Equal)
        };
        (ra[widest].total_cmp(&rb[widest]))
            .then_with(others)
            .then(a.cmp(&b))
    });
    let (left, right) = part.split_at_mut(at);
    if n >= PARALLEL_SPLIT {
        rayon::join(
            || cut(x, left, child, leaf, fan),
            || cut(x, right, child, leaf, fan),
        );
    } else {
        cut(x, left, child, leaf, fan);
        cut(x, right, child, leaf, fan);
    }
}

/// The shapes [`Search`] holds on its stack: leaves of 1 to [`MAX_LEAF`] points, fan-outs of 2 to
/// [`MAX_FAN`] (a fan-out of 1 would never reach one top box).
fn check_shape(leaf: usize, fan: usize) -> Result<()> {
    for (what, value, range, allowed) in [
        (
            "packed boxes: fan-out",
            fan,
            2..=MAX_FAN,
            "between 2 and 64",
        ),
        ("packed boxes: leaf", leaf, 1..=MAX_LEAF, "between 1 and 64"),
    ] {
        if !range.contains(&value) {
            return Err(CoreError::BadValue {
                what,
                value: value as i64,
                allowed,
            });
        }
    }
    Ok(())
}

pub(crate) fn pack_with(x: Matrix, leaf: usize, fan: usize) -> Result<PackedBoxes> {
    check_shape(leaf, fan)?;
    let (n, d) = (x.rows(), x.cols());
    if n == 0 || d == 0 {
        return Err(CoreError::Empty {
            what: "points to pack in boxes",
        });
    }
    all_finite("points to pack in boxes", x.values())?;
    let order = split_order(x, leaf, fan);
    let starts = level_starts(n, leaf, fan);
    let mut coords = Vec::with_capacity(starts[1] * leaf * d);
    let mut boxes = Vec::with_capacity(starts[starts.len() - 1] * 2 * d);
    let mut least = Vec::with_capacity(starts[starts.len() - 1]);
    for members in order.chunks(leaf) {
        for t in 0..d {
            coords.extend(members.iter().map(|&j| x.row(j)[t]));
            coords.extend(std::iter::repeat_n(0.0, leaf - members.len()));
        }
        let (lo, hi) = span_of(members.iter().map(|&j| x.row(j)), d);
        boxes.extend(lo.into_iter().chain(hi));
        least.push(members.iter().min().map_or(0, |&j| j as i64));
    }
    for level in 1..starts.len() - 1 {
        for child in (starts[level - 1]..starts[level]).step_by(fan) {
            let children = child..(child + fan).min(starts[level]);
            let corners = children.clone().flat_map(|c| {
                let bounds = &boxes[c * 2 * d..(c + 1) * 2 * d];
                [&bounds[..d], &bounds[d..]]
            });
            let (lo, hi) = span_of(corners.collect::<Vec<_>>().into_iter(), d);
            boxes.extend(lo.into_iter().chain(hi));
            least.push(least[children].iter().copied().min().unwrap_or(0));
        }
    }
    let order = order.into_iter().map(|j| j as i64).collect();
    Ok(PackedBoxes {
        order,
        coords,
        boxes,
        least,
    })
}

/// The arrays of a packing, borrowed (the fields of [`PackedBoxes`]).
#[derive(Debug, Clone, Copy)]
pub struct PackedArrays<'a> {
    pub order: &'a [i64],
    pub coords: &'a [f64],
    pub boxes: &'a [f64],
    pub least: &'a [i64],
}

impl PackedBoxes {
    pub fn arrays(&self) -> PackedArrays<'_> {
        PackedArrays {
            order: &self.order,
            coords: &self.coords,
            boxes: &self.boxes,
            least: &self.least,
        }
    }
}

/// Packed boxes as the dense path reads them, their shapes checked against the points they pack.
#[derive(Debug, Clone, Copy)]
pub struct Boxes<'a> {
    arrays: PackedArrays<'a>,
    width: usize,
    leaf: usize,
    fan: usize,
}

fn mismatch(what: &'static str, expected: usize, got: usize) -> CoreError {
    CoreError::DimensionMismatch {
        what,
        expected,
        got,
    }
}

impl<'a> Boxes<'a> {
    /// `arrays` (as [`pack`] made them from `n` points of `width` coordinates) for reading: an error
    /// names an array whose length does not fit them. Only their shapes are checked, which is all the
    /// search's memory accesses need (the dataset indices in `order` and `least` are compared and
    /// returned, never used to index), so a call costs nothing per point: the caller keeps each packing
    /// with the points it packs (covertreex keeps it, read-only, with its metric space).
    pub fn new(arrays: PackedArrays<'a>, n: usize, width: usize) -> Result<Boxes<'a>> {
        Boxes::with_shape(arrays, n, width, LEAF, FAN)
    }

    pub(crate) fn with_shape(
        arrays: PackedArrays<'a>,
        n: usize,
        width: usize,
        leaf: usize,
        fan: usize,
    ) -> Result<Boxes<'a>> {
        check_shape(leaf, fan)?;
        let n_boxes = level_starts(n, leaf, fan).last().copied().unwrap_or(0);
        let PackedArrays {
            order,
            coords,
            boxes,
            least,
        } = arrays;
        for (what, expected, got) in [
            ("packed boxes: order", n, order.len()),
            (
                "packed boxes: coords",
                n.div_ceil(leaf) * leaf * width,
                coords.len(),
            ),
            ("packed boxes: boxes", n_boxes * 2 * width, boxes.len()),
            ("packed boxes: least", n_boxes, least.len()),
        ] {
            if expected != got {
                return Err(mismatch(what, expected, got));
            }
        }
        Ok(Boxes {
            arrays,
            width,
            leaf,
            fan,
        })
    }
}

impl Boxes<'_> {
    /// Whether these boxes can answer queries of `data`: Euclidean points, as many as they pack, with
    /// as many coordinates.
    pub(super) fn check(&self, data: &MetricData) -> Result<()> {
        if data.metric != Metric::Euclidean {
            return Err(CoreError::BadValue {
                what: "the box screen's metric",
                value: data.metric as i64,
                allowed: "Euclidean",
            });
        }
        if self.arrays.order.len() != data.n_points() {
            return Err(mismatch(
                "packed boxes: points",
                data.n_points(),
                self.arrays.order.len(),
            ));
        }
        if self.width != data.x.cols() {
            return Err(mismatch(
                "packed boxes: coordinates",
                data.x.cols(),
                self.width,
            ));
        }
        Ok(())
    }
}

impl<'a> Boxes<'a> {
    /// The boxes of the level below `level` under its box `node`, and the first box of that level
    /// (`starts`: [`level_starts`]).
    pub(crate) fn children(
        &self,
        starts: &[usize],
        level: usize,
        node: usize,
    ) -> (usize, Range<usize>) {
        let first = starts[level - 1];
        let end = (first + (node + 1) * self.fan).min(starts[level]);
        (first, first + node * self.fan..end)
    }

    /// Box `b`'s lower bound on the canonical squared sum from `query` to its points ([`gap_bound`]).
    pub(crate) fn bound(&self, b: usize, query: &[f64]) -> f64 {
        let d = self.width;
        let bounds = &self.arrays.boxes[b * 2 * d..(b + 1) * 2 * d];
        gap_bound(query, &bounds[..d], &bounds[d..])
    }

    /// The dataset indices of leaf `leaf`'s points, with the canonical squared sum from `query` to each
    /// in `sums`. The leaf's points are summed in lockstep, each lane
    /// [`squared_sum`](crate::metric::squared_sum)'s sum (the query's coordinate first, terms in index
    /// order from 0), so every value is the canonical one.
    pub(crate) fn leaf_sums(
        &self,
        leaf: usize,
        query: &[f64],
        sums: &mut [f64; MAX_LEAF],
    ) -> &'a [i64] {
        let (d, size) = (self.width, self.leaf);
        let first = leaf * size;
        let members = &self.arrays.order[first..(first + size).min(self.arrays.order.len())];
        let block = &self.arrays.coords[first * d..(first + size) * d];
        let sums = &mut sums[..size];
        sums.fill(0.0);
        for (&q, values) in query.iter().zip(block.chunks_exact(size)) {
            for (sum, &value) in sums.iter_mut().zip(values) {
                let diff = q - value;
                *sum += diff * diff;
            }
        }
        members
    }
}

/// One query as the box searches see it: its coordinates, its own dataset index (whose pair is at
/// distance 0) and its limit (the points it may return have smaller indices).
struct Probe<'s, 'a> {
    boxes: &'s Boxes<'a>,
    starts: &'s [usize],
    query: &'s [f64],
    own: i64,
    limit: i64,
}

impl<'s, 'a> Probe<'s, 'a> {
    fn new(boxes: &'s Boxes<'a>, starts: &'s [usize], queries: &'s QueryBatch, q: usize) -> Self {
        Probe {
            boxes,
            starts,
            query: queries.data.x.row(queries.rows[q] as usize),
            own: queries.dataset_index[q],
            limit: queries.limit[q],
        }
    }

    /// The boxes under box `node` of `level` ([`Boxes::children`]).
    fn children(&self, level: usize, node: usize) -> (usize, Range<usize>) {
        self.boxes.children(self.starts, level, node)
    }

    /// Box `b`'s lower bound on the squared sum, or None when it holds no point this query may return.
    fn bound(&self, b: usize) -> Option<f64> {
        (self.boxes.arrays.least[b] < self.limit).then(|| self.boxes.bound(b, self.query))
    }

    /// The eligible points of leaf `leaf` with their canonical distances ([`Boxes::leaf_sums`]).
    fn points<'p>(
        &self,
        leaf: usize,
        sums: &'p mut [f64; MAX_LEAF],
    ) -> impl Iterator<Item = (i64, f64)> + 'p
    where
        'a: 'p,
    {
        let members = self.boxes.leaf_sums(leaf, self.query, sums);
        let (own, limit) = (self.own, self.limit);
        members
            .iter()
            .zip(sums.iter())
            .filter(move |&(&index, _)| index < limit)
            .map(move |(&index, &sum)| (index, if index == own { 0.0 } else { sum.sqrt() }))
    }

    /// The top box's level (the search starts there, at box 0).
    fn top(&self) -> usize {
        self.starts.len() - 2
    }
}

/// One query's k-nearest search: its heap and its counts.
struct Search<'s, 'a> {
    probe: Probe<'s, 'a>,
    heap: &'s mut Heap,
    counts: [i64; N_QUERY_COUNTERS],
}

impl Search<'_, '_> {
    /// Whether a box whose bound is `bound` holds no point that can enter the heap.
    fn excluded(&self, bound: f64) -> bool {
        self.heap.is_full() && bound.sqrt() > self.heap.worst_distance()
    }

    /// Search box `node` of `level` (0: a leaf).
    fn visit(&mut self, level: usize, node: usize) {
        if level == 0 {
            return self.open(node);
        }
        let (first, children) = self.probe.children(level, node);
        let mut near = [(0.0f64, 0usize); MAX_FAN];
        let mut count = 0;
        for child in children {
            match self.probe.bound(child) {
                Some(bound) if !self.excluded(bound) => {
                    near[count] = (bound, child);
                    count += 1;
                }
                _ => self.counts[Q_PRUNES] += 1,
            }
        }
        let near = &mut near[..count];
        near.sort_unstable_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
        for (at, &(bound, child)) in near.iter().enumerate() {
            if self.excluded(bound) {
                self.counts[Q_PRUNES] += (near.len() - at) as i64;
                break;
            }
            self.visit(level - 1, child - first);
        }
    }

    /// Evaluate the eligible points of leaf `leaf` canonically ([`Boxes::leaf_sums`]) and offer them to
    /// the heap.
    fn open(&mut self, leaf: usize) {
        let mut sums = [0.0f64; MAX_LEAF];
        self.counts[Q_STEPS] += 1;
        for (index, distance) in self.probe.points(leaf, &mut sums) {
            self.counts[Q_EVALUATIONS] += 1;
            let beyond = self.heap.is_full() && distance > self.heap.worst_distance();
            if !beyond && self.heap.offer(distance, index) {
                self.counts[Q_HEAP_PUSHES] += 1;
            }
        }
    }
}

/// The largest fan-out [`Search::visit`] holds on its stack.
const MAX_FAN: usize = 64;

/// The largest leaf [`Search::open`] sums on its stack.
pub(crate) const MAX_LEAF: usize = 64;

/// [`super::dense_query`] on the box screen. The search reads the packing's coordinates (checked finite
/// when packed) and the query rows, so of the values only those rows are checked here: a call reads
/// nothing per indexed point (checking all of X and P took 1 ms a call at N = 500,000).
pub(super) fn query(
    data: &MetricData,
    queries: &QueryBatch,
    k: i64,
    threads: Option<i64>,
    stop: &Stop,
    boxes: &Boxes,
) -> Result<DenseOutput> {
    check_call(data, queries, k, boxes)?;
    let mut out = DenseOutput::empty(queries.rows.len(), k)?;
    if !queries.rows.is_empty() {
        run_on(thread_pool(threads)?, || {
            answer(boxes, queries, &mut out, stop)
        })?;
    }
    Ok(out)
}

/// What a box search of `queries` with `k` and `boxes` reads, checked: the shapes, and of the values
/// only the query rows (the packing's coordinates were checked when packed).
fn check_call(data: &MetricData, queries: &QueryBatch, k: i64, boxes: &Boxes) -> Result<()> {
    data.check_shapes()?;
    boxes.check(data)?;
    let indexed = queries.data.same_as(data);
    if !indexed {
        queries.data.check()?;
    }
    check_query_rows(data, queries, k)?;
    if indexed {
        data.check_x_rows(queries.rows)?;
    }
    Ok(())
}

/// Queries per unit of parallel work, in the Hilbert order of their coordinates (neighbouring queries
/// read the same boxes).
const QUERIES_PER_TASK: usize = 64;

/// Every query's k nearest eligible points by the box screen, into `out` (padding rows as given):
/// canonical evaluations, heap pushes, boxes skipped and leaves opened per query; pairs screened are
/// the pairs evaluated (the boxes decide all others).
fn answer(boxes: &Boxes, queries: &QueryBatch, out: &mut DenseOutput, stop: &Stop) -> Result<()> {
    let n_q = queries.rows.len();
    let starts = level_starts(boxes.arrays.order.len(), boxes.leaf, boxes.fan);
    let k = out.k;
    let x = queries.data.x;
    let mut by_curve: Vec<usize> = (0..n_q).collect();
    if n_q > QUERIES_PER_TASK {
        let rows: Vec<f64> = (queries.rows.iter())
            .flat_map(|&r| x.row(r as usize))
            .copied()
            .collect();
        by_curve = hilbert::order(Matrix::new("query rows", &rows, n_q, x.cols())?)?;
    }
    // A heap holds at most every point, and so does a row of a task's scratch; each task's rows go to
    // `out` as soon as they are answered, so no second copy of the answer is ever held.
    let kept = k.min(boxes.arrays.order.len());
    let out = Mutex::new(out);
    let work = |(heap, indices, distances): &mut (Heap, Vec<i64>, Vec<f64>), chunk: &[usize]| {
        if stop.requested() {
            return;
        }
        indices.resize(chunk.len() * kept, -1);
        distances.resize(chunk.len() * kept, f64::INFINITY);
        let mut counts = Vec::with_capacity(chunk.len());
        for (at, &q) in chunk.iter().enumerate() {
            heap.clear();
            let mut search = Search {
                probe: Probe::new(boxes, &starts, queries, q),
                heap,
                counts: [0; N_QUERY_COUNTERS],
            };
            search.visit(search.probe.top(), 0);
            counts.push(search.counts);
            let row = at * kept..(at + 1) * kept;
            heap.write_sorted(&mut indices[row.clone()], &mut distances[row]);
        }
        let mut out = out.lock().unwrap_or_else(PoisonError::into_inner);
        for ((at, &q), counted) in chunk.iter().enumerate().zip(counts) {
            // Columns beyond `kept` (k above the points: padding) stay as `out` was made.
            let (row, slot) = (q * k..q * k + kept, at * kept..(at + 1) * kept);
            out.indices[row.clone()].copy_from_slice(&indices[slot.clone()]);
            out.distances[row].copy_from_slice(&distances[slot]);
            out.per_query[q * N_QUERY_COUNTERS..(q + 1) * N_QUERY_COUNTERS]
                .copy_from_slice(&counted);
            out.screened[q] = counted[Q_EVALUATIONS];
        }
    };
    let scratch = || (Heap::new(kept), Vec::new(), Vec::new());
    if n_q <= QUERIES_PER_TASK {
        // One task: on the calling thread (handing it to a pool cost more than a small call's search).
        work(&mut scratch(), &by_curve);
    } else {
        by_curve
            .par_chunks(QUERIES_PER_TASK)
            .for_each_init(scratch, |state, chunk| work(state, chunk));
    }
    stop.check()
}

/// Every eligible point within a radius of each query ([`within`]), rows in query order, each sorted by
/// (distance, index).
#[derive(Debug, Clone, PartialEq)]
pub struct Within {
    /// Points found per query.
    pub counts: Vec<i64>,
    /// Their dataset indices, query after query.
    pub indices: Vec<i64>,
    /// Their canonical distances, in the same order.
    pub distances: Vec<f64>,
}

/// Every point within `radius` (distance <= radius, the canonical distance) of each query that it may
/// return (dataset index below its limit; not its own index when `exclude_own`), by the boxes: a box is
/// skipped when the square root of its bound is above the radius, so none of its points is within it.
/// The same checks as the box screen's k-NN search; `radius` must be >= 0 (inf: every eligible point).
/// At most `most` points are found in all (the caller's memory budget): beyond them the search stops and
/// the call is a `KOutOfRange` error, never an allocation that aborts the process.
#[allow(clippy::too_many_arguments)]
pub fn within(
    data: &MetricData,
    queries: &QueryBatch,
    radius: f64,
    exclude_own: bool,
    most: usize,
    threads: Option<i64>,
    stop: &Stop,
    boxes: &Boxes,
) -> Result<Within> {
    check_call(data, queries, 1, boxes)?;
    if radius.is_nan() || radius < 0.0 {
        return Err(CoreError::Negative {
            what: "radius",
            position: 0,
            value: radius,
        });
    }
    let pool = thread_pool(threads)?;
    let starts = level_starts(boxes.arrays.order.len(), boxes.leaf, boxes.fan);
    let found_so_far = AtomicUsize::new(0);
    let too_many = || found_so_far.load(Ordering::Relaxed) > most;
    let rows: Vec<Vec<(f64, i64)>> = run_on(pool, || {
        (0..queries.rows.len())
            .into_par_iter()
            .with_min_len(QUERIES_PER_TASK)
            .map(|q| {
                if stop.requested() || too_many() {
                    return Vec::new();
                }
                let mut ball = Ball {
                    probe: Probe::new(boxes, &starts, queries, q),
                    exclude_own,
                    radius,
                    found: Vec::new(),
                };
                ball.visit(ball.probe.top(), 0);
                let mut found = ball.found;
                found_so_far.fetch_add(found.len(), Ordering::Relaxed);
                found.sort_unstable_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
                found
            })
            .collect()
    });
    stop.check()?;
    let total = found_so_far.into_inner();
    let refused = || CoreError::KOutOfRange {
        k: total as i64,
        reason: "points within the radius: more than the memory available holds",
    };
    if total > most {
        return Err(refused());
    }
    let mut out = Within {
        counts: rows.iter().map(|found| found.len() as i64).collect(),
        indices: Vec::new(),
        distances: Vec::new(),
    };
    out.indices
        .try_reserve_exact(total)
        .map_err(|_| refused())?;
    out.distances
        .try_reserve_exact(total)
        .map_err(|_| refused())?;
    for (distance, index) in rows.into_iter().flatten() {
        out.indices.push(index);
        out.distances.push(distance);
    }
    Ok(out)
}

/// One query's ball search.
struct Ball<'s, 'a> {
    probe: Probe<'s, 'a>,
    exclude_own: bool,
    radius: f64,
    /// (distance, index) of every point found.
    found: Vec<(f64, i64)>,
}

impl Ball<'_, '_> {
    fn visit(&mut self, level: usize, node: usize) {
        if level == 0 {
            return self.open(node);
        }
        let (first, children) = self.probe.children(level, node);
        for child in children {
            if self
                .probe
                .bound(child)
                .is_some_and(|bound| bound.sqrt() <= self.radius)
            {
                self.visit(level - 1, child - first);
            }
        }
    }

    fn open(&mut self, leaf: usize) {
        let mut sums = [0.0f64; MAX_LEAF];
        let own = self.exclude_own.then_some(self.probe.own);
        for (index, distance) in self.probe.points(leaf, &mut sums) {
            if distance <= self.radius && Some(index) != own {
                self.found.push((distance, index));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metric::{squared_sum, Kernel};
    use crate::testing::points;

    fn euclidean<'a>(x: &'a [f64], ones: &'a [f64], d: usize) -> MetricData<'a> {
        let n = x.len() / d;
        MetricData {
            metric: Metric::Euclidean,
            kernel: Kernel::Rbf,
            variance: 1.0,
            lengthscale: &ones[..d],
            x: Matrix::new("X", x, n, d).unwrap(),
            v: Matrix::new("V", &[], n, 0).unwrap(),
            p: &ones[..n],
            slack: 0.0,
        }
    }

    /// The k nearest of the points below `limit` to `query` by (canonical distance, index), padded.
    fn naive(
        x: &[f64],
        d: usize,
        query: &[f64],
        own: i64,
        limit: i64,
        k: usize,
    ) -> (Vec<i64>, Vec<f64>) {
        let n = x.len() / d;
        let mut pairs: Vec<(f64, i64)> = (0..n as i64)
            .filter(|&j| j < limit)
            .map(|j| {
                let point = &x[j as usize * d..(j as usize + 1) * d];
                let distance = if j == own {
                    0.0
                } else {
                    squared_sum(query, point).sqrt()
                };
                (distance, j)
            })
            .collect();
        pairs.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
        pairs.resize(k.max(pairs.len()), (f64::INFINITY, -1));
        pairs.truncate(k);
        pairs.into_iter().map(|(d, j)| (j, d)).unzip()
    }

    fn empty_output(n_q: usize, k: usize) -> DenseOutput {
        DenseOutput {
            n_queries: n_q,
            k,
            indices: vec![-1; n_q * k],
            distances: vec![f64::INFINITY; n_q * k],
            per_query: vec![0; n_q * N_QUERY_COUNTERS],
            screened: vec![0; n_q],
            declined: vec![false; n_q],
            gemm_seconds: 0.0,
        }
    }

    /// Indexed queries of every point, predecessor queries and queries of other points, on uniform,
    /// lattice and rounding-prone data, with leaves and fan-outs that make one level and many: every
    /// row equals the naive scan's, indices and distance bits, and the screen looked at fewer pairs.
    #[test]
    fn answers_equal_a_naive_scan() {
        let mut state = 0x2545_f491_4f6c_dd1d_u64;
        let ones = vec![1.0; 400];
        let mut skipped = 0;
        for &(n, d, leaf, fan) in &[
            (1, 2, 16, 8),
            (7, 1, 2, 2),
            (100, 2, 3, 2),
            (300, 3, 16, 8),
            (257, 4, 5, 64),
            (200, 8, 4, 3),
        ] {
            for kind in 0..3 {
                let x = points(kind, n, d, &mut state);
                let others = points(kind, 9, d, &mut state);
                let data = euclidean(&x, &ones, d);
                let packed = pack_with(data.x, leaf, fan).unwrap();
                let boxes = Boxes::with_shape(packed.arrays(), n, d, leaf, fan).unwrap();
                boxes.check(&data).unwrap();
                let all: Vec<i64> = (0..n as i64).collect();
                let nine: Vec<i64> = (0..9).collect();
                let everyone = vec![n as i64; n];
                let (outside, anywhere) = (vec![-1i64; 9], vec![n as i64; 9]);
                let batches = [
                    (&x, &all, &all, &everyone),
                    (&x, &all, &all, &all),
                    (&others, &nine, &outside, &anywhere),
                ];
                for (coords, rows, own, limit) in batches {
                    let queries = QueryBatch {
                        data: euclidean(coords, &ones, d),
                        rows,
                        dataset_index: own,
                        limit,
                    };
                    for k in [1, 3, 10, n + 2] {
                        let mut out = empty_output(rows.len(), k);
                        answer(&boxes, &queries, &mut out, &Stop::default()).unwrap();
                        for q in 0..rows.len() {
                            let query = &coords[q * d..(q + 1) * d];
                            let (indices, distances) = naive(&x, d, query, own[q], limit[q], k);
                            let row = q * k..(q + 1) * k;
                            let context = format!(
                                "n {n} d {d} leaf {leaf} fan {fan} kind {kind} k {k} q {q}"
                            );
                            assert_eq!(out.indices[row.clone()], indices[..], "{context}");
                            let bits =
                                |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
                            assert_eq!(bits(&out.distances[row]), bits(&distances), "{context}");
                            let eligible = limit[q].min(n as i64);
                            let evaluated = out.per_query[q * N_QUERY_COUNTERS + Q_EVALUATIONS];
                            assert_eq!(out.screened[q], evaluated);
                            assert!(evaluated <= eligible, "{context}");
                            skipped += i64::from(evaluated < eligible);
                        }
                    }
                }
            }
        }
        assert!(skipped > 1000, "the boxes must skip points: {skipped}");
    }

    /// The ball search returns every eligible point at canonical distance <= radius, sorted, on lattices
    /// (points exactly at the radius), duplicates and rounding-prone data, with and without the own
    /// point, for radii 0, between and inf.
    #[test]
    fn the_ball_search_equals_a_naive_scan() {
        let mut state = 0x1234_5678_9abc_def1_u64;
        let ones = vec![1.0; 400];
        for &(n, d) in &[(1, 2), (90, 1), (300, 2), (257, 3), (200, 8)] {
            for kind in 0..3 {
                let x = points(kind, n, d, &mut state);
                let data = euclidean(&x, &ones, d);
                let packed = pack_with(data.x, 4, 3).unwrap();
                let boxes = Boxes::with_shape(packed.arrays(), n, d, 4, 3).unwrap();
                let rows: Vec<i64> = (0..n as i64).collect();
                let scale = if kind == 2 { 1e3 } else { 1.0 };
                for radius in [0.0, 0.5 * scale, 1.0 * scale, f64::INFINITY] {
                    for (limits, exclude_own) in [(vec![n as i64; n], true), (rows.clone(), false)]
                    {
                        let queries = QueryBatch {
                            data: euclidean(&x, &ones, d),
                            rows: &rows,
                            dataset_index: &rows,
                            limit: &limits,
                        };
                        let found = within(
                            &data,
                            &queries,
                            radius,
                            exclude_own,
                            usize::MAX,
                            Some(2),
                            &Stop::default(),
                            &boxes,
                        )
                        .unwrap();
                        let mut at = 0;
                        for q in 0..n {
                            let query = &x[q * d..(q + 1) * d];
                            let (indices, distances) = naive(&x, d, query, q as i64, limits[q], n);
                            let expected: Vec<(i64, f64)> = (indices.into_iter().zip(distances))
                                .filter(|&(j, dist)| {
                                    j >= 0 && dist <= radius && !(exclude_own && j == q as i64)
                                })
                                .collect();
                            let count = found.counts[q] as usize;
                            let got: Vec<(i64, f64)> =
                                (found.indices[at..at + count].iter().copied())
                                    .zip(found.distances[at..at + count].iter().copied())
                                    .collect();
                            let bits = |v: &[(i64, f64)]| {
                                v.iter().map(|&(j, d)| (j, d.to_bits())).collect::<Vec<_>>()
                            };
                            assert_eq!(
                                bits(&got),
                                bits(&expected),
                                "n {n} d {d} kind {kind} radius {radius} q {q}"
                            );
                            at += count;
                        }
                        assert_eq!(at, found.indices.len());
                    }
                }
            }
        }
        let x = [0.0, 1.0];
        let data = euclidean(&x, &ones, 1);
        let packed = pack(data.x, Some(1)).unwrap();
        let boxes = Boxes::new(packed.arrays(), 2, 1).unwrap();
        let queries = QueryBatch {
            data: euclidean(&x, &ones, 1),
            rows: &[0],
            dataset_index: &[0],
            limit: &[2],
        };
        for bad in [-1.0, f64::NAN] {
            assert!(within(
                &data,
                &queries,
                bad,
                false,
                9,
                None,
                &Stop::default(),
                &boxes
            )
            .is_err());
        }
        let ball = |most| {
            within(
                &data,
                &queries,
                5.0,
                false,
                most,
                None,
                &Stop::default(),
                &boxes,
            )
        };
        let found = ball(2).unwrap();
        assert_eq!(
            found.indices,
            vec![0, 1],
            "its own point at 0, then the other"
        );
        let refused = ball(1);
        assert!(
            matches!(refused, Err(CoreError::KOutOfRange { k: 2, .. })),
            "{refused:?}"
        );
    }

    #[test]
    fn a_lattice_packs_into_square_leaves() {
        // 64 x 16 points: median cuts give leaves of 4 x 4 neighbours, where the Hilbert curve (on a grid
        // that stretches each coordinate to the same range) gave runs of 8 x 2 points.
        let x: Vec<f64> = (0..64 * 16)
            .flat_map(|i| [(i % 64) as f64, (i / 64) as f64])
            .collect();
        let packed = pack_with(Matrix::new("X", &x, 64 * 16, 2).unwrap(), 16, 8).unwrap();
        for bounds in packed.boxes.chunks(4).take(64 * 16 / 16) {
            assert_eq!([bounds[2] - bounds[0], bounds[3] - bounds[1]], [3.0, 3.0]);
        }
    }

    #[test]
    fn far_points_do_not_choose_the_cut_coordinate() {
        // A line (x = 0 exactly, or within 1e-12) in shuffled rows and two points far off it along x,
        // which make x the widest coordinate by range of every box holding one: the line's points must
        // still fall into short runs along y.
        for width in [0.0, 1e-12] {
            let mut x: Vec<f64> = (0..1000)
                .flat_map(|i| {
                    let y = f64::from((i * 37) % 1000) / 1000.0;
                    [width * f64::from((i * 13) % 1000) / 1000.0, y]
                })
                .collect();
            x.extend([1e6, 0.5, -1e6, 0.5]);
            let packed = pack_with(Matrix::new("X", &x, 1002, 2).unwrap(), 16, 8).unwrap();
            for (leaf, bounds) in packed
                .boxes
                .chunks(4)
                .take(1002usize.div_ceil(16))
                .enumerate()
            {
                let members = &packed.order[leaf * 16..((leaf + 1) * 16).min(1002)];
                if members.iter().all(|&j| j < 1000) {
                    assert!(
                        bounds[3] - bounds[1] < 0.02,
                        "{width}, leaf {leaf}: {bounds:?}"
                    );
                }
            }
        }
    }

    #[test]
    fn ties_in_the_cut_coordinate_go_by_the_others() {
        // A 10 x 10 lattice repeated 5 times in shuffled rows: every cut falls inside ties, which must go
        // by the other coordinate, so each leaf holds 16 points of at most a few lattice sites.
        let x: Vec<f64> = (0..500)
            .flat_map(|i| {
                let site = (i * 7) % 100;
                [f64::from(site % 10), f64::from(site / 10)]
            })
            .collect();
        let packed = pack_with(Matrix::new("X", &x, 500, 2).unwrap(), 16, 8).unwrap();
        for bounds in packed.boxes.chunks(4).take(500usize.div_ceil(16)) {
            let area = (bounds[2] - bounds[0] + 1.0) * (bounds[3] - bounds[1] + 1.0);
            assert!(area <= 8.0, "{bounds:?}");
        }
    }

    #[test]
    fn every_box_holds_its_points_and_their_smallest_index() {
        let mut state = 7u64;
        for &(n, leaf, fan) in &[
            (1, 16, 8),
            (16, 16, 8),
            (17, 16, 8),
            (1000, 16, 8),
            (50, 1, 2),
        ] {
            let x = points(0, n, 3, &mut state);
            let packed = pack_with(Matrix::new("X", &x, n, 3).unwrap(), leaf, fan).unwrap();
            let starts = level_starts(n, leaf, fan);
            assert_eq!(
                starts[starts.len() - 1] - starts[starts.len() - 2],
                1,
                "one top box"
            );
            let mut sorted = packed.order.clone();
            sorted.sort_unstable();
            assert_eq!(sorted, (0..n as i64).collect::<Vec<_>>());
            // The points under each box, by level: leaves, then runs of `fan` boxes below.
            let mut under: Vec<std::ops::Range<usize>> = (0..n.div_ceil(leaf))
                .map(|b| b * leaf..((b + 1) * leaf).min(n))
                .collect();
            for &first in &starts[..starts.len() - 1] {
                for (b, positions) in under.iter().enumerate() {
                    let node = first + b;
                    let bounds = &packed.boxes[node * 6..(node + 1) * 6];
                    for p in positions.clone() {
                        let block = &packed.coords[(p / leaf) * leaf * 3..][..leaf * 3];
                        let row: Vec<f64> = (0..3).map(|t| block[t * leaf + p % leaf]).collect();
                        assert_eq!(row, &x[packed.order[p] as usize * 3..][..3]);
                        for t in 0..3 {
                            assert!(bounds[t] <= row[t] && row[t] <= bounds[3 + t]);
                        }
                    }
                    let least = packed.order[positions.clone()].iter().min().unwrap();
                    assert_eq!(packed.least[node], *least);
                }
                under = under
                    .chunks(fan)
                    .map(|c| c[0].start..c[c.len() - 1].end)
                    .collect();
            }
        }
    }

    /// The box screen reads the packing and the query rows alone: a NaN in a query row is an error
    /// naming its position in X, a NaN elsewhere in X was refused when the points were packed.
    #[test]
    fn the_values_the_search_reads_are_checked() {
        let ones = [1.0; 8];
        let mut x = [0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0];
        let packed = pack(Matrix::new("X", &x, 4, 2).unwrap(), Some(1)).unwrap();
        let boxes = Boxes::new(packed.arrays(), 4, 2).unwrap();
        x[5] = f64::NAN;
        let data = euclidean(&x, &ones, 2);
        let limit = [4i64, 4];
        let queries = |rows: &'static [i64]| QueryBatch {
            data: euclidean(&x, &ones, 2),
            rows,
            dataset_index: rows,
            limit: &limit,
        };
        let run = |rows| query(&data, &queries(rows), 2, Some(1), &Stop::default(), &boxes);
        assert!(run(&[0, 1]).is_ok(), "rows 0 and 1 are finite");
        assert_eq!(
            run(&[0, 2]).unwrap_err(),
            CoreError::NonFinite {
                what: "X",
                position: 5
            }
        );
        assert!(pack(Matrix::new("X", &x, 4, 2).unwrap(), Some(1)).is_err());
    }

    #[test]
    fn arrays_of_another_packing_are_errors() {
        let x = [0.0, 1.0, 2.0, 3.0, 4.0, 5.0];
        let packed = pack(Matrix::new("X", &x, 3, 2).unwrap(), Some(1)).unwrap();
        let arrays = packed.arrays();
        assert!(Boxes::new(arrays, 3, 2).is_ok());
        assert!(Boxes::new(arrays, 4, 2).is_err());
        assert!(Boxes::new(arrays, 3, 1).is_err());
        let short = PackedArrays {
            order: &[0, 1],
            ..arrays
        };
        assert!(Boxes::new(short, 3, 2).is_err());
        assert!(pack(Matrix::new("X", &[], 0, 2).unwrap(), None).is_err());
        let ones = [1.0; 4];
        let other = [0.0; 8];
        let boxes = Boxes::new(arrays, 3, 2).unwrap();
        assert!(
            boxes.check(&euclidean(&other, &ones, 2)).is_err(),
            "4 points, not 3"
        );
        assert!(
            boxes.check(&euclidean(&x, &ones, 3)).is_err(),
            "2 points of 3 coordinates"
        );
    }

    /// Points beside, at or inside the box, at every scale the metric accepts, each against the box
    /// point nearest it (the pair that attains the gaps): the bound never exceeds its canonical sum.
    #[test]
    fn the_bound_never_exceeds_the_canonical_sum() {
        let mut state = 0x9e37_79b9_7f4a_7c15_u64;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let scales = [2f64.powi(-449), 1e-100, 1e-20, 1e-3, 1.0, 3.0, 1e10, 1e150];
        let mut checked = 0;
        for _ in 0..20_000 {
            let d = 1 + (next() % 6) as usize;
            let scale = scales[(next() % scales.len() as u64) as usize];
            let unit = |bits: u64| (bits >> 11) as f64 / (1u64 << 53) as f64;
            let lo: Vec<f64> = (0..d).map(|_| scale * (unit(next()) - 0.5)).collect();
            let hi: Vec<f64> = lo.iter().map(|&l| l + scale * unit(next())).collect();
            // y on the box's boundary nearest x: the pair that attains the gaps.
            let x: Vec<f64> = (0..d)
                .map(|i| match next() % 3 {
                    0 => lo[i] - scale * unit(next()) * 1e-6,
                    1 => hi[i] + scale * unit(next()),
                    _ => lo[i] + (hi[i] - lo[i]) * unit(next()),
                })
                .collect();
            let y: Vec<f64> = (0..d).map(|i| x[i].clamp(lo[i], hi[i])).collect();
            let bound = gap_bound(&x, &lo, &hi);
            assert!(bound <= squared_sum(&x, &y), "x {x:?} box {lo:?} {hi:?}");
            checked += usize::from(bound > 0.0);
        }
        assert!(checked > 5_000, "too few positive bounds: {checked}");
    }
}
