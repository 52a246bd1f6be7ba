/*
 * kernels_kv_avx2.c - the avx2 set's reads of an F16, Q8_0 or Q4_0 KV cache
 * (kernels_kv.h), the avx512 file's method on 256-bit registers: F16 rows
 * converted 8 at a time (F16C); Q8_0 and Q4_0 blocks against the Q8_0 query
 * with vpmaddubsw + vpmaddwd (no product pair exceeds 2 * 127 * 127, so the
 * 16-bit sums never saturate); values widened to floats and added, scaled by
 * e[i], into a register-held slice of y. Compiled with the set's flags;
 * kernels_kv.c calls it only when the CPU runs the set.
 */
#include "kernels/kernels_kv.h"

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#include <string.h>

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
    __m256 acc = _mm256_setzero_ps();
    int j = 0;
    for (; j + 8 <= n; j += 8) {
        const __m256 kv = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(k + 2 * (size_t)j)));
        acc = _mm256_fmadd_ps(kv, _mm256_loadu_ps(q + j), acc);
    }
    float s = hsum8(acc);
    for (; j < n; j++) {
        uint16_t h;
        memcpy(&h, k + 2 * (size_t)j, 2);
        s += f16s(h) * q[j];
    }
    return s;
}

/* Signed bytes a . b in eight 32-bit sums (|a| unsigned times b with a's sign). */
static inline __m256i dot_i8(__m256i a, __m256i b)
{
    const __m256i p16 = _mm256_maddubs_epi16(_mm256_sign_epi8(a, a), _mm256_sign_epi8(b, a));
    return _mm256_madd_epi16(p16, _mm256_set1_epi16(1));
}

static float dot_q8_0(int nb, const struct block_q8_0 *k, const struct block_q8_0 *q)
{
    __m256 acc = _mm256_setzero_ps();
    for (int b = 0; b < nb; b++) {
        const __m256i kx = _mm256_loadu_si256((const __m256i *)k[b].qs);
        const __m256i qy = _mm256_loadu_si256((const __m256i *)q[b].qs);
        const __m256 d = _mm256_set1_ps(f16s(k[b].d) * f16s(q[b].d));
        acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(dot_i8(kx, qy)), d, acc);
    }
    return hsum8(acc);
}

static float dot_q4_0(int nb, const struct block_q4_0 *k, const struct block_q8_0 *q)
{
    __m256 acc = _mm256_setzero_ps();
    const __m256i low = _mm256_set1_epi8(0x0f), eight = _mm256_set1_epi8(8);
    for (int b = 0; b < nb; b++) {
        const __m128i raw = _mm_loadu_si128((const __m128i *)k[b].qs);
        const __m256i nib = _mm256_and_si256(_mm256_set_m128i(_mm_srli_epi16(raw, 4), raw), low);
        const __m256i qy = _mm256_loadu_si256((const __m256i *)q[b].qs);
        /* quants n - 8 in -8..7, signed */
        const __m256i p = dot_i8(_mm256_sub_epi8(nib, eight), qy);
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
    int j = 0;
    for (; j + 8 <= n; j += 8) {
        __m256 acc = _mm256_loadu_ps(y + j);
        for (int i = 0; i < count; i++) {
            const uint8_t *row = base + (size_t)idx[i] * stride + 2 * (size_t)j;
            const __m256 v = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)row));
            acc = _mm256_fmadd_ps(_mm256_set1_ps(e[i]), v, acc);
        }
        _mm256_storeu_ps(y + j, acc);
    }
    for (; j < n; j++)
        for (int i = 0; i < count; i++) {
            uint16_t h;
            memcpy(&h, base + (size_t)idx[i] * stride + 2 * (size_t)j, 2);
            y[j] += e[i] * f16s(h);
        }
}

static void axpy_q8_0(int n, const float *e, const uint8_t *base, size_t stride, const int *idx,
                      int count, float *y)
{
    for (int b = 0; b < n / QK8_0; b++) {
        float *yb = y + (size_t)b * QK8_0;
        __m256 y0 = _mm256_loadu_ps(yb), y1 = _mm256_loadu_ps(yb + 8);
        __m256 y2 = _mm256_loadu_ps(yb + 16), y3 = _mm256_loadu_ps(yb + 24);
        for (int i = 0; i < count; i++) {
            const struct block_q8_0 *blk =
                (const struct block_q8_0 *)(base + (size_t)idx[i] * stride) + b;
            const __m256 a = _mm256_set1_ps(e[i] * f16s(blk->d));
            const __m128i lo = _mm_loadu_si128((const __m128i *)blk->qs);
            const __m128i hi = _mm_loadu_si128((const __m128i *)(blk->qs + 16));
            y0 = _mm256_fmadd_ps(a, _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(lo)), y0);
            y1 = _mm256_fmadd_ps(a, _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_srli_si128(lo, 8))),
                                 y1);
            y2 = _mm256_fmadd_ps(a, _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(hi)), y2);
            y3 = _mm256_fmadd_ps(a, _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_srli_si128(hi, 8))),
                                 y3);
        }
        _mm256_storeu_ps(yb, y0);
        _mm256_storeu_ps(yb + 8, y1);
        _mm256_storeu_ps(yb + 16, y2);
        _mm256_storeu_ps(yb + 24, y3);
    }
}

static void axpy_q4_0(int n, const float *e, const uint8_t *base, size_t stride, const int *idx,
                      int count, float *y)
{
    const __m128i low = _mm_set1_epi8(0x0f), eight = _mm_set1_epi8(8);
    for (int b = 0; b < n / QK4_0; b++) {
        float *yb = y + (size_t)b * QK4_0;
        __m256 y0 = _mm256_loadu_ps(yb), y1 = _mm256_loadu_ps(yb + 8);
        __m256 y2 = _mm256_loadu_ps(yb + 16), y3 = _mm256_loadu_ps(yb + 24);
        for (int i = 0; i < count; i++) {
            const struct block_q4_0 *blk =
                (const struct block_q4_0 *)(base + (size_t)idx[i] * stride) + b;
            const __m256 a = _mm256_set1_ps(e[i] * f16s(blk->d));
            const __m128i raw = _mm_loadu_si128((const __m128i *)blk->qs);
            const __m128i lo = _mm_sub_epi8(_mm_and_si128(raw, low), eight);
            const __m128i hi = _mm_sub_epi8(_mm_and_si128(_mm_srli_epi16(raw, 4), low), eight);
            y0 = _mm256_fmadd_ps(a, _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(lo)), y0);
            y1 = _mm256_fmadd_ps(a, _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_srli_si128(lo, 8))),
                                 y1);
            y2 = _mm256_fmadd_ps(a, _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(hi)), y2);
            y3 = _mm256_fmadd_ps(a, _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_srli_si128(hi, 8))),
                                 y3);
        }
        _mm256_storeu_ps(yb, y0);
        _mm256_storeu_ps(yb + 8, y1);
        _mm256_storeu_ps(yb + 16, y2);
        _mm256_storeu_ps(yb + 24, y3);
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

static const struct kern_kv kv_avx2 = {"avx2", dot_gather, axpy_gather, NULL, NULL, NULL};
const struct kern_kv *const kern_kv_avx2 = &kv_avx2;
#else
const struct kern_kv *const kern_kv_avx2 = 0;
#endif
