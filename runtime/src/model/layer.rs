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

use super::dense::{DenseScratch, forward, forward_quantized, quantize_input};
use super::scratch::{BLOCK_ROWS, Buffers, Plan};
use crate::blob::{Config, LayerNorm, LayerSection};
use crate::kernels::Kernels;
use crate::kernels::scalar::PvScale;
use crate::quant::sat_i32_from_i64;

/// Quantises each head's slice of `rows` Q.16 rows (`[rows, d]`) to int8 (with a
/// power-of-two scale when `pow2`) and hands the range, or the exponent, of row `r`, head
/// `h` to `store(r, h, scale)`.
#[allow(clippy::too_many_arguments)]
fn quantize_heads<K: Kernels>(
    k: &K,
    rows: usize,
    d: usize,
    heads: usize,
    src: &[i32],
    dst: &mut [i8],
    pow2: bool,
    mut store: impl FnMut(usize, usize, u32),
) {
    let dh = d / heads;
    for r in 0..rows {
        for h in 0..heads {
            let lo = r * d + h * dh;
            if let (Some(s), Some(q)) = (src.get(lo..lo + dh), dst.get_mut(lo..lo + dh)) {
                let scale = if pow2 {
                    k.quantize_row_pow2(s, q)
                } else {
                    k.quantize_row_i8(s, q)
                };
                store(r, h, scale);
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
    rows: usize,
    ln: &LayerNorm<'_>,
    eps_q32: u64,
) {
    for (row, add) in residual
        .chunks_exact_mut(d)
        .zip(y.chunks_exact(d))
        .take(rows)
    {
        for (x, &a) in row.iter_mut().zip(add) {
            *x = sat_i32_from_i64(i64::from(*x) + i64::from(a));
        }
        k.layer_norm_row(row, ln.gamma.data, ln.beta.data, eps_q32);
    }
}

/// Runs one encoder layer over the whole sequence in `b.hidden`.
pub(crate) fn forward_layer<K: Kernels>(
    k: &K,
    c: &Config,
    layer: &LayerSection<'_>,
    plan: &Plan,
    b: &mut Buffers<'_>,
    block_done: &mut dyn FnMut(),
) {
    let (n, d, heads, block) = (plan.n, plan.d, plan.heads, plan.block);
    let dh = d / heads;

    // Pass 1: keys and values of every token.
    for r0 in (0..n).step_by(block) {
        let rows = block.min(n - r0);
        let input = b.hidden.get(r0 * d..(r0 + rows) * d).unwrap_or_default();
        let mut s = DenseScratch {
            x_smooth: &mut *b.x_smooth,
            x_q: &mut *b.x_q,
            x_amax: &mut *b.x_amax,
            acc: &mut *b.acc,
        };
        // Keys with power-of-two scales (the logits then shift instead of multiply),
        // values with their ranges (folded into the probabilities).
        // Both read the same input: quantised once unless their smoothing differs.
        quantize_input(k, &layer.key, rows, input, &mut s);
        for (dense, q, scale, pow2) in [
            (&layer.key, &mut *b.k_q, &mut *b.k_exp, true),
            (&layer.value, &mut *b.v_q, &mut *b.v_amax, false),
        ] {
            let same = match (&dense.input_smoothing, &layer.key.input_smoothing) {
                (None, None) => true,
                (Some(a), Some(b)) => a.data == b.data,
                _ => false,
            };
            if !same {
                quantize_input(k, dense, rows, input, &mut s);
            }
            forward_quantized(k, dense, rows, &mut s, b.y);
            let dst = q.get_mut(r0 * d..(r0 + rows) * d).unwrap_or_default();
            quantize_heads(k, rows, d, heads, b.y, dst, pow2, |r, h, a| {
                if let Some(slot) = scale.get_mut(h * n + r0 + r) {
                    *slot = a;
                }
            });
        }
    }

    // Pass 2: attention, output projection and feed-forward, block by block.
    for r0 in (0..n).step_by(block) {
        let rows = block.min(n - r0);
        let mut s = DenseScratch {
            x_smooth: &mut *b.x_smooth,
            x_q: &mut *b.x_q,
            x_amax: &mut *b.x_amax,
            acc: &mut *b.acc,
        };
        {
            let input = b.hidden.get(r0 * d..(r0 + rows) * d).unwrap_or_default();
            forward(k, &layer.query, rows, input, &mut s, b.y);
        }
        quantize_heads(k, rows, d, heads, b.y, b.q_q, false, |r, h, a| {
            if let Some(slot) = b.q_amax.get_mut(r * heads + h) {
                *slot = a;
            }
        });
        for h in 0..heads {
            let q = b.q_q.get(h * dh..).unwrap_or_default();
            let keys = b.k_q.get(h * dh..).unwrap_or_default();
            k.gemm_i8(rows, n, dh, q, d, keys, d, s.acc);
            let k_exp = b.k_exp.get(h * n..(h + 1) * n).unwrap_or_default();
            let v_amax = b.v_amax.get(h * n..(h + 1) * n).unwrap_or_default();
            let values = b.v_q.get(h * dh..).unwrap_or_default();
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
                k.attention_logits_row(
                    logits,
                    q_amax,
                    k_exp,
                    c.attention_logit_multiplier,
                    c.attention_logit_shift,
                );
                *scale = k.softmax_row(logits, v_amax, p);
            }
            k.weighted_sum_block(rows, n, b.p, values, d, dh, b.pv);
            for (r, &scale) in scales.iter().enumerate().take(rows) {
                let lo = r * d + h * dh;
                if let (Some(pv), Some(ctx)) =
                    (b.pv.get(r * dh..(r + 1) * dh), b.z.get_mut(lo..lo + dh))
                {
                    k.pv_scale_row(pv, scale, ctx);
                }
            }
        }
        forward(k, &layer.attention_output, rows, b.z, &mut s, b.y);
        let residual = b
            .hidden
            .get_mut(r0 * d..(r0 + rows) * d)
            .unwrap_or_default();
        add_and_norm(
            k,
            residual,
            b.y,
            d,
            rows,
            &layer.attention_layer_norm,
            c.layer_norm_eps_q32,
        );

        // Feed-forward on the same rows.
        let ffn = c.intermediate_size as usize;
        forward(k, &layer.intermediate, rows, residual, &mut s, b.y);
        for row in b.y.chunks_exact_mut(ffn).take(rows) {
            k.gelu_row(row);
        }
        forward(k, &layer.output, rows, b.y, &mut s, b.z);
        add_and_norm(
            k,
            residual,
            b.z,
            d,
            rows,
            &layer.output_layer_norm,
            c.layer_norm_eps_q32,
        );
        block_done();
    }
}
