//! Error types: one `#[non_exhaustive]` enum per concern, `Copy`, no allocation.
//!
//! - [`BlobError`]: the model blob is malformed (parsing and validation).
//! - [`TokenizeError`]: a text cannot be turned into the caller's id buffer.
//! - [`RunError`]: inference was asked for something the model or the arena cannot do.
//!
//! [`Error`] holds any of them, so `?` works across parsing, tokenizing and running.
//!
//! Every variant carries the numbers a person needs to act on it, and `Display` says what
//! went wrong in one sentence.

use core::fmt;

/// The model blob is malformed. Parsing stops at the first defect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum BlobError {
    /// The input is shorter than the fixed header.
    TooShort {
        /// Bytes present.
        len: usize,
        /// Bytes the header needs.
        needed: usize,
    },
    /// The first bytes are not the microbert magic.
    BadMagic,
    /// The blob was written with a format version this runtime does not read.
    UnsupportedVersion {
        /// Version in the blob.
        found: u32,
        /// Version this runtime reads.
        supported: u32,
    },
    /// The header's total length disagrees with the number of bytes given.
    LengthMismatch {
        /// Length written in the header.
        header: u64,
        /// Bytes actually given.
        actual: usize,
    },
    /// The checksum over the body does not match the header.
    ChecksumMismatch {
        /// Checksum in the header.
        expected: u64,
        /// Checksum computed over the body.
        actual: u64,
    },
    /// A section could not be decoded (truncated or corrupt postcard data).
    Decode {
        /// The section being decoded.
        section: &'static str,
    },
    /// Bytes remain after the last section.
    TrailingBytes {
        /// How many.
        count: usize,
    },
    /// A configuration value is out of the supported range.
    BadConfig {
        /// The field.
        field: &'static str,
        /// Its value (saturated to `u32`).
        value: u32,
    },
    /// A tensor's element type is not the one its role requires.
    WrongDType {
        /// The tensor's role.
        tensor: &'static str,
    },
    /// A tensor's shape or byte length disagrees with the config.
    WrongShape {
        /// The tensor's role.
        tensor: &'static str,
        /// Bytes expected from the config.
        expected: usize,
        /// Bytes found.
        found: usize,
    },
    /// A tensor holds a value outside its allowed range (an int8 weight of -128, a shift
    /// that is too large, ...).
    BadValue {
        /// The tensor's role.
        tensor: &'static str,
        /// Element index of the first bad value.
        index: usize,
    },
    /// The vocabulary section is inconsistent (offsets, sort order, UTF-8, special tokens).
    BadVocab {
        /// What is wrong.
        reason: &'static str,
    },
    /// Fewer bytes than a section header remain where the next section should start (bytes
    /// after the last section, or a truncated one).
    SectionHeaderTruncated {
        /// Offset in the blob where the header should start.
        offset: usize,
        /// Bytes left there.
        available: usize,
    },
    /// A section's payload length runs past the end of the blob.
    SectionOutOfBounds {
        /// The section's kind code.
        kind: u16,
        /// Offset of its header in the blob.
        offset: usize,
        /// Payload length in its header.
        len: u32,
        /// Bytes left after its header.
        available: usize,
    },
    /// A section that readers must understand has a kind this runtime does not know: the
    /// blob was written for a newer runtime.
    UnknownRequiredSection {
        /// The kind code.
        kind: u16,
        /// Offset of its header in the blob.
        offset: usize,
    },
    /// A section kind that may occur once occurs again.
    DuplicateSection {
        /// The section.
        section: &'static str,
        /// Offset of the second one's header in the blob.
        offset: usize,
    },
    /// A section every model needs is absent.
    MissingSection {
        /// The section.
        section: &'static str,
    },
    /// The blob carries both tokenizers (WordPiece and Unigram): a model has exactly one, and
    /// a reader must not guess which the converter meant.
    TwoTokenizers,
    /// The task-head sections (pooler, classifier, labels) do not fit together.
    BadHead {
        /// What is wrong.
        reason: &'static str,
    },
    /// A repeatable section occurs a different number of times than the config implies.
    SectionCount {
        /// The section.
        section: &'static str,
        /// Sections found.
        found: u32,
        /// Sections the config implies.
        expected: u32,
    },
    /// Sections are not in increasing kind order.
    SectionOrder {
        /// The kind code of the misplaced section.
        kind: u16,
        /// The kind code of the section before it.
        previous: u16,
        /// Offset of the misplaced section's header in the blob.
        offset: usize,
    },
    /// A section's flags have a reserved bit set, or a known kind's required bit disagrees
    /// with the kind's definition.
    BadSectionFlags {
        /// The kind code.
        kind: u16,
        /// The flags found.
        flags: u16,
        /// Offset of its header in the blob.
        offset: usize,
    },
    /// A section's payload has bytes left after its content was decoded.
    SectionTrailingBytes {
        /// The section.
        section: &'static str,
        /// Bytes left over.
        count: usize,
    },
    /// The provenance section is malformed (an empty or unprintable string, a bad settings
    /// line).
    BadProvenance {
        /// What is wrong.
        reason: &'static str,
    },
}

impl fmt::Display for BlobError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::TooShort { len, needed } => write!(
                f,
                "blob is {len} bytes, shorter than the {needed}-byte header"
            ),
            Self::BadMagic => f.write_str("not a microbert blob (bad magic bytes)"),
            Self::UnsupportedVersion { found, supported } => write!(
                f,
                "blob format version {found} is not supported (this runtime reads versions 1 to {supported}); reconvert the checkpoint"
            ),
            Self::LengthMismatch { header, actual } => write!(
                f,
                "blob header says {header} bytes but {actual} were given (truncated or padded file?)"
            ),
            Self::ChecksumMismatch { expected, actual } => write!(
                f,
                "blob checksum mismatch (header {expected:#018x}, computed {actual:#018x}): the file is corrupt"
            ),
            Self::Decode { section } => write!(f, "blob section `{section}` cannot be decoded"),
            Self::TrailingBytes { count } => {
                write!(
                    f,
                    "blob has {count} unexpected bytes after its last section"
                )
            }
            Self::BadConfig { field, value } => {
                write!(
                    f,
                    "blob config field `{field}` has unsupported value {value}"
                )
            }
            Self::WrongDType { tensor } => {
                write!(f, "tensor `{tensor}` has the wrong element type")
            }
            Self::WrongShape {
                tensor,
                expected,
                found,
            } => write!(
                f,
                "tensor `{tensor}` is {found} bytes but the config implies {expected}"
            ),
            Self::BadValue { tensor, index } => {
                write!(
                    f,
                    "tensor `{tensor}` has an out-of-range value at element {index}"
                )
            }
            Self::BadVocab { reason } => write!(f, "vocabulary section is invalid: {reason}"),
            Self::SectionHeaderTruncated { offset, available } => write!(
                f,
                "blob has {available} bytes at offset {offset}, too few for a section header (truncated section, or bytes after the last section)"
            ),
            Self::SectionOutOfBounds {
                kind,
                offset,
                len,
                available,
            } => write!(
                f,
                "section of kind {kind} at offset {offset} says it holds {len} bytes but only {available} follow its header"
            ),
            Self::UnknownRequiredSection { kind, offset } => write!(
                f,
                "blob needs a newer runtime: section kind {kind} (at offset {offset}) must be understood to use the model and this runtime does not know it"
            ),
            Self::DuplicateSection { section, offset } => write!(
                f,
                "blob has a second `{section}` section (at offset {offset}); it may occur only once"
            ),
            Self::TwoTokenizers => f.write_str(
                "blob has both a `wordpiece tokenizer` and a `unigram tokenizer` section; a model has exactly one tokenizer",
            ),
            Self::BadHead { reason } => write!(f, "task heads are invalid: {reason}"),
            Self::MissingSection { section } => {
                write!(
                    f,
                    "blob has no `{section}` section, which every model needs"
                )
            }
            Self::SectionCount {
                section,
                found,
                expected,
            } => write!(
                f,
                "blob has {found} `{section}` sections but its config implies {expected}"
            ),
            Self::SectionOrder {
                kind,
                previous,
                offset,
            } => write!(
                f,
                "section of kind {kind} at offset {offset} follows kind {previous}: sections must be in increasing kind order"
            ),
            Self::BadSectionFlags {
                kind,
                flags,
                offset,
            } => write!(
                f,
                "section of kind {kind} at offset {offset} has flags {flags:#06x}: a reserved bit is set or the required bit disagrees with the kind"
            ),
            Self::SectionTrailingBytes { section, count } => write!(
                f,
                "section `{section}` has {count} bytes left after its content"
            ),
            Self::BadProvenance { reason } => {
                write!(f, "provenance section is invalid: {reason}")
            }
        }
    }
}

impl core::error::Error for BlobError {}

/// A text cannot be tokenized into the caller's buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum TokenizeError {
    /// The id buffer cannot hold even `[CLS]` and `[SEP]`.
    BufferTooSmall {
        /// Capacity given.
        capacity: usize,
        /// Minimum capacity.
        needed: usize,
    },
    /// The Unigram tokenizer's scratch (normalised text and Viterbi lattice) is too small
    /// for this text.
    ScratchTooSmall {
        /// Bytes given.
        capacity: usize,
        /// Bytes this text needs (`UnigramTokenizer::scratch_bytes`).
        needed: usize,
    },
    /// The token-type buffer of a pair is shorter than its id buffer.
    TypesTooShort {
        /// Length of the id buffer.
        ids: usize,
        /// Length of the token-type buffer.
        types: usize,
    },
    /// A pair template is malformed.
    BadTemplate {
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The model has no WordPiece vocabulary (it carries a SentencePiece Unigram
    /// tokenizer: use `UnigramTokenizer::new`).
    NotWordPiece,
}

impl fmt::Display for TokenizeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::BufferTooSmall { capacity, needed } => write!(
                f,
                "token buffer holds {capacity} ids but at least {needed} are needed"
            ),
            Self::ScratchTooSmall { capacity, needed } => write!(
                f,
                "tokenizer scratch holds {capacity} bytes but this text needs {needed}"
            ),
            Self::TypesTooShort { ids, types } => write!(
                f,
                "token-type buffer holds {types} entries but the id buffer holds {ids}"
            ),
            Self::BadTemplate { reason } => write!(f, "pair template is malformed: {reason}"),
            Self::NotWordPiece => f.write_str(
                "the model has no WordPiece vocabulary; it carries a SentencePiece Unigram \
                 tokenizer (UnigramTokenizer)",
            ),
        }
    }
}

impl core::error::Error for TokenizeError {}

/// Inference cannot run with these inputs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum RunError {
    /// The sequence is empty.
    EmptyInput,
    /// A token id is not in the vocabulary.
    TokenOutOfVocab {
        /// Position in the sequence.
        position: usize,
        /// The id.
        id: u32,
        /// Vocabulary size.
        vocab_size: u32,
    },
    /// A token type id is not in the token type table.
    TokenTypeOutOfRange {
        /// Position in the sequence.
        position: usize,
        /// The id.
        id: u32,
        /// Number of token types.
        type_vocab_size: u32,
    },
    /// More tokens than the model's positions allow.
    TooManyTokens {
        /// Tokens given.
        len: usize,
        /// Most the model (in its position mode) allows.
        max: usize,
    },
    /// The scratch arena is smaller than [`crate::scratch_bytes`] says it must be.
    ScratchTooSmall {
        /// Bytes given.
        given: usize,
        /// Bytes needed.
        needed: usize,
    },
    /// The output buffer has the wrong length.
    OutputSize {
        /// Length given.
        given: usize,
        /// Length needed.
        needed: usize,
    },
    /// The model has no such head (e.g. MLM logits asked of a model without an MLM head).
    NoSuchHead {
        /// The head asked for.
        head: &'static str,
    },
    /// A position lies outside the addressable range of the position table.
    PositionOutOfRange {
        /// The position.
        position: usize,
        /// The first position that cannot be addressed.
        limit: usize,
    },
    /// The progress callback stopped the pass.
    Cancelled {
        /// Units of work done.
        done: usize,
        /// Units in the whole pass.
        total: usize,
    },
    /// A plan declared at build time (e.g. for a `static` arena) is smaller than what this
    /// model and length need.
    PlanTooSmall {
        /// Arena bytes of the declared plan.
        declared: usize,
        /// Arena bytes this model and length need.
        needed: usize,
    },
    /// The storage for prepared weights is smaller than the backend needs.
    PreparedTooSmall {
        /// Bytes given.
        given: usize,
        /// Bytes needed.
        needed: usize,
    },
    /// Prepared weights were made by another backend, or for a model of another shape.
    PreparedMismatch {
        /// The backend that prepared them.
        prepared_for: &'static str,
        /// The encoder's backend.
        kernels: &'static str,
    },
}

impl fmt::Display for RunError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::EmptyInput => f.write_str("the token sequence is empty"),
            Self::TokenOutOfVocab {
                position,
                id,
                vocab_size,
            } => write!(
                f,
                "token id {id} at position {position} is outside the vocabulary of {vocab_size} tokens"
            ),
            Self::TokenTypeOutOfRange {
                position,
                id,
                type_vocab_size,
            } => write!(
                f,
                "token type {id} at position {position} is outside the {type_vocab_size} token types"
            ),
            Self::TooManyTokens { len, max } => write!(
                f,
                "{len} tokens given but the model reads at most {max}; truncate the input"
            ),
            Self::ScratchTooSmall { given, needed } => write!(
                f,
                "scratch buffer is {given} bytes but this model and length need {needed}"
            ),
            Self::OutputSize { given, needed } => write!(
                f,
                "output buffer has {given} elements but {needed} are needed"
            ),
            Self::NoSuchHead { head } => write!(f, "the model has no {head} head"),
            Self::PositionOutOfRange { position, limit } => write!(
                f,
                "position {position} is past the last addressable position {}",
                limit.saturating_sub(1)
            ),
            Self::Cancelled { done, total } => write!(
                f,
                "stopped by the progress callback after {done} of {total} units of work"
            ),
            Self::PlanTooSmall { declared, needed } => write!(
                f,
                "the declared plan's arena is {declared} bytes but this model and length need {needed}"
            ),
            Self::PreparedTooSmall { given, needed } => write!(
                f,
                "storage for prepared weights is {given} bytes but the backend needs {needed}"
            ),
            Self::PreparedMismatch {
                prepared_for,
                kernels,
            } => write!(
                f,
                "weights prepared by backend `{prepared_for}` for another model or backend cannot be used by `{kernels}`; prepare them again"
            ),
        }
    }
}

impl core::error::Error for RunError {}

/// Any error of the runtime: a malformed blob, a text that cannot be tokenized into the
/// buffer given, or a run that cannot go ahead. `From` conversions let `?` mix them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum Error {
    /// See [`BlobError`].
    Blob(BlobError),
    /// See [`TokenizeError`].
    Tokenize(TokenizeError),
    /// See [`RunError`].
    Run(RunError),
}

impl From<BlobError> for Error {
    fn from(e: BlobError) -> Self {
        Self::Blob(e)
    }
}

impl From<TokenizeError> for Error {
    fn from(e: TokenizeError) -> Self {
        Self::Tokenize(e)
    }
}

impl From<RunError> for Error {
    fn from(e: RunError) -> Self {
        Self::Run(e)
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Blob(e) => write!(f, "model blob: {e}"),
            Self::Tokenize(e) => write!(f, "tokenizer: {e}"),
            Self::Run(e) => write!(f, "encoder: {e}"),
        }
    }
}

impl core::error::Error for Error {
    fn source(&self) -> Option<&(dyn core::error::Error + 'static)> {
        match self {
            Self::Blob(e) => Some(e),
            Self::Tokenize(e) => Some(e),
            Self::Run(e) => Some(e),
        }
    }
}

#[cfg(test)]
mod tests {
    extern crate alloc;
    use super::*;
    use alloc::string::{String, ToString};
    use alloc::vec::Vec;

    /// `cases!(Enum: Variant { field: value, .. } => ["fragment", ..]; ..)` gives one sample
    /// of each variant with the fragments its sentence must contain (the numbers and names
    /// it carries, and what went wrong). It also expands to an exhaustive `match` over the
    /// listed variants: a variant added to the enum without a case here does not compile,
    /// and a case must give every field a value.
    macro_rules! cases {
        ($ty:ident: $($variant:ident $({ $($field:ident: $value:expr),+ $(,)? })?
            => [$($fragment:expr),+ $(,)?];)+) => {{
            #[allow(dead_code)]
            fn every_variant_has_a_case(e: $ty) {
                match e {
                    $($ty::$variant $({ $($field: _),+ })? => {})+
                }
            }
            [$(($ty::$variant $({ $($field: $value),+ })?, &[$($fragment),+] as &[&str])),+]
        }};
    }

    /// Whether `fragment` occurs in `s` without a digit right before or after it (so
    /// "position 3" is not found in "position 30").
    fn contains_whole(s: &str, fragment: &str) -> bool {
        s.match_indices(fragment).any(|(at, _)| {
            let before = s[..at].chars().next_back();
            let after = s[at + fragment.len()..].chars().next();
            !before.is_some_and(|c| c.is_ascii_digit())
                && !after.is_some_and(|c| c.is_ascii_digit())
        })
    }

    /// Every sentence contains its fragments, is one line, and no two variants share one.
    fn check<E: fmt::Display + fmt::Debug>(cases: &[(E, &[&str])]) {
        let mut seen: Vec<String> = Vec::new();
        for (e, fragments) in cases {
            let s = e.to_string();
            for f in *fragments {
                assert!(
                    contains_whole(&s, f),
                    "{e:?} displays {s:?}, which lacks {f:?}"
                );
            }
            assert!(!s.contains('\n') && s.trim() == s, "{e:?}: {s:?}");
            assert!(!seen.contains(&s), "two variants display {s:?}");
            seen.push(s);
        }
    }

    #[test]
    fn blob_errors_say_what_and_carry_their_numbers() {
        check(&cases!(BlobError:
            TooShort { len: 17, needed: 28 } => ["blob is 17 bytes", "28-byte header"];
            BadMagic => ["not a microbert blob", "magic"];
            UnsupportedVersion { found: 9, supported: 3 }
                => ["version 9 is not supported", "reads versions 1 to 3)", "reconvert"];
            LengthMismatch { header: 1000, actual: 999 }
                => ["says 1000 bytes", "999 were given"];
            ChecksumMismatch { expected: 0x1234, actual: 0xabcd }
                => ["header 0x0000000000001234", "computed 0x000000000000abcd", "corrupt"];
            Decode { section: "layer 3" } => ["section `layer 3`", "cannot be decoded"];
            TrailingBytes { count: 42 } => ["has 42 unexpected bytes", "after its last section"];
            BadConfig { field: "hidden_size", value: 7 }
                => ["field `hidden_size`", "unsupported value 7"];
            WrongDType { tensor: "query.weight" } => ["`query.weight`", "wrong element type"];
            WrongShape { tensor: "key.weight", expected: 4096, found: 4095 }
                => ["`key.weight` is 4095 bytes", "implies 4096"];
            BadValue { tensor: "value.weight", index: 31 }
                => ["`value.weight`", "out-of-range value at element 31"];
            BadVocab { reason: "offsets are not sorted" }
                => ["vocabulary section is invalid", "offsets are not sorted"];
            SectionHeaderTruncated { offset: 100, available: 3 }
                => ["has 3 bytes at offset 100", "too few for a section header"];
            SectionOutOfBounds { kind: 3, offset: 36, len: 1000, available: 10 }
                => ["kind 3 at offset 36", "holds 1000 bytes", "only 10 follow"];
            UnknownRequiredSection { kind: 77, offset: 40 }
                => ["needs a newer runtime", "section kind 77", "offset 40"];
            DuplicateSection { section: "config", offset: 44 }
                => ["second `config` section", "offset 44", "only once"];
            MissingSection { section: "embeddings" } => ["no `embeddings` section"];
            TwoTokenizers => ["both a `wordpiece tokenizer`", "`unigram tokenizer`", "exactly one"];
            BadHead { reason: "labels without a classifier" } => ["task heads", "labels without"];
            SectionCount { section: "encoder layer", found: 1, expected: 2 }
                => ["has 1 `encoder layer` sections", "implies 2"];
            SectionOrder { kind: 2, previous: 5, offset: 48 }
                => ["kind 2 at offset 48 follows kind 5", "increasing kind order"];
            BadSectionFlags { kind: 1, flags: 6, offset: 28 }
                => ["kind 1 at offset 28", "flags 0x0006", "reserved bit"];
            SectionTrailingBytes { section: "tokenizer", count: 2 }
                => ["section `tokenizer` has 2 bytes left"];
            BadProvenance { reason: "not UTF-8" } => ["provenance section is invalid", "not UTF-8"];
        ));
    }

    #[test]
    fn the_crate_error_names_the_concern_and_keeps_the_source() {
        use core::error::Error as _;
        let e: Error = RunError::EmptyInput.into();
        assert_eq!(e.to_string(), "encoder: the token sequence is empty");
        assert_eq!(
            e.source().map(ToString::to_string),
            Some(RunError::EmptyInput.to_string())
        );
        let e: Error = BlobError::BadMagic.into();
        assert!(
            e.to_string()
                .starts_with("model blob: not a microbert blob")
        );
        let e: Error = TokenizeError::BufferTooSmall {
            capacity: 1,
            needed: 2,
        }
        .into();
        assert!(e.to_string().starts_with("tokenizer: "));
        assert_eq!(
            e,
            Error::Tokenize(TokenizeError::BufferTooSmall {
                capacity: 1,
                needed: 2
            })
        );
    }

    #[test]
    fn tokenize_errors_say_what_and_carry_their_numbers() {
        check(&cases!(TokenizeError:
            BufferTooSmall { capacity: 1, needed: 2 } => ["holds 1 ids", "at least 2"];
            ScratchTooSmall { capacity: 10, needed: 99 } => ["holds 10 bytes", "needs 99"];
            TypesTooShort { ids: 7, types: 5 } => ["holds 5 entries", "holds 7"];
            BadTemplate { reason: "first after second" } => ["template", "first after second"];
            NotWordPiece => ["no WordPiece", "Unigram"];
        ));
    }

    #[test]
    fn run_errors_say_what_and_carry_their_numbers() {
        assert!(contains_whole("at position 3 is", "position 3"));
        assert!(!contains_whole("at position 30 is", "position 3"));
        assert!(!contains_whole("id 13", "3"));
        check(&cases!(RunError:
            EmptyInput => ["token sequence is empty"];
            TokenOutOfVocab { position: 3, id: 30522, vocab_size: 30521 }
                => ["token id 30522", "position 3", "vocabulary of 30521 tokens"];
            TokenTypeOutOfRange { position: 4, id: 5, type_vocab_size: 2 }
                => ["token type 5", "position 4", "the 2 token types"];
            TooManyTokens { len: 513, max: 512 } => ["513 tokens", "at most 512", "truncate"];
            ScratchTooSmall { given: 1000, needed: 2048 }
                => ["scratch buffer is 1000 bytes", "need 2048"];
            OutputSize { given: 383, needed: 384 } => ["383 elements", "384 are needed"];
            NoSuchHead { head: "MLM" } => ["no MLM head"];
            PositionOutOfRange { position: 262_144, limit: 262_144 }
                => ["position 262144 is past", "last addressable position 262143"];
            Cancelled { done: 3, total: 17 } => ["stopped", "after 3 of 17 units"];
            PlanTooSmall { declared: 4096, needed: 8192 }
                => ["declared plan's arena is 4096 bytes", "need 8192"];
            PreparedTooSmall { given: 100, needed: 200 }
                => ["prepared weights is 100 bytes", "needs 200"];
            PreparedMismatch { prepared_for: "avx2", kernels: "scalar" }
                => ["backend `avx2`", "used by `scalar`", "prepare them again"];
        ));
    }
}
