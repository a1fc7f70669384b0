//! Fixed-point conventions shared by every kernel: rounding shifts, saturation, and the
//! per-row int8 quantisation of Q.16 activations. `docs/numerics.md` explains the formats.
//!
//! Rounding is "half up" everywhere: `round_shift(x, s) = floor((x + 2^(s-1)) / 2^s)`.
//! It is what an arithmetic right shift after adding half gives, so SIMD backends reproduce
//! it exactly.

/// Fraction bits of the activation format (Q.16 in `i32`).
pub const FRAC_BITS: u32 = 16;
/// Largest magnitude of an int8 value; -128 is never produced.
pub const I8_MAX: i32 = 127;

/// `round(x / 2^shift)`, halves rounded up. `shift` must be below 127.
#[inline]
pub const fn round_shift_i128(x: i128, shift: u8) -> i128 {
    if shift == 0 {
        x
    } else {
        (x + (1i128 << (shift - 1))) >> shift
    }
}

/// `round(x / 2^shift)`, halves rounded up. `shift` must be below 63.
#[inline]
pub const fn round_shift_i64(x: i64, shift: u32) -> i64 {
    if shift == 0 {
        x
    } else {
        (x + (1i64 << (shift - 1))) >> shift
    }
}

/// Saturates to `i32`.
#[inline]
pub const fn sat_i32(x: i128) -> i32 {
    if x > i32::MAX as i128 {
        i32::MAX
    } else if x < i32::MIN as i128 {
        i32::MIN
    } else {
        x as i32
    }
}

/// Saturates an `i64` to `i32`.
#[inline]
pub const fn sat_i32_from_i64(x: i64) -> i32 {
    sat_i32(x as i128)
}

/// `round(x * multiplier / 2^shift)`, saturated to `i32`: the one requantisation formula.
#[inline]
pub const fn mul_shift(x: i64, multiplier: i32, shift: u8) -> i32 {
    sat_i32(round_shift_i128(x as i128 * multiplier as i128, shift))
}

/// Reciprocal used by [`quantize_row_i8`]: `round(127 * 2^32 / amax)`.
#[inline]
pub const fn i8_reciprocal(amax: u32) -> i64 {
    if amax == 0 {
        0
    } else {
        (((I8_MAX as u64) << 32) + (amax as u64 / 2)) as i64 / amax as i64
    }
}

/// Quantises one element with the row's reciprocal: `round(x * 127 / amax)`, clamped to
/// [-127, 127]. `|x| <= amax` keeps the product below 2^40.
#[inline]
pub const fn quantize_i8(x: i32, reciprocal: i64) -> i8 {
    let q = round_shift_i64(x as i64 * reciprocal, 32);
    let q = if q > I8_MAX as i64 {
        I8_MAX as i64
    } else if q < -(I8_MAX as i64) {
        -(I8_MAX as i64)
    } else {
        q
    };
    q as i8
}

/// Largest magnitude in a row, saturated to `i32::MAX`.
#[inline]
pub fn amax(row: &[i32]) -> u32 {
    let m = row.iter().map(|x| x.unsigned_abs()).max().unwrap_or(0);
    m.min(i32::MAX as u32)
}

/// Symmetric int8 quantisation of a Q.16 row: `out = round(127 x / amax)`. Returns `amax`
/// (Q.16), the row's range: the real value of `out[i]` is `out[i] * amax / (127 * 2^16)`.
/// A row of zeros gives `amax = 0` and zeros.
pub fn quantize_row_i8(row: &[i32], out: &mut [i8]) -> u32 {
    let a = amax(row);
    let r = i8_reciprocal(a);
    for (o, &x) in out.iter_mut().zip(row) {
        *o = quantize_i8(x, r);
    }
    a
}

/// Largest magnitude of int16 activations in a product of depth `depth` with int8 weights:
/// `qmax * 127 * depth < 2^31`, so the i32 sums cannot overflow (32,767 up to depth 516).
pub const fn i16_qmax(depth: usize) -> i32 {
    let d = if depth == 0 { 1 } else { depth };
    let limit = (i32::MAX as usize) / (I8_MAX as usize * d);
    if limit > i16::MAX as usize {
        i16::MAX as i32
    } else {
        limit as i32
    }
}

/// Reciprocal of a row range for a quantiser with largest level `qmax`:
/// `round(qmax * 2^32 / amax)` (0 for an all-zero row).
#[inline]
pub const fn reciprocal(qmax: i32, amax: u32) -> i64 {
    if amax == 0 {
        0
    } else {
        (((qmax as u64) << 32) + (amax as u64 / 2)) as i64 / amax as i64
    }
}

/// `round(x * qmax / amax)` with the row's [`reciprocal`], clamped to `[lo, qmax]`.
/// `|x| <= amax` keeps the product below `2^32 * qmax`.
#[inline]
pub const fn quantize_level(x: i32, reciprocal: i64, lo: i32, qmax: i32) -> i32 {
    let q = round_shift_i64(x as i64 * reciprocal, 32);
    if q > qmax as i64 {
        qmax
    } else if q < lo as i64 {
        lo
    } else {
        q as i32
    }
}

/// `round(x / 2^shift)` for a signed shift: a right shift with rounding when `shift > 0`,
/// a left shift when `shift <= 0`; saturated to `i32`. Shifts past 62 give 0.
#[inline]
pub const fn shift_round_sat(x: i64, shift: i32) -> i32 {
    if shift > 62 {
        0
    } else if shift > 0 {
        sat_i32_from_i64(round_shift_i64(x, shift as u32))
    } else if x == 0 {
        0
    } else if shift < -31 {
        if x > 0 { i32::MAX } else { i32::MIN }
    } else {
        sat_i32((x as i128) << (-shift))
    }
}

/// Splits a positive `x < 2^62` into a mantissa in `[2^30, 2^31)` and an exponent:
/// `x ~= mantissa * 2^exponent` (exact when `x < 2^31`, rounded half up otherwise).
/// Zero gives `(0, 0)`.
#[inline]
pub const fn normalize(x: u64) -> (i64, i32) {
    if x == 0 {
        return (0, 0);
    }
    let bits = 64 - x.leading_zeros() as i32;
    if bits <= 31 {
        ((x << (31 - bits)) as i64, bits - 31)
    } else {
        let e = bits - 31;
        let m = round_shift_i64(x as i64, e as u32);
        if m >= 1 << 31 {
            (m >> 1, e + 1)
        } else {
            (m, e)
        }
    }
}

/// Quantises a Q.16 row to int8 with a power-of-two scale: `out = round(x / 2^e)` with
/// the smallest `e >= 0` that keeps every value in [-127, 127]. Returns `e`; the real
/// value of `out[i]` is `out[i] * 2^e / 2^16`. Used for keys, whose per-key scale then
/// costs a shift instead of a multiply in every attention logit.
pub fn quantize_row_pow2(row: &[i32], out: &mut [i8]) -> u32 {
    let a = i64::from(amax(row));
    let mut e = 0u32;
    while e < 31 && round_shift_i64(a, e) > I8_MAX as i64 {
        e += 1;
    }
    for (o, &x) in out.iter_mut().zip(row) {
        let q = round_shift_i64(i64::from(x), e).clamp(-(I8_MAX as i64), I8_MAX as i64);
        *o = q as i8;
    }
    e
}

/// Integer square root: the largest `r` with `r * r <= n`.
pub const fn isqrt_u64(n: u64) -> u64 {
    if n < 2 {
        return n;
    }
    // Newton's method from a power of two above the root; decreasing, so it terminates.
    let bits = 64 - n.leading_zeros();
    let mut x = 1u64 << bits.div_ceil(2);
    loop {
        let y = (x + n / x) / 2;
        if y >= x {
            return x;
        }
        x = y;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_shift_rounds_halves_up() {
        // (input, shift, expected): every rounding case around zero.
        let table: &[(i64, u32, i64)] = &[
            (0, 2, 0),
            (1, 2, 0),
            (2, 2, 1),
            (3, 2, 1),
            (5, 2, 1),
            (6, 2, 2),
            (-1, 2, 0),
            (-2, 2, 0),
            (-3, 2, -1),
            (-6, 2, -1),
            (-7, 2, -2),
            (7, 0, 7),
        ];
        for &(x, s, want) in table {
            assert_eq!(round_shift_i64(x, s), want, "round_shift({x}, {s})");
            assert_eq!(round_shift_i128(x as i128, s as u8), want as i128);
        }
    }

    #[test]
    fn quantize_hits_the_ends_and_never_minus_128() {
        let row = [65536, -65536, 32768, -32767, 0, 1];
        let mut q = [0i8; 6];
        assert_eq!(quantize_row_i8(&row, &mut q), 65536);
        assert_eq!(q, [127, -127, 64, -63, 0, 0]);
        let extreme = [i32::MIN, i32::MAX, 0];
        let mut q = [0i8; 3];
        assert_eq!(quantize_row_i8(&extreme, &mut q), i32::MAX as u32);
        assert_eq!(q, [-127, 127, 0]);
        let mut q = [5i8; 2];
        assert_eq!(quantize_row_i8(&[0, 0], &mut q), 0);
        assert_eq!(q, [0, 0]);
    }

    #[test]
    fn quantize_is_within_half_a_step() {
        for amax in [1u32, 3, 100, 65_536, 1 << 20, i32::MAX as u32] {
            let r = i8_reciprocal(amax);
            for k in 0..=64i64 {
                let x = (amax as i64 * k / 64) as i32;
                let q = quantize_i8(x, r) as f64;
                let exact = x as f64 * 127.0 / amax as f64;
                assert!((q - exact).abs() <= 0.5 + 1e-6, "amax {amax} x {x}");
            }
        }
    }

    #[test]
    fn isqrt_is_exact() {
        for n in (0..10_000u64).chain([u64::MAX, u64::MAX - 1, 1 << 62, (1 << 32) - 1]) {
            let r = isqrt_u64(n);
            assert!(r * r <= n, "{n}");
            assert!((r + 1).checked_mul(r + 1).is_none_or(|s| s > n), "{n}");
        }
    }

    #[test]
    fn pow2_quantisation_uses_the_smallest_exponent() {
        let mut q = [0i8; 3];
        assert_eq!(quantize_row_pow2(&[127, -127, 5], &mut q), 0);
        assert_eq!(q, [127, -127, 5]);
        assert_eq!(quantize_row_pow2(&[128, -64, 3], &mut q), 1);
        assert_eq!(q, [64, -32, 2]);
        assert_eq!(quantize_row_pow2(&[253, 0, -253], &mut q), 1);
        assert_eq!(q, [127, 0, -126]);
        assert_eq!(
            quantize_row_pow2(&[i32::MIN, i32::MAX, 1 << 20], &mut q),
            25
        );
        assert_eq!(q, [-64, 64, 0]);
    }

    #[test]
    fn normalize_and_signed_shifts() {
        assert_eq!(normalize(0), (0, 0));
        assert_eq!(normalize(1), (1 << 30, -30));
        assert_eq!(normalize((1 << 31) - 1), ((1 << 31) - 1, 0));
        assert_eq!(normalize(u64::MAX >> 2), (1 << 30, 32));
        let (m, e) = normalize(3 << 40);
        assert_eq!((m, e), (3 << 29, 11));
        assert_eq!(shift_round_sat(5, 1), 3);
        assert_eq!(shift_round_sat(-5, 1), -2);
        assert_eq!(shift_round_sat(5, -2), 20);
        assert_eq!(shift_round_sat(5, -40), i32::MAX);
        assert_eq!(shift_round_sat(-5, -31), i32::MIN);
        assert_eq!(shift_round_sat(i64::MAX, 63), 0);
    }

    #[test]
    fn mul_shift_saturates() {
        assert_eq!(mul_shift(i64::MAX, i32::MAX, 0), i32::MAX);
        assert_eq!(mul_shift(i64::MIN, i32::MAX, 0), i32::MIN);
        assert_eq!(mul_shift(3, 1 << 30, 31), 2);
    }
}
