/*
 * serve.c - `mpirun -np N strix-mpi serve ...`: the HTTP server of
 * tools/serve over the pipeline. Rank 0 runs `strix serve` unchanged (HTTP,
 * tokenizing, the scheduler's continuous batching, sampling) on a context
 * over its own stage, opened through serve_open_hook (cli.h); that context
 * has a remote tail (strix_context_set_tail), so each forward pass of the
 * scheduler's batches continues on ranks 1..N-1 and the last rank sends the
 * wanted rows' logits back, and every cache change the scheduler makes
 * (prefix sharing with strix_kv_seq_cp, cancellation and eviction with
 * strix_kv_seq_rm, a batch rewriting positions) goes down the chain before
 * the next chunk. The other ranks apply them in the same order, so every
 * rank's cache holds the same cells and the logits are those of one
 * process.
 *
 * Messages (pipeline.h): OP_BATCH (header; positions, sequences and wanted
 * rows; the hidden states), OP_KV (header only), and at the end OP_END.
 * Rank 0 posts the receive of a chunk's logits before it sends the chunk,
 * and waits for them all when the library hands it the batch's last chunk,
 * so the prompt's chunks flow through the stages one behind the other.
 *
 * Schedule and bubble: a prompt (or a step's tokens) of M chunks of
 * --ubatch tokens takes (M + S - 1) chunk times on S stages. Each step of
 * the scheduler waits for its logits before sampling, so the tokens the
 * running sequences generate go through the stages in turn: generation is
 * not overlapped across stages (the gain is memory; see BENCHMARKS.md).
 *
 * Shutdown: SIGTERM or SIGINT to rank 0's process (its pid is printed at
 * start) drains the server as in one process, then rank 0 sends OP_END and
 * every rank exits. A rank 0 that dies or exits early (a bad option, a port
 * in use) ends every rank with MPI_Abort (the exit guard); a worker that
 * dies is noticed by mpirun, which ends the others.
 */
#define _POSIX_C_SOURCE 200809L
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pipeline.h"

static struct pipe *serve_pipe; /* rank 0: for the open hook */
static const char *serve_model; /* the path every rank loaded */
static int serve_ubatch;
static volatile int serving; /* rank 0 is inside cmd_serve */

/* The context parameters every rank takes from rank 0's (its n_ctx
 * resolved), broadcast once. */
enum { CP_OK, CP_N_CTX, CP_N_BATCH, CP_N_SEQ, CP_N_CELLS, CP_STATE_KEEP, CP_TYPE_K,
       CP_TYPE_V, CP_KV_GROW, CP_COUNT };

/* FNV-1a over the highest position each sequence holds: every rank's is
 * the same after the same chunk when the caches are in step (a missed
 * cache change shows here), whatever layers the rank holds. */
static int32_t cache_digest(const struct pipe *p)
{
    uint32_t h = 2166136261u;
    for (int s = 0; s < p->n_seq; s++)
        h = (h ^ (uint32_t)strix_kv_seq_pos_max(p->ctx, s)) * 16777619u;
    return (int32_t)(h & 0x7fffffff);
}

/* ---- rank 0 ---- */

static int tail_decode(void *user, const struct strix_tail_chunk *ch, strix_error *err)
{
    struct pipe *p = user;
    (void)err; /* a failure ends every rank (fatal) */
    const int n = ch->n;
    if (n > p->n_batch)
        fatal(p, "a chunk of %d tokens, more than the %d of --ubatch", n, p->n_batch);
    struct pending *pd = p->tail_pd;
    if (ch->n_logits > 0) {
        if (pd->n >= PENDING_MAX)
            fatal(p, "more than %d chunks of logits in flight", PENDING_MAX);
        if (MPI_Irecv(ch->logits, ch->n_logits * p->n_vocab, MPI_FLOAT, p->size - 1, TAG_RES,
                      MPI_COMM_WORLD, &pd->req[pd->n++]) != MPI_SUCCESS)
            fatal(p, "receive from rank %d failed", p->size - 1);
    }
    const struct hdr h = {OP_BATCH, n, cache_digest(p), 0, 0, ch->n_logits};
    for (int i = 0; i < n; i++) {
        p->meta[i] = ch->pos[i];
        p->meta[n + i] = ch->seq[i];
        p->meta[2 * n + i] = ch->want[i];
    }
    send_buf(p, &h, HDR_INTS, MPI_INT32_T, 4, 1, TAG_HDR);
    send_buf(p, p->meta, 3 * n, MPI_INT32_T, 4, 1, TAG_META);
    send_buf(p, ch->hidden, n * p->n_embd, MPI_FLOAT, 4, 1, TAG_HID);
    p->n_decodes++;
    if (ch->last)
        pipe_wait(p, pd);
    return STRIX_OK;
}

static int tail_cache_op(void *user, const struct strix_cache_op *op, strix_error *err)
{
    struct pipe *p = user;
    (void)err;
    const struct hdr h = {OP_KV, op->kind, op->p0, op->seq, op->dst, op->p1};
    send_buf(p, &h, HDR_INTS, MPI_INT32_T, 4, 1, TAG_HDR);
    return STRIX_OK;
}

/* serve_open_hook: the context over rank 0's stage, with the server's
 * parameters (but forward passes of --ubatch tokens), and the same on the
 * other ranks. */
static int serve_open(const char *path, struct strix_context_params *cp, strix_model **model,
                      strix_context **ctx, strix_error *err)
{
    struct pipe *p = serve_pipe;
    if (strcmp(path, serve_model) != 0)
        fatal(p, "the server opens %s, the ranks loaded %s", path, serve_model);
    cp->n_batch = serve_ubatch;
    const int rc = strix_context_create(p->m, cp, &p->ctx, err);
    int par[CP_COUNT] = {0};
    if (rc == STRIX_OK) {
        par[CP_OK] = 1;
        par[CP_N_CTX] = strix_context_n_ctx(p->ctx);
        par[CP_N_BATCH] = cp->n_batch;
        par[CP_N_SEQ] = strix_context_n_seq_max(p->ctx);
        par[CP_N_CELLS] = strix_kv_cells(p->ctx);
        par[CP_STATE_KEEP] = cp->n_state_keep;
        par[CP_TYPE_K] = cp->type_k;
        par[CP_TYPE_V] = cp->type_v;
        par[CP_KV_GROW] = cp->kv_grow;
    }
    MPI_Bcast(par, CP_COUNT, MPI_INT, 0, MPI_COMM_WORLD);
    if (rc)
        fatal(p, "%s", err->msg);
    int ok = 1, all = 0;
    p->n_batch = serve_ubatch;
    p->n_seq = par[CP_N_SEQ];
    p->tail_pd = calloc(1, sizeof *p->tail_pd);
    ok = pipe_buffers(p) && p->tail_pd;
    if (!ok)
        fprintf(stderr, "strix-mpi: rank 0: out of memory\n");
    MPI_Allreduce(&ok, &all, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD);
    if (!all)
        fatal(p, "a rank could not create its context (its message is above)");
    if (p->size > 1) {
        struct strix_tail_params tp = strix_tail_default_params();
        tp.decode = tail_decode;
        tp.cache_op = tail_cache_op;
        tp.user = p;
        if (strix_context_set_tail(p->ctx, &tp, err))
            fatal(p, "%s", err->msg);
    }
    *model = p->m;
    *ctx = p->ctx;
    return STRIX_OK;
}

/* An exit while the server runs (die() on a bad option or a port in use):
 * the other ranks would wait for rank 0 for ever, so end them all. */
static void exit_guard(void)
{
    if (!serving)
        return;
    fprintf(stderr, "strix-mpi: rank 0's server ended early: ending every rank\n");
    fflush(stderr);
    MPI_Abort(MPI_COMM_WORLD, 1);
}

void serve_rank0(struct pipe *p, int argc, char **argv, int ubatch, const int *cut)
{
    int *pids = malloc((size_t)p->size * sizeof *pids);
    const int me = (int)getpid();
    MPI_Gather(&me, 1, MPI_INT, pids, 1, MPI_INT, 0, MPI_COMM_WORLD);
    if (!pids)
        fatal(p, "out of memory");
    fprintf(stderr, "strix-mpi serve: %d ranks; rank 0 (pid %d) serves HTTP and holds layers "
                    "[%d, %d)",
            p->size, pids[0], cut[0], cut[1]);
    for (int r = 1; r < p->size; r++)
        fprintf(stderr, "; rank %d (pid %d) layers [%d, %d)", r, pids[r], cut[r], cut[r + 1]);
    fprintf(stderr, "\nstrix-mpi serve: SIGTERM or SIGINT to pid %d drains and ends every "
                    "rank\n",
            pids[0]);
    free(pids);
    for (int i = 0; i < argc; i++)
        if (strcmp(argv[i], "-m") == 0 || strcmp(argv[i], "--model") == 0)
            serve_model = i + 1 < argc ? argv[i + 1] : "";
    if (!serve_model)
        serve_model = default_model();
    serve_pipe = p;
    serve_ubatch = ubatch;
    serve_open_hook = serve_open;
    atexit(exit_guard);
    serving = 1;
    cmd_serve(argc, argv);
    serving = 0;
    p->ctx = NULL; /* the server freed them */
    p->m = NULL;
}

/* ---- ranks 1..N-1 ---- */

void serve_worker_setup(struct pipe *p, int n_threads)
{
    const int me = (int)getpid();
    MPI_Gather(&me, 1, MPI_INT, NULL, 1, MPI_INT, 0, MPI_COMM_WORLD);
    int par[CP_COUNT];
    MPI_Bcast(par, CP_COUNT, MPI_INT, 0, MPI_COMM_WORLD);
    if (!par[CP_OK])
        return; /* rank 0 says why and ends every rank */
    struct strix_context_params cp = strix_context_default_params();
    cp.n_ctx = par[CP_N_CTX];
    cp.n_batch = par[CP_N_BATCH];
    cp.n_seq_max = par[CP_N_SEQ];
    cp.n_cells = par[CP_N_CELLS];
    cp.n_state_keep = par[CP_STATE_KEEP];
    cp.type_k = par[CP_TYPE_K];
    cp.type_v = par[CP_TYPE_V];
    cp.kv_grow = par[CP_KV_GROW];
    cp.n_threads = n_threads;
    strix_error err;
    int ok = strix_context_create(p->m, &cp, &p->ctx, &err) == STRIX_OK, all = 0;
    if (!ok)
        fprintf(stderr, "strix-mpi: rank %d: %s\n", p->rank, err.msg);
    p->n_batch = cp.n_batch;
    p->n_seq = cp.n_seq_max;
    if (ok) {
        ok = pipe_buffers(p);
        if (ok && p->last)
            ok = (p->rows = malloc((size_t)p->n_batch * (size_t)p->n_vocab * sizeof(float))) !=
                 NULL;
        if (!ok)
            fprintf(stderr, "strix-mpi: rank %d: out of memory\n", p->rank);
    }
    MPI_Allreduce(&ok, &all, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD);
    /* (not all: rank 0 ends every rank) */
}

void serve_worker_batch(struct pipe *p, const struct hdr *h)
{
    const int n = h->n, n_logits = h->w1;
    if (n < 1 || n > p->n_batch || n_logits < 0 || n_logits > n)
        fatal(p, "bad chunk of %d tokens with %d rows of logits", n, n_logits);
    recv_buf(p, p->meta, 3 * n, MPI_INT32_T, p->rank - 1, TAG_META);
    int k = 0;
    for (int i = 0; i < n; i++) {
        p->pos[i] = p->meta[i];
        p->seq[i] = p->meta[n + i];
        p->want[i] = p->meta[2 * n + i] != 0;
        k += p->want[i];
        if (p->seq[i] < 0 || p->seq[i] >= p->n_seq)
            fatal(p, "bad chunk: sequence %d of %d", p->seq[i], p->n_seq);
    }
    if (k != n_logits)
        fatal(p, "bad chunk: %d rows of logits wanted, %d flagged", n_logits, k);
    recv_buf(p, p->in, n * p->n_embd, MPI_FLOAT, p->rank - 1, TAG_HID);
    const strix_batch b = {n, NULL, p->pos, p->seq, p->want};
    strix_error err;
    const double t0 = MPI_Wtime();
    if (strix_decode_hidden(p->ctx, &b, p->in, p->last ? NULL : p->out, &err))
        fatal(p, "decode of %d tokens: %s", n, err.msg);
    p->t_compute += MPI_Wtime() - t0;
    p->n_decodes++;
    if (cache_digest(p) != h->pos0)
        fatal(p, "after a chunk of %d tokens this rank's cache is out of step with rank 0's "
                 "(a cache change was lost)", n);
    if (p->fault_rank == p->rank) {
        fprintf(stderr, "strix-mpi: rank %d: exiting on purpose (STRIX_MPI_FAULT)\n", p->rank);
        _exit(3);
    }
    if (!p->last) {
        send_buf(p, h, HDR_INTS, MPI_INT32_T, 4, p->rank + 1, TAG_HDR);
        send_buf(p, p->meta, 3 * n, MPI_INT32_T, 4, p->rank + 1, TAG_META);
        send_buf(p, p->out, n * p->n_embd, MPI_FLOAT, 4, p->rank + 1, TAG_HID);
        return;
    }
    if (n_logits == 0)
        return;
    k = 0;
    for (int i = 0; i < n; i++)
        if (p->want[i])
            memcpy(p->rows + (size_t)k++ * (size_t)p->n_vocab, strix_get_logits(p->ctx, i),
                   (size_t)p->n_vocab * sizeof(float));
    send_buf(p, p->rows, n_logits * p->n_vocab, MPI_FLOAT, 4, 0, TAG_RES);
}

void serve_worker_kv(struct pipe *p, const struct hdr *h)
{
    int rc = STRIX_ERR_ARG;
    if (h->n == STRIX_CACHE_OP_RM)
        rc = strix_kv_seq_rm(p->ctx, h->seq, h->pos0, h->w1);
    else if (h->n == STRIX_CACHE_OP_CP)
        rc = strix_kv_seq_cp(p->ctx, h->seq, h->w0, h->pos0, h->w1);
    else if (h->n == STRIX_CACHE_OP_KEEP)
        rc = strix_kv_seq_keep(p->ctx, h->seq);
    if (rc != STRIX_OK)
        fatal(p, "cache change %d of sequence %d (positions %d..%d) failed here (%s) after "
                 "rank 0 made it: the ranks' caches would differ",
              h->n, h->seq, h->pos0, h->w1, strix_status_name(rc));
    if (!p->last)
        send_buf(p, h, HDR_INTS, MPI_INT32_T, 4, p->rank + 1, TAG_HDR);
}
