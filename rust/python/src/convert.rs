//! Python objects -> core views: borrow NumPy arrays without copying, checking type, dtype, number of
//! dimensions and C-contiguity first, so every problem becomes a covertreex.errors exception naming the
//! argument. (covertreex/engines/rust.py normalises layouts before calling, so these checks only fire
//! on direct calls.)

use covertreex_core::{Kernel, Matrix, Metric, MetricData, Schedule, TreeView};
use numpy::{
    Element, PyArray, PyArrayMethods, PyReadonlyArray, PyReadonlyArray1, PyReadonlyArray2,
    PyUntypedArray, PyUntypedArrayMethods,
};
use pyo3::prelude::*;
use pyo3::types::PyAnyMethods;

use crate::errors::{core_error, raise, Class};

/// Borrow `obj` as a C-contiguous `ndim`-D array of T.
fn array<'py, T: Element, D: numpy::ndarray::Dimension>(
    obj: &Bound<'py, PyAny>,
    name: &str,
    ndim: usize,
) -> PyResult<PyReadonlyArray<'py, T, D>> {
    let py = obj.py();
    let Ok(untyped) = obj.cast::<PyUntypedArray>() else {
        let kind = obj.get_type().name()?;
        return Err(raise(
            py,
            Class::InputType,
            format!("{name} must be a numpy array, got {kind}"),
        ));
    };
    if untyped.ndim() != ndim {
        let message = format!("{name} must be {ndim}-D, got shape {:?}", untyped.shape());
        return Err(raise(py, Class::DimensionMismatch, message));
    }
    let Ok(typed) = obj.cast::<PyArray<T, D>>() else {
        let want = T::get_dtype(py).str()?;
        let got = untyped.dtype().str()?;
        let message = format!("{name} must have dtype {want}, got {got}");
        return Err(raise(py, Class::InputType, message));
    };
    if !untyped.is_c_contiguous() {
        let message = format!("{name} must be C-contiguous (use numpy.ascontiguousarray)");
        return Err(raise(py, Class::InvalidInput, message));
    }
    typed.try_readonly().map_err(|e| {
        raise(
            py,
            Class::InvalidInput,
            format!("{name} cannot be borrowed: {e}"),
        )
    })
}

pub fn array1<'py, T: Element>(
    obj: &Bound<'py, PyAny>,
    name: &str,
) -> PyResult<PyReadonlyArray1<'py, T>> {
    array(obj, name, 1)
}

pub fn array2<'py>(obj: &Bound<'py, PyAny>, name: &str) -> PyResult<PyReadonlyArray2<'py, f64>> {
    array(obj, name, 2)
}

/// [`array2`] of any element type (the split screen's int8 rows).
pub fn array2_of<'py, T: Element>(
    obj: &Bound<'py, PyAny>,
    name: &str,
) -> PyResult<PyReadonlyArray2<'py, T>> {
    array(obj, name, 2)
}

/// The contiguous elements of a checked array.
pub fn slice<'a, T: Element, D: numpy::ndarray::Dimension>(
    py: Python<'_>,
    array: &'a PyReadonlyArray<'_, T, D>,
    name: &str,
) -> PyResult<&'a [T]> {
    array
        .as_slice()
        .map_err(|e| raise(py, Class::InvalidInput, format!("{name}: {e}")))
}

/// A Python scalar (int or float, including NumPy scalars) as T.
pub fn scalar<'py, T: FromPyObjectOwned<'py>>(obj: &Bound<'py, PyAny>, name: &str) -> PyResult<T> {
    obj.extract::<T>().map_err(|_| {
        if obj.is_instance_of::<pyo3::types::PyInt>() {
            let kind = std::any::type_name::<T>();
            let message = format!("{name} must be an integer within {kind}'s range, got {obj}");
            return raise(obj.py(), Class::InvalidInput, message);
        }
        let kind = obj
            .get_type()
            .name()
            .map(|n| n.to_string())
            .unwrap_or_default();
        raise(
            obj.py(),
            Class::InputType,
            format!("{name} must be a number of the right kind, got {kind}"),
        )
    })
}

fn field<'py>(obj: &Bound<'py, PyAny>, owner: &str, name: &str) -> PyResult<Bound<'py, PyAny>> {
    obj.getattr(name).map_err(|_| {
        let message = format!(
            "{owner} must have a field {name:?} (pass a MetricData / TreeArrays / Schedule)"
        );
        raise(obj.py(), Class::InputType, message)
    })
}

/// The arrays of a covertreex MetricData NamedTuple, borrowed.
pub struct MetricArrays<'py> {
    name: String,
    metric: i64,
    kernel: i64,
    variance: f64,
    slack: f64,
    lengthscale: PyReadonlyArray1<'py, f64>,
    x: PyReadonlyArray2<'py, f64>,
    v: PyReadonlyArray2<'py, f64>,
    p: PyReadonlyArray1<'py, f64>,
}

impl<'py> MetricArrays<'py> {
    pub fn extract(obj: &Bound<'py, PyAny>, name: &str) -> PyResult<Self> {
        let get = |f: &str| field(obj, name, f);
        let label = |f: &str| format!("{name}.{f}");
        Ok(MetricArrays {
            name: name.to_string(),
            metric: scalar(&get("metric")?, &label("metric"))?,
            kernel: scalar(&get("kernel")?, &label("kernel"))?,
            variance: scalar(&get("variance")?, &label("variance"))?,
            slack: scalar(&get("slack")?, &label("slack"))?,
            lengthscale: array1(&get("lengthscale")?, &label("lengthscale"))?,
            x: array2(&get("X")?, &label("X"))?,
            v: array2(&get("V")?, &label("V"))?,
            p: array1(&get("P")?, &label("P"))?,
        })
    }

    /// The core view (shapes checked against the slices; values are checked by the core).
    pub fn view(&self, py: Python<'_>) -> PyResult<MetricData<'_>> {
        let name = &self.name;
        let error = |e| core_error(py, &e);
        let (xs, vs) = (self.x.shape(), self.v.shape());
        Ok(MetricData {
            metric: Metric::from_code(self.metric).map_err(error)?,
            kernel: Kernel::from_code(self.kernel).map_err(error)?,
            variance: self.variance,
            lengthscale: slice(py, &self.lengthscale, &format!("{name}.lengthscale"))?,
            x: Matrix::new("X", slice(py, &self.x, &format!("{name}.X"))?, xs[0], xs[1])
                .map_err(error)?,
            v: Matrix::new("V", slice(py, &self.v, &format!("{name}.V"))?, vs[0], vs[1])
                .map_err(error)?,
            p: slice(py, &self.p, &format!("{name}.P"))?,
            slack: self.slack,
        })
    }
}

/// The arrays of a covertreex TreeArrays NamedTuple, borrowed.
pub struct TreeArrays<'py> {
    root: i64,
    root_level: i64,
    n_slots: i64,
    levels: PyReadonlyArray1<'py, i64>,
    child_offsets: PyReadonlyArray1<'py, i64>,
    children: PyReadonlyArray1<'py, i64>,
    radius: PyReadonlyArray1<'py, f64>,
    is_copy: PyReadonlyArray1<'py, bool>,
    subtree_min: PyReadonlyArray1<'py, i64>,
}

impl<'py> TreeArrays<'py> {
    pub fn extract(obj: &Bound<'py, PyAny>) -> PyResult<Self> {
        let get = |f: &str| field(obj, "tree", f);
        let label = |f: &str| format!("tree.{f}");
        Ok(TreeArrays {
            root: scalar(&get("root")?, &label("root"))?,
            root_level: scalar(&get("root_level")?, &label("root_level"))?,
            n_slots: scalar(&get("n_slots")?, &label("n_slots"))?,
            levels: array1(&get("levels")?, &label("levels"))?,
            child_offsets: array1(&get("child_offsets")?, &label("child_offsets"))?,
            children: array1(&get("children")?, &label("children"))?,
            radius: array1(&get("radius")?, &label("radius"))?,
            is_copy: array1(&get("is_copy")?, &label("is_copy"))?,
            subtree_min: array1(&get("subtree_min")?, &label("subtree_min"))?,
        })
    }

    /// The core view (its consistency is checked by the core).
    pub fn view(&self, py: Python<'_>) -> PyResult<TreeView<'_>> {
        Ok(TreeView {
            root: self.root,
            root_level: self.root_level,
            n_slots: self.n_slots,
            levels: slice(py, &self.levels, "tree.levels")?,
            child_offsets: slice(py, &self.child_offsets, "tree.child_offsets")?,
            children: slice(py, &self.children, "tree.children")?,
            radius: slice(py, &self.radius, "tree.radius")?,
            is_copy: slice(py, &self.is_copy, "tree.is_copy")?,
            subtree_min: slice(py, &self.subtree_min, "tree.subtree_min")?,
        })
    }
}

/// A covertreex Schedule NamedTuple (covertreex/engines/schedule.py), field by field.
pub fn schedule(obj: &Bound<'_, PyAny>) -> PyResult<Schedule> {
    let flag =
        |name: &str| scalar::<bool>(&field(obj, "schedule", name)?, &format!("schedule.{name}"));
    Ok(Schedule {
        predecessor_pruning: flag("predecessor_pruning")?,
        child_reordering: flag("child_reordering")?,
        best_first: flag("best_first")?,
        early_stop: flag("early_stop")?,
        block_sizing: flag("block_sizing")?,
        level_cache: flag("level_cache")?,
    })
}
