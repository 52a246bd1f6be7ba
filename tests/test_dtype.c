/*
 * test_dtype.c - element types: half-precision conversion against the
 * compiler's own _Float16 (every one of the 65536 values), bf16 rounding,
 * Q8_0/Q4_0 blocks decoded by the format's definition, quantizer round trips,
 * and a real model run with its weights in F16, BF16, Q8_0 and Q4_0 (in
 * memory and through a GGUF file) compared with the F32 original.
 */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdint.h>
#include <unistd.h>

#include "quant/dtype.h"
#include "fixtures.h"
#include "harness.h"
#include "model/model.h"
#include "util.h"

static void test_fp16(void)
{
    int bad_rt = 0, bad_hw = 0;
    for (uint32_t h = 0; h < 65536; h++) {
        float f = util_fp16_to_fp32((uint16_t)h);
        if (!isnan(f) && util_fp32_to_fp16(f) != h)
            bad_rt++;
#ifdef __FLT16_MAX__
        _Float16 hw;
        uint16_t hh = (uint16_t)h;
        memcpy(&hw, &hh, 2);
        if (!isnan(f) && (float)hw != f)
            bad_hw++;
#endif
    }
    CHECKF(bad_rt == 0, "%d fp16 values do not round-trip", bad_rt);
    CHECKF(bad_hw == 0, "%d fp16 values differ from _Float16", bad_hw);
#ifdef __FLT16_MAX__
    /* narrowing: random floats over a wide range, against the compiler */
    uint32_t x = 12345;
    int bad_n = 0;
    for (int i = 0; i < 200000; i++) {
        x = x * 1664525u + 1013904223u;
        uint32_t bits = (x & 0x8fffffffu) | ((uint32_t)(100 + (x >> 8) % 60) << 23);
        float f;
        memcpy(&f, &bits, 4);
        _Float16 hw = (_Float16)f;
        uint16_t hb;
        memcpy(&hb, &hw, 2);
        if (util_fp32_to_fp16(f) != hb)
            bad_n++;
    }
    CHECKF(bad_n == 0, "%d fp32 -> fp16 roundings differ from _Float16", bad_n);
#endif
    CHECK(util_fp32_to_fp16(65520.0f) == 0x7c00); /* rounds to infinity */
    CHECK(util_fp32_to_fp16(-0.0f) == 0x8000);
}

static void test_bf16(void)
{
    CHECK(util_fp32_to_bf16(1.0f) == 0x3f80);
    CHECK(util_bf16_to_fp32(0x3f80) == 1.0f);
    /* 1 + 2^-8 is halfway between 1 and 1 + 2^-7: ties to even (1.0) */
    CHECK(util_fp32_to_bf16(1.0f + 1.0f / 256) == 0x3f80);
    CHECK(util_fp32_to_bf16(1.0f + 3.0f / 256) == 0x3f82);
    CHECK(isnan(util_bf16_to_fp32(util_fp32_to_bf16(NAN))));
    int bad = 0;
    for (uint32_t h = 0; h < 65536; h++) {
        float f = util_bf16_to_fp32((uint16_t)h);
        if (!isnan(f) && util_fp32_to_bf16(f) != h)
            bad++;
    }
    CHECK(bad == 0);
}

static void test_blocks(void)
{
    /* Q8_0: w = d * q */
    struct block_q8_0 b8;
    b8.d = util_fp32_to_fp16(0.5f);
    for (int i = 0; i < 32; i++)
        b8.qs[i] = (int8_t)(i * 8 - 128);
    float out[64];
    dtype_dequantize_row_q8_0(&b8, out, 32);
    int ok = 1;
    for (int i = 0; i < 32; i++)
        ok &= out[i] == 0.5f * (float)(i * 8 - 128);
    CHECK(ok);
    /* Q4_0: low nibbles are weights 0..15, high nibbles 16..31; w = d * (q - 8) */
    struct block_q4_0 b4;
    b4.d = util_fp32_to_fp16(0.25f);
    for (int i = 0; i < 16; i++)
        b4.qs[i] = (uint8_t)((i & 15) | ((15 - i) << 4));
    dtype_dequantize_row_q4_0(&b4, out, 32);
    ok = 1;
    for (int i = 0; i < 16; i++)
        ok &= out[i] == 0.25f * (float)(i - 8) && out[i + 16] == 0.25f * (float)(15 - i - 8);
    CHECK(ok);
    /* round trips on random data with a tail of blocks */
    float src[96], back[96];
    uint32_t x = 7;
    for (int i = 0; i < 96; i++) {
        x = x * 1664525u + 1013904223u;
        src[i] = ((float)(x >> 8) / 16777216.0f - 0.5f) * 4.0f;
    }
    struct block_q8_0 q8[3];
    dtype_quantize_row_q8_0(src, q8, 96);
    dtype_dequantize_row_q8_0(q8, back, 96);
    float e8 = 0;
    for (int i = 0; i < 96; i++)
        e8 = fmaxf(e8, fabsf(src[i] - back[i]));
    CHECKF(e8 < 2.0f / 127, "q8_0 round-trip error %g", e8);
    struct block_q4_0 q4[3];
    dtype_quantize_row_q4_0(src, q4, 96);
    dtype_dequantize_row_q4_0(q4, back, 96);
    float e4 = 0;
    for (int i = 0; i < 96; i++)
        e4 = fmaxf(e4, fabsf(src[i] - back[i]));
    CHECKF(e4 < 2.0f / 8, "q4_0 round-trip error %g", e4);
    /* table */
    CHECK(dtype_row_size(DTYPE_Q8_0, 64) == 68);
    CHECK(dtype_row_size(DTYPE_Q4_0, 32) == 18);
    CHECK(dtype_row_size(DTYPE_Q4_0, 33) == 0);
    CHECK(dtype_row_size(DTYPE_F16, 3) == 6);
    CHECK(dtype_get(4) == NULL && dtype_get(1000) == NULL);
    CHECK(strcmp(dtype_name(DTYPE_BF16), "BF16") == 0);
}

static float *logits_of(const strix_model *m, const strix_token *ids, int n)
{
    const int nv = strix_vocab_size(m);
    struct strix_context_params cp = strix_context_default_params();
    cp.n_ctx = 64;
    cp.n_threads = 2;
    strix_context *ctx;
    strix_error err;
    if (strix_context_create(m, &cp, &ctx, &err))
        return NULL;
    int8_t want[64];
    memset(want, 1, sizeof want);
    float *out = malloc((size_t)n * (size_t)nv * 4);
    if (strix_decode(ctx, ids, NULL, n, want, &err) == STRIX_OK)
        for (int i = 0; i < n; i++)
            memcpy(out + (size_t)i * (size_t)nv, strix_get_logits(ctx, i), (size_t)nv * 4);
    strix_context_free(ctx);
    return out;
}

static strix_model *load_path(const char *path, const char *vocab)
{
    struct strix_model_params p = strix_model_default_params();
    p.vocab_path = vocab;
    strix_model *m = NULL;
    strix_error err;
    CHECKF(strix_model_load(path, &p, &m, &err) == STRIX_OK, "%s", err.msg);
    return m;
}

/* stories3M saved with its weights re-encoded in each type, reloaded, and
 * compared with the F32 original. */
static void test_model_types(void)
{
    const char *types[] = {"F16", "BF16", "Q8_0", "Q4_0"};
    /* max |logit difference| allowed against F32, and the share of positions
     * whose argmax must agree; Q8_0 and Q4_0 products also round the
     * activations to int8 blocks, as llama.cpp's do */
    const float tol[] = {0.02f, 0.3f, 1.0f, 10.0f};
    const float agree_min[] = {1.0f, 0.9f, 0.9f, 0.6f};
    char mp[4096], vp[4096];
    const char *f32 = fixture_f32("stories3M-q80.bin"); /* the exact weights (fixtures.h) */
    snprintf(mp, sizeof mp, "%s", f32 ? f32 : "");
    snprintf(vp, sizeof vp, "%s", test_path("tok4096.bin"));
    strix_model *ref = load_path(mp, vp);
    if (!ref)
        return;
    strix_token ids[32];
    int n;
    const char *text = "Once upon a time, there was a big dog. The dog liked to play ball.";
    CHECK(strix_tokenize(ref, text, strlen(text), 1, ids, 32, &n, NULL) == STRIX_OK);
    const int nv = strix_vocab_size(ref);
    float *base = logits_of(ref, ids, n);
    char tmp[] = "/tmp/strix-dtype-XXXXXX";
    int fd = mkstemp(tmp);
    close(fd);
    for (size_t k = 0; k < sizeof types / sizeof types[0]; k++) {
        strix_error err;
        CHECKF(strix_model_save_gguf(ref, tmp, types[k], &err) == STRIX_OK, "%s", err.msg);
        strix_model *m = load_path(tmp, NULL);
        if (!m)
            continue;
        CHECK(strcmp(dtype_name(m->layers[0].wq.type), types[k]) == 0);
        CHECK(strcmp(dtype_name(m->tok_embd.type), types[k]) == 0);
        CHECK(m->layers[0].attn_norm.type == DTYPE_F32);
        float *got = logits_of(m, ids, n);
        float maxd = 0;
        int agree = 0;
        for (int i = 0; i < n && got && base; i++) {
            for (int j = 0; j < nv; j++)
                maxd = fmaxf(maxd, fabsf(got[(size_t)i * nv + j] - base[(size_t)i * nv + j]));
            agree += argmax(got + (size_t)i * nv, nv) == argmax(base + (size_t)i * nv, nv);
        }
        CHECKF(maxd < tol[k], "%s: logits differ from F32 by %g", types[k], maxd);
        CHECKF(agree >= agree_min[k] * n, "%s: argmax agrees at %d of %d positions", types[k],
               agree, n);
        free(got);
        strix_model_free(m);
    }
    /* rows that do not fill whole blocks keep their type (stories260K's 172-wide FFN) */
    snprintf(mp, sizeof mp, "%s", test_path("stories260K.bin"));
    snprintf(vp, sizeof vp, "%s", test_path("tok512.bin"));
    strix_model *small = load_path(mp, vp);
    strix_error err;
    CHECK(small && strix_model_save_gguf(small, tmp, "Q8_0", &err) == STRIX_OK);
    strix_model *q = load_path(tmp, NULL);
    CHECK(q && q->layers[0].w_down.type == DTYPE_F32 && q->layers[0].w_up.type == DTYPE_Q8_0);
    CHECK(small && strix_model_save_gguf(small, tmp, "Q5_K", &err) == STRIX_ERR_ARG);
    strix_model_free(q);
    strix_model_free(small);
    unlink(tmp);
    free(base);
    strix_model_free(ref);
}

int main(void)
{
    test_fp16();
    test_bf16();
    test_blocks();
    test_model_types();
    TEST_MAIN_END();
}
