//! Tokenizer invariants, and vocabularies built in the harness (so the tokenizer target
//! reads no file: the fixture's vocabulary plus these).
//!
//! [`check`] asserts, for any text:
//! - `word_pieces` is deterministic, and `count` and `encode` agree with it;
//! - with a valid vocabulary, every id is in the vocabulary;
//! - `encode` writes `[CLS]`, the pieces and `[SEP]` to the front of any buffer of two ids
//!   or more, truncating exactly the pieces that do not fit, and nothing past `len`;
//!   a smaller buffer is `TokenizeError::BufferTooSmall`;
//! - with a valid vocabulary whose special tokens hold no whitespace, splitting the text at
//!   a character boundary and joining the halves with a space gives the concatenation of
//!   the halves' pieces (no word and no special token spans a space).

use microbert::blob::TokenizerSection;
use microbert::tokenizer::Encoding;
use microbert::{TokenizeError, Tokenizer};

const SENTINEL: u32 = 0xdead_beef;

/// Checks the invariants of the module docs on `text`. `section` is the tokenizer's
/// section when it is valid (ids are then checked against `vocab_size`), `None` for a
/// deliberately inconsistent one (no panic and structure only). `seed` picks the buffer
/// sizes and the split point.
pub fn check(
    tok: &Tokenizer<'_>,
    section: Option<&TokenizerSection<'_>>,
    vocab_size: u32,
    text: &str,
    seed: u64,
) {
    let pieces: Vec<u32> = tok.word_pieces(text).collect();
    let again: Vec<u32> = tok.word_pieces(text).collect();
    assert_eq!(pieces, again, "word_pieces twice");
    let total = pieces.len() + 2;
    assert_eq!(tok.count(text), total, "count");
    if section.is_some()
        && let Some(id) = pieces.iter().find(|&&id| id >= vocab_size)
    {
        panic!("piece id {id} outside the vocabulary of {vocab_size}");
    }
    let (cls, sep) = match section {
        Some(s) => (Some(s.cls_id), Some(s.sep_id)),
        None => (None, None),
    };

    // Buffers: too small, a seeded size, exact, and (by turns, to keep the target fast)
    // one short or larger.
    let seeded = 2 + (seed as usize) % total;
    let boundary = if seed.is_multiple_of(2) {
        total - 1
    } else {
        total + 3
    };
    for capacity in [0, 1, seeded, boundary, total] {
        let mut out = vec![SENTINEL; capacity];
        let result = tok.encode(text, &mut out);
        if capacity < 2 {
            assert_eq!(
                result,
                Err(TokenizeError::BufferTooSmall {
                    capacity,
                    needed: 2
                })
            );
            assert!(out.iter().all(|&x| x == SENTINEL), "written on error");
            continue;
        }
        let len = total.min(capacity);
        assert_eq!(
            result,
            Ok(Encoding {
                len,
                total,
                truncated: total > capacity
            }),
            "encode into {capacity} ids"
        );
        let first = out[0];
        let last = out[len - 1];
        if let (Some(cls), Some(sep)) = (cls, sep) {
            assert_eq!((first, last), (cls, sep), "[CLS] ... [SEP]");
        }
        assert_eq!(
            &out[1..len - 1],
            &pieces[..len - 2],
            "pieces kept by encode"
        );
        assert!(
            out[len..].iter().all(|&x| x == SENTINEL),
            "written past len"
        );
    }

    // Splitting at a space (for a valid section: an inconsistent one may have special
    // tokens with spaces in them).
    if section.is_none() {
        return;
    }
    let boundaries: Vec<usize> = text.char_indices().map(|(i, _)| i).collect();
    if let Some(&at) = boundaries.get((seed as usize / 7) % boundaries.len().max(1)) {
        let (x, y) = text.split_at(at);
        let joined = format!("{x} {y}");
        let mut halves: Vec<u32> = tok.word_pieces(x).collect();
        halves.extend(tok.word_pieces(y));
        let whole: Vec<u32> = tok.word_pieces(&joined).collect();
        assert_eq!(whole, halves, "pieces of {x:?} + ' ' + {y:?}");
    }
}

/// A vocabulary owned by the harness, in the blob's layout (token bytes in id order, u32
/// offsets, ids sorted by token bytes).
#[derive(Debug, Clone)]
pub struct Vocab {
    tokens: Vec<u8>,
    offsets: Vec<u8>,
    sorted_ids: Vec<u8>,
    /// The token strings, in id order.
    pub list: Vec<String>,
}

impl Vocab {
    /// A vocabulary of `list` in order, duplicates dropped (the first copy keeps its id).
    pub fn new<S: AsRef<str>>(list: impl IntoIterator<Item = S>) -> Self {
        let mut list: Vec<String> = list.into_iter().map(|s| s.as_ref().to_owned()).collect();
        let mut seen = std::collections::HashSet::new();
        let keep: Vec<bool> = list.iter().map(|s| seen.insert(s.as_str())).collect();
        let mut keep = keep.into_iter();
        list.retain(|_| keep.next().unwrap_or(false));
        let mut tokens = Vec::new();
        let mut offsets = Vec::new();
        for t in &list {
            offsets.extend_from_slice(&(tokens.len() as u32).to_le_bytes());
            tokens.extend_from_slice(t.as_bytes());
        }
        offsets.extend_from_slice(&(tokens.len() as u32).to_le_bytes());
        let mut order: Vec<u32> = (0..list.len() as u32).collect();
        order.sort_by(|&a, &b| list[a as usize].as_bytes().cmp(list[b as usize].as_bytes()));
        let sorted_ids = order.iter().flat_map(|i| i.to_le_bytes()).collect();
        Self {
            tokens,
            offsets,
            sorted_ids,
            list,
        }
    }

    /// Number of tokens.
    pub fn len(&self) -> u32 {
        self.list.len() as u32
    }

    /// Whether the vocabulary is empty.
    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    /// The id of `token`.
    pub fn id(&self, token: &str) -> Option<u32> {
        self.list.iter().position(|t| t == token).map(|i| i as u32)
    }

    /// A section over this vocabulary with BERT's defaults (uncased, `##`, 100 characters)
    /// and the special ids found by name (else 0); callers change the fields they vary.
    pub fn section(&self) -> TokenizerSection<'_> {
        let id = |name: &str| self.id(name).unwrap_or(0);
        TokenizerSection {
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
            continuing_subword_prefix: "##",
            tokens: &self.tokens,
            offsets: &self.offsets,
            sorted_ids: &self.sorted_ids,
        }
    }
}

/// Tokens of the harness vocabulary (distinct): BERT's specials, then cased and uncased words,
/// letters, continuation pieces under three prefixes, accented, CJK, Hangul and emoji
/// tokens, so that every branch of WordPiece has matches to take.
pub fn harness_tokens() -> &'static [String] {
    static TOKENS: std::sync::OnceLock<Vec<String>> = std::sync::OnceLock::new();
    TOKENS.get_or_init(|| Vocab::new(tokens()).list)
}

fn tokens() -> Vec<String> {
    let mut v: Vec<String> = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
        .map(String::from)
        .to_vec();
    let words = "the quick brown fox jumps over lazy dog The Quick Hello hello world un ##able \
                 ##s ##ing ##ed ##ly @@s @@ing ▁the ▁a ▁un café cafe über uber naïve naive \
                 résumé resume ß ss 中 文 中文 한 국 한국 😀 👍🏽 e\u{301} a\u{308} Ωμέγα ωμεγα ﬁ fi";
    v.extend(words.split(' ').filter(|w| !w.is_empty()).map(String::from));
    for c in ('a'..='z').chain('A'..='Z').chain('0'..='9') {
        v.push(c.to_string());
        v.push(format!("##{c}"));
        v.push(format!("@@{c}"));
        v.push(format!("▁{c}"));
    }
    for c in "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~¡¿«»—…·".chars() {
        v.push(c.to_string());
    }
    v
}
