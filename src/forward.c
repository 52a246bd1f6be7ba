/*
 * forward.c - the model's forward pass over the context's current batch:
 * embeddings, then per layer attention and feed-forward blocks, then the
 * final norm and the logits of the tokens that want them.
 */
#include <math.h>
#include <string.h>

#include "context.h"
#include "dtype.h"
#include "kernels.h"

void forward(strix_context *c, const strix_token *tokens)
{
    const strix_model *m = c->model;
    const struct hparams *hp = &m->hp;
    const int n = c->n_tok;
    const int embd = hp->n_embd, hd = hp->head_dim;
    const int q_dim = hp->n_head * hd, kv_dim = hp->n_head_kv * hd, ff = hp->n_ff;
    const dtype_dequant_fn emb_deq = dtype_get(m->tok_embd.type)->dequantize;
    STRIX_ASSERT(n >= 1 && n <= c->n_batch); /* checked by strix_decode_batch */

    for (int t = 0; t < n; t++)
        emb_deq((const uint8_t *)m->tok_embd.data + (size_t)tokens[t] * m->tok_embd.row_bytes,
                c->x + (size_t)t * (size_t)embd, embd);

    for (int l = 0; l < hp->n_layer; l++) {
        const struct layer *L = &m->layers[l];
        for (int t = 0; t < n; t++)
            kern_rmsnorm(c->xb + (size_t)t * (size_t)embd, c->x + (size_t)t * (size_t)embd,
                         L->attn_norm.data, embd, hp->norm_eps);
        const struct tensor *wqkv[3] = {&L->wq, &L->wk, &L->wv};
        float *const yqkv[3] = {c->q, c->k, c->v};
        mm_group(c, 3, wqkv, yqkv, c->xb, n, 0);
        const size_t layer_off = (size_t)l * (size_t)c->kv.size * (size_t)kv_dim;
        for (int t = 0; t < n; t++) {
            const int pos = c->tok_pos[t];
            for (int h = 0; h < hp->n_head; h++)
                kern_rope(c->q + (size_t)t * (size_t)q_dim + (size_t)h * (size_t)hd, hp->n_rot, pos,
                          hp->rope_freq_base, hp->rope_neox);
            for (int h = 0; h < hp->n_head_kv; h++)
                kern_rope(c->k + (size_t)t * (size_t)kv_dim + (size_t)h * (size_t)hd, hp->n_rot,
                          pos, hp->rope_freq_base, hp->rope_neox);
            const size_t at = layer_off + (size_t)c->tok_cell[t] * (size_t)kv_dim;
            memcpy(c->kv.k + at, c->k + (size_t)t * (size_t)kv_dim, (size_t)kv_dim * sizeof(float));
            memcpy(c->kv.v + at, c->v + (size_t)t * (size_t)kv_dim, (size_t)kv_dim * sizeof(float));
        }
        const struct attn_args aa = {.layer = l,
                                     .q = c->q,
                                     .out = c->xb,
                                     .scale = 1.0f / sqrtf((float)hd),
                                     .window = hp_layer_window(hp, l)};
        attention(c, &aa);
        mm(c, &L->wo, c->xb, c->x, n, 1);

        for (int t = 0; t < n; t++)
            kern_rmsnorm(c->xb + (size_t)t * (size_t)embd, c->x + (size_t)t * (size_t)embd,
                         L->ffn_norm.data, embd, hp->norm_eps);
        const struct tensor *wgu[2] = {&L->w_gate, &L->w_up};
        float *const ygu[2] = {c->hb, c->hb2};
        mm_group(c, 2, wgu, ygu, c->xb, n, 0);
        for (int t = 0; t < n; t++)
            kern_silu_mul(c->hb + (size_t)t * (size_t)ff, c->hb2 + (size_t)t * (size_t)ff, ff);
        mm(c, &L->w_down, c->hb, c->x, n, 1);
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
        mm(c, &m->output, c->xb, c->logits, n_keep, 0);
}
