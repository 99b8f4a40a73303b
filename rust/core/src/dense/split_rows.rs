//! The split screen's rows from a block of Z = V P (covertreex.split_screen builds them; its module
//! docstring proves the bound these factors serve): each row's int8 copy of z, its seven factors
//! ([`FACTORS`]) and sqrt(e/p). One fused pass per row over v and two over z, compiled for the widest
//! vectors the CPU has, where NumPy made a dozen passes (4.4 CPU-us per point at m = 512, now ~1; the
//! GEMM that makes z takes ~7.5). Every norm here is inflated by gamma_(m+2), which covers any summation
//! order, so lane-wise sums keep the bound.

use super::screen::Isa;
use super::split::FACTORS;
use crate::errors::{CoreError, Result};

const U: f64 = f64::EPSILON / 2.0;

/// What every row's factors take from the problem (covertreex.split_screen.ROW_CONSTANTS, in this
/// order): see that module for each one's derivation.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SplitConstants {
    /// gamma_(m+2), the inflation of every norm of at most m terms.
    pub gamma: f64,
    /// gamma_m, the inflation of the int8 row's norm (of at most m terms).
    pub gamma_m: f64,
    /// sqrt(m) times the kernel values' error bound.
    pub kernel_term: f64,
    /// An upper bound on ||L||_F.
    pub fro_l: f64,
    /// sqrt(s~^2), s~^2 the jitter less the Cholesky factor's backward error.
    pub sqrt_s2t: f64,
    /// An upper bound on ||Mc||_2.
    pub norm_mc: f64,
    /// An upper bound on ||P - L^T Mc||_F.
    pub err_p: f64,
    /// An upper bound on ||P||_F.
    pub fro_p: f64,
    /// The kernel's variance.
    pub variance: f64,
    /// sqrt of the canonical evaluation's error numerator.
    pub sqrt_e: f64,
}

/// Constants per row, as [`SplitConstants`] holds them.
pub const SPLIT_CONSTANTS: usize = 10;

impl SplitConstants {
    /// The constants from their values in field order (exactly [`SPLIT_CONSTANTS`] of them, finite).
    pub fn from_values(values: &[f64]) -> Result<SplitConstants> {
        let &[gamma, gamma_m, kernel_term, fro_l, sqrt_s2t, norm_mc, err_p, fro_p, variance, sqrt_e] =
            values
        else {
            return Err(CoreError::DimensionMismatch {
                what: "split row constants",
                expected: SPLIT_CONSTANTS,
                got: values.len(),
            });
        };
        if let Some(position) = values.iter().position(|v| !v.is_finite()) {
            return Err(CoreError::NonFinite {
                what: "split row constants",
                position,
            });
        }
        if let Some(position) = values.iter().position(|v| *v < 0.0) {
            return Err(CoreError::Negative {
                what: "split row constants",
                position,
                value: values[position],
            });
        }
        if sqrt_s2t <= 0.0 {
            return Err(CoreError::NotPositive {
                what: "split row constant sqrt_s2t",
                position: 4,
                value: sqrt_s2t,
            });
        }
        Ok(SplitConstants {
            gamma,
            gamma_m,
            kernel_term,
            fro_l,
            sqrt_s2t,
            norm_mc,
            err_p,
            fro_p,
            variance,
            sqrt_e,
        })
    }
}

/// A block's split rows: q (n x m int8), factors (n x [`FACTORS`]) and sqrt(e/p) per row.
#[derive(Debug, Clone, PartialEq)]
pub struct SplitRowsOut {
    pub q: Vec<i8>,
    pub factors: Vec<f64>,
    pub rest: Vec<f64>,
}

/// The split rows of a block: `z` n x width and `v` n x m row-major (z = V P of the same rows, width <= m),
/// `p` their residual variances (> 0), on the calling thread.
pub fn split_rows(
    z: &[f64],
    v: &[f64],
    p: &[f64],
    width: usize,
    m: usize,
    constants: &SplitConstants,
) -> Result<SplitRowsOut> {
    let n = p.len();
    if width == 0 || width > m {
        return Err(CoreError::BadValue {
            what: "split z width",
            value: width as i64,
            allowed: "between 1 and V's width m",
        });
    }
    for (what, array, columns) in [("split z", z, width), ("split v", v, m)] {
        if n.checked_mul(columns) != Some(array.len()) {
            return Err(CoreError::DimensionMismatch {
                what,
                expected: n.saturating_mul(columns),
                got: array.len(),
            });
        }
    }
    if let Some(position) = p.iter().position(|p| !p.is_finite()) {
        return Err(CoreError::NonFinite {
            what: "split p",
            position,
        });
    }
    if let Some(position) = p.iter().position(|p| *p <= 0.0) {
        return Err(CoreError::NotPositive {
            what: "split p",
            position,
            value: p[position],
        });
    }
    let mut out = SplitRowsOut {
        q: vec![0; n * width],
        factors: vec![0.0; n * FACTORS],
        rest: vec![0.0; n],
    };
    let block = Block {
        z,
        v,
        p,
        width,
        m,
        constants,
    };
    match Isa::fastest() {
        Isa::Baseline => block.rows(&mut out),
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `Isa::available` lists Avx2 only when the CPU supports AVX2 and FMA.
        Isa::Avx2 => unsafe { block.rows_avx2(&mut out) },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `Isa::available` lists Avx512 only when the CPU supports AVX-512F and FMA.
        Isa::Avx512 => unsafe { block.rows_avx512(&mut out) },
    }
    // A NaN factor would make a pair's bound compare false either way: refuse it (z or v not finite).
    if let Some(position) = out.factors.iter().position(|f| !f.is_finite()) {
        return Err(CoreError::NonFinite {
            what: "split factors (from z and v)",
            position,
        });
    }
    Ok(out)
}

/// [`split_rows`]'s checked arguments.
struct Block<'a> {
    z: &'a [f64],
    v: &'a [f64],
    p: &'a [f64],
    width: usize,
    m: usize,
    constants: &'a SplitConstants,
}

impl Block<'_> {
    /// [`Self::rows`] compiled for AVX2 (no FMA is formed: Rust never contracts a * b + c).
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    fn rows_avx2(&self, out: &mut SplitRowsOut) {
        self.rows(out);
    }

    /// [`Self::rows`] compiled for AVX-512F: a lane group is one register.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f,fma")]
    fn rows_avx512(&self, out: &mut SplitRowsOut) {
        self.rows(out);
    }

    #[inline(always)]
    fn rows(&self, out: &mut SplitRowsOut) {
        let (width, m) = (self.width, self.m);
        for (i, &p) in self.p.iter().enumerate() {
            let (z_row, v_row) = (i * width..(i + 1) * width, i * m..(i + 1) * m);
            out.rest[i] = row(
                &self.z[z_row.clone()],
                &self.v[v_row],
                p,
                self.constants,
                &mut out.q[z_row],
                &mut out.factors[i * FACTORS..(i + 1) * FACTORS],
            );
        }
    }
}

/// One row's int8 z (into `q`), factors (into `factors`) and sqrt(e/p).
#[inline(always)]
fn row(z: &[f64], v: &[f64], p: f64, c: &SplitConstants, q: &mut [i8], factors: &mut [f64]) -> f64 {
    let g = c.gamma;
    let norm_v = ZSums::of(v).squares.sqrt();
    // ||k_i - L v_i||: the kernel rows' error and the solve's backward error.
    let delta = (c.kernel_term + g * c.fro_l * norm_v * (1.0 + g)) * (1.0 + 4.0 * U);
    // ||v_i - L^-1 k_i||, through ||L^-1||_2 <= 1 / s~.
    let h = delta / c.sqrt_s2t * (1.0 + 4.0 * U);
    // Z_i against z_i = Mc^T k_i = P^T v_i + Mc^T delta_i: delta_i through ||Mc||_2, P's error, and the
    // GEMM's rounding gamma_m ||P||_F ||v_i||.
    let zeta = (c.norm_mc * delta + norm_v * (1.0 + g) * (c.err_p + g * c.fro_p)) * (1.0 + 4.0 * g);
    let n_up = norm_v * (1.0 + g) + h;
    let v_lo = (norm_v * (1.0 - g) - h).max(0.0);
    let z_sums = ZSums::of(z);
    let norm_z = z_sums.squares.sqrt();
    let a_up = norm_z * (1.0 + g) + zeta;
    let z_lo = (norm_z * (1.0 - g) - zeta).max(0.0);
    let e_up = (c.variance - v_lo * v_lo - z_lo * z_lo + 8.0 * U * c.variance).max(0.0);
    // Z = s q + omega, q in -127..127; int32 sums of q_i . q_j are exact. Any q would keep the bound
    // (omega is measured), so the level is z times s's reciprocal, clamped (a subnormal s has too few
    // bits for z / s to stay within 127).
    let s = z_sums.top / 127.0;
    let scale = if s > 0.0 { 1.0 / s } else { 1.0 };
    let (cut, squares) = quantise(z, s, scale, q);
    let omega = cut.sqrt() * (1.0 + g) + 4.0 * U * z_sums.abs;
    // q's squares are integers whose sum stays below 2^53: exact in any order; the square root's rounding
    // is within gamma_m.
    let norm_q = squares.sqrt() * (1.0 + c.gamma_m);
    // |z_i . z_j| <= s_i s_j |q_i . q_j| (1 + 4u) + omega_i |z_j| + s_i |q_i| omega_j, and |r_ij - R*_ij|
    // adds zeta_i a_j + a_i zeta_j (Z against z) and h_i n_j + n_i h_j + h_i h_j (V against L^-1 k);
    // the canonical evaluation adds E: h_i h_j + E <= (h_i + sqrt E)(h_j + sqrt E). Each row's factors
    // are divided by sqrt(p_i).
    let zerr = omega + zeta;
    let znorm = a_up.max(s * norm_q * (1.0 + 2.0 * U));
    let r = 1.0 / p.sqrt();
    let columns = [s, zerr, znorm, h, n_up, h + c.sqrt_e, e_up.sqrt()];
    for (factor, value) in factors.iter_mut().zip(columns) {
        *factor = value * r * (1.0 + 64.0 * U);
    }
    (e_up / p).sqrt()
}

/// Lanes of the row sums below: independent accumulators the compiler keeps in vector registers.
const LANES: usize = 8;

/// A row's sum of squares, sum of magnitudes and largest magnitude, in one pass (of v, only the first
/// is used; the others cost nothing there, the pass being bound by its loads).
struct ZSums {
    squares: f64,
    abs: f64,
    top: f64,
}

impl ZSums {
    #[inline(always)]
    fn of(z: &[f64]) -> ZSums {
        let (mut squares, mut abs, mut top) = ([0.0; LANES], [0.0; LANES], [0.0f64; LANES]);
        let chunks = z.chunks_exact(LANES);
        let tail = chunks.remainder();
        for chunk in chunks {
            for l in 0..LANES {
                let x = chunk[l];
                squares[l] += x * x;
                abs[l] += x.abs();
                top[l] = if x.abs() > top[l] { x.abs() } else { top[l] };
            }
        }
        for (l, &x) in tail.iter().enumerate() {
            squares[l] += x * x;
            abs[l] += x.abs();
            top[l] = if x.abs() > top[l] { x.abs() } else { top[l] };
        }
        ZSums {
            squares: squares.iter().sum(),
            abs: abs.iter().sum(),
            top: top.iter().fold(0.0, |a, &b| if b > a { b } else { a }),
        }
    }
}

/// z's levels round(z * scale) clamped to -127..127 (into `q`), and the sums of (z - s level)^2 and of
/// level^2.
#[inline(always)]
fn quantise(z: &[f64], s: f64, scale: f64, q: &mut [i8]) -> (f64, f64) {
    let (mut cut, mut squares) = ([0.0; LANES], [0.0; LANES]);
    let mut one = |l: usize, x: f64, q: &mut i8| {
        // max and min return the number where the other operand is NaN (clamp would return the NaN):
        // level is an integer in -127..=127 whatever x is.
        #[allow(clippy::manual_clamp)]
        let level = nearest((x * scale).max(-127.0).min(127.0));
        // SAFETY: level is an integer within i32 (above), so the conversion is exact.
        *q = unsafe { level.to_int_unchecked::<i32>() } as i8;
        squares[l] += level * level;
        let rest = x - s * level;
        cut[l] += rest * rest;
    };
    let (chunks, q_chunks) = (z.chunks_exact(LANES), q.chunks_exact_mut(LANES));
    let tail = chunks.remainder();
    for (chunk, q_chunk) in chunks.zip(q_chunks) {
        for l in 0..LANES {
            one(l, chunk[l], &mut q_chunk[l]);
        }
    }
    let start = z.len() - tail.len();
    for ((l, &x), q) in tail.iter().enumerate().zip(&mut q[start..]) {
        one(l, x, q);
    }
    (cut.iter().sum(), squares.iter().sum())
}

/// x rounded to the nearest integer, ties to even, for |x| <= 2^51: adding and subtracting 1.5 * 2^52
/// leaves no fraction bits, and round-to-nearest-even does the rest. `f64::round_ties_even` is a libm call
/// on a baseline x86-64 target, and took most of the row's time (512 calls per row).
fn nearest(x: f64) -> f64 {
    const SHIFT: f64 = 6_755_399_441_055_744.0;
    (x + SHIFT) - SHIFT
}

#[cfg(test)]
mod tests {
    use super::*;

    fn constants() -> SplitConstants {
        SplitConstants::from_values(&[1e-13, 1e-13, 1e-15, 20.0, 1e-3, 4e4, 1e-9, 1e3, 1.0, 1e-7])
            .unwrap()
    }

    #[test]
    fn a_row_is_its_int8_copy_within_omega() {
        let m = 37;
        let z: Vec<f64> = (0..m)
            .map(|t| ((t * 7919) % 101) as f64 * 1e-5 - 5e-4)
            .collect();
        let v: Vec<f64> = (0..m).map(|t| (t as f64 * 0.37).sin() * 0.1).collect();
        let out = split_rows(&z, &v, &[1e-6], m, m, &constants()).unwrap();
        let s = out.factors[0] * 1e-3 / (1.0 + 64.0 * U);
        let top = z.iter().fold(0.0f64, |a, x| a.max(x.abs()));
        assert!(out.q.iter().any(|&q| q.abs() == 127));
        let err: f64 = z
            .iter()
            .zip(&out.q)
            .map(|(x, &q)| (x - s * q as f64).powi(2))
            .sum::<f64>()
            .sqrt();
        let zerr = out.factors[1] * 1e-3;
        assert!(err <= zerr, "{err} > {zerr}");
        assert!((s - top / 127.0).abs() <= 1e-18);
    }

    #[test]
    fn nearest_rounds_ties_to_even_like_round_ties_even() {
        for k in -600..=600 {
            let x = k as f64 * 0.25;
            assert_eq!(nearest(x), x.round_ties_even(), "{x}");
        }
        for x in [
            127.0,
            -127.0,
            0.5,
            -0.5,
            1.5,
            126.49999999999999,
            1e-300,
            -0.0,
        ] {
            assert_eq!(nearest(x), x.round_ties_even(), "{x}");
        }
    }

    #[test]
    fn a_zero_row_and_bad_input() {
        let out = split_rows(&[0.0; 4], &[0.0; 4], &[1e-9], 4, 4, &constants()).unwrap();
        assert_eq!(out.q, vec![0; 4]);
        assert!(out.factors.iter().all(|f| f.is_finite() && *f >= 0.0));
        assert!(split_rows(&[0.0; 4], &[0.0; 3], &[1e-9], 4, 4, &constants()).is_err());
        assert!(split_rows(&[0.0; 4], &[0.0; 4], &[0.0], 4, 4, &constants()).is_err());
        assert!(split_rows(&[0.0; 4], &[0.0; 4], &[f64::NAN], 4, 4, &constants()).is_err());
        assert!(split_rows(&[0.0; 4], &[0.0; 2], &[1.0], 4, 2, &constants()).is_err());
        let nan = [0.5, f64::NAN, -0.5, 0.25];
        assert!(split_rows(&nan, &[0.1; 4], &[1e-6], 4, 4, &constants()).is_err());
        assert!(split_rows(&[0.1; 4], &nan, &[1e-6], 4, 4, &constants()).is_err());
        assert!(SplitConstants::from_values(&[1.0; 9]).is_err());
        assert!(SplitConstants::from_values(&[f64::INFINITY; 10]).is_err());
        let mut values = [1.0; 10];
        values[4] = 0.0;
        assert!(SplitConstants::from_values(&values).is_err());
    }
}
