//! Reading a Hugging Face BERT or XLM-R checkpoint: `config.json`, `model.safetensors`, the
//! vocabulary (`vocab.txt`, else `tokenizer.json`: WordPiece, or XLM-R's SentencePiece
//! Unigram with its scores and charsmap), the tokenizer settings and the
//! sentence-transformers pooling config.
//!
//! The files come from a [`Files`] source: a directory on disk, or an in-memory map (the
//! generated test fixture), so both go through exactly the same parsing and conversion.

use anyhow::{Context, Result, anyhow, bail, ensure};
use microbert::blob::format::Pooling;
use safetensors::{Dtype, SafeTensors};
use serde::Deserialize;
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::PathBuf;

/// Where the checkpoint's files come from.
pub enum Files {
    /// A checkpoint directory.
    Dir(PathBuf),
    /// File name (relative, `/`-separated) to contents.
    Memory(BTreeMap<String, Vec<u8>>),
}

impl Files {
    /// Reads `name`, or `None` when the checkpoint has no such file.
    pub fn read(&self, name: &str) -> Result<Option<Vec<u8>>> {
        match self {
            Self::Dir(dir) => {
                let path = dir.join(name);
                match std::fs::read(&path) {
                    Ok(bytes) => Ok(Some(bytes)),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                    Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
                }
            }
            Self::Memory(map) => Ok(map.get(name).cloned()),
        }
    }

    /// A description for messages.
    pub fn describe(&self) -> String {
        match self {
            Self::Dir(dir) => dir.display().to_string(),
            Self::Memory(_) => "<in-memory checkpoint>".to_owned(),
        }
    }
}

/// The fields of `config.json` the converter reads. Missing optional fields take the
/// Hugging Face `BertConfig` defaults.
#[derive(Debug, Clone, Deserialize)]
pub struct HfConfig {
    /// `"bert"` for every supported checkpoint.
    pub model_type: Option<String>,
    /// E.g. `["BertModel"]`, for messages.
    #[serde(default)]
    pub architectures: Vec<String>,
    /// Rows of the word table.
    pub vocab_size: usize,
    /// Hidden width.
    pub hidden_size: usize,
    /// Encoder layers.
    pub num_hidden_layers: usize,
    /// Attention heads.
    pub num_attention_heads: usize,
    /// FFN width.
    pub intermediate_size: usize,
    /// Trained positions.
    pub max_position_embeddings: usize,
    /// Token types.
    #[serde(default = "two")]
    pub type_vocab_size: usize,
    /// Activation of the FFN.
    #[serde(default = "gelu")]
    pub hidden_act: String,
    /// LayerNorm epsilon.
    #[serde(default = "eps")]
    pub layer_norm_eps: f64,
    /// Position embedding kind.
    #[serde(default)]
    pub position_embedding_type: Option<String>,
    /// Padding id (RoBERTa offsets its positions by it).
    #[serde(default)]
    pub pad_token_id: Option<i64>,
    /// Label names of a classification head, by id (`"0"`, `"1"`, ...).
    #[serde(default)]
    pub id2label: Option<BTreeMap<String, String>>,
    /// `single_label_classification`, `regression` or `multi_label_classification`.
    #[serde(default)]
    pub problem_type: Option<String>,
}

fn two() -> usize {
    2
}
fn gelu() -> String {
    "gelu".to_owned()
}
fn eps() -> f64 {
    1e-12
}

/// WordPiece tokenizer settings, as the blob's `TokenizerSection` needs them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenizerSettings {
    /// Lower-case the input.
    pub lowercase: bool,
    /// Strip accents.
    pub strip_accents: bool,
    /// Clean control characters and whitespace.
    pub clean_text: bool,
    /// Split around CJK ideographs.
    pub handle_chinese_chars: bool,
    /// Longer words become `[UNK]`.
    pub max_input_chars_per_word: u32,
    /// Word-continuation prefix.
    pub continuing_subword_prefix: String,
    /// Where the settings came from, for the report.
    pub source: &'static str,
    /// tokenizer.json's `post_processor` (the single and pair templates), if any.
    pub post_processor: Option<Value>,
}

/// A SentencePiece Unigram tokenizer read from `tokenizer.json` (XLM-R checkpoints), in
/// the one form the runtime's `UnigramTokenizer` runs: normaliser `Precompiled` then
/// `Replace(" {2,}", " ")`, pre-tokenizer `Metaspace("▁", prepend always, split)`, no byte
/// fallback.
#[derive(Debug, Clone)]
pub struct UnigramSettings {
    /// Scores by id (the pieces are [`Checkpoint::vocab`]).
    pub scores: Vec<f32>,
    /// The precompiled charsmap (decoded from base64).
    pub charsmap: Vec<u8>,
    /// `<unk>`, `<s>`, `</s>`, `<pad>`, `<mask>` ids.
    pub ids: [u32; 5],
}

/// A checkpoint read into memory.
pub struct Checkpoint {
    /// The parsed `config.json`.
    pub config: HfConfig,
    /// The raw `model.safetensors` bytes.
    pub safetensors: Vec<u8>,
    /// Token strings by id.
    pub vocab: Vec<String>,
    /// Which file the vocabulary came from.
    pub vocab_source: &'static str,
    /// Tokenizer settings (WordPiece; unused when [`Self::unigram`] is set).
    pub tokenizer: TokenizerSettings,
    /// The Unigram tokenizer when tokenizer.json's model is `Unigram` (XLM-R).
    pub unigram: Option<UnigramSettings>,
    /// Pooling from `1_Pooling/config.json`, if the checkpoint has one.
    pub pooling: Option<Pooling>,
    /// Where it was read from.
    pub origin: String,
}

/// A tensor converted to f32.
#[derive(Debug, Clone)]
pub struct F32Tensor {
    /// Shape as stored.
    pub shape: Vec<usize>,
    /// Row-major values.
    pub data: Vec<f32>,
}

impl Checkpoint {
    /// Reads every file the converter needs.
    pub fn load(files: &Files) -> Result<Self> {
        let origin = files.describe();
        let config_bytes = files
            .read("config.json")?
            .ok_or_else(|| anyhow!("{origin}: no config.json"))?;
        let config: HfConfig =
            serde_json::from_slice(&config_bytes).context("parsing config.json")?;
        let safetensors = files.read("model.safetensors")?.ok_or_else(|| {
            anyhow!("{origin}: no model.safetensors (only safetensors checkpoints are read)")
        })?;
        SafeTensors::deserialize(&safetensors).context("parsing model.safetensors")?;
        let tokenizer_json: Option<Value> = files
            .read("tokenizer.json")?
            .map(|b| serde_json::from_slice(&b))
            .transpose()
            .context("parsing tokenizer.json")?;
        let tokenizer_config: Option<Value> = files
            .read("tokenizer_config.json")?
            .map(|b| serde_json::from_slice(&b))
            .transpose()
            .context("parsing tokenizer_config.json")?;
        if let Some(t) = tokenizer_json
            .as_ref()
            .filter(|t| t["model"]["type"] == "Unigram")
        {
            let (vocab, unigram) = unigram_from_tokenizer_json(t)
                .with_context(|| format!("{origin}: tokenizer.json (Unigram)"))?;
            let pooling = match files.read("1_Pooling/config.json")? {
                Some(bytes) => Some(parse_pooling(&bytes)?),
                None => None,
            };
            return Ok(Self {
                config,
                safetensors,
                vocab,
                vocab_source: "tokenizer.json",
                tokenizer: tokenizer_settings(None, None)?,
                unigram: Some(unigram),
                pooling,
                origin,
            });
        }
        let (vocab, vocab_source) = match files.read("vocab.txt")? {
            Some(bytes) => (parse_vocab_txt(&bytes)?, "vocab.txt"),
            None => match &tokenizer_json {
                Some(t) => (vocab_from_tokenizer_json(t)?, "tokenizer.json"),
                None => bail!(
                    "{origin}: no vocab.txt and no tokenizer.json: cannot read the vocabulary"
                ),
            },
        };
        let tokenizer = tokenizer_settings(tokenizer_json.as_ref(), tokenizer_config.as_ref())?;
        let pooling = match files.read("1_Pooling/config.json")? {
            Some(bytes) => Some(parse_pooling(&bytes)?),
            None => None,
        };
        Ok(Self {
            config,
            safetensors,
            vocab,
            vocab_source,
            tokenizer,
            unigram: None,
            pooling,
            origin,
        })
    }

    /// The safetensors view (validated in [`Self::load`]).
    pub fn tensors(&self) -> Result<SafeTensors<'_>> {
        Ok(SafeTensors::deserialize(&self.safetensors)?)
    }

    /// Every tensor name, sorted.
    pub fn names(&self) -> Result<Vec<String>> {
        let mut names: Vec<String> = self
            .tensors()?
            .names()
            .into_iter()
            .map(str::to_owned)
            .collect();
        names.sort();
        Ok(names)
    }

    /// Whether the checkpoint holds `name`.
    pub fn has(&self, name: &str) -> Result<bool> {
        Ok(self.tensors()?.tensor(name).is_ok())
    }

    /// Reads tensor `name` as f32 (from f32, f16 or bf16).
    pub fn f32(&self, name: &str) -> Result<F32Tensor> {
        let st = self.tensors()?;
        let view = st
            .tensor(name)
            .map_err(|_| anyhow!("missing tensor `{name}`"))?;
        let bytes = view.data();
        let data: Vec<f32> = match view.dtype() {
            Dtype::F32 => bytes
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect(),
            Dtype::F16 => bytes
                .chunks_exact(2)
                .map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f32())
                .collect(),
            Dtype::BF16 => bytes
                .chunks_exact(2)
                .map(|c| half::bf16::from_le_bytes([c[0], c[1]]).to_f32())
                .collect(),
            other => {
                bail!("tensor `{name}` has dtype {other:?}; only F32, F16 and BF16 are supported")
            }
        };
        if let Some(i) = data.iter().position(|x| !x.is_finite()) {
            bail!("tensor `{name}` holds a non-finite value at element {i}");
        }
        Ok(F32Tensor {
            shape: view.shape().to_vec(),
            data,
        })
    }
}

/// One token per line; a trailing `\r` is dropped (files written on Windows).
fn parse_vocab_txt(bytes: &[u8]) -> Result<Vec<String>> {
    let text = core::str::from_utf8(bytes).context("vocab.txt is not UTF-8")?;
    let text = text.strip_suffix('\n').unwrap_or(text);
    Ok(text
        .split('\n')
        .map(|l| l.strip_suffix('\r').unwrap_or(l).to_owned())
        .collect())
}

/// `model.vocab` of a WordPiece tokenizer.json: token -> id, ids dense from 0.
fn vocab_from_tokenizer_json(t: &Value) -> Result<Vec<String>> {
    let model = &t["model"];
    if let Some(kind) = model["type"].as_str()
        && kind != "WordPiece"
    {
        bail!("tokenizer.json model type is {kind}; only WordPiece is supported");
    }
    let map = model["vocab"]
        .as_object()
        .ok_or_else(|| anyhow!("tokenizer.json has no model.vocab object"))?;
    let mut by_id: Vec<Option<String>> = vec![None; map.len()];
    for (token, id) in map {
        let id = id
            .as_u64()
            .ok_or_else(|| anyhow!("tokenizer.json: id of `{token}` is not an integer"))?
            as usize;
        let slot = by_id.get_mut(id).ok_or_else(|| {
            anyhow!(
                "tokenizer.json: id {id} of `{token}` is past the vocabulary ({} tokens)",
                map.len()
            )
        })?;
        if slot.is_some() {
            bail!("tokenizer.json: id {id} is given to two tokens");
        }
        *slot = Some(token.clone());
    }
    // Every slot is filled: n distinct ids below n.
    Ok(by_id.into_iter().map(Option::unwrap_or_default).collect())
}

/// The pieces and the [`UnigramSettings`] of a Unigram `tokenizer.json`, or a refusal
/// naming what the runtime's Unigram tokenizer does not run.
fn unigram_from_tokenizer_json(t: &Value) -> Result<(Vec<String>, UnigramSettings)> {
    let m = &t["model"];
    if m["byte_fallback"].as_bool() == Some(true) {
        bail!("byte_fallback is on; the runtime's Unigram tokenizer has only <unk> fallback");
    }
    let n = &t["normalizer"];
    let steps: Vec<&Value> = match n["type"].as_str() {
        Some("Sequence") => n["normalizers"].as_array().into_iter().flatten().collect(),
        _ => vec![n],
    };
    let charsmap = match steps.as_slice() {
        [p, r]
            if p["type"] == "Precompiled"
                && r["type"] == "Replace"
                && r["pattern"]["Regex"] == " {2,}"
                && r["content"] == " " =>
        {
            let b64 = p["precompiled_charsmap"]
                .as_str()
                .ok_or_else(|| anyhow!("Precompiled normaliser without a charsmap"))?;
            crate::e5s1::unbase64(b64)?
        }
        _ => bail!(
            "unsupported normaliser {}: only Sequence[Precompiled, Replace(\" {{2,}}\", \" \")] \
             (XLM-R's) is run",
            n
        ),
    };
    let p = &t["pre_tokenizer"];
    let prepend =
        p["prepend_scheme"]
            .as_str()
            .unwrap_or(if p["add_prefix_space"].as_bool() == Some(false) {
                "never"
            } else {
                "always"
            });
    if p["type"] != "Metaspace"
        || p["replacement"] != "▁"
        || prepend != "always"
        || p["split"].as_bool() == Some(false)
    {
        bail!("unsupported pre-tokenizer {p}: only Metaspace(\"▁\", prepend always, split) is run");
    }
    let vocab = m["vocab"]
        .as_array()
        .ok_or_else(|| anyhow!("Unigram model without a vocab list"))?;
    let mut pieces = Vec::with_capacity(vocab.len());
    let mut scores = Vec::with_capacity(vocab.len());
    for (i, e) in vocab.iter().enumerate() {
        let (Some(p), Some(s)) = (e[0].as_str(), e[1].as_f64()) else {
            bail!("vocab entry {i} is not [piece, score]");
        };
        pieces.push(p.to_owned());
        scores.push(s as f32);
    }
    let id = |name: &str| -> Result<u32> {
        let i = pieces
            .iter()
            .position(|p| p == name)
            .ok_or_else(|| anyhow!("no special piece {name}"))?;
        Ok(u32::try_from(i)?)
    };
    let unk = id("<unk>")?;
    if let Some(u) = m["unk_id"].as_u64() {
        ensure!(
            u64::from(unk) == u,
            "unk_id {u} is not the <unk> piece ({unk})"
        );
    }
    let ids = [unk, id("<s>")?, id("</s>")?, id("<pad>")?, id("<mask>")?];
    Ok((
        pieces,
        UnigramSettings {
            scores,
            charsmap,
            ids,
        },
    ))
}

fn tokenizer_settings(
    tokenizer_json: Option<&Value>,
    tokenizer_config: Option<&Value>,
) -> Result<TokenizerSettings> {
    if let Some(t) = tokenizer_json {
        let n = &t["normalizer"];
        let kind = n["type"].as_str().unwrap_or("none");
        if kind != "BertNormalizer" {
            bail!("tokenizer.json normalizer is `{kind}`; only BertNormalizer is supported");
        }
        let lowercase = n["lowercase"].as_bool().unwrap_or(true);
        let m = &t["model"];
        return Ok(TokenizerSettings {
            lowercase,
            // `null` means "follow lowercase", as in BertNormalizer.
            strip_accents: n["strip_accents"].as_bool().unwrap_or(lowercase),
            clean_text: n["clean_text"].as_bool().unwrap_or(true),
            handle_chinese_chars: n["handle_chinese_chars"].as_bool().unwrap_or(true),
            max_input_chars_per_word: m["max_input_chars_per_word"]
                .as_u64()
                .map_or(100, |v| v.min(u64::from(u32::MAX)) as u32),
            continuing_subword_prefix: m["continuing_subword_prefix"]
                .as_str()
                .unwrap_or("##")
                .to_owned(),
            source: "tokenizer.json",
            post_processor: Some(t["post_processor"].clone()).filter(|p| !p.is_null()),
        });
    }
    let c = tokenizer_config.unwrap_or(&Value::Null);
    let lowercase = c["do_lower_case"].as_bool().unwrap_or(true);
    Ok(TokenizerSettings {
        lowercase,
        strip_accents: c["strip_accents"].as_bool().unwrap_or(lowercase),
        clean_text: true,
        handle_chinese_chars: c["tokenize_chinese_chars"].as_bool().unwrap_or(true),
        max_input_chars_per_word: 100,
        continuing_subword_prefix: "##".to_owned(),
        source: if tokenizer_config.is_some() {
            "tokenizer_config.json"
        } else {
            "BERT defaults (uncased)"
        },
        post_processor: None,
    })
}

fn parse_pooling(bytes: &[u8]) -> Result<Pooling> {
    let v: Value = serde_json::from_slice(bytes).context("parsing 1_Pooling/config.json")?;
    let flag = |k: &str| v[k].as_bool().unwrap_or(false);
    let modes = [
        ("pooling_mode_cls_token", flag("pooling_mode_cls_token")),
        ("pooling_mode_mean_tokens", flag("pooling_mode_mean_tokens")),
        ("pooling_mode_max_tokens", flag("pooling_mode_max_tokens")),
        (
            "pooling_mode_mean_sqrt_len_tokens",
            flag("pooling_mode_mean_sqrt_len_tokens"),
        ),
        (
            "pooling_mode_weightedmean_tokens",
            flag("pooling_mode_weightedmean_tokens"),
        ),
        ("pooling_mode_lasttoken", flag("pooling_mode_lasttoken")),
    ];
    let on: Vec<&str> = modes.iter().filter(|m| m.1).map(|m| m.0).collect();
    match on.as_slice() {
        ["pooling_mode_cls_token"] => Ok(Pooling::Cls),
        ["pooling_mode_mean_tokens"] => Ok(Pooling::Mean),
        [] => bail!("1_Pooling/config.json enables no pooling mode"),
        other => bail!(
            "1_Pooling/config.json enables {}; only exactly one of pooling_mode_mean_tokens or pooling_mode_cls_token is supported",
            other.join(" + ")
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strip_accents_null_follows_lowercase() {
        let t: Value = serde_json::json!({
            "normalizer": {"type": "BertNormalizer", "clean_text": true,
                "handle_chinese_chars": false, "strip_accents": null, "lowercase": false},
            "model": {"type": "WordPiece", "max_input_chars_per_word": 50,
                "continuing_subword_prefix": "@@", "vocab": {"a": 1, "b": 0}}
        });
        let s = tokenizer_settings(Some(&t), None).unwrap();
        assert!(!s.lowercase && !s.strip_accents && !s.handle_chinese_chars && s.clean_text);
        assert_eq!(
            (
                s.max_input_chars_per_word,
                s.continuing_subword_prefix.as_str()
            ),
            (50, "@@")
        );
        assert_eq!(vocab_from_tokenizer_json(&t).unwrap(), ["b", "a"]);
    }

    #[test]
    fn pooling_modes() {
        let mean = br#"{"pooling_mode_mean_tokens": true}"#;
        let cls = br#"{"pooling_mode_cls_token": true, "pooling_mode_mean_tokens": false}"#;
        let max = br#"{"pooling_mode_max_tokens": true}"#;
        assert_eq!(parse_pooling(mean).unwrap(), Pooling::Mean);
        assert_eq!(parse_pooling(cls).unwrap(), Pooling::Cls);
        let e = parse_pooling(max).unwrap_err().to_string();
        assert!(e.contains("pooling_mode_max_tokens"), "{e}");
    }
}
