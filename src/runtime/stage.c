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
