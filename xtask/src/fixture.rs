//! `cargo xtask gen-fixture [--check]`: the tiny committed test model.
//!
//! A random `BertForMaskedLM` checkpoint (hidden 32, 2 layers, 2 heads, FFN 64, 64 positions,
//! a hand-written vocabulary of real tokens) is built in memory as the files a Hugging Face
//! checkpoint directory holds, then converted by the same code as `cargo xtask convert`.
//! Everything is written to `models/fixtures/tiny/`: the blob, plus the checkpoint files
//! (a few hundred kB) so that independent f32 and tokenizer oracles (candle, `tokenizers`)
//! can run on exactly the weights the blob was made from.
//!
//! Determinism: a fixed seed, a self-contained generator (SplitMix64), normal samples from the
//! sum of twelve uniforms (no `ln`/`cos`, whose last bit may differ between libms), and
//! sorted maps only. `--check` regenerates everything and compares byte for byte.
//!
//! `model-v1.blob` is the same checkpoint in blob format 1, written by the format-1
//! converter (commit 9275fdb) and kept unchanged as the legacy-reader fixture: it cannot be
//! regenerated (xtask writes only the current format), so both modes check its SHA-256
//! against [`V1_BLOB_SHA256`]; the runtime's blob tests check that it parses and computes
//! exactly what `model.blob` computes.

use crate::checkpoint::{Checkpoint, Files};
use crate::convert::{Options, Source, convert};
use anyhow::{Context, Result, bail};
use core::fmt::Write as _;
use std::collections::BTreeMap;
use std::path::Path;

/// Directory of the fixture, relative to the workspace root.
pub const FIXTURE_DIR: &str = "models/fixtures/tiny";

/// The frozen format-1 blob of the fixture, in [`FIXTURE_DIR`].
pub const V1_BLOB: &str = "model-v1.blob";
/// Its SHA-256.
pub const V1_BLOB_SHA256: &str = "13305319f983e57a94617fa60640f9eb7bc127001e15b556e9c61fec466d5bf6";

const SEED: u64 = 0x6d69_6372_6f62_6572; // "microber"
const HIDDEN: usize = 32;
const LAYERS: usize = 2;
const HEADS: usize = 2;
const FFN: usize = 64;
const POSITIONS: usize = 64;
const TYPES: usize = 2;
const STD: f32 = 0.02;

/// The vocabulary: BERT's special tokens first, then real lower-case words, punctuation,
/// digits, single letters (so WordPiece can always fall back), `##` pieces and a few CJK
/// ideographs (one token each after CJK splitting).
const WORDS: &str = "[PAD] [UNK] [CLS] [SEP] [MASK]
. , ! ? ' \" - ( ) : ; / & %
0 1 2 3 4 5 6 7 8 9
a b c d e f g h i j k l m n o p q r s t u v w x y z
##a ##b ##c ##d ##e ##f ##g ##h ##i ##k ##l ##m ##n ##o ##p ##r ##s ##t ##u ##y
##s ##ed ##ing ##ly ##er ##est ##es ##ion ##al ##able ##ness ##ful ##less ##ment
the of and to in is was for on that with as by it at from his her he she they we you i
this be are an or had not but have were which one all their there been has its who more
when will would can no if so out up about into than them some what time only new also
other two year years first people after over most many may like such between during
state world house model text word sentence long short good bad great small large city
river music film book water night day work school language paris london china
run read walk play make see say go come think know give find tell ask
café naive resume über
的 是 我 你 中 国 人 大 学 文";

/// A seeded SplitMix64 generator.
struct Rng(u64);

impl Rng {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1) with 53 random bits.
    fn uniform(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Approximately standard normal (Irwin-Hall, 12 uniforms): exact IEEE arithmetic only.
    fn normal(&mut self) -> f64 {
        (0..12).map(|_| self.uniform()).sum::<f64>() - 6.0
    }

    fn normals(&mut self, n: usize, mean: f32, std: f32) -> Vec<f32> {
        (0..n).map(|_| mean + std * self.normal() as f32).collect()
    }
}

/// The vocabulary, one token per entry, ids in order.
pub fn vocab() -> Vec<String> {
    let mut seen = std::collections::BTreeSet::new();
    WORDS
        .split_whitespace()
        .filter(|w| seen.insert(*w))
        .map(str::to_owned)
        .collect()
}

/// The checkpoint files, in memory.
pub fn checkpoint_files() -> Result<BTreeMap<String, Vec<u8>>> {
    let vocab = vocab();
    let n = vocab.len();
    let mut rng = Rng(SEED);
    let mut tensors: BTreeMap<String, (Vec<usize>, Vec<f32>)> = BTreeMap::new();
    let mut put = |name: String, shape: Vec<usize>, data: Vec<f32>| {
        tensors.insert(name, (shape, data));
    };
    // BERT initialisation: weights N(0, 0.02), padding row zero. Biases and LayerNorm
    // parameters are perturbed too (trained models have them), so every path is exercised.
    let mut word = rng.normals(n * HIDDEN, 0.0, STD);
    word[..HIDDEN].iter_mut().for_each(|x| *x = 0.0);
    put(
        "bert.embeddings.word_embeddings.weight".into(),
        vec![n, HIDDEN],
        word,
    );
    let v = rng.normals(POSITIONS * HIDDEN, 0.0, STD);
    put(
        "bert.embeddings.position_embeddings.weight".into(),
        vec![POSITIONS, HIDDEN],
        v,
    );
    let v = rng.normals(TYPES * HIDDEN, 0.0, STD);
    put(
        "bert.embeddings.token_type_embeddings.weight".into(),
        vec![TYPES, HIDDEN],
        v,
    );
    let layer_norm =
        |rng: &mut Rng, put: &mut dyn FnMut(String, Vec<usize>, Vec<f32>), base: &str| {
            put(
                format!("{base}.weight"),
                vec![HIDDEN],
                rng.normals(HIDDEN, 1.0, 0.1),
            );
            put(
                format!("{base}.bias"),
                vec![HIDDEN],
                rng.normals(HIDDEN, 0.0, STD),
            );
        };
    let dense = |rng: &mut Rng,
                 put: &mut dyn FnMut(String, Vec<usize>, Vec<f32>),
                 base: &str,
                 out: usize,
                 input: usize| {
        put(
            format!("{base}.weight"),
            vec![out, input],
            rng.normals(out * input, 0.0, STD),
        );
        put(
            format!("{base}.bias"),
            vec![out],
            rng.normals(out, 0.0, STD),
        );
    };
    layer_norm(&mut rng, &mut put, "bert.embeddings.LayerNorm");
    for i in 0..LAYERS {
        let l = format!("bert.encoder.layer.{i}");
        for m in [
            "attention.self.query",
            "attention.self.key",
            "attention.self.value",
            "attention.output.dense",
        ] {
            dense(&mut rng, &mut put, &format!("{l}.{m}"), HIDDEN, HIDDEN);
        }
        layer_norm(
            &mut rng,
            &mut put,
            &format!("{l}.attention.output.LayerNorm"),
        );
        dense(
            &mut rng,
            &mut put,
            &format!("{l}.intermediate.dense"),
            FFN,
            HIDDEN,
        );
        dense(
            &mut rng,
            &mut put,
            &format!("{l}.output.dense"),
            HIDDEN,
            FFN,
        );
        layer_norm(&mut rng, &mut put, &format!("{l}.output.LayerNorm"));
    }
    dense(
        &mut rng,
        &mut put,
        "cls.predictions.transform.dense",
        HIDDEN,
        HIDDEN,
    );
    layer_norm(&mut rng, &mut put, "cls.predictions.transform.LayerNorm");
    put(
        "cls.predictions.bias".into(),
        vec![n],
        rng.normals(n, 0.0, STD),
    );

    let bytes: BTreeMap<String, (Vec<usize>, Vec<u8>)> = tensors
        .into_iter()
        .map(|(k, (shape, data))| {
            (
                k,
                (shape, data.iter().flat_map(|x| x.to_le_bytes()).collect()),
            )
        })
        .collect();
    let views = bytes
        .iter()
        .map(|(k, (shape, data))| {
            Ok((
                k.clone(),
                safetensors::tensor::TensorView::new(safetensors::Dtype::F32, shape.clone(), data)?,
            ))
        })
        .collect::<Result<Vec<_>>>()?;
    let safetensors = safetensors::serialize(views, None)?;

    let config = serde_json::json!({
        "architectures": ["BertForMaskedLM"],
        "attention_probs_dropout_prob": 0.1,
        "hidden_act": "gelu",
        "hidden_dropout_prob": 0.1,
        "hidden_size": HIDDEN,
        "initializer_range": STD,
        "intermediate_size": FFN,
        "layer_norm_eps": 1e-12,
        "max_position_embeddings": POSITIONS,
        "model_type": "bert",
        "num_attention_heads": HEADS,
        "num_hidden_layers": LAYERS,
        "pad_token_id": 0,
        "position_embedding_type": "absolute",
        "type_vocab_size": TYPES,
        "vocab_size": n,
    });
    let mut files = BTreeMap::new();
    files.insert(
        "config.json".to_owned(),
        (serde_json::to_string_pretty(&config)? + "\n").into_bytes(),
    );
    files.insert("model.safetensors".to_owned(), safetensors);
    files.insert(
        "vocab.txt".to_owned(),
        (vocab.join("\n") + "\n").into_bytes(),
    );
    files.insert(
        "tokenizer.json".to_owned(),
        tokenizer_json(&vocab)?.into_bytes(),
    );
    Ok(files)
}

/// A Hugging Face `tokenizer.json` equivalent to `BertTokenizer(vocab.txt)` (uncased).
fn tokenizer_json(vocab: &[String]) -> Result<String> {
    let id = |t: &str| vocab.iter().position(|v| v == t).unwrap_or(0);
    let s = |x: &str| serde_json::to_string(x);
    let mut added = Vec::new();
    for t in ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] {
        added.push(format!(
            "{{\"id\":{},\"content\":{},\"single_word\":false,\"lstrip\":false,\"rstrip\":false,\"normalized\":false,\"special\":true}}",
            id(t),
            s(t)?
        ));
    }
    let mut v = String::new();
    for (i, t) in vocab.iter().enumerate() {
        let sep = if i == 0 { "" } else { "," };
        write!(v, "{sep}\n      {}:{i}", s(t)?)?;
    }
    let (cls, sep) = (id("[CLS]"), id("[SEP]"));
    Ok(format!(
        r###"{{
  "version": "1.0",
  "truncation": null,
  "padding": null,
  "added_tokens": [{added}],
  "normalizer": {{"type": "BertNormalizer", "clean_text": true, "handle_chinese_chars": true, "strip_accents": null, "lowercase": true}},
  "pre_tokenizer": {{"type": "BertPreTokenizer"}},
  "post_processor": {{"type": "TemplateProcessing",
    "single": [{{"SpecialToken": {{"id": "[CLS]", "type_id": 0}}}}, {{"Sequence": {{"id": "A", "type_id": 0}}}}, {{"SpecialToken": {{"id": "[SEP]", "type_id": 0}}}}],
    "pair": [{{"SpecialToken": {{"id": "[CLS]", "type_id": 0}}}}, {{"Sequence": {{"id": "A", "type_id": 0}}}}, {{"SpecialToken": {{"id": "[SEP]", "type_id": 0}}}}, {{"Sequence": {{"id": "B", "type_id": 1}}}}, {{"SpecialToken": {{"id": "[SEP]", "type_id": 1}}}}],
    "special_tokens": {{"[CLS]": {{"id": "[CLS]", "ids": [{cls}], "tokens": ["[CLS]"]}}, "[SEP]": {{"id": "[SEP]", "ids": [{sep}], "tokens": ["[SEP]"]}}}}}},
  "decoder": {{"type": "WordPiece", "prefix": "##", "cleanup": true}},
  "model": {{"type": "WordPiece", "unk_token": "[UNK]", "continuing_subword_prefix": "##", "max_input_chars_per_word": 100,
    "vocab": {{{v}
    }}
  }}
}}
"###,
        added = added.join(",\n    ")
    ))
}

/// Every file of the fixture directory that `gen-fixture` writes: the checkpoint files and
/// `model.blob` (the current format; its provenance records no commit, so the fixture does
/// not change with every commit).
pub fn generate() -> Result<BTreeMap<String, Vec<u8>>> {
    let mut files = checkpoint_files()?;
    let ck = Checkpoint::load(&Files::Memory(files.clone()))?;
    let opts = Options {
        source: Some(Source::in_memory(
            "models/fixtures/tiny (generated by `cargo xtask gen-fixture`)",
            &ck,
        )),
        ..Options::default()
    };
    let converted = convert(&ck, &opts)?;
    if converted.blob.len() >= 1 << 20 {
        bail!(
            "the fixture blob is {} bytes; it must stay under 1 MiB",
            converted.blob.len()
        );
    }
    files.insert("model.blob".to_owned(), converted.blob);
    Ok(files)
}

/// `cargo xtask gen-fixture [--check]`.
pub fn run(root: &Path, check: bool) -> Result<()> {
    let files = generate()?;
    let dir = root.join(FIXTURE_DIR);
    let v1 = dir.join(V1_BLOB);
    let v1_hash = crate::cache::sha256_file(&v1)
        .with_context(|| format!("the frozen format-1 fixture {} is missing", v1.display()))?;
    if v1_hash != V1_BLOB_SHA256 {
        bail!(
            "{} has sha256 {v1_hash}, not the pinned {V1_BLOB_SHA256}: the frozen format-1 \
             fixture was changed; restore it from git (it cannot be regenerated)",
            v1.display()
        );
    }
    if check {
        let mut stale = Vec::new();
        for (name, bytes) in &files {
            let path = dir.join(name);
            if std::fs::read(&path).ok().as_ref() != Some(bytes) {
                stale.push(path.display().to_string());
            }
        }
        if !stale.is_empty() {
            bail!(
                "the committed fixture is stale or missing: {}; run `cargo xtask gen-fixture`",
                stale.join(", ")
            );
        }
        eprintln!("fixture up to date ({} files)", files.len());
    } else {
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        for (name, bytes) in &files {
            let path = dir.join(name);
            std::fs::write(&path, bytes).with_context(|| format!("writing {}", path.display()))?;
            eprintln!("wrote {} ({} bytes)", path.display(), bytes.len());
        }
    }
    println!("{}", dir.join("model.blob").display());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixture_converts_and_parses() {
        let files = generate().unwrap();
        let blob = &files["model.blob"];
        assert!(blob.len() < 1 << 20);
        let view = microbert::parse(blob).unwrap();
        assert_eq!(view.config.hidden_size, HIDDEN as u32);
        assert_eq!(view.config.num_hidden_layers, LAYERS as u32);
        assert_eq!(view.config.vocab_size as usize, vocab().len());
        assert_eq!(view.layers().count(), LAYERS);
        assert!(view.head.mlm.is_some());
        assert_eq!(view.tokenizer.map(|t| t.cls_id), Some(2));
        // The padding row is all zero: scale 1, all-zero int8 row.
        assert!(
            view.embeddings.word.weight.data[..HIDDEN]
                .iter()
                .all(|&b| b == 0)
        );
    }

    #[test]
    fn committed_fixture_is_current() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        run(&root, true).unwrap();
    }

    #[test]
    fn half_precision_checkpoints_convert() {
        // The same weights stored as f16 and bf16 still convert and validate.
        let files = checkpoint_files().unwrap();
        let ck = Checkpoint::load(&Files::Memory(files.clone())).unwrap();
        let st = ck.tensors().unwrap();
        for dtype in [safetensors::Dtype::F16, safetensors::Dtype::BF16] {
            let bytes: Vec<(String, Vec<usize>, Vec<u8>)> = st
                .tensors()
                .into_iter()
                .map(|(k, v)| {
                    let f = ck.f32(&k).unwrap();
                    let data = f
                        .data
                        .iter()
                        .flat_map(|&x| match dtype {
                            safetensors::Dtype::F16 => half::f16::from_f32(x).to_le_bytes(),
                            _ => half::bf16::from_f32(x).to_le_bytes(),
                        })
                        .collect();
                    (k, v.shape().to_vec(), data)
                })
                .collect();
            let views: Vec<_> = bytes
                .iter()
                .map(|(k, shape, data)| {
                    let view =
                        safetensors::tensor::TensorView::new(dtype, shape.clone(), data).unwrap();
                    (k.clone(), view)
                })
                .collect();
            let mut f = files.clone();
            f.insert(
                "model.safetensors".into(),
                safetensors::serialize(views, None).unwrap(),
            );
            let out = convert(
                &Checkpoint::load(&Files::Memory(f)).unwrap(),
                &Options::default(),
            )
            .unwrap();
            microbert::parse(&out.blob).unwrap();
        }
    }

    #[test]
    fn fixture_is_deterministic() {
        assert_eq!(generate().unwrap(), generate().unwrap());
    }

    #[test]
    fn tokenizer_json_vocabulary_gives_the_same_blob() {
        // Without vocab.txt the converter reads tokenizer.json's model.vocab instead: every
        // section is byte-identical except the provenance, which says where the vocabulary
        // came from.
        let mut files = checkpoint_files().unwrap();
        let with_txt = convert(
            &Checkpoint::load(&Files::Memory(files.clone())).unwrap(),
            &Options::default(),
        )
        .unwrap();
        files.remove("vocab.txt");
        let ck = Checkpoint::load(&Files::Memory(files)).unwrap();
        assert_eq!(ck.vocab_source, "tokenizer.json");
        let without = convert(&ck, &Options::default()).unwrap();
        let sections = |blob: &[u8]| -> Vec<(u16, Vec<u8>)> {
            microbert::blob::sections(blob)
                .map(|s| s.map(|s| (s.header.kind, s.payload.to_vec())).unwrap())
                .collect()
        };
        let (a, b) = (sections(&with_txt.blob), sections(&without.blob));
        let provenance = microbert::blob::SectionKind::Provenance.code();
        assert_eq!(a.len(), b.len());
        for (x, y) in a.iter().zip(&b) {
            assert_eq!(x.0, y.0);
            if x.0 != provenance {
                assert!(x.1 == y.1, "section kind {} differs", x.0);
            }
        }
        let settings = |blob: &[u8]| -> Vec<String> {
            let view = microbert::parse(blob).unwrap();
            let p = view.provenance.unwrap();
            p.settings().map(|(k, v)| format!("{k}={v}")).collect()
        };
        let (sa, sb) = (settings(&with_txt.blob), settings(&without.blob));
        let differ: Vec<_> = sa.iter().zip(&sb).filter(|(x, y)| x != y).collect();
        assert_eq!(
            differ,
            [(
                &"vocabulary=vocab.txt".to_owned(),
                &"vocabulary=tokenizer.json".to_owned()
            )]
        );
    }

    #[test]
    fn unsupported_architectures_are_named() {
        let cases = [
            (
                "\"model_type\": \"bert\"",
                "\"model_type\": \"roberta\"",
                "RoBERTa-style positions",
            ),
            (
                "\"model_type\": \"bert\"",
                "\"model_type\": \"distilbert\"",
                "model_type is `distilbert`",
            ),
            (
                "\"hidden_act\": \"gelu\"",
                "\"hidden_act\": \"gelu_new\"",
                "hidden_act is `gelu_new`",
            ),
            (
                "\"position_embedding_type\": \"absolute\"",
                "\"position_embedding_type\": \"relative_key\"",
                "position_embedding_type `relative_key`",
            ),
            (
                "\"intermediate_size\": 64",
                "\"intermediate_size\": 65",
                "expected [65, 32]",
            ),
        ];
        for (from, to, message) in cases {
            let mut files = checkpoint_files().unwrap();
            let cfg = String::from_utf8(files["config.json"].clone()).unwrap();
            assert!(cfg.contains(from), "{cfg}");
            files.insert("config.json".into(), cfg.replace(from, to).into_bytes());
            let e = Checkpoint::load(&Files::Memory(files))
                .and_then(|ck| convert(&ck, &Options::default()).map(|_| ()))
                .unwrap_err();
            assert!(format!("{e:#}").contains(message), "{e:#} lacks {message}");
        }
    }

    #[test]
    fn unknown_and_missing_tensors_are_refused() {
        let files = checkpoint_files().unwrap();
        let ck = Checkpoint::load(&Files::Memory(files.clone())).unwrap();
        let st = ck.tensors().unwrap();
        let all = st.tensors();
        let kept: Vec<_> = all
            .iter()
            .filter(|(k, _)| k != "bert.encoder.layer.1.output.dense.bias")
            .cloned()
            .collect();
        let missing = safetensors::serialize(kept, None).unwrap();
        let mut f = files.clone();
        f.insert("model.safetensors".into(), missing);
        let e = convert(
            &Checkpoint::load(&Files::Memory(f)).unwrap(),
            &Options::default(),
        )
        .unwrap_err();
        assert!(
            e.to_string()
                .contains("missing tensor `bert.encoder.layer.1.output.dense.bias`"),
            "{e}"
        );

        let extra = st.tensor("cls.predictions.bias").unwrap();
        let mut kept = all;
        kept.push(("classifier.bias".into(), extra.clone()));
        kept.push(("bert.pooler.dense.bias".into(), extra));
        let mut f = files;
        f.insert(
            "model.safetensors".into(),
            safetensors::serialize(kept, None).unwrap(),
        );
        let e = convert(
            &Checkpoint::load(&Files::Memory(f)).unwrap(),
            &Options::default(),
        )
        .unwrap_err();
        let e = e.to_string();
        assert!(
            e.contains("classifier.") && e.contains("BertForMaskedLM") && !e.contains("pooler"),
            "{e}"
        );
    }
}
