/*
 * kernels_kv.c - the KV cache's element types (kernels_kv.h): storing a row,
 * converting a query, the scalar reference of the gathered key products and
 * value sums, of the exponential and of a tile's softmax step, the grouped functions' per-head
 * fallback, and the choice of the set that matches kernels.c's.
 */
#include <math.h>
#include <pthread.h>
#include <string.h>

#include "kernels/kernels.h"
#include "kernels/kernels_kv.h"
#include "quant/dtype.h"
#include "util.h"

int kern_kv_type_ok(uint32_t type)
{
    return type == DTYPE_F32 || type == DTYPE_F16 || type == DTYPE_Q8_0 || type == DTYPE_Q4_0;
}

size_t kern_kv_row_bytes(uint32_t type, int n)
{
    switch (type) {
    case DTYPE_F16: return (size_t)n * 2;
    case DTYPE_Q8_0: return (size_t)(n / QK8_0) * sizeof(struct block_q8_0);
    case DTYPE_Q4_0: return (size_t)(n / QK4_0) * sizeof(struct block_q4_0);
    default: return (size_t)n * sizeof(float);
    }
}

void kern_kv_store(uint32_t type, const float *x, int n, void *dst)
{
    switch (type) {
    case DTYPE_F16: dtype_quantize_row_f16(x, dst, n); break;
    case DTYPE_Q8_0: dtype_quantize_row_q8_0(x, dst, n); break;
    case DTYPE_Q4_0: dtype_quantize_row_q4_0(x, dst, n); break;
    default: memcpy(dst, x, (size_t)n * sizeof(float)); break;
    }
}

size_t kern_kv_query_bytes(uint32_t type, int n)
{
    return type == DTYPE_Q8_0 || type == DTYPE_Q4_0 ? kern_kv_row_bytes(DTYPE_Q8_0, n)
                                                    : (size_t)n * sizeof(float);
}

void kern_kv_query(uint32_t type, const float *q, int n, void *dst)
{
    if (type == DTYPE_Q8_0 || type == DTYPE_Q4_0)
        dtype_quantize_row_q8_0(q, dst, n);
    else
        memcpy(dst, q, (size_t)n * sizeof(float));
}

/* ---- the scalar reference ---- */

static inline float f16_at(const uint8_t *row, int j)
{
    uint16_t v;
    memcpy(&v, row + 2 * (size_t)j, 2);
    return util_fp16_to_fp32(v);
}

/* kern_dot_f32's order: 8 lanes, the lanes in a fixed tree, then the tail */
static float ref_dot_f16(int n, const uint8_t *k, const float *q)
{
    float acc[8] = {0};
    int i = 0;
    for (; i + 8 <= n; i += 8)
        for (int j = 0; j < 8; j++)
            acc[j] += f16_at(k, i + j) * q[i + j];
    float s = ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
    for (; i < n; i++)
        s += f16_at(k, i) * q[i];
    return s;
}

/* the same order for F32 keys (kern_dot_f32's) */
static float ref_dot_f32(int n, const uint8_t *k, const float *q)
{
    float acc[8] = {0}, kj;
    int i = 0;
    for (; i + 8 <= n; i += 8)
        for (int j = 0; j < 8; j++) {
            memcpy(&kj, k + 4 * (size_t)(i + j), sizeof kj);
            acc[j] += kj * q[i + j];
        }
    float s = ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
    for (; i < n; i++) {
        memcpy(&kj, k + 4 * (size_t)i, sizeof kj);
        s += kj * q[i];
    }
    return s;
}

static void ref_dot_gather(uint32_t type, int n, const void *q, const uint8_t *base, size_t stride,
                           const int *idx, int count, float *s)
{
    for (int i = 0; i < count; i++) {
        const uint8_t *row = base + (size_t)idx[i] * stride;
        switch (type) {
        case DTYPE_F16: s[i] = ref_dot_f16(n, row, q); break;
        case DTYPE_Q8_0: s[i] = dtype_vec_dot_q8_0_q8_0(n, row, q); break;
        case DTYPE_Q4_0: s[i] = dtype_vec_dot_q4_0_q8_0(n, row, q); break;
        case DTYPE_F32: s[i] = ref_dot_f32(n, row, q); break;
        default: s[i] = 0.0f; break;
        }
    }
}

static void ref_axpy_gather(uint32_t type, int n, const float *e, const uint8_t *base,
                            size_t stride, const int *idx, int count, float *y)
{
    for (int i = 0; i < count; i++) {
        const uint8_t *row = base + (size_t)idx[i] * stride;
        if (type == DTYPE_F32) {
            const float *v = (const float *)(const void *)row;
            for (int j = 0; j < n; j++)
                y[j] += e[i] * v[j];
        } else if (type == DTYPE_F16) {
            for (int j = 0; j < n; j++)
                y[j] += e[i] * f16_at(row, j);
        } else if (type == DTYPE_Q8_0) {
            const struct block_q8_0 *b = (const void *)row;
            for (int k = 0; k < n / QK8_0; k++) {
                const float a = e[i] * util_fp16_to_fp32(b[k].d);
                for (int j = 0; j < QK8_0; j++)
                    y[k * QK8_0 + j] += a * (float)b[k].qs[j];
            }
        } else if (type == DTYPE_Q4_0) {
            const struct block_q4_0 *b = (const void *)row;
            for (int k = 0; k < n / QK4_0; k++) {
                const float a = e[i] * util_fp16_to_fp32(b[k].d);
                float *yk = y + k * QK4_0;
                for (int j = 0; j < QK4_0 / 2; j++) {
                    yk[j] += a * (float)((b[k].qs[j] & 0x0f) - 8);
                    yk[j + QK4_0 / 2] += a * (float)((b[k].qs[j] >> 4) - 8);
                }
            }
        }
    }
}

/* e^x: x = k ln 2 + r with k = round(x / ln 2) and ln 2 in two parts (the
 * first exact in 12 bits, so k * hi is exact for |k| <= 128), then
 * e^r by its Taylor series to r^7 (remainder under (ln2/2)^8 / 8! = 5e-9),
 * scaled by 2^k built in the exponent field. */
#define EXP_LOG2E 1.44269504f
#define EXP_LN2_HI 0.693359375f
#define EXP_LN2_LO -2.12194440e-4f
#define EXP_MIN -87.3365479f /* ln FLT_MIN */
#define EXP_MAX 88.0f

static float ref_exp1(float x)
{
    if (x != x)
        return x;
    if (x < EXP_MIN)
        return 0.0f;
    x = x > EXP_MAX ? EXP_MAX : x;
    const float k = rintf(x * EXP_LOG2E);
    const float r = (x - k * EXP_LN2_HI) - k * EXP_LN2_LO;
    float p = 1.0f / 5040.0f;
    p = p * r + 1.0f / 720.0f;
    p = p * r + 1.0f / 120.0f;
    p = p * r + 1.0f / 24.0f;
    p = p * r + 1.0f / 6.0f;
    p = p * r + 0.5f;
    p = p * r + 1.0f;
    p = p * r + 1.0f;
    const uint32_t bits = (uint32_t)((int32_t)k + 127) << 23;
    float scale;
    memcpy(&scale, &bits, sizeof scale);
    return p * scale;
}

static void ref_exp(int n, float *x)
{
    for (int i = 0; i < n; i++)
        x[i] = ref_exp1(x[i]);
}

/* with a set's exponential (the sets' softmax where they leave G to it) */
static void softmax_with_exp(void (*ex)(int, float *), int count, int G, float scale, float *s,
                             float *mx, float *sum, float *r)
{
    for (int h = 0; h < G; h++)
        r[h] = mx[h]; /* the new maximum, first */
    for (int i = 0; i < count; i++)
        for (int h = 0; h < G; h++) {
            const float x = s[(size_t)i * (size_t)G + (size_t)h] * scale;
            s[(size_t)i * (size_t)G + (size_t)h] = x;
            r[h] = x > r[h] ? x : r[h];
        }
    for (int h = 0; h < G; h++) {
        const float m = r[h];
        r[h] = expf(mx[h] - m);
        sum[h] *= r[h];
        mx[h] = m;
    }
    for (int i = 0; i < count; i++)
        for (int h = 0; h < G; h++)
            s[(size_t)i * (size_t)G + (size_t)h] -= mx[h];
    ex(count * G, s);
    for (int i = 0; i < count; i++)
        for (int h = 0; h < G; h++)
            sum[h] += s[(size_t)i * (size_t)G + (size_t)h];
}

static int ref_softmax(int count, int G, float scale, float *s, float *mx, float *sum, float *r)
{
    softmax_with_exp(ref_exp, count, G, scale, s, mx, sum, r);
    return 1;
}

static const struct kern_kv kv_scalar = {"scalar", ref_dot_gather, ref_axpy_gather, NULL,
                                         NULL,     ref_exp,        ref_softmax};

/* ---- the grouped functions, per head where a set has none ---- */

enum { GROUP_CHUNK = 64 };

void kern_kv_dot_group_with(const struct kern_kv *k, uint32_t type, int n, int G, const void *q,
                            size_t q_stride, const uint8_t *base, size_t stride, const int *idx,
                            int count, float *s)
{
    if (k->dot_group) {
        k->dot_group(type, n, G, q, q_stride, base, stride, idx, count, s);
        return;
    }
    float tmp[GROUP_CHUNK];
    for (int h = 0; h < G; h++) {
        const void *qh = (const uint8_t *)q + (size_t)h * q_stride;
        for (int c = 0; c < count; c += GROUP_CHUNK) {
            const int m = count - c < GROUP_CHUNK ? count - c : GROUP_CHUNK;
            if (type == DTYPE_F32 && k != &kv_scalar)
                kern_dot_f32_gather(n, qh, (const float *)(const void *)base,
                                    stride / sizeof(float), idx + c, m, tmp);
            else
                k->dot_gather(type, n, qh, base, stride, idx + c, m, tmp);
            for (int i = 0; i < m; i++)
                s[(size_t)(c + i) * (size_t)G + (size_t)h] = tmp[i];
        }
    }
}

void kern_kv_axpy_group_with(const struct kern_kv *k, uint32_t type, int n, int G, const float *e,
                             const uint8_t *base, size_t stride, const int *idx, int count,
                             float *y, size_t ldy)
{
    if (k->axpy_group) {
        k->axpy_group(type, n, G, e, base, stride, idx, count, y, ldy);
        return;
    }
    float tmp[GROUP_CHUNK];
    for (int h = 0; h < G; h++) {
        float *yh = y + (size_t)h * ldy;
        for (int c = 0; c < count; c += GROUP_CHUNK) {
            const int m = count - c < GROUP_CHUNK ? count - c : GROUP_CHUNK;
            for (int i = 0; i < m; i++)
                tmp[i] = e[(size_t)(c + i) * (size_t)G + (size_t)h];
            if (type == DTYPE_F32 && k != &kv_scalar)
                kern_axpy_gather(n, tmp, (const float *)(const void *)base, stride / sizeof(float),
                                 idx + c, m, yh);
            else
                k->axpy_gather(type, n, tmp, base, stride, idx + c, m, yh);
        }
    }
}

void kern_kv_exp_with(const struct kern_kv *k, int n, float *x)
{
    (k->exp ? k->exp : ref_exp)(n, x);
}

void kern_kv_softmax_with(const struct kern_kv *k, int count, int G, float scale, float *s,
                          float *mx, float *sum, float *r)
{
    if (!k->softmax || !k->softmax(count, G, scale, s, mx, sum, r))
        softmax_with_exp(k->exp ? k->exp : ref_exp, count, G, scale, s, mx, sum, r);
}

/* ---- the set in use ---- */

const struct kern_kv *kern_kv_get(const char *name)
{
    if (strcmp(name, "scalar") == 0)
        return &kv_scalar;
    if (!kern_isa_get(name)) /* this CPU does not run the set */
        return NULL;
    if (strcmp(name, "avx2") == 0)
        return kern_kv_avx2;
    if (strcmp(name, "avx512") == 0)
        return kern_kv_avx512;
    return NULL;
}

static const struct kern_kv *kv_chosen;
static pthread_once_t kv_once = PTHREAD_ONCE_INIT;

static void kv_pick(void)
{
    const struct kern_kv *k = kern_kv_get(kern_isa_active()->name);
    kv_chosen = k ? k : &kv_scalar;
}

static const struct kern_kv *kv_active(void)
{
    pthread_once(&kv_once, kv_pick);
    return kv_chosen;
}

void kern_kv_dot_group(uint32_t type, int n, int G, const void *q, size_t q_stride,
                       const uint8_t *base, size_t stride, const int *idx, int count, float *s)
{
    kern_kv_dot_group_with(kv_active(), type, n, G, q, q_stride, base, stride, idx, count, s);
}

void kern_kv_axpy_group(uint32_t type, int n, int G, const float *e, const uint8_t *base,
                        size_t stride, const int *idx, int count, float *y, size_t ldy)
{
    kern_kv_axpy_group_with(kv_active(), type, n, G, e, base, stride, idx, count, y, ldy);
}

void kern_kv_exp(int n, float *x)
{
    kern_kv_exp_with(kv_active(), n, x);
}

void kern_kv_softmax(int count, int G, float scale, float *s, float *mx, float *sum, float *r)
{
    kern_kv_softmax_with(kv_active(), count, G, scale, s, mx, sum, r);
}

void kern_kv_dot_gather(uint32_t type, int n, const void *q, const uint8_t *base, size_t stride,
                        const int *idx, int count, float *s)
{
    kv_active()->dot_gather(type, n, q, base, stride, idx, count, s);
}

void kern_kv_axpy_gather(uint32_t type, int n, const float *e, const uint8_t *base, size_t stride,
                         const int *idx, int count, float *y)
{
    kv_active()->axpy_gather(type, n, e, base, stride, idx, count, y);
}
