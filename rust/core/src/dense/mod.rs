//! The dense path (DESIGN section 5): exact k-NN without a tree, as blocked GEMM tiles of query rows x
//! point rows with a fused epilogue that screens every pair against a per-query running k-th bound,
//! then a canonical re-evaluation of the pairs the bound cannot exclude.
//!
//! One concern per module: `screen` (the rigorous per-pair bound and the key), `exp` (the screening's
//! vectorisable exp and its error bound), `tile` (the GEMM), `select` (running bound, candidates,
//! canonical re-check). Query blocks run in parallel on rayon; block shapes never depend on the thread
//! count, so answers and counters do not either.

mod exp;
mod screen;
mod select;
mod tile;

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use rayon::prelude::*;

pub use screen::{widen, Isa, RowFactors, Screen, Sink};

use crate::counters::{N_QUERY_COUNTERS, Q_EVALUATIONS, Q_HEAP_PUSHES, Q_STEPS};
use crate::errors::{filled, CoreError, Result};
use crate::heap::Heap;
use crate::metric::MetricData;
use crate::query::{check_queries_given, thread_pool, QueryBatch};
pub use screen::operand;
pub use select::{open_pairs, UpperBounds};
use select::{Recheck, Selection};
pub use tile::gram;

/// Tile shape: query rows per block (the unit of parallel work) and point rows per GEMM tile.
#[derive(Debug, Clone, Copy)]
pub struct Blocks {
    pub queries: usize,
    pub points: usize,
}

/// Answers and counters of a dense batch, row-major.
#[derive(Debug, Clone, PartialEq)]
pub struct DenseOutput {
    pub n_queries: usize,
    pub k: usize,
    pub indices: Vec<i64>,
    pub distances: Vec<f64>,
    /// n_queries x N_QUERY_COUNTERS: canonical re-evaluations, heap pushes, 0, 0, tiles visited.
    pub per_query: Vec<i64>,
    /// Eligible pairs screened per query.
    pub screened: Vec<i64>,
    /// Seconds the workers spent inside GEMM, summed over workers (a timing: never compared).
    pub gemm_seconds: f64,
}

/// Buffers one worker reuses across its query blocks.
struct Worker {
    rows: Vec<f64>,
    tile: Vec<f64>,
    heap: Heap,
    recheck: Recheck,
}

struct Job<'a> {
    data: &'a MetricData<'a>,
    queries: &'a QueryBatch<'a>,
    screen: Screen<'a>,
    blocks: Blocks,
    k: usize,
    gemm_nanos: AtomicU64,
}

/// The output rows of one query block.
struct BlockOut<'a> {
    first: usize,
    indices: &'a mut [i64],
    distances: &'a mut [f64],
    counts: &'a mut [i64],
    screened: &'a mut [i64],
}

impl Job<'_> {
    fn run(&self, worker: &mut Worker, out: BlockOut) {
        let n = self.data.n_points();
        let nb = out.screened.len();
        let (q_values, width) = operand(&self.queries.data);
        let (p_values, _) = operand(self.data);
        let block = out.first..out.first + nb;
        let limits: Vec<usize> = self.queries.limit[block.clone()]
            .iter()
            .map(|&l| l.clamp(0, n as i64) as usize)
            .collect();
        let rows = &self.queries.rows[block.clone()];
        let own = &self.queries.dataset_index[block];
        worker.rows.clear();
        for &r in rows {
            let r = r as usize;
            worker
                .rows
                .extend_from_slice(&q_values[r * width..(r + 1) * width]);
        }
        let mut selections: Vec<Selection> = (0..nb)
            .map(|_| Selection::new(self.k, self.data.metric))
            .collect();
        let end = limits.iter().copied().max().unwrap_or(0);
        for j0 in (0..end).step_by(self.blocks.points) {
            let cols = self.blocks.points.min(end - j0);
            let tile = &mut worker.tile[..nb * cols];
            let points = &p_values[j0 * width..(j0 + cols) * width];
            let start = Instant::now();
            gram(tile, &worker.rows, points, nb, cols, width);
            let nanos = start.elapsed().as_nanos() as u64;
            self.gemm_nanos.fetch_add(nanos, Ordering::Relaxed);
            for (q, selection) in selections.iter_mut().enumerate() {
                let stop = limits[q].min(j0 + cols);
                if stop <= j0 {
                    continue;
                }
                let values = &tile[q * cols..q * cols + (stop - j0)];
                let at = usize::try_from(own[q] - j0 as i64).ok();
                self.screen
                    .screen_row(out.first + q, j0, values, at, selection);
                selection.screened += (stop - j0) as i64;
                out.counts[q * N_QUERY_COUNTERS + Q_STEPS] += 1;
            }
        }
        let k = self.k;
        for (q, selection) in selections.iter_mut().enumerate() {
            let (row, index) = (rows[q] as usize, own[q]);
            let (evaluations, pushes) = selection.finish(
                &mut worker.heap,
                &mut worker.recheck,
                &self.queries.data,
                row,
                index,
                self.data,
            );
            worker.heap.write_sorted(
                &mut out.indices[q * k..(q + 1) * k],
                &mut out.distances[q * k..(q + 1) * k],
            );
            let counts = &mut out.counts[q * N_QUERY_COUNTERS..(q + 1) * N_QUERY_COUNTERS];
            counts[Q_EVALUATIONS] = evaluations;
            counts[Q_HEAP_PUSHES] = pushes;
            out.screened[q] = selection.screened;
        }
    }
}

fn check_blocks(blocks: Blocks) -> Result<()> {
    for (what, value) in [
        ("dense query block", blocks.queries),
        ("dense point block", blocks.points),
    ] {
        if value < 1 {
            return Err(CoreError::BadValue {
                what,
                value: value as i64,
                allowed: ">= 1",
            });
        }
    }
    Ok(())
}

/// Answer every query of the batch exactly by dense screening: the k nearest indexed points by
/// (distance, index), with distances bitwise the canonical ones. `threads` = None runs on rayon's
/// global pool; results and counters never depend on it.
pub fn dense_query(
    data: &MetricData,
    queries: &QueryBatch,
    k: i64,
    threads: Option<i64>,
    blocks: Blocks,
) -> Result<DenseOutput> {
    // The screen needs every data row's norm; reading V for them first proves it finite, so the check
    // need not read it again (`RowFactors::prove_v_finite`).
    data.check_shapes()?;
    let data_rows = RowFactors::of(data, 0..data.n_points());
    check_queries_given(data, queries, k, data_rows.prove_v_finite(data))?;
    check_blocks(blocks)?;
    let n_q = queries.rows.len();
    let cells = n_q.checked_mul(k as usize);
    let mut out = DenseOutput {
        n_queries: n_q,
        k: k as usize,
        indices: filled(cells, -1i64, k)?,
        distances: filled(cells, f64::INFINITY, k)?,
        per_query: vec![0; n_q * N_QUERY_COUNTERS],
        screened: vec![0; n_q],
        gemm_seconds: 0.0,
    };
    if n_q == 0 {
        return Ok(out);
    }
    let job = Job {
        data,
        queries,
        screen: Screen::with_data_rows(queries, data, data_rows),
        blocks,
        k: k as usize,
        gemm_nanos: AtomicU64::new(0),
    };
    match thread_pool(threads)? {
        Some(pool) => pool.install(|| run_blocks(&job, &mut out)),
        None => run_blocks(&job, &mut out),
    }
    out.gemm_seconds = job.gemm_nanos.load(Ordering::Relaxed) as f64 * 1e-9;
    Ok(out)
}

fn run_blocks(job: &Job, out: &mut DenseOutput) {
    let (k, bq) = (job.k, job.blocks.queries);
    let width = operand(job.data).1;
    let tile_len = bq.min(out.n_queries) * job.blocks.points.min(job.data.n_points());
    out.indices
        .par_chunks_mut(bq.saturating_mul(k))
        .zip(out.distances.par_chunks_mut(bq.saturating_mul(k)))
        .zip(
            out.per_query
                .par_chunks_mut(bq.saturating_mul(N_QUERY_COUNTERS)),
        )
        .zip(out.screened.par_chunks_mut(bq))
        .enumerate()
        // Last block first: in predecessor mode a block's work grows with its position, and a pool
        // that ends on the cheapest blocks leaves no worker waiting on a long one.
        .rev()
        .for_each_init(
            || Worker {
                rows: Vec::with_capacity(bq * width),
                tile: vec![0.0; tile_len],
                heap: Heap::new(k),
                recheck: Recheck::default(),
            },
            |worker, (b, (((indices, distances), counts), screened))| {
                let out = BlockOut {
                    first: b * bq,
                    indices,
                    distances,
                    counts,
                    screened,
                };
                job.run(worker, out);
            },
        );
}
