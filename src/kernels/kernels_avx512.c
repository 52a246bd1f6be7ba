/*
 * kernels_avx512.c - the avx512 instruction set's kernels (see kernels.h). This
 * file alone is compiled with the set's flags; kernels.c calls into it only
 * after checking the CPU supports the set.
 */
#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>

#include "quant/dtype.h"
#include "kernels/kernels.h"
#include "kernels/kernels_gemm.h"
#include "util.h"
/* the 256-bit kernels of kernels_avx512y*.c for Q4_1, Q5_0, Q5_1, Q5_K (the
 * Q8_K activations come from kernels_gemm.c's 512-bit quantizer) */
#define AVX2_VNNI 2
#include "kernels/kernels_avx2.h"

#define SIMD_V __m512
#define SIMD_W 16
#define SIMD_ZERO() _mm512_setzero_ps()
#define SIMD_SET1(a) _mm512_set1_ps(a)
#define SIMD_LOAD(p) _mm512_loadu_ps(p)
#define SIMD_STORE(p, v) _mm512_storeu_ps(p, v)
#define SIMD_FMADD(a, b, c) _mm512_fmadd_ps(a, b, c)
#define SIMD_HSUM(v) _mm512_reduce_add_ps(v)
#include "kernels/simd_f32.h"

/* The float weight types (F32, F16, BF16) are in kernels_gemm.c. */

/*
 * Block formats (Q8_0, Q4_0) against Q8_0 activations. Blocks are taken two
 * at a time in 512-bit registers (each 256-bit half one block); a lone last
 * block uses the lower half with the upper half zero. Per pair of blocks and
 * per (row, token): an integer dot product (VNNI), its conversion to float,
 * and one multiply-add with the two blocks' combined scales.
 */

/* Two fp16 scales as a vector: lanes 0-7 the first, 8-15 the second. */
AI __m512 scale2(const uint8_t *p0, const uint8_t *p1)
{
    uint16_t h0, h1 = 0;
    __builtin_memcpy(&h0, p0, 2);
    if (p1)
        __builtin_memcpy(&h1, p1, 2);
    return _mm512_mask_blend_ps(0xff00, _mm512_set1_ps(_cvtsh_ss(h0)),
                                _mm512_set1_ps(_cvtsh_ss(h1)));
}

/* 64 int8 values of two 32-value blocks whose data start 2 bytes in. */
AI __m512i q8_pair(const uint8_t *b0, const uint8_t *b1)
{
    const __m256i lo = _mm256_loadu_si256((const __m256i *)(b0 + 2));
    const __m256i hi = b1 ? _mm256_loadu_si256((const __m256i *)(b1 + 2)) : _mm256_setzero_si256();
    return _mm512_inserti64x4(_mm512_castsi256_si512(lo), hi, 1);
}

/* 64 weights 0..15 of two Q4_0 blocks (low nibbles are a block's first 16). */
AI __m512i q4_pair(const uint8_t *b0, const uint8_t *b1)
{
    const __m128i q0 = _mm_loadu_si128((const __m128i *)(b0 + 2));
    const __m128i q1 = b1 ? _mm_loadu_si128((const __m128i *)(b1 + 2)) : _mm_set1_epi8(0x08);
    __m512i v = _mm512_castsi128_si512(q0);
    v = _mm512_inserti32x4(v, _mm_srli_epi16(q0, 4), 1);
    v = _mm512_inserti32x4(v, q1, 2);
    v = _mm512_inserti32x4(v, _mm_srli_epi16(q1, 4), 3);
    return _mm512_and_si512(v, _mm512_set1_epi8(0x0f));
}

#define QBLOCK_TILE(NAME, BYTES, IS_Q4)                                                            \
    AI void NAME(int cols, const uint8_t *w, size_t ws, int r0, int R, const uint8_t *a,           \
                 size_t as, int t0, int T, float *y, size_t ldy, int accumulate)                   \
    {                                                                                              \
        __m512 acc[TILE][TILE];                                                                    \
        _Pragma("GCC unroll 4") for (int r = 0; r < R; r++)                                        \
            _Pragma("GCC unroll 4") for (int t = 0; t < T; t++) acc[r][t] = _mm512_setzero_ps();   \
        const int nb = cols / 32;                                                                  \
        for (int b = 0; b < nb; b += 2) {                                                          \
            const int two = b + 1 < nb;                                                            \
            __m512i av[TILE], base[TILE];                                                          \
            __m512 da[TILE];                                                                       \
            _Pragma("GCC unroll 4") for (int t = 0; t < T; t++)                                    \
            {                                                                                      \
                const uint8_t *ab = a + (size_t)(t0 + t) * as + (size_t)b * 34;                    \
                av[t] = q8_pair(ab, two ? ab + 34 : NULL);                                         \
                da[t] = scale2(ab, two ? ab + 34 : NULL);                                          \
                /* Q4_0 weights are stored as q + 8: start from -8 * sum(a) */                     \
                base[t] = IS_Q4                                                                    \
                              ? _mm512_sub_epi32(_mm512_setzero_si512(),                           \
                                                 _mm512_dpbusd_epi32(_mm512_setzero_si512(),       \
                                                                     _mm512_set1_epi8(8), av[t]))  \
                              : _mm512_setzero_si512();                                            \
            }                                                                                      \
            _Pragma("GCC unroll 4") for (int r = 0; r < R; r++)                                    \
            {                                                                                      \
                const uint8_t *wb = w + (size_t)(r0 + r) * ws + (size_t)b * (BYTES);               \
                const __m512 dw = scale2(wb, two ? wb + (BYTES) : NULL);                           \
                __m512i wv = IS_Q4 ? q4_pair(wb, two ? wb + (BYTES) : NULL)                        \
                                   : q8_pair(wb, two ? wb + (BYTES) : NULL);                       \
                /* Q8_0: |w| against a with w's sign (VNNI takes unsigned x signed) */             \
                const __m512i wu = IS_Q4 ? wv : _mm512_abs_epi8(wv);                               \
                _Pragma("GCC unroll 4") for (int t = 0; t < T; t++)                                \
                {                                                                                  \
                    __m512i as_;                                                                   \
                    if (IS_Q4) {                                                                   \
                        as_ = av[t];                                                               \
                    } else {                                                                       \
                        const __mmask64 neg = _mm512_movepi8_mask(wv);                             \
                        as_ = _mm512_mask_sub_epi8(av[t], neg, _mm512_setzero_si512(), av[t]);     \
                    }                                                                              \
                    const __m512i isum = _mm512_dpbusd_epi32(base[t], wu, as_);                    \
                    acc[r][t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(isum),                          \
                                                _mm512_mul_ps(dw, da[t]), acc[r][t]);              \
                }                                                                                  \
            }                                                                                      \
        }                                                                                          \
        _Pragma("GCC unroll 4") for (int r = 0; r < R; r++)                                        \
            _Pragma("GCC unroll 4") for (int t = 0; t < T; t++)                                    \
                put(y, ldy, r0 + r, t0 + t, _mm512_reduce_add_ps(acc[r][t]), accumulate);          \
    }

QBLOCK_TILE(tile_q8_0, 34, 0)
QBLOCK_TILE(tile_q4_0, 18, 1)


/*
 * Packed Q4_0 and Q8_0 (model/pack.c): 16 rows per group, one row per 32-bit lane.
 * Per block a group holds the 16 rows' fp16 scales (32 bytes), then its
 * quants so that 32-bit lane i of each 64-byte register is 4 quants of row
 * i: Q4_0 4 registers of nibbles (low: quants 4m..4m+3, high: 16+4m..),
 * Q8_0 8 registers of quants + 128 (unsigned, for VNNI). Each VNNI
 * instruction then multiplies 4 quants of all 16 rows by the same 4
 * activations (a broadcast), no horizontal sums are needed, and up to 8
 * tokens share every register of weights.
 */
#define GROUP 16
#ifndef GT
#define GT 16 /* tokens per tile */
#endif
#define MAXNB 256 /* blocks per row the packed layout takes (8192 values) */
#ifndef PF_BYTES
#define PF_BYTES 4608 /* how far ahead to prefetch */
#endif
#define Q4_PACKED 288
#define Q8_PACKED 544

/* Bytes of a packed layout: whole groups of 16 rows, nb blocks each of
 * `per` bytes per group (0: nothing to pack). */
static size_t packed_size(int rows, int nb, size_t per)
{
    return rows < GROUP ? 0 : (size_t)(rows / GROUP) * (size_t)nb * per;
}

/* Block b of row i of group g, in rows `stride` bytes apart. */
AI const uint8_t *row_block(const void *src, size_t stride, int g, int i, int b, size_t bytes)
{
    return (const uint8_t *)src + (size_t)(g * GROUP + i) * stride + (size_t)b * bytes;
}

static size_t pack_bytes_q4_0(int rows, int cols)
{
    return cols / 32 > MAXNB ? 0 : packed_size(rows, cols / 32, Q4_PACKED);
}

static size_t pack_bytes_q8_0(int rows, int cols)
{
    return cols / 32 > MAXNB ? 0 : packed_size(rows, cols / 32, Q8_PACKED);
}

/* The loop every packed layout shares: for group g of GROUP rows and block b
 * of nb, the rows' blocks (`bytes` each) go through put_block(blk, i, out), i
 * the row in the group, into the `per` bytes of (g, b). */
AI void pack_groups(const void *src, size_t stride, int rows, int nb, size_t bytes, size_t per,
                    uint8_t *dst, void (*put_block)(const uint8_t *blk, int i, uint8_t *out))
{
    for (int g = 0; g < rows / GROUP; g++)
        for (int b = 0; b < nb; b++) {
            uint8_t *out = dst + ((size_t)g * (size_t)nb + (size_t)b) * per;
            for (int i = 0; i < GROUP; i++)
                put_block(row_block(src, stride, g, i, b, bytes), i, out);
        }
}

AI void put_q_0(const uint8_t *blk, int i, uint8_t *out, int q8)
{
    __builtin_memcpy(out + 2 * i, blk, 2);
    for (int m = 0; m < (q8 ? 8 : 4); m++)
        for (int k = 0; k < 4; k++)
            out[32 + 64 * m + 4 * i + k] = (uint8_t)(blk[2 + 4 * m + k] ^ (q8 ? 0x80 : 0));
}

static void put_q4_0(const uint8_t *blk, int i, uint8_t *out)
{
    put_q_0(blk, i, out, 0);
}

static void put_q8_0(const uint8_t *blk, int i, uint8_t *out)
{
    put_q_0(blk, i, out, 1);
}

static void pack_q4_0(const void *src, size_t stride, int rows, int cols, uint8_t *dst)
{
    pack_groups(src, stride, rows, cols / 32, 18, Q4_PACKED, dst, put_q4_0);
}

static void pack_q8_0(const void *src, size_t stride, int rows, int cols, uint8_t *dst)
{
    pack_groups(src, stride, rows, cols / 32, 34, Q8_PACKED, dst, put_q8_0);
}

/* Activation side of a token tile, per block: scale and sum of the quants. */
struct act_prep {
    float d[GT][MAXNB];
    int32_t sum[GT][MAXNB];
};

static void prep_acts(struct act_prep *p, const uint8_t *a, size_t as, int t0, int T, int nb)
{
    for (int t = 0; t < T; t++)
        for (int b = 0; b < nb; b++) {
            const uint8_t *ab = a + (size_t)(t0 + t) * as + (size_t)b * 34;
            uint16_t h;
            __builtin_memcpy(&h, ab, 2);
            p->d[t][b] = _cvtsh_ss(h);
            const __m256i q = _mm256_loadu_si256((const __m256i *)(ab + 2));
            const __m256i s = _mm256_dpbusd_epi32(_mm256_setzero_si256(), _mm256_set1_epi8(1), q);
            __m128i x = _mm_add_epi32(_mm256_castsi256_si128(s), _mm256_extracti128_si256(s, 1));
            x = _mm_add_epi32(x, _mm_shuffle_epi32(x, 0x4e));
            x = _mm_add_epi32(x, _mm_shuffle_epi32(x, 0xb1));
            p->sum[t][b] = _mm_cvtsi128_si32(x);
        }
}

AI int32_t dword_at(const uint8_t *p)
{
    int32_t v;
    __builtin_memcpy(&v, p, 4);
    return v;
}

AI void group_out(float *y, size_t ldy, int r, int t, __m512 v, int accumulate)
{
    float *dst = y + (size_t)t * ldy + r;
    if (accumulate)
        v = _mm512_add_ps(_mm512_loadu_ps(dst), v);
    _mm512_storeu_ps(dst, v);
}

/* One group of 16 packed rows against T tokens. Q4_0 quants q stand for
 * q - 8 and Q8_0's stored u for u - 128: the sums start from -8 or -128
 * times the sum of the activations, so every integer sum is exact. */
AI void packed_group(const uint8_t *g, int nb, int q8, const struct act_prep *p, const uint8_t *a,
                     size_t as, int t0, int T, float *y, size_t ldy, int r, int accumulate)
{
    __m512 acc[GT];
    _Pragma("GCC unroll 16") for (int t = 0; t < GT; t++) acc[t] = _mm512_setzero_ps();
    const __m512i m4 = _mm512_set1_epi8(0x0f);
    const int size = q8 ? Q8_PACKED : Q4_PACKED;
    for (int b = 0; b < nb; b++) {
        const uint8_t *blk = g + (size_t)b * (size_t)size;
        /* the hardware prefetcher alone leaves the loads waiting on memory */
        _Pragma("GCC unroll 9") for (int l = 0; l < size; l += 64)
            _mm_prefetch((const char *)(blk + PF_BYTES / size * size + l), _MM_HINT_T0);
        const __m512 dw = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)blk));
        __m512i W[8];
        if (q8) {
            _Pragma("GCC unroll 8") for (int m = 0; m < 8; m++)
                W[m] = _mm512_loadu_si512(blk + 32 + 64 * m);
        } else {
            _Pragma("GCC unroll 4") for (int m = 0; m < 4; m++) {
                const __m512i v = _mm512_loadu_si512(blk + 32 + 64 * m);
                W[m] = _mm512_and_si512(v, m4);
                W[4 + m] = _mm512_and_si512(_mm512_srli_epi16(v, 4), m4);
            }
        }
        _Pragma("GCC unroll 16") for (int t = 0; t < T; t++) {
            const uint8_t *q = a + (size_t)(t0 + t) * as + (size_t)b * 34 + 2;
            /* two independent chains (integer sums: the split changes nothing) */
            __m512i s = _mm512_set1_epi32((q8 ? -128 : -8) * p->sum[t][b]);
            __m512i s2 = _mm512_setzero_si512();
            _Pragma("GCC unroll 4") for (int m = 0; m < 4; m++) {
                const int off = q8 ? 4 * (m + 4) : 16 + 4 * m;
                s = _mm512_dpbusd_epi32(s, W[m], _mm512_set1_epi32(dword_at(q + 4 * m)));
                s2 = _mm512_dpbusd_epi32(s2, W[4 + m], _mm512_set1_epi32(dword_at(q + off)));
            }
            s = _mm512_add_epi32(s, s2);
            acc[t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(s), _mm512_mul_ps(dw, _mm512_set1_ps(p->d[t][b])),
                                     acc[t]);
        }
    }
    _Pragma("GCC unroll 16") for (int t = 0; t < T; t++) group_out(y, ldy, r, t0 + t, acc[t], accumulate);
}

/* Rows per pass over the token tiles: a batch wider than one tile meets a
 * chunk of groups that stays in L2 (~256 KiB) while every tile passes over
 * it, so the weights come from memory once per call. Which rows and tokens
 * a kernel call sees never changes a result. */
#ifndef CHUNK_KIB
#define CHUNK_KIB 256 /* a slice of rows per pass when the batch spans several tiles */
#endif
AI int chunk_rows(int n, int gt, size_t ws, int r0, int r1)
{
    if (n <= gt)
        return r1 - r0;
    const size_t groups = ((size_t)CHUNK_KIB << 10) / (ws ? ws : 1);
    return (int)(groups > 1 ? groups : 1) * GROUP;
}

#define PACKED_DRIVER(NAME, Q8)                                                                    \
    static void NAME(uint32_t type, int cols, const uint8_t *w, size_t ws, int r0, int r1,         \
                     const void *a, size_t as, int n, float *y, size_t ldy, int accumulate)        \
    {                                                                                              \
        (void)type;                                                                                \
        const int nb = cols / 32, ch = chunk_rows(n, GT, ws, r0, r1);                              \
        struct act_prep prep; /* 16 KiB of stack: kernels keep no state */                         \
        for (int rc = r0; rc < r1; rc += ch) {                                                     \
            const int re = r1 - rc < ch ? r1 : rc + ch;                                            \
            for (int t0 = 0; t0 < n; t0 += GT) {                                                   \
                const int T = n - t0 < GT ? n - t0 : GT;                                           \
                prep_acts(&prep, a, as, t0, T, nb);                                                \
                for (int r = rc; r < re; r += GROUP) {                                             \
                    const uint8_t *g = w + (size_t)(r / GROUP) * ws;                               \
                    switch (T) {                                                                   \
                    case GT: packed_group(g, nb, Q8, &prep, a, as, t0, GT, y, ldy, r, accumulate); break; \
                    case 8: packed_group(g, nb, Q8, &prep, a, as, t0, 8, y, ldy, r, accumulate); break; \
                    case 1: packed_group(g, nb, Q8, &prep, a, as, t0, 1, y, ldy, r, accumulate); break; \
                    default: packed_group(g, nb, Q8, &prep, a, as, t0, T, y, ldy, r, accumulate); break; \
                    }                                                                              \
                }                                                                                  \
            }                                                                                      \
        }                                                                                          \
    }

PACKED_DRIVER(mm_packed_q4_0, 0)
PACKED_DRIVER(mm_packed_q8_0, 1)

/*
 * One token (decode) over packed Q4_0 / Q8_0: ONE_NG groups side by side,
 * block by block, so that many streams of weights are in flight at once
 * (as a bandwidth probe reads several) and each block's activation
 * broadcasts serve all of them. Each group's sums are packed_group's with
 * T == 1 in the same order, so the results are the same bit for bit.
 */
#ifndef ONE_NG
#define ONE_NG 1 /* groups read side by side */
#endif
#ifndef ONE_PF
#define ONE_PF PF_BYTES /* prefetch distance per stream (0: none) */
#endif
#ifndef ONE_HINT
#define ONE_HINT _MM_HINT_T0
#endif

AI void one_groups(const uint8_t *g, size_t ws, int ng, int nb, int q8, const struct act_prep *p,
                   const uint8_t *a, float *y, int r, int accumulate)
{
    __m512 acc[ONE_NG];
    _Pragma("GCC unroll 4") for (int k = 0; k < ONE_NG; k++) acc[k] = _mm512_setzero_ps();
    const __m512i m4 = _mm512_set1_epi8(0x0f);
    const int size = q8 ? Q8_PACKED : Q4_PACKED;
    for (int b = 0; b < nb; b++) {
        const uint8_t *q = a + (size_t)b * 34 + 2;
        __m512i A[8];
        _Pragma("GCC unroll 4") for (int m = 0; m < 4; m++) {
            A[m] = _mm512_set1_epi32(dword_at(q + 4 * m));
            A[4 + m] = _mm512_set1_epi32(dword_at(q + (q8 ? 4 * (m + 4) : 16 + 4 * m)));
        }
        const __m512i s0 = _mm512_set1_epi32((q8 ? -128 : -8) * p->sum[0][b]);
        const __m512 da = _mm512_set1_ps(p->d[0][b]);
        _Pragma("GCC unroll 4") for (int k = 0; k < ng; k++) {
            const uint8_t *blk = g + (size_t)k * ws + (size_t)b * (size_t)size;
            if (ONE_PF > 0) {
                _Pragma("GCC unroll 9") for (int l = 0; l < size; l += 64)
                    _mm_prefetch((const char *)(blk + ONE_PF / size * size + l), ONE_HINT);
            }
            const __m512 dw = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)blk));
            __m512i W[8];
            if (q8) {
                _Pragma("GCC unroll 8") for (int m = 0; m < 8; m++)
                    W[m] = _mm512_loadu_si512(blk + 32 + 64 * m);
            } else {
                _Pragma("GCC unroll 4") for (int m = 0; m < 4; m++) {
                    const __m512i v = _mm512_loadu_si512(blk + 32 + 64 * m);
                    W[m] = _mm512_and_si512(v, m4);
                    W[4 + m] = _mm512_and_si512(_mm512_srli_epi16(v, 4), m4);
                }
            }
            __m512i s = s0, s2 = _mm512_setzero_si512();
            _Pragma("GCC unroll 4") for (int m = 0; m < 4; m++) {
                s = _mm512_dpbusd_epi32(s, W[m], A[m]);
                s2 = _mm512_dpbusd_epi32(s2, W[4 + m], A[4 + m]);
            }
            s = _mm512_add_epi32(s, s2);
            acc[k] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(s), _mm512_mul_ps(dw, da), acc[k]);
        }
    }
    _Pragma("GCC unroll 4") for (int k = 0; k < ng; k++)
        group_out(y, 0, r + GROUP * k, 0, acc[k], accumulate);
}

#define ONE_TOKEN(NAME, TILES, Q8)                                                                 \
    static void NAME(uint32_t type, int cols, const uint8_t *w, size_t ws, int r0, int r1,         \
                     const void *a, size_t as, int n, float *y, size_t ldy, int accumulate)        \
    {                                                                                              \
        if (n != 1) {                                                                              \
            TILES(type, cols, w, ws, r0, r1, a, as, n, y, ldy, accumulate);                        \
            return;                                                                                \
        }                                                                                          \
        const int nb = cols / 32;                                                                  \
        struct act_prep prep;                                                                      \
        prep_acts(&prep, a, as, 0, 1, nb);                                                         \
        int r = r0;                                                                                \
        for (; r + GROUP * ONE_NG <= r1; r += GROUP * ONE_NG)                                      \
            one_groups(w + (size_t)(r / GROUP) * ws, ws, ONE_NG, nb, Q8, &prep, a, y, r,           \
                       accumulate);                                                                \
        for (; r < r1; r += GROUP)                                                                 \
            one_groups(w + (size_t)(r / GROUP) * ws, ws, 1, nb, Q8, &prep, a, y, r, accumulate);   \
    }

ONE_TOKEN(mm_one_q4_0, mm_packed_q4_0, 0)
ONE_TOKEN(mm_one_q8_0, mm_packed_q8_0, 1)
MM_DRIVER(mm_q8_0, tile_q8_0, uint8_t)
MM_DRIVER(mm_q4_0, tile_q4_0, uint8_t)

/*
 * k-quants (Q4_K, Q6_K) against Q8_K activations, 4 rows x 4 tokens per
 * tile. Within a 256-weight super-block the products of a 64-byte register
 * are summed in pairs (maddubs: unsigned weights x signed activations) and
 * then multiplied by each sub-block's scale while being summed into 32-bit
 * lanes (VNNI dpwssd), so a super-block costs two instructions per 64
 * weights and per (row, token); the integer sums are exact.
 */

/* Q4_K: the 8 sub-block scales and mins of a super-block, as int16 lanes. */
AI void q4k_scales(const uint8_t *sc, int16_t *scale, int16_t *min)
{
    for (int s = 0; s < 4; s++) {
        scale[s] = sc[s] & 63;
        min[s] = sc[s + 4] & 63;
        scale[s + 4] = (int16_t)((sc[s + 8] & 0x0f) | (sc[s] >> 6) << 4);
        min[s + 4] = (int16_t)((sc[s + 8] >> 4) | (sc[s + 4] >> 6) << 4);
    }
}

/* Lanes 0-15 (int16) scaled by a, lanes 16-31 by b. */
AI __m512i scale_pair(int16_t a, int16_t b)
{
    return _mm512_inserti64x4(_mm512_set1_epi16(a), _mm256_set1_epi16(b), 1);
}

AI void tile_q4_K(int cols, const uint8_t *w, size_t ws, int r0, int R, const uint8_t *a, size_t as,
                  int t0, int T, float *y, size_t ldy, int accumulate)
{
    __m512 acc[TILE][TILE];
    _Pragma("GCC unroll 4") for (int r = 0; r < TILE; r++)
        _Pragma("GCC unroll 4") for (int t = 0; t < TILE; t++) acc[r][t] = _mm512_setzero_ps();
    const int nb = cols / QK_K;
    const __m512i m4 = _mm512_set1_epi8(0x0f);
    for (int b = 0; b < nb; b++) {
        const struct block_q8_K *ab[TILE];
        _Pragma("GCC unroll 4") for (int t = 0; t < T; t++) ab[t] =
            (const struct block_q8_K *)(a + (size_t)(t0 + t) * as) + b;
        _Pragma("GCC unroll 4") for (int r = 0; r < R; r++)
        {
            const struct block_q4_K *wb =
                (const struct block_q4_K *)(w + (size_t)(r0 + r) * ws) + b;
            int16_t sc[8], mn[8];
            q4k_scales(wb->scales, sc, mn);
            const float d = _cvtsh_ss(wb->d), dmin = _cvtsh_ss(wb->dmin);
            /* registers of sub-blocks (0,1), (2,3), (4,5), (6,7), to meet
             * the activations in their own order */
            __m512i wq[4];
            _Pragma("GCC unroll 2") for (int h = 0; h < 2; h++)
            {
                const __m512i q = _mm512_loadu_si512(wb->qs + 64 * h);
                const __m512i lo = _mm512_and_si512(q, m4);
                const __m512i hi = _mm512_and_si512(_mm512_srli_epi16(q, 4), m4);
                wq[2 * h] = _mm512_shuffle_i64x2(lo, hi, 0x44);
                wq[2 * h + 1] = _mm512_shuffle_i64x2(lo, hi, 0xee);
            }
            const __m512i sv[4] = {scale_pair(sc[0], sc[1]), scale_pair(sc[2], sc[3]),
                                   scale_pair(sc[4], sc[5]), scale_pair(sc[6], sc[7])};
            /* mins against the 16-sums: lane g gets min[g / 2] */
            const __m128i m16 = _mm_loadu_si128((const __m128i *)mn);
            const __m256i mv =
                _mm256_inserti128_si256(_mm256_castsi128_si256(_mm_unpacklo_epi16(m16, m16)),
                                        _mm_unpackhi_epi16(m16, m16), 1);
            _Pragma("GCC unroll 4") for (int t = 0; t < T; t++)
            {
                __m512i is = _mm512_setzero_si512();
                _Pragma("GCC unroll 4") for (int k = 0; k < 4; k++) is = _mm512_dpwssd_epi32(
                    is, _mm512_maddubs_epi16(wq[k], _mm512_loadu_si512(ab[t]->qs + 64 * k)), sv[k]);
                const __m256i msum =
                    _mm256_madd_epi16(_mm256_loadu_si256((const __m256i *)ab[t]->bsums), mv);
                acc[r][t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(is), _mm512_set1_ps(d * ab[t]->d),
                                            acc[r][t]);
                acc[r][t] = _mm512_fnmadd_ps(_mm512_cvtepi32_ps(_mm512_zextsi256_si512(msum)),
                                             _mm512_set1_ps(dmin * ab[t]->d), acc[r][t]);
            }
        }
    }
    _Pragma("GCC unroll 4") for (int r = 0; r < R; r++)
        _Pragma("GCC unroll 4") for (int t = 0; t < T; t++)
            put(y, ldy, r0 + r, t0 + t, _mm512_reduce_add_ps(acc[r][t]), accumulate);
}

AI void tile_q6_K(int cols, const uint8_t *w, size_t ws, int r0, int R, const uint8_t *a, size_t as,
                  int t0, int T, float *y, size_t ldy, int accumulate)
{
    __m512 acc[TILE][TILE];
    _Pragma("GCC unroll 4") for (int r = 0; r < TILE; r++)
        _Pragma("GCC unroll 4") for (int t = 0; t < TILE; t++) acc[r][t] = _mm512_setzero_ps();
    const int nb = cols / QK_K;
    const __m512i m4 = _mm512_set1_epi8(0x0f), m3 = _mm512_set1_epi8(3);
    /* int16 lane i of a 64-byte register belongs to sub-block i / 8 */
    const __m512i rep8 = _mm512_set_epi16(3, 3, 3, 3, 3, 3, 3, 3, 2, 2, 2, 2, 2, 2, 2, 2, 1, 1, 1,
                                          1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0);
    for (int b = 0; b < nb; b++) {
        const struct block_q8_K *ab[TILE];
        _Pragma("GCC unroll 4") for (int t = 0; t < T; t++) ab[t] =
            (const struct block_q8_K *)(a + (size_t)(t0 + t) * as) + b;
        _Pragma("GCC unroll 4") for (int r = 0; r < R; r++)
        {
            const struct block_q6_K *wb =
                (const struct block_q6_K *)(w + (size_t)(r0 + r) * ws) + b;
            const float d = _cvtsh_ss(wb->d);
            const __m256i sc16 = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)wb->scales));
            const __m512i s16 = _mm512_castsi256_si512(sc16);
            __m512i wq[4], sv[4];
            _Pragma("GCC unroll 2") for (int h = 0; h < 2; h++)
            {
                const __m512i L = _mm512_loadu_si512(wb->ql + 64 * h);
                const __m256i H = _mm256_loadu_si256((const __m256i *)(wb->qh + 32 * h));
                const __m512i Hlo =
                    _mm512_inserti64x4(_mm512_castsi256_si512(H), _mm256_srli_epi16(H, 2), 1);
                const __m512i Hhi = _mm512_inserti64x4(
                    _mm512_castsi256_si512(_mm256_srli_epi16(H, 4)), _mm256_srli_epi16(H, 6), 1);
                wq[2 * h] = _mm512_or_si512(_mm512_and_si512(L, m4),
                                            _mm512_slli_epi16(_mm512_and_si512(Hlo, m3), 4));
                wq[2 * h + 1] = _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi16(L, 4), m4),
                                                _mm512_slli_epi16(_mm512_and_si512(Hhi, m3), 4));
                sv[2 * h] = _mm512_permutexvar_epi16(
                    _mm512_add_epi16(rep8, _mm512_set1_epi16((short)(8 * h))), s16);
                sv[2 * h + 1] = _mm512_permutexvar_epi16(
                    _mm512_add_epi16(rep8, _mm512_set1_epi16((short)(8 * h + 4))), s16);
            }
            _Pragma("GCC unroll 4") for (int t = 0; t < T; t++)
            {
                /* quants are stored as q + 32: start from -32 * sum_s scale_s * bsum_s */
                const __m256i cm =
                    _mm256_madd_epi16(_mm256_loadu_si256((const __m256i *)ab[t]->bsums), sc16);
                __m512i is = _mm512_zextsi256_si512(
                    _mm256_sub_epi32(_mm256_setzero_si256(), _mm256_slli_epi32(cm, 5)));
                _Pragma("GCC unroll 4") for (int k = 0; k < 4; k++) is = _mm512_dpwssd_epi32(
                    is, _mm512_maddubs_epi16(wq[k], _mm512_loadu_si512(ab[t]->qs + 64 * k)), sv[k]);
                acc[r][t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(is), _mm512_set1_ps(d * ab[t]->d),
                                            acc[r][t]);
            }
        }
    }
    _Pragma("GCC unroll 4") for (int r = 0; r < R; r++)
        _Pragma("GCC unroll 4") for (int t = 0; t < T; t++)
            put(y, ldy, r0 + r, t0 + t, _mm512_reduce_add_ps(acc[r][t]), accumulate);
}

MM_DRIVER(mm_q4_K, tile_q4_K, uint8_t)
MM_DRIVER(mm_q6_K, tile_q6_K, uint8_t)

/* Q8_0 activations, bit for bit the reference's: d = max|x| / 127 (NaN
 * ignored), q = roundf(x / d) (ties away from zero) clamped to int8, NaN 0. */
static void act_q8_0(const float *x, void *dst, int cols)
{
    uint8_t *out = dst;
    const __m512 sign = _mm512_set1_ps(-0.0f), half = _mm512_set1_ps(0.5f);
    for (int b = 0; b < cols / 32; b++, x += 32, out += 34) {
        const __m512 v0 = _mm512_loadu_ps(x), v1 = _mm512_loadu_ps(x + 16);
        __m512 m = _mm512_max_ps(_mm512_andnot_ps(sign, v0), _mm512_setzero_ps());
        m = _mm512_max_ps(_mm512_andnot_ps(sign, v1), m);
        const float amax = _mm512_reduce_max_ps(m);
        const float d = amax / 127.0f;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        const uint16_t h = util_fp32_to_fp16(d);
        __builtin_memcpy(out, &h, 2);
        const __m512 idv = _mm512_set1_ps(id);
        _Pragma("GCC unroll 2") for (int k = 0; k < 2; k++) {
            const __m512 v = _mm512_mul_ps(k ? v1 : v0, idv);
            const __m512 t = _mm512_roundscale_ps(v, _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC);
            const __m512 frac = _mm512_andnot_ps(sign, _mm512_sub_ps(v, t));
            const __mmask16 up = _mm512_cmp_ps_mask(frac, half, _CMP_GE_OQ);
            /* t + sign(v) where the fraction is at least one half */
            __m512 r = _mm512_mask_add_ps(t, up, t, _mm512_or_ps(_mm512_set1_ps(1.0f), _mm512_and_ps(sign, v)));
            r = _mm512_min_ps(_mm512_max_ps(r, _mm512_set1_ps(-128.0f)), _mm512_set1_ps(127.0f));
            r = _mm512_maskz_mov_ps(_mm512_cmp_ps_mask(v, v, _CMP_ORD_Q), r);
            _mm_storeu_si128((__m128i *)(out + 2 + 16 * k), _mm512_cvtepi32_epi8(_mm512_cvttps_epi32(r)));
        }
    }
}

/*
 * Packed Q4_K: 16 rows per group, one row per 32-bit lane, as for Q4_0. Per
 * super-block a group holds the rows' d and dmin (fp16, 32 bytes each), the
 * 8 sub-block scales (8 x 16 bytes), the mins as int16 pairs of sub-blocks
 * (2p, 2p + 1) (4 x 64 bytes) and the quants, 32 registers: chunk c, dword
 * m holds 4 bytes of each row (low nibbles: sub-block 2c, high: 2c + 1).
 * Integer sums per sub-block are scaled in 32-bit lanes, so a super-block
 * is exact in integers until its two float multiply-adds.
 */
#define QK_PACKED 2496
#define QK_SC 64
#define QK_MN 192
#define QK_Q 448
#define GTK 4


/* The Q8_K blocks b of the tile's tokens t0 .. t0 + T - 1 (lanes past T
 * repeat token t0, so their loads stay in bounds), and their integer sums
 * zeroed. */
AI void q8k_tile(const uint8_t *a, size_t as, int t0, int T, int b, const struct block_q8_K **ab,
                 __m512i *is)
{
    _Pragma("GCC unroll 4") for (int t = 0; t < GTK; t++) {
        ab[t] = (const struct block_q8_K *)(a + (size_t)(t0 + (t < T ? t : 0)) * as) + b;
        is[t] = _mm512_setzero_si512();
    }
}

static size_t pack_bytes_q4_K(int rows, int cols)
{
    return packed_size(rows, cols / QK_K, QK_PACKED);
}

static void put_q4_K(const uint8_t *bytes, int i, uint8_t *out)
{
    const struct block_q4_K *blk = (const struct block_q4_K *)(const void *)bytes;
    int16_t sc[8], mn[8];
    q4k_scales(blk->scales, sc, mn);
    __builtin_memcpy(out + 2 * i, &blk->d, 2);
    __builtin_memcpy(out + 32 + 2 * i, &blk->dmin, 2);
    for (int k = 0; k < 8; k++)
        out[QK_SC + 16 * k + i] = (uint8_t)sc[k];
    for (int p = 0; p < 4; p++) {
        __builtin_memcpy(out + QK_MN + 64 * p + 4 * i, &mn[2 * p], 2);
        __builtin_memcpy(out + QK_MN + 64 * p + 4 * i + 2, &mn[2 * p + 1], 2);
    }
    for (int c = 0; c < 4; c++)
        for (int m = 0; m < 8; m++)
            __builtin_memcpy(out + QK_Q + 512 * c + 64 * m + 4 * i, blk->qs + 32 * c + 4 * m, 4);
}

static void pack_q4_K(const void *src, size_t stride, int rows, int cols, uint8_t *dst)
{
    pack_groups(src, stride, rows, cols / QK_K, sizeof(struct block_q4_K), QK_PACKED, dst,
                put_q4_K);
}

AI void packed_group_q4_K(const uint8_t *g, int nb, const uint8_t *a, size_t as, int t0, int T,
                          float *y, size_t ldy, int r, int accumulate)
{
    __m512 acc[GTK];
    _Pragma("GCC unroll 4") for (int t = 0; t < GTK; t++) acc[t] = _mm512_setzero_ps();
    const __m512i m4 = _mm512_set1_epi8(0x0f);
    for (int b = 0; b < nb; b++) {
        const uint8_t *blk = g + (size_t)b * QK_PACKED;
        _Pragma("GCC unroll 39") for (int l = 0; l < QK_PACKED; l += 64)
            _mm_prefetch((const char *)(blk + 2 * QK_PACKED + l), _MM_HINT_T0);
        const struct block_q8_K *ab[GTK];
        __m512i is[GTK];
        q8k_tile(a, as, t0, T, b, ab, is);
        _Pragma("GCC unroll 1") for (int c = 0; c < 4; c++) {
            __m512i lo[8], hi[8];
            _Pragma("GCC unroll 8") for (int m = 0; m < 8; m++) {
                const __m512i v = _mm512_loadu_si512(blk + QK_Q + 512 * c + 64 * m);
                lo[m] = _mm512_and_si512(v, m4);
                hi[m] = _mm512_and_si512(_mm512_srli_epi16(v, 4), m4);
            }
            const __m512i sl = _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)(blk + QK_SC + 32 * c)));
            const __m512i sh = _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)(blk + QK_SC + 32 * c + 16)));
            _Pragma("GCC unroll 4") for (int t = 0; t < T; t++) {
                const uint8_t *q = (const uint8_t *)ab[t]->qs + 64 * c;
                __m512i dl = _mm512_setzero_si512(), dh = _mm512_setzero_si512();
                _Pragma("GCC unroll 8") for (int m = 0; m < 8; m++) {
                    dl = _mm512_dpbusd_epi32(dl, lo[m], _mm512_set1_epi32(dword_at(q + 4 * m)));
                    dh = _mm512_dpbusd_epi32(dh, hi[m], _mm512_set1_epi32(dword_at(q + 32 + 4 * m)));
                }
                is[t] = _mm512_add_epi32(is[t], _mm512_add_epi32(_mm512_mullo_epi32(dl, sl),
                                                                 _mm512_mullo_epi32(dh, sh)));
            }
        }
        const __m512 dw = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)blk));
        const __m512 dm = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(blk + 32)));
        _Pragma("GCC unroll 4") for (int t = 0; t < T; t++) {
            /* sum_s min_s * (sum of sub-block s's activations), pairs at once */
            const int16_t *bs = ab[t]->bsums;
            __m512i ms = _mm512_setzero_si512();
            _Pragma("GCC unroll 4") for (int p = 0; p < 4; p++) {
                const int32_t pair = (int32_t)(uint16_t)(int16_t)(bs[4 * p] + bs[4 * p + 1]) |
                                     (int32_t)((uint32_t)(uint16_t)(int16_t)(bs[4 * p + 2] + bs[4 * p + 3]) << 16);
                ms = _mm512_add_epi32(ms, _mm512_madd_epi16(_mm512_loadu_si512(blk + QK_MN + 64 * p),
                                                            _mm512_set1_epi32(pair)));
            }
            const __m512 da = _mm512_set1_ps(ab[t]->d);
            acc[t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(is[t]), _mm512_mul_ps(dw, da), acc[t]);
            acc[t] = _mm512_fnmadd_ps(_mm512_cvtepi32_ps(ms), _mm512_mul_ps(dm, da), acc[t]);
        }
    }
    _Pragma("GCC unroll 4") for (int t = 0; t < T; t++) group_out(y, ldy, r, t0 + t, acc[t], accumulate);
}

/* Q4_K for tiles of 2..GTK8 tokens: the group's quants of a chunk are read
 * twice (low nibbles for every token, then high), so that 8 registers of
 * weights, 8 integer sums and 8 accumulators fit the 32 registers, and every
 * register of weights serves 8 tokens instead of 4. The integer sums and
 * the float steps per super-block are packed_group_q4_K's, so a token's
 * result does not depend on the tile. */
#define GTK8 8

AI void packed_tile_q4_K(const uint8_t *g, int nb, const uint8_t *a, size_t as, int t0, int T,
                         float *y, size_t ldy, int r, int accumulate)
{
    __m512 acc[GTK8];
    _Pragma("GCC unroll 8") for (int t = 0; t < GTK8; t++) acc[t] = _mm512_setzero_ps();
    const __m512i m4 = _mm512_set1_epi8(0x0f);
    for (int b = 0; b < nb; b++) {
        const uint8_t *blk = g + (size_t)b * QK_PACKED;
        _Pragma("GCC unroll 39") for (int l = 0; l < QK_PACKED; l += 64)
            _mm_prefetch((const char *)(blk + 2 * QK_PACKED + l), _MM_HINT_T0);
        const struct block_q8_K *ab[GTK8];
        __m512i is[GTK8];
        _Pragma("GCC unroll 8") for (int t = 0; t < GTK8; t++) {
            ab[t] = (const struct block_q8_K *)(a + (size_t)(t0 + (t < T ? t : 0)) * as) + b;
            is[t] = _mm512_setzero_si512();
        }
        _Pragma("GCC unroll 1") for (int c = 0; c < 4; c++) {
            const uint8_t *qc = blk + QK_Q + 512 * c;
            _Pragma("GCC unroll 2") for (int h = 0; h < 2; h++) {
                __m512i W[8];
                _Pragma("GCC unroll 8") for (int m = 0; m < 8; m++) {
                    const __m512i v = _mm512_loadu_si512(qc + 64 * m);
                    W[m] = _mm512_and_si512(h ? _mm512_srli_epi16(v, 4) : v, m4);
                }
                const __m512i sc = _mm512_cvtepu8_epi32(
                    _mm_loadu_si128((const __m128i *)(blk + QK_SC + 32 * c + 16 * h)));
                _Pragma("GCC unroll 8") for (int t = 0; t < T; t++) {
                    const uint8_t *q = (const uint8_t *)ab[t]->qs + 64 * c + 32 * h;
                    __m512i d0 = _mm512_setzero_si512(), d1 = _mm512_setzero_si512();
                    _Pragma("GCC unroll 4") for (int m = 0; m < 8; m += 2) {
                        d0 = _mm512_dpbusd_epi32(d0, W[m], _mm512_set1_epi32(dword_at(q + 4 * m)));
                        d1 = _mm512_dpbusd_epi32(d1, W[m + 1], _mm512_set1_epi32(dword_at(q + 4 * m + 4)));
                    }
                    is[t] = _mm512_add_epi32(is[t], _mm512_mullo_epi32(_mm512_add_epi32(d0, d1), sc));
                }
            }
        }
        const __m512 dw = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)blk));
        const __m512 dm = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(blk + 32)));
        _Pragma("GCC unroll 8") for (int t = 0; t < T; t++) {
            const int16_t *bs = ab[t]->bsums;
            __m512i ms = _mm512_setzero_si512();
            _Pragma("GCC unroll 4") for (int p = 0; p < 4; p++) {
                const int32_t pair = (int32_t)(uint16_t)(int16_t)(bs[4 * p] + bs[4 * p + 1]) |
                                     (int32_t)((uint32_t)(uint16_t)(int16_t)(bs[4 * p + 2] + bs[4 * p + 3]) << 16);
                ms = _mm512_add_epi32(ms, _mm512_madd_epi16(_mm512_loadu_si512(blk + QK_MN + 64 * p),
                                                            _mm512_set1_epi32(pair)));
            }
            const __m512 da = _mm512_set1_ps(ab[t]->d);
            acc[t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(is[t]), _mm512_mul_ps(dw, da), acc[t]);
            acc[t] = _mm512_fnmadd_ps(_mm512_cvtepi32_ps(ms), _mm512_mul_ps(dm, da), acc[t]);
        }
    }
    _Pragma("GCC unroll 8") for (int t = 0; t < T; t++) group_out(y, ldy, r, t0 + t, acc[t], accumulate);
}

/* One token: the k-quant's packed group function ONEFN, as before; 2 or
 * more: tiles of up to GTK8 tokens through TILEFN. */
#define PACKED_K8_DRIVER(NAME, ONEFN, TILEFN)                                                      \
    static void NAME(uint32_t type, int cols, const uint8_t *w, size_t ws, int r0, int r1,         \
                     const void *a, size_t as, int n, float *y, size_t ldy, int accumulate)        \
    {                                                                                              \
        (void)type;                                                                                \
        const int nb = cols / QK_K, ch = chunk_rows(n, GTK8, ws, r0, r1);                          \
        for (int rc = r0; rc < r1; rc += ch) {                                                     \
            const int re = r1 - rc < ch ? r1 : rc + ch;                                            \
            for (int t0 = 0; t0 < n; t0 += GTK8) {                                                 \
                const int T = n - t0 < GTK8 ? n - t0 : GTK8;                                       \
                for (int r = rc; r < re; r += GROUP) {                                             \
                    const uint8_t *g = w + (size_t)(r / GROUP) * ws;                               \
                    if (T == GTK8)                                                                 \
                        TILEFN(g, nb, a, as, t0, GTK8, y, ldy, r, accumulate);                     \
                    else if (T == 1)                                                               \
                        ONEFN(g, nb, a, as, t0, 1, y, ldy, r, accumulate);                         \
                    else                                                                           \
                        TILEFN(g, nb, a, as, t0, T, y, ldy, r, accumulate);                        \
                }                                                                                  \
            }                                                                                      \
        }                                                                                          \
    }

PACKED_K8_DRIVER(mm_packed_q4_K, packed_group_q4_K, packed_tile_q4_K)

/*
 * Packed Q6_K: 16 rows per group, one row per 32-bit lane. Per super-block
 * a group holds the rows' d (fp16, 32 bytes), the 16 sub-block scales
 * (16 x 16 int8) and the quants unpacked to one byte each (0..63, stored as
 * q + 32), sub-block s's dword m of every row in register 4s + m. Each
 * sub-block's integer sum starts from -32 times the sum of its
 * activations, so it is exact before its scale multiplies it.
 */
#define Q6_PACKED 4384
#define Q6_SC 32
#define Q6_Q 288

static size_t pack_bytes_q6_K(int rows, int cols)
{
    return packed_size(rows, cols / QK_K, Q6_PACKED);
}

static void put_q6_K(const uint8_t *bytes, int i, uint8_t *out)
{
    const struct block_q6_K *blk = (const struct block_q6_K *)(const void *)bytes;
    __builtin_memcpy(out + 2 * i, &blk->d, 2);
    for (int k = 0; k < 16; k++)
        out[Q6_SC + 16 * k + i] = (uint8_t)blk->scales[k];
    for (int j = 0; j < QK_K; j++) {
        const int h = j / 128, e = j % 128, k = e / 32, l = e % 32;
        const uint8_t lo = blk->ql[64 * h + 32 * (k & 1) + l];
        const int q = (k < 2 ? lo & 0x0f : lo >> 4) | ((blk->qh[32 * h + l] >> (2 * k)) & 3) << 4;
        /* sub-block j / 16, dword (j % 16) / 4, byte j % 4 of row i */
        out[Q6_Q + 64 * (j / 4) + 4 * i + j % 4] = (uint8_t)q;
    }
}

static void pack_q6_K(const void *src, size_t stride, int rows, int cols, uint8_t *dst)
{
    pack_groups(src, stride, rows, cols / QK_K, sizeof(struct block_q6_K), Q6_PACKED, dst,
                put_q6_K);
}

AI void packed_group_q6_K(const uint8_t *g, int nb, const uint8_t *a, size_t as, int t0, int T,
                          float *y, size_t ldy, int r, int accumulate)
{
    __m512 acc[GTK];
    _Pragma("GCC unroll 4") for (int t = 0; t < GTK; t++) acc[t] = _mm512_setzero_ps();
    for (int b = 0; b < nb; b++) {
        const uint8_t *blk = g + (size_t)b * Q6_PACKED;
        const struct block_q8_K *ab[GTK];
        __m512i is[GTK];
        q8k_tile(a, as, t0, T, b, ab, is);
        _Pragma("GCC unroll 1") for (int sb = 0; sb < 16; sb++) {
            const uint8_t *wq = blk + Q6_Q + 256 * sb;
            _Pragma("GCC unroll 4") for (int l = 0; l < 256; l += 64)
                _mm_prefetch((const char *)(wq + PF_BYTES + l), _MM_HINT_T0);
            __m512i W[4];
            _Pragma("GCC unroll 4") for (int m = 0; m < 4; m++) W[m] = _mm512_loadu_si512(wq + 64 * m);
            const __m512i sc = _mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)(blk + Q6_SC + 16 * sb)));
            _Pragma("GCC unroll 4") for (int t = 0; t < T; t++) {
                const uint8_t *q = (const uint8_t *)ab[t]->qs + 16 * sb;
                __m512i d = _mm512_set1_epi32(-32 * ab[t]->bsums[sb]);
                _Pragma("GCC unroll 4") for (int m = 0; m < 4; m++)
                    d = _mm512_dpbusd_epi32(d, W[m], _mm512_set1_epi32(dword_at(q + 4 * m)));
                is[t] = _mm512_add_epi32(is[t], _mm512_mullo_epi32(d, sc));
            }
        }
        const __m512 dw = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)blk));
        _Pragma("GCC unroll 4") for (int t = 0; t < T; t++)
            acc[t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(is[t]), _mm512_mul_ps(dw, _mm512_set1_ps(ab[t]->d)),
                                     acc[t]);
    }
    _Pragma("GCC unroll 4") for (int t = 0; t < T; t++) group_out(y, ldy, r, t0 + t, acc[t], accumulate);
}

/* Q6_K for tiles of 2..GTK8 tokens: packed_group_q6_K's steps with 8
 * tokens per register of weights (4 weight registers leave room). */
AI void packed_tile_q6_K(const uint8_t *g, int nb, const uint8_t *a, size_t as, int t0, int T,
                         float *y, size_t ldy, int r, int accumulate)
{
    __m512 acc[GTK8];
    _Pragma("GCC unroll 8") for (int t = 0; t < GTK8; t++) acc[t] = _mm512_setzero_ps();
    for (int b = 0; b < nb; b++) {
        const uint8_t *blk = g + (size_t)b * Q6_PACKED;
        const struct block_q8_K *ab[GTK8];
        __m512i is[GTK8];
        _Pragma("GCC unroll 8") for (int t = 0; t < GTK8; t++) {
            ab[t] = (const struct block_q8_K *)(a + (size_t)(t0 + (t < T ? t : 0)) * as) + b;
            is[t] = _mm512_setzero_si512();
        }
        _Pragma("GCC unroll 1") for (int sb = 0; sb < 16; sb++) {
            const uint8_t *wq = blk + Q6_Q + 256 * sb;
            _Pragma("GCC unroll 4") for (int l = 0; l < 256; l += 64)
                _mm_prefetch((const char *)(wq + PF_BYTES + l), _MM_HINT_T0);
            __m512i W[4];
            _Pragma("GCC unroll 4") for (int m = 0; m < 4; m++) W[m] = _mm512_loadu_si512(wq + 64 * m);
            const __m512i sc = _mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)(blk + Q6_SC + 16 * sb)));
            _Pragma("GCC unroll 8") for (int t = 0; t < T; t++) {
                const uint8_t *q = (const uint8_t *)ab[t]->qs + 16 * sb;
                __m512i d = _mm512_set1_epi32(-32 * ab[t]->bsums[sb]);
                _Pragma("GCC unroll 4") for (int m = 0; m < 4; m++)
                    d = _mm512_dpbusd_epi32(d, W[m], _mm512_set1_epi32(dword_at(q + 4 * m)));
                is[t] = _mm512_add_epi32(is[t], _mm512_mullo_epi32(d, sc));
            }
        }
        const __m512 dw = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)blk));
        _Pragma("GCC unroll 8") for (int t = 0; t < T; t++)
            acc[t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(is[t]), _mm512_mul_ps(dw, _mm512_set1_ps(ab[t]->d)),
                                     acc[t]);
    }
    _Pragma("GCC unroll 8") for (int t = 0; t < T; t++) group_out(y, ldy, r, t0 + t, acc[t], accumulate);
}

PACKED_K8_DRIVER(mm_packed_q6_K, packed_group_q6_K, packed_tile_q6_K)

/* Attention's gathered rows: the set's own dot product and axpy, inlined,
 * so each result is the one the single call gives. */
static void dot_f32_gather(int n, const float *q, const float *base, size_t stride, const int *idx,
                           int count, float *s)
{
    if (n < SIMD_W) {
        /* dot_f32 of a row shorter than a vector: its four sums are zero and
         * the products are added one at a time; here without the sums */
        for (int i = 0; i < count; i++) {
            const float *k = base + (size_t)idx[i] * stride;
            float r = 0.0f;
            for (int j = 0; j < n; j++)
                r += q[j] * k[j];
            s[i] = r;
        }
        return;
    }
    for (int i = 0; i < count; i++)
        s[i] = dot_f32(n, q, base + (size_t)idx[i] * stride);
}

static void axpy_gather(int n, const float *e, const float *base, size_t stride, const int *idx,
                        int count, float *y)
{
    if (n == 8) {
        /* the same, a fixed width the compiler keeps in one register */
        float acc[8];
        for (int j = 0; j < 8; j++)
            acc[j] = y[j];
        for (int i = 0; i < count; i++) {
            const float *x = base + (size_t)idx[i] * stride;
            const float a = e[i];
            for (int j = 0; j < 8; j++)
                acc[j] += a * x[j];
        }
        for (int j = 0; j < 8; j++)
            y[j] = acc[j];
        return;
    }
    if (n < SIMD_W) {
        /* axpy's element-wise tail, the accumulator kept in registers */
        float acc[SIMD_W];
        for (int j = 0; j < n; j++)
            acc[j] = y[j];
        for (int i = 0; i < count; i++) {
            const float *x = base + (size_t)idx[i] * stride;
            const float a = e[i];
            for (int j = 0; j < n; j++)
                acc[j] += a * x[j];
        }
        for (int j = 0; j < n; j++)
            y[j] = acc[j];
        return;
    }
    for (int i = 0; i < count; i++)
        axpy(n, e[i], base + (size_t)idx[i] * stride, y);
}

const struct kern_isa kern_isa_avx512 = {
    .name = "avx512",
    .dot_f32 = dot_f32,
    .dot_f32_x4 = dot_f32_x4,
    .axpy = axpy,
    .mm =
        {
            /* f32 activations; kernels.c swaps in kern_gemm_bf16_dp for
             * BF16 where the CPU has avx512_bf16 */
            [DTYPE_F32] = {DTYPE_F32, kern_gemm_f32},
            [DTYPE_F16] = {DTYPE_F32, kern_gemm_f16},
            [DTYPE_BF16] = {DTYPE_F32, kern_gemm_bf16},
            [DTYPE_Q8_0] = {DTYPE_Q8_0, mm_q8_0},
            [DTYPE_Q4_0] = {DTYPE_Q8_0, mm_q4_0},
            [DTYPE_Q4_K] = {DTYPE_Q8_K, mm_q4_K},
            [DTYPE_Q6_K] = {DTYPE_Q8_K, mm_q6_K},
            [DTYPE_Q4_1] = {DTYPE_Q8_0, kernels_avx512y_mm_q4_1},
            [DTYPE_Q5_0] = {DTYPE_Q8_0, kernels_avx512y_mm_q5_0},
            [DTYPE_Q5_1] = {DTYPE_Q8_0, kernels_avx512y_mm_q5_1},
            [DTYPE_Q5_K] = {DTYPE_Q8_K, kernels_avx512y_k_mm_q5_K},
        },
    .act_quantize = {[DTYPE_Q8_0] = act_q8_0, [DTYPE_Q8_K] = kern_gemm_act_q8_K,
                     [DTYPE_BF16] = kern_gemm_act_bf16},
    .pack_bytes = {[DTYPE_Q4_0] = pack_bytes_q4_0, [DTYPE_Q8_0] = pack_bytes_q8_0,
                   [DTYPE_Q4_K] = pack_bytes_q4_K, [DTYPE_Q6_K] = pack_bytes_q6_K,
                   [DTYPE_Q4_1] = kernels_avx512y_pack_bytes_q4_1,
                   [DTYPE_Q5_0] = kernels_avx512y_pack_bytes_q5_0,
                   [DTYPE_Q5_1] = kernels_avx512y_pack_bytes_q5_1,
                   [DTYPE_Q5_K] = kernels_avx512y_k_pack_bytes_q5_K},
    .pack = {[DTYPE_Q4_0] = pack_q4_0, [DTYPE_Q8_0] = pack_q8_0, [DTYPE_Q4_K] = pack_q4_K,
             [DTYPE_Q6_K] = pack_q6_K, [DTYPE_Q4_1] = kernels_avx512y_pack_q4_1,
             [DTYPE_Q5_0] = kernels_avx512y_pack_q5_0, [DTYPE_Q5_1] = kernels_avx512y_pack_q5_1,
             [DTYPE_Q5_K] = kernels_avx512y_k_pack_q5_K},
    .mm_packed = {[DTYPE_Q4_0] = mm_one_q4_0, [DTYPE_Q8_0] = mm_one_q8_0,
                  [DTYPE_Q4_K] = mm_packed_q4_K, [DTYPE_Q6_K] = mm_packed_q6_K,
                  [DTYPE_Q4_1] = kernels_avx512y_mm_packed_q4_1,
                  [DTYPE_Q5_0] = kernels_avx512y_mm_packed_q5_0,
                  [DTYPE_Q5_1] = kernels_avx512y_mm_packed_q5_1,
                  [DTYPE_Q5_K] = kernels_avx512y_k_mm_packed_q5_K},
    .dot_f32_gather = dot_f32_gather,
    .axpy_gather = axpy_gather,
};
#endif
