//! The per-row passes for 32-bit cores, bit-identical to `microbert::kernels::scalar`.
//!
//! The scalar reference computes in `i64`/`i128` so that it is obviously exact for every
//! input. On a 32-bit core those are multi-instruction operations (an `i128` product is a
//! library call), and after the SIMD GEMM the row passes were most of the instructions of
//! an inference (requantisation alone 25%). Each function here takes the same inputs,
//! bounds its intermediates once per row or per element, and computes with 32 x 32 -> 64
//! multiplies (`SMULL`, `SMMULR`, `SMLAL` on Cortex-M) where the bounds allow, falling back
//! to the reference's own formula (or function) where they do not. The bounds are stated
//! at each step; the host tests below compare every function with the reference on random
//! and extreme rows, and the conformance suite does on the targets.

use microbert::kernels::scalar::P_ONE;
use microbert::kernels::tables::{EXP2_Q16, GELU_LIMIT_Q16, GELU_Q16, GELU_STEP_BITS};
use microbert::kernels::{LayerNormParams, LogitScale, PvScale, Requant, scalar};
use microbert::quant::{
    FRAC_BITS, I8_MAX, amax, i8_reciprocal, isqrt_u64, normalize, quantize_i8, round_shift_i64,
    shift_round_sat,
};

/// `round(a b / 2^32)` (halves up): `SMMULR` on Arm, which the compiler does not pick by
/// itself once the same expression also appears with a 64-bit operand.
#[inline(always)]
fn mul_high_round(a: i32, b: i32) -> i32 {
    #[cfg(target_arch = "arm")]
    {
        let r: i32;
        // SAFETY: one DSP-extension multiply on registers (this module is built only with
        // the `dsp` feature, which states the core has the extension); no memory, no flags.
        unsafe {
            core::arch::asm!(
                "smmulr {r}, {a}, {b}",
                r = lateout(reg) r,
                a = in(reg) a,
                b = in(reg) b,
                options(pure, nomem, nostack, preserves_flags),
            );
        }
        r
    }
    #[cfg(not(target_arch = "arm"))]
    {
        ((i64::from(a) * i64::from(b) + (1 << 31)) >> 32) as i32
    }
}

/// `floor(a b / 2^32)`: `SMMUL` on Arm.
#[inline(always)]
fn mul_high(a: i32, b: i32) -> i32 {
    #[cfg(target_arch = "arm")]
    {
        let r: i32;
        // SAFETY: as in `mul_high_round`.
        unsafe {
            core::arch::asm!(
                "smmul {r}, {a}, {b}",
                r = lateout(reg) r,
                a = in(reg) a,
                b = in(reg) b,
                options(pure, nomem, nostack, preserves_flags),
            );
        }
        r
    }
    #[cfg(not(target_arch = "arm"))]
    {
        ((i64::from(a) * i64::from(b)) >> 32) as i32
    }
}

/// `shift_round_sat(a * b, s)` for `b` in `[0, 2^31)` (so `|a * b| < 2^62`).
///
/// For `33 <= s <= 62`, with `a * b = hi * 2^32 + lo` (`lo` unsigned) and `u = s - 32`:
/// `floor((a b + 2^(s-1)) / 2^s) = floor((hi + 2^(u-1) + lo / 2^32) / 2^u)`, and since
/// `hi + 2^(u-1)` is an integer and `lo / 2^32 < 1`, that is `round_shift(hi, u)`: the high
/// word only (`SMMUL`), and it fits `i32`, so there is nothing to saturate. Other shifts use
/// the reference's formula.
#[inline]
fn shift_round_sat_product(a: i32, b: i32, s: i32) -> i32 {
    match high_word_shift(a, b, s - 32) {
        Some(y) => y,
        None => shift_round_sat(i64::from(a) * i64::from(b), s),
    }
}

/// The fast case of [`shift_round_sat_product`]: `round_shift(hi, u)` for `1 <= u <= 30`
/// (`s = u + 32`); `|hi| < 2^30`, so adding `2^(u-1)` cannot overflow.
#[inline(always)]
fn high_word_shift(a: i32, b: i32, u: i32) -> Option<i32> {
    if (u - 1) as u32 >= 30 {
        return None;
    }
    Some((mul_high(a, b) + (1 << (u - 1))) >> u)
}

/// `sat_i32(round(a * m / 2^26))` for any `a`, `m`: `|a m| <= 2^62`, so adding `2^25` cannot
/// overflow; the shifted value fits `i32` exactly when the high word is in `[-2^25, 2^25)`.
#[inline]
fn round_sat_shift26(a: i32, m: i32) -> i32 {
    let p = (i64::from(a) * i64::from(m)) + (1 << 25);
    let hi = (p >> 32) as i32;
    if (hi as u32).wrapping_add(1 << 25) < (1 << 26) {
        ((p as u32 >> 26) | ((hi as u32) << 6)) as i32
    } else if hi < 0 {
        i32::MIN
    } else {
        i32::MAX
    }
}

/// The little-endian `i32` of a 4-byte chunk (from `chunks_exact(4)`: no bounds checks).
///
/// Blob tensors have no alignment, and rustc's Cortex-M targets are `+strict-align`, so the
/// compiler reads such a word with 4 byte loads; on Arm one `LDR` reads it (Armv7-M and
/// Armv8-M load unaligned words in hardware unless `CCR.UNALIGN_TRP` is set, which no
/// microbert firmware does: it is clear out of reset).
#[inline(always)]
fn le(c: &[u8]) -> i32 {
    #[cfg(target_arch = "arm")]
    if c.len() == 4 {
        let r: i32;
        // SAFETY: `c` holds 4 readable bytes; an unaligned `LDR` is architecturally defined
        // on the M-profile cores this crate targets with `UNALIGN_TRP` clear (above). Little
        // endian, as the blob stores it.
        unsafe {
            core::arch::asm!(
                "ldr {r}, [{p}]",
                r = lateout(reg) r,
                p = in(reg) c.as_ptr(),
                options(pure, readonly, nostack, preserves_flags),
            );
        }
        return r;
    }
    i32::from_le_bytes([c[0], c[1], c[2], c[3]])
}

/// One requantised value (see [`requantize_row`]), bias not added.
#[inline(always)]
fn requantize_one(a: i32, m: i32, shift: u8, am: i32, ea: i32) -> i32 {
    let p = i64::from(a) * i64::from(m) + (1 << 25);
    let hi = (p >> 32) as i32;
    if (hi as u32).wrapping_add(1 << 25) < (1 << 26) {
        let t = ((p as u32 >> 26) | ((hi as u32) << 6)) as i32;
        if let Some(y) = high_word_shift(t, am, i32::from(shift) - 58 - ea) {
            return y;
        }
    }
    requantize_slow(a, m, shift, am, ea)
}

/// [`requantize_one`] when the first step saturates or the second shift is not in `33..=62`.
#[cold]
#[inline(never)]
fn requantize_slow(a: i32, m: i32, shift: u8, am: i32, ea: i32) -> i32 {
    let t = round_sat_shift26(a, m);
    shift_round_sat_product(t, am, i32::from(shift) - 26 - ea)
}

/// See `scalar::requantize_row`: `t = sat(round(acc m_c / 2^26))`, then
/// `y = shift_round_sat(t am, shift_c - 26 - ea) + bias_c` (saturating).
pub fn requantize_row(acc: &[i32], amax: u32, rq: &Requant<'_>, out: &mut [i32]) {
    let (am, ea) = normalize(u64::from(amax));
    // `normalize` gives a mantissa in [2^30, 2^31), or 0.
    let am = am as i32;
    let n = out.len().min(acc.len());
    let channels = rq.channels().min(n);
    let (out_c, acc_c) = (&mut out[..channels], &acc[..channels]);
    let (m, shift) = (rq.multiplier().as_bytes().chunks_exact(4), rq.shift());
    match rq.bias() {
        Some(bias) => {
            let b = bias.as_bytes().chunks_exact(4);
            for ((((o, &a), m), &shift), b) in out_c.iter_mut().zip(acc_c).zip(m).zip(shift).zip(b)
            {
                *o = requantize_one(a, le(m), shift, am, ea).saturating_add(le(b));
            }
        }
        None => {
            for (((o, &a), m), &shift) in out_c.iter_mut().zip(acc_c).zip(m).zip(shift) {
                *o = requantize_one(a, le(m), shift, am, ea);
            }
        }
    }
    // Past the parameters the multiplier, shift and bias are zero, and so is the result.
    out[channels..n].fill(0);
}

/// See `microbert::quant::quantize_row_i8`: `q = clamp(round(x r / 2^32))` with the row's
/// reciprocal `r = round(127 2^32 / amax)`. When `r < 2^31` (`amax >= 255`) the product of
/// two `i32` cannot overflow and the rounding is the high word of `x r + 2^31` (`SMMULR`).
pub fn quantize_row_i8(row: &[i32], out: &mut [i8]) -> u32 {
    let a = amax(row);
    let r = i8_reciprocal(a);
    if let Ok(r) = i32::try_from(r) {
        for (o, &x) in out.iter_mut().zip(row) {
            *o = mul_high_round(x, r).clamp(-I8_MAX, I8_MAX) as i8;
        }
    } else {
        for (o, &x) in out.iter_mut().zip(row) {
            *o = quantize_i8(x, r);
        }
    }
    a
}

/// See `microbert::quant::quantize_row_pow2`: the same exponent search, then
/// `round(x / 2^e)` in `i32`.
pub fn quantize_row_pow2(row: &[i32], out: &mut [i8]) -> u32 {
    let a = i64::from(amax(row));
    let mut e = 0u32;
    while e < 31 && round_shift_i64(a, e) > i64::from(I8_MAX) {
        e += 1;
    }
    // `round(x / 2^e) = (y >> 1) + (y & 1)` with `y = x >> (e - 1)`: one variable shift.
    // (Written as two variable shifts of `x`, LLVM 22's Helium auto-vectoriser miscompiles
    // the loop: it shifts `x` in place with the tied `VSHL Qda, Rm` and then shifts a stale
    // register for the rounding bit.)
    let s = e.saturating_sub(1);
    for (o, &x) in out.iter_mut().zip(row) {
        let q = if e == 0 {
            x
        } else {
            let y = x >> s;
            (y >> 1) + (y & 1)
        };
        *o = q.clamp(-I8_MAX, I8_MAX) as i8;
    }
    e
}

/// See `scalar::attention_logits_row`: `shift_round_sat(acc cm, shift - ce - k_exp)` with
/// the row's mantissa `cm` in `[2^30, 2^31)`.
pub fn attention_logits_row(acc: &mut [i32], q_amax: u32, k_exp: &[u32], scale: LogitScale) {
    let (cm, ce) = normalize(u64::from(q_amax) * u64::from(scale.multiplier.unsigned_abs()));
    let (cm, base) = (cm as i32, i32::from(scale.shift) - ce);
    for (z, &e) in acc.iter_mut().zip(k_exp) {
        *z = shift_round_sat_product(*z, cm, base - e.min(31) as i32);
    }
}

/// See `scalar::pv_scale_row`: `sat(round(acc f / 2^32))`. For `0 <= f < 2^31` the product
/// fits `i64` (`|acc f| < 2^62`), the result fits `i32`, and the rounding is the high word
/// of `acc f + 2^31`; other factors use the reference.
pub fn pv_scale_row(acc: &[i32], scale: PvScale, out: &mut [i32]) {
    let Ok(f) = i32::try_from(scale.factor_q32) else {
        return scalar::pv_scale_row(acc, scale, out);
    };
    if f < 0 {
        return scalar::pv_scale_row(acc, scale, out);
    }
    for (o, &a) in out.iter_mut().zip(acc) {
        *o = mul_high_round(a, f);
    }
}

/// The largest step between neighbours of the GELU table (checked when compiling).
const GELU_MAX_STEP: i64 = {
    let mut i = 1;
    let mut max = 0i64;
    while i < GELU_Q16.len() {
        let d = (GELU_Q16[i] as i64 - GELU_Q16[i - 1] as i64).abs();
        if d > max {
            max = d;
        }
        i += 1;
    }
    max
};
/// Bits of the interpolation fraction.
const GELU_FRAC_BITS: u32 = FRAC_BITS - GELU_STEP_BITS;
// `(t1 - t0) * frac` with `frac < 2^GELU_FRAC_BITS` stays far inside `i32`.
const _: () = assert!(GELU_MAX_STEP << GELU_FRAC_BITS < 1 << 30);

/// See `scalar::gelu_row`: the same table and interpolation, in `i32` (the table's steps
/// times the fraction stay below 2^30, asserted at compile time).
pub fn gelu_row(row: &mut [i32]) {
    for x in row.iter_mut() {
        let v = *x;
        *x = if v >= GELU_LIMIT_Q16 {
            v
        } else if v < -GELU_LIMIT_Q16 {
            0
        } else {
            let u = (v + GELU_LIMIT_Q16) as u32;
            let i = (u >> GELU_FRAC_BITS) as usize;
            let frac = (u & ((1 << GELU_FRAC_BITS) - 1)) as i32;
            // `u < 2 GELU_LIMIT_Q16`, so `i + 1` is within the table.
            let (t0, t1) = match GELU_Q16.get(i..i + 2) {
                Some(&[t0, t1]) => (t0, t1),
                _ => (0, 0),
            };
            t0 + (((t1 - t0) * frac + (1 << (GELU_FRAC_BITS - 1))) >> GELU_FRAC_BITS)
        };
    }
}

/// See `scalar::layer_norm_row`. One pass takes the sum, minimum and maximum; when every
/// centred value `c = x - mean` is below `2^31` and `d c^2` below `2^63`, the variance is
/// an `i64` sum of `i32` squares (`SMLAL`) and, when `max|c| * r < 2^62` for the row's
/// reciprocal `r = floor(2^48 / std) <= 2^48`, `z = round(c r / 2^32)` fits `i32` and
/// `round(z gamma / 2^16) + beta` is an `i64` expression: the reference's values exactly.
/// Other rows (huge ranges) and parameters shorter than the row use the reference.
pub fn layer_norm_row(row: &mut [i32], ln: &LayerNormParams<'_>) {
    let (gamma, beta) = (ln.gamma(), ln.beta());
    let d = row.len();
    if d == 0 || gamma.len() < d || beta.len() < d {
        return scalar::layer_norm_row(row, ln);
    }
    let (mut sum, mut lo, mut hi) = (0i64, i32::MAX, i32::MIN);
    for &x in row.iter() {
        sum += i64::from(x);
        lo = lo.min(x);
        hi = hi.max(x);
    }
    let range = (i64::from(hi) - i64::from(lo)) as u64;
    let d64 = d as i64;
    let fits = range < 1 << 31 && u128::from(range) * u128::from(range) * (d as u128) < 1 << 63;
    if !fits {
        return scalar::layer_norm_row(row, ln);
    }
    let mean = sum.div_euclid(d64) + i64::from(sum.rem_euclid(d64) * 2 >= d64);
    // `lo <= mean <= hi`, so every centred value is within `range < 2^31` of zero.
    let mean = mean as i32;
    let mut sq = 0i64;
    for &x in row.iter() {
        let c = x.wrapping_sub(mean);
        sq += i64::from(c) * i64::from(c);
    }
    let var = sq as u64 / d as u64;
    let std = isqrt_u64(var.saturating_add(ln.eps_q32())).max(1);
    let r = (1u64 << 48) / std;
    if u128::from(range) * u128::from(r) >= 1 << 62 {
        return scalar::layer_norm_row(row, ln);
    }
    let (gb, bb) = (gamma.as_bytes(), beta.as_bytes());
    let scale = |z: i32, g: &[u8], b: &[u8]| {
        let (g, b) = (le(g), le(b));
        let y = ((i64::from(z) * i64::from(g) + (1 << 15)) >> 16) + i64::from(b);
        y.clamp(i64::from(i32::MIN), i64::from(i32::MAX)) as i32
    };
    if let Ok(r) = i32::try_from(r) {
        // `round(c r / 2^32)` of two `i32`: the high word of `c r + 2^31`.
        for ((x, g), b) in row
            .iter_mut()
            .zip(gb.chunks_exact(4))
            .zip(bb.chunks_exact(4))
        {
            *x = scale(mul_high_round(x.wrapping_sub(mean), r), g, b);
        }
    } else {
        let r = r as i64;
        for ((x, g), b) in row
            .iter_mut()
            .zip(gb.chunks_exact(4))
            .zip(bb.chunks_exact(4))
        {
            let c = i64::from(x.wrapping_sub(mean));
            *x = scale(((c * r + (1 << 31)) >> 32) as i32, g, b);
        }
    }
}

/// `2^16 * 2^(-(max - z) / 256)` as `scalar::exp2_neg_q16` computes it (`max >= z`, so the
/// difference fits `u32`).
#[inline]
fn exp2_neg(max: i32, z: i32) -> u32 {
    let d = (i64::from(max) - i64::from(z)) as u32;
    let int = d >> 8;
    if int > 16 {
        return 0;
    }
    EXP2_Q16.get((d & 0xff) as usize).map_or(0, |&e| e >> int)
}

/// See `scalar::softmax_row`: the same weights `w_j = e_j v_j / 2^16` (`e_j <= 2^16` and
/// `v_j < 2^32`, so `w_j < 2^32`), the same reciprocal, and `w_j r <= 65535 * 2^32` because
/// `w_j <= sum w`. The context factor `floor(sum w * 2^48 / (65535 * 127 * sum e))` is a long
/// division in 16-bit steps when the divisor is below 2^48 (every partial remainder then
/// stays below 2^64), the reference's `u128` division otherwise.
pub fn softmax_row(logits: &[i32], v_amax: &[u32], p: &mut [u16]) -> PvScale {
    let max = logits.iter().copied().max().unwrap_or(0);
    let (mut e_sum, mut w_sum) = (0u64, 0u64);
    for (&z, &va) in logits.iter().zip(v_amax) {
        let e = exp2_neg(max, z);
        e_sum += u64::from(e);
        w_sum += (u64::from(e) * u64::from(va)) >> 16;
    }
    if w_sum == 0 {
        p.fill(0);
        return PvScale::default();
    }
    let reciprocal = (P_ONE << 32) / w_sum;
    for ((pj, &z), &va) in p.iter_mut().zip(logits).zip(v_amax) {
        let w = (u64::from(exp2_neg(max, z)) * u64::from(va)) >> 16;
        let q = (w * reciprocal + (1 << 31)) >> 32;
        *pj = q.min(P_ONE) as u16;
    }
    PvScale {
        factor_q32: context_factor(w_sum, e_sum),
    }
}

/// `floor(w_sum * 2^48 / (65535 * 127 * e_sum))` saturated to `i64` (`e_sum >= 1`).
fn context_factor(w_sum: u64, e_sum: u64) -> i64 {
    let den = u128::from(P_ONE) * 127 * u128::from(e_sum);
    if let Ok(d) = u64::try_from(den)
        && d < 1 << 48
        && w_sum / d < 1 << 15
    {
        let (mut q, mut r) = (w_sum / d, w_sum % d);
        for _ in 0..3 {
            r <<= 16;
            q = (q << 16) | (r / d);
            r %= d;
        }
        // `q < 2^15 * 2^48`: an `i64`.
        return q as i64;
    }
    let num = u128::from(w_sum) << (FRAC_BITS + 32);
    i64::try_from(num / den).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    //! Every pass against the reference on random, extreme and edge rows. The conformance
    //! suite covers the same on the targets; these run more cases, on the host.
    extern crate std;
    use super::*;
    use microbert::kernels::LeI32s;
    use microbert::kernels::testing::Rng;
    use std::vec;
    use std::vec::Vec;

    /// A row of `n` values of magnitude up to `scale`, extremes mixed in.
    fn row(rng: &mut Rng, n: usize, scale: i64) -> Vec<i32> {
        (0..n)
            .map(|_| match rng.next_u64() % 16 {
                0 => i32::MAX,
                1 => i32::MIN,
                2 => 0,
                _ => rng.range(-scale, scale) as i32,
            })
            .collect()
    }

    const SCALES: [i64; 9] = [
        0,
        1,
        200,
        1 << 16,
        1 << 20,
        1 << 24,
        1 << 27,
        1 << 30,
        i32::MAX as i64,
    ];

    fn le(values: &[i32]) -> Vec<u8> {
        values.iter().flat_map(|v| v.to_le_bytes()).collect()
    }

    #[test]
    fn quantisations_match() {
        let mut rng = Rng::new(11);
        for case in 0..4000 {
            let n = rng.range(0, 70) as usize;
            let mut x = row(&mut rng, n, SCALES[case % SCALES.len()]);
            if case % 3 == 0 {
                x.retain(|&v| v != i32::MIN && v != i32::MAX);
            }
            let (mut a, mut b) = (vec![0i8; x.len()], vec![0i8; x.len()]);
            assert_eq!(
                quantize_row_i8(&x, &mut a),
                microbert::quant::quantize_row_i8(&x, &mut b)
            );
            assert_eq!(a, b, "i8 {x:?}");
            assert_eq!(
                quantize_row_pow2(&x, &mut a),
                microbert::quant::quantize_row_pow2(&x, &mut b)
            );
            assert_eq!(a, b, "pow2 {x:?}");
        }
    }

    #[test]
    fn requantisation_and_logits_match() {
        let mut rng = Rng::new(12);
        for case in 0..3000 {
            let n = rng.range(0, 40) as usize;
            let channels = if case % 7 == 0 { n / 2 } else { n };
            let acc = row(&mut rng, n, SCALES[case % SCALES.len()]);
            let m: Vec<i32> = (0..channels)
                .map(|_| match rng.next_u64() % 4 {
                    0 => i32::MAX,
                    1 => rng.range(1 << 30, i32::MAX as i64) as i32,
                    _ => rng.range(0, i32::MAX as i64) as i32,
                })
                .collect();
            let shift: Vec<u8> = (0..channels).map(|_| rng.range(0, 96) as u8).collect();
            let bias = le(&row(&mut rng, channels, 1 << 30));
            let m = le(&m);
            let amax = match case % 5 {
                0 => 0,
                1 => u32::MAX,
                2 => rng.range(1 << 31, u32::MAX as i64) as u32,
                _ => rng.range(0, i32::MAX as i64) as u32,
            };
            let (mult, bias) = (LeI32s::new(&m).unwrap(), LeI32s::new(&bias).unwrap());
            for rq in [
                Requant::new(mult, &shift, Some(bias)).unwrap(),
                Requant::new(mult, &shift, None).unwrap(),
            ] {
                let (mut a, mut b) = (vec![7i32; n], vec![7i32; n]);
                requantize_row(&acc, amax, &rq, &mut a);
                scalar::requantize_row(&acc, amax, &rq, &mut b);
                assert_eq!(a, b, "requantize case {case}");
            }
            let k_exp: Vec<u32> = (0..n).map(|_| rng.range(0, 40) as u32).collect();
            let scale = LogitScale {
                multiplier: rng.range(0, i32::MAX as i64) as i32,
                shift: rng.range(0, 96) as u8,
            };
            let (mut a, mut b) = (acc.clone(), acc.clone());
            attention_logits_row(&mut a, amax, &k_exp, scale);
            scalar::attention_logits_row(&mut b, amax, &k_exp, scale);
            assert_eq!(a, b, "logits case {case}");
        }
    }

    #[test]
    fn pv_scale_gelu_and_layer_norm_match() {
        let mut rng = Rng::new(13);
        for case in 0..3000 {
            let n = rng.range(0, 140) as usize;
            let x = row(&mut rng, n, SCALES[case % SCALES.len()]);
            let f = match case % 6 {
                0 => i32::MAX as i64,
                1 => 1 << 31,
                2 => -5,
                3 => rng.range(0, 1 << 40),
                _ => rng.range(0, i32::MAX as i64),
            };
            let (mut a, mut b) = (vec![0; n], vec![0; n]);
            pv_scale_row(&x, PvScale { factor_q32: f }, &mut a);
            scalar::pv_scale_row(&x, PvScale { factor_q32: f }, &mut b);
            assert_eq!(a, b, "pv_scale case {case}");
            let (mut a, mut b) = (x.clone(), x.clone());
            gelu_row(&mut a);
            scalar::gelu_row(&mut b);
            assert_eq!(a, b, "gelu case {case}");
            let len = if case % 11 == 0 { n / 2 } else { n };
            let g = le(&row(&mut rng, len, 1 << (case % 31)));
            let be = le(&row(&mut rng, len, 1 << (case % 29)));
            let eps = rng.range(0, 1 << 20) as u64;
            let ln = LayerNormParams::new(LeI32s::new(&g).unwrap(), LeI32s::new(&be).unwrap(), eps)
                .unwrap();
            let (mut a, mut b) = (x.clone(), x.clone());
            layer_norm_row(&mut a, &ln);
            scalar::layer_norm_row(&mut b, &ln);
            assert_eq!(a, b, "layer_norm case {case}");
            // Hidden-state-like rows (the fast path).
            let h: Vec<i32> = (0..n)
                .map(|_| rng.range(-(5 << 16), 5 << 16) as i32)
                .collect();
            let (mut a, mut b) = (h.clone(), h.clone());
            layer_norm_row(&mut a, &ln);
            scalar::layer_norm_row(&mut b, &ln);
            assert_eq!(a, b, "layer_norm hidden case {case}");
        }
    }

    #[test]
    fn softmax_matches() {
        let mut rng = Rng::new(14);
        for case in 0..3000 {
            let n = rng.range(0, 140) as usize;
            let z = row(&mut rng, n, [256, 4096, 1 << 16, 1 << 24][case % 4]);
            let va: Vec<u32> = (0..n)
                .map(|_| match rng.next_u64() % 8 {
                    0 => 0,
                    1 => u32::MAX,
                    _ => rng.range(0, 1 << (case % 32)) as u32,
                })
                .collect();
            let (mut a, mut b) = (vec![9u16; n + 2], vec![9u16; n + 2]);
            let fa = softmax_row(&z, &va, &mut a);
            let fb = scalar::softmax_row(&z, &va, &mut b);
            assert_eq!((fa, &a), (fb, &b), "softmax case {case}");
        }
    }
}
