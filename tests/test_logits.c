/*
 * test_logits.c - strix's logits against llama.cpp's on the same weights:
 * for every position of a prompt, fed one token at a time into llama.cpp
 * (commit c392e50, CPU, F32 KV cache) and here both one at a time and as one
 * batch. Fixtures: tests/data/llamacpp-*.ids (token ids) and *.logits (raw
 * little-endian float32, positions x vocabulary).
 */
#include <math.h>

#include "fixtures.h"
#include "harness.h"
#include "strix.h"
#include "strix_dev.h"

/* Compares m's logits with llama.cpp's; takes ownership of m. */
static void compare(strix_model *m, const char *model, const char *ids_file,
                    const char *logits_file, float tol)
{
    strix_error err;
    strix_token ids[256];
    const int n = read_ids(ids_file, ids, 256);
    size_t len = 0;
    float *ref = (float *)test_read_file(test_path(logits_file), &len);
    CHECK(m && ref && n > 0);
    if (!m || !ref || n <= 0) {
        free(ref);
        strix_model_free(m);
        return;
    }
    const int nv = strix_vocab_size(m);
    CHECKF(len == (size_t)n * (size_t)nv * 4, "%s: %zu bytes for %d x %d", logits_file, len, n, nv);
    for (int batched = 0; batched <= 1 && len == (size_t)n * (size_t)nv * 4; batched++) {
        strix_context *ctx;
        struct strix_context_params cp = strix_context_default_params();
        cp.n_ctx = 256;
        CHECK(strix_context_create(m, &cp, &ctx, &err) == STRIX_OK);
        int8_t want[256];
        memset(want, 1, sizeof want);
        if (batched)
            CHECK(strix_decode(ctx, ids, NULL, n, want, &err) == STRIX_OK);
        float maxd = 0;
        double sumd = 0;
        int argmax_bad = 0;
        for (int i = 0; i < n; i++) {
            if (!batched)
                CHECK(strix_decode(ctx, ids + i, NULL, 1, NULL, &err) == STRIX_OK);
            const float *got = strix_get_logits(ctx, batched ? i : -1);
            const float *want_row = ref + (size_t)i * (size_t)nv;
            int a = 0, b = 0;
            for (int j = 0; j < nv; j++) {
                const float d = fabsf(got[j] - want_row[j]);
                maxd = d > maxd || d != d ? d : maxd; /* a NaN must not hide */
                sumd += d;
                a = got[j] > got[a] ? j : a;
                b = want_row[j] > want_row[b] ? j : b;
            }
            /* the top token may differ only where llama.cpp's top two are
             * closer than the tolerance */
            argmax_bad += a != b && want_row[b] - want_row[a] > 2 * tol;
        }
        const double mean = sumd / ((double)n * nv);
        CHECKF(maxd < tol, "%s (%s): max |logit - llama.cpp| = %g", model,
               batched ? "batch" : "one by one", maxd);
        CHECKF(mean < tol / 4, "%s: mean |logit - llama.cpp| = %g", model, mean);
        CHECKF(argmax_bad == 0, "%s: argmax differs at %d of %d positions", model, argmax_bad, n);
        printf("%s vs llama.cpp (%s): %d positions, max |diff| %.2e, mean %.2e\n", model,
               batched ? "batch" : "one by one", n, maxd, mean);
        strix_context_free(ctx);
    }
    free(ref);
    strix_model_free(m);
}

int main(void)
{
    compare(load_fixture("stories260K-ref.gguf", NULL), "stories260K-ref.gguf",
            "llamacpp-stories260K.ids", "llamacpp-stories260K.logits", 1e-4f);
    /* llama.cpp ran strix's F32 conversion of this checkpoint */
    compare(load_fixture("stories3M-q80.bin", "tok4096.bin"), "stories3M-q80.bin",
            "llamacpp-stories3M.ids", "llamacpp-stories3M.logits", 1e-4f);

    /* A random-weight model (strix synth, seed 7), and llama.cpp's own
     * quantizations of it. llama.cpp rounds the activations to the weight
     * type (q8_0 blocks for Q8_0/Q4_0, f16/bf16) before its dot products and
     * strix keeps them in f32, so the quantized files agree less closely. */
    struct strix_synth_params sp = strix_synth_default_params();
    sp.n_embd = 64, sp.n_ff = 192, sp.n_layer = 2, sp.n_head = 4, sp.n_head_kv = 2, sp.seed = 7;
    char vp[4096];
    snprintf(vp, sizeof vp, "%s", test_path("stories260K-ref.gguf"));
    strix_model *syn = NULL;
    strix_error err;
    CHECKF(strix_model_synth(&sp, vp, &syn, &err) == STRIX_OK, "%s", err.msg);
    compare(syn, "synth (F32)", "llamacpp-stories260K.ids", "llamacpp-synth-F32.logits", 1e-4f);
    static const struct {
        const char *type;
        float tol;
    } q[] = {{"F16", 1e-4f}, {"BF16", 0.06f}, {"Q8_0", 0.15f}, {"Q4_0", 0.2f}};
    for (size_t i = 0; i < sizeof q / sizeof q[0]; i++) {
        char model[64], logits[64];
        snprintf(model, sizeof model, "llamacpp-synth-%s.gguf", q[i].type);
        snprintf(logits, sizeof logits, "llamacpp-synth-%s.logits", q[i].type);
        compare(load_fixture(model, NULL), model, "llamacpp-stories260K.ids", logits, q[i].tol);
    }
    /* k-quants: a 256-wide random model (strix synth -m stories260K-ref.gguf
     * --dim 256 --ff 256 --layers 1 --heads 4 --kv-heads 2 --seed 7) that
     * llama.cpp's llama-quantize wrote as Q4_K_M (Q4_K, Q6_K for output,
     * attn_v and ffn_down). llama.cpp rounds activations to q8_K blocks. */
    compare(load_fixture("llamacpp-synth256-Q4_K_M.gguf", NULL), "llamacpp-synth256-Q4_K_M.gguf",
            "llamacpp-stories260K.ids", "llamacpp-synth256-Q4_K_M.logits", 0.2f);
    TEST_MAIN_END();
}
