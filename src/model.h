/*
 * model.h - the loaded model as the rest of src/ sees it: hyperparameters,
 * the weight table and the vocabulary.
 */
#ifndef STRIX_MODEL_H
#define STRIX_MODEL_H

#include <stddef.h>
#include <stdint.h>

#include "strix.h"
#include "util.h"
#include "vocab.h"

/* A 2-D weight (or 1-D vector): rows of ne[0] elements of `type`. */
struct tensor {
    char name[64];
    uint32_t type; /* enum dtype */
    int n_dims;
    int64_t ne[4];
    const void *data; /* borrowed from the mapping, or points into model->owned */
    size_t nbytes;
    size_t row_bytes; /* bytes of one row of ne[0] elements */
};

struct layer {
    struct tensor attn_norm; /* (n_embd) */
    struct tensor wq;        /* (n_head * head_dim rows, n_embd) */
    struct tensor wk;        /* (n_head_kv * head_dim, n_embd) */
    struct tensor wv;        /* (n_head_kv * head_dim, n_embd) */
    struct tensor wo;        /* (n_embd, n_head * head_dim) */
    struct tensor ffn_norm;  /* (n_embd) */
    struct tensor w_gate;    /* (n_ff, n_embd) */
    struct tensor w_up;      /* (n_ff, n_embd) */
    struct tensor w_down;    /* (n_embd, n_ff) */
};

struct hparams {
    int n_vocab, n_embd, n_ff, n_layer, n_head, n_head_kv, head_dim, n_rot, n_ctx_train;
    int rope_neox;
    float rope_freq_base;
    int n_swa;           /* sliding-window length, 0: every layer sees all */
    int swa_dense_every; /* with n_swa: layers l with l % k == k - 1 see all;
                            0: every layer is windowed */
    float norm_eps;
};

struct strix_model {
    char arch[32];
    char *name;
    struct hparams hp;
    int vocab_only;
    int tied_output;
    struct vocab *vocab;       /* NULL when the model has none */
    struct tensor tok_embd;    /* (n_vocab rows, n_embd) */
    struct tensor output_norm; /* (n_embd) */
    struct tensor output;      /* (n_vocab rows, n_embd); == tok_embd when tied */
    struct layer *layers;      /* n_layer */
    struct tensor **all;       /* every weight in file order of the slots (see model.c) */
    int n_all;
    struct util_map map; /* the file, when its bytes are used in place */
    void *owned;         /* weights converted at load (llama2.c int8 etc.) */
    struct gguf *gguf;   /* parsed header of a GGUF file, else NULL */
};

const struct vocab *model_vocab(const strix_model *m);

/* The attention window of layer l: 0 for full attention. */
static inline int hp_layer_window(const struct hparams *hp, int l)
{
    if (hp->n_swa <= 0)
        return 0;
    if (hp->swa_dense_every > 0 && l % hp->swa_dense_every == hp->swa_dense_every - 1)
        return 0;
    return hp->n_swa;
}

/*
 * The weight slots of the architecture, in GGUF naming order: slot i has a
 * name ("blk.3.attn_q.weight"), the tensor struct it fills and the shape it
 * must have. Slots are 0 .. model_n_slots(m)-1; the output slot exists only
 * when the output is not tied to the embeddings.
 */
struct slot {
    char name[64];
    struct tensor *t;
    int n_dims;
    int64_t ne[2];
};
int model_n_slots(const strix_model *m);
void model_slot(strix_model *m, int i, struct slot *s);

/* Checks hyperparameters, allocates m->layers and m->all. */
int model_init_tables(strix_model *m, strix_error *err);
/* Points t at data of `type` and shape ne (which must match the slot), after
 * checking that strix can compute with the type. */
int model_set_tensor(const struct slot *s, uint32_t type, const int64_t *ne, int n_dims,
                     const void *data, size_t nbytes, strix_error *err);

/* Loads the model whose file bytes are in m->map (GGUF or llama2.c), into a
 * zeroed model. On failure the caller frees m. Fuzzers call it on raw bytes. */
int model_load_map(strix_model *m, const struct strix_model_params *params, strix_error *err);

/* llama2.c checkpoints (l2c.c): parses m->map as a legacy, v1 or v2 file. */
int l2c_load(strix_model *m, const char *vocab_path, strix_error *err);
/* 1 if the bytes look like a llama2.c checkpoint header (legacy or ak42). */
int l2c_probe(const uint8_t *buf, size_t len);

#endif
