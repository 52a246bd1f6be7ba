/*
 * attention.c - causal attention of a batch over the KV cache, tiled
 * flash-style: keys and values are visited a tile of cells at a time with an
 * online softmax (a running maximum and sum per head), so no score row of
 * context length is ever stored, and the query heads that share a KV head
 * (grouped- and multi-query attention) are processed together: per tile the
 * group's scores are one small product (kern_kv_dot_group: each key read
 * once for all heads), the softmax step one vector pass (kern_kv_softmax), and
 * the values one more product (kern_kv_axpy_group: each value read once).
 *
 * Layer l reads only layer l's cells (context.h), so a layer may hold
 * fewer entries than another; a token sees what its layer holds.
 *
 * One work item is a token and a range of its KV heads (all of them unless
 * the threads need more items than there are tokens): each tile of visible
 * cells is gathered once for the range. A (token, KV head) pair's result
 * depends only on its own query and the cache, never on the rest of the
 * batch or on the ranges, so batched and one-by-one decoding agree bit for
 * bit at any thread count.
 *
 * The cache's keys and values may be stored as F32, F16, Q8_0 or Q4_0
 * (context params type_k, type_v; attention_store converts them): the
 * kernels read them as stored (kernels_kv.h), with each head's query
 * converted once to what the key products take (Q8_0 blocks for the block
 * types). This file also names the types for the public API.
 */
#include <math.h>
#include <string.h>
#include <strings.h>

#include "kernels/kernels.h"
#include "kernels/kernels_kv.h"
#include "quant/dtype.h"
#include "runtime/context.h"

#define ATT_TILE 256

static const struct {
    const char *name;
    int type;
} cache_types[] = {{"f32", STRIX_CACHE_F32},
                   {"f16", STRIX_CACHE_F16},
                   {"q8_0", STRIX_CACHE_Q8_0},
                   {"q4_0", STRIX_CACHE_Q4_0}};

int strix_cache_type_from_name(const char *name)
{
    for (size_t i = 0; name && i < sizeof cache_types / sizeof cache_types[0]; i++)
        if (strcasecmp(name, cache_types[i].name) == 0)
            return cache_types[i].type;
    return -1;
}

const char *strix_cache_type_name(int type)
{
    for (size_t i = 0; i < sizeof cache_types / sizeof cache_types[0]; i++)
        if (cache_types[i].type == type)
            return cache_types[i].name;
    return NULL;
}

_Static_assert((int)STRIX_CACHE_F16 == (int)DTYPE_F16 && (int)STRIX_CACHE_Q8_0 == (int)DTYPE_Q8_0 &&
                   (int)STRIX_CACHE_Q4_0 == (int)DTYPE_Q4_0 &&
                   (int)STRIX_CACHE_F32 == (int)DTYPE_F32,
               "cache types are numbered as tensor types");

size_t attention_scratch(const struct hparams *hp)
{
    const size_t group = (size_t)(hp->n_head / hp->n_head_kv);
    /* a tile of scores for one group, and per query head an accumulator,
     * max, new max and sum, and its query converted for the keys (at most
     * as many bytes as floats) */
    return group * ATT_TILE + (size_t)hp->n_head * (2 * (size_t)hp->head_dim + 3);
}

void attention_store(strix_context *c, int layer, int cell, const float *k, const float *v)
{
    const struct kv_cache *kv = &c->kv;
    const struct kv_layer *L = &kv->layer[layer];
    kern_kv_store(kv->type_k, k, (int)kv->kv_dim, L->k + (size_t)cell * kv->row_k);
    if (v)
        kern_kv_store(kv->type_v, v, (int)kv->kv_dim, L->v + (size_t)cell * kv->row_v);
}

struct attn_job {
    strix_context *c;
    const struct attn_args *a;
    int parts; /* ranges of KV heads per token */
};

/* The online-softmax state of one KV head's group of query heads, laid out
 * in its block of the thread's scratch. */
struct attn_state {
    float *acc;             /* (group, hd) */
    float *mx, *sum, *mnew; /* (group) each */
    float *qc;              /* (group, hd) the queries converted for the keys */
};

static struct attn_state attn_state_at(float *b, int group, int hd)
{
    struct attn_state st;
    st.acc = b;
    st.mx = st.acc + (size_t)group * (size_t)hd;
    st.sum = st.mx + group;
    st.mnew = st.sum + group;
    st.qc = st.mnew + group;
    return st;
}

static void attn_worker(void *arg, int ith, int nth)
{
    const struct attn_job *j = arg;
    strix_context *c = j->c;
    const struct attn_args *a = j->a;
    const struct hparams *hp = &c->model->hp;
    const struct kv_layer *kv = &c->kv.layer[a->layer];
    const int hd = hp->head_dim, q_dim = hp->n_head * hd;
    const int group = hp->n_head / hp->n_head_kv;
    const uint32_t tk = c->kv.type_k, tv = c->kv.type_v;
    const size_t row_k = c->kv.row_k, row_v = c->kv.row_v;
    /* a head's keys and values within a row (whole blocks: head_dim is a
     * multiple of 32 for the block types) */
    const size_t head_k = kern_kv_row_bytes(tk, hd), head_v = kern_kv_row_bytes(tv, hd);
    float *score = c->att + (size_t)ith * c->att_stride; /* (ATT_TILE, group) */
    float *per_kv = score + (size_t)group * ATT_TILE;    /* per KV head, below */
    const size_t kv_floats = (size_t)group * (2 * (size_t)hd + 3);
    int idx[ATT_TILE];
    /* one work item is a token and a range of its KV heads: the visible
     * cells are gathered once per tile for the range */
    const int parts = j->parts, items = c->n_tok * parts;
    for (int it = ith; it < items; it += nth) {
        const int t = it / parts, part = it % parts;
        const int g0 = part * hp->n_head_kv / parts, g1 = (part + 1) * hp->n_head_kv / parts;
        const int pos = c->tok_pos[t];
        const uint64_t bit = (uint64_t)1 << c->tok_seq[t];
        const int lo = a->window > 0 ? pos - a->window + 1 : INT32_MIN;
        for (int g = g0; g < g1; g++) {
            const struct attn_state st =
                attn_state_at(per_kv + (size_t)(g - g0) * kv_floats, group, hd);
            const float *q =
                a->q + (size_t)t * (size_t)q_dim + (size_t)g * (size_t)group * (size_t)hd;
            for (int h = 0; h < group; h++) {
                st.mx[h] = -INFINITY;
                st.sum[h] = 0.0f;
            }
            memset(st.acc, 0, (size_t)group * (size_t)hd * sizeof(float));
            if (tk != DTYPE_F32)
                for (int h = 0; h < group; h++)
                    kern_kv_query(tk, q + (size_t)h * (size_t)hd, hd,
                                  st.qc + (size_t)h * (size_t)hd);
        }
        /* cells by ascending position, up to the token's own */
        int o = 0;
        while (o < kv->n_used) {
            /* gather a tile of visible cells */
            int n = 0;
            for (; o < kv->n_used && n < ATT_TILE; o++) {
                const int cell = kv->order[o], p = kv->pos[cell];
                if (p > pos) {
                    o = kv->n_used;
                    break;
                }
                if (p >= lo && (kv->seqs[cell] & bit))
                    idx[n++] = cell;
            }
            if (n == 0)
                break;
            for (int g = g0; g < g1; g++) {
                const struct attn_state st =
                    attn_state_at(per_kv + (size_t)(g - g0) * kv_floats, group, hd);
                const float *q =
                    a->q + (size_t)t * (size_t)q_dim + (size_t)g * (size_t)group * (size_t)hd;
                const uint8_t *kg = kv->k + (size_t)g * head_k, *vg = kv->v + (size_t)g * head_v;
                /* scores (cell, head): each key read once for the group */
                kern_kv_dot_group(tk, hd, group,
                                  tk == DTYPE_F32 ? (const void *)q : (const void *)st.qc,
                                  (size_t)hd * sizeof(float), kg, row_k, idx, n, score);
                /* scale (soft cap, ALiBi), the running maxima and sums, the
                 * exponentials (kern_kv_softmax); mnew gets each head's factor */
                float scale = a->scale;
                if (a->softcap > 0.0f || a->alibi) {
                    for (int i = 0; i < n; i++) {
                        float *si = score + (size_t)i * (size_t)group;
                        const float dp = a->alibi ? (float)(kv->pos[idx[i]] - pos) : 0.0f;
                        for (int h = 0; h < group; h++) {
                            float x = si[h] * a->scale;
                            if (a->softcap > 0.0f)
                                x = a->softcap * tanhf(x / a->softcap);
                            if (a->alibi)
                                x += a->alibi[g * group + h] * dp;
                            si[h] = x;
                        }
                    }
                    scale = 1.0f;
                }
                kern_kv_softmax(n, group, scale, score, st.mx, st.sum, st.mnew);
                /* rescale what was accumulated under the old maximum */
                for (int h = 0; h < group; h++)
                    if (st.mnew[h] != 1.0f) {
                        float *ah = st.acc + (size_t)h * (size_t)hd;
                        for (int d = 0; d < hd; d++)
                            ah[d] *= st.mnew[h];
                    }
                /* values: each read once for the group */
                kern_kv_axpy_group(tv, hd, group, score, vg, row_v, idx, n, st.acc, (size_t)hd);
            }
        }
        for (int g = g0; g < g1; g++) {
            const struct attn_state st =
                attn_state_at(per_kv + (size_t)(g - g0) * kv_floats, group, hd);
            float *out =
                a->out + (size_t)t * (size_t)q_dim + (size_t)g * (size_t)group * (size_t)hd;
            for (int h = 0; h < group; h++) {
                const float inv = st.sum[h] > 0.0f ? 1.0f / st.sum[h] : 0.0f;
                for (int d = 0; d < hd; d++)
                    out[(size_t)h * (size_t)hd + d] = st.acc[(size_t)h * (size_t)hd + d] * inv;
            }
        }
    }
}

void attention(strix_context *c, const struct attn_args *a)
{
    const struct hparams *hp = &c->model->hp;
    const int64_t work = (int64_t)c->n_tok * hp->n_head * c->kv.layer[a->layer].n_used;
    const int nth = work < 4096 ? 1 : c->n_threads;
    /* enough items for the threads, and otherwise each token's cells
     * gathered once for all its KV heads */
    int parts = (nth + c->n_tok - 1) / c->n_tok;
    parts = parts > hp->n_head_kv ? hp->n_head_kv : parts;
    struct attn_job j = {c, a, parts};
    pool_run_n(c->pool, attn_worker, &j, nth);
}
