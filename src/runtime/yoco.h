/*
 * yoco.h - YOCO's shared key/value cache and its cross-decoder (yoco.c). The
 * self-decoder's blocks are retention (retention.h); forward.c calls these
 * at the first cross-decoder block.
 */
#ifndef STRIX_YOCO_H
#define STRIX_YOCO_H

#include "runtime/context.h"

struct yoco;
/* Scratch for n_batch tokens; NULL: out of memory. */
struct yoco *yoco_create(int n_batch);
void yoco_free(struct yoco *y);

/* At block l = the first cross-decoder block: projects the self-decoder's
 * output (c->x) of every token of the chunk to the shared keys and values
 * and stores them in the cache's only layer; then keeps in the batch only
 * the tokens that want logits (their x, rope rows, positions, sequences
 * moved to the front) and returns how many. The cross-decoder runs on those
 * alone: for a prompt, that is its last token. */
int yoco_enter_cross(strix_context *c, int l, float *rope);
/* After the cross-decoder: puts the kept tokens' x back in their rows and
 * restores the chunk (no-op if yoco_enter_cross was not called). */
void yoco_leave_cross(strix_context *c);
/* The cross-decoder block l's queries (rotated) in c->q from `in`. */
void yoco_cross_q(strix_context *c, int l, const float *in, const float *rope);

#endif
