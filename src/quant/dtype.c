/*
 * dtype.c - the type table, float rows (F32, F16, BF16) and the 32-element
 * block formats (Q8_0, Q8_1, Q4_0, Q4_1, Q5_0, Q5_1): scalar reference
 * dequantization exactly as the GGUF formats define the blocks, quantizers
 * and dot products. The k-quants (256-element super-blocks) are in
 * dtype_k.c. These loops are the oracle that faster kernels are tested
 * against; they are plain portable C.
 */
#include "quant/dtype.h"

#include <ctype.h>
#include <math.h>
#include <string.h>

#include "util.h"

/* ---- float rows ---- */

static uint16_t load_u16(const void *p)
{
    uint16_t h;
    memcpy(&h, p, 2);
    return h;
}

void dtype_dequantize_row_f32(const void *src, float *dst, int64_t n)
{
    memcpy(dst, src, (size_t)n * sizeof(float));
}

void dtype_dequantize_row_f16(const void *src, float *dst, int64_t n)
{
    const uint8_t *p = src;
    for (int64_t i = 0; i < n; i++)
        dst[i] = util_fp16_to_fp32(load_u16(p + 2 * i));
}

void dtype_dequantize_row_bf16(const void *src, float *dst, int64_t n)
{
    const uint8_t *p = src;
    for (int64_t i = 0; i < n; i++)
        dst[i] = util_bf16_to_fp32(load_u16(p + 2 * i));
}

void dtype_quantize_row_f32(const float *src, void *dst, int64_t n)
{
    memcpy(dst, src, (size_t)n * sizeof(float));
}

void dtype_quantize_row_f16(const float *src, void *dst, int64_t n)
{
    uint8_t *p = dst;
    for (int64_t i = 0; i < n; i++) {
        const uint16_t h = util_fp32_to_fp16(src[i]);
        memcpy(p + 2 * i, &h, 2);
    }
}

void dtype_quantize_row_bf16(const float *src, void *dst, int64_t n)
{
    uint8_t *p = dst;
    for (int64_t i = 0; i < n; i++) {
        const uint16_t h = util_fp32_to_bf16(src[i]);
        memcpy(p + 2 * i, &h, 2);
    }
}

float dtype_vec_dot_f32_f32(int64_t n, const void *w, const void *a)
{
    const float *x = w, *y = a;
    float s = 0.0f;
    for (int64_t i = 0; i < n; i++)
        s += x[i] * y[i];
    return s;
}

float dtype_vec_dot_f16_f32(int64_t n, const void *w, const void *a)
{
    const uint8_t *x = w;
    const float *y = a;
    float s = 0.0f;
    for (int64_t i = 0; i < n; i++)
        s += util_fp16_to_fp32(load_u16(x + 2 * i)) * y[i];
    return s;
}

float dtype_vec_dot_bf16_f32(int64_t n, const void *w, const void *a)
{
    const uint8_t *x = w;
    const float *y = a;
    float s = 0.0f;
    for (int64_t i = 0; i < n; i++)
        s += util_bf16_to_fp32(load_u16(x + 2 * i)) * y[i];
    return s;
}

/* ---- 32-element blocks: dequantization ---- */

/* One block of 32 int8 quants (Q8_0, Q8_1): w = d * q. */
static void dequantize_q8_block(uint16_t d16, const int8_t *qs, float *dst)
{
    const float d = util_fp16_to_fp32(d16);
    for (int j = 0; j < 32; j++)
        dst[j] = d * (float)qs[j];
}

void dtype_dequantize_row_q8_0(const void *src, float *dst, int64_t n)
{
    const struct block_q8_0 *b = src;
    for (int64_t i = 0; i < n / QK8_0; i++)
        dequantize_q8_block(b[i].d, b[i].qs, dst + i * QK8_0);
}

void dtype_dequantize_row_q8_1(const void *src, float *dst, int64_t n)
{
    const struct block_q8_1 *b = src;
    for (int64_t i = 0; i < n / QK8_1; i++)
        dequantize_q8_block(b[i].d, b[i].qs, dst + i * QK8_1);
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

void dtype_dequantize_row_q4_1(const void *src, float *dst, int64_t n)
{
    const struct block_q4_1 *b = src;
    for (int64_t i = 0; i < n / QK4_1; i++) {
        const float d = util_fp16_to_fp32(b[i].d), m = util_fp16_to_fp32(b[i].m);
        for (int j = 0; j < QK4_1 / 2; j++) {
            dst[i * QK4_1 + j] = d * (float)(b[i].qs[j] & 0x0f) + m;
            dst[i * QK4_1 + j + QK4_1 / 2] = d * (float)(b[i].qs[j] >> 4) + m;
        }
    }
}

/* The 5-bit quant j (0..31) of a Q5_0/Q5_1 block. */
static int q5_get(const uint8_t *qs, const uint8_t *qh, int j)
{
    const uint32_t h = (uint32_t)qh[0] | (uint32_t)qh[1] << 8 | (uint32_t)qh[2] << 16 |
                       (uint32_t)qh[3] << 24;
    const int lo = j < 16 ? qs[j] & 0x0f : qs[j - 16] >> 4;
    return lo | (int)((h >> j) & 1) << 4;
}

void dtype_dequantize_row_q5_0(const void *src, float *dst, int64_t n)
{
    const struct block_q5_0 *b = src;
    for (int64_t i = 0; i < n / QK5_0; i++) {
        const float d = util_fp16_to_fp32(b[i].d);
        for (int j = 0; j < QK5_0; j++)
            dst[i * QK5_0 + j] = d * (float)(q5_get(b[i].qs, b[i].qh, j) - 16);
    }
}

void dtype_dequantize_row_q5_1(const void *src, float *dst, int64_t n)
{
    const struct block_q5_1 *b = src;
    for (int64_t i = 0; i < n / QK5_1; i++) {
        const float d = util_fp16_to_fp32(b[i].d), m = util_fp16_to_fp32(b[i].m);
        for (int j = 0; j < QK5_1; j++)
            dst[i * QK5_1 + j] = d * (float)q5_get(b[i].qs, b[i].qh, j) + m;
    }
}

/* ---- 32-element blocks: quantization ---- */

static float abs_max(const float *x, int n)
{
    float amax = 0.0f;
    for (int j = 0; j < n; j++)
        amax = fmaxf(amax, fabsf(x[j]));
    return amax;
}

/* v rounded to the nearest integer (ties to even) and clamped to [lo, hi];
 * NaN gives lo. */
static int quant_clamp(float v, int lo, int hi)
{
    const int q = dtype_nearest_int(v);
    return q < lo ? lo : q > hi ? hi : q;
}

/* roundf(v) (ties away from zero) clamped to int8; NaN gives 0. */
static int8_t round_i8(float v)
{
    const float r = roundf(v);
    return r >= 127.0f ? 127 : r <= -128.0f ? -128 : r == r ? (int8_t)r : 0;
}

/* One block of 32 int8 quants: d = max|x| / 127, q = round(x / d); returns d. */
static float quantize_q8_block(const float *x, int8_t *qs)
{
    const float d = abs_max(x, 32) / 127.0f;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    for (int j = 0; j < 32; j++)
        qs[j] = round_i8(x[j] * id);
    return d;
}

void dtype_quantize_row_q8_0(const float *src, void *dst, int64_t n)
{
    struct block_q8_0 *b = dst;
    for (int64_t i = 0; i < n / QK8_0; i++)
        b[i].d = util_fp32_to_fp16(quantize_q8_block(src + i * QK8_0, b[i].qs));
}

/* Q8_1: as Q8_0, plus s = d * sum(q) for the dot products with Q4_1/Q5_1. */
void dtype_quantize_row_q8_1(const float *src, void *dst, int64_t n)
{
    struct block_q8_1 *b = dst;
    for (int64_t i = 0; i < n / QK8_1; i++) {
        const float d = quantize_q8_block(src + i * QK8_1, b[i].qs);
        int sum = 0;
        for (int j = 0; j < QK8_1; j++)
            sum += b[i].qs[j];
        b[i].d = util_fp32_to_fp16(d);
        b[i].s = util_fp32_to_fp16((float)sum * d);
    }
}

/* Symmetric 4- and 5-bit blocks: the value of largest magnitude maps to the
 * most negative quant (-8 or -16), which the format can hold, so d = max /
 * -8 (or -16) and that value is exact up to the fp16 rounding of d. */
static float sym_scale(const float *x, int n, float qmin)
{
    float amax = 0.0f, max = 0.0f;
    for (int j = 0; j < n; j++) {
        if (fabsf(x[j]) > amax) {
            amax = fabsf(x[j]);
            max = x[j];
        }
    }
    return max / qmin;
}

void dtype_quantize_row_q4_0(const float *src, void *dst, int64_t n)
{
    struct block_q4_0 *b = dst;
    for (int64_t i = 0; i < n / QK4_0; i++) {
        const float *x = src + i * QK4_0;
        const float d = sym_scale(x, QK4_0, -8.0f);
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        b[i].d = util_fp32_to_fp16(d);
        for (int j = 0; j < QK4_0 / 2; j++) {
            /* x * id + 8.5 truncated: round half up around the offset 8 */
            const float v0 = x[j] * id + 8.5f, v1 = x[j + QK4_0 / 2] * id + 8.5f;
            const int q0 = v0 >= 15.0f ? 15 : v0 > 0.0f ? (int)v0 : 0;
            const int q1 = v1 >= 15.0f ? 15 : v1 > 0.0f ? (int)v1 : 0;
            b[i].qs[j] = (uint8_t)(q0 | (q1 << 4));
        }
    }
}

/* Packs 32 quants of 0..31 into Q5 nibbles and high bits. */
static void q5_pack(const int *q, uint8_t *qs, uint8_t *qh)
{
    uint32_t h = 0;
    for (int j = 0; j < 16; j++)
        qs[j] = (uint8_t)((q[j] & 0x0f) | (q[j + 16] & 0x0f) << 4);
    for (int j = 0; j < 32; j++)
        h |= (uint32_t)((q[j] >> 4) & 1) << j;
    for (int k = 0; k < 4; k++)
        qh[k] = (uint8_t)(h >> (8 * k));
}

/* Q5_0: d from the extreme value as for Q4_0; quants are rounded against the
 * fp16 value of d that is stored. */
void dtype_quantize_row_q5_0(const float *src, void *dst, int64_t n)
{
    struct block_q5_0 *b = dst;
    for (int64_t i = 0; i < n / QK5_0; i++) {
        const float *x = src + i * QK5_0;
        b[i].d = util_fp32_to_fp16(sym_scale(x, QK5_0, -16.0f));
        const float d = util_fp16_to_fp32(b[i].d);
        const float id = d != 0.0f && isfinite(d) ? 1.0f / d : 0.0f;
        int q[QK5_0];
        for (int j = 0; j < QK5_0; j++)
            q[j] = quant_clamp(x[j] * id + 16.0f, 0, 31);
        q5_pack(q, b[i].qs, b[i].qh);
    }
}

/* Asymmetric blocks (Q4_1, Q5_1): m = the block minimum, d = range / nmax,
 * both stored in fp16; quants are rounded against the stored values. */
static void asym_params(const float *x, int n, int nmax, uint16_t *d16, uint16_t *m16, float *d,
                        float *m)
{
    float min = x[0], max = x[0];
    for (int j = 1; j < n; j++) {
        min = fminf(min, x[j]);
        max = fmaxf(max, x[j]);
    }
    *d16 = util_fp32_to_fp16((max - min) / (float)nmax);
    *m16 = util_fp32_to_fp16(min);
    *d = util_fp16_to_fp32(*d16);
    *m = util_fp16_to_fp32(*m16);
}

void dtype_quantize_row_q4_1(const float *src, void *dst, int64_t n)
{
    struct block_q4_1 *b = dst;
    for (int64_t i = 0; i < n / QK4_1; i++) {
        const float *x = src + i * QK4_1;
        float d, m;
        asym_params(x, QK4_1, 15, &b[i].d, &b[i].m, &d, &m);
        const float id = d != 0.0f && isfinite(d) ? 1.0f / d : 0.0f;
        for (int j = 0; j < QK4_1 / 2; j++) {
            const int q0 = quant_clamp((x[j] - m) * id, 0, 15);
            const int q1 = quant_clamp((x[j + QK4_1 / 2] - m) * id, 0, 15);
            b[i].qs[j] = (uint8_t)(q0 | (q1 << 4));
        }
    }
}

void dtype_quantize_row_q5_1(const float *src, void *dst, int64_t n)
{
    struct block_q5_1 *b = dst;
    for (int64_t i = 0; i < n / QK5_1; i++) {
        const float *x = src + i * QK5_1;
        float d, m;
        asym_params(x, QK5_1, 31, &b[i].d, &b[i].m, &d, &m);
        const float id = d != 0.0f && isfinite(d) ? 1.0f / d : 0.0f;
        int q[QK5_1];
        for (int j = 0; j < QK5_1; j++)
            q[j] = quant_clamp((x[j] - m) * id, 0, 31);
        q5_pack(q, b[i].qs, b[i].qh);
    }
}

/* ---- 32-element blocks: dot products ---- */

float dtype_vec_dot_q8_0_q8_0(int64_t n, const void *w, const void *a)
{
    const struct block_q8_0 *x = w, *y = a;
    float s = 0.0f;
    for (int64_t i = 0; i < n / QK8_0; i++) {
        int sum = 0;
        for (int j = 0; j < QK8_0; j++)
            sum += x[i].qs[j] * y[i].qs[j];
        s += util_fp16_to_fp32(x[i].d) * util_fp16_to_fp32(y[i].d) * (float)sum;
    }
    return s;
}

float dtype_vec_dot_q4_0_q8_0(int64_t n, const void *w, const void *a)
{
    const struct block_q4_0 *x = w;
    const struct block_q8_0 *y = a;
    float s = 0.0f;
    for (int64_t i = 0; i < n / QK4_0; i++) {
        int sum = 0;
        for (int j = 0; j < QK4_0 / 2; j++)
            sum += ((x[i].qs[j] & 0x0f) - 8) * y[i].qs[j] +
                   ((x[i].qs[j] >> 4) - 8) * y[i].qs[j + QK4_0 / 2];
        s += util_fp16_to_fp32(x[i].d) * util_fp16_to_fp32(y[i].d) * (float)sum;
    }
    return s;
}

float dtype_vec_dot_q5_0_q8_0(int64_t n, const void *w, const void *a)
{
    const struct block_q5_0 *x = w;
    const struct block_q8_0 *y = a;
    float s = 0.0f;
    for (int64_t i = 0; i < n / QK5_0; i++) {
        int sum = 0;
        for (int j = 0; j < QK5_0; j++)
            sum += (q5_get(x[i].qs, x[i].qh, j) - 16) * y[i].qs[j];
        s += util_fp16_to_fp32(x[i].d) * util_fp16_to_fp32(y[i].d) * (float)sum;
    }
    return s;
}

/* sum_j (d q_j + m) (da qa_j) = d da sum(q qa) + m (da sum(qa)), and the
 * activation block carries da sum(qa) as s. */
float dtype_vec_dot_q4_1_q8_1(int64_t n, const void *w, const void *a)
{
    const struct block_q4_1 *x = w;
    const struct block_q8_1 *y = a;
    float s = 0.0f;
    for (int64_t i = 0; i < n / QK4_1; i++) {
        int sum = 0;
        for (int j = 0; j < QK4_1 / 2; j++)
            sum += (x[i].qs[j] & 0x0f) * y[i].qs[j] + (x[i].qs[j] >> 4) * y[i].qs[j + QK4_1 / 2];
        s += util_fp16_to_fp32(x[i].d) * util_fp16_to_fp32(y[i].d) * (float)sum +
             util_fp16_to_fp32(x[i].m) * util_fp16_to_fp32(y[i].s);
    }
    return s;
}

float dtype_vec_dot_q5_1_q8_1(int64_t n, const void *w, const void *a)
{
    const struct block_q5_1 *x = w;
    const struct block_q8_1 *y = a;
    float s = 0.0f;
    for (int64_t i = 0; i < n / QK5_1; i++) {
        int sum = 0;
        for (int j = 0; j < QK5_1; j++)
            sum += q5_get(x[i].qs, x[i].qh, j) * y[i].qs[j];
        s += util_fp16_to_fp32(x[i].d) * util_fp16_to_fp32(y[i].d) * (float)sum +
             util_fp16_to_fp32(x[i].m) * util_fp16_to_fp32(y[i].s);
    }
    return s;
}

/* ---- the table ---- */

#define DEQ(t) dtype_dequantize_row_##t
#define Q(t) dtype_quantize_row_##t
#define DOT(w, a) dtype_vec_dot_##w##_##a
static const struct dtype_traits table[DTYPE_COUNT] = {
    [DTYPE_F32] = {"F32", 1, 4, DEQ(f32), Q(f32), DTYPE_F32, DOT(f32, f32)},
    [DTYPE_F16] = {"F16", 1, 2, DEQ(f16), Q(f16), DTYPE_F32, DOT(f16, f32)},
    [DTYPE_Q4_0] = {"Q4_0", 32, 18, DEQ(q4_0), Q(q4_0), DTYPE_Q8_0, DOT(q4_0, q8_0)},
    [DTYPE_Q4_1] = {"Q4_1", 32, 20, DEQ(q4_1), Q(q4_1), DTYPE_Q8_1, DOT(q4_1, q8_1)},
    [DTYPE_Q5_0] = {"Q5_0", 32, 22, DEQ(q5_0), Q(q5_0), DTYPE_Q8_0, DOT(q5_0, q8_0)},
    [DTYPE_Q5_1] = {"Q5_1", 32, 24, DEQ(q5_1), Q(q5_1), DTYPE_Q8_1, DOT(q5_1, q8_1)},
    [DTYPE_Q8_0] = {"Q8_0", 32, 34, DEQ(q8_0), Q(q8_0), DTYPE_Q8_0, DOT(q8_0, q8_0)},
    /* activation formats: no dot product of their own */
    [DTYPE_Q8_1] = {"Q8_1", 32, 36, DEQ(q8_1), Q(q8_1), DTYPE_Q8_1, NULL},
    [DTYPE_Q2_K] = {"Q2_K", 256, 84, NULL, NULL, 0, NULL},
    [DTYPE_Q3_K] = {"Q3_K", 256, 110, NULL, NULL, 0, NULL},
    [DTYPE_Q4_K] = {"Q4_K", 256, 144, DEQ(q4_K), Q(q4_K), DTYPE_Q8_K, DOT(q4_K, q8_K)},
    [DTYPE_Q5_K] = {"Q5_K", 256, 176, DEQ(q5_K), Q(q5_K), DTYPE_Q8_K, DOT(q5_K, q8_K)},
    [DTYPE_Q6_K] = {"Q6_K", 256, 210, DEQ(q6_K), Q(q6_K), DTYPE_Q8_K, DOT(q6_K, q8_K)},
    [DTYPE_Q8_K] = {"Q8_K", 256, 292, DEQ(q8_K), Q(q8_K), DTYPE_Q8_K, NULL},
    [DTYPE_IQ2_XXS] = {"IQ2_XXS", 256, 66, NULL, NULL, 0, NULL},
    [DTYPE_IQ2_XS] = {"IQ2_XS", 256, 74, NULL, NULL, 0, NULL},
    [DTYPE_IQ3_XXS] = {"IQ3_XXS", 256, 98, NULL, NULL, 0, NULL},
    [DTYPE_IQ1_S] = {"IQ1_S", 256, 50, NULL, NULL, 0, NULL},
    [DTYPE_IQ4_NL] = {"IQ4_NL", 32, 18, NULL, NULL, 0, NULL},
    [DTYPE_IQ3_S] = {"IQ3_S", 256, 110, NULL, NULL, 0, NULL},
    [DTYPE_IQ2_S] = {"IQ2_S", 256, 82, NULL, NULL, 0, NULL},
    [DTYPE_IQ4_XS] = {"IQ4_XS", 256, 136, NULL, NULL, 0, NULL},
    [DTYPE_I8] = {"I8", 1, 1, NULL, NULL, 0, NULL},
    [DTYPE_I16] = {"I16", 1, 2, NULL, NULL, 0, NULL},
    [DTYPE_I32] = {"I32", 1, 4, NULL, NULL, 0, NULL},
    [DTYPE_I64] = {"I64", 1, 8, NULL, NULL, 0, NULL},
    [DTYPE_F64] = {"F64", 1, 8, NULL, NULL, 0, NULL},
    [DTYPE_IQ1_M] = {"IQ1_M", 256, 56, NULL, NULL, 0, NULL},
    [DTYPE_BF16] = {"BF16", 1, 2, DEQ(bf16), Q(bf16), DTYPE_F32, DOT(bf16, f32)},
    [DTYPE_TQ1_0] = {"TQ1_0", 256, 54, NULL, NULL, 0, NULL},
    [DTYPE_TQ2_0] = {"TQ2_0", 256, 66, NULL, NULL, 0, NULL},
};
#undef DEQ
#undef Q
#undef DOT

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

int dtype_from_name(const char *name)
{
    if (!name)
        return -1;
    for (uint32_t t = 0; t < DTYPE_COUNT; t++) {
        const char *a = table[t].name, *b = name;
        if (!a)
            continue;
        while (*a && *b && toupper((unsigned char)*a) == toupper((unsigned char)*b))
            a++, b++;
        if (!*a && !*b)
            return (int)t;
    }
    return -1;
}

const uint32_t *dtype_weight_types(int *n)
{
    static const uint32_t types[] = {DTYPE_F32,  DTYPE_F16,  DTYPE_Q4_0, DTYPE_Q4_1,
                                     DTYPE_Q5_0, DTYPE_Q5_1, DTYPE_Q8_0, DTYPE_Q4_K,
                                     DTYPE_Q5_K, DTYPE_Q6_K, DTYPE_BF16};
    *n = (int)(sizeof types / sizeof types[0]);
    return types;
}
