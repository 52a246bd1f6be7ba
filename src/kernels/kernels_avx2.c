/*
 * kernels_avx2.c - the avx2 instruction set's kernels (see kernels.h). This
 * file alone is compiled with the set's flags; kernels.c calls into it only
 * after checking the CPU supports the set.
 */
#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>

#include "kernels/kernels.h"
#include "kernels/kernels_avx2.h"
#include "quant/dtype.h"
#include "util.h"

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

/* Float weights: tiles of FR rows x FT tokens. Per 8 columns the FR weight
 * vectors are loaded (and widened) once and each token's activation vector
 * once, so the FR x FT accumulators, FR weights and one activation fill the
 * 16 registers without spilling (a 4x4 tile spilled and ran at about half
 * the rate). Every (row, token) pair keeps its own accumulator over the
 * columns in order, then hsum8 and the scalar tail: the tile's shape never
 * changes a result. */
#ifndef FR
#define FR 3
#endif
#ifndef FT
#define FT 4
#endif
#define FLOAT_TILE(NAME, WT, LOAD, SCALAR)                                                         \
    AI void NAME(int cols, const uint8_t *w, size_t ws, int r0, int R, const float *x, size_t xs,  \
                 int t0, int T, float *y, size_t ldy, int accumulate)                              \
    {                                                                                              \
        __m256 acc[FR][FT];                                                                        \
        _Pragma("GCC unroll 4") for (int r = 0; r < R; r++)                                        \
            _Pragma("GCC unroll 6") for (int t = 0; t < T; t++) acc[r][t] = _mm256_setzero_ps();   \
        const WT *wr[FR];                                                                          \
        const float *xt[FT];                                                                       \
        _Pragma("GCC unroll 4") for (int r = 0; r < R; r++) wr[r] =                                \
            (const WT *)(w + (size_t)(r0 + r) * ws);                                               \
        _Pragma("GCC unroll 6") for (int t = 0; t < T; t++) xt[t] = x + (size_t)(t0 + t) * xs;     \
        int i = 0;                                                                                 \
        for (; i + 8 <= cols; i += 8) {                                                            \
            __m256 wv[FR];                                                                         \
            _Pragma("GCC unroll 4") for (int r = 0; r < R; r++) wv[r] = LOAD(wr[r] + i);           \
            if (T > 1 && t0 == 0) /* the next rows, by the rows' first token tile */               \
                _Pragma("GCC unroll 4") for (int r = 0; r < R; r++)                                \
                    _mm_prefetch((const char *)(wr[r] + i) + (size_t)R * ws, _MM_HINT_T0);         \
            _Pragma("GCC unroll 6") for (int t = 0; t < T; t++)                                    \
            {                                                                                      \
                const __m256 xv = _mm256_loadu_ps(xt[t] + i);                                      \
                _Pragma("GCC unroll 4") for (int r = 0; r < R; r++) acc[r][t] =                    \
                    _mm256_fmadd_ps(wv[r], xv, acc[r][t]);                                         \
            }                                                                                      \
        }                                                                                          \
        _Pragma("GCC unroll 4") for (int r = 0; r < R; r++)                                        \
            _Pragma("GCC unroll 6") for (int t = 0; t < T; t++)                                    \
        {                                                                                          \
            float v = hsum8(acc[r][t]);                                                            \
            for (int j = i; j < cols; j++)                                                         \
                v += SCALAR(wr[r] + j) * xt[t][j];                                                 \
            put(y, ldy, r0 + r, t0 + t, v, accumulate);                                            \
        }                                                                                          \
    }

/* hsum8 of eight vectors at once, each in hsum8's order (its lanes' halves,
 * then elements 0+2 and 1+3, then those two), so that a row's sum is the
 * same bit for bit whichever way it was reduced. */
AI void hsum8x8(const __m256 *v, float *out)
{
    __m256 a[4];
    for (int k = 0; k < 4; k++) /* [v_2k's halves summed | v_2k+1's] */
        a[k] = _mm256_add_ps(_mm256_permute2f128_ps(v[2 * k], v[2 * k + 1], 0x20),
                             _mm256_permute2f128_ps(v[2 * k], v[2 * k + 1], 0x31));
    __m256 b[2];
    for (int k = 0; k < 2; k++) /* elements 0+2 and 1+3 of each */
        b[k] = _mm256_add_ps(_mm256_shuffle_ps(a[2 * k], a[2 * k + 1], _MM_SHUFFLE(1, 0, 1, 0)),
                             _mm256_shuffle_ps(a[2 * k], a[2 * k + 1], _MM_SHUFFLE(3, 2, 3, 2)));
    /* lanes: v0 v2 v4 v6 | v1 v3 v5 v7 */
    const __m256 f = _mm256_hadd_ps(b[0], b[1]);
    _mm256_storeu_ps(out, _mm256_permutevar8x32_ps(f, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7)));
}

/* One token against 8 rows: 8 independent accumulator chains (the FR x 1
 * tile has FR, too few to cover the FMA's latency on short rows), each
 * summing its row's columns in order as the tiles do, reduced together. */
#define FLOAT_ROWS8(NAME, WT, LOAD, SCALAR)                                                        \
    AI void NAME(int cols, const uint8_t *w, size_t ws, int r0, const float *x, float *y,          \
                 size_t ldy, int accumulate)                                                       \
    {                                                                                              \
        __m256 acc[8];                                                                             \
        const WT *wr[8];                                                                           \
        _Pragma("GCC unroll 8") for (int r = 0; r < 8; r++)                                        \
        {                                                                                          \
            acc[r] = _mm256_setzero_ps();                                                          \
            wr[r] = (const WT *)(w + (size_t)(r0 + r) * ws);                                       \
        }                                                                                          \
        int i = 0;                                                                                 \
        for (; i + 8 <= cols; i += 8) {                                                            \
            const __m256 xv = _mm256_loadu_ps(x + i);                                              \
            _Pragma("GCC unroll 8") for (int r = 0; r < 8; r++) acc[r] =                           \
                _mm256_fmadd_ps(LOAD(wr[r] + i), xv, acc[r]);                                      \
        }                                                                                          \
        float v[8];                                                                                \
        hsum8x8(acc, v);                                                                           \
        for (int r = 0; r < 8; r++) {                                                              \
            for (int j = i; j < cols; j++)                                                         \
                v[r] += SCALAR(wr[r] + j) * x[j];                                                  \
            put(y, ldy, r0 + r, 0, v[r], accumulate);                                              \
        }                                                                                          \
    }

/* The tokens of rows r..r+RR-1: whole tiles of FT, then one tile of the
 * rest (each width its own constant, so every tile's loops unroll). */
#define FLOAT_TOKENS(TILEFN, RR)                                                                   \
    do {                                                                                           \
        int t = 0;                                                                                 \
        for (; t + FT <= n; t += FT)                                                               \
            TILEFN(cols, w, ws, r, RR, x, xs, t, FT, y, ldy, accumulate);                          \
        switch (n - t) {                                                                           \
        case 5: TILEFN(cols, w, ws, r, RR, x, xs, t, FT > 5 ? 5 : 1, y, ldy, accumulate); break;   \
        case 4: TILEFN(cols, w, ws, r, RR, x, xs, t, FT > 4 ? 4 : 1, y, ldy, accumulate); break;   \
        case 3: TILEFN(cols, w, ws, r, RR, x, xs, t, FT > 3 ? 3 : 1, y, ldy, accumulate); break;   \
        case 2: TILEFN(cols, w, ws, r, RR, x, xs, t, 2, y, ldy, accumulate); break;                \
        case 1: TILEFN(cols, w, ws, r, RR, x, xs, t, 1, y, ldy, accumulate); break;                \
        default: break;                                                                            \
        }                                                                                          \
    } while (0)

#define FLOAT_DRIVER(NAME, TILEFN, ROWS8FN)                                                        \
    static void NAME(uint32_t type, int cols, const uint8_t *w, size_t ws, int r0, int r1,         \
                     const void *a, size_t as, int n, float *y, size_t ldy, int accumulate)        \
    {                                                                                              \
        (void)type;                                                                                \
        const float *x = a;                                                                        \
        const size_t xs = as / sizeof(float);                                                      \
        int r = r0;                                                                                \
        if (n == 1)                                                                                \
            for (; r + 8 <= r1; r += 8)                                                            \
                ROWS8FN(cols, w, ws, r, x, y, ldy, accumulate);                                    \
        for (; r + FR <= r1; r += FR)                                                              \
            FLOAT_TOKENS(TILEFN, FR);                                                              \
        for (; r < r1; r++)                                                                        \
            FLOAT_TOKENS(TILEFN, 1);                                                               \
    }

FLOAT_TILE(tile_f32, float, load_f32w, wscalar_f32)
FLOAT_TILE(tile_f16, uint16_t, load_f16w, wscalar_f16)
FLOAT_TILE(tile_bf16, uint16_t, load_bf16w, wscalar_bf16)
FLOAT_ROWS8(rows8_f32, float, load_f32w, wscalar_f32)
FLOAT_ROWS8(rows8_f16, uint16_t, load_f16w, wscalar_f16)
FLOAT_ROWS8(rows8_bf16, uint16_t, load_bf16w, wscalar_bf16)

/* Bit j of the 32-bit word at p as bit 4 of byte j (Q5_0 / Q5_1's qh). */
AI __m256i qh_bits(const uint8_t *p)
{
    const __m256i spread = _mm256_setr_epi8(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 2,
                                            2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3);
    const __m256i bit = _mm256_set1_epi64x((long long)0x8040201008040201ull);
    const __m256i v = _mm256_and_si256(_mm256_shuffle_epi8(avx2_bcast4(p), spread), bit);
    return _mm256_and_si256(_mm256_cmpeq_epi8(v, bit), _mm256_set1_epi8(0x10));
}

/* The 32 nibbles at p in byte order of their weights (low nibbles: 0..15). */
AI __m256i nibbles(const uint8_t *p)
{
    const __m128i q = _mm_loadu_si128((const __m128i *)p);
    return _mm256_and_si256(
        _mm256_inserti128_si256(_mm256_castsi128_si256(q), _mm_srli_epi16(q, 4), 1),
        _mm256_set1_epi8(0x0f));
}

/* 32 weights of a block: signed (Q8_0 as stored, Q4_0 q - 8, Q5_0 q - 16)
 * or unsigned (Q4_1 and Q5_1 q). */
AI __m256i wq8_0(const uint8_t *b)
{
    return _mm256_loadu_si256((const __m256i *)(b + 2));
}
AI __m256i wq4_0(const uint8_t *b)
{
    return _mm256_sub_epi8(nibbles(b + 2), _mm256_set1_epi8(8));
}
AI __m256i wq5_0(const uint8_t *b)
{
    return _mm256_sub_epi8(_mm256_or_si256(nibbles(b + 6), qh_bits(b + 2)), _mm256_set1_epi8(16));
}
AI __m256i wq4_1(const uint8_t *b)
{
    return nibbles(b + 4);
}
AI __m256i wq5_1(const uint8_t *b)
{
    return _mm256_or_si256(nibbles(b + 8), qh_bits(b + 4));
}

/* Blocks of 32 with an fp16 scale first (and, with MIN, an fp16 offset m
 * next: w = d q + m, the unsigned q meeting the activations directly and m
 * their sum), against Q8_0 activations. */
#define QBLOCK_TILE(NAME, BYTES, WLOAD, MIN)                                                       \
    AI void NAME(int cols, const uint8_t *w, size_t ws, int r0, int R, const uint8_t *a,           \
                 size_t as, int t0, int T, float *y, size_t ldy, int accumulate)                   \
    {                                                                                              \
        __m256 acc[TILE][TILE];                                                                    \
        _Pragma("GCC unroll 4") for (int r = 0; r < TILE; r++)                                     \
            _Pragma("GCC unroll 4") for (int t = 0; t < TILE; t++) acc[r][t] =                     \
                _mm256_setzero_ps();                                                               \
        const __m256i ones8 = _mm256_set1_epi8(1);                                                 \
        const int nb = cols / 32;                                                                  \
        for (int b = 0; b < nb; b++) {                                                             \
            __m256i av[TILE];                                                                      \
            __m256 sa[TILE];                                                                       \
            float da[TILE];                                                                        \
            _Pragma("GCC unroll 8") for (int t = 0; t < T; t++)                                    \
            {                                                                                      \
                const uint8_t *ab = a + (size_t)(t0 + t) * as + (size_t)b * 34;                    \
                uint16_t h;                                                                        \
                __builtin_memcpy(&h, ab, 2);                                                       \
                da[t] = _cvtsh_ss(h);                                                              \
                av[t] = _mm256_loadu_si256((const __m256i *)(ab + 2));                             \
                if (MIN)                                                                           \
                    sa[t] = _mm256_cvtepi32_ps(avx2_dpbusd(_mm256_setzero_si256(), ones8, av[t])); \
            }                                                                                      \
            _Pragma("GCC unroll 4") for (int r = 0; r < R; r++)                                    \
            {                                                                                      \
                const uint8_t *wb = w + (size_t)(r0 + r) * ws + (size_t)b * (BYTES);               \
                uint16_t h, hm = 0;                                                                \
                __builtin_memcpy(&h, wb, 2);                                                       \
                if (MIN)                                                                           \
                    __builtin_memcpy(&hm, wb + 2, 2);                                              \
                const float dw = _cvtsh_ss(h), mw = _cvtsh_ss(hm);                                 \
                const __m256i wv = WLOAD(wb);                                                      \
                const __m256i wa = MIN ? wv : _mm256_sign_epi8(wv, wv);                            \
                _Pragma("GCC unroll 8") for (int t = 0; t < T; t++)                                \
                {                                                                                  \
                    const __m256i p = avx2_dpbusd(_mm256_setzero_si256(), wa,                      \
                                                  MIN ? av[t] : _mm256_sign_epi8(av[t], wv));      \
                    acc[r][t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p), _mm256_set1_ps(dw * da[t]), \
                                                acc[r][t]);                                        \
                    if (MIN)                                                                       \
                        acc[r][t] = _mm256_fmadd_ps(sa[t], _mm256_set1_ps(mw * da[t]), acc[r][t]); \
                }                                                                                  \
            }                                                                                      \
        }                                                                                          \
        _Pragma("GCC unroll 4") for (int r = 0; r < R; r++)                                        \
            _Pragma("GCC unroll 8") for (int t = 0; t < T; t++)                                    \
                put(y, ldy, r0 + r, t0 + t, hsum8(acc[r][t]), accumulate);                         \
    }

QBLOCK_TILE(tile_q8_0, 34, wq8_0, 0)
QBLOCK_TILE(tile_q4_0, 18, wq4_0, 0)
QBLOCK_TILE(tile_q5_0, 22, wq5_0, 0)
QBLOCK_TILE(tile_q4_1, 20, wq4_1, 1)
QBLOCK_TILE(tile_q5_1, 24, wq5_1, 1)

FLOAT_DRIVER(mm_f32, tile_f32, rows8_f32)
FLOAT_DRIVER(mm_f16, tile_f16, rows8_f16)
FLOAT_DRIVER(mm_bf16, tile_bf16, rows8_bf16)
MM_DRIVER(mm_q8_0, tile_q8_0, uint8_t)
MM_DRIVER(mm_q4_0, tile_q4_0, uint8_t)
MM_DRIVER(mm_q5_0, tile_q5_0, uint8_t)
MM_DRIVER(mm_q4_1, tile_q4_1, uint8_t)
MM_DRIVER(mm_q5_1, tile_q5_1, uint8_t)

/* Q8_0 activations, bit for bit the reference's: d = max|x| / 127 (NaN
 * ignored), q = roundf(x / d) (ties away from zero) clamped to int8, NaN 0. */
static void act_q8_0(const float *x, void *dst, int cols)
{
    uint8_t *out = dst;
    const __m256 sign = _mm256_set1_ps(-0.0f), half = _mm256_set1_ps(0.5f);
    const __m256i order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
    for (int b = 0; b < cols / 32; b++, x += 32, out += 34) {
        __m256 v[4];
        __m256 m = _mm256_setzero_ps();
        for (int k = 0; k < 4; k++) {
            v[k] = _mm256_loadu_ps(x + 8 * k);
            /* maxps returns its second operand when either is NaN */
            m = _mm256_max_ps(_mm256_andnot_ps(sign, v[k]), m);
        }
        __m128 m4 = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
        m4 = _mm_max_ps(m4, _mm_movehl_ps(m4, m4));
        m4 = _mm_max_ss(m4, _mm_movehdup_ps(m4));
        const float amax = _mm_cvtss_f32(m4);
        const float d = amax / 127.0f;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        const uint16_t h = util_fp32_to_fp16(d);
        __builtin_memcpy(out, &h, 2);
        const __m256 idv = _mm256_set1_ps(id);
        __m256i q[4];
        for (int k = 0; k < 4; k++) {
            const __m256 s = _mm256_mul_ps(v[k], idv);
            const __m256 t = _mm256_round_ps(s, _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC);
            const __m256 frac = _mm256_andnot_ps(sign, _mm256_sub_ps(s, t));
            const __m256 up = _mm256_cmp_ps(frac, half, _CMP_GE_OQ);
            /* t + sign(s) where the fraction is at least one half */
            const __m256 step = _mm256_or_ps(_mm256_set1_ps(1.0f), _mm256_and_ps(sign, s));
            __m256 r = _mm256_add_ps(t, _mm256_and_ps(up, step));
            r = _mm256_min_ps(_mm256_max_ps(r, _mm256_set1_ps(-128.0f)), _mm256_set1_ps(127.0f));
            r = _mm256_and_ps(r, _mm256_cmp_ps(s, s, _CMP_ORD_Q));
            q[k] = _mm256_cvttps_epi32(r);
        }
        const __m256i p =
            _mm256_packs_epi16(_mm256_packs_epi32(q[0], q[1]), _mm256_packs_epi32(q[2], q[3]));
        _mm256_storeu_si256((__m256i *)(out + 2), _mm256_permutevar8x32_epi32(p, order));
    }
}

/* Q8_K activations, bit for bit the reference's: d = max|x| / 127, q =
 * x * (127 / max|x|) rounded to nearest even (vcvtps2dq), the sums of each
 * 16; a block with a NaN or an infinity gets d = NaN and zero quants. */
static void act_q8_K(const float *x, void *dst, int cols)
{
    struct block_q8_K *out = dst;
    const __m256 sign = _mm256_set1_ps(-0.0f), big = _mm256_set1_ps(3.402823466e38f);
    for (int b = 0; b < cols / QK_K; b++, x += QK_K, out++) {
        __m256 m = _mm256_setzero_ps(), bad = _mm256_setzero_ps();
        for (int k = 0; k < QK_K / 8; k++) {
            const __m256 a = _mm256_andnot_ps(sign, _mm256_loadu_ps(x + 8 * k));
            bad = _mm256_or_ps(bad, _mm256_cmp_ps(a, big, _CMP_NLE_UQ)); /* NaN or > FLT_MAX */
            m = _mm256_max_ps(m, a);
        }
        if (_mm256_movemask_ps(bad)) {
            __builtin_memset(out, 0, sizeof *out);
            out->d = __builtin_nanf("");
            continue;
        }
        __m128 m4 = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
        m4 = _mm_max_ps(m4, _mm_movehl_ps(m4, m4));
        m4 = _mm_max_ss(m4, _mm_movehdup_ps(m4));
        const float amax = _mm_cvtss_f32(m4);
        const float id = amax > 0.0f ? 127.0f / amax : 0.0f;
        out->d = id != 0.0f ? amax / 127.0f : 0.0f;
        const __m256 idv = _mm256_set1_ps(id);
        const __m256i order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
        const __m256i lo = _mm256_set1_epi32(-127), hi = _mm256_set1_epi32(127);
        for (int k = 0; k < QK_K / 32; k++) {
            __m256i q[4];
            for (int j = 0; j < 4; j++)
                q[j] = _mm256_min_epi32(
                    hi, _mm256_max_epi32(lo, _mm256_cvtps_epi32(_mm256_mul_ps(
                                                 _mm256_loadu_ps(x + 32 * k + 8 * j), idv))));
            const __m256i p = _mm256_permutevar8x32_epi32(
                _mm256_packs_epi16(_mm256_packs_epi32(q[0], q[1]), _mm256_packs_epi32(q[2], q[3])),
                order);
            _mm256_storeu_si256((__m256i *)(out->qs + 32 * k), p);
            /* the two groups of 16: byte sums of each half */
            const __m256i s = _mm256_madd_epi16(_mm256_maddubs_epi16(_mm256_set1_epi8(1), p),
                                                _mm256_set1_epi16(1));
            __m128i h = _mm_add_epi32(_mm256_castsi256_si128(s), _mm_setzero_si128());
            __m128i g = _mm256_extracti128_si256(s, 1);
            h = _mm_add_epi32(h, _mm_shuffle_epi32(h, 0x4e));
            g = _mm_add_epi32(g, _mm_shuffle_epi32(g, 0x4e));
            h = _mm_add_epi32(h, _mm_shuffle_epi32(h, 0xb1));
            g = _mm_add_epi32(g, _mm_shuffle_epi32(g, 0xb1));
            out->bsums[2 * k] = (int16_t)_mm_cvtsi128_si32(h);
            out->bsums[2 * k + 1] = (int16_t)_mm_cvtsi128_si32(g);
        }
    }
}

/*
 * Packed blocks of 32 (kernels_avx2.h), per block and sub-group of 8 rows:
 *   0    d of the 8 rows (fp16)
 *   16   m (fp16; Q4_1, Q5_1)
 *   then Q5_0 / Q5_1: one register of bit 4 of each quant: lane i, byte b,
 *        bit k for the quant of register k below, byte b
 *   then the quants, register m's lane i holding quants 4m..4m+3 of row i:
 *        Q4/Q5 4 registers of nibbles (low: quants 4m.., high: 16 + 4m..,
 *        registers k = m and 4 + m), Q8_0 8 registers of int8 quants.
 * Sizes 144 (Q4_0), 160 (Q4_1), 176 (Q5_0), 192 (Q5_1), 272 (Q8_0).
 *
 * The unsigned quants (Q4_0 and Q5_0 stored as q + 8 and q + 16) meet the
 * int8 activations in maddubs; without VNNI the registers' pair sums of a
 * block add in int16, 8 at a time for 4 bits (16 x 15 x 128 < 32768), 4 at
 * a time for 5 (8 x 31 x 128 < 32768), then widen. Q4_0 / Q5_0 start from
 * -8 / -16 times the activations' sum, so the sum is exact; Q4_1 / Q5_1
 * add m times it. Q8_0 uses maddubs on |w| and the activations carrying
 * w's sign (pairs up to 2 x 128 x 127 < 32768).
 */
enum qkind { K_Q4_0, K_Q4_1, K_Q5_0, K_Q5_1, K_Q8_0 };
#define QK_HAS_M(k) ((k) == K_Q4_1 || (k) == K_Q5_1)
#define QK_HAS_H(k) ((k) == K_Q5_0 || (k) == K_Q5_1)
#define QK_OFF_H(k) (16 + 16 * QK_HAS_M(k))
#define QK_OFF_Q(k) (QK_OFF_H(k) + 32 * QK_HAS_H(k))
#define QK_PER(k) (QK_OFF_Q(k) + ((k) == K_Q8_0 ? 256 : 128))
#define GT 8      /* tokens per tile */
#define MAXNB 256 /* blocks per row the packed layout takes (8192 values) */

static size_t packed_bytes(int rows, int nb, size_t per)
{
    return rows < AVX2_GROUP || nb > MAXNB ? 0 : (size_t)(rows / AVX2_GROUP) * 2 * (size_t)nb * per;
}

/* Bytes of a stored block, and where its fields start. */
static const struct {
    int bytes, m, qh, qs;
} qk_src[] = {[K_Q4_0] = {18, 0, 0, 2},
              [K_Q4_1] = {20, 2, 0, 4},
              [K_Q5_0] = {22, 0, 2, 6},
              [K_Q5_1] = {24, 2, 4, 8},
              [K_Q8_0] = {34, 0, 0, 2}};

static void pack_q(const void *src, size_t stride, int rows, int cols, uint8_t *dst, enum qkind k)
{
    const int nb = cols / 32, regs = k == K_Q8_0 ? 8 : 4;
    const size_t per = QK_PER(k), bytes = (size_t)qk_src[k].bytes;
    /* sub-group u (rows 8u..8u+7): all its blocks, one after the other */
    for (int u = 0; u < rows / AVX2_GROUP * 2; u++) {
        uint8_t *sg = dst + (size_t)u * (size_t)nb * per;
        for (int b = 0; b < nb; b++) {
            uint8_t *out = sg + (size_t)b * per;
            for (int i = 0; i < AVX2_SUB; i++) {
                const uint8_t *blk =
                    (const uint8_t *)src + (size_t)(AVX2_SUB * u + i) * stride + (size_t)b * bytes;
                __builtin_memcpy(out + 2 * i, blk, 2);
                if (QK_HAS_M(k))
                    __builtin_memcpy(out + 16 + 2 * i, blk + qk_src[k].m, 2);
                if (QK_HAS_H(k)) {
                    /* byte c, bit r: register r's quant c, which is quant 4r + c
                     * (r < 4: 4r + c; r >= 4: 16 + 4(r - 4) + c), bit 4r + c of
                     * qh: bits c, c + 4, ..., c + 28 gathered */
                    const uint32_t qh = (uint32_t)avx2_dword(blk + qk_src[k].qh);
                    for (int c = 0; c < 4; c++) {
                        uint32_t v = qh >> c & 0x11111111u;
                        v = (v | v >> 3) & 0x03030303u;
                        v = (v | v >> 6) & 0x000f000fu;
                        out[QK_OFF_H(k) + 4 * i + c] = (uint8_t)(v | v >> 12);
                    }
                }
                for (int m = 0; m < regs; m++)
                    __builtin_memcpy(out + QK_OFF_Q(k) + 32 * m + 4 * i, blk + qk_src[k].qs + 4 * m,
                                     4);
            }
        }
    }
}

#define PACK_FNS(T, K)                                                                             \
    static size_t pack_bytes_##T(int rows, int cols)                                               \
    {                                                                                              \
        return packed_bytes(rows, cols / 32, QK_PER(K));                                           \
    }                                                                                              \
    static void pack_##T(const void *src, size_t stride, int rows, int cols, uint8_t *dst)         \
    {                                                                                              \
        pack_q(src, stride, rows, cols, dst, K);                                                   \
    }
PACK_FNS(q4_0, K_Q4_0)
PACK_FNS(q4_1, K_Q4_1)
PACK_FNS(q5_0, K_Q5_0)
PACK_FNS(q5_1, K_Q5_1)
PACK_FNS(q8_0, K_Q8_0)

/* Activation side of a token tile, per block: scale and sum of the quants. */
struct act_prep {
    float d[GT][MAXNB];
    int32_t sum[GT][MAXNB];
};

static void prep_acts(struct act_prep *p, const uint8_t *a, size_t as, int t0, int T, int nb,
                      int sums)
{
    const __m256i ones8 = _mm256_set1_epi8(1);
    for (int t = 0; t < T; t++)
        for (int b = 0; b < nb; b++) {
            const uint8_t *ab = a + (size_t)(t0 + t) * as + (size_t)b * 34;
            uint16_t h;
            __builtin_memcpy(&h, ab, 2);
            p->d[t][b] = _cvtsh_ss(h);
            if (!sums)
                continue;
            const __m256i q = _mm256_loadu_si256((const __m256i *)(ab + 2));
            const __m256i s = avx2_dpbusd(_mm256_setzero_si256(), ones8, q);
            __m128i x = _mm_add_epi32(_mm256_castsi256_si128(s), _mm256_extracti128_si256(s, 1));
            x = _mm_add_epi32(x, _mm_shuffle_epi32(x, 0x4e));
            x = _mm_add_epi32(x, _mm_shuffle_epi32(x, 0xb1));
            p->sum[t][b] = _mm_cvtsi128_si32(x);
        }
}

/* sum_k W[k] . (4 activations at q + 4k, broadcast) over k = 0..7, per
 * 32-bit lane (int16 chains of `chain` registers without VNNI). */
AI __m256i dot8(const __m256i *W, const uint8_t *q, int chain)
{
#if AVX2_VNNI
    (void)chain;
    __m256i p0 = _mm256_setzero_si256(), p1 = _mm256_setzero_si256();
    _Pragma("GCC unroll 4") for (int k = 0; k < 8; k += 2)
    {
        p0 = AVX2_DPBUSD(p0, W[k], avx2_bcast4(q + 4 * k));
        p1 = AVX2_DPBUSD(p1, W[k + 1], avx2_bcast4(q + 4 * k + 4));
    }
    return _mm256_add_epi32(p0, p1);
#else
    const __m256i ones = _mm256_set1_epi16(1);
    __m256i r = _mm256_setzero_si256();
    _Pragma("GCC unroll 2") for (int k0 = 0; k0 < 8; k0 += chain)
    {
        __m256i u = _mm256_maddubs_epi16(W[k0], avx2_bcast4(q + 4 * k0));
        _Pragma("GCC unroll 8") for (int k = k0 + 1; k < k0 + chain; k++)
        {
            u = _mm256_add_epi16(u, _mm256_maddubs_epi16(W[k], avx2_bcast4(q + 4 * k)));
            AVX2_CHAIN(u);
        }
        r = _mm256_add_epi32(r, _mm256_madd_epi16(u, ones));
    }
    return r;
#endif
}

/* One sub-group of 8 packed rows (r..r+7) against T tokens. */
AI void packed_sub(const uint8_t *sg, int nb, enum qkind kind, const struct act_prep *p,
                   const uint8_t *a, size_t as, int t0, int T, float *y, size_t ldy, int r,
                   int accumulate)
{
    __m256 acc[GT];
    _Pragma("GCC unroll 8") for (int t = 0; t < GT; t++) acc[t] = _mm256_setzero_ps();
    const __m256i m4 = _mm256_set1_epi8(0x0f), b4 = _mm256_set1_epi8(0x10);
    const int per = QK_PER(kind);
    for (int b = 0; b < nb; b++) {
        const uint8_t *blk = sg + (size_t)b * (size_t)per;
        avx2_prefetch(blk, per);
        const __m256 dw = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)blk));
        const uint8_t *q[GT];
        __m256i s[GT];
        _Pragma("GCC unroll 8") for (int t = 0; t < GT; t++)
        {
            q[t] = a + (size_t)(t0 + (t < T ? t : 0)) * as + (size_t)b * 34 + 2;
            s[t] = _mm256_setzero_si256();
        }
        if (kind == K_Q8_0) {
            _Pragma("GCC unroll 8") for (int m = 0; m < 8; m++)
            {
                const __m256i wv = _mm256_loadu_si256((const __m256i *)(blk + 16 + 32 * m));
                const __m256i wa = _mm256_sign_epi8(wv, wv);
                _Pragma("GCC unroll 8") for (int t = 0; t < T; t++)
                {
                    s[t] = avx2_dpbusd(s[t], wa, _mm256_sign_epi8(avx2_bcast4(q[t] + 4 * m), wv));
                    AVX2_CHAIN(s[t]);
                }
            }
        } else {
            /* the block's 32 quants of all 8 rows in 8 registers, then each
             * token's 8 products summed one after the other */
            __m256i W[8];
            _Pragma("GCC unroll 4") for (int m = 0; m < 4; m++)
            {
                const __m256i v =
                    _mm256_loadu_si256((const __m256i *)(blk + QK_OFF_Q(kind) + 32 * m));
                W[m] = _mm256_and_si256(v, m4);
                W[4 + m] = _mm256_and_si256(_mm256_srli_epi16(v, 4), m4);
            }
            if (QK_HAS_H(kind)) {
                const __m256i H = _mm256_loadu_si256((const __m256i *)(blk + QK_OFF_H(kind)));
                /* bit k of each byte to bit 4 */
                _Pragma("GCC unroll 8") for (int k = 0; k < 8; k++) W[k] =
                    _mm256_or_si256(W[k], _mm256_and_si256(k < 4 ? _mm256_slli_epi16(H, 4 - k)
                                                                 : _mm256_srli_epi16(H, k - 4),
                                                           b4));
            }
            _Pragma("GCC unroll 8") for (int t = 0; t < T; t++) s[t] =
                dot8(W, q[t], QK_HAS_H(kind) ? 4 : 8);
            if (kind == K_Q4_0 || kind == K_Q5_0)
                _Pragma("GCC unroll 8") for (int t = 0; t < T; t++) s[t] = _mm256_add_epi32(
                    s[t], _mm256_set1_epi32((kind == K_Q4_0 ? -8 : -16) * p->sum[t][b]));
        }
        _Pragma("GCC unroll 8") for (int t = 0; t < T; t++)
        {
            const __m256 da = _mm256_set1_ps(p->d[t][b]);
            acc[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s[t]), _mm256_mul_ps(dw, da), acc[t]);
            if (QK_HAS_M(kind))
                acc[t] =
                    _mm256_fmadd_ps(_mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(blk + 16))),
                                    _mm256_mul_ps(_mm256_set1_ps((float)p->sum[t][b]), da), acc[t]);
        }
    }
    _Pragma("GCC unroll 8") for (int t = 0; t < T; t++)
        avx2_out8(y, ldy, r, t0 + t, acc[t], accumulate);
}

#define Q_SUB_CALL(KIND, TT) packed_sub(sg, nb, KIND, &prep, a, as, t0, TT, y, ldy, r, accumulate)
#define PACKED_DRIVER(NAME, KIND)                                                                  \
    static void NAME(uint32_t type, int cols, const uint8_t *w, size_t ws, int r0, int r1,         \
                     const void *a, size_t as, int n, float *y, size_t ldy, int accumulate)        \
    {                                                                                              \
        (void)type;                                                                                \
        const int nb = cols / 32;                                                                  \
        struct act_prep prep; /* 16 KiB of stack: kernels keep no state */                         \
        AVX2_PACKED_LOOP(GT, (size_t)nb *QK_PER(KIND),                                             \
                         prep_acts(&prep, a, as, t0, T, nb, (KIND) != K_Q8_0), Q_SUB_CALL, KIND)   \
    }

PACKED_DRIVER(mm_packed_q4_0, K_Q4_0)
PACKED_DRIVER(mm_packed_q4_1, K_Q4_1)
PACKED_DRIVER(mm_packed_q5_0, K_Q5_0)
PACKED_DRIVER(mm_packed_q5_1, K_Q5_1)
PACKED_DRIVER(mm_packed_q8_0, K_Q8_0)

#if AVX2_VNNI == 2
/* the kernels kernels_avx512.c borrows (kernels_avx2.h: AVX2_Q_DECL) */
#define AVX2_Q_EXPORT(T)                                                                           \
    void AVX2_NAME(mm_##T)(uint32_t type, int cols, const uint8_t *w, size_t ws, int r0, int r1,   \
                           const void *a, size_t as, int n, float *y, size_t ldy, int accumulate)  \
    {                                                                                              \
        mm_##T(type, cols, w, ws, r0, r1, a, as, n, y, ldy, accumulate);                           \
    }                                                                                              \
    size_t AVX2_NAME(pack_bytes_##T)(int rows, int cols)                                           \
    {                                                                                              \
        return pack_bytes_##T(rows, cols);                                                         \
    }                                                                                              \
    void AVX2_NAME(pack_##T)(const void *src, size_t stride, int rows, int cols, uint8_t *dst)     \
    {                                                                                              \
        pack_##T(src, stride, rows, cols, dst);                                                    \
    }                                                                                              \
    void AVX2_NAME(mm_packed_##T)(uint32_t type, int cols, const uint8_t *w, size_t ws, int r0,    \
                                  int r1, const void *a, size_t as, int n, float *y, size_t ldy,   \
                                  int accumulate)                                                  \
    {                                                                                              \
        mm_packed_##T(type, cols, w, ws, r0, r1, a, as, n, y, ldy, accumulate);                    \
    }
AVX2_Q_EXPORT(q4_1)
AVX2_Q_EXPORT(q5_0)
AVX2_Q_EXPORT(q5_1)
#else
#if AVX2_VNNI
#define AVX2_SET kern_isa_avxvnni
#define AVX2_SET_NAME "avxvnni"
#else
#define AVX2_SET kern_isa_avx2
#define AVX2_SET_NAME "avx2"
#endif
#define KFN(x) AVX2_NAME(k_##x)

const struct kern_isa AVX2_SET = {
    .name = AVX2_SET_NAME,
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
            /* Q8_0 activations (not the reference's Q8_1): m meets their
             * exact integer sum */
            [DTYPE_Q4_1] = {DTYPE_Q8_0, mm_q4_1},
            [DTYPE_Q5_0] = {DTYPE_Q8_0, mm_q5_0},
            [DTYPE_Q5_1] = {DTYPE_Q8_0, mm_q5_1},
            [DTYPE_Q4_K] = {DTYPE_Q8_K, KFN(mm_q4_K)},
            [DTYPE_Q5_K] = {DTYPE_Q8_K, KFN(mm_q5_K)},
            [DTYPE_Q6_K] = {DTYPE_Q8_K, KFN(mm_q6_K)},
        },
    .act_quantize = {[DTYPE_Q8_0] = act_q8_0, [DTYPE_Q8_K] = act_q8_K},
    .pack_bytes = {[DTYPE_Q4_0] = pack_bytes_q4_0,
                   [DTYPE_Q4_1] = pack_bytes_q4_1,
                   [DTYPE_Q5_0] = pack_bytes_q5_0,
                   [DTYPE_Q5_1] = pack_bytes_q5_1,
                   [DTYPE_Q8_0] = pack_bytes_q8_0,
                   [DTYPE_Q4_K] = KFN(pack_bytes_q4_K),
                   [DTYPE_Q5_K] = KFN(pack_bytes_q5_K),
                   [DTYPE_Q6_K] = KFN(pack_bytes_q6_K)},
    .pack = {[DTYPE_Q4_0] = pack_q4_0,
             [DTYPE_Q4_1] = pack_q4_1,
             [DTYPE_Q5_0] = pack_q5_0,
             [DTYPE_Q5_1] = pack_q5_1,
             [DTYPE_Q8_0] = pack_q8_0,
             [DTYPE_Q4_K] = KFN(pack_q4_K),
             [DTYPE_Q5_K] = KFN(pack_q5_K),
             [DTYPE_Q6_K] = KFN(pack_q6_K)},
    .mm_packed = {[DTYPE_Q4_0] = mm_packed_q4_0,
                  [DTYPE_Q4_1] = mm_packed_q4_1,
                  [DTYPE_Q5_0] = mm_packed_q5_0,
                  [DTYPE_Q5_1] = mm_packed_q5_1,
                  [DTYPE_Q8_0] = mm_packed_q8_0,
                  [DTYPE_Q4_K] = KFN(mm_packed_q4_K),
                  [DTYPE_Q5_K] = KFN(mm_packed_q5_K),
                  [DTYPE_Q6_K] = KFN(mm_packed_q6_K)},
};
#endif /* AVX2_VNNI == 2 */
#endif
