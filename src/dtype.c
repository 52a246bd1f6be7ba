/*
 * dtype.c - type table and scalar reference (de)quantization, exactly as the
 * GGUF formats define the blocks. These loops are the oracle that faster
 * kernels are tested against.
 */
#include "dtype.h"

#include <math.h>
#include <string.h>

#include "util.h"

void dtype_dequantize_row_f32(const void *src, float *dst, int64_t n)
{
    memcpy(dst, src, (size_t)n * sizeof(float));
}

void dtype_dequantize_row_f16(const void *src, float *dst, int64_t n)
{
    const uint8_t *p = src;
    for (int64_t i = 0; i < n; i++) {
        uint16_t h;
        memcpy(&h, p + 2 * i, 2);
        dst[i] = util_fp16_to_fp32(h);
    }
}

void dtype_dequantize_row_bf16(const void *src, float *dst, int64_t n)
{
    const uint8_t *p = src;
    for (int64_t i = 0; i < n; i++) {
        uint16_t h;
        memcpy(&h, p + 2 * i, 2);
        dst[i] = util_bf16_to_fp32(h);
    }
}

void dtype_dequantize_row_q8_0(const void *src, float *dst, int64_t n)
{
    const struct block_q8_0 *b = src;
    for (int64_t i = 0; i < n / QK8_0; i++) {
        const float d = util_fp16_to_fp32(b[i].d);
        for (int j = 0; j < QK8_0; j++)
            dst[i * QK8_0 + j] = d * (float)b[i].qs[j];
    }
}

void dtype_dequantize_row_q4_0(const void *src, float *dst, int64_t n)
{
    const struct block_q4_0 *b = src;
    for (int64_t i = 0; i < n / QK4_0; i++) {
        const float d = util_fp16_to_fp32(b[i].d);
        for (int j = 0; j < QK4_0 / 2; j++) {
            dst[i * QK4_0 + j] = d * (float)((b[i].qs[j] & 0x0f) - 8);
            dst[i * QK4_0 + j + QK4_0 / 2] = d * (float)((b[i].qs[j] >> 4) - 8);
        }
    }
}

/* Q8_0: d = max|x| / 127, q = round(x / d). */
void dtype_quantize_row_q8_0(const float *src, void *dst, int64_t n)
{
    struct block_q8_0 *b = dst;
    for (int64_t i = 0; i < n / QK8_0; i++) {
        const float *x = src + i * QK8_0;
        float amax = 0.0f;
        for (int j = 0; j < QK8_0; j++)
            amax = fmaxf(amax, fabsf(x[j]));
        const float d = amax / 127.0f;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        b[i].d = util_fp32_to_fp16(d);
        for (int j = 0; j < QK8_0; j++)
            b[i].qs[j] = (int8_t)roundf(x[j] * id);
    }
}

/* Q4_0: the value of largest magnitude maps to -8, d = max / -8. */
void dtype_quantize_row_q4_0(const float *src, void *dst, int64_t n)
{
    struct block_q4_0 *b = dst;
    for (int64_t i = 0; i < n / QK4_0; i++) {
        const float *x = src + i * QK4_0;
        float amax = 0.0f, max = 0.0f;
        for (int j = 0; j < QK4_0; j++) {
            if (fabsf(x[j]) > amax) {
                amax = fabsf(x[j]);
                max = x[j];
            }
        }
        const float d = max / -8.0f;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        b[i].d = util_fp32_to_fp16(d);
        for (int j = 0; j < QK4_0 / 2; j++) {
            int q0 = (int)(x[j] * id + 8.5f);
            int q1 = (int)(x[j + QK4_0 / 2] * id + 8.5f);
            q0 = q0 > 15 ? 15 : q0;
            q1 = q1 > 15 ? 15 : q1;
            b[i].qs[j] = (uint8_t)(q0 | (q1 << 4));
        }
    }
}

static const struct dtype_traits table[DTYPE_COUNT] = {
    [DTYPE_F32] = {"F32", 1, 4, dtype_dequantize_row_f32, NULL},
    [DTYPE_F16] = {"F16", 1, 2, dtype_dequantize_row_f16, NULL},
    [DTYPE_Q4_0] = {"Q4_0", 32, 18, dtype_dequantize_row_q4_0, dtype_quantize_row_q4_0},
    [DTYPE_Q4_1] = {"Q4_1", 32, 20, NULL, NULL},
    [DTYPE_Q5_0] = {"Q5_0", 32, 22, NULL, NULL},
    [DTYPE_Q5_1] = {"Q5_1", 32, 24, NULL, NULL},
    [DTYPE_Q8_0] = {"Q8_0", 32, 34, dtype_dequantize_row_q8_0, dtype_quantize_row_q8_0},
    [DTYPE_Q8_1] = {"Q8_1", 32, 36, NULL, NULL},
    [DTYPE_Q2_K] = {"Q2_K", 256, 84, NULL, NULL},
    [DTYPE_Q3_K] = {"Q3_K", 256, 110, NULL, NULL},
    [DTYPE_Q4_K] = {"Q4_K", 256, 144, NULL, NULL},
    [DTYPE_Q5_K] = {"Q5_K", 256, 176, NULL, NULL},
    [DTYPE_Q6_K] = {"Q6_K", 256, 210, NULL, NULL},
    [DTYPE_Q8_K] = {"Q8_K", 256, 292, NULL, NULL},
    [DTYPE_IQ2_XXS] = {"IQ2_XXS", 256, 66, NULL, NULL},
    [DTYPE_IQ2_XS] = {"IQ2_XS", 256, 74, NULL, NULL},
    [DTYPE_IQ3_XXS] = {"IQ3_XXS", 256, 98, NULL, NULL},
    [DTYPE_IQ1_S] = {"IQ1_S", 256, 50, NULL, NULL},
    [DTYPE_IQ4_NL] = {"IQ4_NL", 32, 18, NULL, NULL},
    [DTYPE_IQ3_S] = {"IQ3_S", 256, 110, NULL, NULL},
    [DTYPE_IQ2_S] = {"IQ2_S", 256, 82, NULL, NULL},
    [DTYPE_IQ4_XS] = {"IQ4_XS", 256, 136, NULL, NULL},
    [DTYPE_I8] = {"I8", 1, 1, NULL, NULL},
    [DTYPE_I16] = {"I16", 1, 2, NULL, NULL},
    [DTYPE_I32] = {"I32", 1, 4, NULL, NULL},
    [DTYPE_I64] = {"I64", 1, 8, NULL, NULL},
    [DTYPE_F64] = {"F64", 1, 8, NULL, NULL},
    [DTYPE_IQ1_M] = {"IQ1_M", 256, 56, NULL, NULL},
    [DTYPE_BF16] = {"BF16", 1, 2, dtype_dequantize_row_bf16, NULL},
    [DTYPE_TQ1_0] = {"TQ1_0", 256, 54, NULL, NULL},
    [DTYPE_TQ2_0] = {"TQ2_0", 256, 66, NULL, NULL},
};

const struct dtype_traits *dtype_get(uint32_t t)
{
    if (t >= DTYPE_COUNT || !table[t].name)
        return NULL;
    return &table[t];
}

const char *dtype_name(uint32_t t)
{
    const struct dtype_traits *tr = dtype_get(t);
    return tr ? tr->name : "?";
}

size_t dtype_row_size(uint32_t t, int64_t n)
{
    const struct dtype_traits *tr = dtype_get(t);
    if (!tr || n < 0 || n % tr->block_size != 0)
        return 0;
    size_t r;
    if (!util_mul_size((size_t)(n / tr->block_size), tr->type_size, &r))
        return 0;
    return r;
}
