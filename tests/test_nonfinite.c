/*
 * test_nonfinite.c - a model whose output has NaN logits (a broken
 * fine-tune, an overflow): a random-weight model with the output rows of
 * some tokens set to NaN. Sampled generation (the default chain, greedy,
 * typical-p, mirostat) and beam search must run, never pick a NaN token, and
 * report finite log-probabilities. (The sampler's own tests check the same on
 * hand-made logits; this runs the whole stack.)
 */
#include <math.h>

#include "harness.h"
#include "model/model.h"
#include "strix.h"
#include "strix_dev.h"

static int is_nan_token(strix_token t)
{
    return t % 7 == 3 || t == 2; /* EOS too, so that generation runs to the budget */
}

struct seen {
    int n, bad;
};

static int on_token(void *user, const char *text, size_t n, strix_token tok)
{
    (void)text;
    (void)n;
    struct seen *s = user;
    if (tok >= 0) {
        s->n++;
        s->bad += is_nan_token(tok);
    }
    return 0;
}

int main(void)
{
    struct strix_synth_params sp = strix_synth_default_params();
    sp.n_embd = 32, sp.n_ff = 64, sp.n_layer = 1, sp.n_head = 2, sp.n_head_kv = 1, sp.seed = 5;
    char vp[4096];
    snprintf(vp, sizeof vp, "%s", test_path("stories260K-ref.gguf"));
    strix_model *m = NULL;
    strix_error err;
    CHECKF(strix_model_synth(&sp, vp, &m, &err) == STRIX_OK, "%s", err.msg);
    if (!m)
        TEST_MAIN_END();
    const int nv = strix_vocab_size(m);
    /* NaN rows in the output matrix (F32 in a synthesized model, not packed) */
    CHECK(m->output.type == 0 /* F32 */ && m->output.packed == NULL);
    for (strix_token t = 0; t < nv; t++)
        if (is_nan_token(t)) {
            float *row = (float *)((char *)m->output.data + (size_t)t * m->output.row_bytes);
            for (int64_t j = 0; j < m->output.ne[0]; j++)
                row[j] = NAN;
        }
    struct strix_context_params cp = strix_context_default_params();
    cp.n_ctx = 64;
    cp.n_seq_max = 8;
    cp.n_threads = 1;
    strix_context *ctx = NULL;
    CHECK(strix_context_create(m, &cp, &ctx, &err) == STRIX_OK);
    const strix_token prompt[3] = {1, 20, 30}; /* none with a NaN row (tied embeddings) */
    for (int cfg = 0; ctx && cfg < 4; cfg++) {
        strix_kv_seq_rm(ctx, -1, 0, -1);
        CHECK(strix_decode(ctx, prompt, NULL, 3, NULL, &err) == STRIX_OK);
        const float *l = strix_get_logits(ctx, -1);
        CHECK(l && isnan(l[3]) && isnan(l[2]) && !isnan(l[4]));
        struct strix_sampler_params p = strix_sampler_default_params();
        p.seed = 11 + (uint64_t)cfg;
        p.n_probs = 2;
        if (cfg == 1)
            p.temperature = 0.0f;
        if (cfg == 2)
            p.typical_p = 0.9f, p.top_k = 0;
        if (cfg == 3)
            p.mirostat = 2;
        strix_sampler *s = NULL;
        CHECK(strix_sampler_create(&p, nv, &s, &err) == STRIX_OK);
        struct strix_gen_params gp = strix_gen_default_params();
        gp.n_predict = 30;
        struct seen seen = {0, 0};
        struct strix_gen_result res;
        const int rc = strix_generate(m, ctx, s, prompt[2], &gp, on_token, &seen, &res, &err);
        struct strix_token_prob ch;
        strix_sampler_last_probs(s, &ch, NULL, 0);
        CHECKF(rc == STRIX_OK && seen.n == 30 && seen.bad == 0 && isfinite(ch.logprob),
               "config %d: rc %d, %d tokens, %d with NaN logits, logprob %g", cfg, rc, seen.n,
               seen.bad, (double)ch.logprob);
        strix_sampler_free(s);
    }
    /* beam search */
    for (int w = 1; ctx && w <= 4; w *= 2) {
        struct strix_beam_params bp = strix_beam_default_params();
        bp.n_beams = w;
        bp.n_best = w;
        bp.n_predict = 10;
        struct strix_beam_result r;
        const int rc = strix_beam_search(m, ctx, prompt, 3, &bp, &r, &err);
        int ok = rc == STRIX_OK && r.n >= 1;
        for (int i = 0; ok && i < r.n; i++) {
            ok &= isfinite(r.hyps[i].logprob) && isfinite(r.hyps[i].score) &&
                  r.hyps[i].n_tokens == 10;
            for (int j = 0; j < r.hyps[i].n_tokens; j++)
                ok &= !is_nan_token(r.hyps[i].tokens[j]);
        }
        CHECKF(ok, "beams %d: rc %d, %d hypotheses, first logprob %g", w, rc, r.n,
               r.n > 0 ? r.hyps[0].logprob : 0.0);
        if (rc == STRIX_OK)
            strix_beam_result_free(&r);
    }
    strix_context_free(ctx);
    strix_model_free(m);
    TEST_MAIN_END();
}
