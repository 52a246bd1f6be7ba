/*
 * kernels_kv_avx512.c - the avx512 set's reads of an F16, Q8_0 or Q4_0 KV
 * cache (kernels_kv.h). Keys: F16 rows converted 16 at a time against the
 * F32 query; Q8_0 and Q4_0 blocks against the Q8_0 query with VNNI
 * (vpdpbusd on 32 values), each block's integer sum scaled in a float
 * accumulator. Values: each block (or 16 F16 values) is widened to floats
 * and added, scaled by e[i], into a register-held slice of y, row by row in
 * order. Compiled with the set's flags; kernels_kv.c calls it only when the
 * CPU runs the set.
 */
#include "kernels/kernels_kv.h"

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>

#include "quant/dtype.h"

static inline float f16s(uint16_t h)
{
    return _cvtsh_ss(h);
}

static inline float hsum8(__m256 v)
{
    __m128 lo = _mm256_castps256_ps128(v), hi = _mm256_extractf128_ps(v, 1);
    lo = _mm_add_ps(lo, hi);
    lo = _mm_add_ps(lo, _mm_movehl_ps(lo, lo));
    lo = _mm_add_ss(lo, _mm_movehdup_ps(lo));
    return _mm_cvtss_f32(lo);
}

static float dot_f16(int n, const uint8_t *k, const float *q)
{
    __m512 acc = _mm512_setzero_ps();
    int j = 0;
    for (; j + 16 <= n; j += 16) {
        const __m512 kv = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(k + 2 * (size_t)j)));
        acc = _mm512_fmadd_ps(kv, _mm512_loadu_ps(q + j), acc);
    }
    if (j < n) {
        const __mmask16 m = (__mmask16)((1u << (n - j)) - 1);
        const __m512 kv = _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, k + 2 * (size_t)j));
        acc = _mm512_fmadd_ps(kv, _mm512_maskz_loadu_ps(m, q + j), acc);
    }
    return _mm512_reduce_add_ps(acc);
}

static float dot_q8_0(int nb, const struct block_q8_0 *k, const struct block_q8_0 *q)
{
    __m256 acc = _mm256_setzero_ps();
    for (int b = 0; b < nb; b++) {
        const __m256i kx = _mm256_loadu_si256((const __m256i *)k[b].qs);
        const __m256i qy = _mm256_loadu_si256((const __m256i *)q[b].qs);
        /* |k| (unsigned) times q with k's sign */
        const __m256i p = _mm256_dpbusd_epi32(_mm256_setzero_si256(), _mm256_sign_epi8(kx, kx),
                                              _mm256_sign_epi8(qy, kx));
        const __m256 d = _mm256_set1_ps(f16s(k[b].d) * f16s(q[b].d));
        acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p), d, acc);
    }
    return hsum8(acc);
}

/* A Q4_0 block's 32 quants (0..15) in value order: low nibbles, then high. */
static inline __m256i q4_nibbles(const uint8_t *qs)
{
    const __m128i raw = _mm_loadu_si128((const __m128i *)qs);
    return _mm256_and_si256(_mm256_set_m128i(_mm_srli_epi16(raw, 4), raw), _mm256_set1_epi8(0x0f));
}

static float dot_q4_0(int nb, const struct block_q4_0 *k, const struct block_q8_0 *q)
{
    __m256 acc = _mm256_setzero_ps();
    const __m256i eight = _mm256_set1_epi8(8);
    for (int b = 0; b < nb; b++) {
        const __m256i qy = _mm256_loadu_si256((const __m256i *)q[b].qs);
        /* sum (n - 8) q = sum n q - sum 8 q */
        __m256i p = _mm256_dpbusd_epi32(_mm256_setzero_si256(), q4_nibbles(k[b].qs), qy);
        p = _mm256_sub_epi32(p, _mm256_dpbusd_epi32(_mm256_setzero_si256(), eight, qy));
        const __m256 d = _mm256_set1_ps(f16s(k[b].d) * f16s(q[b].d));
        acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p), d, acc);
    }
    return hsum8(acc);
}

static void dot_gather(uint32_t type, int n, const void *q, const uint8_t *base, size_t stride,
                       const int *idx, int count, float *s)
{
    for (int i = 0; i < count; i++) {
        const uint8_t *row = base + (size_t)idx[i] * stride;
        if (i + 1 < count)
            _mm_prefetch((const char *)(base + (size_t)idx[i + 1] * stride), _MM_HINT_T0);
        switch (type) {
        case DTYPE_F16: s[i] = dot_f16(n, row, q); break;
        case DTYPE_Q8_0: s[i] = dot_q8_0(n / QK8_0, (const void *)row, q); break;
        case DTYPE_Q4_0: s[i] = dot_q4_0(n / QK4_0, (const void *)row, q); break;
        default: s[i] = 0.0f; break;
        }
    }
}

static void axpy_f16(int n, const float *e, const uint8_t *base, size_t stride, const int *idx,
                     int count, float *y)
{
    for (int j = 0; j < n; j += 16) {
        const __mmask16 m = n - j >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << (n - j)) - 1);
        __m512 acc = _mm512_maskz_loadu_ps(m, y + j);
        for (int i = 0; i < count; i++) {
            const uint8_t *row = base + (size_t)idx[i] * stride + 2 * (size_t)j;
            const __m512 v = _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, row));
            acc = _mm512_fmadd_ps(_mm512_set1_ps(e[i]), v, acc);
        }
        _mm512_mask_storeu_ps(y + j, m, acc);
    }
}

static void axpy_q8_0(int n, const float *e, const uint8_t *base, size_t stride, const int *idx,
                      int count, float *y)
{
    for (int b = 0; b < n / QK8_0; b++) {
        float *yb = y + (size_t)b * QK8_0;
        __m512 y0 = _mm512_loadu_ps(yb), y1 = _mm512_loadu_ps(yb + 16);
        for (int i = 0; i < count; i++) {
            const struct block_q8_0 *blk =
                (const struct block_q8_0 *)(base + (size_t)idx[i] * stride) + b;
            const __m512 a = _mm512_set1_ps(e[i] * f16s(blk->d));
            const __m512 v0 =
                _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)blk->qs)));
            const __m512 v1 = _mm512_cvtepi32_ps(
                _mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)(blk->qs + 16))));
            y0 = _mm512_fmadd_ps(a, v0, y0);
            y1 = _mm512_fmadd_ps(a, v1, y1);
        }
        _mm512_storeu_ps(yb, y0);
        _mm512_storeu_ps(yb + 16, y1);
    }
}

static void axpy_q4_0(int n, const float *e, const uint8_t *base, size_t stride, const int *idx,
                      int count, float *y)
{
    const __m128i low = _mm_set1_epi8(0x0f);
    const __m512i eight = _mm512_set1_epi32(8);
    for (int b = 0; b < n / QK4_0; b++) {
        float *yb = y + (size_t)b * QK4_0;
        __m512 y0 = _mm512_loadu_ps(yb), y1 = _mm512_loadu_ps(yb + 16);
        for (int i = 0; i < count; i++) {
            const struct block_q4_0 *blk =
                (const struct block_q4_0 *)(base + (size_t)idx[i] * stride) + b;
            const __m512 a = _mm512_set1_ps(e[i] * f16s(blk->d));
            const __m128i raw = _mm_loadu_si128((const __m128i *)blk->qs);
            const __m512i n0 = _mm512_cvtepu8_epi32(_mm_and_si128(raw, low));
            const __m512i n1 = _mm512_cvtepu8_epi32(_mm_and_si128(_mm_srli_epi16(raw, 4), low));
            y0 = _mm512_fmadd_ps(a, _mm512_cvtepi32_ps(_mm512_sub_epi32(n0, eight)), y0);
            y1 = _mm512_fmadd_ps(a, _mm512_cvtepi32_ps(_mm512_sub_epi32(n1, eight)), y1);
        }
        _mm512_storeu_ps(yb, y0);
        _mm512_storeu_ps(yb + 16, y1);
    }
}

static void axpy_gather(uint32_t type, int n, const float *e, const uint8_t *base, size_t stride,
                        const int *idx, int count, float *y)
{
    switch (type) {
    case DTYPE_F16: axpy_f16(n, e, base, stride, idx, count, y); break;
    case DTYPE_Q8_0: axpy_q8_0(n, e, base, stride, idx, count, y); break;
    case DTYPE_Q4_0: axpy_q4_0(n, e, base, stride, idx, count, y); break;
    default: break;
    }
}

static const struct kern_kv kv_avx512 = {"avx512", dot_gather, axpy_gather};
const struct kern_kv *const kern_kv_avx512 = &kv_avx512;
#else
const struct kern_kv *const kern_kv_avx512 = 0;
#endif
