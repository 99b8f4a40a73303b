//! A copy of some rows of a data set, in a given order, as a [`MetricData`] of its own: the dense
//! screening bounds a query row against *consecutive* points, so the points placed in a round (or a
//! round's block) are gathered in position order.

use rayon::prelude::*;

use crate::errors::Result;
use crate::metric::{Matrix, MetricData};

/// Rows of V one parallel task copies (64 KiB at m = 128, 256 KiB at m = 512).
const GATHER_ROWS: usize = 64;

/// Rows of X, V and p, gathered.
pub struct Rows {
    n: usize,
    x: Vec<f64>,
    v: Vec<f64>,
    p: Vec<f64>,
}

impl Rows {
    /// Rows `rows` of `data`, in that order.
    pub fn gather(data: &MetricData, rows: &[usize]) -> Rows {
        let width = data.v.cols();
        let mut v = vec![0.0; rows.len() * width];
        if width > 0 {
            // Rows of V in parallel: a round gathers about 2 MiB of them twice.
            (v.par_chunks_mut(width).zip(rows))
                .with_min_len(GATHER_ROWS)
                .for_each(|(to, &r)| to.copy_from_slice(data.v.row(r)));
        }
        Rows {
            n: rows.len(),
            x: rows.iter().flat_map(|&r| data.x.row(r)).copied().collect(),
            v,
            p: rows.iter().map(|&r| data.p[r]).collect(),
        }
    }

    /// The gathered rows with `data`'s metric, kernel and parameters.
    pub fn view<'a>(&'a self, data: &MetricData<'a>) -> Result<MetricData<'a>> {
        Ok(MetricData {
            x: Matrix::new("X", &self.x, self.n, data.x.cols())?,
            v: Matrix::new("V", &self.v, self.n, data.v.cols())?,
            p: &self.p,
            ..*data
        })
    }
}
