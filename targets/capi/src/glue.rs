//! The only file that speaks the runtime's Rust API: parsing, tokenizing, embedding, the
//! kernels chosen for this build, and the single match from errors to status codes. The
//! `extern "C"` layer (`lib.rs`) checks pointers and builds slices, then calls these.
//!
//! Kernels, fixed when the library is built:
//! - x86-64 with the `std` feature: `microbert_host::HostKernels` (AVX2 when the CPU has it,
//!   detected once at run time; it prepares the dense weights in panels when the caller
//!   gives `microbert_prepare` the storage, else each product packs its own operand,
//!   bit-identical either way);
//! - AArch64: `microbert_cortex_a::NeonKernels` (NEON, `sdot` when built with `+dotprod`);
//! - riscv64: `microbert_riscv::RvvKernels` (RVV 1.0 when built with `+v`);
//! - everything else (Cortex-M, riscv32, x86-64 without `std`): `microbert::Scalar`.

use crate::status::*;
use core::ffi::CStr;
use microbert::{
    BlobError, Encoder, Kernels, ModelView, PreparedWeights, RunError, TokenizeError, Tokenizer,
    UnigramTokenizer,
};

/// A parsed model. `'static` stands for "as long as the caller keeps the blob", the
/// contract of `microbert_open`.
pub(crate) type Model = ModelView<'static>;

/// Everything a C call can fail with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Error {
    /// A required pointer is null.
    Null,
    /// The storage was never opened.
    NotOpen,
    /// The text is not UTF-8.
    Utf8,
    /// A pointer is misaligned for its type.
    Align,
    /// A length exceeds `isize::MAX` bytes.
    Length,
    Blob(BlobError),
    Tokenize(TokenizeError),
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

/// The status code of an error (the table is in `status.rs`).
pub(crate) fn status(e: Error) -> i32 {
    match e {
        Error::Null => MICROBERT_ERR_NULL,
        Error::NotOpen => MICROBERT_ERR_NOT_OPEN,
        Error::Utf8 => MICROBERT_ERR_UTF8,
        Error::Align => MICROBERT_ERR_ALIGN,
        Error::Length => MICROBERT_ERR_LENGTH,
        Error::Blob(BlobError::TooShort { .. }) => MICROBERT_ERR_BLOB_TOO_SHORT,
        Error::Blob(BlobError::BadMagic) => MICROBERT_ERR_BLOB_MAGIC,
        Error::Blob(BlobError::UnsupportedVersion { .. }) => MICROBERT_ERR_BLOB_VERSION,
        Error::Blob(BlobError::LengthMismatch { .. }) => MICROBERT_ERR_BLOB_LENGTH,
        Error::Blob(BlobError::ChecksumMismatch { .. }) => MICROBERT_ERR_BLOB_CHECKSUM,
        Error::Blob(BlobError::Decode { .. }) => MICROBERT_ERR_BLOB_DECODE,
        Error::Blob(BlobError::TrailingBytes { .. }) => MICROBERT_ERR_BLOB_TRAILING,
        Error::Blob(BlobError::BadConfig { .. }) => MICROBERT_ERR_BLOB_CONFIG,
        Error::Blob(BlobError::WrongDType { .. }) => MICROBERT_ERR_BLOB_DTYPE,
        Error::Blob(BlobError::WrongShape { .. }) => MICROBERT_ERR_BLOB_SHAPE,
        Error::Blob(BlobError::BadValue { .. }) => MICROBERT_ERR_BLOB_VALUE,
        Error::Blob(BlobError::BadVocab { .. }) => MICROBERT_ERR_BLOB_VOCAB,
        Error::Blob(_) => MICROBERT_ERR_BLOB,
        Error::Tokenize(TokenizeError::BufferTooSmall { .. }) => MICROBERT_ERR_IDS_TOO_SMALL,
        Error::Tokenize(TokenizeError::ScratchTooSmall { .. }) => {
            MICROBERT_ERR_TOKENIZE_SCRATCH_TOO_SMALL
        }
        Error::Tokenize(TokenizeError::NotWordPiece) => MICROBERT_ERR_TOKENIZE_NEEDS_SCRATCH,
        Error::Tokenize(_) => MICROBERT_ERR_TOKENIZE,
        Error::Run(RunError::EmptyInput) => MICROBERT_ERR_EMPTY_INPUT,
        Error::Run(RunError::TokenOutOfVocab { .. }) => MICROBERT_ERR_TOKEN_OUT_OF_VOCAB,
        Error::Run(RunError::TokenTypeOutOfRange { .. }) => MICROBERT_ERR_TOKEN_TYPE,
        Error::Run(RunError::TooManyTokens { .. }) => MICROBERT_ERR_TOO_MANY_TOKENS,
        Error::Run(RunError::ScratchTooSmall { .. }) => MICROBERT_ERR_SCRATCH_TOO_SMALL,
        Error::Run(RunError::OutputSize { .. }) => MICROBERT_ERR_OUTPUT_SIZE,
        Error::Run(RunError::NoSuchHead { .. }) => MICROBERT_ERR_NO_SUCH_HEAD,
        Error::Run(RunError::PositionOutOfRange { .. }) => MICROBERT_ERR_POSITION,
        Error::Run(RunError::PreparedTooSmall { .. }) => MICROBERT_ERR_PREPARED_TOO_SMALL,
        Error::Run(RunError::PreparedMismatch { .. }) => MICROBERT_ERR_PREPARED_MISMATCH,
        Error::Run(_) => MICROBERT_ERR_RUN,
    }
}

/// The kernels of this build (see the module docs).
#[cfg(all(feature = "std", target_arch = "x86_64"))]
fn kernels() -> microbert_host::HostKernels {
    static KERNELS: std::sync::OnceLock<microbert_host::HostKernels> = std::sync::OnceLock::new();
    *KERNELS.get_or_init(microbert_host::HostKernels::detect)
}

/// The kernels of this build (see the module docs).
#[cfg(target_arch = "aarch64")]
fn kernels() -> microbert_cortex_a::NeonKernels {
    microbert_cortex_a::NeonKernels::new()
}

/// The kernels of this build (see the module docs).
#[cfg(target_arch = "riscv64")]
fn kernels() -> microbert_riscv::RvvKernels {
    microbert_riscv::RvvKernels::new()
}

/// The kernels of this build (see the module docs).
#[cfg(not(any(
    all(feature = "std", target_arch = "x86_64"),
    target_arch = "aarch64",
    target_arch = "riscv64"
)))]
fn kernels() -> microbert::Scalar {
    microbert::Scalar
}

/// The name of the kernels in use, for logs.
pub(crate) fn kernels_name() -> &'static CStr {
    #[cfg(all(feature = "std", target_arch = "x86_64"))]
    return kernels().tier().c_name();
    #[cfg(not(all(feature = "std", target_arch = "x86_64")))]
    match kernels().name() {
        "neon" => c"neon",
        "neon-dotprod" => c"neon-dotprod",
        "neon-i8mm" => c"neon-i8mm",
        "rvv" => c"rvv",
        "scalar" => c"scalar",
        _ => c"other",
    }
}

/// Parses and validates a blob.
pub(crate) fn open(blob: &'static [u8]) -> Result<Model, Error> {
    Ok(microbert::parse(blob)?)
}

/// Width of the embedding.
pub(crate) fn hidden_size(model: &Model) -> usize {
    model.config.hidden_size as usize
}

/// Most tokens one sequence may have, `[CLS]` and `[SEP]` included (blob's position mode).
pub(crate) fn max_tokens(model: &Model) -> usize {
    Encoder::new(model, microbert::Scalar).max_tokens()
}

/// Bytes of the pooled Q.16 vector that [`embed`] keeps in the scratch buffer.
fn pooled_bytes(model: &Model) -> Option<usize> {
    hidden_size(model).checked_mul(size_of::<i32>())
}

/// Bytes [`embed`] may skip at the front of the scratch buffer to align its pooled vector:
/// reserved whatever the address, so the size rule does not depend on it.
const POOLED_ALIGN_SLACK: usize = align_of::<i32>() - 1;

/// Scratch for [`embed`] and [`embed_q16`] at `n_tokens`: the runtime's arena, the pooled
/// vector and its alignment slack; `None` on overflow.
pub(crate) fn scratch_bytes(model: &Model, n_tokens: usize) -> Option<usize> {
    let arena = microbert::scratch_bytes(model, n_tokens);
    if arena == usize::MAX {
        return None;
    }
    arena
        .checked_add(pooled_bytes(model)?)?
        .checked_add(POOLED_ALIGN_SLACK)
}

/// Bytes of prepared weights the kernels of this build want for `model` (0 when they read
/// the blob's weights in place; `usize::MAX` if the size does not fit).
pub(crate) fn prepared_bytes(model: &Model) -> usize {
    microbert::prepared_bytes(&kernels(), model)
}

/// Prepares `model`'s weights for the kernels of this build into `storage` (at least
/// [`prepared_bytes`] long).
pub(crate) fn prepare(model: &Model, storage: &mut [u8]) -> Result<(), Error> {
    microbert::prepare_weights(&kernels(), model, storage)?;
    Ok(())
}

/// WordPiece's `[CLS]` pieces `[SEP]` of `text` into `ids` (truncated to its length and to
/// [`max_tokens`]); a SentencePiece Unigram model is [`TokenizeError::NotWordPiece`] (it
/// needs the scratch of [`tokenize_with_scratch`]). Returns the number of ids written.
///
/// Separate from [`tokenize_with_scratch`] so that a firmware calling only
/// `microbert_tokenize` links no Unigram code (its normaliser and lattice are most of the
/// tokenizer's flash).
pub(crate) fn tokenize(model: &Model, text: &str, ids: &mut [u32]) -> Result<usize, Error> {
    let ids = capped(model, ids);
    Ok(Tokenizer::new(model).encode(text, ids)?.len)
}

/// [`tokenize`] for any model: SentencePiece Unigram's `<s>` pieces `</s>` with `scratch`
/// for its lattice, WordPiece as [`tokenize`] (the scratch unused).
pub(crate) fn tokenize_with_scratch(
    model: &Model,
    text: &str,
    scratch: &mut [u8],
    ids: &mut [u32],
) -> Result<usize, Error> {
    match UnigramTokenizer::new(model) {
        Some(unigram) => Ok(unigram.encode(text, scratch, capped(model, ids))?.len),
        None => tokenize(model, text, ids),
    }
}

/// `ids` cut to [`max_tokens`].
fn capped<'a>(model: &Model, ids: &'a mut [u32]) -> &'a mut [u32] {
    let cap = ids.len().min(max_tokens(model));
    ids.get_mut(..cap).unwrap_or_default()
}

/// Scratch bytes [`tokenize`] needs for `text`: the Unigram tokenizer's lattice, 0 for
/// WordPiece (which needs none).
pub(crate) fn tokenize_scratch_bytes(model: &Model, text: &str) -> usize {
    UnigramTokenizer::new(model).map_or(0, |u| u.scratch_bytes(text))
}

/// The encoder of this build's kernels, with the weights [`prepare`] wrote into `prepared`
/// (empty: the blob's, read in place).
fn encoder<'m>(
    model: &'m Model,
    prepared: &'m [u8],
) -> Result<Encoder<'m, 'static, impl Kernels + use<>>, Error> {
    let k = kernels();
    let encoder = Encoder::new(model, k);
    Ok(if prepared.is_empty() {
        encoder
    } else {
        encoder.with_prepared(PreparedWeights::from_bytes(&k, model, prepared)?)?
    })
}

/// The pooled Q.16 vector (before normalisation) of `ids` into `out` (`hidden_size` long).
pub(crate) fn embed_q16(
    model: &Model,
    prepared: &[u8],
    ids: &[u32],
    scratch: &mut [u8],
    out: &mut [i32],
) -> Result<(), Error> {
    Ok(encoder(model, prepared)?.embed(ids, scratch, out)?)
}

/// Labels of the blob's classifier (sequence or token); 0 without one.
pub(crate) fn num_labels(model: &Model) -> usize {
    model.tasks.num_labels().unwrap_or(0)
}

/// Whether the blob's classifier labels tokens (else sequences, or there is none).
pub(crate) fn tags_tokens(model: &Model) -> bool {
    matches!(
        model.tasks.classifier,
        Some((microbert::blob::ClassifierKind::Token, _))
    )
}

/// The blob's name of label `i` (a slice of the blob, not NUL-terminated).
pub(crate) fn label(model: &Model, i: usize) -> Option<&'static str> {
    model.tasks.label(i)
}

/// Sequence-classification logits (Q.16) of `ids` with optional token types into `out`
/// ([`num_labels`] long).
pub(crate) fn classify(
    model: &Model,
    prepared: &[u8],
    ids: &[u32],
    types: Option<&[u32]>,
    scratch: &mut [u8],
    out: &mut [i32],
) -> Result<(), Error> {
    Ok(encoder(model, prepared)?.classify(ids, types, scratch, out)?)
}

/// Token-classification logits (Q.16) of `ids` into `out` (`ids.len() * num_labels`, row
/// `t` for token `t`).
pub(crate) fn tag(
    model: &Model,
    prepared: &[u8],
    ids: &[u32],
    scratch: &mut [u8],
    out: &mut [i32],
) -> Result<(), Error> {
    Ok(encoder(model, prepared)?.tag(ids, None, scratch, out)?)
}

/// The L2-normalised embedding of `ids` into `out` (`hidden_size` long). The pooled vector
/// lives in `scratch` at its first 4-byte aligned address; the runtime's arena is the rest,
/// less the [`POOLED_ALIGN_SLACK`] bytes the alignment did not use, so a buffer shorter
/// than [`scratch_bytes`] fails wherever it starts.
pub(crate) fn embed(
    model: &Model,
    prepared: &[u8],
    ids: &[u32],
    scratch: &mut [u8],
    out: &mut [f32],
) -> Result<(), Error> {
    let too_small = |given: usize| {
        Error::from(RunError::ScratchTooSmall {
            given,
            needed: scratch_bytes(model, ids.len()).unwrap_or(usize::MAX),
        })
    };
    let given = scratch.len();
    let front = pooled_bytes(model).ok_or(Error::Length)?;
    let skip =
        (align_of::<i32>() - scratch.as_ptr() as usize % align_of::<i32>()) % align_of::<i32>();
    let unused = POOLED_ALIGN_SLACK - skip;
    let end = skip
        .checked_add(front)
        .and_then(|x| x.checked_add(unused))
        .filter(|&end| end <= given)
        .ok_or_else(|| too_small(given))?;
    let (head, arena) = scratch.split_at_mut(end);
    let pooled = head
        .get_mut(skip..skip + front)
        .ok_or_else(|| too_small(given))?;
    let pooled: &mut [i32] = bytemuck::try_cast_slice_mut(pooled).map_err(|_| Error::Align)?;
    embed_q16(model, prepared, ids, arena, pooled)?;
    microbert::output::normalize(pooled, out);
    Ok(())
}
