//! The invariants every target checks on a parsed model, beyond "no crash":
//!
//! - a call returns exactly what [`oracle::expected`] says (the output, or the named
//!   `RunError` its inputs call for);
//! - the host kernels (AVX2 when the CPU has it, with and without packed weights) give
//!   bit-identical outputs to `microbert::Scalar`, each on an arena filled with other bytes
//!   (differential fuzzing of the SIMD backend; no run reads scratch it did not write);
//! - the same call twice gives the same output: every call runs at least twice (scalar,
//!   then the host kernels), and when `twice` is set the scalar reference runs a second
//!   time as well (the targets set it for one input in four, which keeps them fast);
//! - `ScratchTooSmall { needed }` names the size that works: an arena of exactly `needed`
//!   bytes (same start) succeeds and one byte fewer fails the same way;
//! - `scratch_bytes` and `mlm_scratch_bytes` equal the `u128` layout formula, or
//!   saturate exactly when that exceeds `usize`.

use crate::oracle::{self, Call, Entry};
use crate::{Arena, tokens};
use microbert::blob::{Pooling, PositionMode};
use microbert::{EmbedOptions, Encoder, Kernels, ModelView, RunError, Scalar, Tokenizer};
use microbert_host::HostKernels;

/// Runs `call` on `kernels` with `arena`; the output is the pooled vector, the hidden
/// states or the logits.
pub fn run<K: Kernels>(
    model: &ModelView<'_>,
    kernels: K,
    call: &Call,
    arena: &mut Arena,
) -> Result<Vec<i32>, RunError> {
    let encoder = Encoder::new(model, kernels).with_positions(call.positions);
    let scratch = arena.bytes();
    match &call.entry {
        Entry::Embed {
            pooling,
            pooled_len,
        } => {
            let mut pooled = vec![0i32; *pooled_len];
            let options = EmbedOptions {
                token_types: call.types.as_deref(),
                pooling: *pooling,
                progress: None,
            };
            encoder.embed_with(&call.ids, options, scratch, &mut pooled)?;
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
    hosts: &[&HostKernels<'_>],
    twice: bool,
    call: &Call,
) -> Result<Vec<i32>, RunError> {
    let want = oracle::expected(model, call);
    let first = run(
        model,
        Scalar,
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
                    model,
                    Scalar,
                    call,
                    &mut Arena::new(call.arena_offset, call.arena_len, 0xa5),
                );
                assert_eq!(again.as_ref(), Ok(out), "a second scalar run differs");
            }
            for (i, &host) in hosts.iter().enumerate() {
                let fill = 0x5a ^ i as u8;
                let got = run(
                    model,
                    host.clone(),
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
        Err(RunError::ScratchTooSmall { given, needed }) if *needed != usize::MAX => {
            assert!(
                needed > given,
                "ScratchTooSmall with needed {needed} <= given {given}"
            );
            let exact = Call {
                arena_len: *needed,
                ..call.clone()
            };
            assert!(
                run(
                    model,
                    Scalar,
                    &exact,
                    &mut Arena::new(exact.arena_offset, *needed, 0)
                )
                .is_ok(),
                "an arena of the {needed} bytes ScratchTooSmall asked for fails"
            );
            let short = Call {
                arena_len: needed - 1,
                ..call.clone()
            };
            assert_eq!(
                run(
                    model,
                    Scalar,
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
/// the MLM logits), on the scalar reference and the host kernels (packed or not). `seed`
/// picks the text, the entry point, the packing, whether the scalar run is repeated, and
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
    tokens::check(&tokenizer, Some(&model.tokenizer), c.vocab_size, text, seed);

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
        },
        1 if model.head.mlm.is_some() => Entry::Mlm {
            positions: vec![0, n - 1],
            logits_len: 2 * c.vocab_size as usize,
        },
        _ => Entry::Hidden,
    };
    let host = HostKernels::detect();
    let host = if (seed >> 4).is_multiple_of(2) {
        host.pack_model(model)
    } else {
        host
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
        call.arena_len = call.arena_needed(c).expect("a few tokens' scratch fits");
        call
    };
    for entry in [
        Entry::Embed {
            pooling: None,
            pooled_len: d,
        },
        other,
    ] {
        let out = call(model, &[&host], twice, &call_for(entry, c.position_mode, 0));
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
            run(model, Scalar, &call, &mut Arena::new(1, call.arena_len, 0))
        });
        assert!(a.is_ok(), "hidden states of a parsed model: {a:?}");
        assert_eq!(
            a, b,
            "positions below the table's size differ between modes"
        );
    }
}
