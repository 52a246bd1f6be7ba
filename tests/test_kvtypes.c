/*
 * test_kvtypes.c - KV caches of F16, Q8_0 and Q4_0 keys and values:
 *   - the cache-reading kernels of every set this CPU runs against a direct
 *     double-precision computation over the rows dequantized by the formats'
 *     reference (quant/dtype.c, itself checked against llama.cpp), and
 *     against the scalar set (odd sizes, tails, odd row counts);
 *   - attention over a quantized cache against a direct softmax over the
 *     dequantized keys and values;
 *   - batched against one-by-one decoding, bit for bit, for each type and
 *     mixed ones, at 1 and 2 threads; rollback, sequence copies and the
 *     growing cache reproduce a fresh context's logits bit for bit;
 *   - the bytes per token strix_context_cache_bytes reports against the
 *     formats' sizes; refusals (bad type, head size, MLA) with messages;
 *     the default context length and an 8200-token context;
 *   - perplexity of stories3M under each cache type: the relative change
 *     from F32 bounded by what llama.cpp measures for the same type on the
 *     same text and model (tests/data/llamacpp-ppl-kv.txt).
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

static const uint32_t TYPES[] = {DTYPE_F16, DTYPE_Q8_0, DTYPE_Q4_0};
static const char *const SETS[] = {"scalar", "avx2", "avx512"};

static uint64_t rng = 12345;
static float frand(void)
{
    rng = rng * 6364136223846793005ULL + 1442695040888963407ULL;
    return (float)(rng >> 40) / (float)(1 << 24) * 2.0f - 1.0f;
}

/* ---- kernels ---- */

static void check_kernels(void)
{
    const int sizes_f16[] = {1, 7, 8, 9, 15, 16, 17, 31, 33, 64, 70, 128, 131};
    const int sizes_q[] = {32, 64, 96, 128, 256};
    const int counts[] = {1, 3, 8, 65};
    enum { ROWS = 80, NMAX = 256 };
    for (size_t ti = 0; ti < sizeof TYPES / sizeof TYPES[0]; ti++) {
        const uint32_t type = TYPES[ti];
        const int *sizes = type == DTYPE_F16 ? sizes_f16 : sizes_q;
        const int n_sizes = type == DTYPE_F16 ? 13 : 5;
        for (int si = 0; si < n_sizes; si++) {
            const int n = sizes[si];
            const size_t row = kern_kv_row_bytes(type, n) + 6; /* odd stride */
            uint8_t *cache = malloc(ROWS * row);
            float *deq = malloc((size_t)ROWS * NMAX * sizeof(float)), x[NMAX], q[NMAX], qd[NMAX];
            uint8_t qc[NMAX * 4];
            for (int r = 0; r < ROWS; r++) {
                const float mag = r % 5 == 0 ? 30.0f : 1.0f; /* some large rows */
                for (int j = 0; j < n; j++)
                    x[j] = frand() * mag;
                kern_kv_store(type, x, n, cache + (size_t)r * row);
                dtype_get(type)->dequantize(cache + (size_t)r * row, deq + (size_t)r * NMAX, n);
            }
            for (int j = 0; j < n; j++)
                q[j] = frand() * 2.0f;
            kern_kv_query(type, q, n, qc);
            /* the query as the key products see it */
            if (type == DTYPE_F16)
                memcpy(qd, q, (size_t)n * sizeof(float));
            else
                dtype_dequantize_row_q8_0(qc, qd, n);
            for (size_t ci = 0; ci < sizeof counts / sizeof counts[0]; ci++) {
                const int count = counts[ci];
                int idx[ROWS];
                float e[ROWS];
                for (int i = 0; i < count; i++) {
                    idx[i] = (i * 37 + 11) % ROWS;
                    e[i] = frand() + 1.0f;
                }
                double want_s[ROWS], want_y[NMAX], mag_s[ROWS], mag_y[NMAX];
                for (int i = 0; i < count; i++) {
                    want_s[i] = mag_s[i] = 0;
                    for (int j = 0; j < n; j++) {
                        const double p = (double)deq[(size_t)idx[i] * NMAX + j] * qd[j];
                        want_s[i] += p;
                        mag_s[i] += fabs(p);
                    }
                }
                float y0[NMAX];
                for (int j = 0; j < n; j++) {
                    y0[j] = frand();
                    want_y[j] = y0[j];
                    mag_y[j] = fabs(y0[j]);
                    for (int i = 0; i < count; i++) {
                        const double p = (double)e[i] * deq[(size_t)idx[i] * NMAX + j];
                        want_y[j] += p;
                        mag_y[j] += fabs(p);
                    }
                }
                float ref_s[ROWS], ref_y[NMAX];
                for (size_t k = 0; k < sizeof SETS / sizeof SETS[0]; k++) {
                    const struct kern_kv *set = kern_kv_get(SETS[k]);
                    if (!set)
                        continue;
                    float s[ROWS + 1], y[NMAX + 1];
                    s[count] = y[n] = 12345.0f; /* nothing written past the end */
                    memcpy(y, y0, (size_t)n * sizeof(float));
                    set->dot_gather(type, n, qc, cache, row, idx, count, s);
                    set->axpy_gather(type, n, e, cache, row, idx, count, y);
                    int bad_s = 0, bad_y = 0;
                    double worst = 0;
                    for (int i = 0; i < count; i++) {
                        const double d = fabs(s[i] - want_s[i]) / (mag_s[i] + 1e-30);
                        worst = d > worst ? d : worst;
                        bad_s += !(d < 1e-5);
                    }
                    for (int j = 0; j < n; j++) {
                        const double d = fabs(y[j] - want_y[j]) / (mag_y[j] + 1e-30);
                        worst = d > worst ? d : worst;
                        bad_y += !(d < 1e-5);
                    }
                    CHECKF(!bad_s && !bad_y && s[count] == 12345.0f && y[n] == 12345.0f,
                           "%s %s n %d count %d: %d dots, %d sums off (worst relative %g)", SETS[k],
                           dtype_get(type)->name, n, count, bad_s, bad_y, worst);
                    if (k == 0) {
                        memcpy(ref_s, s, sizeof ref_s);
                        memcpy(ref_y, y, (size_t)n * sizeof(float));
                        continue;
                    }
                    /* against the scalar set: the same formula, rounding aside */
                    int off = 0;
                    for (int i = 0; i < count; i++)
                        off += !(fabs(s[i] - ref_s[i]) <= 4e-6 * mag_s[i]);
                    for (int j = 0; j < n; j++)
                        off += !(fabs(y[j] - ref_y[j]) <= 4e-6 * mag_y[j]);
                    CHECKF(off == 0, "%s %s n %d count %d: %d values off the scalar set", SETS[k],
                           dtype_get(type)->name, n, count, off);
                }
            }
            free(cache);
            free(deq);
        }
    }
}

/* ---- contexts ---- */

static strix_context *ctx_make(const strix_model *m, int n_ctx, int tk, int tv, int threads,
                               int n_seq, int grow)
{
    struct strix_context_params cp = strix_context_default_params();
    cp.n_ctx = n_ctx;
    cp.n_threads = threads;
    cp.n_seq_max = n_seq;
    cp.type_k = tk;
    cp.type_v = tv;
    cp.kv_grow = grow;
    return fixture_context_with(m, &cp);
}

static int same(const float *a, const float *b, size_t n)
{
    return a && b && memcmp(a, b, n * sizeof(float)) == 0;
}

/* Attention of one query over a layer's quantized cache against a direct
 * softmax in double over the dequantized keys (the query as Q8_0 for the
 * block types) and values. */
static void check_attention(const strix_model *m, int tk, int tv)
{
    strix_context *c = ctx_make(m, 64, tk, tv, 1, 1, 0);
    if (!c)
        return;
    strix_error err;
    strix_token ids[20];
    for (int i = 0; i < 20; i++)
        ids[i] = (strix_token)(1 + i * 37 % 400);
    CHECK(strix_decode(c, ids, NULL, 20, NULL, &err) == STRIX_OK);
    const struct hparams *hp = &m->hp;
    const int hd = hp->head_dim, q_dim = hp->n_head * hd, kv_dim = hp->n_head_kv * hd;
    const int group = hp->n_head / hp->n_head_kv, layer = 1;
    const struct kv_layer *L = &c->kv.layer[layer];
    float *q = malloc((size_t)q_dim * sizeof(float)), *out = malloc((size_t)q_dim * sizeof(float));
    float *kd = malloc((size_t)20 * kv_dim * sizeof(float)), *vd = malloc((size_t)20 * kv_dim * 4);
    int cell_of[20];
    for (int i = 0; i < L->n_scan; i++)
        if (L->pos[i] >= 0)
            cell_of[L->pos[i]] = i;
    for (int p = 0; p < 20; p++) {
        dtype_get((uint32_t)tk)
            ->dequantize(L->k + (size_t)cell_of[p] * c->kv.row_k, kd + (size_t)p * kv_dim, kv_dim);
        dtype_get((uint32_t)tv)
            ->dequantize(L->v + (size_t)cell_of[p] * c->kv.row_v, vd + (size_t)p * kv_dim, kv_dim);
    }
    for (int i = 0; i < q_dim; i++)
        q[i] = frand() * 3.0f;
    const float scale = 1.0f / sqrtf((float)hd);
    double worst = 0;
    c->n_tok = 1;
    c->tok_pos[0] = 19;
    c->tok_seq[0] = 0;
    const struct attn_args aa = {.layer = layer, .q = q, .out = out, .scale = scale};
    attention(c, &aa);
    for (int h = 0; h < hp->n_head; h++) {
        const int g = h / group;
        float qh[512];
        if (tk == DTYPE_Q8_0 || tk == DTYPE_Q4_0) {
            uint8_t blk[1024];
            dtype_quantize_row_q8_0(q + h * hd, blk, hd);
            dtype_dequantize_row_q8_0(blk, qh, hd);
        } else {
            memcpy(qh, q + h * hd, (size_t)hd * sizeof(float));
        }
        double s[20], mx = -1e30, sum = 0;
        for (int p = 0; p < 20; p++) {
            double d = 0;
            for (int e = 0; e < hd; e++)
                d += (double)qh[e] * kd[(size_t)p * kv_dim + g * hd + e];
            s[p] = d * scale;
            mx = s[p] > mx ? s[p] : mx;
        }
        for (int p = 0; p < 20; p++)
            sum += s[p] = exp(s[p] - mx);
        for (int e = 0; e < hd; e++) {
            double acc = 0, mag = 0;
            for (int p = 0; p < 20; p++) {
                acc += s[p] * vd[(size_t)p * kv_dim + g * hd + e];
                mag += fabs(s[p] * vd[(size_t)p * kv_dim + g * hd + e]);
            }
            const double d = fabs(out[h * hd + e] - acc / sum) / (mag / sum + 1e-6);
            worst = d > worst ? d : worst;
        }
    }
    CHECKF(worst < 1e-4, "attention, keys %s values %s: worst relative difference %g",
           strix_cache_type_name(tk), strix_cache_type_name(tv), worst);
    free(q);
    free(out);
    free(kd);
    free(vd);
    strix_context_free(c);
}

/* Batched against one by one, threads, rollback, sequence copies and the
 * growing cache, for one pair of types: every logit bit for bit. */
static void check_exact(const strix_model *m, const strix_token *ids, int n, int tk, int tv)
{
    const int nv = strix_vocab_size(m);
    const size_t all = (size_t)n * (size_t)nv;
    const char *nk = strix_cache_type_name(tk), *nvn = strix_cache_type_name(tv);
    strix_context *c1 = ctx_make(m, 128, tk, tv, 1, 1, 0);
    float *one = decode_logits(c1, nv, ids, n, 0);
    strix_context *c2 = ctx_make(m, 128, tk, tv, 2, 1, 0);
    float *batch = decode_logits(c2, nv, ids, n, 1);
    CHECKF(same(one, batch, all), "keys %s values %s: batched (2 threads) != one by one", nk, nvn);
    /* rollback: truncate to 10 and decode the rest again, one batch */
    strix_error err;
    CHECK(strix_kv_truncate(c1, 10, &err) == STRIX_OK);
    int8_t want[256];
    memset(want, 1, sizeof want);
    CHECK(strix_decode(c1, ids + 10, NULL, n - 10, want, &err) == STRIX_OK);
    int ok = 1;
    for (int i = 0; i < n - 10; i++)
        ok &= same(strix_get_logits(c1, i), one + (size_t)(10 + i) * nv, (size_t)nv);
    CHECKF(ok, "keys %s values %s: after a rollback", nk, nvn);
    /* a copy of sequence 0's first 12 positions into sequence 1, which goes on */
    strix_context *c3 = ctx_make(m, 128, tk, tv, 2, 2, 0);
    float *first = decode_logits(c3, nv, ids, 12, 1);
    CHECK(strix_kv_seq_cp(c3, 0, 1, 0, -1) == STRIX_OK);
    CHECK(strix_kv_seq_rm(c3, 0, 0, -1) == STRIX_OK);
    int32_t pos[256], seq[256];
    for (int i = 12; i < n; i++)
        pos[i - 12] = i, seq[i - 12] = 1;
    strix_batch b = {n - 12, ids + 12, pos, seq, want};
    CHECK(strix_decode_batch(c3, &b, &err) == STRIX_OK);
    ok = 1;
    for (int i = 0; i < n - 12; i++)
        ok &= same(strix_get_logits(c3, i), one + (size_t)(12 + i) * nv, (size_t)nv);
    CHECKF(ok && same(first, one, (size_t)12 * nv), "keys %s values %s: after a sequence copy", nk,
           nvn);
    /* the growing cache (per-row bytes when it grows and shrinks) */
    strix_context *c4 = ctx_make(m, 128, tk, tv, 1, 1, 1);
    float *grown = decode_logits(c4, nv, ids, n / 2, 1);
    CHECK(strix_kv_truncate(c4, 3, &err) == STRIX_OK); /* shrinks */
    CHECK(strix_decode(c4, ids + 3, NULL, n - 3, want, &err) == STRIX_OK);
    ok = grown && same(grown, one, (size_t)(n / 2) * nv);
    for (int i = 0; i < n - 3; i++)
        ok &= same(strix_get_logits(c4, i), one + (size_t)(3 + i) * nv, (size_t)nv);
    CHECKF(ok, "keys %s values %s: growing cache", nk, nvn);
    free(one);
    free(batch);
    free(first);
    free(grown);
    strix_context_free(c1);
    strix_context_free(c2);
    strix_context_free(c3);
    strix_context_free(c4);
}

/* Bytes per token: layers x (keys + values in their formats + the cell's
 * position, sequence mask and order entry). */
static void check_bytes(const strix_model *m)
{
    const int types[] = {STRIX_CACHE_F32, STRIX_CACHE_F16, STRIX_CACHE_Q8_0, STRIX_CACHE_Q4_0};
    struct strix_model_info in = {.struct_size = sizeof in};
    CHECK(strix_model_get_info(m, &in) == STRIX_OK);
    const size_t kv_dim = (size_t)in.n_head_kv * (size_t)in.head_dim;
    for (int a = 0; a < 4; a++)
        for (int b = 0; b < 4; b++) {
            strix_context *c = ctx_make(m, 100, types[a], types[b], 1, 1, 0);
            size_t total = 0, tok = 0;
            CHECK(strix_context_cache_bytes(c, &total, &tok, NULL) == STRIX_OK);
            /* F32 4 bytes a value, F16 2, Q8_0 34 per 32, Q4_0 18 per 32 */
            const double per[4] = {4.0, 2.0, 34.0 / 32, 18.0 / 32};
            const size_t want =
                (size_t)in.n_layer * ((size_t)((per[a] + per[b]) * (double)kv_dim) + 4 + 8 + 4);
            CHECKF(tok == want && total == want * 100,
                   "keys %s values %s: %zu bytes per token "
                   "(%zu in all), want %zu",
                   strix_cache_type_name(types[a]), strix_cache_type_name(types[b]), tok, total,
                   want);
            strix_context_free(c);
        }
}

static void check_refusals(const strix_model *m3)
{
    strix_model *m260 = load_fixture("stories260K-ref.gguf", NULL); /* head size 8 */
    struct strix_context_params cp = strix_context_default_params();
    strix_context *c = NULL;
    strix_error err;
    cp.n_ctx = 64;
    cp.type_k = STRIX_CACHE_Q8_0;
    CHECK(m260 && strix_context_create(m260, &cp, &c, &err) == STRIX_ERR_UNSUPPORTED &&
          strstr(err.msg, "multiple of 32") && !c);
    cp.type_k = STRIX_CACHE_F16; /* F16 needs no blocks */
    CHECK(m260 && strix_context_create(m260, &cp, &c, &err) == STRIX_OK);
    strix_context_free(c);
    c = NULL;
    cp.type_k = 3; /* Q4_1: not a cache type */
    CHECK(strix_context_create(m3, &cp, &c, &err) == STRIX_ERR_ARG && strstr(err.msg, "q8_0"));
    cp.type_k = 0;
    cp.type_v = -1;
    CHECK(strix_context_create(m3, &cp, &c, &err) == STRIX_ERR_ARG && !c);
    strix_model_free(m260);
    CHECK(strix_cache_type_from_name("Q8_0") == STRIX_CACHE_Q8_0 &&
          strix_cache_type_from_name("q4_0") == STRIX_CACHE_Q4_0 &&
          strix_cache_type_from_name("f16") == STRIX_CACHE_F16 &&
          strix_cache_type_from_name("f32") == STRIX_CACHE_F32 &&
          strix_cache_type_from_name("q4_1") == -1 && strix_cache_type_from_name(NULL) == -1);
    CHECK(strcmp(strix_cache_type_name(STRIX_CACHE_Q4_0), "q4_0") == 0 &&
          !strix_cache_type_name(3));
    /* MLA keeps F32 only */
    struct strix_synth_params sp = strix_synth_default_params();
    sp.arch = "deepseek2";
    sp.n_embd = 64, sp.n_ff = 64, sp.n_layer = 1, sp.n_head = 2, sp.n_head_kv = 2;
    sp.n_ctx = 64;
    strix_model *mla = NULL;
    CHECKF(strix_model_synth(&sp, test_path("stories260K-ref.gguf"), &mla, &err) == STRIX_OK, "%s",
           err.msg);
    cp.type_k = STRIX_CACHE_F16;
    cp.type_v = 0;
    CHECK(mla && strix_context_create(mla, &cp, &c, &err) == STRIX_ERR_UNSUPPORTED &&
          strstr(err.msg, "MLA"));
    strix_model_free(mla);
}

/* The default length follows a long trained context; 8200 positions work
 * with a quantized cache and stay close to F32. */
static void check_long(void)
{
    struct strix_synth_params sp = strix_synth_default_params();
    sp.n_embd = 64, sp.n_ff = 64, sp.n_layer = 1, sp.n_head = 2, sp.n_head_kv = 1;
    sp.n_ctx = 32768;
    sp.seed = 3;
    strix_model *m = NULL;
    strix_error err;
    CHECKF(strix_model_synth(&sp, test_path("stories260K-ref.gguf"), &m, &err) == STRIX_OK, "%s",
           err.msg);
    if (!m)
        return;
    struct strix_context_params cp = strix_context_default_params();
    cp.n_threads = 1;
    strix_context *c = fixture_context_with(m, &cp);
    CHECKF(strix_context_n_ctx(c) == 32768, "default n_ctx %d, trained 32768",
           strix_context_n_ctx(c));
    strix_context_free(c);
    enum { N = 8200 };
    strix_token *ids = malloc(N * sizeof *ids);
    for (int i = 0; i < N; i++)
        ids[i] = (strix_token)(3 + (i * 7919) % 500);
    float *last[2] = {NULL, NULL};
    const int nv = strix_vocab_size(m);
    for (int k = 0; k < 2; k++) {
        cp.n_ctx = N;
        cp.n_batch = 2048;
        cp.n_threads = 2;
        cp.type_k = cp.type_v = k ? STRIX_CACHE_Q8_0 : STRIX_CACHE_F32;
        c = fixture_context_with(m, &cp);
        if (c && strix_decode(c, ids, NULL, N, NULL, &err) == STRIX_OK) {
            last[k] = malloc((size_t)nv * sizeof(float));
            memcpy(last[k], strix_get_logits(c, -1), (size_t)nv * sizeof(float));
        }
        CHECKF(last[k], "%d positions: %s", N, err.msg);
        strix_context_free(c);
    }
    if (last[0] && last[1]) {
        double d = 0, mag = 0;
        for (int i = 0; i < nv; i++) {
            d = fmax(d, fabs(last[0][i] - last[1][i]));
            mag = fmax(mag, fabs(last[0][i]));
        }
        CHECKF(d < 0.05 * mag && d > 0, "position %d: q8_0 cache's logits %g from F32's (max %g)",
               N - 1, d, mag);
    }
    free(last[0]);
    free(last[1]);
    free(ids);
    strix_model_free(m);
}

/* ---- perplexity against llama.cpp's change for the same cache type ---- */

static double ppl_of(const strix_model *m, const strix_token *t, int n, int n_ctx, int type)
{
    struct strix_context_params cp = strix_context_default_params();
    cp.n_ctx = cp.n_batch = n_ctx;
    cp.n_threads = 2;
    cp.type_k = cp.type_v = type;
    strix_context *c = fixture_context_with(m, &cp);
    struct strix_ppl_params pp = strix_ppl_default_params();
    pp.n_ctx = n_ctx;
    struct strix_ppl_result r = {.struct_size = sizeof r};
    strix_error err;
    const int rc = c ? strix_perplexity(m, c, t, n, &pp, &r, &err) : STRIX_ERR_ARG;
    CHECKF(rc == STRIX_OK, "perplexity: %s", c ? err.msg : "no context");
    strix_context_free(c);
    return rc == STRIX_OK ? r.ppl : NAN;
}

static void check_ppl(const strix_model *m)
{
    size_t len;
    char *text = read_fixture("tinystories-valid-4k.txt", &len);
    char *ref = read_fixture("llamacpp-ppl-kv.txt", NULL);
    if (!text || !ref) {
        free(text);
        free(ref);
        return;
    }
    strix_token *ids = malloc((len + 8) * sizeof *ids);
    int n = 0;
    strix_error err;
    CHECK(strix_tokenize(m, text, len, 1, ids, (int)len + 8, &n, &err) == STRIX_OK);
    /* llama.cpp's perplexities by (n_ctx, type) */
    double lc[2][4] = {{0}};
    const int ctxs[2] = {128, 256};
    for (char *line = ref, *next; line && *line; line = next) {
        next = strchr(line, '\n');
        if (next)
            *next++ = '\0';
        char model[32], type[16];
        int nc;
        double p;
        if (line[0] == '#' || sscanf(line, "%31s %d %15s %lf", model, &nc, type, &p) != 4)
            continue;
        const int t = strix_cache_type_from_name(type);
        const int ti = t == STRIX_CACHE_F32    ? 0
                       : t == STRIX_CACHE_F16  ? 1
                       : t == STRIX_CACHE_Q8_0 ? 2
                                               : 3;
        if (t >= 0 && (nc == 128 || nc == 256))
            lc[nc == 256][ti] = p;
    }
    const int types[4] = {STRIX_CACHE_F32, STRIX_CACHE_F16, STRIX_CACHE_Q8_0, STRIX_CACHE_Q4_0};
    for (int ci = 0; ci < 2; ci++) {
        double base = 0;
        for (int ti = 0; ti < 4; ti++) {
            CHECKF(lc[ci][ti] > 0, "llamacpp-ppl-kv.txt lacks n_ctx %d type %s", ctxs[ci],
                   strix_cache_type_name(types[ti]));
            const double p = ppl_of(m, ids, n, ctxs[ci], types[ti]);
            if (ti == 0) {
                base = p;
                continue;
            }
            const double ours = p / base - 1, theirs = lc[ci][ti] / lc[ci][0] - 1;
            printf("n_ctx %d %s: PPL %.4f (F32 %.4f, %+.3f%%); llama.cpp %.4f (%+.3f%%)\n",
                   ctxs[ci], strix_cache_type_name(types[ti]), p, base, 100 * ours, lc[ci][ti],
                   100 * theirs);
            /* F16: llama.cpp sees no change in the printed digits; Q8_0: a
             * change of at most 0.6% either way; Q4_0: +13% to +16%. strix
             * must lose no more than llama.cpp plus 1% (F16: 0.05%), and
             * Q4_0 must still cost what 4-bit values cost (at least half
             * llama.cpp's change), else the cache is not what it claims. */
            const double slack = types[ti] == STRIX_CACHE_F16 ? 5e-4 : 1e-2;
            CHECKF(fabs(ours) <= fabs(theirs) + slack,
                   "n_ctx %d %s: PPL change %+.3f%%, llama.cpp's %+.3f%%", ctxs[ci],
                   strix_cache_type_name(types[ti]), 100 * ours, 100 * theirs);
            if (types[ti] == STRIX_CACHE_Q4_0)
                CHECKF(ours >= 0.5 * theirs,
                       "n_ctx %d q4_0: PPL change %+.3f%% is under half "
                       "llama.cpp's %+.3f%%",
                       ctxs[ci], 100 * ours, 100 * theirs);
            if (types[ti] != STRIX_CACHE_F16)
                CHECKF(ours != 0, "n_ctx %d %s: no change at all", ctxs[ci],
                       strix_cache_type_name(types[ti]));
        }
    }
    free(ids);
    free(text);
    free(ref);
}

int main(void)
{
    if (!fixture_kernels("test_kvtypes"))
        TEST_MAIN_END();
    check_kernels();
    strix_model *m = load_fixture_f32("stories3M-q80.bin", "tok4096.bin"); /* head size 32 */
    if (m) {
        strix_token ids[48];
        for (int i = 0; i < 48; i++)
            ids[i] = (strix_token)(1 + (i * 131) % 4000);
        const int pairs[][2] = {{STRIX_CACHE_F16, STRIX_CACHE_F16},
                                {STRIX_CACHE_Q8_0, STRIX_CACHE_Q8_0},
                                {STRIX_CACHE_Q4_0, STRIX_CACHE_Q4_0},
                                {STRIX_CACHE_Q8_0, STRIX_CACHE_F16},
                                {STRIX_CACHE_F32, STRIX_CACHE_Q4_0}};
        for (size_t i = 0; i < sizeof pairs / sizeof pairs[0]; i++) {
            check_exact(m, ids, 48, pairs[i][0], pairs[i][1]);
            check_attention(m, pairs[i][0], pairs[i][1]);
        }
        check_bytes(m);
        check_refusals(m);
        check_ppl(m);
        strix_model_free(m);
    }
    check_long();
    TEST_MAIN_END();
}
