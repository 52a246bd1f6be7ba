/*
 * yoco.c - YOCO ("You Only Cache Once", Sun et al. 2024): the shared
 * key/value cache made once from the self-decoder's output, and the batch
 * of the cross-decoder (yoco.h). The cache is the context's KV cache with a
 * single layer (context.c), so rollback, sequence copies and forks work as
 * for any attention model; the self-decoder's state is retention's
 * (retention.c, kept by ssm.c).
 *
 * What prefill skips: the shared keys and values depend only on the
 * self-decoder, so a token whose logits nobody wants never enters the
 * cross-decoder. For a prompt of P tokens (logits for the last) the
 * cross-decoder's L - n_self blocks (queries, attention, output, FFN) run
 * for 1 token instead of P.
 */
#include "runtime/yoco.h"

#include <string.h>

#include "kernels/kernels.h"

struct yoco {
    int32_t *pos, *seq; /* (n_batch) the chunk's positions and sequences */
    int *idx;           /* (n_batch) chunk index of each kept token */
    int n_tok, n_kept;  /* the chunk's size, and how many are kept (-1: not entered) */
};

struct yoco *yoco_create(int n_batch)
{
    struct yoco *y = util_calloc(1, sizeof *y);
    if (!y)
        return NULL;
    y->pos = util_malloc((size_t)n_batch * sizeof *y->pos);
    y->seq = util_malloc((size_t)n_batch * sizeof *y->seq);
    y->idx = util_malloc((size_t)n_batch * sizeof *y->idx);
    y->n_kept = -1;
    if (!y->pos || !y->seq || !y->idx) {
        yoco_free(y);
        return NULL;
    }
    return y;
}

void yoco_free(struct yoco *y)
{
    if (!y)
        return;
    util_free(y->pos);
    util_free(y->seq);
    util_free(y->idx);
    util_free(y);
}

static void rope_heads(const struct hparams *hp, float *v, int n_heads, const float *cs)
{
    for (int h = 0; h < n_heads; h++)
        kern_rope_apply(v + (size_t)h * (size_t)hp->head_dim, hp->n_rot, hp->rope_neox, cs);
}

int yoco_enter_cross(strix_context *c, int l, float *rope)
{
    const strix_model *m = c->model;
    const struct hparams *hp = &m->hp;
    const struct layer *L = &m->layers[l];
    struct yoco *y = c->yoco;
    const int n = c->n_tok, embd = hp->n_embd, nr = hp->n_rot;
    const int kv_dim = hp->n_head_kv * hp->head_dim;
    /* the shared keys and values of every token, from the normed output */
    for (int t = 0; t < n; t++)
        kern_rmsnorm(c->xb + (size_t)t * (size_t)embd, c->x + (size_t)t * (size_t)embd,
                     L->cross_kv_norm.data, embd, hp->norm_eps);
    const struct tensor *w[2] = {&L->cross_k, &L->cross_v};
    float *const out[2] = {c->k, c->v};
    mm_group(c, 2, w, out, c->xb, n, 0);
    for (int t = 0; t < n; t++) {
        float *k = c->k + (size_t)t * (size_t)kv_dim;
        rope_heads(hp, k, hp->n_head_kv, rope + (size_t)t * (size_t)nr);
        const int32_t cell = c->tok_cell[t];
        if (cell >= 0) /* in the shared cache layer, in its element types */
            attention_store(c, 0, cell, k, c->v + (size_t)t * (size_t)kv_dim);
    }
    /* the cross-decoder's batch: the tokens that want logits, in order */
    y->n_tok = n;
    y->n_kept = 0;
    memcpy(y->pos, c->tok_pos, (size_t)n * sizeof *y->pos);
    memcpy(y->seq, c->tok_seq, (size_t)n * sizeof *y->seq);
    for (int t = 0; t < n; t++) {
        if (c->logit_slot[t] < 0)
            continue;
        const int i = y->n_kept++; /* i <= t: moving forward never overwrites a source */
        y->idx[i] = t;
        if (i == t)
            continue;
        memcpy(c->x + (size_t)i * (size_t)embd, c->x + (size_t)t * (size_t)embd,
               (size_t)embd * sizeof(float));
        memcpy(rope + (size_t)i * (size_t)nr, rope + (size_t)t * (size_t)nr,
               (size_t)nr * sizeof(float));
        c->tok_pos[i] = c->tok_pos[t];
        c->tok_seq[i] = c->tok_seq[t];
    }
    c->n_tok = y->n_kept;
    return y->n_kept;
}

void yoco_leave_cross(strix_context *c)
{
    struct yoco *y = c->yoco;
    if (!y || y->n_kept < 0)
        return;
    const int embd = c->model->hp.n_embd;
    for (int i = y->n_kept - 1; i >= 0; i--) /* backwards: idx[i] >= i */
        if (y->idx[i] != i)
            memcpy(c->x + (size_t)y->idx[i] * (size_t)embd, c->x + (size_t)i * (size_t)embd,
                   (size_t)embd * sizeof(float));
    memcpy(c->tok_pos, y->pos, (size_t)y->n_tok * sizeof *y->pos);
    memcpy(c->tok_seq, y->seq, (size_t)y->n_tok * sizeof *y->seq);
    c->n_tok = y->n_tok;
    y->n_kept = -1;
}

void yoco_cross_q(strix_context *c, int l, const float *in, const float *rope)
{
    const struct hparams *hp = &c->model->hp;
    const int n = c->n_tok, q_dim = hp->n_head * hp->head_dim;
    mm(c, &c->model->layers[l].wq, in, c->q, n, 0);
    for (int t = 0; t < n; t++)
        rope_heads(hp, c->q + (size_t)t * (size_t)q_dim, hp->n_head,
                   rope + (size_t)t * (size_t)hp->n_rot);
}
