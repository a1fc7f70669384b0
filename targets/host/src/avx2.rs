//! AVX2 bodies of the host kernels, bit-identical to `microbert::kernels::scalar`.
//!
//! Exactness: int8 values are sign-extended to i16 (`vpmovsxbw`) and multiplied pairwise
//! with `vpmaddwd`, whose two products (each at most 2^15 * 2^7 in magnitude here) and their
//! sum fit an i32 without saturation; `vpmaddubsw` is not used. Accumulation is `vpaddd`,
//! which wraps modulo 2^32: the scalar reference's `i32` sums (which the trait contract
//! keeps in range) equal the true sums, and so do these.
//!
//! The GEMM runs on weights packed in panels of 16 output channels (`packed.rs`): prepared
//! once per model for the dense layers (`HostKernels::prepare_model`), or by the call itself
//! (SIMD transposes, a few per cent of the product's time) for every other operand, such
//! as the keys of attention Q.K. (An earlier kernel on the unpacked layout, 4 x 2 tiles of
//! 16-lane dot products reduced horizontally, reached about half the throughput.)
//!
//! `weighted_sums` (attention P.V): probabilities `p` in [0, 65535] do not fit i16, so each
//! is split as `p = p' + 32768` with `p' = p - 32768` in i16:
//! `sum p v = sum p' v + 32768 sum v`, the packed GEMM computing both.

use core::cell::Cell;
use microbert::kernels::{MatMut, MatRef};
use std::thread::LocalKey;

mod inputs;
mod packed;
mod rows;
pub(crate) use inputs::{quantize_row_i8_scaled, quantize_row_i16, quantize_row_u8_offset};
pub(crate) use packed::{Activations, MR, NR, Panels, pack_channels, panel_len, resize};
pub(crate) use rows::{
    E_SUM_SPAN, attention_logits_row, gelu_row, layer_norm_one, layer_norm_row, pv_scale_row,
    quantize_row_i8, quantize_row_pow2, requantize_row, softmax_row,
};

std::thread_local! {
    /// The rows of `a` widened to i16 pairs, reused across calls on this thread.
    static A_PAIRS: Cell<Vec<i32>> = const { Cell::new(Vec::new()) };
    /// `b` packed by the call itself (when it was not prepared beforehand).
    static B_PACKED: Cell<Vec<i8>> = const { Cell::new(Vec::new()) };
    /// The products of `weighted_sums` before the correction.
    static BLOCK_OUT: Cell<Vec<i32>> = const { Cell::new(Vec::new()) };
}

/// `out[r][c] = sum_k a[r][k] * b[c][k]` (`b`: one row per output channel), packing `b`
/// first.
///
/// # Safety
/// The CPU must support AVX2; `a`'s depth is `b.cols()`, `out` is `a.rows() x b.rows()`.
pub(crate) unsafe fn gemm_channels(a: Activations<'_>, b: MatRef<'_, i8>, out: MatMut<'_, i32>) {
    let Some(len) = panel_len(b.rows(), b.cols()) else {
        return;
    };
    with_buffer(&B_PACKED, |packed| {
        // `pack_channels` writes every byte (padding included).
        resize(packed, len, true);
        // SAFETY: the caller guarantees AVX2; `packed` holds `len` bytes.
        unsafe { pack_channels(b, packed) };
        if let Some(panels) = Panels::new(packed, b.rows(), b.cols()) {
            // SAFETY: the caller's guarantees; `panels` has `b`'s shape.
            unsafe { gemm_prepared(a, panels, out) };
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

/// `out[r][c] = sum_k a[r][k] * b[c][k]` with `b` packed (its depth is `a.cols()`).
///
/// # Safety
/// The CPU must support AVX2; `b` has `a`'s depth and `out` is `a.rows() x b.n()`.
pub(crate) unsafe fn gemm_prepared(a: Activations<'_>, b: Panels<'_>, out: MatMut<'_, i32>) {
    // SAFETY: the caller's guarantees.
    with_buffer(&A_PAIRS, |buf| unsafe {
        packed::gemm_packed(a, b, out, buf)
    });
}

/// `out[r][t] = sum_j p[r][j] * v[j][t]` for a block of rows (attention P.V), as one packed
/// GEMM: the values are packed transposed (channels = features, depth = keys), the
/// probabilities enter as the i16 `p - 32768`, and one extra row of ones gives
/// `sum_j v[j][t]` for the `32768 * sum v` correction, all modulo 2^32 like the reference's
/// sums.
///
/// # Safety
/// The CPU must support AVX2; `p.cols() == v.rows()`, `out` is `p.rows() x v.cols()`.
pub(crate) unsafe fn weighted_sums(p: MatRef<'_, u16>, v: MatRef<'_, i8>, out: MatMut<'_, i32>) {
    with_buffer(&B_PACKED, |packed| {
        with_buffer(&A_PAIRS, |a| {
            with_buffer(&BLOCK_OUT, |sums| {
                // SAFETY: the caller's guarantees.
                unsafe { block_product(p, v, out, packed, a, sums) }
            })
        })
    });
}

/// [`weighted_sums`] with its buffers.
///
/// # Safety
/// As [`weighted_sums`].
#[target_feature(enable = "avx2")]
unsafe fn block_product(
    p: MatRef<'_, u16>,
    v: MatRef<'_, i8>,
    mut out: MatMut<'_, i32>,
    packed: &mut Vec<i8>,
    a: &mut Vec<i32>,
    sums: &mut Vec<i32>,
) {
    let (rows, keys, width) = (p.rows(), v.rows(), v.cols());
    let Some(len) = panel_len(width, keys) else {
        return;
    };
    resize(packed, len, true);
    // SAFETY: AVX2 is the caller's guarantee; `packed` holds `len` bytes.
    unsafe { packed::pack_depths(v, packed) };
    let Some(panels) = Panels::new(packed, width, keys) else {
        return;
    };
    let pairs = panels.pairs();
    // Every word is written below.
    resize(a, (rows + 1) * pairs, true);
    for (r, words) in a.chunks_exact_mut(pairs).take(rows).enumerate() {
        let two = p.row(r).chunks_exact(2);
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
    resize(sums, (rows + 1) * width, true);
    let Some(all) = MatMut::contiguous(sums, rows + 1, width) else {
        return;
    };
    // SAFETY: AVX2; `a` holds `rows + 1` rows of `pairs` words, `all` as many rows of
    // `width` (the packing's `n`).
    unsafe { packed::gemm_pairs(a, panels, all) };
    let (body, col_sums) = sums.split_at(rows * width);
    for (r, s) in body.chunks_exact(width.max(1)).enumerate().take(rows) {
        for ((o, &s), &c) in out.row_mut(r).iter_mut().zip(s).zip(col_sums) {
            *o = s.wrapping_add(c.wrapping_shl(15));
        }
    }
}
