//! Bad input never panics: malformed blobs (every truncation, every section boundary,
//! random corruptions with and without a re-sealed checksum, empty and random files) give a
//! `BlobError`; bad token ids, over-long sequences and small arenas give their own
//! `RunError`. A corrupted blob that still validates must run inference without panicking
//! (tests run with overflow checks on, so an arithmetic overflow would fail them).

mod common;

use common::blob_bytes;
use microbert::blob::format::{
    Config, EmbeddingsSection, HEADER_LEN, HeadSection, Header, LayerSection, TokenizerSection,
};
use microbert::{BlobError, Encoder, RunError, Scalar, scratch_bytes};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

fn fixture() -> Vec<u8> {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../models/fixtures/tiny/model.blob"
    );
    std::fs::read(path).expect("fixture blob (cargo xtask gen-fixture)")
}

/// Replaces the header so length and checksum match the (modified) body.
fn reseal(bytes: &[u8]) -> Vec<u8> {
    let body = bytes.get(HEADER_LEN..).unwrap_or_default();
    let mut out = Header::seal(body).to_vec();
    out.extend_from_slice(body);
    out
}

/// Parses; when the blob validates, also runs a short inference on it.
fn parse_and_maybe_run(bytes: &[u8]) -> Result<(), BlobError> {
    let model = microbert::parse(bytes)?;
    let n = model.max_tokens().min(9);
    let ids: Vec<u32> = (0..n as u32).map(|i| i % model.config.vocab_size).collect();
    let mut arena = vec![0u8; scratch_bytes(&model, n)];
    let mut pooled = vec![0i32; model.config.hidden_size as usize];
    Encoder::new(&model, Scalar)
        .embed(&ids, &mut arena, &mut pooled)
        .expect("a validated model runs");
    Ok(())
}

/// Byte offsets where each section of a blob ends.
fn section_ends(bytes: &[u8]) -> Vec<usize> {
    let mut ends = vec![HEADER_LEN];
    let body = &bytes[HEADER_LEN..];
    let (config, rest) = postcard::take_from_bytes::<Config>(body).expect("config");
    ends.push(bytes.len() - rest.len());
    let (_, rest) = postcard::take_from_bytes::<TokenizerSection<'_>>(rest).expect("tokenizer");
    ends.push(bytes.len() - rest.len());
    let (_, mut rest) =
        postcard::take_from_bytes::<EmbeddingsSection<'_>>(rest).expect("embeddings");
    ends.push(bytes.len() - rest.len());
    for _ in 0..config.num_hidden_layers {
        let (_, r) = postcard::take_from_bytes::<LayerSection<'_>>(rest).expect("layer");
        rest = r;
        ends.push(bytes.len() - rest.len());
    }
    let (_, rest) = postcard::take_from_bytes::<HeadSection<'_>>(rest).expect("head");
    assert!(rest.is_empty());
    ends.push(bytes.len());
    ends
}

#[test]
fn fixture_is_valid_and_small() {
    let bytes = fixture();
    assert!(bytes.len() < 1 << 20, "fixture is {} bytes", bytes.len());
    parse_and_maybe_run(&bytes).expect("fixture parses and runs");
}

#[test]
fn every_truncation_of_the_fixture_is_an_error() {
    let bytes = fixture();
    for len in 0..bytes.len() {
        let cut = &bytes[..len];
        assert!(microbert::parse(cut).is_err(), "truncation at {len} parsed");
        // Re-sealed, the truncation gets past the header checks into the sections.
        if len >= HEADER_LEN {
            let sealed = reseal(cut);
            assert!(
                microbert::parse(&sealed).is_err(),
                "re-sealed truncation at {len} parsed"
            );
        }
    }
}

#[test]
fn real_blob_section_boundaries_and_random_truncations_are_errors() {
    let bytes = blob_bytes("minilm");
    let ends = section_ends(&bytes);
    let mut points: Vec<usize> = ends
        .iter()
        .flat_map(|&e| [e.saturating_sub(1), e, e + 1])
        .filter(|&p| p < bytes.len())
        .collect();
    let mut rng = ChaCha8Rng::seed_from_u64(99);
    points.extend((0..1000).map(|_| rng.random_range(0..bytes.len())));
    let mut resealed_checked = 0;
    for &len in &points {
        let cut = &bytes[..len];
        let err = microbert::parse(cut).expect_err("truncated real blob parsed");
        if len >= HEADER_LEN {
            assert!(
                matches!(err, BlobError::LengthMismatch { .. }),
                "truncation at {len}: {err}"
            );
        }
        // Section boundaries, re-sealed: validation past the checksum must catch them.
        if len >= HEADER_LEN && ends.iter().any(|&e| e.abs_diff(len) <= 1) {
            let sealed = reseal(cut);
            let err = microbert::parse(&sealed).expect_err("re-sealed truncation parsed");
            assert!(
                !matches!(err, BlobError::ChecksumMismatch { .. }),
                "re-sealed truncation at {len} failed only the checksum"
            );
            resealed_checked += 1;
        }
    }
    println!(
        "{} truncation points of the {}-byte MiniLM blob ({} section boundaries +-1 re-sealed): all errors",
        points.len(),
        bytes.len(),
        resealed_checked
    );
}

#[test]
fn random_corruptions_are_errors_or_valid_models() {
    let bytes = fixture();
    let mut rng = ChaCha8Rng::seed_from_u64(2024);
    let (mut errors, mut still_valid) = (0, 0);
    for i in 0..10_000 {
        let mut b = bytes.clone();
        // 1 to 4 bytes changed, anywhere (header included).
        for _ in 0..rng.random_range(1..=4) {
            let at = rng.random_range(0..b.len());
            b[at] = rng.random();
        }
        if i % 2 == 1 {
            b = reseal(&b);
            match parse_and_maybe_run(&b) {
                Ok(()) => still_valid += 1,
                Err(_) => errors += 1,
            }
        } else if b != bytes {
            assert!(microbert::parse(&b).is_err(), "corruption {i} parsed");
            errors += 1;
        }
    }
    println!(
        "10000 corruptions: {errors} errors, {still_valid} re-sealed blobs still valid (and ran)"
    );
    assert!(errors > 5_000);
}

#[test]
fn empty_and_random_files_are_errors() {
    assert_eq!(
        microbert::parse(&[]).unwrap_err(),
        BlobError::TooShort {
            len: 0,
            needed: HEADER_LEN
        }
    );
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    for len in [1usize, 27, 28, 29, 100, 4096, 1 << 16] {
        let b: Vec<u8> = (0..len).map(|_| rng.random()).collect();
        assert!(microbert::parse(&b).is_err());
        // Random bytes behind a valid header reach the section decoders.
        if len > HEADER_LEN {
            let sealed = reseal(&b);
            let mut with_magic = sealed.clone();
            with_magic[..8].copy_from_slice(&microbert::blob::MAGIC);
            let err = microbert::parse(&reseal(&with_magic)).unwrap_err();
            assert!(!matches!(err, BlobError::ChecksumMismatch { .. }), "{err}");
        }
    }
}

#[test]
fn bad_tokens_lengths_and_arenas_have_their_own_errors() {
    let bytes = fixture();
    let model = microbert::parse(&bytes).expect("fixture parses");
    let encoder = Encoder::new(&model, Scalar);
    let d = model.config.hidden_size as usize;
    let vocab = model.config.vocab_size;
    let mut pooled = vec![0i32; d];
    let mut arena = vec![0u8; scratch_bytes(&model, model.max_tokens() + 1)];

    let err = encoder
        .embed(&[1, vocab, 2], &mut arena, &mut pooled)
        .unwrap_err();
    assert_eq!(
        err,
        RunError::TokenOutOfVocab {
            position: 1,
            id: vocab,
            vocab_size: vocab
        }
    );

    let long = vec![1u32; model.max_tokens() + 1];
    let err = encoder.embed(&long, &mut arena, &mut pooled).unwrap_err();
    assert!(matches!(err, RunError::TooManyTokens { .. }), "{err}");

    let err = encoder.embed(&[], &mut arena, &mut pooled).unwrap_err();
    assert_eq!(err, RunError::EmptyInput);

    // Exactly scratch_bytes works; one byte fewer fails and says how much is needed.
    let ids = [1u32, 5, 7, 2];
    let need = scratch_bytes(&model, ids.len());
    let bytes_view = &mut arena;
    encoder
        .embed(&ids, &mut bytes_view[..need], &mut pooled)
        .expect("exactly scratch_bytes is enough");
    let err = encoder
        .embed(&ids, &mut bytes_view[..need - 1], &mut pooled)
        .unwrap_err();
    assert_eq!(
        err,
        RunError::ScratchTooSmall {
            given: need - 1,
            needed: need
        }
    );

    let mut short = vec![0i32; d - 1];
    let err = encoder.embed(&ids, bytes_view, &mut short).unwrap_err();
    assert!(matches!(err, RunError::OutputSize { .. }), "{err}");
}
