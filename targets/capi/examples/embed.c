/*
 * embed: sentence embeddings from C through libmicrobert, one text per line of stdin.
 *
 *   embed [--max-tokens N] [--f32-only] [--no-prepare] BLOB < texts.txt
 *       For each line (split as `microbert embed` splits stdin: "\n", a trailing "\r"
 *       dropped), prints one line:
 *           tokens <n> hash <FNV-1a 64 of the Q.16 vector, 16 hex digits> f32 <8 hex digits
 *           per element: the bits of the L2-normalised embedding>
 *       `cargo xtask capi` compares these with `microbert embed --hash` on the same blob.
 *       Any blob: WordPiece models and SentencePiece Unigram ones (multilingual-e5-small),
 *       tokenized by microbert_tokenize_with_scratch.
 *       The weights are prepared once (microbert_prepare, in a malloc'd buffer) unless
 *       --no-prepare. --f32-only calls microbert_embed alone (one inference per text, as
 *       the CLI) and prints `tokens <n> f32 ...`: what the timing compares.
 *   embed --classify [--max-tokens N] BLOB < texts.txt
 *       With a blob that has a sequence classifier (a converted
 *       BertForSequenceClassification): per line `tokens <n> label <name> logits <Q.16
 *       logits, decimal>` from microbert_classify (the label is the largest logit, the
 *       first of equals); `cargo xtask capi` compares them with `microbert classify
 *       --logits`.
 *   embed --sizes N BLOB
 *       Prints `hidden <d> max_tokens <m> scratch_bytes <s> prepared_bytes <p>` for N
 *       tokens: how `cargo xtask capi` sizes the C firmware's static arena.
 *   embed --check-errors BLOB
 *       Checks the error contract of the header (null pointers, bad blobs, short buffers,
 *       scratch at any alignment, prepared weights, invalid UTF-8, ...) and prints
 *       "contract: N of M checks hold".
 *
 * Exit status 0 on success, 1 on any error (with the library's sentence on stderr).
 * Plain C99 with the standard library only; built by `cargo xtask capi` with
 *   cc -std=c99 -Wall -Wextra -Werror -pedantic -I targets/capi/include embed.c libmicrobert.a
 */
#include "microbert.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* FNV-1a 64 over the little-endian bytes of the Q.16 vector, as `microbert embed --hash`. */
static uint64_t fnv1a64_q16(const int32_t *v, size_t n) {
    uint64_t h = UINT64_C(0xcbf29ce484222325);
    size_t i;
    int b;
    for (i = 0; i < n; i++) {
        uint32_t x = (uint32_t)v[i];
        for (b = 0; b < 4; b++) {
            h ^= (uint64_t)((x >> (8 * b)) & 0xffu);
            h *= UINT64_C(0x100000001b3);
        }
    }
    return h;
}

/* The whole file; NULL (with a message) on failure. */
static uint8_t *read_file(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    uint8_t *buf = NULL;
    size_t cap = 0, n = 0;
    if (!f) {
        fprintf(stderr, "embed: cannot open %s\n", path);
        return NULL;
    }
    for (;;) {
        size_t got;
        if (n == cap) {
            uint8_t *grown;
            cap = cap ? 2 * cap : (1u << 20);
            grown = (uint8_t *)realloc(buf, cap);
            if (!grown) {
                free(buf);
                fclose(f);
                fprintf(stderr, "embed: out of memory reading %s\n", path);
                return NULL;
            }
            buf = grown;
        }
        got = fread(buf + n, 1, cap - n, f);
        n += got;
        if (got == 0) {
            break;
        }
    }
    if (ferror(f)) {
        free(buf);
        fclose(f);
        fprintf(stderr, "embed: cannot read %s\n", path);
        return NULL;
    }
    fclose(f);
    *len = n;
    return buf;
}

/* One line of stdin without its "\n" (and a "\r" before it) into *line (grown as needed);
 * returns its length, or -1 at the end of the input. */
static long read_line(char **line, size_t *cap) {
    size_t n = 0;
    int c;
    while ((c = getchar()) != EOF) {
        if (c == '\n') {
            break;
        }
        if (n + 1 >= *cap) {
            size_t want = *cap ? 2 * *cap : 4096;
            char *grown = (char *)realloc(*line, want);
            if (!grown) {
                fprintf(stderr, "embed: out of memory reading stdin\n");
                exit(1);
            }
            *line = grown;
            *cap = want;
        }
        (*line)[n++] = (char)c;
    }
    if (c == EOF && n == 0) {
        return -1;
    }
    if (n > 0 && (*line)[n - 1] == '\r') {
        n--;
    }
    return (long)n;
}

static int fail(const char *what, int32_t status) {
    fprintf(stderr, "embed: %s: %s (status %d)\n", what, microbert_status_message(status),
            (int)status);
    return 1;
}

/* Prints `label <name> logits ...` for the classifier's Q.16 logits. */
static void print_label(const microbert_model *model, const int32_t *logits, size_t labels) {
    size_t i, best = 0, len = 0;
    const char *name;
    for (i = 1; i < labels; i++) {
        if (logits[i] > logits[best]) {
            best = i;
        }
    }
    name = microbert_label(model, best, &len);
    if (name) {
        printf(" label %.*s logits", (int)len, name);
    } else {
        printf(" label LABEL_%zu logits", best);
    }
    for (i = 0; i < labels; i++) {
        printf(" %" PRId32, logits[i]);
    }
}

/* Embeds each line of stdin (the Q.16 vector too unless f32_only), or classifies it
 * (classify). */
static int embed_lines(const microbert_model *model, size_t max_tokens, int f32_only,
                       int classify) {
    size_t hidden = microbert_hidden_size(model);
    size_t labels = microbert_num_labels(model);
    uint32_t *ids = (uint32_t *)malloc(max_tokens * sizeof *ids);
    int32_t *q16 = (int32_t *)malloc((hidden > labels ? hidden : labels) * sizeof *q16);
    float *out = (float *)malloc(hidden * sizeof *out);
    uint8_t *scratch = NULL; /* any alignment */
    size_t scratch_len = 0;
    uint8_t *tok_scratch = NULL; /* the tokenizer's (SentencePiece Unigram models) */
    size_t tok_scratch_len = 0;
    char *line = NULL;
    size_t line_cap = 0;
    long len;
    int rc = 0;
    if (!ids || !q16 || !out) {
        fprintf(stderr, "embed: out of memory\n");
        return 1;
    }
    while (rc == 0 && (len = read_line(&line, &line_cap)) >= 0) {
        size_t n = 0, need, i;
        int32_t s;
        /* WordPiece models need no tokenizer scratch (0 bytes); Unigram ones need some,
         * growing with the text's longest space-free run. */
        need = microbert_tokenize_scratch_bytes(model, line, (size_t)len);
        if (need > tok_scratch_len) {
            uint8_t *grown = (uint8_t *)realloc(tok_scratch, need);
            if (!grown) {
                fprintf(stderr, "embed: out of memory for %zu bytes of tokenizer scratch\n",
                        need);
                rc = 1;
                break;
            }
            tok_scratch = grown;
            tok_scratch_len = need;
        }
        s = microbert_tokenize_with_scratch(model, line, (size_t)len, tok_scratch,
                                            tok_scratch_len, ids, max_tokens, &n);
        if (s != MICROBERT_OK) {
            rc = fail("tokenize", s);
            break;
        }
        need = microbert_scratch_bytes(model, n);
        if (need == 0) {
            fprintf(stderr, "embed: no scratch size for %zu tokens\n", n);
            rc = 1;
            break;
        }
        if (need > scratch_len) {
            uint8_t *grown = (uint8_t *)realloc(scratch, need);
            if (!grown) {
                fprintf(stderr, "embed: out of memory for %zu bytes of scratch\n", need);
                rc = 1;
                break;
            }
            scratch = grown;
            scratch_len = need;
        }
        if (classify) {
            s = microbert_classify(model, ids, NULL, n, scratch, need, q16, labels);
            if (s != MICROBERT_OK) {
                rc = fail("classify", s);
                break;
            }
            printf("tokens %zu", n);
            print_label(model, q16, labels);
            putchar('\n');
            continue;
        }
        if (!f32_only) {
            s = microbert_embed_q16(model, ids, n, scratch, need, q16, hidden);
            if (s != MICROBERT_OK) {
                rc = fail("embed_q16", s);
                break;
            }
        }
        s = microbert_embed(model, ids, n, scratch, need, out, hidden);
        if (s != MICROBERT_OK) {
            rc = fail("embed", s);
            break;
        }
        if (f32_only) {
            printf("tokens %zu f32", n);
        } else {
            printf("tokens %zu hash %016" PRIx64 " f32", n, fnv1a64_q16(q16, hidden));
        }
        for (i = 0; i < hidden; i++) {
            uint32_t bits;
            memcpy(&bits, &out[i], sizeof bits);
            printf(" %08" PRIx32, bits);
        }
        putchar('\n');
    }
    if (fflush(stdout) != 0) {
        rc = 1;
    }
    free(line);
    free(scratch);
    free(tok_scratch);
    free(out);
    free(q16);
    free(ids);
    return rc;
}

static int checks, held;

static void check(int ok, const char *what) {
    checks++;
    if (ok) {
        held++;
    } else {
        fprintf(stderr, "embed: contract check failed: %s\n", what);
    }
}

#define EXPECT(status, want) check((status) == (want), #status " == " #want)

/* The error contract, through the header only. */
static int check_errors(const uint8_t *blob, size_t blob_len) {
    static const char text[] = "Integer-only inference on microcontrollers.";
    static const int32_t statuses[] = {
        MICROBERT_OK, MICROBERT_ERR_NULL, MICROBERT_ERR_NOT_OPEN, MICROBERT_ERR_UTF8,
        MICROBERT_ERR_ALIGN, MICROBERT_ERR_LENGTH, MICROBERT_ERR_BLOB,
        MICROBERT_ERR_BLOB_TOO_SHORT, MICROBERT_ERR_BLOB_MAGIC, MICROBERT_ERR_BLOB_VERSION,
        MICROBERT_ERR_BLOB_LENGTH, MICROBERT_ERR_BLOB_CHECKSUM, MICROBERT_ERR_BLOB_DECODE,
        MICROBERT_ERR_BLOB_TRAILING, MICROBERT_ERR_BLOB_CONFIG, MICROBERT_ERR_BLOB_DTYPE,
        MICROBERT_ERR_BLOB_SHAPE, MICROBERT_ERR_BLOB_VALUE, MICROBERT_ERR_BLOB_VOCAB,
        MICROBERT_ERR_TOKENIZE, MICROBERT_ERR_IDS_TOO_SMALL,
        MICROBERT_ERR_TOKENIZE_SCRATCH_TOO_SMALL, MICROBERT_ERR_TOKENIZE_NEEDS_SCRATCH,
        MICROBERT_ERR_RUN,
        MICROBERT_ERR_EMPTY_INPUT, MICROBERT_ERR_TOKEN_OUT_OF_VOCAB, MICROBERT_ERR_TOKEN_TYPE,
        MICROBERT_ERR_TOO_MANY_TOKENS, MICROBERT_ERR_SCRATCH_TOO_SMALL,
        MICROBERT_ERR_OUTPUT_SIZE, MICROBERT_ERR_NO_SUCH_HEAD, MICROBERT_ERR_POSITION,
        MICROBERT_ERR_PREPARED_TOO_SMALL, MICROBERT_ERR_PREPARED_MISMATCH};
    const char *unknown = microbert_status_message(12345);
    microbert_model model, copy, unopened;
    uint8_t *bad = (uint8_t *)malloc(blob_len);
    uint32_t ids[64], short_ids[3], oov[2] = {0, 0xffffffffu};
    size_t n = 0, n_short = 0, hidden, need, prepared_need, i, j;
    uint8_t *scratch, *prepared;
    float *out, *out_moved;
    int32_t *q16, *q16_prepared;
    double norm = 0.0, max_diff = 0.0, q_norm = 0.0;

    check(unknown != NULL && strcmp(unknown, "unknown microbert status") == 0, "unknown status");
    for (i = 0; i < sizeof statuses / sizeof statuses[0]; i++) {
        const char *m = microbert_status_message(statuses[i]);
        int distinct = m != NULL && strcmp(m, unknown) != 0;
        for (j = 0; j < i && distinct; j++) {
            distinct = strcmp(m, microbert_status_message(statuses[j])) != 0;
        }
        check(distinct, "every status has its own sentence");
    }
    check(microbert_kernels() != NULL, "kernels name");

    /* Bad blobs and null pointers leave the storage not opened. */
    memset(&unopened, 0, sizeof unopened);
    EXPECT(microbert_open(NULL, blob_len, &model), MICROBERT_ERR_NULL);
    EXPECT(microbert_open(blob, blob_len, NULL), MICROBERT_ERR_NULL);
    EXPECT(microbert_open(blob, 10, &model), MICROBERT_ERR_BLOB_TOO_SHORT);
    EXPECT(microbert_open(blob, blob_len - 1, &model), MICROBERT_ERR_BLOB_LENGTH);
    check(microbert_hidden_size(&model) == 0, "a failed open leaves the model not opened");
    if (!bad) {
        return 1;
    }
    memcpy(bad, blob, blob_len);
    bad[blob_len - 1] ^= 0x40;
    EXPECT(microbert_open(bad, blob_len, &model), MICROBERT_ERR_BLOB_CHECKSUM);
    memcpy(bad, blob, blob_len);
    bad[0] ^= 1;
    EXPECT(microbert_open(bad, blob_len, &model), MICROBERT_ERR_BLOB_MAGIC);
    free(bad);
    EXPECT(microbert_tokenize(&unopened, text, strlen(text), ids, 64, &n), MICROBERT_ERR_NOT_OPEN);
    check(microbert_scratch_bytes(&unopened, 8) == 0, "scratch_bytes of an unopened model");
    check(microbert_max_tokens(NULL) == 0 && microbert_hidden_size(NULL) == 0, "null model");
    check(microbert_scratch_bytes(NULL, 8) == 0, "scratch_bytes(NULL) == 0");

    EXPECT(microbert_open(blob, blob_len, &model), MICROBERT_OK);
    hidden = microbert_hidden_size(&model);
    check(hidden > 0 && microbert_max_tokens(&model) >= 64, "model sizes");
    check(microbert_scratch_bytes(&model, SIZE_MAX) == 0, "scratch_bytes overflow gives 0");

    /* Tokenizer. */
    EXPECT(microbert_tokenize(&model, text, strlen(text), ids, 64, &n), MICROBERT_OK);
    check(n > 4, "text has pieces");
    EXPECT(microbert_tokenize(&model, text, strlen(text), short_ids, 3, &n_short), MICROBERT_OK);
    check(n_short == 3 && short_ids[0] == ids[0] && short_ids[1] == ids[1] &&
              short_ids[2] == ids[n - 1],
          "truncation keeps [CLS] and [SEP]");
    EXPECT(microbert_tokenize(&model, text, strlen(text), ids, 1, &n_short), MICROBERT_ERR_IDS_TOO_SMALL);
    check(n_short == 0, "n_ids is 0 after an error");
    EXPECT(microbert_tokenize(&model, "caf\xc3", 4, ids, 64, &n_short), MICROBERT_ERR_UTF8);
    EXPECT(microbert_tokenize(&model, NULL, 3, ids, 64, &n_short), MICROBERT_ERR_NULL);
    EXPECT(microbert_tokenize(&model, NULL, 0, short_ids, 3, &n_short), MICROBERT_OK);
    check(n_short == 2, "an empty text is [CLS] [SEP]");
    EXPECT(microbert_tokenize(&model, text, strlen(text), ids, 64, NULL), MICROBERT_ERR_NULL);
    /* The scratch variant: a WordPiece model needs none and gives the same ids. */
    check(microbert_tokenize_scratch_bytes(&model, text, strlen(text)) == 0,
          "WordPiece needs no tokenizer scratch");
    check(microbert_tokenize_scratch_bytes(&unopened, text, strlen(text)) == 0,
          "tokenize_scratch_bytes of an unopened model");
    EXPECT(microbert_tokenize_with_scratch(&model, text, strlen(text), NULL, 0, short_ids, 3,
                                           &n_short),
           MICROBERT_OK);
    check(n_short == 3 && short_ids[0] == ids[0] && short_ids[2] == ids[n - 1],
          "tokenize_with_scratch gives microbert_tokenize's ids");
    EXPECT(microbert_tokenize_with_scratch(&model, text, strlen(text), NULL, 8, ids, 64,
                                           &n_short),
           MICROBERT_ERR_NULL);
    check(n_short == 0, "n_ids is 0 after a null scratch");
    EXPECT(microbert_tokenize_with_scratch(&unopened, text, strlen(text), NULL, 0, ids, 64,
                                           &n_short),
           MICROBERT_ERR_NOT_OPEN);

    /* Embedding: buffers. The scratch may start at any address; one byte short fails at
     * every one. */
    need = microbert_scratch_bytes(&model, n);
    check(need >= 4 * hidden + 3, "scratch_bytes counts the pooled vector and its alignment");
    scratch = (uint8_t *)malloc(need + 8);
    out = (float *)malloc(hidden * sizeof *out);
    out_moved = (float *)malloc(hidden * sizeof *out_moved);
    q16 = (int32_t *)malloc(hidden * sizeof *q16);
    q16_prepared = (int32_t *)malloc(hidden * sizeof *q16_prepared);
    if (!scratch || !out || !out_moved || !q16 || !q16_prepared) {
        return 1;
    }
    EXPECT(microbert_embed(&model, ids, n, scratch, need, out, hidden), MICROBERT_OK);
    for (i = 1; i < 4; i++) {
        EXPECT(microbert_embed(&model, ids, n, scratch + i, need, out_moved, hidden), MICROBERT_OK);
        check(memcmp(out, out_moved, hidden * sizeof *out) == 0, "same bits at any scratch address");
        EXPECT(microbert_embed(&model, ids, n, scratch + i, need - 1, out_moved, hidden), MICROBERT_ERR_SCRATCH_TOO_SMALL);
    }
    EXPECT(microbert_embed(&model, ids, n, scratch, need - 1, out, hidden), MICROBERT_ERR_SCRATCH_TOO_SMALL);
    EXPECT(microbert_embed_q16(&model, ids, n, scratch, 16, q16, hidden), MICROBERT_ERR_SCRATCH_TOO_SMALL);
    EXPECT(microbert_embed(&model, ids, n, scratch, need, out, hidden - 1), MICROBERT_ERR_OUTPUT_SIZE);
    EXPECT(microbert_embed(&model, ids, 0, scratch, need, out, hidden), MICROBERT_ERR_EMPTY_INPUT);
    EXPECT(microbert_embed(&model, oov, 2, scratch, need, out, hidden), MICROBERT_ERR_TOKEN_OUT_OF_VOCAB);
    EXPECT(microbert_embed(&model, NULL, n, scratch, need, out, hidden), MICROBERT_ERR_NULL);
    EXPECT(microbert_embed(&model, ids, n, NULL, need, out, hidden), MICROBERT_ERR_NULL);
    EXPECT(microbert_embed_q16(&model, ids, n, scratch, need, NULL, hidden), MICROBERT_ERR_NULL);
    EXPECT(microbert_embed(&unopened, ids, n, scratch, need, out, hidden), MICROBERT_ERR_NOT_OPEN);

    /* Embedding: the float vector is the normalised Q.16 one; a copied model works. */
    copy = model;
    EXPECT(microbert_embed_q16(&copy, ids, n, scratch, need, q16, hidden), MICROBERT_OK);
    EXPECT(microbert_embed(&model, ids, n, scratch, need, out, hidden), MICROBERT_OK);
    for (i = 0; i < hidden; i++) {
        norm += (double)out[i] * out[i];
        q_norm += ((double)q16[i] / 65536.0) * ((double)q16[i] / 65536.0);
    }
    q_norm = sqrt(q_norm);
    for (i = 0; i < hidden && q_norm > 0.0; i++) {
        double d = fabs((double)out[i] - (double)q16[i] / 65536.0 / q_norm);
        max_diff = d > max_diff ? d : max_diff;
    }
    check(fabs(norm - 1.0) < 1e-5, "embedding has unit norm");
    check(q_norm > 0.0 && max_diff < 1e-6, "embedding is the normalised Q.16 vector");

    /* Prepared weights: errors change nothing; prepared (at an odd address) gives the same
     * bits; 0 bytes (scalar, NEON, RVV kernels) succeeds with no buffer. */
    prepared_need = microbert_prepared_bytes(&model);
    check(microbert_prepared_bytes(NULL) == 0 && microbert_prepared_bytes(&unopened) == 0,
          "prepared_bytes of no model");
    EXPECT(microbert_prepare(NULL, NULL, 0), MICROBERT_ERR_NULL);
    EXPECT(microbert_prepare(&unopened, NULL, 0), MICROBERT_ERR_NOT_OPEN);
    if (prepared_need == 0) {
        EXPECT(microbert_prepare(&model, NULL, 0), MICROBERT_OK);
    } else {
        prepared = (uint8_t *)malloc(prepared_need + 1);
        if (!prepared) {
            return 1;
        }
        EXPECT(microbert_prepare(&model, NULL, prepared_need), MICROBERT_ERR_NULL);
        EXPECT(microbert_prepare(&model, prepared + 1, prepared_need - 1),
               MICROBERT_ERR_PREPARED_TOO_SMALL);
        EXPECT(microbert_prepare(&model, prepared + 1, prepared_need), MICROBERT_OK);
        EXPECT(microbert_embed_q16(&model, ids, n, scratch, need, q16_prepared, hidden), MICROBERT_OK);
        check(memcmp(q16, q16_prepared, hidden * sizeof *q16) == 0,
              "prepared weights give the same Q.16 vector");
        EXPECT(microbert_embed(&model, ids, n, scratch + 1, need, out_moved, hidden), MICROBERT_OK);
        check(memcmp(out, out_moved, hidden * sizeof *out) == 0,
              "prepared weights give the same embedding");
        /* Forget the buffer before freeing it: the model points into it. */
        EXPECT(microbert_open(blob, blob_len, &model), MICROBERT_OK);
        free(prepared);
    }
    free(q16_prepared);
    free(q16);
    free(out_moved);
    free(out);
    free(scratch);

    printf("contract: %d of %d checks hold\n", held, checks);
    return held == checks ? 0 : 1;
}

int main(int argc, char **argv) {
    size_t max_tokens = 0, blob_len = 0, sizes = 0, prepared_len = 0;
    const char *path = NULL;
    int errors = 0, f32_only = 0, no_prepare = 0, classify = 0, i, rc;
    uint8_t *blob, *prepared = NULL;
    microbert_model model;
    int32_t s;

    for (i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--max-tokens") == 0 && i + 1 < argc) {
            max_tokens = (size_t)strtoul(argv[++i], NULL, 10);
            if (max_tokens < 2) {
                fprintf(stderr, "embed: --max-tokens must be at least 2\n");
                return 1;
            }
        } else if (strcmp(argv[i], "--sizes") == 0 && i + 1 < argc) {
            sizes = (size_t)strtoul(argv[++i], NULL, 10);
        } else if (strcmp(argv[i], "--check-errors") == 0) {
            errors = 1;
        } else if (strcmp(argv[i], "--classify") == 0) {
            classify = 1;
        } else if (strcmp(argv[i], "--f32-only") == 0) {
            f32_only = 1;
        } else if (strcmp(argv[i], "--no-prepare") == 0) {
            no_prepare = 1;
        } else if (!path && argv[i][0] != '-') {
            path = argv[i];
        } else {
            path = NULL;
            break;
        }
    }
    if (!path) {
        fprintf(stderr, "usage: embed [--max-tokens N] [--f32-only] [--no-prepare] BLOB < texts\n"
                        "       embed --classify [--max-tokens N] BLOB < texts\n"
                        "       embed --sizes N BLOB | embed --check-errors BLOB\n");
        return 1;
    }
    blob = read_file(path, &blob_len);
    if (!blob) {
        return 1;
    }
    if (errors) {
        rc = check_errors(blob, blob_len);
        free(blob);
        return rc;
    }
    s = microbert_open(blob, blob_len, &model);
    if (s != MICROBERT_OK) {
        free(blob);
        return fail(path, s);
    }
    if (sizes > 0) {
        printf("hidden %zu max_tokens %zu scratch_bytes %zu prepared_bytes %zu\n",
               microbert_hidden_size(&model), microbert_max_tokens(&model),
               microbert_scratch_bytes(&model, sizes), microbert_prepared_bytes(&model));
        free(blob);
        return 0;
    }
    if (!no_prepare) {
        prepared_len = microbert_prepared_bytes(&model);
        if (prepared_len > 0 && !(prepared = (uint8_t *)malloc(prepared_len))) {
            fprintf(stderr, "embed: out of memory for %zu bytes of prepared weights\n",
                    prepared_len);
            free(blob);
            return 1;
        }
        s = microbert_prepare(&model, prepared, prepared_len);
        if (s != MICROBERT_OK) {
            free(prepared);
            free(blob);
            return fail("prepare", s);
        }
    }
    if (max_tokens == 0 || max_tokens > microbert_max_tokens(&model)) {
        max_tokens = microbert_max_tokens(&model);
    }
    fprintf(stderr, "embed: %s kernels, %zu bytes of prepared weights, hidden %zu, at most %zu tokens\n",
            microbert_kernels(), prepared_len, microbert_hidden_size(&model), max_tokens);
    if (classify && microbert_num_labels(&model) == 0) {
        fprintf(stderr, "embed: %s has no classifier\n", path);
        free(prepared);
        free(blob);
        return 1;
    }
    rc = embed_lines(&model, max_tokens, f32_only, classify);
    /* After the last use of the model, which borrows both. */
    free(prepared);
    free(blob);
    return rc;
}
