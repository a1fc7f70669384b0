//! The `Kernels` trait: every product and per-row pass of inference, behind one interface.
//!
//! `runtime` never names an instruction set. The encoder is generic over `K: Kernels`;
//! [`Scalar`] is the reference implementation and the oracle; crates under `targets/`
//! implement the trait with SIMD. **Implementations MUST produce bit-identical results to
//! [`Scalar`] for every input** (the conformance suite in `kernels::testing`, behind the
//! `test-utils` feature, checks it).
//!
//! Every method has a default that calls the scalar reference in [`scalar`], so a backend
//! overrides only what its instruction set speeds up.

pub mod scalar;
pub mod tables;
#[cfg(feature = "test-utils")]
pub mod testing;

/// Requantisation parameters of one dense layer's output channels, borrowed from the blob:
/// `y[c] ~= acc[c] * amax * multiplier[c] / 2^shift[c] + bias[c]`, saturated (the exact
/// rounding steps are in [`scalar::requantize_row`]).
#[derive(Debug, Clone, Copy)]
pub struct Requant<'a> {
    /// i32 LE per channel, non-negative.
    pub multiplier: &'a [u8],
    /// Shift per channel, at most [`crate::blob::format::MAX_SHIFT`].
    pub shift: &'a [u8],
    /// i32 LE per channel (Q.16); empty means no bias.
    pub bias: &'a [u8],
}

/// Whether `rows` rows of `width` elements, `ld` apart, lie within a slice of `len`
/// elements (no overflow, no out-of-bounds access). SIMD backends check their operands
/// with it before entering unchecked code.
pub fn strided_covers(rows: usize, width: usize, ld: usize, len: usize) -> bool {
    rows.checked_sub(1)
        .and_then(|r| r.checked_mul(ld))
        .and_then(|x| x.checked_add(width))
        .is_some_and(|end| end <= len)
}

/// Whether a [`Kernels::gemm_i8`] call is non-empty and its slices cover its shapes: the
/// precondition of every SIMD GEMM (calls that fail it go to the scalar reference).
#[allow(clippy::too_many_arguments)]
pub fn gemm_fits(
    m: usize,
    n: usize,
    depth: usize,
    a: &[i8],
    lda: usize,
    b: &[i8],
    ldb: usize,
    out: &[i32],
) -> bool {
    m > 0
        && n > 0
        && depth > 0
        && m.checked_mul(n).is_some_and(|mn| mn <= out.len())
        && strided_covers(m, depth, lda, a.len())
        && strided_covers(n, depth, ldb, b.len())
}

/// [`Kernels::weighted_sum_block`] row by row with `k`'s per-row kernel (the default, and
/// the fallback of backends that override it).
#[allow(clippy::too_many_arguments)]
pub fn weighted_sum_rows<K: Kernels + ?Sized>(
    k: &K,
    rows: usize,
    keys: usize,
    p: &[u16],
    v: &[i8],
    ldv: usize,
    width: usize,
    out: &mut [i32],
) {
    for r in 0..rows {
        let (Some(pr), Some(o)) = (
            p.get(r * keys..(r + 1) * keys),
            out.get_mut(r * width..(r + 1) * width),
        ) else {
            return;
        };
        k.weighted_sum_u16_i8(pr, v, ldv, o);
    }
}

/// The arithmetic of inference. See the module docs for the bit-exactness contract.
pub trait Kernels {
    /// Name of the backend for logs and benchmark tables (`scalar`, `avx2`, `neon-dotprod`).
    fn name(&self) -> &'static str;

    /// int8 matrix product with i32 accumulation:
    /// `out[r * n + c] = sum_k a[r * lda + k] * b[c * ldb + k]` for `r < m`, `c < n`, `k < depth`.
    ///
    /// `b` holds the weights row-major by output channel (the checkpoint's `[out, in]`).
    /// Inputs stay in [-127, 127], so no product saturates and `depth < 2^17` cannot overflow.
    /// Callers guarantee the slices cover the shapes.
    #[allow(clippy::too_many_arguments)]
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
        scalar::gemm_i8(m, n, depth, a, lda, b, ldb, out);
    }

    /// Probability-weighted sum of int8 rows: `out[t] = sum_j p[j] * v[j * ldv + t]` for
    /// `j < p.len()`, `t < out.len()`. The probabilities sum to about 65,535, so the i32
    /// accumulators cannot overflow.
    fn weighted_sum_u16_i8(&self, p: &[u16], v: &[i8], ldv: usize, out: &mut [i32]) {
        scalar::weighted_sum_u16_i8(p, v, ldv, out);
    }

    /// [`Self::weighted_sum_u16_i8`] for a block of query rows:
    /// `out[r * width + t] = sum_j p[r * keys + j] * v[j * ldv + t]` for `r < rows`,
    /// `j < keys`, `t < width`. Rows whose slices `p` or `out` do not hold are left alone.
    /// The default runs the per-row kernel on each row.
    #[allow(clippy::too_many_arguments)]
    fn weighted_sum_block(
        &self,
        rows: usize,
        keys: usize,
        p: &[u16],
        v: &[i8],
        ldv: usize,
        width: usize,
        out: &mut [i32],
    ) {
        weighted_sum_rows(self, rows, keys, p, v, ldv, width, out);
    }

    /// Turns one query row's Q.K accumulators into attention logits in place:
    /// `z[j] ~= acc[j] * q_amax * 2^k_exp[j] * multiplier / 2^shift` (`log2(e) * score` in
    /// Q.8; exact rounding in [`scalar::attention_logits_row`]; see
    /// [`crate::blob::Config::attention_logit_multiplier`]). Keys have power-of-two scales.
    fn attention_logits_row(
        &self,
        acc: &mut [i32],
        q_amax: u32,
        k_exp: &[u32],
        multiplier: i32,
        shift: u8,
    ) {
        scalar::attention_logits_row(acc, q_amax, k_exp, multiplier, shift);
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

    /// Requantises one row of i32 accumulators of a dense layer to Q.16 (see [`Requant`]).
    fn requantize_row(&self, acc: &[i32], amax: u32, rq: &Requant<'_>, out: &mut [i32]) {
        scalar::requantize_row(acc, amax, rq, out);
    }

    /// Fixed-point softmax of one row of logits (`log2(e) * score` in Q.8) with each key's
    /// value range folded in; writes u16 probabilities and returns the factor that turns the
    /// `p . v` accumulators into Q.16 (see [`scalar::softmax_row`]).
    fn softmax_row(&self, logits: &[i32], v_amax: &[u32], p: &mut [u16]) -> scalar::PvScale {
        scalar::softmax_row(logits, v_amax, p)
    }

    /// Scales one head's `p . v` accumulators to Q.16 with the factor [`Self::softmax_row`]
    /// returned: `out[t] = scale.apply(acc[t])` (see [`scalar::PvScale::apply`]).
    fn pv_scale_row(&self, acc: &[i32], scale: scalar::PvScale, out: &mut [i32]) {
        scalar::pv_scale_row(acc, scale, out);
    }

    /// LayerNorm of one Q.16 row in place (see [`scalar::layer_norm_row`]).
    fn layer_norm_row(&self, row: &mut [i32], gamma: &[u8], beta: &[u8], eps_q32: u64) {
        scalar::layer_norm_row(row, gamma, beta, eps_q32);
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
        (**self).gemm_i8(m, n, depth, a, lda, b, ldb, out);
    }
    fn weighted_sum_u16_i8(&self, p: &[u16], v: &[i8], ldv: usize, out: &mut [i32]) {
        (**self).weighted_sum_u16_i8(p, v, ldv, out);
    }
    fn weighted_sum_block(
        &self,
        rows: usize,
        keys: usize,
        p: &[u16],
        v: &[i8],
        ldv: usize,
        width: usize,
        out: &mut [i32],
    ) {
        (**self).weighted_sum_block(rows, keys, p, v, ldv, width, out);
    }
    fn attention_logits_row(
        &self,
        acc: &mut [i32],
        q_amax: u32,
        k_exp: &[u32],
        multiplier: i32,
        shift: u8,
    ) {
        (**self).attention_logits_row(acc, q_amax, k_exp, multiplier, shift);
    }
    fn quantize_row_i8(&self, row: &[i32], out: &mut [i8]) -> u32 {
        (**self).quantize_row_i8(row, out)
    }
    fn quantize_row_pow2(&self, row: &[i32], out: &mut [i8]) -> u32 {
        (**self).quantize_row_pow2(row, out)
    }
    fn requantize_row(&self, acc: &[i32], amax: u32, rq: &Requant<'_>, out: &mut [i32]) {
        (**self).requantize_row(acc, amax, rq, out);
    }
    fn softmax_row(&self, logits: &[i32], v_amax: &[u32], p: &mut [u16]) -> scalar::PvScale {
        (**self).softmax_row(logits, v_amax, p)
    }
    fn pv_scale_row(&self, acc: &[i32], scale: scalar::PvScale, out: &mut [i32]) {
        (**self).pv_scale_row(acc, scale, out);
    }
    fn layer_norm_row(&self, row: &mut [i32], gamma: &[u8], beta: &[u8], eps_q32: u64) {
        (**self).layer_norm_row(row, gamma, beta, eps_q32);
    }
    fn gelu_row(&self, row: &mut [i32]) {
        (**self).gelu_row(row);
    }
}
