//! Host backend of microbert: [`HostKernels`] implements [`microbert::Kernels`] with AVX2
//! on x86-64 CPUs that have it, chosen at run time, and the scalar reference elsewhere.
//!
//! Selection happens in exactly one place, [`HostKernels::detect`]
//! (`is_x86_feature_detected!("avx2")`); every AVX2 body is a
//! `#[target_feature(enable = "avx2")] unsafe fn` in [`avx2`](crate) that only the methods of
//! a `HostKernels` built by `detect` call. The crate is built with the default x86-64
//! codegen (no `target-cpu=native`), so one binary runs on every x86-64 machine.
//!
//! Every kernel is bit-identical to [`microbert::Scalar`]: the arithmetic is integer and
//! exact (int8 values are sign-extended to i16 and multiplied with `vpmaddwd`, which cannot
//! saturate on such inputs; sums wrap modulo 2^32 exactly as the scalar `i32` sums do in
//! release builds). `tests/conformance.rs` runs the runtime's conformance suite on it.
//!
//! What is accelerated: every kernel. The GEMM (dense layers, attention Q.K and P.V, the
//! MLM head) with `vpmaddwd` on weights packed in 16-channel panels (see `avx2/packed.rs`:
//! prepared once per model by [`HostKernels::prepare_model`], or packed by the call);
//! the per-row passes (quantisation, requantisation, attention logits, softmax, the P.V
//! scale, LayerNorm, GELU) with `vpmuldq` 32 x 32 -> 64-bit products, an exact emulation of
//! the 64-bit arithmetic shift and table gathers (see `avx2/rows.rs`). Each pass hands the
//! reference the rare chunks or rows whose shifts or ranges its vector path does not cover,
//! and every tail.
//!
//! [`lines`] is the `microbert` command's line decoding (raw bytes to numbered UTF-8 lines,
//! one error per bad line, bounded memory), a library module so fuzz targets can reach it.
//!
//! ```
//! use microbert_host::HostKernels;
//! # fn main() -> Result<(), microbert::Error> {
//! # let blob = include_bytes!(concat!(env!("CARGO_MANIFEST_DIR"), "/../../models/fixtures/tiny/model.blob"));
//! let model = microbert::parse(blob)?;
//! // AVX2 when the CPU has it, with the dense weights prepared once for its GEMM.
//! let prepared = HostKernels::detect().prepare_model(&model);
//! let encoder = prepared.encoder(&model)?;
//! let mut arena = vec![0u8; microbert::scratch_bytes(&model, 3)];
//! let mut pooled = vec![0i32; model.config.hidden_size as usize];
//! encoder.embed(&[2, 7, 3], &mut arena, &mut pooled)?;
//! println!("kernels: {}", microbert::Kernels::name(encoder.kernels()));
//! # Ok(())
//! # }
//! ```
#![deny(unsafe_op_in_unsafe_fn, clippy::undocumented_unsafe_blocks)]
#![warn(missing_docs)]

#[cfg(target_arch = "x86_64")]
mod avx2;
pub mod lines;

use microbert::kernels::{
    Gemm, Kernels, LayerNormParams, LeI32s, Lhs, LogitScale, MatRef, PvScale, Requant, Rhs, scalar,
};
use microbert::{Encoder, ModelView, PreparedWeights, RunError};

/// Which instruction set a [`HostKernels`] runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Backend {
    /// The portable scalar reference (`microbert::Scalar`).
    Scalar,
    /// x86-64 AVX2 (checked at run time).
    Avx2,
}

/// The host's kernels: AVX2 when the CPU has it, the scalar reference otherwise.
///
/// A value of this type with [`Backend::Avx2`] exists only after a successful run-time
/// check, which is what makes calling the AVX2 bodies sound.
///
/// With AVX2 the backend prepares weights ([`Kernels::prepare`]): each dense layer's
/// matrix re-laid out in the panels of 16 output channels its GEMM reads, a copy about the
/// size of the int8 weights made once per model ([`Self::prepare_model`]); operands that
/// were not prepared (the keys and values of attention) are packed by each call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HostKernels {
    backend: Backend,
}

impl HostKernels {
    /// The fastest backend this CPU supports (AVX2 if present, else scalar).
    pub fn detect() -> Self {
        Self::avx2().unwrap_or_else(Self::scalar)
    }

    /// AVX2 kernels, or `None` when the CPU (or the architecture) lacks AVX2.
    pub fn avx2() -> Option<Self> {
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx2") {
            return Some(Self {
                backend: Backend::Avx2,
            });
        }
        None
    }

    /// The scalar reference, whatever the CPU.
    pub const fn scalar() -> Self {
        Self {
            backend: Backend::Scalar,
        }
    }

    /// The backend in use.
    pub const fn backend(&self) -> Backend {
        self.backend
    }

    /// Prepares `model`'s dense weights for these kernels into owned storage (nothing for
    /// the scalar backend); see [`PreparedModel::encoder`].
    pub fn prepare_model(&self, model: &ModelView<'_>) -> PreparedModel {
        let mut bytes = vec![0u8; microbert::prepared_bytes(self, model)];
        // The storage has exactly the size asked for, so this cannot fail.
        let written = microbert::prepare_weights(self, model, &mut bytes).is_ok();
        if !written {
            bytes.clear();
        }
        PreparedModel {
            kernels: *self,
            bytes,
        }
    }
}

impl Default for HostKernels {
    fn default() -> Self {
        Self::detect()
    }
}

/// A model's weights prepared by [`HostKernels::prepare_model`], in owned storage.
#[derive(Debug, Clone)]
pub struct PreparedModel {
    kernels: HostKernels,
    bytes: Vec<u8>,
}

impl PreparedModel {
    /// The kernels they were prepared for.
    pub const fn kernels(&self) -> HostKernels {
        self.kernels
    }

    /// Bytes of prepared weights (0 for the scalar backend).
    pub fn len(&self) -> usize {
        self.bytes.len()
    }

    /// Whether nothing was prepared (the scalar backend).
    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    /// The prepared weights of `model` (the model they were made from).
    ///
    /// # Errors
    /// [`RunError::PreparedMismatch`] for a model of another shape.
    pub fn weights<'p>(&'p self, model: &ModelView<'_>) -> Result<PreparedWeights<'p>, RunError> {
        PreparedWeights::from_bytes(&self.kernels, model, &self.bytes)
    }

    /// An encoder for `model` with these kernels and prepared weights.
    ///
    /// # Errors
    /// As [`Self::weights`].
    pub fn encoder<'m, 'a>(
        &'m self,
        model: &'m ModelView<'a>,
    ) -> Result<Encoder<'m, 'a, HostKernels>, RunError> {
        Encoder::new(model, self.kernels).with_prepared(self.weights(model)?)
    }
}

impl Kernels for HostKernels {
    fn name(&self) -> &'static str {
        match self.backend {
            Backend::Scalar => "scalar",
            Backend::Avx2 => "avx2",
        }
    }

    fn gemm(&self, g: Gemm<'_, '_>) {
        #[cfg(target_arch = "x86_64")]
        if self.backend == Backend::Avx2 && g.rows() > 0 && g.channels() > 0 && g.depth() > 0 {
            let (a, b, out) = g.parts();
            let acts = match a {
                Lhs::I8(m) => Some(avx2::Activations::I8(m)),
                Lhs::U8 { values, zero_point } => Some(avx2::Activations::U8(values, zero_point)),
                Lhs::I16(m) => Some(avx2::Activations::I16(m)),
                _ => None,
            };
            match (acts, a, b) {
                (Some(a), _, Rhs::Channels(b)) => {
                    // SAFETY: `backend == Avx2` only after `is_x86_feature_detected!("avx2")`
                    // (see `avx2()`); `Gemm::new` checked that the shapes agree.
                    unsafe { avx2::gemm_channels(a, b, out) };
                }
                (Some(a), _, Rhs::Prepared(p)) => {
                    let raw = p.raw();
                    let bytes: &[i8] = bytemuck::cast_slice(p.bytes());
                    match avx2::Panels::new(bytes, raw.rows(), raw.cols()) {
                        // SAFETY: as above; the panels have the weights' shape.
                        Some(panels) => unsafe { avx2::gemm_prepared(a, panels, out) },
                        // Prepared bytes too short for the shape: the blob's weights.
                        // SAFETY: as above.
                        None => unsafe { avx2::gemm_channels(a, raw, out) },
                    }
                }
                (_, Lhs::U16(p), Rhs::Depths(v)) => {
                    // SAFETY: as above.
                    unsafe { avx2::weighted_sums(p, v, out) };
                }
                (_, a, b) => {
                    if let Some(g) = Gemm::new(a, b, out) {
                        scalar::gemm(g);
                    }
                }
            }
            return;
        }
        scalar::gemm(g);
    }

    fn prepared_len(&self, channels: usize, depth: usize) -> usize {
        match self.backend {
            #[cfg(target_arch = "x86_64")]
            Backend::Avx2 => avx2::panel_len(channels, depth).unwrap_or(usize::MAX),
            _ => 0,
        }
    }

    fn prepare(&self, w: MatRef<'_, i8>, out: &mut [u8]) -> bool {
        #[cfg(target_arch = "x86_64")]
        if self.backend == Backend::Avx2
            && avx2::panel_len(w.rows(), w.cols()).is_some_and(|len| len <= out.len())
        {
            // SAFETY: AVX2 was detected (see `avx2()`); `out` holds the packing.
            unsafe { avx2::pack_channels(w, bytemuck::cast_slice_mut(out)) };
            return true;
        }
        let _ = (w, out);
        false
    }

    fn requantize_row(&self, acc: &[i32], amax: u32, rq: &Requant<'_>, out: &mut [i32]) {
        #[cfg(target_arch = "x86_64")]
        if self.backend == Backend::Avx2 {
            // SAFETY: AVX2 was detected (see `avx2()`); the body checks every length itself.
            unsafe { avx2::requantize_row(acc, amax, rq, out) };
            return;
        }
        scalar::requantize_row(acc, amax, rq, out);
    }

    fn quantize_row_i8(&self, row: &[i32], out: &mut [i8]) -> u32 {
        #[cfg(target_arch = "x86_64")]
        if self.backend == Backend::Avx2 {
            // SAFETY: AVX2 was detected (see `avx2()`); the body checks every length itself.
            return unsafe { avx2::quantize_row_i8(row, out) };
        }
        microbert::quant::quantize_row_i8(row, out)
    }

    fn quantize_row_i8_scaled(&self, row: &[i32], factors: LeI32s<'_>, out: &mut [i8]) -> u32 {
        #[cfg(target_arch = "x86_64")]
        if self.backend == Backend::Avx2 {
            // SAFETY: AVX2 was detected (see `avx2()`); the body checks every length itself.
            return unsafe { avx2::quantize_row_i8_scaled(row, factors, out) };
        }
        scalar::quantize_row_i8_scaled(row, factors, out)
    }

    fn quantize_row_i16(
        &self,
        row: &[i32],
        factors: Option<LeI32s<'_>>,
        qmax: i32,
        out: &mut [i16],
    ) -> u32 {
        #[cfg(target_arch = "x86_64")]
        if self.backend == Backend::Avx2 {
            // SAFETY: AVX2 was detected (see `avx2()`); the body checks every length itself.
            return unsafe { avx2::quantize_row_i16(row, factors, qmax, out) };
        }
        scalar::quantize_row_i16(row, factors, qmax, out)
    }

    fn quantize_row_u8_offset(&self, row: &[i32], offset: i32, out: &mut [u8]) -> u32 {
        #[cfg(target_arch = "x86_64")]
        if self.backend == Backend::Avx2 {
            // SAFETY: AVX2 was detected (see `avx2()`); the body checks every length itself.
            return unsafe { avx2::quantize_row_u8_offset(row, offset, out) };
        }
        scalar::quantize_row_u8_offset(row, offset, out)
    }

    fn quantize_row_pow2(&self, row: &[i32], out: &mut [i8]) -> u32 {
        #[cfg(target_arch = "x86_64")]
        if self.backend == Backend::Avx2 {
            // SAFETY: AVX2 was detected (see `avx2()`); the body checks every length itself.
            return unsafe { avx2::quantize_row_pow2(row, out) };
        }
        microbert::quant::quantize_row_pow2(row, out)
    }

    fn attention_logits_row(&self, acc: &mut [i32], q_amax: u32, k_exp: &[u32], scale: LogitScale) {
        #[cfg(target_arch = "x86_64")]
        if self.backend == Backend::Avx2 {
            // SAFETY: AVX2 was detected (see `avx2()`); the body checks every length itself.
            unsafe { avx2::attention_logits_row(acc, q_amax, k_exp, scale) };
            return;
        }
        scalar::attention_logits_row(acc, q_amax, k_exp, scale);
    }

    fn softmax_row(&self, logits: &[i32], v_amax: &[u32], p: &mut [u16]) -> PvScale {
        #[cfg(target_arch = "x86_64")]
        if self.backend == Backend::Avx2 {
            // SAFETY: AVX2 was detected (see `avx2()`); the body checks every length itself.
            return unsafe { avx2::softmax_row(logits, v_amax, p) };
        }
        scalar::softmax_row(logits, v_amax, p)
    }

    fn pv_scale_row(&self, acc: &[i32], scale: PvScale, out: &mut [i32]) {
        #[cfg(target_arch = "x86_64")]
        if self.backend == Backend::Avx2 {
            // SAFETY: AVX2 was detected (see `avx2()`); the body checks every length itself.
            unsafe { avx2::pv_scale_row(acc, scale, out) };
            return;
        }
        scalar::pv_scale_row(acc, scale, out);
    }

    fn gelu_row(&self, row: &mut [i32]) {
        #[cfg(target_arch = "x86_64")]
        if self.backend == Backend::Avx2 {
            // SAFETY: AVX2 was detected (see `avx2()`).
            unsafe { avx2::gelu_row(row) };
            return;
        }
        scalar::gelu_row(row);
    }

    fn layer_norm_row(&self, row: &mut [i32], ln: &LayerNormParams<'_>) {
        #[cfg(target_arch = "x86_64")]
        if self.backend == Backend::Avx2 {
            // SAFETY: AVX2 was detected (see `avx2()`); the body checks every length itself.
            unsafe { avx2::layer_norm_row(row, ln) };
            return;
        }
        scalar::layer_norm_row(row, ln);
    }
}
