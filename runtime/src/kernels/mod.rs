//! The `Kernels` trait: every product and per-row pass of inference, behind one interface.
//!
//! `runtime` never names an instruction set. The encoder is generic over `K: Kernels`;
//! [`Scalar`] is the reference implementation and the oracle; crates under `targets/`
//! implement the trait with SIMD. **Implementations MUST produce bit-identical results to
//! [`Scalar`] for every input** (the conformance suite in `kernels::testing`, behind the
//! `test-utils` feature, checks it).
//!
//! The contract of the operands is in their types ([`mat`]): a product is a checked
//! [`Gemm`] of an activation operand ([`Lhs`]: int8, uint8 with a zero point, int16 or
//! u16) and a weight operand ([`Rhs`]: per-channel rows, per-depth rows, or weights a
//! backend prepared), so a kernel needs no other precondition. Per-row passes take typed
//! parameters ([`params`]).
//!
//! **Prepared weights.** A backend may want the weights re-laid out once (packed panels,
//! precomputed column sums): it says how many bytes with [`Kernels::prepared_len`] and
//! writes them with [`Kernels::prepare`] into storage the caller owns (see
//! `crate::model::prepared`); the encoder then passes [`Rhs::Prepared`] operands, which
//! carry both the blob's weights and the backend's copy.
//!
//! Every method has a default that calls the scalar reference in [`scalar`], so a backend
//! overrides only what its instruction set speeds up.

pub mod mat;
pub mod params;
pub mod scalar;
pub mod tables;
#[cfg(feature = "test-utils")]
pub mod testing;

pub use mat::{Element, Gemm, Lhs, MatMut, MatRef, Prepared, Rhs, strided_covers};
pub use params::{LayerNormParams, LeI32s, LogitScale, Requant};
pub use scalar::PvScale;

/// The arithmetic of inference. See the module docs for the bit-exactness contract.
pub trait Kernels {
    /// Name of the backend for logs and benchmark tables (`scalar`, `avx2`, `neon-dotprod`).
    /// Prepared weights are tied to it: they are only used by a backend of the same name.
    fn name(&self) -> &'static str;

    /// A matrix product with i32 accumulation: `out[r][c] = sum_k a(r, k) * b(c, k)`,
    /// modulo 2^32 (the operand kinds document the bounds that keep true sums in range).
    ///
    /// Attention uses `Lhs::I8 x Rhs::Channels` for Q.K (keys are channels) and
    /// `Lhs::U16 x Rhs::Depths` for P.V (values are rows of depth); dense layers use
    /// `Lhs::I8 x Rhs::Channels` or `Rhs::Prepared`.
    fn gemm(&self, g: Gemm<'_, '_>) {
        scalar::gemm(g);
    }

    /// Bytes [`Self::prepare`] writes for weights of `channels` rows of `depth`; 0 when
    /// this backend reads weights as the blob stores them (the default).
    fn prepared_len(&self, channels: usize, depth: usize) -> usize {
        let _ = (channels, depth);
        0
    }

    /// Writes this backend's copy of `w` into `out`, which holds at least
    /// `prepared_len(w.rows(), w.cols())` bytes; returns whether it did (the default
    /// prepares nothing). A product given [`Rhs::Prepared`] whose bytes are too short for
    /// its shape MUST fall back to the blob's weights.
    fn prepare(&self, w: MatRef<'_, i8>, out: &mut [u8]) -> bool {
        let _ = (w, out);
        false
    }

    /// Bytes [`Self::prepare_depths`] writes for values of `depth` rows of `width`; 0
    /// when this backend reads values as they are (the default).
    fn prepared_depths_len(&self, depth: usize, width: usize) -> usize {
        let _ = (depth, width);
        0
    }

    /// Writes this backend's copy of the values `v` (`[depth, width]`, the [`Rhs::Depths`]
    /// layout) into `out`, which holds at least `prepared_depths_len(v.rows(), v.cols())`
    /// bytes; returns whether it did (the default prepares nothing). The encoder prepares
    /// each head's attention values once per layer for long inputs and passes
    /// [`Rhs::PreparedDepths`]; a product given one whose bytes are too short MUST fall
    /// back to its `raw` values.
    fn prepare_depths(&self, v: MatRef<'_, i8>, out: &mut [u8]) -> bool {
        let _ = (v, out);
        false
    }

    /// Turns one query row's Q.K accumulators into attention logits in place:
    /// `z[j] ~= acc[j] * q_amax * 2^k_exp[j] * scale` (`log2(e) * score` in Q.8; exact
    /// rounding in [`scalar::attention_logits_row`]). Keys have power-of-two scales.
    fn attention_logits_row(&self, acc: &mut [i32], q_amax: u32, k_exp: &[u32], scale: LogitScale) {
        scalar::attention_logits_row(acc, q_amax, k_exp, scale);
    }

    /// Symmetric int8 quantisation of a Q.16 row; returns its range `amax` (see
    /// [`crate::quant::quantize_row_i8`]).
    fn quantize_row_i8(&self, row: &[i32], out: &mut [i8]) -> u32 {
        crate::quant::quantize_row_i8(row, out)
    }

    /// int8 quantisation of a Q.16 row with a power-of-two scale; returns the exponent
    /// (see [`crate::quant::quantize_row_pow2`]).
    fn quantize_row_pow2(&self, row: &[i32], out: &mut [i8]) -> u32 {
        crate::quant::quantize_row_pow2(row, out)
    }

    /// Symmetric int8 quantisation of a row times SmoothQuant factors; returns the range
    /// (see [`scalar::quantize_row_i8_scaled`]).
    fn quantize_row_i8_scaled(&self, row: &[i32], factors: LeI32s<'_>, out: &mut [i8]) -> u32 {
        scalar::quantize_row_i8_scaled(row, factors, out)
    }

    /// Symmetric int16 quantisation of a row, optionally smoothed; returns the range (see
    /// [`scalar::quantize_row_i16`]).
    fn quantize_row_i16(
        &self,
        row: &[i32],
        factors: Option<LeI32s<'_>>,
        qmax: i32,
        out: &mut [i16],
    ) -> u32 {
        scalar::quantize_row_i16(row, factors, qmax, out)
    }

    /// Unsigned 8-bit quantisation of a row shifted by an offset; returns the range (see
    /// [`scalar::quantize_row_u8_offset`]).
    fn quantize_row_u8_offset(&self, row: &[i32], offset: i32, out: &mut [u8]) -> u32 {
        scalar::quantize_row_u8_offset(row, offset, out)
    }

    /// Requantises one row of i32 accumulators of a dense layer to Q.16 (see [`Requant`]).
    fn requantize_row(&self, acc: &[i32], amax: u32, rq: &Requant<'_>, out: &mut [i32]) {
        scalar::requantize_row(acc, amax, rq, out);
    }

    /// Fixed-point softmax of one row of logits (`log2(e) * score` in Q.8) with each key's
    /// value range folded in; writes u16 probabilities and returns the factor that turns the
    /// `p . v` accumulators into Q.16 (see [`scalar::softmax_row`]).
    fn softmax_row(&self, logits: &[i32], v_amax: &[u32], p: &mut [u16]) -> PvScale {
        scalar::softmax_row(logits, v_amax, p)
    }

    /// Scales one head's `p . v` accumulators to Q.16 with the factor [`Self::softmax_row`]
    /// returned: `out[t] = scale.apply(acc[t])` (see [`PvScale::apply`]).
    fn pv_scale_row(&self, acc: &[i32], scale: PvScale, out: &mut [i32]) {
        scalar::pv_scale_row(acc, scale, out);
    }

    /// LayerNorm of one Q.16 row in place (see [`scalar::layer_norm_row`]).
    fn layer_norm_row(&self, row: &mut [i32], ln: &LayerNormParams<'_>) {
        scalar::layer_norm_row(row, ln);
    }

    /// GELU (erf form) of a Q.16 row in place, by table (see [`scalar::gelu_row`]).
    fn gelu_row(&self, row: &mut [i32]) {
        scalar::gelu_row(row);
    }
}

/// The reference backend: plain Rust, every method the default.
#[derive(Debug, Clone, Copy, Default)]
pub struct Scalar;

impl Kernels for Scalar {
    fn name(&self) -> &'static str {
        "scalar"
    }
}

impl<K: Kernels + ?Sized> Kernels for &K {
    fn name(&self) -> &'static str {
        (**self).name()
    }
    fn gemm(&self, g: Gemm<'_, '_>) {
        (**self).gemm(g);
    }
    fn prepared_len(&self, channels: usize, depth: usize) -> usize {
        (**self).prepared_len(channels, depth)
    }
    fn prepare(&self, w: MatRef<'_, i8>, out: &mut [u8]) -> bool {
        (**self).prepare(w, out)
    }
    fn prepared_depths_len(&self, depth: usize, width: usize) -> usize {
        (**self).prepared_depths_len(depth, width)
    }
    fn prepare_depths(&self, v: MatRef<'_, i8>, out: &mut [u8]) -> bool {
        (**self).prepare_depths(v, out)
    }
    fn attention_logits_row(&self, acc: &mut [i32], q_amax: u32, k_exp: &[u32], scale: LogitScale) {
        (**self).attention_logits_row(acc, q_amax, k_exp, scale);
    }
    fn quantize_row_i8(&self, row: &[i32], out: &mut [i8]) -> u32 {
        (**self).quantize_row_i8(row, out)
    }
    fn quantize_row_pow2(&self, row: &[i32], out: &mut [i8]) -> u32 {
        (**self).quantize_row_pow2(row, out)
    }
    fn quantize_row_i8_scaled(&self, row: &[i32], factors: LeI32s<'_>, out: &mut [i8]) -> u32 {
        (**self).quantize_row_i8_scaled(row, factors, out)
    }
    fn quantize_row_i16(
        &self,
        row: &[i32],
        factors: Option<LeI32s<'_>>,
        qmax: i32,
        out: &mut [i16],
    ) -> u32 {
        (**self).quantize_row_i16(row, factors, qmax, out)
    }
    fn quantize_row_u8_offset(&self, row: &[i32], offset: i32, out: &mut [u8]) -> u32 {
        (**self).quantize_row_u8_offset(row, offset, out)
    }
    fn requantize_row(&self, acc: &[i32], amax: u32, rq: &Requant<'_>, out: &mut [i32]) {
        (**self).requantize_row(acc, amax, rq, out);
    }
    fn softmax_row(&self, logits: &[i32], v_amax: &[u32], p: &mut [u16]) -> PvScale {
        (**self).softmax_row(logits, v_amax, p)
    }
    fn pv_scale_row(&self, acc: &[i32], scale: PvScale, out: &mut [i32]) {
        (**self).pv_scale_row(acc, scale, out);
    }
    fn layer_norm_row(&self, row: &mut [i32], ln: &LayerNormParams<'_>) {
        (**self).layer_norm_row(row, ln);
    }
    fn gelu_row(&self, row: &mut [i32]) {
        (**self).gelu_row(row);
    }
}
