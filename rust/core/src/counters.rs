//! The work counters' columns, named once (DESIGN section 7). Each column constant is the position of
//! its counter in a counter row; `QUERY_COUNTERS` and `LEVEL_COUNTERS` give the telemetry field names in
//! column order. covertreex/counters.py names the same columns; the extension exports these tables and
//! a Python test checks that both sides agree.

/// Declares column constants numbered 0, 1, 2, ... in the order listed, the table of their telemetry
/// names in that order, and the column count, all from one list.
macro_rules! columns {
    ($names:ident, $count:ident { $($(#[$doc:meta])* $column:ident = $name:literal,)+ }) => {
        /// Telemetry field names, in column order.
        pub const $names: &[&str] = &[$($name),+];
        /// Number of columns.
        pub const $count: usize = $names.len();
        columns!(@at 0; $($(#[$doc])* $column)+);
    };
    (@at $at:expr; $(#[$doc:meta])* $column:ident $($rest:tt)*) => {
        $(#[$doc])*
        pub const $column: usize = $at;
        columns!(@at $at + 1; $($rest)*);
    };
    (@at $at:expr;) => {};
}

columns!(QUERY_COUNTERS, N_QUERY_COUNTERS {
    /// Canonical distances evaluated, the root's included.
    Q_EVALUATIONS = "distance_evaluations",
    /// Candidates that entered the k-best heap.
    Q_HEAP_PUSHES = "heap_pushes",
    /// Frontier nodes dropped by the pruning bound.
    Q_PRUNES = "prunes",
    /// Children that reused their parent's distance (exact copies).
    Q_DEDUPE = "dedupe_hits",
    /// Level steps of the walk (dense path: point tiles screened).
    Q_STEPS = "frontier_steps",
    /// Blocks of the walk (a step's run of frontier entries, or a best-first pop).
    Q_BLOCKS = "blocks",
    /// Blocks that yielded no heap push.
    Q_EMPTY_BLOCKS = "empty_blocks",
    /// Walks ended by the early-stop guard.
    Q_EARLY_STOPS = "early_stops",
    /// Entries the early-stop guard tested.
    Q_GUARD_CHECKS = "guard_checks",
    /// Children skipped unevaluated by the level cache.
    Q_CACHE_SKIPS = "cache_skips",
});

columns!(LEVEL_COUNTERS, N_LEVEL_COUNTERS {
    /// Frontier nodes when the level was expanded.
    FRONTIER = "frontier",
    /// Canonical distances evaluated in the step.
    EVALUATIONS = "distance_evaluations",
    /// Heap pushes in the step.
    HEAP_PUSHES = "heap_pushes",
    /// Frontier nodes pruned in the step.
    PRUNES = "prunes",
    /// Blocks the step was cut into.
    BLOCKS = "blocks",
    /// Children of the level skipped unevaluated by the level cache.
    CACHE_SKIPS = "cache_skips",
});

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_are_numbered_in_the_order_named() {
        let query = [
            Q_EVALUATIONS,
            Q_HEAP_PUSHES,
            Q_PRUNES,
            Q_DEDUPE,
            Q_STEPS,
            Q_BLOCKS,
            Q_EMPTY_BLOCKS,
            Q_EARLY_STOPS,
            Q_GUARD_CHECKS,
            Q_CACHE_SKIPS,
        ];
        assert_eq!(query.to_vec(), (0..N_QUERY_COUNTERS).collect::<Vec<_>>());
        assert_eq!(QUERY_COUNTERS[Q_DEDUPE], "dedupe_hits");
        let level = [
            FRONTIER,
            EVALUATIONS,
            HEAP_PUSHES,
            PRUNES,
            BLOCKS,
            CACHE_SKIPS,
        ];
        assert_eq!(level.to_vec(), (0..N_LEVEL_COUNTERS).collect::<Vec<_>>());
        assert_eq!(LEVEL_COUNTERS[HEAP_PUSHES], "heap_pushes");
    }
}
