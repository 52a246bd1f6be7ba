/*
 * test_quant.c - the block formats against llama.cpp (ggml, commit c392e50),
 * an implementation we did not write: fixtures in tests/data/quant/ hold 4
 * rows x 512 floats, ggml's blocks of them for every type, ggml's
 * dequantization of those blocks and ggml's (SIMD) dot products (see
 * tests/data/README.md). Checks:
 *   - strix dequantizes ggml's blocks bit-exactly as ggml does;
 *   - strix's vec_dot on ggml's weight and activation blocks matches ggml's
 *     dot product, and on its own quantized activations matches the float
 *     dot product of the dequantized rows;
 *   - strix's quantizers: RMS error within each format's expected bound and
 *     at most 10% above ggml's on the same rows; zero, constant, tiny and
 *     huge rows, several row lengths.
 */
#include <math.h>
#include <stdint.h>

#include "quant/dtype.h"
#include "harness.h"
#include "util.h"

#define NR 4
#define NC 512

static float input[NR * NC];

static void *load(const char *name, const char *ext, size_t want)
{
    char file[64];
    snprintf(file, sizeof file, "quant/%s.%s", name, ext);
    size_t len = 0;
    char *p = test_read_file(test_path(file), &len);
    CHECKF(p && len == want, "%s: %zu bytes, expected %zu", file, len, want);
    if (p && len != want) {
        free(p);
        return NULL;
    }
    return p;
}

/* the weight types and what each is paired with */
static const uint32_t wtypes[] = {DTYPE_F16,  DTYPE_BF16, DTYPE_Q8_0, DTYPE_Q4_0,
                                  DTYPE_Q4_1, DTYPE_Q5_0, DTYPE_Q5_1, DTYPE_Q4_K,
                                  DTYPE_Q5_K, DTYPE_Q6_K};
#define N_WTYPES (sizeof wtypes / sizeof wtypes[0])

static void test_table(void)
{
    for (size_t k = 0; k < N_WTYPES; k++) {
        const struct dtype_traits *tr = dtype_get(wtypes[k]);
        CHECK(tr && tr->dequantize && tr->quantize && tr->vec_dot);
        const struct dtype_traits *vt = dtype_get(tr->vec_dot_type);
        CHECK(vt && vt->quantize && vt->block_size == tr->block_size);
        CHECK(dtype_from_name(tr->name) == (int)wtypes[k]);
    }
    CHECK(dtype_get(DTYPE_F32)->vec_dot_type == DTYPE_F32);
    CHECK(dtype_get(DTYPE_F16)->vec_dot_type == DTYPE_F32);
    CHECK(dtype_get(DTYPE_Q4_0)->vec_dot_type == DTYPE_Q8_0);
    CHECK(dtype_get(DTYPE_Q5_0)->vec_dot_type == DTYPE_Q8_0);
    CHECK(dtype_get(DTYPE_Q4_1)->vec_dot_type == DTYPE_Q8_1);
    CHECK(dtype_get(DTYPE_Q5_1)->vec_dot_type == DTYPE_Q8_1);
    CHECK(dtype_get(DTYPE_Q4_K)->vec_dot_type == DTYPE_Q8_K);
    CHECK(dtype_get(DTYPE_Q6_K)->vec_dot_type == DTYPE_Q8_K);
    CHECK(dtype_from_name("q4_k") == DTYPE_Q4_K && dtype_from_name("Q4_K_M") == -1);
    CHECK(dtype_from_name("") == -1 && dtype_from_name(NULL) == -1);
    int n;
    const uint32_t *all = dtype_weight_types(&n);
    CHECK(n == (int)N_WTYPES + 1 && all[0] == DTYPE_F32);
    CHECK(dtype_row_size(DTYPE_Q4_K, 512) == 288 && dtype_row_size(DTYPE_Q4_K, 32) == 0);
    CHECK(dtype_row_size(DTYPE_Q8_K, 256) == 292 && dtype_row_size(DTYPE_Q5_1, 64) == 48);
}

/* ggml's blocks decoded by strix == ggml's decoding, bit for bit. */
static void test_dequant_vs_ggml(void)
{
    for (size_t k = 0; k < N_WTYPES; k++) {
        const uint32_t t = wtypes[k];
        const char *name = dtype_name(t);
        void *q = load(name, "q", dtype_row_size(t, NR * NC));
        float *want = load(name, "deq", sizeof input);
        float *got = malloc(sizeof input);
        if (q && want && got) {
            dtype_get(t)->dequantize(q, got, NR * NC);
            int bad = 0;
            for (int i = 0; i < NR * NC; i++)
                bad += memcmp(&got[i], &want[i], 4) != 0;
            CHECKF(bad == 0, "%s: %d of %d values differ from ggml's", name, bad, NR * NC);
        }
        free(q), free(want), free(got);
    }
    /* activation formats: Q8_1 and Q8_K decode as d * q, and their sums agree */
    struct block_q8_1 *a1 = load("Q8_1", "q", dtype_row_size(DTYPE_Q8_1, NR * NC));
    struct block_q8_K *ak = load("Q8_K", "q", dtype_row_size(DTYPE_Q8_K, NR * NC));
    float *out = malloc(sizeof input);
    if (a1 && ak && out) {
        int bad = 0;
        dtype_dequantize_row_q8_1(a1, out, NR * NC);
        for (int i = 0; i < NR * NC; i++)
            bad += out[i] != util_fp16_to_fp32(a1[i / 32].d) * (float)a1[i / 32].qs[i % 32];
        for (int b = 0; b < NR * NC / 32; b++) {
            int sum = 0;
            for (int j = 0; j < 32; j++)
                sum += a1[b].qs[j];
            /* s was rounded from the unrounded d: within fp16 precision twice */
            const float s = util_fp16_to_fp32(a1[b].s), ds = (float)sum * util_fp16_to_fp32(a1[b].d);
            bad += fabsf(s - ds) > fabsf(ds) * 0x1p-9f + 1e-7f;
        }
        dtype_dequantize_row_q8_K(ak, out, NR * NC);
        for (int i = 0; i < NR * NC; i++)
            bad += out[i] != ak[i / 256].d * (float)ak[i / 256].qs[i % 256];
        /* strix's Q8_K has the same bsums convention */
        struct block_q8_K mine[NR * NC / 256];
        dtype_quantize_row_q8_K(input, mine, NR * NC);
        for (int b = 0; b < NR * NC / 256; b++)
            for (int g = 0; g < 16; g++) {
                int sum = 0;
                for (int j = 0; j < 16; j++)
                    sum += mine[b].qs[16 * g + j];
                bad += mine[b].bsums[g] != sum;
            }
        CHECKF(bad == 0, "%d activation values or sums differ", bad);
    }
    free(a1), free(ak), free(out);
}

static const char *act_name(uint32_t t)
{
    return dtype_name(dtype_get(t)->vec_dot_type);
}

/* vec_dot of ggml's weight blocks with ggml's activation blocks == ggml's
 * own (SIMD) dot product, up to float summation order: |diff| <= 1e-5 *
 * sum |w_i a_i|. Then with strix's own activation quantizer, vec_dot ==
 * the float dot of the dequantized rows within the same bound (plus, for
 * Q8_1, the fp16 rounding of its stored sums). */
static void test_vec_dot(void)
{
    float *wf = malloc(sizeof input), *af = malloc(sizeof input);
    for (size_t k = 0; k < N_WTYPES; k++) {
        const uint32_t t = wtypes[k];
        const struct dtype_traits *tr = dtype_get(t);
        const uint32_t vt = tr->vec_dot_type;
        const size_t rs = dtype_row_size(t, NC), vrs = dtype_row_size(vt, NC);
        uint8_t *q = load(dtype_name(t), "q", rs * NR);
        uint8_t *mine = malloc(vrs * NR);
        if (!q || !mine) {
            free(q), free(mine);
            continue;
        }
        tr->dequantize(q, wf, NR * NC);
        dtype_get(vt)->quantize(input, mine, NR * NC);
        dtype_get(vt)->dequantize(mine, af, NR * NC);
        float worst = 0.0f;
        for (int r = 0; r < NR; r++) {
            const int ra = (r + 1) % NR;
            double exact = 0.0, mag = 0.0, s_err = 0.0;
            for (int j = 0; j < NC; j++) {
                exact += (double)wf[r * NC + j] * af[ra * NC + j];
                mag += fabs((double)wf[r * NC + j] * af[ra * NC + j]);
            }
            if (vt == DTYPE_Q8_1) { /* m * s with s rounded to fp16 */
                const struct block_q8_1 *a = (const struct block_q8_1 *)(mine + ra * vrs);
                for (int b = 0; b < NC / 32; b++) {
                    const float m = util_fp16_to_fp32(t == DTYPE_Q4_1
                                                          ? ((const struct block_q4_1 *)(q + r * rs))[b].m
                                                          : ((const struct block_q5_1 *)(q + r * rs))[b].m);
                    s_err += fabs(m * util_fp16_to_fp32(a[b].s)) / 1024.0;
                }
            }
            const float got = tr->vec_dot(NC, q + r * rs, mine + ra * vrs);
            const double err = fabs(got - exact), tol = 1e-5 * mag + s_err + 1e-30;
            CHECKF(err <= tol, "%s x %s row %d: %g vs float dot %g (tol %g)", dtype_name(t),
                   act_name(t), r, got, exact, tol);
            worst = fmaxf(worst, (float)(err / tol));
        }
        /* against ggml's dot products on ggml's activation blocks */
        float *dots = vt != DTYPE_F32 ? load(dtype_name(t), "dot", NR * sizeof(float)) : NULL;
        uint8_t *theirs = vt != DTYPE_F32 ? load(act_name(t), "q", vrs * NR) : NULL;
        if (dots && theirs) {
            dtype_get(vt)->dequantize(theirs, af, NR * NC);
            for (int r = 0; r < NR; r++) {
                const int ra = (r + 1) % NR;
                double mag = 0.0;
                for (int j = 0; j < NC; j++)
                    mag += fabs((double)wf[r * NC + j] * af[ra * NC + j]);
                const float got = tr->vec_dot(NC, q + r * rs, theirs + ra * vrs);
                CHECKF(fabs(got - dots[r]) <= 1e-5 * mag + 1e-30, "%s: %g vs ggml %g",
                       dtype_name(t), got, dots[r]);
            }
        } else if (vt != DTYPE_F32) {
            CHECK(0);
        }
        free(dots), free(theirs), free(q), free(mine);
    }
    /* F32 x F32 */
    CHECK(fabsf(dtype_vec_dot_f32_f32(3, (const float[]){1, 2, 3}, (const float[]){4, 5, 6}) -
                32.0f) == 0.0f);
    free(wf), free(af);
}

/* The step of each format at element i of row x (n elements): the spacing of
 * its levels, from the block's own range, as the format's definition gives
 * it. Uniform rounding errors then have an RMS of step / sqrt(12). */
static float natural_step(uint32_t t, const float *x, int i)
{
    int bs = 0;
    float div = 0;
    int asym = 0;
    switch (t) {
    case DTYPE_F16: return fabsf(x[i]) * 0x1p-10f + 0x1p-24f;
    case DTYPE_BF16: return fabsf(x[i]) * 0x1p-7f;
    case DTYPE_Q8_0: bs = 32, div = 127; break;
    case DTYPE_Q4_0: bs = 32, div = 8; break;
    case DTYPE_Q5_0: bs = 32, div = 16; break;
    case DTYPE_Q4_1: bs = 32, div = 15, asym = 1; break;
    case DTYPE_Q5_1: bs = 32, div = 31, asym = 1; break;
    case DTYPE_Q4_K: bs = 32, div = 15, asym = 2; break;
    case DTYPE_Q5_K: bs = 32, div = 31, asym = 2; break;
    case DTYPE_Q6_K: bs = 16, div = 32; break;
    default: return 0;
    }
    const float *b = x + i / bs * bs;
    float lo = b[0], hi = b[0], amax = 0;
    for (int j = 0; j < bs; j++) {
        lo = fminf(lo, b[j]), hi = fmaxf(hi, b[j]);
        amax = fmaxf(amax, fabsf(b[j]));
    }
    if (asym == 2) /* k-quant mins are non-negative offsets: the range includes 0 */
        lo = fminf(lo, 0), hi = fmaxf(hi, 0);
    return asym ? (hi - lo) / div : amax / div;
}

static double rms_error(const float *x, const float *y, int n)
{
    double e = 0;
    for (int i = 0; i < n; i++)
        e += ((double)x[i] - y[i]) * ((double)x[i] - y[i]);
    return sqrt(e / n);
}

/* strix's quantizers on the fixture rows: within the expected bound and no
 * more than 10% above ggml's error on the same row. */
static void test_quantizers(void)
{
    float back[NC];
    uint8_t buf[NC * 4];
    printf("RMS error per row (strix / ggml):\n");
    for (size_t k = 0; k < N_WTYPES; k++) {
        const uint32_t t = wtypes[k];
        const struct dtype_traits *tr = dtype_get(t);
        float *theirs = load(dtype_name(t), "deq", sizeof input);
        if (!theirs)
            continue;
        printf("  %-5s", dtype_name(t));
        for (int r = 0; r < NR; r++) {
            const float *x = input + r * NC;
            tr->quantize(x, buf, NC);
            tr->dequantize(buf, back, NC);
            const double ours = rms_error(x, back, NC), ggml = rms_error(x, theirs + r * NC, NC);
            double expect = 0;
            for (int i = 0; i < NC; i++)
                expect += (double)natural_step(t, x, i) * natural_step(t, x, i) / 12.0;
            expect = sqrt(expect / NC);
            /* the k-quants' 6/8-bit sub-block scales and the F16/BF16 step
             * estimate (a power of two above |x|) leave room: 1.5x */
            CHECKF(ours <= 1.5 * expect, "%s row %d: RMS error %g, expected about %g",
                   dtype_name(t), r, ours, expect);
            CHECKF(ours <= 1.10 * ggml + 1e-12, "%s row %d: RMS error %g vs ggml's %g",
                   dtype_name(t), r, ours, ggml);
            printf("  %.3g/%.3g", ours, ggml);
        }
        printf("\n");
        free(theirs);
    }
    /* Q8_0 and Q4_0 follow the format's reference rounding exactly: same bytes as ggml */
    static const uint32_t exact[] = {DTYPE_Q8_0, DTYPE_Q4_0, DTYPE_F16, DTYPE_BF16};
    for (size_t k = 0; k < sizeof exact / sizeof exact[0]; k++) {
        const size_t rs = dtype_row_size(exact[k], NR * NC);
        uint8_t *theirs = load(dtype_name(exact[k]), "q", rs), *ours = malloc(rs);
        if (theirs && ours) {
            dtype_get(exact[k])->quantize(input, ours, NR * NC);
            CHECKF(memcmp(theirs, ours, rs) == 0, "%s blocks differ from ggml's",
                   dtype_name(exact[k]));
        }
        free(theirs), free(ours);
    }
}

/* All-zero, constant, tiny and huge rows; several lengths; blocks are
 * independent (a long row quantizes as its pieces do). */
static void test_edge_rows(void)
{
    enum { N = 3 * 256 };
    static float x[N], y[N];
    static uint8_t a[N * 4], b[N * 4];
    for (size_t k = 0; k < N_WTYPES; k++) {
        const uint32_t t = wtypes[k];
        const struct dtype_traits *tr = dtype_get(t);
        const char *name = tr->name;
        /* zero rows decode to exact zeros; dot products are 0, not NaN */
        memset(x, 0, sizeof x);
        tr->quantize(x, a, N);
        tr->dequantize(a, y, N);
        int bad = 0;
        for (int i = 0; i < N; i++)
            bad += y[i] != 0.0f;
        CHECKF(bad == 0, "%s: zero row decodes to %d non-zeros", name, bad);
        const struct dtype_traits *vt = dtype_get(tr->vec_dot_type);
        vt->quantize(x, b, N);
        CHECKF(tr->vec_dot(N, a, b) == 0.0f, "%s: dot of zero rows", name);
        /* constant rows, negative and positive */
        for (int sgn = -1; sgn <= 1; sgn += 2) {
            for (int i = 0; i < N; i++)
                x[i] = 0.37f * (float)sgn;
            tr->quantize(x, a, N);
            tr->dequantize(a, y, N);
            CHECKF(rms_error(x, y, N) <= 0.37 * 0.02, "%s: constant row error %g", name,
                   rms_error(x, y, N));
        }
        /* magnitudes from 1e-7 to 3e4: finite, and (from 1e-4 up, where the
         * fp16 scales are not subnormal) the error relative to the row's size
         * stays in the format's class */
        static const float mags[] = {1e-7f, 1e-4f, 1e-3f, 1.0f, 300.0f, 3e4f};
        for (size_t mi = 0; mi < sizeof mags / sizeof mags[0]; mi++) {
            uint64_t st = 99 + mi;
            double ss = 0;
            for (int i = 0; i < N; i++) {
                x[i] = mags[mi] * (2.0f * util_rng_uniform(&st) - 1.0f);
                ss += (double)x[i] * x[i];
            }
            tr->quantize(x, a, N);
            tr->dequantize(a, y, N);
            int fin = 1;
            for (int i = 0; i < N; i++)
                fin &= isfinite(y[i]);
            const double rel = rms_error(x, y, N) / sqrt(ss / N);
            /* 4-bit formats: about 0.1 at worst on uniform data; tiny rows
             * lose precision to fp16 subnormal scales */
            const double lim = mags[mi] < 1e-5f ? INFINITY : mags[mi] < 2e-4f ? 0.5 : 0.15;
            CHECKF(fin && rel <= lim, "%s at magnitude %g: relative RMS error %g%s", name,
                   mags[mi], rel, fin ? "" : " (non-finite)");
        }
        /* non-finite and out-of-range input must not crash (no UB) */
        for (int i = 0; i < N; i++)
            x[i] = i % 7 == 0 ? 1e30f : i % 11 == 0 ? INFINITY : i % 13 == 0 ? NAN : 1.0f;
        tr->quantize(x, a, N);
        tr->dequantize(a, y, N);
        vt->quantize(x, b, N);
        (void)tr->vec_dot(N, a, b);
        /* block independence: one row of N equals rows of one block each */
        uint64_t st = 5;
        for (int i = 0; i < N; i++)
            x[i] = util_rng_uniform(&st) - 0.3f;
        const size_t rs1 = dtype_row_size(t, tr->block_size);
        tr->quantize(x, a, N);
        for (int i = 0; i < N / tr->block_size; i++)
            tr->quantize(x + i * tr->block_size, b + i * rs1, tr->block_size);
        CHECKF(memcmp(a, b, dtype_row_size(t, N)) == 0, "%s: blocks are not independent", name);
        /* the shortest row, into a buffer of exactly its size (ASan checks) */
        uint8_t *one = malloc(rs1);
        tr->quantize(x, one, tr->block_size);
        tr->dequantize(one, y, tr->block_size);
        free(one);
    }
}

int main(void)
{
    float *in = load("input", "f32", sizeof input);
    if (!in)
        TEST_MAIN_END();
    memcpy(input, in, sizeof input);
    free(in);
    test_table();
    test_dequant_vs_ggml();
    test_vec_dot();
    test_quantizers();
    test_edge_rows();
    TEST_MAIN_END();
}
