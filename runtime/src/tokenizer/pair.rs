//! Sentence pairs: the checkpoint's pair template and Hugging Face's `longest_first`
//! truncation, without allocation.
//!
//! A [`Template`] is what `tokenizers` calls a post-processor: a short list of pieces, each
//! the first sequence, the second sequence or one special token, with the token type every
//! id of that piece gets. BERT's (`BertProcessing`) is `[CLS]:0 $A:0 [SEP]:0 $B:1 [SEP]:1`;
//! RoBERTa / XLM-R's (`RobertaProcessing`) is `<s>:0 $A:0 </s>:0 </s>:0 $B:0 </s>:0`. The
//! template is data, not code, so a tokenizer of another family only supplies its own
//! ([`Tokenizer::with_pair_template`]).
//!
//! [`Tokenizer::encode_pair`] reads each text twice: once to count its pieces, once to
//! write the pieces kept. Truncation follows `tokenizers` 0.22
//! (`utils::truncation::truncate_encodings`, `TruncationStrategy::LongestFirst`, stride 0,
//! from the right): the budget is the buffer's length minus the template's special tokens;
//! with `n1 <= n2` the two lengths, nothing is cut when `n1 + n2` fits; otherwise the longer
//! one is cut to `max(n1, budget - n1)`, and when that still does not fit both are cut, the
//! first sequence to `budget / 2` and the second to `budget / 2 + budget % 2` (the longer
//! sequence gets the odd piece when the first is the longer one).

use super::Tokenizer;
use crate::error::TokenizeError;

/// The most pieces a [`Template`] holds (XLM-R's pair template has six).
pub const MAX_TEMPLATE_PIECES: usize = 8;

/// What one piece of a [`Template`] stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Piece {
    /// The first sequence's word pieces (`$A`).
    First,
    /// The second sequence's word pieces (`$B`).
    Second,
    /// One special token, by id.
    Special(u32),
}

/// One piece of a template and the token type of its ids.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct TemplatePiece {
    /// What the piece is.
    pub piece: Piece,
    /// The token type (segment id) of every id it gives.
    pub type_id: u32,
}

/// A pair template: `$A` and `$B` exactly once each, `$A` first, and special tokens.
///
/// Stored packed, one u32 per piece (2 bits of kind, 8 of token type, 22 of id: ids are
/// below 2^22 like every vocabulary a blob holds), so a [`Tokenizer`] stays small: the
/// word-piece iterator carries a copy of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Template {
    pieces: [u32; MAX_TEMPLATE_PIECES],
    len: u8,
}

/// Bits of a packed piece's id.
const ID_BITS: u32 = 22;

fn pack(p: TemplatePiece) -> u32 {
    let (kind, id) = match p.piece {
        Piece::First => (0, 0),
        Piece::Second => (1, 0),
        Piece::Special(id) => (2, id),
    };
    (kind << 30) | ((p.type_id & 0xFF) << ID_BITS) | (id & ((1 << ID_BITS) - 1))
}

fn unpack(x: u32) -> TemplatePiece {
    let piece = match x >> 30 {
        0 => Piece::First,
        1 => Piece::Second,
        _ => Piece::Special(x & ((1 << ID_BITS) - 1)),
    };
    TemplatePiece {
        piece,
        type_id: (x >> ID_BITS) & 0xFF,
    }
}

impl Template {
    /// A template of `pieces`.
    ///
    /// # Errors
    /// [`TokenizeError::BadTemplate`] when it has more than [`MAX_TEMPLATE_PIECES`] pieces,
    /// `$A` or `$B` is missing, repeated or out of order, a token type is above 255 or a
    /// special token's id is not below 2^22.
    pub fn new(pieces: &[TemplatePiece]) -> Result<Self, TokenizeError> {
        if pieces.len() > MAX_TEMPLATE_PIECES {
            return Err(TokenizeError::BadTemplate {
                reason: "more pieces than MAX_TEMPLATE_PIECES",
            });
        }
        if pieces.iter().any(|p| {
            p.type_id > 0xFF || matches!(p.piece, Piece::Special(id) if id >= 1 << ID_BITS)
        }) {
            return Err(TokenizeError::BadTemplate {
                reason: "a token type above 255 or a special id not below 2^22",
            });
        }
        let at = |p: Piece| {
            let mut found = pieces.iter().enumerate().filter(|(_, x)| x.piece == p);
            match (found.next(), found.next()) {
                (Some((i, _)), None) => Ok(i),
                _ => Err(TokenizeError::BadTemplate {
                    reason: "the first and the second sequence must each appear exactly once",
                }),
            }
        };
        if at(Piece::First)? > at(Piece::Second)? {
            return Err(TokenizeError::BadTemplate {
                reason: "the first sequence must come before the second",
            });
        }
        Ok(Self::filled(pieces))
    }

    /// The pieces (at most [`MAX_TEMPLATE_PIECES`], checked by the callers), packed.
    fn filled(pieces: &[TemplatePiece]) -> Self {
        let mut out = [0u32; MAX_TEMPLATE_PIECES];
        for (o, p) in out.iter_mut().zip(pieces) {
            *o = pack(*p);
        }
        Self {
            pieces: out,
            len: pieces.len().min(MAX_TEMPLATE_PIECES) as u8,
        }
    }

    /// BERT's pair template (`BertProcessing`): `[CLS] $A [SEP]` of type 0, then
    /// `$B [SEP]` of type 1.
    pub fn bert(cls_id: u32, sep_id: u32) -> Self {
        let p = |piece, type_id| TemplatePiece { piece, type_id };
        let pieces = [
            p(Piece::Special(cls_id), 0),
            p(Piece::First, 0),
            p(Piece::Special(sep_id), 0),
            p(Piece::Second, 1),
            p(Piece::Special(sep_id), 1),
        ];
        Self::filled(&pieces)
    }

    /// RoBERTa's and XLM-R's pair template (`RobertaProcessing`):
    /// `<s> $A </s> </s> $B </s>`, every token of type 0.
    pub fn roberta(bos_id: u32, eos_id: u32) -> Self {
        let p = |piece| TemplatePiece { piece, type_id: 0 };
        let pieces = [
            p(Piece::Special(bos_id)),
            p(Piece::First),
            p(Piece::Special(eos_id)),
            p(Piece::Special(eos_id)),
            p(Piece::Second),
            p(Piece::Special(eos_id)),
        ];
        Self::filled(&pieces)
    }

    /// The pieces, in order.
    pub fn pieces(&self) -> impl Iterator<Item = TemplatePiece> + '_ {
        self.pieces
            .get(..usize::from(self.len))
            .unwrap_or_default()
            .iter()
            .map(|&x| unpack(x))
    }

    /// The number of special tokens the template adds.
    pub fn added(&self) -> usize {
        self.pieces()
            .filter(|p| matches!(p.piece, Piece::Special(_)))
            .count()
    }
}

/// What [`Tokenizer::encode_pair`] wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PairEncoding {
    /// Ids (and token types) written to the front of the buffers, special tokens included.
    pub len: usize,
    /// Ids the pair gives without truncation, special tokens included.
    pub total: usize,
    /// Word pieces kept of the first text, and how many it has.
    pub first: (usize, usize),
    /// Word pieces kept of the second text, and how many it has.
    pub second: (usize, usize),
    /// Whether pieces were dropped to fit the buffer (`total > len`).
    pub truncated: bool,
}

/// `tokenizers`' `longest_first` lengths for sequences of `n1` and `n2` pieces and a
/// budget of `max` pieces (see the module docs).
pub fn longest_first(n1: usize, n2: usize, max: usize) -> (usize, usize) {
    if n1.saturating_add(n2) <= max {
        return (n1, n2);
    }
    let swap = n1 > n2;
    let (mut short, mut long) = if swap { (n2, n1) } else { (n1, n2) };
    long = if short > max {
        short
    } else {
        long.min(short.max(max - short))
    };
    if short.saturating_add(long) > max {
        short = max / 2;
        long = short + max % 2;
    }
    let (a, b) = if swap { (long, short) } else { (short, long) };
    (a.min(n1), b.min(n2))
}

impl Tokenizer<'_> {
    /// The same tokenizer with another pair template (by default the blob's pair-template
    /// section, else BERT's from the vocabulary's `[CLS]` and `[SEP]`).
    pub fn with_pair_template(self, template: Template) -> Self {
        Self {
            pair_template: template,
            ..self
        }
    }

    /// The pair template [`Self::encode_pair`] uses.
    pub fn pair_template(&self) -> &Template {
        &self.pair_template
    }

    /// The number of ids [`Self::encode_pair`] gives `first` and `second` without
    /// truncation, special tokens included.
    pub fn count_pair(&self, first: &str, second: &str) -> usize {
        self.word_pieces(first)
            .count()
            .saturating_add(self.word_pieces(second).count())
            .saturating_add(self.pair_template.added())
    }

    /// Writes the pair template filled with the pieces of `first` and `second` to the
    /// front of `ids`, and each id's token type to the same place in `types`, truncating
    /// the pieces with `tokenizers`' `longest_first` strategy so that the whole fits in
    /// `ids` (give a buffer of [`Self::count_pair`] ids for no truncation).
    ///
    /// # Errors
    /// [`TokenizeError::BufferTooSmall`] if `ids` cannot hold the template's special
    /// tokens; [`TokenizeError::TypesTooShort`] if `types` is shorter than `ids`.
    pub fn encode_pair(
        &self,
        first: &str,
        second: &str,
        ids: &mut [u32],
        types: &mut [u32],
    ) -> Result<PairEncoding, TokenizeError> {
        if !self.wordpiece {
            return Err(TokenizeError::NotWordPiece);
        }
        fill(
            &self.pair_template,
            ids,
            types,
            |which| self.word_pieces(pick(which, first, second)).count(),
            |which, k, put| {
                self.word_pieces(pick(which, first, second))
                    .take(k)
                    .for_each(put)
            },
        )
    }
}

/// The first text (`false`) or the second (`true`).
fn pick<'t>(second: bool, a: &'t str, b: &'t str) -> &'t str {
    if second { b } else { a }
}

/// Fills `template` into the front of `ids` and `types`, truncating with
/// [`longest_first`]: `count(second)` is the number of pieces of the first (`false`) or the
/// second (`true`) text, `pieces(second, k, put)` feeds its first `k` piece ids to `put`.
/// What every tokenizer's `encode_pair` shares.
///
/// # Errors
/// [`TokenizeError::BufferTooSmall`] if `ids` cannot hold the template's special tokens;
/// [`TokenizeError::TypesTooShort`] if `types` is shorter than `ids`.
pub(super) fn fill(
    template: &Template,
    ids: &mut [u32],
    types: &mut [u32],
    mut count: impl FnMut(bool) -> usize,
    mut pieces: impl FnMut(bool, usize, &mut dyn FnMut(u32)),
) -> Result<PairEncoding, TokenizeError> {
    let capacity = ids.len();
    let added = template.added();
    if capacity < added {
        return Err(TokenizeError::BufferTooSmall {
            capacity,
            needed: added,
        });
    }
    if types.len() < capacity {
        return Err(TokenizeError::TypesTooShort {
            ids: capacity,
            types: types.len(),
        });
    }
    let (n1, n2) = (count(false), count(true));
    let (k1, k2) = longest_first(n1, n2, capacity - added);
    let mut at = 0usize;
    for p in template.pieces() {
        let mut put = |id: u32| {
            if let (Some(i), Some(t)) = (ids.get_mut(at), types.get_mut(at)) {
                *i = id;
                *t = p.type_id;
                at += 1;
            }
        };
        match p.piece {
            Piece::Special(id) => put(id),
            Piece::First => pieces(false, k1, &mut put),
            Piece::Second => pieces(true, k2, &mut put),
        }
    }
    let total = n1.saturating_add(n2).saturating_add(added);
    let len = k1 + k2 + added;
    Ok(PairEncoding {
        len,
        total,
        first: (k1, n1),
        second: (k2, n2),
        truncated: total > len,
    })
}

#[cfg(test)]
mod tests {
    extern crate alloc;
    use super::*;
    use alloc::vec::Vec;

    /// `tokenizers`' code, transcribed literally (with `usize` underflow avoided the same
    /// way it avoids it), against the closed form above.
    fn reference(n1: usize, n2: usize, max: usize) -> (usize, usize) {
        if n1 + n2 <= max {
            return (n1, n2);
        }
        let (mut a, mut b) = (n1, n2);
        let swap = a > b;
        if swap {
            core::mem::swap(&mut a, &mut b);
        }
        b = if a > max { a } else { a.max(max - a) };
        if a + b > max {
            a = max / 2;
            b = a + max % 2;
        }
        if swap {
            core::mem::swap(&mut a, &mut b);
        }
        (a.min(n1), b.min(n2))
    }

    #[test]
    fn longest_first_matches_the_reference_transcription() {
        for max in 0..40 {
            for n1 in 0..60 {
                for n2 in 0..60 {
                    let got = longest_first(n1, n2, max);
                    assert_eq!(got, reference(n1, n2, max), "{n1} {n2} {max}");
                    assert!(got.0 + got.1 <= max && got.0 <= n1 && got.1 <= n2);
                }
            }
        }
        assert_eq!(longest_first(10, 3, 9), (6, 3));
        assert_eq!(longest_first(10, 10, 9), (4, 5));
        assert_eq!(longest_first(11, 10, 9), (5, 4));
    }

    #[test]
    fn templates_are_checked() {
        let p = |piece| TemplatePiece { piece, type_id: 0 };
        assert!(Template::new(&[p(Piece::First), p(Piece::Second)]).is_ok());
        assert!(Template::new(&[p(Piece::Second), p(Piece::First)]).is_err());
        assert!(Template::new(&[p(Piece::First)]).is_err());
        assert!(Template::new(&[p(Piece::First), p(Piece::Second), p(Piece::Second)]).is_err());
        assert!(Template::new(&[p(Piece::Special(1)); 9]).is_err());
        let bert = Template::bert(101, 102);
        assert_eq!(bert.added(), 3);
        let pieces: Vec<TemplatePiece> = bert.pieces().collect();
        assert_eq!(
            pieces[3],
            TemplatePiece {
                piece: Piece::Second,
                type_id: 1
            }
        );
        assert_eq!(Template::new(&pieces), Ok(bert));
        let roberta = Template::roberta(0, 2);
        assert_eq!(roberta.added(), 4);
        let pieces: Vec<TemplatePiece> = roberta.pieces().collect();
        assert_eq!(Template::new(&pieces), Ok(roberta));
        let big = TemplatePiece {
            piece: Piece::Special(1 << 22),
            type_id: 0,
        };
        assert!(Template::new(&[p(Piece::First), p(Piece::Second), big]).is_err());
    }
}
