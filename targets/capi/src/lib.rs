//! # microbert C API
//!
//! `libmicrobert.a` (every target) and `libmicrobert.so` (hosts) over the `no_std` runtime,
//! with the header `include/microbert.h` generated from this crate by cbindgen
//! (`cargo xtask gen-header`; the doc comments below are the header's comments). No heap: the
//! caller owns the model storage, the token ids, the scratch buffer and the output.
//!
//! - `lib.rs`: the `extern "C"` functions: pointer and length checks, then slices;
//! - `glue.rs`: the calls into the runtime, the kernels of this build and the one match
//!   from runtime errors to status codes;
//! - `status.rs`: the status codes and their sentences.
//!
//! Without the `std` feature the crate is `no_std` and brings its own panic handler (a
//! trap instruction: a panic would be a bug, the runtime has none outside tests).
//! Linking and use: `docs/c-api.md`.
#![cfg_attr(not(feature = "std"), no_std)]
#![deny(unsafe_op_in_unsafe_fn, clippy::undocumented_unsafe_blocks)]

mod glue;
mod status;

pub use status::*;

use core::ffi::{c_char, c_void};
use glue::Error;

/// Bytes of a `microbert_model`, the same on every target.
pub const MICROBERT_MODEL_BYTES: usize = 4096;

/// Caller-owned storage for an opened model: declare one (static, on the stack or in a
/// struct; it is `MICROBERT_MODEL_BYTES` bytes and 8-byte aligned on every target) and fill
/// it with `microbert_open`. Its contents are private to the library. It holds no resources:
/// nothing needs closing, and a copy (assignment, `memcpy`) of an opened model is an opened
/// model. It borrows the blob it was opened from, which must stay unchanged while it is used,
/// and after `microbert_prepare` the prepared-weight buffer too.
#[repr(C)]
#[allow(non_camel_case_types)]
pub union microbert_model {
    /// The library's bytes.
    pub opaque: [u8; MICROBERT_MODEL_BYTES],
    /// Aligns the storage for 64-bit integers.
    pub align_u64: u64,
    /// Aligns the storage for pointers.
    pub align_ptr: *const c_void,
}

/// What `microbert_open` writes into the storage: a tag that says it was opened, the view,
/// and the caller's prepared-weight buffer (`microbert_prepare`; null and 0 until then).
#[repr(C)]
struct Slot {
    tag: u64,
    model: glue::Model,
    prepared: *const u8,
    prepared_len: usize,
}

impl Slot {
    /// The prepared weights the embed calls use (empty: the blob's, read in place).
    fn prepared(&self) -> &[u8] {
        if self.prepared.is_null() {
            return &[];
        }
        // SAFETY: `prepared` and `prepared_len` are only set together by a successful
        // `microbert_prepare`, from a buffer of at least that many bytes that the caller keeps
        // alive and unchanged while the model is used (its documented contract).
        unsafe { core::slice::from_raw_parts(self.prepared, self.prepared_len) }
    }
}

/// `Slot::tag` of an opened model ("mbert" and the layout's version).
const OPEN_TAG: u64 = u64::from_le_bytes(*b"mbert\0\0\x02");

// One size and one alignment on every target, and room for the view.
const _: () = assert!(size_of::<microbert_model>() == MICROBERT_MODEL_BYTES);
const _: () = assert!(align_of::<microbert_model>() == 8);
const _: () = assert!(size_of::<Slot>() <= MICROBERT_MODEL_BYTES);
const _: () = assert!(align_of::<Slot>() <= align_of::<microbert_model>());

/// `len` elements of `T` as a slice length, if they fit in `isize::MAX` bytes.
fn checked_len<T>(len: usize) -> Result<usize, Error> {
    match len.checked_mul(size_of::<T>()) {
        Some(bytes) if bytes <= isize::MAX as usize => Ok(len),
        _ => Err(Error::Length),
    }
}

/// A non-null, aligned pointer, or the error that it is not.
fn checked_ptr<T>(p: *const T) -> Result<*const T, Error> {
    if p.is_null() {
        Err(Error::Null)
    } else if !p.is_aligned() {
        Err(Error::Align)
    } else {
        Ok(p)
    }
}

/// The slot of a storage, checked: non-null, aligned, tagged by `microbert_open`.
///
/// # Safety
/// `model` is null or points to a `microbert_model` (opened or not).
unsafe fn opened_slot(model: *const microbert_model) -> Result<*const Slot, Error> {
    let slot = checked_ptr(model)?.cast::<Slot>();
    // SAFETY: `slot` is non-null and 8-byte aligned and points to `MICROBERT_MODEL_BYTES`
    // bytes (the caller's storage), of which the tag is the first 8; only the tag is read
    // until it says `microbert_open` wrote the whole slot.
    let tag = unsafe { core::ptr::addr_of!((*slot).tag).read() };
    if tag != OPEN_TAG {
        return Err(Error::NotOpen);
    }
    Ok(slot)
}

/// The slot of an opened storage.
///
/// # Safety
/// `model` is null or points to a `microbert_model` (opened or not); an opened one borrows
/// a blob (and a prepared buffer, if any) that is still alive.
unsafe fn opened<'m>(model: *const microbert_model) -> Result<&'m Slot, Error> {
    // SAFETY: forwarded contract.
    let slot = unsafe { opened_slot(model) }?;
    // SAFETY: the tag is only written (after the rest) by a successful `microbert_open`, so
    // the slot holds a valid view whose blob the caller keeps alive; it is only read.
    Ok(unsafe { &*slot })
}

/// 0 on success, else the error's status.
fn code(result: Result<(), Error>) -> i32 {
    match result {
        Ok(()) => MICROBERT_OK,
        Err(e) => glue::status(e),
    }
}

/// Validates the model blob `blob[0..len]` and fills `*model` with a view of it (no copy of
/// the weights, no heap).
///
/// The blob must stay alive and unchanged for as long as `*model` (or any copy of it) is
/// used: the model borrows it. Place it in flash, or in memory you do not free.
///
/// Returns `MICROBERT_OK`; `MICROBERT_ERR_NULL` if `blob` or `model` is null,
/// `MICROBERT_ERR_ALIGN` if `model` is not 8-byte aligned, `MICROBERT_ERR_LENGTH` for an
/// impossible `len`, or a `MICROBERT_ERR_BLOB_*` status for a malformed blob (header,
/// checksum, every section, shape and value range are checked). On any error after the
/// pointer checks, `*model` is left not opened (the other functions then return
/// `MICROBERT_ERR_NOT_OPEN`).
///
/// # Safety
/// `blob` points to `len` readable bytes and `model` to a writable `microbert_model`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn microbert_open(
    blob: *const u8,
    len: usize,
    model: *mut microbert_model,
) -> i32 {
    code((|| {
        let slot = checked_ptr(model.cast_const())?.cast::<Slot>().cast_mut();
        let blob = checked_ptr(blob)?;
        let len = checked_len::<u8>(len)?;
        // SAFETY: `slot` is non-null, aligned, and points to the caller's storage, of which
        // the tag is the first 8 bytes: marking it not opened first means a failed open
        // never leaves an old tag in front of a half-written view.
        unsafe { core::ptr::addr_of_mut!((*slot).tag).write(0) };
        // SAFETY: `blob` is non-null and points to `len` (<= isize::MAX) readable bytes that
        // the caller keeps alive and unchanged while the model is used (documented above).
        let bytes: &'static [u8] = unsafe { core::slice::from_raw_parts(blob, len) };
        let view = glue::open(bytes)?;
        // SAFETY: the storage is writable, aligned for `Slot` and large enough (the
        // assertions above); `write` does not read or drop the old bytes.
        unsafe {
            slot.write(Slot {
                tag: OPEN_TAG,
                model: view,
                prepared: core::ptr::null(),
                prepared_len: 0,
            })
        };
        Ok(())
    })())
}

/// Width of the model's embedding (the number of floats `microbert_embed` writes, or
/// integers `microbert_embed_q16` writes); 0 if `model` is null or not opened.
///
/// # Safety
/// `model` is null or points to a `microbert_model`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn microbert_hidden_size(model: *const microbert_model) -> usize {
    // SAFETY: forwarded contract.
    unsafe { opened(model) }.map_or(0, |s| glue::hidden_size(&s.model))
}

/// Most tokens one sequence may have, `[CLS]` and `[SEP]` included (in the blob's position
/// mode); 0 if `model` is null or not opened.
///
/// # Safety
/// `model` is null or points to a `microbert_model`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn microbert_max_tokens(model: *const microbert_model) -> usize {
    // SAFETY: forwarded contract.
    unsafe { opened(model) }.map_or(0, |s| glue::max_tokens(&s.model))
}

/// Bytes of scratch `microbert_embed` (and `microbert_embed_q16`) needs for a sequence of
/// `n_tokens` ids: the runtime's working memory (linear in `n_tokens`), plus
/// `4 * microbert_hidden_size(model)` bytes for the pooled vector `microbert_embed` keeps
/// in the scratch before normalising it, plus 3 bytes that let it align that vector
/// itself. The buffer may have any alignment. Returns 0 if `model` is null or not opened,
/// or if the size does not fit in a `size_t`.
///
/// # Safety
/// `model` is null or points to a `microbert_model`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn microbert_scratch_bytes(
    model: *const microbert_model,
    n_tokens: usize,
) -> usize {
    // SAFETY: forwarded contract.
    unsafe { opened(model) }
        .ok()
        .and_then(|s| glue::scratch_bytes(&s.model, n_tokens))
        .unwrap_or(0)
}

/// Bytes of storage `microbert_prepare` needs for the kernels of this library: the
/// model's dense weights re-laid out for their matrix products (AVX2: about the size of the
/// blob's int8 weights). 0 when the kernels read the blob's weights in place (scalar, NEON,
/// RVV, and x86-64 CPUs without AVX2), or if `model` is null or not opened; `SIZE_MAX` if
/// the size does not fit in a `size_t`.
///
/// # Safety
/// `model` is null or points to a `microbert_model`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn microbert_prepared_bytes(model: *const microbert_model) -> usize {
    // SAFETY: forwarded contract.
    unsafe { opened(model) }.map_or(0, |s| glue::prepared_bytes(&s.model))
}

/// Prepares the model's weights for the kernels of this library, once, into the
/// caller-owned buffer `buf[0..len]` (any alignment, at least
/// `microbert_prepared_bytes(model)` bytes). After it returns `MICROBERT_OK`, every
/// `microbert_embed` and `microbert_embed_q16` on `*model` (and on copies of it made
/// afterwards) reads the prepared weights: the same bits, faster.
///
/// The model keeps a pointer to `buf`: like the blob, `buf` must stay alive and unchanged
/// for as long as the model (or a copy) is used, and must not overlap the blob or the
/// model storage. A later `microbert_prepare` replaces it; `microbert_open` on the storage
/// forgets it. Call it before the model is shared between threads, not during their calls.
///
/// When `microbert_prepared_bytes(model)` is 0 it succeeds and does nothing (`buf` may then
/// be null), so a portable program can always call it.
///
/// Returns `MICROBERT_OK`; `MICROBERT_ERR_NULL` (null `model`, or null `buf` when bytes are
/// needed), `MICROBERT_ERR_NOT_OPEN`, `MICROBERT_ERR_ALIGN` (model storage),
/// `MICROBERT_ERR_LENGTH`, `MICROBERT_ERR_PREPARED_TOO_SMALL` (`len` below
/// `microbert_prepared_bytes`). On error the model is unchanged (it keeps the weights of an
/// earlier successful call, if any).
///
/// # Safety
/// `model` is null or points to a `microbert_model`; `buf` points to `len` writable bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn microbert_prepare(
    model: *mut microbert_model,
    buf: *mut c_void,
    len: usize,
) -> i32 {
    code((|| {
        // SAFETY: forwarded contract.
        let slot = unsafe { opened_slot(model.cast_const()) }?.cast_mut();
        // SAFETY: `slot` is an opened storage (checked); the view is only read.
        let view = unsafe { &(*slot).model };
        let needed = glue::prepared_bytes(view);
        if needed == 0 {
            return Ok(());
        }
        let buf = checked_ptr(buf.cast_const().cast::<u8>())?.cast_mut();
        let len = checked_len::<u8>(len)?;
        if len < needed {
            return Err(microbert::RunError::PreparedTooSmall { given: len, needed }.into());
        }
        // SAFETY: `buf` is non-null and points to `len` (>= `needed`, <= isize::MAX)
        // writable bytes that overlap neither the blob nor the storage and that nothing else
        // accesses during the call (the documented contract).
        let storage = unsafe { core::slice::from_raw_parts_mut(buf, needed) };
        glue::prepare(view, storage)?;
        // SAFETY: `slot` points to the caller's opened, writable storage; the two fields
        // are plain data written in place (the view is not touched).
        unsafe {
            core::ptr::addr_of_mut!((*slot).prepared).write(buf.cast_const());
            core::ptr::addr_of_mut!((*slot).prepared_len).write(needed);
        }
        Ok(())
    })())
}

/// Tokenizes the UTF-8 text `text[0..text_len]` (BERT WordPiece, bit-exact with Hugging
/// Face `tokenizers`) into `ids`: `[CLS]`, the word pieces, `[SEP]`. At most
/// `min(ids_cap, microbert_max_tokens(model))` ids are written: pieces that do not fit are
/// dropped, `[CLS]` and `[SEP]` always kept. `*n_ids` receives the number written (0 on
/// error). The text needs no NUL terminator; `text` may be null only when `text_len` is 0.
/// A model with a SentencePiece Unigram tokenizer (XLM-R, multilingual-e5) needs scratch:
/// `microbert_tokenize_with_scratch`, which takes any model.
///
/// Returns `MICROBERT_OK`; `MICROBERT_ERR_NULL` (null `model`, `ids`, `n_ids`, or `text`
/// with a nonzero length), `MICROBERT_ERR_NOT_OPEN`, `MICROBERT_ERR_UTF8` if the text is not
/// valid UTF-8, `MICROBERT_ERR_IDS_TOO_SMALL` if `ids_cap` < 2, `MICROBERT_ERR_ALIGN` or
/// `MICROBERT_ERR_LENGTH` for a misaligned `ids` or an impossible length,
/// `MICROBERT_ERR_TOKENIZE_NEEDS_SCRATCH` for a Unigram model.
///
/// # Safety
/// `model` is null or points to a `microbert_model`; `text` points to `text_len` readable
/// bytes, `ids` to `ids_cap` writable `uint32_t`, `n_ids` to a writable `size_t`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn microbert_tokenize(
    model: *const microbert_model,
    text: *const c_char,
    text_len: usize,
    ids: *mut u32,
    ids_cap: usize,
    n_ids: *mut usize,
) -> i32 {
    // SAFETY: forwarded contract.
    unsafe { tokenize_with(model, text, text_len, ids, ids_cap, n_ids, glue::tokenize) }
}

/// Bytes of scratch `microbert_tokenize_with_scratch` needs for the UTF-8 text
/// `text[0..text_len]`: for a SentencePiece Unigram tokenizer its segmentation lattice
/// (about 17 bytes per byte of the text's longest space-separated segment after
/// normalisation: a Chinese sentence without spaces is one segment), 0 for WordPiece (which
/// needs none) or a text that normalises to nothing. Also 0 if `model` is null or not
/// opened, or the text is null or not UTF-8: the tokenize call then says which.
///
/// # Safety
/// `model` is null or points to a `microbert_model`; `text` points to `text_len` readable
/// bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn microbert_tokenize_scratch_bytes(
    model: *const microbert_model,
    text: *const c_char,
    text_len: usize,
) -> usize {
    (|| {
        // SAFETY: forwarded contract.
        let model = &unsafe { opened(model) }?.model;
        // SAFETY: forwarded contract.
        let text = unsafe { text_arg(text, text_len) }?;
        Ok::<_, Error>(glue::tokenize_scratch_bytes(model, text))
    })()
    .unwrap_or(0)
}

/// `microbert_tokenize` for any model: with `scratch[0..scratch_len]` (any alignment, at
/// least `microbert_tokenize_scratch_bytes(model, text, text_len)` bytes; its contents
/// before and after do not matter) a SentencePiece Unigram model writes `<s>`, the pieces,
/// `</s>` (bit-exact with Hugging Face `tokenizers`), truncated as `microbert_tokenize`
/// truncates. A WordPiece model ignores the scratch. `scratch` may be null only when
/// `scratch_len` is 0. Nothing is allocated.
///
/// Returns what `microbert_tokenize` returns, and
/// `MICROBERT_ERR_TOKENIZE_SCRATCH_TOO_SMALL` when the scratch is too small for this text.
///
/// # Safety
/// As `microbert_tokenize`, and `scratch` points to `scratch_len` writable bytes that
/// overlap none of the other buffers.
#[unsafe(no_mangle)]
#[allow(clippy::too_many_arguments)]
pub unsafe extern "C" fn microbert_tokenize_with_scratch(
    model: *const microbert_model,
    text: *const c_char,
    text_len: usize,
    scratch: *mut c_void,
    scratch_len: usize,
    ids: *mut u32,
    ids_cap: usize,
    n_ids: *mut usize,
) -> i32 {
    let scratch = match checked_len::<u8>(scratch_len) {
        Ok(0) => Ok(&mut [][..]),
        Ok(len) => checked_ptr(scratch.cast_const().cast::<u8>()).map(|p| {
            // SAFETY: `scratch` is non-null and points to `len` (which fits isize) writable
            // bytes that nothing else accesses during the call (the documented contract).
            unsafe { core::slice::from_raw_parts_mut(p.cast_mut(), len) }
        }),
        Err(e) => Err(e),
    };
    match scratch {
        // SAFETY: forwarded contract.
        Ok(scratch) => unsafe {
            tokenize_with(
                model,
                text,
                text_len,
                ids,
                ids_cap,
                n_ids,
                |model, text, ids| glue::tokenize_with_scratch(model, text, scratch, ids),
            )
        },
        Err(e) => {
            if let Ok(n_ids) = checked_ptr(n_ids.cast_const()) {
                // SAFETY: `n_ids` is non-null and aligned, and points to a writable `size_t`.
                unsafe { n_ids.cast_mut().write(0) };
            }
            glue::status(e)
        }
    }
}

/// The text argument of the tokenize calls: `text_len` bytes of UTF-8 (`text` may be null
/// when `text_len` is 0).
///
/// # Safety
/// `text` points to `text_len` readable bytes that stay unchanged while the result is used.
unsafe fn text_arg<'a>(text: *const c_char, text_len: usize) -> Result<&'a str, Error> {
    let text_len = checked_len::<u8>(text_len)?;
    let bytes: &[u8] = if text_len == 0 {
        &[]
    } else {
        // SAFETY: `text` is non-null (checked) and points to `text_len` readable bytes.
        unsafe { core::slice::from_raw_parts(checked_ptr(text)?.cast::<u8>(), text_len) }
    };
    core::str::from_utf8(bytes).map_err(|_| Error::Utf8)
}

/// The body of the tokenize calls, after the scratch (if any) is a slice: `tokenize` is
/// the glue function (generic, so that each C function links only its own tokenizers).
///
/// # Safety
/// The contract of `microbert_tokenize`.
unsafe fn tokenize_with(
    model: *const microbert_model,
    text: *const c_char,
    text_len: usize,
    ids: *mut u32,
    ids_cap: usize,
    n_ids: *mut usize,
    tokenize: impl FnOnce(&glue::Model, &str, &mut [u32]) -> Result<usize, Error>,
) -> i32 {
    let n_ids = match checked_ptr(n_ids.cast_const()) {
        Ok(p) => p.cast_mut(),
        Err(e) => return glue::status(e),
    };
    // SAFETY: `n_ids` is non-null and aligned, and points to a writable `size_t`.
    unsafe { n_ids.write(0) };
    code((|| {
        // SAFETY: forwarded contract.
        let model = &unsafe { opened(model) }?.model;
        let ids = checked_ptr(ids.cast_const())?.cast_mut();
        let ids_cap = checked_len::<u32>(ids_cap)?;
        // SAFETY: forwarded contract.
        let text = unsafe { text_arg(text, text_len) }?;
        // SAFETY: `ids` is non-null, aligned, and points to `ids_cap` (whose byte size fits
        // isize) writable `uint32_t` that nothing else accesses during the call.
        let ids = unsafe { core::slice::from_raw_parts_mut(ids, ids_cap) };
        let n = tokenize(model, text, ids)?;
        // SAFETY: as above.
        unsafe { n_ids.write(n) };
        Ok(())
    })())
}

/// The slices of an embedding call, after every pointer and length check.
struct EmbedArgs<'a, T> {
    model: &'a glue::Model,
    prepared: &'a [u8],
    ids: &'a [u32],
    scratch: &'a mut [u8],
    out: &'a mut [T],
}

/// Checks the arguments of `microbert_embed*` and builds their slices (`out`: exactly
/// `hidden_size` elements).
///
/// # Safety
/// The contract of `microbert_embed`.
unsafe fn embed_args<'a, T>(
    model: *const microbert_model,
    ids: *const u32,
    n_ids: usize,
    scratch: *mut c_void,
    scratch_len: usize,
    out: *mut T,
    out_len: usize,
) -> Result<EmbedArgs<'a, T>, Error> {
    // SAFETY: forwarded contract.
    unsafe {
        call_args(
            model,
            ids,
            n_ids,
            scratch,
            scratch_len,
            out,
            out_len,
            |m, _| Some(glue::hidden_size(m)),
        )
    }
}

/// [`embed_args`] for any call on token ids with an output of `needed(model, n_ids)`
/// elements (`out` is exactly that long).
///
/// # Safety
/// The contract of `microbert_embed`, with `out_len` elements of `T` at `out`.
#[allow(clippy::too_many_arguments)]
unsafe fn call_args<'a, T>(
    model: *const microbert_model,
    ids: *const u32,
    n_ids: usize,
    scratch: *mut c_void,
    scratch_len: usize,
    out: *mut T,
    out_len: usize,
    needed: impl FnOnce(&glue::Model, usize) -> Option<usize>,
) -> Result<EmbedArgs<'a, T>, Error> {
    // SAFETY: forwarded contract.
    let slot = unsafe { opened(model) }?;
    let ids = checked_ptr(ids)?;
    let n_ids = checked_len::<u32>(n_ids)?;
    let scratch = checked_ptr(scratch.cast_const().cast::<u8>())?.cast_mut();
    let scratch_len = checked_len::<u8>(scratch_len)?;
    let out = checked_ptr(out.cast_const())?.cast_mut();
    let hidden = needed(&slot.model, n_ids).ok_or(Error::Length)?;
    checked_len::<T>(hidden)?;
    if out_len < hidden {
        return Err(microbert::RunError::OutputSize {
            given: out_len,
            needed: hidden,
        }
        .into());
    }
    // SAFETY: each pointer is non-null and aligned (checked), each length fits isize
    // (checked; `hidden <= out_len`), and the caller gives `n_ids` readable ids,
    // `scratch_len` writable bytes and `out_len` writable elements, none of them overlapping
    // and none accessed by anything else during the call (the documented contract).
    unsafe {
        Ok(EmbedArgs {
            model: &slot.model,
            prepared: slot.prepared(),
            ids: core::slice::from_raw_parts(ids, n_ids),
            scratch: core::slice::from_raw_parts_mut(scratch, scratch_len),
            out: core::slice::from_raw_parts_mut(out, hidden),
        })
    }
}

/// Sentence embedding of the token ids `ids[0..n_ids]` (as `microbert_tokenize` writes
/// them) with the model's pooling, L2-normalised: `out[0..microbert_hidden_size(model)]`
/// receives it (`out_len` must be at least that; more is left untouched). Bit-identical to
/// `microbert embed` on the same blob, on every target.
///
/// `scratch` is working memory of `scratch_len` bytes, at least
/// `microbert_scratch_bytes(model, n_ids)`, with any alignment; its contents before and
/// after the call do not matter. Nothing else is allocated. The weights are the ones
/// `microbert_prepare` prepared, if it was called, else the blob's. One call uses one
/// scratch buffer: calls on the same model from several threads are safe when each has its
/// own scratch and output.
///
/// Returns `MICROBERT_OK`; `MICROBERT_ERR_NULL`, `MICROBERT_ERR_NOT_OPEN`,
/// `MICROBERT_ERR_ALIGN` (ids or out misaligned), `MICROBERT_ERR_LENGTH`,
/// `MICROBERT_ERR_OUTPUT_SIZE` (`out_len` too small), `MICROBERT_ERR_SCRATCH_TOO_SMALL`,
/// `MICROBERT_ERR_EMPTY_INPUT` (`n_ids` is 0), `MICROBERT_ERR_TOO_MANY_TOKENS` (more than
/// `microbert_max_tokens`), `MICROBERT_ERR_TOKEN_OUT_OF_VOCAB`. On error `out` holds
/// nothing meaningful.
///
/// # Safety
/// `model` is null or points to a `microbert_model`; `ids` points to `n_ids` readable
/// `uint32_t`, `scratch` to `scratch_len` writable bytes, `out` to `out_len` writable
/// floats, none of them overlapping.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn microbert_embed(
    model: *const microbert_model,
    ids: *const u32,
    n_ids: usize,
    scratch: *mut c_void,
    scratch_len: usize,
    out: *mut f32,
    out_len: usize,
) -> i32 {
    code((|| {
        // SAFETY: forwarded contract.
        let a = unsafe { embed_args(model, ids, n_ids, scratch, scratch_len, out, out_len) }?;
        glue::embed(a.model, a.prepared, a.ids, a.scratch, a.out)
    })())
}

/// As `microbert_embed`, but `out` receives the pooled vector in Q.16 fixed point
/// (`value / 65536.0` is the real number) before L2 normalisation: integers only, for cores
/// without an FPU (the library's float code then is not linked). Its FNV-1a 64 hash over the
/// little-endian bytes is what `microbert embed --hash` prints. Needs no more scratch than
/// `microbert_embed` (`microbert_scratch_bytes` is enough for both).
///
/// # Safety
/// As `microbert_embed`, with `out` pointing to `out_len` writable `int32_t`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn microbert_embed_q16(
    model: *const microbert_model,
    ids: *const u32,
    n_ids: usize,
    scratch: *mut c_void,
    scratch_len: usize,
    out: *mut i32,
    out_len: usize,
) -> i32 {
    code((|| {
        // SAFETY: forwarded contract.
        let a = unsafe { embed_args(model, ids, n_ids, scratch, scratch_len, out, out_len) }?;
        glue::embed_q16(a.model, a.prepared, a.ids, a.scratch, a.out)
    })())
}

/// Labels of the blob's task head: the number of logits `microbert_classify` writes (a
/// sequence classifier; 1 is a raw score, as cross-encoders give) or `microbert_tag`
/// writes per token (a token classifier); 0 if the blob has no classifier, or `model` is
/// null or not opened.
///
/// # Safety
/// `model` is null or points to a `microbert_model`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn microbert_num_labels(model: *const microbert_model) -> usize {
    // SAFETY: forwarded contract.
    unsafe { opened(model) }.map_or(0, |s| glue::num_labels(&s.model))
}

/// Whether the blob's classifier labels tokens (`microbert_tag`): 1, or 0 for a sequence
/// classifier (`microbert_classify`), no classifier, or a null or unopened `model`.
///
/// # Safety
/// `model` is null or points to a `microbert_model`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn microbert_tags_tokens(model: *const microbert_model) -> i32 {
    // SAFETY: forwarded contract.
    unsafe { opened(model) }.map_or(0, |s| i32::from(glue::tags_tokens(&s.model)))
}

/// The name of label `i` (the checkpoint's `id2label`), as `*len` bytes of UTF-8 inside
/// the blob: **not** NUL-terminated, valid while the blob is. Null (and `*len` 0) if the
/// blob has no name for it, `i` is out of range, or `model` is null or not opened; `len`
/// may be null.
///
/// # Safety
/// `model` is null or points to a `microbert_model`; `len` is null or points to a
/// writable `size_t`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn microbert_label(
    model: *const microbert_model,
    i: usize,
    len: *mut usize,
) -> *const c_char {
    // SAFETY: forwarded contract.
    let name = unsafe { opened(model) }
        .ok()
        .and_then(|s| glue::label(&s.model, i));
    if let Ok(len) = checked_ptr(len.cast_const()) {
        // SAFETY: `len` is non-null and aligned, and points to a writable `size_t`.
        unsafe { len.cast_mut().write(name.map_or(0, str::len)) };
    }
    name.map_or(core::ptr::null(), |n| n.as_ptr().cast())
}

/// Sequence classification of the token ids `ids[0..n_ids]` (`microbert_tokenize`'s),
/// with token types `token_types[0..n_ids]` (0 / 1 for the two texts of a pair; null: all
/// 0): `logits[0..microbert_num_labels(model)]` receives the classifier's logits in Q.16
/// fixed point (`value / 65536.0`; the label is the largest, a one-label head's logit is
/// its score). Bit-identical to `microbert classify` on the same blob. Scratch and
/// threads as `microbert_embed` (`microbert_scratch_bytes(model, n_ids)` is enough).
///
/// Returns `MICROBERT_OK`; the errors of `microbert_embed`, `MICROBERT_ERR_NO_SUCH_HEAD`
/// when the blob has no sequence classifier, `MICROBERT_ERR_TOKEN_TYPE` for a token type
/// the model does not have.
///
/// # Safety
/// As `microbert_embed`; `token_types` is null or points to `n_ids` readable `uint32_t`;
/// `logits` points to `logits_len` writable `int32_t`.
#[unsafe(no_mangle)]
#[allow(clippy::too_many_arguments)]
pub unsafe extern "C" fn microbert_classify(
    model: *const microbert_model,
    ids: *const u32,
    token_types: *const u32,
    n_ids: usize,
    scratch: *mut c_void,
    scratch_len: usize,
    logits: *mut i32,
    logits_len: usize,
) -> i32 {
    code((|| {
        // SAFETY: forwarded contract.
        let a = unsafe {
            call_args(
                model,
                ids,
                n_ids,
                scratch,
                scratch_len,
                logits,
                logits_len,
                |m, _| Some(glue::num_labels(m)),
            )
        }?;
        let types = if token_types.is_null() {
            None
        } else {
            let types = checked_ptr(token_types)?;
            // SAFETY: non-null and aligned (checked); `n_ids` readable `uint32_t` (the
            // contract; `call_args` checked the length fits isize for `ids`).
            Some(unsafe { core::slice::from_raw_parts(types, a.ids.len()) })
        };
        glue::classify(a.model, a.prepared, a.ids, types, a.scratch, a.out)
    })())
}

/// Token classification of the token ids `ids[0..n_ids]`: `logits` receives
/// `n_ids * microbert_num_labels(model)` Q.16 logits, row `t` (of `num_labels`) for token
/// `t`, `[CLS]` and `[SEP]` included (a caller labels each word by its first piece).
/// Bit-identical to `microbert tag`'s logits. Scratch and threads as `microbert_embed`.
///
/// Returns `MICROBERT_OK`; the errors of `microbert_embed`, `MICROBERT_ERR_NO_SUCH_HEAD`
/// when the blob has no token classifier.
///
/// # Safety
/// As `microbert_embed`; `logits` points to `logits_len` writable `int32_t`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn microbert_tag(
    model: *const microbert_model,
    ids: *const u32,
    n_ids: usize,
    scratch: *mut c_void,
    scratch_len: usize,
    logits: *mut i32,
    logits_len: usize,
) -> i32 {
    code((|| {
        // SAFETY: forwarded contract.
        let a = unsafe {
            call_args(
                model,
                ids,
                n_ids,
                scratch,
                scratch_len,
                logits,
                logits_len,
                |m, n| n.checked_mul(glue::num_labels(m)),
            )
        }?;
        glue::tag(a.model, a.prepared, a.ids, a.scratch, a.out)
    })())
}

/// The sentence (static, NUL-terminated, never null) that explains a status returned by
/// this library; unknown values get "unknown microbert status".
#[unsafe(no_mangle)]
pub extern "C" fn microbert_status_message(status: i32) -> *const c_char {
    message(status).as_ptr()
}

/// The name of the kernels this library runs (static, NUL-terminated): "scalar", on x86-64
/// hosts the best tier the CPU has ("avx2", "avx-vnni", "avx512-vnni", "amx"), "neon",
/// "neon-dotprod", "neon-i8mm" or "rvv".
#[unsafe(no_mangle)]
pub extern "C" fn microbert_kernels() -> *const c_char {
    glue::kernels_name().as_ptr()
}

/// Without std (bare metal), a panic executes a trap instruction, so the device's fault
/// handler reports it; it cannot happen unless the library has a bug.
#[cfg(not(feature = "std"))]
#[panic_handler]
fn panic(_: &core::panic::PanicInfo<'_>) -> ! {
    #[cfg(target_arch = "arm")]
    // SAFETY: `udf` raises an undefined-instruction fault and does not return.
    unsafe {
        core::arch::asm!("udf #0", options(noreturn))
    };
    #[cfg(any(target_arch = "riscv32", target_arch = "riscv64"))]
    // SAFETY: `unimp` raises an illegal-instruction exception and does not return.
    unsafe {
        core::arch::asm!("unimp", options(noreturn))
    };
    #[allow(unreachable_code)]
    loop {
        core::hint::spin_loop();
    }
}

#[cfg(test)]
mod tests;
