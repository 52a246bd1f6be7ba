/*
 * kernels_avx2.h - what the avx2 set's files (kernels_avx2.c, kernels_avx2_k.c,
 * each compiled with the set's flags) share: the packed layouts' common
 * shape, small inline helpers and the k-quant entry points the set's table
 * names. Include only from files compiled with AVX2, FMA and F16C.
 *
 * Packed layouts (model/pack.c asks for whole groups of 16 rows) are, for
 * this set, two sub-groups of 8 rows, the first for every block of the row
 * and then the second, so a thread's rows are one forward stream. Within a
 * sub-group's block, 32-bit lane i of each 32-byte register holds 4 quants
 * of row i: one broadcast of 4 activations meets all 8 rows, integer sums
 * stay in the lanes, and no horizontal sums are needed.
 *
 * The same files build two sets: plain avx2 (AVX2, FMA, F16C) and, with
 * AVX2_VNNI defined to 1 and -mavxvnni (kernels_avxvnni*.c include them),
 * avxvnni, whose byte products use VEX-encoded vpdpbusd. Integer sums are
 * exact either way, so both sets give the same bits. AVX2_NAME gives each
 * build's exported symbols their own names. A third build (AVX2_VNNI 2,
 * kernels_avx512y*.c, the EVEX-encoded vpdpbusd on ymm) gives the avx512 set
 * the types it has no kernels of its own for (AVX2_Q_DECL).
 */
#ifndef STRIX_KERNELS_AVX2_H
#define STRIX_KERNELS_AVX2_H

#include <immintrin.h>
#include <stddef.h>
#include <stdint.h>

#ifndef AVX2_VNNI
#define AVX2_VNNI 0
#endif
#if AVX2_VNNI == 2 /* EVEX vpdpbusd (AVX-512 VL + VNNI): kernels_avx512y*.c */
#define AVX2_NAME(x) kernels_avx512y_##x
#define AVX2_DPBUSD _mm256_dpbusd_epi32
#elif AVX2_VNNI
#define AVX2_NAME(x) kernels_avxvnni_##x
#define AVX2_DPBUSD _mm256_dpbusd_avx_epi32
#else
#define AVX2_NAME(x) kernels_avx2_##x
#endif

#define AVX2_GROUP 16 /* rows per packed group */
#define AVX2_SUB 8    /* rows per sub-group, one per 32-bit lane */
#ifndef AVX2_PF_BYTES
#define AVX2_PF_BYTES 4096 /* how far ahead of the loads to prefetch */
#endif

static inline __attribute__((always_inline)) int32_t avx2_dword(const uint8_t *p)
{
    int32_t v;
    __builtin_memcpy(&v, p, 4);
    return v;
}

/* An empty statement GCC must see v computed for: it keeps a chain of
 * integer adds in the written order instead of computing every product
 * first and spilling them (which costs a third of the speed). */
#define AVX2_CHAIN(v) __asm__("" : "+x"(v))

/* 4 bytes at p in every 32-bit lane. */
static inline __attribute__((always_inline)) __m256i avx2_bcast4(const uint8_t *p)
{
    return _mm256_set1_epi32(avx2_dword(p));
}

/* acc + the sums of 4 products of unsigned bytes u and signed bytes s, per
 * 32-bit lane. Without VNNI through int16 pairs: the caller keeps
 * |u0 s0 + u1 s1| < 32768 (vpmaddubsw saturates). */
static inline __attribute__((always_inline)) __m256i avx2_dpbusd(__m256i acc, __m256i u, __m256i s)
{
#if AVX2_VNNI
    return AVX2_DPBUSD(acc, u, s);
#else
    return _mm256_add_epi32(acc, _mm256_madd_epi16(_mm256_maddubs_epi16(u, s), _mm256_set1_epi16(1)));
#endif
}

/* The loop of every packed driver (kernels_avx2.c, kernels_avx2_k.c): token
 * tiles of TILE (the last one may be narrower), and in each the sub-groups
 * of AVX2_SUB rows in [r0, r1), sg pointing at the sub-group's packed bytes
 * (SUB bytes each, two sub-groups to a group of ws bytes). PREP runs once
 * per tile; SUB_CALL(ARG, T) runs one sub-group on T tokens and is expanded
 * with T = TILE and T = 1 as constants, so those tiles' loops unroll. Reads
 * the driver's n, r0, r1, w and ws; t0, T, r and sg are the loop's. */
#define AVX2_PACKED_LOOP(TILE, SUB, PREP, SUB_CALL, ARG)                                           \
    for (int t0 = 0; t0 < n; t0 += (TILE)) {                                                       \
        const int T = n - t0 < (TILE) ? n - t0 : (TILE);                                           \
        PREP;                                                                                      \
        for (int r = r0; r < r1; r += AVX2_SUB) {                                                  \
            const uint8_t *sg = w + (size_t)(r / AVX2_GROUP) * ws + (r / AVX2_SUB % 2) * (SUB);    \
            if (T == (TILE))                                                                       \
                SUB_CALL(ARG, TILE);                                                               \
            else if (T == 1)                                                                       \
                SUB_CALL(ARG, 1);                                                                  \
            else                                                                                   \
                SUB_CALL(ARG, T);                                                                  \
        }                                                                                          \
    }

/* Writes (or adds) the 8 rows r..r+7 of token t. */
static inline __attribute__((always_inline)) void avx2_out8(float *y, size_t ldy, int r, int t,
                                                            __m256 v, int accumulate)
{
    float *dst = y + (size_t)t * ldy + r;
    if (accumulate)
        v = _mm256_add_ps(_mm256_loadu_ps(dst), v);
    _mm256_storeu_ps(dst, v);
}

/* Prefetches `bytes` from p + AVX2_PF_BYTES on, a line at a time. */
static inline __attribute__((always_inline)) void avx2_prefetch(const uint8_t *p, int bytes)
{
    for (int l = 0; l < bytes; l += 64)
        _mm_prefetch((const char *)(p + AVX2_PF_BYTES + l), _MM_HINT_T0);
}

/* kernels_avx2_k.c: Q4_K, Q5_K and Q6_K, rows as stored (kernels.h:
 * kern_mm_fn) and packed (pack_bytes, pack, mm_packed). */
#define AVX2_K_DECL(T)                                                                             \
    void AVX2_NAME(k_mm_##T)(uint32_t type, int cols, const uint8_t *w, size_t ws, int r0, int r1, \
                             const void *a, size_t as, int n, float *y, size_t ldy,                \
                             int accumulate);                                                      \
    size_t AVX2_NAME(k_pack_bytes_##T)(int rows, int cols);                                        \
    void AVX2_NAME(k_pack_##T)(const void *src, size_t stride, int rows, int cols, uint8_t *dst);  \
    void AVX2_NAME(k_mm_packed_##T)(uint32_t type, int cols, const uint8_t *w, size_t ws, int r0,  \
                                    int r1, const void *a, size_t as, int n, float *y, size_t ldy, \
                                    int accumulate);
AVX2_K_DECL(q4_K)
AVX2_K_DECL(q5_K)
AVX2_K_DECL(q6_K)


/* kernels_avx2.c, exported from the AVX2_VNNI 2 build only: the 32-blocks
 * the avx512 set borrows. */
#define AVX2_Q_DECL(T)                                                                             \
    void AVX2_NAME(mm_##T)(uint32_t type, int cols, const uint8_t *w, size_t ws, int r0, int r1,   \
                           const void *a, size_t as, int n, float *y, size_t ldy, int accumulate); \
    size_t AVX2_NAME(pack_bytes_##T)(int rows, int cols);                                          \
    void AVX2_NAME(pack_##T)(const void *src, size_t stride, int rows, int cols, uint8_t *dst);    \
    void AVX2_NAME(mm_packed_##T)(uint32_t type, int cols, const uint8_t *w, size_t ws, int r0,    \
                                  int r1, const void *a, size_t as, int n, float *y, size_t ldy,   \
                                  int accumulate);
#if AVX2_VNNI == 2
AVX2_Q_DECL(q4_1)
AVX2_Q_DECL(q5_0)
AVX2_Q_DECL(q5_1)
#endif

#endif
