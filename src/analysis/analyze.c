/*
 * analyze.c - strix_analyze: runs a model over a text, collects every
 * block's input and output hidden states through the context's observation
 * hook (strix_layer_obs; the forward pass is runtime/forward.c's alone), and
 * computes the statistics of stats.c per block and for the token-embedding
 * matrix. Also the collection shared with pruning (analyze_collect).
 */
#include "analysis/analyze.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "analysis/stats.h"
#include "model/model.h"
#include "quant/dtype.h"
#include "util.h"

UTIL_PARAMS_DEFINE(analyze, .n_ctx = 0)

struct collect {
    struct hidden *h;
    int n_embd;
};

/* The hook: rows at position 0 (BOS) are left out; block l's input goes to
 * state l, the last block's output to state n_layer. */
static void on_layer(void *user, const struct strix_layer_obs *o)
{
    struct collect *c = user;
    struct hidden *h = c->h;
    const size_t d = (size_t)o->n_embd;
    int k = h->n_rows;
    for (int t = 0; t < o->n_tokens; t++) {
        if (o->pos[t] == 0)
            continue;
        if (k >= h->cap)
            break;
        memcpy(h->x[o->layer] + (size_t)k * d, o->in + (size_t)t * d, d * sizeof(float));
        if (o->layer == h->n_layer - 1)
            memcpy(h->x[h->n_layer] + (size_t)k * d, o->out + (size_t)t * d, d * sizeof(float));
        k++;
    }
    if (o->layer == h->n_layer - 1)
        h->n_rows = k; /* the rows of this chunk are complete in every state */
}

void analyze_hidden_free(struct hidden *h)
{
    if (!h)
        return;
    for (int l = 0; h->x && l <= h->n_layer; l++)
        util_free(h->x[l]);
    util_free(h->x);
    memset(h, 0, sizeof *h);
}

int analyze_collect(const strix_model *m, const strix_token *tokens, int n_tokens, int n_ctx,
                    int n_threads, struct hidden *h, analyze_matmul_fn on_mm, void *mm_user,
                    void (*progress)(void *, int, int, int), void *user, strix_error *err)
{
    struct hidden none;
    const int keep = h != NULL;
    if (!keep)
        h = &none;
    memset(h, 0, sizeof *h);
    if (n_ctx < 2)
        return err_set(err, STRIX_ERR_ARG, "the window must hold at least 2 tokens (got %d)",
                       n_ctx);
    const int per = n_ctx - 1; /* text tokens per window, after BOS */
    const int n_win = (n_tokens + per - 1) / per;
    h->n_layer = m->hp.n_layer;
    h->n_embd = m->hp.n_embd;
    h->cap = keep ? n_tokens : 0;
    int rc = STRIX_OK;
    strix_context *ctx = NULL;
    strix_token *buf = util_malloc((size_t)n_ctx * sizeof *buf);
    h->x = util_calloc((size_t)h->n_layer + 1, sizeof *h->x);
    if (!buf || !h->x) {
        rc = err_set(err, STRIX_ERR_NOMEM, "out of memory");
        goto done;
    }
    for (int l = 0; keep && l <= h->n_layer; l++) {
        size_t bytes;
        if (!util_mul_size((size_t)n_tokens, (size_t)h->n_embd * sizeof(float), &bytes) ||
            !(h->x[l] = util_malloc(bytes ? bytes : 1))) {
            rc = err_set(err, STRIX_ERR_NOMEM,
                         "out of memory for the hidden states (%d tokens x %d x %d layers)",
                         n_tokens, h->n_embd, h->n_layer + 1);
            goto done;
        }
    }
    struct collect col = {.h = h, .n_embd = h->n_embd};
    struct strix_context_params cp = strix_context_default_params();
    cp.n_ctx = n_ctx;
    cp.n_batch = n_ctx;
    cp.n_threads = n_threads;
    cp.on_layer = keep ? on_layer : NULL;
    cp.on_layer_user = &col;
    cp.on_matmul = on_mm;
    cp.on_matmul_user = mm_user;
    if ((rc = strix_context_create(m, &cp, &ctx, err)))
        goto done;
    const strix_token bos = strix_token_bos(m);
    for (int w = 0; w < n_win; w++) {
        const int from = w * per, n = n_tokens - from < per ? n_tokens - from : per;
        int k = 0;
        if (bos >= 0)
            buf[k++] = bos;
        memcpy(buf + k, tokens + from, (size_t)n * sizeof *buf);
        k += n;
        if ((rc = strix_kv_truncate(ctx, 0, err)) ||
            (rc = strix_decode(ctx, buf, NULL, k, NULL, err)))
            goto done;
        if (progress)
            progress(user, 0, w + 1, n_win);
    }
done:
    strix_context_free(ctx);
    util_free(buf);
    if (rc || !keep)
        analyze_hidden_free(h);
    return rc;
}

/* Evenly spaced rows of x (n, d): at most k of them into a new buffer. */
static float *subsample(const float *x, int n, int d, int k, int *n_out)
{
    if (k >= n) {
        *n_out = n;
        return NULL; /* use x itself */
    }
    float *s = util_malloc((size_t)k * (size_t)d * sizeof(float));
    if (!s)
        return NULL;
    for (int i = 0; i < k; i++)
        memcpy(s + (size_t)i * (size_t)d, x + (size_t)((int64_t)i * n / k) * (size_t)d,
               (size_t)d * sizeof(float));
    *n_out = k;
    return s;
}

static int cmp_double(const void *a, const void *b)
{
    const double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* The 10th and 90th percentiles of the per-token cosines (nearest rank). */
static void cosine_percentiles(const float *x, const float *y, int n, int d,
                               struct strix_layer_stats *s)
{
    double *c = util_malloc((size_t)n * sizeof *c);
    if (!c)
        return;
    int k = 0;
    for (int i = 0; i < n; i++) {
        double m, sd;
        stats_cosine(x + (size_t)i * (size_t)d, y + (size_t)i * (size_t)d, 1, d, &m, &sd);
        if (!isnan(m))
            c[k++] = m;
    }
    if (k > 0) {
        qsort(c, (size_t)k, sizeof *c, cmp_double);
        s->cosine_p10 = c[(int)(0.1 * (k - 1) + 0.5)];
        s->cosine_p90 = c[(int)(0.9 * (k - 1) + 0.5)];
    }
    util_free(c);
}

/* The spectral statistics of x (n, d) into s. */
static int spectral(const float *x, int n, int d, int max_points, struct strix_layer_stats *s,
                    strix_error *err)
{
    int rc = stats_spectrum(x, n, d, &s->anisotropy, &s->pca90, err);
    if (rc)
        return rc;
    s->pair_cosine = stats_pair_cosine(x, n, d);
    int ns = 0;
    float *sub = subsample(x, n, d, max_points, &ns);
    if (!sub && ns != n)
        return err_set(err, STRIX_ERR_NOMEM, "out of memory");
    rc = stats_twonn(sub ? sub : x, ns, d, &s->intrinsic_dim, err);
    util_free(sub);
    s->n_vectors = n;
    return rc;
}

static void stats_clear(struct strix_layer_stats *s)
{
    s->linearity = s->linearity_no_residual = s->cosine = s->cosine_sd = NAN;
    s->cosine_p10 = s->cosine_p90 = s->anisotropy = s->pair_cosine = s->intrinsic_dim = NAN;
    s->pca90 = 0;
    s->n_vectors = 0;
}

/* The token-embedding matrix, dequantized, into s. */
static int embd_stats(const strix_model *m, int max_points, struct strix_layer_stats *s,
                      strix_error *err)
{
    const struct tensor *t = &m->tok_embd;
    const int n = (int)t->ne[1], d = (int)t->ne[0];
    float *e = util_malloc((size_t)n * (size_t)d * sizeof(float));
    if (!e)
        return err_set(err, STRIX_ERR_NOMEM, "out of memory for the embeddings");
    const dtype_dequant_fn deq = dtype_get(t->type)->dequantize;
    for (int r = 0; r < n; r++)
        deq((const uint8_t *)t->data + (size_t)r * t->row_bytes, e + (size_t)r * (size_t)d, d);
    const int rc = spectral(e, n, d, max_points, s, err);
    util_free(e);
    return rc;
}

int strix_analyze(const strix_model *m, const strix_token *tokens, int n_tokens,
                  const struct strix_analyze_params *caller_params,
                  struct strix_layer_stats *layers, struct strix_layer_stats *embd,
                  strix_error *err)
{
    err_clear(err);
    struct strix_analyze_params p;
    int rc = UTIL_PARAMS_READ(analyze, &p, caller_params, err);
    if (rc)
        return rc;
    if (!m || !tokens || !layers)
        return err_set(err, STRIX_ERR_ARG, "NULL argument");
    if (m->vocab_only)
        return err_set(err, STRIX_ERR_ARG, "the model has no weights (vocabulary only)");
    if (!stats_available())
        return stats_linearity(NULL, NULL, 0, 0, &(double){0}, err);
    if (p.n_ctx < 0 || p.max_tokens < 0 || p.max_points < 0 || p.n_threads < 0)
        return err_set(err, STRIX_ERR_ARG, "negative n_ctx, max_tokens, max_points or threads");
    const int n_ctx = p.n_ctx ? p.n_ctx : 256, max_points = p.max_points ? p.max_points : 4000;
    if (p.max_tokens && n_tokens > p.max_tokens)
        n_tokens = p.max_tokens;
    if (n_tokens < 16)
        return err_set(err, STRIX_ERR_ARG,
                       "the text gives %d tokens; the statistics need at least 16", n_tokens);
    struct hidden h;
    if ((rc = analyze_collect(m, tokens, n_tokens, n_ctx, p.n_threads, &h, NULL, NULL,
                              p.progress, p.user, err)))
        return rc;
    const int n = h.n_rows, d = h.n_embd;
    float *diff = util_malloc((size_t)n * (size_t)d * sizeof(float));
    if (!diff) {
        rc = err_set(err, STRIX_ERR_NOMEM, "out of memory");
        goto done;
    }
    for (int l = 0; l < h.n_layer; l++) {
        struct strix_layer_stats *s = &layers[l];
        stats_clear(s);
        const float *x = h.x[l], *y = h.x[l + 1];
        for (size_t i = 0; i < (size_t)n * (size_t)d; i++)
            diff[i] = y[i] - x[i];
        if ((rc = stats_linearity(x, y, n, d, &s->linearity, err)) ||
            (rc = stats_linearity(x, diff, n, d, &s->linearity_no_residual, err)))
            goto done;
        stats_cosine(x, y, n, d, &s->cosine, &s->cosine_sd);
        cosine_percentiles(x, y, n, d, s);
        if ((rc = spectral(y, n, d, max_points, s, err)))
            goto done;
        if (p.progress)
            p.progress(p.user, 1, l + 1, h.n_layer + (embd != NULL));
    }
    if (embd) {
        stats_clear(embd);
        if ((rc = embd_stats(m, max_points, embd, err)))
            goto done;
        if (p.progress)
            p.progress(p.user, 1, h.n_layer + 1, h.n_layer + 1);
    }
done:
    if (rc)
        err_prefix(err, "analyze");
    util_free(diff);
    analyze_hidden_free(&h);
    return rc;
}
