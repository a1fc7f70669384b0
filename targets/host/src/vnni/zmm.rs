//! The AVX-512 VNNI tier: `zmm` registers (16 i32 lanes), 32 of them.
//!
//! int8 GEMM ([`Zmm8x48`]): tiles of 8 rows by 48 channels (three registers), 24
//! accumulators, three weight registers and a broadcast: per group of four depths, 3
//! weight loads and 8 broadcasts feed 24 `vpdpbusd`. An 8-row tile divides the encoder's
//! row block of 24; a 48-channel panel divides 384 and 1,536; the panel (48 x depth bytes:
//! 18 KiB at depth 384, 72 KiB at 1,536) is read from L1 or L2 once per row tile.
//!
//! P.V ([`ZmmPv12x32`]): 12 rows by 32 channels (an attention head's width) with
//! `vpdpwssd` on int8 value pairs sign-extended to i16 as they are loaded.
//!
//! Ragged channel edges are stored with lane masks (`vmovdqu32 {k}`).

use super::{Pairs, Quads, Simd, micro_kernel};
use core::arch::x86_64::{
    __m512i, _mm256_loadu_si256, _mm512_cvtepi8_epi16, _mm512_dpbusd_epi32, _mm512_dpwssd_epi32,
    _mm512_loadu_si512, _mm512_mask_storeu_epi32, _mm512_mullo_epi32, _mm512_set1_epi32,
    _mm512_storeu_si512,
};
use microbert::kernels::{MatMut, MatRef};

/// A `zmm` register of 16 i32 lanes.
#[derive(Clone, Copy)]
pub(crate) struct Zmm(__m512i);

impl Simd for Zmm {
    const LANES: usize = 16;
    #[inline(always)]
    unsafe fn splat(x: i32) -> Self {
        // SAFETY: AVX-512 F is the caller's guarantee.
        Self(unsafe { _mm512_set1_epi32(x) })
    }
    #[inline(always)]
    unsafe fn load(p: *const u8) -> Self {
        // SAFETY: the caller's (AVX-512 F, 64 readable bytes).
        Self(unsafe { _mm512_loadu_si512(p.cast()) })
    }
    #[inline(always)]
    unsafe fn load_i8_pairs(p: *const u8) -> Self {
        // SAFETY: the caller's (AVX-512 BW, 32 readable bytes).
        Self(unsafe { _mm512_cvtepi8_epi16(_mm256_loadu_si256(p.cast())) })
    }
    #[inline(always)]
    unsafe fn mullo(a: Self, b: Self) -> Self {
        // SAFETY: AVX-512 F.
        Self(unsafe { _mm512_mullo_epi32(a.0, b.0) })
    }
    #[inline(always)]
    unsafe fn dpbusd(acc: Self, a: Self, b: Self) -> Self {
        // SAFETY: AVX-512 VNNI.
        Self(unsafe { _mm512_dpbusd_epi32(acc.0, a.0, b.0) })
    }
    #[inline(always)]
    unsafe fn dpwssd(acc: Self, a: Self, b: Self) -> Self {
        // SAFETY: AVX-512 VNNI.
        Self(unsafe { _mm512_dpwssd_epi32(acc.0, a.0, b.0) })
    }
    #[inline(always)]
    unsafe fn store(p: *mut i32, v: Self, n: usize) {
        // SAFETY: the caller's (AVX-512 F, `n` writable i32; masked lanes are not
        // written and do not fault).
        unsafe {
            if n >= 16 {
                _mm512_storeu_si512(p.cast(), v.0);
            } else {
                _mm512_mask_storeu_epi32(p.cast(), ((1u32 << n) - 1) as u16, v.0);
            }
        }
    }
}

micro_kernel! {
    /// The int8 GEMM: 8 rows x 48 channels, `vpdpbusd`.
    Zmm8x48: Zmm, Quads, mr = 8, nv = 3, short = [1, 2, 3, 4, 5, 6, 7]
}

micro_kernel! {
    /// Attention P.V: 12 rows x 32 channels, `vpdpwssd`.
    ZmmPv12x32: Zmm, Pairs, mr = 12, nv = 2, short = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]
}

/// Channels per panel of the P.V packing.
pub(crate) const PV_NR: usize = 32;

/// The tier for the shared drivers.
pub(crate) struct Avx512Vnni;

impl super::VnniTier for Avx512Vnni {
    const NR: usize = 48;

    #[target_feature(enable = "avx512f,avx512bw,avx512vnni,avx2")]
    unsafe fn gemm_quads(
        a: &[u32],
        lda: usize,
        b: super::Panels<'_>,
        factor: i32,
        out: MatMut<'_, i32>,
    ) {
        // SAFETY: the features are enabled here; the rest is the caller's.
        unsafe { super::gemm_panels::<Zmm8x48>(a, lda, b, factor, out) };
    }

    #[target_feature(enable = "avx512f,avx512bw,avx512vnni,avx2")]
    unsafe fn pack(b: MatRef<'_, i8>, out: &mut [u8]) -> bool {
        // SAFETY: AVX2 (enabled here) for the packing, AVX-512 VNNI for the sums.
        unsafe {
            super::panels::pack_quads(b, Self::NR, out) && {
                super::fill_sums::<Zmm, Quads, 3>(out, b.rows(), b.cols());
                true
            }
        }
    }
}

/// The P.V product on a [`PV_NR`]-channel pair packing.
///
/// # Safety
/// AVX-512 F, BW, VNNI; as [`super::gemm_panels`].
#[target_feature(enable = "avx512f,avx512bw,avx512vnni,avx2")]
pub(crate) unsafe fn gemm_pairs(
    a: &[u32],
    lda: usize,
    b: super::Panels<'_>,
    factor: i32,
    out: MatMut<'_, i32>,
) {
    // SAFETY: the features are enabled here; the rest is the caller's.
    unsafe { super::gemm_panels::<ZmmPv12x32>(a, lda, b, factor, out) };
}

/// The channel sums of a [`PV_NR`]-channel pair packing of `n` channels of `depth`.
///
/// # Safety
/// AVX-512 F, BW, VNNI.
#[target_feature(enable = "avx512f,avx512bw,avx512vnni,avx2")]
pub(crate) unsafe fn fill_pair_sums(data: &mut [u8], n: usize, depth: usize) {
    // SAFETY: the features are enabled here.
    unsafe { super::fill_sums::<Zmm, Pairs, 2>(data, n, depth) };
}
