/*
 * forward.c - the model's forward pass over the context's current batch:
 * embeddings (and absolute positions), then per block attention and
 * feed-forward (dense or Mixture-of-Experts), then the final norm and the
 * logits of the tokens that want them. What varies between architectures
 * is read from the model's description (arch.h) and hyperparameters: the
 * norm, biases, fused projections, positions, activation, parallel or
 * post-norm blocks. Matrix products go through matmul.c, attention through
 * attention.c; this file owns the scratch the variants need beyond the
 * context's (struct fwd, created with the context).
 *
 * A Llama block computes exactly as before the variants existed: the output
 * projections add into the residual stream in place.
 */
#include <math.h>
#include <string.h>

#include "model/arch.h"
#include "runtime/context.h"
#include "runtime/ffn_var.h"
#include "runtime/mla.h"
#include "runtime/retention.h"
#include "runtime/ssm.h"
#include "runtime/yoco.h"
#include "quant/dtype.h"
#include "kernels/kernels.h"

struct fwd {
    float *qkv;     /* (n_batch, q_dim + 2 kv_dim) fused projection output */
    float *gu;      /* (n_batch, 2 n_ff) fused gate | up output */
    float *att;     /* (n_batch, q_dim) attention output before its projection */
    float *ao;      /* (n_batch, n_embd) attention block output */
    float *fo;      /* (n_batch, n_embd) feed-forward block output */
    float *xg;      /* (n_batch, n_embd) tokens gathered for one expert; 2nd norm */
    float *eo;      /* (n_batch, n_embd) one expert's output */
    float *router;  /* (n_batch, n_expert) */
    float *sel_w;   /* (n_batch, n_expert_used) */
    float *tok_w;   /* (n_batch) */
    float *shg;     /* (n_batch) shared expert gate */
    float *alibi;   /* (n_head) */
    float *rope;    /* (n_batch, n_rot) cos, sin of each token's angles */
    int *sel;       /* (n_batch, n_expert_used) */
    int *toks;      /* (n_batch) */
    uint64_t *load; /* (n_layer, n_expert) tokens routed to each expert */
    struct mla_scratch *mla; /* deepseek2's attention (mla.c), else NULL */
    struct ffn_peer_scratch *peer; /* PEER feed-forward (ffn_peer.c), else NULL */
    struct ffn_kan_scratch *kan;   /* KAN feed-forward (ffn_kan.c), else NULL */
};

void *forward_scratch_create(const struct hparams *hp, int n_batch)
{
    struct fwd *f = util_calloc(1, sizeof *f);
    if (!f)
        return NULL;
    const size_t nb = (size_t)n_batch, embd = (size_t)hp->n_embd;
    const size_t q = (size_t)hp->n_head * (size_t)hp->head_dim;
    const size_t kv = (size_t)hp->n_head_kv * (size_t)hp->head_dim;
    const size_t ne = (size_t)(hp->n_expert > 0 ? hp->n_expert : 1);
    const size_t nu = (size_t)(hp->n_expert_used > 0 ? hp->n_expert_used : 1);
    f->qkv = util_malloc(nb * (q + 2 * kv) * sizeof(float));
    f->gu = util_malloc(nb * 2 * (size_t)hp->n_ff * sizeof(float));
    f->att = util_malloc(nb * q * sizeof(float));
    f->ao = util_malloc(nb * embd * sizeof(float));
    f->fo = util_malloc(nb * embd * sizeof(float));
    f->xg = util_malloc(nb * embd * sizeof(float));
    f->eo = util_malloc(nb * embd * sizeof(float));
    f->router = util_malloc(nb * ne * sizeof(float));
    f->sel_w = util_malloc(nb * nu * sizeof(float));
    f->tok_w = util_malloc(nb * sizeof(float));
    f->shg = util_malloc(nb * sizeof(float));
    f->alibi = util_malloc((size_t)hp->n_head * sizeof(float));
    f->rope = util_malloc(nb * (size_t)(hp->n_rot > 0 ? hp->n_rot : 1) * sizeof(float));
    f->sel = util_malloc(nb * nu * sizeof(int));
    f->toks = util_malloc(nb * sizeof(int));
    f->load = util_calloc((size_t)hp->n_layer * ne, sizeof(uint64_t));
    if (!f->qkv || !f->gu || !f->att || !f->ao || !f->fo || !f->xg || !f->eo || !f->router ||
        !f->sel_w || !f->tok_w || !f->shg || !f->alibi || !f->rope || !f->sel || !f->toks ||
        !f->load || (hp->mla && !(f->mla = mla_scratch_create(hp, n_batch))) ||
        (hp->ffn_kind == FFN_PEER && !(f->peer = ffn_peer_scratch_create(hp, n_batch))) ||
        (hp->ffn_kind == FFN_KAN && !(f->kan = ffn_kan_scratch_create(hp, n_batch)))) {
        forward_scratch_free(f);
        return NULL;
    }
    return f;
}

void forward_scratch_free(void *p)
{
    struct fwd *f = p;
    if (!f)
        return;
    util_free(f->qkv);
    util_free(f->gu);
    util_free(f->att);
    util_free(f->ao);
    util_free(f->fo);
    util_free(f->xg);
    util_free(f->eo);
    util_free(f->router);
    util_free(f->sel_w);
    util_free(f->tok_w);
    util_free(f->shg);
    util_free(f->alibi);
    util_free(f->rope);
    util_free(f->sel);
    util_free(f->toks);
    util_free(f->load);
    mla_scratch_free(f->mla);
    ffn_peer_scratch_free(f->peer);
    ffn_kan_scratch_free(f->kan);
    util_free(f);
}

int strix_expert_load(const strix_context *c, int layer, uint64_t *counts, int n)
{
    if (!c)
        return -1;
    const struct hparams *hp = &c->model->hp;
    if (hp->n_expert == 0)
        return 0;
    if (layer < 0 || layer >= hp->n_layer)
        return -1;
    const struct fwd *f = c->fwd;
    for (int e = 0; e < n && e < hp->n_expert; e++)
        counts[e] = f->load[(size_t)layer * (size_t)hp->n_expert + (size_t)e];
    return hp->n_expert;
}

void strix_expert_load_reset(strix_context *c)
{
    if (!c || c->model->hp.n_expert == 0)
        return;
    struct fwd *f = c->fwd;
    memset(f->load, 0,
           (size_t)c->model->hp.n_layer * (size_t)c->model->hp.n_expert * sizeof(uint64_t));
}

static const struct tensor no_bias; /* data NULL: a norm without bias */

static inline float *row(float *base, int t, int width)
{
    return base + (size_t)t * (size_t)width;
}

static inline const float *vec(const struct tensor *t)
{
    return t->data; /* 1-D weights are F32 (model_set_tensor) */
}

/* y = norm(x) of n rows with weight w and, if loaded, bias b. */
static void norm_rows(const strix_model *m, float *y, const float *x, const struct tensor *w,
                      const struct tensor *b, int n)
{
    const int embd = m->hp.n_embd;
    for (int t = 0; t < n; t++) {
        float *yt = y + (size_t)t * (size_t)embd;
        const float *xt = x + (size_t)t * (size_t)embd;
        if (m->ad->norm == NORM_LAYER) {
            kern_layernorm(yt, xt, vec(w), b->data ? vec(b) : NULL, embd, m->hp.norm_eps);
        } else {
            kern_rmsnorm(yt, xt, vec(w), embd, m->hp.norm_eps);
            if (b->data)
                kern_add(yt, vec(b), embd);
        }
    }
}

static void add_bias(float *y, const struct tensor *b, int n, int width)
{
    if (!b || !b->data)
        return;
    for (int t = 0; t < n; t++)
        kern_add(row(y, t, width), vec(b), width);
}

/* One expert's (or the shared expert's) weights as plain matrices. */
static struct tensor expert(const struct tensor *t, int e)
{
    struct tensor v = *t;
    v.ne[2] = 1;
    v.nbytes = (size_t)t->ne[1] * t->row_bytes;
    v.data = (const uint8_t *)t->data + (size_t)e * v.nbytes;
    return v;
}

/* A gated or plain FFN of width ff over n rows of `in`, into out (n, n_embd)
 * (added to out when accumulate). */
static void ffn(strix_context *c, const struct tensor *gate, const struct tensor *up,
                const struct tensor *down, const struct tensor *b_gate, const struct tensor *b_up,
                const struct tensor *b_down, const float *in, float *out, int n, int accumulate)
{
    const strix_model *m = c->model;
    struct fwd *f = c->fwd;
    const int act = m->ad->act;
    const int ff = (int)down->ne[0];
    if (m->ad->fused_up && !gate) {
        /* Phi-3: one product gives (gate | up) */
        mm(c, up, in, f->gu, n, 0);
        add_bias(f->gu, b_up, n, 2 * ff);
        for (int t = 0; t < n; t++) {
            float *g = row(f->gu, t, 2 * ff);
            memcpy(row(c->hb, t, ff), g, (size_t)ff * sizeof(float));
            kern_act_mul(act, row(c->hb, t, ff), g + ff, ff);
        }
    } else if (gate) {
        const struct tensor *w[2] = {gate, up};
        float *const y[2] = {c->hb, c->hb2};
        mm_group(c, 2, w, y, in, n, 0);
        add_bias(c->hb, b_gate, n, ff);
        add_bias(c->hb2, b_up, n, ff);
        for (int t = 0; t < n; t++)
            kern_act_mul(act, row(c->hb, t, ff), row(c->hb2, t, ff), ff);
    } else {
        mm(c, up, in, c->hb, n, 0);
        add_bias(c->hb, b_up, n, ff);
        for (int t = 0; t < n; t++)
            kern_act(act, row(c->hb, t, ff), ff);
    }
    mm(c, down, c->hb, out, n, accumulate);
    if (!accumulate)
        add_bias(out, b_down, n, m->hp.n_embd);
}

/* Mixture-of-Experts FFN of block l over n rows of `in`, into out. Each
 * expert runs once on the rows of the tokens routed to it; a token's
 * result adds its experts in expert order, whatever the batch. */
static void moe(strix_context *c, int l, const float *in, float *out, int n)
{
    const strix_model *m = c->model;
    const struct hparams *hp = &m->hp;
    const struct layer *L = &m->layers[l];
    struct fwd *f = c->fwd;
    const int embd = hp->n_embd, ne = hp->n_expert, k = hp->n_expert_used;
    mm(c, &L->gate_inp, in, f->router, n, 0);
    for (int t = 0; t < n; t++) {
        if (hp->moe_ds) /* DeepSeekMoE (moe_route.c) */
            moe_route_ds(hp, row(f->router, t, ne),
                         L->exp_probs_b.data ? vec(&L->exp_probs_b) : NULL,
                         f->sel + (size_t)t * k, row(f->sel_w, t, k));
        else
            kern_moe_route(row(f->router, t, ne), ne, k, m->ad->moe_norm_w,
                           f->sel + (size_t)t * k, row(f->sel_w, t, k));
        for (int j = 0; j < k; j++)
            f->load[(size_t)l * (size_t)ne + (size_t)f->sel[(size_t)t * k + j]]++;
    }
    memset(out, 0, (size_t)n * (size_t)embd * sizeof(float));
    for (int e = 0; e < ne; e++) {
        int n_e = 0;
        for (int t = 0; t < n; t++)
            for (int j = 0; j < k; j++)
                if (f->sel[(size_t)t * k + j] == e) {
                    f->toks[n_e] = t;
                    f->tok_w[n_e] = f->sel_w[(size_t)t * k + j];
                    memcpy(row(f->xg, n_e, embd), in + (size_t)t * (size_t)embd,
                           (size_t)embd * sizeof(float));
                    n_e++;
                }
        if (n_e == 0)
            continue;
        const struct tensor g = expert(&L->gate_exps, e), u = expert(&L->up_exps, e),
                            d = expert(&L->down_exps, e);
        ffn(c, &g, &u, &d, NULL, NULL, NULL, f->xg, f->eo, n_e, 0);
        for (int i = 0; i < n_e; i++)
            kern_axpy(embd, f->tok_w[i], row(f->eo, i, embd), row(out, f->toks[i], embd));
    }
    if (L->gate_shexp.data) {
        /* the shared expert, weighted by a sigmoid gate of its own (or
         * not at all: deepseek2's shared experts) */
        const int gated = L->gate_inp_shexp.data != NULL;
        if (gated)
            mm(c, &L->gate_inp_shexp, in, f->shg, n, 0);
        ffn(c, &L->gate_shexp, &L->up_shexp, &L->down_shexp, NULL, NULL, NULL, in, f->eo, n, 0);
        for (int t = 0; t < n; t++)
            kern_axpy(embd, gated ? 1.0f / (1.0f + expf(-f->shg[t])) : 1.0f, row(f->eo, t, embd),
                      row(out, t, embd));
    }
}

static void embed(strix_context *c, const strix_token *tokens)
{
    const strix_model *m = c->model;
    const struct hparams *hp = &m->hp;
    const int n = c->n_tok, embd = hp->n_embd;
    const dtype_dequant_fn emb_deq = dtype_get(m->tok_embd.type)->dequantize;
    for (int t = 0; t < n; t++) {
        float *x = row(c->x, t, embd);
        emb_deq((const uint8_t *)m->tok_embd.data + (size_t)tokens[t] * m->tok_embd.row_bytes, x,
                embd);
        if (m->ad->emb_sqrt) {
            const float s = sqrtf((float)embd);
            for (int i = 0; i < embd; i++)
                x[i] *= s;
        }
        if (m->pos_embd.data) {
            /* positions < n_ctx_train: the context is no longer (context.c) */
            float *p = row(c->xb, t, embd);
            dtype_get(m->pos_embd.type)
                ->dequantize((const uint8_t *)m->pos_embd.data +
                                 (size_t)c->tok_pos[t] * m->pos_embd.row_bytes,
                             p, embd);
            kern_add(x, p, embd);
        }
        if (hp->sinusoidal)
            kern_sinusoid_add(x, embd, c->tok_pos[t]);
    }
    if (m->tok_norm.data)
        norm_rows(m, c->x, c->x, &m->tok_norm, &m->tok_norm_b, n);
}

static void rope_rows(const struct hparams *hp, float *v, int n_heads, int hd, const float *cs)
{
    for (int h = 0; h < n_heads; h++)
        kern_rope_apply(v + (size_t)h * (size_t)hd, hp->n_rot, hp->rope_neox, cs);
}

/* q, k, v of block l for the batch, from `in` (normed input), with biases,
 * clamping and rotary positions; k and v are stored in the cache. */
static void qkv(strix_context *c, int l, const float *in)
{
    const strix_model *m = c->model;
    const struct hparams *hp = &m->hp;
    const struct layer *L = &m->layers[l];
    struct fwd *f = c->fwd;
    const int n = c->n_tok, hd = hp->head_dim;
    const int q_dim = hp->n_head * hd, kv_dim = hp->n_head_kv * hd, w = q_dim + 2 * kv_dim;
    if (L->wqkv.data) {
        mm(c, &L->wqkv, in, f->qkv, n, 0);
        add_bias(f->qkv, &L->bqkv, n, w);
        for (int t = 0; t < n; t++) {
            const float *src = row(f->qkv, t, w);
            memcpy(row(c->q, t, q_dim), src, (size_t)q_dim * sizeof(float));
            memcpy(row(c->k, t, kv_dim), src + q_dim, (size_t)kv_dim * sizeof(float));
            memcpy(row(c->v, t, kv_dim), src + q_dim + kv_dim, (size_t)kv_dim * sizeof(float));
        }
    } else {
        const struct tensor *wqkv[3] = {&L->wq, &L->wk, &L->wv};
        float *const yqkv[3] = {c->q, c->k, c->v};
        mm_group(c, 3, wqkv, yqkv, in, n, 0);
        add_bias(c->q, &L->bq, n, q_dim);
        add_bias(c->k, &L->bk, n, kv_dim);
        add_bias(c->v, &L->bv, n, kv_dim);
    }
    if (hp->clamp_kqv > 0.0f) {
        const float cl = hp->clamp_kqv;
        float *bufs[3] = {c->q, c->k, c->v};
        const int widths[3] = {q_dim, kv_dim, kv_dim};
        for (int b = 0; b < 3; b++)
            for (size_t i = 0; i < (size_t)n * (size_t)widths[b]; i++)
                bufs[b][i] = bufs[b][i] < -cl ? -cl : (bufs[b][i] > cl ? cl : bufs[b][i]);
    }
    const int lc = l - m->layer_first; /* the cache holds the stage's blocks */
    const int32_t *cells = c->tok_cell + (size_t)lc * (size_t)c->n_batch;
    for (int t = 0; t < n; t++) {
        if (m->ad->pos == POS_ROPE) {
            const float *cs = f->rope + (size_t)t * (size_t)hp->n_rot;
            rope_rows(hp, row(c->q, t, q_dim), hp->n_head, hd, cs);
            rope_rows(hp, row(c->k, t, kv_dim), hp->n_head_kv, hd, cs);
        }
        if (cells[t] < 0)
            continue; /* the token stores nothing in this layer */
        attention_store(c, lc, cells[t], row(c->k, t, kv_dim), row(c->v, t, kv_dim));
    }
}

void forward(strix_context *c, const strix_token *tokens)
{
    const strix_model *m = c->model;
    const struct arch *ad = m->ad;
    const struct hparams *hp = &m->hp;
    struct fwd *f = c->fwd;
    const int n_all = c->n_tok;
    const int embd = hp->n_embd, hd = hp->head_dim;
    STRIX_ASSERT(n_all >= 1 && n_all <= c->n_batch); /* checked by strix_decode_batch */

    if (c->hidden_in) /* a later pipeline stage: the previous stage's output */
        memcpy(c->x, c->hidden_in, (size_t)n_all * (size_t)embd * sizeof(float));
    else
        embed(c, tokens);

    /* rotary positions: the plain kernel unless scaled */
    struct kern_rope_cfg rc = {hp->n_rot,           hp->rope_neox,       hp->rope_freq_base,
                               hp->rope_freq_scale, hp->yarn_ext_factor, hp->yarn_attn_factor,
                               {0.0f, 0.0f}};
    const int plain_rope =
        hp->rope_freq_scale == 1.0f && hp->yarn_ext_factor == 0.0f && hp->yarn_attn_factor == 1.0f;
    if (hp->yarn_ext_factor != 0.0f)
        kern_yarn_corr_dims(hp->n_rot, hp->n_ctx_orig, hp->rope_freq_base, hp->yarn_beta_fast,
                            hp->yarn_beta_slow, rc.corr);
    /* each token's angles, once for all heads and layers */
    if (ad->pos == POS_ROPE)
        for (int t = 0; t < n_all; t++) {
            float *cs = f->rope + (size_t)t * (size_t)hp->n_rot;
            if (plain_rope)
                kern_rope_table(cs, hp->n_rot, c->tok_pos[t], hp->rope_freq_base);
            else
                kern_rope_ext_table(cs, c->tok_pos[t], &rc);
        }
    if (ad->pos == POS_ALIBI)
        kern_alibi_slopes(f->alibi, hp->n_head, hp->alibi_max_bias);
    /* Gemma-2 27B scales queries by the model width per head, not the head size */
    const float scale = ad->q_scale_embd_layers && hp->n_layer == ad->q_scale_embd_layers
                            ? 1.0f / sqrtf((float)(embd / hp->n_head))
                            : 1.0f / sqrtf((float)hd);

    for (int l = m->layer_first; l < m->layer_end; l++) {
        if (c->layer_skip && c->layer_skip[l])
            continue; /* static layer mask: the residual passes through, no KV is written */
        const struct layer *L = &m->layers[l];
        if (hp->yoco && l == hp->yoco_n_self && yoco_enter_cross(c, l, f->rope) == 0)
            break; /* yoco: no token wants logits, the cross-decoder is not needed */
        context_hook_in(c); /* observation (context params), when set */
        if (L->linear.data) { /* --- the block replaced by a linear map (model/linear.c) --- */
            mm(c, &L->linear, c->x, c->xb, n_all, 0);
            add_bias(c->xb, &L->linear_b, n_all, embd);
            memcpy(c->x, c->xb, (size_t)n_all * (size_t)embd * sizeof(float));
            context_hook_out(c, l);
            continue;
        }
        /* dynamic depth (route.c): only the tokens that run the layer, gathered */
        const int rope_w = ad->pos == POS_ROPE ? hp->n_rot : 0;
        const int n = route_enter(c, l, f->rope, rope_w);
        if (n == 0) {
            route_leave(c, l, f->rope, rope_w);
            context_hook_out(c, l);
            continue;
        }
        /* attention: input normed unless the block normalises after */
        const float *in = c->x;
        if (!hp->post_norm) {
            norm_rows(m, c->xb, c->x, &L->attn_norm, &L->attn_norm_b, n);
            in = c->xb;
        }
        if (hp->retnet || (hp->yoco && l < hp->yoco_n_self)) {
            /* retnet, yoco's self-decoder: retention (retention.c), added in place */
            retention_block(c, l, in, f->rope, c->x);
            goto feed_forward;
        }
        if (hp->ssm && !hp->yoco) { /* mamba: the state-space block (ssm.c) is the whole block */
            ssm_block(c, l, in, c->x);
            context_hook_out(c, l);
            continue;
        }
        const float *att_in = in;
        if (L->attn_norm_2.data) { /* Falcon-40B: attention has a norm of its own */
            norm_rows(m, f->xg, c->x, &L->attn_norm_2, &L->attn_norm_2_b, n);
            att_in = f->xg;
        }
        if (hp->mla) { /* deepseek2: latent attention (mla.c), added in place */
            mla_attention(c, f->mla, l, att_in, f->rope, c->x, 1);
            goto feed_forward;
        }
        if (hp->yoco) /* the cross-decoder: queries only, the shared cache (yoco.c) */
            yoco_cross_q(c, l, att_in, f->rope);
        else
            qkv(c, l, att_in);
        const int direct =
            !L->bo.data && !L->attn_post_norm.data && !ad->parallel && !hp->post_norm;
        /* the attention result overwrites the normed input unless the FFN
         * still reads it (parallel blocks) */
        float *att_out = ad->parallel ? f->att : c->xb;
        const struct attn_args aa = {.layer = hp->yoco ? 0 : l - m->layer_first,
                                     .q = c->q,
                                     .out = att_out,
                                     .scale = scale,
                                     .window = hp_layer_window(hp, l),
                                     .alibi = ad->pos == POS_ALIBI ? f->alibi : NULL,
                                     .softcap = hp->attn_softcap};
        attention(c, &aa);
        if (direct) {
            mm(c, &L->wo, att_out, c->x, n, 1);
        } else {
            mm(c, &L->wo, att_out, f->ao, n, 0);
            add_bias(f->ao, &L->bo, n, embd);
            if (L->attn_post_norm.data)
                norm_rows(m, f->ao, f->ao, &L->attn_post_norm, &no_bias, n);
            if (!ad->parallel) {
                kern_add(c->x, f->ao, (size_t)n * (size_t)embd);
                if (hp->post_norm)
                    norm_rows(m, c->x, c->x, &L->attn_norm, &L->attn_norm_b, n);
            }
        }

    feed_forward:; /* feed-forward */
        const float *fin = in; /* parallel: the attention's normed input */
        if (!ad->parallel) {
            fin = c->x;
            if (!hp->post_norm) {
                norm_rows(m, c->xb, c->x, &L->ffn_norm, &L->ffn_norm_b, n);
                fin = c->xb;
            }
        }
        const int moe_block = L->gate_inp.data != NULL;
        const int direct_ffn = !L->b_down.data && !L->ffn_post_norm.data && !ad->parallel &&
                               !hp->post_norm && !moe_block && hp->ffn_kind == FFN_MLP;
        if (hp->ffn_kind == FFN_PEER) /* strix's variants (ffn_peer.c, ffn_kan.c) */
            ffn_peer(c, f->peer, l, fin, f->fo, n);
        else if (hp->ffn_kind == FFN_KAN)
            ffn_kan(c, f->kan, l, fin, f->fo, n);
        else if (moe_block)
            moe(c, l, fin, f->fo, n);
        else
            ffn(c, L->w_gate.data ? &L->w_gate : NULL, &L->w_up, &L->w_down, &L->b_gate, &L->b_up,
                &L->b_down, fin, direct_ffn ? c->x : f->fo, n, direct_ffn);
        if (!direct_ffn) {
            if (L->ffn_post_norm.data)
                norm_rows(m, f->fo, f->fo, &L->ffn_post_norm, &no_bias, n);
            if (ad->parallel)
                kern_add(f->fo, f->ao, (size_t)n * (size_t)embd);
            kern_add(c->x, f->fo, (size_t)n * (size_t)embd);
            if (hp->post_norm)
                norm_rows(m, c->x, c->x, &L->ffn_norm, &L->ffn_norm_b, n);
        }
        route_leave(c, l, f->rope, rope_w);
        context_hook_out(c, l);
    }

    if (hp->yoco)
        yoco_leave_cross(c);
    if (c->hidden_out) { /* an earlier pipeline stage: the next stage's input */
        memcpy(c->hidden_out, c->x, (size_t)n_all * (size_t)embd * sizeof(float));
        return;
    }
    /* final norm and logits, only for the tokens that want them */
    int n_keep = 0;
    for (int t = 0; t < n_all; t++) {
        if (c->logit_slot[t] < 0)
            continue;
        norm_rows(m, row(c->xb, n_keep, embd), row(c->x, t, embd), &m->output_norm,
                  &m->output_norm_b, 1);
        n_keep++;
    }
    if (n_keep > 0) {
        mm(c, &m->output, c->xb, c->logits, n_keep, 0);
        if (hp->final_softcap > 0.0f)
            kern_softcap(c->logits, (size_t)n_keep * (size_t)hp->n_vocab, hp->final_softcap);
    }
}
