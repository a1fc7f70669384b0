//! Error types: one `#[non_exhaustive]` enum per concern, `Copy`, no allocation.
//!
//! - [`BlobError`]: the model blob is malformed (parsing and validation).
//! - [`TokenizeError`]: a text cannot be turned into the caller's id buffer.
//! - [`RunError`]: inference was asked for something the model or the arena cannot do.
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
                "blob format version {found} is not supported (this runtime reads version {supported}); reconvert the checkpoint"
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
}

impl fmt::Display for TokenizeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::BufferTooSmall { capacity, needed } => write!(
                f,
                "token buffer holds {capacity} ids but at least {needed} are needed"
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
        }
    }
}

impl core::error::Error for RunError {}

#[cfg(test)]
mod tests {
    extern crate alloc;
    use super::*;
    use alloc::string::ToString;

    #[test]
    fn every_variant_displays_a_sentence() {
        let blob = [
            BlobError::TooShort { len: 1, needed: 28 },
            BlobError::BadMagic,
            BlobError::UnsupportedVersion {
                found: 9,
                supported: 1,
            },
            BlobError::LengthMismatch {
                header: 10,
                actual: 9,
            },
            BlobError::ChecksumMismatch {
                expected: 1,
                actual: 2,
            },
            BlobError::Decode { section: "config" },
            BlobError::TrailingBytes { count: 3 },
            BlobError::BadConfig {
                field: "hidden_size",
                value: 0,
            },
            BlobError::WrongDType { tensor: "w" },
            BlobError::WrongShape {
                tensor: "w",
                expected: 4,
                found: 3,
            },
            BlobError::BadValue {
                tensor: "w",
                index: 0,
            },
            BlobError::BadVocab { reason: "r" },
            BlobError::SectionHeaderTruncated {
                offset: 100,
                available: 3,
            },
            BlobError::SectionOutOfBounds {
                kind: 3,
                offset: 36,
                len: 1000,
                available: 10,
            },
            BlobError::UnknownRequiredSection {
                kind: 77,
                offset: 36,
            },
            BlobError::DuplicateSection {
                section: "config",
                offset: 36,
            },
            BlobError::MissingSection {
                section: "embeddings",
            },
            BlobError::SectionCount {
                section: "encoder layer",
                found: 1,
                expected: 2,
            },
            BlobError::SectionOrder {
                kind: 2,
                previous: 3,
                offset: 36,
            },
            BlobError::BadSectionFlags {
                kind: 1,
                flags: 0,
                offset: 28,
            },
            BlobError::SectionTrailingBytes {
                section: "config",
                count: 2,
            },
            BlobError::BadProvenance { reason: "r" },
        ];
        for e in blob {
            assert!(e.to_string().len() > 10, "{e:?}");
        }
        let run = [
            RunError::EmptyInput,
            RunError::TokenOutOfVocab {
                position: 0,
                id: 5,
                vocab_size: 4,
            },
            RunError::TokenTypeOutOfRange {
                position: 0,
                id: 5,
                type_vocab_size: 2,
            },
            RunError::TooManyTokens { len: 9, max: 8 },
            RunError::ScratchTooSmall {
                given: 1,
                needed: 2,
            },
            RunError::OutputSize {
                given: 1,
                needed: 2,
            },
            RunError::NoSuchHead { head: "MLM" },
            RunError::PositionOutOfRange {
                position: 9,
                limit: 9,
            },
        ];
        for e in run {
            assert!(e.to_string().len() > 10, "{e:?}");
        }
        let t = TokenizeError::BufferTooSmall {
            capacity: 1,
            needed: 2,
        };
        assert!(t.to_string().contains("at least 2"));
    }
}
