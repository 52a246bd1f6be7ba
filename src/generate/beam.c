/*
 * beam.c - beam search over the multi-sequence KV cache.
 *
 * The prompt is decoded once, as sequence 0. Each step every live beam
 * proposes its 2W most likely next tokens; the W best continuations by total
 * log-probability live on. A continuation that ends (EOS, or BOS with
 * stop_at_bos) among the W best becomes a finished hypothesis. Beams live in
 * two banks of W sequence ids: a new beam shares its parent's cache cells
 * (strix_kv_seq_cp sets bits, it copies no keys or values), the old bank is
 * then dropped, and one batch decodes the W new tokens. So the context needs
 * n_seq_max >= 2W.
 *
 * Score = log-probability / n^length_penalty, n = generated tokens (the end
 * token included); length_penalty 0 ranks by total log-probability.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

UTIL_PARAMS_DEFINE(beam, .n_beams = 4, .n_predict = 64, .n_best = 1)

struct cand {
    double logprob; /* total, after this token */
    int beam;       /* index of the parent among the live beams */
    strix_token tok;
};

/* Descending log-probability (NaN last: a total order, as qsort needs), then
 * beam and token. */
static int cmp_cand(const void *a, const void *b)
{
    const struct cand *x = a, *y = b;
    const int xn = !!isnan(x->logprob), yn = !!isnan(y->logprob);
    if (xn != yn)
        return xn - yn;
    if (!xn && x->logprob != y->logprob)
        return x->logprob < y->logprob ? 1 : -1;
    if (x->beam != y->beam)
        return x->beam - y->beam;
    return x->tok - y->tok;
}

static int cmp_hyp(const void *a, const void *b) /* descending score, NaN last */
{
    const struct strix_beam_hyp *x = a, *y = b;
    const int xn = !!isnan(x->score), yn = !!isnan(y->score);
    if (xn != yn)
        return xn - yn;
    return xn ? 0 : (x->score < y->score) - (x->score > y->score);
}

static double score_of(double logprob, int n, float alpha)
{
    return alpha == 0.0f || n <= 0 ? logprob : logprob / pow((double)n, (double)alpha);
}

/* Adds a hypothesis (tokens copied) to the sorted list, keeping at most cap. */
static int add_hyp(struct strix_beam_hyp *list, int *n, int cap, const strix_token *toks, int len,
                   double logprob, float alpha, int finished)
{
    const double sc = score_of(logprob, len, alpha);
    if (*n == cap && sc <= list[cap - 1].score)
        return STRIX_OK;
    strix_token *t = util_malloc((size_t)(len > 0 ? len : 1) * sizeof *t);
    if (!t)
        return STRIX_ERR_NOMEM;
    memcpy(t, toks, (size_t)len * sizeof *t);
    if (*n == cap)
        util_free(list[--*n].tokens);
    list[*n].tokens = t;
    list[*n].n_tokens = len;
    list[*n].logprob = logprob;
    list[*n].score = sc;
    list[*n].finished = finished;
    ++*n;
    qsort(list, (size_t)*n, sizeof *list, cmp_hyp);
    return STRIX_OK;
}

void strix_beam_result_free(struct strix_beam_result *r)
{
    if (!r)
        return;
    for (int i = 0; i < r->n; i++)
        util_free(r->hyps[i].tokens);
    util_free(r->hyps);
    r->hyps = NULL;
    r->n = 0;
}

int strix_beam_search(const strix_model *model, strix_context *ctx, const strix_token *prompt,
                      int n_prompt, const struct strix_beam_params *params,
                      struct strix_beam_result *caller_out, strix_error *err)
{
    err_clear(err);
    if (!model || !ctx || !prompt || !params)
        return err_set(err, STRIX_ERR_ARG, "NULL argument");
    struct strix_beam_params bp;
    int prc = UTIL_PARAMS_READ(beam, &bp, params, err);
    if (!prc)
        prc = util_result_check(caller_out, UTIL_END_OF(struct strix_beam_result, n),
                                sizeof(struct strix_beam_result), "beam", err);
    if (prc)
        return prc;
    const struct strix_beam_params *p = &bp;
    struct strix_beam_result full = {.struct_size = sizeof full, .hyps = NULL, .n = 0};
    struct strix_beam_result *out = &full;
    util_result_write(caller_out, &full, sizeof full); /* no hypotheses until the end */
    const int W = p->n_beams, nv = strix_vocab_size(model), n_ctx = strix_context_n_ctx(ctx);
    if (W < 1 || W > STRIX_SEQ_MAX / 2 || p->n_best < 1 || p->n_predict < 0 ||
        !isfinite(p->length_penalty))
        return err_set(err, STRIX_ERR_ARG, "beam parameters out of range");
    if (n_prompt < 1 || n_prompt >= n_ctx)
        return err_set(err, STRIX_ERR_ARG, "prompt of %d tokens for a context of %d", n_prompt,
                       n_ctx);
    const int max_new = p->n_predict < n_ctx - n_prompt ? p->n_predict : n_ctx - n_prompt;
    const int n_keep = p->n_best > W ? p->n_best : W; /* finished hypotheses kept */
    const int n_prop = 2 * W < nv ? 2 * W : nv;       /* proposals per beam */
    const strix_token eos = strix_token_eos(model), bos = strix_token_bos(model);
    int rc = STRIX_OK;

    strix_token *toks = util_malloc((size_t)2 * W * (size_t)(max_new + 1) * sizeof *toks);
    double *lp = util_malloc((size_t)2 * W * sizeof *lp);
    struct cand *cand = util_malloc((size_t)W * (size_t)n_prop * sizeof *cand);
    struct strix_beam_hyp *fin = util_calloc((size_t)n_keep, sizeof *fin);
    strix_token *btok = util_malloc((size_t)W * sizeof *btok);
    int32_t *bpos = util_malloc((size_t)W * sizeof *bpos), *bseq = util_malloc((size_t)W * sizeof *bseq);
    int8_t *bwant = util_malloc((size_t)W);
    if (!toks || !lp || !cand || !fin || !btok || !bpos || !bseq || !bwant) {
        rc = err_set(err, STRIX_ERR_NOMEM, "out of memory");
        goto done;
    }
    int n_fin = 0;
    /* the prompt, once, as sequence 0 */
    strix_kv_seq_rm(ctx, -1, 0, -1);
    for (int i = 0; i < n_prompt && rc == STRIX_OK; i += 512) {
        const int n = n_prompt - i < 512 ? n_prompt - i : 512;
        rc = strix_decode(ctx, prompt + i, NULL, n, NULL, err);
    }
    if (rc)
        goto done;
    /* bank b holds beams at sequence ids [b*W, b*W + W); beam k's tokens at
     * toks[(b*W + k) * (max_new + 1)] */
    int bank = 0, n_live = 1, len = 0;
    lp[0] = 0.0;
    const size_t stride = (size_t)max_new + 1;
    for (int step = 0; step < max_new; step++) {
        /* proposals: each live beam's n_prop most likely tokens */
        int n_cand = 0;
        for (int k = 0; k < n_live; k++) {
            const float *l = strix_get_logits(ctx, step == 0 ? -1 : k);
            if (!l) {
                rc = err_set(err, STRIX_ERR_ARG, "no logits for beam %d", k);
                goto done;
            }
            /* log-softmax as the sampler's: a NaN logit is never proposed; at
             * an infinite maximum the tokens at it share the probability */
            float mx = -INFINITY;
            for (int v = 0; v < nv; v++)
                mx = l[v] > mx ? l[v] : mx;
            double z = 0.0;
            int n_at = 0;
            for (int v = 0; v < nv; v++) {
                if (isinf(mx))
                    n_at += l[v] == mx;
                else if (!isnan(l[v]))
                    z += exp((double)(l[v] - mx));
            }
            const double lse = isinf(mx) ? 0.0 : (double)mx + log(z);
            /* top n_prop by insertion (n_prop is small) */
            struct cand *c = cand + n_cand;
            int m = 0;
            for (int v = 0; v < nv; v++) {
                if (isnan(l[v]))
                    continue;
                const double lv = isinf(mx) ? (l[v] == mx ? -log((double)n_at) : -INFINITY)
                                            : (double)l[v] - lse;
                const double x = lp[bank * W + k] + lv;
                if (m == n_prop && x <= c[m - 1].logprob)
                    continue;
                int j = m < n_prop ? m++ : n_prop - 1;
                while (j > 0 && c[j - 1].logprob < x) {
                    c[j] = c[j - 1];
                    j--;
                }
                c[j].logprob = x;
                c[j].beam = k;
                c[j].tok = v;
            }
            n_cand += m;
        }
        qsort(cand, (size_t)n_cand, sizeof *cand, cmp_cand);
        /* the W best continuations live; ends among them finish */
        const int nb = 1 - bank;
        int n_next = 0;
        for (int i = 0; i < n_cand && n_next < W; i++) {
            const struct cand *c = &cand[i];
            const strix_token *parent = toks + (size_t)(bank * W + c->beam) * stride;
            if (c->tok == eos || (p->stop_at_bos && c->tok == bos)) {
                if (i >= W)
                    continue; /* an end outside the W best is not taken */
                if ((rc = add_hyp(fin, &n_fin, n_keep, parent, len, c->logprob,
                                  p->length_penalty, 1)))
                    goto nomem;
                continue;
            }
            const int sid = nb * W + n_next;
            strix_token *dst = toks + (size_t)sid * stride;
            memcpy(dst, parent, (size_t)len * sizeof *dst);
            dst[len] = c->tok;
            lp[sid] = c->logprob;
            if (strix_kv_seq_rm(ctx, sid, 0, -1) ||
                strix_kv_seq_cp(ctx, bank * W + c->beam, sid, 0, -1)) { /* shares, copies nothing */
                rc = err_set(err, STRIX_ERR_ARG,
                             "%d beams need a context with n_seq_max >= %d", W, 2 * W);
                goto done;
            }
            btok[n_next] = c->tok;
            bpos[n_next] = n_prompt + len;
            bseq[n_next] = sid;
            bwant[n_next] = 1;
            n_next++;
        }
        for (int k = 0; k < W; k++) /* the old bank goes; shared cells stay for the new */
            strix_kv_seq_rm(ctx, bank * W + k, 0, -1);
        bank = nb;
        n_live = n_next;
        len++;
        /* done? */
        const double best_live = n_live > 0 ? score_of(lp[bank * W], len, p->length_penalty)
                                             : -INFINITY;
        if (n_live == 0)
            break;
        if (n_fin >= W && (p->early_stopping || (p->length_penalty <= 0.0f &&
                                                 best_live <= fin[W - 1].score)))
            break;
        if (step + 1 == max_new)
            break;
        const strix_batch b = {n_live, btok, bpos, bseq, bwant};
        if ((rc = strix_decode_batch(ctx, &b, err)))
            goto done;
    }
    /* beams still live at the budget are unfinished hypotheses */
    for (int k = 0; k < n_live; k++)
        if ((rc = add_hyp(fin, &n_fin, n_keep, toks + (size_t)(bank * W + k) * stride, len,
                          lp[bank * W + k], p->length_penalty, 0)))
            goto nomem;
    const int n_out = n_fin < p->n_best ? n_fin : p->n_best;
    out->hyps = util_calloc((size_t)(n_out > 0 ? n_out : 1), sizeof *out->hyps);
    if (!out->hyps)
        goto nomem; /* out->n stays 0 */
    out->n = n_out;
    for (int i = 0; i < out->n; i++) {
        out->hyps[i] = fin[i];
        fin[i].tokens = NULL;
    }
    goto done;
nomem:
    rc = err_set(err, STRIX_ERR_NOMEM, "out of memory");
done:
    if (fin)
        for (int i = 0; i < n_keep; i++)
            util_free(fin[i].tokens);
    strix_kv_seq_rm(ctx, -1, 0, -1);
    util_free(toks);
    util_free(lp);
    util_free(cand);
    util_free(fin);
    util_free(btok);
    util_free(bpos);
    util_free(bseq);
    util_free(bwant);
    util_result_write(caller_out, &full, sizeof full);
    return rc;
}
