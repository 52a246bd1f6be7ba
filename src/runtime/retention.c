/*
 * retention.c - RetNet's multi-scale retention (Sun et al. 2023), the block
 * that replaces attention in retnet models (retention.h). For a token at
 * position n of a sequence, per head h with decay gamma_h:
 *   q, k, v = W_Q x, W_K x, W_V x      (d_k, d_k, d_v per head; q and k
 *                                        rotated by the token's position)
 *   q /= sqrt(d_k)
 *   recurrent form:  S_n = gamma S_{n-1} + k_n^T v_n,   o_n = q_n S_n
 *   parallel form:   o_n = sum_{m <= n} gamma^(n-m) (q_n . k_m) v_m
 *                        = (Q K^T (.) D) V with D_nm = gamma^(n-m) (m <= n)
 *   y = W_O (swish(W_G x) (.) GroupNorm_h(o))
 * Gated retention (yoco's self-decoder) makes the decay depend on the token:
 * gamma_n = sigmoid(W_decay x_n)^(1/tau) per head, and gamma^(n-m) becomes
 * the product of gamma over (m, n]. Both are kept as sums of logarithms.
 * where GroupNorm normalises each head's d_v outputs (mean and variance,
 * epsilon = the model's norm epsilon) and scales them by a learned weight.
 *
 * A chunk of several tokens of one sequence uses the chunkwise form: the
 * parallel form within the chunk plus the state S_{p0-1} the sequence held
 * before it, o_n += gamma^(n-p0+1) q_n S_{p0-1}. Decoding (one token of a
 * sequence) uses the recurrent form: its cost does not depend on how long
 * the sequence is. A chunk's states after each of its last n_state_keep
 * positions are stored in the context's ssm_state (ssm.h), the same ring
 * mamba uses, so rollback, forks and beams work unchanged.
 *
 * Work is split over the pool by (sequence, head): a head's result never
 * depends on the thread count or on the other sequences in the batch.
 */
#include "runtime/retention.h"

#include <math.h>
#include <string.h>

#include "kernels/kernels.h"
#include "runtime/ssm.h"

struct retention {
    int n_head, dk, dv, n_batch, n_threads;
    float *log_gamma; /* (n_head) fixed decays (retnet), as logarithms */
    float *lg;        /* (n_batch, n_head) each token's log decay per head */
    float *q, *k; /* (n_batch, n_head * d_k) */
    float *v, *g; /* (n_batch, n_head * d_v) values, gate */
    float *o;     /* (n_batch, n_head * d_v) retention output */
    float *tmp;   /* (n_threads, d_k * d_v + n_batch + 1) a state and powers of gamma */
    int *tok;     /* (n_batch) the chunk's tokens grouped by sequence, in order */
    int *run;     /* (n_batch + 1) where each sequence's tokens start in tok */
};

void retention_free(struct retention *r)
{
    if (!r)
        return;
    util_free(r->log_gamma);
    util_free(r->lg);
    util_free(r->q);
    util_free(r->k);
    util_free(r->v);
    util_free(r->g);
    util_free(r->o);
    util_free(r->tmp);
    util_free(r->tok);
    util_free(r->run);
    util_free(r);
}

static size_t tmp_stride(const struct retention *r)
{
    return (size_t)r->dk * (size_t)r->dv + (size_t)r->n_batch + 1;
}

struct retention *retention_create(const strix_model *m, int n_batch, int n_threads)
{
    const struct hparams *hp = &m->hp;
    struct retention *r = util_calloc(1, sizeof *r);
    if (!r)
        return NULL;
    r->n_head = hp->n_head, r->dk = hp->head_dim, r->dv = hp->ret_dv;
    r->n_batch = n_batch, r->n_threads = n_threads;
    const size_t nb = (size_t)n_batch, kd = (size_t)r->n_head * (size_t)r->dk;
    const size_t vd = (size_t)r->n_head * (size_t)r->dv;
    r->log_gamma = util_malloc((size_t)r->n_head * sizeof(float));
    r->lg = util_malloc(nb * (size_t)r->n_head * sizeof(float));
    r->q = util_malloc(nb * kd * sizeof(float));
    r->k = util_malloc(nb * kd * sizeof(float));
    r->v = util_malloc(nb * vd * sizeof(float));
    r->g = util_malloc(nb * vd * sizeof(float));
    r->o = util_malloc(nb * vd * sizeof(float));
    r->tmp = util_malloc((size_t)n_threads * tmp_stride(r) * sizeof(float));
    r->tok = util_malloc(nb * sizeof(int));
    r->run = util_malloc((nb + 1) * sizeof(int));
    if (!r->log_gamma || !r->lg || !r->q || !r->k || !r->v || !r->g || !r->o || !r->tmp || !r->tok || !r->run) {
        retention_free(r);
        return NULL;
    }
    for (int h = 0; h < r->n_head; h++)
        r->log_gamma[h] = (float)log1p(
            -exp2(-(double)(hp->ret_decay_first + (float)h * hp->ret_decay_step)));
    return r;
}

struct ret_job {
    strix_context *c;
    struct retention *r;
    int l, n_run;
};

/* One head of one sequence's run of tokens r->tok[run[i] .. run[i + 1]). */
static void ret_head(const struct ret_job *j, int i_run, int h, float *tmp)
{
    strix_context *c = j->c;
    struct retention *r = j->r;
    const int dk = r->dk, dv = r->dv, kd = r->n_head * dk, vd = r->n_head * dv;
    const int *tok = r->tok + r->run[i_run], n = r->run[i_run + 1] - r->run[i_run];
    const int seq = c->tok_seq[tok[0]];
    const int32_t p0 = c->tok_pos[tok[0]];
    const size_t hs = (size_t)h * (size_t)dk * (size_t)dv; /* the head's state in a slot */
    float *S = tmp, *cum = tmp + (size_t)dk * (size_t)dv;
    /* cum[a + 1]: the log decay from before the run through token a */
    cum[0] = 0.0f;
    for (int a = 0; a < n; a++)
        cum[a + 1] = cum[a] + r->lg[(size_t)tok[a] * (size_t)r->n_head + (size_t)h];
    /* S: the state before the run, copied (the run may overwrite its slot) */
    if (p0 > 0)
        memcpy(S, ssm_state_at(c->ssm, j->l, seq, p0 - 1) + hs,
               (size_t)dk * (size_t)dv * sizeof(float));
    else
        memset(S, 0, (size_t)dk * (size_t)dv * sizeof(float));
    if (n > 1) { /* parallel form, plus the earlier state */
        for (int a = 0; a < n; a++) {
            const float *q = r->q + (size_t)tok[a] * (size_t)kd + (size_t)h * (size_t)dk;
            float *o = r->o + (size_t)tok[a] * (size_t)vd + (size_t)h * (size_t)dv;
            memset(o, 0, (size_t)dv * sizeof(float));
            for (int e = 0; e < dk; e++)
                kern_axpy(dv, q[e] * expf(cum[a + 1]), S + (size_t)e * (size_t)dv, o);
            for (int b = 0; b <= a; b++) {
                const float *k = r->k + (size_t)tok[b] * (size_t)kd + (size_t)h * (size_t)dk;
                const float *v = r->v + (size_t)tok[b] * (size_t)vd + (size_t)h * (size_t)dv;
                kern_axpy(dv, kern_dot_f32(dk, q, k) * expf(cum[a + 1] - cum[b + 1]), v, o);
            }
        }
    }
    /* the recurrence: the states to keep, and a single token's output */
    const int keep_from = n - c->n_state_keep;
    for (int a = 0; a < n; a++) {
        const float *k = r->k + (size_t)tok[a] * (size_t)kd + (size_t)h * (size_t)dk;
        const float *v = r->v + (size_t)tok[a] * (size_t)vd + (size_t)h * (size_t)dv;
        const float gamma = expf(cum[a + 1] - cum[a]);
        for (int e = 0; e < dk; e++) {
            float *s = S + (size_t)e * (size_t)dv;
            for (int d = 0; d < dv; d++)
                s[d] = gamma * s[d] + k[e] * v[d];
        }
        if (a >= keep_from)
            memcpy(ssm_state_at(c->ssm, j->l, seq, c->tok_pos[tok[a]]) + hs, S,
                   (size_t)dk * (size_t)dv * sizeof(float));
    }
    if (n == 1) { /* recurrent form: o = q S_n */
        const float *q = r->q + (size_t)tok[0] * (size_t)kd + (size_t)h * (size_t)dk;
        float *o = r->o + (size_t)tok[0] * (size_t)vd + (size_t)h * (size_t)dv;
        memset(o, 0, (size_t)dv * sizeof(float));
        for (int e = 0; e < dk; e++)
            kern_axpy(dv, q[e], S + (size_t)e * (size_t)dv, o);
    }
}

static void ret_worker(void *arg, int ith, int nth)
{
    const struct ret_job *j = arg;
    float *tmp = j->r->tmp + (size_t)ith * tmp_stride(j->r);
    const int n_items = j->n_run * j->r->n_head;
    for (int it = ith; it < n_items; it += nth)
        ret_head(j, it / j->r->n_head, it % j->r->n_head, tmp);
}

/* Groups the chunk's tokens by sequence (first appearance order; a
 * sequence's tokens keep their order, which is by position). */
static int group_runs(strix_context *c, struct retention *r)
{
    int n_run = 0, at = 0;
    uint64_t done = 0;
    for (int t = 0; t < c->n_tok; t++) {
        const int seq = c->tok_seq[t];
        if ((done >> seq) & 1)
            continue;
        done |= (uint64_t)1 << seq;
        r->run[n_run++] = at;
        for (int u = t; u < c->n_tok; u++)
            if (c->tok_seq[u] == seq)
                r->tok[at++] = u;
    }
    r->run[n_run] = at;
    return n_run;
}

void retention_block(strix_context *c, int l, const float *in, const float *rope, float *out)
{
    const strix_model *m = c->model;
    const struct hparams *hp = &m->hp;
    const struct layer *L = &m->layers[l];
    struct retention *r = c->ret;
    const int n = c->n_tok, dk = r->dk, dv = r->dv, nh = r->n_head;
    const int kd = nh * dk, vd = nh * dv;
    const struct tensor *w[3] = {&L->wq, &L->wk, &L->wv};
    float *const y[3] = {r->q, r->k, r->v};
    mm_group(c, 3, w, y, in, n, 0);
    mm(c, &L->ret_gate, in, r->g, n, 0);
    if (L->ret_decay.data) { /* gated retention (yoco): log sigmoid(W_decay x) / tau */
        mm(c, &L->ret_decay, in, r->lg, n, 0);
        for (size_t i = 0; i < (size_t)n * (size_t)nh; i++) {
            const float z = r->lg[i];
            r->lg[i] = (z > 0.0f ? -log1pf(expf(-z)) : z - log1pf(expf(z))) / hp->ret_gate_tau;
        }
    } else {
        for (int t = 0; t < n; t++)
            memcpy(r->lg + (size_t)t * (size_t)nh, r->log_gamma, (size_t)nh * sizeof(float));
    }
    const float qs = 1.0f / sqrtf((float)dk);
    for (int t = 0; t < n; t++) {
        float *q = r->q + (size_t)t * (size_t)kd, *k = r->k + (size_t)t * (size_t)kd;
        const float *cs = rope + (size_t)t * (size_t)hp->n_rot;
        for (int h = 0; h < nh; h++) {
            kern_rope_apply(q + (size_t)h * (size_t)dk, hp->n_rot, hp->rope_neox, cs);
            kern_rope_apply(k + (size_t)h * (size_t)dk, hp->n_rot, hp->rope_neox, cs);
        }
        for (int i = 0; i < kd; i++)
            q[i] *= qs;
    }
    struct ret_job j = {c, r, l, group_runs(c, r)};
    const int items = j.n_run * nh;
    pool_run_n(c->pool, ret_worker, &j, items < r->n_threads ? items : r->n_threads);
    /* group norm per head, then the swish gate */
    const float *gn = L->ret_norm.data;
    for (int t = 0; t < n; t++)
        for (int h = 0; h < nh; h++) {
            float *o = r->o + (size_t)t * (size_t)vd + (size_t)h * (size_t)dv;
            const float *g = r->g + (size_t)t * (size_t)vd + (size_t)h * (size_t)dv;
            float mean = 0.0f, var = 0.0f;
            for (int d = 0; d < dv; d++)
                mean += o[d];
            mean /= (float)dv;
            for (int d = 0; d < dv; d++)
                var += (o[d] - mean) * (o[d] - mean);
            const float inv = 1.0f / sqrtf(var / (float)dv + hp->norm_eps);
            for (int d = 0; d < dv; d++)
                o[d] = (o[d] - mean) * inv * gn[h * dv + d] * (g[d] / (1.0f + expf(-g[d])));
        }
    mm(c, &L->wo, r->o, out, n, 1);
}
