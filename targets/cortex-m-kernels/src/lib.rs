//! # microbert-cortex-m-kernels
//!
//! The Cortex-M backends of microbert: [`CortexMKernels`] implements [`microbert::Kernels`]
//! bit-identically to [`microbert::Scalar`], with the instruction set chosen by a Cargo
//! feature (rustc never sets `cfg(target_feature = "mve")`, and the DSP extension of
//! Armv8-M is optional, so the firmware author says what the core has):
//!
//! - `dsp`: the DSP extension (Cortex-M4/M7 on `thumbv7em-none-eabi[hf]`, Cortex-M33/M35P on
//!   `thumbv8m.main-none-eabi[hf]` with `-C target-feature=+dsp`). The int8 GEMM multiplies
//!   16-bit pairs with `SMLAD` (two multiply-accumulates per instruction): the activations
//!   of 4 rows are widened once into a small stack panel, the weights are read from flash
//!   as they are (never widened in memory) and split into even and odd bytes by two
//!   `SXTB16` per word, each split word serving the 4 rows. [`dsp`] has the numbers.
//! - `mve`: Helium (Cortex-M55/M85, `thumbv8m.main-none-eabihf` with
//!   `-C target-feature=+mve`): `VMLADAVA` on 3x2 tiles of 16-byte vectors, tail-predicated
//!   loops (`DLSTP`/`LETP`) for any depth. [`mve`] has the numbers. Includes `dsp`.
//!
//! Without a feature, or on another architecture (the host, where the workspace builds and
//! tests this crate), every method is the scalar reference. The assembly is `naked_asm!`
//! (stable): whole micro-kernels that own every register they use, each with its contract
//! under `# Safety` and a `// SAFETY:` comment at every call.
#![no_std]
#![deny(unsafe_op_in_unsafe_fn)]

/// The instruction-set directive for the assembler of the `naked_asm!` kernels (see the
/// crate's `build.rs`).
#[cfg(all(target_arch = "arm", feature = "mve"))]
macro_rules! isa {
    () => {
        ".cpu cortex-m55"
    };
}
#[cfg(all(
    target_arch = "arm",
    feature = "dsp",
    not(feature = "mve"),
    microbert_armv8m
))]
macro_rules! isa {
    () => {
        ".cpu cortex-m33"
    };
}
#[cfg(all(
    target_arch = "arm",
    feature = "dsp",
    not(feature = "mve"),
    not(microbert_armv8m)
))]
macro_rules! isa {
    () => {
        ""
    };
}

#[cfg(all(target_arch = "arm", feature = "dsp"))]
pub mod dsp;
#[cfg(all(target_arch = "arm", feature = "mve"))]
pub mod mve;
#[cfg(feature = "dsp")]
pub mod rows;

use microbert::Kernels;
#[cfg(all(target_arch = "arm", feature = "dsp"))]
use microbert::kernels::Gemm;
#[cfg(feature = "dsp")]
use microbert::kernels::{LayerNormParams, LogitScale, PvScale, Requant};

/// Whether this build runs DSP code.
const DSP: bool = cfg!(all(target_arch = "arm", feature = "dsp"));
/// Whether this build runs Helium code.
const MVE: bool = cfg!(all(target_arch = "arm", feature = "mve"));

/// The Cortex-M kernels of this build (the scalar reference without `dsp`/`mve` or off Arm).
#[derive(Debug, Clone, Copy, Default)]
pub struct CortexMKernels;

impl CortexMKernels {
    /// Whether this build runs SIMD code (false: the scalar fallback).
    pub const ACCELERATED: bool = DSP;

    /// The kernels; the instruction set is fixed at build time by the Cargo features.
    pub const fn new() -> Self {
        Self
    }
}

impl Kernels for CortexMKernels {
    fn name(&self) -> &'static str {
        if MVE {
            "cortex-m-mve"
        } else if DSP {
            "cortex-m-dsp"
        } else if cfg!(feature = "dsp") {
            // Off Arm (the host's tests): the portable row passes, the scalar GEMM.
            "cortex-m-rows"
        } else {
            "scalar"
        }
    }

    #[cfg(all(target_arch = "arm", feature = "dsp"))]
    fn gemm(&self, g: Gemm<'_, '_>) {
        #[cfg(feature = "mve")]
        mve::gemm(g);
        #[cfg(not(feature = "mve"))]
        dsp::gemm(g);
    }

    #[cfg(feature = "dsp")]
    fn attention_logits_row(&self, acc: &mut [i32], q_amax: u32, k_exp: &[u32], scale: LogitScale) {
        rows::attention_logits_row(acc, q_amax, k_exp, scale);
    }

    #[cfg(feature = "dsp")]
    fn quantize_row_i8(&self, row: &[i32], out: &mut [i8]) -> u32 {
        rows::quantize_row_i8(row, out)
    }

    #[cfg(feature = "dsp")]
    fn quantize_row_pow2(&self, row: &[i32], out: &mut [i8]) -> u32 {
        rows::quantize_row_pow2(row, out)
    }

    #[cfg(feature = "dsp")]
    fn requantize_row(&self, acc: &[i32], amax: u32, rq: &Requant<'_>, out: &mut [i32]) {
        rows::requantize_row(acc, amax, rq, out);
    }

    #[cfg(feature = "dsp")]
    fn softmax_row(&self, logits: &[i32], v_amax: &[u32], p: &mut [u16]) -> PvScale {
        rows::softmax_row(logits, v_amax, p)
    }

    #[cfg(feature = "dsp")]
    fn pv_scale_row(&self, acc: &[i32], scale: PvScale, out: &mut [i32]) {
        rows::pv_scale_row(acc, scale, out);
    }

    #[cfg(feature = "dsp")]
    fn layer_norm_row(&self, row: &mut [i32], ln: &LayerNormParams<'_>) {
        rows::layer_norm_row(row, ln);
    }

    #[cfg(feature = "dsp")]
    fn gelu_row(&self, row: &mut [i32]) {
        rows::gelu_row(row);
    }
}
