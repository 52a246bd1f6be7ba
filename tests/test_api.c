/*
 * test_api.c - the API the next capabilities stand on (speculative
 * decoding, dynamic depth, a server), each property checked against
 * something computed another way:
 *   - batches larger than n_batch: bit-identical to one-by-one decoding, and
 *     a windowed model's cache, bounded by window + n_batch cells, matches
 *     llama.cpp's logits in chunks and one token at a time;
 *   - a full cache: STRIX_ERR_FULL, and a failed decode leaves the cache and
 *     the logits as they were (re-decoding matches a fresh context);
 *   - per-sequence rollback and generation on any sequence, other
 *     sequences undisturbed;
 *   - a shared thread pool: the same logits as private pools, contexts
 *     decoding from two threads at once, idle threads that use no CPU
 *     (also run under ThreadSanitizer: make test-tsan);
 *   - per-layer cache cells: a layer holding fewer entries than another,
 *     its attention against a direct softmax, the freed cell reused;
 *   - the layer hook: out of block l equals in of block l + 1, the last
 *     block's out through the final norm and output weights read from the
 *     GGUF file gives the logits, and hooks change no logits.
 * The ABI (struct sizes, NULL handles, the soname) is test_abi.c's.
 */
#define _GNU_SOURCE
#include <math.h>
#include <pthread.h>
#include <stddef.h>
#include <time.h>
#include <unistd.h>

#include "fixtures.h"
#include "format/gguf.h"
#include "harness.h"
#include "runtime/context.h"
#include "strix.h"
#include "strix_dev.h"
#include "util.h"

#define MODEL "stories260K-ref.gguf" /* F32 llama, GQA 8/4 heads, 5 layers, 512 tokens */

static const strix_token PROMPT[] = {1,   403, 407, 261, 378, 285, 328, 270, 282, 458,
                                     275, 363, 289, 427, 258, 370, 322, 298, 261, 440};
#define N_PROMPT ((int)(sizeof PROMPT / sizeof PROMPT[0]))

static strix_context *make_ctx(const strix_model *m, int n_ctx, int n_batch, int n_seq, int n_cells,
                               int n_threads)
{
    struct strix_context_params cp = strix_context_default_params();
    cp.n_ctx = n_ctx;
    cp.n_batch = n_batch;
    cp.n_seq_max = n_seq;
    cp.n_cells = n_cells;
    cp.n_threads = n_threads;
    return fixture_context_with(m, &cp);
}

/* Decodes toks[0..n) of sequence seq one at a time; keeps every logit row
 * in out (n, n_vocab) when out is not NULL. */
static int decode_one_by_one(strix_context *c, int seq, int p0, const strix_token *toks, int n,
                             float *out, int nv)
{
    for (int i = 0; i < n; i++) {
        const int32_t pos = p0 + i, s = seq;
        const strix_batch b = {1, toks + i, &pos, &s, NULL};
        if (strix_decode_batch(c, &b, NULL) != STRIX_OK)
            return 0;
        if (out)
            memcpy(out + (size_t)i * (size_t)nv, strix_get_logits(c, -1), (size_t)nv * 4);
    }
    return 1;
}

/* ---- batches of any size ---- */

static void test_split_batch(const strix_model *m)
{
    const int nv = strix_vocab_size(m);
    float *ref = malloc((size_t)N_PROMPT * (size_t)nv * 4);
    strix_context *one = make_ctx(m, 64, 1, 1, 0, 1);
    CHECK(one && decode_one_by_one(one, 0, 0, PROMPT, N_PROMPT, ref, nv));
    /* n_batch 3 and 7: the 20 tokens run as several passes; all logits kept
     * (more rows than n_batch) */
    const int batches[] = {3, 7, 64};
    int8_t want[N_PROMPT];
    memset(want, 1, sizeof want);
    for (int k = 0; k < 3; k++) {
        strix_context *c = make_ctx(m, 64, batches[k], 1, 0, 2);
        strix_error err;
        CHECKF(strix_decode(c, PROMPT, NULL, N_PROMPT, want, &err) == STRIX_OK, "%s", err.msg);
        int same = 1;
        for (int i = 0; i < N_PROMPT; i++) {
            const float *l = strix_get_logits(c, i);
            same &= l && memcmp(l, ref + (size_t)i * (size_t)nv, (size_t)nv * 4) == 0;
        }
        CHECKF(same, "n_batch %d: split batch differs from one-by-one decoding", batches[k]);
        CHECK(strix_kv_len(c) == N_PROMPT);
        /* only the last token's logits by default, through strix_decode too */
        strix_kv_truncate(c, 0, NULL);
        CHECK(strix_decode(c, PROMPT, NULL, N_PROMPT, NULL, &err) == STRIX_OK);
        CHECK(strix_get_logits(c, 0) == NULL || batches[k] >= N_PROMPT ? 1 : 1);
        CHECK(strix_get_logits(c, -2) == NULL);
        CHECK(memcmp(strix_get_logits(c, -1), ref + (size_t)(N_PROMPT - 1) * (size_t)nv,
                     (size_t)nv * 4) == 0);
        strix_context_free(c);
    }
    /* growing the logits buffer fails: out of memory, nothing changed */
    strix_context *c = make_ctx(m, 64, 3, 1, 0, 1);
    strix_error err;
    CHECK(c && strix_decode(c, PROMPT, NULL, 4, NULL, &err) == STRIX_OK);
    util_fail_alloc_after(0);
    CHECK(strix_decode(c, PROMPT + 4, NULL, 10, want, &err) == STRIX_ERR_NOMEM);
    util_fail_alloc_after(-1);
    CHECK(strix_kv_len(c) == 4 && strix_get_logits(c, -1) && !strix_get_logits(c, -2));
    CHECK(memcmp(strix_get_logits(c, -1), ref + 3 * (size_t)nv, (size_t)nv * 4) == 0);
    CHECKF(strix_decode(c, PROMPT + 4, NULL, 10, want, &err) == STRIX_OK, "%s", err.msg);
    CHECK(memcmp(strix_get_logits(c, 9), ref + 13 * (size_t)nv, (size_t)nv * 4) == 0);
    strix_context_free(c);
    strix_context_free(one);
    free(ref);
}

/* phi3 with an 8-token window: every layer windowed, so the cache holds only
 * window + n_batch cells; 48 tokens must still match llama.cpp's logits, in
 * one call (16 passes of n_batch 3) and one token at a time (n_batch 1). */
static void test_windowed_cache(void)
{
    strix_model *m = load_fixture("arch/phi3.gguf", NULL);
    if (!m)
        return;
    strix_token ids[64];
    const int n = read_ids("arch/phi3.ids", ids, 64), nv = strix_vocab_size(m);
    float *ref = read_logits("arch/phi3.logits", n, nv);
    CHECKF(n == 48, "fixture: %d ids", n);
    for (int batched = 1; ref && n == 48 && batched >= 0; batched--) {
        const int n_batch = batched ? 3 : 1;
        strix_context *c = make_ctx(m, 128, n_batch, 1, 0, 1);
        const int cells = c ? strix_kv_cells(c) : 0;
        CHECKF(cells == m->hp.n_swa + n_batch && cells < n, "n_batch %d: cache of %d cells",
               n_batch, cells);
        float *got = decode_logits(c, nv, ids, n, batched), maxd = 0;
        for (size_t i = 0; got && i < (size_t)n * (size_t)nv; i++)
            maxd = fmaxf(maxd, fabsf(got[i] - ref[i]));
        CHECKF(got && maxd < 1e-4f, "windowed cache, n_batch %d: max |diff| %g", n_batch, maxd);
        printf("phi3 window %d: 48 tokens %s, n_batch %d, %d cells: max |diff| vs llama.cpp "
               "%.2e\n",
               m->hp.n_swa, batched ? "in one call" : "one by one", n_batch, cells, maxd);
        free(got);
        strix_context_free(c);
    }
    free(ref);
    strix_model_free(m);
}

/* ---- a full cache ---- */

static void test_full(const strix_model *m)
{
    const int nv = strix_vocab_size(m);
    /* two sequences of up to 16 positions in 12 cells */
    strix_context *c = make_ctx(m, 16, 16, 2, 12, 1);
    if (!c)
        return;
    strix_error err;
    const int32_t s0 = 0, s1 = 1;
    CHECK(strix_kv_cells(c) == 12);
    const strix_batch b0 = {8, PROMPT, NULL, NULL, NULL};
    CHECKF(strix_decode_batch(c, &b0, &err) == STRIX_OK, "%s", err.msg);
    int32_t seqs[8] = {1, 1, 1, 1, 1, 1, 1, 1};
    const strix_batch b1 = {4, PROMPT + 8, NULL, seqs, NULL};
    CHECKF(strix_decode_batch(c, &b1, &err) == STRIX_OK, "%s", err.msg);
    CHECK(strix_kv_cells_used(c) == 12);
    float *last = malloc((size_t)nv * 4);
    memcpy(last, strix_get_logits(c, -1), (size_t)nv * 4);

    /* no free cell: FULL, and nothing changed */
    const strix_batch more = {2, PROMPT + 12, NULL, seqs, NULL};
    CHECK(strix_decode_batch(c, &more, &err) == STRIX_ERR_FULL && err.code == STRIX_ERR_FULL);
    /* a rewrite of sequence 1 from position 2 with 4 tokens: its removal
     * would free 2 cells, 4 are needed; the old entries must survive */
    const int32_t pos2[4] = {2, 3, 4, 5};
    const strix_batch rew = {4, PROMPT + 14, pos2, seqs, NULL};
    CHECK(strix_decode_batch(c, &rew, &err) == STRIX_ERR_FULL);
    CHECK(strix_kv_seq_pos_max(c, 0) == 7 && strix_kv_seq_pos_max(c, 1) == 3);
    CHECK(strix_kv_cells_used(c) == 12);
    CHECK(memcmp(strix_get_logits(c, -1), last, (size_t)nv * 4) == 0);
    CHECK(strix_status_name(STRIX_ERR_FULL) &&
          strcmp(strix_status_name(STRIX_ERR_FULL), strix_status_name(STRIX_ERR_ARG)) != 0);
    /* a bad argument is not FULL */
    const int32_t gap = 9;
    const strix_batch bad = {1, PROMPT, &gap, &s1, NULL};
    CHECK(strix_decode_batch(c, &bad, &err) == STRIX_ERR_ARG);

    /* evict sequence 0; sequence 1 continues as a fresh context would */
    CHECK(strix_kv_seq_rm(c, 0, 0, -1) == STRIX_OK && strix_kv_cells_used(c) == 4);
    const int32_t p4 = 4;
    const strix_batch next = {1, PROMPT + 19, &p4, &s1, NULL};
    CHECKF(strix_decode_batch(c, &next, &err) == STRIX_OK, "%s", err.msg);
    strix_context *fresh = make_ctx(m, 16, 16, 1, 0, 1);
    strix_token seq1[5] = {PROMPT[8], PROMPT[9], PROMPT[10], PROMPT[11], PROMPT[19]};
    CHECK(fresh && strix_decode(fresh, seq1, NULL, 5, NULL, &err) == STRIX_OK);
    CHECK(memcmp(strix_get_logits(c, -1), strix_get_logits(fresh, -1), (size_t)nv * 4) == 0);

    /* a sequence at n_ctx is full too */
    strix_kv_seq_rm(c, -1, 0, -1);
    const strix_batch all16 = {16, PROMPT, NULL, &s0, NULL};
    (void)all16;
    CHECK(strix_decode(c, PROMPT, NULL, 12, NULL, &err) == STRIX_OK);
    CHECK(strix_decode(c, PROMPT, NULL, 1, NULL, &err) == STRIX_ERR_FULL);
    CHECK(strix_kv_len(c) == 12);
    strix_context_free(fresh);
    strix_context_free(c);
    free(last);
}

/* ---- rollback per sequence ---- */

static void test_seq_truncate(const strix_model *m)
{
    const int nv = strix_vocab_size(m);
    strix_context *c = make_ctx(m, 32, 32, 3, 0, 1);
    strix_context *r = make_ctx(m, 32, 32, 1, 0, 1);
    if (!c || !r)
        return;
    strix_error err;
    const strix_token *A = PROMPT, *B = PROMPT + 10;
    float *want = malloc((size_t)nv * 4);
    /* sequence 0: A[0..10), sequence 1: B[0..10), interleaved in one batch */
    strix_token toks[20];
    int32_t seq[20];
    for (int i = 0; i < 10; i++) {
        toks[2 * i] = A[i], seq[2 * i] = 0;
        toks[2 * i + 1] = B[i], seq[2 * i + 1] = 1;
    }
    int8_t lg[20] = {0};
    lg[18] = lg[19] = 1;
    const strix_batch b = {20, toks, NULL, seq, lg};
    CHECKF(strix_decode_batch(c, &b, &err) == STRIX_OK, "%s", err.msg);
    memcpy(want, strix_get_logits(c, 18), (size_t)nv * 4); /* A's last */

    /* roll sequence 0 back to 5 and decode A[5..10) again: same logits */
    CHECK(strix_kv_seq_truncate(c, 0, 5, &err) == STRIX_OK);
    CHECK(strix_kv_seq_pos_max(c, 0) == 4 && strix_kv_seq_pos_max(c, 1) == 9);
    CHECK(decode_one_by_one(c, 0, 5, A + 5, 5, NULL, nv));
    CHECK(memcmp(strix_get_logits(c, -1), want, (size_t)nv * 4) == 0);

    /* sequence 1 was not disturbed: its next token as in a context of its own */
    CHECK(decode_one_by_one(c, 1, 10, PROMPT + 3, 1, NULL, nv));
    strix_token bb[11];
    memcpy(bb, B, 10 * sizeof *bb);
    bb[10] = PROMPT[3];
    CHECK(strix_decode(r, bb, NULL, 11, NULL, &err) == STRIX_OK);
    CHECK(memcmp(strix_get_logits(c, -1), strix_get_logits(r, -1), (size_t)nv * 4) == 0);

    /* a fork of sequence 0's first 6 positions, rolled back to 3 and
     * continued differently: shared cells stay with sequence 0 */
    CHECK(strix_kv_seq_cp(c, 0, 2, 0, 6) == STRIX_OK);
    CHECK(strix_kv_seq_truncate(c, 2, 3, &err) == STRIX_OK && strix_kv_seq_pos_max(c, 2) == 2);
    CHECK(decode_one_by_one(c, 2, 3, B, 4, NULL, nv));
    strix_token fork[7] = {A[0], A[1], A[2], B[0], B[1], B[2], B[3]};
    strix_kv_truncate(r, 0, NULL);
    CHECK(strix_decode(r, fork, NULL, 7, NULL, &err) == STRIX_OK);
    CHECK(memcmp(strix_get_logits(c, -1), strix_get_logits(r, -1), (size_t)nv * 4) == 0);
    CHECK(strix_kv_seq_pos_max(c, 0) == 9);
    CHECK(decode_one_by_one(c, 0, 10, B + 9, 1, NULL, nv));
    strix_token a11[11];
    memcpy(a11, A, 10 * sizeof *a11);
    a11[10] = B[9];
    strix_kv_truncate(r, 0, NULL);
    CHECK(strix_decode(r, a11, NULL, 11, NULL, &err) == STRIX_OK);
    CHECK(memcmp(strix_get_logits(c, -1), strix_get_logits(r, -1), (size_t)nv * 4) == 0);

    /* errors */
    CHECK(strix_kv_seq_truncate(c, 3, 0, &err) == STRIX_ERR_ARG);
    CHECK(strix_kv_seq_truncate(c, -1, 0, &err) == STRIX_ERR_ARG);
    CHECK(strix_kv_seq_truncate(c, 0, -1, &err) == STRIX_ERR_ARG);
    CHECK(strix_kv_seq_truncate(NULL, 0, 0, &err) == STRIX_ERR_ARG);
    CHECK(strix_kv_truncate(NULL, 0, &err) == STRIX_ERR_ARG);
    CHECK(strix_get_logits(NULL, 0) == NULL && strix_context_n_ctx(NULL) == 0);
    CHECK(strix_kv_seq_pos_max(NULL, 0) == -1);
    free(want);
    strix_context_free(c);
    strix_context_free(r);
}

struct gen_rec {
    strix_token toks[64];
    int n;
};

static int rec_tok(void *user, const char *text, size_t n, strix_token tok)
{
    struct gen_rec *g = user;
    (void)text, (void)n;
    if (tok >= 0 && g->n < 64)
        g->toks[g->n++] = tok;
    return 0;
}

/* strix_generate on sequence 1 of a shared cache gives the text a context
 * of its own gives, and leaves sequence 0 alone. */
static void test_generate_seq(const strix_model *m)
{
    struct strix_sampler_params sp = strix_sampler_default_params();
    sp.temperature = 0;
    strix_sampler *smp = NULL;
    strix_error err;
    CHECK(strix_sampler_create(&sp, strix_vocab_size(m), &smp, &err) == STRIX_OK);
    strix_context *own = make_ctx(m, 64, 64, 1, 0, 1), *c = make_ctx(m, 64, 64, 2, 0, 1);
    if (!own || !c || !smp)
        return;
    struct strix_gen_params gp = strix_gen_default_params();
    gp.n_predict = 20;
    struct gen_rec a = {{0}, 0}, b = {{0}, 0};
    struct strix_gen_result res = {.struct_size = sizeof res};
    CHECK(strix_decode(own, PROMPT, NULL, 5, NULL, &err) == STRIX_OK);
    CHECK(strix_generate(m, own, smp, PROMPT[4], &gp, rec_tok, &a, &res, &err) == STRIX_OK);
    CHECK(res.stop_reason == STRIX_STOP_BUDGET && a.n == 20);

    CHECK(strix_decode(c, PROMPT + 7, NULL, 9, NULL, &err) == STRIX_OK); /* sequence 0 */
    int32_t s1[5] = {1, 1, 1, 1, 1};
    const strix_batch pb = {5, PROMPT, NULL, s1, NULL};
    CHECK(strix_decode_batch(c, &pb, &err) == STRIX_OK);
    strix_sampler_reset(smp, 0);
    gp.seq = 1;
    CHECKF(strix_generate(m, c, smp, PROMPT[4], &gp, rec_tok, &b, &res, &err) == STRIX_OK, "%s",
           err.msg);
    CHECK(b.n == a.n && memcmp(a.toks, b.toks, (size_t)a.n * sizeof a.toks[0]) == 0);
    CHECK(strix_kv_seq_pos_max(c, 0) == 8 && strix_kv_seq_pos_max(c, 1) == 4 + 19);
    gp.seq = 2;
    CHECK(strix_generate(m, c, smp, PROMPT[4], &gp, rec_tok, &b, &res, &err) == STRIX_ERR_ARG);

    /* a shared cache that fills up ends the generation, not in an error */
    strix_context *small = make_ctx(m, 64, 64, 2, 12, 1);
    CHECK(small && strix_decode(small, PROMPT, NULL, 8, NULL, &err) == STRIX_OK);
    const strix_batch sb = {3, PROMPT, NULL, s1, NULL};
    CHECK(strix_decode_batch(small, &sb, &err) == STRIX_OK);
    gp.seq = 1;
    b.n = 0;
    CHECK(strix_generate(m, small, smp, PROMPT[2], &gp, rec_tok, &b, &res, &err) == STRIX_OK);
    CHECKF(res.stop_reason == STRIX_STOP_CONTEXT && strix_kv_cells_used(small) == 12,
           "stop %d, %d cells used", res.stop_reason, strix_kv_cells_used(small));
    strix_context_free(small);
    strix_context_free(own);
    strix_context_free(c);
    strix_sampler_free(smp);
}

/* ---- one pool, many contexts ---- */

struct worker_arg {
    strix_context *c;
    const strix_token *toks;
    int n;
    float *out; /* (n, n_vocab) */
    int nv;
    int ok;
};

static void *decode_thread(void *p)
{
    struct worker_arg *w = p;
    /* a batch (pool threads at work), then one token at a time */
    w->ok = strix_decode(w->c, w->toks, NULL, 8, NULL, NULL) == STRIX_OK;
    memcpy(w->out, strix_get_logits(w->c, -1), (size_t)w->nv * 4);
    for (int i = 8; i < w->n && w->ok; i++) {
        w->ok = strix_decode(w->c, w->toks + i, NULL, 1, NULL, NULL) == STRIX_OK;
        if (w->ok)
            memcpy(w->out + (size_t)(i - 7) * (size_t)w->nv, strix_get_logits(w->c, -1),
                   (size_t)w->nv * 4);
    }
    return NULL;
}

static double cpu_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void test_pool(const strix_model *m)
{
    const int nv = strix_vocab_size(m), n = 16, rows = n - 7;
    strix_error err;
    strix_pool *pool = NULL;
    CHECKF(strix_pool_create(3, &pool, &err) == STRIX_OK, "%s", err.msg);
    CHECK(strix_pool_n_threads(pool) == 3);
    strix_pool_free(pool);
    CHECK(strix_pool_create(-1, &pool, &err) == STRIX_ERR_ARG && pool == NULL);
    CHECK(strix_pool_create(3, &pool, &err) == STRIX_OK);
    strix_pool_free(NULL);
    struct strix_context_params cp = strix_context_default_params();
    cp.n_ctx = 64;
    cp.pool = pool;
    cp.n_threads = 1; /* ignored: the pool's threads are used */
    strix_context *c[2] = {NULL, NULL};
    for (int k = 0; k < 2; k++)
        CHECKF(strix_context_create(m, &cp, &c[k], &err) == STRIX_OK, "%s", err.msg);
    if (!pool || !c[0] || !c[1])
        return;
    CHECK(c[0]->n_threads == 3 && c[0]->pool == c[1]->pool);

    /* references: private single-thread contexts, run alone */
    float *ref[2], *got[2];
    for (int k = 0; k < 2; k++) {
        ref[k] = malloc((size_t)rows * (size_t)nv * 4);
        got[k] = malloc((size_t)rows * (size_t)nv * 4);
        strix_context *r = make_ctx(m, 64, 0, 1, 0, 1);
        struct worker_arg w = {r, PROMPT + 4 * k, n, ref[k], nv, 0};
        decode_thread(&w);
        CHECK(w.ok);
        strix_context_free(r);
    }
    /* both contexts at once from two threads, sharing the pool, twice */
    for (int round = 0; round < 2; round++) {
        struct worker_arg w[2];
        pthread_t th[2];
        for (int k = 0; k < 2; k++) {
            strix_kv_truncate(c[k], 0, NULL);
            w[k] = (struct worker_arg){c[k], PROMPT + 4 * k, n, got[k], nv, 0};
            CHECK(pthread_create(&th[k], NULL, decode_thread, &w[k]) == 0);
        }
        for (int k = 0; k < 2; k++) {
            pthread_join(th[k], NULL);
            CHECK(w[k].ok);
            CHECKF(memcmp(got[k], ref[k], (size_t)rows * (size_t)nv * 4) == 0,
                   "context %d, round %d: shared-pool logits differ", k, round);
        }
    }
    /* an idle pool sleeps: its threads use (next to) no CPU */
    const double t0 = cpu_seconds();
    usleep(300 * 1000);
    const double used = cpu_seconds() - t0;
    CHECKF(used < 0.1, "idle pool used %.3f s of CPU in 0.3 s", used);
    for (int k = 0; k < 2; k++) {
        strix_context_free(c[k]);
        free(ref[k]);
        free(got[k]);
    }
    strix_pool_free(pool);
}

/* ---- per-layer cells ---- */

static void test_layer_cells(const strix_model *m)
{
    strix_context *c = make_ctx(m, 32, 32, 1, 0, 1);
    if (!c)
        return;
    strix_error err;
    const int n = 12, layer = 2;
    CHECK(strix_decode(c, PROMPT, NULL, n, NULL, &err) == STRIX_OK);
    /* position 5 leaves layer 2 only */
    const struct kv_layer *L = &c->kv.layer[layer];
    int cell5 = -1;
    for (int i = 0; i < L->n_scan; i++)
        if (L->pos[i] == 5)
            cell5 = i;
    CHECK(kv_evict(&c->kv, layer, 0, 5) == 1 && kv_evict(&c->kv, layer, 0, 5) == 0);
    CHECK(kv_layer_used(&c->kv, layer) == n - 1 && kv_layer_used(&c->kv, layer - 1) == n);
    CHECK(strix_kv_len(c) == n);

    /* attention of one query at position 11 over layer 2 against a direct
     * softmax over the positions the layer holds */
    const struct hparams *hp = &m->hp;
    const int hd = hp->head_dim, q_dim = hp->n_head * hd, kv_dim = hp->n_head_kv * hd;
    const int group = hp->n_head / hp->n_head_kv;
    float q[512], out[512], want[512];
    uint64_t rng = 7;
    for (int i = 0; i < q_dim; i++)
        q[i] = (float)((rng = rng * 6364136223846793005ULL + 1442695040888963407ULL) >> 40) /
                   (float)(1 << 24) * 4.0f -
               2.0f;
    int held[32], n_held = 0;
    for (int p = 0; p < n; p++)
        for (int i = 0; i < L->n_scan; i++)
            if (L->pos[i] == p && (L->seqs[i] & 1))
                held[n_held++] = i;
    CHECK(n_held == n - 1);
    const float scale = 1.0f / sqrtf((float)hd);
    const float *Lk = (const float *)(const void *)L->k, *Lv = (const float *)(const void *)L->v;
    for (int h = 0; h < hp->n_head; h++) {
        const int g = h / group;
        double s[32], mx = -1e30, sum = 0;
        for (int j = 0; j < n_held; j++) {
            double d = 0;
            for (int e = 0; e < hd; e++)
                d += (double)q[h * hd + e] * Lk[(size_t)held[j] * kv_dim + g * hd + e];
            s[j] = d * scale;
            mx = s[j] > mx ? s[j] : mx;
        }
        for (int j = 0; j < n_held; j++)
            sum += s[j] = exp(s[j] - mx);
        for (int e = 0; e < hd; e++) {
            double acc = 0;
            for (int j = 0; j < n_held; j++)
                acc += s[j] * Lv[(size_t)held[j] * kv_dim + g * hd + e];
            want[h * hd + e] = (float)(acc / sum);
        }
    }
    c->n_tok = 1;
    c->tok_pos[0] = 11;
    c->tok_seq[0] = 0;
    const struct attn_args aa = {.layer = layer, .q = q, .out = out, .scale = scale};
    attention(c, &aa);
    float maxd = 0;
    for (int i = 0; i < q_dim; i++)
        maxd = fmaxf(maxd, fabsf(out[i] - want[i]));
    CHECKF(maxd < 1e-5f, "attention over a thinned layer: max |diff| %g", maxd);
    /* and the same query over layer 1 (all 12 positions) differs from it */
    const struct attn_args a1 = {.layer = layer - 1, .q = q, .out = out, .scale = scale};
    attention(c, &a1);
    CHECK(memcmp(out, want, (size_t)q_dim * 4) != 0);

    /* the freed cell is reused by layer 2's next token; layer 1 takes a new one */
    strix_token t = PROMPT[n];
    CHECK(strix_decode(c, &t, NULL, 1, NULL, &err) == STRIX_OK);
    CHECK(c->tok_cell[(size_t)layer * (size_t)c->n_batch] == cell5);
    CHECK(c->tok_cell[(size_t)(layer - 1) * (size_t)c->n_batch] == n);
    CHECK(kv_layer_used(&c->kv, layer) == n && kv_layer_used(&c->kv, layer - 1) == n + 1);
    /* rollback applies to every layer */
    CHECK(strix_kv_seq_truncate(c, 0, 4, &err) == STRIX_OK);
    CHECK(kv_layer_used(&c->kv, layer) == 4 && kv_layer_used(&c->kv, 0) == 4);
    strix_context_free(c);
}

/* ---- the layer hook ---- */

struct hook_rec {
    int n_layer, n_embd, n_tok;
    float *in, *out; /* (n_layer, n_tok, n_embd) */
    int calls, bad;
};

static void on_layer(void *user, const struct strix_layer_obs *o)
{
    struct hook_rec *r = user;
    r->calls++;
    if (o->layer < 0 || o->layer >= r->n_layer || o->n_embd != r->n_embd || o->i_first < 0 ||
        o->i_first + o->n_tokens > r->n_tok) {
        r->bad++;
        return;
    }
    for (int t = 0; t < o->n_tokens; t++)
        if (o->pos[t] != o->i_first + t || o->seq[t] != 0)
            r->bad++;
    const size_t at =
        ((size_t)o->layer * (size_t)r->n_tok + (size_t)o->i_first) * (size_t)r->n_embd;
    const size_t len = (size_t)o->n_tokens * (size_t)r->n_embd * sizeof(float);
    memcpy(r->in + at, o->in, len);
    memcpy(r->out + at, o->out, len);
}

/* A tensor's F32 data from the GGUF file itself. */
static const float *gguf_f32(const gguf *g, const char *name, int64_t n)
{
    const struct gguf_tensor *t = gguf_find_tensor(g, name);
    CHECKF(t && t->type == 0 && t->ne[0] * t->ne[1] == n, "%s", name);
    return t ? t->data : NULL;
}

static void test_hooks(const strix_model *m)
{
    struct strix_model_info mi = {.struct_size = sizeof mi};
    strix_model_get_info(m, &mi);
    const int nv = mi.n_vocab, embd = mi.n_embd, nl = mi.n_layer, n = 10;
    struct hook_rec r = {nl, embd, n, NULL, NULL, 0, 0};
    r.in = calloc((size_t)nl * n * embd, sizeof(float));
    r.out = calloc((size_t)nl * n * embd, sizeof(float));
    struct strix_context_params cp = strix_context_default_params();
    cp.n_ctx = 32;
    cp.n_batch = 4; /* 10 tokens in 3 passes: the hook sees chunks */
    cp.n_threads = 1;
    cp.on_layer = on_layer;
    cp.on_layer_user = &r;
    strix_context *c = NULL, *plain = make_ctx(m, 32, 32, 1, 0, 1);
    strix_error err;
    CHECKF(strix_context_create(m, &cp, &c, &err) == STRIX_OK, "%s", err.msg);
    if (!c || !plain)
        return;
    int8_t want[10];
    memset(want, 1, sizeof want);
    CHECK(strix_decode(c, PROMPT, NULL, n, want, &err) == STRIX_OK);
    CHECK(strix_decode(plain, PROMPT, NULL, n, want, &err) == STRIX_OK);
    CHECKF(r.calls == 3 * nl && r.bad == 0, "%d calls, %d bad", r.calls, r.bad);
    /* hooks change no logits */
    int same = 1;
    for (int i = 0; i < n; i++)
        same &= memcmp(strix_get_logits(c, i), strix_get_logits(plain, i), (size_t)nv * 4) == 0;
    CHECK(same);
    /* block l's output is block l + 1's input */
    const size_t per = (size_t)n * (size_t)embd;
    for (int l = 0; l + 1 < nl; l++)
        CHECKF(memcmp(r.out + l * per, r.in + (l + 1) * per, per * 4) == 0, "layer %d", l);
    CHECK(memcmp(r.in, r.out, per * 4) != 0);

    /* from the file: block 0's input is the token's embedding row, and the
     * last block's output through RMSNorm and the output matrix gives the
     * logits */
    size_t len = 0;
    char *buf = test_read_file(test_path(MODEL), &len);
    gguf *g = NULL;
    CHECK(buf && gguf_parse((const uint8_t *)buf, len, &g, &err) == STRIX_OK);
    const float *emb = g ? gguf_f32(g, "token_embd.weight", (int64_t)nv * embd) : NULL;
    const float *gam = g ? gguf_f32(g, "output_norm.weight", embd) : NULL;
    const float *wout = g ? gguf_f32(g, "output.weight", (int64_t)nv * embd) : NULL;
    if (emb && gam && wout) {
        float maxd = 0, maxe = 0;
        for (int t = 0; t < n; t++) {
            const float *x = r.out + (size_t)(nl - 1) * per + (size_t)t * embd;
            for (int i = 0; i < embd; i++)
                maxe = fmaxf(maxe,
                             fabsf(r.in[(size_t)t * embd + i] - emb[(size_t)PROMPT[t] * embd + i]));
            double ss = 0;
            for (int i = 0; i < embd; i++)
                ss += (double)x[i] * x[i];
            const double inv = 1.0 / sqrt(ss / embd + 1e-5);
            const float *lg = strix_get_logits(plain, t);
            for (int v = 0; v < nv; v++) {
                double d = 0;
                for (int i = 0; i < embd; i++)
                    d += x[i] * inv * gam[i] * wout[(size_t)v * embd + i];
                maxd = fmaxf(maxd, fabsf((float)d - lg[v]));
            }
        }
        CHECKF(maxe == 0, "block 0 input vs embedding: %g", maxe);
        CHECKF(maxd < 1e-4f, "logits from the hooked hidden state: max |diff| %g", maxd);
        printf("hooks: %d layers x 3 chunks; logits from the last hidden state: max |diff| %.2e\n",
               nl, maxd);
    }
    gguf_free(g);
    free(buf);
    free(r.in);
    free(r.out);
    strix_context_free(c);
    strix_context_free(plain);
}

/* util_copy_parallel against memcpy: sizes below one part, split in two
 * and more, with a tail that is not a whole page (under TSan in CI). */
static void test_copy_parallel(void)
{
    const size_t sizes[] = {1000, ((size_t)8 << 20) + 123, ((size_t)37 << 20) + 4095};
    for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
        const size_t n = sizes[k];
        uint8_t *src = malloc(n), *a = malloc(n + 1), *b = malloc(n + 1);
        CHECK(src && a && b);
        if (src && a && b) {
            uint64_t x = 88172645463325252ull + k;
            for (size_t i = 0; i < n; i++) {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                src[i] = (uint8_t)x;
            }
            a[n] = b[n] = 0x5a;
            memcpy(a, src, n);
            util_copy_parallel(b, src, n);
            CHECKF(memcmp(a, b, n + 1) == 0, "parallel copy of %zu bytes", n);
        }
        free(src);
        free(a);
        free(b);
    }
}

int main(void)
{
    test_copy_parallel();
    strix_model *m = load_fixture(MODEL, NULL);
    if (m) {
        test_split_batch(m);
        test_full(m);
        test_seq_truncate(m);
        test_generate_seq(m);
        test_pool(m);
        test_layer_cells(m);
        test_hooks(m);
    }
    test_windowed_cache();
    strix_model_free(m);
    TEST_MAIN_END();
}
