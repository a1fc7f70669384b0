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
//! - int16 activations (`Lhs::I16`, the calibrated blobs' q/k/v inputs) times int8 weights,
//!   on every build: the rows are copied into a 16-bit stack panel once per chunk of depth,
//!   and 4x4 tiles widen the weights as they load (`sxtl`) and accumulate with
//!   `smlal`/`smlal2` into i32: 44 instructions per 128 multiply-accumulates (0.34) in the
//!   inner loop, the blob's weights for prepared operands. Exact modulo 2^32.
//! - uint8 activations with a zero point (`Lhs::U8`, the calibrated FFN2 input): with
//!   `+dotprod` (and `+i8mm`, on prepared weights) they run the int8 kernels as `q - 128`
//!   (`q ^ 0x80`), 7 rows per tile, the tile's 8th row being ones so that its sums are the
//!   weight sums of the correction `(128 - zero_point) * sum w` (exact modulo 2^32); on
//!   the plain build they are widened to `q - zero_point` (in [-255, 255], an exact i16)
//!   into the int16 path's panel.
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
use microbert::kernels::{Gemm, Lhs, Rhs, scalar};
#[cfg(all(
    target_arch = "aarch64",
    target_feature = "neon",
    target_feature = "i8mm"
))]
use microbert::kernels::{MatRef, Prepared};

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

/// Whether prepared bytes hold the `smmla` layout of their weights' shape.
#[cfg(all(
    target_arch = "aarch64",
    target_feature = "neon",
    target_feature = "i8mm"
))]
fn prepared_fits(p: &Prepared<'_>) -> bool {
    p.bytes().len() >= neon::prepared_len(p.raw().rows(), p.raw().cols())
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
            (Lhs::I8(a), Rhs::Prepared(p)) if prepared_fits(&p) => {
                neon::gemm_prepared(neon::Bytes::I8(a), p.bytes(), p.raw().rows(), out);
            }
            #[cfg(target_feature = "i8mm")]
            (Lhs::U8 { values, zero_point }, Rhs::Prepared(p)) if prepared_fits(&p) => {
                let a = neon::Bytes::U8(values, zero_point);
                neon::gemm_prepared(a, p.bytes(), p.raw().rows(), out);
            }
            // Without i8mm these kernels prepare nothing (and short prepared bytes are
            // ignored): the blob's weights.
            (Lhs::I8(a), Rhs::Prepared(p)) => neon::gemm(a, p.raw(), out),
            (Lhs::U8 { values, zero_point }, Rhs::Channels(b)) => {
                neon::gemm_u8(values, zero_point, b, out);
            }
            (Lhs::U8 { values, zero_point }, Rhs::Prepared(p)) => {
                neon::gemm_u8(values, zero_point, p.raw(), out);
            }
            // int16 activations: the blob's weights on every build.
            (Lhs::I16(a), Rhs::Channels(b)) => neon::gemm_wide(neon::Wide::I16(a), b, out),
            (Lhs::I16(a), Rhs::Prepared(p)) => {
                neon::gemm_wide(neon::Wide::I16(a), p.raw(), out);
            }
            (Lhs::U16(p), Rhs::Depths(v)) => neon::weighted_sums(p, v, out),
            (a, b) => {
                if let Some(g) = Gemm::new(a, b, out) {
                    scalar::gemm(g);
                }
            }
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
