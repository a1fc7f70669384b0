//! SentencePiece Unigram tokenizer (XLM-R, multilingual-e5): no allocation, no panics, the
//! vocabulary, scores and normaliser borrowed from a [`UnigramSection`].
//!
//! Bit-exact with Hugging Face `tokenizers` 0.22 running the `tokenizer.json` that
//! `cargo xtask fetch-model e5-small` writes (padding and truncation off), in its order:
//! 1. The special tokens (`<s>`, `<pad>`, `</s>`, `<unk>`, `<mask>`) written literally in the
//!    raw text are matched first (leftmost, longest) and give their id; the text between
//!    them is processed segment by segment.
//! 2. `Precompiled` normaliser: the charsmap, per grapheme cluster (module `precompiled`).
//! 3. `Replace(" {2,}", " ")`: runs of spaces become one.
//! 4. `Metaspace` (replacement `▁`, prepend scheme `always`, split): spaces become `▁`, a
//!    `▁` is prepended unless the segment starts with one, and the segment is split into
//!    words before every `▁`. An empty segment gives no tokens.
//! 5. `Unigram` per word: the Viterbi best segmentation over the piece scores (a later
//!    candidate replaces an earlier one only with a strictly higher score; candidates in
//!    order of start position, then length); a character that starts no single-character
//!    piece also gets an `<unk>` edge scored `min_score - 10`; consecutive `<unk>` tokens are
//!    fused into one.
//! 6. `TemplateProcessing`: `<s> $A </s>`.
//!
//! Scores are fixed point with [`UNIGRAM_SCORE_FRAC_BITS`] fraction bits, summed in i64:
//! SentencePiece's f32 scores (magnitude >= 1 or zero) are exact there, and so are the
//! oracle's f64 sums of them, so ties break identically.
//!
//! Scratch: the normalised text of a segment and one 16-byte lattice node per byte of it
//! live in a caller's `&mut [u8]` of [`UnigramTokenizer::scratch_bytes`] bytes (exact for
//! the text, linear in its length); a smaller one is [`TokenizeError::ScratchTooSmall`].
//! Piece lookups are a byte-by-byte narrowing of the sorted index (a binary search per
//! byte), so the section needs no trie of its own.

use super::Encoding;
use super::pair::{self, PairEncoding, Template};
use super::precompiled::Charsmap;
use crate::blob::{UNIGRAM_SCORE_FRAC_BITS, UnigramSection};
use crate::error::TokenizeError;

/// The Metaspace replacement `▁` (U+2581) in UTF-8.
const META: [u8; 3] = [0xE2, 0x96, 0x81];
/// Bytes of one lattice node: best score (i64), start byte (u32), piece id (u32).
const NODE: usize = 16;
/// No start: the node is not reached yet.
const NONE: u32 = u32::MAX;
/// Number of special tokens matched in the raw text.
const SPECIALS: usize = 5;

/// A SentencePiece Unigram tokenizer borrowing its data from a blob section.
#[derive(Debug, Clone, Copy)]
pub struct UnigramTokenizer<'a> {
    pieces: &'a [u8],
    offsets: &'a [u8],
    sorted_ids: &'a [u8],
    scores: &'a [u8],
    charsmap: Charsmap<'a>,
    n: usize,
    unk_id: u32,
    bos_id: u32,
    eos_id: u32,
    /// Score of an `<unk>` edge: the lowest piece score minus 10.
    unk_score: i64,
    specials: [(&'a [u8], u32); SPECIALS],
    /// `first[b]..first[b + 1]`: the ranks of the sorted index whose pieces start with byte
    /// `b` (computed once, so a lookup starts its narrowing at the second byte).
    first: [u32; 257],
    /// The pair template of [`Self::encode_pair`]: the blob's, else XLM-R's
    /// `<s> $A </s> </s> $B </s>`.
    pair_template: Template,
}

fn u32_at(bytes: &[u8], i: usize) -> Option<u32> {
    let at = i.checked_mul(4)?;
    let b = bytes.get(at..at.checked_add(4)?)?;
    Some(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
}

/// One lattice node in the scratch.
fn node(lattice: &[u8], at: usize) -> (i64, u32, u32) {
    let b = at
        .checked_mul(NODE)
        .and_then(|o| lattice.get(o..o.checked_add(NODE)?));
    match b {
        Some(b) => {
            let mut s = [0u8; 8];
            s.copy_from_slice(b.get(..8).unwrap_or(&[0; 8]));
            (
                i64::from_le_bytes(s),
                u32_at(b, 2).unwrap_or(NONE),
                u32_at(b, 3).unwrap_or(0),
            )
        }
        None => (0, NONE, 0),
    }
}

fn set_node(lattice: &mut [u8], at: usize, score: i64, start: u32, id: u32) {
    if let Some(b) = at
        .checked_mul(NODE)
        .and_then(|o| lattice.get_mut(o..o.checked_add(NODE)?))
    {
        for (dst, src) in b.iter_mut().zip(
            score
                .to_le_bytes()
                .into_iter()
                .chain(start.to_le_bytes())
                .chain(id.to_le_bytes()),
        ) {
            *dst = src;
        }
    }
}

impl<'a> UnigramTokenizer<'a> {
    /// A tokenizer over a Unigram section. The section is expected to be valid (as
    /// `blob::parse` and `blob::decode_unigram` check); an inconsistent one gives wrong ids,
    /// never a panic.
    pub fn from_section(s: UnigramSection<'a>) -> Self {
        let n = (s.offsets.len() / 4).saturating_sub(1);
        let min = (0..n)
            .filter_map(|i| u32_at(s.scores, i))
            .map(|v| i64::from(v as i32))
            .min()
            .unwrap_or(0);
        let mut t = Self {
            pieces: s.pieces,
            offsets: s.offsets,
            sorted_ids: s.sorted_ids,
            scores: s.scores,
            charsmap: Charsmap::new(s.charsmap),
            n,
            unk_id: s.unk_id,
            bos_id: s.bos_id,
            eos_id: s.eos_id,
            unk_score: min - (10i64 << UNIGRAM_SCORE_FRAC_BITS),
            specials: [(&[], 0); SPECIALS],
            first: [0; 257],
            pair_template: Template::roberta(s.bos_id, s.eos_id),
        };
        // Pieces are non-empty and sorted: count each first byte, then prefix-sum.
        let mut first = [0u32; 257];
        for i in 0..n {
            if let Some(&b) = t.sorted(i).1.first() {
                first[usize::from(b) + 1] += 1;
            }
        }
        for b in 0..256 {
            first[b + 1] += first[b];
        }
        t.first = first;
        let ids = [s.bos_id, s.pad_id, s.eos_id, s.unk_id, s.mask_id];
        let specials = ids.map(|id| (t.piece(id).unwrap_or(&[]), id));
        t.specials = specials;
        t
    }

    /// The Unigram tokenizer of a parsed model, if its blob has one (blob kind 20).
    pub fn new(model: &crate::blob::ModelView<'a>) -> Option<Self> {
        let t = model.unigram.map(Self::from_section)?;
        Some(match model.pair_template {
            Some(template) => t.with_pair_template(template),
            None => t,
        })
    }

    /// The same tokenizer with another pair template.
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

    /// Scratch bytes [`Self::encode_pair`] needs for `first` and `second` (the texts are
    /// segmented one after the other, in the same scratch).
    pub fn pair_scratch_bytes(&self, first: &str, second: &str) -> usize {
        self.scratch_bytes(first).max(self.scratch_bytes(second))
    }

    /// Writes the pair template filled with the pieces of `first` and `second` to the
    /// front of `ids`, and each id's token type to the same place in `types`, truncating
    /// with `tokenizers`' `longest_first` strategy as [`crate::Tokenizer::encode_pair`]
    /// does (a buffer of `count(first) + count(second) + 2` ids, with XLM-R's template,
    /// truncates nothing).
    ///
    /// # Errors
    /// [`TokenizeError::ScratchTooSmall`] if `scratch` is smaller than
    /// [`Self::pair_scratch_bytes`]; [`TokenizeError::BufferTooSmall`] if `ids` cannot hold
    /// the template's special tokens; [`TokenizeError::TypesTooShort`] if `types` is
    /// shorter than `ids`.
    pub fn encode_pair(
        &self,
        first: &str,
        second: &str,
        scratch: &mut [u8],
        ids: &mut [u32],
        types: &mut [u32],
    ) -> Result<PairEncoding, TokenizeError> {
        let text = |second_text: bool| if second_text { second } else { first };
        let mut n = [0usize; 2];
        for (which, count) in n.iter_mut().enumerate() {
            self.pieces_of(text(which == 1), scratch, |_| *count += 1)?;
        }
        pair::fill(
            &self.pair_template,
            ids,
            types,
            |second_text| n[usize::from(second_text)],
            |second_text, k, put| {
                let mut left = k;
                // The scratch held both texts above, so this pass cannot fail.
                let _ = self.pieces_of(text(second_text), scratch, |id| {
                    if left > 0 {
                        left -= 1;
                        put(id);
                    }
                });
            },
        )
    }

    /// Number of pieces.
    pub fn vocab_size(&self) -> usize {
        self.n
    }

    fn piece(&self, id: u32) -> Option<&'a [u8]> {
        let a = u32_at(self.offsets, id as usize)? as usize;
        let b = u32_at(self.offsets, id as usize + 1)? as usize;
        self.pieces.get(a..b)
    }

    fn score(&self, id: u32) -> i64 {
        u32_at(self.scores, id as usize).map_or(self.unk_score, |v| i64::from(v as i32))
    }

    /// The string of piece `id`, if it exists.
    pub fn id_to_token(&self, id: u32) -> Option<&'a str> {
        core::str::from_utf8(self.piece(id)?).ok()
    }

    /// The piece at rank `i` of the sorted index.
    fn sorted(&self, i: usize) -> (u32, &'a [u8]) {
        let id = u32_at(self.sorted_ids, i).unwrap_or(NONE);
        (id, self.piece(id).unwrap_or(&[]))
    }

    /// The id of the piece `token` (exact), if it is in the vocabulary.
    pub fn token_to_id(&self, token: &str) -> Option<u32> {
        let t = token.as_bytes();
        let (mut lo, mut hi) = (0, self.n);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            let (id, p) = self.sorted(mid);
            match p.cmp(t) {
                core::cmp::Ordering::Less => lo = mid + 1,
                core::cmp::Ordering::Greater => hi = mid,
                core::cmp::Ordering::Equal => return Some(id),
            }
        }
        None
    }

    /// Calls `f(len, id)` for every piece that is a prefix of `s`, shortest first.
    fn prefixes(&self, s: &[u8], mut f: impl FnMut(usize, u32)) {
        let Some(&b0) = s.first() else {
            return;
        };
        let range = |b: usize| self.first.get(b).map_or(self.n, |&r| r as usize);
        let (mut lo, mut hi) = (range(usize::from(b0)), range(usize::from(b0) + 1));
        if lo >= hi {
            return;
        }
        if let (id, p) = self.sorted(lo)
            && p.len() == 1
        {
            f(1, id);
        }
        for (k, &b) in s.iter().enumerate().skip(1) {
            // A piece of exactly k bytes in the range equals s[..k]: it sorts first.
            if lo < hi && self.sorted(lo).1.len() == k {
                lo += 1;
            }
            // Pieces in [lo, hi) are longer than k and share s[..k]: narrow on byte k.
            let byte = |i: usize| self.sorted(i).1.get(k).copied().unwrap_or(0);
            let (mut a, mut z) = (lo, hi);
            while a < z {
                let mid = a + (z - a) / 2;
                if byte(mid) < b { a = mid + 1 } else { z = mid }
            }
            lo = a;
            let mut z = hi;
            while a < z {
                let mid = a + (z - a) / 2;
                if byte(mid) <= b { a = mid + 1 } else { z = mid }
            }
            hi = a;
            if lo >= hi {
                return;
            }
            let (id, p) = self.sorted(lo);
            if p.len() == k + 1 {
                f(k + 1, id);
            }
        }
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

    /// Splits `text` at the special tokens: calls `f(Ok(segment))` for the text between
    /// them (possibly empty) and `f(Err(id))` for each special token, in order.
    fn segments(&self, text: &str, mut f: impl FnMut(Result<&str, u32>)) {
        let mut start = 0;
        let mut at = 0;
        while let Some(rest) = text.get(at..).filter(|r| !r.is_empty()) {
            if let Some((id, n)) = self.special_at(rest) {
                f(Ok(text.get(start..at).unwrap_or("")));
                f(Err(id));
                at += n;
                start = at;
            } else {
                at += rest.chars().next().map_or(1, char::len_utf8);
            }
        }
        f(Ok(text.get(start..).unwrap_or("")));
    }

    /// The normalised, Metaspace-replaced bytes of a segment (without the prepended `▁`),
    /// fed to `emit` byte by byte; returns whether it starts with `▁`.
    fn normalized_bytes(&self, segment: &str, mut emit: impl FnMut(u8)) -> bool {
        let mut last_space = false;
        let mut first: Option<bool> = None;
        self.charsmap.normalize_chars(segment, |c| {
            if c == ' ' {
                if last_space {
                    return;
                }
                last_space = true;
                META.iter().for_each(|&b| emit(b));
                first.get_or_insert(true);
                return;
            }
            last_space = false;
            let mut buf = [0u8; 4];
            let e = c.encode_utf8(&mut buf).as_bytes();
            first.get_or_insert(e == META);
            e.iter().for_each(|&b| emit(b));
        });
        first.unwrap_or(true)
    }

    /// Bytes of normalised text a segment gives, without the prepended `▁`.
    fn normalized_len(&self, segment: &str) -> usize {
        let mut n = 0usize;
        self.normalized_bytes(segment, |_| n += 1);
        n
    }

    /// Scratch bytes [`Self::encode`] and [`Self::count`] need for `text`: for its largest
    /// segment of `m` normalised bytes (before the prepended `▁`), `m + 3` of text and 16 per
    /// byte of it plus one of lattice, or 0 when every segment normalises to nothing.
    pub fn scratch_bytes(&self, text: &str) -> usize {
        let mut most = 0usize;
        self.segments(text, |s| {
            if let Ok(seg) = s {
                most = most.max(self.normalized_len(seg));
            }
        });
        if most == 0 {
            return 0;
        }
        let m = most.saturating_add(META.len());
        m.saturating_add(m.saturating_add(1).saturating_mul(NODE))
    }

    /// Writes `<s>`, the pieces of `text` and `</s>` to the front of `out`, dropping the
    /// pieces that do not fit so that `<s>` and `</s>` always do.
    ///
    /// # Errors
    /// [`TokenizeError::BufferTooSmall`] if `out` cannot hold two ids;
    /// [`TokenizeError::ScratchTooSmall`] if `scratch` is smaller than
    /// [`Self::scratch_bytes`] of `text`.
    pub fn encode(
        &self,
        text: &str,
        scratch: &mut [u8],
        out: &mut [u32],
    ) -> Result<Encoding, TokenizeError> {
        let capacity = out.len();
        if capacity < 2 {
            return Err(TokenizeError::BufferTooSmall {
                capacity,
                needed: 2,
            });
        }
        if let Some(slot) = out.first_mut() {
            *slot = self.bos_id;
        }
        let room = capacity - 2;
        let mut written = 0usize;
        let mut pieces = 0usize;
        self.pieces_of(text, scratch, |id| {
            if written < room
                && let Some(slot) = out.get_mut(1 + written)
            {
                *slot = id;
                written += 1;
            }
            pieces += 1;
        })?;
        if let Some(slot) = out.get_mut(1 + written) {
            *slot = self.eos_id;
        }
        let len = written + 2;
        let total = pieces.saturating_add(2);
        Ok(Encoding {
            len,
            total,
            truncated: total > len,
        })
    }

    /// The number of ids [`Self::encode`] gives `text` without truncation, `<s>` and `</s>`
    /// included.
    ///
    /// # Errors
    /// [`TokenizeError::ScratchTooSmall`] as for [`Self::encode`].
    pub fn count(&self, text: &str, scratch: &mut [u8]) -> Result<usize, TokenizeError> {
        let mut n = 0usize;
        self.pieces_of(text, scratch, |_| n += 1)?;
        Ok(n.saturating_add(2))
    }

    /// Feeds the piece ids of `text` (no `<s>`/`</s>`) to `emit`, in order.
    ///
    /// # Errors
    /// [`TokenizeError::ScratchTooSmall`] as for [`Self::encode`].
    pub fn pieces_of(
        &self,
        text: &str,
        scratch: &mut [u8],
        mut emit: impl FnMut(u32),
    ) -> Result<(), TokenizeError> {
        let needed = self.scratch_bytes(text);
        if scratch.len() < needed {
            return Err(TokenizeError::ScratchTooSmall {
                capacity: scratch.len(),
                needed,
            });
        }
        self.segments(text, |s| match s {
            Err(id) => emit(id),
            Ok(seg) => self.segment(seg, scratch, &mut emit),
        });
        Ok(())
    }

    /// The pieces of one segment (scratch checked by the caller).
    fn segment(&self, seg: &str, scratch: &mut [u8], emit: &mut impl FnMut(u32)) {
        // The normalised bytes after room for a `▁`, which is written if they do not start
        // with one. The caller checked that the scratch holds `m + 3` bytes and the lattice.
        let room = scratch
            .len()
            .saturating_sub(NODE)
            .checked_div(NODE + 1)
            .unwrap_or(0);
        let (text, lattice) = scratch.split_at_mut(room.min(scratch.len()));
        let mut at = META.len();
        let starts = self.normalized_bytes(seg, |b| {
            if let Some(slot) = text.get_mut(at) {
                *slot = b;
            }
            at += 1;
        });
        if at == META.len() {
            return;
        }
        let from = if starts {
            META.len()
        } else {
            for (slot, &b) in text.iter_mut().zip(&META) {
                *slot = b;
            }
            0
        };
        let text: &[u8] = text.get(from..at.min(text.len())).unwrap_or_default();
        // Words start at every `▁` but the first byte.
        let mut start = 0usize;
        let mut i = 1usize;
        while i <= text.len() {
            if i == text.len() || text.get(i..i + 3) == Some(&META[..]) {
                if let Some(word) = text.get(start..i) {
                    self.viterbi(word, lattice, emit);
                }
                start = i;
            }
            i += 1;
        }
    }

    /// The best segmentation of one word, its ids fed to `emit` in order.
    fn viterbi(&self, word: &[u8], lattice: &mut [u8], emit: &mut impl FnMut(u32)) {
        let len = word.len();
        for at in 0..=len {
            set_node(lattice, at, 0, NONE, 0);
        }
        let mut pos = 0usize;
        while pos < len {
            let here = node(lattice, pos).0;
            // UTF-8 length of the character at `pos`.
            let lead = word.get(pos).copied().unwrap_or(0);
            let mblen = match lead {
                0..0x80 => 1,
                0xC0..0xE0 => 2,
                0xE0..0xF0 => 3,
                _ => 4,
            };
            let mut single = false;
            let rest = word.get(pos..).unwrap_or_default();
            self.prefixes(rest, |n, id| {
                let cand = here.saturating_add(self.score(id));
                let (best, from, _) = node(lattice, pos + n);
                if from == NONE || cand > best {
                    set_node(lattice, pos + n, cand, pos as u32, id);
                }
                single |= n == mblen;
            });
            if !single {
                let cand = here.saturating_add(self.unk_score);
                let (best, from, _) = node(lattice, pos + mblen);
                if from == NONE || cand > best {
                    set_node(lattice, pos + mblen, cand, pos as u32, self.unk_id);
                }
            }
            pos += mblen;
        }
        // Reverse the best path's links in place (each node's start becomes the end of
        // the next node), then walk it forwards, fusing runs of `<unk>`.
        let mut end = len;
        let mut next = NONE;
        while end > 0 {
            let (score, from, id) = node(lattice, end);
            set_node(lattice, end, score, next, id);
            next = end as u32;
            if from == NONE || from as usize >= end {
                break;
            }
            end = from as usize;
        }
        let mut last_unk = false;
        while next != NONE {
            let (_, after, id) = node(lattice, next as usize);
            let unk = id == self.unk_id;
            if !(unk && last_unk) {
                emit(id);
            }
            last_unk = unk;
            next = after;
        }
    }
}
