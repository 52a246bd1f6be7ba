/*
 * ffn_peer.c - a PEER layer (He 2024, "Mixture of A Million Experts") in
 * place of a block's MLP: N = n_keys^2 experts of one neuron each, chosen
 * per token by product keys. For token x (the block's normed input) and
 * each head h:
 *
 *   q = W_q[h] x                      (d_key; no batch norm on the query)
 *   s1_i = q[0 : d/2] . K[h, 0, i],   s2_j = q[d/2 : d] . K[h, 1, j]
 *   I1, I2 = the top k of s1 and of s2
 *   the top k of s1_a + s2_b over (a, b) in I1 x I2: experts e = a n_keys + b
 *   g = softmax over those k scores (or sigmoid of each: peer.gating)
 *   y += sum over the k experts of g_e silu(u_e . x) v_e
 *
 * and y sums over the heads. "Top k" orders by score, then by the lower
 * index (the lower expert number for the sums), so ties are deterministic.
 * The heads add in order, each head's experts in rank order. Queries go
 * through matmul.c (any weight type); keys and expert vectors are rows read
 * directly (F32) or dequantized one at a time. Every token is computed
 * alone, so batched and one-by-one decoding agree bit for bit.
 */
#include <math.h>
#include <string.h>

#include "kernels/kernels.h"
#include "model/arch.h"
#include "quant/dtype.h"
#include "runtime/ffn_var.h"

struct ffn_peer_scratch {
    float *q;    /* (n_batch, n_head d_key) queries */
    float *s;    /* (2, n_keys) sub-key scores of one head */
    float *row;  /* (max(n_embd, d_key / 2)) a dequantized row */
    float *top_s; /* (3, top_k) best scores: half 0, half 1, the sums */
    int *top_i;   /* (3, top_k) their indices */
};

struct ffn_peer_scratch *ffn_peer_scratch_create(const struct hparams *hp, int n_batch)
{
    struct ffn_peer_scratch *s = util_calloc(1, sizeof *s);
    if (!s)
        return NULL;
    const size_t k = (size_t)hp->peer_top_k, nk = (size_t)hp->peer_n_keys;
    const size_t w = (size_t)(hp->n_embd > hp->peer_d_key ? hp->n_embd : hp->peer_d_key);
    s->q = util_malloc((size_t)n_batch * (size_t)hp->peer_n_head * (size_t)hp->peer_d_key *
                       sizeof(float));
    s->s = util_malloc(2 * nk * sizeof(float));
    s->row = util_malloc(w * sizeof(float));
    s->top_s = util_malloc(3 * k * sizeof(float));
    s->top_i = util_malloc(3 * k * sizeof(int));
    if (!s->q || !s->s || !s->row || !s->top_s || !s->top_i) {
        ffn_peer_scratch_free(s);
        return NULL;
    }
    return s;
}

void ffn_peer_scratch_free(struct ffn_peer_scratch *s)
{
    if (!s)
        return;
    util_free(s->q);
    util_free(s->s);
    util_free(s->row);
    util_free(s->top_s);
    util_free(s->top_i);
    util_free(s);
}

/* Row r of t as floats: in place for F32, else dequantized into buf. */
static const float *row_f32(const struct tensor *t, int64_t r, float *buf)
{
    const uint8_t *p = (const uint8_t *)t->data + (size_t)r * t->row_bytes;
    if (t->type == DTYPE_F32)
        return (const float *)p;
    dtype_get(t->type)->dequantize(p, buf, (int)t->ne[0]);
    return buf;
}

/* a before b: the higher score, then the lower index. */
static inline int better(float as, int ai, float bs, int bi)
{
    return as > bs || (as == bs && ai < bi);
}

/* Offers (sc, id) to the best-first list of *cnt <= k entries. While the
 * list is short every entry is kept (NaN scores go last), so it always fills. */
static void offer(float *ts, int *ti, int *cnt, int k, float sc, int id)
{
    int at = *cnt;
    while (at > 0 && !better(ts[at - 1], ti[at - 1], sc, id))
        at--;
    if (at >= k)
        return;
    const int end = *cnt < k ? *cnt : k - 1; /* the last entry falls off a full list */
    memmove(ts + at + 1, ts + at, (size_t)(end - at) * sizeof *ts);
    memmove(ti + at + 1, ti + at, (size_t)(end - at) * sizeof *ti);
    ts[at] = sc;
    ti[at] = id;
    if (*cnt < k)
        (*cnt)++;
}

void ffn_peer(strix_context *c, struct ffn_peer_scratch *s, int l, const float *in, float *out,
              int n)
{
    const strix_model *m = c->model;
    const struct hparams *hp = &m->hp;
    const struct layer *L = &m->layers[l];
    const int embd = hp->n_embd, nh = hp->peer_n_head, dk = hp->peer_d_key, half = dk / 2;
    const int nk = hp->peer_n_keys, k = hp->peer_top_k;
    mm(c, &L->peer_query, in, s->q, n, 0);
    memset(out, 0, (size_t)n * (size_t)embd * sizeof(float));
    float *s1 = s->top_s, *s2 = s->top_s + k, *se = s->top_s + 2 * k;
    int *i1 = s->top_i, *i2 = s->top_i + k, *ie = s->top_i + 2 * k;
    for (int t = 0; t < n; t++) {
        const float *x = in + (size_t)t * (size_t)embd;
        float *y = out + (size_t)t * (size_t)embd;
        for (int h = 0; h < nh; h++) {
            const float *q = s->q + ((size_t)t * (size_t)nh + (size_t)h) * (size_t)dk;
            /* scores of both halves against their sub-keys, and each's top k */
            int n1 = 0, n2 = 0, ne = 0;
            for (int p = 0; p < 2; p++)
                for (int i = 0; i < nk; i++) {
                    const float *kr = row_f32(&L->peer_keys, (int64_t)(2 * h + p) * nk + i, s->row);
                    const float sc = kern_dot_f32(half, q + p * half, kr);
                    if (p == 0)
                        offer(s1, i1, &n1, k, sc, i);
                    else
                        offer(s2, i2, &n2, k, sc, i);
                }
            /* the top k of the k x k sums */
            for (int a = 0; a < k; a++)
                for (int b = 0; b < k; b++)
                    offer(se, ie, &ne, k, s1[a] + s2[b], i1[a] * nk + i2[b]);
            /* the expert weights */
            if (hp->peer_sigmoid) {
                for (int j = 0; j < k; j++)
                    se[j] = 1.0f / (1.0f + expf(-se[j]));
            } else {
                const float mx = se[0];
                float sum = 0.0f;
                for (int j = 0; j < k; j++)
                    sum += se[j] = expf(se[j] - mx);
                for (int j = 0; j < k; j++)
                    se[j] /= sum;
            }
            /* the chosen single-neuron experts */
            for (int j = 0; j < k; j++) {
                const float z = kern_dot_f32(embd, row_f32(&L->peer_down, ie[j], s->row), x);
                const float a = z / (1.0f + expf(-z)); /* silu */
                kern_axpy(embd, se[j] * a, row_f32(&L->peer_up, ie[j], s->row), y);
            }
        }
    }
}
