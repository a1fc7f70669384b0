//! `BertLayer`: self-attention streamed by query rows, add & LayerNorm, feed-forward
//! (`BertIntermediate` with GELU, `BertOutput`), add & LayerNorm.
//!
//! A layer runs in two passes over blocks of query rows. Pass 1 projects every token's
//! key and value and keeps them as int8 with one range per (token, head). Pass 2, per
//! block: queries, then for each head the block's Q.K scores against all keys (`block x n`
//! accumulators), per query row the fixed-point softmax (`block x n` probabilities), and
//! the block's weighted sums of values in one product; then the output projection,
//! residual and LayerNorm, and the feed-forward block on the same rows. Pass 2 overwrites
//! the residual stream in place: the later blocks need only K and V (already computed) and
//! their own rows.

use super::dense::{DenseScratch, forward, forward_quantized, layer_norm, product, quantize_input};
use super::prepared::{DenseRole, PreparedWeights};
use super::scratch::{BLOCK_ROWS, Buffers, Plan};
use crate::blob::{Config, InputFormat, LayerNorm, LayerSection, ModelView, QuantizedInput};
use crate::kernels::{Kernels, Lhs, LogitScale, MatRef, PvScale, Rhs};
use crate::quant::sat_i32_from_i64;
use core::ops::ControlFlow;

/// How [`quantize_heads`] scales each head's slice.
#[derive(Clone, Copy)]
enum HeadScale {
    /// Symmetric, by the slice's range.
    Range,
    /// A power of two (keys: the logits then shift instead of multiply).
    Pow2,
}

/// Quantises each head's slice of `rows` Q.16 rows (`[rows, d]`, `heads` slices per row) to
/// int8 and hands the range, or the exponent, of row `r`, head `h` to `store(r, h, scale)`.
fn quantize_heads<K: Kernels>(
    k: &K,
    heads: usize,
    src: MatRef<'_, i32>,
    dst: &mut [i8],
    scale: HeadScale,
    mut store: impl FnMut(usize, usize, u32),
) {
    let (rows, d) = (src.rows(), src.cols());
    let src = src.data();
    let dh = d / heads.max(1);
    for r in 0..rows {
        for h in 0..heads {
            let lo = r * d + h * dh;
            if let (Some(s), Some(q)) = (src.get(lo..lo + dh), dst.get_mut(lo..lo + dh)) {
                let value = match scale {
                    HeadScale::Pow2 => k.quantize_row_pow2(s, q),
                    HeadScale::Range => k.quantize_row_i8(s, q),
                };
                store(r, h, value);
            }
        }
    }
}

/// Adds the sublayer output `y` (`[rows, d]`) to the residual rows and applies LayerNorm.
fn add_and_norm<K: Kernels>(
    k: &K,
    residual: &mut [i32],
    y: &[i32],
    d: usize,
    ln: &LayerNorm<'_>,
    eps_q32: u64,
) {
    let Some(ln) = layer_norm(ln, eps_q32) else {
        return;
    };
    let rows = residual.len() / d.max(1);
    for (row, add) in residual
        .chunks_exact_mut(d)
        .zip(y.chunks_exact(d))
        .take(rows)
    {
        for (x, &a) in row.iter_mut().zip(add) {
            *x = sat_i32_from_i64(i64::from(*x) + i64::from(a));
        }
        k.layer_norm_row(row, &ln);
    }
}

/// One encoder layer's weights: the blob's, with the backend's prepared copies.
pub(crate) struct LayerWeights<'l, 'a> {
    /// The layer.
    pub(crate) layer: &'l LayerSection<'a>,
    /// Its index (for the prepared copies).
    pub(crate) index: usize,
    /// The prepared copies, if any.
    pub(crate) prepared: Option<PreparedWeights<'l>>,
    /// The model (for the formats of the dense inputs).
    pub(crate) model: &'l ModelView<'a>,
}

impl LayerWeights<'_, '_> {
    /// How this layer quantises one of its dense inputs.
    fn format(&self, input: QuantizedInput) -> InputFormat {
        self.model.input_format(self.index, input)
    }

    /// The prepared copy of a dense layer (empty: read the blob's weights).
    fn prepared(&self, role: DenseRole) -> &[u8] {
        self.prepared
            .as_ref()
            .map_or(&[], |p| p.dense(self.index, role))
    }
}

/// Runs one encoder layer over the whole sequence in `b.hidden`; `block_done` is called
/// after each block of query rows and may stop the pass.
pub(crate) fn forward_layer<K: Kernels>(
    k: &K,
    c: &Config,
    w: &LayerWeights<'_, '_>,
    plan: &Plan,
    b: &mut Buffers<'_>,
    block_done: &mut dyn FnMut() -> ControlFlow<()>,
) -> ControlFlow<()> {
    let layer = w.layer;
    let (n, block) = (plan.tokens(), plan.block());
    let (d, heads) = (c.hidden_size as usize, c.num_attention_heads as usize);
    let dh = d / heads.max(1);
    let logit = LogitScale {
        multiplier: c.attention_logit_multiplier,
        shift: c.attention_logit_shift,
    };

    // Pass 1: keys and values of every token.
    for r0 in (0..n).step_by(block) {
        let rows = block.min(n - r0);
        let input = b.hidden.get(r0 * d..(r0 + rows) * d).unwrap_or_default();
        let mut s = dense_scratch!(b);
        // Keys with power-of-two scales (the logits then shift instead of multiply),
        // values with their ranges (folded into the probabilities).
        // Both read the same input: quantised once unless their smoothing differs.
        let qkv = w.format(QuantizedInput::Attention);
        quantize_input(k, &layer.key, qkv, rows, input, &mut s);
        for (role, q, scales, how) in [
            (DenseRole::Key, &mut *b.k_q, &mut *b.k_exp, HeadScale::Pow2),
            (
                DenseRole::Value,
                &mut *b.v_q,
                &mut *b.v_amax,
                HeadScale::Range,
            ),
        ] {
            let dense = role.of(layer);
            let same = match (&dense.input_smoothing, &layer.key.input_smoothing) {
                (None, None) => true,
                (Some(a), Some(b)) => a.data == b.data,
                _ => false,
            };
            if !same {
                quantize_input(k, dense, qkv, rows, input, &mut s);
            }
            forward_quantized(k, dense, (qkv, w.prepared(role)), rows, &mut s, b.y);
            let dst = q.get_mut(r0 * d..(r0 + rows) * d).unwrap_or_default();
            let projected = MatRef::contiguous(b.y.get(..rows * d).unwrap_or_default(), rows, d);
            let Some(projected) = projected else {
                return ControlFlow::Continue(());
            };
            quantize_heads(k, heads, projected, dst, how, |r, h, a| {
                if let Some(slot) = scales.get_mut(h * n + r0 + r) {
                    *slot = a;
                }
            });
        }
    }
    let (Some(keys), Some(values)) = (
        MatRef::contiguous(&*b.k_q, n, d),
        MatRef::contiguous(&*b.v_q, n, d),
    ) else {
        return ControlFlow::Continue(());
    };

    // Pass 2: attention, output projection and feed-forward, block by block.
    for r0 in (0..n).step_by(block) {
        let rows = block.min(n - r0);
        let mut s = dense_scratch!(b);
        {
            let input = b.hidden.get(r0 * d..(r0 + rows) * d).unwrap_or_default();
            let how = (
                w.format(QuantizedInput::Attention),
                w.prepared(DenseRole::Query),
            );
            forward(k, &layer.query, how, rows, input, &mut s, b.y);
        }
        let projected = MatRef::contiguous(b.y.get(..rows * d).unwrap_or_default(), rows, d);
        let Some(projected) = projected else {
            return ControlFlow::Continue(());
        };
        quantize_heads(k, heads, projected, b.q_q, HeadScale::Range, |r, h, a| {
            if let Some(slot) = b.q_amax.get_mut(r * heads + h) {
                *slot = a;
            }
        });
        let Some(queries) = MatRef::contiguous(&*b.q_q, rows, d) else {
            return ControlFlow::Continue(());
        };
        for h in 0..heads {
            let (Some(q), Some(k_h), Some(v_h)) = (
                queries.cols_range(h * dh, dh),
                keys.cols_range(h * dh, dh),
                values.cols_range(h * dh, dh),
            ) else {
                continue;
            };
            // Q.K: the keys are the product's channels.
            product(k, Lhs::I8(q), Rhs::Channels(k_h), s.acc);
            let k_exp = b.k_exp.get(h * n..(h + 1) * n).unwrap_or_default();
            let v_amax = b.v_amax.get(h * n..(h + 1) * n).unwrap_or_default();
            // Softmax of every row of the block, then one product of the block's
            // probabilities with the head's values.
            let mut scales = [PvScale::default(); BLOCK_ROWS];
            for (r, scale) in scales.iter_mut().enumerate().take(rows) {
                let (Some(logits), Some(p)) = (
                    s.acc.get_mut(r * n..(r + 1) * n),
                    b.p.get_mut(r * n..(r + 1) * n),
                ) else {
                    continue;
                };
                let q_amax = b.q_amax.get(r * heads + h).copied().unwrap_or(0);
                k.attention_logits_row(logits, q_amax, k_exp, logit);
                *scale = k.softmax_row(logits, v_amax, p);
            }
            // P.V: the values are rows of depth (one per key).
            if let Some(p) = MatRef::contiguous(b.p.get(..rows * n).unwrap_or_default(), rows, n) {
                product(k, Lhs::U16(p), Rhs::Depths(v_h), b.pv);
            }
            for (r, &scale) in scales.iter().enumerate().take(rows) {
                let lo = r * d + h * dh;
                if let (Some(pv), Some(ctx)) =
                    (b.pv.get(r * dh..(r + 1) * dh), b.z.get_mut(lo..lo + dh))
                {
                    k.pv_scale_row(pv, scale, ctx);
                }
            }
        }
        // The context is always int8 (the study: lossless).
        let how = (InputFormat::Int8, w.prepared(DenseRole::AttentionOutput));
        forward(k, &layer.attention_output, how, rows, b.z, &mut s, b.y);
        let residual = b
            .hidden
            .get_mut(r0 * d..(r0 + rows) * d)
            .unwrap_or_default();
        let eps = c.layer_norm_eps_q32;
        add_and_norm(k, residual, b.y, d, &layer.attention_layer_norm, eps);

        // Feed-forward on the same rows.
        let ffn = c.intermediate_size as usize;
        let how = (
            w.format(QuantizedInput::Intermediate),
            w.prepared(DenseRole::Intermediate),
        );
        forward(k, &layer.intermediate, how, rows, residual, &mut s, b.y);
        for row in b.y.chunks_exact_mut(ffn).take(rows) {
            k.gelu_row(row);
        }
        let how = (
            w.format(QuantizedInput::Output),
            w.prepared(DenseRole::Output),
        );
        forward(k, &layer.output, how, rows, b.y, &mut s, b.z);
        add_and_norm(k, residual, b.z, d, &layer.output_layer_norm, eps);
        block_done()?;
    }
    ControlFlow::Continue(())
}
