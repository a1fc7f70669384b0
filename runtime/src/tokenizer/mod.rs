//! BERT WordPiece tokenizer over the blob's vocabulary: no allocation, no panics, streaming.
//!
//! Bit-exact with Hugging Face `tokenizers` 0.22 running a BERT `tokenizer.json` without
//! padding and truncation: the added-token split of the special tokens, `BertNormalizer`,
//! `BertPreTokenizer`, `WordPiece` and the `[CLS] $A [SEP]` template.
//!
//! The text is read one character at a time; each character is normalised into a few
//! characters (module `normalize`), which either end a word (whitespace), form a word of
//! their own (punctuation), or are appended to a fixed word buffer (module `wordpiece`). A
//! finished word is split greedily, longest vocabulary match first. Nothing depends on the
//! text's length: the state of [`WordPieces`] is under 1 KiB, mostly the word buffer of
//! [`MAX_WORD_BYTES`].
//!
//! Behaviour, in the reference's order:
//! 1. Special tokens (the strings of `[UNK]`, `[CLS]`, `[SEP]`, `[PAD]`, `[MASK]`) written
//!    literally in the raw text are matched first (leftmost, longest) and give their id;
//!    they also end the word before them.
//! 2. Clean text: drop NUL, U+FFFD and control characters (`Cc`, `Cf`, `Co` as
//!    `unicode_categories` 0.1.1 sees them, so U+200B..U+200D and U+FEFF go too) except
//!    `\t \n \r`; whitespace becomes a space.
//! 3. CJK ideographs (BERT's blocks) get a space on each side.
//! 4. Strip accents (the reference's `strip_accents: null` means "as `lowercase`"; the blob
//!    stores the resolved flag): NFD (Unicode 9.0, as `unicode-normalization-alignments`
//!    0.1.12, canonical reordering included), then drop category Mn.
//! 5. Lowercase with `char::to_lowercase` (no final-sigma rule).
//! 6. Split on whitespace; every punctuation character (ASCII punctuation or a Unicode `P*`
//!    category) is a word of its own.
//! 7. A word of more than `max_input_chars_per_word` characters is `[UNK]`; otherwise
//!    WordPiece takes the longest vocabulary match, continuing pieces prefixed with `##`,
//!    and a word with a part that matches nothing is a single `[UNK]`.
//!
//! Sentence pairs (`encode_pair`, module `pair`) fill a pair template, BERT's by default,
//! with `tokenizers`' `longest_first` truncation.
//!
//! One deliberate limit: a word of more than [`MAX_WORD_BYTES`] bytes of UTF-8 is `[UNK]`
//! even when it has no more than `max_input_chars_per_word` characters. With the usual limit
//! of 100 characters (at most 400 bytes) this never differs from the reference.

mod normalize;
mod pair;
mod precompiled;
mod unigram;
#[rustfmt::skip]
mod unicode_tables;
mod wordpiece;

pub use pair::{MAX_TEMPLATE_PIECES, PairEncoding, Piece, Template, TemplatePiece, longest_first};
pub use unigram::UnigramTokenizer;
pub use wordpiece::MAX_WORD_BYTES;

use crate::blob::{ModelView, TokenizerSection};
use crate::error::TokenizeError;
use normalize::{Normalizer, Unit, Units, is_punctuation};
use wordpiece::{Vocab, Word};

/// Number of special tokens matched in the raw text.
const SPECIALS: usize = 5;

/// A WordPiece tokenizer borrowing its vocabulary from a model blob.
#[derive(Debug, Clone, Copy)]
pub struct Tokenizer<'a> {
    vocab: Vocab<'a>,
    normalizer: Normalizer,
    prefix: &'a [u8],
    max_input_chars_per_word: usize,
    unk_id: u32,
    cls_id: u32,
    sep_id: u32,
    /// The special tokens' strings (empty if an id has no token) and ids.
    specials: [(&'a [u8], u32); SPECIALS],
    /// The template of [`Self::encode_pair`].
    pair_template: Template,
    /// Whether the model has a WordPiece vocabulary (see [`Self::new`]).
    wordpiece: bool,
}

/// What [`Tokenizer::encode`] wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Encoding {
    /// Ids written to the front of the buffer, `[CLS]` and `[SEP]` included.
    pub len: usize,
    /// Ids the text gives without truncation, `[CLS]` and `[SEP]` included.
    pub total: usize,
    /// Whether pieces were dropped to fit the buffer (`total > len`).
    pub truncated: bool,
}

/// Where a piece comes from: the pre-tokenizer word it is part of (counted from 0 in the
/// text; a special token written in the text is a word of its own) and that word's
/// characters in the original text, `start..end` in Unicode scalar values (not bytes), as
/// Hugging Face `tokenizers` gives with `OffsetType::Char`. Every piece of a word has the
/// word's whole span; the first piece of each word is the one whose `word` differs from
/// the piece before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct WordSpan {
    /// Index of the word in the text.
    pub word: u32,
    /// First character of the word.
    pub start: u32,
    /// One past the word's last character that survives normalisation.
    pub end: u32,
}

impl<'a> Tokenizer<'a> {
    /// The WordPiece tokenizer of a parsed model. A model without a WordPiece vocabulary
    /// (one that carries only a Unigram tokenizer, see [`UnigramTokenizer::new`]) gives a
    /// tokenizer whose `encode*` calls return [`TokenizeError::NotWordPiece`] and whose
    /// piece iterators are empty (a count is then only the specials'); [`Self::is_wordpiece`]
    /// tells which.
    pub fn new(model: &ModelView<'a>) -> Self {
        let Some(section) = model.tokenizer else {
            return Self {
                wordpiece: false,
                ..Self::from_section(TokenizerSection {
                    lowercase: false,
                    strip_accents: false,
                    clean_text: false,
                    handle_chinese_chars: false,
                    max_input_chars_per_word: 0,
                    unk_id: 0,
                    cls_id: 0,
                    sep_id: 0,
                    pad_id: 0,
                    mask_id: 0,
                    continuing_subword_prefix: "",
                    tokens: &[],
                    offsets: &[],
                    sorted_ids: &[],
                })
            };
        };
        let t = Self::from_section(section);
        match model.pair_template {
            Some(template) => t.with_pair_template(template),
            None => t,
        }
    }

    /// A tokenizer over a tokenizer section. The section is expected to be valid (as
    /// `blob::parse` checks); an inconsistent one gives wrong ids, never a panic.
    pub fn from_section(section: TokenizerSection<'a>) -> Self {
        let vocab = Vocab::new(&section);
        let special = |id: u32| (vocab.token(id).unwrap_or(&[]), id);
        Self {
            vocab,
            normalizer: Normalizer {
                clean_text: section.clean_text,
                handle_chinese_chars: section.handle_chinese_chars,
                strip_accents: section.strip_accents,
                lowercase: section.lowercase,
            },
            prefix: section.continuing_subword_prefix.as_bytes(),
            max_input_chars_per_word: usize::try_from(section.max_input_chars_per_word)
                .unwrap_or(usize::MAX),
            unk_id: section.unk_id,
            cls_id: section.cls_id,
            sep_id: section.sep_id,
            specials: [
                special(section.unk_id),
                special(section.cls_id),
                special(section.sep_id),
                special(section.pad_id),
                special(section.mask_id),
            ],
            pair_template: Template::bert(section.cls_id, section.sep_id),
            wordpiece: true,
        }
    }

    /// Whether the model has a WordPiece vocabulary ([`Self::new`]).
    pub fn is_wordpiece(&self) -> bool {
        self.wordpiece
    }

    /// The id of `token` (exact, e.g. `"##ing"`), if it is in the vocabulary.
    pub fn token_to_id(&self, token: &str) -> Option<u32> {
        self.vocab.find(&[], token.as_bytes())
    }

    /// The string of token `id`, if `id` is in the vocabulary.
    pub fn id_to_token(&self, id: u32) -> Option<&'a str> {
        core::str::from_utf8(self.vocab.token(id)?).ok()
    }

    /// The WordPiece ids of `text`, without `[CLS]` and `[SEP]`, produced lazily.
    pub fn word_pieces<'t>(&self, text: &'t str) -> WordPieces<'a, 't> {
        WordPieces {
            tok: *self,
            rest: if self.wordpiece { text } else { "" },
            units: Units::new(),
            word: Word::new(),
            emit_at: None,
            chars_read: 0,
            words: 0,
            span: WordSpan::default(),
            last: WordSpan::default(),
        }
    }

    /// [`Self::word_pieces`] with the [`WordSpan`] of each piece.
    pub fn word_pieces_spanned<'t>(
        &self,
        text: &'t str,
    ) -> impl Iterator<Item = (u32, WordSpan)> + use<'a, 't> {
        let mut pieces = self.word_pieces(text);
        core::iter::from_fn(move || pieces.next().map(|id| (id, pieces.last)))
    }

    /// Writes `[CLS]`, the pieces of `text` and `[SEP]` to the front of `out`, dropping the
    /// pieces that do not fit so that `[CLS]` and `[SEP]` always do.
    ///
    /// # Errors
    /// [`TokenizeError::BufferTooSmall`] if `out` cannot hold two ids.
    pub fn encode(&self, text: &str, out: &mut [u32]) -> Result<Encoding, TokenizeError> {
        self.encode_into(text, out, None)
    }

    /// [`Self::encode`], also writing each id's [`WordSpan`] to the same position of
    /// `spans` (`None` for `[CLS]` and `[SEP]`), for per-word outputs such as token
    /// classification.
    ///
    /// # Errors
    /// [`TokenizeError::BufferTooSmall`] if `out` cannot hold two ids or `spans` is
    /// shorter than `out`.
    pub fn encode_spanned(
        &self,
        text: &str,
        out: &mut [u32],
        spans: &mut [Option<WordSpan>],
    ) -> Result<Encoding, TokenizeError> {
        if spans.len() < out.len() {
            return Err(TokenizeError::BufferTooSmall {
                capacity: spans.len(),
                needed: out.len(),
            });
        }
        self.encode_into(text, out, Some(spans))
    }

    /// [`Self::encode`] and, when given, the spans of [`Self::encode_spanned`].
    fn encode_into(
        &self,
        text: &str,
        out: &mut [u32],
        mut spans: Option<&mut [Option<WordSpan>]>,
    ) -> Result<Encoding, TokenizeError> {
        if !self.wordpiece {
            return Err(TokenizeError::NotWordPiece);
        }
        let capacity = out.len();
        if capacity < 2 {
            return Err(TokenizeError::BufferTooSmall {
                capacity,
                needed: 2,
            });
        }
        let mut set_span = |at: usize, span: Option<WordSpan>| {
            if let Some(slot) = spans.as_deref_mut().and_then(|s| s.get_mut(at)) {
                *slot = span;
            }
        };
        if let Some(slot) = out.first_mut() {
            *slot = self.cls_id;
        }
        set_span(0, None);
        // Room for pieces between `[CLS]` and `[SEP]`.
        let room = capacity - 2;
        let mut written = 0usize;
        let mut pieces = 0usize;
        for (id, span) in self.word_pieces_spanned(text) {
            if written < room
                && let Some(slot) = out.get_mut(1 + written)
            {
                *slot = id;
                set_span(1 + written, Some(span));
                written += 1;
            }
            pieces += 1;
        }
        if let Some(slot) = out.get_mut(1 + written) {
            *slot = self.sep_id;
        }
        set_span(1 + written, None);
        let len = written + 2;
        let total = pieces.saturating_add(2);
        Ok(Encoding {
            len,
            total,
            truncated: total > len,
        })
    }

    /// The number of ids [`Self::encode`] gives `text` without truncation, `[CLS]` and
    /// `[SEP]` included.
    pub fn count(&self, text: &str) -> usize {
        self.word_pieces(text).count().saturating_add(2)
    }

    /// The longest special token at the start of `rest`, with its byte length.
    fn special_at(&self, rest: &str) -> Option<(u32, usize)> {
        let mut best: Option<(u32, usize)> = None;
        for &(s, id) in &self.specials {
            if !s.is_empty()
                && rest.as_bytes().starts_with(s)
                && best.is_none_or(|(_, n)| s.len() > n)
            {
                best = Some((id, s.len()));
            }
        }
        best
    }
}

/// Iterator over the WordPiece ids of a text (see [`Tokenizer::word_pieces`]).
#[derive(Debug, Clone)]
pub struct WordPieces<'a, 't> {
    tok: Tokenizer<'a>,
    /// Raw text not read yet.
    rest: &'t str,
    /// Normalised units of the last character read, not consumed yet.
    units: Units,
    /// The word being built, or being emitted when `emit_at` is set.
    word: Word,
    /// Byte offset of the next piece of a finished, valid word.
    emit_at: Option<usize>,
    /// Characters of the original text read so far (the queued units come from the last).
    chars_read: u32,
    /// Words started so far.
    words: u32,
    /// The span of the word being built or emitted.
    span: WordSpan,
    /// The span of the last piece returned.
    last: WordSpan,
}

impl WordPieces<'_, '_> {
    /// Appends a unit of the last character read to the word, starting a new word (and
    /// its span) when the word is empty.
    fn push(&mut self, c: char, class: u8) {
        let at = self.chars_read.saturating_sub(1);
        if self.word.is_empty() {
            self.span = WordSpan {
                word: self.words,
                start: at,
                end: at,
            };
            self.words = self.words.saturating_add(1);
        }
        self.span.end = self.chars_read;
        self.word.push(c, class);
    }

    /// Ends the current word: returns `[UNK]` at once for a bad word, otherwise starts
    /// emitting its pieces.
    fn finish_word(&mut self) -> Option<u32> {
        let t = &self.tok;
        let valid = self.word.chars() <= t.max_input_chars_per_word
            && self.word.bytes().is_some_and(|w| {
                let mut at = 0;
                while let Some(rest) = w.get(at..).filter(|r| !r.is_empty()) {
                    match t.vocab.longest_piece(t.prefix, rest, at == 0) {
                        Some((_, n)) => at += n,
                        None => return false,
                    }
                }
                true
            });
        if valid {
            self.emit_at = Some(0);
            None
        } else {
            self.word.clear();
            self.last = self.span;
            Some(t.unk_id)
        }
    }

    /// The next piece of the word being emitted.
    fn next_piece(&mut self, at: usize) -> u32 {
        self.last = self.span;
        let t = &self.tok;
        let step = self.word.bytes().and_then(|w| {
            Some((
                w.len(),
                t.vocab.longest_piece(t.prefix, w.get(at..)?, at == 0)?,
            ))
        });
        match step {
            Some((len, (id, n))) if at + n < len => {
                self.emit_at = Some(at + n);
                id
            }
            Some((_, (id, _))) => {
                self.emit_at = None;
                self.word.clear();
                id
            }
            // Unreachable: the word was checked by `finish_word`.
            None => {
                self.emit_at = None;
                self.word.clear();
                t.unk_id
            }
        }
    }
}

impl Iterator for WordPieces<'_, '_> {
    type Item = u32;

    fn next(&mut self) -> Option<u32> {
        loop {
            if let Some(at) = self.emit_at {
                return Some(self.next_piece(at));
            }
            if let Some(unit) = self.units.peek() {
                match unit {
                    Unit::RunBreak => self.word.break_run(),
                    Unit::Char(c, _) if c.is_whitespace() => {
                        if !self.word.is_empty()
                            && let Some(unk) = self.finish_word()
                        {
                            self.units.advance();
                            return Some(unk);
                        }
                    }
                    Unit::Char(c, class) if is_punctuation(c) => {
                        if self.word.is_empty() {
                            self.push(c, class);
                            self.units.advance();
                        }
                        // The punctuation stays queued until the word before it is done.
                        if let Some(unk) = self.finish_word() {
                            return Some(unk);
                        }
                        continue;
                    }
                    Unit::Char(c, class) => self.push(c, class),
                }
                self.units.advance();
                continue;
            }
            if let Some((id, n)) = self.tok.special_at(self.rest) {
                if !self.word.is_empty() {
                    if let Some(unk) = self.finish_word() {
                        return Some(unk);
                    }
                    continue;
                }
                let (special, rest) = self.rest.split_at_checked(n).unwrap_or((self.rest, ""));
                let start = self.chars_read;
                let len = u32::try_from(special.chars().count()).unwrap_or(u32::MAX);
                self.chars_read = start.saturating_add(len);
                self.last = WordSpan {
                    word: self.words,
                    start,
                    end: self.chars_read,
                };
                self.words = self.words.saturating_add(1);
                self.rest = rest;
                return Some(id);
            }
            let mut chars = self.rest.chars();
            match chars.next() {
                Some(c) => {
                    self.rest = chars.as_str();
                    self.chars_read = self.chars_read.saturating_add(1);
                    self.tok.normalizer.normalize(c, &mut self.units);
                }
                None => {
                    if self.word.is_empty() {
                        return None;
                    }
                    if let Some(unk) = self.finish_word() {
                        return Some(unk);
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests;
