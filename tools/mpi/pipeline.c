/*
 * pipeline.c - pipeline-parallel inference over MPI (the strix-mpi build):
 * `mpirun -np N strix-mpi run ...`. Each rank loads one stage of the
 * model, a range of consecutive blocks (strix_model_params.layer_first/end),
 * and holds only those blocks' weights and KV cache; rank 0 holds the first
 * blocks and the embeddings, the last rank the last blocks and the output
 * projection. Rank 0 tokenizes, samples and prints; the residual stream
 * (n_embd floats per token) flows rank to rank with MPI, the last rank
 * sends rank 0 the logits it samples from.
 *
 * Messages, along the chain r -> r + 1: a header (struct hdr: decode a chunk
 * of n tokens at positions pos0.., clear the cache, or end), then for a
 * decode the chunk's hidden states (n x n_embd floats). The last rank answers rank 0 directly (TAG_RES); rank 0
 * posts those receives before it sends the chunks, so no send waits on a
 * receive that comes later (no deadlock however long the prompt).
 *
 * Schedule: a prompt is cut into micro-batches of --ubatch tokens (the
 * contexts' n_batch). Rank 0 computes micro-batch k and sends it on, then
 * computes k + 1 while rank 1 computes k, and so on: with S stages and M
 * micro-batches of time t per stage the prompt takes (M + S - 1) t instead
 * of M S t, a bubble of (S - 1) t at the start and end. Generating one
 * sequence token by token has no such overlap (each token needs the one
 * before): the stages take turns and the gain is memory, not speed.
 *
 * Errors: every rank checks the model file's fingerprint (size and sampled
 * bytes) against rank 0's before loading, the split is refused when there
 * are more ranks than layers, and a load failure on any rank is reported
 * and ends every rank cleanly. A fatal error later calls MPI_Abort, and a
 * rank that dies is noticed by mpirun, which ends the others: never a hang.
 * STRIX_MPI_FAULT=R makes rank R exit abruptly after its first decode (for
 * the test of that).
 */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <mpi.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "pipeline.h"

void fatal(const struct pipe *p, const char *fmt, ...)
{
    char msg[768];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    fprintf(stderr, "strix-mpi: rank %d: %s\n", p ? p->rank : -1, msg);
    fflush(stderr);
    MPI_Abort(MPI_COMM_WORLD, 1);
    exit(1);
}

const char *mpi_support(void)
{
    static char buf[MPI_MAX_LIBRARY_VERSION_STRING + 64];
    char lib[MPI_MAX_LIBRARY_VERSION_STRING];
    int len = 0;
    MPI_Get_library_version(lib, &len);
    char *nl = strchr(lib, '\n');
    if (nl)
        *nl = '\0';
    char *comma = strchr(lib, ',');
    if (comma)
        *comma = '\0';
    snprintf(buf, sizeof buf, "compiled in (%s): mpirun -np N strix-mpi run|ppl|bench|serve",
             lib);
    return buf;
}

/* ---- setup ---- */

/* FNV-1a over the file's size, its first MiB and 16 samples of 4 KiB spread
 * over the rest: two files that differ in their header (shapes, types,
 * metadata) or in sampled weights differ here. 0 if unreadable. */
static uint64_t fingerprint(const char *path, char *why, size_t cap)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(why, cap, "cannot open %s", path);
        return 0;
    }
    uint64_t h = 1469598103934665603ULL;
    unsigned char *buf = malloc(1 << 20);
    long long size = -1;
    if (buf && fseeko(f, 0, SEEK_END) == 0)
        size = (long long)ftello(f);
    if (size < 0) {
        snprintf(why, cap, "cannot read %s", path);
        free(buf);
        fclose(f);
        return 0;
    }
    for (int i = 0; i < 8; i++)
        h = (h ^ (uint64_t)(((unsigned long long)size >> (8 * i)) & 255)) * 1099511628211ULL;
    for (int k = -1; k < 16; k++) {
        const long long at = k < 0 ? 0 : size / 17 * (k + 1);
        const size_t want = k < 0 ? (size_t)1 << 20 : 4096;
        if (fseeko(f, (off_t)at, SEEK_SET) != 0)
            break;
        const size_t got = fread(buf, 1, want, f);
        for (size_t i = 0; i < got; i++)
            h = (h ^ buf[i]) * 1099511628211ULL;
    }
    free(buf);
    fclose(f);
    return h ? h : 1;
}

/* Bytes of each block's weights (blk.N.*) into per[0..n_layer), and of the
 * weights outside blocks into *head (embeddings) and *tail (output). */
static void layer_bytes(const strix_model *m, int n_layer, double *per, double *head, double *tail)
{
    *head = *tail = 0;
    for (int l = 0; l < n_layer; l++)
        per[l] = 0;
    for (int i = 0; i < strix_model_n_tensors(m); i++) {
        struct strix_tensor_info t = {.struct_size = sizeof t};
        strix_model_tensor_info(m, i, &t);
        int l;
        if (sscanf(t.name, "blk.%d.", &l) == 1 && l >= 0 && l < n_layer)
            per[l] += (double)t.nbytes;
        else if (strncmp(t.name, "output", 6) == 0)
            *tail += (double)t.nbytes;
        else
            *head += (double)t.nbytes;
    }
}

/* cut[0..size]: stage r runs blocks [cut[r], cut[r + 1]). By hand (split:
 * "10,12" layers per rank) or balancing the bytes each rank holds. Returns
 * 0 or writes a reason. */
static int make_split(const strix_model *m, int size, const char *split, int *cut, char *why,
                      size_t cap)
{
    struct strix_model_info in = {.struct_size = sizeof in};
    strix_model_get_info(m, &in);
    const int L = in.n_layer;
    if (size > L) {
        snprintf(why, cap, "%d ranks for a model of %d layers: each rank needs a layer (at most "
                           "%d ranks)", size, L, L);
        return 1;
    }
    cut[0] = 0;
    if (split) {
        const char *s = split;
        for (int r = 0; r < size; r++) {
            char *end;
            long v = strtol(s, &end, 10);
            if (end == s || v < 1 || v > L || (r < size - 1 ? *end != ',' : *end != '\0')) {
                snprintf(why, cap, "--split %s: expected %d positive layer counts separated by "
                                   "commas, one per rank", split, size);
                return 1;
            }
            cut[r + 1] = cut[r] + (int)v;
            s = end + 1;
        }
        if (cut[size] != L) {
            snprintf(why, cap, "--split %s adds up to %d layers; the model has %d", split,
                     cut[size], L);
            return 1;
        }
        return 0;
    }
    double *per = malloc((size_t)L * sizeof *per), head, tail;
    if (!per) {
        snprintf(why, cap, "out of memory");
        return 1;
    }
    layer_bytes(m, L, per, &head, &tail);
    double total = head + tail, cum = head;
    for (int l = 0; l < L; l++)
        total += per[l];
    /* cut k where the bytes before it come closest to k / size of the total */
    int l = 0;
    for (int k = 1; k < size; k++) {
        const double goal = total * k / size;
        l = cut[k - 1] + 1;
        cum += per[l - 1];
        while (l < L - (size - k) && fabs(cum + per[l] - goal) < fabs(cum - goal))
            cum += per[l++];
        cut[k] = l;
    }
    cut[size] = L;
    free(per);
    return 0;
}

/* ---- messages ---- */

/* Waits for a request without holding a core: MPI's own blocking calls
 * poll (Open MPI spins), which on shared cores takes the time of the rank
 * that computes. A short spin, then MPI_Test between sleeps of 20 us (the
 * added latency is at most one sleep); after 100 ms of waiting (an idle
 * server, or a stage far slower than this one) sleeps of 500 us, which add
 * at most 0.5% to such a wait. A rank that dies ends the job (mpirun), so
 * the wait always ends. */
void wait_req(struct pipe *p, MPI_Request *req, const char *what)
{
    const double t0 = MPI_Wtime();
    int slow = 0;
    for (int i = 0;; i++) {
        int done = 0;
        if (MPI_Test(req, &done, MPI_STATUS_IGNORE) != MPI_SUCCESS)
            fatal(p, "%s failed", what);
        if (done)
            break;
        if (i < 32)
            continue;
        if (!slow && (i & 63) == 0 && MPI_Wtime() - t0 > 0.1)
            slow = 1;
        const struct timespec ts = {0, slow ? 500000 : 20000};
        nanosleep(&ts, NULL);
    }
    p->t_wait += MPI_Wtime() - t0;
}

void send_buf(struct pipe *p, const void *buf, int count, MPI_Datatype t, int size,
                     int to, int tag)
{
    MPI_Request req;
    if (MPI_Isend(buf, count, t, to, tag, MPI_COMM_WORLD, &req) != MPI_SUCCESS)
        fatal(p, "send to rank %d failed", to);
    wait_req(p, &req, "a send");
    p->n_msgs++;
    p->bytes += (double)count * size;
}

void recv_buf(struct pipe *p, void *buf, int count, MPI_Datatype t, int from, int tag)
{
    MPI_Request req;
    if (MPI_Irecv(buf, count, t, from, tag, MPI_COMM_WORLD, &req) != MPI_SUCCESS)
        fatal(p, "receive from rank %d failed", from);
    wait_req(p, &req, "a receive");
}

/* Runs this rank's stage on a chunk whose hidden states (or, on rank 0,
 * tokens) are in place, and passes it on; the last rank sends rank 0 the
 * logits of rows [w0, w1), one message per row (or, being rank 0, copies
 * them to p->dest). */
static void stage_decode(struct pipe *p, const struct hdr *h, const strix_token *tokens)
{
    for (int i = 0; i < h->n; i++) {
        p->pos[i] = h->pos0 + i;
        p->seq[i] = h->seq;
        p->want[i] = i >= h->w0 && i < h->w1;
    }
    const strix_batch b = {h->n, tokens, p->pos, p->seq, p->want};
    strix_error err;
    const double t0 = MPI_Wtime();
    if (strix_decode_hidden(p->ctx, &b, p->first ? NULL : p->in, p->last ? NULL : p->out, &err))
        fatal(p, "decode of %d tokens at position %d: %s", h->n, h->pos0, err.msg);
    p->n_decodes++;
    if (h->n == 1) {
        p->t_compute1 += MPI_Wtime() - t0;
        p->n_decodes1++;
    }
    if (p->fault_rank == p->rank) {
        fprintf(stderr, "strix-mpi: rank %d: exiting on purpose (STRIX_MPI_FAULT)\n", p->rank);
        _exit(3);
    }
    p->t_compute += MPI_Wtime() - t0;
    if (!p->last) {
        send_buf(p, h, HDR_INTS, MPI_INT32_T, 4, p->rank + 1, TAG_HDR);
        send_buf(p, p->out, h->n * p->n_embd, MPI_FLOAT, 4, p->rank + 1, TAG_HID);
        return;
    }
    for (int i = h->w0; i < h->w1; i++) {
        const float *l = strix_get_logits(p->ctx, i);
        if (p->rank == 0)
            memcpy(p->dest + (size_t)(i - h->w0) * (size_t)p->n_vocab, l,
                   (size_t)p->n_vocab * sizeof(float));
        else
            send_buf(p, l, p->n_vocab, MPI_FLOAT, 4, 0, TAG_RES);
    }
}

int pipe_buffers(struct pipe *p)
{
    const size_t nb = (size_t)p->n_batch;
    p->in = malloc(nb * (size_t)p->n_embd * sizeof(float));
    p->out = malloc(nb * (size_t)p->n_embd * sizeof(float));
    p->logits = malloc((size_t)p->n_vocab * sizeof(float));
    p->pos = malloc(nb * sizeof(int32_t));
    p->seq = malloc(nb * sizeof(int32_t));
    p->want = malloc(nb);
    p->meta = malloc(3 * nb * sizeof(int32_t));
    return p->in && p->out && p->logits && p->pos && p->seq && p->want && p->meta;
}

/* Ranks 1..size-1: follow the headers until the end. */
static void worker(struct pipe *p)
{
    for (;;) {
        struct hdr h;
        recv_buf(p, &h, HDR_INTS, MPI_INT32_T, p->rank - 1, TAG_HDR);
        if (h.op == OP_DECODE) {
            if (h.n < 1 || h.n > p->n_batch || h.w0 < 0 || h.w1 < h.w0 || h.w1 > h.n ||
                h.seq < 0 || h.seq >= p->n_seq)
                fatal(p, "bad chunk of %d tokens (rows %d..%d, sequence %d)", h.n, h.w0, h.w1,
                      h.seq);
            recv_buf(p, p->in, h.n * p->n_embd, MPI_FLOAT, p->rank - 1, TAG_HID);
            stage_decode(p, &h, NULL);
            continue;
        }
        if (h.op == OP_BATCH) {
            serve_worker_batch(p, &h);
            continue;
        }
        if (h.op == OP_KV) {
            serve_worker_kv(p, &h);
            continue;
        }
        if (h.op == OP_CLEAR)
            strix_kv_seq_rm(p->ctx, h.seq, 0, -1);
        if (!p->last)
            send_buf(p, &h, HDR_INTS, MPI_INT32_T, 4, p->rank + 1, TAG_HDR);
        if (h.op == OP_END)
            return;
    }
}

void pipe_decode_start(struct pipe *p, const strix_token *tokens, int n, int pos0, int seq,
                       const int8_t *want, float *logits, struct pending *pd)
{
    for (int off = 0; off < n; off += p->n_batch) {
        const int cn = n - off < p->n_batch ? n - off : p->n_batch;
        struct hdr h = {OP_DECODE, cn, pos0 + off, seq, 0, 0};
        if (!want) { /* the last token's */
            h.w0 = off + cn == n ? cn - 1 : cn;
            h.w1 = cn;
        } else {
            int a = cn, b = 0;
            for (int i = 0; i < cn; i++)
                if (want[off + i]) {
                    a = i < a ? i : a;
                    b = i + 1;
                }
            for (int i = a; i < b; i++)
                if (!want[off + i])
                    fatal(p, "the rows wanted from a chunk must be consecutive");
            h.w0 = a < b ? a : 0;
            h.w1 = a < b ? b : 0;
        }
        for (int i = h.w0; i < h.w1 && !p->last; i++) {
            if (pd->n >= PENDING_MAX)
                fatal(p, "more than %d rows of logits in flight", PENDING_MAX);
            if (MPI_Irecv(logits, p->n_vocab, MPI_FLOAT, p->size - 1, TAG_RES, MPI_COMM_WORLD,
                          &pd->req[pd->n++]) != MPI_SUCCESS)
                fatal(p, "receive from rank %d failed", p->size - 1);
            logits += p->n_vocab;
        }
        p->dest = logits; /* one rank: stage_decode writes the rows here */
        stage_decode(p, &h, tokens + off);
        if (p->last)
            logits += (size_t)(h.w1 - h.w0) * (size_t)p->n_vocab;
    }
}

void pipe_wait(struct pipe *p, struct pending *pd)
{
    for (int i = 0; i < pd->n; i++)
        wait_req(p, &pd->req[i], "receiving the logits");
    pd->n = 0;
}

void chain_decode(struct pipe *p, const strix_token *tokens, int n, int pos0, int seq,
                  const int8_t *want, float *logits)
{
    struct pending pd = {0};
    pipe_decode_start(p, tokens, n, pos0, seq, want, logits, &pd);
    pipe_wait(p, &pd);
}

void chain_op(struct pipe *p, int op, int seq)
{
    const struct hdr h = {op, 0, 0, seq, 0, 0};
    if (op == OP_CLEAR)
        strix_kv_seq_rm(p->ctx, seq, 0, -1);
    if (!p->last)
        send_buf(p, &h, HDR_INTS, MPI_INT32_T, 4, 1, TAG_HDR);
}

static long rss_kib(const char *key)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long v = -1;
    const size_t kl = strlen(key);
    while (f && fgets(line, sizeof line, f))
        if (strncmp(line, key, kl) == 0)
            v = atol(line + kl + 1);
    if (f)
        fclose(f);
    return v;
}

/* Takes --split S, --ubatch N, --dump-logits F, --stats, and for bench
 * --seqs G, -p N and -r N out of argv (the other options are the
 * command's). */
struct mpi_opts {
    const char *split, *dump;
    int ubatch, stats;
    int seqs, n_pp, reps;
};

static int take_opts(int argc, char **argv, struct mpi_opts *mo, int bench)
{
    int k = 0;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        const int val = i + 1 < argc;
        if (strcmp(a, "--split") == 0 && val) {
            mo->split = argv[++i];
        } else if (strcmp(a, "--ubatch") == 0 && val) {
            mo->ubatch = (int)parse_long("--ubatch", argv[++i], 1, 4096);
        } else if (strcmp(a, "--dump-logits") == 0 && val) {
            mo->dump = argv[++i];
        } else if (strcmp(a, "--stats") == 0) {
            mo->stats = 1;
        } else if (bench && strcmp(a, "--seqs") == 0 && val) {
            mo->seqs = (int)parse_long("--seqs", argv[++i], 1, 64);
        } else if (bench && strcmp(a, "-p") == 0 && val) {
            mo->n_pp = (int)parse_long("-p", argv[++i], 1, 1 << 20);
        } else if (bench && strcmp(a, "-r") == 0 && val) {
            mo->reps = (int)parse_long("-r", argv[++i], 1, 1000);
        } else {
            argv[k++] = argv[i];
        }
    }
    argv[k] = NULL;
    return k;
}

/* 0 on every rank if ok is 1 on every rank; rank 0 then goes on. */
static int all_ok(int ok)
{
    int all = 0;
    MPI_Allreduce(&ok, &all, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD);
    return all;
}

static void print_stats(struct pipe *p, const int *cut)
{
    const double mine[8] = {p->t_compute, p->t_wait, (double)p->n_msgs, p->bytes,
                            (double)rss_kib("VmHWM"), (double)p->n_decodes, p->stage_bytes,
                            p->n_decodes1 ? p->t_compute1 / (double)p->n_decodes1 : 0};
    double *all = p->rank == 0 ? malloc((size_t)p->size * sizeof mine) : NULL;
    MPI_Gather(mine, 8, MPI_DOUBLE, all, 8, MPI_DOUBLE, 0, MPI_COMM_WORLD);
    if (p->rank != 0)
        return;
    fprintf(stderr, "rank  layers    weights MiB  peak RSS MiB  decodes  compute s  wait s  "
                    "messages  sent MiB\n");
    double sum1 = 0;
    for (int r = 0; r < p->size; r++) {
        const double *a = all + 8 * r;
        sum1 += a[7];
        fprintf(stderr, "%4d  [%2d,%2d)  %11.1f  %12.1f  %7.0f  %9.3f  %6.3f  %8.0f  %8.2f\n", r,
                cut[r], cut[r + 1], a[6] / 1048576.0, a[4] / 1024.0, a[5], a[0], a[1], a[2],
                a[3] / 1048576.0);
    }
    if (p->n_chain1 > 0) {
        const double wall = p->t_chain1 / (double)p->n_chain1;
        fprintf(stderr, "per generated token: %.3f ms wall, %.3f ms compute (all ranks), "
                        "%.3f ms pipeline overhead\n",
                wall * 1e3, sum1 * 1e3, (wall - sum1) * 1e3);
    }
    free(all);
}

/* `strix-mpi mpi-pingpong`: one-way time of the messages a pipeline sends
 * (a header, a token's hidden state of n_embd 2048 and 8192 floats, one
 * token's logits of 32000 floats) between rank 0 and the last rank, the
 * median of 200 round trips each, for the throughput model in
 * BENCHMARKS.md. */
static int cmp_double(const void *a, const void *b)
{
    const double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static void pingpong(void)
{
    int rank, size;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    const int peer = rank == 0 ? size - 1 : 0;
    static const int sizes[] = {16, 8192, 32768, 131072, 524288};
    enum { N_ROUNDS = 200 };
    char *buf = calloc(1, 524288);
    double t[N_ROUNDS];
    if (size < 2 || !buf) {
        if (rank == 0)
            fprintf(stderr, "strix-mpi: mpi-pingpong needs 2 ranks or more\n");
        free(buf);
        return;
    }
    if (rank == 0)
        printf("bytes  one-way us (median of %d round trips, rank 0 <-> rank %d)\n", N_ROUNDS,
               peer);
    for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
        for (int i = 0; i < N_ROUNDS; i++) {
            const double t0 = MPI_Wtime();
            if (rank == 0) {
                MPI_Send(buf, sizes[k], MPI_BYTE, peer, 9, MPI_COMM_WORLD);
                MPI_Recv(buf, sizes[k], MPI_BYTE, peer, 9, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
            } else if (rank == size - 1) {
                MPI_Recv(buf, sizes[k], MPI_BYTE, 0, 9, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
                MPI_Send(buf, sizes[k], MPI_BYTE, 0, 9, MPI_COMM_WORLD);
            }
            t[i] = (MPI_Wtime() - t0) / 2;
        }
        qsort(t, N_ROUNDS, sizeof t[0], cmp_double);
        if (rank == 0)
            printf("%6d  %.1f\n", sizes[k], t[N_ROUNDS / 2] * 1e6);
    }
    free(buf);
}

int mpi_main(int argc, char **argv, int *rc)
{
    if (argc >= 2 && strcmp(argv[1], "mpi-pingpong") == 0) {
        MPI_Init(&argc, &argv);
        pingpong();
        MPI_Finalize();
        *rc = 0;
        return 1;
    }
    const char *cmd = argc >= 2 ? argv[1] : "";
    const int is_run = strcmp(cmd, "run") == 0, is_ppl = strcmp(cmd, "ppl") == 0,
              is_bench = strcmp(cmd, "bench") == 0, is_serve = strcmp(cmd, "serve") == 0;
    if (!is_run && !is_ppl && !is_bench && !is_serve)
        return 0; /* every other command runs in one process, without MPI */
    struct mpi_opts mo = {NULL, NULL, 32, 0, 1, 128, 3};
    argc = take_opts(argc, argv, &mo, is_bench);
    for (int i = 2; i < argc; i++)
        if (is_help(argv[i]))
            printf("strix-mpi: under mpirun, each rank runs a range of the layers:\n"
                   "  --split N,N,...      layers per rank (default: balance the weight bytes)\n"
                   "  --ubatch N           tokens per micro-batch of a prompt or window (32)\n"
                   "  --stats              each rank's layers, memory, time and messages\n"
                   "  run:   --dump-logits FILE   the logits of every sampled step (float32)\n"
                   "         (not --stop, --beams, --draft, --n-probs)\n"
                   "  ppl:   as strix ppl (-f, -c, --stride, --kl-save, --kl-base)\n"
                   "  bench: -p N (prompt, 128) -n N (generated, 32) -r N (repetitions, 3)\n"
                   "         --seqs G (sequences in flight at once, 1) --json\n"
                   "  serve: as strix serve; rank 0 serves HTTP. SIGTERM or SIGINT to rank 0's\n"
                   "         process (its pid is printed) drains, then ends every rank\n");
    struct opts o;
    if (is_serve) {
        for (int i = 2; i < argc; i++)
            if (is_help(argv[i]))
                return 0; /* strix serve's own usage, in one process */
        /* the model and the workers' threads; rank 0's server parses the rest */
        memset(&o, 0, sizeof o);
        for (int i = 2; i + 1 < argc; i++) {
            if (strcmp(argv[i], "-m") == 0 || strcmp(argv[i], "--model") == 0)
                o.model = argv[i + 1];
            else if (strcmp(argv[i], "-t") == 0 || strcmp(argv[i], "--threads") == 0)
                o.n_threads = (int)parse_long(argv[i], argv[i + 1], 0, 1024);
        }
        if (!o.model)
            o.model = default_model();
    } else if (is_run)
        parse_opts(argc, argv, &o,
                   " m vocab p f n t c temp top-k top-p min-p rp rln seed no-stop-bos freq pres "
                   "typical mirostat mirostat-lr mirostat-ent samplers logit-bias parse-special"
                   CACHE_OPTS);
    else if (is_ppl)
        parse_opts(argc, argv, &o, " m vocab f c t stride kl-save kl-base" CACHE_OPTS);
    else
        parse_opts(argc, argv, &o, " m vocab n t c json" CACHE_OPTS);
    if (is_run && o.prompt && o.file)
        die("run takes -p TEXT or -f FILE, not both");
    if (is_ppl) {
        if (!o.file && !o.kl_base)
            die("ppl needs -f TEXT (or --kl-base FILE, whose tokens are used)");
        if (o.kl_save && o.kl_base)
            die("--kl-save and --kl-base do not go together");
        if (o.kl_base && (opt_given(&o, "c") || opt_given(&o, "stride")))
            die("-c and --stride come from the KL base file with --kl-base; drop them");
        refuse_overwrite(o.kl_save, (const char *const[]){o.model, o.vocab, o.file}, 3);
        o.n_ctx = ppl_window(o.kl_base, o.n_ctx ? o.n_ctx : 512);
    }
    if (is_bench && !opt_given(&o, "n"))
        o.n_predict = 32;
    if (is_bench && !o.n_ctx)
        o.n_ctx = mo.n_pp + o.n_predict;
    if (is_serve) {
        /* rank 0's server takes SIGINT and SIGTERM with sigwait: blocked in
         * every thread, MPI's included; the workers end when rank 0 says */
        sigset_t sigs;
        sigemptyset(&sigs);
        sigaddset(&sigs, SIGINT);
        sigaddset(&sigs, SIGTERM);
        pthread_sigmask(SIG_BLOCK, &sigs, NULL);
        /* the server's scheduler thread sends and receives (one thread at a
         * time: the main thread only before and after it runs) */
        int provided = MPI_THREAD_SINGLE;
        MPI_Init_thread(&argc, &argv, MPI_THREAD_SERIALIZED, &provided);
        if (provided < MPI_THREAD_SERIALIZED)
            fatal(NULL, "serve needs an MPI library with MPI_THREAD_SERIALIZED support");
    } else {
        MPI_Init(&argc, &argv);
    }
    struct pipe p = {0};
    MPI_Comm_rank(MPI_COMM_WORLD, &p.rank);
    MPI_Comm_size(MPI_COMM_WORLD, &p.size);
    p.first = p.rank == 0;
    p.last = p.rank == p.size - 1;
    const char *fault = getenv("STRIX_MPI_FAULT");
    p.fault_rank = fault && *fault ? atoi(fault) : -1;
    char why[512] = "";
    *rc = 1;

    /* the same file everywhere */
    uint64_t fp = fingerprint(o.model, why, sizeof why);
    if (fp && o.vocab) { /* a llama2.c checkpoint's tokenizer file too */
        const uint64_t fv = fingerprint(o.vocab, why, sizeof why);
        fp = fv ? (fp ^ (fv * 1099511628211ULL)) | 1 : 0;
    }
    uint64_t *fps = malloc((size_t)p.size * sizeof *fps);
    MPI_Allgather(&fp, 1, MPI_UINT64_T, fps, 1, MPI_UINT64_T, MPI_COMM_WORLD);
    int ok = fp != 0;
    for (int r = 1; r < p.size; r++)
        if (fps[r] != fps[0]) {
            if (p.rank == 0)
                fprintf(stderr, "strix-mpi: rank %d's model file differs from rank 0's %s "
                                "(fingerprint %016llx, rank 0 %016llx): every rank needs the "
                                "same file\n",
                        r, o.model, (unsigned long long)fps[r], (unsigned long long)fps[0]);
            ok = 0;
        }
    free(fps);
    if (fp == 0)
        fprintf(stderr, "strix-mpi: rank %d: %s\n", p.rank, why);
    if (!all_ok(ok))
        goto out;

    /* the split, decided by rank 0 from the tensor list */
    int cut[MAX_RANKS + 1];
    ok = p.size <= MAX_RANKS;
    cut[0] = cut[1] = 0; /* one rank: the whole model, loaded as such (0, 0) */
    if (ok && p.rank == 0 && p.size > 1) {
        struct strix_model_params mp = strix_model_default_params();
        mp.vocab_path = o.vocab;
        mp.layer_first = 0;
        mp.layer_end = 1; /* a probe: only block 0 is read */
        strix_model *probe;
        strix_error err;
        if (strix_model_load(o.model, &mp, &probe, &err)) {
            snprintf(why, sizeof why, "%s", err.msg);
            ok = 0;
        } else {
            ok = make_split(probe, p.size, mo.split, cut, why, sizeof why) == 0;
            strix_model_free(probe);
        }
        if (!ok)
            fprintf(stderr, "strix-mpi: %s\n", why);
    }
    if (!all_ok(ok))
        goto out;
    MPI_Bcast(cut, p.size + 1, MPI_INT, 0, MPI_COMM_WORLD);

    /* this rank's stage */
    struct strix_model_params mp = strix_model_default_params();
    mp.vocab_path = o.vocab;
    mp.layer_first = cut[p.rank];
    mp.layer_end = cut[p.rank + 1];
    strix_error err;
    ok = strix_model_load(o.model, &mp, &p.m, &err) == STRIX_OK;
    if (ok) {
        struct strix_model_info in = {.struct_size = sizeof in};
        strix_model_get_info(p.m, &in);
        if (p.size == 1)
            cut[1] = in.n_layer;
        p.stage_bytes = (double)in.stage_weight_bytes;
        p.n_embd = in.n_embd;
        p.n_vocab = strix_vocab_size(p.m);
    }
    if (ok && !is_serve) { /* serve: its contexts come with the server's parameters */
        struct strix_context_params cp = strix_context_default_params();
        cp.n_ctx = o.n_ctx;
        cp.n_batch = mo.ubatch;
        cp.n_threads = o.n_threads;
        cp.n_seq_max = is_bench ? mo.seqs : 1;
        cache_types_apply(&o, &cp);
        ok = strix_context_create(p.m, &cp, &p.ctx, &err) == STRIX_OK;
    }
    if (ok && !is_serve) {
        p.n_batch = mo.ubatch < strix_context_n_ctx(p.ctx) ? mo.ubatch
                                                           : strix_context_n_ctx(p.ctx);
        p.n_seq = is_bench ? mo.seqs : 1;
        if (!pipe_buffers(&p)) {
            snprintf(err.msg, sizeof err.msg, "out of memory");
            ok = 0;
        }
    }
    if (!ok)
        fprintf(stderr, "strix-mpi: rank %d (layers %d..%d): %s\n", p.rank, cut[p.rank],
                cut[p.rank + 1] - 1, err.msg);
    if (!all_ok(ok))
        goto out;

    if (p.rank == 0) {
        if (is_run) {
            FILE *dump = mo.dump ? fopen(mo.dump, "wb") : NULL;
            if (mo.dump && !dump)
                fatal(&p, "cannot write %s", mo.dump);
            driver_run(&p, &o, dump);
            if (dump && fclose(dump) != 0)
                fatal(&p, "cannot write %s", mo.dump);
        } else if (is_ppl) {
            driver_ppl(&p, &o);
        } else if (is_bench) {
            driver_bench(&p, mo.n_pp, o.n_predict, mo.reps, o.json);
        } else {
            serve_rank0(&p, argc, argv, mo.ubatch, cut);
        }
        chain_op(&p, OP_END, -1);
    } else {
        if (is_serve)
            serve_worker_setup(&p, o.n_threads);
        worker(&p);
    }
    if (mo.stats)
        print_stats(&p, cut);
    *rc = 0;
out:
    strix_context_free(p.ctx);
    strix_model_free(p.m);
    free(p.in);
    free(p.out);
    free(p.logits);
    free(p.pos);
    free(p.seq);
    free(p.want);
    free(p.meta);
    free(p.rows);
    free(p.tail_pd);
    MPI_Finalize();
    return 1;
}
