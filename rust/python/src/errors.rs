//! One mapping from core errors (and binding-level argument problems) to the exception classes of
//! covertreex.errors, so the rust engine raises exactly what the gold engine's validation raises.

use covertreex_core::CoreError;
use pyo3::exceptions::{PyKeyboardInterrupt, PyRuntimeError};
use pyo3::prelude::*;

/// The covertreex.errors classes the bindings raise.
#[derive(Debug, Clone, Copy)]
pub enum Class {
    InvalidInput,
    DimensionMismatch,
    KOutOfRange,
    NonFinite,
    InputType,
}

impl Class {
    fn name(self) -> &'static str {
        match self {
            Class::InvalidInput => "InvalidInputError",
            Class::DimensionMismatch => "DimensionMismatchError",
            Class::KOutOfRange => "KOutOfRangeError",
            Class::NonFinite => "NonFiniteError",
            Class::InputType => "InputTypeError",
        }
    }
}

/// An instance of covertreex.errors.<class>(message), ready to raise.
pub fn raise(py: Python<'_>, class: Class, message: String) -> PyErr {
    let made = py
        .import("covertreex.errors")
        .and_then(|module| module.getattr(class.name()))
        .and_then(|cls| cls.call1((message,)));
    match made {
        Ok(instance) => PyErr::from_value(instance),
        Err(import_failure) => import_failure,
    }
}

/// The Python exception for a core error.
pub fn core_error(py: Python<'_>, error: &CoreError) -> PyErr {
    let class = match error {
        CoreError::DimensionMismatch { .. } => Class::DimensionMismatch,
        CoreError::KOutOfRange { .. } => Class::KOutOfRange,
        CoreError::NonFinite { .. } | CoreError::NotANumber { .. } => Class::NonFinite,
        CoreError::ThreadPool { reason } => {
            return PyRuntimeError::new_err(format!("cannot start worker threads: {reason}"))
        }
        CoreError::Interrupted => return PyKeyboardInterrupt::new_err("interrupted"),
        CoreError::Empty { .. }
        | CoreError::IndexOutOfRange { .. }
        | CoreError::RepeatedIndex { .. }
        | CoreError::NotPositive { .. }
        | CoreError::Negative { .. }
        | CoreError::BadValue { .. }
        | CoreError::UnknownName { .. }
        | CoreError::BadText { .. }
        | CoreError::InvalidTree { .. } => Class::InvalidInput,
    };
    raise(py, class, error.to_string())
}
