/*
 * test_tail.c - the remote tail (strix_context_set_tail) in one process: a
 * model split into 2 and 3 stages, the first stage's context given a tail
 * whose decode runs each chunk's hidden states through the later stages'
 * contexts (strix_decode_hidden) and whose cache_op applies each cache
 * change to them, as a program would over a network. The first stage's
 * context is then driven like a whole model's by a server-like workload
 * (several sequences in one batch, prompts spread over several forward
 * passes, a prefix shared with strix_kv_seq_cp, rollbacks with
 * strix_kv_seq_rm and strix_kv_seq_truncate, a batch that rewrites
 * positions a sequence holds, strix_kv_seq_keep, clearing), and every logit
 * row it returns must equal, bit for bit, that of a context over the whole
 * model fed the same calls (the whole model's logits are checked against
 * llama.cpp by test_logits.c and test_arch.c). The tail hands the logits
 * over only when the batch's last chunk is called, as the contract allows,
 * so a library that read them earlier fails here. Also: a failing tail's
 * error comes back from the decode and from a cache call, and misuse is an
 * error (a tail on a whole model or a later stage, layer skipping with a
 * tail, a stage decoded without one).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "stage_fixture.h"

#define MAX_STAGES STAGE_MAX
#define N_BATCH 4 /* tokens per forward pass: the workload's batches take several */
#define MAX_ROWS 32

/* The later stages, as a remote program would hold them. */
struct remote {
    int n_stages, nv, n_embd;
    strix_context *ctx[MAX_STAGES]; /* [1, n_stages) */
    float *h[2];                    /* (N_BATCH, n_embd) between stages */
    /* logits rows computed but not yet handed over: they are copied to the
     * chunks' destinations when the batch's last chunk comes */
    float *rows;                    /* (MAX_ROWS, nv) */
    float *dest[MAX_ROWS];
    int n_rows;
    int n_chunks, n_ops;
    int fail_chunk; /* > 0: the decode of that chunk (counted from 1) fails */
    int fail_op;    /* 1: cache_op fails */
};

static int tail_decode(void *user, const struct strix_tail_chunk *ch, strix_error *err)
{
    struct remote *r = user;
    r->n_chunks++;
    if (r->fail_chunk == r->n_chunks) {
        snprintf(err->msg, sizeof err->msg, "the link is down (on purpose)");
        err->code = STRIX_ERR_IO;
        return STRIX_ERR_IO;
    }
    if (ch->n < 1 || ch->n > N_BATCH)
        return STRIX_ERR_ARG;
    memcpy(r->h[0], ch->hidden, (size_t)ch->n * (size_t)r->n_embd * sizeof(float));
    for (int s = 1; s < r->n_stages; s++) {
        const int last = s == r->n_stages - 1;
        const strix_batch b = {ch->n, NULL, ch->pos, ch->seq, ch->want};
        if (strix_decode_hidden(r->ctx[s], &b, r->h[(s + 1) % 2], last ? NULL : r->h[s % 2],
                                err) != STRIX_OK)
            return err->code;
    }
    int k = 0;
    for (int i = 0; i < ch->n; i++) {
        if (!ch->want[i])
            continue;
        const float *l = strix_get_logits(r->ctx[r->n_stages - 1], i);
        if (!l || r->n_rows >= MAX_ROWS)
            return STRIX_ERR_ARG;
        memcpy(r->rows + (size_t)r->n_rows * (size_t)r->nv, l, (size_t)r->nv * sizeof(float));
        r->dest[r->n_rows++] = ch->logits + (size_t)k++ * (size_t)r->nv;
    }
    if (k != ch->n_logits)
        return STRIX_ERR_ARG;
    if (ch->last) {
        for (int i = 0; i < r->n_rows; i++)
            memcpy(r->dest[i], r->rows + (size_t)i * (size_t)r->nv,
                   (size_t)r->nv * sizeof(float));
        r->n_rows = 0;
    }
    return STRIX_OK;
}

static int tail_cache_op(void *user, const struct strix_cache_op *op, strix_error *err)
{
    struct remote *r = user;
    r->n_ops++;
    if (r->fail_op)
        return STRIX_ERR_IO; /* no message: the library writes one */
    (void)err;
    for (int s = 1; s < r->n_stages; s++) {
        int rc = STRIX_ERR_ARG;
        if (op->kind == STRIX_CACHE_OP_RM)
            rc = strix_kv_seq_rm(r->ctx[s], op->seq, op->p0, op->p1);
        else if (op->kind == STRIX_CACHE_OP_CP)
            rc = strix_kv_seq_cp(r->ctx[s], op->seq, op->dst, op->p0, op->p1);
        else if (op->kind == STRIX_CACHE_OP_KEEP)
            rc = strix_kv_seq_keep(r->ctx[s], op->seq);
        if (rc)
            return rc;
    }
    return STRIX_OK;
}

/* One step of the workload: a batch of tokens (seq, first position, count,
 * logits of every row or only the last), several such runs in one batch;
 * or a cache call. */
enum { W_BATCH, W_CP, W_RM, W_TRUNC, W_KEEP, W_END };
struct run {
    int seq, pos0, n, all;
};
struct wstep {
    int kind;
    struct run runs[3]; /* W_BATCH: n == 0 ends the list */
    int a, b, p0, p1;   /* cache calls: seq (src), dst, positions */
};

/* Valid on every architecture tested (recurrent states included: copies of
 * whole sequences, rollbacks of a few positions, no holes). */
static const struct wstep workload[] = {
    {W_BATCH, {{0, 0, 11, 0}}, 0, 0, 0, 0},                  /* a prompt: 3 passes */
    {W_CP, {{0}}, 0, 1, 0, -1},                               /* share it */
    {W_BATCH, {{0, 11, 1, 1}, {1, 11, 1, 1}, {2, 0, 7, 1}}, 0, 0, 0, 0},
    {W_RM, {{0}}, 1, 0, 9, -1},                               /* roll back 3 */
    {W_BATCH, {{1, 9, 4, 1}, {0, 12, 1, 1}}, 0, 0, 0, 0},
    {W_TRUNC, {{0}}, 2, 0, 5, 0},
    {W_BATCH, {{2, 5, 4, 0}, {0, 10, 2, 1}}, 0, 0, 0, 0},    /* seq 0 rewrites 10.. */
    {W_KEEP, {{0}}, 0, 0, 0, 0},
    {W_BATCH, {{0, 12, 1, 1}, {3, 0, 9, 0}}, 0, 0, 0, 0},
    {W_RM, {{0}}, -1, 0, 0, -1},                              /* clear everything */
    {W_BATCH, {{0, 0, 6, 1}}, 0, 0, 0, 0},
    {W_END, {{0}}, 0, 0, 0, 0},
};

/* With 23 cells: the second batch fits only because sequence 0's rewrite
 * frees its positions 5..9 before the first pass places sequence 1's
 * tokens, so the later stages must get that removal before the chunk. */
#define TIGHT_CELLS 23
static const struct wstep tight[] = {
    {W_BATCH, {{0, 0, 10, 0}, {1, 0, 10, 0}}, 0, 0, 0, 0},
    {W_BATCH, {{1, 10, 4, 1}, {0, 5, 4, 1}}, 0, 0, 0, 0},
    {W_END, {{0}}, 0, 0, 0, 0},
};

static strix_token tok_at(int seq, int pos, int nv)
{
    return (strix_token)((1 + 37 * pos + 101 * seq) % nv);
}

/* Runs step w on ctx; the batch's logit rows (in batch order) into rows.
 * Returns the number of rows, or -1 with err set. */
static int apply(strix_context *ctx, const struct wstep *w, int nv, float *rows, strix_error *err)
{
    switch (w->kind) {
    case W_CP:
        return strix_kv_seq_cp(ctx, w->a, w->b, w->p0, w->p1) ? -1 : 0;
    case W_RM:
        return strix_kv_seq_rm(ctx, w->a, w->p0, w->p1) ? -1 : 0;
    case W_TRUNC:
        return strix_kv_seq_truncate(ctx, w->a, w->p0, err) ? -1 : 0;
    case W_KEEP:
        return strix_kv_seq_keep(ctx, w->a) ? -1 : 0;
    default:
        break;
    }
    strix_token tok[MAX_ROWS];
    int32_t pos[MAX_ROWS], seq[MAX_ROWS];
    int8_t want[MAX_ROWS];
    int n = 0;
    for (int r = 0; r < 3 && w->runs[r].n > 0; r++)
        for (int i = 0; i < w->runs[r].n; i++) {
            seq[n] = w->runs[r].seq;
            pos[n] = w->runs[r].pos0 + i;
            tok[n] = tok_at(seq[n], pos[n], nv);
            want[n] = w->runs[r].all || i == w->runs[r].n - 1;
            n++;
        }
    const strix_batch b = {n, tok, pos, seq, want};
    if (strix_decode_batch(ctx, &b, err) != STRIX_OK)
        return -1;
    int k = 0;
    for (int i = 0; i < n; i++) {
        if (!want[i])
            continue;
        const float *l = strix_get_logits(ctx, i);
        if (!l)
            return -1;
        memcpy(rows + (size_t)k++ * (size_t)nv, l, (size_t)nv * sizeof(float));
    }
    return k;
}

static void check_model(const char *name, const struct wstep *work, int n_cells)
{
    char path[4096];
    snprintf(path, sizeof path, "%s", test_path(name));
    strix_error err;
    strix_model *whole = stage_load(path, NULL, 0, 0, &err);
    CHECKF(whole != NULL, "%s: %s", name, err.msg);
    if (!whole)
        return;
    struct strix_model_info info = {.struct_size = sizeof info};
    strix_model_get_info(whole, &info);
    const int nv = strix_vocab_size(whole), L = info.n_layer;
    struct strix_context_params cp = strix_context_default_params();
    cp.n_ctx = 32;
    cp.n_batch = N_BATCH;
    cp.n_threads = 1;
    cp.n_seq_max = 4;
    cp.n_cells = n_cells;
    float *ref = malloc((size_t)MAX_ROWS * (size_t)nv * sizeof(float));
    float *got = malloc((size_t)MAX_ROWS * (size_t)nv * sizeof(float));

    /* a tail on the whole model is refused */
    strix_context *wc = fixture_context_with(whole, &cp);
    struct remote rem = {0};
    struct strix_tail_params tp = strix_tail_default_params();
    tp.decode = tail_decode;
    tp.cache_op = tail_cache_op;
    tp.user = &rem;
    CHECK(strix_context_set_tail(wc, &tp, &err) == STRIX_ERR_ARG);

    for (int n_st = 2; n_st <= MAX_STAGES && n_st <= L; n_st++) {
        struct stages st;
        int ok = stages_load(&st, name, path, NULL, L, n_st, &cp);
        strix_context *const *sc = st.ctx;
        rem = (struct remote){n_st, nv, info.n_embd, {NULL}, {NULL, NULL}, NULL, {NULL}, 0,
                              0, 0, 0, 0};
        for (int s = 1; s < n_st; s++)
            rem.ctx[s] = sc[s];
        rem.h[0] = malloc((size_t)N_BATCH * (size_t)info.n_embd * sizeof(float));
        rem.h[1] = malloc((size_t)N_BATCH * (size_t)info.n_embd * sizeof(float));
        rem.rows = malloc((size_t)MAX_ROWS * (size_t)nv * sizeof(float));
        if (ok) {
            /* misuse: a later stage takes no tail; a first stage without
             * one is not decoded as a whole model */
            CHECK(strix_context_set_tail(sc[1], &tp, &err) == STRIX_ERR_ARG);
            const strix_token t0 = 1;
            CHECK(strix_decode(sc[0], &t0, NULL, 1, NULL, &err) == STRIX_ERR_ARG);
            CHECKF(strix_context_set_tail(sc[0], &tp, &err) == STRIX_OK, "%s", err.msg);
            const int skip = 0;
            CHECK(strix_context_set_layer_skip(sc[0], &skip, 1, &err) ==
                  STRIX_ERR_UNSUPPORTED);
        }
        /* the workload on the whole model and on the chain */
        CHECK(strix_kv_seq_rm(wc, -1, 0, -1) == STRIX_OK);
        int n_diff = 0, n_rows = 0, step = 0;
        for (const struct wstep *w = work; ok && w->kind != W_END; w++, step++) {
            const int kr = apply(wc, w, nv, ref, &err);
            CHECKF(kr >= 0, "%s: whole model, step %d: %s", name, step, err.msg);
            const int kg = apply(sc[0], w, nv, got, &err);
            CHECKF(kg == kr, "%s: %d stages, step %d: %d rows, want %d (%s)", name, n_st, step,
                   kg, kr, err.msg);
            ok = kr >= 0 && kg == kr;
            for (int i = 0; ok && i < kr; i++)
                n_diff += memcmp(ref + (size_t)i * (size_t)nv, got + (size_t)i * (size_t)nv,
                                 (size_t)nv * sizeof(float)) != 0;
            n_rows += kr > 0 ? kr : 0;
            /* the stages hold what the whole model holds */
            for (int s = 0; ok && s < n_st; s++)
                for (int q = 0; q < cp.n_seq_max; q++)
                    CHECKF(strix_kv_seq_pos_max(sc[s], q) == strix_kv_seq_pos_max(wc, q),
                           "%s: stage %d, step %d: sequence %d ends at %d, want %d", name, s,
                           step, q, strix_kv_seq_pos_max(sc[s], q),
                           strix_kv_seq_pos_max(wc, q));
        }
        CHECKF(ok && n_diff == 0, "%s: %d stages: %d of %d logit rows differ", name, n_st,
               n_diff, n_rows);
        CHECK(work != workload || (rem.n_chunks > 10 && rem.n_ops >= 5));
        if (ok && work == workload) {
            /* a tail that fails: the decode and the cache call say so */
            rem.fail_chunk = rem.n_chunks + 2;
            strix_token t3[6] = {1, 2, 3, 4, 5, 6};
            CHECK(strix_decode(sc[0], t3, NULL, 6, NULL, &err) == STRIX_ERR_IO &&
                  strstr(err.msg, "on purpose") != NULL);
            CHECK(strix_get_logits(sc[0], -1) == NULL);
            rem.fail_chunk = 0;
            rem.fail_op = 1;
            CHECK(strix_kv_seq_rm(sc[0], 0, 0, -1) == STRIX_ERR_IO);
            CHECK(strix_kv_seq_truncate(sc[0], 1, 0, &err) == STRIX_ERR_IO && err.msg[0]);
            rem.fail_op = 0;
            /* removing the tail: a stage again */
            struct strix_tail_params none = strix_tail_default_params();
            CHECK(strix_context_set_tail(sc[0], &none, &err) == STRIX_OK);
            CHECK(strix_decode(sc[0], t3, NULL, 1, NULL, &err) == STRIX_ERR_ARG);
        }
        printf("%s: %d stages with a remote tail: %d logit rows bit-identical over %d chunks "
               "and %d cache calls\n",
               name, n_st, n_rows - n_diff, rem.n_chunks, rem.n_ops);
        stages_free(&st);
        free(rem.h[0]);
        free(rem.h[1]);
        free(rem.rows);
    }
    strix_context_free(wc);
    strix_model_free(whole);
    free(ref);
    free(got);
}

int main(void)
{
    check_model("stories260K-ref.gguf", workload, 0);
    check_model("stories260K-ref.gguf", tight, TIGHT_CELLS);
    /* sliding windows, recurrent states, experts, MLA */
    static const char *const archs[] = {"arch/gemma2.gguf", "arch/mamba.gguf",
                                        "arch/retnet.gguf", "arch/qwen2moe.gguf",
                                        "arch/deepseek2.gguf", "arch/phi3.gguf"};
    for (size_t i = 0; i < sizeof archs / sizeof archs[0]; i++)
        check_model(archs[i], workload, 0);
    TEST_MAIN_END();
}
