/*
 * test_batched.c - many sequences decoded together, as a server's slots
 * and `strix bench -npl` run them: B sequences, each at its own depth, each
 * decoding one token per step, all B tokens in one strix_decode_batch. Every
 * logit row must equal, bit for bit, the one the sequence gets alone in a
 * context of its own, one token per call. B is chosen past the kernels'
 * token tiles (8 tokens for Q4_0/Q8_0, 4 for the k-quants) so the batched
 * products run several tiles over one pass of the weights; the models are
 * quantized (packed layouts) and the float reference (F32).
 *
 * Then the packed kernels alone on matrices larger than the slice of rows
 * they keep in cache per pass: each token of a wide batch against the same
 * token alone (same bits) and against a double-precision product of the
 * dequantized weights.
 */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <unistd.h>

#include "fixtures.h"
#include "harness.h"
#include "kernels/kernels.h"
#include "quant/dtype.h"
#include "strix.h"
#include "strix_dev.h"

#define B 13     /* sequences */
#define STEPS 3  /* tokens each decodes after its prompt */
#define MAXP 40  /* longest prompt */

static strix_token tok_of(int s, int i, int nv)
{
    return (strix_token)((s * 7919 + i * 104729 + 17) % (nv - 3) + 3);
}

static int depth_of(int s)
{
    return 1 + (s * 11) % MAXP; /* 1 .. MAXP, all different for s < B */
}

static void check_model(const char *name, const strix_model *m, int n_threads)
{
    const int nv = strix_vocab_size(m);
    const size_t row = (size_t)nv * sizeof(float);
    float *ref = malloc((size_t)B * STEPS * row);
    /* each sequence alone, one token per call */
    for (int s = 0; s < B; s++) {
        strix_context *c = fixture_context(m, MAXP + STEPS, 0, 1);
        strix_error err;
        int ok = c != NULL;
        for (int i = 0; ok && i < depth_of(s) + STEPS; i++) {
            const strix_token t = tok_of(s, i, nv);
            ok = strix_decode(c, &t, NULL, 1, NULL, &err) == STRIX_OK;
            if (ok && i >= depth_of(s))
                memcpy(ref + ((size_t)s * STEPS + (size_t)(i - depth_of(s))) * (size_t)nv,
                       strix_get_logits(c, -1), row);
        }
        CHECKF(ok, "%s: sequence %d alone", name, s);
        strix_context_free(c);
    }
    /* all together: the prompts in one batch (sequences interleaved), then
     * STEPS batches of B tokens, every sequence's logits kept */
    struct strix_context_params cp = strix_context_default_params();
    cp.n_ctx = MAXP + STEPS;
    cp.n_seq_max = B;
    cp.n_threads = n_threads;
    cp.n_batch = 64;
    strix_context *c = fixture_context_with(m, &cp);
    strix_token toks[B * MAXP];
    int32_t pos[B * MAXP], seq[B * MAXP];
    int8_t want[B * MAXP];
    int n = 0;
    for (int i = 0; i < MAXP; i++)
        for (int s = 0; s < B; s++)
            if (i < depth_of(s)) {
                toks[n] = tok_of(s, i, nv), pos[n] = i, seq[n] = s, want[n] = 0;
                n++;
            }
    strix_error err;
    const strix_batch pb = {n, toks, pos, seq, want};
    CHECKF(c && strix_decode_batch(c, &pb, &err) == STRIX_OK, "%s: prompts: %s", name,
           c ? err.msg : "no context");
    int same = 1, worst_s = -1;
    for (int k = 0; c && k < STEPS; k++) {
        for (int s = 0; s < B; s++) {
            /* a different order each step: the result must not care */
            const int q = (s * (k + 1) * 5) % B;
            toks[s] = tok_of(q, depth_of(q) + k, nv), pos[s] = depth_of(q) + k, seq[s] = q;
            want[s] = 1;
        }
        const strix_batch b = {B, toks, pos, seq, want};
        CHECKF(strix_decode_batch(c, &b, &err) == STRIX_OK, "%s: step %d: %s", name, k, err.msg);
        for (int s = 0; s < B; s++) {
            const float *l = strix_get_logits(c, s);
            const float *r = ref + ((size_t)seq[s] * STEPS + (size_t)k) * (size_t)nv;
            if (!l || memcmp(l, r, row) != 0) {
                same = 0;
                worst_s = seq[s];
            }
        }
    }
    CHECKF(same, "%s (%d threads): sequence %d decoded with %d others differs from alone", name,
           n_threads, worst_s, B - 1);
    strix_context_free(c);
    free(ref);
}

static void test_models(void)
{
    strix_model *f32 = load_fixture("stories260K-ref.gguf", NULL);
    if (f32) {
        check_model("stories260K F32", f32, 1);
        check_model("stories260K F32", f32, 2);
    }
    strix_model_free(f32);
    /* a random model 256 wide, so Q4_K and Q6_K run their own blocks */
    struct strix_synth_params sp = strix_synth_default_params();
    sp.n_embd = 256, sp.n_ff = 512, sp.n_layer = 2, sp.n_head = 4, sp.n_head_kv = 2;
    sp.n_ctx = 128, sp.seed = 7;
    strix_model *syn = synth_fixture(&sp);
    const char *types[] = {"Q4_0", "Q8_0", "Q4_K_M"};
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s/strix_test_batched_%ld.gguf",
             getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp", (long)getpid());
    for (int k = 0; syn && k < 3; k++) {
        strix_error err;
        CHECKF(strix_model_quantize(syn, tmp, types[k], NULL, &err) == STRIX_OK, "%s", err.msg);
        strix_model *m = NULL;
        CHECKF(strix_model_load(tmp, NULL, &m, &err) == STRIX_OK, "%s", err.msg);
        unlink(tmp);
        if (m) {
            check_model(types[k], m, 1);
            check_model(types[k], m, 2);
        }
        strix_model_free(m);
    }
    strix_model_free(syn);
}

static float frand(uint64_t *s)
{
    *s = *s * 6364136223846793005ULL + 1442695040888963407ULL;
    return (float)((*s >> 40) & 0xffffff) / 8388608.0f - 1.0f;
}

/* One packed type: rows x cols weights, n tokens. */
static void check_packed(const struct kern_isa *k, uint32_t type, int rows, int cols, int n)
{
    const struct kern_mm *mmk = &k->mm[type];
    const struct dtype_traits *tr = dtype_get(type);
    uint64_t s = 99 + type;
    const size_t ws = dtype_row_size(type, cols), as = kern_act_row_bytes(mmk->act_type, cols);
    uint8_t *w = malloc((size_t)rows * ws), *a = malloc((size_t)n * as);
    float *row = malloc((size_t)cols * sizeof(float));
    float *wd = malloc((size_t)rows * (size_t)cols * sizeof(float));
    float *ad = malloc((size_t)n * (size_t)cols * sizeof(float));
    for (int r = 0; r < rows; r++) {
        for (int j = 0; j < cols; j++)
            row[j] = frand(&s);
        tr->quantize(row, w + (size_t)r * ws, cols);
        tr->dequantize(w + (size_t)r * ws, wd + (size_t)r * cols, cols);
    }
    for (int t = 0; t < n; t++) {
        for (int j = 0; j < cols; j++)
            row[j] = 2.0f * frand(&s);
        dtype_get(mmk->act_type)->quantize(row, a + (size_t)t * as, cols);
        dtype_get(mmk->act_type)->dequantize(a + (size_t)t * as, ad + (size_t)t * cols, cols);
    }
    const size_t pb = k->pack_bytes[type](rows, cols), gs = pb / (size_t)(rows / 16);
    uint8_t *packed = malloc(pb);
    float *y = malloc((size_t)n * (size_t)rows * sizeof(float));
    float *y1 = malloc((size_t)rows * sizeof(float));
    k->pack[type](w, ws, rows, cols, packed);
    /* rows 16 .. rows: a range that starts past the first group */
    k->mm_packed[type](type, cols, packed, gs, 16, rows, a, as, n, y, (size_t)rows, 0);
    double worst = 0;
    int same = 1;
    for (int t = 0; t < n; t++) {
        k->mm_packed[type](type, cols, packed, gs, 16, rows, a + (size_t)t * as, as, 1, y1,
                           (size_t)rows, 0);
        for (int r = 16; r < rows; r++) {
            double ref = 0, mag = 0;
            for (int j = 0; j < cols; j++) {
                const double p = (double)wd[(size_t)r * cols + j] * ad[(size_t)t * cols + j];
                ref += p;
                mag += fabs(p);
            }
            same &= memcmp(&y1[r], &y[(size_t)t * rows + r], sizeof(float)) == 0;
            const double e = fabs(y[(size_t)t * rows + r] - ref) / (mag + 1e-6);
            worst = e > worst || e != e ? e : worst;
        }
    }
    CHECKF(worst < 1e-5, "%s %s packed %dx%d, %d tokens: relative error %g", k->name, tr->name,
           rows, cols, n, worst);
    CHECKF(same, "%s %s packed %dx%d, %d tokens: a token differs from itself alone", k->name,
           tr->name, rows, cols, n);
    free(w), free(a), free(row), free(wd), free(ad), free(packed), free(y), free(y1);
}

static void test_packed_wide(void)
{
    kern_init();
    const struct kern_isa *k = kern_isa_active();
    const uint32_t types[] = {DTYPE_Q4_0, DTYPE_Q8_0, DTYPE_Q4_K, DTYPE_Q6_K};
    int n_run = 0;
    for (int i = 0; i < 4; i++) {
        if (!k->pack[types[i]] || !k->mm_packed[types[i]] || !k->mm[types[i]].run)
            continue;
        /* 2048 columns: a group of 16 rows is 18 to 70 KiB, so 400 rows
         * span several of the slices kept in cache */
        check_packed(k, types[i], 400, 2048, 19);
        check_packed(k, types[i], 48, 256, 9);
        n_run++;
    }
    printf("packed kernels of %s, wide batches: %d types\n", k->name, n_run);
}

/* Attention's gathered rows: each set's gather forms against its own
 * single-row dot product and axpy, bit for bit, for rows shorter and longer
 * than a vector. */
static void test_gather(void)
{
    const char *sets[] = {"scalar", "avx2", "avx512"};
    const int ns[] = {3, 8, 15, 16, 64, 72, 128};
    uint64_t st = 5;
    enum { ROWS = 40, STRIDE = 136 };
    float *base = malloc(ROWS * STRIDE * sizeof(float));
    for (int i = 0; i < ROWS * STRIDE; i++)
        base[i] = frand(&st);
    int idx[25], n_sets = 0;
    for (int i = 0; i < 25; i++)
        idx[i] = (i * 17 + 3) % ROWS;
    for (int si = 0; si < 3; si++) {
        const struct kern_isa *k = kern_isa_get(sets[si]);
        if (!k || !k->dot_f32_gather || !k->axpy_gather)
            continue;
        n_sets++;
        for (int ni = 0; ni < 7; ni++) {
            const int n = ns[ni];
            float q[128], e[25], s1[25], y1[128], y2[128];
            for (int j = 0; j < n; j++)
                q[j] = frand(&st), y1[j] = y2[j] = frand(&st);
            for (int i = 0; i < 25; i++)
                e[i] = frand(&st);
            k->dot_f32_gather(n, q, base, STRIDE, idx, 25, s1);
            k->axpy_gather(n, e, base, STRIDE, idx, 25, y1);
            int same = 1;
            for (int i = 0; i < 25; i++) {
                const float r = k->dot_f32(n, q, base + (size_t)idx[i] * STRIDE);
                same &= memcmp(&r, &s1[i], sizeof r) == 0;
                k->axpy(n, e[i], base + (size_t)idx[i] * STRIDE, y2);
            }
            CHECKF(same, "%s: gathered dot products differ from dot_f32, n %d", sets[si], n);
            CHECKF(memcmp(y1, y2, (size_t)n * sizeof(float)) == 0,
                   "%s: gathered axpy differs from axpy one row at a time, n %d", sets[si], n);
        }
    }
    printf("gathered attention rows: %d sets\n", n_sets);
    free(base);
}

int main(void)
{
    test_gather();
    test_packed_wide();
    test_models();
    TEST_MAIN_END();
}
