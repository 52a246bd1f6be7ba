/*
 * fixtures.h - loading a model from tests/data for tests that use the
 * public API.
 */
#ifndef STRIX_FIXTURES_H
#define STRIX_FIXTURES_H

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"
#include "kernels/kernels.h"
#include "strix.h"
#include "strix_dev.h"

/* A scratch folder of this test's own, $TMPDIR/NAME.PID (made; a failure
 * recorded if it cannot be), into dir (cap bytes); fixture_tmpdir_remove
 * deletes it and what it holds. */
static inline void fixture_tmpdir(char *dir, size_t cap, const char *name)
{
    const char *tmp = getenv("TMPDIR");
    snprintf(dir, cap, "%s/%s.%d", tmp && *tmp ? tmp : "/tmp", name, (int)getpid());
    char cmd[600];
    snprintf(cmd, sizeof cmd, "mkdir -p '%s'", dir);
    CHECKF(system(cmd) == 0, "cannot make %s", dir);
}
static inline void fixture_tmpdir_remove(const char *dir)
{
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    CHECK(system(cmd) == 0);
}

/* The kernel set: STRIX_KERNELS forces one (tests/run.sh runs the golden
 * tests under each). Prints the set in use and returns 1; returns 0 if the
 * forced set is one this CPU cannot run (the caller skips, as printed). A
 * forced set that is not the one in use is a failure. */
static inline int fixture_kernels(const char *test)
{
    kern_init();
    const char *want = getenv("STRIX_KERNELS");
    if (want && *want && !kern_isa_get(want)) {
        printf("%s: STRIX_KERNELS=%s: not supported by this CPU, skipped\n", test, want);
        return 0;
    }
    printf("%s: kernel set %s\n", test, kern_isa_active()->name);
    CHECKF(!want || !*want || strcmp(kern_isa_active()->name, want) == 0,
           "STRIX_KERNELS=%s but %s is in use", want, kern_isa_active()->name);
    return 1;
}

/* Loads fixture `model` (with llama2.c tokenizer fixture `vocab`, or NULL);
 * records a failure and returns NULL if it does not load. */
static inline strix_model *load_fixture(const char *model, const char *vocab)
{
    char mp[4096], vp[4096];
    snprintf(mp, sizeof mp, "%s", test_path(model));
    struct strix_model_params p = strix_model_default_params();
    if (vocab) {
        snprintf(vp, sizeof vp, "%s", test_path(vocab));
        p.vocab_path = vp;
    }
    strix_model *m = NULL;
    strix_error err;
    int rc = strix_model_load(mp, &p, &m, &err);
    CHECKF(rc == STRIX_OK, "%s: %s", model, err.msg);
    return m;
}

/* A context over m of n_ctx positions, batches of at most n_batch tokens and
 * n_threads threads (0: the library's default for each), or with the
 * parameters cp; records a failure and returns NULL if it cannot be created. */
static inline strix_context *fixture_context_with(const strix_model *m,
                                                  const struct strix_context_params *cp)
{
    strix_context *c = NULL;
    strix_error err;
    CHECKF(strix_context_create(m, cp, &c, &err) == STRIX_OK, "context: %s", err.msg);
    return c;
}
static inline strix_context *fixture_context(const strix_model *m, int n_ctx, int n_batch,
                                             int n_threads)
{
    struct strix_context_params cp = strix_context_default_params();
    cp.n_ctx = n_ctx;
    cp.n_batch = n_batch;
    cp.n_threads = n_threads;
    return fixture_context_with(m, &cp);
}

/* The logits at every position of ids[0..n), n <= 256, decoded into ctx
 * (from position 0 of sequence 0) in one batch or one token at a time: a
 * malloc'd (n, n_vocab) array, or NULL (never a half-filled one) with a
 * failure recorded. */
static inline float *decode_logits(strix_context *ctx, int nv, const strix_token *ids, int n,
                                   int batched)
{
    float *out = ctx && n > 0 && n <= 256 ? malloc((size_t)n * (size_t)nv * sizeof(float)) : NULL;
    strix_error err = {0, ""};
    int8_t want[256];
    memset(want, 1, sizeof want);
    int ok = out != NULL;
    if (ok && batched)
        ok = strix_decode(ctx, ids, NULL, n, want, &err) == STRIX_OK;
    for (int i = 0; ok && i < n; i++) {
        if (!batched)
            ok = strix_decode(ctx, ids + i, NULL, 1, NULL, &err) == STRIX_OK;
        if (ok)
            memcpy(out + (size_t)i * (size_t)nv, strix_get_logits(ctx, batched ? i : -1),
                   (size_t)nv * sizeof(float));
    }
    CHECKF(ok, "decoding %d tokens (%s): %s", n, batched ? "batch" : "one by one", err.msg);
    if (!ok) {
        free(out);
        out = NULL;
    }
    return out;
}

/* decode_logits in a fresh fixture_context(m, n_ctx, 0, n_threads). */
static inline float *fixture_logits(const strix_model *m, const strix_token *ids, int n,
                                    int batched, int n_ctx, int n_threads)
{
    strix_context *ctx = fixture_context(m, n_ctx, 0, n_threads);
    float *out = decode_logits(ctx, strix_vocab_size(m), ids, n, batched);
    strix_context_free(ctx);
    return out;
}

/* A random-weight model (synth params sp) with the vocabulary of fixture
 * stories260K-ref.gguf; records a failure and returns NULL if it fails. */
static inline strix_model *synth_fixture(const struct strix_synth_params *sp)
{
    char vp[4096];
    snprintf(vp, sizeof vp, "%s", test_path("stories260K-ref.gguf"));
    strix_model *m = NULL;
    strix_error err;
    CHECKF(strix_model_synth(sp, vp, &m, &err) == STRIX_OK, "synth: %s", err.msg);
    return m;
}

/*
 * strix runs llama2.c int8 (version 2) checkpoints as Q8_0, which rounds the
 * activations to int8 blocks as well. References computed with the exact
 * weights (llama2.c run.c's texts, llama.cpp's logits on the exact
 * dequantization) are compared with an F32 copy: fixture_f32 writes fixture
 * `name` as a version 1 (fp32) checkpoint, w = q * scale computed here and
 * not by strix, into TMPDIR once per process, and returns its path (NULL on
 * failure). The copies are removed at exit.
 */
static inline char *fixture_f32_path(int i)
{
    static char paths[4][4096];
    return paths[i];
}
static inline void fixture_f32_cleanup(void)
{
    for (int i = 0; i < 4; i++)
        if (fixture_f32_path(i)[0])
            unlink(fixture_f32_path(i));
}
static inline const char *fixture_f32(const char *name)
{
    static char names[4][256];
    int slot = 0;
    for (; slot < 4 && names[slot][0]; slot++)
        if (strcmp(names[slot], name) == 0)
            return fixture_f32_path(slot);
    size_t len = 0;
    uint8_t *b = (uint8_t *)test_read_file(test_path(name), &len);
    int32_t h[10];
    if (slot == 4 || !b || len < 256 || (memcpy(h, b, 40), h[0] != 0x616b3432 || h[1] != 2)) {
        free(b);
        return NULL;
    }
    const size_t D = (size_t)h[2], H = (size_t)h[3], L = (size_t)h[4], kv = D / (size_t)h[5] * (size_t)h[6],
                 V = (size_t)h[7];
    int32_t group;
    memcpy(&group, b + 37, 4);
    const char *tmp = getenv("TMPDIR");
    char *path = fixture_f32_path(slot);
    FILE *f = NULL;
    for (int k = 0; k < 100 && !f; k++) { /* "x": a new file, never another's */
        snprintf(path, 4096, "%s/strix-f32-%ld-%d-%d", tmp && *tmp ? tmp : "/tmp", (long)getpid(),
                 slot, k);
        f = fopen(path, "wbx");
    }
    if (!f) {
        free(b);
        path[0] = '\0';
        return NULL;
    }
    if (slot == 0)
        atexit(fixture_f32_cleanup);
    snprintf(names[slot], sizeof names[slot], "%s", name);
    int32_t v1 = 1;
    memcpy(b + 4, &v1, 4);
    memset(b + 37, 0, 4); /* version 1 has no group size */
    fwrite(b, 1, 256, f);
    size_t at = 256 + (2 * L * D + D) * 4; /* the fp32 norms, copied */
    fwrite(b + 256, 1, at - 256, f);
    /* token_embd, then per kind for every layer: wq, wk, wv, wo, w1, w2, w3,
     * then wcls; each matrix is its int8 values, then its scales */
    const size_t n[] = {V * D, D * D, kv * D, kv * D, D * D, H * D, D * H, H * D, V * D};
    for (int k = 0; k < (b[36] ? 8 : 9); k++)
        for (size_t l = 0; l < (k == 0 || k == 8 ? 1 : L); l++) {
            const size_t end = at + n[k] + n[k] / (size_t)group * 4;
            for (size_t i = 0; i < n[k] && end <= len; i++) {
                float s, w;
                memcpy(&s, b + at + n[k] + 4 * (i / (size_t)group), 4);
                w = (float)((const int8_t *)(b + at))[i] * s;
                fwrite(&w, 4, 1, f);
            }
            at = end;
        }
    fclose(f);
    free(b);
    return path;
}

/* fixture_f32's copy of `model`, loaded with tokenizer fixture `vocab`. */
static inline strix_model *load_fixture_f32(const char *model, const char *vocab)
{
    const char *path = fixture_f32(model);
    CHECKF(path != NULL, "cannot write an F32 copy of %s", model);
    if (!path)
        return NULL;
    char vp[4096];
    snprintf(vp, sizeof vp, "%s", test_path(vocab));
    struct strix_model_params p = strix_model_default_params();
    p.vocab_path = vp;
    strix_model *m = NULL;
    strix_error err;
    CHECKF(strix_model_load(path, &p, &m, &err) == STRIX_OK, "%s (F32 copy): %s", model, err.msg);
    return m;
}

/* Whitespace-separated token ids from a fixture file; returns how many. */
static inline int read_ids(const char *name, strix_token *ids, int cap)
{
    char *text = test_read_file(test_path(name), NULL);
    int n = 0;
    for (char *p = text, *end; p && n < cap; p = end) {
        long v = strtol(p, &end, 10);
        if (end == p)
            break;
        ids[n++] = (strix_token)v;
    }
    free(text);
    return n;
}

/* A logits fixture (raw little-endian float32, n positions x nv): a malloc'd
 * copy, or NULL with a failure recorded if it cannot be read or holds another
 * number of values. */
static inline float *read_logits(const char *name, int n, int nv)
{
    size_t len = 0;
    float *ref = (float *)test_read_file(test_path(name), &len);
    const size_t want = (size_t)n * (size_t)nv * sizeof(float);
    CHECKF(ref && len == want, "%s: %zu bytes for %d x %d float32", name, len, n, nv);
    if (ref && len != want) {
        free(ref);
        ref = NULL;
    }
    return ref;
}

/* Index of the largest of n values (the first, on ties). */
static inline int argmax(const float *x, int n)
{
    int b = 0;
    for (int i = 1; i < n; i++)
        if (x[i] > x[b])
            b = i;
    return b;
}

#endif
