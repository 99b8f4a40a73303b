//! A vectorisable exp for the screening stage only: branch-free f64 arithmetic and integer bit
//! assembly that LLVM turns into SIMD inside the epilogue's loops (libm's `exp` is a call per pair and
//! is about half of the epilogue's time). The canonical re-evaluation keeps libm's `exp`; screening
//! only needs a *bound* on how far this value is from libm's, and that bound is [`EXP_REL`].
//!
//! Method, for x <= 0 (the kernels' arguments -r2/2 and -a), u = 2^-53:
//! - x < [`UNDERFLOW_ARG`] (= -708) returns 0. There libm's exp(x) <= exp(-708) (1 + 2u) < 2^-1021:
//!   the error is absolute, at most [`EXP_ABS`] = 2^-1021, and subnormal results never arise below.
//! - otherwise n = round(x LOG2_E) by one fused multiply-add with 1.5 * 2^52 (the exact product plus
//!   the shifter, rounded once: ties to even, exact for |n| < 2^51), so n is in [-1021, 0] and
//!   |x - n ln2| <= ln2 (1/2 + 2^-40) < 0.35.
//! - r = fma(-n, LN2_LO, fma(-n, LN2_HI, x)) (Cody-Waite): LN2_HI is ln2 cut to 32 significant bits, so
//!   n LN2_HI is exact and, by Sterbenz's lemma, so is x - n LN2_HI (the inner fma rounds nothing); the
//!   outer fma's one rounding and LN2_LO's own error leave |r - (x - n ln2)| <= 0.35 u + 2^-74, a
//!   relative error of at most 0.36 u in exp(r).
//! - exp(r) by its degree-12 Taylor polynomial sum_k c_k r^k, c_k = 1/k!, in Estrin's scheme with fused
//!   multiply-adds (one rounding each): r2 = r r, r4 = r2 r2, r8 = r4 r4; pairs p = fma(c_2i+1, r, c_2i);
//!   q = fma(p', r2, p) over pairs of pairs, s0 = fma(q1, r4, q0), s1 = fma(c_12, r4, q2), and
//!   fma(s1, r8, s0). Its depth is a third of Horner's rule (whose 12 dependent steps the epilogue used
//!   to wait on). Lagrange's remainder is <= 0.35^13/13! e^0.35 <= 3.5 u exp(r) (exp(r) >= e^-0.35).
//!   Rounding: following each monomial c_k r^k through the scheme, it picks up at most 12 factors
//!   (1 + d), |d| <= u (c_11: 1 in its pair, 2 from r2 and the fma, 1 in s1's fma, 8 from r8's 7 and
//!   the final fma), so the computed value is within gamma_12 sum_k |c_k| |r|^k <= 12.001 u e^0.35 <=
//!   24.2 u exp(r) of the polynomial (Higham, Accuracy and Stability of Numerical Algorithms, section
//!   3.1); the coefficients 1/k! rounded to f64 add <= 0.02 u. Powers that underflow (only when
//!   |r| < 2^-127) add absolute errors below 2^-1070, negligible against the value >= 0.7.
//! - 2^n is assembled in the exponent field; n >= -1021 keeps it and the product normal, so the scaling
//!   is exact.
//!
//! Fused multiply-adds are IEEE operations (one correctly rounded result), so the value is the same bits
//! on every instruction set: where the CPU has no FMA, `f64::mul_add` calls libm's correctly rounded
//! `fma` (slow, but the screening selects AVX2 + FMA or AVX-512 wherever they exist).
//!
//! Together |fast(x) - exp(x)| <= 28.1 u exp(x). libm's exp is within 1 ulp (<= 2u relative for a normal
//! result; glibc documents <= 1 ulp), so |fast(x) - libm(x)| <= 30.2 u libm(x) < [`EXP_REL`] libm(x) =
//! 64 u libm(x) for x >= UNDERFLOW_ARG (the margin is kept: the screening bound of `screen` and of gold's
//! kernels.py is stated with 64 u). The unit tests check the bound over a dense sweep and the edges.

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
const TAYLOR: [f64; 13] = [
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

/// exp(x) of N arguments x <= 0 (or -inf; never NaN), each within [`EXP_REL`] relative of libm's for
/// x >= [`UNDERFLOW_ARG`] and within [`EXP_ABS`] absolute below. Every lane runs the same operations,
/// so a value does not depend on N or on its lane; LLVM runs the lanes as SIMD vectors.
#[inline(always)]
pub fn exp_lanes<const N: usize>(x: [f64; N]) -> [f64; N] {
    let mut out = [0.0; N];
    for (out, &x) in out.iter_mut().zip(&x) {
        let clamped = x.max(UNDERFLOW_ARG);
        let shifted = clamped.mul_add(LOG2_E, SHIFTER);
        let n = shifted - SHIFTER;
        let r = (-n).mul_add(LN2_LO, (-n).mul_add(LN2_HI, clamped));
        let exponent = shifted
            .to_bits()
            .wrapping_sub(SHIFTER.to_bits())
            .wrapping_add(1023);
        let value = taylor(r) * f64::from_bits(exponent << 52);
        *out = if x < UNDERFLOW_ARG { 0.0 } else { value };
    }
    out
}

/// The degree-12 Taylor polynomial of exp at r in Estrin's scheme with fused multiply-adds (the module
/// docs bound its error).
#[inline(always)]
fn taylor(r: f64) -> f64 {
    let c = &TAYLOR;
    let r2 = r * r;
    let r4 = r2 * r2;
    let r8 = r4 * r4;
    let pair = |i: usize| c[i + 1].mul_add(r, c[i]);
    let q0 = pair(2).mul_add(r2, pair(0));
    let q1 = pair(6).mul_add(r2, pair(4));
    let q2 = pair(10).mul_add(r2, pair(8));
    let s0 = q1.mul_add(r4, q0);
    let s1 = c[12].mul_add(r4, q2);
    s1.mul_add(r8, s0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exp_nonpositive(x: f64) -> f64 {
        exp_lanes([x])[0]
    }

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
    fn lanes_are_bitwise_the_scalar_value() {
        let xs: Vec<f64> = (0..4096)
            .map(|i| -760.0 * (i as f64 / 4095.0).powi(3))
            .collect();
        for group in xs.chunks_exact(16) {
            let lanes = exp_lanes::<16>(group.try_into().unwrap());
            for (&x, fast) in group.iter().zip(lanes) {
                assert_eq!(fast.to_bits(), exp_nonpositive(x).to_bits(), "x = {x:e}");
            }
        }
    }

    #[test]
    fn within_the_bound_over_a_dense_sweep() {
        let steps = 2_000_000;
        let mut worst: f64 = 0.0;
        for i in 0..=steps {
            for x in [
                -750.0 * i as f64 / steps as f64,
                -2.0 * i as f64 / steps as f64,
            ] {
                check(x);
                if x >= UNDERFLOW_ARG {
                    worst = worst.max((exp_nonpositive(x) - x.exp()).abs() / x.exp());
                }
            }
        }
        // The module docs derive 30.2 u against libm; EXP_REL keeps a margin above it.
        assert!(
            worst <= 30.2 * f64::EPSILON / 2.0,
            "{} u",
            worst / (f64::EPSILON / 2.0)
        );
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
