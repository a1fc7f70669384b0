//! The AVX-VNNI tier: VEX-encoded `vpdpbusd` on `ymm` registers (8 i32 lanes), 16 of them
//! (AVX-VNNI CPUs need not have AVX-512, so no EVEX encoding and no upper registers).
//!
//! int8 GEMM ([`Ymm6x16`]): tiles of 6 rows by 16 channels (two registers): 12
//! accumulators, two weight registers and a broadcast fill the 16 registers, as the AVX2
//! tile does. Attention P.V stays on the AVX2 path (`vpmaddwd` + `vpaddd`): on the Zen 5
//! this was measured on, `vpdpwssd ymm` and `vpmaddwd ymm` both issue two per cycle (the
//! adds go to other ports), and issue 14 reports `vpdpwssd` at half rate on the Intel Xeon
//! it was measured on (not verified here), where `vpmaddwd` would be the faster one.

use super::{Quads, Simd, micro_kernel};
use core::arch::x86_64::{
    __m256i, _mm_loadu_si128, _mm256_cmpgt_epi32, _mm256_cvtepi8_epi16, _mm256_dpbusd_avx_epi32,
    _mm256_dpwssd_avx_epi32, _mm256_loadu_si256, _mm256_maskstore_epi32, _mm256_mullo_epi32,
    _mm256_set1_epi32, _mm256_setr_epi32, _mm256_storeu_si256,
};
use microbert::kernels::{MatMut, MatRef};

/// A `ymm` register of 8 i32 lanes.
#[derive(Clone, Copy)]
pub(crate) struct Ymm(__m256i);

impl Simd for Ymm {
    const LANES: usize = 8;
    #[inline(always)]
    unsafe fn splat(x: i32) -> Self {
        // SAFETY: AVX is the caller's guarantee.
        Self(unsafe { _mm256_set1_epi32(x) })
    }
    #[inline(always)]
    unsafe fn load(p: *const u8) -> Self {
        // SAFETY: the caller's (AVX, 32 readable bytes).
        Self(unsafe { _mm256_loadu_si256(p.cast()) })
    }
    #[inline(always)]
    unsafe fn load_i8_pairs(p: *const u8) -> Self {
        // SAFETY: the caller's (AVX2, 16 readable bytes).
        Self(unsafe { _mm256_cvtepi8_epi16(_mm_loadu_si128(p.cast())) })
    }
    #[inline(always)]
    unsafe fn mullo(a: Self, b: Self) -> Self {
        // SAFETY: AVX2.
        Self(unsafe { _mm256_mullo_epi32(a.0, b.0) })
    }
    #[inline(always)]
    unsafe fn dpbusd(acc: Self, a: Self, b: Self) -> Self {
        // SAFETY: AVX-VNNI.
        Self(unsafe { _mm256_dpbusd_avx_epi32(acc.0, a.0, b.0) })
    }
    #[inline(always)]
    unsafe fn dpwssd(acc: Self, a: Self, b: Self) -> Self {
        // SAFETY: AVX-VNNI.
        Self(unsafe { _mm256_dpwssd_avx_epi32(acc.0, a.0, b.0) })
    }
    #[inline(always)]
    unsafe fn store(p: *mut i32, v: Self, n: usize) {
        // SAFETY: the caller's (AVX2, `n` writable i32; lanes masked off are neither
        // written nor fault).
        unsafe {
            if n >= 8 {
                _mm256_storeu_si256(p.cast(), v.0);
            } else {
                let lanes = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
                let mask = _mm256_cmpgt_epi32(_mm256_set1_epi32(n as i32), lanes);
                _mm256_maskstore_epi32(p, mask, v.0);
            }
        }
    }
}

micro_kernel! {
    /// The int8 GEMM: 6 rows x 16 channels, `vpdpbusd`.
    Ymm6x16: Ymm, Quads, mr = 6, nv = 2, short = [1, 2, 3, 4, 5]
}

/// The tier for the shared drivers.
pub(crate) struct AvxVnni;

impl super::VnniTier for AvxVnni {
    const NR: usize = 16;

    #[target_feature(enable = "avx2,avxvnni")]
    unsafe fn gemm_quads(
        a: &[u32],
        lda: usize,
        b: super::Panels<'_>,
        factor: i32,
        out: MatMut<'_, i32>,
    ) {
        // SAFETY: the features are enabled here; the rest is the caller's.
        unsafe { super::gemm_panels::<Ymm6x16>(a, lda, b, factor, out) };
    }

    #[target_feature(enable = "avx2,avxvnni")]
    unsafe fn pack(b: MatRef<'_, i8>, out: &mut [u8]) -> bool {
        // SAFETY: the features are enabled here.
        unsafe {
            super::panels::pack_quads(b, Self::NR, out) && {
                super::fill_sums::<Ymm, Quads, 2>(out, b.rows(), b.cols());
                true
            }
        }
    }
}
