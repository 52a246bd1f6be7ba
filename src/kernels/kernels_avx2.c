/*
 * kernels_avx2.c - the avx2 instruction set's kernels (see kernels.h). This
 * file alone is compiled with the set's flags; kernels.c calls into it only
 * after checking the CPU supports the set.
 */
#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>

#include "quant/dtype.h"
#include "kernels/kernels.h"

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
                       const float *restrict x1, const float *restrict x2, const float *restrict x3,
                       float *restrict s)
{
    const float *x[4] = {x0, x1, x2, x3};
    dot_nt(n, w, x, 4, s);
}

static void axpy(int n, float a, const float *x, float *y)
{
    const __m256 av = _mm256_set1_ps(a);
    int i = 0;
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(y + i,
                         _mm256_fmadd_ps(av, _mm256_loadu_ps(x + i), _mm256_loadu_ps(y + i)));
    for (; i < n; i++)
        y[i] += a * x[i];
}

/* ---- matrix products: R rows x T tokens per tile ----
 *
 * As in the AVX-512 set: one accumulator per (row, token), updated in the
 * same order whatever the tile's shape, so batches and single tokens agree
 * bit for bit.
 */
#define TILE 4
#define AI static inline __attribute__((always_inline))

AI void put(float *y, size_t ldy, int r, int t, float v, int accumulate)
{
    float *dst = y + (size_t)t * ldy + r;
    *dst = accumulate ? *dst + v : v;
}

AI __m256 load_f32w(const float *p)
{
    return _mm256_loadu_ps(p);
}
AI __m256 load_f16w(const uint16_t *p)
{
    return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)p));
}
AI __m256 load_bf16w(const uint16_t *p)
{
    return _mm256_castsi256_ps(
        _mm256_slli_epi32(_mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)p)), 16));
}
AI float wscalar_f32(const float *p)
{
    return *p;
}
AI float wscalar_f16(const uint16_t *p)
{
    return _cvtsh_ss(*p);
}
AI float wscalar_bf16(const uint16_t *p)
{
    union {
        uint32_t u;
        float f;
    } v = {(uint32_t)*p << 16};
    return v.f;
}

#define FLOAT_TILE(NAME, WT, LOAD, SCALAR)                                                         \
    AI void NAME(int cols, const uint8_t *w, size_t ws, int r0, int R, const float *x, size_t xs,  \
                 int t0, int T, float *y, size_t ldy, int accumulate)                              \
    {                                                                                              \
        __m256 acc[TILE][TILE];                                                                    \
        _Pragma("GCC unroll 4") for (int r = 0; r < TILE; r++)                                     \
            _Pragma("GCC unroll 4") for (int t = 0; t < TILE; t++) acc[r][t] =                     \
                _mm256_setzero_ps();                                                               \
        const WT *wr[TILE];                                                                        \
        const float *xt[TILE];                                                                     \
        _Pragma("GCC unroll 4") for (int r = 0; r < R; r++) wr[r] =                                \
            (const WT *)(w + (size_t)(r0 + r) * ws);                                               \
        _Pragma("GCC unroll 4") for (int t = 0; t < T; t++) xt[t] = x + (size_t)(t0 + t) * xs;     \
        int i = 0;                                                                                 \
        for (; i + 8 <= cols; i += 8) {                                                            \
            __m256 xv[TILE];                                                                       \
            _Pragma("GCC unroll 4") for (int t = 0; t < T; t++) xv[t] =                            \
                _mm256_loadu_ps(xt[t] + i);                                                        \
            _Pragma("GCC unroll 4") for (int r = 0; r < R; r++)                                    \
            {                                                                                      \
                const __m256 wv = LOAD(wr[r] + i);                                                 \
                _Pragma("GCC unroll 4") for (int t = 0; t < T; t++) acc[r][t] =                    \
                    _mm256_fmadd_ps(wv, xv[t], acc[r][t]);                                         \
            }                                                                                      \
        }                                                                                          \
        _Pragma("GCC unroll 4") for (int r = 0; r < R; r++)                                        \
            _Pragma("GCC unroll 4") for (int t = 0; t < T; t++)                                    \
        {                                                                                          \
            float v = hsum8(acc[r][t]);                                                            \
            for (int j = i; j < cols; j++)                                                         \
                v += SCALAR(wr[r] + j) * xt[t][j];                                                 \
            put(y, ldy, r0 + r, t0 + t, v, accumulate);                                            \
        }                                                                                          \
    }

FLOAT_TILE(tile_f32, float, load_f32w, wscalar_f32)
FLOAT_TILE(tile_f16, uint16_t, load_f16w, wscalar_f16)
FLOAT_TILE(tile_bf16, uint16_t, load_bf16w, wscalar_bf16)

/* 32 signed weights of a block: Q8_0 as stored, Q4_0 nibbles minus 8. */
AI __m256i wq8_0(const uint8_t *b)
{
    return _mm256_loadu_si256((const __m256i *)(b + 2));
}
AI __m256i wq4_0(const uint8_t *b)
{
    const __m128i q = _mm_loadu_si128((const __m128i *)(b + 2));
    const __m256i v = _mm256_and_si256(
        _mm256_inserti128_si256(_mm256_castsi128_si256(q), _mm_srli_epi16(q, 4), 1),
        _mm256_set1_epi8(0x0f));
    return _mm256_sub_epi8(v, _mm256_set1_epi8(8));
}

/* Blocks of 32 with an fp16 scale first, against Q8_0 activations. */
#define QBLOCK_TILE(NAME, BYTES, WLOAD)                                                            \
    AI void NAME(int cols, const uint8_t *w, size_t ws, int r0, int R, const uint8_t *a,           \
                 size_t as, int t0, int T, float *y, size_t ldy, int accumulate)                   \
    {                                                                                              \
        __m256 acc[TILE][TILE];                                                                    \
        _Pragma("GCC unroll 4") for (int r = 0; r < TILE; r++)                                     \
            _Pragma("GCC unroll 4") for (int t = 0; t < TILE; t++) acc[r][t] =                     \
                _mm256_setzero_ps();                                                               \
        const __m256i ones = _mm256_set1_epi16(1);                                                 \
        const int nb = cols / 32;                                                                  \
        for (int b = 0; b < nb; b++) {                                                             \
            __m256i av[TILE];                                                                      \
            float da[TILE];                                                                        \
            _Pragma("GCC unroll 4") for (int t = 0; t < T; t++)                                    \
            {                                                                                      \
                const uint8_t *ab = a + (size_t)(t0 + t) * as + (size_t)b * 34;                    \
                uint16_t h;                                                                        \
                __builtin_memcpy(&h, ab, 2);                                                       \
                da[t] = _cvtsh_ss(h);                                                              \
                av[t] = _mm256_loadu_si256((const __m256i *)(ab + 2));                             \
            }                                                                                      \
            _Pragma("GCC unroll 4") for (int r = 0; r < R; r++)                                    \
            {                                                                                      \
                const uint8_t *wb = w + (size_t)(r0 + r) * ws + (size_t)b * (BYTES);               \
                uint16_t h;                                                                        \
                __builtin_memcpy(&h, wb, 2);                                                       \
                const float dw = _cvtsh_ss(h);                                                     \
                const __m256i wv = WLOAD(wb);                                                      \
                const __m256i wa = _mm256_sign_epi8(wv, wv);                                       \
                _Pragma("GCC unroll 4") for (int t = 0; t < T; t++)                                \
                {                                                                                  \
                    const __m256i p16 = _mm256_maddubs_epi16(wa, _mm256_sign_epi8(av[t], wv));     \
                    const __m256 p = _mm256_cvtepi32_ps(_mm256_madd_epi16(p16, ones));             \
                    acc[r][t] = _mm256_fmadd_ps(p, _mm256_set1_ps(dw * da[t]), acc[r][t]);         \
                }                                                                                  \
            }                                                                                      \
        }                                                                                          \
        _Pragma("GCC unroll 4") for (int r = 0; r < R; r++)                                        \
            _Pragma("GCC unroll 4") for (int t = 0; t < T; t++)                                    \
                put(y, ldy, r0 + r, t0 + t, hsum8(acc[r][t]), accumulate);                         \
    }

QBLOCK_TILE(tile_q8_0, 34, wq8_0)
QBLOCK_TILE(tile_q4_0, 18, wq4_0)

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

MM_DRIVER(mm_f32, tile_f32, float)
MM_DRIVER(mm_f16, tile_f16, float)
MM_DRIVER(mm_bf16, tile_bf16, float)
MM_DRIVER(mm_q8_0, tile_q8_0, uint8_t)
MM_DRIVER(mm_q4_0, tile_q4_0, uint8_t)

const struct kern_isa kern_isa_avx2 = {
    .name = "avx2",
    .dot_f32 = dot_f32,
    .dot_f32_x4 = dot_f32_x4,
    .axpy = axpy,
    .mm =
        {
            [DTYPE_F32] = {DTYPE_F32, mm_f32},
            [DTYPE_F16] = {DTYPE_F32, mm_f16},
            [DTYPE_BF16] = {DTYPE_F32, mm_bf16},
            [DTYPE_Q8_0] = {DTYPE_Q8_0, mm_q8_0},
            [DTYPE_Q4_0] = {DTYPE_Q8_0, mm_q4_0},
        },
};
#endif
