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
 */
#ifndef STRIX_KERNELS_AVX2_H
#define STRIX_KERNELS_AVX2_H

#include <immintrin.h>
#include <stddef.h>
#include <stdint.h>

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

/* kernels_avx2_k.c: Q4_K and Q6_K, rows as stored (kernels.h: kern_mm_fn) and
 * packed (pack_bytes, pack, mm_packed). */
void kernels_avx2_k_mm_q4_K(uint32_t type, int cols, const uint8_t *w, size_t ws, int r0, int r1,
                            const void *a, size_t as, int n, float *y, size_t ldy, int accumulate);
void kernels_avx2_k_mm_q6_K(uint32_t type, int cols, const uint8_t *w, size_t ws, int r0, int r1,
                            const void *a, size_t as, int n, float *y, size_t ldy, int accumulate);
size_t kernels_avx2_k_pack_bytes_q4_K(int rows, int cols);
void kernels_avx2_k_pack_q4_K(const void *src, size_t stride, int rows, int cols, uint8_t *dst);
void kernels_avx2_k_mm_packed_q4_K(uint32_t type, int cols, const uint8_t *w, size_t ws, int r0,
                                   int r1, const void *a, size_t as, int n, float *y, size_t ldy,
                                   int accumulate);
size_t kernels_avx2_k_pack_bytes_q6_K(int rows, int cols);
void kernels_avx2_k_pack_q6_K(const void *src, size_t stride, int rows, int cols, uint8_t *dst);
void kernels_avx2_k_mm_packed_q6_K(uint32_t type, int cols, const uint8_t *w, size_t ws, int r0,
                                   int r1, const void *a, size_t as, int n, float *y, size_t ldy,
                                   int accumulate);

#endif
