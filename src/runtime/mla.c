/*
 * mla.c - Multi-head Latent Attention (DeepSeek-V2), in the absorbed form
 * for prefill and decoding alike: the cache holds, per token and layer, the
 * normed key-value latent c (n_lora_kv values) and the rotary key k_r
 * (n_rot), never per-head keys or values. Each head's no-rope query is
 * mapped into the latent space (q_c = wk_b[h] q_nope), so a head's score is
 * (q_c | rope(q_r)) . (c | rope(k_r)), which is what the expanded key
 * (wk_b[h]^T c | rope(k_r)) would give; the attention then averages latents
 * and wv_b[h] expands the result to the head's value size. This is
 * attention.c's multi-query attention over one "head" of n_lora_kv + n_rot
 * values whose values are its first n_lora_kv (the cache shares them: see
 * context.c's kv_alloc).
 *
 * Why absorbed for prefill too: expanding keys and values for a prompt would
 * save the latent-space dot products (n_lora_kv + n_rot against head_k_mla
 * per score) but needs a second attention path and per-head key/value
 * scratch of prompt length; one path keeps batched and one-by-one decoding
 * bit-identical by construction.
 *
 * YaRN (llama.cpp's reading of DeepSeek-V2's rope_scaling, factor F, the
 * stored log multiplier y = 0.1 mscale_all_dim): the rotary parts are scaled
 * by A g (A the file's attn_factor; g = 1 + 0.1 ln F, but 1 when y != 0 or
 * F <= 1), and the scores by (A g (1 + y ln F))^2 / sqrt(head_k_mla), that
 * is mscale^2 with mscale = 1 + 0.1 mscale_all_dim ln F: the temperature
 * correction goes into the scores rather than into the rotary parts alone.
 * forward.c's YaRN table carries A (1 + 0.1 ln F), so the parts are rescaled.
 */
#include "runtime/mla.h"

#include <math.h>
#include <string.h>

#include "kernels/kernels.h"

struct mla_scratch {
    float *qa;  /* (n_batch, n_lora_q) query latent */
    float *qf;  /* (n_batch, n_head * head_k_mla) query before absorption */
    float *kva; /* (n_batch, n_lora_kv + n_rot) latent | rotary key */
    float *g;   /* (n_batch, max(head_k_mla, n_lora_kv)) one head's rows */
    float *g2;  /* (n_batch, max(n_lora_kv, head_v_mla)) their product */
    float *att; /* (n_batch, n_head * (n_lora_kv + n_rot)) attention output */
    float *vo;  /* (n_batch, n_head * head_v_mla) expanded values */
    float *cs;  /* (n_batch, n_rot) rescaled rotary table (YaRN) */
};

/* YaRN's factors (see the top): the rotary table's rescaling and the score
 * scale. Without scaling: 1 and A^2 / sqrt(head_k_mla). */
static void mla_scales(const struct hparams *hp, float *rope_rescale, float *kq_scale)
{
    const int yarn = hp->yarn_ext_factor != 0.0f;
    const float ln_f = logf(1.0f / hp->rope_freq_scale);
    const float g = yarn && hp->yarn_log_mul == 0.0f && ln_f > 0.0f ? 1.0f + 0.1f * ln_f : 1.0f;
    const float rope_mag = hp->yarn_attn_factor * g; /* what the rotary parts carry */
    const float table_mag = hp->yarn_attn_factor * (yarn ? 1.0f + 0.1f * ln_f : 1.0f);
    const float mscale = rope_mag * (1.0f + hp->yarn_log_mul * ln_f); /* y = 0.1 mscale_all_dim */
    *rope_rescale = rope_mag / table_mag;
    *kq_scale = mscale * mscale / sqrtf((float)hp->head_k_mla);
}

void mla_scratch_free(struct mla_scratch *s)
{
    if (!s)
        return;
    util_free(s->qa);
    util_free(s->qf);
    util_free(s->kva);
    util_free(s->g);
    util_free(s->g2);
    util_free(s->att);
    util_free(s->vo);
    util_free(s->cs);
    util_free(s);
}

struct mla_scratch *mla_scratch_create(const struct hparams *hp, int n_batch)
{
    struct mla_scratch *s = util_calloc(1, sizeof *s);
    if (!s)
        return NULL;
    const size_t nb = (size_t)n_batch, nh = (size_t)hp->n_head, r = (size_t)hp->n_lora_kv;
    const size_t kd = r + (size_t)hp->n_rot, hk = (size_t)hp->head_k_mla;
    const size_t hv = (size_t)hp->head_v_mla;
    s->qa = util_malloc(nb * (size_t)(hp->n_lora_q > 0 ? hp->n_lora_q : 1) * sizeof(float));
    s->qf = util_malloc(nb * nh * hk * sizeof(float));
    s->kva = util_malloc(nb * kd * sizeof(float));
    s->g = util_malloc(nb * (hk > r ? hk : r) * sizeof(float));
    s->g2 = util_malloc(nb * (hv > r ? hv : r) * sizeof(float));
    s->att = util_malloc(nb * nh * kd * sizeof(float));
    s->vo = util_malloc(nb * nh * hv * sizeof(float));
    s->cs = util_malloc(nb * (size_t)hp->n_rot * sizeof(float));
    if (!s->qa || !s->qf || !s->kva || !s->g || !s->g2 || !s->att || !s->vo || !s->cs) {
        mla_scratch_free(s);
        return NULL;
    }
    return s;
}

/* Head h's matrix of a per-head weight stacked as (n_head, rows, cols). */
static struct tensor head_matrix(const struct tensor *t, int h)
{
    struct tensor v = *t;
    v.ne[2] = 1;
    v.nbytes = (size_t)t->ne[1] * t->row_bytes;
    v.data = (const uint8_t *)t->data + (size_t)h * v.nbytes;
    v.packed = NULL; /* a repacked copy covers the whole stack */
    v.packed_isa = NULL;
    return v;
}

/* For every head: y[t, h * y_w + 0..rows) = W[h] x[t, h * x_w + 0..cols),
 * through the gathered rows g and products g2. */
static void per_head(strix_context *c, struct mla_scratch *s, const struct tensor *w,
                     const float *x, int x_w, float *y, int y_w)
{
    const int n = c->n_tok, nh = c->model->hp.n_head;
    const int cols = (int)w->ne[0], rows = (int)w->ne[1];
    for (int h = 0; h < nh; h++) {
        for (int t = 0; t < n; t++)
            memcpy(s->g + (size_t)t * (size_t)cols,
                   x + (size_t)t * (size_t)x_w * (size_t)nh + (size_t)h * (size_t)x_w,
                   (size_t)cols * sizeof(float));
        const struct tensor wh = head_matrix(w, h);
        mm(c, &wh, s->g, s->g2, n, 0);
        for (int t = 0; t < n; t++)
            memcpy(y + (size_t)t * (size_t)y_w * (size_t)nh + (size_t)h * (size_t)y_w,
                   s->g2 + (size_t)t * (size_t)rows, (size_t)rows * sizeof(float));
    }
}

void mla_attention(strix_context *c, struct mla_scratch *s, int l, const float *in,
                   const float *rope, float *out, int accumulate)
{
    const strix_model *m = c->model;
    const struct hparams *hp = &m->hp;
    const struct layer *L = &m->layers[l];
    const int n = c->n_tok, nh = hp->n_head, r = hp->n_lora_kv, nr = hp->n_rot;
    const int kd = r + nr, hk = hp->head_k_mla, nope = hk - nr;
    /* the query (through its latent, or plainly) and the key-value latent */
    if (hp->n_lora_q > 0) {
        const struct tensor *w[2] = {&L->wq_a, &L->wkv_a};
        float *const y[2] = {s->qa, s->kva};
        mm_group(c, 2, w, y, in, n, 0);
        for (int t = 0; t < n; t++) {
            float *qa = s->qa + (size_t)t * (size_t)hp->n_lora_q;
            kern_rmsnorm(qa, qa, L->q_a_norm.data, hp->n_lora_q, hp->norm_eps);
        }
        mm(c, &L->wq_b, s->qa, s->qf, n, 0);
    } else {
        const struct tensor *w[2] = {&L->wq, &L->wkv_a};
        float *const y[2] = {s->qf, s->kva};
        mm_group(c, 2, w, y, in, n, 0);
    }
    /* the cached key: normed latent | rotary key; the rotary query parts */
    const int lc = l - c->model->layer_first; /* the cache holds the stage's blocks */
    const int32_t *cells = c->tok_cell + (size_t)lc * (size_t)c->n_batch;
    float rope_rescale, kq_scale;
    mla_scales(hp, &rope_rescale, &kq_scale);
    if (rope_rescale != 1.0f) {
        for (size_t i = 0; i < (size_t)n * (size_t)nr; i++)
            s->cs[i] = rope[i] * rope_rescale;
        rope = s->cs;
    }
    for (int t = 0; t < n; t++) {
        const float *cs = rope + (size_t)t * (size_t)nr;
        float *kv = s->kva + (size_t)t * (size_t)kd;
        kern_rmsnorm(kv, kv, L->kv_a_norm.data, r, hp->norm_eps);
        kern_rope_apply(kv + r, nr, hp->rope_neox, cs);
        float *q = c->q + (size_t)t * (size_t)nh * (size_t)kd;
        for (int h = 0; h < nh; h++) {
            float *qr = q + (size_t)h * (size_t)kd + r;
            memcpy(qr, s->qf + ((size_t)t * (size_t)nh + (size_t)h) * (size_t)hk + (size_t)nope,
                   (size_t)nr * sizeof(float));
            kern_rope_apply(qr, nr, hp->rope_neox, cs);
        }
        if (cells[t] >= 0)
            attention_store(c, lc, cells[t], kv, NULL); /* F32: values live in the keys */
    }
    /* absorption: q_c = wk_b[h] q_nope into each head's first r values */
    per_head(c, s, &L->wk_b, s->qf, hk, c->q, kd);
    const struct attn_args aa = {.layer = lc,
                                 .q = c->q,
                                 .out = s->att,
                                 .scale = kq_scale,
                                 .window = 0,
                                 .alibi = NULL,
                                 .softcap = 0.0f};
    attention(c, &aa);
    /* each head's averaged latent expanded to its values, then projected */
    per_head(c, s, &L->wv_b, s->att, kd, s->vo, hp->head_v_mla);
    mm(c, &L->wo, s->vo, out, n, accumulate);
}
