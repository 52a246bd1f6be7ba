/*
 * kernels.c - scalar reference kernels and the choice of instruction set
 * (see kernels.h). Summation orders are fixed so results are reproducible
 * across thread counts and batch sizes.
 */
#define _POSIX_C_SOURCE 200809L
#include "kernels/kernels.h"

#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "quant/dtype.h"
#include "kernels/kernels_gemm.h"
#include "kernels/kernels_kv.h"

/* The fixed order in which the 8 lanes of a dot product are added. */
static inline float reduce8(const float *a)
{
    return ((a[0] + a[1]) + (a[2] + a[3])) + ((a[4] + a[5]) + (a[6] + a[7]));
}

static float ref_dot_f32(int n, const float *w, const float *x)
{
    float acc[8] = {0};
    int i = 0;
    for (; i + 8 <= n; i += 8)
        for (int j = 0; j < 8; j++)
            acc[j] += w[i + j] * x[i + j];
    float s = reduce8(acc);
    for (; i < n; i++)
        s += w[i] * x[i];
    return s;
}

/* Written with the compiler's generic vectors (GCC/Clang vector_size, any
 * ISA): lanes 0-3 and 4-7 of the scalar version's accumulators are the two
 * halves v[0], v[1], updated by the same multiply and add, so each result is
 * bit-identical to kern_dot_f32. */
typedef float v4f __attribute__((vector_size(16)));

static inline v4f load4(const float *p)
{
    v4f v;
    memcpy(&v, p, sizeof v);
    return v;
}

static inline float reduce_v(v4f lo, v4f hi)
{
    return ((lo[0] + lo[1]) + (lo[2] + lo[3])) + ((hi[0] + hi[1]) + (hi[2] + hi[3]));
}

static void ref_dot_f32_x4(int n, const float *restrict w, const float *restrict x0,
                           const float *restrict x1, const float *restrict x2,
                           const float *restrict x3, float *restrict s)
{
    v4f a0 = {0}, b0 = {0}, a1 = {0}, b1 = {0}, a2 = {0}, b2 = {0}, a3 = {0}, b3 = {0};
    int i = 0;
    for (; i + 8 <= n; i += 8) {
        const v4f wl = load4(w + i), wh = load4(w + i + 4);
        a0 += wl * load4(x0 + i), b0 += wh * load4(x0 + i + 4);
        a1 += wl * load4(x1 + i), b1 += wh * load4(x1 + i + 4);
        a2 += wl * load4(x2 + i), b2 += wh * load4(x2 + i + 4);
        a3 += wl * load4(x3 + i), b3 += wh * load4(x3 + i + 4);
    }
    float r0 = reduce_v(a0, b0), r1 = reduce_v(a1, b1), r2 = reduce_v(a2, b2),
          r3 = reduce_v(a3, b3);
    for (; i < n; i++) {
        r0 += w[i] * x0[i];
        r1 += w[i] * x1[i];
        r2 += w[i] * x2[i];
        r3 += w[i] * x3[i];
    }
    s[0] = r0, s[1] = r1, s[2] = r2, s[3] = r3;
}

void kern_rmsnorm(float *y, const float *x, const float *g, int n, float eps)
{
    float ss = 0.0f;
    for (int i = 0; i < n; i++)
        ss += x[i] * x[i];
    ss = ss / (float)n + eps;
    const float scale = 1.0f / sqrtf(ss);
    for (int i = 0; i < n; i++)
        y[i] = g[i] * (scale * x[i]);
}

void kern_softmax(float *x, int n)
{
    float max = x[0];
    for (int i = 1; i < n; i++)
        if (x[i] > max)
            max = x[i];
    float sum = 0.0f;
    for (int i = 0; i < n; i++) {
        x[i] = expf(x[i] - max);
        sum += x[i];
    }
    const float inv = 1.0f / sum;
    for (int i = 0; i < n; i++)
        x[i] *= inv;
}

void kern_rope_table(float *cs, int n_rot, int pos, float base)
{
    for (int i = 0; i < n_rot / 2; i++) {
        const float freq = 1.0f / powf(base, (float)(2 * i) / (float)n_rot);
        const float theta = (float)pos * freq;
        cs[2 * i] = cosf(theta);
        cs[2 * i + 1] = sinf(theta);
    }
}

void kern_rope_apply(float *v, int n_rot, int neox, const float *cs)
{
    const int half = n_rot / 2;
    for (int i = 0; i < half; i++) {
        const float c = cs[2 * i], s = cs[2 * i + 1];
        const int a = neox ? i : 2 * i;
        const int b = neox ? i + half : 2 * i + 1;
        const float v0 = v[a], v1 = v[b];
        v[a] = v0 * c - v1 * s;
        v[b] = v0 * s + v1 * c;
    }
}

void kern_rope(float *v, int n_rot, int pos, float base, int neox)
{
    float cs[2 * 512];
    if (n_rot <= 1024) {
        kern_rope_table(cs, n_rot, pos, base);
        kern_rope_apply(v, n_rot, neox, cs);
        return;
    }
    const int half = n_rot / 2;
    for (int i = 0; i < half; i++) {
        const float freq = 1.0f / powf(base, (float)(2 * i) / (float)n_rot);
        const float theta = (float)pos * freq;
        const float c = cosf(theta), s = sinf(theta);
        const int a = neox ? i : 2 * i;
        const int b = neox ? i + half : 2 * i + 1;
        const float v0 = v[a], v1 = v[b];
        v[a] = v0 * c - v1 * s;
        v[b] = v0 * s + v1 * c;
    }
}

/* silu(a) * b with the active set's exponential (kern_kv_exp: the same
 * e^x in every set and the scalar reference), a chunk at a time. */
void kern_silu_mul(float *a, const float *b, int n)
{
    float e[256];
    for (int i0 = 0; i0 < n; i0 += 256) {
        const int m = n - i0 < 256 ? n - i0 : 256;
        for (int i = 0; i < m; i++)
            e[i] = -a[i0 + i];
        kern_kv_exp(m, e);
        for (int i = 0; i < m; i++)
            a[i0 + i] = a[i0 + i] / (1.0f + e[i]) * b[i0 + i];
    }
}

static void ref_axpy(int n, float a, const float *x, float *y)
{
    for (int i = 0; i < n; i++)
        y[i] += a * x[i];
}

/* ---- reference matrix products ---- */

static void ref_mm_f32(uint32_t type, int cols, const uint8_t *w, size_t w_stride, int r0, int r1,
                       const void *a, size_t a_stride, int n, float *y, size_t ldy, int accumulate);

static void ref_mm_vec_dot(uint32_t type, int cols, const uint8_t *w, size_t w_stride, int r0,
                           int r1, const void *a, size_t a_stride, int n, float *y, size_t ldy,
                           int accumulate)
{
    const dtype_vec_dot_fn dot = dtype_get(type)->vec_dot;
    for (int r = r0; r < r1; r++)
        for (int t = 0; t < n; t++) {
            const float s =
                dot(cols, w + (size_t)r * w_stride, (const uint8_t *)a + (size_t)t * a_stride);
            float *dst = y + (size_t)t * ldy + r;
            *dst = accumulate ? *dst + s : s;
        }
}

static const struct kern_isa isa_scalar = {
    .name = "scalar",
    .dot_f32 = ref_dot_f32,
    .dot_f32_x4 = ref_dot_f32_x4,
    .axpy = ref_axpy,
    .mm = {[DTYPE_F32] = {DTYPE_F32, ref_mm_f32}},
};

/* ---- choosing the instruction set ---- */

#if defined(__x86_64__) && defined(__GNUC__)
#include <cpuid.h>
extern const struct kern_isa kern_isa_avx2, kern_isa_avxvnni, kern_isa_avx512;
/* F16C is CPUID leaf 1, ECX bit 29; read it directly because clang's
 * __builtin_cpu_supports does not know the name. The OS saves the YMM state
 * whenever "avx2" is reported, so F16C needs no check of its own. */
static int has_f16c(void)
{
    unsigned a, b, c, d;
    return __get_cpuid(1, &a, &b, &c, &d) && (c >> 29 & 1u);
}
static int has_avx2(void)
{
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && has_f16c();
}
/* AVX-VNNI (VEX vpdpbusd on ymm) is CPUID leaf 7, sub-leaf 1, EAX bit 4. */
static int has_avxvnni(void)
{
    unsigned a, b, c, d;
    return has_avx2() && __get_cpuid_count(7, 1, &a, &b, &c, &d) && (a >> 4 & 1u);
}
static int has_avx512(void)
{
    return has_avx2() && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
           __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512vnni") &&
           __builtin_cpu_supports("avx512dq");
}
/* AVX512-BF16 is CPUID leaf 7 sub-leaf 1, EAX bit 5 (older compilers'
 * __builtin_cpu_supports do not know it). */
static int has_avx512_bf16(void)
{
    unsigned a, b, c, d;
    return has_avx512() && __get_cpuid_count(7, 1, &a, &b, &c, &d) && (a >> 5 & 1u);
}
/* The avx512 set on a CPU with AVX512-BF16: BF16 weights meet activations
 * rounded to bf16 (kernels_gemm.h), at twice the multiply rate of f32. */
static struct kern_isa isa_avx512_bf16;
static pthread_once_t bf16_once = PTHREAD_ONCE_INIT;
static void make_avx512_bf16(void)
{
    isa_avx512_bf16 = kern_isa_avx512;
    isa_avx512_bf16.mm[DTYPE_BF16] = (struct kern_mm){DTYPE_BF16, kern_gemm_bf16_dp};
}
#endif

/* The set in use: chosen once per process (kern_init, under pthread_once)
 * and never changed after; NULL until then. Read with acquire so that a
 * thread that sees the set also sees the tables filled before it. */
static _Atomic(const struct kern_isa *) isa_chosen;
static pthread_once_t isa_once = PTHREAD_ONCE_INIT;

const struct kern_isa *kern_isa_get(const char *name)
{
    if (strcmp(name, "scalar") == 0)
        return &isa_scalar;
#if defined(__x86_64__) && defined(__GNUC__)
    if (strcmp(name, "avx2") == 0 && has_avx2())
        return &kern_isa_avx2;
    if (strcmp(name, "avx512") == 0 && has_avx512_bf16()) {
        pthread_once(&bf16_once, make_avx512_bf16);
        return &isa_avx512_bf16;
    }
    if (strcmp(name, "avxvnni") == 0 && has_avxvnni())
        return &kern_isa_avxvnni;
    if (strcmp(name, "avx512") == 0 && has_avx512())
        return &kern_isa_avx512;
#endif
    return NULL;
}

static const struct kern_isa *isa_auto(void)
{
    const char *env = getenv("STRIX_KERNELS");
    if (env && *env) {
        const struct kern_isa *forced = kern_isa_get(env);
        if (forced)
            return forced;
    }
    const char *order[] = {"avx512", "avxvnni", "avx2"};
    for (size_t i = 0; i < sizeof order / sizeof order[0]; i++) {
        const struct kern_isa *k = kern_isa_get(order[i]);
        if (k)
            return k;
    }
    return &isa_scalar;
}

/* Reference products of the block types, from the type table's dot. */
static struct kern_mm generic[64];

static void isa_pick(void)
{
    for (uint32_t t = 0; t < 64; t++) {
        const struct dtype_traits *tr = dtype_get(t);
        if (tr && tr->vec_dot) {
            generic[t].act_type = tr->vec_dot_type;
            generic[t].run = ref_mm_vec_dot;
        }
    }
    atomic_store_explicit(&isa_chosen, isa_auto(), memory_order_release);
}

void kern_init(void)
{
    pthread_once(&isa_once, isa_pick);
}

const struct kern_isa *kern_isa_active(void)
{
    const struct kern_isa *k = atomic_load_explicit(&isa_chosen, memory_order_acquire);
    if (!k) {
        kern_init();
        k = atomic_load_explicit(&isa_chosen, memory_order_acquire);
    }
    return k;
}

/* ---- entry points ---- */

float kern_dot_f32(int n, const float *w, const float *x)
{
    return kern_isa_active()->dot_f32(n, w, x);
}

void kern_dot_f32_x4(int n, const float *restrict w, const float *restrict x0,
                     const float *restrict x1, const float *restrict x2, const float *restrict x3,
                     float *restrict s)
{
    kern_isa_active()->dot_f32_x4(n, w, x0, x1, x2, x3, s);
}

void kern_axpy(int n, float a, const float *x, float *y)
{
    kern_isa_active()->axpy(n, a, x, y);
}

void kern_dot_f32_gather(int n, const float *q, const float *base, size_t stride, const int *idx,
                         int count, float *s)
{
    const struct kern_isa *k = kern_isa_active();
    if (k->dot_f32_gather) {
        k->dot_f32_gather(n, q, base, stride, idx, count, s);
        return;
    }
    for (int i = 0; i < count; i++)
        s[i] = k->dot_f32(n, q, base + (size_t)idx[i] * stride);
}

void kern_axpy_gather(int n, const float *e, const float *base, size_t stride, const int *idx,
                      int count, float *y)
{
    const struct kern_isa *k = kern_isa_active();
    if (k->axpy_gather) {
        k->axpy_gather(n, e, base, stride, idx, count, y);
        return;
    }
    for (int i = 0; i < count; i++)
        k->axpy(n, e[i], base + (size_t)idx[i] * stride, y);
}

/* One row against tokens four at a time, with the set's own dot products
 * (so the four-token form equals the one-token form bit for bit). */
static void ref_mm_f32(uint32_t type, int cols, const uint8_t *w, size_t w_stride, int r0, int r1,
                       const void *a, size_t a_stride, int n, float *y, size_t ldy, int accumulate)
{
    (void)type;
    const struct kern_isa *k = kern_isa_active();
    const size_t as = a_stride / sizeof(float);
    const float *x = a;
    for (int r = r0; r < r1; r++) {
        const float *wr = (const float *)(w + (size_t)r * w_stride);
        int t = 0;
        float s[4];
        for (; t + 4 <= n; t += 4) {
            const float *xt = x + (size_t)t * as;
            k->dot_f32_x4(cols, wr, xt, xt + as, xt + 2 * as, xt + 3 * as, s);
            for (int j = 0; j < 4; j++) {
                float *dst = y + (size_t)(t + j) * ldy + r;
                *dst = accumulate ? *dst + s[j] : s[j];
            }
        }
        for (; t < n; t++) {
            const float v = k->dot_f32(cols, wr, x + (size_t)t * as);
            float *dst = y + (size_t)t * ldy + r;
            *dst = accumulate ? *dst + v : v;
        }
    }
}

const struct kern_mm *kern_mm_for(uint32_t t)
{
    if (t >= 64)
        return NULL;
    const struct kern_isa *isa = kern_isa_active();
    if (isa->mm[t].run)
        return &isa->mm[t];
    if (isa_scalar.mm[t].run)
        return &isa_scalar.mm[t];
    return generic[t].run ? &generic[t] : NULL; /* filled by kern_init */
}

size_t kern_act_row_bytes(uint32_t act_type, int cols)
{
    return act_type == DTYPE_F32 ? (size_t)cols * sizeof(float) : dtype_row_size(act_type, cols);
}

void kern_act_quantize(uint32_t act_type, const float *x, void *dst, int cols)
{
    const struct kern_isa *isa = kern_isa_active();
    if (act_type < 64 && isa->act_quantize[act_type]) {
        isa->act_quantize[act_type](x, dst, cols);
        return;
    }
    dtype_get(act_type)->quantize(x, dst, cols);
}
