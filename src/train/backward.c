/*
 * backward.c - the Llama block and the language-model head, forward with a
 * tape and backward to the hidden states (backward.h). Plain loops in F32,
 * written for clarity: the sizes trained here are small windows of small
 * models. Matrix-vector products use kern_dot_f32 (the reference order is
 * not needed: training results are compared against finite differences,
 * not bit patterns).
 *
 * Notation per token t: x input, n1 = rmsnorm(x) g1, q k v projections
 * (q, k rotated), scores S_ts = q_t . k_s / sqrt(hd) over the visible s,
 * P = softmax(S), o_t = sum_s P_ts v_s, a = Wo o, h = x + a,
 * n2 = rmsnorm(h) g2, act = silu(Wg n2) * (Wu n2), D = a + Wd act.
 */
#include <math.h>
#include <string.h>

#include "train/backward.h"
#include "util.h"
#include "kernels/kernels.h"

static size_t qdim(const struct bw_dims *d)
{
    return (size_t)d->n_head * (size_t)d->head_dim;
}

static size_t kvdim(const struct bw_dims *d)
{
    return (size_t)d->n_head_kv * (size_t)d->head_dim;
}

int bw_tape_init(struct bw_tape *tp, const struct bw_dims *d, int cap)
{
    memset(tp, 0, sizeof *tp);
    const size_t T = (size_t)cap, e = (size_t)d->n_embd, q = qdim(d), kv = kvdim(d);
    const size_t ff = (size_t)d->n_ff;
    size_t wide = e > q ? e : q;
    wide = wide > ff ? wide : ff;
    tp->cap = cap;
    tp->x = util_malloc(T * e * sizeof(float));
    tp->n1 = util_malloc(T * e * sizeof(float));
    tp->r1 = util_malloc(T * sizeof(float));
    tp->q = util_malloc(T * q * sizeof(float));
    tp->k = util_malloc(T * kv * sizeof(float));
    tp->v = util_malloc(T * kv * sizeof(float));
    tp->p = util_malloc((size_t)d->n_head * T * T * sizeof(float));
    tp->o = util_malloc(T * q * sizeof(float));
    tp->h = util_malloc(T * e * sizeof(float));
    tp->n2 = util_malloc(T * e * sizeof(float));
    tp->r2 = util_malloc(T * sizeof(float));
    tp->gt = util_malloc(T * ff * sizeof(float));
    tp->up = util_malloc(T * ff * sizeof(float));
    tp->act = util_malloc(T * ff * sizeof(float));
    tp->cs = util_malloc(T * (size_t)(d->n_rot > 0 ? d->n_rot : 1) * sizeof(float));
    tp->d1 = util_malloc(T * wide * sizeof(float));
    tp->d2 = util_malloc((T * wide + 2 * ff + e) * sizeof(float));
    tp->dq = util_malloc(T * q * sizeof(float));
    tp->dk = util_malloc(T * kv * sizeof(float));
    tp->dv = util_malloc(T * kv * sizeof(float));
    int ok = 1;
    for (int k = 0; d->lora_rank > 0 && k < BW_NPROJ; k++)
        ok &= (tp->u[k] = util_malloc(T * (size_t)d->lora_rank * sizeof(float))) != NULL;
    return ok && tp->x && tp->n1 && tp->r1 && tp->q && tp->k && tp->v && tp->p && tp->o && tp->h &&
           tp->n2 && tp->r2 && tp->gt && tp->up && tp->act && tp->cs && tp->d1 && tp->d2 &&
           tp->dq && tp->dk && tp->dv;
}

void bw_tape_free(struct bw_tape *tp)
{
    float *all[] = {tp->x,  tp->n1, tp->r1, tp->q,  tp->k,   tp->v,  tp->p,
                    tp->o,  tp->h,  tp->n2, tp->r2, tp->gt,  tp->up, tp->act,
                    tp->cs, tp->d1, tp->d2, tp->dq, tp->dk, tp->dv};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        util_free(all[i]);
    for (int k = 0; k < BW_NPROJ; k++)
        util_free(tp->u[k]);
    memset(tp, 0, sizeof *tp);
}

void bw_matvec(float *y, const float *w, const float *x, int rows, int cols, int acc)
{
    for (int r = 0; r < rows; r++) {
        const float s = kern_dot_f32(cols, w + (size_t)r * (size_t)cols, x);
        y[r] = acc ? y[r] + s : s;
    }
}

void bw_matvec_t(float *dx, const float *w, const float *dy, int rows, int cols)
{
    for (int r = 0; r < rows; r++) {
        const float g = dy[r];
        if (g == 0.0f)
            continue;
        const float *wr = w + (size_t)r * (size_t)cols;
        for (int i = 0; i < cols; i++)
            dx[i] += g * wr[i];
    }
}

float bw_rmsnorm(float *y, const float *x, const float *g, int n, float eps)
{
    double ss = 0.0;
    for (int i = 0; i < n; i++)
        ss += (double)x[i] * x[i];
    const float r = (float)(1.0 / sqrt(ss / n + eps));
    for (int i = 0; i < n; i++)
        y[i] = x[i] * r * (g ? g[i] : 1.0f);
    return r;
}

/* y_i = x_i r g_i with r = (mean x^2 + eps)^-1/2:
 * dx_j = r g_j dy_j - r^3 / n x_j sum_i dy_i g_i x_i */
void bw_rmsnorm_back(float *dx, const float *dy, const float *x, const float *g, float r, int n)
{
    double dot = 0.0;
    for (int i = 0; i < n; i++)
        dot += (double)dy[i] * (g ? g[i] : 1.0f) * x[i];
    const float c = (float)(dot * r * r * r / n);
    for (int j = 0; j < n; j++)
        dx[j] += r * (g ? g[j] : 1.0f) * dy[j] - c * x[j];
}

/* Rotates v by the table cs (kern_rope_table's layout); inverse: by -theta,
 * which is the transpose, so it maps a gradient back. */
static void rope(float *v, const struct bw_dims *d, const float *cs, int inverse)
{
    const int half = d->n_rot / 2;
    for (int i = 0; i < half; i++) {
        const float c = cs[2 * i], s = inverse ? -cs[2 * i + 1] : cs[2 * i + 1];
        const int a = d->neox ? i : 2 * i, b = d->neox ? i + half : 2 * i + 1;
        const float v0 = v[a], v1 = v[b];
        v[a] = v0 * c - v1 * s;
        v[b] = v0 * s + v1 * c;
    }
}

/* Token t's A x of adapter k (NULL without adapters). */
static float *urow(const struct bw_dims *d, const struct bw_tape *tp, int k, int t)
{
    return d->lora_rank > 0 ? tp->u[k] + (size_t)t * (size_t)d->lora_rank : NULL;
}

/* y (rows) = W x (y += when acc), plus the adapter's B (A x) when the block
 * has one for projection k; u: where A x is kept. */
static void proj(const struct bw_dims *d, const struct bw_block *w, int k, const float *W,
                 float *y, const float *x, int rows, int cols, float *u, int acc)
{
    bw_matvec(y, W, x, rows, cols, acc);
    if (d->lora_rank > 0 && w->lora_a[k]) {
        bw_matvec(u, w->lora_a[k], x, d->lora_rank, cols, 0);
        bw_matvec(y, w->lora_b[k], u, rows, d->lora_rank, 1);
    }
}

/* The transpose of proj for one token: dx (cols) += W^T dy + A^T (B^T dy);
 * the adapter's gradients dB += dy u^T and dA += (B^T dy) x^T into g. */
static void proj_back(const struct bw_dims *d, const struct bw_block *w, int k, const float *W,
                      float *dx, const float *dy, const float *x, const float *u, int rows,
                      int cols, const struct bw_lora_grad *g)
{
    bw_matvec_t(dx, W, dy, rows, cols);
    if (!(d->lora_rank > 0 && w->lora_a[k]))
        return;
    const int R = d->lora_rank;
    float du[BW_MAX_RANK] = {0};
    bw_matvec_t(du, w->lora_b[k], dy, rows, R);
    if (g && g->b[k])
        for (int i = 0; i < rows; i++) {
            if (dy[i] == 0.0f)
                continue;
            float *gb = g->b[k] + (size_t)i * R;
            for (int j = 0; j < R; j++)
                gb[j] += dy[i] * u[j];
        }
    if (g && g->a[k])
        for (int j = 0; j < R; j++) {
            float *ga = g->a[k] + (size_t)j * cols;
            for (int i = 0; i < cols; i++)
                ga[i] += du[j] * x[i];
        }
    bw_matvec_t(dx, w->lora_a[k], du, R, cols);
}

static inline int visible(const uint8_t *vis, int s, int t)
{
    return s == t || (s < t && (!vis || vis[s]));
}

void bw_block_forward(const struct bw_dims *d, const struct bw_block *w, struct bw_tape *tp,
                      int T, const int32_t *pos, const uint8_t *vis, const float *x,
                      float *delta)
{
    STRIX_ASSERT(T >= 1 && T <= tp->cap);
    const int e = d->n_embd, hd = d->head_dim, ff = d->n_ff;
    const int q_dim = (int)qdim(d), kv_dim = (int)kvdim(d), group = d->n_head / d->n_head_kv;
    const float scale = 1.0f / sqrtf((float)hd);
    memcpy(tp->x, x, (size_t)T * (size_t)e * sizeof(float));
    for (int t = 0; t < T; t++) {
        const float *xt = x + (size_t)t * e;
        float *n1 = tp->n1 + (size_t)t * e;
        tp->r1[t] = bw_rmsnorm(n1, xt, w->attn_norm, e, d->eps);
        float *q = tp->q + (size_t)t * q_dim, *k = tp->k + (size_t)t * kv_dim;
        proj(d, w, BW_Q, w->wq, q, n1, q_dim, e, urow(d, tp, BW_Q, t), 0);
        proj(d, w, BW_K, w->wk, k, n1, kv_dim, e, urow(d, tp, BW_K, t), 0);
        proj(d, w, BW_V, w->wv, tp->v + (size_t)t * kv_dim, n1, kv_dim, e, urow(d, tp, BW_V, t), 0);
        float *cs = tp->cs + (size_t)t * d->n_rot;
        kern_rope_table(cs, d->n_rot, pos[t], d->rope_base);
        for (int h = 0; h < d->n_head; h++)
            rope(q + (size_t)h * hd, d, cs, 0);
        for (int h = 0; h < d->n_head_kv; h++)
            rope(k + (size_t)h * hd, d, cs, 0);
    }
    /* attention: P (head, t, s), zero where s is not visible */
    for (int h = 0; h < d->n_head; h++) {
        const int g = h / group;
        for (int t = 0; t < T; t++) {
            float *p = tp->p + ((size_t)h * T + t) * (size_t)T;
            const float *q = tp->q + (size_t)t * q_dim + (size_t)h * hd;
            float mx = -INFINITY;
            for (int s = 0; s < T; s++) {
                p[s] = 0.0f;
                if (!visible(vis, s, t))
                    continue;
                p[s] = kern_dot_f32(hd, q, tp->k + (size_t)s * kv_dim + (size_t)g * hd) * scale;
                mx = p[s] > mx ? p[s] : mx;
            }
            double sum = 0.0;
            for (int s = 0; s < T; s++)
                if (visible(vis, s, t)) {
                    p[s] = expf(p[s] - mx);
                    sum += p[s];
                }
            float *o = tp->o + (size_t)t * q_dim + (size_t)h * hd;
            memset(o, 0, (size_t)hd * sizeof(float));
            for (int s = 0; s < T; s++) {
                p[s] = (float)(p[s] / sum);
                if (p[s] != 0.0f) {
                    const float *v = tp->v + (size_t)s * kv_dim + (size_t)g * hd;
                    for (int i = 0; i < hd; i++)
                        o[i] += p[s] * v[i];
                }
            }
        }
    }
    for (int t = 0; t < T; t++) {
        float *dt = delta + (size_t)t * e, *ht = tp->h + (size_t)t * e;
        proj(d, w, BW_O, w->wo, dt, tp->o + (size_t)t * q_dim, e, q_dim, urow(d, tp, BW_O, t), 0); /* a */
        for (int i = 0; i < e; i++)
            ht[i] = x[(size_t)t * e + i] + dt[i];
        float *n2 = tp->n2 + (size_t)t * e;
        tp->r2[t] = bw_rmsnorm(n2, ht, w->ffn_norm, e, d->eps);
        float *gt = tp->gt + (size_t)t * ff, *up = tp->up + (size_t)t * ff;
        float *act = tp->act + (size_t)t * ff;
        proj(d, w, BW_GATE, w->w_gate, gt, n2, ff, e, urow(d, tp, BW_GATE, t), 0);
        proj(d, w, BW_UP, w->w_up, up, n2, ff, e, urow(d, tp, BW_UP, t), 0);
        for (int i = 0; i < ff; i++)
            act[i] = gt[i] / (1.0f + expf(-gt[i])) * up[i];
        proj(d, w, BW_DOWN, w->w_down, dt, act, e, ff, urow(d, tp, BW_DOWN, t), 1); /* D = a + Wd act */
    }
}

void bw_block_backward(const struct bw_dims *d, const struct bw_block *w, struct bw_tape *tp,
                       int T, const float *ddelta, float *dx, const struct bw_lora_grad *lg)
{
    const int e = d->n_embd, hd = d->head_dim, ff = d->n_ff;
    const int q_dim = (int)qdim(d), kv_dim = (int)kvdim(d), group = d->n_head / d->n_head_kv;
    const float scale = 1.0f / sqrtf((float)hd);
    float *dh = tp->d1; /* (T, e): gradient at h, then reused */
    float *dtmp = tp->d2;
    /* feed-forward: D = a + Wd act, so dD reaches a directly and h through n2 */
    for (int t = 0; t < T; t++) {
        const float *dD = ddelta + (size_t)t * e;
        const float *gt = tp->gt + (size_t)t * ff, *up = tp->up + (size_t)t * ff;
        float *dact = dtmp; /* (ff) */
        memset(dact, 0, (size_t)ff * sizeof(float));
        proj_back(d, w, BW_DOWN, w->w_down, dact, dD, tp->act + (size_t)t * ff,
                  urow(d, tp, BW_DOWN, t), e, ff, lg);
        /* act = silu(g) u; reuse dact for dg and the next row of dtmp for du */
        float *du = dtmp + ff;
        for (int i = 0; i < ff; i++) {
            const float sg = 1.0f / (1.0f + expf(-gt[i]));
            du[i] = dact[i] * gt[i] * sg;
            dact[i] = dact[i] * up[i] * sg * (1.0f + gt[i] * (1.0f - sg));
        }
        float *dn2 = du + ff; /* (e) */
        memset(dn2, 0, (size_t)e * sizeof(float));
        const float *n2 = tp->n2 + (size_t)t * e;
        proj_back(d, w, BW_GATE, w->w_gate, dn2, dact, n2, urow(d, tp, BW_GATE, t), ff, e, lg);
        proj_back(d, w, BW_UP, w->w_up, dn2, du, n2, urow(d, tp, BW_UP, t), ff, e, lg);
        float *dht = dh + (size_t)t * e;
        memcpy(dht, dD, (size_t)e * sizeof(float)); /* D = a + ... and h = x + a: da = dD + dh */
        bw_rmsnorm_back(dht, dn2, tp->h + (size_t)t * e, w->ffn_norm, tp->r2[t], e);
    }
    /* dh is now d/da (= d/dh of the FFN part plus dD); h = x + a also passes
     * the FFN part of dh to x: dx += dh - dD */
    for (size_t i = 0; i < (size_t)T * e; i++)
        dx[i] += dh[i] - ddelta[i];
    /* a = Wo o */
    float *dO = dtmp; /* (T, q_dim) */
    memset(dO, 0, (size_t)T * q_dim * sizeof(float));
    for (int t = 0; t < T; t++)
        proj_back(d, w, BW_O, w->wo, dO + (size_t)t * q_dim, dh + (size_t)t * e,
                  tp->o + (size_t)t * q_dim, urow(d, tp, BW_O, t), e,
                  q_dim, lg);
    /* attention */
    memset(tp->dq, 0, (size_t)T * q_dim * sizeof(float));
    memset(tp->dk, 0, (size_t)T * kv_dim * sizeof(float));
    memset(tp->dv, 0, (size_t)T * kv_dim * sizeof(float));
    float *dp = dh; /* (T) scores' gradient of one (head, t); dh no longer needed */
    for (int h = 0; h < d->n_head; h++) {
        const int g = h / group;
        for (int t = 0; t < T; t++) {
            const float *p = tp->p + ((size_t)h * T + t) * (size_t)T;
            const float *dot = dO + (size_t)t * q_dim + (size_t)h * hd;
            const float *q = tp->q + (size_t)t * q_dim + (size_t)h * hd;
            double pdp = 0.0;
            for (int s = 0; s <= t; s++) {
                dp[s] = 0.0f;
                if (p[s] == 0.0f)
                    continue;
                const float *v = tp->v + (size_t)s * kv_dim + (size_t)g * hd;
                float *dv = tp->dv + (size_t)s * kv_dim + (size_t)g * hd;
                dp[s] = kern_dot_f32(hd, dot, v);
                for (int i = 0; i < hd; i++)
                    dv[i] += p[s] * dot[i];
                pdp += (double)p[s] * dp[s];
            }
            float *dq = tp->dq + (size_t)t * q_dim + (size_t)h * hd;
            for (int s = 0; s <= t; s++) {
                if (p[s] == 0.0f)
                    continue;
                const float ds = p[s] * (dp[s] - (float)pdp) * scale;
                const float *k = tp->k + (size_t)s * kv_dim + (size_t)g * hd;
                float *dk = tp->dk + (size_t)s * kv_dim + (size_t)g * hd;
                for (int i = 0; i < hd; i++) {
                    dq[i] += ds * k[i];
                    dk[i] += ds * q[i];
                }
            }
        }
    }
    /* rotary (transpose), projections, input norm */
    for (int t = 0; t < T; t++) {
        const float *cs = tp->cs + (size_t)t * d->n_rot;
        float *dq = tp->dq + (size_t)t * q_dim, *dk = tp->dk + (size_t)t * kv_dim;
        for (int h = 0; h < d->n_head; h++)
            rope(dq + (size_t)h * hd, d, cs, 1);
        for (int h = 0; h < d->n_head_kv; h++)
            rope(dk + (size_t)h * hd, d, cs, 1);
        float *dn1 = dtmp; /* dO is consumed */
        memset(dn1, 0, (size_t)e * sizeof(float));
        const float *n1 = tp->n1 + (size_t)t * e;
        proj_back(d, w, BW_Q, w->wq, dn1, dq, n1, urow(d, tp, BW_Q, t), q_dim, e, lg);
        proj_back(d, w, BW_K, w->wk, dn1, dk, n1, urow(d, tp, BW_K, t), kv_dim, e, lg);
        proj_back(d, w, BW_V, w->wv, dn1, tp->dv + (size_t)t * kv_dim, n1, urow(d, tp, BW_V, t),
                  kv_dim, e, lg);
        bw_rmsnorm_back(dx + (size_t)t * e, dn1, tp->x + (size_t)t * e, w->attn_norm, tp->r1[t],
                        e);
    }
}

double bw_head_loss(const struct bw_dims *d, const float *norm, const float *w_out, int n_vocab,
                    int T, const float *x, const int32_t *target, float *dx, float *logits,
                    float *xn)
{
    const int e = d->n_embd;
    double loss = 0.0;
    int n = 0;
    for (int t = 0; t < T; t++)
        n += target[t] >= 0;
    if (dx)
        memset(dx, 0, (size_t)T * e * sizeof(float));
    if (n == 0)
        return NAN;
    for (int t = 0; t < T; t++) {
        if (target[t] < 0)
            continue;
        const float *xt = x + (size_t)t * e;
        const float r = bw_rmsnorm(xn, xt, norm, e, d->eps);
        bw_matvec(logits, w_out, xn, n_vocab, e, 0);
        float mx = logits[0];
        for (int i = 1; i < n_vocab; i++)
            mx = logits[i] > mx ? logits[i] : mx;
        double sum = 0.0;
        for (int i = 0; i < n_vocab; i++)
            sum += exp((double)logits[i] - mx);
        loss += log(sum) + mx - logits[target[t]];
        if (!dx)
            continue;
        /* dlogits = (softmax - onehot) / n */
        for (int i = 0; i < n_vocab; i++)
            logits[i] = (float)(exp((double)logits[i] - mx) / sum / n);
        logits[target[t]] -= 1.0f / (float)n;
        float *dxn = xn; /* xn is consumed: reuse it for its gradient */
        memset(dxn, 0, (size_t)e * sizeof(float));
        bw_matvec_t(dxn, w_out, logits, n_vocab, e);
        bw_rmsnorm_back(dx + (size_t)t * e, dxn, xt, norm, r, e);
    }
    return loss / n;
}
