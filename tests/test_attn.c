/*
 * test_attn.c - attention's grouped tiles (kernels_kv.h) and attention over
 * grouped-query caches:
 *   - the exponential of every set this CPU runs against exp in double on a
 *     dense grid of [-87.33, 88] (relative error bound stated in
 *     kernels_kv.h), with its edges (underflow to 0, -inf, NaN, 0) and
 *     tails;
 *   - the grouped key products and value sums of every set, for F32, F16,
 *     Q8_0 and Q4_0 rows, 1 to 16 heads per group, odd head sizes and tile
 *     tails, against a direct double computation over the dequantized rows
 *     and against the set's own per-head functions; nothing written outside
 *     the outputs (the gaps between heads' accumulators included);
 *   - a tile's softmax step of every set against the step in double (1 to
 *     16 heads per group, tile tails, -inf and NaN scores, a running
 *     maximum above and below the tile's);
 *   - attention() of a batch (two sequences with interleaved cells, causal
 *     positions, a sliding window, ALiBi slopes, a soft cap) over
 *     grouped-query caches of 8 and 5 query heads per KV head and every
 *     cache type (and of 2 and 1 with small heads of 8 and 12 values, float
 *     caches), against a direct softmax in double over the cells each
 *     token may see.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fixtures.h"
#include "harness.h"
#include "kernels/kernels.h"
#include "kernels/kernels_kv.h"
#include "quant/dtype.h"
#include "runtime/context.h"
#include "strix.h"
#include "strix_dev.h"

static const char *const SETS[] = {"scalar", "avx2", "avx512"};
static const uint32_t TYPES[] = {DTYPE_F32, DTYPE_F16, DTYPE_Q8_0, DTYPE_Q4_0};

static uint64_t rng = 4242;
static float frand(void)
{
    rng = rng * 6364136223846793005ULL + 1442695040888963407ULL;
    return (float)(rng >> 40) / (float)(1 << 24) * 2.0f - 1.0f;
}

/* ---- the exponential ---- */

static void check_exp(void)
{
    enum { N = 1 << 16 };
    float *x = malloc(N * sizeof(float)), *y = malloc((N + 1) * sizeof(float));
    for (size_t k = 0; k < sizeof SETS / sizeof SETS[0]; k++) {
        const struct kern_kv *set = kern_kv_get(SETS[k]);
        if (!set)
            continue;
        /* the grid in chunks: lo + (i + u) * step, u random in [0, 1) */
        const double lo = -87.33, hi = 88.0, step = (hi - lo) / (64.0 * N);
        double worst = 0, at = 0;
        for (int c = 0; c < 64; c++) {
            for (int i = 0; i < N; i++)
                x[i] = (float)(lo + ((double)c * N + i + 0.5 * (frand() + 1.0)) * step);
            memcpy(y, x, N * sizeof(float));
            kern_kv_exp_with(set, N, y);
            for (int i = 0; i < N; i++) {
                const double want = exp((double)x[i]), d = fabs(y[i] - want) / want;
                if (d > worst)
                    worst = d, at = x[i];
            }
        }
        printf("exp %s: worst relative error %.3g at %.6g\n", SETS[k], worst, at);
        CHECKF(worst < 4e-7, "exp %s: relative error %g at %g", SETS[k], worst, at);
        /* edges, and a tail of 19 with nothing written past it */
        const float edge[19] = {-87.5f, -1000.0f, -INFINITY, NAN,  0.0f,  -0.0f, 1.0f,
                                -1.0f,  -20.0f,   -87.3f,    5.5f, 88.0f, -3e38f};
        memcpy(y, edge, sizeof edge);
        y[19] = 777.0f;
        kern_kv_exp_with(set, 19, y);
        CHECKF(y[0] == 0.0f && y[1] == 0.0f && y[2] == 0.0f && isnan(y[3]) && y[4] == 1.0f &&
                   y[5] == 1.0f && y[12] == 0.0f && y[19] == 777.0f,
               "exp %s: edges %g %g %g %g %g %g %g", SETS[k], y[0], y[1], y[2], y[3], y[4], y[5],
               y[12]);
        const int idx[] = {6, 7, 8, 9, 10, 11};
        int off = 0;
        for (int i = 0; i < 6; i++) {
            const double want = exp((double)edge[idx[i]]);
            off += !(fabs(y[idx[i]] - want) <= 4e-7 * want + 1e-45);
        }
        CHECKF(off == 0, "exp %s: %d of 6 values in the tail off", SETS[k], off);
    }
    free(x);
    free(y);
}

/* ---- grouped tiles ---- */

enum { ROWS = 80, NMAX = 136, GMAX = 16 };

static void check_group_one(uint32_t type, int n, int G)
{
    const size_t row = kern_kv_row_bytes(type, n) + 8; /* rows not packed */
    uint8_t *cache = malloc(ROWS * row);
    float *deq = malloc((size_t)ROWS * NMAX * sizeof(float));
    float *q = malloc((size_t)GMAX * NMAX * sizeof(float)), *qd = malloc((size_t)GMAX * NMAX * 4);
    float *x = malloc(NMAX * sizeof(float));
    uint8_t *qc = malloc((size_t)GMAX * NMAX * 4);
    for (int r = 0; r < ROWS; r++) {
        const float mag = r % 7 == 0 ? 20.0f : 1.0f;
        for (int j = 0; j < n; j++)
            x[j] = frand() * mag;
        kern_kv_store(type, x, n, cache + (size_t)r * row);
        dtype_get(type)->dequantize(cache + (size_t)r * row, deq + (size_t)r * NMAX, n);
    }
    /* queries: head h at qc + h * (n floats' bytes), kern_kv_query's form */
    const size_t qs = (size_t)n * sizeof(float);
    for (int h = 0; h < G; h++) {
        for (int j = 0; j < n; j++)
            q[h * NMAX + j] = frand() * 2.0f;
        kern_kv_query(type, q + h * NMAX, n, qc + (size_t)h * qs);
        if (type == DTYPE_Q8_0 || type == DTYPE_Q4_0)
            dtype_dequantize_row_q8_0(qc + (size_t)h * qs, qd + h * NMAX, n);
        else
            memcpy(qd + h * NMAX, q + h * NMAX, (size_t)n * sizeof(float));
    }
    const int counts[] = {1, 7, 16, 64, 65};
    for (size_t ci = 0; ci < sizeof counts / sizeof counts[0]; ci++) {
        const int count = counts[ci];
        int idx[ROWS];
        for (int i = 0; i < count; i++)
            idx[i] = (i * 37 + 11) % ROWS;
        float *e = malloc((size_t)count * G * sizeof(float));
        for (int i = 0; i < count * G; i++)
            e[i] = frand() + 1.0f;
        const size_t ldy = (size_t)n + 3; /* a gap after each head's accumulator */
        float *y0 = malloc(GMAX * ldy * sizeof(float)), *y = malloc((GMAX * ldy + 1) * 4);
        float *s = malloc(((size_t)count * G + 1) * sizeof(float));
        float *ph_s = malloc((size_t)count * sizeof(float)), *ph_y = malloc(NMAX * 4);
        float *ph_e = malloc((size_t)count * sizeof(float));
        for (size_t i = 0; i < (size_t)G * ldy; i++)
            y0[i] = frand();
        for (size_t k = 0; k < sizeof SETS / sizeof SETS[0]; k++) {
            const struct kern_kv *set = kern_kv_get(SETS[k]);
            if (!set)
                continue;
            s[count * G] = 12345.0f;
            memcpy(y, y0, (size_t)G * ldy * sizeof(float));
            y[G * ldy] = 12345.0f;
            kern_kv_dot_group_with(set, type, n, G, qc, qs, cache, row, idx, count, s);
            kern_kv_axpy_group_with(set, type, n, G, e, cache, row, idx, count, y, ldy);
            int bad = 0, off = 0;
            double worst = 0;
            for (int h = 0; h < G; h++) {
                /* the set's per-head functions (F32: the scalar loop) */
                for (int i = 0; i < count; i++)
                    ph_e[i] = e[i * G + h];
                memcpy(ph_y, y0 + h * ldy, (size_t)n * sizeof(float));
                const struct kern_kv *ph = type == DTYPE_F32 ? kern_kv_get("scalar") : set;
                ph->dot_gather(type, n, qc + (size_t)h * qs, cache, row, idx, count, ph_s);
                ph->axpy_gather(type, n, ph_e, cache, row, idx, count, ph_y);
                for (int i = 0; i < count; i++) {
                    double want = 0, mag = 0;
                    for (int j = 0; j < n; j++) {
                        const double p = (double)deq[(size_t)idx[i] * NMAX + j] * qd[h * NMAX + j];
                        want += p;
                        mag += fabs(p);
                    }
                    const double got = s[i * G + h], d = fabs(got - want) / (mag + 1e-30);
                    worst = d > worst ? d : worst;
                    bad += !(d < 1e-5);
                    off += !(fabs(got - ph_s[i]) <= 4e-6 * mag);
                }
                for (int j = 0; j < n; j++) {
                    double want = y0[h * ldy + j], mag = fabs(want);
                    for (int i = 0; i < count; i++) {
                        const double p = (double)e[i * G + h] * deq[(size_t)idx[i] * NMAX + j];
                        want += p;
                        mag += fabs(p);
                    }
                    const double got = y[h * ldy + j], d = fabs(got - want) / (mag + 1e-30);
                    worst = d > worst ? d : worst;
                    bad += !(d < 1e-5);
                    off += !(fabs(got - ph_y[j]) <= 4e-6 * mag);
                }
                for (size_t j = (size_t)n; j < ldy; j++)
                    bad += y[h * ldy + j] != y0[h * ldy + j]; /* the gap */
            }
            CHECKF(!bad && !off && s[count * G] == 12345.0f && y[G * ldy] == 12345.0f,
                   "grouped %s %s n %d G %d count %d: %d off the direct sums (worst relative "
                   "%g), %d off the per-head functions",
                   SETS[k], dtype_get(type)->name, n, G, count, bad, worst, off);
        }
        free(e);
        free(y0);
        free(y);
        free(s);
        free(ph_s);
        free(ph_y);
        free(ph_e);
    }
    free(cache);
    free(deq);
    free(q);
    free(qd);
    free(x);
    free(qc);
}

static void check_group(void)
{
    /* small heads (under 16 values) take the sets' narrow paths */
    const int sizes_f[] = {1, 3, 5, 8, 12, 15, 17, 32, 64, 70, 128};
    const int sizes_q[] = {32, 64, 128};
    const int groups[] = {1, 2, 3, 4, 5, 8, 9, 12, 16};
    for (size_t ti = 0; ti < sizeof TYPES / sizeof TYPES[0]; ti++) {
        const int blocks = TYPES[ti] == DTYPE_Q8_0 || TYPES[ti] == DTYPE_Q4_0;
        const int *sizes = blocks ? sizes_q : sizes_f;
        const int n_sizes = blocks ? 3 : (int)(sizeof sizes_f / sizeof sizes_f[0]);
        for (int si = 0; si < n_sizes; si++)
            for (size_t gi = 0; gi < sizeof groups / sizeof groups[0]; gi++)
                check_group_one(TYPES[ti], sizes[si], groups[gi]);
    }
}

/* ---- a tile's softmax step ---- */

/* Every set against the step computed directly in double: scores of count
 * cells x G heads (large, tiny, equal, -inf and NaN scores among them),
 * starting from no maximum (-inf) and from a running maximum above or below
 * the tile's; nothing written past the scores. */
static void check_softmax_one(int count, int G, int start)
{
    const int total = count * G;
    float *s0 = malloc((size_t)total * sizeof(float)), *s = malloc(((size_t)total + 1) * 4);
    for (int i = 0; i < total; i++)
        s0[i] = frand() * (i % 11 == 3 ? 60.0f : 8.0f);
    if (total > 5 && count > 1) { /* a head never sees only -inf from no maximum */
        s0[1] = -INFINITY;
        s0[total - 2] = s0[total - 3];
    }
    if (total > 9 && start == 2)
        s0[7] = NAN;
    const float scale = 0.37f;
    float mx0[GMAX], sum0[GMAX];
    for (int h = 0; h < G; h++) {
        mx0[h] = start == 0 ? -INFINITY : start == 1 ? frand() * 2.0f : 40.0f + (float)h;
        sum0[h] = start == 0 ? 0.0f : 1.0f + frand() * 0.5f;
    }
    for (size_t k = 0; k < sizeof SETS / sizeof SETS[0]; k++) {
        const struct kern_kv *set = kern_kv_get(SETS[k]);
        if (!set)
            continue;
        float mx[GMAX], sum[GMAX], r[GMAX];
        memcpy(s, s0, (size_t)total * sizeof(float));
        s[total] = 12345.0f;
        memcpy(mx, mx0, sizeof mx);
        memcpy(sum, sum0, sizeof sum);
        kern_kv_softmax_with(set, count, G, scale, s, mx, sum, r);
        int bad = 0;
        double worst = 0;
        for (int h = 0; h < G; h++) {
            double m = mx0[h];
            for (int i = 0; i < count; i++) {
                const double x = (double)(s0[i * G + h] * scale);
                m = x > m ? x : m;
            }
            const double rw = exp((double)mx0[h] - m);
            double want = sum0[h] * rw, mag = want;
            bad += mx[h] != (float)m;
            /* the rescale's argument is a float difference: its rounding
             * (|mx0 - m| * 2^-24) grows with a large drop in the maximum */
            const double drop = rw > 0 ? fabs((double)mx0[h] - m) : 0;
            bad += !(fabs(r[h] - rw) <= (1e-6 + drop * 1.2e-7) * rw);
            for (int i = 0; i < count; i++) {
                const float x = s0[i * G + h] * scale;
                if (x != x) { /* NaN stays NaN */
                    bad += s[i * G + h] == s[i * G + h];
                    continue;
                }
                const double e = exp((double)(x - mx[h])), got = s[i * G + h];
                const double d = fabs(got - e) / (e + 1e-30);
                worst = e > 1e-30 && d > worst ? d : worst;
                bad += !(fabs(got - e) <= 4e-7 * e + 1e-37);
                want += got;
                mag += got;
            }
            if (start == 2 && total > 9 && h == 7 % G)
                continue; /* the NaN score's head: its sum is NaN */
            bad += !(fabs(sum[h] - want) <= 1e-6 * mag);
        }
        CHECKF(!bad && s[total] == 12345.0f,
               "softmax %s count %d G %d start %d: %d off (worst exp relative %g)", SETS[k], count,
               G, start, bad, worst);
    }
    free(s0);
    free(s);
}

static void check_softmax(void)
{
    const int counts[] = {1, 3, 8, 17, 63, 64};
    const int groups[] = {1, 2, 3, 4, 5, 8, 12, 16};
    for (size_t ci = 0; ci < sizeof counts / sizeof counts[0]; ci++)
        for (size_t gi = 0; gi < sizeof groups / sizeof groups[0]; gi++)
            for (int start = 0; start < 3; start++)
                check_softmax_one(counts[ci], groups[gi], start);
}

/* ---- attention over grouped-query caches ---- */

struct variant {
    const char *name;
    int window;
    int alibi;
    float softcap;
};

/* Tokens 0..2 of a batch (position, sequence) against a direct softmax in
 * double over the cells each may see (position <= its own and within the
 * window, its sequence's bit set), keys and values dequantized from the
 * cache, the query as the key products see it. */
static void check_attention_type(strix_model *m, int tk, int tv)
{
    const struct hparams *hp = &m->hp;
    const int hd = hp->head_dim, q_dim = hp->n_head * hd, kv_dim = hp->n_head_kv * hd;
    const int group = hp->n_head / hp->n_head_kv, layer = 1;
    struct strix_context_params cp = strix_context_default_params();
    cp.n_ctx = 160;
    cp.n_threads = 2;
    cp.n_seq_max = 2;
    cp.type_k = tk;
    cp.type_v = tv;
    strix_context *c = fixture_context_with(m, &cp);
    if (!c)
        return;
    /* sequence 0 decodes 90 tokens, sequence 1 60, their cells interleaved */
    strix_token ids[150];
    int32_t pos[150], seq[150];
    int n = 0;
    for (int i = 0; i < 90; i++) {
        ids[n] = (strix_token)(3 + (i * 53) % 500), pos[n] = i, seq[n] = 0, n++;
        if (i < 60)
            ids[n] = (strix_token)(5 + (i * 71) % 500), pos[n] = i, seq[n] = 1, n++;
    }
    strix_error err;
    for (int at = 0; at < n; at += 50) {
        strix_batch b = {n - at < 50 ? n - at : 50, ids + at, pos + at, seq + at, NULL};
        CHECKF(strix_decode_batch(c, &b, &err) == STRIX_OK, "decode: %s", err.msg);
    }
    const struct kv_layer *L = &c->kv.layer[layer];
    float *kd = malloc((size_t)L->n_scan * kv_dim * sizeof(float));
    float *vd = malloc((size_t)L->n_scan * kv_dim * sizeof(float));
    for (int i = 0; i < L->n_scan; i++)
        if (L->pos[i] >= 0) {
            dtype_get((uint32_t)tk)
                ->dequantize(L->k + (size_t)i * c->kv.row_k, kd + (size_t)i * kv_dim, kv_dim);
            dtype_get((uint32_t)tv)
                ->dequantize(L->v + (size_t)i * c->kv.row_v, vd + (size_t)i * kv_dim, kv_dim);
        }
    const int tpos[3] = {89, 40, 59}, tseq[3] = {0, 0, 1};
    float *q = malloc((size_t)3 * q_dim * sizeof(float)), *out = malloc((size_t)3 * q_dim * 4);
    float *qh = malloc((size_t)hd * sizeof(float)), slopes[64];
    float *qalone = malloc((size_t)q_dim * sizeof(float));
    uint8_t *blk = malloc((size_t)hd * 4);
    for (int i = 0; i < 3 * q_dim; i++)
        q[i] = frand() * 4.0f;
    for (int h = 0; h < hp->n_head; h++)
        slopes[h] = 0.05f * (float)(h + 1);
    const struct variant vars[] = {{"plain", 0, 0, 0.0f},
                                   {"window 17", 17, 0, 0.0f},
                                   {"alibi", 0, 1, 0.0f},
                                   {"softcap 3", 0, 0, 3.0f}};
    double *sc = malloc((size_t)L->n_scan * sizeof(double));
    for (size_t vi = 0; vi < sizeof vars / sizeof vars[0]; vi++) {
        const struct variant *v = &vars[vi];
        const float scale = 1.0f / sqrtf((float)hd);
        c->n_tok = 3;
        for (int t = 0; t < 3; t++)
            c->tok_pos[t] = tpos[t], c->tok_seq[t] = tseq[t];
        const struct attn_args aa = {.layer = layer,
                                     .q = q,
                                     .out = out,
                                     .scale = scale,
                                     .window = v->window,
                                     .alibi = v->alibi ? slopes : NULL,
                                     .softcap = v->softcap};
        attention(c, &aa);
        double worst = 0;
        int seen_min = 1 << 30;
        for (int t = 0; t < 3; t++)
            for (int h = 0; h < hp->n_head; h++) {
                const int g = h / group;
                const float *qt = q + (size_t)t * q_dim + (size_t)h * hd;
                if (tk == STRIX_CACHE_Q8_0 || tk == STRIX_CACHE_Q4_0) {
                    dtype_quantize_row_q8_0(qt, blk, hd);
                    dtype_dequantize_row_q8_0(blk, qh, hd);
                } else {
                    memcpy(qh, qt, (size_t)hd * sizeof(float));
                }
                double mx = -1e300, sum = 0;
                int seen = 0;
                for (int i = 0; i < L->n_scan; i++) {
                    const int p = L->pos[i];
                    sc[i] = NAN;
                    if (p < 0 || p > tpos[t] || !(L->seqs[i] >> tseq[t] & 1) ||
                        (v->window > 0 && p <= tpos[t] - v->window))
                        continue;
                    double d = 0;
                    for (int e = 0; e < hd; e++)
                        d += (double)qh[e] * kd[(size_t)i * kv_dim + g * hd + e];
                    d *= scale;
                    if (v->softcap > 0)
                        d = v->softcap * tanh(d / v->softcap);
                    if (v->alibi)
                        d += (double)slopes[h] * (p - tpos[t]);
                    sc[i] = d;
                    mx = d > mx ? d : mx;
                    seen++;
                }
                seen_min = seen < seen_min ? seen : seen_min;
                for (int i = 0; i < L->n_scan; i++)
                    if (!isnan(sc[i]))
                        sum += sc[i] = exp(sc[i] - mx);
                for (int e = 0; e < hd; e++) {
                    double acc = 0, mag = 0;
                    for (int i = 0; i < L->n_scan; i++)
                        if (!isnan(sc[i])) {
                            const double p = sc[i] * vd[(size_t)i * kv_dim + g * hd + e];
                            acc += p;
                            mag += fabs(p);
                        }
                    const double d =
                        fabs(out[(size_t)t * q_dim + h * hd + e] - acc / sum) / (mag / sum + 1e-6);
                    worst = d > worst ? d : worst;
                }
            }
        CHECKF(worst < 1e-4 && seen_min > 0,
               "attention %s, group %d, keys %s values %s: worst relative difference %g", v->name,
               group, strix_cache_type_name(tk), strix_cache_type_name(tv), worst);
        /* each token alone (the threads then split its KV heads when there
         * is enough work) gives the batch's result bit for bit */
        int same = 1;
        for (int t = 0; t < 3; t++) {
            struct attn_args one = aa;
            one.q = q + (size_t)t * q_dim;
            one.out = qalone;
            c->n_tok = 1;
            c->tok_pos[0] = tpos[t], c->tok_seq[0] = tseq[t];
            attention(c, &one);
            same &= memcmp(qalone, out + (size_t)t * q_dim, (size_t)q_dim * sizeof(float)) == 0;
        }
        CHECKF(same,
               "attention %s, group %d, keys %s values %s: a token alone differs from the batch",
               v->name, group, strix_cache_type_name(tk), strix_cache_type_name(tv));
    }
    free(sc);
    free(kd);
    free(vd);
    free(q);
    free(out);
    free(qh);
    free(qalone);
    free(blk);
    strix_context_free(c);
}

static void check_attention(int n_embd, int n_head, int n_head_kv, int floats_only)
{
    struct strix_synth_params sp = strix_synth_default_params();
    sp.n_embd = n_embd;
    sp.n_ff = 96;
    sp.n_layer = 2;
    sp.n_head = n_head;
    sp.n_head_kv = n_head_kv;
    sp.n_ctx = 256;
    sp.seed = 99;
    strix_model *m = synth_fixture(&sp);
    if (!m)
        return;
    const int pairs[][2] = {
        {STRIX_CACHE_F32, STRIX_CACHE_F32},   {STRIX_CACHE_F16, STRIX_CACHE_F16},
        {STRIX_CACHE_Q8_0, STRIX_CACHE_Q8_0}, {STRIX_CACHE_Q4_0, STRIX_CACHE_Q4_0},
        {STRIX_CACHE_Q8_0, STRIX_CACHE_F16},  {STRIX_CACHE_F32, STRIX_CACHE_Q4_0}};
    for (size_t i = 0; i < (floats_only ? 2 : sizeof pairs / sizeof pairs[0]); i++)
        check_attention_type(m, pairs[i][0], pairs[i][1]);
    strix_model_free(m);
}

int main(void)
{
    if (!fixture_kernels("test_attn"))
        TEST_MAIN_END();
    check_exp();
    check_group();
    check_softmax();
    check_attention(512, 8, 1, 0);  /* 8 query heads per KV head, head size 64 */
    check_attention(320, 10, 2, 0); /* 5 per KV head, head size 32 */
    check_attention(64, 8, 4, 1);   /* 2 per KV head, head size 8 (stories260K's shape) */
    check_attention(36, 3, 3, 1);   /* 1 per KV head, head size 12 */
    check_attention(256, 32, 4, 1); /* one token is enough work for two threads */
    TEST_MAIN_END();
}
