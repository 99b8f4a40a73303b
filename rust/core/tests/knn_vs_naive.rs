//! k-NN answers of the core equal a naive scan with the same distance function, exactly: indices,
//! bitwise distances and padding, for outside queries, indexed queries and predecessor (Vecchia) mode.

mod common;

use common::{assert_rows_match_naive, spaces, Assembled, Lcg, Rows, Space};
use covertreex_core::counters::{N_QUERY_COUNTERS, Q_EVALUATIONS};
use covertreex_core::query::available_threads;
use covertreex_core::{
    build_tree, query_batch, CoreError, Mode, QueryBatch, QueryBlocks, QueryOutput, Schedule, Stop,
};

struct Case {
    space: Space,
    tree: Assembled,
}

impl Case {
    fn new(space: Space) -> Case {
        let order: Vec<i64> = (0..space.n as i64).collect();
        let tree = Assembled::new(
            &build_tree(&space.data(), &order, Mode::Parity, &Stop::default()).unwrap(),
            &space.data(),
        );
        Case { space, tree }
    }

    fn run(&self, queries: &Space, rows: &Rows, k: usize, threads: Option<i64>) -> QueryOutput {
        self.run_in(Mode::Parity, Schedule::default(), queries, rows, k, threads)
    }

    fn run_in(
        &self,
        mode: Mode,
        schedule: Schedule,
        queries: &Space,
        rows: &Rows,
        k: usize,
        threads: Option<i64>,
    ) -> QueryOutput {
        let batch = rows.batch(queries);
        let (tree, data) = (self.tree.view(), self.space.data());
        query_batch(
            &tree,
            &data,
            &batch,
            k as i64,
            threads,
            mode,
            schedule,
            None,
            &Stop::default(),
        )
        .unwrap()
    }

    fn assert_matches_naive(&self, queries: &Space, rows: &Rows, k: usize) {
        let out = self.run(queries, rows, k, Some(available_threads().min(2) as i64));
        assert_rows_match_naive(&self.space, queries, rows, k, &out.indices, &out.distances);
        // Every query evaluates at least the root.
        let evals = out.per_query.chunks(N_QUERY_COUNTERS);
        assert!(evals.map(|c| c[Q_EVALUATIONS]).all(|e| e >= 1));
    }
}

#[test]
fn outside_queries_match_the_naive_scan() {
    for seed in 0..3 {
        for (space, queries) in spaces(seed) {
            let case = Case::new(space);
            let rows = Rows::outside(queries.n, case.space.n);
            for k in [1, 2, 7, 25] {
                case.assert_matches_naive(&queries, &rows, k);
            }
        }
    }
}

#[test]
fn indexed_and_predecessor_queries_match_the_naive_scan() {
    for (space, _) in spaces(5) {
        let case = Case::new(space);
        let n = case.space.n;
        // Indexed queries: d(i, i) = 0 by index, so each point finds itself first.
        let some = Rows::indexed((0..n as i64).step_by(7).collect(), n, false);
        case.assert_matches_naive(&case.space, &some, 5);
        // Predecessor mode: point i only sees j < i; early rows are padded with (-1, inf).
        let all = Rows::indexed((0..n as i64).collect(), n, true);
        case.assert_matches_naive(&case.space, &all, 4);
    }
}

#[test]
fn answers_and_counters_do_not_depend_on_the_thread_count() {
    let (space, queries) = spaces(9).swap_remove(1);
    let case = Case::new(space);
    let rows = Rows::outside(queries.n, case.space.n);
    let one = case.run(&queries, &rows, 6, Some(1));
    assert_eq!(
        one,
        case.run(&queries, &rows, 6, Some(available_threads() as i64))
    );
    assert_eq!(one, case.run(&queries, &rows, 6, None));
}

#[test]
fn more_threads_than_cpus_are_refused_before_any_pool_is_built() {
    let (space, queries) = spaces(9).swap_remove(1);
    let case = Case::new(space);
    let rows = Rows::outside(queries.n, case.space.n);
    let (tree, data) = (case.tree.view(), case.space.data());
    let batch = QueryBatch {
        data: queries.data(),
        rows: &rows.rows,
        dataset_index: &rows.index,
        limit: &rows.limit,
    };
    for threads in [
        available_threads() as i64 + 1,
        1_000_000_000,
        i64::MAX,
        0,
        -1,
    ] {
        let refused = query_batch(
            &tree,
            &data,
            &batch,
            3,
            Some(threads),
            Mode::Parity,
            Schedule::default(),
            None,
            &Stop::default(),
        );
        assert!(
            matches!(refused, Err(CoreError::BadValue { what: "threads", value, .. }) if value == threads),
            "threads = {threads}: {refused:?}"
        );
    }
}

#[test]
fn perf_mode_gives_the_same_trees_answers_and_counters() {
    for (space, queries) in spaces(13) {
        let order: Vec<i64> = (0..space.n as i64).rev().collect();
        let data = space.data();
        let parity = build_tree(&data, &order, Mode::Parity, &Stop::default()).unwrap();
        assert_eq!(
            parity,
            build_tree(&data, &order, Mode::Perf, &Stop::default()).unwrap()
        );
        let case = Case::new(space);
        let rows = Rows::outside(queries.n, case.space.n);
        for k in [1, 9] {
            let slow = case.run_in(
                Mode::Parity,
                Schedule::default(),
                &queries,
                &rows,
                k,
                Some(available_threads().min(2) as i64),
            );
            let mut fast = case.run_in(
                Mode::Perf,
                Schedule::default(),
                &queries,
                &rows,
                k,
                Some(available_threads().min(2) as i64),
            );
            let bits = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&slow.distances), bits(&fast.distances));
            // Only the speculative distances perf mode threw away may differ.
            assert_eq!(slow.discarded_evaluations, 0);
            assert!(fast.discarded_evaluations >= 0);
            fast.discarded_evaluations = 0;
            assert_eq!(slow, fast);
        }
    }
}

#[test]
fn predecessor_pruning_keeps_answers_and_never_evaluates_more() {
    let pruning = Schedule {
        predecessor_pruning: true,
        ..Schedule::default()
    };
    for (space, _) in spaces(17) {
        let case = Case::new(space);
        let n = case.space.n;
        let all = Rows::indexed((0..n as i64).collect(), n, true);
        for mode in [Mode::Parity, Mode::Perf] {
            let off = case.run_in(mode, Schedule::default(), &case.space, &all, 4, Some(1));
            let on = case.run_in(mode, pruning, &case.space, &all, 4, Some(1));
            assert_eq!(off.indices, on.indices);
            let bits = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&off.distances), bits(&on.distances));
            let evaluations = |out: &QueryOutput| {
                let rows = out.per_query.chunks(N_QUERY_COUNTERS);
                rows.map(|c| c[Q_EVALUATIONS]).collect::<Vec<_>>()
            };
            let (before, after) = (evaluations(&off), evaluations(&on));
            assert!(before.iter().zip(&after).all(|(b, a)| a <= b));
            // Point 0 has no predecessor: nothing is entered, not even the root.
            assert_eq!(after[0], 0);
            assert!(after.iter().sum::<i64>() < before.iter().sum::<i64>());
        }
        // Outside queries see every index, so the flag changes nothing at all.
        let outside = Rows::outside(n, n);
        let off = case.run_in(
            Mode::Parity,
            Schedule::default(),
            &case.space,
            &outside,
            3,
            None,
        );
        assert_eq!(
            off,
            case.run_in(Mode::Parity, pruning, &case.space, &outside, 3, None)
        );
    }
}

#[test]
fn every_schedule_gives_the_default_answers() {
    // Each knob alone, then all together (flags in Schedule's field order).
    let on = |flags: [bool; 6]| Schedule {
        predecessor_pruning: flags[0],
        child_reordering: flags[1],
        best_first: flags[2],
        early_stop: flags[3],
        block_sizing: flags[4],
        level_cache: flags[5],
    };
    let mut schedules: Vec<Schedule> = (1..6)
        .map(|knob| on(std::array::from_fn(|j| j == knob)))
        .collect();
    schedules.push(on([true; 6]));
    schedules.push(on([true, false, true, true, false, true]));
    let bits = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
    for (space, queries) in spaces(21) {
        let case = Case::new(space);
        let n = case.space.n;
        let asked = [
            (&queries, Rows::outside(queries.n, n)),
            (&case.space, Rows::indexed((0..n as i64).collect(), n, true)),
        ];
        for (from, rows) in &asked {
            let plain = case.run(from, rows, 5, Some(1));
            for &schedule in &schedules {
                let parity = case.run_in(Mode::Parity, schedule, from, rows, 5, Some(1));
                assert_eq!(parity.indices, plain.indices, "{schedule:?}");
                assert_eq!(bits(&parity.distances), bits(&plain.distances));
                let perf = case.run_in(Mode::Perf, schedule, from, rows, 5, Some(1));
                assert_eq!(perf.indices, parity.indices, "{schedule:?} perf");
                assert_eq!(
                    perf.per_query, parity.per_query,
                    "{schedule:?} perf counters"
                );
                assert_eq!(
                    perf.per_level, parity.per_level,
                    "{schedule:?} perf counters"
                );
            }
        }
    }
}

#[test]
fn query_blocks_give_the_per_query_answers_and_counters() {
    // The last flag turns on the level-walk knobs of issue 12 (blocks sized from the frontier, their
    // early stop, the level cache) together.
    let on = |predecessor_pruning, child_reordering, blocks_and_cache| Schedule {
        predecessor_pruning,
        child_reordering,
        best_first: false,
        early_stop: blocks_and_cache,
        block_sizing: blocks_and_cache,
        level_cache: blocks_and_cache,
    };
    let threads = Some(available_threads().min(2) as i64);
    let bits = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
    for (space, queries) in spaces(29) {
        let case = Case::new(space);
        let n = case.space.n;
        let asked = [
            (&queries, Rows::outside(queries.n, n)),
            (
                &case.space,
                Rows::indexed((0..n as i64).step_by(3).collect(), n, false),
            ),
            (&case.space, Rows::indexed((0..n as i64).collect(), n, true)),
        ];
        for (from, rows) in &asked {
            let n_q = rows.rows.len();
            // A shuffled order: blocks of queries far apart must be answered as well as near ones.
            let mut rng = Lcg::new(n_q as u64);
            let mut order: Vec<i64> = (0..n_q as i64).collect();
            for i in (1..n_q).rev() {
                order.swap(i, rng.below(i as u64 + 1) as usize);
            }
            let schedules = [
                on(false, false, false),
                on(true, false, false),
                on(true, true, false),
                on(true, false, true),
                on(false, true, true),
            ];
            for schedule in schedules {
                let (tree, data) = (case.tree.view(), case.space.data());
                let batch = rows.batch(from);
                let run = |blocks: Option<QueryBlocks>, threads| {
                    query_batch(
                        &tree,
                        &data,
                        &batch,
                        7,
                        threads,
                        Mode::Perf,
                        schedule,
                        blocks,
                        &Stop::default(),
                    )
                    .unwrap()
                };
                let mut walk = run(None, threads);
                assert_rows_match_naive(&case.space, from, rows, 7, &walk.indices, &walk.distances);
                for size in [1, 2, 8, 64, n_q] {
                    for threads in [Some(1), threads] {
                        let blocks = QueryBlocks {
                            size,
                            order: &order,
                        };
                        let mut out = run(Some(blocks), threads);
                        assert_eq!(bits(&out.distances), bits(&walk.distances));
                        (out.discarded_evaluations, walk.discarded_evaluations) = (0, 0);
                        assert_eq!(out, walk, "{schedule:?} block {size} threads {threads:?}");
                    }
                }
            }
        }
    }
}

#[test]
fn query_blocks_are_refused_unless_their_order_is_a_permutation() {
    let (space, queries) = spaces(9).swap_remove(1);
    let case = Case::new(space);
    let rows = Rows::outside(queries.n, case.space.n);
    let (tree, data) = (case.tree.view(), case.space.data());
    let batch = rows.batch(&queries);
    let n_q = queries.n as i64;
    let mut repeated: Vec<i64> = (0..n_q).collect();
    repeated[1] = 0;
    let short: Vec<i64> = (1..n_q).collect();
    let fine: Vec<i64> = (0..n_q).collect();
    for (size, order) in [(4, &repeated), (4, &short), (0, &fine)] {
        let blocks = Some(QueryBlocks { size, order });
        let refused = query_batch(
            &tree,
            &data,
            &batch,
            3,
            Some(1),
            Mode::Perf,
            Schedule::default(),
            blocks,
            &Stop::default(),
        );
        assert!(refused.is_err(), "size {size}: {refused:?}");
    }
}
