//! The BERT encoder over a parsed model, generic over the [`Kernels`] backend.
//!
//! Module names follow the checkpoint (`BertEmbeddings`, `BertLayer`, the MLM head
//! `cls.predictions`). All arithmetic is integer: activations are i32 Q.16, every matrix
//! product is int8 x int8 with i32 accumulation (see `docs/numerics.md`).

/// The dense-layer temporaries of a carved arena, borrowed field by field (so the other
/// buffers stay usable).
macro_rules! dense_scratch {
    ($b:expr) => {
        DenseScratch {
            x_q: &mut *$b.x_q,
            x_q16: &mut *$b.x_q16,
            x_u8: &mut *$b.x_u8,
            x_amax: &mut *$b.x_amax,
            acc: &mut *$b.acc,
        }
    };
}

mod dense;
pub mod embeddings;
pub mod heads;
pub mod layer;
pub mod parallel;
pub mod position;
pub mod prepared;
pub mod scratch;

use crate::blob::{InputFormat, ModelView, Pooling, PositionMode};
use crate::error::RunError;
use crate::kernels::{Kernels, Lhs, MatRef, Requant};
use core::ops::ControlFlow;
use dense::{DenseScratch, forward, layer_norm, le_values, product, weights};
use layer::{LayerWeights, Runner, Texts};
use parallel::{Parallel, Sequential};
use prepared::{PreparedWeights, weight_matrix};
use scratch::{Buffers, Plan};

/// Runs a model with one kernel backend. Cheap to build; holds no buffers.
///
/// Reentrancy: an encoder only reads the model (and the prepared weights, if any); every
/// call owns the arena it is given. One parsed model may be shared by any number of
/// encoders and threads (`ModelView` is `Copy` and `Sync`: borrowed bytes), and one encoder
/// may run calls on several threads at once when its kernels are `Sync`, each call with
/// its own arena. Nothing is global.
///
/// Several cores: [`Self::with_parallel`] hands each call's work to an executor as
/// independent jobs (see [`parallel`]); the output is bit-identical for any number of
/// workers, and the arena grows with them ([`Self::plan`]).
#[derive(Debug, Clone, Copy)]
pub struct Encoder<'m, 'a, K, R = Sequential> {
    model: &'m ModelView<'a>,
    kernels: K,
    runner: R,
    positions: PositionMode,
    prepared: Option<PreparedWeights<'m>>,
}

/// How far a forward pass has got: `done` of `total` units (one unit is one block of
/// query rows through one layer). The first report, `done` 0, comes once the embeddings
/// are looked up, before the first layer (a host can then drop what only the lookup read,
/// such as the word embedding rows of a mapped blob).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    /// Units finished.
    pub done: usize,
    /// Units in the whole pass.
    pub total: usize,
}

/// A progress callback: called after the embedding lookup and after each unit of work;
/// returning `ControlFlow::Break(())` stops the pass with [`RunError::Cancelled`].
pub type ProgressFn<'p> = &'p mut dyn FnMut(Progress) -> ControlFlow<()>;

/// Per-call options of [`Encoder::embed_with`]; `Default` gives token types 0, the blob's
/// pooling and no progress reports.
#[derive(Default)]
pub struct EmbedOptions<'p> {
    /// Token type (segment) of each token; all 0 when `None`.
    pub token_types: Option<&'p [u32]>,
    /// Pooling; the blob's when `None`.
    pub pooling: Option<Pooling>,
    /// Called after the embedding lookup (`done` 0) and after each unit of work, for
    /// progress bars on long inputs; it may stop the pass.
    pub progress: Option<ProgressFn<'p>>,
}

impl<'m, 'a, K: Kernels> Encoder<'m, 'a, K> {
    /// An encoder for `model` using `kernels`, in the blob's position mode, running on the
    /// calling thread.
    pub fn new(model: &'m ModelView<'a>, kernels: K) -> Self {
        Self {
            model,
            kernels,
            runner: Sequential,
            positions: model.config.position_mode,
            prepared: None,
        }
    }
}

impl<'m, 'a, K: Kernels + Sync> Encoder<'m, 'a, K> {
    /// The same encoder running each pass's jobs on `parallel`'s workers (kernels that are
    /// `Sync`). Its calls need the larger arena of [`Self::plan`].
    pub fn with_parallel<P: Parallel>(self, parallel: P) -> Encoder<'m, 'a, K, P> {
        Encoder {
            model: self.model,
            kernels: self.kernels,
            runner: parallel,
            positions: self.positions,
            prepared: self.prepared,
        }
    }
}

impl<'m, 'a, K: Kernels, R: Runner<K>> Encoder<'m, 'a, K, R> {
    /// The same encoder reading the weights `kernels` prepared for this model
    /// ([`prepared::prepare_weights`]).
    ///
    /// # Errors
    /// [`RunError::PreparedMismatch`] when they were prepared by another backend or for a
    /// model of another shape.
    pub fn with_prepared(self, prepared: PreparedWeights<'m>) -> Result<Self, RunError> {
        if !prepared.matches(&self.kernels, self.model) {
            return Err(RunError::PreparedMismatch {
                prepared_for: prepared.backend(),
                kernels: self.kernels.name(),
            });
        }
        Ok(Self {
            prepared: Some(prepared),
            ..self
        })
    }

    /// The same encoder in another position mode: `Absolute` reads at most the trained
    /// table's positions, `Hierarchical` up to its square. Positions below the trained
    /// table's size are embedded identically in both.
    pub fn with_positions(self, positions: PositionMode) -> Self {
        Self { positions, ..self }
    }

    /// The largest number of tokens this encoder reads.
    pub fn max_tokens(&self) -> usize {
        self.model.config.max_positions(self.positions)
    }

    /// The scratch plan of a call on `n_tokens` tokens, with buffers for every worker (its
    /// arena size is [`Plan::arena_bytes`]; with one worker, [`crate::scratch_bytes`]).
    pub fn plan(&self, n_tokens: usize) -> Plan {
        let plan = self.base_plan(n_tokens);
        let c = &self.model.config;
        let dh = (c.hidden_size / c.num_attention_heads.max(1)) as usize;
        // Keys and values packed once per layer pay off when several blocks of queries
        // read them.
        if n_tokens <= scratch::BLOCK_ROWS {
            return plan;
        }
        // A backend that cannot size them (`usize::MAX`) prepares none.
        let fits = |bytes: usize| if bytes == usize::MAX { 0 } else { bytes };
        let plan = plan.with_key_panels(fits(self.kernels.prepared_len(n_tokens, dh)));
        plan.with_value_panels(fits(self.kernels.prepared_depths_len(n_tokens, dh)))
    }

    /// [`Self::plan`] without the backend's optional buffers: what
    /// [`crate::scratch_bytes`] sizes (with one worker).
    fn base_plan(&self, n_tokens: usize) -> Plan {
        Plan::for_model(self.model, n_tokens).with_workers(self.runner.workers())
    }

    /// Jobs this encoder runs at once.
    pub fn workers(&self) -> usize {
        self.runner.workers()
    }

    /// The model.
    pub fn model(&self) -> &'m ModelView<'a> {
        self.model
    }

    /// The kernel backend.
    pub fn kernels(&self) -> &K {
        &self.kernels
    }

    /// Checks ids, token types and length against the model.
    fn check_input(&self, ids: &[u32], token_types: Option<&[u32]>) -> Result<(), RunError> {
        let c = &self.model.config;
        if ids.is_empty() {
            return Err(RunError::EmptyInput);
        }
        let max = self.max_tokens();
        if ids.len() > max {
            return Err(RunError::TooManyTokens {
                len: ids.len(),
                max,
            });
        }
        if let Some((position, &id)) = ids.iter().enumerate().find(|(_, id)| **id >= c.vocab_size) {
            return Err(RunError::TokenOutOfVocab {
                position,
                id,
                vocab_size: c.vocab_size,
            });
        }
        if let Some(types) = token_types {
            if types.len() != ids.len() {
                return Err(RunError::OutputSize {
                    given: types.len(),
                    needed: ids.len(),
                });
            }
            if let Some((position, &id)) = types
                .iter()
                .enumerate()
                .find(|(_, t)| **t >= c.type_vocab_size)
            {
                return Err(RunError::TokenTypeOutOfRange {
                    position,
                    id,
                    type_vocab_size: c.type_vocab_size,
                });
            }
        }
        Ok(())
    }

    /// Embeddings and every encoder layer; leaves the last hidden states in `b.hidden`.
    fn encode<'s>(
        &self,
        ids: &[u32],
        token_types: Option<&[u32]>,
        scratch: &'s mut [u8],
        with_mlm: bool,
        progress: Option<ProgressFn<'_>>,
    ) -> Result<(Plan, Buffers<'s>), RunError> {
        self.check_input(ids, token_types)?;
        let texts = [ids];
        let texts = Texts(&texts);
        let with = |plan: Plan| if with_mlm { plan.with_mlm() } else { plan };
        // The backend's optional buffers when the arena has room for them.
        let full = with(self.plan(ids.len()));
        let plan = if scratch.len() >= full.arena_bytes() {
            full
        } else {
            with(self.base_plan(ids.len()))
        };
        let b = plan.carve(scratch)?;
        self.encode_texts(texts, token_types, plan, b, progress)
    }

    /// [`Self::encode`] of checked texts packed one after another into a carved arena.
    fn encode_texts<'s>(
        &self,
        texts: Texts<'_>,
        token_types: Option<&[u32]>,
        plan: Plan,
        mut b: Buffers<'s>,
        mut progress: Option<ProgressFn<'_>>,
    ) -> Result<(Plan, Buffers<'s>), RunError> {
        let d = self.model.config.hidden_size as usize;
        for (start, ids) in texts.starts() {
            let rows = start * d..(start + ids.len()) * d;
            embeddings::embed(
                &self.kernels,
                self.model,
                ids,
                token_types,
                self.positions,
                b.seq.hidden.get_mut(rows).unwrap_or_default(),
            )?;
        }
        let total = plan.blocks() * self.model.config.num_hidden_layers as usize;
        let mut report = |done| match progress.as_deref_mut() {
            Some(report) => report(Progress { done, total }),
            None => ControlFlow::Continue(()),
        };
        let mut done = 0;
        if report(done).is_break() {
            return Err(RunError::Cancelled { done, total });
        }
        let mut layers = 0u32;
        for (index, layer) in self.model.layers().enumerate() {
            let weights = LayerWeights {
                layer: &layer,
                index,
                prepared: self.prepared,
                model: self.model,
            };
            let flow = layer::forward_layer(
                &self.kernels,
                &self.runner,
                &self.model.config,
                (&weights, texts),
                &plan,
                &mut b,
                &mut |blocks| {
                    done += blocks;
                    report(done)
                },
            );
            if flow.is_break() {
                return Err(RunError::Cancelled { done, total });
            }
            layers += 1;
        }
        if layers != self.model.config.num_hidden_layers {
            // Unreachable for a view built by `parse`, which decoded every layer.
            return Err(RunError::NoSuchHead {
                head: "encoder layer",
            });
        }
        Ok((plan, b))
    }

    /// The last hidden states (`[n, hidden]`, Q.16), borrowed from the scratch arena.
    pub fn hidden_states<'s>(
        &self,
        ids: &[u32],
        token_types: Option<&[u32]>,
        scratch: &'s mut [u8],
    ) -> Result<&'s [i32], RunError> {
        let (_, b) = self.encode(ids, token_types, scratch, false, None)?;
        Ok(b.seq.hidden)
    }

    /// Sentence embedding with the model's pooling: `pooled` (length `hidden_size`)
    /// receives the pooled vector in Q.16, before L2 normalisation (see
    /// [`crate::output::normalize`]). Token types are all 0.
    pub fn embed(
        &self,
        ids: &[u32],
        scratch: &mut [u8],
        pooled: &mut [i32],
    ) -> Result<(), RunError> {
        self.embed_with(ids, EmbedOptions::default(), scratch, pooled)
    }

    /// [`Self::embed`] with token types, a pooling override or progress reports.
    pub fn embed_with(
        &self,
        ids: &[u32],
        options: EmbedOptions<'_>,
        scratch: &mut [u8],
        pooled: &mut [i32],
    ) -> Result<(), RunError> {
        self.embed_tokens(ids, options, scratch, pooled).map(|_| ())
    }

    /// [`Self::embed_with`], also returning the last hidden states it pooled (`[n, hidden]`,
    /// Q.16, borrowed from the scratch arena): token embeddings and the sentence embedding
    /// from one pass.
    pub fn embed_tokens<'s>(
        &self,
        ids: &[u32],
        options: EmbedOptions<'_>,
        scratch: &'s mut [u8],
        pooled: &mut [i32],
    ) -> Result<&'s [i32], RunError> {
        let pooling = options.pooling.unwrap_or(self.model.config.pooling);
        let d = self.model.config.hidden_size as usize;
        if pooled.len() != d {
            return Err(RunError::OutputSize {
                given: pooled.len(),
                needed: d,
            });
        }
        let (plan, b) = self.encode(ids, options.token_types, scratch, false, options.progress)?;
        pool(b.seq.hidden, plan.tokens(), d, pooling, pooled);
        Ok(b.seq.hidden.get(..plan.tokens() * d).unwrap_or_default())
    }

    /// The scratch plan of [`Self::embed_batch`] on `texts` (its arena size is
    /// [`Plan::arena_bytes`]): the plan of all their tokens in one sequence.
    pub fn batch_plan(&self, texts: &[&[u32]]) -> Plan {
        self.base_plan(Texts(texts).tokens())
    }

    /// Sentence embeddings of several texts in one pass: their tokens are packed one after
    /// another into the row blocks (no padding), so short texts fill the dense layers'
    /// products, while attention stays within each text. `pooled` (`texts.len() *
    /// hidden_size`) receives text `i`'s pooled Q.16 vector at `i * hidden_size`,
    /// bit-identical to [`Self::embed`] of that text alone. Token types are all 0; the
    /// pooling is the blob's.
    ///
    /// # Errors
    /// The error [`Self::embed`] gives for the first text that fails its checks (then no
    /// text is encoded: check or embed such a batch text by text), or an arena smaller
    /// than [`Self::batch_plan`]'s.
    pub fn embed_batch(
        &self,
        texts: &[&[u32]],
        scratch: &mut [u8],
        pooled: &mut [i32],
    ) -> Result<(), RunError> {
        let d = self.model.config.hidden_size as usize;
        let needed = texts.len().saturating_mul(d);
        if pooled.len() != needed {
            return Err(RunError::OutputSize {
                given: pooled.len(),
                needed,
            });
        }
        if texts.is_empty() {
            return Ok(());
        }
        for ids in texts {
            self.check_input(ids, None)?;
        }
        let plan = self.batch_plan(texts);
        let b = plan.carve(scratch)?;
        let texts = Texts(texts);
        let (_, b) = self.encode_texts(texts, None, plan, b, None)?;
        for ((start, ids), out) in texts.starts().zip(pooled.chunks_exact_mut(d.max(1))) {
            let rows = start * d..(start + ids.len()) * d;
            let hidden = b.seq.hidden.get(rows).unwrap_or_default();
            pool(hidden, ids.len(), d, self.model.config.pooling, out);
        }
        Ok(())
    }

    /// Masked-language-model logits (Q.16) at `positions`: `logits` has
    /// `positions.len() * vocab_size` elements, row `i` for `positions[i]`. Needs
    /// [`scratch::mlm_scratch_bytes`] of scratch.
    pub fn mlm_logits(
        &self,
        ids: &[u32],
        positions: &[usize],
        scratch: &mut [u8],
        logits: &mut [i32],
    ) -> Result<(), RunError> {
        let Some(mlm) = self.model.head.mlm else {
            return Err(RunError::NoSuchHead {
                head: "masked-language-model",
            });
        };
        let c = &self.model.config;
        let (d, vocab) = (c.hidden_size as usize, c.vocab_size as usize);
        let needed = positions.len().saturating_mul(vocab);
        if logits.len() != needed {
            return Err(RunError::OutputSize {
                given: logits.len(),
                needed,
            });
        }
        if let Some(&position) = positions.iter().find(|&&p| p >= ids.len()) {
            return Err(RunError::PositionOutOfRange {
                position,
                limit: ids.len(),
            });
        }
        let (plan, b) = self.encode(ids, None, scratch, true, None)?;
        let k = &self.kernels;
        let run = b.blocks.get_mut(..plan.worker_bytes()).unwrap_or_default();
        let blk = plan.block_buffers(run);
        let mut s = dense_scratch!(blk);
        let (Some(decoder), Some(ln)) = (
            Requant::new(
                le_values(&mlm.decoder_multiplier),
                mlm.decoder_shift.data,
                Some(le_values(&mlm.decoder_bias)),
            ),
            layer_norm(&mlm.layer_norm, c.layer_norm_eps_q32),
        ) else {
            return Err(RunError::NoSuchHead {
                head: "masked-language-model",
            });
        };
        let prepared = |which| self.prepared.as_ref().map_or(&[][..], |p| p.mlm(which));
        let table = weights(
            weight_matrix(&self.model.embeddings.word.weight),
            prepared(1),
        );
        for (&p, out) in positions.iter().zip(logits.chunks_exact_mut(vocab.max(1))) {
            let row = b.seq.hidden.get(p * d..(p + 1) * d).unwrap_or_default();
            // BertPredictionHeadTransform: dense, GELU, LayerNorm.
            let y = blk.y.get_mut(..d).unwrap_or_default();
            let how = (InputFormat::Int8, prepared(0));
            forward(k, &mlm.transform, how, 1, row, &mut s, y);
            k.gelu_row(y);
            k.layer_norm_row(y, &ln);
            // Decoder tied to the word embeddings: one int8 row per vocabulary entry.
            let amax = k.quantize_row_i8(y, s.x_q);
            if let Some(x) = MatRef::contiguous(s.x_q.get(..d).unwrap_or_default(), 1, d) {
                product(k, Lhs::I8(x), table, b.seq.mlm_acc);
            }
            k.requantize_row(b.seq.mlm_acc, amax, &decoder, out);
        }
        Ok(())
    }
}

/// Pools `n` rows of `[n, d]` Q.16 hidden states into `out` (length `d`).
fn pool(hidden: &[i32], n: usize, d: usize, pooling: Pooling, out: &mut [i32]) {
    match pooling {
        Pooling::Cls => {
            for (o, &x) in out.iter_mut().zip(hidden) {
                *o = x;
            }
        }
        Pooling::Mean => {
            let n = n.max(1) as i64;
            for (c, o) in out.iter_mut().enumerate() {
                let sum: i64 = hidden
                    .iter()
                    .skip(c)
                    .step_by(d.max(1))
                    .map(|&x| i64::from(x))
                    .sum();
                // Round half up, like every other division here.
                *o = (sum * 2 + n).div_euclid(2 * n) as i32;
            }
        }
    }
}
