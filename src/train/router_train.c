/*
 * router_train.c - training the decision modules of dynamic depth (D-LLM)
 * with the base model frozen (strix_router_train, strix.h).
 *
 * One window of T tokens, per layer l and token t:
 *   s = router_l(x_t)                        decision logit (route.c)
 *   g = sigmoid((s + n) / tau), n logistic   Gumbel-sigmoid relaxation
 *   d = [s + n >= 0]                         hard decision (straight-through)
 *   y_t = x_t + d_t D_l(x)_t                 D: the block's delta (backward.c),
 *                                            attention over the tokens with d = 1
 * loss = LM loss of the final states + penalty * (mean g - keep)^2.
 * Backward: dL/dg_t = dL/dy_t . D_t (+ the penalty's), dL/dD_t = d_t dL/dy_t,
 * dL/dx = dL/dy + the block's backward of dL/dD; dL/ds = dL/dg g (1-g) / tau
 * into the router's MLP, and through the MLP into its input x (a decision
 * changes the states later decisions see).
 *
 * A step is STEP_WINDOWS windows, each computed by one worker into its own
 * gradient, summed in window order: the same result at any thread count.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "train/backward.h"
#include "runtime/route.h"
#include "model/arch.h"
#include "quant/dtype.h"
#include "pool.h"
#include "kernels/kernels.h"
#include "train/lora.h"
#include "train/router_train.h"

#define STEP_WINDOWS 4

#define WARM_BIAS 4.0f /* a warm-started module's constant logit */
#define N_CAL 16        /* calibration windows without validation windows */

UTIL_PARAMS_DEFINE(router_train, .keep = 0.6f, .epochs = 1, .lr = 1e-3f, .window = 128,
                   .n_hidden = 16, .tau = 1.0f, .penalty = 20.0f, .n_threads = 1, .seed = 1)

enum { WIN_LOGITS, WIN_LOSS, WIN_TRAIN }; /* what window() computes */

struct trainer {
    const strix_model *m;
    const struct strix_router_train_params *p;
    struct bw_dims d;
    struct bw_block *blk; /* (n_layer) F32 views */
    float **owned;        /* dequantized copies */
    int n_owned;
    float *emb, *out_w, *out_norm; /* (n_vocab, e), (n_vocab, e), (e) */
    strix_router *r;
    size_t n_rpar; /* router parameters */
    size_t n_par;  /* router parameters, then the adapters' */
    int soft;      /* tests: y = x + g D with the soft g (a differentiable loss) */
    /* adapters (p->lora_rank > 0): layer l's A of projection k at
     * lora + l * lora_layer + lora_at[k], its B right after */
    float *lora;
    size_t n_lora, lora_layer, lora_at[BW_NPROJ];
    int lrows[BW_NPROJ], lcols[BW_NPROJ];
};

/* One worker's buffers for a window. */
struct worker {
    struct bw_tape *tape; /* (n_layer) */
    float *xs;            /* (n_layer + 1, T, e) states before each layer, and final */
    float *delta;         /* (n_layer, T, e) */
    float *g;             /* (n_layer, T) soft decisions */
    float *sv;            /* (n_layer, T) decision logits */
    float *ds;            /* (T) gradient of one layer's decision logits */
    uint8_t *dec;         /* (n_layer, T) hard decisions */
    float *rin;           /* (n_layer, T, e + n_hidden) router input and hidden */
    float *dx, *dd;       /* (T, e) */
    float *logits, *xn;   /* (n_vocab), (e) */
    float *grad;          /* (n_par) */
    double loss, frac, soft;
};

struct step_job {
    struct trainer *tr;
    struct worker *w;
    const strix_token *tokens;
    const int *starts; /* window starts of this step */
    int n_win;
    uint64_t noise_seed;
    int mode;    /* WIN_*; not WIN_TRAIN: noiseless, window i's loss in loss[i] */
    float *sv;   /* WIN_LOGITS: window i's decision logits at sv + i * (n_layer * T) */
    double *loss;
};

static uint64_t mix64(uint64_t z)
{
    z += 0x9e3779b97f4a7c15ull;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static double unit(uint64_t *s)
{
    *s = mix64(*s);
    return ((double)(*s >> 11) + 0.5) * (1.0 / 9007199254740992.0); /* (0, 1) */
}

/* An F32 view of weight t: its data if F32, else a dequantized copy. */
static const float *f32_of(struct trainer *tr, const struct tensor *t)
{
    if (!t->data)
        return NULL;
    if (t->type == DTYPE_F32)
        return t->data;
    const dtype_dequant_fn deq = dtype_get(t->type)->dequantize;
    if (!deq)
        return NULL;
    const size_t rows = (size_t)t->ne[1] * (size_t)t->ne[2];
    float *f = util_malloc(rows * (size_t)t->ne[0] * sizeof(float));
    if (!f)
        return NULL;
    tr->owned[tr->n_owned++] = f;
    for (size_t i = 0; i < rows; i++)
        deq((const uint8_t *)t->data + i * t->row_bytes, f + i * (size_t)t->ne[0], t->ne[0]);
    return f;
}

/* One window: its decision logits into w->sv, and (mode WIN_LOSS, WIN_TRAIN)
 * its LM loss and executed fractions added into w, and (WIN_TRAIN) its
 * gradient into w->grad. seed 0: no noise. */
static void window(struct trainer *tr, struct worker *w, const strix_token *tok, uint64_t seed,
                   int mode)
{
    const struct hparams *hp = &tr->m->hp;
    const strix_router *r = tr->r;
    const struct strix_router_train_params *p = tr->p;
    const int e = hp->n_embd, nl = hp->n_layer, T = p->window, nh = r->n_hidden;
    const size_t te = (size_t)T * (size_t)e;
    int32_t pos[4096], target[4096];
    for (int t = 0; t < T; t++) {
        pos[t] = t;
        target[t] = tok[t + 1];
        memcpy(w->xs + (size_t)t * e, tr->emb + (size_t)tok[t] * e, (size_t)e * sizeof(float));
    }
    uint64_t rng = seed;
    double n_run = 0, soft = 0;
    for (int l = 0; l < nl; l++) {
        const float *x = w->xs + (size_t)l * te;
        float *y = w->xs + (size_t)(l + 1) * te, *dl = w->delta + (size_t)l * te;
        float *g = w->g + (size_t)l * T;
        uint8_t *dec = w->dec + (size_t)l * T;
        for (int t = 0; t < T; t++) {
            float *rin = w->rin + ((size_t)l * T + t) * (size_t)(e + nh);
            const float s = route_logit(r, l, x + (size_t)t * e, rin);
            w->sv[(size_t)l * T + t] = s;
            const double u = seed ? unit(&rng) : 0.5;
            const double z = (s + log(u) - log1p(-u)) / p->tau;
            g[t] = (float)(1.0 / (1.0 + exp(-z)));
            dec[t] = z >= 0.0;
            n_run += dec[t];
            soft += g[t];
        }
        bw_block_forward(&tr->d, &tr->blk[l], &w->tape[l], T, pos, dec, x, dl);
        for (int t = 0; t < T; t++)
            for (int i = 0; i < e; i++)
                y[(size_t)t * e + i] =
                    x[(size_t)t * e + i] + (tr->soft ? g[t] : (float)dec[t]) * dl[(size_t)t * e + i];
    }
    const double n_pairs = (double)nl * T;
    if (mode == WIN_LOGITS)
        return;
    w->loss += bw_head_loss(&tr->d, tr->out_norm, tr->out_w, hp->n_vocab, T,
                            w->xs + (size_t)nl * te, target, w->dx, w->logits, w->xn);
    w->frac += n_run / n_pairs;
    w->soft += soft / n_pairs;
    if (mode == WIN_LOSS)
        return;
    const double dpen = 2.0 * p->penalty * (soft / n_pairs - p->keep) / n_pairs;
    const size_t o_b1 = (size_t)nl * nh * e, o_w2 = o_b1 + (size_t)nl * nh,
                 o_b2 = o_w2 + (size_t)nl * nh;
    for (int l = nl - 1; l >= 0; l--) {
        const float *dl = w->delta + (size_t)l * te, *g = w->g + (size_t)l * T;
        const uint8_t *dec = w->dec + (size_t)l * T;
        for (int t = 0; t < T; t++) {
            const float *dy = w->dx + (size_t)t * e;
            const double dg = kern_dot_f32(e, dy, dl + (size_t)t * e) + dpen;
            /* frozen modules: the decisions are constants */
            const float ds = p->freeze_router ? 0.0f : (float)(dg * g[t] * (1.0 - g[t]) / p->tau);
            w->ds[t] = ds;
            const float mult = tr->soft ? g[t] : (float)dec[t];
            for (int i = 0; i < e; i++)
                w->dd[(size_t)t * e + i] = mult * dy[i];
            /* s = w2 . hid + b2, hid = relu(W1 xn + b1) */
            const float *xn = w->rin + ((size_t)l * T + t) * (size_t)(e + nh), *hid = xn + e;
            const float *w2 = r->w2 + (size_t)l * nh;
            w->grad[o_b2 + l] += ds;
            for (int j = 0; j < nh; j++) {
                w->grad[o_w2 + (size_t)l * nh + j] += ds * hid[j];
                if (hid[j] <= 0.0f)
                    continue;
                const float dh = ds * w2[j];
                w->grad[o_b1 + (size_t)l * nh + j] += dh;
                float *gw1 = w->grad + ((size_t)l * nh + j) * (size_t)e;
                for (int i = 0; i < e; i++)
                    gw1[i] += dh * xn[i];
            }
        }
        /* dx stays as dL/dy (the residual) plus the block's backward, plus
         * the decision's: s = w2 . relu(W1 rmsnorm(x) + b1) + b2 */
        struct bw_lora_grad lg;
        for (int k = 0; tr->lora && k < BW_NPROJ; k++) {
            lg.a[k] = w->grad + tr->n_rpar + (size_t)l * tr->lora_layer + tr->lora_at[k];
            lg.b[k] = lg.a[k] + (size_t)tr->d.lora_rank * (size_t)tr->lcols[k];
        }
        bw_block_backward(&tr->d, &tr->blk[l], &w->tape[l], T, w->dd, w->dx,
                          tr->lora ? &lg : NULL);
        const float *w1 = r->w1 + (size_t)l * nh * e, *w2 = r->w2 + (size_t)l * nh;
        for (int t = 0; t < T; t++) {
            if (w->ds[t] == 0.0f)
                continue;
            const float *rin = w->rin + ((size_t)l * T + t) * (size_t)(e + nh), *hid = rin + e;
            float *dxn = w->logits; /* (e) scratch */
            memset(dxn, 0, (size_t)e * sizeof(float));
            for (int j = 0; j < nh; j++)
                if (hid[j] > 0.0f) {
                    const float dh = w->ds[t] * w2[j];
                    for (int i = 0; i < e; i++)
                        dxn[i] += dh * w1[(size_t)j * e + i];
                }
            const float *xt = w->xs + (size_t)l * te + (size_t)t * e;
            double ss = 0.0;
            for (int i = 0; i < e; i++)
                ss += (double)xt[i] * xt[i];
            const float inv = (float)(1.0 / sqrt(ss / e + 1e-6)); /* as route_logit */
            bw_rmsnorm_back(w->dx + (size_t)t * e, dxn, xt, NULL, inv, e);
        }
    }
}

/* Worker ith computes windows ith, ith + nth, ...; window i into slot i's
 * buffers (one slot per window of a step). */
static void step_worker(void *arg, int ith, int nth)
{
    struct step_job *j = arg;
    for (int i = ith; i < j->n_win; i += nth) {
        if (j->mode != WIN_TRAIN) {
            struct worker *w = &j->w[ith];
            w->loss = w->frac = w->soft = 0.0;
            window(j->tr, w, j->tokens + j->starts[i], 0, j->mode);
            const size_t per = (size_t)j->tr->m->hp.n_layer * (size_t)j->tr->p->window;
            if (j->sv)
                memcpy(j->sv + (size_t)i * per, w->sv, per * sizeof(float));
            if (j->loss)
                j->loss[i] = w->loss;
            continue;
        }
        struct worker *w = &j->w[i];
        memset(w->grad, 0, j->tr->n_par * sizeof(float));
        w->loss = w->frac = w->soft = 0.0;
        const uint64_t seed = j->tr->p->freeze_router ? 0 : mix64(j->noise_seed + (uint64_t)i);
        window(j->tr, w, j->tokens + j->starts[i], seed, WIN_TRAIN);
    }
}

static void worker_free(struct worker *w, int nl)
{
    for (int l = 0; w->tape && l < nl; l++)
        bw_tape_free(&w->tape[l]);
    util_free(w->tape);
    util_free(w->xs);
    util_free(w->delta);
    util_free(w->g);
    util_free(w->sv);
    util_free(w->ds);
    util_free(w->dec);
    util_free(w->rin);
    util_free(w->dx);
    util_free(w->dd);
    util_free(w->logits);
    util_free(w->xn);
    util_free(w->grad);
}

static int worker_init(struct worker *w, const struct trainer *tr)
{
    const struct hparams *hp = &tr->m->hp;
    const size_t T = (size_t)tr->p->window, e = (size_t)hp->n_embd, nl = (size_t)hp->n_layer;
    memset(w, 0, sizeof *w);
    w->tape = util_calloc(nl, sizeof *w->tape);
    if (!w->tape)
        return 0;
    for (size_t l = 0; l < nl; l++)
        if (!bw_tape_init(&w->tape[l], &tr->d, (int)T))
            return 0;
    w->xs = util_malloc((nl + 1) * T * e * sizeof(float));
    w->delta = util_malloc(nl * T * e * sizeof(float));
    w->g = util_malloc(nl * T * sizeof(float));
    w->sv = util_malloc(nl * T * sizeof(float));
    w->ds = util_malloc(T * sizeof(float));
    w->dec = util_malloc(nl * T);
    w->rin = util_malloc(nl * T * (e + (size_t)tr->r->n_hidden) * sizeof(float));
    w->dx = util_malloc(T * e * sizeof(float));
    w->dd = util_malloc(T * e * sizeof(float));
    w->logits = util_malloc((size_t)hp->n_vocab * sizeof(float));
    w->xn = util_malloc(e * sizeof(float));
    w->grad = util_malloc(tr->n_par * sizeof(float));
    return w->xs && w->delta && w->g && w->sv && w->ds && w->dec && w->rin && w->dx && w->dd && w->logits &&
           w->xn && w->grad;
}

static int cmp_float(const void *a, const void *b)
{
    const float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

/* The logit shift c with #(sv >= c) closest to keep * n (sv ascending);
 * equal values stay on one side (a warm-started module's logits are all
 * equal). */
static float shift_for(const float *sv, size_t n, double keep)
{
    size_t want = (size_t)(keep * (double)n + 0.5);
    if (want > n)
        want = n;
    size_t b = n - want; /* the first executed value */
    if (b > 0 && b < n && sv[b - 1] == sv[b]) {
        size_t lo = b, hi = b;
        while (lo > 0 && sv[lo - 1] == sv[b])
            lo--;
        while (hi < n && sv[hi] == sv[b])
            hi++;
        b = (n - lo) - want <= want - (n - hi) ? lo : hi;
    }
    if (b == 0)
        return sv[0] - 1.0f;
    if (b == n)
        return sv[n - 1] + 1.0f;
    const float m = sv[b - 1] + 0.5f * (sv[b] - sv[b - 1]);
    return m > sv[b - 1] ? m : sv[b];
}

/* Windows for calibration and validation, and their buffers. */
struct evalset {
    const strix_token *tokens;
    int *starts;
    int n;
    float *sv;    /* (n, n_layer, T) */
    double *loss; /* (n) */
};

/* A noiseless pass over the set's windows (mode WIN_LOGITS or WIN_LOSS);
 * returns the mean loss (WIN_LOSS). */
static double eval_pass(struct trainer *tr, struct worker *wk, struct pool *pool,
                        struct evalset *es, int mode)
{
    struct step_job j = {tr, wk, es->tokens, es->starts, es->n, 0, mode, es->sv, es->loss};
    pool_run_n(pool, step_worker, &j, STEP_WINDOWS);
    double sum = 0.0;
    for (int i = 0; mode == WIN_LOSS && i < es->n; i++)
        sum += es->loss[i];
    return sum / es->n;
}

/* Shifts every layer's bias by one amount so that the noiseless executed
 * fraction on the set is keep (a few rounds: the decisions move the states
 * later layers see); returns the total shift (execute when the unshifted
 * logit >= it). */
static float calibrate(struct trainer *tr, struct worker *wk, struct pool *pool,
                       struct evalset *es, double keep, int rounds)
{
    const int nl = tr->m->hp.n_layer;
    const size_t n_sv = (size_t)es->n * (size_t)nl * (size_t)tr->p->window;
    float total = 0.0f;
    for (int round = 0; round < rounds; round++) {
        eval_pass(tr, wk, pool, es, WIN_LOGITS);
        qsort(es->sv, n_sv, sizeof(float), cmp_float);
        const float shift = shift_for(es->sv, n_sv, keep);
        for (int l = 0; l < nl; l++)
            tr->r->b2[l] -= shift;
        total += shift;
    }
    return total;
}

/* Executed fraction of the set's windows, noiseless, as the router is. */
static double eval_frac(struct trainer *tr, struct worker *wk, struct pool *pool,
                        struct evalset *es)
{
    eval_pass(tr, wk, pool, es, WIN_LOGITS);
    const size_t n_sv = (size_t)es->n * (size_t)tr->m->hp.n_layer * (size_t)tr->p->window;
    size_t run = 0;
    for (size_t i = 0; i < n_sv; i++)
        run += es->sv[i] >= 0.0f;
    return (double)run / (double)n_sv;
}

/* Whether the model's blocks are the Llama block backward.c computes. */
static int llama_shaped(const strix_model *m)
{
    const struct hparams *hp = &m->hp;
    const struct arch *ad = m->ad;
    if (ad->norm != NORM_RMS || ad->pos != POS_ROPE || ad->parallel || hp->post_norm ||
        ad->emb_sqrt || hp->n_swa > 0 || hp->rope_freq_scale != 1.0f ||
        hp->yarn_ext_factor != 0.0f || hp->n_expert > 0 || hp->attn_softcap > 0.0f ||
        hp->final_softcap > 0.0f || hp->clamp_kqv > 0.0f || m->tok_norm.data ||
        m->output_norm_b.data)
        return 0;
    for (int l = 0; l < hp->n_layer; l++) {
        const struct layer *L = &m->layers[l];
        if (!L->wq.data || !L->w_gate.data || L->wqkv.data || L->bq.data || L->bk.data ||
            L->bv.data || L->bo.data || L->b_up.data || L->b_down.data || L->attn_post_norm.data ||
            L->ffn_post_norm.data || L->attn_norm_b.data || L->attn_norm_2.data ||
            ad->act != ACT_SILU)
            return 0;
    }
    return 1;
}

/* The F32 views of the frozen weights (dequantized copies where needed). */
static int trainer_weights(struct trainer *tr, strix_error *err)
{
    const strix_model *m = tr->m;
    const struct hparams *hp = &m->hp;
    tr->d = (struct bw_dims){hp->n_embd, hp->n_head,    hp->n_head_kv, hp->head_dim,
                             hp->n_ff,   hp->n_rot,     hp->rope_neox, hp->norm_eps,
                             hp->rope_freq_base, tr->p->lora_rank};
    tr->owned = util_calloc((size_t)hp->n_layer * 9 + 3, sizeof(float *));
    tr->blk = util_calloc((size_t)hp->n_layer, sizeof *tr->blk);
    if (!tr->owned || !tr->blk)
        return err_set(err, STRIX_ERR_NOMEM, "out of memory for router training");
    tr->emb = (float *)f32_of(tr, &m->tok_embd);
    tr->out_w = (float *)f32_of(tr, &m->output);
    tr->out_norm = (float *)f32_of(tr, &m->output_norm);
    int ok = tr->emb && tr->out_w && tr->out_norm;
    for (int l = 0; ok && l < hp->n_layer; l++) {
        const struct layer *L = &m->layers[l];
        struct bw_block *b = &tr->blk[l];
        b->attn_norm = f32_of(tr, &L->attn_norm);
        b->wq = f32_of(tr, &L->wq);
        b->wk = f32_of(tr, &L->wk);
        b->wv = f32_of(tr, &L->wv);
        b->wo = f32_of(tr, &L->wo);
        b->ffn_norm = f32_of(tr, &L->ffn_norm);
        b->w_gate = f32_of(tr, &L->w_gate);
        b->w_up = f32_of(tr, &L->w_up);
        b->w_down = f32_of(tr, &L->w_down);
        ok = b->attn_norm && b->wq && b->wk && b->wv && b->wo && b->ffn_norm && b->w_gate &&
             b->w_up && b->w_down;
    }
    if (!ok)
        return err_set(err, STRIX_ERR_UNSUPPORTED,
                       "router training: a weight strix cannot dequantize (or out of memory)");
    tr->n_rpar = (size_t)hp->n_layer * (size_t)tr->r->n_hidden * (size_t)hp->n_embd +
                 2 * (size_t)hp->n_layer * (size_t)tr->r->n_hidden + (size_t)hp->n_layer;
    tr->n_par = tr->n_rpar;
    const int R = tr->d.lora_rank;
    if (R > 0) {
        const int e = hp->n_embd, qd = hp->n_head * hp->head_dim, kvd = hp->n_head_kv * hp->head_dim;
        const int rows[BW_NPROJ] = {qd, kvd, kvd, e, hp->n_ff, hp->n_ff, e};
        const int cols[BW_NPROJ] = {e, e, e, qd, e, e, hp->n_ff};
        tr->lora_layer = 0;
        for (int k = 0; k < BW_NPROJ; k++) {
            tr->lrows[k] = rows[k];
            tr->lcols[k] = cols[k];
            tr->lora_at[k] = tr->lora_layer;
            tr->lora_layer += (size_t)R * (size_t)(rows[k] + cols[k]);
        }
        tr->n_lora = tr->lora_layer * (size_t)hp->n_layer;
        tr->lora = util_calloc(tr->n_lora, sizeof(float));
        if (!tr->lora)
            return err_set(err, STRIX_ERR_NOMEM, "out of memory for router training");
        for (int l = 0; l < hp->n_layer; l++)
            for (int k = 0; k < BW_NPROJ; k++) {
                float *a = tr->lora + (size_t)l * tr->lora_layer + tr->lora_at[k];
                tr->blk[l].lora_a[k] = a;
                tr->blk[l].lora_b[k] = a + (size_t)R * (size_t)cols[k];
            }
        tr->n_par += tr->n_lora;
    }
    return STRIX_OK;
}

static void trainer_free(struct trainer *tr)
{
    for (int i = 0; i < tr->n_owned; i++)
        util_free(tr->owned[i]);
    util_free(tr->owned);
    util_free(tr->blk);
    util_free(tr->lora);
}

size_t router_train_lora_size(const strix_model *m, int rank)
{
    const struct hparams *hp = &m->hp;
    const size_t e = (size_t)hp->n_embd, qd = (size_t)hp->n_head * (size_t)hp->head_dim,
                 kvd = (size_t)hp->n_head_kv * (size_t)hp->head_dim, ff = (size_t)hp->n_ff;
    return (size_t)rank * (4 * e + 2 * qd + 2 * kvd + 3 * (e + ff)) * (size_t)hp->n_layer;
}

double router_train_grad(const strix_model *m, strix_router *r, const strix_token *tokens,
                         const struct strix_router_train_params *p, uint64_t seed, int soft,
                         const float *lora, float *grad, double *frac)
{
    struct trainer tr = {0};
    struct worker w;
    memset(&w, 0, sizeof w);
    tr.m = m;
    tr.p = p;
    tr.r = r;
    tr.soft = soft;
    double loss = NAN;
    if (trainer_weights(&tr, NULL) == STRIX_OK && worker_init(&w, &tr)) {
        if (tr.lora && lora)
            memcpy(tr.lora, lora, tr.n_lora * sizeof(float));
        memset(w.grad, 0, tr.n_par * sizeof(float));
        window(&tr, &w, tokens, seed, WIN_TRAIN);
        memcpy(grad, w.grad, tr.n_par * sizeof(float));
        loss = w.loss + (double)p->penalty * (w.soft - p->keep) * (w.soft - p->keep);
        *frac = w.frac;
    }
    worker_free(&w, m->hp.n_layer);
    trainer_free(&tr);
    return loss;
}

int strix_router_save(const strix_router *r, const char *path, strix_error *err)
{
    err_clear(err);
    if (!r || !path)
        return err_set(err, STRIX_ERR_ARG, "router or path is NULL");
    return route_router_save(r, path, err);
}

int strix_router_train(const strix_model *m, const strix_token *tokens, int n_tokens,
                       const struct strix_router_train_params *params, strix_router **out,
                       strix_error *err)
{
    err_clear(err);
    if (!m || !out || (!tokens && n_tokens))
        return err_set(err, STRIX_ERR_ARG, "model, tokens or out is NULL");
    *out = NULL;
    struct strix_router_train_params p;
    int rc = UTIL_PARAMS_READ(router_train, &p, params, err);
    if (rc)
        return rc;
    const struct hparams *hp = &m->hp;
    if (m->vocab_only || !m->layers)
        return err_set(err, STRIX_ERR_ARG, "router training needs a model with weights");
    if (!(p.keep > 0.0f && p.keep <= 1.0f))
        return err_set(err, STRIX_ERR_ARG, "keep %g is outside (0, 1]", (double)p.keep);
    if (p.epochs < 0 || p.epochs > 100000 || !(p.lr > 0.0f && p.lr < 1.0f) || p.n_hidden < 1 ||
        p.n_hidden > 4096 || !(p.tau > 0.0f) || !(p.penalty >= 0.0f) || p.n_threads < 1 ||
        p.n_threads > 256)
        return err_set(err, STRIX_ERR_ARG, "training parameters out of range");
    if (!(p.lora_lr >= 0.0f && p.lora_lr < 1.0f))
        return err_set(err, STRIX_ERR_ARG, "adapters' learning rate %g is outside [0, 1)",
                       (double)p.lora_lr);
    if (p.lora_rank < 0 || p.lora_rank > BW_MAX_RANK)
        return err_set(err, STRIX_ERR_ARG, "adapter rank %d: expected 0 .. %d", p.lora_rank,
                       BW_MAX_RANK);
    if (p.lora_rank > 0 && !p.lora_out)
        return err_set(err, STRIX_ERR_ARG, "adapters need a file to write the adapted model to");
    if (p.init_router && (p.init_router->n_layer != hp->n_layer ||
                          p.init_router->n_embd != hp->n_embd || p.init_skip))
        return err_set(err, STRIX_ERR_ARG,
                       "the initial router is for another shape (or init_skip is given too)");
    if (p.init_router)
        p.n_hidden = p.init_router->n_hidden;
    if (p.freeze_router && (!p.lora_rank || !(p.init_skip || p.init_router)))
        return err_set(err, STRIX_ERR_ARG,
                       "a frozen router needs adapters to train and the layers to remove");
    if (p.window < 2 || p.window > 4096 || p.window > hp->n_ctx_train)
        return err_set(err, STRIX_ERR_ARG, "window %d: expected 2 .. %d (the model's context)",
                       p.window, hp->n_ctx_train < 4096 ? hp->n_ctx_train : 4096);
    if (n_tokens < p.window + 1)
        return err_set(err, STRIX_ERR_ARG,
                       "the training text has %d tokens, fewer than one window of %d + 1",
                       n_tokens, p.window);
    for (int i = 0; i < n_tokens; i++)
        if (tokens[i] < 0 || tokens[i] >= hp->n_vocab)
            return err_set(err, STRIX_ERR_ARG, "token %d out of range", tokens[i]);
    if (!llama_shaped(m))
        return err_set(err, STRIX_ERR_UNSUPPORTED,
                       "router training supports Llama-shaped blocks only (%s model)", m->arch);

    const int n_win_all = (n_tokens - 1) / p.window;
    if (p.val_windows < 0 || p.val_windows >= n_win_all)
        return err_set(err, STRIX_ERR_ARG,
                       "%d validation windows: the text has %d windows of %d, and training "
                       "needs at least one",
                       p.val_windows, n_win_all, p.window);

    struct trainer tr = {0};
    struct worker wk[STEP_WINDOWS];
    memset(wk, 0, sizeof wk);
    struct pool *pool = NULL;
    float *adam_m = NULL, *adam_v = NULL, *best = NULL, *b2_keep = NULL;
    int *order = NULL;
    struct evalset es = {tokens, NULL, 0, NULL, NULL};
    rc = STRIX_ERR_NOMEM;
    tr.m = m;
    tr.p = &p;
    tr.r = route_router_new(m, p.n_hidden);
    if (!tr.r)
        goto fail;
    if ((rc = trainer_weights(&tr, err)))
        goto fail;
    rc = STRIX_ERR_NOMEM;
    const int e = hp->n_embd, nl = hp->n_layer, nh = p.n_hidden;
    const int n_win = n_win_all - p.val_windows; /* training windows */
    strix_router *r = tr.r;
    for (int i = 0; i < STEP_WINDOWS; i++)
        if (!worker_init(&wk[i], &tr))
            goto fail;
    adam_m = util_calloc(tr.n_par, sizeof(float));
    adam_v = util_calloc(tr.n_par, sizeof(float));
    best = util_malloc(tr.n_par * sizeof(float));
    b2_keep = util_malloc((size_t)hp->n_layer * sizeof(float));
    order = util_malloc((size_t)n_win * sizeof(int));
    pool = pool_create(p.n_threads < STEP_WINDOWS ? p.n_threads : STEP_WINDOWS);
    /* calibration windows: the validation windows, or the first training ones */
    es.n = p.val_windows ? p.val_windows : (n_win < N_CAL ? n_win : N_CAL);
    es.starts = util_malloc((size_t)es.n * sizeof(int));
    es.sv = util_malloc((size_t)es.n * (size_t)nl * (size_t)p.window * sizeof(float));
    es.loss = util_malloc((size_t)es.n * sizeof(double));
    if (!adam_m || !adam_v || !best || !b2_keep || !order || !pool || !es.starts || !es.sv || !es.loss)
        goto fail;
    for (int i = 0; i < es.n; i++)
        es.starts[i] = (p.val_windows ? n_win + i : i) * p.window;

    /* initial router: small random first layer; the bias at the target, or
     * (warm start) constant modules reproducing the static removal */
    r->keep = p.keep;
    uint64_t rng = mix64(p.seed);
    for (size_t i = 0; i < (size_t)nl * nh * e; i++)
        r->w1[i] = (float)((unit(&rng) * 2.0 - 1.0) / sqrt((double)e));
    for (size_t i = 0; i < (size_t)nl * nh; i++) {
        r->w2[i] = (float)((unit(&rng) * 2.0 - 1.0) / sqrt((double)nh));
        r->b1[i] = 0.0f;
    }
    const float b0 = p.keep < 1.0f ? logf(p.keep / (1.0f - p.keep)) : 6.0f;
    for (int l = 0; l < nl; l++)
        r->b2[l] = b0;
    if (p.init_skip) {
        int n_rm = 0;
        for (int l = 0; l < nl; l++) {
            r->b2[l] = p.init_skip[l] ? -WARM_BIAS : WARM_BIAS;
            n_rm += p.init_skip[l] != 0;
        }
        /* the random second layers wait for the half-executed one */
        float *w2_rand = adam_m; /* (free until training) */
        memcpy(w2_rand, r->w2, (size_t)nl * nh * sizeof(float));
        memset(r->w2, 0, (size_t)nl * nh * sizeof(float));
        /* layers half-executed: enough that, at half each, the executed
         * fraction comes to keep (at least one when the removal keeps more) */
        const double extra = (double)(nl - n_rm) - (double)p.keep * nl;
        int n_half = (int)floor(2.0 * extra + 0.5);
        if (n_half < 1 && extra > 1e-6 * nl)
            n_half = 1;
        if (n_half > nl - n_rm - 1)
            n_half = nl - n_rm - 1;
        if (p.freeze_router)
            n_half = 0; /* the removal exactly */
        for (int h = 0; h < n_half; h++) {
            /* the cheapest layer still fully executed to remove */
            int part = -1;
            double part_loss = INFINITY;
            for (int l = 0; l < nl; l++) {
                if (p.init_skip[l] || r->b2[l] != WARM_BIAS)
                    continue;
                r->b2[l] = -WARM_BIAS;
                const double loss = eval_pass(&tr, wk, pool, &es, WIN_LOSS);
                r->b2[l] = WARM_BIAS;
                if (loss < part_loss) {
                    part_loss = loss;
                    part = l;
                }
            }
            r->b2[part] = 0.0f;
            memcpy(r->w2 + (size_t)part * nh, w2_rand + (size_t)part * nh, (size_t)nh * sizeof(float));
        }
        memset(adam_m, 0, tr.n_par * sizeof(float));
    }
    if (p.init_router) {
        const strix_router *ir = p.init_router;
        memcpy(r->w1, ir->w1, (size_t)nl * nh * e * sizeof(float));
        memcpy(r->b1, ir->b1, (size_t)nl * nh * sizeof(float));
        memcpy(r->w2, ir->w2, (size_t)nl * nh * sizeof(float));
        memcpy(r->b2, ir->b2, (size_t)nl * sizeof(float));
    }
    /* adapters: A small and random, B zero (the base model to start with) */
    for (int l = 0; tr.lora && l < nl; l++)
        for (int k = 0; k < BW_NPROJ; k++) {
            float *a = tr.lora + (size_t)l * tr.lora_layer + tr.lora_at[k];
            for (size_t i = 0; i < (size_t)p.lora_rank * (size_t)tr.lcols[k]; i++)
                a[i] = (float)((unit(&rng) * 2.0 - 1.0) / sqrt((double)tr.lcols[k]));
        }
    /* the parameters in the order of the gradient: the modules', the adapters' */
    enum { N_PAR = 5 };
    float *par[N_PAR] = {r->w1, r->b1, r->w2, r->b2, tr.lora};
    const size_t par_n[N_PAR] = {(size_t)nl * nh * e, (size_t)nl * nh, (size_t)nl * nh,
                                 (size_t)nl, tr.n_lora};
    const int par_first = p.freeze_router ? 4 : 0; /* the arrays trained */
    /* a frozen static removal is never calibrated (its decisions are
     * exact); a frozen router is, and keeps the calibration it is
     * validated with, so its adapters train on its decisions as they run */
    const int static_frozen = p.freeze_router && p.init_skip;
    const int steps_per_epoch = (n_win + STEP_WINDOWS - 1) / STEP_WINDOWS;
    const int n_steps = steps_per_epoch * p.epochs;
    const int val_every = n_steps >= 8 ? (n_steps + 7) / 8 : 1;
    double best_loss = INFINITY;
    int step = 0;
    for (int ep = 0; ep <= p.epochs; ep++) {
        for (int i = 0; i < n_win; i++)
            order[i] = i;
        uint64_t sh = mix64(p.seed ^ (0x5bd1e995ull * (uint64_t)(ep + 1)));
        for (int i = n_win - 1; i > 0; i--) {
            const int k = (int)(unit(&sh) * (i + 1));
            const int t = order[i];
            order[i] = order[k < i ? k : i];
            order[k < i ? k : i] = t;
        }
        /* (the pass after the last epoch only validates) */
        for (int s0 = 0; s0 < n_win || ep == p.epochs; s0 += STEP_WINDOWS) {
            if (p.val_windows && (step % val_every == 0 || ep == p.epochs)) {
                /* validate the router calibrated to keep; keep the best */
                memcpy(b2_keep, r->b2, (size_t)nl * sizeof(float));
                if (p.keep < 1.0f && !static_frozen)
                    calibrate(&tr, wk, pool, &es, p.keep, 3);
                const double loss = eval_pass(&tr, wk, pool, &es, WIN_LOSS);
                const int is_best = loss < best_loss;
                if (is_best) {
                    best_loss = loss;
                    size_t k = 0;
                    for (int a = 0; a < N_PAR; a++, k += par_n[a - 1])
                        if (par_n[a])
                            memcpy(best + k, par[a], par_n[a] * sizeof(float));
                }
                if (p.on_val)
                    p.on_val(p.user, step, loss, eval_frac(&tr, wk, pool, &es), is_best);
                if (!p.freeze_router)
                    memcpy(r->b2, b2_keep, (size_t)nl * sizeof(float));
            }
            if (ep == p.epochs)
                break;
            int starts[STEP_WINDOWS];
            const int nw = n_win - s0 < STEP_WINDOWS ? n_win - s0 : STEP_WINDOWS;
            for (int i = 0; i < nw; i++)
                starts[i] = order[s0 + i] * p.window;
            struct step_job j = {&tr, wk, tokens, starts, nw, mix64(p.seed + 977 * (uint64_t)step),
                                 WIN_TRAIN, NULL, NULL};
            pool_run_n(pool, step_worker, &j, nw);
            /* the windows' gradients in window order, then Adam */
            double loss = 0, frac = 0;
            for (int i = 1; i < nw; i++)
                for (size_t k = 0; k < tr.n_par; k++)
                    wk[0].grad[k] += wk[i].grad[k];
            for (int i = 0; i < nw; i++) {
                loss += wk[i].loss;
                frac += wk[i].frac;
            }
            step++;
            const double b1 = 0.9, b2 = 0.999;
            const double c1 = 1.0 - pow(b1, step), c2 = 1.0 - pow(b2, step);
            size_t k = 0;
            for (int a = 0; a < par_first; a++)
                k += par_n[a];
            for (int a = par_first; a < N_PAR; a++) {
                const double lr = a == 4 && p.lora_lr > 0.0f ? p.lora_lr : p.lr;
                for (size_t i = 0; i < par_n[a]; i++, k++) {
                    const double gk = wk[0].grad[k] / nw;
                    adam_m[k] = (float)(b1 * adam_m[k] + (1 - b1) * gk);
                    adam_v[k] = (float)(b2 * adam_v[k] + (1 - b2) * gk * gk);
                    par[a][i] -= (float)(lr * (adam_m[k] / c1) / (sqrt(adam_v[k] / c2) + 1e-8));
                }
            }
            if (p.progress && p.progress(p.user, step, n_steps, loss / nw, frac / nw)) {
                ep = p.epochs - 1; /* stop (after a last validation) */
                break;
            }
        }
    }
    if (p.val_windows) { /* the best checkpoint, as it was calibrated */
        size_t k = 0;
        for (int a = 0; a < N_PAR; a++, k += par_n[a - 1])
            if (par_n[a])
                memcpy(par[a], best + k, par_n[a] * sizeof(float));
    }
    if (p.keep < 1.0f && !static_frozen)
        calibrate(&tr, wk, pool, &es, p.keep, p.val_windows ? 1 : 4);
    /* the calibration table: the shift for each of these executed
     * fractions (the trained keep: 0, the biases as they are) */
    static const float grid[] = {0.1f, 0.2f, 0.3f, 0.4f,  0.5f,  0.6f,
                                 0.7f, 0.8f, 0.9f, 0.95f, 0.99f};
    memcpy(b2_keep, r->b2, (size_t)nl * sizeof(float));
    int placed = 0;
    for (size_t i = 0; !static_frozen && i < sizeof grid / sizeof grid[0]; i++) {
        if (!placed && grid[i] >= p.keep - 0.005f) {
            r->calib_keep[r->n_calib] = p.keep;
            r->calib_shift[r->n_calib++] = 0.0f;
            placed = 1;
            if (grid[i] <= p.keep + 0.005f)
                continue;
        }
        r->calib_keep[r->n_calib] = grid[i];
        r->calib_shift[r->n_calib++] = calibrate(&tr, wk, pool, &es, grid[i], 2);
        memcpy(r->b2, b2_keep, (size_t)nl * sizeof(float));
    }
    if (!placed) {
        r->calib_keep[r->n_calib] = p.keep;
        r->calib_shift[r->n_calib++] = 0.0f;
    }
    if (tr.lora) { /* the adapted model, and the router for it */
        if ((rc = lora_write_model(m, &tr.d, tr.blk, p.lora_out, err)))
            goto fail;
        strix_model *adapted = NULL;
        if ((rc = strix_model_load(p.lora_out, NULL, &adapted, err)))
            goto fail;
        r->fingerprint = route_fingerprint(adapted);
        strix_model_free(adapted);
    }
    *out = tr.r;
    tr.r = NULL;
    rc = STRIX_OK;
fail:
    if (rc == STRIX_ERR_NOMEM)
        err_set(err, rc, "out of memory for router training");
    for (int i = 0; i < STEP_WINDOWS; i++)
        worker_free(&wk[i], hp->n_layer);
    trainer_free(&tr);
    strix_router_free(tr.r);
    util_free(adam_m);
    util_free(adam_v);
    util_free(order);
    util_free(best);
    util_free(b2_keep);
    util_free(es.starts);
    util_free(es.sv);
    util_free(es.loss);
    pool_free(pool);
    return rc;
}
