/*
 * sampler.c - the sampling chain: repetition penalty, top-k, top-p, min-p,
 * temperature, then a draw from the softmax with a seeded generator (or the
 * argmax when the temperature is 0). The order follows llama.cpp's default
 * chain, so the same settings mean the same thing in both.
 *
 * Sampling uses only the logits and the sampler's own state, so a seed gives
 * the same tokens at any thread count.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

struct cand {
    float logit;
    float p;
    strix_token id;
};

struct strix_sampler {
    struct strix_sampler_params p;
    int n_vocab;
    uint64_t rng;
    struct cand *cands;   /* (n_vocab) */
    strix_token *history; /* ring of the last repeat_last_n accepted tokens */
    int n_hist, hist_at;
};

struct strix_sampler_params strix_sampler_default_params(void)
{
    struct strix_sampler_params p;
    p.temperature = 0.8f;
    p.top_k = 40;
    p.top_p = 0.95f;
    p.min_p = 0.05f;
    p.repeat_penalty = 1.0f;
    p.repeat_last_n = 64;
    p.seed = 42;
    return p;
}

int strix_sampler_create(const struct strix_sampler_params *params, int n_vocab,
                         strix_sampler **out, strix_error *err)
{
    err_clear(err);
    if (!out || !params)
        return err_set(err, STRIX_ERR_ARG, "NULL argument");
    *out = NULL;
    if (n_vocab <= 0)
        return err_set(err, STRIX_ERR_ARG, "vocabulary size %d", n_vocab);
    const struct strix_sampler_params *p = params;
    if (isnan(p->temperature) || isnan(p->top_p) || isnan(p->min_p) || isnan(p->repeat_penalty) ||
        p->repeat_penalty <= 0.0f || p->repeat_last_n < 0 || p->repeat_last_n > (1 << 20))
        return err_set(err, STRIX_ERR_ARG, "sampler parameters out of range");
    strix_sampler *s = util_calloc(1, sizeof *s);
    if (!s)
        return err_set(err, STRIX_ERR_NOMEM, "out of memory");
    s->p = *p;
    s->n_vocab = n_vocab;
    s->cands = util_malloc((size_t)n_vocab * sizeof *s->cands);
    s->history =
        util_malloc((size_t)(p->repeat_last_n > 0 ? p->repeat_last_n : 1) * sizeof *s->history);
    if (!s->cands || !s->history) {
        strix_sampler_free(s);
        return err_set(err, STRIX_ERR_NOMEM, "out of memory");
    }
    strix_sampler_reset(s, p->seed);
    *out = s;
    return STRIX_OK;
}

void strix_sampler_free(strix_sampler *s)
{
    if (!s)
        return;
    util_free(s->cands);
    util_free(s->history);
    util_free(s);
}

void strix_sampler_reset(strix_sampler *s, uint64_t seed)
{
    s->rng = seed ^ 0x9e3779b97f4a7c15ull;
    s->n_hist = s->hist_at = 0;
}

void strix_sampler_accept(strix_sampler *s, strix_token tok)
{
    const int cap = s->p.repeat_last_n;
    if (cap <= 0)
        return;
    s->history[s->hist_at] = tok;
    s->hist_at = (s->hist_at + 1) % cap;
    if (s->n_hist < cap)
        s->n_hist++;
}

static int cmp_desc(const void *a, const void *b)
{
    const struct cand *x = a, *y = b;
    if (x->logit != y->logit)
        return x->logit < y->logit ? 1 : -1;
    return x->id < y->id ? -1 : (x->id > y->id); /* stable order for equal logits */
}

/* Moves the k first candidates in cmp_desc order to c[0..k), in any order
 * (quickselect). The order is total, so the set is the one a full sort gives. */
static void select_top(struct cand *c, int n, int k)
{
    int lo = 0, hi = n - 1;
    uint32_t r = 2463534242u;
    while (lo < hi) {
        r ^= r << 13, r ^= r >> 17, r ^= r << 5; /* pivot choice only: no effect on results */
        const struct cand pivot = c[lo + (int)(r % (uint32_t)(hi - lo + 1))];
        int i = lo, j = hi;
        while (i <= j) {
            while (cmp_desc(&c[i], &pivot) < 0)
                i++;
            while (cmp_desc(&c[j], &pivot) > 0)
                j--;
            if (i <= j) {
                const struct cand t = c[i];
                c[i++] = c[j];
                c[j--] = t;
            }
        }
        if (k - 1 <= j)
            hi = j;
        else if (k - 1 >= i)
            lo = i;
        else
            break;
    }
}

/* Softmax of the first n candidates (sorted, descending) into p. */
static void softmax_cands(struct cand *c, int n)
{
    float sum = 0.0f;
    for (int i = 0; i < n; i++) {
        c[i].p = expf(c[i].logit - c[0].logit);
        sum += c[i].p;
    }
    for (int i = 0; i < n; i++)
        c[i].p /= sum;
}

strix_token strix_sampler_sample(strix_sampler *s, const float *logits)
{
    const struct strix_sampler_params *p = &s->p;
    const int nv = s->n_vocab;
    struct cand *c = s->cands;
    for (int i = 0; i < nv; i++) {
        c[i].logit = logits[i];
        c[i].id = i;
    }
    if (p->repeat_penalty != 1.0f) {
        for (int h = 0; h < s->n_hist; h++) {
            const strix_token t = s->history[h];
            int seen = 0; /* penalise each token once */
            for (int g = 0; g < h && !seen; g++)
                seen = s->history[g] == t;
            if (seen || t < 0 || t >= nv)
                continue;
            c[t].logit =
                c[t].logit > 0 ? c[t].logit / p->repeat_penalty : c[t].logit * p->repeat_penalty;
        }
    }
    if (p->temperature <= 0.0f) { /* greedy: the first maximum */
        int best = 0;
        for (int i = 1; i < nv; i++)
            if (c[i].logit > c[best].logit)
                best = i;
        return best;
    }
    int n = nv;
    if (p->top_k > 0 && p->top_k < n) {
        select_top(c, n, p->top_k); /* O(n), then sort only the k kept */
        n = p->top_k;
    }
    qsort(c, (size_t)n, sizeof *c, cmp_desc);
    softmax_cands(c, n);
    if (p->top_p < 1.0f) {
        float cum = 0.0f;
        for (int i = 0; i < n; i++) {
            cum += c[i].p;
            if (cum >= p->top_p) {
                n = i + 1;
                break;
            }
        }
    }
    if (p->min_p > 0.0f) {
        const float thresh = c[0].p * p->min_p;
        int keep = 1;
        while (keep < n && c[keep].p >= thresh)
            keep++;
        n = keep;
    }
    for (int i = 0; i < n; i++)
        c[i].logit /= p->temperature;
    softmax_cands(c, n);
    const float r = util_rng_uniform(&s->rng);
    float cum = 0.0f;
    for (int i = 0; i < n; i++) {
        cum += c[i].p;
        if (r < cum)
            return c[i].id;
    }
    return c[n - 1].id;
}
