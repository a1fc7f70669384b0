//! Dense (linear) layers: per-row int8 quantisation of the Q.16 input, an int8 product with
//! i32 accumulation, and per-output-channel requantisation back to Q.16 (bias included).
//! The formula is on [`crate::blob::Dense`].

use crate::blob::Dense;
use crate::kernels::scalar::le_i32;
use crate::kernels::{Kernels, Requant};
use crate::quant::{FRAC_BITS, round_shift_i64, sat_i32_from_i64};

/// Temporaries of a dense layer over a block of rows.
pub(crate) struct DenseScratch<'b> {
    /// Smoothed input, Q.16 `[rows, in]` (used only with SmoothQuant factors).
    pub(crate) x_smooth: &'b mut [i32],
    /// int8 input `[rows, in]`.
    pub(crate) x_q: &'b mut [i8],
    /// Per-row input ranges `[rows]`.
    pub(crate) x_amax: &'b mut [u32],
    /// Accumulators `[rows, out]`.
    pub(crate) acc: &'b mut [i32],
}

/// The int8 weights of a tensor (bytes reinterpreted as two's complement).
pub(crate) fn weights_i8(data: &[u8]) -> &[i8] {
    bytemuck::cast_slice(data)
}

/// Quantises `rows` rows of `input` (`[rows, in]`, Q.16) to int8 per row, applying the
/// layer's SmoothQuant factors first when it has them.
pub(crate) fn quantize_input<K: Kernels>(
    k: &K,
    layer: &Dense<'_>,
    rows: usize,
    input: &[i32],
    s: &mut DenseScratch<'_>,
) {
    let width = layer.weight.shape[1] as usize;
    for r in 0..rows {
        let Some(src) = input.get(r * width..(r + 1) * width) else {
            return;
        };
        let Some(dst) = s.x_q.get_mut(r * width..(r + 1) * width) else {
            return;
        };
        let amax = match (
            &layer.input_smoothing,
            s.x_smooth.get_mut(r * width..(r + 1) * width),
        ) {
            (Some(factors), Some(tmp)) => {
                for (c, (t, &x)) in tmp.iter_mut().zip(src).enumerate() {
                    let f = i64::from(le_i32(factors.data, c));
                    *t = sat_i32_from_i64(round_shift_i64(i64::from(x) * f, FRAC_BITS));
                }
                k.quantize_row_i8(tmp, dst)
            }
            _ => k.quantize_row_i8(src, dst),
        };
        if let Some(a) = s.x_amax.get_mut(r) {
            *a = amax;
        }
    }
}

/// `out = requant(quantize(input) W^T) + b` for `rows` rows; `out` is `[rows, out_dim]` Q.16.
pub(crate) fn forward<K: Kernels>(
    k: &K,
    layer: &Dense<'_>,
    rows: usize,
    input: &[i32],
    s: &mut DenseScratch<'_>,
    out: &mut [i32],
) {
    quantize_input(k, layer, rows, input, s);
    forward_quantized(k, layer, rows, s, out);
}

/// [`forward`] on the input [`quantize_input`] left in `s` (for layers that read the same
/// input with the same smoothing, such as the key and value projections).
pub(crate) fn forward_quantized<K: Kernels>(
    k: &K,
    layer: &Dense<'_>,
    rows: usize,
    s: &mut DenseScratch<'_>,
    out: &mut [i32],
) {
    let (out_dim, in_dim) = (
        layer.weight.shape[0] as usize,
        layer.weight.shape[1] as usize,
    );
    k.gemm_i8(
        rows,
        out_dim,
        in_dim,
        s.x_q,
        in_dim,
        weights_i8(layer.weight.data),
        in_dim,
        s.acc,
    );
    let rq = Requant {
        multiplier: layer.multiplier.data,
        shift: layer.shift.data,
        bias: layer.bias.data,
    };
    for r in 0..rows {
        let (Some(acc), Some(dst), Some(&amax)) = (
            s.acc.get(r * out_dim..(r + 1) * out_dim),
            out.get_mut(r * out_dim..(r + 1) * out_dim),
            s.x_amax.get(r),
        ) else {
            return;
        };
        k.requantize_row(acc, amax, &rq, dst);
    }
}
