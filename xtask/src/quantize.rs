//! The converter's floating-point side of the fixed-point contract: multiplier encoding,
//! symmetric int8 quantisation with one scale per row, Q.16 rounding, and the error figures
//! the conversion report prints.
//!
//! Everything here is plain IEEE arithmetic (division, `abs`, `round`, no transcendental
//! functions on the data path), so the same inputs give the same bytes on every host.

use microbert::blob::format::MAX_SHIFT;

/// Q.16: the runtime's fixed-point unit for activations, biases and LayerNorm parameters.
pub const Q16: f64 = 65536.0;

/// Encodes a non-negative real multiplier `m_real` as `(m, shift)` with
/// `m_real ~= m / 2^shift`.
///
/// `m` lies in `[2^30, 2^31)` whenever the shift that needs stays within [`MAX_SHIFT`], so the
/// relative error is at most `2^-31`. Smaller multipliers (below `2^-66`) use the largest shift
/// and lose relative precision (`m` may round to 0); multipliers of `2^31` and above use shift
/// 0 and saturate at `i32::MAX`. Zero, negative and NaN inputs encode as `(0, 0)`.
pub fn encode_multiplier(m_real: f64) -> (i32, u8) {
    if m_real.is_nan() || m_real <= 0.0 {
        return (0, 0);
    }
    if m_real.is_infinite() {
        return (i32::MAX, 0);
    }
    // m_real = f * 2^e with f in [0.5, 1): then m = f * 2^31 in [2^30, 2^31) and shift = 31 - e.
    let e = exponent(m_real);
    let mut shift = 31 - e;
    if shift > i32::from(MAX_SHIFT) {
        let m = (m_real * pow2(i32::from(MAX_SHIFT))).round();
        return (m as i32, MAX_SHIFT);
    }
    if shift < 0 {
        return (saturate_i32(m_real.round()), 0);
    }
    let mut m = (m_real * pow2(shift)).round();
    if m >= 2_147_483_648.0 {
        // f rounded up to 1.0: halve the multiplier (exactly 2^30) and the shift with it.
        m = 1_073_741_824.0;
        shift -= 1;
        if shift < 0 {
            return (i32::MAX, 0);
        }
    }
    (m as i32, shift as u8)
}

/// The real value an encoded multiplier stands for.
#[cfg(test)]
pub fn decode_multiplier(m: i32, shift: u8) -> f64 {
    f64::from(m) / pow2(i32::from(shift))
}

/// `2^k` for `k` in the range the encoder uses (exact in f64).
fn pow2(k: i32) -> f64 {
    2f64.powi(k)
}

/// The binary exponent `e` with `x = f * 2^e`, `f` in `[0.5, 1)`, for a positive finite `x`.
fn exponent(x: f64) -> i32 {
    let bits = x.to_bits();
    let biased = ((bits >> 52) & 0x7ff) as i32;
    if biased == 0 {
        // Subnormal: scale into the normal range first (exact).
        return exponent(x * pow2(64)) - 64;
    }
    biased - 1022
}

/// Rounds half away from zero and saturates to the i32 range.
pub fn saturate_i32(x: f64) -> i32 {
    let r = x.round();
    if r.is_nan() {
        0
    } else if r >= f64::from(i32::MAX) {
        i32::MAX
    } else if r <= f64::from(i32::MIN) {
        i32::MIN
    } else {
        r as i32
    }
}

/// `round(x * 65536)`, saturated.
pub fn q16(x: f32) -> i32 {
    saturate_i32(f64::from(x) * Q16)
}

/// A row-major matrix quantised symmetrically to int8 with one scale per row.
#[derive(Debug, Clone)]
pub struct RowQuant {
    /// Values in `[-127, 127]`, row-major.
    pub q: Vec<i8>,
    /// The real value of one int8 step in each row (`max |row| / 127`, or 1 for a zero row).
    pub scales: Vec<f64>,
}

/// Quantises `data` (`rows x cols`, row-major) per row: `s_r = max |row| / 127` (1 for an
/// all-zero row), `q = clamp(round(x / s_r), -127, 127)`. Never produces -128.
pub fn quantize_rows(data: &[f32], rows: usize, cols: usize) -> RowQuant {
    assert_eq!(data.len(), rows * cols, "quantize_rows: data length");
    let mut q = Vec::with_capacity(data.len());
    let mut scales = Vec::with_capacity(rows);
    for row in data.chunks_exact(cols.max(1)).take(rows) {
        let amax = row.iter().fold(0f64, |a, &x| a.max(f64::from(x).abs()));
        let s = if amax > 0.0 && amax.is_finite() {
            amax / 127.0
        } else {
            1.0
        };
        scales.push(s);
        q.extend(
            row.iter()
                .map(|&x| (f64::from(x) / s).round().clamp(-127.0, 127.0) as i8),
        );
    }
    if cols == 0 {
        scales.resize(rows, 1.0);
    }
    RowQuant { q, scales }
}

/// Error of an int8 quantisation against the original values.
#[derive(Debug, Clone, Copy, Default)]
pub struct QuantError {
    /// Largest |x| in the original.
    pub max_abs: f64,
    /// `||dequant - x|| / ||x||` (0 for an all-zero tensor).
    pub rel_rms: f64,
    /// `-20 log10(rel_rms)`, capped at 200 dB for exact results.
    pub snr_db: f64,
}

/// Measures how well `quant` reproduces `data`.
pub fn quant_error(data: &[f32], cols: usize, quant: &RowQuant) -> QuantError {
    let mut signal = 0f64;
    let mut noise = 0f64;
    let mut max_abs = 0f64;
    for (r, (row, qrow)) in data
        .chunks_exact(cols.max(1))
        .zip(quant.q.chunks_exact(cols.max(1)))
        .enumerate()
    {
        let s = quant.scales[r];
        for (&x, &q) in row.iter().zip(qrow) {
            let x = f64::from(x);
            let d = f64::from(q) * s - x;
            signal += x * x;
            noise += d * d;
            max_abs = max_abs.max(x.abs());
        }
    }
    let rel_rms = if signal > 0.0 {
        (noise / signal).sqrt()
    } else {
        0.0
    };
    let snr_db = if rel_rms > 0.0 {
        (-20.0 * rel_rms.log10()).min(200.0)
    } else {
        200.0
    };
    QuantError {
        max_abs,
        rel_rms,
        snr_db,
    }
}

/// Rounds a vector to Q.16 and returns it with the largest absolute rounding error (in real
/// units; at most `2^-17` unless a value saturated).
pub fn q16_vector(data: &[f32]) -> (Vec<i32>, f64) {
    let mut worst = 0f64;
    let q = data
        .iter()
        .map(|&x| {
            let v = q16(x);
            worst = worst.max((f64::from(v) / Q16 - f64::from(x)).abs());
            v
        })
        .collect();
    (q, worst)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multiplier_round_trip_is_within_2_pow_minus_30() {
        // Every multiplier from 2^-66 (the smallest that fits m in [2^30, 2^31) with
        // MAX_SHIFT = 96) to 2^30, on a dense geometric grid plus odd mantissas.
        let mut k = -66.0f64;
        while k <= 30.0 {
            for frac in [
                1.0,
                1.000_000_1,
                1.234_567_89,
                1.5,
                1.999_999_999_9,
                1.999_999_999_999,
            ] {
                let m_real = 2f64.powf(k) * frac;
                if m_real > 2f64.powi(30) {
                    continue;
                }
                let (m, shift) = encode_multiplier(m_real);
                assert!(shift <= MAX_SHIFT);
                assert!((1 << 30..=i32::MAX).contains(&m), "m {m} for {m_real:e}");
                let back = decode_multiplier(m, shift);
                let rel = ((back - m_real) / m_real).abs();
                assert!(rel < 2f64.powi(-30), "{m_real:e}: rel error {rel:e}");
            }
            k += 0.37;
        }
    }

    #[test]
    fn tiny_multipliers_use_max_shift_and_keep_absolute_precision() {
        for k in [-67, -80, -90, -96, -97, -120] {
            let m_real = 2f64.powi(k) * 1.3;
            let (m, shift) = encode_multiplier(m_real);
            assert_eq!(shift, MAX_SHIFT);
            let err = (decode_multiplier(m, shift) - m_real).abs();
            assert!(err <= 2f64.powi(-97), "2^{k}: abs error {err:e}");
        }
        // The low end of 2^-90 still round-trips to within half a step of 2^-96.
        let (m, shift) = encode_multiplier(2f64.powi(-90));
        assert_eq!((m, shift), (64, MAX_SHIFT));
    }

    #[test]
    fn large_and_degenerate_multipliers() {
        assert_eq!(encode_multiplier(0.0), (0, 0));
        assert_eq!(encode_multiplier(-1.0), (0, 0));
        assert_eq!(encode_multiplier(f64::NAN), (0, 0));
        assert_eq!(encode_multiplier(1e30), (i32::MAX, 0));
        // Exactly 2^31 and just below: shift 0, saturated.
        assert_eq!(encode_multiplier(2f64.powi(31)), (i32::MAX, 0));
        assert_eq!(encode_multiplier(2f64.powi(31) - 0.25), (i32::MAX, 0));
        // A mantissa that rounds up to 2^31 moves to the next shift down.
        let just_below_one = 1.0 - 2f64.powi(-40);
        assert_eq!(encode_multiplier(just_below_one), (1 << 30, 30));
        assert_eq!(encode_multiplier(1.0), (1 << 30, 30));
        assert_eq!(encode_multiplier(0.5), (1 << 30, 31));
    }

    #[test]
    fn quantiser_never_emits_minus_128_and_errs_by_at_most_half_a_step() {
        // A deterministic spread of values including exact extremes and ties.
        let mut state = 0x1234_5678_9abc_def0u64;
        let mut data = Vec::new();
        for _ in 0..64 * 33 {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            let u = (state >> 11) as f64 / (1u64 << 53) as f64;
            data.push(((u - 0.5) * 3.0) as f32);
        }
        // Row 0: all zero; row 1: a negative extreme; row 2: a ramp.
        data[..33].iter_mut().for_each(|x| *x = 0.0);
        data[33] = -2.5;
        for (i, x) in data[66..99].iter_mut().enumerate() {
            *x = (i as f32 - 16.0) * 0.5 * (1.0 / 127.0) * 16.0;
        }
        let q = quantize_rows(&data, 64, 33);
        assert!(q.q.iter().all(|&v| v != i8::MIN));
        assert_eq!(q.scales[0], 1.0);
        assert_eq!(q.q[33], -127);
        for (r, row) in data.chunks_exact(33).enumerate() {
            let s = q.scales[r];
            for (c, &x) in row.iter().enumerate() {
                let err = (f64::from(q.q[r * 33 + c]) * s - f64::from(x)).abs();
                assert!(
                    err <= s / 2.0 * (1.0 + 1e-12),
                    "row {r} col {c}: {err} > {s}/2"
                );
            }
        }
        let e = quant_error(&data, 33, &q);
        assert!(e.rel_rms < 0.01 && e.snr_db > 40.0, "{e:?}");
    }

    #[test]
    fn q16_rounds_and_saturates() {
        assert_eq!(q16(1.0), 65536);
        assert_eq!(q16(-0.5), -32768);
        assert_eq!(q16(1e9), i32::MAX);
        assert_eq!(q16(-1e9), i32::MIN);
        let (v, worst) = q16_vector(&[0.1, -0.3, 2.0]);
        assert_eq!(v.len(), 3);
        assert!(worst <= 2f64.powi(-17));
    }
}
