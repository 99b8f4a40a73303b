//! Blocks of a walk step and the early stop they allow (schedule knobs `block_sizing` and `early_stop`),
//! as covertreex/engines/gold/blocks.py, which defines them and proves the early stop exact. A block is a
//! run of one level step's frontier entries (the whole step unless `block_sizing`) or one best-first pop;
//! perf mode gathers and evaluates a block's children ahead as one batch.

use crate::counters::Q_GUARD_CHECKS;
use crate::metric::{can_prune, Metric};
use crate::tree::TreeView;

/// The smallest block of a sized step (entries).
const MIN_BLOCK: usize = 4;
/// A sized step's first block is 1/SPLIT of its frontier.
const SPLIT: usize = 8;

/// The first block of a sized step of `n_front` entries (also the size it resets to after a yield).
pub(crate) fn first_width(n_front: usize) -> usize {
    MIN_BLOCK.max(n_front.div_ceil(SPLIT))
}

/// The early-stop guard: true when every (node, distance) entry, tested in order until one is not, is
/// prunable against the k-th distance `threshold`; each entry tested counts one guard check.
pub(crate) fn settled(
    entries: impl IntoIterator<Item = (usize, f64)>,
    tree: &TreeView,
    (metric, slack): (Metric, f64),
    threshold: f64,
    counts: &mut [i64],
) -> bool {
    for (node, dist) in entries {
        counts[Q_GUARD_CHECKS] += 1;
        if !can_prune(metric, slack, dist, tree.radius[node], threshold) {
            return false;
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_blocks_are_an_eighth_of_the_frontier_and_at_least_four() {
        assert_eq!(first_width(1), 4);
        assert_eq!(first_width(33), 5);
        assert_eq!(first_width(800), 100);
    }
}
