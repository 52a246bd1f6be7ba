/*
 * pipeline.h - what the strix-mpi commands (drivers.c) share with the
 * pipeline's transport and set-up (pipeline.c): the state of one rank's
 * stage, and rank 0's calls that push tokens through the chain of ranks.
 */
#ifndef STRIX_TOOLS_MPI_PIPELINE_H
#define STRIX_TOOLS_MPI_PIPELINE_H

#include <mpi.h>
#include <stdint.h>

#include "../cli.h"

enum { OP_DECODE = 1, OP_CLEAR = 2, OP_END = 3, OP_BATCH = 4, OP_KV = 5 };
enum { TAG_HDR = 1, TAG_HID = 2, TAG_RES = 3, TAG_META = 4 };
#define MAX_RANKS 256
#define PENDING_MAX 4096 /* rows of logits rank 0 may wait for at once */

/* A message along the chain: decode a chunk of n tokens of sequence seq at
 * positions pos0.. and return the logits of its rows [w0, w1); or clear
 * sequence seq (-1: all); or end. For the server (serve.c): OP_BATCH, a
 * chunk of n tokens of any sequences at any positions, whose positions,
 * sequences and wanted rows follow (3n int32), and whose w1 wanted rows'
 * logits the last rank returns in one message (pos0: a digest of rank 0's
 * cache after the chunk, which each rank checks); OP_KV, a cache change
 * (struct strix_cache_op: kind in n, seq, dst in w0, p0 in pos0, p1 in w1). */
struct hdr {
    int32_t op, n, pos0, seq, w0, w1;
};
#define HDR_INTS 6

struct pipe {
    int rank, size, first, last;
    int n_embd, n_vocab, n_batch, n_seq;
    strix_model *m;
    strix_context *ctx;
    float *in, *out;   /* (n_batch, n_embd) */
    float *logits;     /* (n_vocab) on rank 0 */
    float *dest;       /* one rank only: where the chunk's wanted rows go */
    int32_t *pos, *seq; /* (n_batch) */
    int8_t *want;      /* (n_batch) */
    int32_t *meta;     /* (3 n_batch) OP_BATCH: positions, sequences, wanted rows */
    float *rows;       /* (n_batch, n_vocab) on the last rank: OP_BATCH's logits */
    struct pending *tail_pd; /* rank 0 of serve: the logits of the batch in flight */
    double stage_bytes;      /* this rank's weight bytes */
    /* statistics */
    double t_compute, t_wait;
    long n_msgs, n_decodes;
    /* one-token decodes (generation): this rank's compute, and on rank 0
     * the whole chain's wall time */
    double t_compute1, t_chain1;
    long n_decodes1, n_chain1;
    double bytes;
    int fault_rank;
};

/* Receives rank 0 has posted and not yet waited for. */
struct pending {
    MPI_Request req[PENDING_MAX];
    int n;
};

/* Prints "strix-mpi: rank R: ..." and ends every rank. */
void fatal(const struct pipe *p, const char *fmt, ...);
/* Point-to-point messages that wait without holding a core (pipeline.c). */
void wait_req(struct pipe *p, MPI_Request *req, const char *what);
void send_buf(struct pipe *p, const void *buf, int count, MPI_Datatype t, int size, int to,
              int tag);
void recv_buf(struct pipe *p, void *buf, int count, MPI_Datatype t, int from, int tag);
/* Allocates the per-chunk buffers once p->ctx, n_embd, n_vocab and n_batch
 * are set; 0 when out of memory. */
int pipe_buffers(struct pipe *p);

/* Rank 0: tokens[0..n) of sequence seq at positions pos0.. through the
 * chain in chunks of n_batch (each rank computes a chunk while the next
 * computes the one before). The logits of the rows with want[j] (want NULL:
 * the last token's), consecutive within each chunk, arrive in order as rows
 * of logits: pipe_decode_start returns once rank 0's own stage is done,
 * with the receives in pd; pipe_wait waits for them. */
void pipe_decode_start(struct pipe *p, const strix_token *tokens, int n, int pos0, int seq,
                       const int8_t *want, float *logits, struct pending *pd);
void pipe_wait(struct pipe *p, struct pending *pd);
void chain_decode(struct pipe *p, const strix_token *tokens, int n, int pos0, int seq,
                  const int8_t *want, float *logits);
/* OP_CLEAR (sequence seq, -1: all) or OP_END down the chain. */
void chain_op(struct pipe *p, int op, int seq);

/* The commands, run on rank 0 (drivers.c). */
void driver_run(struct pipe *p, struct opts *o, FILE *dump);
void driver_ppl(struct pipe *p, struct opts *o);
void driver_bench(struct pipe *p, int n_pp, int n_tg, int reps, int json);

/* serve (serve.c): rank 0 runs `strix serve` over its stage, whose context
 * continues on the other ranks through a remote tail; the other ranks
 * create their contexts with rank 0's parameters and follow. */
void serve_rank0(struct pipe *p, int argc, char **argv, int ubatch, const int *cut);
void serve_worker_setup(struct pipe *p, int n_threads);
/* A worker's OP_BATCH and OP_KV (h read, the rest of the message not). */
void serve_worker_batch(struct pipe *p, const struct hdr *h);
void serve_worker_kv(struct pipe *p, const struct hdr *h);

#endif
