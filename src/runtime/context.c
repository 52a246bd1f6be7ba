/*
 * context.c - a decoding context: creation, the KV cache's per-layer cells
 * and sequences, and the decode calls that check a batch, make sure it fits,
 * split it into chunks of at most n_batch tokens, give the tokens cells and
 * run the forward pass (forward.c) on each chunk. Also the observation hook
 * the forward pass calls around each block.
 *
 * A decode changes nothing until every check has passed, the room in the
 * cache included (kv_fits), so a failed call leaves the cache and the last
 * logits as they were.
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
#include "runtime/retention.h"
#include "runtime/ffn_var.h"
#include "runtime/ssm.h"
#include "runtime/yoco.h"
#include "quant/dtype.h"
#include "kernels/kernels.h"
#include "kernels/kernels_kv.h"

UTIL_PARAMS_DEFINE(context, .n_seq_max = 1)

static int default_threads(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n < 1 ? 1 : (n > 64 ? 64 : (int)n);
}

/* ---- the shared thread pool (the public handle over pool.c) ---- */

struct strix_pool {
    struct pool *pool;
};

int strix_pool_create(int n_threads, strix_pool **out, strix_error *err)
{
    err_clear(err);
    if (!out)
        return err_set(err, STRIX_ERR_ARG, "out is NULL");
    *out = NULL;
    if (n_threads < 0 || n_threads > 1024)
        return err_set(err, STRIX_ERR_ARG, "%d threads: expected 0 .. 1024", n_threads);
    strix_pool *sp = util_calloc(1, sizeof *sp);
    if (!sp)
        return err_set(err, STRIX_ERR_NOMEM, "out of memory");
    sp->pool = pool_create(n_threads ? n_threads : default_threads());
    if (!sp->pool) {
        util_free(sp);
        return err_set(err, STRIX_ERR_NOMEM, "cannot start %d threads", n_threads);
    }
    *out = sp;
    return STRIX_OK;
}

void strix_pool_free(strix_pool *sp)
{
    if (!sp)
        return;
    pool_free(sp->pool);
    util_free(sp);
}

int strix_pool_n_threads(const strix_pool *sp)
{
    return sp ? pool_n_threads(sp->pool) : 0;
}

/* ---- creation ---- */

static void kv_free(struct kv_cache *kv)
{
    for (int l = 0; kv->layer && l < kv->n_layer; l++) {
        util_free(kv->layer[l].pos);
        util_free(kv->layer[l].seqs);
        util_free(kv->layer[l].order);
        if (kv->block)
            continue;
        if (kv->layer[l].v != kv->layer[l].k)
            util_free(kv->layer[l].v);
        util_free(kv->layer[l].k);
    }
    util_free(kv->block);
    util_free(kv->layer);
    util_free(kv->sim_pos);
    util_free(kv->sim_seqs);
    memset(kv, 0, sizeof *kv);
}

/* Each layer gets its own table and its own keys and values (none yet when
 * the cache grows); with v_in_k (MLA) the values are the keys' first values
 * and share their memory. */
static int kv_alloc(struct kv_cache *kv, int n_layer, int cells, size_t kv_dim, int v_in_k,
                    int grow, uint32_t type_k, uint32_t type_v)
{
    kv->n_layer = n_layer;
    kv->grow = grow;
    kv->v_in_k = v_in_k;
    kv->kv_dim = kv_dim;
    kv->type_k = type_k;
    kv->type_v = v_in_k ? type_k : type_v;
    kv->row_k = kern_kv_row_bytes(type_k, (int)kv_dim);
    kv->row_v = kern_kv_row_bytes(kv->type_v, (int)kv_dim);
    kv->layer = util_calloc((size_t)n_layer, sizeof *kv->layer);
    kv->sim_pos = util_malloc((size_t)cells * sizeof(int32_t));
    kv->sim_seqs = util_malloc((size_t)cells * sizeof(uint64_t));
    if (!kv->layer || !kv->sim_pos || !kv->sim_seqs)
        return 0;
    const size_t cell_bytes = kv->row_k + (v_in_k ? 0 : kv->row_v), huge = (size_t)2 << 20;
    const size_t all = (size_t)n_layer * (size_t)cells * cell_bytes;
    if (!grow && all >= ((size_t)128 << 10) && all < huge && !(kv->block = util_malloc_huge(huge)))
        return 0;
    for (int l = 0; l < n_layer; l++) {
        struct kv_layer *L = &kv->layer[l];
        L->size = cells;
        L->pos = util_malloc((size_t)cells * sizeof(int32_t));
        L->seqs = util_calloc((size_t)cells, sizeof(uint64_t));
        L->order = util_malloc((size_t)cells * sizeof(int32_t));
        L->cap = grow ? 0 : cells;
        if (!grow) {
            /* offered to huge pages (2 MiB and up): long contexts scan them */
            if (kv->block) {
                L->k = kv->block + (size_t)l * (size_t)cells * cell_bytes;
                L->v = v_in_k ? L->k : L->k + (size_t)cells * kv->row_k;
            } else {
                L->k = util_malloc_huge((size_t)cells * kv->row_k);
                L->v = v_in_k ? L->k : util_malloc_huge((size_t)cells * kv->row_v);
            }
            kv->bytes += (uint64_t)cells * (kv->row_k + (v_in_k ? 0 : kv->row_v));
        }
        if (!L->pos || !L->seqs || !L->order || (!grow && (!L->k || !L->v)))
            return 0;
        for (int i = 0; i < cells; i++)
            L->pos[i] = -1;
    }
    for (int s = 0; s < STRIX_SEQ_MAX; s++)
        kv->pos_max[s] = -1;
    kv->bytes_peak = kv->bytes;
    return 1;
}

/* Growing cache: gives each layer key/value memory for the n more cells a
 * decode may place (cells go to the lowest free ones, so the highest in use
 * stays below max(n_scan, n_used + n)). 0: out of memory, nothing lost. */
static int kv_reserve(struct kv_cache *kv, int n)
{
    if (!kv->grow)
        return 1;
    for (int l = 0; l < kv->n_layer; l++) {
        struct kv_layer *L = &kv->layer[l];
        int need = L->n_used + n > L->n_scan ? L->n_used + n : L->n_scan;
        if (need > L->size)
            need = L->size;
        if (need <= L->cap)
            continue;
        int cap = L->cap + L->cap / 4 > need ? L->cap + L->cap / 4 : need;
        cap = (cap + 15) / 16 * 16;
        cap = cap > L->size ? L->size : cap;
        uint8_t *k = util_realloc(L->k, (size_t)cap * kv->row_k);
        if (!k)
            return 0;
        L->k = k;
        if (kv->v_in_k) {
            L->v = k;
        } else {
            uint8_t *v = util_realloc(L->v, (size_t)cap * kv->row_v);
            if (!v)
                return 0;
            L->v = v;
        }
        kv->bytes += (uint64_t)(cap - L->cap) * (kv->row_k + (kv->v_in_k ? 0 : kv->row_v));
        L->cap = cap;
    }
    return 1;
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
    struct strix_context_params cp;
    int prc = UTIL_PARAMS_READ(context, &cp, params, err);
    if (prc)
        return prc;
    params = &cp;
    const struct hparams *hp = &model->hp;
    if (params->n_ctx < 0 || params->n_ctx > (1 << 24) || params->n_batch < 0 ||
        params->n_batch > (1 << 16) || params->n_threads < 0 || params->n_threads > 1024 ||
        params->n_seq_max < 0 || params->n_seq_max > STRIX_SEQ_MAX || params->n_cells < 0 ||
        params->n_cells > (1 << 26) || params->n_state_keep < 0 || params->n_state_keep > 4096)
        return err_set(err, STRIX_ERR_ARG, "context parameters out of range");
    const size_t kv_dim = hp->ssm && !hp->yoco ? 0 : (size_t)hp->n_head_kv * (size_t)hp->head_dim;
    const uint32_t type_k = (uint32_t)params->type_k, type_v = (uint32_t)params->type_v;
    if (params->type_k < 0 || params->type_v < 0 || !kern_kv_type_ok(type_k) ||
        !kern_kv_type_ok(type_v))
        return err_set(err, STRIX_ERR_ARG, "KV cache type %d is not one of f32, f16, q8_0, q4_0",
                       kern_kv_type_ok(type_k) ? params->type_v : params->type_k);
    if ((type_k || type_v) && (hp->mla || hp->ssm))
        return err_set(err, STRIX_ERR_UNSUPPORTED,
                       "%s models keep an F32 cache only (asked for keys %s, values %s)",
                       hp->mla ? "MLA" : "recurrent", strix_cache_type_name(params->type_k),
                       strix_cache_type_name(params->type_v));
    for (int i = 0; i < 2; i++) {
        const uint32_t t = i ? type_v : type_k;
        if ((t == DTYPE_Q8_0 || t == DTYPE_Q4_0) && hp->head_dim % 32 != 0)
            return err_set(err, STRIX_ERR_UNSUPPORTED,
                           "a %s cache of %s needs a head size that is a multiple of 32 (the "
                           "model's is %d)",
                           strix_cache_type_name((int)t), i ? "values" : "keys", hp->head_dim);
    }
    /* bytes one position of one sequence takes in all layers' keys and values */
    const double pos_bytes =
        (double)(hp->yoco ? 1 : model->layer_end - model->layer_first) *
        (double)(kern_kv_row_bytes(type_k, (int)kv_dim) + kern_kv_row_bytes(type_v, (int)kv_dim));
    strix_context *c = util_calloc(1, sizeof *c);
    if (!c)
        return err_set(err, STRIX_ERR_NOMEM, "out of memory");
    c->model = model;
    kern_init();
    /* default: the trained length, as far as the keys and values of all
     * n_seq_max sequences fit in 1 GiB, and at least 4096 positions (a cache
     * for a 128k-token model would take gigabytes nobody asked for); a
     * larger n_ctx must be asked for */
    if (params->n_ctx) {
        c->n_ctx = params->n_ctx;
    } else {
        const double seqs = params->n_seq_max > 1 ? params->n_seq_max : 1;
        const double fit =
            pos_bytes > 0 ? (double)(1 << 30) / (pos_bytes * seqs) : (double)(1 << 24);
        const int most = fit < 4096 ? 4096 : fit > (1 << 24) ? (1 << 24) : (int)fit;
        c->n_ctx = hp->n_ctx_train < most ? hp->n_ctx_train : most;
    }
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
    if (params->pool) {
        c->pool = params->pool->pool;
        c->n_threads = pool_n_threads(c->pool);
    } else {
        c->n_threads = params->n_threads ? params->n_threads : default_threads();
    }
    c->n_seq_max = params->n_seq_max ? params->n_seq_max : 1;
    c->on_layer = params->on_layer;
    c->on_layer_user = params->on_layer_user;
    c->on_matmul = params->on_matmul;
    c->on_matmul_user = params->on_matmul_user;
    /* cells: one per position of each sequence; when every layer is
     * windowed, a sequence needs only its window plus a batch */
    int64_t cells = (int64_t)c->n_ctx;
    c->n_state_keep = params->n_state_keep ? params->n_state_keep : 16;
    /* yoco: a state for the self-decoder and one full layer of keys and values */
    const int recurrent = hp->ssm && !hp->yoco;
    int all_windowed = (hp->n_swa > 0 && hp->swa_dense_every == 0) || recurrent;
    const int window = recurrent ? c->n_state_keep : hp->n_swa; /* mamba: the kept states */
    if (all_windowed && (int64_t)window + c->n_batch < cells)
        cells = (int64_t)window + c->n_batch;
    cells *= c->n_seq_max;
    if (params->n_cells)
        cells = params->n_cells;
    const size_t nb = (size_t)c->n_batch, nt = (size_t)c->n_threads;
    const size_t q_dim = (size_t)hp->n_head * (size_t)hp->head_dim;
    const size_t embd = (size_t)hp->n_embd, ff = (size_t)hp->n_ff;
    size_t cache;
    const int n_stage = hp->yoco ? 1 : model->layer_end - model->layer_first; /* blocks with a cache */
    if (cells > (1 << 26) || !util_mul_size((size_t)n_stage * (size_t)cells, kv_dim, &cache) ||
        cache > SIZE_MAX / sizeof(float) / 4 || (double)cells * pos_bytes > (double)SIZE_MAX / 4) {
        util_free(c);
        return err_set(err, STRIX_ERR_NOMEM, "KV cache too large");
    }
    c->max_row = (int)(embd > ff ? embd : ff);
    if ((size_t)c->max_row < q_dim)
        c->max_row = (int)q_dim;
    if ((hp->retnet || hp->yoco) && c->max_row < hp->n_head * hp->ret_dv) /* W_O: n_head d_v */
        c->max_row = hp->n_head * hp->ret_dv;
    if ((size_t)c->max_row < ffn_kan_max_row(hp)) /* KAN's spline inputs (ffn_kan.c) */
        c->max_row = (int)ffn_kan_max_row(hp);
    int kv_ok = kv_alloc(&c->kv, n_stage, (int)cells, kv_dim, hp->mla, params->kv_grow != 0,
                         type_k, type_v);
    c->tok_pos = util_malloc(nb * sizeof(int32_t));
    c->tok_seq = util_malloc(nb * sizeof(int32_t));
    c->tok_cell = util_malloc((size_t)n_stage * nb * sizeof(int32_t));
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
    c->logits_buf = util_malloc(nb * (size_t)hp->n_vocab * sizeof(float));
    c->slot_buf = util_malloc(nb * sizeof(int));
    c->logits_cap = c->slot_cap = c->n_batch;
    if (c->on_layer)
        c->hook_in = util_malloc(nb * embd * sizeof(float));
    if (!c->pool)
        c->pool = c->own_pool = pool_create(c->n_threads);
    c->fwd = forward_scratch_create(hp, c->n_batch);
    if (hp->ssm)
        c->ssm = ssm_state_create(model, c->n_seq_max, c->n_state_keep, c->n_batch);
    if (hp->ssm && !c->ssm)
        kv_ok = 0; /* out of memory for the states */
    if ((hp->retnet || hp->yoco) && !(c->ret = retention_create(model, c->n_batch, c->n_threads)))
        kv_ok = 0;
    if (hp->yoco && !(c->yoco = yoco_create(c->n_batch)))
        kv_ok = 0;
    if (!kv_ok || !c->tok_pos || !c->tok_seq || !c->tok_cell || !c->x || !c->xb || !c->q ||
        !c->k || !c->v || !c->hb || !c->hb2 || !c->att || !c->row || !c->act || !c->logits_buf ||
        !c->slot_buf || (c->on_layer && !c->hook_in) || !c->pool || !c->fwd) {
        const int n_ctx = c->n_ctx;
        strix_context_free(c);
        return err_set(err, STRIX_ERR_NOMEM, "out of memory for a context of %d positions", n_ctx);
    }
    *out = c;
    return STRIX_OK;
}

void strix_context_free(strix_context *c)
{
    if (!c)
        return;
    pool_free(c->own_pool);
    forward_scratch_free(c->fwd);
    route_free(c->route);
    ssm_state_free(c->ssm);
    retention_free(c->ret);
    yoco_free(c->yoco);
    kv_free(&c->kv);
    util_free(c->tok_pos);
    util_free(c->tok_seq);
    util_free(c->tok_cell);
    util_free(c->layer_skip);
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
    util_free(c->logits_buf);
    util_free(c->slot_buf);
    util_free(c->hook_in);
    util_free(c->tail_hidden);
    util_free(c->tail_want);
    util_free(c);
}

int strix_context_n_ctx(const strix_context *c)
{
    return c ? c->n_ctx : 0;
}

int strix_context_n_seq_max(const strix_context *c)
{
    return c ? c->n_seq_max : 0;
}

/* ---- static layer skipping ---- */

int strix_context_set_layer_skip(strix_context *c, const int *layers, int n, strix_error *err)
{
    err_clear(err);
    if (!c || (n > 0 && !layers) || n < 0)
        return err_set(err, STRIX_ERR_ARG, "NULL argument or negative count");
    const int n_layer = c->model->hp.n_layer;
    for (int i = 0; i < n; i++)
        if (layers[i] < 0 || layers[i] >= n_layer)
            return err_set(err, STRIX_ERR_ARG, "layer %d does not exist (the model has 0 .. %d)",
                           layers[i], n_layer - 1);
    if (c->tail.decode)
        return err_set(err, STRIX_ERR_UNSUPPORTED,
                       "a context with a remote tail cannot skip layers");
    uint8_t *mask = NULL;
    if (n > 0 && !(mask = util_calloc((size_t)n_layer, 1)))
        return err_set(err, STRIX_ERR_NOMEM, "out of memory");
    for (int i = 0; i < n; i++)
        mask[layers[i]] = 1;
    util_free(c->layer_skip);
    c->layer_skip = mask;
    strix_kv_seq_rm(c, -1, 0, -1); /* cached keys were made by the old layer set */
    return STRIX_OK;
}

/* ---- cells and sequences ---- */

static int seq_ok(const strix_context *c, int seq)
{
    return seq >= 0 && seq < c->n_seq_max;
}

static void layer_shrink_scan(struct kv_layer *L)
{
    while (L->n_scan > 0 && L->pos[L->n_scan - 1] < 0)
        L->n_scan--;
}

/* Removes the sequences in `bits` from layer L's cells at positions
 * [p0, p1); frees cells left with no sequence (and drops them from the
 * position order, when the layer keeps one). Returns whether any cell
 * changed. */
static int layer_remove(struct kv_layer *L, uint64_t bits, int32_t p0, int32_t p1)
{
    int freed = 0, changed = 0;
    for (int i = 0; i < L->n_scan; i++) {
        if (L->pos[i] < p0 || L->pos[i] >= p1 || !(L->seqs[i] & bits))
            continue;
        changed = 1;
        L->seqs[i] &= ~bits;
        if (!L->seqs[i]) {
            L->pos[i] = -1;
            freed++;
        }
    }
    if (freed && L->order) {
        int k = 0;
        for (int j = 0; j < L->n_used; j++)
            if (L->pos[L->order[j]] >= 0)
                L->order[k++] = L->order[j];
    }
    L->n_used -= freed;
    layer_shrink_scan(L);
    return changed;
}

/* Recomputes the highest position of the sequences in `which`. */
static void kv_recount(struct kv_cache *kv, uint64_t which)
{
    for (int s = 0; s < STRIX_SEQ_MAX; s++)
        if (which >> s & 1)
            kv->pos_max[s] = -1;
    for (int l = 0; l < kv->n_layer; l++) {
        const struct kv_layer *L = &kv->layer[l];
        for (int i = 0; i < L->n_scan; i++)
            for (uint64_t m = L->seqs[i] & which; m; m &= m - 1) {
                const int s = __builtin_ctzll(m);
                if (L->pos[i] > kv->pos_max[s])
                    kv->pos_max[s] = L->pos[i];
            }
    }
}

/* Removes seq's entries (every sequence's when seq < 0) at positions
 * [p0, p1) from every layer. */
static void kv_remove(struct kv_cache *kv, int seq, int32_t p0, int32_t p1)
{
    const uint64_t bits = seq < 0 ? ~(uint64_t)0 : (uint64_t)1 << seq;
    int changed = 0;
    for (int l = 0; l < kv->n_layer; l++)
        changed |= layer_remove(&kv->layer[l], bits, p0, p1);
    if (changed)
        kv_recount(kv, bits);
}

int kv_evict(struct kv_cache *kv, int layer, int seq, int32_t pos)
{
    STRIX_ASSERT(layer >= 0 && layer < kv->n_layer && seq >= 0 && seq < STRIX_SEQ_MAX);
    struct kv_layer *L = &kv->layer[layer];
    const uint64_t bit = (uint64_t)1 << seq;
    for (int i = 0; i < L->n_scan; i++)
        if (L->pos[i] == pos && (L->seqs[i] & bit)) {
            layer_remove(L, bit, pos, pos + 1);
            kv_recount(kv, bit);
            return 1;
        }
    return 0;
}

static int layer_place(struct kv_layer *L, int n, const int32_t *pos, const int32_t *seq,
                       int32_t *cells);

int kv_layer_place(struct kv_cache *kv, int layer, int n, const int32_t *pos, const int32_t *seq,
                   int32_t *cells)
{
    return layer_place(&kv->layer[layer], n, pos, seq, cells);
}

/* Growing cache, after a decode: each layer keeps memory for its cells up to
 * the highest in use (16-cell steps); shrinking never fails (a refused
 * realloc keeps the larger block). */
static void kv_shrink(struct kv_cache *kv)
{
    if (!kv->grow)
        return;
    const size_t row = kv->row_k + (kv->v_in_k ? 0 : kv->row_v); /* both, per cell */
    for (int l = 0; l < kv->n_layer; l++) {
        struct kv_layer *L = &kv->layer[l];
        const int cap = (L->n_scan + 15) / 16 * 16;
        if (cap >= L->cap)
            continue;
        if (cap == 0) {
            if (L->v != L->k)
                util_free(L->v);
            util_free(L->k);
            L->k = L->v = NULL;
            kv->bytes -= (uint64_t)L->cap * row;
            L->cap = 0;
            continue;
        }
        uint8_t *k = util_realloc(L->k, (size_t)cap * kv->row_k);
        if (k)
            L->k = k;
        if (k && kv->v_in_k)
            L->v = k;
        uint8_t *v = k && !kv->v_in_k ? util_realloc(L->v, (size_t)cap * kv->row_v) : k;
        if (!k || !v)
            continue;
        L->v = v;
        kv->bytes -= (uint64_t)(L->cap - cap) * row;
        L->cap = cap;
    }
}

void kv_drop_cell(struct kv_cache *kv, int layer, int cell)
{
    struct kv_layer *L = &kv->layer[layer];
    STRIX_ASSERT(cell >= 0 && cell < L->n_scan && L->pos[cell] >= 0);
    layer_remove(L, L->seqs[cell], L->pos[cell], L->pos[cell] + 1);
}

int kv_layer_used(const struct kv_cache *kv, int layer)
{
    return kv->layer[layer].n_used;
}

int strix_kv_seq_pos_max(const strix_context *c, int seq)
{
    if (!c || !seq_ok(c, seq))
        return -1;
    return c->kv.pos_max[seq];
}

/* Recurrent models: removing [p0, p1) from seq (all when seq < 0) must
 * leave a state: a tail from a kept position, or everything. Checks every
 * sequence concerned first, then cuts their states; nonzero (nothing
 * changed) if one cannot. */
static int ssm_seq_cut(strix_context *c, int seq, int32_t p0, int32_t p1)
{
    for (int pass = 0; pass < 2; pass++)
        for (int s = seq < 0 ? 0 : seq; s < (seq < 0 ? c->n_seq_max : seq + 1); s++) {
            const int32_t top = c->kv.pos_max[s];
            if (p0 > top || (p1 >= 0 && p1 <= p0))
                continue; /* nothing held there */
            if (pass == 0 && ((p1 >= 0 && p1 <= top) || !ssm_state_can_keep(c->ssm, s, p0)))
                return 1;
            if (pass == 1)
                ssm_state_keep(c->ssm, s, p0);
        }
    return 0;
}

int strix_kv_seq_rm(strix_context *c, int seq, int p0, int p1)
{
    if (!c || (seq >= 0 && !seq_ok(c, seq)) || p0 < 0)
        return STRIX_ERR_ARG;
    if (c->ssm && ssm_seq_cut(c, seq, p0, p1))
        return STRIX_ERR_UNSUPPORTED; /* a state cannot drop a middle or go back that far */
    kv_remove(&c->kv, seq, p0, p1 < 0 ? INT32_MAX : p1);
    return stage_cache_op(c, STRIX_CACHE_OP_RM, seq, 0, p0, p1, NULL);
}

int strix_kv_seq_cp(strix_context *c, int src, int dst, int p0, int p1)
{
    if (!c || !seq_ok(c, src) || !seq_ok(c, dst) || p0 < 0)
        return STRIX_ERR_ARG;
    if (src == dst)
        return STRIX_OK;
    if (c->ssm) { /* a state is copied whole: only a whole sequence can be */
        if (p0 > 0 || (p1 >= 0 && p1 <= c->kv.pos_max[src]))
            return STRIX_ERR_UNSUPPORTED;
        kv_remove(&c->kv, dst, 0, INT32_MAX);
        ssm_state_copy(c->ssm, src, dst);
    }
    const int32_t hi = p1 < 0 ? INT32_MAX : p1;
    const uint64_t sb = (uint64_t)1 << src, db = (uint64_t)1 << dst;
    for (int l = 0; l < c->kv.n_layer; l++) {
        struct kv_layer *L = &c->kv.layer[l];
        for (int i = 0; i < L->n_scan; i++)
            if ((L->seqs[i] & sb) && L->pos[i] >= p0 && L->pos[i] < hi)
                L->seqs[i] |= db;
    }
    kv_recount(&c->kv, db);
    return stage_cache_op(c, STRIX_CACHE_OP_CP, src, dst, p0, p1, NULL);
}

int strix_kv_seq_keep(strix_context *c, int seq)
{
    if (!c || !seq_ok(c, seq))
        return STRIX_ERR_ARG;
    const uint64_t others = ~((uint64_t)1 << seq);
    for (int s = 0; c->ssm && s < c->n_seq_max; s++)
        if (s != seq)
            ssm_state_keep(c->ssm, s, 0);
    for (int l = 0; l < c->kv.n_layer; l++)
        layer_remove(&c->kv.layer[l], others, 0, INT32_MAX);
    kv_recount(&c->kv, others);
    return stage_cache_op(c, STRIX_CACHE_OP_KEEP, seq, 0, 0, -1, NULL);
}

int strix_kv_len(const strix_context *c)
{
    return strix_kv_seq_pos_max(c, 0) + 1;
}

int strix_kv_seq_truncate(strix_context *c, int seq, int n_keep, strix_error *err)
{
    err_clear(err);
    if (!c)
        return err_set(err, STRIX_ERR_ARG, "context is NULL");
    if (!seq_ok(c, seq))
        return err_set(err, STRIX_ERR_ARG, "sequence %d is out of range [0, %d)", seq,
                       c->n_seq_max);
    if (n_keep < 0)
        return err_set(err, STRIX_ERR_ARG, "negative position %d", n_keep);
    if (c->ssm && ssm_seq_cut(c, seq, n_keep, -1))
        return err_set(err, STRIX_ERR_UNSUPPORTED,
                       "sequence %d cannot go back to %d tokens: its state is kept for the last "
                       "%d positions (n_state_keep)",
                       seq, n_keep, c->n_state_keep);
    kv_remove(&c->kv, seq, n_keep, INT32_MAX);
    return stage_cache_op(c, STRIX_CACHE_OP_RM, seq, 0, n_keep, -1, err);
}

int strix_kv_truncate(strix_context *c, int p, strix_error *err)
{
    return strix_kv_seq_truncate(c, 0, p, err);
}

int strix_kv_cells(const strix_context *c)
{
    return c ? c->kv.layer[0].size : 0;
}

int strix_kv_cells_used(const strix_context *c)
{
    int most = 0;
    for (int l = 0; c && l < c->kv.n_layer; l++)
        if (c->kv.layer[l].n_used > most)
            most = c->kv.layer[l].n_used;
    return most;
}

/* ---- decoding ---- */

/* What a checked batch needs for placing its tokens. */
struct plan {
    const strix_batch *b;
    int32_t first[STRIX_SEQ_MAX]; /* each sequence's first position in the batch, -1: none */
    int all_windowed;
    int n_swa;
};

static int tok_seq_of(const strix_batch *b, int i)
{
    return b->seq ? b->seq[i] : 0;
}

/* Positions and sequences of tokens [off, off + n) into pos and seq; cur
 * holds each sequence's next position and advances. */
static void chunk_tokens(const struct plan *pl, int off, int n, int32_t *cur, int32_t *pos,
                         int32_t *seq)
{
    for (int t = 0; t < n; t++) {
        const int s = tok_seq_of(pl->b, off + t);
        seq[t] = s;
        pos[t] = pl->b->pos ? pl->b->pos[off + t] : cur[s];
        cur[s] = pos[t] + 1;
    }
}

/* Windowed models: drop what the chunk's tokens can no longer see (a
 * sequence's first position in the chunk sets its window). */
static void chunk_window(const struct plan *pl, struct kv_layer *L, int n, const int32_t *pos,
                         const int32_t *seq)
{
    uint64_t done = 0;
    for (int t = 0; t < n; t++) {
        const uint64_t bit = (uint64_t)1 << seq[t];
        if (done & bit)
            continue;
        done |= bit;
        if (pos[t] - pl->n_swa + 1 > 0)
            layer_remove(L, bit, 0, pos[t] - pl->n_swa + 1);
    }
}

/* Gives the n tokens a free cell of layer L each, lowest first, into
 * cells (may be NULL). Returns 0 if the layer runs out. */
static int layer_place(struct kv_layer *L, int n, const int32_t *pos, const int32_t *seq,
                       int32_t *cells)
{
    int cell = 0;
    for (int t = 0; t < n; t++) {
        while (cell < L->size && L->pos[cell] >= 0)
            cell++;
        if (cell == L->size)
            return 0;
        L->pos[cell] = pos[t];
        L->seqs[cell] = (uint64_t)1 << seq[t];
        if (L->order) { /* after the cells of lower or equal positions */
            int lo = 0, hi = L->n_used;
            while (lo < hi) {
                const int mid = (lo + hi) / 2;
                if (L->pos[L->order[mid]] <= pos[t])
                    lo = mid + 1;
                else
                    hi = mid;
            }
            memmove(L->order + lo + 1, L->order + lo, (size_t)(L->n_used - lo) * sizeof *L->order);
            L->order[lo] = cell;
        }
        L->n_used++;
        if (cell + 1 > L->n_scan)
            L->n_scan = cell + 1;
        if (cells)
            cells[t] = cell;
    }
    return 1;
}

/* Whether the whole batch fits, without changing anything. */
static int kv_fits(strix_context *c, const struct plan *pl)
{
    struct kv_cache *kv = &c->kv;
    const int n = pl->b->n;
    int roomy = 1; /* removals only add room */
    for (int l = 0; l < kv->n_layer; l++)
        if (kv->layer[l].size - kv->layer[l].n_used < n)
            roomy = 0;
    if (roomy)
        return 1;
    if (!pl->all_windowed || n <= c->n_batch) {
        /* one pass: the cells the batch's removals free, plus the free ones */
        for (int l = 0; l < kv->n_layer; l++) {
            const struct kv_layer *L = &kv->layer[l];
            int n_free = L->size - L->n_used;
            for (int i = 0; i < L->n_scan && n_free < n; i++) {
                if (L->pos[i] < 0)
                    continue;
                uint64_t rm = 0;
                for (uint64_t m = L->seqs[i]; m; m &= m - 1) {
                    const int s = __builtin_ctzll(m);
                    const int32_t f = pl->first[s];
                    if (f >= 0 && (L->pos[i] >= f ||
                                   (pl->all_windowed && L->pos[i] < f - pl->n_swa + 1)))
                        rm |= (uint64_t)1 << s;
                }
                if (rm == L->seqs[i])
                    n_free++;
            }
            if (n_free < n)
                return 0;
        }
        return 1;
    }
    /* a windowed model and several chunks: each chunk's window frees cells
     * for the next, so run the placement on a copy of each layer's table */
    for (int l = 0; l < kv->n_layer; l++) {
        const struct kv_layer *L = &kv->layer[l];
        struct kv_layer sim = *L;
        sim.pos = kv->sim_pos;
        sim.seqs = kv->sim_seqs;
        sim.order = NULL; /* counting room needs no order */
        memcpy(sim.pos, L->pos, (size_t)L->size * sizeof *sim.pos);
        memcpy(sim.seqs, L->seqs, (size_t)L->size * sizeof *sim.seqs);
        int32_t cur[STRIX_SEQ_MAX];
        for (int s = 0; s < c->n_seq_max; s++) {
            cur[s] = pl->first[s];
            if (pl->first[s] >= 0 && pl->first[s] <= kv->pos_max[s])
                layer_remove(&sim, (uint64_t)1 << s, pl->first[s], INT32_MAX);
        }
        for (int off = 0; off < n; off += c->n_batch) {
            const int cn = n - off < c->n_batch ? n - off : c->n_batch;
            chunk_tokens(pl, off, cn, cur, c->tok_pos, c->tok_seq);
            chunk_window(pl, &sim, cn, c->tok_pos, c->tok_seq);
            if (!layer_place(&sim, cn, c->tok_pos, c->tok_seq, NULL))
                return 0;
        }
    }
    return 1;
}

/* Room for the outputs of n tokens, n_keep of them with logits. */
static int outputs_reserve(strix_context *c, int n, int n_keep)
{
    if (n > c->slot_cap) {
        int *s = util_realloc(c->slot_buf, (size_t)n * sizeof *s);
        if (!s)
            return 0;
        c->slot_buf = s;
        c->slot_cap = n;
    }
    if (n_keep > c->logits_cap) {
        const size_t nv = (size_t)c->model->hp.n_vocab;
        size_t bytes;
        if (!util_mul_size((size_t)n_keep * nv, sizeof(float), &bytes))
            return 0;
        float *l = util_realloc(c->logits_buf, bytes);
        if (!l)
            return 0;
        c->logits_buf = l;
        c->logits_cap = n_keep;
    }
    return 1;
}

int strix_decode_batch(strix_context *c, const strix_batch *b, strix_error *err)
{
    err_clear(err);
    if (!c || !b)
        return err_set(err, STRIX_ERR_ARG, "context or batch is NULL");
    if ((c->model->layer_first > 0 || c->model->layer_end < c->model->hp.n_layer) &&
        !c->tail.decode) /* (a tail is set on a first stage only) */
        return err_set(err, STRIX_ERR_ARG,
                       "the model holds layers [%d, %d) of %d: decode it with "
                       "strix_decode_hidden, or give the context a remote tail",
                       c->model->layer_first, c->model->layer_end, c->model->hp.n_layer);
    return context_decode(c, b, NULL, NULL, err);
}

int context_decode(strix_context *c, const strix_batch *b, const float *in, float *out,
                   strix_error *err)
{
    const struct hparams *hp = &c->model->hp;
    const int n = b->n;
    if ((!b->token && !in) || n <= 0)
        return err_set(err, STRIX_ERR_ARG, "no tokens to decode");
    struct plan pl;
    pl.b = b;
    pl.all_windowed = (hp->n_swa > 0 && hp->swa_dense_every == 0) || (hp->ssm && !hp->yoco);
    pl.n_swa = hp->ssm ? c->n_state_keep : hp->n_swa;
    int32_t next[STRIX_SEQ_MAX];
    for (int s = 0; s < STRIX_SEQ_MAX; s++)
        pl.first[s] = next[s] = -1;
    int n_keep = 0;
    for (int i = 0; i < n; i++) {
        const int s = tok_seq_of(b, i);
        if (!seq_ok(c, s))
            return err_set(err, STRIX_ERR_ARG, "token %d: sequence %d is out of range [0, %d)", i,
                           s, c->n_seq_max);
        if (b->token && (b->token[i] < 0 || b->token[i] >= hp->n_vocab))
            return err_set(err, STRIX_ERR_ARG, "token id %d is out of range [0, %d)", b->token[i],
                           hp->n_vocab);
        int32_t p;
        if (pl.first[s] < 0) {
            const int32_t held = c->kv.pos_max[s] + 1;
            p = b->pos ? b->pos[i] : held;
            if (p > held)
                return err_set(err, STRIX_ERR_ARG,
                               "position %d leaves a gap after sequence %d's cache (%d)", p, s,
                               held);
            if (c->ssm && p < held && !ssm_state_can_keep(c->ssm, s, p))
                return err_set(err, STRIX_ERR_UNSUPPORTED,
                               "sequence %d cannot restart at position %d: its state is kept "
                               "for the last %d positions (n_state_keep)",
                               s, p, c->n_state_keep);
            pl.first[s] = p;
        } else {
            p = b->pos ? b->pos[i] : next[s];
            if (p != next[s])
                return err_set(err, STRIX_ERR_ARG, "positions must be consecutive (token %d)", i);
        }
        if (p < 0)
            return err_set(err, STRIX_ERR_ARG, "negative position %d (token %d)", p, i);
        if (p >= c->n_ctx)
            return err_set(err, STRIX_ERR_FULL,
                           "sequence %d is full: position %d is past the context size %d", s, p,
                           c->n_ctx);
        next[s] = p + 1;
        n_keep += out ? 0 : b->logits ? b->logits[i] != 0 : i == n - 1;
    }
    if (!outputs_reserve(c, n, n_keep))
        return err_set(err, STRIX_ERR_NOMEM, "out of memory for the logits of %d tokens", n_keep);
    if (!kv_fits(c, &pl))
        return err_set(err, STRIX_ERR_FULL,
                       "the KV cache is full: %d tokens need cells, %d of %d are in use", n,
                       strix_kv_cells_used(c), strix_kv_cells(c));
    if (!kv_reserve(&c->kv, n))
        return err_set(err, STRIX_ERR_NOMEM, "out of memory for the KV cache");

    /* from here on nothing fails (but a remote tail): the batch replaces what
     * its sequences held from their first positions on */
    const int tail = c->tail.decode && !out && c->model->layer_end < hp->n_layer;
    for (int s = 0; s < c->n_seq_max; s++)
        if (pl.first[s] >= 0 && pl.first[s] <= c->kv.pos_max[s]) {
            if (c->ssm)
                ssm_state_keep(c->ssm, s, pl.first[s]);
            kv_remove(&c->kv, s, pl.first[s], INT32_MAX);
            const int rc =
                tail ? stage_cache_op(c, STRIX_CACHE_OP_RM, s, 0, pl.first[s], -1, err) : 0;
            if (rc) {
                c->n_out = 0;
                return rc;
            }
        }
    int k = 0;
    for (int i = 0; i < n; i++)
        c->slot_buf[i] = !out && (b->logits ? b->logits[i] != 0 : i == n - 1) ? k++ : -1;
    int32_t cur[STRIX_SEQ_MAX];
    memcpy(cur, pl.first, sizeof cur);
    int kept = 0; /* logits rows written by earlier chunks */
    for (int off = 0; off < n; off += c->n_batch) {
        const int cn = n - off < c->n_batch ? n - off : c->n_batch;
        chunk_tokens(&pl, off, cn, cur, c->tok_pos, c->tok_seq);
        for (int l = 0; l < c->kv.n_layer; l++) {
            struct kv_layer *L = &c->kv.layer[l];
            if (pl.all_windowed)
                chunk_window(&pl, L, cn, c->tok_pos, c->tok_seq);
            const int ok = layer_place(L, cn, c->tok_pos, c->tok_seq,
                                       c->tok_cell + (size_t)l * (size_t)c->n_batch);
            STRIX_ASSERT(ok); /* kv_fits said so */
        }
        /* (a window drops only positions below the chunk's, so the highest
         * position of each sequence is now the chunk's) */
        for (int t = 0; t < cn; t++)
            if (c->tok_pos[t] > c->kv.pos_max[c->tok_seq[t]])
                c->kv.pos_max[c->tok_seq[t]] = c->tok_pos[t];
        if (c->ssm)
            ssm_state_advance(c->ssm, cn, c->tok_pos, c->tok_seq);
        c->n_tok = cn;
        c->tok_off = off;
        c->logits = c->logits_buf + (size_t)kept * (size_t)hp->n_vocab;
        c->logit_slot = c->slot_buf + off;
        c->hidden_in = in ? in + (size_t)off * (size_t)hp->n_embd : NULL;
        c->hidden_out = out ? out + (size_t)off * (size_t)hp->n_embd
                            : tail ? c->tail_hidden : NULL;
        forward(c, b->token ? b->token + off : NULL);
        const int kept0 = kept;
        for (int t = 0; t < cn; t++)
            kept += c->slot_buf[off + t] >= 0;
        if (tail) {
            const int rc = stage_tail_chunk(c, b, off, cn, kept0, off + cn == n, err);
            if (rc) {
                c->hidden_in = NULL;
                c->hidden_out = NULL;
                c->n_out = 0;
                return rc;
            }
        }
    }
    c->hidden_in = NULL;
    c->hidden_out = NULL;
    c->n_out = n;
    kv_shrink(&c->kv);
    if (c->kv.bytes > c->kv.bytes_peak)
        c->kv.bytes_peak = c->kv.bytes;
    return STRIX_OK;
}

int strix_decode(strix_context *c, const strix_token *tokens, const int32_t *pos, int n,
                 const int8_t *want_logits, strix_error *err)
{
    err_clear(err);
    if (!c || !tokens || n <= 0)
        return err_set(err, STRIX_ERR_ARG, "no tokens to decode");
    strix_batch b = {n, tokens, pos, NULL, want_logits};
    return strix_decode_batch(c, &b, err);
}

const float *strix_get_logits(const strix_context *c, int i)
{
    if (!c)
        return NULL;
    if (i < 0)
        i += c->n_out;
    if (i < 0 || i >= c->n_out || c->slot_buf[i] < 0)
        return NULL;
    return c->logits_buf + (size_t)c->slot_buf[i] * (size_t)c->model->hp.n_vocab;
}

/* ---- observation ---- */

void context_hook_in(strix_context *c)
{
    if (c->on_layer)
        memcpy(c->hook_in, c->x, (size_t)c->n_tok * (size_t)c->model->hp.n_embd * sizeof(float));
}

void context_hook_out(strix_context *c, int l)
{
    if (!c->on_layer)
        return;
    const struct strix_layer_obs o = {l,          c->n_tok,   c->tok_off, c->model->hp.n_embd,
                                      c->tok_pos, c->tok_seq, c->hook_in, c->x};
    c->on_layer(c->on_layer_user, &o);
}
