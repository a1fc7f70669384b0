//! AVX2 bodies of the dense-input quantisers that calibrated blobs use, bit-identical to
//! `microbert::kernels::scalar`: SmoothQuant factors applied inside the quantisation
//! (`quantize_row_i8_scaled`), int16 rows (`quantize_row_i16`) and unsigned rows of
//! `x + offset` (`quantize_row_u8_offset`).
//!
//! The smoothed value `sat(round(x * f / 2^16))` is computed exactly on the even and odd
//! 32-bit lanes with `vpmuldq`, the emulated 64-bit arithmetic shift and saturation of
//! `rows.rs`, into a per-call buffer; each quantiser then takes the row's range and rounds
//! `x * reciprocal` to the nearest level with the high half of `x * r + 2^31`, as the scalar
//! `quantize_level` does. Rows whose reciprocal does not fit a signed 32-bit lane (tiny
//! ranges) and every tail go to the scalar reference.

use super::rows::{amax, join, odd, sat_i32_64, sra64};
use core::arch::x86_64::{
    __m256i, _mm256_add_epi32, _mm256_add_epi64, _mm256_blend_epi32, _mm256_loadu_si256,
    _mm256_max_epi32, _mm256_max_epu32, _mm256_min_epi32, _mm256_mul_epi32, _mm256_packs_epi32,
    _mm256_packus_epi16, _mm256_packus_epi32, _mm256_permute4x64_epi64,
    _mm256_permutevar8x32_epi32, _mm256_set1_epi32, _mm256_set1_epi64x, _mm256_setr_epi32,
    _mm256_setzero_si256, _mm256_storeu_si256,
};
use core::cell::Cell;
use microbert::kernels::{LeI32s, scalar};
use microbert::quant;

std::thread_local! {
    /// The smoothed row of the last call, reused across calls on this thread.
    static SMOOTHED: Cell<Vec<i32>> = const { Cell::new(Vec::new()) };
}

/// `t[i] = scalar::smoothed(row[i], factors[i])` for the elements both hold.
///
/// # Safety
/// AVX2.
#[target_feature(enable = "avx2")]
unsafe fn smooth_into(row: &[i32], factors: LeI32s<'_>, t: &mut Vec<i32>) {
    let n = row.len().min(factors.len());
    super::packed::resize(t, n, true);
    let nv = n & !7;
    let f = factors.as_bytes();
    let half = _mm256_set1_epi64x(1 << 15);
    let sixteen = _mm256_set1_epi64x(16);
    let mut i = 0;
    while i < nv {
        // SAFETY: `i + 8 <= nv <= min(row.len(), factors.len(), t.len())` (`factors` holds
        // 4 bytes per value).
        unsafe {
            let x = _mm256_loadu_si256(row.as_ptr().add(i).cast());
            let fv = _mm256_loadu_si256(f.as_ptr().add(i * 4).cast());
            // |x * f| < 2^62: exact in i64; round half up, shift 16, saturate.
            let e = sat_i32_64(sra64(
                _mm256_add_epi64(_mm256_mul_epi32(x, fv), half),
                sixteen,
            ));
            let o = sat_i32_64(sra64(
                _mm256_add_epi64(_mm256_mul_epi32(odd(x), odd(fv)), half),
                sixteen,
            ));
            _mm256_storeu_si256(t.as_mut_ptr().add(i).cast(), join(e, o));
        }
        i += 8;
    }
    for (k, o) in t.iter_mut().enumerate().skip(nv) {
        *o = scalar::smoothed(row[k], factors.at(k));
    }
}

/// `round(x * r / 2^32)` on eight i32 lanes with `r < 2^31` and `|x| <= amax` (so
/// `|x * r| < 2^62`): the high half of `x * r + 2^31`, i.e. `quant::quantize_level` before
/// clamping.
#[inline]
#[target_feature(enable = "avx2")]
fn levels(x: __m256i, r: __m256i) -> __m256i {
    let half = _mm256_set1_epi64x(1 << 31);
    let pe = _mm256_add_epi64(_mm256_mul_epi32(x, r), half);
    let po = _mm256_add_epi64(_mm256_mul_epi32(odd(x), r), half);
    _mm256_blend_epi32::<0xAA>(odd(pe), po)
}

/// See `microbert::kernels::scalar::quantize_row_i8_scaled`.
///
/// # Safety
/// The CPU must support AVX2.
#[target_feature(enable = "avx2")]
pub(crate) unsafe fn quantize_row_i8_scaled(
    row: &[i32],
    factors: LeI32s<'_>,
    out: &mut [i8],
) -> u32 {
    if factors.len() < row.len() {
        return scalar::quantize_row_i8_scaled(row, factors, out);
    }
    super::with_buffer(&SMOOTHED, |t| {
        // SAFETY: AVX2 is the caller's guarantee.
        unsafe {
            smooth_into(row, factors, t);
            super::rows::quantize_row_i8(t, out)
        }
    })
}

/// See `microbert::kernels::scalar::quantize_row_i16`.
///
/// # Safety
/// The CPU must support AVX2.
#[target_feature(enable = "avx2")]
pub(crate) unsafe fn quantize_row_i16(
    row: &[i32],
    factors: Option<LeI32s<'_>>,
    qmax: i32,
    out: &mut [i16],
) -> u32 {
    match factors {
        Some(f) if f.len() >= row.len() => super::with_buffer(&SMOOTHED, |t| {
            // SAFETY: AVX2 is the caller's guarantee.
            unsafe {
                smooth_into(row, f, t);
                quantize_i16(t, qmax, out)
            }
        }),
        Some(f) => scalar::quantize_row_i16(row, Some(f), qmax, out),
        // SAFETY: AVX2 is the caller's guarantee.
        None => unsafe { quantize_i16(row, qmax, out) },
    }
}

/// [`quantize_row_i16`] without factors.
///
/// # Safety
/// AVX2.
#[target_feature(enable = "avx2")]
unsafe fn quantize_i16(t: &[i32], qmax: i32, out: &mut [i16]) -> u32 {
    let a = amax(t);
    let qmax = qmax.clamp(1, i32::from(i16::MAX));
    let r = quant::reciprocal(qmax, a);
    let n = t.len().min(out.len());
    let nv = if r < 1 << 31 { n & !15 } else { 0 };
    let rv = _mm256_set1_epi64x(r);
    let (hi, lo) = (_mm256_set1_epi32(qmax), _mm256_set1_epi32(-qmax));
    let mut i = 0;
    while i < nv {
        // SAFETY: `i + 16 <= nv <= min(t.len(), out.len())`.
        unsafe {
            let q0 = levels(_mm256_loadu_si256(t.as_ptr().add(i).cast()), rv);
            let q1 = levels(_mm256_loadu_si256(t.as_ptr().add(i + 8).cast()), rv);
            let clamp = |q| _mm256_max_epi32(_mm256_min_epi32(q, hi), lo);
            // `vpackssdw` packs within 128-bit lanes: restore the order of the 64-bit parts.
            let p = _mm256_permute4x64_epi64::<0xD8>(_mm256_packs_epi32(clamp(q0), clamp(q1)));
            _mm256_storeu_si256(out.as_mut_ptr().add(i).cast(), p);
        }
        i += 16;
    }
    for (o, &x) in out[nv..n].iter_mut().zip(&t[nv..n]) {
        *o = quant::quantize_level(x, r, -qmax, qmax) as i16;
    }
    a
}

/// See `microbert::kernels::scalar::quantize_row_u8_offset`.
///
/// # Safety
/// The CPU must support AVX2.
#[target_feature(enable = "avx2")]
pub(crate) unsafe fn quantize_row_u8_offset(row: &[i32], offset: i32, out: &mut [u8]) -> u32 {
    if offset < 0 {
        return scalar::quantize_row_u8_offset(row, offset, out);
    }
    let n = row.len().min(out.len());
    let nv = n & !31;
    // t = max(sat(x + offset), 0): with offset >= 0, the sum saturates exactly when
    // x > i32::MAX - offset, so x is clamped there first.
    let (limit, off, zero) = (
        _mm256_set1_epi32(i32::MAX - offset),
        _mm256_set1_epi32(offset),
        _mm256_setzero_si256(),
    );
    let shifted =
        |v: __m256i| _mm256_max_epi32(_mm256_add_epi32(_mm256_min_epi32(v, limit), off), zero);
    let mut mx = zero;
    for c in row[..nv].chunks_exact(8) {
        // SAFETY: `c` holds exactly 8 i32.
        let v = unsafe { _mm256_loadu_si256(c.as_ptr().cast()) };
        mx = _mm256_max_epu32(mx, shifted(v));
    }
    let mut lanes = [0u32; 8];
    // SAFETY: `lanes` holds 8 u32.
    unsafe { _mm256_storeu_si256(lanes.as_mut_ptr().cast(), mx) };
    let t = |x: i32| x.saturating_add(offset).max(0);
    let a = lanes
        .iter()
        .copied()
        .chain(row[nv..n].iter().map(|&x| t(x) as u32))
        .max()
        .unwrap_or(0);
    let r = quant::reciprocal(255, a);
    let nv = if r < 1 << 31 { nv } else { 0 };
    let rv = _mm256_set1_epi64x(r);
    let max = _mm256_set1_epi32(255);
    let mut i = 0;
    while i < nv {
        let mut q = [zero; 4];
        for (j, qj) in q.iter_mut().enumerate() {
            // SAFETY: `i + 32 <= nv <= row.len()`.
            let v = unsafe { _mm256_loadu_si256(row.as_ptr().add(i + 8 * j).cast()) };
            *qj = _mm256_max_epi32(_mm256_min_epi32(levels(shifted(v), rv), max), zero);
        }
        // Unsigned saturating packs within 128-bit lanes, then the lanes back in order.
        let w = _mm256_packus_epi16(
            _mm256_packus_epi32(q[0], q[1]),
            _mm256_packus_epi32(q[2], q[3]),
        );
        let w = _mm256_permutevar8x32_epi32(w, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
        // SAFETY: `i + 32 <= nv <= out.len()`.
        unsafe { _mm256_storeu_si256(out.as_mut_ptr().add(i).cast(), w) };
        i += 32;
    }
    for (o, &x) in out[nv..n].iter_mut().zip(&row[nv..n]) {
        *o = quant::quantize_level(t(x), r, 0, 255) as u8;
    }
    a
}
