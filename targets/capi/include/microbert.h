/*
 * microbert: integer-only int8 BERT sentence embeddings, C API.
 *
 * Link libmicrobert.a (or -lmicrobert); see docs/c-api.md. No function allocates: the caller
 * owns the model storage, the token ids, the scratch buffer and the output. A typical run:
 *
 *     static microbert_model model;          (or on the stack; MICROBERT_MODEL_BYTES bytes)
 *     int32_t s = microbert_open(blob, blob_len, &model);     (blob must outlive model)
 *     size_t pb = microbert_prepared_bytes(&model);           (0 unless AVX2: then ~weights)
 *     s = microbert_prepare(&model, pb ? malloc(pb) : NULL, pb); (buffer must outlive model)
 *     uint32_t ids[128]; size_t n;
 *     s = microbert_tokenize(&model, text, strlen(text), ids, 128, &n);
 *     size_t need = microbert_scratch_bytes(&model, n);       (any alignment)
 *     float out[384];                                          (microbert_hidden_size)
 *     s = microbert_embed(&model, ids, n, scratch, need, out, 384);
 *     if (s != MICROBERT_OK) puts(microbert_status_message(s));
 *
 * Every function that can fail returns an int32_t status: MICROBERT_OK (0) or a negative
 * MICROBERT_ERR_* below. Null pointers, short buffers, misaligned pointers, invalid UTF-8
 * and malformed blobs are reported, never undefined behaviour. A model is read-only once
 * opened (and prepared): calls from several threads may share it, each with its own
 * scratch and output.
 */
#ifndef MICROBERT_H
#define MICROBERT_H

/* Generated from targets/capi/src by cbindgen (`cargo xtask gen-header`): do not edit. */

#include <stddef.h>
#include <stdint.h>

/**
 * Bytes of a `microbert_model`, the same on every target.
 */
#define MICROBERT_MODEL_BYTES 4096

/**
 * Success.
 */
#define MICROBERT_OK 0

/**
 * A pointer argument that must not be null is null.
 */
#define MICROBERT_ERR_NULL -1

/**
 * The `microbert_model` storage was not filled by a successful `microbert_open`.
 */
#define MICROBERT_ERR_NOT_OPEN -2

/**
 * The text is not valid UTF-8.
 */
#define MICROBERT_ERR_UTF8 -3

/**
 * A pointer is not aligned for its type (the model storage: 8 bytes; token ids, outputs
 * and `n_ids`: their C types' alignment). Scratch and prepared-weight buffers may have any
 * alignment.
 */
#define MICROBERT_ERR_ALIGN -4

/**
 * A length argument is larger than any object can be (over `PTRDIFF_MAX` bytes).
 */
#define MICROBERT_ERR_LENGTH -5

/**
 * The blob is invalid in a way this table does not name yet.
 */
#define MICROBERT_ERR_BLOB -100

/**
 * The blob is shorter than its fixed header.
 */
#define MICROBERT_ERR_BLOB_TOO_SHORT -101

/**
 * The blob does not start with the microbert magic bytes.
 */
#define MICROBERT_ERR_BLOB_MAGIC -102

/**
 * The blob's format version is not the one this library reads.
 */
#define MICROBERT_ERR_BLOB_VERSION -103

/**
 * The blob's header length differs from the `len` given.
 */
#define MICROBERT_ERR_BLOB_LENGTH -104

/**
 * The blob's checksum does not hold: the bytes are corrupt.
 */
#define MICROBERT_ERR_BLOB_CHECKSUM -105

/**
 * A section of the blob cannot be decoded.
 */
#define MICROBERT_ERR_BLOB_DECODE -106

/**
 * The blob has bytes after its last section.
 */
#define MICROBERT_ERR_BLOB_TRAILING -107

/**
 * A configuration value of the blob is out of the supported range.
 */
#define MICROBERT_ERR_BLOB_CONFIG -108

/**
 * A tensor of the blob has the wrong element type.
 */
#define MICROBERT_ERR_BLOB_DTYPE -109

/**
 * A tensor of the blob has the wrong shape or length.
 */
#define MICROBERT_ERR_BLOB_SHAPE -110

/**
 * A tensor of the blob holds an out-of-range value.
 */
#define MICROBERT_ERR_BLOB_VALUE -111

/**
 * The blob's vocabulary section is inconsistent.
 */
#define MICROBERT_ERR_BLOB_VOCAB -112

/**
 * The text cannot be tokenized, for a reason this table does not name yet.
 */
#define MICROBERT_ERR_TOKENIZE -200

/**
 * The id buffer cannot hold even `[CLS]` and `[SEP]` (capacity below 2).
 */
#define MICROBERT_ERR_IDS_TOO_SMALL -201

/**
 * The tokenizer scratch is smaller than `microbert_tokenize_scratch_bytes` says this text
 * needs.
 */
#define MICROBERT_ERR_TOKENIZE_SCRATCH_TOO_SMALL -202

/**
 * The model's tokenizer (SentencePiece Unigram) needs scratch: call
 * `microbert_tokenize_with_scratch`.
 */
#define MICROBERT_ERR_TOKENIZE_NEEDS_SCRATCH -203

/**
 * Inference cannot run, for a reason this table does not name yet.
 */
#define MICROBERT_ERR_RUN -300

/**
 * The token sequence is empty.
 */
#define MICROBERT_ERR_EMPTY_INPUT -301

/**
 * A token id is outside the vocabulary.
 */
#define MICROBERT_ERR_TOKEN_OUT_OF_VOCAB -302

/**
 * A token type id is outside the model's token types.
 */
#define MICROBERT_ERR_TOKEN_TYPE -303

/**
 * More tokens than `microbert_max_tokens` allows.
 */
#define MICROBERT_ERR_TOO_MANY_TOKENS -304

/**
 * The scratch buffer is smaller than `microbert_scratch_bytes` says it must be.
 */
#define MICROBERT_ERR_SCRATCH_TOO_SMALL -305

/**
 * The output buffer is shorter than `microbert_hidden_size` elements.
 */
#define MICROBERT_ERR_OUTPUT_SIZE -306

/**
 * The model has no such head.
 */
#define MICROBERT_ERR_NO_SUCH_HEAD -307

/**
 * A position is outside the model's position table.
 */
#define MICROBERT_ERR_POSITION -308

/**
 * The buffer given to `microbert_prepare` is shorter than `microbert_prepared_bytes`.
 */
#define MICROBERT_ERR_PREPARED_TOO_SMALL -309

/**
 * Prepared weights do not belong to this model and these kernels.
 */
#define MICROBERT_ERR_PREPARED_MISMATCH -310

/**
 * Caller-owned storage for an opened model: declare one (static, on the stack or in a
 * struct; it is `MICROBERT_MODEL_BYTES` bytes and 8-byte aligned on every target) and fill
 * it with `microbert_open`. Its contents are private to the library. It holds no resources:
 * nothing needs closing, and a copy (assignment, `memcpy`) of an opened model is an opened
 * model. It borrows the blob it was opened from, which must stay unchanged while it is used,
 * and after `microbert_prepare` the prepared-weight buffer too.
 */
typedef union {
    /**
     * The library's bytes.
     */
    uint8_t opaque[MICROBERT_MODEL_BYTES];
    /**
     * Aligns the storage for 64-bit integers.
     */
    uint64_t align_u64;
    /**
     * Aligns the storage for pointers.
     */
    const void *align_ptr;
} microbert_model;

#ifdef __cplusplus
extern "C" {
#endif // __cplusplus

/**
 * Validates the model blob `blob[0..len]` and fills `*model` with a view of it (no copy of
 * the weights, no heap).
 *
 * The blob must stay alive and unchanged for as long as `*model` (or any copy of it) is
 * used: the model borrows it. Place it in flash, or in memory you do not free.
 *
 * Returns `MICROBERT_OK`; `MICROBERT_ERR_NULL` if `blob` or `model` is null,
 * `MICROBERT_ERR_ALIGN` if `model` is not 8-byte aligned, `MICROBERT_ERR_LENGTH` for an
 * impossible `len`, or a `MICROBERT_ERR_BLOB_*` status for a malformed blob (header,
 * checksum, every section, shape and value range are checked). On any error after the
 * pointer checks, `*model` is left not opened (the other functions then return
 * `MICROBERT_ERR_NOT_OPEN`).
 *
 * # Safety
 * `blob` points to `len` readable bytes and `model` to a writable `microbert_model`.
 */
int32_t microbert_open(const uint8_t *blob, size_t len, microbert_model *model);

/**
 * Width of the model's embedding (the number of floats `microbert_embed` writes, or
 * integers `microbert_embed_q16` writes); 0 if `model` is null or not opened.
 *
 * # Safety
 * `model` is null or points to a `microbert_model`.
 */
size_t microbert_hidden_size(const microbert_model *model);

/**
 * Most tokens one sequence may have, `[CLS]` and `[SEP]` included (in the blob's position
 * mode); 0 if `model` is null or not opened.
 *
 * # Safety
 * `model` is null or points to a `microbert_model`.
 */
size_t microbert_max_tokens(const microbert_model *model);

/**
 * Bytes of scratch `microbert_embed` (and `microbert_embed_q16`) needs for a sequence of
 * `n_tokens` ids: the runtime's working memory (linear in `n_tokens`), plus
 * `4 * microbert_hidden_size(model)` bytes for the pooled vector `microbert_embed` keeps
 * in the scratch before normalising it, plus 3 bytes that let it align that vector
 * itself. The buffer may have any alignment. Returns 0 if `model` is null or not opened,
 * or if the size does not fit in a `size_t`.
 *
 * # Safety
 * `model` is null or points to a `microbert_model`.
 */
size_t microbert_scratch_bytes(const microbert_model *model, size_t n_tokens);

/**
 * Bytes of storage `microbert_prepare` needs for the kernels of this library: the
 * model's dense weights re-laid out for their matrix products (AVX2: about the size of the
 * blob's int8 weights). 0 when the kernels read the blob's weights in place (scalar, NEON,
 * RVV, and x86-64 CPUs without AVX2), or if `model` is null or not opened; `SIZE_MAX` if
 * the size does not fit in a `size_t`.
 *
 * # Safety
 * `model` is null or points to a `microbert_model`.
 */
size_t microbert_prepared_bytes(const microbert_model *model);

/**
 * Prepares the model's weights for the kernels of this library, once, into the
 * caller-owned buffer `buf[0..len]` (any alignment, at least
 * `microbert_prepared_bytes(model)` bytes). After it returns `MICROBERT_OK`, every
 * `microbert_embed` and `microbert_embed_q16` on `*model` (and on copies of it made
 * afterwards) reads the prepared weights: the same bits, faster.
 *
 * The model keeps a pointer to `buf`: like the blob, `buf` must stay alive and unchanged
 * for as long as the model (or a copy) is used, and must not overlap the blob or the
 * model storage. A later `microbert_prepare` replaces it; `microbert_open` on the storage
 * forgets it. Call it before the model is shared between threads, not during their calls.
 *
 * When `microbert_prepared_bytes(model)` is 0 it succeeds and does nothing (`buf` may then
 * be null), so a portable program can always call it.
 *
 * Returns `MICROBERT_OK`; `MICROBERT_ERR_NULL` (null `model`, or null `buf` when bytes are
 * needed), `MICROBERT_ERR_NOT_OPEN`, `MICROBERT_ERR_ALIGN` (model storage),
 * `MICROBERT_ERR_LENGTH`, `MICROBERT_ERR_PREPARED_TOO_SMALL` (`len` below
 * `microbert_prepared_bytes`). On error the model is unchanged (it keeps the weights of an
 * earlier successful call, if any).
 *
 * # Safety
 * `model` is null or points to a `microbert_model`; `buf` points to `len` writable bytes.
 */
int32_t microbert_prepare(microbert_model *model, void *buf, size_t len);

/**
 * Tokenizes the UTF-8 text `text[0..text_len]` (BERT WordPiece, bit-exact with Hugging
 * Face `tokenizers`) into `ids`: `[CLS]`, the word pieces, `[SEP]`. At most
 * `min(ids_cap, microbert_max_tokens(model))` ids are written: pieces that do not fit are
 * dropped, `[CLS]` and `[SEP]` always kept. `*n_ids` receives the number written (0 on
 * error). The text needs no NUL terminator; `text` may be null only when `text_len` is 0.
 * A model with a SentencePiece Unigram tokenizer (XLM-R, multilingual-e5) needs scratch:
 * `microbert_tokenize_with_scratch`, which takes any model.
 *
 * Returns `MICROBERT_OK`; `MICROBERT_ERR_NULL` (null `model`, `ids`, `n_ids`, or `text`
 * with a nonzero length), `MICROBERT_ERR_NOT_OPEN`, `MICROBERT_ERR_UTF8` if the text is not
 * valid UTF-8, `MICROBERT_ERR_IDS_TOO_SMALL` if `ids_cap` < 2, `MICROBERT_ERR_ALIGN` or
 * `MICROBERT_ERR_LENGTH` for a misaligned `ids` or an impossible length,
 * `MICROBERT_ERR_TOKENIZE_NEEDS_SCRATCH` for a Unigram model.
 *
 * # Safety
 * `model` is null or points to a `microbert_model`; `text` points to `text_len` readable
 * bytes, `ids` to `ids_cap` writable `uint32_t`, `n_ids` to a writable `size_t`.
 */
int32_t microbert_tokenize(const microbert_model *model,
                           const char *text,
                           size_t text_len,
                           uint32_t *ids,
                           size_t ids_cap,
                           size_t *n_ids);

/**
 * Bytes of scratch `microbert_tokenize_with_scratch` needs for the UTF-8 text
 * `text[0..text_len]`: for a SentencePiece Unigram tokenizer its segmentation lattice
 * (about 17 bytes per byte of the text's longest space-separated segment after
 * normalisation: a Chinese sentence without spaces is one segment), 0 for WordPiece (which
 * needs none) or a text that normalises to nothing. Also 0 if `model` is null or not
 * opened, or the text is null or not UTF-8: the tokenize call then says which.
 *
 * # Safety
 * `model` is null or points to a `microbert_model`; `text` points to `text_len` readable
 * bytes.
 */
size_t microbert_tokenize_scratch_bytes(const microbert_model *model,
                                        const char *text,
                                        size_t text_len);

/**
 * `microbert_tokenize` for any model: with `scratch[0..scratch_len]` (any alignment, at
 * least `microbert_tokenize_scratch_bytes(model, text, text_len)` bytes; its contents
 * before and after do not matter) a SentencePiece Unigram model writes `<s>`, the pieces,
 * `</s>` (bit-exact with Hugging Face `tokenizers`), truncated as `microbert_tokenize`
 * truncates. A WordPiece model ignores the scratch. `scratch` may be null only when
 * `scratch_len` is 0. Nothing is allocated.
 *
 * Returns what `microbert_tokenize` returns, and
 * `MICROBERT_ERR_TOKENIZE_SCRATCH_TOO_SMALL` when the scratch is too small for this text.
 *
 * # Safety
 * As `microbert_tokenize`, and `scratch` points to `scratch_len` writable bytes that
 * overlap none of the other buffers.
 */
int32_t microbert_tokenize_with_scratch(const microbert_model *model,
                                        const char *text,
                                        size_t text_len,
                                        void *scratch,
                                        size_t scratch_len,
                                        uint32_t *ids,
                                        size_t ids_cap,
                                        size_t *n_ids);

/**
 * Sentence embedding of the token ids `ids[0..n_ids]` (as `microbert_tokenize` writes
 * them) with the model's pooling, L2-normalised: `out[0..microbert_hidden_size(model)]`
 * receives it (`out_len` must be at least that; more is left untouched). Bit-identical to
 * `microbert embed` on the same blob, on every target.
 *
 * `scratch` is working memory of `scratch_len` bytes, at least
 * `microbert_scratch_bytes(model, n_ids)`, with any alignment; its contents before and
 * after the call do not matter. Nothing else is allocated. The weights are the ones
 * `microbert_prepare` prepared, if it was called, else the blob's. One call uses one
 * scratch buffer: calls on the same model from several threads are safe when each has its
 * own scratch and output.
 *
 * Returns `MICROBERT_OK`; `MICROBERT_ERR_NULL`, `MICROBERT_ERR_NOT_OPEN`,
 * `MICROBERT_ERR_ALIGN` (ids or out misaligned), `MICROBERT_ERR_LENGTH`,
 * `MICROBERT_ERR_OUTPUT_SIZE` (`out_len` too small), `MICROBERT_ERR_SCRATCH_TOO_SMALL`,
 * `MICROBERT_ERR_EMPTY_INPUT` (`n_ids` is 0), `MICROBERT_ERR_TOO_MANY_TOKENS` (more than
 * `microbert_max_tokens`), `MICROBERT_ERR_TOKEN_OUT_OF_VOCAB`. On error `out` holds
 * nothing meaningful.
 *
 * # Safety
 * `model` is null or points to a `microbert_model`; `ids` points to `n_ids` readable
 * `uint32_t`, `scratch` to `scratch_len` writable bytes, `out` to `out_len` writable
 * floats, none of them overlapping.
 */
int32_t microbert_embed(const microbert_model *model,
                        const uint32_t *ids,
                        size_t n_ids,
                        void *scratch,
                        size_t scratch_len,
                        float *out,
                        size_t out_len);

/**
 * As `microbert_embed`, but `out` receives the pooled vector in Q.16 fixed point
 * (`value / 65536.0` is the real number) before L2 normalisation: integers only, for cores
 * without an FPU (the library's float code then is not linked). Its FNV-1a 64 hash over the
 * little-endian bytes is what `microbert embed --hash` prints. Needs no more scratch than
 * `microbert_embed` (`microbert_scratch_bytes` is enough for both).
 *
 * # Safety
 * As `microbert_embed`, with `out` pointing to `out_len` writable `int32_t`.
 */
int32_t microbert_embed_q16(const microbert_model *model,
                            const uint32_t *ids,
                            size_t n_ids,
                            void *scratch,
                            size_t scratch_len,
                            int32_t *out,
                            size_t out_len);

/**
 * Labels of the blob's task head: the number of logits `microbert_classify` writes (a
 * sequence classifier; 1 is a raw score, as cross-encoders give) or `microbert_tag`
 * writes per token (a token classifier); 0 if the blob has no classifier, or `model` is
 * null or not opened.
 *
 * # Safety
 * `model` is null or points to a `microbert_model`.
 */
size_t microbert_num_labels(const microbert_model *model);

/**
 * Whether the blob's classifier labels tokens (`microbert_tag`): 1, or 0 for a sequence
 * classifier (`microbert_classify`), no classifier, or a null or unopened `model`.
 *
 * # Safety
 * `model` is null or points to a `microbert_model`.
 */
int32_t microbert_tags_tokens(const microbert_model *model);

/**
 * The name of label `i` (the checkpoint's `id2label`), as `*len` bytes of UTF-8 inside
 * the blob: **not** NUL-terminated, valid while the blob is. Null (and `*len` 0) if the
 * blob has no name for it, `i` is out of range, or `model` is null or not opened; `len`
 * may be null.
 *
 * # Safety
 * `model` is null or points to a `microbert_model`; `len` is null or points to a
 * writable `size_t`.
 */
const char *microbert_label(const microbert_model *model, size_t i, size_t *len);

/**
 * Sequence classification of the token ids `ids[0..n_ids]` (`microbert_tokenize`'s),
 * with token types `token_types[0..n_ids]` (0 / 1 for the two texts of a pair; null: all
 * 0): `logits[0..microbert_num_labels(model)]` receives the classifier's logits in Q.16
 * fixed point (`value / 65536.0`; the label is the largest, a one-label head's logit is
 * its score). Bit-identical to `microbert classify` on the same blob. Scratch and
 * threads as `microbert_embed` (`microbert_scratch_bytes(model, n_ids)` is enough).
 *
 * Returns `MICROBERT_OK`; the errors of `microbert_embed`, `MICROBERT_ERR_NO_SUCH_HEAD`
 * when the blob has no sequence classifier, `MICROBERT_ERR_TOKEN_TYPE` for a token type
 * the model does not have.
 *
 * # Safety
 * As `microbert_embed`; `token_types` is null or points to `n_ids` readable `uint32_t`;
 * `logits` points to `logits_len` writable `int32_t`.
 */
int32_t microbert_classify(const microbert_model *model,
                           const uint32_t *ids,
                           const uint32_t *token_types,
                           size_t n_ids,
                           void *scratch,
                           size_t scratch_len,
                           int32_t *logits,
                           size_t logits_len);

/**
 * Token classification of the token ids `ids[0..n_ids]`: `logits` receives
 * `n_ids * microbert_num_labels(model)` Q.16 logits, row `t` (of `num_labels`) for token
 * `t`, `[CLS]` and `[SEP]` included (a caller labels each word by its first piece).
 * Bit-identical to `microbert tag`'s logits. Scratch and threads as `microbert_embed`.
 *
 * Returns `MICROBERT_OK`; the errors of `microbert_embed`, `MICROBERT_ERR_NO_SUCH_HEAD`
 * when the blob has no token classifier.
 *
 * # Safety
 * As `microbert_embed`; `logits` points to `logits_len` writable `int32_t`.
 */
int32_t microbert_tag(const microbert_model *model,
                      const uint32_t *ids,
                      size_t n_ids,
                      void *scratch,
                      size_t scratch_len,
                      int32_t *logits,
                      size_t logits_len);

/**
 * The sentence (static, NUL-terminated, never null) that explains a status returned by
 * this library; unknown values get "unknown microbert status".
 */
const char *microbert_status_message(int32_t status);

/**
 * The name of the kernels this library runs (static, NUL-terminated): "scalar", on x86-64
 * hosts the best tier the CPU has ("avx2", "avx-vnni", "avx512-vnni", "amx"), "neon",
 * "neon-dotprod", "neon-i8mm" or "rvv".
 */
const char *microbert_kernels(void);

#ifdef __cplusplus
}  // extern "C"
#endif  // __cplusplus

/* The storage has one size on every target (the library asserts it on its side). */
typedef char microbert_model_size_check[(sizeof(microbert_model) == MICROBERT_MODEL_BYTES) ? 1 : -1];

#endif /* MICROBERT_H */
