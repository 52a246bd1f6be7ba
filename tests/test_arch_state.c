/*
 * test_arch_state.c - the caches of the architectures that store something
 * other than one key and value per head (deepseek2's latent, mamba's
 * recurrent state), against llama.cpp's logits (tests/data/arch/, see
 * tests/data/README.md) under what schedulers do with them: two sequences
 * interleaved in one batch, a rollback (strix_kv_seq_rm) then re-decoding
 * the dropped tokens, a fork (strix_kv_seq_cp) continued on its own, and
 * decoding in chunks of several tokens.
 */
#include <math.h>

#include "fixtures.h"
#include "harness.h"
#include "strix.h"

#define N_IDS 48
#define REL_TOL 1e-3f

/* Largest |got - want| over the row's largest |want|. */
static float rel_err(const float *got, const float *want, int nv)
{
    float scale = 0.0f, d = 0.0f;
    for (int j = 0; j < nv; j++) {
        scale = fmaxf(scale, fabsf(want[j]));
        d = fmaxf(d, fabsf(got[j] - want[j]));
    }
    return d / fmaxf(scale, 1e-6f);
}

static strix_context *make_ctx_keep(const strix_model *m, int n_seq, int n_batch, int keep)
{
    struct strix_context_params cp = strix_context_default_params();
    cp.n_state_keep = keep;
    cp.n_ctx = 128;
    cp.n_seq_max = n_seq;
    cp.n_batch = n_batch;
    cp.n_threads = 1;
    return fixture_context_with(m, &cp);
}

static strix_context *make_ctx(const strix_model *m, int n_seq, int n_batch)
{
    return make_ctx_keep(m, n_seq, n_batch, 0);
}

/* Decodes ids[p0..p1) of sequence seq one batch (all logits kept) and
 * returns the largest error against ref at those positions. */
static float decode_span(strix_context *c, const strix_token *ids, int seq, int p0, int p1,
                         const float *ref, int nv)
{
    int32_t pos[N_IDS], sq[N_IDS];
    int8_t want[N_IDS];
    const int n = p1 - p0;
    for (int i = 0; i < n; i++)
        pos[i] = p0 + i, sq[i] = seq, want[i] = 1;
    const strix_batch b = {n, ids + p0, pos, sq, want};
    strix_error err = {0, ""};
    if (strix_decode_batch(c, &b, &err) != STRIX_OK) {
        CHECKF(0, "decode [%d, %d) of sequence %d: %s", p0, p1, seq, err.msg);
        return INFINITY;
    }
    float e = 0.0f;
    for (int i = 0; i < n; i++)
        e = fmaxf(e, rel_err(strix_get_logits(c, i), ref + (size_t)(p0 + i) * (size_t)nv, nv));
    return e;
}

/* Fixture arch/NAME: the model, its N_IDS ids and reference logits (*nv
 * per position); NULL (a failure recorded, nothing held) if any is missing. */
static float *load_case(const char *name, strix_model **m, strix_token *ids, int *nv)
{
    char model[128], ids_file[128], logits_file[128];
    snprintf(model, sizeof model, "arch/%s.gguf", name);
    snprintf(ids_file, sizeof ids_file, "arch/%s.ids", name);
    snprintf(logits_file, sizeof logits_file, "arch/%s.logits", name);
    *m = load_fixture(model, NULL);
    const int n = *m ? read_ids(ids_file, ids, N_IDS) : 0;
    *nv = *m ? strix_vocab_size(*m) : 0;
    float *ref = n == N_IDS ? read_logits(logits_file, n, *nv) : NULL;
    CHECKF(ref, "%s: fixtures", name);
    if (!ref) {
        strix_model_free(*m);
        *m = NULL;
    }
    return ref;
}

static void check_state(const char *name)
{
    strix_model *m;
    strix_token ids[N_IDS];
    int nv;
    float *ref = load_case(name, &m, ids, &nv);
    if (!ref)
        return;
    /* two sequences interleaved token by token in one batch */
    strix_context *c = make_ctx(m, 2, 128);
    if (c) {
        int32_t pos[2 * N_IDS], sq[2 * N_IDS];
        int8_t want[2 * N_IDS];
        strix_token tok[2 * N_IDS];
        int k = 0;
        for (int i = 0; i < N_IDS; i++)
            for (int s = 0; s < 2; s++)
                if (s == 0 || i < 30)
                    tok[k] = ids[i], pos[k] = i, sq[k] = s, want[k++] = 1;
        const strix_batch b = {k, tok, pos, sq, want};
        strix_error err = {0, ""};
        float e = INFINITY;
        if (strix_decode_batch(c, &b, &err) == STRIX_OK) {
            e = 0.0f;
            for (int i = 0; i < k; i++)
                e = fmaxf(e,
                          rel_err(strix_get_logits(c, i), ref + (size_t)pos[i] * (size_t)nv, nv));
        }
        CHECKF(e < REL_TOL, "%s: two interleaved sequences: error %g (%s)", name, e, err.msg);
        printf("%-10s two sequences in one batch: max rel. error %.2e\n", name, e);
        strix_context_free(c);
    }
    /* rollback by several tokens, then the same tokens again; a fork */
    c = make_ctx(m, 2, 8); /* chunks of 8 */
    if (c) {
        float e = decode_span(c, ids, 0, 0, 40, ref, nv);
        CHECK(strix_kv_seq_rm(c, 0, 33, -1) == STRIX_OK);
        CHECKF(strix_kv_seq_pos_max(c, 0) == 32, "%s: pos_max %d after rollback", name,
               strix_kv_seq_pos_max(c, 0));
        e = fmaxf(e, decode_span(c, ids, 0, 33, 48, ref, nv));
        CHECK(strix_kv_seq_rm(c, 0, 45, -1) == STRIX_OK);
        CHECK(strix_kv_seq_cp(c, 0, 1, 0, -1) == STRIX_OK);
        e = fmaxf(e, decode_span(c, ids, 1, 45, 48, ref, nv));
        e = fmaxf(e, decode_span(c, ids, 0, 45, 47, ref, nv));
        CHECKF(e < REL_TOL, "%s: rollback and fork: error %g", name, e);
        printf("%-10s rollback 40 -> 33, fork at 45: max rel. error %.2e\n", name, e);
        strix_context_free(c);
    }
    free(ref);
    strix_model_free(m);
}

/* A recurrent state keeps n_state_keep positions: going back further is
 * refused and changes nothing; a middle cannot be removed; with one kept
 * state, decoding still matches. */
static void check_state_limits(const char *name)
{
    strix_model *m;
    strix_token ids[N_IDS];
    int nv;
    float *ref = load_case(name, &m, ids, &nv);
    strix_context *c = ref ? make_ctx_keep(m, 1, 16, 4) : NULL;
    if (c) {
        float e = decode_span(c, ids, 0, 0, 40, ref, nv);
        strix_error err = {0, ""};
        CHECK(strix_kv_seq_truncate(c, 0, 36, &err) == STRIX_ERR_UNSUPPORTED &&
              strstr(err.msg, "n_state_keep"));
        CHECK(strix_kv_seq_rm(c, 0, 37, 38) == STRIX_ERR_UNSUPPORTED);
        CHECK(strix_kv_seq_pos_max(c, 0) == 39);
        int32_t p = 30;
        int8_t want = 1;
        const strix_batch b = {1, ids + 30, &p, NULL, &want};
        CHECK(strix_decode_batch(c, &b, &err) == STRIX_ERR_UNSUPPORTED);
        e = fmaxf(e, decode_span(c, ids, 0, 40, 44, ref, nv));    /* unchanged by the refusals */
        CHECK(strix_kv_seq_truncate(c, 0, 41, &err) == STRIX_OK); /* 3 back: kept */
        e = fmaxf(e, decode_span(c, ids, 0, 41, 48, ref, nv));
        CHECKF(e < REL_TOL, "%s: 4 kept states: error %g", name, e);
        strix_context_free(c);
    }
    c = ref ? make_ctx_keep(m, 1, 16, 1) : NULL;
    if (c) {
        float e = decode_span(c, ids, 0, 0, 20, ref, nv);
        for (int i = 20; i < N_IDS; i++)
            e = fmaxf(e, decode_span(c, ids, 0, i, i + 1, ref, nv));
        CHECK(strix_kv_seq_truncate(c, 0, 47, NULL) == STRIX_ERR_UNSUPPORTED);
        CHECK(strix_kv_seq_truncate(c, 0, 0, NULL) == STRIX_OK);
        e = fmaxf(e, decode_span(c, ids, 0, 0, 10, ref, nv)); /* from empty again */
        CHECKF(e < REL_TOL, "%s: one kept state: error %g", name, e);
        strix_context_free(c);
    }
    free(ref);
    strix_model_free(m);
}

int main(void)
{
    if (!fixture_kernels(__FILE__))
        TEST_MAIN_END();
    check_state("deepseek2");
    check_state("deepseek2-yarn");
    check_state("mamba");
    check_state_limits("mamba");
    check_state("retnet"); /* against numpy's logits (tests/data/README.md) */
    check_state_limits("retnet");
    check_state("yoco");
    check_state_limits("yoco");
    TEST_MAIN_END();
}
