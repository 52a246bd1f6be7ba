/*
 * context.h - the decoding context as src/ sees it: the KV cache of cells,
 * scratch buffers and the thread pool, and the three pieces the forward pass
 * is built from (matmul.c, attention.c, forward.c).
 *
 * KV cache: `size` cells; cell i holds one position's keys and values for
 * every layer (k[layer][cell][kv_dim], v likewise), the position it was
 * computed at and the set of sequences that see it (a bit mask). A token of
 * sequence s at position p attends to the cells whose mask has s and whose
 * position is <= p (and > p - window for sliding-window layers). Forking a
 * sequence only sets bits, so shared prefixes are stored once.
 */
#ifndef STRIX_CONTEXT_H
#define STRIX_CONTEXT_H

#include <stdint.h>

#include "model/model.h"
#include "runtime/pool.h"

struct kv_cache {
    int size;       /* cells */
    int n_scan;     /* cells [0, n_scan) may be in use; the rest are free */
    int32_t *pos;   /* (size) position of each cell, -1 when free */
    uint64_t *seqs; /* (size) sequences that see the cell */
    float *k, *v;   /* (n_layer, size, kv_dim) */
};

struct strix_context {
    const strix_model *model;
    int n_ctx, n_batch, n_threads, n_seq_max;
    struct kv_cache kv;
    /* the batch being decoded */
    int n_tok;
    int32_t *tok_pos;  /* (n_batch) */
    int32_t *tok_seq;  /* (n_batch) */
    int32_t *tok_cell; /* (n_batch) cache cell each token writes */
    /* scratch, sized for n_batch tokens */
    float *x;   /* (n_batch, n_embd) residual stream */
    float *xb;  /* (n_batch, max(n_embd, q_dim)) normed input / attention output */
    float *q;   /* (n_batch, q_dim) */
    float *k;   /* (n_batch, kv_dim) */
    float *v;   /* (n_batch, kv_dim) */
    float *hb;  /* (n_batch, n_ff) */
    float *hb2; /* (n_batch, n_ff) */
    float *att; /* (n_threads, attention scratch floats) */
    size_t att_stride;
    float *row; /* (n_threads, max_row) dequantized weight row */
    int max_row;
    void *act;       /* activations converted for the dot products */
    size_t act_size; /* bytes */
    float *logits;   /* (n_batch, n_vocab) */
    int *logit_slot; /* (n_batch) slot in logits, -1 if not kept */
    int n_out;       /* tokens of the last decode */
    struct pool *pool;
    void *fwd; /* forward.c's scratch for the architecture variants */
};

/* ---- matmul.c: y (n, rows) = x (n, cols) * W^T for up to MM_MAX weights
 * that read the same input (q, k, v; gate, up), split over the pool as one
 * range of rows. accumulate: y += instead of y =. ---- */
#define MM_MAX 3
void mm_group(strix_context *c, int n_w, const struct tensor *const *w, float *const *y,
              const float *x, int n, int accumulate);
void mm(strix_context *c, const struct tensor *w, const float *x, float *y, int n, int accumulate);
/* Bytes of activation scratch mm needs for n tokens of up to `cols` values. */
size_t mm_act_bytes(int n, int cols);

/* ---- attention.c ---- */
struct attn_args {
    int layer;
    const float *q;     /* (n_tok, n_head * head_dim), positions applied */
    float *out;         /* (n_tok, n_head * head_dim) */
    float scale;        /* usually 1 / sqrt(head_dim) */
    int window;         /* > 0: a token sees positions (p - window, p] only */
    const float *alibi; /* (n_head) slopes, or NULL */
    float softcap;      /* > 0: scores become softcap * tanh(s / softcap) */
};
/* Attention of the context's current batch (tokens, positions, sequences)
 * over the cache cells of layer a->layer, which already hold the batch's own
 * keys and values. */
void attention(strix_context *c, const struct attn_args *a);
/* Floats of per-thread scratch attention needs. */
size_t attention_scratch(const struct hparams *hp);

/* ---- forward.c ---- */
/* Runs the model over the context's current batch (c->n_tok tokens, their
 * positions, sequences and cells set by the caller) and writes the logits
 * of the tokens whose logit_slot >= 0. */
void forward(strix_context *c, const strix_token *tokens);
/* The scratch forward() needs for n_batch tokens (NULL: out of memory). */
void *forward_scratch_create(const struct hparams *hp, int n_batch);
void forward_scratch_free(void *fwd);

#endif
