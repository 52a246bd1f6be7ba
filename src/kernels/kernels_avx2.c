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

#define SIMD_V __m256
#define SIMD_W 8
#define SIMD_ZERO() _mm256_setzero_ps()
#define SIMD_SET1(a) _mm256_set1_ps(a)
#define SIMD_LOAD(p) _mm256_loadu_ps(p)
#define SIMD_STORE(p, v) _mm256_storeu_ps(p, v)
#define SIMD_FMADD(a, b, c) _mm256_fmadd_ps(a, b, c)
#define SIMD_HSUM(v) hsum8(v)
#include "kernels/simd_f32.h"

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
