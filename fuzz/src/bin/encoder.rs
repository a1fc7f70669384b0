//! Fuzz target `encoder`: the encoder entry points on the fixture model with arbitrary
//! token ids (in and out of the vocabulary), token types, lengths (0 to past the limit),
//! poolings, progress callbacks that stop the pass, output buffers and arenas (too small,
//! exact, larger, any start residue).
//!
//! The input is read as a stream of choices ([`microbert_fuzz::Input`]): position mode,
//! length, one byte per id, token types, the entry point (`embed_with`, with a progress
//! callback that stops at a chosen report for one call in four, `hidden_states`,
//! `mlm_logits`) and its output length, the arena's start (0 to 15 bytes past a 16-byte
//! boundary) and size. Expensive lengths are
//! rare (the length byte decides): 0 to 16 tokens for 236 in 256, 17 to 80 (across the 64
//! trained positions) for 15 in 256, 81 to 300 (hierarchical positions) for 1 in 256, just
//! past the limit for 3 in 256; 1 in 256 asks only for scratch sizes at a huge length.
//! [`microbert_fuzz::check::call`] checks the outcome against [`microbert_fuzz::oracle`],
//! compares AVX2 (prepared weights for half the inputs, as stored for the others) with scalar
//! bit for bit (one input in four runs the scalar reference a second time too), and re-runs
//! a `ScratchTooSmall` with exactly the size it names and one byte less.
#![no_main]

use microbert::blob::{Pooling, PositionMode};
use microbert::model::scratch::REGION_ALIGN;
use microbert_fuzz::check::Host;
use microbert_fuzz::oracle::{self, Call, Entry};
use microbert_fuzz::{Input, check, fixture};
use microbert_host::HostKernels;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let model = fixture::model();
    let c = &model.config;
    let (d, vocab) = (c.hidden_size as usize, c.vocab_size);
    let mut input = Input::new(data);

    let positions = if input.chance(1, 4) {
        PositionMode::Absolute
    } else {
        c.position_mode
    };
    let max = oracle::max_tokens(c, positions) as usize;
    let n = match input.byte() {
        0..=235 => input.range_usize(0, 16),
        236..=250 => input.range_usize(17, 80),
        251 => input.range_usize(81, 300),
        252..=254 if positions == PositionMode::Absolute => input.range_usize(max - 2, max + 2),
        252..=254 => input.range_usize(max + 1, max + 3),
        _ => {
            oracle::check_scratch_bytes(model, input.u64() as usize);
            return;
        }
    };
    oracle::check_scratch_bytes(model, n);

    let ids: Vec<u32> = (0..n)
        .map(|_| match input.byte() {
            b @ 0..=249 => u32::from(b) % vocab,
            250 => vocab,
            251 => vocab + 1,
            252 => u32::MAX,
            _ => vocab + input.u32() % (u32::MAX - vocab),
        })
        .collect();
    let types = match input.byte() % 8 {
        0..=4 => None,
        5 | 6 => Some(
            (0..n)
                .map(|_| match input.byte() {
                    b @ 0..=251 => u32::from(b % 2),
                    252 | 253 => c.type_vocab_size,
                    _ => u32::MAX,
                })
                .collect(),
        ),
        _ => Some(vec![
            0;
            if input.chance(1, 2) {
                n + 1
            } else {
                n.saturating_sub(1)
            }
        ]),
    };
    let entry = match input.byte() % 8 {
        0..=4 => Entry::Embed {
            pooling: input.pick(&[None, Some(Pooling::Mean), Some(Pooling::Cls)]),
            pooled_len: if input.chance(1, 16) {
                input.pick(&[0, d - 1, d + 1])
            } else {
                d
            },
            // A progress callback for one call in four, stopping the pass at a report
            // (possibly past the last one, when it runs to the end).
            cancel_at: input.chance(1, 4).then(|| input.range_usize(1, 8)),
        },
        5 | 6 => Entry::Hidden,
        _ => {
            let k = input.below(5) as usize;
            let positions: Vec<usize> =
                (0..k).map(|_| input.below(n as u64 + 2) as usize).collect();
            let logits_len = if input.chance(1, 16) {
                input.pick(&[
                    0,
                    k * vocab as usize + 1,
                    (k * vocab as usize).saturating_sub(1),
                ])
            } else {
                k * vocab as usize
            };
            Entry::Mlm {
                positions,
                logits_len,
            }
        }
    };
    let mut call = Call {
        ids,
        types,
        positions,
        entry,
        arena_offset: input.below(REGION_ALIGN as u64) as usize,
        arena_len: 0,
    };
    let needed = call.arena_needed(model).unwrap_or(1 << 20);
    call.arena_len = match input.byte() % 8 {
        0..=3 => needed,
        4 => needed - 1 - input.below(needed as u64) as usize,
        5 => needed + input.below(64) as usize,
        6 => input.below(2 * REGION_ALIGN as u64) as usize,
        // Without the slack for an unaligned start (enough only from some starts).
        _ => needed - 1 - input.below(REGION_ALIGN as u64 - 1) as usize,
    };
    // By turns (the input's hash decides): prepared or stored weights for the AVX2 GEMM, and one
    // input in four runs the scalar reference twice.
    let hash = microbert_fuzz::header::fnv1a64(data);
    let host = if hash.is_multiple_of(2) {
        Host::Prepared(fixture::prepared())
    } else {
        Host::Plain(HostKernels::detect())
    };
    let _outcome = check::call(model, &[host], (hash >> 1).is_multiple_of(4), &call);
});
