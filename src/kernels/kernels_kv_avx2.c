/*
 * kernels_kv_avx2.c - the avx2 set's reads of an F16, Q8_0 or Q4_0 KV cache
 * (kernels_kv.h), the avx512 file's method on 256-bit registers: F16 rows
 * converted 8 at a time (F16C); Q8_0 and Q4_0 blocks against the Q8_0 query
 * with vpmaddubsw + vpmaddwd (no product pair exceeds 2 * 127 * 127, so the
 * 16-bit sums never saturate); values widened to floats and added, scaled by
 * e[i], into a register-held slice of y. Compiled with the set's flags;
 * kernels_kv.c calls it only when the CPU runs the set.
 *
 * Grouped tiles as in the avx512 file, on 16 registers: up to 8 heads' key
 * products per cell in 8 accumulators (their lane sums added together by a
 * transposing tree), values 8 at a time into 8 accumulators; element tails
 * of the float types one value at a time. Also the exponential, 8 lanes,
 * and a tile's softmax step for groups dividing 8 (no small-head paths:
 * heads under 16 values take the general loops).
 */
#include "kernels/kernels_kv.h"

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#include <math.h>
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

/* ---- grouped tiles ---- */

#define ALWAYS_INLINE inline __attribute__((always_inline))

static ALWAYS_INLINE __m256 sums8(const __m256 *b)
{
    const __m256 t0 = _mm256_hadd_ps(_mm256_hadd_ps(b[0], b[1]), _mm256_hadd_ps(b[2], b[3]));
    const __m256 t1 = _mm256_hadd_ps(_mm256_hadd_ps(b[4], b[5]), _mm256_hadd_ps(b[6], b[7]));
    return _mm256_add_ps(_mm256_permute2f128_ps(t0, t1, 0x20),
                         _mm256_permute2f128_ps(t0, t1, 0x31));
}

static ALWAYS_INLINE float fval(int f16, const uint8_t *row, int j)
{
    if (f16) {
        uint16_t h;
        memcpy(&h, row + 2 * (size_t)j, 2);
        return f16s(h);
    }
    float v;
    memcpy(&v, row + 4 * (size_t)j, 4);
    return v;
}

/* CN (<= 8 / HB) cells x HB heads of float keys: 8 accumulators, one per
 * (cell, head), each summing its lanes over the columns in order; sums8
 * reduces all eight at once (lane k only from accumulator k, so unused
 * ones change nothing), then the scalar tail. */
static ALWAYS_INLINE void dotg_cells(const int HB, const int CN, const int f16, int n, int G,
                                     const float *q, size_t qs, const uint8_t *base, size_t stride,
                                     const int *idx, float *s)
{
    const int n8 = n & ~7;
    const uint8_t *row[8];
    __m256 acc[8];
    for (int a = 0; a < 8; a++)
        acc[a] = _mm256_setzero_ps();
    for (int c = 0; c < CN; c++)
        row[c] = base + (size_t)idx[c] * stride;
    for (int j = 0; j < n8; j += 8)
        for (int c = 0; c < CN; c++) {
            const __m256 kv =
                f16 ? _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(row[c] + 2 * (size_t)j)))
                    : _mm256_loadu_ps((const float *)(const void *)row[c] + j);
            for (int h = 0; h < HB; h++)
                acc[c * HB + h] =
                    _mm256_fmadd_ps(kv, _mm256_loadu_ps(q + (size_t)h * qs + j), acc[c * HB + h]);
        }
    float t[8];
    _mm256_storeu_ps(t, sums8(acc));
    for (int c = 0; c < CN; c++) {
        float *si = s + (size_t)c * (size_t)G;
        for (int h = 0; h < HB; h++)
            si[h] = t[c * HB + h];
        for (int j = n8; j < n; j++) {
            const float kj = fval(f16, row[c], j);
            for (int h = 0; h < HB; h++)
                si[h] += kj * q[(size_t)h * qs + j];
        }
    }
}

static ALWAYS_INLINE void dotg_float(const int HB, const int f16, int n, int G, const float *q,
                                     size_t qs, const uint8_t *base, size_t stride, const int *idx,
                                     int count, float *s)
{
    const int C = 8 / HB;
    int i = 0;
    for (; i + C <= count; i += C) {
        for (int c = 0; c < C && i + C + c < count; c++)
            _mm_prefetch((const char *)(base + (size_t)idx[i + C + c] * stride), _MM_HINT_T0);
        dotg_cells(HB, C, f16, n, G, q, qs, base, stride, idx + i, s + (size_t)i * (size_t)G);
    }
    if (i < count)
        dotg_cells(HB, count - i, f16, n, G, q, qs, base, stride, idx + i,
                   s + (size_t)i * (size_t)G);
}

#define DQ_MAX 16 /* blocks of a head whose scales dotg_block converts once */

static ALWAYS_INLINE void dotg_block(const int HB, const int q4, int n, int G, const uint8_t *q,
                                     size_t qs, const uint8_t *base, size_t stride, const int *idx,
                                     int count, float *s)
{
    const int nb = n / QK8_0;
    const __m256i low = _mm256_set1_epi8(0x0f), eight = _mm256_set1_epi8(8);
    /* the queries' block scales, converted once for every cell (heads of up
     * to DQ_MAX blocks; wider ones convert them per cell) */
    float dq[8][DQ_MAX];
    const int pre = nb <= DQ_MAX;
    for (int h = 0; pre && h < HB; h++)
        for (int b = 0; b < nb; b++)
            dq[h][b] = f16s(((const struct block_q8_0 *)(const void *)(q + (size_t)h * qs) + b)->d);
    for (int i = 0; i < count; i++) {
        const uint8_t *row = base + (size_t)idx[i] * stride;
        if (i + 1 < count)
            _mm_prefetch((const char *)(base + (size_t)idx[i + 1] * stride), _MM_HINT_T0);
        __m256 acc[8];
        for (int h = 0; h < HB; h++)
            acc[h] = _mm256_setzero_ps();
        for (int b = 0; b < nb; b++) {
            __m256i kx;
            float dk;
            if (q4) {
                const struct block_q4_0 *k = (const struct block_q4_0 *)(const void *)row + b;
                const __m128i raw = _mm_loadu_si128((const __m128i *)k->qs);
                kx = _mm256_sub_epi8(
                    _mm256_and_si256(_mm256_set_m128i(_mm_srli_epi16(raw, 4), raw), low), eight);
                dk = f16s(k->d);
            } else {
                const struct block_q8_0 *k = (const struct block_q8_0 *)(const void *)row + b;
                kx = _mm256_loadu_si256((const __m256i *)k->qs);
                dk = f16s(k->d);
            }
            const __m256i ax = _mm256_sign_epi8(kx, kx);
            for (int h = 0; h < HB; h++) {
                const struct block_q8_0 *qb =
                    (const struct block_q8_0 *)(const void *)(q + (size_t)h * qs) + b;
                const __m256i qy = _mm256_loadu_si256((const __m256i *)qb->qs);
                const __m256i p16 = _mm256_maddubs_epi16(ax, _mm256_sign_epi8(qy, kx));
                const __m256i p = _mm256_madd_epi16(p16, _mm256_set1_epi16(1));
                acc[h] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p),
                                         _mm256_set1_ps(dk * (pre ? dq[h][b] : f16s(qb->d))), acc[h]);
            }
        }
        float *si = s + (size_t)i * (size_t)G;
        if (HB == 8)
            _mm256_storeu_ps(si, sums8(acc));
        else
            for (int h = 0; h < HB; h++)
                si[h] = hsum8(acc[h]);
    }
}

/* Heads of 8 float values (stories260K's): one vector per key and per
 * query, the queries loaded once, and the 8 / HB cells' scores reduced by
 * sums8 as dotg_cells does (the same sum bit for bit); when the pass holds
 * the whole group they are already in s's (cell, head) order. */
static ALWAYS_INLINE void dotg_8(const int HB, const int f16, int G, const float *q, size_t qs,
                                 const uint8_t *base, size_t stride, const int *idx, int count,
                                 float *s)
{
    const int C = 8 / HB;
    __m256 qv[8];
    for (int h = 0; h < HB; h++)
        qv[h] = _mm256_loadu_ps(q + (size_t)h * qs);
    int i = 0;
    for (; i + C <= count; i += C) {
        __m256 acc[8];
        for (int a = C * HB; a < 8; a++) /* unused (HB = 3): lanes 6 and 7 */
            acc[a] = _mm256_setzero_ps();
        for (int c = 0; c < C; c++) {
            const uint8_t *row = base + (size_t)idx[i + c] * stride;
            const __m256 kv = f16 ? _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)row))
                                  : _mm256_loadu_ps((const float *)(const void *)row);
            for (int h = 0; h < HB; h++)
                acc[c * HB + h] = _mm256_mul_ps(kv, qv[h]);
        }
        const __m256 v = sums8(acc);
        float *si = s + (size_t)i * (size_t)G;
        if (G == HB && C * HB == 8) {
            _mm256_storeu_ps(si, v);
        } else {
            float t[8];
            _mm256_storeu_ps(t, v);
            for (int c = 0; c < C; c++)
                for (int h = 0; h < HB; h++)
                    si[(size_t)c * (size_t)G + h] = t[c * HB + h];
        }
    }
    if (i < count)
        dotg_cells(HB, count - i, f16, 8, G, q, qs, base, stride, idx + i,
                   s + (size_t)i * (size_t)G);
}

/* float keys; heads of 8 values take dotg_8 */
static ALWAYS_INLINE void dotg_f(const int HB, const int f16, int n, int G, const float *q,
                                 size_t qs, const uint8_t *base, size_t stride, const int *idx,
                                 int count, float *s)
{
    if (n == 8)
        dotg_8(HB, f16, G, q, qs, base, stride, idx, count, s);
    else
        dotg_float(HB, f16, n, G, q, qs, base, stride, idx, count, s);
}

static ALWAYS_INLINE void dotg_heads(const int HB, uint32_t type, int n, int G, const void *q,
                                     size_t qs, const uint8_t *base, size_t stride, const int *idx,
                                     int count, float *s)
{
    switch (type) {
    case DTYPE_F32: dotg_f(HB, 0, n, G, q, qs / sizeof(float), base, stride, idx, count, s); break;
    case DTYPE_F16: dotg_f(HB, 1, n, G, q, qs / sizeof(float), base, stride, idx, count, s); break;
    case DTYPE_Q8_0: dotg_block(HB, 0, n, G, q, qs, base, stride, idx, count, s); break;
    case DTYPE_Q4_0: dotg_block(HB, 1, n, G, q, qs, base, stride, idx, count, s); break;
    default: break;
    }
}

static void dot_group(uint32_t type, int n, int G, const void *q, size_t q_stride,
                      const uint8_t *base, size_t stride, const int *idx, int count, float *s)
{
    int h = 0;
    for (; h + 8 <= G; h += 8)
        dotg_heads(8, type, n, G, (const uint8_t *)q + (size_t)h * q_stride, q_stride, base, stride,
                   idx, count, s + h);
    for (; h + 4 <= G; h += 4)
        dotg_heads(4, type, n, G, (const uint8_t *)q + (size_t)h * q_stride, q_stride, base, stride,
                   idx, count, s + h);
    for (; h + 3 <= G; h += 3) /* groups of 3 (stories3M's) in one pass over the keys */
        dotg_heads(3, type, n, G, (const uint8_t *)q + (size_t)h * q_stride, q_stride, base, stride,
                   idx, count, s + h);
    for (; h + 2 <= G; h += 2)
        dotg_heads(2, type, n, G, (const uint8_t *)q + (size_t)h * q_stride, q_stride, base, stride,
                   idx, count, s + h);
    for (; h < G; h++)
        dotg_heads(1, type, n, G, (const uint8_t *)q + (size_t)h * q_stride, q_stride, base, stride,
                   idx, count, s + h);
}

/* Values j0 .. j0 + 7 of a cell's row (j0 + 8 <= n); for Q8_0 / Q4_0 the
 * quants, before their block's scale. */
static ALWAYS_INLINE __m256 vrow8(uint32_t type, const uint8_t *row, int j0)
{
    switch (type) {
    case DTYPE_F32: return _mm256_loadu_ps((const float *)(const void *)row + j0);
    case DTYPE_F16: return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(row + 2 * (size_t)j0)));
    case DTYPE_Q8_0: {
        const struct block_q8_0 *blk = (const struct block_q8_0 *)(const void *)row + j0 / QK8_0;
        const __m128i raw = _mm_loadl_epi64((const __m128i *)(blk->qs + j0 % QK8_0));
        return _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(raw));
    }
    default: {
        const struct block_q4_0 *blk = (const struct block_q4_0 *)(const void *)row + j0 / QK4_0;
        const int jb = j0 % QK4_0;
        __m128i raw = _mm_loadl_epi64((const __m128i *)(blk->qs + jb % (QK4_0 / 2)));
        if (jb >= QK4_0 / 2)
            raw = _mm_srli_epi16(raw, 4);
        raw = _mm_sub_epi8(_mm_and_si128(raw, _mm_set1_epi8(0x0f)), _mm_set1_epi8(8));
        return _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(raw));
    }
    }
}

/* Values of Q8_0 / Q4_0 cells: the factor e[i * G + h] times the block's
 * scale is formed once per cell and block (not per 8 values) in chunks of
 * AX_CELLS cells; each y value still takes the cells in order, one FMA by
 * the same factor each (as it was when this was a per-8-values product). */
#define AX_CELLS 64
static ALWAYS_INLINE void axpyg_blocks(const int HB, uint32_t type, int n, int G, const float *e,
                                       const uint8_t *base, size_t stride, const int *idx,
                                       int count, float *y, size_t ldy)
{
    const int q4 = type == DTYPE_Q4_0;
    const size_t bbytes = q4 ? sizeof(struct block_q4_0) : sizeof(struct block_q8_0);
    float coef[AX_CELLS * 8];
    for (int i0 = 0; i0 < count; i0 += AX_CELLS) {
        const int c = count - i0 < AX_CELLS ? count - i0 : AX_CELLS;
        for (int b = 0; b < n / QK8_0; b++) {
            for (int i = 0; i < c; i++) {
                uint16_t hd;
                memcpy(&hd, base + (size_t)idx[i0 + i] * stride + (size_t)b * bbytes, 2);
                const float d = f16s(hd);
                const float *ei = e + (size_t)(i0 + i) * (size_t)G;
                for (int h = 0; h < HB; h++)
                    coef[i * 8 + h] = ei[h] * d;
            }
            for (int j0 = b * QK8_0; j0 < (b + 1) * QK8_0; j0 += 8) {
                __m256 a[8];
                for (int h = 0; h < HB; h++)
                    a[h] = _mm256_loadu_ps(y + (size_t)h * ldy + j0);
                for (int i = 0; i < c; i++) {
                    const __m256 v = vrow8(type, base + (size_t)idx[i0 + i] * stride, j0);
                    for (int h = 0; h < HB; h++)
                        a[h] = _mm256_fmadd_ps(_mm256_broadcast_ss(coef + i * 8 + h), v, a[h]);
                }
                for (int h = 0; h < HB; h++)
                    _mm256_storeu_ps(y + (size_t)h * ldy + j0, a[h]);
            }
        }
    }
}

/* Values of F32 / F16 cells. */
static ALWAYS_INLINE void axpyg_heads(const int HB, uint32_t type, int n, int G, const float *e,
                                      const uint8_t *base, size_t stride, const int *idx, int count,
                                      float *y, size_t ldy)
{
    const int n8 = n & ~7;
    for (int j0 = 0; j0 < n8; j0 += 8) {
        __m256 a[8];
        for (int h = 0; h < HB; h++)
            a[h] = _mm256_loadu_ps(y + (size_t)h * ldy + j0);
        for (int i = 0; i < count; i++) {
            const __m256 v = vrow8(type, base + (size_t)idx[i] * stride, j0);
            const float *ei = e + (size_t)i * (size_t)G;
            for (int h = 0; h < HB; h++)
                a[h] = _mm256_fmadd_ps(_mm256_set1_ps(ei[h]), v, a[h]);
        }
        for (int h = 0; h < HB; h++)
            _mm256_storeu_ps(y + (size_t)h * ldy + j0, a[h]);
    }
    for (int j = n8; j < n; j++)
        for (int i = 0; i < count; i++) {
            const float vj = fval(type == DTYPE_F16, base + (size_t)idx[i] * stride, j);
            for (int h = 0; h < HB; h++)
                y[(size_t)h * ldy + j] += e[(size_t)i * (size_t)G + h] * vj;
        }
}

/* float values; heads of 8 values with the loops unrolled */
static ALWAYS_INLINE void axpyg_float(const int HB, const uint32_t type, int n, int G,
                                      const float *e, const uint8_t *base, size_t stride,
                                      const int *idx, int count, float *y, size_t ldy)
{
    if (n == 8)
        axpyg_heads(HB, type, 8, G, e, base, stride, idx, count, y, ldy);
    else
        axpyg_heads(HB, type, n, G, e, base, stride, idx, count, y, ldy);
}

static ALWAYS_INLINE void axpyg_type(const int HB, uint32_t type, int n, int G, const float *e,
                                     const uint8_t *base, size_t stride, const int *idx, int count,
                                     float *y, size_t ldy)
{
    switch (type) {
    case DTYPE_F32: axpyg_float(HB, DTYPE_F32, n, G, e, base, stride, idx, count, y, ldy); break;
    case DTYPE_F16: axpyg_float(HB, DTYPE_F16, n, G, e, base, stride, idx, count, y, ldy); break;
    case DTYPE_Q8_0: axpyg_blocks(HB, DTYPE_Q8_0, n, G, e, base, stride, idx, count, y, ldy); break;
    case DTYPE_Q4_0: axpyg_blocks(HB, DTYPE_Q4_0, n, G, e, base, stride, idx, count, y, ldy); break;
    default: break;
    }
}

static void axpy_group(uint32_t type, int n, int G, const float *e, const uint8_t *base,
                       size_t stride, const int *idx, int count, float *y, size_t ldy)
{
    int h = 0;
    for (; h + 8 <= G; h += 8)
        axpyg_type(8, type, n, G, e + h, base, stride, idx, count, y + (size_t)h * ldy, ldy);
    for (; h + 4 <= G; h += 4)
        axpyg_type(4, type, n, G, e + h, base, stride, idx, count, y + (size_t)h * ldy, ldy);
    for (; h + 3 <= G; h += 3)
        axpyg_type(3, type, n, G, e + h, base, stride, idx, count, y + (size_t)h * ldy, ldy);
    for (; h + 2 <= G; h += 2)
        axpyg_type(2, type, n, G, e + h, base, stride, idx, count, y + (size_t)h * ldy, ldy);
    for (; h < G; h++)
        axpyg_type(1, type, n, G, e + h, base, stride, idx, count, y + (size_t)h * ldy, ldy);
}

/* kernels_kv.c's ref_exp1, 8 lanes at a time (fused multiply-adds). */
static ALWAYS_INLINE __m256 exp8(__m256 x)
{
    const __m256 nan = _mm256_cmp_ps(x, x, _CMP_UNORD_Q);
    const __m256 tiny = _mm256_cmp_ps(x, _mm256_set1_ps(-87.3365479f), _CMP_LT_OQ);
    const __m256 xc = _mm256_min_ps(x, _mm256_set1_ps(88.0f));
    const __m256 k = _mm256_round_ps(_mm256_mul_ps(xc, _mm256_set1_ps(1.44269504f)),
                                     _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256 r = _mm256_fnmadd_ps(k, _mm256_set1_ps(0.693359375f), xc);
    r = _mm256_fnmadd_ps(k, _mm256_set1_ps(-2.12194440e-4f), r);
    __m256 p = _mm256_set1_ps(1.0f / 5040.0f);
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 720.0f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 120.0f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 24.0f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 6.0f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(0.5f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));
    const __m256i ki = _mm256_max_epi32(_mm256_cvtps_epi32(k), _mm256_set1_epi32(-126));
    const __m256 scale =
        _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(ki, _mm256_set1_epi32(127)), 23));
    const __m256 y = _mm256_andnot_ps(tiny, _mm256_mul_ps(p, scale));
    return _mm256_blendv_ps(y, x, nan);
}

static void exp_f32(int n, float *x)
{
    int i = 0;
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(x + i, exp8(_mm256_loadu_ps(x + i)));
    if (i < n) {
        float t[8] = {0};
        memcpy(t, x + i, (size_t)(n - i) * sizeof(float));
        _mm256_storeu_ps(t, exp8(_mm256_loadu_ps(t)));
        memcpy(x + i, t, (size_t)(n - i) * sizeof(float));
    }
}

/* kernels_kv.h's softmax, 8 lanes at a time. Score k = i * G + h belongs
 * to head k mod G, so lane l of the vector at 8 v holds head (8 v + l) mod G,
 * a pattern that repeats every P = G / gcd(8, G) vectors: the maxima and
 * sums are kept in P vectors (vector v in v mod P) and folded per head at
 * the end. The tail goes through a buffer padded with -inf. */
static int softmax_tile(int count, int G, float scale, float *s, float *mx, float *sum, float *r)
{
    const int P = G / (G & 7 ? (G & 3 ? (G & 1 ? 1 : 2) : 4) : 8);
    if (P > 8 || G > 64)
        return 0;
    const int total = count * G, full = total & ~7, left = total - full;
    const __m256 sc = _mm256_set1_ps(scale);
    __m256 vm[8], acc[8], m8[8];
    for (int p = 0; p < P; p++) {
        vm[p] = _mm256_set1_ps(-INFINITY);
        acc[p] = _mm256_setzero_ps();
    }
    float tail[8], t[64];
    int p = 0;
    for (int i = 0; i < full; i += 8) {
        const __m256 x = _mm256_mul_ps(_mm256_loadu_ps(s + i), sc);
        _mm256_storeu_ps(s + i, x);
        vm[p] = _mm256_max_ps(x, vm[p]); /* x > vm ? x : vm */
        p = p + 1 == P ? 0 : p + 1;
    }
    const int p_tail = p;
    if (left) {
        for (int l = 0; l < 8; l++)
            tail[l] = l < left ? s[full + l] * scale : -INFINITY;
        memcpy(s + full, tail, (size_t)left * sizeof(float));
        vm[p] = _mm256_max_ps(_mm256_loadu_ps(tail), vm[p]);
    }
    /* each head's largest x, the new maxima and the factors */
    for (int h = 0; h < G; h++)
        t[h] = -INFINITY;
    for (int q = 0; q < P; q++) {
        float v[8];
        _mm256_storeu_ps(v, vm[q]);
        for (int l = 0; l < 8; l++) {
            const int h = (8 * q + l) % G;
            t[h] = v[l] > t[h] ? v[l] : t[h];
        }
    }
    for (int h = 0; h < G; h++) {
        const float mn = t[h] > mx[h] ? t[h] : mx[h];
        r[h] = expf(mx[h] - mn);
        sum[h] *= r[h];
        mx[h] = mn;
    }
    for (int q = 0; q < P; q++) {
        float v[8];
        for (int l = 0; l < 8; l++)
            v[l] = mx[(8 * q + l) % G];
        m8[q] = _mm256_loadu_ps(v);
    }
    p = 0;
    for (int i = 0; i < full; i += 8) {
        const __m256 x = exp8(_mm256_sub_ps(_mm256_loadu_ps(s + i), m8[p]));
        _mm256_storeu_ps(s + i, x);
        acc[p] = _mm256_add_ps(acc[p], x);
        p = p + 1 == P ? 0 : p + 1;
    }
    if (left) {
        for (int l = 0; l < 8; l++)
            tail[l] = l < left ? s[full + l] : 0.0f;
        const __m256 x = exp8(_mm256_sub_ps(_mm256_loadu_ps(tail), m8[p_tail]));
        _mm256_storeu_ps(tail, x);
        memcpy(s + full, tail, (size_t)left * sizeof(float));
        const __m256i lane = _mm256_set_epi32(7, 6, 5, 4, 3, 2, 1, 0);
        const __m256 keep = _mm256_castsi256_ps(_mm256_cmpgt_epi32(_mm256_set1_epi32(left), lane));
        acc[p_tail] = _mm256_add_ps(acc[p_tail], _mm256_and_ps(x, keep));
    }
    for (int h = 0; h < G; h++)
        t[h] = 0.0f;
    for (int q = 0; q < P; q++) {
        float v[8];
        _mm256_storeu_ps(v, acc[q]);
        for (int l = 0; l < 8; l++)
            t[(8 * q + l) % G] += v[l];
    }
    for (int h = 0; h < G; h++)
        sum[h] += t[h];
    return 1;
}

static const struct kern_kv kv_avx2 = {"avx2",     dot_gather, axpy_gather, dot_group,
                                       axpy_group, exp_f32,    softmax_tile};
const struct kern_kv *const kern_kv_avx2 = &kv_avx2;
#else
const struct kern_kv *const kern_kv_avx2 = 0;
#endif
