//! A requested [`Stop`] ends every long call with `Interrupted` and no answer; the other test files
//! pass one never requested and get the oracle's answers.

mod common;

use common::{spaces, Assembled, Rows};
use covertreex_core::{
    build_tree, build_tree_batch, dense_query, maximin_neighbors, query_batch, Blocks, CoreError,
    DenseScreen, MaximinSizes, Mode, QueryBlocks, Schedule, Stop,
};

fn interrupted<T>(result: Result<T, CoreError>) -> bool {
    matches!(result, Err(CoreError::Interrupted))
}

#[test]
fn a_requested_stop_ends_every_call_with_interrupted() {
    let stop = Stop::default();
    stop.request();
    for (space, queries) in spaces(11) {
        let data = space.data();
        let order: Vec<i64> = (0..space.n as i64).collect();
        assert!(interrupted(build_tree(&data, &order, Mode::Parity, &stop)));
        for threads in [Some(1), None] {
            assert!(interrupted(build_tree_batch(
                &data,
                &order,
                Mode::Perf,
                16,
                threads,
                &stop
            )));
        }
        let built = build_tree(&data, &order, Mode::Parity, &Stop::default()).unwrap();
        let tree = Assembled::new(&built, &data);
        let rows = Rows::outside(queries.n, space.n);
        let batch = rows.batch(&queries);
        let block_order: Vec<i64> = (0..queries.n as i64).collect();
        let blocks = QueryBlocks {
            size: 4,
            order: &block_order,
        };
        for (mode, blocks) in [(Mode::Parity, None), (Mode::Perf, Some(blocks))] {
            let schedule = Schedule::default();
            let answer = query_batch(
                &tree.view(),
                &data,
                &batch,
                5,
                Some(1),
                mode,
                schedule,
                blocks,
                &stop,
            );
            assert!(interrupted(answer));
        }
        for shape in [(64, 1024), (3, 7)] {
            let blocks = Blocks {
                queries: shape.0,
                points: shape.1,
            };
            assert!(interrupted(dense_query(
                &data,
                &batch,
                5,
                None,
                blocks,
                &stop,
                DenseScreen::F64
            )));
        }
        let sizes = MaximinSizes { block: 16, room: 0 };
        let pass = maximin_neighbors(&data, 0, 5, sizes, None, Some(1), &mut |_, _| {}, &stop);
        assert!(interrupted(pass));
    }
}

#[test]
fn a_stop_requested_during_the_maximin_pass_ends_it_at_the_next_round() {
    let (space, _) = spaces(12).swap_remove(1);
    let data = space.data();
    let sizes = MaximinSizes { block: 8, room: 0 };
    let stop = Stop::default();
    let mut rounds = 0;
    let mut report = |_, _| {
        rounds += 1;
        stop.request();
    };
    let pass = maximin_neighbors(&data, 0, 5, sizes, None, None, &mut report, &stop);
    assert!(interrupted(pass));
    assert_eq!(rounds, 1);
}
