/*
 * kernels_kv_avx512.c - the avx512 set's reads of an F16, Q8_0 or Q4_0 KV
 * cache (kernels_kv.h). Keys: F16 rows converted 16 at a time against the
 * F32 query; Q8_0 and Q4_0 blocks against the Q8_0 query with VNNI
 * (vpdpbusd on 32 values), each block's integer sum scaled in a float
 * accumulator. Values: each block (or 16 F16 values) is widened to floats
 * and added, scaled by e[i], into a register-held slice of y, row by row in
 * order. Compiled with the set's flags; kernels_kv.c calls it only when the
 * CPU runs the set.
 *
 * Grouped tiles: up to 8 query heads at a time against each cell. Keys: the
 * cell's row is loaded (and widened) once and multiplied into one
 * accumulator per head; eight heads' sums are then added across lanes
 * together (a transposing tree) and stored as the cell's 8 scores. Values:
 * 32 values of the cell at a time, widened once and added into 2 x 8
 * register accumulators. Small F32 heads (under 16 values, e.g. the 8 of
 * stories260K): 16 cells at a time by columns (value d of 16 cells in one
 * vector: shuffled from the rows for 8 values, gathered otherwise), so each
 * head's 16 scores are n multiply-adds; values of at most 8, two heads per
 * vector in four independent chains. Also the exponential, 16 lanes at a
 * time, and a tile's softmax step (kernels_kv.h) for groups dividing 16.
 */
#include "kernels/kernels_kv.h"

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#include <math.h>

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

/* ---- grouped tiles ---- */

#define ALWAYS_INLINE inline __attribute__((always_inline))

static ALWAYS_INLINE __m256 fold256(__m512 a)
{
    return _mm256_add_ps(_mm512_castps512_ps256(a),
                         _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(a), 1)));
}

/* The lane sums of eight vectors, in order, as one vector. */
static ALWAYS_INLINE __m256 sums8(const __m256 *b)
{
    const __m256 t0 = _mm256_hadd_ps(_mm256_hadd_ps(b[0], b[1]), _mm256_hadd_ps(b[2], b[3]));
    const __m256 t1 = _mm256_hadd_ps(_mm256_hadd_ps(b[4], b[5]), _mm256_hadd_ps(b[6], b[7]));
    return _mm256_add_ps(_mm256_permute2f128_ps(t0, t1, 0x20),
                         _mm256_permute2f128_ps(t0, t1, 0x31));
}

static ALWAYS_INLINE __mmask16 tail16(int left)
{
    return left >= 16  ? (__mmask16)0xffff
           : left <= 0 ? (__mmask16)0
                       : (__mmask16)((1u << left) - 1);
}

/* HB heads (a constant after inlining) of F32 (f16 = 0) or F16 keys. */
static ALWAYS_INLINE void dotg_float(const int HB, const int f16, int n, int G, const float *q,
                                     size_t qs, const uint8_t *base, size_t stride, const int *idx,
                                     int count, float *s)
{
    for (int i = 0; i < count; i++) {
        const uint8_t *row = base + (size_t)idx[i] * stride;
        if (i + 1 < count)
            _mm_prefetch((const char *)(base + (size_t)idx[i + 1] * stride), _MM_HINT_T0);
        __m512 acc[8];
        for (int h = 0; h < HB; h++)
            acc[h] = _mm512_setzero_ps();
        for (int j = 0; j < n; j += 16) {
            const __mmask16 m = tail16(n - j);
            const __m512 kv =
                f16 ? _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, row + 2 * (size_t)j))
                    : _mm512_maskz_loadu_ps(m, (const float *)(const void *)row + j);
            for (int h = 0; h < HB; h++)
                acc[h] =
                    _mm512_fmadd_ps(kv, _mm512_maskz_loadu_ps(m, q + (size_t)h * qs + j), acc[h]);
        }
        float *si = s + (size_t)i * (size_t)G;
        if (HB == 8) {
            __m256 b[8];
            for (int h = 0; h < 8; h++)
                b[h] = fold256(acc[h]);
            _mm256_storeu_ps(si, sums8(b));
        } else {
            for (int h = 0; h < HB; h++)
                si[h] = _mm512_reduce_add_ps(acc[h]);
        }
    }
}

/* HB heads of Q8_0 (q4 = 0) or Q4_0 keys against Q8_0 queries. */
static ALWAYS_INLINE void dotg_block(const int HB, const int q4, int n, int G, const uint8_t *q,
                                     size_t qs, const uint8_t *base, size_t stride, const int *idx,
                                     int count, float *s)
{
    const int nb = n / QK8_0;
    const __m256i eight = _mm256_set1_epi8(8);
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
                kx = q4_nibbles(k->qs);
                dk = f16s(k->d);
            } else {
                const struct block_q8_0 *k = (const struct block_q8_0 *)(const void *)row + b;
                kx = _mm256_loadu_si256((const __m256i *)k->qs);
                dk = f16s(k->d);
            }
            const __m256i ax = q4 ? kx : _mm256_sign_epi8(kx, kx);
            for (int h = 0; h < HB; h++) {
                const struct block_q8_0 *qb =
                    (const struct block_q8_0 *)(const void *)(q + (size_t)h * qs) + b;
                const __m256i qy = _mm256_loadu_si256((const __m256i *)qb->qs);
                __m256i p;
                if (q4) {
                    p = _mm256_dpbusd_epi32(_mm256_setzero_si256(), ax, qy);
                    p = _mm256_sub_epi32(p, _mm256_dpbusd_epi32(_mm256_setzero_si256(), eight, qy));
                } else {
                    p = _mm256_dpbusd_epi32(_mm256_setzero_si256(), ax, _mm256_sign_epi8(qy, kx));
                }
                acc[h] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p), _mm256_set1_ps(dk * f16s(qb->d)),
                                         acc[h]);
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

static ALWAYS_INLINE void dotg_heads(const int HB, uint32_t type, int n, int G, const void *q,
                                     size_t qs, const uint8_t *base, size_t stride, const int *idx,
                                     int count, float *s)
{
    switch (type) {
    case DTYPE_F32:
        dotg_float(HB, 0, n, G, q, qs / sizeof(float), base, stride, idx, count, s);
        break;
    case DTYPE_F16:
        dotg_float(HB, 1, n, G, q, qs / sizeof(float), base, stride, idx, count, s);
        break;
    case DTYPE_Q8_0: dotg_block(HB, 0, n, G, q, qs, base, stride, idx, count, s); break;
    case DTYPE_Q4_0: dotg_block(HB, 1, n, G, q, qs, base, stride, idx, count, s); break;
    default: break;
    }
}

/* Rows of 8 floats of 16 cells (zeros past `left`) as 8 columns: col[d]
 * holds value d of cells 0..15. Two 8x8 transposes side by side (cells 0-7
 * in the low half, 8-15 in the high): pairs, quads in 128-bit lanes, then
 * the lanes put together. Loads and shuffles instead of 8 gathers. */
static ALWAYS_INLINE void cols8(const uint8_t *base, size_t stride, const int *idx, int left,
                                __m512 *col)
{
    __m512 r[8];
    for (int j = 0; j < 8; j++) {
        __m256 lo = _mm256_setzero_ps(), hi = lo;
        if (j < left)
            lo = _mm256_loadu_ps((const float *)(const void *)(base + (size_t)idx[j] * stride));
        if (j + 8 < left)
            hi = _mm256_loadu_ps((const float *)(const void *)(base + (size_t)idx[j + 8] * stride));
        r[j] = _mm512_insertf32x8(_mm512_castps256_ps512(lo), hi, 1);
    }
    __m512 t[8], u[8];
    for (int j = 0; j < 8; j += 2) {
        t[j] = _mm512_unpacklo_ps(r[j], r[j + 1]);
        t[j + 1] = _mm512_unpackhi_ps(r[j], r[j + 1]);
    }
    for (int j = 0; j < 8; j += 4) {
        u[j] = _mm512_shuffle_ps(t[j], t[j + 2], _MM_SHUFFLE(1, 0, 1, 0));
        u[j + 1] = _mm512_shuffle_ps(t[j], t[j + 2], _MM_SHUFFLE(3, 2, 3, 2));
        u[j + 2] = _mm512_shuffle_ps(t[j + 1], t[j + 3], _MM_SHUFFLE(1, 0, 1, 0));
        u[j + 3] = _mm512_shuffle_ps(t[j + 1], t[j + 3], _MM_SHUFFLE(3, 2, 3, 2));
    }
    const __m512i first =
        _mm512_set_epi32(27, 26, 25, 24, 11, 10, 9, 8, 19, 18, 17, 16, 3, 2, 1, 0);
    const __m512i second = _mm512_add_epi32(first, _mm512_set1_epi32(4));
    for (int j = 0; j < 4; j++) {
        col[j] = _mm512_permutex2var_ps(u[j], first, u[j + 4]);
        col[j + 4] = _mm512_permutex2var_ps(u[j], second, u[j + 4]);
    }
}

/* F32 keys of fewer than 16 values (small heads): 16 cells at a time, each
 * of the n columns gathered into one vector (value d of 16 cells), so a
 * head's 16 scores are n multiply-adds (d in order); HB heads per pass over
 * the columns. N and HB are constants after inlining (registers, not the
 * stack) for the common shapes; 0 means "use n / G". */
static ALWAYS_INLINE void dotg_narrow_t(const int N, const int HB, int n, int G, const float *q,
                                        size_t qs, const uint8_t *base, size_t stride,
                                        const int *idx, int count, float *s)
{
    const int nn = N ? N : n;
    const __m512i lanes = _mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0);
    const __m512i to_s = _mm512_mullo_epi32(lanes, _mm512_set1_epi32(G));
    /* G = 2: the two heads' vectors interleaved, cells 0-7 and 8-15 */
    const __m512i lo2 = _mm512_set_epi32(23, 7, 22, 6, 21, 5, 20, 4, 19, 3, 18, 2, 17, 1, 16, 0);
    const __m512i hi2 = _mm512_add_epi32(lo2, _mm512_set1_epi32(8));
    for (int i = 0; i < count; i += 16) {
        const __mmask16 m = tail16(count - i);
        const __m512i off = _mm512_mullo_epi32(_mm512_maskz_loadu_epi32(m, idx + i),
                                               _mm512_set1_epi32((int)stride));
        __m512 col[15];
        if (N == 8) {
            cols8(base, stride, idx + i, count - i, col);
        } else {
            col[0] = _mm512_mask_i32gather_ps(_mm512_setzero_ps(), m, off, base, 1);
            for (int d = 1; d < nn; d++)
                col[d] =
                    _mm512_mask_i32gather_ps(_mm512_setzero_ps(), m, off, base + 4 * (size_t)d, 1);
        }
        float *si = s + (size_t)i * (size_t)G;
        for (int h0 = 0; h0 < G; h0 += 8) {
            const int hb = HB ? HB : (G - h0 < 8 ? G - h0 : 8);
            __m512 acc[8];
            for (int h = 0; h < hb; h++) {
                const float *qh = q + (size_t)(h0 + h) * qs;
                acc[h] = _mm512_mul_ps(col[0], _mm512_set1_ps(qh[0]));
                for (int d = 1; d < nn; d++)
                    acc[h] = _mm512_fmadd_ps(col[d], _mm512_set1_ps(qh[d]), acc[h]);
            }
            if (HB == 1) {
                _mm512_mask_storeu_ps(si, m, acc[0]);
            } else if (HB == 2) {
                const int left = count - i;
                _mm512_mask_storeu_ps(si, tail16(2 * left),
                                      _mm512_permutex2var_ps(acc[0], lo2, acc[1]));
                _mm512_mask_storeu_ps(si + 16, tail16(2 * left - 16),
                                      _mm512_permutex2var_ps(acc[0], hi2, acc[1]));
            } else {
                for (int h = 0; h < hb; h++)
                    _mm512_mask_i32scatter_ps(si + h0 + h, m, to_s, acc[h], 4);
            }
        }
    }
}

/* Cell offsets are 32-bit: 0 (not done) where the cells lie too far apart. */
static int dotg_narrow(int n, int G, const float *q, size_t qs, const uint8_t *base, size_t stride,
                       const int *idx, int count, float *s)
{
    if (stride > (size_t)INT32_MAX)
        return 0;
    for (int i = 0; i < count; i += 16) {
        const __mmask16 m = tail16(count - i);
        const __m512i vi = _mm512_maskz_loadu_epi32(m, idx + i);
        if ((size_t)(uint32_t)_mm512_mask_reduce_max_epi32(m, vi) * stride + 64 > (size_t)INT32_MAX)
            return 0;
    }
    if (n == 8 && G == 1)
        dotg_narrow_t(8, 1, n, G, q, qs, base, stride, idx, count, s);
    else if (n == 8 && G == 2)
        dotg_narrow_t(8, 2, n, G, q, qs, base, stride, idx, count, s);
    else if (n == 8 && G == 4)
        dotg_narrow_t(8, 4, n, G, q, qs, base, stride, idx, count, s);
    else if (n == 8 && G == 8)
        dotg_narrow_t(8, 8, n, G, q, qs, base, stride, idx, count, s);
    else if (G == 1)
        dotg_narrow_t(0, 1, n, G, q, qs, base, stride, idx, count, s);
    else if (G == 2)
        dotg_narrow_t(0, 2, n, G, q, qs, base, stride, idx, count, s);
    else
        dotg_narrow_t(0, 0, n, G, q, qs, base, stride, idx, count, s);
    return 1;
}

static void dot_group(uint32_t type, int n, int G, const void *q, size_t q_stride,
                      const uint8_t *base, size_t stride, const int *idx, int count, float *s)
{
    if (type == DTYPE_F32 && n < 16 &&
        dotg_narrow(n, G, q, q_stride / sizeof(float), base, stride, idx, count, s))
        return;
    int h = 0;
    for (; h + 8 <= G; h += 8)
        dotg_heads(8, type, n, G, (const uint8_t *)q + (size_t)h * q_stride, q_stride, base, stride,
                   idx, count, s + h);
    for (; h + 4 <= G; h += 4)
        dotg_heads(4, type, n, G, (const uint8_t *)q + (size_t)h * q_stride, q_stride, base, stride,
                   idx, count, s + h);
    for (; h < G; h++)
        dotg_heads(1, type, n, G, (const uint8_t *)q + (size_t)h * q_stride, q_stride, base, stride,
                   idx, count, s + h);
}

/* Values j0 .. j0 + 31 of a cell's row as two vectors, and the factor its
 * block's scale puts on them (1 for the float types). */
static ALWAYS_INLINE float vrow32(uint32_t type, const uint8_t *row, int j0, __mmask16 m0,
                                  __mmask16 m1, __m512 *v0, __m512 *v1)
{
    switch (type) {
    case DTYPE_F32: {
        const float *r = (const float *)(const void *)row + j0;
        *v0 = _mm512_maskz_loadu_ps(m0, r);
        *v1 = _mm512_maskz_loadu_ps(m1, r + 16);
        return 1.0f;
    }
    case DTYPE_F16: {
        const uint8_t *r = row + 2 * (size_t)j0;
        *v0 = _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m0, r));
        *v1 = _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m1, r + 32));
        return 1.0f;
    }
    case DTYPE_Q8_0: {
        const struct block_q8_0 *blk = (const struct block_q8_0 *)(const void *)row + j0 / QK8_0;
        *v0 = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)blk->qs)));
        *v1 = _mm512_cvtepi32_ps(
            _mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)(blk->qs + 16))));
        return f16s(blk->d);
    }
    default: {
        const struct block_q4_0 *blk = (const struct block_q4_0 *)(const void *)row + j0 / QK4_0;
        const __m128i raw = _mm_loadu_si128((const __m128i *)blk->qs), low = _mm_set1_epi8(0x0f);
        const __m512i eight = _mm512_set1_epi32(8);
        *v0 = _mm512_cvtepi32_ps(
            _mm512_sub_epi32(_mm512_cvtepu8_epi32(_mm_and_si128(raw, low)), eight));
        *v1 = _mm512_cvtepi32_ps(_mm512_sub_epi32(
            _mm512_cvtepu8_epi32(_mm_and_si128(_mm_srli_epi16(raw, 4), low)), eight));
        return f16s(blk->d);
    }
    }
}

static ALWAYS_INLINE void axpyg_heads(const int HB, uint32_t type, int n, int G, const float *e,
                                      const uint8_t *base, size_t stride, const int *idx, int count,
                                      float *y, size_t ldy)
{
    for (int j0 = 0; j0 < n; j0 += 32) {
        const __mmask16 m0 = tail16(n - j0), m1 = tail16(n - j0 - 16);
        __m512 a0[8], a1[8];
        for (int h = 0; h < HB; h++) {
            a0[h] = _mm512_maskz_loadu_ps(m0, y + (size_t)h * ldy + j0);
            a1[h] = _mm512_maskz_loadu_ps(m1, y + (size_t)h * ldy + j0 + 16);
        }
        for (int i = 0; i < count; i++) {
            __m512 v0, v1;
            const float d = vrow32(type, base + (size_t)idx[i] * stride, j0, m0, m1, &v0, &v1);
            const float *ei = e + (size_t)i * (size_t)G;
            for (int h = 0; h < HB; h++) {
                const __m512 w =
                    _mm512_set1_ps(type == DTYPE_F32 || type == DTYPE_F16 ? ei[h] : ei[h] * d);
                a0[h] = _mm512_fmadd_ps(w, v0, a0[h]);
                a1[h] = _mm512_fmadd_ps(w, v1, a1[h]);
            }
        }
        for (int h = 0; h < HB; h++) {
            _mm512_mask_storeu_ps(y + (size_t)h * ldy + j0, m0, a0[h]);
            _mm512_mask_storeu_ps(y + (size_t)h * ldy + j0 + 16, m1, a1[h]);
        }
    }
}

static ALWAYS_INLINE void axpyg_type(const int HB, uint32_t type, int n, int G, const float *e,
                                     const uint8_t *base, size_t stride, const int *idx, int count,
                                     float *y, size_t ldy)
{
    /* one instance per type, so the row's decoding is resolved at compile time */
    switch (type) {
    case DTYPE_F32: axpyg_heads(HB, DTYPE_F32, n, G, e, base, stride, idx, count, y, ldy); break;
    case DTYPE_F16: axpyg_heads(HB, DTYPE_F16, n, G, e, base, stride, idx, count, y, ldy); break;
    case DTYPE_Q8_0: axpyg_heads(HB, DTYPE_Q8_0, n, G, e, base, stride, idx, count, y, ldy); break;
    case DTYPE_Q4_0: axpyg_heads(HB, DTYPE_Q4_0, n, G, e, base, stride, idx, count, y, ldy); break;
    default: break;
    }
}

/* F32 values of at most 8 (small heads): two heads per vector (the cell's
 * row in both halves, each half scaled by its head's weight), in four
 * accumulators (cells 4k + j into chain j, the last 1-3 cells into chain 0:
 * independent chains), added at the end. */
static void axpyg_narrow(int n, int G, const float *e, const uint8_t *base, size_t stride,
                         const int *idx, int count, float *y, size_t ldy)
{
    const __mmask8 m8 = (__mmask8)((1u << n) - 1);
    const __m512i pat = _mm512_set_epi32(1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0);
    for (int h = 0; h < G; h += 2) {
        const int two = G - h >= 2;
        float *y0 = y + (size_t)h * ldy, *y1 = two ? y0 + ldy : y0;
        __m512 a[4];
        a[0] = _mm512_insertf32x8(_mm512_castps256_ps512(_mm256_maskz_loadu_ps(m8, y0)),
                                  _mm256_maskz_loadu_ps(two ? m8 : 0, y1), 1);
        a[1] = a[2] = a[3] = _mm512_setzero_ps();
        int i = 0;
#define AXPY_NARROW_STEP(k)                                                                        \
    do {                                                                                           \
        const float *row = (const float *)(const void *)(base + (size_t)idx[i + k] * stride);      \
        const __m512 v = _mm512_broadcast_f32x8(_mm256_maskz_loadu_ps(m8, row));                   \
        const float *ei = e + (size_t)(i + k) * (size_t)G + h;                                     \
        const __m128 e2 =                                                                          \
            two ? _mm_castsi128_ps(_mm_loadl_epi64((const __m128i *)(const void *)ei))             \
                : _mm_load_ss(ei);                                                                 \
        a[k] = _mm512_fmadd_ps(_mm512_permutexvar_ps(pat, _mm512_castps128_ps512(e2)), v, a[k]);   \
    } while (0)
        for (; i + 4 <= count; i += 4) {
            AXPY_NARROW_STEP(0);
            AXPY_NARROW_STEP(1);
            AXPY_NARROW_STEP(2);
            AXPY_NARROW_STEP(3);
        }
        for (; i < count; i++)
            AXPY_NARROW_STEP(0); /* the last 1-3 cells into chain 0 */
#undef AXPY_NARROW_STEP
        const __m512 t = _mm512_add_ps(_mm512_add_ps(a[0], a[1]), _mm512_add_ps(a[2], a[3]));
        _mm256_mask_storeu_ps(y0, m8, _mm512_castps512_ps256(t));
        if (two)
            _mm256_mask_storeu_ps(y1, m8,
                                  _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(t), 1)));
    }
}

static void axpy_group(uint32_t type, int n, int G, const float *e, const uint8_t *base,
                       size_t stride, const int *idx, int count, float *y, size_t ldy)
{
    if (type == DTYPE_F32 && n <= 8) {
        axpyg_narrow(n, G, e, base, stride, idx, count, y, ldy);
        return;
    }
    int h = 0;
    for (; h + 8 <= G; h += 8)
        axpyg_type(8, type, n, G, e + h, base, stride, idx, count, y + (size_t)h * ldy, ldy);
    for (; h + 4 <= G; h += 4)
        axpyg_type(4, type, n, G, e + h, base, stride, idx, count, y + (size_t)h * ldy, ldy);
    for (; h < G; h++)
        axpyg_type(1, type, n, G, e + h, base, stride, idx, count, y + (size_t)h * ldy, ldy);
}

/* kernels_kv.c's ref_exp1, 16 lanes at a time (fused multiply-adds). */
static ALWAYS_INLINE __m512 exp16(__m512 x)
{
    const __mmask16 nan = _mm512_cmp_ps_mask(x, x, _CMP_UNORD_Q);
    const __mmask16 tiny = _mm512_cmp_ps_mask(x, _mm512_set1_ps(-87.3365479f), _CMP_LT_OQ);
    const __m512 xc = _mm512_min_ps(x, _mm512_set1_ps(88.0f));
    const __m512 k = _mm512_roundscale_ps(_mm512_mul_ps(xc, _mm512_set1_ps(1.44269504f)),
                                          _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 r = _mm512_fnmadd_ps(k, _mm512_set1_ps(0.693359375f), xc);
    r = _mm512_fnmadd_ps(k, _mm512_set1_ps(-2.12194440e-4f), r);
    __m512 p = _mm512_set1_ps(1.0f / 5040.0f);
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 720.0f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 120.0f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 24.0f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 6.0f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(0.5f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
    /* below -87.33 k would leave the exponent field: the result is 0 there */
    const __m512i ki = _mm512_max_epi32(_mm512_cvtps_epi32(k), _mm512_set1_epi32(-126));
    const __m512 scale =
        _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_add_epi32(ki, _mm512_set1_epi32(127)), 23));
    const __m512 y = _mm512_maskz_mov_ps((__mmask16)~tiny, _mm512_mul_ps(p, scale));
    return _mm512_mask_mov_ps(y, nan, x);
}

static void exp_f32(int n, float *x)
{
    for (int i = 0; i < n; i += 16) {
        const __mmask16 m = tail16(n - i);
        _mm512_mask_storeu_ps(x + i, m, exp16(_mm512_maskz_loadu_ps(m, x + i)));
    }
}

/* The per-head result of lanes l = h mod G (G divides 16) of v, by halving:
 * op(v's two halves) while the half still holds every head. */
static ALWAYS_INLINE void fold_heads(int G, __m512 v, int is_max, float *out)
{
    __m256 a = _mm512_castps512_ps256(v),
           b = _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1));
    float t[16];
    if (G == 16) {
        _mm512_storeu_ps(t, v);
    } else {
        __m256 v8 = is_max ? _mm256_max_ps(a, b) : _mm256_add_ps(a, b);
        if (G == 8) {
            _mm256_storeu_ps(t, v8);
        } else {
            const __m128 c = _mm256_castps256_ps128(v8), d = _mm256_extractf128_ps(v8, 1);
            __m128 v4 = is_max ? _mm_max_ps(c, d) : _mm_add_ps(c, d);
            if (G <= 2) {
                const __m128 hi = _mm_movehl_ps(v4, v4);
                v4 = is_max ? _mm_max_ps(v4, hi) : _mm_add_ps(v4, hi);
                if (G == 1) {
                    const __m128 odd = _mm_movehdup_ps(v4);
                    v4 = is_max ? _mm_max_ps(v4, odd) : _mm_add_ps(v4, odd);
                }
            }
            _mm_storeu_ps(t, v4);
        }
    }
    for (int h = 0; h < G; h++)
        out[h] = t[h];
}

static int softmax_tile(int count, int G, float scale, float *s, float *mx, float *sum, float *r)
{
    if (G > 16 || 16 % G)
        return 0;
    const int total = count * G;
    const __m512 sc = _mm512_set1_ps(scale);
    __m512 vm = _mm512_set1_ps(-INFINITY);
    for (int i = 0; i < total; i += 16) {
        const __mmask16 m = tail16(total - i);
        const __m512 x = _mm512_mul_ps(_mm512_maskz_loadu_ps(m, s + i), sc);
        _mm512_mask_storeu_ps(s + i, m, x);
        vm = _mm512_mask_max_ps(vm, m, x, vm); /* x > vm ? x : vm */
    }
    float tm[16];
    fold_heads(G, vm, 1, tm);
    for (int h = 0; h < G; h++) {
        const float mn = tm[h] > mx[h] ? tm[h] : mx[h];
        r[h] = expf(mx[h] - mn);
        sum[h] *= r[h];
        mx[h] = mn;
    }
    for (int l = 0; l < 16; l++)
        tm[l] = mx[l % G];
    const __m512 m16 = _mm512_loadu_ps(tm);
    __m512 acc = _mm512_setzero_ps();
    for (int i = 0; i < total; i += 16) {
        const __mmask16 m = tail16(total - i);
        const __m512 x = exp16(_mm512_sub_ps(_mm512_maskz_loadu_ps(m, s + i), m16));
        _mm512_mask_storeu_ps(s + i, m, x);
        acc = _mm512_mask_add_ps(acc, m, acc, x);
    }
    fold_heads(G, acc, 0, tm);
    for (int h = 0; h < G; h++)
        sum[h] += tm[h];
    return 1;
}

static const struct kern_kv kv_avx512 = {"avx512",   dot_gather, axpy_gather, dot_group,
                                         axpy_group, exp_f32,    softmax_tile};
const struct kern_kv *const kern_kv_avx512 = &kv_avx512;
#else
const struct kern_kv *const kern_kv_avx512 = 0;
#endif
