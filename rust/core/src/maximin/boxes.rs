//! Which of a round's placed points can matter to a slab of Euclidean points, judged from the bounding
//! box of the slab's region (pool.rs): in a few dimensions the slab's points lie close together, and
//! once every point holds k neighbours (a finite cut-off) most points placed in a round are far from
//! all of them, so their pairs with the slab need no GEMM value and no screening at all.
//!
//! The key of a Euclidean pair is its canonical squared sum (`metric::squared_sum`), and a pair whose key
//! reaches the point's threshold T (its k-th smallest upper bound) can change nothing: k pairs with
//! earlier positions are at least as near (`point::Point::threshold`). For a placed
//! point x and any point y of the box [lo, hi], [`gap_bound`] never exceeds that sum, exactly, with no
//! error analysis: coordinate by coordinate |y_i - x_i| >= e_i, where e_i is lo_i - x_i, x_i - hi_i or 0;
//! rounding to nearest is monotone and symmetric, so |fl(x_i - y_i)| >= fl(e_i) and the rounded squares
//! keep that order; and both sums add these non-negative terms in the same index order from 0, each
//! rounded addition monotone in both operands. A placed point whose bound reaches the largest threshold
//! of the slab's screened points is skipped for the whole slab.

/// A lower bound on the canonical squared sum between `x` and every point of the box (`lo`, `hi`).
pub fn gap_bound(x: &[f64], lo: &[f64], hi: &[f64]) -> f64 {
    let mut sum = 0.0;
    for ((&x, &lo), &hi) in x.iter().zip(lo).zip(hi) {
        let gap = (lo - x).max(x - hi).max(0.0);
        sum += gap * gap;
    }
    sum
}

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
    use crate::metric::squared_sum;

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
