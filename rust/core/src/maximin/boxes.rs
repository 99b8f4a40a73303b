//! Which of a round's placed points can matter to a slab of Euclidean points, judged from the bounding
//! box of the slab's region (pool.rs): in a few dimensions the slab's points lie close together, and
//! once every point holds k neighbours (a finite cut-off) most points placed in a round are far from
//! all of them, so their pairs with the slab need no GEMM value and no screening at all.
//!
//! The key of a Euclidean pair is its canonical squared sum (`metric::squared_sum`), and a pair whose key
//! reaches the point's threshold T (its k-th smallest upper bound) can change nothing: k pairs with
//! earlier positions are at least as near (`point::Point::threshold`). For a placed
//! point x and any point y of the box, [`gap_bound`] never exceeds that sum, exactly (its argument is on
//! it). A placed point whose bound reaches the largest threshold of the slab's screened points is skipped
//! for the whole slab.

pub use crate::dense::gap_bound;

/// The placed points (`cols` rows of `width` in `placed`, a round's points in position order) whose
/// pairs with some point of the box `bounds` (lowest values, then highest) may have a key below
/// `reach`, the largest threshold of the slab's points: bit t % 8 of byte t / 8 for placed point t, in
/// `mask`; returns how many.
pub fn reachable(
    bounds: &[f64],
    placed: &[f64],
    width: usize,
    cols: usize,
    reach: f64,
    mask: &mut Vec<u8>,
) -> usize {
    let (lo, hi) = bounds.split_at(width);
    mask.clear();
    mask.resize(cols.div_ceil(8), 0);
    let mut count = 0;
    for (t, x) in placed.chunks(width).take(cols).enumerate() {
        if gap_bound(x, lo, hi) < reach {
            mask[t / 8] |= 1 << (t % 8);
            count += 1;
        }
    }
    count
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_point_inside_the_box_has_bound_zero_and_reaches_any_positive_threshold() {
        let (lo, hi) = ([0.0, 0.0], [1.0, 1.0]);
        assert_eq!(gap_bound(&[0.5, 1.0], &lo, &hi), 0.0);
        let bounds = [0.0, 0.0, 1.0, 1.0];
        let placed = [0.5, 0.5, 3.0, 0.5, 1.0, 1.5];
        let mut mask = Vec::new();
        assert_eq!(reachable(&bounds, &placed, 2, 3, 0.26, &mut mask), 2);
        assert_eq!(mask, vec![0b101]);
        // A key at the threshold changes nothing: the third point's bound is 0.25 exactly.
        assert_eq!(reachable(&bounds, &placed, 2, 3, 0.25, &mut mask), 1);
        assert_eq!(reachable(&bounds, &placed, 2, 3, 0.0, &mut mask), 0);
        assert_eq!(reachable(&bounds, &placed, 2, 3, f64::MAX, &mut mask), 3);
    }
}
