//! Dense (linear) layers: per-row int8 quantisation of the Q.16 input, an int8 product with
//! i32 accumulation, and per-output-channel requantisation back to Q.16 (bias included).
//! The formula is on [`crate::blob::Dense`].

use super::prepared::weight_matrix;
use crate::blob::{Dense, LayerNorm, Tensor};
use crate::kernels::{
    Gemm, Kernels, LayerNormParams, LeI32s, Lhs, MatMut, MatRef, Prepared, Requant, Rhs,
};
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

/// A tensor's little-endian i32 values (empty for a tensor of another width, which a
/// validated blob rules out).
pub(crate) fn le_values<'a>(t: &Tensor<'a>) -> LeI32s<'a> {
    LeI32s::new(t.data).unwrap_or_default()
}

/// The requantisation parameters of a dense layer.
pub(crate) fn requant<'a>(layer: &Dense<'a>) -> Option<Requant<'a>> {
    let bias = le_values(&layer.bias);
    let bias = (!bias.is_empty()).then_some(bias);
    Requant::new(le_values(&layer.multiplier), layer.shift.data, bias)
}

/// The kernel parameters of a LayerNorm.
pub(crate) fn layer_norm<'a>(ln: &LayerNorm<'a>, eps_q32: u64) -> Option<LayerNormParams<'a>> {
    LayerNormParams::new(le_values(&ln.gamma), le_values(&ln.beta), eps_q32)
}

/// The weight operand of a dense layer: its blob weights, with the backend's prepared copy
/// when there is one.
pub(crate) fn weights<'a>(w: MatRef<'a, i8>, prepared: &'a [u8]) -> Rhs<'a> {
    if prepared.is_empty() {
        Rhs::Channels(w)
    } else {
        Rhs::Prepared(Prepared::new(w, prepared))
    }
}

/// `rows` rows of a product `a x b` into `acc` (`[rows, b.channels()]`); nothing when the
/// shapes do not fit the buffers (which the scratch plan rules out).
pub(crate) fn product<K: Kernels>(k: &K, a: Lhs<'_>, b: Rhs<'_>, acc: &mut [i32]) {
    let (m, n) = (a.rows(), b.channels());
    if let Some(g) = m
        .checked_mul(n)
        .and_then(|len| acc.get_mut(..len))
        .and_then(|out| MatMut::contiguous(out, m, n))
        .and_then(|out| Gemm::new(a, b, out))
    {
        k.gemm(g);
    }
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
                let factors = le_values(factors);
                for (t, (&x, f)) in tmp.iter_mut().zip(src.iter().zip(factors.iter())) {
                    *t = sat_i32_from_i64(round_shift_i64(i64::from(x) * i64::from(f), FRAC_BITS));
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

/// `out = requant(quantize(input) W^T) + b` for `rows` rows; `out` is `[rows, out_dim]`
/// Q.16. `prepared` is the backend's copy of the weights (empty: the blob's).
pub(crate) fn forward<K: Kernels>(
    k: &K,
    layer: &Dense<'_>,
    prepared: &[u8],
    rows: usize,
    input: &[i32],
    s: &mut DenseScratch<'_>,
    out: &mut [i32],
) {
    quantize_input(k, layer, rows, input, s);
    forward_quantized(k, layer, prepared, rows, s, out);
}

/// [`forward`] on the input [`quantize_input`] left in `s` (for layers that read the same
/// input with the same smoothing, such as the key and value projections).
pub(crate) fn forward_quantized<K: Kernels>(
    k: &K,
    layer: &Dense<'_>,
    prepared: &[u8],
    rows: usize,
    s: &mut DenseScratch<'_>,
    out: &mut [i32],
) {
    let w = weight_matrix(&layer.weight);
    let (out_dim, in_dim) = (w.rows(), w.cols());
    let x = MatRef::contiguous(s.x_q.get(..rows * in_dim).unwrap_or_default(), rows, in_dim);
    let Some(x) = x else {
        return;
    };
    product(k, Lhs::I8(x), weights(w, prepared), s.acc);
    let Some(rq) = requant(layer) else {
        return;
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
