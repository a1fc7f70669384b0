//! # microbert-riscv
//!
//! The RISC-V backend of microbert: [`RvvKernels`] implements [`microbert::Kernels`] with
//! the vector extension (RVV 1.0), bit-identical to [`microbert::Scalar`]. The kernels are
//! vector-length agnostic (`vsetvli` strip-mining; tested at VLEN 128 and 256) and written
//! with `asm!`, since Rust has no stable RVV intrinsics. Built for
//! `riscv64gc-unknown-linux-gnu` (or a bare-metal riscv64) with `-C target-feature=+v`.
//!
//! - `gemm_i8`: 2x2 tiles of row dot products. Under `e16, m2` a `vle8.v` loads VL bytes
//!   (EMUL 1) without changing `vtype`, `vsext.vf2` widens them to i16 and `vwmacc.vv`
//!   accumulates i16 x i16 products into i32 lanes (`m4`), tail-undisturbed so the last
//!   partial strip keeps the other lanes; one `vredsum.vs` per output at the end.
//! - `weighted_sum_u16_i8`: over columns, `vwmaccus.vx` (unsigned u16 probability times
//!   signed i16 value) into i32 lanes: exact, no offset trick needed.
//!
//! The other per-row passes use the scalar defaults. Without `target_feature = "v"` (or on
//! another architecture) every method is the scalar one, so the workspace builds anywhere.
#![no_std]
#![deny(unsafe_op_in_unsafe_fn)]

#[cfg(all(target_arch = "riscv64", target_feature = "v"))]
mod rvv;

use microbert::Kernels;

/// RVV 1.0 kernels (the scalar reference on targets without the V extension).
#[derive(Debug, Clone, Copy, Default)]
pub struct RvvKernels;

impl RvvKernels {
    /// Whether this build runs vector code (false: the scalar fallback).
    pub const ACCELERATED: bool = cfg!(all(target_arch = "riscv64", target_feature = "v"));

    /// The kernels; the instruction set is fixed at compile time (`+v`).
    pub const fn new() -> Self {
        Self
    }
}

impl Kernels for RvvKernels {
    fn name(&self) -> &'static str {
        if Self::ACCELERATED { "rvv" } else { "scalar" }
    }

    #[cfg(all(target_arch = "riscv64", target_feature = "v"))]
    fn gemm_i8(
        &self,
        m: usize,
        n: usize,
        depth: usize,
        a: &[i8],
        lda: usize,
        b: &[i8],
        ldb: usize,
        out: &mut [i32],
    ) {
        rvv::gemm_i8(m, n, depth, a, lda, b, ldb, out);
    }

    #[cfg(all(target_arch = "riscv64", target_feature = "v"))]
    fn weighted_sum_u16_i8(&self, p: &[u16], v: &[i8], ldv: usize, out: &mut [i32]) {
        rvv::weighted_sum_u16_i8(p, v, ldv, out);
    }
}
