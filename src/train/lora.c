/*
 * lora.c - the low-rank adapters of router training (router_train.c) made
 * permanent: the base model saved (model_save_gguf) with its seven block
 * projections replaced by W + B A in F32, every other weight, key and the
 * vocabulary as they were, so the adapted model runs in every program that
 * runs the base one and needs no adapter support at inference.
 */
#include "train/lora.h"

#include <string.h>

#include "format/gguf.h"
#include "quant/dtype.h"
#include "util.h"

struct merge {
    const strix_model *m;
    const struct bw_dims *d;
    const struct bw_block *blk;
};

/* The projection of m's weight t (BW_*) and its layer, or -1. */
static int proj_of(const strix_model *m, const struct tensor *t, int *layer)
{
    for (int l = 0; l < m->hp.n_layer; l++) {
        const struct layer *L = &m->layers[l];
        const struct tensor *p[BW_NPROJ] = {&L->wq,     &L->wk,   &L->wv,    &L->wo,
                                            &L->w_gate, &L->w_up, &L->w_down};
        for (int k = 0; k < BW_NPROJ; k++)
            if (t == p[k]) {
                *layer = l;
                return k;
            }
    }
    return -1;
}

/* model_convert_fn: W + B A for a projection with an adapter (from the
 * trainer's F32 view of W), the weight's own bytes otherwise */
static int merged(void *user, const struct tensor *t, void **out, uint32_t *type, size_t *nbytes,
                  strix_error *err)
{
    const struct merge *mg = user;
    *out = NULL;
    *type = t->type;
    *nbytes = t->nbytes;
    int l = -1;
    const int k = proj_of(mg->m, t, &l);
    if (k < 0 || !mg->blk[l].lora_a[k])
        return STRIX_OK;
    const struct bw_block *b = &mg->blk[l];
    const float *W[BW_NPROJ] = {b->wq, b->wk, b->wv, b->wo, b->w_gate, b->w_up, b->w_down};
    const size_t rows = (size_t)t->ne[1], cols = (size_t)t->ne[0], R = (size_t)mg->d->lora_rank;
    float *w = util_malloc(rows * cols * sizeof(float));
    if (!w)
        return err_set(err, STRIX_ERR_NOMEM, "out of memory");
    memcpy(w, W[k], rows * cols * sizeof(float));
    for (size_t r = 0; r < rows; r++)
        for (size_t j = 0; j < R; j++) {
            const float bj = b->lora_b[k][r * R + j];
            const float *aj = b->lora_a[k] + j * cols;
            for (size_t c = 0; c < cols; c++)
                w[r * cols + c] += bj * aj[c];
        }
    *out = w;
    *type = DTYPE_F32;
    *nbytes = rows * cols * sizeof(float);
    return STRIX_OK;
}

int lora_write_model(const strix_model *m, const struct bw_dims *d, const struct bw_block *blk,
                     const char *path, strix_error *err)
{
    /* the source's file type stays (it names the type most weights have) */
    uint32_t ftype = 0;
    if (m->gguf)
        gguf_get_u32(m->gguf, "general.file_type", 0, &ftype, NULL);
    struct merge mg = {m, d, blk};
    return model_save_gguf(m, path, ftype, merged, &mg, err);
}
