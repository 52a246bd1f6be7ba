/*
 * test_lora.c - router training's low-rank adapters (LoRA): the trainer's
 * gradient with respect to the adapters against finite differences of its
 * loss; the adapted model it writes (W + B A) computes the same loss as the
 * base model with the adapters applied by the trainer; a frozen static
 * removal's router on the adapted model equals --skip-layers bit for bit,
 * and is refused for the base model; training with adapters is the same at
 * any thread count; bad parameters are refused.
 */
#include <math.h>
#include <stdio.h>

#include "fixtures.h"
#include "harness.h"
#include "model/model.h"
#include "runtime/route.h"
#include "train/backward.h"
#include "train/lora.h"
#include "train/router_train.h"

#define MODEL "stories260K-ref.gguf" /* F32 llama, 5 layers, GQA 8/4 heads */
#define RANK 2

static char tmpdir[256];

static const char *tmp(const char *name)
{
    static char path[4][512];
    static int k;
    k = (k + 1) % 4;
    snprintf(path[k], sizeof path[k], "%s/%s", tmpdir, name);
    return path[k];
}

static void fill(float *a, size_t n, float s, uint64_t *st)
{
    for (size_t i = 0; i < n; i++) {
        *st = *st * 6364136223846793005ull + 1442695040888963407ull;
        a[i] = s * (float)((double)(*st >> 40) / (double)(1 << 24) - 0.5);
    }
}

/* A router whose decisions do not depend on the states: layer `skip`
 * skipped (none when < 0), every other layer executed. */
static strix_router *fixed_router(const strix_model *m, int skip)
{
    strix_router *r = route_router_new(m, 4);
    CHECK(r != NULL);
    for (int l = 0; r && l < r->n_layer; l++)
        r->b2[l] = l == skip ? -10.0f : 10.0f;
    return r;
}

static void tokens(strix_token *tok, int n)
{
    for (int i = 0; i < n; i++)
        tok[i] = (strix_token)(3 + (i * 37 + i / 5) % 400);
}

/* The adapters' gradient (and a module's, beside them) against central
 * differences of the training loss. */
static void check_grad(const strix_model *m)
{
    enum { W = 12 };
    strix_token tok[W + 1];
    tokens(tok, W + 1);
    strix_router *r = route_router_new(m, 4);
    CHECK(r != NULL);
    if (!r)
        return;
    uint64_t s = 7;
    const size_t n1 = (size_t)r->n_layer * 4 * (size_t)r->n_embd, nb = (size_t)r->n_layer * 4;
    fill(r->w1, n1, 1.0f, &s);
    fill(r->w2, nb, 1.0f, &s);
    const size_t n_rpar = n1 + 2 * nb + (size_t)r->n_layer, n_lora = router_train_lora_size(m, RANK);
    float *lora = malloc(n_lora * sizeof(float));
    float *grad = calloc(n_rpar + n_lora, sizeof(float)), *g2 = calloc(n_rpar + n_lora, sizeof(float));
    fill(lora, n_lora, 0.2f, &s);
    struct strix_router_train_params p = strix_router_train_default_params();
    p.window = W;
    p.keep = 0.5f;
    p.lora_rank = RANK;
    double frac;
    const double loss = router_train_grad(m, r, tok, &p, 5, 1, lora, grad, &frac);
    CHECK(isfinite(loss) && frac > 0.1 && frac < 0.9);
    /* entries spread over the layers and projections, and one module weight */
    const size_t pick[] = {0, 17, n_lora / 7, n_lora / 3 + 5, n_lora / 2, 2 * n_lora / 3,
                           n_lora - 1, n_lora - 200};
    double err = 0, scale = 0;
    for (size_t i = 0; i <= sizeof pick / sizeof pick[0]; i++) {
        const int module = i == sizeof pick / sizeof pick[0];
        float *v = module ? r->w1 + 5 : lora + pick[i];
        const double an = module ? grad[5] : grad[n_rpar + pick[i]];
        const float v0 = *v, h = 2e-3f;
        *v = v0 + h;
        const double up = router_train_grad(m, r, tok, &p, 5, 1, lora, g2, &frac);
        *v = v0 - h;
        const double dn = router_train_grad(m, r, tok, &p, 5, 1, lora, g2, &frac);
        *v = v0;
        const double fd = (up - dn) / (2.0 * h);
        err = fmax(err, fabs(fd - an));
        scale = fmax(scale, fabs(fd));
        CHECKF(fabs(fd - an) < 0.02 * fabs(fd) + 2e-4, "%s %zu: %g vs %g",
               module ? "module" : "adapter", module ? (size_t)5 : pick[i], an, fd);
    }
    printf("test_lora: adapters' gradient vs finite differences: max error %.3g of %.3g\n", err,
           scale);
    CHECK(scale > 1e-3);
    free(lora);
    free(grad);
    free(g2);
    strix_router_free(r);
}

/* lora_write_model's W + B A computes what the trainer's W x + B (A x)
 * does; the other weights are copied as they were. */
static void check_merge(const strix_model *m)
{
    enum { W = 24 };
    strix_token tok[W + 1];
    tokens(tok, W + 1);
    const struct hparams *hp = &m->hp;
    const struct bw_dims d = {hp->n_embd, hp->n_head, hp->n_head_kv, hp->head_dim, hp->n_ff,
                              hp->n_rot,  hp->rope_neox, hp->norm_eps, hp->rope_freq_base, RANK};
    const size_t n_lora = router_train_lora_size(m, RANK);
    float *lora = malloc(n_lora * sizeof(float));
    uint64_t s = 99;
    fill(lora, n_lora, 0.3f, &s);
    struct bw_block *blk = calloc((size_t)hp->n_layer, sizeof *blk);
    const float *base = lora;
    for (int l = 0; l < hp->n_layer; l++) {
        const struct layer *L = &m->layers[l];
        const struct tensor *t[BW_NPROJ] = {&L->wq, &L->wk, &L->wv, &L->wo,
                                            &L->w_gate, &L->w_up, &L->w_down};
        blk[l] = (struct bw_block){L->attn_norm.data, L->wq.data,     L->wk.data,
                                   L->wv.data,        L->wo.data,     L->ffn_norm.data,
                                   L->w_gate.data,    L->w_up.data,   L->w_down.data,
                                   {0},               {0}};
        for (int k = 0; k < BW_NPROJ; k++) { /* the trainer's order: A, then B */
            blk[l].lora_a[k] = base;
            base += (size_t)RANK * (size_t)t[k]->ne[0];
            blk[l].lora_b[k] = base;
            base += (size_t)RANK * (size_t)t[k]->ne[1];
        }
    }
    CHECK(base == lora + n_lora);
    strix_error err;
    const char *path = tmp("merged.gguf");
    CHECKF(lora_write_model(m, &d, blk, path, &err) == STRIX_OK, "%s", err.msg);
    CHECK(lora_write_model(m, &d, blk, test_path(MODEL), &err) == STRIX_ERR_ARG);
    strix_model *mm = NULL;
    CHECKF(strix_model_load(path, NULL, &mm, &err) == STRIX_OK, "%s", err.msg);
    strix_router *r = fixed_router(m, 2);
    if (mm && r) {
        struct strix_router_train_params p = strix_router_train_default_params();
        p.window = W;
        const size_t n_rpar = (size_t)r->n_layer * 4 * ((size_t)r->n_embd + 2) + (size_t)r->n_layer;
        float *grad = calloc(n_rpar + n_lora, sizeof(float));
        double fa, fb;
        p.lora_rank = RANK;
        const double la = router_train_grad(m, r, tok, &p, 3, 0, lora, grad, &fa);
        p.lora_rank = 0;
        const double lb = router_train_grad(mm, r, tok, &p, 3, 0, NULL, grad, &fb);
        const double l0 = router_train_grad(m, r, tok, &p, 3, 0, NULL, grad, &fb);
        printf("test_lora: loss with adapters %.6f, adapted model %.6f, base %.6f\n", la, lb, l0);
        CHECK(fabs(la - lb) < 1e-4 * fabs(la) && fabs(la - l0) > 1e-2);
        CHECK(fa == fb && fa > 0.7 && fa < 0.9);
        /* the projections changed; embeddings and norms did not */
        CHECK(memcmp(mm->tok_embd.data, m->tok_embd.data, m->tok_embd.nbytes) == 0);
        CHECK(memcmp(mm->layers[1].ffn_norm.data, m->layers[1].ffn_norm.data,
                     m->layers[1].ffn_norm.nbytes) == 0);
        CHECK(memcmp(mm->layers[1].wk.data, m->layers[1].wk.data, m->layers[1].wk.nbytes) != 0);
        free(grad);
    }
    strix_router_free(r);
    strix_model_free(mm);
    free(blk);
    free(lora);
}

static float *route_logits(const strix_model *m, const strix_router *r, const uint8_t *skip,
                           const strix_token *tok, int n)
{
    struct strix_context_params cp = strix_context_default_params();
    cp.n_ctx = 64;
    cp.n_threads = 1;
    strix_context *c = fixture_context_with(m, &cp);
    struct strix_route_params rp = strix_route_default_params();
    rp.router = r;
    rp.skip_layers = skip;
    strix_error err;
    if (c)
        CHECKF(strix_context_set_route(c, &rp, &err) == STRIX_OK, "%s", err.msg);
    float *out = decode_logits(c, strix_vocab_size(m), tok, n, 1);
    strix_context_free(c);
    return out;
}

static char *slurp(const char *path, size_t *len)
{
    char *b = test_read_file(path, len);
    CHECKF(b != NULL, "cannot read %s", path);
    return b;
}

/* A static removal fine-tuned with frozen modules: its router reproduces
 * the removal on the adapted model exactly; the result is the same at 1
 * and 2 threads; bad parameters are refused. */
static void check_train(const strix_model *m)
{
    enum { N = 200 };
    strix_token tok[N];
    tokens(tok, N);
    uint8_t skip[8] = {0};
    skip[2] = 1;
    struct strix_router_train_params p = strix_router_train_default_params();
    p.window = 16;
    p.epochs = 1;
    p.lr = 0.01f;
    p.keep = 0.8f;
    p.val_windows = 2;
    p.lora_rank = RANK;
    p.freeze_router = 1;
    p.init_skip = skip;
    strix_router *r = NULL, *r2 = NULL;
    strix_error err;
    char a1[512], a2[512];
    snprintf(a1, sizeof a1, "%s", tmp("adapted1.gguf"));
    snprintf(a2, sizeof a2, "%s", tmp("adapted2.gguf"));
    p.lora_out = a1;
    p.n_threads = 1;
    CHECKF(strix_router_train(m, tok, N, &p, &r, &err) == STRIX_OK, "%s", err.msg);
    p.lora_out = a2;
    p.n_threads = 2;
    CHECKF(strix_router_train(m, tok, N, &p, &r2, &err) == STRIX_OK, "%s", err.msg);
    size_t l1 = 0, l2 = 0;
    char *b1 = slurp(a1, &l1), *b2 = slurp(a2, &l2);
    CHECK(b1 && b2 && l1 == l2 && memcmp(b1, b2, l1) == 0);
    free(b1);
    free(b2);
    strix_model *am = NULL;
    CHECKF(strix_model_load(a1, NULL, &am, &err) == STRIX_OK, "%s", err.msg);
    if (am && r) {
        const char *rp = tmp("frozen.gguf");
        CHECKF(strix_router_save(r, rp, &err) == STRIX_OK, "%s", err.msg);
        strix_router *rl = NULL;
        CHECK(strix_router_load(rp, m, &rl, &err) == STRIX_ERR_ARG && !rl); /* base: refused */
        CHECKF(strix_router_load(rp, am, &rl, &err) == STRIX_OK, "%s", err.msg);
        const int nv = strix_vocab_size(m);
        float *with_r = route_logits(am, rl, NULL, tok, 20);
        float *with_s = route_logits(am, NULL, skip, tok, 20);
        float *base_s = route_logits(m, NULL, skip, tok, 20);
        CHECK(with_r && with_s && memcmp(with_r, with_s, 20 * (size_t)nv * sizeof(float)) == 0);
        CHECK(with_s && base_s && memcmp(with_s, base_s, 20 * (size_t)nv * sizeof(float)) != 0);
        free(with_r);
        free(with_s);
        free(base_s);
        strix_router_free(rl);
    }
    strix_model_free(am);
    strix_router_free(r);
    strix_router_free(r2);

    /* refused: rank out of range, no file for the adapted model, a frozen
     * router without a start, the model's own file */
    strix_router *bad = NULL;
    p.n_threads = 1;
    p.lora_out = a1;
    p.lora_rank = BW_MAX_RANK + 1;
    CHECK(strix_router_train(m, tok, N, &p, &bad, &err) == STRIX_ERR_ARG && !bad);
    p.lora_rank = RANK;
    p.lora_lr = -0.001f;
    CHECK(strix_router_train(m, tok, N, &p, &bad, &err) == STRIX_ERR_ARG && !bad);
    p.lora_lr = 0.0f;
    p.lora_out = NULL;
    CHECK(strix_router_train(m, tok, N, &p, &bad, &err) == STRIX_ERR_ARG && !bad);
    p.lora_out = a1;
    p.init_skip = NULL;
    CHECK(strix_router_train(m, tok, N, &p, &bad, &err) == STRIX_ERR_ARG && !bad);
    CHECKF(strstr(err.msg, "frozen") != NULL, "%s", err.msg);
    p.init_skip = skip;
    p.lora_out = test_path(MODEL);
    p.epochs = 0;
    CHECK(strix_router_train(m, tok, N, &p, &bad, &err) == STRIX_ERR_ARG && !bad);
    CHECKF(strstr(err.msg, "own file") != NULL, "%s", err.msg);
}

int main(void)
{
    fixture_tmpdir(tmpdir, sizeof tmpdir, "test_lora");
    if (!fixture_kernels("test_lora"))
        return 0;
    strix_model *m = load_fixture(MODEL, NULL);
    if (!m)
        TEST_MAIN_END();
    check_grad(m);
    check_merge(m);
    check_train(m);
    strix_model_free(m);
    fixture_tmpdir_remove(tmpdir);
    TEST_MAIN_END();
}
