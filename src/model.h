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
    const char *name;   /* borrowed (file) or owned by the model */
    uint32_t type;      /* enum dtype */
    int n_dims;
    int64_t ne[4];
    const void *data;   /* borrowed from the mapping, or points into model->owned */
    size_t nbytes;
    size_t row_bytes;   /* bytes of one row of ne[0] elements */
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
    float norm_eps;
};

struct strix_model {
    char arch[32];
    char *name;
    struct hparams hp;
    int vocab_only;
    int tied_output;
    struct vocab *vocab;        /* NULL when the model has none */
    struct tensor tok_embd;     /* (n_vocab rows, n_embd) */
    struct tensor output_norm;  /* (n_embd) */
    struct tensor output;       /* (n_vocab rows, n_embd); == tok_embd when tied */
    struct layer *layers;       /* n_layer */
    struct tensor *all;         /* every tensor, for info and saving */
    int n_all;
    struct util_map map;        /* the file, when its bytes are used in place */
    void *owned;                /* weights converted at load (llama2.c int8 etc.) */
    struct gguf *gguf;          /* parsed header of a GGUF file, else NULL */
};

const struct vocab *model_vocab(const strix_model *m);

#endif
