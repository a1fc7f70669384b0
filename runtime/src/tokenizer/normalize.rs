//! BERT normalisation of one input character at a time, bit-exact with Hugging Face
//! `tokenizers` 0.22 `BertNormalizer`.
//!
//! The reference runs four whole-string passes in this order: clean text (drop NUL, U+FFFD
//! and `is_other()` characters except `\t \n \r`, map whitespace to a space), isolate CJK
//! ideographs with spaces, strip accents (NFD, then drop category Mn) and lowercase
//! (`char::to_lowercase`). Every pass but NFD maps one character to a few, so they compose
//! per character. NFD also reorders each run of non-starters (combining class != 0) by
//! class; after stripping Mn only a few such characters survive (e.g. U+1D165, class
//! 216), so the reorder is done later, inside the word buffer, from the [`Unit`]s produced
//! here (see `wordpiece::Word`). A dropped Mn *starter* still ends such a run, so it is
//! passed on as [`Unit::RunBreak`].
//!
//! Character classes and decompositions come from the generated [`unicode_tables`]
//! (Unicode 9.0 as in the crates `tokenizers` uses); whitespace and lowercase come from
//! `core`, as in the reference.
//!
//! [`unicode_tables`]: super::unicode_tables

use super::unicode_tables as t;

/// One normalised character, or the end of a run of non-starters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Unit {
    /// A character and its canonical combining class (0 unless accents are stripped).
    Char(char, u8),
    /// A dropped non-spacing mark of class 0: the run of non-starters ends here.
    RunBreak,
}

/// Most units one input character can produce: a CJK ideograph gives space, up to
/// `MAX_DECOMPOSITION` characters lowercased into up to 3 each, space.
pub(super) const MAX_UNITS: usize = 2 + 3 * t::MAX_DECOMPOSITION;

/// A small FIFO of the units produced by one input character.
#[derive(Debug, Clone)]
pub(super) struct Units {
    buf: [Unit; MAX_UNITS],
    len: usize,
    pos: usize,
}

impl Units {
    pub(super) const fn new() -> Self {
        Self {
            buf: [Unit::RunBreak; MAX_UNITS],
            len: 0,
            pos: 0,
        }
    }

    /// The next unit without consuming it.
    pub(super) fn peek(&self) -> Option<Unit> {
        if self.pos < self.len {
            self.buf.get(self.pos).copied()
        } else {
            None
        }
    }

    /// Consumes the unit returned by [`Self::peek`].
    pub(super) fn advance(&mut self) {
        self.pos = self.pos.saturating_add(1).min(self.len);
    }

    fn clear(&mut self) {
        self.len = 0;
        self.pos = 0;
    }

    fn push(&mut self, u: Unit) {
        // MAX_UNITS is an upper bound (checked by the generator), so nothing is ever dropped.
        if let Some(slot) = self.buf.get_mut(self.len) {
            *slot = u;
            self.len += 1;
        }
    }
}

/// The four switches of `BertNormalizer`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Normalizer {
    pub(super) clean_text: bool,
    pub(super) handle_chinese_chars: bool,
    pub(super) strip_accents: bool,
    pub(super) lowercase: bool,
}

impl Normalizer {
    /// Replaces the contents of `out` by the normalisation of `c`.
    pub(super) fn normalize(&self, c: char, out: &mut Units) {
        out.clear();
        let mut c = c;
        if self.clean_text {
            if c == '\0' || c == '\u{FFFD}' || is_control(c) {
                return;
            }
            if is_whitespace(c) {
                c = ' ';
            }
        }
        if self.handle_chinese_chars && is_chinese_char(c) {
            self.strip_and_lower(' ', out);
            self.strip_and_lower(c, out);
            self.strip_and_lower(' ', out);
        } else {
            self.strip_and_lower(c, out);
        }
    }

    fn strip_and_lower(&self, c: char, out: &mut Units) {
        if self.strip_accents {
            decompose(c, |d| {
                let class = combining_class(d);
                if is_mark_nonspacing(d) {
                    if class == 0 {
                        out.push(Unit::RunBreak);
                    }
                } else {
                    self.lower(d, class, out);
                }
            });
        } else {
            self.lower(c, 0, out);
        }
    }

    fn lower(&self, c: char, class: u8, out: &mut Units) {
        if self.lowercase {
            for l in c.to_lowercase() {
                out.push(Unit::Char(l, class));
            }
        } else {
            out.push(Unit::Char(c, class));
        }
    }
}

/// Whitespace as BERT's cleaning sees it (`\t`, `\n`, `\r` and `char::is_whitespace`).
fn is_whitespace(c: char) -> bool {
    c.is_whitespace()
}

/// BERT's "control" characters: `is_other()` (Cc, Cf, Co) except `\t`, `\n`, `\r`.
pub(super) fn is_control(c: char) -> bool {
    match c {
        '\t' | '\n' | '\r' => false,
        _ if c.is_ascii() => c.is_ascii_control(),
        _ => in_ranges(&t::OTHER, c),
    }
}

/// The CJK blocks BERT isolates (the reference's `is_chinese_char`).
pub(super) fn is_chinese_char(c: char) -> bool {
    matches!(
        c as u32,
        0x4E00..=0x9FFF
            | 0x3400..=0x4DBF
            | 0x20000..=0x2A6DF
            | 0x2A700..=0x2B73F
            | 0x2B740..=0x2B81F
            | 0x2B920..=0x2CEAF
            | 0xF900..=0xFAFF
            | 0x2F800..=0x2FA1F
    )
}

/// BERT's punctuation: ASCII punctuation (which includes symbols such as `$` and `^`) or a
/// Unicode punctuation category.
pub(super) fn is_punctuation(c: char) -> bool {
    if c.is_ascii() {
        c.is_ascii_punctuation()
    } else {
        in_ranges(&t::PUNCTUATION, c)
    }
}

/// Category Mn.
pub(super) fn is_mark_nonspacing(c: char) -> bool {
    (c as u32) >= 0x300 && in_ranges(&t::MARK_NONSPACING, c)
}

/// Canonical combining class (0 for starters).
pub(super) fn combining_class(c: char) -> u8 {
    if (c as u32) < 0x300 {
        return 0;
    }
    range_index(&t::COMBINING_CLASS_RANGES, c)
        .and_then(|i| t::COMBINING_CLASS_VALUES.get(i).copied())
        .unwrap_or(0)
}

const S_BASE: u32 = 0xAC00;
const L_BASE: u32 = 0x1100;
const V_BASE: u32 = 0x1161;
const T_BASE: u32 = 0x11A7;
const V_COUNT: u32 = 21;
const T_COUNT: u32 = 28;
const N_COUNT: u32 = V_COUNT * T_COUNT;
const S_COUNT: u32 = 19 * N_COUNT;

/// Calls `emit` with each character of the full canonical decomposition of `c` (`c` itself
/// when it has none). Hangul syllables are decomposed algorithmically (Unicode 3.12).
pub(super) fn decompose(c: char, mut emit: impl FnMut(char)) {
    let cp = c as u32;
    // Nothing below U+00C0 decomposes.
    if cp < 0xC0 {
        emit(c);
        return;
    }
    if let Some(s) = cp.checked_sub(S_BASE).filter(|&s| s < S_COUNT) {
        let jamo = [
            Some(L_BASE + s / N_COUNT),
            Some(V_BASE + (s % N_COUNT) / T_COUNT),
            Some(s % T_COUNT).filter(|&t| t > 0).map(|t| T_BASE + t),
        ];
        for j in jamo.into_iter().flatten().filter_map(char::from_u32) {
            emit(j);
        }
        return;
    }
    let keys = &t::DECOMPOSITION_KEYS;
    let i = keys.partition_point(|&k| (k & 0x1F_FFFF) < cp);
    let found = keys
        .get(i)
        .filter(|&&k| (k & 0x1F_FFFF) == cp)
        .and_then(|&k| {
            let start = usize::from(*t::DECOMPOSITION_STARTS.get(i)?);
            t::DECOMPOSITION_CHARS.get(start..start + (k >> 21) as usize)
        });
    match found {
        Some(chars) => chars.iter().copied().for_each(emit),
        None => emit(c),
    }
}

/// Index of the packed range of `table` that contains `c`.
fn range_index(table: &[u32], c: char) -> Option<usize> {
    let cp = c as u32;
    let i = table
        .partition_point(|&e| (e >> t::RANGE_LEN_BITS) <= cp)
        .checked_sub(1)?;
    let e = *table.get(i)?;
    let len_minus_1 = e & ((1 << t::RANGE_LEN_BITS) - 1);
    (cp - (e >> t::RANGE_LEN_BITS) <= len_minus_1).then_some(i)
}

fn in_ranges(table: &[u32], c: char) -> bool {
    range_index(table, c).is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn collect(n: Normalizer, s: &str) -> heapless::Vec<Unit, 64> {
        let mut v = heapless::Vec::new();
        let mut u = Units::new();
        for c in s.chars() {
            n.normalize(c, &mut u);
            while let Some(x) = u.peek() {
                u.advance();
                let _ = v.push(x);
            }
        }
        v
    }

    const ALL: Normalizer = Normalizer {
        clean_text: true,
        handle_chinese_chars: true,
        strip_accents: true,
        lowercase: true,
    };

    #[test]
    fn classes() {
        assert!(is_control('\u{0}') && is_control('\u{200B}') && is_control('\u{FEFF}'));
        assert!(is_control('\u{E000}') && is_control('\u{10FFFD}'));
        assert!(!is_control('\t') && !is_control('a') && !is_control('\u{1F600}'));
        assert!(is_punctuation('$') && is_punctuation('。') && is_punctuation('¿'));
        assert!(!is_punctuation('a') && !is_punctuation('€'));
        assert!(is_mark_nonspacing('\u{301}') && !is_mark_nonspacing('e'));
        assert_eq!(combining_class('\u{301}'), 230);
        assert_eq!(combining_class('\u{1D165}'), 216);
        assert_eq!(combining_class('a'), 0);
        assert!(is_chinese_char('中') && !is_chinese_char('の') && !is_chinese_char('한'));
    }

    #[test]
    fn decompositions() {
        let mut v: heapless::Vec<char, 8> = heapless::Vec::new();
        decompose('é', |c| v.push(c).unwrap());
        assert_eq!(v, ['e', '\u{301}']);
        v.clear();
        decompose('한', |c| v.push(c).unwrap());
        assert_eq!(v, ['\u{1112}', '\u{1161}', '\u{11AB}']);
        v.clear();
        decompose('가', |c| v.push(c).unwrap());
        assert_eq!(v, ['\u{1100}', '\u{1161}']);
        v.clear();
        decompose('\u{1F82}', |c| v.push(c).unwrap());
        assert_eq!(v.len(), 4);
        v.clear();
        decompose('\u{F900}', |c| v.push(c).unwrap());
        assert_eq!(v, ['\u{8C48}']);
        v.clear();
        decompose('z', |c| v.push(c).unwrap());
        assert_eq!(v, ['z']);
    }

    #[test]
    fn normalizes_like_bert() {
        let u = collect(ALL, "É\u{0}\u{200B}\t中");
        assert_eq!(
            u.as_slice(),
            [
                Unit::Char('e', 0),
                Unit::Char(' ', 0),
                Unit::Char(' ', 0),
                Unit::Char('中', 0),
                Unit::Char(' ', 0),
            ]
        );
        let keep = Normalizer {
            strip_accents: false,
            lowercase: false,
            ..ALL
        };
        let u = collect(keep, "É");
        assert_eq!(u.as_slice(), [Unit::Char('É', 0)]);
    }
}
