/*
 * retention.h - RetNet's multi-scale retention (retention.c), the block that
 * takes attention's place in retnet models. Its per-sequence state (one
 * d_k x d_v matrix per head and layer) lives in the context's ssm_state
 * (ssm.h), which keeps the last n_state_keep of them for rollback.
 */
#ifndef STRIX_RETENTION_H
#define STRIX_RETENTION_H

#include "runtime/context.h"

struct retention;
/* Scratch for n_batch tokens and n_threads threads; NULL: out of memory. */
struct retention *retention_create(const strix_model *m, int n_batch, int n_threads);
void retention_free(struct retention *r);

/* Retention of block l over the context's current chunk: `in` is the normed
 * input (n_tok, n_embd), rope (n_tok, n_rot) each token's rotary cos/sin
 * table; W_O (swish(W_G in) * GroupNorm(retention)) is added to out. */
void retention_block(strix_context *c, int l, const float *in, const float *rope, float *out);

#endif
