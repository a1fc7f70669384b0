//! Status codes of the C API and their sentences.
//!
//! `0` is success; every error is negative. The ranges follow the runtime's error enums:
//! `-1..=-99` the C calling contract itself (null or misaligned pointers, invalid UTF-8, a
//! storage that was never opened), `-100..=-199` [`microbert::BlobError`], `-200..=-299`
//! [`microbert::TokenizeError`], `-300..=-399` [`microbert::RunError`]. Each family's round
//! number (`-100`, `-200`, `-300`) stands for a variant a later runtime adds before this
//! table names it. The mapping from errors to codes is the single match in `glue.rs`.
//!
//! The constants are written out literally (no macro) because cbindgen reads the source
//! without expanding macros; `tests::every_status_has_a_distinct_sentence` keeps this table
//! and [`message`] in step.

use core::ffi::CStr;

/// Success.
pub const MICROBERT_OK: i32 = 0;
/// A pointer argument that must not be null is null.
pub const MICROBERT_ERR_NULL: i32 = -1;
/// The `microbert_model` storage was not filled by a successful `microbert_open`.
pub const MICROBERT_ERR_NOT_OPEN: i32 = -2;
/// The text is not valid UTF-8.
pub const MICROBERT_ERR_UTF8: i32 = -3;
/// A pointer is not aligned for its type (the model storage: 8 bytes; token ids, outputs
/// and `n_ids`: their C types' alignment). Scratch and prepared-weight buffers may have any
/// alignment.
pub const MICROBERT_ERR_ALIGN: i32 = -4;
/// A length argument is larger than any object can be (over `PTRDIFF_MAX` bytes).
pub const MICROBERT_ERR_LENGTH: i32 = -5;

/// The blob is invalid in a way this table does not name yet.
pub const MICROBERT_ERR_BLOB: i32 = -100;
/// The blob is shorter than its fixed header.
pub const MICROBERT_ERR_BLOB_TOO_SHORT: i32 = -101;
/// The blob does not start with the microbert magic bytes.
pub const MICROBERT_ERR_BLOB_MAGIC: i32 = -102;
/// The blob's format version is not the one this library reads.
pub const MICROBERT_ERR_BLOB_VERSION: i32 = -103;
/// The blob's header length differs from the `len` given.
pub const MICROBERT_ERR_BLOB_LENGTH: i32 = -104;
/// The blob's checksum does not hold: the bytes are corrupt.
pub const MICROBERT_ERR_BLOB_CHECKSUM: i32 = -105;
/// A section of the blob cannot be decoded.
pub const MICROBERT_ERR_BLOB_DECODE: i32 = -106;
/// The blob has bytes after its last section.
pub const MICROBERT_ERR_BLOB_TRAILING: i32 = -107;
/// A configuration value of the blob is out of the supported range.
pub const MICROBERT_ERR_BLOB_CONFIG: i32 = -108;
/// A tensor of the blob has the wrong element type.
pub const MICROBERT_ERR_BLOB_DTYPE: i32 = -109;
/// A tensor of the blob has the wrong shape or length.
pub const MICROBERT_ERR_BLOB_SHAPE: i32 = -110;
/// A tensor of the blob holds an out-of-range value.
pub const MICROBERT_ERR_BLOB_VALUE: i32 = -111;
/// The blob's vocabulary section is inconsistent.
pub const MICROBERT_ERR_BLOB_VOCAB: i32 = -112;

/// The text cannot be tokenized, for a reason this table does not name yet.
pub const MICROBERT_ERR_TOKENIZE: i32 = -200;
/// The id buffer cannot hold even `[CLS]` and `[SEP]` (capacity below 2).
pub const MICROBERT_ERR_IDS_TOO_SMALL: i32 = -201;
/// The tokenizer scratch is smaller than `microbert_tokenize_scratch_bytes` says this text
/// needs.
pub const MICROBERT_ERR_TOKENIZE_SCRATCH_TOO_SMALL: i32 = -202;
/// The model's tokenizer (SentencePiece Unigram) needs scratch: call
/// `microbert_tokenize_with_scratch`.
pub const MICROBERT_ERR_TOKENIZE_NEEDS_SCRATCH: i32 = -203;

/// Inference cannot run, for a reason this table does not name yet.
pub const MICROBERT_ERR_RUN: i32 = -300;
/// The token sequence is empty.
pub const MICROBERT_ERR_EMPTY_INPUT: i32 = -301;
/// A token id is outside the vocabulary.
pub const MICROBERT_ERR_TOKEN_OUT_OF_VOCAB: i32 = -302;
/// A token type id is outside the model's token types.
pub const MICROBERT_ERR_TOKEN_TYPE: i32 = -303;
/// More tokens than `microbert_max_tokens` allows.
pub const MICROBERT_ERR_TOO_MANY_TOKENS: i32 = -304;
/// The scratch buffer is smaller than `microbert_scratch_bytes` says it must be.
pub const MICROBERT_ERR_SCRATCH_TOO_SMALL: i32 = -305;
/// The output buffer is shorter than `microbert_hidden_size` elements.
pub const MICROBERT_ERR_OUTPUT_SIZE: i32 = -306;
/// The model has no such head.
pub const MICROBERT_ERR_NO_SUCH_HEAD: i32 = -307;
/// A position is outside the model's position table.
pub const MICROBERT_ERR_POSITION: i32 = -308;
/// The buffer given to `microbert_prepare` is shorter than `microbert_prepared_bytes`.
pub const MICROBERT_ERR_PREPARED_TOO_SMALL: i32 = -309;
/// Prepared weights do not belong to this model and these kernels.
pub const MICROBERT_ERR_PREPARED_MISMATCH: i32 = -310;

/// Every status, for the tests.
#[cfg(test)]
pub(crate) const ALL: [i32; 34] = [
    MICROBERT_OK,
    MICROBERT_ERR_NULL,
    MICROBERT_ERR_NOT_OPEN,
    MICROBERT_ERR_UTF8,
    MICROBERT_ERR_ALIGN,
    MICROBERT_ERR_LENGTH,
    MICROBERT_ERR_BLOB,
    MICROBERT_ERR_BLOB_TOO_SHORT,
    MICROBERT_ERR_BLOB_MAGIC,
    MICROBERT_ERR_BLOB_VERSION,
    MICROBERT_ERR_BLOB_LENGTH,
    MICROBERT_ERR_BLOB_CHECKSUM,
    MICROBERT_ERR_BLOB_DECODE,
    MICROBERT_ERR_BLOB_TRAILING,
    MICROBERT_ERR_BLOB_CONFIG,
    MICROBERT_ERR_BLOB_DTYPE,
    MICROBERT_ERR_BLOB_SHAPE,
    MICROBERT_ERR_BLOB_VALUE,
    MICROBERT_ERR_BLOB_VOCAB,
    MICROBERT_ERR_TOKENIZE,
    MICROBERT_ERR_IDS_TOO_SMALL,
    MICROBERT_ERR_TOKENIZE_SCRATCH_TOO_SMALL,
    MICROBERT_ERR_TOKENIZE_NEEDS_SCRATCH,
    MICROBERT_ERR_RUN,
    MICROBERT_ERR_EMPTY_INPUT,
    MICROBERT_ERR_TOKEN_OUT_OF_VOCAB,
    MICROBERT_ERR_TOKEN_TYPE,
    MICROBERT_ERR_TOO_MANY_TOKENS,
    MICROBERT_ERR_SCRATCH_TOO_SMALL,
    MICROBERT_ERR_OUTPUT_SIZE,
    MICROBERT_ERR_NO_SUCH_HEAD,
    MICROBERT_ERR_POSITION,
    MICROBERT_ERR_PREPARED_TOO_SMALL,
    MICROBERT_ERR_PREPARED_MISMATCH,
];

/// The sentence for a status (static, NUL-terminated); unknown codes get one too.
pub(crate) fn message(status: i32) -> &'static CStr {
    match status {
        MICROBERT_OK => c"success",
        MICROBERT_ERR_NULL => c"a pointer argument that must not be null is null",
        MICROBERT_ERR_NOT_OPEN => {
            c"the model storage was not filled by a successful microbert_open"
        }
        MICROBERT_ERR_UTF8 => c"the text is not valid UTF-8",
        MICROBERT_ERR_ALIGN => {
            c"a pointer is not aligned for its type (model storage: 8 bytes; ids and outputs: their element type)"
        }
        MICROBERT_ERR_LENGTH => c"a length argument is larger than any object can be",
        MICROBERT_ERR_BLOB => c"the model blob is invalid",
        MICROBERT_ERR_BLOB_TOO_SHORT => c"the model blob is shorter than its header",
        MICROBERT_ERR_BLOB_MAGIC => c"not a microbert blob (bad magic bytes)",
        MICROBERT_ERR_BLOB_VERSION => {
            c"the blob's format version is not supported by this library; reconvert the checkpoint"
        }
        MICROBERT_ERR_BLOB_LENGTH => {
            c"the blob's header length differs from the bytes given (truncated or padded file?)"
        }
        MICROBERT_ERR_BLOB_CHECKSUM => c"the blob's checksum does not hold: the file is corrupt",
        MICROBERT_ERR_BLOB_DECODE => c"a section of the blob cannot be decoded",
        MICROBERT_ERR_BLOB_TRAILING => c"the blob has unexpected bytes after its last section",
        MICROBERT_ERR_BLOB_CONFIG => c"a configuration value of the blob is not supported",
        MICROBERT_ERR_BLOB_DTYPE => c"a tensor of the blob has the wrong element type",
        MICROBERT_ERR_BLOB_SHAPE => {
            c"a tensor of the blob has a length its configuration does not imply"
        }
        MICROBERT_ERR_BLOB_VALUE => c"a tensor of the blob holds an out-of-range value",
        MICROBERT_ERR_BLOB_VOCAB => c"the blob's vocabulary section is invalid",
        MICROBERT_ERR_TOKENIZE => c"the text cannot be tokenized",
        MICROBERT_ERR_IDS_TOO_SMALL => {
            c"the token id buffer must hold at least 2 ids ([CLS] and [SEP])"
        }
        MICROBERT_ERR_TOKENIZE_SCRATCH_TOO_SMALL => {
            c"the tokenizer scratch is smaller than microbert_tokenize_scratch_bytes for this text"
        }
        MICROBERT_ERR_TOKENIZE_NEEDS_SCRATCH => {
            c"this model's tokenizer (SentencePiece Unigram) needs scratch: call microbert_tokenize_with_scratch"
        }
        MICROBERT_ERR_RUN => c"inference cannot run with these inputs",
        MICROBERT_ERR_EMPTY_INPUT => c"the token sequence is empty",
        MICROBERT_ERR_TOKEN_OUT_OF_VOCAB => c"a token id is outside the vocabulary",
        MICROBERT_ERR_TOKEN_TYPE => c"a token type id is outside the model's token types",
        MICROBERT_ERR_TOO_MANY_TOKENS => {
            c"more tokens than microbert_max_tokens allows; truncate the input"
        }
        MICROBERT_ERR_SCRATCH_TOO_SMALL => {
            c"the scratch buffer is smaller than microbert_scratch_bytes for this many tokens"
        }
        MICROBERT_ERR_OUTPUT_SIZE => {
            c"the output buffer is shorter than microbert_hidden_size elements"
        }
        MICROBERT_ERR_NO_SUCH_HEAD => c"the model has no such head",
        MICROBERT_ERR_POSITION => c"a position is outside the model's position table",
        MICROBERT_ERR_PREPARED_TOO_SMALL => {
            c"the prepared-weight buffer is smaller than microbert_prepared_bytes"
        }
        MICROBERT_ERR_PREPARED_MISMATCH => {
            c"the prepared weights were made for another model or other kernels"
        }
        _ => c"unknown microbert status",
    }
}
