/*
 * linear.c - blocks replaced by a linear map (`strix prune --linearize`,
 * analysis/prune.c): a GGUF file may hold, beside a block's own weights,
 * blk.N.strix_linear.weight (F32, ne = {n_embd, n_embd}: row o gives
 * output o) and blk.N.strix_linear.bias (F32, n_embd). The block then runs
 * as x <- W x + b (runtime/forward.c); its own weights stay in the file and
 * unused. These tensors are strix's own: llama.cpp refuses such a file.
 */
#include <stdio.h>
#include <string.h>

#include "format/gguf.h"
#include "model/model.h"
#include "quant/dtype.h"
#include "util.h"

#define LINEAR_SUFFIX_W ".strix_linear.weight"
#define LINEAR_SUFFIX_B ".strix_linear.bias"

static int ends_with(const char *s, size_t len, const char *suffix)
{
    const size_t n = strlen(suffix);
    return len > n && memcmp(s + len - n, suffix, n) == 0;
}

int linear_is_name(const char *name, size_t len)
{
    return len > 4 && memcmp(name, "blk.", 4) == 0 &&
           (ends_with(name, len, LINEAR_SUFFIX_W) || ends_with(name, len, LINEAR_SUFFIX_B));
}

static int set(struct tensor *t, const struct gguf_tensor *g, int n_dims, int64_t d,
               strix_error *err)
{
    const int64_t rows = n_dims == 2 ? d : 1;
    if (g->type != DTYPE_F32 || g->ne[0] != d || g->ne[1] != rows || g->ne[2] != 1 ||
        g->ne[3] != 1 || g->nbytes != (size_t)(d * rows) * sizeof(float))
        return err_set(err, STRIX_ERR_FORMAT, "tensor '%.*s' must be F32 of %lld x %lld",
                       (int)g->name.len, g->name.ptr, (long long)d, (long long)rows);
    memset(t, 0, sizeof *t);
    snprintf(t->name, sizeof t->name, "%.*s", (int)g->name.len, g->name.ptr);
    t->type = DTYPE_F32;
    t->n_dims = n_dims;
    t->ne[0] = d;
    t->ne[1] = rows;
    t->ne[2] = t->ne[3] = 1;
    t->data = g->data;
    t->nbytes = g->nbytes;
    t->row_bytes = (size_t)d * sizeof(float);
    return STRIX_OK;
}

int linear_load(strix_model *m, const gguf *g, strix_error *err)
{
    for (int l = 0; l < m->hp.n_layer; l++) {
        char wn[64], bn[64];
        snprintf(wn, sizeof wn, "blk.%d" LINEAR_SUFFIX_W, l);
        snprintf(bn, sizeof bn, "blk.%d" LINEAR_SUFFIX_B, l);
        const struct gguf_tensor *w = gguf_find_tensor(g, wn), *b = gguf_find_tensor(g, bn);
        if (!w && !b)
            continue;
        if (!w || !b)
            return err_set(err, STRIX_ERR_FORMAT, "block %d has only one of %s and %s", l, wn,
                           bn);
        int rc;
        struct layer *L = &m->layers[l];
        if ((rc = set(&L->linear, w, 2, m->hp.n_embd, err)) ||
            (rc = set(&L->linear_b, b, 1, m->hp.n_embd, err)))
            return rc;
    }
    return STRIX_OK;
}
