//! The invariants every target checks on a parsed model, beyond "no crash":
//!
//! - a call returns exactly what [`oracle::expected`] says (the output, or the named
//!   `RunError` its inputs call for);
//! - the host kernels (AVX2 when the CPU has it, with and without prepared weights) give
//!   bit-identical outputs to `microbert::Scalar`, each on an arena filled with other bytes
//!   (differential fuzzing of the SIMD backend; no run reads scratch it did not write);
//! - the same call twice gives the same output: every call runs at least twice (scalar,
//!   then the host kernels), and when `twice` is set the scalar reference runs a second
//!   time as well (the targets set it for one input in four, which keeps them fast);
//! - a progress callback sees the end of the embedding lookup (done 0), then every unit
//!   of work in order, and one that stops the pass
//!   gives `Cancelled` at the same report on every backend;
//! - `ScratchTooSmall { needed }` names the size that works: an arena of exactly `needed`
//!   bytes (same start) succeeds and one byte fewer fails the same way;
//! - `scratch_bytes`, `mlm_scratch_bytes` and `Plan::checked_arena_bytes` equal the `u128`
//!   layout formula, or saturate (`usize::MAX`, `None`) exactly when that exceeds `usize`.

use crate::oracle::{self, Call, Entry};
use crate::{Arena, tokens};
use core::ops::ControlFlow;
use microbert::blob::{Pooling, PositionMode};
use microbert::{EmbedOptions, Encoder, Kernels, ModelView, Progress, RunError, Scalar, Tokenizer};
use microbert_host::{HostKernels, PreparedModel};

/// A host backend to compare with the scalar reference: the host kernels reading the
/// weights as stored, or with the weights they prepared for the model.
#[derive(Clone, Copy)]
pub enum Host<'p> {
    /// Unprepared weights.
    Plain(HostKernels),
    /// Weights prepared by [`HostKernels::prepare_model`] for the model under test.
    Prepared(&'p PreparedModel),
}

impl Host<'_> {
    /// Name for messages.
    pub fn name(&self) -> String {
        match self {
            Self::Plain(k) => k.name().to_owned(),
            Self::Prepared(p) => format!("{} prepared", p.kernels().name()),
        }
    }

    /// Runs `call` on these kernels (see [`run`]).
    pub fn run(
        &self,
        model: &ModelView<'_>,
        call: &Call,
        arena: &mut Arena,
    ) -> Result<Vec<i32>, RunError> {
        match self {
            Self::Plain(k) => run(Encoder::new(model, *k), call, arena),
            Self::Prepared(p) => run(p.encoder(model)?, call, arena),
        }
    }
}

/// Runs `call` with `encoder` on `arena`; the output is the pooled vector, the hidden
/// states or the logits.
pub fn run<K: Kernels>(
    encoder: Encoder<'_, '_, K>,
    call: &Call,
    arena: &mut Arena,
) -> Result<Vec<i32>, RunError> {
    let encoder = encoder.with_positions(call.positions);
    let scratch = arena.bytes();
    match &call.entry {
        Entry::Embed {
            pooling,
            pooled_len,
            cancel_at,
        } => {
            let mut pooled = vec![0i32; *pooled_len];
            let mut reports = 0usize;
            let mut last: Option<Progress> = None;
            let mut progress = |p: Progress| {
                reports += 1;
                // The first report (done 0) follows the embedding lookup.
                assert_eq!(p.done + 1, reports, "progress reports count units in order");
                if let Some(l) = last {
                    assert_eq!(l.total, p.total, "the total of a pass changed");
                }
                assert!(p.done <= p.total, "progress {p:?} past its total");
                last = Some(p);
                if Some(reports) == *cancel_at {
                    ControlFlow::Break(())
                } else {
                    ControlFlow::Continue(())
                }
            };
            let options = EmbedOptions {
                token_types: call.types.as_deref(),
                pooling: *pooling,
                progress: cancel_at.is_some().then_some(&mut progress as _),
            };
            encoder.embed_with(&call.ids, options, scratch, &mut pooled)?;
            if cancel_at.is_some() {
                // A pass that was not stopped reported every unit.
                assert_eq!(
                    last.map(|l| l.done),
                    last.map(|l| l.total),
                    "missing reports"
                );
            }
            Ok(pooled)
        }
        Entry::Hidden => Ok(encoder
            .hidden_states(&call.ids, call.types.as_deref(), scratch)?
            .to_vec()),
        Entry::Mlm {
            positions,
            logits_len,
        } => {
            let mut logits = vec![0i32; *logits_len];
            encoder.mlm_logits(&call.ids, positions, scratch, &mut logits)?;
            Ok(logits)
        }
    }
}

/// Runs `call` on the scalar reference (twice if `twice`) and on each of `hosts`, checking
/// every invariant of the module docs. Returns the scalar outcome.
pub fn call(
    model: &ModelView<'_>,
    hosts: &[Host<'_>],
    twice: bool,
    call: &Call,
) -> Result<Vec<i32>, RunError> {
    let want = oracle::expected(model, call);
    let scalar = || Encoder::new(model, Scalar);
    let first = run(
        scalar(),
        call,
        &mut Arena::new(call.arena_offset, call.arena_len, 0),
    );
    assert_eq!(
        first.as_ref().err(),
        want.as_ref().err(),
        "outcome of {call:?} (n = {})",
        call.ids.len()
    );
    match &first {
        Ok(out) => {
            if twice {
                let again = run(
                    scalar(),
                    call,
                    &mut Arena::new(call.arena_offset, call.arena_len, 0xa5),
                );
                assert_eq!(again.as_ref(), Ok(out), "a second scalar run differs");
            }
            for (i, host) in hosts.iter().enumerate() {
                let fill = 0x5a ^ i as u8;
                let got = host.run(
                    model,
                    call,
                    &mut Arena::new(call.arena_offset, call.arena_len, fill),
                );
                assert!(
                    got.as_ref() == Ok(out),
                    "host kernels #{i} ({}) differ from scalar on n = {}",
                    host.name(),
                    call.ids.len()
                );
            }
        }
        Err(RunError::Cancelled { .. }) => {
            // The host kernels stop at the same report.
            for host in hosts {
                let got = host.run(
                    model,
                    call,
                    &mut Arena::new(call.arena_offset, call.arena_len, 0x3c),
                );
                assert_eq!(got.as_ref().err(), first.as_ref().err(), "{}", host.name());
            }
        }
        Err(RunError::ScratchTooSmall { given, needed }) if *needed != usize::MAX => {
            assert!(
                needed > given,
                "ScratchTooSmall with needed {needed} <= given {given}"
            );
            let exact = Call {
                arena_len: *needed,
                ..call.clone()
            };
            // With exactly `needed` bytes the call gets past the arena (to its output,
            // or to a progress callback that stops it).
            let got = run(
                scalar(),
                &exact,
                &mut Arena::new(exact.arena_offset, *needed, 0),
            );
            let want = oracle::expected(model, &exact);
            assert!(
                !matches!(want, Err(RunError::ScratchTooSmall { .. })),
                "the oracle needs more than ScratchTooSmall's {needed} bytes: {want:?}"
            );
            assert_eq!(
                got.err(),
                want.err(),
                "an arena of the {needed} bytes ScratchTooSmall asked for"
            );
            let short = Call {
                arena_len: needed - 1,
                ..call.clone()
            };
            assert_eq!(
                run(
                    scalar(),
                    &short,
                    &mut Arena::new(short.arena_offset, needed - 1, 0)
                )
                .err(),
                Some(RunError::ScratchTooSmall {
                    given: needed - 1,
                    needed: *needed
                }),
                "one byte less than ScratchTooSmall's needed"
            );
        }
        Err(_) => {}
    }
    first
}

/// Texts a parsed model's tokenizer reads in [`model`] (one per blob, by the seed).
const TEXTS: [&str; 4] = [
    "the quick brown fox",
    "Hello, World! [SEP] café über 中文",
    "",
    "zzzzzzzzzzzz qx ##ing [MASK]...",
];

/// The invariants on any parsed model (the blob target calls it on every blob that
/// parses): layer count, config limits, scratch sizes at small, limit and huge lengths,
/// the tokenizer invariants on a text, and a short inference of the tokenizer's ids with
/// the blob's pooling plus one other entry point (the other pooling, the hidden states or
/// the MLM logits), on the scalar reference and the host kernels (weights prepared or not). `seed`
/// picks the text, the entry point, the preparation, whether the scalar run is repeated, and
/// varies the ids; one blob in eight also compares the two position modes.
pub fn model(model: &ModelView<'_>, seed: u64) {
    let c = &model.config;
    assert_eq!(
        model.layers().count(),
        c.num_hidden_layers as usize,
        "layers() of a parsed model"
    );
    for ((field, lo, hi), value) in oracle::CONFIG_LIMITS.iter().zip(oracle::dims(c)) {
        assert!(
            (*lo..=*hi).contains(&value),
            "parsed model has {field} = {value}"
        );
    }
    let max = model.max_tokens();
    for n in [
        0,
        1,
        2,
        25,
        max,
        max.saturating_add(1),
        1 << 32,
        usize::MAX / 4096,
        usize::MAX,
        seed as usize,
    ] {
        oracle::check_scratch_bytes(model, n);
    }

    let tokenizer = Tokenizer::new(model);
    let text = TEXTS[(seed % 4) as usize];
    tokens::check(
        &tokenizer,
        model.tokenizer.as_ref(),
        c.vocab_size,
        text,
        seed,
    );

    // A few tokens: the tokenizer's ids of the text, cut to what the model reads.
    let cap = max.clamp(1, 12);
    let mut ids = vec![0u32; cap.max(2)];
    let enc = tokenizer
        .encode(text, &mut ids)
        .expect("a buffer of two ids or more");
    ids.truncate(enc.len.min(cap));
    // Vary the ids (in the vocabulary) with the seed.
    if let Some(id) = ids.get_mut(1) {
        *id = ((u64::from(*id) + seed) % u64::from(c.vocab_size)) as u32;
    }
    let n = ids.len();
    let types: Option<Vec<u32>> =
        (c.type_vocab_size > 1).then(|| (0..n as u32).map(|t| t % 2).collect());
    let d = c.hidden_size as usize;
    let other = match (seed >> 2) % 3 {
        0 => Entry::Embed {
            pooling: Some(match c.pooling {
                Pooling::Mean => Pooling::Cls,
                Pooling::Cls => Pooling::Mean,
            }),
            pooled_len: d,
            cancel_at: None,
        },
        1 if model.head.mlm.is_some() => Entry::Mlm {
            positions: vec![0, n - 1],
            logits_len: 2 * c.vocab_size as usize,
        },
        _ => Entry::Hidden,
    };
    let kernels = HostKernels::detect();
    let prepared;
    let host = if (seed >> 4).is_multiple_of(2) {
        prepared = kernels.prepare_model(model);
        Host::Prepared(&prepared)
    } else {
        Host::Plain(kernels)
    };
    let twice = (seed >> 5).is_multiple_of(4);
    let call_for = |entry: Entry, positions: PositionMode, arena_offset: usize| {
        let types = if matches!(entry, Entry::Mlm { .. }) {
            None
        } else {
            types.clone()
        };
        let mut call = Call {
            ids: ids.clone(),
            types,
            positions,
            entry,
            arena_offset,
            arena_len: 0,
        };
        call.arena_len = call
            .arena_needed(model)
            .expect("a few tokens' scratch fits");
        call
    };
    for entry in [
        Entry::Embed {
            pooling: None,
            pooled_len: d,
            cancel_at: None,
        },
        other,
    ] {
        let out = call(model, &[host], twice, &call_for(entry, c.position_mode, 0));
        assert!(out.is_ok(), "a parsed model failed on valid input: {out:?}");
    }
    // The other position mode reads the same first positions identically.
    if (seed >> 7).is_multiple_of(8) && n <= c.max_position_embeddings as usize {
        let other = match c.position_mode {
            PositionMode::Absolute => PositionMode::Hierarchical,
            PositionMode::Hierarchical => PositionMode::Absolute,
        };
        let [a, b] = [c.position_mode, other].map(|mode| {
            let call = call_for(Entry::Hidden, mode, 1);
            run(
                Encoder::new(model, Scalar),
                &call,
                &mut Arena::new(1, call.arena_len, 0),
            )
        });
        assert!(a.is_ok(), "hidden states of a parsed model: {a:?}");
        assert_eq!(
            a, b,
            "positions below the table's size differ between modes"
        );
    }
}
