/*
 * test_analysis.c - the hidden-state statistics (analysis/stats.c) and
 * strix_analyze against numpy's direct computations (tests/data/
 * gen_analysis.py: linearity with and without the residual, cosine,
 * spectrum, pair cosine, TwoNN on a fixed set of states, and the token
 * embeddings of stories260K); the hidden states strix_analyze collects
 * against those a test hook collects; the affine fit behind --linearize;
 * bad input.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "analysis/stats.h"
#include "fixtures.h"
#include "harness.h"
#include "strix.h"

#define MODEL "stories260K-ref.gguf" /* F32 llama, 5 layers, width 64 */

static char *ref_text;

/* The value of "key v" in analysis_ref.txt (NaN if absent). */
static double ref(const char *key)
{
    char pat[64];
    snprintf(pat, sizeof pat, "\n%s ", key);
    const char *p = ref_text ? strstr(ref_text, pat) : NULL;
    CHECKF(p != NULL, "analysis_ref.txt lacks %s", key);
    return p ? strtod(p + strlen(pat), NULL) : NAN;
}

static int close_rel(double a, double b, double tol)
{
    return fabs(a - b) <= tol * fmax(1.0, fabs(b));
}

static void test_fixed_states(void)
{
    size_t len = 0;
    char *bin = read_fixture("analysis_states.bin", &len);
    if (!bin)
        return;
    int32_t nd[2];
    memcpy(nd, bin, sizeof nd);
    const int n = nd[0], d = nd[1];
    CHECK(len == 8 + 2 * (size_t)n * (size_t)d * 4);
    float *x = malloc((size_t)n * (size_t)d * sizeof(float));
    float *y = malloc((size_t)n * (size_t)d * sizeof(float));
    float *diff = malloc((size_t)n * (size_t)d * sizeof(float));
    memcpy(x, bin + 8, (size_t)n * (size_t)d * 4);
    memcpy(y, bin + 8 + (size_t)n * (size_t)d * 4, (size_t)n * (size_t)d * 4);
    for (size_t i = 0; i < (size_t)n * (size_t)d; i++)
        diff[i] = y[i] - x[i];
    strix_error err;
    double v, sd;
    int k;
    CHECKF(stats_linearity(x, y, n, d, &v, &err) == STRIX_OK, "%s", err.msg);
    CHECKF(close_rel(v, ref("linearity"), 1e-9), "linearity %.12g vs numpy %.12g", v,
           ref("linearity"));
    CHECKF(stats_linearity(x, diff, n, d, &v, &err) == STRIX_OK, "%s", err.msg);
    CHECKF(close_rel(v, ref("linearity_no_residual"), 1e-9), "no residual %.12g vs %.12g", v,
           ref("linearity_no_residual"));
    stats_cosine(x, y, n, d, &v, &sd);
    CHECKF(close_rel(v, ref("cosine"), 1e-12) && close_rel(sd, ref("cosine_sd"), 1e-9),
           "cosine %.12g sd %.12g", v, sd);
    CHECKF(stats_spectrum(y, n, d, &v, &k, &err) == STRIX_OK, "%s", err.msg);
    CHECKF(close_rel(v, ref("anisotropy"), 1e-9) && k == (int)ref("pca90"),
           "anisotropy %.12g vs %.12g, pca90 %d vs %d", v, ref("anisotropy"), k,
           (int)ref("pca90"));
    v = stats_pair_cosine(y, n, d);
    CHECKF(close_rel(v, ref("pair_cosine"), 1e-9), "pair cosine %.12g vs %.12g", v,
           ref("pair_cosine"));
    CHECKF(stats_twonn(y, n, d, &v, &err) == STRIX_OK, "%s", err.msg);
    CHECKF(close_rel(v, ref("twonn"), 1e-9), "TwoNN %.12g vs %.12g", v, ref("twonn"));
    /* x has duplicated rows: they are left out the same way */
    CHECKF(stats_twonn(x, n, d, &v, &err) == STRIX_OK, "%s", err.msg);
    CHECKF(close_rel(v, ref("twonn_x"), 1e-9), "TwoNN(x) %.12g vs %.12g", v, ref("twonn_x"));
    /* too few vectors: an error, no crash */
    CHECK(stats_linearity(x, y, 1, d, &v, &err) == STRIX_ERR_ARG && isnan(v));
    CHECK(stats_spectrum(x, 1, d, &v, &k, &err) == STRIX_ERR_ARG);
    free(x);
    free(y);
    free(diff);
    free(bin);
}

/* The affine fit recovers an exact map y = W x + b (the --linearize fit). */
static void test_affine_fit(void)
{
    const int n = 200, d = 8;
    float *x = malloc(sizeof(float) * (size_t)(n * d)), *y = malloc(sizeof(float) * (size_t)(n * d));
    float w[64], b[8], fw[64], fb[8];
    uint64_t s = 42;
    for (int i = 0; i < d * d; i++) {
        s = s * 6364136223846793005ULL + 1442695040888963407ULL;
        w[i] = (float)((double)(s >> 11) / 9007199254740992.0 - 0.5);
    }
    for (int i = 0; i < d; i++)
        b[i] = 0.25f * (float)i - 1.0f;
    for (int t = 0; t < n; t++)
        for (int j = 0; j < d; j++) {
            s = s * 6364136223846793005ULL + 1442695040888963407ULL;
            x[t * d + j] = (float)((double)(s >> 11) / 9007199254740992.0 * 4.0 - 2.0);
        }
    for (int t = 0; t < n; t++)
        for (int o = 0; o < d; o++) {
            double acc = b[o];
            for (int i = 0; i < d; i++)
                acc += (double)w[o * d + i] * x[t * d + i];
            y[t * d + o] = (float)acc;
        }
    strix_error err;
    CHECKF(stats_affine_fit(x, y, n, d, fw, fb, &err) == STRIX_OK, "%s", err.msg);
    double e = 0.0;
    for (int i = 0; i < d * d; i++)
        e = fmax(e, fabs(fw[i] - w[i]));
    for (int i = 0; i < d; i++)
        e = fmax(e, fabs(fb[i] - b[i]));
    CHECKF(e < 1e-5, "affine fit off by %g", e);
    CHECK(stats_affine_fit(x, y, d, d, fw, fb, &err) == STRIX_ERR_ARG); /* n < d + 1 */
    free(x);
    free(y);
}

/* ---- strix_analyze on a model ---- */

struct states {
    int n_layer, d, cap, n;
    float **x; /* (n_layer + 1) of (cap, d) */
};

static void hook(void *user, const struct strix_layer_obs *o)
{
    struct states *s = user;
    int k = s->n;
    for (int t = 0; t < o->n_tokens && k < s->cap; t++) {
        if (o->pos[t] == 0)
            continue;
        memcpy(s->x[o->layer] + (size_t)k * (size_t)s->d, o->in + (size_t)t * (size_t)s->d,
               (size_t)s->d * sizeof(float));
        if (o->layer == s->n_layer - 1)
            memcpy(s->x[s->n_layer] + (size_t)k * (size_t)s->d,
                   o->out + (size_t)t * (size_t)s->d, (size_t)s->d * sizeof(float));
        k++;
    }
    if (o->layer == s->n_layer - 1)
        s->n = k;
}

static void test_model(void)
{
    strix_model *m = load_fixture(MODEL, NULL);
    if (!m)
        return;
    size_t len = 0;
    char *text = read_fixture("tinystories-valid-4k.txt", &len);
    strix_token *ids = malloc(sizeof(strix_token) * 4096);
    int n = 0;
    strix_error err;
    CHECK(strix_tokenize(m, text, len, 0, ids, 4096, &n, &err) == STRIX_OK);
    const int n_ctx = 128, L = 5, d = 64;
    struct strix_layer_stats ls[5], es;
    struct strix_analyze_params ap = strix_analyze_default_params();
    ap.n_ctx = n_ctx;
    ap.n_threads = 1;
    CHECKF(strix_analyze(m, ids, n, &ap, ls, &es, &err) == STRIX_OK, "%s", err.msg);

    /* the embeddings against numpy on the file's token_embd */
    CHECK(es.n_vectors == (int)ref("embd_rows"));
    CHECKF(close_rel(es.anisotropy, ref("embd_anisotropy"), 1e-6) &&
               es.pca90 == (int)ref("embd_pca90") &&
               close_rel(es.pair_cosine, ref("embd_pair_cosine"), 1e-6) &&
               close_rel(es.intrinsic_dim, ref("embd_twonn"), 1e-6),
           "embeddings: anisotropy %.9g pca90 %d pair %.9g TwoNN %.9g", es.anisotropy, es.pca90,
           es.pair_cosine, es.intrinsic_dim);
    CHECK(isnan(es.linearity) && isnan(es.cosine));

    /* the same states collected by a hook here, windows of BOS + 127 tokens */
    struct states s = {.n_layer = L, .d = d, .cap = n};
    s.x = calloc(L + 1, sizeof *s.x);
    for (int l = 0; l <= L; l++)
        s.x[l] = malloc(sizeof(float) * (size_t)n * d);
    struct strix_context_params cp = strix_context_default_params();
    cp.n_ctx = cp.n_batch = n_ctx;
    cp.n_threads = 1;
    cp.on_layer = hook;
    cp.on_layer_user = &s;
    strix_context *ctx = NULL;
    CHECK(strix_context_create(m, &cp, &ctx, &err) == STRIX_OK);
    strix_token buf[128];
    for (int from = 0; ctx && from < n; from += n_ctx - 1) {
        const int k = n - from < n_ctx - 1 ? n - from : n_ctx - 1;
        buf[0] = strix_token_bos(m);
        memcpy(buf + 1, ids + from, sizeof(strix_token) * (size_t)k);
        strix_kv_truncate(ctx, 0, NULL);
        CHECK(strix_decode(ctx, buf, NULL, k + 1, NULL, &err) == STRIX_OK);
    }
    CHECK(s.n == n);
    float *diff = malloc(sizeof(float) * (size_t)n * d);
    for (int l = 0; l < L; l++) {
        double lin, lin0, cm, csd, an, dim;
        int p90;
        stats_linearity(s.x[l], s.x[l + 1], n, d, &lin, &err);
        for (size_t i = 0; i < (size_t)n * d; i++)
            diff[i] = s.x[l + 1][i] - s.x[l][i];
        stats_linearity(s.x[l], diff, n, d, &lin0, &err);
        stats_cosine(s.x[l], s.x[l + 1], n, d, &cm, &csd);
        stats_spectrum(s.x[l + 1], n, d, &an, &p90, &err);
        stats_twonn(s.x[l + 1], n, d, &dim, &err);
        CHECKF(ls[l].n_vectors == n && lin == ls[l].linearity &&
                   lin0 == ls[l].linearity_no_residual && cm == ls[l].cosine &&
                   an == ls[l].anisotropy && p90 == ls[l].pca90 && dim == ls[l].intrinsic_dim,
               "layer %d: %d vectors, linearity %.9g / %.9g", l, ls[l].n_vectors,
               ls[l].linearity, lin);
        /* the paper's observation, which holds here too: the residual stream
         * is far more linear than the block's own contribution */
        CHECKF(ls[l].linearity > ls[l].linearity_no_residual, "layer %d: %.4f <= %.4f", l,
               ls[l].linearity, ls[l].linearity_no_residual);
        CHECK(ls[l].cosine_p10 <= ls[l].cosine && ls[l].cosine <= ls[l].cosine_p90 + 1e-12);
    }
    free(diff);
    for (int l = 0; l <= L; l++)
        free(s.x[l]);
    free(s.x);
    strix_context_free(ctx);

    /* bad input */
    CHECK(strix_analyze(m, ids, 10, &ap, ls, NULL, &err) == STRIX_ERR_ARG &&
          strstr(err.msg, "at least 16"));
    CHECK(strix_analyze(NULL, ids, n, &ap, ls, NULL, &err) == STRIX_ERR_ARG);
    CHECK(strix_analyze(m, NULL, n, &ap, ls, NULL, &err) == STRIX_ERR_ARG);
    ap.n_ctx = 1;
    CHECK(strix_analyze(m, ids, n, &ap, ls, NULL, &err) == STRIX_ERR_ARG);
    ap.n_ctx = 0;
    ap.max_tokens = 20; /* only the first 20 tokens: one window */
    CHECKF(strix_analyze(m, ids, n, &ap, ls, NULL, &err) == STRIX_OK, "%s", err.msg);
    CHECK(ls[0].n_vectors == 20);
    free(ids);
    free(text);
    strix_model_free(m);
}

int main(void)
{
    if (!stats_available()) {
        printf("tests/test_analysis.c: built without LAPACK, skipped\n");
        return 0;
    }
    ref_text = read_fixture("analysis_ref.txt", NULL);
    test_fixed_states();
    test_affine_fit();
    test_model();
    free(ref_text);
    TEST_MAIN_END();
}
