/*
 * sampler.c - the sampling chain: logit bias, then the configured stages
 * (by default llama.cpp's order: penalties, top-k, typical-p, top-p, min-p,
 * temperature), then a draw from the softmax with a seeded generator, or
 * mirostat v2, or the argmax when the temperature is 0. The log-probabilities
 * of the model's own distribution are kept for the chosen token and the
 * n_probs most likely ones.
 *
 * The chain ends in a distribution over the whole vocabulary (zeros for the
 * tokens it removed); every draw is one uniform number from the sampler's
 * generator walked over that vector in token order, so drawing from the
 * vector strix_sampler_dist returns (strix_sampler_sample_dist) is the
 * sampler's own draw (speculative decoding needs both).
 *
 * Non-finite logits: a NaN logit (after the bias) removes its token, unless
 * every logit is NaN (then all count as -inf); where the largest logit is
 * infinite, the tokens at it share the probability equally (the limit of the
 * softmax), and if every candidate left is at -inf the draw is uniform over
 * them.
 *
 * Sampling uses only the logits and the sampler's own state, so a seed gives
 * the same tokens at any thread count.
 *
 * Per token, greedy sampling without bias or penalties (the common `--temp
 * 0`) is one pass over the logits: the first maximum, with the generator
 * advanced as the full chain's draw does. The log-probabilities are computed
 * from a copy of the last logits when strix_sampler_last_probs asks for them,
 * not at every token (a log-sum-exp over the vocabulary costs more than the
 * rest of sampling a small model's token).
 *
 * Stop strings are matched by strix_stop_find (generation, not sampling,
 * decides when to stop): see gen.c.
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

/* Typical-p: a candidate's distance from the entropy, and its index. */
struct typ {
    double dist;
    int i;
};

enum stage { ST_PENALTIES, ST_TOP_K, ST_TYPICAL_P, ST_TOP_P, ST_MIN_P, ST_TEMPERATURE, ST_COUNT };

static const char *const stage_names[ST_COUNT][3] = {
    {"penalties", "penalty", NULL},    {"top_k", "top-k", NULL},
    {"typical_p", "typical-p", "typ_p"}, {"top_p", "top-p", NULL},
    {"min_p", "min-p", NULL},          {"temperature", "temp", NULL},
};

#define DEFAULT_ORDER "penalties;top_k;typical_p;top_p;min_p;temperature"

struct strix_sampler {
    struct strix_sampler_params p;
    int n_vocab;
    uint64_t rng;
    struct cand *cands;   /* (n_vocab) */
    strix_token *history; /* (cap_hist) ring of the last accepted tokens: the window of
                             repeat_last_n and STRIX_SAMPLER_REWIND_MAX more, for rewinds */
    int cap_hist, n_hist, hist_at; /* hist_at: where the next token goes */
    int64_t n_lost; /* accepted tokens overwritten since the reset */
    int *counts;                  /* (n_vocab) occurrences in the window, scratch */
    struct strix_logit_bias *bias; /* (n_bias) copied from the params */
    int n_bias;
    int order[ST_COUNT]; /* stages in the order they run */
    int n_order;
    float mu; /* mirostat v2: the current surprise bound, in bits */
    strix_token chosen; /* the last draw (-1: none since the reset) */
    float *last;        /* (n_vocab) the logits it was drawn from */
    float *probs;    /* (n_vocab) the distribution of the last draw (not kept by the
                        greedy shortcut) */
    struct typ *typ; /* (n_vocab) typical-p scratch */
};

/* llama.cpp's defaults */
UTIL_PARAMS_DEFINE(sampler, .temperature = 0.8f, .top_k = 40, .top_p = 0.95f, .min_p = 0.05f,
                   .repeat_penalty = 1.0f, .repeat_last_n = 64, .seed = 42, .typical_p = 1.0f,
                   .mirostat_tau = 5.0f, .mirostat_eta = 0.1f)

/* Parses "top_k;temperature" (separators ';' ',' or ' ') into stage ids. */
static int parse_order(const char *s, int *order, int *n_order, strix_error *err)
{
    int n = 0, seen[ST_COUNT] = {0};
    while (*s) {
        size_t len = strcspn(s, ";, ");
        if (len > 0) {
            int st = -1;
            for (int i = 0; i < ST_COUNT && st < 0; i++)
                for (int a = 0; a < 3 && stage_names[i][a]; a++)
                    if (strlen(stage_names[i][a]) == len && memcmp(stage_names[i][a], s, len) == 0)
                        st = i;
            if (st < 0)
                return err_set(err, STRIX_ERR_ARG,
                               "unknown sampler stage '%.*s' (known: " DEFAULT_ORDER ")",
                               (int)(len > 64 ? 64 : len), s);
            if (seen[st]++)
                return err_set(err, STRIX_ERR_ARG, "sampler stage '%s' named twice",
                               stage_names[st][0]);
            order[n++] = st;
        }
        s += len;
        if (*s)
            s++;
    }
    *n_order = n;
    return STRIX_OK;
}

int strix_sampler_create(const struct strix_sampler_params *params, int n_vocab,
                         strix_sampler **out, strix_error *err)
{
    err_clear(err);
    if (out)
        *out = NULL;
    if (!out || !params)
        return err_set(err, STRIX_ERR_ARG, "NULL argument");
    if (n_vocab <= 0)
        return err_set(err, STRIX_ERR_ARG, "vocabulary size %d", n_vocab);
    struct strix_sampler_params sp;
    int rc = UTIL_PARAMS_READ(sampler, &sp, params, err);
    if (rc)
        return rc;
    const struct strix_sampler_params *p = &sp;
    if (!isfinite(p->temperature) || isnan(p->top_p) || isnan(p->min_p) ||
        !isfinite(p->repeat_penalty) || p->repeat_penalty <= 0.0f || p->repeat_last_n < 0 ||
        p->repeat_last_n > (1 << 20) ||
        !isfinite(p->frequency_penalty) || !isfinite(p->presence_penalty) ||
        isnan(p->typical_p) || (p->mirostat != 0 && p->mirostat != 2) ||
        !(p->mirostat_tau >= 0.0f && p->mirostat_tau < 1e4f) ||
        !(p->mirostat_eta >= 0.0f && p->mirostat_eta <= 1e3f) || p->n_probs < 0 ||
        p->n_probs > n_vocab || p->n_logit_bias < 0 || (p->n_logit_bias > 0 && !p->logit_bias))
        return err_set(err, STRIX_ERR_ARG, "sampler parameters out of range");
    for (int i = 0; i < p->n_logit_bias; i++)
        if (p->logit_bias[i].token < 0 || p->logit_bias[i].token >= n_vocab ||
            isnan(p->logit_bias[i].bias))
            return err_set(err, STRIX_ERR_ARG, "logit bias %d: token %d out of range or NaN", i,
                           p->logit_bias[i].token);
    int order[ST_COUNT], n_order = 0;
    rc = parse_order(p->order ? p->order : DEFAULT_ORDER, order, &n_order, err);
    if (rc)
        return rc;
    strix_sampler *s = util_calloc(1, sizeof *s);
    if (!s)
        return err_set(err, STRIX_ERR_NOMEM, "out of memory");
    s->p = *p;
    s->p.order = NULL; /* borrowed pointers are not kept */
    s->p.logit_bias = NULL;
    s->n_vocab = n_vocab;
    memcpy(s->order, order, sizeof order);
    s->n_order = n_order;
    s->cands = util_malloc((size_t)n_vocab * sizeof *s->cands);
    s->counts = util_calloc((size_t)n_vocab, sizeof *s->counts);
    s->cap_hist = p->repeat_last_n + STRIX_SAMPLER_REWIND_MAX;
    s->history = util_malloc((size_t)s->cap_hist * sizeof *s->history);
    s->last = util_malloc((size_t)n_vocab * sizeof *s->last);
    s->n_bias = p->n_logit_bias;
    s->bias = util_malloc((size_t)(s->n_bias > 0 ? s->n_bias : 1) * sizeof *s->bias);
    s->probs = util_malloc((size_t)n_vocab * sizeof *s->probs);
    s->typ = util_malloc((size_t)n_vocab * sizeof *s->typ);
    if (!s->cands || !s->history || !s->counts || !s->last || !s->bias || !s->probs || !s->typ) {
        strix_sampler_free(s);
        return err_set(err, STRIX_ERR_NOMEM, "out of memory");
    }
    if (s->n_bias > 0)
        memcpy(s->bias, p->logit_bias, (size_t)s->n_bias * sizeof *s->bias);
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
    util_free(s->counts);
    util_free(s->last);
    util_free(s->bias);
    util_free(s->probs);
    util_free(s->typ);
    util_free(s);
}

void strix_sampler_reset(strix_sampler *s, uint64_t seed)
{
    if (!s)
        return;
    s->rng = seed ^ 0x9e3779b97f4a7c15ull;
    s->n_hist = s->hist_at = 0;
    s->n_lost = 0;
    s->mu = 2.0f * s->p.mirostat_tau;
    s->chosen = -1;
}

void strix_sampler_accept(strix_sampler *s, strix_token tok)
{
    if (!s)
        return;
    s->history[s->hist_at] = tok;
    s->hist_at = (s->hist_at + 1) % s->cap_hist;
    if (s->n_hist < s->cap_hist)
        s->n_hist++;
    else
        s->n_lost++;
}

int strix_sampler_rewind(strix_sampler *s, int n_tokens, strix_error *err)
{
    err_clear(err);
    if (!s || n_tokens < 0)
        return err_set(err, STRIX_ERR_ARG, "bad argument");
    /* the window after the rewind must still be whole */
    if (n_tokens > s->n_hist || (s->n_lost > 0 && s->n_hist - n_tokens < s->p.repeat_last_n))
        return err_set(err, STRIX_ERR_ARG, "cannot rewind %d of the %d tokens kept", n_tokens,
                       s->n_hist);
    s->n_hist -= n_tokens;
    s->hist_at = (s->hist_at - n_tokens % s->cap_hist + s->cap_hist) % s->cap_hist;
    return STRIX_OK;
}

float strix_sampler_uniform(strix_sampler *s)
{
    if (!s)
        return NAN;
    return util_rng_uniform(&s->rng);
}

/* The number of tokens the penalties look at. */
static int window(const strix_sampler *s)
{
    return s->n_hist < s->p.repeat_last_n ? s->n_hist : s->p.repeat_last_n;
}

/* The j-th most recent accepted token (0: the last), j < n_hist. */
static strix_token recent(const strix_sampler *s, int j)
{
    return s->history[(s->hist_at - 1 - j + s->cap_hist) % s->cap_hist];
}

/* Descending logit, NaN after everything (-inf included), then ascending id:
 * a total order, so sorting and quickselect are well defined on any input. */
static int cmp_desc(const void *a, const void *b)
{
    const struct cand *x = a, *y = b;
    const int xn = !!isnan(x->logit), yn = !!isnan(y->logit);
    if (xn != yn)
        return xn ? 1 : -1;
    if (!xn && x->logit != y->logit)
        return x->logit < y->logit ? 1 : -1;
    return x->id < y->id ? -1 : (x->id > y->id);
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

/* Softmax of the first n candidates (any order) into p. NaN counts as -inf;
 * an infinite maximum is shared equally by the candidates at it (all of them
 * if it is -inf). */
static void softmax_cands(struct cand *c, int n)
{
    float mx = -INFINITY;
    for (int i = 0; i < n; i++)
        mx = c[i].logit > mx ? c[i].logit : mx;
    double sum = 0.0;
    for (int i = 0; i < n; i++) {
        const float l = isnan(c[i].logit) ? -INFINITY : c[i].logit;
        c[i].p = isinf(mx) ? (l == mx ? 1.0f : 0.0f) : expf(l - mx);
        sum += c[i].p;
    }
    if (sum == 0.0) { /* all -inf: uniform */
        for (int i = 0; i < n; i++)
            c[i].p = 1.0f;
        sum = n;
    }
    for (int i = 0; i < n; i++)
        c[i].p = (float)(c[i].p / sum);
}

/* Repetition penalty on each distinct token of the window (llama.cpp's
 * rule: a positive logit is divided, a negative one multiplied), then
 * frequency (per occurrence) and presence (once) penalties, OpenAI's. */
static void apply_penalties(strix_sampler *s, struct cand *c)
{
    const struct strix_sampler_params *p = &s->p;
    if (p->repeat_penalty == 1.0f && p->frequency_penalty == 0.0f && p->presence_penalty == 0.0f)
        return;
    const int nv = s->n_vocab, nw = window(s);
    for (int h = 0; h < nw; h++)
        if (recent(s, h) >= 0 && recent(s, h) < nv)
            s->counts[recent(s, h)]++;
    for (int h = 0; h < nw; h++) {
        const strix_token t = recent(s, h);
        if (t < 0 || t >= nv || s->counts[t] == 0)
            continue; /* out of range, or already done */
        float l = c[t].logit;
        if (p->repeat_penalty != 1.0f)
            l = l > 0 ? l / p->repeat_penalty : l * p->repeat_penalty;
        l -= (float)s->counts[t] * p->frequency_penalty + p->presence_penalty;
        c[t].logit = l;
        s->counts[t] = 0; /* also leaves counts zeroed for the next call */
    }
}

static int cmp_typ(const void *a, const void *b)
{
    const struct typ *x = a, *y = b;
    if (x->dist != y->dist)
        return x->dist < y->dist ? -1 : 1;
    return x->i < y->i ? -1 : (x->i > y->i);
}

/* Typical sampling (Meister et al.): keep the tokens whose surprise is
 * closest to the entropy, until their mass exceeds typical_p; O(n log n).
 * c is sorted and softmaxed; the kept set is left sorted by logit. Distances
 * are never NaN (a zero probability is infinitely far), so the order is total. */
static int typical_cands(strix_sampler *s, struct cand *c, int n, float typical_p)
{
    double ent = 0.0;
    for (int i = 0; i < n; i++)
        if (c[i].p > 0.0f)
            ent -= (double)c[i].p * log((double)c[i].p);
    struct typ *t = s->typ;
    for (int i = 0; i < n; i++) {
        t[i].dist = c[i].p > 0.0f ? fabs(-log((double)c[i].p) - ent) : INFINITY;
        t[i].i = i;
    }
    qsort(t, (size_t)n, sizeof *t, cmp_typ);
    double cum = 0.0;
    int kept = 0;
    while (kept < n) {
        cum += c[t[kept].i].p;
        kept++;
        if (cum > typical_p)
            break;
    }
    /* keep the entries named by t[0..kept), in their sorted order; the
     * probabilities of the others mark them (-1) */
    for (int i = kept; i < n; i++)
        c[t[i].i].p = -1.0f;
    int w = 0;
    for (int i = 0; i < n; i++)
        if (c[i].p >= 0.0f)
            c[w++] = c[i];
    return w;
}

/* One token's log-softmax, given the maximum logit mx, the log-sum-exp lse
 * (finite mx) and the number of tokens at an infinite maximum. */
static float logprob_of(float l, float mx, double lse, int n_at_max)
{
    if (isinf(mx))
        return l == mx || mx < 0 ? (float)-log((double)n_at_max) : -INFINITY;
    return isnan(l) ? -INFINITY : (float)((double)l - lse);
}

/* Log-probabilities of the model's distribution (log-softmax of the raw
 * logits): the chosen token's, and the k largest into top (may be NULL). */
static void logprobs_of(const float *logits, int nv, strix_token chosen,
                        struct strix_token_prob *ch, struct strix_token_prob *top, int k)
{
    float mx = -INFINITY;
    for (int i = 0; i < nv; i++)
        mx = logits[i] > mx ? logits[i] : mx;
    /* log-softmax with NaN as -inf; an infinite maximum is shared by the
     * n_at_max tokens at it (all of them if it is -inf) */
    double sum = 0.0;
    int n_at_max = 0;
    for (int i = 0; i < nv; i++) {
        n_at_max += logits[i] == mx || (isinf(mx) && mx < 0);
        if (!isinf(mx) && !isnan(logits[i]))
            sum += exp((double)(logits[i] - mx));
    }
    const double lse = isinf(mx) ? 0.0 : (double)mx + log(sum);
    if (ch) {
        ch->id = chosen;
        ch->logprob = logprob_of(logits[chosen], mx, lse, n_at_max);
    }
    int n_top = 0;
    for (int i = 0; i < nv && top && k > 0; i++) { /* insertion into a sorted top-k list */
        const float l = isnan(logits[i]) ? -INFINITY : logits[i];
        if (n_top == k && l <= top[k - 1].logprob)
            continue;
        int j = n_top < k ? n_top++ : k - 1;
        while (j > 0 && top[j - 1].logprob < l) {
            top[j] = top[j - 1];
            j--;
        }
        top[j].id = i;
        top[j].logprob = l;
    }
    for (int i = 0; i < n_top; i++)
        top[i].logprob = logprob_of(top[i].logprob, mx, lse, n_at_max);
}

/* One uniform number from rng walked over w[0..n) in token order: the first
 * token whose cumulative weight exceeds r * sum (sum: the weights' total in
 * the same order, > 0); if rounding leaves none, the last positive one. */
static strix_token draw_weights(uint64_t *rng, const float *w, int n, double sum)
{
    const double target = (double)util_rng_uniform(rng) * sum;
    double cum = 0.0;
    strix_token last = 0;
    for (int i = 0; i < n; i++) {
        if (!(w[i] > 0.0f))
            continue;
        cum += (double)w[i];
        last = i;
        if (target < cum)
            return i;
    }
    return last;
}

/* Mirostat v2 (Basu et al.): drop tokens whose surprise (-log2 p) exceeds mu;
 * the draw is from the rest (c sorted, softmaxed on return). mu moves after
 * the draw (mirostat_update). */
static int mirostat_v2(strix_sampler *s, struct cand *c, int n)
{
    softmax_cands(c, n);
    int keep = 1;
    while (keep < n && -log2f(c[keep].p) <= s->mu)
        keep++;
    if (-log2f(c[0].p) > s->mu)
        keep = 1;
    softmax_cands(c, keep);
    return keep;
}

/* Runs the chain on the logits: the candidates left are c[0..n) (any order)
 * with their probabilities in c[].p, summing to 1. Changes no state but the
 * scratch (history, generator and mirostat's mu are only read). */
static int run_chain(strix_sampler *s, const float *logits)
{
    const struct strix_sampler_params *p = &s->p;
    const int nv = s->n_vocab;
    struct cand *c = s->cands;
    for (int i = 0; i < nv; i++) {
        c[i].logit = logits[i];
        c[i].id = i;
    }
    for (int i = 0; i < s->n_bias; i++)
        c[s->bias[i].token].logit += s->bias[i].bias;
    /* NaN (also -inf + inf from a bias) leaves the candidates, unless all are
     * NaN: then they stay, as -inf */
    int n = 0;
    for (int i = 0; i < nv; i++)
        if (!isnan(c[i].logit))
            c[n++] = c[i];
    if (n == 0)
        for (int i = 0; i < nv; i++)
            c[n++] = (struct cand){-INFINITY, 0.0f, i};
    int sorted = 0, probs = 0; /* c sorted by logit; c[].p is its softmax */
    const int greedy = p->temperature <= 0.0f;
    for (int o = 0; o < s->n_order; o++) {
        const int st = s->order[o];
        if (st == ST_PENALTIES) {
            if (n == nv && !sorted) /* candidates are still indexed by id */
                apply_penalties(s, c);
            else { /* after truncation: penalise the kept ones in place */
                /* a stage ran before: count the window, then penalise in place */
                for (int h = 0; h < window(s); h++)
                    if (recent(s, h) >= 0 && recent(s, h) < nv)
                        s->counts[recent(s, h)]++;
                for (int i = 0; i < n; i++) {
                    const int cnt = s->counts[c[i].id];
                    if (!cnt)
                        continue;
                    float l = c[i].logit;
                    if (p->repeat_penalty != 1.0f)
                        l = l > 0 ? l / p->repeat_penalty : l * p->repeat_penalty;
                    c[i].logit = l - (float)cnt * p->frequency_penalty - p->presence_penalty;
                }
                for (int h = 0; h < window(s); h++)
                    if (recent(s, h) >= 0 && recent(s, h) < nv)
                        s->counts[recent(s, h)] = 0;
                sorted = probs = 0;
            }
            continue;
        }
        if (greedy || (p->mirostat == 2 && st != ST_TEMPERATURE))
            continue; /* greedy takes the argmax; mirostat replaces truncation */
        if (st == ST_TOP_K) {
            if (p->top_k > 0 && p->top_k < n) {
                select_top(c, n, p->top_k); /* O(n), then sort only the k kept */
                n = p->top_k;
                sorted = probs = 0;
            }
            continue;
        }
        if (st == ST_TEMPERATURE) {
            for (int i = 0; i < n; i++)
                c[i].logit /= p->temperature;
            probs = 0;
            continue;
        }
        /* the truncation stages work on sorted probabilities */
        if ((st == ST_TYPICAL_P && p->typical_p >= 1.0f) || (st == ST_TOP_P && p->top_p >= 1.0f) ||
            (st == ST_MIN_P && p->min_p <= 0.0f))
            continue;
        if (!sorted)
            qsort(c, (size_t)n, sizeof *c, cmp_desc);
        if (!probs)
            softmax_cands(c, n);
        sorted = probs = 1;
        if (st == ST_TYPICAL_P) {
            n = typical_cands(s, c, n, p->typical_p);
            probs = 0;
        } else if (st == ST_TOP_P) {
            float cum = 0.0f;
            for (int i = 0; i < n; i++) {
                cum += c[i].p;
                if (cum >= p->top_p) {
                    n = i + 1;
                    break;
                }
            }
        } else { /* ST_MIN_P */
            const float thresh = c[0].p * p->min_p;
            int keep = 1;
            while (keep < n && c[keep].p >= thresh)
                keep++;
            n = keep;
        }
    }
    if (greedy) { /* the first maximum, alone */
        int best = 0;
        for (int i = 1; i < n; i++)
            if (cmp_desc(&c[i], &c[best]) < 0)
                best = i;
        c[0] = c[best];
        c[0].p = 1.0f;
        return 1;
    }
    if (p->mirostat == 2) {
        if (!sorted)
            qsort(c, (size_t)n, sizeof *c, cmp_desc);
        return mirostat_v2(s, c, n);
    }
    softmax_cands(c, n);
    return n;
}

/* The chain's distribution over the vocabulary into probs; returns its sum
 * (accumulated in token order, as draw_weights does). */
static double chain_dist(strix_sampler *s, const float *logits, float *probs)
{
    const int n = run_chain(s, logits);
    memset(probs, 0, (size_t)s->n_vocab * sizeof *probs);
    for (int i = 0; i < n; i++)
        probs[s->cands[i].id] = s->cands[i].p;
    double sum = 0.0;
    for (int i = 0; i < s->n_vocab; i++)
        sum += (double)probs[i];
    return sum;
}

/* What the chain gives without bias and penalties at temperature 0: the
 * first maximum of the logits, NaN skipped (token 0 if all are NaN), as
 * cmp_desc orders them. */
static strix_token first_max(const float *logits, int nv)
{
    int best = -1;
    for (int i = 0; i < nv; i++)
        if (!isnan(logits[i]) && (best < 0 || logits[i] > logits[best]))
            best = i;
    return best < 0 ? 0 : best;
}

strix_token strix_sampler_sample(strix_sampler *s, const float *logits)
{
    if (!s || !logits)
        return -1;
    const struct strix_sampler_params *p = &s->p;
    strix_token tok;
    float p_tok; /* the chosen token's share of the distribution */
    if (p->temperature <= 0.0f && s->n_bias == 0 && p->repeat_penalty == 1.0f &&
        p->frequency_penalty == 0.0f && p->presence_penalty == 0.0f) {
        /* one-hot on the first maximum: the chain's draw, which still takes
         * its uniform number from the generator */
        tok = first_max(logits, s->n_vocab);
        (void)util_rng_uniform(&s->rng);
        p_tok = 1.0f;
    } else {
        const double sum = chain_dist(s, logits, s->probs);
        tok = draw_weights(&s->rng, s->probs, s->n_vocab, sum);
        p_tok = (float)(s->probs[tok] / sum);
    }
    if (p->mirostat == 2) { /* move mu toward the target surprise tau */
        const float surprise = -log2f(p_tok);
        s->mu -= p->mirostat_eta * (surprise - p->mirostat_tau);
    }
    memcpy(s->last, logits, (size_t)s->n_vocab * sizeof *logits);
    s->chosen = tok;
    return tok;
}

int strix_sampler_dist(strix_sampler *s, const float *logits, int n_vocab, float *probs,
                       strix_error *err)
{
    err_clear(err);
    if (!s || !logits || !probs)
        return err_set(err, STRIX_ERR_ARG, "NULL argument");
    if (n_vocab != s->n_vocab)
        return err_set(err, STRIX_ERR_ARG, "distribution of %d tokens for a sampler of %d",
                       n_vocab, s->n_vocab);
    chain_dist(s, logits, probs);
    return STRIX_OK;
}

int strix_sampler_sample_dist(strix_sampler *s, const float *probs, int n, strix_token *tok,
                              strix_error *err)
{
    err_clear(err);
    if (tok)
        *tok = -1;
    if (!s || !probs || !tok)
        return err_set(err, STRIX_ERR_ARG, "NULL argument");
    if (n <= 0)
        return err_set(err, STRIX_ERR_ARG, "distribution of %d tokens", n);
    double sum = 0.0;
    for (int i = 0; i < n; i++) {
        if (!(probs[i] >= 0.0f) || isinf(probs[i]))
            return err_set(err, STRIX_ERR_ARG, "probability %d is %g (not finite and >= 0)", i,
                           (double)probs[i]);
        sum += (double)probs[i];
    }
    if (!(sum > 0.0))
        return err_set(err, STRIX_ERR_ARG, "the distribution is all zeros");
    *tok = draw_weights(&s->rng, probs, n, sum);
    return STRIX_OK;
}

int strix_sampler_last_probs(const strix_sampler *s, struct strix_token_prob *chosen,
                             struct strix_token_prob *top, int cap)
{
    if (!s || s->chosen < 0) {
        if (chosen)
            *chosen = (struct strix_token_prob){-1, NAN};
        return 0;
    }
    const int k = top ? (cap < s->p.n_probs ? cap : s->p.n_probs) : 0;
    logprobs_of(s->last, s->n_vocab, s->chosen, chosen, top, k > 0 ? k : 0);
    return k > 0 ? k : 0;
}
