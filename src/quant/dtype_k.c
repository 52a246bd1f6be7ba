/*
 * dtype_k.c - the k-quants: super-blocks of 256 weights with quantized
 * sub-block scales (Q4_K, Q5_K, Q6_K) and their activation partner Q8_K.
 * Scalar reference dequantization (bit-exact with the format's definition),
 * quantizers that search the sub-block scales, and dot products. Layouts are
 * described in dtype.h; the type table lives in dtype.c.
 *
 * Quantizers: the error of a k-quant is mostly decided by the scale (and
 * min) of each sub-block. For every sub-block we try a grid of scales around
 * the one that maps the range onto the quant levels, take the least-squares
 * scale (and min) for the levels each candidate picks, then alternate
 * "re-pick levels for this scale / re-fit the scale for these levels" while
 * the error drops. The fit minimizes the plain squared error (every finite
 * element weighs 1; on the test rows this gives 1-3% less RMS error than
 * weighting towards large magnitudes). The sub-block scales are
 * then themselves quantized (6 or 8 bits) and the levels chosen once more
 * against the scales actually stored.
 */
#include <float.h>
#include <float.h>
#include <math.h>
#include <string.h>

#include "quant/dtype.h"
#include "util.h"

/* ---- dequantization ---- */

/* Sub-block s's 6-bit scale and min from the 12 packed bytes (see dtype.h). */
static void k4_scale_min(const uint8_t *sc, int s, int *scale, int *min)
{
    if (s < 4) {
        *scale = sc[s] & 63;
        *min = sc[s + 4] & 63;
    } else {
        *scale = (sc[s + 4] & 0x0f) | (sc[s - 4] >> 6) << 4;
        *min = (sc[s + 4] >> 4) | (sc[s] >> 6) << 4;
    }
}

static void k4_pack_scale_min(uint8_t *sc, const int *scale, const int *min)
{
    memset(sc, 0, K_SCALE_SIZE);
    for (int s = 0; s < 8; s++) {
        if (s < 4) {
            sc[s] = (uint8_t)scale[s];
            sc[s + 4] = (uint8_t)min[s];
        } else {
            sc[s + 4] = (uint8_t)((scale[s] & 0x0f) | (min[s] & 0x0f) << 4);
            sc[s - 4] |= (uint8_t)((scale[s] >> 4) << 6);
            sc[s] |= (uint8_t)((min[s] >> 4) << 6);
        }
    }
}

/* Quant of weight j (0..255) of a Q4_K super-block (qh NULL: 0..15) or of a
 * Q5_K one (0..31: bit j / 32 of qh[j % 32] on top, that is bit 2c for the
 * first half of chunk c and 2c + 1 for the second). */
static inline int k45_quant(const uint8_t *qs, const uint8_t *qh, int j)
{
    const int c = j / 64, l = j % 32;
    const int lo = (j % 64) < 32 ? qs[32 * c + l] & 0x0f : qs[32 * c + l] >> 4;
    return qh ? lo | ((qh[l] >> (j / 32)) & 1) << 4 : lo;
}

/* Quant of weight j (0..255) of a Q6_K super-block, 0..63. */
static int k6_quant(const uint8_t *ql, const uint8_t *qh, int j)
{
    const int h = j / 128, e = j % 128, k = e / 32, l = e % 32;
    const uint8_t lo = ql[64 * h + 32 * (k & 1) + l];
    const int low4 = k < 2 ? lo & 0x0f : lo >> 4;
    return low4 | ((qh[32 * h + l] >> (2 * k)) & 3) << 4;
}

/* One Q4_K (qh NULL) or Q5_K super-block: w = d * scale - dmin * min, per
 * sub-block of 32. */
static inline void dequantize_k45(uint16_t d16, uint16_t dmin16, const uint8_t *scales,
                                  const uint8_t *qs, const uint8_t *qh, float *dst)
{
    const float d = util_fp16_to_fp32(d16), dmin = util_fp16_to_fp32(dmin16);
    for (int s = 0; s < 8; s++) {
        int sc, mn;
        k4_scale_min(scales, s, &sc, &mn);
        const float ds = d * (float)sc, ms = dmin * (float)mn;
        for (int j = 32 * s; j < 32 * s + 32; j++)
            dst[j] = ds * (float)k45_quant(qs, qh, j) - ms;
    }
}

void dtype_dequantize_row_q4_K(const void *src, float *dst, int64_t n)
{
    const struct block_q4_K *b = src;
    for (int64_t i = 0; i < n / QK_K; i++, dst += QK_K)
        dequantize_k45(b[i].d, b[i].dmin, b[i].scales, b[i].qs, NULL, dst);
}

void dtype_dequantize_row_q5_K(const void *src, float *dst, int64_t n)
{
    const struct block_q5_K *b = src;
    for (int64_t i = 0; i < n / QK_K; i++, dst += QK_K)
        dequantize_k45(b[i].d, b[i].dmin, b[i].scales, b[i].qs, b[i].qh, dst);
}

void dtype_dequantize_row_q6_K(const void *src, float *dst, int64_t n)
{
    const struct block_q6_K *b = src;
    for (int64_t i = 0; i < n / QK_K; i++, dst += QK_K) {
        const float d = util_fp16_to_fp32(b[i].d);
        for (int j = 0; j < QK_K; j++) {
            const float ds = d * (float)b[i].scales[j / 16];
            dst[j] = ds * (float)(k6_quant(b[i].ql, b[i].qh, j) - 32);
        }
    }
}

void dtype_dequantize_row_q8_K(const void *src, float *dst, int64_t n)
{
    const struct block_q8_K *b = src;
    for (int64_t i = 0; i < n / QK_K; i++)
        for (int j = 0; j < QK_K; j++)
            dst[i * QK_K + j] = b[i].d * (float)b[i].qs[j];
}

/* ---- scale search ---- */

static int clampi(int v, int lo, int hi)
{
    return v < lo ? lo : v > hi ? hi : v;
}

/* Weighted squared error of x ~ scale * L + min. */
static float fit_error(int n, const float *x, const float *w, const uint8_t *L, float scale,
                       float min)
{
    float e = 0.0f;
    for (int i = 0; i < n; i++) {
        const float d = scale * (float)L[i] + min - x[i];
        e += w[i] * d * d;
    }
    return e;
}

/* Least-squares scale and min (min <= 0) for fixed levels L; 0 if degenerate. */
static int fit_scale_min(int n, const float *x, const float *w, const uint8_t *L, float *scale,
                         float *min)
{
    float sw = 0, sl = 0, sll = 0, sx = 0, sxl = 0;
    for (int i = 0; i < n; i++) {
        const float l = (float)L[i];
        sw += w[i];
        sl += w[i] * l;
        sll += w[i] * l * l;
        sx += w[i] * x[i];
        sxl += w[i] * x[i] * l;
    }
    const float det = sw * sll - sl * sl;
    if (!(det > 0.0f))
        return 0;
    float a = (sw * sxl - sx * sl) / det, b = (sll * sx - sl * sxl) / det;
    if (b > 0.0f) { /* the format subtracts a non-negative min */
        b = 0.0f;
        a = sxl / sll;
    }
    if (!(a > 0.0f) || !isfinite(a) || !isfinite(b))
        return 0;
    *scale = a, *min = b;
    return 1;
}

static void pick_levels(int n, int nmax, const float *x, float scale, float min, uint8_t *L)
{
    const float is = 1.0f / scale;
    for (int i = 0; i < n; i++)
        L[i] = (uint8_t)clampi(dtype_nearest_int((x[i] - min) * is), 0, nmax);
}

/*
 * Asymmetric sub-block (Q4_K nmax 15, Q5_K nmax 31): x ~ scale * L - mn with
 * scale >= 0, mn >= 0, L in 0..nmax. Returns the scale and sets *mn and L.
 */
static float search_scale_min(int n, int nmax, const float *x, const float *w, uint8_t *L,
                              float *mn)
{
    float lo = x[0], hi = x[0];
    for (int i = 1; i < n; i++) {
        lo = fminf(lo, x[i]);
        hi = fmaxf(hi, x[i]);
    }
    lo = fminf(lo, 0.0f);
    if (!(hi > lo) || !isfinite(hi - lo)) { /* constant (or non-finite) sub-block */
        memset(L, 0, (size_t)n);
        *mn = isfinite(lo) ? -lo : 0.0f;
        return 0.0f;
    }
    float best_s = (hi - lo) / (float)nmax, best_m = lo;
    pick_levels(n, nmax, x, best_s, best_m, L);
    float best_e = fit_error(n, x, w, L, best_s, best_m);
    uint8_t T[QK_K];
    /* candidate scales that stretch the range over nmax - 1 .. nmax + 1 levels */
    for (int k = -10; k <= 10; k++) {
        const float is = ((float)nmax + 0.1f * (float)k) / (hi - lo);
        for (int i = 0; i < n; i++)
            T[i] = (uint8_t)clampi(dtype_nearest_int((x[i] - lo) * is), 0, nmax);
        float s, m;
        if (!fit_scale_min(n, x, w, T, &s, &m))
            continue;
        const float e = fit_error(n, x, w, T, s, m);
        if (e < best_e) {
            best_e = e, best_s = s, best_m = m;
            memcpy(L, T, (size_t)n);
        }
    }
    /* alternate levels and fit while it helps */
    for (int it = 0; it < 4; it++) {
        float s, m;
        pick_levels(n, nmax, x, best_s, best_m, T);
        if (!fit_scale_min(n, x, w, T, &s, &m))
            break;
        const float e = fit_error(n, x, w, T, s, m);
        if (!(e < best_e))
            break;
        best_e = e, best_s = s, best_m = m;
        memcpy(L, T, (size_t)n);
    }
    *mn = -best_m;
    return best_s;
}

/* One try of search_scale_sym: levels T = round(x * is) clamped to
 * [-nmax, nmax - 1], their least-squares scale s and its weighted error
 * e = sum w (s T - x)^2. Returns 0 (s, e unset) where sum w T^2 is not
 * positive (no scale fits). */
static int fit_sym(int n, int nmax, const float *x, const float *w, float is, int8_t *T, float *s,
                   float *e)
{
    float sxl = 0, sll = 0;
    for (int i = 0; i < n; i++) {
        T[i] = (int8_t)clampi(dtype_nearest_int(x[i] * is), -nmax, nmax - 1);
        sxl += w[i] * x[i] * (float)T[i];
        sll += w[i] * (float)T[i] * (float)T[i];
    }
    if (!(sll > 0.0f))
        return 0;
    *s = sxl / sll;
    float err = 0.0f;
    for (int i = 0; i < n; i++) {
        const float d = *s * (float)T[i] - x[i];
        err += w[i] * d * d;
    }
    *e = err;
    return 1;
}

/*
 * Symmetric sub-block (Q6_K, nmax 32): x ~ scale * (L - nmax), L in 0..2nmax-1.
 * The level range is one longer on the negative side, so the scale may be
 * negative to put the largest magnitude there. Returns the signed scale.
 */
static float search_scale_sym(int n, int nmax, const float *x, const float *w, int8_t *Q)
{
    float amax = 0.0f, max = 0.0f;
    for (int i = 0; i < n; i++) {
        if (fabsf(x[i]) > amax) {
            amax = fabsf(x[i]);
            max = x[i];
        }
    }
    memset(Q, 0, (size_t)n);
    if (!(amax > 1e-30f) || !isfinite(amax))
        return 0.0f;
    float best_s = 0.0f, best_e = 0.0f;
    for (int i = 0; i < n; i++)
        best_e += w[i] * x[i] * x[i];
    int8_t T[32];
    float s, e;
    for (int k = -10; k <= 20; k++) {
        /* the extreme value on the long side, at about -nmax, or (k > 10) on
         * the short side, at about nmax - 1 */
        const float is = k <= 10 ? -((float)nmax + 0.1f * (float)k) / max
                                 : ((float)nmax - 1.0f + 0.1f * (float)(k - 15)) / max;
        if (fit_sym(n, nmax, x, w, is, T, &s, &e) && e < best_e) {
            best_e = e, best_s = s;
            memcpy(Q, T, (size_t)n);
        }
    }
    for (int it = 0; it < 4 && best_s != 0.0f; it++) {
        if (!fit_sym(n, nmax, x, w, 1.0f / best_s, T, &s, &e) || !(e < best_e))
            break;
        best_e = e, best_s = s;
        memcpy(Q, T, (size_t)n);
    }
    return best_s;
}

/* Per-element weights of the fits: 1, and 0 for non-finite elements so that
 * they cannot poison the sums. */
static void k_weights(const float *x, float *w)
{
    for (int j = 0; j < QK_K; j++)
        w[j] = isfinite(x[j]) ? 1.0f : 0.0f;
}

/*
 * Q4_K / Q5_K: the 8 sub-block scales and mins quantized to 6 bits against
 * d = max scale / 63 and dmin = max min / 63; then the levels picked again
 * against the stored values. Fills d, dmin, scales and L (levels 0..nmax).
 */
static void quantize_k45(const float *x, int nmax, uint16_t *d16, uint16_t *dmin16, uint8_t *scales,
                         uint8_t *L)
{
    float w[QK_K], sc[8], mn[8], max_sc = 0.0f, max_mn = 0.0f;
    k_weights(x, w);
    for (int s = 0; s < 8; s++) {
        sc[s] = search_scale_min(32, nmax, x + 32 * s, w + 32 * s, L + 32 * s, &mn[s]);
        max_sc = fmaxf(max_sc, sc[s]);
        max_mn = fmaxf(max_mn, mn[s]);
    }
    *d16 = util_fp32_to_fp16(max_sc / 63.0f);
    *dmin16 = util_fp32_to_fp16(max_mn / 63.0f);
    const float d = util_fp16_to_fp32(*d16), dmin = util_fp16_to_fp32(*dmin16);
    int ls[8], lm[8];
    for (int s = 0; s < 8; s++) {
        ls[s] = d > 0.0f && isfinite(d) ? clampi(dtype_nearest_int(sc[s] / d), 0, 63) : 0;
        lm[s] = dmin > 0.0f && isfinite(dmin) ? clampi(dtype_nearest_int(mn[s] / dmin), 0, 63) : 0;
    }
    k4_pack_scale_min(scales, ls, lm);
    for (int s = 0; s < 8; s++) {
        const float ds = d * (float)ls[s], ms = dmin * (float)lm[s];
        if (ds > 0.0f && isfinite(ds))
            pick_levels(32, nmax, x + 32 * s, ds, -ms, L + 32 * s);
        else
            memset(L + 32 * s, 0, 32);
    }
}

void dtype_quantize_row_q4_K(const float *src, void *dst, int64_t n)
{
    struct block_q4_K *b = dst;
    uint8_t L[QK_K];
    for (int64_t i = 0; i < n / QK_K; i++) {
        quantize_k45(src + i * QK_K, 15, &b[i].d, &b[i].dmin, b[i].scales, L);
        for (int c = 0; c < 4; c++)
            for (int l = 0; l < 32; l++)
                b[i].qs[32 * c + l] = (uint8_t)(L[64 * c + l] | L[64 * c + 32 + l] << 4);
    }
}

void dtype_quantize_row_q5_K(const float *src, void *dst, int64_t n)
{
    struct block_q5_K *b = dst;
    uint8_t L[QK_K];
    for (int64_t i = 0; i < n / QK_K; i++) {
        quantize_k45(src + i * QK_K, 31, &b[i].d, &b[i].dmin, b[i].scales, L);
        memset(b[i].qh, 0, sizeof b[i].qh);
        for (int c = 0; c < 4; c++) {
            for (int l = 0; l < 32; l++) {
                const int q0 = L[64 * c + l], q1 = L[64 * c + 32 + l];
                b[i].qs[32 * c + l] = (uint8_t)((q0 & 0x0f) | (q1 & 0x0f) << 4);
                b[i].qh[l] |= (uint8_t)((q0 >> 4) << (2 * c) | (q1 >> 4) << (2 * c + 1));
            }
        }
    }
}

/* Q6_K: the 16 signed sub-block scales quantized to int8 against d = the
 * scale of largest magnitude / -128 (the long side of int8 again). */
void dtype_quantize_row_q6_K(const float *src, void *dst, int64_t n)
{
    struct block_q6_K *b = dst;
    for (int64_t i = 0; i < n / QK_K; i++) {
        const float *x = src + i * QK_K;
        float w[QK_K], sc[16], amax = 0.0f, max = 0.0f;
        int8_t Q[QK_K];
        k_weights(x, w);
        for (int s = 0; s < 16; s++) {
            sc[s] = search_scale_sym(16, 32, x + 16 * s, w + 16 * s, Q + 16 * s);
            if (fabsf(sc[s]) > amax) {
                amax = fabsf(sc[s]);
                max = sc[s];
            }
        }
        memset(&b[i], 0, sizeof b[i]);
        b[i].d = util_fp32_to_fp16(max / -128.0f);
        if ((b[i].d & 0x7fff) == 0 && max != 0.0f) /* below fp16: the smallest step instead */
            b[i].d = max > 0.0f ? 0x8001 : 0x0001;
        const float d = util_fp16_to_fp32(b[i].d);
        int L[QK_K];
        for (int s = 0; s < 16; s++) {
            const int q = d != 0.0f && isfinite(d) ? clampi(dtype_nearest_int(sc[s] / d), -128, 127)
                                                   : 0;
            b[i].scales[s] = (int8_t)q;
            const float ds = d * (float)q;
            const float is = ds != 0.0f && isfinite(ds) ? 1.0f / ds : 0.0f;
            for (int j = 16 * s; j < 16 * s + 16; j++)
                L[j] = clampi(dtype_nearest_int(x[j] * is), -32, 31) + 32;
        }
        for (int h = 0; h < 2; h++) {
            const int *q = L + 128 * h;
            for (int l = 0; l < 32; l++) {
                b[i].ql[64 * h + l] = (uint8_t)((q[l] & 0x0f) | (q[l + 64] & 0x0f) << 4);
                b[i].ql[64 * h + 32 + l] = (uint8_t)((q[l + 32] & 0x0f) | (q[l + 96] & 0x0f) << 4);
                b[i].qh[32 * h + l] = (uint8_t)((q[l] >> 4) | (q[l + 32] >> 4) << 2 |
                                                (q[l + 64] >> 4) << 4 | (q[l + 96] >> 4) << 6);
            }
        }
    }
}

/* Q8_K: d = max|x| / 127, q = round(x / d) (ties to even), and the sums of
 * each group of 16 quants. A block holding a NaN or an infinity gets d = NaN
 * and zero quants. */
void dtype_quantize_row_q8_K(const float *src, void *dst, int64_t n)
{
    struct block_q8_K *b = dst;
    for (int64_t i = 0; i < n / QK_K; i++) {
        const float *x = src + i * QK_K;
        float amax = 0.0f;
        int finite = 1;
        for (int j = 0; j < QK_K; j++) {
            finite &= fabsf(x[j]) <= FLT_MAX;
            amax = fmaxf(amax, fabsf(x[j]));
        }
        if (!finite) {
            /* a NaN or an infinity: d = NaN, so every product with this
             * block is NaN instead of the value vanishing */
            memset(&b[i], 0, sizeof b[i]);
            b[i].d = NAN;
            continue;
        }
        const float id = amax > 0.0f ? 127.0f / amax : 0.0f;
        b[i].d = id != 0.0f ? amax / 127.0f : 0.0f;
        for (int j = 0; j < QK_K; j++)
            b[i].qs[j] = (int8_t)clampi(dtype_nearest_int(x[j] * id), -127, 127);
        for (int g = 0; g < QK_K / 16; g++) {
            int sum = 0;
            for (int j = 0; j < 16; j++)
                sum += b[i].qs[16 * g + j];
            b[i].bsums[g] = (int16_t)sum;
        }
    }
}

/* ---- dot products with Q8_K activations ---- */

/* sum_j (d sc q_j - dmin mn) da qa_j = d da sum_s sc_s sum(q qa)
 *                                    - dmin da sum_s mn_s sum(qa), where
 * sum(qa) over a sub-block of 32 is two of the activation's bsums. This is
 * the dot product of one Q4_K (qh NULL) or Q5_K super-block with a Q8_K one. */
static inline float vec_dot_k45(uint16_t d16, uint16_t dmin16, const uint8_t *scales,
                                const uint8_t *qs, const uint8_t *qh, const struct block_q8_K *y)
{
    int sum_q = 0, sum_m = 0;
    for (int sb = 0; sb < 8; sb++) {
        int sc, mn, dot = 0;
        k4_scale_min(scales, sb, &sc, &mn);
        for (int j = 32 * sb; j < 32 * sb + 32; j++)
            dot += k45_quant(qs, qh, j) * y->qs[j];
        sum_q += sc * dot;
        sum_m += mn * (y->bsums[2 * sb] + y->bsums[2 * sb + 1]);
    }
    return util_fp16_to_fp32(d16) * y->d * (float)sum_q -
           util_fp16_to_fp32(dmin16) * y->d * (float)sum_m;
}

float dtype_vec_dot_q4_K_q8_K(int64_t n, const void *w, const void *a)
{
    const struct block_q4_K *x = w;
    const struct block_q8_K *y = a;
    float s = 0.0f;
    for (int64_t i = 0; i < n / QK_K; i++)
        s += vec_dot_k45(x[i].d, x[i].dmin, x[i].scales, x[i].qs, NULL, &y[i]);
    return s;
}

float dtype_vec_dot_q5_K_q8_K(int64_t n, const void *w, const void *a)
{
    const struct block_q5_K *x = w;
    const struct block_q8_K *y = a;
    float s = 0.0f;
    for (int64_t i = 0; i < n / QK_K; i++)
        s += vec_dot_k45(x[i].d, x[i].dmin, x[i].scales, x[i].qs, x[i].qh, &y[i]);
    return s;
}

float dtype_vec_dot_q6_K_q8_K(int64_t n, const void *w, const void *a)
{
    const struct block_q6_K *x = w;
    const struct block_q8_K *y = a;
    float s = 0.0f;
    for (int64_t i = 0; i < n / QK_K; i++) {
        int sum = 0; /* |sum| <= 16 * 128 * 32 * 127 * 16: fits in 32 bits */
        for (int sb = 0; sb < 16; sb++) {
            int dot = 0;
            for (int j = 16 * sb; j < 16 * sb + 16; j++)
                dot += (k6_quant(x[i].ql, x[i].qh, j) - 32) * y[i].qs[j];
            sum += x[i].scales[sb] * dot;
        }
        s += util_fp16_to_fp32(x[i].d) * y[i].d * (float)sum;
    }
    return s;
}
