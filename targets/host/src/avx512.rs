//! AVX-512 bodies of the per-row passes that cost most once the GEMM runs on `zmm`
//! (requantisation of every dense output, the int8 quantisation of every dense input, and
//! the attention logits and softmax of every score, GELU and LayerNorm), for the AVX-512
//! VNNI tier; bit-identical to `microbert::kernels::scalar` and
//! `microbert::quant`. The P.V scale and the power-of-two key quantisation
//! stay on AVX2 (`avx2/rows.rs`): together about 1% of the time at 128 tokens.
//!
//! They follow the AVX2 bodies step for step on 16 lanes instead of 8, with what AVX-512 F
//! adds: a native 64-bit arithmetic shift with per-lane counts (`vpsravq`), 64-bit
//! minimum and maximum for the saturations, and lane masks for the blends. A chunk of 16
//! channels with a shift the vector path does not cover, and the tail past the last whole
//! chunk, go to the AVX2 body (which hands its own rare cases to the reference).

use core::arch::x86_64::{
    __m512i, _mm_loadu_si128, _mm_storeu_si128, _mm512_abs_epi32, _mm512_add_epi32,
    _mm512_add_epi64, _mm512_cmpgt_epi32_mask, _mm512_cmplt_epi32_mask, _mm512_cvtepi32_epi8,
    _mm512_cvtepu8_epi32, _mm512_loadu_si512, _mm512_mask_blend_epi32, _mm512_max_epi32,
    _mm512_max_epi64, _mm512_max_epu32, _mm512_min_epi32, _mm512_min_epi64, _mm512_mul_epi32,
    _mm512_reduce_max_epu32, _mm512_set1_epi32, _mm512_set1_epi64, _mm512_setzero_si512,
    _mm512_slli_epi64, _mm512_sllv_epi64, _mm512_srai_epi32, _mm512_srai_epi64, _mm512_srav_epi32,
    _mm512_srav_epi64, _mm512_srli_epi64, _mm512_storeu_si512, _mm512_sub_epi32, _mm512_sub_epi64,
    _mm512_xor_si512,
};
use core::arch::x86_64::{
    _mm256_storeu_si256, _mm512_and_si512, _mm512_cvtepi32_epi16, _mm512_i32gather_epi32,
    _mm512_min_epu32, _mm512_mul_epu32, _mm512_reduce_add_epi64, _mm512_srli_epi32,
    _mm512_srlv_epi32,
};
use core::arch::x86_64::{
    _mm512_castsi512_si256, _mm512_extracti64x4_epi64, _mm512_i32gather_epi64,
    _mm512_maskz_mov_epi32, _mm512_mullo_epi32, _mm512_permutex2var_epi32, _mm512_setr_epi32,
};
use core::arch::x86_64::{_mm512_cvtepi32_epi64, _mm512_reduce_max_epi32, _mm512_reduce_min_epi32};
use core::cell::Cell;
use microbert::kernels::tables::{
    EXP2_FRAC_BITS, EXP2_Q16, GELU_LIMIT_Q16, GELU_Q16, GELU_STEP_BITS,
};
use microbert::kernels::{LayerNormParams, LogitScale, Requant, scalar};
use microbert::quant::FRAC_BITS;
use microbert::quant::{self, I8_MAX, normalize};

/// The odd 32-bit lanes moved down into the even positions (for `vpmuldq`).
#[inline]
#[target_feature(enable = "avx512f")]
fn odd(v: __m512i) -> __m512i {
    _mm512_srli_epi64::<32>(v)
}

/// Sixteen i32 results from the low halves of the even and odd 64-bit lanes.
#[inline]
#[target_feature(enable = "avx512f")]
fn join(even: __m512i, odd: __m512i) -> __m512i {
    _mm512_mask_blend_epi32(0xAAAA, even, _mm512_slli_epi64::<32>(odd))
}

/// `sat_i32` of eight i64 lanes (as i64 lanes).
#[inline]
#[target_feature(enable = "avx512f")]
fn sat_i32_64(x: __m512i) -> __m512i {
    _mm512_max_epi64(
        _mm512_min_epi64(x, _mm512_set1_epi64(i32::MAX.into())),
        _mm512_set1_epi64(i32::MIN.into()),
    )
}

/// `sat_i32(round_shift_i64(x, s))` on eight i64 lanes, counts `s` in `1..=62` and
/// `|x| < 2^62` (so adding half cannot overflow).
#[inline]
#[target_feature(enable = "avx512f")]
fn round_shift_sat(x: __m512i, s: __m512i) -> __m512i {
    let one = _mm512_set1_epi64(1);
    let half = _mm512_sllv_epi64(one, _mm512_sub_epi64(s, one));
    sat_i32_64(_mm512_srav_epi64(_mm512_add_epi64(x, half), s))
}

/// See `microbert::kernels::scalar::requantize_row`.
///
/// # Safety
/// The CPU must support AVX-512 F and AVX2.
#[target_feature(enable = "avx512f,avx2")]
pub(crate) unsafe fn requantize_row(acc: &[i32], amax: u32, rq: &Requant<'_>, out: &mut [i32]) {
    let n = acc.len().min(out.len());
    let (mult, shift, bias) = (rq.multiplier().as_bytes(), rq.shift(), rq.bias());
    // `Requant` guarantees one multiplier, shift (and bias) per channel.
    let nv = n.min(rq.channels()) & !15;
    let (am, ea) = normalize(u64::from(amax));
    debug_assert!((0..1 << 31).contains(&am));
    let amv = _mm512_set1_epi64(am);
    let base = _mm512_set1_epi32(i32::from(scalar::REQUANT_PRE_SHIFT) + ea);
    let pre_half = _mm512_set1_epi64(1 << (scalar::REQUANT_PRE_SHIFT - 1));
    let low32 = _mm512_set1_epi64(0xFFFF_FFFF);
    // `t = sat_i32(round(acc * m / 2^26))`: |acc * m| < 2^62 is exact in i64.
    let step1 = |a: __m512i, m: __m512i| -> __m512i {
        let p = _mm512_add_epi64(_mm512_mul_epi32(a, m), pre_half);
        sat_i32_64(_mm512_srai_epi64::<{ scalar::REQUANT_PRE_SHIFT as u32 }>(p))
    };
    let mut c0 = 0;
    while c0 < nv {
        // SAFETY: `c0 + 16 <= nv`, and `nv` is at most the number of channels covered by
        // `acc`, `out`, `shift` (one byte each), `multiplier` and `bias` (four bytes each),
        // so every load and the store stay inside their slices.
        unsafe {
            let s16 = _mm512_cvtepu8_epi32(_mm_loadu_si128(shift.as_ptr().add(c0).cast()));
            let sh = _mm512_sub_epi32(s16, base);
            let in_range = _mm512_cmpgt_epi32_mask(sh, _mm512_setzero_si512())
                & _mm512_cmplt_epi32_mask(sh, _mm512_set1_epi32(63));
            if in_range != 0xFFFF {
                crate::avx2::requantize_row(
                    &acc[c0..c0 + 16],
                    amax,
                    &rq.from(c0),
                    &mut out[c0..c0 + 16],
                );
                c0 += 16;
                continue;
            }
            let a = _mm512_loadu_si512(acc.as_ptr().add(c0).cast());
            let m = _mm512_loadu_si512(mult.as_ptr().add(c0 * 4).cast());
            let t_e = step1(a, m);
            let t_o = step1(odd(a), odd(m));
            let y_e = round_shift_sat(_mm512_mul_epi32(t_e, amv), _mm512_and_si512(sh, low32));
            let y_o = round_shift_sat(_mm512_mul_epi32(t_o, amv), odd(sh));
            let mut y = join(y_e, y_o);
            if let Some(bias) = bias {
                let b = _mm512_loadu_si512(bias.as_bytes().as_ptr().add(c0 * 4).cast());
                // Saturating i32 add: overflow iff both operands differ in sign from the sum.
                let s = _mm512_add_epi32(y, b);
                let ov = _mm512_and_si512(_mm512_xor_si512(s, y), _mm512_xor_si512(s, b));
                let ov = _mm512_cmplt_epi32_mask(ov, _mm512_setzero_si512());
                let sat = _mm512_xor_si512(_mm512_srai_epi32::<31>(y), _mm512_set1_epi32(i32::MAX));
                y = _mm512_mask_blend_epi32(ov, s, sat);
            }
            _mm512_storeu_si512(out.as_mut_ptr().add(c0).cast(), y);
        }
        c0 += 16;
    }
    if nv < n {
        // SAFETY: AVX2 is the caller's guarantee.
        unsafe { crate::avx2::requantize_row(&acc[nv..n], amax, &rq.from(nv), &mut out[nv..n]) };
    }
}

/// `quant::amax`: the largest magnitude, saturated to `i32::MAX`.
#[inline]
#[target_feature(enable = "avx512f")]
fn amax(row: &[i32]) -> u32 {
    let chunks = row.chunks_exact(16);
    let tail = quant::amax(chunks.remainder());
    let mut mx = _mm512_setzero_si512();
    for c in chunks {
        // SAFETY: `c` holds exactly 16 i32.
        let v = unsafe { _mm512_loadu_si512(c.as_ptr().cast()) };
        // |i32::MIN| is 2^31 as an unsigned lane, as `unsigned_abs` gives.
        mx = _mm512_max_epu32(mx, _mm512_abs_epi32(v));
    }
    _mm512_reduce_max_epu32(mx).min(i32::MAX as u32).max(tail)
}

/// See `microbert::quant::quantize_row_i8`.
///
/// # Safety
/// The CPU must support AVX-512 F.
#[target_feature(enable = "avx512f")]
pub(crate) unsafe fn quantize_row_i8(row: &[i32], out: &mut [i8]) -> u32 {
    let a = amax(row);
    let r = quant::i8_reciprocal(a);
    let n = row.len().min(out.len());
    // `vpmuldq` needs the reciprocal in a signed 32-bit lane (amax > 254); smaller ranges
    // take the scalar path.
    let nv = if r < 1 << 31 { n & !15 } else { 0 };
    let rv = _mm512_set1_epi64(r);
    let half = _mm512_set1_epi64(1 << 31);
    let (lo, hi) = (_mm512_set1_epi32(-I8_MAX), _mm512_set1_epi32(I8_MAX));
    let mut i = 0;
    while i < nv {
        // SAFETY: `i + 16 <= nv <= row.len()`, and as many bytes of `out`.
        unsafe {
            let v = _mm512_loadu_si512(row.as_ptr().add(i).cast());
            // |x * r| < 2^62; the high half of `x * r + 2^31` is the rounded quotient.
            let pe = _mm512_add_epi64(_mm512_mul_epi32(v, rv), half);
            let po = _mm512_add_epi64(_mm512_mul_epi32(odd(v), rv), half);
            let q = _mm512_mask_blend_epi32(0xAAAA, odd(pe), po);
            let q = _mm512_max_epi32(_mm512_min_epi32(q, hi), lo);
            _mm_storeu_si128(out.as_mut_ptr().add(i).cast(), _mm512_cvtepi32_epi8(q));
        }
        i += 16;
    }
    for (o, &x) in out[nv..n].iter_mut().zip(&row[nv..n]) {
        *o = quant::quantize_i8(x, r);
    }
    a
}

/// See `microbert::kernels::scalar::attention_logits_row`.
///
/// # Safety
/// The CPU must support AVX-512 F and AVX2.
#[target_feature(enable = "avx512f,avx2")]
pub(crate) unsafe fn attention_logits_row(
    acc: &mut [i32],
    q_amax: u32,
    k_exp: &[u32],
    scale: LogitScale,
) {
    let n = acc.len().min(k_exp.len());
    let nv = n & !15;
    let (cm, ce) = normalize(u64::from(q_amax) * scale.multiplier.unsigned_abs() as u64);
    debug_assert!((0..1 << 31).contains(&cm));
    let cmv = _mm512_set1_epi64(cm);
    let base = _mm512_set1_epi32(i32::from(scale.shift) - ce);
    let low32 = _mm512_set1_epi64(0xFFFF_FFFF);
    let mut c0 = 0;
    while c0 < nv {
        // SAFETY: `c0 + 16 <= nv <= min(acc.len(), k_exp.len())`.
        unsafe {
            let e = _mm512_loadu_si512(k_exp.as_ptr().add(c0).cast());
            let sh = _mm512_sub_epi32(base, _mm512_min_epu32(e, _mm512_set1_epi32(31)));
            let a = _mm512_loadu_si512(acc.as_ptr().add(c0).cast());
            let pe = _mm512_mul_epi32(a, cmv);
            let po = _mm512_mul_epi32(odd(a), cmv);
            if _mm512_cmplt_epi32_mask(sh, _mm512_set1_epi32(33)) == 0 {
                // Every shift is at least 33 (the common case): with x the product,
                // round(x / 2^s) = ((x >> (s - 1)) + 1) >> 1 and x >> (s - 1) =
                // (x >> 32) >> (s - 33), all on the high halves in 32-bit lanes (counts
                // of 32 and more fill with the sign, as the shift of x would). |x| < 2^62
                // keeps the result below 2^29: no saturation.
                let hi = _mm512_mask_blend_epi32(0xAAAA, odd(pe), po);
                let t = _mm512_srav_epi32(hi, _mm512_sub_epi32(sh, _mm512_set1_epi32(33)));
                let y = _mm512_srai_epi32::<1>(_mm512_add_epi32(t, _mm512_set1_epi32(1)));
                _mm512_storeu_si512(acc.as_mut_ptr().add(c0).cast(), y);
                c0 += 16;
                continue;
            }
            let in_range = _mm512_cmpgt_epi32_mask(sh, _mm512_setzero_si512())
                & _mm512_cmplt_epi32_mask(sh, _mm512_set1_epi32(63));
            if in_range != 0xFFFF {
                crate::avx2::attention_logits_row(
                    &mut acc[c0..c0 + 16],
                    q_amax,
                    &k_exp[c0..c0 + 16],
                    scale,
                );
                c0 += 16;
                continue;
            }
            let y_e = round_shift_sat(pe, _mm512_and_si512(sh, low32));
            let y_o = round_shift_sat(po, odd(sh));
            _mm512_storeu_si512(acc.as_mut_ptr().add(c0).cast(), join(y_e, y_o));
        }
        c0 += 16;
    }
    if nv < n {
        // SAFETY: AVX2 is the caller's guarantee.
        unsafe { crate::avx2::attention_logits_row(&mut acc[nv..n], q_amax, &k_exp[nv..n], scale) };
    }
}

/// The scalar reference's `exp2_neg_q16(max - z)` on sixteen lanes (see the AVX2 body:
/// distances from 17 * 256 on give 0 in both).
#[inline]
#[target_feature(enable = "avx512f")]
fn exp2_neg(maxv: __m512i, z: __m512i) -> __m512i {
    let d = _mm512_min_epu32(
        _mm512_sub_epi32(maxv, z),
        _mm512_set1_epi32(17 << EXP2_FRAC_BITS),
    );
    let idx = _mm512_and_si512(d, _mm512_set1_epi32((1 << EXP2_FRAC_BITS) - 1));
    // SAFETY: every index is in 0..256, inside the 256-entry table of u32.
    let t = unsafe { _mm512_i32gather_epi32::<4>(idx, EXP2_Q16.as_ptr().cast()) };
    _mm512_srlv_epi32(t, _mm512_srli_epi32::<EXP2_FRAC_BITS>(d))
}

/// `(e * va) >> 16` as u64 lanes: the even 32-bit lanes, then the odd ones.
#[inline]
#[target_feature(enable = "avx512f")]
fn weights(e: __m512i, va: __m512i) -> (__m512i, __m512i) {
    let we = _mm512_srli_epi64::<16>(_mm512_mul_epu32(e, va));
    let wo = _mm512_srli_epi64::<16>(_mm512_mul_epu32(odd(e), odd(va)));
    (we, wo)
}

std::thread_local! {
    /// The weights of a softmax row, kept from the first pass for the second.
    static WEIGHT_ROW: Cell<Vec<u32>> = const { Cell::new(Vec::new()) };
}

/// See `microbert::kernels::scalar::softmax_row` (the AVX2 body on 16 lanes).
///
/// # Safety
/// The CPU must support AVX-512 F.
#[target_feature(enable = "avx512f")]
pub(crate) unsafe fn softmax_row(logits: &[i32], v_amax: &[u32], p: &mut [u16]) -> scalar::PvScale {
    crate::avx2::with_buffer(&WEIGHT_ROW, |w_buf| {
        // SAFETY: AVX-512 F is the caller's guarantee.
        unsafe { softmax_row_with(logits, v_amax, p, w_buf) }
    })
}

/// [`softmax_row`] with `w_buf` as room for the row's weights.
///
/// The first pass keeps each weight `w_j = e_j * v_amax[j] / 2^16` (at most `v_amax[j]`,
/// since `e_j <= 2^16`, so a u32) and the second scales it: `w_j * reciprocal < 2^48`, one
/// 32 x 32 -> 64 product per lane when the reciprocal fits 32 bits (`w_sum > 65,535`),
/// two otherwise.
///
/// # Safety
/// The CPU must support AVX-512 F.
#[target_feature(enable = "avx512f")]
unsafe fn softmax_row_with(
    logits: &[i32],
    v_amax: &[u32],
    p: &mut [u16],
    w_buf: &mut Vec<u32>,
) -> scalar::PvScale {
    let n = logits.len().min(v_amax.len());
    let nv = n & !15;
    let mut mx = _mm512_set1_epi32(i32::MIN);
    for c in logits[..nv].chunks_exact(16) {
        // SAFETY: `c` holds exactly 16 i32.
        mx = _mm512_max_epi32(mx, unsafe { _mm512_loadu_si512(c.as_ptr().cast()) });
    }
    let max = logits[nv..]
        .iter()
        .copied()
        .fold(_mm512_reduce_max_epi32(mx), i32::max);
    let max = if logits.is_empty() { 0 } else { max };
    let maxv = _mm512_set1_epi32(max);
    // The first pass writes all `nv` entries before the second reads them.
    w_buf.resize(nv, 0);
    let low32 = _mm512_set1_epi64(0xFFFF_FFFF);
    let mut e_acc = _mm512_setzero_si512();
    let mut w_acc = _mm512_setzero_si512();
    let mut i = 0;
    while i < nv {
        let span_end = nv.min(i + crate::avx2::E_SUM_SPAN * 16);
        let mut e32 = _mm512_setzero_si512();
        while i < span_end {
            // SAFETY: `i + 16 <= nv <= min(logits.len(), v_amax.len())`, and `nv == w_buf.len()`.
            unsafe {
                let z = _mm512_loadu_si512(logits.as_ptr().add(i).cast());
                let va = _mm512_loadu_si512(v_amax.as_ptr().add(i).cast());
                let e = exp2_neg(maxv, z);
                e32 = _mm512_add_epi32(e32, e);
                let (we, wo) = weights(e, va);
                // Both halves are below 2^32: `wo` shifted up joins `we` in one store.
                _mm512_storeu_si512(w_buf.as_mut_ptr().add(i).cast(), join(we, wo));
                w_acc = _mm512_add_epi64(w_acc, _mm512_add_epi64(we, wo));
            }
            i += 16;
        }
        e_acc = _mm512_add_epi64(e_acc, _mm512_and_si512(e32, low32));
        e_acc = _mm512_add_epi64(e_acc, odd(e32));
    }
    let mut e_sum = _mm512_reduce_add_epi64(e_acc) as u64;
    let mut w_sum = _mm512_reduce_add_epi64(w_acc) as u64;
    for (&z, &va) in logits[nv..n].iter().zip(&v_amax[nv..n]) {
        let e = scalar::exp2_neg_q16(i64::from(max) - i64::from(z));
        e_sum = e_sum.wrapping_add(e);
        w_sum = w_sum.wrapping_add((e * u64::from(va)) >> 16);
    }
    if w_sum == 0 {
        p.fill(0);
        return scalar::PvScale::default();
    }
    let reciprocal = (scalar::P_ONE << 32) / w_sum;
    let r_lo = _mm512_set1_epi64((reciprocal & 0xFFFF_FFFF) as i64);
    let r_hi = _mm512_set1_epi64((reciprocal >> 32) as i64);
    let half = _mm512_set1_epi64(1 << 31);
    // w * reciprocal (below 2^48, see above) from one or two 32 x 32 -> 64 products.
    let scale = |w: __m512i| -> __m512i {
        let prod = _mm512_mul_epu32(w, r_lo);
        let prod = if reciprocal >> 32 == 0 {
            prod
        } else {
            _mm512_add_epi64(prod, _mm512_slli_epi64::<32>(_mm512_mul_epu32(w, r_hi)))
        };
        _mm512_add_epi64(prod, half)
    };
    let np = n.min(p.len());
    let npv = np & !15;
    let mut i = 0;
    while i < npv {
        // SAFETY: `i + 16 <= npv <= min(nv, p.len())`, and `nv == w_buf.len()`.
        unsafe {
            let w = _mm512_loadu_si512(w_buf.as_ptr().add(i).cast());
            // The rounded quotients are the high halves of the 64-bit lanes.
            let q = _mm512_mask_blend_epi32(0xAAAA, odd(scale(w)), scale(odd(w)));
            let q = _mm512_min_epu32(q, _mm512_set1_epi32(scalar::P_ONE as i32));
            _mm256_storeu_si256(p.as_mut_ptr().add(i).cast(), _mm512_cvtepi32_epi16(q));
        }
        i += 16;
    }
    for ((pj, &z), &va) in p[npv..np]
        .iter_mut()
        .zip(&logits[npv..np])
        .zip(&v_amax[npv..np])
    {
        let e = scalar::exp2_neg_q16(i64::from(max) - i64::from(z));
        let w = (e * u64::from(va)) >> 16;
        let q = (w.wrapping_mul(reciprocal).wrapping_add(1 << 31)) >> 32;
        *pj = q.min(scalar::P_ONE) as u16;
    }
    let num = u128::from(w_sum) << (FRAC_BITS + 32);
    let den = u128::from(scalar::P_ONE) * 127 * u128::from(e_sum);
    let factor = num / den;
    scalar::PvScale {
        factor_q32: i64::try_from(factor).unwrap_or(i64::MAX),
    }
}

/// See `microbert::kernels::scalar::gelu_row` (the AVX2 body on 16 lanes: each lane's two
/// neighbouring table entries as one 64-bit gather, de-interleaved with one permute each).
///
/// # Safety
/// The CPU must support AVX-512 F.
#[target_feature(enable = "avx512f")]
pub(crate) unsafe fn gelu_row(row: &mut [i32]) {
    let nv = row.len() & !15;
    let limit = _mm512_set1_epi32(GELU_LIMIT_Q16);
    let top = _mm512_set1_epi32(GELU_LIMIT_Q16 - 1);
    let bottom = _mm512_set1_epi32(-GELU_LIMIT_Q16);
    let step = FRAC_BITS - GELU_STEP_BITS;
    let even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    let odd_lanes = _mm512_setr_epi32(1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31);
    let mut i = 0;
    while i < nv {
        // SAFETY: `i + 16 <= nv <= row.len()`.
        let x = unsafe { _mm512_loadu_si512(row.as_ptr().add(i).cast()) };
        // Clamped into the table's domain so that every gather index is in range; the
        // lanes outside are replaced below.
        let xc = _mm512_max_epi32(_mm512_min_epi32(x, top), bottom);
        let u = _mm512_add_epi32(xc, limit);
        let idx = _mm512_srli_epi32::<{ FRAC_BITS - GELU_STEP_BITS }>(u);
        let frac = _mm512_and_si512(u, _mm512_set1_epi32((1 << step) - 1));
        // SAFETY: `u` is in [0, 2 * GELU_LIMIT_Q16), so `idx + 1 <= 1024`: the 8 bytes read
        // at entry `idx` are inside the 1025-entry table.
        let (lo, hi) = unsafe {
            let base = GELU_Q16.as_ptr().cast::<i64>();
            (
                _mm512_i32gather_epi64::<4>(_mm512_castsi512_si256(idx), base),
                _mm512_i32gather_epi64::<4>(_mm512_extracti64x4_epi64::<1>(idx), base),
            )
        };
        let t0 = _mm512_permutex2var_epi32(lo, even, hi);
        let t1 = _mm512_permutex2var_epi32(lo, odd_lanes, hi);
        // |t1 - t0| * frac < 2^31: the table's steps are a few thousand at most.
        let d = _mm512_mullo_epi32(_mm512_sub_epi32(t1, t0), frac);
        let r = _mm512_srai_epi32::<{ FRAC_BITS - GELU_STEP_BITS }>(_mm512_add_epi32(
            d,
            _mm512_set1_epi32(1 << (step - 1)),
        ));
        let y = _mm512_add_epi32(t0, r);
        let above = _mm512_cmpgt_epi32_mask(x, top);
        let below = _mm512_cmplt_epi32_mask(x, bottom);
        let y = _mm512_mask_blend_epi32(above, y, x);
        let y = _mm512_maskz_mov_epi32(!below, y);
        // SAFETY: as the load.
        unsafe { _mm512_storeu_si512(row.as_mut_ptr().add(i).cast(), y) };
        i += 16;
    }
    for x in &mut row[nv..] {
        *x = scalar::gelu_q16(*x);
    }
}

/// See `microbert::kernels::scalar::layer_norm_row` (the AVX2 body on 16 lanes, with the
/// same conditions for its vector path: `max - min < 2^31` and `max |x - mean| * r <
/// 2^62`; other rows run the reference).
///
/// # Safety
/// The CPU must support AVX-512 F.
#[target_feature(enable = "avx512f")]
pub(crate) unsafe fn layer_norm_row(row: &mut [i32], ln: &LayerNormParams<'_>) {
    let (gamma, beta, eps_q32) = (ln.gamma(), ln.beta(), ln.eps_q32());
    let d = row.len() as i64;
    let nv = row.len() & !15;
    if d == 0 {
        return;
    }
    // Pass 1: sum (i64), min and max.
    let mut sum_v = _mm512_setzero_si512();
    let mut mn = _mm512_set1_epi32(i32::MAX);
    let mut mx = _mm512_set1_epi32(i32::MIN);
    for c in row[..nv].chunks_exact(16) {
        // SAFETY: `c` holds exactly 16 i32.
        let v = unsafe { _mm512_loadu_si512(c.as_ptr().cast()) };
        sum_v = _mm512_add_epi64(sum_v, _mm512_cvtepi32_epi64(_mm512_castsi512_si256(v)));
        sum_v = _mm512_add_epi64(
            sum_v,
            _mm512_cvtepi32_epi64(_mm512_extracti64x4_epi64::<1>(v)),
        );
        mn = _mm512_min_epi32(mn, v);
        mx = _mm512_max_epi32(mx, v);
    }
    let tail = &row[nv..];
    // At most 2^27 lanes of |x| < 2^31 per i64 lane: no overflow.
    let sum: i64 = _mm512_reduce_add_epi64(sum_v) + tail.iter().map(|&x| i64::from(x)).sum::<i64>();
    let lo = i64::from(
        tail.iter()
            .copied()
            .fold(_mm512_reduce_min_epi32(mn), i32::min),
    );
    let hi = i64::from(
        tail.iter()
            .copied()
            .fold(_mm512_reduce_max_epi32(mx), i32::max),
    );
    let mean = sum.div_euclid(d) + i64::from(sum.rem_euclid(d) * 2 >= d);
    if hi - lo >= 1 << 31 {
        scalar::layer_norm_row(row, ln);
        return;
    }
    // Pass 2: the exact sum of squares, each square (< 2^62) split into 32-bit halves
    // accumulated in u64 lanes (no overflow before 2^32 additions per lane).
    let meanv = _mm512_set1_epi32(mean as i32);
    let low32 = _mm512_set1_epi64(0xFFFF_FFFF);
    let (mut sq_lo, mut sq_hi) = (_mm512_setzero_si512(), _mm512_setzero_si512());
    for c in row[..nv].chunks_exact(16) {
        // SAFETY: `c` holds exactly 16 i32.
        let v = unsafe { _mm512_loadu_si512(c.as_ptr().cast()) };
        // |x - mean| < 2^31: the wrapping i32 difference is exact.
        let cv = _mm512_sub_epi32(v, meanv);
        for sq in [_mm512_mul_epi32(cv, cv), _mm512_mul_epi32(odd(cv), odd(cv))] {
            sq_lo = _mm512_add_epi64(sq_lo, _mm512_and_si512(sq, low32));
            sq_hi = _mm512_add_epi64(sq_hi, _mm512_srli_epi64::<32>(sq));
        }
    }
    let (mut l64, mut h64) = ([0u64; 8], [0u64; 8]);
    // SAFETY: the arrays hold one vector each.
    unsafe {
        _mm512_storeu_si512(l64.as_mut_ptr().cast(), sq_lo);
        _mm512_storeu_si512(h64.as_mut_ptr().cast(), sq_hi);
    }
    let mut sq: i128 = l64.iter().map(|&x| i128::from(x)).sum::<i128>()
        + (h64.iter().map(|&x| i128::from(x)).sum::<i128>() << 32);
    for &x in tail {
        let c = i128::from(i64::from(x) - mean);
        sq += c * c;
    }
    let var = u64::try_from(sq / i128::from(d)).unwrap_or(u64::MAX);
    let std = quant::isqrt_u64(var.saturating_add(eps_q32)).max(1);
    let r = (1u128 << 48) / u128::from(std);
    let cmax = (hi - mean).max(mean - lo) as u128;
    let ng = nv.min(gamma.len()).min(beta.len()) & !15;
    let (gamma_bytes, beta_bytes) = (gamma.as_bytes(), beta.as_bytes());
    let ng = if cmax * r < 1 << 62 { ng } else { 0 };
    // Pass 3: z = round(c * r / 2^32) with r = r_hi * 2^31 + r_lo (both fit i32 lanes),
    // y = round(z * gamma / 2^16) + beta, saturated.
    let r_lo = _mm512_set1_epi64((r & 0x7FFF_FFFF) as i64);
    let r_hi = _mm512_set1_epi64((r >> 31) as i64);
    let half32 = _mm512_set1_epi64(1 << 31);
    let half16 = _mm512_set1_epi64(1 << 15);
    let one = _mm512_set1_epi64(1);
    let lane = |c: __m512i, g: __m512i, b: __m512i| -> __m512i {
        let p = _mm512_add_epi64(
            _mm512_mul_epi32(c, r_lo),
            _mm512_slli_epi64::<31>(_mm512_mul_epi32(c, r_hi)),
        );
        // |p| < 2^62, so |z| < 2^30: the high half of `p + 2^31` is z.
        let z = odd(_mm512_add_epi64(p, half32));
        let q = _mm512_srai_epi64::<16>(_mm512_add_epi64(_mm512_mul_epi32(z, g), half16));
        sat_i32_64(_mm512_add_epi64(q, _mm512_mul_epi32(b, one)))
    };
    let mut i = 0;
    while i < ng {
        // SAFETY: `i + 16 <= ng`, which is at most the row length and the number of i32
        // in `gamma` and `beta`.
        unsafe {
            let v = _mm512_loadu_si512(row.as_ptr().add(i).cast());
            let g = _mm512_loadu_si512(gamma_bytes.as_ptr().add(i * 4).cast());
            let b = _mm512_loadu_si512(beta_bytes.as_ptr().add(i * 4).cast());
            let cv = _mm512_sub_epi32(v, meanv);
            let y = join(lane(cv, g, b), lane(odd(cv), odd(g), odd(b)));
            _mm512_storeu_si512(row.as_mut_ptr().add(i).cast(), y);
        }
        i += 16;
    }
    for (c, x) in row.iter_mut().enumerate().skip(ng) {
        *x = crate::avx2::layer_norm_one(*x, mean, r, gamma.at(c), beta.at(c));
    }
}
