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
use super::parallel::{Parallel, Sequential, Split, fork};
use super::prepared::{DenseRole, PreparedWeights};
use super::scratch::{BLOCK_ROWS, Block, Buffers, Plan};
use crate::blob::{Config, InputFormat, LayerNorm, LayerSection, ModelView, QuantizedInput};
use crate::kernels::{Kernels, Lhs, LogitScale, MatRef, Prepared, PvScale, Rhs};
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

/// The buffers of one head's attention over a block (borrowed from a worker's block
/// buffers and its dense scratch).
struct Attention<'b> {
    /// Q.K accumulators, then logits, `[rows, keys]`.
    acc: &'b mut [i32],
    /// Probabilities, `[rows, keys]`.
    p: &'b mut [u16],
    /// P.V accumulators, `[rows, head width]`.
    pv: &'b mut [i32],
    /// The block's context, `[block, d]`.
    z: &'b mut [i32],
    /// The block's query ranges, `[block, heads]`.
    q_amax: &'b [u32],
}

/// The texts packed one after another in a sequence: attention stays within each. One
/// text for [`crate::Encoder::embed`], several for [`crate::Encoder::embed_batch`].
#[derive(Clone, Copy)]
pub(crate) struct Texts<'t>(pub(crate) &'t [&'t [u32]]);

/// The rows of a block that belong to one text, and that text's keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Span {
    /// First row, relative to the block.
    pub(crate) row: usize,
    /// Rows.
    pub(crate) rows: usize,
    /// The text's first token in the sequence.
    pub(crate) key: usize,
    /// The text's tokens.
    pub(crate) keys: usize,
}

impl<'t> Texts<'t> {
    /// Tokens in all.
    pub(crate) fn tokens(&self) -> usize {
        self.0.iter().map(|t| t.len()).sum()
    }

    /// The texts with their first token in the sequence.
    pub(crate) fn starts(&self) -> impl Iterator<Item = (usize, &'t [u32])> + 't {
        self.0.iter().scan(0usize, |start, t| {
            let at = *start;
            *start += t.len();
            Some((at, *t))
        })
    }

    /// The spans of the texts that rows `r0..r0 + rows` of the sequence cross, in order.
    pub(crate) fn spans(&self, r0: usize, rows: usize) -> impl Iterator<Item = Span> + 't {
        let end = r0 + rows;
        self.starts()
            .take_while(move |&(start, _)| start < end)
            .filter_map(move |(start, t)| {
                let (lo, hi) = (start.max(r0), (start + t.len()).min(end));
                (lo < hi).then(|| Span {
                    row: lo - r0,
                    rows: hi - lo,
                    key: start,
                    keys: t.len(),
                })
            })
    }
}

/// What every job of one layer reads: the kernels, the config, the layer's weights and the
/// plan. Opaque outside the crate: it reaches a [`Runner`] only to be handed back.
pub struct LayerJob<'c, 'l, 'a, K> {
    k: &'c K,
    c: &'c Config,
    w: &'c LayerWeights<'l, 'a>,
    plan: &'c Plan,
    /// The texts packed in the sequence (attention stays within each).
    texts: Texts<'c>,
    /// The whole sequence's keys, values and their scales (pass 2 reads them).
    kv: Option<KeysValues<'c>>,
}

/// The keys and values of every token, read-only during pass 2.
#[derive(Clone, Copy)]
struct KeysValues<'c> {
    keys: MatRef<'c, i8>,
    values: MatRef<'c, i8>,
    k_exp: &'c [u32],
    v_amax: &'c [u32],
    /// Each head's keys as the backend prepared them, `panel_bytes` per head (empty: not
    /// prepared).
    panels: &'c [u8],
    panel_bytes: usize,
    /// Each head's values as the backend prepared them, `value_bytes` per head (empty:
    /// not prepared).
    value_panels: &'c [u8],
    value_bytes: usize,
}

/// Where pass 1 puts the key exponents and value ranges.
enum Scales<'s> {
    /// Straight into the `[heads, n]` arrays (one worker: no split).
    HeadMajor {
        k_exp: &'s mut [u32],
        v_amax: &'s mut [u32],
    },
    /// Into this run's rows of the `[n, heads, 2]` staging buffer.
    Staged(&'s mut [u32]),
}

/// A run of consecutive rows of one pass, with the buffers it owns. Opaque outside the
/// crate (see [`LayerJob`]).
pub struct PassRun<'s> {
    /// First token of the run.
    r0: usize,
    /// Tokens of the run.
    rows: usize,
    /// The run's workers' block buffers, [`Plan::worker_bytes`] each.
    scratch: &'s mut [u8],
    /// Geometry: rows per block, hidden width, heads, bytes per worker.
    block: usize,
    d: usize,
    heads: usize,
    worker_bytes: usize,
    what: Pass<'s>,
}

/// The buffers of a run of pass 1 or pass 2.
enum Pass<'s> {
    /// Pass 1: the run's input rows, its keys and values, and their scales.
    KeysValues {
        input: &'s [i32],
        k_q: &'s mut [i8],
        v_q: &'s mut [i8],
        scales: Scales<'s>,
    },
    /// Pass 2: the run's residual rows, updated in place.
    Blocks { hidden: &'s mut [i32] },
}

/// `s.split_at_mut(at)`, clamped.
fn cut<T>(s: &mut [T], at: usize) -> (&mut [T], &mut [T]) {
    let at = at.min(s.len());
    s.split_at_mut(at)
}

impl Split for PassRun<'_> {
    fn rows(&self) -> usize {
        self.rows
    }

    fn split(self, rows: usize, workers: usize) -> (Self, Self) {
        let rows = rows.min(self.rows);
        let (d, heads) = (self.d, self.heads);
        let (s0, s1) = cut(self.scratch, workers * self.worker_bytes);
        let (w0, w1) = match self.what {
            Pass::KeysValues {
                input,
                k_q,
                v_q,
                scales,
            } => {
                let (i0, i1) = input.split_at(rows.saturating_mul(d).min(input.len()));
                let (k0, k1) = cut(k_q, rows * d);
                let (v0, v1) = cut(v_q, rows * d);
                let (c0, c1) = match scales {
                    Scales::Staged(staged) => {
                        let (a, b) = cut(staged, rows * heads * 2);
                        (Scales::Staged(a), Scales::Staged(b))
                    }
                    // Never split (one worker); the second run is then empty.
                    head_major @ Scales::HeadMajor { .. } => (head_major, Scales::Staged(&mut [])),
                };
                let first = Pass::KeysValues {
                    input: i0,
                    k_q: k0,
                    v_q: v0,
                    scales: c0,
                };
                let rest = Pass::KeysValues {
                    input: i1,
                    k_q: k1,
                    v_q: v1,
                    scales: c1,
                };
                (first, rest)
            }
            Pass::Blocks { hidden } => {
                let (h0, h1) = cut(hidden, rows * d);
                (Pass::Blocks { hidden: h0 }, Pass::Blocks { hidden: h1 })
            }
        };
        let run = |r0, rows, scratch, what| PassRun {
            r0,
            rows,
            scratch,
            what,
            ..self
        };
        (
            run(self.r0, rows, s0, w0),
            run(self.r0 + rows, self.rows - rows, s1, w1),
        )
    }
}

/// How an encoder runs the jobs of a pass: [`Sequential`] (any kernels), or any
/// [`Parallel`] executor (kernels that are `Sync`). Implemented for exactly those; not
/// implementable elsewhere.
pub trait Runner<K>: sealed::Sealed {
    /// Jobs that may run at once.
    fn workers(&self) -> usize;

    /// Runs every block of `work`.
    fn run(&self, job: &LayerJob<'_, '_, '_, K>, work: PassRun<'_>);
}

mod sealed {
    /// Keeps [`super::Runner`] to the crate's two implementations.
    pub trait Sealed {}
    impl Sealed for super::Sequential {}
    impl<P: super::Parallel> Sealed for P {}
}

impl<K: Kernels> Runner<K> for Sequential {
    fn workers(&self) -> usize {
        1
    }

    fn run(&self, job: &LayerJob<'_, '_, '_, K>, work: PassRun<'_>) {
        job.run(work);
    }
}

impl<K: Kernels + Sync, P: Parallel> Runner<K> for P {
    fn workers(&self) -> usize {
        Parallel::workers(self).max(1)
    }

    fn run(&self, job: &LayerJob<'_, '_, '_, K>, work: PassRun<'_>) {
        let workers = Runner::<K>::workers(self);
        fork(self, workers, work, &|run| job.run(run));
    }
}

impl<K: Kernels> LayerJob<'_, '_, '_, K> {
    /// Runs every block of `run` in order, with the run's first worker's buffers.
    fn run(&self, run: PassRun<'_>) {
        let buffers = run.scratch.get_mut(..run.worker_bytes).unwrap_or_default();
        let mut blk = self.plan.block_buffers(buffers);
        match run.what {
            Pass::KeysValues {
                input,
                k_q,
                v_q,
                mut scales,
            } => {
                for b0 in (0..run.rows).step_by(run.block.max(1)) {
                    let rows = run.block.min(run.rows - b0);
                    let span = b0 * run.d..(b0 + rows) * run.d;
                    let (Some(input), Some(k_q), Some(v_q)) = (
                        input.get(span.clone()),
                        k_q.get_mut(span.clone()),
                        v_q.get_mut(span),
                    ) else {
                        return;
                    };
                    let (r0, local) = (run.r0 + b0, b0);
                    self.keys_values(&mut blk, input, (k_q, v_q), &mut scales, (r0, local));
                }
            }
            Pass::Blocks { hidden } => {
                for b0 in (0..run.rows).step_by(run.block.max(1)) {
                    let rows = run.block.min(run.rows - b0);
                    let span = b0 * run.d..(b0 + rows) * run.d;
                    if let Some(residual) = hidden.get_mut(span) {
                        self.attention_and_ffn(&mut blk, run.r0 + b0, residual);
                    }
                }
            }
        }
    }

    /// Pass 1 on one block: its keys and values, quantised per (token, head). `r0` is the
    /// block's first token, `local` its row in the run's staged scales.
    fn keys_values(
        &self,
        blk: &mut Block<'_>,
        input: &[i32],
        (k_q, v_q): (&mut [i8], &mut [i8]),
        scales: &mut Scales<'_>,
        (r0, local): (usize, usize),
    ) {
        let (k, layer) = (self.k, self.w.layer);
        let (n, d) = (self.plan.tokens(), self.c.hidden_size as usize);
        let heads = self.c.num_attention_heads as usize;
        let rows = input.len() / d.max(1);
        let mut s = dense_scratch!(blk);
        // Keys with power-of-two scales (the logits then shift instead of multiply),
        // values with their ranges (folded into the probabilities).
        // Both read the same input: quantised once unless their smoothing differs.
        let qkv = self.w.format(QuantizedInput::Attention);
        quantize_input(k, &layer.key, qkv, rows, input, &mut s);
        for (role, dst, how, slot) in [
            (DenseRole::Key, &mut *k_q, HeadScale::Pow2, 0),
            (DenseRole::Value, &mut *v_q, HeadScale::Range, 1),
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
            let prepared = self.w.prepared(role);
            forward_quantized(k, dense, (qkv, prepared), rows, &mut s, blk.y);
            let projected = MatRef::contiguous(blk.y.get(..rows * d).unwrap_or_default(), rows, d);
            let Some(projected) = projected else {
                return;
            };
            quantize_heads(k, heads, projected, dst, how, |r, h, a| {
                let target = match scales {
                    Scales::HeadMajor { k_exp, v_amax } => {
                        let array = if slot == 0 { k_exp } else { v_amax };
                        array.get_mut(h * n + r0 + r)
                    }
                    Scales::Staged(staged) => staged.get_mut(((local + r) * heads + h) * 2 + slot),
                };
                if let Some(t) = target {
                    *t = a;
                }
            });
        }
    }

    /// One head's attention for the block rows `row..row + q.rows()` against the keys
    /// and values of their text: Q.K, softmax per row, P.V, and the scaled context into
    /// the head's columns of `blk.z`.
    fn attend(
        &self,
        t: &mut Attention<'_>,
        (q, keys, values): (MatRef<'_, i8>, Rhs<'_>, Rhs<'_>),
        (k_exp, v_amax): (&[u32], &[u32]),
        (row, h): (usize, usize),
    ) {
        let (k, c) = (self.k, self.c);
        let (rows, n) = (q.rows(), keys.channels());
        let heads = c.num_attention_heads as usize;
        let (d, dh) = (c.hidden_size as usize, q.cols());
        let logit = LogitScale {
            multiplier: c.attention_logit_multiplier,
            shift: c.attention_logit_shift,
        };
        // Q.K: the keys are the product's channels.
        product(k, Lhs::I8(q), keys, t.acc);
        // Softmax of every row, then one product of the probabilities with the values.
        let mut scales = [PvScale::default(); BLOCK_ROWS];
        for (r, scale) in scales.iter_mut().enumerate().take(rows) {
            let (Some(logits), Some(p)) = (
                t.acc.get_mut(r * n..(r + 1) * n),
                t.p.get_mut(r * n..(r + 1) * n),
            ) else {
                continue;
            };
            let q_amax = t.q_amax.get((row + r) * heads + h).copied().unwrap_or(0);
            k.attention_logits_row(logits, q_amax, k_exp, logit);
            *scale = k.softmax_row(logits, v_amax, p);
        }
        // P.V: the values are rows of depth (one per key).
        if let Some(p) = MatRef::contiguous(t.p.get(..rows * n).unwrap_or_default(), rows, n) {
            product(k, Lhs::U16(p), values, t.pv);
        }
        for (r, &scale) in scales.iter().enumerate().take(rows) {
            let lo = (row + r) * d + h * dh;
            if let (Some(pv), Some(ctx)) =
                (t.pv.get(r * dh..(r + 1) * dh), t.z.get_mut(lo..lo + dh))
            {
                k.pv_scale_row(pv, scale, ctx);
            }
        }
    }

    /// Pass 2 on one block of `residual` rows: attention against every key, output
    /// projection, add & LayerNorm, feed-forward, add & LayerNorm, in place.
    fn attention_and_ffn(&self, blk: &mut Block<'_>, r0: usize, residual: &mut [i32]) {
        let (k, c, w, layer) = (self.k, self.c, self.w, self.w.layer);
        let Some(kv) = self.kv else {
            return;
        };
        let n = self.plan.tokens();
        let (d, heads) = (c.hidden_size as usize, c.num_attention_heads as usize);
        let dh = d / heads.max(1);
        let rows = residual.len() / d.max(1);
        let mut s = dense_scratch!(blk);
        let how = (
            w.format(QuantizedInput::Attention),
            w.prepared(DenseRole::Query),
        );
        forward(k, &layer.query, how, rows, residual, &mut s, blk.y);
        let projected = MatRef::contiguous(blk.y.get(..rows * d).unwrap_or_default(), rows, d);
        let Some(projected) = projected else {
            return;
        };
        quantize_heads(k, heads, projected, blk.q_q, HeadScale::Range, |r, h, a| {
            if let Some(slot) = blk.q_amax.get_mut(r * heads + h) {
                *slot = a;
            }
        });
        let Some(queries) = MatRef::contiguous(&*blk.q_q, rows, d) else {
            return;
        };
        for h in 0..heads {
            let (Some(q), Some(k_h), Some(v_h)) = (
                queries.cols_range(h * dh, dh),
                kv.keys.cols_range(h * dh, dh),
                kv.values.cols_range(h * dh, dh),
            ) else {
                continue;
            };
            // Each text's rows of the block attend to that text's keys only.
            for span in self.texts.spans(r0, rows) {
                let (Some(q), Some(k_h), Some(v_h)) = (
                    q.rows_range(span.row, span.rows),
                    k_h.rows_range(span.key, span.keys),
                    v_h.rows_range(span.key, span.keys),
                ) else {
                    continue;
                };
                let keys = span.key + h * n..span.key + span.keys + h * n;
                let k_exp = kv.k_exp.get(keys.clone()).unwrap_or_default();
                let v_amax = kv.v_amax.get(keys).unwrap_or_default();
                // The prepared keys cover the whole sequence: one text.
                let panels = kv
                    .panels
                    .get(h * kv.panel_bytes..(h + 1) * kv.panel_bytes)
                    .filter(|p| !p.is_empty() && span.keys == n);
                let k_h = match panels {
                    Some(p) => Rhs::Prepared(Prepared::new(k_h, p)),
                    None => Rhs::Channels(k_h),
                };
                let v_panels = kv
                    .value_panels
                    .get(h * kv.value_bytes..(h + 1) * kv.value_bytes)
                    .filter(|p| !p.is_empty() && span.keys == n);
                let v_h = match v_panels {
                    Some(p) => Rhs::PreparedDepths(Prepared::new(v_h, p)),
                    None => Rhs::Depths(v_h),
                };
                let mut t = Attention {
                    acc: &mut *s.acc,
                    p: &mut *blk.p,
                    pv: &mut *blk.pv,
                    z: &mut *blk.z,
                    q_amax: &*blk.q_amax,
                };
                self.attend(&mut t, (q, k_h, v_h), (k_exp, v_amax), (span.row, h));
            }
        }
        // The context is always int8 (the study: lossless).
        let how = (InputFormat::Int8, w.prepared(DenseRole::AttentionOutput));
        forward(k, &layer.attention_output, how, rows, blk.z, &mut s, blk.y);
        let eps = c.layer_norm_eps_q32;
        add_and_norm(k, residual, blk.y, d, &layer.attention_layer_norm, eps);

        // Feed-forward on the same rows.
        let ffn = c.intermediate_size as usize;
        let how = (
            w.format(QuantizedInput::Intermediate),
            w.prepared(DenseRole::Intermediate),
        );
        forward(k, &layer.intermediate, how, rows, residual, &mut s, blk.y);
        for row in blk.y.chunks_exact_mut(ffn).take(rows) {
            k.gelu_row(row);
        }
        let how = (
            w.format(QuantizedInput::Output),
            w.prepared(DenseRole::Output),
        );
        forward(k, &layer.output, how, rows, blk.y, &mut s, blk.z);
        add_and_norm(k, residual, blk.z, d, &layer.output_layer_norm, eps);
    }
}

/// Blocks per worker between two progress reports when several workers share a pass (one
/// report per block with one worker).
const ROUND_BLOCKS_PER_WORKER: usize = 16;

/// Runs one encoder layer over the whole sequence in `b` (the `texts` packed one after
/// another); `blocks_done(k)` is called after each round of `k` blocks of pass 2 and may
/// stop the pass.
pub(crate) fn forward_layer<K: Kernels, R: Runner<K>>(
    k: &K,
    runner: &R,
    c: &Config,
    (w, texts): (&LayerWeights<'_, '_>, Texts<'_>),
    plan: &Plan,
    b: &mut Buffers<'_>,
    blocks_done: &mut dyn FnMut(usize) -> ControlFlow<()>,
) -> ControlFlow<()> {
    let (n, block) = (plan.tokens(), plan.block());
    let (d, heads) = (c.hidden_size as usize, c.num_attention_heads as usize);
    let workers = runner.workers().min(plan.workers()).max(1);
    let seq = &mut b.seq;
    let worker_bytes = plan.worker_bytes();
    fn geometry<'s>(
        (block, d, heads, worker_bytes): (usize, usize, usize, usize),
        (r0, rows): (usize, usize),
        scratch: &'s mut [u8],
        what: Pass<'s>,
    ) -> PassRun<'s> {
        PassRun {
            r0,
            rows,
            scratch,
            block,
            d,
            heads,
            worker_bytes,
            what,
        }
    }
    let shape = (block, d, heads, worker_bytes);
    let job = LayerJob {
        k,
        c,
        w,
        plan,
        texts,
        kv: None,
    };

    // Pass 1: keys and values of every token.
    let scales = if workers > 1 {
        Scales::Staged(&mut *seq.kv_staged)
    } else {
        Scales::HeadMajor {
            k_exp: &mut *seq.k_exp,
            v_amax: &mut *seq.v_amax,
        }
    };
    let what = Pass::KeysValues {
        input: &*seq.hidden,
        k_q: &mut *seq.k_q,
        v_q: &mut *seq.v_q,
        scales,
    };
    runner.run(&job, geometry(shape, (0, n), &mut *b.blocks, what));
    if workers > 1 {
        // Back to `[heads, n]`, where attention reads one head's scales contiguously.
        for (t, pairs) in seq.kv_staged.chunks_exact(heads * 2).take(n).enumerate() {
            for (h, pair) in pairs.chunks_exact(2).enumerate() {
                if let (Some(e), Some(a)) =
                    (seq.k_exp.get_mut(h * n + t), seq.v_amax.get_mut(h * n + t))
                {
                    (*e, *a) = (pair[0], pair[1]);
                }
            }
        }
    }
    let (Some(keys), Some(values)) = (
        MatRef::contiguous(&*seq.k_q, n, d),
        MatRef::contiguous(&*seq.v_q, n, d),
    ) else {
        return ControlFlow::Continue(());
    };
    // Each head's keys and values packed once for the whole pass (when the plan has
    // room).
    let dh = d / heads.max(1);
    let (panel_bytes, value_bytes) = (plan.key_panels(), plan.value_panels());
    let mut prepared = panel_bytes > 0;
    for (h, out) in seq
        .k_panels
        .chunks_exact_mut(panel_bytes.max(1))
        .enumerate()
    {
        prepared &= keys
            .cols_range(h * dh, dh)
            .is_some_and(|k_h| k.prepare(k_h, out));
    }
    let mut values_prepared = value_bytes > 0;
    for (h, out) in seq
        .v_panels
        .chunks_exact_mut(value_bytes.max(1))
        .enumerate()
    {
        values_prepared &= values
            .cols_range(h * dh, dh)
            .is_some_and(|v_h| k.prepare_depths(v_h, out));
    }
    let job = LayerJob {
        kv: Some(KeysValues {
            keys,
            values,
            k_exp: &*seq.k_exp,
            v_amax: &*seq.v_amax,
            panels: if prepared { &*seq.k_panels } else { &[] },
            panel_bytes,
            value_panels: if values_prepared { &*seq.v_panels } else { &[] },
            value_bytes,
        }),
        ..job
    };

    // Pass 2: attention, output projection and feed-forward, in rounds of blocks.
    let round = if workers > 1 {
        workers * ROUND_BLOCKS_PER_WORKER * block
    } else {
        block
    };
    for (i, hidden) in seq.hidden.chunks_mut(round * d).enumerate() {
        let rows = hidden.len() / d.max(1);
        let what = Pass::Blocks { hidden };
        runner.run(
            &job,
            geometry(shape, (i * round, rows), &mut *b.blocks, what),
        );
        blocks_done(rows.div_ceil(block))?;
    }
    ControlFlow::Continue(())
}
