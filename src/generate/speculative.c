/*
 * speculative.c - speculative decoding: the draft/verify loop and two draft
 * sources (a separate model; n-gram prompt lookup).
 *
 * A round drafts up to K tokens, decodes the target's pending token and the
 * drafts as one batch with the logits of every position, and keeps the
 * longest prefix the acceptance test passes, plus one token drawn by the
 * target (the correction after a rejection, or the bonus after a full
 * acceptance). The test is the exact one of Leviathan et al.: accept x with
 * probability min(1, p(x) / q(x)); on rejection draw from max(0, p - q),
 * normalized, over the whole vocabulary. p and q are the *final*
 * distributions of the caller's sampler (strix_sampler_dist), so penalties,
 * truncation and temperature apply alike to both, and the draft and the
 * uniform numbers come from the sampler's one generator.
 *
 * Lossy modes relax the test after the exact one has rejected (same uniform
 * number, so knob 0 changes nothing), within the error control of strix.h;
 * adaptive K moves the round's draft length with the acceptance.
 *
 * Invariant between rounds: the target's cache holds hist[0 .. n_hist - 1),
 * every token but the last, and the sampler's history holds the generated
 * part of hist (after whatever the caller accepted before). A model draft
 * keeps its own cache in step by comparing the tokens it holds with hist.
 *
 * Sampling belongs to sampler.c, decoding to the runtime; this file uses
 * the public API only.
 */
#define _POSIX_C_SOURCE 200809L
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "generate/speculative.h"
#include "util.h"

static int fault_mode = SPECULATIVE_FAULT_NONE;

void speculative_set_fault(int fault)
{
    fault_mode = fault;
}

/* ---- draft: a separate model ------------------------------------------------------ */

struct model_draft {
    const strix_model *model;
    strix_context *ctx; /* borrowed */
    int n_vocab;
    strix_token *cached; /* (n_ctx) the tokens in ctx's sequence 0 */
    int n_cached;
};

static void model_draft_free(void *self)
{
    struct model_draft *d = self;
    if (d)
        util_free(d->cached);
    util_free(d);
}

/* Brings the draft's cache to hold hist[0..n): keeps the common prefix and
 * decodes the rest, at least the last token when its logits are wanted.
 * *full is set (and nothing else done) when the text does not fit. */
static int model_draft_sync(struct model_draft *d, const strix_token *hist, int n, int want_last,
                            int *full, strix_error *err)
{
    *full = n > strix_context_n_ctx(d->ctx);
    if (*full)
        return STRIX_OK;
    int l = 0;
    while (l < d->n_cached && l < n - !!want_last && d->cached[l] == hist[l])
        l++;
    int rc = strix_kv_seq_truncate(d->ctx, 0, l, err);
    if (rc)
        return rc;
    d->n_cached = l;
    if (l == n)
        return STRIX_OK;
    rc = strix_decode(d->ctx, hist + l, NULL, n - l, NULL, err);
    if (rc == STRIX_ERR_FULL) {
        err_clear(err);
        *full = 1;
        return STRIX_OK;
    }
    if (rc)
        return rc;
    memcpy(d->cached + l, hist + l, (size_t)(n - l) * sizeof *hist);
    d->n_cached = n;
    return STRIX_OK;
}

static int model_draft_propose(void *self, strix_sampler *smp, const strix_token *hist, int n_hist,
                               float p_min, strix_token *tok, float *q, int *kind, strix_error *err)
{
    struct model_draft *d = self;
    *kind = STRIX_DRAFT_END;
    if (n_hist < 1)
        return STRIX_OK;
    int full;
    int rc = model_draft_sync(d, hist, n_hist, 1, &full, err);
    if (rc || full)
        return rc; /* no room: no draft */
    const float *logits = strix_get_logits(d->ctx, -1);
    /* confidence: the top probability of the raw softmax (greedy's q is one-hot) */
    if (p_min > 0) {
        float mx = logits[0];
        for (int v = 1; v < d->n_vocab; v++)
            mx = logits[v] > mx ? logits[v] : mx;
        double z = 0;
        for (int v = 0; v < d->n_vocab; v++)
            z += exp((double)logits[v] - mx);
        if (1.0 / z < p_min)
            return STRIX_OK;
    }
    rc = strix_sampler_dist(smp, logits, d->n_vocab, q, err);
    if (!rc)
        rc = strix_sampler_sample_dist(smp, q, d->n_vocab, tok, err);
    if (!rc)
        *kind = STRIX_DRAFT_SAMPLED;
    return rc;
}

/* Fails with a message naming the first difference between the vocabularies. */
static int vocab_check(const strix_model *t, const strix_model *d, strix_error *err)
{
    struct strix_model_info ti = {.struct_size = sizeof ti}, di = {.struct_size = sizeof di};
    strix_model_get_info(t, &ti);
    strix_model_get_info(d, &di);
    if (ti.n_vocab != di.n_vocab || strix_vocab_size(t) != strix_vocab_size(d))
        return err_set(err, STRIX_ERR_ARG,
                       "draft vocabulary has %d tokens (%d logits), the target's %d (%d logits)",
                       strix_vocab_size(d), di.n_vocab, strix_vocab_size(t), ti.n_vocab);
    if (strix_token_bos(t) != strix_token_bos(d) || strix_token_eos(t) != strix_token_eos(d))
        return err_set(err, STRIX_ERR_ARG, "draft BOS/EOS are %d/%d, the target's %d/%d",
                       strix_token_bos(d), strix_token_eos(d), strix_token_bos(t),
                       strix_token_eos(t));
    const int n = strix_vocab_size(t);
    for (int i = 0; i < n; i++) {
        const char *a = strix_token_piece(t, i), *b = strix_token_piece(d, i);
        if (!a || !b || strcmp(a, b) != 0)
            return err_set(err, STRIX_ERR_ARG,
                           "draft vocabulary differs at token %d: \"%.40s\" (target \"%.40s\")", i,
                           b ? b : "", a ? a : "");
    }
    return STRIX_OK;
}

/* Wraps a library draft (freed with strix_draft_free; self freed on failure). */
static int draft_wrap(void *self,
                      int (*propose)(void *, strix_sampler *, const strix_token *, int, float,
                                     strix_token *, float *, int *, strix_error *),
                      void (*free_fn)(void *), strix_draft **out, strix_error *err)
{
    strix_draft *o = util_calloc(1, sizeof *o);
    if (!o) {
        free_fn(self);
        return err_set(err, STRIX_ERR_NOMEM, "out of memory");
    }
    o->self = self;
    o->propose = propose;
    o->free = free_fn;
    *out = o;
    return STRIX_OK;
}

int strix_draft_model_create(const strix_model *target, const strix_model *draft,
                             strix_context *draft_ctx, strix_draft **out, strix_error *err)
{
    err_clear(err);
    if (out)
        *out = NULL;
    if (!target || !draft || !draft_ctx || !out)
        return err_set(err, STRIX_ERR_ARG, "NULL argument");
    int rc = vocab_check(target, draft, err);
    if (rc)
        return rc;
    struct model_draft *d = util_calloc(1, sizeof *d);
    if (!d)
        return err_set(err, STRIX_ERR_NOMEM, "out of memory");
    struct strix_model_info di = {.struct_size = sizeof di};
    strix_model_get_info(draft, &di);
    d->model = draft;
    d->ctx = draft_ctx;
    d->n_vocab = di.n_vocab;
    d->cached = util_calloc((size_t)strix_context_n_ctx(draft_ctx), sizeof *d->cached);
    if (!d->cached) {
        model_draft_free(d);
        return err_set(err, STRIX_ERR_NOMEM, "out of memory");
    }
    strix_kv_seq_rm(draft_ctx, -1, 0, -1);
    return draft_wrap(d, model_draft_propose, model_draft_free, out, err);
}

/* ---- draft: n-gram prompt lookup ---------------------------------------------------- */

struct ngram_draft {
    int n;
};

static int ngram_propose(void *self, strix_sampler *smp, const strix_token *hist, int n_hist,
                         float p_min, strix_token *tok, float *q, int *kind, strix_error *err)
{
    (void)smp, (void)p_min, (void)q, (void)err;
    const int n = ((struct ngram_draft *)self)->n;
    *kind = STRIX_DRAFT_END;
    const strix_token *suffix = hist + n_hist - n;
    /* the latest earlier occurrence whose continuation exists */
    for (int j = n_hist - n - 1; j >= 0; j--)
        if (memcmp(hist + j, suffix, (size_t)n * sizeof *hist) == 0) {
            *tok = hist[j + n];
            *kind = STRIX_DRAFT_FIXED;
            break;
        }
    return STRIX_OK;
}

int strix_draft_ngram_create(int n, strix_draft **out, strix_error *err)
{
    err_clear(err);
    if (out)
        *out = NULL;
    if (!out)
        return err_set(err, STRIX_ERR_ARG, "NULL argument");
    if (n < 1 || n > 16)
        return err_set(err, STRIX_ERR_ARG, "n-gram length %d is out of range [1, 16]", n);
    struct ngram_draft *d = util_calloc(1, sizeof *d);
    if (!d)
        return err_set(err, STRIX_ERR_NOMEM, "out of memory");
    d->n = n;
    return draft_wrap(d, ngram_propose, util_free, out, err);
}

void strix_draft_free(strix_draft *d)
{
    if (!d)
        return;
    if (d->free)
        d->free(d->self);
    util_free(d);
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* ---- the loop ---------------------------------------------------------------------------- */

UTIL_PARAMS_DEFINE(spec, .n_draft_max = 8)

/* r = the distribution to draw from after rejecting x: max(0, p - c q) (q:
 * the draft's row, or one-hot on x when NULL; c = 1 but for LENIENT); p
 * itself if that is all zero (only rounding can reject when p <= q
 * everywhere). Unnormalized. */
static void residual(const float *p, const float *q, strix_token x, int nv, float c, float *r)
{
    double sum = 0;
    for (int v = 0; v < nv; v++) {
        const float qv = c * (q ? q[v] : (v == x ? 1.0f : 0.0f));
        r[v] = p[v] > qv ? p[v] - qv : 0.0f;
        sum += r[v];
    }
    if (fault_mode == SPECULATIVE_FAULT_RESIDUAL_P) {
        memcpy(r, p, (size_t)nv * sizeof *r);
    } else if (fault_mode == SPECULATIVE_FAULT_RESIDUAL_TOPK && q) {
        /* keep the draft's 8 likeliest tokens only (a truncated candidate list) */
        for (int v = 0; v < nv; v++) {
            int above = 0;
            for (int w = 0; w < nv && above < 8; w++)
                above += q[w] > q[v] || (q[w] == q[v] && w < v);
            if (above >= 8)
                r[v] = 0;
        }
        sum = 0;
        for (int v = 0; v < nv; v++)
            sum += r[v];
    }
    if (!(sum > 0))
        memcpy(r, p, (size_t)nv * sizeof *r);
}

/* ---- lossy acceptance (strix.h: "Lossy acceptance") ---------------------------------- */

/* What one position allows: relaxing at all, the budget left, the
 * relaxed set {v : p(v) >= thr} (TOP_P, NEAR_MAX) and the lenience c. */
struct relax {
    int mode, allowed;
    double rem;
    float thr, c;
};

static int desc(const void *a, const void *b)
{
    const float x = *(const float *)a, y = *(const float *)b;
    return (x < y) - (x > y);
}

static double entropy(const float *p, int nv)
{
    double h = 0;
    for (int v = 0; v < nv; v++)
        if (p[v] > 0)
            h -= (double)p[v] * log((double)p[v]);
    return h;
}

/* Sets rx for a position whose target distribution is p (scratch: nv floats). */
static void relax_prepare(struct relax *rx, const struct strix_spec_params *sp, const float *p,
                          int nv, double rem, float *scratch)
{
    rx->mode = sp->lossy;
    rx->rem = rem;
    rx->thr = INFINITY;
    rx->c = 1.0f;
    rx->allowed = sp->lossy != STRIX_SPEC_EXACT && sp->lossy_knob > 0 && rem > 0 &&
                  (sp->entropy_min <= 0 || entropy(p, nv) >= sp->entropy_min);
    if (!rx->allowed)
        return;
    if (sp->lossy == STRIX_SPEC_LENIENT) {
        rx->c = 1.0f - sp->lossy_knob;
    } else if (sp->lossy == STRIX_SPEC_NEAR_MAX) {
        float mx = 0;
        for (int v = 0; v < nv; v++)
            mx = p[v] > mx ? p[v] : mx;
        rx->thr = (1.0f - sp->lossy_knob) * mx;
    } else { /* TOP_P: the probability at which the sorted mass first reaches the knob */
        int n = 0;
        for (int v = 0; v < nv; v++)
            if (p[v] > 0)
                scratch[n++] = p[v];
        qsort(scratch, (size_t)n, sizeof *scratch, desc);
        double cum = 0;
        for (int i = 0; i < n; i++) {
            cum += scratch[i];
            rx->thr = scratch[i];
            if (cum >= sp->lossy_knob)
                break;
        }
    }
    if (!(rx->thr > 0))
        rx->thr = FLT_MIN; /* the set never holds a token of probability 0 */
}

/* The acceptance probability of drafted token v (qv its draft probability)
 * under rx: min(1, p/q), raised by the scheme unless the budget refuses. */
static double accept_prob(const struct relax *rx, float pv, float qv)
{
    if (!(qv > 0))
        return 0;
    double a = pv >= qv ? 1.0 : (double)pv / qv;
    if (a < 1 && rx->allowed && pv > 0 && log((double)qv / pv) <= rx->rem) {
        if (rx->mode == STRIX_SPEC_LENIENT)
            a = pv >= rx->c * qv ? 1.0 : (double)pv / ((double)rx->c * qv);
        else if (pv >= rx->thr)
            a = 1;
    }
    return a;
}

/* KL(P || p) for the distribution P a position's token is drawn from: the
 * draft's token accepted with accept_prob, else the residual (scratch: nv). */
static double position_kl(const float *p, const float *q, strix_token x, int nv,
                          const struct relax *rx, float *scratch)
{
    double acc = 0, rsum = 0;
    for (int v = 0; v < nv; v++) {
        const float qv = q ? q[v] : (v == x ? 1.0f : 0.0f);
        scratch[v] = (float)(qv * accept_prob(rx, p[v], qv));
        acc += scratch[v];
        const float rv = p[v] - rx->c * qv;
        rsum += rv > 0 ? rv : 0;
    }
    const double rej = acc < 1 ? 1 - acc : 0;
    double kl = 0;
    for (int v = 0; v < nv; v++) {
        if (!(p[v] > 0))
            continue;
        const float qv = q ? q[v] : (v == x ? 1.0f : 0.0f);
        const float rv = p[v] - rx->c * qv;
        const double P = scratch[v] + (rsum > 0 ? rej * (rv > 0 ? rv : 0) / rsum : rej * p[v]);
        if (P > 0)
            kl += P * log(P / p[v]);
    }
    return kl > 0 ? kl : 0;
}

static int lossy_check(const struct strix_spec_params *sp, strix_error *err)
{
    const float k = sp->lossy_knob;
    if (sp->lossy < STRIX_SPEC_EXACT || sp->lossy > STRIX_SPEC_NEAR_MAX)
        return err_set(err, STRIX_ERR_ARG, "unknown lossy scheme %d", sp->lossy);
    if (sp->lossy != STRIX_SPEC_EXACT &&
        !(k >= 0 && (sp->lossy == STRIX_SPEC_TOP_P ? k <= 1 : k < 1)))
        return err_set(err, STRIX_ERR_ARG, "lossy knob %g is out of range [0, 1%s", (double)k,
                       sp->lossy == STRIX_SPEC_TOP_P ? "]" : ")");
    if (!(sp->entropy_min >= 0 && sp->entropy_min < INFINITY))
        return err_set(err, STRIX_ERR_ARG, "entropy_min %g is not a finite value >= 0",
                       (double)sp->entropy_min);
    if (sp->budget_window < 0 ||
        (sp->budget_window > 0 && !(sp->budget_nats >= 0 && sp->budget_nats < INFINITY)))
        return err_set(err, STRIX_ERR_ARG, "budget of %g nats per %d tokens: need W >= 0 and a "
                       "finite budget >= 0", (double)sp->budget_nats, sp->budget_window);
    return STRIX_OK;
}

int strix_speculative_generate(const strix_model *model, strix_context *ctx, strix_sampler *smp,
                               strix_draft *draft, const strix_token *prompt, int n_prompt,
                               const struct strix_spec_params *caller_params, strix_token *out,
                               int cap, struct strix_spec_stats *stats, strix_error *err)
{
    err_clear(err);
    struct strix_spec_stats st = {.struct_size = sizeof st, .stop_reason = STRIX_STOP_NONE};
    const int src = util_result_start(stats, &st, UTIL_END_OF(struct strix_spec_stats, n_accepted),
                                      sizeof st, "spec stats", err);
    if (src)
        return src;
    if (!model || !ctx || !smp || !draft || !draft->propose || !prompt || !caller_params ||
        (!out && cap > 0))
        return err_set(err, STRIX_ERR_ARG, "NULL argument");
    struct strix_spec_params sp;
    int rc = UTIL_PARAMS_READ(spec, &sp, caller_params, err);
    if (rc)
        return rc;
    const int K = sp.n_draft_max;
    int k_cur = K; /* the draft length of the next round (adaptive K) */
    if (K < 1 || K > STRIX_SPEC_DRAFT_MAX)
        return err_set(err, STRIX_ERR_ARG, "draft length %d is out of range [1, %d]", K,
                       STRIX_SPEC_DRAFT_MAX);
    if (!(sp.p_min >= 0 && sp.p_min <= 1))
        return err_set(err, STRIX_ERR_ARG, "p_min %g is not in [0, 1]", (double)sp.p_min);
    if ((rc = lossy_check(&sp, err)))
        return rc;
    const int n_ctx = strix_context_n_ctx(ctx);
    if (n_prompt < 1 || n_prompt > n_ctx)
        return err_set(err, STRIX_ERR_ARG, "prompt of %d tokens: need 1 .. %d (the context)",
                       n_prompt, n_ctx);
    if (cap < 0)
        return err_set(err, STRIX_ERR_ARG, "negative output capacity %d", cap);
    struct strix_model_info info = {.struct_size = sizeof info};
    strix_model_get_info(model, &info);
    const int nv = info.n_vocab;
    const strix_token eos = strix_token_eos(model), bos = strix_token_bos(model);

    /* hist: prompt, generated and drafted tokens (n_hist <= n_ctx between
     * rounds); cost: the relaxation cost of each token of hist; q: K draft
     * rows; p, r, scratch: one row each */
    const int n_text = cap < n_ctx - n_prompt ? n_prompt + cap : n_ctx;
    const size_t n_hist_cap = (size_t)n_text + (size_t)K + 1;
    strix_token *hist = util_malloc(n_hist_cap * sizeof *hist);
    float *cost = util_calloc(n_hist_cap, sizeof *cost);
    float *q = util_malloc((size_t)K * (size_t)nv * sizeof *q);
    float *p = util_malloc((size_t)nv * sizeof *p);
    float *r = util_malloc((size_t)nv * sizeof *r);
    float *scratch = util_malloc((size_t)nv * sizeof *scratch);
    if (!hist || !cost || !q || !p || !r || !scratch) {
        rc = err_set(err, STRIX_ERR_NOMEM, "out of memory");
        goto done;
    }
    int kinds[STRIX_SPEC_DRAFT_MAX];
    double kl[STRIX_SPEC_DRAFT_MAX + 1], nll[STRIX_SPEC_DRAFT_MAX + 1];
    int8_t want[STRIX_SPEC_DRAFT_MAX + 1];
    memset(want, 1, sizeof want);
    memcpy(hist, prompt, (size_t)n_prompt * sizeof *hist);
    int n_hist = n_prompt;
    strix_kv_seq_rm(ctx, -1, 0, -1);
    const double tp = now_s();
    if (n_prompt > 1 && (rc = strix_decode(ctx, prompt, NULL, n_prompt - 1, NULL, err)))
        goto done;
    /* a model draft takes the prompt now too, so that rounds time only drafting */
    if (n_prompt > 1 && draft->propose == model_draft_propose) {
        int full;
        if ((rc = model_draft_sync(draft->self, prompt, n_prompt - 1, 0, &full, err)))
            goto done;
    }
    st.t_prompt = now_s() - tp;

    while (st.stop_reason == STRIX_STOP_NONE) {
        if (st.n_tokens >= cap) {
            st.stop_reason = STRIX_STOP_BUDGET;
            break;
        }
        /* as strix_generate: stop when the text fills the context (the round's
         * batch [hist[n_hist - 1], drafts] and its new token must fit) */
        const int room = n_ctx - n_hist;
        if (room <= 0) {
            st.stop_reason = STRIX_STOP_CONTEXT;
            break;
        }
        int k_max = k_cur < room - 1 ? k_cur : room - 1;
        k_max = k_max < cap - st.n_tokens - 1 ? k_max : cap - st.n_tokens - 1;
        int k = 0;
        const double t0 = now_s();
        while (k < k_max) {
            rc = draft->propose(draft->self, smp, hist, n_hist + k, sp.p_min, &hist[n_hist + k],
                                q + (size_t)k * (size_t)nv, &kinds[k], err);
            if (rc || kinds[k] == STRIX_DRAFT_END)
                break;
            if ((kinds[k] != STRIX_DRAFT_SAMPLED && kinds[k] != STRIX_DRAFT_FIXED) ||
                hist[n_hist + k] < 0 || hist[n_hist + k] >= nv) {
                rc = err_set(err, STRIX_ERR_ARG, "the draft proposed a bad token or kind");
                break;
            }
            strix_sampler_accept(smp, hist[n_hist + k]); /* the next draft's penalties */
            k++;
        }
        /* take the drafts back out of the history: verification re-accepts */
        const int rrc = strix_sampler_rewind(smp, k, rc ? NULL : err);
        if (rc || (rc = rrc))
            goto done;

        const double t1 = now_s();
        st.t_draft += t1 - t0;
        const strix_batch b = {k + 1, hist + n_hist - 1, NULL, NULL, want};
        rc = strix_decode_batch(ctx, &b, err);
        st.t_verify += now_s() - t1;
        if (rc == STRIX_ERR_FULL) {
            err_clear(err);
            rc = STRIX_OK;
            st.stop_reason = STRIX_STOP_CONTEXT;
            break;
        }
        if (rc)
            goto done;
        st.n_rounds++;
        st.n_drafted += k;

        int m = 0; /* drafts accepted */
        strix_token y = -1;
        for (int i = 0; i <= k; i++) {
            const int h = n_hist + i; /* the position in hist being decided */
            cost[h] = 0;
            kl[i] = 0;
            if ((rc = strix_sampler_dist(smp, strix_get_logits(ctx, i), nv, p, err)))
                goto done;
            if (i == k) { /* every draft accepted: the bonus token */
                rc = strix_sampler_sample_dist(smp, p, nv, &y, err);
                if (!rc)
                    nll[i] = -log((double)p[y]);
                break;
            }
            /* the budget left: what the last W - 1 output tokens have not used */
            double rem = INFINITY;
            if (sp.budget_window > 0) {
                rem = sp.budget_nats;
                for (int j = h - 1; j >= n_prompt && j > h - sp.budget_window; j--)
                    rem -= cost[j];
            }
            struct relax rx;
            relax_prepare(&rx, &sp, p, nv, rem, scratch);
            const strix_token x = hist[h];
            const float *qi = kinds[i] == STRIX_DRAFT_SAMPLED ? q + (size_t)i * (size_t)nv : NULL;
            const float qx = qi ? qi[x] : 1.0f;
            if (rx.allowed)
                kl[i] = position_kl(p, qi, x, nv, &rx, scratch);
            const float u = strix_sampler_uniform(smp);
            int ok = u * qx < p[x]; /* probability min(1, p/q) */
            if (!ok && rx.allowed && p[x] > 0 &&
                (rx.mode == STRIX_SPEC_LENIENT ? u * rx.c * qx < p[x] : p[x] >= rx.thr)) {
                const double c = log((double)qx / p[x]); /* > 0: the exact test rejected */
                if (c <= rem) {
                    ok = 1;
                    cost[h] = (float)c;
                    st.n_relaxed++;
                    st.relaxed_nats += c;
                }
            }
            if (ok) {
                nll[i] = -log((double)p[x]);
                strix_sampler_accept(smp, x);
                m++;
                continue;
            }
            residual(p, qi, x, nv, rx.c, r);
            rc = strix_sampler_sample_dist(smp, r, nv, &y, err);
            if (!rc)
                nll[i] = -log((double)p[y]);
            break;
        }
        if (rc)
            goto done;
        st.n_accepted += m;
        if (sp.adaptive && k > 0) {
            if (m < k)
                k_cur = k_cur > 1 ? k_cur - 1 : 1;
            else if (k == k_cur)
                k_cur = k_cur + 2 < K ? k_cur + 2 : K;
        }
        /* the cache keeps the pending token and the accepted drafts */
        if ((rc = strix_kv_seq_truncate(ctx, 0, n_hist + m, err)))
            goto done;
        hist[n_hist + m] = y;
        for (int i = 0; i <= m; i++) {
            const strix_token t = hist[n_hist + i];
            if (t == eos || (sp.stop_at_bos && t == bos)) {
                st.stop_reason = STRIX_STOP_EOS;
                break;
            }
            if (sp.relaxed_cost)
                sp.relaxed_cost[st.n_tokens] = cost[n_hist + i];
            st.kl_sum += kl[i];
            st.nll_sum += nll[i];
            out[st.n_tokens++] = t;
        }
        if (st.stop_reason == STRIX_STOP_NONE)
            strix_sampler_accept(smp, y);
        n_hist += m + 1;
    }
done:
    st.k_last = k_cur;
    util_free(hist);
    util_free(cost);
    util_free(q);
    util_free(p);
    util_free(r);
    util_free(scratch);
    if (stats)
        util_result_write(stats, &st, sizeof st);
    return rc;
}

/* ---- self-speculation: choosing the layers to skip ------------------------------------ */


/* Decodes calib[0..n) in c with the logits of every position into out
 * ((n, nv) floats). */
static int logits_all(strix_context *c, const strix_token *calib, int n, const int8_t *want,
                      int nv, float *out, strix_error *err)
{
    strix_kv_seq_rm(c, -1, 0, -1);
    int rc = strix_decode(c, calib, NULL, n, want, err);
    for (int i = 0; !rc && i < n; i++)
        memcpy(out + (size_t)i * (size_t)nv, strix_get_logits(c, i), (size_t)nv * sizeof *out);
    return rc;
}

/* The mean over the positions of sum_v min(p, q), p and q the final
 * distributions of smp's stages for the target's and the draft's logits:
 * the acceptance rate of exact speculative decoding (with greedy stages,
 * the agreement of the argmax). */
static int agreement(strix_sampler *smp, const float *tl, const float *dl, int n, int nv, float *p,
                     float *q, double *alpha, strix_error *err)
{
    double sum = 0;
    for (int i = 0; i < n; i++) {
        int rc = strix_sampler_dist(smp, tl + (size_t)i * (size_t)nv, nv, p, err);
        if (!rc)
            rc = strix_sampler_dist(smp, dl + (size_t)i * (size_t)nv, nv, q, err);
        if (rc)
            return rc;
        for (int v = 0; v < nv; v++)
            sum += p[v] < q[v] ? p[v] : q[v];
    }
    *alpha = sum / n;
    return STRIX_OK;
}

/* The median time of 5 decodes of the last nb tokens of the calibration
 * text (nb < n) in one batch, with the logits of all as a verify asks, after
 * the rest; each rolled back. */
static int decode_time(strix_context *c, const strix_token *calib, int n, int nb, double *t,
                       strix_error *err)
{
    double ts[5];
    int8_t want[STRIX_SPEC_DRAFT_MAX + 1];
    int32_t pos[STRIX_SPEC_DRAFT_MAX + 1];
    for (int i = 0; i < nb; i++)
        want[i] = 1, pos[i] = n - nb + i;
    strix_kv_seq_rm(c, -1, 0, -1);
    int rc = strix_decode(c, calib, NULL, n - nb, NULL, err);
    for (int r = 0; !rc && r < 5; r++) {
        const double t0 = now_s();
        rc = strix_decode(c, calib + n - nb, pos, nb, want, err);
        ts[r] = now_s() - t0;
        strix_kv_seq_rm(c, -1, n - nb, -1);
    }
    if (rc)
        return rc;
    for (int a = 0; a < 5; a++) /* sort 5 */
        for (int b = a + 1; b < 5; b++)
            if (ts[b] < ts[a]) {
                const double x = ts[a];
                ts[a] = ts[b], ts[b] = x;
            }
    *t = ts[2];
    return STRIX_OK;
}

/* Leviathan et al.'s expected speedup for acceptance a, cost ratio c and
 * draft length K, with the verify of K + 1 tokens costing v(K) plain steps
 * (their formula takes 1): (1 - a^(K+1)) / ((1 - a)(c K + v(K))), the best
 * K <= k_max. v(K) is interpolated linearly between 1 at K = 0 and the
 * measured v_max at k_max. */
static double predicted_speedup(double a, double c, double v_max, int k_max, int *k_best)
{
    double best = 1;
    *k_best = 0;
    for (int k = 1; k <= k_max; k++) {
        const double tok = a < 1 ? (1 - pow(a, k + 1)) / (1 - a) : k + 1;
        const double s = tok / (c * k + 1 + (v_max - 1) * k / k_max);
        if (s > best)
            best = s, *k_best = k;
    }
    return best;
}

int strix_draft_skip_auto(const strix_model *m, strix_context *target_ctx,
                          strix_context *draft_ctx, strix_sampler *smp, const strix_token *calib,
                          int n_calib, int k_max, int *layers, int *n_layers, double *speedup,
                          strix_error *err)
{
    err_clear(err);
    if (!m || !target_ctx || !draft_ctx || !smp || !calib || !layers || !n_layers)
        return err_set(err, STRIX_ERR_ARG, "NULL argument");
    if (n_calib < 2 || n_calib > strix_context_n_ctx(target_ctx) ||
        n_calib > strix_context_n_ctx(draft_ctx))
        return err_set(err, STRIX_ERR_ARG, "calibration text of %d tokens: need 2 .. the context",
                       n_calib);
    if (k_max < 1 || k_max > STRIX_SPEC_DRAFT_MAX)
        return err_set(err, STRIX_ERR_ARG, "draft length %d is out of range [1, %d]", k_max,
                       STRIX_SPEC_DRAFT_MAX);
    struct strix_model_info info = {.struct_size = sizeof info};
    strix_model_get_info(m, &info);
    const int nv = info.n_vocab, nl = info.n_layer, n = n_calib;
    float *tl = util_malloc((size_t)n * (size_t)nv * sizeof *tl);
    float *dl = util_malloc((size_t)n * (size_t)nv * sizeof *dl);
    float *p = util_malloc((size_t)nv * sizeof *p), *q = util_malloc((size_t)nv * sizeof *q);
    int8_t *want = util_malloc((size_t)n);
    double *score = util_malloc((size_t)nl * sizeof *score);
    int *order = util_malloc((size_t)nl * sizeof *order);
    int rc = STRIX_OK;
    if (!tl || !dl || !p || !q || !want || !score || !order) {
        rc = err_set(err, STRIX_ERR_NOMEM, "out of memory");
        goto done;
    }
    memset(want, 1, (size_t)n);
    double t_full, t_j, alpha, v_max = 1, t_batch;
    if ((rc = strix_context_set_layer_skip(draft_ctx, NULL, 0, err)) ||
        (rc = logits_all(target_ctx, calib, n, want, nv, tl, err)) ||
        (rc = decode_time(draft_ctx, calib, n, 1, &t_full, err)))
        goto done;
    /* the verify's cost in plain steps, when the text is long enough */
    if (n > k_max + 1) {
        if ((rc = decode_time(draft_ctx, calib, n, k_max + 1, &t_batch, err)))
            goto done;
        v_max = t_batch / t_full > 1 ? t_batch / t_full : 1;
    }
    /* each layer alone: how much acceptance survives without it */
    for (int l = 0; l < nl; l++) {
        order[l] = l;
        if ((rc = strix_context_set_layer_skip(draft_ctx, &l, 1, err)) ||
            (rc = logits_all(draft_ctx, calib, n, want, nv, dl, err)) ||
            (rc = agreement(smp, tl, dl, n, nv, p, q, &score[l], err)))
            goto done;
    }
    for (int a = 0; a < nl; a++) /* most harmless first (stable) */
        for (int b = a + 1; b < nl; b++)
            if (score[order[b]] > score[order[a]] ||
                (score[order[b]] == score[order[a]] && order[b] < order[a])) {
                const int x = order[a];
                order[a] = order[b], order[b] = x;
            }
    /* the j most harmless together, j = 1 .. nl - 1: measured acceptance and
     * cost, predicted speedup; keep the best */
    double best = 1;
    int n_best = 0;
    for (int j = 1; j < nl; j++) {
        int k_best;
        if ((rc = strix_context_set_layer_skip(draft_ctx, order, j, err)) ||
            (rc = logits_all(draft_ctx, calib, n, want, nv, dl, err)) ||
            (rc = agreement(smp, tl, dl, n, nv, p, q, &alpha, err)) ||
            (rc = decode_time(draft_ctx, calib, n, 1, &t_j, err)))
            goto done;
        const double s = predicted_speedup(alpha, t_j / t_full, v_max, k_max, &k_best);
        if (s > best)
            best = s, n_best = j;
    }
    for (int i = 0; i < n_best; i++)
        layers[i] = order[i];
    *n_layers = n_best;
    if (speedup)
        *speedup = best;
    rc = strix_context_set_layer_skip(draft_ctx, layers, n_best, err);
done:
    util_free(tl);
    util_free(dl);
    util_free(p);
    util_free(q);
    util_free(want);
    util_free(score);
    util_free(order);
    return rc;
}
