/*
 * test_logits.c - strix's logits against llama.cpp's on the same weights:
 * for every position of a prompt, fed one token at a time into llama.cpp
 * (commit c392e50, CPU, F32 KV cache) and here both one at a time and as one
 * batch. Fixtures: tests/data/llamacpp-*.ids (token ids) and *.logits (raw
 * little-endian float32, positions x vocabulary).
 */
#include <math.h>

#include "fixtures.h"
#include "quant/dtype.h"
#include "harness.h"
#include "strix.h"
#include "strix_dev.h"

/* Compares m's logits with llama.cpp's; takes ownership of m. */
static void compare(strix_model *m, const char *model, const char *ids_file,
                    const char *logits_file, float tol)
{
    strix_token ids[256];
    const int n = read_ids(ids_file, ids, 256);
    float *ref = m && n > 0 ? read_logits(logits_file, n, strix_vocab_size(m)) : NULL;
    CHECKF(ref, "%s: fixtures (%d ids)", model, n);
    if (!ref) {
        strix_model_free(m);
        return;
    }
    const int nv = strix_vocab_size(m);
    for (int batched = 0; batched <= 1; batched++) {
        float *rows = fixture_logits(m, ids, n, batched, 256, 0);
        if (!rows)
            continue;
        float maxd = 0;
        double sumd = 0;
        int argmax_bad = 0;
        for (int i = 0; i < n; i++) {
            const float *got = rows + (size_t)i * (size_t)nv;
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
        free(rows);
    }
    free(ref);
    strix_model_free(m);
}

int main(void)
{
    if (!fixture_kernels(__FILE__))
        TEST_MAIN_END();
    compare(load_fixture("stories260K-ref.gguf", NULL), "stories260K-ref.gguf",
            "llamacpp-stories260K.ids", "llamacpp-stories260K.logits", 1e-4f);
    /* llama.cpp ran the exact dequantization of this int8 checkpoint: its F32
     * copy (fixtures.h) must agree to float rounding. strix runs the
     * checkpoint itself as Q8_0, which also rounds the activations to int8
     * blocks (as llama.cpp's Q8_0 does): the same bound as test_dtype's
     * Q8_0 against F32 on this model. */
    compare(load_fixture_f32("stories3M-q80.bin", "tok4096.bin"), "stories3M-q80.bin (F32 copy)",
            "llamacpp-stories3M.ids", "llamacpp-stories3M.logits", 1e-4f);
    compare(load_fixture("stories3M-q80.bin", "tok4096.bin"), "stories3M-q80.bin (as Q8_0)",
            "llamacpp-stories3M.ids", "llamacpp-stories3M.logits", 1.0f);

    /* A random-weight model (strix synth, seed 7; the F32 file is committed,
     * see tests/data/README.md), and llama.cpp's own quantizations of it.
     * Both round the activations to q8_0 blocks for Q8_0/Q4_0 weights and
     * to q8_K for k-quants, so those agree as closely as F32 does; for BF16
     * weights llama.cpp rounds the activations to bf16 and strix keeps them
     * in f32 (bf16 keeps 8 bits: relative error up to 2^-9 per activation),
     * so that file agrees less closely. */
    compare(load_fixture("llamacpp-synth-F32.gguf", NULL), "synth (F32)",
            "llamacpp-stories260K.ids", "llamacpp-synth-F32.logits", 1e-4f);
    struct {
        const char *type;
        float tol;
    } q[] = {{"F16", 1e-4f}, {"BF16", 0.06f}, {"Q8_0", 1e-4f}, {"Q4_0", 1e-4f}};
    /* where the kernel set rounds the activations of BF16 weights to bf16
     * too (avx512 with AVX512-BF16, kernels_gemm.h), both sum the same
     * products: only the summation order differs, as for F16 */
    const struct kern_mm *bf16 = kern_mm_for(DTYPE_BF16);
    if (bf16 && bf16->act_type == DTYPE_BF16)
        q[1].tol = 1e-5f;
    for (size_t i = 0; i < sizeof q / sizeof q[0]; i++) {
        char model[64], logits[64];
        snprintf(model, sizeof model, "llamacpp-synth-%s.gguf", q[i].type);
        snprintf(logits, sizeof logits, "llamacpp-synth-%s.logits", q[i].type);
        compare(load_fixture(model, NULL), model, "llamacpp-stories260K.ids", logits, q[i].tol);
    }
    /* k-quants: a 256-wide random model (strix synth -m stories260K-ref.gguf
     * --dim 256 --ff 256 --layers 1 --heads 4 --kv-heads 2 --seed 7) that
     * llama.cpp's llama-quantize wrote as Q4_K_M (Q4_K, Q6_K for output,
     * attn_v and ffn_down). */
    compare(load_fixture("llamacpp-synth256-Q4_K_M.gguf", NULL), "llamacpp-synth256-Q4_K_M.gguf",
            "llamacpp-stories260K.ids", "llamacpp-synth256-Q4_K_M.logits", 1e-4f);
    TEST_MAIN_END();
}
