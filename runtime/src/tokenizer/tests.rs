//! Small hand-made vocabularies: each rule of the tokenizer in isolation. Parity with the
//! reference on real vocabularies and texts is in `tests/tests/tokenizer_parity.rs`.

extern crate alloc;

use super::*;
use alloc::vec::Vec;

/// The vocabulary's wire arrays, owned.
struct OwnedVocab {
    tokens: Vec<u8>,
    offsets: Vec<u8>,
    sorted: Vec<u8>,
}

fn owned(vocab: &[&str]) -> OwnedVocab {
    let mut tokens = Vec::new();
    let mut offsets = Vec::new();
    for t in vocab {
        offsets.extend_from_slice(&(tokens.len() as u32).to_le_bytes());
        tokens.extend_from_slice(t.as_bytes());
    }
    offsets.extend_from_slice(&(tokens.len() as u32).to_le_bytes());
    let mut ids: Vec<u32> = (0..vocab.len() as u32).collect();
    ids.sort_by_key(|&i| vocab[i as usize].as_bytes());
    let sorted = ids.iter().flat_map(|i| i.to_le_bytes()).collect();
    OwnedVocab {
        tokens,
        offsets,
        sorted,
    }
}

const VOCAB: &[&str] = &[
    "[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", // 0..5
    "un", "##aff", "##able", "unaff", "##a", // 5..10
    "!", ",", "中", "国", "cafe", // 10..15
    "hello", "world", "##ll", "he", "a", // 15..20
    "é", "##b", "b", "##", "#", // 20..25
];

fn section(v: &OwnedVocab) -> TokenizerSection<'_> {
    TokenizerSection {
        lowercase: true,
        strip_accents: true,
        clean_text: true,
        handle_chinese_chars: true,
        max_input_chars_per_word: 10,
        unk_id: 1,
        cls_id: 2,
        sep_id: 3,
        pad_id: 0,
        mask_id: 4,
        continuing_subword_prefix: "##",
        tokens: &v.tokens,
        offsets: &v.offsets,
        sorted_ids: &v.sorted,
    }
}

fn pieces(t: &Tokenizer<'_>, text: &str) -> Vec<u32> {
    t.word_pieces(text).collect()
}

#[test]
fn vocabulary_lookups() {
    let v = owned(VOCAB);
    let t = Tokenizer::from_section(section(&v));
    for (i, tok) in VOCAB.iter().enumerate() {
        assert_eq!(t.token_to_id(tok), Some(i as u32), "{tok}");
        assert_eq!(t.id_to_token(i as u32), Some(*tok));
    }
    assert_eq!(t.token_to_id("unknown"), None);
    assert_eq!(t.token_to_id(""), None);
    assert_eq!(t.id_to_token(VOCAB.len() as u32), None);
    assert_eq!(t.id_to_token(u32::MAX), None);
}

#[test]
fn greedy_longest_match_first() {
    let v = owned(VOCAB);
    let t = Tokenizer::from_section(section(&v));
    // "unaff" beats "un" + "##aff".
    assert_eq!(pieces(&t, "unaffable"), [8, 7]);
    assert_eq!(pieces(&t, "UNAFFABLE"), [8, 7]);
    assert_eq!(pieces(&t, "hello world"), [15, 16]);
    // "he" + "##ll" + "##o" fails on "##o": the whole word is one [UNK].
    assert_eq!(pieces(&t, "hellx"), [1]);
    assert_eq!(pieces(&t, "aa"), [19, 9]);
    // Greedy does not backtrack: "hell" + "o"-less words stay [UNK].
    assert_eq!(pieces(&t, "hel"), [1]);
}

#[test]
fn long_words_are_unknown() {
    let v = owned(VOCAB);
    let t = Tokenizer::from_section(section(&v));
    assert_eq!(pieces(&t, "aaaaaaaaaa"), [19, 9, 9, 9, 9, 9, 9, 9, 9, 9]);
    assert_eq!(pieces(&t, "aaaaaaaaaaa"), [1]);
    assert_eq!(pieces(&t, "aaaaaaaaaaa a"), [1, 19]);
    // Longer than the word buffer, still one [UNK], then back to normal.
    let mut long = alloc::string::String::new();
    for _ in 0..3 * MAX_WORD_BYTES {
        long.push('é');
    }
    long.push_str(" a");
    assert_eq!(pieces(&t, &long), [1, 19]);
}

#[test]
fn punctuation_is_isolated() {
    let v = owned(VOCAB);
    let t = Tokenizer::from_section(section(&v));
    assert_eq!(pieces(&t, "hello,world!"), [15, 11, 16, 10]);
    assert_eq!(pieces(&t, "!!"), [10, 10]);
    // Punctuation not in the vocabulary is [UNK] on its own.
    assert_eq!(pieces(&t, "a?a"), [19, 1, 19]);
    // '#' is punctuation, so "##" never reaches WordPiece as one word.
    assert_eq!(pieces(&t, "##"), [24, 24]);
}

#[test]
fn cjk_split_and_accents() {
    let v = owned(VOCAB);
    let t = Tokenizer::from_section(section(&v));
    assert_eq!(pieces(&t, "中国a"), [12, 13, 19]);
    assert_eq!(pieces(&t, "Café"), [14]);
    assert_eq!(pieces(&t, "cafe\u{301}"), [14]);
    // Control and zero-width characters vanish, whitespace variants split.
    assert_eq!(
        pieces(&t, "he\u{200B}llo\u{0}\u{FEFF}\u{3000}a\u{A0}a"),
        [15, 19, 19]
    );
    let keep = TokenizerSection {
        lowercase: false,
        strip_accents: false,
        ..section(&v)
    };
    let t = Tokenizer::from_section(keep);
    assert_eq!(pieces(&t, "é"), [20]);
    assert_eq!(pieces(&t, "Hello"), [1]);
}

#[test]
fn special_tokens_in_text() {
    let v = owned(VOCAB);
    let t = Tokenizer::from_section(section(&v));
    assert_eq!(pieces(&t, "hello[MASK]world"), [15, 4, 16]);
    assert_eq!(pieces(&t, "[mask]"), [1, 1, 1]);
    assert_eq!(pieces(&t, "[SEP][PAD]"), [3, 0]);
}

#[test]
fn encode_truncates_and_counts() {
    let v = owned(VOCAB);
    let t = Tokenizer::from_section(section(&v));
    let mut out = [0u32; 16];
    let e = t.encode("hello world!", &mut out).unwrap();
    assert_eq!(
        e,
        Encoding {
            len: 5,
            total: 5,
            truncated: false
        }
    );
    assert_eq!(out[..5], [2, 15, 16, 10, 3]);
    assert_eq!(t.count("hello world!"), 5);

    let mut out = [0u32; 3];
    let e = t.encode("hello world!", &mut out).unwrap();
    assert_eq!((e.len, e.total, e.truncated), (3, 5, true));
    assert_eq!(out, [2, 15, 3]);

    let mut out = [7u32; 2];
    let e = t.encode("hello", &mut out).unwrap();
    assert_eq!((e.len, e.total, e.truncated), (2, 3, true));
    assert_eq!(out, [2, 3]);

    let e = t.encode("", &mut out).unwrap();
    assert_eq!((e.len, e.total, e.truncated), (2, 2, false));
    assert_eq!(t.count(""), 2);
}

#[test]
fn buffer_too_small() {
    let v = owned(VOCAB);
    let t = Tokenizer::from_section(section(&v));
    for n in 0..2 {
        let mut out = [0u32; 1];
        assert_eq!(
            t.encode("hello", &mut out[..n]),
            Err(TokenizeError::BufferTooSmall {
                capacity: n,
                needed: 2
            })
        );
    }
}

#[test]
fn inconsistent_sections_never_panic() {
    let v = owned(VOCAB);
    let mut s = section(&v);
    s.offsets = &v.offsets[..7];
    s.unk_id = u32::MAX;
    let t = Tokenizer::from_section(s);
    let _ = pieces(&t, "hello [MASK] wörld 中");
    s = section(&v);
    s.tokens = &v.tokens[..3];
    s.continuing_subword_prefix = "";
    s.max_input_chars_per_word = 0;
    let t = Tokenizer::from_section(s);
    let _ = pieces(&t, "hello [MASK] wörld 中");
    let mut out = [0u32; 4];
    let _ = t.encode("a b c d e f", &mut out);
}

#[test]
fn iterator_state_is_small() {
    assert!(size_of::<WordPieces<'static, 'static>>() < 1024);
}

#[test]
fn arbitrary_text_never_panics_and_counts_agree() {
    let v = owned(VOCAB);
    let t = Tokenizer::from_section(section(&v));
    // A fixed LCG over all code points, biased to the low planes.
    let mut state = 0x2545_F491_4F6C_DD1Du64;
    let mut next = move || {
        state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (state >> 33) as u32
    };
    let mut out = [0u32; 8];
    for _ in 0..2000 {
        let mut s = alloc::string::String::new();
        for _ in 0..next() % 40 {
            let r = next();
            let cp = match r % 4 {
                0 => r % 0x80,
                1 => r % 0x800,
                2 => r % 0x1_0000,
                _ => r % 0x11_0000,
            };
            s.push(char::from_u32(cp).unwrap_or('['));
        }
        let n = t.count(&s);
        let e = t.encode(&s, &mut out).unwrap();
        assert_eq!(e.total, n, "{s:?}");
        assert_eq!(e.len, n.min(out.len()), "{s:?}");
        assert_eq!(out[0], 2);
        assert_eq!(out[e.len - 1], 3);
    }
}
