/*
 * kernels_gemm.c - cache-blocked products of the float weight types for the
 * avx512 set (see kernels_gemm.h). This file alone is compiled with the
 * avx512 flags plus AVX512-BF16; kernels.c calls into it only after checking
 * the CPU.
 *
 * Blocking: tokens are taken in blocks of about 384 KiB of activations, and
 * for each, a thread's rows [r0, r1) in blocks of about 256 KiB of weights
 * (512 KiB of weights read 6 tokens at a time, when rows are cut, below);
 * both stay in L2 (1 MiB and up on CPUs with AVX-512) while the block's
 * tokens go 6 at a time over the block's rows 4 at a time. The weights are
 * read from memory once per token block. A 4x6 tile keeps 24 accumulators
 * in registers and loads 4 weight and 6 activation vectors per 24
 * multiply-adds.
 *
 * Columns: when a group of tokens' whole rows take more than 16 KiB (one
 * token never), each row is walked in column blocks of 2 KiB of activations
 * (512 f32 columns), the group's slices copied once per block into a panel
 * that stays in L1 for all the block's rows. Reading the rows in place
 * instead costs an L2 read of every activation vector per tile, and at
 * power-of-two row lengths the 6 activation rows and 4 weight rows (plus
 * the rows being prefetched) all fall in the same L1 sets and evict each
 * other. Between column blocks each pair's 16-lane accumulator is stored
 * as it is and reloaded, so a lane adds its columns in the same order as
 * one pass over the whole row: the summation order of a pair is fixed by
 * the row alone, and one token equals the same token in a batch bit for
 * bit (test_gemm checks exactly that, one token reading rows whole).
 */
#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>

#include "kernels/kernels_gemm.h"
#include "quant/dtype.h"
#include "util.h"

#define AI static inline __attribute__((always_inline))
#define MR 4            /* rows per tile */
#define NR 6            /* tokens per tile */
#define L2_BLOCK 262144 /* bytes of weights per row block */
#define L2_ACTS 393216  /* bytes of activations per token block */

AI void put(float *y, size_t ldy, int r, int t, float v, int accumulate)
{
    float *dst = y + (size_t)t * ldy + r;
    *dst = accumulate ? *dst + v : v;
}

/* Rows per block: whole tiles of rows of `row_bytes` in L2_BLOCK, 4..512. */
static int block_rows(size_t row_bytes)
{
    size_t r = row_bytes ? L2_BLOCK / row_bytes : 512;
    r = r / MR * MR;
    return r < MR ? MR : r > 512 ? 512 : (int)r;
}

/* Tokens per block: whole tiles of activation rows of `row_bytes` in
 * L2_ACTS, at least one tile. */
static int block_tokens(size_t row_bytes)
{
    size_t t = row_bytes ? L2_ACTS / row_bytes : 4096;
    t = t / NR * NR;
    return t < NR ? NR : t > 4096 ? 4096 : (int)t;
}

/* Loads 16 weights of a float type as f32 (exact widening), whole or the
 * first `m` lanes (the rest zero). */
AI __m512 ld_f32(const void *p)
{
    return _mm512_loadu_ps(p);
}
AI __m512 ldm_f32(const void *p, __mmask16 m)
{
    return _mm512_maskz_loadu_ps(m, p);
}
AI __m512 ld_f16(const void *p)
{
    return _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)p));
}
AI __m512 ldm_f16(const void *p, __mmask16 m)
{
    return _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, p));
}
AI __m512 ld_bf16(const void *p)
{
    return _mm512_castsi512_ps(
        _mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i *)p)), 16));
}
AI __m512 ldm_bf16(const void *p, __mmask16 m)
{
    return _mm512_castsi512_ps(
        _mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(m, p)), 16));
}

/*
 * With two or more tokens a tile does enough multiply-adds per weight byte
 * that the hardware prefetcher falls behind and the product stops being
 * bound by memory alone. So a tile of several tokens asks for the same
 * columns of the rows MR further on, the next tile's, which then arrive
 * while this one computes. A prefetch never faults, past the end included,
 * and does not change any result. A one-token tile is left to the hardware.
 */
AI void prefetch_ahead(const void *row, size_t ws, int byte)
{
    /* an address, not a pointer into the object: it may lie past its end */
    const uintptr_t a = (uintptr_t)row + (uintptr_t)MR * ws + (uintptr_t)byte;
    _mm_prefetch((const char *)a, _MM_HINT_T0);
}

/*
 * One tile: R rows from r0 x T tokens from t0 (R <= MR, T <= NR, constants
 * after inlining), over columns [k0, k1). Weights w + r * ws of WB bytes per
 * value; activations at x + t * xs. Per STEP columns every pair gets one
 * multiply-add (OP) into its own accumulator.
 *
 * A row may be walked in several column blocks (K-blocking, see the
 * driver): k0 and k1 are then multiples of STEP, and between blocks each
 * pair's accumulator waits in `buf` (slot (r, t) at buf + (r * NR + t) * 16)
 * exactly as it left the registers. Lane l of a pair therefore adds the
 * columns l, l + STEP', ... in the same order whatever the blocking, and
 * the last block (k1 == cols) does the masked tail, reduces and stores: the
 * result is bit-identical to one pass over the whole row.
 */
#define FLOAT_TILE(NAME, XT, XV, WB, STEP, MASK, LD, LDM, LDX, LDXM, OP)                                                  \
    AI void NAME(int cols, const uint8_t *w, size_t ws, int r0, const int R, const XT *xp,        \
                 size_t xts, size_t xss, int t0, const int T, int k0, int k1, float *buf,          \
                 float *y, size_t ldy, int accumulate)                                             \
    {                                                                                              \
        __m512 acc[MR][NR];                                                                        \
        if (k0 == 0) {                                                                             \
            _Pragma("GCC unroll 4") for (int r = 0; r < R; r++)                                    \
                _Pragma("GCC unroll 6") for (int t = 0; t < T; t++) acc[r][t] =                    \
                    _mm512_setzero_ps();                                                           \
        } else {                                                                                   \
            _Pragma("GCC unroll 4") for (int r = 0; r < R; r++)                                    \
                _Pragma("GCC unroll 6") for (int t = 0; t < T; t++) acc[r][t] =                    \
                    _mm512_load_ps(buf + (r * NR + t) * 16);                                       \
        }                                                                                          \
        const uint8_t *wr[MR];                                                                     \
        _Pragma("GCC unroll 4") for (int r = 0; r < R; r++) wr[r] = w + (size_t)(r0 + r) * ws;     \
        int i = k0;                                                                                \
        for (; i + (STEP) <= k1; i += (STEP), xp += xss) {                                         \
            XV xv[NR];                                                                             \
            if (T > 1)                                                                             \
                _Pragma("GCC unroll 4") for (int r = 0; r < R; r++)                                \
                    prefetch_ahead(wr[r], ws, i * (WB));                                           \
            _Pragma("GCC unroll 6") for (int t = 0; t < T; t++) xv[t] = LDX(xp + t * xts);         \
            _Pragma("GCC unroll 4") for (int r = 0; r < R; r++)                                    \
            {                                                                                      \
                const XV wv = LD(wr[r] + (size_t)i * (WB));                                        \
                _Pragma("GCC unroll 6") for (int t = 0; t < T; t++) acc[r][t] =                    \
                    OP(acc[r][t], wv, xv[t]);                                                      \
            }                                                                                      \
        }                                                                                          \
        if (k1 < cols) {                                                                           \
            _Pragma("GCC unroll 4") for (int r = 0; r < R; r++)                                    \
                _Pragma("GCC unroll 6") for (int t = 0; t < T; t++)                                \
                    _mm512_store_ps(buf + (r * NR + t) * 16, acc[r][t]);                           \
            return;                                                                                \
        }                                                                                          \
        if (i < cols) {                                                                            \
            const MASK m = (MASK)((1ull << (cols - i)) - 1);                                       \
            XV xv[NR];                                                                             \
            _Pragma("GCC unroll 6") for (int t = 0; t < T; t++) xv[t] = LDXM(xp + t * xts, m);     \
            _Pragma("GCC unroll 4") for (int r = 0; r < R; r++)                                    \
            {                                                                                      \
                const XV wv = LDM(wr[r] + (size_t)i * (WB), m);                                    \
                _Pragma("GCC unroll 6") for (int t = 0; t < T; t++) acc[r][t] =                    \
                    OP(acc[r][t], wv, xv[t]);                                                      \
            }                                                                                      \
        }                                                                                          \
        _Pragma("GCC unroll 4") for (int r = 0; r < R; r++)                                        \
            _Pragma("GCC unroll 6") for (int t = 0; t < T; t++)                                    \
                put(y, ldy, r0 + r, t0 + t, _mm512_reduce_add_ps(acc[r][t]), accumulate);          \
    }

AI __m512 fma_ps(__m512 acc, __m512 w, __m512 x)
{
    return _mm512_fmadd_ps(w, x, acc);
}
AI __m512 ldx_f32(const float *p)
{
    return _mm512_loadu_ps(p);
}

/*
 * BF16 activations with VDPBF16PS: 32 columns per step, a last partial
 * step with zeros past the end (a lone last column pairs with a zero,
 * whose product adds +0).
 */
AI __m512bh ld_bh(const void *p)
{
    return (__m512bh)_mm512_loadu_si512(p);
}
AI __m512bh ldm_bh(const void *p, __mmask32 m)
{
    return (__m512bh)_mm512_maskz_loadu_epi16(m, p);
}
AI __m512 dp_bh(__m512 acc, __m512bh w, __m512bh x)
{
    return _mm512_dpbf16_ps(acc, w, x);
}

FLOAT_TILE(tile_f32, float, __m512, 4, 16, __mmask16, ld_f32, ldm_f32, ldx_f32, ldm_f32, fma_ps)
FLOAT_TILE(tile_f16, float, __m512, 2, 16, __mmask16, ld_f16, ldm_f16, ldx_f32, ldm_f32, fma_ps)
FLOAT_TILE(tile_bf16, float, __m512, 2, 16, __mmask16, ld_bf16, ldm_bf16, ldx_f32, ldm_f32,
           fma_ps)
FLOAT_TILE(tile_bf16_dp, uint16_t, __m512bh, 2, 32, __mmask32, ld_bh, ldm_bh, ld_bh, ldm_bh, dp_bh)

/*
 * Columns per block. A tile reads its NR tokens' activations once for each
 * MR rows of the block; to serve all of them from L1, the columns are cut
 * into blocks of at most KC_ACTS bytes per activation row (NR of them take
 * 12 KiB, a quarter of a 48 KiB L1), each a multiple of STEP, so that the
 * tokens' slices stay in L1 while the block's rows stream past them from
 * L2. Returns cols when the row is short enough to be one block.
 */
#define KC_ACTS 2048
#define L1_ACTS 16384
static int block_cols(int cols, size_t act_bytes, int step)
{
    const int want = (int)(KC_ACTS / act_bytes); /* a multiple of step */
    if (cols <= want)
        return cols;
    const int nk = (cols + want - 1) / want;
    return ((cols + nk - 1) / nk + step - 1) / step * step;
}

/*
 * The activations of T tokens (from t0; rows of `as` bytes at a), bytes
 * [b0, b1) of each, copied into `panel` as the tile reads them: per 64
 * bytes of columns (one vector), the T tokens' vectors side by side at a
 * stride of NR vectors, zeros past b1. The tile then reads one contiguous
 * run instead of NR rows that, at power-of-two row lengths, all fall in
 * the same sets of the L1 cache (and evict each other and the weights).
 * A copy: the values, and so the results, are unchanged.
 */
#define PANEL_BYTES (NR * KC_ACTS)
static void pack_panel(const void *a, size_t as, int t0, int T, int b0, int b1, uint8_t *panel)
{
    for (int t = 0; t < T; t++) {
        const uint8_t *src = (const uint8_t *)a + (size_t)(t0 + t) * as;
        uint8_t *dst = panel + (size_t)t * 64;
        int b = b0;
        for (; b + 64 <= b1; b += 64, dst += NR * 64)
            _mm512_store_si512(dst, _mm512_loadu_si512(src + b));
        if (b < b1)
            _mm512_store_si512(dst, _mm512_maskz_loadu_epi8((__mmask64)((1ull << (b1 - b)) - 1),
                                                            src + b));
    }
}

/* Rows of a block whose accumulators wait between column blocks (a
 * multiple of MR); the driver keeps them on its stack. */
#define BUF_ROWS 64

/*
 * The walk: token blocks, row blocks, then tokens NR at a time (the last
 * 1..5 as one narrower tile), then column blocks, then the block's rows MR
 * at a time (a last 1..3 rows one by one). TILE is called with constant R
 * and T so each shape compiles to its own register tile.
 */
#define PASS(TILE, T)                                                                              \
    do {                                                                                           \
        /* whole rows read in place when T of them fit in L1, else column                         \
         * blocks read from a packed panel */                                                      \
        const int whole_ = T == 1 || (size_t)(T) * (size_t)cols * (size_t)esz <= L1_ACTS;          \
        const int kc_ = whole_ ? cols : kc;                                                        \
        for (int k0 = 0; k0 < cols; k0 += kc_) {                                                   \
            const int k1 = cols - k0 < kc_ ? cols : k0 + kc_;                                      \
            const void *xp_ = (const uint8_t *)a + (size_t)t * as;                                 \
            size_t xts_ = as / (size_t)esz, xss_ = (size_t)step;                                   \
            if (!whole_) {                                                                         \
                pack_panel(a, as, t, T, k0 * esz, k1 * esz, panel);                                \
                xp_ = panel;                                                                       \
                xts_ = (size_t)step;                                                               \
                xss_ = (size_t)NR * (size_t)step;                                                  \
            }                                                                                      \
            int r_ = rb;                                                                           \
            for (; r_ + MR <= re; r_ += MR)                                                        \
                TILE(cols, w, ws, r_, MR, xp_, xts_, xss_, t, T, k0, k1,                           \
                     buf + (size_t)(r_ - rb) * NR * 16, y, ldy, accumulate);                       \
            for (; r_ < re; r_++)                                                                  \
                TILE(cols, w, ws, r_, 1, xp_, xts_, xss_, t, T, k0, k1,                            \
                     buf + (size_t)(r_ - rb) * NR * 16, y, ldy, accumulate);                       \
        }                                                                                          \
    } while (0)

#define GEMM_DRIVER(NAME, TILE, ATYPE, WB, STEP)                                                   \
    void NAME(uint32_t type, int cols, const uint8_t *w, size_t ws, int r0, int r1,                \
              const void *a, size_t as, int n, float *y, size_t ldy, int accumulate)               \
    {                                                                                              \
        (void)type;                                                                                \
        const int esz = (int)sizeof(ATYPE), step = STEP, kc = block_cols(cols, sizeof(ATYPE), STEP); \
        int nb = block_rows((size_t)cols * (WB) / (kc < cols ? 2 : 1));                            \
        if (kc < cols && nb > BUF_ROWS)                                                            \
            nb = BUF_ROWS;                                                                         \
        const int tb = block_tokens(as);                                                           \
        float buf[BUF_ROWS * NR * 16] __attribute__((aligned(64)));                                \
        uint8_t panel[PANEL_BYTES] __attribute__((aligned(64)));                                   \
        for (int t0 = 0; t0 < n; t0 += tb) {                                                       \
            const int te = n - t0 < tb ? n : t0 + tb;                                              \
            for (int rb = r0; rb < r1; rb += nb) {                                                 \
                const int re = r1 - rb < nb ? r1 : rb + nb;                                        \
                int t = t0;                                                                        \
                for (; t + NR <= te; t += NR)                                                      \
                    PASS(TILE, NR);                                                                \
                switch (te - t) {                                                                  \
                case 1: PASS(TILE, 1); break;                                                      \
                case 2: PASS(TILE, 2); break;                                                      \
                case 3: PASS(TILE, 3); break;                                                      \
                case 4: PASS(TILE, 4); break;                                                      \
                case 5: PASS(TILE, 5); break;                                                      \
                default: break;                                                                    \
                }                                                                                  \
            }                                                                                      \
        }                                                                                          \
    }

GEMM_DRIVER(kern_gemm_f32, tile_f32, float, 4, 16)
GEMM_DRIVER(kern_gemm_f16, tile_f16, float, 2, 16)
GEMM_DRIVER(kern_gemm_bf16, tile_bf16, float, 2, 16)
GEMM_DRIVER(kern_gemm_bf16_dp, tile_bf16_dp, uint16_t, 2, 32)

/*
 * BF16 activations, bit for bit util_fp32_to_bf16: round to nearest-even
 * on the bits (x + 0x7fff + bit 16 of x, then the top half), a NaN kept as
 * a quiet NaN with its sign and top payload (x >> 16 | 0x40).
 */
void kern_gemm_act_bf16(const float *x, void *dst, int cols)
{
    uint16_t *out = dst;
    int i = 0;
    for (; i + 16 <= cols; i += 16) {
        const __m512i v = _mm512_loadu_si512(x + i);
        const __m512i lsb = _mm512_and_si512(_mm512_srli_epi32(v, 16), _mm512_set1_epi32(1));
        __m512i r = _mm512_srli_epi32(
            _mm512_add_epi32(v, _mm512_add_epi32(lsb, _mm512_set1_epi32(0x7fff))), 16);
        const __mmask16 nan = _mm512_cmpgt_epu32_mask(
            _mm512_and_si512(v, _mm512_set1_epi32(0x7fffffff)), _mm512_set1_epi32(0x7f800000));
        r = _mm512_mask_or_epi32(r, nan, _mm512_srli_epi32(v, 16), _mm512_set1_epi32(0x40));
        _mm256_storeu_si256((__m256i *)(void *)(out + i), _mm512_cvtepi32_epi16(r));
    }
    for (; i < cols; i++)
        out[i] = util_fp32_to_bf16(x[i]);
}

/*
 * Q8_K activations (the partner of the k-quants), bit for bit the
 * reference's (quant/dtype_k.c): per 256 values amax = max |x|, d = amax /
 * 127, q = nearest-even(x * (127 / amax)) clamped to +-127, bsums the sums
 * of 16; a block with a NaN or an infinity gets d = NaN and zeros. The
 * conversion rounds to nearest-even (the default rounding mode, which the
 * reference's magic-number rounding matches for |v| < 2^22).
 */
void kern_gemm_act_q8_K(const float *x, void *dst, int cols)
{
    struct block_q8_K *b = dst;
    const __m512 abs_mask = _mm512_castsi512_ps(_mm512_set1_epi32(0x7fffffff));
    for (int i = 0; i < cols / QK_K; i++, x += QK_K) {
        __m512 m = _mm512_setzero_ps();
        __mmask16 bad = 0;
        _Pragma("GCC unroll 16") for (int k = 0; k < QK_K / 16; k++) {
            const __m512 a = _mm512_and_ps(_mm512_loadu_ps(x + 16 * k), abs_mask);
            /* NaN or infinity: not <= FLT_MAX */
            bad |= _mm512_cmp_ps_mask(a, _mm512_set1_ps(3.40282347e38f), _CMP_NLE_UQ);
            m = _mm512_max_ps(m, a);
        }
        const float amax = _mm512_reduce_max_ps(m);
        const float id = amax > 0.0f ? 127.0f / amax : 0.0f;
        if (bad || id > 3.40282347e38f) {
            /* non-finite values, or a block so small that 127 / amax
             * overflows: the reference's own handling */
            dtype_quantize_row_q8_K(x, &b[i], QK_K);
            continue;
        }
        b[i].d = id != 0.0f ? amax / 127.0f : 0.0f;
        const __m512 idv = _mm512_set1_ps(id);
        _Pragma("GCC unroll 16") for (int k = 0; k < QK_K / 16; k++) {
            __m512i q = _mm512_cvt_roundps_epi32(_mm512_mul_ps(_mm512_loadu_ps(x + 16 * k), idv),
                                                 _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
            q = _mm512_min_epi32(_mm512_max_epi32(q, _mm512_set1_epi32(-127)),
                                 _mm512_set1_epi32(127));
            _mm_storeu_si128((__m128i *)(void *)(b[i].qs + 16 * k), _mm512_cvtepi32_epi8(q));
            b[i].bsums[k] = (int16_t)_mm512_reduce_add_epi32(q);
        }
    }
}

#endif
