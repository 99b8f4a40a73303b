//! The unplaced points, compacted: their GEMM operand rows in one contiguous buffer and their states
//! beside them, in the same slots. A round screens the pool a slab of consecutive slots at a time, so a
//! tile's GEMM reads its rows where they lie (no gather of the outside rows per tile, which cost ~8% of
//! the pass's samples as memmove), and the states of a slab are one disjoint `&mut` slice.
//!
//! A placed point leaves by swap-remove: the last slot moves into its hole, O(m) per placement. The
//! slots' order thus depends on the placements alone (never on the thread count). A GEMM value does
//! not depend on where its row sits in a tile of the `gemm` crate's blocked path (one pass over the
//! depth, the same accumulation per element), so moving rows between tiles changes no screening bound.

use rayon::prelude::*;

use super::point::Point;

const GONE: usize = usize::MAX;

pub struct Pool {
    width: usize,
    /// Operand rows of the pool, slot after slot (slots x width).
    rows: Vec<f64>,
    /// Dataset index of each slot.
    pub members: Vec<usize>,
    /// State of each slot's point.
    pub states: Vec<Point>,
    /// Slot of each dataset index (GONE once placed).
    slot: Vec<usize>,
}

impl Pool {
    /// All `n` points of an operand of `width` columns (`values`, row-major), each with state `state`.
    pub fn new(values: &[f64], n: usize, width: usize, state: impl Fn() -> Point) -> Pool {
        Pool {
            width,
            rows: parallel_copy(&values[..n * width]),
            members: (0..n).collect(),
            states: (0..n).map(|_| state()).collect(),
            slot: (0..n).collect(),
        }
    }

    pub fn len(&self) -> usize {
        self.members.len()
    }

    /// The state of dataset index `j` (unplaced).
    pub fn state(&mut self, j: usize) -> &mut Point {
        &mut self.states[self.slot[j]]
    }

    /// The canonical distance from `j` (unplaced) to its nearest placed point.
    pub fn dist(&self, j: usize) -> f64 {
        self.states[self.slot[j]].dist
    }

    /// Take `j` out of the pool (its slot gets the last one's row, state and index); return its state.
    pub fn remove(&mut self, j: usize) -> Point {
        let (at, last) = (self.slot[j], self.len() - 1);
        let w = self.width;
        self.rows.copy_within(last * w..(last + 1) * w, at * w);
        self.rows.truncate(last * w);
        let moved = self.members[last];
        self.members.swap_remove(at);
        self.slot[moved] = at;
        self.slot[j] = GONE;
        self.states.swap_remove(at)
    }

    /// Slabs of at most `rows` consecutive slots, in parallel: (operand rows, dataset indices, states).
    pub fn slabs(
        &mut self,
        rows: usize,
    ) -> impl IndexedParallelIterator<Item = (&[f64], &[usize], &mut [Point])> + '_ {
        let (values, w) = (&self.rows, self.width);
        (self.members.par_chunks(rows))
            .zip(self.states.par_chunks_mut(rows))
            .enumerate()
            .map(move |(b, (members, states))| {
                let first = b * rows;
                (
                    &values[first * w..(first + members.len()) * w],
                    members,
                    states,
                )
            })
    }
}

/// A copy of `values`, written by every worker: the pages of a copy of V (64 MiB at N = 32,768, m = 512)
/// are first touched by the writes, and faulting them in on one core took longer than the copying.
fn parallel_copy(values: &[f64]) -> Vec<f64> {
    const CHUNK: usize = 1 << 16;
    let mut copy = vec![0.0; values.len()];
    copy.par_chunks_mut(CHUNK)
        .zip(values.par_chunks(CHUNK))
        .for_each(|(to, from)| to.copy_from_slice(from));
    copy
}
