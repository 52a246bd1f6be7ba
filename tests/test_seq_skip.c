/*
 * test_seq_skip.c - per-sequence layer skipping (strix_context_set_seq_layer_skip)
 * through the public API: two sequences decoded in the same batches (split
 * into forward passes of 7 tokens), one skipping layers 1 and 3, the other
 * none, give at every position the logits of two separate contexts, one
 * with the same layers removed by strix_context_set_layer_skip (forward.c's
 * static mask, which shares no code with the route) and one plain; the
 * skipping sequence holds no cache entry in its skipped layers; clearing
 * the mask restores plain decoding; bad sequence ids are refused.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fixtures.h"
#include "harness.h"

#define MODEL "stories260K-ref.gguf" /* F32 llama, 5 layers */

static const strix_token PROMPT[] = {1,   403, 407, 261, 378, 285, 328, 270, 282, 458,
                                     275, 363, 300, 290, 401, 350, 267, 310, 299, 280};
#define N ((int)(sizeof PROMPT / sizeof PROMPT[0]))

static float max_diff(const float *a, const float *b, size_t n)
{
    float d = 0.0f;
    for (size_t i = 0; i < n; i++) {
        const float e = fabsf(a[i] - b[i]);
        if (!(e <= d))
            d = e; /* NaN propagates */
    }
    return d;
}

/* PROMPT into sequences 0 and 1 of c, interleaved in one batch, logits kept
 * at every row: out0/out1 (N, nv). */
static int decode_pair(strix_context *c, int nv, float *out0, float *out1)
{
    strix_token tok[2 * N];
    int32_t pos[2 * N], seq[2 * N];
    int8_t lg[2 * N];
    for (int i = 0; i < N; i++)
        for (int s = 0; s < 2; s++) {
            tok[2 * i + s] = PROMPT[i];
            pos[2 * i + s] = i;
            seq[2 * i + s] = s;
            lg[2 * i + s] = 1;
        }
    strix_batch b = {2 * N, tok, pos, seq, lg};
    strix_error err;
    const int rc = strix_decode_batch(c, &b, &err);
    CHECKF(rc == STRIX_OK, "%s", err.msg);
    if (rc)
        return rc;
    for (int i = 0; i < N; i++) {
        memcpy(out0 + (size_t)i * nv, strix_get_logits(c, 2 * i), (size_t)nv * sizeof(float));
        memcpy(out1 + (size_t)i * nv, strix_get_logits(c, 2 * i + 1), (size_t)nv * sizeof(float));
    }
    return 0;
}

int main(void)
{
    if (!fixture_kernels("test_seq_skip"))
        return 0;
    strix_model *m = load_fixture(MODEL, NULL);
    if (!m)
        TEST_MAIN_END();
    struct strix_model_info in = {.struct_size = sizeof in};
    strix_model_get_info(m, &in);
    const int nv = strix_vocab_size(m), nl = in.n_layer;
    CHECK(nl == 5);
    const size_t nlog = (size_t)N * (size_t)nv;
    strix_error err;

    /* the references: a plain context, and one with layers 1 and 3 removed */
    float *plain = fixture_logits(m, PROMPT, N, 1, 64, 1);
    strix_context *rc = fixture_context(m, 64, 0, 1);
    const int layers[] = {1, 3};
    CHECK(rc && strix_context_set_layer_skip(rc, layers, 2, &err) == STRIX_OK);
    float *skipped = decode_logits(rc, nv, PROMPT, N, 1);
    strix_context_free(rc);

    struct strix_context_params cp = strix_context_default_params();
    cp.n_ctx = 64;
    cp.n_batch = 7; /* passes that cut through both sequences */
    cp.n_threads = 1;
    cp.n_seq_max = 3;
    strix_context *c = fixture_context_with(m, &cp);
    float *o0 = malloc(nlog * sizeof(float)), *o1 = malloc(nlog * sizeof(float));
    if (!plain || !skipped || !c || !o0 || !o1)
        goto done;
    CHECK(max_diff(plain, skipped, nlog) > 1e-2f); /* the layers matter */

    uint8_t mask[5] = {0, 1, 0, 1, 0};
    CHECKF(strix_context_set_seq_layer_skip(c, 1, mask, &err) == STRIX_OK, "%s", err.msg);
    mask[1] = 0; /* copied: a later change of the caller's array does nothing */
    CHECK(strix_context_set_seq_layer_skip(c, 0, NULL, &err) == STRIX_OK);
    if (decode_pair(c, nv, o0, o1) == 0) {
        const float d0 = max_diff(o0, plain, nlog), d1 = max_diff(o1, skipped, nlog);
        CHECKF(d0 <= 1e-5f, "sequence 0 (no mask) differs from a plain context by %g",
               (double)d0);
        CHECKF(d1 <= 1e-5f, "sequence 1 (layers 1, 3 skipped) differs from a context "
                            "without them by %g", (double)d1);
        for (int l = 0; l < nl; l++) {
            const int want = (l == 1 || l == 3) ? N : 2 * N;
            CHECKF(strix_kv_layer_entries(c, l) == want, "layer %d holds %d entries, not %d",
                   l, strix_kv_layer_entries(c, l), want);
        }
    }
    /* the mask cleared: sequence 1 decodes as a plain one */
    CHECK(strix_context_set_seq_layer_skip(c, 1, NULL, &err) == STRIX_OK);
    strix_kv_seq_rm(c, -1, 0, -1);
    if (decode_pair(c, nv, o0, o1) == 0) {
        CHECK(max_diff(o0, plain, nlog) <= 1e-5f);
        CHECK(max_diff(o1, plain, nlog) <= 1e-5f);
    }
    /* bad arguments */
    CHECK(strix_context_set_seq_layer_skip(c, -1, mask, &err) == STRIX_ERR_ARG);
    CHECK(strix_context_set_seq_layer_skip(c, 3, mask, &err) == STRIX_ERR_ARG);
    CHECKF(strstr(err.msg, "sequence 3") != NULL, "%s", err.msg);
    CHECK(strix_context_set_seq_layer_skip(NULL, 0, mask, &err) == STRIX_ERR_ARG);
done:
    free(o0);
    free(o1);
    free(plain);
    free(skipped);
    strix_context_free(c);
    strix_model_free(m);
    TEST_MAIN_END();
}
