//! An f32 BERT forward pass over a checkpoint's own weights, for calibration: it records,
//! per encoder layer, the activations the converter's numerics choices depend on (the inputs
//! of the query/key/value projections and of FFN1, the GELU output) and every layer's
//! output, so the converter can compare the integer runtime with f32 layer by layer.
//!
//! Written after the Hugging Face `BertModel` (`modeling_bert.py`): embeddings (word +
//! absolute position + token type 0, LayerNorm), then per layer self-attention
//! (`softmax(Q K^T / sqrt(d_head)) V`), output dense, add & LayerNorm, intermediate dense,
//! GELU (erf form), output dense, add & LayerNorm. Products run on `ndarray` (its f32 GEMM
//! is `matrixmultiply`'s). The independent oracle of the tests is candle's `BertModel`; this one serves the
//! converter only.

use crate::checkpoint::Checkpoint;
use anyhow::{Result, bail, ensure};
use ndarray::linalg::general_mat_mul;
use ndarray::{Array2, ArrayView2, s};

/// The weights of one dense layer: `[out, in]` row-major and the bias.
struct Dense {
    w: Vec<f32>,
    b: Vec<f32>,
    out: usize,
    input: usize,
}

struct Norm {
    gamma: Vec<f32>,
    beta: Vec<f32>,
}

struct Layer {
    q: Dense,
    k: Dense,
    v: Dense,
    o: Dense,
    ln1: Norm,
    ffn1: Dense,
    ffn2: Dense,
    ln2: Norm,
}

/// The model in f32.
pub struct Reference {
    word: Vec<f32>,
    position: Vec<f32>,
    token_type: Vec<f32>,
    ln: Norm,
    layers: Vec<Layer>,
    d: usize,
    heads: usize,
    eps: f32,
    max_positions: usize,
}

/// What one forward pass recorded, per layer: `[n, d]` inputs of the attention projections
/// and of FFN1, the `[n, ffn]` GELU output, and the `[n, d]` layer output.
pub struct Trace {
    /// Tokens.
    pub n: usize,
    /// Per layer.
    pub layers: Vec<LayerTrace>,
}

/// See [`Trace`].
pub struct LayerTrace {
    /// Input of the query, key and value projections (the previous layer's output).
    pub attention_input: Vec<f32>,
    /// Input of FFN1 (the attention block's LayerNorm output).
    pub intermediate_input: Vec<f32>,
    /// Input of FFN2 (the GELU output).
    pub output_input: Vec<f32>,
    /// The layer's output.
    pub output: Vec<f32>,
}

impl Reference {
    /// Reads the f32 weights of a BERT checkpoint (keys with or without the `bert.` prefix).
    pub fn load(ck: &Checkpoint) -> Result<Self> {
        let c = &ck.config;
        let prefix = if ck.has("bert.embeddings.word_embeddings.weight")? {
            "bert."
        } else {
            ""
        };
        let read = |key: &str| -> Result<Vec<f32>> { Ok(ck.f32(&format!("{prefix}{key}"))?.data) };
        let dense = |base: &str, out: usize, input: usize| -> Result<Dense> {
            let w = read(&format!("{base}.weight"))?;
            let b = read(&format!("{base}.bias"))?;
            ensure!(
                w.len() == out * input && b.len() == out,
                "{base}: unexpected shape"
            );
            Ok(Dense { w, b, out, input })
        };
        let norm = |base: &str| -> Result<Norm> {
            let (g, b) = if ck.has(&format!("{prefix}{base}.weight"))? {
                ("weight", "bias")
            } else {
                ("gamma", "beta")
            };
            Ok(Norm {
                gamma: read(&format!("{base}.{g}"))?,
                beta: read(&format!("{base}.{b}"))?,
            })
        };
        let (d, ff) = (c.hidden_size, c.intermediate_size);
        let mut layers = Vec::new();
        for i in 0..c.num_hidden_layers {
            let l = format!("encoder.layer.{i}");
            layers.push(Layer {
                q: dense(&format!("{l}.attention.self.query"), d, d)?,
                k: dense(&format!("{l}.attention.self.key"), d, d)?,
                v: dense(&format!("{l}.attention.self.value"), d, d)?,
                o: dense(&format!("{l}.attention.output.dense"), d, d)?,
                ln1: norm(&format!("{l}.attention.output.LayerNorm"))?,
                ffn1: dense(&format!("{l}.intermediate.dense"), ff, d)?,
                ffn2: dense(&format!("{l}.output.dense"), d, ff)?,
                ln2: norm(&format!("{l}.output.LayerNorm"))?,
            });
        }
        if c.num_attention_heads == 0 || d % c.num_attention_heads != 0 {
            bail!(
                "hidden size {d} is not a multiple of {} heads",
                c.num_attention_heads
            );
        }
        Ok(Self {
            word: read("embeddings.word_embeddings.weight")?,
            position: read("embeddings.position_embeddings.weight")?,
            token_type: read("embeddings.token_type_embeddings.weight")?,
            ln: norm("embeddings.LayerNorm")?,
            layers,
            d,
            heads: c.num_attention_heads,
            eps: c.layer_norm_eps as f32,
            max_positions: c.max_position_embeddings,
        })
    }

    /// The weights of layer `layer`'s dense layers, `[out, in]`: query, key, value,
    /// intermediate, output (for the converter's per-column statistics).
    pub fn weights(&self, layer: usize) -> Option<[(&[f32], usize); 5]> {
        let l = self.layers.get(layer)?;
        Some([
            (&l.q.w, l.q.input),
            (&l.k.w, l.k.input),
            (&l.v.w, l.v.input),
            (&l.ffn1.w, l.ffn1.input),
            (&l.ffn2.w, l.ffn2.input),
        ])
    }

    /// The last layer's output `[n, d]` of `ids` (what a task head reads).
    pub fn last_hidden(&self, ids: &[u32]) -> Result<Vec<f32>> {
        self.run(ids)?
            .layers
            .pop()
            .map(|l| l.output)
            .ok_or_else(|| anyhow::anyhow!("the model has no layers"))
    }

    /// The forward pass over `ids` (at most the trained positions), recording a [`Trace`].
    pub fn run(&self, ids: &[u32]) -> Result<Trace> {
        let (n, d) = (ids.len(), self.d);
        ensure!(
            n > 0 && n <= self.max_positions,
            "{n} tokens: the reference reads 1 to {} positions",
            self.max_positions
        );
        let mut x = vec![0f32; n * d];
        for (t, row) in x.chunks_exact_mut(d).enumerate() {
            let id = ids[t] as usize;
            let (w, p, ty) = (
                self.word.get(id * d..(id + 1) * d),
                self.position.get(t * d..(t + 1) * d),
                self.token_type.get(..d),
            );
            let (Some(w), Some(p), Some(ty)) = (w, p, ty) else {
                bail!("token {id} or position {t} is outside the tables");
            };
            for (i, o) in row.iter_mut().enumerate() {
                *o = w[i] + p[i] + ty[i];
            }
        }
        layer_norm(&mut x, d, &self.ln, self.eps);
        let mut layers = Vec::with_capacity(self.layers.len());
        for l in &self.layers {
            let attention_input = x.clone();
            let q = linear(&x, n, &l.q);
            let k = linear(&x, n, &l.k);
            let v = linear(&x, n, &l.v);
            let ctx = attention(&q, &k, &v, n, d, self.heads);
            let mut h = linear(&ctx, n, &l.o);
            for (a, &b) in h.iter_mut().zip(&x) {
                *a += b;
            }
            layer_norm(&mut h, d, &l.ln1, self.eps);
            let intermediate_input = h.clone();
            let mut g = linear(&h, n, &l.ffn1);
            for y in &mut g {
                *y = gelu(*y);
            }
            let mut out = linear(&g, n, &l.ffn2);
            for (a, &b) in out.iter_mut().zip(&h) {
                *a += b;
            }
            layer_norm(&mut out, d, &l.ln2, self.eps);
            x = out.clone();
            layers.push(LayerTrace {
                attention_input,
                intermediate_input,
                output_input: g,
                output: out,
            });
        }
        Ok(Trace { n, layers })
    }
}

/// `x W^T + b` for `n` rows.
fn linear(x: &[f32], n: usize, l: &Dense) -> Vec<f32> {
    let mut y = Array2::from_shape_fn((n, l.out), |(_, c)| l.b[c]);
    let (Ok(xa), Ok(wa)) = (view(x, n, l.input), view(&l.w, l.out, l.input)) else {
        return y.into_raw_vec_and_offset().0;
    };
    general_mat_mul(1.0, &xa, &wa.t(), 1.0, &mut y);
    y.into_raw_vec_and_offset().0
}

/// `rows x cols` of a row-major slice.
fn view(x: &[f32], rows: usize, cols: usize) -> Result<ArrayView2<'_, f32>> {
    Ok(ArrayView2::from_shape(
        (rows, cols),
        x.get(..rows * cols).unwrap_or_default(),
    )?)
}

/// Multi-head self-attention over `[n, d]` projections: `softmax(Q K^T / sqrt(dh)) V`.
fn attention(q: &[f32], k: &[f32], v: &[f32], n: usize, d: usize, heads: usize) -> Vec<f32> {
    let dh = d / heads;
    let scale = 1.0 / (dh as f32).sqrt();
    let mut ctx = Array2::<f32>::zeros((n, d));
    let (Ok(q), Ok(k), Ok(v)) = (view(q, n, d), view(k, n, d), view(v, n, d)) else {
        return ctx.into_raw_vec_and_offset().0;
    };
    for h in 0..heads {
        let cols = s![.., h * dh..(h + 1) * dh];
        let mut scores = q.slice(cols).dot(&k.slice(cols).t());
        for mut row in scores.rows_mut() {
            let max = row.iter().fold(f32::NEG_INFINITY, |a, &x| a.max(x * scale));
            let mut sum = 0f32;
            for x in row.iter_mut() {
                *x = (*x * scale - max).exp();
                sum += *x;
            }
            row.mapv_inplace(|x| x / sum);
        }
        ctx.slice_mut(cols).assign(&scores.dot(&v.slice(cols)));
    }
    ctx.into_raw_vec_and_offset().0
}

fn layer_norm(x: &mut [f32], d: usize, p: &Norm, eps: f32) {
    for row in x.chunks_exact_mut(d) {
        let mean = row.iter().map(|&v| f64::from(v)).sum::<f64>() / d as f64;
        let var = row
            .iter()
            .map(|&v| (f64::from(v) - mean).powi(2))
            .sum::<f64>()
            / d as f64;
        let inv = 1.0 / (var + f64::from(eps)).sqrt();
        for (i, v) in row.iter_mut().enumerate() {
            *v = ((f64::from(*v) - mean) * inv) as f32 * p.gamma[i] + p.beta[i];
        }
    }
}

/// GELU, erf form (`x Phi(x)`).
pub fn gelu(x: f32) -> f32 {
    let x = f64::from(x);
    (0.5 * x * (1.0 + libm::erf(x / core::f64::consts::SQRT_2))) as f32
}
