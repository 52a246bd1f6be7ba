/*
 * test_retnet.c - RetNet (multi-scale retention, runtime/retention.c)
 * against a direct numpy implementation of the paper's parallel form
 * (tests/data/gen_research_arch.py, fixtures arch/retnet.*, see
 * tests/data/README.md): logits within 1e-4 of the row's largest |logit|
 * decoded one token at a time (the recurrent form), as one batch (the
 * parallel form) and in chunks of 5 (the chunkwise form, each chunk
 * starting from the state the previous one left); the parallel and
 * recurrent forms within 1e-5 of each other; the same results on any
 * thread count; and a state that costs the same at any context length.
 * YOCO (arch/yoco.*, the same generator): its prefill runs the
 * cross-decoder only for the token that wants logits, decoding on still
 * matches numpy, and its cache is one shared layer plus the self-decoder's
 * state.
 */
#include <math.h>

#include "fixtures.h"
#include "harness.h"
#include "strix.h"

#define N_IDS 48
#define REF_TOL 1e-4f
#define FORM_TOL 1e-5f

/* Largest |a - b| over the row's largest |b|, over n rows. */
static float max_rel(const float *a, const float *b, int n, int nv)
{
    float e = 0.0f;
    for (int i = 0; i < n; i++) {
        const float *x = a + (size_t)i * (size_t)nv, *w = b + (size_t)i * (size_t)nv;
        float scale = 0.0f, d = 0.0f;
        for (int j = 0; j < nv; j++) {
            scale = fmaxf(scale, fabsf(w[j]));
            d = fmaxf(d, fabsf(x[j] - w[j]));
        }
        e = fmaxf(e, d / fmaxf(scale, 1e-6f));
    }
    return e;
}

/* Logits of ids decoded in chunks of `chunk` tokens (n_batch = chunk). */
static float *chunked(const strix_model *m, const strix_token *ids, int n, int chunk, int threads)
{
    strix_context *c = fixture_context(m, 128, chunk, threads);
    const int nv = strix_vocab_size(m);
    float *out = c ? malloc((size_t)n * (size_t)nv * sizeof(float)) : NULL;
    int8_t want[N_IDS];
    memset(want, 1, sizeof want);
    strix_error err = {0, ""};
    for (int p = 0; out && p < n; p += chunk) {
        const int k = n - p < chunk ? n - p : chunk;
        int32_t pos[N_IDS];
        for (int i = 0; i < k; i++)
            pos[i] = p + i;
        const strix_batch b = {k, ids + p, pos, NULL, want};
        if (strix_decode_batch(c, &b, &err) != STRIX_OK) {
            CHECKF(0, "chunk at %d: %s", p, err.msg);
            free(out);
            out = NULL;
            break;
        }
        for (int i = 0; i < k; i++)
            memcpy(out + (size_t)(p + i) * (size_t)nv, strix_get_logits(c, i),
                   (size_t)nv * sizeof(float));
    }
    strix_context_free(c);
    return out;
}

static void check_forms(void)
{
    strix_model *m = load_fixture("arch/retnet.gguf", NULL);
    strix_token ids[N_IDS];
    const int n = m ? read_ids("arch/retnet.ids", ids, N_IDS) : 0;
    const int nv = m ? strix_vocab_size(m) : 0;
    float *ref = n == N_IDS ? read_logits("arch/retnet.logits", n, nv) : NULL;
    if (!ref) {
        CHECKF(0, "retnet fixtures (%d ids)", n);
        strix_model_free(m);
        return;
    }
    float *rec = fixture_logits(m, ids, n, 0, 128, 1);
    float *par = fixture_logits(m, ids, n, 1, 128, 1);
    float *par3 = fixture_logits(m, ids, n, 1, 128, 3);
    float *chk = chunked(m, ids, n, 5, 2);
    if (rec && par && par3 && chk) {
        const float e_rec = max_rel(rec, ref, n, nv), e_par = max_rel(par, ref, n, nv);
        const float e_chk = max_rel(chk, ref, n, nv), e_form = max_rel(par, rec, n, nv);
        CHECKF(e_rec < REF_TOL, "recurrent form vs numpy: %g", e_rec);
        CHECKF(e_par < REF_TOL, "parallel form vs numpy: %g", e_par);
        CHECKF(e_chk < REF_TOL, "chunkwise form (chunks of 5) vs numpy: %g", e_chk);
        CHECKF(e_form < FORM_TOL, "parallel vs recurrent: %g", e_form);
        CHECK(memcmp(par, par3, (size_t)n * (size_t)nv * sizeof(float)) == 0);
        /* the greedy continuation numpy chose */
        int bad = 0;
        for (int i = 15; i + 1 < n; i++)
            bad += argmax(rec + (size_t)i * (size_t)nv, nv) != ids[i + 1];
        CHECKF(bad == 0, "%d greedy tokens differ from numpy's", bad);
        printf("retnet vs numpy: recurrent %.2e, parallel %.2e, chunkwise %.2e; "
               "parallel vs recurrent %.2e\n",
               e_rec, e_par, e_chk, e_form);
    }
    free(rec);
    free(par);
    free(par3);
    free(chk);
    free(ref);
    strix_model_free(m);
}

/* The state is n_head d_k x d_v floats per layer (2 x 4 x 8 x 16 here) and
 * nothing per token: a context's cache does not grow with its length. */
static void check_state_cost(void)
{
    strix_model *m = load_fixture("arch/retnet.gguf", NULL);
    if (!m)
        return;
    struct strix_model_info in = {.struct_size = sizeof in};
    strix_model_get_info(m, &in);
    CHECKF(in.cache_token_bytes == 0 && in.state_seq_bytes == 2 * 4 * 8 * 16 * 4,
           "cache %zu bytes per token, state %zu per sequence", in.cache_token_bytes,
           in.state_seq_bytes);
    size_t total[2] = {0, 0}, tok = 1, seq = 0;
    const int n_ctx[2] = {128, 16384};
    for (int i = 0; i < 2; i++) {
        struct strix_context_params cp = strix_context_default_params();
        cp.n_ctx = n_ctx[i];
        cp.n_batch = 8;
        cp.n_state_keep = 1;
        strix_context *c = fixture_context_with(m, &cp);
        CHECK(c && strix_context_cache_bytes(c, &total[i], &tok, &seq) == STRIX_OK);
        CHECKF(tok == 0 && seq == total[i] && seq >= in.state_seq_bytes &&
                   seq < in.state_seq_bytes + 1024,
               "context of %d: %zu bytes, %zu per token, %zu per sequence", n_ctx[i], total[i],
               tok, seq);
        strix_context_free(c);
    }
    CHECKF(total[0] == total[1], "cache of 128 positions %zu, of 16384 %zu", total[0], total[1]);
    strix_model_free(m);
}

/* ---- YOCO (runtime/yoco.c): the cross-decoder runs only for tokens
 * that want logits, and the shared cache still holds every token ---- */

struct layer_count {
    int tokens[8];
};

static void count_layer(void *user, const struct strix_layer_obs *o)
{
    struct layer_count *lc = user;
    if (o->layer >= 0 && o->layer < 8)
        lc->tokens[o->layer] += o->n_tokens;
}

static float decode_check(strix_context *c, const strix_token *ids, int p0, int p1, int all,
                          const float *ref, int nv)
{
    int32_t pos[N_IDS];
    int8_t want[N_IDS];
    for (int i = p0; i < p1; i++)
        pos[i - p0] = i, want[i - p0] = all == 1 || (all == 0 && i == p1 - 1);
    const strix_batch b = {p1 - p0, ids + p0, pos, NULL, want};
    strix_error err = {0, ""};
    if (strix_decode_batch(c, &b, &err) != STRIX_OK) {
        CHECKF(0, "decode [%d, %d): %s", p0, p1, err.msg);
        return INFINITY;
    }
    float e = 0.0f;
    for (int i = p0; i < p1; i++)
        if (want[i - p0])
            e = fmaxf(e, max_rel(strix_get_logits(c, all == 1 ? i - p0 : -1),
                                 ref + (size_t)i * (size_t)nv, 1, nv));
    return e;
}

static void check_yoco_prefill(void)
{
    strix_model *m = load_fixture("arch/yoco.gguf", NULL);
    strix_token ids[N_IDS];
    const int n = m ? read_ids("arch/yoco.ids", ids, N_IDS) : 0;
    const int nv = m ? strix_vocab_size(m) : 0;
    float *ref = n == N_IDS ? read_logits("arch/yoco.logits", n, nv) : NULL;
    struct layer_count lc = {{0}};
    struct strix_context_params cp = strix_context_default_params();
    cp.n_ctx = 128;
    cp.n_batch = 32;
    cp.n_threads = 2;
    cp.on_layer = count_layer;
    cp.on_layer_user = &lc;
    strix_context *c = ref ? fixture_context_with(m, &cp) : NULL;
    if (c) {
        /* 12 tokens without logits, then 8 with the last one's: the 4-block
         * model's self-decoder (blocks 0, 1) sees all 20, its cross-decoder
         * (blocks 2, 3) only the one */
        float e = decode_check(c, ids, 0, 12, -1, ref, nv);
        e = fmaxf(e, decode_check(c, ids, 12, 20, 0, ref, nv));
        CHECKF(lc.tokens[0] == 20 && lc.tokens[1] == 20 && lc.tokens[2] == 1 && lc.tokens[3] == 1,
               "tokens per block %d %d %d %d, want 20 20 1 1", lc.tokens[0], lc.tokens[1],
               lc.tokens[2], lc.tokens[3]);
        const int cross = lc.tokens[2];
        /* decoding on reads the skipped tokens' shared keys and values */
        for (int i = 20; i < N_IDS; i++)
            e = fmaxf(e, decode_check(c, ids, i, i + 1, 0, ref, nv));
        CHECKF(e < REF_TOL, "yoco with the cross-decoder skipped in prefill: error %g", e);
        printf("yoco: prefill of 20 tokens ran the cross-decoder for %d; then one by one: "
               "max rel. error %.2e vs numpy\n",
               cross, e);
        size_t total = 0, tok = 0, seq = 0;
        CHECK(strix_context_cache_bytes(c, &total, &tok, &seq) == STRIX_OK);
        /* one layer of 2 kv heads x 8 keys and values, plus 16 bytes of
         * bookkeeping, per cell; the self-decoder's 2 blocks x 4 heads x 8 x 8
         * state floats per kept position (16), plus their tags */
        CHECKF(tok == 2 * 2 * 8 * 4 + 16 && seq == 16 * (2 * 4 * 8 * 8 * 4 + 4) &&
                   total == 128 * tok + seq,
               "yoco cache %zu bytes: %zu per cell, %zu per sequence", total, tok, seq);
        strix_context_free(c);
    }
    /* a stage of a yoco model is refused: the cross-decoder needs the
     * self-decoder's shared cache */
    char path[4096];
    snprintf(path, sizeof path, "%s", test_path("arch/yoco.gguf"));
    struct strix_model_params mp = strix_model_default_params();
    mp.layer_first = 0;
    mp.layer_end = 2;
    strix_model *part = NULL;
    strix_error err = {0, ""};
    CHECK(strix_model_load(path, &mp, &part, &err) == STRIX_ERR_UNSUPPORTED && !part &&
          strstr(err.msg, "stages"));
    free(ref);
    strix_model_free(m);
}

int main(void)
{
    if (!fixture_kernels(__FILE__))
        TEST_MAIN_END();
    check_forms();
    check_state_cost();
    check_yoco_prefill();
    TEST_MAIN_END();
}
