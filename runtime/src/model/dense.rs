//! Dense (linear) layers: per-row int8 quantisation of the Q.16 input, an int8 product with
//! i32 accumulation, and per-output-channel requantisation back to Q.16 (bias included).
//! The formula is on [`crate::blob::Dense`].

use super::prepared::weight_matrix;
use crate::blob::{Dense, InputFormat, LayerNorm, Tensor};
use crate::kernels::{
    Gemm, Kernels, LayerNormParams, LeI32s, Lhs, MatMut, MatRef, Prepared, Requant, Rhs,
};
use crate::quant::i16_qmax;

/// Temporaries of a dense layer over a block of rows.
pub(crate) struct DenseScratch<'b> {
    /// int8 input `[rows, in]`.
    pub(crate) x_q: &'b mut [i8],
    /// int16 input `[rows, in]` (empty unless the model has int16 inputs).
    pub(crate) x_q16: &'b mut [i16],
    /// Unsigned 8-bit input `[rows, in]` (empty unless the model has such inputs).
    pub(crate) x_u8: &'b mut [u8],
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

/// Quantises `rows` rows of `input` (`[rows, in]`, Q.16) per row in `format`, applying the
/// layer's SmoothQuant factors when it has them (inside the quantisation: no extra buffer).
pub(crate) fn quantize_input<K: Kernels>(
    k: &K,
    layer: &Dense<'_>,
    format: InputFormat,
    rows: usize,
    input: &[i32],
    s: &mut DenseScratch<'_>,
) {
    let width = layer.weight.shape[1] as usize;
    let factors = layer.input_smoothing.as_ref().map(le_values);
    for r in 0..rows {
        let Some(src) = input.get(r * width..(r + 1) * width) else {
            return;
        };
        let span = r * width..(r + 1) * width;
        let amax = match format {
            InputFormat::Int8 => {
                let Some(dst) = s.x_q.get_mut(span) else {
                    return;
                };
                match factors {
                    Some(f) => k.quantize_row_i8_scaled(src, f, dst),
                    None => k.quantize_row_i8(src, dst),
                }
            }
            InputFormat::Int16 => {
                let Some(dst) = s.x_q16.get_mut(span) else {
                    return;
                };
                k.quantize_row_i16(src, factors, i16_qmax(width), dst)
            }
            InputFormat::Uint8Offset { offset_q16 } => {
                let Some(dst) = s.x_u8.get_mut(span) else {
                    return;
                };
                k.quantize_row_u8_offset(src, offset_q16, dst)
            }
        };
        if let Some(a) = s.x_amax.get_mut(r) {
            *a = amax;
        }
    }
}

/// `out = requant(quantize(input) W^T) + b` for `rows` rows; `out` is `[rows, out_dim]`
/// Q.16. The input is quantised in `format`; `prepared` is the backend's copy of the
/// weights (empty: the blob's).
pub(crate) fn forward<K: Kernels>(
    k: &K,
    layer: &Dense<'_>,
    (format, prepared): (InputFormat, &[u8]),
    rows: usize,
    input: &[i32],
    s: &mut DenseScratch<'_>,
    out: &mut [i32],
) {
    quantize_input(k, layer, format, rows, input, s);
    forward_quantized(k, layer, (format, prepared), rows, s, out);
}

/// [`forward`] on the input [`quantize_input`] left in `s` (for layers that read the same
/// input with the same smoothing, such as the key and value projections).
pub(crate) fn forward_quantized<K: Kernels>(
    k: &K,
    layer: &Dense<'_>,
    (format, prepared): (InputFormat, &[u8]),
    rows: usize,
    s: &mut DenseScratch<'_>,
    out: &mut [i32],
) {
    let w = weight_matrix(&layer.weight);
    let (out_dim, in_dim) = (w.rows(), w.cols());
    let n = rows * in_dim;
    let x = match format {
        InputFormat::Int8 => {
            MatRef::contiguous(s.x_q.get(..n).unwrap_or_default(), rows, in_dim).map(Lhs::I8)
        }
        InputFormat::Int16 => {
            MatRef::contiguous(s.x_q16.get(..n).unwrap_or_default(), rows, in_dim).map(Lhs::I16)
        }
        InputFormat::Uint8Offset { .. } => {
            MatRef::contiguous(s.x_u8.get(..n).unwrap_or_default(), rows, in_dim).map(|values| {
                Lhs::U8 {
                    values,
                    zero_point: 0,
                }
            })
        }
    };
    let Some(x) = x else {
        return;
    };
    product(k, x, weights(w, prepared), s.acc);
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
