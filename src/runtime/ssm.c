/*
 * ssm.c - Mamba's selective state-space block and the per-sequence state it
 * keeps instead of a KV cache (ssm.h). For each token of a sequence, with
 * x | z = W_in h (d_inner each):
 *   x  = silu(conv1d(last d_conv inputs of x) + b)        causal, per channel
 *   dt | B | C = W_x x                    (dt_rank, d_state, d_state)
 *   dt = softplus(W_dt dt + b_dt)                       (d_inner)
 *   s[c][i] = s[c][i] exp(dt[c] A[c][i]) + dt[c] x[c] B[i]  (state, d_state per channel)
 *   y[c] = sum_i s[c][i] C[i] + D[c] x[c],  y *= silu(z)
 *   out = W_out y
 * The projections run over the whole chunk as matrix products; the
 * convolution and the scan walk the chunk's tokens in order (each reads the
 * state its sequence's previous position left), split over the pool by
 * channel: a prompt is one pass, its tokens' recurrences run side by side
 * for all channels (a sequential scan over time, which on a CPU does the
 * same work as the parallel scan with less memory). A channel's result does
 * not depend on the thread count or on the batch, so batched and
 * one-by-one decoding agree bit for bit.
 */
#include "runtime/ssm.h"

#include <math.h>
#include <string.h>

#include "kernels/kernels.h"
#include "quant/dtype.h"

struct ssm_layer {
    float *conv;     /* (n_seq, n_keep, d_inner, d_conv - 1) */
    float *scan;     /* (n_seq, n_keep, d_inner, d_state) */
    const float *a;  /* (d_inner, d_state) A, as F32 */
    const float *cw; /* (d_inner, d_conv) convolution weights, as F32 */
    float *owned;    /* the F32 copies when the file's types are not F32 */
};

struct ssm_state {
    int n_seq, n_keep, n_layer, di, dc, ds, dtr;
    int n_state_layers; /* layers that hold a state (all but yoco's cross-decoder) */
    struct ssm_layer *layer; /* (n_layer) */
    int32_t *tag;            /* (n_seq, n_keep) position whose state a slot holds, -1: none */
    /* scratch for n_batch tokens */
    float *xz;  /* (n_batch, 2 d_inner) */
    float *xc;  /* (n_batch, d_inner) convolution output */
    float *xdb; /* (n_batch, dt_rank + 2 d_state) */
    float *dti; /* (n_batch, dt_rank) */
    float *dt;  /* (n_batch, d_inner) */
    float *y;   /* (n_batch, d_inner) */
};

void ssm_state_free(struct ssm_state *s)
{
    if (!s)
        return;
    for (int l = 0; s->layer && l < s->n_layer; l++) {
        util_free(s->layer[l].conv);
        util_free(s->layer[l].scan);
        util_free(s->layer[l].owned);
    }
    util_free(s->layer);
    util_free(s->tag);
    util_free(s->xz);
    util_free(s->xc);
    util_free(s->xdb);
    util_free(s->dti);
    util_free(s->dt);
    util_free(s->y);
    util_free(s);
}

/* t's values as F32: its own bytes, or a copy in *owned. */
static const float *as_f32(const struct tensor *t, float *copy)
{
    if (t->type == DTYPE_F32)
        return t->data;
    const dtype_dequant_fn deq = dtype_get(t->type)->dequantize;
    for (int64_t r = 0; r < t->ne[1]; r++)
        deq((const uint8_t *)t->data + (size_t)r * t->row_bytes,
            copy + (size_t)r * (size_t)t->ne[0], (int)t->ne[0]);
    return copy;
}

struct ssm_state *ssm_state_create(const strix_model *m, int n_seq, int n_keep, int n_batch)
{
    const struct hparams *hp = &m->hp;
    struct ssm_state *s = util_calloc(1, sizeof *s);
    if (!s)
        return NULL;
    s->n_seq = n_seq, s->n_keep = n_keep, s->n_layer = hp->n_layer;
    s->di = hp->ssm_d_inner, s->dc = hp->ssm_d_conv, s->ds = hp->ssm_d_state;
    s->dtr = hp->ssm_dt_rank;
    const size_t slots = (size_t)n_seq * (size_t)n_keep, di = (size_t)s->di;
    const size_t nb = (size_t)n_batch;
    s->layer = util_calloc((size_t)hp->n_layer, sizeof *s->layer);
    s->tag = util_malloc(slots * sizeof *s->tag);
    s->xz = util_malloc(nb * 2 * di * sizeof(float));
    s->xc = util_malloc(nb * di * sizeof(float));
    s->xdb = util_malloc(nb * (size_t)(s->dtr + 2 * s->ds) * sizeof(float));
    s->dti = util_malloc(nb * (size_t)s->dtr * sizeof(float));
    s->dt = util_malloc(nb * di * sizeof(float));
    s->y = util_malloc(nb * di * sizeof(float));
    if (!s->layer || !s->tag || !s->xz || !s->xc || !s->xdb || !s->dti || !s->dt || !s->y)
        goto fail;
    for (size_t i = 0; i < slots; i++)
        s->tag[i] = -1;
    for (int l = 0; l < hp->n_layer; l++) {
        struct ssm_layer *L = &s->layer[l];
        const struct layer *W = &m->layers[l];
        if (!W->ssm_a.data && !W->ret_gate.data)
            continue; /* a block without a state (yoco's cross-decoder) */
        L->scan = util_malloc(slots * di * (size_t)s->ds * sizeof(float));
        if (!L->scan)
            goto fail;
        s->n_state_layers++;
        if (!W->ssm_a.data) /* retnet keeps only the scan state (retention.c) */
            continue;
        L->conv = util_malloc(slots * di * (size_t)(s->dc - 1 > 0 ? s->dc - 1 : 1) * sizeof(float));
        const int convert = W->ssm_a.type != DTYPE_F32 || W->ssm_conv1d.type != DTYPE_F32;
        if (convert && !(L->owned = util_malloc(di * (size_t)(s->ds + s->dc) * sizeof(float))))
            goto fail;
        if (!L->conv)
            goto fail;
        L->a = as_f32(&W->ssm_a, L->owned);
        L->cw = as_f32(&W->ssm_conv1d, L->owned ? L->owned + di * (size_t)s->ds : NULL);
    }
    return s;
fail:
    ssm_state_free(s);
    return NULL;
}

size_t ssm_state_bytes(const struct ssm_state *s)
{
    const size_t per_slot = (size_t)s->di * (size_t)(s->dc - 1 + s->ds) * sizeof(float);
    return (size_t)s->n_state_layers * (size_t)s->n_seq * (size_t)s->n_keep * per_slot +
           (size_t)s->n_seq * (size_t)s->n_keep * sizeof *s->tag;
}

static int32_t *tags(const struct ssm_state *s, int seq)
{
    return s->tag + (size_t)seq * (size_t)s->n_keep;
}

int ssm_state_can_keep(const struct ssm_state *s, int seq, int32_t n_keep)
{
    if (n_keep <= 0)
        return 1;
    const int32_t *t = tags(s, seq);
    int32_t last = -1;
    for (int i = 0; i < s->n_keep; i++)
        last = t[i] > last ? t[i] : last;
    return n_keep > last || t[(n_keep - 1) % s->n_keep] == n_keep - 1;
}

void ssm_state_keep(struct ssm_state *s, int seq, int32_t n_keep)
{
    int32_t *t = tags(s, seq);
    for (int i = 0; i < s->n_keep; i++)
        if (t[i] >= n_keep)
            t[i] = -1;
}

void ssm_state_copy(struct ssm_state *s, int src, int dst)
{
    if (src == dst)
        return;
    const size_t k = (size_t)s->n_keep, di = (size_t)s->di;
    const size_t conv = k * di * (size_t)(s->dc - 1), scan = k * di * (size_t)s->ds;
    for (int l = 0; l < s->n_layer; l++) {
        struct ssm_layer *L = &s->layer[l];
        if (!L->scan)
            continue;
        if (L->conv)
            memcpy(L->conv + (size_t)dst * conv, L->conv + (size_t)src * conv, conv * sizeof(float));
        memcpy(L->scan + (size_t)dst * scan, L->scan + (size_t)src * scan, scan * sizeof(float));
    }
    memcpy(tags(s, dst), tags(s, src), k * sizeof *s->tag);
}

void ssm_state_advance(struct ssm_state *s, int n, const int32_t *pos, const int32_t *seq)
{
    for (int t = 0; t < n; t++)
        tags(s, seq[t])[pos[t] % s->n_keep] = pos[t];
}

float *ssm_state_at(struct ssm_state *s, int l, int seq, int32_t p)
{
    const size_t at = (size_t)seq * (size_t)s->n_keep + (size_t)(p % s->n_keep);
    return s->layer[l].scan + at * (size_t)s->di * (size_t)s->ds;
}

/* ---- the block ---- */

struct scan_job {
    strix_context *c;
    struct ssm_state *s;
    int l;
    int phase; /* 0: convolution, 1: scan */
};

static inline float silu(float x)
{
    return x / (1.0f + expf(-x));
}

static inline float softplus(float x)
{
    return x > 20.0f ? x : logf(1.0f + expf(x));
}

/* Slot of sequence seq's state after position p (p >= 0). */
static inline size_t slot(const struct ssm_state *s, int seq, int32_t p)
{
    return (size_t)seq * (size_t)s->n_keep + (size_t)(p % s->n_keep);
}

static void scan_worker(void *arg, int ith, int nth)
{
    const struct scan_job *j = arg;
    strix_context *c = j->c;
    struct ssm_state *s = j->s;
    const struct ssm_layer *L = &s->layer[j->l];
    const struct layer *W = &c->model->layers[j->l];
    const int di = s->di, dc = s->dc, ds = s->ds, w = s->dtr + 2 * ds;
    const int c0 = (int)((int64_t)di * ith / nth), c1 = (int)((int64_t)di * (ith + 1) / nth);
    const float *cb = W->ssm_conv1d_b.data, *d = W->ssm_d.data;
    for (int t = 0; t < c->n_tok; t++) {
        const int seq = c->tok_seq[t];
        const int32_t p = c->tok_pos[t];
        const size_t now = slot(s, seq, p);
        const size_t prev = p > 0 ? slot(s, seq, p - 1) : SIZE_MAX; /* SIZE_MAX: zeros */
        if (j->phase == 0) {
            const float *x = s->xz + (size_t)t * 2 * (size_t)di;
            float *xc = s->xc + (size_t)t * (size_t)di;
            for (int ch = c0; ch < c1; ch++) {
                const float *cw = L->cw + (size_t)ch * (size_t)dc;
                float *cs = L->conv + (now * (size_t)di + (size_t)ch) * (size_t)(dc - 1);
                const float *ps = prev == SIZE_MAX ? NULL
                                                   : L->conv + (prev * (size_t)di + (size_t)ch) *
                                                                   (size_t)(dc - 1);
                /* the window: the previous dc - 1 inputs, oldest first, then x */
                float acc = 0.0f;
                for (int i = 0; i < dc - 1; i++)
                    acc += (ps ? ps[i] : 0.0f) * cw[i];
                acc += x[ch] * cw[dc - 1];
                for (int i = 0; i + 1 < dc - 1; i++) /* shifts in place when ps == cs */
                    cs[i] = ps ? ps[i + 1] : 0.0f;
                if (dc > 1)
                    cs[dc - 2] = x[ch];
                xc[ch] = silu(acc + cb[ch]);
            }
        } else {
            const float *xc = s->xc + (size_t)t * (size_t)di;
            const float *dt = s->dt + (size_t)t * (size_t)di;
            const float *B = s->xdb + (size_t)t * (size_t)w + s->dtr, *C = B + ds;
            const float *z = s->xz + (size_t)t * 2 * (size_t)di + di;
            float *y = s->y + (size_t)t * (size_t)di;
            for (int ch = c0; ch < c1; ch++) {
                const float *a = L->a + (size_t)ch * (size_t)ds;
                float *st = L->scan + (now * (size_t)di + (size_t)ch) * (size_t)ds;
                const float *ps = prev == SIZE_MAX
                                      ? NULL
                                      : L->scan + (prev * (size_t)di + (size_t)ch) * (size_t)ds;
                const float dsp = softplus(dt[ch]), xdt = xc[ch] * dsp;
                float acc = 0.0f;
                for (int i = 0; i < ds; i++) {
                    const float v = (ps ? ps[i] * expf(dsp * a[i]) : 0.0f) + B[i] * xdt;
                    acc += v * C[i];
                    st[i] = v;
                }
                y[ch] = (acc + xc[ch] * d[ch]) * silu(z[ch]);
            }
        }
    }
}

void ssm_block(strix_context *c, int l, const float *in, float *out)
{
    struct ssm_state *s = c->ssm;
    const struct layer *W = &c->model->layers[l];
    const int n = c->n_tok, di = s->di, w = s->dtr + 2 * s->ds;
    mm(c, &W->ssm_in, in, s->xz, n, 0);
    struct scan_job j = {c, s, l, 0};
    const int nth = (int64_t)n * di * s->dc < 8192 ? 1 : c->n_threads;
    pool_run_n(c->pool, scan_worker, &j, nth);
    mm(c, &W->ssm_x, s->xc, s->xdb, n, 0);
    for (int t = 0; t < n; t++)
        memcpy(s->dti + (size_t)t * (size_t)s->dtr, s->xdb + (size_t)t * (size_t)w,
               (size_t)s->dtr * sizeof(float));
    mm(c, &W->ssm_dt, s->dti, s->dt, n, 0);
    for (int t = 0; t < n; t++)
        kern_add(s->dt + (size_t)t * (size_t)di, W->ssm_dt_b.data, di);
    j.phase = 1;
    pool_run_n(c->pool, scan_worker, &j, (int64_t)n * di * s->ds < 8192 ? 1 : c->n_threads);
    mm(c, &W->ssm_out, s->y, out, n, 1);
}
