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

enum { OP_DECODE = 1, OP_CLEAR = 2, OP_END = 3 };
enum { TAG_HDR = 1, TAG_HID = 2, TAG_RES = 3 };
#define MAX_RANKS 256
#define PENDING_MAX 4096 /* rows of logits rank 0 may wait for at once */

/* A message along the chain: decode a chunk of n tokens of sequence seq at
 * positions pos0.. and return the logits of its rows [w0, w1); or clear
 * sequence seq (-1: all); or end. */
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

#endif
