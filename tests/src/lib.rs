//! Shared helpers of the integration tests: the corpus loaders ([`corpus`]), the rule for
//! a missing test input ([`require`]: a failure under `CI=true`, a one-line skip elsewhere)
//! and an owned tokenizer section built straight from a Hugging Face `tokenizer.json`
//! ([`OwnedVocab`]), so tokenizer tests need no blob.

pub mod corpus;
pub mod require;
#[cfg(test)]
mod require_tests;

use anyhow::{Context, Result, bail};
use microbert::blob::TokenizerSection;
use serde_json::Value;
use std::path::Path;

/// The wire arrays of a vocabulary plus the WordPiece settings: everything a
/// [`TokenizerSection`] borrows.
#[derive(Debug, Clone)]
pub struct OwnedVocab {
    /// Tokens concatenated in id order.
    pub tokens: Vec<u8>,
    /// `len + 1` u32 LE offsets into `tokens`.
    pub offsets: Vec<u8>,
    /// u32 LE ids sorted by token bytes.
    pub sorted_ids: Vec<u8>,
    /// The section's scalar fields (its slices point at empty arrays until [`Self::section`]).
    pub settings: TokenizerSection<'static>,
    /// Continuing-subword prefix (`##`).
    pub prefix: String,
}

impl OwnedVocab {
    /// Builds the arrays of `vocab` (token `i` has id `i`) with BERT-uncased settings and
    /// the usual special tokens looked up by name (`[UNK]`, `[CLS]`, `[SEP]`, `[PAD]`,
    /// `[MASK]`; id 0 when absent).
    pub fn from_tokens(vocab: &[String]) -> Self {
        let mut tokens = Vec::new();
        let mut offsets = Vec::with_capacity(4 * (vocab.len() + 1));
        for t in vocab {
            offsets.extend_from_slice(&(tokens.len() as u32).to_le_bytes());
            tokens.extend_from_slice(t.as_bytes());
        }
        offsets.extend_from_slice(&(tokens.len() as u32).to_le_bytes());
        let mut ids: Vec<u32> = (0..vocab.len() as u32).collect();
        ids.sort_by(|&a, &b| {
            vocab[a as usize]
                .as_bytes()
                .cmp(vocab[b as usize].as_bytes())
        });
        let sorted_ids = ids.iter().flat_map(|i| i.to_le_bytes()).collect();
        let id = |name: &str| vocab.iter().position(|t| t == name).unwrap_or(0) as u32;
        Self {
            tokens,
            offsets,
            sorted_ids,
            settings: TokenizerSection {
                lowercase: true,
                strip_accents: true,
                clean_text: true,
                handle_chinese_chars: true,
                max_input_chars_per_word: 100,
                unk_id: id("[UNK]"),
                cls_id: id("[CLS]"),
                sep_id: id("[SEP]"),
                pad_id: id("[PAD]"),
                mask_id: id("[MASK]"),
                continuing_subword_prefix: "",
                tokens: &[],
                offsets: &[],
                sorted_ids: &[],
            },
            prefix: "##".to_owned(),
        }
    }

    /// Reads the WordPiece vocabulary and the `BertNormalizer` settings of a
    /// `tokenizer.json` (`strip_accents: null` follows `lowercase`, as in `tokenizers`).
    pub fn from_tokenizer_json(path: &Path) -> Result<Self> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        Self::from_tokenizer_json_str(&text).with_context(|| format!("in {}", path.display()))
    }

    /// [`Self::from_tokenizer_json`] on the file's contents.
    pub fn from_tokenizer_json_str(text: &str) -> Result<Self> {
        let json: Value = serde_json::from_str(text).context("parsing tokenizer.json")?;
        let model = &json["model"];
        if model["type"] != "WordPiece" {
            bail!("model is not WordPiece");
        }
        let map = model["vocab"]
            .as_object()
            .context("model.vocab is not an object")?;
        let mut vocab = vec![String::new(); map.len()];
        for (tok, id) in map {
            let id = id.as_u64().context("vocab id is not a number")? as usize;
            *vocab.get_mut(id).context("vocab ids are not 0..n")? = tok.clone();
        }
        let mut v = Self::from_tokens(&vocab);
        let norm = &json["normalizer"];
        if norm["type"] != "BertNormalizer" {
            bail!("normalizer is not BertNormalizer");
        }
        let flag = |k: &str| norm[k].as_bool().unwrap_or(true);
        let s = &mut v.settings;
        s.lowercase = flag("lowercase");
        s.clean_text = flag("clean_text");
        s.handle_chinese_chars = flag("handle_chinese_chars");
        s.strip_accents = norm["strip_accents"].as_bool().unwrap_or(s.lowercase);
        if let Some(n) = model["max_input_chars_per_word"].as_u64() {
            s.max_input_chars_per_word = n as u32;
        }
        if let Some(unk) = model["unk_token"].as_str() {
            s.unk_id = vocab
                .iter()
                .position(|t| t == unk)
                .context("unk token not in vocab")? as u32;
        }
        if let Some(p) = model["continuing_subword_prefix"].as_str() {
            v.prefix = p.to_owned();
        }
        Ok(v)
    }

    /// The section borrowing these arrays.
    pub fn section(&self) -> TokenizerSection<'_> {
        TokenizerSection {
            tokens: &self.tokens,
            offsets: &self.offsets,
            sorted_ids: &self.sorted_ids,
            continuing_subword_prefix: &self.prefix,
            ..self.settings
        }
    }
}
