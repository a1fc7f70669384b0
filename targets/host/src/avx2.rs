//! AVX2 bodies of the host kernels, bit-identical to `microbert::kernels::scalar`.
//!
//! Exactness: int8 values are sign-extended to i16 (`vpmovsxbw`) and multiplied pairwise
//! with `vpmaddwd`, whose two products (each at most 2^15 * 2^7 in magnitude here) and their
//! sum fit an i32 without saturation; `vpmaddubsw` is not used. Accumulation is `vpaddd`,
//! which wraps modulo 2^32: the scalar reference's `i32` sums (which the trait contract
//! keeps in range) equal the true sums, and so do these.
//!
//! `gemm_i8` runs on weights packed in panels of 16 output channels (`packed.rs`): packed
//! once per model for the dense layers (`HostKernels::pack_model`), or by the call itself
//! (SIMD transposes, a few per cent of the product's time) for every other operand, such
//! as the keys of attention Q.K. (An earlier kernel on the unpacked layout, 4 x 2 tiles of
//! 16-lane dot products reduced horizontally, reached about half the throughput.)
//!
//! `avx2_weighted_sum_u16_i8`: probabilities `p` in [0, 65535] do not fit i16, so each is
//! split as `p = p' + 32768` with `p' = p - 32768` in i16: `sum p v = sum p' v + 32768 sum v`.
//! Two keys are interleaved per `vpmaddwd`; `sum v` is kept in i16 lanes (at most 256
//! additions of a value in [-128, 127] per lane, so exact) and folded into i32 lanes
//! before it could overflow.

use core::arch::x86_64::{
    __m256i, _mm_loadu_si128, _mm256_add_epi16, _mm256_add_epi32, _mm256_cvtepi8_epi16,
    _mm256_madd_epi16, _mm256_permute2x128_si256, _mm256_set1_epi16, _mm256_set1_epi32,
    _mm256_setzero_si256, _mm256_slli_epi32, _mm256_storeu_si256, _mm256_unpackhi_epi16,
    _mm256_unpacklo_epi16,
};
use core::cell::Cell;
use std::thread::LocalKey;

mod packed;
mod rows;
pub(crate) use packed::PackedB;
pub(crate) use rows::{
    attention_logits_row, gelu_row, layer_norm_row, pv_scale_row, quantize_row_i8,
    quantize_row_pow2, requantize_row, softmax_row,
};

std::thread_local! {
    /// The rows of `a` widened to i16 pairs, reused across calls on this thread.
    static A_PAIRS: Cell<Vec<i32>> = const { Cell::new(Vec::new()) };
    /// `b` packed by the call itself (when it was not packed beforehand).
    static B_PACKED: Cell<PackedB> = Cell::new(PackedB::default());
    /// The products of `weighted_sum_block` before the correction.
    static BLOCK_OUT: Cell<Vec<i32>> = const { Cell::new(Vec::new()) };
}

/// `out[r * n + c] = sum_k a[r * lda + k] * b[c * ldb + k]` (see `Kernels::gemm_i8`),
/// packing `b` first.
///
/// # Safety
/// The CPU must support AVX2; `m, n, depth > 0`; `a` must hold `(m - 1) * lda + depth`
/// elements, `b` `(n - 1) * ldb + depth` and `out` `m * n`.
#[allow(clippy::too_many_arguments)]
pub(crate) unsafe fn gemm_i8(
    m: usize,
    n: usize,
    depth: usize,
    a: &[i8],
    lda: usize,
    b: &[i8],
    ldb: usize,
    out: &mut [i32],
) {
    with_buffer(&B_PACKED, |packed| {
        // SAFETY: the caller guarantees AVX2.
        if unsafe { packed.repack(n, depth, b, ldb) } {
            // SAFETY: the caller's guarantees; `packed` has this call's `n` and `depth`.
            unsafe { gemm_i8_packed(m, a, lda, packed, out) };
        }
    });
}

/// Runs `f` on this thread's buffer in `key`, taken out for the call and put back for the
/// next one (a fresh buffer, dropped after, while the thread is being torn down). Always
/// inlined, so that the AVX2 callers' bodies stay inlined too (softmax runs per row).
#[inline(always)]
pub(crate) fn with_buffer<T: Default, R>(
    key: &'static LocalKey<Cell<T>>,
    f: impl FnOnce(&mut T) -> R,
) -> R {
    let mut buf = key.try_with(Cell::take).unwrap_or_default();
    let result = f(&mut buf);
    let _ = key.try_with(|cell| cell.set(buf));
    result
}

/// `out[r * n + c] = sum_k a[r * lda + k] * b[c][k]` with `b` packed (`n` and `depth` are
/// the packing's; see `Kernels::gemm_i8`).
///
/// # Safety
/// The CPU must support AVX2; `m > 0`; `a` must hold `(m - 1) * lda + depth` elements and
/// `out` `m * n`.
pub(crate) unsafe fn gemm_i8_packed(m: usize, a: &[i8], lda: usize, b: &PackedB, out: &mut [i32]) {
    // SAFETY: the caller's guarantees.
    with_buffer(&A_PAIRS, |buf| unsafe {
        packed::gemm_packed(m, a, lda, b, out, buf)
    });
}

/// `out[r * width + t] = sum_j p[r * keys + j] * v[j * ldv + t]` for a block of rows (see
/// `Kernels::weighted_sum_block`), as one packed GEMM: the values are packed transposed
/// (channels = features, depth = keys), the probabilities enter as the i16 `p - 32768`
/// (as in [`weighted_sum_u16_i8`]), and one extra row of ones gives `sum_j v[j][t]` for the
/// `32768 * sum v` correction, all modulo 2^32 like the reference's sums.
///
/// # Safety
/// The CPU must support AVX2; `rows, keys, width > 0`; `p` must hold `rows * keys`
/// elements, `v` `(keys - 1) * ldv + width` and `out` `rows * width`.
#[allow(clippy::too_many_arguments)]
pub(crate) unsafe fn weighted_sum_block(
    rows: usize,
    keys: usize,
    p: &[u16],
    v: &[i8],
    ldv: usize,
    width: usize,
    out: &mut [i32],
) {
    with_buffer(&B_PACKED, |packed| {
        with_buffer(&A_PAIRS, |a| {
            with_buffer(&BLOCK_OUT, |sums| {
                // SAFETY: the caller's guarantees.
                unsafe { block_product(rows, keys, p, v, ldv, width, out, packed, a, sums) }
            })
        })
    });
}

/// [`weighted_sum_block`] with its buffers.
///
/// # Safety
/// As [`weighted_sum_block`].
#[allow(clippy::too_many_arguments)]
unsafe fn block_product(
    rows: usize,
    keys: usize,
    p: &[u16],
    v: &[i8],
    ldv: usize,
    width: usize,
    out: &mut [i32],
    packed: &mut PackedB,
    a: &mut Vec<i32>,
    sums: &mut Vec<i32>,
) {
    // SAFETY: AVX2 is the caller's guarantee.
    if unsafe { packed.repack_columns(keys, width, v, ldv) } {
        let pairs = packed.pairs();
        // Every word is written below.
        packed::resize(a, (rows + 1) * pairs, true);
        for (words, pr) in a.chunks_exact_mut(pairs).zip(p.chunks_exact(keys)) {
            let two = pr.chunks_exact(2);
            // Past an odd last key the packed values are 0, so any high half works.
            let last = two.remainder().first().map(|&x| u32::from(x) ^ 0x8000);
            for (w, two) in words.iter_mut().zip(two) {
                let pair = u32::from(two[0]) | u32::from(two[1]) << 16;
                *w = (pair ^ 0x8000_8000) as i32;
            }
            if let (Some(w), Some(x)) = (words.last_mut(), last) {
                *w = x as i32;
            }
        }
        if let Some(ones) = a.get_mut(rows * pairs..) {
            ones.fill(0x0001_0001);
        }
        // `gemm_pairs` writes every element.
        packed::resize(sums, (rows + 1) * width, true);
        // SAFETY: AVX2; `a` holds `rows + 1` rows of `pairs` words, `sums` as many rows of
        // `width` (the packing's `n`).
        unsafe { packed::gemm_pairs(rows + 1, a, packed, sums) };
        let (body, col_sums) = sums.split_at(rows * width);
        for (o, s) in out.chunks_exact_mut(width).zip(body.chunks_exact(width)) {
            for ((o, &s), &c) in o.iter_mut().zip(s).zip(col_sums) {
                *o = s.wrapping_add(c.wrapping_shl(15));
            }
        }
    }
}

/// `out[t] = sum_j p[j] * v[j * ldv + t]` (see `Kernels::weighted_sum_u16_i8`).
///
/// # Safety
/// The CPU must support AVX2; `p` and `out` non-empty; `v` must hold
/// `(p.len() - 1) * ldv + out.len()` elements.
#[target_feature(enable = "avx2")]
pub(crate) unsafe fn weighted_sum_u16_i8(p: &[u16], v: &[i8], ldv: usize, out: &mut [i32]) {
    debug_assert!(!p.is_empty() && !out.is_empty());
    debug_assert!((p.len() - 1) * ldv + out.len() <= v.len());
    let width = out.len();
    let w16 = width & !15;
    let mut t0 = 0;
    while t0 + 32 <= w16 {
        // SAFETY: AVX2 is enabled here; `t0 + 32 <= out.len()`, the caller's bounds on `v`.
        unsafe { weighted_chunk::<2>(p, v, ldv, t0, out) };
        t0 += 32;
    }
    if t0 < w16 {
        // SAFETY: as above with `t0 + 16 <= out.len()`.
        unsafe { weighted_chunk::<1>(p, v, ldv, t0, out) };
    }
    for (t, o) in out.iter_mut().enumerate().skip(w16) {
        let mut total = 0i32;
        for (j, &pj) in p.iter().enumerate() {
            let x = v.get(j * ldv + t).copied().unwrap_or(0);
            total = total.wrapping_add(i32::from(pj).wrapping_mul(i32::from(x)));
        }
        *o = total;
    }
}

/// `p[j]` as the i16 `p[j] - 32768`, in the low or high half of a 32-bit word.
#[inline]
fn biased(p: u16) -> u32 {
    u32::from(p ^ 0x8000)
}

/// Outputs `t0..t0 + 16 * H` of [`weighted_sum_u16_i8`].
///
/// # Safety
/// AVX2; `t0 + 16 * H <= out.len()`; `p` non-empty and `v` holding
/// `(p.len() - 1) * ldv + out.len()` elements.
#[inline]
#[target_feature(enable = "avx2")]
unsafe fn weighted_chunk<const H: usize>(
    p: &[u16],
    v: &[i8],
    ldv: usize,
    t0: usize,
    out: &mut [i32],
) {
    debug_assert!(t0 + 16 * H <= out.len());
    let vp = v.as_ptr();
    let ones = _mm256_set1_epi16(1);
    let zero = _mm256_setzero_si256();
    // Per 16 outputs, two vectors: [t0..4, t8..12] and [t4..8, t12..16] (the in-lane order
    // of `vpunpck*wd`), restored at the end.
    let mut acc = [[zero; 2]; H];
    let mut sum_v16 = [[zero; 2]; H];
    let mut sum_v32 = [[zero; 2]; H];
    let load = |j: usize, h: usize| -> __m256i {
        // SAFETY: `j < p.len()` and `t0 + 16 * h + 16 <= out.len()`, so the 16 bytes read
        // end at or before `(p.len() - 1) * ldv + out.len() <= v.len()`.
        _mm256_cvtepi8_epi16(unsafe { _mm_loadu_si128(vp.add(j * ldv + t0 + 16 * h).cast()) })
    };
    let mut steps = 0u32;
    for (pair, keys) in p.chunks(2).enumerate() {
        let j = pair * 2;
        let (w, second) = match keys {
            [p0, p1] => (biased(*p0) | biased(*p1) << 16, true),
            [p0, ..] => (biased(*p0), false),
            [] => (0, false),
        };
        let pw = _mm256_set1_epi32(w as i32);
        for h in 0..H {
            let x0 = load(j, h);
            let x1 = if second { load(j + 1, h) } else { zero };
            let lo = _mm256_unpacklo_epi16(x0, x1);
            let hi = _mm256_unpackhi_epi16(x0, x1);
            acc[h][0] = _mm256_add_epi32(acc[h][0], _mm256_madd_epi16(lo, pw));
            acc[h][1] = _mm256_add_epi32(acc[h][1], _mm256_madd_epi16(hi, pw));
            sum_v16[h][0] = _mm256_add_epi16(sum_v16[h][0], lo);
            sum_v16[h][1] = _mm256_add_epi16(sum_v16[h][1], hi);
        }
        steps += 1;
        // 256 values in [-128, 127] sum to within [-32768, 32512]: fold before the 257th.
        if steps == 256 {
            steps = 0;
            for h in 0..H {
                for i in 0..2 {
                    let s = _mm256_madd_epi16(sum_v16[h][i], ones);
                    sum_v32[h][i] = _mm256_add_epi32(sum_v32[h][i], s);
                    sum_v16[h][i] = zero;
                }
            }
        }
    }
    for h in 0..H {
        let mut total = [zero; 2];
        for i in 0..2 {
            let s = _mm256_add_epi32(sum_v32[h][i], _mm256_madd_epi16(sum_v16[h][i], ones));
            // sum p v = sum (p - 32768) v + 32768 sum v, modulo 2^32.
            total[i] = _mm256_add_epi32(acc[h][i], _mm256_slli_epi32::<15>(s));
        }
        let first = _mm256_permute2x128_si256::<0x20>(total[0], total[1]);
        let second = _mm256_permute2x128_si256::<0x31>(total[0], total[1]);
        let o = out.as_mut_ptr();
        // SAFETY: `t0 + 16 * h + 16 <= t0 + 16 * H <= out.len()`.
        unsafe {
            _mm256_storeu_si256(o.add(t0 + 16 * h).cast(), first);
            _mm256_storeu_si256(o.add(t0 + 16 * h + 8).cast(), second);
        }
    }
}
