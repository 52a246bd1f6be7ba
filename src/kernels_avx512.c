/*
 * kernels_avx512.c - the avx512 instruction set's kernels (see kernels.h). This
 * file alone is compiled with the set's flags; kernels.c calls into it only
 * after checking the CPU supports the set.
 */
#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>

#include "dtype.h"
#include "kernels.h"

/*
 * Dot products of one weight row with NT token rows. Each token has four
 * accumulators of 16 lanes; after the loop they are added in a fixed order
 * and the tail is added one element at a time, so the result for a token
 * does not depend on NT: the four-token form equals the one-token form.
 */
static inline __attribute__((always_inline)) void dot_nt(int n, const float *w,
                                                         const float *const *x, int nt, float *s)
{
    __m512 acc[4][4];
    for (int t = 0; t < nt; t++)
        for (int k = 0; k < 4; k++)
            acc[t][k] = _mm512_setzero_ps();
    int i = 0;
    for (; i + 4 * 16 <= n; i += 4 * 16) {
        for (int k = 0; k < 4; k++) {
            const __m512 wv = _mm512_loadu_ps(w + i + k * 16);
            for (int t = 0; t < nt; t++)
                acc[t][k] = _mm512_fmadd_ps(wv, _mm512_loadu_ps(x[t] + i + k * 16), acc[t][k]);
        }
    }
    for (; i + 16 <= n; i += 16) {
        const __m512 wv = _mm512_loadu_ps(w + i);
        for (int t = 0; t < nt; t++)
            acc[t][0] = _mm512_fmadd_ps(wv, _mm512_loadu_ps(x[t] + i), acc[t][0]);
    }
    for (int t = 0; t < nt; t++) {
        float r = _mm512_reduce_add_ps(acc[t][0]) + _mm512_reduce_add_ps(acc[t][1]) + (_mm512_reduce_add_ps(acc[t][2]) + _mm512_reduce_add_ps(acc[t][3]));
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
    const __m512 av = _mm512_set1_ps(a);
    int i = 0;
    for (; i + 16 <= n; i += 16)
        _mm512_storeu_ps(y + i, _mm512_fmadd_ps(av, _mm512_loadu_ps(x + i), _mm512_loadu_ps(y + i)));
    for (; i < n; i++)
        y[i] += a * x[i];
}

const struct kern_isa kern_isa_avx512 = {
    .name = "avx512",
    .dot_f32 = dot_f32,
    .dot_f32_x4 = dot_f32_x4,
    .axpy = axpy,
};
#endif
