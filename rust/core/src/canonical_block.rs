//! Canonical residual distances of a block of points against a block of nodes, bit for bit
//! `metric::distance`, at register-tile speed: each node's row of V is packed once per block and every
//! point's dot product with it is still the canonical sequential sum `((0 + a_0 b_0) + a_1 b_1) + ..`
//! (one multiplication and one addition per term, no FMA, in index order). A tile keeps ROWS x COLS
//! such sums in registers, one per SIMD lane: the lanes are independent sums, so vectorising across them
//! reorders nothing. This is not a GEMM with a rounding bound (dense/): no pair needs a re-check, every
//! value already is the canonical one. The tile runs with AVX-512 or AVX2 where the CPU has them
//! (dense::Isa), the same operations and bits on every instruction set.

use crate::dense::Isa;
use crate::metric::{residual_from, scaled_r2, MetricData};

/// Points per register tile (ROWS x COLS sums: 8 AVX-512 or 16 AVX2 registers).
const ROWS: usize = 8;
/// Nodes per register tile (a packed panel).
pub(crate) const COLS: usize = 8;

/// Rows of V packed COLS to a panel, term-major within a panel (row j of the pack is lane j % COLS of
/// panel j / COLS); rows can be appended, so a node whose children only ever grow is packed once.
#[derive(Default)]
pub(crate) struct Panels {
    values: Vec<f64>,
    rows: usize,
}

impl Panels {
    /// Rows packed so far.
    pub(crate) fn rows(&self) -> usize {
        self.rows
    }

    pub(crate) fn clear(&mut self) {
        self.values.clear();
        self.rows = 0;
    }

    /// Append rows `rows` of `data`'s V: the free lanes of the last panel first, then new panels, each
    /// written term by term from up to COLS rows read side by side (zero in the lanes left free).
    pub(crate) fn extend(&mut self, data: &MetricData, rows: &[usize]) {
        let m = data.v.cols();
        let free = (COLS - self.rows % COLS) % COLS;
        let (head, rest) = rows.split_at(free.min(rows.len()));
        for &row in head {
            self.push(m, data.v.row(row));
        }
        for group in rest.chunks(COLS) {
            let start = self.values.len();
            self.values.resize(start + m * COLS, 0.0);
            let rows: [&[f64]; COLS] =
                std::array::from_fn(|j| group.get(j).map_or(&[][..], |&row| &data.v.row(row)[..m]));
            let rows = &rows[..group.len()];
            for (t, term) in self.values[start..].chunks_exact_mut(COLS).enumerate() {
                for (slot, row) in term.iter_mut().zip(rows) {
                    *slot = row[t];
                }
            }
            self.rows += group.len();
        }
    }

    /// One row into the next free lane of the last panel.
    fn push(&mut self, m: usize, row: &[f64]) {
        let (lane, panel) = (self.rows % COLS, self.values.len() - m * COLS);
        for (term, &value) in self.values[panel..].chunks_exact_mut(COLS).zip(row) {
            term[lane] = value;
        }
        self.rows += 1;
    }

    /// The canonical dot products of rows `points` of `from`'s V with the packed rows `packed`
    /// (rounded out to whole panels), into `out`: row i holds the panels' values, packed row j at
    /// position j - (the first panel's first row). Each value is the sequential sum
    /// `((0 + a_0 b_0) + a_1 b_1) + ..`, and a_t b_t == b_t a_t, so either side of a distance may be the
    /// packed one.
    pub(crate) fn dots(
        &self,
        isa: Isa,
        from: &MetricData,
        points: &[usize],
        packed: std::ops::Range<usize>,
        out: &mut Vec<f64>,
    ) {
        let m = from.v.cols();
        let (first, end) = (packed.start / COLS, packed.end.div_ceil(COLS));
        let panels = end - first;
        let values = &self.values[first * m * COLS..end * m * COLS];
        out.clear();
        out.resize(points.len() * panels * COLS, 0.0);
        match isa {
            Isa::Baseline => dots(from, points, values, panels, out),
            #[cfg(target_arch = "x86_64")]
            // SAFETY: `Isa::available` lists Avx2 only when the CPU supports it.
            Isa::Avx2 => unsafe { dots_avx2(from, points, values, panels, out) },
            #[cfg(target_arch = "x86_64")]
            // SAFETY: `Isa::available` lists Avx512 only when the CPU supports AVX-512F.
            Isa::Avx512 => unsafe { dots_avx512(from, points, values, panels, out) },
        }
    }

    /// `out[i * nodes.len() + j]` = d(point `points[i]`, node `nodes[j]`) of the residual metric, both
    /// rows of `data` (a point's own index gets distance 0), where `nodes` are the packed rows `packed`
    /// in order; `dots` is working memory.
    pub(crate) fn distances(
        &self,
        isa: Isa,
        data: &MetricData,
        (points, nodes): (&[usize], &[usize]),
        packed: std::ops::Range<usize>,
        dots: &mut Vec<f64>,
        out: &mut [f64],
    ) {
        let (cols, offset) = (nodes.len(), packed.start % COLS);
        self.dots(isa, data, points, packed, dots);
        let width = dots.len() / points.len().max(1);
        for (i, &a) in points.iter().enumerate() {
            let row = &dots[i * width + offset..];
            for (j, &b) in nodes.iter().enumerate() {
                out[i * cols + j] = if a == b {
                    0.0
                } else {
                    let r2 = scaled_r2(data, a, data, b);
                    residual_from(data, r2, row[j], data.p[a], data.p[b])
                };
            }
        }
    }
}

/// Reusable working memory: the nodes' rows of V packed panel by panel, and the dot products.
pub(crate) struct Block {
    panels: Panels,
    dots: Vec<f64>,
    isa: Isa,
}

impl Default for Block {
    fn default() -> Block {
        Block::new()
    }
}

impl Block {
    pub(crate) fn new() -> Block {
        Block {
            panels: Panels::default(),
            dots: Vec::new(),
            isa: Isa::fastest(),
        }
    }

    /// `out[i * nodes.len() + j]` = d(point `points[i]`, node `nodes[j]`) of the residual metric, both
    /// rows of `data` (so a point's own index gets distance 0).
    pub(crate) fn distances(
        &mut self,
        data: &MetricData,
        points: &[usize],
        nodes: &[usize],
        out: &mut [f64],
    ) {
        self.pack(data, nodes);
        let packed = 0..nodes.len();
        let pair = (points, nodes);
        self.panels
            .distances(self.isa, data, pair, packed, &mut self.dots, out);
    }

    /// Pack rows `nodes` of `data`'s V, COLS to a panel, for the [`Block::dots`] that follow.
    pub(crate) fn pack(&mut self, data: &MetricData, nodes: &[usize]) {
        self.panels.clear();
        self.panels.extend(data, nodes);
    }

    /// [`Panels::dots`] of the packed rows `packed`, into the block's own buffer.
    pub(crate) fn dots_with(
        &mut self,
        from: &MetricData,
        points: &[usize],
        packed: std::ops::Range<usize>,
    ) -> &[f64] {
        self.panels
            .dots(self.isa, from, points, packed, &mut self.dots);
        &self.dots
    }
}

/// [`dots`] compiled for AVX2.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn dots_avx2(data: &MetricData, points: &[usize], packed: &[f64], panels: usize, out: &mut [f64]) {
    dots(data, points, packed, panels, out);
}

/// [`dots`] compiled for AVX-512 (eight lanes a register, 32 registers).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
fn dots_avx512(
    data: &MetricData,
    points: &[usize],
    packed: &[f64],
    panels: usize,
    out: &mut [f64],
) {
    dots(data, points, packed, panels, out);
}

/// Every point's dot product with every packed node: row i of `out` holds panel after panel. Points
/// go ROWS at a time, the rest in tiles of 4, 2 and 1 rows.
#[inline(always)]
fn dots(data: &MetricData, points: &[usize], packed: &[f64], panels: usize, out: &mut [f64]) {
    let done = rows_of::<ROWS>(data, points, 0, packed, panels, out);
    let done = rows_of::<4>(data, points, done, packed, panels, out);
    let done = rows_of::<2>(data, points, done, packed, panels, out);
    rows_of::<1>(data, points, done, packed, panels, out);
}

/// The whole groups of R points from position `from` on; returns the position after them.
#[inline(always)]
fn rows_of<const R: usize>(
    data: &MetricData,
    points: &[usize],
    from: usize,
    packed: &[f64],
    panels: usize,
    out: &mut [f64],
) -> usize {
    let (m, width) = (data.v.cols(), panels * COLS);
    let groups = points[from..].chunks_exact(R);
    let end = from + groups.len() * R;
    for (g, group) in groups.enumerate() {
        let rows: [&[f64]; R] = std::array::from_fn(|i| data.v.row(group[i]));
        for (panel, values) in packed.chunks_exact(m * COLS).enumerate() {
            for (i, sum) in tile::<R>(&rows, values).iter().enumerate() {
                let at = (from + g * R + i) * width + panel * COLS;
                out[at..at + COLS].copy_from_slice(sum);
            }
        }
    }
    end
}

/// R rows of V against one packed panel: R x COLS independent sequential sums. The rows are cut to
/// the panel's length so that the compiler drops their bounds checks from the loop.
#[inline(always)]
fn tile<const R: usize>(rows: &[&[f64]; R], panel: &[f64]) -> [[f64; COLS]; R] {
    let m = panel.len() / COLS;
    let rows: [&[f64]; R] = std::array::from_fn(|i| &rows[i][..m]);
    let mut acc = [[0.0f64; COLS]; R];
    for (t, b) in panel.chunks_exact(COLS).enumerate().take(m) {
        let b: &[f64; COLS] = b.try_into().unwrap();
        for (sums, row) in acc.iter_mut().zip(&rows) {
            let a = row[t];
            for (sum, &b) in sums.iter_mut().zip(b) {
                *sum += a * b;
            }
        }
    }
    acc
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::evaluate::tests::values;
    use crate::metric::{distance, Kernel, Matrix, Metric};

    #[test]
    fn every_value_is_bitwise_the_canonical_distance() {
        let (n, d, m) = (37, 3, 29);
        let x = values(n * d, 3);
        // Rows nearly parallel to the first make k - V.V cancel, and p sits at its clamp for some.
        let v: Vec<f64> = values(n * m, 4).iter().map(|a| a * 0.18).collect();
        let p: Vec<f64> = (0..n)
            .map(|i| (1.0 - v[i * m..(i + 1) * m].iter().map(|a| a * a).sum::<f64>()).max(1e-9))
            .collect();
        for kernel in [Kernel::Rbf, Kernel::Matern52] {
            let data = MetricData {
                metric: Metric::Residual,
                kernel,
                variance: 1.0,
                lengthscale: &[0.7, 1.0, 1.3],
                x: Matrix::new("X", &x, n, d).unwrap(),
                v: Matrix::new("V", &v, n, m).unwrap(),
                p: &p,
                slack: 0.0,
            };
            let mut blocks: Vec<Block> = Isa::available()
                .into_iter()
                .map(|isa| Block {
                    isa,
                    ..Block::new()
                })
                .collect();
            for block in &mut blocks {
                for (rows, cols) in [(1, 1), (4, 8), (5, 9), (9, 17), (3, 7), (37, 37)] {
                    let points: Vec<usize> = (0..rows).map(|i| (i * 5 + 1) % n).collect();
                    let nodes: Vec<usize> = (0..cols).map(|j| (j * 3) % n).collect();
                    let mut out = vec![f64::NAN; rows * cols];
                    block.distances(&data, &points, &nodes, &mut out);
                    for (i, &a) in points.iter().enumerate() {
                        for (j, &b) in nodes.iter().enumerate() {
                            let want = distance(&data, a, a as i64, &data, b);
                            assert_eq!(
                                out[i * cols + j].to_bits(),
                                want.to_bits(),
                                "{kernel:?} {a} {b}"
                            );
                        }
                    }
                }
            }
        }
    }
}
