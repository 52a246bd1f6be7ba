/*
 * test_ppl.c - perplexity through the API against a direct computation here
 * (decode each window, log-softmax in double, sum the target tokens'
 * negative log-probabilities), for stories260K and stories3M on a slice of
 * TinyStories at context 256, in llama.cpp's chunk mode and with sliding
 * windows; KL divergence of a model against itself (0, top-1 100%) and
 * against its Q8_0 re-encoding (small, positive); and the perplexities
 * llama.cpp's llama-perplexity reports for the same files and settings.
 */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "fixtures.h"
#include "harness.h"
#include "strix.h"

#define NCTX 256

static strix_token *corpus_tokens(const strix_model *m, int *n)
{
    size_t len;
    char *text = read_fixture("tinystories-valid-4k.txt", &len);
    if (!text)
        return NULL;
    strix_token *ids = malloc((len + 8) * sizeof *ids);
    strix_error err;
    CHECK(strix_tokenize(m, text, len, 1, ids, (int)len + 8, n, &err) == STRIX_OK);
    free(text);
    return ids;
}

/* The chunked or sliding cross-entropy, computed directly. */
static double direct_nll(const strix_model *m, strix_context *ctx, const strix_token *t, int n,
                         int stride, long *count)
{
    const int nv = strix_vocab_size(m);
    double nll = 0;
    *count = 0;
    strix_token win[NCTX];
    int8_t want[NCTX];
    memset(want, 1, sizeof want);
    strix_error err;
    int prev_end = 0;
    for (int w = 0;; w++) {
        int begin, end, from; /* window [begin, end), scoring tokens [from, end) */
        if (stride == 0) {
            begin = w * NCTX;
            end = begin + NCTX;
            from = begin + NCTX / 2 + 1;
            if (end > n)
                break;
        } else {
            if (prev_end >= n)
                break;
            end = w == 0 ? NCTX : (prev_end + stride < n ? prev_end + stride : n);
            begin = end - NCTX;
            from = w == 0 ? 1 : prev_end;
            prev_end = end;
        }
        memcpy(win, t + begin, sizeof win);
        win[0] = strix_token_bos(m);
        strix_kv_truncate(ctx, 0, &err);
        CHECK(strix_decode(ctx, win, NULL, NCTX, want, &err) == STRIX_OK);
        for (int a = from; a < end; a++) {
            const float *l = strix_get_logits(ctx, a - 1 - begin);
            double mx = l[0], z = 0;
            for (int v = 1; v < nv; v++)
                mx = l[v] > mx ? l[v] : mx;
            for (int v = 0; v < nv; v++)
                z += exp((double)l[v] - mx);
            nll += -((double)l[t[a]] - mx - log(z));
            (*count)++;
        }
    }
    return nll / (double)*count;
}

/* A decode_window that feeds the window one token at a time through its
 * own context (as a pipeline over processes would feed it in pieces). */
struct one_by_one {
    strix_context *ctx;
    int n_vocab;
};

static int window_one_by_one(void *user, const strix_token *tokens, int n, const int8_t *want,
                             float *logits, strix_error *err)
{
    struct one_by_one *o = user;
    strix_context *c = o->ctx;
    const int nv = o->n_vocab;
    int rc = strix_kv_truncate(c, 0, err);
    for (int j = 0, k = 0; rc == STRIX_OK && j < n; j++) {
        const int32_t pos = j;
        if ((rc = strix_decode(c, tokens + j, &pos, 1, NULL, err)) == STRIX_OK && want[j])
            memcpy(logits + (size_t)k++ * (size_t)nv, strix_get_logits(c, -1),
                   (size_t)nv * sizeof(float));
    }
    return rc;
}

static int window_fails(void *user, const strix_token *tokens, int n, const int8_t *want,
                        float *logits, strix_error *err)
{
    (void)user, (void)tokens, (void)n, (void)want, (void)logits;
    snprintf(err->msg, sizeof err->msg, "the pipeline broke");
    return STRIX_ERR_IO;
}

static void check_model(const char *name, strix_model *m)
{
    if (!m)
        return;
    int n = 0;
    strix_token *t = corpus_tokens(m, &n);
    strix_context *ctx = fixture_context(m, NCTX, NCTX, 2);
    if (!ctx) {
        free(t);
        strix_model_free(m);
        return;
    }
    strix_error err;
    for (int stride = 0; stride <= 100; stride += 100) {
        struct strix_ppl_params pp = strix_ppl_default_params();
        pp.n_ctx = NCTX;
        pp.stride = stride;
        struct strix_ppl_result r = {.struct_size = sizeof r};
        int rc = strix_perplexity(m, ctx, t, n, &pp, &r, &err);
        CHECKF(rc == STRIX_OK, "%s: %s", name, err.msg);
        long count;
        const double want = direct_nll(m, ctx, t, n, stride, &count);
        CHECKF(r.n_scored == count && fabs(r.nll - want) < 1e-6 * want,
               "%s stride %d: %lld tokens, nll %.8f; direct %ld, %.8f", name, stride,
               (long long)r.n_scored, r.nll, count, want);
        if (stride == 0)
            CHECK(r.n_windows == n / NCTX && r.n_scored == (long)(n / NCTX) * (NCTX / 2 - 1));
        else
            CHECK(r.n_scored == n - 1); /* every token but BOS */
        CHECK(fabs(r.ppl - exp(r.nll)) < 1e-9 * r.ppl);
        CHECK(fabs(pow(2.0, r.bits_per_token) - r.ppl) < 1e-9 * r.ppl);
        CHECK(r.nll_stderr > 0 && r.nll_stderr < r.nll && r.bits_per_byte > 0);
        /* the same windows decoded by a caller's decode_window, without a context */
        strix_context *c1 = fixture_context(m, NCTX, NCTX, 1);
        struct strix_ppl_result r1 = {.struct_size = sizeof r1};
        pp.decode_window = window_one_by_one;
        struct one_by_one ob = {c1, strix_vocab_size(m)};
        pp.decode_user = &ob;
        CHECKF(c1 && strix_perplexity(m, NULL, t, n, &pp, &r1, &err) == STRIX_OK &&
                   r1.n_scored == count && fabs(r1.nll - want) < 1e-6 * want &&
                   r1.bits_per_byte == r.bits_per_byte,
               "%s stride %d, decode_window: nll %.8f, direct %.8f (%s)", name, stride, r1.nll,
               want, err.msg);
        pp.decode_window = window_fails;
        CHECK(strix_perplexity(m, NULL, t, n, &pp, &r1, &err) == STRIX_ERR_IO &&
              strstr(err.msg, "pipeline broke"));
        strix_context_free(c1);
        printf("%s, %s: %d tokens, %lld scored: %.5f nats/token, PPL %.4f +/- %.4f, %.4f "
               "bits/byte (direct: %.5f)\n",
               name, stride ? "sliding, stride 100" : "chunks", n, (long long)r.n_scored, r.nll,
               r.ppl, r.ppl_stderr, r.bits_per_byte, want);
    }
    strix_context_free(ctx);
    free(t);
    strix_model_free(m);
}

static void test_kl(void)
{
    strix_model *m = load_fixture("stories260K-ref.gguf", NULL);
    if (!m)
        return;
    char base[4096], q8[4096];
    test_tmpfile(base, sizeof base, "kl-base");
    test_tmpfile(q8, sizeof q8, "kl-q8");
    int n = 0;
    strix_token *t = corpus_tokens(m, &n);
    strix_context *ctx = fixture_context(m, NCTX, NCTX, 0);
    strix_error err;
    struct strix_ppl_params pp = strix_ppl_default_params();
    pp.n_ctx = NCTX;
    pp.kl_save = base;
    struct strix_ppl_result r0 = {.struct_size = sizeof r0}, r = {.struct_size = sizeof r};
    CHECK(strix_perplexity(m, ctx, t, n, &pp, &r0, &err) == STRIX_OK);
    pp.kl_save = NULL;
    pp.kl_base = base;
    CHECK(strix_perplexity(m, ctx, NULL, 0, &pp, &r, &err) == STRIX_OK); /* the base's tokens */
    CHECK(r.has_kl && r.kl_mean == 0.0 && r.kl_max == 0.0 && r.top1_agree == 1.0);
    CHECK(r.ppl == r0.ppl && fabs(r.base_ppl - r0.ppl) < 1e-9 * r0.ppl && r.ppl_ratio == 1.0);
    printf("KL of stories260K against itself: mean %g, max %g, same top %.1f%%\n", r.kl_mean,
           r.kl_max, 100 * r.top1_agree);
    /* other tokens than the base's are refused */
    t[5] = t[5] == 10 ? 11 : 10;
    CHECK(strix_perplexity(m, ctx, t, n, &pp, &r, &err) == STRIX_ERR_ARG);
    /* the Q8_0 re-encoding: a small positive divergence */
    CHECK(strix_model_save_gguf(m, q8, "Q8_0", &err) == STRIX_OK);
    strix_model *mq;
    CHECK(strix_model_load(q8, NULL, &mq, &err) == STRIX_OK);
    strix_context *cq = fixture_context(mq, NCTX, NCTX, 0);
    CHECK(strix_perplexity(mq, cq, NULL, 0, &pp, &r, &err) == STRIX_OK);
    /* llama.cpp's figures for its Q8_0 file of this model (the same bytes as
     * strix's), from tests/data/llamacpp-kld.txt; the limits are
     * test_quant_model's */
    double ref_kl = -1, ref_top = -1;
    char *kl_text = test_read_file(test_path("llamacpp-kld.txt"), NULL);
    const char *row = kl_text ? strstr(kl_text, "\nstories260K Q8_0 256 ") : NULL;
    CHECK(row && sscanf(row, " stories260K Q8_0 256 %lf %lf", &ref_kl, &ref_top) == 2);
    free(kl_text);
    CHECKF(r.kl_mean > 0 && r.kl_mean <= 1.25 * ref_kl + 0.0005 && r.kl_median <= r.kl_p90 &&
               r.kl_p90 <= r.kl_p99 && r.kl_p99 <= r.kl_max &&
               r.top1_agree >= ref_top / 100 - 0.02,
           "Q8_0: KL %g (llama.cpp %g), top1 %g (llama.cpp %g%%)", r.kl_mean, ref_kl,
           r.top1_agree, ref_top);
    printf("KL of stories260K Q8_0 from F32: mean %.6f, median %.6f, 99%% %.6f, max %.6f, same "
           "top %.2f%%, PPL ratio %.5f\n",
           r.kl_mean, r.kl_median, r.kl_p99, r.kl_max, 100 * r.top1_agree, r.ppl_ratio);
    strix_context_free(cq);
    strix_model_free(mq);
    /* a truncated base file is an error, not a crash */
    FILE *f = fopen(base, "r+b");
    if (f) {
        fseek(f, 0, SEEK_END);
        const long sz = ftell(f);
        fclose(f);
        CHECK(truncate(base, sz - 7) == 0);
    }
    CHECK(strix_perplexity(m, ctx, NULL, 0, &pp, &r, &err) == STRIX_ERR_FORMAT);
    pp.kl_base = q8; /* not a base file at all */
    CHECK(strix_perplexity(m, ctx, NULL, 0, &pp, &r, &err) == STRIX_ERR_FORMAT);
    /* too few tokens for one window */
    pp = strix_ppl_default_params();
    pp.n_ctx = NCTX;
    CHECK(strix_perplexity(m, ctx, t, NCTX - 1, &pp, &r, &err) == STRIX_ERR_ARG);
    remove(base);
    remove(q8);
    strix_context_free(ctx);
    free(t);
    strix_model_free(m);
}

/*
 * llama.cpp's llama-perplexity on the same files and settings
 * (tests/data/llamacpp-ppl.txt: model, n_ctx, chunks, final PPL as printed
 * with 4 decimals). strix's logits are within 1e-4 of llama.cpp's
 * (test_logits), so each token's log-probability within 2e-4 and the
 * perplexity within a relative 2e-4, plus the printing's rounding.
 */
static void test_llamacpp(void)
{
    char *text = read_fixture("llamacpp-ppl.txt", NULL);
    int n_cases = 0;
    for (char *line = text, *next; line && *line; line = next) {
        next = strchr(line, '\n');
        if (next)
            *next++ = '\0';
        char model[32];
        int n_ctx, n_chunks;
        double want;
        if (line[0] == '#' || sscanf(line, "%31s %d %d %lf", model, &n_ctx, &n_chunks, &want) != 4)
            continue;
        strix_model *m = strcmp(model, "stories3M") == 0
                             ? load_fixture_f32("stories3M-q80.bin", "tok4096.bin")
                             : load_fixture("stories260K-ref.gguf", NULL);
        if (!m)
            continue;
        int n = 0;
        strix_token *t = corpus_tokens(m, &n);
        strix_context *ctx = fixture_context(m, n_ctx, n_ctx, 2);
        strix_error err;
        struct strix_ppl_params pp = strix_ppl_default_params();
        pp.n_ctx = n_ctx;
        struct strix_ppl_result r = {.struct_size = sizeof r};
        const int rc = strix_perplexity(m, ctx, t, n, &pp, &r, &err); /* ctx NULL: an error */
        CHECKF(rc == STRIX_OK, "%s: %s", model, err.msg);
        if (rc == STRIX_OK) {
            printf("%s, n_ctx %d: %d chunks, PPL %.4f; llama-perplexity: %d chunks, %.4f\n", model,
                   n_ctx, r.n_windows, r.ppl, n_chunks, want);
            CHECKF(r.n_windows == n_chunks, "%s n_ctx %d: %d windows, llama.cpp %d", model, n_ctx,
                   r.n_windows, n_chunks);
            CHECKF(fabs(r.ppl - want) <= 2e-4 * want + 5e-5,
                   "%s n_ctx %d: PPL %.5f, llama.cpp %.4f", model, n_ctx, r.ppl, want);
        }
        n_cases++;
        strix_context_free(ctx);
        free(t);
        strix_model_free(m);
    }
    CHECKF(n_cases >= 4, "%d llama-perplexity cases", n_cases);
    free(text);
}

int main(void)
{
    check_model("stories260K", load_fixture("stories260K-ref.gguf", NULL));
    check_model("stories3M", load_fixture_f32("stories3M-q80.bin", "tok4096.bin"));
    test_kl();
    test_llamacpp();
    TEST_MAIN_END();
}
