/*
 * lora.c - the low-rank adapters of router training (router_train.c) made
 * permanent: a GGUF file of the base model whose seven block projections
 * are W + B A, in F32 (the other weights, keys and vocabulary as they
 * were), so the adapted model runs in every program that runs the base one
 * and needs no adapter support at inference.
 */
#include "train/lora.h"

#include <stdio.h>
#include <string.h>

#include "format/atomic_file.h"
#include "format/gguf.h"
#include "model/arch.h"
#include "quant/dtype.h"
#include "tokenize/vocab.h"
#include "util.h"

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

int lora_write_model(const strix_model *m, const struct bw_dims *d, const struct bw_block *blk,
                     const char *path, strix_error *err)
{
    if (m->map.from_file && atomic_file_is(path, m->map.dev, m->map.ino))
        return err_set(err, STRIX_ERR_ARG, "refusing to write '%s': it is the model's own file",
                       path);
    gguf_writer *w = gguf_writer_create();
    float **merged = util_calloc((size_t)m->n_all, sizeof(float *));
    int rc = STRIX_OK;
    if (!w || !merged) {
        rc = err_set(err, STRIX_ERR_NOMEM, "out of memory");
        goto done;
    }
    /* the source's keys (file_type included: it names the mostly-used type,
     * and the projections' type is in each tensor), then the model's own */
    for (uint64_t i = 0; m->gguf && i < gguf_n_kv(m->gguf); i++) {
        const struct gguf_kv *kv = gguf_kv_at(m->gguf, i);
        if ((rc = gguf_writer_copy_kv(w, kv))) {
            err_set(err, rc, "cannot copy the key '%.*s'", (int)kv->key.len, kv->key.ptr);
            goto done;
        }
    }
    gguf_writer_keep_first(w);
    if ((rc = gguf_writer_add_str(w, "general.architecture", m->arch)) ||
        (rc = gguf_writer_add_str(w, "general.name", m->name ? m->name : "strix")) ||
        (rc = gguf_writer_add_u32(w, "strix.lora.rank", (uint32_t)d->lora_rank))) {
        err_set(err, rc, "cannot add the general keys");
        goto done;
    }
    if ((rc = arch_save_hparams(m, w, err)) || (rc = vocab_write_gguf(m->vocab, w, err)))
        goto done;
    const int R = d->lora_rank;
    for (int i = 0; i < m->n_all; i++) {
        const struct tensor *t = m->all[i];
        int l = -1;
        const int k = proj_of(m, t, &l);
        if (k < 0 || !blk[l].lora_a[k]) {
            if ((rc = gguf_writer_add_tensor(w, t->name, t->type, (uint32_t)t->n_dims, t->ne,
                                             t->data, t->nbytes))) {
                err_set(err, rc, "cannot add tensor '%s'", t->name);
                goto done;
            }
            continue;
        }
        /* W + B A, row by row, from the trainer's F32 view of W */
        const struct bw_block *b = &blk[l];
        const float *W[BW_NPROJ] = {b->wq, b->wk, b->wv, b->wo, b->w_gate, b->w_up, b->w_down};
        const size_t rows = (size_t)t->ne[1], cols = (size_t)t->ne[0];
        float *out = merged[i] = util_malloc(rows * cols * sizeof(float));
        if (!out) {
            rc = err_set(err, STRIX_ERR_NOMEM, "out of memory");
            goto done;
        }
        memcpy(out, W[k], rows * cols * sizeof(float));
        for (size_t r = 0; r < rows; r++)
            for (int j = 0; j < R; j++) {
                const float bj = b->lora_b[k][r * (size_t)R + (size_t)j];
                const float *aj = b->lora_a[k] + (size_t)j * cols;
                for (size_t c = 0; c < cols; c++)
                    out[r * cols + c] += bj * aj[c];
            }
        if ((rc = gguf_writer_add_tensor(w, t->name, DTYPE_F32, (uint32_t)t->n_dims, t->ne, out,
                                         rows * cols * sizeof(float)))) {
            err_set(err, rc, "cannot add tensor '%s'", t->name);
            goto done;
        }
    }
    rc = gguf_writer_write(w, path, err);
done:
    for (int i = 0; merged && i < m->n_all; i++)
        util_free(merged[i]);
    util_free(merged);
    gguf_writer_free(w);
    return rc;
}
