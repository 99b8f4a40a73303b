//! covertreex core: compressed cover tree build and exact k-NN query in pure Rust, in the gold engine's
//! exact operation order (parity mode; see docs/parity.md).
//!
//! One concern per module: `metric` (distances and pruning bounds), `evaluate` (a group of distances: one by
//! one in parity mode, in lockstep in perf mode), `levels` (base-2 level arithmetic), `heap` (bounded
//! (distance, index) heap), `schedule` (the query walk's schedule knobs), `counters` (the counter columns,
//! named once), `tree` (the CSR tree view and its checks), `build` (sequential insertion), `batch` (batch
//! insertion on rayon), `batch_search` (a round's searches, node by node in blocks), `query` (level-synchronous k-NN with counters), `query_block` (queries walking the tree together, a
//! step's evaluations grouped by node on the register-tiled block), `best_first` (the best-first walk of
//! the schedule knob), `blocks` (a step's blocks and the early-stop guard), `children` (the children a query step expands, gathered and evaluated ahead of use),
//! `hilbert` (Hilbert keys: query blocks, `order='hilbert'`), `kernel_matrix` (V's building blocks),
//! `dense` (exact k-NN by GEMM screening and a canonical re-check, no tree), `maximin` (exact maximin
//! ordering fused with the predecessor search, on the dense path's tiles and bounds), `stop` (a caller's
//! request that a long call end early), `errors`.

pub mod batch;
mod batch_search;
mod best_first;
mod blocks;
pub mod build;
mod canonical_block;
mod children;
pub mod counters;
pub mod dense;
pub mod errors;
pub mod evaluate;
pub mod heap;
pub mod hilbert;
pub mod kernel_matrix;
pub mod levels;
pub mod maximin;
pub mod metric;
pub mod query;
mod query_block;
pub mod schedule;
pub mod stop;
#[cfg(test)]
mod testing;
pub mod tree;

pub use batch::build_tree_batch;
pub use build::{build_tree, BuiltTree};
pub use dense::{
    dense_query, pack_split_rows, split_rows, Blocks, DenseOutput, DenseScreen, Int8Packing,
    SplitConstants, SplitData, FACTORS as SPLIT_FACTORS, SPLIT_CONSTANTS,
};
pub use errors::{CoreError, Result};
pub use evaluate::Mode;
pub use maximin::{
    maximin_neighbors, maximin_order, MaximinOrder, MaximinOutput, MaximinSizes, MaximinSplit,
};
pub use metric::{Kernel, Matrix, Metric, MetricData};
pub use query::{query_batch, QueryBatch, QueryOutput};
pub use query_block::QueryBlocks;
pub use schedule::Schedule;
pub use stop::Stop;
pub use tree::TreeView;

/// Crate version, exposed to Python so the wrapper can check it built what it expects.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
