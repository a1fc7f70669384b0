/* microbert from C on a Cortex-M4F, bare metal: no heap, no OS, no printf.
 *
 * Embeds TEXT (the sentence of the Rust firmware, targets/firmware-common/app.rs; `cargo
 * xtask capi` checks both print the same `text:`) with libmicrobert.a built for
 * thumbv7em-none-eabihf, and prints over semihosting the lines `cargo xtask capi` reads:
 * `prepared:`, `text:`, `tokens:`, `arena:`, `hash:` (FNV-1a 64 of the pooled Q.16 vector,
 * as `microbert embed --hash`), the pooled vector and `stack: peak`. Exit status 0, or 1
 * after an error.
 *
 * Memory: the blob is `.incbin`-ed into flash (blob.S) and read in place; the model
 * storage and the scratch arena are statics in .bss; token ids and the pooled vector are on
 * the stack. ARENA_BYTES and HIDDEN come from the build (make ARENA_BYTES=... HIDDEN=...):
 * microbert_scratch_bytes(model, MAX_TOKENS) and microbert_hidden_size(model) of the blob,
 * checked again at run time. The scalar kernels of this target read the weights in place:
 * microbert_prepared_bytes is 0, and microbert_prepare with no buffer succeeds. */
#include "microbert.h"
#include "semihosting.h"
#include "stack.h"

#include <stdint.h>

#ifndef ARENA_BYTES
#error "ARENA_BYTES (microbert_scratch_bytes of the blob for MAX_TOKENS) must be defined"
#endif
#ifndef HIDDEN
#error "HIDDEN (microbert_hidden_size of the blob) must be defined"
#endif

/* Longest token sequence, [CLS] and [SEP] included; the arena is sized for it. */
#define MAX_TOKENS 128

static const char TEXT[] =
    "Integer-only inference runs BERT encoders on microcontrollers without a floating point unit.";

extern const uint8_t microbert_blob[];
extern const uint8_t microbert_blob_end[];

/* Bytes: the scratch may have any alignment. */
static uint8_t arena[ARENA_BYTES];
static microbert_model model;

static int failed(const char *what, int32_t status) {
    sh_puts("error: ");
    sh_puts(what);
    sh_puts(": ");
    sh_puts(microbert_status_message(status));
    sh_puts("\n");
    return 1;
}

static int run(void) {
    size_t blob_len = (size_t)((uintptr_t)microbert_blob_end - (uintptr_t)microbert_blob);
    uint32_t ids[MAX_TOKENS];
    int32_t pooled[HIDDEN];
    size_t n = 0, need, i;
    int32_t s;
    uint64_t h;

    sh_puts("microbert cortex-m4f (C API): ");
    sh_puts(microbert_kernels());
    sh_puts(" kernels\n");
    s = microbert_open(microbert_blob, blob_len, &model);
    if (s != MICROBERT_OK) {
        return failed("open", s);
    }
    if (microbert_hidden_size(&model) != HIDDEN) {
        sh_puts("error: the blob's hidden size is not HIDDEN\n");
        return 1;
    }
    sh_puts("model: hidden ");
    sh_put_u32((uint32_t)microbert_hidden_size(&model));
    sh_puts(", blob ");
    sh_put_u32((uint32_t)blob_len);
    sh_puts(" bytes\n");

    /* Portable code prepares whatever the kernels want; here that is nothing. */
    if (microbert_prepared_bytes(&model) != 0) {
        sh_puts("error: these kernels want prepared weights; this firmware has no buffer\n");
        return 1;
    }
    s = microbert_prepare(&model, NULL, 0);
    if (s != MICROBERT_OK) {
        return failed("prepare", s);
    }
    sh_puts("prepared: 0 bytes (the weights are read in place from flash)\n");

    s = microbert_tokenize(&model, TEXT, sizeof TEXT - 1, ids, MAX_TOKENS, &n);
    if (s != MICROBERT_OK) {
        return failed("tokenize", s);
    }
    sh_puts("text: ");
    sh_puts(TEXT);
    sh_puts("\ntokens: ");
    sh_put_u32((uint32_t)n);
    sh_puts("\n");

    need = microbert_scratch_bytes(&model, n);
    if (microbert_scratch_bytes(&model, MAX_TOKENS) > sizeof arena) {
        sh_puts("error: ARENA_BYTES is smaller than microbert_scratch_bytes(MAX_TOKENS)\n");
        return 1;
    }
    sh_puts("arena: ");
    sh_put_u32((uint32_t)sizeof arena);
    sh_puts(" bytes static (scratch for 128 tokens), ");
    sh_put_u32((uint32_t)need);
    sh_puts(" needed for this text\n");

    s = microbert_embed_q16(&model, ids, n, arena, sizeof arena, pooled, HIDDEN);
    if (s != MICROBERT_OK) {
        return failed("embed_q16", s);
    }
    /* FNV-1a 64 over the little-endian bytes of the vector. */
    h = UINT64_C(0xcbf29ce484222325);
    for (i = 0; i < HIDDEN; i++) {
        uint32_t x = (uint32_t)pooled[i];
        int b;
        for (b = 0; b < 4; b++) {
            h ^= (x >> (8 * b)) & 0xffu;
            h *= UINT64_C(0x100000001b3);
        }
    }
    sh_puts("hash: ");
    sh_put_hex64(h);
    sh_puts("\npooled (Q.16, ");
    sh_put_u32(HIDDEN);
    sh_puts("):");
    for (i = 0; i < HIDDEN; i++) {
        sh_puts(" ");
        sh_put_i32(pooled[i]);
    }
    sh_puts("\n");
    return 0;
}

int main(void) {
    size_t painted = stack_paint();
    int status = run();
    size_t peak = stack_peak();
    sh_puts("stack: peak ");
    sh_put_u32((uint32_t)peak);
    sh_puts(" bytes (painted ");
    sh_put_u32((uint32_t)painted);
    sh_puts(" bytes below the entry frame)\n");
    return status;
}
