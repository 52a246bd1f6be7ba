/*
 * cache_info.c - what a context's cache costs (strix_context_cache_bytes),
 * counted from the sizes its layers were allocated with (context.c's
 * kv_alloc): keys, values unless they live inside the keys (MLA), both in
 * the cache's element types, and each cell's position, sequence mask and
 * order entry; for recurrent models the states (ssm.c) and the cells of
 * their kept positions, all per sequence.
 */
#include "runtime/context.h"
#include "runtime/ssm.h"

int strix_context_cache_bytes(const strix_context *c, size_t *total, size_t *per_token,
                              size_t *per_seq)
{
    if (total)
        *total = 0;
    if (per_token)
        *per_token = 0;
    if (per_seq)
        *per_seq = 0;
    if (!c)
        return STRIX_ERR_ARG;
    const struct hparams *hp = &c->model->hp;
    size_t cell = 0, all = 0;
    for (int l = 0; l < c->kv.n_layer; l++) {
        const struct kv_layer *L = &c->kv.layer[l];
        /* keys and values in the cache's types (kv_alloc's row sizes) */
        const size_t one = c->kv.row_k + (c->kv.v_in_k ? 0 : c->kv.row_v) + sizeof *L->pos +
                           sizeof *L->seqs + sizeof *L->order;
        cell += one;
        all += one * (size_t)L->size;
    }
    if (c->ssm && hp->yoco) { /* the shared cache per token, the self-decoder's state */
        all += ssm_state_bytes(c->ssm);
        if (per_seq)
            *per_seq = ssm_state_bytes(c->ssm) / (size_t)c->n_seq_max;
    } else if (c->ssm) {
        /* recurrent: the cells only track the kept positions (a window), so
         * the whole cache is a fixed cost per sequence */
        all += ssm_state_bytes(c->ssm);
        cell = 0;
        if (per_seq)
            *per_seq = all / (size_t)c->n_seq_max;
    }
    if (total)
        *total = all;
    if (per_token)
        *per_token = cell;
    return STRIX_OK;
}
