/*
 * stage.c - pipeline stages: decoding a model loaded with a layer range
 * (strix_model_params.layer_first/end) from the residual stream the previous
 * stage produced, and handing its own to the next. The model side (which
 * weights a stage reads and repacks) is model.c's model_weight_in_stage; the
 * cache of only the stage's blocks is context.c's; the forward pass starts
 * from c->hidden_in and stops at c->hidden_out (forward.c). Moving hidden
 * states between processes or machines is the program's business
 * (tools/mpi/pipeline.c does it over MPI).
 */
#include <stdint.h>

#include "runtime/context.h"

int strix_decode_hidden(strix_context *c, const strix_batch *b, const float *in, float *out,
                        strix_error *err)
{
    err_clear(err);
    if (!c || !b)
        return err_set(err, STRIX_ERR_ARG, "context or batch is NULL");
    const strix_model *m = c->model;
    if (!in && m->layer_first > 0)
        return err_set(err, STRIX_ERR_ARG,
                       "the model starts at layer %d: decode needs the hidden state entering it",
                       m->layer_first);
    if (!out && m->layer_end < m->hp.n_layer)
        return err_set(err, STRIX_ERR_ARG,
                       "the model ends before layer %d of %d: decode needs room for the hidden "
                       "state leaving it",
                       m->layer_end, m->hp.n_layer);
    if (in && out && b->n > 0 && (const void *)in != (const void *)out) {
        /* in place is fine (each chunk reads its rows before writing them) */
        const size_t bytes = (size_t)b->n * (size_t)m->hp.n_embd * sizeof(float);
        const uintptr_t a = (uintptr_t)in, o = (uintptr_t)out;
        if (a < o + bytes && o < a + bytes)
            return err_set(err, STRIX_ERR_ARG, "in and out overlap without being the same");
    }
    return context_decode(c, b, in, out, err);
}

/* ---- remote tail ---- */

UTIL_PARAMS_DEFINE(tail, .decode = NULL)

int strix_context_set_tail(strix_context *c, const struct strix_tail_params *params,
                           strix_error *err)
{
    err_clear(err);
    if (!c)
        return err_set(err, STRIX_ERR_ARG, "context is NULL");
    struct strix_tail_params tp;
    const int rc = UTIL_PARAMS_READ(tail, &tp, params, err);
    if (rc)
        return rc;
    const strix_model *m = c->model;
    if (tp.decode && (m->layer_first > 0 || m->layer_end >= m->hp.n_layer))
        return err_set(err, STRIX_ERR_ARG,
                       "a remote tail needs a first stage that ends before the last block; the "
                       "model holds layers [%d, %d) of %d",
                       m->layer_first, m->layer_end, m->hp.n_layer);
    if (tp.decode && (c->layer_skip || c->route))
        return err_set(err, STRIX_ERR_UNSUPPORTED,
                       "a context that skips layers cannot have a remote tail");
    if (tp.decode && !c->tail_hidden) {
        c->tail_hidden =
            util_malloc((size_t)c->n_batch * (size_t)m->hp.n_embd * sizeof *c->tail_hidden);
        c->tail_want = util_malloc((size_t)c->n_batch);
        if (!c->tail_hidden || !c->tail_want) {
            util_free(c->tail_hidden);
            util_free(c->tail_want);
            c->tail_hidden = NULL;
            c->tail_want = NULL;
            return err_set(err, STRIX_ERR_NOMEM, "out of memory for the tail's buffers");
        }
    }
    c->tail = tp.decode ? tp : (struct strix_tail_params){0};
    return STRIX_OK;
}

int stage_cache_op(strix_context *c, int kind, int seq, int dst, int p0, int p1,
                   strix_error *err)
{
    if (!c->tail.decode || !c->tail.cache_op)
        return STRIX_OK;
    strix_error local;
    strix_error *e = err ? err : &local;
    err_clear(e);
    const struct strix_cache_op op = {kind, seq, dst, p0, p1};
    const int rc = c->tail.cache_op(c->tail.user, &op, e);
    if (rc && !e->msg[0])
        err_set(e, rc, "the remote tail failed to apply a cache change");
    return rc;
}

int stage_tail_chunk(strix_context *c, const strix_batch *b, int off, int n, int kept, int last,
                     strix_error *err)
{
    int n_logits = 0;
    for (int t = 0; t < n; t++) {
        c->tail_want[t] = c->slot_buf[off + t] >= 0;
        n_logits += c->tail_want[t];
    }
    const struct strix_tail_chunk ch = {
        .n = n,
        .first = off,
        .last = last,
        .n_logits = n_logits,
        .token = b->token + off,
        .pos = c->tok_pos,
        .seq = c->tok_seq,
        .want = c->tail_want,
        .hidden = c->tail_hidden,
        .logits = c->logits_buf + (size_t)kept * (size_t)c->model->hp.n_vocab,
    };
    strix_error local;
    strix_error *e = err ? err : &local;
    err_clear(e);
    const int rc = c->tail.decode(c->tail.user, &ch, e);
    if (rc && !e->msg[0])
        err_set(e, rc, "the remote tail failed on %d tokens", n);
    return rc;
}
