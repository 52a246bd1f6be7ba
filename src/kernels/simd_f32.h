/*
 * simd_f32.h - the kernels that the instruction sets write the same way at
 * their own vector width: dot products of one weight row with 1 or 4 token
 * rows, axpy, the tile helpers and the tile walk (MM_DRIVER). Included by
 * kernels_avx2.c and kernels_avx512.c (each compiled with its set's flags)
 * after they define:
 *
 *   SIMD_V            the vector type            SIMD_W        its f32 lanes
 *   SIMD_ZERO()       all zero                   SIMD_SET1(a)  a in every lane
 *   SIMD_LOAD(p)      unaligned load             SIMD_STORE(p, v)
 *   SIMD_FMADD(a, b, c)  a * b + c               SIMD_HSUM(v)  lanes added in a fixed order
 */
#ifndef STRIX_SIMD_F32_H
#define STRIX_SIMD_F32_H

#include <stddef.h>

/*
 * Dot products of one weight row with NT token rows. Each token has four
 * accumulators of SIMD_W lanes; after the loop they are added in a fixed
 * order and the tail is added one element at a time, so the result for a
 * token does not depend on NT: the four-token form equals the one-token form.
 */
static inline __attribute__((always_inline)) void dot_nt(int n, const float *w,
                                                         const float *const *x, int nt, float *s)
{
    SIMD_V acc[4][4];
    for (int t = 0; t < nt; t++)
        for (int k = 0; k < 4; k++)
            acc[t][k] = SIMD_ZERO();
    int i = 0;
    for (; i + 4 * SIMD_W <= n; i += 4 * SIMD_W) {
        for (int k = 0; k < 4; k++) {
            const SIMD_V wv = SIMD_LOAD(w + i + k * SIMD_W);
            for (int t = 0; t < nt; t++)
                acc[t][k] = SIMD_FMADD(wv, SIMD_LOAD(x[t] + i + k * SIMD_W), acc[t][k]);
        }
    }
    for (; i + SIMD_W <= n; i += SIMD_W) {
        const SIMD_V wv = SIMD_LOAD(w + i);
        for (int t = 0; t < nt; t++)
            acc[t][0] = SIMD_FMADD(wv, SIMD_LOAD(x[t] + i), acc[t][0]);
    }
    for (int t = 0; t < nt; t++) {
        float r = SIMD_HSUM(acc[t][0]) + SIMD_HSUM(acc[t][1]) +
                  (SIMD_HSUM(acc[t][2]) + SIMD_HSUM(acc[t][3]));
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
                       const float *restrict x1, const float *restrict x2, const float *restrict x3,
                       float *restrict s)
{
    const float *x[4] = {x0, x1, x2, x3};
    dot_nt(n, w, x, 4, s);
}

static void axpy(int n, float a, const float *x, float *y)
{
    const SIMD_V av = SIMD_SET1(a);
    int i = 0;
    for (; i + SIMD_W <= n; i += SIMD_W)
        SIMD_STORE(y + i, SIMD_FMADD(av, SIMD_LOAD(x + i), SIMD_LOAD(y + i)));
    for (; i < n; i++)
        y[i] += a * x[i];
}

/* ---- matrix products: R rows x T tokens per tile ----
 *
 * Every (row, token) pair has one accumulator, updated block by block in the
 * same order whatever the tile's shape, then reduced in a fixed order: a
 * product computed in a 4x4 tile equals the same product computed alone, so
 * batches and single tokens agree bit for bit.
 */
#define TILE 4
#define AI static inline __attribute__((always_inline))

AI void put(float *y, size_t ldy, int r, int t, float v, int accumulate)
{
    float *dst = y + (size_t)t * ldy + r;
    *dst = accumulate ? *dst + v : v;
}

/* Walks rows [r0, r1) x tokens [0, n) in tiles: full 4x4 tiles, then the
 * leftover tokens one at a time, and leftover rows one at a time. */
#define MM_DRIVER(NAME, TILEFN, ATYPE)                                                             \
    static void NAME(uint32_t type, int cols, const uint8_t *w, size_t ws, int r0, int r1,         \
                     const void *a, size_t as, int n, float *y, size_t ldy, int accumulate)        \
    {                                                                                              \
        (void)type;                                                                                \
        const ATYPE *x = a;                                                                        \
        const size_t xs = as / sizeof(ATYPE);                                                      \
        int r = r0;                                                                                \
        for (; r + TILE <= r1; r += TILE) {                                                        \
            int t = 0;                                                                             \
            for (; t + TILE <= n; t += TILE)                                                       \
                TILEFN(cols, w, ws, r, TILE, x, xs, t, TILE, y, ldy, accumulate);                  \
            for (; t < n; t++)                                                                     \
                TILEFN(cols, w, ws, r, TILE, x, xs, t, 1, y, ldy, accumulate);                     \
        }                                                                                          \
        for (; r < r1; r++) {                                                                      \
            int t = 0;                                                                             \
            for (; t + TILE <= n; t += TILE)                                                       \
                TILEFN(cols, w, ws, r, 1, x, xs, t, TILE, y, ldy, accumulate);                     \
            for (; t < n; t++)                                                                     \
                TILEFN(cols, w, ws, r, 1, x, xs, t, 1, y, ldy, accumulate);                        \
        }                                                                                          \
    }

#endif
