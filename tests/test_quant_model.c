/*
 * test_quant_model.c - whole models through strix_model_quantize: every
 * type (and the Q4_K_M / Q5_K_M mixes) is written, reloaded and run, and its
 * logits over a long text are compared with the F32 original: the largest
 * logit difference and how often the top token agrees. stories3M (192 wide,
 * so the k-quants fall back to 32-blocks) and a random 256-wide model (where
 * they do not); stories260K's 172-wide FFN must quantize to Q8_0 and Q4_0.
 */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <unistd.h>

#include "fixtures.h"
#include "harness.h"
#include "strix.h"

static char tmp[64];

static float *logits_of(const strix_model *m, const strix_token *ids, int n)
{
    const int nv = strix_vocab_size(m);
    struct strix_context_params cp = strix_context_default_params();
    cp.n_ctx = 512;
    cp.n_batch = 512;
    cp.n_threads = 2;
    strix_context *ctx;
    strix_error err;
    if (strix_context_create(m, &cp, &ctx, &err) != STRIX_OK)
        return NULL;
    int8_t *want = malloc((size_t)n);
    float *out = malloc((size_t)n * (size_t)nv * 4);
    memset(want, 1, (size_t)n);
    if (strix_decode(ctx, ids, NULL, n, want, &err) == STRIX_OK) {
        for (int i = 0; i < n; i++)
            memcpy(out + (size_t)i * (size_t)nv, strix_get_logits(ctx, i), (size_t)nv * 4);
    } else {
        free(out);
        out = NULL;
    }
    free(want);
    strix_context_free(ctx);
    return out;
}

static void no_log(void *user, const char *line)
{
    (void)user, (void)line;
}

struct expect {
    const char *type;
    float max_diff;  /* largest |logit - F32 logit| allowed */
    float agree_min; /* share of positions whose top token must match F32's */
};

/* Quantizes ref to each type, reloads, compares logits with F32's. */
static void run_types(const char *what, const strix_model *ref, const strix_token *ids, int n,
                      const struct expect *ex, int n_ex)
{
    const int nv = strix_vocab_size(ref);
    float *base = logits_of(ref, ids, n);
    CHECK(base != NULL);
    for (int k = 0; k < n_ex && base; k++) {
        struct strix_quantize_params qp = strix_quantize_default_params();
        qp.n_threads = 2;
        qp.log = no_log;
        strix_error err;
        CHECKF(strix_model_quantize(ref, tmp, ex[k].type, &qp, &err) == STRIX_OK, "%s: %s",
               ex[k].type, err.msg);
        strix_model *m = NULL;
        CHECKF(strix_model_load(tmp, NULL, &m, &err) == STRIX_OK, "%s: %s", ex[k].type, err.msg);
        float *got = m ? logits_of(m, ids, n) : NULL;
        CHECKF(got != NULL, "%s %s: no logits", what, ex[k].type);
        float maxd = 0;
        int agree = 0;
        for (int i = 0; i < n && got; i++) {
            const float *a = got + (size_t)i * nv, *b = base + (size_t)i * nv;
            for (int j = 0; j < nv; j++)
                maxd = fmaxf(maxd, fabsf(a[j] - b[j]));
            agree += argmax(a, nv) == argmax(b, nv);
        }
        if (got) {
            printf("%-12s %-6s max |logit - F32| %.3f, top-1 agrees at %d of %d positions (%.1f%%)\n",
                   what, ex[k].type, maxd, agree, n, 100.0 * agree / n);
            CHECKF(maxd <= ex[k].max_diff, "%s %s: logits differ from F32 by %g", what,
                   ex[k].type, maxd);
            CHECKF(agree >= ex[k].agree_min * n, "%s %s: top token agrees at %d of %d", what,
                   ex[k].type, agree, n);
        }
        free(got);
        strix_model_free(m);
    }
    free(base);
}

/* The types chosen for stories260K: FFN down rows of 172 fall back to F32. */
static void test_fallback(void)
{
    strix_model *m = load_fixture("stories260K.bin", "tok512.bin");
    if (!m)
        return;
    static const char *types[] = {"Q8_0", "Q4_0", "Q4_K_M"};
    for (int k = 0; k < 3; k++) {
        strix_error err;
        CHECKF(strix_model_quantize(m, tmp, types[k], NULL, &err) == STRIX_OK, "%s", err.msg);
        strix_model *q = NULL;
        CHECKF(strix_model_load(tmp, NULL, &q, &err) == STRIX_OK, "%s", err.msg);
        if (!q)
            continue;
        struct strix_tensor_info ti;
        for (int i = 0; i < strix_model_n_tensors(q); i++) {
            strix_model_tensor_info(q, i, &ti);
            const char *want = types[k];
            if (ti.n_dims == 1)
                want = "F32";
            else if (strstr(ti.name, "ffn_down"))
                want = "F32"; /* 172 is not a multiple of 32 */
            else if (strstr(ti.name, "token_embd")) /* tied output: Q6_K -> Q8_0 */
                want = "Q8_0";
            else if (k == 2) /* Q4_K_M on 64-wide rows: Q4_K -> Q5_0, Q6_K -> Q8_0 */
                want = strstr(ti.name, "attn_v") ? NULL : "Q5_0";
            if (want)
                CHECKF(strcmp(ti.type, want) == 0, "%s: %s is %s, expected %s", types[k], ti.name,
                       ti.type, want);
        }
        strix_model_free(q);
    }
    strix_error err;
    CHECK(strix_model_quantize(m, tmp, "Q3_K", NULL, &err) == STRIX_ERR_ARG);
    CHECK(strix_model_quantize(m, tmp, "q4_0", NULL, &err) == STRIX_OK); /* any case, as llama-quantize */
    CHECK(strix_model_quantize(m, "/nonexistent/dir/x.gguf", "Q8_0", NULL, &err) == STRIX_ERR_IO);
    strix_model_free(m);
}

/* The Q4_K_M rule on a model whose widths fill k-quant blocks: 8 layers. */
static void test_mix(const strix_model *syn)
{
    strix_error err;
    CHECKF(strix_model_quantize(syn, tmp, "Q4_K_M", NULL, &err) == STRIX_OK, "%s", err.msg);
    strix_model *q = NULL;
    CHECKF(strix_model_load(tmp, NULL, &q, &err) == STRIX_OK, "%s", err.msg);
    if (!q)
        return;
    /* n = 8: layers 0 (i < n/8), 7 (i >= 7n/8) and 3, 6 ((i - 1) % 3 == 2) get Q6_K */
    static const char *v_types[8] = {"Q6_K", "Q4_K", "Q4_K", "Q6_K",
                                     "Q4_K", "Q4_K", "Q6_K", "Q6_K"};
    int checked = 0;
    for (int i = 0; i < strix_model_n_tensors(q); i++) {
        struct strix_tensor_info ti;
        strix_model_tensor_info(q, i, &ti);
        int il = -1;
        const char *want = ti.n_dims == 1 ? "F32" : "Q4_K";
        if (sscanf(ti.name, "blk.%d.", &il) == 1 &&
            (strstr(ti.name, "attn_v") || strstr(ti.name, "ffn_down")))
            want = v_types[il];
        if (strcmp(ti.name, "output.weight") == 0)
            want = "Q6_K";
        checked += strcmp(ti.type, want) == 0;
        CHECKF(strcmp(ti.type, want) == 0, "Q4_K_M: %s is %s, expected %s", ti.name, ti.type,
               want);
    }
    CHECK(checked == strix_model_n_tensors(q));
    strix_model_free(q);
}

/* The text the models read: two stories (about 460 tokens with stories3M's
 * vocabulary). */
static strix_token *story_ids(const strix_model *m, int *n)
{
    char *a = test_read_file(test_path("stories3M-once.txt"), NULL);
    char *b = test_read_file(test_path("stories260K-once.txt"), NULL);
    static strix_token ids[512];
    *n = 0;
    if (a && b) {
        size_t la = strlen(a), lb = strlen(b);
        char *text = malloc(la + lb + 2);
        memcpy(text, a, la);
        text[la] = '\n';
        memcpy(text + la + 1, b, lb + 1);
        if (strix_tokenize(m, text, strlen(text), 1, ids, 512, n, NULL) != STRIX_OK)
            *n = 0;
        free(text);
    }
    free(a), free(b);
    CHECKF(*n > 300, "%d tokens", *n);
    return ids;
}

int main(void)
{
    snprintf(tmp, sizeof tmp, "/tmp/strix-quant-XXXXXX");
    int fd = mkstemp(tmp);
    CHECK(fd >= 0);
    if (fd >= 0)
        close(fd);
    test_fallback();

    /* stories3M: trained weights, 192 wide (k-quants fall back to Q5_0 etc.) */
    /* limits: about 1.5x the largest difference seen and a few points under
     * the agreement seen (strix's quantizers, commit of this test). Q8_0,
     * Q4_0 and the k-quants also round the activations to int8 blocks in
     * their dot products (as llama.cpp does), which the limits include. */
    static const struct expect ex3[] = {
        {"F16", 0.05f, 0.99f},   {"BF16", 0.5f, 0.97f},  {"Q8_0", 1.2f, 0.93f},
        {"Q6_K", 2.3f, 0.93f},   {"Q5_1", 5.0f, 0.88f},  {"Q5_0", 6.5f, 0.84f},
        {"Q5_K_M", 5.0f, 0.88f}, {"Q4_1", 13.0f, 0.74f}, {"Q4_0", 13.0f, 0.74f},
        {"Q4_K_M", 8.0f, 0.81f}, {"Q4_K", 8.0f, 0.81f},  {"Q5_K", 5.0f, 0.88f},
    };
    strix_model *m3 = load_fixture("stories3M-q80.bin", "tok4096.bin");
    if (m3) {
        int n;
        strix_token *ids = story_ids(m3, &n);
        if (n > 0)
            run_types("stories3M", m3, ids, n, ex3, (int)(sizeof ex3 / sizeof ex3[0]));
    }

    /* a random 256-wide model: the k-quants proper */
    struct strix_synth_params sp = strix_synth_default_params();
    sp.n_embd = 256, sp.n_ff = 512, sp.n_layer = 8, sp.n_head = 4, sp.n_head_kv = 2, sp.seed = 11;
    char vp[4096];
    snprintf(vp, sizeof vp, "%s", test_path("stories260K-ref.gguf"));
    strix_model *syn = NULL;
    strix_error err;
    CHECKF(strix_model_synth(&sp, vp, &syn, &err) == STRIX_OK, "%s", err.msg);
    if (syn && m3) {
        /* random weights give flat logits, so the top token is fragile */
        static const struct expect exs[] = {
            {"Q8_0", 0.2f, 0.93f}, {"Q6_K", 0.6f, 0.88f},   {"Q5_K", 1.4f, 0.70f},
            {"Q4_K", 2.3f, 0.50f}, {"Q4_K_M", 2.0f, 0.55f}, {"Q5_K_M", 1.3f, 0.75f},
        };
        strix_token ids[128];
        for (int i = 0; i < 128; i++)
            ids[i] = (strix_token)((i * 7919 + 13) % strix_vocab_size(syn));
        run_types("synth-256", syn, ids, 128, exs, (int)(sizeof exs / sizeof exs[0]));
        test_mix(syn);
    }
    strix_model_free(syn);
    strix_model_free(m3);
    unlink(tmp);
    TEST_MAIN_END();
}
