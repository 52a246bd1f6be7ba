/*
 * test_simd.c - every instruction set this CPU runs against the scalar
 * reference, on random data with odd sizes and tails: dot products, axpy,
 * and the matrix products of each weight type (rows x tokens, including
 * row counts that do not fill a 16-row group and 1..9 tokens; then token
 * counts around the token tiles of 4, 8 and 16 and across two and three
 * tiles: 12, 15, 16, 17, 33).
 *
 * The reference for a block type is computed here directly: weights and
 * activations are dequantized (activations after the same int8 rounding the
 * kernels use) and multiplied in double.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "quant/dtype.h"
#include "harness.h"
#include "kernels/kernels.h"
#include "util.h"

static float frand(uint64_t *s)
{
    return 2.0f * util_rng_uniform(s) - 1.0f;
}

/* a and b have the same bits, or are both NaN (a NaN's payload may differ) */
static int same_bits(float a, float b)
{
    return memcmp(&a, &b, sizeof a) == 0 || (a != a && b != b);
}

static const char *isas[] = {"scalar", "avx2", "avxvnni", "avx512"};

static void test_dots(const struct kern_isa *k)
{
    uint64_t s = 11;
    const int sizes[] = {1, 3, 15, 16, 17, 31, 64, 100, 257, 1000, 4099};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        const int n = sizes[i];
        float *w = malloc((size_t)n * 5 * sizeof(float));
        double ref[4] = {0};
        for (int j = 0; j < 5 * n; j++)
            w[j] = frand(&s);
        float *x[4] = {w + n, w + 2 * n, w + 3 * n, w + 4 * n};
        for (int t = 0; t < 4; t++)
            for (int j = 0; j < n; j++)
                ref[t] += (double)w[j] * x[t][j];
        float got[4];
        k->dot_f32_x4(n, w, x[0], x[1], x[2], x[3], got);
        for (int t = 0; t < 4; t++) {
            CHECKF(fabs(got[t] - ref[t]) <= 1e-5 * (n + 1), "%s dot_x4 n=%d: %g vs %g", k->name, n,
                   got[t], ref[t]);
            /* the four-token form equals the one-token form bit for bit */
            const float one = k->dot_f32(n, w, x[t]);
            CHECKF(memcmp(&one, &got[t], sizeof one) == 0, "%s dot n=%d differs from dot_x4",
                   k->name, n);
        }
        float *y = malloc((size_t)n * sizeof(float));
        memcpy(y, x[0], (size_t)n * sizeof(float));
        k->axpy(n, 0.75f, x[1], y);
        int ok = 1;
        for (int j = 0; j < n; j++)
            ok &= fabsf(y[j] - (x[0][j] + 0.75f * x[1][j])) <= 1e-6f;
        CHECKF(ok, "%s axpy n=%d", k->name, n);
        free(y);
        free(w);
    }
}

/* The weight types with matrix kernels, and row lengths to try for each. */
static void test_mm_type(const struct kern_isa *k, uint32_t type, int n_fixed)
{
    /* the set's own kernel, or only a packed one (then the activations are
     * the type's reference partner) */
    const struct kern_mm *mmk = k->mm[type].run ? &k->mm[type] : NULL;
    if (!mmk && !k->pack[type])
        return;
    const struct dtype_traits *tr = dtype_get(type);
    const uint32_t act_type = mmk ? mmk->act_type : tr->vec_dot_type;
    uint64_t s = 1234 + type;
    const int block = tr->block_size > 1 ? tr->block_size : 1;
    const int col_list[] = {block == 1 ? 19 : 32, block == 1 ? 64 : 64, block == 1 ? 301 : 288,
                            block == 1 ? 1024 : 2048};
    const int row_list[] = {1, 5, 16, 37, 48, 80};
    for (size_t ci = 0; ci < 4; ci++)
        for (size_t ri = 0; ri < sizeof row_list / sizeof row_list[0]; ri++) {
            /* a fixed token count: two shapes (a partial last group, whole
             * groups), the longer rows */
            if (n_fixed && (ci < 2 || ri < 3))
                continue;
            const int cols =
                col_list[ci] < block ? block * (int)(ci + 1) : col_list[ci] / block * block;
            const int rows = row_list[ri];
            const int n = n_fixed ? n_fixed : 1 + (int)(ci + ri * 2) % 9; /* 1..9 tokens */
            float *wf = malloc((size_t)rows * cols * sizeof(float));
            float *xf = malloc((size_t)n * cols * sizeof(float));
            for (int i = 0; i < rows * cols; i++)
                wf[i] = frand(&s);
            for (int i = 0; i < n * cols; i++)
                xf[i] = 3.0f * frand(&s);
            /* awkward values for the activation quantizers: a zero block, a
             * NaN, an infinity, huge and tiny values, exact halves */
            if (cols >= 64 && n >= 2) {
                memset(xf, 0, 32 * sizeof(float));
                xf[cols + 3] = NAN;
                xf[cols + 40] = INFINITY;
                xf[cols + 41] = -3e38f;
                xf[cols + 42] = 1e-30f;
                for (int j = 44; j < 64; j++)
                    xf[cols + j] = (float)(j - 54) * 0.5f;
            }
            /* weights in the type (f32 rows pass through) */
            const size_t ws = dtype_row_size(type, cols);
            uint8_t *w = malloc((size_t)rows * ws);
            float *wd = malloc((size_t)rows * cols * sizeof(float));
            for (int r = 0; r < rows; r++) {
                if (type == DTYPE_F32)
                    memcpy(w + (size_t)r * ws, wf + (size_t)r * cols, ws);
                else if (type == DTYPE_F16 || type == DTYPE_BF16)
                    for (int j = 0; j < cols; j++) {
                        const uint16_t h = type == DTYPE_F16
                                               ? util_fp32_to_fp16(wf[(size_t)r * cols + j])
                                               : util_fp32_to_bf16(wf[(size_t)r * cols + j]);
                        memcpy(w + (size_t)r * ws + 2 * (size_t)j, &h, 2);
                    }
                else
                    tr->quantize(wf + (size_t)r * cols, w + (size_t)r * ws, cols);
                tr->dequantize(w + (size_t)r * ws, wd + (size_t)r * cols, cols);
            }
            /* activations as the kernel takes them, and their values */
            const size_t as = kern_act_row_bytes(act_type, cols);
            uint8_t *a = malloc((size_t)n * as);
            float *ad = malloc((size_t)n * cols * sizeof(float));
            for (int t = 0; t < n; t++) {
                if (act_type == DTYPE_F32) {
                    memcpy(a + (size_t)t * as, xf + (size_t)t * cols, as);
                } else {
                    dtype_get(act_type)
                        ->quantize(xf + (size_t)t * cols, a + (size_t)t * as, cols);
                    if (k->act_quantize[act_type]) {
                        uint8_t *a2 = malloc(as);
                        k->act_quantize[act_type](xf + (size_t)t * cols, a2, cols);
                        CHECKF(memcmp(a2, a + (size_t)t * as, as) == 0,
                               "%s: activation quantizer differs from the reference", k->name);
                        free(a2);
                    }
                }
                dtype_get(act_type)
                    ->dequantize(a + (size_t)t * as, ad + (size_t)t * cols, cols);
            }
            /* the batch written (y0) and added onto per-element starting
             * values c (yacc); then each token alone (y1) */
            float *y0 = malloc((size_t)n * rows * sizeof(float));
            float *c = malloc((size_t)n * rows * sizeof(float));
            float *yacc = malloc((size_t)n * rows * sizeof(float));
            float *y1 = malloc((size_t)rows * sizeof(float));
            for (int i = 0; i < n * rows; i++) {
                y0[i] = 12345.0f; /* must be overwritten */
                c[i] = frand(&s);
                yacc[i] = c[i];
            }
            double worst = 0;
            int same = 1, acc_same = 1, nonfinite_ok = 1, n_nonfinite = 0;
            if (mmk) {
                mmk->run(type, cols, w, ws, 0, rows, a, as, n, y0, (size_t)rows, 0);
                mmk->run(type, cols, w, ws, 0, rows, a, as, n, yacc, (size_t)rows, 1);
            }
            for (int t = 0; mmk && t < n; t++) {
                /* one token alone gives the same bits as in the batch, NaN
                 * and infinities included */
                mmk->run(type, cols, w, ws, 0, rows, a + (size_t)t * as, as, 1, y1, (size_t)rows,
                         0);
                for (int r = 0; r < rows; r++) {
                    const size_t i = (size_t)t * rows + r;
                    same &= same_bits(y1[r], y0[i]);
                    acc_same &= same_bits(c[i] + y1[r], yacc[i]);
                    double ref = 0, mag = 0;
                    for (int j = 0; j < cols; j++) {
                        ref += (double)wd[(size_t)r * cols + j] * ad[(size_t)t * cols + j];
                        mag += fabs((double)wd[(size_t)r * cols + j] * ad[(size_t)t * cols + j]);
                    }
                    if (!isfinite(ref)) {
                        /* a NaN or infinity in the activations must show */
                        nonfinite_ok &= !isfinite(y0[i]);
                        n_nonfinite++;
                        continue;
                    }
                    const double e = fabs(y0[i] - ref) / (mag + 1e-6);
                    worst = e > worst || e != e ? e : worst;
                }
            }
            CHECKF(worst < 1e-5, "%s %s mm %dx%d, %d tokens: relative error %g", k->name, tr->name,
                   rows, cols, n, worst);
            CHECKF(same, "%s %s mm %dx%d: one token differs from the batch", k->name, tr->name,
                   rows, cols);
            CHECKF(acc_same, "%s %s mm %dx%d: accumulating differs from y + product", k->name,
                   tr->name, rows, cols);
            CHECKF(nonfinite_ok, "%s %s mm %dx%d: a non-finite activation gave a finite result",
                   k->name, tr->name, rows, cols);
            /* the rows with non-finite values were really there and checked */
            CHECKF(!mmk || n_nonfinite >= (cols >= 64 && n >= 2 ? rows : 0),
                   "%s %s mm %dx%d: %d non-finite rows", k->name, tr->name, rows, cols,
                   n_nonfinite);
            float *y = y0;
            /* the packed layout of whole 16-row groups, when the set has one */
            const size_t pb = k->pack[type] ? k->pack_bytes[type](rows, cols) : 0;
            if (pb > 0) {
                const int g1 = rows / 16 * 16;
                uint8_t *packed = malloc(pb);
                k->pack[type](w, ws, rows, cols, packed);
                const size_t gs = pb / (size_t)(rows / 16);
                k->mm_packed[type](type, cols, packed, gs, 0, g1, a, as, n, y, (size_t)rows, 0);
                double pw = 0;
                int psame = 1, pnonfinite = 1;
                for (int t = 0; t < n; t++) {
                    k->mm_packed[type](type, cols, packed, gs, 0, g1, a + (size_t)t * as, as, 1,
                                       y1, (size_t)rows, 0);
                    for (int r = 0; r < g1; r++) {
                        double ref = 0, mag = 0;
                        for (int j = 0; j < cols; j++) {
                            ref += (double)wd[(size_t)r * cols + j] * ad[(size_t)t * cols + j];
                            mag += fabs((double)wd[(size_t)r * cols + j] * ad[(size_t)t * cols + j]);
                        }
                        psame &= same_bits(y1[r], y[(size_t)t * rows + r]);
                        if (!isfinite(ref)) {
                            pnonfinite &= !isfinite(y[(size_t)t * rows + r]);
                            continue;
                        }
                        const double e = fabs(y[(size_t)t * rows + r] - ref) / (mag + 1e-6);
                        pw = e > pw || e != e ? e : pw;
                    }
                }
                CHECKF(pw < 1e-5, "%s %s packed mm %dx%d, %d tokens: relative error %g", k->name,
                       tr->name, rows, cols, n, pw);
                CHECKF(psame, "%s %s packed mm %dx%d: one token differs from the batch", k->name,
                       tr->name, rows, cols);
                CHECKF(pnonfinite, "%s %s packed mm %dx%d: a non-finite activation gave a finite "
                       "result", k->name, tr->name, rows, cols);
                /* a range from the second group on (as a thread gets it),
                 * added onto c: c + the product, and rows before it untouched */
                if (g1 >= 32) {
                    memcpy(yacc, c, (size_t)n * rows * sizeof(float));
                    k->mm_packed[type](type, cols, packed, gs, 16, g1, a, as, n, yacc,
                                       (size_t)rows, 1);
                    int rsame = 1;
                    for (int t = 0; t < n; t++)
                        for (int r = 0; r < g1; r++) {
                            const size_t i = (size_t)t * rows + r;
                            rsame &= r < 16 ? same_bits(yacc[i], c[i])
                                            : same_bits(yacc[i], c[i] + y[i]);
                        }
                    CHECKF(rsame, "%s %s packed mm %dx%d: rows 16..%d accumulated differ", k->name,
                           tr->name, rows, cols, g1);
                }
                free(packed);
            }
            free(wf), free(xf), free(w), free(wd), free(a), free(ad), free(y0), free(c), free(yacc);
            free(y1);
        }
}

int main(void)
{
    kern_init();
    printf("active instruction set: %s\n", kern_isa_active()->name);
    for (size_t i = 0; i < sizeof isas / sizeof isas[0]; i++) {
        const struct kern_isa *k = kern_isa_get(isas[i]);
        if (!k) {
            printf("%s: not supported by this CPU, skipped\n", isas[i]);
            continue;
        }
        test_dots(k);
        const uint32_t types[] = {DTYPE_F32,  DTYPE_F16,  DTYPE_BF16, DTYPE_Q8_0,
                                  DTYPE_Q4_0, DTYPE_Q4_1, DTYPE_Q5_0, DTYPE_Q5_1,
                                  DTYPE_Q4_K, DTYPE_Q5_K, DTYPE_Q6_K};
        for (size_t t = 0; t < sizeof types / sizeof types[0]; t++)
            test_mm_type(k, types[t], 0);
        const int many[] = {12, 15, 16, 17, 33, 100}; /* 100: blocks of tokens (float types) */
        for (size_t t = 0; t < sizeof types / sizeof types[0]; t++)
            for (size_t m = 0; m < sizeof many / sizeof many[0]; m++)
                test_mm_type(k, types[t], many[m]);
    }
    TEST_MAIN_END();
}
