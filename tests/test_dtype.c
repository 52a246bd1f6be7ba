/*
 * test_dtype.c - element types: half-precision conversion against the
 * compiler's own _Float16 (every one of the 65536 values), bf16 rounding,
 * Q8_0/Q4_0 blocks decoded by the format's definition, quantizer round trips
 * within each format's analytic error bound, and a model saved in F16, BF16,
 * Q8_0 and Q4_0 compared with llama.cpp's quantization of the same model.
 */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdint.h>
#include <unistd.h>

#include "format/gguf.h"
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
    /* table */
    CHECK(dtype_row_size(DTYPE_Q8_0, 64) == 68);
    CHECK(dtype_row_size(DTYPE_Q4_0, 32) == 18);
    CHECK(dtype_row_size(DTYPE_Q4_0, 33) == 0);
    CHECK(dtype_row_size(DTYPE_F16, 3) == 6);
    CHECK(dtype_get(4) == NULL && dtype_get(1000) == NULL);
    CHECK(strcmp(dtype_name(DTYPE_BF16), "BF16") == 0);
}

/*
 * Round trips against each format's own error bound, on the 4 x 512 values
 * of quant/input.f32 (uniform, small gaussian, gaussian with outliers,
 * offset gaussian). With d the exact scale of a block and d16 its fp16
 * rounding (converted by util_fp32_to_fp16, checked above against
 * _Float16), every element must satisfy:
 *   symmetric, levels -L..L-1 (Q8_0: L = 127 with d = max|x| / 127; Q4_0:
 *     L = 8, Q5_0: L = 16 with d = -(the value of largest |x|) / L):
 *     |x - deq| <= h max(|d|, |d16|) + L |d - d16|, where h = 1/2, or 1
 *     for elements above L - 1/2 steps (clamped to the top level L - 1);
 *   asymmetric (Q4_1: L = 15, Q5_1: L = 31; d = (max - min) / L, m = min):
 *     |x - deq| <= max(|d|, |d16|) / 2 + L |d - d16| + |m - fp16(m)|;
 *   F16: half an ulp, 2^-11 |x| (2^-25 below the normal range);
 *   BF16: 2^-8 |x|;
 * plus 1e-6 of the block's largest |x| for float rounding.
 */
static void test_error_bounds(void)
{
    size_t len = 0;
    float *in = (float *)test_read_file(test_path("quant/input.f32"), &len);
    CHECKF(in && len == 4 * 512 * sizeof(float), "quant/input.f32: %zu bytes", len);
    if (!in || len != 4 * 512 * sizeof(float)) {
        free(in);
        return;
    }
    const int n = 4 * 512;
    static const struct {
        uint32_t type;
        int sym, L, block;
    } fmt[] = {
        {DTYPE_Q8_0, 1, 127, 32}, {DTYPE_Q4_0, 1, 8, 32},  {DTYPE_Q5_0, 1, 16, 32},
        {DTYPE_Q4_1, 0, 15, 32},  {DTYPE_Q5_1, 0, 31, 32}, {DTYPE_F16, 2, 0, 1},
        {DTYPE_BF16, 3, 0, 1},
    };
    float *deq = malloc((size_t)n * sizeof(float));
    uint8_t *q = malloc(dtype_row_size(DTYPE_F32, n));
    for (size_t f = 0; f < sizeof fmt / sizeof fmt[0]; f++) {
        const struct dtype_traits *tr = dtype_get(fmt[f].type);
        for (int r = 0; r < 4; r++) {
            tr->quantize(in + r * 512, q + (size_t)r * dtype_row_size(fmt[f].type, 512), 512);
            tr->dequantize(q + (size_t)r * dtype_row_size(fmt[f].type, 512), deq + r * 512, 512);
        }
        int bad = 0;
        double worst = 0; /* largest error / bound */
        for (int b0 = 0; b0 < n; b0 += fmt[f].block) {
            const float *x = in + b0;
            const int bs = fmt[f].block, L = fmt[f].L;
            float amax = 0, vmax = 0, mn = x[0], mx = x[0];
            for (int j = 0; j < bs; j++) {
                if (fabsf(x[j]) > amax)
                    amax = fabsf(x[j]), vmax = x[j];
                mn = fminf(mn, x[j]);
                mx = fmaxf(mx, x[j]);
            }
            float d = 0, m = 0;
            if (fmt[f].type == DTYPE_Q8_0)
                d = amax / 127.0f;
            else if (fmt[f].sym == 1)
                d = vmax / (float)-L;
            else if (fmt[f].sym == 0)
                d = (mx - mn) / (float)L, m = mn;
            const double d16 = util_fp16_to_fp32(util_fp32_to_fp16(d));
            const double dm = fmax(fabs(d), fabs(d16)), dd = fabs(d - d16);
            const double mm = fabs(m - util_fp16_to_fp32(util_fp32_to_fp16(m)));
            for (int j = 0; j < bs; j++) {
                double bound;
                if (fmt[f].sym == 1) {
                    const double steps = d != 0 ? (double)x[j] / d : 0;
                    bound = (fmt[f].type != DTYPE_Q8_0 && steps > L - 0.5 ? 1.0 : 0.5) * dm +
                            L * dd;
                } else if (fmt[f].sym == 0) {
                    bound = 0.5 * dm + L * dd + mm;
                } else if (fmt[f].sym == 2) {
                    bound = fmax(ldexp(fabs(x[j]), -11), ldexp(1.0, -25));
                } else {
                    bound = ldexp(fabs(x[j]), -8);
                }
                bound += 1e-6 * amax;
                const double e = fabs((double)x[j] - deq[b0 + j]);
                bad += !(e <= bound);
                worst = fmax(worst, e / bound);
            }
        }
        CHECKF(bad == 0, "%s: %d of %d values outside the format's error bound (worst %.3f)",
               tr->name, bad, n, worst);
        printf("%-5s round trip: largest error / bound %.3f\n", tr->name, worst);
    }
    free(q);
    free(deq);
    free(in);
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

/*
 * The committed random-weight model (llamacpp-synth-F32.gguf) saved by strix
 * in F16, BF16, Q8_0 and Q4_0 must hold, tensor for tensor, the bytes
 * llama.cpp's llama-quantize wrote for the same model (llamacpp-synth-TYPE.gguf,
 * see tests/data/README.md); where every tensor agrees, its logits must be
 * those of llama.cpp's file bit for bit (test_logits compares those with
 * llama.cpp's own logits). llama.cpp's Q4_0 file keeps output.weight in Q8_0,
 * the one tensor whose type differs.
 */
static void test_model_types(void)
{
    const char *types[] = {"F16", "BF16", "Q8_0", "Q4_0"};
    char mp[4096];
    snprintf(mp, sizeof mp, "%s", test_path("llamacpp-synth-F32.gguf"));
    strix_model *ref = load_path(mp, NULL);
    if (!ref)
        return;
    strix_token ids[32];
    const int n = read_ids("llamacpp-stories260K.ids", ids, 32);
    CHECK(n > 8);
    char tmp[4096];
    test_tmpfile(tmp, sizeof tmp, "dtype");
    for (size_t k = 0; k < sizeof types / sizeof types[0]; k++) {
        strix_error err;
        CHECKF(strix_model_save_gguf(ref, tmp, types[k], &err) == STRIX_OK, "%s", err.msg);
        strix_model *m = load_path(tmp, NULL);
        char name[64];
        snprintf(name, sizeof name, "llamacpp-synth-%s.gguf", types[k]);
        strix_model *theirs = load_fixture(name, NULL);
        size_t la = 0, lb = 0;
        uint8_t *a = (uint8_t *)test_read_file(tmp, &la);
        uint8_t *b = (uint8_t *)test_read_file(test_path(name), &lb);
        gguf *ga = NULL, *gb = NULL;
        CHECK(a && gguf_parse(a, la, &ga, NULL) == STRIX_OK);
        CHECK(b && gguf_parse(b, lb, &gb, NULL) == STRIX_OK);
        if (m && theirs && ga && gb) {
            CHECK(strcmp(dtype_name(m->layers[0].wq.type), types[k]) == 0);
            CHECK(strcmp(dtype_name(m->tok_embd.type), types[k]) == 0);
            CHECK(m->layers[0].attn_norm.type == DTYPE_F32);
            int n_same = 0, n_type_differs = 0;
            for (uint64_t i = 0; i < gguf_n_tensors(ga); i++) {
                const struct gguf_tensor *t = gguf_tensor_at(ga, i);
                char tn[256];
                snprintf(tn, sizeof tn, "%.*s", (int)t->name.len, t->name.ptr);
                const struct gguf_tensor *u = gguf_find_tensor(gb, tn);
                CHECKF(u != NULL, "%s: %s not in llama.cpp's file", types[k], tn);
                if (!u)
                    continue;
                if (t->type != u->type) {
                    n_type_differs++;
                    CHECKF(strcmp(types[k], "Q4_0") == 0 && strcmp(tn, "output.weight") == 0,
                           "%s: %s is %s, llama.cpp's %s", types[k], tn, dtype_name(t->type),
                           dtype_name(u->type));
                    continue;
                }
                const int same = t->nbytes == u->nbytes && memcmp(t->data, u->data, t->nbytes) == 0;
                CHECKF(same, "%s: %s (%s) differs from llama.cpp's bytes", types[k], tn,
                       dtype_name(t->type));
                n_same += same;
            }
            CHECKF(n_same + n_type_differs == (int)gguf_n_tensors(gb) && n_same >= 20,
                   "%s: %d tensors equal llama.cpp's, %d of another type, of %d", types[k],
                   n_same, n_type_differs, (int)gguf_n_tensors(gb));
            printf("%-5s %d tensors byte for byte as llama.cpp quantized them\n", types[k],
                   n_same);
            if (n_type_differs == 0) {
                float *got = fixture_logits(m, ids, n, 1, 64, 2),
                      *want = fixture_logits(theirs, ids, n, 1, 64, 2);
                const int nv = strix_vocab_size(m);
                CHECKF(got && want && memcmp(got, want, (size_t)n * (size_t)nv * 4) == 0,
                       "%s: logits differ from those of llama.cpp's file", types[k]);
                free(got);
                free(want);
            }
        }
        gguf_free(ga);
        gguf_free(gb);
        free(a);
        free(b);
        strix_model_free(theirs);
        strix_model_free(m);
    }
    /* rows that do not fill whole blocks keep their type (stories260K's 172-wide FFN) */
    char vp[4096];
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
    strix_model_free(ref);
}

int main(void)
{
    test_fp16();
    test_bf16();
    test_blocks();
    test_error_bounds();
    test_model_types();
    TEST_MAIN_END();
}
