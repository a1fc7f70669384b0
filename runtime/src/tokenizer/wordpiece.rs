//! The vocabulary (binary search over the blob's sorted index), the fixed word buffer and
//! WordPiece's greedy longest-match-first split, as in Hugging Face `tokenizers` 0.22
//! `models::wordpiece::WordPiece::tokenize`.

use core::cmp::Ordering;

use super::normalize::combining_class;
use crate::blob::TokenizerSection;

/// Bytes of the word buffer. A word longer than this is `[UNK]`; with the usual
/// `max_input_chars_per_word = 100` (at most 400 bytes of UTF-8) the limit never binds
/// before the reference's own one does.
pub const MAX_WORD_BYTES: usize = 512;

/// `u32` little-endian number `i` of `bytes`.
fn u32_at(bytes: &[u8], i: usize) -> Option<u32> {
    let start = i.checked_mul(4)?;
    let b = bytes.get(start..start.checked_add(4)?)?;
    Some(u32::from_le_bytes(b.try_into().ok()?))
}

/// Compares `token` with the concatenation `a ++ b`, bytewise.
fn cmp_concat(token: &[u8], a: &[u8], b: &[u8]) -> Ordering {
    match token.split_at_checked(a.len()) {
        Some((head, tail)) => head.cmp(a).then_with(|| tail.cmp(b)),
        // `token` is shorter than `a`: the first bytes decide, or it is a proper prefix.
        None => token
            .cmp(a.get(..token.len()).unwrap_or(a))
            .then(Ordering::Less),
    }
}

/// The vocabulary of a [`TokenizerSection`].
#[derive(Debug, Clone, Copy)]
pub(super) struct Vocab<'a> {
    tokens: &'a [u8],
    offsets: &'a [u8],
    sorted_ids: &'a [u8],
    size: usize,
}

impl<'a> Vocab<'a> {
    pub(super) fn new(s: &TokenizerSection<'a>) -> Self {
        Self {
            tokens: s.tokens,
            offsets: s.offsets,
            sorted_ids: s.sorted_ids,
            size: (s.sorted_ids.len() / 4).min((s.offsets.len() / 4).saturating_sub(1)),
        }
    }

    /// The bytes of token `id`.
    pub(super) fn token(&self, id: u32) -> Option<&'a [u8]> {
        let i = usize::try_from(id).ok()?;
        if i >= self.size {
            return None;
        }
        let a = usize::try_from(u32_at(self.offsets, i)?).ok()?;
        let b = usize::try_from(u32_at(self.offsets, i + 1)?).ok()?;
        self.tokens.get(a..b)
    }

    /// The id of the token whose bytes are `prefix ++ piece`.
    pub(super) fn find(&self, prefix: &[u8], piece: &[u8]) -> Option<u32> {
        let (mut lo, mut hi) = (0usize, self.size);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            let id = u32_at(self.sorted_ids, mid)?;
            match cmp_concat(self.token(id)?, prefix, piece) {
                Ordering::Less => lo = mid + 1,
                Ordering::Greater => hi = mid,
                Ordering::Equal => return Some(id),
            }
        }
        None
    }

    /// The longest vocabulary piece at the start of `rest` (`prefix` prepended unless
    /// `first`), as its id and byte length; shortens `rest` one character at a time.
    pub(super) fn longest_piece(
        &self,
        prefix: &[u8],
        rest: &[u8],
        first: bool,
    ) -> Option<(u32, usize)> {
        let prefix: &[u8] = if first { &[] } else { prefix };
        let mut end = rest.len();
        while end > 0 {
            let piece = rest.get(..end)?;
            if let Some(id) = self.find(prefix, piece) {
                return Some((id, end));
            }
            // Back to the previous character boundary.
            end -= 1;
            while end > 0 && rest.get(end).is_some_and(|b| b & 0xC0 == 0x80) {
                end -= 1;
            }
        }
        None
    }
}

/// The word being built from normalised characters, in a fixed buffer.
#[derive(Debug, Clone)]
pub(super) struct Word {
    bytes: [u8; MAX_WORD_BYTES],
    len: usize,
    /// Characters pushed, including those that did not fit.
    chars: usize,
    /// Some character did not fit in `bytes`.
    overflow: bool,
    /// Start of the current run of non-starters (for canonical reordering).
    run_start: usize,
}

impl Word {
    pub(super) const fn new() -> Self {
        Self {
            bytes: [0; MAX_WORD_BYTES],
            len: 0,
            chars: 0,
            overflow: false,
            run_start: 0,
        }
    }

    pub(super) fn is_empty(&self) -> bool {
        self.chars == 0
    }

    pub(super) fn clear(&mut self) {
        self.len = 0;
        self.chars = 0;
        self.overflow = false;
        self.run_start = 0;
    }

    /// The word's bytes, or `None` when it overflowed the buffer.
    pub(super) fn bytes(&self) -> Option<&[u8]> {
        if self.overflow {
            None
        } else {
            self.bytes.get(..self.len)
        }
    }

    /// Characters in the word.
    pub(super) fn chars(&self) -> usize {
        self.chars
    }

    /// Ends the current run of non-starters.
    pub(super) fn break_run(&mut self) {
        self.run_start = self.len;
    }

    /// Appends `c`; a non-starter (`class != 0`) is instead inserted after the characters
    /// of the current run whose class is not greater (NFD's stable canonical ordering).
    pub(super) fn push(&mut self, c: char, class: u8) {
        self.chars = self.chars.saturating_add(1);
        if self.overflow {
            return;
        }
        let mut utf8 = [0u8; 4];
        let enc = c.encode_utf8(&mut utf8).as_bytes();
        let n = enc.len();
        let Some(dst) = self.bytes.get_mut(self.len..self.len + n) else {
            self.overflow = true;
            return;
        };
        dst.copy_from_slice(enc);
        let old_len = self.len;
        self.len += n;
        if class == 0 {
            self.run_start = self.len;
            return;
        }
        // Characters after `run_start` are all non-starters: find the first of higher class.
        let insert_at = self
            .bytes
            .get(self.run_start..old_len)
            .and_then(|run| core::str::from_utf8(run).ok())
            .and_then(|run| {
                run.char_indices()
                    .find(|&(_, ch)| combining_class(ch) > class)
                    .map(|(i, _)| self.run_start + i)
            });
        if let Some(region) = insert_at.and_then(|at| self.bytes.get_mut(at..self.len)) {
            region.rotate_right(n);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn concat_order_matches_concatenated_bytes() {
        let cases: [(&[u8], &[u8], &[u8]); 8] = [
            (b"##ab", b"##", b"ab"),
            (b"##a", b"##", b"ab"),
            (b"##b", b"##", b"ab"),
            (b"#", b"##", b"ab"),
            (b"$", b"##", b"ab"),
            (b"", b"##", b"ab"),
            (b"ab", b"", b"ab"),
            (b"abc", b"", b"ab"),
        ];
        for (t, a, b) in cases {
            let mut key = heapless::Vec::<u8, 8>::new();
            key.extend_from_slice(a).unwrap();
            key.extend_from_slice(b).unwrap();
            assert_eq!(cmp_concat(t, a, b), t.cmp(&key[..]), "{t:?} vs {a:?}+{b:?}");
        }
    }

    #[test]
    fn word_reorders_non_starters_stably() {
        let mut w = Word::new();
        w.push('a', 0);
        w.push('\u{1D16D}', 226);
        w.push('\u{1D165}', 216);
        w.push('\u{1D166}', 216);
        let s = core::str::from_utf8(w.bytes().unwrap()).unwrap();
        let v: heapless::Vec<char, 8> = s.chars().collect();
        assert_eq!(v, ['a', '\u{1D165}', '\u{1D166}', '\u{1D16D}']);
        assert_eq!(w.chars(), 4);
        // A run break stops the reordering.
        w.break_run();
        w.push('\u{1D165}', 216);
        let s = core::str::from_utf8(w.bytes().unwrap()).unwrap();
        assert!(s.ends_with("\u{1D16D}\u{1D165}"));
    }

    #[test]
    fn word_overflow_is_reported() {
        let mut w = Word::new();
        for _ in 0..MAX_WORD_BYTES / 4 {
            w.push('😀', 0);
        }
        assert!(w.bytes().is_some());
        w.push('a', 0);
        assert!(w.bytes().is_none());
        assert_eq!(w.chars(), MAX_WORD_BYTES / 4 + 1);
        w.clear();
        assert!(w.is_empty() && w.bytes() == Some(&[][..]));
    }
}
