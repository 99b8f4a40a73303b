//! Level arithmetic of the cover tree (base 2), bit-identical to covertreex/levels.py under Numba; the
//! constants are covertreex/level_constants.py's.

/// The dedicated level of exact duplicates (distance 0 to the node they hang under).
pub const DUPLICATE_LEVEL: i64 = -(1 << 31);
/// The root's level while building: 2**UNBOUNDED_LEVEL is inf, so the root covers everything.
pub const UNBOUNDED_LEVEL: i64 = 1 << 20;
/// Marks a node without non-duplicate children while building.
pub const NO_CHILD_LEVEL: i64 = -(1 << 62);

const FRACTION_BITS: u32 = 52;

/// An upper bound on the computed distance from a node at `level` to its parent: 2**(level + 1)
/// (covering), raised to 2**-1022 below the normal range (duplicates included) and inf above it, as
/// covertreex/levels.py's `cover`.
pub fn cover(level: i64) -> f64 {
    let exponent = level.saturating_add(1).max(-1022);
    if exponent > 1023 {
        return f64::INFINITY;
    }
    f64::from_bits(((exponent + EXPONENT_BIAS) as u64) << FRACTION_BITS)
}
const FRACTION_MASK: u64 = (1 << FRACTION_BITS) - 1;
const EXPONENT_BIAS: i64 = 1023;

/// The exponent of C `frexp(value)` (value = mantissa * 2**exponent, |mantissa| in [0.5, 1)) and whether
/// the mantissa is exactly +0.5. Like glibc, 0, inf and NaN give exponent 0 and a mantissa that is not 0.5.
fn frexp_exponent(value: f64) -> (i64, bool) {
    if value == 0.0 || !value.is_finite() {
        return (0, false);
    }
    let bits = value.to_bits();
    let biased = ((bits >> FRACTION_BITS) & 0x7ff) as i64;
    let fraction = bits & FRACTION_MASK;
    let positive = value > 0.0;
    if biased == 0 {
        // Subnormal: value = fraction * 2**-1074, with its top set bit at position `top`.
        let top = 63 - i64::from(fraction.leading_zeros());
        return (top - 1073, positive && fraction.is_power_of_two());
    }
    (biased - EXPONENT_BIAS + 1, positive && fraction == 0)
}

/// The largest integer j with 2**j < value (value finite and > 0), exactly as Numba's `math.frexp`
/// route computes it: `exponent - 2` for an exact power of two, `exponent - 1` otherwise.
pub fn level_below(value: f64) -> i64 {
    let (exponent, half) = frexp_exponent(value);
    if half {
        exponent - 2
    } else {
        exponent - 1
    }
}

/// `ldexp(1.0, level)` as Numba evaluates it: the level is truncated to a C int, then the result is
/// 2**level exactly, inf above 1023, subnormal down to -1074 and 0.0 below.
pub fn ldexp_one(level: i64) -> f64 {
    let e = i64::from(level as i32);
    if e > EXPONENT_BIAS {
        f64::INFINITY
    } else if e >= 1 - EXPONENT_BIAS {
        f64::from_bits(((e + EXPONENT_BIAS) as u64) << FRACTION_BITS)
    } else if e >= -1074 {
        f64::from_bits(1u64 << (e + 1074))
    } else {
        0.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn level_below_is_strict_at_powers_of_two() {
        assert_eq!(level_below(1.0), -1);
        assert_eq!(level_below(2.0), 0);
        assert_eq!(level_below(0.75), -1);
        assert_eq!(level_below(3.0), 1);
        assert_eq!(level_below(1.0000000000000002), 0);
        assert_eq!(level_below(0.9999999999999999), -1);
        assert_eq!(level_below(f64::MAX), 1023);
    }

    #[test]
    fn level_below_handles_subnormals_and_specials_like_numba() {
        // Values probed from Numba's math.frexp on the same machine.
        assert_eq!(level_below(5e-324), -1075);
        assert_eq!(level_below(1e-310), -1030);
        assert_eq!(level_below(f64::from_bits(1 << 44)), -1031); // 2**-1030
        assert_eq!(level_below(f64::MIN_POSITIVE), -1023);
        assert_eq!(level_below(f64::INFINITY), -1);
        assert_eq!(level_below(f64::NAN), -1);
        assert_eq!(level_below(0.0), -1);
        assert_eq!(level_below(-3.0), 1);
        assert_eq!(level_below(-2.0), 1);
    }

    #[test]
    fn level_below_matches_the_definition() {
        for j in -1074..1024 {
            let power = ldexp_one(j);
            assert_eq!(level_below(power), j - 1, "2**{j}");
            let above = f64::from_bits(power.to_bits() + 1);
            assert_eq!(level_below(above), j, "next after 2**{j}");
        }
    }

    #[test]
    fn ldexp_one_follows_numba_semantics() {
        assert_eq!(ldexp_one(0), 1.0);
        assert_eq!(ldexp_one(-1), 0.5);
        assert_eq!(ldexp_one(1023), 2f64.powi(1023));
        assert_eq!(ldexp_one(1024), f64::INFINITY);
        assert_eq!(ldexp_one(UNBOUNDED_LEVEL), f64::INFINITY);
        assert_eq!(ldexp_one(-1022), f64::MIN_POSITIVE);
        assert_eq!(ldexp_one(-1074), 5e-324);
        assert_eq!(ldexp_one(-1075), 0.0);
        assert_eq!(ldexp_one(DUPLICATE_LEVEL), 0.0);
        // Truncation to a C int, as Numba does: 2**32 + 3 -> 3, -2**62 -> 0, 2**31 - 1 stays huge.
        assert_eq!(ldexp_one((1 << 32) + 3), 8.0);
        assert_eq!(ldexp_one(NO_CHILD_LEVEL), 1.0);
        assert_eq!(ldexp_one((1 << 31) - 1), f64::INFINITY);
    }
}
