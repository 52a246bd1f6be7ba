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
 * alone, so batched and one-by-one decoding agree bit for bit, and a chunk
 * of tokens is split among the context's threads by token (each with its
 * own scratch) with the same results as one thread.
 */
#include <math.h>
#include <string.h>

#include "kernels/kernels.h"
#include "model/arch.h"
#include "quant/dtype.h"
#include "runtime/ffn_var.h"

/* One thread's scratch: a dequantized row (max(n_embd, d_key)) and the best
 * scores (3, top_k: half 0, half 1, the sums) with their indices. */
struct peer_thread {
    float *row;
    float *top_s;
    int *top_i;
};

struct ffn_peer_scratch {
    float *q;              /* (n_batch, n_head d_key) queries */
    struct peer_thread *th; /* n_th threads' scratch (grown to the context's threads) */
    int n_th;
    size_t row_len, k;
};

static void thread_free(struct peer_thread *t)
{
    util_free(t->row);
    util_free(t->top_s);
    util_free(t->top_i);
}

/* Scratch for n threads (kept if there is already enough); 0 or out of memory. */
static int threads_grow(struct ffn_peer_scratch *s, int n)
{
    if (n <= s->n_th)
        return 1;
    struct peer_thread *th = util_calloc((size_t)n, sizeof *th);
    if (!th)
        return 0;
    int ok = 1;
    for (int i = 0; i < n; i++) {
        th[i].row = util_malloc(s->row_len * sizeof(float));
        th[i].top_s = util_malloc(3 * s->k * sizeof(float));
        th[i].top_i = util_malloc(3 * s->k * sizeof(int));
        ok = ok && th[i].row && th[i].top_s && th[i].top_i;
    }
    if (!ok) {
        for (int i = 0; i < n; i++)
            thread_free(&th[i]);
        util_free(th);
        return 0;
    }
    for (int i = 0; i < s->n_th; i++)
        thread_free(&s->th[i]);
    util_free(s->th);
    s->th = th;
    s->n_th = n;
    return 1;
}

struct ffn_peer_scratch *ffn_peer_scratch_create(const struct hparams *hp, int n_batch)
{
    struct ffn_peer_scratch *s = util_calloc(1, sizeof *s);
    if (!s)
        return NULL;
    s->k = (size_t)hp->peer_top_k;
    s->row_len = (size_t)(hp->n_embd > hp->peer_d_key ? hp->n_embd : hp->peer_d_key);
    s->q = util_malloc((size_t)n_batch * (size_t)hp->peer_n_head * (size_t)hp->peer_d_key *
                       sizeof(float));
    if (!s->q || !threads_grow(s, 1)) {
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
    for (int i = 0; i < s->n_th; i++)
        thread_free(&s->th[i]);
    util_free(s->th);
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

/* Token t of the chunk: out row t from in row t (queries in s->q). */
static void peer_token(const struct hparams *hp, const struct layer *L, const float *qs,
                       struct peer_thread *th, const float *x, float *y)
{
    const int embd = hp->n_embd, nh = hp->peer_n_head, dk = hp->peer_d_key, half = dk / 2;
    const int nk = hp->peer_n_keys, k = hp->peer_top_k;
    float *s1 = th->top_s, *s2 = th->top_s + k, *se = th->top_s + 2 * k;
    int *i1 = th->top_i, *i2 = th->top_i + k, *ie = th->top_i + 2 * k;
    memset(y, 0, (size_t)embd * sizeof(float));
    for (int h = 0; h < nh; h++) {
        const float *q = qs + (size_t)h * (size_t)dk;
        /* scores of both halves against their sub-keys, and each's top k */
        int n1 = 0, n2 = 0, ne = 0;
        for (int p = 0; p < 2; p++)
            for (int i = 0; i < nk; i++) {
                const float *kr = row_f32(&L->peer_keys, (int64_t)(2 * h + p) * nk + i, th->row);
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
            const float z = kern_dot_f32(embd, row_f32(&L->peer_down, ie[j], th->row), x);
            const float a = z / (1.0f + expf(-z)); /* silu */
            kern_axpy(embd, se[j] * a, row_f32(&L->peer_up, ie[j], th->row), y);
        }
    }
}

struct peer_job {
    const struct hparams *hp;
    const struct layer *L;
    struct ffn_peer_scratch *s;
    const float *in;
    float *out;
    int n;
};

/* Tokens [n ith / nth, n (ith + 1) / nth) with thread ith's scratch. */
static void peer_worker(void *arg, int ith, int nth)
{
    const struct peer_job *j = arg;
    const size_t embd = (size_t)j->hp->n_embd;
    const size_t qw = (size_t)j->hp->peer_n_head * (size_t)j->hp->peer_d_key;
    for (int t = j->n * ith / nth; t < j->n * (ith + 1) / nth; t++)
        peer_token(j->hp, j->L, j->s->q + (size_t)t * qw, &j->s->th[ith], j->in + (size_t)t * embd,
                   j->out + (size_t)t * embd);
}

void ffn_peer(strix_context *c, struct ffn_peer_scratch *s, int l, const float *in, float *out,
              int n)
{
    const strix_model *m = c->model;
    mm(c, &m->layers[l].peer_query, in, s->q, n, 0);
    if (n < 1)
        return;
    const struct peer_job j = {&m->hp, &m->layers[l], s, in, out, n};
    /* one thread per token at most; a failed growth keeps the threads there are */
    int nth = n < c->n_threads ? n : c->n_threads;
    if (!threads_grow(s, nth))
        nth = s->n_th;
    pool_run_n(c->pool, peer_worker, (void *)&j, nth);
}
