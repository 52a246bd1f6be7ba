/*
 * test_ffn_variants.c - the PEER and KAN feed-forward layers (model/arch_ffn.c,
 * runtime/ffn_peer.c, runtime/ffn_kan.c):
 *   - logits of llama-style models with PEER (softmax and sigmoid gating) and
 *     KAN layers against a direct numpy implementation of the whole model
 *     (tests/data/gen_ffn_variants.py, float64; tests/data/README.md): within
 *     1e-4 of the row's largest |logit|, the same greedy tokens, one token at
 *     a time and as one batch, and batched equal to one by one bit for bit,
 *     and a batch on 3 threads equal to one thread bit for bit;
 *   - the KAN B-spline bases (Cox-de Boor in ffn_kan.c) against the closed
 *     forms of uniform B-splines of order 0 to 3, and their partition of
 *     unity on the grid;
 *   - the feed-forward keys written back by save and read again;
 *   - synth's refusals of impossible variant sizes.
 * Corrupt files of these models are in test_corrupt_model.c.
 */
#include <math.h>

#include "fixtures.h"
#include "harness.h"
#include "runtime/ffn_var.h"
#include "strix.h"
#include "strix_dev.h"

#define N_PROMPT 16
#define TOL 1e-4f

static void check_fixture(const char *name)
{
    char model[128], ids_file[128], logits_file[128];
    snprintf(model, sizeof model, "arch/%s.gguf", name);
    snprintf(ids_file, sizeof ids_file, "arch/%s.ids", name);
    snprintf(logits_file, sizeof logits_file, "arch/%s.logits", name);
    strix_model *m = load_fixture(model, NULL);
    strix_token ids[256];
    const int n = read_ids(ids_file, ids, 256);
    float *ref = m && n == N_PROMPT + 32 ? read_logits(logits_file, n, strix_vocab_size(m)) : NULL;
    CHECKF(ref, "%s: fixtures (%d ids)", name, n);
    if (!ref) {
        strix_model_free(m);
        return;
    }
    const int nv = strix_vocab_size(m);
    float *rows[2] = {NULL, NULL};
    for (int batched = 0; batched <= 1; batched++) {
        float *got_all = rows[batched] = fixture_logits(m, ids, n, batched, 128, 0);
        if (!got_all)
            continue;
        float max_rel = 0.0f;
        int greedy_bad = 0;
        for (int i = 0; i < n; i++) {
            const float *got = got_all + (size_t)i * (size_t)nv;
            const float *w = ref + (size_t)i * (size_t)nv;
            float scale = 0.0f, d = 0.0f;
            for (int j = 0; j < nv; j++) {
                scale = fmaxf(scale, fabsf(w[j]));
                d = fmaxf(d, fabsf(got[j] - w[j]));
            }
            max_rel = fmaxf(max_rel, d / fmaxf(scale, 1e-6f));
            /* numpy's greedy choice is the next id; another pick only
             * where numpy's top two nearly tie */
            const int a = argmax(got, nv);
            if (i >= N_PROMPT - 1 && i + 1 < n)
                greedy_bad += a != ids[i + 1] && w[ids[i + 1]] - w[a] > 2 * TOL * scale;
        }
        CHECKF(max_rel < TOL, "%s (%s): max relative logit error %g", name,
               batched ? "batch" : "one by one", max_rel);
        CHECKF(greedy_bad == 0, "%s: %d greedy tokens differ", name, greedy_bad);
        printf("%-13s vs numpy (%s): %d positions, max rel. error %.2e\n", name,
               batched ? "batch" : "one by one", n, max_rel);
    }
    if (rows[0] && rows[1])
        CHECKF(memcmp(rows[0], rows[1], (size_t)n * (size_t)nv * sizeof(float)) == 0,
               "%s: batched logits differ from one by one", name);
    /* a batch split among threads (by token in PEER) gives one thread's logits */
    float *one = fixture_logits(m, ids, n, 1, 128, 1), *three = fixture_logits(m, ids, n, 1, 128, 3);
    CHECKF(one && three && memcmp(one, three, (size_t)n * (size_t)nv * sizeof(float)) == 0,
           "%s: a batch on 3 threads differs from one thread", name);
    free(one);
    free(three);
    free(rows[0]);
    free(rows[1]);
    free(ref);
    strix_model_free(m);
}

/* The uniform B-spline of order p (degree p) on knots 0, 1, ..., p + 1, at
 * u, in closed form (the cardinal B-spline's pieces). */
static double cardinal(int p, double u)
{
    if (u < 0.0 || u >= p + 1)
        return 0.0;
    switch (p) {
    case 0: return 1.0;
    case 1: return u < 1.0 ? u : 2.0 - u;
    case 2:
        if (u < 1.0)
            return u * u / 2.0;
        if (u < 2.0)
            return (-2.0 * u * u + 6.0 * u - 3.0) / 2.0;
        return (3.0 - u) * (3.0 - u) / 2.0;
    default:
        if (u < 1.0)
            return u * u * u / 6.0;
        if (u < 2.0)
            return (-3.0 * u * u * u + 12.0 * u * u - 12.0 * u + 4.0) / 6.0;
        if (u < 3.0)
            return (3.0 * u * u * u - 24.0 * u * u + 60.0 * u - 44.0) / 6.0;
        return (4.0 - u) * (4.0 - u) * (4.0 - u) / 6.0;
    }
}

static void check_basis(void)
{
    static const struct {
        int grid, order;
        float range;
    } cases[] = {{5, 3, 1.0f}, {5, 3, 2.0f}, {8, 2, 1.5f}, {3, 1, 1.0f}, {4, 0, 3.0f}, {1, 3, 0.5f}};
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        const int G = cases[c].grid, k = cases[c].order, nb = G + k;
        const float R = cases[c].range;
        const double h = 2.0 * R / G;
        float b[300];
        double worst = 0.0, worst_sum = 0.0;
        int n_pts = 0;
        /* points across the extended grid and beyond, knots included */
        for (int i = -40; i <= 40 * (G + 2 * k) + 80; i++) {
            const float x = (float)(-R - (k + 1) * h + (double)i * h / 40.0);
            ffn_kan_basis(x, G, k, R, b);
            double sum = 0.0;
            for (int j = 0; j < nb; j++) {
                /* basis j starts at knot j = -R + (j - k) h */
                const double u = ((double)x - (-R + (j - k) * h)) / h;
                worst = fmax(worst, fabs(b[j] - cardinal(k, u)));
                sum += b[j];
            }
            if (x >= -R && x < R) {
                worst_sum = fmax(worst_sum, fabs(sum - 1.0));
                n_pts++;
            }
        }
        CHECKF(worst < 2e-5 && worst_sum < 2e-5 && n_pts > 0,
               "KAN bases G %d k %d R %g: max error %g against the closed form, %g from 1", G, k,
               R, worst, worst_sum);
    }
    /* a cubic basis at its knots: 0, 1/6, 2/3, 1/6, 0 */
    float b[8];
    ffn_kan_basis(0.0f, 2, 3, 1.0f, b); /* knots -4 .. 4 step 1; x = 0 is knot 4 */
    CHECKF(fabsf(b[0]) < 1e-7f && fabsf(b[1] - 1.0f / 6) < 1e-6f && fabsf(b[2] - 2.0f / 3) < 1e-6f &&
               fabsf(b[3] - 1.0f / 6) < 1e-6f && fabsf(b[4]) < 1e-7f,
           "cubic bases at a knot: %g %g %g %g %g", b[0], b[1], b[2], b[3], b[4]);
    printf("KAN B-spline bases: Cox-de Boor equals the closed forms (orders 0-3)\n");
}

/* Saving a variant model writes its keys; the copy loads and gives the same
 * logits bit for bit (type NULL), or close ones (Q8_0: the expert rows and
 * keys are then dequantized one at a time). */
static void check_save(const char *name, const char *type)
{
    char model[128], out[4096];
    snprintf(model, sizeof model, "arch/%s.gguf", name);
    strix_model *m = load_fixture(model, NULL);
    if (!m)
        return;
    snprintf(out, sizeof out, "%s/strix-ffn-%d.gguf", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp",
             (int)getpid());
    strix_error err;
    CHECKF(strix_model_save_gguf(m, out, type, &err) == STRIX_OK, "save %s: %s", name, err.msg);
    struct strix_model_params mp = strix_model_default_params();
    strix_model *c = NULL;
    CHECKF(strix_model_load(out, &mp, &c, &err) == STRIX_OK, "reload %s: %s", name, err.msg);
    remove(out);
    if (c) {
        const strix_token ids[4] = {1, 403, 407, 261};
        float *a = fixture_logits(m, ids, 4, 1, 16, 0), *b = fixture_logits(c, ids, 4, 1, 16, 0);
        const size_t nl = 4 * (size_t)strix_vocab_size(m);
        float d = 0.0f, scale = 0.0f;
        for (size_t i = 0; a && b && i < nl; i++) {
            d = fmaxf(d, fabsf(a[i] - b[i]));
            scale = fmaxf(scale, fabsf(a[i]));
        }
        if (!type)
            CHECKF(a && b && memcmp(a, b, nl * sizeof(float)) == 0,
                   "%s: the saved copy's logits differ", name);
        else
            CHECKF(a && b && d < 0.05f * scale, "%s as %s: logits differ by %g (scale %g)", name,
                   type, d, scale);
        if (a && b && type)
            printf("%-13s saved as %s: logits within %.2e of F32 (scale %.2f)\n", name, type, d,
                   scale);
        free(a);
        free(b);
    }
    strix_model_free(c);
    strix_model_free(m);
}

static void check_synth_refusals(void)
{
    struct strix_synth_params sp = strix_synth_default_params();
    sp.n_embd = 32, sp.n_ff = 32, sp.n_layer = 1, sp.n_head = 4, sp.n_head_kv = 4;
    strix_model *m = NULL;
    strix_error err;
    char vp[4096];
    snprintf(vp, sizeof vp, "%s", test_path("stories260K-ref.gguf"));
    static const struct {
        const char *kind;
        int keys, topk, dlen, grid;
        const char *arch;
    } bad[] = {
        {"peer", 4, 5, 8, 0, NULL},  /* top-k above the sub-keys */
        {"peer", 8, 4, 7, 0, NULL},  /* odd query size */
        {"kan", 0, 0, 0, 300, NULL}, /* grid too fine */
        {"cnn", 0, 0, 0, 0, NULL},   /* no such kind */
        {"kan", 0, 0, 0, 0, "gpt2"}, /* only llama has the variants */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        sp.ffn_kind = bad[i].kind;
        sp.peer_n_keys = bad[i].keys, sp.peer_top_k = bad[i].topk, sp.peer_d_key = bad[i].dlen;
        sp.kan_grid = bad[i].grid;
        sp.arch = bad[i].arch;
        const int rc = strix_model_synth(&sp, vp, &m, &err);
        CHECKF(rc != STRIX_OK && m == NULL && err.msg[0], "synth case %zu refused (%s)", i,
               err.msg);
        strix_model_free(m);
        m = NULL;
    }
}

int main(void)
{
    if (!fixture_kernels(__FILE__))
        TEST_MAIN_END();
    check_basis();
    check_fixture("peer");
    check_fixture("peer-sigmoid");
    check_fixture("kan");
    check_save("peer", NULL);
    check_save("kan", NULL);
    check_save("peer", "Q8_0");
    check_save("kan", "Q8_0");
    check_synth_refusals();
    TEST_MAIN_END();
}
