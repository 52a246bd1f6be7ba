/*
 * test_gemm.c - the cache-blocked float products (kernels/kernels_gemm.h)
 * against sums computed here in double, and against the scalar set: F32,
 * F16 and BF16 weights with f32 activations, and BF16 weights with bf16
 * activations (VDPBF16PS) where the CPU has AVX512-BF16. Shapes cover
 * columns that are not a multiple of the vector (tails of 1..31), row
 * counts that cross the kernels' row blocks and are not a multiple of the
 * 4-row tile, and token counts around the 6-token tile. Rows of 1000
 * columns and more are long enough that a batch's tiles walk them in
 * column blocks through a packed panel while one token reads them whole,
 * so "one token alone equals the batch" below also checks that the
 * blocked walk adds every pair's columns in the one-pass order.
 *
 * Bounds: each product w * x is exact in double, so the kernel's only error
 * is its float additions: at most gamma(cols) = cols * u / (1 - cols * u),
 * u = 2^-24, times sum |w * x| (the classic bound for any order of
 * summation). bf16 activations are compared with the products of the
 * rounded activations (then the same bound), and with the f32 activations
 * within 2^-8 * sum |w * x| (bf16 keeps 8 significant bits, so each rounded
 * activation is within 2^-9 of its value).
 *
 * The avx512 set's Q8_K and BF16 activation conversions (in the same file)
 * are checked here too, bit for bit against the reference on values made
 * for their edges.
 *
 * Exactness: one token alone equals that token in a batch, a sub-range of
 * rows equals the same rows of the whole range, and accumulating adds the
 * same product to y, bit for bit.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "kernels/kernels.h"
#include "kernels/kernels_gemm.h"
#include "quant/dtype.h"
#include "util.h"

#if defined(__x86_64__) && defined(__GNUC__)

static float frand(uint64_t *s)
{
    return 2.0f * util_rng_uniform(s) - 1.0f;
}

static int same_bits(float a, float b)
{
    return memcmp(&a, &b, sizeof a) == 0 || (a != a && b != b);
}

static double gamma_n(int n)
{
    const double u = ldexp(1.0, -24);
    return n * u / (1.0 - n * u);
}

struct kernel {
    const char *name;
    uint32_t wtype, atype; /* weights, activations */
    kern_mm_fn run;
};

/* One shape: rows x cols weights, n tokens. */
static void check_shape(const struct kernel *k, int rows, int cols, int n, uint64_t *s)
{
    const size_t ws = dtype_row_size(k->wtype, cols);
    const size_t as = kern_act_row_bytes(k->atype, cols);
    uint8_t *w = malloc((size_t)rows * ws);
    float *wd = malloc((size_t)rows * cols * sizeof(float)); /* weights' values */
    float *xf = malloc((size_t)n * cols * sizeof(float));    /* f32 activations */
    uint8_t *a = malloc((size_t)n * as);                     /* as the kernel takes them */
    float *ad = malloc((size_t)n * cols * sizeof(float));    /* their values */
    float *y = malloc((size_t)n * rows * sizeof(float));
    float *y1 = malloc((size_t)rows * sizeof(float));
    float *yr = malloc((size_t)n * rows * sizeof(float));
    float *c = malloc((size_t)n * rows * sizeof(float));
    for (int i = 0; i < rows * cols; i++) {
        const float v = frand(s);
        uint8_t *dst = w + (size_t)(i / cols) * ws;
        const int j = i % cols;
        if (k->wtype == DTYPE_F32) {
            memcpy(dst + 4 * (size_t)j, &v, 4);
        } else {
            const uint16_t h =
                k->wtype == DTYPE_F16 ? util_fp32_to_fp16(v) : util_fp32_to_bf16(v);
            memcpy(dst + 2 * (size_t)j, &h, 2);
        }
    }
    for (int r = 0; r < rows; r++)
        dtype_get(k->wtype)->dequantize(w + (size_t)r * ws, wd + (size_t)r * cols, cols);
    for (int i = 0; i < n * cols; i++)
        xf[i] = 4.0f * frand(s);
    for (int t = 0; t < n; t++) {
        if (k->atype == DTYPE_F32)
            memcpy(a + (size_t)t * as, xf + (size_t)t * cols, as);
        else
            kern_act_quantize(k->atype, xf + (size_t)t * cols, a + (size_t)t * as, cols);
        dtype_get(k->atype)->dequantize(a + (size_t)t * as, ad + (size_t)t * cols, cols);
    }
    for (int i = 0; i < n * rows; i++)
        y[i] = 12345.0f; /* must be overwritten */

    k->run(k->wtype, cols, w, ws, 0, rows, a, as, n, y, (size_t)rows, 0);

    /* against double sums of the same values, and of the f32 activations */
    int bad = 0, bad_f32 = 0;
    double worst = 0;
    for (int t = 0; t < n; t++)
        for (int r = 0; r < rows; r++) {
            double ref = 0, mag = 0, ref32 = 0;
            for (int j = 0; j < cols; j++) {
                const double wv = wd[(size_t)r * cols + j];
                ref += wv * ad[(size_t)t * cols + j];
                mag += fabs(wv * ad[(size_t)t * cols + j]);
                ref32 += wv * xf[(size_t)t * cols + j];
            }
            const double got = y[(size_t)t * rows + r], e = fabs(got - ref);
            bad += !(e <= gamma_n(cols) * mag);
            bad_f32 += !(fabs(got - ref32) <= ldexp(1.0, -8) * mag + gamma_n(cols) * mag);
            worst = e / (mag + 1e-30) > worst ? e / (mag + 1e-30) : worst;
        }
    CHECKF(bad == 0, "%s %dx%d, %d tokens: %d results off the double sum (worst %g of the magnitude)",
           k->name, rows, cols, n, bad, worst);
    CHECKF(bad_f32 == 0, "%s %dx%d, %d tokens: %d results off the f32 activations' sum", k->name,
           rows, cols, n, bad_f32);

    /* against the scalar set (f32 activations: the same within the bound) */
    const struct kern_mm *ref = kern_isa_get("scalar")->mm[k->wtype].run
                                    ? &kern_isa_get("scalar")->mm[k->wtype]
                                    : NULL;
    if (ref && k->atype == DTYPE_F32) {
        ref->run(k->wtype, cols, w, ws, 0, rows, a, as, n, yr, (size_t)rows, 0);
        int off = 0;
        for (int t = 0; t < n; t++)
            for (int r = 0; r < rows; r++) {
                double mag = 0;
                for (int j = 0; j < cols; j++)
                    mag += fabs((double)wd[(size_t)r * cols + j] * ad[(size_t)t * cols + j]);
                off += !(fabs(yr[(size_t)t * rows + r] - y[(size_t)t * rows + r]) <=
                         2 * gamma_n(cols) * mag);
            }
        CHECKF(off == 0, "%s %dx%d: %d results off the scalar set's", k->name, rows, cols, off);
    }

    /* each token alone */
    int same = 1;
    for (int t = 0; t < n; t++) {
        k->run(k->wtype, cols, w, ws, 0, rows, a + (size_t)t * as, as, 1, y1, (size_t)rows, 0);
        for (int r = 0; r < rows; r++)
            same &= same_bits(y1[r], y[(size_t)t * rows + r]);
    }
    CHECKF(same, "%s %dx%d, %d tokens: one token alone differs from the batch", k->name, rows,
           cols, n);

    /* rows [r0, r1) from an odd start, added onto c: c + the product there,
     * c elsewhere */
    const int r0 = rows > 2 ? 1 + rows / 3 : 0, r1 = rows > 3 ? rows - 1 : rows;
    for (int i = 0; i < n * rows; i++)
        c[i] = yr[i] = frand(s);
    k->run(k->wtype, cols, w, ws, r0, r1, a, as, n, yr, (size_t)rows, 1);
    int acc_same = 1;
    for (int t = 0; t < n; t++)
        for (int r = 0; r < rows; r++) {
            const size_t i = (size_t)t * rows + r;
            acc_same &= r >= r0 && r < r1 ? same_bits(yr[i], c[i] + y[i]) : same_bits(yr[i], c[i]);
        }
    CHECKF(acc_same, "%s %dx%d, %d tokens: rows %d..%d accumulated differ", k->name, rows, cols,
           n, r0, r1);
    free(w), free(wd), free(xf), free(a), free(ad), free(y), free(y1), free(yr), free(c);
}

/* Non-finite activations must show in every row that meets them. */
static void check_nonfinite(const struct kernel *k)
{
    const int rows = 9, cols = 37, n = 7;
    uint64_t s = 99;
    const size_t ws = dtype_row_size(k->wtype, cols), as = kern_act_row_bytes(k->atype, cols);
    uint8_t *w = calloc((size_t)rows, ws), *a = malloc((size_t)n * as);
    float *x = malloc((size_t)n * cols * sizeof(float)), *y = malloc((size_t)n * rows * sizeof(float));
    for (int i = 0; i < rows * cols; i++) {
        const float v = frand(&s) + 2.0f; /* never zero: 0 * inf would be NaN anyway */
        if (k->wtype == DTYPE_F32) {
            memcpy(w + (size_t)(i / cols) * ws + 4 * (size_t)(i % cols), &v, 4);
        } else {
            const uint16_t h = k->wtype == DTYPE_F16 ? util_fp32_to_fp16(v) : util_fp32_to_bf16(v);
            memcpy(w + (size_t)(i / cols) * ws + 2 * (size_t)(i % cols), &h, 2);
        }
    }
    for (int i = 0; i < n * cols; i++)
        x[i] = frand(&s);
    x[2 * cols + 36] = NAN;      /* token 2, the tail */
    x[5 * cols + 3] = INFINITY;  /* token 5 */
    for (int t = 0; t < n; t++) {
        if (k->atype == DTYPE_F32)
            memcpy(a + (size_t)t * as, x + (size_t)t * cols, as);
        else
            kern_act_quantize(k->atype, x + (size_t)t * cols, a + (size_t)t * as, cols);
    }
    k->run(k->wtype, cols, w, ws, 0, rows, a, as, n, y, (size_t)rows, 0);
    int ok = 1;
    for (int t = 0; t < n; t++)
        for (int r = 0; r < rows; r++) {
            const float v = y[(size_t)t * rows + r];
            ok &= t == 2 ? v != v : t == 5 ? isinf(v) && v > 0 : isfinite(v);
        }
    CHECKF(ok, "%s: NaN and infinity in the activations", k->name);
    free(w), free(a), free(x), free(y);
}

/* The Q8_K activation quantizer against the reference, bit for bit, on
 * blocks made to hit its edges: ties at every half (amax 127, so the scale
 * is 1), values past +-127 after scaling, zeros, a NaN, an infinity, tiny
 * and denormal blocks (127 / amax overflows), and random ones. */
static void check_act_q8_K(void)
{
    enum { NB = 9, N = NB * QK_K };
    float *x = malloc(N * sizeof(float));
    uint64_t s = 5;
    for (int j = 0; j < QK_K; j++) {
        x[j] = (float)(j - 128) * 0.5f;                           /* ties, amax 64 */
        x[QK_K + j] = j == 0 ? 127.0f : (float)(j - 128) * 0.5f;  /* ties at scale 1 */
        x[2 * QK_K + j] = 0.0f;                                   /* zeros */
        x[3 * QK_K + j] = frand(&s);
        x[4 * QK_K + j] = 1e-30f * frand(&s);                     /* tiny */
        x[5 * QK_K + j] = 1e-45f * (float)(j % 3);                /* denormal */
        x[6 * QK_K + j] = 3e38f * frand(&s);                      /* huge */
        x[7 * QK_K + j] = frand(&s);
        x[8 * QK_K + j] = -frand(&s) * 1000.0f;
    }
    x[3 * QK_K + 17] = NAN;
    x[7 * QK_K + 255] = -INFINITY;
    const size_t bytes = dtype_row_size(DTYPE_Q8_K, N);
    uint8_t *want = malloc(bytes), *got = malloc(bytes);
    dtype_get(DTYPE_Q8_K)->quantize(x, want, N);
    memset(got, 0xa5, bytes);
    kern_gemm_act_q8_K(x, got, N);
    for (int b = 0; b < NB; b++) {
        const size_t o = (size_t)b * sizeof(struct block_q8_K);
        CHECKF(memcmp(want + o, got + o, sizeof(struct block_q8_K)) == 0,
               "Q8_K activations, block %d: differs from the reference", b);
    }
    /* and through the avx512 set's table */
    CHECK(kern_isa_get("avx512")->act_quantize[DTYPE_Q8_K] == kern_gemm_act_q8_K);
    free(x), free(want), free(got);
}

/* The bf16 activation conversion against util_fp32_to_bf16, bit for bit:
 * ties both ways, the largest float (rounds to infinity), infinities, NaNs
 * of both signs and several payloads, zeros, denormals, random values, and
 * a length with a tail. */
static void check_act_bf16(void)
{
    static const uint32_t edge[] = {0x3f808000, 0x3f818000, 0xbf808000, 0xbf818000, 0x7f7fffff,
                                    0xff7fffff, 0x7f800000, 0xff800000, 0x7fc00000, 0xffc00001,
                                    0x7f800001, 0x7fbfffff, 0xff80ffff, 0x00000000, 0x80000000,
                                    0x00000001, 0x007fffff, 0x80008000, 0x00018000, 0x3f7fffff};
    const int n = 37 + 16 * 3;
    float x[37 + 16 * 3];
    uint64_t s = 17;
    for (int i = 0; i < n; i++)
        x[i] = 100.0f * frand(&s);
    for (size_t i = 0; i < sizeof edge / sizeof edge[0]; i++) {
        memcpy(&x[i], &edge[i], 4);
        memcpy(&x[n - 1 - (int)i], &edge[i], 4); /* the tail too */
    }
    uint16_t got[37 + 16 * 3];
    kern_gemm_act_bf16(x, got, n);
    int same = 1;
    for (int i = 0; i < n; i++) {
        const int ok = got[i] == util_fp32_to_bf16(x[i]);
        same &= ok;
        if (!ok)
            printf("bf16 of element %d: %04x, want %04x\n", i, got[i],
                   util_fp32_to_bf16(x[i]));
    }
    CHECKF(same, "bf16 activations differ from util_fp32_to_bf16");
    CHECK(kern_isa_get("avx512")->act_quantize[DTYPE_BF16] == kern_gemm_act_bf16);
}

int main(void)
{
    kern_init();
    const struct kern_isa *avx512 = kern_isa_get("avx512");
    if (!avx512) {
        printf("avx512: not supported by this CPU, skipped\n");
        TEST_MAIN_END();
    }
    struct kernel ks[5] = {
        {"f32", DTYPE_F32, DTYPE_F32, kern_gemm_f32},
        {"f16", DTYPE_F16, DTYPE_F32, kern_gemm_f16},
        {"bf16 (f32 activations)", DTYPE_BF16, DTYPE_F32, kern_gemm_bf16},
    };
    int nk = 3;
    /* the set takes the bf16-activation kernel exactly when the CPU has it */
    const struct kern_mm *set_bf16 = &avx512->mm[DTYPE_BF16];
    if (set_bf16->act_type == DTYPE_BF16) {
        CHECK(set_bf16->run == kern_gemm_bf16_dp);
        ks[nk++] = (struct kernel){"bf16 (bf16 activations)", DTYPE_BF16, DTYPE_BF16,
                                   kern_gemm_bf16_dp};
        printf("AVX512-BF16: the avx512 set runs BF16 weights on bf16 activations\n");
    } else {
        CHECK(set_bf16->run == kern_gemm_bf16);
        printf("no AVX512-BF16: the bf16-activation kernel is not tested here\n");
    }
    CHECK(avx512->mm[DTYPE_F32].run == kern_gemm_f32 && avx512->mm[DTYPE_F16].run == kern_gemm_f16);

    static const int cols_list[] = {1, 7, 16, 17, 31, 32, 33, 63, 100, 257, 1000, 2053, 8195};
    static const int rows_list[] = {1, 3, 4, 6, 37, 70};
    static const int n_list[] = {1, 2, 3, 5, 6, 7, 9, 12, 13, 31};
    const size_t n_count = sizeof n_list / sizeof n_list[0];
    uint64_t s = 2026;
    for (int i = 0; i < nk; i++) {
        for (size_t ci = 0; ci < sizeof cols_list / sizeof cols_list[0]; ci++)
            for (size_t ri = 0; ri < sizeof rows_list / sizeof rows_list[0]; ri++) {
                /* every token count at some shapes, one each elsewhere */
                const int cols = cols_list[ci], rows = rows_list[ri];
                if (cols * rows > 300000 && rows != 70)
                    continue; /* long rows: only the shape that crosses row blocks */
                for (size_t ni = 0; ni < n_count; ni++)
                    if (ci % 3 == 0 || ni == (ci + ri) % n_count)
                        check_shape(&ks[i], rows, cols, n_list[ni], &s);
            }
        check_nonfinite(&ks[i]);
    }
    check_act_q8_K();
    check_act_bf16();
    TEST_MAIN_END();
}

#else
int main(void)
{
    printf("not an x86-64 build: no cache-blocked kernels to test\n");
    TEST_MAIN_END();
}
#endif
