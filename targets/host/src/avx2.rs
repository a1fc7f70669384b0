//! AVX2 bodies of the host kernels, bit-identical to `microbert::kernels::scalar`.
//!
//! Exactness: int8 values are sign-extended to i16 (`vpmovsxbw`) and multiplied pairwise
//! with `vpmaddwd`, whose two products (each at most 2^15 * 2^7 in magnitude here) and their
//! sum fit an i32 without saturation; `vpmaddubsw` is not used. Accumulation is `vpaddd`,
//! which wraps modulo 2^32: the scalar reference's `i32` sums (which the trait contract
//! keeps in range) equal the true sums, and so do these.
//!
//! `gemm_i8`: 4 rows of `a` by 2 output channels per register tile, 8 `ymm` accumulators
//! of 8 partial dot products each, reduced horizontally once per tile. (A 4 x 3 tile needs
//! 12 accumulators, 4 rows of `a`, a widened column and a product: more than the 16 `ymm`
//! registers, and the compiler spilt two accumulators, whose store-to-load round trip then
//! bounded the loop; 4 x 2 runs about 1.4x faster on Zen 3, 6 x 2 and 8 x 1 are slower.)
//! The rows of `a` are widened to i16 once per call into a thread-local buffer (they are
//! reused by every column), the columns of `b` are widened as they are loaded. Columns are
//! processed in blocks so that a block of `b` stays in L1/L2 while every row group passes
//! over it.
//!
//! `avx2_weighted_sum_u16_i8`: probabilities `p` in [0, 65535] do not fit i16, so each is
//! split as `p = p' + 32768` with `p' = p - 32768` in i16: `sum p v = sum p' v + 32768 sum v`.
//! Two keys are interleaved per `vpmaddwd`; `sum v` is kept in i16 lanes (at most 256
//! additions of a value in [-128, 127] per lane, so exact) and folded into i32 lanes
//! before it could overflow.

use core::arch::x86_64::{
    __m128i, __m256i, _mm_add_epi32, _mm_loadu_si128, _mm_storeu_si128, _mm256_add_epi16,
    _mm256_add_epi32, _mm256_castsi256_si128, _mm256_cvtepi8_epi16, _mm256_extracti128_si256,
    _mm256_hadd_epi32, _mm256_loadu_si256, _mm256_madd_epi16, _mm256_permute2x128_si256,
    _mm256_set1_epi16, _mm256_set1_epi32, _mm256_setzero_si256, _mm256_slli_epi32,
    _mm256_storeu_si256, _mm256_unpackhi_epi16, _mm256_unpacklo_epi16,
};
use core::cell::Cell;

mod rows;
pub(crate) use rows::{
    attention_logits_row, gelu_row, layer_norm_row, quantize_row_i8, quantize_row_pow2,
    requantize_row, softmax_row,
};

/// Rows of `a` per register tile.
const MR: usize = 4;
/// Output channels per register tile.
const NR: usize = 2;
/// Bytes of `b` per column block (kept in cache while every row group passes over it).
const B_BLOCK_BYTES: usize = 24 * 1024;

std::thread_local! {
    /// The rows of `a` widened to i16, reused across calls on this thread.
    static A16: Cell<Vec<i16>> = const { Cell::new(Vec::new()) };
}

/// `out[r * n + c] = sum_k a[r * lda + k] * b[c * ldb + k]` (see `Kernels::gemm_i8`).
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
    let mut buf = A16.try_with(Cell::take).unwrap_or_default();
    // SAFETY: the caller guarantees AVX2 and the shapes; `buf` is any vector (resized inside).
    unsafe { gemm_i8_avx2(m, n, depth, a, lda, b, ldb, out, &mut buf) };
    // If the thread is being torn down the buffer is simply dropped.
    let _ = A16.try_with(|cell| cell.set(buf));
}

/// See [`gemm_i8`]; `a16` is scratch for the widened rows of `a`.
///
/// # Safety
/// As [`gemm_i8`].
#[allow(clippy::too_many_arguments)]
#[target_feature(enable = "avx2")]
unsafe fn gemm_i8_avx2(
    m: usize,
    n: usize,
    depth: usize,
    a: &[i8],
    lda: usize,
    b: &[i8],
    ldb: usize,
    out: &mut [i32],
    a16: &mut Vec<i16>,
) {
    debug_assert!(m > 0 && n > 0 && depth > 0);
    debug_assert!((m - 1) * lda + depth <= a.len());
    debug_assert!((n - 1) * ldb + depth <= b.len());
    debug_assert!(m * n <= out.len());
    let k16 = depth & !15;
    a16.clear();
    a16.resize(m * k16, 0);
    for r in 0..m {
        for k in (0..k16).step_by(16) {
            // SAFETY: `r * lda + k + 16 <= (m - 1) * lda + depth <= a.len()` since
            // `k + 16 <= k16 <= depth`; the store writes `a16[r * k16 + k..][..16]`, inside
            // its `m * k16` elements.
            unsafe {
                let x = _mm256_cvtepi8_epi16(_mm_loadu_si128(a.as_ptr().add(r * lda + k).cast()));
                _mm256_storeu_si256(a16.as_mut_ptr().add(r * k16 + k).cast(), x);
            }
        }
    }
    let view = View {
        a,
        lda,
        a16,
        k16,
        b,
        ldb,
        depth,
        n,
    };
    let block = (B_BLOCK_BYTES / depth / NR * NR).max(NR);
    for c0 in (0..n).step_by(block) {
        let c_end = (c0 + block).min(n);
        for r0 in (0..m).step_by(MR) {
            let rows = MR.min(m - r0);
            for c in (c0..c_end).step_by(NR) {
                let cols = NR.min(c_end - c);
                // SAFETY: AVX2 is enabled in this function; `r0 + rows <= m` and
                // `c + cols <= n`, which is what `tile` requires of `view` and `out`.
                unsafe {
                    match (rows, cols) {
                        (4, 2) => tile::<4, 2>(&view, r0, c, out),
                        (4, 1) => tile::<4, 1>(&view, r0, c, out),
                        (3, 2) => tile::<3, 2>(&view, r0, c, out),
                        (3, 1) => tile::<3, 1>(&view, r0, c, out),
                        (2, 2) => tile::<2, 2>(&view, r0, c, out),
                        (2, 1) => tile::<2, 1>(&view, r0, c, out),
                        (1, 2) => tile::<1, 2>(&view, r0, c, out),
                        _ => tile::<1, 1>(&view, r0, c, out),
                    }
                }
            }
        }
    }
}

/// The operands of one `gemm_i8` call, with `a` also widened (`a16`, `k16` per row).
struct View<'a> {
    a: &'a [i8],
    lda: usize,
    a16: &'a [i16],
    k16: usize,
    b: &'a [i8],
    ldb: usize,
    depth: usize,
    n: usize,
}

/// One `R x C` register tile: rows `r0..r0 + R` by channels `c0..c0 + C` of the output.
///
/// # Safety
/// AVX2; `r0 + R <= m` and `c0 + C <= n` for the shapes `v` was built with (so that `a16`
/// holds `(r0 + R) * k16` elements and `b` covers channel `c0 + C - 1`), and `out` holds
/// `m * n`.
#[inline]
#[target_feature(enable = "avx2")]
unsafe fn tile<const R: usize, const C: usize>(
    v: &View<'_>,
    r0: usize,
    c0: usize,
    out: &mut [i32],
) {
    debug_assert!((r0 + R) * v.k16 <= v.a16.len());
    debug_assert!(c0 + C <= v.n && (c0 + C - 1) * v.ldb + v.depth <= v.b.len());
    // Row pointers and the trip count in locals, so the loop keeps only accumulators,
    // pointers and the widened columns of `b` in registers. The pointers stay inside their
    // slices: `(r0 + r) * k16 <= a16.len()` and `(c0 + c) * ldb < b.len()`.
    let a_rows: [*const i16; R] =
        core::array::from_fn(|r| v.a16.as_ptr().wrapping_add((r0 + r) * v.k16));
    let b_rows: [*const i8; C] =
        core::array::from_fn(|c| v.b.as_ptr().wrapping_add((c0 + c) * v.ldb));
    let k16 = v.k16;
    let mut acc = [[_mm256_setzero_si256(); C]; R];
    let mut k = 0;
    while k < k16 {
        for c in 0..C {
            // SAFETY: `(c0 + c) * ldb + k + 16 <= (c0 + C - 1) * ldb + depth <= b.len()`
            // because `k + 16 <= k16 <= depth`.
            let bv = _mm256_cvtepi8_epi16(unsafe { _mm_loadu_si128(b_rows[c].add(k).cast()) });
            for r in 0..R {
                // SAFETY: `(r0 + r) * k16 + k + 16 <= (r0 + R) * k16 <= a16.len()`.
                let av = unsafe { _mm256_loadu_si256(a_rows[r].add(k).cast::<__m256i>()) };
                acc[r][c] = _mm256_add_epi32(acc[r][c], _mm256_madd_epi16(av, bv));
            }
        }
        k += 16;
    }
    for (r, acc_r) in acc.iter().enumerate() {
        let zero = _mm256_setzero_si256();
        let lane = |c: usize| if c < C { acc_r[c] } else { zero };
        let sums = hsum4(lane(0), lane(1), lane(2), lane(3));
        let mut s = [0i32; 4];
        // SAFETY: `s` has room for the 4 lanes of an `__m128i`.
        unsafe { _mm_storeu_si128(s.as_mut_ptr().cast(), sums) };
        let row = r0 + r;
        let a_row = v.a.get(row * v.lda..).unwrap_or_default();
        for (c, &sum) in s.iter().enumerate().take(C) {
            let col = c0 + c;
            let b_row = v.b.get(col * v.ldb..).unwrap_or_default();
            let mut total = sum;
            for k in v.k16..v.depth {
                let x = a_row.get(k).copied().unwrap_or(0);
                let w = b_row.get(k).copied().unwrap_or(0);
                total = total.wrapping_add(i32::from(x) * i32::from(w));
            }
            if let Some(o) = out.get_mut(row * v.n + col) {
                *o = total;
            }
        }
    }
}

/// The horizontal sums of four vectors of eight i32 lanes: lane `i` of the result is the
/// (wrapping) sum of the lanes of input `i`.
#[inline]
#[target_feature(enable = "avx2")]
fn hsum4(v0: __m256i, v1: __m256i, v2: __m256i, v3: __m256i) -> __m128i {
    let s01 = _mm256_hadd_epi32(v0, v1);
    let s23 = _mm256_hadd_epi32(v2, v3);
    let s = _mm256_hadd_epi32(s01, s23);
    _mm_add_epi32(_mm256_castsi256_si128(s), _mm256_extracti128_si256::<1>(s))
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
