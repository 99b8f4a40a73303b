//! PyO3 bindings: convert arrays, release the GIL, map core errors to Python exceptions.
use pyo3::prelude::*;

#[pyfunction]
fn sequential_sum(values: Vec<f64>) -> f64 {
    covertreex_core::sequential_sum(&values)
}

#[pymodule]
fn _rust(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", covertreex_core::VERSION)?;
    m.add_function(wrap_pyfunction!(sequential_sum, m)?)?;
    Ok(())
}
