//! The structured error of every fallible core call: inputs are checked up front, so the algorithms
//! themselves never panic, and the bindings map each variant to one Python exception class.

use std::fmt;

/// Everything that can be wrong with the arrays handed to the core.
#[derive(Debug, Clone, PartialEq)]
pub enum CoreError {
    /// An array that must hold at least one element is empty.
    Empty { what: &'static str },
    /// An array's length (or a matrix dimension) disagrees with the others.
    DimensionMismatch {
        what: &'static str,
        expected: usize,
        got: usize,
    },
    /// An index points outside the array it refers to.
    IndexOutOfRange {
        what: &'static str,
        position: usize,
        index: i64,
        bound: usize,
    },
    /// An index appears twice where each may appear once (insertion order, tree children).
    RepeatedIndex {
        what: &'static str,
        position: usize,
        index: i64,
    },
    /// k is below 1 (or too large to allocate the answer).
    KOutOfRange { k: i64, reason: &'static str },
    /// NaN or +/-inf in an array that must be finite.
    NonFinite { what: &'static str, position: usize },
    /// NaN where a number or an infinity is taken (a key bound that may be inf).
    NotANumber { what: &'static str },
    /// A value that must be zero or more is negative.
    Negative {
        what: &'static str,
        position: usize,
        value: f64,
    },
    /// A value that must be strictly positive (variance, lengthscale, p) is not.
    NotPositive {
        what: &'static str,
        position: usize,
        value: f64,
    },
    /// An integer code (metric, kernel) or scalar option outside its allowed values.
    BadValue {
        what: &'static str,
        value: i64,
        allowed: &'static str,
    },
    /// A name (mode) outside its allowed values.
    UnknownName {
        what: &'static str,
        name: String,
        allowed: &'static str,
    },
    /// A setting given as text (an environment variable) that does not read as what it must be.
    BadText {
        what: &'static str,
        text: String,
        allowed: &'static str,
    },
    /// The tree arrays are not a well-formed tree (offsets, levels, slots).
    InvalidTree { reason: String },
    /// The worker thread pool could not be created.
    ThreadPool { reason: String },
    /// The caller asked the call to end early ([`crate::Stop`]).
    Interrupted,
}

/// Result alias of the core.
pub type Result<T> = std::result::Result<T, CoreError>;

impl fmt::Display for CoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CoreError::Empty { what } => write!(f, "{what} must not be empty"),
            CoreError::DimensionMismatch {
                what,
                expected,
                got,
            } => write!(f, "{what}: expected {expected}, got {got}"),
            CoreError::IndexOutOfRange {
                what,
                position,
                index,
                bound,
            } => write!(
                f,
                "{what}[{position}] = {index} is out of range [0, {bound})"
            ),
            CoreError::RepeatedIndex {
                what,
                position,
                index,
            } => write!(f, "{what}[{position}] = {index} repeats an earlier entry"),
            CoreError::KOutOfRange { k, reason } => write!(f, "k = {k} {reason}"),
            CoreError::NotANumber { what } => {
                write!(f, "{what} is NaN (a number or +/-inf is expected)")
            }
            CoreError::NonFinite { what, position } => {
                write!(
                    f,
                    "{what} contains NaN or inf (first at position {position})"
                )
            }
            CoreError::Negative {
                what,
                position,
                value,
            } => write!(f, "{what} must be >= 0, got {value} at position {position}"),
            CoreError::NotPositive {
                what,
                position,
                value,
            } => write!(
                f,
                "{what} must be positive, got {value} at position {position}"
            ),
            CoreError::BadValue {
                what,
                value,
                allowed,
            } => write!(f, "{what} must be {allowed}, got {value}"),
            CoreError::UnknownName {
                what,
                name,
                allowed,
            } => write!(f, "unknown {what} {name:?}; known: {allowed}"),
            CoreError::BadText {
                what,
                text,
                allowed,
            } => write!(f, "{what} must be {allowed}, got {text:?}"),
            CoreError::InvalidTree { reason } => write!(f, "invalid tree: {reason}"),
            CoreError::ThreadPool { reason } => {
                write!(f, "cannot create the worker thread pool: {reason}")
            }
            CoreError::Interrupted => write!(f, "interrupted"),
        }
    }
}

impl std::error::Error for CoreError {}

/// Check (what, expected, got) size pairs; the first mismatch is the error.
pub(crate) fn check_sizes(pairs: &[(&'static str, usize, usize)]) -> Result<()> {
    match pairs.iter().find(|(_, expected, got)| expected != got) {
        Some(&(what, expected, got)) => Err(CoreError::DimensionMismatch {
            what,
            expected,
            got,
        }),
        None => Ok(()),
    }
}

/// Check that every entry of `values` is an index in [0, bound), none of them twice.
pub(crate) fn check_distinct(what: &'static str, values: &[i64], bound: usize) -> Result<()> {
    let mut seen = vec![false; bound];
    for (position, &index) in values.iter().enumerate() {
        if index < 0 || index as usize >= bound {
            return Err(CoreError::IndexOutOfRange {
                what,
                position,
                index,
                bound,
            });
        }
        if seen[index as usize] {
            return Err(CoreError::RepeatedIndex {
                what,
                position,
                index,
            });
        }
        seen[index as usize] = true;
    }
    Ok(())
}

/// A vector of `len` copies of `value`, or KOutOfRange instead of an abort when it cannot be allocated
/// (k is the only size a caller chooses freely).
pub(crate) fn filled<T: Clone>(len: Option<usize>, value: T, k: i64) -> Result<Vec<T>> {
    let too_large = CoreError::KOutOfRange {
        k,
        reason: "is too large: the answer does not fit in memory",
    };
    let len = len.ok_or(too_large.clone())?;
    let mut out = Vec::new();
    out.try_reserve_exact(len).map_err(|_| too_large)?;
    out.resize(len, value);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_name_the_argument() {
        let e = CoreError::DimensionMismatch {
            what: "queries columns",
            expected: 3,
            got: 2,
        };
        assert_eq!(e.to_string(), "queries columns: expected 3, got 2");
        let e = CoreError::IndexOutOfRange {
            what: "rows",
            position: 4,
            index: -2,
            bound: 10,
        };
        assert!(e.to_string().contains("rows[4] = -2"));
    }

    #[test]
    fn filled_rejects_overflow_and_huge_sizes() {
        assert!(matches!(
            filled(None, 0u8, 5),
            Err(CoreError::KOutOfRange { k: 5, .. })
        ));
        assert!(filled(Some(usize::MAX / 2), 0u64, 7).is_err());
        assert_eq!(filled(Some(3), 1.5, 1).unwrap(), vec![1.5; 3]);
    }
}
