//! A copy of some rows of a data set, in a given order, as a [`MetricData`] of its own: the dense
//! screening bounds a query row against *consecutive* points, so the points placed in a round (or a
//! round's block) are gathered in position order.

use crate::errors::Result;
use crate::metric::{Matrix, MetricData};

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
        let mut out = Rows {
            n: rows.len(),
            x: Vec::with_capacity(rows.len() * data.x.cols()),
            v: Vec::with_capacity(rows.len() * data.v.cols()),
            p: Vec::with_capacity(rows.len()),
        };
        for &r in rows {
            out.x.extend_from_slice(data.x.row(r));
            out.v.extend_from_slice(data.v.row(r));
            out.p.push(data.p[r]);
        }
        out
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
