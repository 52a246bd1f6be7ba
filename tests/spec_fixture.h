/*
 * spec_fixture.h - the set-up the speculative-decoding tests share: the
 * stories260K target, three model drafts of it (the target itself, a
 * random-weight model with the same vocabulary, and a Q4_0 copy the caller
 * makes) each with its own context, plus tokenizing and sampler helpers.
 */
#ifndef STRIX_SPEC_FIXTURE_H
#define STRIX_SPEC_FIXTURE_H

#include "fixtures.h"
#include "harness.h"
#include "strix.h"

static inline int spec_tokenize(const strix_model *m, const char *text, strix_token *out, int cap)
{
    int n = 0;
    strix_error err;
    CHECKF(strix_tokenize(m, text, strlen(text), 1, out, cap, &n, &err) == STRIX_OK, "%s", err.msg);
    return n;
}

static inline strix_sampler *spec_sampler(const struct strix_sampler_params *sp, int nv)
{
    strix_sampler *s = NULL;
    strix_error err;
    CHECKF(strix_sampler_create(sp, nv, &s, &err) == STRIX_OK, "%s", err.msg);
    return s;
}

/* Sampling at temperature 1 with no truncation and no penalty. */
static inline struct strix_sampler_params spec_temp1(void)
{
    struct strix_sampler_params sp = strix_sampler_default_params();
    sp.temperature = 1;
    sp.top_k = 0;
    sp.top_p = 1;
    sp.min_p = 0;
    sp.repeat_penalty = 1;
    return sp;
}

struct spec_fixture {
    strix_model *t;    /* the target: stories260K-ref.gguf */
    strix_model *poor; /* llamacpp-synth-F32.gguf: same vocabulary, random weights */
    strix_model *q4m;  /* the target in Q4_0 (made by the caller's function) */
    strix_context *tctx, *sctx, *pctx, *qctx; /* target; drafts same, poor, q4 */
    strix_draft *same, *pd, *q4;
};

/* Loads the models and makes the contexts (n_ctx positions each) and
 * drafts; returns 0 (after recording the failure) if any part is missing. */
static inline int spec_fixture_open(struct spec_fixture *f, int n_ctx,
                                    strix_model *(*make_q4)(const strix_model *))
{
    memset(f, 0, sizeof *f);
    f->t = load_fixture("stories260K-ref.gguf", NULL);
    f->poor = load_fixture("llamacpp-synth-F32.gguf", NULL);
    f->q4m = f->t ? make_q4(f->t) : NULL;
    if (!f->t || !f->poor || !f->q4m)
        return 0;
    f->tctx = fixture_context(f->t, n_ctx, n_ctx, 1);
    f->sctx = fixture_context(f->t, n_ctx, n_ctx, 1);
    f->pctx = fixture_context(f->poor, n_ctx, n_ctx, 1);
    f->qctx = fixture_context(f->q4m, n_ctx, n_ctx, 1);
    if (!f->tctx || !f->sctx || !f->pctx || !f->qctx)
        return 0;
    strix_error err;
    CHECKF(strix_draft_model_create(f->t, f->t, f->sctx, &f->same, &err) == STRIX_OK, "%s",
           err.msg);
    CHECKF(strix_draft_model_create(f->t, f->poor, f->pctx, &f->pd, &err) == STRIX_OK, "%s",
           err.msg);
    CHECKF(strix_draft_model_create(f->t, f->q4m, f->qctx, &f->q4, &err) == STRIX_OK, "%s",
           err.msg);
    return f->same && f->pd && f->q4;
}

static inline void spec_fixture_close(struct spec_fixture *f)
{
    strix_draft_free(f->same);
    strix_draft_free(f->pd);
    strix_draft_free(f->q4);
    strix_context_free(f->tctx);
    strix_context_free(f->sctx);
    strix_context_free(f->pctx);
    strix_context_free(f->qctx);
    strix_model_free(f->t);
    strix_model_free(f->poor);
    strix_model_free(f->q4m);
    memset(f, 0, sizeof *f);
}

#endif
