//! PyO3 bindings of covertreex-core, importable as covertreex._rust: convert arrays, release the GIL,
//! map errors. Only covertreex/engines/rust.py imports this module.

mod convert;
mod errors;

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Mutex, PoisonError};
use std::thread;
use std::time::Duration;

use covertreex_core::counters::{
    LEVEL_COUNTERS, N_LEVEL_COUNTERS, N_QUERY_COUNTERS, QUERY_COUNTERS,
};
use covertreex_core::dense::{pack, within, Boxes, PackedArrays, BOX_LEAF, BOX_MAX_WIDTH};
use covertreex_core::query::on_pool;
use covertreex_core::{
    build_tree, build_tree_batch, dense_query, kernel_matrix as kernels, maximin_neighbors,
    maximin_order, pack_split_rows, query_batch, Blocks, CoreError, DenseScreen, Int8Packing,
    Kernel, Matrix, MaximinSizes, MaximinSplit, MetricData, Mode, QueryBatch, QueryBlocks,
    SplitConstants, SplitData, Stop, SPLIT_CONSTANTS, SPLIT_FACTORS,
};
use numpy::{
    IntoPyArray, PyArray1, PyArray2, PyArrayMethods, PyReadonlyArray1, PyReadonlyArray2,
    PyUntypedArrayMethods,
};
use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;
use pyo3::types::PyTuple;

use convert::{array1, array2, array2_of, scalar, schedule, slice, MetricArrays, TreeArrays};

/// Run `work` with the GIL released; core errors become covertreex.errors exceptions and a panic (a bug,
/// never expected) becomes a RuntimeError instead of tearing down the interpreter.
fn without_gil<T: Send>(
    py: Python<'_>,
    work: impl FnOnce() -> covertreex_core::Result<T> + Send,
) -> PyResult<T> {
    outcome(py, py.detach(|| catch_unwind(AssertUnwindSafe(work))))
}

/// [`without_gil`] with `work` on `threads` workers (None: rayon's global pool), as the engine's calls
/// run: a caller limited to one thread (covertreex.resources.thread_limit) gets one.
fn on_threads<T: Send>(
    py: Python<'_>,
    threads: Option<i64>,
    work: impl FnOnce() -> covertreex_core::Result<T> + Send,
) -> PyResult<T> {
    without_gil(py, || on_pool(threads, work)?)
}

/// A `threads` argument: None, or a whole number (checked against the CPUs by the pool that takes it).
fn thread_count(threads: Option<&Bound<'_, PyAny>>) -> PyResult<Option<i64>> {
    threads.map(|t| scalar(t, "threads")).transpose()
}

/// What a call returns for its work's result, its error or its panic.
fn outcome<T>(py: Python<'_>, ran: thread::Result<covertreex_core::Result<T>>) -> PyResult<T> {
    match ran {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(error)) => Err(errors::core_error(py, &error)),
        Err(_) => Err(PyRuntimeError::new_err(
            "internal error in covertreex._rust (a bug; please report it with the input)",
        )),
    }
}

/// How often the waiting thread calls `interrupt` while the work runs.
const POLL: Duration = Duration::from_millis(50);

/// The stack of the thread that runs interruptible work: a main thread's usual 8 MiB (the work ran on
/// the calling thread before it could be interrupted).
const WORK_STACK: usize = 8 << 20;

/// How a call ends early: the core's [`Stop`], and the first Python exception that asked for it (a
/// Ctrl-C the waiting thread heard, a progress callback that raised), which is what the call raises.
#[derive(Default)]
struct Halt {
    stop: Stop,
    error: Mutex<Option<PyErr>>,
}

impl Halt {
    /// A progress callback for the work: `callback(*args)` with the GIL until it raises, whose error
    /// then stops the work ([`Self::fail`]).
    fn reporter<'a, A>(&'a self, callback: &'a Option<Py<PyAny>>) -> impl FnMut(A) + Send + 'a
    where
        A: for<'py> pyo3::call::PyCallArgs<'py>,
    {
        move |args| {
            if let (Some(callback), false) = (callback, self.failed()) {
                if let Err(error) = Python::attach(|py| callback.call1(py, args).map(drop)) {
                    self.fail(error);
                }
            }
        }
    }

    /// Stop the work for `error`, unless an earlier error already did.
    fn fail(&self, error: PyErr) {
        let mut first = self.error.lock().unwrap_or_else(PoisonError::into_inner);
        first.get_or_insert(error);
        self.stop.request();
    }

    fn failed(&self) -> bool {
        self.stop.requested()
    }

    fn into_error(self) -> Option<PyErr> {
        self.error
            .into_inner()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

/// [`without_gil`] for a long call that Ctrl-C can end. With `interrupt` None it is that; otherwise the
/// work runs on a thread of its own while this thread, at once and every [`POLL`], takes the GIL, runs
/// the pending signal handlers and calls `interrupt` (covertreex.interrupts.check, which runs the SIGINT
/// handler that covertreex.interrupts holds back); when either raises, [`Halt::fail`]. The thread is a
/// plain one, not a worker of rayon's global pool: a worker waiting inside the core's parallel loops
/// runs other queued jobs, which could be another caller's whole call (and building the global pool
/// there would skip the core's check of its size).
fn interruptible<T: Send>(
    py: Python<'_>,
    interrupt: Option<&Bound<'_, PyAny>>,
    work: impl FnOnce(&Halt) -> covertreex_core::Result<T> + Send,
) -> PyResult<T> {
    let halt = Halt::default();
    let ran = match interrupt.filter(|i| !i.is_none()) {
        None => py.detach(|| catch_unwind(AssertUnwindSafe(|| work(&halt)))),
        Some(interrupt) => watched(py, interrupt.clone().unbind(), &halt, work),
    };
    match halt.into_error() {
        Some(error) => Err(error),
        None => outcome(py, ran),
    }
}

/// `work` on a thread of its own, polled for Ctrl-C by this one (see [`interruptible`]).
fn watched<T: Send>(
    py: Python<'_>,
    interrupt: Py<PyAny>,
    halt: &Halt,
    work: impl FnOnce(&Halt) -> covertreex_core::Result<T> + Send,
) -> thread::Result<covertreex_core::Result<T>> {
    py.detach(|| {
        thread::scope(|scope| {
            let (sender, receiver) = mpsc::channel();
            let spawned =
                thread::Builder::new()
                    .stack_size(WORK_STACK)
                    .spawn_scoped(scope, move || {
                        _ = sender.send(catch_unwind(AssertUnwindSafe(|| work(halt))));
                    });
            if let Err(e) = spawned {
                let reason = e.to_string();
                return Ok(Err(CoreError::ThreadPool { reason }));
            }
            loop {
                if !halt.failed() {
                    let heard = Python::attach(|py| {
                        py.check_signals()
                            .and_then(|()| interrupt.call0(py).map(drop))
                    });
                    if let Err(error) = heard {
                        halt.fail(error);
                    }
                }
                match receiver.recv_timeout(POLL) {
                    Ok(ran) => return ran,
                    Err(RecvTimeoutError::Timeout) => {}
                    // Only a panic outside catch_unwind drops the sender unsent.
                    Err(RecvTimeoutError::Disconnected) => return Err(Box::new(())),
                }
            }
        })
    })
}

/// A row-major vector as a (rows, cols) NumPy array, without copying.
fn matrix<'py, T: numpy::Element>(
    py: Python<'py>,
    values: Vec<T>,
    rows: usize,
    cols: usize,
) -> PyResult<Bound<'py, PyArray2<T>>> {
    values.into_pyarray(py).reshape([rows, cols])
}

type Built<'py> = (
    Bound<'py, PyArray1<i64>>,
    Bound<'py, PyArray1<i64>>,
    Bound<'py, PyArray1<f64>>,
    u64,
);

/// The evaluation mode named by the Python argument `mode`.
fn mode(py: Python<'_>, name: &Bound<'_, PyAny>) -> PyResult<Mode> {
    let name: String = scalar(name, "mode")?;
    Mode::from_name(&name).map_err(|e| errors::core_error(py, &e))
}

/// Build in `order`: (levels, parents, radius, distance evaluations). `block` None is the sequential
/// insertion build; a number is the batch build with rounds of at most `block` points on `threads`
/// workers (None: rayon's global pool), the same tree on any thread count. `interrupt`: see
/// [`interruptible`] (also for query, dense and maximin).
#[pyfunction]
#[pyo3(signature = (data, order, mode, block=None, threads=None, interrupt=None))]
fn build<'py>(
    py: Python<'py>,
    data: &Bound<'py, PyAny>,
    order: &Bound<'py, PyAny>,
    mode: &Bound<'py, PyAny>,
    block: Option<&Bound<'py, PyAny>>,
    threads: Option<&Bound<'py, PyAny>>,
    interrupt: Option<&Bound<'py, PyAny>>,
) -> PyResult<Built<'py>> {
    let mode = self::mode(py, mode)?;
    let block: Option<i64> = block.map(|b| scalar(b, "block")).transpose()?;
    let threads = thread_count(threads)?;
    let data = MetricArrays::extract(data, "data")?;
    let order = array1::<i64>(order, "order")?;
    let (view, order) = (data.view(py)?, slice(py, &order, "order")?);
    let built = interruptible(py, interrupt, |halt| match block {
        None => build_tree(&view, order, mode, &halt.stop),
        Some(block) => build_tree_batch(&view, order, mode, block, threads, &halt.stop),
    })?;
    Ok((
        built.levels.into_pyarray(py),
        built.parents.into_pyarray(py),
        built.radius.into_pyarray(py),
        built.evaluations,
    ))
}

/// What every query call takes: the indexed data, the query rows (covertreex.metrics.QuerySet), k and
/// the thread count, borrowed and checked.
struct QueryArgs<'py> {
    data: MetricArrays<'py>,
    queries: MetricArrays<'py>,
    rows: PyReadonlyArray1<'py, i64>,
    dataset_index: PyReadonlyArray1<'py, i64>,
    limit: PyReadonlyArray1<'py, i64>,
    k: i64,
    threads: Option<i64>,
}

impl<'py> QueryArgs<'py> {
    #[allow(clippy::too_many_arguments)]
    fn extract(
        data: &Bound<'py, PyAny>,
        queries: &Bound<'py, PyAny>,
        rows: &Bound<'py, PyAny>,
        dataset_index: &Bound<'py, PyAny>,
        limit: &Bound<'py, PyAny>,
        k: &Bound<'py, PyAny>,
        threads: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Self> {
        Ok(QueryArgs {
            data: MetricArrays::extract(data, "data")?,
            queries: MetricArrays::extract(queries, "queries")?,
            rows: array1::<i64>(rows, "rows")?,
            dataset_index: array1::<i64>(dataset_index, "dataset_index")?,
            limit: array1::<i64>(limit, "limit")?,
            k: scalar(k, "k")?,
            threads: thread_count(threads)?,
        })
    }

    /// The core views: the indexed data and the query batch.
    fn views(&self, py: Python<'_>) -> PyResult<(MetricData<'_>, QueryBatch<'_>)> {
        let batch = QueryBatch {
            data: self.queries.view(py)?,
            rows: slice(py, &self.rows, "rows")?,
            dataset_index: slice(py, &self.dataset_index, "dataset_index")?,
            limit: slice(py, &self.limit, "limit")?,
        };
        Ok((self.data.view(py)?, batch))
    }
}

type Answered<'py> = (
    Bound<'py, PyArray2<i64>>,
    Bound<'py, PyArray2<f64>>,
    Bound<'py, PyArray2<i64>>,
    Bound<'py, PyArray2<i64>>,
    i64,
);

/// Exact k-NN of the query rows: (indices, distances, per_level counters summed over queries,
/// per_query counters, distances evaluated speculatively and discarded by perf mode). `threads` = None
/// uses rayon's global pool (RAYON_NUM_THREADS); `mode` is "parity" or "perf" (same results, perf evaluates distances in lockstep groups);
/// `schedule` is a covertreex Schedule (the walk's schedule knobs, which never change results);
/// `blocks` None or (queries per block, block order: a permutation of the query positions) walks the
/// queries in blocks (perf mode; same results).
#[pyfunction]
#[pyo3(signature = (tree, data, queries, rows, dataset_index, limit, k, threads, mode, schedule, blocks=None, interrupt=None))]
#[allow(clippy::too_many_arguments)]
fn query<'py>(
    py: Python<'py>,
    tree: &Bound<'py, PyAny>,
    data: &Bound<'py, PyAny>,
    queries: &Bound<'py, PyAny>,
    rows: &Bound<'py, PyAny>,
    dataset_index: &Bound<'py, PyAny>,
    limit: &Bound<'py, PyAny>,
    k: &Bound<'py, PyAny>,
    threads: Option<&Bound<'py, PyAny>>,
    mode: &Bound<'py, PyAny>,
    schedule: &Bound<'py, PyAny>,
    blocks: Option<(Bound<'py, PyAny>, Bound<'py, PyAny>)>,
    interrupt: Option<&Bound<'py, PyAny>>,
) -> PyResult<Answered<'py>> {
    let mode = self::mode(py, mode)?;
    let schedule = self::schedule(schedule)?;
    let blocks = match &blocks {
        Some((size, order)) => Some((
            scalar::<usize>(size, "query_block")?,
            array1::<i64>(order, "block order")?,
        )),
        None => None,
    };
    let blocks = match &blocks {
        Some((size, order)) => Some(QueryBlocks {
            size: *size,
            order: slice(py, order, "block order")?,
        }),
        None => None,
    };
    let tree = TreeArrays::extract(tree)?;
    let args = QueryArgs::extract(data, queries, rows, dataset_index, limit, k, threads)?;
    let tree_view = tree.view(py)?;
    let (data_view, batch) = args.views(py)?;
    let (k, threads) = (args.k, args.threads);
    let out = interruptible(py, interrupt, |halt| {
        query_batch(
            &tree_view, &data_view, &batch, k, threads, mode, schedule, blocks, &halt.stop,
        )
    })?;
    let slots = out.per_level.len() / N_LEVEL_COUNTERS;
    Ok((
        matrix(py, out.indices, out.n_queries, out.k)?,
        matrix(py, out.distances, out.n_queries, out.k)?,
        matrix(py, out.per_level, slots, N_LEVEL_COUNTERS)?,
        matrix(py, out.per_query, out.n_queries, N_QUERY_COUNTERS)?,
        out.discarded_evaluations,
    ))
}

type Screened<'py> = (
    Bound<'py, PyArray2<i64>>,
    Bound<'py, PyArray2<f64>>,
    Bound<'py, PyArray2<i64>>,
    Bound<'py, PyArray1<i64>>,
    Bound<'py, PyArray1<bool>>,
    f64,
);

/// The split screen's arguments of [`dense`]: (rows, factors, left_out, given, decline_share,
/// kept_per_probe).
type SplitArgs<'py> = (
    Bound<'py, SplitRows>,
    Bound<'py, PyAny>,
    Bound<'py, PyAny>,
    Bound<'py, PyAny>,
    Bound<'py, PyAny>,
    Bound<'py, PyAny>,
);

/// The box screen's arguments of [`dense`] and [`within_boxes`]: the arrays of [`pack_boxes`] (order,
/// coords, boxes, least).
type BoxArgs<'py> = (
    Bound<'py, PyAny>,
    Bound<'py, PyAny>,
    Bound<'py, PyAny>,
    Bound<'py, PyAny>,
);

/// The arrays of a packing, checked as arrays.
struct PackedInput<'py> {
    order: PyReadonlyArray1<'py, i64>,
    coords: PyReadonlyArray2<'py, f64>,
    boxes: PyReadonlyArray2<'py, f64>,
    least: PyReadonlyArray1<'py, i64>,
}

impl<'py> PackedInput<'py> {
    fn extract((order, coords, boxes, least): &BoxArgs<'py>) -> PyResult<Self> {
        Ok(PackedInput {
            order: array1::<i64>(order, "packed boxes: order")?,
            coords: array2(coords, "packed boxes: coords")?,
            boxes: array2(boxes, "packed boxes: boxes")?,
            least: array1::<i64>(least, "packed boxes: least")?,
        })
    }

    /// The core's view of the packing of the points `data`.
    fn view(&self, py: Python<'_>, data: &MetricData) -> PyResult<Boxes<'_>> {
        let arrays = PackedArrays {
            order: slice(py, &self.order, "packed boxes: order")?,
            coords: slice(py, &self.coords, "packed boxes: coords")?,
            boxes: slice(py, &self.boxes, "packed boxes: boxes")?,
            least: slice(py, &self.least, "packed boxes: least")?,
        };
        Boxes::new(arrays, data.n_points(), data.x.cols()).map_err(|e| errors::core_error(py, &e))
    }
}

/// The split screen's int8 rows (n x m) with their packing for this process's fastest product kernel
/// (covertreex.split_screen.SplitScreen.rows): made once per split screen and process and given to every
/// [`dense`] call, which packed them each time before (~15 ms at N = 32,768, m = 512). It keeps the
/// rows' array, whose bytes must never change: the packing is of them. Only the read-only flag is checked
/// here; a read-only view of a writeable array still changes with it, so SplitScreen hands over only an
/// array whose memory nobody can write.
#[pyclass(frozen, module = "covertreex._rust")]
struct SplitRows {
    q: Py<PyArray2<i8>>,
    packing: Int8Packing,
}

#[pymethods]
impl SplitRows {
    /// Pack `q` on `threads` workers (None: all; the packing does not depend on them).
    #[new]
    #[pyo3(signature = (q, threads=None))]
    fn new(
        py: Python<'_>,
        q: &Bound<'_, PyAny>,
        threads: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<SplitRows> {
        let rows = array2_of::<i8>(q, "split q")?;
        if q.getattr("flags")?.getattr("writeable")?.is_truthy()? {
            let message =
                "split q must be read-only: its packing serves every later call".to_string();
            return Err(errors::raise(py, errors::Class::InvalidInput, message));
        }
        let threads = thread_count(threads)?;
        let (n, m) = (rows.shape()[0], rows.shape()[1]);
        let values = slice(py, &rows, "split q")?;
        let packing = without_gil(py, || pack_split_rows(values, n, m, threads))?;
        let q = q.cast::<PyArray2<i8>>()?.clone().unbind();
        Ok(SplitRows { q, packing })
    }
}

/// The split screen's factors: a float64 array of `SPLIT_FACTORS` columns (any other shape would be misread).
fn split_factors<'py>(
    py: Python<'py>,
    factors: &Bound<'py, PyAny>,
) -> PyResult<PyReadonlyArray2<'py, f64>> {
    let array = array2_of::<f64>(factors, "split factors")?;
    if array.shape()[1] != SPLIT_FACTORS {
        let message = format!(
            "split factors must have {SPLIT_FACTORS} columns (covertreex.split_screen.FACTORS), got shape {:?}",
            array.shape()
        );
        return Err(errors::raise(py, errors::Class::InvalidInput, message));
    }
    Ok(array)
}

/// Exact k-NN without a tree, by GEMM screening and canonical re-evaluation: (indices, distances,
/// per_query counters, pairs screened per query, queries the split declined, seconds spent in GEMM
/// summed over workers).
/// `query_block` x `point_block` is the tile shape. `split`, (rows, factors) from covertreex.split_screen
/// (rows: a [`SplitRows`]) with (left_out, given, decline_share, kept_per_probe) from the caller, screens
/// every pair but those of two left-out points in place of the GEMM (indexed residual queries only;
/// given: each query's k distances found elsewhere; decline_share, kept_per_probe: see `SplitData`).
/// `boxes`, the arrays [`pack_boxes`] made of the data's points, screens by their boxes instead
/// (Euclidean data only; not with `split`).
#[pyfunction]
#[pyo3(signature = (data, queries, rows, dataset_index, limit, k, threads, query_block, point_block, interrupt=None, split=None, boxes=None))]
#[allow(clippy::too_many_arguments)]
fn dense<'py>(
    py: Python<'py>,
    data: &Bound<'py, PyAny>,
    queries: &Bound<'py, PyAny>,
    rows: &Bound<'py, PyAny>,
    dataset_index: &Bound<'py, PyAny>,
    limit: &Bound<'py, PyAny>,
    k: &Bound<'py, PyAny>,
    threads: Option<&Bound<'py, PyAny>>,
    query_block: &Bound<'py, PyAny>,
    point_block: &Bound<'py, PyAny>,
    interrupt: Option<&Bound<'py, PyAny>>,
    split: Option<SplitArgs<'py>>,
    boxes: Option<BoxArgs<'py>>,
) -> PyResult<Screened<'py>> {
    let args = QueryArgs::extract(data, queries, rows, dataset_index, limit, k, threads)?;
    let blocks = Blocks {
        queries: scalar(query_block, "query_block")?,
        points: scalar(point_block, "point_block")?,
    };
    let split_arrays = match &split {
        None => None,
        Some((rows, factors, left_out, given, share, kept)) => Some((
            rows.get(),
            rows.get().q.bind(py).try_readonly()?,
            split_factors(py, factors)?,
            array1::<bool>(left_out, "split left_out")?,
            array2(given, "split given")?,
            scalar::<usize>(share, "split decline_share")?,
            scalar::<usize>(kept, "split kept_per_probe")?,
        )),
    };
    let split = match &split_arrays {
        None => None,
        Some((rows, q, factors, left_out, given, share, kept)) => Some(SplitData {
            q: slice(py, q, "split q")?,
            packing: &rows.packing,
            m: q.shape()[1],
            factors: slice(py, factors, "split factors")?,
            left_out: slice(py, left_out, "split left_out")?,
            given: slice(py, given, "split given")?,
            decline_share: *share,
            kept_per_probe: *kept,
        }),
    };
    let box_arrays = boxes.as_ref().map(PackedInput::extract).transpose()?;
    let (data_view, batch) = args.views(py)?;
    let screen = match (&box_arrays, split) {
        (Some(_), Some(_)) => {
            let message = "dense: give the split screen or the boxes, not both".to_string();
            return Err(errors::raise(py, errors::Class::InvalidInput, message));
        }
        (Some(packed), None) => DenseScreen::Boxes(packed.view(py, &data_view)?),
        (None, Some(split)) => DenseScreen::Split(split),
        (None, None) => DenseScreen::F64,
    };
    let (k, threads) = (args.k, args.threads);
    let out = interruptible(py, interrupt, |halt| {
        dense_query(&data_view, &batch, k, threads, blocks, &halt.stop, screen)
    })?;
    Ok((
        matrix(py, out.indices, out.n_queries, out.k)?,
        matrix(py, out.distances, out.n_queries, out.k)?,
        matrix(py, out.per_query, out.n_queries, N_QUERY_COUNTERS)?,
        out.screened.into_pyarray(py),
        out.declined.into_pyarray(py),
        out.gemm_seconds,
    ))
}

type Found<'py> = (
    Bound<'py, PyArray1<i64>>,
    Bound<'py, PyArray1<i64>>,
    Bound<'py, PyArray1<f64>>,
);

/// Every eligible point within `radius` of each query by the packed boxes of the data's points
/// (Euclidean): (points found per query, their indices and canonical distances query after query, each
/// query's sorted by (distance, index)). `exclude_own`: a query never returns its own dataset index.
/// More than `most` points in all is a KOutOfRangeError (the caller's memory budget).
#[pyfunction]
#[pyo3(signature = (data, queries, rows, dataset_index, limit, radius, exclude_own, most, threads, boxes, interrupt=None))]
#[allow(clippy::too_many_arguments)]
fn within_boxes<'py>(
    py: Python<'py>,
    data: &Bound<'py, PyAny>,
    queries: &Bound<'py, PyAny>,
    rows: &Bound<'py, PyAny>,
    dataset_index: &Bound<'py, PyAny>,
    limit: &Bound<'py, PyAny>,
    radius: f64,
    exclude_own: bool,
    most: usize,
    threads: Option<&Bound<'py, PyAny>>,
    boxes: BoxArgs<'py>,
    interrupt: Option<&Bound<'py, PyAny>>,
) -> PyResult<Found<'py>> {
    let one = 1i64.into_pyobject(py)?.into_any();
    let args = QueryArgs::extract(data, queries, rows, dataset_index, limit, &one, threads)?;
    let packed = PackedInput::extract(&boxes)?;
    let (data_view, batch) = args.views(py)?;
    let boxes = packed.view(py, &data_view)?;
    let threads = args.threads;
    let found = interruptible(py, interrupt, |halt| {
        within(
            &data_view,
            &batch,
            radius,
            exclude_own,
            most,
            threads,
            &halt.stop,
            &boxes,
        )
    })?;
    Ok((
        found.counts.into_pyarray(py),
        found.indices.into_pyarray(py),
        found.distances.into_pyarray(py),
    ))
}

type Packed<'py> = (
    Bound<'py, PyArray1<i64>>,
    Bound<'py, PyArray2<f64>>,
    Bound<'py, PyArray2<f64>>,
    Bound<'py, PyArray1<i64>>,
);

/// The points (n x d) packed in boxes for the dense path's box screen: (order, the points' coordinates
/// leaf by leaf (a row per leaf, see `PackedBoxes::coords`), each box's lowest then highest
/// coordinates, each box's smallest dataset index).
/// `threads` workers (None: rayon's global pool) pack them; the packing does not depend on them.
#[pyfunction]
#[pyo3(signature = (points, threads=None))]
fn pack_boxes<'py>(
    py: Python<'py>,
    points: &Bound<'py, PyAny>,
    threads: Option<&Bound<'py, PyAny>>,
) -> PyResult<Packed<'py>> {
    let threads = thread_count(threads)?;
    let points = array2(points, "points")?;
    let (n, d) = (points.shape()[0], points.shape()[1]);
    let points = Matrix::new("points", slice(py, &points, "points")?, n, d)
        .map_err(|e| errors::core_error(py, &e))?;
    let packed = without_gil(py, || pack(points, threads))?;
    let (n_boxes, n_leaves) = (packed.least.len(), n.div_ceil(BOX_LEAF));
    Ok((
        packed.order.into_pyarray(py),
        matrix(py, packed.coords, n_leaves, BOX_LEAF * d)?,
        matrix(py, packed.boxes, n_boxes, 2 * d)?,
        packed.least.into_pyarray(py),
    ))
}

type Ordered<'py> = (
    Bound<'py, PyArray1<i64>>,
    Bound<'py, PyArray2<i64>>,
    Bound<'py, PyArray2<f64>>,
    i64,
    i64,
    i64,
    Bound<'py, PyArray1<i64>>,
);

/// Exact maximin order of `data` from row `first`, fused with every position's k nearest earlier
/// positions: (order, neighbour positions, distances, canonical evaluations, rounds, pairs screened
/// outside the rounds' blocks, positions whose rows are unproven and padded). `block` points
/// per round, `room` candidates a point holds at least before it drops the excluded ones (raised to
/// k + 1; it holds fewer than 2 `room`). `progress(placed, answered)` is called with the GIL after each
/// round (points placed, rows written and proven); an exception it raises ends the pass at the next round
/// and is what the call raises.
/// `split`, (q, factors, floor) from covertreex.split_screen and the residual key beyond which no pair is
/// kept for a row (inf: none), screens each round's pairs first (residual data only): the same order,
/// and the same rows but for the unproven positions (none without a floor).
#[pyfunction]
#[pyo3(signature = (data, first, k, block, room, threads, progress=None, interrupt=None, split=None))]
#[allow(clippy::too_many_arguments)]
fn maximin<'py>(
    py: Python<'py>,
    data: &Bound<'py, PyAny>,
    first: &Bound<'py, PyAny>,
    k: &Bound<'py, PyAny>,
    block: &Bound<'py, PyAny>,
    room: &Bound<'py, PyAny>,
    threads: Option<&Bound<'py, PyAny>>,
    progress: Option<Bound<'py, PyAny>>,
    interrupt: Option<&Bound<'py, PyAny>>,
    split: Option<(Bound<'py, PyAny>, Bound<'py, PyAny>, Bound<'py, PyAny>)>,
) -> PyResult<Ordered<'py>> {
    let arrays = MetricArrays::extract(data, "data")?;
    let split_arrays = match &split {
        None => None,
        Some((q, factors, floor)) => Some((
            array2_of::<i8>(q, "split q")?,
            split_factors(py, factors)?,
            scalar::<f64>(floor, "split floor")?,
        )),
    };
    let split = match &split_arrays {
        None => None,
        Some((q, factors, floor)) => Some(MaximinSplit {
            q: slice(py, q, "split q")?,
            m: q.shape()[1],
            factors: slice(py, factors, "split factors")?,
            floor: *floor,
        }),
    };
    let first: i64 = scalar(first, "first")?;
    let k: i64 = scalar(k, "k")?;
    let sizes = MaximinSizes {
        block: scalar(block, "block")?,
        room: scalar(room, "room")?,
    };
    let threads = thread_count(threads)?;
    let view = arrays.view(py)?;
    let callback = progress.filter(|p| !p.is_none()).map(Bound::unbind);
    let out = interruptible(py, interrupt, |halt| {
        let mut report = halt.reporter(&callback);
        maximin_neighbors(
            &view,
            first,
            k,
            sizes,
            split,
            threads,
            &mut |placed, answered| report((placed, answered)),
            &halt.stop,
        )
    })?;
    let n = out.order.len();
    Ok((
        out.order.into_pyarray(py),
        matrix(py, out.indices, n, out.k)?,
        matrix(py, out.distances, n, out.k)?,
        out.evaluations,
        out.rounds,
        out.screened,
        out.unproven.into_pyarray(py),
    ))
}

/// Exact maximin order of the Euclidean points (n x d) from row `first`, alone (no neighbour rows), by
/// the packed boxes (rust/core/src/maximin/farthest.rs): (order, canonical evaluations). `threads`
/// workers pack the boxes (the placements are serial); nothing returned depends on them. `progress(n)`
/// is called with the GIL every 4,096 placements and at the end. `on_prefix(order)` is called with the
/// GIL, at the first report at or after each of the sizes `prefixes` (ascending) short of n, with a
/// copy of the order so far (once per report, however many sizes it passes): its points' predecessor
/// rows may be answered while the rest is placed; the prefixes' lengths depend on n and `prefixes`
/// alone. An exception either callback raises ends the call and is what it raises.
#[pyfunction]
#[pyo3(signature = (points, first, threads=None, progress=None, interrupt=None, prefixes=None, on_prefix=None))]
#[allow(clippy::too_many_arguments)]
fn maximin_farthest<'py>(
    py: Python<'py>,
    points: &Bound<'py, PyAny>,
    first: &Bound<'py, PyAny>,
    threads: Option<&Bound<'py, PyAny>>,
    progress: Option<Bound<'py, PyAny>>,
    interrupt: Option<&Bound<'py, PyAny>>,
    prefixes: Option<Vec<usize>>,
    on_prefix: Option<Bound<'py, PyAny>>,
) -> PyResult<(Bound<'py, PyArray1<i64>>, i64)> {
    let threads = thread_count(threads)?;
    let first: i64 = scalar(first, "first")?;
    let points = array2(points, "points")?;
    let (n, d) = (points.shape()[0], points.shape()[1]);
    let points = Matrix::new("points", slice(py, &points, "points")?, n, d)
        .map_err(|e| errors::core_error(py, &e))?;
    let prefixes = prefixes.unwrap_or_default();
    if !prefixes.is_sorted() {
        return Err(pyo3::exceptions::PyValueError::new_err(
            "prefixes must be in ascending order",
        ));
    }
    let callback = progress.filter(|p| !p.is_none()).map(Bound::unbind);
    let on_prefix = on_prefix.filter(|p| !p.is_none()).map(Bound::unbind);
    let out = interruptible(py, interrupt, |halt| {
        let mut report = halt.reporter(&callback);
        let mut next = 0;
        let mut heard = |order: &[i64]| {
            report((order.len(),));
            let passed = prefixes[next..].partition_point(|&size| size <= order.len());
            if passed == 0 || order.len() == n || halt.failed() {
                return;
            }
            next += passed;
            if let Some(on_prefix) = &on_prefix {
                let called = Python::attach(|py| {
                    on_prefix
                        .call1(py, (order.to_vec().into_pyarray(py),))
                        .map(drop)
                });
                if let Err(error) = called {
                    halt.fail(error);
                }
            }
        };
        maximin_order(points, first, threads, &mut heard, &halt.stop)
    })?;
    Ok((out.order.into_pyarray(py), out.evaluations))
}

/// k(A_i, B_j) of every row pair of the kernel with integer code `kernel`, as a new (n_a, n_b) array:
/// the rust twin of covertreex.metrics.data.kernel_matrix's Numba kernel, the same bits (V's construction).
#[pyfunction]
#[pyo3(signature = (a, b, kernel, lengthscale, variance, threads=None))]
fn kernel_matrix<'py>(
    py: Python<'py>,
    a: &Bound<'py, PyAny>,
    b: &Bound<'py, PyAny>,
    kernel: i64,
    lengthscale: &Bound<'py, PyAny>,
    variance: f64,
    threads: Option<&Bound<'py, PyAny>>,
) -> PyResult<Bound<'py, PyArray2<f64>>> {
    let threads = thread_count(threads)?;
    let (a, b) = (array2(a, "A")?, array2(b, "B")?);
    let lengthscale = array1::<f64>(lengthscale, "lengthscale")?;
    let ((n_a, d_a), (n_b, d_b)) = ((a.shape()[0], a.shape()[1]), (b.shape()[0], b.shape()[1]));
    let error = |e| errors::core_error(py, &e);
    let kernel = Kernel::from_code(kernel).map_err(error)?;
    let a = Matrix::new("A", slice(py, &a, "A")?, n_a, d_a).map_err(error)?;
    let b = Matrix::new("B", slice(py, &b, "B")?, n_b, d_b).map_err(error)?;
    let lengthscale = slice(py, &lengthscale, "lengthscale")?;
    let values = on_threads(py, threads, || {
        kernels::kernel_matrix(a, b, lengthscale, kernel, variance)
    })?;
    matrix(py, values, n_a, n_b)
}

/// ||V_i||^2 of every row, summed over the columns in order: the rust twin of
/// covertreex.metrics.kernels.squared_norms_block, the same bits.
#[pyfunction]
#[pyo3(signature = (v, threads=None))]
fn squared_norms<'py>(
    py: Python<'py>,
    v: &Bound<'py, PyAny>,
    threads: Option<&Bound<'py, PyAny>>,
) -> PyResult<Bound<'py, PyArray1<f64>>> {
    let threads = thread_count(threads)?;
    let v = array2(v, "V")?;
    let (n, m) = (v.shape()[0], v.shape()[1]);
    let v = Matrix::new("V", slice(py, &v, "V")?, n, m).map_err(|e| errors::core_error(py, &e))?;
    let norms = on_threads(py, threads, || kernels::squared_norms(v))?;
    Ok(norms.into_pyarray(py))
}

/// The split screen's rows of a block (covertreex.split_screen builds them): z = V P (n x width) and v
/// (n x m) of the same rows, their p (n), and the row constants (covertreex.split_screen.ROW_CONSTANTS,
/// in that order) give (q as int8 n x width, factors n x 7, sqrt(e/p) per row).
#[pyfunction]
fn split_rows<'py>(
    py: Python<'py>,
    z: &Bound<'py, PyAny>,
    v: &Bound<'py, PyAny>,
    p: &Bound<'py, PyAny>,
    constants: &Bound<'py, PyAny>,
) -> PyResult<SplitRowsOut<'py>> {
    let (z, v) = (array2(z, "split z")?, array2(v, "split v")?);
    let (p, constants) = (
        array1::<f64>(p, "split p")?,
        array1::<f64>(constants, "split constants")?,
    );
    let error = |e| errors::core_error(py, &e);
    let constants =
        SplitConstants::from_values(slice(py, &constants, "split constants")?).map_err(error)?;
    let (n, width, m) = (z.shape()[0], z.shape()[1], v.shape()[1]);
    if v.shape()[0] != n {
        let message = format!("split v must have z's {n} rows, got {}", v.shape()[0]);
        return Err(errors::raise(py, errors::Class::InvalidInput, message));
    }
    let (z, v, p) = (
        slice(py, &z, "split z")?,
        slice(py, &v, "split v")?,
        slice(py, &p, "split p")?,
    );
    let out = without_gil(py, || {
        covertreex_core::split_rows(z, v, p, width, m, &constants)
    })?;
    Ok((
        matrix(py, out.q, n, width)?,
        matrix(py, out.factors, n, SPLIT_FACTORS)?,
        out.rest.into_pyarray(py),
    ))
}

type SplitRowsOut<'py> = (
    Bound<'py, PyArray2<i8>>,
    Bound<'py, PyArray2<f64>>,
    Bound<'py, PyArray1<f64>>,
);

/// Row i solves L v = K_i (L lower triangular m x m, K n x m), each row in index order on its own: the rust
/// twin of covertreex.metrics.kernels.forward_substitution_rows, the same bits (query points' V rows).
#[pyfunction]
#[pyo3(signature = (l, k, threads=None))]
fn forward_substitution_rows<'py>(
    py: Python<'py>,
    l: &Bound<'py, PyAny>,
    k: &Bound<'py, PyAny>,
    threads: Option<&Bound<'py, PyAny>>,
) -> PyResult<Bound<'py, PyArray2<f64>>> {
    let threads = thread_count(threads)?;
    let (l, k) = (array2(l, "L")?, array2(k, "K")?);
    let ((l_rows, l_cols), (n, m)) = ((l.shape()[0], l.shape()[1]), (k.shape()[0], k.shape()[1]));
    let error = |e| errors::core_error(py, &e);
    let l = Matrix::new("L", slice(py, &l, "L")?, l_rows, l_cols).map_err(error)?;
    let k = Matrix::new("K", slice(py, &k, "K")?, n, m).map_err(error)?;
    let rows = on_threads(py, threads, || kernels::forward_substitution_rows(l, k))?;
    matrix(py, rows, n, m)
}

/// V's rows in `order` (int64 dataset indices), as a new (len(order), m) array copied in parallel: the
/// rust twin of `V[order]` (covertreex.metrics.data.take_rows); an index out of range is an error.
#[pyfunction]
#[pyo3(signature = (v, order, threads=None))]
fn take_rows<'py>(
    py: Python<'py>,
    v: &Bound<'py, PyAny>,
    order: &Bound<'py, PyAny>,
    threads: Option<&Bound<'py, PyAny>>,
) -> PyResult<Bound<'py, PyArray2<f64>>> {
    let threads = thread_count(threads)?;
    let v = array2(v, "V")?;
    let order = array1::<i64>(order, "order")?;
    let (n, m) = (v.shape()[0], v.shape()[1]);
    let v = Matrix::new("V", slice(py, &v, "V")?, n, m).map_err(|e| errors::core_error(py, &e))?;
    let order = slice(py, &order, "order")?;
    let rows = on_threads(py, threads, || kernels::take_rows(v, order))?;
    matrix(py, rows, order.len(), m)
}

/// Per node, the smallest dataset index in its subtree (int64): the rust twin of
/// covertreex.tree_structure.subtree_minima, the same values (a tree's assembly).
#[pyfunction]
fn subtree_minima<'py>(
    py: Python<'py>,
    root: i64,
    child_offsets: &Bound<'py, PyAny>,
    children: &Bound<'py, PyAny>,
) -> PyResult<Bound<'py, PyArray1<i64>>> {
    let offsets = array1::<i64>(child_offsets, "child_offsets")?;
    let children = array1::<i64>(children, "children")?;
    let (offsets, children) = (
        slice(py, &offsets, "child_offsets")?,
        slice(py, &children, "children")?,
    );
    let minima = without_gil(py, || {
        covertreex_core::tree::subtree_minima(root, offsets, children)
    })?;
    Ok(minima.into_pyarray(py))
}

/// The Hilbert-curve key (uint64) of every row of `points` on a grid of 2^bits cells per dimension: the
/// rust twin of covertreex.hilbert_curve.quantised_keys, the same keys (query blocks' order, and the
/// insertion order `order='hilbert'`).
#[pyfunction]
fn quantised_keys<'py>(
    py: Python<'py>,
    points: &Bound<'py, PyAny>,
    lo: &Bound<'py, PyAny>,
    span: &Bound<'py, PyAny>,
    bits: i64,
) -> PyResult<Bound<'py, PyArray1<u64>>> {
    let points = array2(points, "points")?;
    let (n, d) = (points.shape()[0], points.shape()[1]);
    let (lo, span) = (array1::<f64>(lo, "lo")?, array1::<f64>(span, "span")?);
    let points = Matrix::new("points", slice(py, &points, "points")?, n, d)
        .map_err(|e| errors::core_error(py, &e))?;
    let (lo, span) = (slice(py, &lo, "lo")?, slice(py, &span, "span")?);
    let keys = without_gil(py, || {
        covertreex_core::hilbert::quantised_keys(points, lo, span, bits)
    })?;
    Ok(keys.into_pyarray(py))
}

/// Worker threads a query uses when `threads` is None (rayon's global pool: RAYON_NUM_THREADS or cores).
#[pyfunction]
fn default_threads(py: Python<'_>) -> PyResult<usize> {
    without_gil(py, covertreex_core::query::default_threads)
}

/// The most worker threads a query may ask for: the CPUs this process may use (affinity and CPU quota,
/// as Rust's std reads them). covertreex.resources.available_cpus takes it into account.
#[pyfunction]
fn available_threads() -> usize {
    covertreex_core::query::available_threads()
}

#[pymodule]
fn _rust(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", covertreex_core::VERSION)?;
    // The counter columns' telemetry names in column order (covertreex/counters.py must agree).
    m.add("QUERY_COUNTERS", PyTuple::new(m.py(), QUERY_COUNTERS)?)?;
    m.add("LEVEL_COUNTERS", PyTuple::new(m.py(), LEVEL_COUNTERS)?)?;
    // How many row constants split_rows takes (covertreex.split_screen.ROW_CONSTANTS must agree).
    m.add("SPLIT_CONSTANTS", SPLIT_CONSTANTS)?;
    // Which kernel multiplies the split screen's int8 rows here (covertreex.split_screen.PAYS is per kernel).
    m.add("INT8_KERNEL", covertreex_core::dense::int8_kernel())?;
    m.add("SOURCE_DIGEST", env!("COVERTREEX_SOURCE_DIGEST"))?;
    m.add_function(wrap_pyfunction!(build, m)?)?;
    m.add_function(wrap_pyfunction!(query, m)?)?;
    m.add_function(wrap_pyfunction!(dense, m)?)?;
    m.add_function(wrap_pyfunction!(pack_boxes, m)?)?;
    m.add_function(wrap_pyfunction!(within_boxes, m)?)?;
    // Coordinates up to which the dense path offers the box screen (covertreex.engines.rust reads it).
    m.add("BOX_MAX_WIDTH", BOX_MAX_WIDTH)?;
    m.add_class::<SplitRows>()?;
    m.add_function(wrap_pyfunction!(maximin, m)?)?;
    m.add_function(wrap_pyfunction!(maximin_farthest, m)?)?;
    m.add_function(wrap_pyfunction!(kernel_matrix, m)?)?;
    m.add_function(wrap_pyfunction!(squared_norms, m)?)?;
    m.add_function(wrap_pyfunction!(split_rows, m)?)?;
    m.add_function(wrap_pyfunction!(take_rows, m)?)?;
    m.add_function(wrap_pyfunction!(subtree_minima, m)?)?;
    m.add_function(wrap_pyfunction!(quantised_keys, m)?)?;
    m.add_function(wrap_pyfunction!(forward_substitution_rows, m)?)?;
    m.add_function(wrap_pyfunction!(default_threads, m)?)?;
    m.add_function(wrap_pyfunction!(available_threads, m)?)?;
    Ok(())
}
