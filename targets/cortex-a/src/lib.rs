//! # microbert-cortex-a
//!
//! The Cortex-A backend of microbert: [`NeonKernels`] implements [`microbert::Kernels`]
//! with AArch64 Advanced SIMD (NEON), bit-identical to [`microbert::Scalar`].
//!
//! - Built with `-C target-feature=+dotprod` (Cortex-A55, A76 and later), the int8 GEMM runs
//!   an `sdot` micro-kernel on 8x4 (or 4x4) register tiles over a small packed copy of the
//!   left operand: 32 `sdot` per 16 bytes of depth, about 0.08 instructions per
//!   multiply-accumulate in the inner loop (`cargo xtask asm-report`).
//! - Without it (Cortex-A53, A72), the int8 GEMM runs 4x4 tiles of `smull`/`smlal2`/`sadalp`:
//!   two int8 products in [-127, 127] sum to at most 32,258, so an i16 lane holds them
//!   exactly before the pairwise widening add into i32.
//! - The P.V product (u16 probabilities x int8 values, row by row) offsets the int8 values by 128 to make both operands unsigned
//!   (`umlal` by element) and subtracts `128 * sum(p)` at the end: exact modulo 2^32, as the
//!   scalar i32 sum is.
//! - int16 activations (`Lhs::I16`, the calibrated blobs' q/k/v inputs) and uint8 ones with
//!   a zero point (`Lhs::U8`, their FFN2 input) times int8 weights, on every build: the rows
//!   are copied, or widened to `q - zero_point` (in [-255, 255], an exact i16), into a
//!   16-bit stack panel once per chunk of depth, and 4x4 tiles widen the weights as they
//!   load (`sxtl`) and accumulate with `smlal`/`smlal2` into i32: 44 instructions per 128
//!   multiply-accumulates (0.34) in the inner loop. Prepared operands pass their blob
//!   weights (the `smmla` layout is for int8 products). Exact modulo 2^32.
//!
//! - Built with `-C target-feature=+i8mm` as well (Armv8.6-A: Cortex-A510, A710, X2 and
//!   later), the dense layers' weights are prepared once into the `smmla` layout
//!   ([`microbert::Kernels::prepare`]: the int8 weights' size, rounded up to multiples of 8)
//!   and their products run an 8x8 `smmla` tile: 0.039 instructions per multiply-accumulate
//!   in the inner loop. Products of unprepared weights (attention Q.K) keep `sdot`.
//!
//! The other per-row passes use the scalar defaults. On other architectures (or an AArch64
//! target without NEON) every method is the scalar one, so the workspace builds anywhere.
//!
//! The `sdot` intrinsic is unstable, so that path is `asm!`; the plain path uses the stable
//! `core::arch::aarch64` intrinsics. Each `unsafe` block states the bound it relies on.
#![no_std]
#![deny(unsafe_op_in_unsafe_fn)]

#[cfg(all(target_arch = "aarch64", target_feature = "neon"))]
mod neon;

use microbert::Kernels;
#[cfg(all(target_arch = "aarch64", target_feature = "neon"))]
use microbert::kernels::{Gemm, Lhs, MatRef, Rhs, scalar};

/// The backend's name in logs: which code path this build runs.
const NAME: &str = if cfg!(all(
    target_arch = "aarch64",
    target_feature = "neon",
    target_feature = "i8mm"
)) {
    "neon-i8mm"
} else if cfg!(all(
    target_arch = "aarch64",
    target_feature = "neon",
    target_feature = "dotprod"
)) {
    "neon-dotprod"
} else if cfg!(all(target_arch = "aarch64", target_feature = "neon")) {
    "neon"
} else {
    "scalar"
};

/// The int8 weights of a channel-major operand (the blob's, for prepared ones).
#[cfg(all(target_arch = "aarch64", target_feature = "neon"))]
fn weights(b: Rhs<'_>) -> Option<MatRef<'_, i8>> {
    match b {
        Rhs::Channels(w) => Some(w),
        Rhs::Prepared(p) => Some(p.raw()),
        _ => None,
    }
}

/// NEON kernels for AArch64 (the scalar reference on other targets).
#[derive(Debug, Clone, Copy, Default)]
pub struct NeonKernels;

impl NeonKernels {
    /// Whether this build runs SIMD code (false: the scalar fallback of a non-AArch64 build).
    pub const ACCELERATED: bool = cfg!(all(target_arch = "aarch64", target_feature = "neon"));

    /// The kernels; the instruction set is fixed at compile time (`+dotprod` or not).
    pub const fn new() -> Self {
        Self
    }
}

impl Kernels for NeonKernels {
    fn name(&self) -> &'static str {
        NAME
    }

    #[cfg(all(target_arch = "aarch64", target_feature = "neon"))]
    fn gemm(&self, g: Gemm<'_, '_>) {
        if g.rows() == 0 || g.channels() == 0 || g.depth() == 0 {
            return scalar::gemm(g);
        }
        let (a, b, out) = g.parts();
        match (a, b) {
            (Lhs::I8(a), Rhs::Channels(b)) => neon::gemm(a, b, out),
            #[cfg(target_feature = "i8mm")]
            (Lhs::I8(a), Rhs::Prepared(p))
                if p.bytes().len() >= neon::prepared_len(p.raw().rows(), p.raw().cols()) =>
            {
                neon::gemm_prepared(a, p.bytes(), p.raw().rows(), out)
            }
            // Without i8mm these kernels prepare nothing (and short prepared bytes are
            // ignored): the blob's weights.
            (Lhs::I8(a), Rhs::Prepared(p)) => neon::gemm(a, p.raw(), out),
            (Lhs::U16(p), Rhs::Depths(v)) => neon::weighted_sums(p, v, out),
            // int16 and uint8 activations: the blob's weights on every build.
            (a, b) => match (neon::Wide::new(a), weights(b)) {
                (Some(a), Some(w)) => neon::gemm_wide(a, w, out),
                _ => {
                    if let Some(g) = Gemm::new(a, b, out) {
                        scalar::gemm(g);
                    }
                }
            },
        }
    }

    #[cfg(all(
        target_arch = "aarch64",
        target_feature = "neon",
        target_feature = "i8mm"
    ))]
    fn prepared_len(&self, channels: usize, depth: usize) -> usize {
        neon::prepared_len(channels, depth)
    }

    #[cfg(all(
        target_arch = "aarch64",
        target_feature = "neon",
        target_feature = "i8mm"
    ))]
    fn prepare(&self, w: MatRef<'_, i8>, out: &mut [u8]) -> bool {
        neon::prepare(w, out)
    }
}
