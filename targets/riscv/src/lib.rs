//! # microbert-riscv
//!
//! The RISC-V backend of microbert: [`RvvKernels`] implements [`microbert::Kernels`] with
//! the vector extension (RVV 1.0), bit-identical to [`microbert::Scalar`]. The kernels are
//! vector-length agnostic (`vsetvli` strip-mining; tested at VLEN 128 and 256) and written
//! with `asm!`, since Rust has no stable RVV intrinsics. Built for
//! `riscv64gc-unknown-linux-gnu` (or a bare-metal riscv64) with `-C target-feature=+v`.
//!
//! - the dense GEMM (int8 weights times int8, int16 or uint8-with-a-zero-point activations):
//!   2x2 tiles of row dot products. Under `e16, m2` a `vle8.v` loads VL weight bytes (EMUL 1)
//!   without changing `vtype` and `vsext.vf2` widens them to i16; int8 activations are
//!   loaded and widened the same way, int16 ones (the calibrated q/k/v inputs) loaded as
//!   they are with `vle16.v`, and uint8 ones (the calibrated FFN2 input) widened to
//!   `q - zero_point` into a 2-row stack panel first. `vwmacc.vv` accumulates the i16 x i16
//!   products into i32 lanes (`m4`), tail-undisturbed so the last partial strip keeps the
//!   other lanes; one `vredsum.vs` per output at the end. 19 (int8) or 18 (int16, uint8)
//!   instructions per `4 * VLEN / 8` multiply-accumulates in the inner loop: 0.30 and 0.28
//!   per MAC at VLEN 128, half that at 256.
//! - the P.V product (row by row): over columns, `vwmaccus.vx` (unsigned u16 probability times
//!   signed i16 value) into i32 lanes: exact, no offset trick needed.
//!
//! The other per-row passes use the scalar defaults. Without `target_feature = "v"` (or on
//! another architecture) every method is the scalar one, so the workspace builds anywhere.
#![no_std]
#![deny(unsafe_op_in_unsafe_fn)]

#[cfg(all(target_arch = "riscv64", target_feature = "v"))]
mod rvv;

use microbert::Kernels;
#[cfg(all(target_arch = "riscv64", target_feature = "v"))]
use microbert::kernels::{Gemm, Lhs, Rhs, scalar};

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
    fn gemm(&self, g: Gemm<'_, '_>) {
        if g.rows() == 0 || g.channels() == 0 || g.depth() == 0 {
            return scalar::gemm(g);
        }
        let (a, b, out) = g.parts();
        match (a, b) {
            // These kernels prepare nothing: prepared operands are the blob's weights.
            (Lhs::I8(a), Rhs::Channels(b)) => rvv::gemm(a, b, out),
            (Lhs::I8(a), Rhs::Prepared(p)) => rvv::gemm(a, p.raw(), out),
            (Lhs::I16(a), Rhs::Channels(b)) => rvv::gemm_i16(a, b, out),
            (Lhs::I16(a), Rhs::Prepared(p)) => rvv::gemm_i16(a, p.raw(), out),
            (Lhs::U8 { values, zero_point }, Rhs::Channels(b)) => {
                rvv::gemm_u8(values, zero_point, b, out);
            }
            (Lhs::U8 { values, zero_point }, Rhs::Prepared(p)) => {
                rvv::gemm_u8(values, zero_point, p.raw(), out);
            }
            (Lhs::U16(p), Rhs::Depths(v)) => rvv::weighted_sums(p, v, out),
            (a, b) => {
                if let Some(g) = Gemm::new(a, b, out) {
                    scalar::gemm(g);
                }
            }
        }
    }
}
