//! What an encoder call must return, computed without the runtime: the order of the input
//! checks of `Encoder::{embed_with, hidden_states, mlm_logits}` (as their docs and
//! `RunError` state them), and the scratch size as a `u128` formula of the layout in
//! `runtime/src/model/scratch.rs` (which cannot overflow for any `usize` length).

use microbert::blob::format::NUMERICS_ENTRY_LEN;
use microbert::blob::{Config, Pooling, PositionMode};
use microbert::model::scratch::{BLOCK_ROWS, REGION_ALIGN};
use microbert::{ModelView, Plan, RunError};

/// Upper bounds a parsed config stays within (`runtime/src/blob/validate.rs`, summarised in
/// `docs/blob-format.md`): `(field, lowest, highest)`.
pub const CONFIG_LIMITS: [(&str, u32, u32); 7] = [
    ("vocab_size", 1, 1 << 22),
    ("hidden_size", 1, 8192),
    ("num_hidden_layers", 0, 256),
    ("num_attention_heads", 1, 8192),
    ("intermediate_size", 1, 65_536),
    ("max_position_embeddings", 1, 65_536),
    ("type_vocab_size", 1, 1024),
];

/// The config's dimension fields in the order of [`CONFIG_LIMITS`].
pub fn dims(c: &Config) -> [u32; 7] {
    [
        c.vocab_size,
        c.hidden_size,
        c.num_hidden_layers,
        c.num_attention_heads,
        c.intermediate_size,
        c.max_position_embeddings,
        c.type_vocab_size,
    ]
}

/// Which dense-input buffers a model's numerics ask for: `(int16, uint8)`, read from
/// the numerics entries directly (not through `Plan::for_model`).
pub fn input_buffers(model: &ModelView<'_>) -> (bool, bool) {
    let codes = model
        .numerics
        .map(|n| {
            n.inputs
                .chunks_exact(NUMERICS_ENTRY_LEN)
                .map(|e| e[0])
                .collect::<Vec<u8>>()
        })
        .unwrap_or_default();
    (codes.contains(&1), codes.contains(&2))
}

/// Bytes of an arena (at any address) for `n` tokens, with the MLM logits buffer when
/// `mlm` and the int16 / uint8 input buffers when asked: every region of the layout in
/// `runtime/src/model/scratch.rs` rounded up to `REGION_ALIGN` bytes, plus
/// `REGION_ALIGN - 1` bytes of slack for the start, in exact `u128` arithmetic.
pub fn scratch_bytes(c: &Config, n: u128, mlm: bool, (int16, uint8): (bool, bool)) -> u128 {
    let d = u128::from(c.hidden_size);
    let h = u128::from(c.num_attention_heads);
    let w = d.max(u128::from(c.intermediate_size));
    let b = n.clamp(1, BLOCK_ROWS as u128);
    let vocab = if mlm { u128::from(c.vocab_size) } else { 0 };
    let align = REGION_ALIGN as u128;
    let region = |count: u128, size: u128| (count * size).div_ceil(align) * align;
    region(n * d, 4) // residual stream
        + 2 * region(n * d, 1) // K and V, int8
        + 2 * region(n * h, 4) // K exponents, V ranges
        + region(b * d, 1) // Q of a block
        + region(b * h, 4) // Q ranges
        + region(b * w, 1) // dense inputs, int8
        + region(b, 4) // their ranges
        + region(if int16 { b * w } else { 0 }, 2) // int16 dense inputs
        + region(if uint8 { b * w } else { 0 }, 1) // uint8 dense inputs
        + region(b * w.max(n), 4) // accumulators
        + region(b * w, 4) // dense outputs
        + region(b * d, 4) // second dense output
        + region(b * n, 2) // probabilities, u16
        + region(b * (d / h.max(1)), 4) // P.V accumulators
        + region(vocab, 4) // MLM logits
        + (align - 1)
}

/// Checks `microbert::scratch_bytes`, `mlm_scratch_bytes` and `Plan::checked_arena_bytes`
/// for `n` tokens against [`scratch_bytes`]: equal, or (`usize::MAX`, `None`) exactly when
/// the true size exceeds `usize` (a size never wraps).
pub fn check_scratch_bytes(model: &ModelView<'_>, n: usize) {
    let buffers = input_buffers(model);
    for mlm in [false, true] {
        let got = if mlm {
            microbert::mlm_scratch_bytes(model, n)
        } else {
            microbert::scratch_bytes(model, n)
        };
        let plan = Plan::for_model(model, n);
        let plan = if mlm { plan.with_mlm() } else { plan };
        let want = scratch_bytes(&model.config, n as u128, mlm, buffers);
        match usize::try_from(want) {
            Ok(want) => {
                assert_eq!(got, want, "scratch_bytes(n = {n}, mlm = {mlm})");
                assert_eq!(
                    plan.checked_arena_bytes(),
                    Some(want),
                    "checked_arena_bytes"
                );
            }
            Err(_) => {
                assert_eq!(
                    got,
                    usize::MAX,
                    "scratch_bytes(n = {n}, mlm = {mlm}) of {want} bytes must saturate"
                );
                assert_eq!(plan.checked_arena_bytes(), None, "checked_arena_bytes");
            }
        }
    }
}

/// The most tokens a model reads in a position mode.
pub fn max_tokens(c: &Config, mode: PositionMode) -> u128 {
    let p = u128::from(c.max_position_embeddings);
    match mode {
        PositionMode::Absolute => p,
        PositionMode::Hierarchical => p * p,
    }
}

/// Which entry point a call uses, with its output buffer's length.
#[derive(Debug, Clone)]
pub enum Entry {
    /// `embed_with` with a pooling override and a `pooled` buffer of this length.
    Embed {
        /// Pooling override.
        pooling: Option<Pooling>,
        /// Length of `pooled`.
        pooled_len: usize,
        /// The progress callback stops the pass at this report (1 is the first), if any.
        cancel_at: Option<usize>,
    },
    /// `hidden_states`.
    Hidden,
    /// `mlm_logits` at these positions, `logits` of this length.
    Mlm {
        /// Positions asked for.
        positions: Vec<usize>,
        /// Length of `logits`.
        logits_len: usize,
    },
}

/// One encoder call: its inputs and the arena's placement.
#[derive(Debug, Clone)]
pub struct Call {
    /// Token ids.
    pub ids: Vec<u32>,
    /// Token types (`embed_with` and `hidden_states` only).
    pub types: Option<Vec<u32>>,
    /// Position mode of the encoder.
    pub positions: PositionMode,
    /// Entry point.
    pub entry: Entry,
    /// Arena start, bytes past a `REGION_ALIGN` boundary (0 to 15).
    pub arena_offset: usize,
    /// Arena length in bytes.
    pub arena_len: usize,
}

impl Call {
    /// Bytes the arena needs (from any start): [`scratch_bytes`] of the model's layout.
    /// `None` when it exceeds `usize`.
    pub fn arena_needed(&self, model: &ModelView<'_>) -> Option<usize> {
        let mlm = matches!(self.entry, Entry::Mlm { .. });
        let need = scratch_bytes(
            &model.config,
            self.ids.len() as u128,
            mlm,
            input_buffers(model),
        );
        usize::try_from(need).ok()
    }
}

/// What the call must return: `Ok(())` or exactly this error.
pub fn expected(model: &ModelView<'_>, call: &Call) -> Result<(), RunError> {
    let c = &model.config;
    let n = call.ids.len();
    match &call.entry {
        Entry::Embed { pooled_len, .. } => {
            if *pooled_len != c.hidden_size as usize {
                return Err(RunError::OutputSize {
                    given: *pooled_len,
                    needed: c.hidden_size as usize,
                });
            }
        }
        Entry::Hidden => {}
        Entry::Mlm {
            positions,
            logits_len,
        } => {
            if model.head.mlm.is_none() {
                return Err(RunError::NoSuchHead {
                    head: "masked-language-model",
                });
            }
            let needed = (positions.len() as u128 * u128::from(c.vocab_size))
                .try_into()
                .unwrap_or(usize::MAX);
            if *logits_len != needed {
                return Err(RunError::OutputSize {
                    given: *logits_len,
                    needed,
                });
            }
            if let Some(&position) = positions.iter().find(|&&p| p >= n) {
                return Err(RunError::PositionOutOfRange { position, limit: n });
            }
        }
    }
    if n == 0 {
        return Err(RunError::EmptyInput);
    }
    let max = max_tokens(c, call.positions);
    if n as u128 > max {
        return Err(RunError::TooManyTokens {
            len: n,
            max: usize::try_from(max).unwrap_or(usize::MAX),
        });
    }
    if let Some((position, &id)) = call
        .ids
        .iter()
        .enumerate()
        .find(|(_, id)| **id >= c.vocab_size)
    {
        return Err(RunError::TokenOutOfVocab {
            position,
            id,
            vocab_size: c.vocab_size,
        });
    }
    // `mlm_logits` takes no token types.
    let types = match call.entry {
        Entry::Mlm { .. } => None,
        _ => call.types.as_deref(),
    };
    if let Some(types) = types {
        if types.len() != n {
            return Err(RunError::OutputSize {
                given: types.len(),
                needed: n,
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
    match call.arena_needed(model) {
        Some(needed) if call.arena_len >= needed => {}
        needed => {
            return Err(RunError::ScratchTooSmall {
                given: call.arena_len,
                needed: needed.unwrap_or(usize::MAX),
            });
        }
    }
    // Progress: one report after the embedding lookup (done 0), then one per block of
    // query rows per layer; a `Break` at report `at` stops the pass after `at - 1` units.
    if let Entry::Embed {
        cancel_at: Some(at),
        ..
    } = call.entry
    {
        let blocks = n.div_ceil(n.clamp(1, BLOCK_ROWS));
        let total = blocks * c.num_hidden_layers as usize;
        if (1..=total + 1).contains(&at) {
            return Err(RunError::Cancelled {
                done: at - 1,
                total,
            });
        }
    }
    Ok(())
}
