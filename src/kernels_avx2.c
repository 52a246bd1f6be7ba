/*
 * kernels_avx2.c - the avx2 instruction set's kernels (see kernels.h). This
 * file alone is compiled with the set's flags; kernels.c calls into it only
 * after checking the CPU supports the set.
 */
#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>

#include "dtype.h"
#include "kernels.h"

/* The fixed order the eight lanes are added in. */
static inline float hsum8(__m256 v)
{
    __m128 lo = _mm256_castps256_ps128(v), hi = _mm256_extractf128_ps(v, 1);
    lo = _mm_add_ps(lo, hi);
    lo = _mm_add_ps(lo, _mm_movehl_ps(lo, lo));
    lo = _mm_add_ss(lo, _mm_movehdup_ps(lo));
    return _mm_cvtss_f32(lo);
}

/*
 * Dot products of one weight row with NT token rows. Each token has four
 * accumulators of 8 lanes; after the loop they are added in a fixed order
 * and the tail is added one element at a time, so the result for a token
 * does not depend on NT: the four-token form equals the one-token form.
 */
static inline __attribute__((always_inline)) void dot_nt(int n, const float *w,
                                                         const float *const *x, int nt, float *s)
{
    __m256 acc[4][4];
    for (int t = 0; t < nt; t++)
        for (int k = 0; k < 4; k++)
            acc[t][k] = _mm256_setzero_ps();
    int i = 0;
    for (; i + 4 * 8 <= n; i += 4 * 8) {
        for (int k = 0; k < 4; k++) {
            const __m256 wv = _mm256_loadu_ps(w + i + k * 8);
            for (int t = 0; t < nt; t++)
                acc[t][k] = _mm256_fmadd_ps(wv, _mm256_loadu_ps(x[t] + i + k * 8), acc[t][k]);
        }
    }
    for (; i + 8 <= n; i += 8) {
        const __m256 wv = _mm256_loadu_ps(w + i);
        for (int t = 0; t < nt; t++)
            acc[t][0] = _mm256_fmadd_ps(wv, _mm256_loadu_ps(x[t] + i), acc[t][0]);
    }
    for (int t = 0; t < nt; t++) {
        float r = hsum8(acc[t][0]) + hsum8(acc[t][1]) + (hsum8(acc[t][2]) + hsum8(acc[t][3]));
        for (int j = i; j < n; j++)
            r += w[j] * x[t][j];
        s[t] = r;
    }
}

static float dot_f32(int n, const float *w, const float *x)
{
    float s;
    dot_nt(n, w, &x, 1, &s);
    return s;
}

static void dot_f32_x4(int n, const float *restrict w, const float *restrict x0,
                       const float *restrict x1, const float *restrict x2,
                       const float *restrict x3, float *restrict s)
{
    const float *x[4] = {x0, x1, x2, x3};
    dot_nt(n, w, x, 4, s);
}

static void axpy(int n, float a, const float *x, float *y)
{
    const __m256 av = _mm256_set1_ps(a);
    int i = 0;
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(y + i, _mm256_fmadd_ps(av, _mm256_loadu_ps(x + i), _mm256_loadu_ps(y + i)));
    for (; i < n; i++)
        y[i] += a * x[i];
}

const struct kern_isa kern_isa_avx2 = {
    .name = "avx2",
    .dot_f32 = dot_f32,
    .dot_f32_x4 = dot_f32_x4,
    .axpy = axpy,
};
#endif
