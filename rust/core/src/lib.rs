//! covertreex core: compressed cover tree build and exact k-NN query, in pure Rust.

/// Crate version, exposed to Python so the wrapper can check it built what it expects.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// Sum of the entries, in index order (sequential, no reassociation).
pub fn sequential_sum(values: &[f64]) -> f64 {
    let mut acc = 0.0;
    for v in values {
        acc += *v;
    }
    acc
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sequential_sum_adds_in_order() {
        assert_eq!(sequential_sum(&[1.0, 2.0, 3.5]), 6.5);
        assert_eq!(sequential_sum(&[]), 0.0);
    }
}
