//! A vectorisable exp for the screening stage only: branch-free f64 arithmetic and integer bit
//! assembly that LLVM turns into SIMD inside the epilogue's loops (libm's `exp` is a call per pair and
//! is about half of the epilogue's time). The canonical re-evaluation keeps libm's `exp`; screening
//! only needs a *bound* on how far this value is from libm's, and that bound is [`EXP_REL`].
//!
//! Method, for x <= 0 (the kernels' arguments -r2/2 and -a), u = 2^-53:
//! - x < [`UNDERFLOW_ARG`] (= -708) returns 0. There libm's exp(x) <= exp(-708) (1 + 2u) < 2^-1021:
//!   the error is absolute, at most [`EXP_ABS`] = 2^-1021, and subnormal results never arise below.
//! - otherwise n = round(x log2 e) by adding and subtracting 1.5 * 2^52 (ties to even, exact for
//!   |n| < 2^51), so n is in [-1021, 0] and |x - n ln2| <= ln2 (1/2 + 2^-40) < 0.35.
//! - r = (x - n LN2_HI) - n LN2_LO (Cody-Waite): LN2_HI is ln2 cut to 32 significant bits, so n LN2_HI
//!   is exact and, by Sterbenz's lemma, so is x - n LN2_HI; the two remaining roundings and LN2_LO's own
//!   error leave |r - (x - n ln2)| <= 0.35 u + 2^-74, a relative error of at most 0.36 u in exp(r).
//! - exp(r) by its degree-12 Taylor polynomial, Horner's rule in plain (unfused) arithmetic. Lagrange's
//!   remainder is <= 0.35^13/13! e^0.35 <= 3.5 u exp(r) (exp(r) >= e^-0.35); Horner's rounding is
//!   <= gamma_24 sum_k |c_k| |r|^k <= 24.001 u e^0.35 <= 48.4 u exp(r) (Higham, Accuracy and Stability of
//!   Numerical Algorithms, eq. 5.3); the coefficients 1/k! rounded to f64 add <= 0.02 u. Products that
//!   underflow (only when |r| < 2^-900) add absolute errors below 2^-1070, negligible against p >= 0.7.
//! - 2^n is assembled in the exponent field; n >= -1021 keeps it and the product normal, so the scaling
//!   is exact.
//!
//! Together |fast(x) - exp(x)| <= 52.3 u exp(x). libm's exp is within 1 ulp (<= 2u relative for a normal
//! result; glibc documents <= 1 ulp), so |fast(x) - libm(x)| <= 54.4 u libm(x) < [`EXP_REL`] libm(x) =
//! 64 u libm(x) for x >= UNDERFLOW_ARG. The unit tests check the bound over a dense sweep and the edges.

/// Relative bound on |fast - libm| for x >= [`UNDERFLOW_ARG`]: 64 u = 2^-47 (derivation above).
pub const EXP_REL: f64 = 32.0 * f64::EPSILON;

/// Below this argument the fast exp returns 0.
pub const UNDERFLOW_ARG: f64 = -708.0;

/// Absolute bound on |fast - libm| for x < [`UNDERFLOW_ARG`]: libm's value there is below 2^-1021.
pub const EXP_ABS: f64 = f64::MIN_POSITIVE * 2.0;

const LOG2_E: f64 = std::f64::consts::LOG2_E;
/// ln2 with its 21 low significand bits cleared (32 significant bits): n * LN2_HI is exact for |n| < 2^21.
const LN2_HI: f64 = f64::from_bits(0x3fe6_2e42_fee0_0000);
/// ln2 - LN2_HI, rounded.
const LN2_LO: f64 = 1.908_214_929_270_587_7e-10;
/// Adding then subtracting 1.5 * 2^52 rounds to an integer, which then sits in the low mantissa bits.
const SHIFTER: f64 = 6_755_399_441_055_744.0;
const DEGREE: usize = 12;
const TAYLOR: [f64; DEGREE + 1] = [
    1.0,
    1.0,
    1.0 / 2.0,
    1.0 / 6.0,
    1.0 / 24.0,
    1.0 / 120.0,
    1.0 / 720.0,
    1.0 / 5040.0,
    1.0 / 40320.0,
    1.0 / 362880.0,
    1.0 / 3628800.0,
    1.0 / 39916800.0,
    1.0 / 479001600.0,
];

/// exp(x) for x <= 0 (or -inf; never NaN), within [`EXP_REL`] relative of libm's for
/// x >= [`UNDERFLOW_ARG`] and within [`EXP_ABS`] absolute below.
#[inline(always)]
pub fn exp_nonpositive(x: f64) -> f64 {
    let clamped = x.max(UNDERFLOW_ARG);
    let shifted = clamped * LOG2_E + SHIFTER;
    let n = shifted - SHIFTER;
    let r = (clamped - n * LN2_HI) - n * LN2_LO;
    let mut poly = TAYLOR[DEGREE];
    for c in TAYLOR[..DEGREE].iter().rev() {
        poly = c + r * poly;
    }
    let exponent = shifted
        .to_bits()
        .wrapping_sub(SHIFTER.to_bits())
        .wrapping_add(1023);
    let value = poly * f64::from_bits(exponent << 52);
    if x < UNDERFLOW_ARG {
        0.0
    } else {
        value
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Assert the stated bound at x against libm.
    fn check(x: f64) {
        let (fast, libm) = (exp_nonpositive(x), x.exp());
        if x < UNDERFLOW_ARG {
            assert_eq!(fast, 0.0, "x = {x:e}");
            assert!(libm <= EXP_ABS, "x = {x:e}: libm {libm:e}");
        } else {
            let err = (fast - libm).abs();
            assert!(
                err <= EXP_REL * libm,
                "x = {x:e}: fast {fast:e} libm {libm:e}, error {} u",
                err / libm / (f64::EPSILON / 2.0)
            );
        }
    }

    #[test]
    fn within_the_bound_over_a_dense_sweep() {
        let steps = 2_000_000;
        for i in 0..=steps {
            check(-750.0 * i as f64 / steps as f64);
        }
        for i in 0..=steps {
            check(-2.0 * i as f64 / steps as f64);
        }
    }

    #[test]
    fn within_the_bound_where_the_reduction_rounds_between_multiples() {
        // x near (n + 1/2) ln2 decides n by a rounding; both neighbours must still be accurate.
        for n in 0..1022 {
            let mid = -(n as f64 + 0.5) * std::f64::consts::LN_2;
            let mut x = mid;
            for _ in 0..64 {
                check(x);
                x = f64::from_bits(x.to_bits() + 1);
            }
            x = mid;
            for _ in 0..64 {
                check(x);
                x = f64::from_bits(x.to_bits() - 1);
            }
        }
    }

    #[test]
    fn edges_zero_tiny_subnormal_and_underflow() {
        assert_eq!(exp_nonpositive(0.0), 1.0);
        assert_eq!(exp_nonpositive(-0.0), 1.0);
        assert_eq!(exp_nonpositive(f64::NEG_INFINITY), 0.0);
        assert_eq!(exp_nonpositive(-f64::MAX), 0.0);
        // Below u/2 in magnitude, exp(x) rounds to 1 and so must the fast value.
        for x in [-f64::from_bits(1), -f64::MIN_POSITIVE, -1e-300, -1e-17] {
            assert_eq!(exp_nonpositive(x), 1.0, "x = {x:e}");
        }
        for x in [-f64::EPSILON, -f64::EPSILON / 2.0, -1e-8, -0.5, -1.0] {
            check(x);
        }
        // Around the cut-off, through libm's subnormal range (below ~-708.40) and its underflow to 0
        // (below ~-745.13).
        let below = f64::from_bits(UNDERFLOW_ARG.to_bits() + 1);
        assert_eq!(exp_nonpositive(below), 0.0);
        assert!(exp_nonpositive(UNDERFLOW_ARG) >= f64::MIN_POSITIVE);
        for x in [
            UNDERFLOW_ARG,
            below,
            -708.39,
            -708.4,
            -709.0,
            -720.0,
            -744.4,
            -745.1,
            -745.2,
            -800.0,
        ] {
            check(x);
        }
        let mut x = UNDERFLOW_ARG;
        for _ in 0..4096 {
            check(x);
            x = f64::from_bits(x.to_bits() - 1);
        }
    }
}
