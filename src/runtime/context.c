/*
 * context.c - a decoding context: creation, the KV cache's cells and
 * sequences, and the decode calls that check a batch, give its tokens cells
 * and run the forward pass (forward.c).
 *
 * Each output element is computed with the same kernel and summation order
 * whether a token arrives alone or in a batch, and whatever the thread
 * count: batched and one-by-one decoding give identical logits, and a seed
 * gives the same text at any thread count.
 */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <string.h>
#include <unistd.h>

#include "runtime/context.h"
#include "quant/dtype.h"
#include "kernels/kernels.h"

struct strix_context_params strix_context_default_params(void)
{
    struct strix_context_params p = {0, 0, 0, 1};
    return p;
}

static int default_threads(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n < 1 ? 1 : (n > 64 ? 64 : (int)n);
}

int strix_context_create(const strix_model *model, const struct strix_context_params *params,
                         strix_context **out, strix_error *err)
{
    err_clear(err);
    if (!out)
        return err_set(err, STRIX_ERR_ARG, "out is NULL");
    *out = NULL;
    if (!model || model->vocab_only)
        return err_set(err, STRIX_ERR_ARG, "a context needs a model with weights");
    struct strix_context_params def = strix_context_default_params();
    if (!params)
        params = &def;
    const struct hparams *hp = &model->hp;
    if (params->n_ctx < 0 || params->n_ctx > (1 << 24) || params->n_batch < 0 ||
        params->n_batch > (1 << 16) || params->n_threads < 0 || params->n_threads > 1024 ||
        params->n_seq_max < 0 || params->n_seq_max > STRIX_SEQ_MAX)
        return err_set(err, STRIX_ERR_ARG, "context parameters out of range");
    strix_context *c = util_calloc(1, sizeof *c);
    if (!c)
        return err_set(err, STRIX_ERR_NOMEM, "out of memory");
    c->model = model;
    kern_init();
    /* default: the trained length, at most 4096 (a cache for a 128k-token
     * model would take gigabytes nobody asked for) */
    c->n_ctx = params->n_ctx ? params->n_ctx : (hp->n_ctx_train < 4096 ? hp->n_ctx_train : 4096);
    if (model->pos_embd.data && c->n_ctx > hp->n_ctx_train) {
        /* learned positions exist only up to the trained length */
        if (params->n_ctx) {
            util_free(c);
            return err_set(err, STRIX_ERR_ARG, "context %d exceeds the model's %d positions",
                           params->n_ctx, hp->n_ctx_train);
        }
        c->n_ctx = hp->n_ctx_train;
    }
    c->n_batch = params->n_batch ? params->n_batch : 512;
    if (c->n_batch > c->n_ctx)
        c->n_batch = c->n_ctx;
    c->n_threads = params->n_threads ? params->n_threads : default_threads();
    c->n_seq_max = params->n_seq_max ? params->n_seq_max : 1;
    /* cells: one per position of each sequence; when every layer is
     * windowed, a sequence needs only its window plus a batch */
    int64_t cells = (int64_t)c->n_ctx;
    int all_windowed = hp->n_swa > 0 && hp->swa_dense_every == 0;
    if (all_windowed && (int64_t)hp->n_swa + c->n_batch < cells)
        cells = (int64_t)hp->n_swa + c->n_batch;
    cells *= c->n_seq_max;
    if (cells > (1 << 26)) {
        util_free(c);
        return err_set(err, STRIX_ERR_NOMEM, "KV cache too large");
    }
    c->kv.size = (int)cells;
    const size_t nb = (size_t)c->n_batch, nt = (size_t)c->n_threads;
    const size_t q_dim = (size_t)hp->n_head * (size_t)hp->head_dim;
    const size_t kv_dim = (size_t)hp->n_head_kv * (size_t)hp->head_dim;
    const size_t embd = (size_t)hp->n_embd, ff = (size_t)hp->n_ff;
    size_t cache;
    if (!util_mul_size((size_t)hp->n_layer * (size_t)cells, kv_dim, &cache) ||
        cache > SIZE_MAX / sizeof(float) / 4) {
        util_free(c);
        return err_set(err, STRIX_ERR_NOMEM, "KV cache too large");
    }
    c->max_row = (int)(embd > ff ? embd : ff);
    if ((size_t)c->max_row < q_dim)
        c->max_row = (int)q_dim;
    c->kv.k = util_malloc(cache * sizeof(float));
    c->kv.v = util_malloc(cache * sizeof(float));
    c->kv.pos = util_malloc((size_t)cells * sizeof(int32_t));
    c->kv.seqs = util_calloc((size_t)cells, sizeof(uint64_t));
    c->tok_pos = util_malloc(nb * sizeof(int32_t));
    c->tok_seq = util_malloc(nb * sizeof(int32_t));
    c->tok_cell = util_malloc(nb * sizeof(int32_t));
    c->x = util_malloc(nb * embd * sizeof(float));
    c->xb = util_malloc(nb * (embd > q_dim ? embd : q_dim) * sizeof(float));
    c->q = util_malloc(nb * q_dim * sizeof(float));
    c->k = util_malloc(nb * kv_dim * sizeof(float));
    c->v = util_malloc(nb * kv_dim * sizeof(float));
    c->hb = util_malloc(nb * ff * sizeof(float));
    c->hb2 = util_malloc(nb * ff * sizeof(float));
    c->att_stride = attention_scratch(hp);
    c->att = util_malloc(nt * c->att_stride * sizeof(float));
    c->row = util_malloc(nt * (size_t)c->max_row * sizeof(float));
    c->act_size = mm_act_bytes(c->n_batch, c->max_row);
    c->act = util_malloc(MM_MAX * c->act_size);
    c->logits = util_malloc(nb * (size_t)hp->n_vocab * sizeof(float));
    c->logit_slot = util_malloc(nb * sizeof(int));
    c->pool = pool_create(c->n_threads);
    c->fwd = forward_scratch_create(hp, c->n_batch);
    if (!c->kv.k || !c->kv.v || !c->kv.pos || !c->kv.seqs || !c->tok_pos || !c->tok_seq ||
        !c->tok_cell || !c->x || !c->xb || !c->q || !c->k || !c->v || !c->hb || !c->hb2 ||
        !c->att || !c->row || !c->act || !c->logits || !c->logit_slot || !c->pool || !c->fwd) {
        const int n_ctx = c->n_ctx;
        strix_context_free(c);
        return err_set(err, STRIX_ERR_NOMEM, "out of memory for a context of %d positions", n_ctx);
    }
    for (int i = 0; i < c->kv.size; i++)
        c->kv.pos[i] = -1;
    *out = c;
    return STRIX_OK;
}

void strix_context_free(strix_context *c)
{
    if (!c)
        return;
    pool_free(c->pool);
    forward_scratch_free(c->fwd);
    util_free(c->kv.k);
    util_free(c->kv.v);
    util_free(c->kv.pos);
    util_free(c->kv.seqs);
    util_free(c->tok_pos);
    util_free(c->tok_seq);
    util_free(c->tok_cell);
    util_free(c->x);
    util_free(c->xb);
    util_free(c->q);
    util_free(c->k);
    util_free(c->v);
    util_free(c->hb);
    util_free(c->hb2);
    util_free(c->att);
    util_free(c->row);
    util_free(c->act);
    util_free(c->logits);
    util_free(c->logit_slot);
    util_free(c);
}

int strix_context_n_ctx(const strix_context *c)
{
    return c->n_ctx;
}

/* ---- cells and sequences ---- */

static int seq_ok(const strix_context *c, int seq)
{
    return seq >= 0 && seq < c->n_seq_max;
}

static void kv_shrink_scan(struct kv_cache *kv)
{
    while (kv->n_scan > 0 && kv->pos[kv->n_scan - 1] < 0)
        kv->n_scan--;
}

/* Removes seq's bit (every sequence when seq < 0) from the cells at
 * positions [p0, p1); frees cells left with no sequence. */
static void kv_remove(struct kv_cache *kv, int seq, int32_t p0, int32_t p1)
{
    const uint64_t bit = seq < 0 ? ~(uint64_t)0 : (uint64_t)1 << seq;
    for (int i = 0; i < kv->n_scan; i++) {
        if (kv->pos[i] < p0 || kv->pos[i] >= p1 || !(kv->seqs[i] & bit))
            continue;
        kv->seqs[i] &= ~bit;
        if (!kv->seqs[i])
            kv->pos[i] = -1;
    }
    kv_shrink_scan(kv);
}

int strix_kv_seq_pos_max(const strix_context *c, int seq)
{
    if (!c || !seq_ok(c, seq))
        return -1;
    const uint64_t bit = (uint64_t)1 << seq;
    int32_t best = -1;
    for (int i = 0; i < c->kv.n_scan; i++)
        if ((c->kv.seqs[i] & bit) && c->kv.pos[i] > best)
            best = c->kv.pos[i];
    return best;
}

int strix_kv_seq_rm(strix_context *c, int seq, int p0, int p1)
{
    if (!c || (seq >= 0 && !seq_ok(c, seq)) || p0 < 0)
        return STRIX_ERR_ARG;
    kv_remove(&c->kv, seq, p0, p1 < 0 ? INT32_MAX : p1);
    return STRIX_OK;
}

int strix_kv_seq_cp(strix_context *c, int src, int dst, int p0, int p1)
{
    if (!c || !seq_ok(c, src) || !seq_ok(c, dst) || p0 < 0)
        return STRIX_ERR_ARG;
    if (src == dst)
        return STRIX_OK;
    const int32_t hi = p1 < 0 ? INT32_MAX : p1;
    const uint64_t sb = (uint64_t)1 << src, db = (uint64_t)1 << dst;
    for (int i = 0; i < c->kv.n_scan; i++)
        if ((c->kv.seqs[i] & sb) && c->kv.pos[i] >= p0 && c->kv.pos[i] < hi)
            c->kv.seqs[i] |= db;
    return STRIX_OK;
}

int strix_kv_seq_keep(strix_context *c, int seq)
{
    if (!c || !seq_ok(c, seq))
        return STRIX_ERR_ARG;
    const uint64_t bit = (uint64_t)1 << seq;
    for (int i = 0; i < c->kv.n_scan; i++) {
        c->kv.seqs[i] &= bit;
        if (!c->kv.seqs[i])
            c->kv.pos[i] = -1;
    }
    kv_shrink_scan(&c->kv);
    return STRIX_OK;
}

int strix_kv_len(const strix_context *c)
{
    return strix_kv_seq_pos_max(c, 0) + 1;
}

int strix_kv_truncate(strix_context *c, int p, strix_error *err)
{
    if (p < 0)
        return err_set(err, STRIX_ERR_ARG, "negative position %d", p);
    kv_remove(&c->kv, 0, p, INT32_MAX);
    return STRIX_OK;
}

/* ---- decoding ---- */

/* How many cells would be free once each sequence s with first[s] >= 0 drops
 * its positions from first[s] on (and, in all-windowed models, those no
 * token can see any more), counted without changing anything. */
static int kv_free_after(const strix_context *c, const int32_t *first, int all_windowed)
{
    const struct kv_cache *kv = &c->kv;
    const int n_swa = c->model->hp.n_swa;
    int n = kv->size - kv->n_scan;
    for (int i = 0; i < kv->n_scan; i++) {
        uint64_t left = kv->pos[i] < 0 ? 0 : kv->seqs[i];
        for (int s = 0; s < c->n_seq_max && left; s++)
            if (first[s] >= 0 && (left >> s & 1) &&
                (kv->pos[i] >= first[s] || (all_windowed && kv->pos[i] < first[s] - n_swa + 1)))
                left &= ~((uint64_t)1 << s);
        n += left == 0;
    }
    return n;
}

int strix_decode_batch(strix_context *c, const strix_batch *b, strix_error *err)
{
    err_clear(err);
    if (!c || !b)
        return err_set(err, STRIX_ERR_ARG, "context or batch is NULL");
    const struct hparams *hp = &c->model->hp;
    const int n = b->n;
    if (!b->token || !b->pos || n <= 0)
        return err_set(err, STRIX_ERR_ARG, "no tokens to decode");
    if (n > c->n_batch)
        return err_set(err, STRIX_ERR_ARG, "%d tokens exceed the batch size %d", n, c->n_batch);
    /* per sequence: the first position in the batch and the next expected */
    int32_t first[STRIX_SEQ_MAX], next[STRIX_SEQ_MAX];
    for (int s = 0; s < c->n_seq_max; s++)
        first[s] = next[s] = -1;
    for (int i = 0; i < n; i++) {
        const int s = b->seq ? b->seq[i] : 0;
        const int32_t p = b->pos[i];
        if (!seq_ok(c, s))
            return err_set(err, STRIX_ERR_ARG, "token %d: sequence %d is out of range [0, %d)", i,
                           s, c->n_seq_max);
        if (b->token[i] < 0 || b->token[i] >= hp->n_vocab)
            return err_set(err, STRIX_ERR_ARG, "token id %d is out of range [0, %d)", b->token[i],
                           hp->n_vocab);
        if (p < 0 || p >= c->n_ctx)
            return err_set(err, STRIX_ERR_ARG, "position %d is outside the context size %d", p,
                           c->n_ctx);
        if (first[s] < 0) {
            const int32_t held = strix_kv_seq_pos_max(c, s) + 1;
            if (p > held)
                return err_set(err, STRIX_ERR_ARG,
                               "position %d leaves a gap after sequence %d's cache (%d)", p, s,
                               held);
            first[s] = p;
        } else if (p != next[s]) {
            return err_set(err, STRIX_ERR_ARG, "positions must be consecutive (token %d)", i);
        }
        next[s] = p + 1;
    }
    /* the batch replaces what its sequences held from its first position on;
     * windowed models also drop what no token can see any more. A batch that
     * would not fit fails before the cache changes. */
    const int all_windowed = hp->n_swa > 0 && hp->swa_dense_every == 0;
    if (kv_free_after(c, first, all_windowed) < n)
        return err_set(err, STRIX_ERR_ARG, "the KV cache is full (%d cells)", c->kv.size);
    for (int s = 0; s < c->n_seq_max; s++) {
        if (first[s] < 0)
            continue;
        kv_remove(&c->kv, s, first[s], INT32_MAX);
        if (all_windowed && first[s] - hp->n_swa + 1 > 0)
            kv_remove(&c->kv, s, 0, first[s] - hp->n_swa + 1);
    }
    /* give every token a free cell, lowest first */
    int cell = 0;
    for (int i = 0; i < n; i++) {
        while (cell < c->kv.size && c->kv.pos[cell] >= 0)
            cell++;
        STRIX_ASSERT(cell < c->kv.size); /* counted by kv_free_after */
        c->tok_cell[i] = cell;
        c->tok_pos[i] = b->pos[i];
        c->tok_seq[i] = b->seq ? b->seq[i] : 0;
        c->kv.pos[cell] = b->pos[i];
        c->kv.seqs[cell] = (uint64_t)1 << c->tok_seq[i];
        if (cell + 1 > c->kv.n_scan)
            c->kv.n_scan = cell + 1;
    }
    int n_keep = 0;
    for (int i = 0; i < n; i++) {
        const int keep = b->logits ? b->logits[i] != 0 : i == n - 1;
        c->logit_slot[i] = keep ? n_keep++ : -1;
    }
    c->n_tok = n;
    forward(c, b->token);
    c->n_out = n;
    return STRIX_OK;
}

int strix_decode(strix_context *c, const strix_token *tokens, const int32_t *pos, int n,
                 const int8_t *want_logits, strix_error *err)
{
    err_clear(err);
    if (!c || !tokens || n <= 0)
        return err_set(err, STRIX_ERR_ARG, "no tokens to decode");
    if (n > c->n_batch)
        return err_set(err, STRIX_ERR_ARG, "%d tokens exceed the batch size %d", n, c->n_batch);
    int32_t *p = c->tok_pos; /* reused as the position list; decode_batch copies it first */
    if (!pos) {
        const int32_t p0 = strix_kv_len(c);
        if (p0 + n > c->n_ctx)
            return err_set(err, STRIX_ERR_ARG, "positions up to %d exceed the context size %d",
                           p0 + n, c->n_ctx);
        pos = p;
        for (int i = 0; i < n; i++)
            p[i] = p0 + i;
    }
    strix_batch b = {n, tokens, pos, NULL, want_logits};
    return strix_decode_batch(c, &b, err);
}

const float *strix_get_logits(const strix_context *c, int i)
{
    if (i < 0)
        i += c->n_out;
    if (i < 0 || i >= c->n_out || c->logit_slot[i] < 0)
        return NULL;
    return c->logits + (size_t)c->logit_slot[i] * (size_t)c->model->hp.n_vocab;
}
