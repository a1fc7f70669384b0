//! Byte-identity of the integer pipeline across refactors: the pooled Q.16 vectors and MLM
//! logits of MiniLM, bert-tiny and the tiny fixture, hashed (`microbert::output::hash`),
//! must equal the hashes committed in `tests/golden/outputs.txt`, which were computed by an
//! earlier build. A change that is meant to alter the numerics (a new quantisation recipe)
//! regenerates the file with `MICROBERT_BLESS=1` and says so in its commit; every other
//! change must leave it alone.
//!
//! Both host backends are checked (the scalar reference and the detected SIMD one), on
//! short texts, texts cut at 128 and 256 tokens, and one long document read with
//! hierarchical positions (past the 512 trained positions).

mod common;

use common::blob_bytes;
use core::fmt::Write as _;
use microbert::blob::PositionMode;
use microbert::{Encoder, Kernels, Tokenizer};
use microbert_host::HostKernels;
use microbert_tests::corpus;
use std::path::PathBuf;

fn golden_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("golden/outputs.txt")
}

fn fixture() -> Vec<u8> {
    std::fs::read(
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../models/fixtures/tiny/model.blob"),
    )
    .expect("fixture blob")
}

/// The texts: fixed sentences, seeded Wikipedia leads and movie reviews.
fn texts() -> Vec<String> {
    let mut t: Vec<String> = [
        "",
        "Hello world.",
        "thanks!",
        "The quick brown fox jumps over the lazy dog.",
        "Ça coûte 12,50 € — naïve café déjà vu? 東京は日本の首都です。",
        "[CLS] [MASK] literal special tokens [SEP] in the text",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    t.extend(corpus::wiki_split().test.into_iter().take(12));
    t.extend(corpus::movie_reviews().into_iter().step_by(997).take(12));
    t
}

fn pooled<K: Kernels + Copy>(enc: Encoder<'_, '_, K>, mode: PositionMode, ids: &[u32]) -> u64 {
    let model = enc.model();
    let mut arena = vec![0u8; microbert::scratch_bytes(model, ids.len())];
    let mut out = vec![0i32; model.config.hidden_size as usize];
    enc.with_positions(mode)
        .embed(ids, &mut arena, &mut out)
        .expect("embeds");
    microbert::output::hash(&out)
}

fn mlm<K: Kernels + Copy>(enc: Encoder<'_, '_, K>, ids: &[u32], positions: &[usize]) -> u64 {
    let model = enc.model();
    let vocab = model.config.vocab_size as usize;
    let mut arena = vec![0u8; microbert::model::scratch::mlm_scratch_bytes(model, ids.len())];
    let mut logits = vec![0i32; positions.len() * vocab];
    enc.mlm_logits(ids, positions, &mut arena, &mut logits)
        .expect("mlm logits");
    microbert::output::hash(&logits)
}

/// The backends checked.
#[derive(Clone, Copy, Debug)]
enum Backend {
    Scalar,
    /// The detected host SIMD backend, weights packed per call.
    Host,
    /// The same with the model's weights packed once (`pack_model`).
    HostPacked,
}

/// One line per output: `model kind index tokens hash`, computed with `backend`.
fn outputs(backend: Backend) -> String {
    let mut out = String::new();
    let models = [
        ("minilm", blob_bytes("minilm")),
        ("bert-tiny", blob_bytes("bert-tiny")),
        ("fixture", fixture()),
    ];
    let texts = texts();
    let long = corpus::sotu()
        .into_iter()
        .max_by_key(|(_, t)| t.len())
        .map(|(_, t)| t)
        .expect("SOTU addresses");
    for (name, bytes) in &models {
        let model = microbert::parse(bytes).expect("blob parses");
        match backend {
            Backend::Scalar => {
                let enc = Encoder::new(&model, microbert::Scalar);
                model_outputs(name, enc, &texts, &long, &mut out);
            }
            Backend::Host => {
                let enc = Encoder::new(&model, HostKernels::detect());
                model_outputs(name, enc, &texts, &long, &mut out);
            }
            Backend::HostPacked => {
                let prepared = HostKernels::detect().prepare_model(&model);
                let enc = prepared.encoder(&model).expect("prepared for this model");
                model_outputs(name, enc, &texts, &long, &mut out);
            }
        }
    }
    out
}

fn model_outputs<K: Kernels + Copy>(
    name: &str,
    enc: Encoder<'_, '_, K>,
    texts: &[String],
    long: &str,
    out: &mut String,
) {
    {
        let model = enc.model();
        let tok = Tokenizer::new(model);
        let limit = model.max_tokens();
        for (cut, mode) in [
            (128usize, PositionMode::Absolute),
            (256, PositionMode::Absolute),
        ] {
            let cut = cut.min(model.config.max_position_embeddings as usize);
            for (i, text) in texts.iter().enumerate() {
                let mut ids = vec![0u32; cut];
                let e = tok.encode(text, &mut ids).expect("tokenizes");
                let h = pooled(enc, mode, &ids[..e.len]);
                writeln!(out, "{name} embed{cut} {i} {} {h:016x}", e.len).ok();
            }
        }
        // A long document with hierarchical positions.
        let cut = 1100.min(limit);
        let mut ids = vec![0u32; cut];
        let e = tok.encode(long, &mut ids).expect("tokenizes");
        let h = pooled(enc, PositionMode::Hierarchical, &ids[..e.len]);
        writeln!(out, "{name} long 0 {} {h:016x}", e.len).ok();
        if model.head.mlm.is_some() {
            for (i, text) in texts.iter().enumerate().skip(1).take(12) {
                let mut ids = vec![0u32; 64.min(limit)];
                let e = tok.encode(text, &mut ids).expect("tokenizes");
                let n = e.len;
                let positions: Vec<usize> = (0..n).step_by(3).collect();
                let h = mlm(enc, &ids[..n], &positions);
                writeln!(out, "{name} mlm {i} {n} {h:016x}").ok();
            }
        }
    }
}

#[test]
fn outputs_equal_the_committed_hashes() {
    let scalar = outputs(Backend::Scalar);
    let path = golden_path();
    if std::env::var_os("MICROBERT_BLESS").is_some_and(|v| v == "1") {
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        std::fs::write(&path, &scalar).expect("writing the golden file");
        eprintln!("golden: wrote {}", path.display());
    }
    let want = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (MICROBERT_BLESS=1 writes it)", path.display()));
    let lines = want.lines().count();
    assert!(lines > 100, "golden file has only {lines} lines");
    for (i, (g, w)) in scalar.lines().zip(want.lines()).enumerate() {
        assert_eq!(
            g,
            w,
            "scalar output differs from the golden file at line {}",
            i + 1
        );
    }
    assert_eq!(scalar.lines().count(), lines, "number of outputs changed");
    let name = HostKernels::detect().name();
    for backend in [Backend::Host, Backend::HostPacked] {
        assert_eq!(
            outputs(backend),
            scalar,
            "{name} ({backend:?}) outputs differ from scalar"
        );
    }
    println!("golden: {lines} outputs identical (scalar, {name}, {name} with packed weights)");
}
