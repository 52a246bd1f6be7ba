/*
 * synth.c - random-weight models of any Llama shape, for speed work and for
 * tests against other engines when no trained model of that shape exists.
 * The vocabulary is taken from an existing GGUF file. Weights are uniform with
 * variance 1/fan_in (so activations keep their scale through the layers);
 * norm weights are 1 +- 0.1. Same seed, same model.
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "dtype.h"
#include "model.h"

struct strix_synth_params strix_synth_default_params(void)
{
    struct strix_synth_params p;
    memset(&p, 0, sizeof p);
    p.n_embd = 256;
    p.n_ff = 768;
    p.n_layer = 4;
    p.n_head = 8;
    p.n_head_kv = 4;
    p.n_ctx = 2048;
    p.rope_freq_base = 10000.0f;
    p.norm_eps = 1e-5f;
    p.seed = 1;
    return p;
}

int strix_model_synth(const struct strix_synth_params *p, const char *vocab_path, strix_model **out,
                      strix_error *err)
{
    err_clear(err);
    if (!p || !vocab_path || !out)
        return err_set(err, STRIX_ERR_ARG, "NULL argument");
    *out = NULL;
    struct strix_model_params mp = strix_model_default_params();
    mp.vocab_only = 1;
    strix_model *src = NULL;
    int rc = strix_model_load(vocab_path, &mp, &src, err);
    if (rc)
        return rc;
    strix_model *m = util_calloc(1, sizeof *m);
    if (!m) {
        strix_model_free(src);
        return err_set(err, STRIX_ERR_NOMEM, "out of memory");
    }
    m->vocab = src->vocab; /* taken over */
    src->vocab = NULL;
    strix_model_free(src);
    snprintf(m->arch, sizeof m->arch, "llama");
    m->name = util_strndup("synthetic", 9);
    struct hparams *hp = &m->hp;
    hp->n_vocab = vocab_n(m->vocab);
    hp->n_embd = p->n_embd;
    hp->n_ff = p->n_ff;
    hp->n_layer = p->n_layer;
    hp->n_head = p->n_head;
    hp->n_head_kv = p->n_head_kv;
    hp->n_ctx_train = p->n_ctx;
    hp->rope_freq_base = p->rope_freq_base;
    hp->norm_eps = p->norm_eps;
    m->tied_output = 0;
    if (!m->name) {
        rc = err_set(err, STRIX_ERR_NOMEM, "out of memory");
        goto fail;
    }
    if ((rc = model_init_tables(m, err)))
        goto fail;
    size_t total = 0;
    for (int i = 0; i < m->n_all; i++) {
        struct slot s;
        model_slot(m, i, &s);
        size_t n;
        if (!util_mul_size((size_t)s.ne[0], (size_t)s.ne[1], &n) ||
            !util_add_size(total, n, &total))
            total = SIZE_MAX;
    }
    if (total > SIZE_MAX / sizeof(float) || !(m->owned = util_malloc(total * sizeof(float)))) {
        rc = err_set(err, STRIX_ERR_NOMEM, "out of memory for %zu weights", total);
        goto fail;
    }
    uint64_t state = p->seed;
    float *at = m->owned;
    for (int i = 0; i < m->n_all; i++) {
        struct slot s;
        model_slot(m, i, &s);
        const size_t n = (size_t)s.ne[0] * (size_t)s.ne[1];
        const float scale = s.n_dims == 1 ? 0.1f : sqrtf(3.0f / (float)s.ne[0]);
        for (size_t j = 0; j < n; j++)
            at[j] =
                (s.n_dims == 1 ? 1.0f : 0.0f) + scale * (2.0f * util_rng_uniform(&state) - 1.0f);
        if ((rc = model_set_tensor(&s, DTYPE_F32, s.ne, s.n_dims, at, n * sizeof(float), err)))
            goto fail;
        at += n;
    }
    *out = m;
    return STRIX_OK;
fail:
    strix_model_free(m);
    return rc;
}
