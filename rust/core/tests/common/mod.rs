//! Shared helpers of the integration tests: a seeded generator, point sets, and the Python-side steps
//! (CSR children, copy flags, counter slots) that turn a build into a queryable tree.
#![allow(dead_code)]

use covertreex_core::levels::DUPLICATE_LEVEL;
use covertreex_core::metric::{distance, kernel_value};
use covertreex_core::{BuiltTree, Kernel, Matrix, Metric, MetricData, QueryBatch, TreeView};

/// A 64-bit linear congruential generator (Knuth's MMIX constants): tiny, seeded, reproducible.
pub struct Lcg(u64);

impl Lcg {
    pub fn new(seed: u64) -> Lcg {
        Lcg(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0x2545_F491_4F6C_DD1D)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        self.0
    }

    /// Uniform in [0, 1) from the top 53 bits.
    pub fn uniform(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Uniform integer in [0, bound).
    pub fn below(&mut self, bound: u64) -> u64 {
        (self.next_u64() >> 33) % bound
    }
}

/// Which kind of point set to draw.
#[derive(Debug, Clone, Copy)]
pub enum Points {
    /// Uniform in the unit cube.
    Uniform,
    /// Integer grid {0..3}^d: many tied distances and repeated points.
    Lattice,
}

pub fn points(kind: Points, n: usize, d: usize, rng: &mut Lcg) -> Vec<f64> {
    (0..n * d)
        .map(|_| match kind {
            Points::Uniform => rng.uniform(),
            Points::Lattice => rng.below(4) as f64,
        })
        .collect()
}

/// Arrays owning everything a MetricData borrows.
#[derive(Clone)]
pub struct Space {
    pub metric: Metric,
    pub kernel: Kernel,
    pub n: usize,
    pub d: usize,
    pub m: usize,
    pub x: Vec<f64>,
    pub v: Vec<f64>,
    pub p: Vec<f64>,
    pub lengthscale: Vec<f64>,
    pub slack: f64,
}

impl Space {
    pub fn euclidean(x: Vec<f64>, d: usize) -> Space {
        let n = x.len() / d;
        Space {
            metric: Metric::Euclidean,
            kernel: Kernel::Rbf,
            n,
            d,
            m: 0,
            x,
            v: vec![],
            p: vec![1.0; n],
            lengthscale: vec![1.0; d],
            slack: 4.0 * (d as f64 + 4.0) * f64::EPSILON,
        }
    }

    /// A residual space the way covertreex.residual builds one: inducing points U (the first m rows of
    /// `inducing`), L = cholesky(k(U, U) + 1e-6 I), V = (L^-1 k(U, X))^T, p = max(1 - ||V_i||^2, 1e-9),
    /// and the slack formula of covertreex.metrics.space.
    pub fn residual(x: Vec<f64>, d: usize, inducing: &[f64], m: usize, kernel: Kernel) -> Space {
        Space::residual_with(x, d, inducing, m, kernel, vec![0.5; d])
    }

    /// [`Space::residual`] with lengthscales `ls` (one per dimension).
    pub fn residual_with(
        x: Vec<f64>,
        d: usize,
        inducing: &[f64],
        m: usize,
        kernel: Kernel,
        ls: Vec<f64>,
    ) -> Space {
        let n = x.len() / d;
        let k = |a: &[f64], b: &[f64]| {
            let r2: f64 = a
                .iter()
                .zip(b)
                .zip(&ls)
                .map(|((p, q), l)| ((p - q) / l).powi(2))
                .sum();
            kernel_value(kernel, 1.0, r2)
        };
        let u = |i: usize| &inducing[i * d..(i + 1) * d];
        let mut l = vec![0.0; m * m];
        for i in 0..m {
            for j in 0..=i {
                let jitter = if i == j { 1e-6 } else { 0.0 };
                let dot: f64 = (0..j).map(|t| l[i * m + t] * l[j * m + t]).sum();
                let value = k(u(i), u(j)) + jitter - dot;
                l[i * m + j] = if i == j {
                    value.sqrt()
                } else {
                    value / l[j * m + j]
                };
            }
        }
        let mut v = vec![0.0; n * m];
        for r in 0..n {
            let xr = &x[r * d..(r + 1) * d];
            for i in 0..m {
                let dot: f64 = (0..i).map(|t| l[i * m + t] * v[r * m + t]).sum();
                v[r * m + i] = (k(u(i), xr) - dot) / l[i * m + i];
            }
        }
        let p: Vec<f64> = (0..n)
            .map(|i| (1.0 - v[i * m..(i + 1) * m].iter().map(|a| a * a).sum::<f64>()).max(1e-9))
            .collect();
        let p_min = p.iter().cloned().fold(f64::INFINITY, f64::min);
        Space {
            metric: Metric::Residual,
            kernel,
            n,
            d,
            m,
            x,
            v,
            p,
            lengthscale: ls,
            slack: 8.0 * (m + d + 8) as f64 * f64::EPSILON / p_min,
        }
    }

    pub fn data(&self) -> MetricData<'_> {
        MetricData {
            metric: self.metric,
            kernel: self.kernel,
            variance: 1.0,
            lengthscale: &self.lengthscale,
            x: Matrix::new("X", &self.x, self.n, self.d).unwrap(),
            v: Matrix::new("V", &self.v, self.n, self.m).unwrap(),
            p: &self.p,
            slack: self.slack,
        }
    }
}

/// The finished tree arrays (what covertreex.tree.assemble computes in Python).
pub struct Assembled {
    pub root: i64,
    pub root_level: i64,
    pub n_slots: i64,
    pub levels: Vec<i64>,
    pub parents: Vec<i64>,
    pub offsets: Vec<i64>,
    pub children: Vec<i64>,
    pub radius: Vec<f64>,
    pub is_copy: Vec<bool>,
    pub subtree_min: Vec<i64>,
}

impl Assembled {
    pub fn new(built: &BuiltTree, data: &MetricData) -> Assembled {
        let n = built.levels.len();
        let root = built.parents.iter().position(|&p| p < 0).unwrap();
        let mut kids: Vec<usize> = (0..n).filter(|&i| i != root).collect();
        kids.sort_by_key(|&c| (built.parents[c], -built.levels[c], c));
        let mut offsets = vec![0i64; n + 1];
        for &c in &kids {
            offsets[built.parents[c] as usize + 1] += 1;
        }
        for i in 0..n {
            offsets[i + 1] += offsets[i];
        }
        // A child is a copy when its data rows equal its parent's bit for bit.
        let is_copy = (0..n)
            .map(|c| {
                let p = built.parents[c];
                p >= 0 && {
                    let p = p as usize;
                    data.x.row(c) == data.x.row(p)
                        && data.v.row(c) == data.v.row(p)
                        && data.p[c] == data.p[p]
                }
            })
            .collect();
        // Each node's subtree minimum, settled leaves first: levels fall from parent to child.
        let mut subtree_min: Vec<i64> = (0..n as i64).collect();
        let mut upward: Vec<usize> = (0..n).filter(|&i| i != root).collect();
        upward.sort_by_key(|&c| built.levels[c]);
        for c in upward {
            let p = built.parents[c] as usize;
            subtree_min[p] = subtree_min[p].min(subtree_min[c]);
        }
        let real = built.levels.iter().filter(|&&l| l != DUPLICATE_LEVEL);
        let top = *real.clone().max().unwrap();
        let bottom = *real.min().unwrap();
        Assembled {
            root: root as i64,
            root_level: top,
            n_slots: top - bottom + 2,
            levels: built.levels.clone(),
            parents: built.parents.clone(),
            offsets,
            children: kids.iter().map(|&c| c as i64).collect(),
            radius: built.radius.clone(),
            is_copy,
            subtree_min,
        }
    }

    pub fn view(&self) -> TreeView<'_> {
        TreeView {
            root: self.root,
            root_level: self.root_level,
            n_slots: self.n_slots,
            levels: &self.levels,
            child_offsets: &self.offsets,
            children: &self.children,
            radius: &self.radius,
            is_copy: &self.is_copy,
            subtree_min: &self.subtree_min,
        }
    }
}

/// The oracle: every eligible point (index < limit), sorted by (distance, index), padded with (-1, inf).
pub fn naive_knn(
    queries: &MetricData,
    row: usize,
    q_index: i64,
    limit: i64,
    data: &MetricData,
    k: usize,
) -> (Vec<i64>, Vec<f64>) {
    let mut all: Vec<(f64, i64)> = (0..data.n_points())
        .filter(|&j| (j as i64) < limit)
        .map(|j| (distance(queries, row, q_index, data, j), j as i64))
        .collect();
    all.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
    all.truncate(k);
    let mut idx: Vec<i64> = all.iter().map(|p| p.1).collect();
    let mut dist: Vec<f64> = all.iter().map(|p| p.0).collect();
    idx.resize(k, -1);
    dist.resize(k, f64::INFINITY);
    (idx, dist)
}

/// Query rows of one space with their dataset indices and eligibility limits.
pub struct Rows {
    pub rows: Vec<i64>,
    pub index: Vec<i64>,
    pub limit: Vec<i64>,
}

impl Rows {
    /// Every row of an outside query set (no dataset index, every point eligible).
    pub fn outside(n_queries: usize, n_points: usize) -> Rows {
        Rows {
            rows: (0..n_queries as i64).collect(),
            index: vec![-1; n_queries],
            limit: vec![n_points as i64; n_queries],
        }
    }

    /// Indexed points as queries; `predecessor` limits point i to j < i.
    pub fn indexed(rows: Vec<i64>, n_points: usize, predecessor: bool) -> Rows {
        let limit = if predecessor {
            rows.clone()
        } else {
            vec![n_points as i64; rows.len()]
        };
        Rows {
            index: rows.clone(),
            rows,
            limit,
        }
    }

    pub fn batch<'a>(&'a self, queries: &'a Space) -> QueryBatch<'a> {
        QueryBatch {
            data: queries.data(),
            rows: &self.rows,
            dataset_index: &self.index,
            limit: &self.limit,
        }
    }
}

/// Pairs (indexed space, outside queries) over uniform and lattice data in 1, 2, 3 and 8 dimensions,
/// Euclidean and residual (RBF in odd, Matern 5/2 in even dimensions).
pub fn spaces(seed: u64) -> Vec<(Space, Space)> {
    let mut rng = Lcg::new(seed);
    let mut out = vec![];
    let kinds = [
        (Points::Uniform, 1),
        (Points::Uniform, 3),
        (Points::Lattice, 2),
        (Points::Uniform, 8),
    ];
    for (kind, d) in kinds {
        let (data, queries) = (
            points(kind, 300, d, &mut rng),
            points(kind, 20, d, &mut rng),
        );
        out.push((
            Space::euclidean(data.clone(), d),
            Space::euclidean(queries.clone(), d),
        ));
        let kernel = if d % 2 == 0 {
            Kernel::Matern52
        } else {
            Kernel::Rbf
        };
        let inducing = data[..8 * d].to_vec();
        out.push((
            Space::residual(data, d, &inducing, 8, kernel),
            Space::residual(queries, d, &inducing, 8, kernel),
        ));
    }
    out
}

/// Assert that every query row's answer (`indices`, `distances`, row-major with k columns) equals the
/// naive scan: the same indices and bit-identical distances.
pub fn assert_rows_match_naive(
    data: &Space,
    queries: &Space,
    rows: &Rows,
    k: usize,
    indices: &[i64],
    distances: &[f64],
) {
    let bits = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
    for (q, &row) in rows.rows.iter().enumerate() {
        let (idx, dist) = naive_knn(
            &queries.data(),
            row as usize,
            rows.index[q],
            rows.limit[q],
            &data.data(),
            k,
        );
        let span = q * k..(q + 1) * k;
        assert_eq!(&indices[span.clone()], &idx[..], "query {q}, k = {k}");
        assert_eq!(bits(&distances[span]), bits(&dist), "query {q}, k = {k}");
    }
}
