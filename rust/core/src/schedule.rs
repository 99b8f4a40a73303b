//! The schedule of a query walk (covertreex.engines.schedule.Schedule): knobs that change which work a
//! query does and in what order, never its answer. Every knob is off by default, which is the walk of
//! covertreex/engines/gold/query.py before any knob existed.

/// The schedule knobs, by the names of covertreex.config.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Schedule {
    /// Never enter a subtree whose smallest index is not below the query's limit.
    pub predecessor_pruning: bool,
    /// Expand each step's frontier by increasing lower bound d(q, node) - radius, ties by index.
    pub child_reordering: bool,
    /// Walk best first (a queue of subtrees by lower bound, ties by index) instead of level by level.
    pub best_first: bool,
    /// End the walk after a block pruned whole once the guard proves everything left prunable.
    pub early_stop: bool,
    /// Cut each level step into blocks sized from its frontier.
    pub block_sizing: bool,
    /// Skip a child unevaluated when its parent's distance proves its subtree beyond the k-th.
    pub level_cache: bool,
}
