//! SentencePiece's precompiled normaliser (`precompiled_charsmap`), read in place.
//!
//! The charsmap is a u32 LE byte length, a double-array trie in darts-clone's unit layout
//! (u32 LE units: bits 0-7 the label, bit 8 "has a leaf", bit 9 the offset's scale, bits
//! 10-31 the offset XORed into the position; a leaf unit holds its value in bits 0-30 and
//! sets bit 31) over the UTF-8 bytes of the keys, then a pool of NUL-terminated UTF-8
//! replacement strings that the trie's values index.
//!
//! [`Charsmap::transform`] is the lookup of Hugging Face `tokenizers` 0.22
//! (`spm_precompiled` 0.1.4), which the oracle runs: the *first* (shortest) key that is a
//! prefix of the chunk gives the replacement, whether or not it covers the whole chunk.
//! [`Charsmap::normalize_chars`] applies it the way `tokenizers`' `Precompiled` normaliser
//! does: per extended grapheme cluster, a cluster of fewer than 6 bytes is looked up whole
//! (so a mapped first character replaces the entire cluster), otherwise (and when the cluster
//! has no match) each character is looked up alone. Every array access is bounds-checked: a
//! damaged trie gives other text, never a panic.

use unicode_segmentation::UnicodeSegmentation;

/// A borrowed precompiled charsmap.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Charsmap<'a> {
    /// The trie units (u32 LE).
    trie: &'a [u8],
    /// The replacement strings.
    pool: &'a [u8],
}

const LEAF_BIT: u32 = 1 << 31;

fn label(unit: u32) -> u32 {
    unit & (LEAF_BIT | 0xFF)
}

fn has_leaf(unit: u32) -> bool {
    (unit >> 8) & 1 == 1
}

fn offset(unit: u32) -> usize {
    ((unit >> 10) as usize) << ((unit & (1 << 9)) >> 6)
}

fn value(unit: u32) -> usize {
    (unit & !LEAF_BIT) as usize
}

impl<'a> Charsmap<'a> {
    /// The charsmap in `bytes` (an empty trie if the length prefix does not fit: the blob
    /// validation refuses such a section).
    pub(crate) fn new(bytes: &'a [u8]) -> Self {
        let len = bytes
            .get(..4)
            .map_or(0, |b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize);
        let rest = bytes.get(4..).unwrap_or_default();
        let (trie, pool) = rest.split_at_checked(len).unwrap_or((&[], &[]));
        Self { trie, pool }
    }

    fn unit(&self, i: usize) -> Option<u32> {
        let at = i.checked_mul(4)?;
        let b = self.trie.get(at..at.checked_add(4)?)?;
        Some(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    /// The replacement of the shortest key that prefixes `chunk` (stopping at a NUL byte).
    pub(crate) fn transform(&self, chunk: &[u8]) -> Option<&'a str> {
        let mut node = offset(self.unit(0)?);
        for &c in chunk {
            if c == 0 {
                break;
            }
            node ^= usize::from(c);
            let unit = self.unit(node)?;
            if label(unit) != u32::from(c) {
                return None;
            }
            node ^= offset(unit);
            if has_leaf(unit) {
                let at = value(self.unit(node)?);
                let tail = self.pool.get(at..)?;
                let end = tail.iter().position(|&b| b == 0).unwrap_or(tail.len());
                return core::str::from_utf8(tail.get(..end)?).ok();
            }
        }
        None
    }

    /// Feeds the normalised characters of `text` to `emit`, in order.
    pub(crate) fn normalize_chars(&self, text: &str, mut emit: impl FnMut(char)) {
        for grapheme in text.graphemes(true) {
            if grapheme.len() < 6
                && let Some(rep) = self.transform(grapheme.as_bytes())
            {
                rep.chars().for_each(&mut emit);
                continue;
            }
            let mut buf = [0u8; 4];
            for c in grapheme.chars() {
                match self.transform(c.encode_utf8(&mut buf).as_bytes()) {
                    Some(rep) => rep.chars().for_each(&mut emit),
                    None => emit(c),
                }
            }
        }
    }
}
