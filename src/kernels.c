/*
 * kernels.c - scalar reference kernels (see kernels.h). Summation orders are
 * fixed so results are reproducible across thread counts and batch sizes.
 */
#include "kernels.h"

#include <math.h>
#include <string.h>

/* The fixed order in which the 8 lanes of a dot product are added. */
static inline float reduce8(const float *a)
{
    return ((a[0] + a[1]) + (a[2] + a[3])) + ((a[4] + a[5]) + (a[6] + a[7]));
}

float kern_dot_f32(int n, const float *w, const float *x)
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

void kern_dot_f32_x4(int n, const float *restrict w, const float *restrict x0,
                     const float *restrict x1, const float *restrict x2, const float *restrict x3,
                     float *restrict s)
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

void kern_rope(float *v, int n_rot, int pos, float base, int neox)
{
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

void kern_silu_mul(float *a, const float *b, int n)
{
    for (int i = 0; i < n; i++) {
        const float x = a[i];
        a[i] = x / (1.0f + expf(-x)) * b[i];
    }
}
