/*
 * context.h - the decoding context as src/ sees it: the KV cache, scratch
 * buffers and the thread pool, and the three pieces the forward pass is
 * built from (matmul.c, attention.c, forward.c).
 *
 * KV cache: each layer owns its cells (struct kv_layer): cell i of layer l
 * holds one token's keys and values for that layer, the position it was
 * computed at and the set of sequences that see it (a bit mask). A token of
 * sequence s at position p attends, in layer l, to layer l's cells whose
 * mask has s and whose position is <= p (and > p - window for
 * sliding-window layers). Forking a sequence only sets bits, so shared
 * prefixes are stored once.
 *
 * Attention visits a layer's cells in position order (kv_layer.order), so
 * a token's result depends only on the keys and values it sees, never on
 * the cells they occupy: after rollbacks, evictions and interleaved
 * sequences, logits equal those of a fresh context bit for bit.
 *
 * Today every token gets a cell in every layer, so the layers' tables are
 * identical. They are kept apart so that a token can hold no entry in a
 * layer it skipped (dynamic depth): kv_evict() drops one entry from one
 * layer, the freed cell is reused by that layer's next token, attention in
 * that layer simply no longer sees it, and a token whose tok_cell is -1 for
 * a layer writes nothing there. Each layer's keys and values are a separate
 * allocation of kv_layer.size cells, so a layer's capacity can later be
 * sized (or paged) on its own.
 */
#ifndef STRIX_CONTEXT_H
#define STRIX_CONTEXT_H

#include <stdint.h>

#include "model/model.h"
#include "pool.h"

struct kv_layer {
    int size;       /* cells */
    int n_scan;     /* cells [0, n_scan) may be in use; the rest are free */
    int n_used;     /* cells in use */
    int32_t *pos;   /* (size) position of each cell, -1 when free */
    uint64_t *seqs; /* (size) sequences that see the cell */
    int32_t *order; /* (n_used) the cells in use by ascending position: attention
                       visits them so, so a token's result does not depend on
                       which cells its keys landed in */
    uint8_t *k, *v; /* (cap) rows of kv_cache.row_k / row_v bytes: kv_dim values of
                       type_k / type_v each */
    int cap;        /* cells with key/value memory: size, or fewer when the
                       cache grows (kv_grow) */
};

struct kv_cache {
    int n_layer;
    struct kv_layer *layer; /* (n_layer) */
    /* highest position each sequence holds in any layer, -1 if none (kept
     * up to date by every change, so decoding need not scan) */
    int32_t pos_max[STRIX_SEQ_MAX];
    /* (size) shadow cell table for the dry run of a windowed batch */
    int32_t *sim_pos;
    uint64_t *sim_seqs;
    /* growing cache (context params kv_grow): keys and values of a layer are
     * reallocated as its highest cell in use needs, before a decode starts */
    int grow;
    int v_in_k; /* values share the keys' memory (MLA) */
    /* fixed-size cache of 128 KiB to 2 MiB: every layer's keys and values
     * in this one block (a huge page where the OS gives one: one fault, not
     * one per 4 KiB page as cells fill); NULL: each layer's own blocks */
    uint8_t *block;
    size_t kv_dim;
    uint32_t type_k, type_v; /* element types (enum dtype: F32, F16, Q8_0, Q4_0) */
    size_t row_k, row_v;     /* bytes of one cell's keys, values */
    uint64_t bytes;      /* key/value memory held (sizes given to the allocator) */
    uint64_t bytes_peak; /* its highest after a decode (a decode of n tokens holds
                            room for n more cells per layer while it runs) */
};

/* Drops sequence seq's entry at position pos from layer `layer` only (the
 * dynamic-depth seam: a token that skipped the layer); a cell no sequence
 * sees any more is freed for the layer's next token. Returns 1 if an entry
 * was dropped. */
int kv_evict(struct kv_cache *kv, int layer, int seq, int32_t pos);
/* Entries (cells in use) of one layer. */
int kv_layer_used(const struct kv_cache *kv, int layer);
/* Frees cell `cell` of layer `layer` (its token skipped the layer), keeping
 * the sequences' highest positions as they are. */
void kv_drop_cell(struct kv_cache *kv, int layer, int cell);
/* Gives n tokens the lowest free cells of one layer (cells written); 0 if
 * the layer runs out. */
int kv_layer_place(struct kv_cache *kv, int layer, int n, const int32_t *pos, const int32_t *seq,
                   int32_t *cells);

struct strix_context {
    const strix_model *model;
    int n_ctx, n_batch, n_threads, n_seq_max;
    struct kv_cache kv;
    /* the chunk being decoded (at most n_batch tokens of the caller's batch) */
    int n_tok;
    int tok_off;       /* index of the chunk's first token in the caller's batch */
    int32_t *tok_pos;  /* (n_batch) */
    int32_t *tok_seq;  /* (n_batch) */
    int32_t *tok_cell; /* (n_layer, n_batch) cell each token writes in each
                          layer; -1: the token stores nothing there */
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
    /* outputs of the last decode call: slots of the whole batch */
    float *logits_buf; /* (logits_cap, n_vocab) */
    int *slot_buf;     /* (slot_cap) row of each token in logits_buf, -1 if not kept */
    int logits_cap, slot_cap;
    int n_out; /* tokens of the last decode */
    /* the current chunk's view of them, which forward() writes: logit_slot[t]
     * >= 0 for the chunk's tokens that keep logits, written in order from
     * logits */
    float *logits;
    const int *logit_slot;
    struct pool *pool;     /* own_pool, or the one shared through the params */
    struct pool *own_pool; /* NULL when the pool is shared */
    void *fwd;             /* forward.c's scratch for the architecture variants */
    /* observation hook (context params) and a copy of each layer's input */
    strix_layer_hook on_layer;
    void *on_layer_user;
    float *hook_in; /* (n_batch, n_embd) when on_layer is set */
    /* static layer mask (strix_context_set_layer_skip): (n_layer), non-zero:
     * the block is skipped; NULL: none */
    uint8_t *layer_skip;
    struct route *route; /* per-token layer skipping (route.c), NULL: none */
    /* observation of each matrix product's input (context params) */
    void (*on_matmul)(void *user, const char *weight, const float *x, int n_tokens, int n_cols);
    void *on_matmul_user;
    /* pipeline stages (stage.c): the current chunk's residual stream entering
     * the model's first block (NULL: embed the tokens) and leaving its last
     * (NULL: final norm and logits), (n_tok, n_embd) each */
    const float *hidden_in;
    float *hidden_out;
    /* remote tail (stage.c; tail.decode NULL: none) and its per-chunk
     * buffers */
    struct strix_tail_params tail;
    float *tail_hidden; /* (n_batch, n_embd) */
    int8_t *tail_want;  /* (n_batch) */
    /* recurrent models (mamba): the per-layer, per-sequence states that
     * replace keys and values (ssm.h); the cells then only track positions,
     * a window of n_state_keep */
    struct ssm_state *ssm;
    int n_state_keep;
    struct retention *ret; /* retnet's retention scratch (retention.h), else NULL */
    struct yoco *yoco;     /* yoco's cross-decoder batch (yoco.h), else NULL */
};

/* strix_decode_batch with the residual stream entering the stage (in) and
 * leaving it (out), (batch->n, n_embd) each or NULL (see strix_decode_hidden;
 * stage.c checks the arguments). */
int context_decode(strix_context *c, const strix_batch *b, const float *in, float *out,
                   strix_error *err);

/* stage.c, the remote tail: hands the cache change (kind, seq, dst, p0, p1)
 * just made to the tail's cache_op (STRIX_OK when there is none), and the
 * chunk just computed (tokens [off, off + n) of b, its rows' logits from
 * row `kept` of the logits buffer on) to its decode. */
int stage_cache_op(strix_context *c, int kind, int seq, int dst, int p0, int p1,
                   strix_error *err);
int stage_tail_chunk(strix_context *c, const strix_batch *b, int off, int n, int kept, int last,
                     strix_error *err);

/* The observation hook around block l of the current chunk: call
 * context_hook_in before the block changes c->x, context_hook_out after. */
void context_hook_in(strix_context *c);
void context_hook_out(strix_context *c, int l);

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
    int layer;          /* the cache layer: the block less the stage's first block */
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
/* Stores one token's keys and values (kv_dim floats each; v NULL: values
 * live in the keys, MLA) in cell `cell` of cache layer `layer`, converted to
 * the cache's types. */
void attention_store(strix_context *c, int layer, int cell, const float *k, const float *v);

/* ---- route.c: dynamic depth. route_enter moves the chunk's tokens that
 * run layer l to the front of the batch (x, positions, sequences, cells and
 * the rows of `rows`, width floats per token), frees the cells of the others
 * in layer l and returns how many run; route_leave puts everything back
 * (the skipped tokens' x unchanged). Without a route: n_tok, nothing moves. */
int route_enter(strix_context *c, int l, float *rows, int width);
void route_leave(strix_context *c, int l, float *rows, int width);
void route_free(struct route *r);

/* ---- forward.c ---- */
/* Runs the model over the context's current chunk (c->n_tok tokens, their
 * positions, sequences and cells set by the caller) and writes the logits
 * of the tokens whose logit_slot >= 0. */
void forward(strix_context *c, const strix_token *tokens);
/* The scratch forward() needs for n_batch tokens (NULL: out of memory). */
void *forward_scratch_create(const struct hparams *hp, int n_batch);
void forward_scratch_free(void *fwd);

#endif
