/*
 * test_router.c - dynamic depth through the public API: routers refused for
 * another model or corrupt; every decision "execute" gives the logits of no
 * router bit for bit; a skipped layer leaves a token's hidden state as it
 * was and holds no cache entry for it; batched and one-by-one decoding with
 * a router agree bit for bit; the logits with skipping equal an independent
 * evaluation (train/backward.c's block over the whole window, each layer's
 * attention restricted to the tokens that ran it, in double-checked F32);
 * a growing cache holds memory for the entries it keeps only.
 */
#include <math.h>
#include <stdio.h>

#include "fixtures.h"
#include "harness.h"
#include "model/model.h"
#include "runtime/route.h"
#include "train/backward.h"
#include "train/router_train.h"

#define WARM_TEST_BIAS 3.0f /* below router_train.c's warm-start logit 4 */
#define MODEL "stories260K-ref.gguf" /* F32 llama, 5 layers, GQA 8/4 heads */

static const strix_token PROMPT[] = {1,   403, 407, 261, 378, 285, 328, 270, 282, 458,
                                     275, 363, 300, 290, 401, 350, 267, 310, 299, 280};
#define N_PROMPT ((int)(sizeof PROMPT / sizeof PROMPT[0]))

static char tmpdir[256];

/* A router for m with seeded random weights, saved to name in tmpdir. */
static const char *make_router(const strix_model *m, uint64_t seed, int n_layer_lie,
                               uint64_t fp_xor, const char *name)
{
    static char path[512];
    strix_router *r = route_router_new(m, 8);
    CHECK(r != NULL);
    if (!r)
        return NULL;
    uint64_t s = seed;
    const size_t n1 = (size_t)r->n_layer * 8 * (size_t)r->n_embd;
    for (size_t i = 0; i < n1; i++) {
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        r->w1[i] = (float)((double)(s >> 40) / (double)(1 << 24) - 0.5);
    }
    for (int i = 0; i < r->n_layer * 8; i++)
        r->w2[i] = (i % 3 == 0) ? -1.0f : 1.0f;
    if (n_layer_lie)
        r->n_layer = n_layer_lie;
    r->fingerprint ^= fp_xor;
    snprintf(path, sizeof path, "%s/%s", tmpdir, name);
    strix_error err;
    CHECKF(route_router_save(r, path, &err) == STRIX_OK, "%s", err.msg);
    strix_router_free(r);
    return path;
}

static strix_context *route_ctx(const strix_model *m, const struct strix_route_params *rp,
                                int grow, strix_layer_hook hook, void *user)
{
    struct strix_context_params cp = strix_context_default_params();
    cp.n_ctx = 64;
    cp.n_threads = 1;
    cp.kv_grow = grow;
    cp.on_layer = hook;
    cp.on_layer_user = user;
    strix_context *c = fixture_context_with(m, &cp);
    strix_error err;
    if (c && rp)
        CHECKF(strix_context_set_route(c, rp, &err) == STRIX_OK, "%s", err.msg);
    return c;
}

static void check_refused(const strix_model *m)
{
    strix_router *r = NULL;
    strix_error err;
    const char *p = make_router(m, 1, 0, 1, "other.gguf");
    CHECK(strix_router_load(p, m, &r, &err) == STRIX_ERR_ARG && r == NULL);
    CHECKF(strstr(err.msg, "other weights") != NULL, "%s", err.msg);
    p = make_router(m, 1, 4, 0, "shape.gguf");
    CHECK(strix_router_load(p, m, &r, &err) == STRIX_ERR_ARG && r == NULL);
    CHECKF(strstr(err.msg, "4 layers") != NULL, "%s", err.msg);
    /* a model file is not a router; a cut router file is malformed */
    CHECK(strix_router_load(test_path(MODEL), m, &r, &err) == STRIX_ERR_FORMAT);
    CHECKF(strstr(err.msg, "not a router") != NULL, "%s", err.msg);
    p = make_router(m, 1, 0, 0, "cut.gguf");
    size_t len = 0;
    char *bytes = test_read_file(p, &len);
    CHECK(bytes != NULL);
    if (bytes) {
        for (size_t cut = 0; cut < len; cut += len / 13 + 1) {
            FILE *f = fopen(p, "wb");
            fwrite(bytes, 1, cut, f);
            fclose(f);
            const int rc = strix_router_load(p, m, &r, &err);
            CHECKF(rc != STRIX_OK && r == NULL, "cut at %zu loaded", cut);
        }
        free(bytes);
    }
    struct strix_route_params rp = strix_route_default_params();
    rp.keep = 1.5f;
    strix_context *c = route_ctx(m, NULL, 0, NULL, NULL);
    CHECK(c && strix_context_set_route(c, &rp, &err) == STRIX_ERR_ARG);
    strix_context_free(c);
}

struct obs {
    int layer;
    int same, differ; /* tokens whose output equals / differs from input */
};
static void on_layer(void *user, const struct strix_layer_obs *o)
{
    struct obs *ob = user;
    if (o->layer != ob->layer)
        return;
    for (int t = 0; t < o->n_tokens; t++) {
        const size_t at = (size_t)t * (size_t)o->n_embd;
        if (memcmp(o->in + at, o->out + at, (size_t)o->n_embd * sizeof(float)) == 0)
            ob->same++;
        else
            ob->differ++;
    }
}

/* Logits of the whole prompt (every position), batched or one by one. */
static float *logits_with(const strix_model *m, const struct strix_route_params *rp,
                          int batched, uint8_t *dec)
{
    strix_context *c = route_ctx(m, rp, 1, NULL, NULL);
    float *out = decode_logits(c, strix_vocab_size(m), PROMPT, N_PROMPT, batched);
    if (dec && batched)
        CHECK(strix_route_last(c, dec, N_PROMPT) == N_PROMPT);
    strix_context_free(c);
    return out;
}

/* The logits of the prompt with decisions dec (N_PROMPT, n_layer) from
 * backward.c's block: the window at once, each layer's attention over the
 * tokens that ran it, the skipped tokens' deltas dropped. */
static float *reference(const strix_model *m, const uint8_t *dec)
{
    const struct hparams *hp = &m->hp;
    const int e = hp->n_embd, nl = hp->n_layer, T = N_PROMPT, nv = hp->n_vocab;
    const struct bw_dims d = {e,         hp->n_head, hp->n_head_kv, hp->head_dim,
                              hp->n_ff,  hp->n_rot,  hp->rope_neox, hp->norm_eps,
                              hp->rope_freq_base, 0};
    struct bw_tape tp;
    CHECK(bw_tape_init(&tp, &d, T));
    float *x = calloc((size_t)T * e, sizeof(float)), *delta = calloc((size_t)T * e, sizeof(float));
    float *out = calloc((size_t)T * nv, sizeof(float)), *xn = calloc((size_t)e, sizeof(float));
    int32_t pos[N_PROMPT];
    uint8_t vis[N_PROMPT];
    for (int t = 0; t < T; t++) {
        pos[t] = t;
        memcpy(x + (size_t)t * e, (const float *)m->tok_embd.data + (size_t)PROMPT[t] * e,
               (size_t)e * sizeof(float));
    }
    for (int l = 0; l < nl; l++) {
        const struct layer *L = &m->layers[l];
        const struct bw_block w = {L->attn_norm.data, L->wq.data,       L->wk.data,
                                   L->wv.data,        L->wo.data,       L->ffn_norm.data,
                                   L->w_gate.data,    L->w_up.data,     L->w_down.data, {0}, {0}};
        for (int t = 0; t < T; t++)
            vis[t] = dec[t * nl + l];
        bw_block_forward(&d, &w, &tp, T, pos, vis, x, delta);
        for (int t = 0; t < T; t++)
            if (vis[t])
                for (int i = 0; i < e; i++)
                    x[(size_t)t * e + i] += delta[(size_t)t * e + i];
    }
    for (int t = 0; t < T; t++) {
        bw_rmsnorm(xn, x + (size_t)t * e, m->output_norm.data, e, hp->norm_eps);
        bw_matvec(out + (size_t)t * nv, m->output.data, xn, nv, e, 0);
    }
    bw_tape_free(&tp);
    free(x);
    free(delta);
    free(xn);
    return out;
}

static double max_diff(const float *a, const float *b, size_t n)
{
    double w = 0;
    for (size_t i = 0; i < n; i++)
        w = fmax(w, fabs((double)a[i] - b[i]));
    return w;
}

/* The training gradient of the router parameters through the frozen model
 * (soft decisions: a differentiable loss) against central differences. */
static void check_train_grad(const strix_model *m)
{
    enum { W = 16 };
    strix_token tok[W + 1];
    for (int i = 0; i <= W; i++)
        tok[i] = PROMPT[i % N_PROMPT];
    strix_router *r = route_router_new(m, 4);
    CHECK(r != NULL);
    if (!r)
        return;
    const size_t n1 = (size_t)r->n_layer * 4 * (size_t)r->n_embd, nb = (size_t)r->n_layer * 4;
    uint64_t s = 11;
    for (size_t i = 0; i < n1; i++) {
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        r->w1[i] = (float)((double)(s >> 40) / (double)(1 << 24) - 0.5);
    }
    for (size_t i = 0; i < nb; i++) {
        r->b1[i] = 0.2f;
        r->w2[i] = (i % 2) ? 0.7f : -0.4f;
    }
    struct strix_router_train_params p = strix_router_train_default_params();
    p.window = W;
    p.keep = 0.5f;
    const size_t n_par = n1 + 2 * nb + (size_t)r->n_layer;
    float *grad = calloc(n_par, sizeof(float)), *g2 = calloc(n_par, sizeof(float));
    float *par[4] = {r->w1, r->b1, r->w2, r->b2};
    const size_t off[4] = {0, n1, n1 + nb, n1 + 2 * nb};
    double frac;
    const double loss = router_train_grad(m, r, tok, &p, 5, 1, NULL, grad, &frac);
    CHECK(isfinite(loss) && frac > 0.1 && frac < 0.9);
    /* some parameters of every kind */
    const size_t pick[][2] = {{0, 3}, {0, 200}, {0, 1000}, {1, 1}, {1, 6}, {2, 0},
                              {2, 9}, {2, 13}, {3, 0},    {3, 2}, {3, 4}};
    double err = 0, scale = 0;
    for (size_t i = 0; i < sizeof pick / sizeof pick[0]; i++) {
        float *v = par[pick[i][0]] + pick[i][1];
        const float v0 = *v, h = 2e-3f;
        *v = v0 + h;
        const double up = router_train_grad(m, r, tok, &p, 5, 1, NULL, g2, &frac);
        *v = v0 - h;
        const double dn = router_train_grad(m, r, tok, &p, 5, 1, NULL, g2, &frac);
        *v = v0;
        const double fd = (up - dn) / (2.0 * h), an = grad[off[pick[i][0]] + pick[i][1]];
        err = fmax(err, fabs(fd - an));
        scale = fmax(scale, fabs(fd));
        CHECKF(fabs(fd - an) < 0.02 * fabs(fd) + 1e-4, "param %zu.%zu: %g vs %g", pick[i][0],
               pick[i][1], an, fd);
    }
    printf("test_router: training gradient vs finite differences: max error %.3g of %.3g\n", err,
           scale);
    CHECK(scale > 1e-3);
    free(grad);
    free(g2);
    strix_router_free(r);
}

/* Training is deterministic for a seed at any thread count, and refuses bad
 * input. */
static void check_train(const strix_model *m)
{
    enum { N = 200 };
    strix_token tok[N];
    for (int i = 0; i < N; i++)
        tok[i] = PROMPT[(i * 7) % N_PROMPT];
    struct strix_router_train_params p = strix_router_train_default_params();
    p.window = 16;
    p.epochs = 2;
    p.lr = 0.01f;
    strix_router *a = NULL, *b = NULL, *c = NULL;
    strix_error err;
    CHECKF(strix_router_train(m, tok, N, &p, &a, &err) == STRIX_OK, "%s", err.msg);
    p.n_threads = 3;
    CHECKF(strix_router_train(m, tok, N, &p, &b, &err) == STRIX_OK, "%s", err.msg);
    p.seed = 2;
    CHECKF(strix_router_train(m, tok, N, &p, &c, &err) == STRIX_OK, "%s", err.msg);
    if (a && b && c) {
        const size_t n1 = (size_t)a->n_layer * (size_t)a->n_hidden * (size_t)a->n_embd;
        CHECK(memcmp(a->w1, b->w1, n1 * sizeof(float)) == 0 &&
              memcmp(a->b2, b->b2, (size_t)a->n_layer * sizeof(float)) == 0);
        CHECK(memcmp(a->w1, c->w1, n1 * sizeof(float)) != 0);
        CHECK(a->keep == p.keep);
    }
    strix_router_free(a);
    strix_router_free(b);
    strix_router_free(c);
    p.seed = 1;
    CHECK(strix_router_train(m, tok, 16, &p, &a, &err) == STRIX_ERR_ARG && a == NULL);
    CHECKF(strstr(err.msg, "fewer than one window") != NULL, "%s", err.msg);
    p.keep = 1.5f;
    CHECK(strix_router_train(m, tok, N, &p, &a, &err) == STRIX_ERR_ARG && a == NULL);
}

/* Window w of tok (W tokens from w * W) decoded in a fresh context under rp:
 * its decisions into dec (W, n_layer) and its LM loss (mean -log p of the
 * next token, the window's last token predicting the one after it) returned. */
static double window_run(const strix_model *m, const struct strix_route_params *rp,
                         const strix_token *tok, int W, uint8_t *dec)
{
    const int nv = strix_vocab_size(m);
    strix_context *c = route_ctx(m, rp, 1, NULL, NULL);
    float *lg = decode_logits(c, nv, tok, W, 1);
    CHECK(strix_route_last(c, dec, W) == W);
    double nll = 0.0;
    for (int t = 0; lg && t < W; t++) {
        const float *row = lg + (size_t)t * (size_t)nv;
        double mx = row[0], z = 0.0;
        for (int v = 1; v < nv; v++)
            mx = row[v] > mx ? row[v] : mx;
        for (int v = 0; v < nv; v++)
            z += exp(row[v] - mx);
        nll += mx + log(z) - row[tok[t + 1]];
    }
    free(lg);
    strix_context_free(c);
    return nll / W;
}

struct val_log {
    int n, best_step;
    double first, best;
};
static void on_val(void *user, int step, double loss, double frac, int best)
{
    struct val_log *v = user;
    (void)frac;
    if (v->n++ == 0)
        v->first = loss;
    if (best) {
        v->best = loss;
        v->best_step = step;
    }
}

/* Warm start and calibration: a router warm-started from a static removal
 * reproduces it bit for bit before training; after training, chosen on the
 * validation windows, its LM loss there (counted here through the public
 * API) is no worse than the static removal's; its executed fraction on the
 * calibration windows, counted from the decisions, is the requested keep
 * (the trained one and, through the calibration table, others); the table
 * survives a save and load, and a bad one is refused. */
static void check_warm_calib(const strix_model *m)
{
    enum { W = 16, N = 20 * W + 1, NV = 4 };
    strix_token tok[N];
    for (int i = 0; i < N; i++)
        tok[i] = PROMPT[(i * 7 + i / 13) % N_PROMPT];
    const int nl = m->hp.n_layer, nv = strix_vocab_size(m);
    uint8_t skip[8] = {0};
    skip[2] = 1;
    struct strix_router_train_params p = strix_router_train_default_params();
    p.window = W;
    p.keep = (float)(nl - 1) / (float)nl;
    p.epochs = 0;
    p.init_skip = skip;
    p.val_windows = NV;
    strix_router *a = NULL;
    strix_error err;
    CHECKF(strix_router_train(m, tok, N, &p, &a, &err) == STRIX_OK, "%s", err.msg);
    if (!a)
        return;
    struct strix_route_params rp = strix_route_default_params(), sp = rp;
    rp.router = a;
    sp.skip_layers = skip;
    uint8_t dec[N_PROMPT * 8];
    float *ra = logits_with(m, &rp, 1, dec), *rs = logits_with(m, &sp, 1, NULL);
    const size_t nlog = (size_t)N_PROMPT * (size_t)nv;
    CHECK(ra && rs && memcmp(ra, rs, nlog * sizeof(float)) == 0);
    int mism = 0;
    for (int t = 0; t < N_PROMPT; t++)
        for (int l = 0; l < nl; l++)
            mism += dec[t * nl + l] != !skip[l];
    CHECKF(mism == 0, "%d decisions differ from the static mask", mism);
    rp.keep = p.keep; /* the trained keep, asked for: the same */
    float *rk = logits_with(m, &rp, 1, NULL);
    CHECK(ra && rk && memcmp(ra, rk, nlog * sizeof(float)) == 0);
    free(ra);
    free(rs);
    free(rk);
    strix_router_free(a);

    /* one layer fewer removed than keep asks for (here none): the two
     * layers cheapest to remove start half-executed (random second layers,
     * every other module constant), and the calibrated router runs keep of
     * the decisions on the validation windows, counted here */
    uint8_t none[8] = {0};
    p.init_skip = none;
    CHECKF(strix_router_train(m, tok, N, &p, &a, &err) == STRIX_OK, "%s", err.msg);
    if (!a)
        return;
    int n_rand = 0, run0 = 0;
    for (int l = 0; l < nl; l++) {
        int nz = 0;
        for (int j = 0; j < a->n_hidden; j++)
            nz += a->w2[(size_t)l * (size_t)a->n_hidden + (size_t)j] != 0.0f;
        n_rand += nz > 0;
    }
    CHECKF(n_rand == 2, "%d layers start half-executed, want 2", n_rand);
    rp.router = a;
    rp.keep = 0.0f;
    for (int w = (N - 1) / W - NV; w < (N - 1) / W; w++) {
        uint8_t d0[W * 8];
        window_run(m, &rp, tok + w * W, W, d0);
        for (int i = 0; i < W * nl; i++)
            run0 += d0[i];
    }
    CHECKF(fabs((double)run0 / (NV * W * nl) - p.keep) < 0.04, "executed %.4f, asked %.2f",
           (double)run0 / (NV * W * nl), (double)p.keep);
    strix_router_free(a);
    p.init_skip = skip;

    /* trained, keep 0.7 (one layer half-executed), chosen on validation */
    struct val_log vl = {0, -1, 0, 0};
    p.keep = 0.7f;
    p.epochs = 3;
    p.lr = 0.01f;
    p.on_val = on_val;
    p.user = &vl;
    CHECKF(strix_router_train(m, tok, N, &p, &a, &err) == STRIX_OK, "%s", err.msg);
    if (!a)
        return;
    printf("test_router: warm start: %d validations, step 0 loss %.4f, best %.4f at step %d\n",
           vl.n, vl.first, vl.best, vl.best_step);
    CHECK(vl.n >= 5 && vl.best <= vl.first);
    const int n_win = (N - 1) / W;
    uint8_t wd[W * 8];
    for (int ki = 0; ki < 3; ki++) {
        const float keep = ki == 0 ? 0.0f : ki == 1 ? 0.5f : 0.9f;
        const float want = ki == 0 ? 0.7f : keep;
        rp.router = a;
        rp.keep = keep;
        int run = 0;
        double loss = 0.0, loss_static = 0.0;
        for (int w = n_win - NV; w < n_win; w++) {
            loss += window_run(m, &rp, tok + w * W, W, wd) / NV;
            for (int i = 0; i < W * nl; i++)
                run += wd[i];
            if (ki == 0) {
                uint8_t sd[W * 8];
                loss_static += window_run(m, &sp, tok + w * W, W, sd) / NV;
            }
        }
        const double frac = (double)run / (NV * W * nl);
        printf("test_router: keep %.2f asked: executed %.4f on the calibration windows\n",
               (double)want, frac);
        CHECKF(fabs(frac - want) < 0.04, "executed %.4f, asked %.2f", frac, (double)want);
        if (ki == 0) {
            /* the static removal at 0.8 runs more; the router at 0.7 is
             * chosen among checkpoints that include the removal plus a
             * half layer, so it beats the 0.6 removal by a margin */
            uint8_t s2[8] = {0};
            s2[2] = 1;
            for (int l = 0; l < nl; l++) /* the half-executed layer, removed */
                if (!skip[l] && a->b2[l] < WARM_TEST_BIAS && a->b2[l] > -WARM_TEST_BIAS)
                    s2[l] = 1;
            struct strix_route_params s2p = strix_route_default_params();
            s2p.skip_layers = s2;
            double loss2 = 0.0;
            for (int w = n_win - NV; w < n_win; w++)
                loss2 += window_run(m, &s2p, tok + w * W, W, wd) / NV;
            printf("test_router: validation loss: router %.4f (trainer %.4f), static 0.8 %.4f, "
                   "static 0.6 %.4f\n",
                   loss, vl.best, loss_static, loss2);
            CHECK(fabs(loss - vl.best) < 0.02 * vl.best);
            CHECK(loss <= loss2 + 1e-3);
        }
    }
    /* the table survives a save and load; a bad one is refused */
    char path[512];
    snprintf(path, sizeof path, "%s/calib.gguf", tmpdir);
    strix_router *b = NULL;
    CHECK(a->n_calib >= 10);
    CHECKF(strix_router_save(a, path, &err) == STRIX_OK, "%s", err.msg);
    CHECKF(strix_router_load(path, m, &b, &err) == STRIX_OK, "%s", err.msg);
    CHECK(b && b->n_calib == a->n_calib &&
          memcmp(b->calib_keep, a->calib_keep, (size_t)a->n_calib * sizeof(float)) == 0 &&
          memcmp(b->calib_shift, a->calib_shift, (size_t)a->n_calib * sizeof(float)) == 0);
    strix_router_free(b);
    b = NULL;
    a->calib_keep[1] = a->calib_keep[0];
    CHECK(route_router_save(a, path, &err) == STRIX_OK);
    CHECK(strix_router_load(path, m, &b, &err) == STRIX_ERR_FORMAT && b == NULL);
    CHECKF(strstr(err.msg, "calibration") != NULL, "%s", err.msg);
    strix_router_free(a);
}

int main(void)
{
    fixture_tmpdir(tmpdir, sizeof tmpdir, "test_router");
    if (!fixture_kernels("test_router"))
        return 0;
    strix_model *m = load_fixture(MODEL, NULL);
    if (!m)
        TEST_MAIN_END();
    const int nv = strix_vocab_size(m), nl = m->hp.n_layer;
    const size_t nlog = (size_t)N_PROMPT * (size_t)nv;
    strix_error err;
    check_refused(m);
    check_train_grad(m);
    check_train(m);
    check_warm_calib(m);

    strix_router *r = NULL;
    const char *path = make_router(m, 7, 0, 0, "r.gguf");
    CHECKF(strix_router_load(path, m, &r, &err) == STRIX_OK, "%s", err.msg);
    CHECK(r && r->n_calib == 0); /* a file without a calibration table loads */
    float *plain = fixture_logits(m, PROMPT, N_PROMPT, 1, 64, 1);

    /* every decision "execute": bit for bit the model without a router */
    struct strix_route_params rp = strix_route_default_params();
    rp.router = r;
    rp.keep = 1.0f;
    float *all = logits_with(m, &rp, 1, NULL);
    CHECK(plain && all && memcmp(plain, all, nlog * sizeof(float)) == 0);

    /* the router's own decisions: some pairs skipped, batched == one by one,
     * and equal to the independent evaluation */
    rp.keep = 0.0f;
    uint8_t dec[N_PROMPT * 8];
    float *rb = logits_with(m, &rp, 1, dec), *r1 = logits_with(m, &rp, 0, NULL);
    int n_run = 0;
    for (int i = 0; i < N_PROMPT * nl; i++)
        n_run += dec[i];
    printf("test_router: the random router runs %d of %d pairs\n", n_run, N_PROMPT * nl);
    CHECK(n_run > N_PROMPT * nl / 5 && n_run < N_PROMPT * nl * 4 / 5);
    CHECK(rb && r1 && memcmp(rb, r1, nlog * sizeof(float)) == 0);
    float *ref = reference(m, dec);
    const double dref = rb ? max_diff(rb, ref, nlog) : 1e9, dfull = max_diff(plain, ref, nlog);
    printf("test_router: with skipping vs reference: max diff %.3g (without skipping: %.3g)\n",
           dref, dfull);
    CHECK(dref < 1e-3 && dfull > 0.1);
    free(ref);

    /* a layer removed for every token: outputs equal inputs, no entries */
    uint8_t skip[8] = {0};
    skip[2] = 1;
    struct strix_route_params sp = strix_route_default_params();
    sp.skip_layers = skip;
    for (int batched = 0; batched <= 1; batched++) {
        struct obs ob2 = {2, 0, 0}, ob1 = {1, 0, 0};
        strix_context *c2 = route_ctx(m, &sp, 1, on_layer, &ob2);
        strix_context *c1 = route_ctx(m, &sp, 1, on_layer, &ob1);
        free(decode_logits(c2, nv, PROMPT, N_PROMPT, batched));
        free(decode_logits(c1, nv, PROMPT, N_PROMPT, batched));
        CHECK(ob2.same == N_PROMPT && ob2.differ == 0);
        CHECK(ob1.same == 0 && ob1.differ == N_PROMPT);
        CHECK(strix_kv_layer_entries(c2, 2) == 0 && strix_kv_layer_entries(c2, 1) == N_PROMPT);
        struct strix_route_stats st = {.struct_size = sizeof st};
        CHECK(strix_context_route_stats(c2, &st, &err) == STRIX_OK);
        CHECK(st.pairs == (uint64_t)N_PROMPT * nl && st.pairs_run == (uint64_t)N_PROMPT * (nl - 1));
        CHECK(st.kv_entries == (uint64_t)N_PROMPT * (nl - 1));
        strix_context_free(c2);
        strix_context_free(c1);
    }

    /* random skipping: batched == one by one; a growing cache holds memory
     * for about the entries kept (in 16-cell steps), a fixed one for all */
    struct strix_route_params rr = strix_route_default_params();
    rr.random_keep = 0.5f;
    rr.seed = 3;
    float *qb = logits_with(m, &rr, 1, NULL), *q1 = logits_with(m, &rr, 0, NULL);
    CHECK(qb && q1 && memcmp(qb, q1, nlog * sizeof(float)) == 0);
    strix_context *cg = route_ctx(m, &rr, 1, NULL, NULL), *cf = route_ctx(m, &rr, 0, NULL, NULL);
    free(decode_logits(cg, nv, PROMPT, N_PROMPT, 0));
    free(decode_logits(cf, nv, PROMPT, N_PROMPT, 0));
    struct strix_route_stats sg = {.struct_size = sizeof sg}, sf = {.struct_size = sizeof sf};
    CHECK(strix_context_route_stats(cg, &sg, &err) == STRIX_OK);
    CHECK(strix_context_route_stats(cf, &sf, &err) == STRIX_OK);
    const uint64_t row = 2 * (uint64_t)m->hp.n_head_kv * m->hp.head_dim * sizeof(float);
    printf("test_router: random 0.5: %llu of %llu pairs, KV %llu bytes growing, %llu fixed\n",
           (unsigned long long)sg.pairs_run, (unsigned long long)sg.pairs,
           (unsigned long long)sg.kv_bytes, (unsigned long long)sf.kv_bytes);
    CHECK(sg.kv_entries == sg.pairs_run && sg.pairs_run < sg.pairs * 3 / 4);
    CHECK(sf.kv_bytes == 64 * row * (uint64_t)nl);
    uint64_t bound = 0;
    for (int l = 0; l < nl; l++)
        bound += (uint64_t)((strix_kv_layer_entries(cg, l) + 1 + 15) / 16 * 16 + 16) * row;
    CHECK(sg.kv_bytes >= sg.kv_entries * row && sg.kv_bytes <= bound);
    strix_context_free(cg);
    strix_context_free(cf);

    free(plain);
    free(all);
    free(rb);
    free(r1);
    free(qb);
    free(q1);
    strix_router_free(r);
    strix_model_free(m);
    fixture_tmpdir_remove(tmpdir);
    TEST_MAIN_END();
}
