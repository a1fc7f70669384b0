//! NEON kernels. The operands come as `MatRef`/`MatMut` views whose invariant (every row
//! holds its columns) and the `Gemm` check (the shapes agree) are the micro-kernels' bounds;
//! `NeonKernels::gemm` sends empty shapes and other operand kinds to the scalar reference.
//!
//! The int8 products run `dot` (`sdot`), `mmla` (`smmla`, prepared weights) or `plain`
//! (`smull`/`sadalp`) by build; the uint8 ones run `dot` and `mmla` too (as `q - 128`, see
//! `bytes`) where they exist and `wide` (`smlal`) on the plain build; the int16 ones run
//! `wide` on every build; P.V runs [`weighted_sums`] here.

#[cfg(target_feature = "dotprod")]
mod bytes;
#[cfg(target_feature = "dotprod")]
mod dot;
#[cfg(target_feature = "i8mm")]
mod mmla;
#[cfg(not(target_feature = "dotprod"))]
mod plain;
mod wide;

#[cfg(target_feature = "dotprod")]
pub(crate) use bytes::Bytes;
#[cfg(target_feature = "i8mm")]
pub(crate) use mmla::{prepare, prepared_len};
pub(crate) use wide::{Wide, gemm as gemm_wide};

use core::arch::aarch64::{
    uint32x4_t, vdupq_n_u8, vdupq_n_u32, veorq_u8, vget_low_u8, vget_low_u16, vld1_s8, vld1q_s8,
    vmlal_high_n_u16, vmlal_n_u16, vmovl_high_u8, vmovl_u8, vreinterpret_u8_s8,
    vreinterpretq_s32_u32, vreinterpretq_u8_s8, vst1q_s32, vsubq_u32,
};
use microbert::kernels::{MatMut, MatRef};

/// `out[r][c] = sum_k a[r][k] * b[c][k]` (`b`: one row per output channel). The caller
/// (`NeonKernels::gemm`) checked that the shapes agree and are not empty.
pub(crate) fn gemm(a: MatRef<'_, i8>, b: MatRef<'_, i8>, out: MatMut<'_, i32>) {
    #[cfg(target_feature = "dotprod")]
    dot::gemm(Bytes::I8(a), b, out);
    #[cfg(not(target_feature = "dotprod"))]
    {
        // SAFETY: this module is compiled only with `target_feature = "neon"` (so the CPU
        // has NEON), and the caller's checks are `plain::gemm`'s shape contract.
        unsafe { plain::gemm(a, b, out) };
    }
}

/// `out[r][c] = sum_k (a[r][k] - zero_point) * b[c][k]`: the `sdot` kernel with the
/// dot-product extension, the 16-bit one (`wide`) without. The caller checked that the
/// shapes agree and are not empty.
pub(crate) fn gemm_u8(a: MatRef<'_, u8>, zero_point: u8, b: MatRef<'_, i8>, out: MatMut<'_, i32>) {
    #[cfg(target_feature = "dotprod")]
    dot::gemm(Bytes::U8(a, zero_point), b, out);
    #[cfg(not(target_feature = "dotprod"))]
    wide::gemm(Wide::U8(a, zero_point), b, out);
}

/// `out = a x w^T` with `prepared` the `smmla` layout of `w`'s `n` channels (see
/// `mmla`), for int8 or uint8 rows; the caller checked the length (`prepared_len`) and that
/// the shapes agree and are not empty.
#[cfg(target_feature = "i8mm")]
pub(crate) fn gemm_prepared(a: Bytes<'_>, prepared: &[u8], n: usize, out: MatMut<'_, i32>) {
    mmla::gemm(a, prepared, n, out);
}

/// `out[r][t] = sum_j p[r][j] * v[j][t]` (attention P.V), row by row.
///
/// `p * v = p * (v + 128) - 128 * p`: with `v + 128` in [1, 255] (any i8 in [0, 255]) both
/// factors are unsigned, so `umlal` by a broadcast `p` accumulates them in u32; the
/// correction `128 * sum(p)` is subtracted once. All of it is exact modulo 2^32, which is
/// what the scalar i32 sum computes. The caller checked that the shapes agree and are not
/// empty.
pub(crate) fn weighted_sums(p: MatRef<'_, u16>, v: MatRef<'_, i8>, mut out: MatMut<'_, i32>) {
    for r in 0..p.rows() {
        // SAFETY: this module is compiled only with `target_feature = "neon"`, so the CPU
        // running the binary has NEON; `v` has `p.cols()` rows (the `Gemm` check) of
        // `out.cols()` values (the `MatRef` invariant).
        unsafe { weighted_neon(p.row(r), v, out.row_mut(r)) };
    }
}

/// One row of [`weighted_sums`].
///
/// # Safety
/// `v` has at least `p.len()` rows of at least `out.len()` values.
#[target_feature(enable = "neon")]
unsafe fn weighted_neon(p: &[u16], v: MatRef<'_, i8>, out: &mut [i32]) {
    let width = out.len();
    debug_assert!(v.rows() >= p.len() && v.cols() >= width);
    let (ldv, v) = (v.ld(), v.data());
    let correction = p
        .iter()
        .fold(0u32, |s, &x| s.wrapping_add(u32::from(x)))
        .wrapping_mul(128);
    let flip = vdupq_n_u8(0x80);
    let mut t0 = 0;
    while t0 + 16 <= width {
        let mut acc = [vdupq_n_u32(0); 4];
        for (j, &pj) in p.iter().enumerate() {
            // SAFETY: row `j < p.len()` of `v` holds `width >= t0 + 16` values (the caller's
            // contract and the `MatRef` invariant), so the 16 bytes at `j * ldv + t0` are in
            // `v`.
            let x = unsafe { vld1q_s8(v.as_ptr().add(j * ldv + t0)) };
            let u = veorq_u8(vreinterpretq_u8_s8(x), flip);
            let lo = vmovl_u8(vget_low_u8(u));
            let hi = vmovl_high_u8(u);
            acc[0] = vmlal_n_u16(acc[0], vget_low_u16(lo), pj);
            acc[1] = vmlal_high_n_u16(acc[1], lo, pj);
            acc[2] = vmlal_n_u16(acc[2], vget_low_u16(hi), pj);
            acc[3] = vmlal_high_n_u16(acc[3], hi, pj);
        }
        store_corrected(&acc, correction, &mut out[t0..t0 + 16]);
        t0 += 16;
    }
    if t0 + 8 <= width {
        let mut acc = [vdupq_n_u32(0); 2];
        for (j, &pj) in p.iter().enumerate() {
            // SAFETY: as above with `t0 + 8 <= width`: the 8 bytes at `j * ldv + t0` are in `v`.
            let x = unsafe { vld1_s8(v.as_ptr().add(j * ldv + t0)) };
            let u = vmovl_u8(veor_u8_flip(vreinterpret_u8_s8(x)));
            acc[0] = vmlal_n_u16(acc[0], vget_low_u16(u), pj);
            acc[1] = vmlal_high_n_u16(acc[1], u, pj);
        }
        store_corrected(&acc, correction, &mut out[t0..t0 + 8]);
        t0 += 8;
    }
    for (t, o) in out.iter_mut().enumerate().skip(t0) {
        *o = p.iter().enumerate().fold(0i32, |s, (j, &pj)| {
            s.wrapping_add(i32::from(pj) * i32::from(v[j * ldv + t]))
        });
    }
}

/// `x ^ 0x80` on 8 lanes: int8 bits to `x + 128` as u8.
#[target_feature(enable = "neon")]
#[inline]
fn veor_u8_flip(x: core::arch::aarch64::uint8x8_t) -> core::arch::aarch64::uint8x8_t {
    core::arch::aarch64::veor_u8(x, core::arch::aarch64::vdup_n_u8(0x80))
}

/// Stores `acc - correction` (wrapping) as i32, four lanes per vector.
#[target_feature(enable = "neon")]
#[inline]
fn store_corrected(acc: &[uint32x4_t], correction: u32, out: &mut [i32]) {
    let c = vdupq_n_u32(correction);
    for (q, dst) in acc.iter().zip(out.chunks_exact_mut(4)) {
        let r = vreinterpretq_s32_u32(vsubq_u32(*q, c));
        // SAFETY: `chunks_exact_mut(4)` gives exactly 4 writable i32.
        unsafe { vst1q_s32(dst.as_mut_ptr(), r) };
    }
}
