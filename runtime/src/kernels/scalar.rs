//! The scalar reference kernels: readable, portable, and the oracle for every SIMD backend.
//!
//! Algorithms follow I-BERT (Kim et al., 2021, "I-BERT: Integer-only BERT Quantization")
//! where it keeps accuracy and the measured recipe in `shared/numerics-study.md` where it
//! does better: base-2 softmax by table with u16 probabilities, table GELU with linear
//! interpolation, LayerNorm with an integer square root. Formats are in `docs/numerics.md`.

use super::mat::{Element, Gemm, Lhs, MatMut, MatRef, Rhs};
use super::params::{LayerNormParams, LeI32s, LogitScale, Requant};
use super::tables::{EXP2_FRAC_BITS, EXP2_Q16, GELU_LIMIT_Q16, GELU_Q16, GELU_STEP_BITS};
use crate::quant::{
    FRAC_BITS, isqrt_u64, normalize, round_shift_i64, round_shift_i128, sat_i32, sat_i32_from_i64,
    shift_round_sat,
};

/// Reads the `i`-th little-endian i32 of a byte slice (0 when out of range; validated blobs
/// never are).
#[inline]
pub fn le_i32(bytes: &[u8], i: usize) -> i32 {
    match bytes.get(i * 4..i * 4 + 4) {
        Some(&[a, b, c, d]) => i32::from_le_bytes([a, b, c, d]),
        _ => 0,
    }
}

/// See [`super::Kernels::gemm`]: every operand kind, accumulated modulo 2^32.
pub fn gemm(g: Gemm<'_, '_>) {
    let (a, b, mut out) = g.parts();
    // Prepared values are read as the values they were prepared from.
    let b = match b {
        Rhs::PreparedDepths(p) => Rhs::Depths(p.raw()),
        other => other,
    };
    let b_channels = match b {
        Rhs::Channels(m) => Some(m),
        Rhs::Prepared(p) => Some(p.raw()),
        Rhs::Depths(_) | Rhs::PreparedDepths(_) => None,
    };
    match (a, b_channels, b) {
        (Lhs::I8(a), Some(b), _) => dot_rows(a, 0, b, &mut out),
        (Lhs::U8 { values, zero_point }, Some(b), _) => {
            dot_rows(values, i32::from(zero_point), b, &mut out);
        }
        (Lhs::I16(a), Some(b), _) => dot_rows(a, 0, b, &mut out),
        (Lhs::U16(a), Some(b), _) => dot_rows(a, 0, b, &mut out),
        (Lhs::I8(a), None, Rhs::Depths(v)) => weighted_rows(a, 0, v, &mut out),
        (Lhs::U8 { values, zero_point }, None, Rhs::Depths(v)) => {
            weighted_rows(values, i32::from(zero_point), v, &mut out);
        }
        (Lhs::I16(a), None, Rhs::Depths(v)) => weighted_rows(a, 0, v, &mut out),
        (Lhs::U16(a), None, Rhs::Depths(v)) => weighted_rows(a, 0, v, &mut out),
        // `b_channels` is `None` only for `Rhs::Depths`.
        _ => {}
    }
}

/// `out[r][c] = sum_k (a[r][k] - zp) * b[c][k]`: one dot product per output.
fn dot_rows<T: Element + Into<i32>>(
    a: MatRef<'_, T>,
    zp: i32,
    b: MatRef<'_, i8>,
    out: &mut MatMut<'_, i32>,
) {
    for r in 0..a.rows() {
        let a_row = a.row(r);
        for (c, o) in out.row_mut(r).iter_mut().enumerate() {
            *o = a_row.iter().zip(b.row(c)).fold(0i32, |s, (&x, &w)| {
                s.wrapping_add((x.into() - zp).wrapping_mul(i32::from(w)))
            });
        }
    }
}

/// `out[r][c] = sum_k (a[r][k] - zp) * v[k][c]`: rows of `v` weighted and summed (zero
/// weights skipped).
fn weighted_rows<T: Element + Into<i32>>(
    a: MatRef<'_, T>,
    zp: i32,
    v: MatRef<'_, i8>,
    out: &mut MatMut<'_, i32>,
) {
    for r in 0..a.rows() {
        let o = out.row_mut(r);
        o.fill(0);
        for (k, &x) in a.row(r).iter().enumerate() {
            let w = x.into() - zp;
            if w == 0 {
                continue;
            }
            for (o, &y) in o.iter_mut().zip(v.row(k)) {
                *o = o.wrapping_add(w.wrapping_mul(i32::from(y)));
            }
        }
    }
}

/// A Q.16 value times a Q.16 SmoothQuant factor: `sat(round(x * f / 2^16))`.
#[inline]
pub fn smoothed(x: i32, f: i32) -> i32 {
    sat_i32_from_i64(round_shift_i64(i64::from(x) * i64::from(f), FRAC_BITS))
}

/// Symmetric int8 quantisation of a Q.16 row multiplied element by element by SmoothQuant
/// factors (Q.16): `t = smoothed(x, f)`, `amax = max |t|`, `out = round(127 t / amax)`.
/// Returns `amax`. Elements past `factors` use factor 0 (validated blobs have one factor
/// per element).
pub fn quantize_row_i8_scaled(row: &[i32], factors: LeI32s<'_>, out: &mut [i8]) -> u32 {
    let t = |i: usize, x: i32| smoothed(x, factors.at(i));
    let amax = row
        .iter()
        .enumerate()
        .map(|(i, &x)| t(i, x).unsigned_abs())
        .max()
        .unwrap_or(0)
        .min(i32::MAX as u32);
    let r = crate::quant::i8_reciprocal(amax);
    for (i, (o, &x)) in out.iter_mut().zip(row).enumerate() {
        *o = crate::quant::quantize_i8(t(i, x), r);
    }
    amax
}

/// Symmetric int16 quantisation of a Q.16 row (W8A16), optionally smoothed as in
/// [`quantize_row_i8_scaled`]: `out = round(qmax t / amax)` in `[-qmax, qmax]`
/// (`qmax` from [`crate::quant::i16_qmax`]). Returns `amax`.
pub fn quantize_row_i16(
    row: &[i32],
    factors: Option<LeI32s<'_>>,
    qmax: i32,
    out: &mut [i16],
) -> u32 {
    let t = |i: usize, x: i32| factors.map_or(x, |f| smoothed(x, f.at(i)));
    let amax = row
        .iter()
        .enumerate()
        .map(|(i, &x)| t(i, x).unsigned_abs())
        .max()
        .unwrap_or(0)
        .min(i32::MAX as u32);
    let qmax = qmax.clamp(1, i32::from(i16::MAX));
    let r = crate::quant::reciprocal(qmax, amax);
    for (i, (o, &x)) in out.iter_mut().zip(row).enumerate() {
        *o = crate::quant::quantize_level(t(i, x), r, -qmax, qmax) as i16;
    }
    amax
}

/// Unsigned 8-bit quantisation of a Q.16 row shifted by `offset` (Q.16, non-negative):
/// `t = max(sat(x + offset), 0)`, `amax = max t`, `out = round(255 t / amax)`. Returns
/// `amax`. (For the GELU output, which is at least -0.17, with `offset` 0.17.)
pub fn quantize_row_u8_offset(row: &[i32], offset: i32, out: &mut [u8]) -> u32 {
    let t = |x: i32| x.saturating_add(offset).max(0);
    let amax = row.iter().map(|&x| t(x) as u32).max().unwrap_or(0);
    let r = crate::quant::reciprocal(255, amax);
    for (o, &x) in out.iter_mut().zip(row) {
        *o = crate::quant::quantize_level(t(x), r, 0, 255) as u8;
    }
    amax
}

/// First rounding shift of [`requantize_row`]: keeps `acc * multiplier / 2^26` within
/// i32 for every depth up to 4,160 (`16129 * depth * 2^31 / 2^26 < 2^31`).
pub const REQUANT_PRE_SHIFT: u8 = 26;

/// See [`Requant`]. Two i64 steps, so that SIMD backends can reproduce it with 32 x 32 ->
/// 64-bit multiplies: `t = sat_i32(round(acc * m_c / 2^26))`, then with
/// `amax = am * 2^ea` (`am` in `[2^30, 2^31)`, exact), `y = round(t * am / 2^(shift_c - 26 - ea))`
/// (a left shift when that is negative), saturated, plus `bias_c`, saturated.
pub fn requantize_row(acc: &[i32], amax: u32, rq: &Requant<'_>, out: &mut [i32]) {
    let (am, ea) = normalize(u64::from(amax));
    let (multiplier, shifts, bias) = (rq.multiplier(), rq.shift(), rq.bias());
    for (c, (o, &a)) in out.iter_mut().zip(acc).enumerate() {
        let mult = i64::from(multiplier.at(c));
        let shift = i32::from(shifts.get(c).copied().unwrap_or(0));
        let t = sat_i32_from_i64(round_shift_i64(
            i64::from(a) * mult,
            REQUANT_PRE_SHIFT.into(),
        ));
        let y = shift_round_sat(i64::from(t) * am, shift - i32::from(REQUANT_PRE_SHIFT) - ea);
        *o = y.saturating_add(bias.map_or(0, |b| b.at(c)));
    }
}

/// See [`super::Kernels::attention_logits_row`]: with `q_amax * multiplier = cm * 2^ce`
/// (`cm` in `[2^30, 2^31)`), `z[j] = round(acc[j] * cm / 2^(shift - ce - k_exp[j]))`,
/// saturated. `|acc| < 2^27` keeps the product below 2^58.
pub fn attention_logits_row(acc: &mut [i32], q_amax: u32, k_exp: &[u32], scale: LogitScale) {
    let (cm, ce) = normalize(u64::from(q_amax) * scale.multiplier.unsigned_abs() as u64);
    let base = i32::from(scale.shift) - ce;
    for (z, &e) in acc.iter_mut().zip(k_exp) {
        *z = shift_round_sat(i64::from(*z) * cm, base - e.min(31) as i32);
    }
}

/// The factor that turns a row's `p . v` accumulators into Q.16: `ctx = round(acc * factor_q32 / 2^32)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PvScale {
    /// Q.32 factor, non-negative.
    pub factor_q32: i64,
}

impl PvScale {
    /// Applies the factor to one accumulator.
    #[inline]
    pub fn apply(self, acc: i32) -> i32 {
        sat_i32(round_shift_i128(
            i128::from(acc) * i128::from(self.factor_q32),
            32,
        ))
    }
}

/// See [`super::Kernels::pv_scale_row`]: [`PvScale::apply`] on every element.
pub fn pv_scale_row(acc: &[i32], scale: PvScale, out: &mut [i32]) {
    for (o, &a) in out.iter_mut().zip(acc) {
        *o = scale.apply(a);
    }
}

/// Probability scale: probabilities are u16 with 65,535 standing for 1.
pub const P_ONE: u64 = 65_535;

/// Fixed-point softmax with the value ranges folded in.
///
/// `logits[j]` is `log2(e) * score_j` in Q.8. With `d_j = max - logits[j]`,
/// `e_j = EXP2_Q16[d_j mod 256] >> (d_j / 256)` approximates `2^16 * 2^(-d_j / 256)`.
/// Key `j`'s int8 value row has range `v_amax[j]` (Q.16), so the weight of its int8 row is
/// `w_j = e_j * v_amax[j] / 2^16`; the probabilities are `p_j = round(65535 * w_j / S)`
/// with `S = sum w_j`, rounded (never floored), via one reciprocal per row. Then
/// `sum_j softmax_j * V_j = (sum_j p_j v_j) * S * 2^16 / (65535 * 127 * E)` with
/// `E = sum e_j`, which is the returned factor in Q.32.
pub fn softmax_row(logits: &[i32], v_amax: &[u32], p: &mut [u16]) -> PvScale {
    let max = logits.iter().copied().max().unwrap_or(0);
    let mut e_sum: u64 = 0;
    let mut w_sum: u64 = 0;
    // First pass: weights into `p` is impossible (u16), so compute twice; the exp is a
    // table lookup and a shift, cheaper than a second buffer.
    for (&z, &va) in logits.iter().zip(v_amax) {
        let e = exp2_neg_q16(i64::from(max) - i64::from(z));
        e_sum += e;
        w_sum += (e * u64::from(va)) >> 16;
    }
    if w_sum == 0 {
        p.fill(0);
        return PvScale::default();
    }
    let reciprocal = (P_ONE << 32) / w_sum;
    for ((pj, &z), &va) in p.iter_mut().zip(logits).zip(v_amax) {
        let e = exp2_neg_q16(i64::from(max) - i64::from(z));
        let w = (e * u64::from(va)) >> 16;
        let q = (w * reciprocal + (1 << 31)) >> 32;
        *pj = q.min(P_ONE) as u16;
    }
    let num = u128::from(w_sum) << (FRAC_BITS + 32);
    let den = u128::from(P_ONE) * 127 * u128::from(e_sum);
    let factor = num / den;
    PvScale {
        factor_q32: i64::try_from(factor).unwrap_or(i64::MAX),
    }
}

/// `2^16 * 2^(-d / 256)` for `d >= 0` in Q.8, by table and shift (0 once it underflows).
#[inline]
pub fn exp2_neg_q16(d: i64) -> u64 {
    let int = d >> EXP2_FRAC_BITS;
    if int > 16 {
        return 0;
    }
    let frac = (d & ((1 << EXP2_FRAC_BITS) - 1)) as usize;
    u64::from(EXP2_Q16.get(frac).copied().unwrap_or(0)) >> int
}

/// LayerNorm of a Q.16 row in place: `y = (x - mean) / sqrt(var + eps) * gamma + beta`.
///
/// Mean rounded to Q.16, variance as an exact i128 sum in Q.32 divided by `d`, standard
/// deviation by integer square root (Q.16), one reciprocal per row
/// (`r = floor(2^48 / std)`), then per element `z = round((x - mean) * r / 2^32)` (Q.16)
/// and `y = round(z * gamma / 2^16) + beta`, saturated.
pub fn layer_norm_row(row: &mut [i32], ln: &LayerNormParams<'_>) {
    let (gamma, beta, eps_q32) = (ln.gamma(), ln.beta(), ln.eps_q32());
    let d = row.len() as i64;
    if d == 0 {
        return;
    }
    let sum: i64 = row.iter().map(|&x| i64::from(x)).sum();
    let mean = sum.div_euclid(d) + i64::from(sum.rem_euclid(d) * 2 >= d);
    let sq: i128 = row
        .iter()
        .map(|&x| {
            let c = i128::from(i64::from(x) - mean);
            c * c
        })
        .sum();
    let var = u64::try_from(sq / i128::from(d)).unwrap_or(u64::MAX);
    let std = isqrt_u64(var.saturating_add(eps_q32)).max(1);
    let r = (1u128 << 48) / u128::from(std);
    for (c, x) in row.iter_mut().enumerate() {
        let centred = i128::from(i64::from(*x) - mean);
        let z = round_shift_i128(centred * r as i128, 32);
        let y =
            round_shift_i128(z * i128::from(gamma.at(c)), FRAC_BITS as u8) + i128::from(beta.at(c));
        *x = sat_i32(y);
    }
}

/// GELU (`x * Phi(x)`, the erf form) of a Q.16 row in place.
///
/// Inside `[-8, 8)` a table of GELU at steps of `2^-GELU_STEP_BITS` with linear
/// interpolation (error below 2e-5); above, `x`; below, 0.
pub fn gelu_row(row: &mut [i32]) {
    for x in row.iter_mut() {
        *x = gelu_q16(*x);
    }
}

/// GELU of one Q.16 value; see [`gelu_row`].
#[inline]
pub fn gelu_q16(x: i32) -> i32 {
    if x >= GELU_LIMIT_Q16 {
        return x;
    }
    if x < -GELU_LIMIT_Q16 {
        return 0;
    }
    let u = (x + GELU_LIMIT_Q16) as u32;
    let step = FRAC_BITS - GELU_STEP_BITS;
    let i = (u >> step) as usize;
    let frac = i64::from(u & ((1 << step) - 1));
    let t0 = i64::from(GELU_Q16.get(i).copied().unwrap_or(0));
    let t1 = i64::from(GELU_Q16.get(i + 1).copied().unwrap_or(0));
    (t0 + round_shift_i64((t1 - t0) * frac, step)) as i32
}

#[cfg(test)]
mod tests {
    extern crate alloc;
    use super::*;
    use alloc::vec;

    fn q16(x: f64) -> i32 {
        (x * 65536.0).round() as i32
    }

    fn gelu_exact(x: f64) -> f64 {
        // erf by its Taylor series (converges well for |x| < 6 / sqrt 2 in f64).
        let z = x / core::f64::consts::SQRT_2;
        let mut term = z;
        let mut sum = z;
        for n in 1..200 {
            term *= -z * z / n as f64;
            sum += term / (2 * n + 1) as f64;
        }
        let erf = sum * 2.0 / core::f64::consts::PI.sqrt();
        0.5 * x * (1.0 + erf)
    }

    #[test]
    fn gelu_table_matches_erf_gelu() {
        let mut worst: f64 = 0.0;
        for k in -6000..6000 {
            let x = k as f64 / 1000.0;
            let got = gelu_q16(q16(x)) as f64 / 65536.0;
            worst = worst.max((got - gelu_exact(x)).abs());
        }
        assert!(worst < 4e-5, "max error {worst}");
        assert_eq!(gelu_q16(q16(10.0)), q16(10.0));
        assert_eq!(gelu_q16(q16(-10.0)), 0);
        assert_eq!(gelu_q16(i32::MIN), 0);
        assert_eq!(gelu_q16(i32::MAX), i32::MAX);
    }

    #[test]
    fn exp2_table_is_accurate() {
        for d in 0..(17 * 256) {
            let got = exp2_neg_q16(d) as f64;
            let want = 65536.0 * (2f64).powf(-(d as f64) / 256.0);
            // Table rounding (0.5) then the shift's floor (< 1).
            assert!((got - want).abs() <= 1.5, "d {d}: {got} vs {want}");
        }
        assert_eq!(exp2_neg_q16(0), 65536);
        assert_eq!(exp2_neg_q16(1 << 40), 0);
    }

    #[test]
    fn softmax_matches_float() {
        let scores = [0.3f64, -1.2, 2.5, 2.4, -7.0, 0.0];
        let v_amax = [65536u32, 131072, 65536, 32768, 65536, 65536];
        let logits: vec::Vec<i32> = scores
            .iter()
            .map(|s| (s * core::f64::consts::LOG2_E * 256.0).round() as i32)
            .collect();
        let mut p = [0u16; 6];
        let scale = softmax_row(&logits, &v_amax, &mut p);
        let e: vec::Vec<f64> = scores.iter().map(|s| s.exp()).collect();
        let total: f64 = e.iter().sum();
        // A value row of all-127 int8 stands for v_amax / 2^16 in every channel.
        let mut acc = 0i64;
        for &pj in &p {
            acc += i64::from(pj) * 127;
        }
        let got = scale.apply(acc as i32) as f64 / 65536.0;
        let want: f64 = e
            .iter()
            .zip(&v_amax)
            .map(|(ej, &va)| ej / total * va as f64 / 65536.0)
            .sum();
        assert!((got - want).abs() < 1e-3, "{got} vs {want}");
        assert!(p.iter().map(|&x| u64::from(x)).sum::<u64>().abs_diff(P_ONE) <= 3);
    }

    #[test]
    fn softmax_of_zero_values_is_zero() {
        let mut p = [7u16; 3];
        let s = softmax_row(&[1, 2, 3], &[0, 0, 0], &mut p);
        assert_eq!(p, [0, 0, 0]);
        assert_eq!(s.apply(1000), 0);
    }

    #[test]
    fn layer_norm_matches_float() {
        let xs = [1.5f64, -0.25, 3.0, 0.125, -2.0, 0.0, 4.5, -1.0];
        let mut row: vec::Vec<i32> = xs.iter().map(|&x| q16(x)).collect();
        let gamma: vec::Vec<u8> = xs
            .iter()
            .enumerate()
            .flat_map(|(i, _)| q16(0.5 + i as f64 * 0.1).to_le_bytes())
            .collect();
        let beta: vec::Vec<u8> = xs
            .iter()
            .enumerate()
            .flat_map(|(i, _)| q16(i as f64 * 0.01 - 0.02).to_le_bytes())
            .collect();
        layer_norm_row(&mut row, &ln(&gamma, &beta, 1));
        let mean = xs.iter().sum::<f64>() / 8.0;
        let var = xs.iter().map(|x| (x - mean) * (x - mean)).sum::<f64>() / 8.0;
        for (i, (&x, &got)) in xs.iter().zip(&row).enumerate() {
            let want = (x - mean) / var.sqrt() * (0.5 + i as f64 * 0.1) + (i as f64 * 0.01 - 0.02);
            assert!((got as f64 / 65536.0 - want).abs() < 1e-4, "{i}");
        }
    }

    #[test]
    fn layer_norm_survives_extremes() {
        let mut row = [i32::MAX, i32::MIN, i32::MAX, i32::MIN];
        let g = 65536i32.to_le_bytes().repeat(4);
        let b = 0i32.to_le_bytes().repeat(4);
        layer_norm_row(&mut row, &ln(&g, &b, 1));
        assert!(row[0] > 65000 && row[1] < -65000, "{row:?}");
        let mut flat = [5i32; 4];
        layer_norm_row(&mut flat, &ln(&g, &b, 1));
        assert_eq!(flat, [0; 4]);
    }

    fn ln<'a>(g: &'a [u8], b: &'a [u8], eps: u64) -> LayerNormParams<'a> {
        let (g, b) = (LeI32s::new(g).unwrap(), LeI32s::new(b).unwrap());
        LayerNormParams::new(g, b, eps).unwrap()
    }

    /// Every operand kind against a naive sum over `value(r, k) * at(c, k)`.
    #[test]
    fn gemm_matches_naive() {
        let a8: vec::Vec<i8> = (0..12).map(|i| (i * 37 % 255 - 127) as i8).collect();
        let au8: vec::Vec<u8> = (0..12).map(|i| (i * 53 % 256) as u8).collect();
        let a16: vec::Vec<i16> = (0..12).map(|i| (i * 3001 % 20000 - 10000) as i16).collect();
        let au16: vec::Vec<u16> = (0..12).map(|i| (i * 7919 % 65536) as u16).collect();
        let b: vec::Vec<i8> = (0..20).map(|i| (i * 91 % 255 - 127) as i8).collect();
        let lhs = [
            Lhs::I8(MatRef::contiguous(&a8, 3, 4).unwrap()),
            Lhs::U8 {
                values: MatRef::contiguous(&au8, 3, 4).unwrap(),
                zero_point: 77,
            },
            Lhs::I16(MatRef::contiguous(&a16, 3, 4).unwrap()),
            Lhs::U16(MatRef::contiguous(&au16, 3, 4).unwrap()),
        ];
        let rhs = [
            Rhs::Channels(MatRef::contiguous(&b, 5, 4).unwrap()),
            Rhs::Depths(MatRef::contiguous(&b, 4, 5).unwrap()),
        ];
        for a in lhs {
            for b in rhs {
                let mut out = [0i32; 15];
                gemm(Gemm::new(a, b, MatMut::contiguous(&mut out, 3, 5).unwrap()).unwrap());
                for r in 0..3 {
                    for c in 0..5 {
                        let want: i32 = (0..4).map(|k| a.value(r, k) * i32::from(b.at(c, k))).sum();
                        assert_eq!(out[r * 5 + c], want, "{a:?} {b:?} ({r}, {c})");
                    }
                }
            }
        }
    }
}
