/*
 * context.c - a decoding context: the KV cache, scratch buffers, the thread
 * pool and the llama forward pass over a batch of tokens.
 *
 * The forward pass computes each output element with the same kernel and the
 * same summation order whether a token arrives alone or in a batch, and
 * whatever the thread count: batched and one-by-one decoding give identical
 * logits, and a seed gives the same text at any thread count.
 *
 * KV cache layout: k[layer][pos][n_head_kv * head_dim], v the same, in fp32.
 */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <string.h>
#include <unistd.h>

#include "dtype.h"
#include "kernels.h"
#include "model.h"
#include "pool.h"

struct strix_context {
    const strix_model *model;
    int n_ctx, n_batch, n_threads;
    int kv_len;     /* positions held in the cache */
    float *k_cache; /* (n_layer, n_ctx, kv_dim) */
    float *v_cache; /* (n_layer, n_ctx, kv_dim) */
    /* scratch, sized for n_batch tokens */
    float *x;   /* (n_batch, n_embd) residual stream */
    float *xb;  /* (n_batch, max(n_embd, q_dim)) normed input / attention output */
    float *q;   /* (n_batch, q_dim) */
    float *k;   /* (n_batch, kv_dim) */
    float *v;   /* (n_batch, kv_dim) */
    float *hb;  /* (n_batch, n_ff) */
    float *hb2; /* (n_batch, n_ff) */
    float *att; /* (n_threads, n_ctx) attention scores */
    float *row; /* (n_threads, max row length) dequantized weight row */
    int max_row;
    float *logits;   /* (n_batch, n_vocab) */
    int *logit_slot; /* (n_batch) slot in logits, -1 if not kept */
    int n_out;       /* tokens of the last decode */
    struct pool *pool;
};

struct strix_context_params strix_context_default_params(void)
{
    struct strix_context_params p = {0, 0, 0, 0};
    return p;
}

static int default_threads(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n < 1 ? 1 : (n > 64 ? 64 : (int)n);
}

int strix_context_create(const strix_model *model, const struct strix_context_params *params,
                         strix_context **out, strix_error *err)
{
    err_clear(err);
    if (!out)
        return err_set(err, STRIX_ERR_ARG, "out is NULL");
    *out = NULL;
    if (!model || model->vocab_only)
        return err_set(err, STRIX_ERR_ARG, "a context needs a model with weights");
    struct strix_context_params def = strix_context_default_params();
    if (!params)
        params = &def;
    const struct hparams *hp = &model->hp;
    if (params->n_ctx < 0 || params->n_ctx > (1 << 24) || params->n_batch < 0 ||
        params->n_batch > (1 << 16) || params->n_threads < 0 || params->n_threads > 1024)
        return err_set(err, STRIX_ERR_ARG, "context parameters out of range");
    strix_context *c = util_calloc(1, sizeof *c);
    if (!c)
        return err_set(err, STRIX_ERR_NOMEM, "out of memory");
    c->model = model;
    /* default: the trained length, at most 4096 (a cache for a 128k-token
     * model would take gigabytes nobody asked for) */
    c->n_ctx = params->n_ctx ? params->n_ctx : (hp->n_ctx_train < 4096 ? hp->n_ctx_train : 4096);
    c->n_batch = params->n_batch ? params->n_batch : 512;
    if (c->n_batch > c->n_ctx)
        c->n_batch = c->n_ctx;
    c->n_threads = params->n_threads ? params->n_threads : default_threads();
    const size_t nb = (size_t)c->n_batch, nctx = (size_t)c->n_ctx, nt = (size_t)c->n_threads;
    const size_t q_dim = (size_t)hp->n_head * (size_t)hp->head_dim;
    const size_t kv_dim = (size_t)hp->n_head_kv * (size_t)hp->head_dim;
    const size_t embd = (size_t)hp->n_embd, ff = (size_t)hp->n_ff;
    size_t cache;
    if (!util_mul_size((size_t)hp->n_layer * nctx, kv_dim, &cache) ||
        cache > SIZE_MAX / sizeof(float) / 4) {
        util_free(c);
        return err_set(err, STRIX_ERR_NOMEM, "KV cache too large");
    }
    c->max_row = (int)(embd > ff ? embd : ff);
    if ((size_t)c->max_row < q_dim)
        c->max_row = (int)q_dim;
    c->k_cache = util_malloc(cache * sizeof(float));
    c->v_cache = util_malloc(cache * sizeof(float));
    c->x = util_malloc(nb * embd * sizeof(float));
    c->xb = util_malloc(nb * (embd > q_dim ? embd : q_dim) * sizeof(float));
    c->q = util_malloc(nb * q_dim * sizeof(float));
    c->k = util_malloc(nb * kv_dim * sizeof(float));
    c->v = util_malloc(nb * kv_dim * sizeof(float));
    c->hb = util_malloc(nb * ff * sizeof(float));
    c->hb2 = util_malloc(nb * ff * sizeof(float));
    c->att = util_malloc(nt * nctx * sizeof(float));
    c->row = util_malloc(nt * (size_t)c->max_row * sizeof(float));
    c->logits = util_malloc(nb * (size_t)hp->n_vocab * sizeof(float));
    c->logit_slot = util_malloc(nb * sizeof(int));
    c->pool = pool_create(c->n_threads);
    if (!c->k_cache || !c->v_cache || !c->x || !c->xb || !c->q || !c->k || !c->v || !c->hb ||
        !c->hb2 || !c->att || !c->row || !c->logits || !c->logit_slot || !c->pool) {
        strix_context_free(c);
        return err_set(err, STRIX_ERR_NOMEM, "out of memory for a context of %d positions",
                       (int)nctx);
    }
    *out = c;
    return STRIX_OK;
}

void strix_context_free(strix_context *c)
{
    if (!c)
        return;
    pool_free(c->pool);
    util_free(c->k_cache);
    util_free(c->v_cache);
    util_free(c->x);
    util_free(c->xb);
    util_free(c->q);
    util_free(c->k);
    util_free(c->v);
    util_free(c->hb);
    util_free(c->hb2);
    util_free(c->att);
    util_free(c->row);
    util_free(c->logits);
    util_free(c->logit_slot);
    util_free(c);
}

int strix_context_n_ctx(const strix_context *c)
{
    return c->n_ctx;
}
int strix_kv_len(const strix_context *c)
{
    return c->kv_len;
}

int strix_kv_truncate(strix_context *c, int p, strix_error *err)
{
    if (p < 0)
        return err_set(err, STRIX_ERR_ARG, "negative position %d", p);
    if (p < c->kv_len)
        c->kv_len = p;
    return STRIX_OK;
}

/* ---- matrix multiplication: y (n, rows) = x (n, cols) * W^T ----
 *
 * One job may hold several weights that read the same input (q, k and v;
 * gate and up): their rows are split over the threads as one range, so a
 * token costs one wake-up of the pool per group instead of one per weight.
 */

#define MATMUL_MAX 3

struct matmul_job {
    strix_context *c;
    int n_w;
    const struct tensor *w[MATMUL_MAX];
    float *y[MATMUL_MAX]; /* (n, rows of w[i]) */
    const float *x;       /* (n, cols) */
    int n;
    int accumulate; /* y += instead of y = */
};

static void matmul_rows(const struct matmul_job *j, int i, int r0, int r1, float *tmp)
{
    const struct tensor *w = j->w[i];
    const int rows = (int)w->ne[1], cols = (int)w->ne[0];
    const dtype_dequant_fn deq = dtype_get(w->type)->dequantize;
    for (int r = r0; r < r1; r++) {
        const uint8_t *src = (const uint8_t *)w->data + (size_t)r * w->row_bytes;
        const float *wr;
        if (w->type == DTYPE_F32) {
            wr = (const float *)src;
        } else {
            deq(src, tmp, cols);
            wr = tmp;
        }
        int t = 0;
        float s[4];
        for (; t + 4 <= j->n; t += 4) {
            const float *x = j->x + (size_t)t * (size_t)cols;
            kern_dot_f32_x4(cols, wr, x, x + cols, x + 2 * cols, x + 3 * cols, s);
            for (int k = 0; k < 4; k++) {
                float *dst = j->y[i] + (size_t)(t + k) * (size_t)rows + r;
                *dst = j->accumulate ? *dst + s[k] : s[k];
            }
        }
        for (; t < j->n; t++) {
            s[0] = kern_dot_f32(cols, wr, j->x + (size_t)t * (size_t)cols);
            float *dst = j->y[i] + (size_t)t * (size_t)rows + r;
            *dst = j->accumulate ? *dst + s[0] : s[0];
        }
    }
}

static void matmul_worker(void *arg, int ith, int nth)
{
    const struct matmul_job *j = arg;
    int64_t total = 0;
    for (int i = 0; i < j->n_w; i++)
        total += j->w[i]->ne[1];
    /* this thread's share of the concatenated rows, mapped back per weight */
    const int64_t g0 = total * ith / nth, g1 = total * (ith + 1) / nth;
    float *tmp = j->c->row + (size_t)ith * (size_t)j->c->max_row;
    int64_t base = 0;
    for (int i = 0; i < j->n_w; i++) {
        const int64_t rows = j->w[i]->ne[1];
        const int64_t r0 = g0 > base ? g0 - base : 0, r1 = g1 - base < rows ? g1 - base : rows;
        if (r0 < r1)
            matmul_rows(j, i, (int)r0, (int)r1, tmp);
        base += rows;
    }
}

static void run_matmul(strix_context *c, struct matmul_job *j)
{
    /* small products are not worth waking threads for */
    int64_t work = 0;
    for (int i = 0; i < j->n_w; i++)
        work += j->w[i]->ne[0] * j->w[i]->ne[1] * j->n;
    pool_run_n(c->pool, matmul_worker, j, work < 32768 ? 1 : c->n_threads);
}

static void matmul(strix_context *c, const struct tensor *w, const float *x, float *y, int n,
                   int accumulate)
{
    struct matmul_job j = {
        .c = c, .n_w = 1, .w = {w}, .y = {y}, .x = x, .n = n, .accumulate = accumulate};
    run_matmul(c, &j);
}

/* ---- attention ---- */

struct attn_job {
    strix_context *c;
    int layer, n, pos0;
};

/* One (token, head) pair per work item: causal attention over positions
 * 0..pos of the cache, written into xb. */
static void attn_worker(void *arg, int ith, int nth)
{
    const struct attn_job *j = arg;
    strix_context *c = j->c;
    const struct hparams *hp = &c->model->hp;
    const int hd = hp->head_dim, kv_dim = hp->n_head_kv * hd, q_dim = hp->n_head * hd;
    const int group = hp->n_head / hp->n_head_kv;
    const float scale = 1.0f / sqrtf((float)hd);
    const size_t layer_off = (size_t)j->layer * (size_t)c->n_ctx * (size_t)kv_dim;
    float *att = c->att + (size_t)ith * (size_t)c->n_ctx;
    const int items = j->n * hp->n_head;
    for (int it = ith; it < items; it += nth) {
        const int t = it / hp->n_head, h = it % hp->n_head;
        const int pos = j->pos0 + t;
        const float *q = c->q + (size_t)t * (size_t)q_dim + (size_t)h * (size_t)hd;
        const int kvh = h / group;
        for (int p = 0; p <= pos; p++) {
            const float *k =
                c->k_cache + layer_off + (size_t)p * (size_t)kv_dim + (size_t)kvh * (size_t)hd;
            att[p] = kern_dot_f32(hd, q, k) * scale;
        }
        kern_softmax(att, pos + 1);
        float *out = c->xb + (size_t)t * (size_t)q_dim + (size_t)h * (size_t)hd;
        memset(out, 0, (size_t)hd * sizeof(float));
        for (int p = 0; p <= pos; p++) {
            const float *v =
                c->v_cache + layer_off + (size_t)p * (size_t)kv_dim + (size_t)kvh * (size_t)hd;
            const float a = att[p];
            for (int i = 0; i < hd; i++)
                out[i] += a * v[i];
        }
    }
}

/* ---- the forward pass ---- */

static void forward(strix_context *c, const strix_token *tokens, int n, int pos0)
{
    const strix_model *m = c->model;
    const struct hparams *hp = &m->hp;
    const int embd = hp->n_embd, hd = hp->head_dim;
    const int q_dim = hp->n_head * hd, kv_dim = hp->n_head_kv * hd, ff = hp->n_ff;
    const dtype_dequant_fn emb_deq = dtype_get(m->tok_embd.type)->dequantize;
    STRIX_ASSERT(n >= 1 && n <= c->n_batch && pos0 + n <= c->n_ctx); /* checked by strix_decode */

    for (int t = 0; t < n; t++)
        emb_deq((const uint8_t *)m->tok_embd.data + (size_t)tokens[t] * m->tok_embd.row_bytes,
                c->x + (size_t)t * (size_t)embd, embd);

    for (int l = 0; l < hp->n_layer; l++) {
        const struct layer *L = &m->layers[l];
        for (int t = 0; t < n; t++)
            kern_rmsnorm(c->xb + (size_t)t * (size_t)embd, c->x + (size_t)t * (size_t)embd,
                         L->attn_norm.data, embd, hp->norm_eps);
        struct matmul_job qkv = {.c = c,
                                 .n_w = 3,
                                 .w = {&L->wq, &L->wk, &L->wv},
                                 .y = {c->q, c->k, c->v},
                                 .x = c->xb,
                                 .n = n};
        run_matmul(c, &qkv);
        const size_t layer_off = (size_t)l * (size_t)c->n_ctx * (size_t)kv_dim;
        for (int t = 0; t < n; t++) {
            const int pos = pos0 + t;
            for (int h = 0; h < hp->n_head; h++)
                kern_rope(c->q + (size_t)t * (size_t)q_dim + (size_t)h * (size_t)hd, hp->n_rot, pos,
                          hp->rope_freq_base, hp->rope_neox);
            for (int h = 0; h < hp->n_head_kv; h++)
                kern_rope(c->k + (size_t)t * (size_t)kv_dim + (size_t)h * (size_t)hd, hp->n_rot,
                          pos, hp->rope_freq_base, hp->rope_neox);
            memcpy(c->k_cache + layer_off + (size_t)pos * (size_t)kv_dim,
                   c->k + (size_t)t * (size_t)kv_dim, (size_t)kv_dim * sizeof(float));
            memcpy(c->v_cache + layer_off + (size_t)pos * (size_t)kv_dim,
                   c->v + (size_t)t * (size_t)kv_dim, (size_t)kv_dim * sizeof(float));
        }
        struct attn_job aj = {c, l, n, pos0};
        pool_run_n(c->pool, attn_worker, &aj,
                   (int64_t)n * hp->n_head * (pos0 + n) < 4096 ? 1 : c->n_threads);
        matmul(c, &L->wo, c->xb, c->x, n, 1);

        for (int t = 0; t < n; t++)
            kern_rmsnorm(c->xb + (size_t)t * (size_t)embd, c->x + (size_t)t * (size_t)embd,
                         L->ffn_norm.data, embd, hp->norm_eps);
        struct matmul_job ffn = {.c = c,
                                 .n_w = 2,
                                 .w = {&L->w_gate, &L->w_up},
                                 .y = {c->hb, c->hb2},
                                 .x = c->xb,
                                 .n = n};
        run_matmul(c, &ffn);
        for (int t = 0; t < n; t++)
            kern_silu_mul(c->hb + (size_t)t * (size_t)ff, c->hb2 + (size_t)t * (size_t)ff, ff);
        matmul(c, &L->w_down, c->hb, c->x, n, 1);
    }

    /* final norm and logits, only for the tokens that want them */
    int n_keep = 0;
    for (int t = 0; t < n; t++) {
        if (c->logit_slot[t] < 0)
            continue;
        kern_rmsnorm(c->xb + (size_t)n_keep * (size_t)embd, c->x + (size_t)t * (size_t)embd,
                     m->output_norm.data, embd, hp->norm_eps);
        n_keep++;
    }
    if (n_keep > 0)
        matmul(c, &m->output, c->xb, c->logits, n_keep, 0);
}

int strix_decode(strix_context *c, const strix_token *tokens, const int32_t *pos, int n,
                 const int8_t *want_logits, strix_error *err)
{
    err_clear(err);
    const struct hparams *hp = &c->model->hp;
    if (!tokens || n <= 0)
        return err_set(err, STRIX_ERR_ARG, "no tokens to decode");
    if (n > c->n_batch)
        return err_set(err, STRIX_ERR_ARG, "%d tokens exceed the batch size %d", n, c->n_batch);
    const int pos0 = pos ? pos[0] : c->kv_len;
    if (pos0 < 0 || pos0 > c->kv_len)
        return err_set(err, STRIX_ERR_ARG, "position %d leaves a gap after the cache (%d)", pos0,
                       c->kv_len);
    if (pos0 + n > c->n_ctx)
        return err_set(err, STRIX_ERR_ARG, "positions up to %d exceed the context size %d",
                       pos0 + n, c->n_ctx);
    for (int i = 0; i < n; i++) {
        if (pos && pos[i] != pos0 + i)
            return err_set(err, STRIX_ERR_ARG, "positions must be consecutive (token %d)", i);
        if (tokens[i] < 0 || tokens[i] >= hp->n_vocab)
            return err_set(err, STRIX_ERR_ARG, "token id %d is out of range [0, %d)", tokens[i],
                           hp->n_vocab);
    }
    int n_keep = 0;
    for (int i = 0; i < n; i++) {
        const int keep = want_logits ? want_logits[i] != 0 : i == n - 1;
        c->logit_slot[i] = keep ? n_keep++ : -1;
    }
    c->kv_len = pos0;
    forward(c, tokens, n, pos0);
    c->kv_len = pos0 + n;
    c->n_out = n;
    return STRIX_OK;
}

const float *strix_get_logits(const strix_context *c, int i)
{
    if (i < 0)
        i += c->n_out;
    if (i < 0 || i >= c->n_out || c->logit_slot[i] < 0)
        return NULL;
    return c->logits + (size_t)c->logit_slot[i] * (size_t)c->model->hp.n_vocab;
}
