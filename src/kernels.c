/*
 * kernels.c - scalar reference kernels (see kernels.h). Summation orders are
 * fixed so results are reproducible across thread counts and batch sizes.
 */
#include "kernels.h"

#include <math.h>

float kern_dot_f32(int n, const float *w, const float *x)
{
    float acc[8] = {0};
    int i = 0;
    for (; i + 8 <= n; i += 8)
        for (int j = 0; j < 8; j++)
            acc[j] += w[i + j] * x[i + j];
    float s = ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
    for (; i < n; i++)
        s += w[i] * x[i];
    return s;
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
