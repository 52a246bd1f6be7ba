/*
 * kernels_avx2_k.c - the avx2 set's k-quant kernels: packed Q4_K, Q5_K and
 * Q6_K against Q8_K activations (kernels_avx2.h for the packed shape). Compiled
 * with the set's flags; kernels.c reaches it only through the set's table,
 * after checking the CPU runs the set.
 *
 * Every (row, token) pair is summed exactly in 32-bit integers over a
 * super-block, then meets the scales in one or two float multiply-adds, in
 * the same order whatever the number of tokens, so a token alone gives the
 * bits it gives in a batch.
 */
#if defined(__x86_64__) && defined(__GNUC__)
#include "kernels/kernels_avx2.h"

#include <stddef.h>

#include "quant/dtype.h"

#define AI static inline __attribute__((always_inline))
#define GTK 8 /* tokens per tile */

static size_t packed_size(int rows, int cols, size_t per)
{
    return rows < AVX2_GROUP ? 0 : (size_t)(rows / AVX2_GROUP) * 2 * (size_t)(cols / QK_K) * per;
}

/* The loop both layouts share: sub-group u, super-block b, row i of the
 * sub-group: put(block, i, out) fills row i's share of the `per` bytes. */
AI void pack_subs(const void *src, size_t stride, int rows, int cols, size_t bytes, size_t per,
                  uint8_t *dst, void (*put)(const uint8_t *blk, int i, uint8_t *out))
{
    const int nb = cols / QK_K;
    for (int u = 0; u < rows / AVX2_GROUP * 2; u++)
        for (int b = 0; b < nb; b++) {
            uint8_t *out = dst + ((size_t)u * (size_t)nb + (size_t)b) * per;
            for (int i = 0; i < AVX2_SUB; i++)
                put((const uint8_t *)src + (size_t)(AVX2_SUB * u + i) * stride + (size_t)b * bytes,
                    i, out);
        }
}

/* The Q8_K blocks b of tokens t0 .. t0 + T - 1 (lanes past T repeat t0, so
 * their loads stay in bounds). */
AI void q8k_tile(const uint8_t *a, size_t as, int t0, int T, int b, const struct block_q8_K **ab)
{
    _Pragma("GCC unroll 8") for (int t = 0; t < GTK; t++) ab[t] =
        (const struct block_q8_K *)(const void *)(a + (size_t)(t0 + (t < T ? t : 0)) * as) + b;
}

/* Token tiles of up to GTK over the packed sub-groups of rows [r0, r1):
 * SUBFN(sg, nb, a, as, t0, T, y, ldy, r, accumulate) runs one. */
#define K_SUB_CALL(SUBFN, TT) SUBFN(sg, nb, a, as, t0, TT, y, ldy, r, accumulate)
#define PACKED_K_DRIVER(NAME, SUBFN, PER)                                                          \
    void NAME(uint32_t type, int cols, const uint8_t *w, size_t ws, int r0, int r1, const void *a, \
              size_t as, int n, float *y, size_t ldy, int accumulate)                              \
    {                                                                                              \
        (void)type;                                                                                \
        const int nb = cols / QK_K;                                                                \
        AVX2_PACKED_LOOP(GTK, (size_t)nb * (PER), (void)0, K_SUB_CALL, SUBFN)                      \
    }

/*
 * Packed Q4_K, per super-block and sub-group (1184 bytes; a 16-row group, twice that):
 *   0    d of the 8 rows (fp16)           16   dmin (fp16)
 *   32   scales: sub-block s, row i at 32 + 8 s + i (0..63)
 *   96   mins: pair p of sub-blocks (2p, 2p + 1), row i at 96 + 16 p + 2 i (+1)
 *   160  quants: chunk c (sub-blocks 2c, 2c + 1), register m at 160 + 256 c
 *        + 32 m, lane i = bytes 32 c + 4 m .. + 3 of row i (low nibbles:
 *        sub-block 2c, high: 2c + 1), as Q4_K stores them.
 * Packed Q5_K (1440 bytes) is the same followed by
 *   1184 high bits: register m at 1184 + 32 m, lane i = qh[4 m .. 4 m + 3] of
 *        row i: bit s of a byte is bit 4 of that quant of sub-block s.
 * Without VNNI the registers of a sub-block sum in int16 (Q4_K: 8 at once,
 * 16 x 15 x 128 < 32768; Q5_K: 4 at once, 8 x 31 x 128 < 32768), then meet
 * the scale in one madd (the scale in both halves of a row's lane); with
 * VNNI they sum in int32 and meet the scale in one multiply.
 */
#define Q4KP 1184
#define Q5KP 1440

/* The 6-bit scales and mins of a Q4_K or Q5_K super-block. */
AI void q4k_scales(const uint8_t *sc, uint8_t *scale, uint8_t *min)
{
    for (int s = 0; s < 4; s++) {
        scale[s] = sc[s] & 63;
        min[s] = sc[s + 4] & 63;
        scale[s + 4] = (uint8_t)((sc[s + 8] & 0x0f) | (sc[s] >> 6) << 4);
        min[s + 4] = (uint8_t)((sc[s + 8] >> 4) | (sc[s + 4] >> 6) << 4);
    }
}

/* The part Q4_K and Q5_K share (their blocks agree up to qs / qh). */
AI void put_k45(uint16_t d, uint16_t dmin, const uint8_t *scales, const uint8_t *qs, int i,
                uint8_t *out)
{
    uint8_t sc[8], mn[8];
    q4k_scales(scales, sc, mn);
    __builtin_memcpy(out + 2 * i, &d, 2);
    __builtin_memcpy(out + 16 + 2 * i, &dmin, 2);
    for (int s = 0; s < 8; s++) {
        out[32 + 8 * s + i] = sc[s];
        out[96 + 16 * (s / 2) + 2 * i + s % 2] = mn[s];
    }
    for (int c = 0; c < 4; c++)
        for (int m = 0; m < 8; m++)
            __builtin_memcpy(out + 160 + 256 * c + 32 * m + 4 * i, qs + 32 * c + 4 * m, 4);
}

static void put_q4_K(const uint8_t *bytes, int i, uint8_t *out)
{
    const struct block_q4_K *blk = (const struct block_q4_K *)(const void *)bytes;
    put_k45(blk->d, blk->dmin, blk->scales, blk->qs, i, out);
}

static void put_q5_K(const uint8_t *bytes, int i, uint8_t *out)
{
    const struct block_q5_K *blk = (const struct block_q5_K *)(const void *)bytes;
    put_k45(blk->d, blk->dmin, blk->scales, blk->qs, i, out);
    for (int m = 0; m < 8; m++)
        __builtin_memcpy(out + Q4KP + 32 * m + 4 * i, blk->qh + 4 * m, 4);
}

#if AVX2_VNNI != 2 /* (the avx512 set takes only Q5_K from this file) */
size_t AVX2_NAME(k_pack_bytes_q4_K)(int rows, int cols)
{
    return packed_size(rows, cols, Q4KP);
}

void AVX2_NAME(k_pack_q4_K)(const void *src, size_t stride, int rows, int cols, uint8_t *dst)
{
    pack_subs(src, stride, rows, cols, sizeof(struct block_q4_K), Q4KP, dst, put_q4_K);
}
#endif

size_t AVX2_NAME(k_pack_bytes_q5_K)(int rows, int cols)
{
    return packed_size(rows, cols, Q5KP);
}

void AVX2_NAME(k_pack_q5_K)(const void *src, size_t stride, int rows, int cols, uint8_t *dst)
{
    pack_subs(src, stride, rows, cols, sizeof(struct block_q5_K), Q5KP, dst, put_q5_K);
}

/* 8 unsigned bytes as int32 lanes with the value in both 16-bit halves. */
AI __m256i dup16_u8(const uint8_t *p)
{
    const __m256i v = _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)p));
    return _mm256_or_si256(v, _mm256_slli_epi32(v, 16));
}

/* sum_m W[m] . (4 activations at q + 4m, broadcast) over m = 0..7, times
 * the sub-block scales (8 bytes at sc, one per row), per 32-bit lane; five:
 * quants of 5 bits (int16 chains of 4 instead of 8 without VNNI). */
AI __m256i k_sub_dot(const __m256i *W, const uint8_t *q, const uint8_t *sc, int five)
{
#if AVX2_VNNI
    (void)five;
    __m256i p0 = _mm256_setzero_si256(), p1 = _mm256_setzero_si256();
    _Pragma("GCC unroll 4") for (int m = 0; m < 8; m += 2) {
        p0 = AVX2_DPBUSD(p0, W[m], avx2_bcast4(q + 4 * m));
        p1 = AVX2_DPBUSD(p1, W[m + 1], avx2_bcast4(q + 4 * m + 4));
    }
    return _mm256_mullo_epi32(_mm256_add_epi32(p0, p1),
                              _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)sc)));
#else
    const __m256i s16 = dup16_u8(sc);
    __m256i r = _mm256_setzero_si256();
    const int chain = five ? 4 : 8;
    _Pragma("GCC unroll 2") for (int m0 = 0; m0 < 8; m0 += chain) {
        __m256i p = _mm256_maddubs_epi16(W[m0], avx2_bcast4(q + 4 * m0));
        _Pragma("GCC unroll 8") for (int m = m0 + 1; m < m0 + chain; m++) {
            p = _mm256_add_epi16(p, _mm256_maddubs_epi16(W[m], avx2_bcast4(q + 4 * m)));
            AVX2_CHAIN(p);
        }
        r = _mm256_add_epi32(r, _mm256_madd_epi16(p, s16));
    }
    return r;
#endif
}

AI void packed_sub_k45(const uint8_t *sg, int nb, int five, const uint8_t *a, size_t as, int t0,
                       int T, float *y, size_t ldy, int r, int accumulate)
{
    __m256 acc[GTK];
    _Pragma("GCC unroll 8") for (int t = 0; t < GTK; t++) acc[t] = _mm256_setzero_ps();
    const __m256i m4 = _mm256_set1_epi8(0x0f), b4 = _mm256_set1_epi8(0x10);
    const int per = five ? Q5KP : Q4KP;
    for (int b = 0; b < nb; b++) {
        const uint8_t *blk = sg + (size_t)b * (size_t)per;
        avx2_prefetch(blk, per);
        const struct block_q8_K *ab[GTK];
        q8k_tile(a, as, t0, T, b, ab);
        __m256i is[GTK];
        _Pragma("GCC unroll 8") for (int t = 0; t < GTK; t++) is[t] = _mm256_setzero_si256();
        _Pragma("GCC unroll 1") for (int s = 0; s < 8; s++) {
            /* sub-block s: chunk s / 2, low nibbles for even s */
            const uint8_t *wq = blk + 160 + 256 * (s / 2);
            const __m128i shift = _mm_cvtsi32_si128(4 * (s % 2)), hs = _mm_cvtsi32_si128(s);
            __m256i W[8];
            _Pragma("GCC unroll 8") for (int m = 0; m < 8; m++) {
                W[m] = _mm256_and_si256(
                    _mm256_srl_epi16(_mm256_loadu_si256((const __m256i *)(wq + 32 * m)), shift), m4);
                if (five) /* bit s of each byte to bit 4 */
                    W[m] = _mm256_or_si256(
                        W[m], _mm256_and_si256(_mm256_slli_epi16(_mm256_srl_epi16(_mm256_loadu_si256(
                                                   (const __m256i *)(blk + Q4KP + 32 * m)), hs), 4),
                                               b4));
            }
            _Pragma("GCC unroll 8") for (int t = 0; t < T; t++) is[t] = _mm256_add_epi32(
                is[t], k_sub_dot(W, (const uint8_t *)ab[t]->qs + 32 * s, blk + 32 + 8 * s, five));
        }
        const __m256 dw = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)blk));
        const __m256 dm = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(blk + 16)));
        _Pragma("GCC unroll 8") for (int t = 0; t < T; t++) {
            /* sum_s min_s * (sum of sub-block s's activations), pairs at once */
            const int16_t *bs = ab[t]->bsums;
            __m256i ms = _mm256_setzero_si256();
            _Pragma("GCC unroll 4") for (int q = 0; q < 4; q++) {
                const uint32_t pair = (uint32_t)(uint16_t)(int16_t)(bs[4 * q] + bs[4 * q + 1]) |
                                      (uint32_t)(uint16_t)(int16_t)(bs[4 * q + 2] + bs[4 * q + 3]) << 16;
                const __m256i mn = _mm256_cvtepu8_epi16(_mm_loadu_si128((const __m128i *)(blk + 96 + 16 * q)));
                ms = _mm256_add_epi32(ms, _mm256_madd_epi16(mn, _mm256_set1_epi32((int32_t)pair)));
            }
            const __m256 da = _mm256_set1_ps(ab[t]->d);
            acc[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(is[t]), _mm256_mul_ps(dw, da), acc[t]);
            acc[t] = _mm256_fnmadd_ps(_mm256_cvtepi32_ps(ms), _mm256_mul_ps(dm, da), acc[t]);
        }
    }
    _Pragma("GCC unroll 8") for (int t = 0; t < T; t++) avx2_out8(y, ldy, r, t0 + t, acc[t], accumulate);
}

/* Q5_K's fifth bits for sub-block s: bit s of each high-bit byte moved to
 * bit 4 by one shift of the 16-bit lanes (k = 4 - s; a byte's bit 4 comes
 * from its own bits whichever way it moves), the rest masked off. */
AI __m256i k_bit4(__m256i h, int k, __m256i b4)
{
    if (k > 0)
        h = _mm256_slli_epi16(h, k);
    else if (k < 0)
        h = _mm256_srli_epi16(h, -k);
    return _mm256_and_si256(h, b4);
}

#if !AVX2_VNNI
/* One token, chunk c (sub-blocks 2c and 2c + 1): each quant register is
 * loaded once for both its nibbles, where the tile loop above loads it once
 * per sub-block and keeps it for up to GTK tokens; the same exact integer
 * sums as k_sub_dot's (int16 chains as long), so the same bits. Only the
 * set without VNNI takes it; the VNNI sets keep the tile loop for one token
 * (this path was measured and tested on an AVX2-only CPU alone). */
AI __m256i k_one_chunk(const uint8_t *blk, int five, int c, const uint8_t *q)
{
    const __m256i m4 = _mm256_set1_epi8(0x0f), b4 = _mm256_set1_epi8(0x10);
    const uint8_t *wq = blk + 160 + 256 * c, *sc = blk + 32 + 16 * c;
    __m256i r = _mm256_setzero_si256(), p0 = r, p1 = r;
    const __m256i s0 = dup16_u8(sc), s1 = dup16_u8(sc + 8);
    const int chain = five ? 4 : 8;
    _Pragma("GCC unroll 8") for (int m = 0; m < 8; m++)
    {
        const __m256i x = _mm256_loadu_si256((const __m256i *)(wq + 32 * m));
        __m256i lo = _mm256_and_si256(x, m4), hi = _mm256_and_si256(_mm256_srli_epi16(x, 4), m4);
        if (five) {
            const __m256i h = _mm256_loadu_si256((const __m256i *)(blk + Q4KP + 32 * m));
            lo = _mm256_or_si256(lo, k_bit4(h, 4 - 2 * c, b4));
            hi = _mm256_or_si256(hi, k_bit4(h, 3 - 2 * c, b4));
        }
        const __m256i d0 = _mm256_maddubs_epi16(lo, avx2_bcast4(q + 4 * m));
        const __m256i d1 = _mm256_maddubs_epi16(hi, avx2_bcast4(q + 32 + 4 * m));
        p0 = m % chain ? _mm256_add_epi16(p0, d0) : d0;
        p1 = m % chain ? _mm256_add_epi16(p1, d1) : d1;
        AVX2_CHAIN(p0);
        AVX2_CHAIN(p1);
        if (m % chain == chain - 1) {
            r = _mm256_add_epi32(r, _mm256_madd_epi16(p0, s0));
            r = _mm256_add_epi32(r, _mm256_madd_epi16(p1, s1));
        }
    }
    return r;
}

AI void packed_one_k45(const uint8_t *sg, int nb, int five, const uint8_t *a, size_t as, int t0,
                       float *y, size_t ldy, int r, int accumulate)
{
    __m256 acc = _mm256_setzero_ps();
    const int per = five ? Q5KP : Q4KP;
    for (int b = 0; b < nb; b++) {
        const uint8_t *blk = sg + (size_t)b * (size_t)per;
        avx2_prefetch(blk, per);
        const struct block_q8_K *ab =
            (const struct block_q8_K *)(const void *)(a + (size_t)t0 * as) + b;
        __m256i is = _mm256_setzero_si256();
        _Pragma("GCC unroll 4") for (int c = 0; c < 4; c++) is =
            _mm256_add_epi32(is, k_one_chunk(blk, five, c, (const uint8_t *)ab->qs + 64 * c));
        const __m256 dw = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)blk));
        const __m256 dm = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(blk + 16)));
        const int16_t *bs = ab->bsums;
        __m256i ms = _mm256_setzero_si256();
        _Pragma("GCC unroll 4") for (int q = 0; q < 4; q++)
        {
            const uint32_t pair = (uint32_t)(uint16_t)(int16_t)(bs[4 * q] + bs[4 * q + 1]) |
                                  (uint32_t)(uint16_t)(int16_t)(bs[4 * q + 2] + bs[4 * q + 3])
                                      << 16;
            const __m256i mn =
                _mm256_cvtepu8_epi16(_mm_loadu_si128((const __m128i *)(blk + 96 + 16 * q)));
            ms = _mm256_add_epi32(ms, _mm256_madd_epi16(mn, _mm256_set1_epi32((int32_t)pair)));
        }
        const __m256 da = _mm256_set1_ps(ab->d);
        acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(is), _mm256_mul_ps(dw, da), acc);
        acc = _mm256_fnmadd_ps(_mm256_cvtepi32_ps(ms), _mm256_mul_ps(dm, da), acc);
    }
    avx2_out8(y, ldy, r, t0, acc, accumulate);
}
#endif

/* T tokens of a packed Q4_K (five 0) or Q5_K sub-group. */
AI void packed_k45(const uint8_t *sg, int nb, int five, const uint8_t *a, size_t as, int t0, int T,
                   float *y, size_t ldy, int r, int accumulate)
{
#if !AVX2_VNNI
    if (T == 1) {
        packed_one_k45(sg, nb, five, a, as, t0, y, ldy, r, accumulate);
        return;
    }
#endif
    packed_sub_k45(sg, nb, five, a, as, t0, T, y, ldy, r, accumulate);
}

AI void packed_sub_q4_K(const uint8_t *sg, int nb, const uint8_t *a, size_t as, int t0, int T,
                        float *y, size_t ldy, int r, int accumulate)
{
    packed_k45(sg, nb, 0, a, as, t0, T, y, ldy, r, accumulate);
}

AI void packed_sub_q5_K(const uint8_t *sg, int nb, const uint8_t *a, size_t as, int t0, int T,
                        float *y, size_t ldy, int r, int accumulate)
{
    packed_k45(sg, nb, 1, a, as, t0, T, y, ldy, r, accumulate);
}

#if AVX2_VNNI != 2 /* (the avx512 set takes only Q5_K from this file) */
PACKED_K_DRIVER(AVX2_NAME(k_mm_packed_q4_K), packed_sub_q4_K, Q4KP)
#endif
PACKED_K_DRIVER(AVX2_NAME(k_mm_packed_q5_K), packed_sub_q5_K, Q5KP)

/*
 * Packed Q6_K keeps 6 bits a weight (1680 bytes per super-block and
 * sub-group, as the rows' own blocks). Register k (0..63) of a super-block
 * stands for quants 4k..4k+3 (sub-block k / 4) of each row:
 *   0    d of the 8 rows (fp16)
 *   16   scales as pairs: pair p, row i at 16 + 16 p + 2 i (+1): sub-blocks 2p, 2p + 1
 *   144  low 4 bits: register j (0..31) at 144 + 32 j, low nibbles of lane i
 *        for k = j, high nibbles for k = j + 32
 *   1168 high 2 bits: register j (0..15) at 1168 + 32 j, bits 2u, 2u + 1 of
 *        lane i's bytes for k = j + 16 u
 * Quants are q + 32 (0..63): maddubs pairs fit int16 two registers at a time
 * (4 x 63 x 127 < 32768); each sum starts from -32 sum_s scale_s * bsum_s.
 */
#define Q6KP 1680

static void put_q6_K(const uint8_t *bytes, int i, uint8_t *out)
{
    const struct block_q6_K *blk = (const struct block_q6_K *)(const void *)bytes;
    uint8_t q[QK_K];
    for (int j = 0; j < QK_K; j++) {
        const int h = j / 128, e = j % 128, k = e / 32, l = e % 32;
        const uint8_t lo = blk->ql[64 * h + 32 * (k & 1) + l];
        q[j] = (uint8_t)((k < 2 ? lo & 0x0f : lo >> 4) | ((blk->qh[32 * h + l] >> (2 * k)) & 3) << 4);
    }
    __builtin_memcpy(out + 2 * i, &blk->d, 2);
    for (int s = 0; s < 16; s++)
        out[16 + 16 * (s / 2) + 2 * i + s % 2] = (uint8_t)blk->scales[s];
    for (int j = 0; j < 32; j++)
        for (int c = 0; c < 4; c++)
            out[144 + 32 * j + 4 * i + c] =
                (uint8_t)((q[4 * j + c] & 0x0f) | (q[4 * (j + 32) + c] & 0x0f) << 4);
    for (int j = 0; j < 16; j++)
        for (int c = 0; c < 4; c++) {
            uint8_t v = 0;
            for (int u = 0; u < 4; u++)
                v |= (uint8_t)((q[4 * (j + 16 * u) + c] >> 4) << (2 * u));
            out[1168 + 32 * j + 4 * i + c] = v;
        }
}

#if AVX2_VNNI != 2 /* (the avx512 set takes only Q5_K from this file) */
size_t AVX2_NAME(k_pack_bytes_q6_K)(int rows, int cols)
{
    return packed_size(rows, cols, Q6KP);
}

void AVX2_NAME(k_pack_q6_K)(const void *src, size_t stride, int rows, int cols, uint8_t *dst)
{
    pack_subs(src, stride, rows, cols, sizeof(struct block_q6_K), Q6KP, dst, put_q6_K);
}

/* Register k of the quants (k a constant once the loops are unrolled). */
AI __m256i q6_reg(const uint8_t *blk, int k)
{
    const __m256i L = _mm256_loadu_si256((const __m256i *)(blk + 144 + 32 * (k % 32)));
    const __m256i H = _mm256_loadu_si256((const __m256i *)(blk + 1168 + 32 * (k % 16)));
    const __m256i lo = _mm256_and_si256(k < 32 ? L : _mm256_srli_epi16(L, 4), _mm256_set1_epi8(0x0f));
    const int u = k / 16;
    const __m256i h = u == 0 ? _mm256_slli_epi16(H, 4)
                      : u == 1 ? _mm256_slli_epi16(H, 2)
                      : u == 2 ? H
                               : _mm256_srli_epi16(H, 2);
    return _mm256_or_si256(lo, _mm256_and_si256(h, _mm256_set1_epi8(0x30)));
}

/* The scale of sub-block s (of pair registers x = its pair's 16 int16) in
 * both halves of each row's lane. */
AI __m256i q6_scale(__m256i x, int odd)
{
    return odd ? _mm256_or_si256(_mm256_srli_epi32(x, 16),
                                 _mm256_and_si256(x, _mm256_set1_epi32((int32_t)0xffff0000u)))
               : _mm256_or_si256(_mm256_and_si256(x, _mm256_set1_epi32(0xffff)),
                                 _mm256_slli_epi32(x, 16));
}

AI void packed_sub_q6_K(const uint8_t *sg, int nb, const uint8_t *a, size_t as, int t0, int T,
                        float *y, size_t ldy, int r, int accumulate)
{
    __m256 acc[GTK];
    _Pragma("GCC unroll 8") for (int t = 0; t < GTK; t++) acc[t] = _mm256_setzero_ps();
    for (int b = 0; b < nb; b++) {
        const uint8_t *blk = sg + (size_t)b * Q6KP;
        avx2_prefetch(blk, Q6KP);
        const struct block_q8_K *ab[GTK];
        q8k_tile(a, as, t0, T, b, ab);
        __m256i is[GTK];
        _Pragma("GCC unroll 8") for (int t = 0; t < GTK; t++) is[t] = _mm256_setzero_si256();
        _Pragma("GCC unroll 8") for (int t = 0; t < T; t++) {
            /* -32 sum_s scale_s bsum_s, sub-blocks in pairs */
            const int16_t *bs = ab[t]->bsums;
            __m256i cm = _mm256_setzero_si256();
            _Pragma("GCC unroll 8") for (int p = 0; p < 8; p++) {
                const uint32_t pair = (uint32_t)(uint16_t)bs[2 * p] | (uint32_t)(uint16_t)bs[2 * p + 1] << 16;
                const __m256i sc = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(blk + 16 + 16 * p)));
                cm = _mm256_add_epi32(cm, _mm256_madd_epi16(sc, _mm256_set1_epi32((int32_t)pair)));
            }
            is[t] = _mm256_sub_epi32(is[t], _mm256_slli_epi32(cm, 5));
        }
        _Pragma("GCC unroll 16") for (int s = 0; s < 16; s++) {
            const __m256i sp =
                _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(blk + 16 + 16 * (s / 2))));
            /* (VNNI's int32 sums and a multiply by the scale measured 15% slower
             * here than int16 pairs and madd, so both builds take this path) */
            const __m256i sc = q6_scale(sp, s % 2);
            _Pragma("GCC unroll 2") for (int h = 0; h < 2; h++) {
                const int k = 4 * s + 2 * h;
                const __m256i w0 = q6_reg(blk, k), w1 = q6_reg(blk, k + 1);
                _Pragma("GCC unroll 8") for (int t = 0; t < T; t++) {
                    const uint8_t *q = (const uint8_t *)ab[t]->qs + 4 * k;
                    const __m256i p = _mm256_add_epi16(_mm256_maddubs_epi16(w0, avx2_bcast4(q)),
                                                       _mm256_maddubs_epi16(w1, avx2_bcast4(q + 4)));
                    is[t] = _mm256_add_epi32(is[t], _mm256_madd_epi16(p, sc));
                    AVX2_CHAIN(is[t]);
                }
            }
        }
        const __m256 dw = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)blk));
        _Pragma("GCC unroll 8") for (int t = 0; t < T; t++)
            acc[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(is[t]), _mm256_mul_ps(dw, _mm256_set1_ps(ab[t]->d)),
                                     acc[t]);
    }
    _Pragma("GCC unroll 8") for (int t = 0; t < T; t++) avx2_out8(y, ldy, r, t0 + t, acc[t], accumulate);
}

PACKED_K_DRIVER(AVX2_NAME(k_mm_packed_q6_K), packed_sub_q6_K, Q6KP)
#endif
/* ---- unpacked rows (those after the last whole 16-row group) ----
 * One (row, token) pair at a time: per super-block an exact integer sum,
 * then one float multiply (two for Q4_K's mins), super-blocks added in
 * order. */

AI int32_t hsum_epi32(__m256i v)
{
    __m128i x = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    x = _mm_add_epi32(x, _mm_shuffle_epi32(x, 0x4e));
    x = _mm_add_epi32(x, _mm_shuffle_epi32(x, 0xb1));
    return _mm_cvtsi128_si32(x);
}

/* Q4_K (qh NULL) or Q5_K: the quants of chunk c, low nibbles then high,
 * with Q5_K's bit 4 from bits 2c and 2c + 1 of qh. */
AI float dot_k45(int nb, const uint8_t *wb, size_t bytes, size_t qs_off, size_t qh_off,
                 const struct block_q8_K *a)
{
    const __m256i m4 = _mm256_set1_epi8(0x0f), b4 = _mm256_set1_epi8(0x10);
    float s = 0.0f;
    for (int b = 0; b < nb; b++, wb += bytes) {
        uint16_t d, dmin;
        __builtin_memcpy(&d, wb, 2);
        __builtin_memcpy(&dmin, wb + 2, 2);
        uint8_t sc[8], mn[8];
        q4k_scales(wb + 4, sc, mn);
        const __m256i QH = qh_off ? _mm256_loadu_si256((const __m256i *)(wb + qh_off)) : m4;
        __m256i is = _mm256_setzero_si256();
        for (int c = 0; c < 4; c++) {
            const __m256i v = _mm256_loadu_si256((const __m256i *)(wb + qs_off + 32 * c));
            __m256i lo = _mm256_and_si256(v, m4), hi = _mm256_and_si256(_mm256_srli_epi16(v, 4), m4);
            if (qh_off) {
                lo = _mm256_or_si256(lo, _mm256_and_si256(_mm256_slli_epi16(
                    _mm256_srl_epi16(QH, _mm_cvtsi32_si128(2 * c)), 4), b4));
                hi = _mm256_or_si256(hi, _mm256_and_si256(_mm256_slli_epi16(
                    _mm256_srl_epi16(QH, _mm_cvtsi32_si128(2 * c + 1)), 4), b4));
            }
            lo = _mm256_maddubs_epi16(lo, _mm256_loadu_si256((const __m256i *)(a[b].qs + 64 * c)));
            hi = _mm256_maddubs_epi16(hi, _mm256_loadu_si256((const __m256i *)(a[b].qs + 64 * c + 32)));
            is = _mm256_add_epi32(is, _mm256_madd_epi16(lo, _mm256_set1_epi16(sc[2 * c])));
            is = _mm256_add_epi32(is, _mm256_madd_epi16(hi, _mm256_set1_epi16(sc[2 * c + 1])));
        }
        int32_t mins = 0;
        for (int k = 0; k < 8; k++)
            mins += mn[k] * (a[b].bsums[2 * k] + a[b].bsums[2 * k + 1]);
        const float da = a[b].d;
        s += _cvtsh_ss(d) * da * (float)hsum_epi32(is) - _cvtsh_ss(dmin) * da * (float)mins;
    }
    return s;
}

static float dot_q4_K(int nb, const struct block_q4_K *w, const struct block_q8_K *a)
{
    return dot_k45(nb, (const uint8_t *)w, sizeof *w, offsetof(struct block_q4_K, qs), 0, a);
}

static float dot_q5_K(int nb, const struct block_q5_K *w, const struct block_q8_K *a)
{
    return dot_k45(nb, (const uint8_t *)w, sizeof *w, offsetof(struct block_q5_K, qs),
                   offsetof(struct block_q5_K, qh), a);
}

static float dot_q6_K(int nb, const struct block_q6_K *w, const struct block_q8_K *a)
{
    const __m256i m4 = _mm256_set1_epi8(0x0f), m3 = _mm256_set1_epi8(3);
    float s = 0.0f;
    for (int b = 0; b < nb; b++) {
        __m256i is = _mm256_setzero_si256();
        for (int h = 0; h < 2; h++) {
            const __m256i L0 = _mm256_loadu_si256((const __m256i *)(w[b].ql + 64 * h));
            const __m256i L1 = _mm256_loadu_si256((const __m256i *)(w[b].ql + 64 * h + 32));
            const __m256i H = _mm256_loadu_si256((const __m256i *)(w[b].qh + 32 * h));
            const __m256i q[4] = {
                _mm256_or_si256(_mm256_and_si256(L0, m4), _mm256_slli_epi16(_mm256_and_si256(H, m3), 4)),
                _mm256_or_si256(_mm256_and_si256(L1, m4),
                                _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(H, 2), m3), 4)),
                _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(L0, 4), m4),
                                _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(H, 4), m3), 4)),
                _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(L1, 4), m4),
                                _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(H, 6), m3), 4))};
            for (int k = 0; k < 4; k++) {
                /* quants 128 h + 32 k ..: sub-blocks 8 h + 2 k and the next */
                const int sb = 8 * h + 2 * k;
                const __m256i sc = _mm256_set_m128i(_mm_set1_epi16(w[b].scales[sb + 1]),
                                                    _mm_set1_epi16(w[b].scales[sb]));
                const __m256i p = _mm256_maddubs_epi16(
                    q[k], _mm256_loadu_si256((const __m256i *)(a[b].qs + 128 * h + 32 * k)));
                is = _mm256_add_epi32(is, _mm256_madd_epi16(p, sc));
            }
        }
        /* quants are stored as q + 32 */
        int32_t bias = 0;
        for (int k = 0; k < 16; k++)
            bias += w[b].scales[k] * a[b].bsums[k];
        s += _cvtsh_ss(w[b].d) * a[b].d * (float)(hsum_epi32(is) - 32 * bias);
    }
    return s;
}

#define ROWS_MM(NAME, DOT, WBLOCK)                                                                 \
    void NAME(uint32_t type, int cols, const uint8_t *w, size_t ws, int r0, int r1, const void *a, \
              size_t as, int n, float *y, size_t ldy, int accumulate)                              \
    {                                                                                              \
        (void)type;                                                                                \
        for (int r = r0; r < r1; r++)                                                              \
            for (int t = 0; t < n; t++) {                                                          \
                const float v = DOT(cols / QK_K, (const WBLOCK *)(const void *)(w + (size_t)r * ws), \
                                    (const struct block_q8_K *)(const void *)((const uint8_t *)a + \
                                                                              (size_t)t * as));    \
                float *dst = y + (size_t)t * ldy + r;                                              \
                *dst = accumulate ? *dst + v : v;                                                  \
            }                                                                                      \
    }

#if AVX2_VNNI != 2 /* (the avx512 set takes only Q5_K from this file) */
ROWS_MM(AVX2_NAME(k_mm_q4_K), dot_q4_K, struct block_q4_K)
#endif
ROWS_MM(AVX2_NAME(k_mm_q5_K), dot_q5_K, struct block_q5_K)
#if AVX2_VNNI != 2 /* (the avx512 set takes only Q5_K from this file) */
ROWS_MM(AVX2_NAME(k_mm_q6_K), dot_q6_K, struct block_q6_K)
#endif
#endif
