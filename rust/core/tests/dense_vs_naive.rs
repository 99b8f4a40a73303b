//! The dense path equals a naive scan with the canonical distance, exactly (indices, distance bits,
//! padding), for outside, indexed and predecessor queries, on tie-heavy lattices and on residual spaces
//! whose residual variances sit at the clamp, for any block shape and thread count.

mod common;

use common::{assert_rows_match_naive, points, spaces, Lcg, Points, Rows, Space};
use covertreex_core::counters::{N_QUERY_COUNTERS, Q_EVALUATIONS};
use covertreex_core::dense::{spans, Isa, Screen, Sink};
use covertreex_core::metric::{residual_sums, similarity_from};
use covertreex_core::query::available_threads;
use covertreex_core::{dense_query, Blocks, CoreError, DenseOutput, DenseScreen, Kernel, Stop};

const BLOCKS: [Blocks; 3] = [
    Blocks {
        queries: 64,
        points: 1024,
    },
    Blocks {
        queries: 3,
        points: 7,
    },
    Blocks {
        queries: 1,
        points: 1,
    },
];

fn run(
    space: &Space,
    queries: &Space,
    rows: &Rows,
    k: usize,
    blocks: Blocks,
    threads: Option<i64>,
) -> DenseOutput {
    dense_query(
        &space.data(),
        &rows.batch(queries),
        k as i64,
        threads,
        blocks,
        &Stop::default(),
        DenseScreen::F64,
    )
    .unwrap()
}

/// Everything but the GEMM timing is deterministic.
fn untimed(out: DenseOutput) -> DenseOutput {
    DenseOutput {
        gemm_seconds: 0.0,
        ..out
    }
}

/// The call on four workers (a pool of the test's own, so that its blocks are cut into spans whatever
/// the CPU count), checked against the naive scan and against the same call on one worker (never cut,
/// the same GEMM calls), equal in every answer, distance bit and counter; returned.
fn split_over_four_workers(
    space: &Space,
    queries: &Space,
    rows: &Rows,
    k: usize,
    blocks: Blocks,
) -> DenseOutput {
    let four = rayon::ThreadPoolBuilder::new()
        .num_threads(4)
        .build()
        .unwrap();
    let split = untimed(four.install(|| run(space, queries, rows, k, blocks, None)));
    assert_rows_match_naive(space, queries, rows, k, &split.indices, &split.distances);
    let one_worker = untimed(run(space, queries, rows, k, blocks, Some(1)));
    assert_eq!(split, one_worker, "k = {k}");
    split
}

fn assert_matches_naive(space: &Space, queries: &Space, rows: &Rows, k: usize) {
    for blocks in BLOCKS {
        let all = Some(available_threads() as i64);
        let out = run(space, queries, rows, k, blocks, all);
        assert_rows_match_naive(space, queries, rows, k, &out.indices, &out.distances);
        for q in 0..rows.rows.len() {
            let eligible = rows.limit[q].clamp(0, space.n as i64);
            assert_eq!(
                out.screened[q], eligible,
                "every eligible pair is screened once"
            );
            let evaluations = out.per_query[q * N_QUERY_COUNTERS + Q_EVALUATIONS];
            assert!(evaluations >= k.min(eligible as usize) as i64 && evaluations <= eligible);
        }
    }
}

#[test]
fn outside_queries_match_the_naive_scan() {
    for seed in 0..3 {
        for (space, queries) in spaces(seed) {
            let rows = Rows::outside(queries.n, space.n);
            for k in [1, 2, 7, 25, 300] {
                assert_matches_naive(&space, &queries, &rows, k);
            }
        }
    }
}

#[test]
fn indexed_and_predecessor_queries_match_the_naive_scan() {
    for (space, _) in spaces(5) {
        let n = space.n;
        let some = Rows::indexed((0..n as i64).step_by(7).collect(), n, false);
        assert_matches_naive(&space, &space, &some, 5);
        let all = Rows::indexed((0..n as i64).collect(), n, true);
        assert_matches_naive(&space, &space, &all, 4);
    }
}

#[test]
fn residual_variances_at_the_clamp_stay_exact() {
    // Every lattice site is an inducing point, so each point's residual variance is the jitter or the
    // 1e-9 clamp and k - V.V cancels to a few ulps: the screening bound is tested where it is widest.
    let mut rng = Lcg::new(21);
    let data = points(Points::Lattice, 200, 2, &mut rng);
    let sites: Vec<f64> = (0..16)
        .flat_map(|s| [(s / 4) as f64, (s % 4) as f64])
        .collect();
    for kernel in [Kernel::Rbf, Kernel::Matern52] {
        let space = Space::residual(data.clone(), 2, &sites, 16, kernel);
        assert!(space.p.iter().all(|&p| p < 1e-5));
        let rows = Rows::indexed((0..space.n as i64).collect(), space.n, true);
        for k in [1, 3, 30] {
            assert_matches_naive(&space, &space, &rows, k);
        }
    }
}

/// 1-D points whose gaps to the origin put the kernel's exp argument (lengthscale 0.5) where the
/// screening's fast exp is least accurate or changes regime: on both sides of the reduction's rounding
/// boundaries -(n + 1/2) ln2, of its cut-off to 0 at -708, in libm's subnormal range and past libm's own
/// underflow (-745.13). Every gap appears on both sides of the origin (exact ties at every k-th
/// distance), the origin is doubled and has a 1e-9 neighbour.
fn exp_edge_points(kernel: Kernel) -> Vec<f64> {
    let half_ln2 = |n: f64| (n + 0.5) * std::f64::consts::LN_2;
    let arguments = [
        half_ln2(0.0),
        half_ln2(1.0),
        half_ln2(9.0),
        half_ln2(1000.0),
        707.9,
        708.0,
        708.000_000_1,
        708.3,
        708.5,
        720.0,
        745.1,
        745.2,
        800.0,
    ];
    let mut x = vec![0.0, 0.0, 1e-9];
    for t in arguments {
        // RBF: -r2/2 = -2 gap^2; Matern 5/2: -a = -sqrt(20) gap.
        let gap = match kernel {
            Kernel::Rbf => (t / 2.0).sqrt(),
            Kernel::Matern52 => t / 20f64.sqrt(),
        };
        x.extend([gap, -gap]);
    }
    x
}

/// A residual space over [`exp_edge_points`] per kernel, every point inducing: p sits at the jitter
/// or the clamp, where the bound is amplified most.
fn exp_edge_spaces() -> Vec<Space> {
    [Kernel::Rbf, Kernel::Matern52]
        .into_iter()
        .map(|kernel| {
            let x = exp_edge_points(kernel);
            Space::residual(x.clone(), 1, &x, x.len(), kernel)
        })
        .collect()
}

#[test]
fn kernel_values_at_the_fast_exp_edges_stay_exact() {
    for space in exp_edge_spaces() {
        let (n, x) = (space.n, &space.x);
        let queries = Space::residual(x.iter().map(|v| v * 0.75).collect(), 1, x, n, space.kernel);
        let all = Rows::indexed((0..n as i64).collect(), n, false);
        let predecessors = Rows::indexed((0..n as i64).collect(), n, true);
        for k in [1, 2, 3, 4, 7, 16, n - 1, n] {
            assert_matches_naive(&space, &space, &all, k);
            assert_matches_naive(&space, &space, &predecessors, k);
            assert_matches_naive(&space, &queries, &Rows::outside(n, n), k);
        }
    }
}

/// Every (lo, hi) of a row, in index order (a sink whose cutoff excludes nothing).
#[derive(Default)]
struct AllBounds {
    lo: Vec<f64>,
    hi: Vec<f64>,
}

impl Sink for AllBounds {
    fn cutoff(&self) -> f64 {
        f64::INFINITY
    }

    fn offer(&mut self, j: usize, lo: &[f64], hi: &[f64]) {
        assert_eq!(
            j,
            self.lo.len(),
            "groups arrive in index order, none skipped"
        );
        self.lo.extend_from_slice(lo);
        self.hi.extend_from_slice(hi);
    }
}

/// The bounds of every pair of `space` with itself on instruction set `isa`, the "GEMM" summing in
/// reverse order; pair (q, q) is given as the query's own index (distance 0) when `own`.
fn all_bounds(space: &Space, isa: Isa, own: bool) -> Vec<AllBounds> {
    let (n, data, rows) = (space.n, space.data(), Rows::outside(space.n, space.n));
    let batch = rows.batch(space);
    let screen = Screen::new(&batch, &data).on(isa);
    (0..n)
        .map(|q| {
            let vq = data.v.row(q);
            let g: Vec<f64> = (0..n)
                .map(|j| vq.iter().zip(data.v.row(j)).rev().map(|(a, b)| a * b).sum())
                .collect();
            let mut sink = AllBounds::default();
            screen.screen_row(q, 0, &g, own.then_some(q), &mut sink);
            assert_eq!(sink.lo.len(), n);
            sink
        })
        .collect()
}

/// Every pair's canonical key lies in its screening interval, on every instruction set.
fn assert_keys_within_bounds(space: &Space) {
    let data = space.data();
    for isa in Isa::available() {
        for (q, row) in all_bounds(space, isa, false).iter().enumerate() {
            for j in 0..space.n {
                let (r2, dot) = residual_sums(&data, q, &data, j);
                let key = -similarity_from(&data, r2, dot, data.p[q], data.p[j]);
                assert!(
                    row.lo[j] <= key && key <= row.hi[j],
                    "{:?} {isa:?} ({q}, {j}): {key:e} not in [{:e}, {:e}]",
                    space.kernel,
                    row.lo[j],
                    row.hi[j]
                );
            }
        }
    }
}

#[test]
fn every_canonical_key_lies_within_its_screening_interval() {
    // The bound itself, pair by pair, where the exp changes regime and p sits at the jitter or the
    // clamp. A kernel error beyond the stated bound fails here.
    for space in exp_edge_spaces() {
        assert_keys_within_bounds(&space);
    }
}

/// Near-duplicate points (1e-9 apart) with lengthscales that are not powers of two, all inducing: p at
/// the clamp, the rows of V of norm within ~1e-9 of sqrt(variance), k - V.V cancelling to a few ulps.
fn cancelling_space(kernel: Kernel) -> Space {
    let mut rng = Lcg::new(33);
    let mut x = points(Points::Uniform, 24, 2, &mut rng);
    for i in (0..x.len()).step_by(6) {
        x[i + 2] = x[i] + 1e-9;
        x[i + 3] = x[i + 1] - 1e-9;
    }
    let space = Space::residual_with(x.clone(), 2, &x, 24, kernel, vec![0.7, 1.3]);
    assert!(space.p.iter().all(|&p| p < 1e-6));
    space
}

#[test]
fn screening_bounds_hold_under_cancellation_with_any_lengthscale() {
    for kernel in [Kernel::Rbf, Kernel::Matern52] {
        assert_keys_within_bounds(&cancelling_space(kernel));
    }
}

#[test]
fn every_instruction_set_screens_to_the_same_bits() {
    let mut spaces: Vec<Space> = spaces(4).into_iter().map(|(space, _)| space).collect();
    spaces.extend(exp_edge_spaces());
    spaces.extend([Kernel::Rbf, Kernel::Matern52].map(cancelling_space));
    let bits = |rows: Vec<AllBounds>| -> Vec<u64> {
        rows.iter()
            .flat_map(|row| row.lo.iter().chain(&row.hi).map(|v| v.to_bits()))
            .collect()
    };
    for space in &spaces {
        let baseline = bits(all_bounds(space, Isa::Baseline, true));
        for isa in Isa::available() {
            assert_eq!(bits(all_bounds(space, isa, true)), baseline, "{isa:?}");
        }
    }
}

#[test]
fn answers_and_counters_do_not_depend_on_the_thread_count() {
    let (space, queries) = spaces(9).swap_remove(1);
    let rows = Rows::outside(queries.n, space.n);
    let blocks = BLOCKS[1];
    let one = untimed(run(&space, &queries, &rows, 6, blocks, Some(1)));
    assert_eq!(
        one,
        untimed(run(
            &space,
            &queries,
            &rows,
            6,
            blocks,
            Some(available_threads() as i64)
        ))
    );
    assert_eq!(one, untimed(run(&space, &queries, &rows, 6, blocks, None)));
}

#[test]
fn answers_and_counters_do_not_depend_on_how_the_points_are_split() {
    // One block of all 300 queries: cut into spans on four workers, never on one. One query per block
    // (300 blocks): never cut either, and at these widths (<= 8) its one-row GEMMs give the same values
    // as the 300-row ones.
    for (space, _) in spaces(4) {
        let n = space.n;
        let points = 3;
        let tiles = n.div_ceil(points);
        assert!(spans(1, tiles, 4) > 1 && spans(1, tiles, 1) == 1 && spans(n, tiles, 4) == 1);
        for predecessor in [false, true] {
            let rows = Rows::indexed((0..n as i64).collect(), n, predecessor);
            for k in [1, 5, 40] {
                let cut = |queries| Blocks { queries, points };
                let split = split_over_four_workers(&space, &space, &rows, k, cut(n));
                let whole = untimed(run(&space, &space, &rows, k, cut(1), None));
                assert_eq!(split, whole, "k = {k}, predecessor = {predecessor}");
            }
        }
    }
}

#[test]
fn small_blocks_screen_chunk_by_chunk_across_spans() {
    // 4,200 points in tiles of 512 (chunks of 256, the last one partial) and 20 outside queries: one
    // small block, its GEMM run chunk by chunk, cut into spans on four workers.
    let mut rng = Lcg::new(17);
    let sites: Vec<f64> = (0..8).flat_map(|s| [s as f64 / 4.0, 0.5]).collect();
    let data = points(Points::Uniform, 4200, 2, &mut rng);
    let queries = points(Points::Uniform, 20, 2, &mut rng);
    let space = Space::residual(data, 2, &sites, 8, Kernel::Rbf);
    let queries = Space::residual(queries, 2, &sites, 8, Kernel::Rbf);
    let rows = Rows::outside(queries.n, space.n);
    let blocks = Blocks {
        queries: 64,
        points: 512,
    };
    assert!(spans(1, space.n.div_ceil(512), 4) > 1);
    for k in [1, 9, 60] {
        split_over_four_workers(&space, &queries, &rows, k, blocks);
    }
}

#[test]
fn a_bad_v_is_reported_before_other_late_errors() {
    // V's error used to come before the block sizes', the answer size's and the thread count's; it
    // still does, now that V is proven finite by the screen's own norms.
    let (mut space, queries) = spaces(2).swap_remove(1);
    space.v[3] = f64::NAN;
    let rows = Rows::outside(queries.n, space.n);
    let bad_v = CoreError::NonFinite {
        what: "V",
        position: 3,
    };
    let call = |k: i64, threads: Option<i64>, blocks: Blocks| {
        dense_query(
            &space.data(),
            &rows.batch(&queries),
            k,
            threads,
            blocks,
            &Stop::default(),
            DenseScreen::F64,
        )
    };
    let zero = Blocks {
        queries: 0,
        points: 4,
    };
    assert_eq!(call(3, None, zero).unwrap_err(), bad_v);
    assert_eq!(call(i64::MAX, None, BLOCKS[0]).unwrap_err(), bad_v);
    assert_eq!(call(3, Some(0), BLOCKS[0]).unwrap_err(), bad_v);
    assert_eq!(call(3, None, BLOCKS[0]).unwrap_err(), bad_v);
}

#[test]
fn bad_block_sizes_are_errors() {
    let (space, queries) = spaces(2).swap_remove(0);
    let rows = Rows::outside(queries.n, space.n);
    let zero = Blocks {
        queries: 0,
        points: 4,
    };
    assert!(dense_query(
        &space.data(),
        &rows.batch(&queries),
        3,
        None,
        zero,
        &Stop::default(),
        DenseScreen::F64
    )
    .is_err());
    assert!(dense_query(
        &space.data(),
        &rows.batch(&queries),
        0,
        None,
        BLOCKS[0],
        &Stop::default(),
        DenseScreen::F64
    )
    .is_err());
}

/// The dense path reads V once: its row norms prove V finite, so the check skips its own pass. A NaN or
/// an infinity anywhere in V still gets the check's error naming V and the position; a finite V whose
/// squared row norm overflows (the proof fails) is still accepted by the value-by-value fallback; so is
/// a bad p, which fails the proof for its own reason and then gets its own error. Accepted inputs
/// get the naive scan's rows.
#[test]
fn the_norm_proof_of_a_finite_v_keeps_every_check_error() {
    let mut rng = Lcg::new(3);
    let sites: Vec<f64> = (0..8).flat_map(|s| [s as f64, 0.5]).collect();
    let clean = Space::residual(
        points(Points::Uniform, 40, 2, &mut rng),
        2,
        &sites,
        8,
        Kernel::Rbf,
    );
    let all = Rows::indexed((0..clean.n as i64).collect(), clean.n, true);
    let blocks = Blocks {
        queries: 16,
        points: 16,
    };
    let dense_rows = |space: &Space, rows: &Rows| {
        dense_query(
            &space.data(),
            &rows.batch(space),
            3,
            Some(1),
            blocks,
            &Stop::default(),
            DenseScreen::F64,
        )
    };
    let dense = |space: &Space| dense_rows(space, &all);
    let out = dense(&clean).unwrap();
    assert_rows_match_naive(&clean, &clean, &all, 3, &out.indices, &out.distances);
    for bad in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
        let mut space = clean.clone();
        space.v[77] = bad;
        assert_eq!(
            dense(&space).unwrap_err(),
            CoreError::NonFinite {
                what: "V",
                position: 77
            }
        );
    }
    let mut huge = clean.clone();
    huge.v[5] = 1e300; // |v|^2 overflows to inf: the proof fails, the fallback scan accepts V
    let out = dense(&huge).unwrap();
    assert_rows_match_naive(&huge, &huge, &all, 3, &out.indices, &out.distances);
    let mut bad_p = clean.clone();
    bad_p.p[2] = -1.0;
    assert!(matches!(
        dense(&bad_p).unwrap_err(),
        CoreError::NotPositive {
            what: "P",
            position: 2,
            ..
        }
    ));
    // V and P both bad: the error a full check gives first, V's.
    let mut both = bad_p.clone();
    both.v[77] = f64::NAN;
    let v77 = CoreError::NonFinite {
        what: "V",
        position: 77,
    };
    assert_eq!(dense(&both).unwrap_err(), v77);
    // A bad value in rows no query reaches (the predecessors of the first five points stop in the
    // first tile), and in a call without queries: V is still proven or checked whole.
    let mut late = clean.clone();
    let last = late.v.len() - 1;
    late.v[last] = f64::NAN;
    let v_last = CoreError::NonFinite {
        what: "V",
        position: last,
    };
    let first_five = Rows::indexed((0..5).collect(), late.n, true);
    assert_eq!(dense_rows(&late, &first_five).unwrap_err(), v_last);
    let none = Rows::indexed(Vec::new(), late.n, false);
    assert_eq!(dense_rows(&late, &none).unwrap_err(), v_last);
}
