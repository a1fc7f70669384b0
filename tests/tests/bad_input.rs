//! Bad input never panics: malformed blobs (every truncation, every section boundary,
//! random corruptions with and without a re-sealed checksum, empty and random files) give a
//! `BlobError`; bad token ids, over-long sequences and small arenas give their own
//! `RunError`. A corrupted blob that still validates must run inference without panicking
//! (tests run with overflow checks on, so an arithmetic overflow would fail them).
//!
//! Both blob formats are covered: the format-2 fixture (tagged sections) and the frozen
//! format-1 one. In format 2 a truncation re-sealed exactly at the end of a section after
//! which no mandatory section follows (the MLM head, the provenance, the numerics: see
//! `SectionKind::mandatory`) is a valid blob without them: those cuts must parse and run;
//! every other re-sealed truncation must fail with the error its position implies.

mod common;

use common::blob_bytes;
use microbert::blob::format::{
    Config, EmbeddingsSection, HEADER_LEN, HeadSection, Header, LayerSection, SECTION_HEADER_LEN,
    TokenizerSection,
};
use microbert::{BlobError, Encoder, RunError, Scalar, scratch_bytes};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

fn read_fixture(name: &str) -> Vec<u8> {
    let path = format!(
        "{}/../models/fixtures/tiny/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e} (cargo xtask gen-fixture)"))
}

/// The format-2 fixture.
fn fixture() -> Vec<u8> {
    read_fixture("model.blob")
}

/// The frozen format-1 fixture.
fn fixture_v1() -> Vec<u8> {
    read_fixture("model-v1.blob")
}

/// The format version in a blob's header (the current one when the header is cut).
fn version(bytes: &[u8]) -> u32 {
    bytes
        .get(8..12)
        .map_or(microbert::blob::FORMAT_VERSION, |v| {
            u32::from_le_bytes([v[0], v[1], v[2], v[3]])
        })
}

/// Replaces the header so length and checksum match the (modified) body, keeping the
/// format version.
fn reseal(bytes: &[u8]) -> Vec<u8> {
    let body = bytes.get(HEADER_LEN..).unwrap_or_default();
    let mut out = Header::seal_version(version(bytes), body).to_vec();
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

/// Where a blob's parts begin and end.
struct Boundaries {
    /// Every boundary: the header's end, and for each section (format 2: also the end of
    /// its section header) where it ends.
    all: Vec<usize>,
    /// Format 2: `(header start, payload start, end)` of each section.
    sections: Vec<(usize, usize, usize)>,
    /// Format 2: section ends after which no mandatory section follows (a re-sealed cut
    /// there is a valid blob); the blob's own length included.
    valid_cuts: Vec<usize>,
}

fn boundaries(bytes: &[u8]) -> Boundaries {
    if version(bytes) == 1 {
        return Boundaries {
            all: v1_section_ends(bytes),
            sections: Vec::new(),
            valid_cuts: vec![bytes.len()],
        };
    }
    let sections: Vec<_> = microbert::blob::sections(bytes)
        .map(|s| s.expect("fixture sections"))
        .collect();
    let mut all = vec![HEADER_LEN];
    let mut spans = Vec::new();
    let mut valid_cuts = Vec::new();
    for (i, s) in sections.iter().enumerate() {
        all.extend([s.offset + SECTION_HEADER_LEN, s.end()]);
        spans.push((s.offset, s.offset + SECTION_HEADER_LEN, s.end()));
        if sections[i + 1..]
            .iter()
            .all(|later| later.kind().is_none_or(|k| !k.mandatory()))
        {
            valid_cuts.push(s.end());
        }
    }
    assert_eq!(all.last(), Some(&bytes.len()));
    Boundaries {
        all,
        sections: spans,
        valid_cuts,
    }
}

/// Byte offsets where each value of a format-1 blob ends.
fn v1_section_ends(bytes: &[u8]) -> Vec<usize> {
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

/// Checks a re-sealed truncation of a format-2 blob at `len`: valid (and runs) exactly at
/// the cuts [`Boundaries::valid_cuts`] names, else the error the cut's position implies.
fn check_resealed_v2_cut(b: &Boundaries, sealed: &[u8], len: usize) {
    if b.valid_cuts.contains(&len) {
        parse_and_maybe_run(sealed)
            .unwrap_or_else(|e| panic!("cut after optional sections at {len}: {e}"));
        return;
    }
    let Err(err) = microbert::parse(sealed) else {
        panic!("a re-sealed truncation at {len} parsed");
    };
    // The section the cut falls in (the one starting at `len` when it is a boundary).
    let inside = b
        .sections
        .iter()
        .find(|&&(start, _, end)| start < len && len < end);
    let ok = match inside {
        Some(&(_, payload, _)) if len < payload => {
            matches!(err, BlobError::SectionHeaderTruncated { .. })
        }
        Some(_) => matches!(err, BlobError::SectionOutOfBounds { .. }),
        // At a section boundary that drops required sections.
        None => matches!(
            err,
            BlobError::MissingSection { .. } | BlobError::SectionCount { .. }
        ),
    };
    assert!(ok, "re-sealed truncation at {len}: unexpected error {err}");
}

#[test]
fn fixture_is_valid_and_small() {
    let bytes = fixture();
    assert!(bytes.len() < 1 << 20, "fixture is {} bytes", bytes.len());
    parse_and_maybe_run(&bytes).expect("fixture parses and runs");
}

#[test]
fn format_1_fixture_is_valid() {
    let bytes = fixture_v1();
    assert_eq!(version(&bytes), 1);
    parse_and_maybe_run(&bytes).expect("format-1 fixture parses and runs");
}

#[test]
fn every_truncation_of_the_fixture_is_an_error() {
    let bytes = fixture();
    let b = boundaries(&bytes);
    assert_eq!(
        b.valid_cuts.len(),
        3,
        "after the layers, the MLM head, the provenance"
    );
    for len in 0..bytes.len() {
        let cut = &bytes[..len];
        assert!(microbert::parse(cut).is_err(), "truncation at {len} parsed");
        // Re-sealed, the truncation gets past the header checks into the sections.
        if len >= HEADER_LEN {
            check_resealed_v2_cut(&b, &reseal(cut), len);
        }
    }
}

#[test]
fn every_truncation_of_the_format_1_fixture_is_an_error() {
    let bytes = fixture_v1();
    for len in 0..bytes.len() {
        let cut = &bytes[..len];
        assert!(microbert::parse(cut).is_err(), "truncation at {len} parsed");
        if len >= HEADER_LEN {
            let err = microbert::parse(&reseal(cut)).expect_err("re-sealed truncation parsed");
            assert!(
                matches!(err, BlobError::Decode { .. }),
                "re-sealed format-1 truncation at {len}: {err}"
            );
        }
    }
}

#[test]
fn real_blob_section_boundaries_and_random_truncations_are_errors() {
    let bytes = blob_bytes("minilm");
    let b = boundaries(&bytes);
    let ends = &b.all;
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
            if version(&bytes) == 1 {
                let err = microbert::parse(&sealed).expect_err("re-sealed truncation parsed");
                assert!(
                    !matches!(err, BlobError::ChecksumMismatch { .. }),
                    "re-sealed truncation at {len} failed only the checksum"
                );
            } else {
                check_resealed_v2_cut(&b, &sealed, len);
            }
            resealed_checked += 1;
        }
    }
    let exception = if version(&bytes) == 1 {
        ""
    } else {
        ", except re-sealed cuts after which no mandatory section would follow: valid models, which ran"
    };
    println!(
        "{} truncation points of the {}-byte MiniLM blob (format {}, {} section boundaries +-1 re-sealed): all errors{exception}",
        points.len(),
        bytes.len(),
        version(&bytes),
        resealed_checked
    );
}

#[test]
fn random_corruptions_are_errors_or_valid_models() {
    corrupt(&fixture(), 10_000, 2024);
}

#[test]
fn random_corruptions_of_the_format_1_fixture_are_errors_or_valid_models() {
    corrupt(&fixture_v1(), 10_000, 1999);
}

/// `count` corruptions of 1 to 4 random bytes each; every other one re-sealed.
fn corrupt(bytes: &[u8], count: usize, seed: u64) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let (mut errors, mut still_valid) = (0, 0);
    for i in 0..count {
        let mut b = bytes.to_vec();
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
        "format {}: {count} corruptions: {errors} errors, {still_valid} re-sealed blobs still valid (and ran)",
        version(bytes)
    );
    assert!(errors > count / 2);
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
